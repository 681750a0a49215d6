//! The message table is the queue (DESIGN.md §4): launching a campaign materializes one row per
//! recipient; workers claim batches under a lease and a fencing token, record each batch's
//! outcome in one transaction (statuses, counters, credit charges), and a reaper turns expired
//! leases into `unknown` — never resent automatically.

use super::audience;
use super::campaigns::{self, CampaignRow, Decision, SendSettings, StatusChange};
use super::{Db, StoreId, Tx, clamp_limit, db_err, on_db, on_tx, parse_cursor, sqlite_rows};
use crate::domain::campaign::{Priority, Status, invalid_state};
use crate::domain::message::{Composer, preview_code};
use crate::domain::time::rfc3339;
use crate::domain::unsubscribe::CodeKey;
use crate::domain::{Error, Kind};
use crate::ledger::{self, TransferKind};
use serde_json::{Value, json};

/// Rows per multi-row INSERT when materializing.
const INSERT_BATCH: usize = 1000;

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

/// Where a launch's message ids come from. They are taken before the rows are written, so the
/// launch knows the campaign's id range (lists walk it) without reading anything back.
enum Ids {
    /// SQLite: the launch's transaction holds the write lock (`BEGIN IMMEDIATE`) from before the
    /// first id is read until it commits, so the ids after the highest one ever given are free.
    Next(i64),
    /// PostgreSQL: the table's sequence, asked on a pooled connection (sequences are not
    /// transactional, so the launch's own connection can stay busy with its `COPY`), 10,000 at a
    /// time; what is left unused at the end is a harmless gap.
    Sequence(sqlx::PgPool, std::collections::VecDeque<i64>),
}

