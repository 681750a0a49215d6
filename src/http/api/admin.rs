//! Platform operator endpoints.

use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{Admin, ApiJson};
use crate::store::stores::{self, CreateStore, StoreJson};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn list_stores(State(state): State<Arc<AppState>>, _: Admin) -> ApiResult<Json<Value>> {
    let items: Vec<StoreJson> = stores::list(&state.db).await?.into_iter().map(Into::into).collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
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
