//! `smscast bench …`: benchmarks that print numbers (results in BENCHMARKS.md), one module each.
//!
//! This module holds what they share: the scratch database, the store, contacts and campaign they
//! start from, the simulator process, and reading a process's memory and CPU from `/proc`.

use crate::app::AppConfig;
use crate::clock::SystemClock;
use crate::config::{BenchArgs, BenchCommand, BenchDatabaseArgs};
use crate::demo::{FIRST, LAST, TAGS};
use crate::engine::EngineConfig;
use crate::provider::SmsProvider;
use crate::provider::mitto::{MittoClient, MittoConfig};
use crate::store::auth::Actor;
use crate::store::campaigns::{self, CampaignInput, CampaignRow};
use crate::store::stores::{self, CreateStore, NewStore};
use crate::store::{Db, StoreId, on_db};
use anyhow::{Context, bail};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

mod clicks;
mod dlr;
mod import;
mod preview;
mod send;
mod sse;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Import(a) => import::run(a).await,
        BenchCommand::Dlr(a) => dlr::run(a).await,
        BenchCommand::Preview(a) => preview::run(a).await,
        BenchCommand::Clicks(a) => clicks::run(a).await,
        BenchCommand::Send(a) => send::run(a).await,
        BenchCommand::Sse(a) => sse::run(a).await,
        BenchCommand::SseClients(a) => sse::clients(a).await,
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("smscast-bench-{}-{}", std::process::id(), crate::secrets::random_token(8)));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The benchmark's database, migrated and empty: a new SQLite file in `scratch` by default, or the
/// one `--database-url` names. Returns the pool and its URL (for the processes the bench starts).
async fn open_database(args: &BenchDatabaseArgs, scratch: &Scratch) -> anyhow::Result<(Db, String)> {
    let url = match &args.database_url {
        None => format!("sqlite://{}", scratch.0.join("bench.db").display()),
        Some(u) if crate::store::is_postgres_url(u) => {
            fresh_postgres(u).await?;
            u.clone()
        }
        Some(u) => {
            let path = u.strip_prefix("sqlite://").or_else(|| u.strip_prefix("sqlite:")).unwrap_or(u);
            if Path::new(path).exists() {
                bail!("{path} exists; the bench needs a fresh SQLite file (remove it or pick another path)");
            }
            format!("sqlite://{path}")
        }
    };
    let db = Db::connect(&url, args.db_connections).await.context("cannot open the benchmark database")?;
    Ok((db, url))
}

/// Creates (or re-creates) the benchmark's PostgreSQL database. Its name must contain "bench":
/// the bench drops it first, and must never be pointed at a real database by mistake.
async fn fresh_postgres(url: &str) -> anyhow::Result<()> {
    let opts = PgConnectOptions::from_str(url).context("not a PostgreSQL URL")?;
    let name = opts.get_database().unwrap_or_default().to_string();
    if !name.contains("bench") || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!(
            "the bench drops and re-creates the database it is given, so its name must contain \"bench\" and be lower-case letters, digits and _ (got \"{name}\"), e.g. postgres://postgres@127.0.0.1/smscast_bench"
        );
    }
    let mut admin = PgConnection::connect_with(&opts.clone().database("postgres")).await.context("cannot reach PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}

fn database_name(db: &Db) -> &'static str {
    if db.is_postgres() { "PostgreSQL" } else { "SQLite" }
}

