//! The `smscast` binary as an operator runs it: `serve --demo`, `store create`, `import-contacts`,
//! `migrate`, on a SQLite file and on a PostgreSQL database.

use crate::dual;
use crate::harness::{Backend, drop_database, fresh_database};
use serde_json::Value;
use smscast::store::{Db, StoreId, auth, contacts};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_smscast");
/// A guard against a hung binary, not a wait for anything: every step reads output as it comes.
pub(crate) const GUARD: Duration = Duration::from_secs(120);

/// A fresh database for one test, dropped at the end (PostgreSQL) or removed with its directory.
pub(crate) struct TestDb {
    pub(crate) url: String,
    pg_name: Option<String>,
    pub(crate) dir: tempfile::TempDir,
}

impl TestDb {
    pub(crate) async fn new(b: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_name) = match b {
            // The file name the README's users would see, not the harness's.
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("demo.db").display()), None),
            Backend::Postgres => fresh_database(b, dir.path()).await,
        };
        TestDb { url, pg_name, dir }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_database(&name);
        }
    }
}

pub(crate) fn smscast(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("SMSCAST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("SMSCAST_LISTEN")
        .env_remove("SMSCAST_DEMO")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs a command to completion: (success, stdout, stderr).
async fn run(args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(GUARD, smscast(args).output()).await.expect("the command finishes").expect("the binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(crate) struct Demo {
    pub(crate) child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    pub(crate) url: String,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) api_key: String,
    pub(crate) admin_key: String,
}

/// Starts `serve --demo` on port 0 and reads its stdout up to the "running" line.
async fn serve_demo(db: &TestDb) -> Demo {
    serve_demo_with(&db.url, &[], "warn", Stdio::inherit()).await
}

/// `serve_demo` with more arguments, a log filter (`SMSCAST_LOG`) and somewhere for the logs.
pub(crate) async fn serve_demo_with(url: &str, args: &[&str], log: &str, stderr: Stdio) -> Demo {
    let mut child = smscast(&[&["serve", "--demo", "--listen", "127.0.0.1:0", "--database-url", url], args].concat())
        .env("SMSCAST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = tokio::time::timeout(GUARD, async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap_or_else(|| panic!("stdout ended before the running line: {printed:?}"));
            if let Some(url) = line.strip_prefix("smscast is running on ") {
                return url.trim().to_string();
            }
            printed.push(line);
        }
    })
    .await
    .expect("the server says it is running");
    assert_eq!(printed.len(), 3, "exactly the three credential lines before the running line: {printed:?}");
    let (email, password) = printed[0].strip_prefix("Login: ").and_then(|l| l.split_once(" / ")).expect("Login: <email> / <password>");
    let api_key = printed[1].strip_prefix("API key: ").expect("API key: <key>");
    let admin_key = printed[2].strip_prefix("Admin API key: ").expect("Admin API key: <key>");
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "the real port: {url}");
    // Where a newcomer goes next: the login page.
    let open = tokio::time::timeout(GUARD, lines.next_line()).await.expect("the address line").unwrap();
    assert_eq!(open.as_deref(), Some(format!("Open {url}/ and log in").as_str()));
    Demo {
        email: email.to_string(),
        password: password.to_string(),
        api_key: api_key.to_string(),
        admin_key: admin_key.to_string(),
        url,
        child,
        _stdout: lines,
    }
}

/// Every contact the demo store has, walked page by page through the API with the printed key.
async fn demo_contacts(d: &Demo) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let res = client.get(format!("{}/api/contacts?limit=500&cursor={cursor}", d.url)).bearer_auth(&d.api_key).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return out,
        }
    }
}

