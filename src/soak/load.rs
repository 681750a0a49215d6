//! The stores' side of the soak: each store, on its own seed, starts campaigns (under an
//! Idempotency-Key, sometimes sent twice), cancels, pauses, resumes and retries them, and gets
//! top-ups from the operator — all through the real HTTP API, as a user would, retrying a request
//! that met a fault under the same key. It keeps a history of what the API acknowledged, for the
//! checks. Then `settle`: every paused campaign resumed, and a bounded wait for the work to end.

use crate::provider::simulator::Simulator;
use crate::store::{Db, on_db};
use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    pub admin_key: String,
}

/// An answer: status and JSON body; `None` when the request failed in transport.
type Answer = Option<(u16, Value)>;

impl Api {
    pub fn new(base: &str, admin_key: &str) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap_or_default();
        Api { http, base: base.trim_end_matches('/').to_string(), admin_key: admin_key.to_string() }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, key: &str, idem: Option<&str>, body: Option<&Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(reqwest::Method::GET, path, key, None, None).await
    }

    async fn post(&self, path: &str, key: &str, idem: Option<&str>, body: &Value) -> Answer {
        self.call(reqwest::Method::POST, path, key, idem, Some(body)).await
    }

    /// Retries a request that met a fault (transport error or 5xx) with the same key and body, a
    /// few times: what a careful client does. The last answer.
    async fn post_until_answered(&self, path: &str, key: &str, idem: Option<&str>, body: &Value) -> Answer {
        let mut last = None;
        for attempt in 0..6 {
            last = self.post(path, key, idem, body).await;
            match &last {
                Some((s, _)) if *s < 500 => return last,
                _ => tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await,
            }
        }
        last
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pub id: i64,
    pub key: String,
}

/// Per operation: answered 2xx, refused (4xx: the state did not allow it, e.g. pausing a
/// finished campaign), or met a fault (5xx or no answer even after retries).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpCount {
    pub ok: u32,
    pub refused: u32,
    pub faulted: u32,
}

#[derive(Debug, Default)]
pub struct History {
    pub store: i64,
    /// Top-ups the API acknowledged: (Idempotency-Key, amount). Each must be in the ledger once.
    pub top_ups: Vec<(String, i64)>,
    /// Top-ups never acknowledged: they may or may not have happened.
    pub top_ups_unknown: Vec<(String, i64)>,
    /// Sends the API acknowledged: (campaign, held credits, hold id).
    pub launches: Vec<(i64, i64, i64)>,
    /// A replayed Idempotency-Key answered differently from the first time.
    pub replay_mismatches: Vec<String>,
    pub ops: BTreeMap<&'static str, OpCount>,
}

impl History {
    fn count(&mut self, op: &'static str, answer: &Answer) {
        let c = self.ops.entry(op).or_default();
        match answer {
            Some((s, _)) if *s < 300 => c.ok += 1,
            Some((s, _)) if *s < 500 => c.refused += 1,
            _ => c.faulted += 1,
        }
    }
}

/// Credits each store starts with: enough that a late-confirmed message can always be charged
/// from the wallet (a wallet that cannot cover one is the one case where a sent message goes
/// uncharged, by design — ARCHITECTURE.md "Delivery status rules").
pub const INITIAL_CREDITS: i64 = 1_000_000;

/// The stores, each with its opted-in contacts and its first credits (through the API).
pub async fn setup(api: &Api, stores: usize, contacts: usize, rng: &mut StdRng) -> anyhow::Result<Vec<Store>> {
    let mut out = Vec::with_capacity(stores);
    for i in 0..stores {
        let body = json!({"name": format!("Soak store {i}"), "email": format!("soak{i}@example.test")});
        let Some((201, created)) = api.post("/api/admin/stores", &api.admin_key.clone(), None, &body).await else {
            bail!("cannot create soak store {i}");
        };
        let store = Store {
            id: created["store"]["id"].as_i64().context("store id")?,
            key: created["api_key"].as_str().context("store key")?.to_string(),
        };
        let mut csv = String::from("phone,first_name,consent\n");
        for c in 0..contacts {
            // Names of different lengths, so messages differ in length (and some in segments).
            let name = "Αλεξάνδρα Ιωάννα".chars().take(rng.random_range(3..16)).collect::<String>();
            csv.push_str(&format!("+3069{:08},{name},opted_in\n", 10_000_000 + i * 100_000 + c));
        }
        let res = api
            .http
            .post(format!("{}/api/contacts/import", api.base))
            .bearer_auth(&store.key)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .context("import")?;
        if !res.status().is_success() {
            bail!("importing the contacts of soak store {i} failed: {}", res.text().await.unwrap_or_default());
        }
        let path = format!("/api/admin/stores/{}/credits", store.id);
        let answer = api
            .post(&path, &api.admin_key, Some(&format!("soak-initial-{}", store.id)), &json!({"amount": INITIAL_CREDITS, "reason": "soak"}))
            .await;
        if !matches!(answer, Some((201, _))) {
            bail!("the first top-up of soak store {i} failed: {answer:?}");
        }
        out.push(store);
    }
    Ok(out)
}

