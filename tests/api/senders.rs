//! Sender names as a phishing channel: a store may ask for any sender name, but only the platform
//! operator can let it send under one.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn pending(t: &TestApp) -> Vec<Value> {
    let (st, list) = t.get("/api/admin/senders", &t.admin_key).await;
    assert_eq!(st, 200, "{list}");
    list["items"].as_array().unwrap().clone()
}

async fn sender_names_need_operator_approval(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Sender Shop").await;
    let other = t.store("Other Shop").await;
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["sender_name"], "SenderShop", "the sender the operator created the store with");
    assert!(store["sender_request"].is_null(), "{store}");

    // Asking for a new name stores the request; the store keeps sending as before.
    let (st, p) = t.patch("/api/store", &s.key, json!({"sender_name": "PayPaI", "language": "en"})).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["sender_name"], "SenderShop", "not before the operator approves: {p}");
    assert_eq!(p["language"], "en", "the other settings change at once");
    assert_eq!(p["sender_request"]["sender_name"], "PayPaI");
    assert_eq!(p["sender_request"]["status"], "pending");
    assert_eq!(t.get("/api/store", &s.key).await.1["sender_name"], "SenderShop");
    // Nor can a campaign name it as its own sender.
    let (st, e) =
        t.post("/api/campaigns", &s.key, json!({"name": "c", "message": "Hi", "audience": {"kind": "all"}, "sender": "PayPaI"})).await;
    assert_error(st, &e, 422, "sender_not_approved");
    assert_eq!(e["details"]["field"], "sender");

    // The operator sees what is waiting, with the store it is for.
    let items = pending(&t).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let req = &items[0];
    assert_eq!((req["store_id"].as_i64(), req["store_name"].as_str()), (Some(s.id), Some("Sender Shop")));
    assert_eq!((req["sender_name"].as_str(), req["current_sender_name"].as_str()), (Some("PayPaI"), Some("SenderShop")));
    assert_eq!(req["status"], "pending");
    // Stores cannot see or decide requests.
    let (st, e) = t.get("/api/admin/senders", &s.key).await;
    assert_error(st, &e, 401, "invalid_api_key");
    let (st, e) = t.call(Method::POST, &format!("/api/admin/senders/{}/approve", req["id"]), Some(&s.key), None).await;
    assert_error(st, &e, 401, "invalid_api_key");

    // A newer request replaces the one still waiting.
    let (_, p) = t.patch("/api/store", &s.key, json!({"sender_name": "SenderSale"})).await;
    assert_eq!(p["sender_request"]["sender_name"], "SenderSale");
    let items = pending(&t).await;
    assert_eq!(items.iter().map(|r| r["sender_name"].as_str().unwrap()).collect::<Vec<_>>(), ["SenderSale"]);
    let id = items[0]["id"].as_i64().unwrap();
    let (st, e) = t.call(Method::POST, &format!("/api/admin/senders/{}/approve", req["id"]), Some(&t.admin_key), None).await;
    assert_error(st, &e, 409, "sender_request_decided");
    assert_eq!(t.get("/api/store", &s.key).await.1["sender_name"], "SenderShop", "a replaced request cannot be approved");

    // Approval switches the store's sender.
    let (st, a) = t.call(Method::POST, &format!("/api/admin/senders/{id}/approve"), Some(&t.admin_key), None).await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["status"], "approved");
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["sender_name"], "SenderSale");
    assert!(pending(&t).await.is_empty());
    let (st, e) = t.call(Method::POST, &format!("/api/admin/senders/{id}/approve"), Some(&t.admin_key), None).await;
    assert_error(st, &e, 409, "sender_request_decided");
    // Now campaigns may name it; and going back to an approved name needs no new approval.
    let (st, c) =
        t.post("/api/campaigns", &s.key, json!({"name": "c", "message": "Hi", "audience": {"kind": "all"}, "sender": "SenderSale"})).await;
    assert_eq!(st, 201, "{c}");

    // A rejection leaves the sender as it was and tells the store why.
    let (_, p) = t.patch("/api/store", &s.key, json!({"sender_name": "GovBank"})).await;
    let id = p["sender_request"]["id"].as_i64().unwrap();
    let (st, r) = t.post(&format!("/api/admin/senders/{id}/reject"), &t.admin_key, json!({"reason": "Looks like a bank."})).await;
    assert_eq!(st, 200, "{r}");
    let (_, store) = t.get("/api/store", &s.key).await;
    assert_eq!(store["sender_name"], "SenderSale");
    assert_eq!(store["sender_request"]["status"], "rejected");
    assert_eq!(store["sender_request"]["reason"], "Looks like a bank.");
    let (st, e) = t.call(Method::POST, &format!("/api/admin/senders/{id}/approve"), Some(&t.admin_key), None).await;
    assert_error(st, &e, 409, "sender_request_decided");

    // The platform's own sender needs no approval.
    let (_, p) = t.patch("/api/store", &s.key, json!({"sender_name": "SMSCAST"})).await;
    assert_eq!(p["sender_name"], "SMSCAST", "{p}");
    let (st, c) =
        t.post("/api/campaigns", &s.key, json!({"name": "d", "message": "Hi", "audience": {"kind": "all"}, "sender": "SMSCAST"})).await;
    assert_eq!(st, 201, "{c}");

    // Unknown ids; another store's requests are the operator's business only.
    for path in ["/api/admin/senders/999999/approve", "/api/admin/senders/abc/reject"] {
        let (st, e) = t.call(Method::POST, path, Some(&t.admin_key), None).await;
        assert_error(st, &e, 404, "not_found");
    }
    assert!(t.get("/api/store", &other.key).await.1["sender_request"].is_null());
}

dual!(sender_names_need_operator_approval);
