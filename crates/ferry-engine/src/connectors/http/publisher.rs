//! The `http` publisher: one request per task, the body made from the entity; or, with
//! `batch`, one request per up to `size` tasks, the body made from their entities.

use super::HttpConnection;
use super::{Endpoint, MAX_REDIRECTS, Target, excerpt, read_capped, redirect_target};
use crate::connectors::settings::{self, Method, jq_opt};
use crate::connectors::{
    BuildResult, Built, CircuitState, Context, Delivered, DeliveryState, Preview, PreviewHeader,
    Publish, PublisherKind, one_by_one,
};
use crate::formats::{self, Format, XmlSettings};
use crate::jq::JqProgram;
use async_trait::async_trait;
use ferry_core::TaskId;
use ferry_core::config::{ConnectorSpec, Problem};
use ferry_core::retry::Failure;
use reqwest::header::HeaderName;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Largest answer read (for the error excerpt and `response`).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    method: Option<Method>,
    /// A 3xx answer fails the task unless this is set; then redirects within the origin
    /// are followed (up to 5), and one to another origin still fails.
    #[serde(default)]
    follow_redirects: bool,
    /// jq over the entity giving the request body; the entity itself when absent.
    #[serde(default)]
    body: Option<String>,
    /// A header carrying the task's identifier, the same on every attempt, so a target
    /// that knows idempotency keys applies a repeated request once.
    #[serde(default)]
    idempotency_header: Option<String>,
    /// jq over the target's answer (JSON when it is JSON, else its text), noted on the
    /// task (the id the target gave the entity, say).
    #[serde(default)]
    response: Option<String>,
    /// The answers that count as success (default: every 2xx).
    #[serde(default)]
    success_on: Vec<u16>,
    /// The answers that end the task `failed` at once, whatever the route's retry policy
    /// (a 422 the target will give again, say).
    #[serde(default)]
    fail_on: Vec<u16>,
    /// Up to `size` tasks in one request, for targets with a bulk endpoint.
    #[serde(default)]
    batch: Option<BatchSettings>,
    /// How the body is sent: `json` (the default) or `xml` (the body's JSON as XML, as
    /// ferry reads XML; `Content-Type: application/xml`).
    #[serde(default = "json")]
    format: Format,
    /// `root`: the element around a body that is not an object of one key.
    #[serde(default)]
    xml: XmlSettings,
}

fn json() -> Format {
    Format::Json
}

/// `batch = { size = 100, body = "{products: .}", results = ".results" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSettings {
    size: u32,
    /// jq over the array of the entities giving the request body; the array when absent.
    #[serde(default)]
    body: Option<String>,
    /// jq over the answer giving an array with an item per task, in the request's order.
    #[serde(default)]
    results: Option<String>,
}

/// Most tasks one batch request may carry.
const MAX_BATCH: u32 = 10_000;

/// A built `batch` setting.
struct Batch {
    size: usize,
    body: Option<JqProgram>,
    results: Option<JqProgram>,
}

impl Batch {
    fn build(
        spec: &ConnectorSpec,
        s: BatchSettings,
        endpoint: Option<&Endpoint>,
        problems: &mut Vec<Problem>,
    ) -> Option<Batch> {
        if !(1..=MAX_BATCH).contains(&s.size) {
            problems.push(spec.problem(
                "batch.size",
                format!(
                    "{} tasks a request is out of range; use 1 to {MAX_BATCH}",
                    s.size
                ),
            ));
        }
        if endpoint.is_some_and(Endpoint::takes_placeholders) {
            problems.push(spec.problem(
                "batch",
                "a batch request carries several entities, so its url, path and headers cannot take {field} placeholders; send to one bulk endpoint",
            ));
        }
        let body = jq_opt(spec, "batch.body", s.body.as_deref(), problems);
        let results = jq_opt(spec, "batch.results", s.results.as_deref(), problems);
        Some(Batch {
            size: s.size.clamp(1, MAX_BATCH) as usize,
            body,
            results,
        })
    }

    /// The request body for `entities` (an array).
    fn body(&self, entities: Value) -> Result<Value, Failure> {
        match &self.body {
            Some(p) => one_body(p, &entities, "batch.body", "the entities"),
            None => Ok(entities),
        }
    }
}

pub(super) struct HttpPublisher;

