//! How a denial or an error becomes a response: one place decides who is asking
//! ([`Caller`]) and answers in their protocol.
//!
//! | caller | how it is recognized | not signed in | error |
//! |---|---|---|---|
//! | gRPC | `content-type: application/grpc…` | HTTP 200, `grpc-status: 16` | `grpc-status` 3, 7, 13 or 14 |
//! | browser | a `GET`/`HEAD` navigation accepting `text/html` | redirect to sign-in | a small HTML page with a retry link |
//! | API | everything else | 401 + `WWW-Authenticate: Bearer` + JSON | JSON `{"error", "error_description"}` |

mod denial;
mod frame;
mod page;

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

/// Who is asking, which decides the shape of a denial or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// A browser navigating: gets redirects and HTML pages.
    Browser,
    /// A program: gets status codes, `WWW-Authenticate` and JSON.
    Api,
    /// A gRPC client: gets `grpc-status` codes.
    Grpc,
}

impl Caller {
    /// Classifies a request by its method and headers.
    pub fn of<B>(req: &Request<B>) -> Self {
        Self::of_parts(req.method(), req.headers())
    }

    /// Classifies a request by its method and headers, when only those are at hand.
    pub fn of_parts(method: &Method, headers: &http::HeaderMap) -> Self {
        // Case-insensitive, without allocating: this runs on every request that a
        // layer or guard must classify.
        let has = |name, needle: &str| {
            headers.get_all(name).iter().any(|v| {
                v.as_bytes()
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
            })
        };
        let grpc = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if grpc {
            Self::Grpc
        } else if matches!(*method, Method::GET | Method::HEAD) && has(header::ACCEPT, "text/html")
        {
            Self::Browser
        } else {
            Self::Api
        }
    }
}

/// What kind of error or denial an [`AuthError`] is: match on it instead of on
/// [`AuthError::code`] strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// Nobody is signed in (`401`, gRPC 16).
    Unauthenticated,
    /// A scope the route needs was not granted (`403`).
    InsufficientScope,
    /// The user is not in the organization, or their role there is too low; also a
    /// sign-in refused because the app is restricted to organizations (`403`).
    OrgRequired,
    /// The user is in the organization but has not met its security restrictions
    /// (SSO, two-factor authentication, allowed networks, token policy) (`403`).
    OrgRestricted,
    /// A [`RequireUser`](crate::RequireUser) condition is false (`403`).
    Forbidden,
    /// A malformed sign-in response, such as a repeated parameter or no code (`400`).
    InvalidRequest,
    /// The sign-in `state` is missing, malformed, unknown to this browser, does not
    /// match, or was already used (`400`).
    InvalidState,
    /// The sign-in took longer than 10 minutes (`400`).
    ExpiredState,
    /// The sign-in response names another issuer, or none where one is required (`400`).
    IssuerMismatch,
    /// The user cancelled on Hugging Face, or it refused the sign-in (`403`).
    AccessDenied,
    /// The provider's answer could not be used, or it could not be reached (`502`,
    /// `503` or `500`).
    ProviderError,
    /// The provider did not answer in time (`504`).
    ProviderTimeout,
    /// The provider could not check a bearer token right now (`503`, with `Retry-After`).
    ProviderUnavailable,
    /// The token response has no ID token although `openid` was asked for (`502`).
    InvalidTokenResponse,
    /// Userinfo describes another user than the ID token (`502`).
    SubjectMismatch,
    /// The session does not fit in cookies (`500`).
    SessionTooLarge,
    /// Another site asked to sign the user out (`403`).
    CrossSiteLogout,
    /// A state-changing request another site started was refused by the
    /// [cross-origin protection](crate::cross_origin) (`403`).
    CrossOriginRequest,
    /// The route does not answer this method (`405`).
    MethodNotAllowed,
    /// A guard or extractor runs without [`HfAuthLayer`](crate::HfAuthLayer) around it (`500`).
    MissingLayer,
    /// The server-side session store did not answer, or is full (`503`, with
    /// `Retry-After`; gRPC 14). Nobody is signed out: the request can be retried.
    StoreUnavailable,
}

