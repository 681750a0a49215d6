//! Command line and environment: one clap struct per command, every flag also an env var.
//! Secrets (API keys, passwords) are never logged: `Debug` is not derived for them.

use crate::engine::EngineConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "smscast", version, about = "SMS campaigns for many stores: contacts, credits, a durable send engine")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "SMSCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// HTTP API and the send engine in one process.
    Serve(ServeArgs),
    /// Apply the embedded database migrations and exit.
    Migrate(DbArgs),
    /// Operator commands for stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Create a platform operator (admin) API key; or list them, or revoke one.
    AdminKey(AdminKeyArgs),
    /// Import contacts from a CSV file into a store.
    ImportContacts(ImportArgs),
    /// Only the send engine (no HTTP): claims and sends messages, starts scheduled campaigns.
    Worker(WorkerArgs),
    /// A Mitto-compatible SMS provider for tests, demos and benchmarks (never sends real SMS).
    Simulator(SimulatorArgs),
    /// Mitto account set-up.
    #[command(subcommand)]
    Mitto(MittoCommand),
    /// Benchmarks that print numbers (see BENCHMARKS.md).
    Bench(BenchArgs),
    /// Fault-injection soak: a simulator with faults, `serve` and worker processes, stores
    /// working concurrently through the API and a nemesis killing workers and connections; then
    /// every invariant checked. Prints a table; exits non-zero on any violation.
    Soak(SoakArgs),
}

#[derive(Args, Clone)]
pub struct DbArgs {
    /// Database URL: `sqlite://path` (or a plain file path) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://smscast.db")]
    pub database_url: String,
    /// Maximum database connections in this process.
    #[arg(long, env = "SMSCAST_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
}

impl DbArgs {
    /// Accepts a plain path as a SQLite file for convenience.
    pub fn url(&self) -> String {
        let u = &self.database_url;
        if u.contains("://") || u.starts_with("sqlite:") { u.clone() } else { format!("sqlite://{u}") }
    }
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "SMSCAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seed a demo store (only if none exists) and print how to log in.
    #[arg(long, env = "SMSCAST_DEMO")]
    pub demo: bool,
    /// Largest accepted CSV import, in megabytes.
    #[arg(long, env = "SMSCAST_MAX_IMPORT_MB", default_value_t = 200)]
    pub max_import_mb: u64,
    /// How long a login session lasts, in hours.
    #[arg(long, env = "SMSCAST_SESSION_HOURS", default_value_t = 24 * 7)]
    pub session_hours: i64,
    /// Behind a reverse proxy: the header it puts the client's address in (e.g. X-Forwarded-For;
    /// the last address in it counts). Unset: the connection's peer address. Log-in limits per
    /// client use it.
    #[arg(long, env = "SMSCAST_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Secret Mitto sends in the X-Webhook-Secret header of its webhook calls (delivery reports);
    /// at least 16 characters. Give it twice (in the environment: comma-separated) to keep the old
    /// one valid while rotating; at most two. Without one the webhooks refuse every call; `--demo`
    /// makes one up for its simulator.
    #[arg(long = "mitto-webhook-secret", env = "SMSCAST_MITTO_WEBHOOK_SECRET", value_delimiter = ',', hide_env_values = true)]
    pub mitto_webhook_secret: Vec<String>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub engine: EngineConfig,
    #[command(flatten)]
    pub limits: crate::http::TenantLimits,
}

/// Who may scrape metrics besides an operator's admin key (no `Debug`: it holds secrets).
#[derive(Args, Clone)]
pub struct MetricsArgs {
    /// A token Prometheus may read `GET /metrics` with (`Authorization: Bearer …`), and nothing
    /// else; at least 16 characters, at most two (comma-separated in the environment) while
    /// rotating. An admin key works too (on `serve`).
    #[arg(long = "metrics-token", env = "SMSCAST_METRICS_TOKEN", value_delimiter = ',', hide_env_values = true)]
    pub metrics_token: Vec<String>,
}

