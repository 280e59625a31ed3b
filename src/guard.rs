//! Guards: layers that sit on the routes that need something of the user and turn "no
//! user" or "not allowed" into the right answer for the caller.
//!
//! [`RequireLogin`] asks for a signed-in user. A browser without one is redirected to
//! sign in and brought back; an API client gets `401` with `WWW-Authenticate: Bearer`
//! and a JSON body; a gRPC client gets `grpc-status: 16`. Guards read the user that
//! [`HfAuthLayer`](crate::HfAuthLayer) put into the request, so that layer must wrap
//! them (in axum: `route_layer` for guards, `layer` for `HfAuthLayer`).
//!
//! ```
//! use tower_hf_auth::RequireLogin;
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//!
//! let app: Router = Router::new().route("/me", get(|| async { "me" }).route_layer(RequireLogin));
//! # }
//! ```

use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::layer::{AuthBody, AuthContext, ResponseFuture};
use crate::respond::{self, AuthError, Caller};
use crate::{HfUser, flow};

/// Why a guard turned a request away.
#[derive(Debug)]
pub(crate) enum Denial {
    /// Nobody is signed in.
    NotSignedIn,
}

/// What a guard asks of the user. Implemented by each guard type.
pub(crate) trait Requirement {
    /// `Ok` when `user` may pass.
    fn check(&self, user: Option<&HfUser>) -> Result<(), Denial>;
}

/// Requires a signed-in user.
///
/// ```
/// use tower::{ServiceBuilder, service_fn};
/// use tower_hf_auth::RequireLogin;
///
/// let svc = ServiceBuilder::new().layer(RequireLogin).service(service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("secret")))
/// }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct RequireLogin;

impl Requirement for RequireLogin {
    fn check(&self, user: Option<&HfUser>) -> Result<(), Denial> {
        user.map(|_| ()).ok_or(Denial::NotSignedIn)
    }
}

impl<S> Layer<S> for RequireLogin {
    type Service = Guard<S, Self>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            requirement: *self,
        }
    }
}

/// The service a guard layer makes: passes the request on when its requirement holds,
/// answers the caller itself when not.
#[derive(Debug, Clone)]
#[must_use]
pub struct Guard<S, R> {
    inner: S,
    requirement: R,
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: Requirement,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(context) = req.extensions().get::<AuthContext>() else {
            return ResponseFuture::ready(missing_layer(Caller::of(&req)));
        };
        match self.requirement.check(req.extensions().get::<HfUser>()) {
            Ok(()) => {
                // `poll_ready` readied `self.inner`; call that one and keep a clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::inner(inner.call(req), Vec::new())
            }
            Err(denial) => {
                ResponseFuture::ready(deny(context, Caller::of(&req), req.uri(), denial))
            }
        }
    }
}

pub(crate) fn missing_layer(caller: Caller) -> Response<respond::Body> {
    let err = AuthError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "missing_layer",
        "HfAuthLayer is missing: add `.layer(HfAuthLayer::new(config))` around the routes \
         that use a guard or extract HfUser",
    );
    tracing::error!("{err}");
    respond::error(caller, err, None)
}

/// The answer to a denied request, in the caller's protocol.
pub(crate) fn deny(
    context: &AuthContext,
    caller: Caller,
    uri: &http::Uri,
    denial: Denial,
) -> Response<respond::Body> {
    let config = &context.0.config;
    match denial {
        Denial::NotSignedIn => {
            let here = uri.path_and_query().map_or("/", |pq| pq.as_str());
            let login = flow::login_href(&context.0, &flow::return_to::sanitize(here));
            if caller == Caller::Browser {
                return respond::redirect(&login);
            }
            let err = AuthError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                format!("Sign in with Hugging Face first: {login}"),
            );
            let mut res = respond::error(caller, err, None);
            if caller == Caller::Api {
                let challenge = format!(
                    "Bearer realm=\"{}\"",
                    config.public_url.replace(['"', '\\'], "")
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            res
        }
    }
}
