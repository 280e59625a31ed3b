//! The mock in its default mode behaves like huggingface.co, and the crate signs in
//! against it: no RFC 9207 `iss` on callbacks, PKCE optional for confidential clients,
//! `openid` optional, a per-app scope set, a Space's redirect rule, whoami's rate limit.
//! (The other suites run the mock in strict mode; see `tests/common`.)

#![allow(unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::{StatusCode, header};
use tower_hf_auth::mock::{MockEndpoint, MockHfProvider};

#[tokio::test]
async fn the_app_signs_in_against_the_default_mock_without_iss() {
    let mock = faithful_mock_with(|b| b).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/me").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert_eq!(
        query_param(&callback, "iss"),
        None,
        "huggingface.co sends none"
    );
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/me");
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn the_strict_mock_sends_iss_and_the_app_checks_it() {
    let mock = mock_with(|b| b).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert_eq!(query_param(&callback, "iss"), Some(app.mock.issuer()));
    // Without the `iss` the provider advertises, the callback is refused.
    let stripped = with_param(&callback, "iss", None);
    let res = browser.get(&stripped).await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        "name its issuer",
    )
    .await;
}

/// The authorize URL of a confidential client that sends neither PKCE nor `openid`.
fn bare_authorize(mock: &MockHfProvider, redirect_uri: &str, scope: &str) -> String {
    reqwest::Url::parse_with_params(
        &format!("{}/oauth/authorize", mock.issuer()),
        [
            ("response_type", "code"),
            ("client_id", mock.client_id()),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", "s"),
            ("mock_user", "alice"),
        ],
    )
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn a_confidential_client_may_skip_pkce_and_openid() {
    let mock = faithful_mock_with(|b| b).await;
    let browser = Browser::new();
    let redirect_uri = "http://127.0.0.1:9/login/callback";
    let res = browser
        .get(&bare_authorize(&mock, redirect_uri, "profile"))
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let back = location(&res);
    let code = query_param(&back, "code").expect("a code without PKCE");
    let answer: serde_json::Value = browser
        .http
        .post(format!("{}/oauth/token", mock.issuer()))
        .basic_auth(mock.client_id(), mock.client_secret())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["access_token"].is_string(), "{answer}");
    assert!(
        answer.get("id_token").is_none(),
        "no ID token without openid: {answer}"
    );

    // The strict mock refuses the same request.
    let strict = mock_with(|b| b).await;
    let res = browser
        .get(&bare_authorize(&strict, redirect_uri, "profile"))
        .await;
    let back = location(&res);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn a_scope_outside_the_apps_set_is_a_clear_page_in_the_app() {
    let mock = faithful_mock_with(|b| b.with_allowed_scopes(["openid", "profile", "email"])).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    // `/repos` needs `read-repos`: the guard asks for it, the provider refuses it.
    let res = browser.get(&format!("{}/repos", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = absolute(&app, &location(&res));
    let authorize_url = location(&browser.get(&login).await);
    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("invalid_scope")
    );
    let page = browser.get(&callback).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(html.contains("invalid_scope"), "{html}");
    assert!(html.contains("read-repos is not allowed"), "{html}");
    // The session from before is untouched.
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_space_accepts_any_redirect_uri_on_its_host() {
    let mock = faithful_mock_with(|b| b.with_space_host("alice-app.hf.space")).await;
    let browser = Browser::new();
    for (uri, accepted) in [
        ("https://alice-app.hf.space/login/callback", true),
        ("https://alice-app.hf.space/other/callback", true),
        ("http://alice-app.hf.space/login/callback", false),
        ("https://evil.example/login/callback", false),
    ] {
        let res = browser.get(&bare_authorize(&mock, uri, "openid")).await;
        assert_eq!(res.status() == StatusCode::FOUND, accepted, "{uri}");
        if accepted {
            assert!(location(&res).starts_with(uri), "{uri}");
        }
    }
}

#[tokio::test]
async fn whoamis_rate_limit_reaches_api_clients_as_503_with_retry_after() {
    let mock = faithful_mock_with(|b| b.with_whoami_rate_limit(2, Duration::from_secs(60))).await;
    let app = app_with(mock, |b| b.with_bearer_tokens(true)).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        // A new token each time: the bearer cache cannot answer.
        let token = app.mock.issue_user_token("alice", "read");
        let res = client
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        statuses.push(res.status());
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            let retry: u64 = res.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::SERVICE_UNAVAILABLE
        ]
    );
    assert_eq!(app.mock.requests(MockEndpoint::WhoAmI), 3);
}

#[tokio::test]
async fn users_from_a_file_sign_in_with_their_orgs() {
    let dir = std::env::temp_dir().join(format!("hf-mock-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users.json");
    std::fs::write(
        &path,
        r#"{"users": [{"username": "dora", "name": "Dora Explorer",
            "orgs": [{"name": "maps", "role": "admin", "plan": "team"}]}]}"#,
    )
    .unwrap();
    let mock = faithful_mock_with(|b| b.add_users_from_file(&path).unwrap()).await;
    assert_eq!(mock.users(), ["dora"]);
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;
    let page = browser.get(&format!("{}/orgs/maps", app.base)).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("is a member (role: admin)"), "{html}");

    std::fs::write(
        &path,
        r#"{"users": [{"username": "dora", "orgs": [{"name": "m", "role": "boss"}]}]}"#,
    )
    .unwrap();
    let err = MockHfProvider::builder()
        .add_users_from_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("users.json: users[0].orgs[0].role `boss`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
