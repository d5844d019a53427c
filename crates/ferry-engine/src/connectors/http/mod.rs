//! `http`: connections to HTTP APIs (TLS, sign-in), subscribers that read their pages,
//! publishers that send each task.

mod connection;
pub(crate) mod lookup;
mod publisher;
mod subscriber;

pub use connection::{HttpConnection, MaxInFlight};

use super::limiter::{Level, Limiter, Signal};
use super::{Context, Kind, settings};
use ferry_core::config::{ConnectorSpec, Problem, redact};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub static KIND: Kind = Kind {
    name: "http",
    subscriber: Some(&subscriber::HttpSubscriber),
    publisher: Some(&publisher::HttpPublisher),
    connection: Some(&connection::HttpConnectionKind),
};

/// Most redirects one request follows (within its origin, when allowed).
pub const MAX_REDIRECTS: usize = 5;
/// How much of an answer an error message quotes.
pub const EXCERPT_CHARS: usize = 500;

/// `scheme://host:port` of a URL, `None` for an opaque origin (which equals no other).
pub fn origin_of(url: &reqwest::Url) -> Option<String> {
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a subscriber or publisher sends its requests: through a connection (its base
/// URL, credentials and TLS) or to a URL of its own, with its own headers. Headers and
/// credentials go to the configured origin only.
pub(crate) struct Endpoint {
    connection: Option<Arc<HttpConnection>>,
    client: reqwest::Client,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers whose value holds `{field}` placeholders, filled from each entity.
    templated: Vec<(HeaderName, String)>,
    timeout: Duration,
    /// Requests at once: the connection's slots, or the endpoint's own.
    in_flight: Arc<Limiter>,
    /// The URL template (placeholders not yet expanded) or the connection's path.
    target: String,
    origin: String,
    secrets: Arc<Vec<String>>,
}

/// The settings every http subscriber and publisher shares for where it sends.
#[derive(serde::Deserialize, Default)]
pub(crate) struct Target {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub connection: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub timeout: Option<settings::Span>,
    /// Requests at once, for an endpoint without a connection (a connection has its own).
    #[serde(default)]
    pub max_in_flight: Option<MaxInFlight>,
}

impl Target {
    /// Splits `spec` into the target settings and the rest (which the kind reads with its
    /// own `deny_unknown_fields`).
    pub(crate) fn split(spec: &ConnectorSpec) -> Result<(Target, ConnectorSpec), Vec<Problem>> {
        const KEYS: [&str; 6] = [
            "url",
            "connection",
            "path",
            "headers",
            "timeout",
            "max_in_flight",
        ];
        let mut target = spec.clone();
        let mut rest = spec.clone();
        target.settings.retain(|k, _| KEYS.contains(&k));
        rest.settings.retain(|k, _| !KEYS.contains(&k));
        Ok((settings::parse(&target)?, rest))
    }
}

impl Endpoint {
    /// Checks `target` (exactly one of `url`, or `connection` with a `path`) and builds
    /// the endpoint. Placeholders (`{sku}`) may stand in the URL or path.
    pub(crate) fn new(
        spec: &ConnectorSpec,
        ctx: &Context<'_>,
        target: Target,
        problems: &mut Vec<Problem>,
    ) -> Option<Endpoint> {
        let (templates, fixed): (BTreeMap<_, _>, BTreeMap<_, _>) = target
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(_, v)| v.contains('{') && v.contains('}'));
        let headers = connection::header_list(spec, "headers", &fixed, problems);
        let templated: Vec<(HeaderName, String)> =
            connection::header_list(spec, "headers", &templates, problems)
                .into_iter()
                .zip(templates.into_values())
                .map(|((name, _), template)| (name, template))
                .collect();
        if target.connection.is_some() && target.max_in_flight.is_some() {
            problems.push(spec.problem(
                "max_in_flight",
                "is the connection's to set (every route through it shares it); move it to the [[connections]] entry",
            ));
        }
        let (connection, template, origin) = match (target.connection, target.url, target.path) {
            (Some(id), url, path) => {
                let c: Arc<HttpConnection> = match ctx.connection(spec, &id, "http") {
                    Ok(c) => c,
                    Err(p) => {
                        problems.extend(p);
                        return None;
                    }
                };
                let template = match (url, path) {
                    (None, Some(p)) => p,
                    (Some(u), None) => {
                        // A full URL through a connection must stay on its origin, where
                        // its credentials may go.
                        let on_origin = reqwest::Url::parse(&u.replace(['{', '}'], ""))
                            .ok()
                            .and_then(|u| origin_of(&u))
                            .is_some_and(|o| o == c.origin());
                        if !on_origin {
                            problems.push(spec.problem(
                                "url",
                                format!("'{u}' is not on the connection's origin ({}); use path = \"…\" relative to its base_url, or leave connection out", c.origin()),
                            ));
                            return None;
                        }
                        u
                    }
                    (None, None) => String::new(),
                    (Some(_), Some(_)) => {
                        problems.push(spec.problem("path", "give either path (relative to the connection's base_url) or url, not both"));
                        return None;
                    }
                };
                let origin = c.origin().to_owned();
                (Some(c), template, origin)
            }
            (None, Some(url), None) => {
                // The origin is judged with the placeholders taken out.
                let probe = url.replace(['{', '}'], "");
                match settings::http_url(&probe) {
                    Ok(u) => {
                        let origin = origin_of(&u.0).unwrap_or_default();
                        (None, url, origin)
                    }
                    Err(e) => {
                        problems.push(spec.problem("url", e));
                        return None;
                    }
                }
            }
            (None, _, Some(_)) => {
                problems.push(spec.problem(
                    "path",
                    "is relative to a connection's base_url; name the connection (connection = \"…\") or give a full url instead",
                ));
                return None;
            }
            (None, None, None) => {
                problems.push(spec.problem(
                    "url",
                    "is missing; give url = \"https://…\", or connection = \"…\" with a path",
                ));
                return None;
            }
        };
        let timeout = target
            .timeout
            .map(|t| t.0)
            .or(connection.as_ref().map(|c| c.timeout()))
            .unwrap_or(DEFAULT_TIMEOUT);
        let client = connection
            .as_ref()
            .map_or_else(|| ctx.client.clone(), |c| c.client().clone());
        let in_flight = match &connection {
            Some(c) => c.in_flight().clone(),
            None => MaxInFlight::limiter(target.max_in_flight),
        };
        Some(Endpoint {
            connection,
            client,
            headers,
            templated,
            timeout,
            in_flight,
            target: template,
            origin,
            // Through a connection its own list masks (with its tokens): see `redact`.
            secrets: ctx.secrets.clone(),
        })
    }

    /// The most requests this endpoint may have in flight at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.in_flight.ceiling()
    }

    /// Its requests in flight and the level allowed now.
    pub(crate) fn level(&self) -> Level {
        self.in_flight.level()
    }

    /// The headers with `{field}` placeholders, filled from `entity` (for a publisher;
    /// `send` adds them as written where no entity fills them).
    pub(crate) fn headers_for(
        &self,
        entity: &Value,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        self.templated
            .iter()
            .map(|(name, template)| {
                let text = fill(template, entity, "header", |t, _, out| {
                    out.push_str(t);
                    Ok(())
                })?;
                let mut value = HeaderValue::from_str(&text).map_err(|_| {
                    format!("the header {name} filled from the entity is not a valid header value")
                })?;
                value.set_sensitive(true);
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// Every header a request for `entity` would carry beside the request's own: the
    /// endpoint's (filled from the entity) and the connection's, secrets as `***`.
    pub(crate) fn preview_headers(&self, entity: &Value) -> Result<Vec<(String, String)>, String> {
        let mut out: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    self.redact(&String::from_utf8_lossy(v.as_bytes())),
                )
            })
            .collect();
        for (n, v) in self.headers_for(entity)? {
            out.push((
                n.to_string(),
                self.redact(&String::from_utf8_lossy(v.as_bytes())),
            ));
        }
        if let Some(c) = &self.connection {
            out.extend(c.preview_headers());
        }
        Ok(out)
    }

    /// Whether the target or a header takes `{field}` placeholders from the entity.
    pub(crate) fn takes_placeholders(&self) -> bool {
        self.target.contains('{') || !self.templated.is_empty()
    }

    /// The connection, if the endpoint goes through one.
    pub(crate) fn connection(&self) -> Option<&HttpConnection> {
        self.connection.as_deref()
    }

    /// The origin headers and credentials go to.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The target with `{field}` placeholders filled from `entity` (none for a subscriber)
    /// and resolved: against the connection's base URL, or as given.
    pub(crate) fn url(&self, entity: Option<&serde_json::Value>) -> Result<reqwest::Url, String> {
        let text = match entity {
            Some(e) => expand_placeholders(&self.target, e)?,
            None => self.target.clone(),
        };
        match &self.connection {
            Some(c) => c.url(&text),
            None => reqwest::Url::parse(&text).map_err(|e| format!("{text} is not a URL: {e}")),
        }
    }

    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> reqwest::RequestBuilder {
        self.client.request(method, url).timeout(self.timeout)
    }

    /// Sends `request`; the endpoint's headers (and the connection's headers and
    /// credentials) are added only when it goes to the configured origin.
    pub(crate) async fn send(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, String> {
        // Held until the answer's head is in (its body is read after, capped).
        let permit = self.in_flight.acquire().await;
        let own = origin_of(request.url()).as_deref() == Some(self.origin.as_str());
        if own {
            for (name, value) in &self.headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            for (name, template) in &self.templated {
                if !request.headers().contains_key(name)
                    && let Ok(v) = HeaderValue::from_str(template)
                {
                    request.headers_mut().insert(name.clone(), v);
                }
            }
        }
        let answer = match &self.connection {
            Some(c) => c.send(request).await,
            None => {
                let shown = format!("{} {}", request.method(), request.url());
                let timeout = self.timeout;
                self.client.execute(request).await.map_err(|e| {
                    let why = if e.is_timeout() {
                        format!("timeout after {timeout:?}")
                    } else {
                        error_chain(&e)
                    };
                    redact(&format!("{shown}: {why}"), &self.secrets)
                })
            }
        };
        permit.done(match &answer {
            Ok(r) if !matches!(r.status().as_u16(), 429 | 503) => Signal::Answered,
            _ => Signal::Backpressure,
        });
        answer
    }

    /// `text` with secret values (and a connection's current tokens) masked.
    pub(crate) fn redact(&self, text: &str) -> String {
        match &self.connection {
            Some(c) => c.redact(text),
            None => redact(text, &self.secrets),
        }
    }
}

/// The first `EXCERPT_CHARS` characters of an answer.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Where a 3xx answer points, resolved against the URL it answers (`None` for any other
/// answer, or a 3xx without a usable `Location`, such as 304).
pub fn redirect_target(response: &reqwest::Response, url: &reqwest::Url) -> Option<reqwest::Url> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?;
    url.join(location.to_str().ok()?).ok()
}

