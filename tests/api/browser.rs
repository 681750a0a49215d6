//! A small WebDriver client (the W3C protocol is JSON over HTTP) driving headless Chromium for the
//! page tests, plus the page checks every visited page must pass. One chromedriver serves the
//! whole test binary; each test gets its own Chromium with its own profile directory.
//! Chromium missing is a failure with the install command, never a skip.

use reqwest::Method;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(30);

/// The chromedriver child, kept for the life of the test binary. It runs under a shell that kills
/// it when our end of its stdin closes, i.e. when this process exits, however it exits.
static DRIVER: OnceLock<(String, Mutex<Child>)> = OnceLock::new();

fn driver_url() -> &'static str {
    &DRIVER
        .get_or_init(|| {
            let installed = Command::new("chromedriver").arg("--version").output().is_ok_and(|o| o.status.success());
            assert!(installed, "chromedriver is not installed: the page tests need Chromium (apt-get install -y chromium chromium-driver)");
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new("sh")
                .arg("-c")
                .arg("chromedriver --port=\"$0\" --allowed-ips=127.0.0.1 >/dev/null 2>&1 & pid=$!; read _; kill $pid")
                .arg(port.to_string())
                .stdin(Stdio::piped())
                .spawn()
                .expect("start chromedriver");
            let url = format!("http://127.0.0.1:{port}");
            // Ready when /status says so; it answers within a second of starting.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if raw_http("GET", &url, "/status").is_some_and(|b| b.contains("\"ready\":true")) {
                    break;
                }
                assert!(Instant::now() < deadline, "chromedriver did not become ready on {url}");
                std::thread::sleep(Duration::from_millis(25));
            }
            (url, Mutex::new(child))
        })
        .0
}

/// A blocking HTTP/1.1 request without a body (for /status and for ending sessions in `Drop`).
fn raw_http(method: &str, base: &str, path: &str) -> Option<String> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    // chromedriver may keep the connection open: read the head, then Content-Length bytes.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if n == 0 || buf.len() >= end + 4 + len {
                return Some(text);
            }
        } else if n == 0 {
            return None;
        }
    }
}

