//! Claiming a batch: due messages of the most urgent campaign, leased under a fencing token.

use super::{bump, with_texts};
use crate::domain::Error;
use crate::domain::campaign::Priority;
use crate::store::campaigns;
use crate::store::{Db, Tx, db_err, on_db, on_tx};

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
    /// A test message, or the contact is still opted in (asked at claim time).
    consented: bool,
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
/// Also whose turn it is among the stores with work waiting (`Turn`).
#[derive(Debug, Default)]
pub struct ClaimCursor(std::sync::Mutex<std::collections::HashMap<i64, (i64, i64)>>, std::sync::Mutex<Turn>);

/// The claim round-robin between stores: the store served last and how many more claims in a row
/// it may still take (its weight, less those taken).
#[derive(Debug, Default, Clone, Copy)]
pub struct Turn {
    store: i64,
    left: i64,
}

impl ClaimCursor {
    /// The candidates (campaign, store, weight; grouped by store, each store's in its priority
    /// order) in the order to try them: the store whose turn it is, then the stores after it by
    /// id, wrapping round. Priority orders campaigns within a store only.
    fn fair_order(&self, candidates: Vec<(i64, i64, i64)>) -> Vec<(i64, i64, i64)> {
        let turn = *self.1.lock().unwrap_or_else(|e| e.into_inner());
        let first = candidates.iter().position(|c| if turn.left > 0 { c.1 >= turn.store } else { c.1 > turn.store }).unwrap_or(0);
        let mut out = candidates;
        out.rotate_left(first);
        out
    }

    /// A claim served `store`: it keeps the turn for `weight` claims in a row, then passes it on.
    fn served(&self, store: i64, weight: i64) {
        let mut turn = self.1.lock().unwrap_or_else(|e| e.into_inner());
        *turn = if turn.store == store && turn.left > 0 { Turn { store, left: turn.left - 1 } } else { Turn { store, left: weight - 1 } };
    }

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

/// Claims up to `limit` due messages under a lease: test sends first, then the stores with work
/// waiting take turns (round-robin, `weight` claims each), and within a store its most urgent,
/// then oldest, run. So one store's big urgent campaign cannot hold back every other store.
/// Committed before any provider call.
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
    let campaigns: Vec<(i64, i64, i64)> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.id, c.store_id, COALESCE(w.weight, 1) FROM campaigns c LEFT JOIN store_weights w ON w.store_id = c.store_id
         WHERE c.status = 'sending' AND c.pending > 0
           AND EXISTS (SELECT 1 FROM holds h WHERE h.id = c.hold_id AND h.state = 'active')
         ORDER BY c.store_id, CASE c.priority {rank} ELSE 0 END DESC, c.started_at, c.id LIMIT 1000"
    )))
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    if let Some((campaign_id, store_id)) = test
        && let Some(batch) = claim_campaign(db, worker, campaign_id, store_id, limit, lease_ms, now, cursor).await?
    {
        return Ok(Some(batch));
    }
    // A campaign whose pending messages all wait for a retry yields nothing; the next one is asked.
    for (campaign_id, store_id, weight) in cursor.fair_order(campaigns) {
        if let Some(batch) = claim_campaign(db, worker, campaign_id, store_id, limit, lease_ms, now, cursor).await? {
            cursor.served(store_id, weight);
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
    let store_key = crate::store::rate::store_key(store_id);
    let limit = crate::store::rate::take(db, &store_key, limit, now).await?;
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
        crate::store::rate::refund(db, &store_key, limit).await?;
        return Ok(None);
    }
    let hint = rows.iter().map(|m| (m.next_attempt_at, m.id)).max();
    // Consent is asked again now: a contact who opted out since the launch is skipped — not sent,
    // not charged (its cost goes back with the rest of the hold when the run ends).
    let (rows, skipped): (Vec<ClaimedRow>, Vec<ClaimedRow>) = rows.into_iter().partition(|m| m.consented);
    if !skipped.is_empty() {
        skip_opted_out(&mut tx, &skipped, now).await?;
    }
    let counted = rows.iter().filter(|m| !m.test).count() as i64;
    let skipped = skipped.len() as i64;
    bump(
        &mut tx,
        campaign_id,
        &[("pending", -counted - skipped), ("sending", counted), ("cancelled", skipped), ("skipped_opted_out", skipped)],
    )
    .await?;
    // The campaign renders the texts and names the sender (its own, else the store's).
    let campaign = campaigns::get_tx(&mut tx, crate::store::StoreId(store_id), campaign_id).await?;
    let sender = match &campaign.sender {
        Some(s) => s.clone(),
        None => on_tx!(&mut tx, |c| sqlx::query_scalar("SELECT sender_name FROM stores WHERE id = $1").bind(store_id).fetch_one(c).await)
            .map_err(db_err)?,
    };
    tx.commit().await?;
    if db.is_postgres() {
        cursor.set(campaign_id, hint);
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
    crate::store::rate::refund(db, &store_key, limit - messages.len() as i64).await?;
    Ok(Some(Batch { token, campaign_id, sender, messages }))
}

/// Claimed rows whose contact is no longer opted in (or was deleted) leave the queue as
/// `cancelled` with the code `opted_out`.
async fn skip_opted_out(tx: &mut Tx<'_>, rows: &[ClaimedRow], now: i64) -> Result<(), Error> {
    let ids = serde_json::to_string(&rows.iter().map(|m| m.id).collect::<Vec<_>>()).map_err(Error::internal)?;
    let code = crate::domain::failure::FailureCode::OptedOut;
    let sql = format!(
        "UPDATE messages SET status = 'cancelled', error_code = $1, error_message = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3
         WHERE id IN (SELECT {}) AND status IN ('pending', 'sending')",
        if matches!(tx, Tx::Pg(_)) { "CAST(value AS BIGINT) FROM json_array_elements_text(CAST($4 AS JSON))" } else { "value FROM json_each($4)" }
    );
    let n = on_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(code.as_str())
        .bind(code.explanation())
        .bind(now)
        .bind(ids.as_str())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if n != rows.len() as u64 {
        return Err(Error::internal(format!("claim: {n} of {} opted-out messages skipped", rows.len())));
    }
    Ok(())
}

/// True when no contact of the campaign's (`$1`) store has stopped being opted in since its launch
/// took its consent mark (migration 0025), so every claimed recipient is still opted in and the
/// claim need not look each one up; false (ask each) otherwise, or with no mark. Refers to no
/// claimed row, so a claim evaluates it once. On PostgreSQL the mark is the launch's snapshot: a
/// revocation counts unless that snapshot saw its transaction (those before the snapshot's xmin
/// all did; the index walk starts there).
const UNCHANGED_PG: &str = "(SELECT c.consent_mark IS NOT NULL AND NOT EXISTS (SELECT 1 FROM consent_revocations r WHERE r.store_id = c.store_id
        AND r.xact >= pg_snapshot_xmin(CAST(c.consent_mark AS pg_snapshot)) AND NOT pg_visible_in_snapshot(r.xact, CAST(c.consent_mark AS pg_snapshot)))
    FROM campaigns c WHERE c.id = $1)";
