//! `ferry bench`: measures ferry at scale on its real code paths — ingest through the
//! webhook and straight into the store, route processing with a file and an HTTP
//! publisher, the Tasks page queries, bulk retry and skip by filter, delivery to slow
//! targets through connections (`bench_delivery`), and memory — next to the same
//! machine's raw database limits, and prints a table and writes a JSON file.
//!
//! Everything runs in this process: the store (SQLite in a temporary folder, or a fresh
//! PostgreSQL schema), the real HTTP server on a loopback port, and the HTTP target the
//! publisher sends to. The raw limits are measured outside ferry, with Python's `sqlite3`
//! module on SQLite and with `psql` (COPY) and `pgbench` on PostgreSQL; a missing client
//! skips its figure with a reason.
//!
//! With `--store postgres --graphile`, the same run also measures graphile-worker on the
//! same PostgreSQL with its own protocol (`bench/graphile.sh`, built into the binary:
//! it installs graphile-worker from npm into the run's temporary folder), next to ferry
//! draining as many tasks with its cheapest publisher, and prints ferry ÷ graphile-worker.

use anyhow::{Context, Result, bail, ensure};
use ferry_core::task::{Level, Message, NewTask};
use ferry_core::{ConfigId, Role, TaskId, Timestamp};
use ferry_engine::Engine;
use ferry_store::accounts::{self, ChangedBy};
use ferry_store::{ClaimRequest, Completion, Outcome, Store};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entities per NDJSON webhook request.
const HTTP_BATCH: usize = 10_000;
/// Most entities sent through the webhook (the rest of the data set goes straight in).
const WEBHOOK_SAMPLE: u64 = 100_000;
/// Tasks per `Store::insert_tasks` call when building the data set.
const INSERT_BATCH: u64 = 10_000;
/// Tasks claimed per call while giving the data set its statuses.
const CLAIM_BATCH: u32 = 5_000;
/// New tasks the file-publisher route works through: enough for a drain of several
/// seconds, over which commits, checkpoints and the writer's cache even out (50,000
/// gave figures 15-20% apart from one run to the next).
const PROCESS_FILE_TASKS: u64 = 200_000;
/// New tasks the HTTP-publisher route works through.
const PROCESS_HTTP_TASKS: u64 = 50_000;
/// `batch_size` of the processing routes.
const PROCESS_BATCH_SIZE: u32 = 1_000;
/// Rows of the raw insert and COPY baselines.
const RAW_ROWS: u64 = 100_000;
/// Size of the smaller bulk action.
const BULK_SUBSET: u64 = 100_000;
const PGBENCH_SECONDS: u32 = 10;
/// The data set's tasks were created over the 30 days before the run.
const SPAN_MS: i64 = 30 * 24 * 3_600 * 1_000;
/// Each product travels this many routes (consecutive tasks share an entity).
const ROUTES_PER_ENTITY: u64 = 4;
const ADMIN_TOKEN_NAME: &str = "bench";
/// graphile-worker's own benchmark protocol (see its header); run with bash.
const GRAPHILE_SH: &str = include_str!("../../../bench/graphile.sh");
/// The route ferry drains next to graphile-worker.
const GRAPHILE_ROUTE: &str = "gw-file";

/// The plain table of the raw baselines: the columns ferry writes when it creates a task.
const RAW_TABLE: &str = "id TEXT NOT NULL, route TEXT NOT NULL, entity_schema TEXT NOT NULL, \
    entity_identifier TEXT NOT NULL, entity_data TEXT NOT NULL, status TEXT NOT NULL, \
    attempts BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL";
const RAW_COLUMNS: &str = "id, route, entity_schema, entity_identifier, entity_data, status, attempts, created_at, updated_at";

/// The SQLite baseline: `python3 -c RAW_SQLITE_PY DB ROWS.tsv BATCH COLUMNS` prints the
/// seconds the inserts took and the SQLite version.
const RAW_SQLITE_PY: &str = r#"
import sqlite3, sys, time
db, data, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(data, encoding="utf-8") as f:
    rows = [v[:6] + [int(x) for x in v[6:]] for v in (l.rstrip("\n").split("\t") for l in f)]
c = sqlite3.connect(db, isolation_level=None)
for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-16384", "temp_store=memory"):
    c.execute("PRAGMA " + pragma)
c.execute("CREATE TABLE raw_rows (" + sys.argv[4] + ")")
t = time.perf_counter()
for i in range(0, len(rows), batch):
    c.execute("BEGIN")
    c.executemany("INSERT INTO raw_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + batch])
    c.execute("COMMIT")
print(time.perf_counter() - t, sqlite3.sqlite_version)
"#;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// A part of the run that `--phases` can pick.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Phase {
    /// The machine's raw database limits (the ratios' denominators).
    Raw,
    /// The Tasks page's queries.
    Queries,
    /// Ingest through the webhook.
    Webhook,
    /// Route processing with the file and the HTTP publisher.
    Processing,
    /// Bulk retry and skip by filter.
    Bulk,
    /// graphile-worker side by side (with `--graphile`).
    Graphile,
    /// Delivery to slow loopback targets through connections (`bench_delivery`).
    Delivery,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Raw,
        Phase::Queries,
        Phase::Webhook,
        Phase::Processing,
        Phase::Bulk,
        Phase::Graphile,
        Phase::Delivery,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Raw => "raw",
            Phase::Queries => "queries",
            Phase::Webhook => "webhook",
            Phase::Processing => "processing",
            Phase::Bulk => "bulk",
            Phase::Graphile => "graphile",
            Phase::Delivery => "delivery",
        }
    }

    /// Whether the phase works on the data set of `--tasks` tasks.
    fn needs_data_set(self) -> bool {
        matches!(
            self,
            Phase::Queries | Phase::Webhook | Phase::Processing | Phase::Bulk
        )
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Tasks in the data set.
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// Routes the data set is spread over.
    #[arg(long, default_value_t = 20)]
    pub routes: u32,
    /// The store to measure.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
    /// The PostgreSQL database for `--store postgres` (a fresh schema is made and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// Where the JSON results go; default target/bench/<store>-<tasks>.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Repetitions of each query.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Also measure graphile-worker (installed from npm at run time; needs node and npm)
    /// on the same PostgreSQL next to ferry, and print ferry ÷ graphile-worker
    /// (with `--store postgres`).
    #[arg(long)]
    pub graphile: bool,
    /// Jobs graphile-worker works through, and tasks ferry drains next to it.
    #[arg(long, default_value_t = 200_000)]
    pub graphile_jobs: u64,
    /// The phases to run, comma-separated: raw, queries, webhook, processing, bulk,
    /// graphile, delivery (default: all; graphile only with --graphile). The data set
    /// is built only when queries, webhook, processing or bulk is among them.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub phases: Vec<Phase>,
    /// Tasks each scenario of the delivery phase delivers.
    #[arg(long, default_value_t = 20_000)]
    pub delivery_tasks: u64,
}

impl Args {
    /// The phases to run, in the run's order.
    fn selected(&self) -> Vec<Phase> {
        Phase::ALL
            .into_iter()
            .filter(|p| {
                (self.phases.is_empty() || self.phases.contains(p))
                    && (*p != Phase::Graphile || self.graphile)
            })
            .collect()
    }

    fn runs_phase(&self, phase: Phase) -> bool {
        self.selected().contains(&phase)
    }

