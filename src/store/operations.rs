//! Operating a live campaign: cancel, pause, resume, retry what failed, failure categories, and
//! queue statistics. Each operation is one transaction over the same rows the engine works on.

use super::campaigns::{self, StatusChange};
use super::queue::FAILURES;
use super::{Db, StoreId, Tx, db_err, on_db, on_tx};
use crate::domain::Error;
use crate::domain::campaign::invalid_state;
use crate::domain::error::code;
use crate::domain::failure::FailureCode;
use crate::store::ledger::{self, TransferKind};
use serde_json::{Value, json};

async fn set_status(
    tx: &mut Tx<'_>,
    store: StoreId,
    id: i64,
    from: &[&str],
    to: &str,
    finished: Option<i64>,
    now: i64,
) -> Result<Option<String>, Error> {
    let list = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",");
    let row: Option<(String,)> = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE campaigns SET status = $3, finished_at = COALESCE($4, finished_at), updated_at = $5
         WHERE id = $1 AND store_id = $2 AND status IN ({list}) RETURNING status"
    )))
    .bind(id)
    .bind(store.0)
    .bind(to)
    .bind(finished)
    .bind(now)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    Ok(row.map(|r| r.0))
}

/// Cancels in one transaction: status, every pending message, and the hold minus what in-flight
/// batches may still be charged. In-flight batches finish and settle; the hold closes after them.
pub async fn cancel(db: &Db, store: StoreId, id: i64, actor: &str, why: &str, now: i64) -> Result<Value, Error> {
    let mut tx = db.begin().await?;
    let c = campaigns::get_tx(&mut tx, store, id).await?;
    if c.status == "cancelled" {
        return Ok(json!({"cancelled_messages": 0, "in_flight": c.sending, "released_credits": 0, "status": "cancelled"}));
    }
    if !matches!(c.status.as_str(), "sending" | "scheduled" | "paused") {
        return Err(invalid_state(&c.status, "cancelled"));
    }
    let cancelled = super::queue::cancel_pending(&mut tx, id, now).await?;
    // Messages first, then the campaign row: the same lock order as claims and outcomes.
    if set_status(&mut tx, store, id, &["sending", "scheduled", "paused"], "cancelled", Some(now), now).await?.is_none() {
        drop(tx);
        return Err(invalid_state(&campaigns::get(db, store, id).await?.status, "cancelled"));
    }
    on_tx!(&mut tx, |conn| sqlx::query("UPDATE campaigns SET pending = pending - $2, cancelled = cancelled + $2 WHERE id = $1")
        .bind(id)
        .bind(cancelled)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    let (in_flight, in_flight_cost, last_lease): (i64, Option<i64>, Option<i64>) = on_tx!(&mut tx, |conn| sqlx::query_as(
        "SELECT COUNT(*), CAST(SUM(cost) AS BIGINT), MAX(lease_until) FROM messages WHERE campaign_id = $1 AND status = 'sending' AND NOT test"
    )
    .bind(id)
    .fetch_one(conn)
    .await)
    .map_err(db_err)?;
    let mut released = 0;
    if let Some(hold) = c.hold_id {
        let in_flight_cost = in_flight_cost.unwrap_or(0);
        if in_flight_cost == 0 {
            released = ledger::finalize(&mut tx, hold, TransferKind::Release, now).await?;
        } else {
            let (balance,): (i64,) = on_tx!(&mut tx, |conn| sqlx::query_as(
                "SELECT a.balance FROM holds h JOIN accounts a ON a.id = h.account_id WHERE h.id = $1"
            )
            .bind(hold)
            .fetch_one(conn)
            .await)
            .map_err(db_err)?;
            released = ledger::release_part(&mut tx, hold, balance - in_flight_cost, &format!("cancel:{hold}"), now).await?;
            // An expired hold could no longer take the in-flight charges: it stays open until their
            // leases end, when they are either recorded or reaped (and the hold then closes). The
            // reaper takes leases before `until`, expiry holds due at `until`: one past the last.
            ledger::keep_open_until(&mut tx, hold, last_lease.unwrap_or(now) + 1).await?;
        }
    }
    let reason = format!("{why}: {cancelled} messages not sent, {in_flight} in flight, {released} credits returned");
    campaigns::record_event(&mut tx, store, id, StatusChange { from: Some(&c.status), to: "cancelled", actor, reason: &reason }, now)
        .await?;
    tx.commit().await?;
    Ok(json!({"cancelled_messages": cancelled, "in_flight": in_flight, "released_credits": released, "status": "cancelled"}))
}

/// A run whose credit reservation reached its deadline stops: what is still pending is cancelled
/// (in-flight batches settle), then the expiry returns the rest of the hold. Returns how many runs
/// stopped.
pub async fn stop_expired_runs(db: &Db, now: i64) -> Result<u64, Error> {
    // Every due run, page after page: expiry never closes the hold of a run that can still send
    // (`ledger::expire_due`), so a run left for the next pass would only wait longer.
    let mut stopped = 0;
    loop {
        let due = super::queue::runs_with_expired_holds(db, now).await?;
        let mut progressed = false;
        for (campaign, store) in &due {
            match cancel(db, StoreId(*store), *campaign, "engine", "the credit reservation expired", now).await {
                Ok(r) => {
                    tracing::warn!(campaign, cancelled = %r["cancelled_messages"], "credit hold expired; unsent messages cancelled");
                    stopped += 1;
                    progressed = true;
                }
                Err(e) if e.is(code::INVALID_STATE) => progressed = true, // stopped by someone else
                Err(e) => return Err(e),
            }
        }
        if due.is_empty() || !progressed {
            return Ok(stopped);
        }
    }
}

/// Stops new claims at once; in-flight batches finish.
pub async fn pause(db: &Db, store: StoreId, id: i64, actor: &str, reason: &str, now: i64) -> Result<Value, Error> {
    let mut tx = db.begin().await?;
    let c = campaigns::get_tx(&mut tx, store, id).await?;
    if c.status == "paused" {
        return Ok(json!({"status": "paused", "in_flight": c.sending}));
    }
    if set_status(&mut tx, store, id, &["sending"], "paused", None, now).await?.is_none() {
        return Err(invalid_state(&c.status, "paused"));
    }
    campaigns::record_event(&mut tx, store, id, StatusChange { from: Some("sending"), to: "paused", actor, reason }, now).await?;
    tx.commit().await?;
    Ok(json!({"status": "paused", "in_flight": c.sending}))
}

/// Continues where it stopped; messages already sent are never claimed again.
pub async fn resume(db: &Db, store: StoreId, id: i64, actor: &str, now: i64) -> Result<Value, Error> {
    let mut tx = db.begin().await?;
    let c = campaigns::get_tx(&mut tx, store, id).await?;
    if c.status == "sending" {
        return Ok(json!({"status": "sending"}));
    }
    if set_status(&mut tx, store, id, &["paused"], "sending", None, now).await?.is_none() {
        return Err(invalid_state(&c.status, "resumed"));
    }
    campaigns::record_event(&mut tx, store, id, StatusChange { from: Some("paused"), to: "sending", actor, reason: "resumed" }, now)
        .await?;
    // Everything may have finished while it was paused.
    super::queue::complete_if_done(&mut tx, id, now).await?;
    tx.commit().await?;
    Ok(json!({"status": campaigns::get(db, store, id).await?.status}))
}

/// The retryable failure codes as an SQL list (`'rate_limited', …`), from `FailureCode`.
fn retryable_sql() -> String {
    FailureCode::ALL.into_iter().filter(|c| c.retryable()).map(|c| format!("'{}'", c.as_str())).collect::<Vec<_>>().join(", ")
}

pub async fn failures(db: &Db, store: StoreId, id: i64) -> Result<Value, Error> {
    campaigns::get(db, store, id).await?;
    let sql = format!(
        "SELECT error_code, COUNT(*) FROM messages WHERE campaign_id = $1 AND store_id = $2 AND NOT test AND {FAILURES} GROUP BY error_code"
    );
    let rows: Vec<(Option<String>, i64)> =
        on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(store.0).fetch_all(p).await).map_err(db_err)?;
    let count = |code: &str| rows.iter().filter(|(c, _)| c.as_deref() == Some(code)).map(|r| r.1).sum::<i64>();
    let items: Vec<Value> = FailureCode::ALL
        .into_iter()
        .map(|c| json!({"category": c.as_str(), "count": count(c.as_str()), "explanation": c.explanation(), "retryable": c.retryable()}))
        .collect();
    let total: i64 = rows.iter().map(|r| r.1).sum();
    Ok(json!({"total": total, "categories": items}))
}

