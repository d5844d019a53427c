//! Connectors: where entities come from (subscribers), where they go (publishers), and
//! the outside systems both talk to (connections).
//!
//! Each kind lives in one folder (`file/`, `http/`, `webhook/`) that owns its typed
//! settings, checks them (without touching the network), builds the runnable form, and
//! holds its tests; [`KINDS`] maps the `type` string of the configuration to it. Adding a
//! kind is one folder, one line in [`KINDS`] and its documentation. The shape follows
//! Vector's `SourceConfig`/`SinkConfig`: build from a typed configuration, then a health
//! check (`ferry check --connect`).

pub mod file;
pub mod http;
pub mod limiter;
pub mod settings;
pub mod tls;
pub mod webhook;

use async_trait::async_trait;
use ferry_core::TaskId;
use ferry_core::config::{Config, ConnectorSpec, Problem};
use ferry_core::retry::Failure;
use serde_json::Value;
use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every connector kind ferry knows. One line per kind.
pub static KINDS: &[&Kind] = &[&file::KIND, &http::KIND, &webhook::KIND];

/// What one connector kind can be: a subscriber, a publisher, a connection (any of them).
pub struct Kind {
    /// The `type` string in the configuration.
    pub name: &'static str,
    pub subscriber: Option<&'static dyn SubscriberKind>,
    pub publisher: Option<&'static dyn PublisherKind>,
    pub connection: Option<&'static dyn ConnectionKind>,
}

/// The kind named `name`, if ferry has it.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// What building a connector may use: the configuration's folder (relative paths), the
/// connections already built, a shared HTTP client, and the secrets to keep out of
/// messages.
pub struct Context<'a> {
    pub folder: &'a Path,
    pub connections: &'a HashMap<String, Arc<dyn Connect>>,
    /// Connections that are defined but could not be built (their problems are
    /// reported already).
    pub broken: &'a [String],
    pub client: &'a reqwest::Client,
    pub secrets: &'a Arc<Vec<String>>,
}

impl Context<'_> {
    /// The connection `id` named by `spec`'s `connection` key, as the type `T` the caller
    /// needs (an http publisher needs an http connection). `Err(None)`: the connection
    /// is defined but broken, which is reported already.
    pub fn connection<T: Any + Send + Sync>(
        &self,
        spec: &ConnectorSpec,
        id: &str,
        wanted: &str,
    ) -> Result<Arc<T>, Option<Problem>> {
        if self.broken.iter().any(|b| b == id) {
            return Err(None);
        }
        let Some(c) = self.connections.get(id) else {
            let mut known: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            known.sort_unstable();
            let defined = if known.is_empty() {
                "no connection is defined ([[connections]])".to_owned()
            } else {
                format!("defined are: {}", known.join(", "))
            };
            return Err(Some(spec.problem(
                "connection",
                format!("unknown connection '{id}'; {defined}"),
            )));
        };
        c.clone().into_any().downcast::<T>().map_err(|_| {
            Some(spec.problem(
                "connection",
                format!(
                    "'{id}' is a {} connection; this needs a {wanted} connection",
                    c.kind()
                ),
            ))
        })
    }
}

/// A built connector plus what `ferry check` should warn about.
pub struct Built<T> {
    pub value: T,
    pub warnings: Vec<Problem>,
}

impl<T> Built<T> {
    pub fn new(value: T) -> Built<T> {
        Built {
            value,
            warnings: Vec::new(),
        }
    }
}

pub type BuildResult<T> = Result<Built<T>, Vec<Problem>>;

// ------------------------------------------------------------------ subscribers

/// An entity and where it came from (`inbox/a.ndjson:3`, `http://…/products page 2`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    pub entity: Value,
    pub origin: String,
}

/// What a subscriber fetched: entities, the problems met on the way, the files to move
/// aside once the entities are stored, and the new `since` mark when the run read
/// everything.
#[derive(Debug, Default)]
pub struct Fetched {
    pub entities: Vec<Sourced>,
    pub errors: Vec<String>,
    pub files: Vec<PathBuf>,
    /// The greatest `since.from` value seen, set only when the run read every page.
    pub since: Option<String>,
}

impl Fetched {
    /// Adds an entity, or an error when `value` is not a JSON object.
    pub fn push(&mut self, value: Value, origin: String) {
        if value.is_object() {
            self.entities.push(Sourced {
                entity: value,
                origin,
            });
        } else {
            self.errors.push(format!(
                "{origin}: {} is not a JSON object; each entity must be an object",
                ferry_core::entity::kind_of(&value)
            ));
        }
    }
}

/// A subscriber kind: checks its settings and builds what runs.
pub trait SubscriberKind: Sync {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Subscription>;
}

/// What a subscriber is once built.
pub enum Subscription {
    /// Entities are pushed to ferry (the web crate receives them).
    Pushed(Box<webhook::Settings>),
    /// ferry fetches them itself, on a schedule or when asked.
    Pulled(Arc<dyn Fetch>),
}

