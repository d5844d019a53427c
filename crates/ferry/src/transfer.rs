//! `ferry export` and `ferry import`: move an installation's tasks between stores (from
//! SQLite to PostgreSQL, say) as NDJSON, with their logs, attempts and the operator
//! actions taken on them. Importing twice creates nothing twice.

use crate::serve::{load_config, open_store};
use anyhow::{Context, Result, bail};
use ferry_core::task::{Level, Message, Phase, Task, TaskSummary};
use ferry_core::{Status, TaskId, Timestamp};
use ferry_store::{ActionRecord, Attempt, BulkOutcome, Store, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

const PAGE: u32 = 500;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The configuration whose store is read.
    #[arg(long, short, env = "FERRY_CONFIG", default_value = "ferry.toml")]
    pub config: PathBuf,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The configuration whose store receives the tasks.
    #[arg(long, short, env = "FERRY_CONFIG", default_value = "ferry.toml")]
    pub config: PathBuf,
    /// Read from here instead of standard input.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
}

/// One line of the export file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Action(Box<ActionLine>),
    Task(Box<TaskLine>),
}

#[derive(Serialize, Deserialize)]
struct ActionLine {
    id: i64,
    at: String,
    actor: String,
    action: String,
    reason: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    target: Value,
    matched: u64,
    changed: u64,
    ineligible: u64,
    not_found: u64,
}

#[derive(Serialize, Deserialize)]
struct TaskLine {
    identifier: String,
    route: String,
    entity_schema: String,
    entity_identifier: String,
    status: String,
    attempts: u32,
    created_at: String,
    updated_at: String,
    entity_data: Value,
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    /// What the target answered (older files have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<Value>,
    messages: Vec<MessageLine>,
    attempt_history: Vec<AttemptLine>,
    /// Ids of the action lines (earlier in the file) that changed the task.
    actions: Vec<i64>,
}

