//! Tasks and their messages.

use crate::{ConfigId, Status, TaskId, Timestamp};
use serde_json::Value;
use std::fmt;

/// The columns of the Tasks page list.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    pub id: TaskId,
    pub route: String,
    pub entity_schema: String,
    pub entity_identifier: String,
    pub status: Status,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A task with everything the detail page shows except its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub summary: TaskSummary,
    pub entity_data: Value,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    /// What the target answered, as the publisher's `response` expression picked it
    /// (the newest attempt that gave one): e.g. the id the ERP gave the product.
    pub response: Option<Value>,
}

/// A task about to be created by ingestion.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: TaskId,
    pub route: ConfigId,
    pub entity_schema: ConfigId,
    pub entity_identifier: String,
    pub entity_data: Value,
    pub created_at: Timestamp,
    /// What happened on the way in, in order; stored as import messages.
    pub import_messages: Vec<Message>,
}

/// The two logs of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Import,
    Export,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Import => "import",
            Phase::Export => "export",
        }
    }

    pub fn parse(value: &str) -> Option<Phase> {
        match value {
            "import" => Some(Phase::Import),
            "export" => Some(Phase::Export),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(value: &str) -> Option<Level> {
        [Level::Debug, Level::Info, Level::Warn, Level::Error]
            .into_iter()
            .find(|l| l.as_str() == value)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a task's import or export log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub at: Timestamp,
    pub level: Level,
    pub message: String,
}

impl Message {
    pub fn new(at: Timestamp, level: Level, message: impl Into<String>) -> Message {
        Message {
            at,
            level,
            message: message.into(),
        }
    }
}