impl Ids {
    async fn new(db: &Db, tx: &mut Tx<'_>) -> Result<Ids, Error> {
        match (db, tx) {
            (Db::Pg(pool), _) => Ok(Ids::Sequence(pool.clone(), Default::default())),
            (_, Tx::Sqlite(c)) => Ok(Ids::Next(super::sqlite_next_id(c, "messages").await?)),
            (_, Tx::Pg(_)) => Err(Error::internal("a PostgreSQL transaction on a SQLite database")),
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<i64>, Error> {
        match self {
            Ids::Next(next) => {
                let ids = (*next..*next + n as i64).collect();
                *next += n as i64;
                Ok(ids)
            }
            Ids::Sequence(pool, ready) => {
                while ready.len() < n {
                    // The sequence named as a constant: `pg_get_serial_sequence` costs a catalog
                    // lookup per row (4 µs; 10 times `nextval` itself).
                    let more: Vec<i64> = sqlx::query_scalar("SELECT nextval('messages_id_seq'::regclass) FROM generate_series(1, $1)")
                        .bind(n.max(10_000) as i64)
                        .fetch_all(&*pool)
                        .await
                        .map_err(db_err)?;
                    ready.extend(more);
                }
                Ok(ready.drain(..n).collect())
            }
        }
    }
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
    let c = campaigns::get(db, store, id).await?;
    if !c.status().editable() {
        return Err(invalid_state(&c.status, "started"));
    }
    let store_row = super::stores::get(db, store).await?;
    let comp = campaigns::composer(&c, &store_row.language, &settings.public_url, c.greek_gsm)?;
    let filter = audience::filter(db, store, &c.audience()?).await?;
    let priority = Priority::parse(&c.priority).unwrap_or_default().rank();
    let mut tx = db.begin().await?;
    let won = on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE campaigns SET status = 'sending', started_at = $3, finished_at = NULL, updated_at = $3 WHERE id = $1 AND store_id = $2 AND status IN ('draft', 'scheduled')"
    )
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
    // The unsubscribe code key is created here if this is the first launch (claims and lists only
    // read it).
    super::settings::code_key(&mut tx).await?;
    let mut ids = Ids::new(db, &mut tx).await?;
    // Three stages run side by side: the reader streams contacts (its own connection), a task
    // renders each batch, and this one inserts it, so rendering batch k + 1 overlaps inserting k.
    let (mut batches, reader) = audience::spawn_batches(db.clone(), store, filter, INSERT_BATCH);
    let (rendered_tx, mut rendered) = tokio::sync::mpsc::channel::<Vec<NewMessage>>(2);
    let billing = settings.billing;
    let renderer = tokio::spawn(async move {
        let (mut cost, mut segments, mut too_long) = (0i64, 0i64, 0i64);
        let mut text = String::new();
        let code = preview_code();
        while let Some(members) = batches.recv().await {
            let mut rows = Vec::with_capacity(members.len());
            for m in members {
                match campaigns::decide(&m, &comp, &code, &mut text) {
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
        "UPDATE campaigns SET hold_id = $2, total = $3, pending = $3, sending = 0, sent = 0, failed = 0, cancelled = 0, unknown = 0, delivered = 0, undelivered = 0,
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
    campaigns::record_event(&mut tx, store, id, StatusChange { from: Some(&c.status), to: "sending", actor, reason }, now).await?;
    tx.commit().await?;
    Ok(
        json!({"ok": true, "campaign_id": id, "status": "sending", "messages": count, "segments": segments, "held_credits": cost, "hold_id": hold.id}),
    )
}

/// A claimed message as stored: campaign messages carry the recipient's names instead of a text.
#[derive(Debug, sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    store_id: i64,
    campaign_id: i64,
    phone: String,
    text: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    cost: i64,
    attempts: i64,
    test: bool,
    next_attempt_at: i64,
}

/// A claimed message, ready for the provider.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub store_id: i64,
    pub campaign_id: i64,
    pub phone: String,
    pub text: String,
    pub cost: i64,
    pub attempts: i64,
    pub test: bool,
}

pub struct Batch {
    pub token: i64,
    pub campaign_id: i64,
    pub sender: String,
    pub messages: Vec<Claimed>,
}

/// Where the last claims of each campaign ended, as (next_attempt_at, id): on PostgreSQL a claim
/// starts its walk of the pending-rows index there. Claimed rows leave dead index entries behind
/// until a vacuum, and a walk from the start visits every one of them (a million after a million
/// messages). Only a hint: a hinted claim that finds nothing walks again from the start, so a row
/// left behind (a claim rolled back) is still sent.
#[derive(Debug, Default)]
pub struct ClaimCursor(std::sync::Mutex<std::collections::HashMap<i64, (i64, i64)>>);

impl ClaimCursor {
    fn get(&self, campaign: i64) -> Option<(i64, i64)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&campaign).copied()
    }

    /// Where the latest claim ended. Replaced rather than maximised: after a claim of retries (due
    /// later than the rest of the run) the walk must come back to the rest, and the first hinted
    /// claim that finds nothing brings it back.
    fn set(&self, campaign: i64, at: Option<(i64, i64)>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match at {
            Some(at) => map.insert(campaign, at),
            None => map.remove(&campaign),
        };
    }
}

/// Claims up to `limit` due messages of the most urgent campaign (test sends first, then by
/// priority, then the oldest run), under a lease. Committed before any provider call.
pub async fn claim(db: &Db, worker: &str, limit: i64, lease_ms: i64, now: i64, cursor: &ClaimCursor) -> Result<Option<Batch>, Error> {
    // Idle engines poll, so the candidates come from questions whose cost depends neither on the
    // size of the message table nor, on PostgreSQL, on its dead rows or on what a launch in
    // progress has inserted but not committed.
    let test: Option<(i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "SELECT campaign_id, store_id FROM messages WHERE status = 'pending' AND test AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT 1"
    )
    .bind(now)
    .fetch_optional(p)
    .await)
    .map_err(db_err)?;
    let rank = Priority::ALL.iter().map(|p| format!("WHEN '{}' THEN {}", p.as_str(), p.rank())).collect::<Vec<_>>().join(" ");
    let campaigns: Vec<(i64, i64)> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, store_id FROM campaigns WHERE status = 'sending' AND pending > 0 ORDER BY CASE priority {rank} ELSE 0 END DESC, started_at, id LIMIT 20"
    )))
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    // A campaign whose pending messages all wait for a retry yields nothing; the next one is asked.
    for (campaign_id, store_id) in test.into_iter().chain(campaigns) {
        if let Some(batch) = claim_campaign(db, worker, campaign_id, store_id, limit, lease_ms, now, cursor).await? {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
async fn claim_campaign(
    db: &Db,
    worker: &str,
    campaign_id: i64,
    store_id: i64,
    limit: i64,
    lease_ms: i64,
    now: i64,
    cursor: &ClaimCursor,
) -> Result<Option<Batch>, Error> {
    // The store's own rate limit, on top of the provider account's (taken by the engine).
    let store_key = super::rate::store_key(store_id);
    let limit = super::rate::take(db, &store_key, limit, now).await?;
    if limit == 0 {
        return Ok(None);
    }
    let token: i64 = rand::random::<i64>() & i64::MAX;
    let terms = Lease { worker, until: now + lease_ms, token, now, limit };
    let mut tx = db.begin().await?;
    let rows: Vec<ClaimedRow> = match &mut tx {
        Tx::Pg(c) => {
            let mut hint = cursor.get(campaign_id);
            loop {
                let rows = claim_pg(c, campaign_id, &terms, hint).await?;
                if !rows.is_empty() || hint.is_none() {
                    break rows;
                }
                hint = None;
            }
        }
        Tx::Sqlite(c) => claim_sqlite(c, campaign_id, &terms).await?,
    };
    if rows.is_empty() {
        drop(tx);
        cursor.set(campaign_id, None);
        super::rate::refund(db, &store_key, limit).await?;
        return Ok(None);
    }
    let counted = rows.iter().filter(|m| !m.test).count() as i64;
    if counted > 0 {
        bump(&mut tx, campaign_id, &[("pending", -counted), ("sending", counted)]).await?;
    }
    // The campaign renders the texts and names the sender (its own, else the store's).
    let campaign = campaigns::get_tx(&mut tx, super::StoreId(store_id), campaign_id).await?;
    let sender = match &campaign.sender {
        Some(s) => s.clone(),
        None => on_tx!(&mut tx, |c| sqlx::query_scalar("SELECT sender_name FROM stores WHERE id = $1").bind(store_id).fetch_one(c).await)
            .map_err(db_err)?,
    };
    tx.commit().await?;
    if db.is_postgres() {
        cursor.set(campaign_id, rows.iter().map(|m| (m.next_attempt_at, m.id)).max());
    }
    let messages = with_texts(db, &campaign, rows, |m| (m.id, m.text.take(), m.first_name.take(), m.last_name.take()))
        .await?
        .into_iter()
        .map(|(m, text)| Claimed {
            id: m.id,
            store_id: m.store_id,
            campaign_id: m.campaign_id,
            phone: m.phone,
            text,
            cost: m.cost,
            attempts: m.attempts,
            test: m.test,
        })
        .collect::<Vec<_>>();
    // After the commit: on SQLite another write while this transaction is open would wait for it.
    super::rate::refund(db, &store_key, limit - messages.len() as i64).await?;
    Ok(Some(Batch { token, campaign_id, sender, messages }))
}

/// What a claim asks for: up to `limit` rows due at `now`, leased to `worker` until `until` under
/// the fencing `token`.
struct Lease<'a> {
    worker: &'a str,
    until: i64,
    token: i64,
    now: i64,
    limit: i64,
}

/// Pairs each message with its exact text: stored for test sends, rendered again for campaign
/// messages (the campaign's launch composer, the names kept on the row, the code of its id).
/// `parts` takes a row's id, stored text and names.
async fn with_texts<R>(
    db: &Db,
    campaign: &CampaignRow,
    mut rows: Vec<R>,
    parts: impl Fn(&mut R) -> (i64, Option<String>, Option<String>, Option<String>),
) -> Result<Vec<(R, String)>, Error> {
    let mut render: Option<(Composer, CodeKey)> = None;
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows.drain(..) {
        let (id, text, first, last) = parts(&mut row);
        let text = match text {
            Some(t) => t,
            None => {
                if render.is_none() {
                    render = Some((campaigns::launch_composer(campaign)?, super::settings::read_code_key(db).await?));
                }
                let (comp, key) = render.as_ref().expect("set above");
                let mut text = String::new();
                comp.compose(first.as_deref(), last.as_deref(), &key.code(id), &mut text)
                    .ok_or_else(|| Error::internal(format!("message {id} no longer fits its campaign's limits")))?;
                text
            }
        };
        out.push((row, text));
    }
    Ok(out)
}

/// The claim on PostgreSQL: `SKIP LOCKED`, so concurrent claims (any number of processes) take
/// disjoint rows; `OF m` locks only the message rows (locking the joined campaign row too made a
/// claim skip every row while another claim or outcome, which both update its counters, held it).
async fn claim_pg(
    c: &mut sqlx::PgConnection,
    campaign_id: i64,
    t: &Lease<'_>,
    after: Option<(i64, i64)>,
) -> Result<Vec<ClaimedRow>, Error> {
    let hint = if after.is_some() { "AND (m.next_attempt_at, m.id) > ($7, $8)" } else { "AND $7::BIGINT IS NULL AND $8::BIGINT IS NULL" };
    let (at, id) = after.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = 'sending', lease_owner = $2, lease_until = $3, lease_token = $4, attempts = attempts + 1, updated_at = $5
         WHERE id IN (SELECT m.id FROM messages m JOIN campaigns c ON c.id = m.campaign_id
                      WHERE m.campaign_id = $1 AND m.status = 'pending' AND m.next_attempt_at <= $5 {hint} AND (c.status = 'sending' OR m.test)
                      ORDER BY m.next_attempt_at, m.id LIMIT $6 FOR UPDATE OF m SKIP LOCKED)
         RETURNING id, store_id, campaign_id, phone, text, first_name, last_name, cost, attempts, test, next_attempt_at"
    )))
    .bind(campaign_id)
    .bind(t.worker)
    .bind(t.until)
    .bind(t.token)
    .bind(t.now)
    .bind(t.limit)
    .bind(at)
    .bind(id)
    .fetch_all(c)
    .await
    .map_err(db_err)
}

