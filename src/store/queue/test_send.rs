//! Test sends: a campaign's message to a few of the store owner's numbers, each with its own hold.

use super::Ids;
use crate::domain::campaign::Priority;
use crate::domain::message::Codes;
use crate::domain::{Error, Kind};
use crate::store::campaigns::{self, SendSettings};
use crate::store::ledger;
use crate::store::{Db, StoreId, Tx, db_err, on_db, on_tx};
use serde_json::{Value, json};

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    /// Up to 5 numbers (the store owner's own phones).
    pub phones: Vec<String>,
    /// Render the message for this contact; without it, merge tags use their defaults.
    #[serde(default)]
    pub contact_id: Option<i64>,
}

/// Sends the campaign's message to a few numbers, rendered for one contact, charged like any
/// message, without touching the campaign: each test message holds its own credits. At most
/// `per_day` test messages per store per UTC day (a test send is not an audience: it must not
/// become a free channel to any number).
pub async fn send_test(
    db: &Db,
    store: StoreId,
    id: i64,
    req: TestSend,
    settings: &SendSettings,
    per_day: i64,
    now: i64,
) -> Result<Value, Error> {
    if req.phones.is_empty() || req.phones.len() > 5 {
        return Err(Error::invalid_field("phones", "Give between 1 and 5 phone numbers for a test send."));
    }
    let c = campaigns::get(db, store, id).await?;
    let store_row = crate::store::stores::get(db, store).await?;
    let country = crate::domain::phone::parse_country(&store_row.default_country).unwrap_or(phonenumber::country::Id::GR);
    let mut phones = Vec::new();
    for p in &req.phones {
        let parsed = crate::domain::phone::parse(p, country)?;
        if !phones.contains(&parsed.e164) {
            phones.push(parsed.e164);
        }
    }
    let (first, last) = match req.contact_id {
        Some(cid) => {
            let contact = crate::store::contacts::get(db, store, cid).await?;
            (contact.first_name, contact.last_name)
        }
        None => (None, None),
    };
    let comp = campaigns::composer(&c, &store_row.language, &settings.public_url, c.greek_gsm)?;
    let mut tx = db.begin().await?;
    count_test_sends(&mut tx, store, phones.len() as i64, per_day, now).await?;
    let key = crate::store::settings::code_key(&mut tx).await?;
    let mut out = Vec::new();
    for phone in phones {
        let mid = Ids::new(db, &mut tx).await?.take(1).await?[0];
        let mut text = String::new();
        let info = comp
            .compose(first.as_deref(), last.as_deref(), Codes::Message(&key, mid), &mut text)
            .ok_or_else(|| Error::invalid("message_too_long", "The message is too long once the contact's details are filled in."))?;
        let cost = settings.billing.cost(info.segments);
        let hold = ledger::hold(&mut tx, store, Some(id), cost, &format!("test:message:{mid}"), settings.hold_ttl_ms, now).await?;
        on_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO messages (id, store_id, campaign_id, contact_id, hold_id, phone, text, segments, cost, test, status, priority, next_attempt_at, created_at, updated_at)
             VALUES ($9, $1, $2, $3, $4, $5, $6, $7, $8, TRUE, 'pending', $10, $11, $11, $11)"
        )
        .bind(store.0)
        .bind(id)
        .bind(req.contact_id)
        .bind(hold.id)
        .bind(&phone)
        .bind(&text)
        .bind(i64::from(info.segments))
        .bind(cost)
        .bind(mid)
        .bind(Priority::Urgent.rank())
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        out.push(
            json!({"id": mid, "phone": phone, "text": text, "segments": info.segments, "encoding": info.encoding.as_str(), "cost": cost}),
        );
    }
    tx.commit().await?;
    Ok(json!({"ok": true, "messages": out}))
}

/// Adds `n` test messages to the store's count for `now`'s UTC day, or refuses (429
/// `test_send_limit`, nothing counted) when that would pass `per_day`. A conditional upsert, so
/// concurrent test sends on any node cannot pass the limit together.
async fn count_test_sends(tx: &mut Tx<'_>, store: StoreId, n: i64, per_day: i64, now: i64) -> Result<(), Error> {
    let (day, _) = crate::store::web::day_and_month_start(now);
    let counted: Option<i64> = if n > per_day {
        None
    } else {
        on_tx!(tx, |c| sqlx::query_scalar(
            "INSERT INTO test_send_days (store_id, day, sent) VALUES ($1, $2, $3)
             ON CONFLICT (store_id, day) DO UPDATE SET sent = test_send_days.sent + excluded.sent
             WHERE test_send_days.sent + excluded.sent <= $4
             RETURNING sent"
        )
        .bind(store.0)
        .bind(day)
        .bind(n)
        .bind(per_day)
        .fetch_optional(c)
        .await)
        .map_err(db_err)?
    };
    if counted.is_some() {
        return Ok(());
    }
    let used: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar("SELECT sent FROM test_send_days WHERE store_id = $1 AND day = $2")
        .bind(store.0)
        .bind(day)
        .fetch_optional(c)
        .await)
    .map_err(db_err)?;
    let retry_after = (day + 86_400_000 - now + 999) / 1000;
    Err(Error::new(
        Kind::TooManyRequests,
        "test_send_limit",
        format!(
            "This store can send {per_day} test messages a day and has {} left today; more can be sent after midnight (UTC).",
            (per_day - used.unwrap_or(0)).max(0)
        ),
    )
    .with_details(json!({"limit": per_day, "used": used.unwrap_or(0), "requested": n, "retry_after": retry_after})))
}

/// One test message, for the store to follow its outcome.
pub async fn get_test_message(db: &Db, store: StoreId, campaign: i64, id: i64) -> Result<Value, Error> {
    let row: Option<(String, String, Option<String>, Option<String>)> = on_db!(db, |p| {
        sqlx::query_as(
        "SELECT phone, status, provider_message_id, error_code FROM messages WHERE id = $1 AND campaign_id = $2 AND store_id = $3 AND test"
    )
    .bind(id)
    .bind(campaign)
    .bind(store.0)
    .fetch_optional(p)
    .await
    })
    .map_err(db_err)?;
    let (phone, status, pid, err) = row.ok_or_else(|| Error::not_found("test message"))?;
    Ok(json!({"id": id, "phone": phone, "status": status, "provider_message_id": pid, "error_code": err}))
}
