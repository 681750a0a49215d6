//! `store::audience::stream` against a plain query: every matching contact exactly once, in id
//! order, with its fields intact — across SQLite's pages (it reads 2,000 contacts per page) and
//! PostgreSQL's single statement, for an audience with binds (tags) and without.

use crate::dual;
use crate::harness::Backend;
use crate::ledger::TempDb;
use smscast::domain::campaign::Audience;
use smscast::store::audience::{self, Member};
use smscast::store::{StoreId, on_db, on_tx, stores};

type Row = (i64, String, Option<String>, Option<String>, String, bool);

fn row(m: Member) -> Row {
    (m.id, m.phone, m.first_name, m.last_name, m.consent, m.mobile)
}

async fn stream_matches_a_plain_query(b: Backend) {
    let t = TempDb::new(b, 4).await;
    let mut ids = Vec::new();
    for name in ["Other", "Streamed"] {
        let email = format!("{}@example.test", name.to_lowercase());
        let s = stores::create(
            &t.db,
            0,
            stores::CreateStore { name, email: &email, country: "GR", language: "el", timezone: "Europe/Athens", sender_name: None },
        )
        .await
        .expect("store");
        ids.push(s.store.id);
    }
    let (other, store) = (ids[0], ids[1]);
    // 4,500 contacts of the store interleaved with another store's, with awkward names.
    let names = [Some("Μαρία"), None, Some("O'Brien \"Jr\""), Some("emoji 🎉 \\ back"), Some(""), Some("Ζωή\nνέα γραμμή")];
    let consents = ["opted_in", "opted_out", "unknown"];
    let mut tx = t.db.begin().await.expect("begin");
    for i in 0..4_500i64 {
        let owner = if i % 10 == 3 { other } else { store };
        let first = names[(i % 6) as usize];
        let last = names[((i / 6) % 6) as usize];
        let consent = consents[(i % 7 % 3) as usize];
        on_tx!(&mut tx, |p| sqlx::query(
            "INSERT INTO contacts (store_id, phone, mobile, first_name, last_name, consent, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0)"
        )
        .bind(owner)
        .bind(format!("+3069{i:08}"))
        .bind(i % 11 != 0)
        .bind(first)
        .bind(last)
        .bind(consent)
        .execute(p)
        .await
        .map(|_| ()))
        .expect("contact");
        if i % 3 == 0 {
            on_tx!(&mut tx, |p| sqlx::query(
                "INSERT INTO contact_tags (contact_id, store_id, tag) SELECT id, store_id, 'vip' FROM contacts WHERE phone = $1"
            )
            .bind(format!("+3069{i:08}"))
            .execute(p)
            .await
            .map(|_| ()))
            .expect("tag");
        }
    }
    tx.commit().await.expect("commit");
    let store = StoreId(store);
    for (audience, sql) in [
        (
            Audience::All,
            "SELECT c.id, c.phone, c.first_name, c.last_name, c.consent, c.mobile FROM contacts c WHERE c.store_id = $1 ORDER BY c.id",
        ),
        (
            Audience::Tags { any: vec!["vip".into()], all: vec![] },
            "SELECT c.id, c.phone, c.first_name, c.last_name, c.consent, c.mobile FROM contacts c
             WHERE c.store_id = $1 AND EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = 'vip') ORDER BY c.id",
        ),
    ] {
        let want: Vec<Row> = on_db!(&t.db, |p| sqlx::query_as(sql).bind(store.0).fetch_all(p).await).expect("plain query");
        let f = audience::filter(&t.db, store, &audience).await.expect("filter");
        let mut got = Vec::new();
        audience::stream(&t.db, store, &f, |m| {
            got.push(row(m));
            Ok(())
        })
        .await
        .expect("stream");
        assert!(want.len() > 1_000, "{audience:?}: {} rows", want.len());
        assert_eq!(got.len(), want.len(), "{audience:?}");
        assert!(got == want, "{audience:?}: streamed contacts differ from the plain query");
    }
    // An empty audience streams nothing.
    let f = audience::filter(&t.db, store, &Audience::Tags { any: vec!["nobody".into()], all: vec![] }).await.expect("filter");
    let mut n = 0;
    audience::stream(&t.db, store, &f, |_| {
        n += 1;
        Ok(())
    })
    .await
    .expect("stream");
    assert_eq!(n, 0);
    t.close().await;
}

dual!(stream_matches_a_plain_query);
