//! Campaigns and segments.

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Auth, Id};
use crate::store::campaigns::{self, CampaignFilter, CampaignInput};
use crate::store::segments::{self, SegmentInput};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use std::sync::Arc;

pub async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = campaigns::create(&state.db, p.store, &p.actor, input, state.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(c.to_json())))
}

pub async fn get(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::get(&state.db, p.store, id).await?.to_json()))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::update(&state.db, p.store, &p.actor, id, input, state.clock.now_ms()).await?.to_json()))
}

pub async fn delete(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    campaigns::delete(&state.db, p.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiQuery(f): ApiQuery<CampaignFilter>) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::list(&state.db, p.store, f).await?))
}

pub async fn preview(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::preview(&state.db, p.store, id, &state.settings.send).await?))
}

pub async fn history(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::history(&state.db, p.store, id).await?))
}

pub async fn create_segment(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<SegmentInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(segments::create(&state.db, p.store, input, state.clock.now_ms()).await?)))
}

pub async fn list_segments(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(segments::list(&state.db, p.store).await?))
}

pub async fn get_segment(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(segments::get(&state.db, p.store, id).await?))
}

pub async fn update_segment(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(input): ApiJson<SegmentInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(segments::update(&state.db, p.store, id, input, state.clock.now_ms()).await?))
}

pub async fn delete_segment(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    segments::delete(&state.db, p.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
