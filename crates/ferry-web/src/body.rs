//! Reading request bodies with errors a person can act on.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is over the size limit (server.max_body_bytes); send fewer entities per request",
    )
}

/// Reads a body that a handler takes only once it knows the caller: at most `limit`
/// bytes (a `Content-Length` over it is refused before anything is read), else 413.
pub async fn limited(
    body: axum::body::Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // http-body-util's LengthLimitError, wrapped by axum.
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("the request body could not be read: {e}"),
            )
        }
    })
}

/// The raw body, or 413 when it is over the configured limit.
pub fn bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("the request body could not be read: {rejection}"),
            )
        }
    })
}

/// Parses a JSON body; an empty body is `None`.
pub fn json_opt<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON for this request: {e}"),
        )
    })
}

/// A required JSON body.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    json_opt(body)?.ok_or_else(|| {
        ApiError::bad_request(
            "empty_body",
            "the request needs a JSON body; see /api/v1/openapi.json for its fields",
        )
    })
}
