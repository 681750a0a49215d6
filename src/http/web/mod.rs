//! The web UI: server-rendered pages (askama templates in `templates/`, compiled into the binary),
//! one stylesheet and one script of our own (`assets`), English and Greek (`i18n`). Pages call the
//! same `store`/`ledger` functions as the JSON API and log in through the same sessions.

mod admin;
pub mod assets;
mod campaigns;
mod chart;
mod contacts;
mod editor;
pub mod i18n;
mod pages;
mod settings;
pub mod tz;

use super::AppState;
use crate::domain::{Error, Kind};
use crate::store::auth::{self, Principal};
use crate::store::stores::{self, StoreRow};
use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use i18n::{LANG_COOKIE, Lang, Msgs};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// No inline script or style, nothing from elsewhere: what the pages load is ours.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Above this many recipients the send dialog asks for the campaign's name to be typed.
pub const CONFIRM_NAME_ABOVE: i64 = 1_000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(|| async { redirect("/") }).post(pages::login))
        .route("/logout", get(|| async { redirect("/") }).post(pages::logout))
        .route("/lang", post(pages::set_lang))
        .route("/dashboard", get(pages::dashboard))
        .route("/campaigns", get(campaigns::list))
        .route("/campaigns/new", get(editor::new_form).post(editor::create))
        .route("/campaigns/{id}", get(campaigns::show))
        .route("/campaigns/{id}/edit", get(editor::edit_form).post(editor::update))
        .route("/campaigns/{id}/review", get(campaigns::review))
        .route("/campaigns/{id}/send", post(campaigns::send))
        .route("/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/campaigns/{id}/pause", post(campaigns::pause))
        .route("/campaigns/{id}/resume", post(campaigns::resume))
        .route("/campaigns/{id}/retry-failed", post(campaigns::retry_failed))
        .route("/campaigns/{id}/resend-unknown", post(campaigns::resend_unknown))
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route("/contacts/{id}", get(contacts::show).post(contacts::update))
        .route("/contacts/import", post(contacts::import).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/settings", get(settings::show).post(settings::save))
        .route("/settings/keys", post(settings::create_key))
        .route("/settings/keys/{id}/revoke", post(settings::revoke_key))
        .route("/admin", get(admin::home))
        .route("/admin/login", post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/stores", get(admin::stores))
        .route("/admin/stores/{id}/credits", post(admin::top_up))
        .route("/admin/senders", get(admin::senders))
        .route("/admin/rate-limits", get(admin::rates).post(admin::set_rate))
        .route("/admin/senders/{id}/approve", post(admin::approve))
        .route("/admin/senders/{id}/reject", post(admin::reject))
        .route("/static/{file}", get(assets::serve))
        .route("/api/sms/analyze", post(pages::analyze))
        .route("/api/audience/preview", post(editor::audience))
        .layer(axum::middleware::from_fn(error_pages))
}

/// What every page's frame needs: words, language, assets, the navigation state.
pub struct Layout {
    pub t: &'static Msgs,
    pub lang: &'static str,
    pub css: &'static str,
    pub js: &'static str,
    pub title: String,
    /// The logged-in store's name; `None` on the login and error pages (no navigation).
    pub store: Option<String>,
    /// The operator's pages have their own navigation.
    pub operator: bool,
    pub active: &'static str,
    /// Where the language switch returns to.
    pub path: String,
    pub flash: Option<String>,
    pub error: Option<String>,
    /// The store's time zone (the times on its pages are in it); empty on public pages.
    pub zone: String,
}

impl Layout {
    pub fn public(lang: Lang, title: &str, path: &str) -> Layout {
        Layout {
            t: lang.t(),
            lang: lang.code(),
            css: &assets::STYLE.url,
            js: &assets::SCRIPT.url,
            title: title.to_string(),
            store: None,
            operator: false,
            active: "",
            path: path.to_string(),
            flash: None,
            error: None,
            zone: String::new(),
        }
    }
}

/// A logged-in store user on a page: who, which store, which language.
pub struct Web {
    pub p: Principal,
    pub store: StoreRow,
    pub lang: Lang,
    pub path: String,
    /// The store's time zone: pages show times, and read schedules, in it.
    pub zone: Arc<tz::Zone>,
}

impl Web {
    pub fn layout(&self, title: &str, active: &'static str) -> Layout {
        Layout {
            store: Some(self.store.name.clone()),
            active,
            zone: self.zone.name.clone(),
            ..Layout::public(self.lang, title, &self.path)
        }
    }

    pub fn t(&self) -> &'static Msgs {
        self.lang.t()
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

/// A person's own choice (cookie) first, then the store's language, then the browser's.
pub fn lang_of(headers: &HeaderMap, store: Option<&StoreRow>) -> Lang {
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    if let Some(l) = store.and_then(|s| Lang::parse(&s.language)) {
        return l;
    }
    let browser = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if browser.trim_start().starts_with("el") { Lang::El } else { Lang::En }
}

impl FromRequestParts<Arc<AppState>> for Web {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let token = super::extract::session_cookie(parts);
        let now = state.clock.now_ms();
        let principal = match token {
            Some(t) => auth::authenticate_session(&state.db, &t, now).await.map_err(|e| WebError(e).into_response())?,
            None => None,
        };
        // Not logged in (or the session expired): the login page, which says nothing about the page.
        let Some(p) = principal else { return Err(redirect("/")) };
        let store = stores::get(&state.db, p.store).await.map_err(|e| WebError(e).into_response())?;
        let lang = lang_of(&parts.headers, Some(&store));
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let zone = tz::Zone::named(&store.timezone);
        Ok(Web { p, store, lang, path, zone })
    }
}

/// A urlencoded form body; a malformed one is a 400 page.
pub struct WebForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for WebForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bad = || WebError(Error::new(Kind::BadRequest, "invalid_form", "The form could not be read; reload the page and try again."));
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                crate::http::error::error_response(crate::http::body_too_large(crate::http::MAX_BODY_BYTES))
            } else {
                bad().into_response()
            }
        })?;
        serde_urlencoded::from_bytes(&bytes).map(WebForm).map_err(|_| bad().into_response())
    }
}

