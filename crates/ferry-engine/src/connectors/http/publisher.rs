//! The `http` publisher: one request per task, the body made from the entity.

use super::HttpConnection;
use super::{Endpoint, MAX_REDIRECTS, Target, excerpt, read_capped, redirect_target};
use crate::connectors::settings::{self, Method, jq_opt};
use crate::connectors::{
    BuildResult, Built, CircuitState, Context, Delivered, DeliveryState, Publish, PublisherKind,
};
use crate::jq::JqProgram;
use async_trait::async_trait;
use ferry_core::TaskId;
use ferry_core::config::ConnectorSpec;
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
}

fn failure(message: String) -> Failure {
    Failure {
        message,
        ..Failure::default()
    }
}

impl Sender {
    fn body(&self, entity: &Value) -> Result<Value, Failure> {
        let Some(p) = &self.body else {
            return Ok(entity.clone());
        };
        let mut out = p
            .run(entity)
            .map_err(|e| failure(format!("body `{}`: {e}", p.code())))?;
        match out.len() {
            1 => Ok(out.remove(0)),
            n => Err(failure(format!(
                "body `{}` made {n} values of the entity; a request carries exactly one",
                p.code()
            ))),
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

    async fn publish(&self, entity: &Value, task: &TaskId) -> Result<Delivered, Failure> {
        let first = self.endpoint.url(Some(entity)).map_err(failure)?;
        let body = self.body(entity)?;
        let method = &self.method;
        let (mut current, mut redirects) = (first.clone(), 0);
        loop {
            let shown = self.endpoint.redact(current.as_str());
            let mut req = self
                .endpoint
                .request(method.clone(), current.clone())
                .json(&body);
            if let Some(h) = &self.idempotency_header {
                req = req.header(h, task.as_str());
            }
            for (name, value) in self.endpoint.headers_for(entity).map_err(failure)? {
                req = req.header(name, value);
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
            let success = if self.success_on.is_empty() {
                status.is_success()
            } else {
                self.success_on.contains(&code)
            };
            if success {
                let picked = if self.response.is_some() {
                    let text = read_capped(response, MAX_ANSWER_BYTES)
                        .await
                        .unwrap_or_else(|e| e);
                    self.picked(&text)
                } else {
                    None
                };
                let done = format!("{method} {shown} → {status}");
                return Ok(match picked {
                    None => Delivered::noted(done),
                    Some(Ok(Value::Null)) => Delivered::noted(format!("{done}; response: null")),
                    Some(Ok(value)) => Delivered {
                        note: format!("{done}; response: {}", excerpt(&shown_value(&value))),
                        response: Some(value),
                    },
                    Some(Err(why)) => Delivered::noted(format!("{done}; {why}")),
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
