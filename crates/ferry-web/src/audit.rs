//! The audit trail, as `GET /api/v1/audit` and as the Audit page: every skip, retry,
//! route run, sign-in and user or token change, newest first — who, when, from where,
//! what, on which tasks (the identifiers or the filter given), how many changed, and
//! why. Append-only: the store refuses to change or delete an entry.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::pages::{Me, page_error, render};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use ferry_core::filter::{DEFAULT_PER_PAGE, MAX_PER_PAGE, MAX_VALUE_CHARS};
use ferry_core::{Page, TaskId, Timestamp};
use ferry_store::AuditQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// What the trail records.
pub const ACTIONS: &[&str] = &[
    "skip",
    "retry",
    "run",
    "run.incoming",
    "login",
    "login.failed",
    "logout",
    "user.add",
    "user.change",
    "token.create",
    "token.revoke",
    "bulk.cancel",
    "bulk.resume",
    "since.reset",
    "connection.test",
];

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// A user's name, or `token:NAME` for an API token.
    pub actor: String,
    /// skip, retry, run, run.incoming, login, login.failed, logout, user.add,
    /// user.change, token.create, token.revoke, bulk.cancel, bulk.resume, since.reset or
    /// connection.test
    pub action: String,
    pub reason: Option<String>,
    /// The client's address.
    pub origin: Option<String>,
    /// `{"identifiers": [...]}` or `{"filter": {...}}` for skip and retry, as given;
    /// `{"route": …}`, `{"incoming": …}` (for since.reset with `reset` and the
    /// `previous` mark removed), `{"user": …}` or `{"token": …}` otherwise.
    #[schema(value_type = Object)]
    pub target: Value,
    pub matched: u64,
    pub changed: u64,
    pub ineligible: u64,
    pub not_found: u64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AuditList {
    pub items: Vec<AuditEntry>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

#[derive(IntoParams, Deserialize)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "read by the OpenAPI derive only")]
pub struct AuditParams {
    /// Who acted (exact).
    actor: Option<String>,
    /// One of the recorded actions: skip, retry, run, run.incoming, login,
    /// login.failed, logout, user.add, user.change, token.create, token.revoke,
    /// bulk.cancel, bulk.resume, since.reset, connection.test.
    action: Option<String>,
    /// Only actions that changed this task.
    task: Option<String>,
    /// Inclusive, RFC 3339.
    from: Option<String>,
    to: Option<String>,
    page: Option<u32>,
    /// Default 50, at most 500.
    per_page: Option<u32>,
}

fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!("{parameter}: {}", message.into()),
    )
    .with_details(serde_json::json!({ "parameter": parameter }))
}

fn parse(raw: Option<&str>) -> ApiResult<AuditQuery> {
    let mut q = AuditQuery {
        page: Page {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        },
        ..AuditQuery::default()
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if v.contains('\0') {
            return Err(bad(&k, ferry_core::filter::NUL_REFUSED));
        }
        let v = v.trim().to_owned();
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(bad(
                &k,
                format!("the value is longer than {MAX_VALUE_CHARS} characters"),
            ));
        }
        if v.is_empty() {
            continue;
        }
        let time = |v: &str| Timestamp::parse_rfc3339(v).map_err(|e| bad(&k, e.to_string()));
        let number = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| bad(&k, format!("'{v}' is not a whole number")))
        };
        match k.as_ref() {
            "actor" => q.actor = Some(v),
            "action" if ACTIONS.contains(&v.as_str()) => q.action = Some(v),
            "action" => {
                return Err(bad(
                    "action",
                    format!(
                        "'{v}' is not a recorded action; use one of {}",
                        ACTIONS.join(", ")
                    ),
                ));
            }
            "task" => q.task = Some(TaskId::parse(&v).map_err(|e| bad("task", e.to_string()))?),
            "from" => q.from = Some(time(&v)?),
            "to" => q.to = Some(time(&v)?),
            "page" => match number(&v)? {
                0 => return Err(bad("page", "pages are numbered from 1")),
                p => q.page.page = p,
            },
            "per_page" => match number(&v)? {
                n @ 1..=MAX_PER_PAGE => q.page.per_page = n,
                n => {
                    return Err(bad(
                        "per_page",
                        format!("{n} is out of range; use 1 to {MAX_PER_PAGE}"),
                    ));
                }
            },
            other => {
                return Err(bad(
                    other,
                    "unknown parameter; use actor, action, task, from, to, page, per_page",
                ));
            }
        }
    }
    Ok(q)
}

