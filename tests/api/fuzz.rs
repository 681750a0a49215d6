//! Bounded fuzzing of the API with generated and mutated bodies: valid bodies with fields
//! replaced by wrong types, huge numbers, deep nesting and unicode, arbitrary JSON, arbitrary
//! bytes, truncated documents and wrong content types — posted to the webhooks, the import, the
//! contact, segment and campaign endpoints (and the previews of what was created). Every answer
//! must be below 500, every refusal in the one error shape, and a refusal must change nothing.
//!
//! A fixed seed and a fixed number of cases per endpoint by default, so a run is repeatable and
//! short; `SMSCAST_FUZZ_CASES` raises the cases, `SMSCAST_FUZZ_SEED` picks another seed. A failure
//! prints the body that caused it.

use crate::dual;
use crate::harness::{Backend, TestApp, TestStore, WEBHOOK_SECRET};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use smscast::store::on_db;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Cases per endpoint.
fn cases() -> usize {
    env_or("SMSCAST_FUZZ_CASES", 24) as usize
}

/// Draws values from strategies with a seeded generator: the same seed, the same bodies.
struct Gen(TestRunner);

impl Gen {
    /// One generator per endpoint, so adding an endpoint does not change the others' bodies.
    fn new(endpoint: &str) -> Gen {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&env_or("SMSCAST_FUZZ_SEED", 0x5eed_f00d).to_le_bytes());
        for (i, b) in endpoint.bytes().enumerate() {
            seed[8 + i % 24] ^= b;
        }
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
        Gen(TestRunner::new_with_rng(Config { failure_persistence: None, ..Config::default() }, rng))
    }

    fn draw<S: Strategy>(&mut self, s: &S) -> S::Value {
        s.new_tree(&mut self.0).expect("a value").current()
    }
}

/// A request body and the content type it is sent with.
#[derive(Debug, Clone)]
struct Body {
    bytes: Vec<u8>,
    content_type: &'static str,
}

impl Body {
    fn json(v: &Value) -> Body {
        Body { bytes: serde_json::to_vec(v).unwrap(), content_type: "application/json" }
    }

    fn shown(&self) -> String {
        let s = String::from_utf8_lossy(&self.bytes);
        let cut: String = s.chars().take(600).collect();
        format!("{} ({} bytes): {cut}", self.content_type, self.bytes.len())
    }
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        2 => "[a-zA-Zα-ωΑ-Ω0-9 {}|+%_\\\\\"'.,;:/-]{0,24}",
        1 => "[\\u{0}-\\u{1f}\\u{7f}\\u{feff}\\u{200b}\\u{0300}-\\u{036f}😀-🙏]{0,12}",
        1 => Just(String::new()),
        1 => (1_000..max.max(1_001)).prop_map(|n| "ϟ".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1, 4_294_967_296]).prop_map(Value::from),
        Just(json!(u64::MAX)),
        prop::sample::select(vec![1e308, -1e308, 0.5, -0.0, 1e-300]).prop_map(Value::from),
        text(20_000).prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// What one mutation does to the node it picks.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    Insert(String, Value),
    WrapInArray,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        5 => any_json().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        1 => ("[a-z_]{1,10}", leaf()).prop_map(|(k, v)| Mutation::Insert(k, v)),
        1 => Just(Mutation::WrapInArray),
    ]
}

/// Every node of a document as a JSON pointer, the root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => o.iter().for_each(|(k, c)| pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

fn apply(mut doc: Value, mutations: Vec<(prop::sample::Index, Mutation)>) -> Value {
    for (index, m) in mutations {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        all.rotate_right(1);
        let at = index.get(&all).clone();
        let (parent, key) = match at.rsplit_once('/') {
            Some((p, k)) => (p.to_string(), Some(k.replace("~1", "/").replace("~0", "~"))),
            None => (String::new(), None),
        };
        let Some(node) = doc.pointer_mut(&at) else { continue };
        match m {
            Mutation::Replace(v) => *node = v,
            Mutation::WrapInArray => *node = json!([node.take()]),
            Mutation::Insert(k, v) => {
                if let Some(o) = node.as_object_mut() {
                    o.insert(k, v);
                }
            }
            Mutation::Remove => match (doc.pointer_mut(&parent), key) {
                (Some(Value::Object(o)), Some(k)) => {
                    o.remove(&k);
                }
                (Some(Value::Array(a)), Some(k)) => {
                    if let Some(i) = k.parse::<usize>().ok().filter(|i| *i < a.len()) {
                        a.remove(i);
                    }
                }
                _ => {}
            },
        }
    }
    doc
}

