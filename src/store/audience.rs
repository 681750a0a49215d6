//! Turning an audience into SQL over contacts, and streaming the matching contacts.
//! Preview and send both read recipients through `stream`.

use super::{Db, StoreId, TextMatch, db_err, nocase_pattern, nocase_sql};
use crate::domain::Error;
use crate::domain::campaign::{Audience, Condition, Match, SegmentRules, TextOp, unknown_segment};
use futures_util::TryStreamExt;

/// A bind value for dynamically built SQL.
#[derive(Debug, Clone)]
pub enum Bind {
    Int(i64),
    Text(String),
}

/// A WHERE fragment over `contacts c` with its binds, numbered from `$2` (`$1` is the store).
#[derive(Clone)]
pub struct Filter {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Filter {
    fn push(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len() + 1)
    }
}

/// Resolves the audience (a segment is looked up in this store only) to a filter. Consent is
/// not part of it: the caller counts exclusions by consent.
pub async fn filter(db: &Db, store: StoreId, audience: &Audience) -> Result<Filter, Error> {
    let mut f = Filter { sql: String::new(), binds: Vec::new() };
    match audience {
        Audience::All => f.sql = "TRUE".into(),
        Audience::Tags { any, all } => {
            let mut parts = Vec::new();
            if !any.is_empty() {
                let ps: Vec<String> = any.iter().map(|t| f.push(Bind::Text(t.clone()))).collect();
                parts.push(format!("EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag IN ({}))", ps.join(",")));
            }
            for t in all {
                let p = f.push(Bind::Text(t.clone()));
                parts.push(format!("EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = {p})"));
            }
            f.sql = parts.join(" AND ");
        }
        Audience::Segment { id } => {
            let rules = super::segments::rules(db, store, *id).await?.ok_or_else(|| unknown_segment(*id))?;
            segment_sql(&rules, &mut f, db.is_postgres())?;
        }
    }
    Ok(f)
}

fn segment_sql(rules: &SegmentRules, f: &mut Filter, postgres: bool) -> Result<(), Error> {
    let mut parts = Vec::new();
    for cond in rules.conditions()? {
        parts.push(match cond {
            Condition::ConsentIs(c, yes) => format!("c.consent {} {}", if yes { "=" } else { "<>" }, f.push(Bind::Text(c.as_str().into()))),
            Condition::HasTag(t, yes) => {
                format!(
                    "{}EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = {})",
                    if yes { "" } else { "NOT " },
                    f.push(Bind::Text(t))
                )
            }
            Condition::Date(col, before, ms) => format!("c.{col} {} {}", if before { "<" } else { ">=" }, f.push(Bind::Int(ms))),
            Condition::Text(col, TextOp::IsEmpty, _) => format!("COALESCE(c.{col}, '') = ''"),
            Condition::Text(col, TextOp::NotEmpty, _) => format!("COALESCE(c.{col}, '') <> ''"),
            Condition::Text(col, op, v) => {
                let how = if op == TextOp::Eq {
                    TextMatch::Equals
                } else if op == TextOp::Contains {
                    TextMatch::Contains
                } else {
                    TextMatch::StartsWith
                };
                let p = f.push(Bind::Text(nocase_pattern(&v, how, postgres)));
                nocase_sql(&format!("COALESCE(c.{col}, '')"), &p, postgres)
            }
        });
    }
    let joiner = if rules.match_ == Match::Any { " OR " } else { " AND " };
    f.sql = format!("({})", parts.join(joiner));
    Ok(())
}

/// One contact of an audience, as the renderer needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct Member {
    pub id: i64,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub consent: String,
    pub mobile: bool,
}

/// `Member`'s columns in order.
type MemberRow = (i64, String, Option<String>, Option<String>, String, bool);

/// The same from SQLite's JSON pages, where booleans are 0/1.
type JsonMemberRow = (i64, String, Option<String>, Option<String>, String, i64);

/// Contacts per batch when `stream` reads.
const SQLITE_PAGE: usize = 2_000;

/// Streams every contact matching the filter, in id order, without holding them in memory (at
/// most a few pages of `SQLITE_PAGE` contacts): `spawn_batches`, read on the spot.
pub async fn stream(db: &Db, store: StoreId, f: &Filter, mut each: impl FnMut(Member) -> Result<(), Error>) -> Result<(), Error> {
    let (mut batches, reader) = spawn_batches(db.clone(), store, f.clone(), SQLITE_PAGE);
    while let Some(batch) = batches.recv().await {
        // An error here drops the receiver, which stops the reader.
        batch.into_iter().try_for_each(&mut each)?;
    }
    reader.await.map_err(Error::internal)?
}

