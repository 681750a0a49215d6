//! `smscast bench send` (issue 4): the send engine end to end.
//!
//! Seeds N opted-in contacts (bulk INSERTs, not timed) in a fresh database, tops up credits and
//! creates a personalised campaign. A Mitto simulator runs as a separate process (its memory is not
//! the engine's), the app runs in this process with its HTTP API, and the engine runs either here
//! (`--workers` send loops) or in `--worker-processes` `smscast worker` children. Everything talks
//! over real HTTP. Timed: the launch (`POST /api/campaigns/{id}/send` until it answers: every row
//! materialized and the cost held), end-to-end messages/s (from the send call until progress says
//! `sent`), progress latency sampled over HTTP during the send, and peak RSS.

use super::{Scratch, mb, peak_rss_bytes, percentile, proc_cpu_seconds, proc_status_bytes, reset_peak_rss, spawn_simulator};
use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::BenchSendArgs;
use crate::store::{Db, on_db};
use anyhow::{Context, bail};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Starts `n` `smscast worker` processes against the database and the simulator, and waits until
/// each has sent its first heartbeat (connected, migrated, loops running).
async fn spawn_workers(db: &Db, n: usize, url: &str, sim_url: &str, args: &BenchSendArgs) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe().context("cannot find the smscast executable")?;
    let mut children = Vec::new();
    for _ in 0..n {
        let child = Command::new(&exe)
            .args(["worker", "--database-url", url, "--db-connections", &args.db.db_connections.to_string()])
            .args(["--workers", &args.workers.to_string(), "--public-url", &args.public_url])
            .args(["--mitto-base-url", sim_url, "--mitto-api-key", "bench", "--mitto-traffic-account-id", "bench"])
            .args(["--mitto-bulk-size", &args.bulk_size.to_string()])
            .env("SMSCAST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a worker process")?;
        children.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (up,): (i64,) = on_db!(db, |p| sqlx::query_as("SELECT COUNT(*) FROM workers").fetch_one(p).await)?;
        if up as usize >= n {
            return Ok(children);
        }
        for c in &mut children {
            if let Some(status) = c.try_wait()? {
                bail!("a worker process exited early ({status})");
            }
        }
        if Instant::now() > deadline {
            bail!("the worker processes did not report within 30 s ({up} of {n})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the progress sampler saw.
struct Sampled {
    latencies_ms: Vec<f64>,
    done: Instant,
    last: Value,
}

/// Reads the progress endpoint every `every` until the campaign is final; prints a line a second.
async fn sample_progress(client: &reqwest::Client, url: &str, key: &str, every: Duration, total: i64) -> anyhow::Result<Sampled> {
    let mut latencies_ms = Vec::with_capacity(4096);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        tick.tick().await;
        let t = Instant::now();
        let res = client.get(url).bearer_auth(key).send().await?;
        let status = res.status();
        let body: Value = res.json().await?;
        let done = Instant::now();
        latencies_ms.push((done - t).as_secs_f64() * 1000.0);
        if !status.is_success() {
            bail!("progress answered {status}: {body}");
        }
        if matches!(body["status"].as_str(), Some("sent" | "failed" | "cancelled")) {
            eprintln!();
            return Ok(Sampled { latencies_ms, done, last: body });
        }
        if shown.elapsed() >= Duration::from_secs(1) {
            shown = Instant::now();
            eprint!("\r{} of {total} processed, {} msg/s          ", body["processed"], body["rate_per_second"]);
        }
        if Instant::now() > deadline {
            bail!("the campaign did not finish within an hour: {body}");
        }
    }
}

pub async fn run(args: BenchSendArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let (db, url) = super::open_database(&args.db, &scratch).await?;
    let postgres = db.is_postgres();
    if args.worker_processes > 0 && !postgres {
        eprintln!("note: several processes on one SQLite file serialise on its write lock (PostgreSQL is the multi-process database)");
    }
    let now = SystemClock.now_ms();
    let created = super::create_store(&db, "Bench Send", "bench-send@smscast.local", now).await?;
    let store_id = created.store.store_id();
    let seeding = Instant::now();
    super::seed_contacts(&db, store_id, args.contacts, now).await?;
    let seeded_in = seeding.elapsed().as_secs_f64();
    eprintln!("seeded {} contacts in {seeded_in:.1} s (not timed)", args.contacts);
    if postgres {
        // Start the timed part with a clean slate: seeding's WAL flushed by a checkpoint of its own
        // rather than one that falls somewhere in the launch.
        on_db!(&db, |p| sqlx::query("CHECKPOINT").execute(p).await.map(|_| ()))?;
    }
    let campaign = super::funded_campaign(&db, store_id, "bench-send", now).await?;

    let (mut simulator, sim_url) = spawn_simulator(args.latency_ms).await?;
    let sim_pid = simulator.id().map(|p| p.to_string()).unwrap_or_default();
    eprintln!("simulator (pid {sim_pid}) at {sim_url}");
    let engine = if args.worker_processes == 0 { Some(super::engine_for(&sim_url, args.bulk_size, args.workers)?) } else { None };
    let mut workers =
        if args.worker_processes > 0 { spawn_workers(&db, args.worker_processes, &url, &sim_url, &args).await? } else { Vec::new() };
    let worker_pids: Vec<String> = workers.iter().filter_map(|c| c.id()).map(|p| p.to_string()).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cfg = super::app_config(&url, &args.db, &args.public_url, engine);
    let running = app::start_with_db(cfg, db.clone(), listener).await?;
    let base = running.url();
    let client = reqwest::Client::builder().pool_max_idle_per_host(4).build()?;

    // The seeding and the setup above are not the engine's: measure memory from here.
    let peak_seeding = peak_rss_bytes().unwrap_or(0);
    let peak_reset = reset_peak_rss();
    let rss_start = peak_rss_bytes().unwrap_or(0);
    let cpu_start = proc_cpu_seconds("self").unwrap_or(0.0);
    let sim_cpu_start = proc_cpu_seconds(&sim_pid).unwrap_or(0.0);

    eprintln!("sending campaign {} to {} contacts …", campaign.id, args.contacts);
    let (launched, started, launch) = super::launch(&client, &base, campaign.id, &created.api_key, "bench-send").await?;
    let total = launched["messages"].as_i64().unwrap_or(0);
    // The launch and the sending peak separately: the mark is reset again here.
    let peak_launch = peak_rss_bytes().unwrap_or(0);
    if peak_reset {
        reset_peak_rss();
    }
    let progress_url = format!("{base}/api/campaigns/{}/progress", campaign.id);
    let sampled =
        sample_progress(&client, &progress_url, &created.api_key, Duration::from_millis(args.progress_every_ms.max(1)), total).await?;
    let elapsed = (sampled.done - started).as_secs_f64();
    let sending = elapsed - launch;

    // Memory and CPU before anything stops (a process that has exited has no status to read).
    let peak_sending = peak_rss_bytes().unwrap_or(0);
    let peak = peak_launch.max(peak_sending);
    let cpu = proc_cpu_seconds("self").unwrap_or(0.0) - cpu_start;
    let sim_cpu = proc_cpu_seconds(&sim_pid).unwrap_or(0.0) - sim_cpu_start;
    let memory = |pid: &str| Some((proc_status_bytes(pid, "VmHWM:")?, proc_status_bytes(pid, "VmRSS:")?));
    let sim_mem = memory(&sim_pid);
    let worker_mem: Vec<Option<(u64, u64)>> = worker_pids.iter().map(|p| memory(p)).collect();
    let worker_cpu: Vec<Option<f64>> = worker_pids.iter().map(|p| proc_cpu_seconds(p)).collect();
    let loop_times = running.engine.as_ref().map(|e| e.loop_times());

    let stats: Value = client.get(format!("{sim_url}/stats")).send().await?.json().await?;
    running.stop().await;
    for w in &mut workers {
        let _ = w.kill().await;
    }
    let _ = simulator.kill().await;

    // The outcome is checked, not assumed: every recipient accepted once, counters equal rows,
    // the ledger balanced.
    let db = Db::connect(&url, 2).await?;
    let by_status: Vec<(String, i64)> =
        on_db!(&db, |p| sqlx::query_as("SELECT status, COUNT(*) FROM messages WHERE campaign_id = $1 GROUP BY status ORDER BY status")
            .bind(campaign.id)
            .fetch_all(p)
            .await)?;
    let (charged, sent_cost, hold_state): (Option<i64>, Option<i64>, String) = on_db!(&db, |p| sqlx::query_as(
        "SELECT (SELECT CAST(SUM(amount) AS BIGINT) FROM transfers WHERE campaign_id = $1 AND kind = 'charge'),
                (SELECT CAST(SUM(cost) AS BIGINT) FROM messages WHERE campaign_id = $1 AND status = 'sent'),
                (SELECT h.state FROM holds h JOIN campaigns c ON c.hold_id = h.id WHERE c.id = $1)"
    )
    .bind(campaign.id)
    .fetch_one(p)
    .await)?;
    db.close().await;
    let last = &sampled.last;
    let mut problems = Vec::new();
    if last["status"] != "sent" || last["sent"].as_i64() != Some(total) {
        problems.push(format!("final progress is not all sent: {last}"));
    }
    if stats["accepted"].as_i64() != Some(total) || stats["unique_references"].as_i64() != Some(total) || stats["duplicate_references"] != 0
    {
        problems.push(format!("the simulator did not accept each recipient exactly once: {stats}"));
    }
    if by_status != [("sent".to_string(), total)] {
        problems.push(format!("message rows by status: {by_status:?}"));
    }
    if charged != sent_cost || hold_state != "released" {
        problems.push(format!("ledger: charged {charged:?}, cost of sent messages {sent_cost:?}, hold {hold_state}"));
    }

    let mut lat = sampled.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    let database = super::database_name(&db);
    let engine_desc = if args.worker_processes == 0 {
        format!("in this process, {} send loops", args.workers)
    } else {
        format!("{} `smscast worker` processes × {} send loops", args.worker_processes, args.workers)
    };
    println!("database:          {database}");
    println!("engine:            {engine_desc}, bulk size {}, simulator latency {} ms", args.bulk_size, args.latency_ms);
    println!("contacts:          {} (seeded in {seeded_in:.1} s, not timed)", args.contacts);
    println!("messages:          {total} ({} segments, {} credits held)", launched["segments"], launched["held_credits"]);
    println!("launch:            {launch:.2} s (send call until it answered: rows materialized, cost held)");
    println!("end to end:        {elapsed:.2} s → {:.0} messages/s (send call until progress said sent)", total as f64 / elapsed);
    println!("after launch:      {sending:.2} s → {:.0} messages/s (sending only)", total as f64 / sending);
    println!(
        "progress latency:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples every {} ms)",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len(),
        args.progress_every_ms
    );
    let label = if args.worker_processes == 0 { "peak RSS (engine):" } else { "peak RSS (app):   " };
    println!(
        "{label} {:.1} MB{}",
        mb(peak),
        if peak_reset {
            format!(
                " (this process, from the send call on: launch {:.1} MB, sending {:.1} MB; the mark was reset after seeding and \
                 after the launch; {:.1} MB at the first reset, {:.1} MB peak while seeding)",
                mb(peak_launch),
                mb(peak_sending),
                mb(rss_start),
                mb(peak_seeding)
            )
        } else {
            " (whole process, seeding included: /proc/self/clear_refs was not writable)".to_string()
        }
    );
    for (i, (pid, m)) in worker_pids.iter().zip(&worker_mem).enumerate() {
        match m {
            Some((hwm, rss)) => println!(
                "worker {} RSS:      peak {:.1} MB, now {:.1} MB (pid {pid}, VmHWM of the whole process), CPU {:.1} s",
                i + 1,
                mb(*hwm),
                mb(*rss),
                worker_cpu[i].unwrap_or(f64::NAN)
            ),
            None => println!("worker {} RSS:      unavailable (pid {pid} had exited)", i + 1),
        }
    }
    if let Some((hwm, _)) = sim_mem {
        println!("simulator:         peak RSS {:.1} MB (separate process, not counted), CPU {sim_cpu:.1} s", mb(hwm));
    }
    println!("CPU (this process): {cpu:.1} s over {elapsed:.1} s ({:.0}% of one core)", cpu * 100.0 / elapsed);
    if let Some(t) = loop_times {
        println!("send loops:        {t}");
    }
    println!("simulator stats:   {stats}");
    if problems.is_empty() {
        println!("checked:           every recipient accepted exactly once, counters = rows, charges = cost of sent, hold released");
        Ok(())
    } else {
        bail!("the run is not valid:\n  {}", problems.join("\n  "))
    }
}
