//! The configuration model (CONFIG.md) and its loading from TOML text plus environment
//! overrides.
//!
//! Loading is all-or-nothing: every problem found is reported at once, each with the
//! file, the line and the key, and nothing is applied unless the whole file is valid.
//! Reading the file and the environment is the caller's job; the one read done here is of
//! the secret files a `${file:…}` reference names. Connector tables (subscribers,
//! publishers, connections) are kept as written, secrets expanded: their typed settings
//! belong to the engine's connector of that `type`, which checks them.

use crate::ConfigId;
use crate::duration::parse_duration;
use crate::retry::{Backoff, MAX_ATTEMPTS_LIMIT, MAX_INTERVAL, RetryPolicy};
use crate::schedule::CronSchedule;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Component, Path};
use std::time::Duration;
use toml::Spanned;

mod connector;
pub use connector::{ConnectorSpec, redact};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_STORAGE_URL: &str = "sqlite://ferry.db";
pub const DEFAULT_BATCH_SIZE: u32 = 100;
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Prefix of environment overrides: `FERRY_SERVER__LISTEN` sets `server.listen`.
pub const ENV_PREFIX: &str = "FERRY_";

/// A validated installation.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub retention: RetentionConfig,
    pub workers: WorkersConfig,
    pub entity_schemas: Vec<EntitySchema>,
    pub connections: Vec<Connection>,
    pub incoming: Vec<Incoming>,
    pub outgoing: Vec<Outgoing>,
    pub routes: Vec<Route>,
    /// What is allowed but worth saying (`ferry check` prints it).
    warnings: Vec<Problem>,
    /// The values `${env:…}` and `${file:…}` references resolved to, which no message
    /// may show.
    secrets: Secrets,
}

/// Secret values, shown by `Debug` as a count only.
#[derive(Clone, PartialEq, Default)]
struct Secrets(Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} secret(s)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most entities one webhook call may carry (each becomes a task on every route
    /// of its incoming configuration); beyond it the call is refused with 413.
    pub max_entities_per_request: usize,
    /// How long a web sign-in lasts, e.g. "12h".
    pub session_lifetime: String,
    /// Mark the session cookie `Secure` (browsers then send it over HTTPS and to
    /// localhost only). Turn off only behind a proxy that speaks plain HTTP to users.
    pub secure_cookies: bool,
}

impl ServerConfig {
    /// [`ServerConfig::session_lifetime`] as a duration (validated when loaded).
    pub fn session_lifetime(&self) -> Duration {
        parse_duration(&self.session_lifetime).unwrap_or(Duration::from_secs(12 * 3600))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            max_body_bytes: 16 * 1024 * 1024,
            max_entities_per_request: 50_000,
            session_lifetime: "12h".into(),
            secure_cookies: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub url: String,
    /// Connections to PostgreSQL per process.
    pub max_connections: u32,
    /// How long a request waits for a free connection, in seconds.
    pub acquire_timeout_secs: u64,
    /// Apply pending migrations at start (safe when several nodes start together);
    /// false: run `ferry migrate` yourself first.
    pub migrate: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: DEFAULT_STORAGE_URL.into(),
            max_connections: 10,
            acquire_timeout_secs: 30,
            migrate: true,
        }
    }
}

/// The background workers inside `ferry serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkersConfig {
    /// Route runs at the same time (each route runs one batch at a time).
    pub concurrency: u32,
    /// How long a claimed task stays reserved; renewed while its batch runs.
    pub lease: Duration,
    /// How often schedules, realtime routes and due retries are checked.
    pub poll_interval: Duration,
    /// How long shutdown waits for in-flight tasks.
    pub shutdown_grace: Duration,
    /// Longest a transformer may run on one entity.
    pub transform_timeout: Duration,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            concurrency: 4,
            lease: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            transform_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorkers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shutdown_grace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transform_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Final tasks (finished, skipped, failed) not updated for this long are pruned.
    pub max_age: Duration,
    /// Beyond this many tasks in all, the oldest final tasks are pruned.
    pub max_tasks: Option<u64>,
    /// How often the pruner runs.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(30 * 86_400),
            max_tasks: None,
            interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySchema {
    pub id: ConfigId,
    pub identifier_path: Vec<String>,
    /// A JSON Schema (draft 2020-12) file, relative to the configuration, that the
    /// schema's entities must match, on the sides `validate` names.
    pub json_schema: Option<String>,
    pub validate: Validate,
}

