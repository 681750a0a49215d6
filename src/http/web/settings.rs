//! The store's settings and API keys: the same store functions as `PATCH /api/store` and
//! `/api/keys`; a new key is shown once, in the answer to the form that created it.

use super::{Layout, Web, WebError, WebForm, WebResult, html, redirect};
use crate::domain::{Error, Kind};
use crate::http::AppState;
use crate::store::auth;
use crate::store::senders::{self, SenderRequest};
use crate::store::stores::{self, StorePatch};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

pub struct KeyLine {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub last_used: Option<String>,
    pub active: bool,
}

pub struct LangChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Deserialize, Default, Clone)]
pub struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    sender_name: String,
    #[serde(default)]
    default_country: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    language: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    l: Layout,
    f: SettingsForm,
    languages: Vec<LangChoice>,
    keys: Vec<KeyLine>,
    new_key: Option<String>,
    /// The store's latest sender name request, when it is not (yet) the name in use.
    sender: Option<SenderNotice>,
}

/// What the page says about a requested sender name: waiting, or refused with the reason.
pub struct SenderNotice {
    pub pending: bool,
    pub text: String,
    pub reason: Option<String>,
}

fn sender_notice(web: &Web, current: &str, r: Option<SenderRequest>) -> Option<SenderNotice> {
    let r = r?;
    let t = web.t();
    let fill = |s: &str| s.replace("{name}", &r.sender_name).replace("{current}", current);
    match r.status.as_str() {
        "pending" => Some(SenderNotice {
            pending: true,
            text: fill(t.sender_pending).replace("{date}", &web.zone.date(r.requested_at)),
            reason: None,
        }),
        "rejected" => Some(SenderNotice {
            pending: false,
            text: fill(t.sender_rejected).replace("{date}", &web.zone.date(r.decided_at.unwrap_or(r.requested_at))),
            reason: r.reason.clone(),
        }),
        _ => None,
    }
}

struct Extra {
    form: Option<SettingsForm>,
    flash: Option<String>,
    error: Option<(StatusCode, String)>,
    new_key: Option<String>,
}

async fn page(state: &AppState, web: &Web, extra: Extra) -> WebResult {
    let s = stores::get(&state.db, web.p.store).await?;
    let sender = sender_notice(web, &s.sender_name, senders::latest(&state.db, web.p.store).await?);
    let f = extra.form.unwrap_or(SettingsForm {
        name: s.name.clone(),
        sender_name: s.sender_name.clone(),
        default_country: s.default_country.clone(),
        timezone: s.timezone.clone(),
        language: s.language.clone(),
    });
    let languages = [("en", "English"), ("el", "Ελληνικά")]
        .into_iter()
        .map(|(value, label)| LangChoice { value, label, selected: f.language == value })
        .collect();
    let keys = auth::list_api_keys(&state.db, web.p.store)
        .await?
        .into_iter()
        .map(|k| KeyLine {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created: web.zone.date(k.created_at),
            last_used: k.last_used_at.map(|t| web.zone.date(t)),
            active: k.revoked_at.is_none(),
        })
        .collect();
    let (status, error) = match extra.error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let l = Layout { flash: extra.flash, error, ..web.layout(web.t().settings_title, "settings") };
    Ok(html(status, &SettingsPage { l, f, languages, keys, new_key: extra.new_key, sender }))
}

fn refused(e: &Error) -> bool {
    !matches!(e.kind, Kind::Internal | Kind::NotFound | Kind::Unauthorized)
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

pub async fn show(State(state): State<Arc<AppState>>, web: Web, RawQuery(q): RawQuery) -> WebResult {
    let q: DoneQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let t = web.t();
    let flash = match q.done.as_deref() {
        Some("saved") => Some(t.settings_saved.to_string()),
        Some("requested") => Some(t.settings_saved_pending.to_string()),
        Some("revoked") => Some(t.key_revoked_done.to_string()),
        _ => None,
    };
    page(&state, &web, Extra { form: None, flash, error: None, new_key: None }).await
}

/// `POST /settings`: the same update as `PATCH /api/store`. The field shows the name in use, so
/// an unchanged field asks for nothing: saving the timezone must not withdraw a waiting request.
pub async fn save(State(state): State<Arc<AppState>>, web: Web, WebForm(f): WebForm<SettingsForm>) -> WebResult {
    let changed = f.sender_name.trim() != web.store.sender_name;
    let patch = StorePatch {
        name: Some(f.name.clone()),
        default_country: Some(f.default_country.clone()),
        timezone: Some(f.timezone.clone()),
        language: Some(f.language.clone()),
        sender_name: changed.then(|| f.sender_name.clone()),
    };
    match stores::update(&state.db, web.p.store, patch, state.clock.now_ms()).await {
        // The store keeps its name while a new one waits: say so rather than "saved" alone.
        Ok(row) if changed && row.sender_name != f.sender_name.trim() => Ok(redirect("/settings?done=requested")),
        Ok(_) => Ok(redirect("/settings?done=saved")),
        Err(e) if refused(&e) => {
            let error = Some((crate::http::error::status_of(e.kind), e.message));
            page(&state, &web, Extra { form: Some(f), flash: None, error, new_key: None }).await
        }
        Err(e) => Err(WebError(e)),
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
}

/// `POST /settings/keys`: answers with the page showing the new key, the only time it is shown.
pub async fn create_key(State(state): State<Arc<AppState>>, web: Web, WebForm(f): WebForm<KeyForm>) -> WebResult {
    let created = match crate::http::rate_limit(&state, web.p.store, crate::store::rate::Action::CreateKey).await {
        Ok(()) => auth::create_api_key(&state.db, web.p.store, &f.name, state.clock.now_ms()).await,
        Err(e) => Err(e),
    };
    match created {
        Ok((_, key)) => page(&state, &web, Extra { form: None, flash: None, error: None, new_key: Some(key) }).await,
        Err(e) if refused(&e) => {
            let error = Some((crate::http::error::status_of(e.kind), e.message));
            page(&state, &web, Extra { form: None, flash: None, error, new_key: None }).await
        }
        Err(e) => Err(WebError(e)),
    }
}

pub async fn revoke_key(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("API key"))?;
    crate::http::api::store::revoke(&state, web.p.store, id).await?;
    Ok(redirect("/settings?done=revoked"))
}
