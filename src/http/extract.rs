//! Extractors that fail in the one error shape: JSON bodies, query strings, path ids, and
//! authentication (API key, session cookie, operator key).

use super::AppState;
use super::error::ApiError;
use crate::domain::{Error, Kind};
use crate::store::auth::{self, Principal};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "smscast_session";

/// A JSON body. Wrong content type → 415; malformed JSON → 400; unknown fields and wrong types →
/// 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        });
        if !is_json {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                "unsupported_media_type",
                "Send the request body as JSON with Content-Type: application/json.",
            )
            .into());
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                super::body_too_large(super::MAX_BODY_BYTES)
            } else {
                Error::new(Kind::BadRequest, "invalid_body", "The request body could not be read.")
            }
        })?;
        parse_json(&bytes).map(ApiJson).map_err(ApiError)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let data = inner.classify() == serde_json::error::Category::Data;
        // serde_json reports some wrong types (`true` or `null` for an enum) as syntax errors; in a
        // body that is valid JSON, every problem is a value problem.
        if data || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            let msg = if data { inner.to_string() } else { "this value has the wrong type".to_string() };
            // The path names the field itself, except at the top level of the document.
            let field = if path == "." {
                msg.strip_prefix("unknown field `")
                    .or_else(|| msg.strip_prefix("missing field `"))
                    .and_then(|r| r.split('`').next())
                    .unwrap_or("body")
                    .to_string()
            } else {
                path
            };
            let clean = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            Error::invalid("invalid_field", format!("{field}: {clean}")).with_details(json!({"field": field}))
        } else if bytes.iter().all(u8::is_ascii_whitespace) {
            Error::new(Kind::BadRequest, "invalid_json", "The request body is empty; send a JSON object.")
        } else {
            Error::new(Kind::BadRequest, "invalid_json", format!("The request body is not valid JSON: {inner}"))
        }
    })?;
    // Characters after the document (`{…}}`, `{…} x`) make the body invalid JSON too.
    de.end().map_err(|e| Error::new(Kind::BadRequest, "invalid_json", format!("The request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A query string; bad values are 422 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let field = e.path().to_string();
            let msg = e.inner().to_string();
            let field = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_string).unwrap_or(field);
            ApiError(Error::invalid("invalid_query", format!("{field}: {msg}")).with_details(json!({"field": field})))
        })
    }
}

/// A numeric id in the path. Anything else is "not found", the same answer as a missing id.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params =
            axum::extract::RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError(Error::not_found("object")))?;
        params
            .iter()
            .find(|(k, _)| *k == "id")
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .map(Id)
            .ok_or_else(|| ApiError(Error::not_found("object")))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

pub fn session_cookie(parts: &Parts) -> Option<String> {
    session_cookie_in(&parts.headers)
}

pub fn session_cookie_in(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE && !v.is_empty()).then(|| v.to_string())
    })
}

/// A store-level caller, by API key or login session.
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let now = state.clock.now_ms();
        // The request's log lines name the store from here on.
        let in_span = |p: Principal| {
            tracing::Span::current().record("store", p.store.0);
            Auth(p)
        };
        if let Some(key) = bearer(parts) {
            return auth::authenticate_key(&state.db, &state.keys, key, now).await?.map(in_span).ok_or_else(|| {
                ApiError(Error::new(Kind::Unauthorized, "invalid_api_key", "This API key is not valid or has been revoked."))
            });
        }
        if let Some(token) = session_cookie(parts) {
            return auth::authenticate_session(&state.db, &token, now).await?.map(in_span).ok_or_else(|| {
                ApiError(Error::new(Kind::Unauthorized, "session_expired", "Your session has expired; please log in again."))
            });
        }
        Err(ApiError(Error::unauthorized("Authenticate with an API key (Authorization: Bearer sk_live_…) or log in.")))
    }
}

/// Who is calling, for per-client limits: the peer's address, or, behind a reverse proxy
/// (`--client-ip-header`), the last address that header names (the one our proxy added; earlier
/// ones are the client's to forge). IPv6 addresses count by their /64, which one client
/// usually has whole.
pub struct ClientAddr(pub String);

impl FromRequestParts<Arc<AppState>> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let forwarded = state.settings.client_ip_header.as_deref().and_then(|name| {
            let values = parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
            values.flat_map(|v| v.split(',')).filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok()).next_back()
        });
        let peer = || parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddr(match forwarded.or_else(peer) {
            Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
            Some(ip) => ip.to_string(),
            None => "unknown".to_string(),
        }))
    }
}

/// The platform operator, by an admin key.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let Some(key) = bearer(parts) else {
            return Err(ApiError(Error::unauthorized("Operator endpoints need an admin API key (Authorization: Bearer sk_admin_…).")));
        };
        if auth::authenticate_admin(&state.db, key).await? {
            Ok(Admin)
        } else {
            // Store keys are not admin keys: same answer as an unknown key, nothing to probe.
            Err(ApiError(Error::new(Kind::Unauthorized, "invalid_api_key", "This admin API key is not valid or has been revoked.")))
        }
    }
}

/// The `Idempotency-Key` header, when present.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => {
                let k = v.to_str().map(str::trim).unwrap_or("");
                if k.is_empty() || k.len() > 255 {
                    Err(ApiError(Error::new(
                        Kind::BadRequest,
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 255 visible characters.",
                    )))
                } else {
                    Ok(IdempotencyKey(Some(k.to_string())))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only by Debug
    struct Body {
        name: String,
        count: Option<i64>,
        tags: Option<Vec<String>>,
        audience: Option<crate::domain::campaign::Audience>,
    }

    fn refused_properly(e: &Error) -> Result<(), TestCaseError> {
        match e.code.as_ref() {
            "invalid_json" => prop_assert_eq!(e.kind, Kind::BadRequest),
            "invalid_field" => prop_assert!(e.details["field"].is_string(), "{:?}", e),
            other => prop_assert!(false, "unexpected code {}", other),
        }
        Ok(())
    }

    proptest! {
        /// Any body, JSON or not, is parsed or refused in the one error shape (400 for what is
        /// not JSON, 422 naming the field for the rest).
        #[test]
        fn any_body_parses_or_is_refused_by_field(
            doc in crate::domain::fuzz::json_value(&["name", "count", "tags", "audience", "kind", "any", "all", "id"]),
            bytes in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            for body in [serde_json::to_vec(&doc).unwrap(), bytes] {
                if let Err(e) = parse_json::<Body>(&body) {
                    refused_properly(&e)?;
                }
            }
        }
    }

    #[test]
    fn deep_nesting_and_trailing_garbage_are_refused() {
        for body in ["[".repeat(100_000), format!("{{\"name\": {}}}", "[".repeat(10_000)), "{\"name\": \"x\"}}".into(), String::new()] {
            let e = parse_json::<Body>(body.as_bytes()).unwrap_err();
            refused_properly(&e).unwrap();
        }
    }
}
