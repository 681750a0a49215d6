//! Login sessions: a random token in an HttpOnly cookie, a hashed row on the server.

use crate::domain::{Error, Kind};
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ClientAddr, SESSION_COOKIE, session_cookie};
use crate::http::{AppState, HttpSettings};
use crate::store::auth;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/login",
    tag = "session",
    operation_id = "login",
    summary = "Log in with email and password",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in; the session is in the `smscast_session` cookie (Set-Cookie).", body = crate::http::api::shapes::LoginOk),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 422, response = crate::http::api::openapi::Unprocessable),
        (status = 429, response = crate::http::api::openapi::TooManyRequests),
        (status = 503, response = crate::http::api::openapi::Unavailable)
    )
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<Login>,
) -> ApiResult<Response> {
    let now = state.clock.now_ms();
    let ttl = state.settings.session_ttl_ms;
    let Some(session) = auth::login(&state.db, &state.login, &req.email, &req.password, &client, now, ttl).await? else {
        return Err(Error::new(Kind::Unauthorized, "invalid_credentials", "The email or password is not correct.").into());
    };
    let mut res = Json(json!({"ok": true, "expires_at": crate::domain::time::rfc3339(session.expires_at)})).into_response();
    res.headers_mut().insert(SET_COOKIE, session_cookie_header(&state.settings, &session)?);
    Ok(res)
}

/// The session cookie for a new login (API and web pages alike).
pub fn session_cookie_header(settings: &HttpSettings, session: &auth::Session) -> Result<HeaderValue, Error> {
    let secure = if settings.secure_cookies { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", session.token, settings.session_ttl_ms / 1000);
    HeaderValue::from_str(&cookie).map_err(Error::internal)
}

/// Clears the session cookie.
pub const LOGOUT_COOKIE: &str = "smscast_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0";

#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "session",
    operation_id = "logout",
    summary = "Log out: ends the session and clears its cookie",
    security((), ("session" = [])),
    responses(
        (status = 200, description = "Logged out.", body = crate::http::api::shapes::OkBody),
        (status = 403, response = crate::http::api::openapi::Forbidden)
    )
)]
pub async fn logout(State(state): State<Arc<AppState>>, parts: Parts) -> ApiResult<Response> {
    if let Some(token) = session_cookie(&parts) {
        auth::logout(&state.db, &token).await?;
    }
    let mut res = Json(json!({"ok": true})).into_response();
    res.headers_mut().insert(SET_COOKIE, HeaderValue::from_static(LOGOUT_COOKIE));
    Ok(res)
}
