//! Route runs against a real HTTP target on loopback: success, failures, retries by
//! policy, timeouts, and transformers that run away.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target, products};
use ferry_core::Status;
use std::time::Duration;

fn config(target: &str) -> String {
    format!(
        r#"
[workers]
transform_timeout = "1s"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "target"
transformers = [{{ type = "jq", filter = "{{sku, price}}" }}]
publisher = {{ type = "http", method = "PUT", url = "{target}/products/{{sku}}", headers = {{ "x-api-key" = "k1" }}, timeout = "300ms" }}

[[outgoing]]
id = "runaway"
transformers = [{{ type = "jq", filter = "last(range(1e15))" }}]
publisher = {{ type = "file", path = "out.ndjson" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "target"
retry = {{ max_attempts = 3, interval = "1m", on_http_status = [429, 503], on_message = ["timeout"] }}

[[routes]]
id = "runaway"
incoming = ["in"]
outgoing = "runaway"
"#
    )
}

async fn harness(target: &Target) -> Harness {
    Harness::new(&config(&target.url)).await
}

/// Pushes entities and answers the identifiers of the tasks on route `r`.
async fn push(h: &Harness, n: usize) -> Vec<ferry_core::TaskId> {
    let created = h.push("in", products(n)).await;
    let mut on_r = Vec::new();
    for id in created {
        if h.task(&id).await.summary.route == "r" {
            on_r.push(id);
        }
    }
    on_r
}

#[tokio::test]
async fn a_2xx_finishes_the_task_with_the_request_the_configuration_describes() {
    let target = Target::ok().await;
    let h = harness(&target).await;
    let ids = push(&h, 2).await;
    let s = h.engine.run_route("r").await.unwrap();
    assert_eq!((s.claimed, s.finished), (2, 2));
    let reqs = target.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(reqs[0].path, "/products/P-1");
    assert!(reqs[0].headers.contains(&("x-api-key".into(), "k1".into())));
    assert!(
        reqs[0]
            .headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reqs[0].body).unwrap(),
        serde_json::json!({"sku": "P-1", "price": 1})
    );
    let t = h.task(&ids[0]).await;
    assert_eq!(t.summary.status, Status::Finished);
    assert!(
        h.export_log(&ids[0])
            .await
            .last()
            .unwrap()
            .contains("200 OK")
    );
}

#[tokio::test]
async fn a_4xx_fails_at_once_with_the_status_and_the_body_in_the_log() {
    let target = Target::start(|_, _| {
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"unknown sku"}"#.into(),
            Duration::ZERO,
        )
    })
    .await;
    let h = harness(&target).await;
    let ids = push(&h, 1).await;
    let s = h.engine.run_route("r").await.unwrap();
    assert_eq!(s.failed, 1);
    let t = h.task(&ids[0]).await;
    assert_eq!(t.summary.status, Status::Failed);
    let error = t.last_error.unwrap();
    assert!(
        error.contains("400 Bad Request") && error.contains("unknown sku"),
        "{error}"
    );
    let log = h.export_log(&ids[0]).await;
    assert!(log.last().unwrap().starts_with("error PUT"), "{log:?}");
}

#[tokio::test]
async fn a_503_is_retried_by_policy_until_the_attempts_run_out() {
    let target = Target::start(|_, _| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy".into(),
            Duration::ZERO,
        )
    })
    .await;
    let h = harness(&target).await;
    let id = push(&h, 1).await.remove(0);
    assert_eq!(h.engine.run_route("r").await.unwrap().retry, 1);
    let t = h.task(&id).await;
    assert_eq!((t.summary.status, t.summary.attempts), (Status::Retry, 1));
    assert_eq!(t.next_attempt_at, Some(h.clock.now().plus_millis(60_000)));
    // Not due yet: the next run leaves it alone.
    assert_eq!(h.engine.run_route("r").await.unwrap().claimed, 0);
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(h.engine.run_route("r").await.unwrap().retry, 1);
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(h.engine.run_route("r").await.unwrap().failed, 1);
    let t = h.task(&id).await;
    assert_eq!((t.summary.status, t.summary.attempts), (Status::Failed, 3));
    let attempts = h.engine.store().attempts(&id).await.unwrap();
    let outcomes: Vec<Status> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Status::Retry, Status::Retry, Status::Failed]);
    assert!(
        h.export_log(&id)
            .await
            .last()
            .unwrap()
            .contains("no retries left")
    );
    assert_eq!(target.requests().len(), 3);
}

