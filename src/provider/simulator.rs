//! A Mitto-compatible HTTP server for tests, demos and benchmarks: same
//! endpoints and JSON shapes as the Messaging API, with knobs for latency,
//! per-message rejections, whole-call faults and delivery reports (with the webhook's secret header).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::{Semaphore, mpsc};

use super::{DeliveryReport, WEBHOOK_SECRET_HEADER};

/// Delivery reports in flight at once, so a slow receiver is not flooded.
const DLR_CONCURRENCY: usize = 16;
const DLR_ATTEMPTS: u32 = 3;
const DLR_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous, so benchmarks can try batches far above Mitto's usual 1,000.
const MAX_BODY_BYTES: usize = 64 << 20;

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
    #[arg(long, default_value_t = 30_000)]
    pub timeout_hang_ms: u64,
    /// Where to POST one delivery report per accepted message.
    #[arg(long)]
    pub dlr_url: Option<String>,
    /// Time from acceptance to the final status (DLR post and status poll).
    #[arg(long, default_value_t = 0)]
    pub dlr_delay_ms: u64,
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
            timeout_hang_ms: 30_000,
            dlr_url: None,
            dlr_delay_ms: 0,
            dlr_secret: None,
            undelivered_rate: 0.0,
            short_answers: false,
            api_key: None,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub accepted: u64,
    /// Accepted messages whose reference had not been seen before.
    pub unique_references: u64,
    /// Accepted messages whose reference had: a duplicate send.
    pub duplicate_references: u64,
    /// Per-message rejections (whole-call faults are not counted).
    pub rejected: u64,
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
}

#[derive(Default)]
struct SimState {
    records: HashMap<u128, Record>,
    references: HashSet<Arc<str>>,
    stats: Stats,
}

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

struct DlrJob {
    ids: Vec<u128>,
    due: tokio::time::Instant,
    cfg: Arc<SimulatorConfig>,
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

// Incoming shapes. Fields are optional so a missing field becomes a
// per-message rejection, as a provider would report it, instead of a 400 for
// the whole batch; Cow borrows from the body unless the JSON has escapes.
#[derive(Deserialize)]
struct BulkIn<'a> {
    #[serde(borrow)]
    messages: Vec<MessageIn<'a>>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(rename = "trafficAccountId", borrow, default)]
    traffic_account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    destination: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sms: Option<SmsIn<'a>>,
    #[serde(borrow, default)]
    reference: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct SmsIn<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sender: Option<Cow<'a, str>>,
}

impl MessageIn<'_> {
    fn traffic_account_id(&self) -> &str {
        self.traffic_account_id.as_deref().unwrap_or("")
    }
    fn reference(&self) -> Option<&str> {
        self.reference.as_deref().filter(|r| !r.is_empty())
    }
    fn text(&self) -> &str {
        self.sms.as_ref().and_then(|s| s.text.as_deref()).unwrap_or("")
    }
    fn sender(&self) -> &str {
        self.sms.as_ref().and_then(|s| s.sender.as_deref()).unwrap_or("")
    }
}

#[derive(Serialize)]
struct BulkOut<'a> {
    #[serde(rename = "bulkId", skip_serializing_if = "Option::is_none")]
    bulk_id: Option<MessageId>,
    messages: Vec<ResultOut<'a>>,
}

#[derive(Serialize)]
struct ResultOut<'a> {
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    message_id: Option<MessageId>,
    #[serde(rename = "trafficAccountId")]
    traffic_account_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOut<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct ErrorOut<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct SingleOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOut<'a>>,
    messages: Vec<ResultOut<'a>>,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorOut<'a>,
}