    fn needs_data_set(&self) -> bool {
        self.selected().into_iter().any(Phase::needs_data_set)
    }
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(
        args.routes >= 1 && args.routes <= 999,
        "--routes: use 1 to 999"
    );
    ensure!(
        args.tasks >= u64::from(args.routes) * 10,
        "--tasks: use at least 10 per route"
    );
    ensure!(args.runs >= 1, "--runs: use at least 1");
    ensure!(
        !args.graphile || args.store == StoreKind::Postgres,
        "--graphile compares ferry and graphile-worker on PostgreSQL: add --store postgres \
         (and --postgres-url when the database is not the local test one)"
    );
    ensure!(
        args.graphile || !args.phases.contains(&Phase::Graphile),
        "--phases graphile runs only with --graphile: add --graphile --store postgres"
    );
    ensure!(
        args.graphile_jobs >= 1_000,
        "--graphile-jobs: use at least 1000"
    );
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "target/bench/{}-{}.json",
            args.store.name(),
            args.tasks
        ))
    });
    let scratch = Scratch::create(&args)?;
    // Ctrl-C still removes the temporary folder and schema (a run may fill gigabytes).
    let result = tokio::select! {
        result = Bench::run(&args, &scratch) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    drop(scratch);
    let report = result?;
    report.print(&args, &out);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&report.to_json(&args))?;
    std::fs::write(&out, text + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

// ---------------------------------------------------------------- scratch space

/// The temporary folder and, on PostgreSQL, the schema the run works in; both are
/// removed when dropped, also after an error.
struct Scratch {
    dir: PathBuf,
    postgres: Option<PgScratch>,
}

struct PgScratch {
    base_url: String,
    schema: String,
    /// The database graphile-worker's run makes (and drops) with `--graphile`.
    graphile_db: Option<String>,
}

impl Scratch {
    fn create(args: &Args) -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("ferry-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut scratch = Scratch {
            dir,
            postgres: None,
        };
        if args.store == StoreKind::Postgres {
            let schema = format!("ferry_bench_{}", std::process::id());
            psql(
                &args.postgres_url,
                &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
            )
            .context(
                "cannot create the benchmark's schema (is PostgreSQL running, and psql installed?)",
            )?;
            scratch.postgres = Some(PgScratch {
                base_url: args.postgres_url.clone(),
                graphile_db: args
                    .runs_phase(Phase::Graphile)
                    .then(|| format!("{schema}_gw")),
                schema,
            });
        }
        Ok(scratch)
    }

    /// The storage URL ferry uses.
    fn storage_url(&self) -> String {
        match &self.postgres {
            Some(pg) => {
                let sep = if pg.base_url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{sep}options=-c%20search_path%3D{}",
                    pg.base_url, pg.schema
                )
            }
            None => format!("sqlite://{}", self.dir.join("ferry.db").display()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(pg) = &self.postgres
            && let Err(e) = psql(
                &pg.base_url,
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", pg.schema),
            )
        {
            eprintln!("warning: could not drop the schema {}: {e:#}", pg.schema);
        }
        // The graphile script drops its database when it succeeds; after a failure or
        // an interruption this does (FORCE ends the workers' connections).
        if let Some(pg) = &self.postgres
            && let Some(db) = &pg.graphile_db
            && let Err(e) = psql(
                &pg.base_url,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
        {
            eprintln!("warning: could not drop the database {db}: {e:#}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Runs one SQL text with psql; answers its unaligned output.
fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .context("cannot run psql")?;
    ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// ---------------------------------------------------------------- the data set

/// Where task `i` of the data set lives: its route, entity and creation time.
struct Layout {
    tasks: u64,
    routes: u32,
    /// Creation time of task 0; the last is created an hour before the run.
    start: i64,
}

impl Layout {
    fn new(tasks: u64, routes: u32) -> Layout {
        Layout {
            tasks,
            routes,
            start: Timestamp::now().millis() - 3_600_000 - SPAN_MS,
        }
    }

    fn route_id(&self, r: u32) -> String {
        let width = if self.routes > 99 { 3 } else { 2 };
        format!("r{:0width$}", r + 1)
    }

    fn route_ids(&self) -> Vec<String> {
        (0..self.routes).map(|r| self.route_id(r)).collect()
    }

    fn route_of(&self, i: u64) -> u32 {
        (i % u64::from(self.routes)) as u32
    }

    fn tasks_on_route(&self, r: u32) -> u64 {
        let routes = u64::from(self.routes);
        self.tasks / routes + u64::from(u64::from(r) < self.tasks % routes)
    }

    fn at_fraction(&self, f: f64) -> Timestamp {
        Timestamp::from_millis(self.start + (SPAN_MS as f64 * f) as i64)
    }

    fn created_at(&self, i: u64) -> Timestamp {
        Timestamp::from_millis(
            self.start + (i128::from(SPAN_MS) * i128::from(i) / i128::from(self.tasks)) as i64,
        )
    }

    /// One route in four carries stock records rather than products.
    fn schema_of(&self, i: u64) -> &'static str {
        if self.route_of(i) % 4 == 3 {
            "stock"
        } else {
            "product"
        }
    }

    fn sku(&self, i: u64) -> String {
        format!("SKU-{:08}", i / ROUTES_PER_ENTITY)
    }

    fn new_task(&self, i: u64) -> Result<NewTask> {
        let sku = self.sku(i);
        let route = self.route_id(self.route_of(i));
        let created_at = self.created_at(i);
        new_task(
            &route,
            self.schema_of(i),
            &sku,
            product(&sku, i / ROUTES_PER_ENTITY),
            created_at,
        )
    }
}

/// A task as ingestion makes it, with the same two import messages.
fn new_task(
    route: &str,
    schema: &str,
    sku: &str,
    entity: Value,
    created_at: Timestamp,
) -> Result<NewTask> {
    Ok(NewTask {
        id: TaskId::generate(created_at),
        route: ConfigId::parse(route)?,
        entity_schema: ConfigId::parse(schema)?,
        entity_identifier: sku.to_owned(),
        entity_data: entity,
        created_at,
        import_messages: vec![
            Message::new(
                created_at,
                Level::Info,
                "received from webhook feed (entity 1 of 1)",
            ),
            Message::new(
                created_at,
                Level::Info,
                format!("task created on route {route} with entity identifier {sku}"),
            ),
        ],
    })
}

/// SplitMix64: a cheap, deterministic mix for the generated data.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const WORDS: [&str; 48] = [
    "durable",
    "compact",
    "premium",
    "outdoor",
    "lightweight",
    "waterproof",
    "steel",
    "oak",
    "cotton",
    "recycled",
    "ergonomic",
    "modular",
    "classic",
    "wireless",
    "portable",
    "quiet",
    "kayak",
    "paddle",
    "lamp",
    "chair",
    "table",
    "jacket",
    "backpack",
    "bottle",
    "speaker",
    "charger",
    "blanket",
    "tent",
    "stove",
    "helmet",
    "glove",
    "boot",
    "with",
    "for",
    "and",
    "designed",
    "tested",
    "everyday",
    "travel",
    "home",
    "office",
    "garden",
    "kitchen",
    "season",
    "warranty",
    "included",
    "easy",
    "care",
];
const COLORS: [&str; 8] = [
    "slate", "sand", "forest", "navy", "crimson", "graphite", "ivory", "ochre",
];
const BRANDS: [&str; 6] = [
    "Nordwind",
    "Baltic Gear",
    "Tidewater",
    "Kestrel",
    "Fjordline",
    "Harbor & Co",
];

const SIZES: [&str; 4] = ["S", "M", "L", "XL"];
const ORIGINS: [&str; 5] = ["DE", "SE", "NO", "PL", "PT"];

fn word(seed: u64, k: u64) -> &'static str {
    WORDS[(mix(seed ^ (k << 32)) % WORDS.len() as u64) as usize]
}

/// A product of about 1 KB of JSON: sku, name, description, price, stock, tags and
/// attributes.
fn product(sku: &str, seed: u64) -> Value {
    let r = mix(seed);
    let mut description = String::with_capacity(640);
    for k in 0..88 {
        if k > 0 {
            description.push(' ');
        }
        description.push_str(word(seed, k));
    }
    description.push('.');
    let tags: Vec<&str> = (100..100 + 3 + r % 3).map(|k| word(seed, k)).collect();
    json!({
        "sku": sku,
        "name": format!("{} {} {}", word(seed, 200), word(seed, 201), word(seed, 202)),
        "description": description,
        "price": (r % 100_000) as f64 / 100.0 + 0.99,
        "currency": "EUR",
        "stock": (r >> 20) % 500,
        "category": format!("{}/{}", word(seed, 203), word(seed, 204)),
        "tags": tags,
        "attributes": {
            "color": COLORS[(r >> 8) as usize % COLORS.len()],
            "size": SIZES[(r >> 12) as usize % SIZES.len()],
            "material": word(seed, 205),
            "weight_g": 100 + (r >> 24) % 5_000,
            "dimensions": {"width_mm": 50 + (r >> 32) % 900, "height_mm": 50 + (r >> 40) % 900, "depth_mm": 20 + (r >> 48) % 400},
            "brand": BRANDS[(r >> 16) as usize % BRANDS.len()],
            "origin": ORIGINS[(r >> 28) as usize % ORIGINS.len()],
            "ean": format!("{:013}", r % 10_000_000_000_000),
        },
        "active": !r.is_multiple_of(10),
    })
}

// ---------------------------------------------------------------- figures

/// Samples of one measurement, in milliseconds.
struct Stats(Vec<f64>);

impl Stats {
    fn new(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(f64::total_cmp);
        Stats(samples)
    }

    fn median(&self) -> f64 {
        let n = self.0.len();
        if n % 2 == 1 {
            self.0[n / 2]
        } else {
            (self.0[n / 2 - 1] + self.0[n / 2]) / 2.0
        }
    }

    /// Nearest-rank 95th percentile.
    fn p95(&self) -> f64 {
        let n = self.0.len();
        let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
        self.0[rank - 1]
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// From the first to the second, both included.
    Between(f64, f64),
}

impl Target {
    fn holds(self, value: f64) -> bool {
        match self {
            Target::AtLeast(t) => value >= t,
            Target::AtMost(t) => value <= t,
            Target::Between(low, high) => (low..=high).contains(&value),
        }
    }
}

/// One line of the table (and one object of the JSON results).
pub(crate) struct Row {
    section: &'static str,
    name: String,
    value: String,
    /// The target and PASS or MISS, when the issue sets one.
    target: String,
    /// The figure as a ratio of each raw limit (or of another limit, said in the text).
    pub(crate) ratio: String,
    json: Value,
}

/// A raw limit to compare a rate with.
struct Baseline {
    /// Short, for the ratio column: "raw insert", "COPY", "pgbench".
    label: String,
    detail: String,
    rows_per_s: f64,
}

/// The order of the table's sections.
const SECTIONS: [&str; 8] = [
    "raw",
    "ingest",
    "processing",
    "delivery",
    "graphile",
    "query",
    "bulk",
    "memory",
];

#[derive(Default)]
pub(crate) struct Report {
    machine: Value,
    rows: Vec<Row>,
    notes: Vec<String>,
    baselines: Vec<Baseline>,
    tasks_at_query_time: u64,
    peak_rss_kb: u64,
}

impl Report {
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[bench] note: {text}");
        self.notes.push(text);
    }

    pub(crate) fn push(
        &mut self,
        section: &'static str,
        name: String,
        value: String,
        json: Value,
    ) -> &mut Row {
        let mut json = json;
        json["section"] = json!(section);
        json["name"] = json!(name);
        self.rows.push(Row {
            section,
            name,
            value,
            target: String::new(),
            ratio: String::new(),
            json,
        });
        self.rows.last_mut().expect("just pushed")
    }

    /// A throughput: `tasks` in `seconds`, shown as a ratio of every raw limit.
    fn rate(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        tasks: u64,
        seconds: f64,
        target: Option<(Target, &str)>,
    ) {
        let per_s = tasks as f64 / seconds.max(1e-9);
        let ratio = self
            .baselines
            .iter()
            .map(|b| format!("{:.2}× {}", per_s / b.rows_per_s, b.label))
            .collect::<Vec<_>>()
            .join(", ");
        let ratios: serde_json::Map<String, Value> = self
            .baselines
            .iter()
            .map(|b| (b.label.clone(), json!(per_s / b.rows_per_s)))
            .collect();
        let value = format!(
            "{} tasks/s ({} in {:.2} s)",
            thousands(per_s),
            thousands(tasks as f64),
            seconds
        );
        let json =
            json!({"tasks": tasks, "seconds": seconds, "tasks_per_s": per_s, "ratios": ratios});
        let row = self.push(section, name.into(), value, json);
        row.ratio = ratio;
        row.judge(target, per_s);
    }

    /// A query's latency; the target applies to the p95.
    fn latency(
        &mut self,
        name: String,
        stats: &Stats,
        matched: u64,
        target: Option<(Target, &str)>,
    ) {
        let value = format!(
            "median {:6.1} ms, p95 {:6.1} ms  ({} match)",
            stats.median(),
            stats.p95(),
            thousands(matched as f64)
        );
        let json = json!({"median_ms": stats.median(), "p95_ms": stats.p95(),
            "samples_ms": stats.0, "matched": matched});
        self.push("query", name, value, json)
            .judge(target, stats.p95());
    }

    /// Ends a phase: its time and its peak RSS (the peak is then reset for the next).
    fn phase(&mut self, name: &'static str, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let (hwm, rss) = memory();
        self.peak_rss_kb = self.peak_rss_kb.max(hwm);
        eprintln!("[bench] {name}: {seconds:.1} s, peak RSS {} MB", hwm / 1024);
        self.push(
            "memory",
            format!("peak RSS during {name}"),
            format!(
                "{:5} MB  (after: {} MB; the phase took {seconds:.1} s)",
                hwm / 1024,
                rss / 1024
            ),
            json!({"peak_rss_kb": hwm, "rss_after_kb": rss, "seconds": seconds}),
        );
        reset_peak_rss();
    }

    fn print(&self, args: &Args, out: &Path) {
        let m = &self.machine;
        println!();
        let store = m["store_version"].as_str().unwrap_or("?");
        if args.needs_data_set() {
            println!(
                "ferry bench: {} tasks over {} routes on {store}",
                thousands(args.tasks as f64),
                args.routes,
            );
        } else {
            println!("ferry bench on {store} (no data set)");
        }
        println!(
            "working folder at run time: {}",
            m["revision"].as_str().unwrap_or("?")
        );
        println!(
            "machine: {} cores, {} MB memory, {}, {}",
            m["cores"],
            m["memory_mb"],
            m["cpu"].as_str().unwrap_or("?"),
            m["os"].as_str().unwrap_or("?")
        );
        println!(
            "load average (1, 5, 15 min) at the start: {}, at the end: {}",
            m["load_start"].as_str().unwrap_or("?"),
            loadavg()
        );
        println!(
            "phases: {}",
            args.selected()
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.tasks_at_query_time > 0 {
            println!(
                "queries ran at {} tasks, {} times each after one warm-up, over HTTP",
                thousands(self.tasks_at_query_time as f64),
                args.runs
            );
        }
        // Columns line up over the rows that have a target or a ratio; the others are
        // a name and a value.
        let width = |f: fn(&Row) -> usize| {
            self.rows
                .iter()
                .filter(|r| !r.target.is_empty() || !r.ratio.is_empty())
                .map(f)
                .max()
                .unwrap_or(0)
        };
        let name_w = width(|r| r.name.chars().count());
        let value_w = width(|r| r.value.chars().count());
        let target_w = width(|r| r.target.chars().count());
        for section in SECTIONS {
            if !self.rows.iter().any(|r| r.section == section) {
                continue;
            }
            println!("\n{section}");
            for r in self.rows.iter().filter(|r| r.section == section) {
                let line = if r.target.is_empty() && r.ratio.is_empty() {
                    format!("  {:name_w$}  {}", r.name, r.value)
                } else {
                    format!(
                        "  {:name_w$}  {:value_w$}  {:target_w$}  {}",
                        r.name, r.value, r.target, r.ratio
                    )
                };
                println!("{}", line.trim_end());
            }
        }
        println!();
        println!("peak RSS of the whole run: {} MB", self.peak_rss_kb / 1024);
        let count = |v: &str| self.rows.iter().filter(|r| r.json["verdict"] == v).count();
        println!("targets: {} PASS, {} MISS", count("PASS"), count("MISS"));
        for n in &self.notes {
            println!("note: {n}");
        }
        println!("results written to {}", out.display());
    }

    fn to_json(&self, args: &Args) -> Value {
        json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "at": Timestamp::now().to_rfc3339(),
            "store": args.store.name(),
            "tasks": args.tasks,
            "routes": args.routes,
            "runs": args.runs,
            "phases": args.selected().iter().map(|p| p.name()).collect::<Vec<_>>(),
            "tasks_at_query_time": self.tasks_at_query_time,
            "machine": self.machine,
            "baselines": self.baselines.iter()
                .map(|b| json!({"label": b.label, "detail": b.detail, "rows_per_s": b.rows_per_s}))
                .collect::<Vec<_>>(),
            "results": self.rows.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
            "peak_rss_kb": self.peak_rss_kb,
            "load_end": loadavg(),
            "notes": self.notes,
        })
    }
}

impl Row {
    pub(crate) fn judge(&mut self, target: Option<(Target, &str)>, value: f64) {
        if let Some((t, text)) = target {
            let verdict = if t.holds(value) { "PASS" } else { "MISS" };
            self.target = format!("{text} {verdict}");
            self.json["target"] = json!(text);
            self.json["verdict"] = json!(verdict);
        }
    }
}

/// `1234567.8` → `1,234,568`.
pub(crate) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// (VmHWM, VmRSS) of this process in kB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets VmHWM to the current RSS, so each phase reports its own peak (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn machine(store: &str) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_mb": memory_kb / 1024,
        "cpu": cpu,
        "os": format!("Linux {}", kernel.trim()),
        "store_version": store,
        "load_start": loadavg(),
        "revision": revision(),
    })
}