impl PublisherKind for HttpPublisher {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Arc<dyn Publish>> {
        let (target, rest) = Target::split(spec)?;
        let s: Settings = settings::parse(&rest)?;
        let mut problems = Vec::new();
        let endpoint = Endpoint::new(spec, ctx, target, &mut problems);
        let body = jq_opt(spec, "body", s.body.as_deref(), &mut problems);
        let response = jq_opt(spec, "response", s.response.as_deref(), &mut problems);
        let idempotency_header = match s.idempotency_header {
            None => None,
            Some(h) => match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(spec.problem(
                        "idempotency_header",
                        format!("'{h}' is not a valid header name"),
                    ));
                    None
                }
            },
        };
        for (key, list) in [("success_on", &s.success_on), ("fail_on", &s.fail_on)] {
            if let Some(bad) = list.iter().find(|c| !(100..=599).contains(*c)) {
                problems.push(spec.problem(key, format!("{bad} is not an HTTP status code")));
            }
        }
        if let Some(both) = s.success_on.iter().find(|c| s.fail_on.contains(c)) {
            problems.push(spec.problem(
                "fail_on",
                format!("{both} is in success_on too; a status is one or the other"),
            ));
        }
        if !matches!(s.format, Format::Json | Format::Xml) {
            problems.push(spec.problem(
                "format",
                "an http publisher sends \"json\" or \"xml\"; for CSV or NDJSON use a file publisher",
            ));
        }
        let batch = s
            .batch
            .and_then(|b| Batch::build(spec, b, endpoint.as_ref(), &mut problems));
        let Some(endpoint) = endpoint.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Built::new(Arc::new(Sender {
            endpoint,
            method: s.method.map_or(reqwest::Method::POST, |m| m.0),
            follow_redirects: s.follow_redirects,
            body,
            idempotency_header,
            response,
            success_on: s.success_on,
            fail_on: s.fail_on,
            batch,
            xml: (s.format == Format::Xml).then_some(s.xml),
        }) as Arc<dyn Publish>))
    }
}

/// Sends the entity (or `body` of it) as JSON. The client follows no redirect: the
/// headers and credentials must reach the configured origin only, so a 3xx is handled
/// here.
struct Sender {
    endpoint: Endpoint,
    method: reqwest::Method,
    follow_redirects: bool,
    body: Option<JqProgram>,
    idempotency_header: Option<HeaderName>,
    response: Option<JqProgram>,
    success_on: Vec<u16>,
    fail_on: Vec<u16>,
    batch: Option<Batch>,
    /// Set when the body is sent as XML.
    xml: Option<XmlSettings>,
}

/// The one request body the `key` expression `p` makes of `input` (`of` names it).
fn one_body(p: &JqProgram, input: &Value, key: &str, of: &str) -> Result<Value, Failure> {
    let mut out = p
        .run(input)
        .map_err(|e| failure(format!("{key} `{}`: {e}", p.code())))?;
    match out.len() {
        1 => Ok(out.remove(0)),
        n => Err(failure(format!(
            "{key} `{}` made {n} values of {of}; a request carries exactly one",
            p.code()
        ))),
    }
}

fn failure(message: String) -> Failure {
    Failure {
        message,
        ..Failure::default()
    }
}

impl Sender {
    fn body(&self, entity: &Value) -> Result<Value, Failure> {
        match &self.body {
            Some(p) => one_body(p, entity, "body", "the entity"),
            None => Ok(entity.clone()),
        }
    }

    /// Whether an HTTP status (of the answer, or of an item of a batch's results)
    /// counts as success: in `success_on`, or any 2xx without it.
    fn succeeded(&self, code: u16) -> bool {
        if self.success_on.is_empty() {
            (200..300).contains(&code)
        } else {
            self.success_on.contains(&code)
        }
    }

    /// What `response` picks from the answer (JSON when it is JSON, else its text):
    /// one value as it is, several as an array, none as nothing; an expression that
    /// fails keeps nothing and says why in the log line.
    fn picked(&self, text: &str) -> Option<Result<Value, String>> {
        let p = self.response.as_ref()?;
        let answer = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        Some(
            p.run(&answer)
                .map(|mut values| match values.len() {
                    0 => Value::Null,
                    1 => values.remove(0),
                    _ => Value::Array(values),
                })
                .map_err(|e| format!("response `{}` failed: {e}", p.code())),
        )
    }
}

