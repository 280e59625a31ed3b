//! Guards over real sockets: the example app's `/repos` (`RequireScopes`),
//! `/acme/admin` (`RequireOrg`) and `/orgs/{org}`, for browsers, API and gRPC callers.
#![allow(unreachable_pub)]

mod common;

use common::*;
use reqwest::{Response, StatusCode, header};
use tower_hf_auth::mock::MockUser;

async fn api(browser: &Browser, url: &str) -> Response {
    browser.get_json(url).await
}

async fn grpc(browser: &Browser, url: &str) -> Response {
    browser
        .http
        .get(url)
        .header(header::CONTENT_TYPE, "application/grpc")
        .send()
        .await
        .unwrap()
}

fn grpc_status(res: &Response) -> &str {
    assert_eq!(res.status(), StatusCode::OK, "gRPC errors are HTTP 200");
    res.headers()["grpc-status"].to_str().unwrap()
}

#[tokio::test]
async fn scope_guard_answers_each_caller() {
    let app = app().await;
    let repos = format!("{}/repos", app.base);
    let browser = Browser::new();

    // Signed out.
    let res = browser.get(&repos).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?return_to=%2Frepos");
    assert_eq!(
        api(&browser, &repos).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(grpc_status(&grpc(&browser, &repos).await), "16");

    // Signed in without `read-repos`.
    signed_in(&app, &browser, "alice").await;
    let res = browser.get(&repos).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "browsers are asked for the scope"
    );
    assert_eq!(location(&res), "/login?return_to=%2Frepos&scope=read-repos");
    let res = api(&browser, &repos).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"insufficient_scope\", scope=\"read-repos\""
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(grpc_status(&grpc(&browser, &repos).await), "7");
}

/// Follows the guard's redirect through the provider and back.
async fn consent(app: &TestApp, browser: &Browser, user: &str, url: &str) -> Response {
    let res = browser.get(url).await;
    let login = absolute(app, &location(&res));
    let res = browser.get(&login).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize_url = location(&res);
    assert!(authorize_url.contains("read-repos"), "{authorize_url}");
    let callback = authorize(browser, &authorize_url, user).await;
    let res = browser.get(&callback).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(location(&res), "/repos");
    browser.get(url).await
}

#[tokio::test]
async fn incremental_consent_grants_the_missing_scope() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let repos = format!("{}/repos", app.base);
    let res = consent(&app, &browser, "alice", &repos).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("read-repos"));
    let me: serde_json::Value = browser
        .get_json(&format!("{}/me", app.base))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        me["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "read-repos")
    );
}

#[tokio::test]
async fn a_declined_scope_gets_a_page_not_a_loop() {
    let mock = mock_with(|b| {
        b.add_user(MockUser::new("dora").with_granted_scopes(Some(vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
        ])))
    })
    .await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dora").await;
    let repos = format!("{}/repos", app.base);
    let res = consent(&app, &browser, "dora", &repos).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no second redirect");
    let body = res.text().await.unwrap();
    assert!(
        body.contains("read-repos") && body.contains("Try again"),
        "{body}"
    );
}

#[tokio::test]
async fn org_role_guard_answers_each_caller() {
    let app = app().await;
    let admin = format!("{}/acme/admin", app.base);

    let nobody = Browser::new();
    assert_eq!(
        location(&nobody.get(&admin).await),
        "/login?return_to=%2Facme%2Fadmin"
    );
    assert_eq!(
        api(&nobody, &admin).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let alice = Browser::new();
    signed_in(&app, &alice, "alice").await;
    let res = alice.get(&admin).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "@alice administers acme");

    for (user, why) in [("carol", "role too low"), ("bob", "not a member")] {
        let browser = Browser::new();
        signed_in(&app, &browser, user).await;
        let res = browser.get(&admin).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{user}: {why}");
        let page = res.text().await.unwrap();
        assert!(
            page.contains("`admin`") && page.contains("`acme`") && page.contains("consent"),
            "{page}"
        );
        let res = api(&browser, &admin).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "org_required");
        assert_eq!(grpc_status(&grpc(&browser, &admin).await), "7");
    }
}

