//! The web pages: plain HTTP checks of their contracts (headers, assets, 404s, the analysis
//! endpoint), and end-to-end runs in headless Chromium that do what a store owner does.

use crate::browser::Browser;
use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, WEBHOOK_SECRET, seed};
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

/// A Chromium logged in as the store's user, on the dashboard, in English.
async fn store_browser(t: &TestApp, s: &TestStore, prefix: &str) -> Browser {
    let br = Browser::start(&t.url, prefix).await;
    log_in(&br, s).await;
    br
}

/// A Chromium logged in as the operator (with the test app's admin key), in English.
async fn operator_browser(t: &TestApp, prefix: &str) -> Browser {
    let br = Browser::start(&t.url, prefix).await;
    br.goto("/admin").await;
    br.set_lang("en").await;
    br.goto("/admin").await;
    br.type_into("#admin-key", &t.admin_key).await;
    br.click("#admin-login").await;
    br.wait_css("#queue").await;
    br
}

/// Credits for the store, as the operator API adds them.
async fn top_up(t: &TestApp, s: &TestStore, amount: i64, idem: &str) {
    let res = t
        .client
        .post(format!("{}/api/admin/stores/{}/credits", t.url, s.id))
        .bearer_auth(&t.admin_key)
        .header("idempotency-key", idem)
        .json(&json!({"amount": amount, "reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Waits for the note a successful action leaves on the page it returns to.
async fn wait_toast(br: &Browser, text: &str) {
    let script = format!("return (document.querySelector('.toast') || {{}}).textContent === {}", json!(text));
    br.wait_for(&script, text).await;
}

/// Log in → new campaign → an emoji turns the counter to UCS-2 and changes the segments → the
/// confirmation dialog shows the preview API's numbers → send → the bar reaches 100 % live →
/// the delivery reports arrive on the same page.
async fn main_flow(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig { latency_ms: 30, ..SimulatorConfig::default() }, 20, 1).await;
    // The provider reports every message delivered, a few seconds after accepting it: after the
    // run has ended, as real reports often do.
    sim.set_config(SimulatorConfig {
        latency_ms: 30,
        dlr_url: Some(format!("{}/webhooks/mitto/dlr", t.url)),
        dlr_secret: Some(WEBHOOK_SECRET.into()),
        dlr_delay_ms: 3_000,
        ..SimulatorConfig::default()
    });
    let s = t.store("Web Shop").await;
    top_up(&t, &s, 10_000, "main").await;
    let prefix = format!("main-{}", if b == Backend::Sqlite { "sqlite" } else { "pg" });
    let br = store_browser(&t, &s, &prefix).await;
    assert_eq!(number(&br.text("#stat-available").await), 10_000);
    br.check_page("dashboard-empty", "en").await;
    // The contacts arrive as a CSV file, imported on the contacts page.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("customers.csv");
    let csv = (0..120).fold(String::from("phone,first_name,consent\n"), |mut acc, i| {
        acc.push_str(&format!("+3069{:08},Name{i},opted_in\n", 10_000_000 + i));
        acc
    });
    std::fs::write(&file, csv).unwrap();
    br.goto("/contacts").await;
    br.wait_css("#csv-file").await;
    br.type_into("#csv-file", file.to_str().unwrap()).await;
    br.click("#import-submit").await;
    br.wait_css("#import-summary").await;
    assert_eq!(br.text("#import-summary").await, "120 added, 0 updated, 0 skipped.");
    br.goto("/dashboard").await;
    br.wait_css("#stat-available").await;

    br.click("#main .page-head .btn.primary").await;
    br.wait_css("#message").await;
    br.check_page("editor", "en").await;
    br.type_into("#name", "Spring sale").await;
    br.type_into("#message", "Hi {{first_name}}, 20% off today").await;
    let counted = "return document.getElementById('cnt-chars').textContent.trim() === '32' && \
                   document.getElementById('cnt-encoding').dataset.encoding === 'gsm7'";
    br.wait_for(counted, "the GSM-7 count").await;
    // The audience as it stands: everyone, and the first contact's own text.
    br.wait_for("return document.getElementById('aud-text').textContent.startsWith('Hi Name0, 20% off today')", "a recipient's text").await;
    assert_eq!(number(&br.text("#aud-recipients").await), 120);
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

    // "Sent today" is the store's day (Europe/Athens), read again after the dashboard is drawn.
    let zone = smscast::http::web::tz::Zone::named("Europe/Athens");
    let day_of_send = zone.date(t.clock_now());
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
    // What the server counts (on a loaded machine a batch can time out and be `unknown` until its
    // reports settle it).
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(number(&br.text("#live [data-k='sent']").await), p["sent"].as_i64().unwrap(), "{p}");
    assert_eq!(number(&br.text("#live [data-k='pending']").await), 0);
    // The run is over; its delivery reports come in afterwards, and the page shows them arrive.
    br.wait_for(
        "return document.querySelector(\"#live [data-k='delivered']\").textContent === '120' && \
         document.querySelector(\"#live [data-k='awaiting']\").textContent === '0'",
        "the delivery reports",
    )
    .await;
    assert_eq!(br.js("return window.sameDocument === true", json!([])).await, json!(true), "no reload");
    br.check_page("campaign-sent", "en").await;
    // The results: the report API's numbers, and its chart drawn on the server.
    let (_, report) = t.get(&format!("/api/campaigns/{id}/report"), &s.key).await;
    assert_eq!(report["delivered"], 120, "{report}");
    assert_eq!(number(&br.text("#report [data-k='delivered']").await), 120);
    assert_eq!(br.text("#report [data-k='delivery_rate']").await, "100.0 %");
    assert_eq!(number(&br.text("#report [data-k='credits_charged']").await), report["credits_charged"].as_i64().unwrap());
    let bars = br.js("return [...document.querySelectorAll('#report-chart rect')].map(r => r.getAttribute('class'))", json!([])).await;
    let bars: Vec<&str> = bars.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(bars.contains(&"b-sends") && bars.contains(&"b-deliveries"), "sends and deliveries are drawn: {bars:?}");
    br.js("document.getElementById('report').scrollIntoView()", json!([])).await;
    br.screenshot("campaign-results-en-1440").await;
    br.goto("/campaigns").await;
    br.wait_css("#new-campaign").await;
    br.check_page("campaigns", "en").await;
    br.goto("/dashboard").await;
    br.wait_css("#stat-today").await;
    let today = number(&br.text("#stat-today").await);
    if zone.date(t.clock_now()) == day_of_send {
        assert_eq!(today, 120);
    } else {
        // The store's midnight passed meanwhile: only what was sent since counts as today.
        assert!(today <= 120, "{today}");
    }
    br.check_page("dashboard", "en").await;
    br.goto("/contacts").await;
    br.wait_css("#add-contact").await;
    br.check_page("contacts", "en").await;
    br.goto("/no/such/page").await;
    br.check_page("not-found", "en").await;
    br.quit().await;
}

dual!(pages_have_their_headers_and_assets, analyze_counts_like_the_sender, main_flow);

/// A running send cancelled from its page: the confirmation, then the counters and the timeline.
async fn cancel_a_running_send(b: Backend) {
    // Slow provider calls of 5 messages each keep the run going while the page acts.
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig { latency_ms: 300, ..SimulatorConfig::default() }, 5, 1).await;
    let s = t.store("Cancel Shop").await;
    // About 24 s of sending: time enough for the page to act even on a busy machine.
    seed(&t, &s, 400, 10_000).await;
    let id = crate::harness::campaign(&t, &s, "Long run").await;
    let br = store_browser(&t, &s, &format!("cancel-{b:?}")).await;
    br.goto(&format!("/campaigns/{id}")).await;
    br.click("#open-send").await;
    br.wait_for("return document.getElementById('send-dialog').dataset.ready === '1'", "the preview").await;
    br.click("#confirm-send").await;
    br.wait_for(
        "return Number(document.querySelector(\"#live [data-k='sent']\").textContent.replace(/,/g, '')) > 0",
        "the first sent messages",
    )
    .await;
    assert_eq!(br.js("return document.getElementById('status-badge').dataset.status", json!([])).await, "sending");
    br.check_here("campaign-sending").await;
    // The dashboard's bar of the running campaign moves as it sends, without a reload.
    br.goto("/dashboard").await;
    let bar = format!("document.querySelector(\"#campaign-rows .row[data-id='{id}'] progress\")");
    br.wait_for(&format!("return {bar} !== null"), "the campaign's row").await;
    br.js("window.sameDocument = true", json!([])).await;
    let first = br.js(&format!("return {bar}.value"), json!([])).await.as_f64().unwrap();
    br.wait_for(&format!("return {bar}.value > {first} && window.sameDocument === true"), "the dashboard's bar moving").await;
    let row = format!("#campaign-rows .row[data-id='{id}']");
    assert_eq!(br.js(&format!("return document.querySelector(\"{row}\").dataset.transport"), json!([])).await, "sse");
    br.check_here("dashboard-sending").await;
    br.goto(&format!("/campaigns/{id}")).await;
    br.wait_css("#cancel").await;
    br.click("#cancel").await;
    br.wait_for("return document.getElementById('confirm-cancel').offsetParent !== null", "the confirmation").await;
    br.check_here("cancel-confirm").await;
    br.click("#confirm-cancel").await;
    br.wait_for("return document.getElementById('status-badge').dataset.status === 'cancelled'", "the cancelled badge").await;
    assert!(br.text(".toast").await.contains("cancelled"), "the page says what happened");
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["status"], "cancelled");
    assert!(p["cancelled"].as_i64().unwrap() > 0, "{p}");
    br.refresh().await;
    br.wait_css("#timeline").await;
    assert_eq!(number(&br.text("#live [data-k='cancelled']").await), p["cancelled"].as_i64().unwrap());
    assert_eq!(number(&br.text("#live [data-k='sent']").await), p["sent"].as_i64().unwrap());
    assert!(br.text("#timeline").await.contains("Cancelled"), "the timeline shows the cancel");
    assert!(br.js("return document.getElementById('cancel')", json!([])).await.is_null(), "no cancel button once cancelled");
    br.check_page("campaign-cancelled", "en").await;
    br.quit().await;
}

/// Failures the provider caused are grouped with their explanation, and "Retry failed (N)" sends
/// them again after its own confirmation. A send the wallet cannot pay for says so and cannot start.
async fn retry_failures_and_blocked_sends(b: Backend) {
    let sim = SimulatorConfig { error_rate: 1.0, ..SimulatorConfig::default() };
    let (t, _sim) = TestApp::start_sending(b, sim, 20, 1).await;
    let s = t.store("Retry Shop").await;
    seed(&t, &s, 10, 100).await;
    let id = crate::harness::campaign(&t, &s, "Flaky").await;
    let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202);
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["failed"], 10, "{p}");
    let br = store_browser(&t, &s, &format!("retry-{b:?}")).await;
    br.goto(&format!("/campaigns/{id}")).await;
    br.wait_css("#retry").await;
    assert_eq!(br.text("#retry").await, "Retry failed (10)");
    assert!(br.text(".failures").await.contains("Operator error"), "the failure category");
    br.check_page("campaign-failed", "el").await;
    assert!(br.text(".failures").await.contains("Ο πάροχος είχε σφάλματα"), "the explanation in Greek");
    br.set_lang("en").await;
    br.refresh().await;
    br.wait_for("return document.documentElement.lang === 'en'", "English").await;
    br.click("#retry").await;
    br.wait_for("return document.getElementById('confirm-retry').offsetParent !== null", "the retry confirmation").await;
    assert!(br.text(".confirm-box").await.contains("10 failed messages"), "count and cost are confirmed");
    br.click("#confirm-retry").await;
    wait_toast(&br, "The failed messages are queued again.").await;

    // 100 credits, 90 spent on nothing (failures are not charged): a send of 200 is blocked.
    let big = crate::harness::campaign(&t, &s, "Too big").await;
    let csv: String = (0..200).fold(String::from("phone,consent\n"), |mut acc, i| {
        acc.push_str(&format!("+3069{:08},opted_in\n", 20_000_000 + i));
        acc
    });
    let (st, _) = t.import_csv(&s.key, &csv).await;
    assert_eq!(st, 200);
    br.goto(&format!("/campaigns/{big}")).await;
    br.click("#open-send").await;
    br.wait_for("return document.getElementById('send-dialog').dataset.ready === '1'", "the preview").await;
    let reasons = br.text("#send-dialog [data-slot='blocked']").await;
    assert!(reasons.contains("Top up"), "says what to do: {reasons}");
    assert_eq!(br.js("return document.getElementById('confirm-send').disabled", json!([])).await, json!(true));
    br.check_here("send-blocked").await;
    br.quit().await;
}

