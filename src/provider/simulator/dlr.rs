//! The delivery-report sender: one POST (with the webhook's secret header) per accepted message, once its
//! final status is due, a few at a time, with retries.

use super::id::MessageId;
use super::{DlrTarget, Shared, lock, now_ms};
use crate::domain::time::rfc3339;
use crate::provider::DeliveryReport;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Delivery reports in flight at once, so a slow receiver is not flooded.
const DLR_CONCURRENCY: usize = 16;
const DLR_ATTEMPTS: u32 = 3;
const DLR_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct DlrJob {
    pub(super) ids: Vec<u128>,
    /// One per id, or none: every report posted once, at once.
    pub(super) plans: Vec<DlrPlan>,
    pub(super) due: tokio::time::Instant,
    pub(super) target: DlrTarget,
}

/// How one message's report goes out (the report faults).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DlrPlan {
    /// Extra delay before posting.
    pub(super) jitter_ms: u64,
    /// Posted a second time.
    pub(super) duplicate: bool,
    /// Followed by an intermediate "Sent" report stamped at acceptance: older news, arriving last.
    pub(super) stale_after: bool,
}

pub(super) async fn run_dlr(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<DlrJob>) {
    crate::provider::install_crypto_provider();
    let http = match reqwest::Client::builder().timeout(DLR_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "simulator cannot build its DLR client; no DLRs will be sent");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(DLR_CONCURRENCY));
    // Jobs arrive in acceptance order with a shared delay, so waiting for
    // the head job's due time never delays an earlier-due one (except right
    // after dlr_delay_ms was lowered, which is harmless for a simulator).
    while let Some(job) = rx.recv().await {
        tokio::time::sleep_until(job.due).await;
        let url = Arc::clone(&job.target.url);
        let now = now_ms();
        let timestamp = rfc3339(now as i64);
        // Per message: its final report, the stale intermediate one, and how to post them.
        let reports: Vec<(DeliveryReport, DeliveryReport, DlrPlan)> = {
            let state = lock(&shared.state);
            job.ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let r = state.records.get(id)?;
                    let report = DeliveryReport {
                        message_id: MessageId(*id).to_string(),
                        reference: r.reference.as_deref().map(str::to_owned),
                        delivery_status: r.delivery_status(now.max(r.final_ms)).to_owned(),
                        destination: r.destination.to_string(),
                        traffic_account_id: r.traffic_account_id.to_string(),
                        timestamp: timestamp.clone(),
                        message_parts: r.parts,
                    };
                    let stale = DeliveryReport {
                        delivery_status: r.delivery_status(r.created_ms).to_owned(),
                        timestamp: rfc3339(r.created_ms as i64),
                        ..report.clone()
                    };
                    Some((report, stale, job.plans.get(i).copied().unwrap_or_default()))
                })
                .collect()
        };
        // Records that vanished have no report to post.
        shared.reports_pending.fetch_sub((job.ids.len() - reports.len()) as u64, Ordering::Relaxed);
        for (report, stale, plan) in reports {
            let Ok(body) = serde_json::to_vec(&report) else {
                continue;
            };
            let stale = if plan.stale_after { serde_json::to_vec(&stale).ok() } else { None };
            let headers = Arc::clone(&job.target.headers);
            let (http, url, shared, permits) = (http.clone(), Arc::clone(&url), Arc::clone(&shared), Arc::clone(&permits));
            // Without jitter, the permit is taken before spawning, as a back-pressure on this loop;
            // with it, after the jitter, so the wait delays a report without throttling the rest.
            let held = if plan.jitter_ms == 0 {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                Some(permit)
            } else {
                None
            };
            tokio::spawn(async move {
                let permit = match held {
                    Some(p) => p,
                    None => {
                        tokio::time::sleep(Duration::from_millis(plan.jitter_ms)).await;
                        let Ok(p) = permits.acquire_owned().await else { return };
                        p
                    }
                };
                let body = Bytes::from(body);
                post_dlr(&http, &url, body.clone(), &headers).await;
                if plan.duplicate {
                    post_dlr(&http, &url, body, &headers).await;
                }
                if let Some(stale) = stale {
                    post_dlr(&http, &url, Bytes::from(stale), &headers).await;
                }
                shared.reports_pending.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }
}

pub(super) async fn post_dlr(http: &reqwest::Client, url: &str, body: Bytes, headers: &[(String, String)]) {
    for attempt in 1..=DLR_ATTEMPTS {
        let mut req = http.post(url).header(CONTENT_TYPE, "application/json").body(body.clone());
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => tracing::debug!(attempt, status = %resp.status(), "DLR post refused"),
            Err(e) => tracing::debug!(attempt, error = %e, "DLR post failed"),
        }
        if attempt < DLR_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
    }
    tracing::debug!("DLR dropped after {DLR_ATTEMPTS} attempts");
}
