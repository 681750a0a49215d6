//! Launching a campaign: its message rows, its hold and its status change in one transaction.

use super::{INSERT_BATCH, Ids};
use crate::domain::Error;
use crate::domain::campaign::{Priority, invalid_state};
use crate::domain::message::Codes;
use crate::store::audience;
use crate::store::campaigns::{self, CampaignRow, Decision, SendSettings, StatusChange};
use crate::store::idempotency::{self, Stored};
use crate::store::ledger;
use crate::store::{Db, StoreId, Tx, db_err, on_tx, sqlite_rows};
use serde_json::{Value, json};

/// A campaign message as the launch writes it: no text, which is rendered again from the campaign
/// and these names when sent or listed (a third of the bytes, on every write of the row).
struct NewMessage {
    id: i64,
    contact_id: i64,
    phone: String,
    first_name: Option<String>,
    last_name: Option<String>,
    segments: i64,
    cost: i64,
}

const LAUNCH_COLUMNS: &str = "messages (store_id, campaign_id, priority, next_attempt_at, created_at, updated_at, status, id, contact_id, phone, first_name, last_name, segments, cost)";

/// A launch's rows on SQLite: multi-row INSERTs of up to 1,000 rows. Each row binds only numbers
/// (id, contact, segments, cost); the phone and names are copied from the contact inside SQLite,
/// which costs less than binding three strings per row. They are the values the renderer read:
/// the launch's transaction holds the write lock, so no contact changes in between.
async fn insert_sqlite(
    c: &mut sqlx::SqliteConnection,
    campaign: &CampaignRow,
    rows: &[NewMessage],
    priority: i64,
    now: i64,
) -> Result<(), Error> {
    for chunk in rows.chunks(INSERT_BATCH) {
        // The values common to every row come first, bound once per statement.
        let mut sql = String::with_capacity(320 + chunk.len() * 10);
        sql.push_str("INSERT INTO ");
        sql.push_str(LAUNCH_COLUMNS);
        sql.push_str(
            " SELECT ?, ?, ?, ?, ?, ?, 'pending', v.column1, v.column2, k.phone, k.first_name, k.last_name, v.column3, v.column4 FROM (VALUES ",
        );
        sql.push_str(&sqlite_rows(chunk.len(), 4));
        sql.push_str(") AS v CROSS JOIN contacts k ON k.id = v.column2");
        let mut q =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(campaign.store_id).bind(campaign.id).bind(priority).bind(now).bind(now).bind(now);
        for m in chunk {
            q = q.bind(m.id).bind(m.contact_id).bind(m.segments).bind(m.cost);
        }
        let written = q.execute(&mut *c).await.map_err(db_err)?.rows_affected();
        if written != chunk.len() as u64 {
            return Err(Error::internal(format!("launch: {written} of {} messages written", chunk.len())));
        }
    }
    Ok(())
}

/// A launch's rows on PostgreSQL, as `COPY` text lines (a third cheaper for the server than
/// `INSERT … SELECT FROM unnest(…)`).
fn copy_lines(out: &mut Vec<u8>, campaign: &CampaignRow, rows: &[NewMessage], priority: i64, now: i64) {
    use std::io::Write;
    out.clear();
    for m in rows {
        let _ =
            write!(out, "{}\t{}\t{priority}\t{now}\t{now}\t{now}\tpending\t{}\t{}\t", campaign.store_id, campaign.id, m.id, m.contact_id);
        for field in [Some(&m.phone), m.first_name.as_ref(), m.last_name.as_ref()] {
            let Some(field) = field else {
                out.extend_from_slice(b"\\N\t");
                continue;
            };
            for b in field.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.push(b),
                }
            }
            out.push(b'\t');
        }
        let _ = writeln!(out, "{}\t{}", m.segments, m.cost);
    }
}

/// Starts a campaign: `draft|scheduled → sending`, one message row per recipient with its exact
/// text and segments, and a hold of the exact cost — all in one transaction, through the same
/// `decide` as the preview. Two concurrent starts cannot both win the conditional update.
pub async fn start(db: &Db, store: StoreId, id: i64, actor: &str, reason: &str, settings: &SendSettings, now: i64) -> Result<Value, Error> {
    start_tx(db, store, id, actor, reason, settings, now, None).await
}

