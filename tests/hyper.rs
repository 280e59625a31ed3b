//! `examples/hyper_app.rs` over real sockets: the layer and a guarded route on plain
//! hyper and `tower::ServiceBuilder`, no web framework.

#![allow(unreachable_pub)]

#[cfg(not(feature = "mock"))]
compile_error!("tests/hyper.rs needs the `mock` feature: cargo test --all-features");

#[path = "../examples/hyper_app.rs"]
#[allow(dead_code)]
mod example;

use std::sync::Arc;

use reqwest::cookie::Jar;
use reqwest::{StatusCode, Url, header};
use tower_hf_auth::mock::MockHfProvider;

#[tokio::test]
async fn the_hyper_example_signs_in_and_guards_me() {
    let mock = MockHfProvider::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = example::mock_config(&mock, &base)
        .with_secret("a hyper test secret of thirty-two characters")
        .build()
        .unwrap();
    let server = tokio::spawn(example::serve(listener, example::service(config)));

    let jar = Arc::new(Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |url: String, accept: &'static str| {
        let browser = browser.clone();
        async move {
            browser
                .get(url)
                .header(header::ACCEPT, accept)
                .send()
                .await
                .unwrap()
        }
    };
    let html = "text/html";

    // Not signed in: an API client gets 401, a browser is sent to sign in.
    let res = get(format!("{base}/me"), "application/json").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = get(format!("{base}/me"), html).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(login, "/login?return_to=%2Fme");

    // The whole sign-in, then `/me` answers with the user.
    let res = get(format!("{base}{login}"), html).await;
    let mut authorize = Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("mock_user", "alice");
    let res = get(authorize.to_string(), html).await;
    let callback = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = get(callback, html).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/me");
    let res = get(format!("{base}/me"), "application/json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let json: serde_json::Value = res.json().await.unwrap();
    assert_eq!(json["username"], "alice");
    let home = get(format!("{base}/"), html).await.text().await.unwrap();
    assert!(home.contains("Signed in as @alice"), "{home}");
    server.abort();
}
