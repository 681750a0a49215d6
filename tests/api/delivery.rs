//! Delivery reports through `POST /webhooks/mitto/dlr`, on both databases: order and duplicates do
//! not matter, early reports wait for their message's outcome, bad calls store nothing, and a
//! report resolves an `unknown` message.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, WEBHOOK_SECRET, assert_error, campaign, seed};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smscast::store::on_db;
use smscast::store::queue::{self, Outcome};

/// POSTs a body to the report webhook with the given secret header (none: no header).
pub async fn post_dlr(t: &TestApp, body: impl Into<reqwest::Body>, secret: Option<&str>) -> (StatusCode, Value) {
    let mut req = t.client.post(format!("{}/webhooks/mitto/dlr", t.url)).header("content-type", "application/json").body(body);
    if let Some(s) = secret {
        req = req.header("X-Webhook-Secret", s);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn report(t: &TestApp, body: &Value) -> Value {
    let (st, r) = post_dlr(t, body.to_string(), Some(WEBHOOK_SECRET)).await;
    assert_eq!(st, 200, "{r}");
    r
}

/// Launches a campaign to the store's contacts and records every message as accepted by the
/// provider with the id `P{message id}`, without an engine: returns the message ids in order.
pub async fn sent_campaign(t: &TestApp, s: &TestStore, name: &str) -> (i64, Vec<i64>) {
    let id = campaign(t, s, name).await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let db = t.db();
    let cursor = Default::default();
    while let Some(batch) = queue::claim(db, "test", 1000, 60_000, t.clock_now(), &cursor).await.unwrap() {
        let outcomes: Vec<(i64, Outcome)> =
            batch.messages.iter().map(|m| (m.id, Outcome::Sent { provider_id: format!("P{}", m.id) })).collect();
        queue::record(db, &batch, &outcomes, t.clock_now()).await.unwrap();
    }
    (id, message_ids(t, id).await)
}

pub async fn message_ids(t: &TestApp, campaign: i64) -> Vec<i64> {
    on_db!(t.db(), |p| sqlx::query_scalar("SELECT id FROM messages WHERE campaign_id = $1 AND NOT test ORDER BY id")
        .bind(campaign)
        .fetch_all(p)
        .await)
    .unwrap()
}

/// Each message's delivery state, in id order.
async fn delivery_rows(t: &TestApp, campaign: i64) -> Vec<(String, Option<String>, Option<i64>, Option<String>)> {
    on_db!(t.db(), |p| sqlx::query_as(
        "SELECT status, delivery_status, delivery_at, delivery_error FROM messages WHERE campaign_id = $1 ORDER BY id"
    )
    .bind(campaign)
    .fetch_all(p)
    .await)
    .unwrap()
}

async fn stored_reports(t: &TestApp) -> i64 {
    on_db!(t.db(), |p| sqlx::query_scalar("SELECT COUNT(*) FROM delivery_reports").fetch_one(p).await).unwrap()
}

async fn counters(t: &TestApp, s: &TestStore, campaign: i64) -> (i64, i64) {
    let (_, c) = t.get(&format!("/api/campaigns/{campaign}/progress"), &s.key).await;
    (c["delivered"].as_i64().unwrap(), c["undelivered"].as_i64().unwrap())
}

/// Four reports per message, some contradictory, named by reference, by Mitto's id or both.
fn reports_for(i: usize, id: i64) -> Vec<Value> {
    let at = |k: usize| format!("2026-03-01T10:{:02}:{:02}.{:07}Z", (i / 60) % 60, i % 60, k * 1_000_000 + i);
    let statuses: [(&str, usize, Option<&str>); 4] = match i % 4 {
        0 => [("Queued", 1, None), ("Sent", 2, None), ("Delivered", 3, None), ("DELIVERED", 3, None)],
        1 => [("Sent", 2, None), ("Failed", 3, Some("absent subscriber")), ("sent", 4, None), ("Queued", 1, None)],
        2 => [("Sent", 2, None), ("Delivered", 5, None), ("Undelivered", 4, Some("late, contradictory")), ("Expired", 6, None)],
        _ => [("Queued", 1, None), ("Sent", 2, None), ("Teleported", 3, None), ("Sent", 2, None)],
    };
    statuses
        .iter()
        .map(|(status, k, error)| {
            let mut r = match i % 3 {
                0 => json!({"reference": id.to_string()}),
                1 => json!({"messageId": format!("P{id}")}),
                _ => json!({"messageId": format!("P{id}"), "reference": id.to_string()}),
            };
            r["deliveryStatus"] = json!(status);
            r["updatedAt"] = json!(at(*k));
            if let Some(e) = error {
                r["description"] = json!(e);
            }
            r
        })
        .collect()
}

/// 10,000 reports applied in order to one campaign, and the same reports duplicated, shuffled
/// and posted concurrently to an identical campaign of another store, leave the same state.
async fn dlr_replays_duplicated_shuffled_concurrent_match_in_order(b: Backend) {
    let t = TestApp::start(b).await;
    let (sa, sb) = (t.store("In order").await, t.store("Shuffled").await);
    seed(&t, &sa, 2_500, 10_000).await;
    seed(&t, &sb, 2_500, 10_000).await;
    let (ca, ids_a) = sent_campaign(&t, &sa, "A").await;
    let (cb, ids_b) = sent_campaign(&t, &sb, "B").await;
    assert_eq!((ids_a.len(), ids_b.len()), (2_500, 2_500));

    let in_order: Vec<Value> = ids_a.iter().enumerate().flat_map(|(i, id)| reports_for(i, *id)).collect();
    assert_eq!(in_order.len(), 10_000);
    for chunk in in_order.chunks(100) {
        report(&t, &Value::Array(chunk.to_vec())).await;
    }

    let mut replay: Vec<Value> = ids_b.iter().enumerate().flat_map(|(i, id)| reports_for(i, *id)).collect();
    replay.extend(replay.clone());
    // A fixed shuffle (an LCG-driven Fisher–Yates), so a failure can be reproduced.
    let mut seed_state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..replay.len()).rev() {
        seed_state = seed_state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        replay.swap(i, (seed_state >> 33) as usize % (i + 1));
    }
    let batches: Vec<Value> = replay.chunks(100).map(|c| Value::Array(c.to_vec())).collect();
    let url = t.url.clone();
    let mut tasks = Vec::new();
    for lane in 0..8 {
        let mine: Vec<Value> = batches.iter().skip(lane).step_by(8).cloned().collect();
        let (client, url) = (t.client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for body in mine {
                let res = client
                    .post(format!("{url}/webhooks/mitto/dlr"))
                    .header("X-Webhook-Secret", WEBHOOK_SECRET)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let (a, b_rows) = (delivery_rows(&t, ca).await, delivery_rows(&t, cb).await);
    assert_eq!(a, b_rows, "the same state whatever the order, duplicates or concurrency");
    let count = |s: &str| a.iter().filter(|r| r.1.as_deref() == Some(s)).count();
    assert_eq!((count("delivered"), count("undelivered"), count("sent")), (1_250, 625, 625));
    assert!(a.iter().all(|r| r.0 == "sent"));
    // Delivered never turns back, and the earliest of equal reports wins.
    assert_eq!(a[0].2, smscast::domain::time::parse_rfc3339("2026-03-01T10:00:00.3000000Z"));
    assert_eq!(a[1].3.as_deref(), Some("absent subscriber"));
    assert_eq!(a[2].1.as_deref(), Some("delivered"));
    assert_eq!(counters(&t, &sa, ca).await, (1_250, 625));
    assert_eq!(counters(&t, &sb, cb).await, (1_250, 625));
    assert_eq!(stored_reports(&t).await, 30_000, "every report kept for audit");
}

/// A report that arrives while its message is still on its way to the provider is kept and
/// applied when the send outcome is recorded — named by our reference or by Mitto's id alone.
async fn dlr_before_outcome_is_applied_when_recorded(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Early").await;
    seed(&t, &s, 3, 100).await;
    let id = campaign(&t, &s, "Early").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let ids = message_ids(&t, id).await;
    let early = json!([
        {"reference": ids[0].to_string(), "deliveryStatus": "Delivered", "updatedAt": "2026-03-01T10:00:00Z"},
        {"messageId": "MITTO-2", "deliveryStatus": "Undelivered", "updatedAt": "2026-03-01T10:00:00Z", "error": "absent"},
    ]);
    let r = report(&t, &early).await;
    assert_eq!((r["received"].as_i64(), r["parked"].as_i64(), r["applied"].as_i64()), (Some(2), Some(2), Some(0)), "{r}");
    assert_eq!(counters(&t, &s, id).await, (0, 0));

    let batch = queue::claim(t.db(), "w", 10, 60_000, t.clock_now(), &Default::default()).await.unwrap().expect("a batch");
    let outcomes: Vec<(i64, Outcome)> = batch
        .messages
        .iter()
        .map(|m| {
            let pid = if m.id == ids[1] { "MITTO-2".to_string() } else { format!("MITTO-{}", m.id) };
            (m.id, Outcome::Sent { provider_id: pid })
        })
        .collect();
    queue::record(t.db(), &batch, &outcomes, t.clock_now()).await.unwrap();

    let rows = delivery_rows(&t, id).await;
    assert_eq!(rows[0].1.as_deref(), Some("delivered"));
    assert_eq!((rows[1].1.as_deref(), rows[1].3.as_deref()), (Some("undelivered"), Some("absent")));
    assert_eq!(rows[2].1, None);
    assert_eq!(counters(&t, &s, id).await, (1, 1));
    let parked: i64 =
        on_db!(t.db(), |p| sqlx::query_scalar("SELECT COUNT(*) FROM delivery_reports WHERE state = 'parked'").fetch_one(p).await).unwrap();
    assert_eq!(parked, 0);
}

/// Without the right `X-Webhook-Secret` nothing is read or stored; with no secret configured the
/// endpoint refuses everything. Either of two secrets is accepted (rotation).
async fn dlr_bad_or_missing_secret_is_401_and_stores_nothing(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Secret").await;
    seed(&t, &s, 1, 100).await;
    let (id, ids) = sent_campaign(&t, &s, "Secret").await;
    let body = json!({"reference": ids[0].to_string(), "deliveryStatus": "Delivered"}).to_string();
    let (st, e) = post_dlr(&t, body.clone(), None).await;
    assert_error(st, &e, 401, "unauthorized");
    let (st, e) = post_dlr(&t, body.clone(), Some("wrong-secret-0123456789")).await;
    assert_error(st, &e, 401, "invalid_webhook_secret");
    let (st, e) = post_dlr(&t, body.clone(), Some(&WEBHOOK_SECRET[..WEBHOOK_SECRET.len() - 1])).await;
    assert_error(st, &e, 401, "invalid_webhook_secret");
    assert_eq!(stored_reports(&t).await, 0);
    assert_eq!(delivery_rows(&t, id).await[0].1, None);
    assert_eq!(counters(&t, &s, id).await, (0, 0));

    let closed = TestApp::start_with(b, |cfg| cfg.webhook_secrets = Vec::new()).await;
    let (st, e) = post_dlr(&closed, body.clone(), Some(WEBHOOK_SECRET)).await;
    assert_error(st, &e, 401, "webhooks_disabled");
    assert_eq!(stored_reports(&closed).await, 0);

    let rotating = TestApp::start_with(b, |cfg| cfg.webhook_secrets = vec!["old-secret-0123456789".into(), WEBHOOK_SECRET.into()]).await;
    for secret in ["old-secret-0123456789", WEBHOOK_SECRET] {
        let (st, r) = post_dlr(&rotating, json!([]).to_string(), Some(secret)).await;
        assert_eq!((st.as_u16(), r["received"].as_i64()), (200, Some(0)), "{r}");
    }
}

/// Oversized and malformed bodies answer 4xx and change nothing — not even the valid reports of
/// a batch that holds one bad report.
async fn dlr_oversized_and_malformed_bodies_store_nothing(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Malformed").await;
    seed(&t, &s, 2, 100).await;
    let (id, ids) = sent_campaign(&t, &s, "Malformed").await;
    let good = json!({"reference": ids[0].to_string(), "deliveryStatus": "Delivered"});

    let huge = format!("[{}]", vec![good.to_string(); 40_000].join(","));
    assert!(huge.len() > 1024 * 1024);
    // Announced and streamed without a length: refused either way (a raw socket, as the server may
    // answer before it has read the whole body).
    let secret = format!("X-Webhook-Secret: {WEBHOOK_SECRET}");
    for declared in [Some(huge.len()), None] {
        let (st, e) = t.raw_post_with("/webhooks/mitto/dlr", &secret, "application/json", declared, huge.as_bytes()).await;
        assert_error(st, &e, 413, "payload_too_large");
    }

    for (body, index) in [
        ("{not json".to_string(), None),
        ("42".to_string(), None),
        (String::new(), None),
        (json!([good, {"deliveryStatus": "Delivered"}]).to_string(), Some(1)),
        (json!([good, {"messageId": "P1", "deliveryStatus": "Delivered", "updatedAt": "next tuesday"}]).to_string(), Some(1)),
        (json!([{"messageId": ["P1"], "deliveryStatus": "Delivered"}, good]).to_string(), Some(0)),
        (json!({"messageId": "P1"}).to_string(), Some(0)),
    ] {
        let (st, e) = post_dlr(&t, body.clone(), Some(WEBHOOK_SECRET)).await;
        assert_error(st, &e, 400, "invalid_report");
        if let Some(i) = index {
            assert_eq!(e["details"]["index"], i, "{body}: {e}");
        }
    }
    assert_eq!(stored_reports(&t).await, 0);
    assert_eq!(delivery_rows(&t, id).await[0].1, None);
    assert_eq!(counters(&t, &s, id).await, (0, 0));
}

/// A report naming a message whose send outcome was lost (`unknown`) resolves it: it becomes
/// `sent`, is counted, and is charged once — from the wallet, as its run's hold has closed.
async fn dlr_resolves_unknown_message_and_charges_once(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Unknown").await;
    seed(&t, &s, 2, 100).await;
    let id = campaign(&t, &s, "Unknown").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let (db, now) = (t.db(), t.clock_now());
    let batch = queue::claim(db, "w", 10, 1_000, now, &Default::default()).await.unwrap().expect("a batch");
    let (first, lost) = (batch.messages[0].id, batch.messages[1].id);
    let cost = batch.messages[1].cost;
    // The worker recorded one message and died; the other's lease expires.
    let kept = queue::Batch { messages: batch.messages[..1].to_vec(), ..batch };
    queue::record(db, &kept, &[(first, Outcome::Sent { provider_id: "P-first".into() })], now).await.unwrap();
    assert_eq!(queue::reap(db, now + 1_001).await.unwrap(), 1);
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!((p["status"].as_str(), p["sent"].as_i64(), p["unknown"].as_i64()), (Some("sent"), Some(1), Some(1)), "{p}");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    let before = w["available"].as_i64().unwrap();

    let late = json!({"reference": lost.to_string(), "messageId": "P-lost", "deliveryStatus": "Delivered"});
    for _ in 0..2 {
        report(&t, &late).await;
    }
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!((p["sent"].as_i64(), p["unknown"].as_i64(), p["delivered"].as_i64()), (Some(2), Some(0), Some(1)), "{p}");
    let (status, pid): (String, Option<String>) =
        on_db!(db, |p| sqlx::query_as("SELECT status, provider_message_id FROM messages WHERE id = $1").bind(lost).fetch_one(p).await)
            .unwrap();
    assert_eq!((status.as_str(), pid.as_deref()), ("sent", Some("P-lost")));
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"].as_i64().unwrap(), before - cost, "charged once, from the wallet: {w}");
    let late_charges: i64 = on_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM transfers WHERE idem_key = $1")
        .bind(format!("charge:late:{lost}"))
        .fetch_one(p)
        .await)
    .unwrap();
    assert_eq!(late_charges, 1);
}

/// The report counts this store's campaign only: another store's campaign is a 404, and its
/// messages and reports never show here.
async fn campaign_report_shows_only_this_stores_messages(b: Backend) {
    let t = TestApp::start(b).await;
    let (sa, sb) = (t.store("Report A").await, t.store("Report B").await);
    seed(&t, &sa, 4, 100).await;
    seed(&t, &sb, 2, 100).await;
    let (ca, ids_a) = sent_campaign(&t, &sa, "Report").await;
    let (cb, ids_b) = sent_campaign(&t, &sb, "Report").await;
    let mut reports: Vec<Value> = ids_a
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"reference": id.to_string(), "deliveryStatus": if i == 3 { "Expired" } else { "Delivered" }}))
        .collect();
    reports.extend(ids_b.iter().map(|id| json!({"messageId": format!("P{id}"), "deliveryStatus": "Delivered"})));
    report(&t, &Value::Array(reports)).await;

    let (st, r) = t.get(&format!("/api/campaigns/{ca}/report"), &sa.key).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!((r["sent"].as_i64(), r["delivered"].as_i64(), r["undelivered"].as_i64()), (Some(4), Some(3), Some(1)), "{r}");
    assert_eq!(r["delivery_rate"].as_f64(), Some(75.0));
    for k in ["clicks_unique", "clicks_total", "unsubscribes"] {
        assert_eq!(r[k], 0, "{k}");
    }
    assert_eq!(r["click_through_rate"].as_f64(), Some(0.0));
    assert_eq!((r["credits_charged"].as_i64(), r["credits_refunded"].as_i64()), (Some(4), Some(0)), "{r}");
    assert!(r["first_sent_at"].is_string() && r["last_sent_at"].is_string(), "{r}");
    let series = r["series"].as_array().unwrap();
    let sum = |k: &str| series.iter().map(|h| h[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("sends"), sum("deliveries"), sum("clicks")), (4, 3, 0), "{r}");
    assert!(series.iter().all(|h| h["hour"].as_str().is_some_and(|s| s.ends_with(":00:00.000Z"))), "{r}");

    let (st, e) = t.get(&format!("/api/campaigns/{cb}/report"), &sa.key).await;
    assert_error(st, &e, 404, "not_found");
    let (_, r) = t.get(&format!("/api/campaigns/{cb}/report"), &sb.key).await;
    assert_eq!((r["sent"].as_i64(), r["delivered"].as_i64(), r["undelivered"].as_i64()), (Some(2), Some(2), Some(0)), "{r}");
}

