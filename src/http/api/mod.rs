//! JSON API routes.

mod admin;
mod campaigns;
pub mod contacts;
mod health;
mod keywords;
mod links;
pub mod openapi;
mod reports;
pub mod session;
pub mod shapes;
pub mod store;
pub mod wallet;

use super::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/store", get(store::get_store).patch(store::patch_store))
        .route("/api/store/keywords", get(keywords::get_keywords).put(keywords::put_keywords))
        .route("/api/keys", get(store::list_keys).post(store::create_key))
        .route("/api/keys/{id}", axum::routing::delete(store::revoke_key))
        .route("/api/keys/{id}/revoke", post(store::revoke_key))
        .route("/api/contacts", get(contacts::list).post(contacts::create))
        .route("/api/contacts/import", post(contacts::import).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/api/contacts/tags", post(contacts::bulk_tags))
        .route("/api/contacts/{id}", get(contacts::get).patch(contacts::update).delete(contacts::delete))
        .route("/api/contacts/{id}/consent-history", get(contacts::consent_history))
        .route("/api/admin/stores", get(admin::list_stores).post(admin::create_store))
        .route("/api/admin/stores/{id}/credits", post(wallet::top_up))
        .route("/api/admin/stores/{id}/weight", axum::routing::put(admin::set_weight))
        .route("/api/admin/keys", get(admin::list_admin_keys))
        .route("/api/admin/senders", get(admin::list_senders))
        .route("/api/admin/senders/{id}/approve", post(admin::approve_sender))
        .route("/api/admin/senders/{id}/reject", post(admin::reject_sender))
        .route("/api/admin/keys/{id}", axum::routing::delete(admin::revoke_admin_key))
        .route("/api/admin/keys/{id}/revoke", post(admin::revoke_admin_key))
        .route("/api/admin/rate-limits", get(wallet::list_rate_limits).put(wallet::set_rate_limit))
        .route("/api/wallet", get(wallet::wallet))
        .route("/api/wallet/entries", get(wallet::entries))
        .route("/api/campaigns", get(campaigns::list).post(campaigns::create))
        .route("/api/campaigns/{id}", get(campaigns::get).patch(campaigns::update).delete(campaigns::delete))
        .route("/api/campaigns/{id}/preview", get(campaigns::preview))
        .route("/api/campaigns/{id}/history", get(campaigns::history))
        .route("/api/campaigns/{id}/send", post(campaigns::send))
        .route("/api/campaigns/{id}/enqueue", post(campaigns::send))
        .route("/api/campaigns/{id}/progress", get(campaigns::progress))
        .route("/api/campaigns/{id}/report", get(reports::campaign_report))
        .route("/api/campaigns/{id}/test", post(campaigns::send_test))
        .route("/api/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/api/campaigns/{id}/pause", post(campaigns::pause))
        .route("/api/campaigns/{id}/resume", post(campaigns::resume))
        .route("/api/campaigns/{id}/retry-failed", post(campaigns::retry_failed))
        .route("/api/campaigns/{id}/retry-failed/preview", get(campaigns::retry_preview))
        .route("/api/campaigns/{id}/resend-unknown", post(campaigns::resend_unknown))
        .route("/api/campaigns/{id}/resend-unknown/preview", get(campaigns::resend_unknown_preview))
        .route("/api/campaigns/{id}/failures", get(campaigns::failures))
        .route("/api/queue", get(campaigns::store_queue))
        .route("/api/campaigns/{id}/events", get(crate::http::sse::campaign_events))
        .route("/api/events", get(crate::http::sse::store_events))
        .route("/api/admin/queue", get(campaigns::admin_queue))
        .route("/metrics", get(campaigns::metrics))
        .route("/api/campaigns/{id}/test/{message}", get(campaigns::test_message))
        .route("/api/campaigns/{id}/messages", get(campaigns::list_messages))
        .route("/api/campaigns/{id}/links", get(links::campaign_links))
        .route("/api/segments", get(campaigns::list_segments).post(campaigns::create_segment))
        .route(
            "/api/segments/{id}",
            get(campaigns::get_segment).put(campaigns::update_segment).patch(campaigns::update_segment).delete(campaigns::delete_segment),
        )
}
