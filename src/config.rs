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
//! | `HF_AUTH_SECRET` | key material for the session cookies, at least 32 characters | a random key (sessions end at restart) |
//! | `HF_AUTH_OLD_SECRETS` | comma-separated older secrets that still open cookies | unset |
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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Secret;
use crate::bearer::{BearerSettings, BearerValidation};
use crate::clock::{Clock, SystemClock};
use crate::provider::{ClientAuth, ProviderSettings};
use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::refresh::DEFAULT_REFRESH_BEFORE;
use crate::user::{HfUser, Scopes};

/// The issuer used when `OPENID_PROVIDER_URL` is not set.
pub const DEFAULT_PROVIDER_URL: &str = "https://huggingface.co";
const MIN_SECRET_LEN: usize = 32;

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

const CLIENT_ID: &str = "OAUTH_CLIENT_ID (with_client_id)";
const PUBLIC_URL: &str = "PUBLIC_URL or SPACE_HOST (with_public_url)";
const PROVIDER_URL: &str = "OPENID_PROVIDER_URL (with_provider_url)";
const SECRET: &str = "HF_AUTH_SECRET (with_secret)";
const OLD_SECRETS: &str = "HF_AUTH_OLD_SECRETS (add_old_secret)";
const PATHS: &str = "with_login_path / with_callback_path / with_logout_path";
const COOKIE_NAME: &str = "with_cookie_name";

/// Builds an [`HfAuthConfig`]. Every setting has a secure default; see each method.
#[derive(Debug, Default)]
#[must_use]
pub struct HfAuthConfigBuilder {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_auth: Option<ClientAuth>,
    scopes: Option<Vec<String>>,
    provider_url: Option<String>,
    public_url: Option<String>,
    iframe: Option<bool>,
    on_space: bool,
    secret: Option<Secret>,
    old_secrets: Vec<Secret>,
    login_path: Option<String>,
    callback_path: Option<String>,
    logout_path: Option<String>,
    post_logout_redirect: Option<String>,
    cookie_name: Option<String>,
    org_ids: Vec<String>,
    authorized_orgs: Vec<String>,
    bearer: BearerSettings,
    bearer_enabled: bool,
    leeway: Option<Duration>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    max_response_bytes: Option<usize>,
    jwks_min_refresh_interval: Option<Duration>,
    max_pending_logins: Option<usize>,
    refresh_before: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$field = Some(value.into());
            self
        }
    };
}

