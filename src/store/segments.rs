//! Saved segments: named rule sets over a store's contacts.

use super::{Db, StoreId, db_err, is_unique_violation, on_db};
use crate::domain::Error;
use crate::domain::campaign::SegmentRules;
use crate::domain::time::rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    rules: String,
    created_at: i64,
    updated_at: i64,
}

fn to_json(r: Row) -> Value {
    let rules: Value = serde_json::from_str(&r.rules).unwrap_or(Value::Null);
    json!({"id": r.id, "name": r.name, "match": rules["match"], "rules": rules["rules"], "created_at": rfc3339(r.created_at), "updated_at": rfc3339(r.updated_at)})
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    pub name: String,
    #[serde(rename = "match", default)]
    pub match_: crate::domain::campaign::Match,
    pub rules: Vec<crate::domain::campaign::Rule>,
}

fn validate(input: SegmentInput) -> Result<(String, String), Error> {
    let name = crate::domain::campaign::validate_name(&input.name)?;
    let rules = SegmentRules { match_: input.match_, rules: input.rules };
    rules.conditions()?;
    Ok((name, serde_json::to_string(&rules).map_err(Error::internal)?))
}

fn duplicate(name: &str) -> Error {
    Error::conflict("duplicate_name", format!("A segment named \"{name}\" already exists.")).with_details(json!({"field": "name"}))
}

pub async fn create(db: &Db, store: StoreId, input: SegmentInput, now: i64) -> Result<Value, Error> {
    let (name, rules) = validate(input)?;
    let row: Result<Row, _> = on_db!(db, |p| {
        sqlx::query_as("INSERT INTO segments (store_id, name, rules, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id, name, rules, created_at, updated_at")
        .bind(store.0)
        .bind(&name)
        .bind(&rules)
        .bind(now)
        .fetch_one(p)
        .await
    });
    row.map(to_json).map_err(|e| if is_unique_violation(&e) { duplicate(&name) } else { db_err(e) })
}

pub async fn update(db: &Db, store: StoreId, id: i64, input: SegmentInput, now: i64) -> Result<Value, Error> {
    let (name, rules) = validate(input)?;
    let row: Result<Option<Row>, _> = on_db!(db, |p| {
        sqlx::query_as("UPDATE segments SET name = $3, rules = $4, updated_at = $5 WHERE id = $1 AND store_id = $2 RETURNING id, name, rules, created_at, updated_at")
        .bind(id)
        .bind(store.0)
        .bind(&name)
        .bind(&rules)
        .bind(now)
        .fetch_optional(p)
        .await
    });
    row.map_err(|e| if is_unique_violation(&e) { duplicate(&name) } else { db_err(e) })?
        .map(to_json)
        .ok_or_else(|| Error::not_found("segment"))
}

pub async fn get(db: &Db, store: StoreId, id: i64) -> Result<Value, Error> {
    let row: Option<Row> =
        on_db!(db, |p| sqlx::query_as("SELECT id, name, rules, created_at, updated_at FROM segments WHERE id = $1 AND store_id = $2")
            .bind(id)
            .bind(store.0)
            .fetch_optional(p)
            .await)
        .map_err(db_err)?;
    row.map(to_json).ok_or_else(|| Error::not_found("segment"))
}

pub async fn rules(db: &Db, store: StoreId, id: i64) -> Result<Option<SegmentRules>, Error> {
    let row: Option<(String,)> = on_db!(db, |p| sqlx::query_as("SELECT rules FROM segments WHERE id = $1 AND store_id = $2")
        .bind(id)
        .bind(store.0)
        .fetch_optional(p)
        .await)
    .map_err(db_err)?;
    row.map(|(r,)| serde_json::from_str(&r).map_err(Error::internal)).transpose()
}

pub async fn list(db: &Db, store: StoreId) -> Result<Value, Error> {
    let rows: Vec<Row> =
        on_db!(db, |p| sqlx::query_as("SELECT id, name, rules, created_at, updated_at FROM segments WHERE store_id = $1 ORDER BY id")
            .bind(store.0)
            .fetch_all(p)
            .await)
        .map_err(db_err)?;
    Ok(json!({"items": rows.into_iter().map(to_json).collect::<Vec<_>>()}))
}

pub async fn delete(db: &Db, store: StoreId, id: i64) -> Result<(), Error> {
    let n = on_db!(db, |p| sqlx::query("DELETE FROM segments WHERE id = $1 AND store_id = $2")
        .bind(id)
        .bind(store.0)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if n == 0 { Err(Error::not_found("segment")) } else { Ok(()) }
}
