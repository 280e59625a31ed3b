//! Conformance of the sign-in flow, modelled on the OpenID Connect Relying Party
//! certification test plan (Basic RP profile, code flow), run against the example app
//! and `MockHfProvider` on real sockets.
//!
//! Every test is named after the certification test it mirrors (`rp-foo-bar` becomes
//! `rp_foo_bar`); tests the plan does not have are marked *extra*. A rejected case
//! asserts an error status with a clear HTML page offering a retry, no session for the
//! same browser (`/me` answers 401), and that a normal sign-in works right after the
//! fault is cleared.
//!
//! | test | RP certification test | expected |
//! |---|---|---|
//! | `rp_response_type_code` | rp-response_type-code | signs in; authorize request has `response_type=code`, S256 PKCE, `state`, `nonce` |
//! | `rp_scope_userinfo_claims` | rp-scope-userinfo-claims | signs in; `email` scope's claims and userinfo-only claims (`orgs`, `isPro`) reach the user |
//! | `rp_discovery_openid_configuration` | rp-discovery-openid-configuration | signs in; discovery fetched once and cached |
//! | `rp_discovery_issuer_mismatch` | rp-discovery-issuer-not-matching-config | 502 at `/login` naming both issuers |
//! | `rp_nonce_invalid` | rp-nonce-invalid | 502 |
//! | `rp_nonce_unless_code_flow` | rp-nonce-unless-code-flow | 502: we always send a nonce, so a token without one is refused |
//! | `rp_token_endpoint_client_secret_basic` | rp-token_endpoint-client_secret_basic | signs in against a Basic-only provider |
//! | `rp_token_endpoint_client_secret_post` | (extra, Config/Dynamic profiles) | signs in against a Post-only provider |
//! | `rp_token_endpoint_public_client` | (extra) | a public client (PKCE only) signs in |
//! | `rp_token_endpoint_auth_method_mismatch` | (extra) | 502 naming `invalid_client` |
//! | `rp_id_token_sig_none` | rp-id_token-sig-none | 502: only RS256 is registered, so `alg: none` is refused |
//! | `rp_id_token_bad_sig_rs256` | rp-id_token-bad-sig-rs256 | 502 |
//! | `rp_id_token_bad_sig_hs256` | rp-id_token-bad-sig-hs256 | 502: HS256 keyed with the RSA public key (algorithm confusion) |
//! | `rp_id_token_kid_absent_single_jwks` | rp-id_token-kid-absent-single-jwks | signs in |
//! | `rp_id_token_kid_absent_multiple_jwks` | rp-id_token-kid-absent-multiple-jwks | signs in (every key is tried); JWKS served through a proxy that adds a key |
//! | `rp_id_token_unknown_kid` | (extra, close to rp-id_token-bad-sig-rs256) | 502 after one JWKS re-fetch |
//! | `rp_key_rotation_op_sign_key` | rp-key-rotation-op-sign-key | signs in after rotation, re-fetching the JWKS once |
//! | `rp_id_token_iss_mismatch` | rp-id_token-issuer-mismatch | 502 |
//! | `rp_id_token_aud_mismatch` | rp-id_token-aud | 502 |
//! | `rp_id_token_aud_extra_without_azp` | (extra, OIDC Core 3.1.3.7 #4/#5) | 502: several audiences need `azp` |
//! | `rp_id_token_aud_extra_with_azp` | (extra) | signs in |
//! | `rp_id_token_azp_mismatch` | (extra) | 502 |
//! | `rp_id_token_iat` | rp-id_token-iat | 502 for `iat` a day in the future (the plan's variant, no `iat`, is a unit test in `src/id_token.rs`: the mock cannot drop `iat`) |
//! | `rp_id_token_exp` | (extra) | 502 for `exp` beyond the leeway |
//! | `rp_id_token_exp_within_leeway` | (extra) | signs in with `exp` 10 s ago (leeway 60 s) |
//! | `rp_id_token_sub` | rp-id_token-sub | 502 for a token without `sub` |
//! | `rp_userinfo_bad_sub_claim` | rp-userinfo-bad-sub-claim | 502 |
//! | `rp_token_response_missing_id_token` | (extra) | 502 |
//! | `rp_token_response_token_type_not_bearer` | (extra) | 502 for `mac` |
//! | `rp_token_response_token_type_case_insensitive` | (extra, RFC 6749 5.1) | signs in with `Bearer` |
//! | `rp_state_missing` | (extra, RFC 6749 10.12) | 400 |
//! | `rp_state_mismatch` | (extra) | 400 |
//! | `rp_state_malformed` | (extra) | 400 |
//! | `rp_state_replayed` | (extra) | 400 |
//! | `rp_state_from_another_browser` | (extra, login CSRF) | 400 for the victim; the real browser still finishes |
//! | `rp_state_expired` | (extra) | 400 after 10 minutes |
//! | `rp_iss_authorization_response_mismatch` | (extra, RFC 9207) | 400 |
//! | `rp_iss_authorization_response_missing` | (extra, RFC 9207) | 400, since the provider announces the parameter |
//! | `rp_authorization_error_access_denied` | (extra, RFC 6749 4.1.2.1) | 403 "cancelled" |
#![allow(unreachable_pub)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use tower_hf_auth::ClientAuth;
use tower_hf_auth::mock::{MockClientAuth, MockEndpoint, MockFault};