/// End to end: the engine sends through the Mitto simulator, which posts its reports to our
/// webhook with the secret header, as Mitto does; every message ends delivered.
async fn simulator_reports_reach_the_webhook(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, Default::default(), 50, 2).await;
    sim.set_config(smscast::provider::simulator::SimulatorConfig {
        dlr_url: Some(format!("{}/webhooks/mitto/dlr", t.url)),
        dlr_secret: Some(WEBHOOK_SECRET.into()),
        undelivered_rate: 0.25,
        seed: Some(3),
        ..Default::default()
    });
    let s = t.store("End to end").await;
    seed(&t, &s, 200, 1_000).await;
    let id = campaign(&t, &s, "End to end").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    t.wait_finished(&s.key, id).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (delivered, undelivered) = loop {
        let (d, u) = counters(&t, &s, id).await;
        if d + u == 200 {
            break (d, u);
        }
        assert!(std::time::Instant::now() < deadline, "reports did not all arrive: {d} delivered, {u} undelivered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(delivered > 100 && undelivered > 20, "{delivered} / {undelivered}");
    let applied: i64 =
        on_db!(t.db(), |p| sqlx::query_scalar("SELECT COUNT(*) FROM delivery_reports WHERE state = 'applied'").fetch_one(p).await).unwrap();
    assert_eq!(applied, 200);
}

/// Mitto's bulk answer maps to the request by position: an answer with one result too few makes
/// the whole batch `unknown` — nothing is failed or sent again — and the simulator's reports,
/// which echo our reference, then resolve every message (the run, `failed` for lack of any known
/// acceptance, becomes `sent`).
async fn count_mismatch_makes_batch_unknown_then_reports_resolve_it(b: Backend) {
    use smscast::provider::simulator::SimulatorConfig;
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig { short_answers: true, ..Default::default() }, 10, 1).await;
    let s = t.store("Short answers").await;
    seed(&t, &s, 20, 100).await;
    let id = campaign(&t, &s, "Short").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(
        (p["status"].as_str(), p["unknown"].as_i64(), p["sent"].as_i64(), p["failed"].as_i64()),
        (Some("failed"), Some(20), Some(0), Some(0)),
        "{p}"
    );
    let stats = sim.stats();
    assert_eq!((stats.accepted, stats.duplicate_references), (20, 0), "accepted once, never resent");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"], 100, "unknown messages are not charged: {w}");

    // The provider's reports name each message by our reference and settle it.
    let ids = message_ids(&t, id).await;
    let reports: Vec<Value> =
        ids.iter().map(|m| json!({"reference": m.to_string(), "messageId": format!("M{m}"), "deliveryStatus": "Delivered"})).collect();
    let r = report(&t, &Value::Array(reports)).await;
    assert_eq!(r["applied"], 20, "{r}");
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(
        (p["status"].as_str(), p["unknown"].as_i64(), p["sent"].as_i64(), p["delivered"].as_i64()),
        (Some("sent"), Some(0), Some(20), Some(20)),
        "{p}"
    );
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"], 80, "each confirmed message charged once: {w}");
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let last = h["items"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!((last["from"].as_str(), last["to"].as_str()), (Some("failed"), Some("sent")), "{h}");
}

/// Messages with no final report are looked up at the provider once they are old enough — only
/// those: a message that already has its final report is never asked about.
async fn status_lookup_settles_only_stragglers(b: Backend) {
    use smscast::engine::EngineConfig;
    use smscast::provider::mitto::{MittoClient, MittoConfig};
    use smscast::provider::simulator::Simulator;
    let sim = Simulator::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let client = MittoClient::new(MittoConfig {
        base_url,
        api_key: "k".into(),
        traffic_account_id: "ta".into(),
        bulk_size: 10,
        timeout: std::time::Duration::from_secs(5),
    })
    .unwrap();
    let t = TestApp::start_with(b, |cfg| {
        cfg.provider = Some(std::sync::Arc::new(client));
        cfg.engine =
            EngineConfig { workers: 1, poll_ms: 20, status_lookup_after_secs: 3_600, status_lookups_per_sec: 200, ..Default::default() };
    })
    .await;
    let s = t.store("Lookups").await;
    seed(&t, &s, 30, 100).await;
    let id = campaign(&t, &s, "Lookups").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    t.wait_finished(&s.key, id).await;
    let ids = message_ids(&t, id).await;
    let reported: Vec<Value> = ids[..10].iter().map(|m| json!({"reference": m.to_string(), "deliveryStatus": "Undelivered"})).collect();
    report(&t, &Value::Array(reported)).await;
    assert_eq!(counters(&t, &s, id).await, (0, 10));

    // An hour later the other twenty are stragglers.
    t.clock.advance(3_600_000 + 1_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while counters(&t, &s, id).await != (20, 10) {
        assert!(std::time::Instant::now() < deadline, "lookups did not settle: {:?}", counters(&t, &s, id).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let looked_up: Vec<i64> =
        on_db!(t.db(), |p| sqlx::query_scalar("SELECT id FROM messages WHERE looked_up_at IS NOT NULL ORDER BY id").fetch_all(p).await)
            .unwrap();
    assert_eq!(looked_up, ids[10..].to_vec(), "only the messages without a final report were looked up");
}

/// Webhooks registered through Mitto's `POST /api/v1/Webhooks` (what `smscast mitto
/// register-webhooks` calls): the simulator then posts its reports there with the registered
/// header, and they are accepted.
async fn registered_webhook_receives_reports(b: Backend) {
    use smscast::provider::mitto::{MittoClient, MittoConfig, REPORT_TRIGGER};
    let sim = smscast::provider::simulator::Simulator::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let client = || {
        MittoClient::new(MittoConfig {
            base_url: base_url.clone(),
            api_key: "k".into(),
            traffic_account_id: "ta".into(),
            bulk_size: 50,
            timeout: std::time::Duration::from_secs(5),
        })
        .unwrap()
    };
    let registrar = client();
    let t = TestApp::start_with(b, |cfg| {
        cfg.provider = Some(std::sync::Arc::new(client()));
        cfg.engine = smscast::engine::EngineConfig { workers: 1, poll_ms: 20, ..Default::default() };
    })
    .await;
    let url = format!("{}/webhooks/mitto/dlr", t.url);
    let answer = registrar.register_webhook(&url, "reports", &[REPORT_TRIGGER], &[("X-Webhook-Secret", WEBHOOK_SECRET)]).await.unwrap();
    assert_eq!(answer["url"], url.as_str(), "{answer}");
    let s = t.store("Registered").await;
    seed(&t, &s, 40, 100).await;
    let id = campaign(&t, &s, "Registered").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    t.wait_finished(&s.key, id).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while counters(&t, &s, id).await.0 != 40 {
        assert!(std::time::Instant::now() < deadline, "reports did not arrive: {:?}", counters(&t, &s, id).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

dual!(
    dlr_replays_duplicated_shuffled_concurrent_match_in_order,
    dlr_before_outcome_is_applied_when_recorded,
    dlr_bad_or_missing_secret_is_401_and_stores_nothing,
    dlr_oversized_and_malformed_bodies_store_nothing,
    dlr_resolves_unknown_message_and_charges_once,
    campaign_report_shows_only_this_stores_messages,
    simulator_reports_reach_the_webhook,
    count_mismatch_makes_batch_unknown_then_reports_resolve_it,
    status_lookup_settles_only_stragglers,
    registered_webhook_receives_reports,
);
