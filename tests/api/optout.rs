//! After the send: unsubscribe links and inbound keyword replies.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, campaign, seed};
use serde_json::{Value, json};
use smscast::store::on_db;

/// Launches a campaign to every contact of the store (no engine runs: the messages stay pending,
/// which is all a link needs) and returns the campaign id and its messages as (id, contact id, phone).
async fn launched(t: &TestApp, s: &TestStore, name: &str) -> (i64, Vec<(i64, i64, String)>) {
    let id = campaign(t, s, name).await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let rows: Vec<(i64, i64, String)> =
        on_db!(t.db(), |p| sqlx::query_as("SELECT id, contact_id, phone FROM messages WHERE campaign_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(p)
            .await)
        .unwrap();
    (id, rows)
}

async fn code_of(t: &TestApp, message: i64) -> String {
    smscast::store::settings::read_code_key(t.db()).await.unwrap().code(message)
}

/// A page as a browser gets it: status, content type, text.
async fn page(t: &TestApp, method: reqwest::Method, path: &str) -> (u16, String, String) {
    let mut req = t.client.request(method.clone(), format!("{}{path}", t.url));
    if method == reqwest::Method::POST {
        req = req.header("content-type", "application/x-www-form-urlencoded").body("");
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ct, res.text().await.unwrap())
}

async fn contact(t: &TestApp, s: &TestStore, id: i64) -> Value {
    let (st, c) = t.get(&format!("/api/contacts/{id}"), &s.key).await;
    assert_eq!(st, 200, "{c}");
    c
}

async fn unsubscribed(t: &TestApp, s: &TestStore, campaign: i64) -> i64 {
    let (_, c) = t.get(&format!("/api/campaigns/{campaign}"), &s.key).await;
    c["unsubscribed"].as_i64().unwrap_or_else(|| panic!("unsubscribed on {c}"))
}

async fn the_link_page_asks_and_only_the_confirmation_unsubscribes(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Anna Shoes").await;
    seed(&t, &s, 3, 1_000).await;
    let (id, msgs) = launched(&t, &s, "Sale").await;
    let (mid, cid, phone) = msgs[1].clone();
    let code = code_of(&t, mid).await;
    let path = format!("/u/{code}");

    // Opening the link (as a person or a link scanner would) changes nothing, however often.
    for _ in 0..2 {
        let (st, ct, html) = page(&t, reqwest::Method::GET, &path).await;
        assert_eq!((st, ct.as_str()), (200, "text/html; charset=utf-8"), "{html}");
        assert!(html.contains("Anna Shoes"), "the store's name: {html}");
        assert!(html.contains("<html lang=\"el\">"), "the store's language (Greek by default): {html}");
        assert!(html.contains(&format!("+30•••••••{}", &phone[phone.len() - 3..])), "the masked number: {html}");
        assert!(!html.contains(&phone), "never the whole number: {html}");
        assert_eq!(html.matches("<form method=\"post\">").count(), 1, "one confirm form posting to the same address");
        assert_eq!(html.matches("<button").count(), 1, "one button");
        assert!(!html.contains("<script") && !html.contains("style="), "no inline script or style");
    }
    assert_eq!(contact(&t, &s, cid).await["consent"], "opted_in");
    assert_eq!(unsubscribed(&t, &s, id).await, 0);

    // Confirming opts the contact out, with the source, campaign and time in its history.
    t.clock.advance(5_000);
    let (st, ct, html) = page(&t, reqwest::Method::POST, &path).await;
    assert_eq!((st, ct.as_str()), (200, "text/html; charset=utf-8"), "{html}");
    assert!(html.contains("Η διαγραφή ολοκληρώθηκε"), "{html}");
    let c = contact(&t, &s, cid).await;
    assert_eq!((c["consent"].as_str(), c["consent_source"].as_str()), (Some("opted_out"), Some("unsubscribe_link")), "{c}");
    let (_, h) = t.get(&format!("/api/contacts/{cid}/consent-history"), &s.key).await;
    let last = h["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str(), last["source"].as_str()),
        (Some("opted_in"), Some("opted_out"), Some("unsubscribe_link"))
    );
    assert_eq!(last["campaign_id"].as_i64(), Some(id), "{last}");
    assert_eq!(last["at"], c["consent_changed_at"], "{last}");
    assert_eq!(unsubscribed(&t, &s, id).await, 1);
    let (_, r) = t.get(&format!("/api/campaigns/{id}/report"), &s.key).await;
    assert_eq!(r["unsubscribes"], 1, "the campaign report counts it: {r}");

    // A second confirmation (a double tap, a refresh) changes and counts nothing more.
    let (st, _, html) = page(&t, reqwest::Method::POST, &path).await;
    assert_eq!(st, 200, "{html}");
    assert_eq!(unsubscribed(&t, &s, id).await, 1);
    let (_, h2) = t.get(&format!("/api/contacts/{cid}/consent-history"), &s.key).await;
    assert_eq!(h2["items"].as_array().unwrap().len(), h["items"].as_array().unwrap().len());
    // The page now says so instead of asking again; the other recipients are untouched.
    let (_, _, html) = page(&t, reqwest::Method::GET, &path).await;
    assert!(!html.contains("<form"), "{html}");
    for (_, other, _) in [&msgs[0], &msgs[2]] {
        assert_eq!(contact(&t, &s, *other).await["consent"], "opted_in");
    }
}

async fn the_page_speaks_the_stores_language(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Corner Shop").await;
    let (st, r) = t.patch("/api/store", &s.key, json!({"language": "en"})).await;
    assert_eq!(st, 200, "{r}");
    seed(&t, &s, 1, 100).await;
    let (_, msgs) = launched(&t, &s, "Hello").await;
    let code = code_of(&t, msgs[0].0).await;
    let (_, _, html) = page(&t, reqwest::Method::GET, &format!("/u/{code}")).await;
    assert!(html.contains("<html lang=\"en\">") && html.contains("Unsubscribe") && html.contains("Corner Shop"), "{html}");
    let (_, _, html) = page(&t, reqwest::Method::POST, &format!("/u/{code}")).await;
    assert!(html.contains("You are unsubscribed"), "{html}");
}

async fn a_code_only_reaches_its_own_messages_contact(b: Backend) {
    let t = TestApp::start(b).await;
    let (a, z) = (t.store("Store A").await, t.store("Store Z").await);
    // The same numbers are contacts of both stores.
    seed(&t, &a, 2, 100).await;
    seed(&t, &z, 2, 100).await;
    let (za, zmsgs) = launched(&t, &z, "Z sale").await;
    let (aa, amsgs) = launched(&t, &a, "A sale").await;
    let code = code_of(&t, zmsgs[0].0).await;
    let (st, _, _) = page(&t, reqwest::Method::POST, &format!("/u/{code}")).await;
    assert_eq!(st, 200);
    assert_eq!(contact(&t, &z, zmsgs[0].1).await["consent"], "opted_out");
    assert_eq!(contact(&t, &z, zmsgs[1].1).await["consent"], "opted_in");
    for (_, cid, _) in &amsgs {
        assert_eq!(contact(&t, &a, *cid).await["consent"], "opted_in", "the other store's contact with the same number is untouched");
    }
    assert_eq!((unsubscribed(&t, &z, za).await, unsubscribed(&t, &a, aa).await), (1, 0));
}

async fn unknown_codes_get_a_friendly_page(b: Backend) {
    let t = TestApp::start(b).await;
    // Before anything was ever sent there is no key, and no code names anything.
    let (st, ct, html) = page(&t, reqwest::Method::GET, "/u/ABCDEFGHJK").await;
    assert_eq!((st, ct.as_str()), (404, "text/html; charset=utf-8"), "{html}");
    assert!(html.contains("Link not found"), "{html}");
    let s = t.store("Shop").await;
    seed(&t, &s, 1, 100).await;
    let (_, msgs) = launched(&t, &s, "Sale").await;
    let real = code_of(&t, msgs[0].0).await;
    let unknown = code_of(&t, msgs[0].0 + 1_000).await;
    let mut tampered = real.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    for bad in [unknown, String::from_utf8(tampered).unwrap(), "short".into(), "ABCDEFGH0I".into(), format!("{real}x")] {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let (st, ct, html) = page(&t, method.clone(), &format!("/u/{bad}")).await;
            assert_eq!((st, ct.as_str()), (404, "text/html; charset=utf-8"), "{method} {bad}: {html}");
            assert!(html.contains("Ο σύνδεσμος δεν βρέθηκε"), "{html}");
        }
    }
    assert_eq!(contact(&t, &s, msgs[0].1).await["consent"], "opted_in");
    let (st, ct, css) = page(&t, reqwest::Method::GET, "/public.css").await;
    assert_eq!((st, ct.as_str()), (200, "text/css; charset=utf-8"), "{css}");
}

