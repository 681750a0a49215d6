//! One store must not hurt the others: fair claims between stores, and a daily limit on test sends.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, assert_error, seed};
use serde_json::json;
use smscast::provider::simulator::SimulatorConfig;
use smscast::store::on_db;

async fn launch(t: &TestApp, s: &TestStore, name: &str, priority: &str) -> i64 {
    let (st, c) = t
        .post(
            "/api/campaigns",
            &s.key,
            json!({"name": name, "message": format!("{name}: hi {{{{first_name}}}}"), "audience": {"kind": "all"}, "priority": priority}),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    id
}

/// Store A launches a big urgent campaign, store B a small normal one just after it; with a slow
/// provider and one send loop, B's messages all go out while most of A's still wait.
async fn an_urgent_store_does_not_starve_the_others(b: Backend) {
    let sim = SimulatorConfig { latency_ms: 15, ..SimulatorConfig::default() };
    let (t, _sim) = TestApp::start_sending(b, sim, 10, 1).await;
    let big = t.store("Big Urgent").await;
    seed(&t, &big, 600, 10_000).await;
    let small = t.store("Small Normal").await;
    seed(&t, &small, 20, 1_000).await;
    let a = launch(&t, &big, "Flash sale", "urgent").await;
    let bc = launch(&t, &small, "Newsletter", "normal").await;
    let pb = t.wait_finished(&small.key, bc).await;
    assert_eq!(pb["sent"], 20, "{pb}");
    let pa = t.wait_finished(&big.key, a).await;
    assert_eq!(pa["sent"], 600, "{pa}");
    // Outcomes are recorded one batch after another (one send loop), so sent times order them.
    let (b_last,): (i64,) =
        on_db!(t.db(), |p| sqlx::query_as("SELECT MAX(sent_at) FROM messages WHERE campaign_id = $1").bind(bc).fetch_one(p).await).unwrap();
    let (a_after,): (i64,) = on_db!(t.db(), |p| sqlx::query_as("SELECT COUNT(*) FROM messages WHERE campaign_id = $1 AND sent_at > $2")
        .bind(a)
        .bind(b_last)
        .fetch_one(p)
        .await)
    .unwrap();
    assert!(a_after >= 300, "store B finished before most of store A's urgent campaign went out: {a_after} of 600 after B's last");
}

/// The operator's weight per store: validated, 404 for unknown stores, listed with the store.
async fn the_operator_weights_stores(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Weighted").await;
    let (st, r) =
        t.call(reqwest::Method::PUT, &format!("/api/admin/stores/{}/weight", s.id), Some(&t.admin_key), Some(json!({"weight": 3}))).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r, json!({"store_id": s.id, "weight": 3}));
    let (_, list) = t.get("/api/admin/stores", &t.admin_key).await;
    let listed = list["items"].as_array().unwrap().iter().find(|i| i["id"] == s.id).cloned().unwrap();
    assert_eq!(listed["weight"], 3, "{listed}");
    let (st, e) =
        t.call(reqwest::Method::PUT, &format!("/api/admin/stores/{}/weight", s.id), Some(&t.admin_key), Some(json!({"weight": 0}))).await;
    assert_error(st, &e, 422, "invalid_field");
    let (st, e) = t.call(reqwest::Method::PUT, "/api/admin/stores/999999/weight", Some(&t.admin_key), Some(json!({"weight": 2}))).await;
    assert_error(st, &e, 404, "not_found");
    let (st, e) =
        t.call(reqwest::Method::PUT, &format!("/api/admin/stores/{}/weight", s.id), Some(&s.key), Some(json!({"weight": 9}))).await;
    assert_error(st, &e, 401, "invalid_api_key");
}

/// 50 test messages per store per UTC day (the default): the 51st is refused with Retry-After
/// and nothing is queued; another store is not affected; the next day the store may test again.
async fn test_sends_are_limited_per_store_per_day(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Tester").await;
    seed(&t, &s, 1, 1_000).await;
    let (_, c) = t.post("/api/campaigns", &s.key, json!({"name": "T", "message": "Hello", "audience": {"kind": "all"}})).await;
    let id = c["id"].as_i64().unwrap();
    let phones = |round: usize| (0..5).map(|i| format!("+3069400{:05}", round * 10 + i)).collect::<Vec<_>>();
    for round in 0..10 {
        let (st, r) = t.post(&format!("/api/campaigns/{id}/test"), &s.key, json!({"phones": phones(round)})).await;
        assert_eq!(st, 202, "round {round}: {r}");
    }
    let res = t
        .client
        .post(format!("{}/api/campaigns/{id}/test", t.url))
        .bearer_auth(&s.key)
        .json(&json!({"phones": ["+306940099999"]}))
        .send()
        .await
        .unwrap();
    let st = res.status();
    let retry_after: i64 = res.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    let e = res.json().await.unwrap();
    assert_error(st, &e, 429, "test_send_limit");
    assert_eq!((e["details"]["limit"].as_i64(), e["details"]["used"].as_i64()), (Some(50), Some(50)), "{e}");
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    let (queued,): (i64,) =
        on_db!(t.db(), |p| sqlx::query_as("SELECT COUNT(*) FROM messages WHERE campaign_id = $1 AND test").bind(id).fetch_one(p).await)
            .unwrap();
    assert_eq!(queued, 50, "the refused test queued nothing");
    // Another store has its own allowance.
    let other = t.store("Other Tester").await;
    seed(&t, &other, 1, 1_000).await;
    let (_, c2) = t.post("/api/campaigns", &other.key, json!({"name": "T", "message": "Hello", "audience": {"kind": "all"}})).await;
    let (st, r) = t.post(&format!("/api/campaigns/{}/test", c2["id"]), &other.key, json!({"phones": phones(0)})).await;
    assert_eq!(st, 202, "{r}");
    // Tomorrow (UTC) the first store may test again.
    t.clock.advance(retry_after * 1000);
    let (st, r) = t.post(&format!("/api/campaigns/{id}/test"), &s.key, json!({"phones": phones(20)})).await;
    assert_eq!(st, 202, "{r}");
}

dual!(an_urgent_store_does_not_starve_the_others, the_operator_weights_stores, test_sends_are_limited_per_store_per_day);
