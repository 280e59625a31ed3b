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
mod cross_origin;
mod future;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use body::AuthBody;
pub(crate) use future::Step;
pub use future::{GuardFuture, ResponseFuture};

use crate::HfUser;
use crate::bearer::{self, BearerValidator};
use crate::config::HfAuthConfig;
use crate::flow::{self, Answer};
use crate::respond::{self, Caller};
use crate::runtime::Runtime;
use crate::session::refresh::settle;
use crate::session::{Loaded, Renew};
use crate::user::Via;

/// The layer's part of every request, so guards and extractors reach the running parts
/// (and know that the layer is there at all): carried by the [`HfUser`] the layer puts
/// into the request, or put into its extensions as `Arc<AuthContext>` when nobody is
/// signed in. [`context`] finds it either way.
#[derive(Debug)]
pub(crate) struct AuthContext {
    pub(crate) runtime: Arc<Runtime>,
    /// How guards answer, when the layer was told (`for_api()`, …).
    pub(crate) caller: Option<Caller>,
}

/// The request's user and the layer's context, from its extensions: `None` for the
/// context when no layer is there.
pub(crate) fn context(extensions: &http::Extensions) -> (Option<&AuthContext>, Option<&HfUser>) {
    let user = extensions.get::<HfUser>();
    let carried = user
        .and_then(HfUser::via)
        .and_then(|via| via.downcast_ref::<AuthContext>());
    let context = carried.or_else(|| extensions.get::<Arc<AuthContext>>().map(|c| &**c));
    (context, user)
}

/// Why a revocation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeError {
    /// Sessions live in cookies, which cannot be revoked: configure a server-side
    /// [`SessionStore`](crate::SessionStore).
    NoServerStore,
    /// The session store did not answer in time; nothing may have been revoked.
    StoreUnavailable,
}

impl std::fmt::Display for RevokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoServerStore => {
                "sessions live in cookies, which cannot be revoked: configure a server-side \
                 session store"
            }
            Self::StoreUnavailable => "the session store did not answer in time",
        })
    }
}

impl std::error::Error for RevokeError {}

/// The sign-in layer. Cheap to clone: clones share one set of running parts.
#[derive(Debug, Clone)]
#[must_use]
pub struct HfAuthLayer {
    runtime: Arc<Runtime>,
    caller: Option<Caller>,
}

impl HfAuthLayer {
    /// A layer with the given configuration. Builds the running parts once (the
    /// provider client, session cookie keys, refresher, bearer validator, replay set);
    /// opens no connection.
    pub fn new(config: HfAuthConfig) -> Self {
        Self {
            runtime: Arc::new(Runtime::new(config)),
            caller: None,
        }
    }

    /// The configuration the layer was built with.
    #[must_use]
    pub fn config(&self) -> &HfAuthConfig {
        &self.runtime.config
    }

    /// Answers every denial and error as to an API client (status codes and JSON),
    /// whatever the request looks like. Default: decided per request ([`Caller::of`]).
    ///
    /// ```
    /// # let config = tower_hf_auth::HfAuthConfig::builder()
    /// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
    /// let layer = tower_hf_auth::HfAuthLayer::new(config).for_api();
    /// ```
    pub fn for_api(self) -> Self {
        self.answer_as(Caller::Api)
    }

    /// Answers every denial and error with gRPC statuses. Default: decided per request.
    ///
    /// ```
    /// # let config = tower_hf_auth::HfAuthConfig::builder()
    /// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
    /// let layer = tower_hf_auth::HfAuthLayer::new(config).for_grpc();
    /// ```
    pub fn for_grpc(self) -> Self {
        self.answer_as(Caller::Grpc)
    }

    /// Answers every denial and error as to a browser (redirects and HTML pages).
    /// Default: decided per request.
    ///
    /// ```
    /// # let config = tower_hf_auth::HfAuthConfig::builder()
    /// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
    /// let layer = tower_hf_auth::HfAuthLayer::new(config).for_browser();
    /// ```
    pub fn for_browser(self) -> Self {
        self.answer_as(Caller::Browser)
    }