/// A rendered page with the headers every page has.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut res = (status, body).into_response();
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            h.insert("content-security-policy", HeaderValue::from_static(CSP));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => super::error::error_response(Error::internal(format!("template: {e}"))),
    }
}

/// After a successful POST: see the result with a GET (a reload does not repeat the action).
pub fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")))]).into_response()
}

/// A domain error on a page. Rendered (in the reader's language) by `error_pages`, which knows
/// the request's headers; an expired session goes back to the login page.
pub struct WebError(pub Error);

impl From<Error> for WebError {
    fn from(e: Error) -> Self {
        WebError(e)
    }
}

#[derive(Clone)]
struct ErrorPage(Error);

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if self.0.kind == Kind::Unauthorized {
            return redirect("/");
        }
        let mut res = super::error::status_of(self.0.kind).into_response();
        res.extensions_mut().insert(ErrorPage(self.0));
        res
    }
}

pub type WebResult = Result<Response, WebError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    l: Layout,
    heading: &'static str,
    text: String,
    request_id: Option<String>,
}

fn error_page(lang: Lang, e: &Error) -> Response {
    let t = lang.t();
    let status = super::error::status_of(e.kind);
    let (heading, text, request_id) = match e.kind {
        Kind::NotFound => (t.not_found_title, t.not_found_text.to_string(), None),
        Kind::Internal => {
            let id = super::error::REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
            tracing::error!(request_id = %id, error = %e.message, "internal error on a page");
            (t.error_title, String::new(), Some(id))
        }
        _ => (t.error_title, e.message.clone(), None),
    };
    let title = heading.to_string();
    html(status, &ErrorTemplate { l: Layout::public(lang, &title, "/"), heading, text, request_id })
}

pub fn not_found_page(lang: Lang) -> Response {
    error_page(lang, &Error::not_found("page"))
}

/// Turns a `WebError` left in a response into its page, in the language of the request.
async fn error_pages(req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let res = next.run(req).await;
    match res.extensions().get::<ErrorPage>() {
        Some(ErrorPage(e)) => error_page(lang_of(&headers, None), e),
        None => res,
    }
}

/// Unknown addresses: the JSON error under `/api/` and for API clients (they send a key), a page
/// for people everywhere else.
pub async fn fallback(req: Request) -> Response {
    let api_client = req.headers().contains_key(axum::http::header::AUTHORIZATION);
    if api_client || req.uri().path().starts_with("/api/") || req.uri().path() == "/api" {
        return super::error::error_response(Error::new(Kind::NotFound, "not_found", "There is nothing at this address."));
    }
    not_found_page(lang_of(req.headers(), None))
}
