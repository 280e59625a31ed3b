//! [`ProviderError`]: what can go wrong talking to the provider.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::id_token::IdTokenError;

/// The source of a transport failure (DNS, TCP, TLS, HTTP protocol).
pub(crate) type TransportSource = Arc<dyn StdError + Send + Sync + 'static>;

/// A failure talking to the OpenID provider (Hugging Face).
///
/// `endpoint` fields name the endpoint involved: `"discovery"`, `"token"`, `"userinfo"`,
/// `"jwks"` or `"whoami"` (`/api/whoami-v2`). Messages never contain tokens, codes, secrets or response bodies; an
/// OAuth error's description is shortened and stripped of control characters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub(crate) enum ProviderError {
    /// A provider URL (configured, or from the discovery document) cannot be used.
    InvalidUrl {
        /// The URL, without any credentials.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A provider URL uses plain `http` for a host that is not a loopback host.
    InsecureUrl {
        /// The URL.
        url: String,
    },
    /// The HTTP client could not be built.
    HttpClient {
        /// The underlying error.
        source: TransportSource,
    },
    /// The provider could not be reached (DNS, refused connection, TLS handshake).
    Connect {
        /// The endpoint.
        endpoint: &'static str,
        /// The underlying error.
        source: TransportSource,
    },
    /// The call did not complete within its connect or total timeout.
    Timeout {
        /// The endpoint.
        endpoint: &'static str,
    },
    /// Another transport failure (connection reset, malformed HTTP).
    Transport {
        /// The endpoint.
        endpoint: &'static str,
        /// The underlying error.
        source: TransportSource,
    },
    /// The provider answered with a redirect, which is never followed.
    Redirect {
        /// The endpoint.
        endpoint: &'static str,
        /// The 3xx status.
        status: StatusCode,
    },
    /// The provider answered with an unexpected status and no OAuth error.
    Status {
        /// The endpoint.
        endpoint: &'static str,
        /// The status.
        status: StatusCode,
        /// How long the provider asked to wait (`Retry-After` of a 429 or 503).
        retry_after: Option<Duration>,
    },
    /// The provider refused the access token (401 from the userinfo or whoami endpoint).
    Unauthorized {
        /// The endpoint.
        endpoint: &'static str,
    },
    /// The response body is larger than the configured limit.
    ResponseTooLarge {
        /// The endpoint.
        endpoint: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The response is not JSON, or lacks something required.
    InvalidResponse {
        /// The endpoint.
        endpoint: &'static str,
        /// What is wrong (never the body itself).
        reason: String,
    },
    /// The provider answered with an OAuth error (`{"error": "invalid_grant", ...}`).
    OAuth {
        /// The endpoint.
        endpoint: &'static str,
        /// The HTTP status.
        status: StatusCode,
        /// The OAuth error code, such as `invalid_grant`.
        error: String,
        /// The provider's `error_description`, shortened, control characters removed.
        description: Option<String>,
        /// How long the provider asked to wait (`Retry-After` of a 429 or 503).
        retry_after: Option<Duration>,
    },
    /// The token response's `token_type` is not `bearer`.
    TokenType(String),
    /// The discovery document names another issuer than the configured one.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The discovery document's issuer.
        found: String,
    },
    /// The ID token was rejected.
    IdToken(IdTokenError),
}

