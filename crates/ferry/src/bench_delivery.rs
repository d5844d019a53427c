//! `ferry bench --phases delivery` (issue 20): route runs delivering to slow targets.
//!
//! Two loopback targets in this process stand for two outside systems: each answers
//! every request after a fixed latency and serves at most [`TARGET_CAP`] at once (the
//! rest wait for a slot, as a busy server's backlog does, rather than being refused).
//! Two `http` connections lead to them and four routes share the connections (routes
//! 1–2 through A, 3–4 through B), so together the targets serve at most
//! 2 × cap ÷ latency requests a second; with a rate limit on each connection, at most
//! 2 × the rate.
//!
//! Each scenario (a fixed `max_in_flight`, `"auto"`, a rate limit) gets fresh targets,
//! a configuration and an engine of its own, and routes of its own in the run's store,
//! so no other phase's tasks interfere. Tasks go in through `Engine::ingest`; only the
//! delivery is timed: the four routes drained at once, until every outcome is recorded.
//! About a quarter of the tasks are later versions of an entity already queued, so the
//! targets also check that an entity's versions arrive in order, each once.

use crate::bench::{Report, Target, thousands};
use anyhow::{Context, Result, ensure};
use axum::extract::State;
use ferry_core::{Status, TaskFilter};
use ferry_engine::{Prepared, RunSummary};
use ferry_store::Store;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests each target serves at once.
const TARGET_CAP: usize = 64;
/// Routes of a scenario: the first half through connection A, the rest through B.
const ROUTES: usize = 4;
/// `batch_size` of the routes: large, so batch ends do not empty the pipe.
const BATCH_SIZE: u32 = 5_000;
/// Entities per `Engine::ingest` call.
const INGEST_CHUNK: usize = 2_500;
/// A later version picks its entity among the last this many made (still queued).
const RECENT: usize = 1_000;
/// Fixed and "auto" are met at this share of the targets' limit, and a rate limit
/// between it and the whole limit.
const MET_AT: f64 = 0.9;

#[derive(Clone, Copy)]
enum InFlight {
    Fixed(u32),
    Auto,
}

/// One configuration of the connections, against targets of one latency.
#[derive(Clone, Copy)]
struct Scenario {
    in_flight: InFlight,
    /// `rate_limit` of each connection, requests per second.
    rate: Option<u32>,
    latency_ms: u64,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        in_flight: InFlight::Fixed(64),
        rate: None,
        latency_ms: 50,
    },
    Scenario {
        in_flight: InFlight::Fixed(64),
        rate: None,
        latency_ms: 200,
    },
    Scenario {
        in_flight: InFlight::Auto,
        rate: None,
        latency_ms: 50,
    },
    Scenario {
        in_flight: InFlight::Auto,
        rate: None,
        latency_ms: 200,
    },
    Scenario {
        in_flight: InFlight::Fixed(64),
        rate: Some(200),
        latency_ms: 50,
    },
];

impl Scenario {
    /// Route ids start with it: `dl-fixed64-50ms-1`.
    fn key(&self) -> String {
        let kind = match (self.in_flight, self.rate) {
            (_, Some(r)) => format!("rate{r}"),
            (InFlight::Fixed(n), None) => format!("fixed{n}"),
            (InFlight::Auto, None) => "auto".to_owned(),
        };
        format!("dl-{kind}-{}ms", self.latency_ms)
    }

    fn label(&self) -> String {
        // A rate limit's max_in_flight is said in the phase's note.
        let setting = match (self.in_flight, self.rate) {
            (_, Some(r)) => format!("rate_limit {r}/s"),
            (InFlight::Fixed(n), None) => format!("max_in_flight {n}"),
            (InFlight::Auto, None) => "max_in_flight auto".to_owned(),
        };
        format!("{setting}, {} ms", self.latency_ms)
    }

    fn in_flight_toml(&self) -> String {
        match self.in_flight {
            InFlight::Fixed(n) => n.to_string(),
            InFlight::Auto => "\"auto\"".to_owned(),
        }
    }

