//! `smscast soak`: a bounded fault-injection run against real processes, then every invariant
//! checked (ARCHITECTURE.md, "Soak"). The simulator runs in this process (so the checks can read
//! what it accepted); `serve` and the workers are child processes of the current executable, so a
//! worker can be SIGKILLed, paused and restarted like any process in production.
//!
//! Phases: set up (database, simulator, processes, stores) → load + nemesis for `--duration` →
//! heal and settle (bounded) → stop the workers → checks → summary table. Every random choice
//! comes from `--seed`, printed first, so a failing run can be replayed (timing still varies).

mod checks;
mod load;
mod nemesis;
mod procs;

use crate::config::SoakArgs;
use crate::provider::simulator::{Simulator, SimulatorConfig};
use crate::store::{Db, is_postgres_url};
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sqlx::ConnectOptions;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A claim's lease in the workers: short, so a killed or paused worker's batch is reaped within
/// seconds; the provider timeout stays below it, as `worker` insists.
const LEASE_MS: u64 = 3_000;
const MITTO_TIMEOUT_MS: u64 = 1_000;

/// `60s`, `2m`, `1500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number.parse().map_err(|_| format!("not a duration: {s:?} (e.g. 60s, 2m, 1500ms)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit in {s:?}: use ms, s or m")),
    }
}

/// The provider's faults during the run: 5xx, 429 with Retry-After, timeouts before and after
/// acceptance, per-message rejections, and delayed, jittered, duplicated and out-of-order reports.
fn simulator_config(seed: u64) -> SimulatorConfig {
    SimulatorConfig {
        latency_ms: 20,
        fail_rate: 0.02,
        error_rate: 0.04,
        throttle_rate: 0.04,
        timeout_rate: 0.02,
        accept_then_timeout_rate: 0.03,
        // Past the client's timeout, so a hang is a timeout to it.
        timeout_hang_ms: MITTO_TIMEOUT_MS + 500,
        dlr_delay_ms: 100,
        dlr_jitter_ms: 1_500,
        dlr_duplicate_rate: 0.2,
        dlr_out_of_order_rate: 0.2,
        undelivered_rate: 0.1,
        seed: Some(seed),
        ..Default::default()
    }
}

/// Where the run keeps its SQLite file and the processes' logs; removed afterwards unless a check
/// failed (then its path is printed, for the logs).
struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!("soak seed: {seed} (replay with --seed {seed})");
    let dir = std::env::temp_dir().join(format!("smscast-soak-{}-{}", std::process::id(), crate::secrets::random_token(8)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut scratch = Scratch { dir, keep: false };

    let url = match &args.database_url {
        None => format!("sqlite://{}", scratch.dir.join("soak.db").display()),
        Some(u) if is_postgres_url(u) => {
            fresh_postgres(u).await?;
            u.clone()
        }
        Some(u) => bail!("--database-url must be a postgres:// URL (without it the soak uses a fresh SQLite file): {u}"),
    };
    let postgres = is_postgres_url(&url);
    // SQLite has one writer at a time and no way to break a connection from outside; one worker
    // process beside `serve` is what ARCHITECTURE.md supports there.
    if !postgres && args.workers != 1 {
        bail!("on SQLite the soak runs exactly one worker process (--workers 1); use --database-url postgres://… for more");
    }
    if args.workers == 0 || args.stores == 0 || args.contacts == 0 {
        bail!("--workers, --stores and --contacts must be at least 1");
    }
    println!(
        "soak: {} for {:?}, {} worker process(es), {} stores × {} contacts; logs in {}",
        if postgres { "PostgreSQL" } else { "SQLite" },
        args.duration,
        args.workers,
        args.stores,
        args.contacts,
        scratch.dir.display()
    );

    // Migrate and make the operator key, then let go of the database: nothing of the harness holds
    // a connection while the nemesis breaks them.
    let db = Db::connect(&url, 2).await.context("cannot open the soak database")?;
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let admin_key = crate::store::auth::create_admin_key(&db, "soak", now).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    db.close().await;

    crate::provider::install_crypto_provider();
    let sim = Simulator::new(simulator_config(seed));
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_url = format!("http://{}", sim_listener.local_addr()?);
    tokio::spawn(Arc::clone(&sim).serve(sim_listener));

    let secret = crate::secrets::random_token(32);
    let mut serve = procs::serve(&url, &secret, &scratch.dir).await?;
    sim.set_config(SimulatorConfig {
        dlr_url: Some(format!("{}/webhooks/mitto/dlr", serve.url)),
        dlr_secret: Some(secret.clone()),
        ..simulator_config(seed)
    });
    let mut workers = procs::Workers::start(args.workers, &url, &sim_url, &scratch.dir)?;

    let api = load::Api::new(&serve.url, &admin_key);
    let mut rng = StdRng::seed_from_u64(seed);
    let stores = load::setup(&api, args.stores, args.contacts, &mut rng).await?;
    println!("soak: {} stores ready; load and nemesis for {:?}", stores.len(), args.duration);

    let started = Instant::now();
    let deadline = started + args.duration;
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(load::run_store(api.clone(), s.clone(), seed.wrapping_add(1 + i as u64), deadline)))
        .collect();
    let nemesis = nemesis::run(&mut workers, &url, seed.wrapping_add(1_000), started, deadline).await;
    let mut histories = Vec::with_capacity(tasks.len());
    for t in tasks {
        histories.push(t.await.context("a store's load task panicked")?);
    }
    println!("soak: load stopped after {:.1}s; healing and settling (at most {:?})", started.elapsed().as_secs_f64(), args.settle);

    workers.heal()?;
    let db = Db::connect(&url, 4).await.context("the checker cannot open the database")?;
    let before = checks::snapshot(&db).await.context("reading the transfers when the load stopped")?;
    let settled = load::settle(&api, &db, &stores, &sim, args.settle).await;
    println!("soak: {settled}");
    workers.stop().await;

    let report = checks::run(&db, &sim, &api, &stores, &histories, &before).await;
    db.close().await;
    serve.stop().await;
    drop(sim);

    checks::print(&report, &histories, &nemesis);
    let violated: Vec<&str> = report.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    if violated.is_empty() {
        println!("soak passed: seed {seed}");
        Ok(())
    } else {
        // Said on stderr and with the exit status, not as an error value: a backtrace would
        // only bury the table.
        eprintln!(
            "soak found {} violation(s) [{}]; replay with --seed {seed}; logs in {}",
            violated.len(),
            violated.join("; "),
            scratch.dir.display()
        );
        scratch.keep = true;
        drop(scratch);
        std::process::exit(1)
    }
}

/// Creates (or re-creates) the soak's PostgreSQL database. Its name must contain "soak": the soak
/// drops it first, and must never be pointed at a real database by mistake.
async fn fresh_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let opts = sqlx::postgres::PgConnectOptions::from_str(url).context("not a PostgreSQL URL")?;
    let name = opts.get_database().unwrap_or_default().to_string();
    if !name.contains("soak") || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!(
            "the soak drops and re-creates the database it is given, so its name must contain \"soak\" and be lower-case letters, digits and _ (got \"{name}\"), e.g. postgres://postgres@127.0.0.1/smscast_soak"
        );
    }
    let mut admin = opts.clone().database("postgres").connect().await.context("cannot reach PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("1h").is_err() && parse_duration("s").is_err());
    }
}
