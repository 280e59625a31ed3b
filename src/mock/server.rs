//! The HTTP side: the accept loop, routing, faults that apply to every endpoint, and one
//! handler per endpoint.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use url::{Host, Url, form_urlencoded};

use super::jwt::{self, Signing, SigningKey};
use super::state::{
    AccessToken, CODE_LIFETIME, CodeGrant, RefreshGrant, Shared, TokenKind,
};
use super::users::MockUser;
use super::{MockClientAuth, MockEndpoint, MockFault};

/// The largest request body read (token endpoint forms, userinfo posts).
const MAX_BODY: usize = 64 * 1024;

/// The scopes Hugging Face lists in its discovery document.
const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "read-billing",
    "read-memberships",
    "read-repos",
    "gated-repos",
    "contribute-repos",
    "write-repos",
    "manage-repos",
    "read-collections",
    "write-collections",
    "inference-api",
    "read-endpoints",
    "write-endpoints",
    "jobs",
    "webhooks",
    "write-discussions",
];

/// A response before its body becomes a hyper body (so faults can rewrite it).
type Resp = Response<Bytes>;

/// Accepts connections until the task is aborted; aborting drops `connections`, which
/// aborts every connection task with it.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await.map(Full::new)) }
                    });
                    // A client hanging up mid-request is not the mock's problem.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    let Some(endpoint) = MockEndpoint::from_path(req.uri().path()) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "Sorry, we can't find the page you are looking for."}),
        );
    };
    shared.count(endpoint);
    let faults = shared.faults();
    let response = match before_handling(endpoint, &faults).await {
        Some(response) => response,
        None => route(shared, &faults, endpoint, req).await,
    };
    rewrite_body(endpoint, &faults, response)
}

/// Delays, then answers for the endpoint if a `Redirect` or `Status` fault says so.
async fn before_handling(endpoint: MockEndpoint, faults: &[MockFault]) -> Option<Resp> {
    for fault in faults {
        if let MockFault::Delay { endpoint: e, delay } = fault
            && *e == endpoint
        {
            tokio::time::sleep(*delay).await;
        }
    }
    faults.iter().find_map(|fault| match fault {
        MockFault::Redirect { endpoint: e, location } if *e == endpoint => {
            let mut response = empty(StatusCode::FOUND);
            let location = HeaderValue::from_str(location)
                .unwrap_or_else(|_| HeaderValue::from_static("/"));
            response.headers_mut().insert(header::LOCATION, location);
            Some(response)
        }
        MockFault::Status { endpoint: e, status } if *e == endpoint => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(json_response(
                status,
                &json!({
                    "error": "server_error",
                    "error_description": format!("mock fault: status {}", status.as_u16()),
                }),
            ))
        }
        _ => None,
    })
}

/// Applies `NotJson` and `Oversized` faults to a finished response.
fn rewrite_body(endpoint: MockEndpoint, faults: &[MockFault], mut response: Resp) -> Resp {
    for fault in faults {
        match fault {
            MockFault::NotJson { endpoint: e } if *e == endpoint => {
                *response.body_mut() = Bytes::from_static(
                    b"<!DOCTYPE html><html><body><h1>Mock fault: not JSON</h1></body></html>",
                );
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
            }
            MockFault::Oversized { endpoint: e, bytes } if *e == endpoint => {
                let padded = pad(response.body(), *bytes);
                *response.body_mut() = padded;
            }
            _ => {}
        }
    }
    response
}

