//! `GET /oauth/authorize`: validating the request, the consent page, issuing codes.

use std::collections::HashMap;
use std::time::Instant;

use http::StatusCode;
use http::header::{self, HeaderValue};
use url::{Host, Url, form_urlencoded};

use super::MockFault;
use super::state::{CODE_LIFETIME, CodeGrant, Config, Shared};
use super::util::{Resp, empty, escape_html, html_response, page, parse_params};

/// Validates an authorize request and answers with a page or a redirect back: never a
/// redirect to an unvalidated `redirect_uri`.
pub(super) fn authorize(shared: &Shared, faults: &[MockFault], query: Option<&str>) -> Resp {
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
        iss: fault_iss(faults).or(config.strict.iss.then_some(config.issuer.as_str())),
    };

    if let Some(error) = faults.iter().rev().find_map(|f| match f {
        MockFault::AuthorizeError(error) => Some(error.as_str()),
        _ => None,
    }) {
        return back.error(error, "mock fault: authorize error");
    }
    let (code_challenge, requested) = match checked_request(config, &params) {
        Ok(checked) => checked,
        Err((error, description)) => return back.error(error, &description),
    };
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

    let grant = Consent {
        user,
        redirect_uri,
        code_challenge,
        requested,
        nonce: param("nonce"),
        org_ids: param("orgIds").unwrap_or(""),
    };
    let code = consent(shared, grant);
    back.to(&[("code", &code)])
}

/// What the user approved on the consent screen.
struct Consent<'a> {
    user: usize,
    redirect_uri: &'a str,
    code_challenge: Option<&'a str>,
    requested: &'a str,
    nonce: Option<&'a str>,
    /// Comma-separated ids of organizations asked for (`orgIds`).
    org_ids: &'a str,
}

/// Grants what was asked (scopes the user allows, organizations asked for) and issues a
/// code for it.
fn consent(shared: &Shared, grant: Consent<'_>) -> String {
    let mut state = shared.lock();
    let user = &mut state.users[grant.user];
    user.grant_orgs(grant.org_ids.split(',').filter(|id| !id.is_empty()));
    let scopes = user.grant(grant.requested.split(' ').filter(|s| !s.is_empty()));
    state.insert_code(CodeGrant {
        client_id: shared.config.client_id.clone(),
        redirect_uri: grant.redirect_uri.to_owned(),
        code_challenge: grant.code_challenge.map(str::to_owned),
        nonce: grant.nonce.map(str::to_owned),
        user: grant.user,
        scopes,
        auth_time: shared.unix_now(),
        expires_at: Instant::now() + CODE_LIFETIME,
        used: false,
        issued: Vec::new(),
    })
}

/// The `iss` a [`MockFault::AuthorizeIss`] puts on the way back, if any.
fn fault_iss(faults: &[MockFault]) -> Option<&str> {
    faults.iter().rev().find_map(|f| match f {
        MockFault::AuthorizeIss(iss) => Some(iss.as_str()),
        _ => None,
    })
}

/// The checks whose failure goes back to the client as an `error`: code flow; PKCE
/// S256 when a challenge is sent, and always for public clients (or in strict mode);
/// `openid` only in strict mode; scopes within the app's allowed set. The code
/// challenge and the requested scopes when they pass.
fn checked_request<'a>(
    config: &Config,
    params: &'a HashMap<String, String>,
) -> Result<(Option<&'a str>, &'a str), (&'static str, String)> {
    let param = |name: &str| params.get(name).map(String::as_str);
    let fail = |error, description: &str| Err((error, description.to_owned()));
    if param("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let code_challenge = param("code_challenge");
    let pkce_required = config.strict.pkce || config.client_secret.is_none();
    match code_challenge {
        None if pkce_required => {
            return fail("invalid_request", "code_challenge is required (PKCE)");
        }
        None => {}
        Some(_) if param("code_challenge_method") != Some("S256") => {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        Some(challenge) if !is_s256_challenge(challenge) => {
            return fail("invalid_request", "code_challenge is not a S256 challenge");
        }
        Some(_) => {}
    }
    let requested = param("scope").unwrap_or("");
    if config.strict.openid && !requested.split(' ').any(|s| s == "openid") {
        return fail("invalid_scope", "the openid scope is required");
    }
    if let Some(allowed) = &config.allowed_scopes {
        let refused = requested
            .split(' ')
            .filter(|s| !s.is_empty())
            .find(|s| !allowed.iter().any(|a| a == s));
        if let Some(scope) = refused {
            let scope: String = scope
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            return Err((
                "invalid_scope",
                format!("the scope {scope} is not allowed for this app"),
            ));
        }
    }
    Ok((code_challenge, requested))
}

/// The way back to the client after a (validated) authorize request.
struct Redirect<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    /// RFC 9207 `iss`: sent in strict mode (huggingface.co sends none) or by a fault.
    iss: Option<&'a str>,
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
            if let Some(iss) = self.iss {
                query.append_pair("iss", iss);
            }
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
fn redirect_uri_allowed(config: &Config, uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    // On a Space, any redirect URI that targets the Space is accepted.
    if let Some(host) = &config.space_host
        && url.scheme() == "https"
        && url.host_str() == Some(host.as_str())
    {
        return true;
    }
    if config.redirect_uris.is_empty() {
        return url.scheme() == "http"
            && is_loopback(&url)
            && url.path().ends_with("/login/callback");
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
        registered.set_port(None).is_ok()
            && candidate.set_port(None).is_ok()
            && registered == candidate
    })
}

/// `localhost`, `127.0.0.1` or `[::1]`.
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
