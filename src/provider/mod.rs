//! The OpenID provider client: the one place that talks HTTP to Hugging Face.
//!
//! [`Provider`] does discovery, token exchange and refresh, userinfo and ID token
//! verification with a cached, rotating key set, and asks `/api/whoami-v2` who a token
//! belongs to. Every call:
//!
//! - has a connect timeout and a total timeout (default 10 s each);
//! - follows no redirect: a 3xx answer is [`ProviderError::Redirect`];
//! - reads the body with a hard cap (default 1 MiB), checking `Content-Length` first and
//!   stopping as soon as the streamed body passes the cap;
//! - turns failures into a [`ProviderError`] that names the endpoint and never contains
//!   tokens, codes, secrets or response bodies; a 429 or 503 answer keeps its
//!   `Retry-After` ([`ProviderError::retry_after`]).
//!
//! Discovery fetches `{issuer}/.well-known/openid-configuration` lazily, once: a success
//! is cached for the provider's lifetime, a failure is not (the next call retries), and
//! concurrent first calls share one fetch. The document's `issuer` must equal the
//! configured one (ignoring one trailing slash) and every URL in it must be `https`, or
//! `http` on a loopback host, so a local provider works and a real one cannot be
//! downgraded.
//!
//! The key set (JWKS) is fetched lazily and cached. When an ID token names a key the
//! cache lacks (rotation), the key set is fetched again: one fetch for all concurrent
//! callers, and not more often than the configured minimum interval.

mod date;
mod discovery;
mod error;
pub(crate) mod http;
mod token;
mod whoami;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use ::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use ::http::{HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub(crate) use self::discovery::{ProviderMetadata, is_loopback, issuers_match};
pub(crate) use self::error::ProviderError;
pub use self::token::ClientAuth;
pub(crate) use self::token::TokenResponse;
pub(crate) use self::whoami::{WhoAmI, WhoAmIAuth};
use crate::Secret;
use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::id_token::{self, Expectations, IdTokenClaims, IdTokenError, KeySet};

/// Default connect timeout and total timeout of one provider call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap on a provider response body.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Default minimum time between two key set fetches.
const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

/// Default allowed clock skew for ID token `exp` and `iat`.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Everything [`Provider`] needs to know: plain data, checked once when made.
#[derive(Debug, Clone)]
pub(crate) struct ProviderSettings {
    /// The configured issuer, such as `https://huggingface.co` (one trailing slash is
    /// tolerated).
    pub(crate) issuer: String,
    /// The issuer, parsed and checked by [`ProviderSettings::new`].
    issuer_url: url::Url,
    /// The OAuth client id.
    pub(crate) client_id: String,
    /// The client secret (none for public clients).
    pub(crate) client_secret: Option<Secret>,
    /// How the client authenticates at the token endpoint. Default [`ClientAuth::Basic`].
    pub(crate) client_auth: ClientAuth,
    /// Time allowed to connect. Default 10 s.
    pub(crate) connect_timeout: Duration,
    /// Time allowed for one whole call, body included. Default 10 s.
    pub(crate) timeout: Duration,
    /// Largest response body read. Default 1 MiB.
    pub(crate) max_response_bytes: usize,
    /// Minimum time between two key set fetches. Default 10 s.
    pub(crate) jwks_min_refresh_interval: Duration,
    /// Allowed clock skew for ID token `exp` and `iat`. Default 60 s.
    pub(crate) leeway: Duration,
    /// The clock ID token expiry is checked against.
    pub(crate) clock: Arc<dyn Clock>,
}

impl ProviderSettings {
    /// Settings with the defaults: Basic client authentication (set a secret, or choose
    /// [`ClientAuth::None`]), 10 s timeouts, a 1 MiB body cap, key set re-fetches at most
    /// every 10 s, 60 s leeway, the system clock.
    ///
    /// # Errors
    /// [`ProviderError::InvalidUrl`] / [`ProviderError::InsecureUrl`] for an issuer that
    /// is not an absolute `https` URL (or `http` on a loopback host) without
    /// credentials, query or fragment: the one check of the configured issuer.
    pub(crate) fn new(issuer: &str, client_id: impl Into<String>) -> Result<Self, ProviderError> {
        let issuer_url = discovery::check_issuer(issuer)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            issuer_url,
            client_id: client_id.into(),
            client_secret: None,
            client_auth: ClientAuth::default(),
            connect_timeout: DEFAULT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            jwks_min_refresh_interval: DEFAULT_JWKS_MIN_REFRESH,
            leeway: DEFAULT_LEEWAY,
            clock: Arc::new(SystemClock),
        })
    }
}

