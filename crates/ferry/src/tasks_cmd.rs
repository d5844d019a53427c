//! `ferry tasks list|show|skip|retry`.

use crate::client::{Client, ServerArgs};
use crate::filter_args::FilterArgs;
use crate::table;
use anyhow::{Result, bail};
use ferry_web::jobs::{BulkJobDto, BulkJobList};
use ferry_web::tasks::{BulkResult, Counts, History, MessageList, TaskDetailDto, TaskList};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List tasks, newest first, with the API's filters.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        per_page: u32,
        /// created_at or updated_at
        #[arg(long, value_parser = ["created_at", "updated_at"])]
        sort: Option<String>,
        /// desc or asc
        #[arg(long, value_parser = ["desc", "asc"])]
        order: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one task: overview, entity data, messages and history.
    Show {
        identifier: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Skip tasks (new or retry) by identifiers or by filter.
    Skip(ActArgs),
    /// Retry tasks (finished, failed or skipped) by identifiers or by filter.
    Retry(ActArgs),
    /// Bulk jobs (skips and retries by filter), newest first; or cancel or resume one.
    Jobs {
        /// Only those still running.
        #[arg(long)]
        running: bool,
        /// Ask this running job to stop after its current batch.
        #[arg(long, value_name = "ID")]
        cancel: Option<i64>,
        /// Resume this interrupted job (its node stopped) on the server: it finishes
        /// what is left of the same action.
        #[arg(long, value_name = "ID", conflicts_with = "cancel")]
        resume: Option<i64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(clap::Args)]
pub struct ActArgs {
    /// Task identifiers; without them, the filter flags choose the tasks.
    pub identifiers: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Act on every task (needed when no identifier and no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Why; kept in the audit trail and each task's log.
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    /// With a filter: start the bulk job and return at once, without following it.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::List {
            filter,
            page,
            per_page,
            sort,
            order,
            json,
            server,
        } => {
            let client = Client::new(&server);
            let mut q = filter.pairs();
            q.push(("page".into(), page.to_string()));
            q.push(("per_page".into(), per_page.to_string()));
            if let Some(s) = sort {
                q.push(("sort".into(), s));
            }
            if let Some(o) = order {
                q.push(("order".into(), o));
            }
            if json {
                let v: Value = client.get("/api/v1/tasks", &q).await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let list: TaskList = client.get("/api/v1/tasks", &q).await?;
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|t| {
                    vec![
                        t.identifier.clone(),
                        t.route.clone(),
                        t.entity_schema.clone(),
                        t.entity_identifier.clone(),
                        t.status.clone(),
                        t.attempts.to_string(),
                        t.created_at.clone(),
                        t.updated_at.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table::render(
                    &[
                        "IDENTIFIER",
                        "ROUTE",
                        "SCHEMA",
                        "ENTITY",
                        "STATUS",
                        "ATTEMPTS",
                        "CREATED",
                        "UPDATED"
                    ],
                    &rows
                )
            );
            let pages = list.total.div_ceil(u64::from(list.per_page.max(1))).max(1);
            println!(
                "\n{} task(s) match; page {} of {pages}",
                list.total, list.page
            );
            Ok(())
        }
        Command::Show {
            identifier,
            json,
            server,
        } => show(&Client::new(&server), &identifier, json).await,
        Command::Skip(args) => act(args, "skip").await,
        Command::Retry(args) => act(args, "retry").await,
        Command::Jobs {
            running,
            cancel,
            resume,
            json,
            server,
        } => {
            let client = Client::new(&server);
            match resume {
                Some(id) => resume_job(&client, id).await,
                None => jobs(&client, running, cancel, json).await,
            }
        }
    }
}

async fn jobs(client: &Client, running: bool, cancel: Option<i64>, as_json: bool) -> Result<()> {
    if let Some(id) = cancel {
        let job: BulkJobDto = client
            .post(&format!("/api/v1/bulk-jobs/{id}/cancel"), &json!({}))
            .await?;
        println!(
            "bulk job {} will stop after its current batch ({} of {} task(s) changed so far)",
            job.id, job.changed, job.eligible
        );
        return Ok(());
    }
    let mut q = vec![("limit".to_owned(), "50".to_owned())];
    if running {
        q.push(("state".into(), "running".into()));
    }
    if as_json {
        let v: Value = client.get("/api/v1/bulk-jobs", &q).await?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let list: BulkJobList = client.get("/api/v1/bulk-jobs", &q).await?;
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.action.clone(),
                j.state.clone(),
                format!("{:.0}%", j.progress * 100.0),
                format!("{}/{}", j.changed, j.eligible),
                j.actor.clone(),
                j.started_at.clone(),
                j.filter.to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(
            &[
                "JOB", "ACTION", "STATE", "PROGRESS", "CHANGED", "BY", "STARTED", "FILTER"
            ],
            &rows
        )
    );
    Ok(())
}

async fn resume_job(client: &Client, id: i64) -> Result<()> {
    let job: BulkJobDto = client
        .post(&format!("/api/v1/bulk-jobs/{id}/resume"), &json!({}))
        .await?;
    println!(
        "bulk job {} resumed: {} of {} task(s) changed so far; follow it with `ferry tasks jobs`",
        job.id, job.changed, job.eligible
    );
    Ok(())
}

async fn show(client: &Client, id: &str, as_json: bool) -> Result<()> {
    let path = format!("/api/v1/tasks/{id}");
    let task: TaskDetailDto = client.get(&path, &[]).await?;
    let phase = |p: &str| vec![("phase".to_owned(), p.to_owned())];
    let import: MessageList = client
        .get(&format!("{path}/messages"), &phase("import"))
        .await?;
    let export: MessageList = client
        .get(&format!("{path}/messages"), &phase("export"))
        .await?;
    let history: History = client.get(&format!("{path}/history"), &[]).await?;
    if as_json {
        let v = json!({"task": task, "import_messages": import.items, "export_messages": export.items, "history": history});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let s = &task.summary;
    println!("Task {}", s.identifier);
    for (k, v) in [
        ("status", s.status.clone()),
        ("route", s.route.clone()),
        ("entity schema", s.entity_schema.clone()),
        ("entity identifier", s.entity_identifier.clone()),
        ("attempts", s.attempts.to_string()),
        ("created at", s.created_at.clone()),
        ("updated at", s.updated_at.clone()),
        (
            "next attempt at",
            task.next_attempt_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "last error",
            task.last_error.clone().unwrap_or_else(|| "-".into()),
        ),
    ] {
        println!("  {k:<18} {v}");
    }
    println!(
        "\nEntity data:\n{}",
        serde_json::to_string_pretty(&task.entity_data)?
    );
    for (title, list) in [("Import messages", &import), ("Export messages", &export)] {
        println!("\n{title}:");
        if list.items.is_empty() {
            println!("  (none)");
        }
        for m in &list.items {
            println!("  {}  {:<5}  {}", m.at, m.level, m.message);
        }
    }
    if !history.actions.is_empty() {
        println!("\nOperator actions:");
        for a in &history.actions {
            let reason = a
                .reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default();
            println!("  {}  {} by {}{reason}", a.at, a.action, a.actor);
        }
    }
    Ok(())
}

async fn act(args: ActArgs, verb: &str) -> Result<()> {
    let client = Client::new(&args.server);
    let has_filter = !args.filter.is_empty();
    if !args.identifiers.is_empty() && has_filter {
        bail!("give either task identifiers or filter flags, not both");
    }
    if args.identifiers.is_empty() && !has_filter && !args.all {
        bail!(
            "name the tasks: give identifiers, filter flags (--route, --status, …), or --all for every task"
        );
    }
    let eligible: &[&str] = if verb == "skip" {
        &["new", "retry"]
    } else {
        &["finished", "failed", "skipped"]
    };
    let prompt = if args.identifiers.is_empty() {
        let counts: Counts = client
            .get("/api/v1/tasks/counts", &args.filter.pairs())
            .await?;
        let will: u64 = eligible
            .iter()
            .map(|s| counts.by_status.get(*s).copied().unwrap_or(0))
            .sum();
        let done = if verb == "skip" { "skipped" } else { "retried" };
        format!(
            "{} task(s) match; {will} can be {done} ({}), {} cannot.",
            counts.total,
            eligible.join(", "),
            counts.total - will
        )
    } else {
        format!("{} task identifier(s) given.", args.identifiers.len())
    };
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "{prompt} Not a terminal, so no confirmation can be asked: add --yes to {verb} them"
            );
        }
        print!(
            "{prompt} {} them? [y/N] ",
            if verb == "skip" { "Skip" } else { "Retry" }
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing changed.");
            return Ok(());
        }
    }
    if args.identifiers.is_empty() {
        let mut body = json!({ "action": verb, "filter": args.filter.json() });
        if let Some(r) = &args.reason {
            body["reason"] = json!(r);
        }
        let job: BulkJobDto = client.post("/api/v1/bulk-jobs", &body).await?;
        if args.no_wait {
            println!(
                "bulk job {} started: {} task(s) match, {} can be acted on; follow it with `ferry tasks jobs`",
                job.id, job.matched, job.eligible
            );
            return Ok(());
        }
        return follow(&client, job).await;
    }
    let mut body = json!({ "identifiers": args.identifiers });
    if let Some(r) = &args.reason {
        body["reason"] = json!(r);
    }
    let result: BulkResult = client.post(&format!("/api/v1/tasks/{verb}"), &body).await?;
    println!(
        "matched {}, changed {}, not eligible {}, not found {}",
        result.matched, result.changed, result.ineligible, result.not_found
    );
    Ok(())
}