/// A subscriber ferry runs itself.
#[async_trait]
pub trait Fetch: Send + Sync {
    /// Reads what there is. `since` is the mark the last successful run left (for kinds
    /// that read incrementally).
    async fn fetch(&self, since: Option<&str>) -> Fetched;
}

// ------------------------------------------------------------------ publishers

/// A publisher kind: checks its settings and builds what sends.
pub trait PublisherKind: Sync {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Arc<dyn Publish>>;
}

/// What a publisher would send: an HTTP request, or what a file would get.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Preview {
    /// `PUT`, `POST`…, or `append` for a file.
    pub method: String,
    /// The URL, or the file's path.
    pub target: String,
    /// Headers as they would go (credentials and secrets as `***`).
    pub headers: Vec<PreviewHeader>,
    /// The body, or the text added to the file.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PreviewHeader {
    pub name: String,
    pub value: String,
}

/// Sends one task's entity.
#[async_trait]
pub trait Publish: Send + Sync {
    /// Publishes one entity of task `task`.
    async fn publish(&self, entity: &Value, task: &TaskId) -> Result<Delivered, Failure>;

    /// What [`Publish::publish`] would send for `entity`, without sending it (`ferry
    /// try`): the request or write, secrets masked.
    fn preview(&self, entity: &Value, task: &TaskId) -> Result<Preview, String>;

    /// How many tasks one request carries, for a publisher that sends batches (then
    /// the run hands it up to that many at once, through [`Publish::publish_many`]).
    fn batch_size(&self) -> Option<usize> {
        None
    }

    /// Publishes the entities of several tasks, each of another entity; answers an
    /// outcome per task, in order. By default one [`Publish::publish`] after the other.
    async fn publish_many(&self, items: &[(&Value, &TaskId)]) -> Vec<Result<Delivered, Failure>> {
        one_by_one(self, items).await
    }

    /// How many tasks of one route may be published at once (requests in flight). Tasks
    /// of the same entity are never published at once, whatever this says.
    fn max_in_flight(&self) -> usize {
        1
    }

    /// Whether a task may be sent now (a circuit breaker that is open says no; once its
    /// cool-down is over it says yes to one probe). A task refused is given back
    /// unstarted: it stays `new` or `retry`, its attempts unchanged.
    fn may_send(&self) -> bool {
        true
    }

    /// Whether nothing can be sent for now (an open circuit breaker before its probe):
    /// a route run then claims nothing.
    fn paused(&self) -> bool {
        false
    }

    /// The circuit breaker's state, if the publisher's connection has one.
    fn circuit(&self) -> Option<CircuitState> {
        None
    }

    /// Its requests in flight, the level allowed now and its rate limit, for a
    /// publisher that limits them.
    fn delivery(&self) -> Option<DeliveryState> {
        None
    }
}

/// Publishes `items` one after the other, each through [`Publish::publish`].
pub async fn one_by_one<P: Publish + ?Sized>(
    publisher: &P,
    items: &[(&Value, &TaskId)],
) -> Vec<Result<Delivered, Failure>> {
    let mut out = Vec::with_capacity(items.len());
    for (entity, task) in items {
        out.push(publisher.publish(entity, task).await);
    }
    out
}

/// What a publisher answers for an entity it delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// A line for the task's log: what was done (`PUT https://… → 200 OK`).
    pub note: String,
    /// What the target answered, as the publisher's `response` expression picked it;
    /// kept on the task.
    pub response: Option<Value>,
}

impl Delivered {
    pub fn noted(note: String) -> Delivered {
        Delivered {
            note,
            response: None,
        }
    }
}

/// How a publisher delivers now, as the pages and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryState {
    /// Requests at once: allowed now (the adaptive level, or the fixed number), in
    /// flight now, and the bound of `"auto"`.
    pub level: limiter::Level,
    /// `200/s`, when the connection has a rate limit.
    pub rate_limit: Option<String>,
}

impl std::fmt::Display for DeliveryState {
    /// `auto: 57 now, at most 200 (41 in flight now); rate limit 200/s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.level)?;
        match &self.rate_limit {
            Some(r) => write!(f, "; rate limit {r}"),
            None => Ok(()),
        }
    }
}

/// A circuit breaker's state as the pages and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CircuitState {
    /// `closed`, `open` or `half-open`.
    pub state: &'static str,
    /// While open: when it will let a probe through (RFC 3339).
    pub until: Option<String>,
    pub failures_in_a_row: u32,
    /// The error that opened it (or the last one).
    pub last_error: Option<String>,
}

// ------------------------------------------------------------------ connections

/// A connection kind: checks its settings and builds the shared client.
pub trait ConnectionKind: Sync {
    fn build(
        &self,
        id: &str,
        spec: &ConnectorSpec,
        ctx: &Context<'_>,
    ) -> BuildResult<Arc<dyn Connect>>;
}

