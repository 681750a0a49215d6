//! `smscast bench …`: benchmarks that print numbers (results in BENCHMARKS.md).
//!
//! `bench import` generates a realistic contacts CSV on disk (streaming, bounded memory), then times
//! only the import, through the same `store::import::import` the API and `import-contacts` use.

use crate::clock::Clock;
use crate::config::{BenchArgs, BenchCommand, BenchImportArgs, BenchPreviewArgs};
use crate::domain::phone;
use crate::store::auth::Actor;
use crate::store::import::{self, ImportContext};
use crate::store::stores::{self, CreateStore};
use crate::store::{Db, on_db, on_tx};
use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

mod send;
mod sse;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Import(a) => import_bench(a).await,
        BenchCommand::Preview(a) => preview_bench(a).await,
        BenchCommand::Send(a) => send::run(a).await,
        BenchCommand::Sse(a) => sse::run(a).await,
        BenchCommand::SseClients(a) => sse::clients(a).await,
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("smscast-bench-{}-{}", std::process::id(), crate::secrets::random_token(8)));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Resets the peak-RSS mark (Linux ≥ 4.0), so a measurement covers only what follows.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Creates (or re-creates) the benchmark's PostgreSQL database. Its name must contain "bench":
/// the bench drops it first, and must never be pointed at a real database by mistake.
async fn fresh_postgres(url: &str) -> anyhow::Result<()> {
    let opts = PgConnectOptions::from_str(url).context("not a PostgreSQL URL")?;
    let name = opts.get_database().unwrap_or_default().to_string();
    if !name.contains("bench") || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!(
            "the bench drops and re-creates the database it is given, so its name must contain \"bench\" and be lower-case letters, digits and _ (got \"{name}\"), e.g. postgres://postgres@127.0.0.1/smscast_bench"
        );
    }
    let mut admin = PgConnection::connect_with(&opts.clone().database("postgres")).await.context("cannot reach PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}

const FIRST: [&str; 16] = [
    "Γιώργος",
    "Μαρία",
    "Νίκος",
    "Ελένη",
    "Κώστας",
    "Κατερίνα",
    "Δημήτρης",
    "Σοφία",
    "Γιάννης",
    "Αναστασία",
    "Παναγιώτης",
    "Anna",
    "John",
    "Emma",
    "Marco",
    "Olivia",
];
const LAST: [&str; 12] = [
    "Παπαδόπουλος",
    "Παπαδοπούλου",
    "Γεωργίου",
    "Οικονόμου",
    "Νικολάου",
    "Δημητρίου",
    "Ιωάννου",
    "Κωνσταντίνου",
    "Smith",
    "Müller",
    "Rossi",
    "Brown",
];
const TAGS: [&str; 6] = ["vip", "athens", "thessaloniki", "newsletter", "summer-sale", "loyalty"];

/// Writes `rows` contacts as a shop's export would have them: Greek mobiles (unique, written in the
/// usual spellings), Greek and Latin names, an email for most, 0–2 tags, a consent column, and one
/// bad number in a thousand. Streams through a small buffer: memory stays flat for any size.
pub fn generate_csv(path: &Path, rows: u64) -> anyhow::Result<u64> {
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

async fn import_bench(args: BenchImportArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let url = match &args.database_url {
        None => format!("sqlite://{}", scratch.0.join("bench.db").display()),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            fresh_postgres(u).await?;
            u.clone()
        }
        Some(u) => {
            let path = u.strip_prefix("sqlite://").or_else(|| u.strip_prefix("sqlite:")).unwrap_or(u);
            if Path::new(path).exists() {
                bail!("{path} exists; the bench needs a fresh SQLite file (remove it or pick another path)");
            }
            format!("sqlite://{path}")
        }
    };
    let csv = scratch.0.join("contacts.csv");
    eprintln!("generating {} rows in {} …", args.rows, csv.display());
    let started = Instant::now();
    let bytes = generate_csv(&csv, args.rows)?;
    eprintln!("generated {:.1} MB in {:.1} s", bytes as f64 / 1e6, started.elapsed().as_secs_f64());

    if args.breakdown {
        breakdown(&csv)?;
    }
    let db = Db::connect(&url, args.db_connections).await.context("cannot open the benchmark database")?;
    let store = stores::create(
        &db,
        crate::clock::SystemClock.now_ms(),
        CreateStore {
            name: "Bench Store",
            email: "bench@smscast.local",
            country: "GR",
            language: "el",
            timezone: "Europe/Athens",
            sender_name: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let ctx = ImportContext {
        db: db.clone(),
        store: store.store.store_id(),
        country: phone::parse_country("GR").expect("GR"),
        actor: Actor::Operator,
        now: crate::clock::SystemClock.now_ms(),
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
    db.close().await;
    if stored.0 as u64 != report.created {
        bail!("the import reported {} created contacts but the database holds {}", report.created, stored.0);
    }
    let database = if url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    println!("database:        {database}");
    println!("rows in file:    {} ({:.1} MB)", report.total, bytes as f64 / 1e6);
    println!("imported:        {} created, {} updated, {} skipped (row errors)", report.created, report.updated, report.skipped);
    println!("import time:     {secs:.2} s");
    println!("throughput:      {:.0} rows/s", report.total as f64 / secs);
    println!(
        "peak RSS:        {:.1} MB{}",
        peak as f64 / 1_048_576.0,
        if peak_reset { " (import only: the mark was reset after generating the file)" } else { " (whole process)" }
    );
    if peak_reset {
        println!("RSS at start:    {:.1} MB", rss_before as f64 / 1_048_576.0);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// bench preview (issue 3): the exact campaign preview over a large audience.

/// Rows per multi-row INSERT when seeding (3 binds each: far under both databases' bind limits).
const SEED_BATCH: usize = 2_000;

/// Inserts `n` opted-in mobile contacts with Greek names in multi-row INSERTs, one transaction
/// per 100,000 rows. The store id and the timestamps are integers produced here, so they are part
/// of the SQL text; phones and names are binds.
async fn seed_contacts(db: &Db, store: i64, n: u64, now: i64) -> anyhow::Result<()> {
    let values = |rows: usize| {
        let mut s = String::from(
            "INSERT INTO contacts (store_id, phone, mobile, first_name, last_name, consent, consent_changed_at, consent_source, created_at, updated_at) VALUES ",
        );
        for r in 0..rows {
            let b = r * 3;
            let sep = if r > 0 { "," } else { "" };
            s.push_str(&format!("{sep}({store}, ${}, TRUE, ${}, ${}, 'opted_in', {now}, 'bench', {now}, {now})", b + 1, b + 2, b + 3));
        }
        s
    };
    let full = values(SEED_BATCH);
    let mut next = 0u64;
    while next < n {
        let mut tx = db.begin().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let tx_end = (next + 100_000).min(n);
        while next < tx_end {
            let rows = ((tx_end - next) as usize).min(SEED_BATCH);
            let sql = if rows == SEED_BATCH { full.clone() } else { values(rows) };
            on_tx!(&mut tx, |c| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for i in next..next + rows as u64 {
                    // Names vary in length, so recipients' texts (and a few segment counts) differ.
                    let first = FIRST[(i % 12) as usize];
                    let last = LAST[((i / 12) % 8) as usize];
                    q = q.bind(format!("+3069{i:08}")).bind(first).bind(last);
                }
                q.execute(c).await.map(|_| ())
            })
            .context("seeding contacts")?;
            next += rows as u64;
        }
        tx.commit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        eprint!("\rseeded {next}/{n} contacts");
    }
    eprintln!();
    Ok(())
}

async fn preview_bench(args: BenchPreviewArgs) -> anyhow::Result<()> {
    use crate::store::campaigns::{self, CampaignInput, SendSettings};
    let scratch = Scratch::new()?;
    let (db, url, store_id, campaign_id, seed_secs) = {
        let url = match &args.database_url {
            None => format!("sqlite://{}", scratch.0.join("bench.db").display()),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                fresh_postgres(u).await?;
                u.clone()
            }
            Some(u) => {
                let path = u.strip_prefix("sqlite://").or_else(|| u.strip_prefix("sqlite:")).unwrap_or(u);
                if Path::new(path).exists() {
                    bail!("{path} exists; the bench needs a fresh SQLite file (remove it or pick another path)");
                }
                format!("sqlite://{path}")
            }
        };
        let db = Db::connect(&url, args.db_connections).await.context("cannot open the benchmark database")?;
        let now = crate::clock::SystemClock.now_ms();
        let store = stores::create(
            &db,
            now,
            CreateStore {
                name: "Bench Preview",
                email: "bench-preview@smscast.local",
                country: "GR",
                language: "el",
                timezone: "Europe/Athens",
                sender_name: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let store_id = store.store.store_id();
        let started = Instant::now();
        seed_contacts(&db, store_id.0, args.contacts, now).await?;
        // What PostgreSQL's autovacuum does within a minute of a bulk load. Without it the planner
        // still expects an almost empty table and may sort the million rows on disk (+0.7 s).
        // (SQLite has no automatic ANALYZE, so it runs without statistics, as in production.)
        if let Db::Pg(p) = &db {
            sqlx::query("ANALYZE contacts").execute(p).await.context("ANALYZE contacts")?;
        }
        let seed_secs = started.elapsed().as_secs_f64();
        let mut tx = db.begin().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::ledger::top_up(&mut tx, store_id, 1_000_000_000, "bench", "bench-preview", now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        tx.commit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let campaign = campaigns::create(
            &db,
            store_id,
            &Actor::Operator,
            CampaignInput {
                name: Some("Καλοκαιρινές εκπτώσεις".into()),
                message: Some("Γεια σου {{first_name}}! -20% σε όλα με τον κωδικό {{discount_code}} ως την Κυριακή.".into()),
                audience: Some(crate::domain::campaign::Audience::All),
                discount_code: Some(Some("SUMMER20".into())),
                ..CampaignInput::default()
            },
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        (db, url, store_id, campaign.id, seed_secs)
    };
    let settings = SendSettings {
        public_url: args.public_url.clone(),
        billing: crate::domain::credits::Billing::PerSegment,
        hold_ttl_ms: 24 * 3_600_000,
    };
    let peak_seeding = peak_rss_bytes().unwrap_or(0);
    let peak_reset = reset_peak_rss();
    let rss_before = peak_rss_bytes().unwrap_or(0);
    let (mut times, mut cpu, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = serde_json::Value::Null;
    for _ in 0..args.runs.max(1) {
        reset_peak_rss();
        let (t, c0) = (Instant::now(), cpu_secs());
        last = campaigns::preview(&db, store_id, campaign_id, &settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_secs() - c0);
        peaks.push(peak_rss_bytes().unwrap_or(0));
    }
    let peak = peaks[0];
    db.close().await;
    let mb = |b: u64| b as f64 / 1_048_576.0;
    let database = if url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    println!("database:        {database}");
    println!("contacts:        {} (seeded in {seed_secs:.1} s, not timed)", args.contacts);
    println!("recipients:      {}", last["recipients"]);
    println!("encoding:        {}", last["encoding"]);
    println!("segments:        {}  (estimated cost {} credits)", last["segments"], last["estimated_cost"]);
    println!("greek_gsm:       {}", last["greek_gsm"]);
    println!("sample:          {}", last["samples"][0]["text"]);
    let runs: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    println!("preview time:    {:.2} s (first run; all runs: {} s)", times[0], runs.join(", "));
    println!("throughput:      {:.0} contacts/s", args.contacts as f64 / times[0]);
    println!(
        "CPU time:        {} s (user + system, all threads, per run)",
        cpu.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "peak RSS:        {:.1} MB first run{}; all runs: {} MB",
        mb(peak),
        if peak_reset { " (preview only: the mark is reset before each run)" } else { " (whole process, seeding included)" },
        peaks.iter().map(|p| format!("{:.1}", mb(*p))).collect::<Vec<_>>().join(", ")
    );
    if peak_reset {
        println!("RSS at start:    {:.1} MB (peak while seeding {:.1} MB)", mb(rss_before), mb(peak_seeding));
    }
    Ok(())
}

/// CPU time (user + system) of this process so far, from /proc/self/stat, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, i.e. 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}