#[derive(Serialize)]
struct StatusOut<'a> {
    #[serde(rename = "messageId")]
    message_id: MessageId,
    text: &'a str,
    sender: &'a str,
    destination: &'a str,
    #[serde(rename = "trafficAccountId")]
    traffic_account_id: &'a str,
    #[serde(rename = "deliveryStatus")]
    delivery_status: &'a str,
    #[serde(rename = "messageParts")]
    message_parts: u32,
    reference: Option<&'a str>,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
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
            shared: Arc::new(Shared { state: Mutex::new(SimState::default()) }),
            id_node,
            id_counter: AtomicU64::new(0),
            dlr_tx: OnceLock::new(),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/v1.1/Messages/sendmessagesbulk", post(send_bulk))
            .route("/api/v1.1/Messages/send", post(send_one))
            .route("/api/v1.1/Messages/{message_id}", get(message_status))
            .route("/stats", get(stats))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(self))
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.state).stats
    }

    /// What the simulator accepted under a provider message id: (destination, text). What
    /// `GET /api/v1.1/Messages/{id}` shows, for checks in the same process.
    pub fn accepted(&self, message_id: &str) -> Option<(String, String)> {
        let id = MessageId::parse(message_id)?;
        lock(&self.shared.state).records.get(&id).map(|r| (r.destination.to_string(), r.text.to_string()))
    }

    /// Binds nothing itself: serves on a listener the caller bound (tests
    /// bind 127.0.0.1:0 first).
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
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
    fn submit(&self, cfg: &Arc<SimulatorConfig>, messages: &[MessageIn<'_>]) -> Result<Vec<Verdict>, Fault> {
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
        let dlr_ids: Option<Vec<u128>> =
            cfg.dlr_url.as_ref().filter(|_| !new_records.is_empty()).map(|_| new_records.iter().map(|(id, _)| *id).collect());
        {
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
                    }
                }
                state.records.insert(id, record);
            }
        }

        if let Some(ids) = dlr_ids {
            let job = DlrJob { ids, due: tokio::time::Instant::now() + Duration::from_millis(cfg.dlr_delay_ms), cfg: Arc::clone(cfg) };
            // Fails only if the DLR task is gone (runtime shutting down).
            let _ = self.dlr_sender().send(job);
        }
        Ok(verdicts)
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

async fn send_bulk(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = sim.config();
    if let Err(why) = sim.authorize(&cfg, &headers) {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let reply = match serde_json::from_slice::<BulkIn<'_>>(&body) {
        Err(e) => Err(bad_request(&e)),
        Ok(req) => match sim.submit(&cfg, &req.messages) {
            Err(fault) => Ok(Err(fault)),
            Ok(verdicts) => {
                let mut out = BulkOut { bulk_id: Some(MessageId(sim.next_id(now_ms()))), messages: results(&req.messages, &verdicts) };
                if cfg.short_answers {
                    out.messages.pop();
                }
                Ok(Ok(json_body(StatusCode::OK, &out)))
            }
        },
    };
    finish(&cfg, reply).await
}

/// Single send: a rejection is a 400 with the error, as for one message the
/// per-message error is the call's error.
async fn send_one(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = sim.config();
    if let Err(why) = sim.authorize(&cfg, &headers) {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let reply = match serde_json::from_slice::<MessageIn<'_>>(&body) {
        Err(e) => Err(bad_request(&e)),
        Ok(msg) => {
            let msgs = [msg];
            match sim.submit(&cfg, &msgs) {
                Err(fault) => Ok(Err(fault)),
                Ok(verdicts) => {
                    let results = results(&msgs, &verdicts);
                    let status = match &verdicts[..] {
                        [Verdict::Accepted(_)] => StatusCode::OK,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    let body = SingleOut { error: results.first().and_then(|r| r.error), messages: results };
                    Ok(Ok(json_body(status, &body)))
                }
            }
        }
    };
    finish(&cfg, reply).await
}

fn results<'a>(messages: &'a [MessageIn<'a>], verdicts: &'a [Verdict]) -> Vec<ResultOut<'a>> {
    messages
        .iter()
        .zip(verdicts)
        .map(|(m, v)| ResultOut {
            message_id: match v {
                Verdict::Accepted(id) => Some(MessageId(*id)),
                Verdict::Rejected { .. } => None,
            },
            traffic_account_id: m.traffic_account_id(),
            reference: m.reference(),
            error: match v {
                Verdict::Accepted(_) => None,
                Verdict::Rejected { code, message } => Some(ErrorOut { code, message }),
            },
        })
        .collect()
}

