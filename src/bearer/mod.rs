//! Bearer tokens: API and gRPC clients that send `Authorization: Bearer <token>`
//! instead of a session cookie.
//!
//! Turn them on with [`with_bearer_tokens`](crate::HfAuthConfigBuilder::with_bearer_tokens);
//! a request without a valid session but with a bearer token the provider accepts then
//! carries an [`HfUser`] like a signed-in browser's.
//!
//! ```
//! use std::time::Duration;
//! use tower_hf_auth::{BearerValidation, HfAuthConfig};
//!
//! let builder = HfAuthConfig::builder()
//!     .with_bearer_tokens(true)
//!     .with_bearer_validation(BearerValidation::Auto)
//!     .with_bearer_cache_ttl(Duration::from_secs(60));
//! # let _ = builder;
//! ```
//!
//! A token is opaque, so the provider is asked who it belongs to, and the answer is
//! cached. Which endpoint is asked is [`BearerValidation`]'s choice; by default
//! (`Auto`) OAuth access tokens (`hf_oauth_…`) and tokens of other formats go to the
//! OpenID userinfo endpoint, and other Hugging Face tokens (`hf_…`: user access tokens,
//! `hf_jwt_…`) to `/api/whoami-v2`, which accepts every kind of token but is strictly
//! rate limited. A token longer than 4096 bytes, empty, or with a character that is not
//! visible ASCII is rejected without asking anyone.
//!
//! # Caching
//! Answers are cached under the token's SHA-256 digest, never the token itself:
//!
//! - an accepted token for 5 minutes
//!   ([`with_bearer_cache_ttl`](crate::HfAuthConfigBuilder::with_bearer_cache_ttl)),
//!   and never past its own expiry when the provider reports one (whoami does for OAuth
//!   tokens, as `expiresAt`; a token already expired by this crate's clock is
//!   rejected). A token revoked at the provider is therefore still accepted for up to
//!   the cache ttl.
//! - a rejected token (the provider answered `401`) for 30 seconds
//!   ([`with_bearer_negative_ttl`](crate::HfAuthConfigBuilder::with_bearer_negative_ttl));
//! - a provider that could not answer (`429`, `5xx`, timeout, no connection, an
//!   unusable answer) is never cached: the next request asks again. It is not a
//!   rejection either: the caller gets `503` (with the provider's `Retry-After`), not
//!   `401`.
//!
//! The cache holds at most 10,000 tokens
//! ([`with_bearer_cache_capacity`](crate::HfAuthConfigBuilder::with_bearer_cache_capacity)),
//! dropping expired answers first, then the oldest. Requests that arrive together with
//! the same unknown token share one call to the provider. A token answered recently is
//! found without computing its digest: accepted answers are also indexed by a keyed
//! hash of the token, and a hit compares the token byte for byte with the one the
//! answer's user holds (the same expiry applies, and a token the cache dropped is no
//! longer found there).
//!
//! [`HfUser::expires_at`](crate::HfUser::expires_at) of a bearer user is when its cache
//! entry expires, so it is never later than the token's own expiry when that is known.
//! A bearer user has no refresh token.
//!
//! # Scopes of a bearer token
//! The provider does not say which scopes an OAuth token was granted when it is
//! validated at userinfo, and user access tokens have roles rather than scopes. A bearer
//! user's [`scopes`](crate::HfUser::scopes) are therefore derived from what the
//! provider does say:
//!
//! | token | the provider reports | scopes the user gets |
//! |---|---|---|
//! | OAuth (`hf_oauth_…`), checked at whoami | a `scope` string in `auth` | exactly that string |
//! | OAuth, checked at userinfo, or at whoami without `scope` | nothing | only what the answer shows: `openid profile`, plus `email` when it includes an email |
//! | user access token, role `read` | `accessToken.role` | `openid profile email read-repos gated-repos read-collections read-memberships` |
//! | user access token, role `write` | `accessToken.role` | the `read` scopes plus `contribute-repos write-repos manage-repos write-collections write-discussions inference-api` |
//! | user access token, fine-grained | `accessToken.fineGrained` | `openid profile` only: fine-grained permissions are not mapped to OAuth scopes |
//! | any other answer (unknown role, no `auth`) | nothing usable | as for an unreported OAuth token: `openid profile`, plus `email` when shown |
//!
//! So a route guarded by [`RequireScopes`](crate::RequireScopes) with, say,
//! `write-repos` admits a `write` user token but no OAuth token checked at userinfo,
//! whatever that token was granted: an API that needs scopes from OAuth clients should
//! use [`BearerValidation::WhoAmI`] if the provider reports scopes there. A whoami
//! answer for an account that is not a user (type `org`) is a rejection.
//!
//! # Organizations of a bearer token
//! A token acts in fewer organizations than its user may: an OAuth app only in those
//! the user granted it, a fine-grained token only where it holds permissions. A bearer
//! user's [`orgs`](crate::HfUser::orgs) are therefore only those the token may act in,
//! so [`RequireOrg`](crate::RequireOrg) and
//! [`with_authorized_orgs`](crate::HfAuthConfigBuilder::with_authorized_orgs) refuse the
//! rest:
//!
//! | token | organizations the user gets | role in each |
//! |---|---|---|
//! | OAuth, checked at userinfo | those userinfo lists with a `roleInOrg` (granted to the app on the consent screen) | the user's |
//! | OAuth, checked at whoami | none (whoami does not say which organizations the app was granted) | — |
//! | user access token, role `read` or `write` | all of the user's | the user's |
//! | user access token, fine-grained | those with an entry in `fineGrained.scoped` that has permissions | the user's, at most `write` if a permission writes (`repo.write`, …), else at most `read` |
//! | any other answer | none | — |
//!
//! An OAuth token granted only `openid`, or a fine-grained token with no organization
//! permission, passes no organization guard.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::Secret;
use crate::clock::{Clock, unix_seconds};
use crate::observe::{self, Step, UserIds};
use crate::provider::{Provider, ProviderError, WhoAmI, WhoAmIAuth};
#[cfg(feature = "redis")]
use crate::session::store::redis::RedisStore;
mod fast;
#[cfg(feature = "redis")]
mod shared;

