//! An `http` connection: one API described once — its base URL, default headers,
//! timeout, TLS trust and client certificate, and how to sign in (basic, bearer, an API
//! key, or OAuth2 client credentials with a token shared by every route on the node).
//! Credentials and default headers go to the connection's origin only.

use super::{error_chain, excerpt, origin_of, read_capped};
use crate::connectors::limiter::{DEFAULT_AUTO_MAX, Limiter, Pacer};
use crate::connectors::settings::{self, HttpUrl, Span};
use crate::connectors::tls::{TlsFiles, client_builder};
use crate::connectors::{BuildResult, Built, CircuitState, Connect, ConnectionKind, Context};
use async_trait::async_trait;
use ferry_core::config::{ConnectorSpec, Problem, Secret, redact};
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token endpoint answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    base_url: HttpUrl,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timeout: Option<Span>,
    #[serde(default)]
    tls: TlsFiles,
    #[serde(default)]
    auth: Option<AuthSettings>,
    /// Delivery settings (requests in flight, rate limit, circuit breaker): read and
    /// checked here, applied by the delivery scheduler.
    #[serde(default)]
    max_in_flight: Option<MaxInFlight>,
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    circuit_breaker: Option<CircuitBreaker>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum AuthSettings {
    Basic {
        username: String,
        password: Secret,
    },
    Bearer {
        token: Secret,
    },
    ApiKey {
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        query: Option<String>,
        value: Secret,
    },
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        token_url: HttpUrl,
        client_id: String,
        client_secret: Secret,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        audience: Option<String>,
        /// Extra form fields of the token request (`resource`, say).
        #[serde(default)]
        params: BTreeMap<String, String>,
        /// How the client authenticates to the token endpoint: `basic` (an
        /// Authorization header, RFC 6749's default) or `body` (client_id and
        /// client_secret as form fields).
        #[serde(default)]
        client_auth: ClientAuth,
    },
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ClientAuth {
    #[default]
    Basic,
    Body,
}

/// Requests at once through a connection (or a publisher without one) when not set.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 8;

/// `max_in_flight`: a number of requests at once, or `"auto"` (adaptive, at most 200) or
/// `"auto:N"` (adaptive, at most N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxInFlight {
    Fixed(u32),
    Auto { max: u32 },
}

impl<'de> Deserialize<'de> for MaxInFlight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MaxInFlight, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if (1..=1024).contains(&n) => Ok(MaxInFlight::Fixed(n as u32)),
            Raw::S(s) if s.trim() == "auto" => Ok(MaxInFlight::Auto {
                max: DEFAULT_AUTO_MAX as u32,
            }),
            Raw::S(s) => match s
                .trim()
                .strip_prefix("auto:")
                .map(|n| n.trim().parse::<i64>())
            {
                Some(Ok(n)) if (1..=1024).contains(&n) => Ok(MaxInFlight::Auto { max: n as u32 }),
                _ => Err(serde::de::Error::custom(format!(
                    "'{s}' is not a number of requests; use 1 to 1024, \"auto\" (adaptive, at most {DEFAULT_AUTO_MAX}) or \"auto:N\" (adaptive, at most N)"
                ))),
            },
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "{n} is out of range; use 1 to 1024, or \"auto\""
            ))),
        }
    }
}

impl MaxInFlight {
    /// The limiter the setting asks for (none set: the default fixed number).
    pub fn limiter(setting: Option<MaxInFlight>) -> Arc<Limiter> {
        Arc::new(match setting {
            Some(MaxInFlight::Fixed(n)) => Limiter::fixed(n as usize),
            Some(MaxInFlight::Auto { max }) => Limiter::adaptive(max as usize),
            None => Limiter::fixed(DEFAULT_MAX_IN_FLIGHT as usize),
        })
    }
}

/// `rate_limit = "50/s"` (also `/m`, `/h`): requests per period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RateLimit, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "'{text}' is not a rate; write requests per second, minute or hour: \"50/s\", \"600/m\", \"10000/h\""
            ))
        };
        let (n, unit) = text.split_once('/').ok_or_else(bad)?;
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if requests == 0 {
            return Err(serde::de::Error::custom(format!(
                "'{text}' allows no request at all; use at least 1"
            )));
        }
        Ok(RateLimit { requests, per })
    }
}

impl std::fmt::Display for RateLimit {
    /// As written: `200/s`, `600/m`, `10000/h`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.requests)
    }
}

