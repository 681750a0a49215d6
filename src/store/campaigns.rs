//! Campaigns: create/edit while draft or scheduled, status history, and the exact preview.

use super::audience::{self, Member};
use super::auth::Actor;
use super::{Db, StoreId, Tx, clamp_limit, db_err, is_unique_violation, on_db, on_tx, parse_cursor};
use crate::domain::campaign::{self, Audience, Priority, Status, invalid_state};
use crate::domain::credits::Billing;
use crate::domain::error::code;
use crate::domain::message::{Codes, Composer};
use crate::domain::render::Language;
use crate::domain::sms::Encoding;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::domain::{Error, tenant};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `Default` is an unsaved draft with no id, for counting one as a send would (the editor's box).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: i64,
    pub store_id: i64,
    pub name: String,
    pub message: String,
    pub audience: String,
    pub priority: String,
    pub schedule_at: Option<i64>,
    pub sender: Option<String>,
    pub discount_code: Option<String>,
    pub greek_gsm: bool,
    pub status: String,
    pub total: i64,
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub unknown: i64,
    /// Of `cancelled`: skipped at claim time because the contact had opted out meanwhile.
    pub skipped_opted_out: i64,
    pub delivered: i64,
    /// Messages whose final delivery report was a failure (undelivered, expired, rejected).
    pub undelivered: i64,
    /// Recipients who confirmed the unsubscribe link of one of this campaign's messages.
    pub unsubscribed: i64,
    /// Counted clicks on the campaign's tracked links, and the recipients who clicked at all.
    pub clicks: i64,
    pub unique_clicks: i64,
    /// False for campaigns started before tracked links existed (migration 0017).
    pub track_links: bool,
    pub hold_id: Option<i64>,
    /// What the texts of the current run were rendered with (set when it starts).
    pub launch_language: Option<String>,
    pub launch_public_url: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CampaignRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Draft)
    }

    pub fn audience(&self) -> Result<Audience, Error> {
        serde_json::from_str(&self.audience).map_err(Error::internal)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "message": self.message,
            "audience": serde_json::from_str::<Value>(&self.audience).unwrap_or(Value::Null),
            "priority": self.priority, "schedule_at": self.schedule_at.map(rfc3339), "sender": self.sender,
            "discount_code": self.discount_code, "greek_gsm": self.greek_gsm, "status": self.status,
            "total": self.total, "unsubscribed": self.unsubscribed, "clicks": self.clicks, "unique_clicks": self.unique_clicks, "started_at": self.started_at.map(rfc3339), "finished_at": self.finished_at.map(rfc3339),
            "created_at": rfc3339(self.created_at), "updated_at": rfc3339(self.updated_at),
        })
    }
}

const COLUMNS: &str = "id, store_id, name, message, audience, priority, schedule_at, sender, discount_code, greek_gsm, status, total, pending, sending, sent, failed, \
                       cancelled, unknown, skipped_opted_out, delivered, undelivered, unsubscribed, clicks, unique_clicks, track_links, hold_id, launch_language, launch_public_url, started_at, finished_at, created_at, updated_at";

/// The fields of a campaign a store may set. Used for create (name, message, audience required)
/// and for PATCH (everything optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: Option<String>,
    pub message: Option<String>,
    pub audience: Option<Audience>,
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub schedule_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub sender: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub discount_code: Option<Option<String>>,
    pub greek_gsm: Option<bool>,
}

/// Validated values ready to be written.
struct Fields {
    name: String,
    message: String,
    audience: String,
    priority: Priority,
    schedule_at: Option<i64>,
    sender: Option<String>,
    discount_code: Option<String>,
    greek_gsm: bool,
}

/// Binds the written fields in their column order (`name` … `greek_gsm`), the same for the INSERT
/// and the UPDATE, whatever the dialect's query type.
macro_rules! bind_fields {
    ($q:expr, $f:expr) => {
        $q.bind(&$f.name)
            .bind(&$f.message)
            .bind(&$f.audience)
            .bind($f.priority.as_str())
            .bind($f.schedule_at)
            .bind(&$f.sender)
            .bind(&$f.discount_code)
            .bind($f.greek_gsm)
    };
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::invalid("missing_field", format!("{field} is required.")).with_details(json!({"field": field})))
}