/// Applies the simulated timing: faults and latency happen after the
/// (synchronous) processing, so no lock or borrowed request data is held
/// while sleeping.
async fn finish(cfg: &SimulatorConfig, reply: Result<Result<Response, Fault>, Response>) -> Response {
    let resp = match reply {
        Err(bad) => return bad,
        Ok(Ok(resp)) => resp,
        Ok(Err(Fault::Hang)) => {
            tokio::time::sleep(Duration::from_millis(cfg.timeout_hang_ms)).await;
            return error_response(StatusCode::GATEWAY_TIMEOUT, "Timeout", "simulated upstream timeout; nothing was accepted");
        }
        Ok(Err(Fault::ServerError)) => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "simulated server error; nothing was accepted")
        }
        Ok(Err(Fault::Throttled)) => {
            let mut resp = error_response(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "simulated throttling; nothing was accepted");
            resp.headers_mut().insert(RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            resp
        }
    };
    if cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
    }
    resp
}

async fn message_status(State(sim): State<Arc<Simulator>>, headers: HeaderMap, Path(message_id): Path<String>) -> Response {
    let cfg = sim.config();
    if let Err(why) = sim.authorize(&cfg, &headers) {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let found = MessageId::parse(&message_id).and_then(|id| Some((id, lock(&sim.shared.state).records.get(&id)?.clone())));
    let Some((id, r)) = found else {
        return error_response(StatusCode::NOT_FOUND, "NotFound", "message not found");
    };
    let now = now_ms();
    let status = r.delivery_status(now);
    let updated = if status == "Sent" { r.created_ms } else { r.final_ms };
    json_body(
        StatusCode::OK,
        &StatusOut {
            message_id: MessageId(id),
            text: &r.text,
            sender: &r.sender,
            destination: &r.destination,
            traffic_account_id: &r.traffic_account_id,
            delivery_status: status,
            message_parts: r.parts,
            reference: r.reference.as_deref(),
            created_at: rfc3339_ms(r.created_ms),
            updated_at: rfc3339_ms(updated),
        },
    )
}

async fn stats(State(sim): State<Arc<Simulator>>) -> Response {
    json_body(StatusCode::OK, &sim.stats())
}

fn json_body<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string()),
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorEnvelope { error: ErrorOut { code, message } };
    // Serialising two strings cannot fail; an empty body beats a panic.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_request(e: &serde_json::Error) -> Response {
    error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &format!("invalid JSON body: {e}"))
}

/// `+`, then 8-15 digits, the first 1-9.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

async fn run_dlr(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<DlrJob>) {
    super::install_crypto_provider();
    let http = match reqwest::Client::builder().timeout(DLR_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "simulator cannot build its DLR client; no DLRs will be sent");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(DLR_CONCURRENCY));
    // Jobs arrive in acceptance order with a shared delay, so waiting for
    // the head job's due time never delays an earlier-due one (except right
    // after dlr_delay_ms was lowered, which is harmless for a simulator).
    while let Some(job) = rx.recv().await {
        tokio::time::sleep_until(job.due).await;
        let Some(url) = job.cfg.dlr_url.as_deref() else {
            continue;
        };
        let url: Arc<str> = Arc::from(url);
        let now = now_ms();
        let timestamp = rfc3339_ms(now);
        let reports: Vec<DeliveryReport> = {
            let state = lock(&shared.state);
            job.ids
                .iter()
                .filter_map(|id| {
                    let r = state.records.get(id)?;
                    Some(DeliveryReport {
                        message_id: MessageId(*id).to_string(),
                        reference: r.reference.as_deref().map(str::to_owned),
                        delivery_status: r.delivery_status(now.max(r.final_ms)).to_owned(),
                        destination: r.destination.to_string(),
                        traffic_account_id: r.traffic_account_id.to_string(),
                        timestamp: timestamp.clone(),
                        message_parts: r.parts,
                    })
                })
                .collect()
        };
        for report in reports {
            let Ok(body) = serde_json::to_vec(&report) else {
                continue;
            };
            let secret = job.cfg.dlr_secret.clone();
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (http, url) = (http.clone(), Arc::clone(&url));
            tokio::spawn(async move {
                post_dlr(&http, &url, Bytes::from(body), secret.as_deref()).await;
                drop(permit);
            });
        }
    }
}

