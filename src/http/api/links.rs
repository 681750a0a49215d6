//! A campaign's tracked links and their clicks.

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Id};
use crate::store::links;
use axum::Json;
use axum::extract::State;
use serde_json::Value;
use std::sync::Arc;

pub async fn campaign_links(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(links::campaign_links(&state.db, p.store, id).await?))
}
