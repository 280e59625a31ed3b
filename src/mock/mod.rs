//! An offline stand-in for huggingface.co as an OpenID provider.
//!
//! [`MockHfProvider`] serves Hugging Face's OAuth endpoints on `127.0.0.1` with the same
//! paths and shapes as the real provider: discovery, `/oauth/authorize`, `/oauth/token`,
//! `/oauth/userinfo`, `/oauth/jwks` and `/api/whoami-v2`. It is there for local
//! development (sign in as `alice`, `bob` or `carol` without a network) and for tests.
//!
//! It is strict where Hugging Face is strict, so code that passes against it does not
//! rely on leniency: exact redirect URIs (any port on a loopback host), `S256` PKCE only,
//! single-use codes bound to the client, redirect URI, PKCE challenge and nonce, client
//! authentication, rotating refresh tokens, RS256 ID tokens from a key in its JWKS, and
//! expiring, revocable access tokens. It can also be told to misbehave with
//! [`MockFault`]s: forged ID tokens, a wrong issuer, error statuses (always, or one
//! request in n), slow, huge or non-JSON answers.
//!
//! Refresh tokens rotate: each works once, and a rotated one presented again is refused
//! (`invalid_grant`) and counted ([`MockHfProvider::reused_refresh_tokens`]). They live
//! forever unless [`with_refresh_token_lifetime`] ends a chain a while after the
//! sign-in, or [`with_refresh_token_idle_timeout`] ends one left unused (a sliding
//! window); either is answered `invalid_grant` ("refresh token expired"). Tokens are
//! issued and expire by the mock's [clock](MockHfProviderBuilder::with_clock): give it
//! the app's test clock to step past an expiry without waiting.
//!
//! [`with_refresh_token_lifetime`]: MockHfProviderBuilder::with_refresh_token_lifetime
//! [`with_refresh_token_idle_timeout`]: MockHfProviderBuilder::with_refresh_token_idle_timeout
//!
//! To pick a user without a browser, add `mock_user=NAME` to the authorize URL (or
//! `mock_deny=1` to decline); [`MockHfProviderBuilder::with_auto_approve`] signs everyone
//! in as one user. Otherwise the authorize endpoint shows a small page listing the users.
//!
//! ```
//! use tower_hf_auth::mock::{MockEndpoint, MockFault, MockHfProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let provider = MockHfProvider::builder()
//!     .with_client_id("my-app")
//!     .add_redirect_uri("http://localhost:3000/login/callback")
//!     .start()
//!     .await?;
//! // Point the app at it the way a Space would be configured.
//! println!("OPENID_PROVIDER_URL={}", provider.issuer());
//! println!("OAUTH_CLIENT_ID={}", provider.client_id());
//!
//! // Later, in a test: make the token endpoint fail.
//! provider.add_fault(MockFault::Status { endpoint: MockEndpoint::Token, status: 503 });
//! assert_eq!(provider.requests(MockEndpoint::Token), 0);
//! # Ok(())
//! # }
//! ```

mod authorize;
mod file;
mod jwt;
mod server;
mod state;
mod token;
mod userinfo;
mod users;
mod util;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

pub use file::MockUsersError;
pub use users::{MockOrg, MockUser};

use crate::clock::{Clock, SystemClock};
use jwt::SigningKey;
use state::{AccessToken, Config, Shared, Strictness, TokenKind};

