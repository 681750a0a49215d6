//! The delivery-report sender: one signed POST per accepted message, once its
//! final status is due, a few at a time, with retries.

use super::id::MessageId;
use super::{Shared, SimulatorConfig, lock, now_ms};
use crate::domain::time::rfc3339;
use crate::provider::{DeliveryReport, SIGNATURE_HEADER, sign};
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Delivery reports in flight at once, so a slow receiver is not flooded.
const DLR_CONCURRENCY: usize = 16;
const DLR_ATTEMPTS: u32 = 3;
const DLR_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct DlrJob {
    pub(super) ids: Vec<u128>,
    pub(super) due: tokio::time::Instant,
    pub(super) cfg: Arc<SimulatorConfig>,
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
        let Some(url) = job.cfg.dlr_url.as_deref() else {
            continue;
        };
        let url: Arc<str> = Arc::from(url);
        let now = now_ms();
        let timestamp = rfc3339(now as i64);
        let reports: Vec<DeliveryReport> = {
            let state = lock(&shared.state);
            job.ids
                .iter()
                .filter_map(|id| {
                    let r = state.records.get(id)?;
                    Some(DeliveryReport {
                        message_id: MessageId(*id).to_string(),
                        reference: r.reference.as_deref().map(str::to_owned),
                        delivery_status: r.delivery_status(now.max(r.final_ms)).to_owned(),
                        destination: r.destination.to_string(),
                        traffic_account_id: r.traffic_account_id.to_string(),
                        timestamp: timestamp.clone(),
                        message_parts: r.parts,
                    })
                })
                .collect()
        };
        for report in reports {
            let Ok(body) = serde_json::to_vec(&report) else {
                continue;
            };
            let signature = job.cfg.dlr_secret.as_deref().map(|s| sign(s.as_bytes(), &body));
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (http, url) = (http.clone(), Arc::clone(&url));
            tokio::spawn(async move {
                post_dlr(&http, &url, Bytes::from(body), signature.as_deref()).await;
                drop(permit);
            });
        }
    }
}

pub(super) async fn post_dlr(http: &reqwest::Client, url: &str, body: Bytes, signature: Option<&str>) {
    for attempt in 1..=DLR_ATTEMPTS {
        let mut req = http.post(url).header(CONTENT_TYPE, "application/json").body(body.clone());
        if let Some(sig) = signature {
            req = req.header(SIGNATURE_HEADER, sig);
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
