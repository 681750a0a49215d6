//! API keys, login sessions and the operator's store creation.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn api_key_lifecycle(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Keys").await;
    let (st, k) = t.post("/api/keys", &s.key, json!({"name": "  Zapier  "})).await;
    assert_eq!(st, 201, "{k}");
    let secret = k["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk_live_"), "a recognisable prefix: {secret}");
    assert!(secret.len() >= 40, "long enough to be unguessable: {secret}");
    assert_eq!(k["name"], "Zapier");
    assert_eq!(k["active"], true);
    assert!(k["revoked_at"].is_null());
    let prefix = k["prefix"].as_str().unwrap();
    assert!(secret.starts_with(prefix) && prefix.len() < secret.len() / 2, "{prefix}");
    let id = k["id"].as_i64().unwrap();

    // The listing shows the prefix, never the secret.
    let (st, list) = t.get("/api/keys", &s.key).await;
    assert_eq!(st, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the store's default key and the new one: {list}");
    assert!(!list.to_string().contains(&secret), "the secret is shown only once");
    assert!(!list.to_string().contains(&s.key), "nor is the default key's secret");
    assert!(items.iter().all(|i| i.get("key").is_none()), "{list}");
    let listed = items.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(listed["prefix"], prefix);
    assert_eq!(listed["name"], "Zapier");
    assert!(listed["last_used_at"].is_null(), "not used yet");

    // The new key works, and its use is recorded.
    let (st, store) = t.get("/api/store", &secret).await;
    assert_eq!(st, 200, "{store}");
    assert_eq!(store["id"], s.id);
    let (_, list) = t.get("/api/keys", &s.key).await;
    assert!(list["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap()["last_used_at"].is_string());

    // Revoking: the key stops working at once; revoking again is harmless; others keep working.
    let (st, r) = t.call(Method::POST, &format!("/api/keys/{id}/revoke"), Some(&s.key), None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["active"], false);
    let revoked_at = r["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{r}");
    let (st, body) = t.get("/api/contacts", &secret).await;
    assert_error(st, &body, 401, "invalid_api_key");
    t.clock.advance(5_000);
    let (st, again) = t.delete(&format!("/api/keys/{id}"), &s.key).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["revoked_at"], revoked_at, "the first revocation time stands");
    let (_, list) = t.get("/api/keys", &s.key).await;
    let listed = list["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(listed["active"], false, "revoked keys stay listed, marked inactive");
    assert_eq!(t.get("/api/store", &s.key).await.0, 200, "the other key still works");
    // A key can revoke itself; afterwards it is refused.
    let (_, k2) = t.post("/api/keys", &s.key, json!({"name": "self"})).await;
    let k2_secret = k2["key"].as_str().unwrap().to_string();
    let (st, _) = t.delete(&format!("/api/keys/{}", k2["id"]), &k2_secret).await;
    assert_eq!(st, 200);
    let (st, body) = t.get("/api/keys", &k2_secret).await;
    assert_error(st, &body, 401, "invalid_api_key");
    // Unknown key ids.
    for path in ["/api/keys/999999", "/api/keys/abc"] {
        let (st, body) = t.delete(path, &s.key).await;
        assert_error(st, &body, 404, "not_found");
    }

    // Bad names.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "k".repeat(101)}), "name"),
        (json!({}), "name"),
        (json!({"name": 3}), "name"),
        (json!({"name": "ok", "scopes": ["all"]}), "scopes"),
    ] {
        let (st, r) = t.post("/api/keys", &s.key, body.clone()).await;
        assert_error(st, &r, 422, "invalid_field");
        assert_eq!(r["details"]["field"], field, "{body}: {r}");
    }
    let (_, list) = t.get("/api/keys", &s.key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "failed creations left no key behind");
}

async fn bad_credentials_are_401(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Creds").await;
    let raw = |auth: &'static str| {
        let req = t.client.get(format!("{}/api/contacts", t.url)).header("authorization", auth);
        async move {
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json::<Value>().await.unwrap())
        }
    };
    let (st, body) = raw("Basic dXNlcjpwYXNz").await;
    assert_error(st, &body, 401, "unauthorized");
    let (st, body) = raw("Bearer ").await;
    assert_error(st, &body, 401, "unauthorized");
    let (st, body) = raw("Bearer sk_live_0000000000000000000000000000000").await;
    assert_error(st, &body, 401, "invalid_api_key");
    // A store key is not an operator key and an operator key is not a store key.
    let (st, body) = t.get("/api/admin/stores", &s.key).await;
    assert_error(st, &body, 401, "invalid_api_key");
    let (st, body) = t.get("/api/contacts", &t.admin_key).await;
    assert_error(st, &body, 401, "invalid_api_key");
    let (st, body) = t.call(Method::GET, "/api/admin/stores", None, None).await;
    assert_error(st, &body, 401, "unauthorized");
    // Unauthenticated requests learn nothing about what exists.
    let (st, body) = t.call(Method::GET, "/api/contacts/1", None, None).await;
    assert_error(st, &body, 401, "unauthorized");
    // A garbage session cookie.
    let res = t.client.get(format!("{}/api/store", t.url)).header("cookie", "smscast_session=forged").send().await.unwrap();
    let st = res.status();
    assert_error(st, &res.json().await.unwrap(), 401, "session_expired");
}

