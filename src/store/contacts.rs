//! Contacts, their tags and their consent history.

use super::auth::Actor;
use super::{Db, StoreId, Tx, clamp_limit, db_err, is_unique_violation, on_db, on_tx, parse_cursor, placeholders};
use crate::domain::contact::{self, Consent};
use crate::domain::{Error, phone, time::rfc3339};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use std::collections::HashMap;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: i64,
    pub store_id: i64,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub consent: String,
    pub consent_changed_at: Option<i64>,
    pub consent_source: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactJson {
    pub id: i64,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub tags: Vec<String>,
    pub consent: String,
    pub consent_changed_at: Option<String>,
    pub consent_source: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl ContactJson {
    fn new(r: ContactRow, tags: Vec<String>) -> Self {
        ContactJson {
            id: r.id,
            phone: r.phone,
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            tags,
            consent: r.consent,
            consent_changed_at: r.consent_changed_at.map(rfc3339),
            consent_source: r.consent_source,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    pub phone: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub consent: Option<Consent>,
}

/// For fields that can be left out but not cleared: `null` is a type error naming the field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub email: Option<Option<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub consent: Option<Consent>,
}

const COLUMNS: &str =
    "id, store_id, phone, first_name, last_name, email, consent, consent_changed_at, consent_source, created_at, updated_at";

fn duplicate_phone(phone: &str) -> Error {
    Error::conflict("duplicate_phone", format!("A contact with the number {phone} already exists in this store."))
        .with_details(json!({"field": "phone", "phone": phone}))
}

pub async fn create(
    db: &Db,
    store: StoreId,
    country: phonenumber::country::Id,
    actor: &Actor,
    input: NewContact,
    now: i64,
) -> Result<ContactJson, Error> {
    let phone = phone::parse(&input.phone, country)?;
    let first = contact::clean_text("first_name", input.first_name.as_deref(), contact::MAX_NAME)?;
    let last = contact::clean_text("last_name", input.last_name.as_deref(), contact::MAX_NAME)?;
    let email = contact::clean_email(input.email.as_deref())?;
    let tags = contact::normalize_tags(input.tags.iter().map(String::as_str))?;
    let consent = input.consent.unwrap_or(Consent::Unknown);
    let mut tx = db.begin().await?;
    let row: Result<ContactRow, _> = on_tx!(&mut tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contacts (store_id, phone, first_name, last_name, email, consent, consent_changed_at, consent_source, created_at, updated_at, mobile)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(store.0)
    .bind(&phone.e164)
    .bind(&first)
    .bind(&last)
    .bind(&email)
    .bind(consent.as_str())
    .bind(input.consent.map(|_| now))
    .bind(input.consent.map(|_| "api"))
    .bind(now)
    .bind(phone.mobile)
    .fetch_one(c)
    .await
    });
    let row = row.map_err(|e| if is_unique_violation(&e) { duplicate_phone(&phone.e164) } else { db_err(e) })?;
    if input.consent.is_some() {
        record_consent(&mut tx, store, row.id, &row.phone, None, consent, "api", &actor.label(), now).await?;
    }
    set_tags(&mut tx, store, row.id, &tags).await?;
    tx.commit().await?;
    Ok(ContactJson::new(row, tags))
}

#[allow(clippy::too_many_arguments)]
pub async fn record_consent(
    tx: &mut Tx<'_>,
    store: StoreId,
    contact: i64,
    phone: &str,
    from: Option<Consent>,
    to: Consent,
    source: &str,
    actor: &str,
    now: i64,
) -> Result<(), Error> {
    let change = ConsentChange { to, source, actor, campaign: None };
    record_consent_change(tx, store, contact, phone, from, &change, now).await
}

/// A consent change someone asked for: the new state, where it came from (`api`, `import`,
/// `unsubscribe_link`, `inbound_sms`), who, and the campaign behind it when there is one.
#[derive(Debug, Clone, Copy)]
pub struct ConsentChange<'a> {
    pub to: Consent,
    pub source: &'a str,
    pub actor: &'a str,
    pub campaign: Option<i64>,
}