/// Where an entity schema's JSON Schema is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validate {
    /// The entity as it becomes a task (after the incoming and route transformers): one
    /// that does not match is refused (422 on a webhook).
    #[default]
    Incoming,
    /// The payload as it would be sent (after the outgoing transformers): one that does
    /// not match fails its task.
    Outgoing,
    Both,
}

impl Validate {
    pub fn incoming(self) -> bool {
        matches!(self, Validate::Incoming | Validate::Both)
    }

    pub fn outgoing(self) -> bool {
        matches!(self, Validate::Outgoing | Validate::Both)
    }
}

/// Where a piece of configuration was written, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub key: String,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransformerKind {
    /// A jq filter over the entity: an error fails, an empty output drops.
    Jq { filter: String },
    /// A jq condition: false or null drops the entity.
    Filter { condition: String },
    /// A value-mapping table: the value at `field` (a jq path) becomes the table's
    /// value for it; one the table lacks is handled by `default`.
    Map {
        field: String,
        /// The table as written, or read from `table_file` (a CSV file: a header row,
        /// then one `from,to` row per entry), relative to the configuration's folder.
        table: MapTable,
        default: MapDefault,
    },
    /// The last outgoing transformer: a task whose payload is the one its route last
    /// published for the entity (by another task) is skipped as unchanged.
    OnlyChanged,
    /// Enriches the entity with another system's answer: an http request (through a
    /// connection or to a URL, `{field}` placeholders filled from the entity) whose
    /// answer is merged at a jq path. Its settings (kind `http`, secrets expanded, key
    /// the transformer's) are read by the engine.
    Lookup(ConnectorSpec),
}

/// Where a `map` transformer's table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapTable {
    Inline(BTreeMap<String, serde_json::Value>),
    File(String),
}

/// What a `map` transformer does with a value its table lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapDefault {
    /// Leave it as it is (the default).
    Keep,
    /// Fail the entity, naming the value.
    Fail,
    /// Put this value instead.
    Value(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transformer {
    pub kind: TransformerKind,
    pub at: Location,
}

/// A secret from the configuration: never shown by `Debug`, so never logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A connection: one outside system described once (where it is, how to trust it, how to
/// sign in), named by subscribers and publishers.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConfigId,
    pub spec: ConnectorSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub id: ConfigId,
    pub entity_schema: ConfigId,
    pub subscriber: ConnectorSpec,
    pub transformers: Vec<Transformer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub id: ConfigId,
    pub transformers: Vec<Transformer>,
    pub publisher: ConnectorSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    pub incoming: Option<CronSchedule>,
    pub outgoing: Option<CronSchedule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub id: ConfigId,
    pub name: String,
    pub incoming: Vec<ConfigId>,
    pub outgoing: ConfigId,
    pub transformers: Vec<Transformer>,
    pub batch_size: u32,
    pub realtime: bool,
    pub disabled: bool,
    pub schedule: Schedule,
    pub retry: RetryPolicy,
}

impl Config {
    /// Settings that load but deserve a second look, such as a file publisher allowed to
    /// write outside the configuration's folder.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The values of the secrets the configuration refers to: messages built from what an
    /// outside system answered are passed through [`redact`] with them.
    pub fn secrets(&self) -> &[String] {
        &self.secrets.0
    }

    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.id.as_str() == id)
    }

    pub fn route(&self, id: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.id.as_str() == id)
    }

    pub fn incoming(&self, id: &str) -> Option<&Incoming> {
        self.incoming.iter().find(|i| i.id.as_str() == id)
    }

    pub fn outgoing(&self, id: &str) -> Option<&Outgoing> {
        self.outgoing.iter().find(|o| o.id.as_str() == id)
    }

    pub fn entity_schema(&self, id: &str) -> Option<&EntitySchema> {
        self.entity_schemas.iter().find(|s| s.id.as_str() == id)
    }

    /// The routes that take entities from this incoming configuration.
    pub fn routes_using(&self, incoming: &str) -> impl Iterator<Item = &Route> {
        self.routes
            .iter()
            .filter(move |r| r.incoming.iter().any(|i| i.as_str() == incoming))
    }
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    /// The key as a path (`routes[0].outgoing`) or the environment variable.
    pub key: String,
    pub message: String,
}

