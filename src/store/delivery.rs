//! Delivery reports (issue 13): every report is stored as received (audit), matched to its
//! message — by our reference first, then by the provider's message id — and applied in the same
//! transaction: the message's delivery status moves forward only (`domain::delivery`), and the
//! campaign's `delivered`/`undelivered` counters move with it. A report whose message has no
//! recorded send outcome yet is parked and applied when the outcome is recorded
//! (`apply_parked`, called by `queue::record`) or by the engine's sweep (`sweep_parked`).
//!
//! A report for an `unknown` message proves the provider accepted it: the message becomes `sent`
//! and is charged once (`charge_late`).

use super::ledger::{self, Refs};
use super::{Db, StoreId, Tx, db_err, on_db, on_tx, sqlite_rows};
use crate::domain::Error;
use crate::domain::delivery::{DeliveryStatus, Report, supersedes};
use std::collections::{BTreeMap, HashMap};

/// One report as it arrived: validated, and its JSON text for the audit table.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub report: Report,
    pub body: String,
}

/// What happened to a request's reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Ingested {
    pub received: usize,
    /// Matched a sent (or `unknown`, now resolved) message; its status moved if the report was newer.
    pub applied: usize,
    /// Kept until the message's send outcome is recorded.
    pub parked: usize,
    /// Kept for audit only: the message cannot change (failed, cancelled).
    pub ignored: usize,
}

/// Parked reports older than this are left to the audit table: the sweep looks no further back.
pub const SWEEP_WINDOW_MS: i64 = 30 * 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Applied(i64),
    Parked(Option<i64>),
    Ignored(i64),
}

impl Fate {
    fn state(self) -> &'static str {
        match self {
            Fate::Applied(_) => "applied",
            Fate::Parked(_) => "parked",
            Fate::Ignored(_) => "ignored",
        }
    }

    fn message_id(self) -> Option<i64> {
        match self {
            Fate::Applied(id) | Fate::Ignored(id) => Some(id),
            Fate::Parked(id) => id,
        }
    }
}

/// A message as a report sees it.
#[derive(Debug, sqlx::FromRow)]
struct Target {
    id: i64,
    store_id: i64,
    campaign_id: i64,
    status: String,
    provider_message_id: Option<String>,
    delivery_status: Option<String>,
    delivery_at: Option<i64>,
    test: bool,
    cost: i64,
    hold_id: Option<i64>,
}

const TARGET_COLUMNS: &str = "id, store_id, campaign_id, status, provider_message_id, delivery_status, delivery_at, test, cost, hold_id";

/// Stores and applies one request's reports in one transaction.
pub async fn ingest(db: &Db, reports: &[Incoming], now: i64) -> Result<Ingested, Error> {
    if reports.is_empty() {
        return Ok(Ingested::default());
    }
    let mut tx = db.begin().await?;
    let list: Vec<&Report> = reports.iter().map(|r| &r.report).collect();
    let fates = apply(&mut tx, &list, now).await?;
    insert_reports(&mut tx, reports, &fates, now).await?;
    tx.commit().await?;
    let mut out = Ingested { received: reports.len(), ..Ingested::default() };
    for f in &fates {
        match f {
            Fate::Applied(_) => out.applied += 1,
            Fate::Parked(_) => out.parked += 1,
            Fate::Ignored(_) => out.ignored += 1,
        }
    }
    Ok(out)
}

/// Applies the reports parked for messages whose send outcome the caller's transaction has just
/// recorded. The usual case — nothing parked at all — costs one probe of a small partial index.
pub async fn apply_parked(tx: &mut Tx<'_>, recorded: &[i64], now: i64) -> Result<(), Error> {
    if recorded.is_empty() {
        return Ok(());
    }
    let any: Option<(i64,)> =
        on_tx!(tx, |c| sqlx::query_as("SELECT id FROM delivery_reports WHERE state = 'parked' LIMIT 1").fetch_optional(c).await)
            .map_err(db_err)?;
    if any.is_none() {
        return Ok(());
    }
    let parked: Vec<Parked> = match tx {
        Tx::Pg(c) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PARKED_COLUMNS} FROM delivery_reports WHERE state = 'parked' AND (message_id = ANY($1)
               OR provider_message_id IN (SELECT provider_message_id FROM messages WHERE id = ANY($1) AND provider_message_id IS NOT NULL))
             ORDER BY id"
        )))
        .bind(recorded)
        .fetch_all(&mut **c)
        .await
        .map_err(db_err)?,
        Tx::Sqlite(c) => {
            let mut out = Vec::new();
            for chunk in recorded.chunks(500) {
                let list = sqlite_rows(1, chunk.len());
                let sql = format!(
                    "SELECT {PARKED_COLUMNS} FROM delivery_reports WHERE state = 'parked' AND (message_id IN {list}
                       OR provider_message_id IN (SELECT provider_message_id FROM messages WHERE id IN {list} AND provider_message_id IS NOT NULL))
                     ORDER BY id"
                );
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk.iter().chain(chunk) {
                    q = q.bind(*id);
                }
                out.extend(q.fetch_all(&mut **c).await.map_err(db_err)?);
            }
            out
        }
    };
    reapply(tx, parked, now).await
}

