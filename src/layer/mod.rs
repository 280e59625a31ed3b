//! [`HfAuthLayer`]: answers the sign-in routes, reads the session of every other
//! request and inserts the signed-in [`HfUser`] into its extensions.
//!
//! The layer never rejects a request by itself: a missing, expired or broken session
//! just means no `HfUser` (a broken cookie is also cleared). Routes that need a user
//! say so with a guard such as [`RequireLogin`](crate::RequireLogin). A session near or
//! past its access token's expiry that holds a refresh token is refreshed first (see
//! the [`session`](crate::session) module); every other session is read without
//! waiting.
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

use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use body::AuthBody;
pub use future::ResponseFuture;
pub(crate) use future::Step;

use crate::HfUser;
use crate::bearer::{BearerRejection, BearerValidator};
use crate::config::HfAuthConfig;
use crate::flow::{self, UsedStates};
use crate::respond::{self, Caller};
use crate::session::Loaded;
use crate::session::refresh::Outcome;

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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
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
        let mut signed_in = false;
        // A session due for a refresh that has no remembered outcome: refreshed below.
        let mut stale = None;
        let set_cookies = match config
            .sessions
            .load(req.headers(), now, config.refresh_before)
        {
            Loaded::Valid(user) => {
                signed_in = sign_in(config, &mut req, user);
                Vec::new()
            }
            Loaded::Stale {
                user,
                present,
                expired,
            } => match config.refresher.remembered(&user) {
                Some(outcome) => {
                    let (user, set_cookies) = settle(config, outcome, user, present, expired, now);
                    if let Some(user) = user {
                        signed_in = sign_in(config, &mut req, user);
                    }
                    set_cookies
                }
                None => {
                    stale = Some((user, present, expired));
                    Vec::new()
                }
            },
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

        if let Some((user, present, expired)) = stale {
            let shared = self.shared.clone();
            let caller = self.caller.unwrap_or_else(|| Caller::of(&req));
            return ResponseFuture::step(async move {
                let config = &shared.config;
                // A still-valid session waits only briefly: a slow provider must not
                // slow every request in the refresh window. The refresh goes on in its
                // own task, and a later request picks up its outcome.
                let outcome = if expired {
                    config.refresher.refresh(&user).await
                } else {
                    tokio::time::timeout(REFRESH_WAIT, config.refresher.refresh(&user))
                        .await
                        .unwrap_or(Outcome::Unavailable)
                };
                let now = crate::clock::unix_seconds(config.clock.as_ref());
                let (user, set_cookies) = settle(config, outcome, user, present, expired, now);
                let signed_in = user.is_some_and(|user| sign_in(config, &mut req, user));
                if let Some((validator, token)) = bearer_to_check(config, signed_in, &req) {
                    let (validator, token) = (validator.clone(), token.to_owned());
                    if let Err(unavailable) =
                        check_bearer(&validator, &token, config, &mut req, caller).await
                    {
                        return Step::Own(unavailable);
                    }
                }
                Step::Call(inner.call(req), set_cookies)
            });
        }

        let Some((validator, token)) = bearer_to_check(config, signed_in, &req) else {
            return ResponseFuture::inner(inner.call(req), set_cookies);
        };
        // Fast path: a token seen recently is answered from the cache, without boxing.
        if let Some(answer) = validator.cached(token) {
            accept_bearer(config, &mut req, answer.map_err(|_| BearerRejected));
            return ResponseFuture::inner(inner.call(req), set_cookies);
        }
        let validator = validator.clone();
        let token = token.to_owned();
        let shared = self.shared.clone();
        let caller = self.caller.unwrap_or_else(|| Caller::of(&req));
        ResponseFuture::step(async move {
            match check_bearer(&validator, &token, &shared.config, &mut req, caller).await {
                Err(unavailable) => Step::Own(unavailable),
                Ok(()) => Step::Call(inner.call(req), set_cookies),
            }
        })
    }
}

/// The bearer token to validate, and its validator: only in bearer mode, and only when
/// no session signed the request in.
fn bearer_to_check<'a, B>(
    config: &'a HfAuthConfig,
    signed_in: bool,
    req: &'a Request<B>,
) -> Option<(&'a Arc<BearerValidator>, &'a str)> {
    let validator = config.bearer.as_ref().filter(|_| !signed_in)?;
    Some((validator, bearer_token(req.headers())?))
}

/// Asks the provider about `token` and signs the request in with its answer; `Err` is
/// the `503` to send when the provider could not say.
async fn check_bearer<B>(
    validator: &BearerValidator,
    token: &str,
    config: &HfAuthConfig,
    req: &mut Request<B>,
    caller: Caller,
) -> Result<(), Response<respond::Body>> {
    match validator.validate(token).await {
        Err(BearerRejection::Unavailable { retry_after }) => {
            Err(respond::unavailable(caller, retry_after))
        }
        answer => {
            accept_bearer(config, req, answer.map_err(|_| BearerRejected));
            Ok(())
        }
    }
}

/// Inserts a session's user into the request if the app admits them; whether it did.
fn sign_in<B>(config: &HfAuthConfig, req: &mut Request<B>, user: HfUser) -> bool {
    let admitted = config.is_authorized(&user);
    if admitted {
        req.extensions_mut().insert::<HfUser>(user);
    }
    admitted
}

/// How long a request whose session is still valid waits for its refresh before it is
/// served with the session it has.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a session due for a refresh comes to after `outcome`: the user to sign in, if
/// any, and the `Set-Cookie` headers to send (replacing the `present` old chunks).
///
/// Refreshed: the new session and its cookie. The provider could not answer: the old
/// session while its access token is valid, else no user, and the cookie stays so a
/// later request can try again. The refresh token was refused: the old session until
/// its access token expires, then no user and the cookie is cleared.
fn settle(
    config: &HfAuthConfig,
    outcome: Outcome,
    old: HfUser,
    present: usize,
    expired: bool,
    now: u64,
) -> (Option<HfUser>, Vec<HeaderValue>) {
    match outcome {
        Outcome::Refreshed(user) => match config.sessions.save(user.record(), present, now) {
            Ok(set_cookies) => (Some(user), set_cookies),
            // Cannot happen (the profile is the old one, which fit), but never ends a
            // session early.
            Err(_) => ((!expired).then_some(old), Vec::new()),
        },
        Outcome::Unavailable => ((!expired).then_some(old), Vec::new()),
        Outcome::Refused if expired => (None, config.sessions.clear(present)),
        Outcome::Refused => (Some(old), Vec::new()),
    }
}

/// Marks a request whose bearer token the provider rejected, so a guard's 401 says
/// `error="invalid_token"` (RFC 6750).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerRejected;

fn accept_bearer<B>(
    config: &HfAuthConfig,
    req: &mut Request<B>,
    answer: Result<HfUser, BearerRejected>,
) {
    match answer {
        Ok(user) if config.is_authorized(&user) => {
            req.extensions_mut().insert(user);
        }
        Ok(_) => {}
        Err(rejected) => {
            req.extensions_mut().insert(rejected);
        }
    }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
