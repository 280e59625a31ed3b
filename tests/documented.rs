//! Documented behaviour that no other test file covers, each over real sockets where a
//! user would see it: the settings of the README's configuration table, the caller
//! modes of the layer and the guards, and promises of the module docs (`Cache-Control:
//! no-store`, a session taking precedence over an `Authorization` header, a failed
//! callback deleting its pending cookie, the refresh memory's two minutes, a streamed
//! provider body cut off at the cap, `HF_AUTH_OLD_SECRETS`).
#![allow(unreachable_pub)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use reqwest::{StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_hf_auth::mock::{MockEndpoint, MockFault};
use tower_hf_auth::{HfAuthConfig, HfAuthLayer, HfUser, RequireLogin, RequireScopes};

/// The names of the cookies `browser` sends to `app`'s callback (which gets the
/// pending-login cookies as well as the session's).
fn cookie_names(app: &TestApp, browser: &Browser) -> Vec<String> {
    cookie_names_at(browser, &format!("{}/login/callback", app.base))
}

/// The names of the cookies `browser` sends to `url`.
fn cookie_names_at(browser: &Browser, url: &str) -> Vec<String> {
    let mut names: Vec<String> = browser
        .cookies(url)
        .split("; ")
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    names.sort();
    names
}

/// The `Set-Cookie` headers of `res`.
fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `/me` guarded by `RequireLogin` and `/edit` by `RequireScopes::any`, behind `layer`.
fn small_router(layer: HfAuthLayer) -> Router {
    async fn me(user: HfUser) -> String {
        user.username().to_owned()
    }
    Router::new()
        .route("/me", get(me).route_layer(RequireLogin))
        .route(
            "/edit",
            get(me).route_layer(RequireScopes::any(["write-repos", "manage-repos"])),
        )
        .layer(layer)
}

// ---------------------------------------------------------------------------------
// Answers: caching, and which caller they are for.
// ---------------------------------------------------------------------------------

