//! JSON Schema on entity schemas: on the incoming side an entity that does not match is
//! refused with each violation at its JSON path (nothing created); on the outgoing side
//! the task fails, at once, with the violations in its export messages.

mod common;

use common::{Harness, Target};
use ferry_core::Status;
use ferry_engine::IngestError;
use serde_json::json;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["sku", "price"],
  "properties": {
    "sku": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"},
    "price": {"type": "number", "exclusiveMinimum": 0},
    "variants": {"type": "array", "items": {"type": "object", "required": ["ean"]}}
  }
}"#;

fn config(validate: &str, url: &str, outgoing_jq: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]
json_schema = "schemas/product.json"
validate = "{validate}"

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}
transformers = [{{ type = "jq", filter = ".price |= (tonumber? // .)" }}]

[[outgoing]]
id = "out"
transformers = [{{ type = "jq", filter = '{outgoing_jq}' }}]
publisher = {{ type = "http", method = "PUT", url = "{url}/p/{{sku}}" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#
    )
}

async fn harness(config: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
    std::fs::write(dir.path().join("schemas/product.json"), SCHEMA).unwrap();
    Harness::with_dir(config, dir, "worker-a").await
}

#[tokio::test]
async fn an_entity_that_does_not_match_is_refused_with_each_violation_and_nothing_is_created() {
    let t = Target::ok().await;
    let h = harness(&config("incoming", &t.url, ".")).await;
    let err = h
        .engine
        .ingest(
            "in",
            vec![
                json!({"sku": "A-1", "price": "12.50"}),
                json!({"sku": "bad", "price": 0, "variants": [{"ean": "1"}, {}]}),
            ],
            "test",
        )
        .await
        .unwrap_err();
    let IngestError::Rejected(rejected) = err else {
        panic!("{err:?}")
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 1);
    let paths: Vec<&str> = rejected[0]
        .violations
        .iter()
        .map(|v| v.path.as_str())
        .collect();
    assert_eq!(paths, ["/sku", "/price", "/variants/1"], "{rejected:?}");
    assert!(
        rejected[0].message.starts_with(
            "the entity does not match the JSON Schema schemas/product.json (3 violations): at /sku: "
        ),
        "{}",
        rejected[0].message
    );
    assert_eq!(h.counts().await.total(), 0, "all or nothing");

    // The incoming transformer ran first: "12.50" became a number that matches.
    h.push("in", vec![json!({"sku": "A-1", "price": "12.50"})])
        .await;
    assert_eq!(h.counts().await.total(), 1);
}

#[tokio::test]
async fn a_payload_that_does_not_match_fails_its_task_at_once_with_the_violations_logged() {
    let t = Target::ok().await;
    // The outgoing jq drops the price: the payload no longer matches.
    let h = harness(&config("outgoing", &t.url, "{sku}")).await;
    let ids = h
        .push("in", vec![json!({"sku": "not valid", "price": -1})])
        .await;
    assert_eq!(
        ids.len(),
        1,
        "incoming is not checked with validate = outgoing"
    );
    h.engine.drain_route("r").await.unwrap();
    let task = h.task(&ids[0]).await;
    assert_eq!(
        task.summary.status,
        Status::Failed,
        "no retry: the payload is the same next time"
    );
    let log = h.export_log(&ids[0]).await.join("\n");
    assert!(
        log.contains("the payload does not match the JSON Schema schemas/product.json (2 violations): at /: \"price\" is a required property")
            && log.contains("at /sku: \"not valid\" does not match"),
        "{log}"
    );
    assert!(t.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn with_both_sides_a_matching_entity_goes_out() {
    let t = Target::ok().await;
    let h = harness(&config("both", &t.url, ".")).await;
    let ids = h.push("in", vec![json!({"sku": "B-2", "price": 3})]).await;
    assert_eq!(h.engine.drain_route("r").await.unwrap().finished, 1);
    assert_eq!(h.task(&ids[0]).await.summary.status, Status::Finished);
    assert_eq!(t.requests().len(), 1);
}
