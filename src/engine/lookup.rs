//! Status lookups: messages the provider accepted but sent no final report for are looked up at
//! the provider (`SmsProvider::lookup`), only those stragglers and at most
//! `status_lookups_per_sec` a second, and the answers are applied like delivery reports.

use super::Engine;
use crate::domain::delivery::parse_report;
use crate::store::delivery::{self, Incoming};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Messages older than this after sending are not looked up any more: Mitto keeps trying for 48 h.
const GIVE_UP_AFTER_MS: i64 = 72 * 3_600_000;

impl Engine {
    /// Runs until `stop`: each second, claims up to a second's worth of stragglers and looks them
    /// up, paced evenly over the second.
    pub(super) async fn look_up_stragglers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let per_sec = self.cfg.status_lookups_per_sec.max(1);
        let pace = Duration::from_millis(1_000 / u64::from(per_sec));
        loop {
            let started = tokio::time::Instant::now();
            if let Err(e) = self.look_up_once(per_sec as i64, pace, &mut stop).await {
                crate::telemetry::engine_error("lookup");
                tracing::warn!(error = %e, "status lookups");
            }
            tokio::select! {
                _ = tokio::time::sleep_until(started + Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One round: returns how many lookups answered.
    pub async fn look_up_once(&self, limit: i64, pace: Duration, stop: &mut watch::Receiver<bool>) -> Result<usize, crate::domain::Error> {
        let now = self.clock.now_ms();
        let after_ms = self.cfg.status_lookup_after_secs.saturating_mul(1000);
        let due = {
            let _turn = self.write_turn().await;
            delivery::claim_stragglers(&self.db, after_ms, GIVE_UP_AFTER_MS, limit, now).await?
        };
        let mut answers = Vec::new();
        for (i, (message_id, provider_id)) in due.iter().enumerate() {
            if i > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(pace) => {}
                    _ = stop.changed() => break,
                }
            }
            match self.provider.lookup(provider_id).await {
                Ok(Some(v)) => match parse_report(&v) {
                    Ok(report) => answers.push(Incoming { report, body: v.to_string() }),
                    Err(why) => tracing::warn!(message_id, %provider_id, %why, "unreadable status lookup answer"),
                },
                Ok(None) => tracing::debug!(message_id, %provider_id, "provider does not know this message"),
                // Throttled, down or unsupported: the rest waits for their next turn.
                Err(e) => {
                    tracing::debug!(message_id, error = %e, "status lookup failed");
                    break;
                }
            }
        }
        let n = answers.len();
        if n > 0 {
            let _turn = self.write_turn().await;
            delivery::ingest(&self.db, &answers, self.clock.now_ms()).await?;
        }
        Ok(n)
    }
}
