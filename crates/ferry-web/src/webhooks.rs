//! `POST /api/v1/webhooks/{incoming_id}`: entities pushed by outside systems.

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Extension, Json, Router};
use ferry_core::Permission;
use ferry_core::entity::kind_of;
use ferry_engine::IngestError;
use ferry_engine::connectors::webhook;
use ferry_engine::formats::{self, Format};
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

/// How a delivery's caller is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// From its headers alone: the secret as a bearer token, or an operator.
    Known,
    /// It says it signs its body with the secret: known once the body is read.
    Signed,
}

/// Decides from the headers alone who may deliver, before a byte of the body is read.
/// A delivery is accepted with the incoming's secret (as a bearer token, or as the key
/// of an HMAC-SHA256 signature of the body), or from an operator or admin: an API
/// token, or a signed-in page that sends its CSRF token. Anyone else gets the same 401
/// whatever the webhook's id, so callers without credentials learn nothing of the
/// configuration.
fn admit(
    headers: &HeaderMap,
    secret: Option<&str>,
    caller: &Caller,
    id: &str,
) -> Result<Admission, ApiError> {
    if let Some(secret) = secret
        && crate::auth::bearer(headers).is_some_and(|token| constant_time_eq(token, secret))
    {
        return Ok(Admission::Known);
    }
    let by_page_without_csrf = caller
        .session
        .as_ref()
        .is_some_and(|s| !crate::auth::csrf_ok(headers, &s.csrf));
    if by_page_without_csrf {
        return Err(crate::auth::csrf_refused());
    }
    if caller.principal.is_some() {
        return caller
            .require(Permission::Operate)
            .map(|_| Admission::Known);
    }
    if secret.is_some() && headers.contains_key(SIGNATURE_HEADER) {
        return Ok(Admission::Signed);
    }
    Err(refused(id))
}

/// The one answer to a delivery without valid credentials.
fn refused(id: &str) -> ApiError {
    tracing::warn!(
        incoming = id,
        "webhook delivery refused: missing or wrong credentials"
    );
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!(
            "the webhook '{id}' refused the delivery: send the webhook's secret as Authorization: Bearer <secret>, \
             or X-Ferry-Signature: sha256=<hex HMAC-SHA256 keyed with the secret> of the body \
             (of '<X-Ferry-Timestamp>.<body>' when you send X-Ferry-Timestamp: <Unix seconds>, \
             required and at most signature_max_age old when the webhook sets it), \
             or an operator's API token"
        ),
    )
}

/// The header that carries the Unix time (seconds) a signed delivery was signed at.
pub const TIMESTAMP_HEADER: &str = "x-ferry-timestamp";

/// Whether the body is signed with the secret: `sha256=<hex>` of the body, or of
/// `<timestamp>.<body>` when `X-Ferry-Timestamp` is sent. With `max_age`, the
/// timestamp is required and must be within `max_age` of `now` (either way).
fn signed(
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    max_age: Option<std::time::Duration>,
    now_secs: i64,
) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(sig) = header(SIGNATURE_HEADER)
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(decode_hex)
    else {
        return false;
    };
    let timestamp = match header(TIMESTAMP_HEADER) {
        Some(t) => match t.trim().parse::<i64>() {
            Ok(t) => Some(t),
            Err(_) => return false,
        },
        None => None,
    };
    if let Some(max_age) = max_age {
        let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        match timestamp {
            Some(t) if now_secs.abs_diff(t) <= max.unsigned_abs() => {}
            _ => return false,
        }
    }
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    if let Some(t) = timestamp {
        mac.update(format!("{t}.").as_bytes());
    }
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
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

fn too_many(count: usize, most: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_entities",
        format!(
            "the delivery holds {count} entities and this server takes at most {most} per request \
             (server.max_entities_per_request); send them in several requests, or raise the limit in the configuration"
        ),
    )
}

fn is_ndjson(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        let c = c.to_ascii_lowercase();
        c.starts_with("application/x-ndjson")
            || c.starts_with("application/jsonl")
            || c.starts_with("application/ndjson")
    })
}

