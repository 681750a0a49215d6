//! The HTTP surface: JSON API under /api, health probes. Handlers are thin: they authenticate,
//! parse, call one `store`/`ledger` function and shape the answer.

pub mod api;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod inbound;
pub mod metrics;
pub mod public;
pub mod sse;
pub mod web;
pub mod webhooks;

use crate::clock::SharedClock;
use crate::domain::{Error, Kind};
use crate::store::rate::Action;
use crate::store::{Db, StoreId};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Settings the HTTP layer needs, resolved from the command line.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub public_url: String,
    pub max_import_bytes: u64,
    pub session_ttl_ms: i64,
    /// Whether the session cookie is marked Secure (when the public URL is https).
    pub secure_cookies: bool,
    /// Behind a reverse proxy: the header that names the client's address (`x-forwarded-for`).
    pub client_ip_header: Option<String>,
    pub send: crate::store::campaigns::SendSettings,
    /// Secrets a provider's webhook calls must carry (`webhooks.rs`).
    pub webhook_secrets: webhooks::WebhookSecrets,
    /// Tokens that may read `/metrics` (and nothing else); compared like webhook secrets.
    pub metrics_tokens: webhooks::WebhookSecrets,
    pub limits: TenantLimits,
}

/// Limits that keep one store from hurting the others (README, "One store, fair share").
#[derive(clap::Args, Clone, Debug)]
pub struct TenantLimits {
    /// Test messages (`POST /api/campaigns/{id}/test`) per store per UTC day.
    #[arg(long, env = "SMSCAST_TEST_SENDS_PER_DAY", default_value_t = TenantLimits::TEST_SENDS_PER_DAY)]
    pub test_sends_per_day: i64,
    /// Open live-event streams (SSE) per store on this node; more answer 429.
    #[arg(long, env = "SMSCAST_MAX_STREAMS_PER_STORE", default_value_t = TenantLimits::STREAMS_PER_STORE)]
    pub max_streams_per_store: usize,
    /// Open live-event streams (SSE) on this node, all stores together; more answer 429.
    #[arg(long, env = "SMSCAST_MAX_STREAMS_PER_NODE", default_value_t = TenantLimits::STREAMS_PER_NODE)]
    pub max_streams_per_node: usize,
    /// API keys a store may create per hour (0: no limit); more answer 429.
    #[arg(long, env = "SMSCAST_KEYS_PER_HOUR", default_value_t = TenantLimits::KEYS_PER_HOUR)]
    pub keys_per_hour: i64,
    /// Contact imports a store may start per hour (0: no limit); more answer 429.
    #[arg(long, env = "SMSCAST_IMPORTS_PER_HOUR", default_value_t = TenantLimits::IMPORTS_PER_HOUR)]
    pub imports_per_hour: i64,
    /// Campaign sends and test sends a store may start per hour (0: no limit); more answer 429.
    #[arg(long, env = "SMSCAST_SENDS_PER_HOUR", default_value_t = TenantLimits::SENDS_PER_HOUR)]
    pub sends_per_hour: i64,
}

impl TenantLimits {
    const TEST_SENDS_PER_DAY: i64 = 50;
    const STREAMS_PER_STORE: usize = 50;
    const STREAMS_PER_NODE: usize = 2_000;
    const KEYS_PER_HOUR: i64 = 20;
    const IMPORTS_PER_HOUR: i64 = 30;
    const SENDS_PER_HOUR: i64 = 120;

    fn per_hour(&self, action: Action) -> i64 {
        match action {
            Action::CreateKey => self.keys_per_hour,
            Action::Import => self.imports_per_hour,
            Action::Send => self.sends_per_hour,
        }
    }
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            test_sends_per_day: TenantLimits::TEST_SENDS_PER_DAY,
            max_streams_per_store: TenantLimits::STREAMS_PER_STORE,
            max_streams_per_node: TenantLimits::STREAMS_PER_NODE,
            keys_per_hour: TenantLimits::KEYS_PER_HOUR,
            imports_per_hour: TenantLimits::IMPORTS_PER_HOUR,
            sends_per_hour: TenantLimits::SENDS_PER_HOUR,
        }
    }
}

/// Counts one costly `action` of `store` against its hourly limit, or refuses it (429 with
/// Retry-After). The API and the web pages call this before the action, so both share one count.
pub async fn rate_limit(state: &AppState, store: StoreId, action: Action) -> Result<(), Error> {
    crate::store::rate::count(&state.db, store, action, state.settings.limits.per_hour(action), state.clock.now_ms()).await
}

