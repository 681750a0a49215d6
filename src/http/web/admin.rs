//! The operator's pages: log in with an admin key, see every store's credits, top one up (under
//! an idempotency key, so a double submit credits once), and watch the send queue.

use super::i18n::Lang;
use super::{Layout, WebError, WebForm, WebResult, cookie, html, lang_of, redirect};
use crate::domain::{Error, Kind};
use crate::http::AppState;
use crate::http::api::wallet::top_up_once;
use crate::store::senders::{self, SenderFilter};
use crate::store::{StoreId, auth, operations, stores};
use askama::Template;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The operator's key rides in this cookie, HttpOnly and only sent to `/admin` pages. There is no
/// operator session table: the key is checked on every request, so revoking it logs the page out.
const ADMIN_COOKIE: &str = "smscast_admin";

pub struct Operator {
    lang: Lang,
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let key = cookie(&parts.headers, ADMIN_COOKIE).map(str::to_string);
        let ok = match key {
            Some(k) => auth::authenticate_admin(&state.db, &k).await.map_err(|e| WebError(e).into_response())?,
            None => false,
        };
        if !ok {
            return Err(redirect("/admin"));
        }
        Ok(Operator { lang: lang_of(&parts.headers, None) })
    }
}

fn layout(lang: Lang, title: &str, path: &str, active: &'static str) -> Layout {
    Layout { operator: true, active, ..Layout::public(lang, title, path) }
}

#[derive(Template)]
#[template(path = "admin_login.html")]
struct LoginPage {
    l: Layout,
}

pub async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> WebResult {
    if let Some(k) = cookie(&headers, ADMIN_COOKIE) {
        if auth::authenticate_admin(&state.db, k).await? {
            return Ok(redirect("/admin/stores"));
        }
    }
    let lang = lang_of(&headers, None);
    Ok(html(StatusCode::OK, &LoginPage { l: Layout::public(lang, lang.t().op_login_title, "/admin") }))
}

#[derive(Deserialize)]
pub struct KeyForm {
    key: String,
}

pub async fn login(State(state): State<Arc<AppState>>, headers: HeaderMap, WebForm(f): WebForm<KeyForm>) -> WebResult {
    let lang = lang_of(&headers, None);
    let key = f.key.trim();
    if !auth::authenticate_admin(&state.db, key).await? {
        let l = Layout { error: Some(lang.t().op_bad_key.into()), ..Layout::public(lang, lang.t().op_login_title, "/admin") };
        return Ok(html(StatusCode::UNAUTHORIZED, &LoginPage { l }));
    }
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    let mut res = redirect("/admin/stores");
    let c = format!("{ADMIN_COOKIE}={key}; Path=/admin; HttpOnly; SameSite=Strict{secure}");
    res.headers_mut().insert(SET_COOKIE, HeaderValue::from_str(&c).map_err(Error::internal)?);
    Ok(res)
}

pub async fn logout() -> Response {
    let mut res = redirect("/admin");
    res.headers_mut().insert(SET_COOKIE, HeaderValue::from_static("smscast_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"));
    res
}

pub struct StoreLine {
    pub id: i64,
    pub name: String,
    pub language: String,
    pub available: String,
    pub held: String,
    /// A fresh key per rendered form: submitting the same form twice credits once.
    pub idem: String,
}

pub struct Stat {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
}

