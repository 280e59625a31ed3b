//! `POST /oauth/token`: client authentication, the authorization code and refresh token
//! grants, and the ID token (honest or forged).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::jwt::{self, Signing, SigningKey};
use super::state::{AccessToken, CodeGrant, RefreshGrant, Shared, TokenKind};
use super::users::MockUser;
use super::util::{Resp, json_response, oauth_error, parse_params, read_body};
use super::{MockClientAuth, MockFault};

/// Authenticates the client, then runs the grant.
pub(super) async fn token(shared: &Shared, faults: &[MockFault], req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
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
    if let Some(response) = reject_client(shared, &parts.headers, &params) {
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

/// Checks client authentication as the registered client requires; `Some` is the
/// rejection.
fn reject_client(
    shared: &Shared,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Option<Resp> {
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
            None => return Some(invalid("malformed Authorization header")),
        },
    };
    let post_secret = params.get("client_secret");
    if basic.is_some() && post_secret.is_some() {
        return Some(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method, not two",
        ));
    }
    let form_id = params.get("client_id");
    let (client_id, secret, method) = match (&basic, form_id) {
        (Some((id, _)), Some(form_id)) if id != form_id => {
            return Some(invalid("client_id does not match the Authorization header"));
        }
        (Some((id, secret)), _) => (id, Some(secret), MockClientAuth::Basic),
        (None, Some(id)) => (id, post_secret, MockClientAuth::Post),
        (None, None) => return Some(invalid("client authentication is required")),
    };
    if *client_id != config.client_id {
        return Some(invalid("unknown client"));
    }
    match &config.client_secret {
        None if secret.is_some() => Some(invalid("a public client has no secret")),
        None => None,
        Some(_) if secret.is_none() => Some(invalid("client authentication is required")),
        Some(_)
            if !matches!(config.client_auth, MockClientAuth::Any)
                && config.client_auth != method =>
        {
            Some(invalid(
                "this client authentication method is not allowed for the client",
            ))
        }
        Some(expected) => {
            let given = secret.map_or(&b""[..], |s| s.as_bytes());
            aws_lc_rs::constant_time::verify_slices_are_equal(given, expected.as_bytes())
                .err()
                .map(|_| invalid("wrong client secret"))
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

/// The answer to every bad code, verifier, redirect URI or refresh token.
fn invalid_grant(description: &str) -> Resp {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// Redeems a code: single use, unexpired, same redirect URI, PKCE verifier matching.
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
    if let Err(description) = redeemable(grant, &config.client_id, params) {
        return invalid_grant(description);
    }

    let (user, scopes, nonce, auth_time) = (
        grant.user,
        grant.scopes.clone(),
        grant.nonce.clone(),
        grant.auth_time,
    );
    let now = shared.now();
    let access_token = state.insert_access_token(
        "hf_oauth_",
        AccessToken {
            user,
            scopes: scopes.clone(),
            expires_at: Some(now + config.token_lifetime),
            kind: TokenKind::OAuth,
        },
        now,
    );
    // A sign-in starts a new chain of refresh tokens.
    let chain_expires_at = config.refresh_lifetime.map(|life| now + life);
    let refresh_token = config.refresh_tokens.then(|| {
        state.insert_refresh_token(RefreshGrant::new(
            config,
            user,
            scopes.clone(),
            auth_time,
            chain_expires_at,
            now,
        ))
    });
    if let Some(grant) = state.codes.get_mut(code) {
        grant.issued.push(access_token.clone());
        grant.issued.extend(refresh_token.clone());
    }
    let key = Arc::clone(&state.key);
    let user = state.users[user].clone();
    drop(state);
    token_response(
        shared,
        faults,
        &key,
        Issued {
            user: &user,
            scopes: &scopes,
            nonce: nonce.as_deref(),
            auth_time,
            access_token,
            refresh_token,
        },
    )
}

/// Whether the (first use of the) code may be redeemed by this token request: same
/// client, unexpired, same redirect URI, and the PKCE verifier of its challenge.
fn redeemable(
    grant: &CodeGrant,
    client_id: &str,
    params: &HashMap<String, String>,
) -> Result<(), &'static str> {
    if grant.client_id != client_id {
        return Err("authorization code was issued to another client");
    }
    if Instant::now() >= grant.expires_at {
        return Err("authorization code expired");
    }
    if params.get("redirect_uri") != Some(&grant.redirect_uri) {
        return Err("redirect_uri does not match the authorization request");
    }
    // PKCE binds the code to the client that asked for it, when it sent a challenge.
    if let Some(challenge) = &grant.code_challenge {
        let Some(verifier) = params.get("code_verifier") else {
            return Err("code_verifier is required (PKCE)");
        };
        if !pkce_matches(verifier, challenge) {
            return Err("code_verifier does not match the code_challenge");
        }
    }
    Ok(())
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
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            computed.as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

/// Redeems a refresh token once and hands out a new one (rotation).
fn refresh_token_grant(
    shared: &Shared,
    faults: &[MockFault],
    params: &HashMap<String, String>,
) -> Resp {
    let config = &shared.config;
    let Some(refresh_token) = params.get("refresh_token") else {
        return invalid_grant("refresh_token is required");
    };
    let now = shared.now();
    let mut state = shared.lock();
    if state.spent_refresh_tokens.contains(refresh_token) {
        // Rotation means one use: a second one is a replay, or two clients racing.
        state.reused_refresh_tokens += 1;
        return invalid_grant("refresh token was already used");
    }
    let Some(grant) = state.refresh_tokens.get(refresh_token) else {
        return invalid_grant("unknown or revoked refresh token");
    };
    if grant.client_id != config.client_id {
        return invalid_grant("refresh token was issued to another client");
    }
    if grant.is_expired(now) {
        return invalid_grant("refresh token expired");
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
    let (user, auth_time, chain_expires_at) = (grant.user, grant.auth_time, grant.chain_expires_at);
    // Rotation: the old refresh token is spent.
    state.refresh_tokens.remove(refresh_token);
    state.spent_refresh_tokens.insert(refresh_token.clone());
    let access_token = state.insert_access_token(
        "hf_oauth_",
        AccessToken {
            user,
            scopes: scopes.clone(),
            expires_at: Some(now + config.token_lifetime),
            kind: TokenKind::OAuth,
        },
        now,
    );
    // The next token of the chain: the chain's end stays, the idle window starts anew.
    let refresh_token = state.insert_refresh_token(RefreshGrant::new(
        config,
        user,
        scopes.clone(),
        auth_time,
        chain_expires_at,
        now,
    ));
    let key = Arc::clone(&state.key);
    let user = state.users[user].clone();
    drop(state);
    token_response(
        shared,
        faults,
        &key,
        Issued {
            user: &user,
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

/// The JSON token response, with faults applied.
fn token_response(
    shared: &Shared,
    faults: &[MockFault],
    key: &SigningKey,
    issued: Issued<'_>,
) -> Resp {
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
    // An ID token only when `openid` was granted, as OpenID Connect has it.
    let openid = issued.scopes.iter().any(|s| s == "openid");
    if openid && !faults.contains(&MockFault::MissingIdToken) {
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
fn id_token(
    shared: &Shared,
    faults: &[MockFault],
    key: &SigningKey,
    issued: &Issued<'_>,
) -> String {
    let config = &shared.config;
    let now = shared.unix_now();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decode_handles_escapes_and_rejects_garbage() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }
}
