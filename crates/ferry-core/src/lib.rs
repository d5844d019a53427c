//! ferry's domain core: tasks, statuses and the transitions between them, task filters,
//! retry policy, entity identifiers and the configuration model.
//!
//! This crate does no I/O and must never depend on the store, the engine or the web
//! crates: they depend on it. Everything here is a plain type or a pure function, so
//! the rules of the product can be unit-tested without a database or a network.
#![forbid(unsafe_code)]

pub mod access;
pub mod action;
pub mod base64;
pub mod bulk;
pub mod config;
pub mod digest;
pub mod duration;
pub mod entity;
pub mod filter;
pub mod ids;
pub mod retry;
pub mod schedule;
pub mod status;
pub mod task;
pub mod time;

pub use access::{Permission, Principal, PrincipalKind, Role};
pub use action::{Action, NotEligible};
pub use bulk::{JobState, Progress};
pub use filter::{
    CountMode, MatchMode, Page, SortField, SortOrder, TaskFilter, TaskQuery, TextMatch,
};
pub use ids::{ConfigId, TaskId};
pub use status::Status;
pub use task::{Level, Message, NewTask, Phase, Task, TaskSummary};
pub use time::Timestamp;
