//! The layer's side of the [cross-origin protection](crate::cross_origin): the check on
//! every request that is not one of the crate's own routes, and the refusal.

use http::{Request, Response};

use crate::cross_origin::Refusal;
use crate::respond::{self, AuthError, AuthErrorKind, Caller};
use crate::runtime::Runtime;
use crate::session::cookie;

/// The refusal of a state-changing request another site started with the session
/// cookie; `None` when the request may go on.
pub(super) fn refuse<B>(
    runtime: &Runtime,
    req: &Request<B>,
    caller: Option<Caller>,
) -> Option<Response<respond::Body>> {
    let config = &runtime.config;
    let headers = req.headers();
    let has_session = || cookie::get(headers, &runtime.sessions.name).is_some();
    let why = config
        .cross_origin
        .check(req.method(), req.uri().path(), headers, has_session)
        .err()?;
    let message = match why {
        Refusal::FetchSite => {
            "Another site started this request; the app accepts changes only from its own pages."
        }
        Refusal::Origin => {
            "This request comes from another origin; the app accepts changes only from its own pages."
        }
    };
    tracing::info!(
        method = %req.method(),
        path = req.uri().path(),
        "refused a cross-origin request"
    );
    crate::observe::denied(AuthErrorKind::CrossOriginRequest.code());
    let err = AuthError::new(AuthErrorKind::CrossOriginRequest, message);
    // A form another site submits is a navigation: the user sees a page, not JSON.
    let navigation = headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v.as_bytes() == b"navigate");
    let caller = caller.unwrap_or_else(|| {
        if navigation {
            Caller::Browser
        } else {
            Caller::of(req)
        }
    });
    let res = respond::error(caller, err, None);
    Some(respond::own_page(res, &config.frame_policy))
}
