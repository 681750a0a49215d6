//! A Mitto-compatible HTTP server for tests, demos and benchmarks: same
//! endpoints and JSON shapes as the Messaging API, with knobs for latency,
//! per-message rejections, whole-call faults and delivery reports (with the webhook's secret header).
//!
//! `wire` holds the JSON shapes, `server` the routes and handlers, `dlr` the
//! delivery-report sender, `id` the message-id codec and `stats` the counters;
//! this module the knobs and the state behind them.

mod dlr;
mod id;
mod server;
mod stats;
#[cfg(test)]
mod tests;
mod wire;

pub use stats::Stats;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use dlr::{DlrJob, DlrPlan, run_dlr};
use id::MessageId;
use wire::{MessageIn, is_e164};

#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorConfig {
    /// Processing time per call. Applied after the messages are accepted, so
    /// a client that gives up first has had them accepted anyway (the
    /// ambiguous case a real provider produces).
    #[arg(long, env = "SMSCAST_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Per message: probability of a permanent rejection (code "Rejected").
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Per call: probability of HTTP 500 with nothing accepted.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Per call: probability of HTTP 429 (Retry-After: 1) with nothing accepted.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Per call: probability of hanging for timeout_hang_ms, accepting
    /// nothing, then answering 504.
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Per call: probability of accepting and recording every message,
    /// then hanging for timeout_hang_ms before answering (past the client's
    /// timeout, as a real provider can): the client cannot know it was sent.
    #[arg(long, default_value_t = 0.0)]
    pub accept_then_timeout_rate: f64,
    #[arg(long, default_value_t = 30_000)]
    pub timeout_hang_ms: u64,
    /// Where to POST one delivery report per accepted message.
    #[arg(long)]
    pub dlr_url: Option<String>,
    /// Time from acceptance to the final status (DLR post and status poll).
    #[arg(long, default_value_t = 0)]
    pub dlr_delay_ms: u64,
    /// Per delivery report, up to this much more delay (uniform), so reports overtake one another.
    #[arg(long, default_value_t = 0)]
    pub dlr_jitter_ms: u64,
    /// Per delivery report: probability it is posted twice, as providers that retry do.
    #[arg(long, default_value_t = 0.0)]
    pub dlr_duplicate_rate: f64,
    /// Per delivery report: probability an intermediate "Sent" report, stamped at acceptance, is
    /// posted after the final one (out of order).
    #[arg(long, default_value_t = 0.0)]
    pub dlr_out_of_order_rate: f64,
    /// Sent in the X-Webhook-Secret header of each DLR post, as Mitto sends the custom header
    /// registered with its webhook (it signs nothing).
    #[arg(long, env = "SMSCAST_SIM_DLR_SECRET")]
    pub dlr_secret: Option<String>,
    /// Per accepted message: probability its final status is "Undelivered".
    #[arg(long, default_value_t = 0.0)]
    pub undelivered_rate: f64,
    /// Every bulk answer leaves out its last result, though every message was accepted: the
    /// answer no longer lines up with the request (its results map by position).
    #[arg(long)]
    pub short_answers: bool,
    /// When set, requests with any other X-Mitto-API-Key get 401.
    #[arg(long, env = "SMSCAST_SIM_API_KEY")]
    pub api_key: Option<String>,
    /// Makes the random draws (and thus fault patterns) reproducible.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_rate: 0.0,
            error_rate: 0.0,
            throttle_rate: 0.0,
            timeout_rate: 0.0,
            accept_then_timeout_rate: 0.0,
            timeout_hang_ms: 30_000,
            dlr_url: None,
            dlr_delay_ms: 0,
            dlr_jitter_ms: 0,
            dlr_duplicate_rate: 0.0,
            dlr_out_of_order_rate: 0.0,
            dlr_secret: None,
            undelivered_rate: 0.0,
            short_answers: false,
            api_key: None,
            seed: None,
        }
    }
}

