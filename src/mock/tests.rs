//! The mock against a real HTTP client, as the crate's code will talk to it.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use serde_json::Value;
use url::Url;

use super::state::random_token;
use super::*;

const REDIRECT: &str = "http://localhost:3000/login/callback";
const STATE: &str = "st&te =/?x";
const NONCE: &str = "n-0S6_WzA2Mj";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!("{}{}", random_token(""), random_token(""));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Pkce {
        challenge: URL_SAFE_NO_PAD.encode(digest),
        verifier,
    }
}

/// The parameters of a well-formed authorize request.
fn authorize_params(provider: &MockHfProvider, pkce: &Pkce) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", provider.client_id().to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("response_type", "code".to_owned()),
        ("scope", "openid profile email".to_owned()),
        ("state", STATE.to_owned()),
        ("nonce", NONCE.to_owned()),
        ("code_challenge", pkce.challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

/// Sets (`Some`) or removes (`None`) a parameter.
fn set(
    mut params: Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    params.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        params.push((name, value.to_owned()));
    }
    params
}

async fn authorize(provider: &MockHfProvider, params: &[(&str, String)]) -> reqwest::Response {
    client()
        .get(format!("{}/oauth/authorize", provider.issuer()))
        .query(params)
        .send()
        .await
        .unwrap()
}

/// The query parameters of the redirect back to the client.
fn redirect_back(response: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[LOCATION].to_str().unwrap();
    let url = Url::parse(location).unwrap();
    assert_eq!(
        format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
        REDIRECT
    );
    url.query_pairs().into_owned().collect()
}

