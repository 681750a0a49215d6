//! Double-entry credits (DESIGN.md §5): immutable transfers between accounts, balances cached on
//! the accounts. A hold moves credits from a store's wallet into a clearing account of its own;
//! each charge moves from the hold to the store's revenue account; finalization (release or
//! expiry) moves the remainder back to the wallet, exactly once.
//!
//! Every function runs inside the caller's transaction, so a business operation and its money
//! movement commit or roll back together. Overspend is impossible by construction: a debit is a
//! conditional UPDATE (`balance >= amount`) and a CHECK constraint backs it up.

use super::{Db, StoreId, Tx, clamp_limit, db_err, is_unique_violation, on_db, on_tx, parse_cursor};
use crate::domain::time::rfc3339;
use crate::domain::{Error, Kind};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    TopUp,
    Hold,
    Charge,
    Release,
    Expiry,
    Adjustment,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::TopUp => "top_up",
            TransferKind::Hold => "hold",
            TransferKind::Charge => "charge",
            TransferKind::Release => "release",
            TransferKind::Expiry => "expiry",
            TransferKind::Adjustment => "adjustment",
        }
    }
}

/// Links a transfer to what caused it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs {
    pub campaign: Option<i64>,
    pub hold: Option<i64>,
    pub messages: Option<i64>,
}

pub fn insufficient(required: i64, available: i64) -> Error {
    Error::new(
        Kind::PaymentRequired,
        "insufficient_credits",
        format!(
            "This needs {required} credits but only {available} are available. Top up {} more credits to continue.",
            required - available
        ),
    )
    .with_details(json!({"required": required, "available": available, "missing": required - available}))
}