/// `git describe` of the working folder at run time, when it is a clone (the binary may
/// be older than the folder).
fn revision() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The load averages over 1, 5 and 15 minutes: other work on the machine skews figures.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------- the run

/// The store, the engine and the HTTP server the phases work on.
struct Bench<'a> {
    args: &'a Args,
    scratch: &'a Scratch,
    layout: Layout,
    store: Arc<dyn Store>,
    report: Report,
}

/// The in-process server and a client that sends the admin token.
struct Server {
    engine: Arc<Engine>,
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl<'a> Bench<'a> {
    async fn run(args: &'a Args, scratch: &'a Scratch) -> Result<Report> {
        let begun = Instant::now();
        let url = scratch.storage_url();
        let store = ferry_store::open(&url)
            .await
            .with_context(|| format!("cannot open the store at {}", crate::serve::redact(&url)))?;
        let mut bench = Bench {
            args,
            scratch,
            layout: Layout::new(args.tasks, args.routes),
            store,
            report: Report::default(),
        };
        bench.report.machine = machine(&bench.store_version());
        reset_peak_rss();
        eprintln!(
            "[bench] {} tasks over {} routes on {}, in {}",
            thousands(args.tasks as f64),
            args.routes,
            args.store.name(),
            scratch.dir.display()
        );

        let phases = args.selected();
        ensure!(
            !phases.is_empty(),
            "--phases: name at least one of raw, queries, webhook, processing, bulk, graphile, delivery"
        );
        eprintln!(
            "[bench] phases: {}",
            phases
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        );

        // Raw limits first, so every later rate can be shown as a ratio of them.
        if args.runs_phase(Phase::Raw) {
            let t = Instant::now();
            bench.raw_limits()?;
            bench.report.phase("raw limits", t);
        }

        // The data set is made before the engine exists: task identifiers are ULIDs
        // from the creation time, increasing within the process.
        if args.needs_data_set() {
            let t = Instant::now();
            bench.build_data_set().await?;
            bench.report.phase("data set insert", t);
            let t = Instant::now();
            bench.give_statuses().await?;
            bench.report.phase("data set statuses", t);
            if let Some(pg) = &scratch.postgres {
                // Steady state, as autovacuum leaves a table some time after a burst:
                // the data set was just written twice over (insert, then claim and
                // complete), so without this every index-only scan visits the heap and
                // the planner works from the empty table's statistics.
                let t = Instant::now();
                // `task_search` is insert-only: its visibility map serves the index-only
                // scans of lists and counts that read it (migration 0008).
                psql(
                    &pg.base_url,
                    &format!("VACUUM (ANALYZE) {0}.tasks, {0}.task_search", pg.schema),
                )?;
                bench.report.phase("VACUUM (ANALYZE) tasks, task_search", t);
                bench.report.note(
                    "PostgreSQL: the tasks and task_search tables were vacuumed and analyzed once after the data set was built (the state autovacuum reaches some time after a burst of writes)",
                );
            }
        } else {
            bench.report.note(
                "no data set was built: none of the phases queries, webhook, processing, bulk ran",
            );
        }
        // Delivery has an engine of its own and needs neither the server nor the data set.
        if phases
            .iter()
            .all(|p| matches!(p, Phase::Raw | Phase::Delivery))
        {
            bench.delivery().await?;
            return Ok(bench.report);
        }

        let (target_url, received) = start_target().await?;
        let server = bench.start_server(&target_url).await?;

        // Queries at exactly N tasks, before the other phases add their own.
        if args.runs_phase(Phase::Queries) {
            let t = Instant::now();
            bench.queries(&server).await?;
            bench.report.phase("queries", t);
        }

        if args.runs_phase(Phase::Webhook) {
            let t = Instant::now();
            bench.webhook_ingest(&server).await?;
            bench.report.phase("webhook ingest", t);
        }

        if args.runs_phase(Phase::Processing) {
            let t = Instant::now();
            bench.processing(&server, &received).await?;
            bench.report.phase("processing", t);
        }

        if args.runs_phase(Phase::Bulk) {
            let t = Instant::now();
            bench.bulk_actions(&server).await?;
            bench.report.phase("bulk actions", t);
        }

        if args.runs_phase(Phase::Graphile) {
            let t = Instant::now();
            bench.graphile(&server).await?;
            bench.report.phase("graphile side by side", t);
        }

        bench.delivery().await?;

        let _ = server.stop.send(());
        let _ = server.serving.await;
        drop(server.engine);
        bench.report.note(format!(
            "the whole run took {:.0} s; memory is of this one process: server, store, HTTP target and the client driving them",
            begun.elapsed().as_secs_f64()
        ));
        Ok(bench.report)
    }

    /// The delivery phase (when selected), on routes and an engine of its own in the
    /// run's store.
    async fn delivery(&mut self) -> Result<()> {
        if !self.args.runs_phase(Phase::Delivery) {
            return Ok(());
        }
        let t = Instant::now();
        crate::bench_delivery::run(
            &mut self.report,
            &self.store,
            &self.scratch.storage_url(),
            &self.scratch.dir,
            self.args.delivery_tasks,
        )
        .await?;
        self.report.phase("delivery", t);
        Ok(())
    }

    fn store_version(&self) -> String {
        match &self.scratch.postgres {
            Some(pg) => psql(&pg.base_url, "SHOW server_version")
                .map(|v| format!("PostgreSQL {v}"))
                .unwrap_or_else(|_| "PostgreSQL".into()),
            None => "SQLite (bundled with sqlx)".into(),
        }
    }

    fn config_text(&self, target_url: &str) -> String {
        let pool = if self.args.store == StoreKind::Postgres {
            "max_connections = 10\n"
        } else {
            ""
        };
        let mut text = format!(
            r#"[storage]
url = "{url}"
{pool}
[server]
listen = "127.0.0.1:0"
max_body_bytes = 33554432

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[entity_schemas]]
id = "stock"
identifier_path = ["sku"]

[[incoming]]
id = "hook"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[incoming]]
id = "feed"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "file-out"
publisher = {{ type = "file", path = "out/published.ndjson" }}

[[outgoing]]
id = "http-out"
publisher = {{ type = "http", method = "PUT", url = "{target_url}/products/{{sku}}" }}

[[routes]]
id = "webhook"
incoming = ["hook"]
outgoing = "file-out"

[[routes]]
id = "proc-file"
incoming = ["feed"]
outgoing = "file-out"
batch_size = {PROCESS_BATCH_SIZE}

[[routes]]
id = "proc-http"
incoming = ["feed"]
outgoing = "http-out"
batch_size = {PROCESS_BATCH_SIZE}

[[outgoing]]
id = "gw-out"
publisher = {{ type = "file", path = "out/graphile-side-by-side.ndjson" }}

[[routes]]
id = "{GRAPHILE_ROUTE}"
incoming = ["feed"]
outgoing = "gw-out"
batch_size = {PROCESS_BATCH_SIZE}
"#,
            url = self.scratch.storage_url(),
        );
        for route in self.layout.route_ids() {
            let _ = write!(
                text,
                "\n[[routes]]\nid = \"{route}\"\nincoming = [\"feed\"]\noutgoing = \"file-out\"\n"
            );
        }
        text
    }

    /// The real server on a loopback port, without workers (the phases run routes).
    async fn start_server(&self, target_url: &str) -> Result<Server> {
        let text = self.config_text(target_url);
        let path = self.scratch.dir.join("ferry.toml");
        std::fs::write(&path, &text)?;
        let config = ferry_core::config::load("ferry.toml", &text, std::iter::empty())?;
        let engine = Arc::new(Engine::new(
            config,
            self.store.clone(),
            &self.scratch.dir,
            "ferry.toml",
        )?);
        let by = ChangedBy {
            actor: "bench".into(),
            origin: None,
        };
        let (_, token) =
            accounts::create_token(&**engine.store(), &by, ADMIN_TOKEN_NAME, Role::Admin).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = ferry_web::AppState::new(engine.clone());
        let serving = tokio::spawn(ferry_web::serve(listener, state, async {
            let _ = stopped.await;
        }));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        Ok(Server {
            engine,
            base,
            http,
            stop,
            serving,
        })
    }

    // ------------------------------------------------------------ phase: raw limits

    /// The machine's raw limits with the database's own clients: a batched insert of
    /// equivalent rows into a plain table (SQLite), or COPY and pgbench single-row
    /// commits (PostgreSQL).
    fn raw_limits(&mut self) -> Result<()> {
        let rows = RAW_ROWS.min(self.args.tasks);
        eprintln!("[bench] raw limits on {} rows…", thousands(rows as f64));
        match self.args.store {
            StoreKind::Sqlite => match self.raw_sqlite(rows) {
                Ok(b) => self.add_baseline(b, rows),
                Err(e) => self
                    .report
                    .note(format!("SQLite batched insert baseline skipped: {e:#}")),
            },
            StoreKind::Postgres => {
                let schema = &self.scratch.postgres.as_ref().context("no schema")?.schema;
                let plain = format!("{schema}.raw_rows");
                let copy =
                    self.raw_copy(rows, &plain, &format!("CREATE TABLE {plain} ({RAW_TABLE})"));
                match copy {
                    Ok(rows_per_s) => self.add_baseline(
                        Baseline {
                            label: "COPY".into(),
                            detail: "psql COPY FROM STDIN into a plain table".into(),
                            rows_per_s,
                        },
                        rows,
                    ),
                    Err(e) => self.report.note(format!("COPY baseline skipped: {e:#}")),
                }
                // The same into a copy of ferry's own table: the cost of its indexes. (The
                // entity, which ferry keeps in a table of its own, goes in a column.)
                let like = format!("{schema}.raw_tasks");
                let create = format!(
                    "CREATE TABLE {like} (LIKE {schema}.tasks INCLUDING ALL);
                     ALTER TABLE {like} ADD COLUMN entity_data TEXT NOT NULL"
                );
                match self.raw_copy(rows, &like, &create) {
                    Ok(rows_per_s) => self.add_baseline(
                        Baseline {
                            label: "COPY+indexes".into(),
                            detail:
                                "the same into a copy of ferry's tasks table with all its indexes"
                                    .into(),
                            rows_per_s,
                        },
                        rows,
                    ),
                    Err(e) => self
                        .report
                        .note(format!("COPY+indexes baseline skipped: {e:#}")),
                }
                match self.raw_pgbench() {
                    Ok(b) => self.add_baseline(b, 0),
                    Err(e) => self.report.note(format!("pgbench baseline skipped: {e:#}")),
                }
            }
        }
        Ok(())
    }

    fn add_baseline(&mut self, b: Baseline, rows: u64) {
        let what = if rows > 0 {
            format!("{} rows", thousands(rows as f64))
        } else {
            format!("{PGBENCH_SECONDS} s")
        };
        self.report.push(
            "raw",
            b.label.clone(),
            format!("{} rows/s ({what}; {})", thousands(b.rows_per_s), b.detail),
            json!({"rows_per_s": b.rows_per_s, "rows": rows}),
        );
        self.report.baselines.push(b);
    }

    /// One row of the raw baselines: the task table's columns with a product entity.
    fn raw_row(&self, i: u64) -> [String; 9] {
        let created = self.layout.created_at(i).millis().to_string();
        [
            // 26 characters like a ULID; not made with TaskId::generate, which would
            // move the process's identifier clock past the data set's creation times.
            format!("{:016X}{:010X}", mix(i), mix(!i) & 0xFF_FFFF_FFFF),
            self.layout.route_id(self.layout.route_of(i)),
            self.layout.schema_of(i).to_owned(),
            self.layout.sku(i),
            product(&self.layout.sku(i), i / ROUTES_PER_ENTITY).to_string(),
            "new".to_owned(),
            "0".to_owned(),
            created.clone(),
            created,
        ]
    }

    /// Rows of the raw baselines as COPY text (tab-separated; the generated data has no
    /// tab, newline or backslash, so the Python baseline reads the same file).
    fn write_raw_rows(&self, path: &Path, rows: u64) -> Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for i in 0..rows {
            let fields: Vec<String> = self
                .raw_row(i)
                .iter()
                .map(|v| {
                    v.replace('\\', "\\\\")
                        .replace('\t', "\\t")
                        .replace('\n', "\\n")
                })
                .collect();
            writeln!(f, "{}", fields.join("\t"))?;
        }
        f.flush()?;
        Ok(())
    }

    /// SQLite's own limit for batched inserts: a prepared INSERT with bound values,
    /// one transaction per batch, into a plain table (no index) with ferry's pragmas,
    /// driven by Python's `sqlite3` module (`executemany`), timed inside the script.
    fn raw_sqlite(&self, rows: u64) -> Result<Baseline> {
        let data = self.scratch.dir.join("raw.tsv");
        self.write_raw_rows(&data, rows)?;
        let db = self.scratch.dir.join("raw.db");
        let out = Command::new("python3")
            .arg("-c")
            .arg(RAW_SQLITE_PY)
            .arg(&db)
            .arg(&data)
            .arg(INSERT_BATCH.to_string())
            .arg(RAW_TABLE)
            .output()
            .context("python3 is not installed")?;
        let _ = std::fs::remove_file(&data);
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "python3: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let mut words = stdout.split_whitespace();
        let seconds: f64 = words
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no time in the output: {stdout}"))?;
        let version = words.next().unwrap_or("?");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        Ok(Baseline {
            label: "raw insert".into(),
            detail: format!(
                "SQLite {version} via python3 executemany, {INSERT_BATCH} rows per transaction, plain table"
            ),
            rows_per_s: rows as f64 / seconds,
        })
    }

    /// COPY of the rows into `table`, made by `create` just before.
    fn raw_copy(&self, rows: u64, table: &str, create: &str) -> Result<f64> {
        let pg = self
            .scratch
            .postgres
            .as_ref()
            .context("no PostgreSQL schema")?;
        psql(&pg.base_url, create)?;
        let data = self.scratch.dir.join("raw.copy");
        self.write_raw_rows(&data, rows)?;
        let t = Instant::now();
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &pg.base_url, "-c"])
            .arg(format!("COPY {table} ({RAW_COLUMNS}) FROM STDIN"))
            .stdin(std::fs::File::open(&data)?)
            .output()
            .context("cannot run psql")?;
        let seconds = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&data);
        ensure!(
            out.status.success(),
            "psql COPY: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(rows as f64 / seconds)
    }

    fn raw_pgbench(&self) -> Result<Baseline> {
        let pg = self
            .scratch
            .postgres
            .as_ref()
            .context("no PostgreSQL schema")?;
        if Command::new("pgbench").arg("--version").output().is_err() {
            bail!("the pgbench binary is not installed");
        }
        psql(
            &pg.base_url,
            &format!("CREATE TABLE {}.raw_commits ({RAW_TABLE})", pg.schema),
        )?;
        let row: Vec<String> = self
            .raw_row(0)
            .iter()
            .enumerate()
            .map(|(k, v)| {
                if k >= 6 {
                    v.clone()
                } else {
                    format!("'{}'", v.replace('\'', "''"))
                }
            })
            .collect();
        let script = self.scratch.dir.join("pgbench.sql");
        std::fs::write(
            &script,
            format!(
                "INSERT INTO {}.raw_commits VALUES ({});\n",
                pg.schema,
                row.join(",")
            ),
        )?;
        let clients = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string();
        let out = Command::new("pgbench")
            .args([
                "-n",
                "-c",
                &clients,
                "-j",
                &clients,
                "-T",
                &PGBENCH_SECONDS.to_string(),
                "-f",
            ])
            .arg(&script)
            .arg(&pg.base_url)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "pgbench: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let tps: f64 = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("tps = "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no tps in the pgbench output: {stdout}"))?;
        Ok(Baseline {
            label: "pgbench".into(),
            detail: format!(
                "pgbench, one-row INSERT per transaction, {clients} clients, {PGBENCH_SECONDS} s"
            ),
            rows_per_s: tps,
        })
    }

    // ------------------------------------------------------------ phase: the data set

    /// Inserts the N tasks with `Store::insert_tasks`, in batches; only the inserts
    /// are timed, not making the entities.
    async fn build_data_set(&mut self) -> Result<()> {
        let n = self.args.tasks;
        eprintln!(
            "[bench] inserting {} tasks into the store…",
            thousands(n as f64)
        );
        let mut busy = Duration::ZERO;
        let mut bytes = 0u64;
        let mut next_progress = n / 10;
        for start in (0..n).step_by(INSERT_BATCH as usize) {
            let batch = (start..(start + INSERT_BATCH).min(n))
                .map(|i| self.layout.new_task(i))
                .collect::<Result<Vec<_>>>()?;
            if start == 0 {
                bytes = batch
                    .iter()
                    .map(|t| t.entity_data.to_string().len() as u64)
                    .sum::<u64>()
                    / batch.len() as u64;
            }
            let t = Instant::now();
            self.store.insert_tasks(&batch).await?;
            busy += t.elapsed();
            if start + INSERT_BATCH >= next_progress && start + INSERT_BATCH < n {
                eprintln!(
                    "[bench]   {} inserted, {} tasks/s",
                    thousands((start + INSERT_BATCH) as f64),
                    thousands((start + INSERT_BATCH) as f64 / busy.as_secs_f64())
                );
                next_progress += n / 10;
            }
        }
        self.report.push(
            "ingest",
            "entity size (serialized JSON)".into(),
            format!("{bytes} bytes on average"),
            json!({"entity_bytes": bytes}),
        );
        let target = self.sqlite_target(Target::AtLeast(100_000.0), "≥ 100,000/s");
        self.report.rate(
            "ingest",
            format!("Store::insert_tasks, {INSERT_BATCH}/call, into an empty store → N"),
            n,
            busy.as_secs_f64(),
            target,
        );
        Ok(())
    }

    /// The store's size on disk: the SQLite files, or the schema's tables with their
    /// indexes and TOAST.
    fn store_bytes(&self) -> Option<u64> {
        match &self.scratch.postgres {
            Some(pg) => psql(
                &pg.base_url,
                &format!(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = '{}' AND c.relkind = 'r'",
                    pg.schema
                ),
            )
            .ok()?
            .parse()
            .ok(),
            None => ["ferry.db", "ferry.db-wal"]
                .iter()
                .map(|f| std::fs::metadata(self.scratch.dir.join(f)).map(|m| m.len()))
                .sum::<std::io::Result<u64>>()
                .ok(),
        }
    }

    /// A target that the issue sets for SQLite only.
    fn sqlite_target(&self, t: Target, text: &'static str) -> Option<(Target, &'static str)> {
        (self.args.store == StoreKind::Sqlite).then_some((t, text))
    }

    /// Gives the data set every status through the store's own worker path: on each
    /// route the oldest 90% are claimed and completed as finished (70% of all tasks),
    /// failed (8%), retry (5%, due in 30 days), skipped (5%), or left processing (2%,
    /// under a day-long lease); the newest 10% stay new.
    async fn give_statuses(&mut self) -> Result<()> {
        eprintln!("[bench] giving the data set its statuses (claim + complete)…");
        let now = Timestamp::now();
        let mut claimed_total = 0u64;
        let mut completed_total = 0u64;
        let (mut claiming, mut completing) = (Duration::ZERO, Duration::ZERO);
        let worker = "bench-builder";
        for r in 0..self.layout.routes {
            let route = self.layout.route_id(r);
            let to_claim = self.layout.tasks_on_route(r) * 9 / 10;
            let mut claimed = 0u64;
            while claimed < to_claim {
                let limit = CLAIM_BATCH.min((to_claim - claimed) as u32);
                let t = Instant::now();
                let tasks = self
                    .store
                    .claim(&ClaimRequest {
                        route: &route,
                        limit,
                        now,
                        lease: Duration::from_secs(24 * 3_600),
                        worker,
                    })
                    .await?;
                claiming += t.elapsed();
                if tasks.is_empty() {
                    break;
                }
                claimed += tasks.len() as u64;
                let completions: Vec<Completion> = tasks
                    .iter()
                    .enumerate()
                    .filter_map(|(k, task)| {
                        completion(task, mix(claimed_total + k as u64) % 90, now)
                    })
                    .collect();
                claimed_total += tasks.len() as u64;
                let t = Instant::now();
                completed_total += self.store.complete(worker, &completions).await?;
                completing += t.elapsed();
            }
            eprintln!(
                "[bench]   {route}: {} claimed so far, claim {} tasks/s, complete {} tasks/s",
                thousands(claimed_total as f64),
                thousands(claimed_total as f64 / claiming.as_secs_f64()),
                thousands(completed_total as f64 / completing.as_secs_f64())
            );
        }
        let counts = self.store.count_tasks(&Default::default()).await?;
        let by_status: serde_json::Map<String, Value> = counts
            .0
            .iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        if let Some(bytes) = self.store_bytes() {
            self.report.push(
                "ingest",
                "store size with the data set".into(),
                format!(
                    "{} MB ({} bytes per task)",
                    thousands(bytes as f64 / 1_048_576.0),
                    thousands(bytes as f64 / self.args.tasks as f64)
                ),
                json!({"store_bytes": bytes}),
            );
        }
        self.report.push(
            "ingest",
            "the data set by status".into(),
            counts
                .0
                .iter()
                .map(|(s, n)| format!("{s} {}", thousands(*n as f64)))
                .collect::<Vec<_>>()
                .join(", "),
            json!({"by_status": by_status}),
        );
        self.report.rate(
            "processing",
            format!("Store::claim, {CLAIM_BATCH}/call (making the data set's statuses)"),
            claimed_total,
            claiming.as_secs_f64(),
            None,
        );
        self.report.rate(
            "processing",
            format!("Store::complete, up to {CLAIM_BATCH}/call (same)"),
            completed_total,
            completing.as_secs_f64(),
            None,
        );
        Ok(())
    }

    // ------------------------------------------------------------ phase: webhook

    /// Posts NDJSON batches of new products to the webhook over HTTP; only the
    /// requests are timed, not making the bodies.
    async fn webhook_ingest(&mut self, server: &Server) -> Result<()> {
        let n = WEBHOOK_SAMPLE.min(self.args.tasks);
        eprintln!(
            "[bench] posting {} entities to the webhook…",
            thousands(n as f64)
        );
        if n < self.args.tasks {
            self.report.note(format!(
                "webhook ingest is measured on a sample of {} entities (into a store that already holds the data set); the data set itself was inserted with Store::insert_tasks",
                thousands(n as f64)
            ));
        }
        let url = format!("{}/api/v1/webhooks/hook", server.base);
        let mut busy = Duration::ZERO;
        for start in (0..n).step_by(HTTP_BATCH) {
            let mut body = String::with_capacity(HTTP_BATCH * 1_100);
            for i in start..(start + HTTP_BATCH as u64).min(n) {
                let sku = format!("WH-{i:08}");
                body.push_str(&product(&sku, 1 << 40 | i).to_string());
                body.push('\n');
            }
            let sent = (start + HTTP_BATCH as u64).min(n) - start;
            let t = Instant::now();
            let r = server
                .http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?;
            let status = r.status();
            let answer: Value = r.json().await?;
            busy += t.elapsed();
            ensure!(
                status.as_u16() == 201 && answer["created"] == sent,
                "the webhook answered {status}: {}",
                short(&answer)
            );
        }
        let target = self.sqlite_target(Target::AtLeast(100_000.0), "≥ 100,000/s");
        self.report.rate(
            "ingest",
            format!("webhook over HTTP, NDJSON {HTTP_BATCH}/request, no transformers"),
            n,
            busy.as_secs_f64(),
            target,
        );
        Ok(())
    }

    // ------------------------------------------------------------ phase: processing

    /// Drains a route of new tasks with the file publisher, then one with the HTTP
    /// publisher to a loopback target, with `Engine::drain_route`.
    async fn processing(&mut self, server: &Server, received: &AtomicU64) -> Result<()> {
        for (route, prefix, n) in [
            ("proc-file", "PF", PROCESS_FILE_TASKS),
            ("proc-http", "PH", PROCESS_HTTP_TASKS),
        ] {
            let n = n.min(self.args.tasks);
            let now = Timestamp::now();
            for start in (0..n).step_by(INSERT_BATCH as usize) {
                let batch = (start..(start + INSERT_BATCH).min(n))
                    .map(|i| {
                        let sku = format!("{prefix}-{i:08}");
                        new_task(route, "product", &sku, product(&sku, 2 << 40 | i), now)
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.store.insert_tasks(&batch).await?;
            }
            eprintln!(
                "[bench] draining {route} ({} new tasks)…",
                thousands(n as f64)
            );
            let before = received.load(Ordering::SeqCst);
            let t = Instant::now();
            let summary = server.engine.drain_route(route).await?;
            let seconds = t.elapsed().as_secs_f64();
            ensure!(
                summary.finished == n,
                "{route}: {} of {n} tasks finished ({summary:?})",
                summary.finished
            );
            let (name, target) = if route == "proc-file" {
                (
                    format!("{route}: file publisher, batch_size {PROCESS_BATCH_SIZE}"),
                    self.sqlite_target(Target::AtLeast(20_000.0), "≥ 20,000/s"),
                )
            } else {
                let got = received.load(Ordering::SeqCst) - before;
                ensure!(got == n, "the HTTP target received {got} of {n} entities");
                (
                    format!(
                        "{route}: HTTP PUT to a loopback target, batch_size {PROCESS_BATCH_SIZE}"
                    ),
                    None,
                )
            };
            self.report.rate("processing", name, n, seconds, target);
        }
        Ok(())
    }

    // ------------------------------------------------------------ phase: queries

    /// The Tasks page's queries over HTTP: one warm-up, then `--runs` timed requests
    /// each (the whole round trip, answer read and parsed).
    async fn queries(&mut self, server: &Server) -> Result<()> {
        let counts = self.store.count_tasks(&Default::default()).await?;
        self.report.tasks_at_query_time = counts.total();
        let at = |f: f64| self.layout.at_fraction(f).to_rfc3339();
        let first_route = self.layout.route_id(0);
        let third_route = self.layout.route_id(2.min(self.layout.routes - 1));
        let mid = self.args.tasks / 2;
        let mid_sku = self.layout.sku(mid);
        let sku_part = match mid_sku["SKU-".len()..].trim_start_matches('0') {
            "" => "0".to_owned(),
            digits => digits.to_owned(),
        };
        // An identifier in the middle of the list, and a piece of its random part.
        let probe: Value = get_json(
            server,
            "/api/v1/tasks",
            &[("created_to", at(0.5)), ("per_page", "1".into())],
        )
        .await?;
        let mid_id = probe["items"][0]["identifier"]
            .as_str()
            .context("no task in the middle of the data set")?
            .to_owned();
        let id_part = mid_id[14..22].to_owned();

        let first_page = Some((Target::AtMost(20.0), "p95 ≤ 20 ms"));
        let contains = Some((Target::AtMost(50.0), "p95 ≤ 50 ms"));
        let counting = Some((Target::AtMost(100.0), "p95 ≤ 100 ms"));
        // Lists count as a client that wants speed does (`count=capped`: exact up to
        // 10,000, then a marked lower bound); the Tasks page itself takes its total from
        // the status counts. One case shows the cost of the exact count.
        let list = |name: String, params: &[(&'static str, &str)], target| Case {
            name: format!("list, {name}"),
            path: "/api/v1/tasks",
            params: params
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .chain([("count", "capped".to_owned())])
                .collect(),
            target,
        };
        let (from_20, to_60) = (at(0.2), at(0.6));
        let (from_40, to_41) = (at(0.40), at(0.41));
        let cases = [
            list("first page, no filter".into(), &[], first_page),
            list(
                format!("route = {first_route}"),
                &[("route", &first_route)],
                first_page,
            ),
            list(
                "status = failed".into(),
                &[("status", "failed")],
                first_page,
            ),
            list(
                "created in a 1% window".into(),
                &[("created_from", &from_40), ("created_to", &to_41)],
                first_page,
            ),
            list(
                "entity_schema equals stock".into(),
                &[
                    ("entity_schema", "stock"),
                    ("entity_schema_match", "equals"),
                ],
                first_page,
            ),
            list(
                format!("entity_identifier equals {mid_sku}"),
                &[
                    ("entity_identifier", &mid_sku),
                    ("entity_identifier_match", "equals"),
                ],
                first_page,
            ),
            list(
                format!("route {third_route} + finished + 40% created range"),
                &[
                    ("route", &third_route),
                    ("status", "finished"),
                    ("created_from", &from_20),
                    ("created_to", &to_60),
                ],
                first_page,
            ),
            list(
                "sorted by updated_at, no filter".into(),
                &[("sort", "updated_at")],
                first_page,
            ),
            list(
                format!("route = {first_route}, sorted by updated_at"),
                &[("route", &first_route), ("sort", "updated_at")],
                first_page,
            ),
            list(
                "entity_schema equals stock, sorted by updated_at".into(),
                &[
                    ("entity_schema", "stock"),
                    ("entity_schema_match", "equals"),
                    ("sort", "updated_at"),
                ],
                first_page,
            ),
            list(
                "created in a 1% window, sorted by updated_at".into(),
                &[
                    ("created_from", &from_40),
                    ("created_to", &to_41),
                    ("sort", "updated_at"),
                ],
                first_page,
            ),
            Case {
                name: "list, first page, no filter, count=exact".into(),
                params: vec![("count", "exact".to_owned())],
                ..list(String::new(), &[], None)
            },
            list(
                "deep page 1000 (per_page 50), no filter".into(),
                &[("page", "1000")],
                None,
            ),
            list(
                format!("identifier contains {id_part}"),
                &[("identifier", &id_part)],
                contains,
            ),
            list(
                format!("entity_identifier contains {sku_part}"),
                &[("entity_identifier", &sku_part)],
                contains,
            ),
            // The counts as the Tasks page asks for them (`count=estimate`: exact up to
            // 10,000 matches, then PostgreSQL's planner estimate, marked; SQLite
            // counts exactly), and once exactly, as "count exactly" on the page does.
            Case {
                name: "counts, no filter, count=estimate".into(),
                path: "/api/v1/tasks/counts",
                params: vec![("count", "estimate".to_owned())],
                target: counting,
            },
            Case {
                name: "counts, status = failed, count=estimate".into(),
                path: "/api/v1/tasks/counts",
                params: vec![
                    ("status", "failed".to_owned()),
                    ("count", "estimate".to_owned()),
                ],
                target: counting,
            },
            Case {
                name: "counts, no filter, count=exact".into(),
                path: "/api/v1/tasks/counts",
                params: vec![("count", "exact".to_owned())],
                target: None,
            },
        ];
        eprintln!("[bench] {} queries × {} runs…", cases.len(), self.args.runs);
        for Case {
            name,
            path,
            params,
            target,
        } in cases
        {
            // What matches, counted exactly (not timed); then a warm-up.
            let exact: Vec<_> = params
                .iter()
                .filter(|(k, _)| *k != "count")
                .cloned()
                .collect();
            let first = get_json(server, path, &exact).await?;
            let matched = first["total"].as_u64().unwrap_or(0);
            get_json(server, path, &params).await?;
            let mut samples = Vec::with_capacity(self.args.runs);
            for _ in 0..self.args.runs {
                let t = Instant::now();
                get_json(server, path, &params).await?;
                samples.push(t.elapsed().as_secs_f64() * 1_000.0);
            }
            self.report
                .latency(name, &Stats::new(samples), matched, target);
        }
        Ok(())
    }

    // ------------------------------------------------------------ phase: bulk actions

    /// Bulk retry, then bulk skip, by a route filter: first on routes holding about
    /// 100,000 tasks (a tenth of the data set when that is smaller), then on all routes
    /// (the whole data set).
    async fn bulk_actions(&mut self, server: &Server) -> Result<()> {
        let routes = self.layout.route_ids();
        let per_route = self.args.tasks / u64::from(self.args.routes);
        let subset = BULK_SUBSET.min(self.args.tasks / 10);
        let k = ((subset as f64 / per_route as f64).round() as usize).clamp(1, routes.len());
        let retry_target = Some((Target::AtLeast(50_000.0), "≥ 50,000/s (1M in < 20 s)"));
        for (label, chosen) in [("subset", &routes[..k]), ("all", &routes[..])] {
            for action in ["retry", "skip"] {
                eprintln!("[bench] bulk {action} job on {} route(s)…", chosen.len());
                // While the biggest job runs, the Tasks page's first query is timed too:
                // the job's batches must leave the database to others.
                let watch = label == "all" && action == "retry";
                let (job, seconds, during) = self.bulk_job(server, action, chosen, watch).await?;
                let matched = job["matched"].as_u64().unwrap_or(0);
                let changed = job["changed"].as_u64().unwrap_or(0);
                let target = watch.then_some(retry_target).flatten();
                self.report.rate(
                    "bulk",
                    format!(
                        "{action} job by filter, {} route(s): {} matched, {} changed",
                        chosen.len(),
                        thousands(matched as f64),
                        thousands(changed as f64)
                    ),
                    matched,
                    seconds,
                    target,
                );
                if !during.is_empty() {
                    self.report.latency(
                        "list, first page, no filter, while that retry job runs".into(),
                        &Stats::new(during),
                        self.args.tasks,
                        None,
                    );
                }
            }
        }
        Ok(())
    }

    /// Starts a bulk job over HTTP and follows it to its end, as the page and the CLI
    /// do; answers the ended job, the seconds from the request to the end, and (with
    /// `watch`) the latencies of the Tasks page's first query sampled meanwhile.
    async fn bulk_job(
        &self,
        server: &Server,
        action: &str,
        routes: &[String],
        watch: bool,
    ) -> Result<(Value, f64, Vec<f64>)> {
        let body = json!({"action": action, "filter": {"route": routes}, "reason": "ferry bench"});
        let t = Instant::now();
        let r = server
            .http
            .post(format!("{}/api/v1/bulk-jobs", server.base))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let mut job: Value = r.json().await?;
        ensure!(
            status.as_u16() == 202,
            "the bulk job answered {status}: {}",
            short(&job)
        );
        let path = format!("/api/v1/bulk-jobs/{}", job["id"]);
        let mut during = Vec::new();
        while job["state"] == "running" {
            if watch {
                let q = Instant::now();
                get_json(server, "/api/v1/tasks", &[("count", "capped".into())]).await?;
                during.push(q.elapsed().as_secs_f64() * 1_000.0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            job = get_json(server, &path, &[]).await?;
        }
        let seconds = t.elapsed().as_secs_f64();
        ensure!(job["state"] == "done", "the bulk job ended {}", short(&job));
        Ok((job, seconds, during))
    }

    // ------------------------------------------------------------ phase: graphile

    /// ferry next to graphile-worker on the same PostgreSQL: ferry inserts
    /// `--graphile-jobs` small new tasks on one route and drains it with the file
    /// publisher (its cheapest) through `Engine::drain_route`; then graphile-worker's
    /// own protocol (`bench/graphile.sh`) enqueues as many no-op jobs in one call and
    /// works them, unbatched and batched. Answers ferry ÷ graphile-worker.
    async fn graphile(&mut self, server: &Server) -> Result<()> {
        let n = self.args.graphile_jobs;
        let route = GRAPHILE_ROUTE;
        eprintln!(
            "[bench] graphile side by side: ferry inserts and drains {} tasks on {route}…",
            thousands(n as f64)
        );
        let now = Timestamp::now();
        let mut busy = Duration::ZERO;
        for start in (0..n).step_by(INSERT_BATCH as usize) {
            // Small entities, like graphile-worker's `{"id": i}` payloads.
            let batch = (start..(start + INSERT_BATCH).min(n))
                .map(|i| {
                    let sku = format!("GW-{i:08}");
                    new_task(route, "product", &sku, json!({"sku": sku, "id": i}), now)
                })
                .collect::<Result<Vec<_>>>()?;
            let t = Instant::now();
            self.store.insert_tasks(&batch).await?;
            busy += t.elapsed();
        }
        let inserted = n as f64 / busy.as_secs_f64().max(1e-9);
        self.report.rate(
            "graphile",
            format!("ferry: Store::insert_tasks, {INSERT_BATCH}/call, small entities"),
            n,
            busy.as_secs_f64(),
            None,
        );
        let t = Instant::now();
        let summary = server.engine.drain_route(route).await?;
        let seconds = t.elapsed().as_secs_f64();
        ensure!(
            summary.finished == n,
            "{route}: {} of {n} tasks finished ({summary:?})",
            summary.finished
        );
        let drained = n as f64 / seconds.max(1e-9);
        self.report.rate(
            "graphile",
            format!(
                "ferry: {route} drained, file publisher, batch_size {PROCESS_BATCH_SIZE}, one engine"
            ),
            n,
            seconds,
            None,
        );

        let lines = tokio::task::block_in_place(|| self.run_graphile_script(n))?;
        let median_of = |mode: &str| -> Result<(f64, Vec<Value>)> {
            let picked: Vec<Value> = lines
                .iter()
                .filter(|l| l["mode"] == mode)
                .cloned()
                .collect();
            let rates: Vec<f64> = picked
                .iter()
                .filter_map(|l| l["jobs_per_s"].as_f64())
                .collect();
            ensure!(
                !rates.is_empty(),
                "bench/graphile.sh printed no {mode} figure (its output is above)"
            );
            Ok((Stats::new(rates).median(), picked))
        };
        let first = lines.first().cloned().unwrap_or_default();
        let version = first["graphile_worker"].as_str().unwrap_or("?").to_owned();
        self.report.note(format!(
            "graphile-worker {version} on node {} ran bench/graphile.sh on the same PostgreSQL ({}): \
             work rates are jobs ÷ (work time − one empty run's startup time), as its own perfTest",
            first["node"].as_str().unwrap_or("?"),
            first["postgres"].as_str().unwrap_or("?")
        ));
        let (enqueue, enqueue_lines) = median_of("enqueue")?;
        self.report.push(
            "graphile",
            format!(
                "graphile-worker {version}: enqueue, one add_jobs call of {}",
                thousands(n as f64)
            ),
            format!("{} jobs/s", thousands(enqueue)),
            json!({"jobs": n, "jobs_per_s": enqueue, "lines": enqueue_lines}),
        );
        let mut work = Vec::new();
        for mode in ["unbatched", "batched"] {
            let (rate, picked) = median_of(mode)?;
            let l = &picked[0];
            let wall = picked
                .iter()
                .filter_map(|l| l["jobs_per_s_wall"].as_f64())
                .collect::<Vec<_>>();
            let wall = Stats::new(wall).median();
            let queue = match l["local_queue"].as_u64() {
                Some(q) => format!(", local queue {q}"),
                None => String::new(),
            };
            self.report.push(
                "graphile",
                format!(
                    "graphile-worker {version}: work, {mode} ({} procs × {}{queue})",
                    l["procs"], l["concurrency"]
                ),
                format!(
                    "{} jobs/s ({} jobs/s with startup)",
                    thousands(rate),
                    thousands(wall)
                ),
                json!({"jobs": n, "jobs_per_s": rate, "jobs_per_s_wall": wall, "lines": picked}),
            );
            work.push((mode, rate));
        }
        let at_least = Some((Target::AtLeast(1.0), "≥ 1.00×"));
        for (mode, rate) in work.into_iter().rev() {
            let ratio = drained / rate;
            self.report
                .push(
                    "graphile",
                    format!("ferry ÷ graphile-worker ({mode})"),
                    format!(
                        "{ratio:.2}×  ({} ÷ {} jobs/s)",
                        thousands(drained),
                        thousands(rate)
                    ),
                    json!({"ratio": ratio, "ferry_tasks_per_s": drained, "graphile_jobs_per_s": rate}),
                )
                .judge(at_least, ratio);
        }
        let ratio = inserted / enqueue;
        self.report.push(
            "graphile",
            "ferry ÷ graphile-worker (enqueue)".into(),
            format!(
                "{ratio:.2}×  ({} ÷ {} jobs/s)",
                thousands(inserted),
                thousands(enqueue)
            ),
            json!({"ratio": ratio, "ferry_tasks_per_s": inserted, "graphile_jobs_per_s": enqueue}),
        );
        Ok(())
    }

    /// Runs `bench/graphile.sh` (its progress goes to stderr) with the connection of
    /// `--postgres-url`; answers its JSON lines.
    fn run_graphile_script(&self, jobs: u64) -> Result<Vec<Value>> {
        let pg = self
            .scratch
            .postgres
            .as_ref()
            .context("no PostgreSQL schema")?;
        let db = pg.graphile_db.as_deref().context("no graphile database")?;
        for tool in ["node", "npm"] {
            ensure!(
                Command::new(tool).arg("--version").output().is_ok(),
                "--graphile installs graphile-worker from npm and runs it with Node.js: \
                 install node and npm (Node.js 18 or later), or leave out --graphile"
            );
        }
        let conn = PgConn::from_url(&pg.base_url)?;
        let script = self.scratch.dir.join("graphile.sh");
        std::fs::write(&script, GRAPHILE_SH)
            .with_context(|| format!("cannot write {}", script.display()))?;
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .env("JOBS", jobs.to_string())
            .env("GW_DB", db)
            .env("PGHOST", &conn.host)
            .env("PGPORT", conn.port.to_string())
            .env("PGUSER", &conn.user)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        if let Some(password) = &conn.password {
            cmd.env("PGPASSWORD", password);
        }
        // A GW_DIR of the caller's (with GW_REUSE_INSTALL=1) saves the npm install.
        if std::env::var_os("GW_DIR").is_none() {
            cmd.env("GW_DIR", self.scratch.dir.join("graphile-worker"));
        }
        eprintln!(
            "[bench] running bench/graphile.sh: {} jobs on {}:{} as {}, database {db} (npm install first)…",
            thousands(jobs as f64),
            conn.host,
            conn.port,
            conn.user
        );
        let out = cmd.output().context("cannot run bash")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "bench/graphile.sh failed ({}); its messages are above. It needs npm registry access, \
             and a PostgreSQL role that may create databases (--postgres-url)",
            out.status
        );
        let lines: Vec<Value> = stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["bench"] == "graphile")
            .collect();
        ensure!(
            !lines.is_empty(),
            "bench/graphile.sh printed no JSON line; its output was: {}",
            stdout.trim()
        );
        Ok(lines)
    }
}

/// Connection settings for PostgreSQL's clients (PGHOST, PGPORT, PGUSER, PGPASSWORD),
/// read from a `postgres://user:password@host:port/database?host=/socket/folder` URL.
#[derive(Debug, PartialEq)]
struct PgConn {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

impl PgConn {
    fn from_url(url: &str) -> Result<PgConn> {
        let parsed = reqwest::Url::parse(url).with_context(|| {
            format!(
                "--postgres-url is not a URL ({}); use postgres://USER@HOST:PORT/DATABASE",
                crate::serve::redact(url)
            )
        })?;
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let host = query("host")
            .or_else(|| {
                parsed
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "/var/run/postgresql".into());
        let port = match query("port") {
            Some(p) => p
                .parse()
                .with_context(|| format!("--postgres-url: port {p} is not a number"))?,
            None => parsed.port().unwrap_or(5432),
        };
        let user = match query("user") {
            Some(u) => u,
            None if !parsed.username().is_empty() => percent_decode(parsed.username()),
            None => std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .context("--postgres-url names no user: use postgres://USER@HOST:PORT/DATABASE")?,
        };
        let password = query("password").or_else(|| parsed.password().map(percent_decode));
        Ok(PgConn {
            host,
            port,
            user,
            password,
        })
    }
}

/// Decodes `%XX` escapes (a URL's user name and password).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One query of the Tasks page: its API path and parameters.
struct Case {
    name: String,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    target: Option<(Target, &'static str)>,
}

/// Whether a claimed task ends finished, failed, retry or skipped (`roll` in 0..90),
/// or stays processing (`None`).
fn completion(task: &ferry_core::Task, roll: u64, now: Timestamp) -> Option<Completion> {
    let started_at = task.summary.created_at.plus_millis(1_000);
    let ended_at = started_at.plus_millis(250);
    let sku = &task.summary.entity_identifier;
    let (outcome, level, text) = match roll {
        0..70 => (
            Outcome::Finished,
            Level::Info,
            "published: appended 1024 bytes to out/published.ndjson".to_owned(),
        ),
        70..78 => {
            let error = format!(
                "PUT http://erp.example/products/{sku} → 422 Unprocessable Entity: price is required"
            );
            (
                Outcome::Failed {
                    error: error.clone(),
                },
                Level::Error,
                error,
            )
        }
        78..83 => {
            let error = format!("PUT http://erp.example/products/{sku} → 503 Service Unavailable");
            let at = now.plus_millis(SPAN_MS);
            (
                Outcome::Retry {
                    at,
                    error: error.clone(),
                },
                Level::Warn,
                format!("{error}; next attempt at {at}"),
            )
        }
        83..88 => (
            Outcome::Skipped,
            Level::Info,
            "skipped: an outgoing transformer dropped the entity".to_owned(),
        ),
        _ => return None,
    };
    Some(Completion {
        id: task.summary.id.clone(),
        attempt: task.summary.attempts,
        started_at,
        ended_at,
        outcome,
        messages: vec![
            Message::new(
                started_at,
                Level::Info,
                format!(
                    "attempt {} of 1 (retry off) by bench-builder",
                    task.summary.attempts
                ),
            ),
            Message::new(ended_at, level, text),
        ],
        response: None,
        published: None,
    })
}

async fn get_json(server: &Server, path: &str, pairs: &[(&str, String)]) -> Result<Value> {
    let r = server
        .http
        .get(format!("{}{path}", server.base))
        .query(pairs)
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    ensure!(
        status.is_success(),
        "GET {path} {pairs:?}: {status} {}",
        short(&body)
    );
    Ok(body)
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

/// The outside system of the HTTP publisher: `PUT /products/{sku}` reads the body,
/// counts it and answers `{}`. Answers its base URL and the count.
async fn start_target() -> Result<(String, Arc<AtomicU64>)> {
    use axum::extract::State;
    let received = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route(
            "/products/{sku}",
            axum::routing::put(
                |State(n): State<Arc<AtomicU64>>, _body: axum::body::Bytes| async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    "{}"
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_median_and_p95() {
        let s = Stats::new((1..=20).rev().map(f64::from).collect());
        assert_eq!(s.median(), 10.5);
        assert_eq!(s.p95(), 19.0);
        let one = Stats::new(vec![3.0]);
        assert_eq!((one.median(), one.p95()), (3.0, 3.0));
    }

    #[test]
    fn products_are_about_a_kilobyte() {
        let sizes: Vec<usize> = (0..100)
            .map(|i| product(&format!("SKU-{i:08}"), i).to_string().len())
            .collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((850..=1_200).contains(&mean), "mean entity size {mean}");
    }

    #[test]
    fn connection_settings_come_from_the_postgres_url() {
        let c = PgConn::from_url("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(
            c,
            PgConn {
                host: "127.0.0.1".into(),
                port: 5432,
                user: "postgres".into(),
                password: None
            }
        );
        let c = PgConn::from_url("postgres://me:p%40ss@db.local/ferry?sslmode=disable").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("db.local", 5432));
        assert_eq!(
            (c.user.as_str(), c.password.as_deref()),
            ("me", Some("p@ss"))
        );
        let c = PgConn::from_url("postgres:///db?host=/var/run/postgresql&port=5433&user=ferry")
            .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/var/run/postgresql", 5433));
        assert_eq!(c.user, "ferry");
        assert!(PgConn::from_url("not a url").is_err());
    }

    #[test]
    fn the_layout_spreads_tasks_over_routes_and_time() {
        let l = Layout::new(1_000, 20);
        assert_eq!((0..20).map(|r| l.tasks_on_route(r)).sum::<u64>(), 1_000);
        assert_eq!(l.route_id(0), "r01");
        assert!(l.created_at(999) > l.created_at(0));
        assert_eq!(thousands(1_234_567.4), "1,234,567");
    }
}
