//! Installation-wide settings kept in the database, so every process of a cluster shares them.

use super::{Db, Tx, db_err, on_db, on_tx};
use crate::domain::Error;
use crate::domain::unsubscribe::CodeKey;

const CODE_KEY: &str = "unsubscribe_code_key";

/// The key behind unsubscribe codes, created by whichever process needs it first (the losers of
/// a race read the winner's).
pub async fn code_key(tx: &mut Tx<'_>) -> Result<CodeKey, Error> {
    on_tx!(tx, |c| sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(CODE_KEY)
        .bind(crate::secrets::new_code_key().to_hex())
        .execute(c)
        .await
        .map(|_| ()))
    .map_err(db_err)?;
    let (hex,): (String,) =
        on_tx!(tx, |c| sqlx::query_as("SELECT value FROM settings WHERE name = $1").bind(CODE_KEY).fetch_one(c).await).map_err(db_err)?;
    CodeKey::from_hex(&hex).ok_or_else(|| Error::internal("the stored unsubscribe code key is malformed"))
}

/// The key, for reading codes back (claims, lists). It exists once anything was launched.
pub async fn read_code_key(db: &Db) -> Result<CodeKey, Error> {
    find_code_key(db).await?.ok_or_else(|| Error::internal("the unsubscribe code key is missing"))
}

/// The key if one was ever created: before the first launch no code names anything.
pub async fn find_code_key(db: &Db) -> Result<Option<CodeKey>, Error> {
    let hex: Option<String> =
        on_db!(db, |p| sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(CODE_KEY).fetch_optional(p).await)
            .map_err(db_err)?;
    hex.map(|h| CodeKey::from_hex(&h).ok_or_else(|| Error::internal("the stored unsubscribe code key is malformed"))).transpose()
}
