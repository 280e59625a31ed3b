//! Guards: layers that sit on the routes that need something of the user and turn "no
//! user" or "not allowed" into the right answer for the caller.
//!
//! Guards read the user that [`HfAuthLayer`](crate::HfAuthLayer) put into the request,
//! so that layer must wrap them: in axum, guards go on routes with `route_layer` and
//! `HfAuthLayer` on the router with `layer`. Each guard is a tower [`Layer`], so the
//! same values work in tonic's `Server::builder().layer(…)` and any `ServiceBuilder`;
//! [`GrpcMethods`](crate::GrpcMethods) gives each gRPC method its own guards.
//!
//! # Cookbook
//!
//! Signed in at all, a scope, an organization, a role, anything else:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use tower_hf_auth::{OrgRole, RequireLogin, RequireOrg, RequireScopes, RequireUser, scope};
//!
//! async fn page() -> &'static str { "ok" }
//!
//! let app: Router = Router::new()
//!     // Anyone signed in.
//!     .route("/me", get(page).route_layer(RequireLogin))
//!     // Granted `read-repos` (and, with `all`, every other scope listed).
//!     .route("/repos", get(page).route_layer(RequireScopes::all([scope::READ_REPOS])))
//!     // Granted at least one of these.
//!     .route("/edit", get(page).route_layer(RequireScopes::any([scope::WRITE_REPOS, scope::MANAGE_REPOS])))
//!     // A member of `acme`, in any role.
//!     .route("/acme", get(page).route_layer(RequireOrg::member("acme")))
//!     // `write` or `admin` in `acme` (roles: read < contributor < write < admin).
//!     .route("/acme/deploy", get(page).route_layer(RequireOrg::role("acme", OrgRole::Write)))
//!     // Any condition on the user; the name is what the denial says is needed.
//!     .route("/pro", get(page).route_layer(RequireUser::new("a PRO subscription", |u| u.is_pro())));
//! # }
//! ```
//!
//! Stacked guards must all pass; the outermost is checked first. A whole router can be
//! guarded too, and the whole app restricted to organizations with
//! [`with_authorized_orgs`](crate::HfAuthConfigBuilder::with_authorized_orgs):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use tower_hf_auth::{OrgRole, RequireOrg, RequireScopes, scope};
//!
//! let admin: Router = Router::new()
//!     .route("/users", get(|| async { "users" }))
//!     .route("/repos", get(|| async { "repos" }))
//!     // Both: an acme admin who granted `read-repos`.
//!     .route_layer(RequireScopes::all([scope::READ_REPOS]))
//!     .route_layer(RequireOrg::role("acme", OrgRole::Admin));
//! let app: Router = Router::new().nest("/admin", admin);
//! # }
//! ```
//!
//! A guard that has passed costs a lookup in the request's extensions and a comparison:
//! it allocates nothing and does not clone the user.
//!
//! # Who gets what answer
//!
//! [`Caller`] decides, per request: gRPC by `content-type: application/grpc…`, a
//! browser by a `GET`/`HEAD` that accepts `text/html`, an API client otherwise. Fix it
//! per guard with `.for_api()`, `.for_grpc()` or `.for_browser()`, or for the whole app
//! with [`HfAuthLayer::for_api`](crate::HfAuthLayer::for_api) and its siblings.
//!
//! | denial | browser | API client | gRPC client |
//! |---|---|---|---|
//! | nobody signed in | `303` to `/login?return_to=<path>` | `401`, `WWW-Authenticate: Bearer realm="<public URL>"` (plus `error="invalid_token"` when a bearer token was refused), JSON | HTTP 200, `grpc-status: 16`, a `grpc-message` saying how to sign in |
//! | a scope not granted ([`RequireScopes`]) | `303` to `/login?return_to=<path>&scope=<missing>`: sign in again asking for granted + missing scopes; if they were asked for and still not granted, a `403` page naming them (no loop) | `403`, `WWW-Authenticate: Bearer error="insufficient_scope", scope="<missing>"`, JSON | `grpc-status: 7` |
//! | not in the org, or role too low ([`RequireOrg`]) | `403` page naming the org and role, explaining that org access is granted on the consent screen, with a link to sign in again | `403`, JSON `{"error":"org_required", …}` | `grpc-status: 7` |
//! | the condition is false ([`RequireUser`]) | `403` page saying "This needs …" with the guard's name | `403`, JSON `{"error":"forbidden", …}` | `grpc-status: 7` |
//!
//! JSON bodies are `{"error": <code>, "error_description": <message>}`. Every denial
//! carries an [`AuthError`](crate::AuthError) (kind, status, message) in the response's extensions, for
//! logging or metrics layers outside the guard, and `Cache-Control: no-store`.
//!
//! # Bearer tokens
//!
//! With [`with_bearer_tokens`](crate::HfAuthConfigBuilder::with_bearer_tokens), a request
//! with `Authorization: Bearer <token>` and no session is signed in as the token's user,
//! and the same guards apply. Scope guards see exactly the scopes the [`bearer`]
//! module's table gives a token (for example, a fine-grained user token has none of the
//! repository scopes). Validation answers are cached (5 minutes, never past the token's
//! expiry; rejections 30 seconds); a provider that cannot answer gives `503` with
//! `Retry-After` (gRPC: `grpc-status: 14`), never "invalid token".
//!
//! [`bearer`]: crate::bearer

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::flow::return_to;
use crate::layer::{self, AuthBody, AuthContext, GuardFuture};
use crate::respond::{self, Caller, Denial, OrgShortfall};
use crate::{HfUser, OrgRole};

