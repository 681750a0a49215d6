//! The nemesis: every 1–3 seconds one fault, drawn from the seed — SIGKILL a worker (restarted
//! after up to 2 s), SIGSTOP one for longer than its lease (it comes back as a stale worker whose
//! writes the fencing must refuse), or, on PostgreSQL, terminate every backend of the soak's
//! database but its own (`pg_terminate_backend`: each process's pool meets broken connections).

use super::LEASE_MS;
use super::procs::Workers;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// What the nemesis did, for the summary.
#[derive(Debug, Default)]
pub struct NemesisLog {
    pub kills: u32,
    pub pauses: u32,
    pub connection_breaks: u32,
    pub backends_terminated: u64,
    pub worker_starts: u32,
}

pub async fn run(workers: &mut Workers, url: &str, seed: u64, started: Instant, deadline: Instant) -> NemesisLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = NemesisLog::default();
    let postgres = crate::store::is_postgres_url(url);
    loop {
        let wait = Duration::from_millis(rng.random_range(1_000..3_000));
        if Instant::now() + wait >= deadline {
            tokio::time::sleep_until(deadline.into()).await;
            break;
        }
        tokio::time::sleep(wait).await;
        let t = started.elapsed().as_secs_f64();
        let i = rng.random_range(0..workers.len());
        match rng.random_range(0..if postgres { 3 } else { 2 }) {
            0 => {
                let pid = workers.pid(i);
                workers.kill(i).await;
                log.kills += 1;
                let down = Duration::from_millis(rng.random_range(100..2_000));
                println!("nemesis {t:6.1}s: SIGKILL worker {i} (pid {pid:?}); restart in {} ms", down.as_millis());
                tokio::time::sleep(down.min(deadline.saturating_duration_since(Instant::now()))).await;
                if let Err(e) = workers.restart(i) {
                    println!("nemesis: cannot restart worker {i}: {e}");
                }
            }
            1 => {
                if !workers.is_running(i) || !workers.pause(i) {
                    continue;
                }
                log.pauses += 1;
                let frozen = Duration::from_millis(LEASE_MS + rng.random_range(500..2_000));
                println!("nemesis {t:6.1}s: SIGSTOP worker {i} for {} ms (past its lease)", frozen.as_millis());
                tokio::time::sleep(frozen).await;
                workers.resume(i);
            }
            _ => match terminate_backends(url).await {
                Ok(n) => {
                    log.connection_breaks += 1;
                    log.backends_terminated += n;
                    println!("nemesis {t:6.1}s: pg_terminate_backend on {n} connections");
                }
                Err(e) => println!("nemesis {t:6.1}s: could not terminate connections: {e}"),
            },
        }
    }
    log.worker_starts = workers.starts();
    log
}

/// Terminates every connection to the soak's database except the one asking, and returns how many.
async fn terminate_backends(url: &str) -> anyhow::Result<u64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(n as u64)
}
