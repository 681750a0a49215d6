use crate::http::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "The process is up",
    responses(
        (status = 200, description = "The process is up.", body = crate::http::api::shapes::OkBody)
    )
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// The database answers and every migration is applied.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    summary = "The database answers and every migration is applied",
    responses(
        (status = 200, description = "Ready to serve.", body = crate::http::api::shapes::Ready),
        (status = 503, response = crate::http::api::openapi::Unavailable)
    )
)]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    if state.db.ready().await {
        (StatusCode::OK, Json(json!({"ok": true, "database": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"ok": false, "code": "not_ready", "message": "The database is unreachable or not migrated.", "details": {}, "actionable": false}),
            ),
        )
    }
}
