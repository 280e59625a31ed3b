//! The browser sign-in flow end to end: the example app and the mock provider on real
//! sockets, a cookie-keeping client that does not follow redirects.

#![allow(unreachable_pub)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{StatusCode, header};
use tower_hf_auth::mock::{MockEndpoint, MockFault};

#[tokio::test]
async fn happy_path_signs_in_with_the_right_user_and_honours_return_path() {
    let app = app().await;
    let browser = Browser::new();
    assert_eq!(whoami(&app, &browser).await, None);

    let authorize_url = start_login(&app, &browser, "/me?tab=orgs").await;
    let url = reqwest::Url::parse(&authorize_url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], app.mock.client_id());
    assert_eq!(q["redirect_uri"], format!("{}/login/callback", app.base));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 22, "at least 128 bits of state");
    assert!(!q["nonce"].is_empty());
    assert_eq!(q["scope"], "openid profile email");

    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert!(
        callback.starts_with(&format!("{}/login/callback?", app.base)),
        "{callback}"
    );
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/me?tab=orgs");
    let set_cookies: Vec<_> = res.headers().get_all(header::SET_COOKIE).iter().collect();
    let session = set_cookies
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("hf_auth="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(!session.contains("hf_oauth_"), "the token is encrypted");

    let me: serde_json::Value = browser
        .get_json(&format!("{}/me", app.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["is_pro"], true);
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["id"].as_str().unwrap().len(), 24);
    assert_eq!(
        me["scopes"],
        serde_json::json!(["openid", "profile", "email"])
    );
    let acme = me["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["preferred_username"] == "acme")
        .unwrap();
    assert_eq!(acme["roleInOrg"], "admin");
    assert_eq!(acme["plan"], "team");
    assert!(me.get("access_token").is_none() && !me.to_string().contains("hf_oauth_"));

    let home = browser
        .get(&format!("{}/", app.base))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("@alice") && home.contains("Sign out"),
        "{home}"
    );
}

#[tokio::test]
async fn signed_out_home_offers_sign_in_and_me_needs_it() {
    let app = app().await;
    let browser = Browser::new();
    let home = browser
        .get(&format!("{}/", app.base))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("Sign in with Hugging Face") && home.contains("href=\"/login"),
        "{home}"
    );

    let res = browser.get(&format!("{}/me", app.base)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "browsers are sent to sign in"
    );
    assert_eq!(location(&res), "/login?return_to=%2Fme");

    let res = browser.get_json(&format!("{}/me", app.base)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
}

#[tokio::test]
async fn two_tabs_can_sign_in_at_once() {
    let app = app().await;
    let browser = Browser::new();
    let first = start_login(&app, &browser, "/first").await;
    let second = start_login(&app, &browser, "/second").await;
    let second_cb = authorize(&browser, &second, "bob").await;
    let first_cb = authorize(&browser, &first, "alice").await;

    let res = browser.get(&second_cb).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/second");
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("bob"));

    let res = browser.get(&first_cb).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the other tab's sign-in still completes"
    );
    assert_eq!(location(&res), "/first");
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn pending_sign_ins_are_capped() {
    let app = app().await;
    let browser = Browser::new();
    let oldest = start_login(&app, &browser, "/0").await;
    for i in 1..8 {
        start_login(&app, &browser, &format!("/{i}")).await;
    }
    let pending = browser
        .cookies(&format!("{}/login/callback", app.base))
        .split("; ")
        .filter(|c| c.starts_with("hf_auth_login_"))
        .count();
    assert_eq!(pending, 5, "at most five pending sign-ins per browser");
    let cb = authorize(&browser, &oldest, "alice").await;
    let res = browser.get(&cb).await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        "sign in again",
    )
    .await;
}

#[tokio::test]
async fn missing_wrong_and_reused_state_are_rejected() {
    let app = app().await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;

    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let state = pairs.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    let without_state: Vec<_> = pairs
        .iter()
        .filter(|(k, _)| k != "state")
        .cloned()
        .collect();
    url.query_pairs_mut().clear().extend_pairs(&without_state);
    let res = browser.get(url.as_str()).await;
    assert_rejected(&app, &browser, res, StatusCode::BAD_REQUEST, "no state").await;

    let mut wrong = state.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'A' { b'B' } else { b'A' };
    let forged = callback.replace(&state, std::str::from_utf8(&wrong).unwrap());
    let res = browser.get(&forged).await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        "does not match",
    )
    .await;

    let res = browser
        .get(&format!("{}/login/callback?state=x&code=y", app.base))
        .await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        "malformed state",
    )
    .await;
}