/// A value as a log line shows it: a string without its quotes.
fn shown_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Publish for Sender {
    fn preview(&self, entity: &Value, task: &TaskId) -> Result<Preview, String> {
        let url = self.endpoint.url(Some(entity))?;
        let body = match &self.batch {
            // A batch of one: the request a batch would make.
            Some(b) => b.body(Value::Array(vec![entity.clone()])),
            None => self.body(entity),
        }
        .map_err(|f| f.message)?;
        let (content_type, text) = match &self.xml {
            Some(s) => (
                "application/xml",
                formats::write_xml_document(&body, s)
                    .map_err(|e| format!("the body cannot be sent as XML: {e}"))?,
            ),
            None => (
                "application/json",
                serde_json::to_string_pretty(&body).map_err(|e| e.to_string())?,
            ),
        };
        let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
        if let Some(h) = &self.idempotency_header {
            headers.push((h.to_string(), task.to_string()));
        }
        headers.extend(self.endpoint.preview_headers(entity)?);
        Ok(Preview {
            method: self.method.to_string(),
            target: self.endpoint.redact(url.as_str()),
            headers: headers
                .into_iter()
                .map(|(name, value)| PreviewHeader { name, value })
                .collect(),
            body: self.endpoint.redact(&text),
        })
    }

    fn max_in_flight(&self) -> usize {
        self.endpoint.max_in_flight()
    }

    fn may_send(&self) -> bool {
        self.endpoint
            .connection()
            .is_none_or(HttpConnection::may_send)
    }

    fn paused(&self) -> bool {
        self.endpoint
            .connection()
            .is_some_and(HttpConnection::is_open)
    }

    fn circuit(&self) -> Option<CircuitState> {
        self.endpoint.connection().and_then(HttpConnection::circuit)
    }

    fn delivery(&self) -> Option<DeliveryState> {
        Some(DeliveryState {
            level: self.endpoint.level(),
            rate_limit: self
                .endpoint
                .connection()
                .and_then(|c| c.delivery().rate_limit)
                .map(|r| r.to_string()),
        })
    }

    fn batch_size(&self) -> Option<usize> {
        self.batch.as_ref().map(|b| b.size)
    }

    async fn publish(&self, entity: &Value, task: &TaskId) -> Result<Delivered, Failure> {
        let url = self.endpoint.url(Some(entity)).map_err(failure)?;
        let body = self.body(entity)?;
        let answer = self
            .exchange(url, &body, Some(task.as_str()), Some(entity))
            .await?;
        Ok(self.delivered(answer.done, answer.text.as_deref()))
    }

    async fn publish_many(&self, items: &[(&Value, &TaskId)]) -> Vec<Result<Delivered, Failure>> {
        let Some(batch) = &self.batch else {
            return one_by_one(self, items).await;
        };
        let every = |f: Failure| items.iter().map(|_| Err(f.clone())).collect();
        let entities = Value::Array(items.iter().map(|(e, _)| (*e).clone()).collect());
        let body = match batch.body(entities) {
            Ok(b) => b,
            Err(f) => return every(f),
        };
        let url = match self.endpoint.url(None) {
            Ok(u) => u,
            Err(e) => return every(failure(e)),
        };
        let key = self
            .idempotency_header
            .as_ref()
            .map(|_| batch_key(items.iter().map(|(_, t)| t.as_str())));
        let answer = match self.exchange(url, &body, key.as_deref(), None).await {
            Ok(a) => a,
            Err(f) => return every(f),
        };
        let n = items.len();
        let Some(results) = &batch.results else {
            // The answer's outcome applies to every task of the request.
            return items
                .iter()
                .map(|_| {
                    Ok(self.delivered(
                        format!("{} (a batch of {n})", answer.done),
                        answer.text.as_deref(),
                    ))
                })
                .collect();
        };
        let text = answer.text.as_deref().unwrap_or_default();
        let listed = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("the answer is not JSON ({e})"))
            .and_then(|a| {
                results
                    .run(&a)
                    .map_err(|e| format!("results `{}` failed: {e}", results.code()))
            })
            .and_then(|mut v| match (v.pop(), v.is_empty()) {
                (Some(Value::Array(items)), true) => Ok(items),
                _ => Err(format!(
                    "results `{}` must give one array, of an item per task in the request",
                    results.code()
                )),
            });
        let listed = match listed {
            Ok(l) => l,
            Err(why) => {
                return every(failure(self.endpoint.redact(&format!(
                    "{}, but {why}: {}",
                    answer.done,
                    excerpt(text)
                ))));
            }
        };
        (0..n)
            .map(|i| match listed.get(i) {
                None => Err(failure(format!(
                    "{}, but its results held {} items for the {n} tasks of the request; item {} is missing",
                    answer.done,
                    listed.len(),
                    i + 1
                ))),
                Some(item) => self.item_outcome(&answer.done, i, n, item),
            })
            .collect()
    }
}

/// An answer that counted as success: what was done, for the log, and the answer's
/// text when a `response` or `results` expression reads it.
struct Answer {
    done: String,
    text: Option<String>,
}

impl Sender {
    /// What a success answer keeps: `response` over the answer's text, if set.
    fn delivered(&self, done: String, text: Option<&str>) -> Delivered {
        match text.and_then(|t| self.picked(t)) {
            None => Delivered::noted(done),
            Some(Ok(Value::Null)) => Delivered::noted(format!("{done}; response: null")),
            Some(Ok(value)) => Delivered {
                note: format!("{done}; response: {}", excerpt(&shown_value(&value))),
                response: Some(value),
            },
            Some(Err(why)) => Delivered::noted(format!("{done}; {why}")),
        }
    }