/// `body` grown to `size` bytes: a JSON object gets a leading `mock_padding` member,
/// anything else trailing spaces.
fn pad(body: &Bytes, size: usize) -> Bytes {
    const KEY: &[u8] = b"{\"mock_padding\":\"";
    let is_object = body.first() == Some(&b'{');
    let rest = body.get(1..).unwrap_or_default();
    let empty_object = is_object && rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
    // `{"mock_padding":"` + filler + `",` + rest (or `"}` for an empty object).
    let overhead = KEY.len() + 2 + if empty_object { 0 } else { rest.len() };
    if !is_object || size < overhead {
        let mut out = body.to_vec();
        out.resize(size.max(body.len()), b' ');
        return out.into();
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(KEY);
    out.resize(size - overhead + KEY.len(), b'a');
    if empty_object {
        out.extend_from_slice(b"\"}");
    } else {
        out.extend_from_slice(b"\",");
        out.extend_from_slice(rest);
    }
    out.into()
}

async fn route(
    shared: &Shared,
    faults: &[MockFault],
    endpoint: MockEndpoint,
    req: Request<Incoming>,
) -> Resp {
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match endpoint {
        MockEndpoint::Discovery if get => discovery(shared, faults),
        MockEndpoint::Authorize if get => authorize(shared, faults, req.uri().query()),
        MockEndpoint::Token if method == Method::POST => token(shared, faults, req).await,
        MockEndpoint::Userinfo if get || method == Method::POST => {
            userinfo(shared, faults, req.headers())
        }
        MockEndpoint::Jwks if get => jwks(shared),
        MockEndpoint::WhoAmI if get => whoami(shared, req.headers()),
        MockEndpoint::Token => method_not_allowed("POST"),
        MockEndpoint::Userinfo => method_not_allowed("GET, POST"),
        _ => method_not_allowed("GET"),
    }
}

// ---------------------------------------------------------------------------------------
// Discovery and JWKS

fn discovery(shared: &Shared, faults: &[MockFault]) -> Resp {
    let base = &shared.config.issuer;
    let issuer = faults
        .iter()
        .rev()
        .find_map(|f| match f {
            MockFault::DiscoveryIssuer(issuer) => Some(issuer.clone()),
            _ => None,
        })
        .unwrap_or_else(|| base.clone());
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "jwks_uri": format!("{base}/oauth/jwks"),
            "device_authorization_endpoint": format!("{base}/oauth/device"),
            "registration_endpoint": format!("{base}/oauth/register"),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": [
                "iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "name",
                "preferred_username", "picture", "profile", "website", "email",
                "email_verified", "isPro", "canPay", "orgs",
            ],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

fn jwks(shared: &Shared) -> Resp {
    let key = shared.current_key();
    json_response(StatusCode::OK, &json!({ "keys": [key.jwk()] }))
}

// ---------------------------------------------------------------------------------------
// Authorize

fn authorize(shared: &Shared, faults: &[MockFault], query: Option<&str>) -> Resp {
    let config = &shared.config;
    let query = query.unwrap_or("");
    let params = match parse_params(query.as_bytes()) {
        Ok(params) => params,
        Err(name) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &format!("The parameter {name} appears more than once."),
            );
        }
    };
    let param = |name: &str| params.get(name).map(String::as_str);

    // Errors about the client or the redirect URI are shown, never redirected: the
    // redirect URI cannot be trusted until it matches a registered one.
    if param("client_id") != Some(config.client_id.as_str()) {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid client",
            "The client_id is missing or unknown.",
        );
    }
    let Some(redirect_uri) = param("redirect_uri").filter(|uri| redirect_uri_allowed(config, uri))
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect_uri",
            "The redirect_uri is missing or not registered for this client.",
        );
    };
    let back = Redirect {
        redirect_uri,
        state: param("state"),
        iss: faults
            .iter()
            .rev()
            .find_map(|f| match f {
                MockFault::AuthorizeIss(iss) => Some(iss.as_str()),
                _ => None,
            })
            .unwrap_or(&config.issuer),
    };

    if let Some(error) = faults.iter().rev().find_map(|f| match f {
        MockFault::AuthorizeError(error) => Some(error.as_str()),
        _ => None,
    }) {
        return back.error(error, "mock fault: authorize error");
    }
    if param("response_type") != Some("code") {
        return back.error(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let Some(code_challenge) = param("code_challenge") else {
        return back.error("invalid_request", "code_challenge is required (PKCE)");
    };
    if param("code_challenge_method") != Some("S256") {
        return back.error("invalid_request", "code_challenge_method must be S256");
    }
    if !is_s256_challenge(code_challenge) {
        return back.error("invalid_request", "code_challenge is not a S256 challenge");
    }
    let requested = param("scope").unwrap_or("");
    if !requested.split(' ').any(|s| s == "openid") {
        return back.error("invalid_scope", "the openid scope is required");
    }
    if param("mock_deny") == Some("1") {
        return back.error("access_denied", "The user denied the request");
    }
    let username = param("mock_user").or(config.auto_approve.as_deref());
    let Some(username) = username else {
        return consent_page(shared, query);
    };
    let Some(user) = config.user(username) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown user",
            &format!("The mock has no user {username}."),
        );
    };

    let scopes = config.users[user].grant(requested.split(' ').filter(|s| !s.is_empty()));
    let code = shared.lock().insert_code(CodeGrant {
        client_id: config.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: code_challenge.to_owned(),
        nonce: param("nonce").map(str::to_owned),
        user,
        scopes,
        auth_time: unix_now(),
        expires_at: Instant::now() + CODE_LIFETIME,
        used: false,
        issued: Vec::new(),
    });
    back.to(&[("code", &code)])
}

