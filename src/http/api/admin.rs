//! Platform operator endpoints.

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{Admin, ApiJson, ApiQuery, Id};
use crate::store::auth::{self, AdminKeyRow};
use crate::store::senders::{self, SenderFilter};
use crate::store::stores::{self, CreateStore, StoreJson};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/api/admin/stores",
    tag = "admin",
    operation_id = "list_stores",
    summary = "Every store, with its claim weight",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::StoreList),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn list_stores(State(state): State<Arc<AppState>>, _: Admin) -> ApiResult<Json<Value>> {
    let weights = stores::weights(&state.db).await?;
    let items: Vec<Value> = stores::list(&state.db)
        .await?
        .into_iter()
        .map(|s| {
            let weight = weights.get(&s.id).copied().unwrap_or(1);
            let mut v = json!(StoreJson::from(s));
            v["weight"] = json!(weight);
            v
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weight {
    weight: i64,
}

/// `PUT /api/admin/stores/{id}/weight`: the store's share in the claim round-robin.
#[utoipa::path(
    put,
    path = "/api/admin/stores/{id}/weight",
    tag = "admin",
    operation_id = "set_weight",
    summary = "Sets a store's share in the claim round-robin",
    security(("admin_key" = [])),
    params(("id" = i64, Path, description = "The store's id.")),
    request_body = Weight,
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::WeightJson),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn set_weight(State(state): State<Arc<AppState>>, _: Admin, Id(id): Id, ApiJson(req): ApiJson<Weight>) -> ApiResult<Json<Value>> {
    Ok(Json(stores::set_weight(&state.db, crate::store::StoreId(id), req.weight, state.clock.now_ms()).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    name: String,
    email: String,
    #[serde(default)]
    default_country: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    sender_name: Option<String>,
}

/// Creates a store with its first user; the answer holds the password and API key, shown once.
#[utoipa::path(
    post,
    path = "/api/admin/stores",
    tag = "admin",
    operation_id = "create_store",
    summary = "Creates a store and its first user",
    security(("admin_key" = [])),
    request_body = NewStore,
    responses(
        (status = 201, description = "Created; the password and the API key are in this answer only.", body = crate::http::api::shapes::CreatedStore),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn create_store(
    State(state): State<Arc<AppState>>,
    _: Admin,
    ApiJson(req): ApiJson<NewStore>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let created = stores::create(
        &state.db,
        state.clock.now_ms(),
        CreateStore {
            name: &req.name,
            email: &req.email,
            country: req.default_country.as_deref().unwrap_or("GR"),
            language: req.language.as_deref().unwrap_or("el"),
            timezone: req.timezone.as_deref().unwrap_or("Europe/Athens"),
            sender_name: req.sender_name.as_deref(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"store": StoreJson::from(created.store), "email": created.email, "password": created.password, "api_key": created.api_key}),
        ),
    ))
}

fn admin_key_json(k: AdminKeyRow) -> Value {
    json!({
        "id": k.id, "name": k.name, "prefix": k.prefix, "created_at": rfc3339(k.created_at),
        "revoked_at": k.revoked_at.map(rfc3339), "active": k.revoked_at.is_none(),
    })
}

/// Operator keys, without their secrets.
#[utoipa::path(
    get,
    path = "/api/admin/keys",
    tag = "admin",
    operation_id = "list_admin_keys",
    summary = "Operator keys, without their secrets",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::AdminKeyList),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn list_admin_keys(State(state): State<Arc<AppState>>, _: Admin) -> ApiResult<Json<Value>> {
    let keys = auth::list_admin_keys(&state.db).await?;
    Ok(Json(json!({"items": keys.into_iter().map(admin_key_json).collect::<Vec<_>>()})))
}

#[utoipa::path(
    delete,
    path = "/api/admin/keys/{id}",
    tag = "admin",
    operation_id = "revoke_admin_key",
    summary = "Revokes an operator key",
    security(("admin_key" = [])),
    params(("id" = i64, Path, description = "The key's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::AdminKeyJson),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn revoke_admin_key(State(state): State<Arc<AppState>>, _: Admin, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(admin_key_json(auth::revoke_admin_key(&state.db, id, state.clock.now_ms()).await?)))
}

/// Sender name requests (`?status=pending` by default).
#[utoipa::path(
    get,
    path = "/api/admin/senders",
    tag = "admin",
    operation_id = "list_senders",
    summary = "Sender name requests, oldest first",
    security(("admin_key" = [])),
    params(SenderFilter),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::SenderList),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn list_senders(State(state): State<Arc<AppState>>, _: Admin, ApiQuery(f): ApiQuery<SenderFilter>) -> ApiResult<Json<Value>> {
    Ok(Json(senders::list(&state.db, f).await?))
}

#[utoipa::path(
    post,
    path = "/api/admin/senders/{id}/approve",
    tag = "admin",
    operation_id = "approve_sender",
    summary = "Approves a sender name request",
    security(("admin_key" = [])),
    params(("id" = i64, Path, description = "The request's id.")),
    responses(
        (status = 200, description = "OK", body = crate::store::senders::SenderRequestJson),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict)
    )
)]
pub async fn approve_sender(State(state): State<Arc<AppState>>, _: Admin, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(senders::decide(&state.db, id, true, None, state.clock.now_ms()).await?.to_json()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    #[serde(default)]
    reason: Option<String>,
}

/// The body (`{"reason": "…"}`, shown to the store) is optional.
#[utoipa::path(
    post,
    path = "/api/admin/senders/{id}/reject",
    tag = "admin",
    operation_id = "reject_sender",
    summary = "Rejects a sender name request",
    security(("admin_key" = [])),
    params(("id" = i64, Path, description = "The request's id.")),
    request_body(content = Option<Rejection>, description = "Optional: the reason, shown to the store.", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = crate::store::senders::SenderRequestJson),
        (status = 400, response = crate::http::api::openapi::BadRequest),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn reject_sender(State(state): State<Arc<AppState>>, _: Admin, Id(id): Id, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let req: Rejection =
        if body.iter().all(u8::is_ascii_whitespace) { Rejection::default() } else { crate::http::extract::parse_json(&body)? };
    Ok(Json(senders::decide(&state.db, id, false, req.reason.as_deref(), state.clock.now_ms()).await?.to_json()))
}
