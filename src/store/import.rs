//! Streaming CSV import of contacts: bounded memory for any file size, upsert by E.164.
//!
//! A blocking thread parses the CSV and the phone numbers and hands batches of rows over a bounded
//! channel to an async writer, so parsing and writing overlap and memory stays flat. Rows are
//! written in statements of `BATCH` rows and committed every `TX_ROWS` rows: a crash loses at most
//! the transaction in flight, and a re-run upserts the same rows.

use super::auth::Actor;
use super::{Db, StoreId, Tx, db_err, sqlite_rows};
use crate::domain::contact::{self, Consent};
use crate::domain::{Error, phone};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::Receiver;

/// Rows per batch, written by one statement per table. Larger statements cost less per row; a
/// SQLite statement has at most 32,766 parameters (8 per contact, 4 per batch).
const BATCH: usize = 4000;
const _: () = assert!(BATCH * 8 + 4 <= 32_766);
/// Rows per transaction. The (store_id, phone) index is written in random order, so a transaction
/// of 1,000 rows dirtied about one index page per row, and SQLite wrote every such page to the WAL
/// and back at each commit (~4 KiB per row, several GB for a million rows: the import was I/O bound).
/// Larger transactions write each page once for many rows. They hold SQLite's write lock for a
/// fraction of a second; other writers wait (busy timeout), they do not fail.
const TX_ROWS: usize = 50_000;
/// Concurrent writers (connections, each with its own transactions) on PostgreSQL. Each batch's
/// numbers are distinct from every other batch's (duplicates are removed while parsing), so the
/// writers never wait on each other's rows.
const PG_WRITERS: usize = 2;
/// Row errors kept in the answer; the count of all of them is reported beside.
const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowError {
    pub row: u64,
    pub column: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub total: u64,
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub errors: Vec<RowError>,
    /// All row errors, including those beyond the first 1,000 listed in `errors`.
    pub error_count: u64,
}

impl ImportReport {
    fn error(&mut self, row: u64, column: &str, code: &str, message: String) {
        self.skipped += 1;
        self.error_count += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(RowError { row, column: column.into(), code: code.into(), message });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Phone,
    FirstName,
    LastName,
    Email,
    Tags,
    Consent,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Phone => "phone",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Email => "email",
            Field::Tags => "tags",
            Field::Consent => "consent",
        }
    }
}

/// Maps a header cell to a field, accepting the names common exports use.
fn field_for(header: &str) -> Option<Field> {
    let h = header.trim().trim_start_matches('\u{feff}').trim().to_lowercase().replace([' ', '-', '.'], "_");
    Some(match h.as_str() {
        "phone" | "phone_number" | "phonenumber" | "mobile" | "mobile_number" | "mobile_phone" | "msisdn" | "tel" | "telephone"
        | "cell" | "cellphone" | "number" | "τηλέφωνο" | "τηλεφωνο" | "κινητό" | "κινητο" => Field::Phone,
        "first_name" | "firstname" | "first" | "given_name" | "name" | "όνομα" | "ονομα" => Field::FirstName,
        "last_name" | "lastname" | "last" | "surname" | "family_name" | "επώνυμο" | "επωνυμο" => Field::LastName,
        "email" | "e_mail" | "email_address" | "mail" => Field::Email,
        "tags" | "tag" | "labels" | "groups" => Field::Tags,
        "consent" | "sms_consent" | "opt_in" | "optin" | "accepts_sms" | "accepts_marketing" | "subscribed" | "marketing_consent" => {
            Field::Consent
        }
        _ => return None,
    })
}

/// A row that passed validation, ready to be written.
///
/// Its text is shared (`Arc<str>`): sqlx takes an `Arc<str>` bound by value as it is, where a
/// `&str` or `&String` costs two allocations and a copy per value, on the writer's critical path.
/// The parsing thread, which has time to spare, makes the one allocation.
#[derive(Debug)]
struct Row {
    phone: Arc<str>,
    mobile: bool,
    first_name: Option<Arc<str>>,
    last_name: Option<Arc<str>>,
    email: Option<Arc<str>>,
    tags: Vec<Arc<str>>,
    consent: Option<Consent>,
}

