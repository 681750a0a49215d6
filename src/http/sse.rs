//! Live updates over Server-Sent Events. Each node polls a watched campaign's counters (a primary
//! key read, about four times a second, only while someone watches) and fans the snapshot out to
//! every subscriber through a `watch` channel — the same on SQLite and on many PostgreSQL nodes,
//! whichever process is doing the sending.

use super::AppState;
use super::error::ApiResult;
use super::extract::{Auth, Id};
use crate::store::campaigns::{self, CampaignRow};
use crate::store::operations::QueueStats;
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

/// One poller per watched campaign on this node.
pub struct Hub {
    campaigns: Mutex<HashMap<i64, watch::Receiver<Option<CampaignRow>>>>,
    /// True once the node shuts down: every live stream ends, so the server's graceful shutdown
    /// does not wait forever for streams that never end on their own.
    closing: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { campaigns: Default::default(), closing: watch::channel(false).0 }
    }
}

impl Hub {
    /// Ends every live stream on this node (and any opened later).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when the node shuts down.
    fn closed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let mut rx = self.closing.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|closing| *closing).await;
        })
    }

    fn subscribe(&self, state: &Arc<AppState>, store: crate::store::StoreId, first: CampaignRow) -> watch::Receiver<Option<CampaignRow>> {
        let mut map = self.campaigns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(&first.id) {
            return rx.clone();
        }
        let id = first.id;
        let (tx, rx) = watch::channel(Some(first));
        map.insert(id, rx.clone());
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                // Stop when the last subscriber left; the next one starts a new poller.
                if tx.receiver_count() <= 1 {
                    let mut map = state.hub.campaigns.lock().unwrap_or_else(|e| e.into_inner());
                    if tx.receiver_count() <= 1 {
                        map.remove(&id);
                        return;
                    }
                }
                match campaigns::get(&state.db, store, id).await {
                    Ok(row) => {
                        tx.send_if_modified(|cur| {
                            let changed = cur.as_ref().is_none_or(|c| c.updated_at != row.updated_at || counters(c) != counters(&row));
                            if changed {
                                *cur = Some(row);
                            }
                            changed
                        });
                    }
                    Err(e) => tracing::warn!(campaign = id, error = %e, "sse poll"),
                }
            }
        });
        rx
    }
}

fn counters(c: &CampaignRow) -> [i64; 9] {
    [c.pending, c.sending, c.sent, c.failed, c.cancelled, c.unknown, c.delivered, c.undelivered, c.total]
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
            let data = json!({"status": c.status, "previous": self.last_status, "progress": Progress::of(&c, now)});
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
    let rx = state.hub.subscribe(&state, p.store, first);
    let mut w = Watcher {
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
    let closed = w.state.hub.closed();
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
    })
    .take_until(closed);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /api/events`: the store's dashboard — wallet, campaign statuses and queue — as they change.
pub async fn store_events(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let store = p.store;
    let init: (Option<Value>, Option<Value>, Option<QueueStats>, u64) = (None, None, None, 0);
    let closed = state.hub.closed();
    let stream = futures_util::stream::unfold(
        (state, init, std::collections::VecDeque::<Event>::new()),
        move |(state, mut last, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    return Some((Ok(e), (state, last, queue)));
                }
                if last.3 > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                last.3 += 1;
                let now = state.clock.now_ms();
                if let Ok(w) = crate::store::ledger::wallet(&state.db, store).await {
                    let v = json!(w);
                    if last.0.as_ref() != Some(&v) {
                        queue.push_back(Event::default().event("wallet").data(v.to_string()));
                        last.0 = Some(v);
                    }
                }
                if let Ok(c) =
                    campaigns::list(&state.db, store, campaigns::CampaignFilter { status: None, limit: Some(50), cursor: None }).await
                {
                    let v = json!(c["items"].as_array().map(|items| {
                        items.iter().map(|i| json!({"id": i["id"], "name": i["name"], "status": i["status"]})).collect::<Vec<_>>()
                    }));
                    if last.1.as_ref() != Some(&v) {
                        queue.push_back(Event::default().event("campaigns").data(v.to_string()));
                        last.1 = Some(v);
                    }
                }
                // Queue counts scan the store's messages: every fifth second is enough for a dashboard.
                if last.3 % 5 == 1 {
                    if let Ok(q) = crate::store::operations::queue(&state.db, Some(store), now).await {
                        if last.2.as_ref() != Some(&q) {
                            queue.push_back(Event::default().event("queue").data(json!(q).to_string()));
                            last.2 = Some(q);
                        }
                    }
                }
            }
        },
    )
    .take_until(closed);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
