//! Trying a route (`ferry try`, `POST /api/v1/routes/{id}/try`, the Routes page's Try
//! panel): an entity through the incoming, route and outgoing transformers, step by
//! step, with the entity identifier it would get and exactly what the publisher would
//! send, secrets masked. Nothing is stored and nothing is published (a `lookup` does
//! ask its system: it only reads).

use crate::Engine;
use crate::connectors::Preview;
use crate::transform::{self, Chain};
use ferry_core::TaskId;
use ferry_core::entity::entity_identifier;
use serde::Serialize;
use serde_json::Value;

/// What to try a route with.
#[derive(Debug, Clone)]
pub enum TryInput {
    /// An entity as an incoming configuration would receive it, through that incoming
    /// configuration (the route's first when `None`).
    Entity {
        entity: Value,
        incoming: Option<String>,
    },
    /// A stored task's entity (already through the incoming and route transformers).
    Task(TaskId),
}

#[derive(Debug, thiserror::Error)]
pub enum TryError {
    #[error("no route is called '{0}'")]
    UnknownRoute(String),
    #[error("{0}")]
    Bad(String),
    #[error("no task {0}")]
    UnknownTask(String),
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
}

/// Everything a try showed.
#[derive(Debug, Serialize)]
pub struct TryReport {
    pub route: String,
    /// The incoming configuration whose transformers ran (none for a stored task).
    pub incoming: Option<String>,
    /// The incoming and route transformers, each with what it made.
    pub steps: Vec<TryStep>,
    /// Each entity that would become a task, with its outgoing side.
    pub tasks: Vec<TryTask>,
    /// When nothing would become a task: why (dropped, or the error).
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TryStep {
    /// `incoming`, `route` or `outgoing`.
    pub side: &'static str,
    pub transformer: String,
    pub outputs: Vec<Value>,
    pub note: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TryTask {
    /// The entity as it would be stored.
    pub entity: Value,
    pub entity_identifier: Option<String>,
    pub steps: Vec<TryStep>,
    /// The payload the outgoing transformers made.
    pub payload: Option<Value>,
    /// What the publisher would send.
    pub request: Option<Preview>,
    /// `would be sent`, or why not (a refusal, a drop, an error).
    pub outcome: String,
}

fn traced(
    side: &'static str,
    chain: &Chain,
    values: Vec<Value>,
) -> (Vec<TryStep>, Result<Vec<Value>, String>) {
    let mut steps = Vec::new();
    let mut out = Vec::new();
    for v in values {
        let (trace, result) = transform::trace(chain, v);
        steps.extend(trace.into_iter().map(|t| match t.result {
            Ok((outputs, note)) => TryStep {
                side,
                transformer: t.transformer,
                outputs,
                note,
                error: None,
            },
            Err(e) => TryStep {
                side,
                transformer: t.transformer,
                outputs: Vec::new(),
                note: None,
                error: Some(e),
            },
        }));
        match result {
            Ok(values) => out.extend(values),
            Err(e) => return (steps, Err(e)),
        }
    }
    (steps, Ok(out))
}

/// Most would-be tasks a try goes on with (a jq step may split an entity into many).
const MAX_TASKS_SHOWN: usize = 100;

impl Engine {
    /// Runs `f` (transformers) on a blocking thread within the transformer time limit
    /// (`workers.transform_timeout`); a run past it is an error.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TryError> {
        let limit = self.config.workers.transform_timeout;
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(f)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(TryError::Bad(format!("the transformers stopped: {e}"))),
            Err(_) => Err(TryError::Bad(format!(
                "the transformers passed the time limit of {limit:?} (workers.transform_timeout)"
            ))),
        }
    }