/// Signs in with `faults` active; asserts a `status` page with all `needles`, no
/// session, and that a normal sign-in works once the faults are cleared.
async fn assert_case_rejected(
    app: &TestApp,
    faults: Vec<MockFault>,
    status: StatusCode,
    needles: &[&str],
) {
    for fault in faults {
        app.mock.add_fault(fault);
    }
    let browser = Browser::new();
    let res = sign_in(app, &browser, "alice", "/").await;
    assert_rejected_page(app, &browser, res, status, needles).await;
    assert_recovers(app).await;
}

/// Signs in with `faults` active and asserts it works.
async fn assert_case_accepted(app: &TestApp, faults: Vec<MockFault>) {
    for fault in faults {
        app.mock.add_fault(fault);
    }
    signed_in(app, &Browser::new(), "alice").await;
    app.mock.clear_faults();
}

/// A started sign-in whose callback URL has not been visited yet.
async fn pending_callback(app: &TestApp, browser: &Browser) -> String {
    let authorize_url = start_login(app, browser, "/").await;
    authorize(browser, &authorize_url, "alice").await
}

#[tokio::test]
async fn rp_response_type_code() {
    let app = app().await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    assert_eq!(
        query_param(&authorize_url, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&authorize_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(&authorize_url, "state").unwrap().len(), 43);
    assert_eq!(query_param(&authorize_url, "nonce").unwrap().len(), 43);
    let scope = query_param(&authorize_url, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "openid"), "{scope}");
    assert!(
        query_param(&authorize_url, "response_mode").is_none(),
        "query is the default response mode"
    );
    let callback = authorize(&browser, &authorize_url, "alice").await;
    assert!(query_param(&callback, "code").is_some());
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn rp_scope_userinfo_claims() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let me: Value = browser
        .get_json(&format!("{}/me", app.base))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        me["email"].as_str().is_some_and(|e| e.contains('@')),
        "{me}"
    );
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["is_pro"], true, "isPro is only in userinfo: {me}");
    assert!(
        me["orgs"].as_array().is_some_and(|o| !o.is_empty()),
        "orgs are only in userinfo: {me}"
    );
}

#[tokio::test]
async fn rp_discovery_openid_configuration() {
    let app = app().await;
    signed_in(&app, &Browser::new(), "alice").await;
    signed_in(&app, &Browser::new(), "bob").await;
    assert_eq!(
        app.mock.requests(MockEndpoint::Discovery),
        1,
        "the discovery document is fetched once and cached"
    );
}

#[tokio::test]
async fn rp_discovery_issuer_mismatch() {
    let mock = mock().await;
    mock.add_fault(MockFault::DiscoveryIssuer("https://evil.example".into()));
    let app = app_with(mock, |b| b).await;
    let browser = Browser::new();
    let res = browser.get(&format!("{}/login", app.base)).await;
    let issuer = app.mock.issuer();
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_GATEWAY,
        &["https://evil.example", &issuer, "provider_error"],
    )
    .await;
    assert_recovers(&app).await;
}

#[tokio::test]
async fn rp_nonce_invalid() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenNonce(Some(
            "not-the-nonce-we-sent".into(),
        ))],
        StatusCode::BAD_GATEWAY,
        &["nonce does not match"],
    )
    .await;
}

/// The plan lets a code-flow RP accept a token without `nonce` when it sent none; this
/// crate always sends one, so a token without it must be refused (OIDC Core 3.1.3.7 #11).
#[tokio::test]
async fn rp_nonce_unless_code_flow() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenNonce(None)],
        StatusCode::BAD_GATEWAY,
        &["has no nonce"],
    )
    .await;
}

/// The mock accepts only HTTP Basic client authentication here, so signing in proves
/// the default configuration uses `client_secret_basic`.
#[tokio::test]
async fn rp_token_endpoint_client_secret_basic() {
    let mock = mock_with(|b| b.with_client_auth(MockClientAuth::Basic)).await;
    let app = app_with(mock, |b| b).await;
    signed_in(&app, &Browser::new(), "alice").await;
}