/// `UNCHANGED_PG` on SQLite, where the mark is the highest revocation id when the launch (holding
/// the write lock) began.
const UNCHANGED_SQLITE: &str = "(SELECT c.consent_mark IS NOT NULL AND NOT EXISTS (SELECT 1 FROM consent_revocations r WHERE r.store_id = c.store_id AND r.id > c.consent_mark)
    FROM campaigns c WHERE c.id = $1)";

/// What a claim asks for: up to `limit` rows due at `now`, leased to `worker` until `until` under
/// the fencing `token`.
struct Lease<'a> {
    worker: &'a str,
    until: i64,
    token: i64,
    now: i64,
    limit: i64,
}

/// The claim on PostgreSQL: `SKIP LOCKED`, so concurrent claims (any number of processes) take
/// disjoint rows; `OF m` locks only the message rows (locking the joined campaign row too made a
/// claim skip every row while another claim or outcome, which both update its counters, held it).
/// A contact's consent, when it must be asked, is a scalar subquery (one probe of the contact's
/// primary key per row): as `EXISTS`, the planner hashed every opted-in contact of the table for
/// each claim (BENCHMARKS.md).
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
         RETURNING id, store_id, campaign_id, phone, text, first_name, last_name, cost, attempts, test, next_attempt_at,
                   CASE WHEN test OR {UNCHANGED_PG} THEN TRUE
                        ELSE COALESCE((SELECT k.consent = 'opted_in' FROM contacts k WHERE k.id = messages.contact_id), FALSE) END AS consented"
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
    let page: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT json_group_array(json_array(m.id, m.store_id, m.campaign_id, m.phone, m.text, m.first_name, m.last_name, m.cost, m.attempts + 1, m.test, m.next_attempt_at,
                                           CASE WHEN m.test OR {UNCHANGED_SQLITE} THEN 1
                                                ELSE EXISTS (SELECT 1 FROM contacts k WHERE k.id = m.contact_id AND k.consent = 'opted_in') END))
         FROM (SELECT m.id, m.store_id, m.campaign_id, m.contact_id, m.phone, m.text, m.first_name, m.last_name, m.cost, m.attempts, m.test, m.next_attempt_at
               FROM messages m INDEXED BY messages_campaign_ready JOIN campaigns c ON c.id = m.campaign_id
               WHERE m.campaign_id = $1 AND m.status = 'pending' AND m.next_attempt_at <= $2 AND (c.status = 'sending' OR m.test)
               ORDER BY m.next_attempt_at, m.id LIMIT $3) m"
    )))
    .bind(campaign_id)
    .bind(t.now)
    .bind(t.limit)
    .fetch_one(&mut *c)
    .await
    .map_err(db_err)?;
    type Row = (i64, i64, i64, String, Option<String>, Option<String>, Option<String>, i64, i64, i64, i64, i64);
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
        .map(|(id, store_id, campaign_id, phone, text, first_name, last_name, cost, attempts, test, next_attempt_at, consented)| {
            ClaimedRow {
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
                consented: consented != 0,
            }
        })
        .collect())
}