/// An answer's body as text, refused past `max` bytes (an outside system could send
/// gigabytes); the error says how much was allowed.
pub async fn read_capped(response: reqwest::Response, max: usize) -> Result<String, String> {
    let body = read_capped_bytes(response, max).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// As [`read_capped`], the bytes as they came.
pub async fn read_capped_bytes(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The causes under reqwest's own summary (which repeats the URL), joined, with what a
/// certificate failure means.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(inner) = source {
        causes.push(inner.to_string());
        source = inner.source();
    }
    let chain = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    match crate::connectors::tls::explain(&chain) {
        Some(why) => format!("{why} ({chain})"),
        None => chain,
    }
}

/// Replaces `{field}` (or `{a.b}`) in a URL with the value from the entity, percent-encoded
/// so that it stays one path segment (or one query value after `?`): entity data never
/// changes which path is called (`..`, `/`) nor collides with another value (`A B` and
/// `A+B`).
pub fn expand_placeholders(template: &str, entity: &Value) -> Result<String, String> {
    fill(template, entity, "URL", |text, in_query, out| {
        if !in_query && (text == "." || text == "..") {
            // `%2E` and `%2E%2E` are dot segments too (WHATWG URL), so the URL would be
            // resolved to another path before it is sent.
            return Err("which would change the path instead of naming one segment");
        }
        encode_component(text, out);
        Ok(())
    })
}

