//! The sign-in flow: `/login` starts it, `/login/callback` finishes it, `/logout` ends
//! the session.
//!
//! **Login** makes a `state` (256 random bits), a `nonce` and a PKCE verifier, keeps
//! them with the return path in a short-lived encrypted cookie named after the state
//! (so several tabs can sign in at once; at most
//! [`with_max_pending_logins`](crate::HfAuthConfigBuilder::with_max_pending_logins) are
//! kept and each lives 10 minutes), and redirects to the provider.
//!
//! **Callback** checks `state` (and `iss`, RFC 9207) before anything else, then
//! exchanges the code with the PKCE verifier, verifies the ID token, fetches userinfo,
//! checks its `sub` against the ID token's, stores the session and redirects to the
//! return path. Every failure is a clear error page (or JSON) with a retry link, and
//! leaves no session behind.

pub(crate) mod return_to;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::layer::{ResponseFuture, Shared};
use crate::provider::{ProviderError, issuers_match};
use crate::respond::{self, AuthError, Caller};
use crate::session::cookie;
use crate::user::{HfUser, Profile, Scopes, SessionRecord};

/// How long a sign-in may take from `/login` to the callback.
const PENDING_TTL: u64 = 600;
/// Characters of the state used in the pending cookie's name.
const STATE_KEY_LEN: usize = 16;
/// Length of a state we made: 32 random bytes in unpadded base64url.
const STATE_LEN: usize = 43;
const MAX_CODE_LEN: usize = 2048;
const MAX_USED_STATES: usize = 10_000;
/// Unreadable pending-login cookies deleted per `/login`.
const MAX_PRUNE_EXTRA: usize = 16;

/// What `/login` remembers until the callback.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    /// The scopes asked for.
    scope: String,
    /// Unix time in nanoseconds: fine enough to order the tabs of one browser.
    created_ns: u64,
}

impl PendingLogin {
    fn created_at(&self) -> u64 {
        self.created_ns / 1_000_000_000
    }
}

/// States whose callback already ran, so a replayed callback fails even with the same
/// cookie. Bounded; entries leave when their pending login would have expired.
#[derive(Debug, Default)]
pub(crate) struct UsedStates(Mutex<HashMap<[u8; 32], u64>>);

