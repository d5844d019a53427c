//! `/api/v1/routes` and `/api/v1/incoming`: routes with their counts, running them, and
//! the since marks of incremental subscribers (resetting one is for admins: see
//! [`admin_router`]).

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::tasks::Counts;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferry_core::config::Route;
use ferry_core::retry::Backoff;
use ferry_engine::{IncomingRunError, RunError, TryError, TryInput};
use ferry_store::{SinceMark, StatusCounts};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/routes", get(list))
        .route("/api/v1/routes/{id}", get(one))
        .route("/api/v1/routes/{id}/run", post(run))
        .route("/api/v1/routes/{id}/try", post(try_route))
        .route("/api/v1/incoming/{id}/run", post(run_incoming))
        .route("/api/v1/retention", get(retention))
}

/// The calls that need the admin role: resetting a since mark makes the next run ask
/// the source for everything from the configured `initial` again.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/api/v1/incoming/{id}/reset-since", post(reset_since))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct RouteDto {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub realtime: bool,
    pub incoming: Vec<String>,
    pub outgoing: String,
    /// Tasks per status.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ScheduleDto {
    /// Cron expression of the incoming side, if scheduled.
    pub incoming: Option<String>,
    pub outgoing: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct RetryDto {
    pub enabled: bool,
    /// Every processing attempt counts, the first included.
    pub max_attempts: u32,
    pub interval_seconds: u64,
    /// fixed or exponential
    pub backoff: String,
    pub on_http_status: Vec<u16>,
    pub on_message: Vec<String>,
}

/// Where an incremental (`since`) subscriber got to.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct SinceDto {
    /// The greatest `from` value of the last successful run: the next run asks for what
    /// changed since it.
    #[schema(example = "2026-01-05T10:00:00Z")]
    pub value: String,
    /// When that run stored it (RFC 3339).
    pub updated_at: String,
}