async fn account(tx: &mut Tx<'_>, key: &str, store: Option<StoreId>, kind: &str) -> Result<i64, Error> {
    on_tx!(tx, |c| sqlx::query("INSERT INTO accounts (key, store_id, kind) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(store.map(|s| s.0))
        .bind(kind)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    let (id,): (i64,) =
        on_tx!(tx, |c| sqlx::query_as("SELECT id FROM accounts WHERE key = $1").bind(key).fetch_one(c).await).map_err(db_err)?;
    Ok(id)
}

pub async fn wallet_account(tx: &mut Tx<'_>, store: StoreId) -> Result<i64, Error> {
    account(tx, &format!("wallet:{}", store.0), Some(store), "wallet").await
}

/// The outcome of a transfer request carrying an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The transfer happened now.
    Done(i64),
    /// A transfer with this key and the same content already happened; nothing moved.
    Replayed(i64),
}

impl Moved {
    pub fn id(self) -> i64 {
        match self {
            Moved::Done(id) | Moved::Replayed(id) => id,
        }
    }
}

/// Moves `amount` from `debit` to `credit`. The idempotency key is claimed first (unique index),
/// so a concurrent duplicate waits and then fails instead of moving money twice.
#[allow(clippy::too_many_arguments)]
async fn transfer(
    tx: &mut Tx<'_>,
    idem_key: &str,
    store: Option<StoreId>,
    kind: TransferKind,
    debit: i64,
    credit: i64,
    amount: i64,
    refs: Refs,
    reason: Option<&str>,
    now: i64,
) -> Result<Moved, Error> {
    let existing: Option<(i64, String, i64, i64, i64)> =
        on_tx!(tx, |c| sqlx::query_as("SELECT id, kind, debit_account, credit_account, amount FROM transfers WHERE idem_key = $1")
            .bind(idem_key)
            .fetch_optional(c)
            .await)
        .map_err(db_err)?;
    if let Some((id, k, d, cr, a)) = existing {
        if k == kind.as_str() && d == debit && cr == credit && a == amount {
            return Ok(Moved::Replayed(id));
        }
        return Err(Error::conflict("idempotency_key_reused", "This idempotency key was already used for a different operation.")
            .with_details(json!({"key": idem_key})));
    }
    let (id,): (i64,) = on_tx!(tx, |c| sqlx::query_as(
        "INSERT INTO transfers (idem_key, store_id, kind, debit_account, credit_account, amount, campaign_id, hold_id, messages, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"
    )
    .bind(idem_key)
    .bind(store.map(|s| s.0))
    .bind(kind.as_str())
    .bind(debit)
    .bind(credit)
    .bind(amount)
    .bind(refs.campaign)
    .bind(refs.hold)
    .bind(refs.messages)
    .bind(reason)
    .bind(now)
    .fetch_one(c)
    .await)
    .map_err(|e| {
        // Another transaction claimed this key and has not committed yet: the caller retries and
        // then sees a replay. Never a second movement.
        if is_unique_violation(&e) {
            Error::conflict("idempotency_key_in_use", "Another request with this idempotency key is in progress. Retry shortly.")
                .with_details(json!({"key": idem_key}))
        } else {
            db_err(e)
        }
    })?;
    let debited = on_tx!(tx, |c| sqlx::query(
        "UPDATE accounts SET balance = balance - $2, version = version + 1 WHERE id = $1 AND (kind = 'funding' OR balance >= $2)"
    )
    .bind(debit)
    .bind(amount)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if debited == 0 {
        let (available,): (i64,) =
            on_tx!(tx, |c| sqlx::query_as("SELECT balance FROM accounts WHERE id = $1").bind(debit).fetch_one(c).await).map_err(db_err)?;
        return Err(insufficient(amount, available));
    }
    on_tx!(tx, |c| sqlx::query("UPDATE accounts SET balance = balance + $2, version = version + 1 WHERE id = $1")
        .bind(credit)
        .bind(amount)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(Moved::Done(id))
}

/// Credits bought by a store: funding → wallet.
pub async fn top_up(tx: &mut Tx<'_>, store: StoreId, amount: i64, reason: &str, idem_key: &str, now: i64) -> Result<Moved, Error> {
    if amount <= 0 {
        return Err(Error::invalid("invalid_amount", "The amount must be a whole number of credits greater than zero.")
            .with_details(json!({"field": "amount"})));
    }
    if amount > 1_000_000_000 {
        return Err(Error::invalid("invalid_amount", "The amount is larger than one top-up may be (1,000,000,000 credits).")
            .with_details(json!({"field": "amount"})));
    }
    let funding = account(tx, "funding", None, "funding").await?;
    let wallet = wallet_account(tx, store).await?;
    transfer(tx, idem_key, Some(store), TransferKind::TopUp, funding, wallet, amount, Refs::default(), Some(reason), now).await
}

#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct HoldRow {
    pub id: i64,
    pub store_id: i64,
    pub campaign_id: Option<i64>,
    pub account_id: i64,
    pub reserved: i64,
    pub charged: i64,
    pub released: i64,
    pub state: String,
    pub expires_at: i64,
}

const HOLD_COLUMNS: &str = "id, store_id, campaign_id, account_id, reserved, charged, released, state, expires_at";

/// Reserves `amount` credits for a campaign run: wallet → a new hold account. Fails with
/// `insufficient_credits` (and moves nothing) when the wallet cannot cover it.
pub async fn hold(
    tx: &mut Tx<'_>,
    store: StoreId,
    campaign: Option<i64>,
    amount: i64,
    idem_key: &str,
    ttl_ms: i64,
    now: i64,
) -> Result<HoldRow, Error> {
    if amount <= 0 {
        return Err(Error::invalid("invalid_amount", "A hold must reserve at least one credit."));
    }
    let wallet = wallet_account(tx, store).await?;
    // Creating the hold account first makes a concurrent duplicate wait here for the first one to
    // commit; the lookup below then sees its hold, so one key never yields two hold rows.
    let hold_account = account(tx, &format!("hold:{idem_key}"), Some(store), "hold").await?;
    let existing: Option<HoldRow> =
        on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {HOLD_COLUMNS} FROM holds WHERE account_id = $1")))
            .bind(hold_account)
            .fetch_optional(c)
            .await)
        .map_err(db_err)?;
    if let Some(h) = existing {
        if h.reserved == amount && h.store_id == store.0 {
            return Ok(h);
        }
        return Err(Error::conflict("idempotency_key_reused", "This idempotency key was already used for a different hold."));
    }
    let row: HoldRow = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO holds (store_id, campaign_id, account_id, reserved, state, expires_at, created_at) VALUES ($1, $2, $3, $4, 'active', $5, $6) RETURNING {HOLD_COLUMNS}"
    )))
    .bind(store.0)
    .bind(campaign)
    .bind(hold_account)
    .bind(amount)
    .bind(now + ttl_ms)
    .bind(now)
    .fetch_one(c)
    .await)
    .map_err(db_err)?;
    let refs = Refs { campaign, hold: Some(row.id), messages: None };
    transfer(tx, idem_key, Some(store), TransferKind::Hold, wallet, hold_account, amount, refs, None, now).await?;
    Ok(row)
}