/// Checks every field against the rules, including that a segment belongs to this store.
async fn validate(db: &Db, store: StoreId, f: Fields, now: i64) -> Result<Fields, Error> {
    let name = campaign::validate_name(&f.name)?;
    let template = campaign::validate_message(&f.message)?;
    let audience: Audience = serde_json::from_str::<Audience>(&f.audience).map_err(Error::internal)?.validate()?;
    if let Audience::Segment { id } = audience {
        if super::segments::rules(db, store, id).await?.is_none() {
            return Err(campaign::unknown_segment(id));
        }
    }
    if let Some(at) = f.schedule_at {
        if at <= now {
            return Err(Error::invalid("schedule_in_past", "The scheduled time must be in the future.")
                .with_details(json!({"field": "schedule_at", "schedule_at": rfc3339(at)})));
        }
    }
    let sender = f.sender.as_deref().map(tenant::validate_sender).transpose()?;
    let discount_code = f.discount_code.as_deref().map(campaign::validate_discount_code).transpose()?;
    if discount_code.is_none() {
        let needs_code = template
            .pieces()
            .iter()
            .any(|p| matches!(p, crate::domain::render::Piece::Tag { tag: crate::domain::render::Tag::DiscountCode, default: None }));
        if needs_code {
            return Err(Error::invalid(
                "missing_discount_code",
                "The message uses {{discount_code}} but the campaign has no discount code.",
            )
            .with_details(json!({"field": "discount_code"})));
        }
    }
    Ok(Fields { name, audience: serde_json::to_string(&audience).map_err(Error::internal)?, sender, discount_code, ..f })
}

fn parse_schedule(v: Option<&str>) -> Result<Option<i64>, Error> {
    v.map(|s| {
        parse_rfc3339(s).ok_or_else(|| {
            Error::invalid("invalid_schedule", format!("\"{s}\" is not a time like 2026-12-01T09:00:00Z."))
                .with_details(json!({"field": "schedule_at"}))
        })
    })
    .transpose()
}

fn duplicate_name(name: &str) -> Error {
    Error::conflict("duplicate_name", format!("A campaign named \"{name}\" already exists in this store."))
        .with_details(json!({"field": "name"}))
}

/// One status change of a campaign, as shown in its history.
pub struct StatusChange<'a> {
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub actor: &'a str,
    pub reason: &'a str,
}

pub async fn record_event(tx: &mut Tx<'_>, store: StoreId, campaign: i64, change: StatusChange<'_>, now: i64) -> Result<(), Error> {
    on_tx!(tx, |c| sqlx::query(
        "INSERT INTO campaign_events (store_id, campaign_id, from_status, to_status, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(store.0)
    .bind(campaign)
    .bind(change.from)
    .bind(change.to)
    .bind(change.actor)
    .bind(change.reason)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

pub async fn create(db: &Db, store: StoreId, actor: &Actor, input: CampaignInput, now: i64) -> Result<CampaignRow, Error> {
    let fields = Fields {
        name: required(input.name, "name")?,
        message: required(input.message, "message")?,
        audience: serde_json::to_string(&required(input.audience, "audience")?).map_err(Error::internal)?,
        priority: input.priority.unwrap_or_default(),
        schedule_at: parse_schedule(input.schedule_at.flatten().as_deref())?,
        sender: input.sender.flatten(),
        discount_code: input.discount_code.flatten(),
        greek_gsm: input.greek_gsm.unwrap_or(false),
    };
    let f = validate(db, store, fields, now).await?;
    if let Some(sender) = &f.sender {
        super::senders::require_approved(db, store, sender).await?;
    }
    let status = if f.schedule_at.is_some() { Status::Scheduled } else { Status::Draft };
    let mut tx = db.begin().await?;
    let row: Result<CampaignRow, _> = on_tx!(&mut tx, |c| {
        bind_fields!(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO campaigns (store_id, name, message, audience, priority, schedule_at, sender, discount_code, greek_gsm, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
    )))
    .bind(store.0), f)
    .bind(status.as_str())
    .bind(now)
    .fetch_one(c)
    .await
    });
    let row = row.map_err(|e| if is_unique_violation(&e) { duplicate_name(&f.name) } else { db_err(e) })?;
    record_event(&mut tx, store, row.id, StatusChange { from: None, to: status.as_str(), actor: &actor.label(), reason: "created" }, now)
        .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn get(db: &Db, store: StoreId, id: i64) -> Result<CampaignRow, Error> {
    on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1 AND store_id = $2")))
        .bind(id)
        .bind(store.0)
        .fetch_optional(p)
        .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("campaign"))
}

pub async fn get_tx(tx: &mut Tx<'_>, store: StoreId, id: i64) -> Result<CampaignRow, Error> {
    on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1 AND store_id = $2")))
        .bind(id)
        .bind(store.0)
        .fetch_optional(c)
        .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("campaign"))
}

