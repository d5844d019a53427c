//! `/api/v1/tasks`: list, counts, detail, messages, and skip/retry one or many.

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferry_core::filter::{Accept, CountMode, TaskQuery};
use ferry_core::task::{Phase, Task, TaskSummary};
use ferry_core::{Action, TaskFilter, TaskId, Timestamp};
use ferry_store::{
    ActionError, ActionRequest, BulkOutcome, CountedTasks, StatusCounts, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Most identifiers one bulk request may list; larger sets go by filter.
pub const MAX_BULK_IDENTIFIERS: usize = 10_000;
pub const MAX_REASON_CHARS: usize = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks", get(list))
        .route("/api/v1/tasks/counts", get(counts))
        .route("/api/v1/tasks/skip", post(bulk_skip))
        .route("/api/v1/tasks/retry", post(bulk_retry))
        .route("/api/v1/tasks/{identifier}", get(detail))
        .route("/api/v1/tasks/{identifier}/messages", get(messages))
        .route("/api/v1/tasks/{identifier}/history", get(history))
        .route("/api/v1/tasks/{identifier}/skip", post(skip_one))
        .route("/api/v1/tasks/{identifier}/retry", post(retry_one))
}

// ---------------------------------------------------------------- shapes

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct TaskSummaryDto {
    /// ULID, unique and time-sortable.
    pub identifier: String,
    pub route: String,
    pub entity_schema: String,
    pub entity_identifier: String,
    #[schema(example = "failed")]
    pub status: String,
    /// Processing attempts since creation or the last manual retry.
    pub attempts: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

impl From<&TaskSummary> for TaskSummaryDto {
    fn from(t: &TaskSummary) -> Self {
        TaskSummaryDto {
            identifier: t.id.to_string(),
            route: t.route.clone(),
            entity_schema: t.entity_schema.clone(),
            entity_identifier: t.entity_identifier.clone(),
            status: t.status.to_string(),
            attempts: t.attempts,
            created_at: t.created_at.to_rfc3339(),
            updated_at: t.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct TaskDetailDto {
    #[serde(flatten)]
    pub summary: TaskSummaryDto,
    /// The entity as stored.
    #[schema(value_type = Object)]
    pub entity_data: Value,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    /// What the target answered, as the publisher's `response` expression picked it
    /// (e.g. the id the ERP gave the product); null until an attempt kept one.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
}

impl From<&Task> for TaskDetailDto {
    fn from(t: &Task) -> Self {
        TaskDetailDto {
            summary: (&t.summary).into(),
            entity_data: t.entity_data.clone(),
            last_error: t.last_error.clone(),
            next_attempt_at: t.next_attempt_at.map(Timestamp::to_rfc3339),
            response: t.response.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TaskList {
    pub items: Vec<TaskSummaryDto>,
    /// Every matching task; with `count=capped` and more than 10,000 matches, 10,000
    /// and `total_exact` false (at least that many).
    pub total: u64,
    /// Whether `total` counts every match.
    #[serde(default = "exact")]
    pub total_exact: bool,
    pub page: u32,
    pub per_page: u32,
}

fn exact() -> bool {
    true
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct Counts {
    pub total: u64,
    /// Every status, with 0 where no task matches.
    pub by_status: BTreeMap<String, u64>,
    /// Whether every match was counted. Only `count=estimate` can make it false: more
    /// than 10,000 tasks match and the figures are the store's estimate.
    #[serde(default = "exact")]
    pub exact: bool,
}

impl From<&StatusCounts> for Counts {
    fn from(c: &StatusCounts) -> Self {
        Counts {
            total: c.total(),
            by_status: c.0.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            exact: true,
        }
    }
}

impl From<&CountedTasks> for Counts {
    fn from(c: &CountedTasks) -> Self {
        Counts {
            exact: c.exact,
            ..Counts::from(&c.counts)
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct MessageDto {
    pub at: String,
    #[schema(example = "info")]
    pub level: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct MessageList {
    pub items: Vec<MessageDto>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AttemptDto {
    pub attempt: u32,
    pub started_at: String,
    pub ended_at: String,
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ActionDto {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub reason: Option<String>,
    /// The identifiers or the filter the action was given.
    #[schema(value_type = Object)]
    pub target: Value,
}

/// Attempts and operator actions of one task.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct History {
    pub attempts: Vec<AttemptDto>,
    pub actions: Vec<ActionDto>,
}

#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Why; kept in the audit trail and the task's log.
    pub reason: Option<String>,
}

/// Exactly one of `identifiers` or `filter`.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    pub identifiers: Option<Vec<String>>,
    /// The list parameters as an object; `route` and `status` may be arrays.
    /// `{}` means every task.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Map<String, Value>>,
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, PartialEq, Eq)]
pub struct BulkResult {
    pub matched: u64,
    pub changed: u64,
    pub ineligible: u64,
    pub not_found: u64,
}

impl From<BulkOutcome> for BulkResult {
    fn from(o: BulkOutcome) -> Self {
        BulkResult {
            matched: o.matched,
            changed: o.changed,
            ineligible: o.ineligible,
            not_found: o.not_found,
        }
    }
}

/// The filter of the list and the counts (documentation; parsing is `TaskQuery::parse`).
#[derive(IntoParams, Deserialize)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "read by the OpenAPI derive only")]
pub struct FilterParams {
    /// Route id; repeat for several.
    route: Option<Vec<String>>,
    /// new, processing, finished, failed, skipped, retry; repeatable.
    status: Option<Vec<String>>,
    /// Inclusive, RFC 3339.
    created_from: Option<String>,
    created_to: Option<String>,
    updated_from: Option<String>,
    updated_to: Option<String>,
    identifier: Option<String>,
    /// contains (default) or equals.
    identifier_match: Option<String>,
    entity_schema: Option<String>,
    entity_schema_match: Option<String>,
    entity_identifier: Option<String>,
    entity_identifier_match: Option<String>,
}

/// The list's own query parameters, besides the filter.
#[derive(IntoParams, Deserialize)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "read by the OpenAPI derive only")]
pub struct ListParams {
    /// 1-based.
    page: Option<u32>,
    /// Default 50, at most 500.
    per_page: Option<u32>,
    /// created_at (default) or updated_at.
    sort: Option<String>,
    /// desc (default) or asc.
    order: Option<String>,
    /// exact (default), count every match; capped, count up to 10,000 and no further
    /// (quick however many tasks match; `total_exact` says whether the count stopped).
    count: Option<String>,
}

/// The counts' own query parameter, besides the filter (they take no paging or sorting
/// parameter).
#[derive(IntoParams, Deserialize)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "read by the OpenAPI derive only")]
pub struct CountsParams {
    /// exact (default) or estimate: exact up to 10,000 matches, and above that the
    /// store's estimate where it keeps one (PostgreSQL; `exact` is then false).
    count: Option<String>,
}

// ---------------------------------------------------------------- helpers

pub fn parse_query(raw: Option<&str>, accept: Accept) -> ApiResult<TaskQuery> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    Ok(TaskQuery::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        accept,
    )?)
}

fn task_id(raw: &str) -> ApiResult<TaskId> {
    TaskId::parse(raw).map_err(|_| unknown_task(raw))
}

fn unknown_task(raw: &str) -> ApiError {
    let shown: String = raw.chars().take(64).collect();
    ApiError::not_found(
        "task_not_found",
        format!("no task has the identifier '{shown}'"),
    )
}

pub(crate) fn reason(r: Option<String>) -> ApiResult<Option<String>> {
    match r {
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(ApiError::bad_request(
            "invalid_reason",
            format!("the reason is longer than {MAX_REASON_CHARS} characters"),
        )),
        Some(r) if r.contains('\0') => Err(ApiError::bad_request(
            "invalid_reason",
            "the reason holds a NUL character (\\u0000); write it without one",
        )),
        Some(r) if r.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A bulk action's JSON filter object, validated exactly like the list's parameters.
pub(crate) fn parse_filter(filter: &serde_json::Map<String, Value>) -> ApiResult<TaskFilter> {
    let pairs = filter_pairs(filter)?;
    let q = TaskQuery::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        Accept::FiltersOnly,
    )
    .map_err(|mut e| {
        e.parameter = format!("filter.{}", e.parameter);
        e
    })?;
    Ok(q.filter)
}

/// The JSON filter object as query pairs, so it is validated exactly like the list's.
pub fn filter_pairs(filter: &serde_json::Map<String, Value>) -> ApiResult<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (k, v) in filter {
        let bad = || {
            ApiError::bad_request(
                "invalid_parameter",
                format!("filter.{k}: use a string, or for route and status an array of strings"),
            )
            .with_details(serde_json::json!({ "parameter": k }))
        };
        match v {
            Value::Null => {}
            Value::String(s) => pairs.push((k.clone(), s.clone())),
            Value::Array(items) if k == "route" || k == "status" => {
                for item in items {
                    match item {
                        Value::String(s) => pairs.push((k.clone(), s.clone())),
                        _ => return Err(bad()),
                    }
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(pairs)
}

fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::NotFound(id) => unknown_task(id.as_str()),
        ActionError::NotEligible { id, reason } => {
            ApiError::conflict("task_not_eligible", format!("task {id}: {reason}"))
                .with_details(serde_json::json!({ "status": reason.status.as_str() }))
        }
        ActionError::Store(e) => e.into(),
    }
}

// ---------------------------------------------------------------- handlers

/// List tasks, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(FilterParams, ListParams),
    responses((status = 200, body = TaskList), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<TaskList>> {
    let q = parse_query(raw.as_deref(), Accept::All)?;
    let page = state.store().list_tasks(&q).await?;
    Ok(Json(TaskList {
        items: page.items.iter().map(Into::into).collect(),
        total: page.total,
        total_exact: page.total_exact,
        page: q.page.page,
        per_page: q.page.per_page,
    }))
}

/// Counts by status for the same filters as the list.
#[utoipa::path(get, path = "/api/v1/tasks/counts", tag = "tasks", params(FilterParams, CountsParams),
    responses((status = 200, body = Counts), (status = 400, body = crate::error::ErrorBody)))]
pub async fn counts(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Counts>> {
    let q = parse_query(raw.as_deref(), Accept::Counts)?;
    let counted = status_counts(&**state.store(), &q.filter, q.count).await?;
    Ok(Json((&counted).into()))
}

/// The status counts of `filter`: the store's estimate where `count` allows one
/// ([`CountMode::Estimate`]), every match counted otherwise.
pub async fn status_counts(
    store: &dyn Store,
    filter: &TaskFilter,
    count: CountMode,
) -> Result<CountedTasks, StoreError> {
    match count {
        CountMode::Estimate => store.estimate_counts(filter).await,
        _ => store.count_tasks(filter).await.map(CountedTasks::exact),
    }
}

/// One task: Overview and Entity Data.
#[utoipa::path(get, path = "/api/v1/tasks/{identifier}", tag = "tasks",
    params(("identifier" = String, Path, description = "task identifier")),
    responses((status = 200, body = TaskDetailDto), (status = 404, body = crate::error::ErrorBody)))]
pub async fn detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<TaskDetailDto>> {
    let id = task_id(&raw)?;
    let task = state
        .store()
        .get_task(&id)
        .await?
        .ok_or_else(|| unknown_task(&raw))?;
    Ok(Json((&task).into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "read by the OpenAPI derive only")]
pub struct PhaseParam {
    /// import or export
    phase: Option<String>,
}

/// A task's import or export messages, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{identifier}/messages", tag = "tasks",
    params(("identifier" = String, Path, description = "task identifier"), PhaseParam),
    responses((status = 200, body = MessageList), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn messages(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<MessageList>> {
    let mut phase = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "phase" => phase = Some(v.into_owned()),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("{other}: unknown parameter; use phase=import or phase=export"),
                ));
            }
        }
    }
    let phase = match phase.as_deref() {
        Some(p) => Phase::parse(p).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("phase: '{p}' is not a phase; use import or export"),
            )
        })?,
        None => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "phase: missing; use phase=import or phase=export",
            ));
        }
    };
    let id = task_id(&raw)?;
    let items = state
        .store()
        .messages(&id, phase)
        .await?
        .ok_or_else(|| unknown_task(&raw))?;
    Ok(Json(MessageList {
        items: items
            .into_iter()
            .map(|m| MessageDto {
                at: m.at.to_rfc3339(),
                level: m.level.to_string(),
                message: m.message,
            })
            .collect(),
    }))
}

