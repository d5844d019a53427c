//! On PostgreSQL with more than 10,000 matching tasks, the Tasks page shows the
//! planner's estimate of the status counts, marked "≈", with a link that counts them
//! exactly; the counts API says which it answered. Needs PostgreSQL
//! (FERRY_TEST_POSTGRES_URL, default the local `test` database): without it the test
//! prints SKIPPED, under CI=true it fails.

mod common;

use common::Server;

const TASKS: usize = 12_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_ten_thousand_tasks_the_page_marks_estimated_counts_and_counts_exactly_on_demand() {
    let Some((mut admin, schema, url)) = common::postgres_schema("ferry_estimate").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    let config = format!(
        r#"
[storage]
url = "{url}"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "archive"
publisher = {{ type = "file", path = "out/products.ndjson" }}

[[routes]]
id = "nightly"
incoming = ["shop"]
outgoing = "archive"
"#
    );
    std::fs::write(&path, config).unwrap();
    let node = Server::start(&path).await;
    let http = node.http();
    let body: String = (0..TASKS)
        .map(|n| format!("{{\"sku\":\"P{n:05}\"}}\n"))
        .collect();
    let r = http
        .post(format!("{}/api/v1/webhooks/shop", node.base))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The statistics the estimate comes from (autovacuum would gather them in time).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {schema}.tasks")))
        .execute(&mut admin)
        .await
        .unwrap();

    let estimated = node.get("/api/v1/tasks/counts?count=estimate").await;
    assert_eq!(estimated["exact"], false, "{estimated}");
    let guess = estimated["by_status"]["new"].as_u64().unwrap();
    assert!(
        guess.abs_diff(TASKS as u64) < TASKS as u64 / 10,
        "the estimate is far off: {estimated}"
    );
    let exact = node.get("/api/v1/tasks/counts").await;
    assert_eq!(
        (&exact["exact"], &exact["total"]),
        (&true.into(), &TASKS.into())
    );

    let page = |path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", node.base);
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let html = page("/tasks").await;
    assert!(html.contains("All <strong>≈ "), "no marked estimate");
    assert!(
        html.contains(r#"href="/tasks?count=exact""#),
        "no link to count exactly"
    );
    assert!(
        !html.contains(r#"rel="last""#),
        "a last page offered on a guess"
    );
    let html = page("/tasks?count=exact").await;
    assert!(
        html.contains(&format!(
            "All <strong>{},{:03}</strong>",
            TASKS / 1000,
            TASKS % 1000
        )),
        "the exact count is missing, with its thousands separator"
    );
    assert!(!html.contains('≈') && html.contains(r#"rel="last""#));

    drop(node);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