#[tokio::test]
async fn a_flapping_target_finishes_on_the_retry() {
    let target = Target::start(|n, _| {
        if n == 0 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                "slow down".into(),
                Duration::ZERO,
            )
        } else {
            (StatusCode::CREATED, "{}".into(), Duration::ZERO)
        }
    })
    .await;
    let h = harness(&target).await;
    let id = push(&h, 1).await.remove(0);
    h.engine.run_route("r").await.unwrap();
    assert_eq!(h.task(&id).await.summary.status, Status::Retry);
    h.clock.advance(Duration::from_secs(60));
    let s = h.engine.run_route("r").await.unwrap();
    assert_eq!(s.finished, 1);
    let t = h.task(&id).await;
    assert_eq!(
        (t.summary.status, t.summary.attempts, t.last_error),
        (Status::Finished, 2, None)
    );
}

#[tokio::test]
async fn a_slow_target_times_out_and_the_timeout_qualifies_for_a_retry() {
    let target = Target::start(|_, _| (StatusCode::OK, "{}".into(), Duration::from_secs(2))).await;
    let h = harness(&target).await;
    let id = push(&h, 1).await.remove(0);
    h.engine.run_route("r").await.unwrap();
    let t = h.task(&id).await;
    assert_eq!(t.summary.status, Status::Retry);
    assert!(t.last_error.unwrap().contains("timeout"));
}

#[tokio::test]
async fn an_error_outside_the_retry_rules_fails_at_once() {
    let target = Target::start(|_, _| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "boom".into(),
            Duration::ZERO,
        )
    })
    .await;
    let h = harness(&target).await;
    let id = push(&h, 1).await.remove(0);
    h.engine.run_route("r").await.unwrap();
    assert_eq!(h.task(&id).await.summary.status, Status::Failed);
}

/// The runaway filter keeps a blocking thread busy after the task failed, so this test
/// owns its runtime and does not wait for that thread when it ends.
#[test]
fn a_runaway_transformer_fails_the_task_instead_of_hanging_the_worker() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(runaway());
    rt.shutdown_background();
}

async fn runaway() {
    let target = Target::ok().await;
    let h = harness(&target).await;
    h.push("in", products(1)).await;
    let s = tokio::time::timeout(Duration::from_secs(20), h.engine.run_route("runaway"))
        .await
        .expect("the run returns")
        .unwrap();
    assert_eq!(s.failed, 1);
    let list = h
        .engine
        .store()
        .list_tasks(
            &ferry_core::TaskQuery::parse([("route", "runaway")], ferry_core::filter::Accept::All)
                .unwrap(),
        )
        .await
        .unwrap();
    let t = h.task(&list.items[0].id).await;
    assert!(
        t.last_error.unwrap().contains("took longer than"),
        "time limit named"
    );
}

/// A delivery runs its transformers on one blocking thread; when one entity runs away,
/// it alone fails and the entities after it still become tasks, each once.
#[test]
fn a_runaway_entity_in_a_delivery_fails_alone_and_the_rest_go_on() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Harness::new(
            r#"
[workers]
transform_timeout = "300ms"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = { type = "file", path = "inbox/*.ndjson" }
transformers = [{ type = "jq", filter = "if .sku == \"P-2\" then last(range(1e15)) else . end" }]

[[outgoing]]
id = "out"
publisher = { type = "file", path = "out.ndjson" }

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#,
        )
        .await;
        let entities = ["P-1", "P-2", "P-3", "P-4"]
            .iter()
            .map(|sku| ferry_engine::connectors::Sourced {
                entity: serde_json::json!({ "sku": sku }),
                origin: format!("test {sku}"),
            })
            .collect();
        let started = std::time::Instant::now();
        let ingested = h
            .engine
            .ingest_sourced("in", entities, ferry_engine::Mode::Lenient)
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(ingested.created.len(), 3, "{ingested:?}");
        assert_eq!(ingested.rejected.len(), 1);
        assert_eq!(ingested.rejected[0].index, 1);
        assert!(ingested.rejected[0].message.contains("took longer than"));
        let mut skus = Vec::new();
        for id in &ingested.created {
            skus.push(
                h.task(id).await.entity_data["sku"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(skus, ["P-1", "P-3", "P-4"], "in delivery order");
    });
    rt.shutdown_background();
}

