//! `POST /webhooks/mitto/inbound`: SMS replies. Mitto does not document the payload, so the
//! sender is read from `from`, `msisdn` or `sender` (a string, or an object with the number) and
//! the text from `text` or `message`. One message or an array of them. Anything malformed is a
//! 400 and nothing is stored.

use super::AppState;
use super::error::ApiResult;
use crate::domain::{Error, Kind};
use crate::store::optout::{self, Inbound};
use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest accepted body: a batch of replies, never a file.
pub const MAX_BODY: usize = 256 * 1024;

fn malformed(message: impl Into<String>) -> Error {
    Error::new(Kind::BadRequest, "invalid_inbound", message)
}

/// The number in a sender field: a string, or an object carrying it.
fn number(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(_) => None,
        Value::Object(o) => ["number", "phoneNumber", "phone", "msisdn", "address"].iter().find_map(|k| o.get(*k).and_then(Value::as_str)),
        _ => None,
    }
}

/// One inbound message from its JSON form.
pub fn parse_one(v: &Value) -> Result<Inbound, Error> {
    let o = v.as_object().ok_or_else(|| malformed("Each inbound message must be a JSON object."))?;
    let from = ["from", "msisdn", "sender"]
        .iter()
        .find_map(|k| o.get(*k))
        .ok_or_else(|| malformed("The inbound message names no sender (from, msisdn or sender)."))?;
    let raw = number(from).ok_or_else(|| malformed("The sender is neither a number nor an object with a number."))?;
    let phone = optout::inbound_phone(raw).map_err(|e| malformed(format!("The sender's number is not valid: {}", e.message)))?;
    let text = ["text", "message"]
        .iter()
        .find_map(|k| o.get(*k))
        .ok_or_else(|| malformed("The inbound message has no text (text or message)."))?;
    let text = match text {
        Value::String(s) => s.clone(),
        Value::Object(t) => {
            t.get("text").and_then(Value::as_str).ok_or_else(|| malformed("The message text is not a string."))?.to_string()
        }
        _ => return Err(malformed("The message text is not a string.")),
    };
    Ok(Inbound { phone, text, payload: v.to_string() })
}

#[utoipa::path(
    post,
    path = "/webhooks/mitto/inbound",
    tag = "webhooks",
    operation_id = "mitto_inbound",
    summary = "SMS replies from recipients (STOP, START, HELP, …)",
    security(("webhook_secret" = [])),
    request_body(content = Object, description = "One message or an array: the sender in `from`, `msisdn` or `sender`, the text in `text` or `message`.", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::InboundResult),
        (status = 400, response = crate::http::api::openapi::BadRequest),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 413, response = crate::http::api::openapi::PayloadTooLarge)
    )
)]
pub async fn receive(State(state): State<Arc<AppState>>, req: Request) -> ApiResult<Json<Value>> {
    // The secret is checked before the body is read: a stranger's upload is not even buffered.
    super::webhooks::authorize(&state, req.headers())?;
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| super::body_too_large(MAX_BODY))?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| malformed(format!("The body is not valid JSON: {e}")))?;
    let items: Vec<&Value> = match &doc {
        Value::Array(a) if a.is_empty() => return Err(malformed("The array of inbound messages is empty.").into()),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    // Every message is read before any is stored: a malformed one refuses the whole call.
    let msgs = items.into_iter().map(parse_one).collect::<Result<Vec<_>, _>>()?;
    let now = state.clock.now_ms();
    let mut results = Vec::with_capacity(msgs.len());
    for m in &msgs {
        results.push(optout::receive(&state.db, m, now).await?);
    }
    Ok(Json(json!({"ok": true, "received": results.len(), "results": results})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_shapes() {
        for v in [
            json!({"from": "+306912345678", "text": "STOP"}),
            json!({"msisdn": "306912345678", "message": "STOP"}),
            json!({"sender": {"number": "+306912345678"}, "text": "STOP"}),
            json!({"from": {"phoneNumber": "00306912345678"}, "message": {"text": "STOP"}}),
        ] {
            let m = parse_one(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!((m.phone.as_str(), m.text.as_str()), ("+306912345678", "STOP"), "{v}");
        }
        for v in [
            json!("STOP"),
            json!({"text": "STOP"}),
            json!({"from": "+306912345678"}),
            json!({"from": 306912345678u64, "text": "x"}),
            json!({"from": "hello", "text": "x"}),
            json!({"from": "+306912345678", "text": 5}),
        ] {
            assert!(parse_one(&v).is_err(), "{v}");
        }
    }

    proptest::proptest! {
        /// Any inbound message is read or refused with a 400; a number that is read is E.164.
        #[test]
        fn any_inbound_json_is_read_or_refused(
            v in crate::domain::fuzz::json_value(&["from", "msisdn", "sender", "number", "phoneNumber", "phone", "address", "text", "message"]),
        ) {
            match parse_one(&v) {
                Ok(m) => proptest::prop_assert!(m.phone.starts_with('+') && m.phone[1..].bytes().all(|b| b.is_ascii_digit()), "{}", m.phone),
                Err(e) => proptest::prop_assert_eq!((e.kind, e.code.as_ref()), (Kind::BadRequest, "invalid_inbound")),
            }
        }
    }
}