/// A Greek shop, as the benchmarks' tenant.
async fn create_store(db: &Db, name: &str, email: &str, now: i64) -> anyhow::Result<NewStore> {
    let req = CreateStore { name, email, country: "GR", language: "el", timezone: "Europe/Athens", sender_name: None };
    stores::create(db, now, req).await.map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Funds the store far beyond any run and creates the campaign the benchmarks preview and send: a
/// personalised Greek message to every contact, with a discount code.
async fn funded_campaign(db: &Db, store: StoreId, funding_key: &str, now: i64) -> anyhow::Result<CampaignRow> {
    let mut tx = db.begin().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::store::ledger::top_up(&mut tx, store, 1_000_000_000, "bench", funding_key, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let input = CampaignInput {
        name: Some("Καλοκαιρινές εκπτώσεις".into()),
        message: Some("Γεια σου {{first_name}}! -20% σε όλα με τον κωδικό {{discount_code}} ως την Κυριακή.".into()),
        audience: Some(crate::domain::campaign::Audience::All),
        discount_code: Some(Some("SUMMER20".into())),
        ..CampaignInput::default()
    };
    campaigns::create(db, store, &Actor::Operator, input, now).await.map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Inserts `n` opted-in mobile contacts in set-based `INSERT … SELECT`s over a generated series
/// (100,000 rows a statement and transaction), with Greek and Latin names that vary in length so
/// recipients' texts (and a few segment counts) differ. The same SQL runs on both databases.
async fn seed_contacts(db: &Db, store: StoreId, n: u64, now: i64) -> anyhow::Result<()> {
    const CHUNK: u64 = 100_000;
    // A CASE picks each name: a join to a list of names makes SQLite's planner loop over the series
    // once per name.
    let pick = |list: &[&str], index: &str| {
        let arms: Vec<String> = list.iter().enumerate().map(|(i, name)| format!("WHEN {i} THEN '{name}'")).collect();
        format!("CASE {index} {} END", arms.join(" "))
    };
    let sql = format!(
        "WITH RECURSIVE n (i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2)
         INSERT INTO contacts (store_id, phone, mobile, first_name, last_name, consent, consent_changed_at, consent_source, created_at, updated_at)
         SELECT $3, '+3069' || CAST(10000000 + n.i AS TEXT), TRUE, {first}, {last}, 'opted_in', $4, 'bench', $4, $4 FROM n",
        first = pick(&FIRST, &format!("n.i % {}", FIRST.len())),
        last = pick(&LAST, &format!("(n.i / {}) % {}", FIRST.len(), LAST.len())),
    );
    let mut next = 0u64;
    while next < n {
        let end = (next + CHUNK).min(n);
        on_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(next as i64)
            .bind(end as i64)
            .bind(store.0)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))
        .context("seeding contacts")?;
        next = end;
        eprint!("\rseeded {next}/{n} contacts");
    }
    eprintln!();
    // What PostgreSQL's autovacuum does within a minute of a bulk load: without it the planner
    // still expects an almost empty table. (SQLite has no automatic ANALYZE, so it runs without
    // statistics, as in production.)
    if db.is_postgres() {
        on_db!(db, |p| sqlx::query("VACUUM ANALYZE contacts").execute(p).await.map(|_| ())).context("VACUUM ANALYZE contacts")?;
    }
    Ok(())
}

/// The app's settings for a benchmark: production defaults, with the given engine (or none).
fn app_config(url: &str, db: &BenchDatabaseArgs, public_url: &str, engine: Option<(Arc<dyn SmsProvider>, EngineConfig)>) -> AppConfig {
    let (provider, engine) = engine.unzip();
    AppConfig {
        database_url: url.to_string(),
        db_connections: db.db_connections,
        public_url: Some(public_url.to_string()),
        max_import_bytes: 1 << 20,
        session_ttl_ms: 3_600_000,
        billing: crate::domain::credits::Billing::PerSegment,
        hold_ttl_ms: 24 * 3_600_000,
        client_ip_header: None,
        clock: Arc::new(SystemClock),
        webhook_secrets: Vec::new(),
        metrics_tokens: Vec::new(),
        provider,
        engine: engine.unwrap_or_default(),
        limits: Default::default(),
    }
}

/// An engine with `workers` send loops that talks to the simulator at `sim_url`.
fn engine_for(sim_url: &str, bulk_size: usize, workers: usize) -> anyhow::Result<(Arc<dyn SmsProvider>, EngineConfig)> {
    let client = MittoClient::new(MittoConfig {
        base_url: sim_url.to_string(),
        api_key: "bench".into(),
        traffic_account_id: "bench".into(),
        bulk_size,
        timeout: Duration::from_secs(20),
    })
    .map_err(|e| anyhow::anyhow!("Mitto settings: {e}"))?;
    Ok((Arc::new(client), EngineConfig { workers, ..Default::default() }))
}

/// Sends the campaign through the API, as the store's user would. Returns the answer (202's body),
/// when the call started and how long it took (the launch: every row materialized, the cost held).
async fn launch(
    http: &reqwest::Client,
    base: &str,
    campaign: i64,
    key: &str,
    idempotency_key: &str,
) -> anyhow::Result<(Value, Instant, f64)> {
    let started = Instant::now();
    let res = http
        .post(format!("{base}/api/campaigns/{campaign}/send"))
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .send()
        .await?;
    let status = res.status();
    let launched: Value = res.json().await?;
    let launch = started.elapsed().as_secs_f64();
    if status.as_u16() != 202 {
        bail!("the send call answered {status}: {launched}");
    }
    eprintln!("launched in {launch:.2} s: {launched}");
    Ok((launched, started, launch))
}

/// Starts `smscast simulator` on a loopback port, as a process of its own (its memory is not the
/// engine's), and returns it with its base URL (read from its "listening on" line).
async fn spawn_simulator(latency_ms: u64) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe().context("cannot find the smscast executable")?;
    let mut child = Command::new(exe)
        .args(["simulator", "--listen", "127.0.0.1:0", "--latency-ms", &latency_ms.to_string()])
        .env("SMSCAST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the simulator")?;
    let mut lines = BufReader::new(child.stdout.take().context("simulator stdout")?).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, url)) = line.split_once("listening on ") {
                return Ok(url.trim().to_string());
            }
        }
        bail!("the simulator exited before it was listening")
    })
    .await
    .context("the simulator did not start within 20 s")??;
    // Keep draining its stdout so it can never block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

/// A memory field of `/proc/<pid>/status` (`VmHWM:` the peak, `VmRSS:` the current), in bytes.
fn proc_status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("self", "VmHWM:")
}

/// Resets this process's peak-RSS mark (Linux ≥ 4.0), so a measurement covers only what follows.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// User + system CPU seconds a process has used so far (`/proc/<pid>/stat`, 100 ticks a second).
fn proc_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after its closing parenthesis do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The `p`-th percentile (0–100) of sorted samples, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
