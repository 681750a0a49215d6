//! Command line and environment: one clap struct per command, every flag also an env var.
//! Secrets (API keys, passwords) are never logged: `Debug` is not derived for them.

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
    /// Create a platform operator (admin) API key.
    AdminKey(DbArgs),
    /// Import contacts from a CSV file into a store.
    ImportContacts(ImportArgs),
    /// A Mitto-compatible SMS provider for tests, demos and benchmarks (never sends real SMS).
    Simulator(SimulatorArgs),
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
    /// The base URL people and providers reach (links, unsubscribe pages, webhooks).
    /// Defaults to http://<listen>.
    #[arg(long, env = "SMSCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seed a demo store (only if none exists) and print how to log in.
    #[arg(long, env = "SMSCAST_DEMO")]
    pub demo: bool,
    /// Largest accepted CSV import, in megabytes.
    #[arg(long, env = "SMSCAST_MAX_IMPORT_MB", default_value_t = 200)]
    pub max_import_mb: u64,
    /// How long a login session lasts, in hours.
    #[arg(long, env = "SMSCAST_SESSION_HOURS", default_value_t = 24 * 7)]
    pub session_hours: i64,
    /// How credits are charged: one per segment (what providers bill) or one per message.
    #[arg(long, env = "SMSCAST_BILLING", value_enum, default_value_t = crate::domain::credits::Billing::PerSegment)]
    pub billing: crate::domain::credits::Billing,
    /// Hours before an unfinished campaign's credit hold expires and returns its remainder.
    #[arg(long, env = "SMSCAST_HOLD_TTL_HOURS", default_value_t = 24)]
    pub hold_ttl_hours: i64,
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
