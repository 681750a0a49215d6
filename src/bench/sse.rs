//! `smscast bench sse` (issues 5 and 12): many live-event (SSE) clients, spread over several
//! stores, each store's clients on its campaign during a send.
//!
//! The parent process creates `--stores` stores, seeds N opted-in contacts split between them
//! (bulk INSERTs, not timed), creates a campaign in each, and runs the app with its engine; a Mitto
//! simulator runs as a child process. The SSE clients run in a second child process (`smscast
//! bench sse-clients`), so the parent's memory is the server's: they open `--clients` connections
//! to `GET /api/campaigns/{id}/events` over real HTTP (client i on store i mod `--stores`) and say
//! when all are open; the parent then starts every store's send. After the send it times a store's
//! queue figures (`GET /api/queue`) with every message in the table. While it runs, the clients' process also
//! reads the campaign's counters straight from the database every `--sample-every-ms`, and records
//! when each state first became visible there. An event's latency is the time from the first
//! sample that shows its state (or a later one: the counters only grow during a send) to the
//! moment a client parsed it. A connection is dropped when it failed to open, errored, or ended
//! before the final status event.

use super::{Scratch, mb, peak_rss_bytes, percentile, proc_cpu_seconds, proc_status_bytes, reset_peak_rss, spawn_simulator};
use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::{BenchSseArgs, BenchSseClientsArgs};
use crate::store::{Db, on_db};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// This process's soft limit on open files.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub async fn run(args: BenchSseArgs) -> anyhow::Result<()> {
    // The clients' process holds one socket per client, this one the other end of each.
    let need = args.clients as u64 + 256;
    if let Some(limit) = open_files_limit().filter(|l| *l < need) {
        bail!(
            "{} SSE clients need about {need} open files per process, the limit is {limit}: raise it first (ulimit -n {need})",
            args.clients
        );
    }
    let scratch = Scratch::new()?;
    let (db, url) = super::open_database(&args.db, &scratch).await?;
    let now = SystemClock.now_ms();
    let n_stores = args.stores.max(1);
    let seeding = Instant::now();
    // (store, its API key, its campaign), each store with an equal share of the contacts.
    let mut stores = Vec::with_capacity(n_stores);
    for i in 0..n_stores {
        let created = super::create_store(&db, &format!("Bench SSE {i}"), &format!("bench-sse-{i}@smscast.local"), now).await?;
        let store_id = created.store.store_id();
        super::seed_contacts(&db, store_id, args.contacts / n_stores as u64, now).await?;
        let campaign = super::funded_campaign(&db, store_id, &format!("bench-sse-{i}"), now).await?;
        stores.push((store_id, created.api_key, campaign.id));
    }
    let seeded_in = seeding.elapsed().as_secs_f64();
    eprintln!("seeded {} contacts over {n_stores} stores in {seeded_in:.1} s (not timed)", args.contacts);

    let (mut simulator, sim_url) = spawn_simulator(args.latency_ms).await?;
    let engine = super::engine_for(&sim_url, args.bulk_size, args.workers)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut cfg = super::app_config(&url, &args.db, &args.public_url, Some(engine));
    // Every client must get its stream: the caps are what is measured against, not what is hit.
    cfg.limits.max_streams_per_store = cfg.limits.max_streams_per_store.max(args.clients.div_ceil(n_stores));
    cfg.limits.max_streams_per_node = cfg.limits.max_streams_per_node.max(args.clients);
    let running = app::start_with_db(cfg, db.clone(), listener).await?;
    let base = running.url();

    // From here on this process is the server: the app, its engine and its connection pool.
    let peak_seeding = peak_rss_bytes().unwrap_or(0);
    let peak_reset = reset_peak_rss();
    let rss_idle = proc_status_bytes("self", "VmRSS:").unwrap_or(0);

    let exe = std::env::current_exe().context("cannot find the smscast executable")?;
    let campaign_list = stores.iter().map(|s| s.2.to_string()).collect::<Vec<_>>().join(",");
    let key_list = stores.iter().map(|s| s.1.as_str()).collect::<Vec<_>>().join(",");
    let mut clients = Command::new(exe)
        .args(["bench", "sse-clients", "--url", &base, "--campaigns", &campaign_list])
        .args(["--clients", &args.clients.to_string(), "--database-url", &url])
        .args(["--sample-every-ms", &args.sample_every_ms.to_string()])
        .env("SMSCAST_BENCH_SSE_KEY", &key_list)
        .env("SMSCAST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the clients' process")?;
    let clients_pid = clients.id().map(|p| p.to_string()).unwrap_or_default();
    let mut lines = BufReader::new(clients.stdout.take().context("clients' stdout")?).lines();
    let ready: Value = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("ready ") {
                return Ok(serde_json::from_str(rest)?);
            }
        }
        bail!("the clients' process exited before its connections were open")
    })
    .await
    .context("the clients did not connect within 300 s")??;
    let rss_open = proc_status_bytes("self", "VmRSS:").unwrap_or(0);
    let hwm_open = peak_rss_bytes().unwrap_or(0);
    eprintln!("clients: {ready}");

    let http = reqwest::Client::new();
    let cpu_start = proc_cpu_seconds("self").unwrap_or(0.0);
    let (mut messages, mut launch, mut started) = (0i64, 0.0f64, None);
    for (i, (_, key, campaign)) in stores.iter().enumerate() {
        let (launched, at, secs) = super::launch(&http, &base, *campaign, key, &format!("bench-sse-{i}")).await?;
        messages += launched["messages"].as_i64().unwrap_or(0);
        launch += secs;
        started.get_or_insert(at);
    }
    let started = started.context("no store")?;
    let result: Value = tokio::time::timeout(Duration::from_secs(3600), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("result ") {
                return Ok(serde_json::from_str(rest)?);
            }
        }
        bail!("the clients' process exited without a result")
    })
    .await
    .context("no result within an hour")??;
    let elapsed = started.elapsed().as_secs_f64();
    let peak = peak_rss_bytes().unwrap_or(0);
    let rss_end = proc_status_bytes("self", "VmRSS:").unwrap_or(0);
    let cpu = proc_cpu_seconds("self").unwrap_or(0.0) - cpu_start;
    let clients_hwm = proc_status_bytes(&clients_pid, "VmHWM:");
    let clients_cpu = proc_cpu_seconds(&clients_pid);
    let _ = tokio::time::timeout(Duration::from_secs(10), clients.wait()).await;
    let (mut sent, mut statuses) = (0i64, std::collections::BTreeSet::new());
    for (store_id, _, campaign) in &stores {
        let c = crate::store::campaigns::get(&db, *store_id, *campaign).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        sent += c.sent;
        statuses.insert(c.status);
    }
    let status = statuses.into_iter().collect::<Vec<_>>().join("/");
    // A store's queue figures with every store's messages in the table: counters and indexes, so
    // this does not grow with the table (before issue 12 it scanned all of it).
    let mut queue_ms = Vec::new();
    for _ in 0..20 {
        let at = Instant::now();
        let res = http.get(format!("{base}/api/queue")).bearer_auth(&stores[0].1).send().await?;
        if !res.status().is_success() {
            bail!("GET /api/queue answered {}", res.status());
        }
        res.bytes().await?;
        queue_ms.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    queue_ms.sort_by(f64::total_cmp);
    // The dashboard's sent today and this month (the store's charges) and the operator's queue
    // figures (every store's campaigns and charges): neither reads the message table either.
    let (mut totals_ms, mut operator_ms) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let now = SystemClock.now_ms();
        let (day, month) = crate::store::web::day_and_month_start(now);
        let at = Instant::now();
        crate::store::web::send_totals(&db, stores[0].0, day, month).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        totals_ms.push(at.elapsed().as_secs_f64() * 1000.0);
        let at = Instant::now();
        crate::store::operations::queue(&db, None, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        operator_ms.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    totals_ms.sort_by(f64::total_cmp);
    operator_ms.sort_by(f64::total_cmp);
    let table: i64 = on_db!(&db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(p).await).context("count messages")?;
    running.stop().await;
    let _ = simulator.kill().await;

    let lat = &result["latency_ms"];
    let fmt = |v: &Value| format!("p50 {} ms, p99 {} ms, max {} ms ({} events)", v["p50"], v["p99"], v["max"], v["count"]);
    let p99 = lat["all"]["p99"].as_f64().unwrap_or(f64::INFINITY);
    let dropped = result["dropped"].as_u64().unwrap_or(u64::MAX);
    let database = super::database_name(&db);
    println!("database:          {database}");
    println!(
        "engine:            in this process, {} send loop(s), bulk size {}, simulator latency {} ms",
        args.workers, args.bulk_size, args.latency_ms
    );
    println!("contacts:          {} over {n_stores} stores (seeded in {seeded_in:.1} s, not timed)", args.contacts);
    println!("messages:          {messages} → campaigns {status} with {sent} sent");
    println!("send:              launches {launch:.2} s in all, {elapsed:.1} s from the first send call until every client's stream ended");
    println!(
        "clients:           {} SSE connections in a child process, {} per store, all open in {} s; {} failed to open",
        args.clients,
        args.clients.div_ceil(n_stores),
        ready["open_seconds"],
        ready["failed"]
    );
    println!(
        "queue figures:     GET /api/queue of one store with {table} messages in the table: p50 {:.1} ms, max {:.1} ms (20 calls)",
        percentile(&queue_ms, 50.0),
        queue_ms.last().copied().unwrap_or(f64::NAN)
    );
    for (what, v) in [
        ("dashboard totals:  a store's sent today and this month", &totals_ms),
        ("operator queue:    every store's queue figures", &operator_ms),
    ] {
        println!("{what}, in process: p50 {:.2} ms, max {:.2} ms (20 calls)", percentile(v, 50.0), v.last().copied().unwrap_or(f64::NAN));
    }
    println!(
        "events received:   {} ({} progress, {} status; per client {}–{}; {} not matched to a sample), not counting the status each client gets on connecting",
        result["events"],
        result["progress_events"],
        result["status_events"],
        result["per_client_min"],
        result["per_client_max"],
        result["unmatched"]
    );
    println!("event latency:     {}", fmt(&lat["all"]));
    println!("  progress:        {}", fmt(&lat["progress"]));
    println!("  status:          {}", fmt(&lat["status"]));
    println!(
        "  how measured:    from the last database sample (every {} ms) that did not yet show the event's state: an upper bound; from the first that did: {}",
        args.sample_every_ms,
        fmt(&lat["all_lower"])
    );
    println!(
        "                   ({} distinct states sampled; a state change falls in a window of p50 {} ms, max {} ms between two samples)",
        result["samples"], result["sample_gap_ms"]["p50"], result["sample_gap_ms"]["max"]
    );
    println!("dropped:           {dropped} ({})", result["drop_reasons"]);
    println!(
        "server RSS:        peak {:.1} MB (VmHWM of the app's process, from after seeding to the end; clients and simulator are other processes)",
        mb(peak)
    );
    println!(
        "  RSS:             {:.1} MB idle → {:.1} MB with {} connections open (peak {:.1} MB) → {:.1} MB at the end{}",
        mb(rss_idle),
        mb(rss_open),
        args.clients,
        mb(hwm_open),
        mb(rss_end),
        if peak_reset { format!("; {:.1} MB peak while seeding", mb(peak_seeding)) } else { "; peak mark not resettable".into() }
    );
    println!("server CPU:        {cpu:.1} s over {elapsed:.1} s ({:.0}% of one core)", cpu * 100.0 / elapsed);
    if let (Some(h), Some(c)) = (clients_hwm, clients_cpu) {
        println!("clients' process:  peak RSS {:.1} MB, CPU {c:.1} s (not the server's)", mb(h));
    }
    println!(
        "target:            p99 ≤ 1500 ms and no dropped connections → {}",
        if p99 <= 1500.0 && dropped == 0 { "met" } else { "MISSED" }
    );
    if status != "sent" || messages != sent {
        bail!("the sends did not finish as expected: {status} with {sent} of {messages} sent");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The clients' process.

/// What a client parsed from one event.
struct Received {
    at: Instant,
    status: bool,
    state: State,
}

/// The parts of a campaign's state that only grow during a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    /// 0 before the send, 1 sending, 2 final.
    stage: u8,
    /// Messages claimed by a send loop so far (total − pending).
    claimed: i64,
    /// sent + failed + cancelled + unknown.
    processed: i64,
}

impl State {
    fn covers(&self, o: &State) -> bool {
        self.stage >= o.stage && self.claimed >= o.claimed && self.processed >= o.processed
    }
}

fn stage(status: &str) -> u8 {
    match status {
        "sent" | "failed" | "cancelled" => 2,
        "draft" | "scheduled" => 0,
        _ => 1,
    }
}

fn state_of(p: &Value) -> State {
    let n = |k: &str| p[k].as_i64().unwrap_or(0);
    State { stage: stage(p["status"].as_str().unwrap_or("")), claimed: n("total") - n("pending"), processed: n("processed") }
}

struct ClientOutcome {
    events: Vec<Received>,
    /// None when the stream ended after the final status.
    dropped: Option<String>,
}

/// One SSE connection: reads events until the final status (or an error), and reports when the
/// first event (the current status, sent at once) arrived.
async fn watch(http: reqwest::Client, url: String, key: Arc<str>, opened: tokio::sync::mpsc::UnboundedSender<bool>) -> ClientOutcome {
    let mut events = Vec::with_capacity(64);
    let res = match http.get(&url).bearer_auth(&*key).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let _ = opened.send(false);
            return ClientOutcome { events, dropped: Some(format!("HTTP {}", r.status().as_u16())) };
        }
        Err(e) => {
            let _ = opened.send(false);
            return ClientOutcome { events, dropped: Some(format!("connect: {}", e.without_url())) };
        }
    };
    let mut res = res;
    let mut buf = String::new();
    let mut first = true;
    loop {
        let chunk = match res.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                if first {
                    let _ = opened.send(false);
                }
                return ClientOutcome { events, dropped: Some("ended before the final status".into()) };
            }
            Err(e) => {
                if first {
                    let _ = opened.send(false);
                }
                return ClientOutcome { events, dropped: Some(format!("read: {}", e.without_url())) };
            }
        };
        let at = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut kind, mut data) = ("message", String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = if v.trim() == "status" { "status" } else { "progress" };
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else { continue };
            let is_status = kind == "status";
            let state = if is_status {
                let mut s = state_of(&v["progress"]);
                s.stage = stage(v["status"].as_str().unwrap_or(""));
                s
            } else {
                state_of(&v)
            };
            if first {
                first = false;
                let _ = opened.send(true);
            } else {
                events.push(Received { at, status: is_status, state });
            }
            if is_status && state.stage == 2 {
                return ClientOutcome { events, dropped: None };
            }
        }
    }
}