const MESSAGES: [&str; 3] = [
    "Hi {{first_name}}, {n}% off everything today",
    "Γεια σου {{first_name}}! Έκπτωση {n}% σε όλα σήμερα",
    "{{first_name}}, your {n}% discount code waits at the checkout. Long text so some messages take two segments to send in full, which the hold must cover.",
];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

/// One store's load until `deadline`.
pub async fn run_store(api: Api, store: Store, seed: u64, deadline: Instant) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = History { store: store.id, ..Default::default() };
    h.top_ups.push((format!("soak-initial-{}", store.id), INITIAL_CREDITS));
    let mut campaigns: Vec<i64> = Vec::new();
    let mut n = 0u32;
    while Instant::now() < deadline {
        n += 1;
        // The campaign an operation acts on: mostly one of the latest, the ones still moving.
        let target = (!campaigns.is_empty()).then(|| campaigns[campaigns.len() - 1 - rng.random_range(0..campaigns.len().min(4))]);
        match (rng.random_range(0..10), target) {
            (0..=2, _) | (_, None) => {
                if let Some(id) = start(&api, &store, &mut rng, &mut h, n).await {
                    campaigns.push(id);
                }
            }
            (3, Some(id)) => {
                let a = api.post(&format!("/api/campaigns/{id}/cancel"), &store.key, None, &json!({})).await;
                h.count("cancel", &a);
            }
            (4 | 5, Some(id)) => {
                let a = api.post(&format!("/api/campaigns/{id}/pause"), &store.key, None, &json!({})).await;
                h.count("pause", &a);
            }
            (6 | 7, Some(id)) => {
                let a = api.post(&format!("/api/campaigns/{id}/resume"), &store.key, None, &json!({})).await;
                h.count("resume", &a);
            }
            (8, Some(_)) => {
                // Any campaign: failures are retried once a run has finished.
                let id = campaigns[rng.random_range(0..campaigns.len())];
                let a = api.post(&format!("/api/campaigns/{id}/retry-failed"), &store.key, None, &json!({})).await;
                h.count("retry-failed", &a);
            }
            _ => top_up(&api, &store, &mut rng, &mut h, n).await,
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..900))).await;
    }
    h
}

/// Creates a campaign and sends it under an Idempotency-Key (retried on faults); now and then
/// the same key once more, which must answer the same.
async fn start(api: &Api, store: &Store, rng: &mut StdRng, h: &mut History, n: u32) -> Option<i64> {
    let message = MESSAGES[rng.random_range(0..MESSAGES.len())].replace("{n}", &rng.random_range(5..60).to_string());
    let body = json!({
        "name": format!("soak {n} {}", crate::secrets::random_token(6)),
        "message": message,
        "audience": {"kind": "all"},
        "priority": PRIORITIES[rng.random_range(0..PRIORITIES.len())],
    });
    let created = api.post_until_answered("/api/campaigns", &store.key, None, &body).await;
    h.count("create", &created);
    let id = match created {
        Some((201, c)) => c["id"].as_i64()?,
        _ => return None,
    };
    let key = format!("soak-send-{}-{n}", store.id);
    let path = format!("/api/campaigns/{id}/send");
    let sent = api.post_until_answered(&path, &store.key, Some(&key), &json!({})).await;
    h.count("send", &sent);
    if let Some((s, body)) = &sent {
        if *s < 300 {
            h.launches.push((id, body["held_credits"].as_i64().unwrap_or(-1), body["hold_id"].as_i64().unwrap_or(-1)));
            if rng.random_bool(0.3) {
                let again = api.post(&path, &store.key, Some(&key), &json!({})).await;
                if let Some((s2, b2)) = again.filter(|(s2, _)| *s2 < 500) {
                    if (s2, &b2) != (*s, body) {
                        h.replay_mismatches.push(format!("send {key}: first {s} {body}, replay {s2} {b2}"));
                    }
                }
            }
        }
    }
    Some(id)
}

