//! The send engine: claim → send → record loops, plus maintenance (lease reaper, scheduler, hold
//! expiry, heartbeats). Any number of engines on any number of machines share one PostgreSQL
//! database; on SQLite one process runs them. Nothing important lives only in memory: every step
//! is a transaction that can be re-run.

use crate::clock::SharedClock;
use crate::domain::error::code;
use crate::domain::failure::FailureCode;
use crate::provider::{BatchError, OutboundSms, SmsProvider, SubmitOutcome, TransientKind};
use crate::store::Db;
use crate::store::campaigns::SendSettings;
use crate::store::queue::{self, Batch, Outcome};
use clap::Args;
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::Instrument;

mod lookup;

/// The engine's settings: the one type, parsed once from the command line (`serve`, `worker`; the
/// three flags below) and defaulting to the same values in tests and benchmarks (`Default`).
#[derive(Args, Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent send loops in this process (0 turns the engine off).
    #[arg(long, env = "SMSCAST_WORKERS", default_value_t = EngineConfig::WORKERS)]
    pub workers: usize,
    /// Attempts before a transient provider failure becomes permanent.
    #[arg(long, env = "SMSCAST_MAX_ATTEMPTS", default_value_t = EngineConfig::MAX_ATTEMPTS)]
    pub max_attempts: i64,
    /// How long a claimed batch stays leased to its worker, in milliseconds. A worker that dies
    /// leaves its batch `sending` until the lease expires; then it becomes `unknown` (never resent).
    /// Must be longer than --mitto-timeout-ms.
    #[arg(long, env = "SMSCAST_LEASE_MS", default_value_t = EngineConfig::LEASE_MS)]
    pub lease_ms: i64,
    /// First retry delay (doubles per attempt, up to `retry_cap_ms`); tests shorten it.
    #[arg(skip = EngineConfig::RETRY_BASE_MS)]
    pub retry_base_ms: i64,
    #[arg(skip = EngineConfig::RETRY_CAP_MS)]
    pub retry_cap_ms: i64,
    /// Idle wait between empty claims.
    #[arg(skip = EngineConfig::POLL_MS)]
    pub poll_ms: u64,
    /// A campaign pauses itself when this share of its last `auto_pause_window` provider calls
    /// failed as a whole (5xx, 429, timeouts, refusals). 1.0 or more turns it off.
    #[arg(skip = EngineConfig::AUTO_PAUSE_FAILURE_RATE)]
    pub auto_pause_failure_rate: f64,
    #[arg(skip = EngineConfig::AUTO_PAUSE_WINDOW)]
    pub auto_pause_window: usize,
    /// Seconds after sending before a message with no final delivery report is looked up at the
    /// provider (GET /api/v1.1/Messages/{id}), and between lookups of one message; 0 turns
    /// lookups off.
    #[arg(long, env = "SMSCAST_STATUS_LOOKUP_AFTER_SECS", default_value_t = EngineConfig::STATUS_LOOKUP_AFTER_SECS)]
    pub status_lookup_after_secs: i64,
    /// Most status lookups per second by this process.
    #[arg(long, env = "SMSCAST_STATUS_LOOKUPS_PER_SEC", default_value_t = EngineConfig::STATUS_LOOKUPS_PER_SEC)]
    pub status_lookups_per_sec: u32,
}

impl EngineConfig {
    pub const WORKERS: usize = 2;
    const MAX_ATTEMPTS: i64 = 5;
    const LEASE_MS: i64 = 60_000;
    const RETRY_BASE_MS: i64 = 1_000;
    const RETRY_CAP_MS: i64 = 60_000;
    const POLL_MS: u64 = 200;
    const AUTO_PAUSE_FAILURE_RATE: f64 = 0.8;
    const AUTO_PAUSE_WINDOW: usize = 20;
    const STATUS_LOOKUP_AFTER_SECS: i64 = 3_600;
    const STATUS_LOOKUPS_PER_SEC: u32 = 10;

