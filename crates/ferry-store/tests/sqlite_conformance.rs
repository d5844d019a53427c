//! The conformance suite on the SQLite store, each case on its own database file.

use ferry_store::conformance::Fixture;
use ferry_store::conformance_suite;
use ferry_store::sqlite::SqliteStore;
use std::sync::Arc;

/// A store on a database file of its own; `adjust` sets it up further.
async fn fixture(adjust: fn(SqliteStore) -> SqliteStore) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    let store = SqliteStore::open(&url).await.expect("open SQLite store");
    Some(Fixture {
        store: Arc::new(adjust(store)),
        guard: Box::new(dir),
    })
}

async fn sqlite() -> Option<Fixture> {
    fixture(|store| store).await
}

conformance_suite!(sqlite);

/// The suite again, with every list by updated-at whose filter SQLite would serve from
/// another index read in `tasks_updated` order (the way taken when matches are many).
mod in_updated_order {
    use super::*;

    async fn sqlite_in_updated_order() -> Option<Fixture> {
        fixture(|store| store.reading_in_updated_order_from(0)).await
    }

    conformance_suite!(sqlite_in_updated_order);
}
