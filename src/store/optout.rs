//! Opting out after the send: the unsubscribe link at the end of every message, and inbound SMS
//! replies (STOP, START, HELP and a store's own keywords).

use super::contacts::{ConsentChange, change_consent};
use super::{Db, StoreId, Tx, db_err, on_db, on_tx};
use crate::domain::contact::Consent;
use crate::domain::optout::{self, Action};
use crate::domain::unsubscribe::CodeKey;
use crate::domain::{Error, phone};
use serde_json::{Value, json};

/// The message an unsubscribe code names, with what its page shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unsubscribe {
    pub message_id: i64,
    pub store_id: i64,
    pub campaign_id: i64,
    pub test: bool,
    pub phone: String,
    pub store_name: String,
    pub language: String,
    /// The contact the link opts out: the message's own (campaign messages), or the store's
    /// contact with the number a test message went to. `None` when there is none (any more).
    pub contact_id: Option<i64>,
    pub consent: Option<String>,
}

impl Unsubscribe {
    pub fn opted_out(&self) -> bool {
        self.consent.as_deref() == Some(Consent::OptedOut.as_str())
    }
}

/// One query for the page and for the confirmation. A campaign message opts out the contact it
/// was sent to; a test message went to a number the store typed, so it opts out that number's
/// contact in the same store, never the contact whose details filled the text.
const TARGET: &str = "SELECT m.id AS message_id, m.store_id, m.campaign_id, m.test, m.phone, s.name AS store_name, s.language,
        k.id AS contact_id, k.consent
    FROM messages m JOIN stores s ON s.id = m.store_id
    LEFT JOIN contacts k ON k.store_id = m.store_id
        AND k.id = CASE WHEN m.test THEN (SELECT t.id FROM contacts t WHERE t.store_id = m.store_id AND t.phone = m.phone) ELSE m.contact_id END
    WHERE m.id = $1";

/// The message behind an unsubscribe code, if the code names one. Reads only: link scanners
/// open every link, so the page itself changes nothing.
pub async fn find(db: &Db, key: &CodeKey, code: &str) -> Result<Option<Unsubscribe>, Error> {
    let Some(id) = key.message_id(code) else { return Ok(None) };
    on_db!(db, |p| sqlx::query_as(TARGET).bind(id).fetch_optional(p).await).map_err(db_err)
}

pub const UNSUBSCRIBE_SOURCE: &str = "unsubscribe_link";

/// Confirms an unsubscribe: the contact becomes `opted_out` with source `unsubscribe_link`, the
/// campaign and the time in its consent history, and the campaign's `unsubscribed` counter moves
/// in the same transaction. A second confirmation (or one for a contact already opted out)
/// changes nothing. Returns the target and whether this call opted the contact out.
pub async fn confirm(db: &Db, key: &CodeKey, code: &str, now: i64) -> Result<Option<(Unsubscribe, bool)>, Error> {
    let Some(id) = key.message_id(code) else { return Ok(None) };
    let mut tx = db.begin().await?;
    let target: Option<Unsubscribe> = on_tx!(&mut tx, |c| sqlx::query_as(TARGET).bind(id).fetch_optional(c).await).map_err(db_err)?;
    let Some(target) = target else { return Ok(None) };
    let Some(contact) = target.contact_id else { return Ok(Some((target, false))) };
    let change =
        ConsentChange { to: Consent::OptedOut, source: UNSUBSCRIBE_SOURCE, actor: "recipient", campaign: Some(target.campaign_id) };
    let changed = change_consent(&mut tx, StoreId(target.store_id), contact, &change, now).await?.is_some();
    // Test messages are not the campaign's: they never count in it.
    if changed && !target.test {
        bump_unsubscribed(&mut tx, target.store_id, target.campaign_id).await?;
    }
    tx.commit().await?;
    Ok(Some((target, changed)))
}

