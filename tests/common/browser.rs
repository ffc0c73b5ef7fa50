//! A real headless browser for the console's tests: Debian's chromium driven through
//! chromedriver's W3C WebDriver endpoint on loopback. The handful of WebDriver commands the
//! tests use are plain JSON over HTTP; no client crate is pulled in for them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver of the test's own and one browser session in it.
pub struct Browser {
    driver: Child,
    address: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// An element of the page, as the driver names it.
#[derive(Clone, Debug)]
pub struct Element(String);

/// Whether this machine has the browser and its driver (`tests/provision.sh` installs both).
pub fn available() -> bool {
    Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists()
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless chromium session of
    /// `width`×`height` with a fresh profile.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = super::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (tests/provision.sh installs chromium-driver)");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while super::raw_request(&address, "GET", "/status", None, b"").is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver never answered on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            address,
            session: String::new(),
            _profile: profile,
        };
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},{height}"),
        ]);
        let created = browser.call(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
            } } })),
        );
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`. A WebDriver error panics with the driver's words.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let text = exchange(&self.address, method, path, &body).map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let value = answer["value"].clone();
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(format!(
                "{error}: {}",
                value["message"].as_str().unwrap_or("")
            ));
        }
        Ok(value)
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Every element `css` matches now.
    pub fn all(&self, css: &str) -> Vec<Element> {
        let found = self.call(
            "POST",
            &self.at("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element `css` matches, waiting up to 15 s for one.
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element matching `{css}`"), || {
            self.all(css).into_iter().next()
        })
    }

    /// Waits up to 15 s for `check` to return something; panics naming `what` and the page.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        self.wait_up_to(Duration::from_secs(15), what, &mut check)
    }

    pub fn wait_up_to<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: &mut dyn FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check() {
                return found;
            }
            if Instant::now() > deadline {
                let source = self
                    .try_call("GET", &self.at("/source"), None)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                panic!(
                    "waited {timeout:?} for {what} at {}; the page says:\n{}\n\nits source:\n{source}",
                    self.url(),
                    self.text_of("body")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page's `css` element contains `text`.
    pub fn wait_text(&self, css: &str, text: &str) {
        self.wait_for(&format!("`{css}` to say {text:?}"), || {
            let now = self
                .all(css)
                .into_iter()
                .map(|e| self.text(&e))
                .collect::<Vec<_>>()
                .join("\n");
            now.contains(text).then_some(())
        });
    }

    /// The visible text of the first element `css` matches, or "" when none does.
    pub fn text_of(&self, css: &str) -> String {
        self.all(css)
            .first()
            .map(|e| self.text(e))
            .unwrap_or_default()
    }

    pub fn text(&self, element: &Element) -> String {
        self.try_call(
            "GET",
            &self.at(&format!("/element/{}/text", element.0)),
            None,
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// A DOM property of `element` (`value`, `disabled`, `checked`).
    pub fn property(&self, element: &Element, name: &str) -> Value {
        self.call(
            "GET",
            &self.at(&format!("/element/{}/property/{name}", element.0)),
            None,
        )
    }

    /// Clicks `element` as a user would (it must be visible and not covered).
    pub fn click(&self, element: &Element) {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/click", element.0)),
            Some(json!({})),
        );
    }

    /// Opens the `<details>` element `css` by clicking its summary, as often as it takes for
    /// it to be open (a page still settling may swallow a click).
    pub fn open_details(&self, css: &str) {
        let details = self.find(css);
        self.wait_for(&format!("`{css}` to open"), || {
            if self.property(&details, "open") == true {
                return Some(());
            }
            if let Some(summary) = self.all(&format!("{css} > summary")).first() {
                let _ = self.try_call(
                    "POST",
                    &self.at(&format!("/element/{}/click", summary.0)),
                    Some(json!({})),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
            None
        });
    }

    /// Clicks the first element `css` matches.
    pub fn click_on(&self, css: &str) {
        let element = self.find(css);
        self.click(&element);
    }

    /// Empties a field and types `text` into it, key by key.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &self.at(&format!("/element/{}/clear", element.0)),
            Some(json!({})),
        );
        self.call(
            "POST",
            &self.at(&format!("/element/{}/value", element.0)),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `script` in the page and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The page's cookies, as the browser keeps them (with `httpOnly`, `secure`, `sameSite`).
    pub fn cookies(&self) -> Vec<Value> {
        self.call("GET", &self.at("/cookie"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Saves what the browser shows as a PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.call("GET", &self.at("/screenshot"), None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .expect("a base64 screenshot");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    /// A screenshot for the docs: `docs/console/NAME.png` in the repository when
    /// `KIP_UPDATE_SCREENSHOTS` is set (so a test run leaves the work tree as it was), else in
    /// the temporary folder; it is a real PNG either way.
    pub fn docs_shot(&self, name: &str) -> PathBuf {
        let folder = if std::env::var_os("KIP_UPDATE_SCREENSHOTS").is_some() {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs")
                .join("console")
        } else {
            std::env::temp_dir().join("kip-console-screenshots")
        };
        let path = folder.join(format!("{name}.png"));
        self.screenshot(&path);
        let png = std::fs::read(&path).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: not a screenshot"
        );
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", &self.at(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One JSON request to the driver; the answer's body. chromedriver keeps connections open,
/// so the body is read by its length rather than to the end of the stream.
fn exchange(address: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut answer = Vec::new();
    match length {
        Some(n) => {
            answer.resize(n, 0);
            reader.read_exact(&mut answer)?;
        }
        None => {
            reader.read_to_end(&mut answer)?;
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