pub struct AppState {
    pub db: Db,
    pub clock: SharedClock,
    pub settings: HttpSettings,
    /// Live-update pollers shared by this node's SSE subscribers.
    pub hub: sse::Hub,
    /// API keys this node verified recently.
    pub keys: crate::store::auth::KeyCache,
    /// This node's cap on concurrent password checks.
    pub login: crate::store::auth::LoginGuard,
    /// The installation's code key once it exists (it never changes): one query fewer per
    /// unsubscribe page and per click.
    pub code_key: tokio::sync::OnceCell<crate::domain::unsubscribe::CodeKey>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(web::routes())
        .merge(public::routes())
        .route("/webhooks/mitto/dlr", axum::routing::post(webhooks::mitto_dlr))
        .fallback(web::fallback)
        // Inside the request id, so a refusal carries one; before any handler reads a body.
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::check))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(body_limit))
        .layer(axum::middleware::from_fn(request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| error::error_response(Error::internal("handler panicked"))))
        // Outermost, so every answer has them, the rewritten 405s and caught panics too.
        .layer(axum::middleware::from_fn(csrf::security_headers))
        .with_state(state)
}

/// Largest request body of a route without a limit of its own (`body_limit_of`): JSON and
/// forms are a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most bytes a request body may have at `path`. `None`: the imports, whose limit is
/// `--max-import-bytes` and whose refusal the web page shows as a page (`api::contacts`).
fn body_limit_of(path: &str) -> Option<usize> {
    match path {
        "/api/contacts/import" | "/contacts/import" => None,
        "/webhooks/mitto/dlr" => Some(webhooks::MAX_BODY_BYTES),
        "/webhooks/mitto/inbound" => Some(inbound::MAX_BODY),
        _ => Some(MAX_BODY_BYTES),
    }
}

/// The refusal of a body over `max` bytes (413).
pub fn body_too_large(max: usize) -> Error {
    Error::new(Kind::PayloadTooLarge, "payload_too_large", format!("The request body is larger than {max} bytes."))
        .with_details(serde_json::json!({"max_bytes": max}))
}

/// Refuses a body announced over its route's limit before any handler runs — on every route,
/// those that never read their body too. A body streamed without a length is cut at the limit by
/// whatever reads it (`DefaultBodyLimit`, the webhooks' own reads), also with a 413.
///
/// A refusal of a request that has a body says `Connection: close`: its body may not have been
/// read (a 413, a 429 before an upload), so the connection cannot carry another request, and a
/// client that reused it would see its next request fail.
async fn body_limit(req: Request, next: Next) -> Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    let announced = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let has_body = announced.is_some_and(|n| n > 0) || req.headers().contains_key(TRANSFER_ENCODING);
    let limit = body_limit_of(req.uri().path());
    let mut res = match (announced, limit) {
        (Some(n), Some(max)) if n > max as u64 => error::error_response(body_too_large(max)),
        _ => next.run(req).await,
    };
    // A streamed body cut by an extractor that answers for itself (`Bytes`: plain text).
    if let Some(max) = limit
        && res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
        && res.headers().get(axum::http::header::CONTENT_TYPE).is_none_or(|v| v != "application/json")
    {
        res = error::error_response(body_too_large(max));
    }
    if has_body && (res.status().is_client_error() || res.status().is_server_error()) {
        res.headers_mut().insert(CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    res
}

/// Gives every request an id, visible in the `x-request-id` header and in every log line written
/// while it is handled (a `request` span with the id, method, route and, once authenticated, the
/// store); counts it in the HTTP metrics.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64)
        .map(str::to_string)
        .unwrap_or_else(|| crate::secrets::random_token(16));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // The route's pattern, never the path: one metrics series per route whatever the ids.
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route, store = tracing::field::Empty);
    let started = std::time::Instant::now();
    let mut res = tracing::Instrument::instrument(error::REQUEST_ID.scope(id.clone(), next.run(req)), span.clone()).await;
    if res.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED
        && res.headers().get(axum::http::header::CONTENT_TYPE).is_none_or(|v| v != "application/json")
    {
        res = error::REQUEST_ID
            .scope(id.clone(), async {
                error::error_response(Error::new(Kind::BadRequest, "method_not_allowed", format!("{method} is not supported at {path}.")))
            })
            .await;
        *res.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    }
    let elapsed = started.elapsed();
    crate::telemetry::http_request(&method, &route, res.status().as_u16(), elapsed);
    span.in_scope(|| tracing::debug!(%path, status = res.status().as_u16(), ms = elapsed.as_millis() as u64, "request"));
    if let Ok(v) = id.parse() {
        res.headers_mut().insert("x-request-id", v);
    }
    res.into_response()
}
