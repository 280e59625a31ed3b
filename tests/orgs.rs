//! Organization access as Hugging Face has it, over real sockets: profiles that stay
//! current (removal and demotion take effect at the profile's maximum age and at the
//! next refresh), unmet security restrictions and `no_access` refused, organizations
//! asked for on the spot (`/login?org=…` → `orgIds` → consent), and bearer tokens that
//! act only in the organizations they may.

#![allow(unreachable_pub)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use reqwest::{StatusCode, header};
use tower_hf_auth::mock::{MockEndpoint, MockFault, MockOrg, MockUser};
use tower_hf_auth::{HfAuthLayer, OrgRole, RequireOrg};

/// Dora: admin of `acme` and `labs`, member of `closed` with `no_access`.
fn dora(acme: MockOrg) -> MockUser {
    MockUser::new("dora")
        .add_org(acme)
        .add_org(MockOrg::new("labs").with_role(OrgRole::Admin))
        .add_org(MockOrg::new("closed").with_role(OrgRole::NoAccess))
}

fn acme_admin() -> MockOrg {
    MockOrg::new("acme").with_role(OrgRole::Admin)
}

/// `GET {path}` as an API client; the status and the JSON body.
async fn api(app: &TestApp, browser: &Browser, path: &str) -> (StatusCode, serde_json::Value) {
    let res = browser.get_json(&format!("{}{path}", app.base)).await;
    let status = res.status();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn userinfo_calls(app: &TestApp) -> usize {
    app.mock.requests(MockEndpoint::Userinfo)
}

/// Polls `/acme/admin` as an API client until it answers `want` (a re-read that the
/// first request waited a second for may land on a later one), within 10 s.
async fn until_status(app: &TestApp, browser: &Browser, path: &str, want: StatusCode) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = api(app, browser, path).await;
        if status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} still answers {status}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demotion_and_removal_take_effect_at_the_profile_max_age() {
    let mock = mock_with(|b| b.add_user(dora(acme_admin()))).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;
    assert_eq!(api(&app, &browser, "/acme/admin").await.0, StatusCode::OK);

    // Demoted on Hugging Face: the fresh profile still says admin...
    app.mock
        .update_user(dora(MockOrg::new("acme").with_role(OrgRole::Read)));
    let before = userinfo_calls(&app);
    assert_eq!(api(&app, &browser, "/acme/admin").await.0, StatusCode::OK);
    assert_eq!(
        userinfo_calls(&app),
        before,
        "a fresh profile is not re-read"
    );

    // ...until it is older than the maximum age (1 hour): then it is read again.
    app.clock.advance(Duration::from_secs(3601));
    until_status(&app, &browser, "/acme/admin", StatusCode::FORBIDDEN).await;
    assert_eq!(
        userinfo_calls(&app),
        before + 1,
        "one re-read for the session"
    );
    let (_, body) = api(&app, &browser, "/acme/admin").await;
    assert_eq!(body["error"], "org_required");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Your role in `acme` is `read`"),
        "{body}"
    );

    // Removed from the organization: gone at the next re-read.
    let mut without_acme = MockUser::new("dora");
    without_acme = without_acme.add_org(MockOrg::new("labs").with_role(OrgRole::Admin));
    app.mock.update_user(without_acme);
    app.clock.advance(Duration::from_secs(3601));
    until_status(&app, &browser, "/acme/admin", StatusCode::FORBIDDEN).await;
    let page = browser.get(&format!("{}/orgs/acme", app.base)).await;
    let text = page.text().await.unwrap();
    assert!(text.contains("Not a member"), "{text}");
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("dora"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_reads_the_profile_again() {
    let mock = mock_with(|b| {
        b.add_user(dora(acme_admin()))
            .with_refresh_tokens(true)
            .with_token_lifetime(Duration::from_secs(600))
    })
    .await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;
    app.mock
        .update_user(dora(MockOrg::new("acme").with_role(OrgRole::Write)));
    let (tokens, infos) = (app.mock.requests(MockEndpoint::Token), userinfo_calls(&app));
    // Inside the refresh window (5 minutes before expiry), far from the profile's age.
    app.clock.advance(Duration::from_secs(400));
    until_status(&app, &browser, "/acme/admin", StatusCode::FORBIDDEN).await;
    assert_eq!(
        app.mock.requests(MockEndpoint::Token),
        tokens + 1,
        "one refresh"
    );
    assert_eq!(userinfo_calls(&app), infos + 1, "one profile read with it");
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("dora"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outage_during_a_profile_reread_signs_nobody_out() {
    let mock = mock_with(|b| b.add_user(dora(acme_admin()))).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;
    app.mock
        .update_user(dora(MockOrg::new("acme").with_role(OrgRole::Read)));
    app.mock.add_fault(MockFault::Status {
        endpoint: MockEndpoint::Userinfo,
        status: 503,
    });
    app.clock.advance(Duration::from_secs(3601));
    let before = userinfo_calls(&app);
    for _ in 0..3 {
        // Served with the profile it has, while the provider cannot answer.
        assert_eq!(api(&app, &browser, "/acme/admin").await.0, StatusCode::OK);
        assert_eq!(whoami(&app, &browser).await.as_deref(), Some("dora"));
    }
    assert!(userinfo_calls(&app) > before, "the re-read was tried");
    app.mock.clear_faults();
    until_status(&app, &browser, "/acme/admin", StatusCode::FORBIDDEN).await;
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("dora"));
}

/// A router with `RequireOrg::member("closed")` and `RequireOrg::member("acme")`.
fn member_routes(config: tower_hf_auth::HfAuthConfig) -> Router {
    Router::new()
        .route(
            "/closed",
            get(|| async { "closed" }).route_layer(RequireOrg::member("closed")),
        )
        .route(
            "/acme",
            get(|| async { "acme" }).route_layer(RequireOrg::member("acme")),
        )
        .route("/me", get(|| async { "{}" }))
        .layer(HfAuthLayer::new(config))
}

#[tokio::test]
async fn no_access_is_not_membership() {
    let mock = mock_with(|b| b.add_user(dora(acme_admin()))).await;
    let app = serve(mock, |b| b, member_routes).await;
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "dora", "/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(api(&app, &browser, "/acme").await.0, StatusCode::OK);
    let (status, body) = api(&app, &browser, "/closed").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "org_required");
}

#[tokio::test]
async fn unmet_security_restrictions_are_refused_with_what_to_do() {
    let restricted = acme_admin().with_security_restrictions(vec!["mfa".into(), "sso".into()]);
    let mock = mock_with(|b| b.add_user(dora(restricted))).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;

    let (status, body) = api(&app, &browser, "/acme/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "org_restricted");
    let text = body["error_description"].as_str().unwrap();
    assert!(text.contains("two-factor authentication"), "{text}");
    assert!(text.contains("single sign-on"), "{text}");

    let page = browser.get(&format!("{}/acme/admin", app.base)).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("https://huggingface.co/settings/authentication"),
        "{html}"
    );

    let grpc = browser
        .http
        .get(format!("{}/acme/admin", app.base))
        .header(header::CONTENT_TYPE, "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "7");
    let message = grpc.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("two-factor"), "{message}");
}

#[tokio::test]
async fn authorized_orgs_refuse_a_restricted_member_at_sign_in() {
    let restricted = acme_admin().with_security_restrictions(vec!["mfa".into()]);
    let mock = mock_with(|b| b.add_user(dora(restricted))).await;
    let app = app_with(mock, |b| b.with_authorized_orgs(["acme"])).await;
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "dora", "/").await;
    assert_rejected(
        &app,
        &browser,
        res,
        StatusCode::FORBIDDEN,
        "two-factor authentication",
    )
    .await;
}