#[derive(Args)]
pub struct AdminKeyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// List the operator keys (id, prefix, name, created, state) instead of creating one.
    #[arg(long, conflicts_with = "revoke")]
    pub list: bool,
    /// Revoke the operator key with this id (see --list) instead of creating one.
    #[arg(long, value_name = "ID")]
    pub revoke: Option<i64>,
    /// A name for the new key, to tell keys apart in --list.
    #[arg(long, default_value = "operator", conflicts_with_all = ["list", "revoke"])]
    pub name: String,
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Create a store with its first user and an API key.
    Create(StoreCreateArgs),
}

#[derive(Args)]
pub struct StoreCreateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub name: String,
    /// Email of the store's first user.
    #[arg(long)]
    pub email: String,
    /// Default country for parsing national phone numbers (ISO 3166 alpha-2).
    #[arg(long, default_value = "GR")]
    pub country: String,
    /// Language of the unsubscribe footer: el or en.
    #[arg(long, default_value = "el")]
    pub language: String,
}

#[derive(Subcommand)]
pub enum MittoCommand {
    /// Register the delivery-report and inbound-message webhooks (POST /api/v1/Webhooks), with the
    /// X-Webhook-Secret header Mitto is to send on every call.
    RegisterWebhooks(RegisterWebhooksArgs),
}

#[derive(Args)]
pub struct RegisterWebhooksArgs {
    /// The base URL Mitto reaches smscast at, e.g. https://sms.example.com.
    #[arg(long, env = "SMSCAST_PUBLIC_URL")]
    pub public_url: String,
    /// The secret Mitto is to send (the first one `serve` accepts).
    #[arg(
        long = "mitto-webhook-secret",
        env = "SMSCAST_MITTO_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true,
        required = true
    )]
    pub mitto_webhook_secret: Vec<String>,
    #[command(flatten)]
    pub provider: ProviderArgs,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// CSV file to import.
    pub file: PathBuf,
    /// The store to import into.
    #[arg(long)]
    pub store: i64,
}

#[derive(Args)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, env = "SMSCAST_SIM_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: String,
    #[command(flatten)]
    pub sim: crate::provider::simulator::SimulatorConfig,
}

#[derive(Args)]
pub struct SoakArgs {
    /// How long the load and the nemesis run (e.g. 60s, 2m), before the system settles and is checked.
    #[arg(long, default_value = "60s", value_parser = crate::soak::parse_duration)]
    pub duration: std::time::Duration,
    /// Default: a fresh SQLite file in a temporary directory. A `postgres://` URL names a database
    /// the soak DROPS and re-creates first (its name must contain "soak"), e.g.
    /// postgres://postgres@127.0.0.1/smscast_soak. Deliberately not read from DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// `smscast worker` processes (SQLite: exactly 1, see ARCHITECTURE.md "Soak").
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Makes the run's random choices (load, nemesis, provider faults) replayable; printed at start.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stores working at once.
    #[arg(long, default_value_t = 4)]
    pub stores: usize,
    /// Opted-in contacts per store: each campaign's recipients.
    #[arg(long, default_value_t = 100)]
    pub contacts: usize,
    /// The longest wait, after the load stops, for every campaign to finish and every report to
    /// arrive before the checks run.
    #[arg(long, default_value = "60s", value_parser = crate::soak::parse_duration)]
    pub settle: std::time::Duration,
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Generate a contacts CSV, then time importing it (the path the API and import-contacts use):
    /// prints rows/s and peak RSS.
    Import(BenchImportArgs),
    /// Seed a store with contacts, then time the exact campaign preview (a personalised message
    /// with the tracked unsubscribe link) over all of them: prints seconds and peak RSS.
    Preview(BenchPreviewArgs),
    /// Seed contacts, launch a personalised campaign through the API and time the send engine
    /// delivering it to a Mitto simulator (a separate process) over HTTP: launch time, messages/s,
    /// progress latency, peak RSS.
    Send(BenchSendArgs),
    /// Seed contacts, open many SSE connections to one campaign's live events (in a child
    /// process), send the campaign, and measure how long each event took to reach the clients:
    /// event latency p50/p99, dropped connections, server RSS.
    Sse(BenchSseArgs),
    /// Launch a campaign, record every message as accepted (not timed), then time posting one
    /// delivery report per message to POST /webhooks/mitto/dlr in batches: prints reports/s and
    /// request latency p50/p99.
    Dlr(BenchDlrArgs),
    /// Launch a campaign with a tracked link, then time tracked-link redirects through the HTTP
    /// server (each visit recorded and counted): redirect latency p50/p99 and clicks/s.
    Clicks(BenchClicksArgs),
    /// The SSE clients of `bench sse`, run as its child process (not for direct use).
    #[command(hide = true)]
    SseClients(BenchSseClientsArgs),
}