/// The claim on SQLite, inside the `BEGIN IMMEDIATE` transaction (no other writer until it
/// commits, so the rows read stay pending): the batch comes back as one JSON row, then one UPDATE
/// leases it. sqlx hands each SQLite row from the connection's thread to the caller's with thread
/// wake-ups, which for `UPDATE … RETURNING` a thousand rows cost more than the update itself.
/// `INDEXED BY` pins the partial index of pending rows: with statistics from an `ANALYZE` run at
/// the wrong moment, SQLite's planner can prefer another index and claims get many times slower.
async fn claim_sqlite(c: &mut sqlx::SqliteConnection, campaign_id: i64, t: &Lease<'_>) -> Result<Vec<ClaimedRow>, Error> {
    let page: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(m.id, m.store_id, m.campaign_id, m.phone, m.text, m.first_name, m.last_name, m.cost, m.attempts + 1, m.test, m.next_attempt_at))
         FROM (SELECT m.id, m.store_id, m.campaign_id, m.phone, m.text, m.first_name, m.last_name, m.cost, m.attempts, m.test, m.next_attempt_at
               FROM messages m INDEXED BY messages_campaign_ready JOIN campaigns c ON c.id = m.campaign_id
               WHERE m.campaign_id = $1 AND m.status = 'pending' AND m.next_attempt_at <= $2 AND (c.status = 'sending' OR m.test)
               ORDER BY m.next_attempt_at, m.id LIMIT $3) m",
    )
    .bind(campaign_id)
    .bind(t.now)
    .bind(t.limit)
    .fetch_one(&mut *c)
    .await
    .map_err(db_err)?;
    type Row = (i64, i64, i64, String, Option<String>, Option<String>, Option<String>, i64, i64, i64, i64);
    let rows: Vec<Row> = serde_json::from_str(&page).map_err(Error::internal)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = String::with_capacity(rows.len() * 9 + 2);
    ids.push('[');
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            ids.push(',');
        }
        let _ = std::fmt::Write::write_fmt(&mut ids, format_args!("{}", r.0));
    }
    ids.push(']');
    let leased = sqlx::query(
        "UPDATE messages SET status = 'sending', lease_owner = $1, lease_until = $2, lease_token = $3, attempts = attempts + 1, updated_at = $4
         WHERE id IN (SELECT value FROM json_each($5)) AND status = 'pending'",
    )
    .bind(t.worker)
    .bind(t.until)
    .bind(t.token)
    .bind(t.now)
    .bind(ids)
    .execute(&mut *c)
    .await
    .map_err(db_err)?
    .rows_affected();
    if leased != rows.len() as u64 {
        return Err(Error::internal(format!("claim: {leased} of {} selected messages leased", rows.len())));
    }
    Ok(rows
        .into_iter()
        .map(|(id, store_id, campaign_id, phone, text, first_name, last_name, cost, attempts, test, next_attempt_at)| ClaimedRow {
            id,
            store_id,
            campaign_id,
            phone,
            text,
            first_name,
            last_name,
            cost,
            attempts,
            test: test != 0,
            next_attempt_at,
        })
        .collect())
}

