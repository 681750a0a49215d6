//! Campaigns and segments.

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Auth, Id, IdempotencyKey};
use crate::store::campaigns::{self, CampaignFilter, CampaignInput};
use crate::store::segments::{self, SegmentInput};
use crate::store::{operations, queue};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
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
/// the first answer (`queue::start_with_key`).
pub async fn send(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::http::rate_limit(&state, p.store, crate::store::rate::Action::Send).await?;
    let now = state.clock.now_ms();
    let started = queue::start_with_key(&state.db, p.store, id, &p.actor.label(), key.as_deref(), &state.settings.send, now).await?;
    Ok((StatusCode::from_u16(started.status).unwrap_or(StatusCode::OK), Json(started.body)))
}

pub async fn progress(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<queue::Progress>> {
    Ok(Json(queue::progress(&state.db, p.store, id, state.clock.now_ms()).await?))
}

pub async fn list_messages(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiQuery(f): ApiQuery<queue::MessageFilter>,
) -> ApiResult<Json<Value>> {
    Ok(Json(queue::list(&state.db, p.store, id, f).await?))
}

pub async fn send_test(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(req): ApiJson<queue::TestSend>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::http::rate_limit(&state, p.store, crate::store::rate::Action::Send).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            queue::send_test(
                &state.db,
                p.store,
                id,
                req,
                &state.settings.send,
                state.settings.limits.test_sends_per_day,
                state.clock.now_ms(),
            )
            .await?,
        ),
    ))
}

pub async fn test_message(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (Ok(id), Ok(mid)) = (id.parse::<i64>(), mid.parse::<i64>()) else {
        return Err(crate::domain::Error::not_found("test message").into());
    };
    Ok(Json(queue::get_test_message(&state.db, p.store, id, mid).await?))
}

pub async fn cancel(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::cancel(&state.db, p.store, id, &p.actor.label(), "cancelled", state.clock.now_ms()).await?))
}

pub async fn pause(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::pause(&state.db, p.store, id, &p.actor.label(), "paused", state.clock.now_ms()).await?))
}

pub async fn resume(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::resume(&state.db, p.store, id, &p.actor.label(), state.clock.now_ms()).await?))
}

pub async fn retry_preview(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::retry_preview(&state.db, p.store, id).await?))
}

pub async fn retry_failed(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    let body =
        operations::retry_failed(&state.db, p.store, id, &p.actor.label(), state.settings.send.hold_ttl_ms, state.clock.now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(body)))
}

pub async fn resend_unknown_preview(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::requeue_preview(&state.db, p.store, id, operations::Requeue::Unknown).await?))
}

/// `POST …/resend-unknown` must say `{"confirm_duplicates": true}`: the store owner accepts that
/// people may get the message twice.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendUnknown {
    #[serde(default)]
    confirm_duplicates: bool,
}

pub async fn resend_unknown(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(req): ApiJson<ResendUnknown>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !req.confirm_duplicates {
        // Checked after the campaign is found, so another store's id is still a 404.
        let preview = operations::requeue_preview(&state.db, p.store, id, operations::Requeue::Unknown).await?;
        return Err(crate::domain::Error::new(
            crate::domain::Kind::BadRequest,
            "confirmation_required",
            format!("{} To send them anyway, repeat the request with \"confirm_duplicates\": true.", operations::DUPLICATE_WARNING),
        )
        .with_details(json!({"field": "confirm_duplicates", "messages": preview["messages"], "estimated_cost": preview["estimated_cost"]}))
        .into());
    }
    let body = operations::requeue(
        &state.db,
        p.store,
        id,
        operations::Requeue::Unknown,
        &p.actor.label(),
        state.settings.send.hold_ttl_ms,
        state.clock.now_ms(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(body)))
}

pub async fn failures(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::failures(&state.db, p.store, id).await?))
}

pub async fn store_queue(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<operations::QueueStats>> {
    Ok(Json(operations::queue(&state.db, Some(p.store), state.clock.now_ms()).await?))
}

pub async fn admin_queue(State(state): State<Arc<AppState>>, _: crate::http::extract::Admin) -> ApiResult<Json<operations::QueueStats>> {
    Ok(Json(operations::queue(&state.db, None, state.clock.now_ms()).await?))
}

/// Prometheus text format, for the operator's scraper (admin key required).
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    _: crate::http::extract::Admin,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], String)> {
    let text = operations::metrics(&state.db, state.clock.now_ms()).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
