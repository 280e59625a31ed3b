//! Session refresh over real sockets: a session near or past its access token's expiry
//! is refreshed with its refresh token, once for all concurrent requests, and provider
//! failures never end a session early.

#![allow(unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::{StatusCode, header};
use tower_hf_auth::mock::{MockEndpoint, MockFault};

/// Access tokens of the mock live 10 minutes; the refresh window is the default 5.
const LIFETIME: Duration = Duration::from_secs(600);

async fn signed_in_app(refresh_tokens: bool) -> (TestApp, Browser) {
    let mock = mock_with(|b| {
        b.with_token_lifetime(LIFETIME)
            .with_refresh_tokens(refresh_tokens)
    })
    .await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    assert_eq!(
        app.mock.requests(MockEndpoint::Token),
        1,
        "the code exchange"
    );
    (app, browser)
}

fn token_calls(app: &TestApp) -> usize {
    app.mock.requests(MockEndpoint::Token)
}

/// The `Cookie` header the browser sends to the app.
fn cookie_header(app: &TestApp, browser: &Browser) -> String {
    let cookies = browser.cookies(&format!("{}/", app.base));
    assert!(cookies.contains("hf_auth="), "a session cookie: {cookies}");
    cookies
}

/// `/me` as an API client sending `cookie`: the username (or `None` on 401) and the
/// `Set-Cookie` headers of the answer.
async fn me_with(app: &TestApp, cookie: &str) -> (Option<String>, Vec<String>) {
    let res = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let set_cookies = set_cookies(&res);
    let user = match res.status() {
        StatusCode::OK => {
            let json: serde_json::Value = res.json().await.unwrap();
            Some(json["username"].as_str().unwrap().to_owned())
        }
        StatusCode::UNAUTHORIZED => None,
        other => panic!("/me answered {other}"),
    };
    (user, set_cookies)
}

fn sets_session(set_cookies: &[String]) -> bool {
    set_cookies
        .iter()
        .any(|c| c.starts_with("hf_auth=") && !c.starts_with("hf_auth=;"))
}

fn clears_session(set_cookies: &[String]) -> bool {
    set_cookies
        .iter()
        .any(|c| c.starts_with("hf_auth=;") && c.contains("Max-Age=0"))
}

#[tokio::test]
async fn session_near_expiry_is_refreshed() {
    let (app, browser) = signed_in_app(true).await;
    let before = cookie_header(&app, &browser);
    app.clock.advance(Duration::from_secs(400));
    let (user, set_cookies) = me_with(&app, &before).await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert!(
        sets_session(&set_cookies),
        "a new session cookie: {set_cookies:?}"
    );
    assert_eq!(token_calls(&app), 2, "one refresh");

    // The browser keeps the new cookie; it outlives the first access token.
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    assert_ne!(
        cookie_header(&app, &browser),
        before,
        "the cookie was replaced"
    );
    app.clock.advance(Duration::from_secs(250));
    assert_eq!(
        whoami(&app, &browser).await.as_deref(),
        Some("alice"),
        "still signed in after the first access token expired"
    );
    assert_eq!(
        token_calls(&app),
        2,
        "a fresh session is not refreshed again"
    );
}

#[tokio::test]
async fn expired_session_with_a_refresh_token_is_refreshed() {
    let (app, browser) = signed_in_app(true).await;
    app.clock.advance(LIFETIME + Duration::from_secs(60));
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    assert_eq!(token_calls(&app), 2);
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    assert_eq!(token_calls(&app), 2, "the new session is used from then on");
}

/// Fifty requests with one expired session, sent at once on two worker threads, while
/// the provider takes 500 ms over the refresh: without single flight several would
/// reach the token endpoint during those 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_refresh() {
    const REQUESTS: usize = 50;
    let (app, browser) = signed_in_app(true).await;
    let cookie = cookie_header(&app, &browser);
    // Expired, so every request waits for the refresh instead of being served its
    // old session after a second.
    app.clock.advance(LIFETIME + Duration::from_secs(60));
    app.mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_millis(500),
    });
    let client = reqwest::Client::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let request = client
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &cookie);
        let start = start.clone();
        requests.spawn(async move {
            start.wait().await;
            let res = request.send().await.unwrap();
            let status = res.status();
            let fresh = sets_session(&set_cookies(&res));
            let json: serde_json::Value = res.json().await.unwrap();
            (status, json["username"].as_str().map(str::to_owned), fresh)
        });
    }
    while let Some(answer) = requests.join_next().await {
        let (status, user, fresh) = answer.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(user.as_deref(), Some("alice"));
        assert!(fresh, "every request gets the refreshed session's cookie");
    }
    assert_eq!(
        token_calls(&app),
        2,
        "exactly one refresh for {REQUESTS} requests"
    );
}

