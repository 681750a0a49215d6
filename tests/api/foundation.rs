//! Stores, keys, contacts and the error shape: the basics every other test stands on.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error};
use serde_json::json;

async fn contact_round_trip(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Round Trip").await;
    let (st, c) = t
        .post(
            "/api/contacts",
            &s.key,
            json!({"phone": "+30 691 234 5678", "first_name": "Μαρία", "tags": ["VIP", "athens"], "consent": "opted_in"}),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["phone"], "+306912345678");
    assert_eq!(c["tags"], json!(["vip", "athens"]));
    assert_eq!(c["consent"], "opted_in");
    let id = c["id"].as_i64().unwrap();
    // The same person written another way is the same contact.
    let (st, dup) = t.post("/api/contacts", &s.key, json!({"phone": "0030 6912345678"})).await;
    assert_error(st, &dup, 409, "duplicate_phone");
    let (st, p) =
        t.patch(&format!("/api/contacts/{id}"), &s.key, json!({"last_name": "Παπαδοπούλου", "email": null, "consent": "opted_out"})).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["first_name"], "Μαρία", "PATCH keeps what it was not given");
    assert_eq!(p["last_name"], "Παπαδοπούλου");
    assert_eq!(p["consent"], "opted_out");
    let (_, h) = t.get(&format!("/api/contacts/{id}/consent-history"), &s.key).await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{h}");
    assert_eq!(items[1]["from"], "opted_in");
    assert_eq!(items[1]["to"], "opted_out");
    let (st, _) = t.delete(&format!("/api/contacts/{id}"), &s.key).await;
    assert_eq!(st, 204);
    let (st, gone) = t.get(&format!("/api/contacts/{id}"), &s.key).await;
    assert_error(st, &gone, 404, "not_found");
}

async fn other_stores_ids_are_not_found(b: Backend) {
    let t = TestApp::start(b).await;
    let a = t.store("Store A").await;
    let other = t.store("Store B").await;
    let (_, c) = t.post("/api/contacts", &a.key, json!({"phone": "6912345678"})).await;
    let id = c["id"].as_i64().unwrap();
    let (_, k) = t.post("/api/keys", &a.key, json!({"name": "ci"})).await;
    let key_id = k["id"].as_i64().unwrap();
    for (method, path, req_body) in [
        ("GET", format!("/api/contacts/{id}"), None),
        ("PATCH", format!("/api/contacts/{id}"), Some(json!({"first_name": "x"}))),
        ("DELETE", format!("/api/contacts/{id}"), None),
        ("GET", format!("/api/contacts/{id}/consent-history"), None),
        ("DELETE", format!("/api/keys/{key_id}"), None),
        ("POST", format!("/api/keys/{key_id}/revoke"), None),
    ] {
        let (st, body) = t.call(method.parse().unwrap(), &path, Some(&other.key), req_body.clone()).await;
        assert_error(st, &body, 404, "not_found");
        let (st2, body2) = t
            .call(
                method.parse().unwrap(),
                &path.replace(&id.to_string(), "999999").replace(&key_id.to_string(), "999999"),
                Some(&other.key),
                req_body,
            )
            .await;
        assert_eq!((st, body["code"].clone()), (st2, body2["code"].clone()), "{method} {path}: same answer as a missing id");
    }
    let (_, bulk) = t.post("/api/contacts/tags", &other.key, json!({"ids": [id], "add": ["x"]})).await;
    assert_eq!(bulk["updated"], 0);
    let (_, list) = t.get("/api/contacts", &other.key).await;
    assert_eq!(list["items"], json!([]));
    // And nothing changed for the owner.
    let (st, mine) = t.get(&format!("/api/contacts/{id}"), &a.key).await;
    assert_eq!(st, 200);
    assert_eq!(mine["tags"], json!([]));
}

async fn import_reports_rows(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Importer").await;
    let csv = "\u{feff}Phone,First Name,Tags,Consent\r\n6912345678,Νίκος,\"vip,athens\",yes\r\n12,Bad,,\r\n+44 7911 123456,\"Smith, John\",,opted_in\r\n0030 6912345678,Dup,,\r\n6971111111,=HYPERLINK(\"x\"),,\r\n";
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["total"], 5);
    assert_eq!(r["created"], 3);
    assert_eq!(r["updated"], 0);
    assert_eq!(r["skipped"], 2);
    let codes: Vec<_> =
        r["errors"].as_array().unwrap().iter().map(|e| (e["row"].as_i64().unwrap(), e["code"].as_str().unwrap().to_string())).collect();
    assert_eq!(codes, vec![(3, "invalid_phone".to_string()), (5, "duplicate_in_file".to_string())]);
    let (_, list) = t.get("/api/contacts?q=hyperlink", &s.key).await;
    assert_eq!(list["items"][0]["first_name"], "=HYPERLINK(\"x\")", "formula cells are stored verbatim");
    // Re-importing without a consent column never re-opts-in an opted-out contact.
    let (_, l) = t.get("/api/contacts?q=6912345678", &s.key).await;
    let id = l["items"][0]["id"].as_i64().unwrap();
    t.patch(&format!("/api/contacts/{id}"), &s.key, json!({"consent": "opted_out"})).await;
    let (_, r2) = t.import_csv(&s.key, "phone,first_name\n6912345678,Nick\n").await;
    assert_eq!(r2["updated"], 1);
    let (_, c) = t.get(&format!("/api/contacts/{id}"), &s.key).await;
    assert_eq!(c["consent"], "opted_out");
    assert_eq!(c["first_name"], "Nick");
}

async fn auth_failures(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Auth").await;
    let (st, body) = t.call(reqwest::Method::GET, "/api/contacts", None, None).await;
    assert_error(st, &body, 401, "unauthorized");
    let (st, body) = t.get("/api/contacts", "sk_live_nope").await;
    assert_error(st, &body, 401, "invalid_api_key");
    let (_, k) = t.post("/api/keys", &s.key, json!({"name": "temp"})).await;
    let temp = k["key"].as_str().unwrap().to_string();
    assert_eq!(t.get("/api/store", &temp).await.0, 200);
    t.delete(&format!("/api/keys/{}", k["id"]), &s.key).await;
    let (st, body) = t.get("/api/store", &temp).await;
    assert_error(st, &body, 401, "invalid_api_key");
    let (st, body) = t.get("/api/admin/stores", &s.key).await;
    assert_error(st, &body, 401, "invalid_api_key");
    // Sessions: wrong password, login, expiry, logout.
    let (st, body) = t.call(reqwest::Method::POST, "/api/login", None, Some(json!({"email": s.email, "password": "wrong"}))).await;
    assert_error(st, &body, 401, "invalid_credentials");
    let res = t.client.post(format!("{}/api/login", t.url)).json(&json!({"email": s.email, "password": s.password})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let with_cookie = |path: &str| t.client.get(format!("{}{path}", t.url)).header("cookie", cookie.clone()).send();
    assert_eq!(with_cookie("/api/store").await.unwrap().status(), 200);
    t.clock.advance(3_600_001);
    let res = with_cookie("/api/store").await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "session_expired");
}

dual!(contact_round_trip, other_stores_ids_are_not_found, import_reports_rows, auth_failures);