#[tokio::test]
async fn an_org_not_granted_is_asked_for_on_the_spot() {
    let ungranted = acme_admin().with_granted(false);
    let acme_id = ungranted.sub().to_owned();
    let mock = mock_with(|b| b.add_user(dora(ungranted))).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;

    // The guard cannot see a role: the page says why and links to ask for acme.
    let page = browser.get(&format!("{}/acme/admin", app.base)).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(html.contains("was not granted access"), "{html}");
    assert!(html.contains("settings/connected-applications"), "{html}");
    let link = "/login?return_to=%2Facme%2Fadmin&amp;org=acme";
    assert!(html.contains(link), "{html}");

    // The link asks Hugging Face for acme (`orgIds`); consenting grants it.
    let res = browser
        .get(&format!(
            "{}/login?return_to=%2Facme%2Fadmin&org=acme",
            app.base
        ))
        .await;
    let authorize_url = location(&res);
    assert_eq!(
        query_param(&authorize_url, "orgIds").as_deref(),
        Some(&*acme_id)
    );
    let callback = authorize(&browser, &authorize_url, "dora").await;
    let res = browser.get(&callback).await;
    assert_eq!(location(&res), "/acme/admin");
    assert_eq!(api(&app, &browser, "/acme/admin").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_org_the_user_is_not_in_sends_no_org_ids() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "bob").await;
    let res = browser.get(&format!("{}/login?org=acme", app.base)).await;
    let authorize_url = location(&res);
    assert_eq!(query_param(&authorize_url, "orgIds"), None);
}

