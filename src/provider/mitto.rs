//! Client for Mitto's Messaging API (`messaging.mittoapi.com`), bulk send with
//! per-recipient texts.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{BatchError, BatchFuture, LookupFuture, OutboundSms, SmsProvider, SubmitOutcome, TransientKind};

/// Error code Mitto (and the simulator) give a destination that is not a
/// valid number.
pub const INVALID_DESTINATION: &str = "InvalidDestination";

const API_KEY_HEADER: &str = "X-Mitto-API-Key";
/// The trigger names webhooks are registered under (`register_webhook`). Mitto's trigger list is
/// not published: these are ours and the simulator's until a deployment confirms Mitto's.
pub const REPORT_TRIGGER: &str = "MessageStatus";
pub const INBOUND_TRIGGER: &str = "InboundMessage";
const DEFAULT_BASE_URL: &str = "https://messaging.mittoapi.com";
/// Cap on how much of an error body ends up in our messages and logs.
const MAX_ERROR_TEXT: usize = 500;

#[derive(Clone)]
pub struct MittoConfig {
    pub base_url: String,
    pub api_key: String,
    pub traffic_account_id: String,
    /// Messages per `sendmessagesbulk` call.
    pub bulk_size: usize,
    /// Both the connect timeout and the whole-request timeout.
    pub timeout: Duration,
}

impl Default for MittoConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: String::new(),
            traffic_account_id: String::new(),
            bulk_size: 1000,
            timeout: Duration::from_secs(30),
        }
    }
}

// Hand-written so the API key never lands in logs.
impl fmt::Debug for MittoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MittoConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("traffic_account_id", &self.traffic_account_id)
            .field("bulk_size", &self.bulk_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct MittoClient {
    http: reqwest::Client,
    api_key: HeaderValue,
    traffic_account_id: String,
    bulk_size: usize,
    bulk_url: Url,
    messages_url: Url,
    webhooks_url: Url,
}

impl fmt::Debug for MittoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MittoClient")
            .field("bulk_url", &self.bulk_url.as_str())
            .field("traffic_account_id", &self.traffic_account_id)
            .field("bulk_size", &self.bulk_size)
            .finish_non_exhaustive()
    }
}

impl MittoClient {
    /// Validates the config up front so a bad base URL or API key fails at
    /// startup rather than on the first batch.
    pub fn new(cfg: MittoConfig) -> Result<Self, String> {
        super::install_crypto_provider();
        if cfg.bulk_size == 0 {
            return Err("mitto bulk_size must be at least 1".into());
        }
        if cfg.api_key.is_empty() {
            return Err("mitto api_key is empty".into());
        }
        let mut api_key =
            HeaderValue::from_str(&cfg.api_key).map_err(|_| "mitto api_key contains characters not allowed in a header".to_owned())?;
        api_key.set_sensitive(true);

        let base = Url::parse(cfg.base_url.trim_end_matches('/')).map_err(|e| format!("invalid mitto base_url {:?}: {e}", cfg.base_url))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(format!("invalid mitto base_url {:?}", cfg.base_url));
        }
        let messages_url = join(&base, &["api", "v1.1", "Messages"]);
        let bulk_url = join(&messages_url, &["sendmessagesbulk"]);
        let webhooks_url = join(&base, &["api", "v1", "Webhooks"]);

        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            // A redirect on an API POST means a misconfigured base URL;
            // following it would silently turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building mitto http client: {e}"))?;

