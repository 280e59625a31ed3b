//! Where sessions live: in the cookie (the default) or, with the `redis` feature, in
//! Redis or Valkey.
//!
//! | | cookie sessions (default) | Redis sessions |
//! |---|---|---|
//! | runs | nothing | a Redis or Valkey server |
//! | the cookie holds | the sealed session (~1–3 KB) | a sealed ticket (~120 bytes) |
//! | `/logout` | deletes the cookie in this browser | also deletes the session: a copied cookie dies with it |
//! | sign out everywhere | refused (`400`) | `POST /logout` with `everywhere=1`, [`HfAuthLayer::revoke_user`](crate::HfAuthLayer::revoke_user) |
//! | refresh of a rotating token | once per process | once for every replica (a lease in Redis) |
//! | used sign-in states, bearer answers | per process | shared by every replica |
//! | a signed-in request | a hash lookup (cached) | a hash lookup (cached, invalidated by pub/sub), else one round trip |
//! | the store is down | — | `503` + `Retry-After` on guarded routes; nobody is signed out |
//!
//! # Redis sessions
//! ```
//! # #[cfg(feature = "redis")] {
//! use std::time::Duration;
//! use tower_hf_auth::{HfAuthConfig, SessionStore};
//!
//! let store = SessionStore::redis("redis://127.0.0.1:6379/0")
//!     .with_key_prefix("my-app:")
//!     .with_timeout(Duration::from_millis(100));
//! let builder = HfAuthConfig::builder().with_session_store(store);
//! # let _ = builder;
//! # }
//! ```
//! or set `HF_AUTH_REDIS_URL` (and optionally `HF_AUTH_REDIS_PREFIX`).
//!
//! - **A Redis dump is worthless.** The cookie carries a ticket (sealed like a cookie
//!   session): a 128-bit session id, a 256-bit per-session secret and a tag of the
//!   user. Redis holds the session under an HMAC of the id (keyed from the app secret),
//!   sealed with AES-256-GCM under a key derived from the per-session secret, with the
//!   Redis key and the record's version as associated data. Neither a dump nor a
//!   cookie alone opens a session; no key or value holds a token, a profile field or
//!   the cookie's id.
//! - **Keys of one user share a hash tag** (`{u:…}`, a keyed hash of the user id): the
//!   session records, the user's index (a sorted set, at most
//!   [`with_max_sessions_per_user`](SessionStore::with_max_sessions_per_user) sessions,
//!   oldest dropped first) and refresh leases, so the scripts touch one slot.
//! - **Revocation.** `/logout` deletes the record; `everywhere=1` and
//!   [`revoke_user`](crate::HfAuthLayer::revoke_user) delete every record of the user;
//!   every replica's cache hears of it on the `{prefix}revoked` channel. While that
//!   subscription is down, the cache is not used (every request reads Redis).
//! - **Refresh.** One replica refreshes a session at a time (a lease, `SET NX PX`,
//!   longer than two provider calls), and writes the new session back only if nobody
//!   else did first (compare-and-set on the record's version in a script), so a stale
//!   lease holder never overwrites a newer session. The others wait for the new
//!   session and use it.
//! - **Outages.** Every call has a timeout (default 100 ms). When Redis does not
//!   answer, a request with a session cookie gets no user, guarded routes answer
//!   `503` with `Retry-After` (page, JSON or gRPC `UNAVAILABLE`), the cookie is kept,
//!   and public routes keep serving. The connection comes back by itself.

#[cfg(feature = "redis")]
mod listen;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::fmt;
use std::time::Duration;

/// Default time a store call may take before the request is answered without it.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// Default prefix of every key.
pub(crate) const DEFAULT_PREFIX: &str = "hf-auth:";
/// Default bound of one user's sessions.
pub(crate) const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;

/// Where sessions live (see the [module docs](self)). Default: in the cookie.
#[derive(Clone)]
pub struct SessionStore {
    pub(crate) kind: StoreKind,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) max_per_user: usize,
    /// How long a refresh lease lasts; `None`: twice the provider timeout plus 2 s.
    pub(crate) lease: Option<Duration>,
}

#[derive(Clone, Default)]
pub(crate) enum StoreKind {
    #[default]
    Cookie,
    /// The server's URL (it may hold a password: never shown).
    #[cfg(feature = "redis")]
    Redis(crate::Secret),
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StoreKind::Cookie => f.write_str("SessionStore::Cookie"),
            #[cfg(feature = "redis")]
            StoreKind::Redis(_) => f
                .debug_struct("SessionStore::Redis")
                .field("prefix", &self.prefix)
                .field("timeout", &self.timeout)
                .field("max_per_user", &self.max_per_user)
                .finish_non_exhaustive(),
        }
    }
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::cookie()
    }
}

impl SessionStore {
    /// Sessions sealed in the cookie: nothing to run, nothing to revoke.
    ///
    /// ```
    /// let store = tower_hf_auth::SessionStore::cookie();
    /// assert!(!store.is_server_side());
    /// ```
    #[must_use]
    pub fn cookie() -> Self {
        Self {
            kind: StoreKind::Cookie,
            ..Self::with_defaults()
        }
    }

