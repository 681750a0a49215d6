//! CSV import through `POST /api/contacts/import`: file shapes, encodings, header aliases, row
//! errors, duplicates, formula-looking cells, consent rules, multipart, size limits.

use crate::contacts::list_all;
use crate::dual;
use crate::harness::{Backend, TestApp, assert_error};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// The contact with this E.164 number, or panics.
async fn by_phone(t: &TestApp, key: &str, e164: &str) -> Value {
    let (st, page) = t.get(&format!("/api/contacts?q={}", e164.replace('+', "%2B")), key).await;
    assert_eq!(st, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    items.iter().find(|c| c["phone"] == e164).cloned().unwrap_or_else(|| panic!("no contact {e164} in {page}"))
}

async fn count(t: &TestApp, key: &str) -> usize {
    list_all(t, key, "", 500).await.len()
}

fn error_list(r: &Value) -> Vec<(i64, String, String)> {
    r["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors in {r}"))
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "every row error has a message: {e}");
            (e["row"].as_i64().unwrap(), e["column"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string())
        })
        .collect()
}

fn report(r: &Value) -> (u64, u64, u64, u64) {
    (r["total"].as_u64().unwrap(), r["created"].as_u64().unwrap(), r["updated"].as_u64().unwrap(), r["skipped"].as_u64().unwrap())
}

async fn upload_multipart(t: &TestApp, key: &str, form: Form) -> (reqwest::StatusCode, Value) {
    let res = t.client.post(format!("{}/api/contacts/import", t.url)).bearer_auth(key).multipart(form).send().await.unwrap();
    let st = res.status();
    (st, res.json().await.unwrap_or(Value::Null))
}

/// Posts an import over a plain socket (see `TestApp::raw_post`).
async fn raw_import(
    t: &TestApp,
    key: &str,
    content_type: &str,
    declared_length: Option<usize>,
    body: &[u8],
) -> (reqwest::StatusCode, Value) {
    t.raw_post("/api/contacts/import", key, content_type, declared_length, body).await
}

async fn empty_file_and_header_only(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Empty").await;
    for empty in ["", "\u{feff}"] {
        let (st, r) = t.import_csv(&s.key, empty).await;
        assert_error(st, &r, 422, "empty_file");
    }
    for header_only in ["phone,first_name\n", "phone,first_name", "\u{feff}phone\r\n", "phone\n\n\n"] {
        let (st, r) = t.import_csv(&s.key, header_only).await;
        assert_eq!(st, 200, "{header_only:?}: {r}");
        assert_eq!(report(&r), (0, 0, 0, 0), "{header_only:?}");
        assert_eq!(r["errors"], json!([]));
    }
    assert_eq!(count(&t, &s.key).await, 0);
}

async fn bom_crlf_lf_and_quoting(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Shapes").await;
    // UTF-8 with a BOM and Windows line endings, as Excel saves it.
    let (st, r) = t.import_csv(&s.key, "\u{feff}phone,first_name,last_name\r\n6912345601,Νίκος,Παππάς\r\n6912345602,Anna,Lee\r\n").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (2, 2, 0, 0));
    let c = by_phone(&t, &s.key, "+306912345601").await;
    assert_eq!(c["first_name"], "Νίκος");
    assert_eq!(c["last_name"], "Παππάς", "no carriage return left in the last cell");
    assert_eq!(by_phone(&t, &s.key, "+306912345602").await["last_name"], "Lee");
    // Unix line endings, no BOM, no final newline.
    let (st, r) = t.import_csv(&s.key, "phone,first_name\n6912345603,Eleni\n6912345604,Kostas").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (2, 2, 0, 0));
    assert_eq!(by_phone(&t, &s.key, "+306912345604").await["first_name"], "Kostas");
    // Quoted cells keep commas, newlines and doubled quotes.
    let csv = "phone,first_name,last_name,tags\r\n\
               \"691 234 5605\",\"Smith, John\",\"O'Brien \"\"Jr\"\"\",\"vip, athens\"\r\n\
               6912345606,\"Two\r\nLines\",\"a\nb\",\r\n\
               6912345607,Last,Row,summer\r\n";
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (3, 3, 0, 0), "{r}");
    let c = by_phone(&t, &s.key, "+306912345605").await;
    assert_eq!(c["first_name"], "Smith, John");
    assert_eq!(c["last_name"], "O'Brien \"Jr\"");
    assert_eq!(c["tags"], json!(["athens", "vip"]), "tags are listed alphabetically");
    let c = by_phone(&t, &s.key, "+306912345606").await;
    assert_eq!(c["first_name"], "Two\r\nLines");
    assert_eq!(c["last_name"], "a\nb");
    assert_eq!(by_phone(&t, &s.key, "+306912345607").await["tags"], json!(["summer"]), "the row after a multi-line cell is intact");
    // Blank lines are not rows.
    let (st, r) = t.import_csv(&s.key, "phone\n\n6912345608\n\n \n6912345609\n").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (2, 2, 0, 0));
    // A cell that is not UTF-8 (a Latin-1 file) is a row error, not a crash.
    let mut latin1 = b"phone,first_name\n6912345610,Jos\xe9\n6912345611,Ok\n".to_vec();
    latin1.shrink_to_fit();
    let res = t
        .client
        .post(format!("{}/api/contacts/import", t.url))
        .bearer_auth(&s.key)
        .header("content-type", "text/csv")
        .body(latin1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    assert_eq!(report(&r), (2, 1, 0, 1));
    assert_eq!(error_list(&r), [(2, "first_name".to_string(), "invalid_encoding".to_string())]);
}

