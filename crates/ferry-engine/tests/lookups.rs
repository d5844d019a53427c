//! `lookup`: an entity enriched from another system over a real loopback server, through
//! a connection (its rate limit applies), with the answer cached per request for a TTL,
//! and `fail` / `skip` / `keep` on a miss or an error.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use ferry_core::Status;
use ferry_engine::IngestError;
use serde_json::json;
use std::time::{Duration, Instant};

/// A CRM that knows customers 7 and 8, is down for 9, and answers `{"data": …}`.
async fn crm() -> Target {
    Target::start(|_, r| match r.path.as_str() {
        "/customers/7" => (
            StatusCode::OK,
            r#"{"data": {"name": "Zoë", "tier": "gold"}}"#.into(),
            Duration::ZERO,
        ),
        "/customers/8" => (
            StatusCode::OK,
            r#"{"data": {"name": "Ada", "tier": "silver"}}"#.into(),
            Duration::ZERO,
        ),
        "/customers/9" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "down".into(),
            Duration::ZERO,
        ),
        _ => (StatusCode::NOT_FOUND, "{}".into(), Duration::ZERO),
    })
    .await
}

fn config(url: &str, incoming_lookup: &str, outgoing_lookup: &str) -> String {
    format!(
        r#"
[[connections]]
id = "crm"
type = "http"
base_url = "{url}"
rate_limit = "20/s"

[[entity_schemas]]
id = "order"
identifier_path = ["id"]

[[incoming]]
id = "in"
entity_schema = "order"
subscriber = {{ type = "webhook" }}
transformers = [{incoming_lookup}]

[[outgoing]]
id = "out"
transformers = [{outgoing_lookup}]
publisher = {{ type = "file", path = "out.ndjson" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#
    )
}

const ENRICH: &str = r#"{ type = "lookup", connection = "crm", path = "/customers/{customer}", pick = ".data", into = ".customer", cache = "10m", on_miss = "keep", on_error = "fail" }"#;

#[tokio::test]
async fn an_entity_is_enriched_at_a_jq_path_and_repeated_requests_come_from_the_cache() {
    let t = crm().await;
    let h = Harness::new(&config(&t.url, ENRICH, "")).await;
    let orders: Vec<_> = (0..10)
        .map(|i| json!({"id": i, "customer": if i % 2 == 0 { 7 } else { 8 }}))
        .collect();
    let ids = h.push("in", orders).await;
    assert_eq!(ids.len(), 10);
    let first = h.task(&ids[0]).await;
    assert_eq!(
        first.entity_data,
        json!({"id": 0, "customer": {"name": "Zoë", "tier": "gold"}})
    );
    assert_eq!(
        h.task(&ids[1]).await.entity_data["customer"]["tier"],
        "silver"
    );
    assert_eq!(
        t.requests().len(),
        2,
        "one request per customer, the rest cached"
    );
    let log = h.import_log(&ids[2]).await.join("\n");
    assert!(
        log.contains("lookup (incoming[0].transformers[0]): GET ")
            && log.contains("/customers/7 (cached): merged at .customer"),
        "{log}"
    );

    // A customer the CRM does not know: on_miss = "keep".
    let kept = h.push("in", vec![json!({"id": 20, "customer": 1})]).await;
    assert_eq!(
        h.task(&kept[0]).await.entity_data,
        json!({"id": 20, "customer": 1})
    );
    // The CRM failing: on_error = "fail", so the webhook delivery is refused whole.
    let err = h
        .engine
        .ingest("in", vec![json!({"id": 21, "customer": 9})], "test")
        .await
        .unwrap_err();
    let IngestError::Rejected(rejected) = err else {
        panic!("{err:?}")
    };
    assert!(
        rejected[0]
            .message
            .contains("/customers/9 → 503 Service Unavailable"),
        "{rejected:?}"
    );
}

#[tokio::test]
async fn the_connections_rate_limit_paces_the_lookups() {
    let t = crm().await;
    // No cache: every entity asks; the connection allows 20 a second.
    let no_cache = ENRICH.replace(r#"cache = "10m", "#, "");
    let h = Harness::new(&config(&t.url, &no_cache, "")).await;
    let started = Instant::now();
    h.push(
        "in",
        (0..30).map(|i| json!({"id": i, "customer": 7})).collect(),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(t.requests().len(), 30);
    assert!(
        took >= Duration::from_millis(1_300),
        "30 requests at 20/s take about 1.5 s, not {took:?}"
    );
}

#[tokio::test]
async fn an_outgoing_lookup_that_misses_skips_or_fails_the_task() {
    let t = crm().await;
    let skip = r#"{ type = "lookup", connection = "crm", path = "/customers/{customer}", pick = ".data", into = ".customer", on_miss = "skip", on_error = "fail" }"#;
    let h = Harness::new(&config(&t.url, "", skip)).await;
    let ids = h
        .push(
            "in",
            vec![
                json!({"id": 1, "customer": 7}),
                json!({"id": 2, "customer": 404}),
                json!({"id": 3, "customer": 9}),
            ],
        )
        .await;
    h.engine.drain_route("r").await.unwrap();
    assert_eq!(h.task(&ids[0]).await.summary.status, Status::Finished);
    let written = std::fs::read_to_string(h.dir.path().join("out.ndjson")).unwrap();
    assert_eq!(
        written,
        "{\"id\":1,\"customer\":{\"name\":\"Zoë\",\"tier\":\"gold\"}}\n"
    );
    let missed = h.task(&ids[1]).await;
    assert_ne!(missed.summary.status, Status::Failed, "{missed:?}");
    let log = h.export_log(&ids[1]).await.join("\n");
    assert!(
        log.contains("/customers/404: not found; entity dropped"),
        "{log}"
    );
    let failed = h.task(&ids[2]).await;
    assert_eq!(failed.summary.status, Status::Failed);
    assert!(
        h.export_log(&ids[2]).await.join("\n").contains("503"),
        "the error is in the log"
    );
}

#[test]
fn a_lookup_with_bad_settings_is_refused_with_the_key() {
    let text = format!(
        "[storage]\nurl = \"sqlite::memory:\"\n{}",
        config(
            "http://127.0.0.1:9",
            r#"{ type = "lookup", connection = "nope", path = "/c/{customer}", into = ".a |", on_miss = "maybe" }"#,
            ""
        )
    );
    let err = ferry_core::config::load("ferry.toml", &text, std::iter::empty())
        .and_then(|c| {
            ferry_engine::Prepared::new(c, std::path::Path::new("."), "ferry.toml").map(|_| ())
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("incoming[0].transformers[0]"), "{err}");
    assert!(err.contains("maybe"), "{err}");
}
