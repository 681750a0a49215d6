//! One tenant must not be able to hurt the others, nor its own data leak: bounded bulk edits and
//! searches, segments that match Greek names on both databases, private upload spools, request
//! bodies bounded on every route, hourly limits on costly actions that hold across nodes.

use crate::contacts::list_all;
use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, WEBHOOK_SECRET, assert_error, campaign, seed};
use serde_json::{Value, json};

/// Imports `n` contacts and returns their ids.
async fn many_contacts(t: &TestApp, key: &str, n: usize) -> Vec<i64> {
    let mut csv = String::from("phone\n");
    for i in 0..n {
        csv.push_str(&format!("+3069{:08}\n", 20_000_000 + i));
    }
    let (st, r) = t.import_csv(key, &csv).await;
    assert_eq!((st.as_u16(), r["created"].as_u64()), (200, Some(n as u64)), "{r}");
    list_all(t, key, "", 500).await.iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

async fn tag_count(t: &TestApp, key: &str, tag: &str) -> usize {
    list_all(t, key, &format!("tag={tag}"), 500).await.len()
}

async fn bulk_tag_edits_are_bounded(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Bulk Limits").await;
    let ids = many_contacts(&t, &s.key, 3_000).await;
    // The largest edit allowed: every id, twenty tags, in one request.
    let tags: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let (st, r) = t.post("/api/contacts/tags", &s.key, json!({"ids": ids, "add": tags})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["updated"], 3_000);
    assert_eq!(tag_count(&t, &s.key, "t0").await, 3_000);
    assert_eq!(tag_count(&t, &s.key, "t19").await, 3_000);
    // Removing and adding at once, on a part of them, with ids of nobody mixed in.
    let mut some: Vec<i64> = ids[..1_000].to_vec();
    some.extend([999_999_998, 999_999_999]);
    let remove: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let (st, r) = t.post("/api/contacts/tags", &s.key, json!({"ids": some, "add": ["fresh"], "remove": remove})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!((r["updated"].as_u64(), r["not_found"].clone()), (Some(1_000), json!([999_999_998, 999_999_999])));
    assert_eq!(tag_count(&t, &s.key, "t0").await, 2_000);
    assert_eq!(tag_count(&t, &s.key, "t10").await, 3_000);
    assert_eq!(tag_count(&t, &s.key, "fresh").await, 1_000);
    // Another store's ids are not found and not touched.
    let other = t.store("Bulk Other").await;
    let (st, r) = t.post("/api/contacts/tags", &other.key, json!({"ids": &ids[..5], "add": ["stolen"]})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["updated"], 0);
    assert_eq!(tag_count(&t, &s.key, "stolen").await, 0);

    // Beyond the limits: a clear 400 and nothing changed.
    let too_many_ids: Vec<i64> = (1..=10_001).collect();
    let twenty_one: Vec<String> = (0..21).map(|i| format!("x{i}")).collect();
    for (body, code, field) in [
        (json!({"ids": too_many_ids, "add": ["x"]}), "too_many_ids", "ids"),
        (json!({"ids": [ids[0]], "add": twenty_one}), "too_many_tags", "add"),
        (json!({"ids": [ids[0]], "add": ["x"], "remove": twenty_one}), "too_many_tags", "remove"),
    ] {
        let (st, e) = t.post("/api/contacts/tags", &s.key, body).await;
        assert_error(st, &e, 400, code);
        assert_eq!(e["details"]["field"], field, "{e}");
    }
    assert_eq!(tag_count(&t, &s.key, "x0").await, 0);
    assert_eq!(tag_count(&t, &s.key, "x").await, 0);
}

async fn contact_search_is_bounded(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Search Limit").await;
    let (st, _) = t.post("/api/contacts", &s.key, json!({"phone": "6912345601", "first_name": "Μαρία"})).await;
    assert_eq!(st, 201);
    let (st, page) = t.get(&format!("/api/contacts?q={}", "α".repeat(100)), &s.key).await;
    assert_eq!(st, 200, "{page}");
    // Each character of a search is work for the database: long ones are refused.
    let (st, e) = t.get(&format!("/api/contacts?q={}", "α".repeat(101)), &s.key).await;
    assert_error(st, &e, 400, "query_too_long");
    assert_eq!((e["details"]["field"].as_str(), e["details"]["max"].as_u64()), (Some("q"), Some(100)));
}

/// Preview recipients of a segment with these rules.
async fn recipients(t: &TestApp, key: &str, rules: Value) -> i64 {
    let name = format!("seg {}", smscast::secrets::random_token(8));
    let (st, seg) = t.post("/api/segments", key, json!({"name": name, "match": "all", "rules": rules})).await;
    assert_eq!(st, 201, "{seg}");
    let (st, c) =
        t.post("/api/campaigns", key, json!({"name": name, "message": "Hi", "audience": {"kind": "segment", "id": seg["id"]}})).await;
    assert_eq!(st, 201, "{c}");
    let (st, p) = t.get(&format!("/api/campaigns/{}/preview", c["id"]), key).await;
    assert_eq!(st, 200, "{p}");
    p["recipients"].as_i64().unwrap()
}

async fn segment_rules_match_greek_names_on_both_databases(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Greek Segments").await;
    let csv = "phone,first_name,last_name,consent\n6911111111,Μαρία,Παπαδοπούλου,yes\n6922222222,ΓΙΏΡΓΟΣ,Νικολάου,yes\n6933333333,Anna,Smith,yes\n6944444444,Σοφία,,yes\n";
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
    let rule = |field: &str, op: &str, value: &str| json!([{"field": field, "op": op, "value": value}]);
    for (rules, want) in [
        (rule("first_name", "eq", "μαρία"), 1),
        (rule("first_name", "eq", "ΜΑΡΊΑ"), 1),
        (rule("first_name", "eq", "Γιώργος"), 1),
        (rule("first_name", "starts_with", "γιώ"), 1),
        (rule("last_name", "contains", "ΠΟΎΛ"), 1),
        (rule("last_name", "contains", "ου"), 2),
        (rule("first_name", "starts_with", "σοφ"), 1),
        (rule("first_name", "eq", "ANNA"), 1),
        (rule("first_name", "eq", "μαρ"), 0),
        (rule("last_name", "contains", "%"), 0),
    ] {
        assert_eq!(recipients(&t, &s.key, rules.clone()).await, want, "{rules}");
    }
}

async fn upload_spools_are_private(b: Backend) {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncWriteExt;
    let t = TestApp::start(b).await;
    let s = t.store("Spool").await;
    // Start an upload and stop halfway: its spool is on disk while the rest is awaited. The
    // spool writes through a 256 KiB buffer, so send more than that, marked to find our file.
    let marker = format!("phone,first_name\n+306900000001,{}\n", smscast::secrets::random_token(24));
    let mut body = marker.clone().into_bytes();
    while body.len() < 400 * 1024 {
        body.extend_from_slice(b"+306900000002,Filler\n");
    }
    let addr = t.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/contacts/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        s.key,
        body.len() + 1_000
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body).await.unwrap();
    sock.flush().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let spool = loop {
        let found = std::fs::read_dir(std::env::temp_dir()).unwrap().flatten().find(|e| {
            e.file_name().to_string_lossy().starts_with("smscast-import-")
                && std::fs::read(e.path()).is_ok_and(|bytes| bytes.starts_with(marker.as_bytes()))
        });
        if let Some(f) = found {
            break f.path();
        }
        assert!(std::time::Instant::now() < deadline, "the spool of the upload appears");
        tokio::task::yield_now().await;
    };
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "other users cannot read a store's uploaded contacts: {mode:o}");
    drop(sock);
}

