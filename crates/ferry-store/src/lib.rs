//! ferry's task store: the [`Store`] trait every backend implements, the SQLite backend
//! (the embedded default), per-backend migrations and the [`conformance`] suite every
//! backend must pass.
//!
//! Depends on `ferry-core` only; never on the engine or the web crates. Filters are built
//! once with sea-query in [`query`] and rendered per backend, every value bound.
#![forbid(unsafe_code)]

pub mod access;
pub mod accounts;
pub mod conformance;
pub mod credentials;
pub mod jobs;
pub mod postgres;
mod query;
mod rows;
pub mod sqlite;
mod store;

pub use access::{AccessStore, NewSession, NewToken, NewUser, Session, Token, User, UserChange};
pub use jobs::{BulkJob, JobStore};
pub use store::*;

/// Opens the store named by a storage URL (`sqlite://…` or `postgres://…`), applying
/// migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    open_with(url, postgres::PoolSettings::default(), true).await
}

/// [`open`] with pool settings, and migrations only when `migrate` is true.
pub async fn open_with(
    url: &str,
    pool: postgres::PoolSettings,
    migrate: bool,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = postgres::PgStore::connect(url, pool).await?;
        if migrate {
            store.migrate().await?;
        }
        Ok(std::sync::Arc::new(store))
    } else {
        Err(StoreError::Unsupported(format!(
            "storage.url '{url}' names no known database; use sqlite://PATH or postgres://USER@HOST/DATABASE"
        )))
    }
}
