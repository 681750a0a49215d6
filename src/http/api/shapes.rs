//! The shapes of the answers that handlers build as `serde_json::Value`, for the OpenAPI document
//! only: nothing constructs these types. tests/api/openapi.rs checks real answers against them
//! (an undocumented field fails), so they cannot silently drift from the JSON the store layer
//! builds. Timestamps are RFC 3339 strings in UTC.

use crate::store::ledger::Wallet;
use serde_json::Value;
use utoipa::ToSchema;

/// `{"ok": true}`.
#[derive(ToSchema)]
pub struct OkBody {
    pub ok: bool,
}

/// `GET /readyz` when the database answers.
#[derive(ToSchema)]
pub struct Ready {
    pub ok: bool,
    /// `ready`.
    pub database: String,
}

/// A new login session; the token itself is in the `smscast_session` cookie.
#[derive(ToSchema)]
pub struct LoginOk {
    pub ok: bool,
    pub expires_at: String,
}

/// A sender name request in the operator's queue.
#[derive(ToSchema)]
pub struct AdminSenderRequest {
    pub id: i64,
    pub sender_name: String,
    pub status: String,
    pub requested_at: String,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    pub store_id: i64,
    pub store_name: String,
    /// The store's sender name now.
    pub current_sender_name: String,
}

#[derive(ToSchema)]
pub struct SenderList {
    pub items: Vec<AdminSenderRequest>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A store API key, without its secret.
#[derive(ToSchema)]
pub struct KeyJson {
    pub id: i64,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub active: bool,
}

#[derive(ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyJson>,
}

/// A new store API key: the secret `key` is in this answer only.
#[derive(ToSchema)]
pub struct CreatedKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub active: bool,
    /// `sk_live_…`, shown once.
    pub key: String,
}

/// An operator key, without its secret.
#[derive(ToSchema)]
pub struct AdminKeyJson {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub active: bool,
}

#[derive(ToSchema)]
pub struct AdminKeyList {
    pub items: Vec<AdminKeyJson>,
}

/// The built-in keywords every store answers to.
#[derive(ToSchema)]
pub struct BuiltinKeywords {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    pub help: Vec<String>,
}

/// A store's own inbound keywords and the built-in ones.
#[derive(ToSchema)]
pub struct Keywords {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    pub builtin: BuiltinKeywords,
}

/// A store in the operator's list, with its claim weight.
#[derive(ToSchema)]
pub struct AdminStore {
    pub id: i64,
    pub name: String,
    pub default_country: String,
    pub timezone: String,
    pub language: String,
    pub sender_name: String,
    pub created_at: String,
    pub updated_at: String,
    pub weight: i64,
}

#[derive(ToSchema)]
pub struct StoreList {
    pub items: Vec<AdminStore>,
}

/// A new store: its first user's password and API key are in this answer only.
#[derive(ToSchema)]
pub struct CreatedStore {
    pub store: crate::store::stores::StoreJson,
    pub email: String,
    pub password: String,
    pub api_key: String,
}

#[derive(ToSchema)]
pub struct WeightJson {
    pub store_id: i64,
    pub weight: i64,
}

#[derive(ToSchema)]
pub struct RateLimitJson {
    /// `provider:{name}` or `store:{id}`.
    pub key: String,
    pub rate_per_sec: i64,
}

#[derive(ToSchema)]
pub struct RateLimitList {
    pub items: Vec<RateLimitJson>,
}

/// A top-up. A replay under the same `Idempotency-Key` answers the first answer, without `wallet`.
#[derive(ToSchema)]
pub struct TopUpResult {
    pub ok: bool,
    pub transfer_id: i64,
    pub store_id: i64,
    pub amount: i64,
    pub wallet: Option<Wallet>,
}

/// One ledger entry of the store.
#[derive(ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    /// `top_up`, `hold`, `charge`, `release`, `expiry`, `adjustment`, …
    pub kind: String,
    pub amount: i64,
    /// What the entry did to the credits the store can still spend (signed).
    pub available_effect: i64,
    pub campaign_id: Option<i64>,
    pub messages: Option<i64>,
    pub reason: Option<String>,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntry>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct BulkTagsResult {
    pub updated: i64,
    /// The ids that name no contact of this store.
    pub not_found: Vec<i64>,
}

/// One consent change of a contact.
#[derive(ToSchema)]
pub struct ConsentEvent {
    pub from: Option<String>,
    pub to: String,
    /// `api`, `import`, `web`, `inbound`, `unsubscribe_link`, …
    pub source: String,
    pub actor: String,
    pub campaign_id: Option<i64>,
    pub at: String,
}

#[derive(ToSchema)]
pub struct ConsentHistory {
    pub items: Vec<ConsentEvent>,
}