/// Everything wrong with a configuration file, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} is not a valid ferry configuration ({n} problem{}):",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.line {
                Some(line) => write!(f, "\n  {}:{line}: {}: {}", self.file, p.key, p.message)?,
                None => write!(f, "\n  {}: {}: {}", self.file, p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------- raw file shape

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    storage: StorageConfig,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    workers: RawWorkers,
    #[serde(default)]
    entity_schemas: Vec<Spanned<RawSchema>>,
    #[serde(default)]
    connections: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    incoming: Vec<Spanned<RawIncoming>>,
    #[serde(default)]
    outgoing: Vec<Spanned<RawOutgoing>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_tasks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    id: Spanned<String>,
    #[serde(default)]
    identifier_path: Vec<String>,
    #[serde(default)]
    json_schema: Option<String>,
    #[serde(default)]
    validate: Option<Validate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncoming {
    id: Spanned<String>,
    entity_schema: Spanned<String>,
    subscriber: Spanned<toml::Table>,
    #[serde(default)]
    transformers: Vec<Spanned<RawTransformer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutgoing {
    id: Spanned<String>,
    #[serde(default)]
    transformers: Vec<Spanned<RawTransformer>>,
    publisher: Spanned<toml::Table>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawTransformer {
    Jq {
        filter: String,
    },
    Filter {
        condition: String,
    },
    Map {
        field: String,
        #[serde(default)]
        table: Option<BTreeMap<String, serde_json::Value>>,
        #[serde(default)]
        table_file: Option<String>,
        #[serde(default)]
        default: Option<String>,
    },
    #[serde(rename = "only_changed")]
    OnlyChanged {},
    /// Its settings are the engine's to read (an http request and what to do with the
    /// answer), as a connector's are.
    Lookup(toml::Table),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    id: Spanned<String>,
    name: Option<String>,
    incoming: Vec<Spanned<String>>,
    outgoing: Spanned<String>,
    #[serde(default)]
    transformers: Vec<Spanned<RawTransformer>>,
    batch_size: Option<Spanned<u32>>,
    #[serde(default)]
    realtime: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    schedule: RawSchedule,
    retry: Option<Spanned<RawRetry>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    incoming: Option<String>,
    outgoing: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    enabled: Option<bool>,
    max_attempts: Option<u32>,
    interval: Option<String>,
    backoff: Option<String>,
    #[serde(default)]
    on_http_status: Vec<u16>,
    #[serde(default)]
    on_message: Vec<String>,
}

// ---------------------------------------------------------------- loading

/// Parses and validates `text` (read from `file`), then applies the `FERRY_…`
/// variables among `env`. Every problem is collected before failing.
pub fn load(
    file: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        file: file.to_owned(),
        problems,
    };
    let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        fail(vec![Problem {
            line,
            key: "toml".into(),
            message: e.message().trim().to_owned(),
        }])
    })?;
    let env: BTreeMap<String, String> = env.into_iter().collect();
    let mut v = Validator {
        text,
        folder: Path::new(file).parent().unwrap_or(Path::new("")),
        env: &env,
        problems: Vec::new(),
        warnings: Vec::new(),
        secrets: Vec::new(),
    };
    apply_env(&mut raw, env.clone(), &mut v.problems);
    let config = v.config(raw);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(fail(v.problems))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Overrides `server`, `storage` and `retention` settings from `FERRY_SECTION__KEY`.
fn apply_env(
    raw: &mut RawConfig,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let rest = &name[ENV_PREFIX.len()..];
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_lowercase(), key.to_lowercase());
        let result = match section.as_str() {
            "server" => override_section(&mut raw.server, &key, &value),
            "storage" => override_section(&mut raw.storage, &key, &value),
            "retention" => override_section(&mut raw.retention, &key, &value),
            "workers" => override_section(&mut raw.workers, &key, &value),
            _ => Err(format!(
                "no section '{section}' can be set from the environment; use FERRY_SERVER__…, FERRY_STORAGE__…, FERRY_RETENTION__… or FERRY_WORKERS__…"
            )),
        };
        if let Err(message) = result {
            problems.push(Problem {
                line: None,
                key: format!("environment variable {name}"),
                message,
            });
        }
    }
}

fn override_section<T>(section: &mut T, key: &str, value: &str) -> Result<(), String>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let mut table = toml::Table::try_from(&*section).map_err(|e| e.to_string())?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    table.insert(key.to_owned(), parsed);
    *section = T::deserialize(toml::Value::Table(table)).map_err(|e| e.message().to_owned())?;
    Ok(())
}