#[tokio::test]
async fn a_replayed_callback_is_rejected_even_with_the_old_cookie() {
    let app = app().await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    let pending_cookies = browser.cookies(&callback);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);

    // An attacker who captured the callback URL and the pending cookie replays both.
    let attacker = Browser::new();
    let res = attacker
        .http
        .get(&callback)
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, pending_cookies)
        .send()
        .await
        .unwrap();
    assert_rejected(
        &app,
        &attacker,
        res,
        StatusCode::BAD_REQUEST,
        "already used",
    )
    .await;
    // And the browser that signed in: its pending cookie is gone.
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_reused_code_is_rejected() {
    let app = app().await;
    let browser = Browser::new();
    let first = start_login(&app, &browser, "/").await;
    let first_cb = authorize(&browser, &first, "alice").await;
    let code = reqwest::Url::parse(&first_cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(browser.get(&first_cb).await.status(), StatusCode::SEE_OTHER);
    browser.get(&format!("{}/logout", app.base)).await;

    let second = start_login(&app, &browser, "/").await;
    let second_cb = authorize(&browser, &second, "bob").await;
    let new_code = reqwest::Url::parse(&second_cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let replay = second_cb.replace(&new_code, &code);
    let res = browser.get(&replay).await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::BAD_GATEWAY,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn declined_consent_is_explained() {
    let app = app().await;
    app.mock
        .add_fault(MockFault::AuthorizeError("access_denied".into()));
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_rejected(&app, &browser, res, StatusCode::FORBIDDEN, "cancelled").await;
}

/// Each ID token fault is refused with a 502 page, and a normal sign-in works after.
#[tokio::test]
async fn hostile_id_tokens_are_rejected() {
    let app = app().await;
    let cases: Vec<(MockFault, &str)> = vec![
        (MockFault::IdTokenBadSignature, "signature"),
        (MockFault::IdTokenAlgNone, "none"),
        (MockFault::IdTokenHs256WithPublicKey, "HS256"),
        (
            MockFault::IdTokenIssuer("https://evil.example".into()),
            "evil.example",
        ),
        (
            MockFault::IdTokenAudience(vec!["someone-else".into()]),
            "audience",
        ),
        (
            MockFault::IdTokenExpiredBy(Duration::from_secs(3600)),
            "expired",
        ),
        (
            MockFault::IdTokenNonce(Some("not-the-nonce".into())),
            "nonce",
        ),
        (MockFault::IdTokenNonce(None), "nonce"),
        (
            MockFault::UserinfoSub("ffffffffffffffffffffffff".into()),
            "different user",
        ),
        (MockFault::MissingIdToken, "no ID token"),
        (MockFault::TokenType("mac".into()), "mac"),
    ];
    for (fault, needle) in cases {
        let label = format!("{fault:?}");
        app.mock.add_fault(fault);
        let browser = Browser::new();
        let res = sign_in(&app, &browser, "alice", "/").await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{label}");
        let body = res.text().await.unwrap();
        assert!(
            body.to_lowercase().contains(&needle.to_lowercase()),
            "{label}: {body}"
        );
        assert_eq!(whoami(&app, &browser).await, None, "{label}: no session");
        app.mock.clear_faults();
        signed_in(&app, &Browser::new(), "alice").await;
    }
}

#[tokio::test]
async fn unknown_kid_is_rejected_and_rotated_keys_are_picked_up_without_restart() {
    let app = app().await;
    signed_in(&app, &Browser::new(), "alice").await;
    let jwks_before = app.mock.requests(MockEndpoint::Jwks);

    app.mock.add_fault(MockFault::IdTokenUnknownKid);
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_rejected(&app, &browser, res, StatusCode::BAD_GATEWAY, "key").await;
    assert!(
        app.mock.requests(MockEndpoint::Jwks) > jwks_before,
        "an unknown kid refetches the keys"
    );
    app.mock.clear_faults();

    app.mock.rotate_keys();
    signed_in(&app, &Browser::new(), "bob").await;
}

/// With the key-set re-fetch interval at its default of 10 s (the other tests switch
/// it off), a run of ID tokens naming unknown keys does not make a fetch each: at most
/// one per 10 s since the first fetch (which a sign-in just made).
#[tokio::test]
async fn unknown_kids_do_not_cause_a_key_set_fetch_storm() {
    const INTERVAL: Duration = Duration::from_secs(10);
    let app = app_with(mock().await, |b| b.with_jwks_min_refresh_interval(INTERVAL)).await;
    let started = Instant::now();
    signed_in(&app, &Browser::new(), "alice").await;
    assert_eq!(app.mock.requests(MockEndpoint::Jwks), 1);

    app.mock.add_fault(MockFault::IdTokenUnknownKid);
    for _ in 0..10 {
        let browser = Browser::new();
        let res = sign_in(&app, &browser, "alice", "/").await;
        assert_rejected(&app, &browser, res, StatusCode::BAD_GATEWAY, "key").await;
    }
    let windows = started.elapsed().as_secs() / INTERVAL.as_secs();
    let refetches = app.mock.requests(MockEndpoint::Jwks) - 1;
    assert!(
        refetches as u64 <= windows,
        "{refetches} key set re-fetches for 10 unknown kids in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn wrong_issuer_in_the_authorization_response_is_rejected() {
    let app = app().await;
    app.mock
        .add_fault(MockFault::AuthorizeIss("https://evil.example".into()));
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_rejected(&app, &browser, res, StatusCode::BAD_REQUEST, "evil.example").await;
}

#[tokio::test]
async fn discovery_issuer_mismatch_names_both_issuers() {
    let mock = mock().await;
    mock.add_fault(MockFault::DiscoveryIssuer("https://evil.example".into()));
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    let res = browser.get(&format!("{}/login", app.base)).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("evil.example") && body.contains(&app.mock.issuer()),
        "{body}"
    );
    app.mock.clear_faults();
    signed_in(&app, &Browser::new(), "alice").await;
}

#[tokio::test]
async fn provider_errors_are_pages_not_crashes() {
    let app = app().await;
    app.mock.add_fault(MockFault::Status {
        endpoint: MockEndpoint::Token,
        status: 500,
    });
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert!(res.status().is_server_error(), "{}", res.status());
    assert_rejected(&app, &browser, res, StatusCode::SERVICE_UNAVAILABLE, "500").await;
}

#[tokio::test]
async fn a_slow_provider_is_cut_off_at_the_timeout() {
    let app = app_with(mock().await, |b| b.with_timeout(Duration::from_secs(3))).await;
    app.mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_secs(60),
    });
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    let started = Instant::now();
    let res = browser.get(&callback).await;
    let took = started.elapsed();
    // Cut off after the 3 s timeout: not sooner, and far from the provider's 60 s (a
    // ceiling generous for a loaded machine).
    assert!(took >= Duration::from_secs(3), "answered after {took:?}");
    assert!(took < Duration::from_secs(15), "answered after {took:?}");
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::GATEWAY_TIMEOUT,
        "did not answer in time",
    )
    .await;
}

