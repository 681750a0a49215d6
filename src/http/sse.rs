//! Live updates over Server-Sent Events. Each node runs one poller per store with open streams: it
//! reads the watched campaigns' counters (primary key reads, about four times a second) and the
//! store's dashboard (once a second; queue figures from counters every five) only while someone
//! watches, and fans the snapshots out to every stream through `watch` channels — the same on
//! SQLite and on many PostgreSQL nodes, whichever process is doing the sending. Open streams are
//! capped per store and per node, and a stream ends when its key is revoked or its session ends.

use super::AppState;
use super::error::ApiResult;
use super::extract::{Auth, Id, session_cookie_in};
use crate::domain::{Error, Kind};
use crate::store::auth::{Actor, Principal};
use crate::store::campaigns::{self, CampaignRow};
use crate::store::queue::Progress;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(250);
/// Progress events go out at most this often; status changes go out at once.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The dashboard's wallet and campaign list are read every this many polls (a second), its queue
/// figures every `QUEUE_EVERY` polls, and the streams' credentials every `DASHBOARD_EVERY` polls.
const DASHBOARD_EVERY: u64 = 4;
const QUEUE_EVERY: u64 = 20;

/// What a stream was opened with, checked again every second: a revoked key or an expired (or
/// logged-out) session ends its streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Credential {
    Key(i64),
    Session(String),
}

/// The store dashboard's parts as last read; `None` until read.
#[derive(Debug, Clone, Default, PartialEq)]
struct Dashboard {
    wallet: Option<Value>,
    campaigns: Option<Value>,
    queue: Option<Value>,
    /// Sent today and this month, in the store's time zone.
    totals: Option<Value>,
}

/// One store's live streams on this node, fed by one poller.
struct Feed {
    /// Open streams (campaign and dashboard) of this store on this node.
    open: usize,
    campaigns: HashMap<i64, watch::Sender<Option<CampaignRow>>>,
    dashboard: watch::Sender<Dashboard>,
    /// Each credential's switch: set when it is no longer valid, which ends its streams.
    ended: HashMap<Credential, watch::Sender<bool>>,
}

/// The live streams of this node: one poller per store with open streams (whatever it watches:
/// its dashboard, any of its campaigns), so a store's load on the database does not grow with its
/// open tabs; and the caps on open streams per store and per node.
pub struct Hub {
    stores: Mutex<HashMap<i64, Feed>>,
    open: std::sync::atomic::AtomicUsize,
    /// True once the node shuts down: every live stream ends, so the server's graceful shutdown
    /// does not wait forever for streams that never end on their own.
    closing: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { stores: Default::default(), open: Default::default(), closing: watch::channel(false).0 }
    }
}

