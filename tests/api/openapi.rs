//! The OpenAPI document (`GET /api/openapi.json`): every route registered in src/http is in it,
//! it parses as OpenAPI 3.1 with every reference resolving, every operation lists its error
//! answers in the one error shape, and real answers match the documented schemas.

use crate::dual;
use crate::harness::{Backend, TestApp, WEBHOOK_SECRET, seed};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn document() -> Value {
    serde_json::from_str(smscast::http::api::openapi::json()).expect("the document is JSON")
}

/// Whether a route answers JSON (or is a probe, a stream or the metrics the API documents);
/// everything else is an HTML page, an asset or a redirect, which the document leaves out.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/webhooks/") || ["/healthz", "/readyz", "/metrics"].contains(&path)
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/http") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a call from its opening parenthesis to the matching closing one.
fn call_text(s: &str) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..=i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced route call: {s}")
}

/// Every `(METHOD, path)` that a `.route("…", get(…).post(…))` call in src/http registers. The
/// router is built from these calls, so this is the router's own list: a new route anywhere in
/// src/http shows up here whatever file it is in.
fn registered_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"), &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let src = std::fs::read_to_string(&file).expect("read source");
        for (at, _) in src.match_indices(".route(") {
            let call = call_text(&src[at + ".route".len()..]);
            let rest = call[1..].trim_start();
            let path = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(p, _)| p)
                .unwrap_or_else(|| panic!("{}: a route whose path is not a string literal: {call}", file.display()));
            let handlers = &rest[path.len() + 2..];
            let mut found = false;
            for m in METHODS {
                for (i, _) in handlers.match_indices(&format!("{m}(")) {
                    let before = handlers[..i].chars().next_back();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        routes.insert((m.to_string(), path.to_string()));
                        found = true;
                    }
                }
            }
            assert!(found, "{}: no method router in {call}", file.display());
        }
    }
    routes
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&method.as_str()) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented() {
    let registered: BTreeSet<_> = registered_routes().into_iter().filter(|(_, p)| is_api(p)).collect();
    // The scan itself works: it sees the routes this test was written against.
    assert!(registered.len() >= 70, "only {} API routes found in src/http: is the scan broken? {registered:?}", registered.len());
    for probe in [("get", "/healthz"), ("post", "/webhooks/mitto/inbound"), ("post", "/api/sms/analyze"), ("patch", "/api/segments/{id}")] {
        assert!(registered.contains(&(probe.0.to_string(), probe.1.to_string())), "the scan misses {probe:?}");
    }
    let documented = documented_routes(&document());
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document (annotate the handler and list it in ApiDoc): {missing:?}");
    assert!(extra.is_empty(), "documented operations that no route serves: {extra:?}");
}

/// The value a local `$ref` (`#/components/…`) points at.
fn resolve<'a>(doc: &'a Value, r: &str) -> &'a Value {
    let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}"));
    doc.pointer(pointer).unwrap_or_else(|| panic!("$ref {r} does not resolve"))
}

fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc, resolve(doc, r)),
        None => v,
    }
}

fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|x| refs_in(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs_in(x, out)),
        _ => {}
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_string(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn document_is_valid_openapi_3_1() {
    let text = smscast::http::api::openapi::json();
    // A strict, typed parse of the whole document by an OpenAPI 3.1 library.
    let spec = oas3::from_json(text).expect("the document parses as OpenAPI 3.1");
    let version = spec.validate_version().expect("an OpenAPI 3.1 version");
    assert_eq!((version.major, version.minor), (3, 1));
    let schemes = &spec.components.as_ref().expect("components").security_schemes;
    for name in ["api_key", "session", "admin_key", "webhook_secret"] {
        let scheme = schemes.get(name).unwrap_or_else(|| panic!("security scheme {name}"));
        scheme.resolve(&spec).expect("security scheme resolves");
    }
    for (path, method, op) in spec.operations() {
        let at = format!("{method} {path}");
        for p in &op.parameters {
            p.resolve(&spec).unwrap_or_else(|e| panic!("{at}: parameter: {e}"));
        }
        if let Some(body) = &op.request_body {
            body.resolve(&spec).unwrap_or_else(|e| panic!("{at}: request body: {e}"));
        }
        for (status, r) in op.responses.as_ref().unwrap_or_else(|| panic!("{at}: no responses")) {
            let r = r.resolve(&spec).unwrap_or_else(|e| panic!("{at} {status}: {e}"));
            for media in r.content.values() {
                if let Some(schema) = &media.schema {
                    schema.resolve(&spec).unwrap_or_else(|e| panic!("{at} {status}: schema: {e}"));
                }
            }
        }
        for req in &op.security {
            for name in req.0.keys() {
                assert!(schemes.contains_key(name), "{at}: unknown security scheme {name}");
            }
        }
    }

    // Our own checks, on the raw JSON.
    let doc = document();
    let mut refs = Vec::new();
    refs_in(&doc, &mut refs);
    assert!(refs.len() > 100, "few references: {}", refs.len());
    for r in &refs {
        resolve(&doc, r);
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    let required: BTreeSet<&str> = error["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, BTreeSet::from(["ok", "code", "message", "details", "actionable"]), "{error}");
    let mut ids = BTreeMap::new();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId"));
        if let Some(other) = ids.insert(id.to_string(), at.clone()) {
            panic!("operationId {id} of {at} is also {other}'s");
        }
        assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{at}: no tag");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{at}: no responses"));
        let has = |s: &str| responses.contains_key(s);
        assert!(responses.keys().any(|s| s.starts_with('2')), "{at}: no success answer");
        for (status, r) in responses {
            let r = deref(&doc, r);
            assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{at} {status}: no description");
            let content = r["content"].as_object();
            if status.starts_with('4') || status.starts_with('5') {
                let schema = content.and_then(|c| c.get("application/json")).map(|m| &m["schema"]);
                assert_eq!(
                    schema.and_then(|s| s["$ref"].as_str()),
                    Some("#/components/schemas/ErrorBody"),
                    "{at} {status}: an error answer must have the error shape"
                );
            } else if status != "204" {
                assert!(content.is_some_and(|c| !c.is_empty()), "{at} {status}: a success answer without a body schema");
            }
        }
        // What every operation can answer, by what it takes.
        assert!(has("500"), "{at}: no 500");
        let security: BTreeSet<&str> = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|o| o.keys())
            .map(String::as_str)
            .collect();
        if security.iter().any(|s| ["api_key", "admin_key", "webhook_secret"].contains(s)) {
            assert!(has("401"), "{at}: authenticated but no 401");
        }
        if security.contains("session") && method != "get" {
            assert!(has("403"), "{at}: a cookie session can be refused as cross-site, but no 403");
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let named = |place: &str| -> BTreeSet<String> {
            params
                .iter()
                .map(|p| deref(&doc, p))
                .filter(|p| p["in"] == place)
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        };
        let in_path: BTreeSet<String> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).map(str::to_string).collect();
        assert_eq!(named("path"), in_path, "{at}: path parameters");
        if !in_path.is_empty() {
            assert!(has("404"), "{at}: takes an id but no 404");
        }
        if !named("query").is_empty() {
            assert!(has("422"), "{at}: takes query parameters but no 422");
        }
        if let Some(body) = op.get("requestBody") {
            let body = deref(&doc, body);
            assert!(body["content"].as_object().is_some_and(|c| !c.is_empty()), "{at}: request body without content");
            if body["content"].get("application/json").is_some() {
                assert!(has("400"), "{at}: takes JSON but no 400");
            }
            // The one exception: the optional reason of a rejection is read as raw bytes, and an
            // over-limit body there gets axum's own plain-text 413, not the error shape (reported
            // to the hardening work, which owns body limits).
            assert!(has("413") || path == "/api/admin/senders/{id}/reject", "{at}: takes a body but no 413");
        }
    }
    assert!(ids.len() >= 70, "{} operations", ids.len());
}