pub struct ImportContext {
    pub db: Db,
    pub store: StoreId,
    pub country: phonenumber::country::Id,
    pub actor: Actor,
    pub now: i64,
}

enum Msg {
    Rows(Vec<Row>),
    Progress(u64),
}

/// Imports CSV from a blocking reader. `progress` is called with the number of rows read so far.
pub async fn import<R: Read + Send + 'static>(
    ctx: ImportContext,
    reader: R,
    mut progress: impl FnMut(u64) + Send,
) -> Result<ImportReport, Error> {
    // One batch in hand while the writer works is enough: the parser is faster than any writer,
    // and batches waiting in a deeper queue only took memory and cache.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(1);
    let country = ctx.country;
    let parser = tokio::task::spawn_blocking(move || parse(reader, country, tx));
    // SQLite has one writer at a time; PostgreSQL does the work of each writer in its own backend
    // process, and one backend was the import's bottleneck.
    let writers = if ctx.db.is_postgres() { PG_WRITERS } else { 1 };
    let failed = AtomicBool::new(false);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..writers).map(|_| tokio::sync::mpsc::channel::<Vec<Row>>(1)).unzip();
    let dispatch = async {
        let mut next = 0;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Progress(n) => progress(n),
                // After a failure the parser still runs to the end (it reports every row), but
                // nothing more is written.
                Msg::Rows(_) if failed.load(Ordering::Relaxed) => {}
                Msg::Rows(rows) => {
                    let _ = senders[next % writers].send(rows).await;
                    next += 1;
                }
            }
        }
        // The writers commit their last rows only if the whole file was read.
        let parsed = parser.await.map_err(Error::internal).and_then(|r| r);
        if parsed.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        drop(senders);
        parsed
    };
    let write_loops = receivers.into_iter().map(|batches| {
        let (ctx, failed) = (&ctx, &failed);
        async move { write_all(ctx, batches, failed).await.inspect_err(|_| failed.store(true, Ordering::Relaxed)) }
    });
    let (parsed, written) = tokio::join!(dispatch, futures_util::future::join_all(write_loops));
    let mut report = parsed?;
    for result in written {
        let (created, updated) = result?;
        report.created += created;
        report.updated += updated;
    }
    Ok(report)
}

/// Writes batches on one held connection (`Db::hold`), in transactions of about `TX_ROWS` rows.
/// Returns the (created, updated) counts of what it committed. Nothing more is committed once any
/// part of the import failed: the open transaction rolls back when dropped.
async fn write_all(ctx: &ImportContext, mut batches: Receiver<Vec<Row>>, failed: &AtomicBool) -> Result<(u64, u64), Error> {
    // The unique index on numbers takes every row at a random place: with the usual cache most
    // inserts read pages back from the file (BENCHMARKS.md).
    let mut conn = ctx.db.hold(super::SQLITE_BULK_CACHE_KIB).await?;
    let mut committed = (0, 0);
    while let Some(first) = batches.recv().await {
        let mut tx = conn.begin().await?;
        let (mut rows_in_tx, mut pending) = (0, (0, 0));
        let mut next = Some(first);
        while let Some(rows) = next {
            rows_in_tx += rows.len();
            let (created, updated) = write_batch(ctx, &mut tx, rows).await?;
            pending = (pending.0 + created, pending.1 + updated);
            next = if rows_in_tx < TX_ROWS { batches.recv().await } else { None };
        }
        if failed.load(Ordering::Relaxed) {
            return Ok((0, 0));
        }
        tx.commit().await?;
        committed = (committed.0 + pending.0, committed.1 + pending.1);
    }
    Ok(committed)
}