/// Held by an open stream; closing the stream gives its place back.
struct Permit {
    state: Arc<AppState>,
    store: i64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self.state.hub.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = map.get_mut(&self.store) {
            feed.open = feed.open.saturating_sub(1);
        }
        self.state.hub.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn too_many_streams(scope: &str, limit: usize) -> Error {
    let message = if scope == "store" {
        format!("This store already has {limit} live streams open here; close a dashboard or campaign tab and try again.")
    } else {
        format!("This server already has {limit} live streams open; try again in a moment or poll instead.")
    };
    Error::new(Kind::TooManyRequests, "too_many_streams", message).with_details(json!({"scope": scope, "limit": limit, "retry_after": 5}))
}

impl Hub {
    /// Live streams open on this node (the metrics' `smscast_sse_open_streams`).
    pub fn open_streams(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends every live stream on this node (and any opened later).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when the node shuts down.
    fn closed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Opens a stream for `store` within the caps, starting the store's poller if it has none.
    /// Returns the permit (keep it while the stream is open) and the switch that ends the stream.
    fn open(state: &Arc<AppState>, store: i64, cred: Credential) -> Result<(Permit, watch::Receiver<bool>), Error> {
        let limits = &state.settings.limits;
        let hub = &state.hub;
        let mut map = hub.stores.lock().unwrap_or_else(|e| e.into_inner());
        if hub.open.load(std::sync::atomic::Ordering::SeqCst) >= limits.max_streams_per_node {
            return Err(too_many_streams("node", limits.max_streams_per_node));
        }
        let feed = map.entry(store).or_insert_with(|| {
            tokio::spawn(poll_store(state.clone(), store));
            Feed { open: 0, campaigns: HashMap::new(), dashboard: watch::channel(Dashboard::default()).0, ended: HashMap::new() }
        });
        if feed.open >= limits.max_streams_per_store {
            return Err(too_many_streams("store", limits.max_streams_per_store));
        }
        feed.open += 1;
        hub.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ended = feed.ended.entry(cred).or_insert_with(|| watch::channel(false).0).subscribe();
        Ok((Permit { state: state.clone(), store }, ended))
    }

    fn watch_campaign(&self, store: i64, first: CampaignRow) -> watch::Receiver<Option<CampaignRow>> {
        let mut map = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let feed = map.get_mut(&store).expect("a permit keeps its store's feed");
        feed.campaigns.entry(first.id).or_insert_with(|| watch::channel(Some(first)).0).subscribe()
    }

    fn watch_dashboard(&self, store: i64) -> watch::Receiver<Dashboard> {
        let map = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&store).expect("a permit keeps its store's feed").dashboard.subscribe()
    }
}

/// The store's poller: watched campaigns' rows four times a second, the dashboard once a second
/// (queue figures every five) while anyone watches it, and the credentials of the open streams
/// once a second. Stops when the store's last stream closed.
async fn poll_store(state: Arc<AppState>, store: i64) {
    let sid = crate::store::StoreId(store);
    let mut dashboard_before = false;
    for tick in 0u64.. {
        if tick > 0 {
            tokio::time::sleep(POLL).await;
        }
        let (watched, dashboard, creds) = {
            let mut map = state.hub.stores.lock().unwrap_or_else(|e| e.into_inner());
            let Some(feed) = map.get_mut(&store) else { return };
            if feed.open == 0 {
                map.remove(&store);
                return;
            }
            feed.campaigns.retain(|_, tx| tx.receiver_count() > 0);
            feed.ended.retain(|_, tx| tx.receiver_count() > 0);
            let creds: Vec<Credential> = if tick % DASHBOARD_EVERY == 0 { feed.ended.keys().cloned().collect() } else { Vec::new() };
            (feed.campaigns.keys().copied().collect::<Vec<_>>(), feed.dashboard.receiver_count() > 0, creds)
        };
        for id in watched {
            match campaigns::get(&state.db, sid, id).await {
                Ok(row) => {
                    with_feed(&state, store, |f| {
                        if let Some(tx) = f.campaigns.get(&id) {
                            tx.send_if_modified(|cur| {
                                let changed = cur.as_ref().is_none_or(|c| c.updated_at != row.updated_at || counters(c) != counters(&row));
                                if changed {
                                    *cur = Some(row);
                                }
                                changed
                            });
                        }
                    });
                }
                Err(e) => tracing::warn!(campaign = id, error = %e, "sse poll"),
            }
        }
        // A dashboard that just opened gets everything at the next poll, not within five seconds.
        let fresh = dashboard && !dashboard_before;
        dashboard_before = dashboard;
        if dashboard && (fresh || tick % DASHBOARD_EVERY == 0) {
            let mut next = with_feed(&state, store, |f| f.dashboard.borrow().clone()).unwrap_or_default();
            if let Ok(w) = crate::store::ledger::wallet(&state.db, sid).await {
                let w = json!(w);
                // Every charge moves the wallet, so the totals are read again when it moved (and
                // now and then, for the store's midnight).
                if (fresh || tick % QUEUE_EVERY == 0 || next.wallet.as_ref() != Some(&w))
                    && let Ok(t) = send_totals(&state, sid).await
                {
                    next.totals = Some(t);
                }
                next.wallet = Some(w);
            }
            let recent = campaigns::CampaignFilter { status: None, limit: Some(50), cursor: None };
            if let Ok(c) = campaigns::list(&state.db, sid, recent).await {
                next.campaigns = Some(json!(c["items"].as_array().map(|items| {
                    items.iter().map(|i| json!({"id": i["id"], "name": i["name"], "status": i["status"]})).collect::<Vec<_>>()
                })));
            }
            if (fresh || tick % QUEUE_EVERY == 0)
                && let Ok(q) = crate::store::operations::queue(&state.db, Some(sid), state.clock.now_ms()).await
            {
                next.queue = Some(json!(q));
            }
            with_feed(&state, store, |f| f.dashboard.send_if_modified(|cur| std::mem::replace(cur, next) != *cur));
        }
        for cred in creds {
            let now = state.clock.now_ms();
            let valid = match &cred {
                Credential::Key(id) => crate::store::auth::key_active(&state.db, *id).await,
                Credential::Session(token) => crate::store::auth::authenticate_session(&state.db, token, now).await.map(|p| p.is_some()),
            };
            if let Ok(false) = valid {
                with_feed(&state, store, |f| f.ended.get(&cred).map(|tx| tx.send_replace(true)));
            }
        }
    }
}

/// The dashboard's "sent today" and "sent this month" (from the store's midnights), and all its
/// sent and delivered messages (its delivery rate).
async fn send_totals(state: &AppState, sid: crate::store::StoreId) -> Result<Value, crate::domain::Error> {
    let store = crate::store::stores::get(&state.db, sid).await?;
    let (day, month) = crate::http::web::tz::Zone::named(&store.timezone).day_and_month_start(state.clock.now_ms());
    let t = crate::store::web::send_totals(&state.db, sid, day, month).await?;
    Ok(json!({"sent_today": t.sent_today, "sent_month": t.sent_month, "sent_all": t.sent_all, "delivered_all": t.delivered_all}))
}

fn with_feed<T>(state: &AppState, store: i64, f: impl FnOnce(&mut Feed) -> T) -> Option<T> {
    let mut map = state.hub.stores.lock().unwrap_or_else(|e| e.into_inner());
    map.get_mut(&store).map(f)
}

/// The credential of a request `Auth` accepted: its API key, else its session cookie.
fn credential(p: &Principal, headers: &HeaderMap) -> Credential {
    match p.actor {
        Actor::ApiKey(id) => Credential::Key(id),
        _ => Credential::Session(session_cookie_in(headers).unwrap_or_default()),
    }
}

/// Resolves when the stream's credential is no longer valid (or its feed is gone), or the node
/// shuts down.
async fn until_ended(mut ended: watch::Receiver<bool>, closed: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = ended.wait_for(|e| *e) => {}
        _ = closed => {}
    }
}

