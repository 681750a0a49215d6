//! Process-level faults (issue 4, "Done means"): `smscast worker` processes killed with SIGKILL in
//! the middle of batches and restarted, and two worker processes sharing one PostgreSQL database —
//! all sending over real HTTP to a `smscast simulator` process. The API runs in the test process
//! without an engine: only the worker processes send.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, assert_ledger_balanced, campaign, counts, seed};
use serde_json::{Value, json};
use smscast::store::on_db;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smscast");
const RECIPIENTS: i64 = 5_000;
const CREDITS: i64 = 20_000;
/// Short enough that a killed worker's batches are reaped within seconds; the provider timeout
/// stays below it, as `smscast worker` insists.
const LEASE_MS: &str = "2000";
const MITTO_TIMEOUT_MS: &str = "1000";
/// A guard against a hung process or a campaign that never moves, not a wait for anything.
const GUARD: Duration = Duration::from_secs(45);

/// A child process, killed (SIGKILL) and reaped when dropped — also when an assertion fails.
struct Proc {
    child: Child,
    /// Kept open so a late write to stdout never meets a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Proc {
    /// SIGKILL: no shutdown path runs, whatever the process was doing.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the child");
        let status = self.child.wait().expect("reap the child");
        assert!(!status.success(), "the child was killed, not finished: {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smscast(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("SMSCAST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// `smscast simulator` on port 0 with some latency per call, so kills land while batches are in
/// flight; returns the process and its base URL, read from the line it prints.
async fn simulator() -> (Proc, String) {
    simulator_with_latency("30").await
}

async fn simulator_with_latency(ms: &str) -> (Proc, String) {
    let child = smscast(&["simulator", "--listen", "127.0.0.1:0", "--latency-ms", ms])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the simulator starts");
    first_line(child, "Mitto simulator listening on ").await
}

/// The child and what follows `prefix` on the first line it prints (its address).
async fn first_line(mut child: Child, prefix: &'static str) -> (Proc, String) {
    let stdout = child.stdout.take().expect("stdout");
    let mut proc = Proc { child, _stdout: None };
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        (reader, line)
    });
    // On a timeout `proc` is dropped: the kill closes the pipe and ends the blocking read.
    let (reader, line) = tokio::time::timeout(GUARD, read).await.expect("the child prints its address").unwrap();
    proc._stdout = Some(reader);
    let url = line.trim().strip_prefix(prefix).unwrap_or_else(|| panic!("unexpected first line from the child: {line:?}")).to_string();
    (proc, url)
}

/// `smscast worker` against the test's database and the simulator: two send loops, bulk calls of
/// 100, a 2-second lease.
fn worker(database_url: &str, sim_url: &str) -> Proc {
    let child = smscast(&[
        "worker",
        "--database-url",
        database_url,
        "--db-connections",
        "4",
        "--mitto-base-url",
        sim_url,
        "--mitto-api-key",
        "k",
        "--mitto-traffic-account-id",
        "t",
        "--mitto-bulk-size",
        "100",
        "--mitto-timeout-ms",
        MITTO_TIMEOUT_MS,
        "--workers",
        "2",
        "--lease-ms",
        LEASE_MS,
    ])
    .spawn()
    .expect("the worker starts");
    Proc { child, _stdout: None }
}

async fn sim_stats(sim_url: &str) -> Value {
    reqwest::get(format!("{sim_url}/stats")).await.expect("GET /stats").json().await.expect("stats JSON")
}