/// Denials and the sign-in routes' answers are per user: never stored by caches.
#[tokio::test]
async fn denials_and_sign_in_answers_are_not_cached() {
    let app = app().await;
    let browser = Browser::new();
    let no_store = |res: &reqwest::Response, what: &str| {
        assert_eq!(
            res.headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
    };
    let me = format!("{}/me", app.base);
    no_store(&browser.get(&me).await, "the redirect to sign in");
    no_store(&browser.get_json(&me).await, "the 401 to an API client");
    let login = browser.get(&format!("{}/login", app.base)).await;
    no_store(&login, "/login");
    let callback = authorize(&browser, &location(&login), "alice").await;
    let res = browser
        .get(&with_param(&callback, "state", Some(&"A".repeat(43))))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    no_store(&res, "a failed callback's page");
    no_store(&browser.get(&callback).await, "the callback's redirect");
    let res = browser.get(&format!("{}/repos", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    no_store(&res, "incremental consent");
    no_store(
        &browser.get_json(&format!("{}/repos", app.base)).await,
        "a 403",
    );
    no_store(
        &browser.get(&format!("{}/logout", app.base)).await,
        "/logout",
    );
}

/// `HfAuthLayer::for_api()` and `for_grpc()` answer every denial of the app as to that
/// caller, whatever the request looks like.
#[tokio::test]
async fn layer_caller_modes_fix_every_denial() {
    let mock = mock().await;
    let api = serve(
        mock.clone(),
        |b| b,
        |c| small_router(HfAuthLayer::new(c).for_api()),
    )
    .await;
    let grpc = serve(
        mock.clone(),
        |b| b,
        |c| small_router(HfAuthLayer::new(c).for_grpc()),
    )
    .await;
    let default = serve(mock, |b| b, |c| small_router(HfAuthLayer::new(c))).await;
    let browser = Browser::new();

    let res = browser.get(&format!("{}/me", default.base)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a browser is sent to sign in"
    );

    let res = browser.get(&format!("{}/me", api.base)).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "for_api: no redirect"
    );
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    let res = browser.get(&format!("{}/me", grpc.base)).await;
    assert_eq!(res.status(), StatusCode::OK, "gRPC errors are HTTP 200");
    assert_eq!(res.headers()["grpc-status"], "16");
    assert!(res.headers().contains_key("grpc-message"));
}

/// `RequireScopes::any` admits a user with one of the scopes and refuses one with none.
#[tokio::test]
async fn require_scopes_any_needs_one_of_them() {
    let mock = mock().await;
    let with_one = serve(
        mock.clone(),
        |b| b.with_scopes(["openid", "profile", "manage-repos"]),
        |c| small_router(HfAuthLayer::new(c)),
    )
    .await;
    let with_none = serve(mock, |b| b, |c| small_router(HfAuthLayer::new(c))).await;

    let browser = Browser::new();
    signed_in_to(&with_one, &browser, "alice").await;
    let res = browser.get(&format!("{}/edit", with_one.base)).await;
    assert_eq!(res.status(), StatusCode::OK, "manage-repos is one of them");
    assert_eq!(res.text().await.unwrap(), "alice");

    let browser = Browser::new();
    signed_in_to(&with_none, &browser, "alice").await;
    let res = browser.get_json(&format!("{}/edit", with_none.base)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(
        challenge.contains("write-repos") || challenge.contains("manage-repos"),
        "{challenge}"
    );
}

/// Signs in to an app of [`small_router`] (no `/me` JSON there: its `/me` answers the
/// username as text).
async fn signed_in_to(app: &TestApp, browser: &Browser, user: &str) {
    let res = sign_in(app, browser, user, "/me").await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let me = browser.get(&format!("{}/me", app.base)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.text().await.unwrap(), user);
}

// ---------------------------------------------------------------------------------
// Sessions and bearer tokens.
// ---------------------------------------------------------------------------------

/// With bearer tokens on, a request with a valid session is the session's user: its
/// `Authorization` header is not looked at (no provider call, not even a bad token's).
#[tokio::test]
async fn a_valid_session_ignores_the_authorization_header() {
    let app = app_with(mock().await, |b| b.with_bearer_tokens(true)).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let bob_token = app.mock.issue_user_token("bob", "read");
    let checks = |app: &TestApp| {
        app.mock.requests(MockEndpoint::WhoAmI) + app.mock.requests(MockEndpoint::Userinfo)
    };
    let before = checks(&app);
    for token in [bob_token.as_str(), "hf_not_a_token"] {
        let res = browser
            .http
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let me: serde_json::Value = res.json().await.unwrap();
        assert_eq!(me["username"], "alice", "the session's user");
    }
    assert_eq!(checks(&app), before, "no token was checked at the provider");

    // Without the session, the same token is checked and is bob.
    let res = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header(header::ACCEPT, "application/json")
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["username"], "bob");
    assert_eq!(checks(&app), before + 1);
}

/// `with_authorized_orgs` restricts bearer users as it restricts sessions.
#[tokio::test]
async fn authorized_orgs_apply_to_bearer_users() {
    let app = app_with(mock().await, |b| {
        b.with_bearer_tokens(true).with_authorized_orgs(["acme"])
    })
    .await;
    let me = |token: String| {
        let url = format!("{}/me", app.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header(header::ACCEPT, "application/json")
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // alice is in acme; bob is in no organization.
    let res = me(app.mock.issue_user_token("alice", "read")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = me(app.mock.issue_user_token("bob", "read")).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "a valid token of a non-member signs nobody in"
    );
    assert_eq!(
        app.mock.requests(MockEndpoint::WhoAmI),
        2,
        "both were checked"
    );
}

/// A refreshed session is handed to requests with the old cookie for two minutes; after
/// that the old cookie's refresh token is tried again (and, spent, refused).
#[tokio::test]
async fn the_old_cookie_gets_the_refreshed_session_for_two_minutes() {
    let lifetime = Duration::from_secs(600);
    let mock = mock_with(|b| b.with_token_lifetime(lifetime).with_refresh_tokens(true)).await;
    let app = app_with(mock, |b| b).await;
    app.clock.freeze();
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let old = browser.cookies(&format!("{}/", app.base));
    let me = |cookie: String| {
        let url = format!("{}/me", app.base);
        async move {
            let res = reqwest::Client::new()
                .get(url)
                .header(header::ACCEPT, "application/json")
                .header(header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            let fresh = set_cookies(&res)
                .iter()
                .any(|c| c.starts_with("hf_auth=") && !c.starts_with("hf_auth=;"));
            (res.status(), fresh)
        }
    };
    let tokens = |app: &TestApp| app.mock.requests(MockEndpoint::Token);
    assert_eq!(tokens(&app), 1);

    app.clock.advance(Duration::from_secs(400));
    assert_eq!(me(old.clone()).await, (StatusCode::OK, true), "refreshed");
    assert_eq!(tokens(&app), 2);
    app.clock.advance(Duration::from_secs(119));
    assert_eq!(
        me(old.clone()).await,
        (StatusCode::OK, true),
        "remembered at 119 s"
    );
    assert_eq!(tokens(&app), 2, "not asked again within two minutes");
    app.clock.advance(Duration::from_secs(2));
    let (status, fresh) = me(old.clone()).await;
    assert_eq!(
        tokens(&app),
        3,
        "after two minutes the old refresh token is tried"
    );
    assert_eq!(
        status,
        StatusCode::OK,
        "the old access token is still valid"
    );
    assert!(
        !fresh,
        "the spent refresh token was refused: no new session"
    );
}

/// `with_cookie_name` names the session cookie (and its pending-login cookies).
#[tokio::test]
async fn the_session_cookie_name_is_configurable() {
    let app = app_with(mock().await, |b| b.with_cookie_name("my_session")).await;
    let browser = Browser::new();
    start_login(&app, &browser, "/").await;
    let names = cookie_names(&app, &browser);
    assert!(
        names.len() == 1 && names[0].starts_with("my_session_login_"),
        "{names:?}"
    );
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    assert_eq!(cookie_names(&app, &browser), ["my_session"]);
    let res = browser.get(&format!("{}/logout", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(cookie_names(&app, &browser).is_empty());
}

/// Old secrets named in `HF_AUTH_OLD_SECRETS` (comma-separated, blanks ignored) still
/// open sessions; a secret not named does not. `from_env` reads the real process
/// environment, which tests may not change (`unsafe` in Rust 2024): this test runs
/// itself again as a child process with the variables set.
#[tokio::test]
async fn old_secrets_from_the_environment_open_old_sessions() {
    const CHILD: &str = "TOWER_HF_AUTH_TEST_OLD_SECRETS_CHILD";
    const LISTED: &str = "an old secret that is still listed: 32+ chars";
    const DROPPED: &str = "an old secret no longer listed: 32+ characters";
    const CURRENT: &str = "the current secret of the deployment: 32+ ch";
    if std::env::var_os(CHILD).is_some() {
        return old_secrets_child().await;
    }
    let mock = mock().await;
    let mut cookies = Vec::new();
    for secret in [LISTED, DROPPED] {
        let app = app_with(mock.clone(), |b| b.with_secret(secret)).await;
        let browser = Browser::new();
        signed_in(&app, &browser, "alice").await;
        cookies.push(browser.cookies(&format!("{}/", app.base)));
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "old_secrets_from_the_environment_open_old_sessions",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env_remove("SPACE_ID")
        .env_remove("SPACE_HOST")
        .env("OAUTH_CLIENT_ID", mock.client_id())
        .env("OAUTH_CLIENT_SECRET", mock.client_secret().unwrap_or(""))
        .env("OPENID_PROVIDER_URL", mock.issuer())
        .env("PUBLIC_URL", "http://127.0.0.1:1")
        .env("HF_AUTH_SECRET", CURRENT)
        .env(
            "HF_AUTH_OLD_SECRETS",
            format!(" , {LISTED} ,,yet another old secret: thirty-two chars+,"),
        )
        .env("LISTED_COOKIE", &cookies[0])
        .env("DROPPED_COOKIE", &cookies[1])
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The child of [`old_secrets_from_the_environment_open_old_sessions`].
async fn old_secrets_child() {
    let config = tower_hf_auth::HfAuthConfigBuilder::from_env()
        .expect("the variables are usable")
        .build()
        .expect("the configuration builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = small_router(HfAuthLayer::new(config));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let me = |cookie: String| {
        let url = format!("{base}/me");
        async move {
            let res = reqwest::Client::new()
                .get(url)
                .header(header::ACCEPT, "application/json")
                .header(header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let listed = std::env::var("LISTED_COOKIE").unwrap();
    let dropped = std::env::var("DROPPED_COOKIE").unwrap();
    assert_eq!(me(listed).await, (StatusCode::OK, "alice".to_owned()));
    assert_eq!(me(dropped).await.0, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------
// Sign-in settings.
// ---------------------------------------------------------------------------------

/// Custom login, callback and logout paths, and the post-logout redirect, carry the
/// whole flow; the default paths are then the app's own.
#[tokio::test]
async fn custom_paths_and_post_logout_redirect_carry_the_flow() {
    let mock = mock_with(|b| b.add_redirect_uri("http://127.0.0.1/auth/back")).await;
    let app = serve(
        mock,
        |b| {
            b.with_login_path("/auth/in")
                .with_callback_path("/auth/back")
                .with_logout_path("/auth/out")
                .with_post_logout_redirect("/bye")
        },
        |c| small_router(HfAuthLayer::new(c)),
    )
    .await;
    let browser = Browser::new();
    let res = browser.get(&format!("{}/me", app.base)).await;
    assert_eq!(location(&res), "/auth/in?return_to=%2Fme");
    let res = browser
        .get(&format!("{}/auth/in?return_to=/me", app.base))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize_url = location(&res);
    let redirect_uri = query_param(&authorize_url, "redirect_uri").unwrap();
    assert_eq!(redirect_uri, format!("{}/auth/back", app.base));
    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert!(callback.starts_with(&redirect_uri), "{callback}");
    let res = browser.get(&callback).await;
    assert_eq!(location(&res), "/me");
    let me = browser.get(&format!("{}/me", app.base)).await;
    assert_eq!(me.text().await.unwrap(), "alice");

    for path in ["/login", "/login/callback", "/logout"] {
        let res = browser.get(&format!("{}{path}", app.base)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path} is the app's");
    }
    let res = browser.get(&format!("{}/auth/out", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/bye");
    let me = browser.get(&format!("{}/me", app.base)).await;
    assert_eq!(me.status(), StatusCode::SEE_OTHER, "signed out");
}

/// `add_org_id` asks the provider for access to organizations: `orgIds` on the
/// authorize URL, the ids comma-separated.
#[tokio::test]
async fn org_ids_go_on_the_authorize_url() {
    let app = app_with(mock().await, |b| {
        b.add_org_id("6123acme").add_org_id("6456maps")
    })
    .await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let org_ids: Vec<String> = reqwest::Url::parse(&authorize_url)
        .unwrap()
        .query_pairs()
        .filter(|(k, _)| k == "orgIds")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(org_ids, ["6123acme,6456maps"], "{authorize_url}");
    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);

    let plain = app_with(app.mock.clone(), |b| b).await;
    let authorize_url = start_login(&plain, &Browser::new(), "/").await;
    assert_eq!(query_param(&authorize_url, "orgIds"), None);
}

/// `with_leeway` sets how far past `exp` an ID token is still accepted.
#[tokio::test]
async fn the_id_token_leeway_is_configurable() {
    let mock = mock().await;
    mock.add_fault(MockFault::IdTokenExpiredBy(Duration::from_secs(90)));
    let default = app_with(mock.clone(), |b| b).await;
    let browser = Browser::new();
    let res = sign_in(&default, &browser, "alice", "/").await;
    assert_rejected(&default, &browser, res, StatusCode::BAD_GATEWAY, "expired").await;

    let lenient = app_with(mock, |b| b.with_leeway(Duration::from_secs(120))).await;
    signed_in(&lenient, &Browser::new(), "alice").await;
}

/// `with_max_pending_logins(2)`: a third sign-in started in one browser drops the
/// oldest, whose callback then fails; the two newest still complete.
#[tokio::test]
async fn the_pending_login_cap_is_configurable() {
    let app = app_with(mock().await, |b| b.with_max_pending_logins(2)).await;
    let browser = Browser::new();
    let mut callbacks = Vec::new();
    for _ in 0..3 {
        let authorize_url = start_login(&app, &browser, "/").await;
        callbacks.push(authorize(&browser, &authorize_url, "alice").await);
    }
    let pending = cookie_names(&app, &browser);
    assert_eq!(pending.len(), 2, "{pending:?}");
    let res = browser.get(&callbacks[0]).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "the oldest was dropped"
    );
    for callback in &callbacks[1..] {
        let res = browser.get(callback).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

/// Every callback that fails deletes its pending-login cookie, so failed sign-ins do
/// not pile up cookies.
#[tokio::test]
async fn every_failed_callback_deletes_its_pending_cookie() {
    let app = app_with(mock().await, |b| b.with_authorized_orgs(["acme"])).await;
    let faults = [
        Some(MockFault::AuthorizeError("access_denied".into())),
        Some(MockFault::Status {
            endpoint: MockEndpoint::Token,
            status: 500,
        }),
        Some(MockFault::IdTokenBadSignature),
        Some(MockFault::IdTokenNonce(Some("another".into()))),
        Some(MockFault::UserinfoSub("someone-else".into())),
        Some(MockFault::MissingIdToken),
        // No fault: bob is not in acme.
        None,
    ];
    for fault in faults {
        let label = format!("{fault:?}");
        let browser = Browser::new();
        let authorize_url = start_login(&app, &browser, "/").await;
        let pending = cookie_names(&app, &browser);
        assert_eq!(pending.len(), 1, "{label}: {pending:?}");
        if let Some(fault) = fault {
            app.mock.add_fault(fault);
        }
        let callback = authorize(&browser, &authorize_url, "bob").await;
        let res = browser.get(&callback).await;
        assert!(
            res.status().is_client_error() || res.status().is_server_error(),
            "{label}"
        );
        let deleted = set_cookies(&res)
            .iter()
            .any(|c| c.starts_with(&format!("{}=;", pending[0])) && c.contains("Max-Age=0"));
        assert!(deleted, "{label}: {:?}", set_cookies(&res));
        assert!(cookie_names(&app, &browser).is_empty(), "{label}");
        app.mock.clear_faults();
    }
}

/// Iframe cookies are `SameSite=None; Secure`, which needs an https public URL: with an
/// http one the configuration is refused, saying why.
#[tokio::test]
async fn iframe_cookies_need_an_https_public_url() {
    let mock = mock().await;
    let err = example_config(&mock, "http://127.0.0.1:8080")
        .with_iframe_cookies(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("https"), "{err}");

    // With https, every cookie written is `SameSite=None; Secure`.
    let app = serve(
        mock.clone(),
        |b| {
            b.with_public_url("https://me-my-space.hf.space")
                .with_iframe_cookies(true)
        },
        |c| small_router(HfAuthLayer::new(c)),
    )
    .await;
    let res = Browser::new().get(&format!("{}/login", app.base)).await;
    let cookies = set_cookies(&res);
    assert!(!cookies.is_empty());
    for cookie in cookies {
        assert!(
            cookie.contains("; Secure") && cookie.contains("; SameSite=None"),
            "{cookie}"
        );
    }
}

fn example_config(
    mock: &tower_hf_auth::mock::MockHfProvider,
    public: &str,
) -> tower_hf_auth::HfAuthConfigBuilder {
    HfAuthConfig::builder()
        .with_client_id(mock.client_id())
        .with_provider_url(mock.issuer())
        .with_public_url(public)
        .with_secret(SECRET)
}

// ---------------------------------------------------------------------------------
// The provider connection.
// ---------------------------------------------------------------------------------

/// `with_connect_timeout` bounds connecting to the provider apart from the whole call:
/// a provider whose port never completes a connection is given up on after the 1 s
/// connect timeout, long before the 60 s total timeout and the default 10 s.
#[tokio::test]
async fn the_connect_timeout_bounds_connecting() {
    // A listener that never accepts, its backlog filled: the kernel drops further
    // connection attempts, so they hang until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filled = Vec::new();
    let hangs = loop {
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        );
        match attempt.await {
            Ok(Ok(stream)) if filled.len() < 64 => filled.push(stream),
            Ok(_) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        hangs,
        "this platform does not leave connections to a full backlog hanging"
    );

    let app = app_with(mock().await, |b| {
        b.with_provider_url(format!("http://{addr}"))
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(60))
    })
    .await;
    let browser = Browser::new();
    let started = std::time::Instant::now();
    let res = browser.get(&format!("{}/login", app.base)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    // Below the default connect timeout of 10 s, with slack for a loaded machine.
    assert!(took < Duration::from_secs(8), "gave up after {took:?}");
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::GATEWAY_TIMEOUT,
        &["did not answer in time"],
    )
    .await;
    drop((filled, listener));
}

/// A provider whose token endpoint streams its answer in chunks (no `Content-Length`):
/// one byte past the cap is cut off with a page saying so; at the cap the answer is
/// read whole (and then fails for what it says, not for its size).
#[tokio::test]
async fn a_streamed_provider_body_is_cut_off_at_the_cap() {
    const CAP: usize = 16 * 1024;
    for (size, over) in [(CAP + 1, true), (CAP, false)] {
        let (issuer, task) = streaming_provider(size).await;
        let mock = mock().await;
        let app = app_with(mock, |b| {
            b.with_provider_url(issuer.clone())
                .with_max_response_bytes(CAP)
        })
        .await;
        let browser = Browser::new();
        let res = browser.get(&format!("{}/login", app.base)).await;
        let state = query_param(&location(&res), "state").unwrap();
        let res = browser
            .get(&format!("{}/login/callback?code=c&state={state}", app.base))
            .await;
        let page = assert_rejected_page(&app, &browser, res, StatusCode::BAD_GATEWAY, &[]).await;
        assert_eq!(
            page.contains(&format!("larger than the {CAP}-byte limit")),
            over,
            "{size} bytes: {page}"
        );
        task.abort();
    }
}

/// A provider that serves discovery and answers `/oauth/token` with a JSON body of
/// exactly `size` bytes, sent with chunked transfer encoding in 1000-byte chunks.
async fn streaming_provider(size: usize) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let base = issuer.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let base = base.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let body = if path.starts_with("/.well-known/openid-configuration") {
                    serde_json::json!({
                        "issuer": base,
                        "authorization_endpoint": format!("{base}/oauth/authorize"),
                        "token_endpoint": format!("{base}/oauth/token"),
                        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
                        "jwks_uri": format!("{base}/oauth/jwks"),
                    })
                    .to_string()
                } else {
                    let prefix = r#"{"access_token":"hf_oauth_x","token_type":"bearer","pad":""#;
                    let suffix = r#""}"#;
                    let pad = "x".repeat(size - prefix.len() - suffix.len());
                    format!("{prefix}{pad}{suffix}")
                };
                assert!(path.starts_with("/.well-known") || body.len() == size);
                let mut answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    .to_vec();
                for chunk in body.as_bytes().chunks(1000) {
                    answer.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    answer.extend_from_slice(chunk);
                    answer.extend_from_slice(b"\r\n");
                }
                answer.extend_from_slice(b"0\r\n\r\n");
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (issuer, task)
}
