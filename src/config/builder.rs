//! [`HfAuthConfigBuilder`]: every setting, its default and where it comes from in the
//! environment. [`build`](HfAuthConfigBuilder::build) (in `check.rs`) checks them.

use std::sync::Arc;
use std::time::Duration;

use crate::Secret;
use crate::bearer::{BearerSettings, BearerValidation};
use crate::clock::Clock;
use crate::provider::ClientAuth;
use crate::session::store::SessionStore;

/// Builds an [`HfAuthConfig`](super::HfAuthConfig). Every setting has a secure default; see each method.
#[derive(Debug, Default)]
#[must_use]
pub struct HfAuthConfigBuilder {
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<Secret>,
    pub(super) client_auth: Option<ClientAuth>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) provider_url: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) iframe: Option<bool>,
    pub(super) on_space: bool,
    pub(super) secret: Option<Secret>,
    pub(super) old_secrets: Vec<Secret>,
    pub(super) login_path: Option<String>,
    pub(super) callback_path: Option<String>,
    pub(super) logout_path: Option<String>,
    pub(super) post_logout_redirect: Option<String>,
    pub(super) cookie_name: Option<String>,
    pub(super) host_prefix: Option<bool>,
    pub(super) trusted_origins: Vec<String>,
    pub(super) cross_origin_bypass: Vec<String>,
    pub(super) cross_origin_off: bool,
    pub(super) frame_ancestors: Vec<String>,
    pub(super) org_ids: Vec<String>,
    pub(super) authorized_orgs: Vec<String>,
    pub(super) bearer: BearerSettings,
    pub(super) bearer_enabled: bool,
    pub(super) leeway: Option<Duration>,
    pub(super) timeout: Option<Duration>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) max_response_bytes: Option<usize>,
    pub(super) jwks_min_refresh_interval: Option<Duration>,
    pub(super) max_pending_logins: Option<usize>,
    pub(super) refresh_before: Option<Duration>,
    pub(super) profile_max_age: Option<Duration>,
    pub(super) refresh_grace: Option<Duration>,
    pub(super) session_cache_bytes: Option<usize>,
    pub(super) session_store: Option<SessionStore>,
    pub(super) raw_user_ids: bool,
    pub(super) clock: Option<Arc<dyn Clock>>,
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
        /// Cookie key material, at least 32 characters. Default: derived from the
        /// client secret (`OAUTH_CLIENT_SECRET`, injected on a Space) with HKDF under a
        /// fixed, versioned label, so sessions survive a restart; only without a client
        /// secret either, a random key (sessions do not survive a restart; a warning is
        /// logged). Keys are bound to the client id and cookie name, so apps sharing a
        /// secret never open each other's cookies.
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
        /// `{name}_login_…`). Default `hf_auth`. On https the crate adds the `__Host-`
        /// prefix (see [`insecure_without_host_prefix`](Self::insecure_without_host_prefix)).
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_cookie_name("my_app_session");
        /// ```
        with_cookie_name, cookie_name, impl Into<String>
    );
    setter!(
        /// Cookies for an app shown in a cross-site iframe: `SameSite=None; Secure;
        /// Partitioned` (CHIPS: browsers that block third-party cookies keep them for
        /// this embedding site only), and sign-in pages that lead out of the frame when
        /// the browser drops them anyway. Needs an https public URL. Default: on when
        /// `SPACE_HOST` is set, off otherwise.
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
        /// How old a session's profile (name, organizations and roles) may get before it
        /// is read again from the provider's userinfo endpoint with the session's access
        /// token. Default 1 hour. A removal from an organization or a demotion takes
        /// effect within this time (and at every token refresh, which reads the profile
        /// too). Like a refresh, a request waits at most a second for it, and a provider
        /// that cannot answer never ends the session: the old profile is served and read
        /// again on a later request.
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_profile_max_age(Duration::from_secs(10 * 60));
        /// ```
        with_profile_max_age, profile_max_age, Duration
    );
    setter!(
        /// How long the browser keeps a session that holds a refresh token past its
        /// access token's expiry, so a user who comes back later is refreshed rather than
        /// signed out. Default 7 days. Hugging Face does not document how long its
        /// refresh tokens live; a refused refresh clears the cookie, so a longer grace
        /// costs nothing but a cookie that the next request drops. Sessions without a
        /// refresh token always end with their access token (8 hours on Hugging Face by
        /// default; a Space's `hf_oauth_expiration_minutes`).
        ///
        /// ```
        /// # use std::time::Duration;
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_refresh_grace(Duration::from_secs(30 * 24 * 60 * 60));
        /// ```
        with_refresh_grace, refresh_grace, Duration
    );
    setter!(
        /// How many bytes of memory the opened-session cache may hold. Default 16 MiB;
        /// 0 turns it off.
        ///
        /// The cache remembers the user of each session cookie the layer has opened,
        /// keyed by the cookie's exact bytes, so a signed-in request costs a hash lookup
        /// instead of a decryption and a parse. Expiry and refresh timing are still
        /// checked on every request; a cookie that does not open is never cached. 16 MiB
        /// held about 3,900 sessions when one in ten was a user in 41 organizations (see
        /// the [`session`](crate::session) module).
        ///
        /// ```
        /// let b = tower_hf_auth::HfAuthConfig::builder().with_session_cache_bytes(64 << 20);
        /// ```
        with_session_cache_bytes, session_cache_bytes, usize
    );
    setter!(
        /// Where sessions live: in the cookie (the default) or, with the `redis`
        /// feature, in Redis or Valkey (`HF_AUTH_REDIS_URL`), which adds revocation,
        /// sign-out everywhere and one refresh across replicas (see the
        /// [`store`](crate::session::store) module).
        ///
        /// ```
        /// # #[cfg(feature = "redis")] {
        /// use tower_hf_auth::SessionStore;
        /// let b = tower_hf_auth::HfAuthConfig::builder()
        ///     .with_session_store(SessionStore::redis("redis://127.0.0.1:6379"));
        /// # }
        /// ```
        with_session_store, session_store, SessionStore
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

    /// One more scope to ask for, after the ones set so far (by default `openid
    /// profile`).
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().add_scope("read-repos");
    /// ```
    pub fn add_scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes
            .get_or_insert_with(|| vec!["openid".into(), "profile".into()])
            .push(scope.into());
        self
    }

    /// The older secrets that still open cookies sealed before a key rotation,
    /// replacing any set before (`HF_AUTH_OLD_SECRETS`). Default: none.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder()
    ///     .with_old_secrets(["the old secret, thirty-two characters or more"]);
    /// ```
    pub fn with_old_secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Secret>,
    {
        self.old_secrets = secrets.into_iter().map(Into::into).collect();
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

    /// Names the crate's cookies without the `__Host-` prefix although the public URL
    /// is https. Default: with the prefix on https (`__Host-hf_auth`, and the pending
    /// sign-ins `__Host-hf_auth_login_…`), without it on http, where browsers refuse
    /// it.
    ///
    /// The prefix makes browsers accept the cookie only from this host, over https,
    /// for `Path=/` and without `Domain`: a sibling subdomain or a plain-http network
    /// attacker cannot plant a pending sign-in or a session (login CSRF). Opt out only
    /// when something else must read the cookie under its plain name.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().insecure_without_host_prefix();
    /// ```
    pub fn insecure_without_host_prefix(mut self) -> Self {
        self.host_prefix = Some(false);
        self
    }

    /// An origin (`scheme://host[:port]`) whose state-changing requests pass the
    /// [cross-origin protection](crate::cross_origin) although the browser marks them
    /// cross-site. Default: none.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().add_trusted_origin("https://admin.example");
    /// ```
    pub fn add_trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted_origins.push(origin.into());
        self
    }

    /// The trusted origins (see [`add_trusted_origin`](Self::add_trusted_origin)),
    /// replacing any set before. Default: none.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_trusted_origins(["https://a.example"]);
    /// ```
    pub fn with_trusted_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// A path the [cross-origin protection](crate::cross_origin) leaves alone: exactly
    /// `/path`, or everything under `/path/` with `/path/*` (for example webhooks that
    /// other sites post to). Default: none.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().add_cross_origin_bypass("/webhooks/*");
    /// ```
    pub fn add_cross_origin_bypass(mut self, pattern: impl Into<String>) -> Self {
        self.cross_origin_bypass.push(pattern.into());
        self
    }

    /// Turns the [cross-origin protection](crate::cross_origin) off: any site can then
    /// make a signed-in browser post to the app. Default: on.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().insecure_without_cross_origin_protection();
    /// ```
    pub fn insecure_without_cross_origin_protection(mut self) -> Self {
        self.cross_origin_off = true;
        self
    }

    /// An origin allowed to frame the crate's own pages (`Content-Security-Policy:
    /// frame-ancestors`), besides `'self'` and, with iframe cookies,
    /// `https://huggingface.co`. Default: none.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().add_frame_ancestor("https://portal.example");
    /// ```
    pub fn add_frame_ancestor(mut self, origin: impl Into<String>) -> Self {
        self.frame_ancestors.push(origin.into());
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

    /// The organizations (by id) the consent screen asks access to, replacing any set
    /// before. Default: none.
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_org_ids(["5e67bd5b1009063689407478"]);
    /// ```
    pub fn with_org_ids<I, S>(mut self, org_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.org_ids = org_ids.into_iter().map(Into::into).collect();
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

    /// Puts users' Hugging Face ids (their `sub`) into the `user.id` field of the
    /// crate's `tracing` spans. Default: off, spans show a pseudonym, a keyed hash of
    /// the id (see [`observe`](crate::observe)).
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().with_raw_user_ids(true);
    /// ```
    pub fn with_raw_user_ids(mut self, raw: bool) -> Self {
        self.raw_user_ids = raw;
        self
    }

    /// One more organization (by handle) whose members may use the app (see
    /// [`with_authorized_orgs`](Self::with_authorized_orgs)).
    ///
    /// ```
    /// let b = tower_hf_auth::HfAuthConfig::builder().add_authorized_org("acme");
    /// ```
    pub fn add_authorized_org(mut self, org: impl Into<String>) -> Self {
        self.authorized_orgs.push(org.into());
        self
    }
}
