//! Credits: the store's wallet and ledger, the operator's top-ups.

use crate::domain::Error;
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{Admin, ApiJson, ApiQuery, Auth, Id, IdempotencyKey};
use crate::store::ledger;
use crate::store::{StoreId, idempotency, stores};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/api/wallet",
    tag = "wallet",
    operation_id = "wallet",
    summary = "The store's credits",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "OK", body = ledger::Wallet),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn wallet(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<ledger::Wallet>> {
    Ok(Json(ledger::wallet(&state.db, p.store).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/wallet/entries",
    tag = "wallet",
    operation_id = "wallet_entries",
    summary = "The store's ledger, newest first",
    security(("api_key" = []), ("session" = [])),
    params(Page),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::LedgerPage),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn entries(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiQuery(q): ApiQuery<Page>) -> ApiResult<Json<Value>> {
    Ok(Json(ledger::entries(&state.db, p.store, q.cursor.as_deref(), q.limit).await?))
}

#[derive(Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    amount: i64,
    reason: String,
}

/// `POST /api/admin/stores/{id}/credits` with an `Idempotency-Key`: a replay answers the same and
/// moves nothing.
#[utoipa::path(
    post,
    path = "/api/admin/stores/{id}/credits",
    tag = "admin",
    operation_id = "top_up",
    summary = "Adds credits to a store's wallet",
    security(("admin_key" = [])),
    params(("id" = i64, Path, description = "The store's id."), ("Idempotency-Key" = String, Header, description = "Required: a retried top-up with the same key answers the first answer and credits nothing.")),
    request_body = TopUp,
    responses(
        (status = 201, description = "Credited (or the first answer under this Idempotency-Key).", body = crate::http::api::shapes::TopUpResult),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn top_up(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<TopUp>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(key) = key else {
        return Err(Error::new(
            crate::domain::Kind::BadRequest,
            "missing_idempotency_key",
            "Send an Idempotency-Key header so a retried top-up cannot credit twice.",
        )
        .into());
    };
    let (status, body) = top_up_once(&state, StoreId(id), &key, req.amount, &req.reason).await?;
    Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(body)))
}

/// One top-up under an idempotency key (the operator's page calls this too): a replay answers the
/// first answer's status and body and moves nothing.
pub async fn top_up_once(state: &AppState, store: StoreId, key: &str, amount: i64, reason: &str) -> Result<(u16, Value), Error> {
    let store = StoreId(stores::get(&state.db, store).await?.id);
    let scope = format!("top_up:{}", store.0);
    let request = json!({"store": store.0, "amount": amount, "reason": reason});
    if let Some(prev) = idempotency::lookup(&state.db, &scope, key, &request).await? {
        return Ok((prev.status, prev.body));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(Error::invalid_field("reason", "Give a reason of 1 to 200 characters (it appears in the store's ledger)."));
    }
    let now = state.clock.now_ms();
    let result: Result<Value, Error> = async {
        let mut tx = state.db.begin().await?;
        let moved = ledger::top_up(&mut tx, store, amount, reason, &format!("topup:{}:{key}", store.0), now).await?;
        let body = json!({"ok": true, "transfer_id": moved.id(), "store_id": store.0, "amount": amount});
        idempotency::save(&mut tx, &scope, key, &request, 201, &body, now).await?;
        tx.commit().await?;
        Ok(body)
    }
    .await;
    match result {
        Ok(mut body) => {
            body["wallet"] = json!(ledger::wallet(&state.db, store).await?);
            Ok((201, body))
        }
        // A concurrent request with the same key won the race: answer what it answered.
        Err(e) => match idempotency::lookup(&state.db, &scope, key, &request).await? {
            Some(prev) => Ok((prev.status, prev.body)),
            None => Err(e),
        },
    }
}

#[utoipa::path(
    get,
    path = "/api/admin/rate-limits",
    tag = "admin",
    operation_id = "list_rate_limits",
    summary = "Cluster-wide send rate limits",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::RateLimitList),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn list_rate_limits(State(state): State<Arc<AppState>>, _: Admin) -> ApiResult<Json<Value>> {
    Ok(Json(crate::store::rate::list(&state.db).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// `provider:{name}` (e.g. `provider:mitto`) or `store:{id}`.
    key: String,
    /// Messages per second; 0 removes the limit.
    rate_per_sec: i64,
}

/// What a rate limit may be keyed by (the operator's page checks the same).
pub fn check_rate_key(key: &str) -> Result<(), Error> {
    let valid = key.strip_prefix("provider:").is_some_and(|n| !n.is_empty())
        || key.strip_prefix("store:").is_some_and(|n| n.parse::<i64>().is_ok());
    if valid { Ok(()) } else { Err(Error::invalid_field("key", "The key must be provider:{name} or store:{id}.")) }
}

/// Changes a cluster-wide limit at runtime; every engine reads it on its next batch.
#[utoipa::path(
    put,
    path = "/api/admin/rate-limits",
    tag = "admin",
    operation_id = "set_rate_limit",
    summary = "Sets a send rate limit",
    security(("admin_key" = [])),
    request_body = RateLimit,
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::RateLimitJson),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn set_rate_limit(State(state): State<Arc<AppState>>, _: Admin, ApiJson(req): ApiJson<RateLimit>) -> ApiResult<Json<Value>> {
    check_rate_key(&req.key)?;
    Ok(Json(crate::store::rate::set(&state.db, &req.key, req.rate_per_sec, state.clock.now_ms()).await?))
}