/// Applies parked reports whose message has meanwhile left `pending`/`sending` without passing
/// through `apply_parked`: a report that named only the provider's id and arrived while the
/// outcome was being recorded (PostgreSQL, another connection), or a message whose lease expired
/// (now `unknown`). Run by the engine's maintenance; reads only, unless something matches.
pub async fn sweep_parked(db: &Db, now: i64) -> Result<u64, Error> {
    let due: Vec<(i64,)> = on_db!(db, |p| sqlx::query_as(
        "SELECT r.id FROM delivery_reports r WHERE r.state = 'parked' AND r.received_at > $1
           AND EXISTS (SELECT 1 FROM messages m WHERE (m.id = r.message_id OR m.provider_message_id = r.provider_message_id)
                       AND m.status NOT IN ('pending', 'sending'))
         ORDER BY r.id LIMIT 500"
    )
    .bind(now - SWEEP_WINDOW_MS)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let mut parked = Vec::with_capacity(due.len());
    for (id,) in &due {
        // Still parked: a concurrent `apply_parked` may have applied it since.
        let p: Option<Parked> = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PARKED_COLUMNS} FROM delivery_reports WHERE id = $1 AND state = 'parked'"
        )))
        .bind(*id)
        .fetch_optional(c)
        .await)
        .map_err(db_err)?;
        parked.extend(p);
    }
    let n = parked.len() as u64;
    reapply(&mut tx, parked, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// A parked report as stored.
#[derive(Debug, sqlx::FromRow)]
struct Parked {
    id: i64,
    reference: Option<String>,
    provider_message_id: Option<String>,
    raw_status: String,
    reported_at: i64,
    error: Option<String>,
}

const PARKED_COLUMNS: &str = "id, reference, provider_message_id, raw_status, reported_at, error";

/// Applies stored parked reports again and records what became of them.
async fn reapply(tx: &mut Tx<'_>, parked: Vec<Parked>, now: i64) -> Result<(), Error> {
    if parked.is_empty() {
        return Ok(());
    }
    let reports: Vec<Report> = parked
        .iter()
        .map(|p| Report {
            provider_id: p.provider_message_id.clone(),
            reference: p.reference.clone(),
            status: DeliveryStatus::parse(&p.raw_status),
            raw_status: p.raw_status.clone(),
            at: Some(p.reported_at),
            error: p.error.clone(),
        })
        .collect();
    let list: Vec<&Report> = reports.iter().collect();
    let fates = apply(tx, &list, now).await?;
    for (p, fate) in parked.iter().zip(fates) {
        if matches!(fate, Fate::Parked(_)) {
            continue;
        }
        on_tx!(tx, |c| sqlx::query("UPDATE delivery_reports SET state = $2, message_id = $3 WHERE id = $1")
            .bind(p.id)
            .bind(fate.state())
            .bind(fate.message_id())
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    Ok(())
}

/// The messages the reports name, locked (PostgreSQL) in id order so concurrent requests cannot
/// deadlock on each other; on SQLite the transaction holds the write lock already.
async fn targets(tx: &mut Tx<'_>, ids: &[i64], provider_ids: &[&str]) -> Result<Vec<Target>, Error> {
    match tx {
        Tx::Pg(c) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TARGET_COLUMNS} FROM messages WHERE id = ANY($1) OR provider_message_id = ANY($2) ORDER BY id FOR UPDATE"
        )))
        .bind(ids)
        .bind(provider_ids)
        .fetch_all(&mut **c)
        .await
        .map_err(db_err),
        Tx::Sqlite(c) => {
            let mut out: Vec<Target> = Vec::new();
            for chunk in ids.chunks(500) {
                let sql = format!("SELECT {TARGET_COLUMNS} FROM messages WHERE id IN {}", sqlite_rows(1, chunk.len()));
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                out.extend(q.fetch_all(&mut **c).await.map_err(db_err)?);
            }
            for chunk in provider_ids.chunks(500) {
                let sql = format!("SELECT {TARGET_COLUMNS} FROM messages WHERE provider_message_id IN {}", sqlite_rows(1, chunk.len()));
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                out.extend(q.fetch_all(&mut **c).await.map_err(db_err)?);
            }
            out.sort_by_key(|t| t.id);
            out.dedup_by_key(|t| t.id);
            Ok(out)
        }
    }
}