/// An operator top-up under an Idempotency-Key, retried on faults; sometimes replayed.
async fn top_up(api: &Api, store: &Store, rng: &mut StdRng, h: &mut History, n: u32) {
    let key = format!("soak-topup-{}-{n}", store.id);
    let amount = rng.random_range(100..5_000);
    let path = format!("/api/admin/stores/{}/credits", store.id);
    let body = json!({"amount": amount, "reason": "soak top-up"});
    let a = api.post_until_answered(&path, &api.admin_key, Some(&key), &body).await;
    h.count("top-up", &a);
    match &a {
        Some((201, first)) => {
            h.top_ups.push((key.clone(), amount));
            if rng.random_bool(0.3) {
                if let Some((s2, b2)) = api.post(&path, &api.admin_key, Some(&key), &body).await.filter(|(s, _)| *s < 500) {
                    // The wallet figures are read after the fact; the transfer must be the same one.
                    if s2 != 201 || b2["transfer_id"] != first["transfer_id"] {
                        h.replay_mismatches.push(format!("top-up {key}: first {first}, replay {s2} {b2}"));
                    }
                }
            }
        }
        Some((s, _)) if *s < 500 => {}
        _ => h.top_ups_unknown.push((key, amount)),
    }
}

/// After the load: resumes paused campaigns (the owner would) and waits, at most `bound`, until
/// nothing is pending, in flight, sending or paused, every sent message has its final delivery
/// status, no report is parked for a settled message and the simulator has posted every report.
/// A description of how it ended.
pub async fn settle(api: &Api, db: &Db, stores: &[Store], sim: &Simulator, bound: Duration) -> String {
    let started = Instant::now();
    let keys: BTreeMap<i64, &str> = stores.iter().map(|s| (s.id, s.key.as_str())).collect();
    let mut quiet = false;
    let mut last_said = Instant::now();
    loop {
        let paused: Vec<(i64, i64)> =
            on_db!(db, |p| sqlx::query_as("SELECT id, store_id FROM campaigns WHERE status = 'paused'").fetch_all(p).await)
                .unwrap_or_default();
        for (id, store) in paused {
            if let Some(key) = keys.get(&store) {
                let _ = api.post(&format!("/api/campaigns/{id}/resume"), key, None, &json!({})).await;
            }
        }
        let busy: Result<(i64, i64, i64, i64), _> = on_db!(db, |p| {
            sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM messages WHERE status IN ('pending', 'sending')),
                    (SELECT COUNT(*) FROM campaigns WHERE status IN ('sending', 'paused')),
                    (SELECT COUNT(*) FROM messages WHERE status = 'sent' AND (delivery_status IS NULL OR delivery_status IN ('queued', 'sent'))),
                    (SELECT COUNT(*) FROM delivery_reports r JOIN messages m ON m.id = r.message_id
                     WHERE r.state = 'parked' AND m.status NOT IN ('pending', 'sending'))"
        )
        .fetch_one(p)
        .await
        });
        // Quiet: no work left and no report still on its way (a late one would change rows
        // under the checks). Twice in a row, a quarter of a second apart.
        match busy {
            Ok((0, 0, 0, 0)) if sim.reports_pending() == 0 => {
                if quiet {
                    return format!("settled in {:.1}s", started.elapsed().as_secs_f64());
                }
                quiet = true;
            }
            _ => quiet = false,
        }
        if last_said.elapsed() >= Duration::from_secs(5) {
            last_said = Instant::now();
            println!(
                "soak: settling {:.0}s: pending/sending messages, sending/paused campaigns, sent awaiting a report, parked reports: {busy:?}; reports to post: {}",
                started.elapsed().as_secs_f64(),
                sim.reports_pending()
            );
        }
        if started.elapsed() > bound {
            return format!(
                "NOT settled after {:.1}s (pending or sending messages, sending or paused campaigns, sent messages awaiting a final report, parked reports: {busy:?}; reports not yet posted: {})",
                bound.as_secs_f64(),
                sim.reports_pending()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
