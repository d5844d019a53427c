//! `ferry demo`: the bundled demo configuration with the two sample systems it talks to
//! (a paged catalog API and a flaky ERP, served under `/demo` on the same port),
//! populated with tasks in every status by the real pipeline, then served with its
//! workers, so routes move on their own.

use crate::serve;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use ferry_core::{Action, Timestamp};
use ferry_store::{ActionRequest, ClaimRequest};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DEMO_CONFIG: &str = include_str!("../demo/ferry.toml");

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the demo's configuration, database, inbox and output (recreated).
    #[arg(long, default_value = "ferry-demo")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Prepare the demo and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
}

const NAMES: [&str; 8] = [
    "Kayak",
    "Paddle",
    "Life vest",
    "Dry bag",
    "Rope",
    "Anchor",
    "Compass",
    "Lantern",
];

/// The shop's products: some inactive (dropped on the way in), some without a price
/// (skipped by the archive's filter), prices as strings (turned into numbers).
pub fn products(count: usize, offset: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let n = i + offset;
            json!({
                "sku": format!("SKU-{:04}", n + 1),
                "name": format!("{} {}", NAMES[n % NAMES.len()], n / NAMES.len() + 1),
                "price": if n % 9 == 4 { "0".to_owned() } else { format!("{}.{:02}", 10 + n * 3 % 90, n * 7 % 100) },
                "active": n % 11 != 7,
                "stock": n * 13 % 40,
            })
        })
        .collect()
}

