//! Sender names need the platform operator's approval: a sender name is what the recipient's
//! phone shows as the author, so any store could otherwise pose as a bank. A store asks with
//! `PATCH /api/store`; its messages keep going out under its approved name until the operator
//! approves (`POST /api/admin/senders/{id}/approve`) or rejects the request.

use super::{Db, StoreId, Tx, clamp_limit, db_err, next_cursor, on_db, on_tx, parse_cursor};
use crate::domain::tenant::PLATFORM_SENDER;
use crate::domain::time::rfc3339;
use crate::domain::{Error, Kind};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SenderRequest {
    pub id: i64,
    pub store_id: i64,
    pub sender_name: String,
    pub status: String,
    pub requested_at: i64,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

impl SenderRequest {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "sender_name": self.sender_name, "status": self.status,
            "requested_at": rfc3339(self.requested_at), "decided_at": self.decided_at.map(rfc3339), "reason": self.reason,
        })
    }
}

/// A sender name request as `SenderRequest::to_json` shows it: its shape for the OpenAPI document
/// (nothing constructs it).
#[derive(utoipa::ToSchema)]
pub struct SenderRequestJson {
    pub id: i64,
    pub sender_name: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub requested_at: String,
    pub decided_at: Option<String>,
    /// Why the operator rejected it.
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, store_id, sender_name, status, requested_at, decided_at, reason";

/// `$1` store, `$2` sender: true when the store may send under it (besides the platform's name).
const APPROVED: &str = "SELECT EXISTS (SELECT 1 FROM stores WHERE id = $1 AND sender_name = $2)
    OR EXISTS (SELECT 1 FROM sender_requests WHERE store_id = $1 AND sender_name = $2 AND status = 'approved')";

/// Whether the store may send under `sender` without asking: the platform's own name, the
/// store's current one, or one the operator approved for it before.
async fn approved_in(tx: &mut Tx<'_>, store: StoreId, sender: &str) -> Result<bool, Error> {
    if sender == PLATFORM_SENDER {
        return Ok(true);
    }
    let (ok,): (bool,) = on_tx!(tx, |c| sqlx::query_as(APPROVED).bind(store.0).bind(sender).fetch_one(c).await).map_err(db_err)?;
    Ok(ok)
}

/// For a campaign's own sender: refused unless approved for the store (see `approved_in`).
pub async fn require_approved(db: &Db, store: StoreId, sender: &str) -> Result<(), Error> {
    if sender == PLATFORM_SENDER {
        return Ok(());
    }
    let (ok,): (bool,) = on_db!(db, |p| sqlx::query_as(APPROVED).bind(store.0).bind(sender).fetch_one(p).await).map_err(db_err)?;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "sender_not_approved",
            format!(
                "\"{sender}\" is not an approved sender name for this store. Ask for it in the store settings; the platform operator approves sender names."
            ),
        )
        .with_details(json!({"field": "sender"})))
    }
}

/// A store asks to send as `sender` (inside the settings update's transaction). A request still
/// waiting is withdrawn either way: the newest wish counts. Returns the name to apply at once
/// when it needs no approval, `None` when it now waits for the operator (or is already the
/// store's name).
pub async fn request_in(tx: &mut Tx<'_>, store: StoreId, sender: &str, now: i64) -> Result<Option<String>, Error> {
    on_tx!(tx, |c| sqlx::query(
        "UPDATE sender_requests SET status = 'withdrawn', decided_at = $2 WHERE store_id = $1 AND status = 'pending'"
    )
    .bind(store.0)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if approved_in(tx, store, sender).await? {
        return Ok(Some(sender.to_string()));
    }
    on_tx!(tx, |c| sqlx::query("INSERT INTO sender_requests (store_id, sender_name, status, requested_at) VALUES ($1, $2, 'pending', $3)")
        .bind(store.0)
        .bind(sender)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(None)
}

/// The store's latest request that was not withdrawn: what its settings page shows.
pub async fn latest(db: &Db, store: StoreId) -> Result<Option<SenderRequest>, Error> {
    on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sender_requests WHERE store_id = $1 AND status <> 'withdrawn' ORDER BY id DESC LIMIT 1"
    )))
    .bind(store.0)
    .fetch_optional(p)
    .await)
    .map_err(db_err)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SenderFilter {
    /// `pending` (the default), `approved`, `rejected` or `all`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The operator's queue, oldest first, with the store each request is for.
pub async fn list(db: &Db, f: SenderFilter) -> Result<Value, Error> {
    let status = match f.status.as_deref().unwrap_or("pending") {
        "all" => None,
        s @ ("pending" | "approved" | "rejected") => Some(s.to_string()),
        other => {
            return Err(Error::invalid("invalid_status", format!("\"{other}\" is not pending, approved, rejected or all."))
                .with_details(json!({"field": "status"})));
        }
    };
    let limit = clamp_limit(f.limit, 100, 500)?;
    let after = parse_cursor(f.cursor.as_deref())?;
    type Row = (i64, i64, String, String, i64, Option<i64>, Option<String>, String, String);
    let mut rows: Vec<Row> = on_db!(db, |p| sqlx::query_as(
        "SELECT r.id, r.store_id, r.sender_name, r.status, r.requested_at, r.decided_at, r.reason, s.name, s.sender_name
         FROM sender_requests r JOIN stores s ON s.id = r.store_id
         WHERE r.id > $1 AND r.status <> 'withdrawn' AND ($2 IS NULL OR r.status = $2)
         ORDER BY r.id LIMIT $3"
    )
    .bind(after)
    .bind(&status)
    .bind(limit + 1)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let next = next_cursor(&mut rows, limit, |r| r.0);
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, store_id, sender_name, status, requested_at, decided_at, reason, store_name, current)| {
            let mut v = SenderRequest { id, store_id, sender_name, status, requested_at, decided_at, reason }.to_json();
            v["store_id"] = json!(store_id);
            v["store_name"] = json!(store_name);
            v["current_sender_name"] = json!(current);
            v
        })
        .collect();
    Ok(json!({"items": items, "next_cursor": next}))
}

/// Decides a pending request; approving switches the store's sender in the same transaction.
/// Deciding one that is no longer pending is a conflict (it was decided, or the store replaced it).
pub async fn decide(db: &Db, id: i64, approve: bool, reason: Option<&str>, now: i64) -> Result<SenderRequest, Error> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 200) {
        return Err(Error::invalid_field("reason", "Give a reason of at most 200 characters (the store sees it)."));
    }
    let mut tx = db.begin().await?;
    let decided: Option<SenderRequest> = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE sender_requests SET status = $2, decided_at = $3, reason = $4 WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(if approve { "approved" } else { "rejected" })
    .bind(now)
    .bind(reason)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    let Some(req) = decided else {
        let status: Option<(String,)> =
            on_tx!(&mut tx, |c| sqlx::query_as("SELECT status FROM sender_requests WHERE id = $1").bind(id).fetch_optional(c).await)
                .map_err(db_err)?;
        return Err(match status {
            None => Error::not_found("sender request"),
            Some((s,)) => Error::new(
                Kind::Conflict,
                "sender_request_decided",
                format!("This request is no longer waiting for a decision (it is {s})."),
            )
            .with_details(json!({"status": s})),
        });
    };
    if approve {
        on_tx!(&mut tx, |c| sqlx::query("UPDATE stores SET sender_name = $2, updated_at = $3 WHERE id = $1")
            .bind(req.store_id)
            .bind(&req.sender_name)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    tx.commit().await?;
    Ok(req)
}
