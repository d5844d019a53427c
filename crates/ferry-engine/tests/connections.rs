//! Connections against real HTTPS servers on loopback, with a certificate authority made
//! by the test: trust through `tls.ca_file`, certificates that do not verify (and why),
//! client certificates, sign-in (API key, OAuth2 client credentials with a token endpoint
//! that counts its tokens), paged APIs read incrementally, and secrets that never show.

mod common;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{Harness, Target};
use ferry_core::Status;
use ferry_web::tls::{LocalCa, server_config};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_SECRET: &str = "cs-7f3a9b2e51";
const API_KEY: &str = "ak-91c0d4e8aa";

/// A folder with the CA written as `ca.pem`, and the CA.
fn folder_with_ca(ca: &LocalCa) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
    dir
}

fn one_publisher(connection: &str, url_or_path: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

{connection}

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "out"
publisher = {{ type = "http", {url_or_path} }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
retry = {{ enabled = false }}
"#
    )
}

/// Sends one product through route `r` and answers its task's status and export log.
async fn send_one(h: &Harness) -> (Status, String) {
    let id = h.push("in", common::products(1)).await.remove(0);
    h.engine.drain_route("r").await.unwrap();
    let task = h.task(&id).await;
    (task.summary.status, h.export_log(&id).await.join("\n"))
}

async fn https_target(tls: Arc<rustls::ServerConfig>) -> Target {
    Target::start_tls(tls, |_, _| (StatusCode::OK, "{}".into(), Duration::ZERO)).await
}

