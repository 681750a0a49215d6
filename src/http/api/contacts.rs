//! Contacts: CRUD, list, bulk tags, consent history and CSV import.

use crate::domain::{Error, Kind, phone};
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Auth, Id};
use crate::store::contacts::{self, BulkTags, ContactFilter, ContactJson, ContactPatch, NewContact, Page};
use crate::store::import::{self, ImportContext, ImportReport};
use crate::store::{StoreId, stores};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufWriter};

pub async fn country(state: &AppState, store: StoreId) -> Result<phonenumber::country::Id, Error> {
    let s = stores::get(&state.db, store).await?;
    Ok(phone::parse_country(&s.default_country).unwrap_or(phonenumber::country::Id::GR))
}

#[utoipa::path(
    post,
    path = "/api/contacts",
    tag = "contacts",
    operation_id = "create_contact",
    summary = "Creates a contact",
    security(("api_key" = []), ("session" = [])),
    request_body = NewContact,
    responses(
        (status = 201, description = "Created.", body = ContactJson),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, Json<ContactJson>)> {
    let c = country(&state, p.store).await?;
    Ok((StatusCode::CREATED, Json(contacts::create(&state.db, p.store, c, &p.actor, req, state.clock.now_ms()).await?)))
}

#[utoipa::path(
    get,
    path = "/api/contacts/{id}",
    tag = "contacts",
    operation_id = "get_contact",
    summary = "A contact",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The contact's id.")),
    responses(
        (status = 200, description = "OK", body = ContactJson),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn get(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<ContactJson>> {
    Ok(Json(contacts::get(&state.db, p.store, id).await?))
}

#[utoipa::path(
    patch,
    path = "/api/contacts/{id}",
    tag = "contacts",
    operation_id = "update_contact",
    summary = "Changes a contact",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The contact's id.")),
    request_body = ContactPatch,
    responses(
        (status = 200, description = "OK", body = ContactJson),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound),
        (status = 409, response = crate::http::api::openapi::Conflict),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(patch): ApiJson<ContactPatch>,
) -> ApiResult<Json<ContactJson>> {
    let c = country(&state, p.store).await?;
    Ok(Json(contacts::update(&state.db, p.store, c, &p.actor, id, patch, state.clock.now_ms()).await?))
}

#[utoipa::path(
    delete,
    path = "/api/contacts/{id}",
    tag = "contacts",
    operation_id = "delete_contact",
    summary = "Deletes a contact",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The contact's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn delete(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    contacts::delete(&state.db, p.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/contacts",
    tag = "contacts",
    operation_id = "list_contacts",
    summary = "The store's contacts, newest first",
    security(("api_key" = []), ("session" = [])),
    params(ContactFilter),
    responses(
        (status = 200, description = "OK", body = Page<ContactJson>),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiQuery(f): ApiQuery<ContactFilter>,
) -> ApiResult<Json<Page<ContactJson>>> {
    Ok(Json(contacts::list(&state.db, p.store, f).await?))
}

#[utoipa::path(
    post,
    path = "/api/contacts/tags",
    tag = "contacts",
    operation_id = "bulk_tags",
    summary = "Adds and removes tags on many contacts",
    security(("api_key" = []), ("session" = [])),
    request_body = BulkTags,
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::BulkTagsResult),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 422, response = crate::http::api::openapi::Unprocessable)
    )
)]
pub async fn bulk_tags(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiJson(req): ApiJson<BulkTags>) -> ApiResult<Json<Value>> {
    Ok(Json(contacts::bulk_tags(&state.db, p.store, req).await?))
}

#[utoipa::path(
    get,
    path = "/api/contacts/{id}/consent-history",
    tag = "contacts",
    operation_id = "consent_history",
    summary = "A contact's consent changes, oldest first",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "The contact's id.")),
    responses(
        (status = 200, description = "OK", body = crate::http::api::shapes::ConsentHistory),
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 404, response = crate::http::api::openapi::NotFound)
    )
)]
pub async fn consent_history(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"items": contacts::consent_history(&state.db, p.store, id).await?})))
}

fn too_large(limit: u64) -> Error {
    let mb = limit / (1024 * 1024);
    Error::new(
        Kind::PayloadTooLarge,
        "file_too_large",
        format!("The file is larger than the {mb} MB import limit, so nothing was imported. Split it into smaller files."),
    )
    .with_details(json!({"limit_bytes": limit}))
}

