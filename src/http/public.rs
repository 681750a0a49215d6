//! The pages recipients reach from an SMS: the unsubscribe link `/u/{code}` (a page with one
//! confirm button; only the POST opts out, so link scanners opening the page change nothing), and
//! a friendly HTML page for codes that name nothing. Plain HTML from askama templates compiled
//! into the binary, one stylesheet, no script: a strict CSP can apply. No cookie is read or set.

use super::AppState;
use super::error::ApiResult;
use crate::domain::unsubscribe::CodeKey;
use crate::store::links::{self, Visit};
use crate::store::optout::{self, Unsubscribe};
use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/u/{code}", get(unsubscribe_page).post(unsubscribe_confirm))
        .route("/l/{code}", get(follow_link))
        .route("/public.css", get(stylesheet))
        .route("/webhooks/mitto/inbound", axum::routing::post(super::inbound::receive))
}

#[derive(Template)]
#[template(path = "public/unsubscribe.html")]
struct UnsubscribePage<'a> {
    lang: &'a str,
    title: &'a str,
    store: &'a str,
    intro: String,
    phone: String,
    button: &'a str,
    note: &'a str,
}

#[derive(Template)]
#[template(path = "public/message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    title: &'a str,
    store: Option<&'a str>,
    paragraphs: Vec<String>,
}

/// The installation's code key, read once per node; `None` until the first launch created it.
async fn code_key(state: &AppState) -> Result<Option<&CodeKey>, crate::domain::Error> {
    if let Some(k) = state.code_key.get() {
        return Ok(Some(k));
    }
    match crate::store::settings::find_code_key(&state.db).await? {
        Some(k) => Ok(Some(state.code_key.get_or_init(|| async { k }).await)),
        None => Ok(None),
    }
}

/// The page's language: the store's (Greek or English).
fn greek(target: &Unsubscribe) -> bool {
    target.language == "el"
}

/// An HTML answer that no cache or search engine keeps, and that sends no referrer on (the code
/// is in the address).
fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return super::error::error_response(crate::domain::Error::internal(format!("template: {e}"))),
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-robots-tag", HeaderValue::from_static("noindex, nofollow"));
    res
}

/// For codes that name nothing: in both languages, since no store is known.
pub fn not_found_page() -> Response {
    let page = MessagePage {
        lang: "el",
        title: "Ο σύνδεσμος δεν βρέθηκε · Link not found",
        store: None,
        paragraphs: vec![
            "Αυτός ο σύνδεσμος δεν ισχύει. Ελέγξτε ότι τον αντιγράψατε ολόκληρο από το μήνυμα.".into(),
            "This link is not valid. Check that you copied all of it from the message.".into(),
        ],
    };
    html(StatusCode::NOT_FOUND, page.render())
}

async fn unsubscribe_page(State(state): State<Arc<AppState>>, Path(code): Path<String>) -> ApiResult<Response> {
    let Some(key) = code_key(&state).await? else { return Ok(not_found_page()) };
    let Some(target) = optout::find(&state.db, key, &code).await? else { return Ok(not_found_page()) };
    if target.opted_out() {
        return Ok(done_page(&target));
    }
    let el = greek(&target);
    let phone = crate::domain::optout::mask_phone(&target.phone);
    let page = UnsubscribePage {
        lang: if el { "el" } else { "en" },
        title: if el { "Διαγραφή από τα SMS" } else { "Unsubscribe from SMS" },
        store: &target.store_name,
        intro: if el {
            format!("Θέλετε να μη λαμβάνετε πια SMS από το κατάστημα {} σε αυτόν τον αριθμό;", target.store_name)
        } else {
            format!("Stop receiving SMS from {} at this number?", target.store_name)
        },
        phone,
        button: if el { "Ναι, διαγραφή" } else { "Yes, unsubscribe me" },
        note: if el {
            "Η διαγραφή γίνεται μόνο όταν πατήσετε το κουμπί."
        } else {
            "Nothing changes until you press the button."
        },
    };
    Ok(html(StatusCode::OK, page.render()))
}

async fn unsubscribe_confirm(State(state): State<Arc<AppState>>, Path(code): Path<String>) -> ApiResult<Response> {
    let Some(key) = code_key(&state).await? else { return Ok(not_found_page()) };
    let now = state.clock.now_ms();
    match optout::confirm(&state.db, key, &code, now).await? {
        None => Ok(not_found_page()),
        Some((target, _)) => Ok(done_page(&target)),
    }
}

fn done_page(target: &Unsubscribe) -> Response {
    let el = greek(target);
    let page = MessagePage {
        lang: if el { "el" } else { "en" },
        title: if el { "Η διαγραφή ολοκληρώθηκε" } else { "You are unsubscribed" },
        store: Some(&target.store_name),
        paragraphs: vec![
            if el {
                format!(
                    "Ο αριθμός {} δεν θα λαμβάνει πια SMS από το κατάστημα {}.",
                    crate::domain::optout::mask_phone(&target.phone),
                    target.store_name
                )
            } else {
                format!("{} will no longer receive SMS from {}.", crate::domain::optout::mask_phone(&target.phone), target.store_name)
            },
            if el {
                "Αν αλλάξετε γνώμη, ενημερώστε το κατάστημα.".to_string()
            } else {
                "If you change your mind, let the store know.".to_string()
            },
        ],
    };
    html(StatusCode::OK, page.render())
}

/// A tracked link: 302 to its address (GET and HEAD alike, so a preview shows the real page),
/// with the visit recorded first. Only a person's GET counts as a click.
async fn follow_link(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let Some(key) = code_key(&state).await? else { return Ok(not_found_page()) };
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let visit = if method == axum::http::Method::HEAD {
        Visit::Head
    } else if crate::domain::links::is_preview_bot(ua) {
        Visit::Bot
    } else {
        Visit::Click
    };
    let Some(url) = links::visit(&state.db, key, &code, visit, ua, state.clock.now_ms()).await? else { return Ok(not_found_page()) };
    let Ok(location) = HeaderValue::from_str(&crate::domain::links::location(&url)) else { return Ok(not_found_page()) };
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(res)
}

async fn stylesheet() -> Response {
    let mut res = include_str!("../../templates/public/public.css").into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    res
}
