//! What the mock remembers: its fixed configuration, and the codes, tokens, keys and
//! faults that change while it runs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::jwt::SigningKey;
use super::users::MockUser;
use super::{MockClientAuth, MockEndpoint, MockFault};
use crate::clock::{Clock, unix_seconds};

/// How long an authorization code can be redeemed.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// Everything the server tasks and the handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    state: Mutex<State>,
    counters: [AtomicUsize; MockEndpoint::COUNT],
}

/// Settings fixed at start.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) client_auth: MockClientAuth,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) users: Vec<MockUser>,
    pub(crate) token_lifetime: Duration,
    pub(crate) id_token_lifetime: Duration,
    pub(crate) auto_approve: Option<String>,
    pub(crate) refresh_tokens: bool,
    pub(crate) strict: Strictness,
    /// Scopes this app may ask for; `None`: any the user grants.
    pub(crate) allowed_scopes: Option<Vec<String>>,
    /// A Space's host: every `https://{host}/…` redirect URI is accepted.
    pub(crate) space_host: Option<String>,
    /// At most this many whoami calls per window, then 429 with `Retry-After`.
    pub(crate) whoami_limit: Option<(u32, Duration)>,
    /// How long a chain of refresh tokens lives from the sign-in; `None`: forever.
    pub(crate) refresh_lifetime: Option<Duration>,
    /// How long a refresh token lives unused (each use hands out one with a new
    /// window); `None`: forever.
    pub(crate) refresh_idle_timeout: Option<Duration>,
    /// The time tokens are issued and expire by.
    pub(crate) clock: Arc<dyn Clock>,
}

/// Checks stricter than huggingface.co's, for suites that rely on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Strictness {
    /// Advertise and send RFC 9207 `iss` on callbacks.
    pub(crate) iss: bool,
    /// PKCE for every client, not only public ones.
    pub(crate) pkce: bool,
    /// `openid` in every authorize request.
    pub(crate) openid: bool,
}

impl Config {
    pub(crate) fn user(&self, username: &str) -> Option<usize> {
        self.users.iter().position(|u| u.username == username)
    }
}

/// Mutable state, behind the mutex (never held across an `.await`).
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) faults: Vec<MockFault>,
    /// Requests counted so far by the `FailOneIn` fault at each index of `faults`.
    fail_counts: HashMap<usize, u64>,
    pub(crate) key: Arc<SigningKey>,
    pub(crate) codes: HashMap<String, CodeGrant>,
    pub(crate) access_tokens: HashMap<String, AccessToken>,
    pub(crate) refresh_tokens: HashMap<String, RefreshGrant>,
    /// Refresh tokens already rotated away: using one again is reuse.
    pub(crate) spent_refresh_tokens: HashSet<String>,
    /// How many times a spent refresh token was presented again.
    pub(crate) reused_refresh_tokens: usize,
    /// The users as they are now (indexes as in `Config::users`): tests change them
    /// with `MockHfProvider::update_user`, and consent grants organizations.
    pub(crate) users: Vec<MockUser>,
    /// The whoami rate limit's window: when it started and the calls in it.
    pub(crate) whoami_window: Option<(Instant, u32)>,
    /// Sizes of `codes` and `access_tokens` past which the next insert sweeps out the
    /// expired ones (twice the size left by the last sweep): each insert costs O(1)
    /// amortized, not a scan of every token ever issued.
    sweep_codes_at: usize,
    sweep_tokens_at: usize,
}

/// The least size at which the token maps are swept.
const MIN_SWEEP: usize = 64;

/// Sweeps `map` with `keep` when it reached `*at`, then sets the next threshold.
fn sweep<V>(
    map: &mut HashMap<String, V>,
    at: &mut usize,
    keep: impl FnMut(&String, &mut V) -> bool,
) {
    if map.len() >= *at {
        map.retain(keep);
        *at = (2 * map.len()).max(MIN_SWEEP);
    }
}

/// An authorization code and everything it was issued for.
#[derive(Debug)]
pub(crate) struct CodeGrant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    /// The PKCE challenge, when the client sent one.
    pub(crate) code_challenge: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) user: usize,
    pub(crate) scopes: Vec<String>,
    pub(crate) auth_time: u64,
    pub(crate) expires_at: Instant,
    /// Set once redeemed (or tried): a second use is refused and revokes `issued`.
    pub(crate) used: bool,
    /// Tokens issued for this code, revoked if the code is replayed.
    pub(crate) issued: Vec<String>,
}

/// A bearer token: an OAuth access token or a user access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub(crate) user: usize,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) kind: TokenKind,
}

impl AccessToken {
    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// Where a bearer token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// `hf_oauth_…`, from the token endpoint.
    OAuth,
    /// `hf_…`, from [`MockHfProvider::issue_user_token`](super::MockHfProvider::issue_user_token).
    User {
        role: String,
        display_name: String,
        /// A fine-grained token's permissions per organization (by name).
        org_permissions: Vec<(String, Vec<String>)>,
    },
}