async fn invalid_rows_among_good_ones(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Rows").await;
    let csv = format!(
        "phone,first_name,last_name,email,tags,consent\n\
               6912345601,Good,One,one@shop.gr,vip,yes\n\
               12,Short,,,,\n\
               6912345602,Good,Two,,,\n\
               69123abc78,Letters,,,,\n\
               6912345603,Bad,Email,not-an-email,,\n\
               6912345604,Bad,Consent,,,perhaps\n\
               ,No,Phone,,,\n\
               6912345605,Good,Three,,\"a,b\",no\n\
               6912345606,Bad,Tag,,\"ok,{long_tag}\",\n\
               6912345607,{long_name},Long,,,\n\
               +30 12345678,Invalid,Number,,,\n",
        long_tag = "t".repeat(65),
        long_name = "n".repeat(101),
    );
    let (st, r) = t.import_csv(&s.key, &csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (11, 3, 0, 8), "{r}");
    assert_eq!(r["error_count"], 8);
    let s_ = |x: &str| x.to_string();
    assert_eq!(
        error_list(&r),
        [
            (3, s_("phone"), s_("invalid_phone")),
            (5, s_("phone"), s_("invalid_phone")),
            (6, s_("email"), s_("invalid_email")),
            (7, s_("consent"), s_("invalid_consent")),
            (8, s_("phone"), s_("invalid_phone")),
            (10, s_("tags"), s_("invalid_tag")),
            (11, s_("first_name"), s_("too_long")),
            (12, s_("phone"), s_("invalid_phone")),
        ],
        "row numbers are the spreadsheet's: the header is row 1"
    );
    let messages: Vec<&str> = r["errors"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(messages[1].contains("69123abc78"), "the message quotes the bad value: {}", messages[1]);
    let all = list_all(&t, &s.key, "", 500).await;
    let mut phones: Vec<&str> = all.iter().map(|c| c["phone"].as_str().unwrap()).collect();
    phones.sort();
    assert_eq!(phones, ["+306912345601", "+306912345602", "+306912345605"], "good rows are imported, bad ones are not");
    let c = by_phone(&t, &s.key, "+306912345605").await;
    assert_eq!(c["consent"], "opted_out");
    assert_eq!(c["tags"], json!(["a", "b"]));
    assert_eq!(by_phone(&t, &s.key, "+306912345601").await["email"], "one@shop.gr");
}

async fn duplicates_in_one_file_and_reimport(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Dups").await;
    let csv = "phone,first_name\n\
               6912345601,First\n\
               +30 691 234 5601,Second\n\
               6912345602,Other\n\
               0030-691-234-5601,Third\n";
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (4, 2, 0, 2));
    assert_eq!(
        error_list(&r),
        [(3, "phone".to_string(), "duplicate_in_file".to_string()), (5, "phone".to_string(), "duplicate_in_file".to_string())]
    );
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("row 2"), "points at the first occurrence: {}", r["errors"][0]);
    assert_eq!(by_phone(&t, &s.key, "+306912345601").await["first_name"], "First", "the first occurrence wins");
    assert_eq!(count(&t, &s.key).await, 2);

    // Importing again upserts by E.164: same people, updated; empty cells keep what is stored; tags add up.
    let id = by_phone(&t, &s.key, "+306912345601").await["id"].clone();
    t.patch(&format!("/api/contacts/{id}"), &s.key, json!({"last_name": "Kept", "email": "kept@shop.gr", "tags": ["old"]})).await;
    let (st, r) = t.import_csv(&s.key, "mobile,name,surname,email,tags\n+306912345601,Renamed,,,new\n6912345603,Fresh,,,\n").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (2, 1, 1, 0));
    let c = by_phone(&t, &s.key, "+306912345601").await;
    assert_eq!(c["id"], id, "the same contact");
    assert_eq!(c["first_name"], "Renamed");
    assert_eq!(c["last_name"], "Kept");
    assert_eq!(c["email"], "kept@shop.gr");
    assert_eq!(c["tags"], json!(["new", "old"]));
    assert_eq!(count(&t, &s.key).await, 3);

    // Duplicates far apart in a file larger than one write batch.
    let mut big = String::from("phone,first_name\n");
    for i in 0..2500 {
        big.push_str(&format!("69{:08},P{i}\n", 20_000_000 + i));
    }
    big.push_str("6920000000,Again\n");
    let (st, r) = t.import_csv(&s.key, &big).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (2501, 2500, 0, 1));
    assert_eq!(error_list(&r), [(2502, "phone".to_string(), "duplicate_in_file".to_string())]);
    assert_eq!(count(&t, &s.key).await, 2503);
    assert_eq!(by_phone(&t, &s.key, "+306920000000").await["first_name"], "P0");
    assert_eq!(by_phone(&t, &s.key, "+306920002499").await["first_name"], "P2499");
}

