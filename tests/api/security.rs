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

dual!(cross_site_form_posts_change_nothing, responses_carry_security_headers);
