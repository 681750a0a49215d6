//! Campaign reports.

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Id};
use crate::store::report;
use axum::Json;
use axum::extract::State;
use serde_json::Value;
use std::sync::Arc;

/// `GET /api/campaigns/{id}/report`.
pub async fn campaign_report(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(report::campaign_report(&state.db, p.store, id).await?))
}