        Ok(Self {
            http,
            api_key,
            traffic_account_id: cfg.traffic_account_id,
            bulk_size: cfg.bulk_size,
            bulk_url,
            messages_url,
            webhooks_url,
        })
    }

    /// `GET /api/v1.1/Messages/{messageId}`: the provider's view of one
    /// message (for reconciling messages whose DLR never came).
    pub async fn message_status(&self, provider_id: &str) -> Result<serde_json::Value, BatchError> {
        let url = join(&self.messages_url, &[provider_id]);
        let resp = self.http.get(url).header(API_KEY_HEADER, self.api_key.clone()).send().await.map_err(map_reqwest_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(map_reqwest_error)?;
        if status == StatusCode::NOT_FOUND {
            return Err(BatchError::Permanent {
                code: "not_found".into(),
                message: format!("message {provider_id} not found at provider"),
            });
        }
        if !status.is_success() {
            return Err(status_error(status, &headers, &body));
        }
        serde_json::from_slice(&body).map_err(|e| BatchError::Transient {
            kind: TransientKind::ServerError,
            retry_after: None,
            message: format!("unparsable status response: {e}"),
        })
    }

    /// `POST /api/v1/Webhooks`: asks Mitto to call `url` on `triggers`, attaching `headers` (how
    /// Mitto authenticates its webhook calls: it signs nothing), for this client's traffic account.
    pub async fn register_webhook(
        &self,
        url: &str,
        description: &str,
        triggers: &[&str],
        headers: &[(&str, &str)],
    ) -> Result<serde_json::Value, BatchError> {
        let headers: serde_json::Map<String, serde_json::Value> =
            headers.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::String((*v).to_string()))).collect();
        let body = serde_json::json!({
            "url": url, "description": description, "webhookTriggers": triggers, "headers": headers,
            "linkTrafficAccountIds": [self.traffic_account_id],
        });
        let resp = self
            .http
            .post(self.webhooks_url.clone())
            .header(API_KEY_HEADER, self.api_key.clone())
            .json(&body)
            .send()
            .await
            .map_err(map_reqwest_error)?;
        let status = resp.status();
        let resp_headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(map_reqwest_error)?;
        if !status.is_success() {
            return Err(status_error(status, &resp_headers, &bytes));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    async fn send_bulk(&self, batch: &[OutboundSms]) -> Result<Vec<SubmitOutcome>, BatchError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let request = BulkRequest {
            messages: batch
                .iter()
                .map(|m| RequestMessage {
                    traffic_account_id: &self.traffic_account_id,
                    destination: &m.destination,
                    sms: RequestSms { text: &m.text, sender: &m.sender },
                    reference: &m.reference,
                })
                .collect(),
        };
        let resp = self
            .http
            .post(self.bulk_url.clone())
            .header(API_KEY_HEADER, self.api_key.clone())
            .json(&request)
            .send()
            .await
            .map_err(map_reqwest_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(body) => body,
            // A 2xx whose body was lost: the messages may well be accepted.
            Err(e) if status.is_success() => return Err(BatchError::Unknown { message: error_chain(&e), timed_out: e.is_timeout() }),
            Err(_) => Default::default(),
        };
        if !status.is_success() {
            return Err(status_error(status, &headers, &body));
        }
        map_bulk_response(batch, &body)
    }
}

impl SmsProvider for MittoClient {
    fn name(&self) -> &str {
        "mitto"
    }

    fn max_batch(&self) -> usize {
        self.bulk_size
    }

    fn send_batch<'a>(&'a self, batch: &'a [OutboundSms]) -> BatchFuture<'a> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = self.send_bulk(batch).await;
            crate::telemetry::provider_call("mitto", "send", started.elapsed(), &result);
            if let Ok(outcomes) = &result {
                crate::telemetry::provider_rejected("mitto", outcomes);
            }
            result
        })
    }

    fn lookup<'a>(&'a self, provider_id: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = match self.message_status(provider_id).await {
                Ok(v) => Ok(Some(v)),
                Err(BatchError::Permanent { code, .. }) if code == "not_found" => Ok(None),
                Err(e) => Err(e),
            };
            crate::telemetry::provider_call("mitto", "lookup", started.elapsed(), &result);
            result
        })
    }
}

/// Appends path segments, percent-encoding each (a provider id is opaque to
/// us and must not be able to change the path).
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[derive(Serialize)]
struct BulkRequest<'a> {
    messages: Vec<RequestMessage<'a>>,
}

#[derive(Serialize)]
struct RequestMessage<'a> {
    #[serde(rename = "trafficAccountId")]
    traffic_account_id: &'a str,
    destination: &'a str,
    sms: RequestSms<'a>,
    reference: &'a str,
}

#[derive(Serialize)]
struct RequestSms<'a> {
    text: &'a str,
    sender: &'a str,
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(rename = "bulkId", default)]
    bulk_id: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ResultItem>>,
}