/// Moves campaign counters; `deltas` name columns of `campaigns`.
pub(super) async fn bump(tx: &mut Tx<'_>, campaign: i64, deltas: &[(&str, i64)]) -> Result<(), Error> {
    let sets: Vec<String> = deltas.iter().filter(|(_, d)| *d != 0).map(|(col, d)| format!("{col} = {col} + ({d})")).collect();
    if sets.is_empty() {
        return Ok(());
    }
    on_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE campaigns SET {} WHERE id = $1", sets.join(", "))))
        .bind(campaign)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

/// What happened to one claimed message.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent { provider_id: String },
    Failed { code: &'static str, message: String },
    Retry { at: i64, code: &'static str, message: String },
}

/// Records a batch's outcome in one transaction, guarded by the claim's fencing token: a stale
/// worker (lease expired, rows reaped) changes nothing. Charges exactly the rows that became `sent`.
pub async fn record(db: &Db, batch: &Batch, outcomes: &[(i64, Outcome)], now: i64) -> Result<(), Error> {
    // The usual case: the lease still holds, every outcome applies, and what changed (each row's
    // cost, test flag and new status) is known from the claim, so nothing is read back. If the
    // counts say otherwise (rows reaped after the lease expired), roll back and read back exactly
    // the rows that do change.
    if let Some(changed) = expected_changes(batch, outcomes) {
        let mut tx = db.begin().await?;
        let mut applied = 0;
        for chunk in outcomes.chunks(INSERT_BATCH) {
            applied += update_outcomes(&mut tx, batch.token, chunk, now, false).await?.0;
        }
        if applied == outcomes.len() as u64 {
            return finish_record(tx, batch, &changed, now).await;
        }
        drop(tx);
    }
    let mut tx = db.begin().await?;
    let mut changed = Vec::with_capacity(outcomes.len());
    for chunk in outcomes.chunks(INSERT_BATCH) {
        changed.extend(update_outcomes(&mut tx, batch.token, chunk, now, true).await?.1);
    }
    finish_record(tx, batch, &changed, now).await
}

/// A message whose outcome was written: id, cost, test, new status.
type Changed = (i64, i64, bool, &'static str);

fn status_of(o: &Outcome) -> &'static str {
    match o {
        Outcome::Sent { .. } => "sent",
        Outcome::Failed { .. } => "failed",
        Outcome::Retry { .. } => "pending",
    }
}

/// What `record` changes if every outcome applies; `None` if an outcome is for a message the batch
/// did not claim.
fn expected_changes(batch: &Batch, outcomes: &[(i64, Outcome)]) -> Option<Vec<Changed>> {
    let claimed: std::collections::HashMap<i64, &Claimed> = batch.messages.iter().map(|m| (m.id, m)).collect();
    outcomes.iter().map(|(id, o)| claimed.get(id).map(|m| (m.id, m.cost, m.test, status_of(o)))).collect()
}

/// Writes one chunk of outcomes, fenced by the claim's token. Returns how many rows changed and,
/// with `read_back`, which.
async fn update_outcomes(
    tx: &mut Tx<'_>,
    token: i64,
    chunk: &[(i64, Outcome)],
    now: i64,
    read_back: bool,
) -> Result<(u64, Vec<Changed>), Error> {
    const SET: &str = "UPDATE messages SET status = v.status, provider_message_id = v.provider_message_id, error_code = v.error_code,
        error_message = v.error_message, next_attempt_at = v.next_attempt_at, lease_owner = NULL, lease_until = NULL";
    const RETURNING: &str = " RETURNING messages.id, messages.cost, messages.test, messages.status";
    let (affected, rows): (u64, Vec<(i64, i64, bool, String)>) = match tx {
        Tx::Pg(c) => {
            let mut statuses = Vec::with_capacity(chunk.len());
            let (mut provider_ids, mut codes, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            let mut next_at = Vec::with_capacity(chunk.len());
            for (_, o) in chunk {
                statuses.push(status_of(o));
                let (pid, code, message, at) = match o {
                    Outcome::Sent { provider_id } => (Some(provider_id.as_str()), None, None, now),
                    Outcome::Failed { code, message } => (None, Some(*code), Some(message.as_str()), now),
                    Outcome::Retry { at, code, message } => (None, Some(*code), Some(message.as_str()), *at),
                };
                provider_ids.push(pid);
                codes.push(code);
                errors.push(message);
                next_at.push(at);
            }
            // `IS TRUE` keeps the planner on the primary key: with the plain condition it may walk the
            // partial index of `sending` rows, which on PostgreSQL fills with dead entries between
            // vacuums (with autovacuum off, one per message ever sent).
            let sql = format!(
                "{SET}, sent_at = CASE WHEN v.status = 'sent' THEN $7 ELSE messages.sent_at END, updated_at = $7
                 FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[])
                      AS v (id, status, provider_message_id, error_code, error_message, next_attempt_at)
                 WHERE messages.id = v.id AND messages.lease_token = $8 AND (messages.status = 'sending') IS TRUE{}",
                if read_back { RETURNING } else { "" }
            );
            let q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(chunk.iter().map(|(id, _)| *id).collect::<Vec<i64>>())
                .bind(statuses)
                .bind(provider_ids)
                .bind(codes)
                .bind(errors)
                .bind(next_at)
                .bind(now)
                .bind(token);
            if read_back {
                let rows = q.try_map(|r| <(i64, i64, bool, String) as sqlx::FromRow<_>>::from_row(&r)).fetch_all(&mut **c).await;
                (0, rows.map_err(db_err)?)
            } else {
                (q.execute(&mut **c).await.map_err(db_err)?.rows_affected(), Vec::new())
            }
        }
        Tx::Sqlite(c) => {
            // The outcomes first (a CTE), then `now` twice and the fencing token, as bound.
            let mut sql = String::with_capacity(512 + chunk.len() * 16);
            sql.push_str("WITH v (id, status, provider_message_id, error_code, error_message, next_attempt_at) AS (VALUES ");
            sql.push_str(&sqlite_rows(chunk.len(), 6));
            sql.push_str(") ");
            sql.push_str(SET);
            sql.push_str(
                ", sent_at = CASE WHEN v.status = 'sent' THEN ? ELSE messages.sent_at END, updated_at = ?
                 FROM v WHERE messages.id = v.id AND messages.status = 'sending' AND messages.lease_token = ?",
            );
            if read_back {
                sql.push_str(RETURNING);
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, o) in chunk {
                q = match o {
                    Outcome::Sent { provider_id } => {
                        q.bind(*id).bind("sent").bind(Some(provider_id.as_str())).bind(None::<&str>).bind(None::<&str>).bind(now)
                    }
                    Outcome::Failed { code, message } => {
                        q.bind(*id).bind("failed").bind(None::<&str>).bind(Some(*code)).bind(Some(message.as_str())).bind(now)
                    }
                    Outcome::Retry { at, code, message } => {
                        q.bind(*id).bind("pending").bind(None::<&str>).bind(Some(*code)).bind(Some(message.as_str())).bind(*at)
                    }
                };
            }
            let q = q.bind(now).bind(now).bind(token);
            if read_back {
                let rows = q.try_map(|r| <(i64, i64, bool, String) as sqlx::FromRow<_>>::from_row(&r)).fetch_all(&mut **c).await;
                (0, rows.map_err(db_err)?)
            } else {
                (q.execute(&mut **c).await.map_err(db_err)?.rows_affected(), Vec::new())
            }
        }
    };
    if !read_back {
        return Ok((affected, Vec::new()));
    }
    let changed: Vec<Changed> = rows
        .into_iter()
        .map(|(id, cost, test, status)| {
            let status = match status.as_str() {
                "sent" => "sent",
                "failed" => "failed",
                _ => "pending",
            };
            (id, cost, test, status)
        })
        .collect();
    Ok((changed.len() as u64, changed))
}

/// The rest of an outcome's transaction: campaign counters, credit charges, completion.
async fn finish_record(mut tx: Tx<'_>, batch: &Batch, changed: &[Changed], now: i64) -> Result<(), Error> {
    let campaign_rows = changed.iter().filter(|r| !r.2);
    let count = |s: &str| campaign_rows.clone().filter(|r| r.3 == s).count() as i64;
    let (sent, failed, retried) = (count("sent"), count("failed"), count("pending"));
    bump(&mut tx, batch.campaign_id, &[("sending", -(sent + failed + retried)), ("sent", sent), ("failed", failed), ("pending", retried)])
        .await?;
    // Charges: campaign messages against the campaign's hold, test messages against their own.
    let campaign_cost: i64 = changed.iter().filter(|r| !r.2 && r.3 == "sent").map(|r| r.1).sum();
    if campaign_cost > 0 {
        let (hold,): (Option<i64>,) =
            on_tx!(&mut tx, |c| sqlx::query_as("SELECT hold_id FROM campaigns WHERE id = $1").bind(batch.campaign_id).fetch_one(c).await)
                .map_err(db_err)?;
        let hold = hold.ok_or_else(|| Error::internal("sending campaign without a hold"))?;
        ledger::charge(&mut tx, hold, campaign_cost, sent, &format!("charge:{}:{}", batch.campaign_id, batch.token), now).await?;
    }
    for (id, cost, _, _) in changed.iter().filter(|r| r.2 && r.3 == "sent") {
        let (hold,): (Option<i64>,) =
            on_tx!(&mut tx, |c| sqlx::query_as("SELECT hold_id FROM messages WHERE id = $1").bind(*id).fetch_one(c).await)
                .map_err(db_err)?;
        if let Some(hold) = hold {
            ledger::charge(&mut tx, hold, *cost, 1, &format!("charge:message:{id}"), now).await?;
            ledger::finalize(&mut tx, hold, TransferKind::Release, now).await?;
        }
    }
    for (id, _, _, _) in changed.iter().filter(|r| r.2 && r.3 == "failed") {
        let (hold,): (Option<i64>,) =
            on_tx!(&mut tx, |c| sqlx::query_as("SELECT hold_id FROM messages WHERE id = $1").bind(*id).fetch_one(c).await)
                .map_err(db_err)?;
        if let Some(hold) = hold {
            ledger::finalize(&mut tx, hold, TransferKind::Release, now).await?;
        }
    }
    // Reports that arrived before this outcome was recorded.
    let sent_ids: Vec<i64> = changed.iter().filter(|r| r.3 == "sent").map(|r| r.0).collect();
    super::delivery::apply_parked(&mut tx, &sent_ids, now).await?;
    complete_if_done(&mut tx, batch.campaign_id, now).await?;
    tx.commit().await
}

/// Ends a sending campaign once nothing is pending or in flight: `sent` (or `failed` if nothing
/// was accepted) and the rest of its hold back to the wallet — exactly once.
pub async fn complete_if_done(tx: &mut Tx<'_>, campaign: i64, now: i64) -> Result<bool, Error> {
    let done: Option<(String, Option<i64>, i64, i64, i64, i64)> = on_tx!(tx, |c| sqlx::query_as(
        "UPDATE campaigns SET status = CASE WHEN sent > 0 THEN 'sent' ELSE 'failed' END, finished_at = $2, updated_at = $2
         WHERE id = $1 AND status = 'sending' AND pending = 0 AND sending = 0
         RETURNING status, hold_id, store_id, sent, failed, unknown"
    )
    .bind(campaign)
    .bind(now)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    let Some((status, hold, store, sent, failed, unknown)) = done else {
        // A cancelled campaign's hold closes once its last in-flight batch is recorded.
        let cancelled: Option<(Option<i64>,)> =
            on_tx!(tx, |c| sqlx::query_as("SELECT hold_id FROM campaigns WHERE id = $1 AND status = 'cancelled' AND sending = 0")
                .bind(campaign)
                .fetch_optional(c)
                .await)
            .map_err(db_err)?;
        if let Some((hold,)) = cancelled {
            // Retries recorded after the cancel would otherwise wait forever.
            let late = on_tx!(tx, |c| sqlx::query(
                "UPDATE messages SET status = 'cancelled', error_code = 'cancelled', updated_at = $2 WHERE campaign_id = $1 AND status = 'pending' AND NOT test"
            )
            .bind(campaign)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
            .map_err(db_err)? as i64;
            bump(tx, campaign, &[("pending", -late), ("cancelled", late)]).await?;
            if let Some(h) = hold {
                ledger::finalize(tx, h, TransferKind::Release, now).await?;
            }
        }
        return Ok(false);
    };
    let released = match hold {
        Some(h) => ledger::finalize(tx, h, TransferKind::Release, now).await?,
        None => 0,
    };
    let reason = format!("all messages processed: {sent} sent, {failed} failed, {unknown} unknown; {released} unused credits returned");
    campaigns::record_event(
        tx,
        StoreId(store),
        campaign,
        StatusChange { from: Some("sending"), to: &status, actor: "engine", reason: &reason },
        now,
    )
    .await?;
    Ok(true)
}

/// Expired leases: the provider may or may not have the messages, so they become `unknown` and
/// are never sent again automatically (DESIGN.md §4).
pub async fn reap(db: &Db, now: i64) -> Result<u64, Error> {
    let mut tx = db.begin().await?;
    let rows: Vec<(i64, bool)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "UPDATE messages SET status = 'unknown', error_code = 'unknown_outcome',
            error_message = 'The worker sending this message stopped before recording the outcome; it is not resent automatically.',
            lease_owner = NULL, lease_until = NULL, updated_at = $1
         WHERE status = 'sending' AND lease_until < $1 RETURNING campaign_id, test"
    )
    .bind(now)
    .fetch_all(c)
    .await)
    .map_err(db_err)?;
    let mut per_campaign: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for (c, test) in &rows {
        if !test {
            *per_campaign.entry(*c).or_default() += 1;
        }
    }
    for (campaign, n) in &per_campaign {
        bump(&mut tx, *campaign, &[("sending", -n), ("unknown", *n)]).await?;
        complete_if_done(&mut tx, *campaign, now).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Starts scheduled campaigns that are due, through the same path as a manual start. A campaign
/// that cannot start (no recipients, not enough credits) fails with the reason in its history
/// instead of being retried forever.
pub async fn start_due(db: &Db, settings: &SendSettings, now: i64) -> Result<u64, Error> {
    let due: Vec<(i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "SELECT id, store_id FROM campaigns WHERE status = 'scheduled' AND schedule_at <= $1 ORDER BY schedule_at LIMIT 20"
    )
    .bind(now)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let mut started = 0;
    for (id, store) in due {
        match start(db, StoreId(store), id, "scheduler", "scheduled time reached", settings, now).await {
            Ok(_) => started += 1,
            Err(e) if e.code == "invalid_state" => {} // another process started it first
            Err(e) if e.kind != Kind::Internal => {
                let mut tx = db.begin().await?;
                let n = on_tx!(&mut tx, |c| sqlx::query(
                    "UPDATE campaigns SET status = 'failed', finished_at = $2, updated_at = $2 WHERE id = $1 AND status = 'scheduled'"
                )
                .bind(id)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))
                .map_err(db_err)?;
                if n == 1 {
                    campaigns::record_event(
                        &mut tx,
                        StoreId(store),
                        id,
                        StatusChange { from: Some("scheduled"), to: "failed", actor: "scheduler", reason: &e.message },
                        now,
                    )
                    .await?;
                }
                tx.commit().await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(started)
}

/// `GET …/progress`: read from counters, the same cost for 10 messages as for 10,000,000.
pub async fn progress(db: &Db, store: StoreId, id: i64, now: i64) -> Result<Value, Error> {
    let c = campaigns::get(db, store, id).await?;
    Ok(progress_json(&c, now))
}

pub fn progress_json(c: &CampaignRow, now: i64) -> Value {
    let processed = c.sent + c.failed + c.cancelled + c.unknown;
    let pct = (processed * 100).checked_div(c.total).unwrap_or(if matches!(c.status(), Status::Sent | Status::Failed) { 100 } else { 0 });
    let end = c.finished_at.unwrap_or(now);
    let rate = match c.started_at {
        Some(s) if end > s && processed > 0 => processed as f64 * 1000.0 / (end - s) as f64,
        _ => 0.0,
    };
    let remaining = c.pending + c.sending;
    let eta = if c.finished_at.is_some() || remaining == 0 {
        Some(0)
    } else if rate > 0.0 {
        Some((remaining as f64 / rate).ceil() as i64)
    } else {
        None
    };
    json!({
        "status": c.status, "total": c.total, "pending": c.pending, "sending": c.sending, "sent": c.sent, "failed": c.failed,
        "cancelled": c.cancelled, "unknown": c.unknown, "delivered": c.delivered, "undelivered": c.undelivered, "processed": processed, "progress": pct,
        "rate_per_second": (rate * 10.0).round() / 10.0, "eta_seconds": eta,
        "started_at": c.started_at.map(rfc3339), "finished_at": c.finished_at.map(rfc3339),
    })
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFilter {
    pub status: Option<String>,
    /// A failure category (see `operations::CATEGORIES`), e.g. `invalid_number`.
    pub category: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    contact_id: Option<i64>,
    phone: String,
    text: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    segments: i64,
    cost: i64,
    status: String,
    delivery_status: Option<String>,
    provider_message_id: Option<String>,
    attempts: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
    updated_at: i64,
}

pub async fn list(db: &Db, store: StoreId, campaign: i64, f: MessageFilter) -> Result<Value, Error> {
    let c = campaigns::get(db, store, campaign).await?;
    let limit = clamp_limit(f.limit, 50, 500)?;
    let after = parse_cursor(f.cursor.as_deref())?;
    let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s @ ("pending" | "sending" | "sent" | "failed" | "cancelled" | "unknown")) => Some(s.to_string()),
        Some(s) => {
            return Err(
                Error::invalid("invalid_status", format!("\"{s}\" is not a message status.")).with_details(json!({"field": "status"}))
            );
        }
    };
    let category = match f.category.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(c) if super::operations::CATEGORIES.iter().any(|(k, _, _)| *k == c) => Some(c.to_string()),
        Some(c) => {
            return Err(Error::invalid("invalid_category", format!("\"{c}\" is not a failure category."))
                .with_details(json!({"field": "category"})));
        }
    };
    // A campaign's messages lie between its first and last id, so a page is a primary-key walk of
    // that range; failures (rare) have their own index.
    let failures = category.is_some() || matches!(status.as_deref(), Some("failed" | "unknown"));
    let scope = if failures {
        format!("campaign_id = $1 AND {}", super::operations::FAILURES)
    } else {
        "id BETWEEN (SELECT first_message_id FROM campaigns WHERE id = $1) AND (SELECT last_message_id FROM campaigns WHERE id = $1) AND campaign_id = $1".into()
    };
    let mut rows: Vec<MessageRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, contact_id, phone, text, first_name, last_name, segments, cost, status, delivery_status, provider_message_id, attempts, error_code, error_message, created_at, sent_at, updated_at
         FROM messages WHERE {scope} AND store_id = $2 AND NOT test AND id > $3 AND ($4 IS NULL OR status = $4) AND ($6 IS NULL OR error_code = $6) ORDER BY id LIMIT $5"
    )))
    .bind(campaign)
    .bind(store.0)
    .bind(after)
    .bind(&status)
    .bind(limit + 1)
    .bind(&category)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let next = super::next_cursor(&mut rows, limit, |r| r.id);
    let items: Vec<Value> = with_texts(db, &c, rows, |m| (m.id, m.text.take(), m.first_name.take(), m.last_name.take()))
        .await?
        .into_iter()
        .map(|(m, text)| {
            json!({"id": m.id, "contact_id": m.contact_id, "phone": m.phone, "text": text, "segments": m.segments, "cost": m.cost, "status": m.status,
                   "delivery_status": m.delivery_status, "provider_message_id": m.provider_message_id, "attempts": m.attempts,
                   "error_code": m.error_code, "error_message": m.error_message, "created_at": rfc3339(m.created_at),
                   "sent_at": m.sent_at.map(rfc3339), "updated_at": rfc3339(m.updated_at)})
        })
        .collect();
    Ok(json!({"items": items, "next_cursor": next}))
}

/// Records that an engine process is alive; `GET /api/admin/queue` shows it until it goes quiet.
pub async fn heartbeat(db: &Db, id: &str, host: &str, in_flight: i64, now: i64) -> Result<(), Error> {
    on_db!(db, |p| sqlx::query(
        "INSERT INTO workers (id, host, started_at, last_seen, in_flight) VALUES ($1, $2, $3, $3, $4)
         ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, in_flight = excluded.in_flight"
    )
    .bind(id)
    .bind(host)
    .bind(now)
    .bind(in_flight)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    /// Up to 5 numbers (the store owner's own phones).
    pub phones: Vec<String>,
    /// Render the message for this contact; without it, merge tags use their defaults.
    #[serde(default)]
    pub contact_id: Option<i64>,
}

/// Sends the campaign's message to a few numbers, rendered for one contact, charged like any
/// message, without touching the campaign: each test message holds its own credits.
pub async fn send_test(db: &Db, store: StoreId, id: i64, req: TestSend, settings: &SendSettings, now: i64) -> Result<Value, Error> {
    if req.phones.is_empty() || req.phones.len() > 5 {
        return Err(Error::invalid_field("phones", "Give between 1 and 5 phone numbers for a test send."));
    }
    let c = campaigns::get(db, store, id).await?;
    let store_row = super::stores::get(db, store).await?;
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
            let contact = super::contacts::get(db, store, cid).await?;
            (contact.first_name, contact.last_name)
        }
        None => (None, None),
    };
    let comp = campaigns::composer(&c, &store_row.language, &settings.public_url, c.greek_gsm)?;
    let mut tx = db.begin().await?;
    let key = super::settings::code_key(&mut tx).await?;
    let mut out = Vec::new();
    for phone in phones {
        let mid = Ids::new(db, &mut tx).await?.take(1).await?[0];
        let mut text = String::new();
        let info = comp
            .compose(first.as_deref(), last.as_deref(), &key.code(mid), &mut text)
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

/// Running or paused campaigns whose active hold has passed its deadline.
pub async fn runs_with_expired_holds(db: &Db, now: i64) -> Result<Vec<(i64, i64)>, Error> {
    on_db!(db, |p| sqlx::query_as(
        "SELECT c.id, c.store_id FROM campaigns c JOIN holds h ON h.id = c.hold_id
         WHERE h.state = 'active' AND h.expires_at <= $1 AND c.status IN ('sending', 'paused') LIMIT 50"
    )
    .bind(now)
    .fetch_all(p)
    .await)
    .map_err(db_err)
}