async fn formula_looking_cells_are_stored_verbatim(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Formulas").await;
    let csv = "phone,first_name,last_name,tags\n\
               6912345601,=SUM(A1:A9),=1+1,=cmd\n\
               6912345602,+Plus,+30 Name,+tag\n\
               6912345603,-Minus,-2,-tag\n\
               6912345604,@Handle,\"@SUM(1,2)\",@tag\n\
               6912345605,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",\t=tab,\n";
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (5, 5, 0, 0), "{r}");
    for (phone, first, last, tags) in [
        ("+306912345601", "=SUM(A1:A9)", "=1+1", json!(["=cmd"])),
        ("+306912345602", "+Plus", "+30 Name", json!(["+tag"])),
        ("+306912345603", "-Minus", "-2", json!(["-tag"])),
        ("+306912345604", "@Handle", "@SUM(1,2)", json!(["@tag"])),
        ("+306912345605", "=HYPERLINK(\"http://x\",\"y\")", "=tab", json!([])),
    ] {
        let c = by_phone(&t, &s.key, phone).await;
        assert_eq!(c["first_name"], first, "{phone}");
        assert_eq!(c["last_name"], last, "{phone}");
        assert_eq!(c["tags"], tags, "{phone}");
    }
    // And the JSON API stores them the same way.
    let (st, c) = t.post("/api/contacts", &s.key, json!({"phone": "6912345606", "first_name": "=2+3", "last_name": "@x"})).await;
    assert_eq!(st, 201);
    assert_eq!(c["first_name"], "=2+3");
    assert_eq!(c["last_name"], "@x");
}

async fn header_aliases(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Aliases").await;
    for (i, (header, row)) in [
        ("Mobile,Given Name,Surname,E-mail,Labels,Accepts Marketing", "6912345601,Anna,Lee,anna@shop.gr,vip,yes"),
        ("MSISDN,First,Last,Email Address,Tag,SMS Consent", "306912345602,Bob,Ray,bob@shop.gr,vip,no"),
        ("Phone Number,FirstName,LastName,mail,groups,opt-in", "6912345603,Cat,Su,cat@shop.gr,vip,yes"),
        ("tel,name,family_name,e_mail,tags,subscribed", "6912345604,Dan,Ng,dan@shop.gr,vip,no"),
        ("Τηλέφωνο,Όνομα,Επώνυμο,Email,Tags,Consent", "6912345605,Ελένη,Νίκου,el@shop.gr,vip,yes"),
        ("  PHONE  ,notes,first_name,internal id", "6912345606,ignored,Eve,42"),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, r) = t.import_csv(&s.key, &format!("{header}\n{row}\n")).await;
        assert_eq!(st, 200, "{header}: {r}");
        assert_eq!(report(&r), (1, 1, 0, 0), "{header}: {r}");
        let c = by_phone(&t, &s.key, &format!("+30691234560{}", i + 1)).await;
        assert!(c["first_name"].is_string(), "{header}: {c}");
        if i < 5 {
            assert!(c["last_name"].is_string(), "{header}: {c}");
            assert!(c["email"].is_string(), "{header}: {c}");
            assert_eq!(c["tags"], json!(["vip"]), "{header}");
            assert_eq!(c["consent"], if i % 2 == 0 { "opted_in" } else { "opted_out" }, "{header}");
        }
    }
    assert_eq!(by_phone(&t, &s.key, "+306912345606").await["first_name"], "Eve", "unknown columns are ignored");
    assert_eq!(by_phone(&t, &s.key, "+306912345605").await["last_name"], "Νίκου");
}