/// Bodies for an endpoint whose valid body is `valid`: mostly mutations of it, then arbitrary
/// JSON, arbitrary bytes, the valid body cut short or under another content type, and very deep
/// nesting (as text: a deep `Value` would overflow this test's own stack, not the server's).
fn body(valid: Value) -> impl Strategy<Value = Body> {
    let serialized = serde_json::to_vec(&valid).unwrap();
    let cut = serialized.clone();
    let first_key = valid.as_object().or(valid[0].as_object()).and_then(|o| o.keys().next().cloned()).unwrap_or_default();
    prop_oneof![
        8 => (Just(valid.clone()), prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4))
            .prop_map(|(v, ms)| Body::json(&apply(v, ms))),
        2 => any_json().prop_map(|v| Body::json(&v)),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|bytes| Body { bytes, content_type: "application/json" }),
        1 => any::<prop::sample::Index>().prop_map(move |i| Body { bytes: cut[..i.index(cut.len())].to_vec(), content_type: "application/json" }),
        1 => prop::sample::select(vec!["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", ""])
            .prop_map(move |ct| Body { bytes: serialized.clone(), content_type: ct }),
        1 => (1usize..100_000).prop_map(move |n| Body {
            bytes: format!("{{\"{first_key}\": {}{}}}", "[".repeat(n), "]".repeat(n % 200)).into_bytes(),
            content_type: "application/json"
        }),
        1 => Just(Body { bytes: br#"{"name": 1e999, "n": -92233720368547758080}"#.to_vec(), content_type: "application/json" }),
    ]
}

/// CSV-ish uploads: a header that may or may not name a phone column, rows of phone-like,
/// unicode and binary cells with stray quotes, any line ends, a BOM now and then.
fn csv_upload() -> impl Strategy<Value = Body> {
    let cell = prop_oneof![
        3 => "(\\+30 ?)?69[0-9]{8}".prop_map(String::into_bytes),
        3 => "\\PC{0,16}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..12),
        1 => Just(b"\"".to_vec()),
        1 => (1_000usize..200_000).prop_map(|n| vec![b'9'; n]),
    ];
    let row = prop::collection::vec(cell, 0..6).prop_map(|c| c.join(&b","[..]));
    let header = prop::sample::select(vec!["phone,first_name,tags,consent", "\u{feff}\"Phone\";x", "mobile", "nothing,here", ""]);
    let end = prop::sample::select(vec![&b"\n"[..], b"\r\n", b"\r"]);
    (header, prop::collection::vec((row, end), 0..30), prop::sample::select(vec!["text/csv", "text/plain", "application/json"])).prop_map(
        |(h, rows, ct)| {
            let mut bytes = h.as_bytes().to_vec();
            for (r, e) in rows {
                bytes.extend_from_slice(e);
                bytes.extend_from_slice(&r);
            }
            Body { bytes, content_type: ct }
        },
    )
}

/// How a request authenticates.
enum As<'a> {
    Store(&'a TestStore),
    Webhook,
}