async fn bump_unsubscribed(tx: &mut Tx<'_>, store: i64, campaign: i64) -> Result<(), Error> {
    on_tx!(tx, |c| sqlx::query("UPDATE campaigns SET unsubscribed = unsubscribed + 1 WHERE id = $1 AND store_id = $2")
        .bind(campaign)
        .bind(store)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

/// How far back a store must have messaged a number for that number's replies to reach it.
pub const INBOUND_WINDOW_MS: i64 = 30 * 24 * 3_600_000;

/// An inbound SMS as the webhook read it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// E.164.
    pub phone: String,
    pub text: String,
    /// The raw payload, kept for audit.
    pub payload: String,
}

/// A store that messaged the number: its contact with that number and the latest campaign that
/// reached it.
#[derive(Debug, Clone, Copy)]
struct Sender {
    store: i64,
    contact: i64,
    campaign: i64,
}

/// Every store that sent a campaign message to `phone` within `INBOUND_WINDOW_MS`. Stores are
/// few and each holds a number at most once (unique `(store_id, phone)`), so the contacts are
/// found with one probe of that index per store, not a scan of every store's contacts; then each
/// candidate's recent campaigns are checked for a message to that contact, newest first.
async fn senders(db: &Db, phone: &str, now: i64) -> Result<Vec<Sender>, Error> {
    let contacts: Vec<(i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "SELECT k.store_id, k.id FROM stores s JOIN contacts k ON k.store_id = s.id AND k.phone = $1 ORDER BY k.store_id"
    )
    .bind(phone)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let mut out = Vec::new();
    for (store, contact) in contacts {
        let campaign: Option<i64> = on_db!(db, |p| sqlx::query_scalar(
            "SELECT c.id FROM campaigns c
             WHERE c.store_id = $1 AND c.started_at >= $2 AND c.first_message_id IS NOT NULL
               AND EXISTS (SELECT 1 FROM messages m WHERE m.id BETWEEN c.first_message_id AND c.last_message_id
                           AND m.campaign_id = c.id AND m.contact_id = $3 AND NOT m.test)
             ORDER BY c.started_at DESC, c.id DESC LIMIT 1"
        )
        .bind(store)
        .bind(now - INBOUND_WINDOW_MS)
        .bind(contact)
        .fetch_optional(p)
        .await)
        .map_err(db_err)?;
        if let Some(campaign) = campaign {
            out.push(Sender { store, contact, campaign });
        }
    }
    Ok(out)
}

/// A store's own keywords, folded, with their action.
pub async fn own_keywords(db: &Db, store: StoreId) -> Result<Vec<(String, Action)>, Error> {
    let rows: Vec<(String, String)> =
        on_db!(db, |p| sqlx::query_as("SELECT keyword, action FROM store_keywords WHERE store_id = $1 ORDER BY keyword")
            .bind(store.0)
            .fetch_all(p)
            .await)
        .map_err(db_err)?;
    Ok(rows.into_iter().filter_map(|(k, a)| Action::parse(&a).map(|a| (k, a))).collect())
}

pub async fn keywords_json(db: &Db, store: StoreId) -> Result<Value, Error> {
    let own = own_keywords(db, store).await?;
    let of = |action: Action| own.iter().filter(|(_, a)| *a == action).map(|(k, _)| k.as_str()).collect::<Vec<_>>();
    Ok(
        json!({"opt_out": of(Action::OptOut), "opt_in": of(Action::OptIn), "builtin": {"opt_out": ["STOP", "UNSUBSCRIBE", "ΣΤΟΠ", "ΔΙΑΓΡΑΦΗ"], "opt_in": ["START"], "help": ["HELP"]}}),
    )
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeywordsInput {
    #[serde(default)]
    pub opt_out: Vec<String>,
    #[serde(default)]
    pub opt_in: Vec<String>,
}

/// Replaces a store's own keywords.
pub async fn set_keywords(db: &Db, store: StoreId, input: KeywordsInput) -> Result<Value, Error> {
    let mut folded: Vec<(String, Action)> = Vec::new();
    for (list, action) in [(&input.opt_out, Action::OptOut), (&input.opt_in, Action::OptIn)] {
        for raw in list {
            let k = optout::validate_keyword(raw, action)?;
            if let Some((_, other)) = folded.iter().find(|(f, _)| *f == k) {
                if *other != action {
                    return Err(Error::invalid("invalid_keyword", format!("\"{raw}\" is given both to opt out and to opt in.")));
                }
                continue;
            }
            folded.push((k, action));
        }
    }
    if folded.len() > optout::MAX_KEYWORDS {
        return Err(Error::invalid("too_many_keywords", format!("A store can have at most {} keywords of its own.", optout::MAX_KEYWORDS)));
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| sqlx::query("DELETE FROM store_keywords WHERE store_id = $1")
        .bind(store.0)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    for (k, a) in &folded {
        on_tx!(&mut tx, |c| sqlx::query("INSERT INTO store_keywords (store_id, keyword, action) VALUES ($1, $2, $3)")
            .bind(store.0)
            .bind(k)
            .bind(a.as_str())
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    tx.commit().await?;
    keywords_json(db, store).await
}

pub const INBOUND_SOURCE: &str = "inbound_sms";

/// Reads the sender's number as the webhook gives it: E.164, or its digits without the `+`.
pub fn inbound_phone(raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    let with_plus = if raw.starts_with('+') || raw.starts_with("00") { raw.to_string() } else { format!("+{raw}") };
    // The country only matters for national numbers, which an international gateway never sends.
    Ok(phone::parse(&with_plus, phonenumber::country::Id::GR)?.e164)
}

/// Handles one inbound SMS: finds the stores that messaged the number (see `senders`), reads the
/// keyword with each store's own keywords, applies it to that store's contact (opt out, opt back
/// in; help is only recorded) with the consent history, and keeps the message for audit — one
/// row per store it reached, or one without a store. One transaction: all of it or nothing.
pub async fn receive(db: &Db, msg: &Inbound, now: i64) -> Result<Value, Error> {
    let senders = senders(db, &msg.phone, now).await?;
    let mut plans = Vec::with_capacity(senders.len());
    for s in &senders {
        let own = own_keywords(db, StoreId(s.store)).await?;
        plans.push((*s, optout::classify(&msg.text, &own)));
    }
    let mut tx = db.begin().await?;
    let mut results = Vec::new();
    for (s, action) in &plans {
        let to = match action {
            Some(Action::OptOut) => Some(Consent::OptedOut),
            Some(Action::OptIn) => Some(Consent::OptedIn),
            Some(Action::Help) | None => None,
        };
        let changed = match to {
            Some(to) => {
                let change = ConsentChange { to, source: INBOUND_SOURCE, actor: "recipient", campaign: Some(s.campaign) };
                change_consent(&mut tx, StoreId(s.store), s.contact, &change, now).await?.is_some()
            }
            None => false,
        };
        insert_inbound(&mut tx, Some(*s), msg, *action, changed, now).await?;
        results.push(json!({"store_id": s.store, "campaign_id": s.campaign, "action": action.map(Action::as_str), "changed": changed}));
    }
    if plans.is_empty() {
        insert_inbound(&mut tx, None, msg, optout::classify(&msg.text, &[]), false, now).await?;
    }
    tx.commit().await?;
    Ok(json!({"ok": true, "stores": results}))
}

async fn insert_inbound(
    tx: &mut Tx<'_>,
    s: Option<Sender>,
    msg: &Inbound,
    action: Option<Action>,
    changed: bool,
    now: i64,
) -> Result<(), Error> {
    on_tx!(tx, |c| sqlx::query(
        "INSERT INTO inbound_messages (store_id, contact_id, campaign_id, phone, text, action, changed, payload, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(s.map(|s| s.store))
    .bind(s.map(|s| s.contact))
    .bind(s.map(|s| s.campaign))
    .bind(&msg.phone)
    .bind(&msg.text)
    .bind(action.map_or("none", Action::as_str))
    .bind(changed)
    .bind(&msg.payload)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}
