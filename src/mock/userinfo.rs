//! The endpoints that take a bearer token: `/oauth/userinfo` and `/api/whoami-v2`.

use std::time::Instant;

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::MockFault;
use super::state::{Shared, TokenKind};
use super::util::{Resp, json_response, rfc3339};

/// `/oauth/userinfo`: OAuth access tokens only.
pub(super) fn userinfo(shared: &Shared, faults: &[MockFault], headers: &HeaderMap) -> Resp {
    let token = match bearer_token(headers) {
        Some(token) => token,
        None => return bearer_challenge(None),
    };
    let found = shared.lock().access_tokens.get(token).cloned();
    let token = match found {
        Some(t) if t.kind == TokenKind::OAuth && !t.is_expired(shared.now()) => t,
        Some(t) if t.kind == TokenKind::OAuth => {
            return bearer_challenge(Some("The access token expired"));
        }
        _ => return bearer_challenge(Some("The access token is invalid")),
    };
    let mut info = shared.user(token.user).userinfo(&token.scopes);
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
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `/api/whoami-v2`: OAuth access tokens and user access tokens.
pub(super) fn whoami(shared: &Shared, headers: &HeaderMap) -> Resp {
    if let Some(retry_after) = rate_limited(shared) {
        let mut res = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "You have exceeded the rate limit for whoami-v2"}),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return res;
    }
    let found =
        bearer_token(headers).and_then(|token| shared.lock().access_tokens.get(token).cloned());
    let Some(token) = found.filter(|t| !t.is_expired(shared.now())) else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "Invalid credentials in Authorization header"}),
        );
    };
    let user = &shared.user(token.user);
    let (auth, show_email) = match &token.kind {
        TokenKind::OAuth => (
            json!({
                "type": "oauth",
                "expiresAt": token.expires_at.map(rfc3339),
            }),
            token.scopes.iter().any(|s| s == "email"),
        ),
        TokenKind::User {
            role,
            display_name,
            org_permissions,
        } => {
            let mut access_token = json!({"displayName": display_name, "role": role});
            if role == "fineGrained" {
                let scoped: Vec<Value> = org_permissions
                    .iter()
                    .map(|(org, permissions)| {
                        json!({
                            "entity": {"type": "org", "name": org},
                            "permissions": permissions,
                        })
                    })
                    .collect();
                access_token["fineGrained"] =
                    json!({"canReadGatedRepos": false, "global": [], "scoped": scoped});
            }
            (
                json!({"type": "access_token", "accessToken": access_token}),
                true,
            )
        }
    };
    json_response(StatusCode::OK, &user.whoami(show_email, auth))
}

/// Counts a whoami call against the rate limit; `Some(seconds to wait)` past it.
fn rate_limited(shared: &Shared) -> Option<u64> {
    let (limit, window) = shared.config.whoami_limit?;
    let now = Instant::now();
    let mut state = shared.lock();
    let (start, count) = state.whoami_window.get_or_insert((now, 0));
    if now.duration_since(*start) >= window {
        (*start, *count) = (now, 0);
    }
    if *count >= limit {
        let left = window.saturating_sub(now.duration_since(*start));
        return Some(left.as_secs().max(1));
    }
    *count += 1;
    None
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
