//! Refreshing a session's access token with its refresh token, once per token.
//!
//! A session whose access token expires within the refresh window (or has expired) and
//! that holds a refresh token is refreshed by the layer. Refresh tokens may rotate (each
//! works once), so concurrent requests with the same old cookie share one call to the
//! provider, and the outcome is remembered for a short while under the SHA-256 digest
//! of the old refresh token: requests that still carry the old cookie right after get
//! the same refreshed session instead of spending the token a second time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tracing::Instrument;

#[cfg(feature = "redis")]
use super::store::redis::{RedisStore, Replaced};
use super::{Renew, SessionCookies};
use crate::HfUser;
use crate::clock::{Clock, unix_seconds};
use crate::observe::{self, Step, UserIds};
use crate::provider::{Provider, ProviderError};
use crate::single_flight::{Key, SingleFlight, key_of};
#[cfg(feature = "redis")]
use crate::ticket::Stored;
use crate::user::{Profile, SessionRecord};

/// How long a refreshed session is handed to requests that still carry the old cookie.
const REMEMBER: u64 = 120;

/// How many outcomes are remembered at most.
const CAPACITY: usize = 10_000;

/// Default refresh window: refresh when the access token expires within this.
pub(crate) const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// What refreshing a session came to.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The provider issued new tokens: the session to use from now on.
    Refreshed(HfUser),
    /// The provider could not answer (unreachable, timeout, 5xx, 429, an unusable
    /// answer): try again on a later request. Never remembered.
    Unavailable,
    /// The provider refused the refresh token (`invalid_grant`: revoked, expired or
    /// already used): the session ends when its access token expires.
    Refused,
    /// The session is no longer in the server-side store (signed out or revoked
    /// elsewhere): it ends now.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Ended,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refreshed(user) => f.debug_tuple("Refreshed").field(user).finish(),
            Self::Unavailable => f.write_str("Unavailable"),
            Self::Refused => f.write_str("Refused"),
            Self::Ended => f.write_str("Ended"),
        }
    }
}

/// Refreshes sessions: one provider call per refresh token, outcomes remembered.
pub(crate) struct Refresher {
    provider: Arc<Provider>,
    clock: Arc<dyn Clock>,
    outcomes: SingleFlight<Outcome>,
    /// The server-side store, whose sessions are renewed once for every replica.
    #[cfg(feature = "redis")]
    store: Option<Arc<RedisStore>>,
    /// How the spans of renewals show the user (none: not at all).
    user_ids: Option<Arc<UserIds>>,
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remembered = self.outcomes.cached_len();
        let in_flight = self.outcomes.in_flight_len();
        f.debug_struct("Refresher")
            .field("remembered", &remembered)
            .field("in_flight", &in_flight)
            .finish_non_exhaustive()
    }
}

impl Refresher {
    pub(crate) fn new(provider: Arc<Provider>, clock: Arc<dyn Clock>) -> Self {
        Self {
            provider,
            clock,
            outcomes: SingleFlight::new(CAPACITY),
            #[cfg(feature = "redis")]
            store: None,
            user_ids: None,
        }
    }

    /// Renews sessions of `store` under its lease, once for every replica.
    #[cfg(feature = "redis")]
    pub(crate) fn with_store(self, store: Option<Arc<RedisStore>>) -> Self {
        Self { store, ..self }
    }

    /// Shows the user in the spans of renewals as `user_ids` says.
    pub(crate) fn with_user_ids(mut self, user_ids: Arc<UserIds>) -> Self {
        self.user_ids = Some(user_ids);
        self
    }

    fn now(&self) -> u64 {
        unix_seconds(&*self.clock)
    }

    /// The single-flight key of renewing `user`'s session: the refresh token's digest
    /// for new tokens, the access token's (under its own label) for a new profile.
    fn key(user: &HfUser, renew: Renew) -> Option<Key> {
        let record = user.record();
        match renew {
            Renew::Tokens => Some(key_of(record.refresh_token.as_ref()?.expose())),
            Renew::Profile => Some(key_of(&format!("profile:{}", record.access_token.expose()))),
        }
    }

