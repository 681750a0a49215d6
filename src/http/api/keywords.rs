//! A store's own inbound keywords (besides STOP, UNSUBSCRIBE, ΣΤΟΠ, ΔΙΑΓΡΑΦΗ, START and HELP).

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Auth};
use crate::store::optout::{self, KeywordsInput};
use axum::Json;
use axum::extract::State;
use serde_json::Value;
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/api/store/keywords",
    tag = "store",
    operation_id = "get_keywords",
    summary = "The store's own inbound keywords",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Keywords),
        (status = 401, response = crate::http::api::openapi::Unauthorized)
    )
)]
pub async fn get_keywords(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(optout::keywords_json(&state.db, p.store).await?))
}

#[utoipa::path(
    put,
    path = "/api/store/keywords",
    tag = "store",
    operation_id = "put_keywords",
    summary = "Replaces the store's own inbound keywords",
    security(("api_key" = []), ("session" = [])),
    request_body = crate::store::optout::KeywordsInput,
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::Keywords),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn put_keywords(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<KeywordsInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(optout::set_keywords(&state.db, p.store, input).await?))
}