pub async fn update(db: &Db, store: StoreId, actor: &Actor, id: i64, input: CampaignInput, now: i64) -> Result<CampaignRow, Error> {
    let current = get(db, store, id).await?;
    if !current.status().editable() {
        return Err(invalid_state(&current.status, "edited"));
    }
    let schedule_changed = input.schedule_at.is_some();
    let schedule_at = match input.schedule_at {
        None => current.schedule_at,
        Some(v) => parse_schedule(v.as_deref())?,
    };
    // Only a sender this edit sets must be approved: an unrelated edit keeps the one it has.
    let new_sender = input.sender.clone().flatten().filter(|s| current.sender.as_deref() != Some(s.trim()));
    let fields = Fields {
        name: input.name.unwrap_or(current.name.clone()),
        message: input.message.unwrap_or(current.message.clone()),
        audience: match input.audience {
            Some(a) => serde_json::to_string(&a).map_err(Error::internal)?,
            None => current.audience.clone(),
        },
        priority: input.priority.unwrap_or(Priority::parse(&current.priority).unwrap_or_default()),
        // An unchanged past schedule is the scheduler's business, not a validation error.
        schedule_at: if schedule_changed { schedule_at } else { None },
        sender: input.sender.unwrap_or(current.sender.clone()),
        discount_code: input.discount_code.unwrap_or(current.discount_code.clone()),
        greek_gsm: input.greek_gsm.unwrap_or(current.greek_gsm),
    };
    let mut f = validate(db, store, fields, now).await?;
    if let (Some(_), Some(sender)) = (&new_sender, &f.sender) {
        super::senders::require_approved(db, store, sender).await?;
    }
    f.schedule_at = schedule_at;
    let status = if f.schedule_at.is_some() { Status::Scheduled } else { Status::Draft };
    let mut tx = db.begin().await?;
    // Guarded by the status read above, so a campaign that started meanwhile is not edited.
    let row: Result<Option<CampaignRow>, _> = on_tx!(&mut tx, |c| bind_fields!(
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE campaigns SET name = $3, message = $4, audience = $5, priority = $6, schedule_at = $7, sender = $8, discount_code = $9,
            greek_gsm = $10, status = $11, updated_at = $12
         WHERE id = $1 AND store_id = $2 AND status IN ('draft', 'scheduled') RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(store.0),
        f
    )
    .bind(status.as_str())
    .bind(now)
    .fetch_optional(c)
    .await);
    let row = row.map_err(|e| if is_unique_violation(&e) { duplicate_name(&f.name) } else { db_err(e) })?;
    let Some(row) = row else {
        let now_status = get(db, store, id).await?.status;
        return Err(invalid_state(&now_status, "edited"));
    };
    if row.status != current.status {
        let reason = if status == Status::Scheduled { "scheduled" } else { "schedule removed" };
        record_event(&mut tx, store, id, StatusChange { from: Some(&current.status), to: &row.status, actor: &actor.label(), reason }, now)
            .await?;
    }
    tx.commit().await?;
    Ok(row)
}

pub async fn delete(db: &Db, store: StoreId, id: i64) -> Result<(), Error> {
    let current = get(db, store, id).await?;
    if !current.status().editable() {
        return Err(invalid_state(&current.status, "deleted"));
    }
    let n = on_db!(db, |p| sqlx::query("DELETE FROM campaigns WHERE id = $1 AND store_id = $2 AND status IN ('draft', 'scheduled')")
        .bind(id)
        .bind(store.0)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if n == 0 {
        return Err(invalid_state(&get(db, store, id).await?.status, "deleted"));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CampaignFilter {
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Newest first.
pub async fn list(db: &Db, store: StoreId, f: CampaignFilter) -> Result<Value, Error> {
    let limit = clamp_limit(f.limit, 50, 500)?;
    let before = match parse_cursor(f.cursor.as_deref())? {
        0 => i64::MAX,
        c => c,
    };
    let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| {
                    Error::invalid("invalid_status", format!("\"{s}\" is not a campaign status.")).with_details(json!({"field": "status"}))
                })?
                .as_str(),
        ),
    };
    let mut rows: Vec<CampaignRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM campaigns WHERE store_id = $1 AND id < $2 AND ($3 IS NULL OR status = $3) ORDER BY id DESC LIMIT $4"
    )))
    .bind(store.0)
    .bind(before)
    .bind(status)
    .bind(limit + 1)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let next = super::next_cursor(&mut rows, limit, |r| r.id);
    Ok(json!({"items": rows.iter().map(CampaignRow::to_json).collect::<Vec<_>>(), "next_cursor": next}))
}

