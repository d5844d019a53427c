//! API errors.
//!
//! Policy: every failure the client can fix is a 4xx whose message says what to change
//! (400 malformed, 404 unknown, 409 not allowed in the current status, 413 too large,
//! 422 well-formed but invalid, 429 throttled; 503 with `Retry-After` when the store
//! cannot be had in time). A 500 is only ever our fault: its cause chain goes to
//! the log and the client gets a generic message, never internals. Bad input never
//! produces a 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Boxed: a `Value` (an insertion-ordered map) would make every `Result<_, ApiError>`
    /// large.
    pub details: Option<Box<Value>>,
    /// Seconds to send as `Retry-After` (a busy store: 503).
    pub retry_after: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `task_not_eligible`.
    pub code: String,
    /// What went wrong and what to do, for a person.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(Box::new(details));
        self
    }

    /// 503 with `Retry-After`: ferry is well but cannot serve this request now (the
    /// store's connections are all taken, for example by a large delivery).
    pub fn busy(message: impl Into<String>, retry_after: u32) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message);
        e.retry_after = Some(retry_after);
        e
    }

    /// Logs `cause` with its chain and answers a generic 500.
    pub fn internal(cause: &dyn std::error::Error) -> ApiError {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "ferry could not complete the request because of an internal error; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details.map(|d| *d),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<ferry_store::StoreError> for ApiError {
    fn from(e: ferry_store::StoreError) -> ApiError {
        if e.is_busy() {
            tracing::warn!(error = %e, "a request could not get the store in time");
            return ApiError::busy(
                "ferry's store is busy (every connection is in use, perhaps by a large delivery); try again in a few seconds",
                5,
            );
        }
        if e.is_unstorable_text() {
            return ApiError::bad_request(
                "invalid_text",
                "a value in the request holds a NUL character (\\u0000), which ferry cannot store; send it without one",
            );
        }
        ApiError::internal(&e)
    }
}

impl From<ferry_core::filter::FilterError> for ApiError {
    fn from(e: ferry_core::filter::FilterError) -> ApiError {
        ApiError::bad_request("invalid_parameter", e.to_string())
            .with_details(serde_json::json!({ "parameter": e.parameter }))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
