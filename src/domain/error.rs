//! The one error shape of the whole product (DESIGN.md §7). Every layer returns `Error`; the HTTP
//! layer only maps `Kind` to a status code.

use serde_json::{Value, json};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthorized,
    PaymentRequired,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    TooManyRequests,
    Internal,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Value,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The codes callers branch on (`Error::is`); every other code is only shown to the client.
pub mod code {
    /// The object's status does not allow the action (a second start, a pause of a sent campaign).
    pub const INVALID_STATE: &str = "invalid_state";
    /// An audience names a segment that does not exist.
    pub const UNKNOWN_SEGMENT: &str = "unknown_segment";
}

impl Error {
    pub fn new(kind: Kind, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error { kind, code: code.into(), message: message.into(), details: json!({}) }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 422: the request was well-formed but a value is not acceptable.
    pub fn invalid(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::new(Kind::Unprocessable, code, message)
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Error::new(Kind::Unprocessable, "invalid_field", message).with_details(json!({ "field": field }))
    }

    /// 404 for missing objects and for other stores' objects alike: no existence oracle.
    pub fn not_found(what: &str) -> Self {
        Error::new(Kind::NotFound, "not_found", format!("No {what} with that id exists."))
    }

    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::new(Kind::Conflict, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::new(Kind::Unauthorized, "unauthorized", message)
    }

    /// Internal errors keep their cause for the log only; clients see a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::new(Kind::Internal, "internal", cause.to_string())
    }

    /// Whether this is the error `code` (one of `error::code`).
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }

    /// Whether the caller can fix the problem by changing the request or their data.
    pub fn actionable(&self) -> bool {
        !matches!(self.kind, Kind::Internal)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}