/// `template` with each `{field}` (or `{a.b}`) replaced by the entity's value, written
/// by `put` (told whether the placeholder stands after a `?`), which may refuse it.
fn fill(
    template: &str,
    entity: &Value,
    what: &str,
    mut put: impl FnMut(&str, bool, &mut String) -> Result<(), &'static str>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut in_query = false;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        in_query |= rest[..start].contains('?');
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let field = &rest[start + 1..start + len];
        let value = field
            .split('.')
            .try_fold(entity, |v, k| v.get(k))
            .ok_or_else(|| {
                format!("the {what} placeholder {{{field}}} has no value in the entity")
            })?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        put(&text, in_query, &mut out)
            .map_err(|why| format!("the {what} placeholder {{{field}}} is '{text}', {why}"))?;
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Percent-encodes every byte but RFC 3986's unreserved characters, which is safe in a
/// path segment and in a query value alike.
fn encode_component(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_take_values_from_the_entity() {
        let e = json!({"sku": "A B/1", "n": 3, "meta": {"store": "eu"}});
        let url = expand_placeholders("http://h/p/{sku}?n={n}&s={meta.store}", &e).unwrap();
        assert_eq!(url, "http://h/p/A%20B%2F1?n=3&s=eu");
        assert!(expand_placeholders("http://h/{missing}", &e).is_err());
    }

    #[test]
    fn a_placeholder_stays_one_path_segment_or_one_query_value() {
        let url = |v: &str, template: &str| {
            expand_placeholders(template, &json!({ "v": v })).map_err(|e| e.to_string())
        };
        for (value, segment) in [
            ("A B", "A%20B"),
            ("A+B", "A%2BB"),
            ("a/b", "a%2Fb"),
            ("...", "..."),
            ("é?#&=%", "%C3%A9%3F%23%26%3D%25"),
        ] {
            assert_eq!(
                url(value, "http://h/p/{v}/s").unwrap(),
                format!("http://h/p/{segment}/s")
            );
            assert_eq!(
                url(value, "http://h/p?q={v}&r=1").unwrap(),
                format!("http://h/p?q={segment}&r=1")
            );
        }
        for dots in [".", ".."] {
            let e = url(dots, "http://h/p/{v}/s").unwrap_err();
            assert!(e.contains("{v}") && e.contains("change the path"), "{e}");
            assert_eq!(
                url(dots, "http://h/p?q={v}").unwrap(),
                format!("http://h/p?q={dots}")
            );
        }
    }
}
