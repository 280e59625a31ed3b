//! Session cookies over real sockets: tampering, key rotation, expiry, size.

#![allow(unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::{StatusCode, header};
use tower_hf_auth::mock::{MockOrg, MockUser};

fn session_of(browser: &Browser, app: &TestApp) -> String {
    browser
        .cookie(&format!("{}/", app.base), "hf_auth")
        .expect("a session cookie")
}

/// A session cookie that fails to open yields no user and is cleared, never a 500.
async fn assert_cleared(app: &TestApp, cookie: &str) {
    let res = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{cookie:.40}");
    let cleared = res.headers().get_all(header::SET_COOKIE).iter().any(|v| {
        v.to_str().unwrap().starts_with("hf_auth=;") && v.to_str().unwrap().contains("Max-Age=0")
    });
    assert!(cleared, "the broken cookie is cleared");
    let home = reqwest::Client::new()
        .get(format!("{}/", app.base))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.unwrap().contains("not signed in"));
}

#[tokio::test]
async fn tampered_truncated_and_foreign_cookies_yield_no_user() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let value = session_of(&browser, &app);
    assert!(value.len() > 100);

    let mut flipped = value.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        format!("hf_auth={flipped}"),
        format!("hf_auth={}", &value[..value.len() - 3]),
        "hf_auth=garbage!!".to_owned(),
        "hf_auth=".to_owned(),
        format!("hf_auth={}", "A".repeat(5000)),
    ] {
        assert_cleared(&app, &bad).await;
    }

    // A cookie from another deployment (another secret) is foreign here.
    let other = app_with(app.mock.clone(), |b| {
        b.with_secret("another deployment's secret, long enough")
    })
    .await;
    assert_cleared(&other, &format!("hf_auth={value}")).await;
}

#[tokio::test]
async fn rotated_secrets_keep_sessions_and_dropped_ones_end_them() {
    let mock = mock().await;
    let old = app_with(mock.clone(), |b| b).await;
    let browser = Browser::new();
    signed_in(&old, &browser, "alice").await;
    let cookie = format!("hf_auth={}", session_of(&browser, &old));

    let new_secret = "the new secret after rotation, 32+ chars";
    let rotated = app_with(mock.clone(), |b| {
        b.with_secret(new_secret).add_old_secret(SECRET)
    })
    .await;
    let res = reqwest::Client::new()
        .get(format!("{}/me", rotated.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "an old-key cookie still opens"
    );
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["username"], "alice");

    let dropped = app_with(mock, |b| b.with_secret(new_secret)).await;
    assert_cleared(&dropped, &cookie).await;
}

#[tokio::test]
async fn sessions_end_when_the_token_expires() {
    // Without a refresh token (with one, the session is refreshed: tests/refresh.rs).
    let mock = mock_with(|b| {
        b.with_token_lifetime(Duration::from_secs(600))
            .with_refresh_tokens(false)
    })
    .await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    // Frozen from before the sign-in: one second before the expiry stays one second
    // before it however long the steps take.
    app.clock.freeze();
    signed_in(&app, &browser, "alice").await;
    app.clock.advance(Duration::from_secs(599));
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(
        whoami(&app, &browser).await,
        None,
        "an expired session yields no user"
    );
}

#[tokio::test]
async fn users_in_many_orgs_get_a_chunked_session() {
    // The profile is compressed: carol's 41 organizations fit in one cookie, 400 do not.
    let mut dave = MockUser::new("dave");
    for i in 0..400 {
        dave = dave.add_org(MockOrg::new(format!("team-{i:03}")));
    }
    let defaults = app().await;
    let browser = Browser::new();
    signed_in(&defaults, &browser, "carol").await;
    let cookies = browser.cookies(&format!("{}/", defaults.base));
    assert!(
        cookies.contains("hf_auth=") && !cookies.contains("hf_auth.1="),
        "41 organizations fit in one cookie: {cookies}"
    );

    // Users added to the mock replace its default ones.
    let mock = mock_with(|b| b.add_user(dave).add_user(MockUser::new("bob"))).await;
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "dave").await;
    let cookies = browser.cookies(&format!("{}/", app.base));
    assert!(
        cookies.contains("hf_auth.1="),
        "a large session spans several cookies"
    );
    let me: serde_json::Value = browser
        .get_json(&format!("{}/me", app.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["orgs"].as_array().unwrap().len(), 400);

    // Signing in again as someone with a small profile clears the extra chunks.
    signed_in(&app, &browser, "bob").await;
    assert!(
        !browser
            .cookies(&format!("{}/", app.base))
            .contains("hf_auth.1=")
    );
}

#[tokio::test]
async fn pending_logins_expire_after_ten_minutes() {
    let app = app().await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    app.clock.advance(Duration::from_secs(601));
    let res = browser.get(&callback).await;
    assert_rejected(&app, &browser, res, StatusCode::BAD_REQUEST, "10 minutes").await;
}

/// Every chunk a browser holds is cleared, even past a missing chunk (`hf_auth.1` gone,
/// `hf_auth.2` left): by an invalid session, by signing out and by a new session.
#[tokio::test]
async fn a_chunk_past_a_missing_one_is_cleared() {
    let app = app().await;
    let url = format!("{}/", app.base);
    let chunks = |browser: &Browser| -> Vec<String> {
        let mut names: Vec<String> = browser
            .cookies(&url)
            .split("; ")
            .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.to_owned()))
            .filter(|name| name.starts_with("hf_auth"))
            .collect();
        names.sort();
        names
    };
    let plant = |browser: &Browser| {
        browser.set_cookie(&url, "hf_auth=broken; Path=/");
        browser.set_cookie(&url, "hf_auth.2=left-over; Path=/");
        assert_eq!(chunks(browser), ["hf_auth", "hf_auth.2"]);
    };

    let browser = Browser::new();
    plant(&browser);
    assert_eq!(whoami(&app, &browser).await, None);
    assert!(
        chunks(&browser).is_empty(),
        "an invalid session: {:?}",
        chunks(&browser)
    );

    plant(&browser);
    let res = browser.get(&format!("{}/logout", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        chunks(&browser).is_empty(),
        "signing out: {:?}",
        chunks(&browser)
    );

    plant(&browser);
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(chunks(&browser), ["hf_auth"], "a new session");
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

/// A session cookie written by an earlier version (the JSON record format, the profile
/// DEFLATE-compressed) still signs its user in after an upgrade, organizations and
/// roles intact.
#[cfg(feature = "fuzzing")]
#[tokio::test]
async fn sessions_written_by_earlier_versions_still_open() {
    use tower_hf_auth::fuzzing::SessionStages;
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "carol").await;
    let current = session_of(&browser, &app);
    let stages = SessionStages::new(SECRET, app.mock.client_id(), "hf_auth");
    let plain = stages.open(&current).expect("the app's cookie opens");
    assert_eq!(plain[0], 3, "written in the binary format");
    let old = SessionStages::as_json_format(&plain).expect("re-encodes as JSON");
    assert_eq!(old[0], 1, "41 organizations: the JSON profile was DEFLATEd");
    let old_cookie = format!("hf_auth={}", stages.seal(&old));

    let res = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header(header::COOKIE, &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get(header::SET_COOKIE).is_none(),
        "not cleared"
    );
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["username"], "carol");
    let orgs = me["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 41);
    assert!(
        orgs.iter()
            .any(|o| o["preferred_username"] == "acme" && o["roleInOrg"] == "write"),
        "{orgs:?}"
    );
}
