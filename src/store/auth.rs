//! Credentials: store API keys, operator keys, users and login sessions.

use super::{Db, StoreId, Tx, db_err, on_db, on_tx};
use crate::domain::Error;
use crate::secrets;

/// Who made a request: recorded in consent history and status history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(i64),
    ApiKey(i64),
    Operator,
    System(&'static str),
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User(id) => format!("user:{id}"),
            Actor::ApiKey(id) => format!("api_key:{id}"),
            Actor::Operator => "operator".into(),
            Actor::System(what) => (*what).into(),
        }
    }
}

/// An authenticated store-level caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub store: StoreId,
    pub actor: Actor,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub async fn insert_api_key(tx: &mut Tx<'_>, store: StoreId, name: &str, key: &str, now: i64) -> Result<ApiKeyRow, Error> {
    on_tx!(tx, |c| sqlx::query_as(
        "INSERT INTO api_keys (store_id, name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, prefix, created_at, last_used_at, revoked_at"
    )
    .bind(store.0)
    .bind(name)
    .bind(secrets::display_prefix(key))
    .bind(secrets::sha256_hex(key))
    .bind(now)
    .fetch_one(c)
    .await)
    .map_err(db_err)
}

/// Creates a key and returns it with its secret, which is never retrievable again.
pub async fn create_api_key(db: &Db, store: StoreId, name: &str, now: i64) -> Result<(ApiKeyRow, String), Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid_field("name", "A key name must be 1 to 100 characters."));
    }
    let key = secrets::new_api_key(secrets::STORE_KEY_PREFIX);
    let mut tx = db.begin().await?;
    let row = insert_api_key(&mut tx, store, name, &key, now).await?;
    tx.commit().await?;
    Ok((row, key))
}

pub async fn list_api_keys(db: &Db, store: StoreId) -> Result<Vec<ApiKeyRow>, Error> {
    on_db!(db, |p| sqlx::query_as(
        "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE store_id = $1 ORDER BY id"
    )
    .bind(store.0)
    .fetch_all(p)
    .await)
    .map_err(db_err)
}

/// Revoking is idempotent: revoking a revoked key answers with the key as it is.
pub async fn revoke_api_key(db: &Db, store: StoreId, id: i64, now: i64) -> Result<ApiKeyRow, Error> {
    on_db!(db, |p| sqlx::query_as(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND store_id = $2
         RETURNING id, name, prefix, created_at, last_used_at, revoked_at"
    )
    .bind(id)
    .bind(store.0)
    .bind(now)
    .fetch_optional(p)
    .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("API key"))
}

/// Whether the key is still valid (not revoked), read from the database: open live streams check
/// their key with it every second, past any node's cache.
pub async fn key_active(db: &Db, id: i64) -> Result<bool, Error> {
    let found: Option<(i64,)> =
        on_db!(db, |p| sqlx::query_as("SELECT id FROM api_keys WHERE id = $1 AND revoked_at IS NULL").bind(id).fetch_optional(p).await)
            .map_err(db_err)?;
    Ok(found.is_some())
}

/// How long a node trusts an API key it has verified without asking the database again.
pub const KEY_CACHE_MS: i64 = 5_000;

/// API keys this node verified in the last `KEY_CACHE_MS`, by hash: a request (a progress poll
/// during a send, say) is then one database read, not two. A revocation clears this node's cache
/// at once; other nodes stop accepting the key within `KEY_CACHE_MS`.
#[derive(Debug, Default)]
pub struct KeyCache(std::sync::Mutex<std::collections::HashMap<String, (Principal, i64)>>);

impl KeyCache {
    /// Bounded: past this many keys the cache starts over.
    const MAX: usize = 10_000;

    fn get(&self, hash: &str, now: i64) -> Option<Principal> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash).filter(|(_, until)| now < *until).map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, p: Principal, now: i64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(hash, (p, now + KEY_CACHE_MS));
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