impl UsedStates {
    /// Marks `state` used; `false` if it already was.
    fn claim(&self, state: &str, expires_at: u64, now: u64) -> bool {
        let key: [u8; 32] = digest(&SHA256, state.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let mut used = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() >= MAX_USED_STATES {
            used.retain(|_, exp| *exp > now);
            if used.len() >= MAX_USED_STATES {
                // Still full of live entries: forget them rather than refuse sign-ins.
                // Codes are single-use at the provider, so a replay still fails there.
                used.clear();
            }
        }
        used.insert(key, expires_at).is_none()
    }
}

/// Answers the crate's own routes; `None` for every other request.
pub(crate) fn route<B, F>(
    shared: &Arc<Shared>,
    req: &Request<B>,
    caller: Option<Caller>,
) -> Option<ResponseFuture<F>> {
    let config = &shared.config;
    let path = req.uri().path();
    let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
    // Decided only for the crate's own routes: every other request passes untouched.
    let caller = || caller.unwrap_or_else(|| Caller::of(req));
    if path == config.logout_path {
        if !is_get && req.method() != Method::POST {
            return Some(ResponseFuture::ready(method_not_allowed(
                caller(),
                "GET, POST",
            )));
        }
        if is_cross_site(req.headers()) {
            return Some(ResponseFuture::ready(cross_site_logout(shared, caller())));
        }
        return Some(ResponseFuture::ready(logout(shared, req.headers())));
    }
    let login = path == config.login_path;
    if !login && path != config.callback_path {
        return None;
    }
    let caller = caller();
    if !is_get {
        return Some(ResponseFuture::ready(method_not_allowed(caller, "GET")));
    }
    let shared = shared.clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    Some(if login {
        ResponseFuture::boxed(async move { start(&shared, caller, &query, &headers).await })
    } else {
        ResponseFuture::boxed(async move { finish(&shared, caller, &query, &headers).await })
    })
}

fn method_not_allowed(caller: Caller, allow: &'static str) -> Response<respond::Body> {
    let err = AuthError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route answers {allow} only"),
    );
    let mut res = respond::error(caller, err, None);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

fn random_token(shared: &Shared) -> String {
    URL_SAFE_NO_PAD.encode(shared.config.sessions.keys.random_bytes::<32>())
}

fn now(shared: &Shared) -> u64 {
    crate::clock::unix_seconds(shared.config.clock.as_ref())
}

fn now_ns(shared: &Shared) -> u64 {
    shared
        .config
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A scope as RFC 6749 §3.3 allows it, short enough to be one.
fn is_scope_token(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// `/login?return_to=…&scope=…`: sign in again asking for more scopes.
pub(crate) fn consent_href(shared: &Shared, return_to: &str, scope: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .append_pair("scope", scope)
        .finish();
    format!("{}?{query}", shared.config.login_path)
}

/// `/login?return_to=…` for a retry link.
pub(crate) fn login_href(shared: &Shared, return_to: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("{}?{query}", shared.config.login_path)
}

fn with_cookies(
    mut res: Response<respond::Body>,
    cookies: Vec<HeaderValue>,
) -> Response<respond::Body> {
    for c in cookies {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn provider_failure(err: &ProviderError) -> AuthError {
    let status = err.status_hint();
    let code = if err.is_timeout() {
        "provider_timeout"
    } else {
        "provider_error"
    };
    tracing::warn!(error = %err, "sign-in failed talking to the provider");
    AuthError::new(
        status,
        code,
        format!("Signing in with Hugging Face failed: {err}"),
    )
}

/// `/login`: remember a pending sign-in and send the browser to the provider.
async fn start(
    shared: &Shared,
    caller: Caller,
    query: &str,
    headers: &HeaderMap,
) -> Response<respond::Body> {
    let config = &shared.config;
    let mut return_to = "/".to_owned();
    let mut scopes = config.scopes.clone();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "return_to" => return_to = return_to::sanitize(&v),
            // Incremental consent: the guards ask for the scopes a route is missing.
            "scope" => {
                scopes = scopes
                    .iter()
                    .chain(v.split_ascii_whitespace().filter(|s| is_scope_token(s)))
                    .collect()
            }
            _ => {}
        }
    }
    let metadata = match config.provider.metadata().await {
        Ok(m) => m,
        Err(e) => {
            let retry = login_href(shared, &return_to);
            return respond::error(caller, provider_failure(&e), Some(&retry));
        }
    };
    let now = now(shared);
    let mut set_cookies = prune_pending(shared, headers, now);

    let pending = PendingLogin {
        state: random_token(shared),
        nonce: random_token(shared),
        verifier: random_token(shared),
        return_to,
        scope: scopes.to_string(),
        created_ns: now_ns(shared),
    };
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, pending.verifier.as_bytes()));
    let name = pending_name(shared, &pending.state);
    let plain = serde_json::to_vec(&pending).expect("a pending login serializes");
    let sealed = config.sessions.keys.seal(&name, &plain);
    set_cookies.push(cookie::set(
        &name,
        &sealed,
        &config.pending_path,
        Some(PENDING_TTL),
        &config.sessions.attrs,
    ));

    let mut url = metadata.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", &config.redirect_uri)
            .append_pair("scope", &pending.scope)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if !config.org_ids.is_empty() {
            q.append_pair("orgIds", &config.org_ids.join(","));
        }
    }
    with_cookies(respond::redirect(url.as_str()), set_cookies)
}

fn pending_name(shared: &Shared, state: &str) -> String {
    format!(
        "{}{}",
        shared.config.pending_prefix,
        &state[..STATE_KEY_LEN]
    )
}

fn open_pending(shared: &Shared, name: &str, value: &str) -> Option<PendingLogin> {
    let plain = shared.config.sessions.keys.open(name, value)?;
    serde_json::from_slice(&plain).ok()
}

/// Deletes pending sign-ins past the cap (oldest first), expired ones and ones that do
/// not open, leaving room for one more.
fn prune_pending(shared: &Shared, headers: &HeaderMap, now: u64) -> Vec<HeaderValue> {
    let config = &shared.config;
    let mut live: Vec<(u64, &str)> = Vec::new();
    let mut drop: Vec<&str> = Vec::new();
    for (name, value) in cookie::all(headers) {
        if !name.starts_with(&config.pending_prefix) {
            continue;
        }
        match open_pending(shared, name, value) {
            Some(p) if p.created_at() + PENDING_TTL > now => live.push((p.created_ns, name)),
            _ => drop.push(name),
        }
    }
    live.sort_unstable();
    // A flood of planted cookies must not become a flood of response headers: delete a
    // bounded number of unreadable ones now, the rest on later visits.
    drop.truncate(MAX_PRUNE_EXTRA);
    let excess = (live.len() + 1).saturating_sub(config.max_pending_logins);
    drop.extend(live.iter().take(excess).map(|(_, n)| *n));
    drop.into_iter()
        .map(|n| cookie::remove(n, &config.pending_path, &config.sessions.attrs))
        .collect()
}

