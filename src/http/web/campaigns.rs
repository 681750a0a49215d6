//! Campaign pages: the list, the live campaign page with its actions, the editor and the send.
//! Every action calls the store function its JSON endpoint calls; a failure shows that
//! function's message on the page.

use super::i18n::Lang;
use super::pages::{CampaignItem, text_analysis};
use super::{CONFIRM_NAME_ABOVE, Layout, Web, WebError, WebForm, WebResult, html, redirect};
use crate::domain::Error;
use crate::domain::campaign::{Audience, Priority};
use crate::http::AppState;
use crate::store::campaigns::{self, CampaignFilter, CampaignInput, CampaignRow};
use crate::store::{Db, StoreId, operations, queue, segments};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The rows of a page of `campaigns::list` (which owns the filter and the order): the list's
/// JSON has no counters, so each row is read by id (at most one page of primary-key reads).
pub async fn rows(
    db: &Db,
    store: StoreId,
    status: Option<String>,
    limit: i64,
    cursor: Option<String>,
) -> Result<(Vec<CampaignRow>, Option<String>), Error> {
    let page = campaigns::list(db, store, CampaignFilter { status, limit: Some(limit), cursor }).await?;
    let mut out = Vec::new();
    for item in page["items"].as_array().into_iter().flatten() {
        if let Some(id) = item["id"].as_i64() {
            out.push(campaigns::get(db, store, id).await?);
        }
    }
    Ok((out, page["next_cursor"].as_str().map(str::to_string)))
}

fn query<T: for<'de> Deserialize<'de> + Default>(q: Option<String>) -> T {
    serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
}

pub struct StatusOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct ListPage {
    l: Layout,
    statuses: Vec<StatusOption>,
    filtered: bool,
    campaigns: Vec<CampaignItem>,
    next: Option<String>,
}

pub async fn list(State(state): State<Arc<AppState>>, web: Web, RawQuery(q): RawQuery) -> WebResult {
    let q: ListQuery = query(q);
    let status = q.status.filter(|s| !s.is_empty());
    let (rows, next_cursor) = rows(&state.db, web.p.store, status.clone(), 50, q.cursor).await?;
    let statuses = crate::domain::campaign::Status::ALL
        .iter()
        .map(|s| StatusOption { value: s.as_str(), label: web.lang.status(s.as_str()), selected: status.as_deref() == Some(s.as_str()) })
        .collect();
    let next = next_cursor.map(|c| match &status {
        Some(s) => format!("/campaigns?status={s}&cursor={c}"),
        None => format!("/campaigns?cursor={c}"),
    });
    let page = ListPage {
        l: web.layout(web.t().campaigns_title, "campaigns"),
        statuses,
        filtered: status.is_some(),
        campaigns: rows.iter().map(|c| CampaignItem::new(web.lang, c)).collect(),
        next,
    };
    Ok(html(StatusCode::OK, &page))
}

pub struct Counter {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
}

pub struct HistoryItem {
    pub at: String,
    pub to: &'static str,
    pub to_raw: String,
    pub actor: String,
    pub reason: String,
}

pub struct FailureItem {
    pub label: String,
    pub count: String,
    pub explanation: String,
    pub retryable: bool,
}

pub struct Retry {
    pub label: String,
    pub confirm: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    l: Layout,
    id: i64,
    name: String,
    status: String,
    status_label: &'static str,
    message: String,
    editable: bool,
    can_cancel: bool,
    can_pause: bool,
    can_resume: bool,
    live: bool,
    progress: i64,
    counters: Vec<Counter>,
    rate: String,
    eta: String,
    history: Vec<HistoryItem>,
    failures: Vec<FailureItem>,
    retry: Option<Retry>,
    confirm_above: i64,
    priority: &'static str,
    audience: String,
}

fn audience_label(lang: Lang, a: &Audience) -> String {
    let t = lang.t();
    match a {
        Audience::All => t.aud_all.to_string(),
        Audience::Tags { any, all } => format!("{}: {}", t.tags, any.iter().chain(all).cloned().collect::<Vec<_>>().join(", ")),
        Audience::Segment { id } => format!("#{id}"),
    }
}

