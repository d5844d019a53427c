//! `ferry routes list|run`.

use crate::client::{Client, ServerArgs};
use crate::table;
use anyhow::Result;
use ferry_web::routes::{RouteList, RunResult};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every route with its task counts per status.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a route's outgoing side now (one batch).
    Run {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::List { json, server } => {
            let client = Client::new(&server);
            if json {
                let v: serde_json::Value = client.get("/api/v1/routes", &[]).await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let list: RouteList = client.get("/api/v1/routes", &[]).await?;
            let statuses = [
                "new",
                "processing",
                "finished",
                "failed",
                "skipped",
                "retry",
            ];
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|r| {
                    let mut row = vec![
                        r.id.clone(),
                        r.name.clone(),
                        if r.disabled {
                            "disabled"
                        } else if r.realtime {
                            "realtime"
                        } else {
                            "enabled"
                        }
                        .into(),
                        r.incoming.join(","),
                        r.outgoing.clone(),
                    ];
                    row.extend(
                        statuses
                            .iter()
                            .map(|s| r.counts.get(*s).copied().unwrap_or(0).to_string()),
                    );
                    row
                })
                .collect();
            let mut header = vec!["ID", "NAME", "STATE", "INCOMING", "OUTGOING"];
            header.extend(statuses.iter().map(|s| match *s {
                "new" => "NEW",
                "processing" => "PROCESSING",
                "finished" => "FINISHED",
                "failed" => "FAILED",
                "skipped" => "SKIPPED",
                _ => "RETRY",
            }));
            println!("{}", table::render(&header, &rows));
            Ok(())
        }
        Command::Run { id, server } => {
            let client = Client::new(&server);
            let r: RunResult = client
                .post(&format!("/api/v1/routes/{id}/run"), &json!({}))
                .await?;
            if r.disabled {
                println!("route {id} is disabled: nothing was processed");
            } else {
                println!(
                    "claimed {}: finished {}, failed {}, skipped {}, retry {}",
                    r.claimed, r.finished, r.failed, r.skipped, r.retry
                );
            }
            Ok(())
        }
    }
}