    /// Synchronous fast path: the remembered outcome of renewing `user`'s session.
    pub(crate) fn remembered(&self, user: &HfUser, renew: Renew) -> Option<Outcome> {
        let outcome = self.outcomes.cached(&Self::key(user, renew)?, self.now());
        if let Some(Outcome::Refreshed(_)) = outcome {
            observe::renewal_remembered(renew == Renew::Profile);
        }
        outcome
    }

    /// Renews `user`'s session (new tokens and profile, or a new profile only), or hands
    /// out the remembered outcome. A session without a refresh token cannot get new
    /// tokens: [`Outcome::Refused`].
    ///
    /// The work runs in a task of its own, so a caller that goes away (a browser that
    /// navigates elsewhere) does not cancel a refresh the provider may already have
    /// carried out: its outcome, and the rotated refresh token, are still remembered
    /// for the requests that follow.
    pub(crate) async fn refresh(self: &Arc<Self>, user: &HfUser, renew: Renew) -> Outcome {
        let this = Arc::clone(self);
        let user = user.clone();
        // The task's span is made here, a child of the request's.
        let profile_only = renew == Renew::Profile;
        let step = Step::renewal(profile_only);
        if let Some(ids) = &self.user_ids {
            step.user(ids, user.id());
        }
        let span = step.span().clone();
        let task = async move {
            let (outcome, ran) = this.refresh_here(&user, renew).await;
            let label = match (&outcome, ran) {
                (_, false) => "coalesced",
                (Outcome::Refreshed(_), true) => "refreshed",
                (Outcome::Unavailable, true) => "unavailable",
                (Outcome::Refused, true) => "refused",
                (Outcome::Ended, true) => "ended",
            };
            observe::renewal_done(&step, profile_only, label);
            outcome
        };
        tokio::spawn(task.instrument(span))
            .await
            .unwrap_or(Outcome::Unavailable)
    }

    /// [`refresh`](Self::refresh) for a request: a session whose access token has
    /// expired waits for the outcome; a still-valid one at most [`REFRESH_WAIT`], since a
    /// slow provider must not slow every request in the refresh window. The refresh goes
    /// on in its own task, and a later request picks up its outcome.
    pub(crate) async fn refresh_for_request(
        self: &Arc<Self>,
        user: &HfUser,
        renew: Renew,
        expired: bool,
    ) -> Outcome {
        if expired {
            self.refresh(user, renew).await
        } else {
            tokio::time::timeout(REFRESH_WAIT, self.refresh(user, renew))
                .await
                .unwrap_or(Outcome::Unavailable)
        }
    }

    /// The outcome, and whether this call asked the provider (rather than sharing
    /// another call's outcome).
    async fn refresh_here(&self, user: &HfUser, renew: Renew) -> (Outcome, bool) {
        let Some(key) = Self::key(user, renew) else {
            return (Outcome::Refused, true);
        };
        let old = user.record();
        let mut ran = false;
        let outcome = self
            .outcomes
            .run(
                key,
                || self.now(),
                || {
                    ran = true;
                    async {
                        #[cfg(feature = "redis")]
                        if let (Some(store), Some(stored)) = (&self.store, &old.stored) {
                            return self.renew_shared(store, stored, old, renew).await;
                        }
                        self.renew_here(old, renew).await
                    }
                },
            )
            .await;
        (outcome, ran)
    }

    /// Renews the session `old` by asking the provider.
    async fn renew_here(&self, old: &SessionRecord, renew: Renew) -> (Outcome, Option<u64>) {
        match renew {
            Renew::Tokens => self.new_tokens(old).await,
            Renew::Profile => self.new_profile(old).await,
        }
    }