/// Writes one event of the consent history.
pub async fn record_consent_change(
    tx: &mut Tx<'_>,
    store: StoreId,
    contact: i64,
    phone: &str,
    from: Option<Consent>,
    change: &ConsentChange<'_>,
    now: i64,
) -> Result<(), Error> {
    on_tx!(tx, |c| sqlx::query(
        "INSERT INTO consent_events (store_id, contact_id, phone, from_consent, to_consent, source, actor, at, campaign_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(store.0)
    .bind(contact)
    .bind(phone)
    .bind(from.map(Consent::as_str))
    .bind(change.to.as_str())
    .bind(change.source)
    .bind(change.actor)
    .bind(now)
    .bind(change.campaign)
    .execute(c)
    .await.map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

/// Moves a contact to `change.to` and records it in the consent history, unless it already is in
/// that state. Returns the previous state when it changed, `None` when nothing changed. The row
/// is read under a lock (PostgreSQL) or the write lock (SQLite), so of two concurrent requests
/// exactly one sees the change.
pub async fn change_consent(
    tx: &mut Tx<'_>,
    store: StoreId,
    contact: i64,
    change: &ConsentChange<'_>,
    now: i64,
) -> Result<Option<Consent>, Error> {
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let row: Option<(String, String)> = on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT consent, phone FROM contacts WHERE id = $1 AND store_id = $2{lock}"
    )))
    .bind(contact)
    .bind(store.0)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?;
    let Some((current, phone)) = row else { return Ok(None) };
    let from = Consent::parse(&current).unwrap_or(Consent::Unknown);
    if from == change.to {
        return Ok(None);
    }
    on_tx!(tx, |c| sqlx::query(
        "UPDATE contacts SET consent = $3, consent_changed_at = $4, consent_source = $5, updated_at = $4 WHERE id = $1 AND store_id = $2"
    )
    .bind(contact)
    .bind(store.0)
    .bind(change.to.as_str())
    .bind(now)
    .bind(change.source)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    record_consent_change(tx, store, contact, &phone, Some(from), change, now).await?;
    Ok(Some(from))
}

async fn set_tags(tx: &mut Tx<'_>, store: StoreId, contact: i64, tags: &[String]) -> Result<(), Error> {
    on_tx!(tx, |c| sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1 AND store_id = $2")
        .bind(contact)
        .bind(store.0)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    for tag in tags {
        on_tx!(tx, |c| sqlx::query("INSERT INTO contact_tags (contact_id, store_id, tag) VALUES ($1, $2, $3)")
            .bind(contact)
            .bind(store.0)
            .bind(tag)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
    }
    Ok(())
}

async fn tags_for(db: &Db, store: StoreId, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, Error> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT contact_id, tag FROM contact_tags WHERE store_id = $1 AND contact_id IN ({}) ORDER BY contact_id, tag",
        placeholders(2, ids.len())
    );
    let rows: Vec<(i64, String)> = on_db!(db, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(store.0);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
    .map_err(db_err)?;
    for (id, tag) in rows {
        out.entry(id).or_default().push(tag);
    }
    Ok(out)
}

async fn fetch_row(tx: &mut Tx<'_>, store: StoreId, id: i64) -> Result<ContactRow, Error> {
    on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM contacts WHERE id = $1 AND store_id = $2")))
        .bind(id)
        .bind(store.0)
        .fetch_optional(c)
        .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("contact"))
}

pub async fn get(db: &Db, store: StoreId, id: i64) -> Result<ContactJson, Error> {
    let row: ContactRow =
        on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM contacts WHERE id = $1 AND store_id = $2")))
            .bind(id)
            .bind(store.0)
            .fetch_optional(p)
            .await)
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found("contact"))?;
    let mut tags = tags_for(db, store, &[id]).await?;
    Ok(ContactJson::new(row, tags.remove(&id).unwrap_or_default()))
}

