//! The send engine: claim → send → record loops, plus maintenance (lease reaper, scheduler, hold
//! expiry, heartbeats). Any number of engines on any number of machines share one PostgreSQL
//! database; on SQLite one process runs them. Nothing important lives only in memory: every step
//! is a transaction that can be re-run.

use crate::clock::SharedClock;
use crate::provider::{BatchError, OutboundSms, SmsProvider, SubmitOutcome, TransientKind};
use crate::store::Db;
use crate::store::campaigns::SendSettings;
use crate::store::messages::{self, Batch, Outcome};
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent claim → send → record loops in this process.
    pub workers: usize,
    /// How long a claim is valid; must exceed the provider timeout.
    pub lease_ms: i64,
    /// Attempts before a transient failure becomes permanent.
    pub max_attempts: i64,
    pub retry_base_ms: i64,
    pub retry_cap_ms: i64,
    /// Idle wait between empty claims.
    pub poll_ms: u64,
    pub send: SendSettings,
}

impl EngineConfig {
    pub fn new(workers: usize, send: SendSettings) -> Self {
        EngineConfig { workers, lease_ms: 60_000, max_attempts: 5, retry_base_ms: 1_000, retry_cap_ms: 60_000, poll_ms: 200, send }
    }
}

pub struct Engine {
    pub id: String,
    db: Db,
    provider: Arc<dyn SmsProvider>,
    clock: SharedClock,
    cfg: EngineConfig,
    in_flight: AtomicI64,
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
    pub fn new(db: Db, provider: Arc<dyn SmsProvider>, clock: SharedClock, cfg: EngineConfig) -> Arc<Engine> {
        let id = format!("{}-{}-{}", host_name(), std::process::id(), crate::secrets::random_token(6));
        Arc::new(Engine { id, db, provider, clock, cfg, in_flight: AtomicI64::new(0) })
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
        let (me, mut stop) = (self.clone(), shutdown);
        handles.push(tokio::spawn(async move {
            loop {
                if let Err(e) = me.maintain().await {
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

    /// Reaps expired leases, starts due scheduled campaigns, expires holds, heartbeats.
    pub async fn maintain(&self) -> Result<(), crate::domain::Error> {
        let now = self.clock.now_ms();
        messages::heartbeat(&self.db, &self.id, &host_name(), self.in_flight.load(Ordering::Relaxed), now).await?;
        messages::reap(&self.db, now).await?;
        messages::start_due(&self.db, &self.cfg.send, now).await?;
        crate::ledger::expire_due(&self.db, now).await?;
        Ok(())
    }

    /// One claim → send → record cycle. `Ok(None)`: nothing to do; `Ok(Some(d))`: did work, wait
    /// `d` before the next (zero, or the provider's Retry-After).
    pub async fn run_once(&self) -> Result<Option<Duration>, crate::domain::Error> {
        let now = self.clock.now_ms();
        let Some(batch) = messages::claim(&self.db, &self.id, self.provider.max_batch() as i64, self.cfg.lease_ms, now).await? else {
            return Ok(None);
        };
        self.in_flight.fetch_add(batch.messages.len() as i64, Ordering::Relaxed);
        let result = self.send(&batch).await;
        self.in_flight.fetch_sub(batch.messages.len() as i64, Ordering::Relaxed);
        let (outcomes, pause) = self.outcomes(&batch, result);
        messages::record(&self.db, &batch, &outcomes, self.clock.now_ms()).await?;
        Ok(Some(pause))
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
                                Outcome::Failed { code: "invalid_number", message }
                            }
                            SubmitOutcome::Rejected { code, message, .. } => {
                                Outcome::Failed { code: "provider_rejected", message: format!("{code}: {message}") }
                            }
                        };
                        (m.id, o)
                    })
                    .collect();
                (out, Duration::ZERO)
            }
            Err(BatchError::Transient { kind, retry_after, message }) => {
                let code = match kind {
                    TransientKind::Throttled => "rate_limited",
                    TransientKind::Timeout => "timeout",
                    TransientKind::ServerError | TransientKind::Connection => "provider_error",
                };
                let hint = retry_after.map_or(0, |d| d.as_millis() as i64);
                let out = batch
                    .messages
                    .iter()
                    .map(|m| {
                        let o = if m.attempts >= self.cfg.max_attempts {
                            Outcome::Failed { code, message: format!("gave up after {} attempts: {message}", m.attempts) }
                        } else {
                            Outcome::Retry { at: now + self.backoff(m.attempts).max(hint), code, message: message.clone() }
                        };
                        (m.id, o)
                    })
                    .collect();
                (out, retry_after.unwrap_or(Duration::ZERO))
            }
            Err(BatchError::Permanent { code, message }) => {
                tracing::error!(%code, %message, "provider refused a whole batch");
                let out = batch
                    .messages
                    .iter()
                    .map(|m| (m.id, Outcome::Failed { code: "provider_error", message: format!("{code}: {message}") }))
                    .collect();
                (out, Duration::ZERO)
            }
        }
    }
}
