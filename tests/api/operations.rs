//! Operating a live campaign: cancel, pause/resume, retry-failed, failures, queue stats.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error, assert_ledger_balanced, campaign, counts, seed};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;
use smscast::store::on_db;
use std::time::{Duration, Instant};

/// Polls progress until `pred` holds (bounded).
async fn wait_for(t: &TestApp, key: &str, id: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), key).await;
        if pred(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cancel_during_a_send(b: Backend) {
    let sim = SimulatorConfig { latency_ms: 40, ..SimulatorConfig::default() };
    let (t, sim) = TestApp::start_sending(b, sim, 50, 2).await;
    let s = t.store("Cancel").await;
    seed(&t, &s, 2_000, 10_000).await;
    let id = campaign(&t, &s, "Stop it").await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    wait_for(&t, &s.key, id, "first messages sent", |p| p["sent"].as_i64().unwrap_or(0) > 0).await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/cancel"), &s.key, json!({})).await;
    assert_eq!(st, 200, "{r}");
    let accepted_at_cancel = sim.stats().accepted as i64;
    let in_flight = r["in_flight"].as_i64().unwrap();
    assert!(r["cancelled_messages"].as_i64().unwrap() > 0, "{r}");
    // Idempotent.
    let (st, again) = t.post(&format!("/api/campaigns/{id}/cancel"), &s.key, json!({})).await;
    assert_eq!((st.as_u16(), again["cancelled_messages"].as_i64()), (200, Some(0)));
    let p = wait_for(&t, &s.key, id, "in-flight batches to settle", |p| p["sending"] == 0).await;
    assert_eq!(p["status"], "cancelled");
    let accepted = sim.stats().accepted as i64;
    assert!(
        accepted <= accepted_at_cancel + in_flight,
        "nothing beyond what was in flight: {accepted} > {accepted_at_cancel} + {in_flight}"
    );
    assert_eq!(p["cancelled"], r["cancelled_messages"]);
    let c = counts(&t, id).await;
    for k in ["pending", "sending", "sent", "failed", "cancelled"] {
        assert_eq!(c[k], p[k], "counter {k}");
    }
    // The hold settled exactly once: closed, empty, one final release.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (state,): (String,) =
            on_db!(t.db(), |p| sqlx::query_as("SELECT h.state FROM holds h JOIN campaigns c ON c.hold_id = h.id WHERE c.id = $1")
                .bind(id)
                .fetch_one(p)
                .await)
            .unwrap();
        if state == "released" {
            break;
        }
        assert!(Instant::now() < deadline, "hold never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ledger_balanced(&t, &s, id, 10_000).await;
    let (st, e) = t.post(&format!("/api/campaigns/{id}/pause"), &s.key, json!({})).await;
    assert_error(st, &e, 409, "invalid_state");
    assert_eq!(e["details"]["status"], "cancelled");
}

async fn cancel_a_scheduled_campaign(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 100, 1).await;
    let s = t.store("Sched").await;
    seed(&t, &s, 5, 100).await;
    let at = smscast::domain::time::rfc3339(t.clock_now() + 60_000);
    let (_, c) =
        t.post("/api/campaigns", &s.key, json!({"name": "Never", "message": "x", "audience": {"kind": "all"}, "schedule_at": at})).await;
    let id = c["id"].as_i64().unwrap();
    let (st, r) = t.post(&format!("/api/campaigns/{id}/cancel"), &s.key, json!({})).await;
    assert_eq!(st, 200, "{r}");
    t.clock.advance(120_000);
    // Give the scheduler a couple of ticks; the campaign must stay cancelled.
    let (st, e) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_error(st, &e, 409, "invalid_state");
    let (_, q) = t.get("/api/queue", &s.key).await;
    assert_eq!(q["waiting"], 0, "{q}");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"], 100);
    let (st, e) = t.post("/api/campaigns/999999/cancel", &s.key, json!({})).await;
    assert_error(st, &e, 404, "not_found");
}

async fn pause_and_resume_send_each_message_once(b: Backend) {
    let sim = SimulatorConfig { latency_ms: 30, ..SimulatorConfig::default() };
    let (t, sim) = TestApp::start_sending(b, sim, 50, 2).await;
    let s = t.store("Pause").await;
    seed(&t, &s, 1_000, 5_000).await;
    let id = campaign(&t, &s, "Breather").await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    wait_for(&t, &s.key, id, "first messages", |p| p["sent"].as_i64().unwrap_or(0) > 0).await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/pause"), &s.key, json!({})).await;
    assert_eq!(st, 200, "{r}");
    let p = wait_for(&t, &s.key, id, "in-flight to finish", |p| p["sending"] == 0).await;
    assert_eq!(p["status"], "paused");
    assert!(p["pending"].as_i64().unwrap() > 0, "paused before the end: {p}");
    let (st, r) = t.post(&format!("/api/campaigns/{id}/resume"), &s.key, json!({})).await;
    assert_eq!(st, 200, "{r}");
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!((p["status"].as_str(), p["sent"].as_i64()), (Some("sent"), Some(1_000)));
    let stats = sim.stats();
    assert_eq!((stats.unique_references, stats.duplicate_references), (1_000, 0), "each message exactly once");
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let tos: Vec<&str> = h["items"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(tos, ["draft", "sending", "paused", "sending", "sent"]);
    assert_ledger_balanced(&t, &s, id, 5_000).await;
}

async fn retry_failed_resends_only_retryable(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig { error_rate: 1.0, ..SimulatorConfig::default() }, 100, 1).await;
    let s = t.store("Retry").await;
    seed(&t, &s, 30, 1_000).await;
    let id = campaign(&t, &s, "Again").await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!((p["status"].as_str(), p["failed"].as_i64()), (Some("failed"), Some(30)), "{p}");
    let (_, f) = t.get(&format!("/api/campaigns/{id}/failures"), &s.key).await;
    let provider_error = f["categories"].as_array().unwrap().iter().find(|c| c["category"] == "provider_error").unwrap().clone();
    assert_eq!((provider_error["count"].as_i64(), provider_error["retryable"].as_bool()), (Some(30), Some(true)), "{f}");
    let (_, listed) = t.get(&format!("/api/campaigns/{id}/messages?category=provider_error&limit=500"), &s.key).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 30);
    // One contact opts out meanwhile: skipped, never messaged.
    let (_, list) = t.get("/api/contacts?limit=1", &s.key).await;
    let opted = list["items"][0]["id"].as_i64().unwrap();
    t.patch(&format!("/api/contacts/{opted}"), &s.key, json!({"consent": "opted_out"})).await;
    let (_, pv) = t.get(&format!("/api/campaigns/{id}/retry-failed/preview"), &s.key).await;
    assert_eq!(
        (pv["messages"].as_i64(), pv["excluded"]["opted_out"].as_i64(), pv["can_retry"].as_bool()),
        (Some(29), Some(1), Some(true)),
        "{pv}"
    );
    let cost = pv["estimated_cost"].as_i64().unwrap();
    sim.set_config(SimulatorConfig::default());
    let (st, r) = t.post(&format!("/api/campaigns/{id}/retry-failed"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    assert_eq!((r["messages"].as_i64(), r["held_credits"].as_i64()), (Some(29), Some(cost)));
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!((p["status"].as_str(), p["sent"].as_i64(), p["failed"].as_i64()), (Some("sent"), Some(29), Some(1)), "{p}");
    assert_eq!(sim.stats().duplicate_references, 0);
    let (_, f) = t.get(&format!("/api/campaigns/{id}/failures"), &s.key).await;
    let opted_out = f["categories"].as_array().unwrap().iter().find(|c| c["category"] == "opted_out").unwrap()["count"].as_i64();
    assert_eq!(opted_out, Some(1));
    // Charges only for accepted messages, across both runs.
    assert_ledger_balanced(&t, &s, id, 1_000).await;
    let (st, e) = t.post(&format!("/api/campaigns/{id}/retry-failed"), &s.key, json!({})).await;
    assert_error(st, &e, 422, "no_recipients");
}

async fn queue_stats_equal_row_counts(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 100, 1).await;
    let s = t.store("Queue").await;
    seed(&t, &s, 200, 1_000).await;
    let id = campaign(&t, &s, "Counted").await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    t.wait_finished(&s.key, id).await;
    let (st, q) = t.get("/api/admin/queue", &t.admin_key).await;
    assert_eq!(st, 200, "{q}");
    let c = counts(&t, id).await;
    assert_eq!((q["completed"].clone(), q["waiting"].clone(), q["active"].clone()), (c["sent"].clone(), json!(0), json!(0)));
    assert_eq!(q["throughput"]["last_minute"], c["sent"]);
    let workers = q["workers"].as_array().unwrap();
    assert!(!workers.is_empty() && workers[0]["host"].is_string(), "{q}");
    let (_, mine) = t.get("/api/queue", &s.key).await;
    assert_eq!(mine["completed"], c["sent"]);
    assert!(mine["workers"][0].get("host").is_none(), "stores do not see worker hosts: {mine}");
    let other = t.store("Empty").await;
    let (_, theirs) = t.get("/api/queue", &other.key).await;
    assert_eq!(theirs["completed"], 0);
    let res = t.client.get(format!("{}/metrics", t.url)).bearer_auth(&t.admin_key).send().await.unwrap();
    let text = res.text().await.unwrap();
    assert!(text.contains(&format!("smscast_messages{{state=\"completed\"}} {}", c["sent"])), "{text}");
    let (st, e) = t.get("/api/admin/queue", &s.key).await;
    assert_error(st, &e, 401, "invalid_api_key");
}

async fn operations_on_other_stores_campaigns_are_not_found(b: Backend) {
    let t = TestApp::start(b).await;
    let a = t.store("Owner").await;
    let other = t.store("Intruder").await;
    let (_, c) = t.post("/api/campaigns", &a.key, json!({"name": "Mine", "message": "x", "audience": {"kind": "all"}})).await;
    let id = c["id"].as_i64().unwrap();
    for (m, path) in [
        (reqwest::Method::POST, "cancel"),
        (reqwest::Method::POST, "pause"),
        (reqwest::Method::POST, "resume"),
        (reqwest::Method::POST, "retry-failed"),
        (reqwest::Method::GET, "retry-failed/preview"),
        (reqwest::Method::GET, "failures"),
        (reqwest::Method::GET, "history"),
        (reqwest::Method::GET, "progress"),
        (reqwest::Method::GET, "messages"),
        (reqwest::Method::POST, "send"),
        (reqwest::Method::POST, "test"),
    ] {
        let body = (m == reqwest::Method::POST).then(|| json!({"phones": ["6912345678"]}));
        let (st, e) = t.call(m, &format!("/api/campaigns/{id}/{path}"), Some(&other.key), body).await;
        assert_error(st, &e, 404, "not_found");
    }
}

async fn an_expired_hold_stops_the_run(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 10, 1).await;
    let s = t.store("Slow").await;
    seed(&t, &s, 200, 1_000).await;
    t.call(
        reqwest::Method::PUT,
        "/api/admin/rate-limits",
        Some(&t.admin_key),
        Some(json!({"key": format!("store:{}", s.id), "rate_per_sec": 20})),
    )
    .await;
    let id = campaign(&t, &s, "Forever").await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    wait_for(&t, &s.key, id, "first messages", |p| p["sent"].as_i64().unwrap_or(0) > 0).await;
    t.clock.advance(25 * 3_600_000);
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["status"], "cancelled", "{p}");
    assert!(p["sent"].as_i64().unwrap() < 200 && p["cancelled"].as_i64().unwrap() > 0, "{p}");
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let last = h["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "engine");
    assert!(last["reason"].as_str().unwrap().contains("credit reservation expired"), "{last}");
    wait_for(&t, &s.key, id, "in-flight to settle", |p| p["sending"] == 0).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, w) = t.get("/api/wallet", &s.key).await;
        if w["held"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "hold never settled: {w}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ledger_balanced(&t, &s, id, 1_000).await;
}