/// A running offline Hugging Face provider.
///
/// Start one with [`MockHfProvider::start`] or [`MockHfProvider::builder`]. The server
/// runs on the current tokio runtime until the handle is dropped, which stops it and
/// closes its connections.
pub struct MockHfProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl fmt::Debug for MockHfProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHfProvider")
            .field("issuer", &self.shared.config.issuer)
            .field("client_id", &self.shared.config.client_id)
            .field(
                "client_secret",
                &self
                    .shared
                    .config
                    .client_secret
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for MockHfProvider {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

impl MockHfProvider {
    /// A builder, to change the client, users, lifetimes or behaviour.
    pub fn builder() -> MockHfProviderBuilder {
        MockHfProviderBuilder::default()
    }

    /// Starts a provider with the default settings and users (`alice`, `bob`, `carol`).
    ///
    /// # Errors
    /// If no local port can be bound.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// The issuer and discovery base, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.shared.config.issuer.clone()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registered client's id.
    pub fn client_id(&self) -> &str {
        &self.shared.config.client_id
    }

    /// The registered client's secret; `None` for a public client.
    pub fn client_secret(&self) -> Option<&str> {
        self.shared.config.client_secret.as_deref()
    }

    /// Starts misbehaving as `fault` says, until [`clear_faults`](Self::clear_faults).
    /// Several faults can be active at once.
    pub fn add_fault(&self, fault: MockFault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// Replaces the signing key with a new one under a new `kid`: the JWKS serves only
    /// the new key, and ID tokens are signed with it from now on.
    pub fn rotate_keys(&self) {
        let key = Arc::new(SigningKey::generate());
        self.shared.lock().key = key;
    }

    /// How many requests `endpoint` has received, including rejected ones.
    pub fn requests(&self, endpoint: MockEndpoint) -> usize {
        self.shared.requests(endpoint)
    }

    /// Issues a user access token (`hf_…`) with `role` (`read`, `write` or
    /// `fineGrained`), as created on the Hub's settings page. `/api/whoami-v2` accepts
    /// it; `/oauth/userinfo` does not. It never expires but can be revoked.
    ///
    /// # Panics
    /// If `username` is not one of the provider's [`users`](Self::users).
    pub fn issue_user_token(&self, username: &str, role: &str) -> String {
        let kind = TokenKind::User {
            role: role.to_owned(),
            display_name: format!("mock {role} token"),
            org_permissions: Vec::new(),
        };
        self.issue_token("hf_", username, Vec::new(), None, kind)
    }

    /// Issues a fine-grained user access token holding `permissions` in each listed
    /// organization (by name), e.g. `[("acme", &["repo.content.read"])]`: whoami reports
    /// them as `fineGrained.scoped` entries.
    ///
    /// # Panics
    /// If `username` is not one of the provider's [`users`](Self::users).
    pub fn issue_fine_grained_token(&self, username: &str, orgs: &[(&str, &[&str])]) -> String {
        let kind = TokenKind::User {
            role: "fineGrained".to_owned(),
            display_name: "mock fine-grained token".to_owned(),
            org_permissions: orgs
                .iter()
                .map(|(org, perms)| {
                    let perms = perms.iter().map(|p| (*p).to_owned()).collect();
                    ((*org).to_owned(), perms)
                })
                .collect(),
        };
        self.issue_token("hf_", username, Vec::new(), None, kind)
    }

    /// Stores a new access token for `username` and returns it.
    fn issue_token(
        &self,
        prefix: &str,
        username: &str,
        scopes: Vec<String>,
        expires_at: Option<std::time::SystemTime>,
        kind: TokenKind,
    ) -> String {
        let user = self
            .shared
            .config
            .user(username)
            .unwrap_or_else(|| panic!("MockHfProvider has no user {username:?}"));
        let token = AccessToken {
            user,
            scopes,
            expires_at,
            kind,
        };
        let now = self.shared.now();
        self.shared.lock().insert_access_token(prefix, token, now)
    }

    /// Revokes an access, user or refresh token: it stops working everywhere.
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().revoke(token);
    }

    /// Revokes every refresh token issued so far, as when users revoke the app's access
    /// on Hugging Face: refreshing with one answers `invalid_grant`. Access tokens keep
    /// working until they expire.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh_tokens.clear();
    }

    /// How many times a refresh token that was already rotated away was presented
    /// again. Each such request is refused with `invalid_grant`, as a rotating OAuth
    /// server refuses a replayed refresh token; a client that refreshes once per
    /// rotation (single flight, also across replicas) keeps this at 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let provider = tower_hf_auth::mock::MockHfProvider::start().await?;
    /// assert_eq!(provider.reused_refresh_tokens(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reused_refresh_tokens(&self) -> usize {
        self.shared.lock().reused_refresh_tokens
    }

    /// Replaces the user with `user`'s username by `user` (organizations, roles,
    /// restrictions, …), as if they changed on Hugging Face: tokens already issued now
    /// describe the new user. Returns `false` if the mock has no such user.
    pub fn update_user(&self, user: MockUser) -> bool {
        let mut state = self.shared.lock();
        let Some(slot) = state.users.iter_mut().find(|u| u.username == user.username) else {
            return false;
        };
        *slot = user;
        true
    }

    /// The usernames of the provider's users.
    pub fn users(&self) -> Vec<String> {
        self.shared
            .config
            .users
            .iter()
            .map(|u| u.username.clone())
            .collect()
    }

    /// Issues an OAuth access token (`hf_oauth_…`) for `username`, as if they had
    /// signed in and granted `scopes`, expiring after `lifetime` (by the mock's
    /// [clock](MockHfProviderBuilder::with_clock); `Duration::ZERO` issues one that has
    /// already expired). `/oauth/userinfo` and
    /// `/api/whoami-v2` accept it until then; it can be revoked.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_hf_auth::mock::MockHfProvider;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let provider = MockHfProvider::start().await?;
    /// let token = provider.issue_oauth_token("alice", &["openid", "profile"], Duration::from_secs(60));
    /// assert!(token.starts_with("hf_oauth_"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    /// If `username` is not one of the provider's [`users`](Self::users).
    pub fn issue_oauth_token(&self, username: &str, scopes: &[&str], lifetime: Duration) -> String {
        let scopes = scopes.iter().map(|&s| s.to_owned()).collect();
        let expires_at = Some(self.shared.now() + lifetime);
        self.issue_token("hf_oauth_", username, scopes, expires_at, TokenKind::OAuth)
    }
}

