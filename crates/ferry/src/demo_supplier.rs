//! The demo's supplier API: HTTPS with a certificate authority made for this run
//! (written next to the configuration as `demo-ca.pem`), an OAuth2 token endpoint
//! (client credentials, the secret in `supplier-secret`) and a cursor-paged product
//! list that answers only what changed since `updated_since`. One product changes every
//! minute, so each run of the `supplier` subscriber brings that one only.

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use ferry_core::Timestamp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "ferry-demo";
const TOKEN_LIFETIME_SECS: u64 = 300;
const PAGE: usize = 10;

/// Where the supplier listens and what the configuration needs to reach it.
pub struct Supplier {
    /// `https://localhost:PORT/demo/supplier/`
    pub base: String,
}

#[derive(Clone)]
struct Api {
    secret: String,
    tokens: Arc<Mutex<Vec<(String, std::time::Instant)>>>,
}

/// Makes the CA and the server certificate, writes `demo-ca.pem` and `supplier-secret`
/// into `dir`, and serves the supplier on a free loopback port until the process ends.
pub async fn start(dir: &Path) -> Result<Supplier> {
    let ca = ferry_web::tls::LocalCa::new("ferry demo CA").context("cannot make the demo CA")?;
    let cert = ca
        .server(&["localhost", "127.0.0.1"])
        .context("cannot make the supplier's certificate")?;
    std::fs::write(dir.join("demo-ca.pem"), &ca.cert_pem)
        .with_context(|| format!("cannot write {}", dir.join("demo-ca.pem").display()))?;
    let secret = ferry_store::credentials::random_hex(16);
    std::fs::write(dir.join("supplier-secret"), format!("{secret}\n"))
        .with_context(|| format!("cannot write {}", dir.join("supplier-secret").display()))?;
    let tls = ferry_web::tls::server_config(&cert.cert_pem, &cert.key_pem, None)
        .map_err(anyhow::Error::msg)?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the demo supplier")?;
    let port = tcp.local_addr()?.port();
    let api = Api {
        secret,
        tokens: Arc::default(),
    };
    let app = Router::new()
        .route("/demo/supplier/oauth/token", post(token))
        .route("/demo/supplier/v1/products", get(products))
        .route(
            "/demo/supplier/v1/",
            get(|| async { "ferry demo supplier" }),
        )
        .with_state(api);
    let listener = ferry_web::tls::TlsListener::new(tcp, tls);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the demo supplier stopped");
        }
    });
    Ok(Supplier {
        base: format!("https://localhost:{port}/demo/supplier/"),
    })
}

async fn token(
    State(api): State<Api>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(ferry_core::base64::decode)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let expected = format!("{CLIENT_ID}:{}", api.secret);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") || basic != expected
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        );
    }
    let value = ferry_store::credentials::random_hex(16);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(TOKEN_LIFETIME_SECS);
    let mut tokens = api.tokens.lock().unwrap_or_else(|p| p.into_inner());
    tokens.retain(|(_, t)| *t > std::time::Instant::now());
    tokens.push((value.clone(), until));
    (
        StatusCode::OK,
        axum::Json(
            json!({"access_token": value, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECS}),
        ),
    )
}

async fn products(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = std::time::Instant::now();
    let known = bearer.is_some_and(|b| {
        api.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(t, until)| t == b && *until > now)
    });
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token"})),
        );
    }
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let changed: Vec<Value> = catalog()
        .into_iter()
        .filter(|p| p["updated_at"].as_str().is_some_and(|u| u > since.as_str()))
        .collect();
    let start: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let data: Vec<Value> = changed.iter().skip(start).take(PAGE).cloned().collect();
    let next = (start + PAGE < changed.len()).then(|| (start + PAGE).to_string());
    (
        StatusCode::OK,
        axum::Json(json!({"data": data, "next_cursor": next})),
    )
}

/// 30 products, oldest change first; product (minute mod 30) changed this minute.
fn catalog() -> Vec<Value> {
    let minute = Timestamp::now().millis() / 60_000;
    let mut all: Vec<Value> = (0..30i64)
        .map(|i| {
            let changed = if (minute % 30) == i {
                Timestamp::from_millis(minute * 60_000)
            } else {
                Timestamp::parse_rfc3339("2026-11-01T00:00:00Z")
                    .unwrap_or(Timestamp::from_millis(0))
                    .plus_millis(i * 1_000)
            };
            json!({
                "sku": format!("SUP-{:03}", i + 1),
                "name": format!("Supplier part {}", i + 1),
                "price": 3 + i % 17,
                "updated_at": changed.to_rfc3339(),
            })
        })
        .collect();
    all.sort_by(|a, b| a["updated_at"].as_str().cmp(&b["updated_at"].as_str()));
    all
}
