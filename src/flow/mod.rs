//! The sign-in flow: `/login` starts it, `/login/callback` finishes it, `/logout` ends
//! the session. This module only dispatches; each step lives in its own file.
//!
//! **Login** ([`login`]) makes a `state` (256 random bits), a `nonce` and a PKCE
//! verifier, keeps them with the return path in a short-lived encrypted cookie named
//! after the state ([`pending`]; several tabs can sign in at once, at most
//! [`with_max_pending_logins`](crate::HfAuthConfigBuilder::with_max_pending_logins)
//! are kept and each lives 10 minutes), and redirects to the provider.
//!
//! **Callback** ([`callback`]) checks `state` (and `iss`, RFC 9207) before anything
//! else, then exchanges the code with the PKCE verifier, verifies the ID token, fetches
//! userinfo, checks its `sub` against the ID token's, stores the session and redirects
//! to the return path ([`return_to`]). Every failure is a clear error page (or JSON)
//! with a retry link, and leaves no session behind.
//!
//! **Logout** ([`logout`]) clears the session cookie, unless another site asked.

pub(crate) mod callback;
mod frame_escape;
mod login;
mod logout;
mod pending;
pub(crate) mod return_to;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, header};
use tracing::Instrument;

use crate::observe::{self, Step};
use crate::respond::{self, AuthError, AuthErrorKind, Caller};
use crate::runtime::Runtime;

/// The flow's answer: at once, or after talking to the provider.
pub(crate) enum Answer {
    Ready(Response<respond::Body>),
    Later(Pin<Box<dyn Future<Output = Response<respond::Body>> + Send>>),
}

/// Whether `path` is one of the crate's own routes (`/login`, its callback, `/logout`),
/// which [`route`] answers; every other request passes to the app untouched.
pub(crate) fn owns(config: &crate::HfAuthConfig, path: &str) -> bool {
    path == config.logout_path || path == config.login_path || path == config.callback_path
}

/// Answers a request for one of the crate's own routes (see [`owns`]).
pub(crate) fn route<B>(runtime: &Arc<Runtime>, req: Request<B>, caller: Option<Caller>) -> Answer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    if req.uri().path() == runtime.config.logout_path {
        logout::route(runtime, req, caller)
    } else {
        own_get_route(runtime, &req, caller)
    }
}

/// `/login` and `/login/callback`.
fn own_get_route<B>(runtime: &Arc<Runtime>, req: &Request<B>, caller: Option<Caller>) -> Answer {
    let config = &runtime.config;
    let login = req.uri().path() == config.login_path;
    let caller = caller.unwrap_or_else(|| Caller::of(req));
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let res = method_not_allowed(caller, "GET");
        return Answer::Ready(respond::own_page(res, &config.frame_policy));
    }
    let runtime = runtime.clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    Answer::Later(Box::pin(async move {
        let res = if login {
            let step = Step::login();
            let res = login::start(&runtime, caller, &query, &headers)
                .instrument(step.span().clone())
                .await;
            observe::login_done(
                &step,
                res.extensions().get::<AuthError>().map(AuthError::code),
            );
            res
        } else {
            let step = Step::callback();
            let res = callback::finish(&runtime, caller, &query, &headers)
                .instrument(step.span().clone())
                .await;
            let (outcome, error) = sign_in_outcome(&res);
            observe::callback_done(&step, outcome, error);
            frame_escape::escape(&runtime, &query, &headers, &res).unwrap_or(res)
        };
        respond::own_page(res, &runtime.config.frame_policy)
    }))
}

/// What a callback's answer says of the sign-in: `success`, `denied` (the user or an
/// organization rule refused) or `failure`, and the error's code.
fn sign_in_outcome<B>(res: &Response<B>) -> (&'static str, Option<&'static str>) {
    let Some(err) = res.extensions().get::<AuthError>() else {
        return ("success", None);
    };
    let outcome = match err.kind() {
        AuthErrorKind::AccessDenied | AuthErrorKind::OrgRequired | AuthErrorKind::OrgRestricted => {
            "denied"
        }
        _ => "failure",
    };
    (outcome, Some(err.code()))
}

pub(super) fn method_not_allowed(caller: Caller, allow: &'static str) -> Response<respond::Body> {
    let err = AuthError::new(
        AuthErrorKind::MethodNotAllowed,
        format!("this route answers {allow} only"),
    );
    let mut res = respond::error(caller, err, None);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}
