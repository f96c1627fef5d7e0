//! Chromium over WebDriver for the console's tests: chromedriver on a port it picks, a
//! headless session with a fresh profile, screenshots, and waiting on the page with deadlines.

use std::io::{BufRead, BufReader};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::harness::eventually;

pub const WAIT: Duration = Duration::from_secs(60);
const INSTALL: &str = "install Chromium and its WebDriver with `apt-get install chromium chromium-driver` \
                       (./scripts/test.sh does when they are missing)";

// ---- chromedriver and the browser -----------------------------------------------------------

/// chromedriver on the port it picked itself; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        tokio::task::spawn_blocking(Driver::start_blocking)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn start_blocking() -> Driver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chromedriver ({e}): {INSTALL}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("chromedriver: no stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the port, then drains the rest so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').parse::<u16>().ok());
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let Some(port) = port else {
            let _ = child.kill();
            panic!("chromedriver did not report its port within 30 s");
        };
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        Driver { child, port, profile }
    }

    /// A headless Chromium session with a fresh profile. The flags keep it off the network
    /// (this machine reaches package registries only) and working as root.
    async fn browser(&self) -> Client {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("no Chromium binary: {INSTALL}"));
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            panic!("capabilities are an object")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `scenario` with a browser, then always ends the session (which quits Chromium) and
/// chromedriver, and only then reports a failure (with a screenshot of where it stopped).
pub async fn with_browser<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let failure = format!("failure-{name}");
    let _ = std::fs::remove_file(screenshot_dir().join(format!("{failure}.png")));
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let outcome = AssertUnwindSafe(scenario(browser.clone())).catch_unwind().await;
    if outcome.is_err() {
        shot(&browser, &failure).await;
    }
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

pub async fn shot(b: &Client, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    if let Ok(png) = b.screenshot().await {
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Chrome's DevTools command through chromedriver: here, to render in dark mode.
#[derive(Debug)]
struct Cdp(&'static str, serde_json::Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.0, "params": self.1 });
        (hyper::Method::POST, Some(body.to_string()))
    }
}

/// The browser's console messages since the last call (chromedriver's log endpoint; needs
/// `goog:loggingPrefs` in the capabilities).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Errors and warnings the page wrote to the browser's console (CSP violations among them).
pub async fn console_problems(b: &Client) -> Vec<String> {
    let log = b
        .issue_cmd(BrowserLog)
        .await
        .unwrap_or_else(|e| panic!("browser log: {e}"));
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub async fn color_scheme(b: &Client, scheme: &str) {
    let features = serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] });
    b.issue_cmd(Cdp("Emulation.setEmulatedMedia", features))
        .await
        .unwrap_or_else(|e| panic!("emulate {scheme}: {e}"));
}

// ---- waiting on the page ----------------------------------------------------------------------

/// The element, once it exists.
pub async fn find(b: &Client, css: &str) -> Element {
    let b = b.clone();
    eventually(WAIT, &format!("an element {css}"), move || {
        let b = b.clone();
        async move { b.find(Locator::Css(css)).await.ok() }
    })
    .await
}

/// Clicks it once it exists and is enabled (again if the page re-rendered it meanwhile).
pub async fn click(b: &Client, css: &str) {
    let b = b.clone();
    eventually(WAIT, &format!("{css} to be clicked"), move || {
        let b = b.clone();
        async move {
            let el = b.find(Locator::Css(css)).await.ok()?;
            if !el.is_enabled().await.ok()? {
                return None;
            }
            el.click().await.ok()
        }
    })
    .await;
}

pub async fn type_into(b: &Client, css: &str, text: &str) {
    let el = find(b, css).await;
    el.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
    el.send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

/// The element's text once `ok` accepts it.
pub async fn text_when(b: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let b = b.clone();
    let ok = &ok;
    eventually(WAIT, what, move || {
        let b = b.clone();
        async move {
            let text = b.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
            ok(&text).then_some(text)
        }
    })
    .await
}

/// Waits until exactly `n` elements match.
pub async fn count_is(b: &Client, css: &str, n: usize) {
    let b = b.clone();
    eventually(WAIT, &format!("{n} × {css}"), move || {
        let b = b.clone();
        async move { (b.find_all(Locator::Css(css)).await.ok()?.len() == n).then_some(()) }
    })
    .await;
}

pub async fn attr(el: &Element, name: &str) -> String {
    el.attr(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_default()
}