async fn send(t: &TestApp, method: Method, path: &str, who: &As<'_>, body: &Body) -> (u16, Value) {
    let mut req = t.client.request(method, format!("{}{path}", t.url)).body(body.bytes.clone());
    if !body.content_type.is_empty() {
        req = req.header("content-type", body.content_type);
    }
    req = match who {
        As::Store(s) => req.bearer_auth(&s.key),
        As::Webhook => req.header("x-webhook-secret", WEBHOOK_SECRET),
    };
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// No 5xx, and every refusal in the one error shape. Returns whether the request was refused.
fn judge(what: &str, status: u16, answer: &Value, body: &Body) -> bool {
    let case = || format!("{what} answered {status} {answer}\nfor {}", body.shown());
    assert!(status < 500, "{}", case());
    if (200..300).contains(&status) {
        return false;
    }
    let shaped = answer["ok"] == json!(false)
        && answer["code"].as_str().is_some_and(|c| !c.is_empty())
        && answer["message"].as_str().is_some_and(|m| !m.is_empty())
        && answer["details"].is_object()
        && answer["actionable"].is_boolean();
    assert!(shaped, "not the error shape: {}", case());
    true
}

/// Posts every body to `path` and checks each answer; on a refusal, `snapshot` must read the same
/// before and after. Returns the successful answers.
async fn fuzz<F, Fut>(t: &TestApp, method: Method, path: &str, who: As<'_>, bodies: &[Body], snapshot: F) -> Vec<Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let mut ok = Vec::new();
    for body in bodies {
        let before = snapshot().await;
        let (status, answer) = send(t, method.clone(), path, &who, body).await;
        if judge(&format!("{method} {path}"), status, &answer, body) {
            assert_eq!(snapshot().await, before, "a refused {method} {path} changed something: {answer}\nfor {}", body.shown());
        } else {
            ok.push(answer);
        }
    }
    ok
}

fn draw_bodies(endpoint: &str, strategy: impl Strategy<Value = Body>) -> Vec<Body> {
    let mut g = Gen::new(endpoint);
    (0..cases()).map(|_| g.draw(&strategy)).collect()
}

async fn count(t: &TestApp, table: &str) -> Value {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) = on_db!(t.db(), |p| sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(p).await).expect("count");
    json!(n)
}

