//! Configuration: [`HfAuthConfig`], built with [`HfAuthConfigBuilder`] or read from the
//! variables a Hugging Face Space injects with [`HfAuthConfig::from_env`].
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OAUTH_CLIENT_ID` | the OAuth app's client id (a Space with `hf_oauth: true` gets one) | required |
//! | `OAUTH_CLIENT_SECRET` | its secret; unset for a public client (PKCE only) | unset |
//! | `OAUTH_SCOPES` | space-separated scopes to ask for; `openid` is always added | `openid profile` |
//! | `OPENID_PROVIDER_URL` | the provider's issuer URL | `https://huggingface.co` |
//! | `SPACE_HOST` | on a Space: public URL `https://{first host}`, cookies for the iframe | unset |
//! | `PUBLIC_URL` | the URL people open the app at, when not on a Space | required off Spaces |
//! | `HF_AUTH_SECRET` | key material for the session cookies, at least 32 characters | derived from `OAUTH_CLIENT_SECRET`; a random key (sessions end at restart) only without either |
//! | `HF_AUTH_OLD_SECRETS` | comma-separated older secrets that still open cookies | unset |
//! | `HF_AUTH_REDIS_URL` | sessions in this Redis/Valkey server (feature `redis`, see [`store`](crate::session::store)) | cookie sessions |
//! | `HF_AUTH_REDIS_PREFIX` | prefix of the store's keys and channel | `hf-auth:` |
//!
//! ```
//! use tower_hf_auth::HfAuthConfig;
//!
//! let config = HfAuthConfig::builder()
//!     .with_client_id("my-client-id")
//!     .with_client_secret("my-client-secret")
//!     .with_public_url("https://my-app.example")
//!     .with_scopes(["openid", "profile", "read-repos"])
//!     .with_secret("a secret of at least thirty-two characters!!")
//!     .build()?;
//! assert_eq!(config.redirect_uri(), "https://my-app.example/login/callback");
//! # Ok::<(), tower_hf_auth::ConfigError>(())
//! ```

mod builder;
mod check;
mod env;

use std::fmt;

pub use builder::HfAuthConfigBuilder;

use crate::Secret;
use crate::bearer::BearerSettings;
use crate::cross_origin::CrossOriginSettings;
use crate::provider::ProviderSettings;
use crate::session::SessionTiming;
use crate::session::cookie::CookieAttrs;
use crate::user::{HfOrg, HfUser, Scopes};

/// The issuer used when `OPENID_PROVIDER_URL` is not set.
pub const DEFAULT_PROVIDER_URL: &str = "https://huggingface.co";