/// `circuit_breaker = { failures = 20, cool_down = "1m" }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    pub failures: u32,
    pub cool_down: Span,
}

/// A connection's circuit breaker: how many requests failed in a row, and whether it
/// is open (no request goes until the cool-down ends, then one probe).
#[derive(Debug, Default, Clone)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    /// Until when (wall clock) it is open, for the pages.
    until: Option<ferry_core::Timestamp>,
    probing: bool,
    last_error: String,
}

/// How requests through the connection sign in.
enum Auth {
    /// A fixed `Authorization` value (basic or bearer).
    Header(HeaderValue),
    ApiKeyHeader(HeaderName, HeaderValue),
    ApiKeyQuery(String, Secret),
    OAuth2(Box<OAuth2>),
}

/// The delivery limits the connection was configured with.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delivery {
    pub max_in_flight: Option<MaxInFlight>,
    pub rate_limit: Option<RateLimit>,
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// A built `http` connection, shared by every subscriber and publisher naming it.
pub struct HttpConnection {
    id: String,
    base: reqwest::Url,
    origin: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    client: reqwest::Client,
    auth: Option<Auth>,
    auth_kind: &'static str,
    tls: TlsFiles,
    delivery: Delivery,
    /// Requests at once through this connection on this node, shared by every route.
    in_flight: Arc<Limiter>,
    /// Spaces requests by the rate limit, when there is one.
    pacer: Option<tokio::sync::Mutex<Pacer>>,
    paused_until: std::sync::Mutex<Option<Instant>>,
    breaker: std::sync::Mutex<Breaker>,
    secrets: Arc<Vec<String>>,
}

pub(super) struct HttpConnectionKind;

impl ConnectionKind for HttpConnectionKind {
    fn build(
        &self,
        id: &str,
        spec: &ConnectorSpec,
        ctx: &Context<'_>,
    ) -> BuildResult<Arc<dyn Connect>> {
        let s: Settings = settings::parse(spec)?;
        let mut problems = Vec::new();
        let mut base = s.base_url.0;
        if base.query().is_some() || base.fragment().is_some() {
            problems.push(spec.problem(
                "base_url",
                "must not carry a query or a fragment; put query parameters in the path of each subscriber or publisher",
            ));
        }
        if !base.path().ends_with('/') {
            // `path` is relative to the base: "v2" + "products" must mean v2/products.
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let headers = header_list(spec, "headers", &s.headers, &mut problems);
        let builder = match s.tls.apply(ctx.folder, client_builder()) {
            Ok(b) => b,
            Err((key, message)) => {
                problems.push(spec.problem(key, message));
                client_builder()
            }
        };
        let client = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                problems
                    .push(spec.problem("tls", format!("cannot set up TLS: {}", error_chain(&e))));
                ctx.client.clone()
            }
        };
        let mut secrets = ctx.secrets.to_vec();
        let (auth, auth_kind) = match s.auth {
            None => (None, "none"),
            Some(a) => match auth(spec, a, &mut secrets) {
                Ok(pair) => (Some(pair.0), pair.1),
                Err(p) => {
                    problems.push(p);
                    (None, "none")
                }
            },
        };
        if let Some(cb) = s.circuit_breaker
            && cb.failures == 0
        {
            problems.push(spec.problem("circuit_breaker.failures", "must be at least 1"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let origin = origin_of(&base).unwrap_or_default();
        let connection = HttpConnection {
            id: id.to_owned(),
            base,
            origin,
            headers,
            timeout: s.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
            client,
            auth,
            auth_kind,
            tls: s.tls,
            delivery: Delivery {
                max_in_flight: s.max_in_flight,
                rate_limit: s.rate_limit,
                circuit_breaker: s.circuit_breaker,
            },
            in_flight: MaxInFlight::limiter(s.max_in_flight),
            pacer: s
                .rate_limit
                .map(|r| tokio::sync::Mutex::new(Pacer::new(r.requests, r.per))),
            paused_until: std::sync::Mutex::new(None),
            breaker: std::sync::Mutex::new(Breaker::default()),
            secrets: Arc::new(secrets),
        };
        Ok(Built::new(Arc::new(connection) as Arc<dyn Connect>))
    }
}

/// Header names and values checked once, when the configuration is read.
pub(super) fn header_list(
    spec: &ConnectorSpec,
    key: &str,
    headers: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(spec.problem(
                &format!("{key}.{name}"),
                format!("'{name}' is not a valid header name"),
            ));
            continue;
        };
        match HeaderValue::from_str(value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                out.push((n, v));
            }
            Err(_) => problems.push(spec.problem(
                &format!("{key}.{name}"),
                "is not a valid header value (control characters or non-ASCII text)",
            )),
        }
    }
    out
}