async fn get(t: &TestApp, s: &TestStore, path: &str) -> Value {
    let (status, v) = t.get(path, &s.key).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

async fn webhooks_survive_fuzzed_bodies(b: Backend) {
    let t = TestApp::start(b).await;
    let dlr = json!([
        {"messageId": "m-1", "deliveryStatus": "Delivered", "updatedAt": "2026-01-02T03:04:05.1234567Z", "reference": "1"},
        {"id": 7, "status": "failed", "timestamp": 1_700_000_000, "error": {"message": "absent"}},
    ]);
    let bodies = draw_bodies("dlr", body(dlr));
    fuzz(&t, Method::POST, "/webhooks/mitto/dlr", As::Webhook, &bodies, || count(&t, "delivery_reports")).await;

    let inbound = json!([{"from": "+306912345601", "text": "STOP"}, {"msisdn": {"number": "306912345602"}, "message": {"text": "ΣΤΟΠ"}}]);
    let bodies = draw_bodies("inbound", body(inbound));
    fuzz(&t, Method::POST, "/webhooks/mitto/inbound", As::Webhook, &bodies, || count(&t, "inbound_messages")).await;
}

async fn contacts_and_imports_survive_fuzzed_bodies(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Fuzz Contacts").await;
    let (st, r) = t.import_csv(&s.key, "phone,first_name,tags\n6912345601,Μαρία,vip\n6912345602,Anna,\n").await;
    assert_eq!(st, 200, "{r}");
    let contacts = || async { get(&t, &s, "/api/contacts?limit=500").await };
    let ids: Vec<i64> = contacts().await["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();

    let bodies = draw_bodies("import", csv_upload());
    fuzz(&t, Method::POST, "/api/contacts/import", As::Store(&s), &bodies, contacts).await;

    let new = json!({"phone": "6912345699", "first_name": "Ζωή", "last_name": "O'Brien", "email": "z@example.gr", "tags": ["vip"], "consent": "opted_in"});
    let bodies = draw_bodies("contacts.create", body(new));
    fuzz(&t, Method::POST, "/api/contacts", As::Store(&s), &bodies, contacts).await;

    let patch = json!({"phone": "+306912345601", "first_name": null, "last_name": "Νέα", "tags": ["a", "b"], "consent": "opted_out"});
    let one = format!("/api/contacts/{}", ids[0]);
    let bodies = draw_bodies("contacts.update", body(patch));
    fuzz(&t, Method::PATCH, &one, As::Store(&s), &bodies, || get(&t, &s, &one)).await;

    let tags = json!({"ids": ids, "add": ["x", "Ψ"], "remove": ["vip"]});
    let bodies = draw_bodies("contacts.tags", body(tags));
    fuzz(&t, Method::POST, "/api/contacts/tags", As::Store(&s), &bodies, contacts).await;

    // Query strings of lists: parsed or refused, never a crash.
    let mut g = Gen::new("contacts.list");
    for _ in 0..cases() {
        let (k, v): (String, String) =
            g.draw(&(prop::sample::select(vec!["q", "tag", "consent", "limit", "cursor", "x"]).prop_map(String::from), "\\PC{0,30}"));
        let query: String = form_urlencoded::Serializer::new(String::new()).append_pair(&k, &v).finish();
        let (status, answer) = t.get(&format!("/api/contacts?{query}"), &s.key).await;
        judge("GET /api/contacts", status.as_u16(), &answer, &Body { bytes: query.into_bytes(), content_type: "query" });
    }
}

async fn campaigns_and_segments_survive_fuzzed_bodies(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Fuzz Campaigns").await;
    let (st, r) = t.import_csv(&s.key, "phone,first_name,tags,consent\n6912345601,Μαρία,vip,yes\n6912345602,Anna,,yes\n").await;
    assert_eq!(st, 200, "{r}");
    let campaigns = || async { get(&t, &s, "/api/campaigns").await };
    let segments = || async { get(&t, &s, "/api/segments").await };

    let segment = json!({"name": "Fuzzed", "match": "any", "rules": [
        {"field": "tag", "op": "has", "value": "vip"},
        {"field": "created_at", "op": "after", "value": "2026-01-01T00:00:00+02:00"},
        {"field": "first_name", "op": "contains", "value": "μα%_\\"},
        {"field": "consent", "op": "eq", "value": "opted_in"},
    ]});
    let bodies = draw_bodies("segments.create", body(segment));
    let created = fuzz(&t, Method::POST, "/api/segments", As::Store(&s), &bodies, segments).await;

    let campaign = json!({
        "name": "Fuzzed sale", "message": "Γεια {{first_name|φίλε}}! -20% https://shop.example.gr/sale?c={{discount_code}}",
        "audience": {"kind": "tags", "any": ["vip"], "all": []}, "priority": "high", "discount_code": "SAVE10",
        "greek_gsm": true, "schedule_at": null, "sender": null,
    });
    let bodies = draw_bodies("campaigns.create", body(campaign.clone()));
    let mut made = fuzz(&t, Method::POST, "/api/campaigns", As::Store(&s), &bodies, campaigns).await;
    // Audiences of the fuzzed segments that were accepted.
    for (i, seg) in created.iter().take(8).enumerate() {
        let audience = json!({"kind": "segment", "id": seg["id"]});
        let (st, c) =
            t.post("/api/campaigns", &s.key, json!({"name": format!("Segment {i}"), "message": "Hi", "audience": audience})).await;
        assert_eq!(st, 201, "{c}");
        made.push(c);
    }
    // The previews of whatever was created: counted, or refused with a reason.
    for c in &made {
        let path = format!("/api/campaigns/{}/preview", c["id"]);
        let (st, p) = t.get(&path, &s.key).await;
        judge(&path, st.as_u16(), &p, &Body { bytes: c.to_string().into_bytes(), content_type: "campaign" });
    }

    let mut target = campaign;
    target["name"] = json!("Patched by the fuzzer");
    let (st, c) = t.post("/api/campaigns", &s.key, target).await;
    assert_eq!(st, 201, "{c}");
    let one = format!("/api/campaigns/{}", c["id"]);
    let patch = json!({"name": "Renamed", "message": "Νέο μήνυμα {{last_name}}", "audience": {"kind": "all"}, "priority": "urgent", "discount_code": null, "schedule_at": "2030-01-01T10:00:00Z"});
    let bodies = draw_bodies("campaigns.update", body(patch));
    fuzz(&t, Method::PATCH, &one, As::Store(&s), &bodies, || get(&t, &s, &one)).await;

    let analyze = json!({"text": "Γεια σου Μαρία! 😀 https://x.gr"});
    let bodies = draw_bodies("sms.analyze", body(analyze));
    fuzz(&t, Method::POST, "/api/sms/analyze", As::Store(&s), &bodies, || async { Value::Null }).await;
}

dual!(webhooks_survive_fuzzed_bodies, contacts_and_imports_survive_fuzzed_bodies, campaigns_and_segments_survive_fuzzed_bodies);
