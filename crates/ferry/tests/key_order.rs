//! An entity keeps its keys in the order they came, as jq keeps them: from the webhook
//! through the store (SQLite and PostgreSQL), the task API, jq transformers and on to a
//! file and an HTTP target.

mod common;

use common::{Server, postgres_schema};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys in no alphabetical order, nested, with a number written as `12.50`.
const ENTITY: &str =
    r#"{"zeta":1,"sku":"K-1","alpha":{"mid":2,"beta":[3,{"y":1,"x":2}]},"price":12.50}"#;
/// What both targets receive: the entity as it came, and a key the jq transformer adds
/// at the end (`to_entries` and string building see the same order).
const SENT: &str = r#"{"zeta":1,"sku":"K-1","alpha":{"mid":2,"beta":[3,{"y":1,"x":2}]},"price":12.50,"keys":"zeta,sku,alpha,price"}"#;

fn config(storage: &str, dir: &std::path::Path, target: &str) -> String {
    format!(
        r#"
[storage]
url = "{storage}"

[workers]
poll_interval = "100ms"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "erp"
transformers = [{{ type = "jq", filter = '. + {{keys: (to_entries | map(.key) | join(","))}}' }}]
publisher = {{ type = "http", method = "PUT", url = "{target}/products/{{sku}}" }}

[[outgoing]]
id = "archive"
transformers = [{{ type = "jq", filter = '. + {{keys: (keys_unsorted | join(","))}}' }}]
publisher = {{ type = "file", path = "{out}" }}

[[routes]]
id = "to-erp"
incoming = ["shop"]
outgoing = "erp"
realtime = true

[[routes]]
id = "to-archive"
incoming = ["shop"]
outgoing = "archive"
realtime = true
"#,
        out = dir.join("archive.ndjson").display()
    )
}

/// A target that keeps each request body as the bytes it got.
async fn body_target() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/products/{sku}",
        axum::routing::put(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn keys_keep_their_order(storage: &str, dir: &std::path::Path) {
    let (target, seen) = body_target().await;
    let path = dir.join("ferry.toml");
    std::fs::write(&path, config(storage, dir, &target)).unwrap();
    let server = Server::start(&path).await;
    let http = server.http();
    let answer = http
        .post(format!("{}/api/v1/webhooks/shop", server.base))
        .header("Content-Type", "application/json")
        .body(ENTITY)
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );

    let archive = dir.join("archive.ndjson");
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().is_empty() || !archive.exists() {
        assert!(Instant::now() < deadline, "the targets received nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.lock().unwrap().as_slice(), [SENT]);
    let written = std::fs::read_to_string(&archive).unwrap();
    assert_eq!(written.trim_end(), SENT);

    // The task API shows the stored entity in its order, as text.
    let list = server.get("/api/v1/tasks?route=to-erp").await;
    let id = list["items"][0]["identifier"].as_str().unwrap().to_owned();
    let text = http
        .get(format!("{}/api/v1/tasks/{id}", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(ENTITY),
        "the task API reordered the entity: {text}"
    );
}

#[tokio::test]
async fn an_entity_keeps_its_key_order_from_webhook_to_targets_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("ferry.db").display());
    keys_keep_their_order(&storage, dir.path()).await;
}

#[tokio::test]
async fn an_entity_keeps_its_key_order_from_webhook_to_targets_on_postgres() {
    let Some((_admin, _schema, url)) = postgres_schema("ferry_key_order").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    keys_keep_their_order(&url, dir.path()).await;
}
