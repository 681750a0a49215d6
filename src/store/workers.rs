//! Engine processes: each heartbeats while it runs, so the operator sees who is working.

use super::{Db, db_err, on_db};
use crate::domain::Error;

/// Records that an engine process is alive; `GET /api/admin/queue` shows it until it goes quiet.
pub async fn heartbeat(db: &Db, id: &str, host: &str, in_flight: i64, now: i64) -> Result<(), Error> {
    on_db!(db, |p| sqlx::query(
        "INSERT INTO workers (id, host, started_at, last_seen, in_flight) VALUES ($1, $2, $3, $3, $4)
         ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, in_flight = excluded.in_flight"
    )
    .bind(id)
    .bind(host)
    .bind(now)
    .bind(in_flight)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}