/// Contacts: add one through the form, import a CSV file with a bad row, search.
async fn contacts_add_import_search(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Contact Shop").await;
    let br = store_browser(&t, &s, &format!("contacts-{b:?}")).await;
    // The dashboard's credits follow the wallet live.
    br.js("window.sameDocument = true", json!([])).await;
    top_up(&t, &s, 777, "live-dashboard").await;
    br.wait_for("return document.getElementById('stat-available').textContent === '777' && window.sameDocument", "the live wallet").await;
    br.goto("/contacts").await;
    br.wait_css("#add-contact").await;
    br.check_page("contacts-empty", "en").await;
    br.type_into("#add-phone", "6971234567").await;
    br.type_into("#add-first", "Μαρία").await;
    br.click("#add-contact").await;
    wait_toast(&br, "The contact was added.").await;
    assert!(br.text("table.contacts").await.contains("+306971234567"), "stored as E.164");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contacts.csv");
    std::fs::write(&file, "phone,first_name,consent\n+306900000001,Anna,opted_in\nnot a number,Bob,opted_in\n").unwrap();
    br.type_into("#csv-file", file.to_str().unwrap()).await;
    br.js("window.sameDocument = true", json!([])).await;
    br.click("#import-submit").await;
    br.wait_css("#import-summary").await;
    // The script sent the file itself, with its upload progress, and put the result in place.
    assert_eq!(br.js("return [window.sameDocument === true, document.body.dataset.upload]", json!([])).await, json!([true, "100"]));
    assert_eq!(br.text("#import-summary").await, "1 added, 0 updated, 1 skipped.");
    assert!(br.text("#import-result-card table").await.contains('3'), "the bad row is named by its spreadsheet row");
    // The row errors download as a CSV file: the same rows, with column and code.
    let file = br
        .js("return decodeURIComponent(document.getElementById('import-errors-csv').href.split(',').slice(1).join(','))", json!([]))
        .await;
    let file = file.as_str().unwrap();
    assert!(file.starts_with("row,column,code,message\n3,"), "{file}");
    assert_eq!(file.lines().count(), 2, "{file}");
    assert_eq!(br.js("return document.getElementById('import-errors-csv').getAttribute('download')", json!([])).await, "import-errors.csv");
    br.check_here("contacts-imported").await;
    br.goto("/contacts?q=anna").await;
    br.wait_css("table.contacts").await;
    let table = br.text("table.contacts").await;
    assert!(table.contains("Anna") && !table.contains("Μαρία"), "{table}");
    br.quit().await;
}

