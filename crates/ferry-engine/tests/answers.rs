//! What a target's answer means: `success_on` lists the answers that count as success,
//! `fail_on` the ones that end the task `failed` at once, whatever the retry policy.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use ferry_core::Status;
use std::time::Duration;

/// Three attempts a minute apart, as a route's `retry` line.
const RETRY: &str = r#"retry = { max_attempts = 3, interval = "1m" }"#;

/// The webhook `in` to the http `publisher` (its inline table) on route `r`, with
/// `route_extra` lines on the route.
fn route_to(publisher: &str, route_extra: &str) -> String {
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
publisher = {publisher}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
{route_extra}
"#
    )
}

#[tokio::test]
async fn success_on_and_fail_on_decide_before_the_retry_policy() {
    let t = Target::start(|_, r| {
        let status = match r.path.as_str() {
            "/p/P-1" => StatusCode::NOT_FOUND,
            "/p/P-2" => StatusCode::UNPROCESSABLE_ENTITY,
            "/p/P-3" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        };
        (status, "{}".into(), Duration::ZERO)
    })
    .await;
    let h = Harness::new(&route_to(
        &format!(r#"{{ type = "http", method = "DELETE", url = "{}/p/{{sku}}", success_on = [200, 204, 404], fail_on = [422] }}"#, t.url),
        RETRY,
    ))
    .await;
    let ids = h.push("in", common::products(4)).await;
    h.engine.drain_route("r").await.unwrap();
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(h.task(id).await.summary.status);
    }
    assert_eq!(
        statuses,
        [
            Status::Finished,
            Status::Failed,
            Status::Retry,
            Status::Finished
        ],
        "404 is success here, 422 is final, 503 is retried"
    );
    let log = h.export_log(&ids[1]).await.join("\n");
    assert!(log.contains("422"), "{log}");
}

#[test]
fn a_status_cannot_be_both_success_and_failure() {
    let text = r#"
[[entity_schemas]]
id = "product"
[[incoming]]
id = "in"
entity_schema = "product"
subscriber = { type = "webhook" }
[[outgoing]]
id = "out"
publisher = { type = "http", url = "http://127.0.0.1:9/p", success_on = [200, 409], fail_on = [409, 700] }
[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#;
    let config = ferry_core::config::load("ferry.toml", text, Vec::new()).unwrap();
    let e = ferry_engine::Prepared::new(config, std::path::Path::new(""), "ferry.toml")
        .err()
        .unwrap();
    let said: Vec<String> = e
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    assert!(
        said.iter()
            .any(|p| p.contains("fail_on: 700 is not an HTTP status code")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|p| p.contains("409 is in success_on too")),
        "{said:?}"
    );
}

#[tokio::test]
async fn header_values_take_placeholders_from_the_entity() {
    let t = Target::start(|_, _| (StatusCode::OK, "{}".into(), Duration::ZERO)).await;
    let h = Harness::new(&route_to(
        &format!(r#"{{ type = "http", url = "{}/p", headers = {{ x-sku = "sku {{sku}} at {{price}}", x-fixed = "f" }} }}"#, t.url),
        "",
    ))
    .await;
    let ids = h
        .push(
            "in",
            vec![
                serde_json::json!({"sku": "A-1", "price": 3}),
                serde_json::json!({"sku": "B-2"}),
            ],
        )
        .await;
    h.engine.drain_route("r").await.unwrap();
    let sent = t.requests();
    let header = |i: usize, name: &str| {
        sent[i]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header(0, "x-sku").as_deref(), Some("sku A-1 at 3"));
    assert_eq!(header(0, "x-fixed").as_deref(), Some("f"));
    assert_eq!(sent.len(), 1, "the entity without a price is not sent");
    let log = h.export_log(&ids[1]).await.join("\n");
    assert!(
        log.contains("header placeholder {price} has no value"),
        "{log}"
    );
}

#[tokio::test]
async fn the_idempotency_header_carries_the_task_identifier_the_same_on_every_attempt() {
    // The first answer is a 503: the task is retried, and the key goes again.
    let t = Target::start(|n, _| {
        let status = if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        (status, "{}".into(), Duration::ZERO)
    })
    .await;
    let h = Harness::new(&route_to(
        &format!(
            r#"{{ type = "http", url = "{}/p/{{sku}}", idempotency_header = "Idempotency-Key" }}"#,
            t.url
        ),
        RETRY,
    ))
    .await;
    let ids = h.push("in", common::products(1)).await;
    assert_eq!(h.engine.drain_route("r").await.unwrap().retry, 1);
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(h.engine.drain_route("r").await.unwrap().finished, 1);
    let keys: Vec<String> = t
        .requests()
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "idempotency-key")
                .map(|(_, v)| v.clone())
                .expect("a key on every attempt")
        })
        .collect();
    assert_eq!(keys, [ids[0].to_string(), ids[0].to_string()]);
    assert_eq!(h.task(&ids[0]).await.summary.attempts, 2);
}