    /// Item `i` of a batch answer's results: a `status` judged as an HTTP status
    /// would be (`success_on`, `fail_on`), else an `error` that is not null or false
    /// fails the task; `response` reads the item.
    fn item_outcome(
        &self,
        done: &str,
        i: usize,
        n: usize,
        item: &Value,
    ) -> Result<Delivered, Failure> {
        let code = item
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        let error = item
            .get("error")
            .filter(|e| !matches!(e, Value::Null | Value::Bool(false)));
        let ok = match code {
            Some(c) => self.succeeded(c),
            None => error.is_none(),
        };
        let place = format!("item {} of {n}", i + 1);
        if ok {
            let mut d = self.delivered(format!("{done}; {place}"), Some(&item.to_string()));
            if let Some(c) = code {
                d.note.push_str(&format!(" (status {c})"));
            }
            return Ok(d);
        }
        let said = match error {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => excerpt(&item.to_string()),
        };
        Err(Failure {
            message: self.endpoint.redact(&format!(
                "{done}, but {place} failed{}: {said}",
                code.map(|c| format!(" with status {c}"))
                    .unwrap_or_default()
            )),
            http_status: code,
            permanent: code.is_some_and(|c| self.fail_on.contains(&c)),
            retry_after: None,
        })
    }

    /// Sends `body` to `first` (following redirects within its origin when allowed)
    /// and judges the answer's status; `entity` fills header placeholders.
    async fn exchange(
        &self,
        first: reqwest::Url,
        body: &Value,
        key: Option<&str>,
        entity: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let method = &self.method;
        let xml = match &self.xml {
            Some(s) => Some(formats::write_xml_document(body, s).map_err(|e| Failure {
                message: format!("the body cannot be sent as XML: {e}"),
                permanent: true,
                ..Failure::default()
            })?),
            None => None,
        };
        let (mut current, mut redirects) = (first.clone(), 0);
        loop {
            let shown = self.endpoint.redact(current.as_str());
            let req = self.endpoint.request(method.clone(), current.clone());
            let mut req = match &xml {
                Some(text) => req
                    .header(reqwest::header::CONTENT_TYPE, "application/xml")
                    .body(text.clone()),
                None => req.json(body),
            };
            if let (Some(h), Some(key)) = (&self.idempotency_header, key) {
                req = req.header(h, key);
            }
            if let Some(entity) = entity {
                for (name, value) in self.endpoint.headers_for(entity).map_err(failure)? {
                    req = req.header(name, value);
                }
            }
            let request = req
                .build()
                .map_err(|e| failure(format!("{method} {shown}: {e}")))?;
            let response = self.endpoint.send(request).await.map_err(failure)?;
            let status = response.status();
            let code = status.as_u16();
            let retry_after = super::connection::retry_after(&response);
            let fail = |message: String| Failure {
                message: self
                    .endpoint
                    .redact(&format!("{method} {shown} → {status}: {message}")),
                http_status: Some(code),
                permanent: self.fail_on.contains(&code),
                retry_after,
            };
            if self.succeeded(code) {
                let reads = self.response.is_some()
                    || self.batch.as_ref().is_some_and(|b| b.results.is_some());
                let text = if reads {
                    Some(
                        read_capped(response, MAX_ANSWER_BYTES)
                            .await
                            .unwrap_or_else(|e| e),
                    )
                } else {
                    None
                };
                return Ok(Answer {
                    done: format!("{method} {shown} → {status}"),
                    text,
                });
            }
            if let Some(to) = redirect_target(&response, &current) {
                if !self.follow_redirects {
                    return Err(fail(format!(
                        "redirected to {to}; redirects are not followed unless follow_redirects = true on the publisher"
                    )));
                }
                if to.origin() != first.origin() {
                    return Err(fail(format!(
                        "redirected to {to}, on another origin than {}; only redirects within it are followed",
                        first.origin().ascii_serialization()
                    )));
                }
                if redirects == MAX_REDIRECTS {
                    return Err(fail(format!(
                        "redirected to {to} after {MAX_REDIRECTS} redirects already; no more are followed"
                    )));
                }
                redirects += 1;
                current = to;
                continue;
            }
            let text = read_capped(response, 64 * 1024).await.unwrap_or_else(|e| e);
            return Err(fail(excerpt(&text)));
        }
    }
}

/// The idempotency key of a batch request: the same tasks give the same key, on every
/// attempt.
fn batch_key<'a>(tasks: impl Iterator<Item = &'a str>) -> String {
    let mut ids: Vec<&str> = tasks.collect();
    ids.sort_unstable();
    let digest = ferry_core::digest::sha256_hex(ids.join("\n").as_bytes());
    // The first 16 bytes are enough to tell batches apart.
    format!("batch-{}-{}", ids.len(), &digest[..32])
}