#[tokio::test]
async fn rp_token_endpoint_client_secret_post() {
    let mock = mock_with(|b| b.with_client_auth(MockClientAuth::Post)).await;
    let app = app_with(mock, |b| b.with_client_auth(ClientAuth::Post)).await;
    signed_in(&app, &Browser::new(), "alice").await;
}

#[tokio::test]
async fn rp_token_endpoint_public_client() {
    let mock = mock_with(|b| b.with_client_secret(None)).await;
    let app = app_with(mock, |b| b).await;
    signed_in(&app, &Browser::new(), "alice").await;
}

#[tokio::test]
async fn rp_token_endpoint_auth_method_mismatch() {
    let mock = mock_with(|b| b.with_client_auth(MockClientAuth::Basic)).await;
    let app = app_with(mock, |b| b.with_client_auth(ClientAuth::Post)).await;
    let browser = Browser::new();
    let res = sign_in(&app, &browser, "alice", "/").await;
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_GATEWAY,
        &["invalid_client"],
    )
    .await;
}

/// The plan's RP registers `id_token_signed_response_alg: none` and must accept the
/// unsigned token; Hugging Face signs with RS256 only, so here `alg: none` is an attack.
#[tokio::test]
async fn rp_id_token_sig_none() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenAlgNone],
        StatusCode::BAD_GATEWAY,
        &["algorithm &quot;none&quot;", "only RS256 is accepted"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_bad_sig_rs256() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenBadSignature],
        StatusCode::BAD_GATEWAY,
        &["signature is invalid"],
    )
    .await;
}

/// HS256 keyed with the provider's RSA public key: the algorithm-confusion attack.
#[tokio::test]
async fn rp_id_token_bad_sig_hs256() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenHs256WithPublicKey],
        StatusCode::BAD_GATEWAY,
        &["algorithm &quot;HS256&quot;", "only RS256 is accepted"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_kid_absent_single_jwks() {
    let app = app().await;
    assert_case_accepted(&app, vec![MockFault::IdTokenWithoutKid]).await;
}

/// `MockHfProvider` serves only its current key in the JWKS, so the several keys this
/// case needs come from a small proxy in front of it: it forwards the token, userinfo
/// and JWKS endpoints to the mock, names itself as issuer (the mock is told to use that
/// issuer in ID tokens and in the callback's `iss`), and puts a second, unrelated key
/// *first* in the JWKS. The token has no `kid`, so the app must try every key.
#[tokio::test]
async fn rp_id_token_kid_absent_multiple_jwks() {
    let mock = mock().await;
    let other = mock_with(|b| b).await;
    let extra_key = fetch_json(&format!("{}/oauth/jwks", other.issuer())).await["keys"][0].clone();
    let proxy = proxy::start(mock.issuer(), extra_key).await;
    let served = fetch_json(&format!("{}/oauth/jwks", proxy.base)).await;
    assert_eq!(served["keys"].as_array().unwrap().len(), 2, "{served}");

    mock.add_fault(MockFault::IdTokenIssuer(proxy.base.clone()));
    mock.add_fault(MockFault::AuthorizeIss(proxy.base.clone()));
    mock.add_fault(MockFault::IdTokenWithoutKid);
    let app = app_with(mock, |b| b.with_provider_url(proxy.base.clone())).await;
    signed_in(&app, &Browser::new(), "alice").await;
    assert!(
        proxy.jwks_requests() >= 1,
        "the JWKS came through the proxy"
    );
}

#[tokio::test]
async fn rp_id_token_unknown_kid() {
    let app = app().await;
    signed_in(&app, &Browser::new(), "alice").await;
    let before = app.mock.requests(MockEndpoint::Jwks);
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenUnknownKid],
        StatusCode::BAD_GATEWAY,
        &["not in the provider"],
    )
    .await;
    assert!(
        app.mock.requests(MockEndpoint::Jwks) > before,
        "an unknown kid re-fetches the key set"
    );
}

#[tokio::test]
async fn rp_key_rotation_op_sign_key() {
    let app = app().await;
    signed_in(&app, &Browser::new(), "alice").await;
    let before = app.mock.requests(MockEndpoint::Jwks);
    app.mock.rotate_keys();
    signed_in(&app, &Browser::new(), "bob").await;
    assert_eq!(
        app.mock.requests(MockEndpoint::Jwks),
        before + 1,
        "exactly one re-fetch picks up the new key"
    );
    signed_in(&app, &Browser::new(), "carol").await;
    assert_eq!(
        app.mock.requests(MockEndpoint::Jwks),
        before + 1,
        "the new key is cached"
    );
}