fn parse<R: Read>(reader: R, country: phonenumber::country::Id, tx: tokio::sync::mpsc::Sender<Msg>) -> Result<ImportReport, Error> {
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
    let mut report = ImportReport::default();
    let mut record = csv::ByteRecord::new();
    let read = |csv: &mut csv::Reader<R>, record: &mut csv::ByteRecord| -> Result<bool, Error> {
        csv.read_byte_record(record).map_err(|e| Error::invalid("invalid_csv", format!("The file is not valid CSV: {e}")))
    };
    if !read(&mut csv, &mut record)? {
        return Err(Error::invalid("empty_file", "The file is empty: it needs a header row with at least a phone column."));
    }
    let columns: Vec<Option<Field>> = record.iter().map(|h| field_for(&String::from_utf8_lossy(h))).collect();
    let index = |f: Field| columns.iter().position(|c| *c == Some(f));
    let Some(phone_col) = index(Field::Phone) else {
        return Err(Error::invalid(
            "missing_phone_column",
            "The file has no phone column. Name one column \"phone\" (or mobile, msisdn, tel).",
        )
        .with_details(serde_json::json!({"columns": record.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect::<Vec<_>>()})));
    };
    let cols = [Field::FirstName, Field::LastName, Field::Email, Field::Tags, Field::Consent].map(|f| (f, index(f)));
    // Numbers already seen in this file → the row they first appeared on. An E.164 number (at most
    // 15 digits) as two 32-bit halves and the row as 32 bits: 12 bytes an entry where
    // (u64, u64) took 16, which was a quarter of an import's memory while the map grew.
    let mut seen: HashMap<[u32; 2], u32> = HashMap::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut line = 1u64;
    while read(&mut csv, &mut record)? {
        line += 1;
        if record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
            continue; // blank lines are not rows
        }
        report.total += 1;
        let mut cells: [Option<&str>; 6] = [None; 6];
        let mut bad_utf8 = None;
        for (slot, col) in std::iter::once((0usize, Some(phone_col))).chain(cols.iter().enumerate().map(|(i, (_, c))| (i + 1, *c))) {
            if let Some(c) = col {
                match std::str::from_utf8(record.get(c).unwrap_or(b"")) {
                    Ok(s) => cells[slot] = Some(s),
                    Err(_) => bad_utf8 = Some(if slot == 0 { Field::Phone } else { cols[slot - 1].0 }),
                }
            }
        }
        if let Some(f) = bad_utf8 {
            report.error(line, f.name(), "invalid_encoding", "This cell is not valid UTF-8 text; save the file as UTF-8.".into());
            continue;
        }
        match validate(&cells, country) {
            Err((field, code, message)) => report.error(line, field.name(), code, message),
            Ok(row) => {
                let number: u64 = row.phone[1..].parse().unwrap_or(0);
                let key = [(number >> 32) as u32, number as u32];
                if let Some(first) = seen.get(&key) {
                    report.error(
                        line,
                        "phone",
                        "duplicate_in_file",
                        format!("{} already appears on row {first}; this row was skipped.", row.phone),
                    );
                    continue;
                }
                seen.insert(key, u32::try_from(line).unwrap_or(u32::MAX));
                batch.push(row);
                if batch.len() == BATCH {
                    if tx.blocking_send(Msg::Rows(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))).is_err() {
                        break; // the writer stopped on an error; it reports it
                    }
                    let _ = tx.blocking_send(Msg::Progress(report.total));
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Msg::Rows(batch));
    }
    let _ = tx.blocking_send(Msg::Progress(report.total));
    Ok(report)
}