#[tokio::test]
async fn old_cookie_right_after_a_refresh_gets_the_refreshed_session() {
    let (app, browser) = signed_in_app(true).await;
    let old = cookie_header(&app, &browser);
    app.clock.advance(Duration::from_secs(400));
    let (user, set_cookies) = me_with(&app, &old).await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert!(sets_session(&set_cookies));
    assert_eq!(token_calls(&app), 2);

    // Another tab, or a request that was already on its way, still has the old cookie:
    // the refresh token it holds is spent, so the remembered outcome answers.
    app.clock.advance(Duration::from_secs(60));
    let (user, set_cookies) = me_with(&app, &old).await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert!(sets_session(&set_cookies), "the refreshed cookie again");
    assert_eq!(token_calls(&app), 2, "no second refresh");
}

#[tokio::test]
async fn refused_refresh_token_serves_the_session_until_expiry_then_signs_out() {
    let (app, browser) = signed_in_app(true).await;
    let cookie = cookie_header(&app, &browser);
    app.mock.revoke_refresh_tokens();
    app.clock.advance(Duration::from_secs(400));
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert_eq!(
        user.as_deref(),
        Some("alice"),
        "served until the access token expires"
    );
    assert!(set_cookies.is_empty(), "{set_cookies:?}");
    assert_eq!(token_calls(&app), 2);
    let (user, _) = me_with(&app, &cookie).await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert_eq!(token_calls(&app), 2, "the refusal is remembered");

    app.clock.advance(Duration::from_secs(201));
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert_eq!(user, None, "signed out once the access token expired");
    assert!(
        clears_session(&set_cookies),
        "cookie cleared: {set_cookies:?}"
    );
    assert_eq!(token_calls(&app), 2);
}

#[tokio::test]
async fn provider_down_serves_until_expiry_and_recovers() {
    let (app, browser) = signed_in_app(true).await;
    let cookie = cookie_header(&app, &browser);
    app.mock.add_fault(MockFault::Status {
        endpoint: MockEndpoint::Token,
        status: 503,
    });
    app.clock.advance(Duration::from_secs(400));
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert_eq!(user.as_deref(), Some("alice"), "the old session is served");
    assert!(set_cookies.is_empty(), "{set_cookies:?}");
    assert_eq!(token_calls(&app), 2);
    let (user, _) = me_with(&app, &cookie).await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert_eq!(
        token_calls(&app),
        3,
        "a failure is not remembered: tried again"
    );

    app.clock.advance(Duration::from_secs(201));
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert_eq!(user, None, "no user once the access token expired");
    assert!(
        !clears_session(&set_cookies),
        "the cookie is kept for a later try: {set_cookies:?}"
    );

    app.mock.clear_faults();
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert_eq!(
        user.as_deref(),
        Some("alice"),
        "refreshed once the provider is back"
    );
    assert!(sets_session(&set_cookies));
    // The browser's own jar still has the cookie and signs in the same way.
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn sessions_without_a_refresh_token_end_at_expiry() {
    let mock = mock_with(|b| b.with_token_lifetime(LIFETIME).with_refresh_tokens(false)).await;
    let app = app_with(mock, |b| b).await;
    // Frozen from before the sign-in: one second before the expiry stays one second
    // before it however long the steps take.
    app.clock.freeze();
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    app.clock.advance(Duration::from_secs(400));
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    app.clock.advance(Duration::from_secs(199));
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(whoami(&app, &browser).await, None);
    assert_eq!(token_calls(&app), 1, "no refresh was tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_during_a_refresh_does_not_lose_the_rotated_token() {
    let mock = mock_with(|b| b.with_token_lifetime(LIFETIME).with_refresh_tokens(true)).await;
    // A provider timeout well past the provider's delay below.
    let app = app_with(mock, |b| b.with_timeout(Duration::from_secs(30))).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let cookie = cookie_header(&app, &browser);
    app.mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_secs(6),
    });
    // Expired: a request waits for the refresh (not at most a second).
    app.clock.advance(LIFETIME + Duration::from_secs(60));
    let request = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header(header::COOKIE, &cookie)
        .send();
    let request = tokio::spawn(request);
    wait_until("the refresh to reach the provider", || {
        token_calls(&app) == 2
    })
    .await;
    // The client gives up while the provider is still answering (it waits 6 s).
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());

    // The refresh finished anyway: the next request joins it or finds it remembered,
    // and does not spend the rotated-away refresh token again.
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert_eq!(
        user.as_deref(),
        Some("alice"),
        "the refresh finished anyway"
    );
    assert!(sets_session(&set_cookies), "{set_cookies:?}");
    assert_eq!(token_calls(&app), 2, "and was remembered");
}