/// `GET {path}` as an API client sending `token`: the status.
async fn bearer_status(app: &TestApp, path: &str, token: String) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .header(header::ACCEPT, "application/json")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Dora: admin of `acme`, and admin of `labs`, which she did not grant to the app.
fn dora_with_labs_not_granted() -> MockUser {
    let labs = MockOrg::new("labs")
        .with_role(OrgRole::Admin)
        .with_granted(false);
    MockUser::new("dora").add_org(acme_admin()).add_org(labs)
}

#[tokio::test]
async fn bearer_tokens_act_only_in_the_orgs_they_may() {
    let mock = mock_with(|b| b.add_user(dora_with_labs_not_granted())).await;
    let app = app_with(mock, |b| b.with_bearer_tokens(true)).await;
    let as_token = |token| bearer_status(&app, "/acme/admin", token);
    let mock = &app.mock;
    // A classic write token acts as its user.
    assert_eq!(
        as_token(mock.issue_user_token("dora", "write")).await,
        StatusCode::OK
    );
    // Fine-grained: nothing in acme, read in acme, write in acme (admin needs more).
    let none = mock.issue_fine_grained_token("dora", &[]);
    assert_eq!(as_token(none).await, StatusCode::FORBIDDEN);
    let read = mock.issue_fine_grained_token("dora", &[("acme", &["repo.content.read"])]);
    assert_eq!(as_token(read).await, StatusCode::FORBIDDEN);
    // An OAuth token acts in acme (granted to the app) with the user's role.
    let granted = mock.issue_oauth_token("dora", &["openid"], Duration::from_secs(600));
    assert_eq!(as_token(granted).await, StatusCode::OK);
}

#[tokio::test]
async fn bearer_org_reach_matches_the_documented_table() {
    let mock = mock_with(|b| b.add_user(dora_with_labs_not_granted())).await;
    let app = serve(
        mock,
        |b| b.with_bearer_tokens(true),
        |config| {
            Router::new()
                .route(
                    "/labs",
                    get(|| async { "labs" }).route_layer(RequireOrg::member("labs")),
                )
                .route(
                    "/acme/write",
                    get(|| async { "w" }).route_layer(RequireOrg::role("acme", OrgRole::Write)),
                )
                .layer(HfAuthLayer::new(config))
        },
    )
    .await;
    let status = |path, token| bearer_status(&app, path, token);
    let mock = &app.mock;
    // OAuth at userinfo: `labs` was not granted to the app.
    let oauth = mock.issue_oauth_token("dora", &["openid", "profile"], Duration::from_secs(600));
    assert_eq!(status("/labs", oauth).await, StatusCode::FORBIDDEN);
    // A classic read token acts as its user everywhere.
    let classic = mock.issue_user_token("dora", "read");
    assert_eq!(status("/labs", classic).await, StatusCode::OK);
    // Fine-grained with write permission in acme: capped at write, enough here.
    let write = mock.issue_fine_grained_token("dora", &[("acme", &["repo.write"])]);
    assert_eq!(status("/acme/write", write).await, StatusCode::OK);
    let read = mock.issue_fine_grained_token("dora", &[("acme", &["repo.content.read"])]);
    assert_eq!(status("/acme/write", read).await, StatusCode::FORBIDDEN);
    let elsewhere = mock.issue_fine_grained_token("dora", &[("acme", &["repo.write"])]);
    assert_eq!(status("/labs", elsewhere).await, StatusCode::FORBIDDEN);
}
