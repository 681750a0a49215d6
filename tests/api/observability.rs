//! What an operator watches: `/metrics` (HTTP, engine, provider, queue, holds, live streams),
//! `/readyz` when the database goes away, and the logs of the real binary (no colour codes in a
//! file, request and store ids in JSON, no secret ever written).

use crate::cli::{GUARD, TestDb, serve_demo_with, smscast};
use crate::dual;
use crate::harness::{Backend, METRICS_TOKEN, TestApp, assert_error, campaign, seed};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

dual!(
    metrics_count_requests_and_sends_by_route,
    metrics_show_queue_holds_and_streams,
    metrics_need_a_metrics_token_or_an_admin_key,
    provider_failures_are_counted_by_class,
    readyz_fails_when_the_database_is_unreachable,
    a_worker_serves_its_engine_metrics,
    logs_carry_ids_and_never_a_secret_or_a_colour_code,
);

/// A scrape, as `name{label="value",…}` (labels sorted) → value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut m = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line}"));
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    labels.sort_unstable();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => series.to_string(),
            };
            m.insert(key, value);
        }
        Scrape(m)
    }

    /// The series' value, 0 when it is not there yet (a counter that never moved).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        labels.sort_unstable();
        let key = if labels.is_empty() { name.to_string() } else { format!("{name}{{{}}}", labels.join(",")) };
        self.0.get(&key).copied().unwrap_or(0.0)
    }
}

async fn scrape(t: &TestApp) -> Scrape {
    let res = t.client.get(format!("{}/metrics", t.url)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    Scrape::parse(&res.text().await.unwrap())
}

/// Counters and histograms are the process's, and tests run side by side in one process: each
/// test compares before and after (at least what it did itself), never absolute values.
async fn metrics_count_requests_and_sends_by_route(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 10, 1).await;
    let s = t.store("Counted").await;
    seed(&t, &s, 25, 1_000).await;
    let id = campaign(&t, &s, "Counted").await;
    let before = scrape(&t).await;
    let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202);
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["sent"], 25, "{p}");
    let (st, _) = t.get("/api/campaigns/999999999", &s.key).await;
    assert_eq!(st, 404);
    let res = t.client.get(format!("{}/metrics", t.url)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/plain; version=0.0.4");
    let text = res.text().await.unwrap();
    let after = Scrape::parse(&text);
    let delta = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    // HTTP, by route pattern: the ids never become labels.
    let send = [("method", "POST"), ("route", "/api/campaigns/{id}/send"), ("status", "202")];
    assert!(delta("smscast_http_requests_total", &send) >= 1.0, "{text}");
    let missing = [("method", "GET"), ("route", "/api/campaigns/{id}"), ("status", "404")];
    assert!(delta("smscast_http_requests_total", &missing) >= 1.0, "{text}");
    let timing = [("method", "POST"), ("route", "/api/campaigns/{id}/send")];
    assert!(delta("smscast_http_request_duration_seconds_count", &timing) >= 1.0, "{text}");
    assert!(after.get("smscast_http_request_duration_seconds_bucket", &[("le", "+Inf"), timing[0], timing[1]]) >= 1.0, "{text}");
    let routes = text.split("route=\"").skip(1).map(|r| r.split('"').next().unwrap());
    for route in routes {
        assert!(!route.split('/').any(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())), "a raw path as a label: {route}");
    }

    // The engine: 25 claimed and sent, in batches of at most 10.
    assert!(delta("smscast_engine_claimed_messages_total", &[]) >= 25.0, "{text}");
    assert!(delta("smscast_engine_messages_total", &[("outcome", "sent")]) >= 25.0, "{text}");
    assert!(delta("smscast_engine_batch_duration_seconds_count", &[]) >= 3.0, "{text}");
    assert!(delta("smscast_engine_claim_duration_seconds_count", &[]) >= 3.0, "{text}");
    assert!(delta("smscast_provider_request_duration_seconds_count", &[("op", "send"), ("provider", "mitto")]) >= 3.0, "{text}");
    // This database's queue, exactly.
    assert_eq!(after.get("smscast_messages", &[("state", "completed")]), 25.0, "{text}");
    assert_eq!(after.get("smscast_messages", &[("state", "waiting")]), 0.0, "{text}");
    assert_eq!(after.get("smscast_holds_open", &[]), 0.0, "{text}");
    assert_eq!(after.get("smscast_workers", &[]), 1.0, "{text}");
}