/// Decodes standard base64 (the screenshot encoding).
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| u32::from(val(*c))).collect();
        let n = v.iter().enumerate().fold(0u32, |acc, (i, x)| acc | (x << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

pub fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; the screenshots go beside it.
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots")
}

pub struct Browser {
    http: reqwest::Client,
    session: String,
    pub app: String,
    /// A name per test, so parallel tests do not overwrite each other's screenshots.
    pub prefix: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(app: &str, prefix: &str) -> Browser {
        let driver = driver_url();
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1440,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let res = http.post(format!("{driver}/session")).json(&caps).send().await.expect("chromedriver answers");
        let body: Value = res.json().await.unwrap();
        let session = body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("a WebDriver session: {body}")).to_string();
        Browser {
            http,
            session: format!("{driver}/session/{session}"),
            app: app.to_string(),
            prefix: prefix.to_string(),
            _profile: profile,
        }
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.session));
        if method == Method::POST {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let res = req.send().await.expect("chromedriver answers");
        let v: Value = res.json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    pub async fn goto(&self, path: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": format!("{}{path}", self.app)}))).await;
    }

    pub async fn path(&self) -> String {
        self.js("return location.pathname + location.search", json!([])).await.as_str().unwrap_or("").to_string()
    }

    async fn element(&self, css: &str) -> String {
        let v = self.cmd(Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(Method::POST, &format!("/element/{id}/click"), None).await;
    }

    /// Types like a person: key by key, firing input events.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(Method::POST, &format!("/element/{id}/clear"), None).await;
        self.cmd(Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.cmd(Method::GET, &format!("/element/{id}/text"), None).await.as_str().unwrap_or("").to_string()
    }

    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Polls a condition in the page (a script body returning a value) until it is truthy.
    pub async fn wait_for(&self, script: &str, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(script, json!([])).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what} on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_css(&self, css: &str) {
        self.wait_for(&format!("return document.querySelector({css:?}) !== null"), css).await;
    }

    /// Runs `script` in every document this browser opens from now on, before the page's own scripts.
    pub async fn before_each_page(&self, script: &str) {
        let params = json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": script}});
        self.cmd(Method::POST, "/goog/cdp/execute", Some(params)).await;
    }

    pub async fn set_width(&self, width: u32) {
        self.cmd(Method::POST, "/window/rect", Some(json!({"width": width, "height": 900}))).await;
        // The layout follows the resize asynchronously.
        self.wait_for(&format!("return window.innerWidth <= {width} + 16 && window.innerWidth >= {width} - 16"), "the window size").await;
    }

    pub async fn screenshot(&self, name: &str) {
        let v = self.cmd(Method::GET, "/screenshot", None).await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{}-{name}.png", self.prefix)), base64(v.as_str().unwrap())).unwrap();
    }

    pub async fn set_lang(&self, lang: &str) {
        self.cmd(Method::POST, "/cookie", Some(json!({"cookie": {"name": "smscast_lang", "value": lang, "path": "/"}}))).await;
    }

    pub async fn refresh(&self) {
        self.cmd(Method::POST, "/refresh", None).await;
    }

    /// The page checks, at 375 px and at 1440 px, each with a screenshot.
    pub async fn check_here(&self, name: &str) {
        let lang = self.js("return document.documentElement.lang", json!([])).await;
        let lang = lang.as_str().unwrap_or("xx").to_string();
        for width in [375, 1440] {
            self.set_width(width).await;
            let problems = self.js(AUDIT, json!([])).await;
            self.screenshot(&format!("{name}-{lang}-{width}")).await;
            assert_eq!(problems, json!([]), "page checks on {name} ({lang}, {width} px) at {}", self.path().await);
        }
    }

    /// `check_here` in both languages (for pages a GET can show again), then back to `back`.
    pub async fn check_page(&self, name: &str, back: &str) {
        for lang in ["el", "en"] {
            self.set_lang(lang).await;
            self.refresh().await;
            self.wait_for(&format!("return document.readyState === 'complete' && document.documentElement.lang === '{lang}'"), "the page")
                .await;
            self.check_here(name).await;
        }
        self.set_lang(back).await;
        self.refresh().await;
        self.wait_for(&format!("return document.readyState === 'complete' && document.documentElement.lang === '{back}'"), "the page")
            .await;
    }

    pub async fn quit(mut self) {
        let s = std::mem::take(&mut self.session);
        let _ = self.http.delete(s).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reaches `quit`: end its Chromium here (blocking is fine in Drop).
        if let Some(path) = self.session.strip_prefix(driver_url()) {
            let path = path.to_string();
            let driver = driver_url().to_string();
            let _ = std::thread::spawn(move || raw_http("DELETE", &driver, &path)).join();
        }
    }
}

/// What every page must pass, as a list of problems (empty = pass): no horizontal overflow, one
/// `main`, a label for every form control, alt text for images, a name for every button, and
/// text contrast of at least 4.5:1 (3:1 for large text) computed from the computed styles.
const AUDIT: &str = r#"
const problems = [];
const visible = (el) => {
  if (el.closest('dialog:not([open])') || el.closest('[hidden]')) return false;
  const details = el.closest('details:not([open])');
  if (details && !el.closest('summary')) return false;
  const s = getComputedStyle(el);
  if (s.display === 'none' || s.visibility === 'hidden' || Number(s.opacity) === 0) return false;
  return el.getClientRects().length > 0;
};
const name = (el) => (el.getAttribute('aria-label') || '').trim() ||
  (el.getAttribute('aria-labelledby') || '').split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim() ||
  (el.textContent || '').trim() || (el.getAttribute('title') || '').trim() || (el.value || '').trim();
const where = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '');

if (document.documentElement.scrollWidth > window.innerWidth) problems.push('horizontal overflow: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
if (document.querySelectorAll('main, [role=main]').length !== 1) problems.push('not exactly one main landmark');
if (!document.documentElement.lang) problems.push('no lang on html');
if (!document.title.trim()) problems.push('no title');
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
  if (!labelled) problems.push('form control without a label: ' + where(el));
}
for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) problems.push('image without alt: ' + where(img));
for (const b of document.querySelectorAll('button, [role=button], a[href], summary')) {
  if (!name(b)) problems.push('control without a name: ' + where(b));
}
for (const p of document.querySelectorAll('progress')) if (!name(p) && !p.labels.length) problems.push('progress without a name');

const parse = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/);
  if (!m) return [0, 0, 0, 0];
  const v = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
};
const over = (top, bottom) => {
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
};
const background = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
    if (e.tagName === 'DIALOG' && e.open) break;
  }
  let bg = [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  return bg;
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
for (const el of document.body.querySelectorAll('*')) {
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !visible(el)) continue;
  const s = getComputedStyle(el);
  const bg = background(el);
  const fg = over(parse(s.color), bg);
  const size = parseFloat(s.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
  const need = large ? 3 : 4.5;
  const r = ratio(fg, bg);
  if (r < need) problems.push('contrast ' + r.toFixed(2) + ' < ' + need + ': ' + where(el) + ' "' + el.textContent.trim().slice(0, 30) + '"');
}
return problems;
"#;
