//! Checking the settings: each check runs once, here, with one error naming the
//! setting and what to do.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::{ConfigError, HfAuthConfig, HfAuthConfigBuilder};
use crate::Secret;
use crate::clock::SystemClock;
use crate::cross_origin::{Bypass, CrossOriginSettings, origin_of};
use crate::provider::{ClientAuth, ProviderSettings};
use crate::session::cache::DEFAULT_SESSION_CACHE_BYTES;
use crate::session::codec::secret_from_client_secret;
use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::refresh::DEFAULT_REFRESH_BEFORE;
use crate::session::store::SessionStore;
use crate::session::{DEFAULT_PROFILE_MAX_AGE, REFRESH_GRACE, SessionTiming};
use crate::user::Scopes;

use super::DEFAULT_PROVIDER_URL;
const MIN_SECRET_LEN: usize = 32;

const CLIENT_ID: &str = "OAUTH_CLIENT_ID (with_client_id)";
const PUBLIC_URL: &str = "PUBLIC_URL or SPACE_HOST (with_public_url)";
pub(super) const PROVIDER_URL: &str = "OPENID_PROVIDER_URL (with_provider_url)";
const SECRET: &str = "HF_AUTH_SECRET (with_secret)";
const OLD_SECRETS: &str = "HF_AUTH_OLD_SECRETS (add_old_secret)";
const PATHS: &str = "with_login_path / with_callback_path / with_logout_path";
const COOKIE_NAME: &str = "with_cookie_name";
const HOST_PREFIX: &str = "insecure_without_host_prefix";
const TRUSTED_ORIGINS: &str = "add_trusted_origin";
const FRAME_ANCESTORS: &str = "add_frame_ancestor";
const BYPASS: &str = "add_cross_origin_bypass";
const REDIS_URL: &str = "HF_AUTH_REDIS_URL (with_session_store)";

/// Each origin checked: `scheme://host[:port]`, nothing more.
fn origins(setting: &'static str, given: &[String]) -> Result<Vec<String>, ConfigError> {
    given
        .iter()
        .map(|o| match origin_of(o) {
            Some(origin) if origin == o.trim_end_matches('/') => Ok(origin),
            _ => Err(invalid(
                setting,
                format!("`{o}` must be an origin such as `https://app.example`, without a path"),
            )),
        })
        .collect()
}

/// `frame-ancestors 'self'`, with `https://huggingface.co` in iframe mode and the
/// configured origins.
fn frame_policy(extra: &[String], iframe: bool) -> Result<String, ConfigError> {
    let mut policy = "frame-ancestors 'self'".to_owned();
    if iframe {
        policy.push_str(" https://huggingface.co");
    }
    for origin in origins(FRAME_ANCESTORS, extra)? {
        policy.push(' ');
        policy.push_str(&origin);
    }
    Ok(policy)
}

