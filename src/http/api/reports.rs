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
#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/report",
    tag = "campaigns",
    operation_id = "campaign_report",
    summary = "A campaign's report",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Report),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn campaign_report(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(report::campaign_report(&state.db, p.store, id).await?))
}
