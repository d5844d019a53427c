//! The `lookup` transformer's request: GET another system (through a connection, so
//! its credentials, rate limit and circuit breaker apply, or a URL of its own) with the
//! entity's fields in the path, and merge what it answers into the entity.
//!
//! ```toml
//! { type = "lookup", connection = "erp", path = "/customers/{customer_id}",
//!   pick = ".data", into = ".customer", cache = "10m", on_miss = "keep", on_error = "fail" }
//! ```

use super::{Endpoint, Target, excerpt, read_capped};
use crate::connectors::{Context, settings};
use crate::jq::JqProgram;
use crate::transform::{Enriched, Lookup};
use ferry_core::config::{ConnectorSpec, Problem};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Most answers kept per lookup; the oldest go first beyond it.
const MAX_CACHED: usize = 10_000;
/// A lookup's own timeout unless `timeout` says otherwise: it runs inside the
/// transformer time limit (`workers.transform_timeout`, 5 s by default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// A jq path in the entity where the answer goes; `.` merges an object answer
    /// into the entity.
    #[serde(default = "dot")]
    into: String,
    /// jq over the answer (JSON when it is JSON, else its text) picking what is merged;
    /// no value or null counts as a miss.
    #[serde(default)]
    pick: Option<String>,
    /// How long an answer (or a miss) is reused for the same request.
    #[serde(default)]
    cache: Option<settings::Span>,
    #[serde(default)]
    on_miss: OnFailure,
    #[serde(default)]
    on_error: OnFailure,
}

fn dot() -> String {
    ".".into()
}

/// What a miss (404, or nothing picked) or an error does to the entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnFailure {
    /// The entity fails (a webhook answers 422; a task fails and may be retried).
    #[default]
    Fail,
    /// The entity is dropped.
    Skip,
    /// The entity goes on unchanged.
    Keep,
}

/// A built lookup.
pub(crate) struct HttpLookup {
    key: String,
    endpoint: Endpoint,
    into: String,
    /// `path(<into>)`.
    into_path: JqProgram,
    pick: Option<JqProgram>,
    ttl: Option<Duration>,
    cache: Mutex<HashMap<String, (Instant, Option<Value>)>>,
    on_miss: OnFailure,
    on_error: OnFailure,
}

impl std::fmt::Debug for HttpLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpLookup")
            .field("key", &self.key)
            .finish()
    }
}

/// Builds the lookup a `lookup` transformer's settings describe.
pub(crate) fn build(
    spec: &ConnectorSpec,
    ctx: &Context<'_>,
) -> Result<Arc<dyn Lookup>, Vec<Problem>> {
    let (mut target, rest) = Target::split(spec)?;
    if target.timeout.is_none() {
        target.timeout = Some(settings::Span(DEFAULT_TIMEOUT));
    }
    let s: Settings = settings::parse(&rest)?;
    let mut problems = Vec::new();
    let endpoint = Endpoint::new(spec, ctx, target, &mut problems);
    let into_path = JqProgram::compile(&format!("path({})", s.into))
        .map_err(|e| {
            problems.push(spec.problem("into", format!("`{}` is not a jq path: {e}", s.into)))
        })
        .ok();
    let pick = settings::jq_opt(spec, "pick", s.pick.as_deref(), &mut problems);
    let (Some(endpoint), Some(into_path)) = (endpoint, into_path) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Arc::new(HttpLookup {
        key: spec.key.clone(),
        endpoint,
        into: s.into,
        into_path,
        pick,
        ttl: s.cache.map(|c| c.0),
        cache: Mutex::new(HashMap::new()),
        on_miss: s.on_miss,
        on_error: s.on_error,
    }))
}

/// What one request gave: what to merge, or nothing (a miss).
type Answer = Result<Option<Value>, String>;

impl HttpLookup {
    async fn fetch(&self, url: reqwest::Url) -> Answer {
        let shown = self.endpoint.redact(url.as_str());
        let request = self
            .endpoint
            .request(reqwest::Method::GET, url)
            .header(reqwest::header::ACCEPT, "application/json")
            .build()
            .map_err(|e| format!("GET {shown}: {e}"))?;
        let response = self.endpoint.send(request).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| format!("GET {shown}: {e}"))?;
        if !status.is_success() {
            return Err(self
                .endpoint
                .redact(&format!("GET {shown} → {status}: {}", excerpt(&text))));
        }
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let picked = match &self.pick {
            Some(p) => p
                .run(&answer)
                .map_err(|e| format!("GET {shown}: pick `{}`: {e}", p.code()))?
                .into_iter()
                .next(),
            None => Some(answer),
        };
        Ok(picked.filter(|v| !v.is_null()))
    }

    /// The answer for `url`: from the cache while fresh, else asked (and kept).
    fn answer(&self, url: reqwest::Url) -> (Answer, bool) {
        let key = url.to_string();
        if let Some(ttl) = self.ttl {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, v)) = cache.get(&key)
                && at.elapsed() < ttl
            {
                return (Ok(v.clone()), true);
            }
        }
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(self.fetch(url)),
            Err(_) => Err("a lookup runs inside ferry's runtime only".into()),
        };
        if let (Some(_), Ok(v)) = (self.ttl, &answer) {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_CACHED
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
            cache.insert(key, (Instant::now(), v.clone()));
        }
        (answer, false)
    }

    fn merge(&self, mut entity: Value, found: Value) -> Result<Value, String> {
        let paths = self.into_path.run(&entity)?;
        let Some(Value::Array(path)) = paths.into_iter().next() else {
            return Err(format!("into `{}` names no place in the entity", self.into));
        };
        if path.is_empty() {
            return match (entity, found) {
                (Value::Object(mut e), Value::Object(f)) => {
                    e.extend(f);
                    Ok(Value::Object(e))
                }
                (_, f) => Err(format!(
                    "into `.` merges an object answer into the entity, and the answer is {}; set into to a field such as \".customer\"",
                    ferry_core::entity::kind_of(&f)
                )),
            };
        }
        crate::transform::set_path(&mut entity, &path, found);
        Ok(entity)
    }
}

impl Lookup for HttpLookup {
    fn enrich(&self, entity: Value) -> Result<Enriched, String> {
        let url = self.endpoint.url(Some(&entity))?;
        let shown = self.endpoint.redact(url.as_str());
        let (answer, cached) = self.answer(url);
        let from = if cached { " (cached)" } else { "" };
        let (what, why) = match answer {
            Ok(Some(found)) => {
                let merged = self.merge(entity, found)?;
                return Ok(Enriched::Merged {
                    entity: merged,
                    note: format!("GET {shown}{from}: merged at {}", self.into),
                });
            }
            Ok(None) => (self.on_miss, format!("GET {shown}{from}: not found")),
            Err(e) => (self.on_error, e),
        };
        match what {
            OnFailure::Fail => Err(why),
            OnFailure::Skip => Ok(Enriched::Skipped {
                note: format!("{why}; entity dropped"),
            }),
            OnFailure::Keep => Ok(Enriched::Kept {
                entity,
                note: format!("{why}; entity kept as it was"),
            }),
        }
    }
}
