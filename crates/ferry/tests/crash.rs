//! A node killed mid-run: another node on the same database recovers its tasks when
//! their leases expire, and every task ends `finished` exactly once.

mod common;

use common::{Server, sku_target, write_config};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn config(target: &str) -> String {
    format!(
        r#"
[workers]
lease = "2s"
poll_interval = "100ms"
concurrency = 1

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "erp"
publisher = {{ type = "http", method = "PUT", url = "{target}/products/{{sku}}" }}

[[routes]]
id = "live"
incoming = ["shop"]
outgoing = "erp"
realtime = true
batch_size = 100
"#
    )
}

const TASKS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_ends_finished_exactly_once_when_a_node_is_killed_mid_run() {
    let (url, seen) = sku_target(Duration::from_millis(15)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config(&url));
    let mut first = Server::start(&path).await;

    let products: Vec<serde_json::Value> = (0..TASKS)
        .map(|i| serde_json::json!({"sku": format!("P{i:04}")}))
        .collect();
    let r = first
        .http()
        .post(format!("{}/api/v1/webhooks/shop", first.base))
        .json(&products)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Let the first node get well into its work, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 120 {
        assert!(Instant::now() < deadline, "the first node delivers nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    let at_kill = seen.lock().unwrap().len();

    // A second node takes over once the dead node's leases expire.
    let second = Server::start(&path).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = second.get("/api/v1/tasks/counts").await;
        if counts["by_status"]["finished"] == TASKS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every task finished: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every task: finished, with exactly one finished attempt.
    let mut finished_attempts = 0;
    for page in 1..=(TASKS / 500 + 1) {
        let list = second
            .get(&format!("/api/v1/tasks?per_page=500&page={page}"))
            .await;
        for t in list["items"].as_array().unwrap() {
            assert_eq!(t["status"], "finished");
            let id = t["identifier"].as_str().unwrap();
            let history = second.get(&format!("/api/v1/tasks/{id}/history")).await;
            let done = history["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["outcome"] == "finished")
                .count();
            assert_eq!(done, 1, "task {id}: {history}");
            finished_attempts += done;
        }
    }
    assert_eq!(finished_attempts, TASKS);

    // The outside system got every product; a delivery repeats only when the dead node
    // sent it but died before recording it (outcomes are recorded every 50 tasks or
    // 200 ms, whichever comes first).
    let seen = seen.lock().unwrap().clone();
    let mut per_sku: HashMap<&str, usize> = HashMap::new();
    for sku in &seen {
        *per_sku.entry(sku).or_default() += 1;
    }
    assert_eq!(per_sku.len(), TASKS, "every product reached the target");
    let repeated = seen.len() - TASKS;
    println!(
        "killed after {at_kill} deliveries; {} deliveries in all, {repeated} repeated",
        seen.len()
    );
    assert!(repeated <= 50, "{repeated} deliveries repeated");
}