pub struct Simulator {
    // An Arc so a request works on one consistent snapshot and set_config
    // never waits for requests.
    cfg: Mutex<Arc<SimulatorConfig>>,
    rng: Mutex<StdRng>,
    shared: Arc<Shared>,
    /// Random per instance so ids differ between simulator runs.
    id_node: u16,
    id_counter: AtomicU64,
    /// Started on first use, from inside the runtime.
    dlr_tx: OnceLock<mpsc::UnboundedSender<DlrJob>>,
}

/// What the DLR task shares with request handlers. Kept apart from
/// `Simulator` so the task does not keep the simulator (and thus its own
/// channel) alive: dropping the simulator ends the task.
struct Shared {
    state: Mutex<SimState>,
    /// Reports accepted for posting and not yet posted (or given up on).
    reports_pending: AtomicU64,
}

#[derive(Default)]
struct SimState {
    records: HashMap<u128, Record>,
    references: HashSet<Arc<str>>,
    /// References accepted more than once (each repeat listed), for the soak's report.
    duplicated: Vec<Arc<str>>,
    stats: Stats,
    /// Registered with `POST /api/v1/Webhooks`, by trigger.
    webhooks: HashMap<String, DlrTarget>,
}

/// Where delivery reports go, and the headers that go with them.
#[derive(Debug, Clone)]
pub(crate) struct DlrTarget {
    url: Arc<str>,
    headers: Arc<[(String, String)]>,
}

use crate::provider::mitto::REPORT_TRIGGER;

#[derive(Clone)]
struct Record {
    text: Arc<str>,
    sender: Arc<str>,
    destination: Arc<str>,
    traffic_account_id: Arc<str>,
    reference: Option<Arc<str>>,
    created_ms: u64,
    /// When the final status becomes visible (and the DLR goes out).
    final_ms: u64,
    parts: u32,
    undelivered: bool,
}

impl Record {
    fn delivery_status(&self, now_ms: u64) -> &'static str {
        match (now_ms >= self.final_ms, self.undelivered) {
            (false, _) => "Sent",
            (true, false) => "Delivered",
            (true, true) => "Undelivered",
        }
    }
}

/// A whole-call fault, drawn once per call.
enum Fault {
    ServerError,
    Throttled,
    Hang,
}

enum Verdict {
    Accepted(u128),
    Rejected { code: &'static str, message: &'static str },
}

impl Simulator {
    pub fn new(cfg: SimulatorConfig) -> Arc<Self> {
        let mut rng = match cfg.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let id_node = rng.random();
        Arc::new(Self {
            cfg: Mutex::new(Arc::new(cfg)),
            rng: Mutex::new(rng),
            shared: Arc::new(Shared { state: Mutex::new(SimState::default()), reports_pending: AtomicU64::new(0) }),
            id_node,
            id_counter: AtomicU64::new(0),
            dlr_tx: OnceLock::new(),
        })
    }

    /// What the simulator accepted under a provider message id: (destination, text). What
    /// `GET /api/v1.1/Messages/{id}` shows, for checks in the same process.
    pub fn accepted(&self, message_id: &str) -> Option<(String, String)> {
        let id = MessageId::parse(message_id)?;
        lock(&self.shared.state).records.get(&id).map(|r| (r.destination.to_string(), r.text.to_string()))
    }

    /// Changes the knobs at runtime (tests flip faults on and off). Applies
    /// to calls that start afterwards; the rng is reseeded only if the seed
    /// changed.
    pub fn set_config(&self, cfg: SimulatorConfig) {
        let mut current = lock(&self.cfg);
        if let Some(seed) = cfg.seed.filter(|s| current.seed != Some(*s)) {
            *lock(&self.rng) = StdRng::seed_from_u64(seed);
        }
        *current = Arc::new(cfg);
    }

    fn config(&self) -> Arc<SimulatorConfig> {
        Arc::clone(&lock(&self.cfg))
    }

