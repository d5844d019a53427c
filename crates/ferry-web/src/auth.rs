//! Who is calling, and may they: bearer tokens and session cookies, role checks, CSRF.
//!
//! [`identify`] runs on every request and leaves a [`Caller`] in its extensions.
//! [`guard`] sits on each protected group of routes: reads need the viewer role, every
//! other method the operator role (the admin routes ask for admin). A request signed in
//! by cookie that changes anything must also carry the page's CSRF token in
//! `X-CSRF-Token`; bearer-token requests need none (browsers never add them on their own).

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::{Permission, Principal, PrincipalKind, Timestamp};
use ferry_store::credentials;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "ferry_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The caller of one request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub principal: Option<Principal>,
    /// Set when the caller came by session cookie: the page's CSRF token and the
    /// session's digest.
    pub session: Option<SessionInfo>,
    /// A credential was offered and is unknown, revoked or expired.
    pub rejected: Option<&'static str>,
    /// The client's address.
    pub origin: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub csrf: String,
    pub digest: String,
}

impl Caller {
    /// The name the audit trail records.
    pub fn actor(&self) -> String {
        self.principal
            .as_ref()
            .map(Principal::actor)
            .unwrap_or_else(|| "anonymous".to_owned())
    }

    /// Who makes an account change, for the audit trail.
    pub fn changed_by(&self) -> ferry_store::accounts::ChangedBy {
        ferry_store::accounts::ChangedBy {
            actor: self.actor(),
            origin: self.origin.clone(),
        }
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| p.role.allows(permission))
    }

    /// 401 without a valid credential, 403 when the role falls short.
    pub fn require(&self, permission: Permission) -> Result<&Principal, ApiError> {
        match &self.principal {
            None => Err(unauthenticated(self.rejected)),
            Some(p) if p.role.allows(permission) => Ok(p),
            Some(p) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} has the {} role; {}",
                    p.actor(),
                    p.role,
                    permission.describe()
                ),
            )),
        }
    }
}

fn unauthenticated(rejected: Option<&'static str>) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        rejected.unwrap_or(
            "sign in, or send an API token as 'Authorization: Bearer <token>' (create one with 'ferry tokens create')",
        ),
    )
}

/// Reads the credentials of a request (bearer token first, then session cookie) and
/// leaves the [`Caller`] for the handlers.
pub async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let origin = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let caller = match resolve(&state, request.headers(), origin).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    origin: Option<String>,
) -> Result<Caller, ApiError> {
    let mut caller = Caller {
        origin,
        ..Caller::default()
    };
    let store = state.store();
    if let Some(token) = bearer(headers) {
        if !token.starts_with(credentials::TOKEN_PREFIX) {
            // Perhaps a webhook secret: the webhook handler decides.
            caller.rejected = Some("the bearer token is not a ferry API token");
            return Ok(caller);
        }
        match store.token_by_digest(&credentials::digest(token)).await {
            Ok(Some(t)) => {
                caller.principal = Some(Principal {
                    kind: PrincipalKind::Token,
                    name: t.name,
                    role: t.role,
                });
            }
            Ok(None) => {
                caller.rejected = Some(
                    "the API token is unknown or revoked; create a new one with 'ferry tokens create'",
                )
            }
            Err(e) => return Err(ApiError::internal(&e)),
        }
        return Ok(caller);
    }
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        let digest = credentials::digest(id);
        match store.session(&digest, Timestamp::now()).await {
            Ok(Some(s)) => {
                caller.principal = Some(Principal {
                    kind: PrincipalKind::User,
                    name: s.user,
                    role: s.role,
                });
                caller.session = Some(SessionInfo {
                    csrf: s.csrf,
                    digest,
                });
            }
            Ok(None) => caller.rejected = Some("the session has expired; sign in again"),
            Err(e) => return Err(ApiError::internal(&e)),
        }
    }
    Ok(caller)
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite always, `Secure` when configured.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
    same_site: &str,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite={same_site}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What a route group needs of its callers.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Reads for GET and HEAD, operate for every other method.
    ByMethod,
    Administer,
}