impl ProviderError {
    /// Whether the call failed because the provider did not answer in time.
    #[must_use]
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Whether the provider refused the token it was given (401).
    #[must_use]
    pub(crate) fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }

    /// Whether the provider answered with this OAuth error code (such as `invalid_grant`,
    /// which means the user must sign in again).
    #[must_use]
    pub(crate) fn is_oauth_error(&self, code: &str) -> bool {
        matches!(self, Self::OAuth { error, .. } if error == code)
    }

    /// How long the provider asked callers to wait before trying again: the
    /// `Retry-After` header of a `429 Too Many Requests` or `503 Service Unavailable`
    /// answer (delay-seconds or an HTTP date, capped at a day).
    #[must_use]
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } | Self::OAuth { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the provider answered with, when it answered.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Redirect { status, .. }
            | Self::Status { status, .. }
            | Self::OAuth { status, .. } => Some(*status),
            Self::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }

    /// A short, stable name of what went wrong, for spans and metrics (`error.type`).
    pub(crate) fn kind_code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } | Self::InsecureUrl { .. } => "invalid_url",
            Self::HttpClient { .. } => "http_client",
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Redirect { .. } => "redirect",
            Self::Status { .. } => "status",
            Self::Unauthorized { .. } => "unauthorized",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::OAuth { .. } => "oauth_error",
            Self::TokenType(_) => "token_type",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::IdToken(_) => "id_token",
        }
    }

    /// The status to answer with when this error ends a request: 504 for timeouts, 503
    /// when the provider is unreachable or overloaded (connect failures, 5xx, 429), 500
    /// for local misconfiguration and 502 for answers that cannot be used.
    pub(crate) fn status_hint(&self) -> StatusCode {
        let unavailable = |status: &StatusCode| {
            status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
        };
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Status { status, .. } | Self::OAuth { status, .. } if unavailable(status) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::OAuth { error, .. } if error == "temporarily_unavailable" => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::HttpClient { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { url, reason } => {
                write!(f, "the provider URL `{url}` cannot be used: {reason}")
            }
            Self::InsecureUrl { url } => write!(
                f,
                "the provider URL `{url}` is not https; plain http is accepted only for a \
                 loopback host (localhost, 127.0.0.0/8, [::1])"
            ),
            Self::HttpClient { .. } => f.write_str("cannot build the HTTP client for the provider"),
            Self::Connect { endpoint, .. } => {
                write!(f, "cannot connect to the provider's {endpoint} endpoint")
            }
            Self::Timeout { endpoint } => {
                write!(
                    f,
                    "the provider's {endpoint} endpoint did not answer in time"
                )
            }
            Self::Transport { endpoint, .. } => {
                write!(f, "the call to the provider's {endpoint} endpoint failed")
            }
            Self::Redirect { endpoint, status } => write!(
                f,
                "the provider's {endpoint} endpoint answered with a redirect ({status}), \
                 which is not followed; check the provider URL"
            ),
            Self::Status {
                endpoint,
                status,
                retry_after,
            } => {
                write!(
                    f,
                    "the provider's {endpoint} endpoint answered with unexpected status {status}"
                )?;
                write_retry_after(f, *retry_after)
            }
            Self::Unauthorized { endpoint } => write!(
                f,
                "the provider's {endpoint} endpoint did not accept the access token (401)"
            ),
            Self::ResponseTooLarge { endpoint, limit } => write!(
                f,
                "the provider's {endpoint} response is larger than the {limit}-byte limit"
            ),
            Self::InvalidResponse { endpoint, reason } => write!(
                f,
                "the provider's {endpoint} endpoint sent an unusable response: {reason}"
            ),
            Self::OAuth {
                endpoint,
                status,
                error,
                description,
                retry_after,
            } => {
                write!(
                    f,
                    "the provider's {endpoint} endpoint refused the request ({status}): {error}"
                )?;
                if let Some(description) = description {
                    write!(f, " ({description})")?;
                }
                write_retry_after(f, *retry_after)
            }
            Self::TokenType(found) => write!(
                f,
                "the provider issued a \"{found}\" token; only bearer tokens are supported"
            ),
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "the provider's discovery document names issuer `{found}`, \
                 but the configured issuer is `{expected}`"
            ),
            Self::IdToken(err) => write!(f, "the provider's ID token was rejected: {err}"),
        }
    }
}

fn write_retry_after(f: &mut fmt::Formatter<'_>, retry_after: Option<Duration>) -> fmt::Result {
    match retry_after {
        Some(delay) => write!(f, "; retry after {} s", delay.as_secs()),
        None => Ok(()),
    }
}

impl StdError for ProviderError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::HttpClient { source }
            | Self::Connect { source, .. }
            | Self::Transport { source, .. } => Some(&**source),
            Self::IdToken(err) => Some(err),
            _ => None,
        }
    }
}

impl From<IdTokenError> for ProviderError {
    fn from(err: IdTokenError) -> Self {
        Self::IdToken(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_hints_separate_timeouts_outages_and_bad_answers() {
        let timeout = ProviderError::Timeout { endpoint: "token" };
        assert!(timeout.is_timeout());
        assert_eq!(timeout.status_hint(), StatusCode::GATEWAY_TIMEOUT);
        let overloaded = ProviderError::Status {
            endpoint: "token",
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(overloaded.status_hint(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(overloaded.retry_after(), Some(Duration::from_secs(30)));
        assert!(
            overloaded.to_string().ends_with("; retry after 30 s"),
            "{overloaded}"
        );
        let down = ProviderError::OAuth {
            endpoint: "token",
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "server_error".into(),
            description: None,
            retry_after: None,
        };
        assert_eq!(down.status_hint(), StatusCode::SERVICE_UNAVAILABLE);
        let grant = ProviderError::OAuth {
            endpoint: "token",
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant".into(),
            description: Some("expired".into()),
            retry_after: None,
        };
        assert!(grant.is_oauth_error("invalid_grant"));
        assert_eq!(grant.status_hint(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            grant.to_string(),
            "the provider's token endpoint refused the request (400 Bad Request): \
             invalid_grant (expired)"
        );
        let bad = ProviderError::IdToken(IdTokenError::BadSignature);
        assert_eq!(bad.status_hint(), StatusCode::BAD_GATEWAY);
        assert!(bad.source().is_some());
    }

    #[test]
    fn issuer_mismatch_shows_both_issuers() {
        let err = ProviderError::IssuerMismatch {
            expected: "https://huggingface.co".into(),
            found: "https://evil.example".into(),
        };
        let shown = err.to_string();
        assert!(shown.contains("https://huggingface.co"), "{shown}");
        assert!(shown.contains("https://evil.example"), "{shown}");
    }
}
