//! The conformance suite every connector kind runs, one per role, as the stores share
//! theirs. A subscriber yields each entity once per run and reports a bad item with
//! where it came from; a publisher sends each task once, a failing target ends the task
//! in `retry` or `failed` as the route's policy says, and no secret of the configuration
//! appears in a log line or an error. Adding a kind means adding its fixture here.
//! (Webhooks are pushed, not run: their suite is the web crate's webhook tests.)

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use ferry_core::Status;
use std::time::Duration;

const SECRET: &str = "s3cret-5a1d9e";

/// A subscriber fixture: the subscriber's inline table (and any `[[connections]]`),
/// set up so that one run reads three good entities (`A`, `B`, `C`) and one bad item.
struct SubscriberFixture {
    kind: &'static str,
    connections: String,
    subscriber: String,
    /// What the bad item's error must name (its file and line, its page and item).
    bad_origin: &'static str,
    _target: Option<Target>,
}

async fn subscriber_fixtures(dir: &std::path::Path) -> Vec<SubscriberFixture> {
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    std::fs::write(
        dir.join("inbox/a.ndjson"),
        "{\"sku\":\"A\"}\n{\"sku\":\"B\"}\n{oops\n{\"sku\":\"C\"}\n",
    )
    .unwrap();
    let api = Target::start(|_, r| {
        let authorised = r
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {SECRET}"));
        if authorised {
            let page = r#"{"data": [{"sku": "A"}, {"sku": "B"}, 42, {"sku": "C"}]}"#;
            (StatusCode::OK, page.into(), Duration::ZERO)
        } else {
            (StatusCode::UNAUTHORIZED, "{}".into(), Duration::ZERO)
        }
    })
    .await;
    vec![
        SubscriberFixture {
            kind: "file",
            connections: String::new(),
            subscriber: r#"{ type = "file", path = "inbox/*.ndjson" }"#.into(),
            bad_origin: "a.ndjson:3",
            _target: None,
        },
        SubscriberFixture {
            kind: "http",
            connections: format!(
                "[[connections]]\nid = \"api\"\ntype = \"http\"\nbase_url = \"{}/\"\nauth = {{ type = \"bearer\", token = \"${{env:API_TOKEN}}\" }}\n",
                api.url
            ),
            subscriber:
                r#"{ type = "http", connection = "api", path = "products", items = ".data[]" }"#
                    .into(),
            bad_origin: "(page 1) item 2",
            _target: Some(api),
        },
    ]
}

