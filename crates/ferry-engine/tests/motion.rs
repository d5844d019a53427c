//! Routes that move by themselves: schedules, realtime runs, lease recovery, graceful
//! stop and retention. Schedules run on a clock the test moves; nothing sleeps to wait
//! for a fixed time.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target, eventually, products};
use ferry_core::{Status, TaskFilter};
use ferry_engine::runtime::Runtime;
use ferry_engine::{Fire, Side};
use ferry_store::ClaimRequest;
use std::time::Duration;

fn config(target: &str) -> String {
    format!(
        r#"
[workers]
poll_interval = "50ms"
lease = "3s"
concurrency = 2

[retention]
max_age = "30d"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[incoming]]
id = "inbox"
entity_schema = "product"
subscriber = {{ type = "file", path = "inbox/*.ndjson" }}

# One request at a time: these tests follow the batches in creation order across
# entities (requests in flight keep the order per entity only: see tests/in_flight.rs).
[[outgoing]]
id = "target"
publisher = {{ type = "http", url = "{target}/p/{{sku}}", max_in_flight = 1 }}

[[outgoing]]
id = "archive"
transformers = [{{ type = "filter", condition = ".price % 10 != 0" }}]
publisher = {{ type = "file", path = "out/archive.ndjson" }}

[[routes]]
id = "scheduled"
incoming = ["inbox"]
outgoing = "archive"
schedule = {{ incoming = "*/5 * * * *", outgoing = "* * * * *" }}

[[routes]]
id = "live"
incoming = ["in"]
outgoing = "target"
realtime = true
batch_size = 5

[[routes]]
id = "archive"
incoming = ["in"]
outgoing = "archive"
batch_size = 1000

[[routes]]
id = "parked"
incoming = ["in"]
outgoing = "archive"
disabled = true
"#
    )
}

fn fire(route: &str, side: Side) -> Fire {
    Fire {
        route: route.into(),
        side,
    }
}

