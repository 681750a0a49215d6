//! All SQL lives under `store/`. Most operations are one SQL text for both databases (`on_tx!`,
//! `on_db!`); DDL lives per dialect in `migrations/`, and the forks (launch, claim, outcome, import,
//! audience streaming) are listed in ARCHITECTURE.md.
//!
//! Tenant scoping is structural: every store-level function takes a `StoreId`, and the only way to
//! get one in a request is the authentication extractor.

pub mod audience;
pub mod auth;
pub mod campaigns;
pub mod contacts;
pub mod idempotency;
pub mod import;
pub mod ledger;
pub mod operations;
pub mod queue;
pub mod rate;
pub mod segments;
pub mod settings;
pub mod stores;
pub mod workers;

use crate::domain::Error;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// A store (tenant) id. Obtained from authentication or from an operator command, never from a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct StoreId(pub i64);

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Pg(PgPool),
}

/// A SQLite pool and the gate its write transactions pass in this process. SQLite has one writer
/// at a time, and a connection that finds the lock taken sleeps in SQLite's busy handler (1, 2,
/// 5 … 100 ms) instead of being woken when it is free: with several send loops the database sat
/// idle a third of the time. Waiting on the gate first, in order, hands the lock over at once.
/// Other processes on the same file still meet at SQLite's own lock.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pool: SqlitePool,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Dropped with the last clone: stops the checkpoint task (`checkpoints`).
    _alive: std::sync::Arc<tokio::sync::watch::Sender<()>>,
}

impl std::ops::Deref for SqliteDb {
    type Target = SqlitePool;
    fn deref(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A transaction: on a pooled connection of its own (`Db::begin`, `'static`) or on one a caller
/// keeps for a run of transactions (`Held::begin`).
pub enum Tx<'c> {
    Sqlite(SqliteTx<'c>),
    Pg(sqlx::Transaction<'c, Postgres>),
}

/// A SQLite write transaction, holding its process's write gate (see `SqliteDb`) until it ends.
pub struct SqliteTx<'c> {
    tx: sqlx::Transaction<'c, Sqlite>,
    _writer: tokio::sync::OwnedMutexGuard<()>,
}

impl std::ops::Deref for SqliteTx<'_> {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for SqliteTx<'_> {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

/// Runs `$body` with `$c` bound to the transaction's connection, once per dialect arm, so one
/// query text and one set of binds serve both databases.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Pg(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Like `on_tx!` for reads straight from the pool.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(s) => {
                let $c = &**s;
                $body
            }
            $crate::store::Db::Pg($c) => $body,
        }
    };
}

pub use crate::{on_db, on_tx};

/// Copies SQLite's write-ahead log into the database file every 200 ms, on a connection of its
/// own (a passive checkpoint: writers go on appending meanwhile), until the pool is closed or the
/// last handle on it (`alive`'s sender, in every `SqliteDb`) is dropped.
async fn checkpoints(pool: SqlitePool, mut alive: tokio::sync::watch::Receiver<()>) {
    let mut every = tokio::time::interval(Duration::from_millis(200));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = alive.changed() => return,
        }
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
            && !pool.is_closed()
        {
            tracing::warn!(error = %e, "SQLite checkpoint failed");
        }
    }
}

/// True when a database URL names PostgreSQL (anything else is a SQLite file).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// True when PostgreSQL answered with this SQLSTATE.
fn has_pg_code(e: &sqlx::Error, code: &str) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some(code)
}

/// True when PostgreSQL refused a connection because its database does not exist.
pub fn is_missing_database(e: &sqlx::Error) -> bool {
    has_pg_code(e, "3D000")
}