pub async fn update(
    db: &Db,
    store: StoreId,
    country: phonenumber::country::Id,
    actor: &Actor,
    id: i64,
    patch: ContactPatch,
    now: i64,
) -> Result<ContactJson, Error> {
    let phone = patch.phone.as_deref().map(|p| phone::parse(p, country)).transpose()?;
    let first = patch.first_name.map(|v| contact::clean_text("first_name", v.as_deref(), contact::MAX_NAME)).transpose()?;
    let last = patch.last_name.map(|v| contact::clean_text("last_name", v.as_deref(), contact::MAX_NAME)).transpose()?;
    let email = patch.email.map(|v| contact::clean_email(v.as_deref())).transpose()?;
    let tags = patch.tags.as_ref().map(|t| contact::normalize_tags(t.iter().map(String::as_str))).transpose()?;
    let mut tx = db.begin().await?;
    let current = fetch_row(&mut tx, store, id).await?;
    let old_consent = Consent::parse(&current.consent).unwrap_or(Consent::Unknown);
    let consent_changed = patch.consent.filter(|c| *c != old_consent);
    let row: Result<ContactRow, _> = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contacts SET phone = $3, first_name = $4, last_name = $5, email = $6, consent = $7,
            consent_changed_at = $8, consent_source = $9, updated_at = $10, mobile = COALESCE($11, mobile)
         WHERE id = $1 AND store_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(store.0)
    .bind(phone.as_ref().map_or(current.phone.as_str(), |p| p.e164.as_str()))
    .bind(first.unwrap_or(current.first_name.clone()))
    .bind(last.unwrap_or(current.last_name.clone()))
    .bind(email.unwrap_or(current.email.clone()))
    .bind(consent_changed.unwrap_or(old_consent).as_str())
    .bind(if consent_changed.is_some() { Some(now) } else { current.consent_changed_at })
    .bind(if consent_changed.is_some() { Some("api".to_string()) } else { current.consent_source.clone() })
    .bind(now)
    .bind(phone.as_ref().map(|p| p.mobile))
    .fetch_one(c)
    .await);
    let row = row.map_err(|e| {
        if is_unique_violation(&e) { duplicate_phone(&phone.as_ref().map(|p| p.e164.clone()).unwrap_or_default()) } else { db_err(e) }
    })?;
    if let Some(to) = consent_changed {
        record_consent(&mut tx, store, id, &row.phone, Some(old_consent), to, "api", &actor.label(), now).await?;
    }
    if let Some(tags) = &tags {
        set_tags(&mut tx, store, id, tags).await?;
    }
    tx.commit().await?;
    get(db, store, row.id).await
}

