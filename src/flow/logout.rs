//! `/logout`: end the session and go to the post-logout page, unless another site
//! started the request.
//!
//! `GET` or `POST` signs this browser out: the cookie is cleared and, with a
//! server-side store, the session itself is deleted, so a copy of the cookie dies too.
//! `POST` with the form field `everywhere=1` ends every session of the user, on every
//! device and replica; it needs a server-side store (`400` with cookie sessions, which
//! cannot be revoked).

use std::sync::Arc;

use bytes::Buf;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;

use super::{Answer, method_not_allowed};
use crate::respond::{self, AuthError, AuthErrorKind, Caller};
use crate::runtime::Runtime;
use crate::session::cookie;

/// Largest sign-out form read; a sign-out form holds one field.
const MAX_FORM: usize = 1024;

/// Answers a request to the sign-out route.
pub(super) fn route<B>(runtime: &Arc<Runtime>, req: Request<B>, caller: Option<Caller>) -> Answer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let caller = caller.unwrap_or_else(|| Caller::of(&req));
    let policy = &runtime.config.frame_policy;
    let own = |res| respond::own_page(res, policy);
    let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
    if !is_get && req.method() != Method::POST {
        return Answer::Ready(own(method_not_allowed(caller, "GET, POST")));
    }
    if is_cross_site(req.headers()) {
        return Answer::Ready(own(cross_site_logout(runtime, caller)));
    }
    let runtime = runtime.clone();
    let (parts, body) = req.into_parts();
    Answer::Later(Box::pin(async move {
        let everywhere = !is_get && asks_everywhere(&parts.headers, body).await;
        let res = logout(&runtime, caller, &parts.headers, everywhere).await;
        respond::own_page(res, &runtime.config.frame_policy)
    }))
}

/// Whether the request's form says `everywhere=1`.
async fn asks_everywhere<B>(headers: &HeaderMap, body: B) -> bool
where
    B: http_body::Body,
{
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return false;
    }
    let mut body = std::pin::pin!(body);
    let mut form = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Ok(mut data) = frame.into_data() {
            if form.len() + data.remaining() > MAX_FORM {
                return false;
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                form.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    url::form_urlencoded::parse(&form).any(|(k, v)| k == "everywhere" && v == "1")
}

/// Signs out: the store's session (or every session of the user), then the cookie.
async fn logout(
    runtime: &Runtime,
    caller: Caller,
    headers: &HeaderMap,
    everywhere: bool,
) -> Response<respond::Body> {
    let sessions = &runtime.sessions;
    if everywhere && !sessions.server {
        let err = AuthError::with_status(
            AuthErrorKind::InvalidRequest,
            StatusCode::BAD_REQUEST,
            "Signing out everywhere needs a server-side session store (HF_AUTH_REDIS_URL): \
             sessions kept in cookies cannot be ended on other devices.",
        );
        return respond::error(caller, err, None);
    }
    #[cfg(feature = "redis")]
    if let Err(err) = end_stored(runtime, headers, everywhere).await {
        tracing::warn!(error = %err, "cannot sign out: the session store");
        let err = AuthError::new(
            AuthErrorKind::StoreUnavailable,
            "Signing out did not complete (the session store is not answering); you are \
             still signed in. Try again in a moment.",
        );
        return respond::error(caller, err, Some(&runtime.config.logout_path));
    }
    let present = cookie::chunks(headers, &sessions.name).present().max(1);
    respond::with_cookies(
        respond::redirect(&runtime.config.post_logout_redirect),
        sessions.clear(present),
    )
}

/// Deletes the request's session from the store, or every session of its user.
#[cfg(feature = "redis")]
async fn end_stored(
    runtime: &Runtime,
    headers: &HeaderMap,
    everywhere: bool,
) -> Result<(), crate::session::store::StoreError> {
    let Some(store) = &runtime.store else {
        return Ok(());
    };
    let Some(user) = runtime.session_user_or_error(headers).await? else {
        return Ok(());
    };
    if everywhere {
        let ended = store.revoke_user(user.id()).await?;
        tracing::info!(sessions = ended, "signed out everywhere");
    } else if let Some(stored) = &user.record().stored {
        store.delete(&stored.handle).await?;
    }
    Ok(())
}

/// Whether the browser says another site started this request (`Sec-Fetch-Site`, sent
/// by current browsers on every request; absent from other clients, which pass).
fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// A sign-out started by another site (a link or form elsewhere): refused, with a link
/// that signs out when the user follows it from here.
fn cross_site_logout(runtime: &Runtime, caller: Caller) -> Response<respond::Body> {
    let err = AuthError::new(
        AuthErrorKind::CrossSiteLogout,
        "Another site asked to sign you out; you are still signed in. Use the link below \
         to sign out.",
    );
    respond::error(caller, err, Some(&runtime.config.logout_path))
}
