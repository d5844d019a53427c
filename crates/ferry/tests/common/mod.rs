//! `ferry serve` as a child process on a free loopback port.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

pub struct Server {
    pub child: Child,
    pub base: String,
    /// An admin API token, made with `ferry tokens create` before the server started.
    pub token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `config` (with a `[storage]` on `dir/ferry.db` in front) to `dir/ferry.toml`.
pub fn write_config(dir: &Path, config: &str) -> PathBuf {
    let path = dir.join("ferry.toml");
    let text = format!(
        "[storage]\nurl = \"sqlite://{}\"\n{config}",
        dir.join("ferry.db").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Server {
    /// Starts `ferry serve --config path` and waits until it answers.
    pub async fn start(config: &Path) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let token = create_token(config, "admin", &format!("test-{port}"));
        let child = Command::new(FERRY)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &listen])
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start ferry serve");
        let server = Server {
            child,
            base: format!("http://{listen}"),
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = client()
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve did not answer on {}",
                server.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.http()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A client that sends the admin token.
    pub fn http(&self) -> reqwest::Client {
        ferry_engine::connectors::tls::install_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// SKUs an outside system received, in order.
pub type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// The outside system of the crash and cluster tests: `PUT /products/{sku}` records the
/// SKU after `delay`. Answers its base URL and what it received.
pub async fn sku_target(delay: Duration) -> (String, Deliveries) {
    use axum::extract::{Path as UrlPath, State};
    let seen: Deliveries = Default::default();
    let app = axum::Router::new()
        .route(
            "/products/{sku}",
            axum::routing::put(
                move |State(seen): State<Deliveries>, UrlPath(sku): UrlPath<String>| async move {
                    tokio::time::sleep(delay).await;
                    seen.lock().unwrap().push(sku);
                    "{}"
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// `ferry tokens create --config … --role … --name …`; answers the token, which the
/// command prints alone on its last line.
pub fn create_token(config: &Path, role: &str, name: &str) -> String {
    let out = Command::new(FERRY)
        .args(["tokens", "create", "--config"])
        .arg(config)
        .args(["--role", role, "--name", name])
        .env("FERRY_LOG", "warn")
        .output()
        .expect("run ferry tokens create");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ferry tokens create failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}

/// A fresh schema on the test PostgreSQL (FERRY_TEST_POSTGRES_URL, default the local
/// `test` database): a connection to the database, the schema, and a URL whose
/// connections use it. `None` (after printing SKIPPED) when no server answers; under
/// CI=true that fails instead.
pub async fn postgres_schema(prefix: &str) -> Option<(sqlx::PgConnection, String, String)> {
    use sqlx::Connection;
    let base = std::env::var("FERRY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("PostgreSQL is not reachable at {base} ({e})");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason}; .ci/run starts the local server");
            }
            eprintln!("SKIPPED: {reason}");
            return None;
        }
    };
    let schema = format!("{prefix}_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some((admin, schema, url))
}

/// A plain HTTP client for the test process (rustls needs its provider first).
pub fn client() -> reqwest::Client {
    ferry_engine::connectors::tls::install_provider();
    reqwest::Client::new()
}