#[tokio::test]
async fn a_slow_provider_does_not_hold_up_a_still_valid_session() {
    let mock = mock_with(|b| b.with_token_lifetime(LIFETIME)).await;
    let app = app_with(mock, |b| b.with_timeout(Duration::from_secs(10))).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let cookie = cookie_header(&app, &browser);
    app.mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_secs(8),
    });
    app.clock.advance(Duration::from_secs(400));

    // Served after the one-second wait, far from the provider's 8 s (with a ceiling
    // generous for a loaded machine).
    let started = std::time::Instant::now();
    let (user, set_cookies) = me_with(&app, &cookie).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served after {:?}, without waiting for the provider's 8 s",
        started.elapsed()
    );
    assert_eq!(user.as_deref(), Some("alice"), "the session it has");
    assert!(set_cookies.is_empty(), "{set_cookies:?}");
    assert_eq!(token_calls(&app), 2, "the refresh is under way");

    // The refresh went on in the background; a later request gets its cookie.
    let deadline = std::time::Instant::now() + WAIT_CEILING;
    loop {
        let (user, set_cookies) = me_with(&app, &cookie).await;
        assert_eq!(user.as_deref(), Some("alice"));
        if sets_session(&set_cookies) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(token_calls(&app), 2, "one refresh for all those requests");
}

/// The `Max-Age` of the session cookie a sign-in as alice sets, with the app's
/// settings changed by `customize`.
async fn session_max_age(
    refresh_tokens: bool,
    customize: impl FnOnce(tower_hf_auth::HfAuthConfigBuilder) -> tower_hf_auth::HfAuthConfigBuilder,
) -> u64 {
    let mock = mock_with(|b| {
        b.with_token_lifetime(LIFETIME)
            .with_refresh_tokens(refresh_tokens)
    })
    .await;
    let app = app_with(mock, customize).await;
    let res = sign_in(&app, &Browser::new(), "alice", "/").await;
    let session = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("hf_auth="))
        .expect("the callback sets the session");
    let age = session.split("Max-Age=").nth(1).expect("a Max-Age");
    age.split(';').next().unwrap().parse().unwrap()
}

/// Real browsers drop a cookie at its `Max-Age`, whatever the app's clock says: a
/// session that can be refreshed must outlive its access token there, or a user coming
/// back after it expired is signed out instead of refreshed.
#[tokio::test]
async fn the_browser_keeps_a_refreshable_session_past_its_access_token() {
    let week = 7 * 24 * 3600;
    assert!(session_max_age(true, |b| b).await >= LIFETIME.as_secs() - 5 + week);
    assert!(session_max_age(false, |b| b).await <= LIFETIME.as_secs());
}

