//! The simulator against the real Mitto client, and its parts on their own.

use super::wire::SmsIn;
use super::*;
use crate::domain::time::rfc3339;
use crate::provider::mitto::{MittoClient, MittoConfig};
use crate::provider::{DeliveryReport, WEBHOOK_SECRET_HEADER};
use crate::provider::{OutboundSms, SmsProvider, SubmitOutcome};
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;

async fn start(cfg: SimulatorConfig) -> (Arc<Simulator>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sim = Simulator::new(cfg);
    tokio::spawn(Arc::clone(&sim).serve(listener));
    (sim, url)
}

fn client(base_url: &str) -> MittoClient {
    MittoClient::new(MittoConfig {
        base_url: base_url.to_owned(),
        api_key: "key".into(),
        traffic_account_id: "ta-1".into(),
        bulk_size: 1000,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn sms(reference: &str) -> OutboundSms {
    OutboundSms {
        reference: reference.into(),
        destination: "+306912345678".into(),
        sender: "Shop".into(),
        text: format!("text {reference}"),
    }
}

fn raw_http() -> reqwest::Client {
    crate::provider::install_crypto_provider();
    reqwest::Client::new()
}

type Received = (HeaderMap, Bytes);

/// A DLR receiver on a port-0 listener that forwards every POST body.
async fn dlr_receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel::<Received>();
    let app = Router::new().route(
        "/dlr",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/dlr", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("DLR within 5 s").expect("receiver open")
}

fn accepted_id(out: &SubmitOutcome) -> &str {
    match out {
        SubmitOutcome::Accepted { provider_id } => provider_id,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[tokio::test]
async fn dlrs_carry_the_webhook_secret_header() {
    let (dlr_url, mut rx) = dlr_receiver().await;
    let (_sim, url) =
        start(SimulatorConfig { dlr_url: Some(dlr_url), dlr_secret: Some("s3cret".into()), dlr_delay_ms: 50, ..Default::default() }).await;
    let c = client(&url);
    let out = c.send_batch(&[sms("m1"), sms("m2")]).await.unwrap();
    let mut expected: Vec<(String, String)> =
        vec![(accepted_id(&out[0]).to_owned(), "m1".to_owned()), (accepted_id(&out[1]).to_owned(), "m2".to_owned())];
    let mut got = Vec::new();
    for _ in 0..2 {
        let (headers, body) = next(&mut rx).await;
        assert_eq!(headers.get(WEBHOOK_SECRET_HEADER).and_then(|v| v.to_str().ok()), Some("s3cret"));
        let report: DeliveryReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.delivery_status, "Delivered");
        assert_eq!(report.destination, "+306912345678");
        assert_eq!(report.traffic_account_id, "ta-1");
        assert_eq!(report.message_parts, 1);
        assert!(report.timestamp.ends_with('Z') && report.timestamp.len() == 24);
        got.push((report.message_id, report.reference.unwrap_or_default()));
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

/// The report faults: each report posted twice, then a stale "Sent" one stamped at acceptance —
/// what a receiver must survive. And the duplicate-acceptance record names the reference.
#[tokio::test]
async fn duplicated_and_out_of_order_reports() {
    let (dlr_url, mut rx) = dlr_receiver().await;
    let (sim, url) = start(SimulatorConfig {
        dlr_url: Some(dlr_url),
        dlr_delay_ms: 50,
        dlr_duplicate_rate: 1.0,
        dlr_out_of_order_rate: 1.0,
        seed: Some(7),
        ..Default::default()
    })
    .await;
    let c = client(&url);
    let out = c.send_batch(&[sms("d1")]).await.unwrap();
    let id = accepted_id(&out[0]).to_owned();
    let mut got = Vec::new();
    for _ in 0..3 {
        let (_, body) = next(&mut rx).await;
        let report: DeliveryReport = serde_json::from_slice(&body).unwrap();
        assert_eq!((report.message_id.as_str(), report.reference.as_deref()), (id.as_str(), Some("d1")));
        got.push((report.delivery_status, report.timestamp));
    }
    assert_eq!((got[0].0.as_str(), got[1].0.as_str(), got[2].0.as_str()), ("Delivered", "Delivered", "Sent"), "{got:?}");
    assert_eq!(got[0], got[1], "the duplicate is the same report");
    assert!(got[2].1 < got[0].1, "the stale report says an earlier time: {got:?}");

    c.send_batch(&[sms("d1")]).await.unwrap();
    let (accepted, duplicated) = sim.accepted_references();
    assert_eq!(accepted.len(), 2);
    assert_eq!(duplicated, vec!["d1".to_string()]);
    assert_eq!(sim.stats().duplicate_references, 1);
}

#[tokio::test]
async fn undelivered_shows_in_dlr_and_status() {
    let (dlr_url, mut rx) = dlr_receiver().await;
    let (_sim, url) =
        start(SimulatorConfig { dlr_url: Some(dlr_url), undelivered_rate: 1.0, dlr_delay_ms: 300, ..Default::default() }).await;
    let c = client(&url);
    let out = c.send_batch(&[sms("u1")]).await.unwrap();
    let id = accepted_id(&out[0]);
    // Before the DLR delay has passed the message is only "Sent".
    let before = c.message_status(id).await.unwrap();
    assert_eq!(before["deliveryStatus"], "Sent");
    assert_eq!(before["text"], "text u1");

    let (headers, body) = next(&mut rx).await;
    assert!(headers.get(WEBHOOK_SECRET_HEADER).is_none());
    let report: DeliveryReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(report.delivery_status, "Undelivered");
    assert_eq!(report.message_id, id);
    let after = c.message_status(id).await.unwrap();
    assert_eq!(after["deliveryStatus"], "Undelivered");
}

#[tokio::test]
async fn bad_requests() {
    let (sim, url) = start(SimulatorConfig::default()).await;
    let http = raw_http();
    let bulk = format!("{url}/api/v1.1/Messages/sendmessagesbulk");

    let no_key = http.post(&bulk).body("{}").send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let v: serde_json::Value = no_key.json().await.unwrap();
    assert_eq!(v["error"]["code"], "Unauthorized");

    for body in ["{not json", r#"{"messages": 3}"#, ""] {
        let resp = http.post(&bulk).header("X-Mitto-API-Key", "k").body(body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
    }

    // Missing fields are per-message rejections, not a 400.
    let resp = http
        .post(&bulk)
        .header("X-Mitto-API-Key", "k")
        .body(r#"{"messages":[{"destination":"+0123456789","sms":{"text":"x"}},{"destination":"+306912345678"},{}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["messages"][0]["error"]["code"], "InvalidDestination");
    assert_eq!(v["messages"][1]["error"]["code"], "EmptyText");
    assert_eq!(v["messages"][2]["error"]["code"], "InvalidDestination");
    assert!(v["messages"][0].get("messageId").is_none());
    assert_eq!(sim.stats().rejected, 3);

    let status = http.get(format!("{url}/api/v1.1/Messages/not-an-id")).header("X-Mitto-API-Key", "k").send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn single_send_and_stats_endpoint() {
    let (_sim, url) = start(SimulatorConfig::default()).await;
    let http = raw_http();
    let send = format!("{url}/api/v1.1/Messages/send");
    let ok: serde_json::Value = http
        .post(&send)
        .header("X-Mitto-API-Key", "k")
        .json(&serde_json::json!({
            "trafficAccountId": "ta", "destination": "+306912345678",
            "sms": {"text": "Γειά σου", "sender": "Shop"}, "reference": "one"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = ok["messages"][0]["messageId"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    assert_eq!(ok["messages"][0]["reference"], "one");
    assert_eq!(ok["messages"][0]["trafficAccountId"], "ta");

    let bad = http
        .post(&send)
        .header("X-Mitto-API-Key", "k")
        .json(&serde_json::json!({"destination": "+306912345678", "sms": {"text": ""}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["code"], "EmptyText");

    // Escaped JSON strings cannot be borrowed; they must still work.
    let status: serde_json::Value = http
        .get(format!("{url}/api/v1.1/Messages/{}", id.to_lowercase()))
        .header("X-Mitto-API-Key", "k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["text"], "Γειά σου");
    assert_eq!(status["deliveryStatus"], "Delivered");

    let stats: Stats = http.get(format!("{url}/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats, Stats { accepted: 1, unique_references: 1, duplicate_references: 0, rejected: 1 });
}

#[tokio::test]
async fn escaped_json_is_accepted() {
    let (_sim, url) = start(SimulatorConfig::default()).await;
    let resp: serde_json::Value = raw_http()
        .post(format!("{url}/api/v1.1/Messages/sendmessagesbulk"))
        .header("X-Mitto-API-Key", "k")
        .body(r#"{"messages":[{"destination":"+306912345678","sms":{"text":"line\nnext \u0393"},"reference":"r\"1"}]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["messages"][0]["reference"], "r\"1");
    assert_eq!(resp["bulkId"].as_str().map(str::len), Some(26));
}

#[tokio::test]
async fn full_size_batch() {
    let (sim, url) = start(SimulatorConfig { seed: Some(7), fail_rate: 0.1, ..Default::default() }).await;
    let c = client(&url);
    let batch: Vec<OutboundSms> = (0..1000).map(|i| sms(&format!("ref-{i}"))).collect();
    let out = c.send_batch(&batch).await.unwrap();
    assert_eq!(out.len(), 1000);
    let accepted = out.iter().filter(|o| matches!(o, SubmitOutcome::Accepted { .. })).count() as u64;
    let s = sim.stats();
    assert_eq!(s.accepted, accepted);
    assert_eq!(s.accepted + s.rejected, 1000);
    // 10% fail rate: far from both 0 and all.
    assert!((800..=980).contains(&accepted), "{accepted}");
    let ids: HashSet<&str> = out
        .iter()
        .filter_map(|o| match o {
            SubmitOutcome::Accepted { provider_id } => Some(provider_id.as_str()),
            SubmitOutcome::Rejected { .. } | SubmitOutcome::Unknown { .. } => None,
        })
        .collect();
    assert_eq!(ids.len() as u64, accepted);
}

#[test]
fn seeded_draws_are_reproducible() {
    let verdicts = |seed| {
        let sim = Simulator::new(SimulatorConfig { seed: Some(seed), fail_rate: 0.5, ..Default::default() });
        let cfg = sim.config();
        let msgs: Vec<MessageIn<'_>> = (0..64)
            .map(|_| MessageIn {
                traffic_account_id: None,
                destination: Some("+306912345678".into()),
                sms: Some(SmsIn { text: Some("x".into()), sender: None }),
                reference: None,
            })
            .collect();
        let Ok((v, _)) = sim.submit(&cfg, &msgs) else {
            panic!("no faults configured");
        };
        v.iter().map(|v| matches!(v, Verdict::Accepted(_))).collect::<Vec<_>>()
    };
    assert_eq!(verdicts(1), verdicts(1));
    assert_ne!(verdicts(1), verdicts(2));
}

#[test]
fn cli_defaults_match_default() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimulatorConfig,
    }
    let cli = Cli::try_parse_from(["sim"]).unwrap();
    let d = SimulatorConfig::default();
    assert_eq!(cli.sim.timeout_hang_ms, d.timeout_hang_ms);
    assert_eq!(cli.sim.fail_rate, d.fail_rate);
    assert_eq!(cli.sim.seed, d.seed);
    let cli = Cli::try_parse_from(["sim", "--error-rate", "0.5", "--dlr-url", "http://x", "--seed", "3"]).unwrap();
    assert_eq!(cli.sim.error_rate, 0.5);
    assert_eq!(cli.sim.dlr_url.as_deref(), Some("http://x"));
    assert_eq!(cli.sim.seed, Some(3));
}

#[test]
fn message_ids_round_trip() {
    let sim = Simulator::new(SimulatorConfig::default());
    let id = sim.next_id(now_ms());
    let text = MessageId(id).to_string();
    assert_eq!(text.len(), 26);
    assert_eq!(MessageId::parse(&text), Some(id));
    assert_eq!(MessageId::parse(&text.to_lowercase()), Some(id));
    assert_eq!(MessageId(u128::MAX).to_string(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!(MessageId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), Some(u128::MAX));
    assert_eq!(MessageId::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
    assert_eq!(MessageId::parse("0000000000000000000000000U"), None);
    assert_eq!(MessageId::parse("short"), None);
    assert_ne!(sim.next_id(5), sim.next_id(5));
    // Time-ordered, like a ULID.
    assert!(MessageId(sim.next_id(1)).to_string() < MessageId(sim.next_id(2)).to_string());
}

#[test]
fn timestamps() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    assert_eq!(rfc3339(4_102_444_800_123), "2100-01-01T00:00:00.123Z");
}

#[test]
fn e164() {
    assert!(is_e164("+30691234"));
    assert!(is_e164("+123456789012345"));
    assert!(!is_e164("+3069123"));
    assert!(!is_e164("+1234567890123456"));
    assert!(!is_e164("+0306912345"));
    assert!(!is_e164("306912345678"));
    assert!(!is_e164("+30 691234567"));
    assert!(!is_e164("+３０６９１２３４５６"));
    assert!(!is_e164(""));
}

#[test]
fn parts() {
    assert_eq!(message_parts("hello"), 1);
    assert_eq!(message_parts(&"a".repeat(160)), 1);
    assert_eq!(message_parts(&"a".repeat(161)), 2);
    assert_eq!(message_parts(&"a".repeat(306)), 2);
    assert_eq!(message_parts(&"a".repeat(307)), 3);
    // Extension characters cost two septets.
    assert_eq!(message_parts(&"€".repeat(80)), 1);
    assert_eq!(message_parts(&"€".repeat(81)), 2);
    // An escape pair never straddles two parts: 152 + 2 does not fit.
    assert_eq!(message_parts(&format!("{}€{}", "a".repeat(152), "a".repeat(10))), 2);
    assert_eq!(message_parts(&format!("{}€{}", "a".repeat(152), "a".repeat(152))), 3);
    // Greek lower case forces UCS-2.
    assert_eq!(message_parts(&"α".repeat(70)), 1);
    assert_eq!(message_parts(&"α".repeat(71)), 2);
    assert_eq!(message_parts(&"α".repeat(134)), 2);
    assert_eq!(message_parts(&"α".repeat(135)), 3);
    // Curly apostrophe is not GSM.
    assert_eq!(message_parts(&format!("It’s {}", "a".repeat(70))), 2);
    // Some upper-case Greek letters are in the GSM table.
    assert_eq!(message_parts(&"Δ".repeat(160)), 1);
}
