//! The engine: turns incoming entities into tasks and runs routes, one step at a time.
//! [`crate::runtime`] drives these steps in the background; tests call them directly.

use crate::connectors::{self, Connect, Fetch, Publish, Subscription, webhook};
use crate::schema::SchemaCheck;
use crate::transform::{self, Chain, Transformed};
use ferry_core::Timestamp;
use ferry_core::config::{Config, ConfigError, Location, Problem, WorkersConfig};
use ferry_store::Store;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
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
    pub(crate) outgoing: HashMap<String, (Chain, Arc<dyn Publish>)>,
    pub(crate) sources: HashMap<String, Arc<dyn Fetch>>,
    pub(crate) webhooks: HashMap<String, webhook::Settings>,
    pub(crate) connections: HashMap<String, Arc<dyn Connect>>,
    /// Entity schemas' JSON Schemas, by entity schema id.
    pub(crate) schemas: HashMap<String, Arc<SchemaCheck>>,
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
    outgoing: HashMap<String, (Chain, Arc<dyn Publish>)>,
    sources: HashMap<String, Arc<dyn Fetch>>,
    webhooks: HashMap<String, webhook::Settings>,
    connections: HashMap<String, Arc<dyn Connect>>,
    schemas: HashMap<String, Arc<SchemaCheck>>,
    /// The configuration's warnings and the connectors'.
    warnings: Vec<Problem>,
}