pub async fn authenticate_key(db: &Db, cache: &KeyCache, key: &str, now: i64) -> Result<Option<Principal>, Error> {
    let hash = secrets::sha256_hex(key);
    if let Some(p) = cache.get(&hash, now) {
        return Ok(Some(p));
    }
    let found: Option<(i64, i64, Option<i64>)> =
        on_db!(db, |p| sqlx::query_as("SELECT id, store_id, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(&hash)
            .fetch_optional(p)
            .await)
        .map_err(db_err)?;
    let Some((id, store, last_used)) = found else { return Ok(None) };
    // Recorded at minute precision so reads don't turn into a write per request. The UPDATE runs
    // only when the minute is stale: even one that changes nothing takes SQLite's write lock, so a
    // progress poll would wait behind every send-engine transaction.
    if last_used.is_none_or(|t| t < now - 60_000) {
        on_db!(db, |p| sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(id)
            .bind(now)
            .bind(now - 60_000)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    let p = Principal { store: StoreId(store), actor: Actor::ApiKey(id) };
    cache.put(hash, p.clone(), now);
    Ok(Some(p))
}

pub async fn create_admin_key(db: &Db, name: &str, now: i64) -> Result<String, Error> {
    let mut tx = db.begin().await?;
    let key = create_admin_key_in(&mut tx, name, now).await?;
    tx.commit().await?;
    Ok(key)
}

pub async fn create_admin_key_in(tx: &mut Tx<'_>, name: &str, now: i64) -> Result<String, Error> {
    let key = secrets::new_api_key(secrets::ADMIN_KEY_PREFIX);
    on_tx!(tx, |c| sqlx::query("INSERT INTO admin_keys (name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(name)
        .bind(secrets::display_prefix(&key))
        .bind(secrets::sha256_hex(&key))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(key)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminKeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub async fn list_admin_keys(db: &Db) -> Result<Vec<AdminKeyRow>, Error> {
    on_db!(db, |p| sqlx::query_as("SELECT id, name, prefix, created_at, revoked_at FROM admin_keys ORDER BY id").fetch_all(p).await)
        .map_err(db_err)
}

/// Revoking is idempotent, as for store keys. Admin keys are checked against the database on
/// every request (no cache), so a revoked key is refused by every node at once.
pub async fn revoke_admin_key(db: &Db, id: i64, now: i64) -> Result<AdminKeyRow, Error> {
    on_db!(db, |p| sqlx::query_as(
        "UPDATE admin_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING id, name, prefix, created_at, revoked_at"
    )
    .bind(id)
    .bind(now)
    .fetch_optional(p)
    .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("admin key"))
}

pub async fn authenticate_admin(db: &Db, key: &str) -> Result<bool, Error> {
    let found: Option<(i64,)> = on_db!(db, |p| sqlx::query_as("SELECT id FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(secrets::sha256_hex(key))
        .fetch_optional(p)
        .await)
    .map_err(db_err)?;
    Ok(found.is_some())
}

pub struct Session {
    pub token: String,
    pub expires_at: i64,
}

/// Failed log-ins counted over this sliding window (README, "Log-in throttling").
pub const LOGIN_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures per account (whoever tries) before it refuses log-ins until the window moves on.
pub const LOGIN_FAILURES_PER_ACCOUNT: i64 = 10;
/// Failures per client address, whatever the accounts (password spraying).
pub const LOGIN_FAILURES_PER_CLIENT: i64 = 50;
/// How long a log-in waits for a free password check before it is told to come back.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Caps concurrent password checks on this node: each is an argon2 run (19 MiB, tens of
/// milliseconds of CPU) on a blocking thread, so without a cap a burst of log-ins would take
/// every core and a lot of memory.
pub struct LoginGuard {
    pub checks: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        LoginGuard { checks: std::sync::Arc::new(tokio::sync::Semaphore::new(cores.max(2))) }
    }
}

/// When the `limit`-th most recent failure in the window leaves it, in ms from `now`; `None`
/// while fewer than `limit` failures are in the window.
async fn locked_for(db: &Db, column: &'static str, value: &str, limit: i64, now: i64) -> Result<Option<i64>, Error> {
    let sql = format!("SELECT at FROM login_failures WHERE {column} = $1 AND at > $2 ORDER BY at DESC LIMIT 1 OFFSET $3");
    let at: Option<(i64,)> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .bind(now - LOGIN_WINDOW_MS)
        .bind(limit - 1)
        .fetch_optional(p)
        .await)
    .map_err(db_err)?;
    Ok(at.map(|(at,)| at + LOGIN_WINDOW_MS - now))
}

/// Counts an attempt as failed before its password is checked, in the same statement that checks
/// both limits, so concurrent attempts cannot all pass a check made before any of them was
/// counted. Returns the counted row (`None`: a limit is reached). On SQLite the transaction holds
/// the write lock; on PostgreSQL, whose statements read what was committed when they began, the
/// account's and the client's advisory locks (in that order, so two attempts never wait on each
/// other in a cycle) make concurrent attempts on either take turns.
async fn count_attempt(db: &Db, account: &str, client: &str, now: i64) -> Result<Option<i64>, Error> {
    let mut tx = db.begin().await?;
    if let Tx::Pg(c) = &mut tx {
        for (class, key) in [(1, account), (2, client)] {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))").bind(class).bind(key).execute(&mut **c).await.map_err(db_err)?;
        }
    }
    let id: Option<(i64,)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "INSERT INTO login_failures (account, client, at) SELECT $1, $2, $3
         WHERE (SELECT COUNT(*) FROM login_failures WHERE account = $1 AND at > $4) < $5
           AND (SELECT COUNT(*) FROM login_failures WHERE client = $2 AND at > $4) < $6
         RETURNING id"
    )
    .bind(account)
    .bind(client)
    .bind(now)
    .bind(now - LOGIN_WINDOW_MS)
    .bind(LOGIN_FAILURES_PER_ACCOUNT)
    .bind(LOGIN_FAILURES_PER_CLIENT)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    tx.commit().await?;
    Ok(id.map(|(id,)| id))
}

fn too_many_attempts(wait_ms: i64, scope: &str) -> Error {
    let secs = (wait_ms.max(1) + 999) / 1000;
    let minutes = (secs + 59) / 60;
    Error::new(
        crate::domain::Kind::TooManyRequests,
        "too_many_attempts",
        format!("Too many failed log-in attempts. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" }),
    )
    .with_details(serde_json::json!({"retry_after": secs, "scope": scope}))
}

/// Checks email and password; on success opens a server-side session. A wrong email and a wrong
/// password are indistinguishable to the caller. Failures are counted in the database per account
/// and per `client` (an address, from the HTTP layer), so every node sees them; past the limits the
/// answer is 429 without checking the password, so guessing stops. A success clears the account's
/// count (not the client's: one's own account must not reset a spraying budget).
pub async fn login(
    db: &Db,
    guard: &LoginGuard,
    email: &str,
    password: &str,
    client: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<Option<Session>, Error> {
    let email = email.trim().to_lowercase();
    // Typed emails are not kept: the count is keyed by a hash.
    let account = secrets::sha256_hex(&email);
    let Some(attempt) = count_attempt(db, &account, client, now).await? else {
        if let Some(wait) = locked_for(db, "account", &account, LOGIN_FAILURES_PER_ACCOUNT, now).await? {
            return Err(too_many_attempts(wait, "account"));
        }
        // The window may have moved on since the count; then a second is soon enough.
        let wait = locked_for(db, "client", client, LOGIN_FAILURES_PER_CLIENT, now).await?.unwrap_or(1_000);
        return Err(too_many_attempts(wait, "client"));
    };
    let user: Option<(i64, i64, String)> = on_db!(db, |p| sqlx::query_as("SELECT id, store_id, password_hash FROM users WHERE email = $1")
        .bind(&email)
        .fetch_optional(p)
        .await)
    .map_err(db_err)?;
    let permit = match tokio::time::timeout(PASSWORD_CHECK_WAIT, guard.checks.clone().acquire_owned()).await {
        Ok(permit) => permit.map_err(Error::internal)?,
        Err(_) => {
            // Not checked, so not a failure: the attempt no longer counts.
            on_db!(db, |p| sqlx::query("DELETE FROM login_failures WHERE id = $1")
                .bind(attempt)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))
            .map_err(db_err)?;
            return Err(Error::new(
                crate::domain::Kind::Unavailable,
                "login_busy",
                "Many log-ins are being checked right now; try again in a moment.",
            )
            .with_details(serde_json::json!({"retry_after": 1})));
        }
    };
    let (user, hash) = match user {
        Some((id, store, hash)) => (Some((id, store)), Some(hash)),
        None => (None, None),
    };
    let password = password.to_string();
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // An unknown email spends the same time on a real check, so timing does not reveal which exist.
        secrets::verify_password(&password, hash.as_deref().unwrap_or_else(|| secrets::dummy_hash()))
    })
    .await
    .map_err(Error::internal)?;
    let Some((user_id, store_id)) = user.filter(|_| verified) else {
        // Counted already (`count_attempt`).
        return Ok(None);
    };
    // The attempt counted above goes with the account's earlier failures.
    on_db!(db, |p| sqlx::query("DELETE FROM login_failures WHERE account = $1").bind(&account).execute(p).await.map(|r| r.rows_affected()))
        .map_err(db_err)?;
    let token = secrets::random_token(40);
    let expires_at = now + ttl_ms;
    on_db!(db, |p| sqlx::query("INSERT INTO sessions (token_hash, user_id, store_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(secrets::sha256_hex(&token))
        .bind(user_id)
        .bind(store_id)
        .bind(now)
        .bind(expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(Some(Session { token, expires_at }))
}

/// Deletes expired sessions and failed log-ins older than the window; cheap when there are none
/// (one read, no write lock).
pub async fn purge_expired(db: &Db, now: i64) -> Result<(), Error> {
    let (sessions, failures): (bool, bool) = on_db!(db, |p| sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE expires_at <= $1), EXISTS (SELECT 1 FROM login_failures WHERE at <= $2)"
    )
    .bind(now)
    .bind(now - LOGIN_WINDOW_MS)
    .fetch_one(p)
    .await)
    .map_err(db_err)?;
    if sessions {
        on_db!(db, |p| sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(p).await.map(|r| r.rows_affected()))
            .map_err(db_err)?;
    }
    if failures {
        on_db!(db, |p| sqlx::query("DELETE FROM login_failures WHERE at <= $1")
            .bind(now - LOGIN_WINDOW_MS)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    Ok(())
}

pub async fn authenticate_session(db: &Db, token: &str, now: i64) -> Result<Option<Principal>, Error> {
    let found: Option<(i64, i64)> =
        on_db!(db, |p| sqlx::query_as("SELECT user_id, store_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(secrets::sha256_hex(token))
            .bind(now)
            .fetch_optional(p)
            .await)
        .map_err(db_err)?;
    Ok(found.map(|(user, store)| Principal { store: StoreId(store), actor: Actor::User(user) }))
}

pub async fn logout(db: &Db, token: &str) -> Result<(), Error> {
    on_db!(db, |p| sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(secrets::sha256_hex(token))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}