/// The largest JSON or form body (`http::MAX_BODY_BYTES`).
const MAX_BODY: usize = 1024 * 1024;

/// Every route that takes a body refuses one announced over its limit with 413 in the error
/// shape, before anything runs — routes that never read their body and unknown paths too; a body
/// streamed without a length is cut at the limit by whatever reads it. Nothing changes.
async fn bodies_over_the_limit_get_413_on_every_route(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Big Bodies").await;
    seed(&t, &s, 2, 100).await;
    let id = campaign(&t, &s, "Big").await;
    let before = (list_all(&t, &s.key, "", 500).await, t.get(&format!("/api/campaigns/{id}"), &s.key).await.1);
    let c = format!("/api/campaigns/{id}");
    let routes: Vec<(&str, String)> = [
        ("POST", "/api/login"),
        ("POST", "/api/logout"),
        ("PATCH", "/api/store"),
        ("PUT", "/api/store/keywords"),
        ("POST", "/api/keys"),
        ("DELETE", "/api/keys/1"),
        ("POST", "/api/keys/1/revoke"),
        ("POST", "/api/contacts"),
        ("POST", "/api/contacts/tags"),
        ("PATCH", "/api/contacts/1"),
        ("DELETE", "/api/contacts/1"),
        ("POST", "/api/admin/stores"),
        ("POST", "/api/admin/stores/1/credits"),
        ("PUT", "/api/admin/stores/1/weight"),
        ("POST", "/api/admin/senders/1/approve"),
        ("POST", "/api/admin/senders/1/reject"),
        ("DELETE", "/api/admin/keys/1"),
        ("POST", "/api/admin/keys/1/revoke"),
        ("PUT", "/api/admin/rate-limits"),
        ("POST", "/api/campaigns"),
        ("POST", "/api/segments"),
        ("PUT", "/api/segments/1"),
        ("PATCH", "/api/segments/1"),
        ("DELETE", "/api/segments/1"),
        ("POST", "/api/sms/analyze"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/lang"),
        ("POST", "/campaigns/new"),
        ("POST", "/contacts"),
        ("POST", "/contacts/1"),
        ("POST", "/settings"),
        ("POST", "/settings/keys"),
        ("POST", "/settings/keys/1/revoke"),
        ("POST", "/admin/login"),
        ("POST", "/admin/logout"),
        ("POST", "/admin/stores/1/credits"),
        ("POST", "/admin/rate-limits"),
        ("POST", "/admin/senders/1/approve"),
        ("POST", "/admin/senders/1/reject"),
        ("POST", "/u/abcdefghij"),
        ("POST", "/no/such/route"),
    ]
    .into_iter()
    .map(|(m, p)| (m, p.to_string()))
    .chain(["PATCH", "DELETE"].map(|m| (m, c.clone())))
    .chain(["send", "enqueue", "test", "cancel", "pause", "resume", "retry-failed", "resend-unknown"].map(|a| ("POST", format!("{c}/{a}"))))
    .chain(["edit", "send", "cancel", "pause", "resume", "retry-failed"].map(|a| ("POST", format!("/campaigns/{id}/{a}"))))
    .collect();
    let auth = format!("Authorization: Bearer {}", s.key);
    for (method, path) in &routes {
        let (st, e) = t.raw_request(method, path, &auth, "application/json", Some(MAX_BODY + 1), b"{}").await;
        assert_error(st, &e, 413, "payload_too_large");
        assert_eq!(e["details"]["max_bytes"], MAX_BODY, "{method} {path}");
    }
    // The webhooks have limits of their own.
    let secret = format!("X-Webhook-Secret: {WEBHOOK_SECRET}");
    for (path, max) in [("/webhooks/mitto/dlr", 1024 * 1024), ("/webhooks/mitto/inbound", 256 * 1024)] {
        for declared in [Some(max + 1), None] {
            let (st, e) = t.raw_post_with(path, &secret, "application/json", declared, &vec![b' '; max + 1]).await;
            assert_error(st, &e, 413, "payload_too_large");
            assert_eq!(e["details"]["max_bytes"], max, "{path}");
        }
    }
    // Streamed without a length: JSON bodies and forms alike.
    let big_json = format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_BODY));
    let big_form = format!("email=a%40b.gr&password={}", "x".repeat(MAX_BODY));
    for (path, ct, body) in [
        ("/api/contacts", "application/json", &big_json),
        ("/api/login", "application/json", &big_json),
        ("/api/segments", "application/json", &big_json),
        ("/login", "application/x-www-form-urlencoded", &big_form),
        ("/admin/login", "application/x-www-form-urlencoded", &big_form),
        ("/lang", "application/x-www-form-urlencoded", &big_form),
    ] {
        let (st, e) = t.raw_post(path, &s.key, ct, None, body.as_bytes()).await;
        assert_error(st, &e, 413, "payload_too_large");
        assert_eq!(e["details"]["max_bytes"], MAX_BODY, "{path}");
    }
    // A route that reads its body as bytes (an optional JSON reason) is cut the same way.
    let (st, e) = t.raw_post("/api/admin/senders/1/reject", &t.admin_key, "application/json", None, big_json.as_bytes()).await;
    assert_error(st, &e, 413, "payload_too_large");
    assert_eq!(e["details"]["max_bytes"], MAX_BODY, "{e}");
    let after = (list_all(&t, &s.key, "", 500).await, t.get(&format!("/api/campaigns/{id}"), &s.key).await.1);
    assert_eq!(after, before, "nothing changed");
    // Under the limit, the same routes work as ever.
    let (st, r) = t.post("/api/contacts", &s.key, json!({"phone": "6912345690", "first_name": "x".repeat(100)})).await;
    assert_eq!(st, 201, "{r}");
}

