//! Cross-origin protection and the crate's own-page headers, over real sockets: a
//! signed-in browser's state-changing requests are refused when another site starts
//! them, except from trusted origins, on bypassed paths, or with a bearer token.

#![allow(unreachable_pub)]

mod common;

use axum::Router;
use axum::routing::post;
use common::{Browser, serve, sign_in};
use reqwest::{StatusCode, header};
use tower_hf_auth::{HfAuthLayer, HfUser};

async fn changed(user: Option<HfUser>) -> String {
    format!(
        "changed by {}",
        user.map_or("nobody".into(), |u| u.username().to_owned())
    )
}

async fn app() -> common::TestApp {
    serve(
        common::mock().await,
        |b| {
            b.add_trusted_origin("https://admin.example")
                .add_cross_origin_bypass("/hooks/*")
        },
        |config| {
            Router::new()
                .route("/change", post(changed).put(changed).delete(changed))
                .route("/hooks/in", post(changed))
                .layer(HfAuthLayer::new(config))
        },
    )
    .await
}

async fn post_with(
    browser: &Browser,
    url: &str,
    headers: &[(&'static str, &str)],
) -> (StatusCode, String) {
    let mut req = browser.http.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn a_signed_in_browsers_cross_site_changes_are_refused_unless_exempt() {
    let app = app().await;
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed in");
    let change = format!("{}/change", app.base);

    let (status, body) = post_with(&browser, &change, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("cross_origin_request"), "{body}");
    let (status, _) = post_with(&browser, &change, &[("sec-fetch-site", "same-site")]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a sibling subdomain is another site too"
    );
    let evil = [("origin", "https://evil.example")];
    assert_eq!(
        post_with(&browser, &change, &evil).await.0,
        StatusCode::FORBIDDEN
    );
    let res = browser
        .http
        .delete(&change)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        res.headers()[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'self'"
    );

    // Same origin, typed URLs, trusted origins, bypassed paths, bearer tokens.
    for headers in [
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![("origin", app.base.as_str())],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://admin.example"),
        ],
    ] {
        let (status, body) = post_with(&browser, &change, &headers).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {body}");
        assert_eq!(body, "changed by alice");
    }
    let hook = format!("{}/hooks/in", app.base);
    let (status, body) = post_with(&browser, &hook, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "changed by alice")
    );
    let bearer = [
        ("sec-fetch-site", "cross-site"),
        ("authorization", "Bearer hf_not_a_session"),
    ];
    assert_eq!(
        post_with(&browser, &change, &bearer).await.0,
        StatusCode::OK
    );

    // Without the session cookie there is nothing to abuse.
    let stranger = Browser::new();
    let (status, body) = post_with(&stranger, &change, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "changed by nobody")
    );
}

#[tokio::test]
async fn the_crates_own_pages_forbid_framing_by_other_sites() {
    let app = common::app().await;
    let browser = Browser::new();
    for url in [
        format!("{}/login/callback?state=x", app.base),
        format!("{}/logout", app.base),
        format!("{}/me", app.base),
    ] {
        let res = browser.get(&url).await;
        assert_eq!(
            res.headers()[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{url}"
        );
        assert_eq!(
            res.headers()[header::CONTENT_SECURITY_POLICY],
            "frame-ancestors 'self'",
            "{url}"
        );
    }
}