/// The database a benchmark runs on.
#[derive(Args)]
pub struct BenchDatabaseArgs {
    /// Default: a fresh SQLite file in a temporary directory. A `postgres://` URL names a database
    /// the bench DROPS and re-creates first (its name must contain "bench"), e.g.
    /// postgres://postgres@127.0.0.1/smscast_bench. A SQLite path must not exist yet.
    /// Deliberately not read from DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Maximum database connections of the bench's pool (and of each `smscast worker` process
    /// `bench send --worker-processes` starts).
    #[arg(long, default_value_t = 16)]
    pub db_connections: u32,
}

#[derive(Args)]
pub struct BenchDlrArgs {
    /// Messages (and so reports): opted-in contacts seeded, one campaign to all of them.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Reports per webhook call.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Webhook calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub db: BenchDatabaseArgs,
}

#[derive(Args)]
pub struct BenchSseArgs {
    /// Opted-in contacts to seed (not timed): the campaign's recipients.
    #[arg(long, default_value_t = 200_000)]
    pub contacts: u64,
    /// Concurrent SSE connections, spread evenly over the stores (each on its store's campaign).
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Stores, each with its share of the contacts and a campaign of its own, sent at once.
    #[arg(long, default_value_t = 10)]
    pub stores: usize,
    #[command(flatten)]
    pub db: BenchDatabaseArgs,
    /// Send loops of the engine (in the app's process).
    #[arg(long, default_value_t = EngineConfig::WORKERS)]
    pub workers: usize,
    /// Messages per Mitto bulk call.
    #[arg(long, default_value_t = 500)]
    pub bulk_size: usize,
    /// The simulator's processing time per call (with the bulk size and the send loops, it sets
    /// how long the send lasts).
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// How often the clients' process reads the campaign's counters from the database, to know
    /// when each change became visible.
    #[arg(long, default_value_t = 20)]
    pub sample_every_ms: u64,
    /// Base URL of the unsubscribe links.
    #[arg(long, default_value = "https://sms.example.gr")]
    pub public_url: String,
}

#[derive(Args)]
pub struct BenchSseClientsArgs {
    /// Base URL of the app.
    #[arg(long)]
    pub url: String,
    /// The campaigns to watch (client i watches the (i mod n)-th).
    #[arg(long, value_delimiter = ',', required = true)]
    pub campaigns: Vec<i64>,
    #[arg(long)]
    pub clients: usize,
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value_t = 20)]
    pub sample_every_ms: u64,
    /// The stores' API keys, comma-separated in the order of `--campaigns` (passed in the
    /// environment, not on the command line).
    #[arg(long, env = "SMSCAST_BENCH_SSE_KEY", hide_env_values = true)]
    pub key: String,
}

#[derive(Args)]
pub struct BenchSendArgs {
    /// Opted-in contacts to seed (not timed): the campaign's recipients.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: u64,
    #[command(flatten)]
    pub db: BenchDatabaseArgs,
    /// Send loops: in this process, or in each worker process (the engine's own default).
    #[arg(long, default_value_t = EngineConfig::WORKERS)]
    pub workers: usize,
    /// 0: the engine runs in this process. N: it runs in N `smscast worker` child processes instead.
    #[arg(long, default_value_t = 0)]
    pub worker_processes: usize,
    /// Messages per Mitto bulk call.
    #[arg(long, default_value_t = 1000)]
    pub bulk_size: usize,
    /// The simulator's processing time per call.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// How often the progress endpoint is sampled during the send.
    #[arg(long, default_value_t = 20)]
    pub progress_every_ms: u64,
    /// Base URL of the unsubscribe links (its length counts towards the segments).
    #[arg(long, default_value = "https://sms.example.gr")]
    pub public_url: String,
}

