//! Starts the real app on port 0 against a fresh SQLite file or a fresh PostgreSQL database.
//! PostgreSQL must be reachable: if it is not, the tests fail (they never skip).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smscast::app::{self, AppConfig, RunningApp};
use smscast::clock::ManualClock;
use smscast::engine::EngineConfig;
use smscast::provider::mitto::{MittoClient, MittoConfig};
use smscast::provider::simulator::{Simulator, SimulatorConfig};
use smscast::store::on_db;
use std::sync::Arc;

/// The webhook secret every test app accepts (`X-Webhook-Secret`).
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// The metrics token every test app accepts (`GET /metrics`).
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per database for `async fn name(b: Backend)`.
#[macro_export]
macro_rules! dual {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await
            }
        }
    )*};
}

#[allow(dead_code)] // not every test binary module uses every field
pub struct TestApp {
    pub app: Option<RunningApp>,
    pub url: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub admin_key: String,
    pub database_url: String,
    pg_db: Option<String>,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)]
pub struct TestStore {
    pub id: i64,
    pub key: String,
    pub email: String,
    pub password: String,
}

/// A fresh, empty database for one test.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> (String, Option<String>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("test.db").display()), None),
        Backend::Postgres => {
            use sqlx::Connection;
            let name = format!("smscast_test_{}", smscast::secrets::random_token(12).to_lowercase());
            let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL must be running at {PG_ADMIN_URL} for these tests: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create test database");
            (format!("postgres://postgres@127.0.0.1:5432/{name}"), Some(name))
        }
    }
}