/// One page of up to `limit` members after a contact id, as one JSON row (see `spawn_batches`).
fn sqlite_page_sql(f: &Filter, limit: usize) -> String {
    let after = f.binds.len() + 2;
    format!(
        "SELECT json_group_array(json_array(c.id, c.phone, c.first_name, c.last_name, c.consent, c.mobile) ORDER BY c.id)
         FROM (SELECT c.id, c.phone, c.first_name, c.last_name, c.consent, c.mobile FROM contacts c
               WHERE c.store_id = $1 AND {} AND c.id > ${after} ORDER BY c.id LIMIT {limit}) c",
        f.sql
    )
}

async fn sqlite_page(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    sql: &str,
    store: StoreId,
    f: &Filter,
    after: i64,
) -> Result<Vec<Member>, Error> {
    let mut q = sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql.to_string())).bind(store.0);
    for b in &f.binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(s) => q.bind(s.as_str()),
        };
    }
    let page = q.bind(after).fetch_one(&mut **tx).await.map_err(db_err)?;
    let rows: Vec<JsonMemberRow> = serde_json::from_str(page.as_deref().unwrap_or("[]")).map_err(Error::internal)?;
    Ok(rows
        .into_iter()
        .map(|(id, phone, first_name, last_name, consent, mobile)| Member {
            id,
            phone,
            first_name,
            last_name,
            consent,
            mobile: mobile != 0,
        })
        .collect())
}

/// Every contact matching the filter, in id order, in batches of up to `size` members over a
/// bounded channel from a task of its own, so the receiver can work on one batch (send
/// materializes messages this way) while the next is read, and memory stays bounded. The task's
/// result reports a read error.
pub fn spawn_batches(
    db: Db,
    store: StoreId,
    f: Filter,
    size: usize,
) -> (tokio::sync::mpsc::Receiver<Vec<Member>>, tokio::task::JoinHandle<Result<(), Error>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let task = tokio::spawn(async move {
        match &db {
            Db::Pg(p) => {
                let sql = format!(
                    "SELECT c.id, c.phone, c.first_name, c.last_name, c.consent, c.mobile FROM contacts c WHERE c.store_id = $1 AND {} ORDER BY c.id",
                    f.sql
                );
                // Decoded by position (a tuple), not by column name: a million rows add up.
                let mut q = sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(sql)).bind(store.0);
                for b in &f.binds {
                    q = match b {
                        Bind::Int(v) => q.bind(*v),
                        Bind::Text(s) => q.bind(s.as_str()),
                    };
                }
                let mut rows = q.fetch(p);
                let mut batch = Vec::with_capacity(size);
                while let Some((id, phone, first_name, last_name, consent, mobile)) = rows.try_next().await.map_err(db_err)? {
                    batch.push(Member { id, phone, first_name, last_name, consent, mobile });
                    if batch.len() == size && tx.send(std::mem::replace(&mut batch, Vec::with_capacity(size))).await.is_err() {
                        return Ok(()); // the receiver gave up (its transaction failed)
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch).await;
                }
                Ok(())
            }
            Db::Sqlite(p) => {
                // sqlx hands SQLite rows from the connection's worker thread to this task one at a
                // time, and for a million contacts that hand-off (two thread wake-ups per row)
                // costs more than reading and rendering them. So each batch comes back as one
                // JSON row, keyset-paginated by id; the pages share one read transaction, so they
                // see one snapshot, as PostgreSQL's single statement does.
                let sql = sqlite_page_sql(&f, size);
                let mut read = p.begin().await.map_err(db_err)?;
                let mut last = i64::MIN;
                loop {
                    let batch = sqlite_page(&mut read, &sql, store, &f, last).await?;
                    let full = batch.len() == size;
                    let Some(m) = batch.last() else { break };
                    last = m.id;
                    if tx.send(batch).await.is_err() {
                        return Ok(()); // the receiver gave up (its transaction failed)
                    }
                    if !full {
                        break;
                    }
                }
                read.commit().await.map_err(db_err)?;
                Ok(())
            }
        }
    });
    (rx, task)
}