pub async fn get_hold(tx: &mut Tx<'_>, hold: i64) -> Result<HoldRow, Error> {
    on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1")))
        .bind(hold)
        .fetch_optional(c)
        .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("hold"))
}

/// Counts `amount` of an active hold's remainder into its `charged` or `released` column (a
/// literal of the caller's), if that much is left: the hold's account, store and campaign.
async fn take_from_hold(tx: &mut Tx<'_>, hold: i64, column: &'static str, amount: i64) -> Result<Option<(i64, i64, Option<i64>)>, Error> {
    on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE holds SET {column} = {column} + $2 WHERE id = $1 AND state = 'active' AND charged + released + $2 <= reserved
         RETURNING account_id, store_id, campaign_id"
    )))
    .bind(hold)
    .bind(amount)
    .fetch_optional(c)
    .await)
    .map_err(db_err)
}

/// Charges accepted messages against an active hold: hold → revenue. Refused once the hold is
/// finalized (released or expired) or when it would exceed what was reserved.
pub async fn charge(tx: &mut Tx<'_>, hold: i64, amount: i64, messages: i64, idem_key: &str, now: i64) -> Result<Moved, Error> {
    if amount < 0 {
        return Err(Error::invalid("invalid_amount", "A charge cannot be negative."));
    }
    if amount == 0 {
        return Ok(Moved::Done(0));
    }
    // A replay must move nothing, not even the hold's `charged` counter, whatever state the hold
    // is in by now.
    if let Some(id) = charge_replayed(tx, hold, amount, idem_key).await? {
        return Ok(Moved::Replayed(id));
    }
    let claimed = take_from_hold(tx, hold, "charged", amount).await?;
    let Some((hold_account, store, campaign)) = claimed else {
        // A duplicate may have committed while this waited for the hold's row lock.
        if let Some(id) = charge_replayed(tx, hold, amount, idem_key).await? {
            return Ok(Moved::Replayed(id));
        }
        return Err(Error::conflict(
            crate::domain::error::code::HOLD_CLOSED,
            "The credit reservation is closed or too small for this charge.",
        ));
    };
    let store = StoreId(store);
    let revenue = account(tx, &format!("revenue:{}", store.0), Some(store), "revenue").await?;
    let refs = Refs { campaign, hold: Some(hold), messages: Some(messages) };
    match transfer(tx, idem_key, Some(store), TransferKind::Charge, hold_account, revenue, amount, refs, None, now).await? {
        Moved::Done(id) => {
            if !idem_key.ends_with(":again") && crate::faults::hit(|| crate::faults::DOUBLE_CHARGE.to_string()) {
                // The deliberate bug the soak's own test arms: the same charge again, when the hold covers it.
                let _ = Box::pin(charge(tx, hold, amount, messages, &format!("{idem_key}:again"), now)).await;
            }
            Ok(Moved::Done(id))
        }
        Moved::Replayed(id) => {
            // Same race, seen after the claim: give the claim back so the counter matches the money.
            on_tx!(tx, |c| sqlx::query("UPDATE holds SET charged = charged - $2 WHERE id = $1")
                .bind(hold)
                .bind(amount)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))
            .map_err(db_err)?;
            Ok(Moved::Replayed(id))
        }
    }
}

/// Charges a store's wallet directly (wallet → revenue) when it covers `amount`; otherwise moves
/// nothing and returns `false` (a wallet never goes below zero). For a message the provider
/// confirmed after its run's hold had closed. A replay of the same key returns `true` and moves
/// nothing.
pub async fn charge_wallet(tx: &mut Tx<'_>, store: StoreId, amount: i64, refs: Refs, idem_key: &str, now: i64) -> Result<bool, Error> {
    if amount <= 0 {
        return Ok(false);
    }
    let wallet = wallet_account(tx, store).await?;
    // Read under the row lock (SQLite: the write lock the transaction holds), so the balance cannot
    // fall between this check and the transfer, which would then fail after writing its row.
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let (balance,): (i64,) =
        on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT balance FROM accounts WHERE id = $1{lock}")))
            .bind(wallet)
            .fetch_one(c)
            .await)
        .map_err(db_err)?;
    let replayed: Option<(i64,)> =
        on_tx!(tx, |c| sqlx::query_as("SELECT id FROM transfers WHERE idem_key = $1").bind(idem_key).fetch_optional(c).await)
            .map_err(db_err)?;
    if replayed.is_some() {
        return Ok(true);
    }
    if balance < amount {
        return Ok(false);
    }
    let revenue = account(tx, &format!("revenue:{}", store.0), Some(store), "revenue").await?;
    transfer(tx, idem_key, Some(store), TransferKind::Charge, wallet, revenue, amount, refs, Some("confirmed after the run ended"), now)
        .await?;
    Ok(true)
}