    /// Err carries the 401 message.
    fn authorize(&self, cfg: &SimulatorConfig, headers: &HeaderMap) -> Result<(), &'static str> {
        let given = headers.get("x-mitto-api-key").and_then(|v| v.to_str().ok()).unwrap_or("");
        if given.is_empty() {
            return Err("missing X-Mitto-API-Key");
        }
        match &cfg.api_key {
            Some(expected) if expected != given => Err("invalid API key"),
            _ => Ok(()),
        }
    }

    /// Validates, draws and records one call's messages. Synchronous so no
    /// lock can be held across an await.
    /// `Ok((verdicts, late))`: with `late` the answer waits `timeout_hang_ms` after acceptance.
    fn submit(&self, cfg: &Arc<SimulatorConfig>, messages: &[MessageIn<'_>]) -> Result<(Vec<Verdict>, bool), Fault> {
        // Validation first, so the rng lock covers only the draws.
        let checks: Vec<Option<(&'static str, &'static str)>> = messages
            .iter()
            .map(|m| {
                if !is_e164(m.destination.as_deref().unwrap_or("")) {
                    Some(("InvalidDestination", "destination must be E.164: + and 8-15 digits"))
                } else if m.text().is_empty() {
                    Some(("EmptyText", "sms.text is empty"))
                } else {
                    None
                }
            })
            .collect();

        // Per message Ok(undelivered?) if accepted, Err if rejected; or the
        // whole call's fault.
        let mut late = false;
        let draws: Vec<Result<bool, ()>> = {
            let mut rng = lock(&self.rng);
            let u: f64 = rng.random();
            // One draw split into bands keeps each rate exact when they sum
            // to at most 1.
            if u < cfg.error_rate {
                return Err(Fault::ServerError);
            } else if u < cfg.error_rate + cfg.throttle_rate {
                return Err(Fault::Throttled);
            } else if u < cfg.error_rate + cfg.throttle_rate + cfg.timeout_rate {
                return Err(Fault::Hang);
            } else if u < cfg.error_rate + cfg.throttle_rate + cfg.timeout_rate + cfg.accept_then_timeout_rate {
                late = true;
            }
            checks
                .iter()
                .map(|c| match c {
                    Some(_) => Err(()),
                    None if rng.random::<f64>() < cfg.fail_rate => Err(()),
                    None => Ok(rng.random::<f64>() < cfg.undelivered_rate),
                })
                .collect()
        };

        let now = now_ms();
        let final_ms = now.saturating_add(cfg.dlr_delay_ms);
        let mut verdicts = Vec::with_capacity(messages.len());
        let mut new_records = Vec::new();
        // Senders and traffic accounts repeat across a batch: share one
        // allocation for runs of equal values.
        let mut last_sender: Option<Arc<str>> = None;
        let mut last_account: Option<Arc<str>> = None;
        for ((m, check), draw) in messages.iter().zip(&checks).zip(&draws) {
            let undelivered = match (*check, draw) {
                (Some((code, message)), _) => {
                    verdicts.push(Verdict::Rejected { code, message });
                    continue;
                }
                (None, Err(())) => {
                    verdicts.push(Verdict::Rejected { code: "Rejected", message: "message rejected by the provider" });
                    continue;
                }
                (None, Ok(undelivered)) => *undelivered,
            };
            let id = self.next_id(now);
            verdicts.push(Verdict::Accepted(id));
            let text = m.text();
            new_records.push((
                id,
                Record {
                    text: Arc::from(text),
                    sender: reuse(&mut last_sender, m.sender()),
                    destination: Arc::from(m.destination.as_deref().unwrap_or("")),
                    traffic_account_id: reuse(&mut last_account, m.traffic_account_id()),
                    reference: m.reference().map(Arc::from),
                    created_ms: now,
                    final_ms,
                    parts: message_parts(text),
                    undelivered,
                },
            ));
        }

        let rejected = (verdicts.len() - new_records.len()) as u64;
        let dlr_ids: Vec<u128> = new_records.iter().map(|(id, _)| *id).collect();
        let target = {
            let mut state = lock(&self.shared.state);
            let state = &mut *state;
            state.records.reserve(new_records.len());
            state.stats.rejected += rejected;
            state.stats.accepted += new_records.len() as u64;
            for (id, record) in new_records {
                if let Some(r) = &record.reference {
                    if state.references.insert(Arc::clone(r)) {
                        state.stats.unique_references += 1;
                    } else {
                        state.stats.duplicate_references += 1;
                        state.duplicated.push(Arc::clone(r));
                    }
                }
                state.records.insert(id, record);
            }
            // The --dlr-url knob, else the webhook registered for reports.
            match &cfg.dlr_url {
                Some(url) => Some(DlrTarget {
                    url: Arc::from(url.as_str()),
                    headers: cfg.dlr_secret.iter().map(|s| (crate::provider::WEBHOOK_SECRET_HEADER.to_string(), s.clone())).collect(),
                }),
                None => state.webhooks.get(REPORT_TRIGGER).cloned(),
            }
        };

        if let Some(target) = target.filter(|_| !dlr_ids.is_empty()) {
            let plans = self.dlr_plans(cfg, dlr_ids.len());
            let job = DlrJob { ids: dlr_ids, plans, due: tokio::time::Instant::now() + Duration::from_millis(cfg.dlr_delay_ms), target };
            let n = job.ids.len() as u64;
            self.shared.reports_pending.fetch_add(n, Ordering::Relaxed);
            // Fails only if the DLR task is gone (runtime shutting down).
            if self.dlr_sender().send(job).is_err() {
                self.shared.reports_pending.fetch_sub(n, Ordering::Relaxed);
            }
        }
        Ok((verdicts, late))
    }

    /// How each report of a call is to be posted. Draws nothing when the report faults are off,
    /// so seeded runs without them keep their patterns.
    fn dlr_plans(&self, cfg: &SimulatorConfig, n: usize) -> Vec<DlrPlan> {
        if cfg.dlr_jitter_ms == 0 && cfg.dlr_duplicate_rate <= 0.0 && cfg.dlr_out_of_order_rate <= 0.0 {
            return Vec::new();
        }
        let mut rng = lock(&self.rng);
        (0..n)
            .map(|_| DlrPlan {
                jitter_ms: if cfg.dlr_jitter_ms > 0 { rng.random_range(0..=cfg.dlr_jitter_ms) } else { 0 },
                duplicate: rng.random::<f64>() < cfg.dlr_duplicate_rate,
                stale_after: rng.random::<f64>() < cfg.dlr_out_of_order_rate,
            })
            .collect()
    }

    /// Every reference accepted so far, with whether its final status is "Undelivered"; and the
    /// references accepted more than once (a duplicate send), each repeat listed.
    pub fn accepted_references(&self) -> (Vec<(String, bool)>, Vec<String>) {
        let state = lock(&self.shared.state);
        let accepted = state.records.values().filter_map(|r| Some((r.reference.as_deref()?.to_string(), r.undelivered))).collect();
        (accepted, state.duplicated.iter().map(|r| r.to_string()).collect())
    }

    /// Delivery reports still to be posted (due later, or being posted with their retries): 0
    /// once every accepted message's reports are out, so a caller can wait for quiet.
    pub fn reports_pending(&self) -> u64 {
        self.shared.reports_pending.load(Ordering::Relaxed)
    }

    /// ULID-like: 48 bits of milliseconds, then 16 bits of instance id and a
    /// 64-bit counter, which together cannot collide within one simulator.
    fn next_id(&self, ms: u64) -> u128 {
        let counter = self.id_counter.fetch_add(1, Ordering::Relaxed);
        (u128::from(ms & 0xFFFF_FFFF_FFFF) << 80) | (u128::from(self.id_node) << 64) | u128::from(counter)
    }

    fn dlr_sender(&self) -> &mpsc::UnboundedSender<DlrJob> {
        self.dlr_tx.get_or_init(|| {
            // Unbounded: acceptance must never wait on the DLR receiver;
            // jobs are one per call, not per message.
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run_dlr(Arc::clone(&self.shared), rx));
            tx
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the simulator down with it; the state
    // is counters and records, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn reuse(last: &mut Option<Arc<str>>, value: &str) -> Arc<str> {
    match last {
        Some(a) if &**a == value => Arc::clone(a),
        _ => {
            let a: Arc<str> = Arc::from(value);
            *last = Some(Arc::clone(&a));
            a
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// SMS parts as a carrier bills them: the crate's one segment counter
/// (`domain::sms`), and at least one, as Mitto reports an empty text.
fn message_parts(text: &str) -> u32 {
    crate::domain::sms::analyze(text).segments.max(1)
}