/// The sign-in of a connection; credentials derived from secrets (the encoded Basic
/// pair) are added to `secrets`, so an API that echoes them does not show them.
fn auth(
    spec: &ConnectorSpec,
    a: AuthSettings,
    secrets: &mut Vec<String>,
) -> Result<(Auth, &'static str), Problem> {
    let sensitive = |key: &str, text: String| {
        HeaderValue::from_str(&text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| spec.problem(key, "holds characters a header cannot carry"))
    };
    Ok(match a {
        AuthSettings::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose());
            let encoded = ferry_core::base64::encode(raw.as_bytes());
            secrets.push(encoded.clone());
            let value = format!("Basic {encoded}");
            (Auth::Header(sensitive("auth.password", value)?), "basic")
        }
        AuthSettings::Bearer { token } => {
            let value = format!("Bearer {}", token.expose());
            (Auth::Header(sensitive("auth.token", value)?), "bearer")
        }
        AuthSettings::ApiKey {
            header,
            query,
            value,
        } => match (header, query) {
            (Some(h), None) => {
                let name = HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    spec.problem("auth.header", format!("'{h}' is not a valid header name"))
                })?;
                let v = sensitive("auth.value", value.expose().to_owned())?;
                (Auth::ApiKeyHeader(name, v), "api_key")
            }
            (None, Some(q)) if !q.is_empty() => (Auth::ApiKeyQuery(q, value), "api_key"),
            _ => {
                return Err(spec.problem(
                    "auth",
                    "an api_key needs exactly one of header = \"X-Api-Key\" or query = \"key\"",
                ));
            }
        },
        AuthSettings::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            params,
            client_auth,
        } => {
            let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
            if !scopes.is_empty() {
                form.push(("scope".into(), scopes.join(" ")));
            }
            if let Some(a) = audience {
                form.push(("audience".into(), a));
            }
            form.extend(params);
            (
                Auth::OAuth2(Box::new(OAuth2 {
                    token_url: token_url.0,
                    client_id,
                    client_secret,
                    client_auth,
                    form,
                    cache: tokio::sync::Mutex::new(None),
                    recent: std::sync::Mutex::new(Vec::new()),
                })),
                "oauth2_client_credentials",
            )
        }
    })
}

/// OAuth2 client credentials: one token per connection and node, fetched once however
/// many requests wait for it, kept until shortly before it expires.
struct OAuth2 {
    token_url: reqwest::Url,
    client_id: String,
    client_secret: Secret,
    client_auth: ClientAuth,
    form: Vec<(String, String)>,
    cache: tokio::sync::Mutex<Option<Token>>,
    /// The last tokens issued, masked in messages like the configured secrets.
    recent: std::sync::Mutex<Vec<String>>,
}

#[derive(Clone)]
struct Token {
    value: String,
    /// When to fetch another (`None`: until the API refuses it).
    renew_at: Option<Instant>,
}

