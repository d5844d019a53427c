//! The engine: turns incoming entities into tasks and runs routes, one step at a time.

use crate::publish::Publisher;
use crate::transform::{self, Chain};
use ferry_core::config::{Config, ConfigError, Location, Problem, Route};
use ferry_core::entity::entity_identifier;
use ferry_core::retry::{AfterFailure, Failure};
use ferry_core::task::{Level, Message, NewTask, Task};
use ferry_core::{TaskId, Timestamp};
use ferry_store::{ClaimRequest, Completion, Outcome, Store, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a claimed task stays reserved for its worker.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// A source of the current time, injectable so tests need no sleeping.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub struct Engine {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    incoming: HashMap<String, Chain>,
    routes: HashMap<String, Chain>,
    outgoing: HashMap<String, (Chain, Arc<Publisher>)>,
    worker: String,
    lease: Duration,
    clock: Clock,
}

/// Tasks made from one delivery of entities.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub created: Vec<TaskId>,
    /// Entities (or route copies of entities) that a transformer dropped.
    pub dropped: usize,
}

/// One entity that could not become a task, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub route: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no incoming configuration is called '{0}'")]
    UnknownIncoming(String),
    #[error("{} of the entities cannot become tasks; nothing was created", .0.len())]
    Rejected(Vec<Rejected>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one route run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub claimed: u64,
    pub finished: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retry: u64,
    /// The route is disabled: nothing was claimed.
    pub disabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no route is called '{0}'")]
    UnknownRoute(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A configuration with every transformer compiled and every publisher prepared, not
/// yet attached to a store: a configuration error is found before anything is opened.
pub struct Prepared {
    config: Arc<Config>,
    incoming: HashMap<String, Chain>,
    routes: HashMap<String, Chain>,
    outgoing: HashMap<String, (Chain, Arc<Publisher>)>,
}

impl Prepared {
    /// Compiles every transformer of `config` and prepares its publishers. Relative
    /// file paths are taken from `base_dir`. Errors name the file, line and key.
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
        let client = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
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
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Attaches the store: the engine is ready to ingest and run.
    pub fn with_store(self, store: Arc<dyn Store>) -> Engine {
        Engine {
            config: self.config,
            store,
            incoming: self.incoming,
            routes: self.routes,
            outgoing: self.outgoing,
            worker: format!("ferry-{}", std::process::id()),
            lease: DEFAULT_LEASE,
            clock: Arc::new(Timestamp::now),
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

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Makes tasks of `entities` on every route that uses the incoming configuration:
    /// incoming transformers, then each route's transformers, then the entity
    /// identifier. All or nothing: when any entity fails, no task is created.
    pub async fn ingest(
        &self,
        incoming_id: &str,
        entities: Vec<Value>,
        source: &str,
    ) -> Result<Ingested, IngestError> {
        let incoming = self
            .config
            .incoming(incoming_id)
            .ok_or_else(|| IngestError::UnknownIncoming(incoming_id.to_owned()))?;
        let schema = self
            .config
            .entity_schema(incoming.entity_schema.as_str())
            .expect("validated: the schema exists");
        let routes: Vec<(&Route, Chain)> = self
            .config
            .routes_using(incoming_id)
            .map(|r| (r, self.routes[r.id.as_str()].clone()))
            .collect();
        let in_chain = self.incoming[incoming_id].clone();
        let now = self.now();
        let total = entities.len();
        let mut result = Ingested::default();
        let mut tasks = Vec::new();
        let mut rejected = Vec::new();
        for (index, entity) in entities.into_iter().enumerate() {
            let received = Message::new(
                now,
                Level::Info,
                format!("received from {source} (entity {} of {total})", index + 1),
            );
            let after_incoming = match transform::apply(&in_chain, entity) {
                Ok(t) => t,
                Err(message) => {
                    rejected.push(Rejected {
                        index,
                        route: None,
                        message,
                    });
                    continue;
                }
            };
            if after_incoming.outputs.is_empty() {
                tracing::debug!(incoming = incoming_id, index, notes = ?after_incoming.notes, "entity dropped");
                result.dropped += 1;
                continue;
            }
            for (route, chain) in &routes {
                for value in &after_incoming.outputs {
                    let after_route = match transform::apply(chain, value.clone()) {
                        Ok(t) => t,
                        Err(message) => {
                            rejected.push(Rejected {
                                index,
                                route: Some(route.id.to_string()),
                                message,
                            });
                            continue;
                        }
                    };
                    if after_route.outputs.is_empty() {
                        result.dropped += 1;
                        continue;
                    }
                    for data in after_route.outputs {
                        if !data.is_object() {
                            rejected.push(Rejected {
                                index,
                                route: Some(route.id.to_string()),
                                message: format!(
                                    "the transformed entity is not a JSON object: {}",
                                    short(&data)
                                ),
                            });
                            continue;
                        }
                        let identifier = match entity_identifier(&data, &schema.identifier_path) {
                            Ok(id) => id,
                            Err(e) => {
                                rejected.push(Rejected {
                                    index,
                                    route: Some(route.id.to_string()),
                                    message: format!("entity schema '{}': {e}", schema.id),
                                });
                                continue;
                            }
                        };
                        let mut log = vec![received.clone()];
                        log.extend(
                            after_incoming
                                .notes
                                .iter()
                                .chain(&after_route.notes)
                                .map(|n| Message::new(now, Level::Info, n.clone())),
                        );
                        log.push(Message::new(
                            now,
                            Level::Info,
                            format!(
                                "task created on route {} with entity identifier {identifier}",
                                route.id
                            ),
                        ));
                        let id = TaskId::generate(now);
                        result.created.push(id.clone());
                        tasks.push(NewTask {
                            id,
                            route: route.id.clone(),
                            entity_schema: schema.id.clone(),
                            entity_identifier: identifier,
                            entity_data: data,
                            created_at: now,
                            import_messages: log,
                        });
                    }
                }
            }
        }
        if !rejected.is_empty() {
            return Err(IngestError::Rejected(rejected));
        }
        self.store.insert_tasks(&tasks).await?;
        tracing::info!(
            incoming = incoming_id,
            created = tasks.len(),
            dropped = result.dropped,
            "ingested"
        );
        Ok(result)
    }

    /// Runs one batch of a route: claims up to its batch size of due tasks, oldest
    /// first, runs the outgoing transformers and the publisher on each in order, and
    /// records every outcome. This is the worker's single step.
    pub async fn run_route(&self, route_id: &str) -> Result<RunSummary, RunError> {
        let route = self
            .config
            .route(route_id)
            .ok_or_else(|| RunError::UnknownRoute(route_id.to_owned()))?;
        if route.disabled {
            return Ok(RunSummary {
                disabled: true,
                ..RunSummary::default()
            });
        }
        let (chain, publisher) = self.outgoing[route.outgoing.as_str()].clone();
        let claimed = self
            .store
            .claim(&ClaimRequest {
                route: route_id,
                limit: route.batch_size,
                now: self.now(),
                lease: self.lease,
                worker: &self.worker,
            })
            .await?;
        let mut summary = RunSummary {
            claimed: claimed.len() as u64,
            ..RunSummary::default()
        };
        let mut completions = Vec::with_capacity(claimed.len());
        for task in claimed {
            let c = self.process(route, &chain, &publisher, task).await;
            match c.outcome {
                Outcome::Finished => summary.finished += 1,
                Outcome::Skipped => summary.skipped += 1,
                Outcome::Retry { .. } => summary.retry += 1,
                Outcome::Failed { .. } => summary.failed += 1,
            }
            completions.push(c);
        }
        self.store.complete(&completions).await?;
        if summary.claimed > 0 {
            tracing::info!(route = route_id, ?summary, "route run");
        }
        Ok(summary)
    }

    async fn process(
        &self,
        route: &Route,
        chain: &Chain,
        publisher: &Publisher,
        task: Task,
    ) -> Completion {
        let started_at = self.now();
        let attempt = task.summary.attempts;
        let mut log = vec![Message::new(
            started_at,
            Level::Info,
            format!(
                "attempt {attempt} of {} by {}",
                max_label(route),
                self.worker
            ),
        )];
        let result = match transform::apply(chain, task.entity_data) {
            Err(message) => Err(Failure {
                message,
                http_status: None,
            }),
            Ok(t) => {
                log.extend(
                    t.notes
                        .into_iter()
                        .map(|n| Message::new(self.now(), Level::Info, n)),
                );
                match t.outputs.len() {
                    0 => Ok(None),
                    1 => {
                        let entity = t.outputs.into_iter().next().expect("one output");
                        publisher.publish(&entity).await.map(Some)
                    }
                    n => Err(Failure {
                        message: format!(
                            "the outgoing transformers made {n} values of one entity; a task publishes exactly one"
                        ),
                        http_status: None,
                    }),
                }
            }
        };
        let ended_at = self.now();
        let outcome = match result {
            Ok(Some(note)) => {
                log.push(Message::new(
                    ended_at,
                    Level::Info,
                    format!("published: {note}"),
                ));
                Outcome::Finished
            }
            Ok(None) => {
                log.push(Message::new(
                    ended_at,
                    Level::Info,
                    "skipped: an outgoing transformer dropped the entity",
                ));
                Outcome::Skipped
            }
            Err(failure) => match route.retry.after_failure(attempt, &failure, ended_at) {
                AfterFailure::Retry { at } => {
                    log.push(Message::new(
                        ended_at,
                        Level::Warn,
                        format!("{}; next attempt at {at}", failure.message),
                    ));
                    Outcome::Retry {
                        at,
                        error: failure.message,
                    }
                }
                AfterFailure::Fail => {
                    log.push(Message::new(
                        ended_at,
                        Level::Error,
                        failure.message.clone(),
                    ));
                    Outcome::Failed {
                        error: failure.message,
                    }
                }
            },
        };
        Completion {
            id: task.summary.id,
            attempt,
            started_at,
            ended_at,
            outcome,
            messages: log,
        }
    }
}

fn max_label(route: &Route) -> String {
    if route.retry.enabled {
        route.retry.max_attempts.to_string()
    } else {
        "1 (retry off)".to_owned()
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}