/// An Idempotency-Key's answer, saved in the launch's own transaction: (scope, key, request).
type Answer<'a> = (&'a str, &'a str, &'a Value);

#[allow(clippy::too_many_arguments)]
async fn start_tx(
    db: &Db,
    store: StoreId,
    id: i64,
    actor: &str,
    reason: &str,
    settings: &SendSettings,
    now: i64,
    answer: Option<Answer<'_>>,
) -> Result<Value, Error> {
    let mut tx = db.begin().await?;
    // The consent mark is taken here, before the audience is read (claims check consent again only
    // if a contact of the store stopped being opted in after it; migration 0025).
    let mark = if db.is_postgres() { "pg_current_snapshot()::text" } else { "(SELECT COALESCE(MAX(id), 0) FROM consent_revocations)" };
    let won = on_tx!(&mut tx, |conn| sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE campaigns SET status = 'sending', started_at = $3, finished_at = NULL, updated_at = $3, consent_mark = {mark}
         WHERE id = $1 AND store_id = $2 AND status IN ('draft', 'scheduled')"
    )))
    .bind(id)
    .bind(store.0)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if won == 0 {
        drop(tx);
        return Err(invalid_state(&campaigns::get(db, store, id).await?.status, "started"));
    }
    // What is priced is read after the status change, in its transaction: the row it changed
    // (locked on PostgreSQL, under the write lock on SQLite), so an edit that commits meanwhile is
    // either in this text or refused as no longer editable. Claims render this same row.
    let c = campaigns::get_tx(&mut tx, store, id).await?;
    // The status it had: only scheduled campaigns have a time (an edit keeps the two in step).
    let from = if c.schedule_at.is_some() { "scheduled" } else { "draft" };
    let store_row = crate::store::stores::get(db, store).await?;
    let comp = campaigns::composer(&c, &store_row.language, &settings.public_url, c.greek_gsm)?;
    let filter = audience::filter(db, store, &c.audience()?).await?;
    let priority = Priority::parse(&c.priority).unwrap_or_default().rank();
    // The unsubscribe code key is created here if this is the first launch (claims and lists only
    // read it).
    crate::store::settings::code_key(&mut tx).await?;
    let mut ids = Ids::new(db, &mut tx).await?;
    // Three stages run side by side: the reader streams contacts (its own connection), a task
    // renders each batch, and this one inserts it, so rendering batch k + 1 overlaps inserting k.
    let (mut batches, reader) = audience::spawn_batches(db.clone(), store, filter, INSERT_BATCH);
    let (rendered_tx, mut rendered) = tokio::sync::mpsc::channel::<Vec<NewMessage>>(2);
    let billing = settings.billing;
    let renderer = tokio::spawn(async move {
        let (mut cost, mut segments, mut too_long) = (0i64, 0i64, 0i64);
        let mut text = String::new();
        while let Some(members) = batches.recv().await {
            let mut rows = Vec::with_capacity(members.len());
            for m in members {
                match campaigns::decide(&m, &comp, Codes::Preview, &mut text) {
                    Decision::Send(info) => {
                        let price = billing.cost(info.segments);
                        rows.push(NewMessage {
                            id: 0,
                            contact_id: m.id,
                            phone: m.phone,
                            first_name: m.first_name,
                            last_name: m.last_name,
                            segments: i64::from(info.segments),
                            cost: price,
                        });
                        cost += price;
                        segments += i64::from(info.segments);
                    }
                    Decision::TooLong => too_long += 1,
                    Decision::OptedOut | Decision::NoConsent | Decision::NotMobile => {}
                }
            }
            let taken = ids.take(rows.len()).await?;
            for (m, id) in rows.iter_mut().zip(taken) {
                m.id = id;
            }
            if rendered_tx.send(rows).await.is_err() {
                break; // the insert failed; its error is the one reported
            }
        }
        Ok::<_, Error>((cost, segments, too_long))
    });
    let (mut count, mut range) = (0i64, None::<(i64, i64)>);
    let mut note = |rows: &[NewMessage]| {
        count += rows.len() as i64;
        for m in rows {
            range = Some(range.map_or((m.id, m.id), |(lo, hi): (i64, i64)| (lo.min(m.id), hi.max(m.id))));
        }
    };
    match &mut tx {
        Tx::Sqlite(conn) => {
            while let Some(rows) = rendered.recv().await {
                note(&rows);
                insert_sqlite(conn, &c, &rows, priority, now).await?;
            }
        }
        Tx::Pg(conn) => {
            let mut copy = conn.copy_in_raw(&format!("COPY {LAUNCH_COLUMNS} FROM STDIN")).await.map_err(db_err)?;
            let mut buf = Vec::new();
            while let Some(rows) = rendered.recv().await {
                note(&rows);
                copy_lines(&mut buf, &c, &rows, priority, now);
                if let Err(e) = copy.send(buf.as_slice()).await {
                    let _ = copy.abort("launch failed").await;
                    return Err(db_err(e));
                }
            }
            copy.finish().await.map_err(db_err)?;
        }
    }
    let (cost, segments, too_long) = renderer.await.map_err(Error::internal)??;
    reader.await.map_err(Error::internal)??;
    if too_long > 0 {
        return Err(Error::invalid(
            "message_too_long",
            format!(
                "For {too_long} recipients the message is longer than {} characters once their details are filled in.",
                crate::domain::message::MAX_CHARS
            ),
        )
        .with_details(json!({"recipients": too_long})));
    }
    if count == 0 {
        return Err(Error::invalid(
            "no_recipients",
            "Nobody in this audience can receive the campaign (only opted-in contacts with mobile numbers are messaged).",
        ));
    }
    let hold = ledger::hold(&mut tx, store, Some(id), cost, &format!("campaign:{id}:run:{now}"), settings.hold_ttl_ms, now).await?;
    let (first, last) = range.unzip();
    on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE campaigns SET hold_id = $2, total = $3, pending = $3, sending = 0, sent = 0, failed = 0, cancelled = 0, skipped_opted_out = 0, unknown = 0, delivered = 0, undelivered = 0,
             first_message_id = $4, last_message_id = $5, launch_language = $6, launch_public_url = $7 WHERE id = $1"
    )
        .bind(id)
        .bind(hold.id)
        .bind(count)
        .bind(first)
        .bind(last)
        .bind(&store_row.language)
        .bind(&settings.public_url)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    campaigns::record_event(&mut tx, store, id, StatusChange { from: Some(from), to: "sending", actor, reason }, now).await?;
    let body = json!({"ok": true, "campaign_id": id, "status": "sending", "messages": count, "segments": segments, "held_credits": cost, "hold_id": hold.id});
    if let Some((scope, key, request)) = answer {
        idempotency::save(&mut tx, scope, key, request, 202, &body, now).await?;
    }
    tx.commit().await?;
    Ok(body)
}

