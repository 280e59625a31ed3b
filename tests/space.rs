//! The Space template (`examples/space/`) started as a process with only the variables a
//! Space injects, behind a TLS front like a Space's proxy, against the mock provider
//! that accepts only the Space's redirect URI: sign-in works, the cookies are the
//! iframe's, a restart keeps the session, and another site's POST is refused.

mod web;

use std::time::Duration;

use reqwest::{StatusCode, header};
use web::{TlsFront, space_mock, space_vars, start_space};

/// A browser-like client for `https://localhost:{port}`: cookie jar, no redirects.
fn client(front: &TlsFront, jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", ([127, 0, 0, 1], front.port).into())
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()[header::LOCATION].to_str().unwrap().to_owned()
}

async fn page(http: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let res = http
        .get(url)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_space_template_signs_in_with_only_space_variables_and_survives_a_restart() {
    let mut front = TlsFront::bind().await;
    let mock = space_mock().await;
    let vars = space_vars(&mock, front.port);
    let space = start_space(&vars).await;
    front.forward_to(space.addr);
    let origin = front.origin();
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let http = client(&front, jar.clone());

    // Signed out: the official badge, opening the Space's own URL at the top level.
    let (status, home) = page(&http, &format!("{origin}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("sign-in-with-huggingface-lg.svg"), "{home}");
    assert!(
        home.contains(&format!(
            r#"href="{origin}/login?return_to=%2F" target="_top""#
        )),
        "{home}"
    );

    sign_in_as_alice(&http, &origin).await;
    let (_, home) = page(&http, &format!("{origin}/")).await;
    assert!(home.contains("Hello, Alice Liddell!"), "{home}");
    own_pages_and_cross_site_posts(&http, &origin).await;

    // A restart with the same variables: the key comes from OAUTH_CLIENT_SECRET, so the
    // session still opens.
    space.stop().await;
    let home = restarted_home(&vars, &jar, &origin).await;
    assert!(
        home.contains("Hello, Alice Liddell!"),
        "signed in after a restart: {home}"
    );
}

/// Signs in as alice; the mock only accepts the Space's redirect URI. Asserts the
/// pending and session cookies' attributes.
async fn sign_in_as_alice(http: &reqwest::Client, origin: &str) {
    let res = http.get(format!("{origin}/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let pending = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(pending.starts_with("__Host-hf_auth_login_"), "{pending}");
    assert!(pending.contains("; Path=/;"), "{pending}");
    let authorize = location(&res);
    assert!(
        authorize.contains(&format!(
            "redirect_uri={}",
            url::form_urlencoded::byte_serialize(format!("{origin}/login/callback").as_bytes())
                .collect::<String>()
        )),
        "{authorize}"
    );
    let res = http
        .get(format!("{authorize}&mock_user=alice"))
        .send()
        .await
        .unwrap();
    let callback = location(&res);
    assert!(
        callback.starts_with(&format!("{origin}/login/callback?")),
        "{callback}"
    );
    let res = http.get(&callback).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    let session: Vec<String> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|c| c.starts_with("__Host-hf_auth="))
        .collect();
    assert_eq!(session.len(), 1, "{session:?}");
    for attr in [
        "Path=/",
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
    ] {
        assert!(session[0].contains(attr), "{attr} in {}", session[0]);
    }
}

/// The crate's own pages' headers, and a cross-site POST refused while the app's own
/// POST passes.
async fn own_pages_and_cross_site_posts(http: &reqwest::Client, origin: &str) {
    // The crate's own pages may be framed by huggingface.co, and nobody else.
    let res = http
        .get(format!("{origin}/login/callback?state=unknown"))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.headers()[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'self' https://huggingface.co"
    );
    assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

    // Another site's form POST carries the cookie (SameSite=None) and is refused.
    let res = http
        .post(format!("{origin}/wave"))
        .header("sec-fetch-site", "cross-site")
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("cross_origin_request"));
    let res = http
        .post(format!("{origin}/wave"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

/// The home page of the Space app restarted with `vars`, sent the cookies of `jar`.
async fn restarted_home(
    vars: &[(&str, String)],
    jar: &reqwest::cookie::Jar,
    origin: &str,
) -> String {
    let space = start_space(vars).await;
    let mut front2 = TlsFront::bind().await;
    front2.forward_to(space.addr);
    let http2 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", ([127, 0, 0, 1], front2.port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies = reqwest::cookie::CookieStore::cookies(jar, &origin.parse().unwrap())
        .expect("the session cookie is kept");
    let res = http2
        .get(format!("{}/", front2.origin()))
        .header(header::COOKIE, cookies)
        .send()
        .await
        .unwrap();
    let home = res.text().await.unwrap();
    space.stop().await;
    home
}
