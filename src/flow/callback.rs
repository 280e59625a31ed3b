//! `/login/callback`: check, exchange, verify, store, redirect.
//!
//! The callback is a sequence of steps over one [`CallbackError`], answered in one
//! place ([`CallbackError::answer`]):
//!
//! 1. the query parses (no repeated parameter), the `state` is well formed and names a
//!    pending sign-in of this browser that opens and matches it (constant time);
//! 2. the sign-in is not older than 10 minutes and its state was not used before;
//! 3. `iss` names the provider (RFC 9207), and the provider sent no `error`;
//! 4. the code is exchanged with the PKCE verifier, the ID token is verified (nonce
//!    included), userinfo is fetched and its `sub` must be the ID token's;
//! 5. the app admits the user (authorized organizations), the session is stored and the
//!    pending cookie deleted.
//!
//! A failure after step 1 also deletes the pending cookie and offers to sign in again
//! with the same return path.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use http::{HeaderMap, HeaderValue, Response};

use super::pending::{self, PendingLogin, STATE_LEN};
use crate::provider::{ProviderError, ProviderMetadata, TokenResponse, issuers_match};
use crate::respond::{self, AuthError, AuthErrorKind, Caller};
use crate::runtime::Runtime;
use crate::session::cookie;
use crate::single_flight::key_of;
use crate::user::{HfUser, Profile, Scopes, SessionRecord};

/// Longest authorization code passed on to the provider.
const MAX_CODE_LEN: usize = 2048;

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

/// A failed provider call as the error a browser or client sees (and a warning).
pub(super) fn provider_failure(err: &ProviderError) -> AuthError {
    let kind = if err.is_timeout() {
        AuthErrorKind::ProviderTimeout
    } else {
        AuthErrorKind::ProviderError
    };
    tracing::warn!(error = %err, "sign-in failed talking to the provider");
    AuthError::with_status(
        kind,
        err.status_hint(),
        format!("Signing in with Hugging Face failed: {err}"),
    )
}

/// Why a callback failed, and what the answer must undo and offer.
pub(super) struct CallbackError {
    error: AuthError,
    /// The pending sign-in cookie to delete, once the callback has found it.
    pending_cookie: Option<String>,
    /// Where "Try again" signs in to.
    return_to: String,
}

impl From<AuthError> for CallbackError {
    fn from(error: AuthError) -> Self {
        Self {
            error,
            pending_cookie: None,
            return_to: "/".to_owned(),
        }
    }
}

impl CallbackError {
    /// The one place a failed callback becomes an answer: the error in the caller's
    /// protocol, a retry link, and the pending cookie deleted when there is one.
    fn answer(self, runtime: &Runtime, caller: Caller) -> Response<respond::Body> {
        let retry = respond::login_href(runtime, &self.return_to);
        let res = respond::error(caller, self.error, Some(&retry));
        let clear = self
            .pending_cookie
            .map(|name| pending::remove(runtime, &name));
        respond::with_cookies(res, clear.into_iter().collect())
    }
}

fn bad(kind: AuthErrorKind, message: impl Into<String>) -> AuthError {
    AuthError::new(kind, message)
}

/// `/login/callback`: check, exchange, verify, store, redirect.
pub(super) async fn finish(
    runtime: &Runtime,
    caller: Caller,
    query: &str,
    headers: &HeaderMap,
) -> Response<respond::Body> {
    match complete(runtime, query, headers).await {
        Ok((return_to, set_cookies)) => {
            respond::with_cookies(respond::redirect(&return_to), set_cookies)
        }
        Err(failure) => failure.answer(runtime, caller),
    }
}

/// The whole callback: the return path and the cookies to set, or why not.
async fn complete(
    runtime: &Runtime,
    query: &str,
    headers: &HeaderMap,
) -> Result<(String, Vec<HeaderValue>), CallbackError> {
    let params =
        CallbackParams::parse(query).map_err(|why| bad(AuthErrorKind::InvalidRequest, why))?;
    let state = well_formed_state(params.state.as_deref())?;
    let name = pending::name(runtime, state);
    let pending = open_pending(runtime, headers, &name, state)?;
    let mut set_cookies = sign_in(runtime, &params, state, &pending, headers)
        .await
        .map_err(|error| CallbackError {
            error,
            pending_cookie: Some(name.clone()),
            return_to: pending.return_to.clone(),
        })?;
    set_cookies.push(pending::remove(runtime, &name));
    Ok((pending.return_to, set_cookies))
}

