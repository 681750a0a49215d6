//! Campaigns and segments.

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Auth, Id, IdempotencyKey};
use crate::store::campaigns::{self, CampaignFilter, CampaignInput};
use crate::store::segments::{self, SegmentInput};
use crate::store::{idempotency, messages};
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

/// `POST /api/campaigns/{id}/send` (also `/enqueue`). With an `Idempotency-Key`, a replay returns
/// the first answer; the conditional status change makes a second start fail with `invalid_state`.
pub async fn send(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let scope = format!("send:{}", p.store.0);
    let request = serde_json::json!({"campaign_id": id});
    if let Some(k) = &key {
        if let Some(prev) = idempotency::lookup(&state.db, &scope, k, &request).await? {
            return Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(prev.body)));
        }
    }
    let now = state.clock.now_ms();
    let result = messages::start(&state.db, p.store, id, &p.actor.label(), "started", &state.settings.send, now).await;
    match (result, &key) {
        (Ok(body), Some(k)) => {
            // Stored after the fact: the start itself is already guarded by the status change.
            let mut tx = state.db.begin().await?;
            let saved = idempotency::save(&mut tx, &scope, k, &request, 202, &body, now).await;
            if saved.is_ok() {
                tx.commit().await?;
            }
            Ok((StatusCode::ACCEPTED, Json(body)))
        }
        (Ok(body), None) => Ok((StatusCode::ACCEPTED, Json(body))),
        (Err(e), Some(k)) if e.code == "invalid_state" => match idempotency::lookup(&state.db, &scope, k, &request).await? {
            Some(prev) => Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(prev.body))),
            None => Err(ApiError(e)),
        },
        (Err(e), _) => Err(ApiError(e)),
    }
}

pub async fn progress(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(messages::progress(&state.db, p.store, id, state.clock.now_ms()).await?))
}

pub async fn list_messages(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiQuery(f): ApiQuery<messages::MessageFilter>,
) -> ApiResult<Json<Value>> {
    Ok(Json(messages::list(&state.db, p.store, id, f).await?))
}