pub fn drop_database(name: &str) {
    let name = name.to_string();
    // Drop runs outside any runtime guarantee, so use a thread with its own small runtime.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut c).await;
            }
        })
    })
    .join();
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    /// The app with its send engine talking over real HTTP to an in-process Mitto simulator.
    #[allow(dead_code)]
    pub async fn start_sending(backend: Backend, sim: SimulatorConfig, bulk_size: usize, workers: usize) -> (TestApp, Arc<Simulator>) {
        smscast::provider::install_crypto_provider();
        let simulator = Simulator::new(sim);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind simulator");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(simulator.clone().serve(listener));
        let client = MittoClient::new(MittoConfig {
            base_url,
            api_key: "test-key".into(),
            traffic_account_id: "test-account".into(),
            bulk_size,
            // Long enough that a loaded CI machine does not turn slow batches into unknown outcomes;
            // the timeout tests hang the simulator for longer (1.5 s and up).
            timeout: std::time::Duration::from_millis(1_000),
        })
        .expect("mitto client");
        let t = Self::start_with(backend, |cfg| {
            cfg.provider = Some(Arc::new(client));
            cfg.engine = EngineConfig { workers, retry_base_ms: 20, poll_ms: 20, ..Default::default() };
        })
        .await;
        (t, simulator)
    }

    /// Waits (bounded) until the campaign reaches a final status; returns its progress.
    #[allow(dead_code)]
    pub async fn wait_finished(&self, key: &str, campaign: i64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (_, p) = self.get(&format!("/api/campaigns/{campaign}/progress"), key).await;
            if matches!(p["status"].as_str(), Some("sent" | "failed" | "cancelled")) {
                return p;
            }
            assert!(std::time::Instant::now() < deadline, "campaign {campaign} did not finish: {p}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut AppConfig)) -> TestApp {
        smscast::provider::install_crypto_provider();
        let _ = tracing_subscriber::fmt().with_env_filter("warn,smscast=info").with_test_writer().try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, pg_db) = fresh_database(backend, dir.path()).await;
        let clock = Arc::new(ManualClock::default());
        let mut cfg = AppConfig {
            database_url: database_url.clone(),
            db_connections: 8,
            public_url: Some("https://sms.example.test".into()),
            max_import_bytes: 5 * 1024 * 1024,
            session_ttl_ms: 3_600_000,
            billing: smscast::domain::credits::Billing::PerSegment,
            hold_ttl_ms: 24 * 3_600_000,
            client_ip_header: None,
            clock: clock.clone(),
            webhook_secrets: vec![WEBHOOK_SECRET.into()],
            metrics_tokens: vec![METRICS_TOKEN.into()],
            provider: None,
            engine: EngineConfig::default(),
            limits: Default::default(),
        };
        tweak(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = app::start(cfg, listener).await.expect("app starts");
        let admin_key = smscast::store::auth::create_admin_key(&app.state.db, "tests", 0).await.expect("admin key");
        TestApp {
            url: app.url(),
            app: Some(app),
            client: reqwest::Client::builder().cookie_store(false).build().unwrap(),
            clock,
            admin_key,
            database_url,
            pg_db,
            _dir: dir,
        }
    }

    /// A second node on the same database (another `serve` process in production), with its
    /// own clock at real time; stop it before the test ends.
    #[allow(dead_code)]
    pub async fn second_node(&self) -> RunningApp {
        let cfg = AppConfig {
            database_url: self.database_url.clone(),
            db_connections: 4,
            public_url: Some("https://sms.example.test".into()),
            max_import_bytes: 5 * 1024 * 1024,
            session_ttl_ms: 3_600_000,
            billing: smscast::domain::credits::Billing::PerSegment,
            hold_ttl_ms: 24 * 3_600_000,
            client_ip_header: None,
            clock: Arc::new(ManualClock::default()),
            webhook_secrets: Vec::new(),
            metrics_tokens: Vec::new(),
            provider: None,
            engine: EngineConfig::default(),
            limits: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        app::start(cfg, listener).await.expect("second node starts")
    }

    #[allow(dead_code)]
    pub fn clock_now(&self) -> i64 {
        use smscast::clock::Clock;
        self.clock.now_ms()
    }

    #[allow(dead_code)]
    pub fn db(&self) -> &smscast::store::Db {
        &self.app.as_ref().expect("running").state.db
    }

    /// Creates a store through the operator API.
    pub async fn store(&self, name: &str) -> TestStore {
        let email = format!("{}@example.test", name.to_lowercase().replace(' ', "-"));
        let (status, body) = self
            .call(Method::POST, "/api/admin/stores", Some(&self.admin_key), Some(serde_json::json!({"name": name, "email": email})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestStore {
            id: body["store"]["id"].as_i64().unwrap(),
            key: body["api_key"].as_str().unwrap().to_string(),
            email,
            password: body["password"].as_str().unwrap().to_string(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// POSTs over a plain socket, to control framing exactly and to read an answer the server
    /// gives before the whole body has arrived (a 413): it writes and reads at once and ignores a
    /// write the server cut short. With `declared_length`, that Content-Length is announced and only
    /// `body` is sent; without it, `body` goes chunked (no length).
    pub async fn raw_post(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        declared_length: Option<usize>,
        body: &[u8],
    ) -> (reqwest::StatusCode, Value) {
        self.raw_post_with(path, &format!("Authorization: Bearer {key}"), content_type, declared_length, body).await
    }

    /// `raw_post` with any authentication header line (`Name: value`).
    pub async fn raw_post_with(
        &self,
        path: &str,
        auth_header: &str,
        content_type: &str,
        declared_length: Option<usize>,
        body: &[u8],
    ) -> (reqwest::StatusCode, Value) {
        self.raw_request("POST", path, auth_header, content_type, declared_length, body).await
    }

    /// `raw_post_with` with any method.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        auth_header: &str,
        content_type: &str,
        declared_length: Option<usize>,
        body: &[u8],
    ) -> (reqwest::StatusCode, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.url.trim_start_matches("http://");
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let framing = match declared_length {
            Some(n) => format!("Content-Length: {n}"),
            None => "Transfer-Encoding: chunked".to_string(),
        };
        let mut out = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth_header}\r\nContent-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        if declared_length.is_some() {
            out.extend_from_slice(body);
        } else {
            for chunk in body.chunks(16 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        let (mut rd, mut wr) = sock.split();
        // Write and read at once: the server may answer before it has read everything.
        let write = async {
            let _ = wr.write_all(&out).await;
        };
        let read = async {
            let mut buf = Vec::new();
            let _ = rd.read_to_end(&mut buf).await;
            buf
        };
        let ((), buf) = tokio::join!(write, read);
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an HTTP answer: {text:?}"));
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status in {head}"));
        assert!(head.to_ascii_lowercase().contains("content-length"), "a plain body: {head}");
        (reqwest::StatusCode::from_u16(status).unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Uploads CSV text as the raw body.
    pub async fn import_csv(&self, key: &str, csv: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .post(format!("{}/api/contacts/import", self.url))
            .bearer_auth(key)
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(app) = self.app.as_mut() {
            app.signal_stop();
        }
        if let Some(name) = self.pg_db.take() {
            drop_database(&name);
        }
    }
}

/// Asserts the one error shape, the status and the code; returns the body for further checks.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "status for {body}");
    assert_eq!(body["ok"], Value::Bool(false), "ok:false in {body}");
    assert_eq!(body["code"], want_code, "code in {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    assert!(body.get("details").is_some_and(Value::is_object), "details in {body}");
    assert!(body["actionable"].is_boolean(), "actionable in {body}");
}

/// Imports `n` opted-in contacts and tops the store up with `credits`.
pub async fn seed(t: &TestApp, s: &TestStore, n: usize, credits: i64) {
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

/// A draft campaign to everyone, one segment per recipient.
pub async fn campaign(t: &TestApp, s: &TestStore, name: &str) -> i64 {
    let (st, c) = t
        .post("/api/campaigns", &s.key, json!({"name": name, "message": "Hi {{first_name}}, 20% off today", "audience": {"kind": "all"}}))
        .await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// Row counts by status, straight from the table the counters summarise.
pub async fn counts(t: &TestApp, campaign: i64) -> Value {
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
pub async fn assert_ledger_balanced(t: &TestApp, s: &TestStore, campaign: i64, topped_up: i64) {
    let (charged, sent_cost): (Option<i64>, Option<i64>) = on_db!(t.db(), |p| sqlx::query_as(
        "SELECT (SELECT CAST(SUM(amount) AS BIGINT) FROM transfers WHERE campaign_id = $1 AND kind = 'charge'),
                (SELECT CAST(SUM(cost) AS BIGINT) FROM messages WHERE campaign_id = $1 AND status = 'sent')"
    )
    .bind(campaign)
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(charged.unwrap_or(0), sent_cost.unwrap_or(0), "charges = cost of accepted messages");
    let (state, balance): (String, i64) = on_db!(t.db(), |p| {
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