/// Signs `user` in and returns the code and its PKCE verifier.
async fn sign_in(provider: &MockHfProvider, user: &str) -> (String, String) {
    let pkce = pkce();
    let params = set(authorize_params(provider, &pkce), "mock_user", Some(user));
    let back = redirect_back(&authorize(provider, &params).await);
    (back["code"].clone(), pkce.verifier)
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

/// Posts `form` to the token endpoint with client_secret_basic.
async fn token_basic(provider: &MockHfProvider, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(format!("{}/oauth/token", provider.issuer()))
        .basic_auth(provider.client_id(), provider.client_secret())
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn get_with_bearer(provider: &MockHfProvider, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", provider.issuer()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies the RS256 signature against the provider's JWKS; returns header and claims.
async fn verify_id_token(provider: &MockHfProvider, id_token: &str) -> (Value, Value) {
    let (signing_input, signature) = id_token.rsplit_once('.').unwrap();
    let (header, claims) = signing_input.split_once('.').unwrap();
    let (header, claims) = (decode_part(header), decode_part(claims));
    let jwks = client()
        .get(format!("{}/oauth/jwks", provider.issuer()))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid in JWKS");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            signing_input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("valid RS256 signature");
    (header, claims)
}

#[tokio::test]
async fn discovery_has_hugging_face_shape() {
    let provider = MockHfProvider::builder().strict().start().await.unwrap();
    let issuer = provider.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:") && !issuer.ends_with('/'));
    let (status, doc) = json(
        client()
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(doc["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/oauth/userinfo"));
    assert_eq!(doc["jwks_uri"], format!("{issuer}/oauth/jwks"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["scopes_supported"].as_array().unwrap().len(), 18);
    assert_eq!(provider.requests(MockEndpoint::Discovery), 1);
}

#[tokio::test]
async fn code_flow_with_basic_auth_reaches_userinfo_and_whoami() {
    let provider = MockHfProvider::builder().strict().start().await.unwrap();
    let pkce = pkce();
    let params = set(
        authorize_params(&provider, &pkce),
        "mock_user",
        Some("alice"),
    );
    let back = redirect_back(&authorize(&provider, &params).await);
    assert_eq!(back["state"], STATE);
    assert_eq!(back["iss"], provider.issuer());
    assert!(back["code"].len() >= 22);

    let form = code_form(&back["code"], &pkce.verifier);
    let (status, tokens) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 8 * 3600);
    assert_eq!(tokens["scope"], "openid profile email");
    assert!(tokens["refresh_token"].is_string());
    let access_token = tokens["access_token"].as_str().unwrap();
    assert!(access_token.starts_with("hf_oauth_"));

    let (_, claims) = verify_id_token(&provider, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], provider.client_id());
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["profile"], "https://huggingface.co/alice");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    assert!(claims.get("isPro").is_none());

    let (status, info) =
        json(get_with_bearer(&provider, "/oauth/userinfo", access_token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["sub"].as_str().unwrap().len(), 24);
    assert_eq!(info["isPro"], true);
    assert_eq!(info["email_verified"], true);
    assert!(info.get("canPay").is_none(), "canPay needs read-billing");
    let orgs = info["orgs"].as_array().unwrap();
    assert_eq!(orgs[0]["preferred_username"], "acme");
    assert_eq!(orgs[0]["roleInOrg"], "admin");
    assert_eq!(orgs[0]["plan"], "team");

    let (status, me) = json(get_with_bearer(&provider, "/api/whoami-v2", access_token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["type"], "user");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["id"], info["sub"]);
    assert_eq!(me["auth"]["type"], "oauth");
    assert!(me["auth"]["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(me["orgs"][0]["name"], "acme");
}

#[tokio::test]
async fn code_flow_with_post_auth() {
    let provider = MockHfProvider::builder()
        .with_client_auth(MockClientAuth::Post)
        .start()
        .await
        .unwrap();
    let (code, verifier) = sign_in(&provider, "bob").await;
    let mut form = code_form(&code, &verifier);

    // Basic is not allowed for this client.
    let (status, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    let (code, verifier) = sign_in(&provider, "bob").await;
    form = code_form(&code, &verifier);
    form.push(("client_id", provider.client_id()));
    form.push(("client_secret", provider.client_secret().unwrap()));
    let response = client()
        .post(format!("{}/oauth/token", provider.issuer()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, tokens) = json(response).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, claims) = verify_id_token(&provider, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["preferred_username"], "bob");
}

#[tokio::test]
async fn public_client_uses_pkce_without_a_secret() {
    let provider = MockHfProvider::builder()
        .with_client_secret(None)
        .start()
        .await
        .unwrap();
    assert_eq!(provider.client_secret(), None);
    let (code, verifier) = sign_in(&provider, "alice").await;
    let mut form = code_form(&code, &verifier);
    form.push(("client_id", provider.client_id()));
    form.push(("client_secret", "guess"));
    let response = client()
        .post(format!("{}/oauth/token", provider.issuer()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (code, verifier) = sign_in(&provider, "alice").await;
    let mut form = code_form(&code, &verifier);
    form.push(("client_id", provider.client_id()));
    let response = client()
        .post(format!("{}/oauth/token", provider.issuer()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_rejects_wrong_client_secret() {
    let provider = MockHfProvider::start().await.unwrap();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let response = client()
        .post(format!("{}/oauth/token", provider.issuer()))
        .basic_auth(provider.client_id(), Some("wrong"))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key(WWW_AUTHENTICATE));
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    // No client authentication at all.
    let response = client()
        .post(format!("{}/oauth/token", provider.issuer()))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn authorize_never_redirects_to_an_unregistered_uri() {
    let provider = MockHfProvider::builder()
        .add_redirect_uri("http://localhost:3000/login/callback")
        .add_redirect_uri("https://me-app.hf.space/login/callback")
        .start()
        .await
        .unwrap();
    let pkce = pkce();
    for bad in [
        "https://evil.example/login/callback",
        "https://me-app.hf.space/login/callback/",
        "https://me-app.hf.space:8443/login/callback",
        "http://localhost:3000/login/callback#frag",
        "not a url",
    ] {
        let params = set(
            authorize_params(&provider, &pkce),
            "redirect_uri",
            Some(bad),
        );
        let params = set(params, "mock_user", Some("alice"));
        let response = authorize(&provider, &params).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(!response.headers().contains_key(LOCATION), "{bad}");
    }
    // Unknown client: a page, not a redirect.
    let params = set(
        authorize_params(&provider, &pkce),
        "client_id",
        Some("other"),
    );
    let response = authorize(&provider, &params).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.headers().contains_key(LOCATION));

    // A loopback host may use any port; other hosts must match exactly.
    for good in [
        "http://localhost:49152/login/callback",
        "https://me-app.hf.space/login/callback",
    ] {
        let params = set(
            authorize_params(&provider, &pkce),
            "redirect_uri",
            Some(good),
        );
        let params = set(params, "mock_user", Some("alice"));
        let response = authorize(&provider, &params).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{good}");
        assert!(
            response.headers()[LOCATION]
                .to_str()
                .unwrap()
                .starts_with(good)
        );
    }
    assert_eq!(provider.requests(MockEndpoint::Authorize), 8);
}

#[tokio::test]
async fn authorize_requires_s256_pkce_and_openid() {
    let provider = MockHfProvider::builder().strict().start().await.unwrap();
    let pkce = pkce();
    let base = set(
        authorize_params(&provider, &pkce),
        "mock_user",
        Some("alice"),
    );
    let cases = [
        (set(base.clone(), "code_challenge", None), "invalid_request"),
        (
            set(base.clone(), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            set(base.clone(), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            set(base.clone(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            set(base.clone(), "scope", Some("profile email")),
            "invalid_scope",
        ),
        (set(base.clone(), "mock_deny", Some("1")), "access_denied"),
    ];
    for (params, error) in cases {
        let back = redirect_back(&authorize(&provider, &params).await);
        assert_eq!(back["error"], error);
        assert_eq!(back["state"], STATE);
        assert!(!back.contains_key("code"));
    }
}

#[tokio::test]
async fn authorize_shows_a_page_listing_the_users() {
    let provider = MockHfProvider::start().await.unwrap();
    let response = authorize(&provider, &authorize_params(&provider, &pkce())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("Sign in to mock-client-id with Hugging Face (offline mock)"));
    assert!(page.contains("mock_user=alice") && page.contains("mock_user=carol"));
    assert!(page.contains("mock_deny=1"));

    let params = set(
        authorize_params(&provider, &pkce()),
        "mock_user",
        Some("mallory"),
    );
    assert_eq!(
        authorize(&provider, &params).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn auto_approve_signs_in_without_a_page() {
    let provider = MockHfProvider::builder()
        .with_auto_approve(Some("carol".into()))
        .start()
        .await
        .unwrap();
    let back = redirect_back(&authorize(&provider, &authorize_params(&provider, &pkce())).await);
    assert!(back.contains_key("code"));
    assert!(
        MockHfProvider::builder()
            .with_auto_approve(Some("nobody".into()))
            .start()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn token_rejects_wrong_verifier_and_redirect_uri() {
    let provider = MockHfProvider::start().await.unwrap();
    let (code, _) = sign_in(&provider, "alice").await;
    let other = pkce();
    let (status, body) =
        json(token_basic(&provider, &code_form(&code, &other.verifier)).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (code, verifier) = sign_in(&provider, "alice").await;
    let mut form = code_form(&code, &verifier);
    form.retain(|(n, _)| *n != "code_verifier");
    let (_, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(body["error"], "invalid_grant");

    let (code, verifier) = sign_in(&provider, "alice").await;
    let mut form = code_form(&code, &verifier);
    form[2] = ("redirect_uri", "http://localhost:3001/login/callback");
    let (_, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(body["error"], "invalid_grant");

    let (_, body) = json(token_basic(&provider, &code_form("made-up", &verifier)).await).await;
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn token_rejects_reused_code_and_revokes_its_access_token() {
    let provider = MockHfProvider::start().await.unwrap();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let form = code_form(&code, &verifier);
    let (status, tokens) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::OK);
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        get_with_bearer(&provider, "/oauth/userinfo", access_token)
            .await
            .status(),
        StatusCode::OK
    );

    let (status, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let response = get_with_bearer(&provider, "/oauth/userinfo", access_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(provider.requests(MockEndpoint::Token), 2);
}

#[tokio::test]
async fn expired_access_token_is_rejected() {
    let provider = MockHfProvider::builder()
        .with_token_lifetime(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (_, tokens) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    assert_eq!(tokens["expires_in"], 0);
    let access_token = tokens["access_token"].as_str().unwrap();
    let response = get_with_bearer(&provider, "/oauth/userinfo", access_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    let (status, body) =
        json(get_with_bearer(&provider, "/api/whoami-v2", access_token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "Invalid credentials in Authorization header");
}

#[tokio::test]
async fn refresh_tokens_rotate() {
    let provider = MockHfProvider::start().await.unwrap();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (_, first) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, second) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], first["scope"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (_, claims) = verify_id_token(&provider, second["id_token"].as_str().unwrap()).await;
    assert!(claims.get("nonce").is_none());

    let (status, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let provider = MockHfProvider::builder()
        .with_refresh_tokens(false)
        .start()
        .await
        .unwrap();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (_, tokens) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    assert!(tokens.get("refresh_token").is_none());
}

/// A clock only tests move.
#[derive(Debug)]
struct StepClock(std::sync::Mutex<std::time::SystemTime>);

impl StepClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new(std::time::SystemTime::now())))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl crate::Clock for StepClock {
    fn now(&self) -> std::time::SystemTime {
        *self.0.lock().unwrap()
    }
}

/// Signs `user` in and returns the token response's refresh token.
async fn first_refresh_token(provider: &MockHfProvider) -> String {
    let (code, verifier) = sign_in(provider, "alice").await;
    let (_, tokens) = json(token_basic(provider, &code_form(&code, &verifier)).await).await;
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

/// Refreshes with `token`: the status, the `error` or the next refresh token.
async fn refresh(provider: &MockHfProvider, token: &str) -> (StatusCode, String) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    let (status, body) = json(token_basic(provider, &form).await).await;
    let value = match status {
        StatusCode::OK => &body["refresh_token"],
        _ => &body["error"],
    };
    (status, value.as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_reused_refresh_token_is_refused_and_counted() {
    let provider = MockHfProvider::start().await.unwrap();
    let first = first_refresh_token(&provider).await;
    let (status, second) = refresh(&provider, &first).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(provider.reused_refresh_tokens(), 0, "one use is no reuse");

    assert_eq!(
        refresh(&provider, &first).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
    assert_eq!(refresh(&provider, &first).await.1, "invalid_grant");
    assert_eq!(provider.reused_refresh_tokens(), 2);

    // Unknown and revoked tokens are refused but are not reuse.
    assert_eq!(
        refresh(&provider, "hf_oauth_refresh_x").await.1,
        "invalid_grant"
    );
    provider.revoke_token(&second);
    assert_eq!(refresh(&provider, &second).await.1, "invalid_grant");
    assert_eq!(provider.reused_refresh_tokens(), 2);
}

#[tokio::test]
async fn a_refresh_token_chain_ends_at_its_lifetime_however_often_it_is_used() {
    let clock = StepClock::new();
    let provider = MockHfProvider::builder()
        .with_refresh_token_lifetime(Duration::from_secs(100))
        .with_clock(clock.clone())
        .start()
        .await
        .unwrap();
    let mut token = first_refresh_token(&provider).await;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(33));
        let (status, next) = refresh(&provider, &token).await;
        assert_eq!(status, StatusCode::OK, "{next}");
        token = next;
    }
    // 99 s after the sign-in: one second left.
    clock.advance(Duration::from_secs(1));
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", token.as_str()),
    ];
    let (status, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "refresh token expired");
    assert_eq!(provider.reused_refresh_tokens(), 0, "expiry is not reuse");

    // A new sign-in starts a new chain.
    let token = first_refresh_token(&provider).await;
    clock.advance(Duration::from_secs(99));
    assert_eq!(refresh(&provider, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_idle_refresh_token_expires_and_each_use_slides_the_window() {
    let clock = StepClock::new();
    let provider = MockHfProvider::builder()
        .with_refresh_token_idle_timeout(Duration::from_secs(60))
        .with_clock(clock.clone())
        .start()
        .await
        .unwrap();
    let mut token = first_refresh_token(&provider).await;
    // Used every 59 s, far past one window in all.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(59));
        let (status, next) = refresh(&provider, &token).await;
        assert_eq!(status, StatusCode::OK, "{next}");
        token = next;
    }
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        refresh(&provider, &token).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
}

#[tokio::test]
async fn tokens_are_issued_and_expire_by_the_mock_clock() {
    let clock = StepClock::new();
    let provider = MockHfProvider::builder()
        .with_token_lifetime(Duration::from_secs(600))
        .with_clock(clock.clone())
        .start()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1_000_000));
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (_, tokens) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    let (_, claims) = verify_id_token(&provider, tokens["id_token"].as_str().unwrap()).await;
    let now = crate::clock::unix_seconds(clock.as_ref());
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["auth_time"], now);
    let access_token = tokens["access_token"].as_str().unwrap();
    clock.advance(Duration::from_secs(599));
    let response = get_with_bearer(&provider, "/oauth/userinfo", access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    let response = get_with_bearer(&provider, "/oauth/userinfo", access_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotate_keys_changes_the_kid_and_the_jwks() {
    let provider = MockHfProvider::start().await.unwrap();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (_, tokens) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    let (old_header, _) = verify_id_token(&provider, tokens["id_token"].as_str().unwrap()).await;

    provider.rotate_keys();
    let jwks: Value = client()
        .get(format!("{}/oauth/jwks", provider.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0]["kid"], old_header["kid"]);
    assert_eq!(keys[0]["alg"], "RS256");

    let (code, verifier) = sign_in(&provider, "alice").await;
    let (_, tokens) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    let (new_header, _) = verify_id_token(&provider, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(new_header["kid"], keys[0]["kid"]);
}

#[tokio::test]
async fn id_token_faults_forge_tokens() {
    let provider = MockHfProvider::start().await.unwrap();
    let id_token = |tokens: &Value| tokens["id_token"].as_str().unwrap().to_owned();
    let exchange = async |user: &str| {
        let (code, verifier) = sign_in(&provider, user).await;
        json(token_basic(&provider, &code_form(&code, &verifier)).await)
            .await
            .1
    };

    provider.add_fault(MockFault::IdTokenAlgNone);
    let token = id_token(&exchange("alice").await);
    assert!(token.ends_with('.'));
    assert_eq!(decode_part(token.split('.').next().unwrap())["alg"], "none");
    provider.clear_faults();

    provider.add_fault(MockFault::IdTokenHs256WithPublicKey);
    let token = id_token(&exchange("alice").await);
    assert_eq!(
        decode_part(token.split('.').next().unwrap())["alg"],
        "HS256"
    );
    provider.clear_faults();

    provider.add_fault(MockFault::IdTokenUnknownKid);
    provider.add_fault(MockFault::IdTokenNonce(None));
    provider.add_fault(MockFault::IdTokenAudience(vec!["a".into(), "b".into()]));
    let token = id_token(&exchange("alice").await);
    let parts: Vec<&str> = token.split('.').collect();
    let (header, claims) = (decode_part(parts[0]), decode_part(parts[1]));
    assert_eq!(header["alg"], "RS256");
    assert!(claims.get("nonce").is_none());
    assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
    let jwks: Value = client()
        .get(format!("{}/oauth/jwks", provider.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(jwks["keys"][0]["kid"], header["kid"]);
    provider.clear_faults();

    provider.add_fault(MockFault::IdTokenExpiredBy(Duration::from_secs(600)));
    provider.add_fault(MockFault::MissingIdToken);
    provider.add_fault(MockFault::TokenType("Bearer".into()));
    let tokens = exchange("alice").await;
    assert!(tokens.get("id_token").is_none());
    assert_eq!(tokens["token_type"], "Bearer");
    provider.clear_faults();

    provider.add_fault(MockFault::IdTokenExpiredBy(Duration::from_secs(600)));
    let (_, claims) = verify_id_token(&provider, &id_token(&exchange("alice").await)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(claims["exp"].as_u64().unwrap() <= now - 599);
}

#[tokio::test]
async fn endpoint_faults_change_answers() {
    let provider = MockHfProvider::start().await.unwrap();
    let issuer = provider.issuer();
    let discovery = format!("{issuer}/.well-known/openid-configuration");

    provider.add_fault(MockFault::DiscoveryIssuer("https://huggingface.co".into()));
    let (_, doc) = json(client().get(&discovery).send().await.unwrap()).await;
    assert_eq!(doc["issuer"], "https://huggingface.co");
    assert_eq!(doc["token_endpoint"], format!("{issuer}/oauth/token"));
    provider.clear_faults();

    provider.add_fault(MockFault::Status {
        endpoint: MockEndpoint::Token,
        status: 503,
    });
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (status, body) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].is_string());
    provider.clear_faults();

    provider.add_fault(MockFault::AuthorizeError("server_error".into()));
    provider.add_fault(MockFault::AuthorizeIss("https://evil.example".into()));
    let params = set(
        authorize_params(&provider, &pkce()),
        "mock_user",
        Some("alice"),
    );
    let back = redirect_back(&authorize(&provider, &params).await);
    assert_eq!(back["error"], "server_error");
    assert_eq!(back["iss"], "https://evil.example");
    provider.clear_faults();

    let jwks = format!("{issuer}/oauth/jwks");
    provider.add_fault(MockFault::Oversized {
        endpoint: MockEndpoint::Jwks,
        bytes: 100_000,
    });
    let body = client()
        .get(&jwks)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 100_000);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    provider.clear_faults();

    provider.add_fault(MockFault::NotJson {
        endpoint: MockEndpoint::Jwks,
    });
    let body = client()
        .get(&jwks)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    provider.clear_faults();

    provider.add_fault(MockFault::Redirect {
        endpoint: MockEndpoint::Userinfo,
        location: "https://elsewhere.example/".into(),
    });
    let response = get_with_bearer(&provider, "/oauth/userinfo", "whatever").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()[LOCATION], "https://elsewhere.example/");
    provider.clear_faults();

    provider.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Jwks,
        delay: Duration::from_millis(200),
    });
    let started = std::time::Instant::now();
    client().get(&jwks).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));

    assert_eq!(provider.requests(MockEndpoint::Discovery), 1);
    assert_eq!(provider.requests(MockEndpoint::Jwks), 3);
    assert_eq!(provider.requests(MockEndpoint::Userinfo), 1);
    assert_eq!(provider.requests(MockEndpoint::WhoAmI), 0);
}

#[tokio::test]
async fn fail_one_in_fails_every_nth_request_from_when_it_is_added() {
    let provider = MockHfProvider::start().await.unwrap();
    let issuer = provider.issuer();
    let jwks = format!("{issuer}/oauth/jwks");
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let status = |url: &str| {
        let request = client().get(url);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    status(&jwks).await;
    provider.add_fault(MockFault::FailOneIn {
        endpoint: Some(MockEndpoint::Jwks),
        n: 3,
    });
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(status(&jwks).await);
        assert_eq!(status(&discovery).await, 200, "other endpoints are spared");
    }
    assert_eq!(seen, [200, 200, 503, 200, 200, 503]);
    let (code, body) = json(client().get(&jwks).send().await.unwrap()).await;
    assert_eq!(code, StatusCode::OK);
    assert!(body["keys"].is_array());

    provider.clear_faults();
    provider.add_fault(MockFault::FailOneIn {
        endpoint: None,
        n: 2,
    });
    let response = client().get(&discovery).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "counting starts afresh");
    let (code, body) = json(client().get(&jwks).send().await.unwrap()).await;
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "endpoints count together"
    );
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(status(&jwks).await, 200);
    assert_eq!(status(&discovery).await, 503);

    provider.clear_faults();
    provider.add_fault(MockFault::FailOneIn {
        endpoint: Some(MockEndpoint::Discovery),
        n: 0,
    });
    assert_eq!(status(&discovery).await, 503, "n = 0 fails every request");
    assert_eq!(status(&discovery).await, 503);
    assert_eq!(provider.requests(MockEndpoint::Discovery), 10);
}

#[tokio::test]
async fn user_tokens_work_at_whoami_until_revoked() {
    let provider = MockHfProvider::start().await.unwrap();
    assert_eq!(provider.users(), ["alice", "bob", "carol"]);
    let token = provider.issue_user_token("carol", "fineGrained");
    assert!(token.starts_with("hf_") && !token.starts_with("hf_oauth_"));
    let (status, me) = json(get_with_bearer(&provider, "/api/whoami-v2", &token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "carol");
    assert_eq!(me["auth"]["type"], "access_token");
    assert_eq!(me["auth"]["accessToken"]["role"], "fineGrained");
    assert_eq!(me["orgs"].as_array().unwrap().len(), 41);
    assert!(me["avatarUrl"].as_str().unwrap().starts_with('/'));

    let response = get_with_bearer(&provider, "/oauth/userinfo", &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    provider.revoke_token(&token);
    let response = get_with_bearer(&provider, "/api/whoami-v2", &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_grant_only_the_scopes_they_allow() {
    let provider = MockHfProvider::builder()
        .add_user(
            MockUser::new("dora")
                .with_granted_scopes(Some(vec!["profile".into(), "read-repos".into()]))
                .with_legacy_shape(true)
                .add_org(
                    MockOrg::new("maps")
                        .with_plan(Some("enterprise"))
                        .with_security_restrictions(vec!["sso".into()]),
                ),
        )
        .start()
        .await
        .unwrap();
    let pkce = pkce();
    let params = set(
        authorize_params(&provider, &pkce),
        "mock_user",
        Some("dora"),
    );
    let params = set(
        params,
        "scope",
        Some("read-repos email openid profile read-repos brand-new-scope"),
    );
    let back = redirect_back(&authorize(&provider, &params).await);
    let (_, tokens) =
        json(token_basic(&provider, &code_form(&back["code"], &pkce.verifier)).await).await;
    assert_eq!(tokens["scope"], "read-repos openid profile");
    let access_token = tokens["access_token"].as_str().unwrap();
    let (_, info) = json(get_with_bearer(&provider, "/oauth/userinfo", access_token).await).await;
    assert!(info.get("email").is_none());
    let org = &info["orgs"][0];
    assert_eq!(org["isEnterprise"], true);
    assert_eq!(org["pendingSSO"], true);
    assert_eq!(org["missingMFA"], false);
    assert!(org.get("plan").is_none());
}

#[tokio::test]
async fn malformed_requests_get_client_errors() {
    let provider = MockHfProvider::start().await.unwrap();
    let issuer = provider.issuer();
    let token_url = format!("{issuer}/oauth/token");

    let response = client().get(format!("{issuer}/nope")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = client()
        .post(&token_url)
        .basic_auth(provider.client_id(), provider.client_secret())
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let response = client()
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic %%%not-base64")
        .body(vec![0xff, 0x00, b'&', b'=', b'%'])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = client()
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let form = [("grant_type", "password"), ("username", "alice")];
    let (status, body) = json(token_basic(&provider, &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    let response = client()
        .get(format!("{issuer}/oauth/authorize?client_id=a&client_id=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let response = client()
        .get(format!("{issuer}/oauth/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        client().get(&token_url).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(provider.requests(MockEndpoint::Token), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_multi_thread_runtime_and_stops_on_drop() {
    let provider = MockHfProvider::start().await.unwrap();
    let addr = provider.addr();
    let (code, verifier) = sign_in(&provider, "alice").await;
    let (status, _) = json(token_basic(&provider, &code_form(&code, &verifier)).await).await;
    assert_eq!(status, StatusCode::OK);
    drop(provider);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
