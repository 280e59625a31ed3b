//! Bearer tokens over real sockets: the example app with `with_bearer_tokens(true)`
//! against `MockHfProvider`.
//!
//! - What each caller (API, gRPC, browser) sees on the guarded routes `/me`, `/repos`
//!   and `/acme/admin`, for each kind of principal: no token, a token without
//!   `read-repos`, one with it, a member of `acme` with too low a role, and its admin.
//! - Valid, unknown and expired tokens, and how a token's expiry bounds its cache entry.
//! - The cache: a revoked token is accepted until the cache ttl passes (the documented
//!   trade-off), cached answers make no upstream call, rejections are cached for the
//!   negative ttl.
//! - A rate-limited, failing, slow or unreachable provider: `503` with `Retry-After`
//!   (gRPC status 14), never "invalid token"; the same token works once it recovers.
//! - 1,000 concurrent requests with one new token make exactly one upstream call. They
//!   open up to 1,000 loopback connections, so this process needs about 2,100 file
//!   descriptors.
#![allow(unreachable_pub)]

#[cfg(not(all(feature = "axum", feature = "mock")))]
compile_error!(
    "tests/bearer.rs needs the `axum` and `mock` features: run `cargo test --all-features`"
);

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use reqwest::{Client, Response, StatusCode, header};
use tower_hf_auth::mock::{MockEndpoint, MockFault, MockHfProvider};
use tower_hf_auth::{BearerValidation, Clock, HfAuthConfigBuilder};

const HOUR: Duration = Duration::from_secs(60 * 60);

/// The example app with bearer tokens on, against a fresh mock, `customize` applied.
async fn bearer_app(customize: impl FnOnce(HfAuthConfigBuilder) -> HfAuthConfigBuilder) -> TestApp {
    app_with(mock().await, |b| customize(b.with_bearer_tokens(true))).await
}

/// A client that does not follow redirects: a browser's redirect is the answer.
fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Who asks; each gets a denial in its own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// A program: `Accept: application/json`.
    Api,
    /// A gRPC client: `content-type: application/grpc`.
    Grpc,
    /// A browser navigating: `GET`, accepting `text/html`.
    Browser,
}

const CALLERS: [Caller; 3] = [Caller::Api, Caller::Grpc, Caller::Browser];