#[tokio::test]
async fn a_schedule_fires_once_per_due_time_across_two_nodes() {
    let target = Target::ok().await;
    let text = config(&target.url);
    let a = Harness::new(&text).await;
    let b = a.second_node(&text, "worker-b").await;
    a.engine.sync_schedules().await.unwrap();
    b.sync_schedules().await.unwrap();

    // 10:00:00 — the next minute has not come.
    assert!(a.engine.due_runs().await.unwrap().is_empty());
    a.clock.advance(Duration::from_secs(30));
    assert!(b.due_runs().await.unwrap().is_empty());
    // 10:01:00 — due: the first node to look wins it, the other gets nothing.
    a.clock.advance(Duration::from_secs(30));
    assert_eq!(
        a.engine.due_runs().await.unwrap(),
        [fire("scheduled", Side::Outgoing)]
    );
    assert!(b.due_runs().await.unwrap().is_empty());
    // 10:05:00 — both sides are due; the other node wins this time.
    a.clock.advance(Duration::from_secs(240));
    let mut fires = b.due_runs().await.unwrap();
    fires.sort_by_key(|f| f.side == Side::Outgoing);
    assert_eq!(
        fires,
        [
            fire("scheduled", Side::Incoming),
            fire("scheduled", Side::Outgoing)
        ]
    );
    assert!(a.engine.due_runs().await.unwrap().is_empty());
    // After a long pause a schedule fires once, not once per missed minute.
    a.clock.advance(Duration::from_secs(3_600));
    assert_eq!(a.engine.due_runs().await.unwrap().len(), 2);
    assert!(a.engine.due_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_restart_keeps_the_schedule_without_firing_early() {
    let target = Target::ok().await;
    let a = Harness::new(&config(&target.url)).await;
    a.engine.sync_schedules().await.unwrap();
    a.clock.advance(Duration::from_secs(59));
    a.engine.sync_schedules().await.unwrap(); // a restart at 10:00:59
    assert!(a.engine.due_runs().await.unwrap().is_empty());
    a.clock.advance(Duration::from_secs(1));
    assert_eq!(a.engine.due_runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_realtime_route_processes_tasks_as_soon_as_they_exist() {
    let target = Target::ok().await;
    let h = Harness::new(&config(&target.url)).await;
    let runtime = Runtime::start(h.engine.clone()).await;
    h.push("in", products(12)).await;
    eventually(
        Duration::from_secs(20),
        "12 live tasks finished",
        || async {
            let f = ferry_core::TaskQuery::parse(
                [("route", "live"), ("status", "finished")],
                ferry_core::filter::Accept::All,
            )
            .unwrap();
            h.engine
                .store()
                .count_tasks(&f.filter)
                .await
                .unwrap()
                .total()
                == 12
        },
    )
    .await;
    runtime.shutdown().await;
    assert_eq!(target.requests().len(), 12);
    // The other routes are not realtime: their tasks wait for a trigger.
    let archive =
        ferry_core::TaskQuery::parse([("route", "archive")], ferry_core::filter::Accept::All)
            .unwrap();
    let c = h.engine.store().count_tasks(&archive.filter).await.unwrap();
    assert_eq!(c.get(Status::New), 12);
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_current_task_and_gives_the_rest_back() {
    let target =
        Target::start(|_, _| (StatusCode::OK, "{}".into(), Duration::from_millis(150))).await;
    let h = Harness::new(&config(&target.url)).await;
    h.push("in", products(20)).await;
    let runtime = Runtime::start(h.engine.clone()).await;
    eventually(Duration::from_secs(20), "two deliveries", || async {
        target.requests().len() >= 2
    })
    .await;
    runtime.shutdown().await;
    let live =
        ferry_core::TaskQuery::parse([("route", "live")], ferry_core::filter::Accept::All).unwrap();
    let c = h.engine.store().count_tasks(&live.filter).await.unwrap();
    assert_eq!(
        c.get(Status::Processing),
        0,
        "nothing is left processing: {c:?}"
    );
    assert_eq!(c.total(), 20, "no task is lost");
    assert_eq!(
        c.get(Status::Finished) as usize,
        target.requests().len(),
        "each delivery is recorded once: {c:?}"
    );
    assert!(c.get(Status::New) > 0, "the rest waits as new: {c:?}");
    // Given back tasks have their attempt undone.
    let waiting = ferry_core::TaskQuery::parse(
        [("route", "live"), ("status", "new")],
        ferry_core::filter::Accept::All,
    )
    .unwrap();
    let page = h.engine.store().list_tasks(&waiting).await.unwrap();
    assert!(page.items.iter().all(|t| t.attempts == 0));
}

#[tokio::test]
async fn draining_a_route_publishes_every_task_once_in_creation_order_batch_after_batch() {
    // 23 tasks in batches of 5: each next batch is claimed while the outcomes of the
    // one before are still being recorded.
    let target = Target::ok().await;
    let h = Harness::new(&config(&target.url)).await;
    h.push("in", products(23)).await;
    let s = h.engine.drain_route("live").await.unwrap();
    assert_eq!((s.claimed, s.finished, s.released), (23, 23, 0));
    assert_eq!(requested(&target), product_paths(1..=23));
    let live =
        ferry_core::TaskQuery::parse([("route", "live")], ferry_core::filter::Accept::All).unwrap();
    let c = h.engine.store().count_tasks(&live.filter).await.unwrap();
    assert_eq!((c.get(Status::Finished), c.total()), (23, 23));
    assert_eq!(h.engine.drain_route("live").await.unwrap().claimed, 0);
}

/// The paths the target was asked for, in order.
fn requested(target: &Target) -> Vec<String> {
    target.requests().into_iter().map(|r| r.path).collect()
}

/// The target paths of products P-`first` to P-`last`, in order.
fn product_paths(skus: std::ops::RangeInclusive<usize>) -> Vec<String> {
    skus.map(|i| format!("/p/P-{i}")).collect()
}

/// Checks each of the route's 23 tasks, P-`i`, against `want(i)`: (status, attempts).
async fn assert_tasks(h: &Harness, want: impl Fn(usize) -> (Status, u32)) {
    let tasks = by_sku(h).await;
    for i in 1..=23 {
        assert_eq!(tasks[&format!("P-{i}")], want(i), "P-{i}");
    }
}

/// Runs `sql` on the harness's database from a connection of its own.
async fn on_database(h: &Harness, sql: String) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", h.dir.path().join("ferry.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
}

/// Makes the harness's database refuse to give one task a status, as a failing disk or
/// a constraint would: a trigger aborts the statement that tries.
async fn refuse_status(h: &Harness, status: &str, sku: &str) {
    let sql = format!(
        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON tasks
         WHEN NEW.status = '{status}' AND OLD.entity_identifier = '{sku}'
         BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END"
    );
    on_database(h, sql).await;
}

/// The route's tasks by entity identifier: (status, attempts).
async fn by_sku(h: &Harness) -> std::collections::BTreeMap<String, (Status, u32)> {
    let live = ferry_core::TaskQuery::parse(
        [("route", "live"), ("per_page", "100")],
        ferry_core::filter::Accept::All,
    )
    .unwrap();
    let page = h.engine.store().list_tasks(&live).await.unwrap();
    page.items
        .into_iter()
        .map(|t| (t.entity_identifier, (t.status, t.attempts)))
        .collect()
}

#[tokio::test]
async fn a_drain_whose_outcomes_cannot_be_recorded_stops_and_gives_back_the_next_batch() {
    // Batch 2 (P-6 to P-10) answers slowly, so each outcome is recorded on its own.
    let target = Target::start(|n, _| {
        let delay = if (5..10).contains(&n) { 250 } else { 0 };
        (StatusCode::OK, "{}".into(), Duration::from_millis(delay))
    })
    .await;
    let h = Harness::new(&config(&target.url)).await;
    h.push("in", products(23)).await;
    refuse_status(&h, "finished", "P-8").await;
    let e = h.engine.drain_route("live").await.unwrap_err();
    assert!(e.to_string().contains("the disk is on fire"), "{e}");
    // Batch 1 and P-6, P-7 are done. P-8's outcome could not be stored, and P-9 was
    // published while that failed: both stay held until their lease ends. P-10, batch
    // 3 (claimed meanwhile) and the rest were never started and are given back.
    assert_eq!(
        requested(&target),
        product_paths(1..=9),
        "in order, each once"
    );
    assert_tasks(&h, |i| match i {
        1..=7 => (Status::Finished, 1),
        8 | 9 => (Status::Processing, 1),
        _ => (Status::New, 0),
    })
    .await;
    // Once the database takes writes again, the held tasks come back when their lease
    // ends, and everything goes out in creation order; only P-8 and P-9 go twice.
    on_database(&h, "DROP TRIGGER refuse".into()).await;
    h.clock.advance(Duration::from_secs(4));
    assert_eq!(h.engine.recover_expired().await.unwrap(), 2);
    let s = h.engine.drain_route("live").await.unwrap();
    assert_eq!((s.claimed, s.finished), (16, 16));
    assert!(
        by_sku(&h)
            .await
            .values()
            .all(|(s, _)| *s == Status::Finished)
    );
    assert_eq!(requested(&target)[9..], product_paths(8..=23));
}

#[tokio::test]
async fn a_drain_whose_next_claim_fails_records_the_batch_it_published_and_stops() {
    let target = Target::ok().await;
    let h = Harness::new(&config(&target.url)).await;
    h.push("in", products(23)).await;
    refuse_status(&h, "processing", "P-13").await;
    let e = h.engine.drain_route("live").await.unwrap_err();
    assert!(e.to_string().contains("the disk is on fire"), "{e}");
    assert_eq!(requested(&target), product_paths(1..=10));
    assert_tasks(&h, |i| match i {
        1..=10 => (Status::Finished, 1),
        _ => (Status::New, 0),
    })
    .await;
}

#[tokio::test]
async fn tasks_of_a_worker_that_died_are_recovered_when_its_lease_expires() {
    let target = Target::ok().await;
    let text = config(&target.url);
    let h = Harness::new(&text).await;
    h.push("in", products(7)).await;
    // A worker claims the batch and dies without a word.
    let claimed = h
        .engine
        .store()
        .claim(&ClaimRequest {
            route: "live",
            limit: 5,
            now: h.clock.now(),
            lease: Duration::from_secs(3),
            worker: "dead-worker",
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    let other = h.second_node(&text, "worker-b").await;
    // The lease still runs: nobody else takes those tasks.
    let s = other.drain_route("live").await.unwrap();
    assert_eq!(s.finished, 2);
    assert_eq!(other.recover_expired().await.unwrap(), 0);
    h.clock.advance(Duration::from_secs(4));
    assert_eq!(other.recover_expired().await.unwrap(), 5);
    let s = other.drain_route("live").await.unwrap();
    assert_eq!(s.finished, 5);
    assert_eq!(target.requests().len(), 7, "each task delivered once");
    let log = h.export_log(&claimed[0].summary.id).await;
    assert!(
        log[0].contains("lease of worker dead-worker expired"),
        "{log:?}"
    );
}

#[tokio::test]
async fn retention_prunes_thousands_of_old_final_tasks_and_nothing_else() {
    let target = Target::ok().await;
    let h = Harness::new(&config(&target.url)).await;
    for chunk in 0..3 {
        let batch: Vec<serde_json::Value> = (0..1_000)
            .map(|i| serde_json::json!({"sku": format!("S-{chunk}-{i}"), "price": i}))
            .collect();
        h.push("in", batch).await;
    }
    // archive: 2,700 finished, 300 skipped (price divisible by 10); live: 3,000 new,
    // some of them skipped by hand; parked: 3,000 new.
    let s = h.engine.drain_route("archive").await.unwrap();
    assert_eq!((s.finished, s.skipped), (2_700, 300));
    let filter = ferry_core::TaskQuery::parse(
        [("route", "live"), ("entity_identifier", "S-0-")],
        ferry_core::filter::Accept::All,
    )
    .unwrap()
    .filter;
    let skipped = h
        .engine
        .store()
        .act_on_filter(
            &filter,
            &ferry_store::ActionRequest {
                action: ferry_core::Action::Skip,
                actor: "test".into(),
                reason: None,
                at: h.clock.now(),
                origin: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(skipped.changed, 1_000);
    let before = h.counts().await;
    assert_eq!(before.total(), 9_000);

    // Within the age limit nothing goes.
    h.clock.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(h.engine.prune(500).await.unwrap(), 0);
    // Past it, every final task goes, in batches; new tasks stay.
    h.clock.advance(Duration::from_secs(2 * 86_400));
    let pruned = h.engine.prune(500).await.unwrap();
    assert_eq!(
        pruned, 4_000,
        "2,700 finished + 300 skipped + 1,000 skipped by hand"
    );
    let after = h.counts().await;
    assert_eq!(after.total(), 5_000);
    assert_eq!(after.get(Status::New), 5_000);
    assert_eq!(
        h.engine
            .store()
            .count_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .get(Status::Finished),
        0
    );
}

#[tokio::test]
async fn retention_by_count_keeps_the_newest_final_tasks() {
    let target = Target::ok().await;
    let text =
        config(&target.url).replace("max_age = \"30d\"", "max_age = \"30d\"\nmax_tasks = 150");
    let h = Harness::new(&text).await;
    for i in 0..2 {
        let batch: Vec<serde_json::Value> = (0..100)
            .map(|j| serde_json::json!({"sku": format!("S-{i}-{j}"), "price": 1}))
            .collect();
        h.push("in", batch).await;
        h.engine.drain_route("archive").await.unwrap();
        h.clock.advance(Duration::from_secs(60));
    }
    // 200 archive tasks finished, 200 live and 200 parked new: 600 in all, 150 allowed;
    // only the 200 finished can go.
    let pruned = h.engine.prune(64).await.unwrap();
    assert_eq!(pruned, 200);
    assert_eq!(h.counts().await.total(), 400);
}