#[derive(Deserialize)]
struct ResultItem {
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

/// Turns a 2xx bulk response into one outcome per request item, by position: Mitto's answer
/// echoes neither the destination nor (documentedly) the reference. An answer that cannot be
/// lined up with the request — unreadable, without `messages`, with a different number of
/// results, or echoing a reference that is not the one sent at that position — makes the whole
/// batch `BatchError::Unknown`: Mitto may have accepted any of it, so none of it is sent again.
fn map_bulk_response(batch: &[OutboundSms], body: &[u8]) -> Result<Vec<SubmitOutcome>, BatchError> {
    let unknown = |why: String| BatchError::Unknown { message: format!("unmatchable 2xx answer from mitto: {why}"), timed_out: false };
    let parsed: BulkResponse = serde_json::from_slice(body).map_err(|e| unknown(format!("{e}; body: {}", snippet(body))))?;
    let Some(items) = parsed.messages else {
        return Err(unknown(format!("no messages array; body: {}", snippet(body))));
    };
    if parsed.bulk_id.is_none() {
        tracing::debug!("mitto bulk response without bulkId");
    }
    if items.len() != batch.len() {
        return Err(unknown(format!("{} results for {} messages", items.len(), batch.len())));
    }
    if let Some(i) =
        items.iter().zip(batch).position(|(item, m)| item.reference.as_deref().is_some_and(|r| !r.is_empty() && r != m.reference))
    {
        return Err(unknown(format!("result {i} names another message than the one sent at that position")));
    }
    Ok(items.into_iter().map(outcome).collect())
}

fn outcome(item: ResultItem) -> SubmitOutcome {
    if let Some(id) = item.message_id.filter(|id| !id.is_empty()) {
        return SubmitOutcome::Accepted { provider_id: id };
    }
    let err = item.error.unwrap_or_default();
    let code = match err.code {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Null) | None => "no_message_id".to_owned(),
        // Some APIs send numeric codes; keep them as text.
        Some(other) => other.to_string(),
    };
    SubmitOutcome::Rejected {
        invalid_number: code == INVALID_DESTINATION,
        message: err.message.unwrap_or_else(|| "provider returned no messageId".to_owned()),
        code,
    }
}

fn map_reqwest_error(e: reqwest::Error) -> BatchError {
    if e.is_builder() {
        return BatchError::Permanent { code: "invalid_request".into(), message: e.to_string() };
    }
    if e.is_connect() {
        // No connection (refused, DNS, TLS handshake, connect timeout): the
        // request never left, so sending it again is safe.
        return BatchError::Transient { kind: TransientKind::Connection, retry_after: None, message: error_chain(&e) };
    }
    // A response timeout, a reset or a truncated answer after the request
    // was (perhaps) written: the provider may have accepted it.
    BatchError::Unknown { message: error_chain(&e), timed_out: e.is_timeout() }
}

/// reqwest's Display omits the cause ("error sending request"); the chain
/// says whether it was a refusal, a reset or a DNS failure.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn status_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> BatchError {
    let (body_code, body_message) = error_fields(body);
    let message = format!("HTTP {}: {}", status.as_u16(), body_message.unwrap_or_else(|| snippet(body)));
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            BatchError::Transient { kind: TransientKind::Throttled, retry_after: retry_after(headers), message }
        }
        // 408 says the server gave up waiting for us: nothing was processed.
        StatusCode::REQUEST_TIMEOUT => BatchError::Transient { kind: TransientKind::Timeout, retry_after: None, message },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BatchError::Permanent { code: "unauthorized".into(), message },
        s if s.is_server_error() => BatchError::Transient { kind: TransientKind::ServerError, retry_after: retry_after(headers), message },
        s if s.is_client_error() => BatchError::Permanent { code: body_code.unwrap_or_else(|| format!("http_{}", s.as_u16())), message },
        // Redirects (not followed) and other oddities: a retry will see the
        // same answer.
        s => BatchError::Permanent { code: format!("unexpected_status_{}", s.as_u16()), message },
    }
}

/// Only the delta-seconds form; an HTTP-date is rare for APIs and the caller
/// has its own backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Pulls a code and message out of the usual error body shapes:
/// `{"error":{"code","message"}}`, `{"code","message"}`, or ASP.NET's
/// problem details `{"title","errors"}`.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let inner = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
    let code = inner.get("code").and_then(as_text);
    let mut message = inner
        .get("message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("title"))
        .and_then(as_text)
        .or_else(|| v.get("error").and_then(as_text));
    if let (Some(m), Some(errors)) = (&mut message, v.get("errors").filter(|e| e.is_object())) {
        m.push_str(&format!(" {errors}"));
    }
    (code, message.map(|m| truncate(&m)))
}

