//! Recording a batch's outcome: statuses under the claim's token, counters, charges, completion.

use super::claim::{Batch, Claimed};
use super::{INSERT_BATCH, bump};
use crate::domain::Error;
use crate::domain::failure::FailureCode;
use crate::store::campaigns::{self, StatusChange};
use crate::store::ledger::{self, TransferKind};
use crate::store::{Db, StoreId, Tx, db_err, on_tx, sqlite_rows};

/// What happened to one claimed message.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        provider_id: String,
    },
    Failed {
        code: FailureCode,
        message: String,
    },
    Retry {
        at: i64,
        code: FailureCode,
        message: String,
    },
    /// The provider may or may not have the message (its answer could not be matched): held out
    /// of every retry until a delivery report or a status lookup settles it; not charged.
    Unknown {
        message: String,
    },
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
        Outcome::Unknown { .. } => "unknown",
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
                    Outcome::Failed { code, message } => (None, Some(code.as_str()), Some(message.as_str()), now),
                    Outcome::Retry { at, code, message } => (None, Some(code.as_str()), Some(message.as_str()), *at),
                    Outcome::Unknown { message } => (None, Some(FailureCode::UnknownOutcome.as_str()), Some(message.as_str()), now),
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
                        q.bind(*id).bind("failed").bind(None::<&str>).bind(Some(code.as_str())).bind(Some(message.as_str())).bind(now)
                    }
                    Outcome::Retry { at, code, message } => {
                        q.bind(*id).bind("pending").bind(None::<&str>).bind(Some(code.as_str())).bind(Some(message.as_str())).bind(*at)
                    }
                    Outcome::Unknown { message } => q
                        .bind(*id)
                        .bind("unknown")
                        .bind(None::<&str>)
                        .bind(Some(FailureCode::UnknownOutcome.as_str()))
                        .bind(Some(message.as_str()))
                        .bind(now),
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
                "unknown" => "unknown",
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
    let (sent, failed, retried, unknown) = (count("sent"), count("failed"), count("pending"), count("unknown"));
    bump(
        &mut tx,
        batch.campaign_id,
        &[
            ("sending", -(sent + failed + retried + unknown)),
            ("sent", sent),
            ("failed", failed),
            ("pending", retried),
            ("unknown", unknown),
        ],
    )
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
    let sent_ids: Vec<i64> = changed.iter().filter(|r| r.3 == "sent" || r.3 == "unknown").map(|r| r.0).collect();
    crate::store::delivery::apply_parked(&mut tx, &sent_ids, now).await?;
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