/// What preview and send need to know beyond the campaign itself.
#[derive(Debug, Clone)]
pub struct SendSettings {
    pub public_url: String,
    pub billing: Billing,
    pub hold_ttl_ms: i64,
}

/// The composer a started campaign's messages were rendered with: the same texts again.
pub fn launch_composer(c: &CampaignRow) -> Result<Composer, Error> {
    match (&c.launch_language, &c.launch_public_url) {
        (Some(lang), Some(url)) => composer(c, lang, url, c.greek_gsm),
        _ => Err(Error::internal(format!("campaign {} has messages but was never started", c.id))),
    }
}

pub fn composer(c: &CampaignRow, lang: &str, public_url: &str, greek_gsm: bool) -> Result<Composer, Error> {
    let lang = Language::parse(lang).unwrap_or(Language::En);
    let comp = Composer::new(&c.message, greek_gsm, c.discount_code.as_deref(), lang, public_url)
        .map_err(|e| Error::invalid("unknown_merge_tag", e.to_string()))?;
    // Campaigns started before links were tracked render (and list) the texts they were sent with.
    Ok(if c.track_links { comp } else { comp.without_link_tracking() })
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Excluded {
    pub opted_out: i64,
    pub no_consent: i64,
    pub invalid_phone: i64,
    pub duplicate: i64,
}

/// What happens to one audience member: the single rule preview and send share.
pub enum Decision {
    OptedOut,
    NoConsent,
    NotMobile,
    TooLong,
    Send(crate::domain::sms::SegmentInfo),
}

/// Only opted-in contacts with mobile numbers are messaged; their exact text is rendered into `out`.
pub fn decide(m: &Member, comp: &Composer, codes: Codes<'_>, out: &mut String) -> Decision {
    match m.consent.as_str() {
        "opted_in" => {}
        "opted_out" => return Decision::OptedOut,
        _ => return Decision::NoConsent,
    }
    if !m.mobile {
        return Decision::NotMobile;
    }
    match comp.compose(m.first_name.as_deref(), m.last_name.as_deref(), codes, out) {
        Some(info) => Decision::Send(info),
        None => Decision::TooLong,
    }
}

/// Walks the audience once, rendering every recipient's exact text, and totals what a send
/// would do. `each` sees every recipient with its rendered text and segments (send uses it to
/// materialize; preview to keep samples).
pub struct Tally {
    pub recipients: i64,
    pub excluded: Excluded,
    pub gsm7: i64,
    pub ucs2: i64,
    pub segments: i64,
    pub cost: i64,
    pub too_long: i64,
    /// Segments with the Greek GSM option flipped, when the message has Greek letters.
    pub alt_segments: Option<i64>,
}

pub async fn tally(
    db: &Db,
    store: StoreId,
    c: &CampaignRow,
    lang: &str,
    settings: &SendSettings,
    mut each: impl FnMut(&Member, &str, crate::domain::sms::SegmentInfo, i64) -> Result<(), Error>,
) -> Result<Tally, Error> {
    let audience = c.audience()?;
    let filter = audience::filter(db, store, &audience).await?;
    let comp = composer(c, lang, &settings.public_url, c.greek_gsm)?;
    let has_greek = crate::domain::sms::has_greek(&c.message);
    let alt = if has_greek { Some(composer(c, lang, &settings.public_url, !c.greek_gsm)?) } else { None };
    let mut t = Tally {
        recipients: 0,
        excluded: Excluded::default(),
        gsm7: 0,
        ucs2: 0,
        segments: 0,
        cost: 0,
        too_long: 0,
        alt_segments: alt.as_ref().map(|_| 0),
    };
    let mut text = String::with_capacity(256);
    let mut alt_text = String::new();
    audience::stream(db, store, &filter, |m| {
        // Previews count the stand-in codes: the real ones have the same length and alphabet.
        let counter = match decide(&m, &comp, Codes::Preview, &mut text) {
            Decision::Send(info) => Ok(info),
            Decision::OptedOut => Err(&mut t.excluded.opted_out),
            Decision::NoConsent => Err(&mut t.excluded.no_consent),
            Decision::NotMobile => Err(&mut t.excluded.invalid_phone),
            Decision::TooLong => Err(&mut t.too_long),
        };
        let info = match counter {
            Ok(info) => info,
            Err(excluded) => {
                *excluded += 1;
                return Ok(());
            }
        };
        if let (Some(a), Some(total)) = (&alt, t.alt_segments.as_mut()) {
            if let Some(ai) = a.compose(m.first_name.as_deref(), m.last_name.as_deref(), Codes::Preview, &mut alt_text) {
                *total += i64::from(ai.segments);
            }
        }
        t.recipients += 1;
        match info.encoding {
            Encoding::Gsm7 => t.gsm7 += 1,
            Encoding::Ucs2 => t.ucs2 += 1,
        }
        t.segments += i64::from(info.segments);
        let cost = settings.billing.cost(info.segments);
        t.cost += cost;
        each(&m, &text, info, cost)
    })
    .await?;
    Ok(t)
}

pub async fn preview(db: &Db, store: StoreId, id: i64, settings: &SendSettings) -> Result<Value, Error> {
    let c = get(db, store, id).await?;
    let store_row = super::stores::get(db, store).await?;
    let mut blocking: Vec<Value> = Vec::new();
    if !c.status().editable() {
        blocking.push(json!({"code": code::INVALID_STATE, "message": format!("The campaign is {}; only draft or scheduled campaigns can be sent.", c.status)}));
    }
    let mut samples = Vec::new();
    let tally = tally(db, store, &c, &store_row.language, settings, |m, text, info, _| {
        if samples.len() < 3 {
            samples.push(json!({"contact_id": m.id, "phone": m.phone, "text": text, "encoding": info.encoding.as_str(), "characters": info.characters, "segments": info.segments}));
        }
        Ok(())
    })
    .await;
    let tally = match tally {
        Ok(t) => t,
        Err(e) if e.is(code::UNKNOWN_SEGMENT) => {
            blocking.push(json!({"code": code::UNKNOWN_SEGMENT, "message": e.message}));
            Tally { recipients: 0, excluded: Excluded::default(), gsm7: 0, ucs2: 0, segments: 0, cost: 0, too_long: 0, alt_segments: None }
        }
        Err(e) => return Err(e),
    };
    let wallet = crate::store::ledger::wallet(db, store).await?;
    if tally.too_long > 0 {
        blocking.push(json!({"code": "message_too_long", "message": format!("For {} recipients the message is longer than {} characters once their details are filled in. Shorten it.", tally.too_long, crate::domain::message::MAX_CHARS)}));
    }
    if tally.recipients == 0 && tally.too_long == 0 {
        blocking.push(json!({"code": "no_recipients", "message": "Nobody in this audience can receive the campaign (only opted-in contacts with mobile numbers are messaged)."}));
    }
    if tally.cost > wallet.available {
        blocking.push(json!({"code": "insufficient_credits", "message": format!("This campaign needs {} credits but {} are available. Top up {} more.", tally.cost, wallet.available, tally.cost - wallet.available)}));
    }
    let greek = tally.alt_segments.map(|alt| {
        let (with, without) = if c.greek_gsm { (tally.segments, alt) } else { (alt, tally.segments) };
        json!({"enabled": c.greek_gsm, "segments_with": with, "segments_without": without, "saving_segments": without - with})
    });
    Ok(json!({
        "campaign_id": c.id,
        "status": c.status,
        "recipients": tally.recipients,
        "excluded": tally.excluded,
        "encoding": {"gsm7": tally.gsm7, "ucs2": tally.ucs2},
        "segments": tally.segments,
        "estimated_cost": tally.cost,
        "billing": settings.billing,
        "available_credits": wallet.available,
        "balance_after": wallet.available - tally.cost,
        "can_send": blocking.is_empty(),
        "blocking_reasons": blocking,
        "samples": samples,
        "greek_gsm": greek,
    }))
}

pub async fn history(db: &Db, store: StoreId, id: i64) -> Result<Value, Error> {
    get(db, store, id).await?;
    let rows: Vec<(Option<String>, String, String, String, i64)> = on_db!(db, |p| sqlx::query_as(
        "SELECT from_status, to_status, actor, reason, at FROM campaign_events WHERE campaign_id = $1 AND store_id = $2 ORDER BY id"
    )
    .bind(id)
    .bind(store.0)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    Ok(
        json!({"items": rows.into_iter().map(|(f, t, a, r, at)| json!({"from": f, "to": t, "actor": a, "reason": r, "at": rfc3339(at)})).collect::<Vec<_>>()}),
    )
}
