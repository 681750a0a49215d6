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
    for secret in [None, Some("wrong"), Some("")] {
        let (st, e) = inbound(&t, secret, &ok).await;
        assert_eq!((st, e["code"].as_str()), (401, Some("invalid_webhook_secret")), "{e}");
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
