//! `only_changed`: a task whose outgoing payload is the one its route last published for
//! the entity (by another task) is skipped as unchanged; the digest is kept in the store.

mod common;

use common::{Harness, Target};
use ferry_core::Status;
use ferry_core::action::Action;
use ferry_store::ActionRequest;
use serde_json::json;

fn config(url: &str, outgoing_transformers: &str) -> String {
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
transformers = [{outgoing_transformers}]
publisher = {{ type = "http", method = "PUT", url = "{url}/p/{{sku}}" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#
    )
}

const CHAIN: &str = r#"{ type = "jq", filter = "{sku, price}" }, { type = "only_changed" }"#;

#[tokio::test]
async fn a_payload_already_published_for_the_entity_is_skipped_as_unchanged() {
    let t = Target::ok().await;
    let h = Harness::new(&config(&t.url, CHAIN)).await;
    let first = h
        .push(
            "in",
            vec![
                json!({"sku": "P-1", "price": 1}),
                json!({"sku": "P-2", "price": 2}),
            ],
        )
        .await;
    assert_eq!(h.engine.drain_route("r").await.unwrap().finished, 2);

    // P-1 again, the same once the outgoing jq drops what the target does not take;
    // P-2 with a new price; P-3 twice the same in one run.
    let second = h
        .push(
            "in",
            vec![
                json!({"sku": "P-1", "price": 1, "seen_at": "10:05"}),
                json!({"sku": "P-2", "price": 3}),
                json!({"sku": "P-3", "price": 5}),
                json!({"sku": "P-3", "price": 5}),
            ],
        )
        .await;
    let run = h.engine.drain_route("r").await.unwrap();
    assert_eq!((run.finished, run.skipped), (2, 2), "{run:?}");
    let paths: Vec<String> = t.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/p/P-1", "/p/P-2", "/p/P-2", "/p/P-3"]);
    assert_eq!(h.task(&second[0]).await.summary.status, Status::Skipped);
    let log = h.export_log(&second[0]).await.join("\n");
    assert!(
        log.contains(&format!("skipped: unchanged since task {}", first[0])),
        "{log}"
    );
    let log = h.export_log(&second[3]).await.join("\n");
    assert!(
        log.contains(&format!("unchanged since task {}", second[2])),
        "the same run's earlier task counts: {log}"
    );

    // An operator's retry of the task that published it sends it again.
    h.engine
        .store()
        .act_on_task(
            &first[0],
            &ActionRequest {
                action: Action::Retry,
                actor: "test".into(),
                origin: None,
                reason: Some("the ERP lost it".into()),
                at: h.clock.now(),
            },
        )
        .await
        .unwrap();
    assert_eq!(h.engine.drain_route("r").await.unwrap().finished, 1);
    assert_eq!(t.requests().len(), 5);
}

#[test]
fn only_changed_must_be_the_last_outgoing_transformer() {
    let text = config(
        "http://127.0.0.1:9",
        r#"{ type = "only_changed" }, { type = "jq", filter = "." }"#,
    );
    let e = ferry_core::config::load("ferry.toml", &text, Vec::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("make it the last of the outgoing transformers"),
        "{e}"
    );
}
