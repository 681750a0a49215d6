//! A store's own inbound keywords (besides STOP, UNSUBSCRIBE, ΣΤΟΠ, ΔΙΑΓΡΑΦΗ, START and HELP).

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Auth};
use crate::store::optout::{self, KeywordsInput};
use axum::Json;
use axum::extract::State;
use serde_json::Value;
use std::sync::Arc;

pub async fn get_keywords(State(state): State<Arc<AppState>>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(optout::keywords_json(&state.db, p.store).await?))
}

pub async fn put_keywords(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<KeywordsInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(optout::set_keywords(&state.db, p.store, input).await?))
}