/// Which messages a store owner sends again: retryable failures (`retry-failed`), or messages
/// whose outcome is unknown (`resend-unknown`, which may duplicate them). One code path for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Failed,
    Unknown,
}

impl Requeue {
    /// The messages it takes, as a condition on `messages` (columns prefixed with `p`).
    fn rows(self, p: &str) -> String {
        match self {
            Requeue::Failed => format!("{p}{FAILURES} AND {p}status = 'failed' AND {p}error_code IN ({})", retryable_sql()),
            Requeue::Unknown => format!("{p}{FAILURES} AND {p}status = 'unknown'"),
        }
    }

    /// The campaign counter its messages leave.
    fn counter(self) -> &'static str {
        match self {
            Requeue::Failed => "failed",
            Requeue::Unknown => "unknown",
        }
    }

    fn nothing(self) -> Error {
        match self {
            Requeue::Failed => Error::invalid("no_recipients", "No message failed for a reason a retry can fix."),
            Requeue::Unknown => Error::invalid("no_recipients", "No message of a contact who is still opted in has an unknown outcome."),
        }
    }
}

/// What sending again risks, said before and when confirming `resend-unknown`.
pub const DUPLICATE_WARNING: &str = "The provider may already have these messages (their outcome is unknown): sending them again \
     can deliver a second copy to the same people, and each copy is charged.";