/// Logs in and returns the `name=value` part of the session cookie.
async fn login(t: &TestApp, email: &str, password: &str) -> String {
    let res = t.client.post(format!("{}/api/login", t.url)).json(&json!({"email": email, "password": password})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(set.contains("Secure"), "the public URL is https, so the cookie is Secure: {set}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ok"], true);
    assert!(body["expires_at"].is_string());
    set.split(';').next().unwrap().to_string()
}

async fn sessions_login_and_logout(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Sessions").await;
    let other = t.store("Other Sessions").await;
    let cookie = login(&t, &s.email.to_uppercase(), &s.password).await;
    // As the store's own pages send them: same-origin (cross-site ones are refused, see security.rs).
    let with = |method: Method, path: &str, cookie: &str| {
        t.client.request(method, format!("{}{path}", t.url)).header("cookie", cookie.to_string()).header("sec-fetch-site", "same-origin")
    };

    // The session acts for the user's own store, and is named in what it changes.
    let res = with(Method::GET, "/api/store", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["id"], s.id);
    let res =
        with(Method::POST, "/api/contacts", &cookie).json(&json!({"phone": "6912345601", "consent": "opted_in"})).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    let (_, h) = t.get(&format!("/api/contacts/{}/consent-history", c["id"]), &s.key).await;
    assert!(h["items"][0]["actor"].as_str().unwrap().starts_with("user:"), "{h}");
    let (st, body) = t.get(&format!("/api/contacts/{}", c["id"]), &other.key).await;
    assert_error(st, &body, 404, "not_found");
    // Two sessions are independent.
    let second = login(&t, &s.email, &s.password).await;
    assert_ne!(second, cookie);

    // Logout ends the session on the server: the old cookie no longer works even if replayed.
    let res = with(Method::POST, "/api/logout", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cleared = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let res = with(Method::GET, "/api/store", &cookie).send().await.unwrap();
    let st = res.status();
    assert_error(st, &res.json().await.unwrap(), 401, "session_expired");
    let res = with(Method::POST, "/api/contacts", &cookie).json(&json!({"phone": "6912345602"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(with(Method::GET, "/api/store", &second).send().await.unwrap().status(), 200, "the other session lives on");
    // Logging out twice, or without a session, is fine.
    assert_eq!(with(Method::POST, "/api/logout", &cookie).send().await.unwrap().status(), 200);
    assert_eq!(t.client.post(format!("{}/api/logout", t.url)).send().await.unwrap().status(), 200);

    // Wrong password and unknown email get the same answer.
    for (email, password) in
        [(s.email.as_str(), "wrong"), ("nobody@example.test", s.password.as_str()), (other.email.as_str(), s.password.as_str())]
    {
        let (st, body) = t.call(Method::POST, "/api/login", None, Some(json!({"email": email, "password": password}))).await;
        assert_error(st, &body, 401, "invalid_credentials");
    }
    for (body, field) in [
        (json!({"email": s.email}), "password"),
        (json!({"email": s.email, "password": 1}), "password"),
        (json!({"email": s.email, "password": "x", "remember": true}), "remember"),
    ] {
        let (st, r) = t.call(Method::POST, "/api/login", None, Some(body.clone())).await;
        assert_error(st, &r, 422, "invalid_field");
        assert_eq!(r["details"]["field"], field, "{body}");
    }
    // Expiry, measured on the server's clock.
    t.clock.advance(3_600_001);
    let res = with(Method::GET, "/api/store", &second).send().await.unwrap();
    let st = res.status();
    assert_error(st, &res.json().await.unwrap(), 401, "session_expired");
}

async fn admin_creates_stores(b: Backend) {
    let t = TestApp::start(b).await;
    let (st, created) = t
        .call(
            Method::POST,
            "/api/admin/stores",
            Some(&t.admin_key),
            Some(json!({"name": "Nice Shop", "email": "Owner@Nice.GR", "default_country": "cy", "language": "en", "timezone": "Asia/Nicosia", "sender_name": "NiceShop"})),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["store"]["name"], "Nice Shop");
    assert_eq!(created["store"]["default_country"], "CY");
    assert_eq!(created["store"]["language"], "en");
    assert_eq!(created["store"]["timezone"], "Asia/Nicosia");
    assert_eq!(created["store"]["sender_name"], "NiceShop");
    assert_eq!(created["email"], "owner@nice.gr", "emails are stored lower-case");
    // The printed credentials work.
    let key = created["api_key"].as_str().unwrap();
    assert_eq!(t.get("/api/store", key).await.1["name"], "Nice Shop");
    login(&t, "owner@nice.gr", created["password"].as_str().unwrap()).await;

    let stores_before = t.get("/api/admin/stores", &t.admin_key).await.1["items"].as_array().unwrap().len();
    for (body, status, code, field) in [
        (json!({"name": "", "email": "a@shop.gr"}), 422, "invalid_name", "name"),
        (json!({"name": "   ", "email": "a@shop.gr"}), 422, "invalid_name", "name"),
        (json!({"name": "Shop", "email": "not-an-email"}), 422, "invalid_email", "email"),
        (json!({"name": "Shop", "email": ""}), 422, "invalid_email", "email"),
        (json!({"name": "Shop"}), 422, "invalid_field", "email"),
        (json!({"name": "Shop", "email": "a@shop.gr", "default_country": "ZZ"}), 422, "invalid_country", "default_country"),
        (json!({"name": "Shop", "email": "a@shop.gr", "language": "de"}), 422, "invalid_language", "language"),
        (json!({"name": "Shop", "email": "a@shop.gr", "timezone": "Nowhere"}), 422, "invalid_timezone", "timezone"),
        (json!({"name": "Shop", "email": "a@shop.gr", "sender_name": "X"}), 422, "invalid_sender", "sender_name"),
        (json!({"name": "Shop", "email": "a@shop.gr", "plan": "gold"}), 422, "invalid_field", "plan"),
        (json!({"name": "Shop", "email": "owner@nice.gr"}), 409, "email_taken", "email"),
        (json!({"name": "Shop", "email": " OWNER@NICE.GR "}), 409, "email_taken", "email"),
    ] {
        let (st, r) = t.call(Method::POST, "/api/admin/stores", Some(&t.admin_key), Some(body.clone())).await;
        assert_error(st, &r, status, code);
        assert_eq!(r["details"]["field"], field, "{body}: {r}");
    }
    let (_, stores) = t.get("/api/admin/stores", &t.admin_key).await;
    assert_eq!(stores["items"].as_array().unwrap().len(), stores_before, "failed creations left no half-made store: {stores}");

    // Only the operator can create stores.
    let (st, r) = t.call(Method::POST, "/api/admin/stores", Some(key), Some(json!({"name": "Sneaky", "email": "s@shop.gr"}))).await;
    assert_error(st, &r, 401, "invalid_api_key");
    let (st, r) = t.call(Method::POST, "/api/admin/stores", None, Some(json!({"name": "Sneaky", "email": "s@shop.gr"}))).await;
    assert_error(st, &r, 401, "unauthorized");
}

/// Wrong passwords sent at once, for one account from one address: no more of them get their
/// password checked (and a 401) than the limit allows, however they interleave; the rest are
/// refused with 429 before any check. Each round is a fresh account from a fresh address.
async fn concurrent_failed_logins_stop_at_the_limit(b: Backend) {
    use smscast::store::auth::{self, LOGIN_FAILURES_PER_ACCOUNT, LoginGuard};
    let t = TestApp::start(b).await;
    let db = t.db().clone();
    // Enough password checks at once for every attempt, so none is turned away as busy.
    let guard = std::sync::Arc::new(LoginGuard { checks: std::sync::Arc::new(tokio::sync::Semaphore::new(64)) });
    let now = t.clock_now();
    for round in 0..6 {
        let email = format!("rushed{round}@example.test");
        let client = format!("192.0.2.{round}");
        let tries = (0..LOGIN_FAILURES_PER_ACCOUNT + 6).map(|i| {
            let (db, guard, email, client) = (db.clone(), guard.clone(), email.clone(), client.clone());
            tokio::spawn(async move { auth::login(&db, &guard, &email, &format!("guess-{i}"), &client, now, 60_000).await })
        });
        let mut checked = 0;
        for r in futures_util::future::join_all(tries).await {
            match r.unwrap() {
                Ok(None) => checked += 1,
                Err(e) => assert_eq!(e.code, "too_many_attempts", "round {round}: {e:?}"),
                Ok(Some(_)) => panic!("round {round}: a wrong password logged in"),
            }
        }
        assert_eq!(checked, LOGIN_FAILURES_PER_ACCOUNT, "round {round}: exactly the limit's worth were checked");
        let err = auth::login(&db, &guard, &email, "one more", &client, now, 60_000).await.err();
        assert_eq!(err.map(|e| e.code), Some("too_many_attempts".into()), "round {round}: the account is locked");
    }
}

dual!(
    api_key_lifecycle,
    bad_credentials_are_401,
    sessions_login_and_logout,
    admin_creates_stores,
    concurrent_failed_logins_stop_at_the_limit,
);