/// Matches each report to its message and applies the newest status per message. Returns each
/// report's fate, in order.
async fn apply(tx: &mut Tx<'_>, reports: &[&Report], now: i64) -> Result<Vec<Fate>, Error> {
    let mut ids: Vec<i64> = reports.iter().filter_map(|r| r.message_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut pids: Vec<&str> = reports.iter().filter_map(|r| r.provider_id.as_deref()).collect();
    pids.sort_unstable();
    pids.dedup();
    let found = targets(tx, &ids, &pids).await?;
    let by_id: HashMap<i64, usize> = found.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let by_pid: HashMap<&str, usize> =
        found.iter().enumerate().filter_map(|(i, t)| t.provider_message_id.as_deref().map(|p| (p, i))).collect();

    // Per message: the best report of this request (index into `reports`), and whether any matched.
    let mut best: BTreeMap<usize, Option<usize>> = BTreeMap::new();
    let mut fates = Vec::with_capacity(reports.len());
    for (ri, r) in reports.iter().enumerate() {
        // By reference, unless the row already has a different provider id (then the reference
        // is not ours to trust); else by the provider's id.
        let by_reference =
            r.message_id().and_then(|id| by_id.get(&id)).copied().filter(|&i| match (&found[i].provider_message_id, &r.provider_id) {
                (Some(have), Some(given)) => have == given,
                _ => true,
            });
        let Some(ti) = by_reference.or_else(|| r.provider_id.as_deref().and_then(|p| by_pid.get(p)).copied()) else {
            fates.push(Fate::Parked(None));
            continue;
        };
        let t = &found[ti];
        match t.status.as_str() {
            "pending" | "sending" => fates.push(Fate::Parked(Some(t.id))),
            "sent" | "unknown" => {
                fates.push(Fate::Applied(t.id));
                let slot = best.entry(ti).or_insert(None);
                let at = r.at.unwrap_or(now);
                let current = slot.map(|b: usize| (reports[b].status, reports[b].at.unwrap_or(now)));
                if supersedes(r.status, at, current) {
                    *slot = Some(ri);
                }
            }
            _ => fates.push(Fate::Ignored(t.id)),
        }
    }

    let mut updates: Vec<(i64, &'static str, i64, Option<&str>)> = Vec::new();
    let mut deltas: BTreeMap<i64, BTreeMap<&'static str, i64>> = BTreeMap::new();
    for (&ti, &report) in &best {
        let t = &found[ti];
        let counted = !t.test;
        if t.status == "unknown" {
            // Any report proves the provider accepted it. The provider id comes from a report
            // that has one (the reaper left the row without).
            let pid =
                reports.iter().zip(&fates).find_map(|(r, f)| (*f == Fate::Applied(t.id)).then_some(r.provider_id.as_deref()).flatten());
            resolve_unknown(tx, t, pid, now).await?;
            if counted {
                let d = deltas.entry(t.campaign_id).or_default();
                *d.entry("unknown").or_default() -= 1;
                *d.entry("sent").or_default() += 1;
            }
        }
        let Some(ri) = report else { continue };
        let r = reports[ri];
        let current = t.delivery_status.as_deref().map(DeliveryStatus::parse).filter(|s| *s != DeliveryStatus::Other);
        let at = r.at.unwrap_or(now);
        if !supersedes(r.status, at, current.map(|c| (c, t.delivery_at.unwrap_or(i64::MAX)))) {
            continue;
        }
        updates.push((t.id, r.status.as_str(), at, r.error.as_deref()));
        if counted {
            let d = deltas.entry(t.campaign_id).or_default();
            if let Some(old) = current.and_then(DeliveryStatus::counter) {
                *d.entry(old).or_default() -= 1;
            }
            if let Some(new) = r.status.counter() {
                *d.entry(new).or_default() += 1;
            }
        }
    }
    update_delivery(tx, &updates, now).await?;
    for (campaign, d) in deltas {
        let resolved = d.get("unknown").is_some_and(|n| *n < 0);
        let d: Vec<(&str, i64)> = d.into_iter().collect();
        super::queue::bump(tx, campaign, &d).await?;
        if resolved {
            confirm_failed_run(tx, campaign, now).await?;
        }
    }
    Ok(fates)
}

/// A run that ended `failed` because nothing was known to be accepted, of which the provider has
/// now confirmed messages, did send: it becomes `sent`, with the reason in its history.
async fn confirm_failed_run(tx: &mut Tx<'_>, campaign: i64, now: i64) -> Result<(), Error> {
    let flipped: Option<(i64,)> = on_tx!(tx, |c| sqlx::query_as(
        "UPDATE campaigns SET status = 'sent', updated_at = $2 WHERE id = $1 AND status = 'failed' AND sent > 0 RETURNING store_id"
    )
    .bind(campaign)
    .bind(now)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    if let Some((store,)) = flipped {
        let change = super::campaigns::StatusChange {
            from: Some("failed"),
            to: "sent",
            actor: "provider",
            reason: "delivery reports confirmed messages whose send outcome was unknown",
        };
        super::campaigns::record_event(tx, StoreId(store), campaign, change, now).await?;
    }
    Ok(())
}

/// Writes the new delivery statuses, one statement per chunk.
async fn update_delivery(tx: &mut Tx<'_>, updates: &[(i64, &'static str, i64, Option<&str>)], now: i64) -> Result<(), Error> {
    if updates.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Pg(c) => {
            sqlx::query(
                "UPDATE messages SET delivery_status = v.status, delivery_at = v.at, delivery_error = v.error, updated_at = $5
                 FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[]) AS v (id, status, at, error) WHERE messages.id = v.id",
            )
            .bind(updates.iter().map(|u| u.0).collect::<Vec<_>>())
            .bind(updates.iter().map(|u| u.1).collect::<Vec<_>>())
            .bind(updates.iter().map(|u| u.2).collect::<Vec<_>>())
            .bind(updates.iter().map(|u| u.3).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut **c)
            .await
            .map_err(db_err)?;
        }
        Tx::Sqlite(c) => {
            for chunk in updates.chunks(500) {
                let sql = format!(
                    "WITH v (id, status, at, error) AS (VALUES {}) UPDATE messages SET delivery_status = v.status, delivery_at = v.at,
                     delivery_error = v.error, updated_at = ? FROM v WHERE messages.id = v.id",
                    sqlite_rows(chunk.len(), 4)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for u in chunk {
                    q = q.bind(u.0).bind(u.1).bind(u.2).bind(u.3);
                }
                q.bind(now).execute(&mut **c).await.map_err(db_err)?;
            }
        }
    }
    Ok(())
}