    /// A provider call must end (answer or time out) before its lease does, or another worker's
    /// reaper could declare the batch's outcome unknown while the call is still running.
    pub fn validate(&self, provider_timeout_ms: u64) -> Result<(), String> {
        if self.lease_ms <= 0 {
            return Err(format!("--lease-ms must be positive (got {})", self.lease_ms));
        }
        if u64::try_from(self.lease_ms).is_ok_and(|lease| provider_timeout_ms >= lease) {
            return Err(format!(
                "--mitto-timeout-ms ({}) must be shorter than --lease-ms ({}): a provider call must end before its claim's lease expires",
                provider_timeout_ms, self.lease_ms
            ));
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: EngineConfig::WORKERS,
            max_attempts: EngineConfig::MAX_ATTEMPTS,
            lease_ms: EngineConfig::LEASE_MS,
            retry_base_ms: EngineConfig::RETRY_BASE_MS,
            retry_cap_ms: EngineConfig::RETRY_CAP_MS,
            poll_ms: EngineConfig::POLL_MS,
            auto_pause_failure_rate: EngineConfig::AUTO_PAUSE_FAILURE_RATE,
            auto_pause_window: EngineConfig::AUTO_PAUSE_WINDOW,
            status_lookup_after_secs: EngineConfig::STATUS_LOOKUP_AFTER_SECS,
            status_lookups_per_sec: EngineConfig::STATUS_LOOKUPS_PER_SEC,
        }
    }
}

pub struct Engine {
    pub id: String,
    db: Db,
    provider: Arc<dyn SmsProvider>,
    clock: SharedClock,
    cfg: EngineConfig,
    /// How launches render and bill (scheduled starts go through the same path as the API's).
    send: SendSettings,
    in_flight: AtomicI64,
    /// Recent provider call results per campaign (true = the call failed), for auto-pause. A
    /// heuristic, so per-process memory is enough: each engine sees its share of the calls.
    recent: std::sync::Mutex<std::collections::HashMap<i64, std::collections::VecDeque<bool>>>,
    times: LoopTimes,
    /// Shared by this engine's loops: each claim starts where the last one ended.
    cursor: queue::ClaimCursor,
    /// SQLite only: this engine's database writes take turns here. SQLite has one writer at a
    /// time, and a writer that finds the database busy polls with sleeps of up to 100 ms (its busy
    /// handler); queued here instead, the next loop starts the moment the previous one commits.
    sqlite_turn: Option<tokio::sync::Mutex<()>>,
}

/// Where the send loops' wall-clock time goes, summed over all loops of this engine: claiming
/// (rate buckets included), the provider call, recording the outcome. A few relaxed atomic adds
/// per batch; read by `smscast bench send`.
#[derive(Debug, Default)]
struct LoopTimes {
    batches: AtomicU64,
    messages: AtomicU64,
    empty_claims: AtomicU64,
    claim_ns: AtomicU64,
    send_ns: AtomicU64,
    record_ns: AtomicU64,
}

/// A snapshot of `LoopTimes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopTimesSnapshot {
    pub batches: u64,
    pub messages: u64,
    pub empty_claims: u64,
    pub claim: Duration,
    pub send: Duration,
    pub record: Duration,
}

impl std::fmt::Display for LoopTimesSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_batch = |d: Duration| d.as_secs_f64() * 1000.0 / self.batches.max(1) as f64;
        write!(
            f,
            "{} batches ({} messages); per batch: claim {:.2} ms, provider {:.2} ms, record {:.2} ms (summed over loops: {:.1} s / {:.1} s / {:.1} s); {} empty claims",
            self.batches,
            self.messages,
            per_batch(self.claim),
            per_batch(self.send),
            per_batch(self.record),
            self.claim.as_secs_f64(),
            self.send.as_secs_f64(),
            self.record.as_secs_f64(),
            self.empty_claims
        )
    }
}

