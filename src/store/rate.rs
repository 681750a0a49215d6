//! Cluster-wide token buckets in the database: per provider account and per store, in messages
//! per second. Rows are read on every take, so a change made at runtime applies at once. No row
//! (or a rate of 0) means no limit.

use super::{Db, db_err, on_db, on_tx};
use crate::domain::Error;
use serde_json::{Value, json};

pub fn provider_key(name: &str) -> String {
    format!("provider:{name}")
}

pub fn store_key(store: i64) -> String {
    format!("store:{store}")
}

/// Takes up to `want` messages' worth of tokens; returns how many were granted (0 = wait).
pub async fn take(db: &Db, key: &str, want: i64, now: i64) -> Result<i64, Error> {
    // The common case, no limit, costs one read and no write transaction.
    let limited: Option<(i64,)> =
        on_db!(db, |p| sqlx::query_as("SELECT rate_per_sec FROM rate_buckets WHERE key = $1 AND rate_per_sec > 0")
            .bind(key)
            .fetch_optional(p)
            .await)
        .map_err(db_err)?;
    if limited.is_none() {
        return Ok(want);
    }
    let mut tx = db.begin().await?;
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let row: Option<(i64, i64, i64, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT rate_per_sec, capacity, tokens, refreshed_at FROM rate_buckets WHERE key = $1{lock}"
    )))
    .bind(key)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    let Some((rate, capacity, tokens, refreshed)) = row.filter(|r| r.0 > 0) else { return Ok(want) };
    // Milli-tokens: `rate` messages per second refill `rate` milli-tokens per millisecond.
    let available = (tokens + (now - refreshed).max(0) * rate).min(capacity);
    let granted = (available / 1000).min(want).max(0);
    on_tx!(&mut tx, |c| sqlx::query("UPDATE rate_buckets SET tokens = $2, refreshed_at = $3 WHERE key = $1")
        .bind(key)
        .bind(available - granted * 1000)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    tx.commit().await?;
    Ok(granted)
}

/// Returns tokens taken but not used (a claim found fewer messages than granted).
pub async fn refund(db: &Db, key: &str, unused: i64) -> Result<(), Error> {
    if unused <= 0 {
        return Ok(());
    }
    on_db!(db, |p| sqlx::query("UPDATE rate_buckets SET tokens = CASE WHEN tokens + $2 > capacity THEN capacity ELSE tokens + $2 END WHERE key = $1 AND rate_per_sec > 0")
        .bind(key)
        .bind(unused * 1000)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

/// Sets a limit (messages per second; 0 removes it). Bursts up to one second's worth.
pub async fn set(db: &Db, key: &str, rate_per_sec: i64, now: i64) -> Result<Value, Error> {
    if !(0..=1_000_000).contains(&rate_per_sec) {
        return Err(Error::invalid_field("rate_per_sec", "rate_per_sec must be between 0 (no limit) and 1,000,000."));
    }
    let capacity = rate_per_sec * 1000;
    on_db!(db, |p| sqlx::query(
        "INSERT INTO rate_buckets (key, rate_per_sec, capacity, tokens, refreshed_at) VALUES ($1, $2, $3, $3, $4)
         ON CONFLICT (key) DO UPDATE SET rate_per_sec = excluded.rate_per_sec, capacity = excluded.capacity,
            tokens = CASE WHEN rate_buckets.tokens > excluded.capacity THEN excluded.capacity ELSE rate_buckets.tokens END"
    )
    .bind(key)
    .bind(rate_per_sec)
    .bind(capacity)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(json!({"key": key, "rate_per_sec": rate_per_sec}))
}

pub async fn list(db: &Db) -> Result<Value, Error> {
    let rows: Vec<(String, i64)> =
        on_db!(db, |p| sqlx::query_as("SELECT key, rate_per_sec FROM rate_buckets ORDER BY key").fetch_all(p).await).map_err(db_err)?;
    Ok(json!({"items": rows.into_iter().map(|(k, r)| json!({"key": k, "rate_per_sec": r})).collect::<Vec<_>>()}))
}
