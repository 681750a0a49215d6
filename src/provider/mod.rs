//! SMS provider layer: the trait the send engine talks to, the Mitto
//! Messaging API client, and a Mitto-compatible simulator for tests, demos
//! and benchmarks.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod mitto;
pub mod simulator;

/// One message handed to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    /// Our message id, sent as Mitto's `reference`: its delivery reports and status lookups echo
    /// it, so a report names the message even when the send answer was lost.
    pub reference: String,
    /// E.164 with the leading '+'.
    pub destination: String,
    pub sender: String,
    pub text: String,
}

/// The provider's verdict on one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    Accepted {
        provider_id: String,
    },
    Rejected {
        /// The provider's own error code.
        code: String,
        message: String,
        /// The destination itself is unusable: the engine can mark the
        /// contact instead of retrying.
        invalid_number: bool,
    },
    /// The provider answered for the batch but not recognisably for this
    /// message: it may have been accepted, so it must not be sent again.
    Unknown {
        message: String,
    },
}

/// Why a whole call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Nothing in this call was accepted; safe to retry later.
    #[error("transient provider failure ({kind:?}): {message}")]
    Transient {
        kind: TransientKind,
        /// The provider's hint (e.g. `Retry-After`), when it gave one.
        retry_after: Option<Duration>,
        message: String,
    },
    /// The whole call was refused for a reason retrying cannot fix (bad API
    /// key, malformed request).
    #[error("provider refused the call ({code}): {message}")]
    Permanent { code: String, message: String },
    /// The request may have reached the provider but its answer did not
    /// reach us (a response timeout, a connection lost after the request was
    /// written, a 2xx answer none of whose results could be matched). The
    /// messages may have been accepted: never retried automatically, never
    /// charged (DESIGN.md §4).
    #[error("provider outcome unknown: {message}")]
    Unknown {
        message: String,
        /// No answer in time (the HTTP client's timeout), rather than a broken connection or an
        /// answer that could not be matched: only the metrics' error class tells them apart.
        timed_out: bool,
    },
}

/// Only failures where the request certainly did not reach the provider, or
/// the provider said it processed nothing, are transient; everything
/// ambiguous is `BatchError::Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransientKind {
    /// 429: the provider asked us to slow down.
    Throttled,
    /// A 5xx answer.
    ServerError,
    /// 408: the provider gave up waiting for our request.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS handshake,
    /// connect timeout): nothing was sent.
    Connection,
}

/// Boxed so the trait stays object safe (`Arc<dyn SmsProvider>`).
pub type BatchFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<SubmitOutcome>, BatchError>> + Send + 'a>>;

/// A provider the engine hands batches to. Results are in request order, one
/// per message.
pub trait SmsProvider: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Largest batch the engine should pass to `send_batch`.
    fn max_batch(&self) -> usize;
    fn send_batch<'a>(&'a self, batch: &'a [OutboundSms]) -> BatchFuture<'a>;
    /// The provider's current view of one message, in its own JSON (for Mitto, what its delivery
    /// reports carry too); `Ok(None)` when it does not know the id. Providers without a lookup
    /// say so with a permanent error.
    fn lookup<'a>(&'a self, provider_id: &'a str) -> LookupFuture<'a> {
        let _ = provider_id;
        Box::pin(async { Err(BatchError::Permanent { code: "unsupported".into(), message: "this provider has no status lookup".into() }) })
    }
}

/// Boxed like `BatchFuture`.
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, BatchError>> + Send + 'a>>;

/// A delivery report as the simulator posts it (and as the DLR webhook will
/// accept it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub reference: Option<String>,
    /// "Delivered" | "Undelivered" | "Expired" | "Rejected".
    #[serde(rename = "deliveryStatus")]
    pub delivery_status: String,
    pub destination: String,
    #[serde(rename = "trafficAccountId")]
    pub traffic_account_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    #[serde(rename = "messageParts")]
    pub message_parts: u32,
}

/// The header a provider's webhook calls carry the shared secret in. Mitto signs nothing: it sends
/// the custom headers chosen when the webhook was registered (`POST /api/v1/Webhooks`).
pub const WEBHOOK_SECRET_HEADER: &str = "X-Webhook-Secret";

/// reqwest is built without a default rustls crypto provider; install ring
/// once per process. Later calls (or a provider installed elsewhere) are fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_report_wire_names() {
        let r = DeliveryReport {
            message_id: "01ABC".into(),
            reference: Some("m1".into()),
            delivery_status: "Delivered".into(),
            destination: "+306900000000".into(),
            traffic_account_id: "ta".into(),
            timestamp: "2025-01-01T00:00:00.000Z".into(),
            message_parts: 1,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["messageId"], "01ABC");
        assert_eq!(v["deliveryStatus"], "Delivered");
        assert_eq!(v["trafficAccountId"], "ta");
        assert_eq!(v["messageParts"], 1);
        let back: DeliveryReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