impl From<ferry_store::ActionRecord> for AuditEntry {
    fn from(a: ferry_store::ActionRecord) -> Self {
        AuditEntry {
            id: a.id,
            at: a.at.to_rfc3339(),
            actor: a.actor,
            action: a.action,
            reason: a.reason,
            origin: a.origin,
            target: a.target,
            matched: a.outcome.matched,
            changed: a.outcome.changed,
            ineligible: a.outcome.ineligible,
            not_found: a.outcome.not_found,
        }
    }
}

/// The audit trail, newest first, filtered by actor, action, task and time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<AuditList>> {
    let q = parse(raw.as_deref())?;
    let (items, total) = state.store().list_actions(&q).await?;
    Ok(Json(AuditList {
        items: items.into_iter().map(AuditEntry::from).collect(),
        total,
        page: q.page.page,
        per_page: q.page.per_page,
    }))
}

struct AuditRow {
    entry: AuditEntry,
    /// The target in a line, as a person reads it.
    what: String,
    task_link: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: &'static str,
    me: Me,
    rows: Vec<AuditRow>,
    total: u64,
    actor: String,
    action: String,
    task: String,
    from: String,
    to: String,
    actions: &'static [&'static str],
    prev_href: Option<String>,
    next_href: Option<String>,
    page: u32,
    pages: u64,
}

fn describe(target: &Value) -> (String, Option<String>) {
    if let Some(ids) = target.get("identifiers").and_then(Value::as_array) {
        let first = ids.first().and_then(Value::as_str).map(str::to_owned);
        let what = match ids.len() {
            1 => format!("task {}", first.clone().unwrap_or_default()),
            n => format!("{n} tasks by identifier"),
        };
        return (what, if ids.len() == 1 { first } else { None });
    }
    if let Some(filter) = target.get("filter") {
        return (format!("tasks matching {filter}"), None);
    }
    let parts: Vec<String> = target
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k} {}", v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    (parts.join(", "), None)
}

/// The Audit page: the same trail with a filter form.
pub async fn page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let me = Me::of(&caller);
    let q = match parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return page_error(me, StatusCode::BAD_REQUEST, "Bad audit filter", e.message),
    };
    let (items, total) = match state.store().list_actions(&q).await {
        Ok(found) => found,
        Err(e) => return axum::response::IntoResponse::into_response(ApiError::from(e)),
    };
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let href = |page: u32| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(&pairs);
        s.append_pair("page", &page.to_string());
        format!("/audit?{}", s.finish())
    };
    let per = u64::from(q.page.per_page);
    let pages = total.div_ceil(per).max(1);
    let t = AuditPage {
        nav: "audit",
        me,
        rows: items
            .into_iter()
            .map(|a| {
                let (what, task_link) = describe(&a.target);
                AuditRow {
                    entry: a.into(),
                    what,
                    task_link,
                }
            })
            .collect(),
        total,
        actor: q.actor.clone().unwrap_or_default(),
        action: q.action.clone().unwrap_or_default(),
        task: q.task.as_ref().map(ToString::to_string).unwrap_or_default(),
        from: q.from.map(|t| t.to_rfc3339()).unwrap_or_default(),
        to: q.to.map(|t| t.to_rfc3339()).unwrap_or_default(),
        actions: ACTIONS,
        prev_href: (q.page.page > 1).then(|| href(q.page.page - 1)),
        next_href: (u64::from(q.page.page) < pages).then(|| href(q.page.page + 1)),
        page: q.page.page,
        pages,
    };
    render(&t)
}