/// The way back to the client after a (validated) authorize request.
struct Redirect<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    iss: &'a str,
}

impl Redirect<'_> {
    fn to(&self, pairs: &[(&str, &str)]) -> Resp {
        // The URI was parsed when it was validated.
        let Ok(mut url) = Url::parse(self.redirect_uri) else {
            return empty(StatusCode::BAD_REQUEST);
        };
        {
            let mut query = url.query_pairs_mut();
            query.extend_pairs(pairs);
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.iss);
        }
        let mut response = empty(StatusCode::FOUND);
        match HeaderValue::from_str(url.as_str()) {
            Ok(location) => {
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            Err(_) => empty(StatusCode::BAD_REQUEST),
        }
    }

    fn error(&self, error: &str, description: &str) -> Resp {
        self.to(&[("error", error), ("error_description", description)])
    }
}

/// Whether `uri` may receive codes: exactly a registered URI, or one differing only in
/// the port on an `http` loopback host; with none registered, any `http` loopback URI
/// ending in `/login/callback`.
fn redirect_uri_allowed(config: &super::state::Config, uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    if config.redirect_uris.is_empty() {
        return url.scheme() == "http" && is_loopback(&url) && url.path().ends_with("/login/callback");
    }
    config.redirect_uris.iter().any(|registered| {
        if registered == uri {
            return true;
        }
        let Ok(mut registered) = Url::parse(registered) else {
            return false;
        };
        if registered.scheme() != "http" || !is_loopback(&registered) {
            return false;
        }
        let mut candidate = url.clone();
        registered.set_port(None).is_ok() && candidate.set_port(None).is_ok() && registered == candidate
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// A S256 challenge is the unpadded base64url of a SHA-256 digest: 43 characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The page a browser sees: one link per user, and one to decline.
fn consent_page(shared: &Shared, query: &str) -> Resp {
    let config = &shared.config;
    let mut links = String::new();
    for user in &config.users {
        let href = format!(
            "/oauth/authorize?{query}&mock_user={}",
            form_urlencoded::byte_serialize(user.username.as_bytes()).collect::<String>()
        );
        links.push_str(&format!(
            "<li><a class=\"user\" href=\"{}\">Continue as <b>{}</b> ({})</a></li>\n",
            escape_html(&href),
            escape_html(&user.username),
            escape_html(&user.name),
        ));
    }
    let deny = format!("/oauth/authorize?{query}&mock_deny=1");
    let title = format!(
        "Sign in to {} with Hugging Face (offline mock)",
        config.client_id
    );
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<p>This is an offline stand-in for huggingface.co. \
         Choose who to sign in as:</p>\n<ul>\n{links}</ul>\n\
         <p><a class=\"deny\" href=\"{deny}\">Deny</a></p>\n</body></html>\n",
        title = escape_html(&title),
        deny = escape_html(&deny),
    );
    html_response(StatusCode::OK, body)
}

// ---------------------------------------------------------------------------------------
// Token

async fn token(shared: &Shared, faults: &[MockFault], req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(name) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("parameter {name} appears more than once"),
            );
        }
    };
    if let Err(response) = authenticate_client(shared, &parts.headers, &params) {
        return response;
    }
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code_grant(shared, faults, &params),
        Some("refresh_token") if shared.config.refresh_tokens => {
            refresh_token_grant(shared, faults, &params)
        }
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this grant type is not supported",
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