fn actor_label(actor: &str) -> String {
    actor.replace(':', " #")
}

/// The campaign page, with an optional message from the action that led here.
async fn campaign_page(state: &AppState, web: &Web, id: i64, flash: Option<String>, error: Option<(StatusCode, String)>) -> WebResult {
    let lang = web.lang;
    let t = web.t();
    let c = campaigns::get(&state.db, web.p.store, id).await?;
    let now = state.clock.now_ms();
    let p = queue::Progress::of(&c, now);
    let counters = [
        ("sent", t.sent, p.sent),
        ("pending", t.pending, p.pending),
        ("sending", t.sending, p.sending),
        ("failed", t.failed, p.failed),
        ("unknown", t.unknown, p.unknown),
        ("cancelled", t.cancelled, p.cancelled),
        ("delivered", t.delivered, p.delivered),
        ("total", t.total, p.total),
    ]
    .into_iter()
    .map(|(key, label, value)| Counter { key, label, value: lang.int(value) })
    .collect();
    let history = campaigns::history(&state.db, web.p.store, id).await?;
    let history = history["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| HistoryItem {
            at: h["at"].as_str().unwrap_or("").replace('T', " ").chars().take(19).collect(),
            to: lang.status(h["to"].as_str().unwrap_or("")),
            to_raw: h["to"].as_str().unwrap_or("").to_string(),
            actor: actor_label(h["actor"].as_str().unwrap_or("")),
            reason: h["reason"].as_str().unwrap_or("").replace('_', " "),
        })
        .collect();
    let failures = if c.failed + c.unknown > 0 {
        let f = operations::failures(&state.db, web.p.store, id).await?;
        f["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["count"].as_i64().unwrap_or(0) > 0)
            .map(|x| FailureItem {
                label: lang.category(x["category"].as_str().unwrap_or("")),
                count: lang.int(x["count"].as_i64().unwrap_or(0)),
                explanation: lang
                    .explanation(x["category"].as_str().unwrap_or(""))
                    .unwrap_or_else(|| x["explanation"].as_str().unwrap_or(""))
                    .to_string(),
                retryable: x["retryable"].as_bool().unwrap_or(false),
            })
            .collect()
    } else {
        Vec::new()
    };
    // "Retry failed (N)" only when a retry would send something.
    let retry = if matches!(c.status.as_str(), "sent" | "failed") && c.failed > 0 {
        let r: Value = operations::retry_preview(&state.db, web.p.store, id).await?;
        let count = r["messages"].as_i64().unwrap_or(0);
        (count > 0).then(|| Retry {
            label: lang.retry_failed(count),
            confirm: lang.retry_confirm(count, r["estimated_cost"].as_i64().unwrap_or(0)),
        })
    } else {
        None
    };
    let status = c.status();
    let (status_code, error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let page = CampaignPage {
        l: Layout { flash, error, ..web.layout(&c.name, "campaigns") },
        id,
        name: c.name.clone(),
        status: c.status.clone(),
        status_label: lang.status(&c.status),
        message: c.message.clone(),
        editable: status.editable(),
        can_cancel: matches!(c.status.as_str(), "sending" | "scheduled" | "paused"),
        can_pause: c.status == "sending",
        can_resume: c.status == "paused",
        live: matches!(c.status.as_str(), "sending" | "paused" | "scheduled"),
        progress: p.progress,
        counters,
        rate: format!("{} {}", lang.dec1(p.rate_per_second), t.per_second),
        eta: p.eta_seconds.map(|s| lang.eta(s)).unwrap_or_else(|| "—".into()),
        history,
        failures,
        retry,
        confirm_above: CONFIRM_NAME_ABOVE,
        priority: lang.priority(&c.priority),
        audience: c.audience().map(|a| audience_label(lang, &a)).unwrap_or_default(),
    };
    Ok(html(status_code, &page))
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    done: Option<String>,
}

pub async fn show(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>, RawQuery(q): RawQuery) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    let q: ShowQuery = query(q);
    let t = web.t();
    let flash = q.done.as_deref().and_then(|d| match d {
        "cancelled" => Some(t.done_cancelled),
        "paused" => Some(t.done_paused),
        "resumed" => Some(t.done_resumed),
        "started" => Some(t.done_started),
        "retried" => Some(t.done_retried),
        "saved" => Some(t.done_saved),
        _ => None,
    });
    campaign_page(&state, &web, id, flash.map(str::to_string), None).await
}

