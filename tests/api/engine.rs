//! The send engine end to end: real HTTP to the Mitto simulator, on both databases.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error, assert_ledger_balanced, campaign, counts, seed};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;
use smscast::store::on_db;

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
    // Each message went to its own contact with that contact's name; the provider got exactly the
    // text the API lists; the unsubscribe code at its end names that message.
    let contacts: Vec<(i64, String, String)> =
        on_db!(t.db(), |p| sqlx::query_as("SELECT id, phone, first_name FROM contacts WHERE store_id = $1").bind(s.id).fetch_all(p).await)
            .unwrap();
    let contacts: std::collections::HashMap<i64, (String, String)> = contacts.into_iter().map(|(id, p, f)| (id, (p, f))).collect();
    let key = smscast::store::settings::read_code_key(t.db()).await.unwrap();
    let (mut seen, mut cursor) = (0, String::new());
    loop {
        let (_, page) = t.get(&format!("/api/campaigns/{id}/messages?limit=500{cursor}"), &s.key).await;
        for m in page["items"].as_array().unwrap() {
            let (phone, first) = &contacts[&m["contact_id"].as_i64().unwrap()];
            let text = m["text"].as_str().unwrap();
            assert_eq!(m["phone"].as_str(), Some(phone.as_str()), "{m}");
            assert!(text.starts_with(&format!("Hi {first}, 20% off today\n")), "{m}");
            let code = &text[text.len() - smscast::domain::message::UNSUBSCRIBE_CODE_LEN..];
            assert_eq!(key.message_id(code), m["id"].as_i64(), "{m}");
            let accepted = sim.accepted(m["provider_message_id"].as_str().unwrap()).expect("accepted by the provider");
            assert_eq!(accepted, (phone.clone(), text.to_string()), "{m}");
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, 10_000);
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let tos: Vec<&str> = h["items"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(tos, ["draft", "sending", "sent"]);
}

/// Since issue 12 a provider timeout is not retried: its batch ends `unknown` (not charged).
/// The simulator's `timeout_rate` accepts nothing, so here sent = accepted still holds.
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
    assert_eq!(c["unknown"], p["unknown"], "timed-out batches end unknown, never resent");
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

async fn test_sends_are_charged_and_leave_the_campaign_alone(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig::default(), 1000, 1).await;
    let s = t.store("Tester").await;
    seed(&t, &s, 3, 100).await;
    let id = campaign(&t, &s, "Try me").await;
    let (_, list) = t.get("/api/contacts?limit=1", &s.key).await;
    let contact = list["items"][0]["id"].as_i64().unwrap();
    let (st, r) = t
        .post(&format!("/api/campaigns/{id}/test"), &s.key, json!({"phones": ["+30 694 000 0001", "6940000002"], "contact_id": contact}))
        .await;
    assert_eq!(st, 202, "{r}");
    let msgs = r["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0]["text"].as_str().unwrap().starts_with("Hi Name0, 20% off today"), "{r}");
    let cost: i64 = msgs.iter().map(|m| m["cost"].as_i64().unwrap()).sum();
    for m in msgs {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, tm) = t.get(&format!("/api/campaigns/{id}/test/{}", m["id"]), &s.key).await;
            if tm["status"] == "sent" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "test message not sent: {tm}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(sim.stats().accepted, 2);
    let (_, c) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!((c["status"].as_str(), c["total"].as_i64()), (Some("draft"), Some(0)), "the campaign is untouched");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!((w["available"].as_i64(), w["held"].as_i64()), (Some(100 - cost), Some(0)), "charged like any message: {w}");
    let (st, e) = t.post(&format!("/api/campaigns/{id}/test"), &s.key, json!({"phones": ["1", "2", "3", "4", "5", "6"]})).await;
    assert_error(st, &e, 422, "invalid_field");
    let (st, e) = t.post(&format!("/api/campaigns/{id}/test"), &s.key, json!({"phones": ["69abc"]})).await;
    assert_error(st, &e, 422, "invalid_phone");
}

async fn scheduled_campaigns_start_by_themselves(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig::default(), 1000, 1).await;
    let s = t.store("Scheduler").await;
    seed(&t, &s, 20, 100).await;
    let at = smscast::domain::time::rfc3339(t.clock_now() + 60_000);
    let (st, c) =
        t.post("/api/campaigns", &s.key, json!({"name": "Later", "message": "Soon", "audience": {"kind": "all"}, "schedule_at": at})).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    // Nothing happens before its time; then the engine's scheduler starts it exactly once.
    t.clock.advance(61_000);
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!((p["status"].as_str(), p["sent"].as_i64()), (Some("sent"), Some(20)), "{p}");
    assert_eq!(sim.stats().duplicate_references, 0);
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let started: Vec<&Value> = h["items"].as_array().unwrap().iter().filter(|e| e["to"] == "sending").collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["actor"], "scheduler");
}

