//! The Messaging API's JSON shapes, as the simulator reads and writes them.

use super::id::MessageId;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

// Incoming shapes. Fields are optional so a missing field becomes a
// per-message rejection, as a provider would report it, instead of a 400 for
// the whole batch; Cow borrows from the body unless the JSON has escapes.
#[derive(Deserialize)]
pub(super) struct BulkIn<'a> {
    #[serde(borrow)]
    pub(super) messages: Vec<MessageIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct MessageIn<'a> {
    #[serde(rename = "trafficAccountId", borrow, default)]
    pub(super) traffic_account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) destination: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) sms: Option<SmsIn<'a>>,
    #[serde(borrow, default)]
    pub(super) reference: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct SmsIn<'a> {
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) sender: Option<Cow<'a, str>>,
}

impl MessageIn<'_> {
    pub(super) fn traffic_account_id(&self) -> &str {
        self.traffic_account_id.as_deref().unwrap_or("")
    }
    pub(super) fn reference(&self) -> Option<&str> {
        self.reference.as_deref().filter(|r| !r.is_empty())
    }
    pub(super) fn text(&self) -> &str {
        self.sms.as_ref().and_then(|s| s.text.as_deref()).unwrap_or("")
    }
    pub(super) fn sender(&self) -> &str {
        self.sms.as_ref().and_then(|s| s.sender.as_deref()).unwrap_or("")
    }
}

#[derive(Serialize)]
pub(super) struct BulkOut<'a> {
    #[serde(rename = "bulkId", skip_serializing_if = "Option::is_none")]
    pub(super) bulk_id: Option<MessageId>,
    pub(super) messages: Vec<ResultOut<'a>>,
}

#[derive(Serialize)]
pub(super) struct ResultOut<'a> {
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub(super) message_id: Option<MessageId>,
    #[serde(rename = "trafficAccountId")]
    pub(super) traffic_account_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<ErrorOut<'a>>,
}

#[derive(Serialize, Clone, Copy)]
pub(super) struct ErrorOut<'a> {
    pub(super) code: &'a str,
    pub(super) message: &'a str,
}

#[derive(Serialize)]
pub(super) struct SingleOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<ErrorOut<'a>>,
    pub(super) messages: Vec<ResultOut<'a>>,
}

#[derive(Serialize)]
pub(super) struct ErrorEnvelope<'a> {
    pub(super) error: ErrorOut<'a>,
}

#[derive(Serialize)]
pub(super) struct StatusOut<'a> {
    #[serde(rename = "messageId")]
    pub(super) message_id: MessageId,
    pub(super) text: &'a str,
    pub(super) sender: &'a str,
    pub(super) destination: &'a str,
    #[serde(rename = "trafficAccountId")]
    pub(super) traffic_account_id: &'a str,
    #[serde(rename = "deliveryStatus")]
    pub(super) delivery_status: &'a str,
    #[serde(rename = "messageParts")]
    pub(super) message_parts: u32,
    pub(super) reference: Option<&'a str>,
    #[serde(rename = "createdAt")]
    pub(super) created_at: String,
    #[serde(rename = "updatedAt")]
    pub(super) updated_at: String,
}

/// `+`, then 8-15 digits, the first 1-9.
pub(super) fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}