/// What a requeue would do: only its messages of contacts still opted in.
async fn retry_plan(tx: &mut Tx<'_>, id: i64, which: Requeue) -> Result<(i64, i64, Value), Error> {
    let rows = which.rows("m.");
    let (retryable, cost): (i64, Option<i64>) = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*), CAST(SUM(m.cost) AS BIGINT) FROM messages m JOIN contacts k ON k.id = m.contact_id
         WHERE m.campaign_id = $1 AND NOT m.test AND {rows} AND k.consent = 'opted_in'"
    )))
    .bind(id)
    .fetch_one(c)
    .await)
    .map_err(db_err)?;
    let (opted_out,): (i64,) = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM messages m LEFT JOIN contacts k ON k.id = m.contact_id
         WHERE m.campaign_id = $1 AND NOT m.test AND {rows} AND (k.id IS NULL OR k.consent <> 'opted_in')"
    )))
    .bind(id)
    .fetch_one(c)
    .await)
    .map_err(db_err)?;
    let mut excluded = json!({"opted_out": opted_out});
    if which == Requeue::Failed {
        let retryable_codes = retryable_sql();
        let per_code: Vec<(Option<String>, i64)> = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT error_code, COUNT(*) FROM messages WHERE campaign_id = $1 AND NOT test AND {FAILURES} AND (error_code IS NULL OR error_code NOT IN ({retryable_codes})) GROUP BY error_code"
        )))
        .bind(id)
        .fetch_all(c)
        .await)
        .map_err(db_err)?;
        for (code, n) in per_code {
            let k = code.unwrap_or_else(|| "other".into());
            let prev = excluded[&k].as_i64().unwrap_or(0);
            excluded[&k] = json!(prev + n);
        }
    }
    Ok((retryable, cost.unwrap_or(0), excluded))
}