/// Refuses callers that may not use the routes behind it; pages send the unsigned to
/// the sign-in page instead of a 401.
pub async fn guard(need: Need, request: Request, next: Next) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    let permission = match need {
        Need::Administer => Permission::Administer,
        Need::ByMethod if safe => Permission::Read,
        Need::ByMethod => Permission::Operate,
    };
    let is_page = !request.uri().path().starts_with("/api/");
    if let Err(e) = caller.require(permission) {
        if is_page && safe && e.status == StatusCode::UNAUTHORIZED {
            let next_path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let target = format!(
                "/login?next={}",
                form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        return e.into_response();
    }
    if !safe
        && let Some(session) = &caller.session
        && !csrf_ok(request.headers(), &session.csrf)
    {
        return csrf_refused().into_response();
    }
    next.run(request).await
}

/// Whether the request carries the page's CSRF token.
pub fn csrf_ok(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| credentials::constant_time_eq(sent, expected))
}

pub fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "the request lacks this page's CSRF token (X-CSRF-Token); reload the page and try again",
    )
}

/// Sign-in attempts per client address and per user name, in a sliding window. An
/// attempt is reserved before its password is checked and forgotten only when it
/// succeeds, so however many arrive at once, at most `limit` passwords are checked per
/// address and per name in any window; past the limit, sign-ins are refused until the
/// oldest attempt leaves the window. Unknown names are counted like known ones, so the
/// limit reveals nothing.
pub struct LoginThrottle {
    attempts: Mutex<HashMap<String, Vec<Instant>>>,
    limit: usize,
    window: Duration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(5, Duration::from_secs(300))
    }
}

impl LoginThrottle {
    pub fn new(limit: usize, window: Duration) -> LoginThrottle {
        LoginThrottle {
            attempts: Mutex::new(HashMap::new()),
            limit,
            window,
        }
    }

    fn keys(origin: Option<&str>, user: &str) -> [String; 2] {
        [
            format!("addr:{}", origin.unwrap_or("unknown")),
            format!("user:{}", user.to_lowercase()),
        ]
    }

    /// Counts one attempt for the address and the name, or answers how long the caller
    /// must wait when either has had `limit` attempts in the window. Check and count
    /// are one step under one lock: concurrent attempts cannot all pass the check.
    pub fn reserve(&self, origin: Option<&str>, user: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // Bounded memory under a flood of made-up names: forget the stale entries.
            map.retain(|_, list| {
                list.last()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let keys = Self::keys(origin, user);
        let wait = keys
            .iter()
            .filter_map(|k| {
                let list = map.get_mut(k)?;
                list.retain(|t| now.duration_since(*t) < self.window);
                (list.len() >= self.limit).then(|| self.window - now.duration_since(list[0]))
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        for k in keys {
            map.entry(k).or_default().push(now);
        }
        Ok(())
    }

    /// A reserved attempt signed in: the name's attempts are forgotten, and this one
    /// no longer counts against the address.
    pub fn succeeded(&self, origin: Option<&str>, user: &str) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let [addr, name] = Self::keys(origin, user);
        map.remove(&name);
        if let Some(list) = map.get_mut(&addr) {
            list.pop();
        }
    }
}

/// How many password checks run at once on a node. Each Argon2 check takes about
/// 19 MiB for its duration; without a bound, 200 sign-ins at once took 3.9 GB.
pub const PASSWORD_CHECKS_AT_ONCE: usize = 2;

/// How many sign-ins a node takes in at once (waiting for a password check or
/// checking); one more is answered 429 at once.
pub const SIGN_INS_AT_ONCE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_refuses_after_the_limit_per_address_and_per_name() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.reserve(Some("1.1.1.1"), "alice").is_ok());
        }
        assert!(t.reserve(Some("1.1.1.1"), "alice").is_err());
        assert!(t.reserve(Some("1.1.1.1"), "bob").is_err(), "same address");
        assert!(t.reserve(Some("2.2.2.2"), "Alice").is_err(), "same name");
        assert!(t.reserve(Some("2.2.2.2"), "bob").is_ok());
    }

    #[test]
    fn a_successful_sign_in_gives_back_its_attempt_and_forgets_the_name() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        t.reserve(Some("1.1.1.1"), "alice").unwrap();
        t.reserve(Some("1.1.1.1"), "alice").unwrap();
        t.succeeded(Some("1.1.1.1"), "alice");
        assert!(
            t.reserve(Some("1.1.1.1"), "alice").is_ok(),
            "one address slot back"
        );
        assert!(
            t.reserve(Some("1.1.1.1"), "carol").is_err(),
            "the failure still counts"
        );
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferry_session=xyz"),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  ferry_abc "),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(bearer(&h), Some("ferry_abc"));
    }
}
