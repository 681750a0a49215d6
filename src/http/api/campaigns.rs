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

#[utoipa::path(
    post,
    path = "/api/campaigns",
    tag = "campaigns",
    operation_id = "create_campaign",
    summary = "Creates a draft (or scheduled) campaign",
    security(("api_key" = []), ("session" = [])),
    request_body = CampaignInput,
    responses(
        (status = 201, description = "Created.", body = crate::http::api::shapes::Campaign),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = campaigns::create(&state.db, p.store, &p.actor, input, state.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(c.to_json())))
}

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}",
    tag = "campaigns",
    operation_id = "get_campaign",
    summary = "A campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Campaign),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn get(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::get(&state.db, p.store, id).await?.to_json()))
}

#[utoipa::path(
    patch,
    path = "/api/campaigns/{id}",
    tag = "campaigns",
    operation_id = "update_campaign",
    summary = "Changes a draft or scheduled campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    request_body = CampaignInput,
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Campaign),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::update(&state.db, p.store, &p.actor, id, input, state.clock.now_ms()).await?.to_json()))
}

#[utoipa::path(
    delete,
    path = "/api/campaigns/{id}",
    tag = "campaigns",
    operation_id = "delete_campaign",
    summary = "Deletes a draft or scheduled campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict)
    )
)]
pub async fn delete(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    campaigns::delete(&state.db, p.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/campaigns",
    tag = "campaigns",
    operation_id = "list_campaigns",
    summary = "The store's campaigns, newest first",
    security(("api_key" = []), ("session" = [])),
    params(CampaignFilter),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::CampaignList),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn list(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiQuery(f): ApiQuery<CampaignFilter>) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::list(&state.db, p.store, f).await?))
}

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/preview",
    tag = "campaigns",
    operation_id = "preview_campaign",
    summary = "The exact preview of a send",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Preview),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn preview(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::preview(&state.db, p.store, id, &state.settings.send).await?))
}

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/history",
    tag = "campaigns",
    operation_id = "campaign_history",
    summary = "A campaign's status changes",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::History),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn history(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::history(&state.db, p.store, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/segments",
    tag = "segments",
    operation_id = "create_segment",
    summary = "Creates a segment",
    security(("api_key" = []), ("session" = [])),
    request_body = SegmentInput,
    responses(
        (status = 201, description = "Created.", body = crate::http::api::shapes::Segment),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn create_segment(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<SegmentInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(segments::create(&state.db, p.store, input, state.clock.now_ms()).await?)))
}

#[utoipa::path(
    get,
    path = "/api/segments",
    tag = "segments",
    operation_id = "list_segments",
    summary = "The store's segments",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::SegmentList),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn list_segments(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(segments::list(&state.db, p.store).await?))
}

#[utoipa::path(
    get,
    path = "/api/segments/{id}",
    tag = "segments",
    operation_id = "get_segment",
    summary = "A segment",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The segment's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Segment),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn get_segment(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(segments::get(&state.db, p.store, id).await?))
}

#[utoipa::path(
    put,
    path = "/api/segments/{id}",
    tag = "segments",
    operation_id = "update_segment",
    summary = "Changes a segment",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The segment's id.")),
    request_body = SegmentInput,
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Segment),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn update_segment(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(input): ApiJson<SegmentInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(segments::update(&state.db, p.store, id, input, state.clock.now_ms()).await?))
}

#[utoipa::path(
    delete,
    path = "/api/segments/{id}",
    tag = "segments",
    operation_id = "delete_segment",
    summary = "Deletes a segment",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The segment's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn delete_segment(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    segments::delete(&state.db, p.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/campaigns/{id}/send` (also `/enqueue`). With an `Idempotency-Key`, a replay returns
/// the first answer (`queue::start_with_key`).
#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/send",
    tag = "campaigns",
    operation_id = "send_campaign",
    summary = "Starts sending a campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id."), ("Idempotency-Key" = Option<String>, Header, description = "A replay with the same key answers the first answer and sends nothing.")),
    responses(
        (status = 202, description = "Sending: the messages are queued and their credits held.", body = crate::http::api::shapes::SendResult),
        (status = 400, response = crate::http::api::openapi::BadRequest),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 402, response = crate::http::api::openapi::PaymentRequired),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable),
        (status = 429, response = crate::http::api::openapi::TooManyRequests)
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/progress",
    tag = "campaigns",
    operation_id = "campaign_progress",
    summary = "A campaign's progress",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = queue::Progress),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn progress(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<queue::Progress>> {
    Ok(Json(queue::progress(&state.db, p.store, id, state.clock.now_ms()).await?))
}

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/messages",
    tag = "campaigns",
    operation_id = "list_messages",
    summary = "A campaign's messages",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id."), queue::MessageFilter),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::MessageList),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn list_messages(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiQuery(f): ApiQuery<queue::MessageFilter>,
) -> ApiResult<Json<Value>> {
    Ok(Json(queue::list(&state.db, p.store, id, f).await?))
}

