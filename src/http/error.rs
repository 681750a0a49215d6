//! Turning `domain::Error` into the one JSON error shape, with request ids for internal errors.

use crate::domain::{Error, Kind};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::BadRequest => StatusCode::BAD_REQUEST,
        Kind::Unauthorized => StatusCode::UNAUTHORIZED,
        Kind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Wrapper so handlers can `?` domain errors into responses.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

pub fn error_response(e: Error) -> Response {
    let status = status_of(e.kind);
    let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
    let body = if e.kind == Kind::Internal {
        // The cause goes to the log with the request id; the client gets only the id.
        tracing::error!(request_id = %request_id, error = %e.message, "internal error");
        json!({
            "ok": false,
            "code": "internal",
            "message": "Something went wrong on our side. Please try again; if it keeps happening, contact support with the request id.",
            "details": {"request_id": request_id},
            "actionable": false,
        })
    } else {
        json!({"ok": false, "code": e.code, "message": e.message, "details": e.details, "actionable": e.actionable()})
    };
    let mut res = (status, axum::Json(body)).into_response();
    // A refusal that passes tells the client when to come back, in the header clients know.
    if matches!(e.kind, Kind::TooManyRequests | Kind::Unavailable)
        && let Some(secs) = e.details.get("retry_after").and_then(serde_json::Value::as_u64)
    {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    res
}

pub type ApiResult<T> = Result<T, ApiError>;
