//! `TestApp`: the real server on a loopback port, with its own SQLite file.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]

use ferry_core::Role;
use ferry_engine::Engine;
use ferry_store::accounts::{self, ChangedBy};
use ferry_web::AppState;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// A configuration with one webhook feeding four routes that end tasks in different
/// statuses: `archive` finishes (or skips a price of 0), `strict` fails, `patient`
/// waits to retry, and `idle` is disabled so its tasks stay new.
pub const CONFIG: &str = r#"
[server]
max_body_bytes = 1048576

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[entity_schemas]]
id = "order"

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = { type = "webhook" }
transformers = [
  { type = "jq", filter = ".price |= tonumber" },
  { type = "filter", condition = ".active != false" },
]

[[incoming]]
id = "orders"
entity_schema = "order"
subscriber = { type = "webhook" }

[[incoming]]
id = "signed"
entity_schema = "product"
subscriber = { type = "webhook", secret = "s3cret-value" }

[[incoming]]
id = "files"
entity_schema = "product"
subscriber = { type = "file", path = "inbox/*.ndjson" }

[[outgoing]]
id = "archive"
transformers = [{ type = "filter", condition = ".price > 0" }]
publisher = { type = "file", path = "out/archive.ndjson" }

[[outgoing]]
id = "nowhere"
publisher = { type = "http", url = "http://127.0.0.1:9/{sku}", timeout = "2s" }

[[routes]]
id = "archive"
incoming = ["shop", "orders", "signed"]
outgoing = "archive"
batch_size = 10000

[[routes]]
id = "strict"
incoming = ["shop"]
outgoing = "nowhere"
batch_size = 10000

[[routes]]
id = "patient"
incoming = ["shop"]
outgoing = "nowhere"
batch_size = 10000
retry = { max_attempts = 3, interval = "1h" }

[[routes]]
id = "idle"
incoming = ["shop"]
outgoing = "archive"
disabled = true
"#;

pub struct TestApp {
    pub base: String,
    /// Sends the admin token on every request.
    pub http: reqwest::Client,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    pub admin_token: String,
    pub dir: tempfile::TempDir,
    pub state: AppState,
}

/// Who the tests' own changes are made by.
pub fn test_setup() -> ChangedBy {
    ChangedBy {
        actor: "test-setup".into(),
        origin: None,
    }
}