/// A 429 in the error shape whose Retry-After header says what the details say: within the hour.
async fn assert_rate_limited(res: reqwest::Response) {
    let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (st, e) = (res.status(), res.json::<Value>().await.unwrap());
    assert_error(st, &e, 429, "rate_limited");
    assert_eq!(retry_after, e["details"]["retry_after"].as_u64(), "{e}");
    assert!(retry_after.is_some_and(|s| (1..=3600).contains(&s)), "{e}");
}

async fn create_key(t: &TestApp, url: &str, s: &TestStore, name: &str) -> reqwest::Response {
    t.client.post(format!("{url}/api/keys")).bearer_auth(&s.key).json(&json!({"name": name})).send().await.unwrap()
}

/// 20 keys an hour per store by default, counted in the database: keys made on two nodes count
/// together, the 21st is refused on either, another store is not affected, and the next hour
/// allows more.
async fn key_creation_is_limited_per_store_across_nodes(b: Backend) {
    let t = TestApp::start(b).await;
    let (s, other) = (t.store("Key Maker").await, t.store("Key Neighbour").await);
    let second = t.second_node().await;
    for i in 0..20 {
        let url = if i % 2 == 0 { t.url.clone() } else { second.url() };
        let res = create_key(&t, &url, &s, &format!("key {i}")).await;
        assert_eq!(res.status(), 201, "key {i}");
    }
    let keys = t.get("/api/keys", &s.key).await.1["items"].as_array().unwrap().len();
    for url in [t.url.clone(), second.url()] {
        assert_rate_limited(create_key(&t, &url, &s, "one too many").await).await;
    }
    assert_eq!(t.get("/api/keys", &s.key).await.1["items"].as_array().unwrap().len(), keys, "a refusal creates nothing");
    second.stop().await;
    assert_eq!(create_key(&t, &t.url, &other, "theirs").await.status(), 201);
    t.clock.advance(3_600_000);
    assert_eq!(create_key(&t, &t.url, &s, "next hour").await.status(), 201);
}