pub async fn retry_preview(db: &Db, store: StoreId, id: i64) -> Result<Value, Error> {
    requeue_preview(db, store, id, Requeue::Failed).await
}

/// What `retry-failed` or `resend-unknown` would send and cost, and what blocks it.
pub async fn requeue_preview(db: &Db, store: StoreId, id: i64, which: Requeue) -> Result<Value, Error> {
    let mut tx = db.begin().await?;
    let c = campaigns::get_tx(&mut tx, store, id).await?;
    let (n, cost, excluded) = retry_plan(&mut tx, id, which).await?;
    drop(tx);
    let wallet = ledger::wallet(db, store).await?;
    let mut blocking = Vec::new();
    if !matches!(c.status.as_str(), "sent" | "failed") {
        blocking.push(
            json!({"code": code::INVALID_STATE, "message": format!("A {} campaign cannot be retried; wait until it has finished.", c.status)}),
        );
    }
    if n == 0 {
        blocking.push(json!({"code": "no_recipients", "message": which.nothing().message}));
    }
    if cost > wallet.available {
        blocking.push(json!({"code": "insufficient_credits", "message": format!("Sending again needs {cost} credits but {} are available.", wallet.available)}));
    }
    let mut v = json!({"messages": n, "excluded": excluded, "estimated_cost": cost, "available_credits": wallet.available, "blocking_reasons": blocking});
    match which {
        Requeue::Failed => v["can_retry"] = json!(blocking.is_empty()),
        Requeue::Unknown => {
            v["can_resend"] = json!(blocking.is_empty());
            v["warning"] = json!(DUPLICATE_WARNING);
        }
    }
    Ok(v)
}

/// Re-queues only retryable failures of contacts still opted in, holding credits for exactly those.
pub async fn retry_failed(db: &Db, store: StoreId, id: i64, actor: &str, hold_ttl_ms: i64, now: i64) -> Result<Value, Error> {
    requeue(db, store, id, Requeue::Failed, actor, hold_ttl_ms, now).await
}

/// Re-queues what `which` names, of contacts still opted in, under a new hold for exactly those.
pub async fn requeue(db: &Db, store: StoreId, id: i64, which: Requeue, actor: &str, hold_ttl_ms: i64, now: i64) -> Result<Value, Error> {
    let mut tx = db.begin().await?;
    let c = campaigns::get_tx(&mut tx, store, id).await?;
    if !matches!(c.status.as_str(), "sent" | "failed") {
        return Err(invalid_state(&c.status, "retried"));
    }
    // The status change comes first and is conditional: of two retries at once, the second waits
    // for the first's row lock, then finds the campaign sending and changes nothing (it used to
    // take a second hold and overwrite `hold_id`, leaving the first locked until it expired).
    if set_status(&mut tx, store, id, &["sent", "failed"], "sending", None, now).await?.is_none() {
        drop(tx);
        return Err(invalid_state(&campaigns::get(db, store, id).await?.status, "retried"));
    }
    let (n, cost, _) = retry_plan(&mut tx, id, which).await?;
    if n == 0 {
        return Err(which.nothing());
    }
    let rows = which.rows("");
    if which == Requeue::Failed {
        // Opted out since: recorded as such, never retried.
        on_tx!(&mut tx, |conn| sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET error_code = $3, error_message = 'The contact opted out after the campaign was sent.', updated_at = $2
             WHERE campaign_id = $1 AND NOT test AND {rows}
               AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.id = messages.contact_id AND k.consent = 'opted_in')"
        )))
        .bind(id)
        .bind(now)
        .bind(FailureCode::OptedOut.as_str())
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    let kind = if which == Requeue::Failed { "retry" } else { "resend" };
    let hold = ledger::hold(&mut tx, store, Some(id), cost, &format!("campaign:{id}:{kind}:{now}"), hold_ttl_ms, now).await?;
    let requeued = on_tx!(&mut tx, |conn| sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = 'pending', attempts = 0, next_attempt_at = $2, error_code = NULL, error_message = NULL, updated_at = $2
         WHERE campaign_id = $1 AND NOT test AND {rows}
           AND EXISTS (SELECT 1 FROM contacts k WHERE k.id = messages.contact_id AND k.consent = 'opted_in')"
    )))
    .bind(id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)? as i64;
    let counter = which.counter();
    on_tx!(&mut tx, |conn| sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE campaigns SET hold_id = $2, {counter} = {counter} - $3, pending = pending + $3, finished_at = NULL, updated_at = $4 WHERE id = $1"
    )))
    .bind(id)
    .bind(hold.id)
    .bind(requeued)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    let reason = match which {
        Requeue::Failed => format!("retrying {requeued} failed messages"),
        Requeue::Unknown => format!("sending {requeued} messages with an unknown outcome again, confirmed despite possible duplicates"),
    };
    campaigns::record_event(&mut tx, store, id, StatusChange { from: Some(&c.status), to: "sending", actor, reason: &reason }, now).await?;
    tx.commit().await?;
    Ok(json!({"status": "sending", "messages": requeued, "held_credits": cost, "hold_id": hold.id}))
}

