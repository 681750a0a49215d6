//! The `smscast` binary: parse the command line, set up logging, dispatch.

use anyhow::Context;
use clap::Parser;
use smscast::app::{self, AppConfig};
use smscast::clock::{Clock, SystemClock};
use smscast::config::{Cli, Command, DbArgs, LogFormat, StoreCommand};
use smscast::store::{Db, StoreId, import, stores};
use std::io::Write;
use std::sync::Arc;

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SMSCAST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn connect(db: &DbArgs) -> anyhow::Result<Db> {
    Db::connect(&db.url(), db.db_connections).await.map_err(|e| {
        let url = redact(&db.database_url);
        if e.downcast_ref::<sqlx::Error>().is_some_and(smscast::store::is_missing_database) {
            e.context(format!("the database at {url} does not exist: `smscast migrate --database-url {url}` creates it"))
        } else {
            e.context(format!("cannot open the database at {url}"))
        }
    })
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    smscast::provider::install_crypto_provider();
    smscast::faults::arm_from_env();
    init_logging(cli.log_format);
    let clock = Arc::new(SystemClock);
    match cli.command {
        Command::Serve(args) => {
            args.engine.validate(args.provider.mitto_timeout_ms).map_err(anyhow::Error::msg)?;
            let listener =
                tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
            let db = connect(&args.db).await?;
            apply_rate_limit(&db, &args.provider, clock.now_ms()).await?;
            let mut webhook_secrets = args.mitto_webhook_secret.clone();
            let public_url = args
                .send
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", listener.local_addr().map_or(args.listen.clone(), |a| a.to_string())));
            // The demo's simulator posts its reports to our webhook with a secret made up here.
            let demo_dlr = (args.demo && args.provider.mitto_base_url.is_none()).then(|| {
                if webhook_secrets.is_empty() {
                    webhook_secrets.push(smscast::secrets::random_token(32));
                }
                (format!("{}/webhooks/mitto/dlr", public_url.trim_end_matches('/')), webhook_secrets[0].clone())
            });
            let cfg = AppConfig {
                database_url: args.db.url(),
                db_connections: args.db.db_connections,
                public_url: args.send.public_url.clone(),
                max_import_bytes: args.max_import_mb * 1024 * 1024,
                session_ttl_ms: args.session_hours * 3_600_000,
                client_ip_header: args.client_ip_header.clone(),
                billing: args.send.billing,
                hold_ttl_ms: args.send.hold_ttl_hours * 3_600_000,
                clock: clock.clone(),
                webhook_secrets,
                metrics_tokens: args.metrics.metrics_token.clone(),
                provider: build_provider(&args.provider, args.demo, demo_dlr).await?,
                engine: args.engine.clone(),
                limits: args.limits.clone(),
            };
            if args.demo {
                let demo =
                    smscast::demo::ensure_demo(&db, clock.now_ms()).await.map_err(|e| anyhow::anyhow!("demo seeding failed: {e}"))?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "Login: {} / {}", demo.email, demo.password)?;
                writeln!(out, "API key: {}", demo.api_key)?;
                writeln!(out, "Admin API key: {}", demo.admin_key)?;
                out.flush()?;
            }
            let running = app::start_with_db(cfg, db, listener).await?;
            tracing::info!(url = %running.url(), "smscast is serving");
            println!("smscast is running on {}", running.url());
            if args.demo {
                println!("Open {}/ and log in", running.url());
            }
            running.run_until_signal().await;
        }
        Command::Migrate(db) => {
            if Db::create_postgres_database(&db.url())
                .await
                .with_context(|| format!("cannot create the database at {}", redact(&db.database_url)))?
            {
                println!("Created the database {}", redact(&db.database_url));
            }
            connect(&db).await?;
            println!("Migrations applied to {}", redact(&db.database_url));
        }
        Command::Store(StoreCommand::Create(args)) => {
            let db = connect(&args.db).await?;
            let created = stores::create(
                &db,
                clock.now_ms(),
                stores::CreateStore {
                    name: &args.name,
                    email: &args.email,
                    country: &args.country,
                    language: &args.language,
                    timezone: "Europe/Athens",
                    sender_name: None,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("Store: {} ({})", created.store.id, created.store.name);
            println!("Login: {} / {}", created.email, created.password);
            println!("API key: {}", created.api_key);
        }
        Command::AdminKey(args) => {
            use smscast::domain::time::rfc3339;
            use smscast::store::auth;
            let db = connect(&args.db).await?;
            if args.list {
                for k in auth::list_admin_keys(&db).await.map_err(|e| anyhow::anyhow!("{}", e.message))? {
                    let state = k.revoked_at.map_or("active".to_string(), |t| format!("revoked {}", rfc3339(t)));
                    println!("{}\t{}\t{}\tcreated {}\t{state}", k.id, k.prefix, k.name, rfc3339(k.created_at));
                }
            } else if let Some(id) = args.revoke {
                let k = auth::revoke_admin_key(&db, id, clock.now_ms()).await.map_err(|e| match e.kind {
                    smscast::domain::Kind::NotFound => {
                        anyhow::anyhow!("there is no admin key with id {id} (smscast admin-key --list shows them)")
                    }
                    _ => anyhow::anyhow!("{}", e.message),
                })?;
                println!("Revoked admin key {} ({}…, {})", k.id, k.prefix, k.name);
            } else {
                let key = auth::create_admin_key(&db, &args.name, clock.now_ms()).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
                println!("Admin API key: {key}");
            }
        }
        Command::Worker(args) => {
            args.engine.validate(args.provider.mitto_timeout_ms).map_err(anyhow::Error::msg)?;
            let db = connect(&args.db).await?;
            apply_rate_limit(&db, &args.provider, clock.now_ms()).await?;
            let Some(provider) = build_provider(&args.provider, false, None).await? else {
                anyhow::bail!("the worker needs an SMS provider: set --mitto-base-url, --mitto-api-key and --mitto-traffic-account-id");
            };
            let send = smscast::store::campaigns::SendSettings {
                public_url: args.send.public_url.clone().unwrap_or_else(|| "http://127.0.0.1:8080".into()),
                billing: args.send.billing,
                hold_ttl_ms: args.send.hold_ttl_hours * 3_600_000,
            };
            let cfg = smscast::engine::EngineConfig { workers: args.engine.workers.max(1), ..args.engine.clone() };
            let engine = smscast::engine::Engine::new(db, provider, clock.clone(), cfg, send);
            if let Some(addr) = &args.metrics_listen {
                serve_worker_metrics(addr, &args.metrics.metrics_token).await?;
            }
            let (stop, rx) = tokio::sync::watch::channel(false);
            let tasks = engine.spawn(rx);
            tracing::info!(worker = %engine.id, "engine running");
            app::shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight batches");
            let _ = stop.send(true);
            for t in tasks {
                let _ = t.await;
            }
        }
        Command::Simulator(args) => {
            let listener =
                tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
            println!("Mitto simulator listening on http://{}", listener.local_addr()?);
            smscast::provider::simulator::Simulator::new(args.sim).serve(listener).await?;
        }
        Command::Bench(args) => smscast::bench::run(args).await?,
        Command::Soak(args) => smscast::soak::run(args).await?,
        Command::Mitto(smscast::config::MittoCommand::RegisterWebhooks(args)) => register_webhooks(args).await?,
        Command::ImportContacts(args) => {
            let db = connect(&args.db).await?;
            let store =
                stores::get(&db, StoreId(args.store)).await.map_err(|_| anyhow::anyhow!("there is no store with id {}", args.store))?;
            let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let counter = CountingReader { inner: file, read: Arc::new(std::sync::atomic::AtomicU64::new(0)) };
            let read = counter.read.clone();
            let ctx = import::ImportContext {
                db,
                store: store.store_id(),
                country: smscast::domain::phone::parse_country(&store.default_country).unwrap_or(phonenumber::country::Id::GR),
                actor: smscast::store::auth::Actor::Operator,
                now: clock.now_ms(),
            };
            let report =
                import::import(ctx, counter, move |rows| progress_bar(read.load(std::sync::atomic::Ordering::Relaxed), size, rows))
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            eprintln!();
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn progress_bar(done: u64, total: u64, rows: u64) {
    let pct = (done * 100).checked_div(total).map_or(100, |p| p.min(100));
    let filled = (pct / 4) as usize;
    eprint!("\r[{}{}] {pct:>3}%  {rows} rows", "#".repeat(filled), " ".repeat(25 - filled));
}

/// The Mitto client for the configured account; with `--demo` and no base URL, a simulator on a
/// loopback port stands in, so the real client, HTTP and engine all run.
/// `demo_dlr`: where the demo simulator posts its delivery reports, and the secret it sends.
async fn build_provider(
    args: &smscast::config::ProviderArgs,
    demo: bool,
    demo_dlr: Option<(String, String)>,
) -> anyhow::Result<Option<Arc<dyn smscast::provider::SmsProvider>>> {
    use smscast::provider::mitto::{MittoClient, MittoConfig};
    let base_url = match (&args.mitto_base_url, demo) {
        (Some(url), _) => url.clone(),
        (None, true) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (dlr_url, dlr_secret) = demo_dlr.map_or((None, None), |(url, secret)| (Some(url), Some(secret)));
            let sim = smscast::provider::simulator::Simulator::new(smscast::provider::simulator::SimulatorConfig {
                dlr_url,
                dlr_secret,
                dlr_delay_ms: 2_000,
                ..Default::default()
            });
            tokio::spawn(async move {
                if let Err(e) = sim.serve(listener).await {
                    tracing::error!(error = %e, "demo simulator stopped");
                }
            });
            tracing::info!(%url, "demo: in-process Mitto simulator");
            url
        }
        (None, false) => {
            tracing::warn!("no SMS provider configured (--mitto-base-url): the send engine is off");
            return Ok(None);
        }
    };
    if args.mitto_base_url.is_some() && (args.mitto_api_key.is_none() || args.mitto_traffic_account_id.is_none()) {
        anyhow::bail!("--mitto-base-url needs --mitto-api-key and --mitto-traffic-account-id too");
    }
    let cfg = MittoConfig {
        base_url,
        api_key: args.mitto_api_key.clone().unwrap_or_else(|| "demo".into()),
        traffic_account_id: args.mitto_traffic_account_id.clone().unwrap_or_else(|| "demo".into()),
        bulk_size: args.mitto_bulk_size,
        timeout: std::time::Duration::from_millis(args.mitto_timeout_ms),
    };
    let client = MittoClient::new(cfg).map_err(|e| anyhow::anyhow!("Mitto settings: {e}"))?;
    Ok(Some(Arc::new(client)))
}

/// `worker --metrics-listen`: the engine's counters on their own small listener (a worker has no
/// other HTTP), for a scraper with the metrics token.
async fn serve_worker_metrics(addr: &str, tokens: &[String]) -> anyhow::Result<()> {
    let tokens = smscast::http::metrics::tokens(tokens.to_vec()).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics"))?;
    smscast::telemetry::install();
    tracing::info!(addr = %listener.local_addr()?, "serving engine metrics at /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, smscast::http::metrics::worker_router(tokens)).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}

/// Applies `--mitto-rate-limit` to the shared bucket, when given.
async fn apply_rate_limit(db: &Db, args: &smscast::config::ProviderArgs, now: i64) -> anyhow::Result<()> {
    if let Some(rate) = args.mitto_rate_limit {
        smscast::store::rate::set(db, &smscast::store::rate::provider_key("mitto"), rate, now)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }
    Ok(())
}

/// `smscast mitto register-webhooks`: the report and inbound webhooks, each with the secret header.
async fn register_webhooks(args: smscast::config::RegisterWebhooksArgs) -> anyhow::Result<()> {
    use smscast::provider::mitto::{MittoClient, MittoConfig};
    let secrets = smscast::http::webhooks::WebhookSecrets::new(args.mitto_webhook_secret.clone()).map_err(anyhow::Error::msg)?;
    let secret = secrets.current().ok_or_else(|| anyhow::anyhow!("--mitto-webhook-secret is required"))?;
    let (Some(base_url), Some(api_key), Some(account)) =
        (&args.provider.mitto_base_url, &args.provider.mitto_api_key, &args.provider.mitto_traffic_account_id)
    else {
        anyhow::bail!("set --mitto-base-url, --mitto-api-key and --mitto-traffic-account-id");
    };
    let client = MittoClient::new(MittoConfig {
        base_url: base_url.clone(),
        api_key: api_key.clone(),
        traffic_account_id: account.clone(),
        bulk_size: args.provider.mitto_bulk_size,
        timeout: std::time::Duration::from_millis(args.provider.mitto_timeout_ms),
    })
    .map_err(|e| anyhow::anyhow!("Mitto settings: {e}"))?;
    let public = args.public_url.trim_end_matches('/');
    let header = [(smscast::provider::WEBHOOK_SECRET_HEADER, secret)];
    for (path, description, trigger) in [
        ("/webhooks/mitto/dlr", "smscast delivery reports", smscast::provider::mitto::REPORT_TRIGGER),
        ("/webhooks/mitto/inbound", "smscast inbound messages", smscast::provider::mitto::INBOUND_TRIGGER),
    ] {
        let url = format!("{public}{path}");
        let answer = client
            .register_webhook(&url, description, &[trigger], &header)
            .await
            .map_err(|e| anyhow::anyhow!("registering {url} failed: {e}"))?;
        println!("Registered {url} for {trigger}: {answer}");
    }
    Ok(())
}