impl OAuth2 {
    /// A token that is not `stale` (the one an API just refused), fetching one if needed.
    async fn token(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        stale: Option<&str>,
        secrets: &[String],
    ) -> Result<String, String> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref()
            && t.renew_at.is_none_or(|at| Instant::now() < at)
            && Some(t.value.as_str()) != stale
        {
            return Ok(t.value.clone());
        }
        *cache = None;
        let token = self.fetch(client, timeout, secrets).await?;
        let value = token.value.clone();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push(value.clone());
            let keep = recent.len().saturating_sub(2);
            recent.drain(..keep);
        }
        *cache = Some(token);
        Ok(value)
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        secrets: &[String],
    ) -> Result<Token, String> {
        let url = &self.token_url;
        let mut form = self.form.clone();
        let mut request = client.post(url.clone()).timeout(timeout);
        match self.client_auth {
            ClientAuth::Basic => {
                // RFC 6749 2.3.1: both parts form-urlencoded before the Basic encoding.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let raw = format!(
                    "{}:{}",
                    enc(&self.client_id),
                    enc(self.client_secret.expose())
                );
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", ferry_core::base64::encode(raw.as_bytes())),
                );
            }
            ClientAuth::Body => {
                form.push(("client_id".into(), self.client_id.clone()));
                form.push((
                    "client_secret".into(),
                    self.client_secret.expose().to_owned(),
                ));
            }
        }
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let fail = |what: String| {
            redact(
                &format!("the OAuth2 token request to {url} {what}"),
                secrets,
            )
        };
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| fail(format!("failed: {}", error_chain(&e))))?;
        let status = response.status();
        let text = read_capped(response, MAX_TOKEN_ANSWER)
            .await
            .map_err(|e| fail(format!("→ {status}: {e}")))?;
        if !status.is_success() {
            return Err(fail(format!("→ {status}: {}", excerpt(&text))));
        }
        let answer: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            fail(format!(
                "→ {status}: the answer is not JSON: {}",
                excerpt(&text)
            ))
        })?;
        let Some(value) = answer.get("access_token").and_then(|v| v.as_str()) else {
            return Err(fail(format!(
                "→ {status}: the answer has no access_token (keys: {})",
                answer
                    .as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            )));
        };
        if let Some(kind) = answer.get("token_type").and_then(|v| v.as_str())
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(fail(format!(
                "→ {status}: token_type is '{kind}'; ferry sends bearer tokens only"
            )));
        }
        let expires_in = answer.get("expires_in").and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
        let renew_at = expires_in.filter(|s| *s > 0.0).map(|secs| {
            let life = Duration::from_secs_f64(secs.min(1e9));
            // Renew a little before the end, so no request carries a token that expires
            // on its way.
            let margin = (life / 10).min(Duration::from_secs(60));
            Instant::now() + life - margin
        });
        Ok(Token {
            value: value.to_owned(),
            renew_at,
        })
    }
}

impl HttpConnection {
    /// `scheme://host:port` of `base_url`: the only origin credentials go to.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The slots for requests at once through this connection.
    pub fn in_flight(&self) -> &Arc<Limiter> {
        &self.in_flight
    }

