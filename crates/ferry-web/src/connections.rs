//! `/api/v1/connections`: the configured connections as the pages show them (secrets as
//! `***`), and reaching one now ("Test connection", operator role, audited).

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/connections", get(list))
        .route("/api/v1/connections/{id}/test", post(test))
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ConnectionDto {
    pub id: String,
    /// The connection kind (`http`).
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is set to, as `[key, value]` pairs; secrets are `***`.
    pub settings: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ConnectionList {
    pub items: Vec<ConnectionDto>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ConnectionTest {
    pub id: String,
    pub ok: bool,
    /// What was reached (TLS, token, the answer to one request), or what failed and why.
    pub message: String,
}

/// The connections in the order of the configuration.
pub fn connections(state: &AppState) -> Vec<ConnectionDto> {
    let built = state.engine.connections();
    state
        .config()
        .connections
        .iter()
        .filter_map(|c| {
            let connection = built.get(c.id.as_str())?;
            Some(ConnectionDto {
                id: c.id.to_string(),
                kind: connection.kind().to_owned(),
                settings: connection.describe(),
            })
        })
        .collect()
}

/// Every configured connection, secrets as `***`.
#[utoipa::path(get, path = "/api/v1/connections", tag = "routes",
    responses((status = 200, body = ConnectionList)))]
pub async fn list(State(state): State<AppState>) -> Json<ConnectionList> {
    Json(ConnectionList {
        items: connections(&state),
    })
}

/// Reach a connection now: DNS, TCP, the TLS handshake, a token request for OAuth2 and
/// one request to its base URL (what `ferry check --connect` does). Audited.
#[utoipa::path(post, path = "/api/v1/connections/{id}/test", tag = "routes",
    params(("id" = String, Path, description = "connection id")),
    responses((status = 200, body = ConnectionTest), (status = 404, body = crate::error::ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionTest>> {
    let connection = state
        .engine
        .connections()
        .get(&id)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<String> = connections(&state).into_iter().map(|c| c.id).collect();
            ApiError::not_found(
                "connection_not_found",
                format!(
                    "no connection is called '{id}'; the connections are: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
    let result = connection.check().await;
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    let event = ferry_store::access::event(
        &caller.actor(),
        "connection.test",
        caller.origin.clone(),
        serde_json::json!({ "connection": id, "ok": ok }),
    );
    state.store().record_event(&event).await?;
    Ok(Json(ConnectionTest { id, ok, message }))
}