pub async fn delete(db: &Db, store: StoreId, id: i64) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1 AND store_id = $2")
        .bind(id)
        .bind(store.0)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    let done = on_tx!(&mut tx, |c| sqlx::query("DELETE FROM contacts WHERE id = $1 AND store_id = $2")
        .bind(id)
        .bind(store.0)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if done == 0 {
        return Err(Error::not_found("contact"));
    }
    tx.commit().await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContactFilter {
    pub consent: Option<String>,
    pub tag: Option<String>,
    /// Free text over name, phone and email.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Longest free-text search: on SQLite each character becomes a class of its cases to match
/// against every contact of the store.
pub const MAX_SEARCH_CHARS: usize = 100;

pub async fn list(db: &Db, store: StoreId, f: ContactFilter) -> Result<Page<ContactJson>, Error> {
    let limit = clamp_limit(f.limit, 50, 500)?;
    let after = parse_cursor(f.cursor.as_deref())?;
    let consent = match f.consent.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            Consent::parse(c)
                .ok_or_else(|| {
                    Error::invalid("invalid_consent", format!("\"{c}\" is not a consent state (opted_in, opted_out, unknown)."))
                        .with_details(json!({"field": "consent"}))
                })?
                .as_str(),
        ),
    };
    let tag = f.tag.as_deref().filter(|t| !t.trim().is_empty()).map(contact::normalize_tag).transpose()?;
    let pg = db.is_postgres();
    let q = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS) {
        return Err(Error::new(
            crate::domain::Kind::BadRequest,
            "query_too_long",
            format!("Search for at most {MAX_SEARCH_CHARS} characters."),
        )
        .with_details(json!({"field": "q", "max": MAX_SEARCH_CHARS})));
    }
    let q = q.map(|q| super::nocase_pattern(q, super::TextMatch::Contains, pg));
    let matches = |col: &str| super::nocase_sql(col, "$5", pg);
    let sql = format!(
        "SELECT {COLUMNS} FROM contacts c WHERE c.store_id = $1 AND c.id > $2
           AND ($3 IS NULL OR c.consent = $3)
           AND ($4 IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.store_id = $1 AND t.tag = $4))
           AND ($5 IS NULL OR {} OR {} OR {})
         ORDER BY c.id LIMIT $6",
        matches("COALESCE(c.first_name, '') || ' ' || COALESCE(c.last_name, '')"),
        matches("c.phone"),
        matches("COALESCE(c.email, '')"),
    );
    let mut rows: Vec<ContactRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(store.0)
        .bind(after)
        .bind(consent)
        .bind(&tag)
        .bind(&q)
        .bind(limit + 1)
        .fetch_all(p)
        .await)
    .map_err(db_err)?;
    let next_cursor = super::next_cursor(&mut rows, limit, |r| r.id);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = tags_for(db, store, &ids).await?;
    let items = rows.into_iter().map(|r| {
        let t = tags.remove(&r.id).unwrap_or_default();
        ContactJson::new(r, t)
    });
    Ok(Page { items: items.collect(), next_cursor })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkTags {
    pub ids: Vec<i64>,
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Bounds of one bulk tag edit, so it holds the write lock for a moment (a few set-based
/// statements over at most 10,000 × 20 rows), never for minutes.
pub const BULK_MAX_IDS: usize = 10_000;
pub const BULK_MAX_TAGS: usize = 20;

fn too_many(code: &'static str, field: &str, max: usize, what: &str) -> Error {
    Error::new(crate::domain::Kind::BadRequest, code, format!("At most {max} {what} per request; split the edit into several requests."))
        .with_details(json!({"field": field, "max": max}))
}

/// Adds and removes tags on many contacts at once, in three statements whatever the numbers.
/// Ids of other stores are not touched and are reported as not found, exactly like ids that do
/// not exist.
pub async fn bulk_tags(db: &Db, store: StoreId, req: BulkTags) -> Result<serde_json::Value, Error> {
    if req.ids.is_empty() {
        return Err(Error::invalid_field("ids", "Give between 1 and 10,000 contact ids."));
    }
    if req.ids.len() > BULK_MAX_IDS {
        return Err(too_many("too_many_ids", "ids", BULK_MAX_IDS, "contact ids"));
    }
    for (field, tags) in [("add", &req.add), ("remove", &req.remove)] {
        if tags.len() > BULK_MAX_TAGS {
            return Err(too_many("too_many_tags", field, BULK_MAX_TAGS, "tags to add and to remove"));
        }
    }
    if req.add.is_empty() && req.remove.is_empty() {
        return Err(Error::invalid_field("add", "Give tags to add or to remove."));
    }
    let add = contact::normalize_tags(req.add.iter().map(String::as_str))?;
    let remove = contact::normalize_tags(req.remove.iter().map(String::as_str))?;
    let mut ids = req.ids.clone();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = db.begin().await?;
    // Sets travel as one parameter each: an array on PostgreSQL, a JSON array on SQLite.
    let found: Vec<i64> = match &mut tx {
        Tx::Pg(c) => {
            let found: Vec<(i64,)> = sqlx::query_as("SELECT id FROM contacts WHERE store_id = $1 AND id = ANY($2)")
                .bind(store.0)
                .bind(&ids)
                .fetch_all(&mut **c)
                .await
                .map_err(db_err)?;
            if !add.is_empty() {
                sqlx::query(
                    "INSERT INTO contact_tags (contact_id, store_id, tag)
                     SELECT c.id, c.store_id, t.tag FROM contacts c CROSS JOIN unnest($3::text[]) AS t(tag)
                     WHERE c.store_id = $1 AND c.id = ANY($2)
                     ON CONFLICT DO NOTHING",
                )
                .bind(store.0)
                .bind(&ids)
                .bind(&add)
                .execute(&mut **c)
                .await
                .map_err(db_err)?;
            }
            if !remove.is_empty() {
                sqlx::query("DELETE FROM contact_tags WHERE store_id = $1 AND contact_id = ANY($2) AND tag = ANY($3)")
                    .bind(store.0)
                    .bind(&ids)
                    .bind(&remove)
                    .execute(&mut **c)
                    .await
                    .map_err(db_err)?;
            }
            found.into_iter().map(|(id,)| id).collect()
        }
        Tx::Sqlite(c) => {
            let (ids, add, remove) = (json!(ids).to_string(), json!(add).to_string(), json!(remove).to_string());
            let found: Vec<(i64,)> =
                sqlx::query_as("SELECT id FROM contacts WHERE store_id = $1 AND id IN (SELECT value FROM json_each($2))")
                    .bind(store.0)
                    .bind(&ids)
                    .fetch_all(&mut **c)
                    .await
                    .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO contact_tags (contact_id, store_id, tag)
                 SELECT c.id, c.store_id, t.value FROM contacts c, json_each($3) t
                 WHERE c.store_id = $1 AND c.id IN (SELECT value FROM json_each($2))
                 ON CONFLICT DO NOTHING",
            )
            .bind(store.0)
            .bind(&ids)
            .bind(&add)
            .execute(&mut **c)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "DELETE FROM contact_tags WHERE store_id = $1 AND contact_id IN (SELECT value FROM json_each($2))
                   AND tag IN (SELECT value FROM json_each($3))",
            )
            .bind(store.0)
            .bind(&ids)
            .bind(&remove)
            .execute(&mut **c)
            .await
            .map_err(db_err)?;
            found.into_iter().map(|(id,)| id).collect()
        }
    };
    tx.commit().await?;
    let found: std::collections::HashSet<i64> = found.into_iter().collect();
    let not_found: Vec<i64> = req.ids.iter().copied().filter(|id| !found.contains(id)).collect();
    Ok(json!({"updated": found.len(), "not_found": not_found}))
}

#[derive(Serialize, sqlx::FromRow)]
pub struct ConsentEvent {
    pub id: i64,
    pub from_consent: Option<String>,
    pub to_consent: String,
    pub source: String,
    pub actor: String,
    pub campaign_id: Option<i64>,
    #[serde(skip)]
    pub at: i64,
}

pub async fn consent_history(db: &Db, store: StoreId, id: i64) -> Result<Vec<serde_json::Value>, Error> {
    // The contact must exist in this store; history of deleted contacts is kept for regulators
    // but is not browsable through this endpoint.
    get(db, store, id).await?;
    let rows: Vec<ConsentEvent> = on_db!(db, |p| sqlx::query_as(
        "SELECT id, from_consent, to_consent, source, actor, campaign_id, at FROM consent_events WHERE store_id = $1 AND contact_id = $2 ORDER BY id"
    )
    .bind(store.0)
    .bind(id)
    .fetch_all(p)
    .await)
    .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|e| {
            json!({"from": e.from_consent, "to": e.to_consent, "source": e.source, "actor": e.actor, "campaign_id": e.campaign_id, "at": rfc3339(e.at)})
        })
        .collect())
}