#[derive(Args)]
pub struct BenchClicksArgs {
    /// Opted-in contacts to seed and message (not timed): the links clicked are theirs.
    #[arg(long, default_value_t = 100_000)]
    pub contacts: u64,
    /// Timed redirects (after 500 untimed ones), each to a random recipient's link.
    #[arg(long, default_value_t = 20_000)]
    pub clicks: usize,
    /// Clients clicking at once (each waits for its answer before the next click).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    #[command(flatten)]
    pub db: BenchDatabaseArgs,
}

#[derive(Args)]
pub struct BenchPreviewArgs {
    /// Opted-in contacts to seed (not timed) and preview.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: u64,
    /// How many times to run the preview (the first run is the one reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    #[command(flatten)]
    pub db: BenchDatabaseArgs,
    /// Base URL of the unsubscribe links (its length counts towards the segments).
    #[arg(long, default_value = "https://sms.example.gr")]
    pub public_url: String,
}

#[derive(Args)]
pub struct BenchImportArgs {
    /// Rows in the generated CSV.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    #[command(flatten)]
    pub db: BenchDatabaseArgs,
    /// Also time, on one thread and without the database, reading the CSV and parsing its phones.
    #[arg(long)]
    pub breakdown: bool,
}

/// What sending needs to know, for `serve` and `worker` alike.
#[derive(Args, Clone)]
pub struct SendArgs {
    /// The base URL people and providers reach (links, unsubscribe pages, webhooks).
    /// Defaults to http://<listen>.
    #[arg(long, env = "SMSCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How credits are charged: one per segment (what providers bill) or one per message.
    #[arg(long, env = "SMSCAST_BILLING", value_enum, default_value_t = crate::domain::credits::Billing::PerSegment)]
    pub billing: crate::domain::credits::Billing,
    /// Hours before an unfinished campaign's credit hold expires and returns its remainder.
    #[arg(long, env = "SMSCAST_HOLD_TTL_HOURS", default_value_t = 24)]
    pub hold_ttl_hours: i64,
}

/// The Mitto Messaging API. With `--demo` and no base URL, an in-process simulator stands in.
#[derive(Args, Clone)]
pub struct ProviderArgs {
    /// e.g. https://messaging.mittoapi.com
    #[arg(long, env = "SMSCAST_MITTO_BASE_URL")]
    pub mitto_base_url: Option<String>,
    #[arg(long, env = "SMSCAST_MITTO_API_KEY", hide_env_values = true)]
    pub mitto_api_key: Option<String>,
    #[arg(long, env = "SMSCAST_MITTO_TRAFFIC_ACCOUNT_ID")]
    pub mitto_traffic_account_id: Option<String>,
    /// Messages per bulk call.
    #[arg(long, env = "SMSCAST_MITTO_BULK_SIZE", default_value_t = 1000)]
    pub mitto_bulk_size: usize,
    /// Per-call timeout; kept shorter than the claim lease.
    #[arg(long, env = "SMSCAST_MITTO_TIMEOUT_MS", default_value_t = 20_000)]
    pub mitto_timeout_ms: u64,
    /// Messages per second for the Mitto account, shared by every engine (stored in the database;
    /// also changeable at runtime with PUT /api/admin/rate-limits). Unset keeps what is stored.
    #[arg(long, env = "SMSCAST_MITTO_RATE_LIMIT")]
    pub mitto_rate_limit: Option<i64>,
}

#[derive(Args, Clone)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Serve this process's engine metrics at `GET /metrics` on this address (e.g. 0.0.0.0:9464);
    /// needs --metrics-token. Unset: the worker listens nowhere.
    #[arg(long, env = "SMSCAST_METRICS_LISTEN", requires = "metrics_token")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub engine: EngineConfig,
}
