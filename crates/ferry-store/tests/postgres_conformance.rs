//! The conformance suite on the PostgreSQL store, each case in its own schema of the
//! database named by FERRY_TEST_POSTGRES_URL (default: the local `test` database).
//! Without a reachable server the cases print SKIPPED; under CI=true they fail.

use ferry_core::{Action, Status, TaskFilter};
use ferry_store::conformance::{Fixture, at, new_task, request, seed};
use ferry_store::conformance_suite;
use ferry_store::postgres::{PgStore, PoolSettings};
use ferry_store::{COUNT_CAP, ClaimRequest, Store};
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
    postgres_scoped().await.map(|(fixture, _)| fixture)
}

/// A store in a schema of its own, and the URL that reaches that schema.
async fn postgres_scoped() -> Option<(Fixture, String)> {
    postgres_with(|store| store).await
}

/// [`postgres_scoped`], the store set up further by `adjust`.
async fn postgres_with(adjust: fn(PgStore) -> PgStore) -> Option<(Fixture, String)> {
    let (scoped, guard) = empty_schema().await?;
    let store = PgStore::open(&scoped, PoolSettings::default())
        .await
        .expect("open PostgreSQL store");
    let fixture = Fixture {
        store: Arc::new(adjust(store)),
        guard: Box::new(guard),
    };
    Some((fixture, scoped))
}

/// An empty schema of its own (dropped with the guard), and the URL that reaches it.
async fn empty_schema() -> Option<(String, DropSchema)> {
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
    Some((scoped, DropSchema { url, schema }))
}

conformance_suite!(postgres);

/// The suite again, with every list by updated-at whose filter is served in another
/// order gathering its matches and sorting them (the way taken when they are few).
mod gathered {
    use super::*;

    async fn postgres_gathered() -> Option<Fixture> {
        let gathering = |store: PgStore| store.gathering_up_to(u64::MAX);
        postgres_with(gathering).await.map(|(fixture, _)| fixture)
    }

    conformance_suite!(postgres_gathered);
}

/// The PostgreSQL migrations as files, in order, to build a database as an older ferry
/// left it.
const MIGRATION_FILES: [&str; 11] = [
    include_str!("../migrations/postgres/0001_tasks.sql"),
    include_str!("../migrations/postgres/0002_schedules.sql"),
    include_str!("../migrations/postgres/0003_access.sql"),
    include_str!("../migrations/postgres/0004_search.sql"),
    include_str!("../migrations/postgres/0005_bulk_jobs.sql"),
    include_str!("../migrations/postgres/0006_task_search.sql"),
    include_str!("../migrations/postgres/0007_task_entities.sql"),
    include_str!("../migrations/postgres/0008_task_keys.sql"),
    include_str!("../migrations/postgres/0009_no_updated_index.sql"),
    include_str!("../migrations/postgres/0010_fewer_entries.sql"),
    include_str!("../migrations/postgres/0011_task_logs.sql"),
];

/// A connection to `url`'s empty schema after applying the first `version` migrations,
/// recorded as applied (as `PgStore::migrate` records them).
async fn migrated_to(url: &str, version: usize) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE ferry_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for (k, sql) in MIGRATION_FILES[..version].iter().enumerate() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO ferry_migrations VALUES ($1, 0)")
            .bind(k as i64 + 1)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn
}