/// Settings for a [`MockHfProvider`].
///
/// ```
/// use std::time::Duration;
/// use tower_hf_auth::mock::{MockClientAuth, MockHfProvider, MockUser};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockHfProvider::builder()
///     .with_client_id("space-client")
///     .with_client_secret(Some("s3cret".into()))
///     .with_client_auth(MockClientAuth::Basic)
///     .add_redirect_uri("https://me-my-space.hf.space/login/callback")
///     .add_user(MockUser::new("dora"))
///     .with_token_lifetime(Duration::from_secs(60))
///     .with_auto_approve(Some("dora".into()))
///     .with_refresh_tokens(false)
///     .start()
///     .await?;
/// assert_eq!(provider.users(), ["dora"]);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct MockHfProviderBuilder {
    client_id: String,
    client_secret: Option<String>,
    client_auth: MockClientAuth,
    redirect_uris: Vec<String>,
    users: Vec<MockUser>,
    token_lifetime: Duration,
    id_token_lifetime: Duration,
    auto_approve: Option<String>,
    refresh_tokens: bool,
    strict: Strictness,
    allowed_scopes: Option<Vec<String>>,
    space_host: Option<String>,
    whoami_limit: Option<(u32, Duration)>,
    refresh_lifetime: Option<Duration>,
    refresh_idle_timeout: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl Default for MockHfProviderBuilder {
    fn default() -> Self {
        Self {
            client_id: "mock-client-id".to_owned(),
            client_secret: Some("mock-client-secret".to_owned()),
            client_auth: MockClientAuth::Any,
            redirect_uris: Vec::new(),
            users: Vec::new(),
            token_lifetime: Duration::from_secs(8 * 60 * 60),
            id_token_lifetime: Duration::from_secs(60 * 60),
            auto_approve: None,
            refresh_tokens: true,
            strict: Strictness::default(),
            allowed_scopes: None,
            space_host: None,
            whoami_limit: None,
            refresh_lifetime: None,
            refresh_idle_timeout: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for MockHfProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHfProviderBuilder")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_auth", &self.client_auth)
            .field("redirect_uris", &self.redirect_uris)
            .field("users", &self.users)
            .field("token_lifetime", &self.token_lifetime)
            .field("id_token_lifetime", &self.id_token_lifetime)
            .field("auto_approve", &self.auto_approve)
            .field("refresh_tokens", &self.refresh_tokens)
            .field("strict", &self.strict)
            .field("allowed_scopes", &self.allowed_scopes)
            .field("space_host", &self.space_host)
            .field("whoami_limit", &self.whoami_limit)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("refresh_idle_timeout", &self.refresh_idle_timeout)
            .field("clock", &self.clock)
            .finish()
    }
}

impl MockHfProviderBuilder {
    /// The registered client id. Default: `"mock-client-id"`.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The client secret; `None` registers a public client (PKCE only, no client
    /// authentication). Default: `Some("mock-client-secret")`.
    pub fn with_client_secret(mut self, secret: Option<String>) -> Self {
        self.client_secret = secret;
        self
    }

