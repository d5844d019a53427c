//! The engine: turns incoming entities into tasks and runs routes, one step at a time.
//! [`crate::runtime`] drives these steps in the background; tests call them directly.

use crate::publish::Publisher;
use crate::subscribe::Source;
use crate::transform::{self, Chain, Transformed};
use ferry_core::Timestamp;
use ferry_core::config::{Config, ConfigError, Location, Problem, WorkersConfig};
use ferry_store::Store;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Mutex, Notify};

/// A source of the current time, injectable so tests need no sleeping.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Runs of one chain that passed the time limit and may still be spinning; beyond this
/// many, the chain fails at once instead of starting another.
const MAX_STUCK_RUNS: usize = 2;

pub struct Engine {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) incoming: HashMap<String, Chain>,
    pub(crate) routes: HashMap<String, Chain>,
    pub(crate) outgoing: HashMap<String, (Chain, Arc<Publisher>)>,
    pub(crate) sources: HashMap<String, Arc<Source>>,
    /// One run at a time per route and per incoming configuration in this process.
    pub(crate) route_locks: HashMap<String, Arc<Mutex<()>>>,
    pub(crate) incoming_locks: HashMap<String, Arc<Mutex<()>>>,
    /// Woken when tasks are created on a realtime route.
    pub(crate) wake: HashMap<String, Arc<Notify>>,
    pub(crate) worker: String,
    pub(crate) clock: Clock,
    pub(crate) stopping: AtomicBool,
    stuck: Arc<AtomicUsize>,
}

/// A configuration with every transformer compiled and every publisher and subscriber
/// prepared, not yet attached to a store: a configuration error is found before
/// anything is opened.
pub struct Prepared {
    config: Arc<Config>,
    incoming: HashMap<String, Chain>,
    routes: HashMap<String, Chain>,
    outgoing: HashMap<String, (Chain, Arc<Publisher>)>,
    sources: HashMap<String, Arc<Source>>,
}

impl Prepared {
    /// Compiles every transformer of `config` and prepares its publishers and
    /// subscribers. Relative file paths are taken from `base_dir`. Errors name the
    /// file, line and key.
    pub fn new(config: Config, base_dir: &Path, file_name: &str) -> Result<Prepared, ConfigError> {
        let mut problems = Vec::new();
        let mut compile = |chain: &[ferry_core::config::Transformer]| {
            transform::compile(chain).unwrap_or_else(|errors: Vec<(Location, String)>| {
                problems.extend(errors.into_iter().map(|(at, message)| Problem {
                    line: at.line,
                    key: at.key,
                    message,
                }));
                Arc::new(Vec::new())
            })
        };
        let incoming = config
            .incoming
            .iter()
            .map(|i| (i.id.to_string(), compile(&i.transformers)))
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|r| (r.id.to_string(), compile(&r.transformers)))
            .collect();
        // Outside systems are not trusted to behave: bounded connect time and redirects
        // (each request also has its configured timeout, and answers are read capped).
        let client = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap_or_default();
        let outgoing = config
            .outgoing
            .iter()
            .map(|o| {
                let publisher = Publisher::new(&o.publisher, base_dir, &client);
                (
                    o.id.to_string(),
                    (compile(&o.transformers), Arc::new(publisher)),
                )
            })
            .collect();
        let mut sources = HashMap::new();
        for (i, inc) in config.incoming.iter().enumerate() {
            match Source::new(&inc.subscriber, base_dir, &client) {
                Ok(Some(source)) => {
                    sources.insert(inc.id.to_string(), Arc::new(source));
                }
                Ok(None) => {}
                Err((key, message)) => problems.push(Problem {
                    line: None,
                    key: format!("incoming[{i}].{key}"),
                    message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError {
                file: file_name.to_owned(),
                problems,
            });
        }
        Ok(Prepared {
            config: Arc::new(config),
            incoming,
            routes,
            outgoing,
            sources,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Attaches the store: the engine is ready to ingest and run.
    pub fn with_store(self, store: Arc<dyn Store>) -> Engine {
        let locks = |ids: Vec<String>| -> HashMap<String, Arc<Mutex<()>>> {
            ids.into_iter()
                .map(|id| (id, Arc::new(Mutex::new(()))))
                .collect()
        };
        let route_ids: Vec<String> = self
            .config
            .routes
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        let incoming_ids: Vec<String> = self
            .config
            .incoming
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        let wake = self
            .config
            .routes
            .iter()
            .filter(|r| r.realtime)
            .map(|r| (r.id.to_string(), Arc::new(Notify::new())))
            .collect();
        Engine {
            config: self.config,
            store,
            incoming: self.incoming,
            routes: self.routes,
            outgoing: self.outgoing,
            sources: self.sources,
            route_locks: locks(route_ids),
            incoming_locks: locks(incoming_ids),
            wake,
            worker: format!(
                "ferry-{}-{}",
                std::process::id(),
                &ferry_core::TaskId::generate(Timestamp::now()).as_str()[20..]
            ),
            clock: Arc::new(Timestamp::now),
            stopping: AtomicBool::new(false),
            stuck: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Engine {
    /// Prepares `config` and attaches `store`; see [`Prepared::new`].
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        base_dir: &Path,
        file_name: &str,
    ) -> Result<Engine, ConfigError> {
        Ok(Prepared::new(config, base_dir, file_name)?.with_store(store))
    }

    /// Replaces the clock (tests drive time by hand).
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// Names this engine's worker in leases and logs.
    pub fn with_worker_name(mut self, name: impl Into<String>) -> Engine {
        self.worker = name.into();
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn workers(&self) -> &WorkersConfig {
        &self.config.workers
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Asks every run in progress to stop after its current task.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for notify in self.wake.values() {
            notify.notify_waiters();
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Runs a chain on one entity on a blocking thread, within the configured time
    /// limit. A run past the limit fails; while runs that passed it may still be
    /// spinning, new ones fail at once rather than pile up.
    pub(crate) async fn transform(
        &self,
        chain: &Chain,
        entity: Value,
    ) -> Result<Transformed, String> {
        if chain.is_empty() {
            return Ok(Transformed {
                outputs: vec![entity],
                notes: Vec::new(),
            });
        }
        let limit = self.config.workers.transform_timeout;
        if self.stuck.load(Ordering::SeqCst) >= MAX_STUCK_RUNS {
            return Err(format!(
                "transformers are disabled: {MAX_STUCK_RUNS} earlier runs passed the time limit of {limit:?} (workers.transform_timeout) and are still running; fix the filter and restart ferry"
            ));
        }
        let run_chain = chain.clone();
        let handle = tokio::task::spawn_blocking(move || transform::apply(&run_chain, entity));
        let mut handle = Box::pin(handle);
        match tokio::time::timeout(limit, &mut handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("the transformer stopped unexpectedly: {join}")),
            Err(_) => {
                let stuck = self.stuck.clone();
                stuck.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = handle.await;
                    stuck.fetch_sub(1, Ordering::SeqCst);
                });
                let steps: Vec<String> = chain.iter().map(|c| c.describe()).collect();
                Err(format!(
                    "the transformers took longer than {limit:?} (workers.transform_timeout): {}",
                    steps.join(", ")
                ))
            }
        }
    }
}
