//! `POST /api/v1/webhooks/{incoming_id}`: entities pushed by outside systems.

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Extension, Json, Router};
use ferry_core::Permission;
use ferry_core::config::Subscriber;
use ferry_core::entity::kind_of;
use ferry_engine::IngestError;
use ferry_store::credentials::constant_time_eq;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/webhooks/{incoming_id}", post(receive))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct WebhookResult {
    /// Tasks created, on every route that uses the incoming configuration.
    pub created: u64,
    pub tasks: Vec<String>,
    /// Entities that a transformer dropped (no task).
    pub dropped: u64,
}

/// The header that carries `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-ferry-signature";

/// Lets a delivery in when it carries the webhook's secret as a bearer token or signs
/// its body with it; answers 401 otherwise, without saying which part was wrong.
/// A delivery is accepted with the incoming's secret (as a bearer token, or as the key
/// of an HMAC-SHA256 signature of the body), or from an operator or admin: an API
/// token, or a signed-in page that sends its CSRF token.
fn authenticate(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    if let Some(secret) = secret {
        let bearer =
            crate::auth::bearer(headers).is_some_and(|token| constant_time_eq(token, secret));
        let signed = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .and_then(decode_hex)
            .is_some_and(|sig| {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes any key");
                mac.update(body);
                mac.verify_slice(&sig).is_ok()
            });
        if bearer || signed {
            return Ok(());
        }
    }
    let by_page_without_csrf = caller
        .session
        .as_ref()
        .is_some_and(|s| !crate::auth::csrf_ok(headers, &s.csrf));
    if by_page_without_csrf {
        return Err(crate::auth::csrf_refused());
    }
    if caller.principal.is_some() {
        return caller.require(Permission::Operate).map(|_| ());
    }
    tracing::warn!(
        incoming = id,
        "webhook delivery refused: missing or wrong credentials"
    );
    let how = if secret.is_some() {
        "send Authorization: Bearer <secret>, or X-Ferry-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the secret>, or an operator's API token"
    } else {
        "it has no secret configured, so send an operator's API token as Authorization: Bearer <token> (or give it a secret in the configuration)"
    };
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!("the webhook '{id}' refused the delivery: {how}"),
    ))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads one object, an array of objects, or NDJSON into entities.
pub fn entities(content_type: Option<&str>, bytes: &[u8]) -> Result<Vec<Value>, ApiError> {
    let ndjson = content_type.is_some_and(|c| {
        let c = c.to_ascii_lowercase();
        c.starts_with("application/x-ndjson")
            || c.starts_with("application/jsonl")
            || c.starts_with("application/ndjson")
    });
    let not_object = |where_: String, v: &Value| {
        ApiError::bad_request(
            "invalid_entity",
            format!(
                "{where_} is {}, not a JSON object; each entity must be an object",
                kind_of(v)
            ),
        )
    };
    if ndjson {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("invalid_body", "the NDJSON body is not UTF-8"))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                ApiError::bad_request("invalid_json", format!("NDJSON line {}: {e}", i + 1))
            })?;
            if !v.is_object() {
                return Err(not_object(format!("NDJSON line {}", i + 1), &v));
            }
            out.push(v);
        }
        if out.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "the NDJSON body has no entities",
            ));
        }
        return Ok(out);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body is empty; send a JSON object, an array of objects, or NDJSON with Content-Type: application/x-ndjson",
        ));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON ({e}); for one entity per line send Content-Type: application/x-ndjson"),
        )
    })?;
    match v {
        Value::Object(_) => Ok(vec![v]),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(not_object(format!("item {i} of the array"), item));
                }
            }
            Ok(items)
        }
        other => Err(not_object("the body".into(), &other)),
    }
}

/// Push entities into a webhook incoming configuration.
#[utoipa::path(post, path = "/api/v1/webhooks/{incoming_id}", tag = "webhooks",
    params(("incoming_id" = String, Path, description = "incoming configuration id")),
    request_body(content = Object, description = "one JSON object, an array of objects, or NDJSON (Content-Type: application/x-ndjson)"),
    responses((status = 201, body = WebhookResult), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Path(incoming_id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookResult>)> {
    let incoming = state.config().incoming(&incoming_id).ok_or_else(|| {
        let webhooks: Vec<&str> = state
            .config()
            .incoming
            .iter()
            .filter(|i| i.subscriber.kind() == "webhook")
            .map(|i| i.id.as_str())
            .collect();
        ApiError::not_found(
            "incoming_not_found",
            format!(
                "no incoming configuration is called '{incoming_id}'; the webhooks are: {}",
                webhooks.join(", ")
            ),
        )
    })?;
    if incoming.subscriber.kind() != "webhook" {
        return Err(ApiError::conflict(
            "not_a_webhook",
            format!(
                "'{incoming_id}' is a {} subscriber; only webhook subscribers accept pushed entities",
                incoming.subscriber.kind()
            ),
        ));
    }
    let bytes = body::bytes(body)?;
    let secret = match &incoming.subscriber {
        Subscriber::Webhook { secret } => secret.as_ref().map(|s| s.expose()),
        _ => None,
    };
    authenticate(&headers, &bytes, secret, &caller, &incoming_id)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let entities = entities(content_type, &bytes)?;
    let result = state
        .engine
        .ingest(&incoming_id, entities, &format!("webhook {incoming_id}"))
        .await
        .map_err(|e| match e {
            IngestError::UnknownIncoming(id) => {
                ApiError::not_found("incoming_not_found", format!("no incoming configuration is called '{id}'"))
            }
            IngestError::Rejected(rejected) => {
                let details: Vec<Value> = rejected
                    .iter()
                    .take(100)
                    .map(|r| serde_json::json!({ "index": r.index, "route": r.route, "message": r.message }))
                    .collect();
                let first = &rejected[0];
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "entities_rejected",
                    format!(
                        "{} entit{} cannot become tasks, so nothing was created; first, entity {}: {}",
                        rejected.len(),
                        if rejected.len() == 1 { "y" } else { "ies" },
                        first.index,
                        first.message
                    ),
                )
                .with_details(serde_json::json!({ "rejected": details }))
            }
            IngestError::Store(e) => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookResult {
            created: result.created.len() as u64,
            tasks: result.created.iter().map(ToString::to_string).collect(),
            dropped: result.dropped as u64,
        }),
    ))
}
