//! axum extractors (feature `axum`): [`HfUser`] and `Option<HfUser>`.
//!
//! - `HfUser` in a handler requires a signed-in user: without one the caller gets the
//!   same answer as from [`RequireLogin`](crate::RequireLogin) (a redirect to sign in for
//!   browsers, 401 for API clients, `grpc-status: 16` for gRPC).
//! - `Option<HfUser>` is for public routes: `None` when nobody is signed in.
//! - Either one without [`HfAuthLayer`](crate::HfAuthLayer) around the route is a 500
//!   whose message says to add it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_hf_auth::HfUser;
//!
//! async fn home(user: Option<HfUser>) -> String {
//!     match user {
//!         Some(user) => format!("hello @{}", user.username()),
//!         None => "hello, stranger".into(),
//!     }
//! }
//! async fn me(user: HfUser) -> String {
//!     user.username().to_owned()
//! }
//! let app: Router = Router::new().route("/", get(home)).route("/me", get(me));
//! ```

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::HfUser;
use crate::guard;
use crate::layer::AuthContext;
use crate::respond::{self, Caller, Denial};

/// Why an [`HfUser`] could not be extracted; answers in the caller's protocol.
#[derive(Debug)]
pub struct HfUserRejection(http::Response<respond::Body>);

impl HfUserRejection {
    /// The HTTP status the rejection answers with.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        self.0.status()
    }
}

impl IntoResponse for HfUserRejection {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for HfUser {
    type Rejection = HfUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = parts.extensions.get::<AuthContext>();
        let caller = context
            .and_then(|c| c.caller)
            .unwrap_or_else(|| Caller::of_parts(&parts.method, &parts.headers));
        let Some(context) = context else {
            return Err(HfUserRejection(respond::missing_layer(caller)));
        };
        parts.extensions.get::<HfUser>().cloned().ok_or_else(|| {
            HfUserRejection(guard::deny(
                context,
                caller,
                &parts.uri,
                &parts.extensions,
                Denial::NotSignedIn,
            ))
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for HfUser {
    type Rejection = HfUserRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts.extensions.get::<AuthContext>().is_none() {
            let caller = Caller::of_parts(&parts.method, &parts.headers);
            return Err(HfUserRejection(respond::missing_layer(caller)));
        }
        Ok(parts.extensions.get::<HfUser>().cloned())
    }
}