use crate::single_flight::{SingleFlight, key_of};
use crate::user::{HfUser, OrgRole, Profile, Scopes, SessionRecord, Via};
use fast::FastAnswers;

/// Marks a request whose bearer token the provider rejected, so a guard's 401 says
/// `error="invalid_token"` (RFC 6750).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerRejected;

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub(crate) fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let token = after_scheme(headers)?;
    // Then `HeaderValue::to_str`'s rule for the whole value (visible ASCII and tabs),
    // checked without an exit per byte, so that many bytes are checked at once.
    if !all_bytes(token, is_visible) {
        return None;
    }
    // Only visible ASCII, spaces and tabs are left: trimming ASCII whitespace is what
    // `str::trim` would do, and what remains is UTF-8.
    let token = std::str::from_utf8(token.trim_ascii()).ok()?;
    (!token.is_empty()).then_some(token)
}

/// The bytes of an `Authorization: Bearer …` header's token, not checked: enough to
/// find a token accepted before ([`BearerValidator::known`]), whose bytes were checked
/// then. For any value whose token this finds, [`bearer_token`] reads the same bytes: a
/// header value holds no control bytes but tabs, so both trim only spaces and tabs, and
/// an accepted token is visible ASCII, which passes its checks.
pub(crate) fn raw_bearer_token(headers: &http::HeaderMap) -> Option<&[u8]> {
    Some(after_scheme(headers)?.trim_ascii())
}

/// What follows `Bearer ` in the `Authorization` header, untrimmed.
fn after_scheme(headers: &http::HeaderMap) -> Option<&[u8]> {
    let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    // The scheme is what comes before the first space, and `bearer` has none: it is
    // the value's first seven bytes with the space.
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// `HeaderValue::to_str`'s rule: visible ASCII, space or tab.
fn is_visible(b: u8) -> bool {
    b.wrapping_sub(b' ') < 0x5f || b == b'\t'
}

/// Whether `test` holds for every byte: 16 at a time without an exit inside a block
/// (a loop over an array, which the compiler turns into vector compares), then the
/// rest.
fn all_bytes(bytes: &[u8], test: impl Fn(u8) -> bool) -> bool {
    let (blocks, rest) = bytes.as_chunks::<16>();
    let whole = |block: &[u8; 16]| block.iter().fold(true, |ok, &b| ok & test(b));
    blocks.iter().all(whole) && rest.iter().all(|&b| test(b))
}

/// Signs `req` in with a validation answer: inserts the token's user, carrying `via`,
/// when `admits` them, or marks the request as carrying a rejected token; whether it
/// signed the request in.
pub(crate) fn accept<B>(
    req: &mut http::Request<B>,
    answer: Result<HfUser, BearerRejection>,
    admits: impl Fn(&HfUser) -> bool,
    via: &Via,
) -> bool {
    match answer {
        Ok(user) if admits(&user) => {
            req.extensions_mut().insert(user.with_via(via.clone()));
            true
        }
        Ok(_) => false,
        Err(_) => {
            req.extensions_mut().insert(BearerRejected);
            false
        }
    }
}

/// Asks about `token` (cache first) and signs `req` in with the answer, as
/// [`accept`]. `Err` when the provider could not say, with how long it asked callers
/// to wait.
pub(crate) async fn check<B>(
    validator: &BearerValidator,
    token: &str,
    req: &mut http::Request<B>,
    admits: impl Fn(&HfUser) -> bool,
    via: &Via,
) -> Result<bool, Option<Duration>> {
    match validator.validate(token).await {
        Err(BearerRejection::Unavailable { retry_after }) => Err(retry_after),
        answer => Ok(accept(req, answer, admits, via)),
    }
}

/// Longest token sent to the provider, in bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// Which provider endpoint validates bearer tokens.
///
/// ```
/// use tower_hf_auth::BearerValidation;
/// assert_eq!(BearerValidation::default(), BearerValidation::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BearerValidation {
    /// OAuth access tokens (`hf_oauth_…`) and tokens not in Hugging Face's format at
    /// the userinfo endpoint; other `hf_…` tokens (user access tokens) at
    /// `/api/whoami-v2`.
    #[default]
    Auto,
    /// Every token at the OpenID userinfo endpoint (OAuth access tokens only on
    /// huggingface.co). Never reports a token's expiry or scopes.
    Userinfo,
    /// Every token at `/api/whoami-v2`, which knows every kind of token and reports an
    /// OAuth token's expiry, but is strictly rate limited.
    WhoAmI,
}

/// How bearer tokens are validated and cached.
#[derive(Debug, Clone)]
pub(crate) struct BearerSettings {
    /// Which endpoint asks. Default [`BearerValidation::Auto`].
    pub(crate) validation: BearerValidation,
    /// How long an accepted token is trusted. Default 5 minutes.
    pub(crate) ttl: Duration,
    /// How long a rejected token stays rejected. Default 30 s.
    pub(crate) negative_ttl: Duration,
    /// How many tokens the cache holds. Default 10,000.
    pub(crate) capacity: usize,
}

