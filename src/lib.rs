//! "Sign in with Hugging Face" (OAuth 2.0 + OpenID Connect) as a tower layer.
//!
//! Add [`HfAuthLayer`] to an axum app, or any tower-based server, and every request
//! from a signed-in browser carries an [`HfUser`] in its extensions. Routes say what
//! they need with guards such as [`RequireLogin`]; each caller gets the answer its
//! protocol expects (a redirect to sign in for browsers, `401` + `WWW-Authenticate`
//! for API clients, `grpc-status: 16` for gRPC).
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use tower_hf_auth::{HfAuthConfig, HfAuthLayer, HfUser, RequireLogin};
//!
//! # fn main() -> Result<(), tower_hf_auth::ConfigError> {
//! // On a Space: `HfAuthConfig::from_env()?` reads the variables the Space injects.
//! let config = HfAuthConfig::builder()
//!     .with_client_id("my-client-id")
//!     .with_client_secret("my-client-secret")
//!     .with_public_url("http://127.0.0.1:7860")
//!     .with_secret("at least thirty-two characters of key material")
//!     .build()?;
//!
//! async fn me(user: HfUser) -> String {
//!     format!("hello @{}", user.username())
//! }
//! async fn home(user: Option<HfUser>) -> &'static str {
//!     if user.is_some() { "welcome back" } else { "<a href=/login>Sign in</a>" }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me).route_layer(RequireLogin))
//!     .route("/", get(home))
//!     .layer(HfAuthLayer::new(config));
//! # let _ = app;
//! # Ok(())
//! # }
//! # }
//! ```
//!
//! # The request's way through
//! 1. The layer answers its own routes: `GET /login?return_to=/path` (start),
//!    `GET /login/callback` (finish), `GET`/`POST /logout` (see [`config`] to move them).
//! 2. For any other request it opens the session cookie ([`session`]; with a
//!    server-side [`session::store`], reads the session its ticket names) and, when it
//!    is valid and unexpired, inserts [`HfUser`]. It never rejects by itself. A cookie it
//!    opened before is found in the opened-session cache (a hash lookup; expiry is
//!    still checked on every request).
//! 3. Guards ([`guard`], with a cookbook and the full answer table) turn "nobody is
//!    signed in" or "not allowed" into the right answer for the caller ([`respond`]).
//! 4. Handlers read `HfUser` (or `Option<HfUser>` on public routes) with the axum
//!    extractors (feature `axum`) or from the request's extensions.
//!
//! # Features
//! | feature | what it adds |
//! |---|---|
//! | `axum` | `HfUser` / `Option<HfUser>` extractors ([`axum`]) |
//! | `mock` | [`mock::MockHfProvider`], an offline Hugging Face for development and tests |
//! | `tonic` | [`tonic::HfUserExt`]: the signed-in user in gRPC handlers |
//! | `redis` | [`SessionStore::redis`]: sessions in Redis or Valkey, revocable, shared by replicas ([`session::store`]) |
//! | `metrics` | counters and histograms through the `metrics` facade ([`observe`]) |
//!
//! # Observability
//! Every sign-in step and background task runs in a `tracing` span (`hf_auth.login`,
//! `hf_auth.callback`, `hf_auth.refresh`, `hf_auth.profile`, `hf_auth.bearer`, with
//! `hf_auth.provider` spans for the calls to Hugging Face) whose fields say the
//! outcome, the error type, a pseudonymous user id and the duration; with the
//! `metrics` feature the same steps are counted. [`observe`] has the tables of span
//! fields and of metric names and labels.
//!
//! # Security
//! PKCE `S256`; `state` of 256 random bits per sign-in, single use and checked before
//! anything else; RFC 9207 `iss` check; ID tokens verified (RS256 only) against the
//! provider's keys with `iss`, `aud`, `azp`, `exp`, `iat` and `nonce` checks; userinfo
//! `sub` must match; post-login targets are local paths only; provider calls have
//! timeouts, size caps and follow no redirects; cookies are AES-256-GCM sealed,
//! `HttpOnly`, `Secure` on https. [`Secret`]s never show in `Debug` output.
//!
//! The evidence is in the tests, which run against [`mock::MockHfProvider`] over real
//! sockets (`cargo test --all-features`):
//!
//! - the **conformance suite**, [`tests/conformance.rs`], one test per case of the
//!   OpenID Connect relying-party certification plan for the code flow (`rp_nonce_invalid`,
//!   `rp_id_token_bad_sig_hs256`, `rp_key_rotation_op_sign_key`, …), each asserting no
//!   session, a clear error and a working sign-in right after;
//! - hostile providers and requests ([`tests/hostile.rs`]), secrets kept out of logs and
//!   responses ([`tests/secrets.rs`]), load with provider faults (`tests/load.rs`);
//! - property tests of the return-path check and the cookie codec, and cargo-fuzz
//!   targets for the cookie decoder, callback query, return path, ID token and provider
//!   JSON (`fuzz/`), whose corpus is replayed by `tests/fuzz_corpus.rs`.
//!
//! `SECURITY.md` gives the threat model and what is left to the deployer.
//!
//! [`tests/conformance.rs`]: https://docs.rs/crate/tower-hf-auth/latest/source/tests/conformance.rs
//! [`tests/hostile.rs`]: https://docs.rs/crate/tower-hf-auth/latest/source/tests/hostile.rs
//! [`tests/secrets.rs`]: https://docs.rs/crate/tower-hf-auth/latest/source/tests/secrets.rs
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod badge;
pub mod bearer;
pub mod clock;
pub mod config;
pub mod cross_origin;
mod flow;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod guard;
mod id_token;
pub mod layer;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
pub mod observe;
mod provider;
pub mod respond;
mod runtime;
pub mod scope;
mod secret;
pub mod session;
mod single_flight;
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
mod ticket;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;
pub mod user;

pub use bearer::BearerValidation;
pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, HfAuthConfig, HfAuthConfigBuilder};
pub use grpc::GrpcMethods;
pub use guard::{RequireLogin, RequireOrg, RequireScopes, RequireUser};
pub use layer::{AuthBody, HfAuth, HfAuthLayer, RevokeError};
pub use provider::ClientAuth;
pub use respond::{AuthError, AuthErrorKind, Caller};
pub use secret::Secret;
pub use session::store::SessionStore;
pub use user::{HfOrg, HfUser, OrgRole, Scopes};