fn counters(c: &CampaignRow) -> [i64; 8] {
    [c.pending, c.sending, c.sent, c.failed, c.cancelled, c.unknown, c.delivered, c.total]
}

fn event_id(c: &CampaignRow) -> String {
    let processed = c.sent + c.failed + c.cancelled + c.unknown;
    format!("{}-{}-{}", c.status, processed, c.updated_at)
}

fn is_final(status: &str) -> bool {
    matches!(status, "sent" | "failed" | "cancelled")
}

struct Watcher {
    rx: watch::Receiver<Option<CampaignRow>>,
    last_id: Option<String>,
    last_status: Option<String>,
    last_progress: Option<Instant>,
    pending_progress: bool,
    queue: std::collections::VecDeque<Event>,
    done: bool,
    state: Arc<AppState>,
    _permit: Permit,
}

impl Watcher {
    /// Turns the latest snapshot into the events this subscriber has not seen.
    fn absorb(&mut self) {
        let Some(c) = self.rx.borrow_and_update().clone() else { return };
        let id = event_id(&c);
        if self.last_id.as_deref() == Some(id.as_str()) {
            return;
        }
        let now = self.state.clock.now_ms();
        if self.last_status.as_deref() != Some(c.status.as_str()) {
            let data = json!({"status": c.status, "previous": self.last_status, "progress": json!(Progress::of(&c, now))});
            self.queue.push_back(Event::default().event("status").id(id.clone()).data(data.to_string()));
            self.last_status = Some(c.status.clone());
            self.last_progress = Some(Instant::now());
            self.pending_progress = false;
            if is_final(&c.status) {
                self.done = true;
            }
        } else if self.last_progress.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.queue.push_back(Event::default().event("progress").id(id.clone()).data(json!(Progress::of(&c, now)).to_string()));
            self.last_progress = Some(Instant::now());
            self.pending_progress = false;
        } else {
            // Changed too soon after the last progress event: send it when the second is up.
            self.pending_progress = true;
            return;
        }
        self.last_id = Some(id);
    }
}