async fn provider_rate_limit_paces_sending(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 50, 2).await;
    let s = t.store("Paced").await;
    seed(&t, &s, 300, 1_000).await;
    let (st, r) = t
        .call(
            reqwest::Method::PUT,
            "/api/admin/rate-limits",
            Some(&t.admin_key),
            Some(json!({"key": "provider:mitto", "rate_per_sec": 100})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let id = campaign(&t, &s, "Paced").await;
    let started = std::time::Instant::now();
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["sent"], 300);
    // 300 messages at 100/s with a one-second burst cannot finish in under two seconds.
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_900), "finished in {:?}", started.elapsed());
    let (st, e) = t
        .call(reqwest::Method::PUT, "/api/admin/rate-limits", Some(&t.admin_key), Some(json!({"key": "everyone", "rate_per_sec": 1})))
        .await;
    assert_error(st, &e, 422, "invalid_field");
}

/// An outcome is written only under its claim's fencing token. A batch whose lease expired and was
/// reaped writes nothing when its late outcome arrives; a batch of which part was reaped writes,
/// counts and charges exactly the rest (`record` first writes without reading rows back and, when
/// the count falls short, rolls back and reads back what really changed).
async fn outcomes_are_fenced_by_the_lease(b: Backend) {
    use smscast::store::queue::{self, Batch, Outcome};
    let t = TestApp::start(b).await;
    let s = t.store("Fenced").await;
    seed(&t, &s, 30, 1_000).await;
    let id = campaign(&t, &s, "Fenced").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let (db, now) = (t.db(), t.clock_now());
    let all_sent = |b: &Batch| b.messages.iter().map(|m| (m.id, Outcome::Sent { provider_id: format!("p{}", m.id) })).collect::<Vec<_>>();

    // Reaped in full: the late outcome changes nothing.
    let stale = queue::claim(db, "w1", 10, 1_000, now, &Default::default()).await.unwrap().expect("a batch");
    assert_eq!(queue::reap(db, now + 1_001).await.unwrap(), 10);
    queue::record(db, &stale, &all_sent(&stale), now + 1_002).await.unwrap();
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!((p["sent"].as_i64(), p["unknown"].as_i64(), p["sending"].as_i64()), (Some(0), Some(10), Some(0)), "{p}");

    // Four of ten reaped (as the reaper would, row by row): six are written and charged.
    let partly = queue::claim(db, "w2", 10, 60_000, now + 2_000, &Default::default()).await.unwrap().expect("a batch");
    let reaped: Vec<i64> = partly.messages.iter().take(4).map(|m| m.id).collect();
    for mid in &reaped {
        on_db!(db, |p| sqlx::query("UPDATE messages SET status = 'unknown', lease_owner = NULL, lease_until = NULL WHERE id = $1")
            .bind(*mid)
            .execute(p)
            .await
            .map(|_| ()))
        .unwrap();
    }
    on_db!(db, |p| sqlx::query("UPDATE campaigns SET sending = sending - 4, unknown = unknown + 4 WHERE id = $1")
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    queue::record(db, &partly, &all_sent(&partly), now + 2_001).await.unwrap();
    let c = counts(&t, id).await;
    assert_eq!((c["sent"].as_i64(), c["unknown"].as_i64(), c["pending"].as_i64()), (Some(6), Some(14), Some(10)), "{c}");

    // The rest goes the usual way; the campaign ends and the ledger balances.
    let rest = queue::claim(db, "w3", 100, 60_000, now + 3_000, &Default::default()).await.unwrap().expect("a batch");
    assert_eq!(rest.messages.len(), 10);
    queue::record(db, &rest, &all_sent(&rest), now + 3_001).await.unwrap();
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(p["status"], "sent", "{p}");
    let c = counts(&t, id).await;
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count");
    }
    assert_eq!((c["sent"].as_i64(), c["unknown"].as_i64()), (Some(16), Some(14)));
    assert_ledger_balanced(&t, &s, id, 1_000).await;
}

dual!(
    ten_thousand_recipients,
    provider_faults_end_terminal_without_duplicates,
    send_refusals_are_specific,
    test_sends_are_charged_and_leave_the_campaign_alone,
    scheduled_campaigns_start_by_themselves,
    provider_rate_limit_paces_sending,
    outcomes_are_fenced_by_the_lease
);