/// Starts a campaign under an optional `Idempotency-Key`, for every caller that sends on a user's
/// behalf (the API, the web form): a replay answers what the first start answered (202 and its
/// body). The answer is stored in the launch's own transaction, so there is no moment when the
/// campaign has started and its answer is missing: a second start under the same key either waits
/// for the first and finds its answer, or fails with `invalid_state` and then finds it. The same key
/// on another campaign is refused (409 `idempotency_key_reused`), even when both race.
pub async fn start_with_key(
    db: &Db,
    store: StoreId,
    id: i64,
    actor: &str,
    key: Option<&str>,
    settings: &SendSettings,
    now: i64,
) -> Result<Stored, Error> {
    let scope = format!("send:{}", store.0);
    let request = json!({"campaign_id": id});
    if let Some(k) = key {
        if let Some(prev) = idempotency::lookup(db, &scope, k, &request).await? {
            return Ok(prev);
        }
    }
    let answer = key.map(|k| (scope.as_str(), k, &request));
    match (start_tx(db, store, id, actor, "started", settings, now, answer).await, key) {
        (Ok(body), _) => Ok(Stored { status: 202, body }),
        // A concurrent request under the same key won: the same send answers what it answered
        // (this one found the campaign started), another campaign's send is told the key is taken
        // (this one failed to save its answer on the key's primary key).
        (Err(e), Some(k)) => idempotency::lookup(db, &scope, k, &request).await?.ok_or(e),
        (Err(e), None) => Err(e),
    }
}
