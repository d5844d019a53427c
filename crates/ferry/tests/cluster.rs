//! Several `ferry serve` nodes on one PostgreSQL database share a route's work; one is
//! killed mid-run; every task still ends `finished` exactly once and reaches the target.
//! Needs PostgreSQL (FERRY_TEST_POSTGRES_URL, default the local `test` database): without
//! it the test prints SKIPPED, under CI=true it fails.

mod common;

use common::{Server, sku_target};
use sqlx::Connection;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TASKS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_route_and_survive_losing_one() {
    let Some((mut admin, schema, url)) = common::postgres_schema("ferry_cluster").await else {
        return;
    };

    let (target_url, seen) = sku_target(Duration::from_millis(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[storage]
url = "{url}"
max_connections = 5

[workers]
lease = "2s"
poll_interval = "200ms"
concurrency = 2

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "erp"
publisher = {{ type = "http", method = "PUT", url = "{target_url}/products/{{sku}}" }}

[[routes]]
id = "live"
incoming = ["shop"]
outgoing = "erp"
realtime = true
batch_size = 50
"#
    );
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, config).unwrap();
    // Three nodes start together: the migrations are applied once.
    let (a, b, c) = tokio::join!(
        Server::start(&path),
        Server::start(&path),
        Server::start(&path)
    );
    let mut nodes = [a, b, c];

    // Entities arrive through every node.
    let http = nodes[0].http();
    for (i, chunk) in (0..TASKS).collect::<Vec<_>>().chunks(500).enumerate() {
        let body: String = chunk
            .iter()
            .map(|n| format!("{{\"sku\":\"P{n:05}\"}}\n"))
            .collect();
        let r = http
            .post(format!("{}/api/v1/webhooks/shop", nodes[i % 3].base))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < TASKS / 4 {
        assert!(Instant::now() < deadline, "the nodes deliver nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nodes[1].kill();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = nodes[0].get("/api/v1/tasks/counts").await;
        if counts["by_status"]["finished"] == TASKS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every task finished: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT task_id FROM task_attempts WHERE outcome = 'finished' GROUP BY task_id HAVING COUNT(*) <> 1) x",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(twice, 0, "a task finished more than once");
    let finished: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT task_id) FROM task_attempts WHERE outcome = 'finished'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(finished as usize, TASKS);
    let workers: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT substring(lines from '\"attempt [^\"]* by (ferry-[0-9]+-[A-Z0-9]+)')) FROM task_logs WHERE phase = 'export'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(workers, 3, "the three nodes shared the work");
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ferry_migrations")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let migration_files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ferry-store/migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(
        migrations as usize, migration_files,
        "every migration ran once"
    );

    let seen = seen.lock().unwrap().clone();
    let mut per_sku: HashMap<&str, usize> = HashMap::new();
    for sku in &seen {
        *per_sku.entry(sku).or_default() += 1;
    }
    assert_eq!(per_sku.len(), TASKS, "every product reached the target");
    let repeated = seen.len() - TASKS;
    println!(
        "{} deliveries for {TASKS} tasks; {repeated} repeated after the kill",
        seen.len()
    );
    assert!(repeated <= 100, "{repeated} deliveries repeated");
    drop(nodes);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