/// The earlier charge with this key, if any: `Some` when it is the same charge, an error when the
/// key was used for something else.
async fn charge_replayed(tx: &mut Tx<'_>, hold: i64, amount: i64, idem_key: &str) -> Result<Option<i64>, Error> {
    let existing: Option<(i64, String, Option<i64>, i64)> =
        on_tx!(tx, |c| sqlx::query_as("SELECT id, kind, hold_id, amount FROM transfers WHERE idem_key = $1")
            .bind(idem_key)
            .fetch_optional(c)
            .await)
        .map_err(db_err)?;
    match existing {
        None => Ok(None),
        Some((id, kind, h, a)) if kind == TransferKind::Charge.as_str() && h == Some(hold) && a == amount => Ok(Some(id)),
        Some(_) => Err(Error::conflict("idempotency_key_reused", "This idempotency key was already used for a different operation.")
            .with_details(json!({"key": idem_key}))),
    }
}

/// Finalizes a hold exactly once and returns the remainder to the wallet. A hold that is already
/// finalized returns 0 and moves nothing, so completion, cancel and expiry may race safely.
pub async fn finalize(tx: &mut Tx<'_>, hold: i64, kind: TransferKind, now: i64) -> Result<i64, Error> {
    Ok(finalize_once(tx, hold, kind, now).await?.unwrap_or(0))
}

/// `None` when the hold was already finalized (or does not exist); else the remainder returned.
async fn finalize_once(tx: &mut Tx<'_>, hold: i64, kind: TransferKind, now: i64) -> Result<Option<i64>, Error> {
    let state = if kind == TransferKind::Expiry { "expired" } else { "released" };
    // Expiry never closes the hold of a run that can still send: that run is stopped first
    // (`operations::stop_expired_runs`), and its cancel keeps the hold open for in-flight charges.
    let guard = if kind == TransferKind::Expiry { RUN_CAN_SEND } else { "" };
    let done: Option<(i64, i64, Option<i64>)> = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE holds SET state = $2, released = reserved - charged, finalized_at = $3 WHERE id = $1 AND state = 'active'{guard}
         RETURNING account_id, store_id, campaign_id"
    )))
    .bind(hold)
    .bind(state)
    .bind(now)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    let Some((hold_account, store, campaign)) = done else { return Ok(None) };
    // What is left in the clearing account (a cancel may already have returned part of it).
    let (remainder,): (i64,) =
        on_tx!(tx, |c| sqlx::query_as("SELECT balance FROM accounts WHERE id = $1").bind(hold_account).fetch_one(c).await)
            .map_err(db_err)?;
    if remainder > 0 {
        let store = StoreId(store);
        let wallet = wallet_account(tx, store).await?;
        let refs = Refs { campaign, hold: Some(hold), messages: None };
        transfer(tx, &format!("release:{hold}"), Some(store), kind, hold_account, wallet, remainder, refs, None, now).await?;
    }
    Ok(Some(remainder))
}

/// Moves an active hold's deadline to `until` if that is later, so that charges still on their
/// way (in-flight batches) find it open.
pub async fn keep_open_until(tx: &mut Tx<'_>, hold: i64, until: i64) -> Result<(), Error> {
    on_tx!(tx, |c| sqlx::query("UPDATE holds SET expires_at = $2 WHERE id = $1 AND state = 'active' AND expires_at < $2")
        .bind(hold)
        .bind(until)
        .execute(c)
        .await
        .map(|_| ()))
    .map_err(db_err)
}

/// Returns part of an active hold to the wallet without closing it: on cancel, everything the
/// in-flight batches cannot be charged. The hold stays open for their charges.
pub async fn release_part(tx: &mut Tx<'_>, hold: i64, amount: i64, idem_key: &str, now: i64) -> Result<i64, Error> {
    if amount <= 0 {
        return Ok(0);
    }
    let claimed = take_from_hold(tx, hold, "released", amount).await?;
    let Some((hold_account, store, campaign)) = claimed else { return Ok(0) };
    let store = StoreId(store);
    let wallet = wallet_account(tx, store).await?;
    let refs = Refs { campaign, hold: Some(hold), messages: None };
    transfer(tx, idem_key, Some(store), TransferKind::Release, hold_account, wallet, amount, refs, None, now).await?;
    Ok(amount)
}

