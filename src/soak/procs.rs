//! The soak's child processes: one `smscast serve` (API and webhooks, no engine) and the
//! `smscast worker` processes the nemesis kills, pauses and restarts. Each is the current
//! executable; their logs go to files in the run's scratch directory.

use super::{LEASE_MS, MITTO_TIMEOUT_MS};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn smscast(args: &[&str], log: &Path) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot find the smscast executable")?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).with_context(|| format!("cannot open {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("SMSCAST_LOG", "warn")
        .env("SMSCAST_LOG_FORMAT", "text")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    Ok(cmd)
}

/// Sends a signal by name (`KILL`, `STOP`, `CONT`, `TERM`) with kill(1): the crate has no libc
/// binding, and these four are all the soak needs.
fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().is_ok_and(|s| s.success())
}

pub struct Serve {
    child: Child,
    pub url: String,
}

/// `smscast serve` on a free port, without a provider (so without an engine): the API for the
/// stores and the webhook for the simulator's reports. Its address is the line it prints.
pub async fn serve(url: &str, secret: &str, dir: &Path) -> anyhow::Result<Serve> {
    let mut cmd = smscast(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--db-connections", "8", "--mitto-webhook-secret", secret],
        &dir.join("serve.log"),
    )?;
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start smscast serve")?;
    let mut lines = BufReader::new(child.stdout.take().context("serve's stdout")?).lines();
    let prefix = "smscast is running on ";
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.strip_prefix(prefix) {
                return Some(u.trim().to_string());
            }
        }
        None
    })
    .await;
    let Ok(Some(base)) = found else {
        bail!("smscast serve did not start (see {})", dir.join("serve.log").display());
    };
    // Keep reading, so a later line never meets a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Serve { child, url: base })
}

impl Serve {
    /// SIGTERM, then wait (bounded) for the clean exit.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            signal(pid, "TERM");
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// One worker slot: its process while it runs, and whether it is paused (SIGSTOP).
struct Slot {
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

pub struct Workers {
    slots: Vec<Slot>,
    args: Vec<String>,
    dir: PathBuf,
}

impl Workers {
    pub fn start(n: usize, url: &str, sim_url: &str, dir: &Path) -> anyhow::Result<Workers> {
        let args = [
            "worker",
            "--database-url",
            url,
            "--db-connections",
            "4",
            "--mitto-base-url",
            sim_url,
            "--mitto-api-key",
            "soak",
            "--mitto-traffic-account-id",
            "soak",
            "--mitto-bulk-size",
            "25",
            "--mitto-timeout-ms",
            &MITTO_TIMEOUT_MS.to_string(),
            "--lease-ms",
            &LEASE_MS.to_string(),
            "--workers",
            "2",
            // Reports lost to the nemesis are made up for by lookups, soon.
            "--status-lookup-after-secs",
            "2",
            "--status-lookups-per-sec",
            "200",
        ]
        .map(str::to_string)
        .to_vec();
        let mut w = Workers { slots: Vec::new(), args, dir: dir.to_path_buf() };
        for i in 0..n {
            w.slots.push(Slot { child: None, paused: false, starts: 0 });
            w.spawn(i)?;
        }
        Ok(w)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let child = smscast(&args, &self.dir.join(format!("worker-{i}.log")))?.spawn().context("cannot start smscast worker")?;
        let slot = &mut self.slots[i];
        slot.child = Some(child);
        slot.paused = false;
        slot.starts += 1;
        Ok(())
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.slots[i].child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.slots[i].child.is_some() && !self.slots[i].paused
    }

    /// SIGKILL: no shutdown path runs, whatever the worker was doing.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.slots[i].child.take() {
            let _ = child.kill().await;
        }
        self.slots[i].paused = false;
    }

    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.slots[i].child.is_none() { self.spawn(i) } else { Ok(()) }
    }

    /// SIGSTOP: the worker freezes mid-whatever, its leases run out, and when it is continued it
    /// is a stale worker whose writes the fencing must refuse.
    pub fn pause(&mut self, i: usize) -> bool {
        let paused = self.pid(i).is_some_and(|pid| signal(pid, "STOP"));
        self.slots[i].paused |= paused;
        paused
    }

    pub fn resume(&mut self, i: usize) {
        if let Some(pid) = self.pid(i) {
            signal(pid, "CONT");
        }
        self.slots[i].paused = false;
    }

    /// Every worker running again: paused ones continued, killed (or crashed) ones restarted.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for i in 0..self.slots.len() {
            self.resume(i);
            let exited = self.slots[i].child.as_mut().is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            if exited {
                self.slots[i].child = None;
            }
            self.restart(i)?;
        }
        Ok(())
    }

    /// Process starts in all (first starts included).
    pub fn starts(&self) -> u32 {
        self.slots.iter().map(|s| s.starts).sum()
    }

    /// SIGTERM to each (they finish and record their batches in flight), waiting a bounded time.
    pub async fn stop(&mut self) {
        for i in 0..self.slots.len() {
            self.resume(i);
            if let Some(pid) = self.pid(i) {
                signal(pid, "TERM");
            }
        }
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
            }
        }
    }
}