dual!(contacts_add_import_search);

/// When the event stream does not get through (a proxy that buffers it, say), the campaign page
/// polls `…/progress` instead and still reaches 100 % without a reload.
async fn progress_falls_back_to_polling(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig { latency_ms: 100, ..SimulatorConfig::default() }, 5, 1).await;
    let s = t.store("Poll Shop").await;
    seed(&t, &s, 40, 1_000).await;
    let id = crate::harness::campaign(&t, &s, "Polled").await;
    let br = Browser::start(&t.url, &format!("poll-{b:?}")).await;
    // An EventSource that fails at once, as a stream blocked on the way would.
    br.before_each_page(
        "window.EventSource = function () { var es = this; es.close = function () {}; es.addEventListener = function () {}; \
         setTimeout(function () { if (es.onerror) es.onerror(new Event('error')); }, 0); };",
    )
    .await;
    log_in(&br, &s).await;
    let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202);
    br.goto(&format!("/campaigns/{id}")).await;
    br.wait_css("#live[data-live='1']").await;
    br.js("window.sameDocument = true", json!([])).await;
    br.wait_for("return document.getElementById('live').dataset.transport === 'poll'", "polling").await;
    br.wait_for(
        "return document.getElementById('bar').value === 100 && document.getElementById('status-badge').dataset.status === 'sent'",
        "100 %",
    )
    .await;
    assert_eq!(br.js("return window.sameDocument === true", json!([])).await, json!(true), "no reload");
    // What the server counts: on a loaded machine a batch can time out and stay `unknown`.
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["sent"].as_i64().unwrap() + p["unknown"].as_i64().unwrap(), 40, "{p}");
    assert_eq!(number(&br.text("#live [data-k='sent']").await), p["sent"].as_i64().unwrap());
    br.quit().await;
}