/// Runs one action; success goes back to the campaign page with a note, failure shows the
/// store's actionable message there.
async fn act(state: &AppState, web: &Web, id: &str, done: &str, result: impl AsyncFnOnce(i64) -> Result<Value, Error>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    match result(id).await {
        Ok(_) => Ok(redirect(&format!("/campaigns/{id}?done={done}"))),
        Err(e) if matches!(e.kind, crate::domain::Kind::NotFound | crate::domain::Kind::Unauthorized | crate::domain::Kind::Internal) => {
            Err(WebError(e))
        }
        Err(e) => campaign_page(state, web, id, None, Some((crate::http::error::status_of(e.kind), e.message))).await,
    }
}

#[derive(Deserialize, Default)]
pub struct SendForm {
    #[serde(default)]
    expect_name: String,
    #[serde(default)]
    confirm_name: String,
}

pub async fn send(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>, WebForm(f): WebForm<SendForm>) -> WebResult {
    let actor = web.p.actor.label();
    act(&state, &web, &id, "started", async |id| {
        if f.expect_name == "1" {
            let c = campaigns::get(&state.db, web.p.store, id).await?;
            if f.confirm_name.trim() != c.name {
                return Err(Error::invalid("confirmation_mismatch", web.t().type_name_mismatch)
                    .with_details(serde_json::json!({"field": "confirm_name"})));
            }
        }
        // The same start as `POST /api/campaigns/{id}/send`: one conditional status change, so a
        // second click cannot start it twice; and the same hourly count.
        crate::http::rate_limit(&state, web.p.store, crate::store::rate::Action::Send).await?;
        let started = queue::start_with_key(&state.db, web.p.store, id, &actor, None, &state.settings.send, state.clock.now_ms());
        Ok(started.await?.body)
    })
    .await
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    l: Layout,
    id: i64,
    name: String,
    numbers: Vec<Counter>,
    excluded: Vec<Counter>,
    sample: String,
    blocking: Vec<String>,
    can_send: bool,
    need_name: bool,
    button: String,
}