dual!(
    the_link_page_asks_and_only_the_confirmation_unsubscribes,
    the_page_speaks_the_stores_language,
    a_code_only_reaches_its_own_messages_contact,
    unknown_codes_get_a_friendly_page,
);

/// Posts an inbound webhook body with the given secret header (none when `None`).
async fn inbound(t: &TestApp, secret: Option<&str>, body: &str) -> (u16, Value) {
    let mut req =
        t.client.post(format!("{}/webhooks/mitto/inbound", t.url)).header("content-type", "application/json").body(body.to_string());
    if let Some(s) = secret {
        req = req.header("x-webhook-secret", s);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn stored_inbound(t: &TestApp) -> Vec<(Option<i64>, String, String, bool)> {
    on_db!(t.db(), |p| sqlx::query_as("SELECT store_id, text, action, changed FROM inbound_messages ORDER BY id").fetch_all(p).await)
        .unwrap()
}

async fn stop_from_a_number_only_affects_the_store_that_sent_to_it(b: Backend) {
    let t = TestApp::start(b).await;
    let (a, z) = (t.store("Store A").await, t.store("Store Z").await);
    seed(&t, &a, 2, 100).await;
    seed(&t, &z, 2, 100).await;
    // Only Z messages the numbers; both stores have them as contacts.
    let (zc, zmsgs) = launched(&t, &z, "Z sale").await;
    let (_, phone) = (zmsgs[0].1, zmsgs[0].2.clone());
    let a_contacts: Vec<(i64, String)> =
        on_db!(t.db(), |p| sqlx::query_as("SELECT id, phone FROM contacts WHERE store_id = $1").bind(a.id).fetch_all(p).await).unwrap();
    let a_same = a_contacts.iter().find(|(_, p)| *p == phone).unwrap().0;

    let (st, r) = inbound(&t, Some(crate::harness::WEBHOOK_SECRET), &json!({"from": phone, "text": "Στοπ!"}).to_string()).await;
    assert_eq!(st, 200, "{r}");
    let zcontact = contact(&t, &z, zmsgs[0].1).await;
    assert_eq!((zcontact["consent"].as_str(), zcontact["consent_source"].as_str()), (Some("opted_out"), Some("inbound_sms")), "{zcontact}");
    let (_, h) = t.get(&format!("/api/contacts/{}/consent-history", zmsgs[0].1), &z.key).await;
    assert_eq!(h["items"].as_array().unwrap().last().unwrap()["campaign_id"].as_i64(), Some(zc), "{h}");
    assert_eq!(contact(&t, &a, a_same).await["consent"], "opted_in", "the store that never messaged the number is untouched");
    assert_eq!(contact(&t, &z, zmsgs[1].1).await["consent"], "opted_in", "another number is untouched");

    // START opts back in where the number was messaged; HELP is recorded and changes nothing.
    let (st, r) = inbound(
        &t,
        Some(crate::harness::WEBHOOK_SECRET),
        &json!({"msisdn": phone.trim_start_matches('+'), "message": "start"}).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(contact(&t, &z, zmsgs[0].1).await["consent"], "opted_in");
    let (st, _) =
        inbound(&t, Some(crate::harness::WEBHOOK_SECRET), &json!({"sender": {"number": phone}, "text": "HELP"}).to_string()).await;
    assert_eq!(st, 200);
    // A reply from a number no store messaged is kept, without a store.
    let (st, _) = inbound(&t, Some(crate::harness::WEBHOOK_SECRET), &json!({"from": "+306999999999", "text": "STOP"}).to_string()).await;
    assert_eq!(st, 200);
    let rows = stored_inbound(&t).await;
    let summary: Vec<(Option<i64>, &str, bool)> = rows.iter().map(|(s, _, a, c)| (*s, a.as_str(), *c)).collect();
    assert_eq!(
        summary,
        [(Some(z.id), "opt_out", true), (Some(z.id), "opt_in", true), (Some(z.id), "help", false), (None, "opt_out", false)]
    );
    assert_eq!(contact(&t, &z, zmsgs[0].1).await["consent"], "opted_in");

    // Once both stores messaged the number, a STOP reaches both (each store that messaged it
    // within the window), and a store's own keyword works for that store only.
    let (st, r) = t.call(reqwest::Method::PUT, "/api/store/keywords", Some(&a.key), Some(json!({"opt_out": ["Αρκετά"]}))).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["opt_out"], json!(["APKETA"]), "{r}");
    launched(&t, &a, "A sale").await;
    let (st, r) = inbound(&t, Some(crate::harness::WEBHOOK_SECRET), &json!({"from": phone, "text": "αρκετά"}).to_string()).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(contact(&t, &a, a_same).await["consent"], "opted_out");
    assert_eq!(contact(&t, &z, zmsgs[0].1).await["consent"], "opted_in", "Z has no such keyword");
    let (st, _) = inbound(&t, Some(crate::harness::WEBHOOK_SECRET), &json!([{"from": phone, "text": "unsubscribe"}]).to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(contact(&t, &z, zmsgs[0].1).await["consent"], "opted_out");
}

async fn inbound_refuses_strangers_and_malformed_bodies(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Shop").await;
    seed(&t, &s, 1, 100).await;
    let (_, msgs) = launched(&t, &s, "Sale").await;
    let ok = json!({"from": msgs[0].2, "text": "STOP"}).to_string();
    // The same check as the delivery-report webhook: a missing header is unauthorized, a wrong one invalid.
    for (secret, code) in [(None, "unauthorized"), (Some("wrong"), "invalid_webhook_secret"), (Some(""), "invalid_webhook_secret")] {
        let (st, e) = inbound(&t, secret, &ok).await;
        assert_eq!((st, e["code"].as_str()), (401, Some(code)), "{e}");
    }
    let big = json!({"from": msgs[0].2, "text": "x".repeat(300 * 1024)}).to_string();
    let bad = [
        ("not json", 400),
        ("[]", 400),
        (r#"{"text": "STOP"}"#, 400),
        (r#"{"from": "not a number", "text": "STOP"}"#, 400),
        (r#"[{"from": "+306912345678", "text": "STOP"}, {"from": "+306912345678"}]"#, 400),
        (big.as_str(), 413),
    ];
    for (body, want) in bad {
        let (st, e) = inbound(&t, Some(crate::harness::WEBHOOK_SECRET), body).await;
        assert_eq!(st, want, "{e}");
        assert_eq!(e["ok"], false, "{e}");
    }
    assert!(stored_inbound(&t).await.is_empty(), "nothing stored");
    assert_eq!(contact(&t, &s, msgs[0].1).await["consent"], "opted_in");
    // An app with no secret configured refuses everything, even an empty header.
    let open = TestApp::start_with(b, |c| c.webhook_secrets.clear()).await;
    for secret in [None, Some(""), Some(crate::harness::WEBHOOK_SECRET)] {
        let (st, _) = inbound(&open, secret, &ok).await;
        assert_eq!(st, 401);
    }
}

dual!(stop_from_a_number_only_affects_the_store_that_sent_to_it, inbound_refuses_strangers_and_malformed_bodies);

const LONG_URL: &str = "https://shop.example.gr/collections/winter-sale-2026?utm_source=sms&utm_campaign=winter";

/// The texts the API lists for a campaign's messages, by message id.
async fn texts(t: &TestApp, s: &TestStore, campaign: i64) -> Vec<(i64, String)> {
    let (st, page) = t.get(&format!("/api/campaigns/{campaign}/messages?limit=500"), &s.key).await;
    assert_eq!(st, 200, "{page}");
    page["items"].as_array().unwrap().iter().map(|m| (m["id"].as_i64().unwrap(), m["text"].as_str().unwrap().to_string())).collect()
}

/// The link codes in a text, in order.
fn link_codes(text: &str) -> Vec<String> {
    text.match_indices("https://sms.example.test/l/").map(|(i, p)| text[i + p.len()..i + p.len() + 10].to_string()).collect()
}

async fn visit(t: &TestApp, method: reqwest::Method, code: &str, ua: Option<&str>) -> (u16, Option<String>) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.request(method, format!("{}/l/{code}", t.url));
    if let Some(ua) = ua {
        req = req.header("user-agent", ua);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.headers().get("location").map(|v| v.to_str().unwrap().to_string()))
}

async fn clicks(t: &TestApp, s: &TestStore, campaign: i64) -> Value {
    let (st, l) = t.get(&format!("/api/campaigns/{campaign}/links"), &s.key).await;
    assert_eq!(st, 200, "{l}");
    l
}

const PHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

async fn tracked_links_redirect_and_count_people_not_previews(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Shop").await;
    seed(&t, &s, 3, 1_000).await;
    let message = format!("Winter sale: {LONG_URL} and www.shop.gr/new.");
    let (st, c) = t.post("/api/campaigns", &s.key, json!({"name": "Links", "message": message, "audience": {"kind": "all"}})).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    // The preview shows and prices the short links, not the long one.
    let (_, p) = t.get(&format!("/api/campaigns/{id}/preview"), &s.key).await;
    let sample = p["samples"][0]["text"].as_str().unwrap().to_string();
    assert!(
        !sample.contains(LONG_URL) && sample.contains("https://sms.example.test/l/xxxxxxxxxx and https://sms.example.test/l/xxxxxxxxxx."),
        "{sample}"
    );
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    assert_eq!(r["segments"], p["segments"], "the send costs what the preview said: {r} {p}");
    let msgs = texts(&t, &s, id).await;
    assert_eq!(msgs.len(), 3);
    for (_, text) in &msgs {
        assert_eq!(text.chars().count(), sample.chars().count(), "{text}");
        assert_eq!(link_codes(text).len(), 2, "{text}");
    }
    let first = link_codes(&msgs[0].1);
    let second = link_codes(&msgs[1].1);
    assert_ne!(first, second, "codes per recipient");

    // Previews and HEAD requests redirect too, but are not clicks.
    for (method, ua) in [
        (reqwest::Method::GET, Some("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)")),
        (reqwest::Method::GET, Some("WhatsApp/2.23.20.0 A")),
        (reqwest::Method::GET, None),
        (reqwest::Method::HEAD, Some(PHONE_UA)),
    ] {
        assert_eq!(visit(&t, method, &first[0], ua).await, (302, Some(LONG_URL.to_string())));
    }
    let l = clicks(&t, &s, id).await;
    assert_eq!((l["clicks"].as_i64(), l["unique_clicks"].as_i64()), (Some(0), Some(0)), "{l}");

    // A person's click counts; again counts in total but not as another unique click.
    t.clock.advance(1_000);
    assert_eq!(visit(&t, reqwest::Method::GET, &first[0], Some(PHONE_UA)).await, (302, Some(LONG_URL.to_string())));
    assert_eq!(visit(&t, reqwest::Method::GET, &first[0], Some(PHONE_UA)).await.0, 302);
    assert_eq!(visit(&t, reqwest::Method::GET, &first[1], Some(PHONE_UA)).await, (302, Some("https://www.shop.gr/new".to_string())));
    assert_eq!(visit(&t, reqwest::Method::GET, &second[0], Some(PHONE_UA)).await.0, 302);
    let l = clicks(&t, &s, id).await;
    assert_eq!((l["clicks"].as_i64(), l["unique_clicks"].as_i64()), (Some(4), Some(2)), "{l}");
    let per_link: Vec<(String, i64, i64)> = l["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["url"].as_str().unwrap().to_string(), x["clicks"].as_i64().unwrap(), x["unique_clicks"].as_i64().unwrap()))
        .collect();
    assert_eq!(per_link, [(LONG_URL.to_string(), 3, 2), ("https://www.shop.gr/new".to_string(), 1, 1)]);
    let (_, c) = t.get(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!((c["clicks"].as_i64(), c["unique_clicks"].as_i64()), (Some(4), Some(2)), "counters on the campaign: {c}");
    // The campaign report shows the same clicks, and its hourly series counts them too.
    let (_, r) = t.get(&format!("/api/campaigns/{id}/report"), &s.key).await;
    assert_eq!((r["clicks_total"].as_i64(), r["clicks_unique"].as_i64()), (Some(4), Some(2)), "report: {r}");
    let series_clicks: i64 = r["series"].as_array().unwrap().iter().map(|h| h["clicks"].as_i64().unwrap()).sum();
    assert_eq!(series_clicks, 4, "report series: {r}");

    // Another store sees no such campaign.
    let other = t.store("Other").await;
    let (st, e) = t.get(&format!("/api/campaigns/{id}/links"), &other.key).await;
    crate::harness::assert_error(st, &e, 404, "not_found");

    // Every visit is recorded with its time, message, contact and user agent.
    let rows: Vec<(i64, Option<i64>, String, Option<String>)> = on_db!(t.db(), |p| sqlx::query_as(
        "SELECT message_id, contact_id, kind, user_agent FROM clicks WHERE campaign_id = $1 ORDER BY id"
    )
    .bind(id)
    .fetch_all(p)
    .await)
    .unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(kinds, ["bot", "bot", "bot", "head", "click", "click", "click", "click"]);
    assert!(rows.iter().all(|r| r.1.is_some()), "the contact is known");
    assert_eq!(rows[4].0, msgs[0].0);
    assert_eq!(rows[4].3.as_deref(), Some(PHONE_UA));

    // Unknown codes (and an unsubscribe code used as a link code) get the friendly page.
    let unsub = code_of(&t, msgs[0].0).await;
    for bad in ["ABCDEFGHJK", "short", unsub.as_str()] {
        let (st, ct, html) = page(&t, reqwest::Method::GET, &format!("/l/{bad}")).await;
        assert_eq!((st, ct.as_str()), (404, "text/html; charset=utf-8"), "{bad}: {html}");
    }
}

/// A campaign started before links were tracked (the migration marks it) lists and sends its texts
/// with the URLs as written, as they were costed.
async fn campaigns_started_before_tracking_keep_their_texts(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Shop").await;
    seed(&t, &s, 2, 1_000).await;
    let (st, c) =
        t.post("/api/campaigns", &s.key, json!({"name": "Old", "message": format!("Sale: {LONG_URL}"), "audience": {"kind": "all"}})).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    on_db!(t.db(), |p| sqlx::query("UPDATE campaigns SET track_links = FALSE WHERE id = $1")
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    for (_, text) in texts(&t, &s, id).await {
        assert!(text.starts_with(&format!("Sale: {LONG_URL}\n")) && link_codes(&text).is_empty(), "{text}");
    }
}

dual!(tracked_links_redirect_and_count_people_not_previews, campaigns_started_before_tracking_keep_their_texts);
