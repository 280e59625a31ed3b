//! Sign in with Hugging Face as a tower layer.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod clock;
pub mod config;
mod flow;
pub mod guard;
mod id_token;
pub mod layer;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
mod provider;
pub mod respond;
mod secret;
pub mod session;
pub mod user;

pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, HfAuthConfig, HfAuthConfigBuilder};
pub use guard::RequireLogin;
pub use id_token::IdTokenError;
pub use layer::{AuthBody, HfAuth, HfAuthLayer};
pub use provider::{ClientAuth, ProviderError};
pub use respond::{AuthError, Caller};
pub use secret::Secret;
pub use user::{HfOrg, HfUser, OrgRole, Scopes};