/// Added to a condition on `holds`: the hold is not the one of a run that can still send.
const RUN_CAN_SEND: &str =
    " AND NOT EXISTS (SELECT 1 FROM campaigns rc WHERE rc.hold_id = holds.id AND rc.status IN ('sending', 'paused'))";

/// Expires holds past their deadline (24 h by default), each in its own transaction. Returns how
/// many this call expired (a hold finalized meanwhile by someone else is not counted).
pub async fn expire_due(db: &Db, now: i64) -> Result<u64, Error> {
    let due: Vec<(i64,)> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM holds WHERE state = 'active' AND expires_at <= $1{RUN_CAN_SEND} ORDER BY expires_at LIMIT 500"
    )))
    .bind(now)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let mut n = 0;
    for (id,) in due {
        let mut tx = db.begin().await?;
        let expired = finalize_once(&mut tx, id, TransferKind::Expiry, now).await?;
        tx.commit().await?;
        n += u64::from(expired.is_some());
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Wallet {
    /// Everything the store owns: available plus held.
    pub balance: i64,
    /// Reserved by running campaigns.
    pub held: i64,
    /// What a new campaign can use.
    pub available: i64,
}

pub async fn wallet(db: &Db, store: StoreId) -> Result<Wallet, Error> {
    let (available, held): (Option<i64>, Option<i64>) = on_db!(db, |p| sqlx::query_as(
        "SELECT (SELECT balance FROM accounts WHERE key = $1),
                (SELECT CAST(SUM(a.balance) AS BIGINT) FROM holds h JOIN accounts a ON a.id = h.account_id WHERE h.store_id = $2 AND h.state = 'active')"
    )
    .bind(format!("wallet:{}", store.0))
    .bind(store.0)
    .fetch_one(p)
    .await)
    .map_err(db_err)?;
    let (available, held) = (available.unwrap_or(0), held.unwrap_or(0));
    Ok(Wallet { balance: available + held, held, available })
}

/// The installation's open holds, for the operator's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenHolds {
    pub open: i64,
    /// Credits they still reserve.
    pub credits: i64,
    /// Open past their deadline: expiry (engine maintenance) is behind or not running.
    pub overdue: i64,
}

/// One pass over the active holds (through `holds_due`): about one per running campaign run.
pub async fn open_holds(db: &Db, now: i64) -> Result<OpenHolds, Error> {
    let (open, credits, overdue): (i64, Option<i64>, Option<i64>) = on_db!(db, |p| sqlx::query_as(
        "SELECT COUNT(*), CAST(SUM(a.balance) AS BIGINT), CAST(SUM(CASE WHEN h.expires_at <= $1 THEN 1 ELSE 0 END) AS BIGINT)
         FROM holds h JOIN accounts a ON a.id = h.account_id WHERE h.state = 'active'"
    )
    .bind(now)
    .fetch_one(p)
    .await)
    .map_err(db_err)?;
    Ok(OpenHolds { open, credits: credits.unwrap_or(0), overdue: overdue.unwrap_or(0) })
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    kind: String,
    amount: i64,
    campaign_id: Option<i64>,
    messages: Option<i64>,
    reason: Option<String>,
    created_at: i64,
}

/// The store's ledger, newest first.
pub async fn entries(db: &Db, store: StoreId, cursor: Option<&str>, limit: Option<i64>) -> Result<serde_json::Value, Error> {
    let limit = clamp_limit(limit, 50, 500)?;
    let before = match parse_cursor(cursor)? {
        0 => i64::MAX,
        c => c,
    };
    let mut rows: Vec<EntryRow> = on_db!(db, |p| sqlx::query_as(
        "SELECT id, kind, amount, campaign_id, messages, reason, created_at FROM transfers WHERE store_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    )
    .bind(store.0)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let next = crate::store::next_cursor(&mut rows, limit, |r| r.id);
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            // Signed from the store's point of view: what it does to the credits it can still spend.
            let effect = match r.kind.as_str() {
                "top_up" | "release" | "expiry" | "adjustment" => r.amount,
                "hold" => -r.amount,
                _ => 0,
            };
            json!({"id": r.id, "kind": r.kind, "amount": r.amount, "available_effect": effect, "campaign_id": r.campaign_id,
                   "messages": r.messages, "reason": r.reason, "created_at": rfc3339(r.created_at)})
        })
        .collect();
    Ok(json!({"items": items, "next_cursor": next}))
}
