//! `smscast bench preview` (issue 3): the exact campaign preview over a large audience.

use super::{Scratch, mb, peak_rss_bytes, proc_cpu_seconds, reset_peak_rss};
use crate::clock::{Clock, SystemClock};
use crate::config::BenchPreviewArgs;
use crate::store::campaigns::{self, SendSettings};
use std::time::Instant;

pub async fn run(args: BenchPreviewArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let (db, _) = super::open_database(&args.db, &scratch).await?;
    let now = SystemClock.now_ms();
    let store_id = super::create_store(&db, "Bench Preview", "bench-preview@smscast.local", now).await?.store.store_id();
    let started = Instant::now();
    super::seed_contacts(&db, store_id, args.contacts, now).await?;
    let seed_secs = started.elapsed().as_secs_f64();
    let campaign_id = super::funded_campaign(&db, store_id, "bench-preview", now).await?.id;
    let settings = SendSettings {
        public_url: args.public_url.clone(),
        billing: crate::domain::credits::Billing::PerSegment,
        hold_ttl_ms: 24 * 3_600_000,
    };
    let peak_seeding = peak_rss_bytes().unwrap_or(0);
    let peak_reset = reset_peak_rss();
    let rss_before = peak_rss_bytes().unwrap_or(0);
    let cpu_secs = || proc_cpu_seconds("self").unwrap_or(0.0);
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
    let database = super::database_name(&db);
    db.close().await;
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
