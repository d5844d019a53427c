//! `/api/v1/bulk-jobs`: bulk skip or retry by filter as a tracked job. The request
//! answers at once (202) with the job, counted; the job works through its batches in
//! the background, and its progress can be read, from any node, until it ends.

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, ApiResult};
use crate::tasks::{parse_filter, reason};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferry_core::{Action, JobState, Progress, Timestamp};
use ferry_engine::ResumeError;
use ferry_store::{ActionRequest, BulkJob};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Most jobs one list answers.
pub const MAX_JOBS_LISTED: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/bulk-jobs", get(list).post(start))
        .route("/api/v1/bulk-jobs/{id}", get(one))
        .route("/api/v1/bulk-jobs/{id}/cancel", post(cancel))
        .route("/api/v1/bulk-jobs/{id}/resume", post(resume))
}

/// What to do, to which tasks.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// `skip` or `retry`.
    #[schema(pattern = "^(skip|retry)$")]
    pub action: String,
    /// The list parameters as an object; `route` and `status` may be arrays. `{}`
    /// means every task.
    #[schema(value_type = Object)]
    pub filter: serde_json::Map<String, Value>,
    pub reason: Option<String>,
}

/// A bulk job and how far it is.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct BulkJobDto {
    pub id: i64,
    /// `skip` or `retry`.
    pub action: String,
    /// `running`, `done`, `cancelled`, `failed`, or `interrupted` (the node running it
    /// stopped: resume it, `POST /api/v1/bulk-jobs/{id}/resume`, to finish it).
    pub state: String,
    #[schema(value_type = Object)]
    pub filter: Value,
    pub reason: Option<String>,
    pub actor: String,
    /// Tasks that matched the filter when the job began.
    pub matched: u64,
    /// Of them, those whose status allowed the action.
    pub eligible: u64,
    /// Tasks acted on so far.
    pub changed: u64,
    /// 0 to 1: `changed` of `eligible` (1 once done).
    pub progress: f64,
    pub tasks_per_second: Option<f64>,
    /// While running: the time left at the rate so far.
    pub seconds_left: Option<f64>,
    pub cancel_requested: bool,
    pub cancelled_by: Option<String>,
    pub error: Option<String>,
    pub started_at: String,
    /// The last batch.
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl BulkJobDto {
    pub fn of(job: &BulkJob, now: Timestamp) -> BulkJobDto {
        let state = job.state_at(now);
        let until = job.finished_at.unwrap_or(match state {
            JobState::Running => now,
            _ => job.updated_at,
        });
        let p = Progress::of(state, job.eligible, job.changed, job.started_at, until);
        let round = |v: f64, places: i32| {
            let k = 10f64.powi(places);
            (v * k).round() / k
        };
        BulkJobDto {
            id: job.id,
            action: job.action.action.clone(),
            state: state.as_str().to_owned(),
            filter: job.action.target.get("filter").cloned().unwrap_or_default(),
            reason: job.action.reason.clone(),
            actor: job.action.actor.clone(),
            matched: job.matched,
            eligible: job.eligible,
            changed: job.changed,
            progress: round(p.fraction, 4),
            tasks_per_second: p.tasks_per_second.map(|v| round(v, 0)),
            seconds_left: p.seconds_left.map(|v| round(v, 1)),
            cancel_requested: job.cancel_requested,
            cancelled_by: job.cancelled_by.clone(),
            error: job.error.clone(),
            started_at: job.started_at.to_rfc3339(),
            updated_at: job.updated_at.to_rfc3339(),
            finished_at: job.finished_at.map(Timestamp::to_rfc3339),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct BulkJobList {
    pub items: Vec<BulkJobDto>,
}

/// The list's parameters.
#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `running` for the jobs still running only.
    #[param(pattern = "^(running)?$")]
    pub state: Option<String>,
    /// At most this many, newest first (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Start skipping or retrying every task that matches a filter, in the background.
/// Answers 202 with the job (counted: `matched`, `eligible`); follow it at
/// `/api/v1/bulk-jobs/{id}` (the `Location` header).
#[utoipa::path(post, path = "/api/v1/bulk-jobs", tag = "tasks", request_body = StartBody,
    responses((status = 202, body = BulkJobDto), (status = 400, body = crate::error::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let bytes = body::bytes(body)?;
    let parsed: StartBody = body::json_opt(&bytes)?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_body",
            r#"send {"action": "skip" or "retry", "filter": {...}}, with an optional "reason""#,
        )
    })?;
    let action = match parsed.action.as_str() {
        "skip" => Action::Skip,
        "retry" => Action::Retry,
        other => {
            return Err(ApiError::bad_request(
                "invalid_action",
                format!("action '{other}' is not a bulk action; use skip or retry"),
            ));
        }
    };
    let filter = parse_filter(&parsed.filter)?;
    let request = ActionRequest {
        action,
        actor: caller.actor(),
        origin: caller.origin.clone(),
        reason: reason(parsed.reason)?,
        at: Timestamp::now(),
    };
    let job = state.engine.start_bulk_job(filter, request).await?;
    let dto = BulkJobDto::of(&job, Timestamp::now());
    let location = format!("/api/v1/bulk-jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(dto),
    ))
}