    /// Which client authentication the token endpoint accepts from a confidential
    /// client. Default: [`MockClientAuth::Any`].
    pub fn with_client_auth(mut self, auth: MockClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Registers a redirect URI. Matching is exact, except that an `http` loopback host
    /// (`localhost`, `127.0.0.1`, `[::1]`) may use any port. Default: none registered,
    /// in which case any `http` loopback URI whose path ends in `/login/callback` is
    /// accepted.
    pub fn add_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds a user. Default: when none is added, `alice` (Alice Liddell, PRO, admin of
    /// `acme` on the `team` plan, reader of `huggingface`), `bob` (no orgs, not PRO) and
    /// `carol` (writer in `acme` and reader of 40 more orgs `org-00`..`org-39`, for
    /// large sessions).
    pub fn add_user(mut self, user: MockUser) -> Self {
        self.users.push(user);
        self
    }

    /// Adds the users of a JSON users file
    /// (`{"users": [{"username": …, "orgs": [{"name": …, "role": …}]}]}`; every field in
    /// the README), for
    /// development and tests with your own users and organizations. The example app
    /// reads the file named by `HF_MOCK_USERS`.
    ///
    /// # Errors
    /// A [`MockUsersError`] naming the file, the field (`users[0].orgs[1].role`) and
    /// what is wrong, when the file cannot be read or used.
    pub fn add_users_from_file(
        mut self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, MockUsersError> {
        self.users.extend(file::read(path.as_ref())?);
        Ok(self)
    }

    /// Adds the users of a users file's JSON text (see
    /// [`add_users_from_file`](Self::add_users_from_file)).
    ///
    /// # Errors
    /// A [`MockUsersError`] naming the field and what is wrong.
    ///
    /// ```
    /// let b = tower_hf_auth::mock::MockHfProvider::builder()
    ///     .add_users_from_json(r#"{"users": [{"username": "dora",
    ///         "orgs": [{"name": "maps", "role": "admin"}]}]}"#)?;
    /// # Ok::<(), tower_hf_auth::mock::MockUsersError>(())
    /// ```
    pub fn add_users_from_json(mut self, json: &str) -> Result<Self, MockUsersError> {
        self.users.extend(file::parse(json, "the users JSON")?);
        Ok(self)
    }

    /// Access token lifetime (`expires_in`). Default: 8 hours.
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// ID token lifetime (`exp - iat`). Default: 1 hour.
    pub fn with_id_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.id_token_lifetime = lifetime;
        self
    }

    /// `Some(username)` makes `/oauth/authorize` sign everyone in as that user at once,
    /// without a page. Default: `None` (show the page, unless the URL has `mock_user`).
    pub fn with_auto_approve(mut self, username: Option<String>) -> Self {
        self.auto_approve = username;
        self
    }

    /// Whether token responses carry a refresh token and `grant_type=refresh_token`
    /// works. Refresh tokens rotate: each works once. Default: `true`.
    pub fn with_refresh_tokens(mut self, enabled: bool) -> Self {
        self.refresh_tokens = enabled;
        self
    }

    /// Checks stricter than huggingface.co's, all at once: RFC 9207 `iss` advertised and
    /// sent on every callback, PKCE required of every client, `openid` required in every
    /// authorize request. Default: off, like huggingface.co, which sends no `iss`, lets
    /// confidential clients skip PKCE (but checks the verifier when a challenge was
    /// sent) and issues no ID token without `openid`. Turn it on in a suite that must
    /// show a client always sends PKCE and `openid` and checks `iss`.
    pub fn strict(self) -> Self {
        self.with_iss_parameter(true)
            .with_pkce_required(true)
            .with_openid_required(true)
    }

    /// Whether discovery advertises `authorization_response_iss_parameter_supported`
    /// and callbacks carry `iss` (RFC 9207). Default: `false`, like huggingface.co.
    pub fn with_iss_parameter(mut self, enabled: bool) -> Self {
        self.strict.iss = enabled;
        self
    }

    /// Whether every client must send a PKCE challenge. Default: `false`: public
    /// clients must, confidential ones may (a challenge sent is always checked), like
    /// huggingface.co.
    pub fn with_pkce_required(mut self, required: bool) -> Self {
        self.strict.pkce = required;
        self
    }

    /// Whether every authorize request must ask for `openid`. Default: `false`: without
    /// it, the token response has no ID token, like huggingface.co.
    pub fn with_openid_required(mut self, required: bool) -> Self {
        self.strict.openid = required;
        self
    }

    /// The scopes this app may ask for, like the scopes of an OAuth app's settings (or a
    /// Space's `hf_oauth_scopes` plus `openid profile`): asking for another one is
    /// answered `invalid_scope` on the way back. Default: any scope.
    pub fn with_allowed_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// A Space's host (`SPACE_HOST`): like huggingface.co for a Space's OAuth app, any
    /// `https://{host}/…` redirect URI is accepted, besides the registered ones.
    /// Default: none.
    pub fn with_space_host(mut self, host: impl Into<String>) -> Self {
        self.space_host = Some(host.into());
        self
    }

    /// Rate-limits `/api/whoami-v2` as huggingface.co does (per IP there; for every
    /// caller here): at most `limit` calls per `window`, then `429` with `Retry-After`
    /// until the window ends. Default: no limit.
    pub fn with_whoami_rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.whoami_limit = Some((limit, window));
        self
    }

    /// How long refresh tokens go on working after a sign-in, however often they are
    /// used: every token of the chain that a code exchange starts (each refresh rotates
    /// to the next) is refused with `invalid_grant` ("refresh token expired") from
    /// `lifetime` after that exchange, so the user must sign in again. Default: no limit.
    /// Hugging Face does not document a refresh-token lifetime; use this to test what
    /// your app does when one ends (the crate ends the session when its access token
    /// expires, and the browser is sent to sign in).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = tower_hf_auth::mock::MockHfProvider::builder()
    ///     .with_refresh_token_lifetime(Duration::from_secs(30 * 24 * 60 * 60));
    /// ```
    pub fn with_refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = Some(lifetime);
        self
    }