    /// The outcome of finding the store's session `current` newer than the one to
    /// renew: another replica renewed it (use that), or it is gone.
    #[cfg(feature = "redis")]
    fn renewed_elsewhere(&self, current: Option<SessionRecord>) -> (Outcome, Option<u64>) {
        let now = self.now();
        match current {
            Some(record) => {
                let until = now.saturating_add(REMEMBER).min(record.expires_at);
                (Outcome::Refreshed(HfUser::from_record(record)), Some(until))
            }
            None => (Outcome::Ended, Some(now.saturating_add(REMEMBER))),
        }
    }

    /// Renews a session of the server-side store: under the store's lease, so one
    /// replica asks the provider while the others wait for its new session; written
    /// back only over the version read, so a holder whose lease ran out while it
    /// waited on the provider never overwrites a newer session.
    #[cfg(feature = "redis")]
    async fn renew_shared(
        &self,
        store: &Arc<RedisStore>,
        stored: &Stored,
        old: &SessionRecord,
        renew: Renew,
    ) -> (Outcome, Option<u64>) {
        let deadline = tokio::time::Instant::now() + store.lease_time();
        loop {
            let lease = match store.lease(stored).await {
                Ok(lease) => lease,
                Err(_) => return (Outcome::Unavailable, None),
            };
            // Renewed (or ended) since this session was read?
            let current = match store.reread(stored).await {
                Ok(current) => current,
                Err(_) => return (Outcome::Unavailable, None),
            };
            if moved(current.as_ref(), stored) {
                if let Some(lease) = lease {
                    store.release(lease).await;
                }
                return self.renewed_elsewhere(current);
            }
            if let Some(lease) = lease {
                let outcome = self.renew_leased(store, stored, old, renew).await;
                store.release(lease).await;
                return outcome;
            }
            if tokio::time::Instant::now() >= deadline {
                return (Outcome::Unavailable, None);
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// Renews `old` while holding its lease, and writes the new session back.
    #[cfg(feature = "redis")]
    async fn renew_leased(
        &self,
        store: &Arc<RedisStore>,
        stored: &Stored,
        old: &SessionRecord,
        renew: Renew,
    ) -> (Outcome, Option<u64>) {
        let (outcome, until) = self.renew_here(old, renew).await;
        let Outcome::Refreshed(user) = &outcome else {
            // Refused or unanswered: if another replica renewed it meanwhile (a lease
            // that ran out), its session stands.
            return match store.reread(stored).await {
                Ok(current) if moved(current.as_ref(), stored) => self.renewed_elsewhere(current),
                _ => (outcome, until),
            };
        };
        match store
            .replace(stored, user.record().clone(), self.now())
            .await
        {
            Ok(Replaced::Written(user)) => (Outcome::Refreshed(user), until),
            Ok(Replaced::Newer) => {
                tracing::warn!(
                    "another replica renewed this session first (this one's lease ran \
                     out); its session is kept"
                );
                match store.reread(stored).await {
                    Ok(current) => self.renewed_elsewhere(current),
                    Err(_) => (Outcome::Unavailable, None),
                }
            }
            Ok(Replaced::Gone) => self.renewed_elsewhere(None),
            // Not written: this process serves the new session (remembered, so it does
            // not spend the refresh token again); the store keeps the old one.
            Err(err) => {
                tracing::warn!(error = %err, "cannot store a renewed session");
                (outcome, until)
            }
        }
    }

    /// Asks the provider for new tokens, then for the profile with the new access
    /// token; returns the outcome and until when to remember it.
    async fn new_tokens(&self, old: &SessionRecord) -> (Outcome, Option<u64>) {
        let Some(token) = old.refresh_token.as_ref() else {
            return (Outcome::Refused, None);
        };
        let answer = self.provider.refresh(token).await;
        let now = self.now();
        // Who: the span's `user.id` (a pseudonym unless raw ids are on).
        match answer {
            Ok(tokens) => {
                let mut record = old.refreshed(tokens, now);
                // The profile too, so org changes show; if it cannot be read now, the
                // old one stays (and is read again on a later request). New tokens that
                // userinfo refuses, or that describe another user, are not trusted.
                match self.read_profile(&record).await {
                    ProfileRead::Read(profile) => record = record.with_profile(profile, now),
                    ProfileRead::Unavailable => {}
                    ProfileRead::Refused => {
                        let until = old.expires_at.max(now).saturating_add(REMEMBER);
                        return (Outcome::Refused, Some(until));
                    }
                }
                tracing::debug!("session refreshed");
                // Never remembered past the new access token's own expiry.
                let until = now.saturating_add(REMEMBER).min(record.expires_at);
                (Outcome::Refreshed(HfUser::from_record(record)), Some(until))
            }
            Err(err) if is_refused(&err) => {
                tracing::warn!(
                    error = %err,
                    "the provider refused the session's refresh token; the session ends \
                     when its access token expires"
                );
                // The token will never work again: remember that until a while after
                // the access token expires, so requests until then (and the one that
                // clears the cookie) do not ask again.
                let until = old.expires_at.max(now).saturating_add(REMEMBER);
                (Outcome::Refused, Some(until))
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot refresh a session");
                (Outcome::Unavailable, None)
            }
        }
    }

    /// Reads the profile again with the session's access token.
    async fn new_profile(&self, old: &SessionRecord) -> (Outcome, Option<u64>) {
        let now = self.now();
        match self.read_profile(old).await {
            ProfileRead::Read(profile) => {
                let record = old.with_profile(profile, now);
                let until = now.saturating_add(REMEMBER).min(record.expires_at);
                (Outcome::Refreshed(HfUser::from_record(record)), Some(until))
            }
            ProfileRead::Unavailable => (Outcome::Unavailable, None),
            // The token no longer reads the profile: treated like a refused refresh.
            ProfileRead::Refused => {
                let until = old.expires_at.max(now).saturating_add(REMEMBER);
                (Outcome::Refused, Some(until))
            }
        }
    }

    /// Userinfo with `record`'s access token: the same user's profile, or why not.
    async fn read_profile(&self, record: &SessionRecord) -> ProfileRead {
        match self
            .provider
            .userinfo::<Profile>(&record.access_token)
            .await
        {
            Ok(mut profile) if profile.sub == record.profile.sub => {
                profile.normalize();
                tracing::debug!("profile read again");
                ProfileRead::Read(profile)
            }
            Ok(_) => {
                tracing::warn!("userinfo now describes another user; not trusted");
                ProfileRead::Refused
            }
            Err(err) if err.is_unauthorized() => {
                tracing::warn!(error = %err, "the provider no longer accepts the session's access token");
                ProfileRead::Refused
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the profile again");
                ProfileRead::Unavailable
            }
        }
    }
}

/// What reading the profile again came to.
enum ProfileRead {
    Read(Profile),
    Unavailable,
    Refused,
}

/// Whether the store's session `current` is not the one `stored` was read as: renewed
/// since, or gone.
#[cfg(feature = "redis")]
fn moved(current: Option<&SessionRecord>, stored: &Stored) -> bool {
    current
        .and_then(|c| c.stored.as_ref())
        .is_none_or(|c| c.version != stored.version)
}

/// How often a replica waiting for another's renewal looks at the store.
#[cfg(feature = "redis")]
const LEASE_POLL: Duration = Duration::from_millis(50);

/// How long a request whose session is still valid waits for its refresh before it is
/// served with the session it has.
const REFRESH_WAIT: Duration = Duration::from_secs(1);

/// What a session due for a refresh comes to after `outcome`: the user to sign in, if
/// any, and the `Set-Cookie` headers to send (replacing the `present` old chunks).
///
/// Refreshed: the new session and its cookie. The provider could not answer: the old
/// session while its access token is valid, else no user, and the cookie stays so a
/// later request can try again. The refresh token was refused: the old session until
/// its access token expires, then no user and the cookie is cleared.
pub(crate) fn settle(
    sessions: &SessionCookies,
    outcome: Outcome,
    old: HfUser,
    present: usize,
    expired: bool,
    now: u64,
) -> (Option<HfUser>, Vec<HeaderValue>) {
    match outcome {
        Outcome::Refreshed(user) => match sessions.save(user.record(), present, now) {
            Ok(set_cookies) => (Some(user), set_cookies),
            // Cannot happen (the profile is the old one, which fit), but never ends a
            // session early.
            Err(_) => ((!expired).then_some(old), Vec::new()),
        },
        Outcome::Unavailable => ((!expired).then_some(old), Vec::new()),
        Outcome::Refused if expired => (None, sessions.clear(present)),
        Outcome::Ended => (None, sessions.clear(present)),
        Outcome::Refused => (Some(old), Vec::new()),
    }
}

/// Whether the provider refused the refresh token itself (rather than failing to
/// answer): only `invalid_grant` means that.
fn is_refused(err: &ProviderError) -> bool {
    err.is_oauth_error("invalid_grant")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::provider::TokenResponse;
    use crate::user::Scopes;
    use http::StatusCode;

    fn old() -> SessionRecord {
        SessionRecord {
            profile: serde_json::from_str(r#"{"sub":"abc","preferred_username":"carol"}"#).unwrap(),
            scopes: Scopes::parse("openid profile read-repos"),
            access_token: Secret::new("hf_oauth_old"),
            expires_at: 1_100,
            refresh_token: Some(Secret::new("hf_oauth_refresh_old")),
            asked: Scopes::parse("openid profile read-repos"),
            profile_at: u64::MAX / 2,
            stored: None,
        }
    }

    fn answer(json: &str) -> TokenResponse {
        TokenResponse::from_json(json.as_bytes(), Some("application/json")).unwrap()
    }

    #[test]
    fn refreshed_record_takes_the_new_tokens_and_keeps_the_rest() {
        let new = old().refreshed(
            answer(
                r#"{"access_token":"hf_oauth_new","token_type":"bearer","expires_in":600,
                    "scope":"openid profile","refresh_token":"hf_oauth_refresh_new"}"#,
            ),
            1_000,
        );
        assert_eq!(new.access_token.expose(), "hf_oauth_new");
        assert_eq!(new.expires_at, 1_600);
        assert_eq!(
            new.refresh_token.as_ref().unwrap().expose(),
            "hf_oauth_refresh_new"
        );
        assert_eq!(new.scopes.to_string(), "openid profile");
        assert_eq!(new.asked.to_string(), "openid profile read-repos");
        assert_eq!(new.profile.preferred_username, "carol");
    }

    #[test]
    fn refreshed_record_keeps_the_old_refresh_token_and_scopes_when_not_sent() {
        let new = old().refreshed(
            answer(r#"{"access_token":"hf_oauth_new","token_type":"bearer"}"#),
            1_000,
        );
        assert_eq!(
            new.refresh_token.as_ref().unwrap().expose(),
            "hf_oauth_refresh_old"
        );
        assert_eq!(new.scopes.to_string(), "openid profile read-repos");
        assert_eq!(new.expires_at, 1_000 + 3600, "one hour when unsaid");
    }

    #[test]
    fn only_invalid_grant_is_a_refusal() {
        let oauth = |error: &str, status| ProviderError::OAuth {
            endpoint: "token",
            status,
            error: error.to_owned(),
            description: None,
            retry_after: None,
        };
        assert!(is_refused(&oauth("invalid_grant", StatusCode::BAD_REQUEST)));
        assert!(!is_refused(&oauth(
            "server_error",
            StatusCode::SERVICE_UNAVAILABLE
        )));
        assert!(!is_refused(&oauth(
            "invalid_client",
            StatusCode::UNAUTHORIZED
        )));
        assert!(!is_refused(&ProviderError::Timeout { endpoint: "token" }));
        assert!(!is_refused(&ProviderError::Status {
            endpoint: "token",
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: None,
        }));
    }

    #[test]
    fn outcome_debug_never_shows_a_token() {
        let shown = format!("{:?}", Outcome::Refreshed(HfUser::from_record(old())));
        assert!(!shown.contains("hf_oauth_"), "{shown}");
    }
}