type RowFailure = (Field, &'static str, String);

fn validate(cells: &[Option<&str>; 6], country: phonenumber::country::Id) -> Result<Row, RowFailure> {
    let phone = phone::parse(cells[0].unwrap_or(""), country).map_err(|e| (Field::Phone, "invalid_phone", e.message))?;
    let text = |i: usize, f: Field, max: usize| contact::clean_text(f.name(), cells[i], max).map_err(|e| (f, "too_long", e.message));
    let first_name = text(1, Field::FirstName, contact::MAX_NAME)?;
    let last_name = text(2, Field::LastName, contact::MAX_NAME)?;
    let email = contact::clean_email(cells[3]).map_err(|e| (Field::Email, "invalid_email", e.message))?;
    let tags = match cells[4] {
        Some(t) if !t.trim().is_empty() => contact::normalize_tags(t.split([',', ';', '|']).filter(|s| !s.trim().is_empty()))
            .map_err(|e| (Field::Tags, "invalid_tag", e.message))?,
        _ => Vec::new(),
    };
    // An empty consent cell means "not stated", which never changes an existing contact's consent.
    let consent = match cells[5].map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(Consent::parse_loose(c).ok_or_else(|| {
            (Field::Consent, "invalid_consent", format!("\"{c}\" is not a consent value (use opted_in, opted_out or unknown)."))
        })?),
    };
    Ok(Row {
        mobile: phone.mobile,
        phone: phone.e164.into(),
        first_name: first_name.map(Arc::from),
        last_name: last_name.map(Arc::from),
        email: email.map(Arc::from),
        tags: tags.into_iter().map(Arc::from).collect(),
        consent,
    })
}

/// Splits `n` rows into chunks of `max` (a power of two), then powers of two for the rest. Tags and
/// consent events vary in number from batch to batch; chunking them to a handful of fixed sizes
/// lets the database reuse a few prepared statements instead of preparing a new multi-thousand-
/// parameter statement for every batch (which also filled the statement cache).
fn chunk_sizes(n: usize, max: usize) -> Vec<usize> {
    debug_assert!(max.is_power_of_two());
    let mut sizes = vec![max; n / max];
    let (mut rest, mut size) = (n % max, max / 2);
    while rest > 0 {
        if rest >= size {
            sizes.push(size);
            rest -= size;
        } else {
            size /= 2;
        }
    }
    sizes
}

/// Rows per statement for tags and consent events (see `chunk_sizes`).
const CHUNK: usize = 1024;

/// Columns of an imported contact, and what an import does to an existing one.
const UPSERT_COLUMNS: &str =
    "store_id, phone, mobile, first_name, last_name, email, consent, consent_changed_at, consent_source, created_at, updated_at";
const UPSERT_CONFLICT: &str = "ON CONFLICT (store_id, phone) DO UPDATE SET
            mobile = excluded.mobile,
            first_name = COALESCE(excluded.first_name, contacts.first_name),
            last_name = COALESCE(excluded.last_name, contacts.last_name),
            email = COALESCE(excluded.email, contacts.email),
            consent = excluded.consent,
            consent_changed_at = COALESCE(excluded.consent_changed_at, contacts.consent_changed_at),
            consent_source = COALESCE(excluded.consent_source, contacts.consent_source),
            updated_at = excluded.updated_at
";
const EVENT_COLUMNS: &str = "store_id, contact_id, phone, from_consent, to_consent, source, actor, at";

/// What an import does to a contact's consent, given what it was (`None`: a new contact): only an
/// explicit consent cell changes it, so an opted-out contact is never re-opted-in silently.
/// Returns the consent and whether it changed (which the consent history records).
fn consent_after(before: Option<Consent>, row: &Row) -> (Consent, bool) {
    let after = match (before, row.consent) {
        (Some(b), None) => b,
        (None, None) => Consent::Unknown,
        (_, Some(c)) => c,
    };
    (after, row.consent.is_some() && before != Some(after))
}

/// The consent values as shared text, for SQLite binds (see `Row`).
struct ConsentTexts([Arc<str>; 3]);

impl ConsentTexts {
    fn new() -> Self {
        ConsentTexts([Consent::OptedIn, Consent::OptedOut, Consent::Unknown].map(|c| Arc::from(c.as_str())))
    }

    fn get(&self, c: Consent) -> Arc<str> {
        let [opted_in, opted_out, unknown] = &self.0;
        Arc::clone(match c {
            Consent::OptedIn => opted_in,
            Consent::OptedOut => opted_out,
            Consent::Unknown => unknown,
        })
    }
}

