//! The running parts of an [`HfAuthLayer`](crate::HfAuthLayer), built once from the
//! settings by [`HfAuthLayer::new`](crate::HfAuthLayer::new): the provider client, the
//! session cookies and their keys, the opened-session cache, the refresher, the bearer validator, the replay set
//! of used sign-in states, and the clock. Every module that serves requests receives
//! this; none reaches into the configuration for a running part.

use std::sync::Arc;

use crate::bearer::BearerValidator;
use crate::clock::{Clock, unix_seconds};
use crate::config::HfAuthConfig;
use crate::observe::UserIds;
use crate::provider::Provider;
use crate::session::cache::OpenedSessions;
use crate::session::codec::{Binding, KeyRing};
use crate::session::refresh::Refresher;
use crate::session::store::StoreError;
#[cfg(feature = "redis")]
use crate::session::store::redis::RedisStore;
use crate::session::{Loaded, SessionCookies};
use crate::single_flight::UsedOnce;
use crate::user::HfUser;
use http::HeaderMap;

/// How many used sign-in states are remembered (each until its sign-in would have
/// expired anyway); past it the oldest go first.
const MAX_USED_STATES: usize = 10_000;

/// What serves requests: the settings and the parts built from them.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: HfAuthConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) provider: Arc<Provider>,
    pub(crate) sessions: SessionCookies,
    /// The users of session cookies opened before, by the cookies' bytes.
    pub(crate) opened: Arc<OpenedSessions>,
    /// The server-side session store, when sessions live in one.
    #[cfg(feature = "redis")]
    pub(crate) store: Option<Arc<RedisStore>>,
    pub(crate) refresher: Arc<Refresher>,
    /// Present when bearer tokens are accepted.
    pub(crate) bearer: Option<Arc<BearerValidator>>,
    /// Sign-in `state`s whose callback already ran (SHA-256 digests).
    pub(crate) used_states: UsedOnce,
    /// How spans show users (pseudonyms keyed from the secret, or raw ids).
    pub(crate) user_ids: Arc<UserIds>,
}

impl Runtime {
    /// Builds every running part from `config`. Opens no connection: the provider is
    /// first contacted by the first sign-in or bearer check.
    pub(crate) fn new(config: HfAuthConfig) -> Self {
        let clock = config.openid.clock.clone();
        let provider = Arc::new(Provider::new(config.openid.clone()));
        let user_ids = Arc::new(UserIds::new(&config.secret, config.raw_user_ids));
        let sessions = SessionCookies {
            name: config.cookie_name.clone(),
            attrs: config.cookie_attrs.clone(),
            keys: KeyRing::for_app(
                &config.secret,
                &config.old_secrets,
                Binding {
                    client_id: config.client_id(),
                    cookie_name: &config.cookie_name,
                },
            ),
            timing: config.session_timing,
            server: config.session_store.is_server_side(),
        };
        let opened = Arc::new(OpenedSessions::new(config.session_cache_bytes));
        #[cfg(feature = "redis")]
        let store = RedisStore::new(
            &config.session_store,
            &config.secret,
            config.openid.timeout,
            config.session_timing.refresh_grace,
            opened.clone(),
        )
        .map(Arc::new);
        let bearer = config.token_auth.clone().map(|settings| {
            let validator = BearerValidator::new(provider.clone(), settings, clock.clone())
                .with_user_ids(user_ids.clone());
            #[cfg(feature = "redis")]
            let validator = validator.with_store(store.clone());
            Arc::new(validator)
        });
        let refresher =
            Refresher::new(provider.clone(), clock.clone()).with_user_ids(user_ids.clone());
        #[cfg(feature = "redis")]
        let refresher = refresher.with_store(store.clone());
        Self {
            refresher: Arc::new(refresher),
            user_ids,
            used_states: UsedOnce::new(MAX_USED_STATES),
            opened,
            #[cfg(feature = "redis")]
            store,
            clock,
            provider,
            sessions,
            bearer,
            config,
        }
    }

    /// Now, in Unix seconds, by the configured clock.
    pub(crate) fn now(&self) -> u64 {
        unix_seconds(self.clock.as_ref())
    }

    /// The user of the session the request's cookie holds, without renewing it (read
    /// from the store when sessions live in one and it does not answer from the cache):
    /// `None` when there is none, or the store does not answer.
    pub(crate) async fn session_user(&self, headers: &HeaderMap) -> Option<HfUser> {
        self.session_user_or_error(headers).await.ok().flatten()
    }

    /// [`session_user`](Self::session_user), telling a store that did not answer from
    /// no session.
    pub(crate) async fn session_user_or_error(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<HfUser>, StoreError> {
        Ok(
            match self.sessions.load(headers, || self.now(), 0, &self.opened) {
                Loaded::Valid(user) | Loaded::Stale { user, .. } => Some(user),
                #[cfg(feature = "redis")]
                Loaded::Fetch { value, .. } => match &self.store {
                    Some(store) => {
                        let (keys, name) = (&self.sessions.keys, &self.sessions.name);
                        store
                            .open(&value, keys, name)
                            .await?
                            .map(HfUser::from_record)
                    }
                    None => None,
                },
                Loaded::Absent | Loaded::Invalid { .. } => None,
            },
        )
    }

    /// Whether `user` may use the app (see
    /// [`with_authorized_orgs`](crate::HfAuthConfigBuilder::with_authorized_orgs)).
    pub(crate) fn admits(&self, user: &HfUser) -> bool {
        self.config.is_authorized(user)
    }
}