/// A task's processing attempts and the operator actions taken on it.
#[utoipa::path(get, path = "/api/v1/tasks/{identifier}/history", tag = "tasks",
    params(("identifier" = String, Path, description = "task identifier")),
    responses((status = 200, body = History), (status = 404, body = crate::error::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<History>> {
    let id = task_id(&raw)?;
    if state.store().get_task(&id).await?.is_none() {
        return Err(unknown_task(&raw));
    }
    let attempts = state.store().attempts(&id).await?;
    let actions = state.store().task_actions(&id).await?;
    Ok(Json(History {
        attempts: attempts
            .into_iter()
            .map(|a| AttemptDto {
                attempt: a.attempt,
                started_at: a.started_at.to_rfc3339(),
                ended_at: a.ended_at.to_rfc3339(),
                outcome: a.outcome.to_string(),
                error: a.error,
            })
            .collect(),
        actions: actions
            .into_iter()
            .map(|a| ActionDto {
                at: a.at.to_rfc3339(),
                actor: a.actor,
                action: a.action,
                reason: a.reason,
                target: a.target,
            })
            .collect(),
    }))
}

async fn act_one(
    state: AppState,
    raw: String,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
    action: Action,
) -> ApiResult<Json<TaskDetailDto>> {
    let bytes = body::bytes(body)?;
    let parsed: ActionBody = body::json_opt(&bytes)?.unwrap_or_default();
    let request = ActionRequest {
        action,
        actor: caller.actor(),
        origin: caller.origin.clone(),
        reason: reason(parsed.reason)?,
        at: Timestamp::now(),
    };
    let id = task_id(&raw)?;
    let task = state
        .store()
        .act_on_task(&id, &request)
        .await
        .map_err(action_error)?;
    Ok(Json((&task).into()))
}

/// Skip one task (allowed from new and retry).
#[utoipa::path(post, path = "/api/v1/tasks/{identifier}/skip", tag = "tasks",
    params(("identifier" = String, Path, description = "task identifier")),
    request_body(content = Option<ActionBody>),
    responses((status = 200, body = TaskDetailDto), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn skip_one(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TaskDetailDto>> {
    act_one(state, raw, caller, body, Action::Skip).await
}

/// Retry one task (allowed from finished, failed and skipped); attempts reset.
#[utoipa::path(post, path = "/api/v1/tasks/{identifier}/retry", tag = "tasks",
    params(("identifier" = String, Path, description = "task identifier")),
    request_body(content = Option<ActionBody>),
    responses((status = 200, body = TaskDetailDto), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn retry_one(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TaskDetailDto>> {
    act_one(state, raw, caller, body, Action::Retry).await
}

async fn act_bulk(
    state: AppState,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
    action: Action,
) -> ApiResult<Json<BulkResult>> {
    let bytes = body::bytes(body)?;
    let parsed: BulkBody = body::json_opt(&bytes)?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_body",
            r#"send {"identifiers": [...]} or {"filter": {...}}, with an optional "reason""#,
        )
    })?;
    let request = ActionRequest {
        action,
        actor: caller.actor(),
        origin: caller.origin.clone(),
        reason: reason(parsed.reason)?,
        at: Timestamp::now(),
    };
    let outcome = match (parsed.identifiers, parsed.filter) {
        (Some(ids), None) => {
            if ids.len() > MAX_BULK_IDENTIFIERS {
                return Err(ApiError::bad_request(
                    "too_many_identifiers",
                    format!(
                        "{} identifiers sent; at most {MAX_BULK_IDENTIFIERS} per request — use a filter for larger sets",
                        ids.len()
                    ),
                ));
            }
            let mut parsed_ids = Vec::with_capacity(ids.len());
            let mut malformed = 0u64;
            for raw in &ids {
                match TaskId::parse(raw) {
                    Ok(id) => parsed_ids.push(id),
                    // An identifier that cannot exist is simply not found.
                    Err(_) => malformed += 1,
                }
            }
            let mut o = state.store().act_on_ids(&parsed_ids, &request).await?;
            o.not_found += malformed;
            o
        }
        (None, Some(filter)) => {
            let filter = parse_filter(&filter)?;
            state.store().act_on_filter(&filter, &request).await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_target",
                r#"send exactly one of "identifiers" (a list of task identifiers) or "filter" (the list's parameters as an object)"#,
            ));
        }
    };
    tracing::info!(action = action.as_str(), actor = %request.actor, ?outcome, "bulk action");
    Ok(Json(outcome.into()))
}

/// Skip many tasks: by identifiers or by filter, however many.
#[utoipa::path(post, path = "/api/v1/tasks/skip", tag = "tasks", request_body = BulkBody,
    responses((status = 200, body = BulkResult), (status = 400, body = crate::error::ErrorBody)))]
pub async fn bulk_skip(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BulkResult>> {
    act_bulk(state, caller, body, Action::Skip).await
}

/// Retry many tasks: by identifiers or by filter, however many.
#[utoipa::path(post, path = "/api/v1/tasks/retry", tag = "tasks", request_body = BulkBody,
    responses((status = 200, body = BulkResult), (status = 400, body = crate::error::ErrorBody)))]
pub async fn bulk_retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BulkResult>> {
    act_bulk(state, caller, body, Action::Retry).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Status;

    #[test]
    fn status_names_in_counts_are_the_wire_names() {
        let c: Counts = (&StatusCounts::default()).into();
        let keys: Vec<&String> = c.by_status.keys().collect();
        assert_eq!(keys.len(), Status::ALL.len());
        assert!(c.by_status.contains_key("retry"));
    }
}