    /// Sessions in the Redis or Valkey server at `url` (`redis://[:password@]host:port/db`
    /// or `redis+unix:///path`). Nothing connects until the first request needs it.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// let store = tower_hf_auth::SessionStore::redis("redis://127.0.0.1:6379/0");
    /// assert!(store.is_server_side());
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            kind: StoreKind::Redis(crate::Secret::new(url.into())),
            ..Self::with_defaults()
        }
    }

    fn with_defaults() -> Self {
        Self {
            kind: StoreKind::default(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            lease: None,
        }
    }

    /// The prefix of every key and channel (`HF_AUTH_REDIS_PREFIX`), so apps can share
    /// a server. Default `hf-auth:`. Letters, digits and `-_:.` only.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// let store = tower_hf_auth::SessionStore::redis("redis://127.0.0.1:6379").with_key_prefix("my-app:");
    /// # }
    /// ```
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one store call may take before the request goes on without it
    /// (`503` on guarded routes). Default 100 ms.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// use std::time::Duration;
    /// let store = tower_hf_auth::SessionStore::redis("redis://127.0.0.1:6379")
    ///     .with_timeout(Duration::from_millis(250));
    /// # }
    /// ```
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many sessions one user may have at once; a new sign-in past it ends the
    /// oldest. Default 100.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// let store = tower_hf_auth::SessionStore::redis("redis://127.0.0.1:6379")
    ///     .with_max_sessions_per_user(20);
    /// # }
    /// ```
    #[must_use]
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max;
        self
    }

    /// How long one replica may hold the right to refresh a session before another may
    /// take it over. Default: twice the provider timeout plus 2 seconds, longer than
    /// the two provider calls a refresh makes, so only a replica paused past it (a VM
    /// freeze, a stopped process) loses it; its late answer is then never written over
    /// the newer session.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// use std::time::Duration;
    /// let store = tower_hf_auth::SessionStore::redis("redis://127.0.0.1:6379")
    ///     .with_refresh_lease(Duration::from_secs(30));
    /// # }
    /// ```
    #[must_use]
    pub fn with_refresh_lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Whether sessions live on a server (and so can be revoked).
    #[must_use]
    pub fn is_server_side(&self) -> bool {
        !matches!(self.kind, StoreKind::Cookie)
    }

    /// Why the settings cannot work, if they cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        let odd = |c: char| !(c.is_ascii_alphanumeric() || "-_:.".contains(c));
        if self.prefix.chars().any(odd) {
            return Some(format!(
                "the key prefix {:?} may hold only letters, digits and `-_:.`",
                self.prefix
            ));
        }
        if self.timeout.is_zero() {
            return Some("the timeout must be above zero".into());
        }
        if self.lease.is_some_and(|l| l < Duration::from_millis(100)) {
            return Some("the refresh lease must last at least 100 ms".into());
        }
        if self.max_per_user == 0 {
            return Some("at least one session per user is needed".into());
        }
        #[cfg(feature = "redis")]
        if let StoreKind::Redis(url) = &self.kind {
            if url.expose().starts_with("rediss:") {
                return Some(
                    "TLS (`rediss://`) is not supported yet: reach Redis over a private \
                     network or a local TLS tunnel"
                        .into(),
                );
            }
            if let Err(err) = ::redis::Client::open(url.expose()) {
                // The error names the part that is wrong, not the password.
                return Some(format!("the Redis URL does not parse: {}", err.category()));
            }
        }
        None
    }
}

/// Put into a request's extensions when it carries a session cookie that could not be
/// read because the session store did not answer: guards answer `503` rather than
/// asking to sign in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreUnavailable;

/// What a store call came to when it did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum StoreError {
    /// No answer in time, or no connection.
    Unavailable,
    /// The server refused to write (out of memory).
    Full,
}

impl StoreError {
    /// The `error.type` of spans: `unavailable` or `full`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Full => "full",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "the session store is not answering",
            Self::Full => "the session store is full",
        })
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn settings_never_show_the_redis_password() {
        let store = SessionStore::redis("redis://:hunter2@127.0.0.1:6379/0");
        assert!(!format!("{store:?}").contains("hunter2"));
        let config = crate::HfAuthConfig::builder()
            .with_client_id("id")
            .with_public_url("http://127.0.0.1:1")
            .with_secret("x".repeat(40))
            .with_session_store(store)
            .build()
            .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let bad = SessionStore::redis("redis://:hunter2@[bad");
        let err = bad.problem().expect("a bad URL is refused");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn odd_settings_are_refused_with_a_reason() {
        let url = "redis://127.0.0.1:6379";
        assert!(SessionStore::redis(url).problem().is_none());
        for (store, needle) in [
            (SessionStore::redis(url).with_key_prefix("{x}"), "prefix"),
            (SessionStore::redis(url).with_key_prefix("a b"), "prefix"),
            (
                SessionStore::redis(url).with_timeout(Duration::ZERO),
                "timeout",
            ),
            (
                SessionStore::redis(url).with_max_sessions_per_user(0),
                "session",
            ),
            (
                SessionStore::redis(url).with_refresh_lease(Duration::from_millis(10)),
                "lease",
            ),
            (SessionStore::redis("rediss://127.0.0.1:6379"), "TLS"),
        ] {
            let problem = store.problem().expect("refused");
            assert!(problem.contains(needle), "{problem}");
        }
        let ephemeral = crate::HfAuthConfig::builder()
            .with_client_id("id")
            .with_public_url("http://127.0.0.1:1")
            .with_session_store(SessionStore::redis(url))
            .build();
        assert!(ephemeral.is_err(), "replicas need shared key material");
    }
}