/// `GET /api/campaigns/{id}/events`: `status` events at once, `progress` events at most once a
/// second while it changes; resumes after `Last-Event-ID`; ends after the final status.
#[utoipa::path(
    get,
    path = "/api/campaigns/{id}/events",
    tag = "events",
    operation_id = "campaign_events",
    summary = "A campaign's live status and progress",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The campaign's id."), ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event.")),
    responses(
        (status = 200, description = "A stream of `status` events (`{status, previous, progress}`) and `progress` events (the progress object); it ends after the final status. Send `Last-Event-ID` to resume.", body = String, content_type = "text/event-stream"),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 429, response = crate::http::api::openapi::TooManyRequests)
    )
)]
pub async fn campaign_events(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = campaigns::get(&state.db, p.store, id).await?;
    let last_event = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    // A resuming client already knows the status named in its last event id.
    let last_status = last_event.as_deref().and_then(|e| e.split('-').next()).map(str::to_string);
    let (permit, ended) = Hub::open(&state, p.store.0, credential(&p, &headers))?;
    let closed = state.hub.closed();
    let rx = state.hub.watch_campaign(p.store.0, first);
    let mut w = Watcher {
        _permit: permit,
        rx,
        last_id: last_event,
        last_status,
        last_progress: None,
        pending_progress: false,
        queue: Default::default(),
        done: false,
        state,
    };
    w.rx.mark_changed();
    let stream = futures_util::stream::unfold(w, |mut w| async move {
        loop {
            if let Some(e) = w.queue.pop_front() {
                return Some((Ok(e), w));
            }
            if w.done {
                return None;
            }
            if w.rx.has_changed().unwrap_or(false) || w.pending_progress {
                if w.pending_progress && !w.rx.has_changed().unwrap_or(false) {
                    let wait = w.last_progress.map_or(Duration::ZERO, |t| PROGRESS_EVERY.saturating_sub(t.elapsed()));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        r = w.rx.changed() => if r.is_err() { return None },
                    }
                    w.pending_progress = false;
                    w.rx.mark_changed();
                }
                w.absorb();
                continue;
            }
            // `changed()` marks the value seen, so absorb it right away.
            if w.rx.changed().await.is_err() {
                return None;
            }
            w.absorb();
        }
    });
    Ok(Sse::new(stream.take_until(until_ended(ended, closed))).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /api/events`: the store's dashboard — wallet, campaign statuses and queue — as they change,
/// from the store's poller on this node.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    operation_id = "store_events",
    summary = "The store's dashboard, live",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "A stream of `wallet`, `campaigns`, `queue` and `totals` (`sent_today`, `sent_month`, `sent_all`, `delivered_all`) events, each carrying the new value as JSON.", body = String, content_type = "text/event-stream"),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 429, response = crate::http::api::openapi::TooManyRequests)
    )
)]
pub async fn store_events(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (permit, ended) = Hub::open(&state, p.store.0, credential(&p, &headers))?;
    let closed = state.hub.closed();
    let mut rx = state.hub.watch_dashboard(p.store.0);
    rx.mark_changed();
    let seen = Dashboard::default();
    let stream = futures_util::stream::unfold(
        (rx, seen, std::collections::VecDeque::<Event>::new(), permit),
        |(mut rx, mut seen, mut queue, permit)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    return Some((Ok(e), (rx, seen, queue, permit)));
                }
                if rx.changed().await.is_err() {
                    return None;
                }
                let now = rx.borrow_and_update().clone();
                for (name, new, old) in [
                    ("wallet", &now.wallet, &mut seen.wallet),
                    ("campaigns", &now.campaigns, &mut seen.campaigns),
                    ("queue", &now.queue, &mut seen.queue),
                    ("totals", &now.totals, &mut seen.totals),
                ] {
                    if let Some(v) = new
                        && old.as_ref() != Some(v)
                    {
                        queue.push_back(Event::default().event(name).data(v.to_string()));
                        *old = Some(v.clone());
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream.take_until(until_ended(ended, closed))).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