/// `GET url` as `caller`, with `Authorization: Bearer token` when there is one.
async fn get(http: &Client, url: &str, caller: Caller, token: Option<&str>) -> Response {
    let mut req = match caller {
        Caller::Api => http.get(url).header(header::ACCEPT, "application/json"),
        Caller::Grpc => http
            .get(url)
            .header(header::CONTENT_TYPE, "application/grpc"),
        Caller::Browser => http
            .get(url)
            .header(header::ACCEPT, "text/html,application/xhtml+xml"),
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// What a request should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The handler answers; its body shows this.
    Allowed(&'static str),
    /// Nobody is signed in: no token, or (`invalid`) one the provider rejected.
    NotSignedIn { invalid: bool },
    /// Signed in without `read-repos` (the `/repos` guard).
    MissingScope,
    /// Signed in without the `admin` role in `acme` (the `/acme/admin` guard).
    NotAcmeAdmin,
    /// The provider could not say whether the token is good.
    Unavailable,
}

/// `/me` answers with alice's profile.
const ALICE: Outcome = Outcome::Allowed(r#""username":"alice""#);
/// The provider rejected the token.
const INVALID: Outcome = Outcome::NotSignedIn { invalid: true };

/// What API and gRPC callers are told when the provider rejected their token.
const REJECTED: &str =
    "Hugging Face did not accept the bearer token: it is invalid, expired or revoked";

/// Asks `path` as `caller` with `token` and asserts the status, headers and body
/// `outcome` means for that caller. `who` names the principal in failure messages.
async fn assert_answer(
    app: &TestApp,
    http: &Client,
    path: &str,
    caller: Caller,
    token: Option<&str>,
    outcome: Outcome,
    who: &str,
) {
    let res = get(http, &format!("{}{path}", app.base), caller, token).await;
    let what = format!("{who} → {caller:?} GET {path}, expecting {outcome:?}");
    let status = res.status();
    let headers = res.headers().clone();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    let contains = |needle: &str| {
        assert!(
            body.contains(needle),
            "{what}: expected {needle:?} in {body}"
        );
    };
    let json = || -> serde_json::Value {
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/json"),
            "{what}"
        );
        serde_json::from_str(&body).unwrap()
    };

    if let Outcome::Allowed(shows) = outcome {
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert_eq!(header("grpc-status"), None, "{what}: the handler answered");
        contains(shows);
        return;
    }
    if outcome == Outcome::Unavailable {
        // The mock sends no `Retry-After` of its own, so this is the crate's default.
        assert_eq!(header("retry-after").as_deref(), Some("5"), "{what}");
        assert_eq!(header("www-authenticate"), None, "{what}: not a rejection");
    }
    match (caller, outcome) {
        (Caller::Grpc, _) => {
            assert_eq!(status, StatusCode::OK, "{what}: gRPC errors are HTTP 200");
            let (code, says) = match outcome {
                Outcome::NotSignedIn { invalid: true } => ("16", REJECTED),
                Outcome::NotSignedIn { invalid: false } => (
                    "16",
                    "Sign in with Hugging Face first: send `authorization: Bearer <token>`",
                ),
                Outcome::MissingScope => ("7", "`read-repos`"),
                Outcome::NotAcmeAdmin => {
                    ("7", "`admin` role (or higher) in the organization `acme`")
                }
                Outcome::Unavailable => ("14", "could not check the access token"),
                Outcome::Allowed(_) => unreachable!(),
            };
            assert_eq!(header("grpc-status").as_deref(), Some(code), "{what}");
            let message = header("grpc-message").unwrap_or_default();
            assert!(message.contains(says), "{what}: grpc-message {message:?}");
        }
        (Caller::Api, Outcome::NotSignedIn { invalid }) => {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            let why = if invalid {
                r#", error="invalid_token""#
            } else {
                ""
            };
            assert_eq!(
                header("www-authenticate"),
                Some(format!(r#"Bearer realm="{}"{why}"#, app.base)),
                "{what}"
            );
            let json = json();
            assert_eq!(json["error"], "unauthenticated", "{what}");
            let description = json["error_description"].as_str().unwrap();
            let expected = if invalid {
                REJECTED.to_owned()
            } else {
                format!(
                    "Sign in with Hugging Face first (/login?return_to={}), or send \
                     `Authorization: Bearer <token>` with a Hugging Face access token",
                    path.replace('/', "%2F")
                )
            };
            assert_eq!(description, expected, "{what}");
        }
        (Caller::Browser, Outcome::NotSignedIn { .. }) => {
            assert_eq!(status, StatusCode::SEE_OTHER, "{what}");
            let return_to = path.replace('/', "%2F");
            assert_eq!(
                header("location"),
                Some(format!("/login?return_to={return_to}")),
                "{what}"
            );
        }
        (Caller::Api, Outcome::MissingScope) => {
            assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
            assert_eq!(
                header("www-authenticate").as_deref(),
                Some(r#"Bearer error="insufficient_scope", scope="read-repos""#),
                "{what}"
            );
            assert_eq!(json()["error"], "insufficient_scope", "{what}");
            contains("`read-repos`");
        }
        (Caller::Browser, Outcome::MissingScope) => {
            // Incremental consent, as for a signed-in browser.
            assert_eq!(status, StatusCode::SEE_OTHER, "{what}");
            assert_eq!(
                header("location").as_deref(),
                Some("/login?return_to=%2Frepos&scope=read-repos"),
                "{what}"
            );
        }
        (Caller::Api, Outcome::NotAcmeAdmin) => {
            assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
            assert_eq!(header("www-authenticate"), None, "{what}");
            assert_eq!(json()["error"], "org_required", "{what}");
            contains("`admin` role (or higher) in the organization `acme`");
        }
        (Caller::Browser, Outcome::NotAcmeAdmin) => {
            assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
            contains("`admin` role (or higher) in the organization `acme`");
            contains("Try again");
        }
        (Caller::Api, Outcome::Unavailable) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
            assert_eq!(json()["error"], "provider_unavailable", "{what}");
            contains("could not check the access token");
        }
        (Caller::Browser, Outcome::Unavailable) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
            assert!(
                header("content-type").unwrap().starts_with("text/html"),
                "{what}"
            );
            contains("could not check the access token");
        }
        (_, Outcome::Allowed(_)) => unreachable!(),
    }
}

/// [`assert_answer`] for each caller in turn.
async fn assert_answers(
    app: &TestApp,
    http: &Client,
    path: &str,
    token: Option<&str>,
    outcome: Outcome,
    who: &str,
) {
    for caller in CALLERS {
        assert_answer(app, http, path, caller, token, outcome, who).await;
    }
}

/// The principals of the matrix.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// No `Authorization` header at all.
    NoToken,
    /// Alice (admin of `acme`) with a fine-grained user token: no `read-repos`.
    AliceFineGrained,
    /// Alice with an OAuth token granted `read-repos`, which userinfo does not report.
    AliceOAuth,
    /// Carol, `write` in `acme`, with a `read` user token.
    CarolRead,
    /// Bob, in no org, with a `read` user token.
    BobRead,
    /// Alice with a `read` user token.
    AliceRead,
}

fn token_of(mock: &MockHfProvider, who: Who) -> Option<String> {
    Some(match who {
        Who::NoToken => return None,
        Who::AliceFineGrained => mock.issue_user_token("alice", "fineGrained"),
        Who::AliceOAuth => {
            mock.issue_oauth_token("alice", &["openid", "profile", "email", "read-repos"], HOUR)
        }
        Who::CarolRead => mock.issue_user_token("carol", "read"),
        Who::BobRead => mock.issue_user_token("bob", "read"),
        Who::AliceRead => mock.issue_user_token("alice", "read"),
    })
}

/// Asks `path` as every caller, for every principal of `table`, and asserts each answer.
/// Each token is validated once, whichever caller comes first: the four user tokens at
/// whoami, the OAuth token at userinfo.
async fn assert_matrix(path: &str, table: [(Who, Outcome); 6]) {
    let app = bearer_app(|b| b).await;
    let http = client();
    for (who, outcome) in table {
        let token = token_of(&app.mock, who);
        assert_answers(
            &app,
            &http,
            path,
            token.as_deref(),
            outcome,
            &format!("{who:?}"),
        )
        .await;
    }
    assert_eq!(app.mock.requests(MockEndpoint::WhoAmI), 4, "{path}");
    assert_eq!(app.mock.requests(MockEndpoint::Userinfo), 1, "{path}");
}

#[tokio::test]
async fn login_guard_answers_every_caller_and_principal() {
    assert_matrix(
        "/me",
        [
            (Who::NoToken, Outcome::NotSignedIn { invalid: false }),
            (Who::AliceFineGrained, ALICE),
            (Who::AliceOAuth, ALICE),
            (Who::CarolRead, Outcome::Allowed(r#""username":"carol""#)),
            (Who::BobRead, Outcome::Allowed(r#""username":"bob""#)),
            (Who::AliceRead, ALICE),
        ],
    )
    .await;
}

#[tokio::test]
async fn scope_guard_answers_every_caller_and_principal() {
    assert_matrix(
        "/repos",
        [
            (Who::NoToken, Outcome::NotSignedIn { invalid: false }),
            (Who::AliceFineGrained, Outcome::MissingScope),
            // Granted, but userinfo does not say so: see "Scopes of a bearer token".
            (Who::AliceOAuth, Outcome::MissingScope),
            (
                Who::CarolRead,
                Outcome::Allowed("@carol granted <code>read-repos</code>"),
            ),
            (
                Who::BobRead,
                Outcome::Allowed("@bob granted <code>read-repos</code>"),
            ),
            (
                Who::AliceRead,
                Outcome::Allowed("@alice granted <code>read-repos</code>"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn org_role_guard_answers_every_caller_and_principal() {
    let admin = Outcome::Allowed("@alice administers acme");
    assert_matrix(
        "/acme/admin",
        [
            (Who::NoToken, Outcome::NotSignedIn { invalid: false }),
            // A fine-grained token acts only in the orgs it holds permissions for (none
            // here); an OAuth token in the orgs the user granted its app (acme), with
            // the user's role, whatever the token's scopes.
            (Who::AliceFineGrained, Outcome::NotAcmeAdmin),
            (Who::AliceOAuth, admin),
            (Who::CarolRead, Outcome::NotAcmeAdmin),
            (Who::BobRead, Outcome::NotAcmeAdmin),
            (Who::AliceRead, admin),
        ],
    )
    .await;
}

#[tokio::test]
async fn unknown_expired_and_malformed_tokens_are_invalid() {
    let app = bearer_app(|b| b).await;
    let http = client();
    let mock = &app.mock;

    let valid = mock.issue_oauth_token("alice", &["openid", "profile", "email"], HOUR);
    assert_answers(&app, &http, "/me", Some(&valid), ALICE, "valid OAuth").await;
    let valid = mock.issue_user_token("alice", "write");
    assert_answers(&app, &http, "/me", Some(&valid), ALICE, "valid user token").await;

    let expired = mock.issue_oauth_token("alice", &["openid", "profile"], Duration::ZERO);
    for (token, who) in [
        ("hf_oauth_x", "unknown OAuth"),
        ("hf_x", "unknown user token"),
        (expired.as_str(), "expired OAuth"),
    ] {
        assert_answers(&app, &http, "/me", Some(token), INVALID, who).await;
    }
    assert_eq!(mock.requests(MockEndpoint::Userinfo), 3);
    assert_eq!(mock.requests(MockEndpoint::WhoAmI), 2);

    // Too long, or with a character that is not visible ASCII: rejected without asking.
    let long = format!("hf_{}", "a".repeat(5000));
    for (token, who) in [
        (long.as_str(), "5 kB token"),
        ("hf_a b", "token with a space"),
    ] {
        assert_answers(&app, &http, "/me", Some(token), INVALID, who).await;
    }
    assert_eq!(mock.requests(MockEndpoint::Userinfo), 3);
    assert_eq!(mock.requests(MockEndpoint::WhoAmI), 2);
}

/// Seconds since the epoch by the app's clock.
fn now(app: &TestApp) -> u64 {
    app.clock
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn an_oauth_token_checked_at_whoami_is_cached_no_longer_than_it_lives() {
    let app = bearer_app(|b| b.with_bearer_validation(BearerValidation::WhoAmI)).await;
    let http = client();
    let token =
        app.mock
            .issue_oauth_token("alice", &["openid", "profile"], Duration::from_secs(120));

    let me: serde_json::Value = get(
        &http,
        &format!("{}/me", app.base),
        Caller::Api,
        Some(&token),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(me["username"], "alice");
    let expires_at = me["expires_at"].as_u64().unwrap();
    let now = now(&app);
    assert!(
        // Real time passes between the mock's issuing and this check.
        (now + 100..=now + 120).contains(&expires_at),
        "the token's own expiry ({expires_at}), not the 5-minute ttl, bounds the user (now {now})"
    );

    app.clock.advance(Duration::from_secs(60));
    assert_answers(&app, &http, "/me", Some(&token), ALICE, "half-way").await;
    assert_eq!(
        app.mock.requests(MockEndpoint::WhoAmI),
        1,
        "answered from the cache"
    );

    // The mock (on real time) would still accept the token; by the app's clock it
    // has expired, so the cache entry is gone and the answer is a rejection.
    app.clock.advance(Duration::from_secs(61));
    assert_answers(&app, &http, "/me", Some(&token), INVALID, "expired").await;
    assert_eq!(app.mock.requests(MockEndpoint::WhoAmI), 2);
}

/// The trade-off of validating OAuth tokens at userinfo (the default): it does not
/// report a token's expiry, so a token that expires while cached is accepted until the
/// cache ttl passes, as a revoked one is.
#[tokio::test]
async fn an_oauth_token_checked_at_userinfo_is_cached_past_its_expiry_until_the_ttl() {
    let ttl = Duration::from_secs(60);
    let app = bearer_app(|b| b.with_bearer_cache_ttl(ttl)).await;
    let http = client();
    // The mock expires tokens by the real clock: a lifetime long enough for the first
    // request on a loaded machine, then polled until the provider refuses the token.
    let token = app
        .mock
        .issue_oauth_token("alice", &["openid", "profile"], Duration::from_secs(5));
    assert_answers(&app, &http, "/me", Some(&token), ALICE, "fresh").await;

    let mut direct = 0;
    let ceiling = tokio::time::Instant::now() + WAIT_CEILING;
    loop {
        let at_provider = http
            .get(format!("{}/oauth/userinfo", app.mock.issuer()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        direct += 1;
        if at_provider.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(at_provider.status(), StatusCode::OK);
        assert!(
            tokio::time::Instant::now() < ceiling,
            "the token never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_answers(&app, &http, "/me", Some(&token), ALICE, "cached").await;

    app.clock.advance(ttl);
    assert_answers(&app, &http, "/me", Some(&token), INVALID, "after the ttl").await;
    // The first call, the direct ones above, and the one after the ttl.
    assert_eq!(app.mock.requests(MockEndpoint::Userinfo), 1 + direct + 1);
}

#[tokio::test]
async fn a_revoked_token_is_accepted_until_the_cache_ttl_passes() {
    let ttl = Duration::from_secs(60);
    let app = bearer_app(|b| b.with_bearer_cache_ttl(ttl)).await;
    let http = client();
    let mock = &app.mock;
    for (token, endpoint) in [
        (mock.issue_user_token("alice", "read"), MockEndpoint::WhoAmI),
        (
            mock.issue_oauth_token("alice", &["openid", "profile", "email"], HOUR),
            MockEndpoint::Userinfo,
        ),
    ] {
        let asked = mock.requests(endpoint);
        assert_answers(&app, &http, "/me", Some(&token), ALICE, "fresh").await;
        assert_eq!(
            mock.requests(endpoint),
            asked + 1,
            "{endpoint:?}: asked once, then answered from the cache"
        );

        mock.revoke_token(&token);
        app.clock.advance(ttl / 2);
        assert_answers(&app, &http, "/me", Some(&token), ALICE, "revoked, cached").await;
        assert_eq!(
            mock.requests(endpoint),
            asked + 1,
            "{endpoint:?}: not asked"
        );

        app.clock.advance(ttl / 2 + Duration::from_secs(1));
        assert_answers(
            &app,
            &http,
            "/me",
            Some(&token),
            INVALID,
            "revoked, ttl passed",
        )
        .await;
        assert_eq!(
            mock.requests(endpoint),
            asked + 2,
            "{endpoint:?}: asked again once; the rejection is cached"
        );
    }
}

#[tokio::test]
async fn rejections_are_cached_for_the_negative_ttl() {
    let negative_ttl = Duration::from_secs(10);
    let app = bearer_app(|b| b.with_bearer_negative_ttl(negative_ttl)).await;
    let http = client();
    let tokens = [
        ("hf_oauth_not_a_real_token", MockEndpoint::Userinfo),
        ("hf_not_a_real_token", MockEndpoint::WhoAmI),
    ];
    for (token, endpoint) in tokens {
        for _ in 0..2 {
            assert_answers(&app, &http, "/me", Some(token), INVALID, token).await;
        }
        assert_eq!(app.mock.requests(endpoint), 1, "{token}: asked once");
    }

    app.clock.advance(negative_ttl / 2);
    for (token, endpoint) in tokens {
        assert_answer(&app, &http, "/me", Caller::Api, Some(token), INVALID, token).await;
        assert_eq!(app.mock.requests(endpoint), 1, "{token}: still cached");
    }

    app.clock.advance(negative_ttl / 2 + Duration::from_secs(1));
    for (token, endpoint) in tokens {
        assert_answers(&app, &http, "/me", Some(token), INVALID, token).await;
        assert_eq!(app.mock.requests(endpoint), 2, "{token}: asked again once");
    }
}

#[tokio::test]
async fn a_rate_limited_provider_is_unavailable_not_a_rejection() {
    let app = bearer_app(|b| b).await;
    let http = client();
    let mock = &app.mock;
    for (token, endpoint) in [
        (mock.issue_user_token("alice", "read"), MockEndpoint::WhoAmI),
        (
            mock.issue_oauth_token("alice", &["openid", "profile", "email"], HOUR),
            MockEndpoint::Userinfo,
        ),
    ] {
        mock.add_fault(MockFault::Status {
            endpoint,
            status: 429,
        });
        let asked = mock.requests(endpoint);
        assert_answers(
            &app,
            &http,
            "/me",
            Some(&token),
            Outcome::Unavailable,
            "429",
        )
        .await;
        assert_eq!(
            mock.requests(endpoint),
            asked + 3,
            "{endpoint:?}: an unavailable answer is not cached"
        );

        mock.clear_faults();
        assert_answers(&app, &http, "/me", Some(&token), ALICE, "recovered").await;
        assert_eq!(mock.requests(endpoint), asked + 4);
    }
}

#[tokio::test]
async fn a_failing_or_slow_provider_is_unavailable_not_a_rejection() {
    let app = bearer_app(|b| b.with_timeout(Duration::from_secs(3))).await;
    let http = client();
    let token = app.mock.issue_user_token("alice", "read");
    let status = |status| MockFault::Status {
        endpoint: MockEndpoint::WhoAmI,
        status,
    };
    // Far beyond the 3-second timeout; only the API caller, to keep it short.
    let slow = MockFault::Delay {
        endpoint: MockEndpoint::WhoAmI,
        delay: Duration::from_secs(30),
    };
    for (fault, callers) in [
        (status(500), &CALLERS[..]),
        (status(502), &CALLERS[..]),
        (status(503), &CALLERS[..]),
        (slow, &[Caller::Api][..]),
    ] {
        app.mock.add_fault(fault.clone());
        let who = format!("{fault:?}");
        for &caller in callers {
            let outcome = Outcome::Unavailable;
            assert_answer(&app, &http, "/me", caller, Some(&token), outcome, &who).await;
        }
        app.mock.clear_faults();
    }
    assert_answers(&app, &http, "/me", Some(&token), ALICE, "recovered").await;
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_not_a_rejection() {
    // A port bound but not listening: connections are refused, and no other test can
    // take the port while this socket holds it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = socket.local_addr().unwrap();
    let app = bearer_app(|b| b.with_provider_url(format!("http://{closed}"))).await;
    let http = client();
    for token in ["hf_some_user_token", "hf_oauth_some_access_token"] {
        assert_answers(&app, &http, "/me", Some(token), Outcome::Unavailable, token).await;
    }
    drop(socket);
}

/// `n` concurrent `GET url` as API callers presenting `token`, each in its own task;
/// every status and body, once all have answered (a ceiling of 120 s, which only a
/// hang reaches).
async fn concurrently(
    http: &Client,
    url: &str,
    token: Option<&str>,
    n: usize,
) -> Vec<(StatusCode, String)> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, url, token) = (http.clone(), url.to_owned(), token.map(str::to_owned));
        requests.spawn(async move {
            let res = get(&http, &url, Caller::Api, token.as_deref()).await;
            (res.status(), res.text().await.unwrap())
        });
    }
    let all = async {
        let mut answers = Vec::with_capacity(n);
        while let Some(answer) = requests.join_next().await {
            answers.push(answer.unwrap());
        }
        answers
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("loopback requests finish well within 120 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_a_new_token_make_one_upstream_call() {
    const N: usize = 1000;
    let app = bearer_app(|b| b).await;
    // One client for all: its pool keeps a connection per concurrent request. Opening
    // them first (on the public page) makes the token's requests arrive close together.
    let http = Client::new();
    let home = concurrently(&http, &format!("{}/", app.base), None, N).await;
    assert!(home.iter().all(|(status, _)| *status == StatusCode::OK));

    let me = format!("{}/me", app.base);
    let mock = &app.mock;
    for (token, endpoint, username) in [
        (
            mock.issue_user_token("carol", "write"),
            MockEndpoint::WhoAmI,
            "carol",
        ),
        (
            mock.issue_oauth_token("bob", &["openid", "profile"], HOUR),
            MockEndpoint::Userinfo,
            "bob",
        ),
    ] {
        // A slow answer, so that the requests pile up behind the one upstream call.
        mock.add_fault(MockFault::Delay {
            endpoint,
            delay: Duration::from_millis(300),
        });
        let asked = mock.requests(endpoint);
        let answers = concurrently(&http, &me, Some(&token), N).await;
        assert_eq!(answers.len(), N);
        for (status, body) in answers {
            assert_eq!(status, StatusCode::OK, "{body}");
            let me: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(me["username"], username);
        }
        assert_eq!(
            mock.requests(endpoint),
            asked + 1,
            "{endpoint:?}: 1,000 requests, one upstream call"
        );
        mock.clear_faults();
    }
}