impl Prepared {
    /// Compiles every transformer of `config` and prepares its publishers and
    /// subscribers. Relative file paths are taken from `base_dir`. Errors name the
    /// file, line and key.
    pub fn new(config: Config, base_dir: &Path, file_name: &str) -> Result<Prepared, ConfigError> {
        let mut problems = Vec::new();
        // Outside systems are not trusted to behave: bounded connect time (each request
        // also has its configured timeout, and answers are read capped), and no redirect
        // followed by the client, which would carry the configured headers (API keys) to
        // wherever it points: publishers and subscribers handle a 3xx themselves.
        let client = connectors::tls::client_builder()
            .build()
            .unwrap_or_default();
        let mut warnings = config.warnings().to_vec();
        let (mut publishers, mut sources, mut webhooks) =
            (HashMap::new(), HashMap::new(), HashMap::new());
        let (mut connections, mut lookups) = (HashMap::new(), HashMap::new());
        let mut connector_problems = Vec::new();
        match connectors::build(&config, base_dir, &client) {
            Err(p) => connector_problems = p,
            Ok(built) => {
                warnings.extend(built.warnings);
                connections = built.connections;
                lookups = built.lookups;
                publishers = built.publishers;
                for (id, sub) in built.subscriptions {
                    match sub {
                        Subscription::Pushed(w) => {
                            webhooks.insert(id, *w);
                        }
                        Subscription::Pulled(f) => {
                            sources.insert(id, f);
                        }
                    }
                }
            }
        }
        let inputs = transform::Inputs {
            base_dir,
            lookups: &lookups,
        };
        let mut compile = |chain: &[ferry_core::config::Transformer]| {
            transform::compile(chain, &inputs).unwrap_or_else(|errors: Vec<(Location, String)>| {
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
        let mut outgoing = HashMap::new();
        for o in &config.outgoing {
            if let Some(p) = publishers.get(o.id.as_str()) {
                outgoing.insert(o.id.to_string(), (compile(&o.transformers), p.clone()));
            }
        }
        problems.extend(connector_problems);
        let mut schemas = HashMap::new();
        for (i, schema) in config.entity_schemas.iter().enumerate() {
            match SchemaCheck::load(schema, base_dir) {
                Some(Ok(check)) => {
                    schemas.insert(schema.id.to_string(), Arc::new(check));
                }
                Some(Err(message)) => problems.push(Problem {
                    line: None,
                    key: format!("entity_schemas[{i}].json_schema"),
                    message,
                }),
                None => (),
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
            webhooks,
            connections,
            schemas,
            warnings,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The built connections by id (`ferry check --connect` reaches them).
    pub fn connections(&self) -> &HashMap<String, Arc<dyn Connect>> {
        &self.connections
    }

    /// What loads but deserves a second look (`ferry check` prints these).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
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
            webhooks: self.webhooks,
            connections: self.connections,
            schemas: self.schemas,
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

    /// The settings of a webhook incoming configuration (`None` for any other).
    pub fn webhook(&self, incoming: &str) -> Option<&webhook::Settings> {
        self.webhooks.get(incoming)
    }

    /// Whether ferry runs this incoming configuration's subscriber itself (a file or an
    /// http subscriber; a webhook is pushed to instead).
    pub fn runs_itself(&self, incoming: &str) -> bool {
        self.sources.contains_key(incoming)
    }

    /// The circuit breaker's state of an outgoing configuration's connection, if it has
    /// one.
    pub fn circuit(&self, outgoing: &str) -> Option<crate::connectors::CircuitState> {
        self.outgoing.get(outgoing).and_then(|(_, p)| p.circuit())
    }

    /// How an outgoing configuration delivers now (requests in flight, the level
    /// allowed, a rate limit), for a publisher that limits its requests.
    pub fn delivery(&self, outgoing: &str) -> Option<crate::connectors::DeliveryState> {
        self.outgoing.get(outgoing).and_then(|(_, p)| p.delivery())
    }

    /// The built connections by id.
    pub fn connections(&self) -> &HashMap<String, Arc<dyn Connect>> {
        &self.connections
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

    /// Runs a chain on each entity, in order, on one blocking thread (one hand-off for a
    /// whole delivery or batch), each entity within the configured time limit. An
    /// entity past the limit fails; its thread is left to spin and the entities after it
    /// go on on a new one. While runs that passed the limit may still be spinning, new
    /// ones fail at once rather than pile up.
    pub(crate) async fn transform_all(
        &self,
        chain: &Chain,
        entities: Vec<Value>,
    ) -> Vec<Result<Transformed, String>> {
        if chain.is_empty() {
            return entities
                .into_iter()
                .map(|entity| {
                    Ok(Transformed {
                        outputs: vec![entity],
                        notes: Vec::new(),
                    })
                })
                .collect();
        }
        let limit = self.config.workers.transform_timeout;
        let total = entities.len();
        let mut results = Vec::with_capacity(total);
        let mut pending: std::collections::VecDeque<Value> = entities.into();
        while !pending.is_empty() {
            if self.stuck.load(Ordering::SeqCst) >= MAX_STUCK_RUNS {
                let message = format!(
                    "transformers are disabled: {MAX_STUCK_RUNS} earlier runs passed the time limit of {limit:?} (workers.transform_timeout) and are still running; fix the filter and restart ferry"
                );
                results.extend(pending.drain(..).map(|_| Err(message.clone())));
                break;
            }
            let batch = Arc::new(Batch::new(std::mem::take(&mut pending)));
            let (worker, run_chain) = (batch.clone(), chain.clone());
            let mut handle = Box::pin(tokio::task::spawn_blocking(move || worker.run(&run_chain)));
            let tick = (limit / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
            loop {
                match tokio::time::timeout(tick, &mut handle).await {
                    Ok(Ok(())) => {
                        results.append(&mut batch.give_up().0);
                        break;
                    }
                    Ok(Err(join)) => {
                        // The entity in hand panicked; the rest go on on a new thread.
                        let (mut done, rest) = batch.give_up();
                        results.append(&mut done);
                        results.push(Err(format!("the transformer stopped unexpectedly: {join}")));
                        pending = rest;
                        break;
                    }
                    Err(_) if batch.overdue(limit) => {
                        let (mut done, rest) = batch.give_up();
                        results.append(&mut done);
                        let steps: Vec<String> = chain.iter().map(|c| c.describe()).collect();
                        results.push(Err(format!(
                            "the transformers took longer than {limit:?} (workers.transform_timeout): {}",
                            steps.join(", ")
                        )));
                        pending = rest;
                        let stuck = self.stuck.clone();
                        stuck.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(async move {
                            let _ = handle.await;
                            stuck.fetch_sub(1, Ordering::SeqCst);
                        });
                        break;
                    }
                    Err(_) => {}
                }
            }
        }
        debug_assert_eq!(results.len(), total);
        results
    }
}

/// Entities handed to one blocking thread, and what it has done with them so far.
/// One lock over all of it, so giving up on the thread sees a consistent picture: the
/// entity in hand is in neither the input nor the output.
#[derive(Default)]
struct Batch {
    state: std::sync::Mutex<BatchState>,
}

#[derive(Default)]
struct BatchState {
    input: std::collections::VecDeque<Value>,
    output: Vec<Result<Transformed, String>>,
    /// When the entity in hand was started.
    since: Option<std::time::Instant>,
    /// The waiting side gave up on this thread: it must take and give nothing more.
    abandoned: bool,
}

impl Batch {
    fn new(input: std::collections::VecDeque<Value>) -> Batch {
        Batch {
            state: std::sync::Mutex::new(BatchState {
                input,
                ..BatchState::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        // A panicking transformer must not poison the batch for the waiting side.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, chain: &Chain) {
        loop {
            let entity = {
                let mut st = self.lock();
                if st.abandoned {
                    return;
                }
                let Some(entity) = st.input.pop_front() else {
                    return;
                };
                st.since = Some(std::time::Instant::now());
                entity
            };
            let result = transform::apply(chain, entity);
            let mut st = self.lock();
            if st.abandoned {
                return;
            }
            st.output.push(result);
            st.since = None;
        }
    }

    /// Everything done, and what was not started; the batch is then abandoned.
    fn give_up(
        &self,
    ) -> (
        Vec<Result<Transformed, String>>,
        std::collections::VecDeque<Value>,
    ) {
        let mut st = self.lock();
        st.abandoned = true;
        (
            std::mem::take(&mut st.output),
            std::mem::take(&mut st.input),
        )
    }

    /// Whether the entity in hand has run longer than `limit`.
    fn overdue(&self, limit: Duration) -> bool {
        self.lock().since.is_some_and(|t| t.elapsed() > limit)
    }
}