async fn missing_phone_column_changes_nothing(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("No Phone").await;
    t.import_csv(&s.key, "phone,first_name\n6912345601,Anna\n").await;
    for csv in ["first_name,email\nAnna,a@shop.gr\n", "name;phone\nAnna;6912345601\n", "6912345602,Anna\n6912345603,Bob\n"] {
        let (st, r) = t.import_csv(&s.key, csv).await;
        assert_error(st, &r, 422, "missing_phone_column");
        assert!(r["details"]["columns"].is_array(), "the answer lists the columns it found: {r}");
    }
    let (_, r) = t.import_csv(&s.key, "first_name,email\nAnna,a@shop.gr\n").await;
    assert_eq!(r["details"]["columns"], json!(["first_name", "email"]));
    let all = list_all(&t, &s.key, "", 500).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["first_name"], "Anna");
    assert!(all[0]["email"].is_null());
}

async fn multipart_upload(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Multipart").await;
    let csv = "phone,first_name,tags\r\n6912345601,Anna,\"vip,athens\"\r\n6912345602,Bob,\r\n12,Bad,\r\n";
    let form = Form::new()
        .text("note", "a text field before the file is ignored")
        .part("file", Part::bytes(csv.as_bytes().to_vec()).file_name("contacts.csv").mime_str("text/csv").unwrap());
    let (st, r) = upload_multipart(&t, &s.key, form).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (3, 2, 0, 1));
    assert_eq!(error_list(&r), [(4, "phone".to_string(), "invalid_phone".to_string())]);
    assert_eq!(by_phone(&t, &s.key, "+306912345601").await["tags"], json!(["athens", "vip"]));
    // Any field carrying a file name is the file.
    let form = Form::new().part("upload", Part::text("phone\n6912345603\n").file_name("x.csv"));
    let (st, r) = upload_multipart(&t, &s.key, form).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (1, 1, 0, 0));
    // A form without a file.
    let (st, r) = upload_multipart(&t, &s.key, Form::new().text("note", "no file here")).await;
    assert_error(st, &r, 422, "missing_file");
    // Neither multipart nor CSV.
    let (st, r) = t.post("/api/contacts/import", &s.key, json!({"phone": "6912345604"})).await;
    assert_error(st, &r, 415, "unsupported_media_type");
    // Not authenticated.
    let res = t
        .client
        .post(format!("{}/api/contacts/import", t.url))
        .header("content-type", "text/csv")
        .body("phone\n6912345605\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(count(&t, &s.key).await, 3);
}

async fn files_over_the_limit_get_413(b: Backend) {
    let t = TestApp::start_with(b, |cfg| cfg.max_import_bytes = 1024 * 1024).await;
    let s = t.store("Too Big").await;
    let mut csv = String::from("phone,first_name\n");
    let mut i = 0;
    while csv.len() <= 1024 * 1024 + 100 {
        csv.push_str(&format!("69{:08},Name {i}\n", 10_000_000 + i));
        i += 1;
    }
    let check = |st: reqwest::StatusCode, r: &Value| {
        assert_error(st, r, 413, "file_too_large");
        assert!(r["message"].as_str().unwrap().contains("1 MB"), "the message names the limit: {r}");
        assert_eq!(r["details"]["limit_bytes"], 1024 * 1024);
    };
    // A declared length over the limit is refused before anything is read.
    let (st, r) = raw_import(&t, &s.key, "text/csv", Some(csv.len()), b"").await;
    check(st, &r);
    assert_eq!(count(&t, &s.key).await, 0);
    // Streamed without a length: stopped when the upload passes the limit, as raw CSV or multipart,
    // and nothing at all is imported, not even the rows before the limit.
    let (st, r) = raw_import(&t, &s.key, "text/csv", None, csv.as_bytes()).await;
    check(st, &r);
    assert_eq!(count(&t, &s.key).await, 0);
    let boundary = "XyZ0123456789";
    let mut mp =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n")
            .into_bytes();
    mp.extend_from_slice(csv.as_bytes());
    mp.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (st, r) = raw_import(&t, &s.key, &format!("multipart/form-data; boundary={boundary}"), None, &mp).await;
    check(st, &r);
    assert_eq!(count(&t, &s.key).await, 0);
    // The same framings under the limit go through.
    let small: String = csv.lines().take(1000).map(|l| format!("{l}\n")).collect();
    let (st, r) = raw_import(&t, &s.key, "text/csv", None, small.as_bytes()).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (999, 999, 0, 0));
    let (st, r) = raw_import(&t, &s.key, "text/csv", Some(small.len()), small.as_bytes()).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (999, 0, 999, 0));
}