/// A campaign.
#[derive(ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub message: String,
    pub audience: crate::domain::campaign::Audience,
    pub priority: crate::domain::campaign::Priority,
    pub schedule_at: Option<String>,
    pub sender: Option<String>,
    pub discount_code: Option<String>,
    pub greek_gsm: bool,
    /// `draft`, `scheduled`, `sending`, `paused`, `sent`, `failed` or `cancelled`.
    pub status: String,
    pub total: i64,
    pub unsubscribed: i64,
    pub clicks: i64,
    pub unique_clicks: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct CampaignList {
    pub items: Vec<Campaign>,
    pub next_cursor: Option<String>,
}

/// Why a campaign (or a retry) cannot be sent now.
#[derive(ToSchema)]
pub struct BlockingReason {
    pub code: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct EncodingCounts {
    /// Recipients whose message fits GSM-7.
    pub gsm7: i64,
    /// Recipients whose message needs UCS-2.
    pub ucs2: i64,
}

/// A recipient's message as it will be sent.
#[derive(ToSchema)]
pub struct PreviewSample {
    pub contact_id: i64,
    pub phone: String,
    pub text: String,
    pub encoding: String,
    pub characters: i64,
    pub segments: i64,
}

/// What switching Greek letters to capitals without accents (GSM-7) saves.
#[derive(ToSchema)]
pub struct GreekGsmSaving {
    pub enabled: bool,
    pub segments_with: i64,
    pub segments_without: i64,
    pub saving_segments: i64,
}

/// The exact preview of a send: recipients, segments, cost and what blocks it.
#[derive(ToSchema)]
pub struct Preview {
    pub campaign_id: i64,
    pub status: String,
    pub recipients: i64,
    /// Contacts left out, by reason.
    pub excluded: crate::store::campaigns::Excluded,
    pub encoding: EncodingCounts,
    pub segments: i64,
    pub estimated_cost: i64,
    pub billing: crate::domain::credits::Billing,
    pub available_credits: i64,
    pub balance_after: i64,
    pub can_send: bool,
    pub blocking_reasons: Vec<BlockingReason>,
    pub samples: Vec<PreviewSample>,
    /// Null when the message has no Greek letters.
    pub greek_gsm: Option<GreekGsmSaving>,
}

/// One status change of a campaign.
#[derive(ToSchema)]
pub struct StatusChange {
    pub from: Option<String>,
    pub to: String,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

#[derive(ToSchema)]
pub struct History {
    pub items: Vec<StatusChange>,
}

/// A started send. A replay under the same `Idempotency-Key` answers the same.
#[derive(ToSchema)]
pub struct SendResult {
    pub ok: bool,
    pub campaign_id: i64,
    /// `sending`.
    pub status: String,
    pub messages: i64,
    pub segments: i64,
    pub held_credits: i64,
    pub hold_id: i64,
}

/// One message of a campaign.
#[derive(ToSchema)]
pub struct MessageJson {
    pub id: i64,
    pub contact_id: Option<i64>,
    pub phone: String,
    pub text: Option<String>,
    pub segments: i64,
    pub cost: i64,
    /// `pending`, `sending`, `sent`, `failed`, `cancelled` or `unknown`.
    pub status: String,
    pub delivery_status: Option<String>,
    pub provider_message_id: Option<String>,
    pub attempts: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageJson>,
    pub next_cursor: Option<String>,
}

/// A queued test message.
#[derive(ToSchema)]
pub struct TestMessageQueued {
    pub id: i64,
    pub phone: String,
    pub text: String,
    pub segments: i64,
    pub encoding: String,
    pub cost: i64,
}

#[derive(ToSchema)]
pub struct TestSendResult {
    pub ok: bool,
    pub messages: Vec<TestMessageQueued>,
}

/// A test message's state.
#[derive(ToSchema)]
pub struct TestMessage {
    pub id: i64,
    pub phone: String,
    pub status: String,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
}

#[derive(ToSchema)]
pub struct CancelResult {
    pub cancelled_messages: i64,
    /// Messages already with the provider; they finish on their own.
    pub in_flight: i64,
    pub released_credits: i64,
    pub status: String,
}

#[derive(ToSchema)]
pub struct PauseResult {
    pub status: String,
    pub in_flight: i64,
}

#[derive(ToSchema)]
pub struct ResumeResult {
    pub status: String,
}

/// What `retry-failed` or `resend-unknown` would send and cost, and what blocks it.
#[derive(ToSchema)]
pub struct RequeuePreview {
    pub messages: i64,
    /// Messages left out: `opted_out`, and for retries each failure code that is not retryable.
    #[schema(value_type = Object)]
    pub excluded: Value,
    pub estimated_cost: i64,
    pub available_credits: i64,
    pub blocking_reasons: Vec<BlockingReason>,
    /// Retry preview only.
    pub can_retry: Option<bool>,
    /// Resend preview only.
    pub can_resend: Option<bool>,
    /// Resend preview only: people may get the message twice.
    pub warning: Option<String>,
}

#[derive(ToSchema)]
pub struct RequeueResult {
    pub status: String,
    pub messages: i64,
    pub held_credits: i64,
    pub hold_id: i64,
}

#[derive(ToSchema)]
pub struct FailureCategory {
    pub category: String,
    pub count: i64,
    pub explanation: String,
    pub retryable: bool,
}

#[derive(ToSchema)]
pub struct Failures {
    pub total: i64,
    pub categories: Vec<FailureCategory>,
}

#[derive(ToSchema)]
pub struct ReportHour {
    pub hour: String,
    pub sends: i64,
    pub deliveries: i64,
    pub clicks: i64,
}

/// A campaign's report.
#[derive(ToSchema)]
pub struct Report {
    pub campaign_id: i64,
    pub status: String,
    pub sent: i64,
    pub delivered: i64,
    pub undelivered: i64,
    /// Percent.
    pub delivery_rate: f64,
    pub clicks_unique: i64,
    pub clicks_total: i64,
    /// Unique clickers per message sent, percent.
    pub click_through_rate: f64,
    pub unsubscribes: i64,
    pub credits_charged: i64,
    pub credits_refunded: i64,
    pub first_sent_at: Option<String>,
    pub last_sent_at: Option<String>,
    pub series: Vec<ReportHour>,
}

#[derive(ToSchema)]
pub struct LinkStats {
    pub index: i64,
    pub url: String,
    pub clicks: i64,
    pub unique_clicks: i64,
    pub click_through_rate: f64,
}

#[derive(ToSchema)]
pub struct CampaignLinks {
    pub campaign_id: i64,
    pub clicks: i64,
    pub unique_clicks: i64,
    pub sent: i64,
    pub click_through_rate: f64,
    pub links: Vec<LinkStats>,
}

/// A segment: a saved audience rule set.
#[derive(ToSchema)]
pub struct Segment {
    pub id: i64,
    pub name: String,
    #[schema(rename = "match")]
    pub match_: crate::domain::campaign::Match,
    pub rules: Vec<crate::domain::campaign::Rule>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct SegmentList {
    pub items: Vec<Segment>,
}

/// An audience and text to count (`POST /api/audience/preview`).
#[derive(ToSchema)]
pub struct AudiencePreviewRequest {
    pub audience: crate::domain::campaign::Audience,
    /// Empty: the audience is counted without parts, cost or samples.
    pub message: Option<String>,
    pub discount_code: Option<String>,
    pub greek_gsm: Option<bool>,
}

/// One recipient's exact text in the editor's audience box.
#[derive(ToSchema)]
pub struct AudienceSample {
    pub contact_id: i64,
    pub name: String,
    pub phone: String,
    pub text: String,
    pub encoding: String,
    pub segments: i64,
    pub cost: i64,
}

/// The editor's audience box.
#[derive(ToSchema)]
pub struct AudiencePreview {
    pub recipients: i64,
    /// Contacts left out, by reason.
    pub excluded: crate::store::campaigns::Excluded,
    /// Recipients whose text would be longer than a message may be.
    pub too_long: i64,
    /// Null until the text is written.
    pub segments: Option<i64>,
    /// Null until the text is written.
    pub estimated_cost: Option<i64>,
    pub samples: Vec<AudienceSample>,
}

/// A text to analyse (`POST /api/sms/analyze`).
#[derive(ToSchema)]
pub struct AnalyzeText {
    pub text: String,
}

/// The GSM-7/UCS-2 analysis of a text.
#[derive(ToSchema)]
pub struct TextInfo {
    pub encoding: String,
    pub characters: i64,
    pub units: i64,
    pub segments: i64,
}

#[derive(ToSchema)]
pub struct GreekAlternative {
    pub text: String,
    pub encoding: String,
    pub segments: i64,
    pub saving_segments: i64,
}

/// The editor's live counter.
#[derive(ToSchema)]
pub struct Analysis {
    pub encoding: String,
    pub characters: i64,
    pub units: i64,
    pub segments: i64,
    /// The characters that force UCS-2.
    pub ucs2_chars: Vec<String>,
    /// With the store's unsubscribe line.
    pub with_footer: TextInfo,
    /// Null when the text has no Greek letters.
    pub greek_gsm: Option<GreekAlternative>,
    /// Links in the text: each is sent as a tracked short link.
    pub links: i64,
    /// The length of one tracked short link, as the counts above take it.
    pub short_link_chars: i64,
}

/// Delivery reports taken in.
#[derive(ToSchema)]
pub struct DlrResult {
    pub ok: bool,
    pub received: i64,
    pub applied: i64,
    /// Reports for messages not known yet, kept until their message is.
    pub parked: i64,
    pub ignored: i64,
}

/// What one inbound message did in one store that messaged the sender.
#[derive(ToSchema)]
pub struct InboundOutcome {
    pub store_id: i64,
    pub campaign_id: Option<i64>,
    /// `opt_out`, `opt_in`, `help`, or null when the text is no keyword.
    pub action: Option<String>,
    pub changed: bool,
}

/// One inbound message: its outcome in each store that messaged the sender.
#[derive(ToSchema)]
pub struct InboundMessageResult {
    pub ok: bool,
    pub stores: Vec<InboundOutcome>,
}

#[derive(ToSchema)]
pub struct InboundResult {
    pub ok: bool,
    pub received: i64,
    pub results: Vec<InboundMessageResult>,
}
