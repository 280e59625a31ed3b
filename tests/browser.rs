//! Real Chromium (Debian's `chromium` and `chromium-driver`) driven through WebDriver:
//! the Space template's app behind a TLS front (`https://localhost:…`, like a Space
//! behind its proxy) against the mock provider, in iframe mode. Each step's screenshot
//! is saved under `target/tmp/screenshots/`.
//!
//! A missing browser fails these tests (it never skips them): `tests/run.sh` installs
//! it.

mod web;

#[path = "../examples/space/src/main.rs"]
#[allow(dead_code, unreachable_pub)]
mod space;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tower_hf_auth::HfAuthConfig;
use tower_hf_auth::mock::MockHfProvider;
use web::TlsFront;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any page or element is waited for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium with a fresh profile, driven by its own chromedriver.
struct Chrome {
    client: Client,
    _driver: Child,
    _profile: TempDir,
    name: &'static str,
    step: u32,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

impl Chrome {
    /// Starts chromedriver on a free loopback port and a browser session; `prefs` are
    /// Chromium preferences (e.g. blocking third-party cookies).
    async fn start(name: &'static str, prefs: Value) -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's `{package}` (tests/run.sh does, as root)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!(
            "tower-hf-auth-chrome-{name}-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let caps: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--ignore-certificate-errors", "--window-size=1000,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": prefs,
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            match builder.capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session within {PATIENCE:?}: {e}"),
            }
        };
        std::fs::create_dir_all(screenshot_dir()).unwrap();
        Self {
            client,
            _driver: driver,
            _profile: TempDir(profile),
            name,
            step: 0,
        }
    }