/// Invalid or missing configuration, found at start-up.
///
/// Its message names the variable (and builder method) and says what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is missing.
    Missing {
        /// The environment variable and builder method.
        setting: &'static str,
        /// What to do about it.
        hint: String,
    },
    /// A setting has a value that cannot work.
    Invalid {
        /// The environment variable and builder method.
        setting: &'static str,
        /// Why it cannot work.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { setting, hint } => write!(f, "{setting} is not set: {hint}"),
            Self::Invalid { setting, reason } => write!(f, "{setting} is invalid: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The checked settings of an [`HfAuthLayer`](crate::HfAuthLayer): plain data, cheap to
/// clone, with no running parts ([`HfAuthLayer::new`](crate::HfAuthLayer::new) builds
/// those). Its `Debug` output shows no secret.
#[derive(Clone)]
pub struct HfAuthConfig {
    /// Issuer, client id and secret, client authentication, timeouts, leeway, clock.
    pub(crate) openid: ProviderSettings,
    pub(crate) scopes: Scopes,
    pub(crate) public_url: String,
    pub(crate) redirect_uri: String,
    pub(crate) login_path: String,
    pub(crate) callback_path: String,
    pub(crate) logout_path: String,
    pub(crate) post_logout_redirect: String,
    pub(crate) org_ids: Vec<String>,
    pub(crate) authorized_orgs: Vec<String>,
    pub(crate) pending_prefix: String,
    pub(crate) pending_path: String,
    pub(crate) max_pending_logins: usize,
    pub(crate) cookie_name: String,
    pub(crate) cookie_attrs: CookieAttrs,
    /// Key material of the cookie keys: the configured secret, or a random one.
    pub(crate) secret: Secret,
    pub(crate) old_secrets: Vec<Secret>,
    pub(crate) ephemeral_keys: bool,
    /// Sessions are refreshed from this many seconds before their access token expires.
    pub(crate) refresh_before: u64,
    /// Profile maximum age and the refresh grace of session cookies.
    pub(crate) session_timing: SessionTiming,
    /// The opened-session cache's memory bound in bytes; 0: no cache.
    pub(crate) session_cache_bytes: usize,
    /// Where sessions live.
    pub(crate) session_store: crate::session::store::SessionStore,
    /// Bearer-token settings, when bearer tokens are accepted.
    pub(crate) token_auth: Option<BearerSettings>,
    /// Cookies and pages for an app shown in a cross-site iframe.
    pub(crate) iframe: bool,
    pub(crate) cross_origin: CrossOriginSettings,
    /// The value of `Content-Security-Policy` on the crate's own pages.
    pub(crate) frame_policy: String,
    /// Spans show users' ids as they are rather than pseudonyms.
    pub(crate) raw_user_ids: bool,
}

impl HfAuthConfig {
    /// A builder with every default.
    pub fn builder() -> HfAuthConfigBuilder {
        HfAuthConfigBuilder::default()
    }

    /// Reads the configuration from the environment (see the [module docs](self)) and
    /// builds it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable and what to do, e.g. "OAUTH_CLIENT_ID is not
    /// set: set `hf_oauth: true` in the Space's README metadata".
    pub fn from_env() -> Result<Self, ConfigError> {
        HfAuthConfigBuilder::from_env()?.build()
    }

    /// The redirect URI registered with the provider: `{public URL}{callback path}`.
    #[must_use]
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The public base URL, without a trailing slash.
    #[must_use]
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The OAuth client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.openid.client_id
    }

    /// The scopes asked for at sign-in.
    #[must_use]
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// The path that starts sign-in.
    #[must_use]
    pub fn login_path(&self) -> &str {
        &self.login_path
    }

    /// Whether `user` may use the app at all (see
    /// [`with_authorized_orgs`](HfAuthConfigBuilder::with_authorized_orgs)): with
    /// authorized organizations, the user must be in one of them with access (a role
    /// other than `no_access`, no unmet security restriction).
    #[must_use]
    pub fn is_authorized(&self, user: &HfUser) -> bool {
        self.authorized_orgs.is_empty()
            || self
                .authorized_orgs
                .iter()
                .any(|org| user.org(org).is_some_and(HfOrg::grants_access))
    }

    /// Whether the app is set up to be shown in a cross-site iframe (on a Space):
    /// `SameSite=None; Secure; Partitioned` cookies, and sign-in links that open at the
    /// top level.
    #[must_use]
    pub fn iframe_cookies(&self) -> bool {
        self.iframe
    }

    /// Where sessions live (see [`with_session_store`](HfAuthConfigBuilder::with_session_store)).
    #[must_use]
    pub fn session_store(&self) -> &crate::SessionStore {
        &self.session_store
    }

    /// Whether cookie keys were made at random because no secret was configured.
    #[must_use]
    pub fn has_ephemeral_keys(&self) -> bool {
        self.ephemeral_keys
    }
}

impl fmt::Debug for HfAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfAuthConfig")
            .field("issuer", &self.openid.issuer)
            .field("client_id", &self.openid.client_id)
            .field("client_auth", &self.openid.client_auth)
            .field("public_url", &self.public_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("cookie_name", &self.cookie_name)
            .field("bearer_tokens", &self.token_auth.is_some())
            .field("session_store", &self.session_store)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::check::{PROVIDER_URL, common_path};
    use super::*;
    use crate::provider::ClientAuth;
    use crate::session::cookie::SameSite;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<HfAuthConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        HfAuthConfigBuilder::from_vars(|k| map.get(k).cloned())?.build()
    }

    #[test]
    fn space_variables_are_enough() {
        let c = from(&[
            ("OAUTH_CLIENT_ID", "id"),
            ("OAUTH_CLIENT_SECRET", "secret"),
            ("OAUTH_SCOPES", "openid profile read-repos"),
            ("SPACE_ID", "alice/app"),
            ("SPACE_HOST", "alice-app.hf.space,app.example.com"),
        ])
        .unwrap();
        assert_eq!(
            c.redirect_uri(),
            "https://alice-app.hf.space/login/callback"
        );
        assert_eq!(c.cookie_attrs.same_site, SameSite::None);
        assert!(c.cookie_attrs.secure);
        assert!(c.scopes.contains("read-repos"));
        assert!(
            !c.has_ephemeral_keys(),
            "the cookie key comes from OAUTH_CLIENT_SECRET"
        );
        assert_eq!(c.cookie_name, "__Host-hf_auth");
        assert_eq!(c.pending_prefix, "__Host-hf_auth_login_");
        assert_eq!(c.pending_path, "/", "`__Host-` cookies need `Path=/`");
    }

    #[test]
    fn the_cookie_key_survives_a_restart_and_is_random_only_without_any_secret() {
        let vars = [
            ("OAUTH_CLIENT_ID", "id"),
            ("OAUTH_CLIENT_SECRET", "the-client-secret"),
            ("SPACE_HOST", "alice-app.hf.space"),
        ];
        let (a, b) = (from(&vars).unwrap(), from(&vars).unwrap());
        assert_eq!(
            a.secret.expose(),
            b.secret.expose(),
            "same key after a restart"
        );
        assert_ne!(a.secret.expose(), "the-client-secret");
        let configured = from(&[
            vars[0],
            vars[1],
            vars[2],
            ("HF_AUTH_SECRET", &"k".repeat(40)),
        ])
        .unwrap();
        assert_eq!(
            configured.secret.expose(),
            "k".repeat(40),
            "HF_AUTH_SECRET wins"
        );
        let neither = from(&[vars[0], vars[2]]).unwrap();
        assert!(neither.has_ephemeral_keys());
    }

    #[test]
    fn host_prefix_is_the_default_on_https_only_and_errors_say_why() {
        let https = || {
            HfAuthConfig::builder()
                .with_client_id("id")
                .with_public_url("https://app.example")
        };
        let http = || {
            HfAuthConfig::builder()
                .with_client_id("id")
                .with_public_url("http://127.0.0.1:1")
        };
        assert_eq!(https().build().unwrap().cookie_name, "__Host-hf_auth");
        let plain = https().insecure_without_host_prefix().build().unwrap();
        assert_eq!(plain.cookie_name, "hf_auth");
        assert_eq!(plain.pending_path, "/login");
        assert_eq!(http().build().unwrap().cookie_name, "hf_auth");
        let named = https().with_cookie_name("__Host-mine").build().unwrap();
        assert_eq!(named.cookie_name, "__Host-mine", "not prefixed twice");
        for (builder, needle) in [
            (http().with_cookie_name("__Host-mine"), "only over https"),
            (http().with_cookie_name("__Secure-mine"), "only over https"),
            (
                https().with_cookie_name("__Secure-mine"),
                "adds `__Host-` itself",
            ),
            (
                https()
                    .with_cookie_name("__Host-mine")
                    .insecure_without_host_prefix(),
                "contradicts",
            ),
        ] {
            let e = builder.build().unwrap_err();
            assert!(e.to_string().contains("with_cookie_name"), "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn a_wrong_provider_url_is_one_error_naming_the_variable() {
        let base = [
            ("OAUTH_CLIENT_ID", "id"),
            ("PUBLIC_URL", "http://127.0.0.1:1"),
        ];
        for bad in [
            "http://evil.example",
            "https://user:pw@huggingface.co",
            "https://huggingface.co/?x=1",
            "https://huggingface.co/#f",
            "ftp://huggingface.co",
            "not a url",
        ] {
            let e = from(&[base[0], base[1], ("OPENID_PROVIDER_URL", bad)]).unwrap_err();
            assert!(
                matches!(e, ConfigError::Invalid { setting, .. } if setting == PROVIDER_URL),
                "{bad}: {e:?}"
            );
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }

    #[test]
    fn clones_share_settings_and_debug_shows_no_secret() {
        let c = HfAuthConfig::builder()
            .with_client_id("id")
            .with_client_secret("client-secret-value")
            .with_public_url("https://app.example")
            .with_secret("cookie-secret-value-of-thirty-two-chars!")
            .build()
            .unwrap();
        let shown = format!("{c:?} {:?}", c.clone());
        assert!(!shown.contains("client-secret-value"), "{shown}");
        assert!(!shown.contains("cookie-secret-value"), "{shown}");
        assert_eq!(c.client_id(), "id");

        let random = HfAuthConfig::builder()
            .with_client_id("id")
            .with_public_url("https://app.example")
            .build()
            .unwrap();
        assert!(random.has_ephemeral_keys());
        assert_eq!(
            random.clone().secret.expose(),
            random.secret.expose(),
            "a clone seals and opens with the same random key"
        );
        assert!(!format!("{random:?}").contains(random.secret.expose()));
    }

    #[test]
    fn add_and_with_builders_agree() {
        let base = || {
            HfAuthConfig::builder()
                .with_client_id("id")
                .with_public_url("https://app.example")
        };
        let added = base()
            .add_scope("read-repos")
            .add_authorized_org("acme")
            .add_org_id("org1")
            .add_old_secret("an old secret of thirty-two characters!!")
            .build()
            .unwrap();
        let whole = base()
            .with_scopes(["openid", "profile", "read-repos"])
            .with_authorized_orgs(["acme"])
            .with_org_ids(["org1"])
            .with_old_secrets(["an old secret of thirty-two characters!!"])
            .build()
            .unwrap();
        assert_eq!(added.scopes.to_string(), "openid profile read-repos");
        assert_eq!(added.scopes, whole.scopes);
        assert_eq!(added.authorized_orgs, whole.authorized_orgs);
        assert_eq!(added.org_ids, whole.org_ids);
        assert_eq!(added.old_secrets.len(), whole.old_secrets.len());
        let short = base().with_old_secrets(["short"]).build().unwrap_err();
        assert!(short.to_string().contains("HF_AUTH_OLD_SECRETS"), "{short}");
    }

    #[test]
    fn a_public_client_needs_no_secret_but_basic_does() {
        let base = || {
            HfAuthConfig::builder()
                .with_client_id("id")
                .with_public_url("https://app.example")
        };
        assert_eq!(base().build().unwrap().openid.client_auth, ClientAuth::None);
        let e = base()
            .with_client_auth(ClientAuth::Basic)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("OAUTH_CLIENT_SECRET"), "{e}");
    }

    #[test]
    fn missing_client_id_on_a_space_says_what_to_do() {
        let e = from(&[("SPACE_ID", "a/b"), ("SPACE_HOST", "a-b.hf.space")]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("OAUTH_CLIENT_ID"), "{msg}");
        assert!(msg.contains("hf_oauth: true"), "{msg}");
    }

    #[test]
    fn http_provider_is_refused_unless_loopback() {
        let base = [
            ("OAUTH_CLIENT_ID", "id"),
            ("PUBLIC_URL", "http://127.0.0.1:1"),
        ];
        let e = from(&[
            base[0],
            base[1],
            ("OPENID_PROVIDER_URL", "http://evil.example"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("OPENID_PROVIDER_URL"), "{e}");
        assert!(
            from(&[
                base[0],
                base[1],
                ("OPENID_PROVIDER_URL", "http://127.0.0.1:9")
            ])
            .is_ok()
        );
    }

    #[test]
    fn short_secret_is_refused_and_not_echoed() {
        let e = from(&[
            ("OAUTH_CLIENT_ID", "id"),
            ("PUBLIC_URL", "http://127.0.0.1:1"),
            ("HF_AUTH_SECRET", "short-secret-value"),
        ])
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("HF_AUTH_SECRET"), "{msg}");
        assert!(!msg.contains("short-secret-value"), "{msg}");
        assert!(!format!("{e:?}").contains("short-secret-value"));
    }

    #[test]
    fn public_url_is_required_off_spaces() {
        let e = from(&[("OAUTH_CLIENT_ID", "id")]).unwrap_err();
        assert!(e.to_string().contains("PUBLIC_URL"), "{e}");
    }

    #[test]
    fn openid_is_always_asked_for() {
        let c = from(&[
            ("OAUTH_CLIENT_ID", "id"),
            ("PUBLIC_URL", "http://localhost:7860/"),
            ("OAUTH_SCOPES", "profile email"),
        ])
        .unwrap();
        assert_eq!(c.scopes.to_string(), "openid profile email");
        assert_eq!(c.redirect_uri(), "http://localhost:7860/login/callback");
        assert!(!c.cookie_attrs.secure);
    }

    #[test]
    fn pending_cookie_path_covers_login_and_callback() {
        assert_eq!(common_path("/login", "/login/callback"), "/login");
        assert_eq!(common_path("/auth/in", "/auth/cb"), "/auth");
        assert_eq!(common_path("/in", "/cb"), "/");
    }
}