fn add_elapsed(counter: &AtomicU64, since: Instant) -> Instant {
    let now = Instant::now();
    counter.fetch_add((now - since).as_nanos() as u64, Ordering::Relaxed);
    now
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Engine {
    pub fn new(db: Db, provider: Arc<dyn SmsProvider>, clock: SharedClock, cfg: EngineConfig, send: SendSettings) -> Arc<Engine> {
        let id = format!("{}-{}-{}", host_name(), std::process::id(), crate::secrets::random_token(6));
        let db_is_pg = db.is_postgres();
        Arc::new(Engine {
            id,
            db,
            provider,
            clock,
            cfg,
            send,
            in_flight: AtomicI64::new(0),
            recent: Default::default(),
            times: LoopTimes::default(),
            cursor: queue::ClaimCursor::default(),
            sqlite_turn: (!db_is_pg).then(|| tokio::sync::Mutex::new(())),
        })
    }

    /// Waits for this engine's turn to write (SQLite); no wait on PostgreSQL, whose row locks let
    /// claims and outcomes run side by side.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.sqlite_turn {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    /// Where the send loops' time went so far.
    pub fn loop_times(&self) -> LoopTimesSnapshot {
        let t = &self.times;
        let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        LoopTimesSnapshot {
            batches: t.batches.load(Ordering::Relaxed),
            messages: t.messages.load(Ordering::Relaxed),
            empty_claims: t.empty_claims.load(Ordering::Relaxed),
            claim: ns(&t.claim_ns),
            send: ns(&t.send_ns),
            record: ns(&t.record_ns),
        }
    }

    /// Starts the loops; they stop when `shutdown` turns true.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for _ in 0..self.cfg.workers {
            let (me, mut stop) = (self.clone(), shutdown.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    let pause = match me.run_once().await {
                        Ok(Some(d)) => d,
                        Ok(None) => Duration::from_millis(me.cfg.poll_ms),
                        Err(e) => {
                            crate::telemetry::engine_error("send");
                            tracing::error!(error = %e, "send loop");
                            Duration::from_millis(me.cfg.poll_ms * 5)
                        }
                    };
                    if *stop.borrow() {
                        break;
                    }
                    if !pause.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.changed() => break,
                        }
                    }
                }
            }));
        }
        if self.cfg.status_lookup_after_secs > 0 && self.cfg.status_lookups_per_sec > 0 {
            handles.push(tokio::spawn(self.clone().look_up_stragglers(shutdown.clone())));
        }
        let (me, mut stop) = (self.clone(), shutdown);
        handles.push(tokio::spawn(async move {
            loop {
                if let Err(e) = me.maintain().await {
                    crate::telemetry::engine_error("maintenance");
                    tracing::error!(error = %e, "maintenance");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => break,
                }
            }
        }));
        handles
    }

    /// Reaps expired leases, starts due scheduled campaigns, expires holds, applies parked delivery
    /// reports, heartbeats.
    pub async fn maintain(&self) -> Result<(), crate::domain::Error> {
        let _turn = self.write_turn().await;
        let now = self.clock.now_ms();
        crate::store::workers::heartbeat(&self.db, &self.id, &host_name(), self.in_flight.load(Ordering::Relaxed), now).await?;
        crate::telemetry::engine_reaped(queue::reap(&self.db, now).await?);
        queue::start_due(&self.db, &self.send, now).await?;
        crate::store::operations::stop_expired_runs(&self.db, now).await?;
        crate::store::ledger::expire_due(&self.db, now).await?;
        crate::store::purge_expired(&self.db, now).await?;
        crate::store::delivery::sweep_parked(&self.db, now).await?;
        Ok(())
    }

    /// One claim → send → record cycle. `Ok(None)`: nothing to do; `Ok(Some(d))`: did work, wait
    /// `d` before the next (zero, or the provider's Retry-After).
    pub async fn run_once(&self) -> Result<Option<Duration>, crate::domain::Error> {
        let started = Instant::now();
        let turn = self.write_turn().await;
        let now = self.clock.now_ms();
        let bucket = crate::store::rate::provider_key(self.provider.name());
        let granted = crate::store::rate::take(&self.db, &bucket, self.provider.max_batch() as i64, now).await?;
        if granted == 0 {
            return Ok(Some(Duration::from_millis(20)));
        }
        let claimed = queue::claim(&self.db, &self.id, granted, self.cfg.lease_ms, now, &self.cursor).await?;
        crate::store::rate::refund(&self.db, &bucket, granted - claimed.as_ref().map_or(0, |b| b.messages.len() as i64)).await?;
        drop(turn);
        let Some(batch) = claimed else {
            self.times.empty_claims.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        let claimed_at = add_elapsed(&self.times.claim_ns, started);
        crate::telemetry::engine_claimed(batch.messages.len(), claimed_at - started);
        // A second short of the lease's end (it began before the claim), so a last try still ends
        // before a reaper may take the batch.
        let lease_ends = started + Duration::from_millis((self.cfg.lease_ms - 1_000).max(0) as u64);
        if batch.messages.is_empty() {
            // Every claimed message was skipped (its contact opted out): nothing to send, but the
            // run may be complete now.
            self.record(&batch, &[], lease_ends).await?;
            return Ok(Some(Duration::ZERO));
        }
        // The batch's log lines (the provider's, the outcome's) name its store and campaign.
        let span =
            tracing::info_span!("batch", store = batch.messages[0].store_id, campaign = batch.campaign_id, messages = batch.messages.len());
        self.in_flight.fetch_add(batch.messages.len() as i64, Ordering::Relaxed);
        let result = self.send(&batch).instrument(span.clone()).await;
        self.in_flight.fetch_sub(batch.messages.len() as i64, Ordering::Relaxed);
        let sent_at = add_elapsed(&self.times.send_ns, claimed_at);
        let call_failed = result.is_err();
        let (outcomes, pause) = span.in_scope(|| self.outcomes(&batch, result));
        self.record(&batch, &outcomes, lease_ends).instrument(span.clone()).await?;
        add_elapsed(&self.times.record_ns, sent_at);
        crate::telemetry::engine_recorded(&outcomes, started.elapsed());
        span.in_scope(|| tracing::debug!(ms = started.elapsed().as_millis() as u64, "batch recorded"));
        self.times.batches.fetch_add(1, Ordering::Relaxed);
        self.times.messages.fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
        if let Some(rate) = self.failure_rate(batch.campaign_id, call_failed) {
            let store = crate::store::StoreId(batch.messages[0].store_id);
            let reason =
                format!("paused automatically: {:.0}% of the last {} provider calls failed", rate * 100.0, self.cfg.auto_pause_window);
            match crate::store::operations::pause(&self.db, store, batch.campaign_id, "engine", &reason, self.clock.now_ms()).await {
                Ok(_) => tracing::warn!(store = store.0, campaign = batch.campaign_id, %reason, "auto-pause"),
                Err(e) if e.is(code::INVALID_STATE) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(pause))
    }

    /// Records a batch's outcome. A write that fails (a database error: a broken connection, a
    /// failover) is tried again while the lease lasts, since after a provider call the accepted
    /// messages are sent whether or not we record it, and an unrecorded batch would end `unknown`
    /// and unpaid. Trying again is safe: the write is fenced by the claim's token, so one that
    /// committed before its answer was lost changes nothing the second time.
    async fn record(&self, batch: &Batch, outcomes: &[(i64, Outcome)], lease_ends: Instant) -> Result<(), crate::domain::Error> {
        let mut wait = Duration::from_millis(50);
        loop {
            let turn = self.write_turn().await;
            let result = if crate::faults::hit(|| format!("record:{}", self.id)) {
                Err(crate::faults::injected("record"))
            } else {
                queue::record(&self.db, batch, outcomes, self.clock.now_ms()).await
            };
            drop(turn);
            match result {
                Err(e) if e.kind == crate::domain::Kind::Internal && Instant::now() + wait < lease_ends => {
                    crate::telemetry::engine_error("record");
                    tracing::warn!(error = %e, campaign = batch.campaign_id, "recording a batch failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Records one provider call; returns the failure rate when it crosses the threshold.
    fn failure_rate(&self, campaign: i64, failed: bool) -> Option<f64> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let window = recent.entry(campaign).or_default();
        window.push_back(failed);
        while window.len() > self.cfg.auto_pause_window {
            window.pop_front();
        }
        if window.len() < self.cfg.auto_pause_window {
            return None;
        }
        let rate = window.iter().filter(|f| **f).count() as f64 / window.len() as f64;
        if rate >= self.cfg.auto_pause_failure_rate {
            window.clear();
            Some(rate)
        } else {
            None
        }
    }

    async fn send(&self, batch: &Batch) -> Result<Vec<SubmitOutcome>, BatchError> {
        let out: Vec<OutboundSms> = batch
            .messages
            .iter()
            .map(|m| OutboundSms {
                reference: m.id.to_string(),
                destination: m.phone.clone(),
                sender: batch.sender.clone(),
                text: m.text.clone(),
            })
            .collect();
        self.provider.send_batch(&out).await
    }

    fn backoff(&self, attempts: i64) -> i64 {
        let exp = self.cfg.retry_base_ms.saturating_mul(1 << attempts.clamp(0, 20).saturating_sub(1)).min(self.cfg.retry_cap_ms);
        // ±20 % jitter so retries of many batches do not arrive together.
        let jitter = rand::rng().random_range(-(exp / 5)..=(exp / 5).max(1));
        (exp + jitter).max(1)
    }

    fn outcomes(&self, batch: &Batch, result: Result<Vec<SubmitOutcome>, BatchError>) -> (Vec<(i64, Outcome)>, Duration) {
        let now = self.clock.now_ms();
        match result {
            Ok(results) => {
                let out = batch
                    .messages
                    .iter()
                    .zip(results)
                    .map(|(m, r)| {
                        let o = match r {
                            SubmitOutcome::Accepted { provider_id } => Outcome::Sent { provider_id },
                            SubmitOutcome::Rejected { invalid_number: true, message, .. } => {
                                Outcome::Failed { code: FailureCode::InvalidNumber, message }
                            }
                            SubmitOutcome::Rejected { code, message, .. } => {
                                Outcome::Failed { code: FailureCode::ProviderRejected, message: format!("{code}: {message}") }
                            }
                            SubmitOutcome::Unknown { message } => Outcome::Unknown { message },
                        };
                        (m.id, o)
                    })
                    .collect();
                (out, Duration::ZERO)
            }
            Err(BatchError::Transient { kind, retry_after, message }) => {
                let code = match kind {
                    TransientKind::Throttled => FailureCode::RateLimited,
                    TransientKind::Timeout => FailureCode::Timeout,
                    TransientKind::ServerError | TransientKind::Connection => FailureCode::ProviderError,
                };
                let hint = retry_after.map_or(0, |d| d.as_millis() as i64);
                // One retry time per batch, so the batch stays whole: fewer, fuller provider calls.
                let attempts = batch.messages.iter().map(|m| m.attempts).max().unwrap_or(1);
                let retry_at = now + self.backoff(attempts).max(hint);
                let out = batch
                    .messages
                    .iter()
                    .map(|m| {
                        let o = if m.attempts >= self.cfg.max_attempts {
                            Outcome::Failed { code, message: format!("gave up after {} attempts: {message}", m.attempts) }
                        } else {
                            Outcome::Retry { at: retry_at, code, message: message.clone() }
                        };
                        (m.id, o)
                    })
                    .collect();
                (out, retry_after.unwrap_or(Duration::ZERO))
            }
            Err(BatchError::Unknown { message, .. }) => {
                // The provider may have the messages: held out of every retry path, not charged.
                tracing::warn!(campaign = batch.campaign_id, %message, "provider outcome unknown; the batch is not resent");
                let out = batch.messages.iter().map(|m| (m.id, Outcome::Unknown { message: message.clone() })).collect();
                (out, Duration::ZERO)
            }
            Err(BatchError::Permanent { code, message }) => {
                tracing::error!(%code, %message, "provider refused a whole batch");
                let out = batch
                    .messages
                    .iter()
                    .map(|m| (m.id, Outcome::Failed { code: FailureCode::ProviderError, message: format!("{code}: {message}") }))
                    .collect();
                (out, Duration::ZERO)
            }
        }
    }
}
