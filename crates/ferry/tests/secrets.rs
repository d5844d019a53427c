//! Secrets of the configuration never show: a whole run of `ferry serve` (debug logs on)
//! with a bearer token, an API key and a basic password from `${env:…}` and
//! `${file:…}`, against systems that fail and echo what they were sent, and every log
//! line and every answer of the API and the pages is searched for their values.

mod common;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use common::{FERRY, create_token, free_port, write_config};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-secret-6d2f0a";
const KEY: &str = "key-secret-19b7ce";
const PASSWORD: &str = "pw-secret-c04e55";

/// An API that answers 500 with every header it was sent, the secrets among them.
async fn echoing_api() -> String {
    async fn echo(headers: HeaderMap, uri: axum::http::Uri) -> (StatusCode, String) {
        let all: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
            .collect();
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{uri} {}", all.join("; ")),
        )
    }
    let app = Router::new().fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn config(api: &str) -> String {
    format!(
        r#"
[[connections]]
id = "erp"
type = "http"
base_url = "{api}/erp/"
headers = {{ x-tenant = "t1" }}
auth = {{ type = "bearer", token = "${{env:ERP_TOKEN}}" }}

[[connections]]
id = "pim"
type = "http"
base_url = "{api}/pim/"
auth = {{ type = "api_key", query = "key", value = "${{file:pim-key}}" }}

[[connections]]
id = "legacy"
type = "http"
base_url = "{api}/legacy/"
auth = {{ type = "basic", username = "ferry", password = "${{env:LEGACY_PASSWORD}}" }}

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[incoming]]
id = "pim"
entity_schema = "product"
subscriber = {{ type = "http", connection = "pim", path = "products" }}

[[outgoing]]
id = "erp"
publisher = {{ type = "http", connection = "erp", method = "PUT", path = "products/{{sku}}" }}

[[outgoing]]
id = "legacy"
publisher = {{ type = "http", connection = "legacy", path = "p" }}

[[routes]]
id = "shop-to-erp"
incoming = ["shop", "pim"]
outgoing = "erp"
retry = {{ enabled = false }}

[[routes]]
id = "shop-to-legacy"
incoming = ["shop"]
outgoing = "legacy"
"#
    )
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line_or_any_answer_of_a_run() {
    let api = echoing_api().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pim-key"), format!("{KEY}\n")).unwrap();
    let path = write_config(dir.path(), &config(&api));
    // `ferry tokens create` reads the whole configuration, secrets too: a file of its own
    // on the same store spares the test from setting them in its own environment.
    let store_only = dir.path().join("store-only.toml");
    let db = dir.path().join("ferry.db");
    std::fs::write(
        &store_only,
        format!("[storage]\nurl = \"sqlite://{}\"\n", db.display()),
    )
    .unwrap();
    let admin = create_token(&store_only, "admin", "secrets-test");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(FERRY)
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("FERRY_LOG", "debug")
        .env("ERP_TOKEN", TOKEN)
        .env("LEGACY_PASSWORD", PASSWORD)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("serve.err")).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let http = common::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "ferry serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers = Vec::new();
    let mut call = async |method: reqwest::Method, path: &str, body: Option<&str>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let text = req.send().await.unwrap().text().await.unwrap();
        answers.push(format!("{path}: {text}"));
        text
    };
    use reqwest::Method;
    call(
        Method::POST,
        "/api/v1/webhooks/shop",
        Some(r#"[{"sku":"A"},{"sku":"B"}]"#),
    )
    .await;
    call(Method::POST, "/api/v1/routes/shop-to-erp/run", None).await;
    call(Method::POST, "/api/v1/routes/shop-to-legacy/run", None).await;
    call(Method::POST, "/api/v1/incoming/pim/run", None).await;
    let tasks: serde_json::Value =
        serde_json::from_str(&call(Method::GET, "/api/v1/tasks?per_page=50", None).await).unwrap();
    for t in tasks["items"].as_array().unwrap() {
        let id = t["identifier"].as_str().unwrap();
        call(Method::GET, &format!("/api/v1/tasks/{id}"), None).await;
        call(
            Method::GET,
            &format!("/api/v1/tasks/{id}/messages?phase=export"),
            None,
        )
        .await;
        call(
            Method::GET,
            &format!("/api/v1/tasks/{id}/messages?phase=import"),
            None,
        )
        .await;
        call(Method::GET, &format!("/tasks/{id}"), None).await;
    }
    for path in [
        "/api/v1/routes",
        "/api/v1/routes/shop-to-erp",
        "/api/v1/audit",
        "/routes",
        "/tasks",
        "/audit",
    ] {
        call(Method::GET, path, None).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap(),
        std::fs::read_to_string(dir.path().join("serve.err")).unwrap()
    );
    let everything = format!("{logs}\n{}", answers.join("\n"));
    assert!(
        everything.contains("500 Internal Server Error"),
        "the failures were recorded: {everything}"
    );
    // The Basic credentials as sent, base64 of "ferry:<password>".
    let basic = "ZmVycnk6cHctc2VjcmV0LWMwNGU1NQ";
    for secret in [TOKEN, KEY, PASSWORD, basic] {
        for line in everything.lines() {
            assert!(!line.contains(secret), "{secret} shows in: {line}");
        }
    }
}
