//! `GET /metrics`: who may scrape, and what a scrape reads (`telemetry` renders it).

use super::AppState;
use super::error::{ApiError, error_response};
use super::extract::Admin;
use super::webhooks::WebhookSecrets;
use crate::domain::Error;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use std::sync::Arc;

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// The `--metrics-token` values, checked like webhook secrets (constant time, at most two, each
/// at least 16 characters).
pub fn tokens(list: Vec<String>) -> Result<WebhookSecrets, String> {
    WebhookSecrets::new(list).map_err(|e| format!("--metrics-token: {}", e.replace("webhook secret", "token")))
}

/// Whether the request carries one of the metrics tokens.
fn has_token(tokens: &WebhookSecrets, headers: &HeaderMap) -> bool {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    bearer.is_some_and(|given| !tokens.is_empty() && tokens.accepts(given.trim()))
}

/// A scraper: a metrics token (`--metrics-token`: it reads metrics and nothing else, so a
/// Prometheus configuration holds no operator powers) or an admin key.
pub struct Scraper;

impl FromRequestParts<Arc<AppState>> for Scraper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if has_token(&state.settings.metrics_tokens, &parts.headers) {
            return Ok(Scraper);
        }
        Admin::from_request_parts(parts, state).await.map(|_| Scraper)
    }
}

/// The figures this node reads at scrape time, rendered with the process's counters.
pub async fn scrape(state: &AppState) -> Result<String, Error> {
    let now = state.clock.now_ms();
    let queue = crate::store::operations::queue(&state.db, None, now).await?;
    let holds = crate::store::ledger::open_holds(&state.db, now).await?;
    Ok(crate::telemetry::render(&crate::telemetry::Scrape { queue, holds, open_streams: state.hub.open_streams() }))
}

/// `smscast worker --metrics-listen`: this process's counters and histograms (the database's
/// figures come from the `serve` nodes), for a metrics token only.
pub fn worker_router(tokens: WebhookSecrets) -> axum::Router {
    let tokens = Arc::new(tokens);
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: HeaderMap| async move {
            if !has_token(&tokens, &headers) {
                return error_response(Error::unauthorized("Scrape with the metrics token (Authorization: Bearer …)."));
            }
            ([(CONTENT_TYPE, PROMETHEUS_TEXT)], crate::telemetry::install().render()).into_response()
        }),
    )
}