/// The callback's query parameters.
#[derive(Default)]
pub(crate) struct CallbackParams {
    pub(crate) state: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) iss: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) error_description: Option<String>,
}

impl CallbackParams {
    /// Parses the query; a repeated parameter is an error (RFC 6749 §3.1).
    pub(crate) fn parse(query: &str) -> Result<Self, &'static str> {
        let mut p = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "state" => &mut p.state,
                "code" => &mut p.code,
                "iss" => &mut p.iss,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err("a parameter is repeated");
            }
        }
        Ok(p)
    }
}

/// Provider-chosen text made safe to show: no control characters, bounded length.
pub(crate) fn tame(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn bad_request(
    caller: Caller,
    code: &'static str,
    message: &str,
    retry: &str,
) -> Response<respond::Body> {
    respond::error(
        caller,
        AuthError::new(StatusCode::BAD_REQUEST, code, message),
        Some(retry),
    )
}

/// `/login/callback`: check, exchange, verify, store, redirect.
async fn finish(
    shared: &Shared,
    caller: Caller,
    query: &str,
    headers: &HeaderMap,
) -> Response<respond::Body> {
    let config = &shared.config;
    let fresh_retry = login_href(shared, "/");
    let params = match CallbackParams::parse(query) {
        Ok(p) => p,
        Err(why) => return bad_request(caller, "invalid_request", why, &fresh_retry),
    };
    let Some(state) = params.state.as_deref() else {
        return bad_request(
            caller,
            "invalid_state",
            "The sign-in response has no state.",
            &fresh_retry,
        );
    };
    if state.len() != STATE_LEN
        || !state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad_request(
            caller,
            "invalid_state",
            "The sign-in response has a malformed state.",
            &fresh_retry,
        );
    }
    let name = pending_name(shared, state);
    let clear_pending = || {
        vec![cookie::remove(
            &name,
            &config.pending_path,
            &config.sessions.attrs,
        )]
    };
    let Some(value) = cookie::get(headers, &name) else {
        return bad_request(
            caller,
            "invalid_state",
            "This sign-in is unknown to this browser: it expired, was already used, or was \
             started in another browser. Please sign in again.",
            &fresh_retry,
        );
    };
    let now = now(shared);
    let pending = open_pending(shared, &name, value)
        .filter(|p| verify_slices_are_equal(p.state.as_bytes(), state.as_bytes()).is_ok());
    let Some(pending) = pending else {
        let res = bad_request(
            caller,
            "invalid_state",
            "The sign-in state does not match. Please sign in again.",
            &fresh_retry,
        );
        return with_cookies(res, clear_pending());
    };
    let retry = login_href(shared, &pending.return_to);
    let fail =
        |err: AuthError| with_cookies(respond::error(caller, err, Some(&retry)), clear_pending());
    let expires = pending.created_at() + PENDING_TTL;
    if expires <= now {
        return fail(AuthError::new(
            StatusCode::BAD_REQUEST,
            "expired_state",
            "This sign-in took longer than 10 minutes. Please sign in again.",
        ));
    }
    if !shared.used_states.claim(state, expires, now) {
        return fail(AuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_state",
            "This sign-in response was already used. Please sign in again.",
        ));
    }

    let metadata = match config.provider.metadata().await {
        Ok(m) => m,
        Err(e) => return fail(provider_failure(&e)),
    };
    match params.iss.as_deref() {
        Some(iss) if !issuers_match(iss, &metadata.issuer) => {
            return fail(AuthError::new(
                StatusCode::BAD_REQUEST,
                "issuer_mismatch",
                format!(
                    "The sign-in response came from issuer `{}`, not `{}`.",
                    tame(iss),
                    metadata.issuer
                ),
            ));
        }
        None if metadata.authorization_response_iss_parameter_supported => {
            return fail(AuthError::new(
                StatusCode::BAD_REQUEST,
                "issuer_mismatch",
                "The sign-in response does not name its issuer.",
            ));
        }
        _ => {}
    }
    if let Some(error) = params.error.as_deref() {
        let detail = params
            .error_description
            .as_deref()
            .map(tame)
            .unwrap_or_default();
        let message = if error == "access_denied" {
            "Sign-in was cancelled on Hugging Face.".to_owned()
        } else {
            format!(
                "Hugging Face refused the sign-in ({}). {detail}",
                tame(error)
            )
        };
        return fail(AuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            message,
        ));
    }
    let Some(code) = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_LEN)
    else {
        return fail(AuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The sign-in response has no usable code.",
        ));
    };

    let provider = &config.provider;
    let tokens = match provider
        .exchange_code(code, &pending.verifier, &config.redirect_uri)
        .await
    {
        Ok(t) => t,
        Err(e) => return fail(provider_failure(&e)),
    };
    let Some(id_token) = tokens.id_token.as_deref() else {
        return fail(AuthError::new(
            StatusCode::BAD_GATEWAY,
            "invalid_token_response",
            "Hugging Face sent no ID token although `openid` was asked for.",
        ));
    };
    let claims = match provider.verify_id_token(id_token, &pending.nonce).await {
        Ok(c) => c,
        Err(e) => return fail(provider_failure(&e)),
    };
    let mut profile: Profile = match provider.userinfo(&tokens.access_token).await {
        Ok(p) => p,
        Err(e) => return fail(provider_failure(&e)),
    };
    if profile.sub != claims.sub {
        return fail(AuthError::new(
            StatusCode::BAD_GATEWAY,
            "subject_mismatch",
            "Hugging Face's user information is for a different user than the ID token.",
        ));
    }
    profile.normalize();
    let asked = Scopes::parse(&pending.scope);
    let record = SessionRecord::from_tokens(profile, tokens, asked.clone(), asked, now);
    let user = HfUser::from_record(record);
    if !config.is_authorized(&user) {
        return fail(AuthError::new(
            StatusCode::FORBIDDEN,
            "org_required",
            format!(
                "This app is only for members of {}. If you are one, sign in again and \
                 grant access to the organization on Hugging Face's consent screen.",
                config
                    .authorized_orgs
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    let record = user.record();
    let present = cookie::read_chunked(headers, &config.sessions.name).present;
    let Ok(mut set_cookies) = config.sessions.save(record, present, now) else {
        return fail(AuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "session_too_large",
            "The session is too large to store in cookies.",
        ));
    };
    set_cookies.extend(clear_pending());
    tracing::info!(user = %record.profile.preferred_username, "signed in with Hugging Face");
    with_cookies(respond::redirect(&pending.return_to), set_cookies)
}

/// `/logout`: clear the session cookie and go to the post-logout page.
/// Whether the browser says another site started this request (`Sec-Fetch-Site`, sent
/// by current browsers on every request; absent from other clients, which pass).
fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// A sign-out started by another site (a link or form elsewhere): refused, with a link
/// that signs out when the user follows it from here.
fn cross_site_logout(shared: &Shared, caller: Caller) -> Response<respond::Body> {
    let err = AuthError::new(
        StatusCode::FORBIDDEN,
        "cross_site_logout",
        "Another site asked to sign you out; you are still signed in. Use the link below \
         to sign out.",
    );
    respond::error(caller, err, Some(&shared.config.logout_path))
}

fn logout(shared: &Shared, headers: &HeaderMap) -> Response<respond::Body> {
    let config = &shared.config;
    let present = cookie::read_chunked(headers, &config.sessions.name)
        .present
        .max(1);
    with_cookies(
        respond::redirect(&config.post_logout_redirect),
        config.sessions.clear(present),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_callback_parameters_are_rejected() {
        assert!(CallbackParams::parse("state=a&state=b").is_err());
        let p = CallbackParams::parse("state=a&code=c&other=1&other=2").unwrap();
        assert_eq!(p.code.as_deref(), Some("c"));
    }

    #[test]
    fn used_states_are_single_use() {
        let used = UsedStates::default();
        assert!(used.claim("s1", 100, 0));
        assert!(!used.claim("s1", 100, 0));
        assert!(used.claim("s2", 100, 0));
    }

    #[test]
    fn provider_text_is_tamed() {
        assert_eq!(tame("a\r\nb"), "ab");
        assert_eq!(tame(&"x".repeat(500)).len(), 200);
    }
}