async fn post_dlr(http: &reqwest::Client, url: &str, body: Bytes, secret: Option<&str>) {
    for attempt in 1..=DLR_ATTEMPTS {
        let mut req = http.post(url).header(CONTENT_TYPE, "application/json").body(body.clone());
        if let Some(secret) = secret {
            req = req.header(WEBHOOK_SECRET_HEADER, secret);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => tracing::debug!(attempt, status = %resp.status(), "DLR post refused"),
            Err(e) => tracing::debug!(attempt, error = %e, "DLR post failed"),
        }
        if attempt < DLR_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
    }
    tracing::debug!("DLR dropped after {DLR_ATTEMPTS} attempts");
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// UTC, millisecond precision, e.g. `2025-03-01T12:00:00.000Z`.
fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (H. Hinnant), valid for any date after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, ms % 1000)
}

/// A 128-bit id rendered as 26 Crockford base32 characters, like a ULID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct MessageId(u128);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl MessageId {
    fn encode(self) -> [u8; 26] {
        let mut out = [0u8; 26];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *c = CROCKFORD[((self.0 >> shift) & 31) as usize];
        }
        out
    }

    /// None for anything that is not one of our ids (including ids that
    /// would overflow 128 bits).
    fn parse(s: &str) -> Option<u128> {
        let bytes = s.as_bytes();
        if bytes.len() != 26 || !matches!(bytes[0], b'0'..=b'7') {
            return None;
        }
        bytes.iter().try_fold(0u128, |acc, &b| {
            let v = CROCKFORD.iter().position(|&c| c == b.to_ascii_uppercase())?;
            Some((acc << 5) | v as u128)
        })
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buf = self.encode();
        // The alphabet is ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| std::fmt::Error)?)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let buf = self.encode();
        match std::str::from_utf8(&buf) {
            Ok(text) => s.serialize_str(text),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

/// GSM 03.38 cost of a character in septets: 1 for the basic table, 2 for
/// the extension table (escape + char), None if it forces UCS-2.
fn gsm_septets(c: char) -> Option<usize> {
    match c {
        ' '..='?' | '@' | 'A'..='Z' | '_' | 'a'..='z' | '\n' | '\r' => Some(1),
        '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' | '\u{0C}' => Some(2),
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ'
        | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => {
            Some(1)
        }
        _ => None,
    }
}

/// SMS parts as a carrier would bill them: GSM-7 160/153 septets, else
/// UCS-2 70/67 UTF-16 units; a multi-unit character never straddles parts.
fn message_parts(text: &str) -> u32 {
    // Two passes over the text instead of a per-message buffer: this runs
    // for every accepted message.
    let gsm = text.chars().all(|c| gsm_septets(c).is_some());
    let cost = |c: char| {
        if gsm { gsm_septets(c).unwrap_or(1) } else { c.len_utf16() }
    };
    let (single, multi) = if gsm { (160, 153) } else { (70, 67) };
    if text.chars().map(cost).sum::<usize>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1u32, 0usize);
    for u in text.chars().map(cost) {
        if used + u > multi {
            parts += 1;
            used = 0;
        }
        used += u;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::mitto::{MittoClient, MittoConfig};
    use crate::provider::{OutboundSms, SmsProvider, SubmitOutcome};

    async fn start(cfg: SimulatorConfig) -> (Arc<Simulator>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sim = Simulator::new(cfg);
        tokio::spawn(Arc::clone(&sim).serve(listener));
        (sim, url)
    }

    fn client(base_url: &str) -> MittoClient {
        MittoClient::new(MittoConfig {
            base_url: base_url.to_owned(),
            api_key: "key".into(),
            traffic_account_id: "ta-1".into(),
            bulk_size: 1000,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn sms(reference: &str) -> OutboundSms {
        OutboundSms {
            reference: reference.into(),
            destination: "+306912345678".into(),
            sender: "Shop".into(),
            text: format!("text {reference}"),
        }
    }

    fn raw_http() -> reqwest::Client {
        crate::provider::install_crypto_provider();
        reqwest::Client::new()
    }

    type Received = (HeaderMap, Bytes);

    /// A DLR receiver on a port-0 listener that forwards every POST body.
    async fn dlr_receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel::<Received>();
        let app = Router::new().route(
            "/dlr",
            post(move |headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body));
                    StatusCode::ACCEPTED
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/dlr", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("DLR within 5 s").expect("receiver open")
    }

    fn accepted_id(out: &SubmitOutcome) -> &str {
        match out {
            SubmitOutcome::Accepted { provider_id } => provider_id,
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn dlrs_carry_the_webhook_secret_header() {
        let (dlr_url, mut rx) = dlr_receiver().await;
        let (_sim, url) =
            start(SimulatorConfig { dlr_url: Some(dlr_url), dlr_secret: Some("s3cret".into()), dlr_delay_ms: 50, ..Default::default() })
                .await;
        let c = client(&url);
        let out = c.send_batch(&[sms("m1"), sms("m2")]).await.unwrap();
        let mut expected: Vec<(String, String)> =
            vec![(accepted_id(&out[0]).to_owned(), "m1".to_owned()), (accepted_id(&out[1]).to_owned(), "m2".to_owned())];
        let mut got = Vec::new();
        for _ in 0..2 {
            let (headers, body) = next(&mut rx).await;
            assert_eq!(headers.get(WEBHOOK_SECRET_HEADER).and_then(|v| v.to_str().ok()), Some("s3cret"));
            let report: DeliveryReport = serde_json::from_slice(&body).unwrap();
            assert_eq!(report.delivery_status, "Delivered");
            assert_eq!(report.destination, "+306912345678");
            assert_eq!(report.traffic_account_id, "ta-1");
            assert_eq!(report.message_parts, 1);
            assert!(report.timestamp.ends_with('Z') && report.timestamp.len() == 24);
            got.push((report.message_id, report.reference.unwrap_or_default()));
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn undelivered_shows_in_dlr_and_status() {
        let (dlr_url, mut rx) = dlr_receiver().await;
        let (_sim, url) =
            start(SimulatorConfig { dlr_url: Some(dlr_url), undelivered_rate: 1.0, dlr_delay_ms: 300, ..Default::default() }).await;
        let c = client(&url);
        let out = c.send_batch(&[sms("u1")]).await.unwrap();
        let id = accepted_id(&out[0]);
        // Before the DLR delay has passed the message is only "Sent".
        let before = c.message_status(id).await.unwrap();
        assert_eq!(before["deliveryStatus"], "Sent");
        assert_eq!(before["text"], "text u1");

        let (headers, body) = next(&mut rx).await;
        assert!(headers.get(WEBHOOK_SECRET_HEADER).is_none());
        let report: DeliveryReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.delivery_status, "Undelivered");
        assert_eq!(report.message_id, id);
        let after = c.message_status(id).await.unwrap();
        assert_eq!(after["deliveryStatus"], "Undelivered");
    }

    #[tokio::test]
    async fn bad_requests() {
        let (sim, url) = start(SimulatorConfig::default()).await;
        let http = raw_http();
        let bulk = format!("{url}/api/v1.1/Messages/sendmessagesbulk");

        let no_key = http.post(&bulk).body("{}").send().await.unwrap();
        assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
        let v: serde_json::Value = no_key.json().await.unwrap();
        assert_eq!(v["error"]["code"], "Unauthorized");

        for body in ["{not json", r#"{"messages": 3}"#, ""] {
            let resp = http.post(&bulk).header("X-Mitto-API-Key", "k").body(body).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        }

        // Missing fields are per-message rejections, not a 400.
        let resp = http
            .post(&bulk)
            .header("X-Mitto-API-Key", "k")
            .body(r#"{"messages":[{"destination":"+0123456789","sms":{"text":"x"}},{"destination":"+306912345678"},{}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["messages"][0]["error"]["code"], "InvalidDestination");
        assert_eq!(v["messages"][1]["error"]["code"], "EmptyText");
        assert_eq!(v["messages"][2]["error"]["code"], "InvalidDestination");
        assert!(v["messages"][0].get("messageId").is_none());
        assert_eq!(sim.stats().rejected, 3);

        let status = http.get(format!("{url}/api/v1.1/Messages/not-an-id")).header("X-Mitto-API-Key", "k").send().await.unwrap();
        assert_eq!(status.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn single_send_and_stats_endpoint() {
        let (_sim, url) = start(SimulatorConfig::default()).await;
        let http = raw_http();
        let send = format!("{url}/api/v1.1/Messages/send");
        let ok: serde_json::Value = http
            .post(&send)
            .header("X-Mitto-API-Key", "k")
            .json(&serde_json::json!({
                "trafficAccountId": "ta", "destination": "+306912345678",
                "sms": {"text": "Γειά σου", "sender": "Shop"}, "reference": "one"
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = ok["messages"][0]["messageId"].as_str().unwrap();
        assert_eq!(id.len(), 26);
        assert_eq!(ok["messages"][0]["reference"], "one");
        assert_eq!(ok["messages"][0]["trafficAccountId"], "ta");

        let bad = http
            .post(&send)
            .header("X-Mitto-API-Key", "k")
            .json(&serde_json::json!({"destination": "+306912345678", "sms": {"text": ""}}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let bad: serde_json::Value = bad.json().await.unwrap();
        assert_eq!(bad["error"]["code"], "EmptyText");

        // Escaped JSON strings cannot be borrowed; they must still work.
        let status: serde_json::Value = http
            .get(format!("{url}/api/v1.1/Messages/{}", id.to_lowercase()))
            .header("X-Mitto-API-Key", "k")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["text"], "Γειά σου");
        assert_eq!(status["deliveryStatus"], "Delivered");

        let stats: Stats = http.get(format!("{url}/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats, Stats { accepted: 1, unique_references: 1, duplicate_references: 0, rejected: 1 });
    }

    #[tokio::test]
    async fn escaped_json_is_accepted() {
        let (_sim, url) = start(SimulatorConfig::default()).await;
        let resp: serde_json::Value = raw_http()
            .post(format!("{url}/api/v1.1/Messages/sendmessagesbulk"))
            .header("X-Mitto-API-Key", "k")
            .body(r#"{"messages":[{"destination":"+306912345678","sms":{"text":"line\nnext \u0393"},"reference":"r\"1"}]}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(resp["messages"][0]["reference"], "r\"1");
        assert_eq!(resp["bulkId"].as_str().map(str::len), Some(26));
    }

    #[tokio::test]
    async fn full_size_batch() {
        let (sim, url) = start(SimulatorConfig { seed: Some(7), fail_rate: 0.1, ..Default::default() }).await;
        let c = client(&url);
        let batch: Vec<OutboundSms> = (0..1000).map(|i| sms(&format!("ref-{i}"))).collect();
        let out = c.send_batch(&batch).await.unwrap();
        assert_eq!(out.len(), 1000);
        let accepted = out.iter().filter(|o| matches!(o, SubmitOutcome::Accepted { .. })).count() as u64;
        let s = sim.stats();
        assert_eq!(s.accepted, accepted);
        assert_eq!(s.accepted + s.rejected, 1000);
        // 10% fail rate: far from both 0 and all.
        assert!((800..=980).contains(&accepted), "{accepted}");
        let ids: HashSet<&str> = out
            .iter()
            .filter_map(|o| match o {
                SubmitOutcome::Accepted { provider_id } => Some(provider_id.as_str()),
                SubmitOutcome::Rejected { .. } => None,
            })
            .collect();
        assert_eq!(ids.len() as u64, accepted);
    }

    #[test]
    fn seeded_draws_are_reproducible() {
        let verdicts = |seed| {
            let sim = Simulator::new(SimulatorConfig { seed: Some(seed), fail_rate: 0.5, ..Default::default() });
            let cfg = sim.config();
            let msgs: Vec<MessageIn<'_>> = (0..64)
                .map(|_| MessageIn {
                    traffic_account_id: None,
                    destination: Some("+306912345678".into()),
                    sms: Some(SmsIn { text: Some("x".into()), sender: None }),
                    reference: None,
                })
                .collect();
            let Ok(v) = sim.submit(&cfg, &msgs) else {
                panic!("no faults configured");
            };
            v.iter().map(|v| matches!(v, Verdict::Accepted(_))).collect::<Vec<_>>()
        };
        assert_eq!(verdicts(1), verdicts(1));
        assert_ne!(verdicts(1), verdicts(2));
    }

    #[test]
    fn cli_defaults_match_default() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sim: SimulatorConfig,
        }
        let cli = Cli::try_parse_from(["sim"]).unwrap();
        let d = SimulatorConfig::default();
        assert_eq!(cli.sim.timeout_hang_ms, d.timeout_hang_ms);
        assert_eq!(cli.sim.fail_rate, d.fail_rate);
        assert_eq!(cli.sim.seed, d.seed);
        let cli = Cli::try_parse_from(["sim", "--error-rate", "0.5", "--dlr-url", "http://x", "--seed", "3"]).unwrap();
        assert_eq!(cli.sim.error_rate, 0.5);
        assert_eq!(cli.sim.dlr_url.as_deref(), Some("http://x"));
        assert_eq!(cli.sim.seed, Some(3));
    }

    #[test]
    fn message_ids_round_trip() {
        let sim = Simulator::new(SimulatorConfig::default());
        let id = sim.next_id(now_ms());
        let text = MessageId(id).to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(MessageId::parse(&text), Some(id));
        assert_eq!(MessageId::parse(&text.to_lowercase()), Some(id));
        assert_eq!(MessageId(u128::MAX).to_string(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(MessageId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), Some(u128::MAX));
        assert_eq!(MessageId::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
        assert_eq!(MessageId::parse("0000000000000000000000000U"), None);
        assert_eq!(MessageId::parse("short"), None);
        assert_ne!(sim.next_id(5), sim.next_id(5));
        // Time-ordered, like a ULID.
        assert!(MessageId(sim.next_id(1)).to_string() < MessageId(sim.next_id(2)).to_string());
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(4_102_444_800_123), "2100-01-01T00:00:00.123Z");
    }

    #[test]
    fn e164() {
        assert!(is_e164("+30691234"));
        assert!(is_e164("+123456789012345"));
        assert!(!is_e164("+3069123"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+0306912345"));
        assert!(!is_e164("306912345678"));
        assert!(!is_e164("+30 691234567"));
        assert!(!is_e164("+３０６９１２３４５６"));
        assert!(!is_e164(""));
    }

    #[test]
    fn parts() {
        assert_eq!(message_parts("hello"), 1);
        assert_eq!(message_parts(&"a".repeat(160)), 1);
        assert_eq!(message_parts(&"a".repeat(161)), 2);
        assert_eq!(message_parts(&"a".repeat(306)), 2);
        assert_eq!(message_parts(&"a".repeat(307)), 3);
        // Extension characters cost two septets.
        assert_eq!(message_parts(&"€".repeat(80)), 1);
        assert_eq!(message_parts(&"€".repeat(81)), 2);
        // An escape pair never straddles two parts: 152 + 2 does not fit.
        assert_eq!(message_parts(&format!("{}€{}", "a".repeat(152), "a".repeat(10))), 2);
        assert_eq!(message_parts(&format!("{}€{}", "a".repeat(152), "a".repeat(152))), 3);
        // Greek lower case forces UCS-2.
        assert_eq!(message_parts(&"α".repeat(70)), 1);
        assert_eq!(message_parts(&"α".repeat(71)), 2);
        assert_eq!(message_parts(&"α".repeat(134)), 2);
        assert_eq!(message_parts(&"α".repeat(135)), 3);
        // Curly apostrophe is not GSM.
        assert_eq!(message_parts(&format!("It’s {}", "a".repeat(70))), 2);
        // Some upper-case Greek letters are in the GSM table.
        assert_eq!(message_parts(&"Δ".repeat(160)), 1);
    }
}