/// The provider client. Cheap to share behind an `Arc`; all caches are internal.
pub(crate) struct Provider {
    settings: ProviderSettings,
    /// The HTTP client, or why it could not be built (then every call fails with it).
    http: Result<reqwest::Client, ProviderError>,
    discovery_url: url::Url,
    /// The issuer as a base URL (ending in `/`), for whoami's relative URLs.
    issuer_base: url::Url,
    /// `{issuer}/api/whoami-v2`.
    whoami_url: url::Url,
    metadata: OnceLock<Arc<ProviderMetadata>>,
    /// Held while discovery runs; keeps the last failure for callers that waited on it.
    metadata_fetch: Mutex<Option<ProviderError>>,
    /// Completed discovery attempts.
    metadata_attempts: AtomicU64,
    jwks: RwLock<Option<Arc<KeySet>>>,
    /// Held while the key set is fetched.
    jwks_fetch: Mutex<JwksFetchState>,
    /// Completed key set fetch attempts.
    jwks_generation: AtomicU64,
}

#[derive(Debug, Default)]
struct JwksFetchState {
    last_attempt: Option<Instant>,
    last_error: Option<ProviderError>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self
            .jwks
            .read()
            .map_or(None, |keys| keys.as_ref().map(|k| k.len()));
        f.debug_struct("Provider")
            .field("issuer", &self.settings.issuer)
            .field("client_id", &self.settings.client_id)
            .field("client_auth", &self.settings.client_auth)
            .field("discovered", &self.metadata.get().is_some())
            .field("cached_keys", &keys)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds the HTTP client (timeouts, no redirects, no cookies; no proxy for a
    /// loopback issuer). The settings were checked when they were made. If the client
    /// cannot be built (the TLS backend failed to start), the error is logged and every
    /// call to the provider fails with it, so sign-in pages say so.
    pub(crate) fn new(settings: ProviderSettings) -> Self {
        let discovery_url = discovery::discovery_url(&settings.issuer_url);
        let mut issuer_base = settings.issuer_url.clone();
        if !issuer_base.path().ends_with('/') {
            let path = format!("{}/", issuer_base.path());
            issuer_base.set_path(&path);
        }
        let mut whoami_url = issuer_base.clone();
        whoami_url.set_path(&format!("{}api/whoami-v2", issuer_base.path()));
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tower-hf-auth/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&settings.issuer_url) {
            // A proxy cannot reach the machine's own loopback interface.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| ProviderError::HttpClient {
            source: Arc::new(e),
        });
        if let Err(e) = &http {
            tracing::error!(error = %e, "sign-in with Hugging Face cannot work");
        }
        Self {
            settings,
            http,
            discovery_url,
            issuer_base,
            whoami_url,
            metadata: OnceLock::new(),
            metadata_fetch: Mutex::new(None),
            metadata_attempts: AtomicU64::new(0),
            jwks: RwLock::new(None),
            jwks_fetch: Mutex::new(JwksFetchState::default()),
            jwks_generation: AtomicU64::new(0),
        }
    }

    /// The HTTP client, or the error that kept it from being built.
    fn http(&self) -> Result<&reqwest::Client, ProviderError> {
        self.http.as_ref().map_err(Clone::clone)
    }

    /// The discovery document, fetched on first use and then cached.
    ///
    /// A failure is not cached: the next call tries again. Callers that arrive while a
    /// fetch runs wait for it and share its outcome.
    ///
    /// # Errors
    /// Transport failures, a bad document, [`ProviderError::IssuerMismatch`], or an
    /// endpoint that is not `https` on a non-loopback host.
    pub(crate) async fn metadata(&self) -> Result<Arc<ProviderMetadata>, ProviderError> {
        if let Some(metadata) = self.metadata.get() {
            return Ok(metadata.clone());
        }
        let seen = self.metadata_attempts.load(Ordering::Acquire);
        let mut last_error = self.metadata_fetch.lock().await;
        if let Some(metadata) = self.metadata.get() {
            return Ok(metadata.clone());
        }
        if self.metadata_attempts.load(Ordering::Acquire) != seen {
            // A fetch finished (and failed) while this call waited: share its outcome
            // rather than hammering a provider that is down.
            if let Some(err) = last_error.as_ref() {
                return Err(err.clone());
            }
        }
        let result = self.fetch_metadata().await;
        self.metadata_attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(metadata) => {
                let metadata = self.metadata.get_or_init(|| Arc::new(metadata)).clone();
                *last_error = None;
                Ok(metadata)
            }
            Err(err) => {
                tracing::warn!(error = %err, "OpenID discovery failed");
                *last_error = Some(err.clone());
                Err(err)
            }
        }
    }

    async fn fetch_metadata(&self) -> Result<ProviderMetadata, ProviderError> {
        let fetched = self
            .get_json("discovery", self.http()?.get(self.discovery_url.clone()))
            .await?;
        let metadata = ProviderMetadata::from_json(&self.settings.issuer, &fetched.body)?;
        metadata.warn_about_gaps(self.settings.client_auth);
        Ok(metadata)
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    ///
    /// # Errors
    /// Transport failures, [`ProviderError::OAuth`] (such as `invalid_grant`),
    /// [`ProviderError::TokenType`], or an unusable response.
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    /// Uses a refresh token. The provider may rotate it: keep the new one when the
    /// response has one. Callers must make refreshes of one session single-flight.
    ///
    /// # Errors
    /// As [`Provider::exchange_code`]; `invalid_grant` means the user must sign in again.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ])
        .await
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<TokenResponse, ProviderError> {
        let metadata = self.metadata().await?;
        let settings = &self.settings;
        let body = token::token_form(
            params,
            &settings.client_id,
            settings.client_auth,
            settings.client_secret.as_ref(),
        );
        let mut request = self
            .http()?
            .post(metadata.token_endpoint.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let (ClientAuth::Basic, Some(secret)) =
            (settings.client_auth, settings.client_secret.as_ref())
        {
            request = request.header(
                AUTHORIZATION,
                token::basic_auth_header(&settings.client_id, secret),
            );
        }
        let fetched = http::fetch("token", request, settings.max_response_bytes).await?;
        if !fetched.status.is_success() {
            return Err(http::error_for_status("token", &fetched));
        }
        TokenResponse::from_json(&fetched.body, fetched.content_type.as_deref())
    }

    /// Reads the userinfo endpoint with an access token.
    ///
    /// # Errors
    /// [`ProviderError::Unauthorized`] when the provider refuses the token (401),
    /// otherwise transport failures, OAuth errors or an unusable response.
    pub(crate) async fn userinfo<T: DeserializeOwned>(
        &self,
        access_token: &Secret,
    ) -> Result<T, ProviderError> {
        const ENDPOINT: &str = "userinfo";
        let metadata = self.metadata().await?;
        let fetched = self
            .get_with_bearer(ENDPOINT, metadata.userinfo_endpoint.clone(), access_token)
            .await?;
        http::parse_json(ENDPOINT, &fetched.body, fetched.content_type.as_deref())
    }

    /// GETs `url` with `Authorization: Bearer <token>`: a 401 is
    /// [`ProviderError::Unauthorized`], any other non-success status an error.
    async fn get_with_bearer(
        &self,
        endpoint: &'static str,
        url: url::Url,
        token: &Secret,
    ) -> Result<http::Fetched, ProviderError> {
        let Ok(mut bearer) = HeaderValue::try_from(format!("Bearer {}", token.expose())) else {
            // Characters no header can carry: no provider would accept this token.
            return Err(ProviderError::Unauthorized { endpoint });
        };
        bearer.set_sensitive(true);
        let request = self
            .http()?
            .get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, bearer);
        let fetched = http::fetch(endpoint, request, self.settings.max_response_bytes).await?;
        if fetched.status == StatusCode::UNAUTHORIZED {
            return Err(ProviderError::Unauthorized { endpoint });
        }
        if !fetched.status.is_success() {
            return Err(http::error_for_status(endpoint, &fetched));
        }
        Ok(fetched)
    }

    /// Asks `{issuer}/api/whoami-v2` who `token` belongs to. Unlike userinfo it accepts
    /// every kind of Hugging Face token (OAuth and user access tokens), but it is
    /// strictly rate limited: cache its answers. No discovery is needed.
    ///
    /// # Errors
    /// [`ProviderError::Unauthorized`] when the provider refuses the token (401),
    /// otherwise transport failures, error statuses (with `Retry-After` for 429/503) or
    /// an unusable response.
    pub(crate) async fn whoami(&self, token: &Secret) -> Result<WhoAmI, ProviderError> {
        const ENDPOINT: &str = whoami::ENDPOINT;
        let fetched = self
            .get_with_bearer(ENDPOINT, self.whoami_url.clone(), token)
            .await?;
        WhoAmI::from_json(
            &self.issuer_base,
            &fetched.body,
            fetched.content_type.as_deref(),
        )
    }

    /// Verifies an ID token from this provider against the login's nonce.
    ///
    /// An unknown signing key triggers one (rate-limited, single-flight) key set
    /// re-fetch before the token is rejected.
    ///
    /// # Errors
    /// [`ProviderError::IdToken`] when the token is rejected; discovery or key set
    /// failures as they are.
    pub(crate) async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<IdTokenClaims, ProviderError> {
        let metadata = self.metadata().await?;
        let expect = Expectations {
            issuer: &metadata.issuer,
            client_id: &self.settings.client_id,
            nonce,
            leeway: self.settings.leeway,
            now: unix_seconds(&*self.settings.clock),
        };
        let (mut seen, cached) = self.cached_keys();
        let keys = match cached {
            Some(keys) => keys,
            None => {
                let keys = self.refresh_keys(&metadata, seen).await?;
                // Keys fetched just now count as the latest: an unknown kid below is
                // then subject to the re-fetch interval.
                seen = self.cached_keys().0;
                keys.unwrap_or_default()
            }
        };
        match id_token::verify(id_token, &keys, &expect) {
            Err(err @ (IdTokenError::UnknownKid(_) | IdTokenError::NoMatchingKey)) => {
                match self.refresh_keys(&metadata, seen).await? {
                    Some(fresh) => Ok(id_token::verify(id_token, &fresh, &expect)?),
                    None => {
                        tracing::debug!("key set re-fetch skipped: fetched too recently");
                        Err(err.into())
                    }
                }
            }
            result => Ok(result?),
        }
    }

    /// The cached key set and the fetch generation it belongs to.
    fn cached_keys(&self) -> (u64, Option<Arc<KeySet>>) {
        let generation = self.jwks_generation.load(Ordering::Acquire);
        let keys = self.jwks.read().map_or(None, |keys| keys.clone());
        (generation, keys)
    }

    /// Fetches the key set unless another caller did since generation `seen` (then
    /// its outcome is shared) or the last fetch is more recent than the minimum
    /// interval while keys are cached (then `Ok(None)`).
    async fn refresh_keys(
        &self,
        metadata: &ProviderMetadata,
        seen: u64,
    ) -> Result<Option<Arc<KeySet>>, ProviderError> {
        let mut state = self.jwks_fetch.lock().await;
        let (generation, cached) = self.cached_keys();
        if generation != seen {
            return match (&state.last_error, cached) {
                (Some(err), _) => Err(err.clone()),
                (None, keys) => Ok(keys),
            };
        }
        let recent = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.settings.jwks_min_refresh_interval);
        if cached.is_some() && recent {
            return Ok(None);
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_keys(metadata).await;
        let outcome = match result {
            Ok(keys) => {
                let keys = Arc::new(keys);
                if let Ok(mut slot) = self.jwks.write() {
                    *slot = Some(keys.clone());
                }
                state.last_error = None;
                Ok(Some(keys))
            }
            Err(err) => {
                tracing::warn!(error = %err, "fetching the provider's key set failed");
                state.last_error = Some(err.clone());
                Err(err)
            }
        };
        self.jwks_generation.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    async fn fetch_keys(&self, metadata: &ProviderMetadata) -> Result<KeySet, ProviderError> {
        let fetched = self
            .get_json("jwks", self.http()?.get(metadata.jwks_uri.clone()))
            .await?;
        let keys =
            KeySet::from_jwks_json(&fetched.body).map_err(|e| ProviderError::InvalidResponse {
                endpoint: "jwks",
                reason: e.to_string(),
            })?;
        if keys.is_empty() {
            tracing::warn!("the provider's key set holds no RS256 signing key");
        }
        Ok(keys)
    }

    /// A GET expecting a successful JSON answer.
    async fn get_json(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<http::Fetched, ProviderError> {
        let request = request.header(ACCEPT, "application/json");
        let fetched = http::fetch(endpoint, request, self.settings.max_response_bytes).await?;
        if !fetched.status.is_success() {
            return Err(http::error_for_status(endpoint, &fetched));
        }
        Ok(fetched)
    }
}

#[cfg(test)]
mod tests;
