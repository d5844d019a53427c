//! ferry's engine: the ingestion pipeline, transformers (jq), publishers and the route
//! runner. Depends on the core and the store; never on the web or the binary.
#![forbid(unsafe_code)]

mod engine;
pub mod jq;
pub mod publish;
pub mod transform;

pub use engine::*;
