//! `ferry demo`: the bundled demo configuration, populated with tasks in every status
//! by the real pipeline (webhook ingestion, route runs, operator actions), then served.

use crate::serve;
use anyhow::{Context, Result};
use ferry_core::{Action, Timestamp};
use ferry_store::{ActionRequest, ClaimRequest};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const DEMO_CONFIG: &str = include_str!("../demo/ferry.toml");

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the demo's configuration, database and output files (recreated).
    #[arg(long, default_value = "ferry-demo")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Prepare the demo and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
}

/// The demo's products: some inactive (dropped on the way in), some without a price
/// (skipped by the archive's filter), prices as strings (turned into numbers).
pub fn products(count: usize, offset: usize) -> Vec<Value> {
    let names = [
        "Kayak",
        "Paddle",
        "Life vest",
        "Dry bag",
        "Rope",
        "Anchor",
        "Compass",
        "Lantern",
    ];
    (0..count)
        .map(|i| {
            let n = i + offset;
            json!({
                "sku": format!("SKU-{:04}", n + 1),
                "name": format!("{} {}", names[n % names.len()], n / names.len() + 1),
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
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let db = dir.join("ferry.db");
    let text = DEMO_CONFIG
        .replace(
            "sqlite://ferry-demo/ferry.db",
            &format!("sqlite://{}", db.display()),
        )
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"{}\"", args.listen),
        );
    let config_path = dir.join("ferry.toml");
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = ferry_core::config::load(
        &config_path.display().to_string(),
        &text,
        std::iter::empty(),
    )?;
    let engine = serve::engine(config, &config_path).await?;

    // Two webhook deliveries: a JSON array, then a few more.
    let first = engine
        .ingest("shop", products(40, 0), "webhook shop (demo)")
        .await?;
    // Every route processes its first batch: archive finishes or skips, the ERP routes
    // fail (no retries) or wait to retry, the disabled warehouse route does nothing.
    for route in [
        "shop-to-archive",
        "shop-to-erp",
        "shop-to-erp-strict",
        "shop-to-warehouse",
    ] {
        engine.run_route(route).await?;
    }
    let second = engine
        .ingest("shop", products(12, 40), "webhook shop (demo)")
        .await?;
    let store = engine.store().clone();
    let now = Timestamp::now();
    // An operator skips a few warehouse tasks and retries one failed ERP task.
    let warehouse = store
        .list_tasks(&ferry_core::TaskQuery::parse(
            [
                ("route", "shop-to-warehouse"),
                ("status", "new"),
                ("per_page", "4"),
                ("order", "asc"),
            ],
            ferry_core::filter::Accept::All,
        )?)
        .await?;
    let ids: Vec<_> = warehouse.items.iter().map(|t| t.id.clone()).collect();
    store
        .act_on_ids(
            &ids,
            &ActionRequest {
                action: Action::Skip,
                actor: "demo-operator".into(),
                reason: Some("discontinued in the warehouse".into()),
                at: now,
            },
        )
        .await?;
    let failed = store
        .list_tasks(&ferry_core::TaskQuery::parse(
            [
                ("route", "shop-to-erp-strict"),
                ("status", "failed"),
                ("per_page", "1"),
            ],
            ferry_core::filter::Accept::All,
        )?)
        .await?;
    if let Some(t) = failed.items.first() {
        store
            .act_on_task(
                &t.id,
                &ActionRequest {
                    action: Action::Retry,
                    actor: "demo-operator".into(),
                    reason: Some("ERP maintenance is over".into()),
                    at: now,
                },
            )
            .await?;
    }
    // A worker holds three archive tasks while it works on them.
    store
        .claim(&ClaimRequest {
            route: "shop-to-archive",
            limit: 3,
            now,
            lease: Duration::from_secs(3_600),
            worker: "demo-worker",
        })
        .await?;

    let counts = store
        .count_tasks(&ferry_core::TaskFilter::default())
        .await?;
    println!(
        "ferry demo: {} tasks from {} webhook entities ({} dropped by the shop's filter) in {}",
        counts.total(),
        52,
        first.dropped + second.dropped,
        dir.display()
    );
    for (status, n) in &counts.0 {
        println!("  {:<10} {n}", status.as_str());
    }
    if args.no_serve {
        return Ok(());
    }
    let base = format!("http://{}", args.listen);
    println!("\nTry:");
    println!("  curl '{base}/api/v1/tasks?status=failed&per_page=5'");
    println!("  curl '{base}/api/v1/tasks/counts?route=shop-to-erp'");
    println!(
        "  curl -X POST {base}/api/v1/webhooks/shop -H 'Content-Type: application/json' -d '{{\"sku\":\"NEW-1\",\"name\":\"Oar\",\"price\":\"12.50\"}}'"
    );
    println!("  curl -X POST {base}/api/v1/routes/shop-to-archive/run");
    println!("  ferry tasks list --server {base} --status retry");
    println!("  open {base}/api/v1/openapi.json\n");
    serve::serve_engine(engine, true, axum::Router::new()).await
}
