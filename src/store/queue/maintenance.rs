//! What every engine does each second besides sending: reap expired leases, start due scheduled
//! campaigns, find runs whose credit hold expired.

use super::bump;
use super::launch::start;
use super::outcome::complete_if_done;
use crate::domain::error::code;
use crate::domain::failure::FailureCode;
use crate::domain::{Error, Kind};
use crate::store::campaigns::{self, SendSettings, StatusChange};
use crate::store::{Db, StoreId, db_err, on_db, on_tx};

/// Expired leases: the provider may or may not have the messages, so they become `unknown` and
/// are never sent again automatically (DESIGN.md §4).
pub async fn reap(db: &Db, now: i64) -> Result<u64, Error> {
    let mut tx = db.begin().await?;
    let rows: Vec<(i64, bool)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "UPDATE messages SET status = 'unknown', error_code = $2,
            error_message = 'The worker sending this message stopped before recording the outcome; it is not resent automatically.',
            lease_owner = NULL, lease_until = NULL, updated_at = $1
         WHERE status = 'sending' AND lease_until < $1 RETURNING campaign_id, test"
    )
    .bind(now)
    .bind(FailureCode::UnknownOutcome.as_str())
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
            Err(e) if e.is(code::INVALID_STATE) => {} // another process started it first
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