impl HfAuthConfigBuilder {
    /// Reads the Spaces variables and the crate's own (see the [module docs](self)).
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
        Ok(b)
    }

    setter!(
        /// The OAuth client id. Required; from `OAUTH_CLIENT_ID` on a Space.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_client_id("abc");
        /// ```
        with_client_id, client_id, impl Into<String>
    );
    setter!(
        /// The OAuth client secret. Default: none, a public client that relies on PKCE.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_client_secret("s3cret");
        /// ```
        with_client_secret, client_secret, impl Into<Secret>
    );
    setter!(
        /// How the client authenticates at the token endpoint. Default:
        /// [`ClientAuth::Basic`] with a secret, [`ClientAuth::None`] without.
        ///
        /// ```
        /// use tower_hf_auth::{ClientAuth, HfAuthConfig};
        /// let b = HfAuthConfig::builder().with_client_auth(ClientAuth::Post);
        /// ```
        with_client_auth, client_auth, ClientAuth
    );
    setter!(
        /// The provider's issuer URL. Default `https://huggingface.co`. Must be `https`,
        /// except for loopback hosts (local providers such as the mock).
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_provider_url("https://huggingface.co");
        /// ```
        with_provider_url, provider_url, impl Into<String>
    );
    setter!(
        /// The URL people open the app at; the redirect URI is
        /// `{public URL}{callback path}`. Required off Spaces. It never comes from the
        /// request: behind a TLS proxy the app sees `http`.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_public_url("http://127.0.0.1:7860");
        /// ```
        with_public_url, public_url, impl Into<String>
    );
    setter!(
        /// Cookie key material, at least 32 characters. Default: a random key, so
        /// sessions do not survive a restart (a warning is logged).
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_secret("at least thirty-two characters of secret");
        /// ```
        with_secret, secret, impl Into<Secret>
    );
    setter!(
        /// Path of the route that starts sign-in. Default `/login`.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_login_path("/auth/login");
        /// ```
        with_login_path, login_path, impl Into<String>
    );
    setter!(
        /// Path of the OAuth callback. Default `/login/callback` (what Spaces register).
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_callback_path("/auth/callback");
        /// ```
        with_callback_path, callback_path, impl Into<String>
    );
    setter!(
        /// Path of the sign-out route (`GET` and `POST`). Default `/logout`.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_logout_path("/auth/logout");
        /// ```
        with_logout_path, logout_path, impl Into<String>
    );
    setter!(
        /// Where sign-out sends the browser. Default `/`.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_post_logout_redirect("/bye");
        /// ```
        with_post_logout_redirect, post_logout_redirect, impl Into<String>
    );
    setter!(
        /// Name of the session cookie (chunks add `.1`, `.2`, …; pending sign-ins use
        /// `{name}_login_…`). Default `hf_auth`.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_cookie_name("my_app_session");
        /// ```
        with_cookie_name, cookie_name, impl Into<String>
    );
    setter!(
        /// Cookies for an app shown in a cross-site iframe: `SameSite=None; Secure`.
        /// Default: on when `SPACE_HOST` is set, off otherwise.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_iframe_cookies(true);
        /// ```
        with_iframe_cookies, iframe, bool
    );
    setter!(
        /// Clock skew tolerated on ID token `exp` and `iat`. Default 60 s.
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_leeway(Duration::from_secs(30));
        /// ```
        with_leeway, leeway, Duration
    );
    setter!(
        /// Total time allowed for one call to the provider. Default 10 s.
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_timeout(Duration::from_secs(5));
        /// ```
        with_timeout, timeout, Duration
    );
    setter!(
        /// Time allowed to connect to the provider. Default 10 s.
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_connect_timeout(Duration::from_secs(3));
        /// ```
        with_connect_timeout, connect_timeout, Duration
    );
    setter!(
        /// Largest provider response read, in bytes. Default 1 MiB.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_max_response_bytes(64 * 1024);
        /// ```
        with_max_response_bytes, max_response_bytes, usize
    );
    setter!(
        /// Least time between two JWKS fetches caused by an unknown `kid`. Default 10 s.
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_jwks_min_refresh_interval(Duration::from_secs(60));
        /// ```
        with_jwks_min_refresh_interval, jwks_min_refresh_interval, Duration
    );
    setter!(
        /// How many sign-ins one browser may have pending at once (one per tab); the
        /// oldest is dropped past it. Default 5.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_max_pending_logins(3);
        /// ```
        with_max_pending_logins, max_pending_logins, usize
    );
    setter!(
        /// How long before a session's access token expires it is refreshed with the
        /// session's refresh token (when the provider issued one). Default 5 minutes.
        ///
        /// The first request in that window (or after the expiry) refreshes the session
        /// and gets the new session cookie; if the provider cannot answer, the session
        /// is served unchanged while its access token is valid and the next request
        /// tries again (see the [`session`](crate::session) module).
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_refresh_before(Duration::from_secs(10 * 60));
        /// ```
        with_refresh_before, refresh_before, Duration
    );
    setter!(
        /// The clock used for every expiry decision. Default: the system clock.
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_clock(std::sync::Arc::new(tower_hf_auth::SystemClock));
        /// ```
        with_clock, clock, Arc<dyn Clock>
    );

    /// The scopes to ask for. Default `openid profile`; `openid` is always added.
    /// Unknown scope strings are passed on: Hugging Face adds scopes over time.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_scopes(["openid", "profile", "email"]);
    /// ```
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// An older secret that still opens cookies sealed before a key rotation.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder()
    ///     .with_secret("the new secret, thirty-two characters or more")
    ///     .add_old_secret("the old secret, thirty-two characters or more");
    /// ```
    pub fn add_old_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.old_secrets.push(secret.into());
        self
    }

    /// An organization (by its id, the org's `sub`) the consent screen asks the user
    /// to grant access to (`orgIds` on the authorize URL).
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().add_org_id("5e67bd5b1009063689407478");
    /// ```
    pub fn add_org_id(mut self, org_id: impl Into<String>) -> Self {
        self.org_ids.push(org_id.into());
        self
    }

    /// Accepts `Authorization: Bearer <token>` instead of a session, for API and gRPC
    /// clients: `hf_oauth_…` tokens are checked at the provider's userinfo endpoint,
    /// other `hf_…` tokens at `/api/whoami-v2` (see [`with_bearer_validation`]), and the
    /// answers are cached (see the [`bearer`](crate::bearer) module for how a token's
    /// scopes are known). Default: off.
    ///
    /// [`with_bearer_validation`]: Self::with_bearer_validation
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_bearer_tokens(true);
    /// ```
    pub fn with_bearer_tokens(mut self, enabled: bool) -> Self {
        self.bearer_enabled = enabled;
        self
    }

    /// Which endpoint validates bearer tokens. Default [`BearerValidation::Auto`].
    ///
    /// ```
    /// use tower_hf_auth::{BearerValidation, HfAuthConfig};
    /// let b = HfAuthConfig::builder().with_bearer_validation(BearerValidation::WhoAmI);
    /// ```
    pub fn with_bearer_validation(mut self, validation: BearerValidation) -> Self {
        self.bearer.validation = validation;
        self
    }

    /// How long a validated bearer token is trusted without asking the provider again
    /// (never past the token's own expiry). A revoked token is still accepted for at
    /// most this long. Default 5 minutes.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_bearer_cache_ttl(Duration::from_secs(60));
    /// ```
    pub fn with_bearer_cache_ttl(mut self, ttl: Duration) -> Self {
        self.bearer.ttl = ttl;
        self
    }

    /// How long a rejected bearer token is remembered as rejected. Default 30 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_bearer_negative_ttl(Duration::from_secs(5));
    /// ```
    pub fn with_bearer_negative_ttl(mut self, ttl: Duration) -> Self {
        self.bearer.negative_ttl = ttl;
        self
    }

    /// How many bearer tokens the cache holds. Default 10,000.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_bearer_cache_capacity(1_000);
    /// ```
    pub fn with_bearer_cache_capacity(mut self, capacity: usize) -> Self {
        self.bearer.capacity = capacity.max(1);
        self
    }

    /// Restricts the whole app to members of these organizations (by handle), like a
    /// Space's `hf_oauth_authorized_org`: anyone else is refused at sign-in with a page
    /// saying why, and existing sessions of non-members yield no user. Default: anyone
    /// with a Hugging Face account.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_authorized_orgs(["acme", "acme-labs"]);
    /// ```
    pub fn with_authorized_orgs<I, S>(mut self, orgs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorized_orgs = orgs.into_iter().map(Into::into).collect();
        self
    }

    /// Checks every setting and builds the configuration: plain data, cheap to clone.
    /// Nothing is started and no connection is opened; [`HfAuthLayer::new`] builds the
    /// running parts from it.
    ///
    /// [`HfAuthLayer::new`]: crate::HfAuthLayer::new
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting and what to do, when a required one is
    /// missing or a value cannot work.
    pub fn build(self) -> Result<HfAuthConfig, ConfigError> {
        let client_id = self.client_id.clone().ok_or_else(|| missing_client_id(self.on_space))?;
        let openid = self.openid_settings(client_id)?;
        let (public_url, https) = public_base(self.public_url.as_deref())?;
        let iframe = self.iframe.unwrap_or(false);
        if iframe && !https {
            return Err(invalid(
                "with_iframe_cookies",
                "iframe cookies need `SameSite=None; Secure`, so the public URL must be https",
            ));
        }
        let paths = Paths::check(
            self.login_path,
            self.callback_path,
            self.logout_path,
            self.post_logout_redirect,
        )?;
        let cookie_name = cookie_name(self.cookie_name)?;
        let (secret, ephemeral_keys) = cookie_secret(self.secret, &self.old_secrets)?;
        let cookie_attrs = CookieAttrs {
            secure: https,
            same_site: if iframe {
                SameSite::None
            } else {
                SameSite::Lax
            },
        };
        Ok(HfAuthConfig {
            redirect_uri: format!("{public_url}{}", paths.callback),
            public_url,
            scopes: with_openid(self.scopes),
            pending_prefix: format!("{cookie_name}_login_"),
            pending_path: common_path(&paths.login, &paths.callback),
            login_path: paths.login,
            callback_path: paths.callback,
            logout_path: paths.logout,
            post_logout_redirect: paths.post_logout,
            org_ids: self.org_ids,
            authorized_orgs: self.authorized_orgs,
            max_pending_logins: self.max_pending_logins.unwrap_or(5).max(1),
            cookie_name,
            cookie_attrs,
            secret,
            old_secrets: self.old_secrets,
            ephemeral_keys,
            refresh_before: self
                .refresh_before
                .unwrap_or(DEFAULT_REFRESH_BEFORE)
                .as_secs(),
            token_auth: self.bearer_enabled.then_some(self.bearer),
            openid,
        })
    }

    /// The provider client's settings: the issuer checked (once, here), the client
    /// authentication consistent with the secret, timeouts, leeway and clock.
    fn openid_settings(&self, client_id: String) -> Result<ProviderSettings, ConfigError> {
        let issuer = self.provider_url.as_deref().unwrap_or(DEFAULT_PROVIDER_URL);
        let mut settings =
            ProviderSettings::new(issuer, client_id).map_err(|e| invalid(PROVIDER_URL, e))?;
        let client_auth = self.client_auth.unwrap_or(if self.client_secret.is_some() {
            ClientAuth::Basic
        } else {
            ClientAuth::None
        });
        if client_auth != ClientAuth::None && self.client_secret.is_none() {
            return Err(ConfigError::Missing {
                setting: "OAUTH_CLIENT_SECRET (with_client_secret)",
                hint: "a client secret is needed for client_secret_basic or client_secret_post; \
                       use ClientAuth::None for a public client"
                    .into(),
            });
        }
        settings.client_secret = self.client_secret.clone();
        settings.client_auth = client_auth;
        settings.clock = self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        let durations = [
            (self.leeway, &mut settings.leeway),
            (self.timeout, &mut settings.timeout),
            (self.connect_timeout, &mut settings.connect_timeout),
            (
                self.jwks_min_refresh_interval,
                &mut settings.jwks_min_refresh_interval,
            ),
        ];
        for (value, slot) in durations {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(v) = self.max_response_bytes {
            settings.max_response_bytes = v;
        }
        Ok(settings)
    }
}