/// What a guard asks of the user. Implemented by each guard type. Nobody passes when
/// nobody is signed in.
pub(crate) trait Requirement {
    /// Whether the signed-in `user` may pass: the whole cost of a passing guard.
    fn passes(&self, user: &HfUser) -> bool;

    /// Why `user` may not pass; asked only when [`passes`](Self::passes) said no.
    fn denial(&self, user: &HfUser) -> Denial;
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
    fn passes(&self, _: &HfUser) -> bool {
        true
    }

    fn denial(&self, _: &HfUser) -> Denial {
        Denial::NotSignedIn
    }
}

/// Requires granted scopes: all of a list, or any one of it.
///
/// ```
/// use tower_hf_auth::{RequireScopes, scope};
/// let repos = RequireScopes::all([scope::READ_REPOS]);
/// let either = RequireScopes::any([scope::WRITE_REPOS, scope::MANAGE_REPOS]);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireScopes {
    scopes: Arc<[String]>,
    /// The scopes' bits ([`scope::bit`](crate::scope)), when all are documented ones:
    /// then a check is a mask test.
    bits: Option<u32>,
    all: bool,
}

impl RequireScopes {
    /// Every one of `scopes` must be granted. A scope Hugging Face does not document
    /// (see [`scope`](crate::scope)) is logged once, here, as a warning.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(scopes, true)
    }

    /// At least one of `scopes` must be granted. A scope Hugging Face does not
    /// document is logged once, here, as a warning.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(scopes, false)
    }

    fn new<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I, all: bool) -> Self {
        let scopes: Arc<[String]> = scopes.into_iter().map(Into::into).collect();
        crate::scope::warn_unknown(scopes.iter().map(String::as_str), "RequireScopes");
        let bits = scopes
            .iter()
            .try_fold(0, |bits, s| Some(bits | crate::scope::bit(s)?));
        Self { scopes, bits, all }
    }
}

impl Requirement for RequireScopes {
    fn passes(&self, user: &HfUser) -> bool {
        match (self.bits, self.all) {
            (Some(bits), true) => user.scopes().known_bits() & bits == bits,
            (Some(bits), false) => user.scopes().known_bits() & bits != 0,
            (None, true) => self.scopes.iter().all(|s| user.has_scope(s)),
            (None, false) => self.scopes.iter().any(|s| user.has_scope(s)),
        }
    }