async fn explicit_consent_column_is_recorded(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Consent").await;
    let id = crate::contacts::new_contact(&t, &s.key, json!({"phone": "6912345601", "consent": "opted_in"})).await;
    let path = format!("/api/contacts/{id}");
    t.patch(&path, &s.key, json!({"consent": "opted_out"})).await;

    // No consent column, or an empty consent cell: an opted-out contact stays opted out.
    for csv in ["phone,first_name\n6912345601,A\n", "phone,consent\n6912345601,\n", "phone,consent\n6912345601,  \n"] {
        let (st, r) = t.import_csv(&s.key, csv).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(report(&r), (1, 0, 1, 0));
        let (_, c) = t.get(&path, &s.key).await;
        assert_eq!(c["consent"], "opted_out", "{csv:?}");
        assert_eq!(c["consent_source"], "api");
    }
    let (_, h) = t.get(&format!("{path}/consent-history"), &s.key).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 2, "imports without consent add no history: {h}");

    // An explicit consent cell re-opts-in, and the change is on the record with its source.
    let (_, before) = t.get(&path, &s.key).await;
    t.clock.advance(60_000);
    let (st, r) = t.import_csv(&s.key, "phone,consent\n+30 691 234 5601,yes\n6912345602,opted_in\n6912345603,\n").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (3, 2, 1, 0));
    let (_, c) = t.get(&path, &s.key).await;
    assert_eq!(c["consent"], "opted_in");
    assert_eq!(c["consent_source"], "import");
    assert_ne!(c["consent_changed_at"], before["consent_changed_at"]);
    let (_, h) = t.get(&format!("{path}/consent-history"), &s.key).await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{h}");
    let last = &items[2];
    assert_eq!(last["from"], "opted_out");
    assert_eq!(last["to"], "opted_in");
    assert_eq!(last["source"], "import");
    assert!(last["actor"].as_str().unwrap().starts_with("api_key:"), "who did it: {last}");
    assert!(last["at"].is_string());

    // New contacts: a stated consent is recorded, an unstated one is unknown with no history.
    let c2 = by_phone(&t, &s.key, "+306912345602").await;
    assert_eq!(c2["consent"], "opted_in");
    let (_, h2) = t.get(&format!("/api/contacts/{}/consent-history", c2["id"]), &s.key).await;
    assert_eq!(h2["items"].as_array().unwrap().len(), 1, "{h2}");
    assert!(h2["items"][0]["from"].is_null());
    assert_eq!(h2["items"][0]["source"], "import");
    let c3 = by_phone(&t, &s.key, "+306912345603").await;
    assert_eq!(c3["consent"], "unknown");
    let (_, h3) = t.get(&format!("/api/contacts/{}/consent-history", c3["id"]), &s.key).await;
    assert_eq!(h3["items"], json!([]));

    // Importing the same consent again is not a change.
    let (_, r) = t.import_csv(&s.key, "phone,consent\n6912345601,opted_in\n").await;
    assert_eq!(report(&r), (1, 0, 1, 0));
    let (_, h) = t.get(&format!("{path}/consent-history"), &s.key).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3, "{h}");
    // And an explicit opt-out through import is recorded too.
    let (_, r) = t.import_csv(&s.key, "phone,consent\n6912345601,unsubscribed\n").await;
    assert_eq!(report(&r), (1, 0, 1, 0));
    let (_, h) = t.get(&format!("{path}/consent-history"), &s.key).await;
    assert_eq!(h["items"][3]["to"], "opted_out", "{h}");
}