impl Default for BearerSettings {
    fn default() -> Self {
        Self {
            validation: BearerValidation::Auto,
            ttl: Duration::from_secs(5 * 60),
            negative_ttl: Duration::from_secs(30),
            capacity: 10_000,
        }
    }
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BearerRejection {
    /// The provider says the token is no good (401), or it is malformed: answer `401`.
    Invalid,
    /// The provider could not answer (429, 5xx, timeout, no connection, an unusable
    /// answer): the token may well be valid. Answer `503`, with `Retry-After` when
    /// the provider sent one.
    Unavailable {
        /// How long the provider asked callers to wait.
        retry_after: Option<Duration>,
    },
}

/// The answer about one token.
type Answer = Result<HfUser, BearerRejection>;

/// Validates bearer tokens against the provider, with a bounded cache and one upstream
/// call per token at a time.
pub(crate) struct BearerValidator {
    provider: Arc<Provider>,
    settings: BearerSettings,
    clock: Arc<dyn Clock>,
    /// Answers under the token's SHA-256 digest, and the validations under way.
    answers: SingleFlight<Answer>,
    /// The accepted answers of `answers` by a keyed hash of their token, for hits.
    fast: FastAnswers,
    /// The server-side store, where answers are shared with every replica.
    #[cfg(feature = "redis")]
    store: Option<Arc<RedisStore>>,
    /// How the spans of checks show the user (none: not at all).
    user_ids: Option<Arc<UserIds>>,
}

impl fmt::Debug for BearerValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One lock at a time: `validate` takes them in the other order.
        let cached = self.answers.cached_len();
        let in_flight = self.answers.in_flight_len();
        f.debug_struct("BearerValidator")
            .field("settings", &self.settings)
            .field("cached", &cached)
            .field("in_flight", &in_flight)
            .finish_non_exhaustive()
    }
}

impl BearerValidator {
    /// A validator asking `provider`, with time from `clock`.
    pub(crate) fn new(
        provider: Arc<Provider>,
        settings: BearerSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let answers = SingleFlight::new(settings.capacity);
        let fast = FastAnswers::new(settings.capacity);
        Self {
            provider,
            settings,
            clock,
            answers,
            fast,
            #[cfg(feature = "redis")]
            store: None,
            user_ids: None,
        }
    }

    /// Shares answers with every replica through `store`.
    #[cfg(feature = "redis")]
    pub(crate) fn with_store(self, store: Option<Arc<RedisStore>>) -> Self {
        Self { store, ..self }
    }

    /// Shows the user in the spans of checks as `user_ids` says.
    pub(crate) fn with_user_ids(mut self, user_ids: Arc<UserIds>) -> Self {
        self.user_ids = Some(user_ids);
        self
    }

    /// Fastest path: the user of a token accepted recently and still fresh, found by
    /// its bytes before they are checked (a hit proves they are the bytes of a token
    /// that passed every check; see [`raw_bearer_token`]). `None`: ask [`cached`](Self::cached).
    pub(crate) fn known(&self, raw: &[u8]) -> Option<HfUser> {
        let user = self.fast.get(raw, self.now(), self.answers.evictions())?;
        // On every request of an API client: below `DEBUG`, only the count.
        match Step::bearer_cached_traced() {
            Some(step) => self.accepted(&step, &user, true),
            None => observe::bearer_counted(true),
        }
        Some(user)
    }

    /// Synchronous path once [`known`](Self::known) found nothing (the layer asks it
    /// first; so must every caller): the cached answer for this token if still fresh
    /// (no await, no allocation beyond hashing), put into the fast index when it
    /// accepts. A malformed token is answered `Invalid`.
    pub(crate) fn cached(&self, token: &str) -> Option<Answer> {
        if !well_formed(token) {
            return Some(Err(BearerRejection::Invalid));
        }
        let now = self.now();
        // Read before the lookup: an eviction after it leaves the index entry unused.
        let evictions = self.answers.evictions();
        let answer = self.answers.cached(&key_of(token), now)?;
        self.index(token, &answer, now, evictions);
        let step = Step::bearer_cached();
        self.done(&step, &answer, true);
        Some(answer)
    }

    /// Validates: cache first, else one upstream call per token at a time (concurrent
    /// callers with the same unknown token wait for that one call and share its
    /// answer), then cached.
    pub(crate) async fn validate(&self, token: &str) -> Answer {
        if !well_formed(token) {
            return Err(BearerRejection::Invalid);
        }
        let key = key_of(token);
        let evictions = self.answers.evictions();
        let step = Step::bearer();
        let mut asked = false;
        let answer = self
            .answers
            .run(
                key,
                || self.now(),
                || {
                    asked = true;
                    self.ask_and_log(token)
                },
            )
            .instrument(step.span().clone())
            .await;
        self.index(token, &answer, self.now(), evictions);
        self.done(&step, &answer, !asked);
        answer
    }

    /// Puts an accepted answer for `token` into the fast index (`evictions`: the
    /// cache's count read before the answer was looked up or worked out).
    fn index(&self, token: &str, answer: &Answer, now: u64, evictions: u64) {
        if let Ok(user) = answer {
            // An accepted answer is cached until the user's expiry (see the module docs).
            let until = user.record().expires_at;
            self.fast.insert(token, user, until, now, evictions);
        }
    }

