//! Live events over SSE, read by a real HTTP client.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error, campaign, seed};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;
use std::time::Duration;

#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads events until the stream ends, `limit` events arrived, or the deadline passes.
async fn read_events(mut res: reqwest::Response, limit: usize) -> (Vec<SseEvent>, bool) {
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let chunk = match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => return (out, true),
            _ => return (out, false),
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut ev = SseEvent { event: "message".into(), id: None, data: Value::Null };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().into();
                } else if let Some(v) = line.strip_prefix("id:") {
                    ev.id = Some(v.trim().into());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            ev.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            out.push(ev);
            if out.len() >= limit {
                return (out, false);
            }
        }
    }
}

async fn campaign_events_stream_progress_and_final_status(b: Backend) {
    let sim = SimulatorConfig { latency_ms: 60, ..SimulatorConfig::default() };
    let (t, _sim) = TestApp::start_sending(b, sim, 50, 1).await;
    let s = t.store("Live").await;
    seed(&t, &s, 1_500, 5_000).await;
    let id = campaign(&t, &s, "Watched").await;
    let events_url = format!("{}/api/campaigns/{id}/events", t.url);
    let res = t.client.get(&events_url).bearer_auth(&s.key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    // First connection: read a few events, then drop it and resume with Last-Event-ID.
    let (first, _) = read_events(res, 3).await;
    assert!(!first.is_empty());
    let last = first.last().unwrap().clone();
    let res = t.client.get(&events_url).bearer_auth(&s.key).header("last-event-id", last.id.clone().unwrap()).send().await.unwrap();
    let (rest, ended) = read_events(res, usize::MAX).await;
    assert!(ended, "the stream ends after the final status");
    assert!(rest.iter().all(|e| e.id != last.id), "nothing before Last-Event-ID is repeated");
    let all: Vec<&SseEvent> = first.iter().chain(rest.iter()).collect();
    assert!(all.iter().any(|e| e.event == "progress" && e.data["total"] == 1_500), "at least one progress event: {all:?}");
    let fin = all.last().unwrap();
    assert_eq!((fin.event.as_str(), fin.data["status"].as_str()), ("status", Some("sent")), "{fin:?}");
    assert_eq!(fin.data["progress"]["sent"], 1_500);
    // Another store cannot watch it.
    let other = t.store("Nosy").await;
    let (st, e) = t.get(&format!("/api/campaigns/{id}/events"), &other.key).await;
    assert_error(st, &e, 404, "not_found");
}

async fn dashboard_events_show_the_wallet(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Dash").await;
    let res = t.client.get(format!("{}/api/events", t.url)).bearer_auth(&s.key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (events, _) = read_events(res, 4).await;
    let wallet = events.iter().find(|e| e.event == "wallet").expect("a wallet event");
    assert_eq!(wallet.data, json!({"balance": 0, "held": 0, "available": 0}));
    let totals = events.iter().find(|e| e.event == "totals").expect("a totals event");
    assert_eq!(totals.data, json!({"sent_today": 0, "sent_month": 0, "sent_all": 0, "delivered_all": 0}));
    let (st, e) = t.call(reqwest::Method::GET, "/api/events", None, None).await;
    assert_error(st, &e, 401, "unauthorized");
}

/// Opens `GET path` as a stream (the response is kept open by the caller).
async fn open(t: &TestApp, path: &str, key: &str) -> reqwest::Response {
    t.client.get(format!("{}{path}", t.url)).bearer_auth(key).send().await.unwrap()
}

/// The per-store cap (50 by default) answers the next stream of that store with 429 in the error
/// shape, campaign streams and dashboards alike; other stores still get theirs.
async fn the_streams_of_a_store_are_capped(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Many Tabs").await;
    let id = campaign(&t, &s, "Watched").await;
    let mut open_streams = Vec::new();
    for i in 0..50 {
        let path = if i % 2 == 0 { "/api/events".to_string() } else { format!("/api/campaigns/{id}/events") };
        let res = open(&t, &path, &s.key).await;
        assert_eq!(res.status(), 200, "stream {i}");
        open_streams.push(res);
    }
    for path in ["/api/events".to_string(), format!("/api/campaigns/{id}/events")] {
        let res = open(&t, &path, &s.key).await;
        let st = res.status();
        assert_eq!(st, 429, "the stream beyond the cap is refused: {path}");
        let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let e: Value = res.json().await.unwrap();
        assert_error(st, &e, 429, "too_many_streams");
        assert_eq!((e["details"]["scope"].as_str(), e["details"]["limit"].as_i64()), (Some("store"), Some(50)), "{e}");
        assert!(retry.is_some(), "Retry-After on {e}");
    }
    let other = t.store("Other").await;
    let res = open(&t, "/api/events", &other.key).await;
    assert_eq!(res.status(), 200, "another store is not affected");
    drop(open_streams);
}

/// The per-node cap (`--max-streams-per-node`) counts every store's streams.
async fn the_streams_of_a_node_are_capped(b: Backend) {
    let t = TestApp::start_with(b, |cfg| cfg.limits.max_streams_per_node = 2).await;
    let (a, other) = (t.store("Node A").await, t.store("Node B").await);
    let first = open(&t, "/api/events", &a.key).await;
    let second = open(&t, "/api/events", &other.key).await;
    assert_eq!((first.status(), second.status()), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    let res = open(&t, "/api/events", &other.key).await;
    let st = res.status();
    assert_eq!(st, 429);
    let e: Value = res.json().await.unwrap();
    assert_error(st, &e, 429, "too_many_streams");
    assert_eq!((e["details"]["scope"].as_str(), e["details"]["limit"].as_i64()), (Some("node"), Some(2)), "{e}");
}

/// A stream ends when the key it was opened with is revoked, and when its log-in session expires.
async fn a_stream_ends_when_its_key_is_revoked_or_its_session_expires(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Revoker").await;
    let (st, k) = t.post("/api/keys", &s.key, json!({"name": "dashboard screen"})).await;
    assert_eq!(st, 201, "{k}");
    let res = open(&t, "/api/events", k["key"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let (st, r) = t.post(&format!("/api/keys/{}/revoke", k["id"]), &s.key, json!({})).await;
    assert_eq!(st, 200, "{r}");
    let (_, ended) = read_events(res, usize::MAX).await;
    assert!(ended, "the stream of a revoked key ends");
    // A session's stream ends when the session expires (the test clock moves past it).
    let res = t.client.post(format!("{}/api/login", t.url)).json(&json!({"email": s.email, "password": s.password})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let res = t.client.get(format!("{}/api/events", t.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    t.clock.advance(3_600_000 + 1_000);
    let (_, ended) = read_events(res, usize::MAX).await;
    assert!(ended, "the stream of an expired session ends");
}

/// The store's queue figures count only its own messages, from its campaigns' counters; the
/// operator's queue counts every store's.
async fn the_store_queue_counts_its_own_messages(b: Backend) {
    let t = TestApp::start(b).await;
    let a = t.store("Queue A").await;
    seed(&t, &a, 30, 1_000).await;
    let other = t.store("Queue B").await;
    seed(&t, &other, 12, 1_000).await;
    for (s, name) in [(&a, "A"), (&other, "B")] {
        let id = campaign(&t, s, name).await;
        let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
        assert_eq!(st, 202, "{r}");
    }
    let (st, q) = t.get("/api/queue", &a.key).await;
    assert_eq!(st, 200, "{q}");
    assert_eq!(
        (q["waiting"].as_i64(), q["delayed"].as_i64(), q["active"].as_i64(), q["completed"].as_i64()),
        (Some(30), Some(0), Some(0), Some(0)),
        "{q}"
    );
    assert_eq!(q["by_priority"]["normal"], 30, "{q}");
    assert_eq!(q["throughput"]["last_minute"], 0, "{q}");
    let (_, q) = t.get("/api/queue", &other.key).await;
    assert_eq!(q["waiting"], 12, "{q}");
    let (_, q) = t.get("/api/admin/queue", &t.admin_key).await;
    assert_eq!(q["waiting"], 42, "{q}");
}

/// The dashboard's queries read no other store's messages: every access to `messages` in their
/// plans is an index search, never a scan of the table (PostgreSQL: EXPLAIN with sequential scans
/// priced out, so a plan that has no index to use still shows one; SQLite: EXPLAIN QUERY PLAN).
async fn dashboard_queries_search_indexes_only(b: Backend) {
    let t = TestApp::start(b).await;
    for sql in smscast::store::operations::STORE_QUEUE_SQL {
        let plan: Vec<String> = match t.db() {
            smscast::store::Db::Pg(p) => {
                let mut c = p.acquire().await.unwrap();
                sqlx::query("SET enable_seqscan = off").execute(&mut *c).await.unwrap();
                let plan: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", sql.replace("$1", "1").replace("$2", "1"))))
                        .fetch_all(&mut *c)
                        .await
                        .unwrap();
                sqlx::query("RESET enable_seqscan").execute(&mut *c).await.unwrap();
                plan
            }
            smscast::store::Db::Sqlite(p) => {
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", sql.replace("$1", "1").replace("$2", "1"))))
                        .fetch_all(&**p)
                        .await
                        .unwrap();
                rows.into_iter().map(|r| r.3).collect()
            }
        };
        let text = plan.join("\n");
        for line in &plan {
            // PostgreSQL: a scan of `messages` must name an index and have an index condition.
            assert!(!(line.contains("Seq Scan on messages")), "{sql}\n{text}");
            // SQLite: `SCAN messages` (with or without an index) walks the whole table.
            assert!(!(line.starts_with("SCAN") && line.contains("messages")), "{sql}\n{text}");
        }
        if matches!(b, Backend::Postgres) {
            let scans = plan.iter().filter(|l| l.contains(" on messages")).count();
            let bounded = plan
                .windows(2)
                .filter(|w| w[0].contains(" on messages") && (w[1].contains("Index Cond") || w[1].contains("Recheck Cond")))
                .count();
            assert_eq!(scans, bounded, "every index scan of messages is bounded by an index condition: {sql}\n{text}");
        }
    }
}

dual!(
    campaign_events_stream_progress_and_final_status,
    dashboard_events_show_the_wallet,
    the_streams_of_a_store_are_capped,
    the_streams_of_a_node_are_capped,
    a_stream_ends_when_its_key_is_revoked_or_its_session_expires,
    the_store_queue_counts_its_own_messages,
    dashboard_queries_search_indexes_only
);
