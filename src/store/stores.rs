//! Stores (tenants) and their settings.

use super::{Db, StoreId, Tx, db_err, is_unique_violation, on_db, on_tx};
use crate::domain::{Error, tenant};
use crate::secrets;
use serde::Serialize;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoreRow {
    pub id: i64,
    pub name: String,
    pub default_country: String,
    pub timezone: String,
    pub language: String,
    pub sender_name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl StoreRow {
    pub fn store_id(&self) -> StoreId {
        StoreId(self.id)
    }
}

/// What a new store's owner needs to get in: shown once, stored hashed.
pub struct NewStore {
    pub store: StoreRow,
    pub email: String,
    pub password: String,
    pub api_key: String,
}

pub struct CreateStore<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub country: &'a str,
    pub language: &'a str,
    pub timezone: &'a str,
    pub sender_name: Option<&'a str>,
}

/// The API and the CLI call the field `sender_name`; errors name it that way.
fn validate_sender(sender: &str) -> Result<String, Error> {
    tenant::validate_sender(sender).map_err(|e| e.with_details(serde_json::json!({"field": "sender_name"})))
}

/// Sender ids are at most 11 alphanumerics; derive one from the store name.
fn default_sender(name: &str) -> String {
    let s: String = name.chars().filter(char::is_ascii_alphanumeric).take(11).collect();
    if s.len() >= 3 && s.chars().any(|c| c.is_ascii_alphabetic()) { s } else { tenant::PLATFORM_SENDER.to_string() }
}

pub async fn create(db: &Db, now: i64, req: CreateStore<'_>) -> Result<NewStore, Error> {
    let mut tx = db.begin().await?;
    let created = create_in(&mut tx, now, req).await?;
    tx.commit().await?;
    Ok(created)
}

/// `create` inside a caller's transaction (the demo records its credentials in the same one).
pub async fn create_in(tx: &mut Tx<'_>, now: i64, req: CreateStore<'_>) -> Result<NewStore, Error> {
    let name = tenant::validate_name(req.name)?;
    let email = crate::domain::contact::clean_email(Some(req.email))?
        .ok_or_else(|| {
            Error::invalid("invalid_email", "An email address is required.").with_details(serde_json::json!({"field": "email"}))
        })?
        .to_lowercase();
    let country = tenant::validate_country(req.country)?;
    let language = tenant::validate_language(req.language)?;
    let timezone = tenant::validate_timezone(req.timezone)?;
    let sender = match req.sender_name {
        Some(s) => validate_sender(s)?,
        None => default_sender(&name),
    };
    let password = secrets::random_token(16);
    let api_key = secrets::new_api_key(secrets::STORE_KEY_PREFIX);
    let store: StoreRow = on_tx!(tx, |c| sqlx::query_as(
        "INSERT INTO stores (name, default_country, timezone, language, sender_name, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *"
    )
    .bind(&name)
    .bind(&country)
    .bind(&timezone)
    .bind(&language)
    .bind(&sender)
    .bind(now)
    .fetch_one(c)
    .await)
    .map_err(db_err)?;
    let inserted = on_tx!(tx, |c| sqlx::query("INSERT INTO users (store_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(store.id)
        .bind(&email)
        .bind(secrets::hash_password(&password))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()));
    if let Err(e) = inserted {
        return Err(if is_unique_violation(&e) {
            Error::conflict("email_taken", format!("A user with the email {email} already exists."))
                .with_details(serde_json::json!({"field": "email"}))
        } else {
            db_err(e)
        });
    }
    super::auth::insert_api_key(tx, store.store_id(), "Default", &api_key, now).await?;
    Ok(NewStore { store, email, password, api_key })
}

pub async fn get(db: &Db, store: StoreId) -> Result<StoreRow, Error> {
    on_db!(db, |p| sqlx::query_as("SELECT * FROM stores WHERE id = $1").bind(store.0).fetch_optional(p).await)
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found("store"))
}