/// An `unknown` message the provider has reported on: it was accepted after all, so it becomes
/// `sent` and is charged (at most once: the row leaves `unknown` in this transaction).
async fn resolve_unknown(tx: &mut Tx<'_>, t: &Target, provider_id: Option<&str>, now: i64) -> Result<(), Error> {
    let changed = on_tx!(tx, |c| sqlx::query(
        "UPDATE messages SET status = 'sent', provider_message_id = COALESCE(provider_message_id, $2), sent_at = COALESCE(sent_at, $3),
            error_code = NULL, error_message = NULL, updated_at = $3 WHERE id = $1 AND status = 'unknown'"
    )
    .bind(t.id)
    .bind(provider_id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if changed == 1 {
        charge_late(tx, t, now).await?;
    }
    Ok(())
}

/// How a message confirmed late is charged: from its run's hold while that is still open (the
/// hold still reserves its cost: unknown messages are never charged), otherwise from the wallet
/// if the wallet covers it, otherwise not at all — a wallet never goes below zero. One
/// idempotency key per message, so never twice.
async fn charge_late(tx: &mut Tx<'_>, t: &Target, now: i64) -> Result<(), Error> {
    if t.cost <= 0 {
        return Ok(());
    }
    let key = format!("charge:late:{}", t.id);
    let hold = if t.test {
        t.hold_id
    } else {
        let (hold,): (Option<i64>,) =
            on_tx!(tx, |c| sqlx::query_as("SELECT hold_id FROM campaigns WHERE id = $1").bind(t.campaign_id).fetch_one(c).await)
                .map_err(db_err)?;
        hold
    };
    if let Some(h) = hold {
        match ledger::charge(tx, h, t.cost, 1, &key, now).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is(crate::domain::error::code::HOLD_CLOSED) => {}
            Err(e) => return Err(e),
        }
    }
    let refs = Refs { campaign: Some(t.campaign_id), hold: None, messages: Some(1) };
    if !ledger::charge_wallet(tx, StoreId(t.store_id), t.cost, refs, &key, now).await? {
        tracing::warn!(message = t.id, cost = t.cost, "late-confirmed message not charged: the wallet does not cover it");
    }
    Ok(())
}

async fn insert_reports(tx: &mut Tx<'_>, reports: &[Incoming], fates: &[Fate], now: i64) -> Result<(), Error> {
    match tx {
        Tx::Pg(c) => {
            sqlx::query(
                "INSERT INTO delivery_reports (received_at, message_id, reference, provider_message_id, status, raw_status, reported_at, error, body, state)
                 SELECT $1, * FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], $8::TEXT[], $9::TEXT[], $10::TEXT[])",
            )
            .bind(now)
            .bind(fates.iter().map(|f| f.message_id()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.report.reference.as_deref()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.report.provider_id.as_deref()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.report.status.as_str()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.report.raw_status.as_str()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.report.at.unwrap_or(now)).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.report.error.as_deref()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.body.as_str()).collect::<Vec<_>>())
            .bind(fates.iter().map(|f| f.state()).collect::<Vec<_>>())
            .execute(&mut **c)
            .await
            .map_err(db_err)?;
        }
        Tx::Sqlite(c) => {
            for (chunk, fchunk) in reports.chunks(500).zip(fates.chunks(500)) {
                let sql = format!(
                    "INSERT INTO delivery_reports (received_at, message_id, reference, provider_message_id, status, raw_status, reported_at, error, body, state)
                     VALUES {}",
                    sqlite_rows(chunk.len(), 10)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (r, f) in chunk.iter().zip(fchunk) {
                    q = q
                        .bind(now)
                        .bind(f.message_id())
                        .bind(r.report.reference.as_deref())
                        .bind(r.report.provider_id.as_deref())
                        .bind(r.report.status.as_str())
                        .bind(r.report.raw_status.as_str())
                        .bind(r.report.at.unwrap_or(now))
                        .bind(r.report.error.as_deref())
                        .bind(r.body.as_str())
                        .bind(f.state());
                }
                q.execute(&mut **c).await.map_err(db_err)?;
            }
        }
    }
    Ok(())
}