    /// Ends a check's span with its answer; `hit`: no provider call of its own.
    fn done(&self, step: &Step, answer: &Answer, hit: bool) {
        let (outcome, error) = match answer {
            Ok(user) => return self.accepted(step, user, hit),
            Err(BearerRejection::Invalid) => ("rejected", Some("invalid_token")),
            Err(BearerRejection::Unavailable { .. }) => {
                ("unavailable", Some("provider_unavailable"))
            }
        };
        observe::bearer_done(step, outcome, error, hit);
    }

    /// Ends a check's span that accepted `user`.
    fn accepted(&self, step: &Step, user: &HfUser, hit: bool) {
        if let Some(ids) = &self.user_ids {
            step.user(ids, user.id());
        }
        observe::bearer_done(step, "accepted", None, hit);
    }

    fn now(&self) -> u64 {
        unix_seconds(&*self.clock)
    }

    /// Asks the provider and logs the answer; returns it with until when to cache it.
    async fn ask_and_log(&self, token: &str) -> (Answer, Option<u64>) {
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared(token).await {
            return shared;
        }
        let (answer, expires_at) = self.ask(token).await;
        #[cfg(feature = "redis")]
        self.share(token, &answer, expires_at).await;
        match &answer {
            // Who: the span's `user.id` (a pseudonym unless raw ids are on).
            Ok(_) => tracing::debug!("bearer token accepted"),
            Err(BearerRejection::Invalid) => tracing::debug!("bearer token rejected"),
            Err(BearerRejection::Unavailable { .. }) => {}
        }
        (answer, expires_at)
    }

    /// Asks the provider. Returns the answer and until when it may be cached (`None`:
    /// not at all).
    async fn ask(&self, token: &str) -> (Answer, Option<u64>) {
        let secret = Secret::new(token);
        let validation = match self.settings.validation {
            BearerValidation::Auto if token.starts_with("hf_") => {
                if token.starts_with("hf_oauth_") {
                    BearerValidation::Userinfo
                } else {
                    BearerValidation::WhoAmI
                }
            }
            BearerValidation::Auto => BearerValidation::Userinfo,
            chosen => chosen,
        };
        let found = if validation == BearerValidation::WhoAmI {
            self.provider.whoami(&secret).await.map(Found::from_whoami)
        } else {
            self.provider
                .userinfo::<Profile>(&secret)
                .await
                .map(Found::from_userinfo)
        };
        let now = self.now();
        let reject = |ttl: Duration| {
            (
                Err(BearerRejection::Invalid),
                Some(now.saturating_add(ttl.as_secs())),
            )
        };
        let found = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::debug!("the provider's answer is not about a user");
                return reject(self.settings.negative_ttl);
            }
            Err(err) => {
                return match rejection(&err) {
                    BearerRejection::Invalid => reject(self.settings.negative_ttl),
                    unavailable => {
                        tracing::warn!(error = %err, "cannot validate a bearer token");
                        (Err(unavailable), None)
                    }
                };
            }
        };
        let mut expires_at = now.saturating_add(self.settings.ttl.as_secs());
        if let Some(token_expiry) = found.expires_at {
            if token_expiry <= now {
                tracing::debug!("the bearer token has expired");
                return reject(self.settings.negative_ttl);
            }
            expires_at = expires_at.min(token_expiry);
        }
        let Found {
            mut profile,
            grant,
            reach,
            ..
        } = found;
        profile.normalize();
        reach.apply(&mut profile);
        let scopes = bearer_scopes(&grant, profile.email.is_some());
        let user = HfUser::from_record(SessionRecord::for_bearer(
            profile, scopes, secret, expires_at,
        ));
        (Ok(user), Some(expires_at))
    }
}

/// A provider answer about a user.
struct Found {
    profile: Profile,
    grant: Grant,
    /// Which of the user's organizations the token may act in.
    reach: OrgReach,
    /// The token's own expiry, Unix seconds, when reported.
    expires_at: Option<u64>,
}

impl Found {
    fn from_userinfo(profile: Profile) -> Option<Self> {
        // Userinfo answers OAuth tokens: their app may act only in the organizations
        // the user granted it, which userinfo lists with a role.
        Some(Self {
            profile,
            grant: Grant::Unreported,
            reach: OrgReach::Granted,
            expires_at: None,
        })
    }

    /// `None` for an account that is not a user.
    fn from_whoami(who: WhoAmI) -> Option<Self> {
        if who.kind.as_deref().is_some_and(|kind| kind != "user") {
            return None;
        }
        let (grant, reach, expires_at) = match who.auth {
            // Whoami does not say which organizations an OAuth app was granted.
            WhoAmIAuth::OAuth { expires_at, scope } => (
                scope.map_or(Grant::Unreported, Grant::Reported),
                OrgReach::Nothing,
                expires_at,
            ),
            WhoAmIAuth::AccessToken {
                role,
                fine_grained,
                org_permissions,
            } => match (fine_grained, role.as_deref()) {
                (true, _) | (_, Some("fineGrained")) => (
                    Grant::FineGrained,
                    OrgReach::fine_grained(org_permissions),
                    None,
                ),
                (_, Some("read")) => (Grant::Read, OrgReach::AsUser, None),
                (_, Some("write")) => (Grant::Write, OrgReach::AsUser, None),
                _ => (Grant::Unreported, OrgReach::Nothing, None),
            },
            WhoAmIAuth::Other => (Grant::Unreported, OrgReach::Nothing, None),
        };
        Some(Self {
            profile: who.profile,
            grant,
            reach,
            expires_at,
        })
    }
}