/// Follows a bulk job to its end with a progress bar (on a terminal); Ctrl-C asks the
/// job to stop after its current batch.
async fn follow(client: &Client, mut job: BulkJobDto) -> Result<()> {
    let bar = indicatif::ProgressBar::new(job.eligible);
    // Short enough for an 80-column terminal; the rate and time left are the job's own.
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:24}] {human_pos}/{human_len} {msg}",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("job {} {}", job.id, job.action));
    let path = format!("/api/v1/bulk-jobs/{}", job.id);
    let mut interrupted = false;
    while job.state == "running" {
        bar.set_length(job.eligible.max(job.changed));
        bar.set_position(job.changed);
        bar.set_message(match (job.tasks_per_second, job.seconds_left) {
            (Some(rate), Some(left)) => format!("· {rate:.0}/s · {left:.0} s left"),
            _ => String::new(),
        });
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                bar.println(format!(
                    "Stopping bulk job {} after its current batch (the batches done stay done)…",
                    job.id
                ));
                let _: Value = client
                    .post(&format!("{path}/cancel"), &json!({}))
                    .await
                    .unwrap_or(Value::Null);
            }
        }
        job = client.get(&path, &[]).await?;
    }
    bar.finish_and_clear();
    match job.state.as_str() {
        "done" => {
            println!(
                "matched {}, changed {}, not eligible {}, not found 0",
                job.matched,
                job.changed,
                job.matched.saturating_sub(job.changed)
            );
            Ok(())
        }
        "cancelled" => bail!(
            "bulk job {} was cancelled by {} after {} of {} task(s) changed; those stay changed",
            job.id,
            job.cancelled_by.as_deref().unwrap_or("an operator"),
            job.changed,
            job.eligible
        ),
        "failed" => bail!(
            "bulk job {} stopped after {} task(s) changed: {}; run the command again to finish",
            job.id,
            job.changed,
            job.error.as_deref().unwrap_or("unknown error")
        ),
        other => bail!(
            "bulk job {} is {other} after {} task(s) changed (the ferry node running it stopped); finish it with `ferry tasks jobs --resume {}`",
            job.id,
            job.changed,
            job.id
        ),
    }
}
