//! Money and duplicates (issue 12): what was priced is what is sent and charged, holds outlive
//! the runs they pay for, outcome writes survive a database hiccup, and races have one winner.

use crate::dual;
use crate::harness::{Backend, TestApp, assert_error, assert_ledger_balanced, campaign, counts, seed};
use serde_json::{Value, json};
use smscast::provider::simulator::SimulatorConfig;
use smscast::store::on_db;
use std::time::{Duration, Instant};

/// Every message of the campaign as the API lists it.
async fn messages(t: &TestApp, key: &str, id: i64) -> Vec<Value> {
    let (st, page) = t.get(&format!("/api/campaigns/{id}/messages?limit=500"), key).await;
    assert_eq!(st, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// A PATCH racing a send: whichever commits first, the messages carry the segments (and the hold
/// the cost) of exactly the text they are sent with.
async fn edits_during_a_send_are_sent_as_priced(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Racer").await;
    seed(&t, &s, 5, 100_000).await;
    let long = format!("Hi {{{{first_name}}}}, {}", "long text ".repeat(60));
    for round in 0..25 {
        let id = campaign(&t, &s, &format!("Race {round}")).await;
        let (send_path, edit_path) = (format!("/api/campaigns/{id}/send"), format!("/api/campaigns/{id}"));
        let (send, edit) = tokio::join!(t.post(&send_path, &s.key, json!({})), t.patch(&edit_path, &s.key, json!({"message": long})));
        assert!(matches!(edit.0.as_u16(), 200 | 409), "round {round}: {edit:?}");
        assert_eq!(send.0, 202, "round {round}: {send:?}");
        let msgs = messages(&t, &s.key, id).await;
        assert_eq!(msgs.len(), 5);
        let mut cost = 0;
        for m in &msgs {
            let text = m["text"].as_str().unwrap();
            let segments = i64::from(smscast::domain::sms::analyze(text).segments);
            assert_eq!(m["segments"].as_i64(), Some(segments), "round {round}: priced segments = sent segments: {m}");
            cost += m["cost"].as_i64().unwrap();
        }
        assert_eq!(send.1["held_credits"].as_i64(), Some(cost), "round {round}: the hold covers exactly the texts sent");
        t.post(&format!("/api/campaigns/{id}/cancel"), &s.key, json!({})).await;
    }
}

/// More runs than one maintenance pass used to stop reach their hold's deadline in the same
/// tick: every one is stopped, and no hold closes under a run that can still send.
async fn holds_expiring_together_never_close_under_running_campaigns(b: Backend) {
    use smscast::store::{ledger, operations, queue};
    let t = TestApp::start(b).await;
    let s = t.store("Many").await;
    seed(&t, &s, 2, 10_000).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = campaign(&t, &s, &format!("Run {i}")).await;
        let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
        assert_eq!(st, 202, "{r}");
        ids.push(id);
    }
    let (db, later) = (t.db(), t.clock_now() + 25 * 3_600_000);
    // One maintenance pass, in the engine's order.
    queue::reap(db, later).await.unwrap();
    operations::stop_expired_runs(db, later).await.unwrap();
    ledger::expire_due(db, later).await.unwrap();
    let open: Vec<(i64, String, String)> = on_db!(db, |p| sqlx::query_as(
        "SELECT c.id, c.status, h.state FROM campaigns c JOIN holds h ON h.id = c.hold_id WHERE c.status IN ('sending', 'paused') AND h.state <> 'active'"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    assert!(open.is_empty(), "runs that can still send without an open hold: {open:?}");
    for id in &ids {
        let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
        assert_eq!(p["status"], "cancelled", "{p}");
    }
    assert!(queue::claim(db, "w", 100, 60_000, later, &Default::default()).await.unwrap().is_none(), "nothing left to send");
    let (_, w) = t.get("/api/wallet", &s.key).await;
    assert_eq!((w["available"].as_i64(), w["held"].as_i64()), (Some(10_000), Some(0)), "{w}");
}

/// A database error while recording an accepted batch is retried: the batch ends `sent` and
/// charged, not `unknown` and free.
async fn a_failed_outcome_write_is_retried(b: Backend) {
    let (t, sim) = TestApp::start_sending(b, SimulatorConfig::default(), 100, 1).await;
    let engine = t.app.as_ref().unwrap().engine.as_ref().expect("an engine").id.clone();
    smscast::faults::arm(&format!("record:{engine}"), 2);
    let s = t.store("Hiccup").await;
    seed(&t, &s, 20, 1_000).await;
    let id = campaign(&t, &s, "Hiccup").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let p = loop {
        let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
        if p["status"] != "sending" {
            break p;
        }
        assert!(Instant::now() < deadline, "the batch never got recorded: {p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((p["status"].as_str(), p["sent"].as_i64(), p["unknown"].as_i64()), (Some("sent"), Some(20), Some(0)), "{p}");
    assert_eq!(sim.stats().duplicate_references, 0);
    assert_ledger_balanced(&t, &s, id, 1_000).await;
}

/// Two retry-failed at once (PostgreSQL used to let both through: two holds, the first one
/// orphaned): one wins, the other is told the campaign is already sending.
async fn double_retry_failed_has_one_winner(b: Backend) {
    use smscast::domain::failure::FailureCode;
    use smscast::store::queue::{self, Outcome};
    use smscast::store::{StoreId, operations};
    let t = TestApp::start(b).await;
    let s = t.store("Twice").await;
    seed(&t, &s, 10, 100_000).await;
    let id = campaign(&t, &s, "Twice").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let db = t.db().clone();
    for round in 0..15 {
        let now = t.clock_now() + round * 10_000;
        let batch = queue::claim(&db, "w", 100, 60_000, now, &Default::default()).await.unwrap().expect("a batch");
        let failed: Vec<_> =
            batch.messages.iter().map(|m| (m.id, Outcome::Failed { code: FailureCode::ProviderError, message: "503".into() })).collect();
        queue::record(&db, &batch, &failed, now + 1).await.unwrap();
        let (a, b2) = tokio::join!(
            operations::retry_failed(&db, StoreId(s.id), id, "a", 3_600_000, now + 2),
            operations::retry_failed(&db, StoreId(s.id), id, "b", 3_600_000, now + 3),
        );
        let (won, lost) = match (a, b2) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("round {round}: exactly one retry wins: {other:?}"),
        };
        assert_eq!(lost.code, "invalid_state", "round {round}: {lost:?}");
        let (_, w) = t.get("/api/wallet", &s.key).await;
        assert_eq!(w["held"], won["held_credits"], "round {round}: one hold: {w}");
        let (active,): (i64,) = on_db!(&db, |p| sqlx::query_as("SELECT COUNT(*) FROM holds WHERE campaign_id = $1 AND state = 'active'")
            .bind(id)
            .fetch_one(p)
            .await)
        .unwrap();
        assert_eq!(active, 1, "round {round}");
    }
}

/// A contact who opts out while the campaign is sending is skipped: not sent, not charged,
/// counted as `skipped_opted_out`, its cost back in the wallet when the run ends.
async fn opt_outs_during_a_send_are_skipped(b: Backend) {
    use smscast::store::queue::{self, Outcome};
    let t = TestApp::start(b).await;
    let s = t.store("Consent").await;
    seed(&t, &s, 10, 1_000).await;
    let id = campaign(&t, &s, "Consent").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let first = &messages(&t, &s.key, id).await[0];
    let contact = first["contact_id"].as_i64().unwrap();
    let (st, r) = t.patch(&format!("/api/contacts/{contact}"), &s.key, json!({"consent": "opted_out"})).await;
    assert_eq!(st, 200, "{r}");
    let db = t.db();
    let batch = queue::claim(db, "w", 100, 60_000, t.clock_now(), &Default::default()).await.unwrap().expect("a batch");
    assert!(batch.messages.iter().all(|m| m.id != first["id"].as_i64().unwrap()), "the opted-out contact is not sent to");
    assert_eq!(batch.messages.len(), 9);
    let sent: Vec<_> = batch.messages.iter().map(|m| (m.id, Outcome::Sent { provider_id: format!("p{}", m.id) })).collect();
    queue::record(db, &batch, &sent, t.clock_now() + 1).await.unwrap();
    let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), &s.key).await;
    assert_eq!(
        (p["status"].as_str(), p["sent"].as_i64(), p["skipped_opted_out"].as_i64(), p["pending"].as_i64()),
        (Some("sent"), Some(9), Some(1), Some(0)),
        "{p}"
    );
    let c = counts(&t, id).await;
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count");
    }
    let skipped = messages(&t, &s.key, id).await.into_iter().find(|m| m["contact_id"] == contact).unwrap();
    assert_eq!(skipped["error_code"], "opted_out", "{skipped}");
    assert_ledger_balanced(&t, &s, id, 1_000).await;
}

/// Every way a contact stops being opted in while campaigns send — an import saying `opted_out`,
/// deleting the contact, the API — skips its messages in each of the store's runs, those launched
/// before the change and those launched after it (claims check consent only when a contact of the
/// store changed since the launch). Another store's run is untouched.
async fn opt_outs_by_any_path_during_a_send_are_skipped(b: Backend) {
    use smscast::store::queue::{self, Outcome};
    let t = TestApp::start(b).await;
    let (s, other) = (t.store("Paths").await, t.store("Untouched").await);
    seed(&t, &s, 10, 1_000).await;
    seed(&t, &other, 10, 1_000).await;
    let send = |key: String, id: i64| {
        let t = &t;
        async move {
            let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &key, json!({})).await;
            assert_eq!(st, 202, "{r}");
        }
    };
    let before = campaign(&t, &s, "Before").await;
    send(s.key.clone(), before).await;
    let untouched = campaign(&t, &other, "Untouched").await;
    send(other.key.clone(), untouched).await;
    let listed = messages(&t, &s.key, before).await;
    let (phone, deleted, patched) = (
        listed[0]["phone"].as_str().unwrap().to_string(),
        listed[1]["contact_id"].as_i64().unwrap(),
        listed[2]["contact_id"].as_i64().unwrap(),
    );
    let (st, r) = t.import_csv(&s.key, &format!("phone,consent\n{phone},opted_out\n")).await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = t.delete(&format!("/api/contacts/{deleted}"), &s.key).await;
    assert!(st.is_success(), "{r}");
    // A run launched now has only the 8 contacts still opted in; the third opts out after it.
    let after = campaign(&t, &s, "After").await;
    send(s.key.clone(), after).await;
    let (st, r) = t.patch(&format!("/api/contacts/{patched}"), &s.key, json!({"consent": "opted_out"})).await;
    assert_eq!(st, 200, "{r}");
    let db = t.db();
    let cursor = Default::default();
    while let Some(batch) = queue::claim(db, "w", 4, 60_000, t.clock_now(), &cursor).await.unwrap() {
        let sent: Vec<_> = batch.messages.iter().map(|m| (m.id, Outcome::Sent { provider_id: format!("p{}", m.id) })).collect();
        queue::record(db, &batch, &sent, t.clock_now() + 1).await.unwrap();
    }
    for (key, id, sent, skipped) in [(&s.key, before, 7, 3), (&s.key, after, 7, 1), (&other.key, untouched, 10, 0)] {
        let (_, p) = t.get(&format!("/api/campaigns/{id}/progress"), key).await;
        assert_eq!(
            (p["status"].as_str(), p["sent"].as_i64(), p["skipped_opted_out"].as_i64()),
            (Some("sent"), Some(sent), Some(skipped)),
            "campaign {id}: {p}"
        );
    }
}