async fn progress(t: &TestApp, s: &TestStore, id: i64) -> Value {
    let (st, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(st, 200, "{p}");
    p
}

/// Polls progress until more than `sent` messages are recorded as sent (bounded).
async fn wait_sent_above(t: &TestApp, s: &TestStore, id: i64, sent: i64) -> Value {
    let deadline = Instant::now() + GUARD;
    loop {
        let p = progress(t, s, id).await;
        if p["sent"].as_i64().unwrap() > sent {
            return p;
        }
        assert!(Instant::now() < deadline, "no worker progress past {sent} sent: {p}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A store with RECIPIENTS contacts and CREDITS, and a started campaign: the send call only
/// materializes and holds; nothing in this process sends.
async fn launched(t: &TestApp) -> (TestStore, i64) {
    let s = t.store("Crash").await;
    seed(t, &s, RECIPIENTS as usize, CREDITS).await;
    let id = campaign(t, &s, "Crash").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    assert_eq!(r["messages"], RECIPIENTS, "{r}");
    (s, id)
}

/// Messages of the campaign claimed other than exactly once.
async fn claimed_not_once(t: &TestApp, id: i64) -> i64 {
    let (n,): (i64,) = on_db!(t.db(), |p| sqlx::query_as("SELECT COUNT(*) FROM messages WHERE campaign_id = $1 AND attempts <> 1")
        .bind(id)
        .fetch_one(p)
        .await)
    .unwrap();
    n
}

/// The final state both tests demand: every message terminal, counters equal row counts, and the
/// ledger balanced.
async fn assert_settled(t: &TestApp, s: &TestStore, id: i64, p: &Value) {
    let c = counts(t, id).await;
    assert_eq!((c["pending"].as_i64(), c["sending"].as_i64()), (Some(0), Some(0)), "nothing stuck: {c}");
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count: rows {c}, progress {p}");
    }
    assert_eq!(p["total"], RECIPIENTS, "{p}");
    assert_eq!(
        ["sent", "failed", "unknown"].iter().map(|k| p[k].as_i64().unwrap()).sum::<i64>(),
        RECIPIENTS,
        "every message ends sent, failed or unknown: {p}"
    );
    assert_ledger_balanced(t, s, id, CREDITS).await;
}

/// SIGKILL a worker process three times while its batches are in flight, restart it each time,
/// then let a last one finish: no message is sent twice, nothing stays `sending`, the messages
/// whose outcome the killed workers never recorded become `unknown` (not resent, not charged),
/// and counters and ledger add up.
async fn sigkill_mid_send_then_restart(b: Backend) {
    let (sim, sim_url) = simulator().await;
    let t = TestApp::start(b).await;
    let (s, id) = launched(&t).await;
    let mut sent_at_kill = 0;
    for round in 1..=3 {
        let w = worker(&t.database_url, &sim_url);
        let p = wait_sent_above(&t, &s, id, sent_at_kill).await;
        w.kill();
        assert_eq!(p["status"], "sending", "kill {round} came before the campaign finished: {p}");
        sent_at_kill = progress(&t, &s, id).await["sent"].as_i64().unwrap();
    }
    let last = worker(&t.database_url, &sim_url);
    let p = t.wait_finished(&s.key, id).await;
    drop(last);
    assert_eq!(p["status"], "sent", "{p}");
    let (sent, unknown) = (p["sent"].as_i64().unwrap(), p["unknown"].as_i64().unwrap());
    assert!(unknown > 0, "the kills caught batches in flight, now unknown: {p}");

    let stats = sim_stats(&sim_url).await;
    drop(sim);
    assert_eq!(stats["duplicate_references"], 0, "no message sent twice: {stats}");
    assert_eq!(stats["unique_references"], stats["accepted"], "{stats}");
    let accepted = stats["accepted"].as_i64().unwrap();
    // Unknown messages may or may not have reached the provider before the kill.
    assert!(sent <= accepted && accepted <= sent + unknown, "sent {sent} ≤ accepted {accepted} ≤ sent + unknown {unknown}");
    assert_eq!(claimed_not_once(&t, id).await, 0, "no message claimed twice (unknown ones are never retried)");
    assert_settled(&t, &s, id, &p).await;
}

dual!(sigkill_mid_send_then_restart);

/// SIGTERM to `smscast serve` in the middle of a send, with a live event stream open: it stops
/// claiming, finishes and records the batches in flight, ends the stream and exits promptly and
/// cleanly. Nothing is left `sending` under a live lease (which would turn `unknown` needlessly a
/// minute later), and everything the provider accepted is recorded as sent.
async fn sigterm_finishes_in_flight_batches_and_exits(b: Backend) {
    let (sim, sim_url) = simulator_with_latency("300").await;
    let t = TestApp::start(b).await;
    let (s, id) = launched(&t).await;
    let serve = smscast(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &t.database_url,
        "--mitto-base-url",
        &sim_url,
        "--mitto-api-key",
        "k",
        "--mitto-traffic-account-id",
        "t",
        "--mitto-bulk-size",
        "50",
        "--mitto-timeout-ms",
        "5000",
        "--workers",
        "2",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("serve starts");
    let (mut serve, url) = first_line(serve, "smscast is running on ").await;
    let events = reqwest::Client::new().get(format!("{url}/api/campaigns/{id}/events")).bearer_auth(&s.key).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let stream = tokio::spawn(async move {
        let mut events = events;
        while let Ok(Some(_)) = events.chunk().await {}
    });
    wait_sent_above(&t, &s, id, 0).await;

    let pid = serve.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Bounded: well within the 60-second lease.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not exit within 20 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "a clean exit, not death by signal: {status}");
    tokio::time::timeout(Duration::from_secs(5), stream).await.expect("the event stream ended").unwrap();

    let p = progress(&t, &s, id).await;
    let c = counts(&t, id).await;
    assert_eq!(c["sending"], 0, "nothing left in flight: {c}");
    assert!(c["pending"].as_i64().unwrap() > 0, "stopped midway: {c}");
    assert_eq!(c["unknown"], 0, "nothing needlessly unknown: {c}");
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count");
    }
    let stats = sim_stats(&sim_url).await;
    drop(sim);
    assert_eq!(stats["accepted"], p["sent"], "everything accepted was recorded: {stats} {p}");
}

dual!(sigterm_finishes_in_flight_batches_and_exits);

/// Two worker processes (two send loops each) on one PostgreSQL database share a campaign: each
/// message is claimed once and reaches the provider once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_postgres() {
    let (sim, sim_url) = simulator().await;
    let t = TestApp::start(Backend::Postgres).await;
    let workers = [worker(&t.database_url, &sim_url), worker(&t.database_url, &sim_url)];
    // Both are running (they heartbeat on start) before there is anything to claim.
    let deadline = Instant::now() + GUARD;
    loop {
        let (alive,): (i64,) = on_db!(t.db(), |p| sqlx::query_as("SELECT COUNT(*) FROM workers").fetch_one(p).await).unwrap();
        if alive >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the two workers did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, id) = launched(&t).await;
    let p = t.wait_finished(&s.key, id).await;
    drop(workers);
    assert_eq!(p["status"], "sent", "{p}");
    assert_eq!(p["sent"], RECIPIENTS, "{p}");

    let stats = sim_stats(&sim_url).await;
    drop(sim);
    assert_eq!(
        (stats["accepted"].as_i64(), stats["unique_references"].as_i64(), stats["duplicate_references"].as_i64()),
        (Some(RECIPIENTS), Some(RECIPIENTS), Some(0)),
        "each message reached the provider exactly once: {stats}"
    );
    assert_eq!(claimed_not_once(&t, id).await, 0, "no message claimed twice");
    assert_settled(&t, &s, id, &p).await;
}

/// The lease must outlast a provider call: `worker` and `serve` refuse to start otherwise, before
/// touching the database.
#[test]
fn a_lease_shorter_than_the_provider_timeout_is_refused() {
    for cmd in ["worker", "serve"] {
        let out = smscast(&[
            cmd,
            "--database-url",
            "sqlite:///nonexistent-dir/never-created.db",
            "--mitto-base-url",
            "http://127.0.0.1:9",
            "--mitto-api-key",
            "k",
            "--mitto-traffic-account-id",
            "t",
            "--mitto-timeout-ms",
            "2000",
            "--lease-ms",
            "2000",
        ])
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} refuses to start");
        assert!(stderr.contains("--mitto-timeout-ms (2000) must be shorter than --lease-ms (2000)"), "{cmd} says why: {stderr}");
    }
}
