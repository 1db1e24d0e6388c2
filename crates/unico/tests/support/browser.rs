//! A small W3C WebDriver client over ureq: it starts `chromedriver` on a free port, opens a
//! headless Chromium session and drives it synchronously. Enough for the console's
//! end-to-end tests: navigate, find (CSS or XPath), click, type, read text and properties,
//! run a script, accept a confirmation, set the viewport, take screenshots.
//!
//! Without chromedriver the tests fail with a message saying what to install, unless
//! `UNICO_SKIP_BROWSER_TESTS=1` (then they print that they were skipped). `CHROMEDRIVER` and
//! `CHROMIUM` may name the binaries when they are not on the `PATH`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver answers an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long the `wait_*` helpers poll before failing.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Where a selector looks: `css("…")` or `xpath("…")`.
#[derive(Clone, Copy, Debug)]
pub struct Locator<'a> {
    using: &'static str,
    value: &'a str,
}

pub fn css(value: &str) -> Locator<'_> {
    Locator {
        using: "css selector",
        value,
    }
}

pub fn xpath(value: &str) -> Locator<'_> {
    Locator {
        using: "xpath",
        value,
    }
}

/// An XPath string literal for `text` (XPath 1.0 has no escapes: concat() when needed).
pub fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// Finds an executable: the environment variable `var` if set, else the first of `names`
/// on the `PATH`.
fn find_binary(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Whether the browser tests must be skipped (`UNICO_SKIP_BROWSER_TESTS=1`); without that,
/// a missing chromedriver is a failure with instructions.
pub fn skip_requested() -> bool {
    std::env::var("UNICO_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1")
}

/// The chromedriver process, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    fn start(binary: &Path, agent: &ureq::Agent) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port for chromedriver");
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            let ready = agent
                .get(format!("{}/status", driver.base))
                .call()
                .ok()
                .and_then(|r| r.into_body().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                return driver;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not answer on {} within {WAIT:?}",
                driver.base
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session. Dropping it closes the browser and stops chromedriver.
pub struct Browser {
    agent: ureq::Agent,
    session: String,
    // Declared last: dropped after the session is deleted.
    driver: Driver,
}

/// A WebDriver error answer.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280×800, or `None` when
    /// `UNICO_SKIP_BROWSER_TESTS=1`. Fails with what to install when chromedriver is missing.
    pub fn start() -> Option<Browser> {
        if skip_requested() {
            eprintln!("browser tests skipped: UNICO_SKIP_BROWSER_TESTS=1");
            return None;
        }
        let Some(chromedriver) = find_binary("CHROMEDRIVER", &["chromedriver"]) else {
            panic!(
                "the console's browser tests need chromedriver and Chromium: install them \
                 (Debian/Ubuntu: `apt-get install chromium chromium-driver`), or set \
                 UNICO_SKIP_BROWSER_TESTS=1 to skip these tests"
            );
        };
        let chromium = find_binary(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let driver = Driver::start(&chromedriver, &agent);
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--window-size=1280,800",
                "--lang=en-US",
                "--hide-scrollbars",
            ],
            "prefs": { "intl.accept_languages": "en-US" },
        });
        if let Some(binary) = chromium {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let body = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
                "unhandledPromptBehavior": "ignore",
                "timeouts": { "pageLoad": 30_000, "script": 30_000, "implicit": 0 },
            } }
        });
        let reply = send(
            &agent,
            "POST",
            &format!("{}/session", driver.base),
            Some(body),
        )
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e:?}"));
        let session = reply["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Some(Browser {
            agent,
            session,
            driver,
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/session/{}{rest}", self.driver.base, self.session)
    }

    /// A WebDriver command; the answer's `value`, or the error.
    pub fn try_cmd(&self, method: &str, rest: &str, body: Option<Value>) -> Result<Value, WdError> {
        send(&self.agent, method, &self.url(rest), body)
    }

    /// A WebDriver command that must succeed.
    pub fn cmd(&self, method: &str, rest: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, rest, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {rest}: {e:?}"))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and answers its result.
    pub fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The elements matching `at`, in document order.
    pub fn find_all(&self, at: Locator) -> Vec<Element<'_>> {
        let found = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": at.using, "value": at.value })),
        );
        found
            .as_array()
            .map(|a| a.iter().map(|v| self.element(v)).collect())
            .unwrap_or_default()
    }

    /// The first element matching `at`, if any now.
    pub fn try_find(&self, at: Locator) -> Option<Element<'_>> {
        self.try_cmd(
            "POST",
            "/element",
            Some(json!({ "using": at.using, "value": at.value })),
        )
        .ok()
        .map(|v| self.element(&v))
    }

    /// The text of the first element matching `at`, if there is one now and it stays in
    /// the document long enough to be read (inside waits: page scripts replace elements).
    pub fn text_now(&self, at: Locator) -> Option<String> {
        self.try_find(at)?.try_text()
    }

    /// The first element matching `at`, waiting for it to appear.
    pub fn find(&self, at: Locator) -> Element<'_> {
        self.wait(&format!("an element at {at:?}"), || self.try_find(at))
    }

    /// The first element matching `at` that is displayed, waiting for it.
    pub fn find_visible(&self, at: Locator) -> Element<'_> {
        self.wait(&format!("a visible element at {at:?}"), || {
            self.find_all(at).into_iter().find(Element::is_displayed)
        })
    }

    fn element(&self, v: &Value) -> Element<'_> {
        Element {
            browser: self,
            id: v[ELEMENT_KEY]
                .as_str()
                .expect("an element reference")
                .to_owned(),
        }
    }

    /// Polls `probe` until it answers `Some`, for up to [`WAIT`]; on timeout takes a
    /// screenshot (`failure-….png`) and fails naming `what`.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            // The page may replace an element between finding it and reading it (the filter
            // builder re-renders its rows): such a probe is retried, any other failure is not.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut probe)) {
                Ok(Some(found)) => return found,
                Ok(None) => {}
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("");
                    if !message.contains("stale element") {
                        std::panic::resume_unwind(panic);
                    }
                }
            }
            if started.elapsed() > WAIT {
                let shot = self.save_failure_screenshot();
                panic!(
                    "waited {WAIT:?} for {what}; page {} ({}); screenshot {}",
                    self.current_url(),
                    self.title(),
                    shot.display()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the current URL satisfies `test`.
    pub fn wait_url(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        self.wait(&format!("the URL to be {what}"), || {
            let url = self.current_url();
            test(&url).then_some(url)
        })
    }

    /// Waits until the element at `at` shows exactly `text` (whitespace trimmed).
    pub fn wait_text(&self, at: Locator, text: &str) {
        self.wait(&format!("{at:?} to read {text:?}"), || {
            self.text_now(at).filter(|t| t.trim() == text).map(|_| ())
        });
    }

    /// The text of the open `alert`/`confirm`, waiting for one to open.
    pub fn wait_dialog(&self) -> String {
        self.wait("a dialog", || {
            self.try_cmd("GET", "/alert/text", None)
                .ok()
                .map(|v| v.as_str().unwrap_or("").to_owned())
        })
    }

    pub fn accept_dialog(&self) {
        self.cmd("POST", "/alert/accept", Some(json!({})));
    }

    pub fn dismiss_dialog(&self) {
        self.cmd("POST", "/alert/dismiss", Some(json!({})));
    }

    /// Sets the viewport to exactly `width`×`height` CSS pixels (desktop emulation: touch
    /// emulation would need touch actions for clicks).
    pub fn set_viewport(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width.max(500), "height": height + 100 })),
        );
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64_decode(b64.as_str().expect("base64 PNG"))
    }

    /// A PNG of the whole page at the viewport's width (up to `max_height` pixels).
    pub fn full_page_screenshot(&self, max_height: u32) -> Vec<u8> {
        let reply = self.cdp(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true,
                    "clip": self.page_clip(max_height) }),
        );
        base64_decode(reply["data"].as_str().expect("base64 PNG"))
    }

    fn page_clip(&self, max_height: u32) -> Value {
        let size = self.script(
            "return [document.documentElement.clientWidth, \
             Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)];",
            vec![],
        );
        let height = size[1].as_f64().unwrap_or(800.0).min(f64::from(max_height));
        json!({ "x": 0, "y": 0, "width": size[0], "height": height, "scale": 1 })
    }

    fn save_failure_screenshot(&self) -> PathBuf {
        let dir = screenshot_dir();
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = dir.join(format!("failure-{n}.png"));
        if let Ok(png) = self.try_cmd("GET", "/screenshot", None)
            && let Some(b64) = png.as_str()
        {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&path, base64_decode(b64));
        }
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = send(
            &self.agent,
            "DELETE",
            &format!("{}/session/{}", self.driver.base, self.session),
            None,
        );
    }
}

