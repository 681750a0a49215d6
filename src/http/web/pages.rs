//! Login, logout, the language switch, the dashboard, and the text analysis the editor asks for.

use super::i18n::{LANG_COOKIE, Lang};
use super::{Layout, Web, WebForm, WebResult, html, lang_of, redirect};
use crate::domain::links::LINK_CODE_LEN;
use crate::domain::message::{Codes, Composer, preview_code};
use crate::domain::render::{Language, unsubscribe_footer};
use crate::domain::{Error, sms};
use crate::http::AppState;
use crate::http::api::session::{LOGOUT_COOKIE, session_cookie_header};
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Auth, ClientAddr, session_cookie};
use crate::store::{StoreId, auth, campaigns, stores, web as web_store};
use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    email: String,
}

fn login_page(lang: Lang, status: StatusCode, email: String, error: Option<String>) -> Response {
    let t = lang.t();
    html(status, &LoginPage { l: Layout { error, ..Layout::public(lang, t.login_title, "/") }, email })
}

/// `GET /`: the login page, or the dashboard for someone logged in.
pub async fn home(State(state): State<Arc<AppState>>, parts: Parts) -> WebResult {
    if let Some(token) = session_cookie(&parts) {
        if auth::authenticate_session(&state.db, &token, state.clock.now_ms()).await?.is_some() {
            return Ok(redirect("/dashboard"));
        }
    }
    Ok(login_page(lang_of(&parts.headers, None), StatusCode::OK, String::new(), None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// `POST /login`: the same sessions and cookie as `POST /api/login`.
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    WebForm(f): WebForm<LoginForm>,
) -> WebResult {
    let now = state.clock.now_ms();
    let lang = lang_of(&headers, None);
    let Some(session) = auth::login(&state.db, &state.login, &f.email, &f.password, &client, now, state.settings.session_ttl_ms).await?
    else {
        return Ok(login_page(lang, StatusCode::UNAUTHORIZED, f.email, Some(lang.t().invalid_login.to_string())));
    };
    let mut res = redirect("/dashboard");
    res.headers_mut().insert(SET_COOKIE, session_cookie_header(&state.settings, &session)?);
    Ok(res)
}

pub async fn logout(State(state): State<Arc<AppState>>, parts: Parts) -> WebResult {
    if let Some(token) = session_cookie(&parts) {
        auth::logout(&state.db, &token).await?;
    }
    let mut res = redirect("/");
    res.headers_mut().insert(SET_COOKIE, HeaderValue::from_static(LOGOUT_COOKIE));
    Ok(res)
}

#[derive(Deserialize)]
pub struct LangForm {
    lang: String,
    #[serde(default)]
    back: String,
}

/// `POST /lang`: a person's language, in a cookie; back to the page they were on (ours only).
pub async fn set_lang(WebForm(f): WebForm<LangForm>) -> WebResult {
    let lang = Lang::parse(&f.lang).unwrap_or(Lang::En);
    let back = if f.back.starts_with('/') && !f.back.starts_with("//") && !f.back.contains('\\') { f.back.as_str() } else { "/" };
    let mut res = redirect(back);
    let cookie = format!("{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000", lang.code());
    res.headers_mut().insert(SET_COOKIE, HeaderValue::from_str(&cookie).map_err(Error::internal)?);
    Ok(res)
}

/// A campaign as a row of a list: name, badge, progress.
pub struct CampaignItem {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub status_label: &'static str,
    pub progress: i64,
    pub sent: String,
    pub total: String,
    pub created: String,
}

impl CampaignItem {
    pub fn new(web: &Web, c: &campaigns::CampaignRow) -> CampaignItem {
        let lang = web.lang;
        let processed = c.sent + c.failed + c.cancelled + c.unknown;
        let progress = (processed * 100).checked_div(c.total).unwrap_or(0);
        CampaignItem {
            id: c.id,
            name: c.name.clone(),
            status: c.status.clone(),
            status_label: lang.status(&c.status),
            progress,
            sent: lang.int(c.sent),
            total: lang.int(c.total),
            created: web.zone.date(c.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    l: Layout,
    available: String,
    held: String,
    sent_today: String,
    sent_month: String,
    /// `None` until some delivery report has arrived: 0 % would be a lie.
    delivery_rate: Option<String>,
    campaigns: Vec<CampaignItem>,
}

pub async fn dashboard(State(state): State<Arc<AppState>>, web: Web) -> WebResult {
    let lang = web.lang;
    let wallet = crate::store::ledger::wallet(&state.db, web.p.store).await?;
    // Today and this month are the store's own, in its time zone.
    let (day, month) = web.zone.day_and_month_start(state.clock.now_ms());
    let totals = web_store::send_totals(&state.db, web.p.store, day, month).await?;
    let (recent, _) = super::campaigns::rows(&state.db, web.p.store, None, 6, None).await?;
    let delivery_rate = (totals.delivered_all > 0 && totals.sent_all > 0)
        .then(|| format!("{} %", lang.dec1(totals.delivered_all as f64 * 100.0 / totals.sent_all as f64)));
    let page = Dashboard {
        l: web.layout(web.t().dash_title, "dashboard"),
        available: lang.int(wallet.available),
        held: lang.int(wallet.held),
        sent_today: lang.int(totals.sent_today),
        sent_month: lang.int(totals.sent_month),
        delivery_rate,
        campaigns: recent.iter().map(|c| CampaignItem::new(&web, c)).collect(),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    text: String,
    /// The campaign's discount code, when the editor has one: `{{discount_code}}` counts as it.
    #[serde(default)]
    discount_code: Option<String>,
}

fn analysis(info: sms::SegmentInfo) -> Value {
    json!({"encoding": info.encoding.as_str(), "characters": info.characters, "units": info.units, "segments": info.segments})
}

/// `POST /api/sms/analyze`: the editor's live counter, from the one GSM-7/UCS-2 implementation.
/// `segments` counts the text as written; `with_footer` is the text as it goes out (through the
/// same composer as the send: links at their short-link length, the store's unsubscribe line;
/// merge tags count as written, since names differ per recipient); `greek_gsm` is the
/// capitals-without-accents alternative, when the text has Greek letters.
pub async fn analyze(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiJson(req): ApiJson<AnalyzeRequest>) -> ApiResult<Json<Value>> {
    if req.text.chars().count() > crate::domain::message::MAX_CHARS * 2 {
        return Err(Error::invalid("message_too_long", "The text is too long to analyse.").with_details(json!({"field": "text"})).into());
    }
    Ok(Json(text_analysis(&state, p.store, &req.text, req.discount_code.as_deref()).await?))
}

/// The text as one recipient gets it, with the merge tags left as written, and its analysis;
/// `None` when the text is not a valid template (empty, or an unknown tag).
fn as_sent(text: &str, greek_gsm: bool, discount: Option<&str>, lang: Language, public_url: &str) -> Option<(sms::SegmentInfo, usize)> {
    let discount = discount.filter(|d| !d.trim().is_empty()).unwrap_or("{{discount_code}}");
    let composer = Composer::new(text, greek_gsm, Some(discount), lang, public_url).ok()?;
    let mut out = String::new();
    let info = composer.compose(Some("{{first_name}}"), Some("{{last_name}}"), Codes::Preview, &mut out)?;
    Some((info, composer.link_count()))
}

/// The analysis behind the endpoint and the editor's first render.
pub async fn text_analysis(state: &AppState, store: StoreId, text: &str, discount: Option<&str>) -> Result<Value, Error> {
    let store = stores::get(&state.db, store).await?;
    let lang = Language::parse(&store.language).unwrap_or(Language::En);
    let public_url = &state.settings.public_url;
    let own = sms::analyze(text);
    // Not a template yet (empty, an unclosed tag): the text as written with the footer.
    let fallback = || {
        let footer = unsubscribe_footer(lang, &format!("{}/u/{}", public_url.trim_end_matches('/'), preview_code()));
        sms::analyze(&format!("{text}{footer}"))
    };
    let (full, links) = as_sent(text, false, discount, lang, public_url).unwrap_or_else(|| (fallback(), 0));
    let greek = sms::has_greek(text).then(|| {
        let mapped = sms::greek_to_gsm(text);
        let alt = as_sent(text, true, discount, lang, public_url).map(|(i, _)| i).unwrap_or_else(|| sms::analyze(&mapped));
        json!({"text": mapped, "encoding": alt.encoding.as_str(), "segments": alt.segments, "saving_segments": i64::from(full.segments) - i64::from(alt.segments)})
    });
    let mut body = analysis(own);
    body["ucs2_chars"] = json!(sms::non_gsm_chars(text).iter().map(char::to_string).collect::<Vec<_>>());
    body["with_footer"] = analysis(full);
    body["greek_gsm"] = greek.unwrap_or(Value::Null);
    body["links"] = json!(links);
    // `{public_url}/l/` and the code: what each tracked link costs in characters.
    body["short_link_chars"] = json!(format!("{}/l/", public_url.trim_end_matches('/')).chars().count() + LINK_CODE_LEN);
    Ok(body)
}
