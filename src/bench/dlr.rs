//! `smscast bench dlr` (issue 13): delivery-report ingestion through `POST /webhooks/mitto/dlr`,
//! in batches as Mitto may post them, on the app's real HTTP path.

use super::{Scratch, percentile};
use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::BenchDlrArgs;
use crate::domain::time::rfc3339;
use crate::store::on_db;
use crate::store::queue::{self, Outcome};
use serde_json::{Value, json};
use std::time::Instant;

const SECRET: &str = "bench-webhook-secret-0123456789";

pub async fn run(args: BenchDlrArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let (db, url) = super::open_database(&args.db, &scratch).await?;
    let now = SystemClock.now_ms();
    let created = super::create_store(&db, "Bench DLR", "bench-dlr@smscast.local", now).await?;
    let store_id = created.store.store_id();
    super::seed_contacts(&db, store_id, args.messages, now).await?;
    let campaign = super::funded_campaign(&db, store_id, "bench-dlr", now).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut cfg = super::app_config(&url, &args.db, "https://sms.example.gr", None);
    cfg.webhook_secrets = vec![SECRET.into()];
    let running = app::start_with_db(cfg, db.clone(), listener).await?;
    let base = running.url();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    super::launch(&client, &base, campaign.id, &created.api_key, "bench-dlr").await?;

    // Every message accepted by the provider (not timed): the reports then find sent messages.
    let setup = Instant::now();
    let cursor = queue::ClaimCursor::default();
    let mut ids = Vec::with_capacity(args.messages as usize);
    let err = |e: crate::domain::Error| anyhow::anyhow!("{e}");
    while let Some(batch) = queue::claim(&db, "bench", 1000, 600_000, SystemClock.now_ms(), &cursor).await.map_err(err)? {
        let outcomes: Vec<(i64, Outcome)> =
            batch.messages.iter().map(|m| (m.id, Outcome::Sent { provider_id: format!("01BENCH{:019}", m.id) })).collect();
        ids.extend(batch.messages.iter().map(|m| m.id));
        queue::record(&db, &batch, &outcomes, SystemClock.now_ms()).await.map_err(err)?;
    }
    eprintln!("{} messages sent (not timed) in {:.1} s", ids.len(), setup.elapsed().as_secs_f64());

    // One final report per message, named as Mitto does (its id) with our reference.
    let at = rfc3339(SystemClock.now_ms());
    let bodies: Vec<String> = ids
        .chunks(args.batch.max(1))
        .map(|chunk| {
            let reports: Vec<Value> = chunk
                .iter()
                .map(|id| json!({"messageId": format!("01BENCH{id:019}"), "reference": id.to_string(), "deliveryStatus": "Delivered", "updatedAt": at}))
                .collect();
            Value::Array(reports).to_string()
        })
        .collect();
    let started = Instant::now();
    let mut lanes = Vec::new();
    for lane in 0..args.concurrency.max(1) {
        let mine: Vec<String> = bodies.iter().skip(lane).step_by(args.concurrency.max(1)).cloned().collect();
        let (client, url) = (client.clone(), format!("{base}/webhooks/mitto/dlr"));
        lanes.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine.len());
            for body in mine {
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("X-Webhook-Secret", SECRET)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if !res.status().is_success() {
                    anyhow::bail!("the webhook answered {}: {}", res.status(), res.text().await.unwrap_or_default());
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for lane in lanes {
        latencies.extend(lane.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let (delivered,): (i64,) =
        on_db!(&db, |p| sqlx::query_as("SELECT delivered FROM campaigns WHERE id = $1").bind(campaign.id).fetch_one(p).await)?;
    running.stop().await;
    if delivered != ids.len() as i64 {
        anyhow::bail!("{delivered} of {} messages delivered after the run", ids.len());
    }
    println!("database:        {}", super::database_name(&db));
    println!("reports:         {} in batches of {} over {} connections", ids.len(), args.batch, args.concurrency);
    println!("time:            {secs:.2} s");
    println!("reports/s:       {:.0}", ids.len() as f64 / secs);
    println!("request latency: p50 {:.1} ms, p99 {:.1} ms", percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    Ok(())
}