/// Queue depth and holds come from the database at scrape time; open streams from this node.
async fn metrics_show_queue_holds_and_streams(b: Backend) {
    // No engine: a started campaign stays queued with its hold open.
    let t = TestApp::start(b).await;
    let s = t.store("Waiting").await;
    seed(&t, &s, 12, 500).await;
    let id = campaign(&t, &s, "Waiting").await;
    let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202);
    let (_, w) = t.get("/api/wallet", &s.key).await;
    let m = scrape(&t).await;
    assert_eq!(m.get("smscast_messages", &[("state", "waiting")]), 12.0);
    assert_eq!(m.get("smscast_waiting_by_priority", &[("priority", "normal")]), 12.0);
    assert_eq!(m.get("smscast_holds_open", &[]), 1.0);
    assert_eq!(m.get("smscast_credits_held", &[]), w["held"].as_f64().unwrap());
    assert!(m.get("smscast_credits_held", &[]) >= 12.0);
    assert_eq!(m.get("smscast_holds_overdue", &[]), 0.0);
    assert_eq!(m.get("smscast_sse_open_streams", &[]), 0.0);

    // A live stream counts while it is open.
    let stream = t.client.get(format!("{}/api/events", t.url)).bearer_auth(&s.key).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(scrape(&t).await.get("smscast_sse_open_streams", &[]), 1.0);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(&t).await.get("smscast_sse_open_streams", &[]) != 0.0 {
        assert!(Instant::now() < deadline, "a closed stream stops counting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Cancelled: the hold closes and nothing is held any more.
    let (st, _) = t.post(&format!("/api/campaigns/{id}/cancel"), &s.key, json!({})).await;
    assert_eq!(st, 200);
    let m = scrape(&t).await;
    assert_eq!((m.get("smscast_holds_open", &[]), m.get("smscast_credits_held", &[])), (0.0, 0.0));
    assert_eq!(m.get("smscast_messages", &[("state", "cancelled")]), 12.0);
}

/// A Prometheus configuration holds a metrics token that opens nothing else; an operator's admin
/// key works too; anyone else gets the one error shape.
async fn metrics_need_a_metrics_token_or_an_admin_key(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Nosy").await;
    let get = |auth: Option<String>| {
        let mut req = t.client.get(format!("{}/metrics", t.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.text().await.unwrap())
        }
    };
    for (auth, code) in [
        (None, "unauthorized"),
        (Some(format!("Bearer {}", s.key)), "invalid_api_key"),
        (Some("Bearer not-the-metrics-token-0000".into()), "invalid_api_key"),
    ] {
        let (st, body) = get(auth).await;
        assert_error(st, &serde_json::from_str(&body).unwrap(), 401, code);
    }
    let (st, text) = get(Some(format!("Bearer {METRICS_TOKEN}"))).await;
    assert_eq!(st, 200);
    assert!(text.contains("# TYPE smscast_messages gauge"), "{text}");
    let (st, _) = get(Some(format!("Bearer {}", t.admin_key))).await;
    assert_eq!(st, 200);
    // The metrics token is no operator key.
    let (st, e) = t.get("/api/admin/queue", METRICS_TOKEN).await;
    assert_error(st, &e, 401, "invalid_api_key");
}

/// A failed provider call is counted with its class: 5xx answers (retried, then given up), and
/// calls that got no answer in time (unknown, never resent).
async fn provider_failures_are_counted_by_class(b: Backend) {
    let class = |c: &'static str| [("class", c), ("op", "send"), ("provider", "mitto")];
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig { error_rate: 1.0, ..Default::default() }, 10, 1).await;
    let s = t.store("Down").await;
    seed(&t, &s, 3, 100).await;
    let id = campaign(&t, &s, "Down").await;
    let before = scrape(&t).await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["failed"], 3, "{p}");
    let after = scrape(&t).await;
    let delta = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    // Five attempts of one batch: five calls, four retries of three messages, then three failures.
    assert!(delta("smscast_provider_errors_total", &class("5xx")) >= 5.0);
    assert!(delta("smscast_engine_messages_total", &[("outcome", "retried")]) >= 12.0);
    assert!(delta("smscast_engine_messages_total", &[("outcome", "failed")]) >= 3.0);
    drop(t);

    let sim = SimulatorConfig { accept_then_timeout_rate: 1.0, timeout_hang_ms: 2_000, ..Default::default() };
    let (t, _sim) = TestApp::start_sending(b, sim, 10, 1).await;
    let s = t.store("Slow").await;
    seed(&t, &s, 2, 100).await;
    let id = campaign(&t, &s, "Slow").await;
    let before = scrape(&t).await;
    t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["unknown"], 2, "{p}");
    let after = scrape(&t).await;
    assert!(after.get("smscast_provider_errors_total", &class("timeout")) > before.get("smscast_provider_errors_total", &class("timeout")));
    let unknown = [("outcome", "unknown")];
    assert!(after.get("smscast_engine_messages_total", &unknown) - before.get("smscast_engine_messages_total", &unknown) >= 2.0);
}

