//! `smscast soak` as CI runs it (issue 15): the built binary for 60 seconds on PostgreSQL with
//! three worker processes and on SQLite with one, each passing every check; and the harness's own
//! test — with a deliberate double charge switched on (SMSCAST_FAULT_DOUBLE_CHARGE, test only) it
//! must fail and name the invariant.

use crate::harness::drop_database;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smscast");
/// A guard against a hung soak, far above its own bounds (duration + settle + checks).
const GUARD: Duration = Duration::from_secs(300);

/// The soak's exit status and what it printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `smscast soak` with `args` (and `env`), bounded by GUARD.
async fn soak(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.arg("soak").args(args).env_remove("DATABASE_URL").env("SMSCAST_LOG", "warn").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the soak starts");
    let pid = child.id();
    let started = Instant::now();
    let out = tokio::time::timeout(GUARD, tokio::task::spawn_blocking(move || child.wait_with_output()))
        .await
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("the soak did not end within {GUARD:?}")
        })
        .expect("join")
        .expect("the soak's output");
    let run = Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("soak {args:?} took {:.0}s:\n{}\n{}", started.elapsed().as_secs_f64(), run.stdout, run.stderr);
    run
}

/// The lines of the summary table with their result.
fn results(stdout: &str) -> Vec<(String, bool)> {
    stdout
        .lines()
        .filter_map(|l| {
            let ok = l.contains("  ok  ");
            (ok || l.contains("  VIOLATION  ")).then(|| (l.to_string(), ok))
        })
        .collect()
}

/// The run passed: exit 0, and the table lists every check — I1 to I13 among them — as ok.
fn assert_passed(run: &Run) {
    assert!(run.success, "the soak exits 0:\n{}\n{}", run.stdout, run.stderr);
    let table = results(&run.stdout);
    assert!(table.len() >= 20, "the summary lists every check: {table:?}");
    assert!(table.iter().all(|(_, ok)| *ok), "every check ok: {table:?}");
    for i in 1..=13 {
        assert!(table.iter().any(|(l, _)| l.starts_with(&format!("I{i} "))), "I{i} is checked: {table:?}");
    }
    assert!(run.stdout.contains("soak seed: "), "the seed is printed for a replay");
    assert!(run.stdout.contains("soak passed"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_on_postgres_with_three_workers() {
    let name = format!("smscast_soak_{}", smscast::secrets::random_token(10).to_lowercase());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let run = soak(&["--duration", "60s", "--workers", "3", "--database-url", &url, "--seed", "15"], &[]).await;
    drop_database(&name);
    assert_passed(&run);
    assert!(run.stdout.contains("pg_terminate_backend"), "the nemesis broke connections: {}", run.stdout);
    assert!(run.stdout.contains("SIGKILL worker"), "the nemesis killed workers: {}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_on_sqlite_with_one_worker() {
    let run = soak(&["--duration", "60s", "--workers", "1", "--seed", "15"], &[]).await;
    assert_passed(&run);
    assert!(run.stdout.contains("SIGKILL worker") || run.stdout.contains("SIGSTOP worker"), "the nemesis struck: {}", run.stdout);
}

/// The harness catches a real bug: with every charge made twice, the run fails and names I6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_charge_fails_the_soak_naming_i6() {
    let run = soak(&["--duration", "20s", "--workers", "1", "--seed", "15"], &[("SMSCAST_FAULT_DOUBLE_CHARGE", "1")]).await;
    assert!(!run.success, "the soak exits non-zero:\n{}", run.stdout);
    let violated: Vec<String> = results(&run.stdout).into_iter().filter(|(_, ok)| !ok).map(|(l, _)| l).collect();
    assert!(violated.iter().any(|l| l.starts_with("I6 charges = cost of sent messages")), "I6 is violated: {violated:?}");
    assert!(run.stderr.contains("violation") && run.stderr.contains("I6"), "the error names the invariant: {}", run.stderr);
}
