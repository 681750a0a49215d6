//! Contacts through the JSON API: list filters, limits and keyset pagination, bulk tags, PATCH
//! semantics, validation of every field, phone parsing, body/content-type errors and the store's
//! settings.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Creates a contact and returns its id, failing the test on anything but 201.
pub async fn new_contact(t: &TestApp, key: &str, body: Value) -> i64 {
    let (st, c) = t.post("/api/contacts", key, body).await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// Every contact a query returns, walking `next_cursor` to the end; asserts no page is empty
/// except a lone first page and that no id comes twice.
pub async fn list_all(t: &TestApp, key: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            None => format!("/api/contacts?{query}{sep}limit={limit}"),
            Some(c) => format!("/api/contacts?{query}{sep}limit={limit}&cursor={c}"),
        };
        let (st, page) = t.get(&path, key).await;
        assert_eq!(st, 200, "{path}: {page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit, "{path}: page larger than limit");
        for it in items {
            assert!(seen.insert(it["id"].as_i64().unwrap()), "{path}: id {} came twice", it["id"]);
            out.push(it.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "{path}: a page with a next cursor is full");
                cursor = Some(c.to_string());
            }
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                return out;
            }
        }
    }
}

fn phones(items: &[Value]) -> Vec<&str> {
    items.iter().map(|c| c["phone"].as_str().unwrap()).collect()
}

async fn list_phones(t: &TestApp, key: &str, query: &str) -> Vec<String> {
    let (st, page) = t.get(&format!("/api/contacts?{query}"), key).await;
    assert_eq!(st, 200, "{query}: {page}");
    phones(page["items"].as_array().unwrap()).into_iter().map(str::to_string).collect()
}

async fn list_filters_by_consent_tag_and_text(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Filters").await;
    new_contact(
        &t,
        &s.key,
        json!({"phone": "6912345601", "first_name": "Maria", "last_name": "Papadopoulou", "email": "maria@shop.gr",
               "tags": ["vip"], "consent": "opted_in"}),
    )
    .await;
    new_contact(
        &t,
        &s.key,
        json!({"phone": "6912345602", "first_name": "John", "last_name": "Smith", "email": "John.Smith@Example.COM",
               "tags": ["VIP", "athens"], "consent": "opted_out"}),
    )
    .await;
    new_contact(&t, &s.key, json!({"phone": "+44 7911 123456", "first_name": "Eleni"})).await;
    // Another store's contacts never show up in these lists.
    let other = t.store("Other Filters").await;
    new_contact(&t, &other.key, json!({"phone": "6912345601", "first_name": "Maria", "tags": ["vip"], "consent": "opted_in"})).await;

    let (a, b_, c) = ("+306912345601", "+306912345602", "+447911123456");
    assert_eq!(list_phones(&t, &s.key, "").await, [a, b_, c], "no filter: everything, oldest first");
    assert_eq!(list_phones(&t, &s.key, "consent=opted_in").await, [a]);
    assert_eq!(list_phones(&t, &s.key, "consent=opted_out").await, [b_]);
    assert_eq!(list_phones(&t, &s.key, "consent=unknown").await, [c], "a contact created without consent is unknown");
    assert_eq!(list_phones(&t, &s.key, "tag=vip").await, [a, b_]);
    assert_eq!(list_phones(&t, &s.key, "tag=VIP").await, [a, b_], "tags are matched like they are stored: lower-cased");
    assert_eq!(list_phones(&t, &s.key, "tag=athens").await, [b_]);
    assert_eq!(list_phones(&t, &s.key, "tag=nobody").await, Vec::<String>::new());
    assert_eq!(list_phones(&t, &s.key, "consent=opted_in&tag=athens").await, Vec::<String>::new(), "filters combine with AND");
    assert_eq!(list_phones(&t, &s.key, "consent=opted_out&tag=athens").await, [b_]);
    // Free text: first name, last name, the full name, email and phone, in any case.
    assert_eq!(list_phones(&t, &s.key, "q=maria").await, [a]);
    assert_eq!(list_phones(&t, &s.key, "q=MARIA").await, [a]);
    assert_eq!(list_phones(&t, &s.key, "q=papadop").await, [a]);
    assert_eq!(list_phones(&t, &s.key, "q=maria%20papa").await, [a], "first and last name together");
    assert_eq!(list_phones(&t, &s.key, "q=john.smith@example.com").await, [b_], "email, case-insensitive");
    assert_eq!(list_phones(&t, &s.key, "q=SHOP.GR").await, [a]);
    assert_eq!(list_phones(&t, &s.key, "q=345602").await, [b_], "part of the phone number");
    assert_eq!(list_phones(&t, &s.key, "q=%2B4479").await, [c], "with the + of E.164");
    assert_eq!(list_phones(&t, &s.key, "q=elENI").await, [c]);
    assert_eq!(list_phones(&t, &s.key, "q=%20%20").await, [a, b_, c], "a blank search is no search");
    // LIKE wildcards typed by a user are plain characters.
    assert_eq!(list_phones(&t, &s.key, "q=%25").await, Vec::<String>::new());
    assert_eq!(list_phones(&t, &s.key, "q=_").await, Vec::<String>::new());
    assert_eq!(list_phones(&t, &s.key, "q=nobody&consent=opted_in").await, Vec::<String>::new());

    // Bad filter values: 422 naming the parameter.
    let (st, body) = t.get("/api/contacts?consent=maybe", &s.key).await;
    assert_error(st, &body, 422, "invalid_consent");
    assert_eq!(body["details"]["field"], "consent");
    let (st, body) = t.get("/api/contacts?colour=red", &s.key).await;
    assert_error(st, &body, 422, "invalid_query");
    assert_eq!(body["details"]["field"], "colour");
    let (st, body) = t.get("/api/contacts?limit=ten", &s.key).await;
    assert_error(st, &body, 422, "invalid_query");
    assert_eq!(body["details"]["field"], "limit");
    let long_tag = "x".repeat(65);
    let (st, body) = t.get(&format!("/api/contacts?tag={long_tag}"), &s.key).await;
    assert_error(st, &body, 422, "invalid_tag");
    assert_eq!(body["details"]["field"], "tags");
}