async fn imports_and_sends_are_limited_per_store(b: Backend) {
    let t = TestApp::start_with(b, |c| {
        c.limits.imports_per_hour = 2;
        c.limits.sends_per_hour = 2;
    })
    .await;
    let s = t.store("Busy Store").await;
    seed(&t, &s, 3, 1_000).await;
    let (st, r) = t.import_csv(&s.key, "phone\n6912345681\n").await;
    assert_eq!(st, 200, "{r}");
    let contacts = list_all(&t, &s.key, "", 500).await;
    let upload = || t.client.post(format!("{}/api/contacts/import", t.url)).bearer_auth(&s.key).header("content-type", "text/csv");
    let refused = upload().body("phone\n6912345682\n").send().await.unwrap();
    // Its body was never read, so its connection cannot carry another request.
    assert_eq!(refused.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    assert_rate_limited(refused).await;
    assert_eq!(list_all(&t, &s.key, "", 500).await, contacts, "a refused import imports nothing");

    let (a, bb) = (campaign(&t, &s, "First").await, campaign(&t, &s, "Second").await);
    let (st, r) = t.post(&format!("/api/campaigns/{a}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let (st, r) = t.post(&format!("/api/campaigns/{bb}/test"), &s.key, json!({"phones": ["6940000001"]})).await;
    assert_eq!(st, 202, "{r}");
    let wallet = t.get("/api/wallet", &s.key).await.1;
    let send = t.client.post(format!("{}/api/campaigns/{bb}/send", t.url)).bearer_auth(&s.key).json(&json!({})).send().await.unwrap();
    assert_rate_limited(send).await;
    assert_eq!(t.get(&format!("/api/campaigns/{bb}"), &s.key).await.1["status"], "draft", "a refused send starts nothing");
    assert_eq!(t.get("/api/wallet", &s.key).await.1, wallet, "and holds nothing");
    t.clock.advance(3_600_000);
    let (st, r) = t.post(&format!("/api/campaigns/{bb}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
}

dual!(
    bulk_tag_edits_are_bounded,
    contact_search_is_bounded,
    segment_rules_match_greek_names_on_both_databases,
    upload_spools_are_private,
    bodies_over_the_limit_get_413_on_every_route,
    key_creation_is_limited_per_store_across_nodes,
    imports_and_sends_are_limited_per_store
);
