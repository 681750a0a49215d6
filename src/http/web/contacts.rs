//! The contacts page: search, consent filter, cursor pages, add one, import a CSV file.

use super::{Layout, Web, WebError, WebForm, WebResult, html};
use crate::domain::Kind;
use crate::domain::contact::Consent;
use crate::http::AppState;
use crate::http::api::contacts::{country, import_request};
use crate::store::contacts::{self, ContactFilter, NewContact};
use askama::Template;
use axum::extract::{RawQuery, Request, State};
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