#[tokio::test]
async fn open_redirect_forms_fall_back_to_root() {
    let app = app().await;
    for target in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\r\nSet-Cookie: pwned=1",
        "/%0d%0aSet-Cookie:%20pwned=1",
    ] {
        let browser = Browser::new();
        let res = sign_in(&app, &browser, "alice", target).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{target:?}");
        assert_eq!(location(&res), "/", "{target:?}");
        assert!(
            res.headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .all(|c| !c.to_str().unwrap().contains("pwned"))
        );
    }
}

#[tokio::test]
async fn logout_clears_the_session_by_get_and_post() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let res = browser.get(&format!("{}/logout", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    assert_eq!(whoami(&app, &browser).await, None);

    signed_in(&app, &browser, "bob").await;
    let res = browser
        .http
        .post(format!("{}/logout", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &browser).await, None);
}

#[tokio::test]
async fn another_site_cannot_sign_users_out() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let logout = format!("{}/logout", app.base);
    for request in [
        browser.http.get(&logout).header("accept", "text/html"),
        browser.http.post(&logout),
    ] {
        let res = request
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get("set-cookie").is_none(), "nothing cleared");
        let page = res.text().await.unwrap();
        assert!(
            page.contains("Another site asked to sign you out"),
            "{page}"
        );
        assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    }
    // The page's own link, followed from the app, signs out.
    let res = browser
        .http
        .get(&logout)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &browser).await, None);
}

/// Another provider error is named on the page with the provider's own description
/// (tamed), so the user and the app's developer see why.
#[tokio::test]
async fn a_provider_error_shows_its_description() {
    let app = app().await;
    app.mock
        .add_fault(MockFault::AuthorizeError("temporarily_unavailable".into()));
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::FORBIDDEN,
        "(temporarily_unavailable). mock fault: authorize error",
    )
    .await;
}

/// Incremental consent passes on only what RFC 6749 allows as a scope token, at most
/// 64 characters: a scope with a quote or a backslash, or a longer one, is dropped.
#[tokio::test]
async fn login_passes_on_only_scope_tokens() {
    let app = app().await;
    let long = "x".repeat(65);
    let asked = format!("read-repos a\"b c\\d {long} {}", &long[..64]);
    let url = reqwest::Url::parse_with_params(&format!("{}/login", app.base), [("scope", &asked)])
        .unwrap();
    let res = Browser::new().get(url.as_str()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let scope = query_param(&location(&res), "scope").unwrap();
    let scopes: Vec<&str> = scope.split(' ').collect();
    assert!(scopes.contains(&"read-repos"), "{scope}");
    assert!(
        scopes.contains(&&long[..64]),
        "64 characters are allowed: {scope}"
    );
    assert!(!scope.contains('"') && !scope.contains('\\'), "{scope}");
    assert!(!scopes.contains(&long.as_str()), "{scope}");
}

/// A callback whose state does not match the pending sign-in it names deletes that
/// pending cookie, like every other failed callback: the browser holds no pending
/// sign-in afterwards.
#[tokio::test]
async fn a_mismatched_state_deletes_its_pending_cookie() {
    let app = app().await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    let pending_url = format!("{}/login/callback", app.base);
    assert!(browser.cookies(&pending_url).contains("hf_auth_login_"));
    let state = query_param(&callback, "state").unwrap();
    let mut wrong = state.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'A' { b'B' } else { b'A' };
    let forged = callback.replace(&state, std::str::from_utf8(&wrong).unwrap());
    let res = browser.get(&forged).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let deleted = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .any(|c| c.contains("hf_auth_login_") && c.contains("Max-Age=0"));
    assert!(deleted, "the pending cookie is deleted");
    assert!(!browser.cookies(&pending_url).contains("hf_auth_login_"));
}