    /// The values no message may show.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// `path` (placeholders already expanded) resolved against `base_url`. A leading `/`
    /// stays below the base too; a full URL must be on the connection's origin.
    pub fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        let url = if path.contains("://") {
            reqwest::Url::parse(path).map_err(|e| format!("'{path}' is not a URL: {e}"))?
        } else {
            self.base
                .join(path.trim_start_matches('/'))
                .map_err(|e| format!("'{path}' is not a path below {}: {e}", self.base))?
        };
        Ok(url)
    }

    /// Sends `request` (built with [`HttpConnection::client`]) with the connection's
    /// headers and credentials when it goes to the connection's origin (never elsewhere).
    /// With OAuth2, a 401 fetches a new token and sends once more.
    pub async fn send(&self, mut request: reqwest::Request) -> Result<reqwest::Response, String> {
        let own = origin_of(request.url()).as_deref() == Some(self.origin.as_str());
        if !own {
            return self.execute(request).await;
        }
        for (name, value) in &self.headers {
            if !request.headers().contains_key(name) {
                request.headers_mut().insert(name.clone(), value.clone());
            }
        }
        let Some(Auth::OAuth2(oauth)) = &self.auth else {
            self.sign(&mut request);
            return self.execute(request).await;
        };
        let again = request.try_clone();
        let token = oauth
            .token(&self.client, self.timeout, None, &self.secrets)
            .await?;
        bearer(&mut request, &token);
        let response = self.execute(request).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut again) = again else {
            return Ok(response);
        };
        // The API refused the token (revoked, or expired early): one new token, one more try.
        let fresh = oauth
            .token(&self.client, self.timeout, Some(&token), &self.secrets)
            .await?;
        bearer(&mut again, &fresh);
        self.execute(again).await
    }

    /// The headers and credentials [`HttpConnection::send`] adds, as `ferry try` shows
    /// them: values through [`HttpConnection::redact`], credentials as `***`.
    pub fn preview_headers(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes());
                (n.to_string(), self.redact(&value))
            })
            .collect();
        match &self.auth {
            None => {}
            Some(Auth::Header(_)) => out.push(("authorization".into(), "***".into())),
            Some(Auth::ApiKeyHeader(n, _)) => out.push((n.to_string(), "***".into())),
            Some(Auth::ApiKeyQuery(name, _)) => {
                out.push((format!("(query parameter {name})"), "***".into()));
            }
            Some(Auth::OAuth2(_)) => out.push((
                "authorization".into(),
                "Bearer *** (an OAuth2 token, fetched when sent)".into(),
            )),
        }
        out
    }

    fn sign(&self, request: &mut reqwest::Request) {
        match &self.auth {
            None | Some(Auth::OAuth2(_)) => {}
            Some(Auth::Header(v)) => {
                request
                    .headers_mut()
                    .insert(reqwest::header::AUTHORIZATION, v.clone());
            }
            Some(Auth::ApiKeyHeader(n, v)) => {
                request.headers_mut().insert(n.clone(), v.clone());
            }
            Some(Auth::ApiKeyQuery(name, value)) => {
                request
                    .url_mut()
                    .query_pairs_mut()
                    .append_pair(name, value.expose());
            }
        }
    }

    async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, String> {
        let shown = format!("{} {}", request.method(), self.shown(request.url()));
        let timeout = request.timeout().copied().unwrap_or(self.timeout);
        let own = origin_of(request.url()).as_deref() == Some(self.origin.as_str());
        if own {
            self.wait_turn().await;
        }
        let response = self.client.execute(request).await.map_err(|e| {
            let why = if e.is_timeout() {
                format!("timeout after {timeout:?}")
            } else {
                error_chain(&e)
            };
            let message = self.redact(&format!("{shown}: {why}"));
            if own {
                self.record(Err(&message));
            }
            message
        })?;
        if own {
            self.record(Ok(response.status()));
        }
        if own && let Some(wait) = retry_after(&response).or_else(|| quota_spent(&response)) {
            // The API asked for a pause: every request through the connection waits.
            let until = Instant::now() + wait;
            let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            if paused.is_none_or(|p| p < until) {
                tracing::warn!(connection = %self.id, seconds = wait.as_secs(), "the API asked for a pause (Retry-After, or no X-RateLimit-Remaining left); requests through the connection wait");
                *paused = Some(until);
            }
        }
        Ok(response)
    }

    /// Whether a request may be sent now: always with the breaker closed; while it is
    /// open, none until the cool-down ends, then one probe at a time (`half-open`).
    pub fn may_send(&self) -> bool {
        if self.delivery.circuit_breaker.is_none() {
            return true;
        }
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match b.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if b.probing => false,
            Some(_) => {
                b.probing = true;
                true
            }
        }
    }

    /// Whether the breaker is open and not yet due for a probe (a route run then claims
    /// nothing).
    pub fn is_open(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open_until.is_some_and(|u| Instant::now() < u) || b.probing
    }

    /// The breaker's state, if the connection has one.
    pub fn circuit(&self) -> Option<CircuitState> {
        self.delivery.circuit_breaker?;
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        let state = match b.open_until {
            None => "closed",
            Some(u) if Instant::now() < u && !b.probing => "open",
            Some(_) => "half-open",
        };
        Some(CircuitState {
            state,
            until: b.until.filter(|_| state == "open").map(|t| t.to_rfc3339()),
            failures_in_a_row: b.failures,
            last_error: (!b.last_error.is_empty()).then(|| b.last_error.clone()),
        })
    }

    /// Counts a request's outcome: a transport error, a 5xx or a 429 is a failure of the
    /// connection (another 4xx is the entity's problem, not the system's).
    fn record(&self, outcome: Result<reqwest::StatusCode, &str>) {
        let Some(cb) = self.delivery.circuit_breaker else {
            return;
        };
        let error = match outcome {
            Ok(s) if s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                Some(format!("answered {s}"))
            }
            Ok(_) => None,
            Err(e) => Some(e.to_owned()),
        };
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            None => {
                if b.open_until.is_some() {
                    tracing::info!(connection = %self.id, "circuit breaker closed: the probe succeeded");
                }
                *b = Breaker::default();
            }
            Some(e) => {
                b.failures += 1;
                b.last_error = e;
                if b.probing || (b.open_until.is_none() && b.failures >= cb.failures) {
                    let now = ferry_core::Timestamp::now();
                    b.open_until = Some(Instant::now() + cb.cool_down.0);
                    b.until = Some(now.plus_millis(cb.cool_down.0.as_millis() as i64));
                    b.probing = false;
                    tracing::warn!(connection = %self.id, failures = b.failures, cool_down = ?cb.cool_down.0, last_error = %b.last_error, "circuit breaker open: no request goes through the connection until the cool-down ends");
                }
            }
        }
    }

    /// Waits until a request may go: after a `Retry-After` pause, and at most
    /// `rate_limit` requests per period (spaced evenly, so no window of the period holds
    /// more). Turns are taken one at a time, in the order asked.
    async fn wait_turn(&self) {
        let paused = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = paused
            && until > Instant::now()
        {
            tokio::time::sleep_until(until.into()).await;
        }
        let Some(pacer) = &self.pacer else {
            return;
        };
        let mut pacer = pacer.lock().await;
        let turn = pacer.earliest(Instant::now());
        tokio::time::sleep_until(turn.into()).await;
        pacer.sent(turn, Instant::now());
    }

    /// A URL as messages show it: an API key sent in the query is masked.
    fn shown(&self, url: &reqwest::Url) -> String {
        self.redact(url.as_str())
    }

    /// `text` with the configured secrets and the last OAuth2 tokens masked (an API
    /// may echo the credentials it was sent).
    pub fn redact(&self, text: &str) -> String {
        let masked = redact(text, &self.secrets);
        match &self.auth {
            Some(Auth::OAuth2(o)) => {
                let recent = o.recent.lock().unwrap_or_else(|p| p.into_inner());
                redact(&masked, &recent)
            }
            _ => masked,
        }
    }
}