/// A built connection, shared by every subscriber and publisher naming it.
#[async_trait]
pub trait Connect: Any + Send + Sync {
    /// The kind's name (`http`).
    fn kind(&self) -> &'static str;
    /// What the Routes page shows of it, secrets as `***`.
    fn describe(&self) -> Vec<(String, String)>;
    /// Reaches the system (`ferry check --connect`): what was checked, or what failed.
    async fn check(&self) -> Result<String, String>;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

// ------------------------------------------------------------------ building

/// Everything a configuration's connectors became.
pub struct Connectors {
    pub connections: HashMap<String, Arc<dyn Connect>>,
    pub subscriptions: HashMap<String, Subscription>,
    pub publishers: HashMap<String, Arc<dyn Publish>>,
    /// The `lookup` transformers' requests, by their transformer's key.
    pub lookups: HashMap<String, Arc<dyn crate::transform::Lookup>>,
    pub warnings: Vec<Problem>,
}

/// Builds every connection, subscriber and publisher of `config`, collecting every
/// problem (each with its line and key) before failing.
pub fn build(
    config: &Config,
    folder: &Path,
    client: &reqwest::Client,
) -> Result<Connectors, Vec<Problem>> {
    let secrets = Arc::new(config.secrets().to_vec());
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut connections = HashMap::new();
    let mut broken = Vec::new();
    let mut take = |result: BuildResult<()>, warnings: &mut Vec<Problem>| match result {
        Ok(b) => warnings.extend(b.warnings),
        Err(p) => problems.extend(p),
    };
    for c in &config.connections {
        let ctx = Context {
            folder,
            connections: &connections,
            broken: &broken,
            client,
            secrets: &secrets,
        };
        let built = kind_for(&c.spec, "connection", |k| k.connection)
            .and_then(|k| k.build(c.id.as_str(), &c.spec, &ctx));
        let built = match built {
            Ok(b) => {
                connections.insert(c.id.to_string(), b.value);
                Ok(Built {
                    value: (),
                    warnings: b.warnings,
                })
            }
            Err(p) => {
                broken.push(c.id.to_string());
                Err(p)
            }
        };
        take(built, &mut warnings);
    }
    let ctx = Context {
        folder,
        connections: &connections,
        broken: &broken,
        client,
        secrets: &secrets,
    };
    let mut subscriptions = HashMap::new();
    for i in &config.incoming {
        let built = kind_for(&i.subscriber, "subscriber", |k| k.subscriber)
            .and_then(|k| k.build(&i.subscriber, &ctx))
            .map(|b| {
                subscriptions.insert(i.id.to_string(), b.value);
                Built {
                    value: (),
                    warnings: b.warnings,
                }
            });
        take(built, &mut warnings);
    }
    let mut publishers = HashMap::new();
    for o in &config.outgoing {
        let built = kind_for(&o.publisher, "publisher", |k| k.publisher)
            .and_then(|k| k.build(&o.publisher, &ctx))
            .map(|b| {
                publishers.insert(o.id.to_string(), b.value);
                Built {
                    value: (),
                    warnings: b.warnings,
                }
            });
        take(built, &mut warnings);
    }
    // The `lookup` transformers' requests, by their transformer's key.
    let mut lookups = HashMap::new();
    let chains = config
        .incoming
        .iter()
        .map(|i| &i.transformers)
        .chain(config.routes.iter().map(|r| &r.transformers))
        .chain(config.outgoing.iter().map(|o| &o.transformers));
    for t in chains.flatten() {
        if let ferry_core::config::TransformerKind::Lookup(spec) = &t.kind {
            match http::lookup::build(spec, &ctx) {
                Ok(l) => {
                    lookups.insert(spec.key.clone(), l);
                }
                Err(p) => problems.extend(p),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Connectors {
        connections,
        subscriptions,
        publishers,
        lookups,
        warnings,
    })
}

/// The kind `spec` names, in the role asked for, or a problem listing the kinds there
/// are for that role.
fn kind_for<T: ?Sized>(
    spec: &ConnectorSpec,
    role: &str,
    pick: impl Fn(&Kind) -> Option<&'static T>,
) -> Result<&'static T, Vec<Problem>> {
    if spec.kind.is_empty() {
        // Reported when the configuration was read.
        return Err(Vec::new());
    }
    if let Some(found) = kind(&spec.kind).and_then(&pick) {
        return Ok(found);
    }
    let names: Vec<&str> = KINDS
        .iter()
        .filter(|k| pick(k).is_some())
        .map(|k| k.name)
        .collect();
    Err(vec![spec.problem(
        "type",
        format!(
            "'{}' is not a {role} kind; use one of: {}",
            spec.kind,
            names.join(", ")
        ),
    )])
}