    /// Requests a second the two targets allow together, and how that comes about.
    fn limit(&self) -> (f64, String) {
        let by_cap = 2.0 * TARGET_CAP as f64 * 1_000.0 / self.latency_ms as f64;
        match self.rate {
            Some(r) if f64::from(2 * r) < by_cap => (f64::from(2 * r), format!("2 × {r}/s")),
            _ => (by_cap, format!("2 × {TARGET_CAP} ÷ {} ms", self.latency_ms)),
        }
    }

    fn config(&self, storage_url: &str, targets: [&str; 2]) -> String {
        let mut text = format!(
            r#"[storage]
url = "{storage_url}"

[workers]
poll_interval = "100ms"
concurrency = {ROUTES}

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]
"#
        );
        for (c, url) in ["a", "b"].iter().zip(targets) {
            text.push_str(&format!(
                "\n[[connections]]\nid = \"target-{c}\"\ntype = \"http\"\nbase_url = \"{url}/\"\nmax_in_flight = {}\n",
                self.in_flight_toml()
            ));
            if let Some(r) = self.rate {
                text.push_str(&format!("rate_limit = \"{r}/s\"\n"));
            }
            text.push_str(&format!(
                "\n[[outgoing]]\nid = \"out-{c}\"\npublisher = {{ type = \"http\", method = \"PUT\", connection = \"target-{c}\", path = \"p/{{sku}}\" }}\n"
            ));
        }
        for r in 1..=ROUTES {
            let c = if r <= ROUTES / 2 { "a" } else { "b" };
            text.push_str(&format!(
                "\n[[incoming]]\nid = \"in-{r}\"\nentity_schema = \"product\"\nsubscriber = {{ type = \"webhook\" }}\n\n[[routes]]\nid = \"{}-{r}\"\nincoming = [\"in-{r}\"]\noutgoing = \"out-{c}\"\nbatch_size = {BATCH_SIZE}\n",
                self.key()
            ));
        }
        text
    }
}

/// The tasks of a scenario, in creation order: `(entity, version)`. Three in four
/// are an entity's first version; the fourth is the next version of one of the
/// [`RECENT`] entities made last, so some get a third version too.
fn plan(tasks: u64) -> Vec<(usize, u64)> {
    let mut versions: Vec<u64> = Vec::new();
    let mut plan = Vec::with_capacity(tasks as usize);
    for k in 0..tasks {
        if k % 4 == 3 && !versions.is_empty() {
            let recent = versions.len().min(RECENT);
            let back = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) as usize % recent;
            let e = versions.len() - 1 - back;
            versions[e] += 1;
            plan.push((e, versions[e]));
        } else {
            versions.push(1);
            plan.push((versions.len() - 1, 1));
        }
    }
    plan
}

/// The route (0-based) an entity travels.
fn route_of(entity: usize) -> usize {
    entity % ROUTES
}

fn sku(entity: usize) -> String {
    format!("D-{entity:06}")
}

fn entity(e: usize, version: u64) -> Value {
    json!({
        "sku": sku(e),
        "version": version,
        "name": format!("delivery product {e}"),
        "price": (e % 10_000) as f64 / 100.0 + 0.99,
        "stock": (e as u64 * 7 + version) % 500,
        "updated": format!("version {version}"),
    })
}

// ---------------------------------------------------------------- the targets

/// One request as a target saw it.
struct Arrival {
    /// Since the target started.
    at: Duration,
    sku: String,
    version: u64,
}

struct TargetState {
    latency: Duration,
    slots: tokio::sync::Semaphore,
    /// Requests arrived and not yet answered (waiting for a slot or served).
    open: AtomicUsize,
    peak_open: AtomicUsize,
    /// In the order they arrived.
    arrivals: Mutex<Vec<Arrival>>,
    started: Instant,
}