/// How many entities a body holds, without building them (NDJSON: its non-blank
/// lines; JSON: the items of a top-level array, else 1). A malformed body counts as
/// what could be read; [`entities`] then says what is wrong with it.
pub fn count_entities(content_type: Option<&str>, bytes: &[u8]) -> usize {
    match content_type.and_then(Format::from_content_type) {
        // CSV: its non-blank lines (an upper bound); XML is counted once read.
        Some(Format::Csv) => {
            return bytes
                .split(|b| *b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .count()
                .saturating_sub(1);
        }
        Some(Format::Xml) => return 0,
        _ => (),
    }
    if is_ndjson(content_type) {
        return bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .count();
    }
    serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(bytes).map_or(1, |items| items.len())
}

/// Reads one object, an array of objects, NDJSON, CSV (`text/csv`) or XML
/// (`application/xml`, `text/xml`) into entities, with the webhook's settings for the
/// last two.
pub fn entities(
    content_type: Option<&str>,
    bytes: &[u8],
    settings: &webhook::Settings,
) -> Result<Vec<Value>, ApiError> {
    if let Some(format @ (Format::Csv | Format::Xml)) =
        content_type.and_then(Format::from_content_type)
    {
        let (name, code) = match format {
            Format::Csv => ("CSV", "invalid_csv"),
            _ => ("XML", "invalid_xml"),
        };
        let encoding = match content_type.and_then(formats::charset) {
            Some(Ok(e)) => Some(e),
            Some(Err(message)) => return Err(ApiError::bad_request("invalid_body", message)),
            None => None,
        };
        let out = formats::document_entities(
            format,
            bytes,
            encoding,
            &settings.csv,
            &settings.xml,
            settings.items_program.as_deref(),
        )
        .map_err(|e| {
            ApiError::bad_request(code, format!("the {name} body: {e}; nothing was created"))
        })?;
        if out.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                format!("the {name} body has no entities"),
            ));
        }
        return Ok(out);
    }
    let ndjson = is_ndjson(content_type);
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
    request_body(content = Object, description = "one JSON object, an array of objects, NDJSON (Content-Type: application/x-ndjson), CSV (text/csv) or XML (application/xml, text/xml)"),
    responses((status = 201, body = WebhookResult), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Path(incoming_id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<WebhookResult>)> {
    let incoming = state.config().incoming(&incoming_id);
    let (secret, max_age) = match state.engine.webhook(&incoming_id) {
        Some(w) => (w.secret.as_ref().map(|s| s.expose()), w.signature_max_age()),
        None => (None, None),
    };
    let admission = admit(&headers, secret, &caller, &incoming_id)?;
    // Only a caller known by now (an operator, or the secret) learns what exists.
    let incoming = incoming.ok_or_else(|| {
        let webhooks: Vec<&str> = state
            .config()
            .incoming
            .iter()
            .filter(|i| state.engine.webhook(i.id.as_str()).is_some())
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
    if state.engine.webhook(&incoming_id).is_none() {
        return Err(ApiError::conflict(
            "not_a_webhook",
            format!(
                "'{incoming_id}' is a {} subscriber; only webhook subscribers accept pushed entities",
                incoming.subscriber.kind
            ),
        ));
    }
    let bytes = body::limited(body, &headers, state.config().server.max_body_bytes).await?;
    if admission == Admission::Signed {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
        .unwrap_or(i64::MAX);
        let secret = secret.expect("admitted as signed: the webhook has a secret");
        if !signed(&headers, &bytes, secret, max_age, now) {
            return Err(refused(&incoming_id));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Counted before any entity is built: a refused call costs no more than its body.
    let most = state.config().server.max_entities_per_request;
    let count = count_entities(content_type, &bytes);
    if count > most {
        return Err(too_many(count, most));
    }
    let settings = state
        .engine
        .webhook(&incoming_id)
        .expect("checked above: a webhook");
    let entities = entities(content_type, &bytes, settings)?;
    drop(bytes);
    if entities.len() > most {
        return Err(too_many(entities.len(), most));
    }
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
                    .map(|r| {
                        let mut item = serde_json::json!({ "index": r.index, "route": r.route, "message": r.message });
                        if !r.violations.is_empty() {
                            item["violations"] = serde_json::json!(r.violations);
                        }
                        item
                    })
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