async fn serve_demo_seeds_once(b: Backend) {
    smscast::provider::install_crypto_provider();
    let db = TestDb::new(b).await;
    let mut first = serve_demo(&db).await;
    assert!(first.api_key.starts_with("sk_live_"), "{}", first.api_key);
    assert!(first.admin_key.starts_with("sk_admin_"), "{}", first.admin_key);
    assert!(first.email.contains('@') && !first.password.is_empty());
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/readyz", first.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let all = demo_contacts(&first).await;
    assert!((900..=1000).contains(&all.len()), "about 1,000 demo contacts, got {}", all.len());
    let consent = |c: &str| all.iter().filter(|x| x["consent"] == c).count();
    assert!(consent("opted_out") > 0 && consent("opted_in") > 0 && consent("unknown") > 0, "mixed consent");
    assert!(all.iter().any(|c| c["phone"].as_str().unwrap().starts_with("+3069")), "Greek mobiles");
    assert!(all.iter().any(|c| !c["phone"].as_str().unwrap().starts_with("+30")), "international numbers");
    assert!(all.iter().any(|c| c["tags"].as_array().is_some_and(|t| !t.is_empty())), "tags");
    // The printed login and operator key work too.
    let res = client
        .post(format!("{}/api/login", first.url))
        .json(&serde_json::json!({"email": first.email, "password": first.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client.get(format!("{}/api/admin/stores", first.url)).bearer_auth(&first.admin_key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let stores: Value = res.json().await.unwrap();
    assert_eq!(stores["items"].as_array().unwrap().len(), 1, "one demo store");

    first.child.kill().await.unwrap();

    // Again on the same database: the same credentials, no second seeding, no crash.
    let mut second = serve_demo(&db).await;
    assert_eq!(
        (&second.email, &second.password, &second.api_key, &second.admin_key),
        (&first.email, &first.password, &first.api_key, &first.admin_key)
    );
    assert_eq!(demo_contacts(&second).await.len(), all.len(), "no second seeding");
    let res = client.get(format!("{}/api/admin/stores", second.url)).bearer_auth(&second.admin_key).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["items"].as_array().unwrap().len(), 1);
    second.child.kill().await.unwrap();
}

async fn store_create_and_import_contacts(b: Backend) {
    let db = TestDb::new(b).await;
    let (ok, out, err) = run(&["migrate", "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("Migrations applied"), "{out}");
    let (ok, _, err) = run(&["migrate", "--database-url", &db.url]).await;
    assert!(ok, "migrations are idempotent: {err}");

    let (ok, out, err) = run(&["store", "create", "--name", "CLI Shop", "--email", "Owner@CLI.test", "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let store_id: i64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("Store: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("Store: <id> in {out}"));
    let (email, password) =
        lines.iter().find_map(|l| l.strip_prefix("Login: ")).and_then(|l| l.split_once(" / ")).unwrap_or_else(|| panic!("{out}"));
    let key = lines.iter().find_map(|l| l.strip_prefix("API key: ")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(email, "owner@cli.test");
    assert!(!password.is_empty());

    // The same email again is refused, with a message and a failing exit status.
    let (ok, out, err) = run(&["store", "create", "--name", "Again", "--email", "owner@cli.test", "--database-url", &db.url]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("owner@cli.test") && err.contains("already exists"), "{err}");

    let csv = db.dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "\u{feff}Mobile,First Name,Surname,Tags,Consent\r\n\
         6912345601,Μαρία,Παπαδοπούλου,\"vip,athens\",yes\r\n\
         +30 691 234 5602,John,\"Smith, Jr\",,no\r\n\
         12,Bad,Row,,\r\n\
         0030 6912345601,Dup,Row,,\r\n\
         +44 7911 123456,=cmd,@x,,\r\n",
    )
    .unwrap();
    let store_arg = store_id.to_string();
    let csv_arg = csv.display().to_string();
    let (ok, out, err) = run(&["import-contacts", &csv_arg, "--store", &store_arg, "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("a JSON report on stdout ({e}): {out}"));
    assert_eq!(
        (&report["total"], &report["created"], &report["updated"], &report["skipped"]),
        (&5.into(), &3.into(), &0.into(), &2.into())
    );
    let errors: Vec<(i64, &str)> =
        report["errors"].as_array().unwrap().iter().map(|e| (e["row"].as_i64().unwrap(), e["code"].as_str().unwrap())).collect();
    assert_eq!(errors, [(4, "invalid_phone"), (5, "duplicate_in_file")]);
    assert!(err.contains("100%"), "a progress bar on stderr: {err}");

    // Importing again updates the same contacts.
    let (ok, out, err) = run(&["import-contacts", &csv_arg, "--store", &store_arg, "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&again["created"], &again["updated"]), (&0.into(), &3.into()));

    // What the operator sees is what the store has.
    let conn = Db::connect(&db.url, 2).await.unwrap();
    let principal = auth::authenticate_key(&conn, &Default::default(), key, 0).await.unwrap().expect("the printed API key works");
    assert_eq!(principal.store, StoreId(store_id));
    let page = contacts::list(&conn, StoreId(store_id), contacts::ContactFilter { limit: Some(500), ..Default::default() }).await.unwrap();
    let phones: Vec<&str> = page.items.iter().map(|c| c.phone.as_str()).collect();
    assert_eq!(phones, ["+306912345601", "+306912345602", "+447911123456"]);
    assert_eq!(page.items[0].first_name.as_deref(), Some("Μαρία"));
    assert_eq!(page.items[0].consent, "opted_in");
    assert_eq!(page.items[1].last_name.as_deref(), Some("Smith, Jr"));
    assert_eq!(page.items[1].consent, "opted_out");
    assert_eq!(page.items[2].first_name.as_deref(), Some("=cmd"));
    conn.close().await;

    // Operator mistakes: a store that does not exist, a file that does not exist.
    let (ok, _, err) = run(&["import-contacts", &csv_arg, "--store", "999999", "--database-url", &db.url]).await;
    assert!(!ok);
    assert!(err.contains("no store with id 999999"), "{err}");
    let missing = db.dir.path().join("missing.csv").display().to_string();
    let (ok, _, err) = run(&["import-contacts", &missing, "--store", &store_arg, "--database-url", &db.url]).await;
    assert!(!ok);
    assert!(err.contains("cannot open") && err.contains("missing.csv"), "{err}");
    // A file without a phone column changes nothing and says why.
    std::fs::write(&csv, "name,email\nAnna,a@shop.gr\n").unwrap();
    let (ok, _, err) = run(&["import-contacts", &csv_arg, "--store", &store_arg, "--database-url", &db.url]).await;
    assert!(!ok);
    assert!(err.contains("phone column"), "{err}");
}

/// A first `serve --demo` stopped after the store was created but before its contacts and credits
/// were in: the next start finishes the job with the same credentials, and credits arrive once.
async fn an_interrupted_demo_seeding_is_finished_next_time(b: Backend) {
    let t = crate::harness::TestApp::start(b).await;
    let now = smscast::clock::Clock::now_ms(&*t.clock);
    let first = smscast::demo::ensure_demo(t.db(), now).await.unwrap();
    let count = |db: Db| async move {
        let n: (i64,) = smscast::store::on_db!(&db, |p| sqlx::query_as("SELECT COUNT(*) FROM contacts WHERE store_id = $1")
            .bind(first.store_id)
            .fetch_one(p)
            .await)
        .unwrap();
        n.0
    };
    let seeded = count(t.db().clone()).await;
    assert!(seeded > 900, "{seeded}");
    // Back to the state right after the first transaction: credentials written, nothing imported.
    for sql in
        ["UPDATE demo_credentials SET seeded = FALSE", "DELETE FROM contact_tags", "DELETE FROM consent_events", "DELETE FROM contacts"]
    {
        smscast::store::on_db!(t.db(), |p| sqlx::query(sql).execute(p).await.map(|_| ())).unwrap();
    }
    assert_eq!(count(t.db().clone()).await, 0);
    let again = smscast::demo::ensure_demo(t.db(), now).await.unwrap();
    assert_eq!(
        (&again.email, &again.password, &again.api_key, &again.admin_key),
        (&first.email, &first.password, &first.api_key, &first.admin_key)
    );
    assert_eq!(count(t.db().clone()).await, seeded, "the contacts are back");
    let (_, w) = t.get("/api/wallet", &again.api_key).await;
    assert_eq!(w["balance"], 5_000, "credits once: {w}");
    // Seeded now: a third start changes nothing.
    smscast::demo::ensure_demo(t.db(), now).await.unwrap();
    assert_eq!(count(t.db().clone()).await, seeded);
}

/// An operator key that leaked is revoked from the command line: `admin-key --list` shows ids,
/// `admin-key --revoke ID` ends it.
async fn admin_keys_are_revoked_from_the_command_line(b: Backend) {
    let db = TestDb::new(b).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (ok, out, err) = run(&["admin-key", "--database-url", &db.url]).await;
        assert!(ok, "{err}");
        keys.push(out.trim().strip_prefix("Admin API key: ").unwrap_or_else(|| panic!("{out}")).to_string());
    }
    let (ok, out, err) = run(&["admin-key", "--list", "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "one line per key: {out}");
    assert!(!out.contains(&keys[0]) && !out.contains(&keys[1]), "secrets are never printed again: {out}");
    let first: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(keys[0].starts_with(first[1]), "id, then the key's prefix: {out}");
    assert!(lines.iter().all(|l| l.ends_with("active")), "{out}");
    let (ok, out, err) = run(&["admin-key", "--revoke", first[0], "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("Revoked admin key {}", first[0])), "{out}");
    let (_, out, _) = run(&["admin-key", "--list", "--database-url", &db.url]).await;
    assert!(out.lines().next().unwrap().contains("revoked"), "{out}");
    let store = Db::connect(&db.url, 1).await.unwrap();
    assert!(!auth::authenticate_admin(&store, &keys[0]).await.unwrap(), "the revoked key is refused");
    assert!(auth::authenticate_admin(&store, &keys[1]).await.unwrap(), "the other one still works");
    store.close().await;
    let (ok, _, err) = run(&["admin-key", "--revoke", "999999", "--database-url", &db.url]).await;
    assert!(!ok && err.contains("999999"), "an unknown id is an error naming it: {err}");
}

dual!(
    serve_demo_seeds_once,
    store_create_and_import_contacts,
    an_interrupted_demo_seeding_is_finished_next_time,
    admin_keys_are_revoked_from_the_command_line
);

/// The README's PostgreSQL steps on a server that has no `smscast` database yet: `serve` refuses a
/// database that does not exist (a mistyped URL must not start an empty installation) and says how
/// to create it; `migrate` creates it, and a second `migrate` finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_a_missing_postgres_database() {
    let name = format!("smscast_test_{}", smscast::secrets::random_token(12).to_lowercase());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    struct Dropped(String);
    impl Drop for Dropped {
        fn drop(&mut self) {
            drop_database(&self.0);
        }
    }
    let _dropped = Dropped(name.clone());

    let (ok, out, err) = run(&["serve", "--listen", "127.0.0.1:0", "--database-url", &url]).await;
    assert!(!ok, "{out}");
    assert!(err.contains(&format!("the database at {url} does not exist")) && err.contains("smscast migrate"), "{err}");

    let (ok, out, err) = run(&["migrate", "--database-url", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), [format!("Created the database {url}"), format!("Migrations applied to {url}")], "{out}");
    let (ok, out, err) = run(&["migrate", "--database-url", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("Migrations applied to {url}"));

    let db = Db::connect(&url, 1).await.expect("the database exists now");
    assert!(db.ready().await, "every migration applied");
    db.close().await;
}
