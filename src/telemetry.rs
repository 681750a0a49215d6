//! Metrics for the operator's Prometheus (`GET /metrics`; README, "Running it"). Counters and
//! histograms go through the `metrics` facade into one Prometheus recorder per process; figures
//! that live in the database (queue depth, credit holds) are read when scraped, so every `serve`
//! node reports the whole installation's queue whichever process does the sending.

use crate::provider::{BatchError, SubmitOutcome, TransientKind};
use crate::store::queue::Outcome;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "smscast_http_requests_total";
pub const HTTP_SECONDS: &str = "smscast_http_request_duration_seconds";
pub const ENGINE_CLAIMED: &str = "smscast_engine_claimed_messages_total";
pub const ENGINE_MESSAGES: &str = "smscast_engine_messages_total";
pub const ENGINE_REAPED: &str = "smscast_engine_reaped_messages_total";
pub const ENGINE_ERRORS: &str = "smscast_engine_errors_total";
pub const ENGINE_CLAIM_SECONDS: &str = "smscast_engine_claim_duration_seconds";
pub const ENGINE_BATCH_SECONDS: &str = "smscast_engine_batch_duration_seconds";
pub const PROVIDER_SECONDS: &str = "smscast_provider_request_duration_seconds";
pub const PROVIDER_ERRORS: &str = "smscast_provider_errors_total";
pub const PROVIDER_REJECTED: &str = "smscast_provider_rejected_messages_total";

/// Histogram bucket bounds in seconds: from a request answered from memory (a millisecond) to a
/// provider call near its timeout or a batch near its lease (a minute).
const BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

fn builder() -> PrometheusBuilder {
    // Buckets make the histograms real Prometheus histograms (aggregatable across nodes), not summaries.
    PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS).expect("the bucket list is not empty")
}

/// The process's recorder, installed on first use. Tests start many apps in one process: they all
/// share it (so tests compare before and after, never absolute values). If another recorder was
/// installed first, ours stays empty and `/metrics` shows only the scrape-time figures.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        // Histogram samples wait in buckets until a render or an upkeep folds them in: without a
        // scraper they would grow forever.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route pattern, method and status.");
    describe_histogram!(HTTP_SECONDS, metrics::Unit::Seconds, "Time to answer an HTTP request (to the headers, for event streams).");
    describe_counter!(ENGINE_CLAIMED, "Messages this process's send loops claimed.");
    describe_counter!(ENGINE_MESSAGES, "Claimed messages by recorded outcome: sent, failed, retried (scheduled again), unknown.");
    describe_counter!(ENGINE_REAPED, "Messages whose claim lease expired (their worker died or hung): now unknown.");
    describe_counter!(ENGINE_ERRORS, "Send-loop and maintenance passes that failed (usually the database), by part.");
    describe_histogram!(ENGINE_CLAIM_SECONDS, metrics::Unit::Seconds, "Time to claim a batch (rate buckets included).");
    describe_histogram!(ENGINE_BATCH_SECONDS, metrics::Unit::Seconds, "Time from claiming a batch to its recorded outcome.");
    describe_histogram!(PROVIDER_SECONDS, metrics::Unit::Seconds, "SMS provider calls, by provider and operation.");
    describe_counter!(PROVIDER_ERRORS, "SMS provider calls that failed as a whole, by class.");
    describe_counter!(PROVIDER_REJECTED, "Messages the provider refused in an accepted call (invalid number or other).");
}

/// One answered HTTP request. `route` is the matched pattern (`/api/campaigns/{id}`), never the
/// raw path, so the series stay few.
pub fn http_request(method: &axum::http::Method, route: &str, status: u16, elapsed: Duration) {
    let method = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        // Any other token is the client's to invent: one series for all of them.
        _ => "other",
    };
    let route = route.to_string();
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string()).increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route).record(elapsed);
}

/// A claim that took messages.
pub fn engine_claimed(messages: usize, elapsed: Duration) {
    counter!(ENGINE_CLAIMED).increment(messages as u64);
    histogram!(ENGINE_CLAIM_SECONDS).record(elapsed);
}

/// A batch whose outcome was recorded, `elapsed` after its claim began.
pub fn engine_recorded(outcomes: &[(i64, Outcome)], elapsed: Duration) {
    let (mut sent, mut failed, mut retried, mut unknown) = (0, 0, 0, 0);
    for (_, o) in outcomes {
        match o {
            Outcome::Sent { .. } => sent += 1,
            Outcome::Failed { .. } => failed += 1,
            Outcome::Retry { .. } => retried += 1,
            Outcome::Unknown { .. } => unknown += 1,
        }
    }
    for (outcome, n) in [("sent", sent), ("failed", failed), ("retried", retried), ("unknown", unknown)] {
        if n > 0 {
            counter!(ENGINE_MESSAGES, "outcome" => outcome).increment(n);
        }
    }
    histogram!(ENGINE_BATCH_SECONDS).record(elapsed);
}

pub fn engine_reaped(messages: u64) {
    if messages > 0 {
        counter!(ENGINE_REAPED).increment(messages);
    }
}

/// A send-loop (`send`), maintenance or status-lookup pass that failed.
pub fn engine_error(part: &'static str) {
    counter!(ENGINE_ERRORS, "part" => part).increment(1);
}