/// Checks `v` against a JSON schema of the document; objects are closed (a field the schema
/// does not name is an error), so an answer cannot carry undocumented fields.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let schema = deref(doc, schema);
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(doc, s, v, at, errs);
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = schema[key].as_array() {
            let fits = options
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    check(doc, s, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            if fits == 0 || (exactly_one && fits > 1) {
                errs.push(format!("{at}: {v} fits {fits} of the {key} options {}", Value::Array(options.clone())));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => false,
        });
        if !fits {
            errs.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !v.is_null()
        && !options.contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {}", Value::Array(options.clone())));
    }
    if let (Some(o), Some(props)) = (v.as_object(), schema["properties"].as_object()) {
        for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !o.contains_key(r) {
                errs.push(format!("{at}: missing required field {r}"));
            }
        }
        for (k, x) in o {
            match props.get(k) {
                Some(s) => check(doc, s, x, &format!("{at}.{k}"), errs),
                None => errs.push(format!("{at}: field {k} is not documented")),
            }
        }
    } else if let (Some(o), Some(extra)) = (v.as_object(), schema.get("additionalProperties").filter(|s| s.is_object())) {
        for (k, x) in o {
            check(doc, extra, x, &format!("{at}.{k}"), errs);
        }
    }
    if let (Some(a), Some(items)) = (v.as_array(), schema.get("items")) {
        for (i, x) in a.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

/// Calls the app and checks the answer against what the document says `method template`
/// answers with this status: the status must be documented, and the body must fit its schema.
struct Checked<'a> {
    t: &'a TestApp,
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Checked<'_> {
    async fn call(&mut self, method: Method, template: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let (status, answer) = self.t.call(method.clone(), path, key, body).await;
        self.verify(method.as_str(), template, status, &answer);
        (status.as_u16(), answer)
    }

    fn verify(&mut self, method: &str, template: &str, status: StatusCode, answer: &Value) {
        let m = method.to_lowercase();
        let op = self.doc["paths"][template].get(&m).unwrap_or_else(|| panic!("{method} {template} is not documented"));
        let code = status.as_str();
        let response = op["responses"].get(code).unwrap_or_else(|| panic!("{method} {template} answered {code}, undocumented: {answer}"));
        let response = deref(&self.doc, response);
        if code == "204" {
            assert!(answer.is_null(), "{method} {template}: 204 with a body {answer}");
        } else {
            let schema = &response["content"]["application/json"]["schema"];
            assert!(!schema.is_null(), "{method} {template} {code}: no JSON schema");
            let mut errs = Vec::new();
            check(&self.doc, schema, answer, "answer", &mut errs);
            assert!(errs.is_empty(), "{method} {template} {code}: the answer does not match the document:\n{}\n{answer}", errs.join("\n"));
        }
        self.seen.insert((m, template.to_string()));
    }

    async fn get(&mut self, template: &str, path: &str, key: &str) -> Value {
        let (st, v) = self.call(Method::GET, template, path, Some(key), None).await;
        assert_eq!(st, 200, "GET {path}: {v}");
        v
    }
}