/// Queue statistics (`GET /api/queue`, `/api/admin/queue`, the live `queue` event). The fields are
/// in alphabetical order, the order the JSON had when it was built as a `serde_json::Value`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub active: i64,
    /// Due messages by campaign priority (`urgent`, `high`, `normal`, `low`).
    pub by_priority: std::collections::BTreeMap<&'static str, i64>,
    pub cancelled: i64,
    pub completed: i64,
    pub delayed: i64,
    pub failed: i64,
    pub oldest_waiting_seconds: i64,
    pub throughput: Throughput,
    pub unknown: i64,
    pub waiting: i64,
    pub workers: Vec<WorkerSeen>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Throughput {
    pub last_5_minutes: i64,
    pub last_minute: i64,
}

/// An engine process that heartbeated in the last minute.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkerSeen {
    /// Shown to the operator only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub id: String,
    pub in_flight: i64,
    pub last_seen: String,
}

/// The store's queue figures, none of which reads another store's messages (README, "Queue
/// figures"): its campaigns' counters (`$1` the store); the delayed (`$2` now) and oldest pending
/// messages of its campaigns with work, through their pending-rows index; what the provider
/// accepted in the last minutes, from its charges (one per batch). Public so a test can check
/// their query plans.
pub const STORE_QUEUE_SQL: [&str; 3] = [
    "SELECT priority, CAST(SUM(pending) AS BIGINT), CAST(SUM(sending) AS BIGINT), CAST(SUM(sent) AS BIGINT), CAST(SUM(failed) AS BIGINT),
            CAST(SUM(cancelled) AS BIGINT), CAST(SUM(unknown) AS BIGINT)
     FROM campaigns WHERE store_id = $1 GROUP BY priority",
    "SELECT c.priority,
            (SELECT COUNT(*) FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending' AND m.next_attempt_at > $2),
            (SELECT MIN(m.next_attempt_at) FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending')
     FROM campaigns c WHERE c.store_id = $1 AND c.pending > 0",
    "SELECT CAST(SUM(CASE WHEN created_at > $2 - 60000 THEN messages ELSE 0 END) AS BIGINT), CAST(SUM(messages) AS BIGINT)
     FROM transfers WHERE store_id = $1 AND kind = 'charge' AND created_at > $2 - 300000",
];

/// The operator's figures: the same over every store's campaigns (`$1 = $1` stands in for the
/// store), and throughput from every store's charges of the last five minutes.
const ALL_QUEUE_SQL: [&str; 3] = [
    "SELECT priority, CAST(SUM(pending) AS BIGINT), CAST(SUM(sending) AS BIGINT), CAST(SUM(sent) AS BIGINT), CAST(SUM(failed) AS BIGINT),
            CAST(SUM(cancelled) AS BIGINT), CAST(SUM(unknown) AS BIGINT)
     FROM campaigns WHERE $1 = $1 GROUP BY priority",
    "SELECT c.priority,
            (SELECT COUNT(*) FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending' AND m.next_attempt_at > $2),
            (SELECT MIN(m.next_attempt_at) FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending')
     FROM campaigns c WHERE $1 = $1 AND c.pending > 0",
    "SELECT CAST(SUM(CASE WHEN created_at > $2 - 60000 THEN messages ELSE 0 END) AS BIGINT), CAST(SUM(messages) AS BIGINT)
     FROM transfers WHERE $1 = $1 AND kind = 'charge' AND created_at > $2 - 300000",
];

/// Queue statistics, across all stores (`store = None`, with worker hosts) or for one store.
/// Campaign messages only: test sends (a few a day per store) are not queue work to watch.
pub async fn queue(db: &Db, store: Option<StoreId>, now: i64) -> Result<QueueStats, Error> {
    let [counters_sql, pending_sql, throughput_sql] = if store.is_some() { STORE_QUEUE_SQL } else { ALL_QUEUE_SQL };
    let sid = store.map_or(0, |s| s.0);
    type Counters = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let counters: Vec<Counters> = on_db!(db, |p| sqlx::query_as(counters_sql).bind(sid).fetch_all(p).await).map_err(db_err)?;
    let pending: Vec<(String, i64, Option<i64>)> =
        on_db!(db, |p| sqlx::query_as(pending_sql).bind(sid).bind(now).fetch_all(p).await).map_err(db_err)?;
    let (last_minute, last_5): (Option<i64>, Option<i64>) =
        on_db!(db, |p| sqlx::query_as(throughput_sql).bind(sid).bind(now).fetch_one(p).await).map_err(db_err)?;
    let total = |f: fn(&Counters) -> Option<i64>| counters.iter().filter_map(f).sum::<i64>();
    let delayed: i64 = pending.iter().map(|r| r.1).sum();
    let by_priority = ["urgent", "high", "normal", "low"]
        .map(|name| {
            let queued: i64 = counters.iter().filter(|r| r.0 == name).filter_map(|r| r.1).sum();
            let later: i64 = pending.iter().filter(|r| r.0 == name).map(|r| r.1).sum();
            (name, queued - later)
        })
        .into();
    let oldest = pending.iter().filter_map(|r| r.2).filter(|at| *at <= now).min();
    let mut v = QueueStats {
        waiting: total(|r| r.1) - delayed,
        delayed,
        active: total(|r| r.2),
        completed: total(|r| r.3),
        failed: total(|r| r.4),
        cancelled: total(|r| r.5),
        unknown: total(|r| r.6),
        by_priority,
        throughput: Throughput { last_minute: last_minute.unwrap_or(0), last_5_minutes: last_5.unwrap_or(0) },
        oldest_waiting_seconds: oldest.map_or(0, |o| (now - o).max(0) / 1000),
        workers: Vec::new(),
    };
    // Workers that stopped heartbeating are gone after a minute.
    let workers: Vec<(String, String, i64, i64)> =
        on_db!(db, |p| sqlx::query_as("SELECT id, host, last_seen, in_flight FROM workers WHERE last_seen > $1 ORDER BY id")
            .bind(now - 60_000)
            .fetch_all(p)
            .await)
        .map_err(db_err)?;
    v.workers = workers
        .into_iter()
        .map(|(id, host, seen, in_flight)| WorkerSeen {
            host: store.is_none().then_some(host),
            id,
            in_flight,
            last_seen: crate::domain::time::rfc3339(seen),
        })
        .collect();
    Ok(v)
}
