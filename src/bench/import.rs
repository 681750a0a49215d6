//! `smscast bench import` (issue 2): the CSV import of contacts.
//!
//! Generates a realistic contacts CSV on disk (streaming, bounded memory), then times only the
//! import, through the same `store::import::import` the API and `import-contacts` use.

use super::{FIRST, LAST, Scratch, TAGS, mb, peak_rss_bytes, reset_peak_rss};
use crate::clock::{Clock, SystemClock};
use crate::config::BenchImportArgs;
use crate::domain::phone;
use crate::store::auth::Actor;
use crate::store::import::{self, ImportContext};
use crate::store::on_db;
use anyhow::{Context, bail};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// Writes `rows` contacts as a shop's export would have them: Greek mobiles (unique, written in the
/// usual spellings), Greek and Latin names, an email for most, 0–2 tags, a consent column, and one
/// bad number in a thousand. Streams through a small buffer: memory stays flat for any size.
fn generate_csv(path: &Path, rows: u64) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "phone,first_name,last_name,email,tags,consent")?;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for i in 0..rows {
        // An odd multiplier mod 10^8 that is not a multiple of 5 is a bijection: no duplicates.
        let n = (i.wrapping_mul(48_271_197) + 12_345) % 100_000_000;
        let (a, b, c) = (n / 10_000_000, n / 10_000 % 1000, n % 10_000);
        match next(1000) {
            0 => write!(out, "69{a}{b:03}",)?, // too short: a row error
            1..=599 => write!(out, "+30 69{a} {b:03} {c:04}")?,
            600..=849 => write!(out, "69{a}{b:03}{c:04}")?,
            850..=949 => write!(out, "+3069{a}{b:03}{c:04}")?,
            _ => write!(out, "0030 69{a}-{b:03}-{c:04}")?,
        }
        let first = FIRST[next(FIRST.len() as u64) as usize];
        let last = LAST[next(LAST.len() as u64) as usize];
        write!(out, ",{first},{last},")?;
        if next(4) != 0 {
            write!(out, "customer{i}@example.gr")?;
        }
        match next(3) {
            0 => write!(out, ",")?,
            1 => write!(out, ",{}", TAGS[next(TAGS.len() as u64) as usize])?,
            _ => write!(out, ",\"{},{}\"", TAGS[next(3) as usize], TAGS[3 + next(3) as usize])?,
        }
        let consent = match next(10) {
            0 => "opted_out",
            1 => "",
            2 => "unknown",
            _ => "opted_in",
        };
        writeln!(out, ",{consent}")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// What the import costs before any database work, on one thread: reading the CSV, then reading it
/// again and parsing its phone numbers (nothing is kept in memory).
fn breakdown(csv: &Path) -> anyhow::Result<()> {
    let country = phone::parse_country("GR").expect("GR");
    let pass = |parse: bool| -> anyhow::Result<(u64, u64, f64)> {
        let started = Instant::now();
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_path(csv)?;
        let mut record = csv::ByteRecord::new();
        let (mut rows, mut valid) = (0u64, 0u64);
        while reader.read_byte_record(&mut record)? {
            rows += 1;
            if parse {
                let cell = std::str::from_utf8(record.get(0).unwrap_or(b"")).unwrap_or("");
                valid += u64::from(phone::parse(cell, country).is_ok());
            }
        }
        Ok((rows, valid, started.elapsed().as_secs_f64()))
    };
    let (rows, _, read) = pass(false)?;
    let (_, valid, read_and_parse) = pass(true)?;
    let parse = (read_and_parse - read).max(1e-9);
    println!("breakdown (1 thread, no database):");
    println!("  read CSV:      {read:.2} s ({:.0} rows/s)", rows as f64 / read);
    println!("  parse phones:  {parse:.2} s ({:.0} numbers/s, {valid} valid)", rows as f64 / parse);
    Ok(())
}

pub async fn run(args: BenchImportArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let (db, _) = super::open_database(&args.db, &scratch).await?;
    let csv = scratch.0.join("contacts.csv");
    eprintln!("generating {} rows in {} …", args.rows, csv.display());
    let started = Instant::now();
    let bytes = generate_csv(&csv, args.rows)?;
    eprintln!("generated {:.1} MB in {:.1} s", bytes as f64 / 1e6, started.elapsed().as_secs_f64());

    if args.breakdown {
        breakdown(&csv)?;
    }
    let store = super::create_store(&db, "Bench Store", "bench@smscast.local", SystemClock.now_ms()).await?;
    let ctx = ImportContext {
        db: db.clone(),
        store: store.store.store_id(),
        country: phone::parse_country("GR").expect("GR"),
        actor: Actor::Operator,
        now: SystemClock.now_ms(),
    };
    let file = std::fs::File::open(&csv)?;
    let peak_reset = reset_peak_rss();
    let rss_before = peak_rss_bytes().unwrap_or(0);
    let mut shown = 0;
    let started = Instant::now();
    let report = import::import(ctx, file, |rows| {
        if rows >= shown + 100_000 {
            shown = rows;
            eprint!("\r{rows} rows …");
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_bytes().unwrap_or(0);
    eprintln!();
    let stored: (i64,) =
        on_db!(&db, |p| sqlx::query_as("SELECT COUNT(*) FROM contacts WHERE store_id = $1").bind(store.store.id).fetch_one(p).await)?;
    let database = super::database_name(&db);
    db.close().await;
    if stored.0 as u64 != report.created {
        bail!("the import reported {} created contacts but the database holds {}", report.created, stored.0);
    }
    println!("database:        {database}");
    println!("rows in file:    {} ({:.1} MB)", report.total, bytes as f64 / 1e6);
    println!("imported:        {} created, {} updated, {} skipped (row errors)", report.created, report.updated, report.skipped);
    println!("import time:     {secs:.2} s");
    println!("throughput:      {:.0} rows/s", report.total as f64 / secs);
    println!(
        "peak RSS:        {:.1} MB{}",
        mb(peak),
        if peak_reset { " (import only: the mark was reset after generating the file)" } else { " (whole process)" }
    );
    if peak_reset {
        println!("RSS at start:    {:.1} MB", mb(rss_before));
    }
    Ok(())
}
