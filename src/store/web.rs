//! Numbers only the web pages show (the dashboard's tiles). Everything else the pages need comes
//! from the functions the JSON API calls.

use super::{Db, StoreId, db_err, on_db};
use crate::domain::Error;
use crate::domain::time::{parse_rfc3339, rfc3339};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendTotals {
    pub sent_today: i64,
    pub sent_month: i64,
    /// Over all the store's campaigns: what the provider accepted, and what was reported delivered.
    pub sent_all: i64,
    pub delivered_all: i64,
}

/// Midnight of `now`'s day and of the first of its month, in UTC (the test-send limit's days;
/// the pages use the store's own zone, `http::web::tz`).
pub fn day_and_month_start(now: i64) -> (i64, i64) {
    let day = now - now.rem_euclid(86_400_000);
    let month = parse_rfc3339(&format!("{}-01T00:00:00Z", &rfc3339(now)[..7])).unwrap_or(day);
    (day, month)
}

/// Sent today and this month (from `day` and `month`, the store's local midnights) are the
/// messages of the store's charges: one charge per accepted batch, carrying its message count,
/// read through the store's own transfers — not every store's sent messages of the month. (A
/// message confirmed by a late delivery report after its hold closed, and which the wallet could
/// no longer cover, is not charged and so not counted.)
/// The totals come from the campaigns' counters.
pub async fn send_totals(db: &Db, store: StoreId, day: i64, month: i64) -> Result<SendTotals, Error> {
    let (today, this_month): (Option<i64>, Option<i64>) = on_db!(db, |p| sqlx::query_as(
        "SELECT CAST(SUM(CASE WHEN created_at >= $2 THEN messages ELSE 0 END) AS BIGINT), CAST(SUM(messages) AS BIGINT)
         FROM transfers WHERE store_id = $1 AND kind = 'charge' AND created_at >= $3"
    )
    .bind(store.0)
    .bind(day)
    .bind(month.min(day))
    .fetch_one(p)
    .await)
    .map_err(db_err)?;
    let (sent, delivered): (Option<i64>, Option<i64>) = on_db!(db, |p| sqlx::query_as(
        "SELECT CAST(SUM(sent) AS BIGINT), CAST(SUM(delivered) AS BIGINT) FROM campaigns WHERE store_id = $1"
    )
    .bind(store.0)
    .fetch_one(p)
    .await)
    .map_err(db_err)?;
    Ok(SendTotals {
        sent_today: today.unwrap_or(0),
        sent_month: this_month.unwrap_or(0),
        sent_all: sent.unwrap_or(0),
        delivered_all: delivered.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_and_month_start_in_utc() {
        let now = crate::domain::time::parse_rfc3339("2026-12-06T21:59:08Z").unwrap();
        let (d, m) = super::day_and_month_start(now);
        assert_eq!(crate::domain::time::rfc3339(d), "2026-12-06T00:00:00.000Z");
        assert_eq!(crate::domain::time::rfc3339(m), "2026-12-01T00:00:00.000Z");
    }
}