/// The answer to a send under an Idempotency-Key is stored with the launch: when storing it
/// fails, the launch does not happen either, so a replay never finds a started campaign without
/// its answer (it used to get 409).
async fn an_idempotent_send_and_its_answer_commit_together(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Replay").await;
    seed(&t, &s, 3, 100).await;
    let id = campaign(&t, &s, "Replay").await;
    let key = format!("send-{}", smscast::secrets::random_token(10));
    smscast::faults::arm(&format!("idempotency.save:{key}"), 1);
    let send = || async {
        let res = t
            .client
            .post(format!("{}/api/campaigns/{id}/send", t.url))
            .bearer_auth(&s.key)
            .header("idempotency-key", &key)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    let (first, _) = send().await;
    assert!(matches!(first, 202 | 500), "{first}");
    let (second, answer) = send().await;
    assert_eq!(second, 202, "a replay after the failure is answered, never 409: {answer}");
    let (third, again) = send().await;
    assert_eq!((third, &again), (202, &answer));
    let (_, h) = t.get(&format!("/api/campaigns/{id}/history"), &s.key).await;
    let starts = h["items"].as_array().unwrap().iter().filter(|e| e["to"] == "sending").count();
    assert_eq!(starts, 1, "{h}");
    let (st, e) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_error(st, &e, 409, "invalid_state");
}

/// One Idempotency-Key sent with two different campaigns at once: one launch wins and the other is
/// told the key belongs to another request (409), never a 500, and its campaign stays a draft.
async fn one_idempotency_key_on_two_campaigns_at_once(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Twins").await;
    seed(&t, &s, 3, 100_000).await;
    let send = |id: i64, key: String| {
        let t = &t;
        let s = &s;
        async move {
            let res = t
                .client
                .post(format!("{}/api/campaigns/{id}/send", t.url))
                .bearer_auth(&s.key)
                .header("idempotency-key", key)
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    for round in 0..12 {
        let (a, c) = (campaign(&t, &s, &format!("A{round}")).await, campaign(&t, &s, &format!("C{round}")).await);
        let key = format!("twin-{round}-{}", smscast::secrets::random_token(10));
        let (ra, rc) = tokio::join!(send(a, key.clone()), send(c, key.clone()));
        let ((won, w), (lost, l)) = if ra.0 == 202 { ((a, ra), (c, rc)) } else { ((c, rc), (a, ra)) };
        assert_eq!(w.0, 202, "round {round}: one launch wins: {w:?} / {l:?}");
        assert_eq!(w.1["campaign_id"], won, "round {round}");
        assert_error(l.0, &l.1, 409, "idempotency_key_reused");
        let (_, c) = t.get(&format!("/api/campaigns/{lost}"), &s.key).await;
        assert_eq!(c["status"], "draft", "round {round}: the refused campaign did not start: {c}");
        // A replay of the winner still gets its answer.
        let again = send(won, key).await;
        assert_eq!((again.0.as_u16(), &again.1), (202, &w.1), "round {round}");
    }
}

/// The provider accepts some batches but answers too late (the client times out): those end
/// `unknown` — never resent automatically, never charged, explained — and only the store owner's
/// explicit, confirmed resend-unknown sends them again.
async fn ambiguous_provider_outcomes_are_never_resent_or_charged(b: Backend) {
    let sim =
        SimulatorConfig { accept_then_timeout_rate: 0.3, timeout_hang_ms: 1_500, error_rate: 0.1, seed: Some(12), ..Default::default() };
    let (t, sim) = TestApp::start_sending(b, sim, 20, 2).await;
    let s = t.store("Ambiguous").await;
    seed(&t, &s, 200, 10_000).await;
    let id = campaign(&t, &s, "Ambiguous").await;
    let (st, r) = t.post(&format!("/api/campaigns/{id}/send"), &s.key, json!({})).await;
    assert_eq!(st, 202, "{r}");
    let p = t.wait_finished(&s.key, id).await;
    let stats = sim.stats();
    assert_eq!(stats.duplicate_references, 0, "nothing sent twice: {stats:?}");
    let unknown = p["unknown"].as_i64().unwrap();
    assert!(unknown > 0, "some batches were accepted but never answered: {p}");
    assert_eq!(p["sent"].as_i64().unwrap() + unknown, 200, "{p}");
    assert_eq!(stats.accepted, 200, "the provider has every message, the unknown ones included");
    let c = counts(&t, id).await;
    for k in ["pending", "sending", "sent", "failed", "cancelled", "unknown"] {
        assert_eq!(c[k], p[k], "counter {k} equals the row count");
    }
    assert_ledger_balanced(&t, &s, id, 10_000).await;
    let (_, listed) = t.get(&format!("/api/campaigns/{id}/messages?status=unknown&limit=500"), &s.key).await;
    assert_eq!(listed["items"].as_array().unwrap().len() as i64, unknown);
    assert!(listed["items"].as_array().unwrap().iter().all(|m| m["error_code"] == "unknown_outcome"), "{listed}");
    let (_, f) = t.get(&format!("/api/campaigns/{id}/failures"), &s.key).await;
    let cat = f["categories"].as_array().unwrap().iter().find(|c| c["category"] == "unknown_outcome").unwrap().clone();
    assert_eq!((cat["count"].as_i64(), cat["retryable"].as_bool()), (Some(unknown), Some(false)), "{f}");
    assert!(cat["explanation"].as_str().unwrap().contains("never resent automatically"), "{cat}");

    // Sending them again takes an explicit confirmation of the duplicate risk.
    let (_, pv) = t.get(&format!("/api/campaigns/{id}/resend-unknown/preview"), &s.key).await;
    assert_eq!(
        (pv["messages"].as_i64(), pv["estimated_cost"].as_i64(), pv["can_resend"].as_bool()),
        (Some(unknown), Some(unknown), Some(true)),
        "{pv}"
    );
    assert!(pv["warning"].as_str().unwrap().contains("second copy"), "{pv}");
    let (st, e) = t.post(&format!("/api/campaigns/{id}/resend-unknown"), &s.key, json!({})).await;
    assert_error(st, &e, 400, "confirmation_required");
    assert_eq!(e["details"]["messages"].as_i64(), Some(unknown), "{e}");
    let other = t.store("Nosy").await;
    let (st, e) = t.post(&format!("/api/campaigns/{id}/resend-unknown"), &other.key, json!({"confirm_duplicates": true})).await;
    assert_error(st, &e, 404, "not_found");
    sim.set_config(SimulatorConfig::default());
    let (st, r) = t.post(&format!("/api/campaigns/{id}/resend-unknown"), &s.key, json!({"confirm_duplicates": true})).await;
    assert_eq!((st.as_u16(), r["messages"].as_i64()), (202, Some(unknown)), "{r}");
    let p = t.wait_finished(&s.key, id).await;
    assert_eq!((p["status"].as_str(), p["sent"].as_i64(), p["unknown"].as_i64()), (Some("sent"), Some(200), Some(0)), "{p}");
    assert_eq!(sim.stats().duplicate_references as i64, unknown, "the duplicates the owner accepted, and no more");
    assert_ledger_balanced(&t, &s, id, 10_000).await;
}

dual!(
    ambiguous_provider_outcomes_are_never_resent_or_charged,
    edits_during_a_send_are_sent_as_priced,
    holds_expiring_together_never_close_under_running_campaigns,
    a_failed_outcome_write_is_retried,
    double_retry_failed_has_one_winner,
    opt_outs_during_a_send_are_skipped,
    opt_outs_by_any_path_during_a_send_are_skipped,
    an_idempotent_send_and_its_answer_commit_together,
    one_idempotency_key_on_two_campaigns_at_once,
);
