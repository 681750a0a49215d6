//! Replays for requests that carry an `Idempotency-Key`: the first successful answer is stored in
//! the same transaction as the work it describes, so a replay can never disagree with the data.
//! Failed requests store nothing and may be retried.

use super::{Db, Tx, db_err, on_db, on_tx};
use crate::domain::Error;
use serde_json::Value;

pub struct Stored {
    pub status: u16,
    pub body: Value,
}

fn hash(request: &Value) -> String {
    crate::secrets::sha256_hex(&request.to_string())
}

fn reused() -> Error {
    Error::conflict(
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request. Use a new key for a new request.",
    )
}

/// The stored answer for `key`, if any; a different request under the same key is a conflict.
pub async fn lookup(db: &Db, scope: &str, key: &str, request: &Value) -> Result<Option<Stored>, Error> {
    let row: Option<(String, i64, String)> =
        on_db!(db, |p| sqlx::query_as("SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(p)
            .await)
        .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some((h, _, _)) if h != hash(request) => Err(reused()),
        Some((_, status, body)) => Ok(Some(Stored { status: status as u16, body: serde_json::from_str(&body).map_err(Error::internal)? })),
    }
}

/// Records the answer inside the operation's transaction. A concurrent request with the same key
/// fails on the primary key and its transaction rolls back; the caller then replays.
pub async fn save(tx: &mut Tx<'_>, scope: &str, key: &str, request: &Value, status: u16, body: &Value, now: i64) -> Result<(), Error> {
    if crate::faults::hit(|| format!("idempotency.save:{key}")) {
        return Err(crate::faults::injected("idempotency.save"));
    }
    on_tx!(tx, |c| sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(scope)
    .bind(key)
    .bind(hash(request))
    .bind(i64::from(status))
    .bind(body.to_string())
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

/// How long a stored answer is replayed. A client retries within minutes; after a day the key
/// is forgotten (a later request with it runs again, as with Stripe's 24 hours). Money does not
/// depend on it: ledger transfers carry idempotency keys of their own.
pub const REPLAY_TTL_MS: i64 = 24 * 3_600_000;

pub async fn purge_expired(db: &Db, now: i64) -> Result<(), Error> {
    let cutoff = now - REPLAY_TTL_MS;
    let (due,): (bool,) = on_db!(db, |p| sqlx::query_as("SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE created_at <= $1)")
        .bind(cutoff)
        .fetch_one(p)
        .await)
    .map_err(db_err)?;
    if due {
        on_db!(db, |p| sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
            .bind(cutoff)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    Ok(())
}
