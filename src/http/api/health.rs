use crate::http::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// The database answers and every migration is applied.
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