/// Tasks on route `r` for entities with these skus, in order.
async fn push_skus(h: &Harness, skus: &[&str]) -> Vec<ferry_core::TaskId> {
    let entities = skus
        .iter()
        .map(|sku| serde_json::json!({ "sku": sku, "price": 1 }))
        .collect();
    let mut on_r = Vec::new();
    for id in h.push("in", entities).await {
        if h.task(&id).await.summary.route == "r" {
            on_r.push(id);
        }
    }
    on_r
}

#[tokio::test]
async fn a_placeholder_reaches_the_target_as_one_encoded_path_segment() {
    let target = Target::ok().await;
    let h = harness(&target).await;
    let ids = push_skus(&h, &["A B", "A+B", "a/b", "..", "."]).await;
    h.engine.run_route("r").await.unwrap();
    let mut paths: Vec<String> = target.requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/products/A%20B", "/products/A%2BB", "/products/a%2Fb"],
        "each value one segment, the raw paths the server saw"
    );
    for id in &ids[..3] {
        assert_eq!(h.task(id).await.summary.status, Status::Finished);
    }
    // `%2E%2E` is a dot segment to URL parsers too, so a value of `.` or `..` would
    // still change the path: those tasks fail without a request.
    for id in &ids[3..] {
        let t = h.task(id).await;
        assert_eq!(t.summary.status, Status::Failed);
        let error = t.last_error.unwrap();
        assert!(
            error.contains("{sku}") && error.contains("change the path"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_publisher_answered_302_to_another_server_does_not_reach_it_and_the_task_fails() {
    let elsewhere = Target::ok().await;
    let location = format!("{}/stolen", elsewhere.url);
    let target = Target::start_with_headers(&[("location", location.as_str())], |_, _| {
        (StatusCode::FOUND, String::new(), Duration::ZERO)
    })
    .await;
    for (follow, says) in [
        (
            false,
            "redirects are not followed unless follow_redirects = true",
        ),
        (true, "on another origin"),
    ] {
        let text = config(&target.url).replace(
            r#"timeout = "300ms" }"#,
            &format!(r#"timeout = "300ms", follow_redirects = {follow} }}"#),
        );
        let h = Harness::new(&text).await;
        let id = push(&h, 1).await.remove(0);
        let s = h.engine.run_route("r").await.unwrap();
        assert_eq!(
            (s.finished, s.failed),
            (0, 1),
            "follow_redirects = {follow}"
        );
        let t = h.task(&id).await;
        assert_eq!(t.summary.status, Status::Failed);
        let error = t.last_error.unwrap();
        assert!(
            error.contains("302") && error.contains(&location) && error.contains(says),
            "{error}"
        );
    }
    assert_eq!(target.requests().len(), 2);
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "the other server saw nothing"
    );
}

#[tokio::test]
async fn with_follow_redirects_a_publisher_follows_a_redirect_within_its_origin() {
    let target = Target::start_with_headers(&[("location", "/moved/P-1")], |_, r| {
        if r.path.starts_with("/products/") {
            (
                StatusCode::TEMPORARY_REDIRECT,
                String::new(),
                Duration::ZERO,
            )
        } else {
            (StatusCode::OK, "{}".into(), Duration::ZERO)
        }
    })
    .await;
    let text = config(&target.url).replace(
        r#"timeout = "300ms" }"#,
        r#"timeout = "300ms", follow_redirects = true }"#,
    );
    let h = Harness::new(&text).await;
    let id = push(&h, 1).await.remove(0);
    assert_eq!(h.engine.run_route("r").await.unwrap().finished, 1);
    assert_eq!(h.task(&id).await.summary.status, Status::Finished);
    let reqs = target.requests();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(seen, [("PUT", "/products/P-1"), ("PUT", "/moved/P-1")]);
    assert!(reqs[1].headers.contains(&("x-api-key".into(), "k1".into())));
    assert!(reqs[1].body.contains("P-1"));
}