impl AuthErrorKind {
    /// The stable, machine-readable code sent in JSON bodies (`"error"`).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::InsufficientScope => "insufficient_scope",
            Self::OrgRequired => "org_required",
            Self::OrgRestricted => "org_restricted",
            Self::Forbidden => "forbidden",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidState => "invalid_state",
            Self::ExpiredState => "expired_state",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AccessDenied => "access_denied",
            Self::ProviderError => "provider_error",
            Self::ProviderTimeout => "provider_timeout",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::InvalidTokenResponse => "invalid_token_response",
            Self::SubjectMismatch => "subject_mismatch",
            Self::SessionTooLarge => "session_too_large",
            Self::CrossSiteLogout => "cross_site_logout",
            Self::CrossOriginRequest => "cross_origin_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingLayer => "missing_layer",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    /// The status this kind is usually answered with (provider errors may differ).
    fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope
            | Self::OrgRequired
            | Self::OrgRestricted
            | Self::Forbidden
            | Self::AccessDenied
            | Self::CrossSiteLogout
            | Self::CrossOriginRequest => StatusCode::FORBIDDEN,
            Self::InvalidRequest
            | Self::InvalidState
            | Self::ExpiredState
            | Self::IssuerMismatch => StatusCode::BAD_REQUEST,
            Self::ProviderError | Self::InvalidTokenResponse | Self::SubjectMismatch => {
                StatusCode::BAD_GATEWAY
            }
            Self::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ProviderUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::SessionTooLarge | Self::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What went wrong on an auth route or in a guard, put into the response's extensions
/// so outer layers (logging, metrics) can see it. It never holds a secret.
///
/// ```
/// use tower_hf_auth::{AuthError, AuthErrorKind};
///
/// fn log_denial(res: &http::Response<()>) {
///     if let Some(err) = res.extensions().get::<AuthError>() {
///         match err.kind() {
///             AuthErrorKind::ProviderTimeout | AuthErrorKind::ProviderError => {
///                 eprintln!("Hugging Face trouble: {err}");
///             }
///             _ => {}
///         }
///     }
/// }
/// # log_denial(&http::Response::new(()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    status: StatusCode,
    message: String,
}

impl AuthError {
    /// An error of `kind`, answered with the kind's usual status.
    pub(crate) fn new(kind: AuthErrorKind, message: impl Into<String>) -> Self {
        Self::with_status(kind, kind.status(), message)
    }

    /// An error of `kind` answered with `status`.
    pub(crate) fn with_status(
        kind: AuthErrorKind,
        status: StatusCode,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            status,
            message: message.into(),
        }
    }

    /// What kind of error it is.
    #[must_use]
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The HTTP status the error was answered with (for gRPC callers, the one it maps from).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A stable, machine-readable code such as `invalid_state` or `provider_timeout`
    /// (the [`kind`](Self::kind)'s code).
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// A human-readable explanation.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for AuthError {}

/// The response body of the crate's own answers.
pub(crate) type Body = Full<Bytes>;

pub(crate) use denial::{
    CONNECTED_APPS, Denial, OrgShortfall, deny, login_href, missing_layer, restriction_advice,
};
#[cfg(feature = "tonic")]
pub(crate) use denial::{missing_layer_error, not_signed_in_message};
pub(crate) use frame::{own_page, top_level_escape};
pub(crate) use page::html_escape;

fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        401 => 16,
        403 => 7,
        400..=499 => 3,
        503 | 504 => 14,
        _ => 13,
    }
}