async fn phone_parsing_in_import(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Import Phones").await;
    let csv = "phone\n\
               6912345601\n\
               +30 691 234 5602\n\
               0030 691 234 5603\n\
               (+30) 691-234-5604\n\
               210 123 4567\n\
               +44 7911 123456\n\
               69123abc78\n\
               123\n\
               +30 691234567812345678\n";
    let (st, r) = t.import_csv(&s.key, csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (9, 6, 0, 3));
    let mut phones: Vec<String> = list_all(&t, &s.key, "", 500).await.iter().map(|c| c["phone"].as_str().unwrap().to_string()).collect();
    phones.sort();
    assert_eq!(phones, ["+302101234567", "+306912345601", "+306912345602", "+306912345603", "+306912345604", "+447911123456"]);
    assert_eq!(error_list(&r).iter().map(|e| e.0).collect::<Vec<_>>(), [8, 9, 10]);
}

async fn large_file_keeps_every_tag_and_consent_event(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Large").await;
    // More rows than one write batch, with a consent and tags on every row, so tags and consent
    // events are written in several statements per batch.
    let mut csv = String::from("phone,first_name,tags,consent\n");
    for i in 0..1300 {
        csv.push_str(&format!(
            "69{:08},P{i},\"all,{}\",{}\n",
            30_000_000 + i,
            if i % 2 == 0 { "even" } else { "odd" },
            if i % 3 == 0 { "no" } else { "yes" }
        ));
    }
    let (st, r) = t.import_csv(&s.key, &csv).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (1300, 1300, 0, 0));
    assert_eq!(list_all(&t, &s.key, "tag=all", 500).await.len(), 1300);
    assert_eq!(list_all(&t, &s.key, "tag=even", 500).await.len(), 650);
    assert_eq!(list_all(&t, &s.key, "consent=opted_out", 500).await.len(), 434);
    assert_eq!(list_all(&t, &s.key, "consent=opted_in", 500).await.len(), 866);
    for i in [0, 511, 512, 1023, 1299] {
        let c = by_phone(&t, &s.key, &format!("+3069{:08}", 30_000_000 + i)).await;
        assert_eq!(c["first_name"], format!("P{i}"));
        let (_, h) = t.get(&format!("/api/contacts/{}/consent-history", c["id"]), &s.key).await;
        let items = h["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "row {i}: {h}");
        assert_eq!(items[0]["to"], if i % 3 == 0 { "opted_out" } else { "opted_in" });
        assert_eq!(items[0]["source"], "import");
    }
}

/// Consent history outlives a deleted contact (regulators ask for it), so a deleted contact's id
/// must never be handed to a contact imported later: its history would become theirs.
async fn imported_contacts_never_take_a_deleted_contacts_id(b: Backend) {
    let t = TestApp::start(b).await;
    let s = t.store("Ids").await;
    let gone = crate::contacts::new_contact(&t, &s.key, json!({"phone": "6912345701", "consent": "opted_in"})).await;
    let (st, _) = t.delete(&format!("/api/contacts/{gone}"), &s.key).await;
    assert_eq!(st, 204);
    let (st, r) = t.import_csv(&s.key, "phone,consent\n6912345702,opted_out\n6912345703,\n").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(report(&r), (2, 2, 0, 0));
    for (phone, events) in [("+306912345702", 1), ("+306912345703", 0)] {
        let c = by_phone(&t, &s.key, phone).await;
        assert!(c["id"].as_i64().unwrap() > gone, "{c} reuses or precedes the deleted contact's id {gone}");
        let (_, h) = t.get(&format!("/api/contacts/{}/consent-history", c["id"]), &s.key).await;
        assert_eq!(h["items"].as_array().unwrap().len(), events, "only its own consent history: {h}");
    }
}

dual!(
    imported_contacts_never_take_a_deleted_contacts_id,
    large_file_keeps_every_tag_and_consent_event,
    empty_file_and_header_only,
    bom_crlf_lf_and_quoting,
    invalid_rows_among_good_ones,
    duplicates_in_one_file_and_reimport,
    formula_looking_cells_are_stored_verbatim,
    header_aliases,
    missing_phone_column_changes_nothing,
    multipart_upload,
    files_over_the_limit_get_413,
    explicit_consent_column_is_recorded,
    phone_parsing_in_import,
);
