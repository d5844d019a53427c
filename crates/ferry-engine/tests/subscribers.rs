//! Subscribers ferry runs itself: files in a folder and an HTTP API with pages.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use ferry_engine::connectors::file::PROCESSED_DIR;
use std::time::Duration;

fn config(inbox_format: &str, url: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "inbox"
entity_schema = "product"
subscriber = {{ type = "file", path = "inbox/*.{inbox_format}", format = "{inbox_format}" }}
transformers = [{{ type = "filter", condition = ".active != \"no\"" }}]

[[incoming]]
id = "pim"
entity_schema = "product"
subscriber = {{ type = "http", url = "{url}/products?page=1", items = ".data[]", next = ".next", headers = {{ authorization = "Bearer t" }}, timeout = "2s" }}

[[incoming]]
id = "hook"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "out"
publisher = {{ type = "file", path = "out.ndjson" }}

[[routes]]
id = "from-files"
incoming = ["inbox"]
outgoing = "out"

[[routes]]
id = "from-pim"
incoming = ["pim"]
outgoing = "out"

[[routes]]
id = "also-from-pim"
incoming = ["pim", "hook"]
outgoing = "out"
"#
    )
}

fn write(h: &Harness, name: &str, text: &str) {
    let dir = h.dir.path().join("inbox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn ndjson_files_become_tasks_bad_lines_are_reported_and_files_move_aside() {
    let h = Harness::new(&config("ndjson", "http://127.0.0.1:9")).await;
    // The folder does not exist yet: a run finds nothing and says nothing is wrong.
    let empty = h.engine.run_incoming("inbox").await.unwrap();
    assert_eq!((empty.created, empty.errors.len()), (0, 0));

    write(
        &h,
        "a.ndjson",
        "{\"sku\":\"A\"}\n{\"sku\":\"B\",\"active\":\"no\"}\nnot json\n{\"sku\":\"C\"}\n",
    );
    write(&h, "b.ndjson", "{\"name\":\"no sku\"}\n{\"sku\":\"D\"}\n");
    write(&h, "ignored.txt", "{\"sku\":\"X\"}\n");
    let run = h.engine.run_incoming("inbox").await.unwrap();
    assert_eq!(run.created, 3, "A, C and D: {run:?}");
    assert_eq!(run.dropped, 1, "B is inactive");
    assert_eq!(run.errors.len(), 2, "{:?}", run.errors);
    assert!(
        run.errors[0].contains("a.ndjson:3") && run.errors[0].contains("not JSON"),
        "{:?}",
        run.errors
    );
    assert!(
        run.errors[1].contains("b.ndjson:1") && run.errors[1].contains("'sku'"),
        "{:?}",
        run.errors
    );
    assert_eq!(run.files.len(), 2);
    let processed = h.dir.path().join("inbox").join(PROCESSED_DIR);
    assert!(processed.join("a.ndjson").exists() && processed.join("b.ndjson").exists());
    assert!(h.dir.path().join("inbox/ignored.txt").exists());

    // Each file is read once.
    let again = h.engine.run_incoming("inbox").await.unwrap();
    assert_eq!((again.created, again.files.len()), (0, 0));
    assert_eq!(h.counts().await.total(), 3);

    // The import log says where the entity came from.
    let list = h
        .engine
        .store()
        .list_tasks(&ferry_core::TaskQuery::default())
        .await
        .unwrap();
    let d = list
        .items
        .iter()
        .find(|t| t.entity_identifier == "D")
        .unwrap();
    let log = h
        .engine
        .store()
        .messages(&d.id, ferry_core::Phase::Import)
        .await
        .unwrap()
        .unwrap();
    assert!(log[0].message.contains("b.ndjson:2"), "{:?}", log[0]);
}

#[tokio::test]
async fn csv_and_json_files_are_read_too() {
    let h = Harness::new(&config("csv", "http://127.0.0.1:9")).await;
    write(
        &h,
        "p.csv",
        "sku,name,active\nA,Kayak,yes\nB,Paddle,no\nC,Vest,yes\n",
    );
    let run = h.engine.run_incoming("inbox").await.unwrap();
    assert_eq!((run.created, run.dropped), (2, 1));

    let h = Harness::new(&config("json", "http://127.0.0.1:9")).await;
    write(&h, "p.json", r#"[{"sku": "A"}, {"sku": "B"}]"#);
    write(&h, "q.json", r#"{"sku": "C"}"#);
    let run = h.engine.run_incoming("inbox").await.unwrap();
    assert_eq!(run.created, 3);
}

#[tokio::test]
async fn an_http_subscriber_follows_the_next_page_and_creates_tasks_on_every_route() {
    let source = Target::start(|_, r| {
        let body = match r.path.as_str() {
            "/products?page=1" => {
                r#"{"data": [{"sku": "A"}, {"sku": "B"}], "next": "/products?page=2"}"#
            }
            "/products?page=2" => r#"{"data": [{"sku": "C"}], "next": null}"#,
            _ => return (StatusCode::NOT_FOUND, "{}".into(), Duration::ZERO),
        };
        (StatusCode::OK, body.into(), Duration::ZERO)
    })
    .await;
    let h = Harness::new(&config("ndjson", &source.url)).await;
    let run = h.engine.run_incoming("pim").await.unwrap();
    assert_eq!(run.created, 6, "3 products × 2 routes: {run:?}");
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let reqs = source.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[0]
            .headers
            .contains(&("authorization".into(), "Bearer t".into()))
    );
}

#[tokio::test]
async fn a_failing_page_is_reported_and_the_pages_before_it_are_kept() {
    let source = Target::start(|_, r| match r.path.as_str() {
        "/products?page=1" => (
            StatusCode::OK,
            r#"{"data": [{"sku": "A"}], "next": "/products?page=2"}"#.into(),
            Duration::ZERO,
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "upstream down".into(),
            Duration::ZERO,
        ),
    })
    .await;
    let h = Harness::new(&config("ndjson", &source.url)).await;
    let run = h.engine.run_incoming("pim").await.unwrap();
    assert_eq!(run.created, 2);
    assert_eq!(run.errors.len(), 1);
    assert!(
        run.errors[0].contains("502") && run.errors[0].contains("upstream down"),
        "{:?}",
        run.errors
    );
}

#[tokio::test]
async fn an_unreachable_source_is_an_error_in_the_result_not_a_failure_of_the_run() {
    let h = Harness::new(&config("ndjson", "http://127.0.0.1:9")).await;
    let run = h.engine.run_incoming("pim").await.unwrap();
    assert_eq!(run.created, 0);
    assert!(
        run.errors[0].contains("GET http://127.0.0.1:9/products?page=1"),
        "{:?}",
        run.errors
    );
    assert!(matches!(
        h.engine.run_incoming("hook").await,
        Err(ferry_engine::IncomingRunError::Webhook(_))
    ));
}

/// A source whose first page links `next` to `next` (an absolute URL).
async fn source_linking_to(next: &str) -> Target {
    let page = format!(r#"{{"data": [{{"sku": "A"}}], "next": "{next}"}}"#);
    Target::start(move |_, _| (StatusCode::OK, page.clone(), Duration::ZERO)).await
}

async fn elsewhere() -> Target {
    Target::start(|_, _| {
        (
            StatusCode::OK,
            r#"{"data": [{"sku": "X"}], "next": null}"#.into(),
            Duration::ZERO,
        )
    })
    .await
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_the_headers_stay_home() {
    let other = elsewhere().await;
    let next = format!("{}/products?page=2", other.url);
    let source = source_linking_to(&next).await;
    let h = Harness::new(&config("ndjson", &source.url)).await;
    let run = h.engine.run_incoming("pim").await.unwrap();
    assert_eq!(run.created, 2, "the first page is kept: {run:?}");
    assert_eq!(run.errors.len(), 1, "{:?}", run.errors);
    let e = &run.errors[0];
    assert!(
        e.contains(&next)
            && e.contains(&format!("({})", source.url))
            && e.contains(&other.url)
            && e.contains("follow_other_origins = true"),
        "{e}"
    );
    assert_eq!(other.requests().len(), 0, "nothing was sent there");
    assert_eq!(source.requests().len(), 1);
}

#[tokio::test]
async fn with_follow_other_origins_the_other_origin_is_fetched_without_the_headers() {
    let other = elsewhere().await;
    let source = source_linking_to(&format!("{}/products?page=2", other.url)).await;
    let text = config("ndjson", &source.url).replace(
        r#"timeout = "2s" }"#,
        r#"timeout = "2s", follow_other_origins = true }"#,
    );
    let h = Harness::new(&text).await;
    let run = h.engine.run_incoming("pim").await.unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.created, 4, "A and X on two routes");
    let there = other.requests();
    assert_eq!(there.len(), 1);
    assert!(
        !there[0].headers.iter().any(|(k, _)| k == "authorization"),
        "{:?}",
        there[0].headers
    );
    assert!(
        source.requests()[0]
            .headers
            .contains(&("authorization".into(), "Bearer t".into()))
    );
}

#[tokio::test]
async fn a_redirect_of_the_subscriber_to_another_origin_is_not_followed_with_the_headers() {
    let other = elsewhere().await;
    let location = format!("{}/products", other.url);
    let source = Target::start_with_headers(&[("location", location.as_str())], |_, _| {
        (StatusCode::FOUND, String::new(), Duration::ZERO)
    })
    .await;
    let h = Harness::new(&config("ndjson", &source.url)).await;
    let run = h.engine.run_incoming("pim").await.unwrap();
    assert_eq!(run.created, 0);
    assert!(
        run.errors[0].contains("302") && run.errors[0].contains(&location),
        "{:?}",
        run.errors
    );
    assert_eq!(other.requests().len(), 0);
}