    /// Ends every session of the user with id `user_id` ([`HfUser::id`]) on every
    /// device and replica; how many there were. Every replica refuses them within
    /// about a second (at once on this one). Needs a server-side session store.
    ///
    /// # Errors
    /// [`RevokeError::NoServerStore`] with cookie sessions (which cannot be revoked);
    /// [`RevokeError::StoreUnavailable`] when the store does not answer in time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_hf_auth::{HfAuthConfig, HfAuthLayer, RevokeError};
    /// # let config = HfAuthConfig::builder()
    /// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
    /// let layer = HfAuthLayer::new(config);
    /// // Cookie sessions cannot be revoked; with `SessionStore::redis` this ends them all.
    /// assert_eq!(layer.revoke_user("62e0a7d9c5e0e1c0b8f0a1b2").await, Err(RevokeError::NoServerStore));
    /// # }
    /// ```
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, RevokeError> {
        #[cfg(feature = "redis")]
        if let Some(store) = &self.runtime.store {
            return store
                .revoke_user(user_id)
                .await
                .map_err(|_| RevokeError::StoreUnavailable);
        }
        let _ = user_id;
        Err(RevokeError::NoServerStore)
    }

    /// Ends the one session whose id is `session_id` ([`HfUser::session_id`]);
    /// whether it still existed. Needs a server-side session store.
    ///
    /// # Errors
    /// As [`revoke_user`](Self::revoke_user).
    pub async fn revoke_session(&self, session_id: &str) -> Result<bool, RevokeError> {
        #[cfg(feature = "redis")]
        if let Some(store) = &self.runtime.store {
            return store
                .delete(session_id)
                .await
                .map_err(|_| RevokeError::StoreUnavailable);
        }
        let _ = session_id;
        Err(RevokeError::NoServerStore)
    }

    fn answer_as(mut self, caller: Caller) -> Self {
        self.caller = Some(caller);
        self
    }
}

impl<S> Layer<S> for HfAuthLayer {
    type Service = HfAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HfAuth {
            inner,
            context: Arc::new(AuthContext {
                runtime: self.runtime.clone(),
                caller: self.caller,
            }),
        }
    }
}

/// The service made by [`HfAuthLayer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HfAuth<S> {
    inner: S,
    context: Arc<AuthContext>,
}

/// A session due for a refresh whose outcome is not known yet: refreshed before the
/// request goes on.
struct Stale {
    user: HfUser,
    present: usize,
    expired: bool,
    renew: Renew,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HfAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let context = &self.context;
        let (runtime, caller) = (&context.runtime, context.caller);
        if flow::owns(&runtime.config, req.uri().path()) {
            return match flow::route(runtime, req, caller) {
                Answer::Ready(response) => ResponseFuture::ready(response),
                Answer::Later(fut) => ResponseFuture::boxed(fut),
            };
        }
        if let Some(refused) = cross_origin::refuse(runtime, &req, caller) {
            return ResponseFuture::ready(refused);
        }
        let (signed_in, later, set_cookies) = open_session(context, &mut req);

        if let Some(later) = later {
            let mut inner = take_ready(&mut self.inner);
            let context = context.clone();
            let caller = caller.unwrap_or_else(|| Caller::of(&req));
            return ResponseFuture::step(async move {
                let (mut signed_in, set_cookies) = later.settle(&context, &mut req).await;
                let runtime = &context.runtime;
                if let Some((validator, token)) = bearer_to_check(runtime, signed_in, &req) {
                    let (validator, token) = (validator.clone(), token.to_owned());
                    let admits = |u: &HfUser| runtime.admits(u);
                    match bearer::check(&validator, &token, &mut req, admits, &via(&context)).await
                    {
                        Err(retry) => return Step::Own(respond::unavailable(caller, retry)),
                        Ok(accepted) => signed_in = accepted,
                    }
                }
                mark(&mut req, signed_in, &context);
                Step::Call(inner.call(req), set_cookies)
            });
        }