/// A refresh token, valid for one use.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) client_id: String,
    pub(crate) user: usize,
    pub(crate) scopes: Vec<String>,
    pub(crate) auth_time: u64,
    /// The end of the chain this token belongs to, fixed at the sign-in.
    pub(crate) chain_expires_at: Option<SystemTime>,
    /// The end of this token's idle window, from when it was issued.
    pub(crate) idle_expires_at: Option<SystemTime>,
}

impl RefreshGrant {
    /// A grant for a new chain (at a sign-in), or the next of a chain (`chain_expires_at`
    /// carried over), issued at `now` under `config`'s lifetimes.
    pub(crate) fn new(
        config: &Config,
        user: usize,
        scopes: Vec<String>,
        auth_time: u64,
        chain_expires_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Self {
        Self {
            client_id: config.client_id.clone(),
            user,
            scopes,
            auth_time,
            chain_expires_at,
            idle_expires_at: config.refresh_idle_timeout.map(|idle| now + idle),
        }
    }

    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        [self.chain_expires_at, self.idle_expires_at]
            .into_iter()
            .flatten()
            .any(|at| now >= at)
    }
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        let users = config.users.clone();
        Self {
            config,
            state: Mutex::new(State {
                faults: Vec::new(),
                fail_counts: HashMap::new(),
                key: Arc::new(SigningKey::generate()),
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                spent_refresh_tokens: HashSet::new(),
                reused_refresh_tokens: 0,
                users,
                whoami_window: None,
                sweep_codes_at: MIN_SWEEP,
                sweep_tokens_at: MIN_SWEEP,
            }),
            counters: Default::default(),
        }
    }

    /// The user at `index` as they are now.
    pub(crate) fn user(&self, index: usize) -> MockUser {
        self.lock().users[index].clone()
    }

    /// Now, by the mock's clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// Now in Unix seconds, by the mock's clock.
    pub(crate) fn unix_now(&self) -> u64 {
        unix_seconds(self.config.clock.as_ref())
    }

    /// Locks the state; a panic elsewhere while it was held does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count(&self, endpoint: MockEndpoint) {
        self.counters[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn requests(&self, endpoint: MockEndpoint) -> usize {
        self.counters[endpoint.index()].load(Ordering::Relaxed)
    }

    /// The active faults (a copy, so the lock is not held while acting on them).
    pub(crate) fn faults(&self) -> Vec<MockFault> {
        self.lock().faults.clone()
    }

    pub(crate) fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.lock().key)
    }

    /// Counts a request to `endpoint` for every `FailOneIn` fault that covers it; `true`
    /// if one of them picks this request to fail.
    pub(crate) fn fails_one_in(&self, endpoint: MockEndpoint) -> bool {
        let mut state = self.lock();
        let State {
            faults,
            fail_counts,
            ..
        } = &mut *state;
        let mut fail = false;
        for (index, fault) in faults.iter().enumerate() {
            if let MockFault::FailOneIn { endpoint: e, n } = fault
                && e.is_none_or(|e| e == endpoint)
            {
                let count = fail_counts.entry(index).or_default();
                *count += 1;
                fail |= *count % u64::from((*n).max(1)) == 0;
            }
        }
        fail
    }
}

impl State {
    /// Removes every fault and its counts.
    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
        self.fail_counts.clear();
    }

    /// Stores a new code, forgetting codes long past their lifetime.
    pub(crate) fn insert_code(&mut self, grant: CodeGrant) -> String {
        let now = Instant::now();
        sweep(&mut self.codes, &mut self.sweep_codes_at, |_, c| {
            c.expires_at + CODE_LIFETIME > now
        });
        let code = random_token("");
        self.codes.insert(code.clone(), grant);
        code
    }

    /// Stores a new bearer token, forgetting those expired at `now`.
    pub(crate) fn insert_access_token(
        &mut self,
        prefix: &str,
        token: AccessToken,
        now: SystemTime,
    ) -> String {
        sweep(
            &mut self.access_tokens,
            &mut self.sweep_tokens_at,
            |_, t| !t.is_expired(now),
        );
        let value = random_token(prefix);
        self.access_tokens.insert(value.clone(), token);
        value
    }

    pub(crate) fn insert_refresh_token(&mut self, grant: RefreshGrant) -> String {
        let value = random_token("hf_oauth_refresh_");
        self.refresh_tokens.insert(value.clone(), grant);
        value
    }

    pub(crate) fn revoke(&mut self, token: &str) {
        self.access_tokens.remove(token);
        self.refresh_tokens.remove(token);
    }
}

/// `prefix` followed by 40 random alphanumeric characters (about 238 bits), the
/// alphabet of Hugging Face's own tokens.
pub(crate) fn random_token(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = String::with_capacity(prefix.len() + 40);
    token.push_str(prefix);
    let mut bytes = [0u8; 64];
    while token.len() < prefix.len() + 40 {
        aws_lc_rs::rand::fill(&mut bytes).expect("system randomness failed");
        // Rejection sampling keeps every character equally likely.
        for &b in bytes.iter().filter(|&&b| b < 248) {
            if token.len() == prefix.len() + 40 {
                break;
            }
            token.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    token
}