    fn denial(&self, user: &HfUser) -> Denial {
        let missing = self
            .scopes
            .iter()
            .filter(|s| !user.has_scope(s))
            .cloned()
            .collect();
        Denial::MissingScopes(missing)
    }
}

/// Requires membership of an organization, optionally with at least a role
/// (`Read < Contributor < Write < Admin`).
///
/// A role is only known for organizations the user granted the app access to on the
/// consent screen; membership alone is known for all. A member with the `no_access`
/// role, or with security restrictions of the organization they have not met (SSO,
/// two-factor authentication, allowed networks, token policy), is refused, with a page
/// or message saying what to do. The denial links to `/login?org=<name>`, which asks
/// Hugging Face for access to the organization (`orgIds`).
///
/// ```
/// use tower_hf_auth::{OrgRole, RequireOrg};
/// let members = RequireOrg::member("acme");
/// let writers = RequireOrg::role("acme", OrgRole::Write);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireOrg {
    org: Arc<str>,
    role: Option<OrgRole>,
}

impl RequireOrg {
    /// The user must belong to `org` (its handle, as in `huggingface.co/{org}`).
    pub fn member(org: impl Into<String>) -> Self {
        Self {
            org: org.into().into(),
            role: None,
        }
    }

    /// The user must have at least `role` in `org`.
    pub fn role(org: impl Into<String>, role: OrgRole) -> Self {
        Self {
            org: org.into().into(),
            role: Some(role),
        }
    }
}

impl RequireOrg {
    /// What `user` lacks, if anything.
    fn shortfall(&self, user: &HfUser) -> Option<OrgShortfall> {
        match user.org(&self.org) {
            None => Some(OrgShortfall::NotMember),
            Some(org) if org.role() == Some(OrgRole::NoAccess) => Some(OrgShortfall::NotMember),
            Some(org) if !org.security_restrictions().is_empty() => Some(OrgShortfall::Restricted(
                org.security_restrictions().to_vec(),
            )),
            Some(org) => match (self.role, org.role()) {
                (None, _) => None,
                (Some(_), None) => Some(OrgShortfall::NotGranted),
                (Some(need), Some(have)) if have >= need => None,
                (Some(_), Some(have)) => Some(OrgShortfall::RoleTooLow(have)),
            },
        }
    }
}

impl Requirement for RequireOrg {
    fn passes(&self, user: &HfUser) -> bool {
        self.shortfall(user).is_none()
    }

    fn denial(&self, user: &HfUser) -> Denial {
        Denial::Org {
            org: self.org.clone(),
            role: self.role,
            // Asked only when there is a shortfall.
            why: self.shortfall(user).unwrap_or(OrgShortfall::NotMember),
        }
    }
}

/// Requires a condition on the user, named for the denial message.
///
/// ```
/// use tower_hf_auth::RequireUser;
/// let pro_only = RequireUser::new("a PRO subscription", |user| user.is_pro());
/// ```
#[must_use]
pub struct RequireUser<F> {
    name: Arc<str>,
    predicate: Arc<F>,
}

impl<F> RequireUser<F>
where
    F: Fn(&HfUser) -> bool,
{
    /// A guard passing users for whom `predicate` is true; `name` says what is
    /// required ("a PRO subscription") in the denial.
    pub fn new(name: impl Into<String>, predicate: F) -> Self {
        Self {
            name: name.into().into(),
            predicate: Arc::new(predicate),
        }
    }
}

impl<F> Clone for RequireUser<F> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

impl<F> fmt::Debug for RequireUser<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F: Fn(&HfUser) -> bool> Requirement for RequireUser<F> {
    fn passes(&self, user: &HfUser) -> bool {
        (self.predicate)(user)
    }