/// Percent-encodes a `grpc-message` as the gRPC spec asks.
fn grpc_message(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn base(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A redirect (`303 See Other`) to `location`, which the caller has made header-safe.
pub(crate) fn redirect(location: &str) -> Response<Body> {
    let mut res = base(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Bytes::new(),
    );
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    res
}

/// `503` with `Retry-After`: the provider could not say whether a token is good (rate
/// limited or down). Never "invalid token".
pub(crate) fn unavailable(
    caller: Caller,
    retry_after: Option<std::time::Duration>,
) -> Response<Body> {
    let secs = retry_after.map_or(5, |d| d.as_secs().clamp(1, 3600));
    let err = AuthError::new(
        AuthErrorKind::ProviderUnavailable,
        "Hugging Face could not check the access token right now; try again shortly.",
    );
    let mut res = error(caller, err, None);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// `response` with `cookies` appended as `Set-Cookie` headers.
pub(crate) fn with_cookies(
    mut response: Response<Body>,
    cookies: Vec<HeaderValue>,
) -> Response<Body> {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// An error answered in the caller's protocol: an HTML page with an optional retry
/// link, JSON, or a gRPC status. `AuthError` goes into the extensions.
pub(crate) fn error(caller: Caller, err: AuthError, retry: Option<&str>) -> Response<Body> {
    let mut res = match caller {
        Caller::Grpc => {
            let mut res = base(StatusCode::OK, "application/grpc", Bytes::new());
            let h = res.headers_mut();
            h.insert(
                "grpc-status",
                HeaderValue::from(u16::from(grpc_code(err.status))),
            );
            if let Ok(v) = HeaderValue::from_str(&grpc_message(&err.message)) {
                h.insert("grpc-message", v);
            }
            res
        }
        Caller::Api => {
            let body = serde_json::json!({
                "error": err.code(),
                "error_description": err.message,
            });
            base(err.status, "application/json", body.to_string())
        }
        Caller::Browser => base(
            err.status,
            "text/html; charset=utf-8",
            page::error_page(&err, retry),
        ),
    };
    // The store comes back by itself: say when to try again.
    if err.kind == AuthErrorKind::StoreUnavailable {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(STORE_RETRY_AFTER));
    }
    res.extensions_mut().insert(err);
    res
}

/// Seconds a client waits before retrying when the session store did not answer.
const STORE_RETRY_AFTER: u16 = 1;

/// The answer to a request whose session could not be read because the session store
/// did not answer: nobody is signed out, the request can be retried.
pub(crate) fn store_unavailable(caller: Caller) -> Response<Body> {
    let err = AuthError::new(
        AuthErrorKind::StoreUnavailable,
        "Your session cannot be read right now (the session store is not answering); \
         you are still signed in. Try again in a moment.",
    );
    error(caller, err, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&'static str, &'static str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn callers_are_classified() {
        let html = ("accept", "text/html,application/xhtml+xml");
        assert_eq!(Caller::of(&req(Method::GET, &[html])), Caller::Browser);
        assert_eq!(Caller::of(&req(Method::HEAD, &[html])), Caller::Browser);
        assert_eq!(Caller::of(&req(Method::POST, &[html])), Caller::Api);
        assert_eq!(Caller::of(&req(Method::GET, &[])), Caller::Api);
        assert_eq!(
            Caller::of(&req(Method::GET, &[("accept", "Text/HTML;q=0.9")])),
            Caller::Browser,
            "media types are case-insensitive"
        );
        assert_eq!(
            Caller::of(&req(Method::GET, &[("accept", "text/htm")])),
            Caller::Api
        );
        assert_eq!(
            Caller::of(&req(Method::GET, &[("accept", "application/json")])),
            Caller::Api
        );
        assert_eq!(
            Caller::of(&req(
                Method::POST,
                &[("content-type", "application/grpc+proto")]
            )),
            Caller::Grpc
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let err = AuthError::new(AuthErrorKind::InvalidRequest, "<script>alert(1)</script>");
        let res = error(Caller::Browser, err, Some("/login?return_to=\"><x"));
        let body = format!("{:?}", res.body());
        assert!(!body.contains("<script>"), "{body}");
        assert!(res.extensions().get::<AuthError>().is_some());
    }

    #[test]
    fn grpc_errors_are_trailers_only_statuses() {
        let err = AuthError::new(AuthErrorKind::Unauthenticated, "sign in: ünïcode");
        let res = error(Caller::Grpc, err, None);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()["grpc-message"], "sign in: %C3%BCn%C3%AFcode");
    }
}
