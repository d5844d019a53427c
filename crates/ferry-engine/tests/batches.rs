//! Batches: an http publisher with `batch = { size, body, results }` carries up to `size`
//! tasks in one request, never two of one entity; the answer's outcome applies to every
//! task in it, or, with `results`, item *i*'s to task *i*.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use ferry_core::Status;
use serde_json::{Value, json};
use std::time::Duration;

fn config(url: &str, batch: &str, extra: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "out"
publisher = {{ type = "http", method = "POST", url = "{url}/products/bulk", max_in_flight = 1,
              batch = {batch}{extra} }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
retry = {{ max_attempts = 3, interval = "1m", on_http_status = [500, 503] }}
"#
    )
}

/// The entities a batch request carried, from a body `{"products": [...]}`.
fn carried(body: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(body).unwrap();
    v["products"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_batch_carries_up_to_size_tasks_and_the_answer_applies_to_every_one() {
    let t = Target::start(|n, _| {
        let status = if n == 1 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        (status, "{}".into(), Duration::ZERO)
    })
    .await;
    let h = Harness::new(&config(
        &t.url,
        r#"{ size = 10, body = "{products: map({sku, price})}" }"#,
        r#", idempotency_header = "Idempotency-Key""#,
    ))
    .await;
    let ids = h.push("in", common::products(25)).await;
    let summary = h.engine.drain_route("r").await.unwrap();
    assert_eq!((summary.finished, summary.retry), (15, 10), "{summary:?}");

    let sent = t.requests();
    let sizes: Vec<usize> = sent.iter().map(|r| carried(&r.body).len()).collect();
    assert_eq!(sizes, [10, 10, 5], "three requests for 25 tasks");
    assert_eq!(
        carried(&sent[0].body)[0],
        json!({"sku": "P-1", "price": 1}),
        "batch.body over the array of entities"
    );
    let keys: Vec<&str> = sent
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "idempotency-key")
                .map(|(_, v)| v.as_str())
                .expect("a key on every batch request")
        })
        .collect();
    assert!(
        keys[0].starts_with("batch-10-") && keys[0] != keys[1],
        "{keys:?}"
    );

    // The second request's 503 applies to each of its ten tasks.
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(h.task(id).await.summary.status);
    }
    assert!(statuses[..10].iter().all(|s| *s == Status::Finished));
    assert!(statuses[10..20].iter().all(|s| *s == Status::Retry));
    let log = h.export_log(&ids[0]).await.join("\n");
    assert!(log.contains("(a batch of 10)"), "{log}");
    let log = h.export_log(&ids[12]).await.join("\n");
    assert!(log.contains("503"), "{log}");

    // Retried, the same ten tasks go again with the same key.
    h.clock.advance(Duration::from_secs(61));
    let again = h.engine.drain_route("r").await.unwrap();
    assert_eq!(again.finished, 10, "{again:?}");
    let retried = t.requests().last().cloned().unwrap();
    let key = retried
        .headers
        .iter()
        .find(|(k, _)| k == "idempotency-key")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(key, keys[1], "the same tasks, the same key");
}

