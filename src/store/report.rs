//! `GET /api/campaigns/{id}/report`: what a campaign achieved once sent — sends, deliveries,
//! engagement, credits — and an hourly series of sends, deliveries and clicks for a chart.
//! Counts come from the campaign's counters; the series and send times walk the campaign's own
//! message id range (its primary-key range), never another store's rows.

use super::{Db, StoreId, campaigns, db_err, on_db};
use crate::domain::Error;
use crate::domain::time::rfc3339;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const HOUR_MS: i64 = 3_600_000;
/// A series longer than this many hours lists only the hours with activity.
const MAX_FILLED_HOURS: i64 = 24 * 62;

/// Clicks on tracked links and unsubscribes caused by a campaign. Recorded by the link tracking
/// and unsubscribe pages; a campaign that has none has zeros.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Engagement {
    pub clicks_unique: i64,
    pub clicks_total: i64,
    pub unsubscribes: i64,
    /// Clicks per hour (hour = epoch ms / 3,600,000).
    pub clicks_by_hour: Vec<(i64, i64)>,
}

/// Clicks and unsubscribes from the campaign's counters (moved with each click and confirmation);
/// the hourly clicks from its counted visits.
async fn engagement(db: &Db, store: StoreId, c: &campaigns::CampaignRow) -> Result<Engagement, Error> {
    let clicks_by_hour: Vec<(i64, i64)> = on_db!(db, |p| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT at / {HOUR_MS}, COUNT(*) FROM clicks WHERE campaign_id = $1 AND store_id = $2 AND kind = 'click' GROUP BY at / {HOUR_MS}"
    )))
    .bind(c.id)
    .bind(store.0)
    .fetch_all(p)
    .await
    })
    .map_err(db_err)?;
    Ok(Engagement { clicks_unique: c.unique_clicks, clicks_total: c.clicks, unsubscribes: c.unsubscribed, clicks_by_hour })
}

/// Per cent with one decimal; 0 when there is nothing to divide by.
fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 { 0.0 } else { (part as f64 * 1000.0 / whole as f64).round() / 10.0 }
}

pub async fn campaign_report(db: &Db, store: StoreId, id: i64) -> Result<Value, Error> {
    let c = campaigns::get(db, store, id).await?;
    let e = engagement(db, store, &c).await?;
    let (charged, refunded): (Option<i64>, Option<i64>) = on_db!(db, |p| sqlx::query_as(
        "SELECT CAST(SUM(CASE WHEN kind = 'charge' THEN amount ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN kind IN ('release', 'expiry') THEN amount ELSE 0 END) AS BIGINT)
         FROM transfers WHERE campaign_id = $1 AND store_id = $2"
    )
    .bind(id)
    .bind(store.0)
    .fetch_one(p)
    .await)
    .map_err(db_err)?;
    // The run's messages by primary key, then checked to be this campaign's (and so this store's).
    const RANGE: &str = "id BETWEEN (SELECT first_message_id FROM campaigns WHERE id = $1 AND store_id = $2)
        AND (SELECT last_message_id FROM campaigns WHERE id = $1 AND store_id = $2) AND campaign_id = $1 AND store_id = $2 AND NOT test";
    let sends: Vec<(i64, i64, i64, i64)> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sent_at / {HOUR_MS}, COUNT(*), MIN(sent_at), MAX(sent_at) FROM messages WHERE {RANGE} AND sent_at IS NOT NULL GROUP BY sent_at / {HOUR_MS}"
    )))
    .bind(id)
    .bind(store.0)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let deliveries: Vec<(i64, i64)> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT delivery_at / {HOUR_MS}, COUNT(*) FROM messages WHERE {RANGE} AND delivery_status = 'delivered' GROUP BY delivery_at / {HOUR_MS}"
    )))
    .bind(id)
    .bind(store.0)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;

    let first_sent = sends.iter().map(|s| s.2).min();
    let last_sent = sends.iter().map(|s| s.3).max();
    // hour → (sends, deliveries, clicks)
    let mut hours: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for (h, n, _, _) in &sends {
        hours.entry(*h).or_default().0 += n;
    }
    for (h, n) in &deliveries {
        hours.entry(*h).or_default().1 += n;
    }
    for (h, n) in &e.clicks_by_hour {
        hours.entry(*h).or_default().2 += n;
    }
    // Empty hours between the first and the last are listed too, so a chart needs no gap logic.
    if let (Some(&lo), Some(&hi)) = (hours.keys().next(), hours.keys().next_back())
        && hi - lo <= MAX_FILLED_HOURS
    {
        for h in lo..=hi {
            hours.entry(h).or_default();
        }
    }
    let series: Vec<Value> = hours
        .into_iter()
        .map(|(h, (sends, deliveries, clicks))| json!({"hour": rfc3339(h * HOUR_MS), "sends": sends, "deliveries": deliveries, "clicks": clicks}))
        .collect();
    Ok(json!({
        "campaign_id": c.id,
        "status": c.status,
        "sent": c.sent,
        "delivered": c.delivered,
        "undelivered": c.undelivered,
        "delivery_rate": percent(c.delivered, c.sent),
        "clicks_unique": e.clicks_unique,
        "clicks_total": e.clicks_total,
        // Unique clickers per message sent.
        "click_through_rate": percent(e.clicks_unique, c.sent),
        "unsubscribes": e.unsubscribes,
        "credits_charged": charged.unwrap_or(0),
        "credits_refunded": refunded.unwrap_or(0),
        "first_sent_at": first_sent.map(rfc3339),
        "last_sent_at": last_sent.map(rfc3339),
        "series": series,
    }))
}
