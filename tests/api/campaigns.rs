//! Campaigns, segments, the exact preview, credits top-up and the wallet.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn top_up(t: &TestApp, store: &TestStore, amount: i64, key: &str) -> (reqwest::StatusCode, Value) {
    let res = t
        .client
        .post(format!("{}/api/admin/stores/{}/credits", t.url, store.id))
        .bearer_auth(&t.admin_key)
        .header("idempotency-key", key)
        .json(&json!({"amount": amount, "reason": "test credits"}))
        .send()
        .await
        .unwrap();
    let st = res.status();
    (st, res.json().await.unwrap())
}

async fn contacts(t: &TestApp, s: &TestStore, csv: &str) {
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
}

async fn campaign_crud_and_bad_input(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Shop").await;
    let base = json!({"name": "Black Friday", "message": "Hi {{first_name|there}}!", "audience": {"kind": "all"}});
    let (st, c) = t.post("/api/campaigns", &s.key, base.clone()).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["status"], "draft");
    assert_eq!(c["priority"], "normal");
    let id = c["id"].as_i64().unwrap();
    let cases = [
        (json!({"name": "  ", "message": "x", "audience": {"kind": "all"}}), 422, "empty_name"),
        (base.clone(), 409, "duplicate_name"),
        (json!({"name": "b", "message": "Hi {{nickname}}", "audience": {"kind": "all"}}), 422, "unknown_merge_tag"),
        (json!({"name": "c", "message": "a".repeat(1601), "audience": {"kind": "all"}}), 422, "message_too_long"),
        (json!({"name": "d", "message": "x", "audience": {"kind": "all"}, "sender": "no!"}), 422, "invalid_sender"),
        (json!({"name": "e", "message": "x", "audience": {"kind": "all"}, "schedule_at": "2001-01-01T00:00:00Z"}), 422, "schedule_in_past"),
        (json!({"name": "f", "message": "x", "audience": {"kind": "segment", "id": 999}}), 422, "unknown_segment"),
        (json!({"name": "g", "message": "x", "audience": {"kind": "everyone"}}), 422, "invalid_field"),
        (json!({"name": "h", "message": "x", "audience": {"kind": "all"}, "priority": "asap"}), 422, "invalid_field"),
        (json!({"name": "i", "message": "Use {{discount_code}}", "audience": {"kind": "all"}}), 422, "missing_discount_code"),
    ];
    for (body, status, code) in cases {
        let (st, e) = t.post("/api/campaigns", &s.key, body).await;
        assert_error(st, &e, status, code);
    }
    let (_, list) = t.get("/api/campaigns", &s.key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "bad input changed nothing");
    // Scheduling makes it scheduled; unscheduling makes it a draft again; both are in its history.
    let (st, c) =
        t.patch(&format!("/api/campaigns/{id}"), &s.key, json!({"schedule_at": "2099-01-01T09:00:00Z", "priority": "urgent"})).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!((c["status"].as_str(), c["priority"].as_str()), (Some("scheduled"), Some("urgent")));
    let (_, c) = t.patch(&format!("/api/campaigns/{id}"), &s.key, json!({"schedule_at": null})).await;
    assert_eq!(c["status"], "draft");
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let tos: Vec<&str> = h["items"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(tos, ["draft", "scheduled", "draft"]);
    let (_, filtered) = t.get("/api/campaigns?status=sent", &s.key).await;
    assert_eq!(filtered["items"], json!([]));
    let (st, e) = t.get("/api/campaigns?status=nope", &s.key).await;
    assert_error(st, &e, 422, "invalid_status");
    let (st, _) = t.delete(&format!("/api/campaigns/{id}"), &s.key).await;
    assert_eq!(st, 204);
}

