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
    let (events, _) = read_events(res, 2).await;
    let wallet = events.iter().find(|e| e.event == "wallet").expect("a wallet event");
    assert_eq!(wallet.data, json!({"balance": 0, "held": 0, "available": 0}));
    let (st, e) = t.call(reqwest::Method::GET, "/api/events", None, None).await;
    assert_error(st, &e, 401, "unauthorized");
}

dual!(campaign_events_stream_progress_and_final_status, dashboard_events_show_the_wallet);