/// Step 1: a state we could have made.
fn well_formed_state(state: Option<&str>) -> Result<&str, AuthError> {
    let state = state.ok_or_else(|| {
        bad(
            AuthErrorKind::InvalidState,
            "The sign-in response has no state.",
        )
    })?;
    let ok = state.len() == STATE_LEN
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(state)
    } else {
        Err(bad(
            AuthErrorKind::InvalidState,
            "The sign-in response has a malformed state.",
        ))
    }
}

/// Step 1: this browser's pending sign-in for `state`.
fn open_pending(
    runtime: &Runtime,
    headers: &HeaderMap,
    name: &str,
    state: &str,
) -> Result<PendingLogin, CallbackError> {
    let value = cookie::get(headers, name).ok_or_else(|| {
        bad(
            AuthErrorKind::InvalidState,
            "This sign-in is unknown to this browser: it expired, was already used, or was \
             started in another browser. Please sign in again.",
        )
    })?;
    pending::open(runtime, name, value)
        .filter(|p| verify_slices_are_equal(p.state.as_bytes(), state.as_bytes()).is_ok())
        .ok_or_else(|| CallbackError {
            pending_cookie: Some(name.to_owned()),
            ..bad(
                AuthErrorKind::InvalidState,
                "The sign-in state does not match. Please sign in again.",
            )
            .into()
        })
}

/// Steps 2 to 5, once the pending sign-in is known.
async fn sign_in(
    runtime: &Runtime,
    params: &CallbackParams,
    state: &str,
    pending: &PendingLogin,
    headers: &HeaderMap,
) -> Result<Vec<HeaderValue>, AuthError> {
    let now = runtime.now();
    claim_state(runtime, state, pending, now).await?;
    let metadata = runtime
        .provider
        .metadata()
        .await
        .map_err(|e| provider_failure(&e))?;
    check_issuer(params.iss.as_deref(), &metadata)?;
    check_provider_error(params)?;
    let code = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_LEN)
        .ok_or_else(|| {
            bad(
                AuthErrorKind::InvalidRequest,
                "The sign-in response has no usable code.",
            )
        })?;
    let tokens = runtime
        .provider
        .exchange_code(code, &pending.verifier, &runtime.config.redirect_uri)
        .await
        .map_err(|e| provider_failure(&e))?;
    let profile = verified_profile(runtime, &tokens, &pending.nonce).await?;
    let asked = Scopes::parse(&pending.scope);
    let record = SessionRecord::from_tokens(profile, tokens, asked.clone(), asked, now);
    let user = HfUser::from_record(record);
    admit(runtime, &user)?;
    store(runtime, user, headers, now).await
}

/// Step 2: not expired, and the first use of this state (in this process, and with a
/// server-side store, in every replica).
async fn claim_state(
    runtime: &Runtime,
    state: &str,
    pending: &PendingLogin,
    now: u64,
) -> Result<(), AuthError> {
    let expires = pending.expires_at();
    if expires <= now {
        return Err(bad(
            AuthErrorKind::ExpiredState,
            "This sign-in took longer than 10 minutes. Please sign in again.",
        ));
    }
    let used = || {
        bad(
            AuthErrorKind::InvalidState,
            "This sign-in response was already used. Please sign in again.",
        )
    };
    if !runtime.used_states.claim(key_of(state), expires, now) {
        return Err(used());
    }
    #[cfg(feature = "redis")]
    if let Some(store) = &runtime.store {
        let ttl = std::time::Duration::from_secs(expires - now);
        match store.claim_once("state", state, ttl).await {
            Ok(true) => {}
            Ok(false) => return Err(used()),
            Err(err) => return Err(store_failure(err)),
        }
    }
    Ok(())
}

/// The store did not answer or is full: nothing was stored, the user can try again.
#[cfg(feature = "redis")]
fn store_failure(err: crate::session::store::StoreError) -> AuthError {
    tracing::warn!(error = %err, "sign-in failed: the session store");
    let detail = match err {
        crate::session::store::StoreError::Full => {
            "The session store is full, so no session could be made; please try again later."
        }
        crate::session::store::StoreError::Unavailable => {
            "The session store is not answering; please try again in a moment."
        }
    };
    bad(AuthErrorKind::StoreUnavailable, detail)
}

/// Step 3: the response names the provider as its issuer when it names one, and must
/// when the provider says it does (RFC 9207).
fn check_issuer(iss: Option<&str>, metadata: &ProviderMetadata) -> Result<(), AuthError> {
    match iss {
        Some(iss) if !issuers_match(iss, &metadata.issuer) => Err(bad(
            AuthErrorKind::IssuerMismatch,
            format!(
                "The sign-in response came from issuer `{}`, not `{}`.",
                tame(iss),
                metadata.issuer
            ),
        )),
        None if metadata.authorization_response_iss_parameter_supported => Err(bad(
            AuthErrorKind::IssuerMismatch,
            "The sign-in response does not name its issuer.",
        )),
        _ => Ok(()),
    }
}