async fn search_ignores_case_of_greek_names(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Greek Search").await;
    new_contact(&t, &s.key, json!({"phone": "6912345601", "first_name": "Μαρία", "last_name": "Παπαδοπούλου"})).await;
    new_contact(&t, &s.key, json!({"phone": "6912345602", "first_name": "Γιώργος"})).await;
    assert_eq!(list_phones(&t, &s.key, "q=Μαρία").await, ["+306912345601"]);
    assert_eq!(list_phones(&t, &s.key, "q=μαρία").await, ["+306912345601"], "lower-case search finds a capitalised name");
    assert_eq!(list_phones(&t, &s.key, "q=ΠΑΠΑΔΟΠΟΎΛΟΥ").await, ["+306912345601"], "upper-case search finds it too");
    assert_eq!(list_phones(&t, &s.key, "q=γιώργος").await, ["+306912345602"]);
}

async fn limit_must_be_between_1_and_500(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Limits").await;
    new_contact(&t, &s.key, json!({"phone": "6912345601"})).await;
    for bad in ["0", "501", "-1", "100000"] {
        let (st, body) = t.get(&format!("/api/contacts?limit={bad}"), &s.key).await;
        assert_error(st, &body, 422, "invalid_limit");
        assert_eq!(body["details"]["field"], "limit", "limit={bad}");
        assert!(body["message"].as_str().unwrap().contains("500"), "the message gives the range: {body}");
    }
    for good in ["1", "500"] {
        let (st, body) = t.get(&format!("/api/contacts?limit={good}"), &s.key).await;
        assert_eq!(st, 200, "limit={good}: {body}");
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        assert!(body["next_cursor"].is_null());
    }
    for bad in ["abc", "-5", "1.5"] {
        let (st, body) = t.get(&format!("/api/contacts?cursor={bad}"), &s.key).await;
        assert_error(st, &body, 422, "invalid_cursor");
    }
}