#[tokio::test]
async fn org_pages_show_membership() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "bob").await;
    let res = browser.get(&format!("{}/orgs/acme", app.base)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    signed_in(&app, &browser, "alice").await;
    let res = browser.get(&format!("{}/orgs/acme", app.base)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("role: admin"));
}

#[tokio::test]
async fn authorized_orgs_restrict_the_whole_app() {
    let app = app_with(mock().await, |b| b.with_authorized_orgs(["acme"])).await;
    let outsider = Browser::new();
    let res = sign_in(&app, &outsider, "bob", "/").await;
    assert_rejected(
        &app,
        &outsider,
        res,
        StatusCode::FORBIDDEN,
        "only for members of `acme`",
    )
    .await;
    signed_in(&app, &Browser::new(), "carol").await;
}

#[tokio::test]
async fn guards_stack_and_callers_can_be_fixed() {
    use axum::{Router, routing::get};
    use tower_hf_auth::{HfAuthLayer, OrgRole, RequireOrg, RequireScopes, RequireUser};

    let app = serve(
        mock().await,
        |b| b,
        |config| {
            Router::new()
                .route(
                    "/me",
                    get(|user: tower_hf_auth::HfUser| async move { axum::Json(user) }),
                )
                .route(
                    "/both",
                    get(|| async { "ok" })
                        .route_layer(RequireScopes::all(["email"]))
                        .route_layer(RequireOrg::role("acme", OrgRole::Write)),
                )
                .route(
                    "/pro",
                    get(|| async { "pro" })
                        .route_layer(RequireUser::new("a PRO subscription", |u| u.is_pro())),
                )
                .route(
                    "/api",
                    get(|| async { "api" })
                        .route_layer(RequireScopes::all(["read-repos"]).for_api()),
                )
                .route(
                    "/rpc",
                    get(|| async { "rpc" })
                        .route_layer(RequireScopes::all(["read-repos"]).for_grpc()),
                )
                .layer(HfAuthLayer::new(config))
        },
    )
    .await;
    let url = |p: &str| format!("{}{p}", app.base);

    let nobody = Browser::new();
    let res = nobody.get(&url("/api")).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "for_api: no redirect even for a browser"
    );
    assert_eq!(grpc_status(&nobody.get(&url("/rpc")).await), "16");

    let bob = Browser::new();
    signed_in(&app, &bob, "bob").await;
    assert_eq!(
        bob.get(&url("/both")).await.status(),
        StatusCode::FORBIDDEN,
        "bob is in no org"
    );
    let res = bob.get(&url("/pro")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("a PRO subscription"));
    let res = bob.get(&url("/api")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    let carol = Browser::new();
    signed_in(&app, &carol, "carol").await;
    let res = carol.get(&url("/both")).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "write in acme and email granted"
    );

    let alice = Browser::new();
    signed_in(&app, &alice, "alice").await;
    assert_eq!(alice.get(&url("/pro")).await.text().await.unwrap(), "pro");
}

/// `RequireLogin` by itself, in front of a handler that does not ask for the user (so
/// no extractor refuses in its place): a caller who is not signed in is sent to sign in
/// (browser), told 401 (API) or `UNAUTHENTICATED` (gRPC); a signed-in user gets the page.
#[tokio::test]
async fn login_guard_alone_refuses_an_anonymous_caller_and_admits_a_user() {
    use axum::{Router, routing::get};
    use tower_hf_auth::{HfAuthLayer, RequireLogin};

    let app = serve(
        mock().await,
        |b| b,
        |config| {
            Router::new()
                .route(
                    "/me",
                    get(|user: tower_hf_auth::HfUser| async move { axum::Json(user) }),
                )
                .route("/page", get(|| async { "page" }).route_layer(RequireLogin))
                .layer(HfAuthLayer::new(config))
        },
    )
    .await;
    let page = format!("{}/page", app.base);
    let nobody = Browser::new();
    let res = nobody.get(&page).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?return_to=%2Fpage");
    assert_eq!(api(&nobody, &page).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(grpc_status(&grpc(&nobody, &page).await), "16");

    let bob = Browser::new();
    signed_in(&app, &bob, "bob").await;
    let res = bob.get(&page).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "page");
}
