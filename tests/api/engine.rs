//! The send engine end to end: real HTTP to the Mitto simulator, on both databases.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, assert_error};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;
use smscast::store::on_db;

async fn seed(t: &TestApp, s: &TestStore, n: usize, credits: i64) {
    let mut csv = String::from("phone,first_name,consent\n");
    for i in 0..n {
        csv.push_str(&format!("+3069{:08},Name{i},opted_in\n", 10_000_000 + i));
    }
    let (st, r) = t.import_csv(&s.key, &csv).await;
    assert_eq!((st.as_u16(), r["created"].as_u64()), (200, Some(n as u64)), "{r}");
    let res = t
        .client
        .post(format!("{}/api/admin/stores/{}/credits", t.url, s.id))
        .bearer_auth(&t.admin_key)
        .header("idempotency-key", format!("seed-{}", s.id))
        .json(&json!({"amount": credits, "reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn campaign(t: &TestApp, s: &TestStore, name: &str) -> i64 {
    let (st, c) = t
        .post("/api/campaigns", &s.key, json!({"name": name, "message": "Hi {{first_name}}, 20% off today", "audience": {"kind": "all"}}))
        .await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// Row counts by status, straight from the table the counters summarise.
async fn counts(t: &TestApp, campaign: i64) -> Value {
    let rows: Vec<(String, i64)> =
        on_db!(t.db(), |p| sqlx::query_as("SELECT status, COUNT(*) FROM messages WHERE campaign_id = $1 GROUP BY status")
            .bind(campaign)
            .fetch_all(p)
            .await)
        .unwrap();
    let mut v = json!({"pending": 0, "sending": 0, "sent": 0, "failed": 0, "cancelled": 0, "unknown": 0});
    for (s, n) in rows {
        v[s] = json!(n);
    }
    v
}

/// The ledger balances: the hold is closed at 0, charges equal the cost of accepted messages, and
/// the rest is back in the wallet.
async fn assert_ledger_balanced(t: &TestApp, s: &TestStore, campaign: i64, topped_up: i64) {
    let (charged, sent_cost): (Option<i64>, Option<i64>) = on_db!(t.db(), |p| sqlx::query_as(
        "SELECT (SELECT CAST(SUM(amount) AS BIGINT) FROM transfers WHERE campaign_id = $1 AND kind = 'charge'),
                (SELECT CAST(SUM(cost) AS BIGINT) FROM messages WHERE campaign_id = $1 AND status = 'sent')"
    )
    .bind(campaign)
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(charged.unwrap_or(0), sent_cost.unwrap_or(0), "charges = cost of accepted messages");
    let (state, balance): (String, i64) =
        on_db!(t.db(), |p| {
            sqlx::query_as(
        "SELECT h.state, a.balance FROM holds h JOIN accounts a ON a.id = h.account_id JOIN campaigns c ON c.hold_id = h.id WHERE c.id = $1"
    )
    .bind(campaign)
    .fetch_one(p)
    .await
        })
        .unwrap();
    assert_eq!((state.as_str(), balance), ("released", 0), "the hold is closed and empty");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"].as_i64().unwrap(), topped_up - sent_cost.unwrap_or(0), "{w}");
    assert_eq!(w["held"], 0);
}

async fn ten_thousand_recipients(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig::default(), 1000, 2).await;
    let s = t.store("Big").await;
    seed(&t, &s, 10_000, 50_000).await;
    let id = campaign(&t, &s, "Ten thousand").await;
    let res = t
        .client
        .post(format!("{}/api/campaigns/{id}/send", t.url))
        .bearer_auth(&s.key)
        .header("idempotency-key", "go-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["messages"], 10_000);
    // A replay returns the first answer; a second click without a key cannot start it again.
    let replay: Value = t
        .client
        .post(format!("{}/api/campaigns/{id}/enqueue", t.url))
        .bearer_auth(&s.key)
        .header("idempotency-key", "go-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay, first);
    let (st, e) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_error(st, &e, 409, "invalid_state");
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["status"], "sent", "{p}");
    assert_eq!((p["total"].as_i64(), p["sent"].as_i64(), p["progress"].as_i64()), (Some(10_000), Some(10_000), Some(100)));
    let stats = sim.stats();
    assert_eq!((stats.accepted, stats.unique_references, stats.duplicate_references), (10_000, 10_000, 0));
    let c = counts(&t, id).await;
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count");
    }
    assert_ledger_balanced(&t, &s, id, 50_000).await;
    let (_, msgs) = t.get(&format!("/api/campaigns/{id}/messages?status=sent&limit=2"), &s.key).await;
    let m = &msgs["items"][0];
    assert!(m["text"].as_str().unwrap().starts_with("Hi Name0, 20% off today\n"), "{m}");
    assert!(m["provider_message_id"].as_str().is_some_and(|p| !p.is_empty()));
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let tos: Vec<&str> = h["items"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(tos, ["draft", "sending", "sent"]);
}

async fn provider_faults_end_terminal_without_duplicates(b: Backend) {
    let sim = SimulatorConfig {
        error_rate: 0.2,
        throttle_rate: 0.05,
        timeout_rate: 0.05,
        timeout_hang_ms: 1_500,
        fail_rate: 0.02,
        seed: Some(7),
        ..SimulatorConfig::default()
    };
    let (t, sim) = TestApp::start_sending(b, sim, 50, 3).await;
    let s = t.store("Faulty").await;
    seed(&t, &s, 1_000, 10_000).await;
    let id = campaign(&t, &s, "Faults").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["pending"].as_i64().unwrap() + p["sending"].as_i64().unwrap(), 0, "every message ends terminal: {p}");
    let stats = sim.stats();
    assert_eq!(stats.duplicate_references, 0, "nothing sent twice");
    assert_eq!(stats.accepted as i64, p["sent"].as_i64().unwrap(), "sent = accepted by the provider");
    assert!(p["failed"].as_i64().unwrap() > 0, "some numbers were rejected: {p}");
    let c = counts(&t, id).await;
    assert_eq!(c["sent"], p["sent"]);
    assert_eq!(c["failed"], p["failed"]);
    assert_ledger_balanced(&t, &s, id, 10_000).await;
}

async fn send_refusals_are_specific(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 1000, 1).await;
    let s = t.store("Refusals").await;
    let id = campaign(&t, &s, "Empty").await;
    let (st, e) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_error(st, &e, 422, "no_recipients");
    let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": "6912345678", "consent": "opted_in"})).await;
    assert_eq!(st, 201, "{c}");
    let (st, e) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_error(st, &e, 402, "insufficient_credits");
    assert_eq!(
        (e["details"]["required"].as_i64(), e["details"]["available"].as_i64(), e["details"]["missing"].as_i64()),
        (Some(1), Some(0), Some(1))
    );
    let (_, after) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!(after["status"], "draft", "a refused start changes nothing");
    let other = t.store("Other").await;
    let (st, e) = t.post(&format!("/api/campaigns/{id}/send"), &other.key, json!({})).await;
    assert_error(st, &e, 404, "not_found");
    let (st, e) = t.get(&format!("/api/campaigns/{id}/progress"), &other.key).await;
    assert_error(st, &e, 404, "not_found");
    let (st, e) = t.get(&format!("/api/campaigns/{id}/messages"), &other.key).await;
    assert_error(st, &e, 404, "not_found");
}

dual!(ten_thousand_recipients, provider_faults_end_terminal_without_duplicates, send_refusals_are_specific);