#[tokio::test]
async fn with_results_each_item_decides_its_own_task_and_keeps_its_response() {
    // Answers an item per product: 422 for an odd price of 3 or more, an error for
    // price 4, a 503 for price 6, else 201 with the id it gave.
    let t = Target::start(|_, r| {
        let items: Vec<Value> = carried(&r.body)
            .iter()
            .map(|p| match p["price"].as_u64().unwrap_or(0) {
                4 => json!({"error": "price 4 is not allowed"}),
                6 => json!({"status": 503, "error": "busy"}),
                n if n >= 3 && n % 2 == 1 => json!({"status": 422, "error": "rejected"}),
                _ => json!({"status": 201, "id": format!("E-{}", p["sku"].as_str().unwrap())}),
            })
            .collect();
        (
            StatusCode::OK,
            json!({"data": {"results": items}}).to_string(),
            Duration::ZERO,
        )
    })
    .await;
    let h = Harness::new(&config(
        &t.url,
        r#"{ size = 50, body = "{products: .}", results = ".data.results" }"#,
        r#", response = ".id", fail_on = [422]"#,
    ))
    .await;
    let ids = h.push("in", common::products(6)).await;
    let summary = h.engine.drain_route("r").await.unwrap();
    assert_eq!(t.requests().len(), 1, "one request for six tasks");
    assert_eq!(
        (summary.finished, summary.failed, summary.retry),
        (2, 3, 1),
        "{summary:?}"
    );
    let mut seen = Vec::new();
    for id in &ids {
        let task = h.task(id).await;
        seen.push((task.summary.status, task.response));
    }
    assert_eq!(seen[0], (Status::Finished, Some(json!("E-P-1"))));
    assert_eq!(seen[1], (Status::Finished, Some(json!("E-P-2"))));
    assert_eq!(seen[2], (Status::Failed, None), "422 is in fail_on");
    assert_eq!(seen[3].0, Status::Failed, "an error without a status");
    assert_eq!(seen[4].0, Status::Failed);
    assert_eq!(
        seen[5].0,
        Status::Retry,
        "503 is in the route's retry statuses"
    );
    let log = h.export_log(&ids[3]).await.join("\n");
    assert!(
        log.contains("item 4 of 6 failed: price 4 is not allowed"),
        "{log}"
    );
    let log = h.export_log(&ids[2]).await.join("\n");
    assert!(
        log.contains("item 3 of 6 failed with status 422: rejected"),
        "{log}"
    );
}

#[tokio::test]
async fn a_batch_answer_with_too_few_results_fails_the_tasks_it_says_nothing_of() {
    let t = Target::start(|_, _| {
        (
            StatusCode::OK,
            json!({"results": [{"status": 200}, {"status": 200}]}).to_string(),
            Duration::ZERO,
        )
    })
    .await;
    let h = Harness::new(&config(
        &t.url,
        r#"{ size = 10, body = "{products: .}", results = ".results" }"#,
        "",
    ))
    .await;
    let ids = h.push("in", common::products(3)).await;
    let summary = h.engine.drain_route("r").await.unwrap();
    assert_eq!((summary.finished, summary.failed), (2, 1), "{summary:?}");
    let log = h.export_log(&ids[2]).await.join("\n");
    assert!(
        log.contains("its results held 2 items for the 3 tasks of the request; item 3 is missing"),
        "{log}"
    );
}

#[tokio::test]
async fn two_versions_of_one_entity_never_share_a_batch_and_go_in_creation_order() {
    let t = Target::ok().await;
    let h = Harness::new(&config(
        &t.url,
        r#"{ size = 10, body = "{products: .}" }"#,
        "",
    ))
    .await;
    for version in 1..=3 {
        let entities = (1..=4)
            .map(|i| json!({"sku": format!("P-{i}"), "version": version}))
            .collect();
        h.push("in", entities).await;
    }
    assert_eq!(h.engine.drain_route("r").await.unwrap().finished, 12);
    let batches: Vec<Vec<(String, u64)>> = t
        .requests()
        .iter()
        .map(|r| {
            carried(&r.body)
                .iter()
                .map(|p| {
                    (
                        p["sku"].as_str().unwrap().to_owned(),
                        p["version"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(batches.len(), 3, "{batches:?}");
    for (i, batch) in batches.iter().enumerate() {
        assert_eq!(batch.len(), 4, "one version of each entity: {batches:?}");
        assert!(
            batch.iter().all(|(_, v)| *v == i as u64 + 1),
            "version {} in request {}: {batches:?}",
            i + 1,
            i + 1
        );
    }
}

#[test]
fn a_batch_cannot_send_to_a_url_with_placeholders_or_of_size_zero() {
    let text = config("http://127.0.0.1:9", r#"{ size = 0, results = ".[" }"#, "")
        .replace("/products/bulk", "/products/{sku}");
    let config = ferry_core::config::load("ferry.toml", &text, Vec::new()).unwrap();
    let e = ferry_engine::Prepared::new(config, std::path::Path::new(""), "ferry.toml")
        .err()
        .unwrap();
    let said: Vec<String> = e
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    let has = |needle: &str| said.iter().any(|p| p.contains(needle));
    assert!(
        has("publisher.batch.size: 0 tasks a request is out of range"),
        "{said:?}"
    );
    assert!(has("cannot take {field} placeholders"), "{said:?}");
    assert!(has("publisher.batch.results"), "{said:?}");
}