/// How long a 429 or 503 answer asks to wait (`Retry-After` in seconds or as an HTTP
/// date), at most an hour.
pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let status = response.status().as_u16();
    if status != 429 && status != 503 {
        return None;
    }
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    let wait = match value.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
            let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(u64::try_from(ms).ok()?)
        }
    };
    Some(wait.min(Duration::from_secs(3600)))
}

/// How long until the API's quota comes back when it says none is left
/// (`X-RateLimit-Remaining: 0` with `X-RateLimit-Reset` as seconds to wait or as the Unix
/// time of the reset, whichever it is), at most an hour.
fn quota_spent(response: &reqwest::Response) -> Option<Duration> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if header("x-ratelimit-remaining")? > 0.0 {
        return None;
    }
    let reset = header("x-ratelimit-reset")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // A value beyond a billion seconds is a point in time, else a wait.
    let wait = if reset > 1e9 { reset - now } else { reset };
    (wait > 0.0).then(|| Duration::from_secs_f64(wait.min(3600.0)))
}

fn bearer(request: &mut reqwest::Request, token: &str) {
    if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        v.set_sensitive(true);
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, v);
    }
}

#[async_trait]
impl Connect for HttpConnection {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn describe(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("base_url".to_owned(), self.base.to_string()),
            ("auth".to_owned(), self.auth_kind.to_owned()),
            ("timeout".to_owned(), format!("{:?}", self.timeout)),
            (
                "rate_limit".to_owned(),
                self.delivery
                    .rate_limit
                    .map_or("none".to_owned(), |r| r.to_string()),
            ),
            (
                "max_in_flight".to_owned(),
                self.in_flight.level().to_string(),
            ),
        ];
        if let Some(ca) = &self.tls.ca_file {
            out.push(("tls.ca_file".into(), ca.clone()));
        }
        if self.tls.client_cert.is_some() {
            out.push(("tls.client_cert".into(), "***".into()));
        }
        for (name, _) in &self.headers {
            out.push((format!("headers.{name}"), "***".into()));
        }
        out
    }

    async fn check(&self) -> Result<String, String> {
        let started = Instant::now();
        let host = self.base.host_str().unwrap_or_default().to_owned();
        let port = self.base.port_or_known_default().unwrap_or(443);
        if tokio::net::lookup_host((host.as_str(), port))
            .await
            .is_err()
        {
            return Err(format!("DNS: cannot resolve {host}"));
        }
        let mut steps = Vec::new();
        if let Some(Auth::OAuth2(o)) = &self.auth {
            o.token(&self.client, self.timeout, None, &self.secrets)
                .await?;
            steps.push("OAuth2 token issued");
        }
        let head = self
            .client
            .head(self.base.clone())
            .timeout(self.timeout)
            .build();
        let head = head.map_err(|e| format!("HEAD {}: {e}", self.base))?;
        let mut response = self.send(head).await?;
        if response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED {
            let get = self
                .client
                .get(self.base.clone())
                .timeout(self.timeout)
                .build()
                .map_err(|e| format!("GET {}: {e}", self.base))?;
            response = self.send(get).await?;
        }
        let status = response.status();
        if self.base.scheme() == "https" {
            steps.insert(0, "TLS verified");
        }
        let summary = format!(
            "{} → {status}{}{} ({} ms)",
            self.base,
            if steps.is_empty() { "" } else { "; " },
            steps.join(", "),
            started.elapsed().as_millis()
        );
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(format!("{summary}: the credentials were refused"));
        }
        if status.is_server_error() {
            return Err(format!("{summary}: the server failed"));
        }
        Ok(summary)
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