#[tokio::test]
async fn log_lines_stored_a_row_each_read_back_in_order_after_the_move_to_task_logs() {
    let Some((url, _guard)) = empty_schema().await else {
        return;
    };
    // A database as migration 10 left it: a failed task with a log line a row.
    let mut conn = migrated_to(&url, 10).await;
    let id = "01KDDDDDDDDDDDDDDDDDDDDDDD";
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tasks (id, route, entity_schema, entity_identifier, status, attempts, created_at, updated_at)
         VALUES ('{id}', 'shop', 'product', 'SKU-1', 'failed', 1, 1000, 3000);
         INSERT INTO task_entities (task_id, entity_data) VALUES ('{id}', '{{}}');
         INSERT INTO task_messages (task_id, phase, at, level, message) VALUES
             ('{id}', 'import', 1000, 'info', 'received'),
             ('{id}', 'export', 2000, 'info', 'attempt 1 of 3'),
             ('{id}', 'export', 3000, 'error', 'it''s \"down\" — 503');"
    )))
    .execute(&mut conn)
    .await
    .unwrap();

    let store = PgStore::open(&url, PoolSettings::default()).await.unwrap();
    let id = ferry_core::TaskId::parse(id).unwrap();
    let lines = |phase| {
        let (store, id) = (&store, &id);
        async move {
            store
                .messages(id, phase)
                .await
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|m| (m.at.millis(), m.level.as_str(), m.message))
                .collect::<Vec<_>>()
        }
    };
    use ferry_core::task::Phase::{Export, Import};
    assert_eq!(lines(Import).await, [(1000, "info", "received".to_owned())]);
    assert_eq!(
        lines(Export).await,
        [
            (2000, "info", "attempt 1 of 3".to_owned()),
            (3000, "error", "it's \"down\" — 503".to_owned())
        ]
    );
    // Lines written after the move come after the moved ones.
    store
        .act_on_task(&id, &request(Action::Retry, 4_000))
        .await
        .unwrap();
    let export = lines(Export).await;
    assert_eq!(export.len(), 3);
    assert_eq!(export[2].0, at(4_000).millis(), "{export:?}");
    assert!(export[2].2.starts_with("Retried"), "{export:?}");
}