/// Where screenshots go: `UNICO_SCREENSHOTS_DIR`, else the workspace's
/// `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("UNICO_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/screenshots")
                .components()
                .collect()
        })
}

/// One element of the page.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl<'b> Element<'b> {
    fn cmd(&self, method: &str, rest: &str, body: Option<Value>) -> Value {
        self.browser
            .cmd(method, &format!("/element/{}{rest}", self.id), body)
    }

    /// As a script argument.
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    pub fn click(&self) {
        self.cmd("POST", "/click", Some(json!({})));
    }

    pub fn clear(&self) {
        self.cmd("POST", "/clear", Some(json!({})));
    }

    /// Types `text` (for a file input: the file's path).
    pub fn send_keys(&self, text: &str) {
        self.cmd("POST", "/value", Some(json!({ "text": text })));
    }

    /// Clears the box, then types `text`.
    pub fn fill(&self, text: &str) {
        self.clear();
        self.send_keys(text);
    }

    /// The rendered text, or `None` if the element left the document meanwhile (a page
    /// script replaced it): for waits, which then look again.
    pub fn try_text(&self) -> Option<String> {
        self.browser
            .try_cmd("GET", &format!("/element/{}/text", self.id), None)
            .ok()
            .map(|v| v.as_str().unwrap_or("").to_owned())
    }

    /// The rendered text (empty when hidden).
    pub fn text(&self) -> String {
        self.cmd("GET", "/text", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// A DOM property (`value`, `checked`, `disabled`…); `Null` when absent.
    pub fn property(&self, name: &str) -> Value {
        self.cmd("GET", &format!("/property/{name}"), None)
    }

    /// An HTML attribute, if present.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/attribute/{name}"), None)
            .as_str()
            .map(str::to_owned)
    }

    /// The `value` property of a form control.
    pub fn value(&self) -> String {
        self.property("value").as_str().unwrap_or("").to_owned()
    }

    pub fn is_displayed(&self) -> bool {
        self.browser
            .try_cmd("GET", &format!("/element/{}/displayed", self.id), None)
            .is_ok_and(|v| v == json!(true))
    }

    /// The elements inside this one matching `at`.
    pub fn find_all(&self, at: Locator) -> Vec<Element<'b>> {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": at.using, "value": at.value })),
        )
        .as_array()
        .map(|a| a.iter().map(|v| self.browser.element(v)).collect())
        .unwrap_or_default()
    }
}

/// Sends one WebDriver request; answers the reply's `value`, or its error.
fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WdError> {
    let transport = |e: ureq::Error| WdError {
        error: "transport".into(),
        message: e.to_string(),
    };
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, Some(b)) => agent.post(url).send_json(&b),
        (_, None) => agent.post(url).send_json(json!({})),
    }
    .map_err(transport)?;
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .map_err(transport)?;
    let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let value = reply.get("value").cloned().unwrap_or(Value::Null);
    if status >= 400 || value.get("error").is_some_and(Value::is_string) {
        return Err(WdError {
            error: value["error"].as_str().unwrap_or("unknown").to_owned(),
            message: value["message"]
                .as_str()
                .unwrap_or(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }
    Ok(value)
}

/// Standard base64 (RFC 4648, with padding) to bytes.
pub fn base64_decode(text: &str) -> Vec<u8> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter_map(sextet) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