#[derive(Serialize, Deserialize)]
struct MessageLine {
    phase: String,
    at: String,
    level: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct AttemptLine {
    attempt: u32,
    started_at: String,
    ended_at: String,
    outcome: String,
    error: Option<String>,
}

pub async fn export(args: ExportArgs) -> Result<()> {
    let config = load_config(&args.config)?;
    let store = open_store(&config.storage, false).await?;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let (tasks, actions) = write_all(&*store, &mut out).await?;
    out.flush()?;
    eprintln!("exported {tasks} tasks and {actions} operator actions");
    Ok(())
}

async fn write_all(store: &dyn Store, out: &mut impl Write) -> Result<(u64, u64)> {
    let mut written_actions = std::collections::HashSet::new();
    let mut after: Option<TaskId> = None;
    let mut tasks = 0;
    loop {
        let page = store.tasks_after(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.summary.id.clone());
        for task in page {
            let id = task.summary.id.clone();
            let actions = store.task_actions(&id).await?;
            for a in &actions {
                if written_actions.insert(a.id) {
                    let line = Line::Action(Box::new(ActionLine {
                        id: a.id,
                        at: a.at.to_rfc3339(),
                        actor: a.actor.clone(),
                        action: a.action.clone(),
                        reason: a.reason.clone(),
                        origin: a.origin.clone(),
                        target: a.target.clone(),
                        matched: a.outcome.matched,
                        changed: a.outcome.changed,
                        ineligible: a.outcome.ineligible,
                        not_found: a.outcome.not_found,
                    }));
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                }
            }
            let mut messages = Vec::new();
            for phase in [Phase::Import, Phase::Export] {
                for m in store.messages(&id, phase).await?.unwrap_or_default() {
                    messages.push(MessageLine {
                        phase: phase.as_str().into(),
                        at: m.at.to_rfc3339(),
                        level: m.level.as_str().into(),
                        message: m.message,
                    });
                }
            }
            let attempt_history = store
                .attempts(&id)
                .await?
                .into_iter()
                .map(|a| AttemptLine {
                    attempt: a.attempt,
                    started_at: a.started_at.to_rfc3339(),
                    ended_at: a.ended_at.to_rfc3339(),
                    outcome: a.outcome.as_str().into(),
                    error: a.error,
                })
                .collect();
            let s = &task.summary;
            let line = Line::Task(Box::new(TaskLine {
                identifier: s.id.to_string(),
                route: s.route.clone(),
                entity_schema: s.entity_schema.clone(),
                entity_identifier: s.entity_identifier.clone(),
                status: s.status.as_str().into(),
                attempts: s.attempts,
                created_at: s.created_at.to_rfc3339(),
                updated_at: s.updated_at.to_rfc3339(),
                entity_data: task.entity_data.clone(),
                last_error: task.last_error.clone(),
                next_attempt_at: task.next_attempt_at.map(Timestamp::to_rfc3339),
                response: task.response.clone(),
                messages,
                attempt_history,
                actions: actions.iter().map(|a| a.id).collect(),
            }));
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            tasks += 1;
        }
    }
    Ok((tasks, written_actions.len() as u64))
}

pub async fn import(args: ImportArgs) -> Result<()> {
    let config = load_config(&args.config)?;
    let store = open_store(&config.storage, config.storage.migrate).await?;
    let input: Box<dyn BufRead> = match &args.input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let (created, seen) = read_all(&*store, input).await?;
    eprintln!(
        "imported {created} of {seen} tasks ({} were there already)",
        seen - created
    );
    Ok(())
}

fn time(s: &str, line: usize) -> Result<Timestamp> {
    Timestamp::parse_rfc3339(s).with_context(|| format!("line {line}: bad time '{s}'"))
}

async fn read_all(store: &dyn Store, input: impl BufRead) -> Result<(u64, u64)> {
    let mut action_ids: HashMap<i64, i64> = HashMap::new();
    let mut batch = Vec::new();
    let (mut created, mut seen) = (0, 0);
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("line {n}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&line)
            .with_context(|| format!("line {n}: not an export line"))?
        {
            Line::Action(a) => {
                let record = ActionRecord {
                    id: a.id,
                    at: time(&a.at, n)?,
                    actor: a.actor,
                    action: a.action,
                    reason: a.reason,
                    origin: a.origin,
                    target: a.target,
                    outcome: BulkOutcome {
                        matched: a.matched,
                        changed: a.changed,
                        ineligible: a.ineligible,
                        not_found: a.not_found,
                    },
                };
                let new = store.import_actions(std::slice::from_ref(&record)).await?;
                action_ids.insert(a.id, new[0]);
            }
            Line::Task(t) => {
                seen += 1;
                batch.push(task_record(*t, &action_ids, n)?);
                if batch.len() == PAGE as usize {
                    created += store.import_tasks(&batch).await?;
                    batch.clear();
                }
            }
        }
    }
    created += store.import_tasks(&batch).await?;
    Ok((created, seen))
}

fn task_record(t: TaskLine, action_ids: &HashMap<i64, i64>, n: usize) -> Result<TaskRecord> {
    let status = Status::parse(&t.status).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?;
    let mut messages = Vec::new();
    for m in t.messages {
        let phase =
            Phase::parse(&m.phase).with_context(|| format!("line {n}: bad phase '{}'", m.phase))?;
        let level =
            Level::parse(&m.level).with_context(|| format!("line {n}: bad level '{}'", m.level))?;
        messages.push((phase, Message::new(time(&m.at, n)?, level, m.message)));
    }
    let mut attempts = Vec::new();
    for a in t.attempt_history {
        attempts.push(Attempt {
            attempt: a.attempt,
            started_at: time(&a.started_at, n)?,
            ended_at: time(&a.ended_at, n)?,
            outcome: Status::parse(&a.outcome).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?,
            error: a.error,
        });
    }
    let mut linked = Vec::new();
    for old in t.actions {
        match action_ids.get(&old) {
            Some(new) => linked.push(*new),
            None => bail!("line {n}: action {old} is not defined earlier in the file"),
        }
    }
    Ok(TaskRecord {
        task: Task {
            summary: TaskSummary {
                id: TaskId::parse(&t.identifier).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?,
                route: t.route,
                entity_schema: t.entity_schema,
                entity_identifier: t.entity_identifier,
                status,
                attempts: t.attempts,
                created_at: time(&t.created_at, n)?,
                updated_at: time(&t.updated_at, n)?,
            },
            entity_data: t.entity_data,
            last_error: t.last_error,
            next_attempt_at: t
                .next_attempt_at
                .as_deref()
                .map(|s| time(s, n))
                .transpose()?,
            response: t.response,
        },
        messages,
        attempts,
        action_ids: linked,
    })
}