#[tokio::test]
async fn rp_id_token_iss_mismatch() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenIssuer("https://evil.example".into())],
        StatusCode::BAD_GATEWAY,
        &["issued by &quot;https://evil.example&quot;"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_aud_mismatch() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenAudience(vec!["another-client".into()])],
        StatusCode::BAD_GATEWAY,
        &["audience does not include this client"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_aud_extra_without_azp() {
    let app = app().await;
    let audience = vec![app.mock.client_id().to_owned(), "other".into()];
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenAudience(audience)],
        StatusCode::BAD_GATEWAY,
        &["authorized party (azp)"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_aud_extra_with_azp() {
    let app = app().await;
    let client = app.mock.client_id().to_owned();
    assert_case_accepted(
        &app,
        vec![
            MockFault::IdTokenAudience(vec![client.clone(), "other".into()]),
            MockFault::IdTokenAzp(client),
        ],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_azp_mismatch() {
    let app = app().await;
    let client = app.mock.client_id().to_owned();
    assert_case_rejected(
        &app,
        vec![
            MockFault::IdTokenAudience(vec![client, "other".into()]),
            MockFault::IdTokenAzp("other".into()),
        ],
        StatusCode::BAD_GATEWAY,
        &["authorized party (azp)"],
    )
    .await;
}

/// The plan's rp-id_token-iat sends a token without `iat`; the mock cannot leave it out
/// (that variant is `rejects_token_issued_in_the_future` / `MissingClaim("iat")` in the
/// unit tests of `src/id_token.rs`). Here `iat` is a day ahead, far past the leeway.
#[tokio::test]
async fn rp_id_token_iat() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenIatInFuture(Duration::from_secs(86_400))],
        StatusCode::BAD_GATEWAY,
        &["issued in the future"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_exp() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenExpiredBy(Duration::from_secs(120))],
        StatusCode::BAD_GATEWAY,
        &["the ID token expired"],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_exp_within_leeway() {
    let app = app().await;
    assert_case_accepted(
        &app,
        vec![MockFault::IdTokenExpiredBy(Duration::from_secs(10))],
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_sub() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::IdTokenWithoutSub],
        StatusCode::BAD_GATEWAY,
        &["has no subject (sub)"],
    )
    .await;
}

#[tokio::test]
async fn rp_userinfo_bad_sub_claim() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::UserinfoSub("ffffffffffffffffffffffff".into())],
        StatusCode::BAD_GATEWAY,
        &["different user than the ID token", "subject_mismatch"],
    )
    .await;
}

#[tokio::test]
async fn rp_token_response_missing_id_token() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::MissingIdToken],
        StatusCode::BAD_GATEWAY,
        &["no ID token", "invalid_token_response"],
    )
    .await;
}

#[tokio::test]
async fn rp_token_response_token_type_not_bearer() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::TokenType("mac".into())],
        StatusCode::BAD_GATEWAY,
        &["&quot;mac&quot;", "only bearer tokens are supported"],
    )
    .await;
}

#[tokio::test]
async fn rp_token_response_token_type_case_insensitive() {
    let app = app().await;
    assert_case_accepted(&app, vec![MockFault::TokenType("Bearer".into())]).await;
}

#[tokio::test]
async fn rp_state_missing() {
    let app = app().await;
    let browser = Browser::new();
    let callback = pending_callback(&app, &browser).await;
    let res = browser.get(&with_param(&callback, "state", None)).await;
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        &["has no state", "invalid_state"],
    )
    .await;
    assert_recovers(&app).await;
}

#[tokio::test]
async fn rp_state_mismatch() {
    let app = app().await;
    let browser = Browser::new();
    let callback = pending_callback(&app, &browser).await;
    let state = query_param(&callback, "state").unwrap();
    // Same pending cookie name (its first 16 characters), different state.
    let forged = format!("{}{}", &state[..16], "A".repeat(state.len() - 16));
    assert_ne!(forged, state);
    let res = browser
        .get(&with_param(&callback, "state", Some(&forged)))
        .await;
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        &["does not match", "invalid_state"],
    )
    .await;
    assert_recovers(&app).await;
}

#[tokio::test]
async fn rp_state_malformed() {
    let app = app().await;
    let browser = Browser::new();
    let callback = pending_callback(&app, &browser).await;
    for bad in ["x", "not base64url!!", &"A".repeat(44), ""] {
        let res = browser
            .get(&with_param(&callback, "state", Some(bad)))
            .await;
        let status = res.status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        let body = res.text().await.unwrap();
        assert!(body.contains("invalid_state"), "{bad:?}: {body}");
    }
    assert_eq!(whoami(&app, &browser).await, None);
    assert_recovers(&app).await;
}

