//! Campaign pages: the list, the live campaign page with its actions, the editor and the send.
//! Every action calls the store function its JSON endpoint calls; a failure shows that
//! function's message on the page.

use super::i18n::Lang;
use super::pages::CampaignItem;
use super::{CONFIRM_NAME_ABOVE, Layout, Web, WebError, WebForm, WebResult, chart, html, redirect};
use crate::domain::Error;
use crate::domain::campaign::Audience;
use crate::http::AppState;
use crate::store::campaigns::{self, CampaignFilter, CampaignRow};
use crate::store::{Db, StoreId, operations, queue};
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

pub fn query<T: for<'de> Deserialize<'de> + Default>(q: Option<String>) -> T {
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
        campaigns: rows.iter().map(|c| CampaignItem::new(&web, c)).collect(),
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

/// What a started campaign achieved (`GET /api/campaigns/{id}/report`'s numbers) and its chart.
pub struct Report {
    pub numbers: Vec<Counter>,
    pub chart: Option<String>,
}

async fn results(state: &AppState, web: &Web, c: &CampaignRow) -> Result<Report, Error> {
    let (lang, t) = (web.lang, web.t());
    let r = crate::store::report::campaign_report(&state.db, web.p.store, c.id).await?;
    let n = |k: &str| r[k].as_i64().unwrap_or(0);
    let pct = |k: &str| format!("{} %", lang.dec1(r[k].as_f64().unwrap_or(0.0)));
    let numbers = vec![
        Counter { key: "delivered", label: t.delivered, value: lang.int(n("delivered")) },
        Counter { key: "delivery_rate", label: t.delivery_rate, value: pct("delivery_rate") },
        Counter { key: "clicks_unique", label: t.clicks, value: lang.int(n("clicks_unique")) },
        Counter { key: "click_through_rate", label: t.click_rate, value: pct("click_through_rate") },
        Counter { key: "unsubscribes", label: t.unsubscribes, value: lang.int(n("unsubscribes")) },
        Counter { key: "credits_charged", label: t.charged, value: lang.int(n("credits_charged")) },
    ];
    let words = chart::Labels { title: t.chart_title, sends: t.sent, deliveries: t.delivered, clicks: t.clicks };
    let chart = chart::svg(&chart::buckets(&r["series"]), &web.zone, &words, |v| lang.int(v));
    Ok(Report { numbers, chart })
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
    resend: Option<Retry>,
    report: Option<Report>,
    /// Delivery reports are still expected: the page keeps asking after the run ends.
    poll_reports: bool,
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

/// "Retry failed (N)", or "Send again anyway (N)" for messages whose outcome is unknown (they may
/// have arrived): offered only after the run, and only when it would send something.
async fn requeue_offer(
    state: &AppState,
    web: &Web,
    c: &CampaignRow,
    which: operations::Requeue,
    counted: i64,
) -> Result<Option<Retry>, Error> {
    if counted == 0 || !matches!(c.status.as_str(), "sent" | "failed") {
        return Ok(None);
    }
    let r = operations::requeue_preview(&state.db, web.p.store, c.id, which).await?;
    let (n, cost) = (r["messages"].as_i64().unwrap_or(0), r["estimated_cost"].as_i64().unwrap_or(0));
    let lang = web.lang;
    Ok((n > 0).then(|| match which {
        operations::Requeue::Failed => Retry { label: lang.retry_failed(n), confirm: lang.retry_confirm(n, cost) },
        operations::Requeue::Unknown => Retry { label: lang.resend_unknown(n), confirm: lang.resend_confirm(n, cost) },
    }))
}

/// The campaign page, with an optional message from the action that led here.
async fn campaign_page(state: &AppState, web: &Web, id: i64, flash: Option<String>, error: Option<(StatusCode, String)>) -> WebResult {
    let lang = web.lang;
    let t = web.t();
    let c = campaigns::get(&state.db, web.p.store, id).await?;
    let now = state.clock.now_ms();
    let p = queue::Progress::of(&c, now);
    // Sent counts what the provider accepted; of that, what is delivered, undelivered, and still
    // awaiting its delivery report.
    let awaiting = (p.sent - p.delivered - p.undelivered).max(0);
    let counters = [
        ("pending", t.pending, p.pending),
        ("sending", t.sending, p.sending),
        ("sent", t.sent, p.sent),
        ("delivered", t.delivered, p.delivered),
        ("awaiting", t.awaiting, awaiting),
        ("undelivered", t.undelivered, p.undelivered),
        ("failed", t.failed, p.failed),
        ("unknown", t.unknown, p.unknown),
        ("cancelled", t.cancelled, p.cancelled),
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
            at: h["at"].as_str().and_then(crate::domain::time::parse_rfc3339).map(|t| web.zone.minute(t)).unwrap_or_default(),
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
    let retry = requeue_offer(state, web, &c, operations::Requeue::Failed, c.failed).await?;
    let resend = requeue_offer(state, web, &c, operations::Requeue::Unknown, c.unknown).await?;
    let report = if c.started_at.is_some() { Some(results(state, web, &c).await?) } else { None };
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
        resend,
        report,
        // A report also settles a message whose outcome is unknown.
        poll_reports: awaiting + p.unknown > 0,
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
        "resent" => Some(t.done_resent),
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

#[derive(Deserialize, Default)]
pub struct ResendForm {
    #[serde(default)]
    confirm_duplicates: String,
}

/// "Send again anyway": the same requeue as `POST /api/campaigns/{id}/resend-unknown`, which
/// also wants the store owner's explicit acceptance of duplicates.
pub async fn resend_unknown(
    State(state): State<Arc<AppState>>,
    web: Web,
    Path(id): Path<String>,
    WebForm(f): WebForm<ResendForm>,
) -> WebResult {
    let actor = web.p.actor.label();
    act(&state, &web, &id, "resent", async |id| {
        if f.confirm_duplicates.is_empty() {
            // Found first, so another store's campaign is still a 404.
            campaigns::get(&state.db, web.p.store, id).await?;
            return Err(Error::new(crate::domain::Kind::BadRequest, "confirmation_required", web.t().resend_must_accept)
                .with_details(serde_json::json!({"field": "confirm_duplicates"})));
        }
        let hold_ttl = state.settings.send.hold_ttl_ms;
        operations::requeue(&state.db, web.p.store, id, operations::Requeue::Unknown, &actor, hold_ttl, state.clock.now_ms()).await
    })
    .await
}