/// A client that sends `token` as a bearer token on every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::with_config(CONFIG).await
    }

    pub async fn with_config(text: &str) -> TestApp {
        TestApp::with_config_on(text, None).await
    }

    /// [`TestApp::with_config`] on the store at `storage_url` (a fresh SQLite file
    /// when `None`).
    pub async fn with_config_on(text: &str, storage_url: Option<&str>) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ferry.toml");
        let url = storage_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ferry.db").display()));
        let text = format!("[storage]\nurl = \"{url}\"\n{text}");
        std::fs::write(&path, &text).unwrap();
        let config = ferry_core::config::load("ferry.toml", &text, std::iter::empty())
            .expect("valid config");
        let store = ferry_store::open(&config.storage.url).await.expect("store");
        let engine = Engine::new(config, store, dir.path(), "ferry.toml").expect("engine");
        let (_, admin_token) =
            accounts::create_token(&**engine.store(), &test_setup(), "test-admin", Role::Admin)
                .await
                .expect("admin token");
        let state = AppState::new(Arc::new(engine));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let serving = state.clone();
        tokio::spawn(async move {
            ferry_web::serve(listener, serving, std::future::pending())
                .await
                .unwrap();
        });
        TestApp {
            base,
            http: client_with_token(&admin_token),
            anonymous: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            admin_token,
            dir,
            state,
        }
    }

    /// A new API token with `role`; answers its secret.
    pub async fn token(&self, name: &str, role: Role) -> String {
        accounts::create_token(&**self.state.store(), &test_setup(), name, role)
            .await
            .expect("token")
            .1
    }

    /// A new user with `role` and `password`.
    pub async fn user(&self, name: &str, role: Role, password: &str) {
        accounts::add_user(&**self.state.store(), &test_setup(), name, role, password)
            .await
            .expect("user");
    }

    /// Fetches the sign-in form and posts it back filled in, as a browser does.
    pub async fn submit_sign_in(&self, name: &str, password: &str) -> Response {
        let form = self.anonymous.get(self.url("/login")).send().await.unwrap();
        let login_cookie = set_cookie(&form, "ferry_login").expect("sign-in form cookie");
        let html = form.text().await.unwrap();
        let csrf = hidden_field(&html, "csrf").expect("csrf field");
        let field = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        self.anonymous
            .post(self.url("/login"))
            .header("cookie", format!("ferry_login={login_cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf={csrf}&next=%2Ftasks&user={}&password={}",
                field(name),
                field(password)
            ))
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the sign-in form like a browser; answers the session cookie
    /// (`ferry_session=…`) and the page's CSRF token.
    pub async fn sign_in(&self, name: &str, password: &str) -> Option<(String, String)> {
        let r = self.submit_sign_in(name, password).await;
        if r.status() != StatusCode::SEE_OTHER {
            return None;
        }
        let session = format!("ferry_session={}", set_cookie(&r, "ferry_session")?);
        let page = self
            .anonymous
            .get(self.url("/tasks"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let page_csrf = meta_csrf(&page).expect("csrf meta tag on a signed-in page");
        Some((session, page_csrf))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// GET that must succeed; answers the JSON.
    pub async fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let body: Value = r.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// POST that must succeed; answers the JSON.
    pub async fn post_ok(&self, path: &str, body: &Value) -> Value {
        let r = self.post(path, body).await;
        let status = r.status();
        let answer: Value = r.json().await.expect("JSON body");
        assert!(status.is_success(), "POST {path} {body}: {status} {answer}");
        answer
    }

    /// Pushes products to the `shop` webhook; answers the created task identifiers.
    pub async fn push_products(&self, products: &[Value]) -> Vec<String> {
        let body = self
            .post_ok("/api/v1/webhooks/shop", &json!(products))
            .await;
        body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn run_route(&self, route: &str) -> Value {
        self.post_ok(&format!("/api/v1/routes/{route}/run"), &json!({}))
            .await
    }

    /// Products SKU-0001…, one in seven with a price of 0 (skipped by `archive`).
    pub fn products(n: usize, offset: usize) -> Vec<Value> {
        (offset..offset + n)
            .map(|i| json!({"sku": format!("SKU-{:04}", i + 1), "name": format!("Item {i}"), "price": if i % 7 == 3 { "0" } else { "12.5" }}))
            .collect()
    }

    /// Pushes products and runs the three enabled routes: tasks in finished, skipped,
    /// failed, retry and (on `idle`) new.
    pub async fn populate(&self, n: usize, offset: usize) {
        self.push_products(&TestApp::products(n, offset)).await;
        for route in ["archive", "strict", "patient"] {
            self.run_route(route).await;
        }
    }

    pub async fn status_of(&self, id: &str) -> String {
        let t = self.get_ok(&format!("/api/v1/tasks/{id}")).await;
        t["status"].as_str().unwrap().to_owned()
    }
}

/// Asserts an error answer: status, code, and that the message mentions `needle`.
pub async fn assert_error(r: Response, status: StatusCode, code: &str, needle: &str) {
    let got = r.status();
    let body: Value = r.json().await.expect("a JSON error body");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "message {message:?} should mention {needle:?}"
    );
}

/// The value a `Set-Cookie` header of `r` gives `name`.
pub fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// The value of `<input type="hidden" name="NAME" value="…">` in a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let attr = format!("name=\"{name}\" value=\"");
    let rest = &html[html.find(&attr)? + attr.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The page's CSRF token from its `<meta name="csrf-token">`.
pub fn meta_csrf(html: &str) -> Option<String> {
    let tag = "<meta name=\"csrf-token\" content=\"";
    let rest = &html[html.find(tag)? + tag.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}