/// One multi-row INSERT of contacts on SQLite: each row with its id (`None` where the statement's
/// conflict clause updates an existing contact) and its consent. Returns the rows written.
async fn insert_sqlite(
    c: &mut sqlx::SqliteConnection,
    ctx: &ImportContext,
    rows: &[(&Row, Option<i64>, (Consent, bool))],
    conflict: &str,
) -> Result<u64, Error> {
    // The values common to every row come first, bound once per statement (`WHERE true` lets
    // SQLite's parser tell the upsert clause from a join constraint).
    let sql = format!(
        "INSERT INTO contacts (id, {UPSERT_COLUMNS})
         SELECT v.column1, ?, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
                CASE WHEN v.column8 THEN ? END, CASE WHEN v.column8 THEN 'import' END, ?, ?
         FROM (VALUES {}) AS v WHERE true {conflict}",
        sqlite_rows(rows.len(), 8)
    );
    let texts = ConsentTexts::new();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ctx.store.0).bind(ctx.now).bind(ctx.now).bind(ctx.now);
    for (row, id, (consent, changed)) in rows {
        q = q
            .bind(*id)
            .bind(row.phone.clone())
            .bind(row.mobile)
            .bind(row.first_name.clone())
            .bind(row.last_name.clone())
            .bind(row.email.clone())
            .bind(texts.get(*consent))
            .bind(*changed);
    }
    Ok(q.execute(c).await.map_err(db_err)?.rows_affected())
}

