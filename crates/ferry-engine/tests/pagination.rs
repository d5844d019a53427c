//! An http subscriber reads an API as it pages: by page number, by offset, by the
//! `Link` header, by a next URL; and with `since`, a run that fails part-way keeps the
//! pages before the failure and does not move the mark.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use std::collections::HashMap;
use std::time::Duration;

/// Seven products `P-1`…`P-7`.
const ALL: usize = 7;

fn query(path: &str) -> HashMap<String, String> {
    let q = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn items(from: usize, n: usize) -> String {
    let items: Vec<String> = (from..(from + n).min(ALL))
        .map(|i| format!("{{\"sku\": \"P-{}\", \"v\": {}}}", i + 1, i + 1))
        .collect();
    format!("[{}]", items.join(","))
}

fn config(subscriber: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "api"
entity_schema = "product"
subscriber = {subscriber}

[[outgoing]]
id = "out"
publisher = {{ type = "file", path = "out.ndjson" }}

[[routes]]
id = "r"
incoming = ["api"]
outgoing = "out"
"#
    )
}

async fn run(target: &Target, subscriber: &str) -> (ferry_engine::IncomingRun, Harness) {
    let h = Harness::new(&config(&subscriber.replace("{url}", &target.url))).await;
    let run = h.engine.run_incoming("api").await.unwrap();
    (run, h)
}

#[tokio::test]
async fn page_numbers_are_followed_until_an_empty_page() {
    let target = Target::start(|_, r| {
        let page: usize = query(&r.path)["p"].parse().unwrap();
        (
            StatusCode::OK,
            format!("{{\"items\": {}}}", items((page - 1) * 3, 3)),
            Duration::ZERO,
        )
    })
    .await;
    let (run, _h) = run(
        &target,
        r#"{ type = "http", url = "{url}/products", items = ".items[]", pagination = { type = "page", param = "p" } }"#,
    )
    .await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.created, ALL as u64);
    let pages: Vec<String> = target
        .requests()
        .iter()
        .map(|r| query(&r.path)["p"].clone())
        .collect();
    assert_eq!(
        pages,
        ["1", "2", "3", "4"],
        "the fourth page is empty and ends the run"
    );
}

#[tokio::test]
async fn offsets_advance_by_the_items_read_until_a_short_page() {
    let target = Target::start(|_, r| {
        let q = query(&r.path);
        let (offset, limit) = (q["start"].parse().unwrap(), q["count"].parse().unwrap());
        (StatusCode::OK, items(offset, limit), Duration::ZERO)
    })
    .await;
    let (run, _h) = run(
        &target,
        r#"{ type = "http", url = "{url}/products?lang=en", pagination = { type = "offset", param = "start", limit_param = "count", limit = 3 } }"#,
    )
    .await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.created, ALL as u64);
    let offsets: Vec<String> = target
        .requests()
        .iter()
        .map(|r| query(&r.path)["start"].clone())
        .collect();
    assert_eq!(offsets, ["0", "3", "6"]);
    assert!(
        target
            .requests()
            .iter()
            .all(|r| query(&r.path)["lang"] == "en"),
        "the configured query stays"
    );
}

#[tokio::test]
async fn the_link_header_leads_to_the_next_page() {
    // A server of its own: each page sets its own Link header.
    let pages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = pages.clone();
    let app = axum::Router::new().route(
        "/products",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| {
                let seen = seen.clone();
                async move {
                    let n: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
                    seen.lock().unwrap().push(n.to_string());
                    let mut headers = axum::http::HeaderMap::new();
                    if n + 3 < ALL {
                        let link = format!(
                            "</products?cursor={}>; rel=\"next\", </products>; rel=\"first\"",
                            n + 3
                        );
                        headers.insert("link", link.parse().unwrap());
                    }
                    (headers, items(n, 3))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let h = Harness::new(&config(&format!(
        r#"{{ type = "http", url = "{url}/products", pagination = {{ type = "link_header" }} }}"#
    )))
    .await;
    let run = h.engine.run_incoming("api").await.unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.created, ALL as u64);
    assert_eq!(*pages.lock().unwrap(), ["0", "3", "6"]);
}

#[tokio::test]
async fn a_next_url_from_pagination_works_like_the_plain_next_key() {
    let target = Target::start(|n, _| {
        let next = if n < 2 {
            format!("\"/products?page={}\"", n + 2)
        } else {
            "null".into()
        };
        (
            StatusCode::OK,
            format!("{{\"data\": {}, \"next\": {next}}}", items(n * 3, 3)),
            Duration::ZERO,
        )
    })
    .await;
    let (run, _h) = run(
        &target,
        r#"{ type = "http", url = "{url}/products", items = ".data[]", pagination = { type = "next", next = ".next" } }"#,
    )
    .await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.created, ALL as u64);
}

#[tokio::test]
async fn a_run_that_fails_part_way_keeps_its_pages_and_does_not_move_since() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failing = fail.clone();
    let target = Target::start(move |_, r| {
        let q = query(&r.path);
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let since: usize = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
        if page == 2 && failing.load(std::sync::atomic::Ordering::SeqCst) {
            return (StatusCode::BAD_GATEWAY, "{}".into(), Duration::ZERO);
        }
        let all: Vec<String> = (since..ALL)
            .map(|i| format!("{{\"sku\": \"P-{}\", \"v\": {}}}", i + 1, i + 1))
            .collect();
        let page_items: Vec<String> = all.iter().skip((page - 1) * 3).take(3).cloned().collect();
        (
            StatusCode::OK,
            format!("[{}]", page_items.join(",")),
            Duration::ZERO,
        )
    })
    .await;
    let (run, h) = run(
        &target,
        r#"{ type = "http", url = "{url}/products", pagination = { type = "page" }, since = { param = "since", from = ".v" } }"#,
    )
    .await;
    assert_eq!(run.created, 3, "the first page is kept");
    assert!(run.errors[0].contains("502"), "{:?}", run.errors);
    assert_eq!(run.since, None);
    assert!(h.engine.store().since_mark("api").await.unwrap().is_none());

    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let run = h.engine.run_incoming("api").await.unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.since.as_deref(), Some("7"), "the greatest value read");
    let mark = h.engine.store().since_mark("api").await.unwrap().unwrap();
    assert_eq!(mark.value, "7");
    assert_eq!(mark.updated_at, h.clock.now());
    // The next run asks from the mark: nothing new.
    let run = h.engine.run_incoming("api").await.unwrap();
    assert_eq!(run.created, 0);
    assert_eq!(query(&target.requests().last().unwrap().path)["since"], "7");
}