fn subscriber_config(f: &SubscriberFixture) -> String {
    format!(
        r#"
{connections}
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {subscriber}

[[outgoing]]
id = "out"
publisher = {{ type = "file", path = "out.ndjson" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#,
        connections = f.connections,
        subscriber = f.subscriber
    )
}

fn env() -> Vec<(String, String)> {
    vec![("API_TOKEN".to_owned(), SECRET.to_owned())]
}

#[tokio::test]
async fn every_subscriber_yields_each_entity_once_and_names_where_a_bad_item_came_from() {
    let setup = tempfile::tempdir().unwrap();
    for f in subscriber_fixtures(setup.path()).await {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&setup.path().join("inbox"), &dir.path().join("inbox"));
        let h = Harness::with_env(&subscriber_config(&f), dir, "w", env()).await;
        let run = h.engine.run_incoming("in").await.unwrap();
        assert_eq!(run.created, 3, "{}: {run:?}", f.kind);
        let tasks = h
            .engine
            .store()
            .list_tasks(&ferry_core::TaskQuery::default())
            .await
            .unwrap();
        let mut ids: Vec<&str> = tasks
            .items
            .iter()
            .map(|t| t.entity_identifier.as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, ["A", "B", "C"], "{}: each entity once", f.kind);
        assert_eq!(run.errors.len(), 1, "{}: {:?}", f.kind, run.errors);
        assert!(
            run.errors[0].contains(f.bad_origin),
            "{}: the error names where the item came from: {}",
            f.kind,
            run.errors[0]
        );
        for e in &run.errors {
            assert!(!e.contains(SECRET), "{}: the secret shows in {e}", f.kind);
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

// ------------------------------------------------------------------ publishers

/// A publisher fixture: the publisher's table for a target that takes everything, one
/// for a target that fails, and how to count what the good target received.
struct PublisherFixture {
    kind: &'static str,
    connections: String,
    good: String,
    failing: String,
    target: Option<Target>,
}

impl PublisherFixture {
    fn received(&self, dir: &std::path::Path) -> usize {
        match &self.target {
            Some(t) => t.requests().len(),
            None => std::fs::read_to_string(dir.join("out/good.ndjson"))
                .map(|t| t.lines().count())
                .unwrap_or(0),
        }
    }
}

async fn publisher_fixtures() -> Vec<PublisherFixture> {
    let good = Target::start(|_, r| {
        let keyed = r
            .headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == SECRET);
        let status = if keyed {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        (status, "{}".into(), Duration::ZERO)
    })
    .await;
    // A failing target that echoes the request's key in its answer: ferry must not
    // show it in the task's error.
    let failing = Target::start(|_, r| {
        let key = r
            .headers
            .iter()
            .find(|(k, _)| k == "x-api-key")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let body = format!("{{\"error\": \"maintenance\", \"key\": \"{key}\"}}");
        (StatusCode::SERVICE_UNAVAILABLE, body, Duration::ZERO)
    })
    .await;
    let connection = |id: &str, url: &str| {
        format!(
            "[[connections]]\nid = \"{id}\"\ntype = \"http\"\nbase_url = \"{url}/\"\nauth = {{ type = \"api_key\", header = \"X-Api-Key\", value = \"${{env:API_TOKEN}}\" }}\n"
        )
    };
    vec![
        PublisherFixture {
            kind: "file",
            connections: String::new(),
            good: r#"{ type = "file", path = "out/good.ndjson" }"#.into(),
            // A folder where the file should be: it cannot be opened for appending.
            failing: r#"{ type = "file", path = "out" }"#.into(),
            target: None,
        },
        PublisherFixture {
            kind: "http",
            connections: format!(
                "{}{}",
                connection("good", &good.url),
                connection("bad", &failing.url)
            ),
            good: r#"{ type = "http", connection = "good", path = "p/{sku}" }"#.into(),
            failing: r#"{ type = "http", connection = "bad", path = "p/{sku}" }"#.into(),
            target: Some(good),
        },
    ]
}

fn publisher_config(f: &PublisherFixture, retry: &str) -> String {
    format!(
        r#"
{connections}
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "good"
publisher = {good}

[[outgoing]]
id = "failing"
publisher = {failing}

[[routes]]
id = "good"
incoming = ["in"]
outgoing = "good"

[[routes]]
id = "failing"
incoming = ["in"]
outgoing = "failing"
retry = {retry}
"#,
        connections = f.connections,
        good = f.good,
        failing = f.failing,
    )
}

#[tokio::test]
async fn every_publisher_sends_each_task_once_and_fails_as_the_policy_says_without_showing_a_secret()
 {
    for f in publisher_fixtures().await {
        for (retry, expected) in [
            (r#"{ max_attempts = 3, interval = "1m" }"#, Status::Retry),
            (r#"{ enabled = false }"#, Status::Failed),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("out")).unwrap();
            let path = dir.path().to_path_buf();
            let before = f.received(&path);
            let h = Harness::with_env(&publisher_config(&f, retry), dir, "w", env()).await;
            let created = h.push("in", common::products(4)).await;
            let good = h.engine.drain_route("good").await.unwrap();
            assert_eq!(good.finished, 4, "{}: {good:?}", f.kind);
            assert_eq!(f.received(&path) - before, 4, "{}: each task once", f.kind);
            h.engine.drain_route("failing").await.unwrap();
            for id in &created {
                let task = h.task(id).await;
                if task.summary.route.as_str() != "failing" {
                    continue;
                }
                assert_eq!(task.summary.status, expected, "{} with {retry}", f.kind);
                let log = h.export_log(id).await.join("\n");
                assert!(log.contains("error"), "{}: {log}", f.kind);
                assert!(
                    !log.contains(SECRET),
                    "{}: the secret shows in {log}",
                    f.kind
                );
            }
        }
    }
}
