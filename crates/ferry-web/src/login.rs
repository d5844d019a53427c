//! Signing in and out of the web pages.
//!
//! The sign-in form is protected against login CSRF by a double-submit token (a
//! short-lived cookie restricted to `/login` and the same value in the form). Wrong
//! names, wrong passwords and disabled users get the same answer after the same work,
//! so the page reveals nothing about who exists; failures are throttled per address
//! and per name. A session is a random id in an HttpOnly, SameSite cookie; the store
//! keeps its digest, with the CSRF token the pages send back on every change.

use crate::AppState;
use crate::auth::{self, Caller, SESSION_COOKIE};
use crate::pages::{Me, render};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use ferry_core::Timestamp;
use ferry_store::access::event;
use ferry_store::{NewSession, credentials};
use serde_json::json;
use std::time::Duration;

const LOGIN_COOKIE: &str = "ferry_login";
const LOGIN_FORM_LIFETIME: Duration = Duration::from_secs(3600);
const WRONG: &str = "The user name or password is wrong, or the user is disabled.";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(form).post(sign_in))
        .route("/logout", post(sign_out))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: &'static str,
    me: Me,
    csrf: String,
    next: String,
    user: String,
    error: Option<String>,
}

/// Only paths of this site: never `//host` or an absolute URL.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and newlines and read `\` as `/`: `/\t/host` is `//host`.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.len() <= 2_000 =>
        {
            n.to_owned()
        }
        _ => "/tasks".to_owned(),
    }
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: String,
    user: String,
    error: Option<String>,
) -> Response {
    let csrf = credentials::random_hex(16);
    let page = LoginPage {
        nav: "",
        me: Me::anonymous(),
        csrf: csrf.clone(),
        next,
        user,
        error,
    };
    let cookie = auth::set_cookie(
        LOGIN_COOKIE,
        &csrf,
        "/login",
        LOGIN_FORM_LIFETIME,
        state.config().server.secure_cookies,
        "Strict",
    );
    (
        status,
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        render(&page),
    )
        .into_response()
}

/// 429 with the sign-in form again and `Retry-After`.
fn throttled(
    state: &AppState,
    next: String,
    user: String,
    seconds: u64,
    message: String,
) -> Response {
    let mut response = login_page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        next,
        user,
        Some(message),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let next = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    let next = safe_next(next.as_deref());
    if caller.session.is_some() {
        return Redirect::to(&next).into_response();
    }
    login_page(&state, StatusCode::OK, next, String::new(), None)
}

async fn sign_in(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let next = safe_next(Some(field("next")));
    let user: String = field("user").trim().chars().take(64).collect();
    let password = field("password").to_owned();
    let origin = caller.origin.as_deref();

    let form_token = field("csrf");
    let cookie_token = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if form_token.is_empty() || !credentials::constant_time_eq(form_token, cookie_token) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            user,
            Some(
                "The sign-in form expired or did not come from this site. Please try again.".into(),
            ),
        );
    }
    // A place among the few sign-ins admitted at once, then one of the address's and
    // the name's few attempts in the window, both taken before any work is done; the
    // password check itself waits for one of fewer slots still.
    let Ok(_admitted) = state.sign_ins.clone().try_acquire_owned() else {
        return throttled(
            &state,
            next,
            user,
            1,
            "Too many sign-ins at once. Try again in a second.".into(),
        );
    };
    if let Err(wait) = state.throttle.reserve(origin, &user) {
        let seconds = wait.as_secs().max(1);
        return throttled(
            &state,
            next,
            user,
            seconds,
            format!("Too many failed sign-ins. Try again in {seconds} seconds."),
        );
    }

    let store = state.store();
    // A name no user can have (a NUL or other control character) is looked up by
    // nobody: PostgreSQL refuses NUL in text, and the answer must not differ by store.
    let found = if user.chars().any(char::is_control) {
        None
    } else {
        match store.user_credentials(&user).await {
            Ok(found) => found,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        }
    };
    let enabled = found.as_ref().is_some_and(|(u, _)| !u.disabled);
    let found_name = found.as_ref().map(|(u, _)| u.name.clone());
    let stored = found
        .map(|(_, hash)| hash)
        .unwrap_or_else(|| credentials::decoy_hash().to_owned());
    let matches = match state.password_checks.acquire().await {
        Ok(_checking) => {
            tokio::task::spawn_blocking(move || credentials::verify_password(&password, &stored))
                .await
                .unwrap_or(false)
        }
        Err(_) => false,
    };

    if !(matches && enabled) {
        let _ = store
            .record_event(&event(
                &user.replace(char::is_control, "\u{fffd}"),
                "login.failed",
                caller.origin.clone(),
                json!({"user": user}),
            ))
            .await;
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            user,
            Some(WRONG.into()),
        );
    }
    state.throttle.succeeded(origin, &user);
    // The name as stored, whatever case it was typed in.
    let user = found_name.unwrap_or(user);

    let id = credentials::random_hex(32);
    let lifetime = state.config().server.session_lifetime();
    let now = Timestamp::now();
    let session = NewSession {
        digest: credentials::digest(&id),
        user: user.clone(),
        csrf: credentials::random_hex(32),
        created_at: now,
        expires_at: Timestamp::from_millis(
            now.millis()
                .saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        ),
    };
    let recorded = async {
        store.add_session(&session).await?;
        store
            .record_event(&event(
                &user,
                "login",
                caller.origin.clone(),
                json!({"user": user}),
            ))
            .await
    };
    if let Err(e) = recorded.await {
        return crate::error::ApiError::internal(&e).into_response();
    }
    let secure = state.config().server.secure_cookies;
    let cookies = [
        auth::set_cookie(SESSION_COOKIE, &id, "/", lifetime, secure, "Lax"),
        auth::set_cookie(LOGIN_COOKIE, "", "/login", Duration::ZERO, secure, "Strict"),
    ];
    let mut response = Redirect::to(&next).into_response();
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

async fn sign_out(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    if let Some(session) = &caller.session {
        let sent = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !credentials::constant_time_eq(&sent, &session.csrf) {
            return auth::csrf_refused().into_response();
        }
        let store = state.store();
        let ended = async {
            store.end_session(&session.digest).await?;
            store
                .record_event(&event(
                    &caller.actor(),
                    "logout",
                    caller.origin.clone(),
                    json!({"user": caller.actor()}),
                ))
                .await
        };
        if let Err(e) = ended.await {
            return crate::error::ApiError::internal(&e).into_response();
        }
    }
    let clear = auth::set_cookie(
        SESSION_COOKIE,
        "",
        "/",
        Duration::ZERO,
        state.config().server.secure_cookies,
        "Lax",
    );
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, clear);
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_sign_in_only_paths_of_this_site_are_followed() {
        assert_eq!(
            safe_next(Some("/tasks?status=failed")),
            "/tasks?status=failed"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/\t/evil",
            "tasks",
        ] {
            assert_eq!(safe_next(Some(bad)), "/tasks", "{bad}");
        }
        assert_eq!(safe_next(None), "/tasks");
    }
}