    fn denial(&self, _: &HfUser) -> Denial {
        Denial::Predicate(self.name.clone())
    }
}

/// A guard that answers every denial as one kind of [`Caller`], whatever the request
/// looks like. Made by the guards' `for_api()`, `for_grpc()` and `for_browser()`.
///
/// ```
/// use tower_hf_auth::{RequireScopes, scope};
/// // A JSON API: never redirect, even when a request accepts HTML.
/// let guard = RequireScopes::all([scope::READ_REPOS]).for_api();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AnswerAs<G> {
    guard: G,
    caller: Caller,
}

macro_rules! guard_layer {
    ($([$($gen:ident)?] $ty:ty),*) => {$(
        impl<S $(, $gen)?> Layer<S> for $ty {
            type Service = Guard<S, Self>;

            fn layer(&self, inner: S) -> Self::Service {
                Guard {
                    inner,
                    requirement: self.clone(),
                    caller: None,
                }
            }
        }

        impl<S $(, $gen)?> Layer<S> for AnswerAs<$ty> {
            type Service = Guard<S, $ty>;

            fn layer(&self, inner: S) -> Self::Service {
                Guard {
                    inner,
                    requirement: self.guard.clone(),
                    caller: Some(self.caller),
                }
            }
        }

        impl$(<$gen>)? $ty {
            /// Answers denials as to an API client (401/403 with JSON), whatever the request.
            pub fn for_api(self) -> AnswerAs<Self> {
                AnswerAs { guard: self, caller: Caller::Api }
            }

            /// Answers denials with gRPC statuses (16/7), whatever the request.
            pub fn for_grpc(self) -> AnswerAs<Self> {
                AnswerAs { guard: self, caller: Caller::Grpc }
            }

            /// Answers denials as to a browser (redirects and pages), whatever the request.
            pub fn for_browser(self) -> AnswerAs<Self> {
                AnswerAs { guard: self, caller: Caller::Browser }
            }
        }
    )*};
}

guard_layer!([] RequireLogin, [] RequireScopes, [] RequireOrg, [F] RequireUser<F>);

/// The service a guard layer makes: passes the request on when its requirement holds,
/// answers the caller itself when not.
#[derive(Debug, Clone)]
#[must_use]
pub struct Guard<S, R> {
    inner: S,
    requirement: R,
    caller: Option<Caller>,
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Requirement,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Passing is a lookup and a test; `refusal`, which asks again, is for the rest.
        let user = req.extensions().get::<HfUser>();
        if !user.is_some_and(|user| self.requirement.passes(user))
            && let Some(refusal) = refusal(&req, self.caller, [&self.requirement])
        {
            return GuardFuture::denied(refusal);
        }
        // `poll_ready` readied `self.inner`, and it is called now, not from the future:
        // no clone is needed (nor taken on every request).
        GuardFuture::inner(self.inner.call(req))
    }
}

/// The guards' one decision: `None` when the request's user meets every requirement,
/// else the answer for the caller (`caller`, when the guard was told, else the layer's
/// setting, else [`Caller::of`]). Without the layer around, the answer says to add it.
pub(crate) fn refusal<'r, B, R: Requirement + ?Sized + 'r>(
    req: &Request<B>,
    caller: Option<Caller>,
    requirements: impl IntoIterator<Item = &'r R>,
) -> Option<Response<respond::Body>> {
    let user = req.extensions().get::<HfUser>();
    let mut requirements = requirements.into_iter();
    let failed = match user {
        // Only the layer puts a user into a request: passing needs nothing more.
        Some(user) => Some(requirements.find(|r| !r.passes(user))?),
        None => requirements.next(),
    };
    // Who is asking, and the layer's context, matter only for a denial.
    let context = layer::context(req.extensions()).0;
    let caller = caller
        .or_else(|| context.and_then(|c| c.caller))
        .unwrap_or_else(|| Caller::of(req));
    let Some(context) = context else {
        return Some(respond::missing_layer(caller));
    };
    let denial = match user {
        Some(user) => failed?.denial(user),
        None => {
            failed?;
            Denial::NotSignedIn
        }
    };
    Some(deny(context, caller, req.uri(), req.extensions(), denial))
}