/// `GET /campaigns/{id}/review`: the send dialog's content as a page, for browsers without the script.
pub async fn review(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    let (lang, t) = (web.lang, web.t());
    let c = campaigns::get(&state.db, web.p.store, id).await?;
    let p = campaigns::preview(&state.db, web.p.store, id, &state.settings.send).await?;
    let n = |v: &Value| lang.int(v.as_i64().unwrap_or(0));
    let counter = |key: &'static str, label: &'static str, v: &Value| Counter { key, label, value: n(v) };
    let numbers = vec![
        counter("recipients", t.recipients, &p["recipients"]),
        counter("segments", t.segments, &p["segments"]),
        counter("estimated_cost", t.cost, &p["estimated_cost"]),
        counter("available_credits", t.available, &p["available_credits"]),
        counter("balance_after", t.balance_after, &p["balance_after"]),
    ];
    let x = &p["excluded"];
    let excluded = vec![
        counter("excluded.opted_out", t.ex_opted_out, &x["opted_out"]),
        counter("excluded.no_consent", t.ex_no_consent, &x["no_consent"]),
        counter("excluded.invalid_phone", t.ex_invalid_phone, &x["invalid_phone"]),
        counter("excluded.duplicate", t.ex_duplicate, &x["duplicate"]),
    ];
    let can_send = p["can_send"].as_bool().unwrap_or(false);
    let recipients = p["recipients"].as_i64().unwrap_or(0);
    let page = ReviewPage {
        l: web.layout(t.confirm_title, "campaigns"),
        id,
        name: c.name,
        numbers,
        excluded,
        sample: p["samples"][0]["text"].as_str().unwrap_or("—").to_string(),
        blocking: p["blocking_reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["message"].as_str().map(str::to_string))
            .collect(),
        can_send,
        need_name: can_send && recipients > CONFIRM_NAME_ABOVE,
        button: t.send_fmt.replace("{n}", &lang.int(recipients)).replace("{c}", &n(&p["estimated_cost"])),
    };
    Ok(html(StatusCode::OK, &page))
}

pub async fn cancel(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let actor = web.p.actor.label();
    act(&state, &web, &id, "cancelled", async |id| {
        operations::cancel(&state.db, web.p.store, id, &actor, "cancelled", state.clock.now_ms()).await
    })
    .await
}

pub async fn pause(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let actor = web.p.actor.label();
    act(&state, &web, &id, "paused", async |id| operations::pause(&state.db, web.p.store, id, &actor, "paused", state.clock.now_ms()).await)
        .await
}

pub async fn resume(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let actor = web.p.actor.label();
    act(&state, &web, &id, "resumed", async |id| operations::resume(&state.db, web.p.store, id, &actor, state.clock.now_ms()).await).await
}

pub async fn retry_failed(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let actor = web.p.actor.label();
    act(&state, &web, &id, "retried", async |id| {
        operations::retry_failed(&state.db, web.p.store, id, &actor, state.settings.send.hold_ttl_ms, state.clock.now_ms()).await
    })
    .await
}

/// The editor's fields as the form sends them.
#[derive(Deserialize, Default, Clone)]
pub struct EditorForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    schedule_at: String,
    #[serde(default)]
    discount_code: String,
    #[serde(default)]
    greek_gsm: Option<String>,
}

impl EditorForm {
    fn from_row(c: &CampaignRow) -> EditorForm {
        let (audience, tags, segment) = match c.audience() {
            Ok(Audience::Tags { any, all }) => {
                ("tags".to_string(), any.iter().chain(&all).cloned().collect::<Vec<_>>().join(", "), String::new())
            }
            Ok(Audience::Segment { id }) => ("segment".to_string(), String::new(), id.to_string()),
            _ => ("all".to_string(), String::new(), String::new()),
        };
        EditorForm {
            name: c.name.clone(),
            message: c.message.clone(),
            audience,
            tags,
            segment,
            priority: c.priority.clone(),
            // datetime-local shows minutes, in UTC (the label says so).
            schedule_at: c.schedule_at.map(|t| crate::domain::time::rfc3339(t)[..16].to_string()).unwrap_or_default(),
            discount_code: c.discount_code.clone().unwrap_or_default(),
            greek_gsm: c.greek_gsm.then(|| "on".into()),
        }
    }

    fn input(&self) -> Result<CampaignInput, Error> {
        let audience = match self.audience.as_str() {
            "tags" => {
                Audience::Tags { any: self.tags.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(), all: vec![] }
            }
            "segment" => Audience::Segment {
                id: self.segment.parse().map_err(|_| {
                    Error::invalid("invalid_audience", "Choose a segment.").with_details(serde_json::json!({"field": "audience"}))
                })?,
            },
            _ => Audience::All,
        };
        let schedule = self.schedule_at.trim();
        Ok(CampaignInput {
            name: Some(self.name.clone()),
            message: Some(self.message.replace("\r\n", "\n")),
            audience: Some(audience),
            priority: Some(Priority::parse(&self.priority).unwrap_or_default()),
            schedule_at: Some(
                (!schedule.is_empty()).then(|| if schedule.len() == 16 { format!("{schedule}:00Z") } else { format!("{schedule}Z") }),
            ),
            sender: None,
            discount_code: Some(Some(self.discount_code.trim().to_string()).filter(|s| !s.is_empty())),
            greek_gsm: Some(self.greek_gsm.is_some()),
        })
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "editor.html")]
struct EditorPage {
    l: Layout,
    action: String,
    cancel_href: String,
    f: EditorForm,
    priorities: Vec<Choice>,
    segments: Vec<Choice>,
    /// The field the error is about, to mark it.
    bad_field: String,
    chars: String,
    segments_count: String,
    encoding: String,
    encoding_label: &'static str,
    ucs2_chars: String,
    greek_segments: Option<String>,
}

