//! `ferry incoming reset-since`: the incoming configurations' side of a running server.

use crate::client::{Client, ServerArgs};
use anyhow::{Context, Result};
use ferry_core::ConfigId;
use ferry_web::routes::SinceResetResult;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Forget where an incremental (`since`) http subscriber got to, so that its next
    /// run asks for everything from the configured `initial` again (admin token).
    ResetSince {
        /// The incoming configuration's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::ResetSince { id, server } => {
            let id = ConfigId::parse(&id).context("the incoming configuration id")?;
            let r: SinceResetResult = Client::new(&server)
                .post(&format!("/api/v1/incoming/{id}/reset-since"), &json!({}))
                .await?;
            println!("{}", describe(&r));
            Ok(())
        }
    }
}

fn describe(r: &SinceResetResult) -> String {
    match (&r.previous, r.reset) {
        (Some(p), _) => format!(
            "reset the since mark of {}: it was {} (stored {}); the next run starts from the configured initial",
            r.incoming, p.value, p.updated_at
        ),
        (None, true) => format!("reset the since mark of {}", r.incoming),
        (None, false) => format!("no since mark was stored for {}", r.incoming),
    }
}