/// `with_refresh_grace` replaces the week: set to Hugging Face's refresh-token lifetime
/// when it is known, the cookie goes when the refresh token would.
#[tokio::test]
async fn with_refresh_grace_sets_how_long_the_cookie_outlives_the_access_token() {
    let grace = Duration::from_secs(3 * 24 * 3600);
    let max_age = session_max_age(true, |b| b.with_refresh_grace(grace)).await;
    let expected = LIFETIME.as_secs() + grace.as_secs();
    assert!(
        (expected - 5..=expected).contains(&max_age),
        "Max-Age {max_age}, expected about {expected}"
    );
    let max_age = session_max_age(false, |b| b.with_refresh_grace(grace)).await;
    assert!(
        max_age <= LIFETIME.as_secs(),
        "no grace without a refresh token"
    );
}

/// `/me` as a browser (HTML, cookie jar): the username, or `None` when it is sent to
/// sign in (a redirect to the login route).
async fn browse_me(app: &TestApp, browser: &Browser) -> Option<String> {
    let res = browser.get(&format!("{}/me", app.base)).await;
    match res.status() {
        StatusCode::OK => {
            let body = res.text().await.unwrap();
            assert!(body.contains("alice"), "{body}");
            Some("alice".to_owned())
        }
        status if status.is_redirection() => {
            let to = location(&res);
            assert!(to.contains("/login"), "sent to sign in, not {to}");
            None
        }
        other => panic!("/me answered {other}"),
    }
}

/// The mock's refresh tokens end 900 s after the sign-in (Hugging Face does not say
/// when its own do). The session is refreshed once, then its refresh token is refused
/// as expired: it is served until its access token expires, then the browser is sent
/// to sign in (not an error page) and the cookie is cleared.
#[tokio::test]
async fn a_session_whose_refresh_token_expired_ends_at_access_token_expiry() {
    let app = app_and_mock_on_one_clock(|b| {
        b.with_token_lifetime(LIFETIME)
            .with_refresh_token_lifetime(Duration::from_secs(900))
    })
    .await;
    app.clock.freeze();
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    app.clock.advance(Duration::from_secs(400));
    assert_eq!(browse_me(&app, &browser).await.as_deref(), Some("alice"));
    assert_eq!(
        token_calls(&app),
        2,
        "refreshed: the new access token ends at 1000 s"
    );

    // 950 s: due for a refresh, which the mock refuses (the chain ended at 900 s).
    app.clock.advance(Duration::from_secs(550));
    assert_eq!(browse_me(&app, &browser).await.as_deref(), Some("alice"));
    assert_eq!(token_calls(&app), 3, "one refresh tried");
    app.clock.advance(Duration::from_secs(49));
    assert_eq!(browse_me(&app, &browser).await.as_deref(), Some("alice"));
    assert_eq!(token_calls(&app), 3, "the refusal is remembered");

    // 1000 s: the access token expired.
    app.clock.advance(Duration::from_secs(1));
    let res = browser.get(&format!("{}/me", app.base)).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert!(location(&res).contains("/login"), "{}", location(&res));
    let cleared = set_cookies(&res);
    assert!(clears_session(&cleared), "cookie cleared: {cleared:?}");
    assert_eq!(whoami(&app, &browser).await, None);
    assert_eq!(token_calls(&app), 3);
    assert_eq!(app.mock.reused_refresh_tokens(), 0);
}

/// Refresh tokens idle for 700 s expire at the mock; each refresh hands out one with a
/// new window. A session used every 400 s is refreshed each time and lives far past
/// 700 s; left alone for 750 s its refresh token has expired and it ends.
#[tokio::test]
async fn a_sliding_refresh_window_keeps_a_used_session_alive() {
    let app = app_and_mock_on_one_clock(|b| {
        b.with_token_lifetime(LIFETIME)
            .with_refresh_token_idle_timeout(Duration::from_secs(700))
    })
    .await;
    app.clock.freeze();
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    for refreshes in 1..=5 {
        app.clock.advance(Duration::from_secs(400));
        assert_eq!(browse_me(&app, &browser).await.as_deref(), Some("alice"));
        assert_eq!(token_calls(&app), 1 + refreshes, "refreshed each time");
    }
    // 2000 s since the sign-in; now idle past the window (the access token expired too).
    app.clock.advance(Duration::from_secs(750));
    assert_eq!(browse_me(&app, &browser).await, None, "sent to sign in");
    assert_eq!(token_calls(&app), 7, "the refresh was tried and refused");
    assert_eq!(app.mock.reused_refresh_tokens(), 0);
}