async fn editor(state: &AppState, web: &Web, id: Option<i64>, f: EditorForm, error: Option<&Error>) -> WebResult {
    let t = web.t();
    let lang = web.lang;
    let priorities = Priority::ALL
        .iter()
        .map(|p| Choice {
            value: p.as_str().into(),
            label: lang.priority(p.as_str()).into(),
            selected: f.priority == p.as_str() || (f.priority.is_empty() && *p == Priority::Normal),
        })
        .collect();
    let segs = segments::list(&state.db, web.p.store).await?;
    let segments = segs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let v = s["id"].as_i64().unwrap_or(0).to_string();
            Choice { selected: v == f.segment, value: v, label: s["name"].as_str().unwrap_or("").to_string() }
        })
        .collect();
    let a = text_analysis(state, web.p.store, &f.message).await?;
    let enc = a["with_footer"]["encoding"].as_str().unwrap_or("gsm7").to_string();
    let status = error.map(|e| crate::http::error::status_of(e.kind)).unwrap_or(StatusCode::OK);
    let title = if id.is_some() { t.editor_edit } else { t.editor_new };
    let page = EditorPage {
        l: Layout { error: error.map(|e| e.message.clone()), ..web.layout(title, "campaigns") },
        action: id.map(|i| format!("/campaigns/{i}/edit")).unwrap_or_else(|| "/campaigns/new".into()),
        cancel_href: id.map(|i| format!("/campaigns/{i}")).unwrap_or_else(|| "/campaigns".into()),
        priorities,
        segments,
        bad_field: error.and_then(|e| e.details["field"].as_str()).unwrap_or("").to_string(),
        chars: lang.int(a["characters"].as_i64().unwrap_or(0)),
        segments_count: lang.int(a["with_footer"]["segments"].as_i64().unwrap_or(0)),
        encoding_label: if enc == "ucs2" { t.ucs2 } else { t.gsm7 },
        encoding: enc,
        ucs2_chars: a["ucs2_chars"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        greek_segments: a["greek_gsm"]["segments"].as_i64().map(|s| lang.int(s)),
        f,
    };
    Ok(html(status, &page))
}

pub async fn new_form(State(state): State<Arc<AppState>>, web: Web) -> WebResult {
    let f = EditorForm { audience: "all".into(), priority: "normal".into(), ..Default::default() };
    editor(&state, &web, None, f, None).await
}

pub async fn edit_form(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    let c = campaigns::get(&state.db, web.p.store, id).await?;
    if !c.status().editable() {
        return Ok(redirect(&format!("/campaigns/{id}")));
    }
    editor(&state, &web, Some(id), EditorForm::from_row(&c), None).await
}

pub async fn create(State(state): State<Arc<AppState>>, web: Web, WebForm(f): WebForm<EditorForm>) -> WebResult {
    let made = match f.input() {
        Ok(input) => campaigns::create(&state.db, web.p.store, &web.p.actor, input, state.clock.now_ms()).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(c) => Ok(redirect(&format!("/campaigns/{}?done=saved", c.id))),
        Err(e) if e.kind == crate::domain::Kind::Internal => Err(WebError(e)),
        Err(e) => editor(&state, &web, None, f, Some(&e)).await,
    }
}

pub async fn update(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>, WebForm(f): WebForm<EditorForm>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    let saved = match f.input() {
        Ok(input) => campaigns::update(&state.db, web.p.store, &web.p.actor, id, input, state.clock.now_ms()).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(c) => Ok(redirect(&format!("/campaigns/{}?done=saved", c.id))),
        Err(e) if matches!(e.kind, crate::domain::Kind::Internal | crate::domain::Kind::NotFound) => Err(WebError(e)),
        Err(e) => editor(&state, &web, Some(id), f, Some(&e)).await,
    }
}