struct Validator<'t> {
    text: &'t str,
    /// The configuration file's folder, which relative file paths are read from.
    folder: &'t Path,
    env: &'t BTreeMap<String, String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    secrets: Vec<String>,
}

impl Validator<'_> {
    fn problem(
        &mut self,
        offset: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line: offset.map(|o| line_of(self.text, o)),
            key: key.into(),
            message: message.into(),
        });
    }

    fn id(&mut self, raw: &Spanned<String>, key: &str) -> ConfigId {
        match ConfigId::parse(raw.get_ref()) {
            Ok(id) => id,
            Err(e) => {
                self.problem(Some(raw.span().start), key, e.to_string());
                ConfigId::parse("invalid").expect("a valid placeholder")
            }
        }
    }

    fn unique(&mut self, ids: &[(ConfigId, usize)], what: &str, section: &str) {
        let mut seen = HashSet::new();
        for (i, (id, offset)) in ids.iter().enumerate() {
            if !seen.insert(id.as_str()) {
                self.problem(
                    Some(*offset),
                    format!("{section}[{i}].id"),
                    format!("the {what} '{id}' is defined twice; identifiers must be unique"),
                );
            }
        }
    }

    fn reference(
        &mut self,
        raw: &Spanned<String>,
        key: &str,
        what: &str,
        known: &[(ConfigId, usize)],
    ) -> ConfigId {
        let id = self.id(raw, key);
        if !known.iter().any(|(k, _)| *k == id) {
            let names: Vec<&str> = known.iter().map(|(k, _)| k.as_str()).collect();
            let defined = if names.is_empty() {
                "none is defined".to_owned()
            } else {
                format!("defined are: {}", names.join(", "))
            };
            self.problem(
                Some(raw.span().start),
                key,
                format!("unknown {what} '{}'; {defined}", raw.get_ref()),
            );
        }
        id
    }

    fn transformers(&mut self, raw: Vec<Spanned<RawTransformer>>, key: &str) -> Vec<Transformer> {
        let last = raw.len().saturating_sub(1);
        raw.into_iter()
            .enumerate()
            .map(|(i, t)| {
                let at = Location {
                    key: format!("{key}[{i}]"),
                    line: Some(line_of(self.text, t.span().start)),
                };
                let span = t.span();
                let kind = match t.into_inner() {
                    RawTransformer::Lookup(mut table) => {
                        table.insert("type".into(), toml::Value::String("http".into()));
                        let spec = self.connector(Spanned::new(span, table), at.key.clone());
                        TransformerKind::Lookup(spec)
                    }
                    RawTransformer::Jq { filter } => TransformerKind::Jq { filter },
                    RawTransformer::Filter { condition } => TransformerKind::Filter { condition },
                    RawTransformer::Map {
                        field,
                        table,
                        table_file,
                        default,
                    } => {
                        let table = match (table, table_file) {
                            (Some(t), None) => MapTable::Inline(t),
                            (None, Some(f)) => MapTable::File(f),
                            (t, _) => {
                                let why = if t.is_some() {
                                    "give either table or table_file, not both"
                                } else {
                                    "give the values to map: table = { NL = \"Netherlands\" } or table_file = \"maps/countries.csv\""
                                };
                                self.problems.push(Problem {
                                    line: at.line,
                                    key: at.key.clone(),
                                    message: why.to_owned(),
                                });
                                MapTable::Inline(BTreeMap::new())
                            }
                        };
                        let default = match default.as_deref() {
                            None | Some("keep") => MapDefault::Keep,
                            Some("fail") => MapDefault::Fail,
                            Some(v) => MapDefault::Value(v.to_owned()),
                        };
                        TransformerKind::Map {
                            field,
                            table,
                            default,
                        }
                    }
                    RawTransformer::OnlyChanged {} => {
                        if !key.starts_with("outgoing") || i != last {
                            self.problems.push(Problem {
                                line: at.line,
                                key: at.key.clone(),
                                message: "only_changed compares what is about to be published with what was: make it the last of the outgoing transformers".to_owned(),
                            });
                        }
                        TransformerKind::OnlyChanged
                    }
                };
                Transformer { kind, at }
            })
            .collect()
    }

    fn config(&mut self, mut raw: RawConfig) -> Config {
        let mut inputs = connector::Inputs {
            env: self.env,
            folder: self.folder,
            problems: &mut self.problems,
            secrets: &mut self.secrets,
        };
        if let Some(url) = connector::expand(&raw.storage.url, "storage.url", None, &mut inputs) {
            raw.storage.url = url;
        }
        let retention = self.retention(raw.retention);
        let workers = self.workers(raw.workers);
        if raw.storage.max_connections == 0 || raw.storage.max_connections > 1_000 {
            self.problem(
                None,
                "storage.max_connections",
                format!(
                    "{} is out of range; use 1 to 1000",
                    raw.storage.max_connections
                ),
            );
        }
        if raw.storage.url.trim().is_empty() {
            self.problem(
                None,
                "storage.url",
                "is empty; use sqlite://ferry.db or postgres://…",
            );
        }

        let schemas: Vec<EntitySchema> = raw
            .entity_schemas
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let start = s.span().start;
                let s = s.get_ref();
                if s.validate.is_some() && s.json_schema.is_none() {
                    self.problem(
                        Some(start),
                        format!("entity_schemas[{i}].validate"),
                        "validate says where a JSON Schema applies; give it with json_schema = \"schemas/product.json\"",
                    );
                }
                EntitySchema {
                    id: self.id(&s.id, &format!("entity_schemas[{i}].id")),
                    identifier_path: s.identifier_path.clone(),
                    json_schema: s.json_schema.clone(),
                    validate: s.validate.unwrap_or_default(),
                }
            })
            .collect();
        let schema_ids: Vec<(ConfigId, usize)> = schemas
            .iter()
            .zip(&raw.entity_schemas)
            .map(|(s, r)| (s.id.clone(), r.get_ref().id.span().start))
            .collect();
        self.unique(&schema_ids, "entity schema", "entity_schemas");

        let incoming_ids: Vec<(ConfigId, usize)> = raw
            .incoming
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let r = r.get_ref();
                (
                    self.id(&r.id, &format!("incoming[{i}].id")),
                    r.id.span().start,
                )
            })
            .collect();
        self.unique(&incoming_ids, "incoming configuration", "incoming");
        let outgoing_ids: Vec<(ConfigId, usize)> = raw
            .outgoing
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let r = r.get_ref();
                (
                    self.id(&r.id, &format!("outgoing[{i}].id")),
                    r.id.span().start,
                )
            })
            .collect();
        self.unique(&outgoing_ids, "outgoing configuration", "outgoing");

        let connections = self.connections(raw.connections);
        let incoming = raw
            .incoming
            .into_iter()
            .zip(&incoming_ids)
            .enumerate()
            .map(|(i, (r, (id, _)))| {
                let r = r.into_inner();
                let key = format!("incoming[{i}].entity_schema");
                let entity_schema =
                    self.reference(&r.entity_schema, &key, "entity schema", &schema_ids);
                Incoming {
                    id: id.clone(),
                    entity_schema,
                    subscriber: self.connector(r.subscriber, format!("incoming[{i}].subscriber")),
                    transformers: self
                        .transformers(r.transformers, &format!("incoming[{i}].transformers")),
                }
            })
            .collect();
        let outgoing = raw
            .outgoing
            .into_iter()
            .zip(&outgoing_ids)
            .enumerate()
            .map(|(i, (r, (id, _)))| {
                let r = r.into_inner();
                Outgoing {
                    id: id.clone(),
                    transformers: self
                        .transformers(r.transformers, &format!("outgoing[{i}].transformers")),
                    publisher: self.connector(r.publisher, format!("outgoing[{i}].publisher")),
                }
            })
            .collect();

        let mut route_ids = Vec::new();
        let mut routes = Vec::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            let r = r.into_inner();
            let id = self.id(&r.id, &format!("routes[{i}].id"));
            route_ids.push((id.clone(), r.id.span().start));
            routes.push(self.route(i, id, r, &incoming_ids, &outgoing_ids));
        }
        self.unique(&route_ids, "route", "routes");

        self.duration(
            Some(raw.server.session_lifetime.as_str()),
            "server.session_lifetime",
        );
        if raw.server.max_entities_per_request == 0 {
            self.problem(
                None,
                "server.max_entities_per_request",
                "must be at least 1",
            );
        }

        Config {
            server: raw.server,
            storage: raw.storage,
            retention,
            workers,
            entity_schemas: schemas,
            connections,
            incoming,
            outgoing,
            routes,
            warnings: std::mem::take(&mut self.warnings),
            secrets: Secrets(std::mem::take(&mut self.secrets)),
        }
    }

    /// A connector's table, secrets expanded; its typed settings are the engine's to check.
    fn connector(&mut self, raw: Spanned<toml::Table>, key: String) -> ConnectorSpec {
        let offset = raw.span().start;
        let mut inputs = connector::Inputs {
            env: self.env,
            folder: self.folder,
            problems: &mut self.problems,
            secrets: &mut self.secrets,
        };
        ConnectorSpec::read(raw.into_inner(), key, self.text, offset, &mut inputs)
    }

    fn connections(&mut self, raw: Vec<Spanned<toml::Table>>) -> Vec<Connection> {
        let mut ids = Vec::new();
        let mut out = Vec::new();
        for (i, table) in raw.into_iter().enumerate() {
            let offset = table.span().start;
            let key = format!("connections[{i}]");
            let mut spec = self.connector(table, key.clone());
            let id = match spec.settings.remove("id") {
                Some(toml::Value::String(s)) => match ConfigId::parse(&s) {
                    Ok(id) => id,
                    Err(e) => {
                        self.problems.push(spec.problem("id", e.to_string()));
                        continue;
                    }
                },
                _ => {
                    self.problems.push(spec.problem(
                        "id",
                        "is missing; name the connection (id = \"shop-api\") so subscribers and publishers can refer to it",
                    ));
                    continue;
                }
            };
            ids.push((id.clone(), offset));
            out.push(Connection { id, spec });
        }
        self.unique(&ids, "connection", "connections");
        out
    }

    fn retention(&mut self, raw: RawRetention) -> RetentionConfig {
        let mut r = RetentionConfig {
            max_tasks: raw.max_tasks,
            ..RetentionConfig::default()
        };
        if let Some(age) = raw.max_age {
            match parse_duration(&age) {
                Ok(d) if !d.is_zero() => r.max_age = d,
                Ok(_) => self.problem(None, "retention.max_age", "must be longer than zero"),
                Err(e) => self.problem(None, "retention.max_age", e),
            }
        }
        if let Some(d) = self.duration(raw.interval.as_deref(), "retention.interval") {
            r.interval = d;
        }
        if raw.max_tasks == Some(0) {
            self.problem(
                None,
                "retention.max_tasks",
                "must be at least 1; leave it out for no limit",
            );
        }
        r
    }

    /// A positive duration setting, or a problem.
    fn duration(&mut self, value: Option<&str>, key: &str) -> Option<Duration> {
        match parse_duration(value?) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(None, key, "must be longer than zero");
                None
            }
            Err(e) => {
                self.problem(None, key, e);
                None
            }
        }
    }

    fn workers(&mut self, raw: RawWorkers) -> WorkersConfig {
        let mut w = WorkersConfig::default();
        if let Some(n) = raw.concurrency {
            if (1..=256).contains(&n) {
                w.concurrency = n;
            } else {
                self.problem(
                    None,
                    "workers.concurrency",
                    format!("{n} is out of range; use 1 to 256"),
                );
            }
        }
        let settings = [
            (raw.lease.as_deref(), "workers.lease", &mut w.lease),
            (
                raw.poll_interval.as_deref(),
                "workers.poll_interval",
                &mut w.poll_interval,
            ),
            (
                raw.shutdown_grace.as_deref(),
                "workers.shutdown_grace",
                &mut w.shutdown_grace,
            ),
            (
                raw.transform_timeout.as_deref(),
                "workers.transform_timeout",
                &mut w.transform_timeout,
            ),
        ];
        for (value, key, slot) in settings {
            if let Some(d) = self.duration(value, key) {
                *slot = d;
            }
        }
        w
    }

    fn route(
        &mut self,
        i: usize,
        id: ConfigId,
        r: RawRoute,
        incoming_ids: &[(ConfigId, usize)],
        outgoing_ids: &[(ConfigId, usize)],
    ) -> Route {
        let key = |k: &str| format!("routes[{i}].{k}");
        if r.incoming.is_empty() {
            self.problem(
                Some(r.id.span().start),
                key("incoming"),
                "names no incoming configuration; list at least one",
            );
        }
        let incoming = r
            .incoming
            .iter()
            .enumerate()
            .map(|(j, inc)| {
                self.reference(
                    inc,
                    &format!("routes[{i}].incoming[{j}]"),
                    "incoming configuration",
                    incoming_ids,
                )
            })
            .collect();
        let outgoing = self.reference(
            &r.outgoing,
            &key("outgoing"),
            "outgoing configuration",
            outgoing_ids,
        );
        let batch_size = match r.batch_size {
            None => DEFAULT_BATCH_SIZE,
            Some(b) => {
                let n = *b.get_ref();
                if n == 0 || n > MAX_BATCH_SIZE {
                    self.problem(
                        Some(b.span().start),
                        key("batch_size"),
                        format!("{n} is out of range; use 1 to {MAX_BATCH_SIZE}"),
                    );
                }
                n
            }
        };
        let mut cron = |side: &str, expr: &Option<String>| {
            let parsed = expr.as_deref().map(CronSchedule::parse).transpose();
            parsed.unwrap_or_else(|e| {
                self.problem(Some(r.id.span().start), key(&format!("schedule.{side}")), e);
                None
            })
        };
        let schedule = Schedule {
            incoming: cron("incoming", &r.schedule.incoming),
            outgoing: cron("outgoing", &r.schedule.outgoing),
        };
        let retry = match r.retry {
            None => RetryPolicy::default(),
            Some(raw) => {
                let offset = raw.span().start;
                self.retry(raw.into_inner(), offset, &key("retry"))
            }
        };
        Route {
            name: r.name.unwrap_or_else(|| id.to_string()),
            id,
            incoming,
            outgoing,
            transformers: self.transformers(r.transformers, &key("transformers")),
            batch_size,
            realtime: r.realtime,
            disabled: r.disabled,
            schedule,
            retry,
        }
    }

    fn retry(&mut self, raw: RawRetry, offset: usize, key: &str) -> RetryPolicy {
        let mut p = RetryPolicy {
            enabled: raw.enabled.unwrap_or(true),
            on_http_status: raw.on_http_status,
            on_message: raw.on_message,
            ..RetryPolicy::default()
        };
        if let Some(n) = raw.max_attempts {
            if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
                self.problem(
                    Some(offset),
                    format!("{key}.max_attempts"),
                    format!(
                        "{n} is out of range; use 1 to {MAX_ATTEMPTS_LIMIT} (the first try counts)"
                    ),
                );
            }
            p.max_attempts = n;
        }
        if let Some(i) = raw.interval {
            match parse_duration(&i) {
                Ok(d) if d.is_zero() || d > MAX_INTERVAL => self.problem(
                    Some(offset),
                    format!("{key}.interval"),
                    format!("'{i}' is out of range; use more than zero and at most 6h"),
                ),
                Ok(d) => p.interval = d,
                Err(e) => self.problem(Some(offset), format!("{key}.interval"), e),
            }
        }
        match raw.backoff.as_deref() {
            None | Some("fixed") => p.backoff = Backoff::Fixed,
            Some("exponential") => p.backoff = Backoff::Exponential,
            Some(other) => self.problem(
                Some(offset),
                format!("{key}.backoff"),
                format!("'{other}' is not a backoff; use fixed or exponential"),
            ),
        }
        for s in &p.on_http_status {
            if !(100..=599).contains(s) {
                self.problem(
                    Some(offset),
                    format!("{key}.on_http_status"),
                    format!("{s} is not an HTTP status code"),
                );
            }
        }
        p
    }
}

/// Why `path` (relative to `folder`, the configuration's folder) leaves that folder, or
/// `None` when it stays inside. Lexical only: `..` is resolved against the names before
/// it and links are not followed (the core does no I/O).
pub fn leaves_folder(folder: &Path, path: &str) -> Option<&'static str> {
    let path = Path::new(path);
    if path.is_absolute() {
        if !folder.is_absolute() {
            return Some(
                "is an absolute path, and the configuration's folder is given relatively, so it cannot be shown to be inside it",
            );
        }
        let (path, folder) = (normalise(path), normalise(folder));
        return (!path.starts_with(&folder)).then_some("is outside the configuration's folder");
    }
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth == 0 => {
                return Some("leaves the configuration's folder through '..'");
            }
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => {
                return Some("is not relative to the configuration's folder");
            }
        }
    }
    None
}

/// An absolute `path` with `.` dropped and each `..` taking away the name before it (the
/// root's parent being the root).
fn normalise(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests;
