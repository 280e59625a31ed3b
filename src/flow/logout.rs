//! `/logout`: clear the session cookie and go to the post-logout page, unless another
//! site started the request.

use http::{HeaderMap, Response};

use crate::respond::{self, AuthError, AuthErrorKind, Caller};
use crate::runtime::Runtime;
use crate::session::cookie;

/// Signs out, or refuses a sign-out another site asked for.
pub(super) fn logout(
    runtime: &Runtime,
    caller: Caller,
    headers: &HeaderMap,
) -> Response<respond::Body> {
    if is_cross_site(headers) {
        return cross_site_logout(runtime, caller);
    }
    let sessions = &runtime.sessions;
    let present = cookie::chunks(headers, &sessions.name).present().max(1);
    respond::with_cookies(
        respond::redirect(&runtime.config.post_logout_redirect),
        sessions.clear(present),
    )
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
