//! Provider webhooks: `POST /webhooks/mitto/dlr` (delivery reports).
//!
//! Mitto signs nothing; it sends the custom headers chosen when the webhook was registered. So the
//! shared secret travels in `X-Webhook-Secret` and is compared in constant time against each
//! configured secret (two may be active while one is rotated). With no secret configured the
//! endpoint refuses everything. The header is checked before the body is read.

use super::AppState;
use super::error::ApiResult;
use crate::domain::delivery::parse_report;
use crate::domain::{Error, Kind};
use crate::store::delivery::{self, Incoming};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::provider::WEBHOOK_SECRET_HEADER as SECRET_HEADER;
/// Largest report body accepted: a hundred reports are about 30 KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most reports in one request.
pub const MAX_REPORTS: usize = 5_000;
/// Most secrets active at once: the current one and the one being rotated out.
pub const MAX_SECRETS: usize = 2;

/// The configured webhook secrets. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct WebhookSecrets(Vec<String>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} configured)", self.0.len())
    }
}

impl WebhookSecrets {
    /// Empty values are dropped; more than `MAX_SECRETS`, or one shorter than 16 characters, is a
    /// configuration error.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Result<WebhookSecrets, String> {
        let list: Vec<String> = secrets.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if list.len() > MAX_SECRETS {
            return Err(format!("at most {MAX_SECRETS} webhook secrets may be active at once (got {})", list.len()));
        }
        if list.iter().any(|s| s.len() < 16) {
            return Err("a webhook secret must be at least 16 characters long".into());
        }
        Ok(WebhookSecrets(list))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first (current) secret: what the simulator and `mitto register-webhooks` send.
    pub fn current(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    /// Whether `given` is one of the secrets. Every secret is compared, each in constant time
    /// (digests of equal length), so the answer's timing says nothing about which or how close.
    pub fn accepts(&self, given: &str) -> bool {
        let given = Sha256::digest(given.as_bytes());
        self.0.iter().fold(false, |ok, s| {
            let want = Sha256::digest(s.as_bytes());
            let diff = want.iter().zip(given.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            ok | (diff == 0)
        })
    }
}

pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    let secrets = &state.settings.webhook_secrets;
    if secrets.is_empty() {
        return Err(Error::new(
            Kind::Unauthorized,
            "webhooks_disabled",
            "Webhooks are off: no webhook secret is configured (--mitto-webhook-secret).",
        ));
    }
    let Some(given) = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Error::new(Kind::Unauthorized, "unauthorized", format!("The {SECRET_HEADER} header is missing.")));
    };
    if !secrets.accepts(given) {
        return Err(Error::new(Kind::Unauthorized, "invalid_webhook_secret", format!("The {SECRET_HEADER} header is not valid.")));
    }
    Ok(())
}

/// `POST /webhooks/mitto/dlr`: one report object or an array of them. All are stored and applied
/// in one transaction, or — if any is malformed — none (400 naming the report and the field).
#[utoipa::path(
    post,
    path = "/webhooks/mitto/dlr",
    tag = "webhooks",
    operation_id = "mitto_dlr",
    summary = "Delivery reports from the provider",
    security(("webhook_secret" = [])),
    request_body(content = Object, description = "One report object or an array of up to 5,000 (`messageId`, `deliveryStatus`, `updatedAt`, …).", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::DlrResult),
        (status = 400, response = crate::http::api::openapi::BadRequest),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 413, response = crate::http::api::openapi::PayloadTooLarge)
    )
)]
pub async fn mitto_dlr(State(state): State<Arc<AppState>>, req: Request) -> ApiResult<Json<Value>> {
    authorize(&state, req.headers())?;
    // An announced length over the limit was refused before this ran (`super::body_limit`).
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|_| super::body_too_large(MAX_BODY_BYTES))?;
    let incoming = parse_body(&body)?;
    let done = delivery::ingest(&state.db, &incoming, state.clock.now_ms()).await?;
    Ok(Json(json!({"ok": true, "received": done.received, "applied": done.applied, "parked": done.parked, "ignored": done.ignored})))
}

fn parse_body(body: &[u8]) -> Result<Vec<Incoming>, Error> {
    let bad = |message: String, details: Value| Error::new(Kind::BadRequest, "invalid_report", message).with_details(details);
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("The body is not valid JSON: {e}"), json!({})))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        _ => return Err(bad("Send one report object or an array of them.".into(), json!({}))),
    };
    if items.len() > MAX_REPORTS {
        return Err(bad(format!("At most {MAX_REPORTS} reports per request."), json!({"max_reports": MAX_REPORTS})));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match parse_report(&v) {
            Ok(report) => Ok(Incoming { report, body: v.to_string() }),
            Err(why) => Err(bad(format!("Report {i}: {why}."), json!({"index": i}))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        assert!(WebhookSecrets::new(["a".repeat(16), "b".repeat(16), "c".repeat(16)].map(String::from)).is_err());
        assert!(WebhookSecrets::new(["short".to_string()]).is_err());
        let s = WebhookSecrets::new(["a".repeat(16), String::new(), "b".repeat(20)]).unwrap();
        assert!(s.accepts(&"a".repeat(16)) && s.accepts(&"b".repeat(20)));
        assert!(!s.accepts(&"a".repeat(15)) && !s.accepts("") && !s.accepts(&"b".repeat(21)));
        assert_eq!(s.current(), Some("a".repeat(16).as_str()));
        assert!(!format!("{s:?}").contains("aaaa"));
        assert!(WebhookSecrets::new(Vec::new()).unwrap().is_empty());
    }

    use proptest::prelude::*;

    proptest! {
        /// Any body is a list of reports or a 400 naming what is wrong; never a crash, never a
        /// partial list.
        #[test]
        fn any_body_is_reports_or_a_400(
            doc in crate::domain::fuzz::json_value(&["messageId", "id", "reference", "deliveryStatus", "status", "updatedAt", "timestamp", "error"]),
            bytes in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            for body in [serde_json::to_vec(&doc).unwrap(), bytes] {
                match parse_body(&body) {
                    Ok(reports) => {
                        let n = match serde_json::from_slice::<Value>(&body).unwrap() {
                            Value::Array(a) => a.len(),
                            _ => 1,
                        };
                        prop_assert_eq!(reports.len(), n);
                    }
                    Err(e) => prop_assert_eq!((e.kind, e.code.as_ref()), (Kind::BadRequest, "invalid_report")),
                }
            }
        }
    }
}
