//! Entities in: webhook deliveries and subscriber runs become tasks.

use crate::Engine;
use crate::connectors::Sourced;
use crate::connectors::file::move_aside;
use crate::schema::Violation;
use ferry_core::config::Route;
use ferry_core::entity::entity_identifier;
use ferry_core::task::{Level, Message, NewTask};
use ferry_core::{TaskId, Timestamp};
use ferry_store::StoreError;
use serde_json::Value;

/// Tasks made from one delivery of entities.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub created: Vec<TaskId>,
    /// Entities (or route copies of entities) that a transformer dropped.
    pub dropped: usize,
    /// With [`Mode::Lenient`]: the entities that could not become tasks.
    pub rejected: Vec<Rejected>,
}

/// One entity that could not become a task, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    /// Where the entity came from (a file and line, a page), when known.
    pub origin: Option<String>,
    pub route: Option<String>,
    pub message: String,
    /// Where the entity does not match its schema's JSON Schema, when that is why.
    pub violations: Vec<Violation>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{o}: ")?,
            None => write!(f, "entity {}: ", self.index)?,
        }
        if let Some(r) = &self.route {
            write!(f, "route {r}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// What to do when some entities cannot become tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create nothing and report them (a webhook caller can fix and resend).
    AllOrNothing,
    /// Create the others and report them (a file or a poll has nobody to answer).
    Lenient,
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

/// What one run of a subscriber did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IncomingRun {
    pub created: u64,
    pub dropped: u64,
    /// Problems met: unreadable lines with their file and line, failed requests,
    /// entities that could not become tasks.
    pub errors: Vec<String>,
    /// Files read and moved aside.
    pub files: Vec<String>,
    /// The new `since` mark, when this run moved it.
    pub since: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IncomingRunError {
    #[error("no incoming configuration is called '{0}'")]
    UnknownIncoming(String),
    #[error("'{0}' is a webhook: it receives entities by POST and has nothing to run")]
    Webhook(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Makes tasks of `entities` on every route that uses the incoming configuration:
    /// incoming transformers, then each route's transformers, then the entity
    /// identifier. All or nothing: when any entity fails, no task is created.
    pub async fn ingest(
        &self,
        incoming_id: &str,
        entities: Vec<Value>,
        source: &str,
    ) -> Result<Ingested, IngestError> {
        let sourced = entities
            .into_iter()
            .map(|entity| Sourced {
                entity,
                origin: source.to_owned(),
            })
            .collect();
        self.ingest_sourced(incoming_id, sourced, Mode::AllOrNothing)
            .await
    }

    /// [`Engine::ingest`] for entities that each know where they came from.
    pub async fn ingest_sourced(
        &self,
        incoming_id: &str,
        entities: Vec<Sourced>,
        mode: Mode,
    ) -> Result<Ingested, IngestError> {
        let incoming = self
            .config
            .incoming(incoming_id)
            .ok_or_else(|| IngestError::UnknownIncoming(incoming_id.to_owned()))?;
        let schema = self
            .config
            .entity_schema(incoming.entity_schema.as_str())
            .expect("validated: the schema exists");
        let json_schema = self
            .schemas
            .get(schema.id.as_str())
            .filter(|s| s.validate.incoming())
            .cloned();
        let json_schema = json_schema.as_deref();
        let routes: Vec<&Route> = self.config.routes_using(incoming_id).collect();
        let in_chain = self.incoming[incoming_id].clone();
        let now = self.now();
        let total = entities.len();
        let mut result = Ingested::default();
        let mut tasks = Vec::new();
        // Every entity through the incoming chain, then every output through each
        // route's chain: one hand-off to a blocking thread per chain, not per entity.
        let (origins, values): (Vec<String>, Vec<Value>) =
            entities.into_iter().map(|s| (s.origin, s.entity)).unzip();
        let mut after_incoming = self.transform_all(&in_chain, values).await;
        // The outputs move on to the routes (copied only for the second route and more);
        // what stays is how many each entity made.
        let mut outputs = Vec::with_capacity(after_incoming.len());
        let mut passed: Vec<Value> = Vec::with_capacity(after_incoming.len());
        for r in after_incoming.iter_mut() {
            let made = r.as_mut().map(|t| std::mem::take(&mut t.outputs));
            outputs.push(made.as_ref().map_or(0, Vec::len));
            passed.extend(made.unwrap_or_default());
        }
        let mut per_route = Vec::with_capacity(routes.len());
        for (k, route) in routes.iter().enumerate() {
            let chain = self.routes[route.id.as_str()].clone();
            let input = if k + 1 == routes.len() {
                std::mem::take(&mut passed)
            } else {
                passed.clone()
            };
            per_route.push(self.transform_all(&chain, input).await.into_iter());
        }
        for (index, ((after_incoming, outputs), origin)) in after_incoming
            .into_iter()
            .zip(outputs)
            .zip(origins)
            .enumerate()
        {
            let mut reject =
                |route: Option<&Route>, message: String, violations: Vec<Violation>| {
                    result.rejected.push(Rejected {
                        index,
                        origin: (mode == Mode::Lenient).then(|| origin.clone()),
                        route: route.map(|r| r.id.to_string()),
                        message,
                        violations,
                    })
                };
            let received = Message::new(
                now,
                Level::Info,
                format!("received from {origin} (entity {} of {total})", index + 1),
            );

            let after_incoming = match after_incoming {
                Ok(t) => t,
                Err(message) => {
                    reject(None, message, Vec::new());
                    continue;
                }
            };
            if outputs == 0 {
                tracing::debug!(incoming = incoming_id, index, notes = ?after_incoming.notes, "entity dropped");
                result.dropped += 1;
                continue;
            }
            for (route, route_results) in routes.iter().zip(per_route.iter_mut()) {
                for _ in 0..outputs {
                    let after_route = match route_results.next() {
                        Some(Ok(t)) => t,
                        Some(Err(message)) => {
                            reject(Some(route), message, Vec::new());
                            continue;
                        }
                        None => {
                            reject(
                                Some(route),
                                "the route's transformers gave no result".into(),
                                Vec::new(),
                            );
                            continue;
                        }
                    };
                    if after_route.outputs.is_empty() {
                        result.dropped += 1;
                        continue;
                    }
                    for data in after_route.outputs {
                        if !data.is_object() {
                            reject(
                                Some(route),
                                format!(
                                    "the transformed entity is not a JSON object: {}",
                                    short(&data)
                                ),
                                Vec::new(),
                            );
                            continue;
                        }
                        if let Some(check) = json_schema {
                            let violations = check.violations(&data);
                            if !violations.is_empty() {
                                let message = format!("the entity {}", check.describe(&violations));
                                reject(Some(route), message, violations);
                                continue;
                            }
                        }
                        let identifier = match entity_identifier(&data, &schema.identifier_path) {
                            Ok(id) => id,
                            Err(e) => {
                                reject(
                                    Some(route),
                                    format!("entity schema '{}': {e}", schema.id),
                                    Vec::new(),
                                );
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
                        tasks.push(new_task(
                            route,
                            schema.id.clone(),
                            identifier,
                            data,
                            now,
                            log,
                        ));
                    }
                }
            }
        }
        if mode == Mode::AllOrNothing && !result.rejected.is_empty() {
            return Err(IngestError::Rejected(result.rejected));
        }
        self.store.insert_tasks(&tasks).await?;
        result.created = tasks.into_iter().map(|t| t.id).collect();
        for route in &routes {
            if let Some(notify) = self.wake.get(route.id.as_str()) {
                notify.notify_one();
            }
        }
        tracing::info!(
            incoming = incoming_id,
            created = result.created.len(),
            dropped = result.dropped,
            rejected = result.rejected.len(),
            "ingested"
        );
        Ok(result)
    }

    /// Runs an incoming configuration's subscriber once: reads its files or polls its
    /// URL, makes tasks of what it found, and moves processed files aside. Problems are
    /// reported in the answer; what could be read still becomes tasks.
    pub async fn run_incoming(&self, incoming_id: &str) -> Result<IncomingRun, IncomingRunError> {
        if self.config.incoming(incoming_id).is_none() {
            return Err(IncomingRunError::UnknownIncoming(incoming_id.to_owned()));
        }
        let Some(source) = self.sources.get(incoming_id).cloned() else {
            return Err(IncomingRunError::Webhook(incoming_id.to_owned()));
        };
        let _one_at_a_time = self.incoming_locks[incoming_id].lock().await;
        let mark = self
            .store
            .since_mark(incoming_id)
            .await
            .map_err(IncomingRunError::Store)?;
        let fetched = source.fetch(mark.as_ref().map(|m| m.value.as_str())).await;
        let read_all = fetched.errors.is_empty();
        let mut run = IncomingRun {
            errors: fetched.errors,
            ..IncomingRun::default()
        };
        let ingested = self
            .ingest_sourced(incoming_id, fetched.entities, Mode::Lenient)
            .await
            .map_err(|e| match e {
                IngestError::Store(e) => IncomingRunError::Store(e),
                IngestError::UnknownIncoming(id) => IncomingRunError::UnknownIncoming(id),
                IngestError::Rejected(_) => {
                    unreachable!("lenient ingestion reports, never refuses")
                }
            })?;
        run.created = ingested.created.len() as u64;
        run.dropped = ingested.dropped as u64;
        run.errors
            .extend(ingested.rejected.iter().map(ToString::to_string));
        // A run that read every page moves the mark; one that failed part-way keeps the
        // old one, so the next run asks again for what this one could not read.
        if let Some(value) = &fetched.since
            && read_all
            && mark.as_ref().is_none_or(|m| &m.value != value)
        {
            self.store
                .set_since_mark(incoming_id, value, self.now())
                .await
                .map_err(IncomingRunError::Store)?;
            run.since = Some(value.clone());
        }
        for file in fetched.files {
            match move_aside(&file) {
                Ok(_) => run.files.push(file.display().to_string()),
                Err(e) => run.errors.push(format!(
                    "{}: read, but could not be moved aside ({e}); it will be read again",
                    file.display()
                )),
            }
        }
        for e in &run.errors {
            tracing::warn!(incoming = incoming_id, "{e}");
        }
        tracing::info!(
            incoming = incoming_id,
            created = run.created,
            errors = run.errors.len(),
            "subscriber run"
        );
        Ok(run)
    }
}

fn new_task(
    route: &Route,
    schema: ferry_core::ConfigId,
    identifier: String,
    data: Value,
    now: Timestamp,
    log: Vec<Message>,
) -> NewTask {
    NewTask {
        id: TaskId::generate(now),
        route: route.id.clone(),
        entity_schema: schema,
        entity_identifier: identifier,
        entity_data: data,
        created_at: now,
        import_messages: log,
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