/// Settings: a refused change says why; keys are created (shown once) and revoked from the page.
async fn settings_and_keys(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Settings Shop").await;
    let br = store_browser(&t, &s, &format!("settings-{b:?}")).await;
    br.goto("/settings").await;
    br.wait_css("#save-settings").await;
    br.check_page("settings", "en").await;
    br.type_into("#s-sender", "x").await;
    br.click("#save-settings").await;
    br.wait_css("#page-error").await;
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_ne!(store["sender_name"], "x", "a refused change changes nothing");
    let (_, before) = t.get("/api/store", &s.key).await;
    br.type_into("#s-sender", "SHOP42").await;
    br.click("#save-settings").await;
    // A new sender name waits for the operator: the page says so, and the field keeps the name in use.
    wait_toast(&br, "The settings were saved. The new sender name is waiting for the operator's approval.").await;
    assert_eq!(br.js("return document.getElementById('sender-request').dataset.status", json!([])).await, "pending");
    let notice = br.text("#sender-request").await;
    assert!(notice.contains("“SHOP42” is waiting for the operator's approval"), "{notice}");
    assert!(notice.contains(&format!("go out as “{}”", before["sender_name"].as_str().unwrap())), "{notice}");
    assert_eq!(br.js("return document.getElementById('s-sender').value", json!([])).await, before["sender_name"]);
    br.check_page("settings-sender-pending", "en").await;
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["sender_name"], before["sender_name"], "messages still go out under the approved name");
    assert_eq!(
        (store["sender_request"]["sender_name"].as_str(), store["sender_request"]["status"].as_str()),
        (Some("SHOP42"), Some("pending"))
    );
    // Saving other settings leaves the waiting request alone.
    br.type_into("#s-tz", "Europe/Athens").await;
    br.click("#save-settings").await;
    wait_toast(&br, "The settings were saved.").await;
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["sender_request"]["status"], "pending", "still waiting");
    br.wait_css("#sender-request").await;
    br.type_into("#key-name", "Shopify").await;
    br.click("#create-key").await;
    br.wait_css("#new-key").await;
    let key = br.text("#new-key").await;
    assert!(key.starts_with("sk_live_"), "{key}");
    br.check_here("settings-new-key").await;
    let (st, _) = t.get("/api/wallet", &key).await;
    assert_eq!(st, 200, "the new key works");
    br.goto("/settings").await;
    br.wait_css("#save-settings").await;
    assert!(br.js("return document.getElementById('new-key')", json!([])).await.is_null(), "shown once");
    let id = br.js("return document.querySelector('.key-row:last-child').id.replace('key-', '')", json!([])).await;
    let id = id.as_str().unwrap().to_string();
    br.click(&format!("#revoke-{id}")).await;
    br.click(&format!("#confirm-revoke-{id}")).await;
    wait_toast(&br, "The key was revoked.").await;
    let (st, e) = t.get("/api/wallet", &key).await;
    crate::harness::assert_error(st, &e, 401, "invalid_api_key");
    br.quit().await;
}

dual!(settings_and_keys);

mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_a_running_send() {
        super::cancel_a_running_send(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn progress_falls_back_to_polling() {
        super::progress_falls_back_to_polling(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retry_failures_and_blocked_sends() {
        super::retry_failures_and_blocked_sends(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn editor_audience_sample_and_greek() {
        super::editor_audience_sample_and_greek(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resend_unknown_after_accepting_duplicates() {
        super::resend_unknown_after_accepting_duplicates(Backend::Sqlite).await
    }
}

/// Without the script, "Review and send" is a page with the preview's numbers, and the typed name
/// is checked by the server: a wrong one sends nothing and says why.
async fn sending_without_the_script(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 100, 1).await;
    let s = t.store("Plain Shop").await;
    seed(&t, &s, 3, 100).await;
    let id = crate::harness::campaign(&t, &s, "Plain").await;
    let cookie = login_cookie(&t, &s).await;
    let c = client();
    let page =
        c.get(format!("{}/campaigns/{id}/review", t.url)).header("cookie", format!("{cookie}; smscast_lang=en")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let (_, preview) = t.get(&format!("/api/campaigns/{id}/preview"), &s.key).await;
    assert!(html.contains(&format!("data-k=\"recipients\">{}<", preview["recipients"])), "the preview's recipients");
    assert!(html.contains(&format!("data-k=\"estimated_cost\">{}<", preview["estimated_cost"])), "the preview's cost");
    assert!(html.contains(&format!("Send 3 SMS · {} credits", preview["estimated_cost"])), "the button says what it does");
    let post = |body: &'static str| {
        c.post(format!("{}/campaigns/{id}/send", t.url))
            .header("cookie", format!("{cookie}; smscast_lang=en"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            // What the browser adds to a form it posts from our own page (the CSRF check wants it).
            .header("sec-fetch-site", "same-origin")
            .body(body)
            .send()
    };
    let res = post("expect_name=1&confirm_name=Plian").await.unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("nothing was sent"), "says why");
    let (_, c1) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!(c1["status"], "draft");
    let res = post("expect_name=1&confirm_name=Plain").await.unwrap();
    assert_eq!(
        (res.status().as_u16(), res.headers()["location"].to_str().unwrap()),
        (303, format!("/campaigns/{id}?done=started").as_str())
    );
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["sent"], 3);
    // A second click on a stale page does not start it again; the page says why.
    let res = post("").await.unwrap();
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("role=\"alert\""));
}

dual!(sending_without_the_script);

/// The operator logs in with an admin key, sees the stores' credits and the queue, and tops a
/// store up; the same form submitted twice credits once.
async fn operator_tops_up_a_store(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Topped Shop").await;
    let br = Browser::start(&t.url, &format!("operator-{b:?}")).await;
    br.goto("/admin").await;
    br.set_lang("en").await;
    br.goto("/admin").await;
    br.wait_css("#admin-login").await;
    br.check_page("admin-login", "en").await;
    br.type_into("#admin-key", "sk_admin_wrong").await;
    br.click("#admin-login").await;
    br.wait_css("#page-error").await;
    br.type_into("#admin-key", &t.admin_key).await;
    br.click("#admin-login").await;
    br.wait_css("#queue").await;
    br.check_page("admin-stores", "en").await;
    let row = format!("#store-{}", s.id);
    assert_eq!(number(&br.text(&format!("{row} [data-k='available']")).await), 0);
    br.click(&format!("#top-up-{}", s.id)).await;
    br.type_into(&format!("#amount-{}", s.id), "2500").await;
    br.type_into(&format!("#reason-{}", s.id), "Invoice 42").await;
    br.check_here("admin-top-up").await;
    // The form's idempotency key, to submit the very same form again below.
    let idem = br.js(&format!("return document.querySelector('{row} input[name=idem]').value"), json!([])).await;
    br.click(&format!("#confirm-top-up-{}", s.id)).await;
    wait_toast(&br, "Credits added.").await;
    assert_eq!(number(&br.text(&format!("{row} [data-k='available']")).await), 2500);
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"], 2500);
    // A double submit (same key) moves nothing more.
    let cookie = format!("smscast_admin={}", t.admin_key);
    let res = client()
        .post(format!("{}/admin/stores/{}/credits", t.url, s.id))
        .header("cookie", cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("amount=2500&reason=Invoice+42&idem={}", idem.as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w["available"], 2500, "credited once");
    // A store key is not an operator key.
    let res = client().get(format!("{}/admin/stores", t.url)).header("cookie", format!("smscast_admin={}", s.key)).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/admin"));
    br.quit().await;
}

dual!(operator_tops_up_a_store);

/// The operator approves a store's sender name on the page: the store sends under it at once.
/// A rejection carries its reason to the store's settings page.
async fn operator_decides_sender_names(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Named Shop").await;
    let other = t.store("Other Shop").await;
    let (st, _) = t.patch("/api/store", &s.key, json!({"sender_name": "NAMED"})).await;
    assert_eq!(st, 200);
    let (_, asked) = t.patch("/api/store", &other.key, json!({"sender_name": "BANK"})).await;
    let (_, before) = t.get("/api/store", &s.key).await;
    assert_ne!(before["sender_name"], "NAMED", "waits for the operator");
    let (_, list) = t.call(reqwest::Method::GET, "/api/admin/senders", Some(&t.admin_key), None).await;
    let id_of = |name: &str| list["items"].as_array().unwrap().iter().find(|r| r["sender_name"] == name).unwrap()["id"].as_i64().unwrap();
    let (named, bank) = (id_of("NAMED"), id_of("BANK"));
    assert_eq!(asked["sender_request"]["id"], bank);
    let br = operator_browser(&t, &format!("senders-{b:?}")).await;
    br.goto("/admin/senders").await;
    br.wait_css("#senders").await;
    br.check_page("admin-senders", "en").await;
    let row = format!("#sender-{named}");
    assert_eq!(br.text(&format!("{row} [data-k='sender_name']")).await, "NAMED");
    assert_eq!(br.text(&format!("{row} [data-k='current']")).await, before["sender_name"].as_str().unwrap());
    br.click(&format!("#approve-{named}")).await;
    wait_toast(&br, "The sender name was approved; the store sends under it now.").await;
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["sender_name"], "NAMED", "the store sends under the approved name");
    assert!(br.js(&format!("return document.querySelector('{row}')"), json!([])).await.is_null(), "no longer waiting");
    br.click(&format!("#reject-{bank}")).await;
    br.type_into(&format!("#reason-{bank}"), "Looks like a bank's name").await;
    br.check_here("admin-senders-reject").await;
    br.click(&format!("#confirm-reject-{bank}")).await;
    br.wait_css("#no-senders").await;
    let (_, store) = t.get("/api/store", &other.key).await;
    assert_ne!(store["sender_name"], "BANK");
    assert_eq!(
        (store["sender_request"]["status"].as_str(), store["sender_request"]["reason"].as_str()),
        (Some("rejected"), Some("Looks like a bank's name"))
    );
    // Deciding again (a stale tab) says why instead of failing blankly.
    let res = client()
        .post(format!("{}/admin/senders/{named}/approve", t.url))
        .header("cookie", format!("smscast_admin={}", t.admin_key))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("no longer waiting for a decision"));
    br.quit().await;
    // The store whose name was refused sees why on its settings page.
    let br = store_browser(&t, &other, &format!("senders-store-{b:?}")).await;
    br.goto("/settings").await;
    br.wait_css("#sender-request").await;
    assert_eq!(br.js("return document.getElementById('sender-request').dataset.status", json!([])).await, "rejected");
    let notice = br.text("#sender-request").await;
    assert!(notice.contains("did not approve “BANK”") && notice.contains("Looks like a bank's name"), "{notice}");
    br.check_here("settings-sender-rejected").await;
    br.quit().await;
}

dual!(operator_decides_sender_names);

/// A contact's page: edit names, tags and consent through the API's update; the badge and the
/// consent history (the API's) follow; another store's contact is not there.
async fn contact_detail_and_consent_history(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Detail Shop").await;
    let other = t.store("Else Shop").await;
    let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": "6912345611", "first_name": "Maria", "consent": "opted_in"})).await;
    assert_eq!(st, 201);
    let id = c["id"].as_i64().unwrap();
    let (_, theirs) = t.post("/api/contacts", &other.key, json!({"phone": "6912345612", "consent": "opted_in"})).await;
    let br = store_browser(&t, &s, &format!("contact-{b:?}")).await;
    br.goto("/contacts").await;
    br.click(&format!("#contact-{id}")).await;
    br.wait_css("#save-contact").await;
    br.check_page("contact", "en").await;
    assert_eq!(br.js("return document.getElementById('consent-badge').dataset.consent", json!([])).await, "opted_in");
    br.type_into("#c-last", "Papadopoulou").await;
    br.type_into("#c-tags", "vip, athens").await;
    br.js("document.getElementById('c-consent').value = 'opted_out'", json!([])).await;
    br.click("#save-contact").await;
    wait_toast(&br, "The contact was saved.").await;
    let (_, c) = t.get(&format!("/api/contacts/{id}"), &s.key).await;
    assert_eq!((c["last_name"].as_str(), c["consent"].as_str()), (Some("Papadopoulou"), Some("opted_out")));
    let mut tags: Vec<&str> = c["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    tags.sort();
    assert_eq!(tags, ["athens", "vip"]);
    assert_eq!(br.js("return document.getElementById('consent-badge').dataset.consent", json!([])).await, "opted_out");
    // The page lists the API's history, newest first.
    let (_, h) = t.get(&format!("/api/contacts/{id}/consent-history"), &s.key).await;
    let rows = br.js("return [...document.querySelectorAll('.history-row')].map(r => r.dataset.to)", json!([])).await;
    let mut api: Vec<Value> = h["items"].as_array().unwrap().iter().map(|e| e["to"].clone()).collect();
    api.reverse();
    assert_eq!(rows, json!(api));
    assert_eq!(rows[0], "opted_out");
    br.check_page("contact-edited", "en").await;
    // A tag the API refuses (too long) is refused here with its message, and the typed values stay.
    let long = "x".repeat(65);
    br.type_into("#c-tags", &format!("vip, {long}")).await;
    br.click("#save-contact").await;
    br.wait_css("#page-error").await;
    assert_eq!(br.js("return document.getElementById('c-tags').value", json!([])).await, format!("vip, {long}"));
    let (_, c) = t.get(&format!("/api/contacts/{id}"), &s.key).await;
    assert_eq!(c["tags"].as_array().unwrap().len(), 2, "nothing changed");
    // Another store's contact: the not-found page, as the API's 404.
    br.goto(&format!("/contacts/{}", theirs["id"])).await;
    br.wait_for("return document.readyState === 'complete'", "the page").await;
    assert!(br.js("return document.getElementById('save-contact')", json!([])).await.is_null());
    let cookie = login_cookie(&t, &s).await;
    let res = client().get(format!("{}/contacts/{}", t.url, theirs["id"])).header("cookie", cookie).send().await.unwrap();
    assert_eq!(res.status(), 404);
    br.quit().await;
}

dual!(contact_detail_and_consent_history);

/// The operator sets and changes rate limits on the page; the admin API lists what the page set,
/// and a bad key is refused with the API's message.
async fn operator_sets_rate_limits(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Rated Shop").await;
    let br = operator_browser(&t, &format!("rates-{b:?}")).await;
    br.goto("/admin/rate-limits").await;
    br.wait_css("#add-rate").await;
    let key = format!("store:{}", s.id);
    br.type_into("#new-rate-key", &key).await;
    br.type_into("#new-rate-value", "50").await;
    br.click("#add-rate").await;
    wait_toast(&br, "The rate limit was saved.").await;
    let row = format!("#rate-store-{}", s.id);
    assert_eq!(br.text(&format!("{row} [data-k='rate']")).await, "50");
    br.check_page("admin-rates", "en").await;
    br.type_into(&format!("{row}-value"), "20").await;
    br.click(&format!("#save-rate-store-{}", s.id)).await;
    br.wait_for(&format!("return (document.querySelector('{row} [data-k=rate]') || {{}}).textContent === '20'"), "changed").await;
    let (_, list) = t.call(reqwest::Method::GET, "/api/admin/rate-limits", Some(&t.admin_key), None).await;
    assert_eq!(list["items"], json!([{"key": key, "rate_per_sec": 20}]));
    br.type_into("#new-rate-key", "nope").await;
    br.type_into("#new-rate-value", "5").await;
    br.click("#add-rate").await;
    br.wait_css("#page-error").await;
    assert_eq!(br.text("#page-error").await, "The key must be provider:{name} or store:{id}.");
    let (_, list) = t.call(reqwest::Method::GET, "/api/admin/rate-limits", Some(&t.admin_key), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing set");
    br.quit().await;
}

dual!(operator_sets_rate_limits);

/// A page form post with a logged-in cookie, as a browser sends it from our own page.
async fn post_form(t: &TestApp, cookie: &str, path: &str, body: &str) -> reqwest::Response {
    client()
        .post(format!("{}{path}", t.url))
        .header("cookie", format!("{cookie}; smscast_lang=en"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The editor's schedule is local time in the store's time zone (Europe/Athens: UTC+3 in summer,
/// +2 in winter); the API stores the instant, and the editor shows it back as typed.
async fn schedule_in_the_store_time_zone(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Zone Shop").await;
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["timezone"], "Europe/Athens");
    let cookie = login_cookie(&t, &s).await;
    let res =
        post_form(&t, &cookie, "/campaigns/new", "name=Later&message=Hi&audience=all&priority=normal&schedule_at=2030-07-01T12%3A00").await;
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().unwrap().to_string();
    let id: i64 = to.trim_start_matches("/campaigns/").split('?').next().unwrap().parse().unwrap();
    let (_, c) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!((c["status"].as_str(), c["schedule_at"].as_str()), (Some("scheduled"), Some("2030-07-01T09:00:00.000Z")), "{c}");
    let edit =
        client().get(format!("{}/campaigns/{id}/edit", t.url)).header("cookie", format!("{cookie}; smscast_lang=en")).send().await.unwrap();
    let html = edit.text().await.unwrap();
    assert!(html.contains("value=\"2030-07-01T12:00\""), "shown as typed");
    assert!(html.contains("Send later (Europe/Athens)"), "the label names the zone");
    let res = post_form(
        &t,
        &cookie,
        &format!("/campaigns/{id}/edit"),
        "name=Later&message=Hi&audience=all&priority=normal&schedule_at=2030-01-15T12%3A00",
    )
    .await;
    assert_eq!(res.status(), 303);
    let (_, c) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!(c["schedule_at"], "2030-01-15T10:00:00.000Z", "winter time is UTC+2");
    // A time that is not a time is refused with the store's own message, and nothing changes.
    let res =
        post_form(&t, &cookie, &format!("/campaigns/{id}/edit"), "name=Later&message=Hi&audience=all&priority=normal&schedule_at=soon")
            .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("role=\"alert\""));
    let (_, c) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!(c["schedule_at"], "2030-01-15T10:00:00.000Z");
}

/// The editor's audience endpoint walks the audience as a send would: its counts are the
/// preview's once saved, its samples are real recipients' texts, and bad input is refused.
async fn audience_preview_counts_like_the_send(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Audience Shop").await;
    let csv = "phone,first_name,tags,consent\n+306900000101,Anna,vip,opted_in\n+306900000102,Bob,vip,opted_in\n\
               +306900000103,Chris,,opted_in\n+306900000104,Dora,vip,opted_out\n";
    let (st, _) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200);
    let body = json!({"audience": {"kind": "tags", "any": ["VIP"]}, "message": "Hi {{first_name}} https://example.com/spring/collection/2026?utm=sms"});
    let (st, a) = t.post("/api/audience/preview", &s.key, body.clone()).await;
    assert_eq!(st, 200, "{a}");
    assert_eq!((a["recipients"].as_i64(), a["excluded"]["opted_out"].as_i64()), (Some(2), Some(1)), "{a}");
    let text = a["samples"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Hi Anna https://sms.example.test/l/"), "a real contact's text, the link shortened: {text}");
    assert_eq!(a["samples"][1]["name"], "Bob");
    // Saved as a campaign, the preview says the same.
    let (_, c) = t.post("/api/campaigns", &s.key, json!({"name": "Vip", "message": body["message"], "audience": body["audience"]})).await;
    let (_, p) = t.get(&format!("/api/campaigns/{}/preview", c["id"]), &s.key).await;
    for k in ["recipients", "segments", "estimated_cost"] {
        assert_eq!(a[k], p[k], "{k}: {a} vs {p}");
    }
    assert_eq!(a["samples"][0]["text"], p["samples"][0]["text"]);
    // No text yet: still counted, nothing to show.
    let (_, a) = t.post("/api/audience/preview", &s.key, json!({"audience": {"kind": "all"}})).await;
    assert_eq!(
        (a["recipients"].as_i64(), a["samples"].as_array().map(Vec::len), a["estimated_cost"].clone()),
        (Some(3), Some(0), Value::Null)
    );
    let (st, e) = t.post("/api/audience/preview", &s.key, json!({"audience": {"kind": "tags", "any": []}, "message": "x"})).await;
    crate::harness::assert_error(st, &e, 422, "invalid_audience");
    let (st, e) = t.post("/api/audience/preview", &s.key, json!({"audience": {"kind": "segment", "id": 999}, "message": "x"})).await;
    assert_eq!(st, 422, "{e}");
    let (st, e) = t.post("/api/audience/preview", &s.key, json!({"audience": {"kind": "all"}, "message": "Hi {{nickname}}"})).await;
    crate::harness::assert_error(st, &e, 422, "unknown_merge_tag");
    let (st, e) = t.call(reqwest::Method::POST, "/api/audience/preview", None, Some(json!({"audience": {"kind": "all"}}))).await;
    crate::harness::assert_error(st, &e, 401, "unauthorized");
}

dual!(schedule_in_the_store_time_zone, audience_preview_counts_like_the_send);

/// In the editor: the recipient count follows the audience, the sample is a real contact's text
/// (another can be picked), links count at their short length, and the Greek switch shows the
/// parts before and after and changes the counter.
async fn editor_audience_sample_and_greek(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Editor Shop").await;
    let csv = "phone,first_name,tags,consent\n+306900000201,Anna,vip,opted_in\n+306900000202,Bob,vip,opted_in\n\
               +306900000203,Chris,,opted_in\n+306900000204,Dora,,opted_out\n";
    let (st, _) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200);
    let br = store_browser(&t, &s, &format!("editor-{b:?}")).await;
    br.goto("/campaigns/new").await;
    br.wait_css("#message").await;
    let message = "Καλημέρα {{first_name}}! Δείτε https://example.com/spring/collection/2026/new-arrivals?utm_source=sms";
    br.type_into("#name", "Greek").await;
    br.type_into("#message", message).await;
    br.wait_for("return document.getElementById('aud-text').textContent.startsWith('Καλημέρα Anna!')", "Anna's text").await;
    assert_eq!(number(&br.text("#aud-recipients").await), 3);
    assert_eq!(number(&br.text("#aud-excluded").await), 1);
    assert!(br.text("#aud-text").await.contains("https://sms.example.test/l/"), "the link as it is sent");
    // The counter's numbers are the analysis endpoint's.
    let (_, a) = t.post("/api/sms/analyze", &s.key, json!({"text": message})).await;
    br.wait_for("return !document.getElementById('cnt-links').hidden", "the link note").await;
    assert!(br.text("#cnt-links").await.contains(&format!("{} characters", a["short_link_chars"])), "links at short length");
    let before = a["with_footer"]["segments"].as_i64().unwrap();
    let after = a["greek_gsm"]["segments"].as_i64().unwrap();
    assert!(after < before, "{a}");
    assert_eq!(number(&br.text("#cnt-greek [data-k='before']").await), before);
    assert_eq!(number(&br.text("#cnt-greek [data-k='after']").await), after);
    assert_eq!(number(&br.text("#cnt-segments").await), before);
    br.click("#greek_gsm").await;
    br.wait_for(&format!("return document.getElementById('cnt-segments').textContent === '{after}'"), "the counter with the switch").await;
    assert_eq!(br.js("return document.getElementById('cnt-encoding').dataset.encoding", json!([])).await, "gsm7");
    // The sample follows the switch: the audience endpoint's text for Anna in capitals.
    let (_, greek) =
        t.post("/api/audience/preview", &s.key, json!({"audience": {"kind": "all"}, "message": message, "greek_gsm": true})).await;
    let anna = greek["samples"][0]["text"].as_str().unwrap().to_string();
    assert!(anna.contains("Anna") && !anna.contains("έ"), "{anna}");
    br.wait_for(&format!("return document.getElementById('aud-text').textContent === {}", json!(anna)), "the sample in capitals").await;
    // Pick another recipient's sample; narrow the audience.
    br.js("const p = document.getElementById('aud-sample'); p.value = '1'; p.dispatchEvent(new Event('change'));", json!([])).await;
    assert!(br.text("#aud-text").await.contains("Bob"), "Bob's text");
    br.check_here("editor-audience").await;
    br.click("#aud-tags").await;
    br.type_into("#tags", "vip").await;
    br.wait_for("return document.getElementById('aud-recipients').textContent === '2'", "the vip count").await;
    br.type_into("#tags", "nobody").await;
    br.wait_for("return document.getElementById('aud-recipients').textContent === '0'", "nobody").await;
    assert_eq!(br.js("return document.getElementById('aud-none').hidden", json!([])).await, json!(false));
    br.quit().await;
}

/// Messages whose outcome is unknown go out again only after the store owner accepts that people
/// may get them twice: the button, the warning, the server's own check, then the send.
async fn resend_unknown_after_accepting_duplicates(b: Backend) {
    // Answers that do not line up with the request: every message's outcome is unknown.
    let sim = SimulatorConfig { short_answers: true, ..SimulatorConfig::default() };
    let (t, sim) = TestApp::start_sending(b, sim, 10, 1).await;
    let s = t.store("Unsure Shop").await;
    seed(&t, &s, 20, 1_000).await;
    let id = crate::harness::campaign(&t, &s, "Unsure").await;
    let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202);
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!(p["unknown"], 20, "{p}");
    sim.set_config(SimulatorConfig::default());
    let br = store_browser(&t, &s, &format!("resend-{b:?}")).await;
    br.goto(&format!("/campaigns/{id}")).await;
    br.wait_css("#resend").await;
    assert_eq!(br.text("#resend").await, "Send again anyway (20)");
    br.click("#resend").await;
    br.wait_for("return document.getElementById('confirm-resend').offsetParent !== null", "the confirmation").await;
    assert!(br.text("#duplicate-warning").await.contains("second copy"), "warns about duplicates");
    br.check_here("resend-confirm").await;
    // Without accepting, the server sends nothing (the browser would not even post the form).
    let cookie = login_cookie(&t, &s).await;
    let res = post_form(&t, &cookie, &format!("/campaigns/{id}/resend-unknown"), "").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("nothing was sent"));
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(p["unknown"], 20, "{p}");
    br.click("#confirm-duplicates").await;
    br.click("#confirm-resend").await;
    wait_toast(&br, "The messages with an unknown outcome are queued again.").await;
    br.wait_for("return document.getElementById('status-badge').dataset.status === 'sent'", "sent").await;
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!((p["sent"].as_i64(), p["unknown"].as_i64()), (Some(20), Some(0)), "{p}");
    br.quit().await;
}

/// The dashboard's "sent today / this month" come from the store's charges: the same numbers as
/// counting the store's sent messages (campaign and test messages alike), and nothing of another
/// store's or of before the day's start.
async fn send_totals_equal_the_sent_messages(b: Backend) {
    use smscast::store::{StoreId, on_db, web::send_totals};
    let (t, _sim) = TestApp::start_sending(b, SimulatorConfig::default(), 7, 1).await;
    let s = t.store("Totals Shop").await;
    let other = t.store("Busy Shop").await;
    seed(&t, &s, 30, 1_000).await;
    seed(&t, &other, 12, 1_000).await;
    for (store, name) in [(&s, "Ours"), (&other, "Theirs")] {
        let id = crate::harness::campaign(&t, store, name).await;
        let (st, _) = t.post(&format!("/api/campaigns/{id}/send"), &store.key, json!({})).await;
        assert_eq!(st, 202);
        t.wait_finished(&store.key, id).await;
    }
    let id = crate::harness::campaign(&t, &s, "Tried").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/test"), &s.key, json!({"phones": ["6940000001"]})).await;
    assert_eq!(st, 202, "{r}");
    let sent_count = || async {
        let n: i64 = on_db!(t.db(), |p| sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE store_id = $1 AND status = 'sent'")
            .bind(s.id)
            .fetch_one(p)
            .await)
        .unwrap();
        n
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sent_count().await < 31 {
        assert!(std::time::Instant::now() < deadline, "the test message was not sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let now = t.clock_now();
    let totals = send_totals(t.db(), StoreId(s.id), now - 3_600_000, now - 86_400_000).await.unwrap();
    assert_eq!((totals.sent_today, totals.sent_month, totals.sent_all), (31, 31, 30), "{totals:?}");
    let later = send_totals(t.db(), StoreId(s.id), now + 60_000, now - 86_400_000).await.unwrap();
    assert_eq!((later.sent_today, later.sent_month), (0, 31), "nothing after the day's start");
}

dual!(send_totals_equal_the_sent_messages);

/// The dashboard's "sent today", "sent this month" and delivery rate follow a send as it goes,
/// without a reload.
async fn dashboard_totals_follow_a_send(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig::default(), 7, 1).await;
    sim.set_config(SimulatorConfig {
        dlr_url: Some(format!("{}/webhooks/mitto/dlr", t.url)),
        dlr_secret: Some(WEBHOOK_SECRET.into()),
        ..SimulatorConfig::default()
    });
    let s = t.store("Live Totals").await;
    seed(&t, &s, 25, 1_000).await;
    let br = store_browser(&t, &s, &format!("live-totals-{b:?}")).await;
    assert_eq!((number(&br.text("#stat-today").await), number(&br.text("#stat-month").await)), (0, 0));
    let hint_shown = "return !document.getElementById('stat-delivery-none').hidden";
    assert_eq!(br.text("#stat-delivery").await, "—");
    assert_eq!(br.js(hint_shown, json!([])).await, json!(true), "no reports yet, and the card says so");
    br.js("window.sameDocument = true", json!([])).await;
    let zone = smscast::http::web::tz::Zone::named("Europe/Athens");
    let day_of_send = zone.date(t.clock_now());
    let id = crate::harness::campaign(&t, &s, "Live").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    t.wait_finished(&s.key, id).await;
    br.wait_for("return document.getElementById('stat-month').textContent === '25' && window.sameDocument", "this month's sends, live")
        .await;
    br.wait_for("return document.getElementById('stat-delivery').textContent === '100.0 %' && window.sameDocument", "the rate, live").await;
    assert_eq!(br.js(hint_shown, json!([])).await, json!(false));
    // Today's count is this month's unless the store's midnight passed during the send.
    if zone.date(t.clock_now()) == day_of_send {
        assert_eq!(number(&br.text("#stat-today").await), 25);
    }
    br.quit().await;
}

dual!(dashboard_totals_follow_a_send);
