//! Test helpers: a local HTTP server standing in for outside systems, and an engine on
//! a temp SQLite file with a clock the test moves by hand.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_core::Timestamp;
use ferry_engine::Engine;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request a [`Target`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

type Behaviour = dyn Fn(usize, &Received) -> (StatusCode, String, Duration) + Send + Sync;

/// A local HTTP server that records every request and answers as told: the closure
/// gets the request's number (from 0) and the request.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct TargetState {
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Behaviour>,
    /// Sent with every answer (a `location`, say).
    headers: Arc<Vec<(String, String)>>,
}

async fn record(State(state): State<TargetState>, req: Request) -> impl IntoResponse {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 10 << 20)
        .await
        .unwrap_or_default();
    let r = Received {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let n = {
        let mut all = state.received.lock().unwrap();
        all.push(r.clone());
        all.len() - 1
    };
    let (status, body, delay) = (state.behaviour)(n, &r);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = (status, [("content-type", "application/json")], body).into_response();
    for (k, v) in state.headers.iter() {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(v).unwrap(),
        );
    }
    response
}

impl Target {
    pub async fn start(
        behaviour: impl Fn(usize, &Received) -> (StatusCode, String, Duration) + Send + Sync + 'static,
    ) -> Target {
        Target::start_with_headers(&[], behaviour).await
    }

    /// As [`Target::start`], with `headers` on every answer.
    pub async fn start_with_headers(
        headers: &[(&str, &str)],
        behaviour: impl Fn(usize, &Received) -> (StatusCode, String, Duration) + Send + Sync + 'static,
    ) -> Target {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = TargetState {
            received: received.clone(),
            behaviour: Arc::new(behaviour),
            headers: Arc::new(
                headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        };
        let app = Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Target { url, received }
    }

    /// As [`Target::start`], over HTTPS with `tls`; the URL names `localhost`.
    pub async fn start_tls(
        tls: Arc<rustls::ServerConfig>,
        behaviour: impl Fn(usize, &Received) -> (StatusCode, String, Duration) + Send + Sync + 'static,
    ) -> Target {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = TargetState {
            received: received.clone(),
            behaviour: Arc::new(behaviour),
            headers: Arc::new(Vec::new()),
        };
        let app = Router::new().fallback(record).with_state(state);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}", tcp.local_addr().unwrap().port());
        let listener = ferry_web::tls::TlsListener::new(tcp, tls);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Target { url, received }
    }

    /// Answers 200 `{}` to everything.
    pub async fn ok() -> Target {
        Target::start(|_, _| (StatusCode::OK, "{}".into(), Duration::ZERO)).await
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(rfc3339: &str) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(
            Timestamp::parse_rfc3339(rfc3339).unwrap().millis(),
        )))
    }

    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// An engine on `config` (with `{dir}` replaced by its temp folder) and its own SQLite
/// file, on a manual clock.
pub struct Harness {
    pub engine: Arc<Engine>,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new(config: &str) -> Harness {
        Harness::with_dir(config, tempfile::tempdir().unwrap(), "worker-a").await
    }

    pub async fn with_dir(config: &str, dir: tempfile::TempDir, worker: &str) -> Harness {
        Harness::with_env(config, dir, worker, Vec::new()).await
    }

    /// As [`Harness::with_dir`], with `env` as the environment `${env:…}` reads.
    pub async fn with_env(
        config: &str,
        dir: tempfile::TempDir,
        worker: &str,
        env: Vec<(String, String)>,
    ) -> Harness {
        let text = format!(
            "[storage]\nurl = \"sqlite://{}\"\n{}",
            dir.path().join("ferry.db").display(),
            config.replace("{dir}", &dir.path().display().to_string())
        );
        let file = dir.path().join("ferry.toml").display().to_string();
        let config = ferry_core::config::load(&file, &text, env).expect("valid config");
        let store = ferry_store::open(&config.storage.url).await.expect("store");
        let clock = ManualClock::at("2026-11-28T10:00:00Z");
        let c = clock.clone();
        let engine = Engine::new(config, store, dir.path(), "ferry.toml")
            .expect("engine")
            .with_clock(Arc::new(move || c.now()))
            .with_worker_name(worker);
        Harness {
            engine: Arc::new(engine),
            clock,
            dir,
        }
    }

    /// Another node on the same database, sharing this harness's clock.
    pub async fn second_node(&self, config: &str, worker: &str) -> Arc<Engine> {
        let text = format!(
            "[storage]\nurl = \"sqlite://{}\"\n{}",
            self.dir.path().join("ferry.db").display(),
            config.replace("{dir}", &self.dir.path().display().to_string())
        );
        let config = ferry_core::config::load("ferry.toml", &text, std::iter::empty())
            .expect("valid config");
        let store = ferry_store::open(&config.storage.url).await.expect("store");
        let c = self.clock.clone();
        let engine = Engine::new(config, store, self.dir.path(), "ferry.toml")
            .expect("engine")
            .with_clock(Arc::new(move || c.now()))
            .with_worker_name(worker);
        Arc::new(engine)
    }

    pub async fn push(
        &self,
        incoming: &str,
        entities: Vec<serde_json::Value>,
    ) -> Vec<ferry_core::TaskId> {
        self.engine
            .ingest(incoming, entities, "test")
            .await
            .expect("ingest")
            .created
    }

    pub async fn task(&self, id: &ferry_core::TaskId) -> ferry_core::Task {
        self.engine
            .store()
            .get_task(id)
            .await
            .unwrap()
            .expect("task exists")
    }

    pub async fn export_log(&self, id: &ferry_core::TaskId) -> Vec<String> {
        self.log(id, ferry_core::Phase::Export).await
    }

    pub async fn import_log(&self, id: &ferry_core::TaskId) -> Vec<String> {
        self.log(id, ferry_core::Phase::Import).await
    }

    async fn log(&self, id: &ferry_core::TaskId, phase: ferry_core::Phase) -> Vec<String> {
        self.engine
            .store()
            .messages(id, phase)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|m| format!("{} {}", m.level, m.message))
            .collect()
    }

    pub async fn counts(&self) -> ferry_store::StatusCounts {
        self.engine
            .store()
            .count_tasks(&ferry_core::TaskFilter::default())
            .await
            .unwrap()
    }
}

/// Products `P-1`…`P-n`.
pub fn products(n: usize) -> Vec<serde_json::Value> {
    (1..=n)
        .map(|i| serde_json::json!({"sku": format!("P-{i}"), "price": i}))
        .collect()
}

/// Waits until `check` holds, polling; panics after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