/// The answer to a request denied for `denial`: the request's own path (made a safe
/// return path) goes into the sign-in links.
pub(crate) fn deny(
    context: &AuthContext,
    caller: Caller,
    uri: &http::Uri,
    extensions: &http::Extensions,
    denial: Denial,
) -> Response<respond::Body> {
    // Under axum's `Router::nest` the URI a guard sees lacks the prefix: the links take
    // the request's original URI.
    let uri = original_uri(extensions).unwrap_or(uri);
    let here = return_to::sanitize(uri.path_and_query().map_or("/", |pq| pq.as_str()));
    let res = respond::deny(&context.runtime, caller, &here, extensions, denial);
    respond::own_page(res, &context.runtime.config.frame_policy)
}

/// The URI the request arrived with, when a router rewrote it (axum's `OriginalUri`).
#[cfg(feature = "axum")]
fn original_uri(extensions: &http::Extensions) -> Option<&http::Uri> {
    extensions
        .get::<axum::extract::OriginalUri>()
        .map(|original| &original.0)
}

#[cfg(not(feature = "axum"))]
fn original_uri(_: &http::Extensions) -> Option<&http::Uri> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_user_debug_shows_its_name() {
        let guard = RequireUser::new("a PRO subscription", |u: &HfUser| u.is_pro());
        assert_eq!(
            format!("{guard:?}"),
            "RequireUser { name: \"a PRO subscription\", .. }"
        );
    }

    /// An inner service that is never ready (overloaded, or a concurrency limit reached).
    #[derive(Clone)]
    struct NeverReady;

    impl Service<Request<()>> for NeverReady {
        type Response = Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<()>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            unreachable!("never ready")
        }
    }

    mod scope_bits {
        use super::super::*;
        use crate::Secret;
        use crate::user::{Profile, Scopes, SessionRecord};
        use proptest::prelude::*;

        fn user(scopes: &[&str]) -> HfUser {
            HfUser::from_record(SessionRecord {
                profile: Profile::default(),
                scopes: scopes.iter().copied().collect(),
                access_token: Secret::new("hf_oauth_x".to_owned()),
                expires_at: 2_000,
                refresh_token: None,
                asked: Scopes::default(),
                profile_at: 0,
                stored: None,
            })
        }

        /// Documented scopes, and names that are not (close to documented ones).
        fn scope() -> impl Strategy<Value = &'static str> {
            let mut names = crate::scope::ALL.to_vec();
            names.extend(["read-repo", "openid ", "x-new-scope", ""]);
            proptest::sample::select(names)
        }

        proptest! {
            /// A scope guard decides on bits exactly as by comparing the strings,
            /// with documented scopes, undocumented ones, or both.
            #[test]
            fn bits_decide_as_the_strings(
                granted in proptest::collection::vec(scope(), 0..6),
                wanted in proptest::collection::vec(scope(), 0..4),
            ) {
                let user = user(&granted);
                let has = |s: &&str| user.has_scope(s);
                let all = RequireScopes::all(wanted.iter().copied());
                let any = RequireScopes::any(wanted.iter().copied());
                prop_assert_eq!(all.passes(&user), wanted.iter().all(has));
                prop_assert_eq!(any.passes(&user), wanted.iter().any(has));
                let documented = wanted.iter().all(|s| crate::scope::is_known(s));
                prop_assert_eq!(all.bits.is_some(), documented);
            }
        }
    }

    #[test]
    fn a_guard_is_ready_only_when_its_inner_service_is() {
        let mut guard = RequireLogin.layer(NeverReady);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            guard.poll_ready(&mut cx).is_pending(),
            "backpressure passes through"
        );
    }
}