/// Claims up to `limit` messages for a status lookup: accepted by the provider (they have its id)
/// more than `after_ms` ago and less than `give_up_ms`, still without a final report, and not
/// looked up in the last `after_ms`. The claim is the `looked_up_at` stamp, written conditionally,
/// so engines on other machines skip them. Walks only the waiting messages' partial index.
pub async fn claim_stragglers(db: &Db, after_ms: i64, give_up_ms: i64, limit: i64, now: i64) -> Result<Vec<(i64, String)>, Error> {
    const WAITING: &str = "status = 'sent' AND (delivery_status IS NULL OR delivery_status IN ('queued', 'sent'))";
    let mut tx = db.begin().await?;
    let rows: Vec<(i64, String)> = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET looked_up_at = $1
         WHERE id IN (SELECT id FROM messages WHERE {WAITING} AND sent_at < $2 AND sent_at > $3
                        AND provider_message_id IS NOT NULL AND (looked_up_at IS NULL OR looked_up_at < $2)
                      ORDER BY sent_at LIMIT $4)
           AND (looked_up_at IS NULL OR looked_up_at < $2) AND {WAITING}
         RETURNING id, provider_message_id"
    )))
    .bind(now)
    .bind(now - after_ms)
    .bind(now - give_up_ms)
    .bind(limit)
    .fetch_all(c)
    .await)
    .map_err(db_err)?;
    tx.commit().await?;
    Ok(rows)
}