#[tokio::test]
async fn rp_state_replayed() {
    let app = app().await;
    let browser = Browser::new();
    let callback = pending_callback(&app, &browser).await;
    let pending = browser.cookies(&callback);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);

    let attacker = Browser::new();
    let res = attacker
        .http
        .get(&callback)
        .header(reqwest::header::ACCEPT, "text/html")
        .header(reqwest::header::COOKIE, pending)
        .send()
        .await
        .unwrap();
    assert_rejected_page(
        &app,
        &attacker,
        res,
        StatusCode::BAD_REQUEST,
        &["already used"],
    )
    .await;
    assert_recovers(&app).await;
}

/// Login CSRF: an attacker's callback URL opened by a victim's browser, which has no
/// pending sign-in for that state, must not sign the victim in as the attacker.
#[tokio::test]
async fn rp_state_from_another_browser() {
    let app = app().await;
    let attacker = Browser::new();
    let callback = pending_callback(&app, &attacker).await;
    let victim = Browser::new();
    let res = victim.get(&callback).await;
    assert_rejected_page(
        &app,
        &victim,
        res,
        StatusCode::BAD_REQUEST,
        &["unknown to this browser"],
    )
    .await;
    let res = attacker.get(&callback).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the sign-in still completes in the browser that started it"
    );
}

#[tokio::test]
async fn rp_state_expired() {
    let app = app().await;
    let browser = Browser::new();
    let callback = pending_callback(&app, &browser).await;
    app.clock.advance(Duration::from_secs(601));
    let res = browser.get(&callback).await;
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        &["longer than 10 minutes", "expired_state"],
    )
    .await;
    assert_recovers(&app).await;
}

#[tokio::test]
async fn rp_iss_authorization_response_mismatch() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::AuthorizeIss("https://evil.example".into())],
        StatusCode::BAD_REQUEST,
        &["issuer `https://evil.example`", "issuer_mismatch"],
    )
    .await;
}

#[tokio::test]
async fn rp_iss_authorization_response_missing() {
    let app = app().await;
    let browser = Browser::new();
    let callback = pending_callback(&app, &browser).await;
    let res = browser.get(&with_param(&callback, "iss", None)).await;
    assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_REQUEST,
        &["does not name its issuer"],
    )
    .await;
    assert_recovers(&app).await;
}

#[tokio::test]
async fn rp_authorization_error_access_denied() {
    let app = app().await;
    assert_case_rejected(
        &app,
        vec![MockFault::AuthorizeError("access_denied".into())],
        StatusCode::FORBIDDEN,
        &["cancelled"],
    )
    .await;
}

async fn fetch_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// A forwarding proxy in front of the mock that names itself as issuer and adds a key
/// to the JWKS (see `rp_id_token_kid_absent_multiple_jwks`).
mod proxy {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
    use axum::response::{IntoResponse, Response};

    use super::*;

    pub struct Proxy {
        pub base: String,
        shared: Arc<Shared>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        pub fn jwks_requests(&self) -> usize {
            self.shared.jwks_requests.load(Ordering::SeqCst)
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    struct Shared {
        upstream: String,
        base: String,
        extra_key: Value,
        http: reqwest::Client,
        jwks_requests: AtomicUsize,
    }

    pub async fn start(upstream: String, extra_key: Value) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream,
            base: base.clone(),
            extra_key,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            jwks_requests: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Proxy { base, shared, task }
    }

    async fn forward(
        State(p): State<Arc<Shared>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut req = p
            .http
            .request(method, format!("{}{path_and_query}", p.upstream))
            .body(body);
        for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
            if let Some(value) = headers.get(&name) {
                req = req.header(name, value);
            }
        }
        let res = req.send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let bytes = res.bytes().await.unwrap();
        let body = match uri.path() {
            "/.well-known/openid-configuration" => {
                let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
                doc["issuer"] = p.base.clone().into();
                for endpoint in ["token_endpoint", "userinfo_endpoint", "jwks_uri"] {
                    let url = doc[endpoint]
                        .as_str()
                        .unwrap()
                        .replace(&p.upstream, &p.base);
                    doc[endpoint] = url.into();
                }
                doc.to_string().into_bytes()
            }
            "/oauth/jwks" => {
                p.jwks_requests.fetch_add(1, Ordering::SeqCst);
                let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
                doc["keys"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, p.extra_key.clone());
                doc.to_string().into_bytes()
            }
            _ => bytes.to_vec(),
        };
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
