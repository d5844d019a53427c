//! ferry's HTTP face: the JSON API (`/api/v1`), its OpenAPI document and liveness.
//!
//! Handlers are thin: they parse, call the engine or the store, and map the result.
//! One module per resource, each with its own `router()`, merged in [`router`].
//! Depends on the engine, the store and the core; never on the binary.
#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod auth;
pub mod body;
pub mod connections;
pub mod error;
pub mod jobs;
pub mod login;
pub mod openapi;
pub mod pages;
pub mod routes;
pub mod tasks;
pub mod tls;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use ferry_core::config::Config;
use ferry_engine::Engine;
use ferry_store::Store;
use std::sync::Arc;
use utoipa::OpenApi;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Failed sign-ins, per address and per name (in this process).
    pub throttle: Arc<auth::LoginThrottle>,
    /// Sign-ins admitted at once (the excess is answered 429 at once) and, of them,
    /// password checks running at once (Argon2 is memory-hard).
    pub sign_ins: Arc<tokio::sync::Semaphore>,
    pub password_checks: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> AppState {
        AppState {
            engine,
            throttle: Arc::new(auth::LoginThrottle::default()),
            sign_ins: Arc::new(tokio::sync::Semaphore::new(auth::SIGN_INS_AT_ONCE)),
            password_checks: Arc::new(tokio::sync::Semaphore::new(auth::PASSWORD_CHECKS_AT_ONCE)),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }
}

/// The whole HTTP application. Every route needs a signed-in user or an API token
/// except liveness, the API index and OpenAPI document, the assets, the sign-in page,
/// and webhooks (which check their own secret or an operator token).
pub fn router(state: AppState) -> Router {
    use auth::{Need, guard};
    use axum::middleware::{from_fn, from_fn_with_state};
    let limit = state.config().server.max_body_bytes;
    let protected = Router::new()
        .merge(tasks::router())
        .merge(jobs::router())
        .merge(audit::router())
        .merge(routes::router())
        .merge(connections::router())
        .merge(pages::router())
        .route_layer(from_fn(|r, n| guard(Need::ByMethod, r, n)));
    let admin = access::router()
        .merge(routes::admin_router())
        .route_layer(from_fn(|r, n| guard(Need::Administer, r, n)));
    // Credentials are looked up only where they matter: assets, liveness and the
    // OpenAPI document cost no store query even when a cookie comes along.
    let identified = Router::new()
        .merge(protected)
        .merge(admin)
        .merge(webhooks::router())
        .merge(login::router())
        .layer(from_fn_with_state(state.clone(), auth::identify));
    Router::new()
        .merge(identified)
        .merge(pages::assets())
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1", get(index))
        .route("/healthz", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn(security_headers))
        .with_state(state)
}

/// Headers on every answer: no framing, no inline or foreign scripts or styles, no
/// MIME sniffing, no referrer leaks, and nothing kept by a browser's or a proxy's cache
/// (task data, tokens, the audit trail) unless the answer says otherwise (the assets).
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::HeaderValue;
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(axum::http::header::CACHE_CONTROL) {
        h.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    response
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi::ApiDoc::openapi())
}

/// Liveness: answers while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "alive")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn index() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "ferry",
        "api": "/api/v1",
        "tasks": "/api/v1/tasks",
        "routes": "/api/v1/routes",
        "openapi": "/api/v1/openapi.json",
    }))
}

async fn not_found(uri: Uri) -> (StatusCode, Json<serde_json::Value>) {
    let path: String = uri.path().chars().take(200).collect();
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": {
            "code": "not_found",
            "message": format!("nothing is served at {path}; the API is under /api/v1 (see /api/v1/openapi.json)"),
        }})),
    )
}

/// Serves the application on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