    /// A sliding window for refresh tokens: a refresh token not used within `timeout`
    /// of being issued is refused with `invalid_grant` ("refresh token expired"); using
    /// it in time hands out the next token with a new window, so a session refreshed
    /// often enough lives on (up to [`with_refresh_token_lifetime`] if set too).
    /// Default: no idle limit.
    ///
    /// [`with_refresh_token_lifetime`]: Self::with_refresh_token_lifetime
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = tower_hf_auth::mock::MockHfProvider::builder()
    ///     .with_refresh_token_idle_timeout(Duration::from_secs(14 * 24 * 60 * 60));
    /// ```
    pub fn with_refresh_token_idle_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_idle_timeout = Some(timeout);
        self
    }

    /// The clock tokens are issued and expire by: access and refresh token expiry, and
    /// the `iat`, `exp` and `auth_time` of ID tokens. Give the mock the clock you give
    /// the app ([`HfAuthConfigBuilder::with_clock`](crate::HfAuthConfigBuilder::with_clock))
    /// to test expiry without waiting. Authorization codes (60 seconds) and the whoami
    /// rate limit's window always run on real time. Default: the system clock.
    ///
    /// ```
    /// let b = tower_hf_auth::mock::MockHfProvider::builder()
    ///     .with_clock(std::sync::Arc::new(tower_hf_auth::SystemClock));
    /// ```
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// If no local port can be bound, or (`InvalidInput`) if the auto-approve user is not
    /// one of the users.
    pub async fn start(self) -> io::Result<MockHfProvider> {
        let users = if self.users.is_empty() {
            users::default_users()
        } else {
            self.users
        };
        if let Some(name) = &self.auto_approve
            && !users.iter().any(|u| &u.username == name)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("auto-approve user {name:?} is not a mock user"),
            ));
        }
        // A deep accept queue: load tests open a thousand connections at once, and a
        // full queue drops connection attempts until the client times out.
        let socket = TcpSocket::new_v4()?;
        socket.bind((Ipv4Addr::LOCALHOST, 0).into())?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(Config {
            issuer: format!("http://{addr}"),
            client_id: self.client_id,
            client_secret: self.client_secret,
            client_auth: self.client_auth,
            redirect_uris: self.redirect_uris,
            users,
            token_lifetime: self.token_lifetime,
            id_token_lifetime: self.id_token_lifetime,
            auto_approve: self.auto_approve,
            refresh_tokens: self.refresh_tokens,
            strict: self.strict,
            allowed_scopes: self.allowed_scopes,
            space_host: self.space_host,
            whoami_limit: self.whoami_limit,
            refresh_lifetime: self.refresh_lifetime,
            refresh_idle_timeout: self.refresh_idle_timeout,
            clock: self.clock,
        }));
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared)));
        Ok(MockHfProvider { shared, addr, task })
    }
}

/// How a confidential client may authenticate at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockClientAuth {
    /// Only `client_secret_basic` (HTTP Basic).
    Basic,
    /// Only `client_secret_post` (`client_id` and `client_secret` form fields).
    Post,
    /// Either one (but never both in one request).
    #[default]
    Any,
}

/// The provider's endpoints, for [`MockHfProvider::requests`] and per-endpoint faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MockEndpoint {
    /// `GET /.well-known/openid-configuration`
    Discovery,
    /// `GET /oauth/authorize`
    Authorize,
    /// `POST /oauth/token`
    Token,
    /// `GET /oauth/userinfo`
    Userinfo,
    /// `GET /oauth/jwks`
    Jwks,
    /// `GET /api/whoami-v2`
    WhoAmI,
}

