//! `serve --demo`: one demo store with about 1,000 realistic contacts, seeded once.
//! Nothing is ever seeded without `--demo`.

use crate::domain::Error;
use crate::store::auth::{self, Actor};
use crate::store::import::{self, ImportContext};
use crate::store::stores::{self, CreateStore};
use crate::store::{Db, StoreId, db_err, on_db, on_tx};

pub struct DemoCredentials {
    pub store_id: i64,
    pub email: String,
    pub password: String,
    pub api_key: String,
    pub admin_key: String,
}

/// Names and tags of the demo store, also the benchmarks' generated contacts.
pub(crate) const FIRST: [&str; 24] = [
    "Γιώργος",
    "Μαρία",
    "Νίκος",
    "Ελένη",
    "Κώστας",
    "Κατερίνα",
    "Δημήτρης",
    "Σοφία",
    "Γιάννης",
    "Αναστασία",
    "Παναγιώτης",
    "Δέσποινα",
    "Χρήστος",
    "Ιωάννα",
    "Βασίλης",
    "Αθηνά",
    "Anna",
    "John",
    "Lukas",
    "Emma",
    "Sofia",
    "Marco",
    "Olivia",
    "Noah",
];
pub(crate) const LAST: [&str; 20] = [
    "Παπαδόπουλος",
    "Παπαδοπούλου",
    "Γεωργίου",
    "Οικονόμου",
    "Νικολάου",
    "Δημητρίου",
    "Ιωάννου",
    "Κωνσταντίνου",
    "Βασιλείου",
    "Αθανασίου",
    "Μαυρίδης",
    "Καραγιάννη",
    "Smith",
    "Müller",
    "Rossi",
    "Brown",
    "Schmidt",
    "Jones",
    "Dubois",
    "Novak",
];
pub(crate) const TAGS: [&str; 8] = ["vip", "athens", "thessaloniki", "newsletter", "summer-sale", "loyalty", "wholesale", "returning"];

/// A tiny deterministic generator: the demo data is the same on every machine.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The demo CSV: Greek mobiles in several spellings, some international numbers, a few bad rows.
fn demo_csv(rows: usize) -> String {
    let mut rng = Lcg(42);
    let mut out = String::from("phone,first_name,last_name,email,tags,consent\n");
    for i in 0..rows {
        let phone = match rng.next(20) {
            0 => format!("+44 7700 9{:05}", rng.next(100_000)),
            1 => format!("+49 151 {:08}", rng.next(100_000_000)),
            2 => format!("+357 99 {:06}", rng.next(1_000_000)),
            3 => format!("+1 (415) 555-{:04}", rng.next(10_000)),
            4 => format!("0030 69{}{:07}", 3 + rng.next(7), rng.next(10_000_000)),
            _ => format!("69{}{:07}", 3 + rng.next(7), 1_000_000 + i as u64 * 7919 % 8_999_999),
        };
        let first = FIRST[rng.next(FIRST.len() as u64) as usize];
        let last = LAST[rng.next(LAST.len() as u64) as usize];
        let email = if rng.next(3) == 0 { String::new() } else { format!("customer{i}@example.gr") };
        let tags: Vec<&str> = (0..rng.next(3)).map(|_| TAGS[rng.next(TAGS.len() as u64) as usize]).collect();
        let consent = match rng.next(10) {
            0 => "opted_out",
            1 | 2 => "unknown",
            _ => "opted_in",
        };
        out.push_str(&format!("{phone},{first},{last},{email},\"{}\",{consent}\n", tags.join(",")));
    }
    out
}

/// Seeds the demo store once; later runs return the credentials recorded the first time. The store,
/// its keys and the credentials are written in one transaction; the contacts and the credits come
/// after it and are idempotent (an upsert by phone, a top-up with a fixed key), and the credentials
/// are marked seeded last, so a first run that was interrupted is finished by the next one.
pub async fn ensure_demo(db: &Db, now: i64) -> Result<DemoCredentials, Error> {
    let existing: Option<(i64, String, String, String, String, bool)> =
        on_db!(db, |p| sqlx::query_as("SELECT store_id, email, password, api_key, admin_key, seeded FROM demo_credentials WHERE id = 1")
            .fetch_optional(p)
            .await)
        .map_err(db_err)?;
    let creds = match existing {
        Some((store_id, email, password, api_key, admin_key, seeded)) => {
            let creds = DemoCredentials { store_id, email, password, api_key, admin_key };
            if seeded {
                return Ok(creds);
            }
            creds
        }
        None => {
            let mut tx = db.begin().await?;
            let created = stores::create_in(
                &mut tx,
                now,
                CreateStore {
                    name: "Demo Store",
                    email: "demo@smscast.local",
                    country: "GR",
                    language: "el",
                    timezone: "Europe/Athens",
                    sender_name: Some("DemoStore"),
                },
            )
            .await?;
            let admin_key = auth::create_admin_key_in(&mut tx, "demo operator", now).await?;
            on_tx!(&mut tx, |c| sqlx::query(
                "INSERT INTO demo_credentials (id, store_id, email, password, api_key, admin_key, seeded) VALUES (1, $1, $2, $3, $4, $5, FALSE)"
            )
            .bind(created.store.id)
            .bind(&created.email)
            .bind(&created.password)
            .bind(&created.api_key)
            .bind(&admin_key)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
            .map_err(db_err)?;
            tx.commit().await?;
            DemoCredentials {
                store_id: created.store.id,
                email: created.email,
                password: created.password,
                api_key: created.api_key,
                admin_key,
            }
        }
    };
    let store = StoreId(creds.store_id);
    let ctx = ImportContext { db: db.clone(), store, country: phonenumber::country::Id::GR, actor: Actor::System("demo"), now };
    import::import(ctx, std::io::Cursor::new(demo_csv(1000).into_bytes()), |_| {}).await?;
    let mut tx = db.begin().await?;
    crate::store::ledger::top_up(&mut tx, store, 5_000, "Demo credits", "demo-top-up", now).await?;
    on_tx!(&mut tx, |c| sqlx::query("UPDATE demo_credentials SET seeded = TRUE WHERE id = 1").execute(c).await.map(|r| r.rows_affected()))
        .map_err(db_err)?;
    tx.commit().await?;
    Ok(creds)
}
