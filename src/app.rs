//! Wiring: connect the database, build the state, serve HTTP on a listener the caller bound.
//! Tests bind port 0 and call `start` directly; `main` does the same with the configured address.

use crate::clock::SharedClock;
use crate::engine::{Engine, EngineConfig};
use crate::http::{self, AppState, HttpSettings};
use crate::provider::SmsProvider;
use crate::store::Db;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct AppConfig {
    pub database_url: String,
    pub db_connections: u32,
    /// Base URL people and providers reach; `None` = the listen address.
    pub public_url: Option<String>,
    pub max_import_bytes: u64,
    pub session_ttl_ms: i64,
    pub billing: crate::domain::credits::Billing,
    /// How long a campaign's credit hold lives before it expires and releases its remainder.
    pub hold_ttl_ms: i64,
    pub clock: SharedClock,
    /// Behind a reverse proxy: the header naming the client's address (per-client log-in limits).
    pub client_ip_header: Option<String>,
    /// Secrets the provider's webhook calls carry in `X-Webhook-Secret` (at most two; none: the
    /// webhooks refuse everything).
    pub webhook_secrets: Vec<String>,
    /// Tokens a metrics scraper may use instead of an admin key (at most two, for rotation).
    pub metrics_tokens: Vec<String>,
    /// The SMS provider; `None` (or 0 engine workers) runs no engine in this process.
    pub provider: Option<Arc<dyn SmsProvider>>,
    pub engine: EngineConfig,
    pub limits: crate::http::TenantLimits,
}

pub struct RunningApp {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub engine: Option<Arc<Engine>>,
    engine_stop: Option<tokio::sync::watch::Sender<bool>>,
    engine_tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl RunningApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, ends live event streams, lets in-flight requests finish, stops the send
    /// loops after their current batch (each is finished and recorded, so nothing is left
    /// `sending` under a live lease to become `unknown` later), then closes the database.
    pub async fn stop(mut self) {
        self.state.hub.close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.stop_engine().await;
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        self.state.db.close().await;
    }

    /// Asks the server and the send loops to stop, without waiting (usable from `Drop`).
    pub fn signal_stop(&mut self) {
        self.state.hub.close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stop) = self.engine_stop.take() {
            let _ = stop.send(true);
        }
    }

    /// Stops the send loops after their current batch.
    pub async fn stop_engine(&mut self) {
        if let Some(stop) = self.engine_stop.take() {
            let _ = stop.send(true);
        }
        for t in self.engine_tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Serves until SIGTERM or Ctrl-C, then stops as `stop` does. A provider call ends within
    /// its timeout, which is shorter than the lease, so this returns within the lease.
    pub async fn run_until_signal(mut self) {
        let server_ended = match self.server.as_mut() {
            Some(server) => tokio::select! {
                _ = shutdown_signal() => false,
                _ = server => true,
            },
            None => true,
        };
        if server_ended {
            self.server = None;
        } else {
            tracing::info!("shutting down: finishing in-flight batches");
        }
        self.stop().await;
    }
}

/// SIGTERM (what service managers and container runtimes send) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process cleanly");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn start(cfg: AppConfig, listener: TcpListener) -> anyhow::Result<RunningApp> {
    let db = Db::connect(&cfg.database_url, cfg.db_connections).await?;
    start_with_db(cfg, db, listener).await
}

pub async fn start_with_db(cfg: AppConfig, db: Db, listener: TcpListener) -> anyhow::Result<RunningApp> {
    // Before the engine starts, so its first batches are counted.
    crate::telemetry::install();
    let addr = listener.local_addr()?;
    let public_url = cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_string();
    let settings = HttpSettings {
        secure_cookies: public_url.starts_with("https://"),
        send: crate::store::campaigns::SendSettings { public_url: public_url.clone(), billing: cfg.billing, hold_ttl_ms: cfg.hold_ttl_ms },
        public_url,
        max_import_bytes: cfg.max_import_bytes,
        session_ttl_ms: cfg.session_ttl_ms,
        client_ip_header: cfg.client_ip_header.clone().map(|h| h.to_ascii_lowercase()),
        webhook_secrets: http::webhooks::WebhookSecrets::new(cfg.webhook_secrets.clone()).map_err(anyhow::Error::msg)?,
        metrics_tokens: http::metrics::tokens(cfg.metrics_tokens.clone()).map_err(anyhow::Error::msg)?,
        limits: cfg.limits.clone(),
    };
    let engine = match cfg.provider {
        Some(provider) if cfg.engine.workers > 0 => {
            Some(Engine::new(db.clone(), provider, cfg.clock.clone(), cfg.engine, settings.send.clone()))
        }
        _ => None,
    };
    let (engine_stop, stop_rx) = tokio::sync::watch::channel(false);
    let engine_tasks = engine.as_ref().map(|e| e.spawn(stop_rx)).unwrap_or_default();
    let state = Arc::new(AppState {
        db,
        clock: cfg.clock.clone(),
        settings,
        hub: Default::default(),
        keys: Default::default(),
        login: Default::default(),
        code_key: Default::default(),
    });
    let router = http::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        if let Err(e) =
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await
        {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(RunningApp { addr, state, engine, engine_stop: Some(engine_stop), engine_tasks, shutdown: Some(tx), server: Some(server) })
}