impl From<&SinceMark> for SinceDto {
    fn from(m: &SinceMark) -> Self {
        SinceDto {
            value: m.value.clone(),
            updated_at: m.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct RouteDetail {
    #[serde(flatten)]
    pub route: RouteDto,
    pub batch_size: u32,
    pub schedule: ScheduleDto,
    pub retry: RetryDto,
    pub total: u64,
    /// The since marks of the route's incoming configurations, by incoming id; only
    /// those that have one (an incremental http subscriber after a successful run).
    #[serde(default)]
    pub since: BTreeMap<String, SinceDto>,
    /// The circuit breaker of the outgoing side's connection, when it has one.
    #[serde(default)]
    pub circuit: Option<CircuitDto>,
    /// How the outgoing side delivers now, for a publisher that limits its requests
    /// (an http publisher).
    #[serde(default)]
    pub delivery: Option<DeliveryDto>,
}

/// Requests in flight and the limits on them, on this node.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct DeliveryDto {
    /// Requests allowed at once now: the fixed `max_in_flight`, or the level
    /// `"auto"` has reached.
    pub max_in_flight: usize,
    /// Requests in flight now.
    pub in_flight: usize,
    /// With `max_in_flight = "auto"`: the level's upper bound.
    pub adaptive_max: Option<usize>,
    /// The connection's `rate_limit` (`200/s`), when it has one.
    pub rate_limit: Option<String>,
}

impl From<ferry_engine::connectors::DeliveryState> for DeliveryDto {
    fn from(d: ferry_engine::connectors::DeliveryState) -> DeliveryDto {
        DeliveryDto {
            max_in_flight: d.level.limit,
            in_flight: d.level.in_flight,
            adaptive_max: d.level.adaptive_max,
            rate_limit: d.rate_limit,
        }
    }
}

/// A connection's circuit breaker.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct CircuitDto {
    /// closed, open or half-open
    pub state: String,
    /// While open: when one probe will be let through (RFC 3339).
    pub until: Option<String>,
    pub failures_in_a_row: u32,
    /// The error that opened it, or the last one.
    pub last_error: Option<String>,
}

impl From<ferry_engine::connectors::CircuitState> for CircuitDto {
    fn from(c: ferry_engine::connectors::CircuitState) -> CircuitDto {
        CircuitDto {
            state: c.state.to_owned(),
            until: c.until,
            failures_in_a_row: c.failures_in_a_row,
            last_error: c.last_error,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct RouteList {
    pub items: Vec<RouteDto>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub claimed: u64,
    pub finished: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retry: u64,
    /// True when the route is disabled and so processed nothing.
    pub disabled: bool,
}

fn dto(route: &Route, counts: Option<&StatusCounts>) -> RouteDto {
    let counts = counts.cloned().unwrap_or_default();
    RouteDto {
        id: route.id.to_string(),
        name: route.name.clone(),
        disabled: route.disabled,
        realtime: route.realtime,
        incoming: route.incoming.iter().map(ToString::to_string).collect(),
        outgoing: route.outgoing.to_string(),
        counts: Counts::from(&counts).by_status,
    }
}

fn unknown_route(id: &str, state: &AppState) -> ApiError {
    let known: Vec<&str> = state
        .config()
        .routes
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    ApiError::not_found(
        "route_not_found",
        format!(
            "no route is called '{id}'; the routes are: {}",
            known.join(", ")
        ),
    )
}

/// Every configured route with its task counts per status.
#[utoipa::path(get, path = "/api/v1/routes", tag = "routes", responses((status = 200, body = RouteList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<RouteList>> {
    let counts = state.store().counts_by_route().await?;
    Ok(Json(RouteList {
        items: state
            .config()
            .routes
            .iter()
            .map(|r| dto(r, counts.get(r.id.as_str())))
            .collect(),
    }))
}

/// One route, with its schedules and retry policy.
#[utoipa::path(get, path = "/api/v1/routes/{id}", tag = "routes",
    params(("id" = String, Path, description = "route id")),
    responses((status = 200, body = RouteDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RouteDetail>> {
    let route = state
        .config()
        .route(&id)
        .ok_or_else(|| unknown_route(&id, &state))?;
    let counts = state.store().counts_by_route().await?;
    let c = counts.get(route.id.as_str());
    let marks = state.store().since_marks().await?;
    let since = route
        .incoming
        .iter()
        .filter_map(|i| Some((i.to_string(), SinceDto::from(marks.get(i.as_str())?))))
        .collect();
    Ok(Json(RouteDetail {
        delivery: state
            .engine
            .delivery(route.outgoing.as_str())
            .map(DeliveryDto::from),
        circuit: state
            .engine
            .circuit(route.outgoing.as_str())
            .map(CircuitDto::from),
        since,
        total: c.map(StatusCounts::total).unwrap_or(0),
        route: dto(route, c),
        batch_size: route.batch_size,
        schedule: ScheduleDto {
            incoming: route
                .schedule
                .incoming
                .as_ref()
                .map(|c| c.expression().to_owned()),
            outgoing: route
                .schedule
                .outgoing
                .as_ref()
                .map(|c| c.expression().to_owned()),
        },
        retry: RetryDto {
            enabled: route.retry.enabled,
            max_attempts: route.retry.max_attempts,
            interval_seconds: route.retry.interval.as_secs(),
            backoff: match route.retry.backoff {
                Backoff::Fixed => "fixed".into(),
                Backoff::Exponential => "exponential".into(),
            },
            on_http_status: route.retry.on_http_status.clone(),
            on_message: route.retry.on_message.clone(),
        },
    }))
}

/// Run the route's outgoing side now: one batch of due tasks.
#[utoipa::path(post, path = "/api/v1/routes/{id}/run", tag = "routes",
    params(("id" = String, Path, description = "route id")),
    responses((status = 200, body = RunResult), (status = 404, body = crate::error::ErrorBody)))]
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunResult>> {
    let s = state.engine.run_route(&id).await.map_err(|e| match e {
        RunError::UnknownRoute(_) => unknown_route(&id, &state),
        RunError::Store(e) => e.into(),
    })?;
    let outcome = serde_json::json!({
        "route": id, "claimed": s.claimed, "finished": s.finished, "failed": s.failed,
        "skipped": s.skipped, "retry": s.retry,
    });
    record(&state, &caller, "run", outcome).await?;
    Ok(Json(RunResult {
        claimed: s.claimed,
        finished: s.finished,
        failed: s.failed,
        skipped: s.skipped,
        retry: s.retry,
        disabled: s.disabled,
    }))
}

/// What to try a route with: an `entity` (through `incoming`, default the route's first
/// incoming configuration), or a stored `task`'s entity.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct TryRequest {
    #[schema(value_type = Option<Object>)]
    pub entity: Option<serde_json::Value>,
    pub incoming: Option<String>,
    pub task: Option<String>,
}

/// Each step's outputs, the entity identifier and what the publisher would send
/// (`tasks[].request`: method, target, headers with secrets as `***`, body).
#[derive(Serialize, ToSchema, Debug)]
pub struct TryResult {
    pub route: String,
    pub incoming: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub steps: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub tasks: serde_json::Value,
    pub outcome: Option<String>,
}

/// Run the route's transformers on an entity and show what its publisher would send;
/// nothing is stored or sent (a `lookup` transformer does ask its system).
#[utoipa::path(post, path = "/api/v1/routes/{id}/try", tag = "routes",
    params(("id" = String, Path, description = "route id")),
    request_body = TryRequest,
    responses((status = 200, body = TryResult), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn try_route(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<TryResult>> {
    let request: TryRequest = crate::body::json(&crate::body::bytes(body)?)?;
    let report = try_report(&state, &id, request).await?;
    Ok(Json(TryResult {
        route: report.route,
        incoming: report.incoming,
        steps: serde_json::to_value(&report.steps).unwrap_or_default(),
        tasks: serde_json::to_value(&report.tasks).unwrap_or_default(),
        outcome: report.outcome,
    }))
}

/// Tries route `id` with `request` (the API's and the Routes page's Try panel's).
pub async fn try_report(
    state: &AppState,
    id: &str,
    request: TryRequest,
) -> ApiResult<ferry_engine::TryReport> {
    let input = match (request.entity, request.task) {
        (Some(entity), None) => TryInput::Entity {
            entity,
            incoming: request.incoming,
        },
        (None, Some(task)) => {
            let task = ferry_core::TaskId::parse(&task).map_err(|e| {
                ApiError::bad_request(
                    "invalid_task",
                    format!("'{task}' is not a task identifier: {e}"),
                )
            })?;
            TryInput::Task(task)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_try",
                "give either entity (a JSON object) or task (a task identifier)",
            ));
        }
    };
    state
        .engine
        .try_route(id, input)
        .await
        .map_err(|e| match e {
            TryError::UnknownRoute(_) => unknown_route(id, state),
            TryError::UnknownTask(t) => {
                ApiError::not_found("task_not_found", format!("no task {t}"))
            }
            TryError::Bad(m) => ApiError::bad_request("invalid_try", m),
            TryError::Store(e) => e.into(),
        })
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct IncomingRunResult {
    /// Tasks created on every route that uses the incoming configuration.
    pub created: u64,
    /// Entities a transformer dropped.
    pub dropped: u64,
    /// Problems met: bad lines with their file and line number, failed requests,
    /// entities that could not become tasks. What could be read still became tasks.
    pub errors: Vec<String>,
    /// Files read and moved aside.
    pub files: Vec<String>,
}

/// Run an incoming configuration's subscriber now (file or http).
#[utoipa::path(post, path = "/api/v1/incoming/{id}/run", tag = "routes",
    params(("id" = String, Path, description = "incoming configuration id")),
    responses((status = 200, body = IncomingRunResult), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn run_incoming(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<IncomingRunResult>> {
    let run = state.engine.run_incoming(&id).await.map_err(|e| match e {
        IncomingRunError::UnknownIncoming(_) => unknown_incoming(&id, &state),
        IncomingRunError::Webhook(_) => ApiError::conflict(
            "not_runnable",
            format!("'{id}' is a webhook: it receives entities on POST /api/v1/webhooks/{id} and has nothing to run"),
        ),
        IncomingRunError::Store(e) => e.into(),
    })?;
    let outcome = serde_json::json!({
        "incoming": id, "created": run.created, "dropped": run.dropped, "errors": run.errors.len(),
    });
    record(&state, &caller, "run.incoming", outcome).await?;
    Ok(Json(IncomingRunResult {
        created: run.created,
        dropped: run.dropped,
        errors: run.errors,
        files: run.files,
    }))
}

fn unknown_incoming(id: &str, state: &AppState) -> ApiError {
    let known: Vec<&str> = state
        .config()
        .incoming
        .iter()
        .map(|i| i.id.as_str())
        .collect();
    ApiError::not_found(
        "incoming_not_found",
        format!(
            "no incoming configuration is called '{id}'; the incoming configurations are: {}",
            known.join(", ")
        ),
    )
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SinceResetResult {
    pub incoming: String,
    /// Whether a since mark was stored (and is now removed).
    pub reset: bool,
    /// The mark removed; null when there was none.
    pub previous: Option<SinceDto>,
}

/// Forget where an incoming configuration's incremental (`since`) subscriber got to:
/// its next run asks for everything from the configured `initial` again. Admin role;
/// audited as `since.reset`, with the value removed.
#[utoipa::path(post, path = "/api/v1/incoming/{id}/reset-since", tag = "routes",
    params(("id" = String, Path, description = "incoming configuration id")),
    responses((status = 200, body = SinceResetResult), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reset_since(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<SinceResetResult>> {
    if state.config().incoming(&id).is_none() {
        return Err(unknown_incoming(&id, &state));
    }
    let store = state.store();
    // Read, then remove: a mark another admin removed in between is not claimed.
    let before = store.since_mark(&id).await?;
    let reset = store.reset_since_mark(&id).await?;
    let previous = before.filter(|_| reset).as_ref().map(SinceDto::from);
    let target = serde_json::json!({ "incoming": id, "reset": reset, "previous": previous });
    record(&state, &caller, "since.reset", target).await?;
    Ok(Json(SinceResetResult {
        incoming: id,
        reset,
        previous,
    }))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct RetentionDto {
    /// Final tasks not updated for this long are removed.
    pub max_age_seconds: u64,
    /// Beyond this many tasks in all, the oldest final tasks are removed; null: no limit.
    pub max_tasks: Option<u64>,
    /// The statuses retention removes; other tasks are never removed.
    pub statuses: Vec<String>,
    /// Final tasks last updated before this time are due for removal now.
    pub removes_updated_before: String,
    /// How often the pruner runs, in seconds.
    pub interval_seconds: u64,
}

/// The retention in force: which tasks go out of circulation, and when.
#[utoipa::path(get, path = "/api/v1/retention", tag = "routes", responses((status = 200, body = RetentionDto)))]
pub async fn retention(State(state): State<AppState>) -> Json<RetentionDto> {
    let r = &state.config().retention;
    Json(RetentionDto {
        max_age_seconds: r.max_age.as_secs(),
        max_tasks: r.max_tasks,
        statuses: vec!["finished".into(), "skipped".into(), "failed".into()],
        removes_updated_before: state.engine.prune_rule().updated_before.to_rfc3339(),
        interval_seconds: r.interval.as_secs(),
    })
}

/// Writes a manual run or a since reset to the audit trail.
async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    target: serde_json::Value,
) -> ApiResult<()> {
    let event = ferry_store::access::event(&caller.actor(), action, caller.origin.clone(), target);
    state.store().record_event(&event).await?;
    Ok(())
}