/// Which of its user's organizations a bearer token may act in: the table in this
/// module's documentation. Organizations out of reach are left out of the token's
/// user, so organization guards refuse them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OrgReach {
    /// Every organization, with the user's role: classic `read` and `write` user tokens.
    AsUser,
    /// The organizations the user granted the OAuth app (listed with a role).
    Granted,
    /// These organizations only, each with at most this role: a fine-grained token's
    /// per-organization permissions.
    Listed(Vec<(String, OrgRole)>),
    /// None: the provider does not say (an OAuth token checked at whoami, an unknown
    /// kind of token).
    Nothing,
}

impl OrgReach {
    /// A fine-grained token's reach: organizations it holds permissions for; a role of
    /// at most `write` where a permission writes (`repo.write`, `org.write`, …), else
    /// at most `read`.
    fn fine_grained(org_permissions: Vec<(String, Vec<String>)>) -> Self {
        let listed = org_permissions
            .into_iter()
            .filter(|(_, permissions)| !permissions.is_empty())
            .map(|(org, permissions)| {
                let writes = permissions.iter().any(|p| p.contains("write"));
                (
                    org,
                    if writes {
                        OrgRole::Write
                    } else {
                        OrgRole::Read
                    },
                )
            })
            .collect();
        Self::Listed(listed)
    }

    fn apply(&self, profile: &mut Profile) {
        match self {
            Self::AsUser => {}
            Self::Granted => profile.orgs.retain(|org| org.role().is_some()),
            Self::Nothing => profile.orgs.clear(),
            Self::Listed(listed) => profile.orgs.retain_mut(|org| {
                let cap = listed.iter().find(|(name, _)| name == org.name());
                if let Some((_, cap)) = cap {
                    org.cap_role(*cap);
                }
                cap.is_some()
            }),
        }
    }
}

/// What the provider says a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// OAuth scopes, as reported.
    Reported(Scopes),
    /// Nothing: an OAuth token at userinfo, or an answer without usable `auth`.
    Unreported,
    /// A user access token with role `read`.
    Read,
    /// A user access token with role `write`.
    Write,
    /// A fine-grained user access token.
    FineGrained,
}

/// The scopes a bearer user gets: the table in this module's documentation.
fn bearer_scopes(grant: &Grant, email_shown: bool) -> Scopes {
    const READ: &[&str] = &[
        "openid",
        "profile",
        "email",
        "read-repos",
        "gated-repos",
        "read-collections",
        "read-memberships",
    ];
    const WRITE: &[&str] = &[
        "contribute-repos",
        "write-repos",
        "manage-repos",
        "write-collections",
        "write-discussions",
        "inference-api",
    ];
    match grant {
        Grant::Reported(scopes) => scopes.clone(),
        Grant::Unreported => ["openid", "profile"]
            .into_iter()
            .chain(email_shown.then_some("email"))
            .collect(),
        Grant::Read => READ.iter().copied().collect(),
        Grant::Write => READ.iter().chain(WRITE).copied().collect(),
        Grant::FineGrained => ["openid", "profile"].into_iter().collect(),
    }
}

/// A provider failure as a rejection: only the provider refusing the token makes it
/// invalid; anything else means it could not say.
fn rejection(err: &ProviderError) -> BearerRejection {
    match err {
        ProviderError::Unauthorized { .. } => BearerRejection::Invalid,
        // RFC 6750: the token is expired, revoked or malformed, whatever the status.
        ProviderError::OAuth { error, .. } if error == "invalid_token" => BearerRejection::Invalid,
        _ => BearerRejection::Unavailable {
            retry_after: err.retry_after(),
        },
    }
}

