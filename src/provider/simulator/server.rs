//! The routes and their handlers: authorization, the simulated faults and
//! latency, and the answers in Mitto's shapes.

use super::id::MessageId;
use super::wire::{BulkIn, BulkOut, ErrorEnvelope, ErrorOut, MessageIn, ResultOut, SingleOut, StatusOut};
use super::{DlrTarget, Fault, Simulator, SimulatorConfig, Verdict, lock, now_ms};
use crate::domain::time::rfc3339;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Generous, so benchmarks can try batches far above Mitto's usual 1,000.
const MAX_BODY_BYTES: usize = 64 << 20;

impl Simulator {
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/v1.1/Messages/sendmessagesbulk", post(send_bulk))
            .route("/api/v1.1/Messages/send", post(send_one))
            .route("/api/v1.1/Messages/{message_id}", get(message_status))
            .route("/api/v1/Webhooks", post(register_webhook))
            .route("/stats", get(stats))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(self))
    }

    /// Binds nothing itself: serves on a listener the caller bound (tests
    /// bind 127.0.0.1:0 first).
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
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
            Ok((verdicts, late)) => {
                let mut out = BulkOut { bulk_id: Some(MessageId(sim.next_id(now_ms()))), messages: results(&req.messages, &verdicts) };
                if cfg.short_answers {
                    out.messages.pop();
                }
                Ok(Ok((json_body(StatusCode::OK, &out), late)))
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
                Ok((verdicts, late)) => {
                    let results = results(&msgs, &verdicts);
                    let status = match &verdicts[..] {
                        [Verdict::Accepted(_)] => StatusCode::OK,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    let body = SingleOut { error: results.first().and_then(|r| r.error), messages: results };
                    Ok(Ok((json_body(status, &body), late)))
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
async fn finish(cfg: &SimulatorConfig, reply: Result<Result<(Response, bool), Fault>, Response>) -> Response {
    let resp = match reply {
        Err(bad) => return bad,
        Ok(Ok((resp, late))) => {
            if late {
                // Accepted and recorded already: the answer comes too late for the client.
                tokio::time::sleep(Duration::from_millis(cfg.timeout_hang_ms)).await;
            }
            resp
        }
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
            created_at: rfc3339(r.created_ms as i64),
            updated_at: rfc3339(updated as i64),
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

/// `POST /api/v1/Webhooks`: `{url, description, webhookTriggers, headers, linkTrafficAccountIds}`,
/// `headers` an object of header names and values. Reports then go to the URL registered for
/// `REPORT_TRIGGER`, with those headers (unless the --dlr-url knob is set).
async fn register_webhook(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = sim.config();
    if let Err(why) = sim.authorize(&cfg, &headers) {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "InvalidRequest", "invalid JSON body");
    };
    let url = v["url"].as_str().filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let triggers: Vec<String> =
        v["webhookTriggers"].as_array().map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let (Some(url), false) = (url, triggers.is_empty()) else {
        return error_response(StatusCode::BAD_REQUEST, "InvalidRequest", "url (http or https) and webhookTriggers are required");
    };
    let extra: Vec<(String, String)> = v["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    let target = DlrTarget { url: Arc::from(url), headers: Arc::from(extra) };
    let id = MessageId(sim.next_id(now_ms()));
    {
        let mut state = lock(&sim.shared.state);
        for t in &triggers {
            state.webhooks.insert(t.clone(), target.clone());
        }
    }
    json_body(StatusCode::OK, &serde_json::json!({"id": id.to_string(), "url": url, "webhookTriggers": triggers}))
}
