//! The contacts page: search, consent filter, cursor pages, add one, import a CSV file.

use super::{Layout, Web, WebError, WebForm, WebResult, html};
use crate::domain::Kind;
use crate::domain::contact::Consent;
use crate::http::AppState;
use crate::http::api::contacts::{country, import_request};
use crate::store::contacts::{self, ContactFilter, ContactPatch, NewContact};
use askama::Template;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default, Clone)]
pub struct ContactsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    consent: String,
    cursor: Option<String>,
}

pub struct Row {
    pub id: i64,
    pub phone: String,
    pub name: String,
    pub email: String,
    pub tags: String,
    pub consent: String,
    pub consent_label: &'static str,
}

pub struct ConsentOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

pub struct ImportResult {
    pub summary: String,
    pub errors: Vec<(String, String)>,
    /// Every listed row error as a CSV file inside the link itself: the import result is not
    /// stored, so the download is made from the import's answer, once, when the page is drawn.
    pub errors_csv: Option<String>,
}

/// The import's row errors as `data:` link text (percent-encoded CSV, UTF-8).
fn errors_csv_href(errors: &[crate::store::import::RowError]) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["row", "column", "code", "message"]);
    for e in errors {
        let _ = w.write_record([e.row.to_string().as_str(), &e.column, &e.code, &e.message]);
    }
    let bytes = w.into_inner().ok()?;
    let mut href = String::from("data:text/csv;charset=utf-8,");
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            href.push(b as char);
        } else {
            href.push_str(&format!("%{b:02X}"));
        }
    }
    Some(href)
}

#[derive(Default, Clone)]
pub struct AddForm {
    phone: String,
    first_name: String,
    last_name: String,
    consent: String,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    l: Layout,
    query: ContactsQuery,
    consents: Vec<ConsentOption>,
    rows: Vec<Row>,
    next: Option<String>,
    paged: bool,
    shown: String,
    add: AddForm,
    add_consents: Vec<ConsentOption>,
    imported: Option<ImportResult>,
}

fn consent_options(web: &Web, selected: &str) -> Vec<ConsentOption> {
    [Consent::OptedIn, Consent::OptedOut, Consent::Unknown]
        .into_iter()
        .map(|c| ConsentOption { value: c.as_str(), label: web.lang.consent(c.as_str()), selected: selected == c.as_str() })
        .collect()
}

struct Extra {
    flash: Option<String>,
    error: Option<(StatusCode, String)>,
    add: AddForm,
    imported: Option<ImportResult>,
}

async fn page(state: &AppState, web: &Web, query: ContactsQuery, extra: Extra) -> WebResult {
    let f = ContactFilter {
        consent: Some(query.consent.clone()).filter(|c| !c.is_empty()),
        tag: None,
        q: Some(query.q.clone()).filter(|q| !q.trim().is_empty()),
        limit: Some(50),
        cursor: query.cursor.clone(),
    };
    let page = contacts::list(&state.db, web.p.store, f).await?;
    let rows: Vec<Row> = page
        .items
        .into_iter()
        .map(|c| Row {
            id: c.id,
            name: [c.first_name.as_deref(), c.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" "),
            phone: c.phone,
            email: c.email.unwrap_or_default(),
            tags: c.tags.join(", "),
            consent_label: web.lang.consent(&c.consent),
            consent: c.consent,
        })
        .collect();
    let next = page.next_cursor.map(|c| {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &query.q)
            .append_pair("consent", &query.consent)
            .append_pair("cursor", &c)
            .finish();
        format!("/contacts?{q}")
    });
    let (status, error) = match extra.error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let add_consents = consent_options(web, if extra.add.consent.is_empty() { "opted_in" } else { &extra.add.consent });
    let p = ContactsPage {
        l: Layout { flash: extra.flash, error, ..web.layout(web.t().contacts_title, "contacts") },
        consents: consent_options(web, &query.consent),
        shown: web.lang.page_of(rows.len()),
        paged: query.cursor.is_some(),
        query,
        rows,
        next,
        add: extra.add,
        add_consents,
        imported: extra.imported,
    };
    Ok(html(status, &p))
}

pub async fn list(State(state): State<Arc<AppState>>, web: Web, RawQuery(q): RawQuery) -> WebResult {
    let query: ContactsQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    page(&state, &web, query, Extra { flash: None, error: None, add: AddForm::default(), imported: None }).await
}

#[derive(Deserialize)]
pub struct AddContact {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    consent: String,
}

/// `POST /contacts`: the same create as `POST /api/contacts`.
pub async fn create(State(state): State<Arc<AppState>>, web: Web, WebForm(f): WebForm<AddContact>) -> WebResult {
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let input = NewContact {
        phone: f.phone.clone(),
        first_name: opt(&f.first_name),
        last_name: opt(&f.last_name),
        email: None,
        tags: Vec::new(),
        consent: Consent::parse(&f.consent),
    };
    let c = country(&state, web.p.store).await?;
    let made = contacts::create(&state.db, web.p.store, c, &web.p.actor, input, state.clock.now_ms()).await;
    let empty = ContactsQuery::default();
    match made {
        Ok(_) => {
            page(
                &state,
                &web,
                empty,
                Extra { flash: Some(web.t().contact_added.into()), error: None, add: AddForm::default(), imported: None },
            )
            .await
        }
        Err(e) if matches!(e.kind, Kind::Internal) => Err(WebError(e)),
        Err(e) => {
            let add = AddForm { phone: f.phone, first_name: f.first_name, last_name: f.last_name, consent: f.consent };
            page(
                &state,
                &web,
                empty,
                Extra { flash: None, error: Some((crate::http::error::status_of(e.kind), e.message)), add, imported: None },
            )
            .await
        }
    }
}