impl HfAuthConfigBuilder {
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
        let client_id = self
            .client_id
            .clone()
            .ok_or_else(|| missing_client_id(self.on_space))?;
        let openid = self.openid_settings(client_id)?;
        let (public_url, https) = public_base(self.public_url.as_deref())?;
        let iframe = self.iframe.unwrap_or(false);
        if iframe && !https {
            return Err(invalid(
                "with_iframe_cookies",
                "iframe cookies need `SameSite=None; Secure`, so the public URL must be https",
            ));
        }
        let cross_origin = self.cross_origin_settings(&public_url)?;
        let paths = Paths::check(
            self.login_path,
            self.callback_path,
            self.logout_path,
            self.post_logout_redirect,
        )?;
        let host_prefix = self.host_prefix.unwrap_or(https);
        let cookie_name = cookie_name(self.cookie_name, host_prefix, https)?;
        let (secret, ephemeral_keys) =
            cookie_secret(self.secret, self.client_secret.as_ref(), &self.old_secrets)?;
        let cookie_attrs = CookieAttrs {
            secure: https,
            same_site: if iframe {
                SameSite::None
            } else {
                SameSite::Lax
            },
        };
        let session_store = session_store(self.session_store.unwrap_or_default(), ephemeral_keys)?;
        Ok(HfAuthConfig {
            session_store,
            redirect_uri: format!("{public_url}{}", paths.callback),
            scopes: with_openid(self.scopes),
            pending_prefix: format!("{cookie_name}_login_"),
            // `__Host-` cookies must have `Path=/`; one cookie per tab all the same.
            pending_path: if host_prefix {
                "/".to_owned()
            } else {
                common_path(&paths.login, &paths.callback)
            },
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
            session_timing: SessionTiming {
                profile_max_age: self
                    .profile_max_age
                    .map_or(DEFAULT_PROFILE_MAX_AGE, |d| d.as_secs()),
                refresh_grace: self.refresh_grace.map_or(REFRESH_GRACE, |d| d.as_secs()),
            },
            session_cache_bytes: self
                .session_cache_bytes
                .unwrap_or(DEFAULT_SESSION_CACHE_BYTES),
            token_auth: self.bearer_enabled.then_some(self.bearer),
            openid,
            iframe,
            frame_policy: frame_policy(&self.frame_ancestors, iframe)?,
            cross_origin,
            public_url,
            raw_user_ids: self.raw_user_ids,
        })
    }

    /// Cross-origin protection: trusted origins and bypass patterns checked.
    fn cross_origin_settings(&self, public_url: &str) -> Result<CrossOriginSettings, ConfigError> {
        let bypass = self
            .cross_origin_bypass
            .iter()
            .map(|p| {
                Bypass::parse(p).ok_or_else(|| {
                    invalid(
                        BYPASS,
                        format!("`{p}` must be a path such as `/hook` or `/hooks/*`"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CrossOriginSettings {
            enabled: !self.cross_origin_off,
            public_origin: origin_of(public_url).unwrap_or_default(),
            trusted: origins(TRUSTED_ORIGINS, &self.trusted_origins)?,
            bypass,
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

/// The session cookie's name: checked, and with the `__Host-` prefix when it is on.
fn cookie_name(
    name: Option<String>,
    host_prefix: bool,
    https: bool,
) -> Result<String, ConfigError> {
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
    let prefixed = ["__Host-", "__Secure-"]
        .into_iter()
        .find(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p));
    match prefixed {
        Some(prefix) if !https => Err(invalid(
            COOKIE_NAME,
            format!(
                "browsers accept a `{prefix}` cookie only over https, and the public URL is                  http: use a name without the prefix"
            ),
        )),
        Some(_) if host_prefix && !name.starts_with("__Host-") => Err(invalid(
            COOKIE_NAME,
            "give the name without a prefix: on https the crate adds `__Host-` itself (or \
             call insecure_without_host_prefix)",
        )),
        Some("__Host-") if !host_prefix => Err(invalid(
            COOKIE_NAME,
            "a `__Host-` name contradicts insecure_without_host_prefix",
        )),
        Some(_) => Ok(name),
        None if host_prefix && !https => Err(invalid(
            HOST_PREFIX,
            "the `__Host-` prefix needs an https public URL",
        )),
        None if host_prefix => Ok(format!("__Host-{name}")),
        None => Ok(name),
    }
}

/// The cookie key material: the configured secret (each secret checked for length),
/// else derived from the client secret (so a Space keeps its sessions across restarts),
/// else a random one made now, so every layer built from this configuration shares it.
/// `true` when it is random.
fn cookie_secret(
    secret: Option<Secret>,
    client_secret: Option<&Secret>,
    old: &[Secret],
) -> Result<(Secret, bool), ConfigError> {
    let configured = secret.iter().map(|s| (SECRET, s));
    for (setting, s) in configured.chain(old.iter().map(|s| (OLD_SECRETS, s))) {
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
    if let Some(secret) = secret {
        return Ok((secret, false));
    }
    if let Some(client_secret) = client_secret {
        return Ok((secret_from_client_secret(client_secret), false));
    }
    tracing::warn!(
        "neither HF_AUTH_SECRET nor OAUTH_CLIENT_SECRET is set: using a random cookie key, \
         so sessions will not survive a restart"
    );
    let mut bytes = [0u8; 48];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    Ok((Secret::new(URL_SAFE_NO_PAD.encode(bytes)), true))
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
pub(super) fn common_path(a: &str, b: &str) -> String {
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

/// The session store, checked; a server-side one needs key material every replica
/// shares (not a random per-process key).
fn session_store(store: SessionStore, ephemeral_keys: bool) -> Result<SessionStore, ConfigError> {
    if let Some(reason) = store.problem() {
        return Err(invalid(REDIS_URL, reason));
    }
    if store.is_server_side() && ephemeral_keys {
        return Err(ConfigError::Missing {
            setting: SECRET,
            hint: "a server-side session store needs key material every replica shares: \
                   set HF_AUTH_SECRET (or OAUTH_CLIENT_SECRET)"
                .into(),
        });
    }
    Ok(store)
}