pub async fn list(db: &Db) -> Result<Vec<StoreRow>, Error> {
    on_db!(db, |p| sqlx::query_as("SELECT * FROM stores ORDER BY id").fetch_all(p).await).map_err(db_err)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorePatch {
    pub name: Option<String>,
    pub default_country: Option<String>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    pub sender_name: Option<String>,
}

pub async fn update(db: &Db, store: StoreId, patch: StorePatch, now: i64) -> Result<StoreRow, Error> {
    let name = patch.name.as_deref().map(tenant::validate_name).transpose()?;
    let country = patch.default_country.as_deref().map(tenant::validate_country).transpose()?;
    let timezone = patch.timezone.as_deref().map(tenant::validate_timezone).transpose()?;
    let language = patch.language.as_deref().map(tenant::validate_language).transpose()?;
    let sender = patch.sender_name.as_deref().map(validate_sender).transpose()?;
    let mut tx = db.begin().await?;
    // A new sender name waits for the operator unless it needs no approval (`senders`).
    let sender = match sender {
        Some(s) => super::senders::request_in(&mut tx, store, &s, now).await?,
        None => None,
    };
    let row = on_tx!(&mut tx, |c| sqlx::query_as(
        "UPDATE stores SET name = COALESCE($2, name), default_country = COALESCE($3, default_country),
            timezone = COALESCE($4, timezone), language = COALESCE($5, language),
            sender_name = COALESCE($6, sender_name), updated_at = $7
         WHERE id = $1 RETURNING *"
    )
    .bind(store.0)
    .bind(name)
    .bind(country)
    .bind(timezone)
    .bind(language)
    .bind(sender)
    .bind(now)
    .fetch_optional(c)
    .await)
    .map_err(db_err)?
    .ok_or_else(|| Error::not_found("store"))?;
    tx.commit().await?;
    Ok(row)
}

/// The operator sets a store's share of the provider's throughput while other stores have work
/// waiting: claims take turns between stores, `weight` claims each (see `queue::claim`).
pub async fn set_weight(db: &Db, store: StoreId, weight: i64, now: i64) -> Result<serde_json::Value, Error> {
    if !(1..=100).contains(&weight) {
        return Err(Error::invalid_field("weight", "weight must be a whole number from 1 to 100 (1 is every store's default)."));
    }
    get(db, store).await?;
    on_db!(db, |p| sqlx::query(
        "INSERT INTO store_weights (store_id, weight) VALUES ($1, $2) ON CONFLICT (store_id) DO UPDATE SET weight = excluded.weight"
    )
    .bind(store.0)
    .bind(weight)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    tracing::info!(store = store.0, weight, at = now, "store weight set");
    Ok(serde_json::json!({"store_id": store.0, "weight": weight}))
}

/// The stores the operator weighted (every other store has weight 1).
pub async fn weights(db: &Db) -> Result<std::collections::HashMap<i64, i64>, Error> {
    let rows: Vec<(i64, i64)> =
        on_db!(db, |p| sqlx::query_as("SELECT store_id, weight FROM store_weights").fetch_all(p).await).map_err(db_err)?;
    Ok(rows.into_iter().collect())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreJson {
    pub id: i64,
    pub name: String,
    pub default_country: String,
    pub timezone: String,
    pub language: String,
    pub sender_name: String,
    pub created_at: String,
    pub updated_at: String,
    /// The store's own view (`/api/store`) adds its latest sender name request, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::senders::SenderRequestJson>)]
    pub sender_request: Option<Option<serde_json::Value>>,
}

impl From<StoreRow> for StoreJson {
    fn from(r: StoreRow) -> Self {
        use crate::domain::time::rfc3339;
        StoreJson {
            id: r.id,
            name: r.name,
            default_country: r.default_country,
            timezone: r.timezone,
            language: r.language,
            sender_name: r.sender_name,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            sender_request: None,
        }
    }
}
