//! Reading the settings from the environment: the variables a Space injects and the
//! crate's own (the table is in the [module docs](crate::config)).

use super::{ConfigError, HfAuthConfigBuilder};
use crate::Secret;
use crate::session::store::SessionStore;

impl HfAuthConfigBuilder {
    /// Reads the Spaces variables and the crate's own (see the [module docs](crate::config)).
    /// Unset variables leave the builder's defaults; call further builder methods to
    /// override, then [`build`](Self::build).
    ///
    /// # Errors
    /// When a variable that is set has an unusable value (e.g. `HF_AUTH_SECRET` too short).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut b = Self {
            on_space: var("SPACE_ID").is_some(),
            ..Self::default()
        };
        b.client_id = var("OAUTH_CLIENT_ID");
        b.client_secret = var("OAUTH_CLIENT_SECRET").map(Secret::new);
        b.scopes =
            var("OAUTH_SCOPES").map(|s| s.split_ascii_whitespace().map(str::to_owned).collect());
        b.provider_url = var("OPENID_PROVIDER_URL");
        if let Some(hosts) = var("SPACE_HOST") {
            let first = hosts.split(',').map(str::trim).find(|h| !h.is_empty());
            let Some(first) = first else {
                return Err(ConfigError::Invalid {
                    setting: "SPACE_HOST",
                    reason: "it holds no host name".into(),
                });
            };
            b.public_url = Some(format!("https://{first}"));
            b.iframe = Some(true);
        } else {
            b.public_url = var("PUBLIC_URL");
        }
        b.secret = var("HF_AUTH_SECRET").map(Secret::new);
        b.old_secrets = var("HF_AUTH_OLD_SECRETS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(url) = var("HF_AUTH_REDIS_URL") {
            b.session_store = Some(redis_store(url, var("HF_AUTH_REDIS_PREFIX"))?);
        }
        Ok(b)
    }
}

/// The store `HF_AUTH_REDIS_URL` names.
#[cfg(feature = "redis")]
fn redis_store(url: String, prefix: Option<String>) -> Result<SessionStore, ConfigError> {
    let store = SessionStore::redis(url);
    Ok(match prefix {
        Some(prefix) => store.with_key_prefix(prefix),
        None => store,
    })
}

#[cfg(not(feature = "redis"))]
fn redis_store(_: String, _: Option<String>) -> Result<SessionStore, ConfigError> {
    Err(ConfigError::Invalid {
        setting: "HF_AUTH_REDIS_URL",
        reason: "this build of tower-hf-auth has no Redis support: enable its `redis` \
                 feature, or unset the variable for cookie sessions"
            .into(),
    })
}
