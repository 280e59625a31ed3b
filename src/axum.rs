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
use std::fmt;

use crate::guard;
use crate::layer;
use crate::respond::{self, AuthError, AuthErrorKind, Caller, Denial};

/// Why an [`HfUser`] could not be extracted; answers in the caller's protocol, as a
/// [`RequireLogin`](crate::RequireLogin) guard would.
///
/// Like axum's own rejections it has [`status`](Self::status),
/// [`body_text`](Self::body_text), `Display` and `IntoResponse`, so a handler can
/// match it and answer differently:
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use tower_hf_auth::{AuthErrorKind, HfUser};
/// use tower_hf_auth::axum::HfUserRejection;
///
/// async fn me(user: Result<HfUser, HfUserRejection>) -> Response {
///     match user {
///         Ok(user) => user.username().to_owned().into_response(),
///         Err(rejection) if rejection.kind() == Some(AuthErrorKind::Unauthenticated) => {
///             (rejection.status(), "please sign in").into_response()
///         }
///         Err(rejection) => rejection.into_response(),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct HfUserRejection {
    response: http::Response<respond::Body>,
    /// The error, when the answer is not a redirect to sign in.
    error: Option<AuthError>,
}

impl HfUserRejection {
    fn new(response: http::Response<respond::Body>) -> Self {
        let error = response.extensions().get::<AuthError>().cloned();
        Self { response, error }
    }

    /// The HTTP status the rejection answers with (`303` for a browser sent to sign
    /// in, `401` for other callers, `500` when `HfAuthLayer` is missing; gRPC answers
    /// are HTTP `200` with a `grpc-status`).
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        self.response.status()
    }

    /// What went wrong, or `None` for a browser that is simply sent to sign in.
    #[must_use]
    pub fn kind(&self) -> Option<AuthErrorKind> {
        self.error.as_ref().map(AuthError::kind)
    }

    /// A human-readable explanation, as the response body says it.
    #[must_use]
    pub fn body_text(&self) -> String {
        match &self.error {
            Some(err) => err.message().to_owned(),
            None => "Sign in with Hugging Face first.".to_owned(),
        }
    }
}

impl fmt::Display for HfUserRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body_text())
    }
}

impl std::error::Error for HfUserRejection {}

impl IntoResponse for HfUserRejection {
    fn into_response(self) -> Response {
        self.response.into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for HfUser {
    type Rejection = HfUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<HfUser>() {
            return Ok(user.clone());
        }
        // Only a refusal needs the layer's context, and to know who is asking.
        let context = layer::context(&parts.extensions).0;
        let caller = context
            .and_then(|c| c.caller)
            .unwrap_or_else(|| Caller::of_parts(&parts.method, &parts.headers));
        let Some(context) = context else {
            return Err(HfUserRejection::new(respond::missing_layer(caller)));
        };
        Err(HfUserRejection::new(guard::deny(
            context,
            caller,
            &parts.uri,
            &parts.extensions,
            Denial::NotSignedIn,
        )))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for HfUser {
    type Rejection = HfUserRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let (context, user) = layer::context(&parts.extensions);
        if context.is_none() {
            let caller = Caller::of_parts(&parts.method, &parts.headers);
            return Err(HfUserRejection::new(respond::missing_layer(caller)));
        }
        Ok(user.cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use tower::ServiceExt;

    async fn me(user: Result<HfUser, HfUserRejection>) -> String {
        match user {
            Ok(user) => user.username().to_owned(),
            Err(r) => format!("{}|{:?}|{r}", r.status().as_u16(), r.kind()),
        }
    }

    async fn answer(app: Router, accept: &str) -> String {
        let req = http::Request::get("/me")
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        String::from_utf8(to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_rejection_says_what_went_wrong_to_the_handler() {
        let config = crate::HfAuthConfig::builder()
            .with_client_id("id")
            .with_public_url("http://127.0.0.1:1")
            .build()
            .unwrap();
        let app = Router::new()
            .route("/me", get(me))
            .layer(crate::HfAuthLayer::new(config));
        assert_eq!(
            answer(app.clone(), "application/json").await,
            "401|Some(Unauthenticated)|Sign in with Hugging Face first: \
             /login?return_to=%2Fme"
        );
        assert_eq!(
            answer(app, "text/html").await,
            "303|None|Sign in with Hugging Face first."
        );
        let bare = Router::new().route("/me", get(me));
        let missing = answer(bare, "application/json").await;
        assert!(
            missing.starts_with("500|Some(MissingLayer)|HfAuthLayer is missing"),
            "{missing}"
        );
    }
}