/// The hold expires while batches are in flight: the run is cancelled, but the hold stays open
/// until those batches end, so one that the provider accepted is still charged and one whose
/// worker died is reaped as `unknown`; then the rest returns to the wallet. (An expired hold used
/// to refuse the charge, and the batch sat in `sending` until its lease ran out.)
async fn in_flight_batches_settle_after_the_hold_expires(b: Backend) {
    use smscast::store::operations;
    use smscast::store::queue::{self, Outcome};
    let t = TestApp::start(b).await;
    let s = t.store("Late").await;
    seed(&t, &s, 30, 1_000).await;
    let id = campaign(&t, &s, "Late").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let (db, later) = (t.db(), t.clock_now() + 25 * 3_600_000);
    let accepted = queue::claim(db, "w1", 10, 60_000, later, &Default::default()).await.unwrap().expect("a batch");
    let lost = queue::claim(db, "w2", 10, 60_000, later, &Default::default()).await.unwrap().expect("a batch");
    assert_eq!((accepted.messages.len(), lost.messages.len()), (10, 10));

    // One maintenance pass, in the engine's order.
    assert_eq!(queue::reap(db, later).await.unwrap(), 0);
    assert_eq!(operations::stop_expired_runs(db, later).await.unwrap(), 1);
    assert_eq!(smscast::store::ledger::expire_due(db, later).await.unwrap(), 0, "the hold waits for the in-flight batches");

    let sent: Vec<_> = accepted.messages.iter().map(|m| (m.id, Outcome::Sent { provider_id: format!("p{}", m.id) })).collect();
    queue::record(db, &accepted, &sent, later + 1).await.expect("the accepted batch is recorded and charged");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert!(w["held"].as_i64().unwrap() > 0, "the second batch is still covered: {w}");

    assert_eq!(smscast::store::ledger::expire_due(db, later + 60_000).await.unwrap(), 0, "open while the lease lasts");
    assert_eq!(queue::reap(db, later + 60_001).await.unwrap(), 10);
    assert_eq!(smscast::store::ledger::expire_due(db, later + 60_001).await.unwrap(), 0, "the reaper already closed it");
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(p["status"], "cancelled", "{p}");
    let c = counts(&t, id).await;
    assert_eq!(
        (c["sent"].as_i64(), c["unknown"].as_i64(), c["cancelled"].as_i64(), c["sending"].as_i64()),
        (Some(10), Some(10), Some(10), Some(0)),
        "{c}"
    );
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count");
    }
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["held"], 0, "{w}");
    assert_ledger_balanced(&t, &s, id, 1_000).await;
}

async fn a_failing_provider_pauses_the_campaign(b: Backend) {
    // One message per call, every call a 500: after 20 failed calls the campaign pauses itself.
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig { error_rate: 1.0, ..SimulatorConfig::default() }, 1, 1).await;
    let s = t.store("Flaky").await;
    seed(&t, &s, 40, 100).await;
    let id = campaign(&t, &s, "Doomed").await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    let p = wait_for(&t, &s.key, id, "auto-pause", |p| p["status"] == "paused").await;
    assert!(p["pending"].as_i64().unwrap() > 0, "{p}");
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let last = h["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["to"].as_str(), last["actor"].as_str()), (Some("paused"), Some("engine")));
    assert!(last["reason"].as_str().unwrap().contains("provider calls failed"), "{last}");
}

dual!(
    a_failing_provider_pauses_the_campaign,
    an_expired_hold_stops_the_run,
    in_flight_batches_settle_after_the_hold_expires,
    cancel_during_a_send,
    cancel_a_scheduled_campaign,
    pause_and_resume_send_each_message_once,
    retry_failed_resends_only_retryable,
    queue_stats_equal_row_counts,
    operations_on_other_stores_campaigns_are_not_found
);