fn missing_client_id(on_space: bool) -> ConfigError {
    ConfigError::Missing {
        setting: CLIENT_ID,
        hint: if on_space {
            "set `hf_oauth: true` in the Space's README metadata and restart the Space".into()
        } else {
            "create an OAuth app at https://huggingface.co/settings/applications and set \
             OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET, or on a Space set `hf_oauth: true` \
             in its README"
                .into()
        },
    }
}

/// The public URL without a trailing slash, and whether it is https.
fn public_base(public: Option<&str>) -> Result<(String, bool), ConfigError> {
    let public = public.ok_or_else(|| ConfigError::Missing {
        setting: PUBLIC_URL,
        hint: "set PUBLIC_URL to the URL people open the app at, e.g. http://127.0.0.1:7860 \
               (on a Space, SPACE_HOST is set for you)"
            .into(),
    })?;
    let url = Url::parse(public).map_err(|e| invalid(PUBLIC_URL, e))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            PUBLIC_URL,
            format!("`{public}` must be an http(s) URL without query or fragment"),
        ));
    }
    let https = url.scheme() == "https";
    Ok((url.as_str().trim_end_matches('/').to_owned(), https))
}

/// The crate's own routes and where sign-out leads.
struct Paths {
    login: String,
    callback: String,
    logout: String,
    post_logout: String,
}