impl Db {
    /// Connects and applies the embedded migrations (idempotent).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        let db = if is_postgres_url(url) {
            let opts = PgConnectOptions::from_str(url)?
                // A transaction must never stay open across a provider call; this catches bugs.
                .options([("idle_in_transaction_session_timeout", "60000")]);
            // No ping before each use of a pooled connection: it doubled the round trips of a
            // one-query request (a progress poll waited on two wake-ups of a busy server, not
            // one). A connection that broke while idle (a server restart) fails the one
            // statement that finds out, and the pool replaces it.
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false)
                .connect_with(opts)
                .await?;
            Db::Pg(pool)
        } else {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                // 8 MiB of page cache per connection (up to 8 connections). The operating system
                // caches the file too; 64 MiB per connection made no send faster (1,000,000-message
                // sends, BENCHMARKS.md) and grew the process by up to half a gigabyte. Imports
                // raise it on their own connection while they write.
                .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
                .pragma("temp_store", "memory")
                // No checkpoint inside commits: the one whose commit crossed the threshold copied
                // the whole log into the database file (a quarter of a second after a launch) while
                // every other writer waited. `checkpoints` does it beside them instead.
                .pragma("wal_autocheckpoint", "0");
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.clamp(1, 8))
                // A local file does not hang up; the ping was a round trip to the connection's
                // thread before every use.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            let (alive, watch) = tokio::sync::watch::channel(());
            tokio::spawn(checkpoints(pool.clone(), watch));
            Db::Sqlite(SqliteDb { pool, writer: Default::default(), _alive: std::sync::Arc::new(alive) })
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Creates the PostgreSQL database `url` names when it does not exist yet, as SQLite creates its
    /// file; returns whether it did. Only `smscast migrate` calls this: `serve` and `worker` never
    /// create a database, so a mistyped URL fails instead of starting an empty installation.
    pub async fn create_postgres_database(url: &str) -> anyhow::Result<bool> {
        use sqlx::Connection;
        if !is_postgres_url(url) {
            return Ok(false);
        }
        let opts = PgConnectOptions::from_str(url)?;
        let Some(name) = opts.get_database().map(str::to_string) else { return Ok(false) };
        match sqlx::PgConnection::connect_with(&opts).await {
            Ok(c) => {
                c.close().await?;
                return Ok(false);
            }
            Err(e) if is_missing_database(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let mut admin = sqlx::PgConnection::connect_with(&opts.clone().database("postgres")).await?;
        let created =
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")))).execute(&mut admin).await;
        admin.close().await?;
        match created {
            Ok(_) => Ok(true),
            // Another `migrate` created it in the meantime.
            Err(e) if has_pg_code(&e, "42P04") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(&**p).await?,
            Db::Pg(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Every business operation is one transaction. SQLite transactions start as writers
    /// (`BEGIN IMMEDIATE`) so a read-then-write never fails with SQLITE_BUSY halfway.
    pub async fn begin(&self) -> Result<Tx<'static>, Error> {
        Ok(match self {
            Db::Sqlite(s) => {
                let writer = s.writer.clone().lock_owned().await;
                Tx::Sqlite(SqliteTx { tx: s.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?, _writer: writer })
            }
            Db::Pg(p) => Tx::Pg(p.begin().await.map_err(db_err)?),
        })
    }

    /// A connection kept for a run of transactions, closed when dropped. On SQLite a bulk writer
    /// keeps its page cache warm from one transaction to the next this way (the pool hands out its
    /// idle connections in turn, each with a cold cache), and grows no other connection's cache.
    /// `cache_kib` is its page cache. PostgreSQL keeps nothing per connection that matters here:
    /// each transaction takes a pooled connection as usual.
    pub async fn hold(&self, cache_kib: i64) -> Result<Held, Error> {
        Ok(match self {
            Db::Sqlite(s) => {
                let mut conn = s.pool.acquire().await.map_err(db_err)?;
                // Its cache is not handed back to the pool: the next user gets a fresh connection.
                conn.close_on_drop();
                sqlite_cache_kib(&mut conn, cache_kib).await?;
                Held::Sqlite(s.writer.clone(), conn)
            }
            Db::Pg(p) => Held::Pg(p.clone()),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// True when the database answers and every embedded migration is applied.
    pub async fn ready(&self) -> bool {
        let expected = match self {
            Db::Sqlite(_) => sqlx::migrate!("migrations/sqlite").iter().count() as i64,
            Db::Pg(_) => sqlx::migrate!("migrations/postgres").iter().count() as i64,
        };
        let applied: Result<(i64,), _> =
            on_db!(self, |p| sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(p).await);
        matches!(applied, Ok((n,)) if n >= expected)
    }

    pub async fn close(&self) {
        on_db!(self, |p| p.close().await)
    }
}

/// See `Db::hold`.
pub enum Held {
    Sqlite(std::sync::Arc<tokio::sync::Mutex<()>>, sqlx::pool::PoolConnection<Sqlite>),
    Pg(PgPool),
}

impl Held {
    /// A write transaction on the held connection (SQLite: behind the process's write gate).
    pub async fn begin(&mut self) -> Result<Tx<'_>, Error> {
        Ok(match self {
            Held::Sqlite(gate, conn) => {
                let writer = gate.clone().lock_owned().await;
                let tx = sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await.map_err(db_err)?;
                Tx::Sqlite(SqliteTx { tx, _writer: writer })
            }
            Held::Pg(p) => Tx::Pg(p.begin().await.map_err(db_err)?),
        })
    }
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<(), Error> {
        match self {
            Tx::Sqlite(t) => t.tx.commit().await.map_err(db_err),
            Tx::Pg(t) => t.commit().await.map_err(db_err),
        }
    }

    /// Undoes the transaction now (dropping it does the same, later).
    pub async fn rollback(self) -> Result<(), Error> {
        match self {
            Tx::Sqlite(t) => t.tx.rollback().await.map_err(db_err),
            Tx::Pg(t) => t.rollback().await.map_err(db_err),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Pg(_))
    }
}

/// Database failures are internal errors: logged, never shown.
pub fn db_err(e: sqlx::Error) -> Error {
    Error::internal(format!("database: {e}"))
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

/// `$first, $first+1, …` placeholders for a dynamic IN list or multi-row VALUES.
pub fn placeholders(first: usize, count: usize) -> String {
    let mut s = String::with_capacity(count * 5);
    for i in 0..count {
        if i > 0 {
            s.push(',');
        }
        s.push('$');
        s.push_str(&(first + i).to_string());
    }
    s
}

/// `rows` groups of `cols` anonymous placeholders, `(?,?),(?,?)…`, for a multi-row statement on
/// SQLite; the binds follow in the same order. sqlx looks every *named* SQLite parameter (`$N`) up
/// by its index, and SQLite finds a name by walking the list of all of them, so a statement with
/// thousands of `$N` costs time quadratic in their number (it was most of an import, of a launch
/// and of every outcome's recording). PostgreSQL gets one array per column instead.
pub fn sqlite_rows(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * (cols * 2 + 2));
    for r in 0..rows {
        s.push_str(if r > 0 { ",(" } else { "(" });
        for c in 0..cols {
            s.push_str(if c > 0 { ",?" } else { "?" });
        }
        s.push(')');
    }
    s
}

/// Page cache of a SQLite connection, in KiB: the usual, and on the connection a bulk import
/// holds (`Db::hold`).
pub const SQLITE_CACHE_KIB: i64 = 8192;
pub const SQLITE_BULK_CACHE_KIB: i64 = 65536;

pub async fn sqlite_cache_kib(c: &mut sqlx::SqliteConnection, kib: i64) -> Result<(), Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = -{kib}"))).execute(c).await.map_err(db_err)?;
    Ok(())
}

/// The next id of an AUTOINCREMENT table, for rows a write transaction numbers itself: past the
/// highest ever handed out (ids are never reused), and free until the transaction, which holds
/// the write lock, commits.
pub async fn sqlite_next_id(c: &mut sqlx::SqliteConnection, table: &'static str) -> Result<i64, Error> {
    let last: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), COALESCE((SELECT MAX(id) FROM {table}), 0))"
    )))
    .fetch_one(c)
    .await
    .map_err(db_err)?;
    Ok(last + 1)
}

/// Keyset cursors are opaque to clients but are simply the last id seen.
pub fn parse_cursor(cursor: Option<&str>) -> Result<i64, Error> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| Error::invalid("invalid_cursor", "The cursor is not one this API returned.")),
    }
}

/// For PATCH bodies: `Some(None)` = the field was sent as null (clear it); `None` = not sent (keep it).
pub fn double_option<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Lists fetch `limit + 1` rows; this trims the extra one and returns the cursor for the next
/// page (the last id shown), or `None` on the last page.
pub fn next_cursor<T>(rows: &mut Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Option<String> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| id(r).to_string())
    } else {
        None
    }
}

pub fn clamp_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, Error> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(Error::invalid("invalid_limit", format!("limit must be between 1 and {max}."))
            .with_details(serde_json::json!({"field": "limit"}))),
    }
}