/// A load balancer takes a node out when its database is gone: `/readyz` answers 503 in the error
/// shape, while `/healthz` (the process is up) still answers.
async fn readyz_fails_when_the_database_is_unreachable(b: Backend) {
    let t = TestApp::start(b).await;
    let (st, r) = t.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!((st.as_u16(), &r["ok"]), (200, &json!(true)));
    match b {
        // The database disappears under the pool: its connections are cut, new ones are refused.
        Backend::Postgres => {
            let name = t.database_url.rsplit('/').next().unwrap().to_string();
            crate::harness::drop_database(&name);
        }
        // A file does not go away under an open connection: the pool closes instead.
        Backend::Sqlite => t.db().close().await,
    }
    let (st, r) = t.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_error(st, &r, 503, "not_ready");
    let (st, _) = t.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(st, 200);
}

/// The real binary, logging at debug level into files as a service manager would: a full run
/// (log in, new API key, new store, admin key, webhook secret, a sent campaign with delivery
/// reports, a scrape) writes none of the secrets it used, and no colour codes; the same in JSON,
/// whose lines carry the request's id and store, and the batch's store and campaign.
async fn logs_carry_ids_and_never_a_secret_or_a_colour_code(b: Backend) {
    smscast::provider::install_crypto_provider();
    let mut db = TestDb::new(b).await;
    let db_password = "pg-password-never-logged-4711";
    if b == Backend::Postgres {
        // Trust authentication ignores it; the URL still carries it everywhere.
        db.url = db.url.replacen("postgres@", &format!("postgres:{db_password}@"), 1);
    }
    let mitto_key = "mitto-api-key-never-logged-0042";
    let webhook_secret = "webhook-secret-never-logged-0042";
    let metrics_token = "metrics-token-never-logged-0042";
    let mut secrets: Vec<String> = vec![mitto_key.into(), webhook_secret.into(), metrics_token.into()];
    if b == Backend::Postgres {
        secrets.push(db_password.into());
    }
    let args = ["--mitto-api-key", mitto_key, "--mitto-webhook-secret", webhook_secret, "--metrics-token", metrics_token];
    let client = reqwest::Client::new();

    // Text logs, to a file.
    let text_log = db.dir.path().join("serve.log");
    let mut demo = serve_demo_with(&db.url, &args, "debug", Stdio::from(std::fs::File::create(&text_log).unwrap())).await;
    secrets.extend([demo.password.clone(), demo.api_key.clone(), demo.admin_key.clone()]);
    let res =
        client.post(format!("{}/api/login", demo.url)).json(&json!({"email": demo.email, "password": demo.password})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v.to_string()).unwrap();
    secrets.push(session.clone());
    let res = client.get(format!("{}/api/store", demo.url)).header("cookie", format!("smscast_session={session}")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, key) = call(&client, &demo.url, "POST", "/api/keys", &demo.api_key, json!({"name": "ci"})).await;
    secrets.push(key["key"].as_str().unwrap().to_string());
    let (st, store) =
        call(&client, &demo.url, "POST", "/api/admin/stores", &demo.admin_key, json!({"name": "Logged", "email": "logged@example.test"}))
            .await;
    assert_eq!(st, 201, "{store}");
    secrets.extend([store["api_key"].as_str().unwrap().to_string(), store["password"].as_str().unwrap().to_string()]);
    let out = smscast(&["admin-key", "--name", "ci", "--database-url", &db.url]).env("SMSCAST_LOG", "debug").output().await.unwrap();
    assert!(out.status.success());
    let cli_stdout = String::from_utf8(out.stdout).unwrap();
    secrets.push(cli_stdout.trim().strip_prefix("Admin API key: ").expect("Admin API key: <key>").to_string());
    let cli_log = String::from_utf8(out.stderr).unwrap();
    send_and_wait_for_a_report(&client, &demo.url, &demo.api_key, "Logged as text").await;
    let res = client.get(format!("{}/metrics", demo.url)).bearer_auth(metrics_token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    demo.child.kill().await.unwrap();
    let log = std::fs::read_to_string(&text_log).unwrap();
    assert!(log.contains(" DEBUG ") && log.contains("request"), "debug logs were written: {}", &log[..log.len().min(2_000)]);
    assert!(!log.contains("\x1b["), "no colour codes in a log file");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()) && !cli_log.contains(secret.as_str()), "a secret in the logs: {secret}");
    }

    // JSON logs, to a file.
    let json_log = db.dir.path().join("serve.json");
    let mut args = args.to_vec();
    args.extend(["--log-format", "json"]);
    let mut demo = serve_demo_with(&db.url, &args, "debug", Stdio::from(std::fs::File::create(&json_log).unwrap())).await;
    let res =
        client.get(format!("{}/api/store", demo.url)).bearer_auth(&demo.api_key).header("x-request-id", "obs-req-1").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let store_id = res.json::<Value>().await.unwrap()["id"].clone();
    let campaign = send_and_wait_for_a_report(&client, &demo.url, &demo.api_key, "Logged as JSON").await;
    demo.child.kill().await.unwrap();
    let log = std::fs::read_to_string(&json_log).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON log line ({e}): {l}"))).collect();
    let request = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request" && l["span"]["request_id"] == "obs-req-1")
        .unwrap_or_else(|| panic!("the request's line with its id: {log}"));
    assert_eq!(request["span"]["route"], "/api/store");
    assert_eq!(request["span"]["store"], store_id);
    assert!(
        lines.iter().any(|l| l["span"]["name"] == "batch" && l["span"]["campaign"] == campaign && l["span"]["store"] == store_id),
        "the engine's lines name the batch's store and campaign"
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret in the JSON logs: {secret}");
    }
}