async fn answers_match_the_documented_schemas(b: Backend) {
    let (t, _sim) = TestApp::start_sending(b, Default::default(), 50, 1).await;
    // The served document is the generated one.
    let res = t.client.get(format!("{}/api/openapi.json", t.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc, document());
    let mut c = Checked { t: &t, doc, seen: BTreeSet::new() };
    let admin = t.admin_key.clone();
    let admin = admin.as_str();

    c.call(Method::GET, "/healthz", "/healthz", None, None).await;
    c.call(Method::GET, "/readyz", "/readyz", None, None).await;
    let (st, created) = c
        .call(
            Method::POST,
            "/api/admin/stores",
            "/api/admin/stores",
            Some(admin),
            Some(json!({"name": "Shop", "email": "shop@example.test"})),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    let (store, key) = (created["store"]["id"].as_i64().unwrap(), created["api_key"].as_str().unwrap().to_string());
    let key = key.as_str();
    let s = crate::harness::TestStore {
        id: store,
        key: key.to_string(),
        email: "shop@example.test".into(),
        password: created["password"].as_str().unwrap().into(),
    };
    seed(&t, &s, 3, 1_000).await;

    // The store's side.
    c.get("/api/store", "/api/store", key).await;
    c.get("/api/store/keywords", "/api/store/keywords", key).await;
    let (st, k) = c.call(Method::POST, "/api/keys", "/api/keys", Some(key), Some(json!({"name": "ci"}))).await;
    assert_eq!(st, 201, "{k}");
    c.get("/api/keys", "/api/keys", key).await;
    c.get("/api/wallet", "/api/wallet", key).await;
    c.get("/api/wallet/entries", "/api/wallet/entries", key).await;
    let contacts = c.get("/api/contacts", "/api/contacts", key).await;
    let contact = contacts["items"][0]["id"].as_i64().unwrap();
    c.get("/api/contacts/{id}", &format!("/api/contacts/{contact}"), key).await;
    c.get("/api/contacts/{id}/consent-history", &format!("/api/contacts/{contact}/consent-history"), key).await;
    let (st, _) = c
        .call(Method::POST, "/api/contacts/tags", "/api/contacts/tags", Some(key), Some(json!({"ids": [contact, 999_999], "add": ["vip"]})))
        .await;
    assert_eq!(st, 200);
    let (st, seg) = c
        .call(
            Method::POST,
            "/api/segments",
            "/api/segments",
            Some(key),
            Some(json!({"name": "VIPs", "rules": [{"field": "tag", "op": "has", "value": "vip"}]})),
        )
        .await;
    assert_eq!(st, 201, "{seg}");
    c.get("/api/segments", "/api/segments", key).await;
    let (st, a) =
        c.call(Method::POST, "/api/sms/analyze", "/api/sms/analyze", Some(key), Some(json!({"text": "Καλημέρα {{first_name}}"}))).await;
    assert_eq!(st, 200, "{a}");

    // A campaign from preview to report.
    let (st, camp) = c
        .call(
            Method::POST,
            "/api/campaigns",
            "/api/campaigns",
            Some(key),
            Some(json!({"name": "Sale", "message": "Γεια {{first_name}}: https://example.test/sale", "audience": {"kind": "all"}})),
        )
        .await;
    assert_eq!(st, 201, "{camp}");
    let id = camp["id"].as_i64().unwrap();
    let preview = c.get("/api/campaigns/{id}/preview", &format!("/api/campaigns/{id}/preview"), key).await;
    assert_eq!(preview["recipients"], 3, "{preview}");
    let (st, sent) = c.call(Method::POST, "/api/campaigns/{id}/send", &format!("/api/campaigns/{id}/send"), Some(key), None).await;
    assert_eq!(st, 202, "{sent}");
    t.wait_finished(key, id).await;
    let progress = c.get("/api/campaigns/{id}/progress", &format!("/api/campaigns/{id}/progress"), key).await;
    assert_eq!(progress["sent"], 3, "{progress}");
    // The check itself refuses what the document does not say: an extra field, a missing one, a
    // wrong type.
    let schema = &c.doc["paths"]["/api/campaigns/{id}/progress"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    for (change, want) in
        [("extra", "field bogus is not documented"), ("missing", "missing required field sent"), ("type", "is not of type")]
    {
        let mut bad = progress.clone();
        match change {
            "extra" => bad["bogus"] = json!(1),
            "missing" => drop(bad.as_object_mut().unwrap().remove("sent")),
            _ => bad["status"] = json!(7),
        }
        let mut errs = Vec::new();
        check(&c.doc, schema, &bad, "answer", &mut errs);
        assert!(errs.iter().any(|e| e.contains(want)), "{change}: {errs:?}");
    }
    for tail in ["", "/history", "/report", "/links", "/failures", "/messages", "/retry-failed/preview", "/resend-unknown/preview"] {
        c.get(&format!("/api/campaigns/{{id}}{tail}"), &format!("/api/campaigns/{id}{tail}"), key).await;
    }
    c.get("/api/campaigns", "/api/campaigns", key).await;
    c.get("/api/queue", "/api/queue", key).await;

    // Refusals: the documented statuses, in the error shape.
    let (st, _) = c.call(Method::GET, "/api/campaigns/{id}", "/api/campaigns/999999", Some(key), None).await;
    assert_eq!(st, 404);
    let (st, _) = c.call(Method::GET, "/api/campaigns/{id}/preview", &format!("/api/campaigns/{id}/preview"), None, None).await;
    assert_eq!(st, 401);
    let (st, _) = c.call(Method::POST, "/api/campaigns/{id}/send", &format!("/api/campaigns/{id}/send"), Some(key), None).await;
    assert_eq!(st, 409);
    let (st, _) = c.call(Method::POST, "/api/campaigns", "/api/campaigns", Some(key), Some(json!({"name": "x", "colour": "red"}))).await;
    assert_eq!(st, 422);
    let (st, _) = c.call(Method::GET, "/api/contacts", "/api/contacts?limit=many", Some(key), None).await;
    assert_eq!(st, 422);

    // The operator's side.
    for path in ["/api/admin/stores", "/api/admin/keys", "/api/admin/senders", "/api/admin/queue", "/api/admin/rate-limits"] {
        c.get(path, path, admin).await;
    }

    // Provider webhooks.
    let hook =
        |path: &str, body: Value| t.client.post(format!("{}{path}", t.url)).header("x-webhook-secret", WEBHOOK_SECRET).json(&body).send();
    let res = hook("/webhooks/mitto/dlr", json!({"messageId": "nobody-knows", "deliveryStatus": "Delivered"})).await.unwrap();
    let st = res.status();
    c.verify("POST", "/webhooks/mitto/dlr", st, &res.json().await.unwrap());
    let phone = contacts["items"][0]["phone"].as_str().unwrap().to_string();
    let res = hook("/webhooks/mitto/inbound", json!({"from": phone, "text": "STOP"})).await.unwrap();
    let st = res.status();
    let inbound: Value = res.json().await.unwrap();
    assert_eq!(st, 200, "{inbound}");
    c.verify("POST", "/webhooks/mitto/inbound", st, &inbound);
    assert!(c.seen.len() >= 35, "checked {} operations", c.seen.len());
}

dual!(answers_match_the_documented_schemas);
