//! `smscast bench clicks` (issue 13): tracked-link redirects through the real HTTP server, each
//! one resolved, recorded and counted as in production.

use super::{Scratch, percentile};
use crate::clock::{Clock, SystemClock};
use crate::config::BenchClicksArgs;
use crate::domain::links;
use crate::store::auth::Actor;
use crate::store::campaigns::{self, CampaignInput, SendSettings};
use std::time::Instant;

const TARGET: &str = "https://shop.example.gr/collections/winter-sale?utm_source=sms";
const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36";

pub async fn run(args: BenchClicksArgs) -> anyhow::Result<()> {
    let err = |e: crate::domain::Error| anyhow::anyhow!("{e}");
    let scratch = Scratch::new()?;
    let (db, url) = super::open_database(&args.db, &scratch).await?;
    let now = SystemClock.now_ms();
    let store = super::create_store(&db, "Bench Clicks", "bench-clicks@smscast.local", now).await?.store.store_id();
    super::seed_contacts(&db, store, args.contacts, now).await?;
    let mut tx = db.begin().await.map_err(err)?;
    crate::store::ledger::top_up(&mut tx, store, 1_000_000_000, "bench", "bench-clicks", now).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    let input = CampaignInput {
        name: Some("Χειμερινές εκπτώσεις".into()),
        message: Some(format!("Γεια σου {{{{first_name}}}}! -30% στις χειμερινές εκπτώσεις: {TARGET}")),
        audience: Some(crate::domain::campaign::Audience::All),
        ..CampaignInput::default()
    };
    let campaign = campaigns::create(&db, store, &Actor::Operator, input, now).await.map_err(err)?;
    let public_url = "https://sms.example.gr";
    let settings =
        SendSettings { public_url: public_url.into(), billing: crate::domain::credits::Billing::PerSegment, hold_ttl_ms: 24 * 3_600_000 };
    crate::store::queue::start(&db, store, campaign.id, "bench", "bench clicks", &settings, now).await.map_err(err)?;
    let campaign = campaigns::get(&db, store, campaign.id).await.map_err(err)?;
    let (first, last): (i64, i64) =
        crate::store::on_db!(&db, |p| sqlx::query_as("SELECT first_message_id, last_message_id FROM campaigns WHERE id = $1")
            .bind(campaign.id)
            .fetch_one(p)
            .await)?;
    let link_key = links::key(&crate::store::settings::read_code_key(&db).await.map_err(err)?);
    eprintln!("launched {} messages", campaign.total);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = crate::app::start_with_db(super::app_config(&url, &args.db, public_url, None), db.clone(), listener).await?;
    let base = app.url();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let click = move |code: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let started = Instant::now();
            let res = http.get(format!("{base}/l/{code}")).header("user-agent", PHONE_UA).send().await?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(res.status().as_u16() == 302, "a redirect: {}", res.status());
            anyhow::ensure!(res.headers().get("location").is_some_and(|l| l == TARGET), "to the link's address");
            Ok::<f64, anyhow::Error>(ms)
        }
    };
    let random_code = || links::code(&link_key, first + (rand::random::<u64>() % (last - first + 1) as u64) as i64, 0);
    for _ in 0..500 {
        click(random_code()).await?;
    }
    let per_client = args.clicks.div_ceil(args.concurrency.max(1));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let codes: Vec<String> = (0..per_client).map(|_| random_code()).collect();
        let click = click.clone();
        clients.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(codes.len());
            for code in codes {
                times.push(click(code).await?);
            }
            Ok::<Vec<f64>, anyhow::Error>(times)
        }));
    }
    let mut times = Vec::new();
    for c in clients {
        times.extend(c.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let counted = campaigns::get(&db, store, campaign.id).await.map_err(err)?;
    app.stop().await;
    println!("database:        {}", super::database_name(&db));
    println!("recipients:      {} (one tracked link each)", campaign.total);
    println!("clicks:          {} timed (+500 warm-up), {} at a time", times.len(), args.concurrency.max(1));
    println!("redirect p50:    {:.2} ms", percentile(&times, 50.0));
    println!("redirect p99:    {:.2} ms", percentile(&times, 99.0));
    println!("redirect max:    {:.2} ms", times.last().copied().unwrap_or(f64::NAN));
    println!("throughput:      {:.0} clicks/s", times.len() as f64 / secs);
    println!("counted:         {} clicks, {} unique (campaign counters)", counted.clicks, counted.unique_clicks);
    Ok(())
}