    /// Tries `route` with `input`; see the module's description.
    pub async fn try_route(&self, route: &str, input: TryInput) -> Result<TryReport, TryError> {
        let r = self
            .config
            .route(route)
            .ok_or_else(|| TryError::UnknownRoute(route.to_owned()))?;
        let (out_chain, publisher) = self.outgoing[r.outgoing.as_str()].clone();
        let (entities, incoming, first_steps, outcome, task_id, schema_id) = match input {
            TryInput::Task(id) => {
                let task = self
                    .store
                    .get_task(&id)
                    .await?
                    .ok_or_else(|| TryError::UnknownTask(id.to_string()))?;
                if task.summary.route != route {
                    return Err(TryError::Bad(format!(
                        "task {id} is on route {}, not {route}",
                        task.summary.route
                    )));
                }
                let schema = task.summary.entity_schema.clone();
                (
                    vec![task.entity_data],
                    None,
                    Vec::new(),
                    None,
                    Some(id),
                    schema,
                )
            }
            TryInput::Entity { entity, incoming } => {
                if !entity.is_object() {
                    return Err(TryError::Bad(format!(
                        "the entity is {}; an entity is a JSON object",
                        ferry_core::entity::kind_of(&entity)
                    )));
                }
                let incoming = match incoming {
                    Some(i) if r.incoming.iter().any(|x| x.as_str() == i) => i,
                    Some(i) => {
                        return Err(TryError::Bad(format!(
                            "route {route} does not take incoming '{i}'; it takes {}",
                            r.incoming
                                .iter()
                                .map(|i| i.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    None => r.incoming[0].to_string(),
                };
                let in_chain = self.incoming[incoming.as_str()].clone();
                let route_chain = self.routes[route].clone();
                let schema = self
                    .config
                    .incoming(&incoming)
                    .map(|i| i.entity_schema.to_string())
                    .unwrap_or_default();
                let (steps, entities, outcome) = self
                    .blocking(move || {
                        let (mut steps, after) = traced("incoming", &in_chain, vec![entity]);
                        let after = match after {
                            Ok(v) => v,
                            Err(e) => return (steps, Vec::new(), Some(e)),
                        };
                        let (more, after) = traced("route", &route_chain, after);
                        steps.extend(more);
                        match after {
                            Ok(v) if v.is_empty() => (
                                steps,
                                v,
                                Some("the transformers dropped the entity: no task".into()),
                            ),
                            Ok(v) => (steps, v, None),
                            Err(e) => (steps, Vec::new(), Some(e)),
                        }
                    })
                    .await?;
                (entities, Some(incoming), steps, outcome, None, schema)
            }
        };
        let identifier_path = self
            .config
            .entity_schema(&schema_id)
            .map(|s| s.identifier_path.clone())
            .unwrap_or_default();
        let check = self.schemas.get(&schema_id).cloned();
        let mut tasks = Vec::new();
        let (mut entities, mut outcome) = (entities, outcome);
        if entities.len() > MAX_TASKS_SHOWN {
            outcome = Some(format!(
                "{} entities would become tasks; the first {MAX_TASKS_SHOWN} are shown",
                entities.len()
            ));
            entities.truncate(MAX_TASKS_SHOWN);
        }
        for entity in entities {
            let id = task_id
                .clone()
                .unwrap_or_else(|| TaskId::generate(self.now()));
            let identifier = entity_identifier(&entity, &identifier_path);
            let mut t = TryTask {
                entity: entity.clone(),
                entity_identifier: identifier.as_ref().ok().cloned(),
                steps: Vec::new(),
                payload: None,
                request: None,
                outcome: String::new(),
            };
            if let Err(e) = identifier {
                t.outcome = format!("refused: entity schema '{schema_id}': {e}");
                tasks.push(t);
                continue;
            }
            if let Some(c) = check
                .as_ref()
                .filter(|c| task_id.is_none() && c.validate.incoming())
            {
                let v = c.violations(&entity);
                if !v.is_empty() {
                    t.outcome = format!("refused: the entity {}", c.describe(&v));
                    tasks.push(t);
                    continue;
                }
            }
            let chain = out_chain.clone();
            let (steps, payload) = self
                .blocking(move || traced("outgoing", &chain, vec![entity]))
                .await?;
            t.steps = steps;
            let payload = match payload {
                Ok(mut p) if p.len() == 1 => p.remove(0),
                Ok(p) if p.is_empty() => {
                    t.outcome = "the outgoing transformers dropped it: the task would finish without sending".into();
                    tasks.push(t);
                    continue;
                }
                Ok(p) => {
                    t.outcome = format!(
                        "fails: the outgoing transformers made {} values; a task publishes exactly one",
                        p.len()
                    );
                    tasks.push(t);
                    continue;
                }
                Err(e) => {
                    t.outcome = format!("fails: {e}");
                    tasks.push(t);
                    continue;
                }
            };
            if let Some(c) = check.as_ref().filter(|c| c.validate.outgoing()) {
                let v = c.violations(&payload);
                if !v.is_empty() {
                    t.outcome = format!("fails: the payload {}", c.describe(&v));
                    t.payload = Some(payload);
                    tasks.push(t);
                    continue;
                }
            }
            match publisher.preview(&payload, &id) {
                Ok(p) => {
                    t.request = Some(p);
                    t.outcome = "would be sent".into();
                }
                Err(e) => t.outcome = format!("fails: {e}"),
            }
            t.payload = Some(payload);
            tasks.push(t);
        }
        Ok(TryReport {
            route: route.to_owned(),
            incoming,
            steps: first_steps,
            tasks,
            outcome,
        })
    }
}
