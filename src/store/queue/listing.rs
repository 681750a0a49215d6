//! Reading a campaign's queue back: progress from its counters, and its messages page by page.

use super::{FAILURES, with_texts};
use crate::domain::Error;
use crate::domain::campaign::Status;
use crate::domain::failure::FailureCode;
use crate::domain::time::rfc3339;
use crate::store::campaigns::{self, CampaignRow};
use crate::store::{Db, StoreId, clamp_limit, db_err, on_db, parse_cursor};
use serde_json::{Value, json};

/// `GET …/progress`: read from counters, the same cost for 10 messages as for 10,000,000.
pub async fn progress(db: &Db, store: StoreId, id: i64, now: i64) -> Result<Progress, Error> {
    let c = campaigns::get(db, store, id).await?;
    Ok(Progress::of(&c, now))
}

/// A campaign's progress, as `GET …/progress` and the live events show it. The fields are in
/// alphabetical order, the order the JSON had when it was built as a `serde_json::Value`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub cancelled: i64,
    pub delivered: i64,
    pub eta_seconds: Option<i64>,
    pub failed: i64,
    pub finished_at: Option<String>,
    pub pending: i64,
    pub processed: i64,
    /// Percent of the messages processed.
    pub progress: i64,
    pub rate_per_second: f64,
    pub sending: i64,
    pub sent: i64,
    /// Of `cancelled`: skipped at claim time because the contact had opted out meanwhile.
    pub skipped_opted_out: i64,
    pub started_at: Option<String>,
    pub status: String,
    pub total: i64,
    /// Messages whose final delivery report was a failure (undelivered, expired, rejected).
    pub undelivered: i64,
    pub unknown: i64,
}

impl Progress {
    pub fn of(c: &CampaignRow, now: i64) -> Progress {
        let processed = c.sent + c.failed + c.cancelled + c.unknown;
        let pct =
            (processed * 100).checked_div(c.total).unwrap_or(if matches!(c.status(), Status::Sent | Status::Failed) { 100 } else { 0 });
        let end = c.finished_at.unwrap_or(now);
        let rate = match c.started_at {
            Some(s) if end > s && processed > 0 => processed as f64 * 1000.0 / (end - s) as f64,
            _ => 0.0,
        };
        let remaining = c.pending + c.sending;
        let eta = if c.finished_at.is_some() || remaining == 0 {
            Some(0)
        } else if rate > 0.0 {
            Some((remaining as f64 / rate).ceil() as i64)
        } else {
            None
        };
        Progress {
            status: c.status.clone(),
            total: c.total,
            pending: c.pending,
            sending: c.sending,
            sent: c.sent,
            failed: c.failed,
            cancelled: c.cancelled,
            skipped_opted_out: c.skipped_opted_out,
            unknown: c.unknown,
            delivered: c.delivered,
            undelivered: c.undelivered,
            processed,
            progress: pct,
            rate_per_second: (rate * 10.0).round() / 10.0,
            eta_seconds: eta,
            started_at: c.started_at.map(rfc3339),
            finished_at: c.finished_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageFilter {
    pub status: Option<String>,
    /// A failure category (see `domain::failure::FailureCode`), e.g. `invalid_number`.
    pub category: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    contact_id: Option<i64>,
    phone: String,
    text: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    segments: i64,
    cost: i64,
    status: String,
    delivery_status: Option<String>,
    provider_message_id: Option<String>,
    attempts: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
    updated_at: i64,
}

pub async fn list(db: &Db, store: StoreId, campaign: i64, f: MessageFilter) -> Result<Value, Error> {
    let c = campaigns::get(db, store, campaign).await?;
    let limit = clamp_limit(f.limit, 50, 500)?;
    let after = parse_cursor(f.cursor.as_deref())?;
    let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s @ ("pending" | "sending" | "sent" | "failed" | "cancelled" | "unknown")) => Some(s.to_string()),
        Some(s) => {
            return Err(
                Error::invalid("invalid_status", format!("\"{s}\" is not a message status.")).with_details(json!({"field": "status"}))
            );
        }
    };
    let category = match f.category.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(c) if FailureCode::parse(c).is_some() => Some(c.to_string()),
        Some(c) => {
            return Err(Error::invalid("invalid_category", format!("\"{c}\" is not a failure category."))
                .with_details(json!({"field": "category"})));
        }
    };
    // A campaign's messages lie between its first and last id, so a page is a primary-key walk of
    // that range; failures (rare) have their own index.
    let failures = category.is_some() || matches!(status.as_deref(), Some("failed" | "unknown"));
    let scope = if failures {
        format!("campaign_id = $1 AND {}", FAILURES)
    } else {
        "id BETWEEN (SELECT first_message_id FROM campaigns WHERE id = $1) AND (SELECT last_message_id FROM campaigns WHERE id = $1) AND campaign_id = $1".into()
    };
    let mut rows: Vec<MessageRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, contact_id, phone, text, first_name, last_name, segments, cost, status, delivery_status, provider_message_id, attempts, error_code, error_message, created_at, sent_at, updated_at
         FROM messages WHERE {scope} AND store_id = $2 AND NOT test AND id > $3 AND ($4 IS NULL OR status = $4) AND ($6 IS NULL OR error_code = $6) ORDER BY id LIMIT $5"
    )))
    .bind(campaign)
    .bind(store.0)
    .bind(after)
    .bind(&status)
    .bind(limit + 1)
    .bind(&category)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let next = crate::store::next_cursor(&mut rows, limit, |r| r.id);
    let items: Vec<Value> = with_texts(db, &c, rows, |m| (m.id, m.text.take(), m.first_name.take(), m.last_name.take()))
        .await?
        .into_iter()
        .map(|(m, text)| {
            json!({"id": m.id, "contact_id": m.contact_id, "phone": m.phone, "text": text, "segments": m.segments, "cost": m.cost, "status": m.status,
                   "delivery_status": m.delivery_status, "provider_message_id": m.provider_message_id, "attempts": m.attempts,
                   "error_code": m.error_code, "error_message": m.error_message, "created_at": rfc3339(m.created_at),
                   "sent_at": m.sent_at.map(rfc3339), "updated_at": rfc3339(m.updated_at)})
        })
        .collect();
    Ok(json!({"items": items, "next_cursor": next}))
}