pub async fn run(args: Args) -> Result<()> {
    serve::init_logging();
    let dir = &args.dir;
    if dir.exists() {
        for name in ["ferry.db", "ferry.db-wal", "ferry.db-shm"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        let _ = std::fs::remove_dir_all(dir.join("out"));
        let _ = std::fs::remove_dir_all(dir.join("inbox"));
    }
    std::fs::create_dir_all(dir.join("inbox"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let db = dir.join("ferry.db");
    let supplier = crate::demo_supplier::start(dir).await?;
    let text = DEMO_CONFIG
        .replace("{supplier}", &supplier.base)
        .replace(
            "sqlite://ferry-demo/ferry.db",
            &format!("sqlite://{}", db.display()),
        )
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"{}\"", args.listen),
        )
        .replace("{listen}", &args.listen);
    let config_path = dir.join("ferry.toml");
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = ferry_core::config::load(
        &config_path.display().to_string(),
        &text,
        std::iter::empty(),
    )?;
    let engine = serve::engine(config, &config_path).await?;

    // A shop delivery by webhook, processed by every route once.
    engine
        .ingest("shop", products(40, 0), "webhook shop (demo)")
        .await?;
    for route in ["shop-to-archive", "shop-to-legacy", "shop-to-warehouse"] {
        engine.drain_route(route).await?;
    }
    // A second delivery that waits: realtime picks it up once the server runs.
    engine
        .ingest("shop", products(12, 40), "webhook shop (demo)")
        .await?;
    // A file dropped in the inbox, read on the inbox schedule.
    let lines: String = products(6, 100).iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(dir.join("inbox").join("delivery-1.ndjson"), lines)?;

    let store = engine.store().clone();
    let now = Timestamp::now();
    let operator = |action, reason: &str| ActionRequest {
        action,
        actor: "demo-operator".into(),
        reason: Some(reason.into()),
        at: now,
        origin: Some("demo".into()),
    };
    // An operator skips a few warehouse tasks and retries one failed legacy task.
    let q = |pairs: &[(&str, &str)]| {
        ferry_core::TaskQuery::parse(pairs.iter().copied(), ferry_core::filter::Accept::All)
    };
    let warehouse = store
        .list_tasks(&q(&[
            ("route", "shop-to-warehouse"),
            ("status", "new"),
            ("per_page", "4"),
            ("order", "asc"),
        ])?)
        .await?;
    let ids: Vec<_> = warehouse.items.iter().map(|t| t.id.clone()).collect();
    store
        .act_on_ids(
            &ids,
            &operator(Action::Skip, "discontinued in the warehouse"),
        )
        .await?;
    let failed = store
        .list_tasks(&q(&[
            ("route", "shop-to-legacy"),
            ("status", "failed"),
            ("per_page", "1"),
        ])?)
        .await?;
    if let Some(t) = failed.items.first() {
        store
            .act_on_task(
                &t.id,
                &operator(Action::Retry, "legacy maintenance is over"),
            )
            .await?;
    }
    // A worker that stopped answering holds three warehouse tasks; its lease runs out
    // in ten minutes and they return to `new`.
    store
        .claim(&ClaimRequest {
            route: "shop-to-warehouse",
            limit: 3,
            now,
            lease: Duration::from_secs(600),
            worker: "demo-worker-gone-quiet",
        })
        .await?;

    if args.no_serve {
        print_counts(&engine, dir).await?;
        return Ok(());
    }
    let credentials = bootstrap_access(&*store, &args.listen).await?;
    let engine = Arc::new(engine);
    let base = format!("http://{}", args.listen);
    // Once the server (and so the sample catalog and ERP) answers, poll the catalog and
    // feed the ERP once, so retries and refusals show from the first minute.
    let first_run = engine.clone();
    let (shown_dir, health) = (dir.clone(), format!("{base}/healthz"));
    tokio::spawn(async move {
        for _ in 0..100 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = first_run.run_incoming("catalog").await;
        let _ = first_run.drain_route("catalog-to-erp").await;
        let _ = first_run.run_incoming("supplier").await;
        if let Err(e) = print_counts(&first_run, &shown_dir).await {
            eprintln!("error: {e:#}");
        }
    });
    println!(
        "\nRoutes now move on their own: the catalog is polled every 20 s, the ERP fed every 5 s (it is flaky: watch tasks retry), files dropped in {}/inbox are read every 10 s.",
        dir.display()
    );
    let DemoAccess { password, token } = credentials;
    println!("\nOpen {base}/ in a browser and sign in as admin with the password {password}");
    println!("(made up for this run and shown once). An operator API token for scripts:");
    println!("  export FERRY_TOKEN={token}");
    println!("Then try:");
    println!(
        "  curl -H \"Authorization: Bearer $FERRY_TOKEN\" '{base}/api/v1/tasks?status=retry&per_page=5'"
    );
    println!("  curl -H \"Authorization: Bearer $FERRY_TOKEN\" '{base}/api/v1/routes'");
    println!(
        "  curl -X POST {base}/api/v1/webhooks/shop -H \"Authorization: Bearer $FERRY_TOKEN\" -H 'Content-Type: application/json' -d '{{\"sku\":\"NEW-1\",\"name\":\"Oar\",\"price\":\"12.50\"}}'"
    );
    println!("  cargo run -p ferry -- tasks list --status failed   # reads FERRY_TOKEN");
    println!("  open {base}/api/v1/openapi.json\n");
    serve::serve_engine(engine, true, sample_systems()).await
}

struct DemoAccess {
    password: String,
    token: String,
}

/// The demo's own admin (with a password made up for this run) and an operator token,
/// on loopback only: beyond it, the demo is refused like any server without users.
async fn bootstrap_access(store: &dyn ferry_store::Store, listen: &str) -> Result<DemoAccess> {
    let loopback = listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
        || listen.starts_with("localhost:");
    if !loopback {
        anyhow::bail!(
            "the demo makes up an admin password and prints it, which is only safe on loopback; listen on 127.0.0.1 (--listen 127.0.0.1:PORT), or run 'ferry serve' with users of your own"
        );
    }
    let by = ferry_store::accounts::ChangedBy {
        actor: "demo".into(),
        origin: Some("local".into()),
    };
    let password = ferry_store::credentials::random_hex(10);
    ferry_store::accounts::add_user(store, &by, "admin", ferry_core::Role::Admin, &password)
        .await?;
    let (_, token) =
        ferry_store::accounts::create_token(store, &by, "demo", ferry_core::Role::Operator).await?;
    Ok(DemoAccess { password, token })
}

async fn print_counts(engine: &ferry_engine::Engine, dir: &std::path::Path) -> Result<()> {
    let counts = engine
        .store()
        .count_tasks(&ferry_core::TaskFilter::default())
        .await?;
    println!(
        "\nferry demo in {}: {} tasks",
        dir.display(),
        counts.total()
    );
    for (status, n) in &counts.0 {
        println!("  {:<10} {n}", status.as_str());
    }
    Ok(())
}

/// The catalog API and the flaky ERP the demo configuration talks to.
fn sample_systems() -> Router {
    #[derive(Default)]
    struct Erp {
        calls: AtomicU64,
    }
    async fn catalog(Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
        let page: usize = q
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .clamp(1, 3);
        let minute = (Timestamp::now().millis() / 60_000) as usize;
        let data: Vec<Value> = (0..10)
            .map(|i| {
                let n = 500 + (page - 1) * 10 + i;
                json!({
                    "sku": format!("CAT-{n}"),
                    "name": format!("{} {}", NAMES[n % NAMES.len()], n),
                    "price": 5 + (n + minute) % 50,
                    "stock": (n * 7 + minute) % 30,
                })
            })
            .collect();
        let next = (page < 3).then(|| format!("/demo/catalog?page={}", page + 1));
        axum::Json(json!({ "data": data, "next": next }))
    }
    async fn erp(
        State(erp): State<Arc<Erp>>,
        Path(sku): Path<String>,
    ) -> (StatusCode, axum::Json<Value>) {
        let n = erp.calls.fetch_add(1, Ordering::Relaxed);
        if sku.ends_with('7') {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"error": format!("{sku} is blocked in the ERP")})),
            );
        }
        match n % 10 {
            3 => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "maintenance window"})),
            ),
            6 => (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"error": "rate limit"})),
            ),
            // The id the ERP gives the product, which the route keeps on the task.
            _ => (
                StatusCode::OK,
                axum::Json(json!({"stored": sku, "id": format!("ERP-{:05}", n + 10_000)})),
            ),
        }
    }
    Router::new()
        .route("/demo/catalog", get(catalog))
        .route("/demo/erp/products/{sku}", put(erp))
        .with_state(Arc::new(Erp::default()))
}