async fn preview_is_exact(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Preview").await;
    contacts(
        &t,
        &s,
        "phone,first_name,tags,consent\n6911111111,Anna,vip,opted_in\n6922222222,Μαρία,vip,opted_in\n6933333333,Bob,,opted_out\n6944444444,Eve,vip,\n2101234567,Land,vip,opted_in\n",
    )
    .await;
    let (_, c) = t.post("/api/campaigns", &s.key, json!({"name": "VIP", "message": "Hi {{first_name}}, 20% off with {{discount_code}}", "discount_code": "VIP20", "audience": {"kind": "tags", "any": ["vip"]}})).await;
    let id = c["id"].as_i64().unwrap();
    let (st, p) = t.get(&format!("/api/campaigns/{id}/preview"), &s.key).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["recipients"], 2);
    assert_eq!(p["excluded"], json!({"opted_out": 0, "no_consent": 1, "invalid_phone": 1, "duplicate": 0}));
    assert_eq!(p["encoding"], json!({"gsm7": 1, "ucs2": 1}), "Μαρία makes her message UCS-2");
    let samples = p["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2);
    let anna = &samples[0];
    let text = anna["text"].as_str().unwrap();
    assert!(text.starts_with("Hi Anna, 20% off with VIP20\n"), "{text}");
    assert!(text.contains("https://sms.example.test/u/"), "the unsubscribe link is part of what is counted: {text}");
    let total: i64 = samples.iter().map(|s| s["segments"].as_i64().unwrap()).sum();
    assert_eq!(p["segments"], total);
    assert_eq!(p["estimated_cost"], total, "one credit per segment");
    assert_eq!(p["available_credits"], 0);
    assert_eq!(p["can_send"], false);
    let codes: Vec<&str> = p["blocking_reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["insufficient_credits"]);
    let (st, _) = top_up(&t, &s, 100, "k1").await;
    assert_eq!(st, 201);
    let (_, p) = t.get(&format!("/api/campaigns/{id}/preview"), &s.key).await;
    assert_eq!(p["can_send"], true, "{p}");
    assert_eq!(p["balance_after"], 100 - total);
    // Nobody in the audience.
    let (_, c2) =
        t.post("/api/campaigns", &s.key, json!({"name": "Nobody", "message": "x", "audience": {"kind": "tags", "all": ["ghost"]}})).await;
    let (_, p2) = t.get(&format!("/api/campaigns/{}/preview", c2["id"]), &s.key).await;
    assert_eq!(p2["blocking_reasons"][0]["code"], "no_recipients");
}

async fn greek_gsm_preview_shows_the_saving(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Greek").await;
    contacts(&t, &s, "phone,first_name,consent\n6911111111,Anna,opted_in\n").await;
    let msg = "Καλημέρα! Μεγάλες εκπτώσεις σε όλα τα προϊόντα του καταστήματος μας αυτή την εβδομάδα, μην τις χάσετε!";
    let (_, c) =
        t.post("/api/campaigns", &s.key, json!({"name": "G", "message": msg, "audience": {"kind": "all"}, "greek_gsm": true})).await;
    let (_, p) = t.get(&format!("/api/campaigns/{}/preview", c["id"]), &s.key).await;
    assert_eq!(p["encoding"]["gsm7"], 1, "{p}");
    let g = &p["greek_gsm"];
    assert_eq!(g["enabled"], true);
    assert!(g["segments_without"].as_i64().unwrap() > g["segments_with"].as_i64().unwrap(), "{g}");
    assert!(p["samples"][0]["text"].as_str().unwrap().starts_with("KAΛHMEPA!"), "{p}");
}

async fn segments_select_contacts(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Segments").await;
    contacts(&t, &s, "phone,first_name,email,tags,consent\n6911111111,Anna,anna@shop.gr,vip,yes\n6922222222,Bob,bob@other.com,vip,yes\n6933333333,Carl,,,yes\n").await;
    let (st, seg) = t
        .post("/api/segments", &s.key, json!({"name": "VIP at shop", "match": "all", "rules": [{"field": "tag", "op": "has", "value": "VIP"}, {"field": "email", "op": "contains", "value": "@SHOP"}]}))
        .await;
    assert_eq!(st, 201, "{seg}");
    let (st, e) = t.post("/api/segments", &s.key, json!({"name": "bad", "rules": [{"field": "shoe", "op": "eq", "value": "1"}]})).await;
    assert_error(st, &e, 422, "invalid_segment");
    let (_, c) = t
        .post("/api/campaigns", &s.key, json!({"name": "Seg", "message": "Hello", "audience": {"kind": "segment", "id": seg["id"]}}))
        .await;
    let (_, p) = t.get(&format!("/api/campaigns/{}/preview", c["id"]), &s.key).await;
    assert_eq!(p["recipients"], 1, "{p}");
    assert_eq!(p["samples"][0]["phone"], "+306911111111");
    // Another store cannot use this segment, nor see it.
    let other = t.store("Other").await;
    let (st, e) = t
        .post("/api/campaigns", &other.key, json!({"name": "Steal", "message": "x", "audience": {"kind": "segment", "id": seg["id"]}}))
        .await;
    assert_error(st, &e, 422, "unknown_segment");
    let (st, e) = t.get(&format!("/api/segments/{}", seg["id"]), &other.key).await;
    assert_error(st, &e, 404, "not_found");
}

async fn top_up_is_idempotent(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Wallet").await;
    let (st, first) = top_up(&t, &s, 500, "pay-1").await;
    assert_eq!(st, 201, "{first}");
    let (st, replay) = top_up(&t, &s, 500, "pay-1").await;
    assert_eq!(st, 201);
    assert_eq!(replay["transfer_id"], first["transfer_id"]);
    let (st, e) = top_up(&t, &s, 900, "pay-1").await;
    assert_error(st, &e, 409, "idempotency_key_reused");
    for bad in [0, -5] {
        let (st, e) = top_up(&t, &s, bad, &format!("bad-{bad}")).await;
        assert_error(st, &e, 422, "invalid_amount");
    }
    let (st, e) = t
        .call(Method::POST, &format!("/api/admin/stores/{}/credits", s.id), Some(&t.admin_key), Some(json!({"amount": 5, "reason": "x"})))
        .await;
    assert_error(st, &e, 400, "missing_idempotency_key");
    let (st, e) = t.post(&format!("/api/admin/stores/{}/credits", s.id), &s.key, json!({"amount": 5, "reason": "x"})).await;
    assert_error(st, &e, 401, "invalid_api_key");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!(w, json!({"balance": 500, "held": 0, "available": 500}));
    let (_, entries) = t.get("/api/wallet/entries", &s.key).await;
    let items = entries["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!((items[0]["kind"].as_str(), items[0]["amount"].as_i64()), (Some("top_up"), Some(500)));
}

async fn campaigns_of_other_stores_are_not_found(b: Backend) {
    let t = TestApp::start(b).await;
    let a = t.store("Owner").await;
    let other = t.store("Intruder").await;
    let (_, c) = t.post("/api/campaigns", &a.key, json!({"name": "Mine", "message": "x", "audience": {"kind": "all"}})).await;
    let id = c["id"].as_i64().unwrap();
    for (m, path, body) in [
        (Method::GET, format!("/api/campaigns/{id}"), None),
        (Method::PATCH, format!("/api/campaigns/{id}"), Some(json!({"name": "Yours"}))),
        (Method::DELETE, format!("/api/campaigns/{id}"), None),
        (Method::GET, format!("/api/campaigns/{id}/preview"), None),
        (Method::GET, format!("/api/campaigns/{id}/history"), None),
    ] {
        let (st, e) = t.call(m, &path, Some(&other.key), body).await;
        assert_error(st, &e, 404, "not_found");
    }
    let (_, mine) = t.get(&format!("/api/campaigns/{id}"), &a.key).await;
    assert_eq!(mine["name"], "Mine");
}

dual!(
    campaign_crud_and_bad_input,
    preview_is_exact,
    greek_gsm_preview_shows_the_saving,
    segments_select_contacts,
    top_up_is_idempotent,
    campaigns_of_other_stores_are_not_found
);