/// Checks client authentication as the registered client requires.
fn authenticate_client(
    shared: &Shared,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(), Resp> {
    let config = &shared.config;
    let invalid = |description: &str| {
        let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"huggingface.co\""),
        );
        response
    };
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => match parse_basic(value) {
            Some(credentials) => Some(credentials),
            None => return Err(invalid("malformed Authorization header")),
        },
    };
    let post_secret = params.get("client_secret");
    if basic.is_some() && post_secret.is_some() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method, not two",
        ));
    }
    let form_id = params.get("client_id");
    let (client_id, secret, method) = match (&basic, form_id) {
        (Some((id, _)), Some(form_id)) if id != form_id => {
            return Err(invalid("client_id does not match the Authorization header"));
        }
        (Some((id, secret)), _) => (id, Some(secret), MockClientAuth::Basic),
        (None, Some(id)) => (id, post_secret, MockClientAuth::Post),
        (None, None) => return Err(invalid("client authentication is required")),
    };
    if *client_id != config.client_id {
        return Err(invalid("unknown client"));
    }
    match &config.client_secret {
        None if secret.is_some() => Err(invalid("a public client has no secret")),
        None => Ok(()),
        Some(_) if secret.is_none() => Err(invalid("client authentication is required")),
        Some(_) if !matches!(config.client_auth, MockClientAuth::Any) && config.client_auth != method => {
            Err(invalid("this client authentication method is not allowed for the client"))
        }
        Some(expected) => {
            let given = secret.map_or(&b""[..], |s| s.as_bytes());
            aws_lc_rs::constant_time::verify_slices_are_equal(given, expected.as_bytes())
                .map_err(|_| invalid("wrong client secret"))
        }
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`, decoded.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn invalid_grant(description: &str) -> Resp {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn authorization_code_grant(
    shared: &Shared,
    faults: &[MockFault],
    params: &HashMap<String, String>,
) -> Resp {
    let config = &shared.config;
    let Some(code) = params.get("code") else {
        return invalid_grant("code is required");
    };
    let mut state = shared.lock();
    let Some(grant) = state.codes.get_mut(code) else {
        return invalid_grant("unknown authorization code");
    };
    if grant.used {
        // A replayed code may be stolen: revoke what it already bought.
        let issued = std::mem::take(&mut grant.issued);
        for token in issued {
            state.revoke(&token);
        }
        return invalid_grant("authorization code was already used");
    }
    grant.used = true;
    if grant.client_id != config.client_id {
        return invalid_grant("authorization code was issued to another client");
    }
    if Instant::now() >= grant.expires_at {
        return invalid_grant("authorization code expired");
    }
    if params.get("redirect_uri") != Some(&grant.redirect_uri) {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    let Some(verifier) = params.get("code_verifier") else {
        return invalid_grant("code_verifier is required (PKCE)");
    };
    if !pkce_matches(verifier, &grant.code_challenge) {
        return invalid_grant("code_verifier does not match the code_challenge");
    }

    let (user, scopes, nonce, auth_time) = (
        grant.user,
        grant.scopes.clone(),
        grant.nonce.clone(),
        grant.auth_time,
    );
    let access_token = state.insert_access_token(
        "hf_oauth_",
        AccessToken {
            user,
            scopes: scopes.clone(),
            expires_at: Some(SystemTime::now() + config.token_lifetime),
            kind: TokenKind::OAuth,
        },
    );
    let refresh_token = config.refresh_tokens.then(|| {
        state.insert_refresh_token(RefreshGrant {
            client_id: config.client_id.clone(),
            user,
            scopes: scopes.clone(),
            auth_time,
        })
    });
    if let Some(grant) = state.codes.get_mut(code) {
        grant.issued.push(access_token.clone());
        grant.issued.extend(refresh_token.clone());
    }
    let key = Arc::clone(&state.key);
    drop(state);
    token_response(
        shared,
        faults,
        &key,
        Issued {
            user: &config.users[user],
            scopes: &scopes,
            nonce: nonce.as_deref(),
            auth_time,
            access_token,
            refresh_token,
        },
    )
}

/// RFC 7636: a 43 to 128 character verifier whose S256 transform is the challenge.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest);
    well_formed
        && aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
            .is_ok()
}

fn refresh_token_grant(
    shared: &Shared,
    faults: &[MockFault],
    params: &HashMap<String, String>,
) -> Resp {
    let config = &shared.config;
    let Some(refresh_token) = params.get("refresh_token") else {
        return invalid_grant("refresh_token is required");
    };
    let mut state = shared.lock();
    let Some(grant) = state.refresh_tokens.get(refresh_token) else {
        return invalid_grant("unknown, revoked or already used refresh token");
    };
    if grant.client_id != config.client_id {
        return invalid_grant("refresh token was issued to another client");
    }
    // A narrower `scope` may be asked for, never a wider one.
    let scopes = match params.get("scope") {
        None => grant.scopes.clone(),
        Some(asked) => {
            let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(extra) = asked.iter().find(|s| !grant.scopes.iter().any(|g| g == *s)) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("scope {extra} was not granted originally"),
                );
            }
            grant
                .scopes
                .iter()
                .filter(|g| asked.contains(&g.as_str()))
                .cloned()
                .collect()
        }
    };
    let (user, auth_time) = (grant.user, grant.auth_time);
    // Rotation: the old refresh token is spent.
    state.refresh_tokens.remove(refresh_token);
    let access_token = state.insert_access_token(
        "hf_oauth_",
        AccessToken {
            user,
            scopes: scopes.clone(),
            expires_at: Some(SystemTime::now() + config.token_lifetime),
            kind: TokenKind::OAuth,
        },
    );
    let refresh_token = state.insert_refresh_token(RefreshGrant {
        client_id: config.client_id.clone(),
        user,
        scopes: scopes.clone(),
        auth_time,
    });
    let key = Arc::clone(&state.key);
    drop(state);
    token_response(
        shared,
        faults,
        &key,
        Issued {
            user: &config.users[user],
            scopes: &scopes,
            // OpenID Connect Core 12.2: no nonce in an ID token from a refresh.
            nonce: None,
            auth_time,
            access_token,
            refresh_token: Some(refresh_token),
        },
    )
}

/// What a successful token request hands out.
struct Issued<'a> {
    user: &'a MockUser,
    scopes: &'a [String],
    nonce: Option<&'a str>,
    auth_time: u64,
    access_token: String,
    refresh_token: Option<String>,
}

fn token_response(shared: &Shared, faults: &[MockFault], key: &SigningKey, issued: Issued<'_>) -> Resp {
    let config = &shared.config;
    let token_type = faults
        .iter()
        .rev()
        .find_map(|f| match f {
            MockFault::TokenType(t) => Some(t.as_str()),
            _ => None,
        })
        .unwrap_or("bearer");
    let mut body = json!({
        "access_token": issued.access_token,
        "token_type": token_type,
        "expires_in": config.token_lifetime.as_secs(),
        "scope": issued.scopes.join(" "),
    });
    if !faults.contains(&MockFault::MissingIdToken) {
        body["id_token"] = json!(id_token(shared, faults, key, &issued));
    }
    if let Some(refresh_token) = issued.refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    let mut response = json_response(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The ID token for `issued`, honest unless an `IdToken*` fault says otherwise.
fn id_token(shared: &Shared, faults: &[MockFault], key: &SigningKey, issued: &Issued<'_>) -> String {
    let config = &shared.config;
    let now = unix_now();
    let lifetime = config.id_token_lifetime.as_secs();
    let mut claims = issued.user.profile_claims(issued.scopes);
    claims.insert("iss".into(), json!(config.issuer));
    claims.insert("aud".into(), json!(config.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + lifetime));
    claims.insert("auth_time".into(), json!(issued.auth_time));
    if let Some(nonce) = issued.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }

    let mut signing = Signing::Rs256 { with_kid: true };
    let mut unknown_kid = false;
    for fault in faults {
        match fault {
            MockFault::IdTokenIssuer(iss) => {
                claims.insert("iss".into(), json!(iss));
            }
            MockFault::IdTokenAudience(aud) => {
                claims.insert("aud".into(), json!(aud));
            }
            MockFault::IdTokenAzp(azp) => {
                claims.insert("azp".into(), json!(azp));
            }
            MockFault::IdTokenExpiredBy(ago) => {
                let exp = now.saturating_sub(ago.as_secs());
                claims.insert("exp".into(), json!(exp));
                claims.insert("iat".into(), json!(exp.saturating_sub(lifetime)));
            }
            MockFault::IdTokenIatInFuture(ahead) => {
                let iat = now + ahead.as_secs();
                claims.insert("iat".into(), json!(iat));
                claims.insert("exp".into(), json!(iat + lifetime));
            }
            MockFault::IdTokenNonce(Some(nonce)) => {
                claims.insert("nonce".into(), json!(nonce));
            }
            MockFault::IdTokenNonce(None) => {
                claims.remove("nonce");
            }
            MockFault::IdTokenWithoutSub => {
                claims.remove("sub");
            }
            MockFault::IdTokenWithoutKid => signing = Signing::Rs256 { with_kid: false },
            MockFault::IdTokenBadSignature => signing = Signing::Rs256Corrupted,
            MockFault::IdTokenAlgNone => signing = Signing::None,
            MockFault::IdTokenHs256WithPublicKey => signing = Signing::Hs256WithPublicKey,
            MockFault::IdTokenUnknownKid => unknown_kid = true,
            _ => {}
        }
    }
    let claims = Value::Object(claims);
    if unknown_kid {
        jwt::encode(&SigningKey::generate(), signing, &claims)
    } else {
        jwt::encode(key, signing, &claims)
    }
}

// ---------------------------------------------------------------------------------------
// Userinfo and whoami

fn userinfo(shared: &Shared, faults: &[MockFault], headers: &HeaderMap) -> Resp {
    let token = match bearer_token(headers) {
        Some(token) => token,
        None => return bearer_challenge(None),
    };
    let found = shared.lock().access_tokens.get(token).cloned();
    let token = match found {
        Some(t) if t.kind == TokenKind::OAuth && !t.is_expired(SystemTime::now()) => t,
        Some(t) if t.kind == TokenKind::OAuth => return bearer_challenge(Some("The access token expired")),
        _ => return bearer_challenge(Some("The access token is invalid")),
    };
    let mut info = shared.config.users[token.user].userinfo(&token.scopes);
    if let Some(sub) = faults.iter().rev().find_map(|f| match f {
        MockFault::UserinfoSub(sub) => Some(sub),
        _ => None,
    }) {
        info.insert("sub".into(), json!(sub));
    }
    json_response(StatusCode::OK, &Value::Object(info))
}

/// 401 with `WWW-Authenticate: Bearer`, and `error="invalid_token"` if a token was sent.
fn bearer_challenge(invalid: Option<&str>) -> Resp {
    let (challenge, body) = match invalid {
        Some(description) => (
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            json!({"error": "invalid_token", "error_description": description}),
        ),
        None => (
            "Bearer realm=\"huggingface.co\"".to_owned(),
            json!({"error": "invalid_request", "error_description": "a bearer token is required"}),
        ),
    };
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn whoami(shared: &Shared, headers: &HeaderMap) -> Resp {
    let found = bearer_token(headers).and_then(|token| shared.lock().access_tokens.get(token).cloned());
    let Some(token) = found.filter(|t| !t.is_expired(SystemTime::now())) else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "Invalid credentials in Authorization header"}),
        );
    };
    let user = &shared.config.users[token.user];
    let (auth, show_email) = match &token.kind {
        TokenKind::OAuth => (
            json!({
                "type": "oauth",
                "expiresAt": token.expires_at.map(rfc3339),
            }),
            token.scopes.iter().any(|s| s == "email"),
        ),
        TokenKind::User { role, display_name } => {
            let mut access_token = json!({"displayName": display_name, "role": role});
            if role == "fineGrained" {
                access_token["fineGrained"] =
                    json!({"canReadGatedRepos": false, "global": [], "scoped": []});
            }
            (json!({"type": "access_token", "accessToken": access_token}), true)
        }
    };
    json_response(StatusCode::OK, &user.whoami(show_email, auth))
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Request parameters by name; `Err(name)` if one appears twice.
fn parse_params(input: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(input) {
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(name.into_owned());
        }
    }
    Ok(params)
}

async fn read_body(body: Incoming) -> Result<Bytes, Resp> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request body too large",
        )),
        Err(_) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "could not read the request body",
        )),
    }
}

fn empty(status: StatusCode) -> Resp {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Resp {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn html_response(status: StatusCode, body: String) -> Resp {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// An error page for the user (no redirect).
fn page(status: StatusCode, title: &str, message: &str) -> Resp {
    html_response(
        status,
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body><h1>{title}</h1><p>{message}</p></body></html>\n",
            title = escape_html(title),
            message = escape_html(message),
        ),
    )
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method not allowed"}),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2024-05-01T12:00:00.000Z`, as JavaScript's `toISOString` writes it.
fn rfc3339(time: SystemTime) -> String {
    let millis = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let secs = i64::try_from(millis / 1000).unwrap_or(i64::MAX / 2);
    let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_like_javascript() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn padding_keeps_json_valid_and_hits_the_size() {
        let padded = pad(&Bytes::from_static(br#"{"a":1}"#), 1000);
        assert_eq!(padded.len(), 1000);
        let value: Value = serde_json::from_slice(&padded).unwrap();
        assert_eq!(value["a"], 1);
        let padded = pad(&Bytes::from_static(b"{}"), 100);
        assert_eq!(padded.len(), 100);
        assert!(serde_json::from_slice::<Value>(&padded).is_ok());
    }

    #[test]
    fn form_decode_handles_escapes_and_rejects_garbage() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }
}