/// A slow outside system on a loopback port: `PUT /p/{sku}` waits for one of
/// [`TARGET_CAP`] slots, holds it for the latency, and answers `{}`.
struct LoopbackTarget {
    url: String,
    state: Arc<TargetState>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for LoopbackTarget {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Counts a request open until dropped (also when its connection goes away).
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn put(State(t): State<Arc<TargetState>>, body: axum::body::Bytes) -> &'static str {
    let at = t.started.elapsed();
    let now_open = t.open.fetch_add(1, Ordering::SeqCst) + 1;
    let _open = Open(&t.open);
    t.peak_open.fetch_max(now_open, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let arrival = Arrival {
        at,
        sku: body["sku"].as_str().unwrap_or_default().to_owned(),
        version: body["version"].as_u64().unwrap_or(0),
    };
    t.arrivals
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(arrival);
    let _slot = t.slots.acquire().await;
    tokio::time::sleep(t.latency).await;
    "{}"
}

impl LoopbackTarget {
    async fn start(latency: Duration) -> Result<LoopbackTarget> {
        let state = Arc::new(TargetState {
            latency,
            slots: tokio::sync::Semaphore::new(TARGET_CAP),
            open: AtomicUsize::new(0),
            peak_open: AtomicUsize::new(0),
            arrivals: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let app = axum::Router::new()
            .route("/p/{sku}", axum::routing::put(put))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let serving = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(LoopbackTarget {
            url,
            state,
            serving,
        })
    }

    /// What the target saw, once the run is over.
    fn seen(&self) -> Seen {
        let arrivals = self
            .state
            .arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut seen = Seen::of(&arrivals);
        seen.peak_open = self.state.peak_open.load(Ordering::SeqCst);
        seen
    }
}

/// What one target saw over a scenario.
#[derive(Default)]
struct Seen {
    requests: usize,
    /// The most requests open at once (arrived, not yet answered).
    peak_open: usize,
    /// The most requests that arrived within any one second (sliding), and 100 ms.
    most_in_second: usize,
    most_in_100ms: usize,
    /// A version that arrived after a higher version of the same entity.
    out_of_order: usize,
    /// An entity's version that arrived again.
    repeated: usize,
    /// Distinct (entity, version) pairs.
    versions: HashSet<(String, u64)>,
}

impl Seen {
    fn of(arrivals: &[Arrival]) -> Seen {
        let mut seen = Seen {
            requests: arrivals.len(),
            ..Seen::default()
        };
        let mut highest: HashMap<&str, u64> = HashMap::new();
        for a in arrivals {
            if !seen.versions.insert((a.sku.clone(), a.version)) {
                seen.repeated += 1;
                continue;
            }
            let top = highest.entry(&a.sku).or_default();
            if a.version < *top {
                seen.out_of_order += 1;
            }
            *top = (*top).max(a.version);
        }
        let mut times: Vec<Duration> = arrivals.iter().map(|a| a.at).collect();
        times.sort();
        seen.most_in_second = most_within(&times, Duration::from_secs(1));
        seen.most_in_100ms = most_within(&times, Duration::from_millis(100));
        seen
    }
}

/// The most of the sorted `times` that lie within any window `width` long (half open).
fn most_within(times: &[Duration], width: Duration) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while *t >= times[first] + width {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

// ---------------------------------------------------------------- the phase

/// Runs every scenario with `tasks` tasks on `store` and adds its rows to `report`.
pub(crate) async fn run(
    report: &mut Report,
    store: &Arc<dyn Store>,
    storage_url: &str,
    dir: &Path,
    tasks: u64,
) -> Result<()> {
    ensure!(
        tasks >= 100,
        "--delivery-tasks: use at least 100 (a few per route and entity)"
    );
    let plan = plan(tasks);
    let entities = plan.iter().map(|(e, _)| e + 1).max().unwrap_or(0);
    eprintln!(
        "[bench] delivery: {} scenarios of {} tasks ({} entities, {} later versions), {ROUTES} routes over 2 connections, targets serving {TARGET_CAP} at once",
        SCENARIOS.len(),
        thousands(tasks as f64),
        thousands(entities as f64),
        thousands((tasks as usize - entities) as f64),
    );
    let mut warned = HashSet::new();
    for scenario in SCENARIOS {
        scenario_run(
            report,
            store,
            storage_url,
            dir,
            &plan,
            scenario,
            &mut warned,
        )
        .await
        .with_context(|| format!("delivery, {}", scenario.label()))?;
    }
    report.note(format!(
        "delivery: each scenario delivers {} tasks ({} entities; the rest later versions of an entity already queued) over {ROUTES} routes and 2 http connections (a rate limit with max_in_flight 64) to 2 loopback targets in this process that serve {TARGET_CAP} requests at once each (more wait for a slot); timed from the start of the {ROUTES} drains to the last outcome recorded; peak at once counts requests open at a target, waiting or served",
        thousands(tasks as f64),
        thousands(entities as f64),
    ));
    Ok(())
}

async fn scenario_run(
    report: &mut Report,
    store: &Arc<dyn Store>,
    storage_url: &str,
    dir: &Path,
    plan: &[(usize, u64)],
    scenario: Scenario,
    warned: &mut HashSet<String>,
) -> Result<()> {
    let label = scenario.label();
    let latency = Duration::from_millis(scenario.latency_ms);
    let targets = [
        LoopbackTarget::start(latency).await?,
        LoopbackTarget::start(latency).await?,
    ];
    let text = scenario.config(storage_url, [&targets[0].url, &targets[1].url]);
    let file = "delivery.toml";
    let config = ferry_core::config::load(file, &text, std::iter::empty())?;
    let prepared = Prepared::new(config, dir, file)?;
    for w in prepared.warnings() {
        let line = format!("delivery configuration: {}: {}", w.key, w.message);
        if warned.insert(line.clone()) {
            report.note(line);
        }
    }
    let engine = Arc::new(prepared.with_store(store.clone()));
    let routes: Vec<String> = (1..=ROUTES)
        .map(|r| format!("{}-{r}", scenario.key()))
        .collect();

    // In: each route's entities in creation order, through the engine's ingest.
    eprintln!(
        "[bench] delivery, {label}: ingesting {} tasks…",
        thousands(plan.len() as f64)
    );
    for r in 0..ROUTES {
        let mine: Vec<Value> = plan
            .iter()
            .filter(|(e, _)| route_of(*e) == r)
            .map(|&(e, v)| entity(e, v))
            .collect();
        for chunk in mine.chunks(INGEST_CHUNK) {
            let made = engine
                .ingest(&format!("in-{}", r + 1), chunk.to_vec(), "bench delivery")
                .await?;
            ensure!(
                made.created.len() == chunk.len(),
                "ingest made {} tasks of {} entities",
                made.created.len(),
                chunk.len()
            );
        }
    }

    // Out, timed: every route drained at once, each on a task of its own.
    eprintln!("[bench] delivery, {label}: draining {ROUTES} routes…");
    let t = Instant::now();
    let drains: Vec<_> = routes
        .iter()
        .map(|route| {
            let (engine, route) = (engine.clone(), route.clone());
            tokio::spawn(async move { engine.drain_route(&route).await })
        })
        .collect();
    // The level each connection allows, sampled while the routes drain.
    let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = {
        let (engine, drained) = (engine.clone(), drained.clone());
        tokio::spawn(async move {
            let mut levels = Vec::new();
            while !drained.load(Ordering::SeqCst) {
                for out in ["out-a", "out-b"] {
                    if let Some(d) = engine.delivery(out) {
                        levels.push(d.level.limit);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            levels
        })
    };
    let mut summary = RunSummary::default();
    for (route, drain) in routes.iter().zip(drains) {
        let s = drain
            .await
            .context("a drain panicked")?
            .with_context(|| format!("draining {route}"))?;
        summary.finished += s.finished;
        summary.failed += s.failed;
        summary.retry += s.retry;
        summary.skipped += s.skipped;
    }
    let seconds = t.elapsed().as_secs_f64();
    drained.store(true, Ordering::SeqCst);
    let levels = sampling.await.context("the level sampler panicked")?;
    drop(engine);

    let seen: Vec<Seen> = targets.iter().map(LoopbackTarget::seen).collect();
    drop(targets);
    let counts = store
        .count_tasks(&TaskFilter {
            routes: routes.clone(),
            ..TaskFilter::default()
        })
        .await?;

    let n = plan.len() as u64;
    let per_s = n as f64 / seconds.max(1e-9);
    let (limit, why) = scenario.limit();
    let ratio = per_s / limit;
    let by_target = |f: fn(&Seen) -> usize| -> String {
        format!(
            "A {}, B {}",
            thousands(f(&seen[0]) as f64),
            thousands(f(&seen[1]) as f64)
        )
    };
    let out_of_order: usize = seen.iter().map(|s| s.out_of_order).sum();
    let repeated: usize = seen.iter().map(|s| s.repeated).sum();
    let arrived: usize = seen.iter().map(|s| s.versions.len()).sum();
    let missing = (n as usize).saturating_sub(arrived);
    let statuses: serde_json::Map<String, Value> = counts
        .0
        .iter()
        .map(|(s, c)| (s.as_str().to_owned(), json!(c)))
        .collect();
    let targets_json: Vec<Value> = seen
        .iter()
        .zip(["A", "B"])
        .map(|(s, name)| {
            json!({"target": name, "requests": s.requests, "peak_open": s.peak_open,
                "most_in_1s": s.most_in_second, "most_in_100ms": s.most_in_100ms,
                "out_of_order": s.out_of_order, "repeated": s.repeated})
        })
        .collect();
    let scenario_json = json!({
        "scenario": scenario.key(), "max_in_flight": scenario.in_flight_toml().trim_matches('"'),
        "rate_limit_per_s": scenario.rate, "latency_ms": scenario.latency_ms,
        "target_cap": TARGET_CAP, "routes": routes,
    });

    // Throughput against what the targets allow.
    let (target, text) = match scenario.rate {
        Some(_) => (
            Target::Between(MET_AT * limit, limit),
            format!(
                "{MET_AT}–1.0× ({}–{}/s)",
                thousands(MET_AT * limit),
                thousands(limit)
            ),
        ),
        None => (
            Target::AtLeast(MET_AT * limit),
            format!("≥ {MET_AT}× ({}/s)", thousands(MET_AT * limit)),
        ),
    };
    let mut json = scenario_json.clone();
    for (k, v) in [
        ("tasks", json!(n)),
        ("seconds", json!(seconds)),
        ("tasks_per_s", json!(per_s)),
        ("limit_per_s", json!(limit)),
        ("limit", json!(why)),
        ("ratio", json!(ratio)),
        ("summary", json!(format!("{summary:?}"))),
        ("targets", json!(targets_json)),
        ("statuses", json!(statuses)),
        ("out_of_order", json!(out_of_order)),
        ("repeated", json!(repeated)),
        ("missing", json!(missing)),
    ] {
        json[k] = v;
    }
    let row = report.push(
        "delivery",
        format!("{label}: delivered"),
        format!(
            "{} tasks/s ({} in {:.2} s)",
            thousands(per_s),
            thousands(n as f64),
            seconds
        ),
        json,
    );
    row.ratio = format!(
        "{ratio:.2}× the targets' limit of {}/s ({why})",
        thousands(limit)
    );
    row.judge(Some((target, &text)), per_s);

    // What the targets saw at once, and per second.
    let at_once = format!(
        "at once {} (cap {TARGET_CAP} each); most in 1 s {}, in 100 ms {}",
        by_target(|s| s.peak_open),
        by_target(|s| s.most_in_second),
        by_target(|s| s.most_in_100ms),
    );
    let mut json = scenario_json.clone();
    json["targets"] = json!(targets_json);
    let at_once = match (scenario.in_flight, levels.iter().max()) {
        (InFlight::Auto, Some(top)) => {
            let mean = levels.iter().sum::<usize>() as f64 / levels.len() as f64;
            json["auto_level_mean"] = json!(mean);
            json["auto_level_max"] = json!(top);
            format!("{at_once}; auto level mean {mean:.0}, at most {top}")
        }
        _ => at_once,
    };
    match scenario.rate {
        Some(r) => {
            let most = seen.iter().map(|s| s.most_in_second).max().unwrap_or(0);
            json["most_in_1s"] = json!(most);
            report
                .push(
                    "delivery",
                    format!("{label}: at the targets"),
                    at_once,
                    json,
                )
                .judge(
                    Some((
                        Target::AtMost(f64::from(r)),
                        &format!("≤ {r} in any 1 s per connection"),
                    )),
                    most as f64,
                );
        }
        None => {
            report.push(
                "delivery",
                format!("{label}: at the targets"),
                at_once,
                json,
            );
        }
    }

    // Order and repeats per entity, then the statuses in the store.
    let mut json = scenario_json.clone();
    json["out_of_order"] = json!(out_of_order);
    json["repeated"] = json!(repeated);
    json["missing"] = json!(missing);
    report
        .push(
            "delivery",
            format!("{label}: order"),
            format!(
                "{out_of_order} out of order, {repeated} delivered twice, {} of {} versions arrived",
                thousands(arrived as f64),
                thousands(n as f64)
            ),
            json,
        )
        .judge(
            Some((Target::AtMost(0.0), "none out of order, twice or missing")),
            (out_of_order + repeated + missing) as f64,
        );
    let finished = counts.get(Status::Finished);
    let others: Vec<String> = counts
        .0
        .iter()
        .filter(|(s, c)| **s != Status::Finished && **c > 0)
        .map(|(s, c)| format!("{} {}", s.as_str(), thousands(*c as f64)))
        .collect();
    let mut json = scenario_json;
    json["statuses"] = json!(statuses);
    report
        .push(
            "delivery",
            format!("{label}: statuses"),
            if others.is_empty() {
                format!("finished {}", thousands(finished as f64))
            } else {
                format!(
                    "finished {}, {}",
                    thousands(finished as f64),
                    others.join(", ")
                )
            },
            json,
        )
        .judge(
            Some((
                Target::AtLeast(n as f64),
                &format!("all {} finished", thousands(n as f64)),
            )),
            if counts.total() == n {
                finished as f64
            } else {
                0.0
            },
        );
    eprintln!(
        "[bench] delivery, {label}: {} tasks/s, {ratio:.2}× of {}/s; at once {}",
        thousands(per_s),
        thousands(limit),
        by_target(|s| s.peak_open)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_of_the_plan_is_later_versions_in_increasing_order() {
        let plan = plan(20_000);
        let first = plan.iter().filter(|(_, v)| *v == 1).count();
        assert_eq!(first, 15_000);
        assert!(plan.iter().any(|(_, v)| *v >= 3), "some third versions");
        let mut last: HashMap<usize, u64> = HashMap::new();
        for &(e, v) in &plan {
            assert_eq!(v, last.get(&e).copied().unwrap_or(0) + 1, "entity {e}");
            last.insert(e, v);
        }
    }

    #[test]
    fn the_targets_count_windows_order_and_repeats() {
        let at = |ms: u64, sku: &str, version: u64| Arrival {
            at: Duration::from_millis(ms),
            sku: sku.into(),
            version,
        };
        let seen = Seen::of(&[
            at(0, "a", 1),
            at(50, "b", 1),
            at(990, "a", 3),
            at(1_000, "b", 1),
            at(1_020, "a", 2),
        ]);
        assert_eq!((seen.out_of_order, seen.repeated), (1, 1));
        assert_eq!(seen.most_in_second, 4, "50 to 1,020 ms");
        assert_eq!(seen.most_in_100ms, 3, "990 to 1,020 ms");
        assert_eq!(seen.versions.len(), 4);
    }

    #[test]
    fn the_limit_is_the_caps_or_the_rates() {
        let s = SCENARIOS[0];
        assert_eq!(s.limit().0, 2_560.0);
        assert_eq!(SCENARIOS[1].limit().0, 640.0);
        assert_eq!(SCENARIOS[4].limit().0, 400.0);
        assert_eq!(s.key(), "dl-fixed64-50ms");
        let config = ferry_core::config::load(
            "delivery.toml",
            &SCENARIOS[4].config("sqlite://x.db", ["http://a", "http://b"]),
            std::iter::empty(),
        );
        assert!(config.is_ok(), "{config:?}");
    }
}
