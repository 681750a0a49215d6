//! Clicks on tracked links: resolving a link code to its address, recording the visit, and the
//! campaign's clicks per link.

use super::{Db, StoreId, db_err, on_db, on_tx};
use crate::domain::Error;
use crate::domain::links;
use crate::domain::message::link_targets;
use crate::domain::unsubscribe::CodeKey;
use serde_json::{Value, json};

/// What kind of visit a request is: only a person's GET is a click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Click,
    /// A link preview or crawler (by its user agent).
    Bot,
    /// A `HEAD` request: something checking the link, not opening it.
    Head,
}

#[derive(sqlx::FromRow)]
struct Target {
    store_id: i64,
    campaign_id: i64,
    contact_id: Option<i64>,
    test: bool,
    message: String,
    greek_gsm: bool,
}

/// Resolves a link code and records the visit; returns the address to redirect to, or `None`
/// when the code names no link. A counted click (a person's GET on a campaign message's link)
/// moves the campaign's `clicks`, and its `unique_clicks` when it is the recipient's first, in
/// the transaction that records it. Previews, HEAD requests and test messages' links are recorded
/// and counted nowhere.
pub async fn visit(db: &Db, key: &CodeKey, code: &str, visit: Visit, user_agent: Option<&str>, now: i64) -> Result<Option<String>, Error> {
    let Some((message, index)) = links::decode(&links::key(key), code) else { return Ok(None) };
    let target: Option<Target> = on_db!(db, |p| sqlx::query_as(
        "SELECT m.store_id, m.campaign_id, m.contact_id, m.test, c.message, c.greek_gsm
         FROM messages m JOIN campaigns c ON c.id = m.campaign_id AND c.store_id = m.store_id WHERE m.id = $1"
    )
    .bind(message)
    .fetch_optional(p)
    .await)
    .map_err(db_err)?;
    let Some(t) = target else { return Ok(None) };
    // A started campaign's message is frozen, so its n-th link is the one its messages carry.
    let Some(url) = link_targets(&t.message, t.greek_gsm).map_err(Error::internal)?.into_iter().nth(index) else { return Ok(None) };
    let kind = match visit {
        Visit::Click if t.test => "test",
        Visit::Click => "click",
        Visit::Bot => "bot",
        Visit::Head => "head",
    };
    // Only the first 500 characters of a user agent are kept: enough to tell browsers apart.
    let ua = user_agent.map(|u| u.chars().take(500).collect::<String>());
    let mut tx = db.begin().await?;
    if let super::Tx::Pg(c) = &mut tx {
        // A click's commit does not wait for the disk: a crash may lose the last fraction of a
        // second of clicks (statistics), while every redirect waiting on a WAL flush costs the
        // recipient milliseconds. The rows stay consistent either way (the transaction is atomic).
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut **c).await.map_err(db_err)?;
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO clicks (store_id, campaign_id, message_id, contact_id, link_index, kind, user_agent, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(t.store_id)
    .bind(t.campaign_id)
    .bind(message)
    .bind(t.contact_id)
    .bind(index as i64)
    .bind(kind)
    .bind(&ua)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if kind == "click" {
        let first = on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO clicked_messages (message_id, campaign_id, at) VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING"
        )
        .bind(message)
        .bind(t.campaign_id)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE campaigns SET clicks = clicks + 1, unique_clicks = unique_clicks + $3 WHERE id = $1 AND store_id = $2"
        )
        .bind(t.campaign_id)
        .bind(t.store_id)
        .bind(first as i64)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    tx.commit().await?;
    Ok(Some(url))
}

/// A campaign's links with their clicks: total and unique (recipients) per link, the campaign's
/// totals, and click-through rates (unique clickers as a percentage of the messages sent).
pub async fn campaign_links(db: &Db, store: StoreId, campaign: i64) -> Result<Value, Error> {
    let c = super::campaigns::get(db, store, campaign).await?;
    let urls = link_targets(&c.message, c.greek_gsm).map_err(|e| Error::invalid("unknown_merge_tag", e.to_string()))?;
    let rows: Vec<(i64, i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "SELECT link_index, COUNT(*), COUNT(DISTINCT message_id) FROM clicks
         WHERE campaign_id = $1 AND store_id = $2 AND kind = 'click' GROUP BY link_index ORDER BY link_index"
    )
    .bind(campaign)
    .bind(store.0)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    let rate = |unique: i64| if c.sent > 0 { (unique as f64 / c.sent as f64 * 10_000.0).round() / 100.0 } else { 0.0 };
    let items: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let (total, unique) = rows.iter().find(|r| r.0 == i as i64).map_or((0, 0), |r| (r.1, r.2));
            json!({"index": i, "url": url, "clicks": total, "unique_clicks": unique, "click_through_rate": rate(unique)})
        })
        .collect();
    Ok(
        json!({"campaign_id": c.id, "clicks": c.clicks, "unique_clicks": c.unique_clicks, "sent": c.sent, "click_through_rate": rate(c.unique_clicks), "links": items}),
    )
}
