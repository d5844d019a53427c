//! Requests in flight: up to `max_in_flight` tasks of a route go out at once, the tasks of
//! one entity one after the other in creation order; a connection's limit holds across
//! every route that uses it.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the target saw it: the entity, its version, when it arrived and
/// when it was answered.
#[derive(Clone, Debug)]
struct Seen {
    sku: String,
    version: u64,
    start: Instant,
    end: Instant,
}

/// A target that answers after a delay that varies from request to request (a fixed
/// pseudo-random sequence) and records each request's time span.
async fn target(seen: Arc<Mutex<Vec<Seen>>>) -> Target {
    Target::start(move |n, r| {
        let delay = Duration::from_millis(5 + (n as u64 * 7919) % 40);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        let now = Instant::now();
        seen.lock().unwrap().push(Seen {
            sku: body["sku"].as_str().unwrap_or("").to_owned(),
            version: body["version"].as_u64().unwrap_or(0),
            start: now,
            end: now + delay,
        });
        (StatusCode::OK, "{}".into(), delay)
    })
    .await
}

/// The most requests that were open at one moment.
fn peak(seen: &[Seen]) -> usize {
    seen.iter()
        .map(|a| {
            seen.iter()
                .filter(|b| b.start <= a.start && a.start < b.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn config(publishers: &str, routes: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}
{publishers}
{routes}
"#
    )
}

#[tokio::test]
async fn tasks_go_out_several_at_once_and_those_of_one_entity_in_creation_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let t = target(seen.clone()).await;
    let h = Harness::new(&config(
        &format!(
            "[[outgoing]]\nid = \"out\"\npublisher = {{ type = \"http\", url = \"{}/p/{{sku}}\", max_in_flight = 8 }}\n",
            t.url
        ),
        "[[routes]]\nid = \"r\"\nincoming = [\"in\"]\noutgoing = \"out\"\nbatch_size = 50\n",
    ))
    .await;
    // Three versions of 20 entities, pushed one version after the other.
    for version in 1..=3 {
        let entities = (1..=20)
            .map(|i| json!({"sku": format!("P-{i}"), "version": version}))
            .collect();
        h.push("in", entities).await;
    }
    let summary = h.engine.drain_route("r").await.unwrap();
    assert_eq!(summary.finished, 60, "{summary:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 60, "each task once");
    let at_once = peak(&seen);
    assert!(
        (2..=8).contains(&at_once),
        "up to 8 at once, and more than 1: {at_once}"
    );
    for i in 1..=20 {
        let sku = format!("P-{i}");
        let mine: Vec<&Seen> = seen.iter().filter(|s| s.sku == sku).collect();
        let versions: Vec<u64> = mine.iter().map(|s| s.version).collect();
        assert_eq!(versions, [1, 2, 3], "{sku} in creation order");
        for pair in mine.windows(2) {
            assert!(pair[1].start >= pair[0].end, "{sku}: never two at once");
        }
    }
}

#[tokio::test]
async fn a_connections_limit_holds_across_every_route_that_uses_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let t = target(seen.clone()).await;
    let h = Harness::new(&config(
        &format!(
            "[[connections]]\nid = \"erp\"\ntype = \"http\"\nbase_url = \"{}/\"\nmax_in_flight = 3\n\n[[outgoing]]\nid = \"a\"\npublisher = {{ type = \"http\", connection = \"erp\", path = \"a/{{sku}}\" }}\n\n[[outgoing]]\nid = \"b\"\npublisher = {{ type = \"http\", connection = \"erp\", path = \"b/{{sku}}\" }}\n",
            t.url
        ),
        "[[routes]]\nid = \"a\"\nincoming = [\"in\"]\noutgoing = \"a\"\n\n[[routes]]\nid = \"b\"\nincoming = [\"in\"]\noutgoing = \"b\"\n",
    ))
    .await;
    let entities = (1..=30)
        .map(|i| json!({"sku": format!("P-{i}"), "version": 1}))
        .collect();
    h.push("in", entities).await;
    let (a, b) = tokio::join!(h.engine.drain_route("a"), h.engine.drain_route("b"));
    assert_eq!(a.unwrap().finished + b.unwrap().finished, 60);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 60);
    let at_once = peak(&seen);
    assert!(
        (2..=3).contains(&at_once),
        "the connection allows 3 at once: {at_once}"
    );
}

#[test]
fn max_in_flight_belongs_to_the_connection_when_there_is_one() {
    let text = config(
        "[[connections]]\nid = \"erp\"\ntype = \"http\"\nbase_url = \"http://127.0.0.1:9/\"\n\n[[outgoing]]\nid = \"a\"\npublisher = { type = \"http\", connection = \"erp\", path = \"a\", max_in_flight = 4 }\n",
        "[[routes]]\nid = \"a\"\nincoming = [\"in\"]\noutgoing = \"a\"\n",
    );
    let config = ferry_core::config::load("ferry.toml", &text, Vec::new()).unwrap();
    let e = ferry_engine::Prepared::new(config, std::path::Path::new(""), "ferry.toml")
        .err()
        .unwrap();
    assert_eq!(e.problems[0].key, "outgoing[0].publisher.max_in_flight");
    assert!(
        e.problems[0].message.contains("[[connections]]"),
        "{}",
        e.problems[0].message
    );
}