impl MockEndpoint {
    const COUNT: usize = 6;

    fn index(self) -> usize {
        match self {
            Self::Discovery => 0,
            Self::Authorize => 1,
            Self::Token => 2,
            Self::Userinfo => 3,
            Self::Jwks => 4,
            Self::WhoAmI => 5,
        }
    }

    fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/.well-known/openid-configuration" => Self::Discovery,
            "/oauth/authorize" => Self::Authorize,
            "/oauth/token" => Self::Token,
            "/oauth/userinfo" => Self::Userinfo,
            "/oauth/jwks" => Self::Jwks,
            "/api/whoami-v2" => Self::WhoAmI,
            _ => return None,
        })
    }
}

/// A way for the provider to misbehave, set with [`MockHfProvider::add_fault`].
///
/// ```
/// use std::time::Duration;
/// use tower_hf_auth::mock::{MockEndpoint, MockFault, MockHfProvider};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockHfProvider::start().await?;
/// provider.add_fault(MockFault::IdTokenExpiredBy(Duration::from_secs(600)));
/// provider.add_fault(MockFault::Delay {
///     endpoint: MockEndpoint::Userinfo,
///     delay: Duration::from_secs(5),
/// });
/// provider.clear_faults();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockFault {
    /// The discovery document reports this issuer.
    DiscoveryIssuer(String),
    /// The `iss` parameter on the redirect back (RFC 9207) is this.
    AuthorizeIss(String),
    /// Authorize redirects back with `error=<this>` (after checking client and redirect
    /// URI, which are never redirected to when wrong).
    AuthorizeError(String),
    /// ID tokens carry this `iss`.
    IdTokenIssuer(String),
    /// ID tokens carry this `aud` (as an array).
    IdTokenAudience(Vec<String>),
    /// ID tokens carry this `azp`.
    IdTokenAzp(String),
    /// ID tokens have valid header and claims but a corrupted signature.
    IdTokenBadSignature,
    /// ID tokens have header `alg: none` and an empty signature.
    IdTokenAlgNone,
    /// ID tokens use `alg: HS256`, keyed with the RSA public key's PEM (the
    /// algorithm-confusion attack).
    IdTokenHs256WithPublicKey,
    /// ID tokens expired this long ago (`exp = now - d`).
    IdTokenExpiredBy(Duration),
    /// ID tokens are issued this far in the future (`iat = now + d`, `exp` after it).
    IdTokenIatInFuture(Duration),
    /// ID tokens carry this `nonce`; `None` leaves it out.
    IdTokenNonce(Option<String>),
    /// ID tokens have no `sub`.
    IdTokenWithoutSub,
    /// ID token headers have no `kid`.
    IdTokenWithoutKid,
    /// ID tokens are signed with a fresh key whose `kid` is not in the JWKS.
    IdTokenUnknownKid,
    /// Token responses have no `id_token`.
    MissingIdToken,
    /// Token responses carry this `token_type`.
    TokenType(String),
    /// Userinfo reports this `sub`.
    UserinfoSub(String),
    /// The endpoint answers with this status and a JSON error body.
    Status {
        /// Where.
        endpoint: MockEndpoint,
        /// The HTTP status (500 if not a valid status code).
        status: u16,
    },
    /// The endpoint sleeps this long before answering.
    Delay {
        /// Where.
        endpoint: MockEndpoint,
        /// How long.
        delay: Duration,
    },
    /// The endpoint's answer is padded to this many bytes (JSON stays valid JSON).
    Oversized {
        /// Where.
        endpoint: MockEndpoint,
        /// The body's size.
        bytes: usize,
    },
    /// The endpoint answers with an HTML page instead of JSON (same status).
    NotJson {
        /// Where.
        endpoint: MockEndpoint,
    },
    /// The endpoint answers `302 Found` to `location`.
    Redirect {
        /// Where.
        endpoint: MockEndpoint,
        /// The `Location` header.
        location: String,
    },
    /// A flaky provider: every `n`-th request to `endpoint`, counted from when the fault
    /// is added, answers `503 Service Unavailable` with a JSON error body (`n` of 0 or 1
    /// fails every request). Which requests fail depends only on their order, so the
    /// number of failures is reproducible.
    FailOneIn {
        /// Where; `None` counts the requests to every endpoint together.
        endpoint: Option<MockEndpoint>,
        /// One request in this many fails.
        n: u32,
    },
}
