//! The web pages: plain HTTP checks of their contracts (headers, assets, 404s, the analysis
//! endpoint), and end-to-end runs in headless Chromium that do what a store owner does.

use crate::browser::Browser;
use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, seed};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn login_cookie(t: &TestApp, s: &TestStore) -> String {
    let res = client()
        .post(format!("{}/login", t.url))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("email={}&password={}", s.email.replace('@', "%40"), s.password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/dashboard");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

async fn pages_have_their_headers_and_assets(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Header Shop").await;
    let c = client();
    let home = c.get(format!("{}/", t.url)).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let csp = home.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(home.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let html = home.text().await.unwrap();
    assert!(html.contains("action=\"/login\""), "the login form");
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");
    // Assets under hashed names, cached for a year; any other name is a 404.
    for (attr, ext) in [("href=\"", ".css"), ("src=\"", ".js")] {
        let start = html.find(&format!("{attr}/static/app.")).unwrap_or_else(|| panic!("the {ext} link")) + attr.len();
        let href = &html[start..start + html[start..].find('"').unwrap()];
        assert!(href.ends_with(ext), "{href}");
        let res = c.get(format!("{}{href}", t.url)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{href}");
        assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    }
    let stale = c.get(format!("{}/static/app.0000.css", t.url)).send().await.unwrap();
    assert_eq!(stale.status(), 404);
    // Unknown pages: a page for people, the error shape under /api.
    let page = c.get(format!("{}/no/such/page", t.url)).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let api = c.get(format!("{}/api/no/such/thing", t.url)).send().await.unwrap();
    assert_eq!(api.status(), 404);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    // Pages need a login; with one, `/` is the dashboard.
    let res = c.get(format!("{}/dashboard", t.url)).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/"));
    let cookie = login_cookie(&t, &s).await;
    let res = c.get(format!("{}/", t.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/dashboard"));
    let res = c.get(format!("{}/dashboard", t.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // A wrong password shows the login page again with the reason.
    let res = c
        .post(format!("{}/login", t.url))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("email={}&password=wrong", s.email.replace('@', "%40")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("role=\"alert\""));
    // Another store's campaign is a 404 page, like a missing one.
    let other = t.store("Other Shop").await;
    let id = crate::harness::campaign(&t, &other, "Theirs").await;
    let res = c.get(format!("{}/campaigns/{id}", t.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

/// The editor's counter asks this endpoint; its numbers are `domain::sms`'s.
async fn analyze_counts_like_the_sender(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Count Shop").await;
    let (st, a) = t.post("/api/sms/analyze", &s.key, json!({"text": "Hello there"})).await;
    assert_eq!(st, 200, "{a}");
    assert_eq!((a["encoding"].as_str(), a["characters"].as_i64(), a["segments"].as_i64()), (Some("gsm7"), Some(11), Some(1)));
    assert_eq!(a["ucs2_chars"], json!([]));
    assert_eq!(a["greek_gsm"], Value::Null);
    let (_, a) = t.post("/api/sms/analyze", &s.key, json!({"text": "Hello “there” 😀"})).await;
    assert_eq!(a["encoding"], "ucs2");
    assert_eq!(a["ucs2_chars"], json!(["“", "”", "😀"]));
    assert_eq!((a["characters"].as_i64(), a["units"].as_i64()), (Some(15), Some(16)), "the emoji is two UTF-16 units");
    let (_, a) = t.post("/api/sms/analyze", &s.key, json!({"text": "Καλημέρα σας"})).await;
    assert_eq!(a["encoding"], "ucs2");
    assert_eq!(a["greek_gsm"]["encoding"], "gsm7");
    assert!(a["greek_gsm"]["segments"].as_i64().unwrap() <= a["with_footer"]["segments"].as_i64().unwrap());
    let (st, e) = t.post("/api/sms/analyze", &s.key, json!({"txt": "x"})).await;
    crate::harness::assert_error(st, &e, 422, "invalid_field");
    let (st, e) = t.call(reqwest::Method::POST, "/api/sms/analyze", None, Some(json!({"text": "x"}))).await;
    crate::harness::assert_error(st, &e, 401, "unauthorized");
}

/// Reads a number as the page prints it in English (1,234).
fn number(s: &str) -> i64 {
    s.trim().replace(',', "").parse().unwrap_or_else(|_| panic!("a number: {s:?}"))
}

async fn log_in(br: &Browser, s: &TestStore) {
    br.goto("/").await;
    br.set_lang("en").await;
    br.goto("/").await;
    br.wait_css("#login-submit").await;
    br.check_page("login", "en").await;
    br.type_into("#email", &s.email).await;
    br.type_into("#password", &s.password).await;
    br.click("#login-submit").await;
    br.wait_css("#stat-available").await;
}

/// Log in → new campaign → an emoji turns the counter to UCS-2 and changes the segments → the
/// confirmation dialog shows the preview API's numbers → send → the bar reaches 100 % live.
async fn main_flow(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig { latency_ms: 30, ..SimulatorConfig::default() }, 20, 1).await;
    let s = t.store("Web Shop").await;
    seed(&t, &s, 120, 10_000).await;
    let prefix = format!("main-{}", if b == Backend::Sqlite { "sqlite" } else { "pg" });
    let br = Browser::start(&t.url, &prefix).await;
    log_in(&br, &s).await;
    assert_eq!(number(&br.text("#stat-available").await), 10_000);
    br.check_page("dashboard-empty", "en").await;

    br.click("#main .page-head .btn.primary").await;
    br.wait_css("#message").await;
    br.check_page("editor", "en").await;
    br.type_into("#name", "Spring sale").await;
    br.type_into("#message", "Hi {{first_name}}, 20% off today").await;
    let counted = "return document.getElementById('cnt-chars').textContent.trim() === '32' && \
                   document.getElementById('cnt-encoding').dataset.encoding === 'gsm7'";
    br.wait_for(counted, "the GSM-7 count").await;
    let before = number(&br.text("#cnt-segments").await);
    // ChromeDriver types only the Basic Multilingual Plane, so the emoji arrives like a paste.
    br.js("const m = document.getElementById('message'); m.value += ' 😀'; m.dispatchEvent(new Event('input'));", json!([])).await;
    br.wait_for("return document.getElementById('cnt-encoding').dataset.encoding === 'ucs2'", "the switch to UCS-2").await;
    let after = number(&br.text("#cnt-segments").await);
    assert!(after > before, "the emoji costs more parts: {before} → {after}");
    assert!(br.text("#cnt-ucs2").await.contains('😀'), "the character that forces UCS-2 is named");
    br.check_here("editor-ucs2").await;
    br.click("#save").await;
    br.wait_css("#open-send").await;
    let id: i64 = br.path().await.trim_start_matches("/campaigns/").split('?').next().unwrap().parse().unwrap();
    br.check_page("campaign-draft", "en").await;

    br.click("#open-send").await;
    br.wait_for("return document.getElementById('send-dialog').dataset.ready === '1'", "the preview in the dialog").await;
    let (_, preview) = t.get(&format!("/api/campaigns/{id}/preview"), &s.key).await;
    for k in ["recipients", "segments", "estimated_cost", "available_credits", "balance_after"] {
        let shown = number(&br.text(&format!("#send-dialog [data-k='{k}']")).await);
        assert_eq!(shown, preview[k].as_i64().unwrap(), "{k} in the dialog equals the preview API's: {preview}");
    }
    assert_eq!(preview["recipients"], 120);
    let button = br.text("#confirm-send").await;
    assert_eq!(button, format!("Send 120 SMS · {} credits", preview["estimated_cost"]), "the button says what it does");
    assert!(br.text("#send-dialog [data-k='sample']").await.starts_with("Hi Name"), "the text as a phone shows it");
    br.check_here("send-dialog").await;

    // Marks this document: if the page reloaded, the mark would be gone.
    br.click("#confirm-send").await;
    br.wait_css("#live[data-live='1']").await;
    br.js("window.sameDocument = true", json!([])).await;
    br.wait_for(
        "return document.getElementById('bar').value === 100 && document.getElementById('status-badge').dataset.status === 'sent'",
        "100 %",
    )
    .await;
    assert_eq!(br.js("return window.sameDocument === true", json!([])).await, json!(true), "no reload");
    assert_eq!(br.js("return document.getElementById('live').dataset.transport", json!([])).await, "sse");
    assert_eq!(number(&br.text("#live [data-k='sent']").await), 120);
    assert_eq!(number(&br.text("#live [data-k='pending']").await), 0);
    br.check_page("campaign-sent", "en").await;
    br.goto("/campaigns").await;
    br.wait_css("#new-campaign").await;
    br.check_page("campaigns", "en").await;
    br.goto("/dashboard").await;
    br.wait_css("#stat-today").await;
    assert_eq!(number(&br.text("#stat-today").await), 120);
    br.check_page("dashboard", "en").await;
    br.goto("/contacts").await;
    br.wait_css("#add-contact").await;
    br.check_page("contacts", "en").await;
    br.goto("/no/such/page").await;
    br.check_page("not-found", "en").await;
    br.quit().await;
}

dual!(pages_have_their_headers_and_assets, analyze_counts_like_the_sender, main_flow);