        // The fast paths call `self.inner`, which `poll_ready` readied, at once: a token
        // accepted recently, found by its header's bytes before any check, then one
        // whose answer is cached, without boxing.
        let answer = match known_bearer(runtime, signed_in, &req) {
            Some(user) => Ok(user),
            None => {
                let Some((validator, token)) = bearer_to_check(runtime, signed_in, &req) else {
                    mark(&mut req, signed_in, context);
                    return ResponseFuture::inner(self.inner.call(req), set_cookies);
                };
                match validator.cached(token) {
                    Some(answer) => answer,
                    None => {
                        let (validator, token) = (validator.clone(), token.to_owned());
                        return self.check_bearer(req, validator, token, set_cookies);
                    }
                }
            }
        };
        let accepted = bearer::accept(&mut req, answer, |u| runtime.admits(u), &via(context));
        mark(&mut req, accepted, context);
        ResponseFuture::inner(self.inner.call(req), set_cookies)
    }
}

impl<S> HfAuth<S> {
    /// Answers after asking whether `token` is valid (the provider, or a check in
    /// flight for the same token).
    fn check_bearer<ReqBody>(
        &mut self,
        mut req: Request<ReqBody>,
        validator: Arc<BearerValidator>,
        token: String,
        set_cookies: Vec<http::HeaderValue>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>> + Clone + Send + 'static,
        S::Future: Send,
        ReqBody: Send + 'static,
    {
        let mut inner = take_ready(&mut self.inner);
        let context = self.context.clone();
        let caller = context.caller.unwrap_or_else(|| Caller::of(&req));
        ResponseFuture::step(async move {
            let admits = |u: &HfUser| context.runtime.admits(u);
            match bearer::check(&validator, &token, &mut req, admits, &via(&context)).await {
                Err(retry) => Step::Own(respond::unavailable(caller, retry)),
                Ok(accepted) => {
                    mark(&mut req, accepted, &context);
                    Step::Call(inner.call(req), set_cookies)
                }
            }
        })
    }
}

/// The layer's context as a signed-in user carries it.
fn via(context: &Arc<AuthContext>) -> Via {
    context.clone()
}

/// Puts the layer's context into a request nobody signed in (a signed-in user carries
/// it already).
fn mark<B>(req: &mut Request<B>, signed_in: bool, context: &Arc<AuthContext>) {
    if !signed_in {
        req.extensions_mut().insert(context.clone());
    }
}

/// The service `poll_ready` readied, for a call made later from a future; a fresh clone
/// takes its place for the next request.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// A session whose answer needs the provider or the store.
enum Later {
    /// Due for a refresh whose outcome is not known yet.
    Stale(Stale),
    /// A ticket to a server-side session that is not in the cache.
    #[cfg(feature = "redis")]
    Fetch {
        value: String,
        ticket: crate::session::cache::Ticket,
    },
}

impl Later {
    /// Settles the session and signs the request in; whether someone is signed in,
    /// and the `Set-Cookie` headers to send.
    async fn settle<B>(
        self,
        context: &Arc<AuthContext>,
        req: &mut Request<B>,
    ) -> (bool, Vec<http::HeaderValue>) {
        match self {
            Self::Stale(stale) => refresh(context, req, stale).await,
            #[cfg(feature = "redis")]
            Self::Fetch { value, ticket } => fetch(context, req, &value, ticket).await,
        }
    }
}

/// Refreshes a stale session, then signs the request in with what came of it.
async fn refresh<B>(
    context: &Arc<AuthContext>,
    req: &mut Request<B>,
    stale: Stale,
) -> (bool, Vec<http::HeaderValue>) {
    let runtime = &context.runtime;
    let outcome = runtime
        .refresher
        .refresh_for_request(&stale.user, stale.renew, stale.expired)
        .await;
    let now = runtime.now();
    let (user, set_cookies) = settle(
        &runtime.sessions,
        outcome,
        stale.user,
        stale.present,
        stale.expired,
        now,
    );
    let signed_in = user.is_some_and(|user| sign_in(context, req, user));
    (signed_in, set_cookies)
}

/// Reads a server-side session from the store. When the store does not answer, the
/// request goes on with no user and its cookie kept, marked so guards answer `503`.
#[cfg(feature = "redis")]
async fn fetch<B>(
    context: &Arc<AuthContext>,
    req: &mut Request<B>,
    value: &str,
    ticket: crate::session::cache::Ticket,
) -> (bool, Vec<http::HeaderValue>) {
    let runtime = &context.runtime;
    let Some(store) = &runtime.store else {
        return (false, Vec::new());
    };
    let sessions = &runtime.sessions;
    let record = match store.open(value, &sessions.keys, &sessions.name).await {
        Ok(record) => record,
        Err(_) => {
            req.extensions_mut()
                .insert(crate::session::store::StoreUnavailable);
            return (false, Vec::new());
        }
    };
    let now = runtime.now();
    let refresh_before = runtime.config.refresh_before;
    match sessions.fetched(record, value, now, refresh_before, &runtime.opened, ticket) {
        Loaded::Valid(user) => (sign_in(context, req, user), Vec::new()),
        Loaded::Stale {
            user,
            present,
            expired,
            renew,
        } => {
            let stale = Stale {
                user,
                present,
                expired,
                renew,
            };
            refresh(context, req, stale).await
        }
        _ => (false, sessions.clear(1)),
    }
}

/// Reads the request's session and signs it in when it is valid (or its refresh was
/// already settled). Returns whether someone is signed in, the session to settle
/// first (refresh, or read from the store), if any, and the `Set-Cookie` headers.
fn open_session<B>(
    context: &Arc<AuthContext>,
    req: &mut Request<B>,
) -> (bool, Option<Later>, Vec<http::HeaderValue>) {
    let runtime = &context.runtime;
    let loaded = runtime.sessions.load(
        req.headers(),
        || runtime.now(),
        runtime.config.refresh_before,
        &runtime.opened,
    );
    match loaded {
        Loaded::Valid(user) => (sign_in(context, req, user), None, Vec::new()),
        Loaded::Stale {
            user,
            present,
            expired,
            renew,
        } => match runtime.refresher.remembered(&user, renew) {
            Some(outcome) => {
                let now = runtime.now();
                let (user, set_cookies) =
                    settle(&runtime.sessions, outcome, user, present, expired, now);
                let signed_in = user.is_some_and(|user| sign_in(context, req, user));
                (signed_in, None, set_cookies)
            }
            None => {
                let stale = Stale {
                    user,
                    present,
                    expired,
                    renew,
                };
                (false, Some(Later::Stale(stale)), Vec::new())
            }
        },
        #[cfg(feature = "redis")]
        Loaded::Fetch { value, ticket } => {
            (false, Some(Later::Fetch { value, ticket }), Vec::new())
        }
        Loaded::Invalid { present } => (false, None, runtime.sessions.clear(present)),
        Loaded::Absent => (false, None, Vec::new()),
    }
}

/// The bearer token to validate, and its validator: only in bearer mode, and only when
/// no session signed the request in.
fn bearer_to_check<'a, B>(
    runtime: &'a Runtime,
    signed_in: bool,
    req: &'a Request<B>,
) -> Option<(&'a Arc<BearerValidator>, &'a str)> {
    let validator = bearer_validator(runtime, signed_in)?;
    Some((validator, bearer::bearer_token(req.headers())?))
}

/// The bearer validator, in bearer mode, for a request no session signed in.
fn bearer_validator(runtime: &Runtime, signed_in: bool) -> Option<&Arc<BearerValidator>> {
    runtime.bearer.as_ref().filter(|_| !signed_in)
}

/// The user of a bearer token accepted recently, if the request has one and is not
/// signed in already (see [`BearerValidator::known`]).
fn known_bearer<B>(runtime: &Runtime, signed_in: bool, req: &Request<B>) -> Option<HfUser> {
    bearer_validator(runtime, signed_in)?.known(bearer::raw_bearer_token(req.headers())?)
}

/// Inserts a session's user into the request, carrying the layer's context, if the app
/// admits them; whether it did.
fn sign_in<B>(context: &Arc<AuthContext>, req: &mut Request<B>, user: HfUser) -> bool {
    let admitted = context.runtime.admits(&user);
    if admitted {
        req.extensions_mut().insert(user.with_via(via(context)));
    }
    admitted
}