impl Paths {
    fn check(
        login: Option<String>,
        callback: Option<String>,
        logout: Option<String>,
        post_logout: Option<String>,
    ) -> Result<Self, ConfigError> {
        let paths = Self {
            login: path_setting(login, "/login")?,
            callback: path_setting(callback, "/login/callback")?,
            logout: path_setting(logout, "/logout")?,
            post_logout: path_setting(post_logout, "/")?,
        };
        if paths.login == paths.callback
            || paths.login == paths.logout
            || paths.callback == paths.logout
        {
            return Err(invalid(PATHS, "the three paths must differ"));
        }
        Ok(paths)
    }
}

fn cookie_name(name: Option<String>) -> Result<String, ConfigError> {
    let name = name.unwrap_or_else(|| "hf_auth".to_owned());
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            COOKIE_NAME,
            "use letters, digits, `_` and `-` only",
        ));
    }
    Ok(name)
}

/// The cookie key material: the configured secret (each secret checked for length), or
/// a random one made now, so every layer built from this configuration shares it.
/// `true` when it is random.
fn cookie_secret(secret: Option<Secret>, old: &[Secret]) -> Result<(Secret, bool), ConfigError> {
    let Some(secret) = secret else {
        tracing::warn!(
            "HF_AUTH_SECRET is not set: using a random cookie key, so sessions will not \
             survive a restart"
        );
        let mut bytes = [0u8; 48];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
        return Ok((Secret::new(URL_SAFE_NO_PAD.encode(bytes)), true));
    };
    for (setting, s) in std::iter::once((SECRET, &secret)).chain(old.iter().map(|s| (OLD_SECRETS, s)))
    {
        if s.expose().chars().count() < MIN_SECRET_LEN {
            return Err(invalid(
                setting,
                format!(
                    "each secret must be at least {MIN_SECRET_LEN} characters; generate one \
                     with `openssl rand -base64 48`"
                ),
            ));
        }
    }
    Ok((secret, false))
}