#[tokio::test]
async fn counts_above_the_cap_are_the_planners_estimate_once_the_table_is_analyzed() {
    let Some((fixture, url)) = postgres_scoped().await else {
        return;
    };
    let store = &*fixture.store;
    let many = 2 * COUNT_CAP as i64;
    let tasks: Vec<_> = (0..many + 3)
        .map(|k| {
            let route = if k < 3 { "few" } else { "many" };
            new_task(route, "product", &format!("SKU-{k}"), k)
        })
        .collect();
    for chunk in tasks.chunks(5_000) {
        store.insert_tasks(chunk).await.unwrap();
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("ANALYZE tasks")
        .execute(&mut conn)
        .await
        .unwrap();

    let all = store.estimate_counts(&TaskFilter::default()).await.unwrap();
    assert!(!all.exact, "{all:?}");
    let new = all.counts.get(Status::New) as f64;
    assert!(
        (new - (many + 3) as f64).abs() < 0.1 * many as f64,
        "the estimate is far off: {all:?}"
    );
    let few = store
        .estimate_counts(&TaskFilter {
            routes: vec!["few".into()],
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((few.counts.total(), few.exact), (3, true));
    let exact = store.count_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(exact.get(Status::New), (many + 3) as u64);
}

#[tokio::test]
async fn the_search_table_gets_a_row_per_inserted_task_and_loses_it_with_the_task() {
    let Some((fixture, url)) = postgres_scoped().await else {
        return;
    };
    let tasks: Vec<_> = (0..3)
        .map(|k| new_task("r", "product", &format!("SKU-{k}"), k))
        .collect();
    fixture.store.insert_tasks(&tasks).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    const SEARCHABLE: &str = "SELECT entity_identifier FROM task_search ORDER BY 1";
    let searchable: Vec<String> = sqlx::query_scalar(SEARCHABLE)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(searchable, ["SKU-0", "SKU-1", "SKU-2"]);
    sqlx::query("DELETE FROM tasks WHERE entity_identifier <> 'SKU-1'")
        .execute(&mut conn)
        .await
        .unwrap();
    let searchable: Vec<String> = sqlx::query_scalar(SEARCHABLE)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(searchable, ["SKU-1"]);
}

#[tokio::test]
async fn a_bulk_step_whose_lane_fails_counts_what_the_other_lane_changed() {
    let Some((fixture, url)) = postgres_scoped().await else {
        return;
    };
    let store = &*fixture.store;
    let tasks: Vec<_> = (0..6)
        .map(|k| new_task("r", "product", &format!("SKU-{k}"), k))
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    // The database refuses to skip SKU-2, as a failing disk or a constraint would.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'the disk is on fire'; END $$;
         CREATE TRIGGER refuse BEFORE UPDATE ON tasks FOR EACH ROW
             WHEN (OLD.entity_identifier = 'SKU-2' AND NEW.status = 'skipped')
             EXECUTE FUNCTION refuse()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let filter = TaskFilter::default();
    let request = request(Action::Skip, 1_000_000);
    let begun = store.begin_filter_action(&filter, &request).await.unwrap();
    // Steps of 4 run as two lanes of 2. A lane that meets SKU-2 fails; the other
    // lane's work is kept, and counted, until a step in which both meet it.
    let (mut changed, mut after, mut stopped) = (0, None, None);
    for _ in 0..10 {
        match store
            .step_filter_action(&filter, &request, begun.action_id, after.as_ref(), 4)
            .await
        {
            Ok(step) => {
                changed += step.changed;
                after = step.resume_after;
                if !step.more {
                    break;
                }
            }
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    let stopped = stopped.expect("the refused task stops the action");
    assert!(
        stopped.to_string().contains("the disk is on fire"),
        "{stopped}"
    );
    let counts = store.count_tasks(&filter).await.unwrap();
    assert_eq!(
        u64::from(changed),
        counts.get(Status::Skipped),
        "every task skipped is counted, once"
    );
    assert!(changed >= 2, "the first step's other lane skipped two");
    assert_eq!(counts.get(Status::New) + u64::from(changed), 6);
    let refused = &tasks[2].id;
    assert_eq!(
        store
            .get_task(refused)
            .await
            .unwrap()
            .unwrap()
            .summary
            .status,
        Status::New
    );
}

#[tokio::test]
async fn a_claim_holds_only_the_tasks_it_takes_so_a_bulk_skip_meanwhile_misses_none() {
    let Some((fixture, url)) = postgres_scoped().await else {
        return;
    };
    let store = fixture.store.clone();
    // New tasks and due retries alternate in creation order: N0 R1 N2 R3 N4 R5 N6 R7.
    let mut fresh = Vec::new();
    for k in 0..8 {
        let status = if k % 2 == 0 {
            Status::New
        } else {
            Status::Retry
        };
        let id = seed(&*store, "r", status, k * 1_000).await;
        if status == Status::New {
            fresh.push(id);
        }
    }
    // The claim stalls on the first task it changes, holding whatever it has locked.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF current_setting('ferry_test.stalled', true) IS DISTINCT FROM 'yes' THEN
                 PERFORM set_config('ferry_test.stalled', 'yes', true);
                 PERFORM pg_sleep(1);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER stall BEFORE UPDATE ON tasks FOR EACH ROW
             WHEN (NEW.status = 'processing') EXECUTE FUNCTION stall()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let claim = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .claim(&ClaimRequest {
                    route: "r",
                    limit: 4,
                    now: at(100_000),
                    lease: std::time::Duration::from_secs(60),
                    worker: "w1",
                })
                .await
        }
    });
    let stalled = "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar(stalled)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if n > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!claim.is_finished(), "the claim is stalled");

    // Meanwhile an operator skips every new task.
    let filter = TaskFilter {
        statuses: vec![Status::New],
        ..TaskFilter::default()
    };
    let skipped = store
        .act_on_filter(&filter, &request(Action::Skip, 1_000_000))
        .await
        .unwrap()
        .changed;
    let claimed = claim.await.unwrap().unwrap();

    assert_eq!(claimed.len(), 4, "the claim still takes its limit");
    let mut taken = 0;
    for id in &fresh {
        let status = store.get_task(id).await.unwrap().unwrap().summary.status;
        let was_claimed = claimed.iter().any(|t| &t.summary.id == id);
        match status {
            Status::Processing => assert!(was_claimed, "{id} processing unclaimed"),
            Status::Skipped => assert!(!was_claimed, "{id} claimed and skipped"),
            other => panic!("{id} is {other:?}: neither claimed nor skipped"),
        }
        taken += usize::from(was_claimed);
    }
    assert_eq!(
        skipped as usize + taken,
        fresh.len(),
        "each skip counted once"
    );
}

#[tokio::test]
async fn tasks_stored_before_their_keys_moved_stay_listed_searched_and_counted() {
    let Some((url, _guard)) = empty_schema().await else {
        return;
    };
    // A database as migrations 1 to 7 left it, holding three tasks.
    let mut conn = migrated_to(&url, 7).await;
    sqlx::raw_sql(
        "INSERT INTO tasks (id, route, entity_schema, entity_identifier, status, attempts, created_at, updated_at)
         VALUES ('01KAAAAAAAAAAAAAAAAAAAAAAA', 'shop', 'product', 'SKU-1', 'new', 0, 1000, 1000),
                ('01KBBBBBBBBBBBBBBBBBBBBBBB', 'shop', 'order', 'O''1\"x', 'failed', 1, 2000, 3000),
                ('01KCCCCCCCCCCCCCCCCCCCCCCC', 'erp', 'product', 'SKU-2', 'finished', 1, 3000, 4000);
         INSERT INTO task_entities (task_id, entity_data)
         SELECT id, '{}' FROM tasks;",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let store = PgStore::open(&url, PoolSettings::default()).await.unwrap();
    let ids = |filter: TaskFilter| {
        let store = &store;
        async move {
            let q = ferry_core::TaskQuery {
                filter,
                ..ferry_core::TaskQuery::default()
            };
            let page = store.list_tasks(&q).await.unwrap();
            page.items
                .iter()
                .map(|t| t.entity_identifier.clone())
                .collect::<Vec<_>>()
        }
    };
    let text = |value: &str, mode| {
        Some(ferry_core::filter::TextMatch {
            value: value.into(),
            mode,
        })
    };
    use ferry_core::filter::MatchMode::{Contains, Equals};
    assert_eq!(
        ids(TaskFilter::default()).await,
        ["SKU-2", "O'1\"x", "SKU-1"]
    );
    let shop = TaskFilter {
        routes: vec!["shop".into()],
        ..TaskFilter::default()
    };
    assert_eq!(ids(shop).await, ["O'1\"x", "SKU-1"]);
    let products = TaskFilter {
        entity_schema: text("product", Equals),
        ..TaskFilter::default()
    };
    assert_eq!(ids(products).await, ["SKU-2", "SKU-1"]);
    let quoted = TaskFilter {
        entity_identifier: text("'1\"", Contains),
        ..TaskFilter::default()
    };
    assert_eq!(ids(quoted).await, ["O'1\"x"]);
    let failed_order = TaskFilter {
        statuses: vec![Status::Failed],
        entity_identifier: text("O'1\"x", Equals),
        ..TaskFilter::default()
    };
    assert_eq!(ids(failed_order).await, ["O'1\"x"]);
    let by_id = TaskFilter {
        identifier: text("CCCCCC", Contains),
        ..TaskFilter::default()
    };
    assert_eq!(ids(by_id).await, ["SKU-2"]);
    let counts = store.count_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(counts.total(), 3);

    // Tasks inserted after the migration get their keys, and lose them when pruned.
    store
        .insert_tasks(&[new_task("erp", "stock", "ST-9", 5_000)])
        .await
        .unwrap();
    let stock = TaskFilter {
        entity_schema: text("stock", Equals),
        ..TaskFilter::default()
    };
    assert_eq!(ids(stock).await, ["ST-9"]);
    sqlx::query("DELETE FROM tasks WHERE entity_identifier = 'SKU-1'")
        .execute(&mut conn)
        .await
        .unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_search")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, 3);
}