fn snippet(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty body>".into();
    }
    truncate(&String::from_utf8_lossy(body))
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::provider::simulator::{Simulator, SimulatorConfig, Stats};

    fn sms(reference: &str, destination: &str) -> OutboundSms {
        OutboundSms {
            reference: reference.into(),
            destination: destination.into(),
            sender: "Shop".into(),
            text: format!("hello {reference}"),
        }
    }

    async fn start(cfg: SimulatorConfig) -> (Arc<Simulator>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sim = Simulator::new(cfg);
        tokio::spawn(sim.clone().serve(listener));
        (sim, url)
    }

    fn client(base_url: &str, api_key: &str, timeout: Duration) -> MittoClient {
        MittoClient::new(MittoConfig {
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            traffic_account_id: "ta-1".into(),
            bulk_size: 1000,
            timeout,
        })
        .unwrap()
    }

    fn transient_kind(r: Result<Vec<SubmitOutcome>, BatchError>) -> (TransientKind, Option<Duration>) {
        match r {
            Err(BatchError::Transient { kind, retry_after, .. }) => (kind, retry_after),
            other => panic!("expected a transient error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn batch_with_invalid_number() {
        let (sim, url) = start(SimulatorConfig::default()).await;
        let c = client(&url, "key", Duration::from_secs(5));
        assert_eq!(c.name(), "mitto");
        assert_eq!(c.max_batch(), 1000);
        let batch = [sms("a", "+306912345678"), sms("b", "6912345678"), sms("c", "+14155550100")];
        let out = c.send_batch(&batch).await.unwrap();
        assert_eq!(out.len(), 3);
        assert!(matches!(&out[0], SubmitOutcome::Accepted { provider_id } if provider_id.len() == 26));
        assert!(matches!(
            &out[1],
            SubmitOutcome::Rejected { code, invalid_number: true, .. } if code == INVALID_DESTINATION
        ));
        assert!(matches!(&out[2], SubmitOutcome::Accepted { .. }));
        assert_ne!(out[0], out[2]);
        assert_eq!(sim.stats(), Stats { accepted: 2, unique_references: 2, duplicate_references: 0, rejected: 1 });
    }

    #[tokio::test]
    async fn duplicate_references_are_counted() {
        let (sim, url) = start(SimulatorConfig::default()).await;
        let c = client(&url, "key", Duration::from_secs(5));
        let batch = [sms("r1", "+306912345678"), sms("r2", "+306912345679")];
        c.send_batch(&batch).await.unwrap();
        let again = c.send_batch(&batch[..1]).await.unwrap();
        assert!(matches!(&again[0], SubmitOutcome::Accepted { .. }));
        let s = sim.stats();
        assert_eq!(s.accepted, 3);
        assert_eq!(s.unique_references, 2);
        assert_eq!(s.duplicate_references, 1);
        assert_eq!(s.rejected, 0);
    }

    #[tokio::test]
    async fn wrong_api_key_is_permanent() {
        let (sim, url) = start(SimulatorConfig { api_key: Some("right".into()), ..Default::default() }).await;
        let c = client(&url, "wrong", Duration::from_secs(5));
        let err = c.send_batch(&[sms("a", "+306912345678")]).await.unwrap_err();
        assert!(matches!(&err, BatchError::Permanent { code, .. } if code == "unauthorized"), "{err:?}");
        let ok = client(&url, "right", Duration::from_secs(5));
        assert!(ok.send_batch(&[sms("a", "+306912345678")]).await.is_ok());
        assert_eq!(sim.stats().accepted, 1);
    }

    #[tokio::test]
    async fn server_error_accepts_nothing() {
        let (sim, url) = start(SimulatorConfig { error_rate: 1.0, ..Default::default() }).await;
        let c = client(&url, "key", Duration::from_secs(5));
        let batch = [sms("a", "+306912345678")];
        let (kind, _) = transient_kind(c.send_batch(&batch).await);
        assert_eq!(kind, TransientKind::ServerError);
        assert_eq!(sim.stats().accepted, 0);

        // Faults can be switched off at runtime.
        sim.set_config(SimulatorConfig::default());
        assert!(c.send_batch(&batch).await.is_ok());
        assert_eq!(sim.stats().accepted, 1);
    }

    #[tokio::test]
    async fn throttled_carries_retry_after() {
        let (sim, url) = start(SimulatorConfig { throttle_rate: 1.0, ..Default::default() }).await;
        let c = client(&url, "key", Duration::from_secs(5));
        let (kind, retry_after) = transient_kind(c.send_batch(&[sms("a", "+306912345678")]).await);
        assert_eq!(kind, TransientKind::Throttled);
        assert_eq!(retry_after, Some(Duration::from_secs(1)));
        assert_eq!(sim.stats().accepted, 0);
    }

    /// A response timeout is ambiguous (issue 12 reversed the rule that retried it): here the
    /// simulator accepted nothing, but with `accept_then_timeout_rate` it accepted everything, and
    /// the client cannot tell the two apart.
    #[tokio::test]
    async fn response_timeouts_are_unknown_outcomes() {
        let (sim, url) = start(SimulatorConfig { timeout_rate: 1.0, timeout_hang_ms: 2000, ..Default::default() }).await;
        let c = client(&url, "key", Duration::from_millis(200));
        let r = c.send_batch(&[sms("a", "+306912345678")]).await;
        assert!(matches!(r, Err(BatchError::Unknown { timed_out: true, .. })), "{r:?}");
        assert_eq!(sim.stats(), Stats::default());
        sim.set_config(SimulatorConfig { accept_then_timeout_rate: 1.0, timeout_hang_ms: 2000, ..Default::default() });
        let r = c.send_batch(&[sms("b", "+306912345678")]).await;
        assert!(matches!(r, Err(BatchError::Unknown { timed_out: true, .. })), "{r:?}");
        assert_eq!(sim.stats().accepted, 1, "accepted, though the client never heard");
    }

    #[tokio::test]
    async fn refused_connection_is_transient() {
        // Bind then drop to get a port nobody listens on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = client(&format!("http://{addr}"), "key", Duration::from_secs(2));
        let (kind, _) = transient_kind(c.send_batch(&[sms("a", "+306912345678")]).await);
        assert_eq!(kind, TransientKind::Connection);
    }

    #[tokio::test]
    async fn per_message_failures_and_status() {
        let (sim, url) = start(SimulatorConfig { fail_rate: 1.0, ..Default::default() }).await;
        let c = client(&url, "key", Duration::from_secs(5));
        let mut empty = sms("e", "+306912345678");
        empty.text.clear();
        let out = c.send_batch(&[sms("a", "+306912345678"), empty]).await.unwrap();
        assert!(matches!(&out[0], SubmitOutcome::Rejected { code, invalid_number: false, .. } if code == "Rejected"));
        assert!(matches!(&out[1], SubmitOutcome::Rejected { code, .. } if code == "EmptyText"));
        assert_eq!(sim.stats().rejected, 2);

        sim.set_config(SimulatorConfig::default());
        let out = c.send_batch(&[sms("s", "+306912345678")]).await.unwrap();
        let SubmitOutcome::Accepted { provider_id } = &out[0] else {
            panic!("expected acceptance, got {out:?}");
        };
        let status = c.message_status(provider_id).await.unwrap();
        assert_eq!(status["text"], "hello s");
        assert_eq!(status["messageId"], provider_id.as_str());
        assert_eq!(status["reference"], "s");
        assert_eq!(status["trafficAccountId"], "ta-1");
        assert_eq!(status["messageParts"], 1);

        let missing = c.message_status("01ZZZZZZZZZZZZZZZZZZZZZZZZ").await.unwrap_err();
        assert!(matches!(&missing, BatchError::Permanent { code, .. } if code == "not_found"));
        // Slashes in an id must not escape the Messages/ path.
        let odd = c.message_status("../../stats").await.unwrap_err();
        assert!(matches!(&odd, BatchError::Permanent { code, .. } if code == "not_found"));
    }

    #[test]
    fn new_rejects_bad_config() {
        let ok = MittoConfig { base_url: "http://127.0.0.1:1/".into(), api_key: "k".into(), ..Default::default() };
        let c = MittoClient::new(ok.clone()).unwrap();
        assert_eq!(c.bulk_url.as_str(), "http://127.0.0.1:1/api/v1.1/Messages/sendmessagesbulk");
        assert!(!format!("{ok:?}").contains("\"k\""));
        assert!(MittoClient::new(MittoConfig { base_url: "not a url".into(), ..ok.clone() }).is_err());
        assert!(MittoClient::new(MittoConfig { api_key: "bad\nkey".into(), ..ok.clone() }).is_err());
        assert!(MittoClient::new(MittoConfig { api_key: String::new(), ..ok.clone() }).is_err());
        assert!(MittoClient::new(MittoConfig { bulk_size: 0, ..ok }).is_err());
    }

    #[test]
    fn base_url_with_path_prefix() {
        let c = MittoClient::new(MittoConfig { base_url: "https://gw.example/mitto".into(), api_key: "k".into(), ..Default::default() })
            .unwrap();
        assert_eq!(c.bulk_url.as_str(), "https://gw.example/mitto/api/v1.1/Messages/sendmessagesbulk");
    }

    #[test]
    fn results_map_by_position() {
        let batch = [sms("a", "+1"), sms("b", "+2"), sms("c", "+3")];
        let body = br#"{"bulkId":"B","messages":[{"messageId":"x"},{"error":{"code":42}},{"messageId":"z","reference":"c"}]}"#;
        let out = map_bulk_response(&batch, body).unwrap();
        assert_eq!(out[0], SubmitOutcome::Accepted { provider_id: "x".into() });
        assert!(matches!(&out[1], SubmitOutcome::Rejected { code, invalid_number: false, .. } if code == "42"));
        assert_eq!(out[2], SubmitOutcome::Accepted { provider_id: "z".into() });
        let body = br#"{"messages":[{"reference":"a","error":{"code":"InvalidDestination","message":"bad"}},{"messageId":"y"},{"messageId":"z"}]}"#;
        let out = map_bulk_response(&batch, body).unwrap();
        assert!(matches!(&out[0], SubmitOutcome::Rejected { invalid_number: true, message, .. } if message == "bad"));
    }

    #[test]
    fn duplicate_references_match_in_order() {
        let batch = [sms("a", "+1"), sms("a", "+2")];
        let body = br#"{"bulkId":"B","messages":[{"messageId":"1","reference":"a"},{"messageId":"2","reference":"a"}]}"#;
        let out = map_bulk_response(&batch, body).unwrap();
        assert_eq!(out[0], SubmitOutcome::Accepted { provider_id: "1".into() });
        assert_eq!(out[1], SubmitOutcome::Accepted { provider_id: "2".into() });
    }

    /// Anything that cannot be lined up by position makes the whole batch unknown (never retried,
    /// never failed: Mitto may have accepted it).
    #[test]
    fn unmatchable_answers_make_the_batch_unknown() {
        let batch = [sms("a", "+1"), sms("b", "+2")];
        for body in [
            &b"<html>bad gateway</html>"[..],
            br#"{"bulkId":"B"}"#,
            br#"{"bulkId":"B","messages":[]}"#,
            br#"{"bulkId":"B","messages":[{"messageId":"x"}]}"#,
            br#"{"bulkId":"B","messages":[{"messageId":"x"},{"messageId":"y"},{"messageId":"z"}]}"#,
            br#"{"bulkId":"B","messages":[{"messageId":"y","reference":"b"},{"messageId":"x","reference":"a"}]}"#,
        ] {
            let err = map_bulk_response(&batch, body).unwrap_err();
            assert!(matches!(err, BatchError::Unknown { .. }), "{err:?}");
        }
    }

    #[test]
    fn status_mapping() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let body = br#"{"error":{"code":"BadSender","message":"sender too long"}}"#;
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            BatchError::Transient {
                kind: TransientKind::Throttled,
                retry_after: Some(Duration::from_secs(7)),
                message: "HTTP 429: <empty body>".into()
            }
        );
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"x"),
            BatchError::Transient { kind: TransientKind::ServerError, retry_after: None, .. }
        ));
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, &HeaderMap::new(), b""),
            BatchError::Permanent { code, .. } if code == "unauthorized"
        ));
        assert_eq!(
            status_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), body),
            BatchError::Permanent { code: "BadSender".into(), message: "HTTP 400: sender too long".into() }
        );
        let problem = br#"{"title":"One or more validation errors occurred.","errors":{"sms.text":["required"]}}"#;
        let BatchError::Permanent { code, message } = status_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), problem) else {
            panic!("expected permanent");
        };
        assert_eq!(code, "http_400");
        assert!(message.contains("validation errors") && message.contains("sms.text"), "{message}");
        let mut date = HeaderMap::new();
        date.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn long_error_bodies_are_truncated() {
        let long = "é".repeat(1000);
        let t = truncate(&long);
        assert!(t.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(t.ends_with('…'));
    }
}