/// Writes one batch in the given transaction, in a fixed number of statements whatever the batch
/// size. Returns (created, updated).
///
/// The bulk writes are the one place where the dialects get different SQL for speed: multi-row
/// `VALUES` with anonymous `?` on SQLite; `unnest` over one array per column on PostgreSQL (a dozen
/// parameters instead of 11,000, parsed and planned once). The rules are shared.
async fn write_batch(ctx: &ImportContext, tx: &mut Tx<'_>, rows: Vec<Row>) -> Result<(u64, u64), Error> {
    let actor = ctx.actor.label();
    // Each number's existing contact (consent, id), and every row's contact id (`ids[i]` for
    // `rows[i]`). On SQLite the
    // import numbers new contacts itself (the transaction holds the write lock), so nothing comes
    // back with `RETURNING` (sqlx hands each returned SQLite row across threads, which cost more
    // than the insert); PostgreSQL returns them (rows come back in bulk there, and other writers
    // may be taking ids from the sequence at the same time).
    let (existing, ids): (Existing, Vec<i64>) = match &mut *tx {
        Tx::Sqlite(c) => {
            // Every row is first written as a new contact; a number the store already has is left
            // alone by that insert, looked up, and then updated under the consent rule. A first
            // import, all new numbers, so needs no lookup at all.
            let first = super::sqlite_next_id(c, "contacts").await?;
            let as_new: Vec<_> = rows.iter().enumerate().map(|(i, r)| (r, Some(first + i as i64), consent_after(None, r))).collect();
            let inserted = insert_sqlite(c, ctx, &as_new, "ON CONFLICT (store_id, phone) DO NOTHING").await?;
            // Every row new (the usual case): no need to ask which.
            let all_new = inserted == rows.len() as u64;
            let new_ids: HashSet<i64> = if all_new {
                HashSet::new()
            } else {
                let ids: Option<String> = sqlx::query_scalar("SELECT json_group_array(id) FROM contacts WHERE id BETWEEN $1 AND $2")
                    .bind(first)
                    .bind(first + rows.len() as i64 - 1)
                    .fetch_one(&mut **c)
                    .await
                    .map_err(db_err)?;
                serde_json::from_str(ids.as_deref().unwrap_or("[]")).map_err(Error::internal)?
            };
            let mut ids: Vec<i64> = (first..first + rows.len() as i64).collect();
            let taken: Vec<usize> = if all_new { Vec::new() } else { (0..rows.len()).filter(|&i| !new_ids.contains(&ids[i])).collect() };
            let phones: Vec<&str> = taken.iter().map(|&i| &*rows[i].phone).collect();
            let existing = existing_consent(tx, ctx.store, &phones).await?;
            let Tx::Sqlite(c) = &mut *tx else { unreachable!("matched above") };
            let mut updates = Vec::with_capacity(taken.len());
            for i in taken {
                let r = &rows[i];
                let &(before, id) =
                    existing.get(&*r.phone).ok_or_else(|| Error::internal(format!("import: {} was neither new nor found", r.phone)))?;
                ids[i] = id;
                // NULL id: the insert becomes the update of that contact.
                updates.push((r, None, consent_after(Some(before), r)));
            }
            if !updates.is_empty() {
                insert_sqlite(c, ctx, &updates, UPSERT_CONFLICT).await?;
            }
            (existing, ids)
        }
        Tx::Pg(_) => {
            let phones: Vec<&str> = rows.iter().map(|r| &*r.phone).collect();
            let existing = existing_consent(tx, ctx.store, &phones).await?;
            let Tx::Pg(c) = &mut *tx else { unreachable!("matched above") };
            let consents: Vec<(Consent, bool)> = rows.iter().map(|r| consent_after(existing.get(&*r.phone).map(|e| e.0), r)).collect();
            let sql = format!(
                "INSERT INTO contacts ({UPSERT_COLUMNS})
                 SELECT $1, u.phone, u.mobile, u.first_name, u.last_name, u.email, u.consent, u.changed_at, u.source, $2, $2
                 FROM unnest($3::text[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])
                   AS u(phone, mobile, first_name, last_name, email, consent, changed_at, source)
                 {UPSERT_CONFLICT} RETURNING id, phone"
            );
            let returned: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(ctx.store.0)
                .bind(ctx.now)
                .bind(rows.iter().map(|r| &*r.phone).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.mobile).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.first_name.as_deref()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.last_name.as_deref()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.email.as_deref()).collect::<Vec<_>>())
                .bind(consents.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>())
                .bind(consents.iter().map(|(_, changed)| changed.then_some(ctx.now)).collect::<Vec<_>>())
                .bind(consents.iter().map(|(_, changed)| changed.then_some("import")).collect::<Vec<_>>())
                .fetch_all(&mut **c)
                .await
                .map_err(db_err)?;
            let returned: HashMap<String, i64> = returned.into_iter().map(|(id, phone)| (phone, id)).collect();
            let ids = rows
                .iter()
                .map(|r| {
                    returned.get(&*r.phone).copied().ok_or_else(|| Error::internal(format!("import: no id came back for {}", r.phone)))
                })
                .collect::<Result<_, _>>()?;
            (existing, ids)
        }
    };
    // The consent history, as `contacts::record_consent` writes it.
    let events: Vec<(i64, &Arc<str>, Option<Consent>, Consent)> = rows
        .iter()
        .zip(&ids)
        .filter_map(|(r, &id)| {
            let before = existing.get(&*r.phone).map(|e| e.0);
            let (after, changed) = consent_after(before, r);
            changed.then_some((id, &r.phone, before, after))
        })
        .collect();
    let tags: Vec<(i64, &Arc<str>)> = rows.iter().zip(&ids).flat_map(|(r, &id)| r.tags.iter().map(move |t| (id, t))).collect();
    match tx {
        Tx::Sqlite(c) => {
            let mut rest = &tags[..];
            for size in chunk_sizes(tags.len(), CHUNK) {
                let (chunk, after) = rest.split_at(size);
                rest = after;
                let sql = format!(
                    "INSERT INTO contact_tags (contact_id, store_id, tag) SELECT v.column1, ?, v.column2 FROM (VALUES {}) AS v WHERE true
                     ON CONFLICT DO NOTHING",
                    sqlite_rows(size, 2)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ctx.store.0);
                for (id, tag) in chunk {
                    q = q.bind(*id).bind(Arc::clone(tag));
                }
                q.execute(&mut **c).await.map_err(db_err)?;
            }
            let texts = ConsentTexts::new();
            let mut rest = &events[..];
            for size in chunk_sizes(events.len(), CHUNK) {
                let (chunk, after) = rest.split_at(size);
                rest = after;
                // The values common to every row come first, bound once per statement.
                let sql = format!(
                    "INSERT INTO consent_events ({EVENT_COLUMNS})
                     SELECT ?, v.column1, v.column2, v.column3, v.column4, 'import', ?, ? FROM (VALUES {}) AS v",
                    sqlite_rows(size, 4)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ctx.store.0).bind(&actor).bind(ctx.now);
                for (id, phone, from, to) in chunk {
                    q = q.bind(*id).bind(Arc::clone(phone)).bind(from.map(|c| texts.get(c))).bind(texts.get(*to));
                }
                q.execute(&mut **c).await.map_err(db_err)?;
            }
        }
        Tx::Pg(c) => {
            if !tags.is_empty() {
                sqlx::query(
                    "INSERT INTO contact_tags (contact_id, store_id, tag)
                     SELECT u.id, $1, u.tag FROM unnest($2::bigint[], $3::text[]) AS u(id, tag) ON CONFLICT DO NOTHING",
                )
                .bind(ctx.store.0)
                .bind(tags.iter().map(|(id, _)| *id).collect::<Vec<_>>())
                .bind(tags.iter().map(|&(_, tag)| &**tag).collect::<Vec<_>>())
                .execute(&mut **c)
                .await
                .map_err(db_err)?;
            }
            if !events.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO consent_events ({EVENT_COLUMNS})
                     SELECT $1, u.id, u.phone, u.from_consent, u.to_consent, 'import', $2, $3
                     FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[]) AS u(id, phone, from_consent, to_consent)"
                )))
                .bind(ctx.store.0)
                .bind(&actor)
                .bind(ctx.now)
                .bind(events.iter().map(|e| e.0).collect::<Vec<_>>())
                .bind(events.iter().map(|e| &**e.1).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.2.map(Consent::as_str)).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.3.as_str()).collect::<Vec<_>>())
                .execute(&mut **c)
                .await
                .map_err(db_err)?;
            }
        }
    }
    let updated = rows.iter().filter(|r| existing.contains_key(&*r.phone)).count() as u64;
    Ok((rows.len() as u64 - updated, updated))
}

