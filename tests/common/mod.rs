//! A real app (the example's router) and a real mock provider on loopback sockets, and
//! a browser-like client: a cookie jar, redirects not followed.
#![allow(dead_code)]

#[cfg(not(all(feature = "axum", feature = "mock")))]
compile_error!(
    "the integration tests need the `axum` and `mock` features: run `cargo test --all-features`"
);

#[path = "../../examples/axum_app.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod example;
#[cfg(feature = "redis")]
pub mod redis_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode, Url, header};
use tower_hf_auth::mock::{MockHfProvider, MockHfProviderBuilder};
use tower_hf_auth::{Clock, HfAuthConfigBuilder};

pub const SECRET: &str = "test secret: thirty-two characters or more, really";

/// A clock tests can move forward. It follows real time (the mock provider's clock)
/// plus what tests [`advance`](Self::advance) it by, until [`freeze`](Self::freeze)
/// stops it: from then on only `advance` moves it, so a test can step to one second
/// before an expiry however slowly the machine runs.
#[derive(Debug, Default)]
pub struct TestClock {
    offset: AtomicU64,
    /// Unix seconds at the freeze; 0 while the clock follows real time.
    frozen_at: AtomicU64,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.offset.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Stops following real time (see the type's docs).
    pub fn freeze(&self) {
        let now = self.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        self.offset.store(0, Ordering::SeqCst);
        self.frozen_at.store(now, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let offset = Duration::from_secs(self.offset.load(Ordering::SeqCst));
        match self.frozen_at.load(Ordering::SeqCst) {
            0 => SystemTime::now() + offset,
            frozen_at => UNIX_EPOCH + Duration::from_secs(frozen_at) + offset,
        }
    }
}

pub struct TestApp {
    pub mock: Arc<MockHfProvider>,
    pub base: String,
    pub addr: SocketAddr,
    pub clock: Arc<TestClock>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn mock() -> Arc<MockHfProvider> {
    mock_with(|b| b).await
}

/// A mock in strict mode (RFC 9207 `iss`, PKCE and `openid` required), which the
/// suites rely on to show the crate always sends PKCE and `openid` and checks `iss`;
/// `f` customizes it further.
pub async fn mock_with(
    f: impl FnOnce(MockHfProviderBuilder) -> MockHfProviderBuilder,
) -> Arc<MockHfProvider> {
    faithful_mock_with(|b| f(b.strict())).await
}

/// A mock in its default mode, which behaves like huggingface.co (no `iss` on
/// callbacks, PKCE optional for confidential clients, `openid` optional).
pub async fn faithful_mock_with(
    f: impl FnOnce(MockHfProviderBuilder) -> MockHfProviderBuilder,
) -> Arc<MockHfProvider> {
    Arc::new(
        f(MockHfProvider::builder())
            .start()
            .await
            .expect("mock provider starts"),
    )
}

/// The example app against `mock`, with test settings and `customize` applied.
pub async fn app_with(
    mock: Arc<MockHfProvider>,
    customize: impl FnOnce(HfAuthConfigBuilder) -> HfAuthConfigBuilder,
) -> TestApp {
    serve(mock, customize, example::app).await
}

/// A router of the test's own, made from the test configuration, against `mock`.
pub async fn serve(
    mock: Arc<MockHfProvider>,
    customize: impl FnOnce(HfAuthConfigBuilder) -> HfAuthConfigBuilder,
    router: impl FnOnce(tower_hf_auth::HfAuthConfig) -> axum::Router,
) -> TestApp {
    serve_on(mock, Arc::new(TestClock::default()), customize, router).await
}

/// [`serve`] with the clock `clock` (replicas share one).
pub async fn serve_on(
    mock: Arc<MockHfProvider>,
    clock: Arc<TestClock>,
    customize: impl FnOnce(HfAuthConfigBuilder) -> HfAuthConfigBuilder,
    router: impl FnOnce(tower_hf_auth::HfAuthConfig) -> axum::Router,
) -> TestApp {
    // A deep accept queue, as the mock's: tests/load.rs opens a thousand connections at
    // once, and a full queue drops connection attempts until the client times out.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let builder = example::mock_config(&mock, &base)
        .with_secret(SECRET)
        .with_clock(clock.clone())
        // A ceiling, not a test: on a busy two-core machine a provider call on loopback
        // can take seconds. Tests of timeouts set their own.
        .with_timeout(Duration::from_secs(30))
        .with_jwks_min_refresh_interval(Duration::ZERO);
    let config = customize(builder).build().expect("test config is valid");
    let router = router(config);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    TestApp {
        mock,
        base,
        addr,
        clock,
        server,
    }
}

/// The example app and a strict mock (customized by `f`) that both run on one
/// [`TestClock`], `app.clock`: advancing it ages the tokens at the mock as well, so
/// refresh-token expiry is tested without waiting.
pub async fn app_and_mock_on_one_clock(
    f: impl FnOnce(MockHfProviderBuilder) -> MockHfProviderBuilder,
) -> TestApp {
    let clock = Arc::new(TestClock::default());
    let mock = mock_with(|b| f(b.with_clock(clock.clone()))).await;
    let mut app = app_with(mock, |b| b.with_clock(clock.clone())).await;
    app.clock = clock;
    app
}

pub async fn app() -> TestApp {
    app_with(mock().await, |b| b).await
}

/// A browser: keeps cookies, does not follow redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Browser {
    pub fn new() -> Self {
        Self::with_jar(Arc::new(Jar::default()))
    }

    /// A browser over `jar`, with connections of its own.
    pub fn with_jar(jar: Arc<Jar>) -> Self {
        let http = reqwest::Client::builder()
            // Plain http on loopback: an empty root store spares loading the
            // platform's (about 40 ms per client in a debug build).
            .tls_certs_only([])
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { http, jar }
    }

    pub async fn get(&self, url: &str) -> Response {
        self.http
            .get(url)
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, url: &str) -> Response {
        self.http
            .get(url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .unwrap()
    }

    /// The `Cookie` header the browser would send to `url`.
    pub fn cookies(&self, url: &str) -> String {
        self.jar
            .cookies(&Url::parse(url).unwrap())
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.cookies(url).split("; ").find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
    }

    pub fn set_cookie(&self, url: &str, cookie: &str) {
        self.jar.add_cookie_str(cookie, &Url::parse(url).unwrap());
    }
}

/// The `Set-Cookie` headers of `res`, as text.
pub fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

pub fn location(res: &Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("no Location on a {} response", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn absolute(app: &TestApp, location: &str) -> String {
    if location.starts_with('/') {
        format!("{}{location}", app.base)
    } else {
        location.to_owned()
    }
}

/// `/login?return_to=…` → the provider's authorize URL.
pub async fn start_login(app: &TestApp, browser: &Browser, return_to: &str) -> String {
    let url =
        Url::parse_with_params(&format!("{}/login", app.base), [("return_to", return_to)]).unwrap();
    let res = browser.get(url.as_str()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "login redirects");
    let authorize = location(&res);
    assert!(authorize.starts_with(&app.mock.issuer()), "{authorize}");
    authorize
}

/// The provider's authorize URL, picking `user` → the app's callback URL.
pub async fn authorize(browser: &Browser, authorize_url: &str, user: &str) -> String {
    let mut url = Url::parse(authorize_url).unwrap();
    url.query_pairs_mut().append_pair("mock_user", user);
    let res = browser.get(url.as_str()).await;
    assert!(
        res.status().is_redirection(),
        "authorize answered {}",
        res.status()
    );
    location(&res)
}

/// The whole browser flow; returns the callback's response.
pub async fn sign_in(app: &TestApp, browser: &Browser, user: &str, return_to: &str) -> Response {
    let authorize_url = start_login(app, browser, return_to).await;
    let callback = authorize(browser, &authorize_url, user).await;
    browser.get(&callback).await
}

/// Signs in and asserts it worked.
pub async fn signed_in(app: &TestApp, browser: &Browser, user: &str) {
    let res = sign_in(app, browser, user, "/").await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "sign-in succeeds: {}",
        res.text().await.unwrap()
    );
    assert_eq!(whoami(app, browser).await.as_deref(), Some(user));
}

/// `/me` as an API client: the signed-in username, or `None` on 401.
pub async fn whoami(app: &TestApp, browser: &Browser) -> Option<String> {
    let res = browser.get_json(&format!("{}/me", app.base)).await;
    match res.status() {
        StatusCode::OK => {
            let json: serde_json::Value = res.json().await.unwrap();
            Some(json["username"].as_str().unwrap().to_owned())
        }
        StatusCode::UNAUTHORIZED => None,
        other => panic!("/me answered {other}"),
    }
}

/// Asserts a failed callback: an error status, a page saying `needle`, no session, and
/// the app still serving.
pub async fn assert_rejected(
    app: &TestApp,
    browser: &Browser,
    res: Response,
    status: StatusCode,
    needle: &str,
) {
    assert_rejected_page(app, browser, res, status, &[needle]).await;
}

/// Like [`assert_rejected`], with several needles that must all be on the page (the
/// page is HTML-escaped: write `&quot;` for `"` and `&#39;` for `'`). Returns the page.
pub async fn assert_rejected_page(
    app: &TestApp,
    browser: &Browser,
    res: Response,
    status: StatusCode,
    needles: &[&str],
) -> String {
    assert_eq!(res.status(), status, "status of the rejection");
    let content_type = res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let body = res.text().await.unwrap();
    for needle in needles {
        assert!(body.contains(needle), "expected {needle:?} in {body}");
    }
    assert!(body.contains("Try again"), "offers a retry: {body}");
    assert_eq!(whoami(app, browser).await, None, "no session was set");
    let home = browser.get(&format!("{}/", app.base)).await;
    assert_eq!(home.status(), StatusCode::OK, "the app still serves");
    body
}

/// Clears the mock's faults and checks that a normal sign-in works in a new browser.
pub async fn assert_recovers(app: &TestApp) {
    app.mock.clear_faults();
    signed_in(app, &Browser::new(), "alice").await;
}

/// The value of the query parameter `name` of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with the query parameter `name` set to `value` (or removed for `None`), the
/// other parameters kept in order.
pub fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url = Url::parse(url).unwrap();
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    if let Some(value) = value {
        pairs.push((name.to_owned(), value.to_owned()));
    }
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    url.to_string()
}

/// The ceiling of [`wait_until`]: far more than anything takes on a loaded machine, so
/// reaching it means the awaited thing never happens.
pub const WAIT_CEILING: Duration = Duration::from_secs(30);

/// Polls `done` every 10 ms until it holds; panics naming `what` after [`WAIT_CEILING`].
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_CEILING;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT_CEILING:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