#[tokio::test]
async fn https_works_with_the_authority_given_in_ca_file_and_fails_without_it_saying_why() {
    let ca = LocalCa::new("ferry test CA").unwrap();
    let cert = ca.server(&["localhost"]).unwrap();
    let target = https_target(server_config(&cert.cert_pem, &cert.key_pem, None).unwrap()).await;

    let trusted = format!(
        "[[connections]]\nid = \"api\"\ntype = \"http\"\nbase_url = \"{}/\"\ntls = {{ ca_file = \"ca.pem\" }}",
        target.url
    );
    let h = Harness::with_dir(
        &one_publisher(&trusted, r#"connection = "api", path = "products/{sku}""#),
        folder_with_ca(&ca),
        "w",
    )
    .await;
    let (status, log) = send_one(&h).await;
    assert_eq!(status, Status::Finished, "{log}");
    assert_eq!(target.requests()[0].path, "/products/P-1");

    let untrusted = format!(
        "[[connections]]\nid = \"api\"\ntype = \"http\"\nbase_url = \"{}/\"",
        target.url
    );
    let h = Harness::new(&one_publisher(
        &untrusted,
        r#"connection = "api", path = "x""#,
    ))
    .await;
    let (status, log) = send_one(&h).await;
    assert_eq!(status, Status::Failed, "{log}");
    assert!(
        log.contains("unknown issuer") && log.contains("tls.ca_file"),
        "{log}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_or_an_expired_one_fails_naming_the_reason() {
    let ca = LocalCa::new("ferry test CA").unwrap();
    let cases = [
        (ca.server(&["shop.example"]).unwrap(), "wrong host"),
        (ca.expired_server(&["localhost"]).unwrap(), "expired"),
    ];
    for (cert, reason) in cases {
        let target =
            https_target(server_config(&cert.cert_pem, &cert.key_pem, None).unwrap()).await;
        let h = Harness::with_dir(
            &one_publisher(
                "",
                &format!(
                    r#"url = "{}/p", connection = "api""#,
                    target.url
                ),
            )
            .replace(
                "[[incoming]]",
                &format!(
                    "[[connections]]\nid = \"api\"\ntype = \"http\"\nbase_url = \"{}\"\ntls = {{ ca_file = \"ca.pem\" }}\n\n[[incoming]]",
                    target.url
                ),
            ),
            folder_with_ca(&ca),
            "w",
        )
        .await;
        let (status, log) = send_one(&h).await;
        assert_eq!(status, Status::Failed, "{log}");
        assert!(log.contains(reason), "expected '{reason}' in: {log}");
        assert!(
            target.requests().is_empty(),
            "nothing was sent over a bad handshake"
        );
    }
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_accepts_the_configured_one_only() {
    let ca = LocalCa::new("ferry test CA").unwrap();
    let cert = ca.server(&["localhost"]).unwrap();
    let tls = server_config(&cert.cert_pem, &cert.key_pem, Some(&ca.cert_pem)).unwrap();
    let target = https_target(tls).await;
    let client = ca.client("ferry").unwrap();
    let dir = folder_with_ca(&ca);
    std::fs::write(dir.path().join("client.pem"), &client.cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &client.key_pem).unwrap();

    let with = format!(
        "[[connections]]\nid = \"api\"\ntype = \"http\"\nbase_url = \"{}\"\ntls = {{ ca_file = \"ca.pem\", client_cert = \"client.pem\", client_key = \"client.key\" }}",
        target.url
    );
    let h = Harness::with_dir(
        &one_publisher(&with, r#"connection = "api", path = "p""#),
        dir,
        "w",
    )
    .await;
    let (status, log) = send_one(&h).await;
    assert_eq!(status, Status::Finished, "{log}");

    let without = format!(
        "[[connections]]\nid = \"api\"\ntype = \"http\"\nbase_url = \"{}\"\ntls = {{ ca_file = \"ca.pem\" }}",
        target.url
    );
    let h = Harness::with_dir(
        &one_publisher(&without, r#"connection = "api", path = "p""#),
        folder_with_ca(&ca),
        "w",
    )
    .await;
    let (status, log) = send_one(&h).await;
    assert_eq!(status, Status::Failed, "{log}");
    assert!(log.contains("client certificate"), "{log}");
    assert_eq!(
        target.requests().len(),
        1,
        "only the request with the certificate arrived"
    );
}

// ------------------------------------------------------------------ the SaaS round trip

/// A token endpoint (client credentials, Basic client authentication) that counts the
/// tokens it issues, each valid for `lifetime`.
#[derive(Clone)]
struct Auth {
    issued: Arc<AtomicUsize>,
    valid: Arc<Mutex<Vec<(String, std::time::Instant)>>>,
    lifetime: Duration,
}

impl Auth {
    fn new(lifetime: Duration) -> Auth {
        Auth {
            issued: Arc::new(AtomicUsize::new(0)),
            valid: Arc::new(Mutex::new(Vec::new())),
            lifetime,
        }
    }

    fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let now = std::time::Instant::now();
        self.valid
            .lock()
            .unwrap()
            .iter()
            .any(|(t, until)| t == token && now < *until)
    }

    /// Revokes every token issued so far.
    fn revoke_all(&self) {
        self.valid.lock().unwrap().clear();
    }
}

async fn token(State(auth): State<Auth>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let expected = format!("ferry:{CLIENT_SECRET}");
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(decode_basic)
        .unwrap_or_default();
    if given != expected || !body.contains("grant_type=client_credentials") {
        // Some endpoints echo what they were sent: ferry must not show it.
        let echoed = json!({"error": "invalid_client", "received": given});
        return (StatusCode::UNAUTHORIZED, echoed.to_string());
    }
    let n = auth.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let value = format!("tok-{n}");
    auth.valid
        .lock()
        .unwrap()
        .push((value.clone(), std::time::Instant::now() + auth.lifetime));
    let answer = json!({"access_token": value, "token_type": "Bearer", "expires_in": auth.lifetime.as_secs()});
    (StatusCode::OK, answer.to_string())
}

fn decode_basic(b64: &str) -> String {
    ferry_core::base64::decode(b64)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// 25 products, 10 a page, cursor paged, filtered by `updated_since` (strictly after).
#[derive(Clone)]
struct Shop {
    auth: Auth,
    seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn products(
    State(shop): State<Shop>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if !shop.auth.accepts(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_token"}"#.to_owned(),
        );
    }
    shop.seen.lock().unwrap().push(q.clone());
    if q.contains_key("echo") {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed for {sent}"),
        );
    }
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let all: Vec<Value> = (1..=25)
        .map(|i| json!({"sku": format!("P-{i}"), "name": format!("Product {i}"), "updated_at": format!("2026-02-01T00:00:{i:02}Z")}))
        .filter(|p| p["updated_at"].as_str().unwrap() > since.as_str())
        .collect();
    let start: usize = q
        .get("cursor")
        .and_then(|c| c.strip_prefix('c'))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(start).take(10).cloned().collect();
    let next = (start + 10 < all.len()).then(|| format!("c{}", start + 10));
    (
        StatusCode::OK,
        json!({"data": page, "meta": {"next_cursor": next}}).to_string(),
    )
}

async fn serve(router: Router, tls: Arc<rustls::ServerConfig>) -> String {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}", tcp.local_addr().unwrap().port());
    let listener = ferry_web::tls::TlsListener::new(tcp, tls);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

struct SaaS {
    auth: Auth,
    shop: Shop,
    shop_url: String,
    auth_url: String,
    erp: Target,
    dir: tempfile::TempDir,
}

async fn saas(lifetime: Duration) -> SaaS {
    let ca = LocalCa::new("ferry test CA").unwrap();
    let cert = ca.server(&["localhost"]).unwrap();
    let tls = server_config(&cert.cert_pem, &cert.key_pem, None).unwrap();
    let auth = Auth::new(lifetime);
    let auth_url = serve(
        Router::new()
            .route("/oauth/token", axum::routing::post(token))
            .with_state(auth.clone()),
        tls.clone(),
    )
    .await;
    let shop = Shop {
        auth: auth.clone(),
        seen: Arc::default(),
    };
    let shop_url = serve(
        Router::new()
            .route("/v2/products", axum::routing::get(products))
            .with_state(shop.clone()),
        tls.clone(),
    )
    .await;
    let erp = Target::start_tls(tls, |_, r| {
        if r.headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == API_KEY)
        {
            let sku = r.path.rsplit('/').next().unwrap_or("").to_owned();
            (
                StatusCode::CREATED,
                json!({"id": format!("erp-{sku}")}).to_string(),
                Duration::ZERO,
            )
        } else {
            (StatusCode::UNAUTHORIZED, "{}".into(), Duration::ZERO)
        }
    })
    .await;
    let dir = folder_with_ca(&ca);
    std::fs::write(dir.path().join("erp-key"), format!("{API_KEY}\n")).unwrap();
    SaaS {
        auth,
        shop,
        shop_url,
        auth_url,
        erp,
        dir,
    }
}

fn saas_config(s: &SaaS) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[connections]]
id = "shop"
type = "http"
base_url = "{shop}/v2"
tls = {{ ca_file = "ca.pem" }}
auth = {{ type = "oauth2_client_credentials", token_url = "{auth}/oauth/token", client_id = "ferry", client_secret = "${{env:SHOP_CLIENT_SECRET}}", scopes = ["products"] }}

[[connections]]
id = "erp"
type = "http"
base_url = "{erp}/api/"
tls = {{ ca_file = "ca.pem" }}
auth = {{ type = "api_key", header = "X-Api-Key", value = "${{file:erp-key}}" }}

[[incoming]]
id = "shop-products"
entity_schema = "product"
subscriber = {{ type = "http", connection = "shop", path = "products", items = ".data[]",
               pagination = {{ type = "cursor", param = "cursor", cursor = ".meta.next_cursor" }},
               since = {{ param = "updated_since", from = ".updated_at", initial = "2026-01-01T00:00:00Z" }} }}

[[outgoing]]
id = "erp"
publisher = {{ type = "http", connection = "erp", method = "PUT", path = "products/{{sku}}",
              body = "{{sku, name}}", idempotency_header = "Idempotency-Key", response = ".id" }}

[[routes]]
id = "shop-to-erp"
incoming = ["shop-products"]
outgoing = "erp"
"#,
        shop = s.shop_url,
        auth = s.auth_url,
        erp = s.erp.url,
    )
}

