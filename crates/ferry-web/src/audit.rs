//! `GET /api/v1/audit`: every operator action, newest first — who, when, what, on which
//! tasks (the identifiers or the filter given), how many changed, and why. Append-only.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use ferry_core::filter::{DEFAULT_PER_PAGE, MAX_PER_PAGE, MAX_VALUE_CHARS};
use ferry_core::{Page, TaskId, Timestamp};
use ferry_store::AuditQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    /// skip or retry
    pub action: String,
    pub reason: Option<String>,
    /// `{"identifiers": [...]}` or `{"filter": {...}}`, as given.
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
    /// skip or retry
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
            "action" if v == "skip" || v == "retry" => q.action = Some(v),
            "action" => {
                return Err(bad(
                    "action",
                    format!("'{v}' is not an action; use skip or retry"),
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

/// Operator actions, newest first, filtered by actor, action, task and time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "tasks", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<AuditList>> {
    let q = parse(raw.as_deref())?;
    let (items, total) = state.store().list_actions(&q).await?;
    Ok(Json(AuditList {
        items: items
            .into_iter()
            .map(|a| AuditEntry {
                id: a.id,
                at: a.at.to_rfc3339(),
                actor: a.actor,
                action: a.action,
                reason: a.reason,
                target: a.target,
                matched: a.outcome.matched,
                changed: a.outcome.changed,
                ineligible: a.outcome.ineligible,
                not_found: a.outcome.not_found,
            })
            .collect(),
        total,
        page: q.page.page,
        per_page: q.page.per_page,
    }))
}
