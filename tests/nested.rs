//! Guards under nested routers send the browser back to the full path it asked for:
//! axum's `Router::nest` and `nest_service` strip the prefix from the URI a guard
//! sees, so the crate takes the original URI.

#![allow(unreachable_pub)]

#[cfg(not(feature = "axum"))]
compile_error!("tests/nested.rs needs the `axum` feature: cargo test --all-features");

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use reqwest::StatusCode;
use tower_hf_auth::{HfAuthLayer, RequireLogin, RequireScopes, scope};

fn nested(config: tower_hf_auth::HfAuthConfig) -> Router {
    let admin = Router::new()
        .route(
            "/users",
            get(|| async { "users" }).route_layer(RequireLogin),
        )
        .route(
            "/repos",
            get(|| async { "repos" }).route_layer(RequireScopes::all([scope::READ_REPOS])),
        );
    let service = Router::new().route("/page", get(|| async { "page" }).route_layer(RequireLogin));
    Router::new()
        .nest("/admin", admin)
        .nest_service("/svc", service)
        .route("/me", get(|| async { "{}" }))
        .layer(HfAuthLayer::new(config))
}

#[tokio::test]
async fn nested_routes_return_to_the_full_path() {
    let app = serve(mock().await, |b| b, nested).await;
    let browser = Browser::new();
    for (path, want) in [
        ("/admin/users?x=1", "/admin/users?x=1"),
        ("/svc/page", "/svc/page"),
    ] {
        let res = browser.get(&format!("{}{path}", app.base)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let login = location(&res);
        assert_eq!(
            query_param(&absolute(&app, &login), "return_to").as_deref(),
            Some(want),
            "{path}: {login}"
        );
    }

    // Signing in through the link lands on the full path.
    let res = browser.get(&format!("{}/admin/users?x=1", app.base)).await;
    let login = absolute(&app, &location(&res));
    let authorize_url = location(&browser.get(&login).await);
    let callback = authorize(&browser, &authorize_url, "alice").await;
    let res = browser.get(&callback).await;
    assert_eq!(location(&res), "/admin/users?x=1");
    let page = browser.get(&format!("{}/admin/users?x=1", app.base)).await;
    assert_eq!(page.status(), StatusCode::OK);

    // Incremental consent under the prefix keeps it too.
    let res = browser.get(&format!("{}/admin/repos", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let consent = absolute(&app, &location(&res));
    assert_eq!(
        query_param(&consent, "return_to").as_deref(),
        Some("/admin/repos")
    );
    assert_eq!(
        query_param(&consent, "scope").as_deref(),
        Some("read-repos")
    );
}