/// The contacts the store already has for some numbers: number → (consent, id).
type Existing<'r> = HashMap<&'r str, (Consent, i64)>;

async fn existing_consent<'r>(tx: &mut Tx<'_>, store: StoreId, phones: &[&'r str]) -> Result<Existing<'r>, Error> {
    if phones.is_empty() {
        return Ok(HashMap::new());
    }
    let found: Vec<(String, String, i64)> = match tx {
        Tx::Sqlite(c) => {
            let sql = format!("SELECT phone, consent, id FROM contacts WHERE store_id = ? AND phone IN {}", sqlite_rows(1, phones.len()));
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(store.0);
            for p in phones {
                q = q.bind(*p);
            }
            q.fetch_all(&mut **c).await
        }
        // One probe of the (store_id, phone) index per number, whatever the planner's statistics
        // say. With `phone IN (…)`, stale statistics (a table grown inside the import's own
        // transactions) made PostgreSQL scan every contact of the store for each batch.
        Tx::Pg(c) => {
            sqlx::query_as(
                "SELECT p.phone, c.consent, c.id FROM unnest($2::text[]) AS p(phone)
                 CROSS JOIN LATERAL (SELECT consent, id FROM contacts WHERE store_id = $1 AND phone = p.phone LIMIT 1) c",
            )
            .bind(store.0)
            .bind(phones)
            .fetch_all(&mut **c)
            .await
        }
    }
    .map_err(db_err)?;
    let by_phone: HashSet<&str> = phones.iter().copied().collect();
    Ok(found
        .into_iter()
        .filter_map(|(p, c, id)| by_phone.get(p.as_str()).map(|k| (*k, (Consent::parse(&c).unwrap_or(Consent::Unknown), id))))
        .collect())
}

#[cfg(test)]
mod tests;
