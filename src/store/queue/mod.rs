//! The message table is the queue (DESIGN.md §4): launching a campaign materializes one row per
//! recipient (`launch`); workers claim batches under a lease and a fencing token (`claim`), record
//! each batch's outcome in one transaction (statuses, counters, credit charges; `outcome`), and a
//! reaper turns expired leases into `unknown` — never resent automatically (`maintenance`).
//! `listing` reads progress and messages back; `test_send` queues a few test messages.
//!
//! The helpers shared by those steps (message ids, counters, texts) live here.

mod claim;
mod launch;
mod listing;
mod maintenance;
mod outcome;
mod test_send;

pub use claim::{Batch, ClaimCursor, Claimed, claim};
pub use launch::{start, start_with_key};
pub use listing::{MessageFilter, Progress, list, progress};
pub use maintenance::{reap, runs_with_expired_holds, start_due};
pub use outcome::{Outcome, complete_if_done, record};

use crate::domain::failure::CANCELLED;
pub use test_send::{TestSend, get_test_message, send_test};

use crate::domain::Error;
use crate::domain::message::{Codes, Composer};
use crate::domain::unsubscribe::CodeKey;
use crate::store::campaigns::{self, CampaignRow};
use crate::store::{Db, Tx, db_err, on_tx};

/// Rows per multi-row INSERT when materializing.
const INSERT_BATCH: usize = 1000;

/// Where a launch's message ids come from. They are taken before the rows are written, so the
/// launch knows the campaign's id range (lists walk it) without reading anything back.
enum Ids {
    /// SQLite: the launch's transaction holds the write lock (`BEGIN IMMEDIATE`) from before the
    /// first id is read until it commits, so the ids after the highest one ever given are free.
    Next(i64),
    /// PostgreSQL: the table's sequence, asked on a pooled connection (sequences are not
    /// transactional, so the launch's own connection can stay busy with its `COPY`), 10,000 at a
    /// time; what is left unused at the end is a harmless gap.
    Sequence(sqlx::PgPool, std::collections::VecDeque<i64>),
}

impl Ids {
    async fn new(db: &Db, tx: &mut Tx<'_>) -> Result<Ids, Error> {
        match (db, tx) {
            (Db::Pg(pool), _) => Ok(Ids::Sequence(pool.clone(), Default::default())),
            (_, Tx::Sqlite(c)) => Ok(Ids::Next(crate::store::sqlite_next_id(c, "messages").await?)),
            (_, Tx::Pg(_)) => Err(Error::internal("a PostgreSQL transaction on a SQLite database")),
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<i64>, Error> {
        match self {
            Ids::Next(next) => {
                let ids = (*next..*next + n as i64).collect();
                *next += n as i64;
                Ok(ids)
            }
            Ids::Sequence(pool, ready) => {
                while ready.len() < n {
                    // The sequence named as a constant: `pg_get_serial_sequence` costs a catalog
                    // lookup per row (4 µs; 10 times `nextval` itself).
                    let more: Vec<i64> = sqlx::query_scalar("SELECT nextval('messages_id_seq'::regclass) FROM generate_series(1, $1)")
                        .bind(n.max(10_000) as i64)
                        .fetch_all(&*pool)
                        .await
                        .map_err(db_err)?;
                    ready.extend(more);
                }
                Ok(ready.drain(..n).collect())
            }
        }
    }
}

/// The predicate of the partial index `messages_failures`, word for word: SQLite uses a partial
/// index only when a query's condition contains its predicate as written (`status = 'failed'`
/// alone does not qualify), and without it a campaign's failures are a walk of the whole table.
pub(crate) const FAILURES: &str = "status IN ('failed', 'unknown')";

/// Pairs each message with its exact text: stored for test sends, rendered again for campaign
/// messages (the campaign's launch composer, the names kept on the row, the code of its id).
/// `parts` takes a row's id, stored text and names.
async fn with_texts<R>(
    db: &Db,
    campaign: &CampaignRow,
    mut rows: Vec<R>,
    parts: impl Fn(&mut R) -> (i64, Option<String>, Option<String>, Option<String>),
) -> Result<Vec<(R, String)>, Error> {
    let mut render: Option<(Composer, CodeKey)> = None;
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows.drain(..) {
        let (id, text, first, last) = parts(&mut row);
        let text = match text {
            Some(t) => t,
            None => {
                if render.is_none() {
                    render = Some((campaigns::launch_composer(campaign)?, crate::store::settings::read_code_key(db).await?));
                }
                let (comp, key) = render.as_ref().expect("set above");
                let mut text = String::new();
                comp.compose(first.as_deref(), last.as_deref(), Codes::Message(key, id), &mut text)
                    .ok_or_else(|| Error::internal(format!("message {id} no longer fits its campaign's limits")))?;
                text
            }
        };
        out.push((row, text));
    }
    Ok(out)
}

/// Moves campaign counters; `deltas` name columns of `campaigns`.
pub(in crate::store) async fn bump(tx: &mut Tx<'_>, campaign: i64, deltas: &[(&str, i64)]) -> Result<(), Error> {
    let sets: Vec<String> = deltas.iter().filter(|(_, d)| *d != 0).map(|(col, d)| format!("{col} = {col} + ({d})")).collect();
    if sets.is_empty() {
        return Ok(());
    }
    on_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE campaigns SET {} WHERE id = $1", sets.join(", "))))
        .bind(campaign)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

/// A cancelled campaign's messages still waiting leave the queue as `cancelled` (returns how many).
/// Counters are the caller's: it knows which it moves from.
pub async fn cancel_pending(tx: &mut Tx<'_>, campaign: i64, now: i64) -> Result<i64, Error> {
    let n = on_tx!(tx, |c| sqlx::query(
        "UPDATE messages SET status = 'cancelled', error_code = $3, error_message = 'The campaign was cancelled before this message was sent.',
            updated_at = $2
         WHERE campaign_id = $1 AND status = 'pending' AND NOT test"
    )
    .bind(campaign)
    .bind(now)
    .bind(CANCELLED)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(n as i64)
}