/// Why a provider call failed, as a label: `429`, `5xx`, `408`, `connect` (nothing was sent),
/// `unauthorized`, `refused` (any other refusal), `timeout` (no answer in time: the outcome is
/// unknown), `unknown` (the connection broke after the request, or an answer that could not be
/// matched).
pub fn provider_error_class(e: &BatchError) -> &'static str {
    match e {
        BatchError::Transient { kind: TransientKind::Throttled, .. } => "429",
        BatchError::Transient { kind: TransientKind::ServerError, .. } => "5xx",
        BatchError::Transient { kind: TransientKind::Timeout, .. } => "408",
        BatchError::Transient { kind: TransientKind::Connection, .. } => "connect",
        BatchError::Permanent { code, .. } if code == "unauthorized" => "unauthorized",
        BatchError::Permanent { .. } => "refused",
        BatchError::Unknown { timed_out: true, .. } => "timeout",
        BatchError::Unknown { .. } => "unknown",
    }
}

/// One provider call (`op`: `send`, `lookup`) and, for a failed one, its class.
pub fn provider_call<T>(provider: &'static str, op: &'static str, elapsed: Duration, result: &Result<T, BatchError>) {
    histogram!(PROVIDER_SECONDS, "provider" => provider, "op" => op).record(elapsed);
    if let Err(e) = result {
        counter!(PROVIDER_ERRORS, "provider" => provider, "op" => op, "class" => provider_error_class(e)).increment(1);
    }
}

/// The messages of an accepted call that the provider refused one by one.
pub fn provider_rejected(provider: &'static str, outcomes: &[SubmitOutcome]) {
    let (mut invalid, mut other) = (0, 0);
    for o in outcomes {
        match o {
            SubmitOutcome::Rejected { invalid_number: true, .. } => invalid += 1,
            SubmitOutcome::Rejected { .. } => other += 1,
            _ => {}
        }
    }
    for (reason, n) in [("invalid_number", invalid), ("other", other)] {
        if n > 0 {
            counter!(PROVIDER_REJECTED, "provider" => provider, "reason" => reason).increment(n);
        }
    }
}

/// What this node knows when scraped, besides the process's counters.
pub struct Scrape {
    pub queue: crate::store::operations::QueueStats,
    pub holds: crate::store::ledger::OpenHolds,
    /// Open live-event streams on this node.
    pub open_streams: usize,
}

/// The Prometheus text: the scrape-time figures, then the process's counters and histograms.
/// The scrape-time figures go through a recorder of their own, made for this scrape: they belong
/// to this node's database and hub, and another app in the same process (tests) must not see them.
pub fn render(s: &Scrape) -> String {
    let local = builder().build_recorder();
    metrics::with_local_recorder(&local, || {
        let q = &s.queue;
        describe_gauge!("smscast_messages", "Campaign messages by queue state (from the campaigns' counters).");
        for (state, n) in [
            ("waiting", q.waiting),
            ("delayed", q.delayed),
            ("active", q.active),
            ("completed", q.completed),
            ("failed", q.failed),
            ("cancelled", q.cancelled),
            ("unknown", q.unknown),
        ] {
            gauge!("smscast_messages", "state" => state).set(n as f64);
        }
        describe_gauge!("smscast_waiting_by_priority", "Due messages by campaign priority.");
        for p in ["urgent", "high", "normal", "low"] {
            gauge!("smscast_waiting_by_priority", "priority" => p).set(q.by_priority.get(p).copied().unwrap_or(0) as f64);
        }
        describe_gauge!("smscast_sent_last_minute", "Messages accepted by the provider in the last minute.");
        gauge!("smscast_sent_last_minute").set(q.throughput.last_minute as f64);
        describe_gauge!("smscast_oldest_waiting_seconds", "Age of the oldest due message.");
        gauge!("smscast_oldest_waiting_seconds").set(q.oldest_waiting_seconds as f64);
        describe_gauge!("smscast_workers", "Engine processes that heartbeated in the last minute.");
        gauge!("smscast_workers").set(q.workers.len() as f64);
        describe_gauge!("smscast_holds_open", "Open credit holds (one per running campaign run).");
        gauge!("smscast_holds_open").set(s.holds.open as f64);
        describe_gauge!("smscast_credits_held", "Credits reserved by open holds.");
        gauge!("smscast_credits_held").set(s.holds.credits as f64);
        describe_gauge!("smscast_holds_overdue", "Open holds past their deadline: the maintenance that expires them is behind.");
        gauge!("smscast_holds_overdue").set(s.holds.overdue as f64);
        describe_gauge!("smscast_sse_open_streams", "Live event streams open on this node.");
        gauge!("smscast_sse_open_streams").set(s.open_streams as f64);
    });
    let mut out = local.handle().render();
    out.push_str(&install().render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let t = |kind| BatchError::Transient { kind, retry_after: None, message: String::new() };
        assert_eq!(provider_error_class(&t(TransientKind::Throttled)), "429");
        assert_eq!(provider_error_class(&t(TransientKind::ServerError)), "5xx");
        assert_eq!(provider_error_class(&t(TransientKind::Connection)), "connect");
        let p = |code: &str| BatchError::Permanent { code: code.into(), message: String::new() };
        assert_eq!(provider_error_class(&p("unauthorized")), "unauthorized");
        assert_eq!(provider_error_class(&p("http_400")), "refused");
        let u = |timed_out| BatchError::Unknown { message: String::new(), timed_out };
        assert_eq!(provider_error_class(&u(true)), "timeout");
        assert_eq!(provider_error_class(&u(false)), "unknown");
    }
}