/// `POST /contacts/import`: the same upload handling and import as `POST /api/contacts/import`.
pub async fn import(State(state): State<Arc<AppState>>, web: Web, req: Request) -> WebResult {
    let empty = ContactsQuery::default();
    match import_request(&state, &web.p, req).await {
        Ok(r) => {
            let imported = ImportResult {
                summary: web.lang.imported(r.created as i64, r.updated as i64, r.skipped as i64),
                errors: r.errors.iter().take(100).map(|e| (e.row.to_string(), e.message.clone())).collect(),
                errors_csv: errors_csv_href(&r.errors),
            };
            page(&state, &web, empty, Extra { flash: None, error: None, add: AddForm::default(), imported: Some(imported) }).await
        }
        Err(e) if e.kind == Kind::Internal => Err(WebError(e)),
        Err(e) => {
            page(
                &state,
                &web,
                empty,
                Extra {
                    flash: None,
                    error: Some((crate::http::error::status_of(e.kind), e.message)),
                    add: AddForm::default(),
                    imported: None,
                },
            )
            .await
        }
    }
}

/// One consent change, as the consent-history API lists it.
pub struct ConsentLine {
    pub at: String,
    pub from: &'static str,
    pub to: &'static str,
    pub to_code: String,
    pub source: String,
    pub actor: String,
}

#[derive(Deserialize, Default, Clone)]
pub struct ContactForm {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    consent: String,
}

#[derive(Template)]
#[template(path = "contact.html")]
struct ContactPage {
    l: Layout,
    id: i64,
    phone: String,
    consent: String,
    consent_label: &'static str,
    f: ContactForm,
    consents: Vec<ConsentOption>,
    history: Vec<ConsentLine>,
}

fn contact_id(id: &str) -> Result<i64, WebError> {
    id.parse().map_err(|_| WebError(crate::domain::Error::not_found("contact")))
}

/// The contact with its consent history: the same store functions as `GET /api/contacts/{id}`
/// and `…/consent-history` (another store's contact is a 404 there and here).
async fn contact_page(state: &AppState, web: &Web, id: i64, form: Option<ContactForm>, extra: Extra) -> WebResult {
    let c = contacts::get(&state.db, web.p.store, id).await?;
    let history = contacts::consent_history(&state.db, web.p.store, id)
        .await?
        .into_iter()
        .rev()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            ConsentLine {
                at: crate::domain::time::parse_rfc3339(&s("at")).map(|t| web.zone.minute(t)).unwrap_or_default(),
                from: e["from"].as_str().map_or("—", |f| web.lang.consent(f)),
                to: web.lang.consent(&s("to")),
                to_code: s("to"),
                source: s("source"),
                actor: s("actor"),
            }
        })
        .collect();
    let f = form.unwrap_or(ContactForm {
        first_name: c.first_name.clone().unwrap_or_default(),
        last_name: c.last_name.clone().unwrap_or_default(),
        email: c.email.clone().unwrap_or_default(),
        tags: c.tags.join(", "),
        consent: c.consent.clone(),
    });
    let (status, error) = match extra.error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let p = ContactPage {
        l: Layout { flash: extra.flash, error, ..web.layout(web.t().contact_title, "contacts") },
        id,
        consents: consent_options(web, &f.consent),
        consent_label: web.lang.consent(&c.consent),
        consent: c.consent,
        phone: c.phone,
        f,
        history,
    };
    Ok(html(status, &p))
}

pub async fn show(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>, RawQuery(q): RawQuery) -> WebResult {
    let id = contact_id(&id)?;
    let saved = q.as_deref() == Some("done=saved");
    let flash = saved.then(|| web.t().contact_saved.to_string());
    contact_page(&state, &web, id, None, Extra { flash, error: None, add: AddForm::default(), imported: None }).await
}

/// `POST /contacts/{id}`: the same update as `PATCH /api/contacts/{id}`; an emptied field clears it.
pub async fn update(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>, WebForm(f): WebForm<ContactForm>) -> WebResult {
    let id = contact_id(&id)?;
    let opt = |s: &str| Some(Some(s.trim().to_string()).filter(|s| !s.is_empty()));
    let patch = ContactPatch {
        phone: None,
        first_name: opt(&f.first_name),
        last_name: opt(&f.last_name),
        email: opt(&f.email),
        tags: Some(f.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()),
        consent: Consent::parse(&f.consent),
    };
    let c = country(&state, web.p.store).await?;
    match contacts::update(&state.db, web.p.store, c, &web.p.actor, id, patch, state.clock.now_ms()).await {
        Ok(_) => Ok(super::redirect(&format!("/contacts/{id}?done=saved"))),
        Err(e) if matches!(e.kind, Kind::Internal | Kind::NotFound) => Err(WebError(e)),
        Err(e) => {
            let error = Some((crate::http::error::status_of(e.kind), e.message));
            contact_page(&state, &web, id, Some(f), Extra { flash: None, error, add: AddForm::default(), imported: None }).await
        }
    }
}
