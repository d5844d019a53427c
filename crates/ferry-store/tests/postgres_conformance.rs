//! The conformance suite on the PostgreSQL store, each case in its own schema of the
//! database named by FERRY_TEST_POSTGRES_URL (default: the local `test` database).
//! Without a reachable server the cases print SKIPPED; under CI=true they fail.

use ferry_store::conformance::Fixture;
use ferry_store::conformance_suite;
use ferry_store::postgres::{PgStore, PoolSettings};
use sqlx::Connection;
use std::sync::Arc;

pub fn base_url() -> String {
    std::env::var("FERRY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the test's schema when the case ends.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

async fn postgres() -> Option<Fixture> {
    let url = base_url();
    let mut conn = match sqlx::PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => {
            let reason =
                format!("PostgreSQL is not reachable at {url} ({e}); set FERRY_TEST_POSTGRES_URL");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason}; .ci/run starts the local server");
            }
            eprintln!("SKIPPED: {reason}");
            return None;
        }
    };
    let schema = format!(
        "ferry_t_{}",
        ferry_core::TaskId::generate(ferry_core::Timestamp::now())
            .as_str()
            .to_lowercase()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create a schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let store = PgStore::open(&scoped, PoolSettings::default())
        .await
        .expect("open PostgreSQL store");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(DropSchema { url, schema }),
    })
}

conformance_suite!(postgres);
