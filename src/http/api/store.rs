//! The calling store's settings and API keys.

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Auth, Id};
use crate::store::auth::{self, ApiKeyRow};
use crate::store::senders;
use crate::store::stores::{self, StoreJson, StorePatch, StoreRow};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// A store's settings as its owner sees them: with its latest sender name request.
async fn own_store(state: &AppState, store: StoreRow) -> ApiResult<Json<StoreJson>> {
    let request = senders::latest(&state.db, store.store_id()).await?;
    let mut json = StoreJson::from(store);
    json.sender_request = Some(request.map(|r| r.to_json()));
    Ok(Json(json))
}

#[utoipa::path(
    get,
    path = "/api/store",
    tag = "store",
    operation_id = "get_store",
    summary = "The calling store's settings",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "OK", body = crate::store::stores::StoreJson),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn get_store(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<StoreJson>> {
    own_store(&state, stores::get(&state.db, p.store).await?).await
}

#[utoipa::path(
    patch,
    path = "/api/store",
    tag = "store",
    operation_id = "patch_store",
    summary = "Changes the store's settings",
    security(("api_key" = []), ("session" = [])),
    request_body = crate::store::stores::StorePatch,
    responses(
        (status = 200, description = "OK", body = crate::store::stores::StoreJson),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn patch_store(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(patch): ApiJson<StorePatch>,
) -> ApiResult<Json<StoreJson>> {
    own_store(&state, stores::update(&state.db, p.store, patch, state.clock.now_ms()).await?).await
}

fn key_json(k: ApiKeyRow) -> Value {
    json!({
        "id": k.id, "name": k.name, "prefix": k.prefix, "created_at": rfc3339(k.created_at),
        "last_used_at": k.last_used_at.map(rfc3339), "revoked_at": k.revoked_at.map(rfc3339),
        "active": k.revoked_at.is_none(),
    })
}

#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "store",
    operation_id = "list_keys",
    summary = "The store's API keys, without their secrets",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::KeyList),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn list_keys(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let keys = auth::list_api_keys(&state.db, p.store).await?;
    Ok(Json(json!({"items": keys.into_iter().map(key_json).collect::<Vec<_>>()})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
}

/// The secret is in this answer only; it is stored hashed.
#[utoipa::path(
    post,
    path = "/api/keys",
    tag = "store",
    operation_id = "create_key",
    summary = "Creates an API key",
    security(("api_key" = []), ("session" = [])),
    request_body = NewKey,
    responses(
        (status = 201, description = "Created; the secret is in this answer only.", body = crate::http::api::shapes::CreatedKey),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 422, response = crate::http::api::openapi::Unprocessable),
        (status = 429, response = crate::http::api::openapi::TooManyRequests)
    )
)]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::http::rate_limit(&state, p.store, crate::store::rate::Action::CreateKey).await?;
    let (row, key) = auth::create_api_key(&state.db, p.store, &req.name, state.clock.now_ms()).await?;
    let mut v = key_json(row);
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(
    delete,
    path = "/api/keys/{id}",
    tag = "store",
    operation_id = "revoke_key",
    summary = "Revokes an API key",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The key's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::KeyJson),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn revoke_key(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(key_json(revoke(&state, p.store, id).await?)))
}

/// Revokes a key and forgets this node's recently verified keys, so the key is refused at once
/// here (the settings page calls this too).
pub async fn revoke(state: &AppState, store: crate::store::StoreId, id: i64) -> Result<ApiKeyRow, crate::domain::Error> {
    let revoked = auth::revoke_api_key(&state.db, store, id, state.clock.now_ms()).await?;
    state.keys.clear();
    Ok(revoked)
}