pub struct Worker {
    pub id: String,
    pub host: String,
    pub in_flight: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct StoresPage {
    l: Layout,
    stores: Vec<StoreLine>,
    queue: Vec<Stat>,
    workers: Vec<Worker>,
}

async fn stores_page(state: &AppState, lang: Lang, flash: Option<String>, error: Option<(StatusCode, String)>) -> WebResult {
    let t = lang.t();
    let mut lines = Vec::new();
    for s in stores::list(&state.db).await? {
        let w = crate::store::ledger::wallet(&state.db, StoreId(s.id)).await?;
        lines.push(StoreLine {
            id: s.id,
            name: s.name,
            language: s.language,
            available: lang.int(w.available),
            held: lang.int(w.held),
            idem: crate::secrets::random_token(24),
        });
    }
    let q = operations::queue(&state.db, None, state.clock.now_ms()).await?;
    let n = |v: i64| lang.int(v);
    let queue = vec![
        Stat { key: "waiting", label: t.op_waiting, value: n(q.waiting) },
        Stat { key: "delayed", label: t.op_delayed, value: n(q.delayed) },
        Stat { key: "active", label: t.op_active, value: n(q.active) },
        Stat { key: "completed", label: t.op_completed, value: n(q.completed) },
        Stat { key: "failed", label: t.failed, value: n(q.failed) },
        Stat { key: "last_minute", label: t.op_last_minute, value: n(q.throughput.last_minute) },
        Stat { key: "oldest", label: t.op_oldest, value: n(q.oldest_waiting_seconds) },
    ];
    let workers = q.workers.into_iter().map(|w| Worker { id: w.id, host: w.host.unwrap_or_default(), in_flight: n(w.in_flight) }).collect();
    let (status, error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let l = Layout { flash, error, ..layout(lang, t.op_stores, "/admin/stores", "stores") };
    Ok(html(status, &StoresPage { l, stores: lines, queue, workers }))
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

pub async fn stores(State(state): State<Arc<AppState>>, op: Operator, RawQuery(q): RawQuery) -> WebResult {
    let q: DoneQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let flash = (q.done.as_deref() == Some("topped_up")).then(|| op.lang.t().op_topped_up.to_string());
    stores_page(&state, op.lang, flash, None).await
}

#[derive(Deserialize)]
pub struct TopUpForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    idem: String,
}

/// `POST /admin/stores/{id}/credits`: the same top-up as `POST /api/admin/stores/{id}/credits`.
pub async fn top_up(State(state): State<Arc<AppState>>, op: Operator, Path(id): Path<String>, WebForm(f): WebForm<TopUpForm>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("store"))?;
    let result = match f.amount.trim().parse::<i64>() {
        Ok(amount) if !f.idem.is_empty() => {
            top_up_once(&state, StoreId(id), &format!("web:{}", f.idem), amount, &f.reason).await.map(|_| ())
        }
        Ok(_) => Err(Error::new(Kind::BadRequest, "missing_idempotency_key", "Reload the page and submit the form again.")),
        Err(_) => Err(Error::invalid_field("amount", "The amount must be a whole number of credits.")),
    };
    match result {
        Ok(()) => Ok(redirect("/admin/stores?done=topped_up")),
        Err(e) if matches!(e.kind, Kind::Internal | Kind::NotFound) => Err(WebError(e)),
        Err(e) => stores_page(&state, op.lang, None, Some((crate::http::error::status_of(e.kind), e.message))).await,
    }
}

pub struct SenderLine {
    pub id: i64,
    pub store_id: i64,
    pub store_name: String,
    pub sender_name: String,
    pub current: String,
    pub requested: String,
}

#[derive(Template)]
#[template(path = "admin_senders.html")]
struct SendersPage {
    l: Layout,
    requests: Vec<SenderLine>,
}

/// The waiting requests, oldest first, from the same list as `GET /api/admin/senders`.
async fn senders_page(state: &AppState, lang: Lang, flash: Option<String>, error: Option<(StatusCode, String)>) -> WebResult {
    let list = senders::list(&state.db, SenderFilter { limit: Some(500), ..SenderFilter::default() }).await?;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let requests = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| SenderLine {
            id: r["id"].as_i64().unwrap_or_default(),
            store_id: r["store_id"].as_i64().unwrap_or_default(),
            store_name: s(&r["store_name"]),
            sender_name: s(&r["sender_name"]),
            current: s(&r["current_sender_name"]),
            // "2026-12-06T23:24:35Z" as "2026-12-06 23:24 UTC".
            requested: s(&r["requested_at"]).get(..16).map(|d| format!("{} UTC", d.replace('T', " "))).unwrap_or_default(),
        })
        .collect();
    let (status, error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let l = Layout { flash, error, ..layout(lang, lang.t().op_senders, "/admin/senders", "senders") };
    Ok(html(status, &SendersPage { l, requests }))
}

pub async fn senders(State(state): State<Arc<AppState>>, op: Operator, RawQuery(q): RawQuery) -> WebResult {
    let q: DoneQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let t = op.lang.t();
    let flash = match q.done.as_deref() {
        Some("approved") => Some(t.op_approved.to_string()),
        Some("rejected") => Some(t.op_rejected.to_string()),
        _ => None,
    };
    senders_page(&state, op.lang, flash, None).await
}

#[derive(Deserialize, Default)]
pub struct DecideForm {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/senders/{id}/approve` and `…/reject`: the same decision as the admin API's.
async fn decide(state: &AppState, op: Operator, id: &str, approve: bool, reason: &str) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("sender request"))?;
    match senders::decide(&state.db, id, approve, Some(reason), state.clock.now_ms()).await {
        Ok(_) => Ok(redirect(if approve { "/admin/senders?done=approved" } else { "/admin/senders?done=rejected" })),
        Err(e) if matches!(e.kind, Kind::Internal | Kind::NotFound) => Err(WebError(e)),
        // Decided meanwhile (another tab, the API) or a too-long reason: the page says which.
        Err(e) => senders_page(state, op.lang, None, Some((crate::http::error::status_of(e.kind), e.message))).await,
    }
}

pub async fn approve(State(state): State<Arc<AppState>>, op: Operator, Path(id): Path<String>) -> WebResult {
    decide(&state, op, &id, true, "").await
}

pub async fn reject(
    State(state): State<Arc<AppState>>,
    op: Operator,
    Path(id): Path<String>,
    WebForm(f): WebForm<DecideForm>,
) -> WebResult {
    decide(&state, op, &id, false, &f.reason).await
}

pub struct RateLine {
    pub key: String,
    pub rate: i64,
    pub shown: String,
    /// The key as an HTML id part (`provider:mitto` → `provider-mitto`).
    pub slug: String,
}

#[derive(Template)]
#[template(path = "admin_rates.html")]
struct RatesPage {
    l: Layout,
    rates: Vec<RateLine>,
}

/// The limits from the same list as `GET /api/admin/rate-limits`.
async fn rates_page(state: &AppState, lang: Lang, flash: Option<String>, error: Option<(StatusCode, String)>) -> WebResult {
    let t = lang.t();
    let list = crate::store::rate::list(&state.db).await?;
    let rates = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let key = r["key"].as_str().unwrap_or_default().to_string();
            let rate = r["rate_per_sec"].as_i64().unwrap_or_default();
            RateLine {
                slug: key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect(),
                shown: if rate == 0 { t.op_no_limit.to_string() } else { lang.int(rate) },
                key,
                rate,
            }
        })
        .collect();
    let (status, error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let l = Layout { flash, error, ..layout(lang, t.op_rates, "/admin/rate-limits", "rates") };
    Ok(html(status, &RatesPage { l, rates }))
}

pub async fn rates(State(state): State<Arc<AppState>>, op: Operator, RawQuery(q): RawQuery) -> WebResult {
    let q: DoneQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let flash = (q.done.as_deref() == Some("saved")).then(|| op.lang.t().op_rate_saved.to_string());
    rates_page(&state, op.lang, flash, None).await
}

#[derive(Deserialize)]
pub struct RateForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    rate_per_sec: String,
}

/// `POST /admin/rate-limits`: the same checks and store call as `PUT /api/admin/rate-limits`.
pub async fn set_rate(State(state): State<Arc<AppState>>, op: Operator, WebForm(f): WebForm<RateForm>) -> WebResult {
    let key = f.key.trim();
    let result = match f.rate_per_sec.trim().parse::<i64>() {
        Ok(rate) => match crate::http::api::wallet::check_rate_key(key) {
            Ok(()) => crate::store::rate::set(&state.db, key, rate, state.clock.now_ms()).await.map(|_| ()),
            Err(e) => Err(e),
        },
        Err(_) => Err(Error::invalid_field("rate_per_sec", "The rate must be a whole number of messages per second.")),
    };
    match result {
        Ok(()) => Ok(redirect("/admin/rate-limits?done=saved")),
        Err(e) if e.kind == Kind::Internal => Err(WebError(e)),
        Err(e) => rates_page(&state, op.lang, None, Some((crate::http::error::status_of(e.kind), e.message))).await,
    }
}