/// Step 3: the provider's own `error`, such as `access_denied`.
fn check_provider_error(params: &CallbackParams) -> Result<(), AuthError> {
    let Some(error) = params.error.as_deref() else {
        return Ok(());
    };
    let message = if error == "access_denied" {
        "Sign-in was cancelled on Hugging Face.".to_owned()
    } else {
        let detail = params
            .error_description
            .as_deref()
            .map(tame)
            .unwrap_or_default();
        format!(
            "Hugging Face refused the sign-in ({}). {detail}",
            tame(error)
        )
    };
    Err(bad(AuthErrorKind::AccessDenied, message))
}

/// Step 4: the ID token verified, and userinfo about the same user.
async fn verified_profile(
    runtime: &Runtime,
    tokens: &TokenResponse,
    nonce: &str,
) -> Result<Profile, AuthError> {
    let provider = &runtime.provider;
    let id_token = tokens.id_token.as_deref().ok_or_else(|| {
        bad(
            AuthErrorKind::InvalidTokenResponse,
            "Hugging Face sent no ID token although `openid` was asked for.",
        )
    })?;
    let claims = provider
        .verify_id_token(id_token, nonce)
        .await
        .map_err(|e| provider_failure(&e))?;
    let mut profile: Profile = provider
        .userinfo(&tokens.access_token)
        .await
        .map_err(|e| provider_failure(&e))?;
    if *profile.sub != *claims.sub {
        return Err(bad(
            AuthErrorKind::SubjectMismatch,
            "Hugging Face's user information is for a different user than the ID token.",
        ));
    }
    profile.normalize();
    Ok(profile)
}

/// Step 5: the app is open to this user.
fn admit(runtime: &Runtime, user: &HfUser) -> Result<(), AuthError> {
    if runtime.admits(user) {
        return Ok(());
    }
    let authorized = &runtime.config.authorized_orgs;
    // A member held back by the organization's security restrictions is told what to do.
    let restricted = authorized.iter().find_map(|name| {
        let org = user.org(name)?;
        let list = org.security_restrictions();
        (!list.is_empty()).then(|| (name, respond::restriction_advice(name, list)))
    });
    if let Some((org, advice)) = restricted {
        return Err(bad(
            AuthErrorKind::OrgRestricted,
            format!(
                "This app is for members of `{org}`, which asks more of you first: {advice}. Then sign in again."
            ),
        ));
    }
    let orgs = authorized
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    Err(bad(
        AuthErrorKind::OrgRequired,
        format!(
            "This app is only for members of {orgs}. If you are one, sign in again and grant \
             access to the organization on Hugging Face's consent screen (if it does not ask, \
             remove this app at {} first).",
            respond::CONNECTED_APPS
        ),
    ))
}

/// Step 5: the session (in the store, when sessions live in one) and its cookie,
/// replacing any the browser has.
async fn store(
    runtime: &Runtime,
    user: HfUser,
    headers: &HeaderMap,
    now: u64,
) -> Result<Vec<HeaderValue>, AuthError> {
    let sessions = &runtime.sessions;
    let record = user.record();
    #[cfg(feature = "redis")]
    let stored;
    #[cfg(feature = "redis")]
    let record = match &runtime.store {
        Some(store) => {
            let (keys, name) = (&sessions.keys, &sessions.name);
            stored = store
                .create(record.clone(), keys, name, now)
                .await
                .map_err(store_failure)?;
            // The session this browser had before is replaced: end it, rather than
            // leave it to its expiry. Best effort: it ends by itself in any case.
            if let Ok(Some(previous)) = runtime.session_user_or_error(headers).await
                && let Some(old) = &previous.record().stored
            {
                let _ = store.delete(&old.handle).await;
            }
            &stored
        }
        None => record,
    };
    let present = cookie::chunks(headers, &sessions.name).present();
    let set_cookies = sessions.save(record, present, now).map_err(|_| {
        bad(
            AuthErrorKind::SessionTooLarge,
            "The session is too large to store in cookies.",
        )
    })?;
    // Who: the callback span's `user.id` (a pseudonym unless raw ids are on).
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("user.id", runtime.user_ids.of(user.id()));
    }
    tracing::info!("signed in with Hugging Face");
    Ok(set_cookies)
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
    fn provider_text_is_tamed() {
        assert_eq!(tame("a\r\nb"), "ab");
        assert_eq!(tame(&"x".repeat(500)).len(), 200);
    }
}