/// Whether a token could be one at all: 1 to 4096 visible ASCII characters.
fn well_formed(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && all_bytes(token.as_bytes(), |b| b.is_ascii_graphic())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn scopes_follow_the_documented_table() {
        let scopes = |grant: Grant, email: bool| bearer_scopes(&grant, email).to_string();
        assert_eq!(scopes(Grant::Unreported, false), "openid profile");
        assert_eq!(scopes(Grant::Unreported, true), "openid profile email");
        assert_eq!(
            scopes(Grant::Reported(Scopes::parse("openid read-repos")), true),
            "openid read-repos"
        );
        assert_eq!(
            scopes(Grant::Read, false),
            "openid profile email read-repos gated-repos read-collections read-memberships"
        );
        assert_eq!(
            scopes(Grant::Write, false),
            "openid profile email read-repos gated-repos read-collections read-memberships \
             contribute-repos write-repos manage-repos write-collections write-discussions \
             inference-api"
        );
        assert_eq!(scopes(Grant::FineGrained, true), "openid profile");
    }

    proptest::proptest! {
        /// The header is read as `HeaderValue::to_str` would let it be.
        #[test]
        fn bearer_token_reads_as_to_str_would(
            value in proptest::collection::vec(
                proptest::sample::select(vec![
                    b'B', b'e', b'a', b'r', b'E', b'R', b' ', b'\t', b'x', b'_', b'~', b'\x80', b'\xc3',
                    b'\xa9',
                ]),
                0..20,
            ),
        ) {
            let mut prefixed = b"Bearer ".to_vec();
            prefixed.extend_from_slice(&value);
            for bytes in [value, prefixed] {
                let mut headers = http::HeaderMap::new();
                let header = http::HeaderValue::from_bytes(&bytes).unwrap();
                headers.insert(http::header::AUTHORIZATION, header.clone());
                let expected = header.to_str().ok().and_then(|v| {
                    let (scheme, token) = v.split_once(' ')?;
                    let token = token.trim();
                    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
                });
                proptest::prop_assert_eq!(bearer_token(&headers), expected);
                // Whatever the unchecked reading finds that could be an accepted token
                // (well-formed), the checked one reads alike.
                let raw = raw_bearer_token(&headers);
                if let Some(token) = raw.and_then(|raw| std::str::from_utf8(raw).ok())
                    && well_formed(token)
                {
                    proptest::prop_assert_eq!(bearer_token(&headers), Some(token));
                }
            }
        }
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(well_formed("hf_abc"));
        assert!(well_formed(&"a".repeat(MAX_TOKEN_LEN)));
        for bad in ["", "hf_a b", "hf_\u{e9}", "hf_\t", "hf_\u{7f}"] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        assert!(!well_formed(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }

    #[test]
    fn provider_errors_map_to_rejections() {
        use http::StatusCode;
        assert_eq!(
            rejection(&ProviderError::Unauthorized { endpoint: "whoami" }),
            BearerRejection::Invalid
        );
        assert_eq!(
            rejection(&ProviderError::Status {
                endpoint: "whoami",
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(Duration::from_secs(9)),
            }),
            BearerRejection::Unavailable {
                retry_after: Some(Duration::from_secs(9))
            }
        );
        assert_eq!(
            rejection(&ProviderError::Timeout {
                endpoint: "userinfo"
            }),
            BearerRejection::Unavailable { retry_after: None }
        );
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::OrgRole;
    use crate::mock::{MockEndpoint, MockFault, MockHfProvider};
    use crate::provider::ProviderSettings;

    /// A clock tests move by hand, starting at the real time (the mock's token expiry
    /// is real time).
    #[derive(Debug)]
    struct TestClock(AtomicU64);

    impl TestClock {
        fn new() -> Arc<Self> {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            Arc::new(Self(AtomicU64::new(now.as_secs())))
        }

        fn advance(&self, by: Duration) {
            self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
        }

        fn secs(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(self.secs())
        }
    }

    fn provider_for(issuer: String, client_id: &str, secret: Option<&str>) -> Arc<Provider> {
        let mut settings = ProviderSettings::new(&issuer, client_id).unwrap();
        settings.client_secret = secret.map(Secret::new);
        settings.timeout = Duration::from_secs(2);
        Arc::new(Provider::new(settings))
    }

    fn rejected(answer: Answer) -> BearerRejection {
        match answer {
            Ok(user) => panic!("accepted: {user:?}"),
            Err(rejection) => rejection,
        }
    }

    fn validator_with(
        mock: &MockHfProvider,
        settings: BearerSettings,
    ) -> (BearerValidator, Arc<TestClock>) {
        let clock = TestClock::new();
        let provider = provider_for(mock.issuer(), mock.client_id(), mock.client_secret());
        (
            BearerValidator::new(provider, settings, clock.clone()),
            clock,
        )
    }

    fn validator(mock: &MockHfProvider) -> (BearerValidator, Arc<TestClock>) {
        validator_with(mock, BearerSettings::default())
    }

    /// The synchronous answer the layer finds for `token`, as it looks: the fast
    /// index by the token's bytes, then the cache.
    fn lookup(v: &BearerValidator, token: &str) -> Option<Answer> {
        match v.known(token.as_bytes()) {
            Some(user) => Some(Ok(user)),
            None => v.cached(token),
        }
    }

    fn whoami_settings() -> BearerSettings {
        BearerSettings {
            validation: BearerValidation::WhoAmI,
            ..BearerSettings::default()
        }
    }

    /// An OAuth access token for `user` granted `openid profile email`, living `lifetime`.
    fn oauth_token(mock: &MockHfProvider, user: &str, lifetime: Duration) -> String {
        mock.issue_oauth_token(user, &["openid", "profile", "email"], lifetime)
    }

    #[tokio::test]
    async fn oauth_token_is_validated_at_userinfo() {
        let mock = MockHfProvider::start().await.unwrap();
        let token = oauth_token(&mock, "alice", Duration::from_secs(3600));
        assert!(token.starts_with("hf_oauth_"));
        let (v, clock) = validator(&mock);
        let user = v.validate(&token).await.unwrap();
        assert_eq!(user.username(), "alice");
        assert_eq!(user.name(), Some("Alice Liddell"));
        assert_eq!(user.email(), Some("alice@example.com"));
        assert_eq!(user.org("acme").unwrap().role(), Some(OrgRole::Admin));
        assert_eq!(user.org("acme").unwrap().plan(), Some("team"));
        assert_eq!(user.scopes().to_string(), "openid profile email");
        assert_eq!(user.access_token().expose(), token);
        assert!(user.record().refresh_token.is_none());
        assert_eq!(user.record().expires_at, clock.secs() + 300);
        assert_eq!(mock.requests(MockEndpoint::Userinfo), 1);
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 0);

        let again = lookup(&v, &token).expect("cached").unwrap();
        assert_eq!(again.id(), user.id());
        // Behind the fast index, the cache itself holds the answer too.
        let cached = v.cached(&token).expect("in the cache").unwrap();
        assert_eq!(cached.access_token().expose(), token);
        assert!(v.cached("not a token").unwrap().is_err(), "malformed");
        v.validate(&token).await.unwrap();
        assert_eq!(
            mock.requests(MockEndpoint::Userinfo),
            1,
            "answered from the cache"
        );
    }

    #[tokio::test]
    async fn oauth_token_at_whoami_is_bounded_by_its_expiry() {
        let mock = MockHfProvider::start().await.unwrap();
        let token = oauth_token(&mock, "alice", Duration::from_secs(120));
        let (v, clock) = validator_with(&mock, whoami_settings());
        let user = v.validate(&token).await.unwrap();
        assert_eq!(user.username(), "alice");
        assert_eq!(user.scopes().to_string(), "openid profile email");
        let expires_at = user.record().expires_at;
        assert!(
            (clock.secs() + 118..=clock.secs() + 120).contains(&expires_at),
            "the token's own expiry ({expires_at}) bounds the 5-minute ttl"
        );
        clock.advance(Duration::from_secs(60));
        assert!(lookup(&v, &token).is_some());
        clock.advance(Duration::from_secs(61));
        assert!(
            lookup(&v, &token).is_none(),
            "the entry expired with the token"
        );
        // The mock (on real time) still accepts it; by this crate's clock it has expired.
        assert_eq!(rejected(v.validate(&token).await), BearerRejection::Invalid);
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 2);
    }

    #[tokio::test]
    async fn user_tokens_get_their_role_scopes() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let read = "openid profile email read-repos gated-repos read-collections read-memberships";
        let write = format!(
            "{read} contribute-repos write-repos manage-repos write-collections \
             write-discussions inference-api"
        );
        for (role, expected) in [
            ("read", read.to_owned()),
            ("write", write),
            ("fineGrained", "openid profile".to_owned()),
        ] {
            let token = mock.issue_user_token("alice", role);
            let user = v.validate(&token).await.unwrap();
            assert_eq!(user.scopes().to_string(), expected, "{role}");
            assert_eq!(user.username(), "alice");
            assert_eq!(user.name(), Some("Alice Liddell"));
            assert!(user.is_pro());
            assert_eq!(user.email(), Some("alice@example.com"));
            let avatar = user.avatar_url().unwrap();
            assert!(
                avatar.starts_with(&format!("{}/avatars/", mock.issuer())),
                "{avatar}"
            );
            if role == "fineGrained" {
                // No organization permission: the token acts in no organization.
                assert!(user.orgs().is_empty(), "{:?}", user.orgs());
                continue;
            }
            let acme = user.org("acme").unwrap();
            assert_eq!(acme.role(), Some(OrgRole::Admin));
            assert_eq!(acme.full_name(), Some("ACME Corp"));
            assert_eq!(acme.plan(), Some("team"));
            assert_eq!(user.org("huggingface").unwrap().role(), Some(OrgRole::Read));
        }
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 3);
        assert_eq!(mock.requests(MockEndpoint::Userinfo), 0);
    }

    #[tokio::test]
    async fn invalid_token_is_rejected_and_the_rejection_cached() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, clock) = validator(&mock);
        for (token, endpoint) in [
            ("hf_oauth_not_a_real_token", MockEndpoint::Userinfo),
            ("hf_not_a_real_token", MockEndpoint::WhoAmI),
        ] {
            assert_eq!(rejected(v.validate(token).await), BearerRejection::Invalid);
            assert_eq!(rejected(v.validate(token).await), BearerRejection::Invalid);
            assert_eq!(
                lookup(&v, token).map(rejected),
                Some(BearerRejection::Invalid)
            );
            assert_eq!(
                mock.requests(endpoint),
                1,
                "the second answer came from the cache"
            );
        }
        clock.advance(Duration::from_secs(31));
        assert!(
            lookup(&v, "hf_not_a_real_token").is_none(),
            "negative ttl passed"
        );
        assert_eq!(
            rejected(v.validate("hf_not_a_real_token").await),
            BearerRejection::Invalid
        );
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 2);
    }

    #[tokio::test]
    async fn malformed_tokens_never_reach_the_provider() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let long = format!("hf_{}", "a".repeat(MAX_TOKEN_LEN));
        for token in ["hf_a b", "hf_\u{e9}t\u{e9}", "", long.as_str()] {
            assert_eq!(rejected(v.validate(token).await), BearerRejection::Invalid);
            assert_eq!(
                lookup(&v, token).map(rejected),
                Some(BearerRejection::Invalid)
            );
        }
        assert_eq!(mock.requests(MockEndpoint::Userinfo), 0);
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 0);
        assert_eq!(mock.requests(MockEndpoint::Discovery), 0);
        // Other formats are not rejected up front: they go to userinfo.
        assert_eq!(
            rejected(v.validate("some-other-providers-token").await),
            BearerRejection::Invalid
        );
        assert_eq!(mock.requests(MockEndpoint::Userinfo), 1);
    }

    #[tokio::test]
    async fn revoked_token_is_accepted_until_the_ttl_passes() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, clock) = validator(&mock);
        let token = mock.issue_user_token("bob", "read");
        assert_eq!(v.validate(&token).await.unwrap().username(), "bob");
        mock.revoke_token(&token);
        clock.advance(Duration::from_secs(299));
        assert_eq!(v.validate(&token).await.unwrap().username(), "bob");
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 1);
        clock.advance(Duration::from_secs(1));
        assert!(lookup(&v, &token).is_none());
        assert_eq!(rejected(v.validate(&token).await), BearerRejection::Invalid);
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 2);
    }

    #[tokio::test]
    async fn provider_errors_are_unavailable_and_not_cached() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let user_token = mock.issue_user_token("alice", "read");
        let oauth = oauth_token(&mock, "alice", Duration::from_secs(3600));
        for (status, endpoint, token) in [
            (429, MockEndpoint::WhoAmI, user_token.as_str()),
            (500, MockEndpoint::WhoAmI, user_token.as_str()),
            (429, MockEndpoint::Userinfo, oauth.as_str()),
            (503, MockEndpoint::Userinfo, oauth.as_str()),
        ] {
            mock.add_fault(MockFault::Status { endpoint, status });
            let before = mock.requests(endpoint);
            for _ in 0..2 {
                assert_eq!(
                    rejected(v.validate(token).await),
                    BearerRejection::Unavailable { retry_after: None },
                    "{status}"
                );
                assert!(lookup(&v, token).is_none(), "{status} is not cached");
            }
            assert_eq!(mock.requests(endpoint), before + 2, "{status}: asked twice");
            mock.clear_faults();
        }
        v.validate(&user_token).await.unwrap();
        v.validate(&oauth).await.unwrap();
    }

    #[tokio::test]
    async fn slow_provider_is_unavailable() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let token = mock.issue_user_token("alice", "read");
        mock.add_fault(MockFault::Delay {
            endpoint: MockEndpoint::WhoAmI,
            delay: Duration::from_secs(5),
        });
        assert_eq!(
            rejected(v.validate(&token).await),
            BearerRejection::Unavailable { retry_after: None }
        );
        assert!(lookup(&v, &token).is_none());
    }

    /// A server answering every request with `429` and `Retry-After: 7`.
    async fn rate_limited_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    let _ = socket.read(&mut buf).await;
                    let body = r#"{"error":"You have been rate-limited"}"#;
                    let head = format!(
                        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\n\
                         content-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                });
            }
        });
        issuer
    }

    #[tokio::test]
    async fn retry_after_is_passed_on() {
        let issuer = rate_limited_server().await;
        let provider = provider_for(issuer, "client", Some("secret"));
        let v = BearerValidator::new(provider, BearerSettings::default(), TestClock::new());
        assert_eq!(
            rejected(v.validate("hf_some_user_token").await),
            BearerRejection::Unavailable {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_upstream_call() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let v = Arc::new(v);
        let token = Arc::new(mock.issue_user_token("carol", "write"));
        mock.add_fault(MockFault::Delay {
            endpoint: MockEndpoint::WhoAmI,
            delay: Duration::from_millis(200),
        });
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let (v, token) = (v.clone(), token.clone());
            tasks.spawn(async move { v.validate(&token).await });
        }
        let mut accepted = 0;
        while let Some(answer) = tasks.join_next().await {
            assert_eq!(answer.unwrap().unwrap().username(), "carol");
            accepted += 1;
        }
        assert_eq!(accepted, 1000);
        assert_eq!(mock.requests(MockEndpoint::WhoAmI), 1);
        assert_eq!(v.answers.in_flight_len(), 0);
    }

    #[tokio::test]
    async fn cancelled_caller_does_not_wedge_others() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let v = Arc::new(v);
        let token = mock.issue_user_token("alice", "read");
        mock.add_fault(MockFault::Delay {
            endpoint: MockEndpoint::WhoAmI,
            delay: Duration::from_millis(300),
        });
        // Alone and cancelled: the in-flight entry goes away.
        let gave_up = tokio::time::timeout(Duration::from_millis(50), v.validate(&token)).await;
        assert!(gave_up.is_err());
        assert_eq!(v.answers.in_flight_len(), 0);

        // The caller running the call is cancelled while another waits: the waiter
        // takes over and gets the answer.
        let first = tokio::spawn({
            let (v, token) = (v.clone(), token.clone());
            async move { v.validate(&token).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn({
            let (v, token) = (v.clone(), token.clone());
            async move { v.validate(&token).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.abort();
        assert_eq!(second.await.unwrap().unwrap().username(), "alice");
        assert_eq!(v.answers.in_flight_len(), 0);
        assert!(lookup(&v, &token).is_some());
    }

    #[tokio::test]
    async fn cache_holds_at_most_capacity_tokens() {
        let mock = MockHfProvider::start().await.unwrap();
        let settings = BearerSettings {
            capacity: 3,
            ..BearerSettings::default()
        };
        let (v, _) = validator_with(&mock, settings);
        let mut tokens = Vec::new();
        for i in 0..8 {
            let token = if i % 2 == 0 {
                mock.issue_user_token("bob", "read")
            } else {
                format!("hf_unknown_{i}")
            };
            let _ = v.validate(&token).await;
            assert!(v.answers.cached_len() <= 3);
            tokens.push(token);
        }
        assert_eq!(v.answers.cached_len(), 3);
        assert!(lookup(&v, &tokens[7]).is_some(), "the newest stays");
        assert!(lookup(&v, &tokens[0]).is_none(), "the oldest went");
    }

    #[tokio::test]
    async fn debug_output_never_shows_a_token() {
        let mock = MockHfProvider::start().await.unwrap();
        let (v, _) = validator(&mock);
        let token = mock.issue_user_token("alice", "write");
        let user = v.validate(&token).await.unwrap();
        let _ = v.validate("hf_rejected_token_value").await;
        for shown in [format!("{v:?}"), format!("{v:#?}"), format!("{user:?}")] {
            assert!(!shown.contains(&token), "{shown}");
            assert!(!shown.contains("hf_rejected_token_value"), "{shown}");
        }
        assert!(format!("{v:?}").contains("cached: 2"), "{v:?}");
    }

    #[test]
    fn validator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<BearerValidator>();
    }
}
