//! Holes a browser or an attacker would find: cross-site form posts riding on the session
//! cookie, missing security headers, secrets left in caches.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

/// Logs in (as the store's own login page would: same origin) and returns `name=value` of the
/// session cookie.
pub async fn login_cookie(t: &TestApp, email: &str, password: &str) -> String {
    let res = t
        .client
        .post(format!("{}/api/login", t.url))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

async fn cross_site_form_posts_change_nothing(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Csrf").await;
    let cookie = login_cookie(&t, &s.email, &s.password).await;
    let (_, k) = t.post("/api/keys", &s.key, json!({"name": "Zapier"})).await;
    let revoke = format!("{}/api/keys/{}/revoke", t.url, k["id"]);
    let active = || async { t.get("/api/keys", &s.key).await.1["items"].as_array().unwrap().iter().all(|k| k["active"] == true) };

    // An attacker's page auto-submits a form to the revoke URL; the browser adds the cookie.
    let forged = |headers: &[(&'static str, &'static str)]| {
        let mut req = t
            .client
            .post(&revoke)
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("confirm=yes");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move {
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for headers in [
        // A modern browser: fetch metadata and the attacker's origin.
        &[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")][..],
        // A sibling subdomain is not our origin either.
        &[("sec-fetch-site", "same-site"), ("origin", "https://evil.sms.example.test")][..],
        // An older browser: only Origin.
        &[("origin", "https://evil.example")][..],
        // A sandboxed frame or a privacy redirect.
        &[("origin", "null")][..],
        // Neither header: a cookie alone proves nothing.
        &[][..],
    ] {
        let (st, body) = forged(headers).await;
        assert_error(st, &body, 403, "cross_site_request");
        assert!(active().await, "a refused request changed nothing ({headers:?})");
    }
    // Campaign actions are refused the same way: the campaign stays a draft.
    let (_, c) = t.post("/api/campaigns", &s.key, json!({"name": "c", "message": "Hi", "audience": {"kind": "all"}})).await;
    let res = t
        .client
        .post(format!("{}/api/campaigns/{}/cancel", t.url, c["id"]))
        .header("cookie", cookie.clone())
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(t.get(&format!("/api/campaigns/{}", c["id"]), &s.key).await.1["status"], "draft");
    // Logging someone into the attacker's account from another site is refused too.
    let res = t
        .client
        .post(format!("{}/api/login", t.url))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"email": s.email, "password": s.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());

    // Our own pages: same-origin fetch metadata, or an Origin naming the public URL or the host.
    let (st, body) = forged(&[("sec-fetch-site", "same-origin"), ("origin", "https://sms.example.test")]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["active"], false);
    let (_, k2) = t.post("/api/keys", &s.key, json!({"name": "second"})).await;
    let host = t.url.trim_start_matches("http://").to_string();
    for origin in ["https://sms.example.test".to_string(), format!("http://{host}")] {
        let res = t
            .client
            .post(format!("{}/api/contacts", t.url))
            .header("cookie", cookie.clone())
            .header("origin", origin.clone())
            .json(&json!({"phone": if origin.starts_with("https") { "6912345601" } else { "6912345602" }}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "Origin {origin}");
    }
    // API keys are unaffected: a browser never adds one on its own.
    let res = t
        .client
        .post(format!("{}/api/keys/{}/revoke", t.url, k2["id"]))
        .bearer_auth(&s.key)
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://integrations.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Reads are never refused.
    let res =
        t.client.get(format!("{}/api/store", t.url)).header("cookie", cookie).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn responses_carry_security_headers(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Headers").await;
    let login = t
        .client
        .post(format!("{}/api/login", t.url))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"email": s.email, "password": s.password}))
        .send()
        .await
        .unwrap();
    let key = t.client.post(format!("{}/api/keys", t.url)).bearer_auth(&s.key).json(&json!({"name": "k"})).send().await.unwrap();
    let created = t
        .client
        .post(format!("{}/api/admin/stores", t.url))
        .bearer_auth(&t.admin_key)
        .json(&json!({"name": "Second", "email": "second@example.test"}))
        .send()
        .await
        .unwrap();
    let store = t.client.get(format!("{}/api/store", t.url)).bearer_auth(&s.key).send().await.unwrap();
    let missing = t.client.get(format!("{}/api/nothing-here", t.url)).send().await.unwrap();
    let wrong_method = t.client.put(format!("{}/api/login", t.url)).send().await.unwrap();
    let health = t.client.get(format!("{}/healthz", t.url)).send().await.unwrap();
    for (what, res) in [
        ("login", &login),
        ("new key", &key),
        ("new store", &created),
        ("store", &store),
        ("404", &missing),
        ("405", &wrong_method),
        ("health", &health),
    ] {
        let h = res.headers();
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{what}");
        assert_eq!(h.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
        assert_eq!(h.get("referrer-policy").map(|v| v.to_str().unwrap()), Some("same-origin"), "{what}");
        if what != "health" {
            assert_eq!(h.get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{what}: API answers are never cached");
        }
    }
    assert_eq!(login.status(), 200);
    assert_eq!(key.status(), 201);
    assert_eq!(created.status(), 201);
    let (st, body) = t.call(Method::GET, "/api/nothing-here", None, None).await;
    assert_error(st, &body, 404, "not_found");
}

/// One log-in attempt; returns the status, the body and the Retry-After header.
async fn attempt(url: &str, t: &TestApp, email: &str, password: &str) -> (u16, Value, Option<u64>) {
    let res = t.client.post(format!("{url}/api/login")).json(&json!({"email": email, "password": password})).send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (status, res.json().await.unwrap(), retry)
}

async fn login_is_throttled_per_account(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Throttled").await;
    let other = t.store("Bystander").await;
    // Ten wrong passwords are answered as wrong passwords.
    for i in 0..10 {
        let (st, body, _) = attempt(&t.url, &t, &s.email, &format!("guess-{i}")).await;
        assert_eq!(st, 401, "attempt {i}: {body}");
    }
    // Then the account is locked for a while, even with the right password: no more guesses.
    let (st, body, retry) = attempt(&t.url, &t, &s.email.to_uppercase(), &s.password).await;
    assert_error(reqwest::StatusCode::from_u16(st).unwrap(), &body, 429, "too_many_attempts");
    let retry = retry.expect("a Retry-After header");
    assert!((1..=15 * 60).contains(&retry), "within the 15-minute window: {retry}");
    assert_eq!(body["details"]["retry_after"], retry);
    // Another node (here: a second app on the same database) sees the same count.
    let second = t.second_node().await;
    let (st, body, _) = attempt(&second.url(), &t, &s.email, &s.password).await;
    assert_error(reqwest::StatusCode::from_u16(st).unwrap(), &body, 429, "too_many_attempts");
    second.stop().await;
    // Other accounts from the same address are not locked out.
    let (st, body, _) = attempt(&t.url, &t, &other.email, &other.password).await;
    assert_eq!(st, 200, "{body}");
    // When the window has passed, the right password works again.
    t.clock.advance(15 * 60 * 1000 + 1);
    let (st, body, _) = attempt(&t.url, &t, &s.email, &s.password).await;
    assert_eq!(st, 200, "{body}");
}

async fn login_is_throttled_per_client(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Sprayed").await;
    // Password spraying: one guess each at many accounts, from one address.
    for i in 0..50 {
        let (st, body, _) = attempt(&t.url, &t, &format!("victim{i}@example.test"), "Summer2026!").await;
        assert_eq!(st, 401, "attempt {i}: {body}");
    }
    let (st, body, retry) = attempt(&t.url, &t, &s.email, &s.password).await;
    assert_error(reqwest::StatusCode::from_u16(st).unwrap(), &body, 429, "too_many_attempts");
    assert!(retry.is_some_and(|r| (1..=15 * 60).contains(&r)), "{retry:?}");
    t.clock.advance(15 * 60 * 1000 + 1);
    let (st, body, _) = attempt(&t.url, &t, &s.email, &s.password).await;
    assert_eq!(st, 200, "{body}");
}

async fn password_checks_are_capped(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Busy").await;
    // Every password check of this node is taken (a burst of log-ins, here held by the test).
    let checks = t.app.as_ref().unwrap().state.login.checks.clone();
    let held = checks.clone().acquire_many_owned(u32::try_from(checks.available_permits()).unwrap()).await.unwrap();
    let started = std::time::Instant::now();
    let (st, body, retry) = attempt(&t.url, &t, &s.email, &s.password).await;
    assert_error(reqwest::StatusCode::from_u16(st).unwrap(), &body, 503, "login_busy");
    assert_eq!(retry, Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "answered promptly, not queued");
    drop(held);
    let (st, body, _) = attempt(&t.url, &t, &s.email, &s.password).await;
    assert_eq!(st, 200, "{body}");
}

async fn admin_keys_can_be_revoked(b: Backend) {
    let t = TestApp::start(b).await;
    let leaked = smscast::store::auth::create_admin_key(t.db(), "laptop", 0).await.unwrap();
    assert_eq!(t.get("/api/admin/stores", &leaked).await.0, 200);
    let (st, list) = t.get("/api/admin/keys", &t.admin_key).await;
    assert_eq!(st, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(!list.to_string().contains(&leaked) && !list.to_string().contains(&t.admin_key), "secrets are never listed");
    let laptop = items.iter().find(|k| k["name"] == "laptop").unwrap();
    assert!(leaked.starts_with(laptop["prefix"].as_str().unwrap()));
    assert_eq!(laptop["active"], true);
    let (st, r) = t.call(Method::POST, &format!("/api/admin/keys/{}/revoke", laptop["id"]), Some(&t.admin_key), None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["active"], false);
    assert!(r["revoked_at"].is_string());
    let (st, e) = t.get("/api/admin/stores", &leaked).await;
    assert_error(st, &e, 401, "invalid_api_key");
    let (st, e) = t.call(Method::POST, &format!("/api/admin/keys/{}/revoke", laptop["id"]), Some(&leaked), None).await;
    assert_error(st, &e, 401, "invalid_api_key");
    assert_eq!(t.get("/api/admin/stores", &t.admin_key).await.0, 200, "the other key still works");
    let (st, e) = t.call(Method::POST, "/api/admin/keys/999999/revoke", Some(&t.admin_key), None).await;
    assert_error(st, &e, 404, "not_found");
    // Store keys cannot list or revoke operator keys.
    let s = t.store("Not Admin").await;
    let (st, e) = t.get("/api/admin/keys", &s.key).await;
    assert_error(st, &e, 401, "invalid_api_key");
}

/// Rows in `table` (a test-only peek at what the API cannot show).
async fn rows(t: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) = smscast::store::on_db!(t.db(), |p| sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(p).await).unwrap();
    n
}

async fn expired_sessions_and_replays_are_purged(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, Default::default(), 100, 1).await;
    let s = t.store("Purge").await;
    login_cookie(&t, &s.email, &s.password).await;
    crate::harness::seed(&t, &s, 3, 100).await;
    let (st, _, _) = attempt(&t.url, &t, &s.email, "wrong").await;
    assert_eq!(st, 401);
    assert_eq!((rows(&t, "sessions").await, rows(&t, "idempotency_keys").await, rows(&t, "login_failures").await), (1, 1, 1));
    // A session lives an hour here, a stored replay a day: two days later both are gone, done by
    // the engine's maintenance without anyone asking.
    t.clock.advance(2 * 24 * 3_600_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rows(&t, "sessions").await + rows(&t, "idempotency_keys").await + rows(&t, "login_failures").await > 0 {
        assert!(std::time::Instant::now() < deadline, "expired rows are purged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

dual!(
    cross_site_form_posts_change_nothing,
    responses_carry_security_headers,
    login_is_throttled_per_account,
    login_is_throttled_per_client,
    password_checks_are_capped,
    admin_keys_can_be_revoked,
    expired_sessions_and_replays_are_purged
);
