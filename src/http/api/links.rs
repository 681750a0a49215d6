//! A campaign's tracked links and their clicks.

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Id};
use crate::store::links;
use axum::Json;
use axum::extract::State;
use serde_json::Value;
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/links",
    tag = "campaigns",
    operation_id = "campaign_links",
    summary = "A campaign's tracked links and their clicks",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::CampaignLinks),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn campaign_links(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(links::campaign_links(&state.db, p.store, id).await?))
}
