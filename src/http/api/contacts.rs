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
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;

async fn country(state: &AppState, store: StoreId) -> Result<phonenumber::country::Id, Error> {
    let s = stores::get(&state.db, store).await?;
    Ok(phone::parse_country(&s.default_country).unwrap_or(phonenumber::country::Id::GR))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, Json<ContactJson>)> {
    let c = country(&state, p.store).await?;
    Ok((StatusCode::CREATED, Json(contacts::create(&state.db, p.store, c, &p.actor, req, state.clock.now_ms()).await?)))
}

pub async fn get(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<ContactJson>> {
    Ok(Json(contacts::get(&state.db, p.store, id).await?))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    Id(id): Id,
    ApiJson(patch): ApiJson<ContactPatch>,
) -> ApiResult<Json<ContactJson>> {
    let c = country(&state, p.store).await?;
    Ok(Json(contacts::update(&state.db, p.store, c, &p.actor, id, patch, state.clock.now_ms()).await?))
}

pub async fn delete(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    contacts::delete(&state.db, p.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    ApiQuery(f): ApiQuery<ContactFilter>,
) -> ApiResult<Json<Page<ContactJson>>> {
    Ok(Json(contacts::list(&state.db, p.store, f).await?))
}

pub async fn bulk_tags(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiJson(req): ApiJson<BulkTags>) -> ApiResult<Json<Value>> {
    Ok(Json(contacts::bulk_tags(&state.db, p.store, req).await?))
}

pub async fn consent_history(State(state): State<Arc<AppState>>, Auth(p): Auth, Id(id): Id) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"items": contacts::consent_history(&state.db, p.store, id).await?})))
}

fn too_large(limit: u64, streamed: bool) -> Error {
    let mb = limit / (1024 * 1024);
    let msg = if streamed {
        format!(
            "The upload passed the {mb} MB import limit and was stopped; rows before that point may have been imported. Split the file into smaller files."
        )
    } else {
        format!("The file is larger than the {mb} MB import limit. Split it into smaller files.")
    };
    Error::new(Kind::PayloadTooLarge, "file_too_large", msg).with_details(json!({"limit_bytes": limit}))
}

/// A blocking `Read` over chunks arriving from an async body, so the CSV parser can stream.
/// `None` aborts the read with an error, so a cut-off upload never imports a truncated last row.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Option<Bytes>>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Some(b)) => self.current = b,
                Some(None) => return Err(std::io::Error::other("the upload passed the size limit")),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `POST /api/contacts/import`: a CSV file as `multipart/form-data` (any file field) or as the raw
/// body (`text/csv`). Streams: memory stays flat whatever the size.
pub async fn import(State(state): State<Arc<AppState>>, Auth(p): Auth, req: Request) -> ApiResult<Json<ImportReport>> {
    let limit = state.settings.max_import_bytes;
    if req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > limit) {
        return Err(too_large(limit, false).into());
    }
    let ct = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (tx, rx) = tokio::sync::mpsc::channel::<Option<Bytes>>(8);
    let reader = ChannelReader { rx, current: Bytes::new() };
    let ctx = ImportContext {
        db: state.db.clone(),
        country: country(&state, p.store).await?,
        store: p.store,
        actor: p.actor.clone(),
        now: state.clock.now_ms(),
    };
    let pump = async move {
        let mut total: u64 = 0;
        let push = |chunk: Bytes, total: &mut u64| {
            *total += chunk.len() as u64;
            *total <= limit
        };
        if ct.starts_with("multipart/form-data") {
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
                    if !push(chunk.clone(), &mut total) {
                        let _ = tx.send(None).await;
                        return Ok::<bool, Error>(false);
                    }
                    if tx.send(Some(chunk)).await.is_err() {
                        break;
                    }
                }
                break;
            }
            if !found {
                return Err(Error::invalid("missing_file", "Attach the CSV file as a form field named \"file\"."));
            }
        } else if ct.starts_with("text/csv") || ct.starts_with("application/csv") || ct.starts_with("text/plain") {
            let mut body = req.into_body().into_data_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Error::new(Kind::BadRequest, "invalid_body", format!("The upload was interrupted: {e}")))?;
                if !push(chunk.clone(), &mut total) {
                    let _ = tx.send(None).await;
                    return Ok(false);
                }
                if tx.send(Some(chunk)).await.is_err() {
                    break;
                }
            }
        } else {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                "unsupported_media_type",
                "Upload the CSV as multipart/form-data or with Content-Type: text/csv.",
            ));
        }
        Ok(true)
    };
    let (pumped, report) = tokio::join!(pump, import::import(ctx, reader, |_| {}));
    match pumped {
        Err(e) => Err(e.into()),
        Ok(false) => Err(too_large(limit, true).into()),
        Ok(true) => Ok(Json(report?)),
    }
}