/// One state of the campaign as the sampler saw it, over one or more consecutive samples.
struct Sample {
    state: State,
    /// When the first sample showing it returned.
    first_after: Instant,
    /// When the last sample showing it started.
    last_before: Instant,
}

#[derive(sqlx::FromRow)]
struct Counters {
    status: String,
    total: i64,
    pending: i64,
    processed: i64,
}

/// `smscast bench sse-clients`: the client side of `bench sse`. Prints `ready {…}` when every
/// connection is open (or failed), then `result {…}` when every stream has ended.
pub async fn clients(args: BenchSseClientsArgs) -> anyhow::Result<()> {
    let db = Db::connect(&args.database_url, 2).await.context("cannot open the benchmark database")?;
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(30)).tcp_nodelay(true).build()?;
    let targets: Vec<(String, Arc<str>)> = args
        .campaigns
        .iter()
        .zip(args.key.split(','))
        .map(|(c, k)| (format!("{}/api/campaigns/{c}/events", args.url), Arc::<str>::from(k)))
        .collect();
    if targets.is_empty() || targets.len() != args.campaigns.len() {
        bail!("one key per campaign is needed");
    }
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    // Open at most 100 at a time: a burst of 1,000 SYNs at once would only test the listen backlog.
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    for i in 0..args.clients {
        let (url, key) = targets[i % targets.len()].clone();
        let (http, tx, gate, finished) = (http.clone(), opened_tx.clone(), gate.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let (inner_tx, mut inner_rx) = tokio::sync::mpsc::unbounded_channel();
            let stream = tokio::spawn(watch(http, url, key, inner_tx));
            // Hold the permit until this connection is open (or failed).
            let ok = inner_rx.recv().await.unwrap_or(false);
            drop(permit);
            let _ = tx.send(ok);
            let out = stream.await.unwrap_or_else(|e| ClientOutcome { events: Vec::new(), dropped: Some(format!("task: {e}")) });
            finished.fetch_add(1, Ordering::Relaxed);
            out
        }));
    }
    drop(opened_tx);
    let (mut open, mut failed) = (0usize, 0usize);
    while open + failed < args.clients {
        match tokio::time::timeout(Duration::from_secs(120), opened_rx.recv()).await {
            Ok(Some(true)) => open += 1,
            Ok(Some(false)) => failed += 1,
            _ => break,
        }
    }
    let open_seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    println!("ready {}", json!({"open": open, "failed": failed, "open_seconds": open_seconds}));

    // Sample the counters from the database until every stream ended, or 30 s after the final
    // status (the streams still open then are stalled), or an hour.
    let every = Duration::from_millis(args.sample_every_ms.max(1));
    // Per campaign, in the order of `--campaigns`.
    let mut samples: Vec<Vec<Sample>> = args.campaigns.iter().map(|_| Vec::with_capacity(8192)).collect();
    let mut finals: Vec<bool> = vec![false; args.campaigns.len()];
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut final_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        tick.tick().await;
        for (i, campaign) in args.campaigns.iter().enumerate() {
            let before = Instant::now();
            let row: Result<Counters, sqlx::Error> = on_db!(&db, |p| sqlx::query_as(
                "SELECT status, total, pending, sent + failed + cancelled + unknown AS processed FROM campaigns WHERE id = $1"
            )
            .bind(campaign)
            .fetch_one(p)
            .await);
            let at = Instant::now();
            match row {
                Ok(c) => {
                    let s = State { stage: stage(&c.status), claimed: c.total - c.pending, processed: c.processed };
                    match samples[i].last_mut() {
                        Some(l) if l.state == s => l.last_before = before,
                        _ => samples[i].push(Sample { state: s, first_after: at, last_before: before }),
                    }
                    finals[i] |= s.stage == 2;
                }
                Err(e) => eprintln!("sampler: {e}"),
            }
        }
        if final_at.is_none() && finals.iter().all(|f| *f) {
            final_at = Some(Instant::now());
        }
        if finished.load(Ordering::Relaxed) >= args.clients
            || final_at.is_some_and(|t| t.elapsed() > Duration::from_secs(30))
            || Instant::now() > deadline
        {
            break;
        }
    }
    db.close().await;
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        if t.is_finished() {
            outcomes.push(t.await.unwrap_or_else(|e| ClientOutcome { events: Vec::new(), dropped: Some(format!("task: {e}")) }));
        } else {
            t.abort();
            outcomes.push(ClientOutcome { events: Vec::new(), dropped: Some("stalled: no final status 30 s after it".into()) });
        }
    }

    // Latency of each event: from the first sample whose state covers the event's state.
    let (mut all, mut progress, mut status) = (Vec::new(), Vec::new(), Vec::new());
    let mut unmatched = 0u64;
    let mut all_lower = Vec::new();
    let mut drop_reasons = std::collections::BTreeMap::<String, u64>::new();
    let (mut per_min, mut per_max) = (usize::MAX, 0usize);
    for (n, o) in outcomes.iter().enumerate() {
        let samples = &samples[n % samples.len()];
        if let Some(r) = &o.dropped {
            *drop_reasons.entry(r.clone()).or_default() += 1;
        }
        per_min = per_min.min(o.events.len());
        per_max = per_max.max(o.events.len());
        for e in &o.events {
            // The state became visible after the last sample that did not show it started, and
            // before the first one that did returned.
            let i = samples.partition_point(|s| !s.state.covers(&e.state));
            let (Some(prev), Some(first)) = (i.checked_sub(1).and_then(|p| samples.get(p)), samples.get(i)) else {
                unmatched += 1;
                continue;
            };
            let ms = |t: Instant| e.at.checked_duration_since(t).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            let (upper, lower) = (ms(prev.last_before), ms(first.first_after));
            all.push(upper);
            all_lower.push(lower);
            if e.status { status.push(upper) } else { progress.push(upper) }
        }
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let r = |x: f64| (x * 10.0).round() / 10.0;
        json!({"count": v.len(), "p50": r(percentile(v, 50.0)), "p90": r(percentile(v, 90.0)), "p99": r(percentile(v, 99.0)), "max": r(v.last().copied().unwrap_or(f64::NAN))})
    };
    // How far apart a change and the sample before it can be: the measurement's resolution.
    let mut gaps: Vec<f64> =
        samples.iter().flat_map(|s| s.windows(2).map(|w| (w[1].first_after - w[0].last_before).as_secs_f64() * 1000.0)).collect();
    gaps.sort_by(f64::total_cmp);
    let dropped = outcomes.iter().filter(|o| o.dropped.is_some()).count();
    let result = json!({
        "events": all.len() as u64 + unmatched,
        "progress_events": progress.len(),
        "status_events": status.len(),
        "per_client_min": if outcomes.is_empty() { 0 } else { per_min },
        "per_client_max": per_max,
        "samples": samples.iter().map(Vec::len).sum::<usize>(),
        "sample_gap_ms": {"p50": (percentile(&gaps, 50.0) * 10.0).round() / 10.0, "max": (gaps.last().copied().unwrap_or(f64::NAN) * 10.0).round() / 10.0},
        "unmatched": unmatched,
        "dropped": dropped,
        "drop_reasons": drop_reasons,
        "latency_ms": {"all": summary(&mut all), "all_lower": summary(&mut all_lower), "progress": summary(&mut progress), "status": summary(&mut status)},
    });
    println!("result {result}");
    Ok(())
}