/// The scopes asked for, `openid` first when it was not listed.
fn with_openid(scopes: Option<Vec<String>>) -> Scopes {
    let mut scopes = scopes.unwrap_or_else(|| vec!["openid".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    scopes.into_iter().collect()
}

fn invalid(setting: &'static str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.to_string(),
    }
}

fn path_setting(value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let path = value.unwrap_or_else(|| default.to_owned());
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'\\' | b';' | b','));
    if ok {
        Ok(path)
    } else {
        Err(invalid(
            PATHS,
            format!("`{path}` must be a plain absolute path such as `/login`"),
        ))
    }
}

/// The longest path that is a segment-wise prefix of both, for the pending-login
/// cookie's `Path`, so it is sent to the login and callback routes only.
fn common_path(a: &str, b: &str) -> String {
    let mut common = String::new();
    for (x, y) in a.split('/').skip(1).zip(b.split('/').skip(1)) {
        if x != y {
            break;
        }
        common.push('/');
        common.push_str(x);
    }
    if common.is_empty() {
        "/".to_owned()
    } else {
        common
    }
}

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
    /// Bearer-token settings, when bearer tokens are accepted.
    pub(crate) token_auth: Option<BearerSettings>,
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
    /// [`with_authorized_orgs`](HfAuthConfigBuilder::with_authorized_orgs)).
    #[must_use]
    pub fn is_authorized(&self, user: &HfUser) -> bool {
        self.authorized_orgs.is_empty()
            || self
                .authorized_orgs
                .iter()
                .any(|org| user.org(org).is_some())
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
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(c.has_ephemeral_keys());
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