/// An upload on disk until it has fully arrived, so a file over the limit or a broken upload
/// imports nothing. Removed when dropped (also when the client goes away mid-request).
struct Spool {
    path: std::path::PathBuf,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn spool_chunk(out: &mut BufWriter<tokio::fs::File>, total: &mut u64, limit: u64, chunk: &[u8]) -> Result<(), Error> {
    *total += chunk.len() as u64;
    if *total > limit {
        return Err(too_large(limit));
    }
    out.write_all(chunk).await.map_err(|e| Error::internal(format!("spooling an upload: {e}")))
}

/// `POST /api/contacts/import`: a CSV file as `multipart/form-data` (any file field) or as the raw
/// body (`text/csv`). The upload is spooled to a temporary file (memory stays flat whatever the
/// size), then imported by streaming from that file.
#[utoipa::path(
    post,
    path = "/api/contacts/import",
    tag = "contacts",
    operation_id = "import_contacts",
    summary = "Imports contacts from a CSV file",
    security(("api_key" = []), ("session" = [])),
    request_body(description = "The CSV file, as the raw body or as a multipart file field (named `file`, or any field with a file name). Columns: phone (required), first_name, last_name, email, tags, consent.", content(("text/csv"), ("multipart/form-data"))),
    responses(
        (status = 200, description = "OK", body = ImportReport),
        crate::http::api::openapi::BodyErrors,
        (status = 401, response = crate::http::api::openapi::Unauthorized),
        (status = 403, response = crate::http::api::openapi::Forbidden),
        (status = 422, response = crate::http::api::openapi::Unprocessable),
        (status = 429, response = crate::http::api::openapi::TooManyRequests)
    )
)]
pub async fn import(State(state): State<Arc<AppState>>, Auth(p): Auth, req: Request) -> ApiResult<Json<ImportReport>> {
    Ok(Json(import_request(&state, &p, req).await?))
}

/// Spools and imports an upload; the web page's import form calls this too.
pub async fn import_request(state: &AppState, p: &crate::store::auth::Principal, req: Request) -> Result<ImportReport, Error> {
    let limit = state.settings.max_import_bytes;
    if req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let ct = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let is_multipart = ct.starts_with("multipart/form-data");
    let is_csv = ct.starts_with("text/csv") || ct.starts_with("application/csv") || ct.starts_with("text/plain");
    if !is_multipart && !is_csv {
        return Err(Error::new(
            Kind::UnsupportedMediaType,
            "unsupported_media_type",
            "Upload the CSV as multipart/form-data or with Content-Type: text/csv.",
        ));
    }
    crate::http::rate_limit(state, p.store, crate::store::rate::Action::Import).await?;
    let spool = Spool { path: std::env::temp_dir().join(format!("smscast-import-{}.csv", crate::secrets::random_token(20))) };
    // Readable by this user only: it holds a store's customers. `create_new`: never an existing file.
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&spool.path)
        .await
        .map_err(|e| Error::internal(format!("creating an upload spool: {e}")))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut total: u64 = 0;
    if is_multipart {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|_| Error::new(Kind::BadRequest, "invalid_multipart", "The multipart body could not be read."))?;
        let mut found = false;
        while let Some(mut field) = mp
            .next_field()
            .await
            .map_err(|e| Error::new(Kind::BadRequest, "invalid_multipart", format!("The multipart body could not be read: {e}")))?
        {
            if field.file_name().is_none() && field.name() != Some("file") {
                continue;
            }
            found = true;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| Error::new(Kind::BadRequest, "invalid_multipart", format!("The upload was interrupted: {e}")))?
            {
                spool_chunk(&mut out, &mut total, limit, &chunk).await?;
            }
            break;
        }
        if !found {
            return Err(Error::invalid("missing_file", "Attach the CSV file as a form field named \"file\"."));
        }
    } else {
        let mut body = req.into_body().into_data_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::new(Kind::BadRequest, "invalid_body", format!("The upload was interrupted: {e}")))?;
            spool_chunk(&mut out, &mut total, limit, &chunk).await?;
        }
    }
    out.flush().await.map_err(|e| Error::internal(format!("spooling an upload: {e}")))?;
    drop(out);
    let file = std::fs::File::open(&spool.path).map_err(|e| Error::internal(format!("reading an upload spool: {e}")))?;
    let ctx = ImportContext {
        db: state.db.clone(),
        country: country(state, p.store).await?,
        store: p.store,
        actor: p.actor.clone(),
        now: state.clock.now_ms(),
    };
    let report = import::import(ctx, file, |_| {}).await?;
    drop(spool);
    Ok(report)
}
