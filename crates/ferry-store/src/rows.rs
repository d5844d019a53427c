//! Decoding stored rows into domain types, once for both backends. Each backend's row
//! type implements [`Columns`]; the decoders below read through it.

use crate::store::{ActionRecord, BulkOutcome, StatusCounts, StoreError};
use ferry_core::task::{Level, Message, Phase, Task, TaskSummary};
use ferry_core::{Status, TaskId, Timestamp};

/// The column reads the decoders need, by column name.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}

columns_for!(sqlx::sqlite::SqliteRow);
columns_for!(sqlx::postgres::PgRow);

pub(crate) fn status(value: &str) -> Result<Status, StoreError> {
    Status::parse(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn summary(row: &impl Columns) -> Result<TaskSummary, StoreError> {
    Ok(TaskSummary {
        id: TaskId::from_stored(row.text("id")?),
        route: row.text("route")?,
        entity_schema: row.text("entity_schema")?,
        entity_identifier: row.text("entity_identifier")?,
        status: status(&row.text("status")?)?,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        created_at: Timestamp::from_millis(row.int("created_at")?),
        updated_at: Timestamp::from_millis(row.int("updated_at")?),
    })
}

pub(crate) fn detail(row: &impl Columns) -> Result<Task, StoreError> {
    let summary = summary(row)?;
    let entity = row
        .opt_text("entity_data")?
        .ok_or_else(|| StoreError::Corrupt(format!("task {} has no stored entity", summary.id)))?;
    let response = row
        .opt_text("response")?
        .map(|r| serde_json::from_str(&r))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("task {}: response: {e}", summary.id)))?;
    Ok(Task {
        entity_data: serde_json::from_str(&entity)
            .map_err(|e| StoreError::Corrupt(format!("entity data: {e}")))?,
        summary,
        last_error: row.opt_text("last_error")?,
        next_attempt_at: row.opt_int("next_attempt_at")?.map(Timestamp::from_millis),
        response,
    })
}

/// Rows of `query::count_by_status`.
pub(crate) fn status_counts(rows: &[impl Columns]) -> Result<StatusCounts, StoreError> {
    let mut counts = StatusCounts::default();
    for row in rows {
        counts
            .0
            .insert(status(&row.text("status")?)?, row.int("n")?.max(0) as u64);
    }
    Ok(counts)
}

/// A row of `operator_actions` (selected with its own column names).
pub(crate) fn action(row: &impl Columns) -> Result<ActionRecord, StoreError> {
    let count = |c: &str| row.int(c).map(|n| n as u64);
    Ok(ActionRecord {
        id: row.int("id")?,
        at: Timestamp::from_millis(row.int("at")?),
        actor: row.text("actor")?,
        action: row.text("action")?,
        reason: row.opt_text("reason")?,
        origin: row.opt_text("origin")?,
        target: serde_json::from_str(&row.text("target")?).unwrap_or(serde_json::Value::Null),
        outcome: BulkOutcome {
            matched: count("matched")?,
            changed: count("changed")?,
            ineligible: count("ineligible")?,
            not_found: count("not_found")?,
        },
    })
}

/// A log line as `task_logs.lines` keeps it: `[at, level, message]`.
type Line<'a> = (i64, &'a str, &'a str);

/// Log lines as `task_logs.lines` keeps them: `[[at, level, message], …]`.
pub(crate) fn lines_json(lines: &[Line]) -> String {
    serde_json::to_string(lines).expect("numbers and strings serialize")
}

/// Log lines, (task id, phase, line) in order, as `task_logs` rows: each run of lines
/// for one task and phase becomes a row (callers pass a task's lines together; a task
/// whose lines came apart would get a row per run, in order).
pub(crate) fn log_rows<'a>(rows: &[(&'a str, Phase, &Message)]) -> Vec<(&'a str, Phase, String)> {
    rows.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
        .map(|run| {
            let lines: Vec<Line> = run
                .iter()
                .map(|(_, _, m)| (m.at.millis(), m.level.as_str(), m.message.as_str()))
                .collect();
            (run[0].0, run[0].1, lines_json(&lines))
        })
        .collect()
}

/// The messages of a task's `task_logs` rows, in the order they are given.
pub(crate) fn messages(id: &TaskId, rows: Vec<String>) -> Result<Vec<Message>, StoreError> {
    let mut messages = Vec::new();
    for lines in rows {
        let lines: Vec<(i64, String, String)> = serde_json::from_str(&lines)
            .map_err(|e| StoreError::Corrupt(format!("log lines of task {id}: {e}")))?;
        for (at, level, message) in lines {
            messages.push(Message {
                at: Timestamp::from_millis(at),
                level: Level::parse(&level)
                    .ok_or_else(|| StoreError::Corrupt(format!("message level {level}")))?,
                message,
            });
        }
    }
    Ok(messages)
}