    /// Saves a screenshot of the page as `{test}-{step}-{what}.png`.
    async fn shot(&mut self, what: &str) -> PathBuf {
        self.step += 1;
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = screenshot_dir().join(format!("{}-{:02}-{what}.png", self.name, self.step));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Polls until an element matching `css` exists.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no `{css}` within {PATIENCE:?} on {:?}: {}",
                self.client.current_url().await.map(|u| u.to_string()),
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the body's text contains `needle`; returns the text.
    async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` within {PATIENCE:?}; the page says: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.expect("click");
    }

    /// Every cookie the browser holds, as Chromium's DevTools reports them (with
    /// `partitionKey`, which WebDriver's own cookie API does not show).
    async fn all_cookies(&self) -> Vec<Value> {
        let answer = self
            .client
            .issue_cmd(Cdp("Storage.getCookies"))
            .await
            .expect("DevTools answers");
        answer["cookies"].as_array().cloned().unwrap_or_default()
    }
}

/// A DevTools command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(&'static str);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": {}});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Serves `router` on `listener` until the task is aborted.
fn spawn_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serves") })
}

/// The Space app in iframe mode at `https://localhost:{port}`, and a site of another
/// origin (`http://127.0.0.1:…`) that frames it and posts to it.
struct Stage {
    mock: MockHfProvider,
    front: TlsFront,
    other: String,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stage {
    fn drop(&mut self) {
        for t in &self._tasks {
            t.abort();
        }
    }
}

impl Stage {
    async fn start() -> Self {
        let mut front = TlsFront::bind().await;
        let mock = web::space_mock().await;
        let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = format!("http://{}", other_listener.local_addr().unwrap());
        let mut builder = HfAuthConfig::builder()
            .with_client_id(mock.client_id())
            .with_provider_url(mock.issuer())
            .with_public_url(front.origin())
            .with_iframe_cookies(true)
            // The test's framing site, standing in for huggingface.co.
            .add_frame_ancestor(&other);
        if let Some(secret) = mock.client_secret() {
            builder = builder.with_client_secret(secret);
        }
        let config = builder.build().unwrap();
        let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        front.forward_to(app_listener.local_addr().unwrap());
        let app = spawn_serve(app_listener, space::app(config));
        let target = front.origin();
        let other_site = axum::Router::new()
            .route(
                "/frame",
                axum::routing::get({
                    let target = target.clone();
                    move || async move {
                        axum::response::Html(format!(
                            r#"<!doctype html><title>Another site</title><h1>Another site framing the app</h1>
<iframe id="app" src="{target}/login?return_to=%2F" width="900" height="560"></iframe>"#
                        ))
                    }
                }),
            )
            .route(
                "/attack",
                axum::routing::get(move || async move {
                    axum::response::Html(format!(
                        r#"<!doctype html><title>Another site</title><h1>Win a prize</h1>
<form method="post" action="{target}/wave"><button id="prize">Claim</button></form>"#
                    ))
                }),
            );
        let other_task = spawn_serve(other_listener, other_site);
        Self {
            mock,
            front,
            other,
            _tasks: vec![app, other_task],
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.front.origin())
    }

    /// On the mock's consent page: continue as `user`.
    async fn consent(&self, chrome: &mut Chrome, user: &str, shot: &str) {
        assert!(self.mock.users().iter().any(|u| u == user));
        let link = format!("a.user[href*='mock_user={user}']");
        chrome.wait_for(&link).await;
        chrome.shot(shot).await;
        chrome.click(&link).await;
    }
}

#[tokio::test]
async fn sign_in_see_the_name_read_cookie_attributes_refuse_a_cross_site_post_and_sign_out() {
    let stage = Stage::start().await;
    let mut chrome = Chrome::start("sign-in", json!({})).await;
    chrome.goto(&stage.url("/")).await;
    let badge = chrome.wait_for("a.hf-sign-in img").await;
    assert_eq!(
        badge.attr("alt").await.unwrap().as_deref(),
        Some("Sign in with Hugging Face")
    );
    chrome.shot("signed-out-badge").await;
    chrome.click("a.hf-sign-in").await;
    stage.consent(&mut chrome, "alice", "mock-consent").await;
    let text = chrome.wait_for_text("Hello, Alice Liddell!").await;
    assert!(text.contains("@alice"), "{text}");
    chrome.shot("signed-in-name").await;

    // The cookie as the browser keeps it.
    let cookies = chrome.all_cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "__Host-hf_auth")
        .unwrap_or_else(|| panic!("no __Host-hf_auth cookie in {cookies:#?}"));
    assert_eq!(session["path"], "/");
    assert_eq!(session["secure"], true);
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "None");
    assert!(
        session.get("partitionKey").is_some_and(|k| !k.is_null()),
        "Partitioned: {session:#}"
    );
    assert!(
        !cookies.iter().any(|c| c["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("__Host-hf_auth_login_"))),
        "the pending sign-in is gone: {cookies:#?}"
    );

    // Another site's form posts to the app with the cookie: refused.
    chrome.goto(&format!("{}/attack", stage.other)).await;
    chrome.click("#prize").await;
    let refused = chrome
        .wait_for_text("Another site started this request")
        .await;
    assert!(refused.contains("cross_origin_request"), "{refused}");
    chrome.shot("cross-site-post-refused").await;
    chrome.goto(&stage.url("/")).await;
    chrome.wait_for_text("Hello, Alice Liddell!").await;
    let waves = chrome.wait_for("#waves").await.text().await.unwrap();
    assert!(
        !waves.contains("@alice"),
        "the refused post changed nothing: {waves}"
    );
    // The app's own form still works.
    chrome.click("#wave").await;
    chrome.wait_for("#waves li").await;
    let waves = chrome.wait_for("#waves").await.text().await.unwrap();
    assert!(waves.contains("@alice"), "{waves}");
    chrome.shot("own-post-accepted").await;

    chrome.click("a.hf-sign-out").await;
    chrome.wait_for("a.hf-sign-in").await;
    chrome.wait_for_text("Sign in to wave.").await;
    chrome.shot("signed-out-again").await;
    assert!(
        !chrome
            .all_cookies()
            .await
            .iter()
            .any(|c| c["name"] == "__Host-hf_auth"),
        "sign-out removed the session cookie"
    );
    chrome.client.close().await.unwrap();
}

#[tokio::test]
async fn two_tabs_sign_in_at_once_and_a_missing_scope_leads_to_consent() {
    let stage = Stage::start().await;
    let mut chrome = Chrome::start("two-tabs", json!({})).await;
    let first = chrome.client.window().await.unwrap();
    chrome.goto(&stage.url("/login?return_to=%2F")).await;
    chrome.wait_for("a.user").await;
    let second = chrome.client.new_window(true).await.unwrap().handle;
    chrome.client.switch_to_window(second).await.unwrap();
    chrome.goto(&stage.url("/login?return_to=%2F")).await;
    stage
        .consent(&mut chrome, "alice", "second-tab-consent")
        .await;
    chrome.wait_for_text("Hello, Alice Liddell!").await;
    chrome.shot("second-tab-signed-in").await;
    // The first tab's sign-in, started before, still finishes.
    chrome.client.switch_to_window(first).await.unwrap();
    stage.consent(&mut chrome, "bob", "first-tab-consent").await;
    let text = chrome.wait_for_text("Hello, ").await;
    assert!(text.contains("@bob"), "{text}");
    chrome.shot("first-tab-signed-in").await;

    // `/repos` needs `read-repos`, which this sign-in did not ask for.
    chrome.goto(&stage.url("/repos")).await;
    let consent = chrome.wait_for("a.user").await;
    let href = consent.attr("href").await.unwrap().unwrap_or_default();
    assert!(href.contains("read-repos"), "{href}");
    stage
        .consent(&mut chrome, "bob", "incremental-consent")
        .await;
    let text = chrome.wait_for_text("granted read-repos").await;
    assert!(text.contains("@bob"), "{text}");
    chrome.shot("repos-after-consent").await;
    chrome.client.close().await.unwrap();
}

#[tokio::test]
async fn in_a_frame_that_drops_cookies_the_loop_breaker_signs_in_at_the_top() {
    let stage = Stage::start().await;
    // Third-party cookies blocked, and this app's cookies blocked outright while it is
    // framed by the other site (as Safari and private windows do; Chromium would keep
    // `Partitioned` cookies otherwise). At the top level its cookies are allowed.
    let pattern = format!("{},{}", stage.front.origin(), stage.other);
    let prefs = json!({
        "profile.cookie_controls_mode": 1,
        "profile.block_third_party_cookies": true,
        "profile.content_settings.exceptions.cookies": {
            pattern: {"setting": 2}
        },
    });
    let mut chrome = Chrome::start("iframe", prefs).await;
    chrome.goto(&format!("{}/frame", stage.other)).await;
    chrome.wait_for("iframe#app").await;
    chrome.client.enter_frame(0).await.unwrap();
    stage.consent(&mut chrome, "alice", "framed-consent").await;
    // First failure: says why, offers the top level, and a retry here.
    chrome
        .wait_for_text("did not keep this app's sign-in cookie")
        .await;
    let top = chrome.wait_for("a#top-level").await;
    assert_eq!(top.attr("target").await.unwrap().as_deref(), Some("_top"));
    chrome.shot("first-failure-offers-top-level").await;
    chrome.click("a#retry-in-frame").await;
    stage
        .consent(&mut chrome, "alice", "framed-consent-again")
        .await;

    // Second failure: the page goes to the top level itself where the browser lets a
    // frame do that; otherwise its one link does.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut escaped = false;
    while Instant::now() < deadline {
        chrome.client.enter_parent_frame().await.ok();
        let url = chrome.client.current_url().await.unwrap();
        if url.as_str().starts_with(&stage.front.origin()) {
            escaped = true;
            break;
        }
        if chrome.client.enter_frame(0).await.is_ok()
            && chrome
                .client
                .find(Locator::Css("a#top-level"))
                .await
                .is_ok()
            && chrome
                .client
                .find(Locator::Css("a#retry-in-frame"))
                .await
                .is_err()
        {
            chrome.shot("second-failure").await;
            chrome.click("a#top-level").await;
            escaped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(escaped, "the second failure leads out of the frame");
    chrome.client.enter_parent_frame().await.ok();
    stage
        .consent(&mut chrome, "alice", "top-level-consent")
        .await;
    chrome.wait_for_text("Hello, Alice Liddell!").await;
    let url = chrome.client.current_url().await.unwrap();
    assert!(
        url.as_str().starts_with(&stage.front.origin()),
        "signed in at the app's own URL, not in the frame: {url}"
    );
    chrome.shot("signed-in-at-top-level").await;
    chrome.client.close().await.unwrap();
}