async fn saas_harness(s: SaaS) -> (Harness, SaaS) {
    let config = saas_config(&s);
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "erp-key"] {
        std::fs::copy(s.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    let env = vec![("SHOP_CLIENT_SECRET".to_owned(), CLIENT_SECRET.to_owned())];
    (Harness::with_env(&config, dir, "w", env).await, s)
}

#[tokio::test]
async fn a_paged_https_api_with_oauth2_reaches_an_https_target_with_an_api_key_once_per_entity() {
    let (h, s) = saas_harness(saas(Duration::from_secs(600)).await).await;

    let run = h.engine.run_incoming("shop-products").await.unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.created, 25);
    assert_eq!(run.since.as_deref(), Some("2026-02-01T00:00:25Z"));
    let seen = s.shop.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "three pages of 10, 10 and 5: {seen:?}");
    assert!(
        seen.iter()
            .all(|q| q["updated_since"] == "2026-01-01T00:00:00Z")
    );
    assert_eq!(seen[1]["cursor"], "c10");

    let summary = h.engine.drain_route("shop-to-erp").await.unwrap();
    assert_eq!(summary.finished, 25, "{summary:?}");
    let sent = s.erp.requests();
    assert_eq!(sent.len(), 25);
    let mut paths: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 25, "each entity once");
    let first = &sent[0];
    assert_eq!(first.method, "PUT");
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "body = {{sku, name}}: {body}"
    );
    let key = first
        .headers
        .iter()
        .find(|(k, _)| k == "idempotency-key")
        .map(|(_, v)| v.clone())
        .expect("an idempotency key");
    let tasks = h
        .engine
        .store()
        .list_tasks(&ferry_core::TaskQuery::default())
        .await
        .unwrap();
    assert!(
        tasks.items.iter().any(|t| t.id.as_str() == key),
        "the key is a task id"
    );
    let log = h.export_log(&tasks.items[0].id).await.join("\n");
    assert!(log.contains("response: erp-P-"), "{log}");
    let task = h.task(&tasks.items[0].id).await;
    assert_eq!(
        task.response,
        Some(json!(format!("erp-{}", task.summary.entity_identifier))),
        "the id the ERP gave is kept on the task"
    );

    assert_eq!(
        s.auth.issued.load(Ordering::SeqCst),
        1,
        "one token for the whole run"
    );

    // The next run asks for what changed since the mark: nothing.
    let again = h.engine.run_incoming("shop-products").await.unwrap();
    assert_eq!(again.created, 0, "{again:?}");
    let last = s.shop.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["updated_since"], "2026-02-01T00:00:25Z");
    assert_eq!(
        s.auth.issued.load(Ordering::SeqCst),
        1,
        "the token is still good"
    );

    // `ferry check --connect` reaches both.
    for id in ["shop", "erp"] {
        let checked = h.engine.connections()[id].check().await;
        assert!(checked.is_ok(), "{id}: {checked:?}");
    }
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_a_refused_one_is_refreshed_once() {
    let (h, s) = saas_harness(saas(Duration::from_secs(2)).await).await;
    h.engine.run_incoming("shop-products").await.unwrap();
    assert_eq!(s.auth.issued.load(Ordering::SeqCst), 1);

    // Revoked early: the API answers 401, ferry fetches one new token and goes on.
    s.auth.revoke_all();
    h.engine
        .store()
        .reset_since_mark("shop-products")
        .await
        .unwrap();
    let run = h.engine.run_incoming("shop-products").await.unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(s.auth.issued.load(Ordering::SeqCst), 2);

    // Past its lifetime (less the margin) the token is renewed before it is used.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    h.engine
        .store()
        .reset_since_mark("shop-products")
        .await
        .unwrap();
    let run = h.engine.run_incoming("shop-products").await.unwrap();
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(s.auth.issued.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_token_request_is_the_error_with_the_endpoint_status_and_never_the_secret() {
    let s = saas(Duration::from_secs(600)).await;
    let config = saas_config(&s);
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "erp-key"] {
        std::fs::copy(s.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    let wrong = "wrong-secret-5521";
    let env = vec![("SHOP_CLIENT_SECRET".to_owned(), wrong.to_owned())];
    let h = Harness::with_env(&config, dir, "w", env).await;
    let run = h.engine.run_incoming("shop-products").await.unwrap();
    let errors = run.errors.join("\n");
    assert!(
        errors.contains("401") && errors.contains("invalid_client"),
        "{errors}"
    );
    assert!(!errors.contains(wrong), "the secret leaked: {errors}");
    assert!(
        h.engine
            .store()
            .since_mark("shop-products")
            .await
            .unwrap()
            .is_none()
    );

    let checked = h.engine.connections()["shop"].check().await.unwrap_err();
    assert!(
        checked.contains("401") && !checked.contains(wrong),
        "{checked}"
    );
}

#[tokio::test]
async fn secrets_never_appear_in_task_logs_or_errors() {
    let (h, s) = saas_harness(saas(Duration::from_secs(600)).await).await;
    h.engine.run_incoming("shop-products").await.unwrap();
    h.engine.drain_route("shop-to-erp").await.unwrap();
    let tasks = h
        .engine
        .store()
        .list_tasks(&ferry_core::TaskQuery::default())
        .await
        .unwrap();
    for t in &tasks.items {
        for phase in [ferry_core::Phase::Import, ferry_core::Phase::Export] {
            let log = h
                .engine
                .store()
                .messages(&t.id, phase)
                .await
                .unwrap()
                .unwrap_or_default();
            for m in log {
                for secret in [CLIENT_SECRET, API_KEY, "tok-1"] {
                    assert!(!m.message.contains(secret), "{secret} in: {}", m.message);
                }
            }
        }
    }
    drop(s);
}

#[tokio::test]
async fn an_api_that_echoes_the_oauth2_token_does_not_show_it() {
    let s = saas(Duration::from_secs(600)).await;
    let config = saas_config(&s).replace(r#"path = "products""#, r#"path = "products?echo=1""#);
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "erp-key"] {
        std::fs::copy(s.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    let env = vec![("SHOP_CLIENT_SECRET".to_owned(), CLIENT_SECRET.to_owned())];
    let h = Harness::with_env(&config, dir, "w", env).await;
    let run = h.engine.run_incoming("shop-products").await.unwrap();
    let errors = run.errors.join("\n");
    assert!(
        errors.contains("500") && errors.contains("failed for Bearer ***"),
        "{errors}"
    );
    assert!(!errors.contains("tok-1"), "{errors}");
}
