//! The conformance suite on the SQLite store, each case on its own database file.

use ferry_store::conformance::Fixture;
use ferry_store::conformance_suite;
use ferry_store::sqlite::SqliteStore;
use std::sync::Arc;

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    let store = SqliteStore::open(&url).await.expect("open SQLite store");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

conformance_suite!(sqlite);