async fn keyset_pagination_walks_every_contact_once(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Pages").await;
    let mut csv = String::from("phone,first_name,tags\n");
    for i in 0..237 {
        csv.push_str(&format!("69{:08},Person {i},{}\n", 10_000_000 + i, if i % 3 == 0 { "third" } else { "" }));
    }
    let (st, r) = t.import_csv(&s.key, &csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["created"], 237);

    // The default page is 50 and says where to continue.
    let (_, first) = t.get("/api/contacts", &s.key).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    assert!(first["next_cursor"].is_string(), "{}", first["next_cursor"]);

    for limit in [1, 50, 100, 237, 500] {
        let all = list_all(&t, &s.key, "", limit).await;
        assert_eq!(all.len(), 237, "limit {limit}");
        let ids: Vec<i64> = all.iter().map(|c| c["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "limit {limit}: stable order");
        let names: HashSet<&str> = all.iter().map(|c| c["first_name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 237, "limit {limit}: every contact, none missed");
    }
    // Exactly 2 pages of 100 and one of 37.
    let (_, p1) = t.get("/api/contacts?limit=100", &s.key).await;
    let c1 = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = t.get(&format!("/api/contacts?limit=100&cursor={c1}"), &s.key).await;
    let c2 = p2["next_cursor"].as_str().unwrap().to_string();
    let (_, p3) = t.get(&format!("/api/contacts?limit=100&cursor={c2}"), &s.key).await;
    assert_eq!(p3["items"].as_array().unwrap().len(), 37);
    assert!(p3["next_cursor"].is_null());

    // Paging through a filter.
    let thirds = list_all(&t, &s.key, "tag=third", 7).await;
    assert_eq!(thirds.len(), 79);
    assert!(thirds.iter().all(|c| c["tags"] == json!(["third"])));

    // Keyset pages stay correct while the list changes under the reader: deleting contacts on
    // pages already read or not yet read neither repeats nor skips anyone.
    let (_, p1) = t.get("/api/contacts?limit=100", &s.key).await;
    let page1: Vec<i64> = p1["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (st, _) = t.delete(&format!("/api/contacts/{}", page1[0]), &s.key).await;
    assert_eq!(st, 204);
    let (_, p2) = t.get(&format!("/api/contacts?limit=100&cursor={cursor}"), &s.key).await;
    let page2: Vec<i64> = p2["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(page2.len(), 100);
    assert!(page2[0] > *page1.last().unwrap(), "the second page starts right after the first");
}

async fn bulk_tags_add_and_remove(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Bulk").await;
    let a = new_contact(&t, &s.key, json!({"phone": "6912345601", "tags": ["old"]})).await;
    let b_ = new_contact(&t, &s.key, json!({"phone": "6912345602"})).await;
    let c = new_contact(&t, &s.key, json!({"phone": "6912345603", "tags": ["promo"]})).await;
    let tags = |id: i64| {
        let t = &t;
        let key = s.key.clone();
        async move {
            let (st, body) = t.get(&format!("/api/contacts/{id}"), &key).await;
            assert_eq!(st, 200);
            let mut v: Vec<String> = body["tags"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            v.sort();
            v
        }
    };

    let (st, r) = t.post("/api/contacts/tags", &s.key, json!({"ids": [a, b_, 999_999], "add": ["Promo", " summer "]})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["updated"], 2);
    assert_eq!(r["not_found"], json!([999_999]));
    assert_eq!(tags(a).await, ["old", "promo", "summer"]);
    assert_eq!(tags(b_).await, ["promo", "summer"]);
    assert_eq!(tags(c).await, ["promo"], "contacts not named are untouched");

    // Adding a tag a contact already has is harmless.
    let (st, r) = t.post("/api/contacts/tags", &s.key, json!({"ids": [a, c], "add": ["promo"]})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(tags(a).await, ["old", "promo", "summer"]);
    assert_eq!(tags(c).await, ["promo"]);

    // Add and remove in one request; removing a tag a contact does not have is harmless.
    let (st, r) = t.post("/api/contacts/tags", &s.key, json!({"ids": [a, b_, c], "add": ["autumn"], "remove": ["SUMMER", "old"]})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["updated"], 3);
    assert_eq!(r["not_found"], json!([]));
    assert_eq!(tags(a).await, ["autumn", "promo"]);
    assert_eq!(tags(b_).await, ["autumn", "promo"]);
    assert_eq!(tags(c).await, ["autumn", "promo"]);
    assert_eq!(list_phones(&t, &s.key, "tag=summer").await, Vec::<String>::new());
    assert_eq!(list_phones(&t, &s.key, "tag=autumn").await.len(), 3);

    // A deleted contact's tags go with it (tags have no foreign key to cascade).
    let (st, _) = t.delete(&format!("/api/contacts/{c}"), &s.key).await;
    assert_eq!(st, 204);
    assert_eq!(list_phones(&t, &s.key, "tag=autumn").await.len(), 2);
    let (left,): (i64,) = smscast::store::on_db!(t.db(), |p| sqlx::query_as("SELECT COUNT(*) FROM contact_tags WHERE contact_id = $1")
        .bind(c)
        .fetch_one(p)
        .await)
    .unwrap();
    assert_eq!(left, 0, "no tag rows are left behind");

    // Bad requests change nothing.
    for (body, status, code, field) in [
        (json!({"ids": [], "add": ["x"]}), 422, "invalid_field", "ids"),
        (json!({"ids": [a]}), 422, "invalid_field", "add"),
        (json!({"ids": [a], "add": ["  "]}), 422, "invalid_tag", "tags"),
        (json!({"ids": [a], "add": ["y".repeat(65)]}), 422, "invalid_tag", "tags"),
        (json!({"ids": "all", "add": ["x"]}), 422, "invalid_field", "ids"),
        (json!({"ids": [a], "add": "x"}), 422, "invalid_field", "add"),
        (json!({"add": ["x"]}), 422, "invalid_field", "ids"),
        (json!({"ids": [a], "add": ["x"], "everyone": true}), 422, "invalid_field", "everyone"),
    ] {
        let (st, r) = t.post("/api/contacts/tags", &s.key, body.clone()).await;
        assert_error(st, &r, status, code);
        assert_eq!(r["details"]["field"], field, "{body}");
    }
    assert_eq!(tags(a).await, ["autumn", "promo"]);
}

async fn patch_is_partial_and_null_clears(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Patch").await;
    let id = new_contact(
        &t,
        &s.key,
        json!({"phone": "6912345601", "first_name": "Maria", "last_name": "Papa", "email": "maria@shop.gr",
               "tags": ["vip", "athens"], "consent": "opted_in"}),
    )
    .await;
    let other = new_contact(&t, &s.key, json!({"phone": "6912345699"})).await;
    let path = format!("/api/contacts/{id}");
    let (_, original) = t.get(&path, &s.key).await;
    for key in ["id", "phone", "first_name", "last_name", "email", "tags", "consent", "consent_changed_at", "created_at", "updated_at"] {
        assert!(original.get(key).is_some(), "a contact has {key}: {original}");
    }

    // An empty patch changes nothing a user can see.
    let (st, same) = t.patch(&path, &s.key, json!({})).await;
    assert_eq!(st, 200, "{same}");
    for key in ["phone", "first_name", "last_name", "email", "tags", "consent", "consent_changed_at", "created_at"] {
        assert_eq!(same[key], original[key], "{key}");
    }

    // Missing keeps, null clears.
    let (st, p) = t.patch(&path, &s.key, json!({"first_name": null, "email": null})).await;
    assert_eq!(st, 200, "{p}");
    assert!(p["first_name"].is_null());
    assert!(p["email"].is_null());
    assert_eq!(p["last_name"], "Papa");
    assert_eq!(p["tags"], json!(["athens", "vip"]), "tags are listed alphabetically");
    assert_eq!(p["consent"], "opted_in");
    assert_eq!(p["phone"], "+306912345601");
    let (_, stored) = t.get(&path, &s.key).await;
    assert_eq!(stored, p, "the answer is what is stored");

    // Tags are replaced as a whole; an empty list clears them.
    let (_, p) = t.patch(&path, &s.key, json!({"tags": ["Summer"]})).await;
    assert_eq!(p["tags"], json!(["summer"]));
    let (_, p) = t.patch(&path, &s.key, json!({"tags": []})).await;
    assert_eq!(p["tags"], json!([]));

    // A new phone number is parsed and stored as E.164.
    let (st, p) = t.patch(&path, &s.key, json!({"phone": "0030 691 234 5602", "first_name": "Μαρία"})).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["phone"], "+306912345602");
    assert_eq!(p["first_name"], "Μαρία");
    assert_eq!(p["last_name"], "Papa");

    // Setting the same consent again is not a change.
    let (_, before) = t.get(&path, &s.key).await;
    let (_, p) = t.patch(&path, &s.key, json!({"consent": "opted_in"})).await;
    assert_eq!(p["consent_changed_at"], before["consent_changed_at"]);
    let (_, h) = t.get(&format!("{path}/consent-history"), &s.key).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1, "{h}");

    // Bad values: 422 naming the field, and nothing changes.
    let (_, before) = t.get(&path, &s.key).await;
    for (body, code, field) in [
        (json!({"phone": "69123abc78"}), "invalid_phone", "phone"),
        (json!({"phone": ""}), "invalid_phone", "phone"),
        (json!({"phone": null}), "invalid_field", "phone"),
        (json!({"email": "not-an-email"}), "invalid_email", "email"),
        (json!({"email": "a@b"}), "invalid_email", "email"),
        (json!({"first_name": "x".repeat(101)}), "invalid_field", "first_name"),
        (json!({"last_name": "y".repeat(101)}), "invalid_field", "last_name"),
        (json!({"nickname": "Mimi"}), "invalid_field", "nickname"),
        (json!({"first_name": 5}), "invalid_field", "first_name"),
        (json!({"tags": "vip"}), "invalid_field", "tags"),
        (json!({"tags": ["ok", 3]}), "invalid_field", "tags[1]"),
        (json!({"tags": [""]}), "invalid_tag", "tags"),
        (json!({"consent": "maybe"}), "invalid_field", "consent"),
        (json!({"consent": null}), "invalid_field", "consent"),
        (json!({"consent": true}), "invalid_field", "consent"),
        // A valid change beside a bad one is not applied either.
        (json!({"first_name": "Changed", "email": "bad"}), "invalid_email", "email"),
    ] {
        let (st, r) = t.patch(&path, &s.key, body.clone()).await;
        assert_error(st, &r, 422, code);
        assert_eq!(r["details"]["field"], field, "{body}: {r}");
    }
    let (st, r) = t.patch(&path, &s.key, json!({"phone": "+30 691 234 5699"})).await;
    assert_error(st, &r, 409, "duplicate_phone");
    assert_eq!(r["details"]["field"], "phone");
    let (_, after) = t.get(&path, &s.key).await;
    assert_eq!(after, before, "failed patches change nothing");
    let (_, untouched) = t.get(&format!("/api/contacts/{other}"), &s.key).await;
    assert_eq!(untouched["phone"], "+306912345699");
}

async fn create_validates_every_field(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Create").await;
    let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": "6912345601"})).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["consent"], "unknown");
    assert!(c["consent_changed_at"].is_null(), "no consent was stated, so none changed: {c}");
    assert!(c["first_name"].is_null() && c["last_name"].is_null() && c["email"].is_null());
    assert_eq!(c["tags"], json!([]));
    // Blank strings are no value; names are trimmed.
    let (st, c) =
        t.post("/api/contacts", &s.key, json!({"phone": "6912345602", "first_name": "  Νίκος ", "last_name": "", "email": "  "})).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["first_name"], "Νίκος");
    assert!(c["last_name"].is_null());
    assert!(c["email"].is_null());

    for (body, code, field) in [
        (json!({}), "invalid_field", "phone"),
        (json!({"first_name": "No Phone"}), "invalid_field", "phone"),
        (json!({"phone": 6912345603_i64}), "invalid_field", "phone"),
        (json!({"phone": "6912345603", "email": "maria@"}), "invalid_email", "email"),
        (json!({"phone": "6912345603", "first_name": "x".repeat(101)}), "invalid_field", "first_name"),
        (json!({"phone": "6912345603", "tags": (0..51).map(|i| format!("t{i}")).collect::<Vec<_>>()}), "too_many_tags", ""),
        (json!({"phone": "6912345603", "consent": "yes"}), "invalid_field", "consent"),
        (json!({"phone": "6912345603", "mobile": "6912345603"}), "invalid_field", "mobile"),
        (json!({"phone": "6912345603", "tags": {"vip": true}}), "invalid_field", "tags"),
    ] {
        let (st, r) = t.post("/api/contacts", &s.key, body.clone()).await;
        assert_error(st, &r, 422, code);
        if !field.is_empty() {
            assert_eq!(r["details"]["field"], field, "{body}: {r}");
        }
    }
    let (st, r) = t.post("/api/contacts", &s.key, json!({"phone": "+30 691 234 5602"})).await;
    assert_error(st, &r, 409, "duplicate_phone");
    assert_eq!(list_all(&t, &s.key, "", 500).await.len(), 2, "nothing was created by the failures");
}

async fn phone_numbers_are_parsed_like_people_write_them(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Phones").await;
    let ok = [
        ("6912345601", "+306912345601"),
        ("691 234 5602", "+306912345602"),
        ("+30 691 234 5603", "+306912345603"),
        ("+306912345604", "+306912345604"),
        ("0030 6912345605", "+306912345605"),
        ("0030-691-234-5606", "+306912345606"),
        ("(+30) 691-234-5607", "+306912345607"),
        ("(691) 234.5608", "+306912345608"),
        ("  6912345609  ", "+306912345609"),
        ("210 123 4567", "+302101234567"),
        ("+44 7911 123456", "+447911123456"),
        ("+357 99 123456", "+35799123456"),
    ];
    for (raw, e164) in ok {
        let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": raw})).await;
        assert_eq!(st, 201, "{raw}: {c}");
        assert_eq!(c["phone"], e164, "{raw}");
    }
    // The same person written another way is the same contact.
    for raw in ["+30 691 234 5601", "00306912345601", "691-234-5601"] {
        let (st, r) = t.post("/api/contacts", &s.key, json!({"phone": raw})).await;
        assert_error(st, &r, 409, "duplicate_phone");
        assert_eq!(r["details"]["phone"], "+306912345601");
    }
    let bad = [
        ("69123abc78", "invalid_characters"),
        ("1-800-FLOWERS", "invalid_characters"),
        ("+30 691 234 5678 ext 1", "invalid_characters"),
        ("123", "too_short"),
        ("6912", "too_short"),
        ("+30 691234567812345678", "too_long"),
        ("", "empty"),
        ("   ", "empty"),
        ("+30 12345678", "invalid_number"),
        ("69123456789", "invalid_number"),
    ];
    for (raw, reason) in bad {
        let (st, r) = t.post("/api/contacts", &s.key, json!({"phone": raw})).await;
        assert_error(st, &r, 422, "invalid_phone");
        assert_eq!(r["details"]["field"], "phone", "{raw}");
        assert_eq!(r["details"]["reason"], reason, "{raw}: {r}");
    }
    assert_eq!(list_all(&t, &s.key, "", 500).await.len(), ok.len());

    // National numbers are read in the store's default country.
    let (st, _) = t.patch("/api/store", &s.key, json!({"default_country": "de"})).await;
    assert_eq!(st, 200);
    let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": "030 1234567"})).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["phone"], "+49301234567");
    let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": "+30 691 234 5610"})).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["phone"], "+306912345610", "international numbers keep their country");
}

async fn bodies_content_types_and_routes(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Bodies").await;
    let send = |method: Method, path: &str, ct: Option<&str>, body: &str| {
        let mut req = t.client.request(method, format!("{}{path}", t.url)).bearer_auth(&s.key).body(body.to_string());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        async move {
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for body in ["{\"phone\": ", "{phone: 1}", "{\"phone\": \"6912345601\"", "not json", "{\"phone\": \"1\"}}"] {
        let (st, r) = send(Method::POST, "/api/contacts", Some("application/json"), body).await;
        assert_error(st, &r, 400, "invalid_json");
    }
    let (st, r) = send(Method::POST, "/api/contacts", Some("application/json"), "").await;
    assert_error(st, &r, 400, "invalid_json");
    let (st, r) = send(Method::POST, "/api/contacts", Some("application/json"), "[]").await;
    assert_error(st, &r, 422, "invalid_field");
    let (st, r) = send(Method::POST, "/api/contacts", Some("application/json; charset=utf-8"), "{\"phone\": \"6912345601\"}").await;
    assert_eq!(st, 201, "a charset parameter is fine: {r}");
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let (st, r) = send(Method::POST, "/api/contacts", ct, "{\"phone\": \"6912345602\"}").await;
        assert_error(st, &r, 415, "unsupported_media_type");
    }
    let id = list_all(&t, &s.key, "", 10).await[0]["id"].as_i64().unwrap();
    let (st, r) = send(Method::PATCH, &format!("/api/contacts/{id}"), Some("text/plain"), "{}").await;
    assert_error(st, &r, 415, "unsupported_media_type");
    let (st, r) = send(Method::PATCH, &format!("/api/contacts/{id}"), Some("application/json"), "{\"first_name\": ").await;
    assert_error(st, &r, 400, "invalid_json");
    let huge = format!("{{\"phone\": \"6912345603\", \"first_name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // The server answers before the whole body has arrived and closes the connection.
    let (st, r) = t.raw_post("/api/contacts", &s.key, "application/json", Some(huge.len()), huge.as_bytes()).await;
    assert_error(st, &r, 413, "payload_too_large");

    // Unknown addresses, ids that are not numbers, methods a route does not have.
    for path in ["/api/nothing-here", "/api/contacts/abc", "/api/contacts/1/nope", "/nope", "/api/contacts/99999999999999999999"] {
        let (st, r) = t.get(path, &s.key).await;
        assert_error(st, &r, 404, "not_found");
    }
    let (st, r) = t.call(Method::GET, "/api/nothing-here", None, None).await;
    assert_error(st, &r, 404, "not_found");
    let (st, r) = t.call(Method::PUT, "/api/contacts", Some(&s.key), Some(json!({}))).await;
    assert_error(st, &r, 405, "method_not_allowed");
    let (st, r) = t.call(Method::DELETE, "/api/store", Some(&s.key), None).await;
    assert_error(st, &r, 405, "method_not_allowed");
}

async fn store_settings_get_and_patch(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Settings Shop").await;
    let (st, store) = t.get("/api/store", &s.key).await;
    assert_eq!(st, 200, "{store}");
    assert_eq!(store["id"], s.id);
    assert_eq!(store["name"], "Settings Shop");
    assert_eq!(store["default_country"], "GR");
    assert_eq!(store["timezone"], "Europe/Athens");
    assert_eq!(store["language"], "el");
    assert_eq!(store["sender_name"], "SettingsSho", "derived from the name, at most 11 characters");

    let (st, p) = t.patch("/api/store", &s.key, json!({"language": "EN", "sender_name": "MyShop"})).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["language"], "en");
    // A new sender name waits for the operator (senders.rs); the rest applies at once.
    assert_eq!((p["sender_name"].as_str(), p["sender_request"]["sender_name"].as_str()), (Some("SettingsSho"), Some("MyShop")));
    assert_eq!(p["name"], "Settings Shop", "PATCH keeps what it was not given");
    assert_eq!(p["timezone"], "Europe/Athens");
    let (st, p) = t.patch("/api/store", &s.key, json!({"timezone": "UTC", "default_country": "cy", "sender_name": "+306912345678"})).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["timezone"], "UTC");
    assert_eq!(p["default_country"], "CY");
    assert_eq!(p["sender_request"]["sender_name"], "+306912345678");

    let (_, before) = t.get("/api/store", &s.key).await;
    for (body, code, field) in [
        (json!({"name": ""}), "invalid_name", "name"),
        (json!({"name": "   "}), "invalid_name", "name"),
        (json!({"name": "n".repeat(101)}), "invalid_name", "name"),
        (json!({"default_country": "XX"}), "invalid_country", "default_country"),
        (json!({"default_country": "Greece"}), "invalid_country", "default_country"),
        (json!({"timezone": "Mars"}), "invalid_timezone", "timezone"),
        (json!({"timezone": "Europe/Athens; DROP TABLE stores"}), "invalid_timezone", "timezone"),
        (json!({"language": "fr"}), "invalid_language", "language"),
        (json!({"sender_name": "AB"}), "invalid_sender", "sender_name"),
        (json!({"sender_name": "Far Too Long Name"}), "invalid_sender", "sender_name"),
        (json!({"sender_name": "12345"}), "invalid_sender", "sender_name"),
        (json!({"name": 7}), "invalid_field", "name"),
        (json!({"owner": "me"}), "invalid_field", "owner"),
        (json!({"id": 2}), "invalid_field", "id"),
        (json!({"language": "en", "timezone": "nowhere"}), "invalid_timezone", "timezone"),
    ] {
        let (st, r) = t.patch("/api/store", &s.key, body.clone()).await;
        assert_error(st, &r, 422, code);
        assert_eq!(r["details"]["field"], field, "{body}: {r}");
    }
    let (_, after) = t.get("/api/store", &s.key).await;
    assert_eq!(after, before, "failed patches change nothing");
    let (st, r) = t.call(Method::GET, "/api/store", None, None).await;
    assert_error(st, &r, 401, "unauthorized");
}

dual!(
    list_filters_by_consent_tag_and_text,
    search_ignores_case_of_greek_names,
    limit_must_be_between_1_and_500,
    keyset_pagination_walks_every_contact_once,
    bulk_tags_add_and_remove,
    patch_is_partial_and_null_clears,
    create_validates_every_field,
    phone_numbers_are_parsed_like_people_write_them,
    bodies_content_types_and_routes,
    store_settings_get_and_patch,
);