/// Bulk jobs, newest first.
#[utoipa::path(get, path = "/api/v1/bulk-jobs", tag = "tasks", params(ListParams),
    responses((status = 200, body = BulkJobList), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<BulkJobList>> {
    let mut running_only = false;
    let mut limit = 20;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("state", "running") => running_only = true,
            ("state", "") => {}
            ("state", other) => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!(
                        "state '{other}': only running can be asked for; leave it out for every job"
                    ),
                ));
            }
            ("limit", v) => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_JOBS_LISTED).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_parameter",
                            format!("limit '{v}': use a whole number from 1 to {MAX_JOBS_LISTED}"),
                        )
                    })?;
            }
            (other, _) => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("unknown parameter '{other}'; use state and limit"),
                ));
            }
        }
    }
    let now = Timestamp::now();
    let items = state
        .store()
        .bulk_jobs(running_only, limit)
        .await?
        .iter()
        .map(|j| BulkJobDto::of(j, now))
        .collect();
    Ok(Json(BulkJobList { items }))
}

/// One bulk job and its progress.
#[utoipa::path(get, path = "/api/v1/bulk-jobs/{id}", tag = "tasks",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = BulkJobDto), (status = 404, body = crate::error::ErrorBody)))]
pub async fn one(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<BulkJobDto>> {
    let job = find(&state, &raw).await?;
    Ok(Json(BulkJobDto::of(&job, Timestamp::now())))
}

/// Ask a running job to stop after its current batch; the batches done stay done.
/// 409 when the job has already ended.
#[utoipa::path(post, path = "/api/v1/bulk-jobs/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = BulkJobDto), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<BulkJobDto>> {
    let job = find(&state, &raw).await?;
    let now = Timestamp::now();
    let seen = job.state_at(now);
    if seen != JobState::Running {
        return Err(ApiError::conflict(
            "job_ended",
            format!(
                "bulk job {} has ended ({seen}); there is nothing to cancel",
                job.id
            ),
        ));
    }
    let actor = caller.actor();
    let job = state
        .store()
        .cancel_bulk_job(job.id, &actor)
        .await?
        .ok_or_else(|| unknown_job(&raw))?;
    let event = ferry_store::access::event(
        &actor,
        "bulk.cancel",
        caller.origin.clone(),
        serde_json::json!({ "job": job.id, "action_id": job.action.id }),
    );
    state.store().record_event(&event).await?;
    Ok(Json(BulkJobDto::of(&job, Timestamp::now())))
}

/// Resume an interrupted job (its node stopped) on this node: the same action goes on
/// with what is left, adding to the same counts. Answers 202 with the job, running
/// again; 409 when the job is not interrupted (running, or ended).
#[utoipa::path(post, path = "/api/v1/bulk-jobs/{id}/resume", tag = "tasks",
    params(("id" = String, Path, description = "job id")),
    responses((status = 202, body = BulkJobDto), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
    let id = raw.parse::<i64>().map_err(|_| unknown_job(&raw))?;
    let job = match state.engine.resume_bulk_job(id).await {
        Ok(job) => job,
        Err(ResumeError::Unknown(_)) => return Err(unknown_job(&raw)),
        Err(ResumeError::NotInterrupted { id, state }) => {
            return Err(ApiError::conflict(
                "job_not_interrupted",
                format!(
                    "bulk job {id} is {state}; only an interrupted job (its node stopped) can be resumed"
                ),
            ));
        }
        Err(ResumeError::Store(e)) => return Err(e.into()),
    };
    let event = ferry_store::access::event(
        &caller.actor(),
        "bulk.resume",
        caller.origin.clone(),
        serde_json::json!({ "job": job.id, "action_id": job.action.id }),
    );
    state.store().record_event(&event).await?;
    let location = format!("/api/v1/bulk-jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(BulkJobDto::of(&job, Timestamp::now())),
    ))
}

async fn find(state: &AppState, raw: &str) -> ApiResult<BulkJob> {
    let id = raw.parse::<i64>().map_err(|_| unknown_job(raw))?;
    state
        .store()
        .bulk_job(id)
        .await?
        .ok_or_else(|| unknown_job(raw))
}

fn unknown_job(raw: &str) -> ApiError {
    ApiError::not_found(
        "unknown_job",
        format!("no bulk job '{raw}'; GET /api/v1/bulk-jobs lists them"),
    )
}
