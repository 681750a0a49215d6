//! Cluster-wide limits in the database. Token buckets per provider account and per store, in
//! messages per second: rows are read on every take, so a change made at runtime applies at once;
//! no row (or a rate of 0) means no limit. And per-store hourly counts of costly actions
//! (`Action`, table `rate_windows`), which a store's own requests cannot pass on any node.

use super::{Db, StoreId, db_err, on_db, on_tx};
use crate::domain::{Error, Kind};
use serde_json::{Value, json};

/// A costly action a store may take only so many times an hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST /api/keys`, the settings page's "Create key".
    CreateKey,
    /// A contact import (API or web page).
    Import,
    /// Starting a campaign (`send`, `enqueue`, the web page's button) or a test send.
    Send,
}

impl Action {
    fn key(self, store: StoreId) -> String {
        let name = match self {
            Action::CreateKey => "keys",
            Action::Import => "imports",
            Action::Send => "sends",
        };
        format!("{name}:store:{}", store.0)
    }

    fn what(self) -> &'static str {
        match self {
            Action::CreateKey => "create API keys",
            Action::Import => "import contacts",
            Action::Send => "start sends",
        }
    }
}

/// The window the hourly limits count in.
pub const HOUR_MS: i64 = 3_600_000;

/// Counts one `action` of `store` in the current hour (UTC, fixed windows), or refuses it with a
/// 429 carrying `retry_after` (seconds to the next window) and counts nothing. `per_hour` 0 means
/// no limit. One conditional upsert: concurrent requests on any node cannot pass the limit
/// together. A clock behind the stored window counts in the stored window.
pub async fn count(db: &Db, store: StoreId, action: Action, per_hour: i64, now: i64) -> Result<(), Error> {
    if per_hour <= 0 {
        return Ok(());
    }
    let key = action.key(store);
    let window = now - now.rem_euclid(HOUR_MS);
    let counted: Option<i64> = on_db!(db, |p| sqlx::query_scalar(
        "INSERT INTO rate_windows (key, window_start, used) VALUES ($1, $2, 1)
         ON CONFLICT (key) DO UPDATE SET
            used = CASE WHEN rate_windows.window_start >= excluded.window_start THEN rate_windows.used + 1 ELSE 1 END,
            window_start = CASE WHEN rate_windows.window_start >= excluded.window_start THEN rate_windows.window_start ELSE excluded.window_start END
         WHERE rate_windows.window_start < excluded.window_start OR rate_windows.used < $3
         RETURNING used"
    )
    .bind(&key)
    .bind(window)
    .bind(per_hour)
    .fetch_optional(p)
    .await)
    .map_err(db_err)?;
    if counted.is_some() {
        return Ok(());
    }
    let started: Option<i64> =
        on_db!(db, |p| sqlx::query_scalar("SELECT window_start FROM rate_windows WHERE key = $1").bind(&key).fetch_optional(p).await)
            .map_err(db_err)?;
    let retry_after = ((started.unwrap_or(window) + HOUR_MS - now).max(1) + 999) / 1000;
    let minutes = (retry_after + 59) / 60;
    Err(Error::new(
        Kind::TooManyRequests,
        "rate_limited",
        format!(
            "This store can {} {per_hour} times an hour and has reached that; try again in {minutes} minute{}.",
            action.what(),
            if minutes == 1 { "" } else { "s" }
        ),
    )
    .with_details(json!({"limit": per_hour, "window_secs": HOUR_MS / 1000, "retry_after": retry_after})))
}

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