async fn call(client: &reqwest::Client, url: &str, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let res = client.request(method.parse().unwrap(), format!("{url}{path}")).bearer_auth(key).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Sends a campaign to the demo store's opted-in contacts and waits until it has finished and a
/// delivery report came back through the webhook (with its secret). Returns the campaign's id.
async fn send_and_wait_for_a_report(client: &reqwest::Client, url: &str, key: &str, name: &str) -> i64 {
    let (st, c) = call(
        client,
        url,
        "POST",
        "/api/campaigns",
        key,
        json!({"name": name, "message": "Hi {{first_name}}", "audience": {"kind": "all"}}),
    )
    .await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (st, r) = call(client, url, "POST", &format!("/api/campaigns/{id}/send"), key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let deadline = Instant::now() + GUARD;
    loop {
        let p: Value =
            client.get(format!("{url}/api/campaigns/{id}/progress")).bearer_auth(key).send().await.unwrap().json().await.unwrap();
        if p["status"] == "sent" && p["delivered"].as_i64().unwrap_or(0) > 0 {
            return id;
        }
        assert!(Instant::now() < deadline, "campaign {id} did not finish with reports: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `smscast worker` has no other HTTP: with `--metrics-listen` it serves its own engine's counters
/// to a scraper with the metrics token. Its own process, so the counts are exact.
async fn a_worker_serves_its_engine_metrics(b: Backend) {
    use tokio::io::AsyncBufReadExt;
    let t = TestApp::start(b).await;
    let s = t.store("Worked").await;
    seed(&t, &s, 5, 100).await;
    let id = campaign(&t, &s, "Worked").await;
    let sim = smscast::provider::simulator::Simulator::new(SimulatorConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.serve(listener));
    let token = "worker-metrics-token-0123456789";
    let mut child = smscast(&[
        "worker",
        "--database-url",
        &t.database_url,
        "--mitto-base-url",
        &sim_url,
        "--mitto-api-key",
        "k",
        "--mitto-traffic-account-id",
        "t",
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-token",
        token,
    ])
    .env("SMSCAST_LOG", "info")
    .stderr(Stdio::piped())
    .spawn()
    .expect("the worker starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(GUARD, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("the worker says where its metrics are");
            if line.contains("serving engine metrics") {
                return line.split("addr=").nth(1).expect("addr=").trim().to_string();
            }
        }
    })
    .await
    .expect("the metrics line");
    let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202);
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["sent"], 5, "{p}");
    let url = format!("http://{addr}/metrics");
    let res = reqwest::get(&url).await.unwrap();
    assert_error(res.status(), &res.json().await.unwrap(), 401, "unauthorized");
    let res = reqwest::Client::new().get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let m = Scrape::parse(&res.text().await.unwrap());
    assert_eq!(m.get("smscast_engine_messages_total", &[("outcome", "sent")]), 5.0);
    assert_eq!(m.get("smscast_engine_claimed_messages_total", &[]), 5.0);
    assert!(m.get("smscast_provider_request_duration_seconds_count", &[("op", "send"), ("provider", "mitto")]) >= 1.0);
    child.kill().await.unwrap();
}