#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/test",
    tag = "campaigns",
    operation_id = "send_test",
    summary = "Sends the campaign's message to a few numbers",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    request_body = queue::TestSend,
    responses(
        (status = 202, description = "Queued.", body = crate::http::api::shapes::TestSendResult),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 402, response = crate::http::api::openapi::PaymentRequired),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 422, response = crate::http::api::openapi::Unprocessable),
        (status = 429, response = crate::http::api::openapi::TooManyRequests)
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/test/{message}",
    tag = "campaigns",
    operation_id = "test_message",
    summary = "A test message's state",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id."), ("message" = i64, Path, description = "The test message's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::TestMessage),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
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

#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/cancel",
    tag = "campaigns",
    operation_id = "cancel_campaign",
    summary = "Cancels a campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::CancelResult),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict)
    )
)]
pub async fn cancel(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::cancel(&state.db, p.store, id, &p.actor.label(), "cancelled", state.clock.now_ms()).await?))
}

#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/pause",
    tag = "campaigns",
    operation_id = "pause_campaign",
    summary = "Pauses a sending campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::PauseResult),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict)
    )
)]
pub async fn pause(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::pause(&state.db, p.store, id, &p.actor.label(), "paused", state.clock.now_ms()).await?))
}

#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/resume",
    tag = "campaigns",
    operation_id = "resume_campaign",
    summary = "Resumes a paused campaign",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::ResumeResult),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict)
    )
)]
pub async fn resume(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::resume(&state.db, p.store, id, &p.actor.label(), state.clock.now_ms()).await?))
}

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/retry-failed/preview",
    tag = "campaigns",
    operation_id = "retry_failed_preview",
    summary = "What a retry would send and cost",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::RequeuePreview),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn retry_preview(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::retry_preview(&state.db, p.store, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/retry-failed",
    tag = "campaigns",
    operation_id = "retry_failed",
    summary = "Sends the retryable failed messages again",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 202, description = "Queued again.", body = crate::http::api::shapes::RequeueResult),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 402, response = crate::http::api::openapi::PaymentRequired),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn retry_failed(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<(StatusCode, Json<Value>)> {
    let body =
        operations::retry_failed(&state.db, p.store, id, &p.actor.label(), state.settings.send.hold_ttl_ms, state.clock.now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(body)))
}

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/resend-unknown/preview",
    tag = "campaigns",
    operation_id = "resend_unknown_preview",
    summary = "What a resend would send and cost",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::RequeuePreview),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn resend_unknown_preview(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::requeue_preview(&state.db, p.store, id, operations::Requeue::Unknown).await?))
}

/// `POST …/resend-unknown` must say `{"confirm_duplicates": true}`: the store owner accepts that
/// people may get the message twice.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendUnknown {
    #[serde(default)]
    confirm_duplicates: bool,
}

#[utoipa::path(
    post,
    path = "/api/campaigns/{id}/resend-unknown",
    tag = "campaigns",
    operation_id = "resend_unknown",
    summary = "Sends the messages of unknown fate again",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    request_body = ResendUnknown,
    responses(
        (status = 202, description = "Queued again.", body = crate::http::api::shapes::RequeueResult),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 402, response = crate::http::api::openapi::PaymentRequired),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/failures",
    tag = "campaigns",
    operation_id = "campaign_failures",
    summary = "A campaign's failures by category",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Failures),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn failures(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(operations::failures(&state.db, p.store, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/queue",
    tag = "campaigns",
    operation_id = "store_queue",
    summary = "The store's queue statistics",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "OK", body = operations::QueueStats),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn store_queue(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<operations::QueueStats>> {
    Ok(Json(operations::queue(&state.db, Some(p.store), state.clock.now_ms()).await?))
}

#[utoipa::path(
    get,
    path = "/api/admin/queue",
    tag = "admin",
    operation_id = "admin_queue",
    summary = "Queue statistics of every store, with the engines seen",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "OK", body = operations::QueueStats),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn admin_queue(State(state): State<Arc<AppState>>, _: crate::http::extract::Admin) -> ApiResult<Json<operations::QueueStats>> {
    Ok(Json(operations::queue(&state.db, None, state.clock.now_ms()).await?))
}

/// Prometheus text format, for the operator's scraper (a metrics token or an admin key).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    operation_id = "metrics",
    summary = "Metrics in the Prometheus text format",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format.", body = String, content_type = "text/plain"),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    _: crate::http::metrics::Scraper,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], String)> {
    let text = crate::http::metrics::scrape(&state).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
