//! [`HfAuthLayer`]: answers the sign-in routes, reads the session of every other
//! request and inserts the signed-in [`HfUser`] into its extensions.
//!
//! The layer never rejects a request by itself: a missing, expired or broken session
//! just means no `HfUser` (a broken cookie is also cleared). Routes that need a user
//! say so with a guard such as [`RequireLogin`](crate::RequireLogin).
//!
//! ```
//! use tower_hf_auth::{HfAuthConfig, HfAuthLayer};
//!
//! # fn main() -> Result<(), tower_hf_auth::ConfigError> {
//! let config = HfAuthConfig::builder()
//!     .with_client_id("my-client-id")
//!     .with_public_url("http://127.0.0.1:7860")
//!     .build()?;
//! let layer = HfAuthLayer::new(config);
//! // axum: Router::new().route(…).layer(layer)
//! // tower: ServiceBuilder::new().layer(layer).service(svc)
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

mod body;
mod future;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use body::AuthBody;
pub use future::ResponseFuture;

use crate::HfUser;
use crate::config::HfAuthConfig;
use crate::flow::{self, UsedStates};
use crate::respond::Caller;
use crate::session::Loaded;

/// State shared by the layer, its services and the guards.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: HfAuthConfig,
    pub(crate) used_states: UsedStates,
}

/// Put into every request's extensions by the layer, so guards know where sign-in
/// starts (and know that the layer is there at all).
#[derive(Debug, Clone)]
pub(crate) struct AuthContext {
    pub(crate) shared: Arc<Shared>,
    /// How guards answer, when the layer was told (`for_api()`, …).
    pub(crate) caller: Option<Caller>,
}

/// The sign-in layer. Cheap to clone.
#[derive(Debug, Clone)]
#[must_use]
pub struct HfAuthLayer {
    shared: Arc<Shared>,
    caller: Option<Caller>,
}

impl HfAuthLayer {
    /// A layer with the given configuration.
    pub fn new(config: HfAuthConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                used_states: UsedStates::default(),
            }),
            caller: None,
        }
    }

    /// Answers every denial and error as to an API client (status codes and JSON),
    /// whatever the request looks like. Default: decided per request ([`Caller::of`]).
    ///
    /// ```
    /// # let config = tower_hf_auth::HfAuthConfig::builder()
    /// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
    /// let layer = tower_hf_auth::HfAuthLayer::new(config).for_api();
    /// ```
    pub fn for_api(mut self) -> Self {
        self.caller = Some(Caller::Api);
        self
    }

    /// Answers every denial and error with gRPC statuses. Default: decided per request.
    ///
    /// ```
    /// # let config = tower_hf_auth::HfAuthConfig::builder()
    /// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
    /// let layer = tower_hf_auth::HfAuthLayer::new(config).for_grpc();
    /// ```
    pub fn for_grpc(mut self) -> Self {
        self.caller = Some(Caller::Grpc);
        self
    }
}

impl<S> Layer<S> for HfAuthLayer {
    type Service = HfAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HfAuth {
            inner,
            shared: self.shared.clone(),
            caller: self.caller,
        }
    }
}

/// The service made by [`HfAuthLayer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HfAuth<S> {
    inner: S,
    shared: Arc<Shared>,
    caller: Option<Caller>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HfAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if let Some(answer) = flow::route(&self.shared, &req, self.caller) {
            return answer;
        }
        let config = &self.shared.config;
        let now = crate::clock::unix_seconds(config.clock.as_ref());
        let set_cookies = match config.sessions.load(req.headers(), now) {
            Loaded::Valid(user) => {
                if config.is_authorized(&user) {
                    req.extensions_mut().insert::<HfUser>(user);
                }
                Vec::new()
            }
            Loaded::Invalid { present } => config.sessions.clear(present),
            Loaded::Absent => Vec::new(),
        };
        req.extensions_mut().insert(AuthContext {
            shared: self.shared.clone(),
            caller: self.caller,
        });
        // `poll_ready` readied `self.inner`; call that one and leave a fresh clone in its
        // place for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::inner(inner.call(req), set_cookies)
    }
}
