//! ferry's engine: subscribers, transformers (jq), publishers, ingestion, the route
//! runner, schedules, lease recovery, retention, and the runtime that drives them.
//! Depends on the core and the store; never on the web or the binary.
#![forbid(unsafe_code)]

mod bulk;
pub mod connectors;
mod engine;
pub mod formats;
mod ingest;
pub mod jq;
mod run;
pub mod runtime;
mod schedule;
pub mod schema;
pub mod transform;
mod trial;
pub use trial::*;

pub use bulk::ResumeError;
pub use engine::*;
pub use ingest::*;
pub use run::*;
pub use schedule::*;
