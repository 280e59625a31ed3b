//! Cross-origin protection: the layer refuses state-changing requests that a browser
//! says another site started, when they carry the session cookie.
//!
//! Modelled on Go 1.25's `net/http.CrossOriginProtection` (Filippo Valsorda's design,
//! which needs no token and no form field):
//!
//! 1. `GET`, `HEAD`, `OPTIONS` (and any method other than `POST`, `PUT`, `PATCH`,
//!    `DELETE`) pass: they must not change state.
//! 2. A request without the session cookie, or with an `Authorization` header (bearer
//!    tokens: a page on another site cannot add one without a CORS preflight), passes:
//!    there is no ambient authority to abuse.
//! 3. A path the app exempted ([`add_cross_origin_bypass`]) passes.
//! 4. `Sec-Fetch-Site` (sent by every current browser): `same-origin` and `none` (the
//!    user typed the URL or used a bookmark) pass; `same-site` and `cross-site` are
//!    refused unless `Origin` is a trusted origin ([`add_trusted_origin`]).
//! 5. Without `Sec-Fetch-Site`: no `Origin` passes (not a browser, or a browser too old
//!    to send either header); an `Origin` equal to the public URL's origin, or trusted,
//!    passes; any other `Origin` is refused.
//!
//! A refusal is a `403` with the error code `cross_origin_request`. Go compares
//! `Origin` with the request's `Host`; this crate compares it with the configured public
//! URL, since behind a TLS proxy (as on Spaces) the request's own scheme and host cannot
//! be trusted. It matters most on Spaces, where iframe cookies are `SameSite=None` and
//! the browser sends them with requests any site starts. Turn it off only with
//! [`insecure_without_cross_origin_protection`].
//!
//! ```
//! let config = tower_hf_auth::HfAuthConfig::builder()
//!     .with_client_id("id")
//!     .with_public_url("https://app.example")
//!     .add_trusted_origin("https://admin.example")
//!     .add_cross_origin_bypass("/webhooks/*")
//!     .build()?;
//! # Ok::<(), tower_hf_auth::ConfigError>(())
//! ```
//!
//! [`add_cross_origin_bypass`]: crate::HfAuthConfigBuilder::add_cross_origin_bypass
//! [`add_trusted_origin`]: crate::HfAuthConfigBuilder::add_trusted_origin
//! [`insecure_without_cross_origin_protection`]: crate::HfAuthConfigBuilder::insecure_without_cross_origin_protection

use http::{HeaderMap, Method, header};

/// The checked settings of cross-origin protection.
#[derive(Debug, Clone, Default)]
pub(crate) struct CrossOriginSettings {
    pub(crate) enabled: bool,
    /// `scheme://host[:port]` of the public URL.
    pub(crate) public_origin: String,
    /// Origins, `scheme://host[:port]`, whose requests pass.
    pub(crate) trusted: Vec<String>,
    /// Exact paths, or prefixes when they end in `/*` (stored without the `*`).
    pub(crate) bypass: Vec<Bypass>,
}

/// A path exempted from the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bypass {
    Exact(String),
    Prefix(String),
}

impl Bypass {
    /// `/path` exactly, or `/path/*` for everything under `/path/`.
    pub(crate) fn parse(pattern: &str) -> Option<Self> {
        if !pattern.starts_with('/') || pattern.contains(['?', '#']) {
            return None;
        }
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => Some(Self::Prefix(prefix.to_owned())),
            Some(_) => None,
            None if pattern.contains('*') => None,
            None => Some(Self::Exact(pattern.to_owned())),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// `scheme://host[:port]` of an absolute URL, in the form browsers send as `Origin`
/// (default ports left out); `None` when it is not an http(s) URL.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Why a request was refused, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `Sec-Fetch-Site: cross-site` or `same-site`.
    FetchSite,
    /// `Origin` is neither the app's nor trusted.
    Origin,
}

impl CrossOriginSettings {
    /// Whether a request with `method`, `path` and `headers` may go on;
    /// `has_session` says whether it carries the session cookie (asked only for
    /// state-changing requests, so safe ones cost one comparison).
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        has_session: impl FnOnce() -> bool,
    ) -> Result<(), Refusal> {
        let state_changing = matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        if !self.enabled
            || !state_changing
            || headers.contains_key(header::AUTHORIZATION)
            || !has_session()
            || self.bypass.iter().any(|b| b.matches(path))
        {
            return Ok(());
        }
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let trusted = origin.is_some_and(|o| self.trusted.iter().any(|t| t == o));
        match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
            Some(b"same-origin" | b"none") => Ok(()),
            Some(_) if trusted => Ok(()),
            Some(_) => Err(Refusal::FetchSite),
            None => match origin {
                None => Ok(()),
                Some(o) if o == self.public_origin || trusted => Ok(()),
                Some(_) => Err(Refusal::Origin),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn settings() -> CrossOriginSettings {
        CrossOriginSettings {
            enabled: true,
            public_origin: "https://app.example".into(),
            trusted: vec!["https://admin.example".into()],
            bypass: vec![
                Bypass::parse("/hook").unwrap(),
                Bypass::parse("/api/public/*").unwrap(),
            ],
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn check(method: Method, path: &str, pairs: &[(&'static str, &'static str)]) -> bool {
        settings()
            .check(&method, path, &headers(pairs), || true)
            .is_ok()
    }

    #[test]
    fn cross_site_posts_with_a_session_are_refused() {
        let cross = [("sec-fetch-site", "cross-site")];
        assert!(!check(Method::POST, "/x", &cross));
        assert!(!check(Method::DELETE, "/x", &cross));
        assert!(!check(
            Method::POST,
            "/x",
            &[("sec-fetch-site", "same-site")]
        ));
        assert!(
            settings()
                .check(&Method::POST, "/x", &headers(&cross), || false)
                .is_ok(),
            "no session cookie, nothing to abuse"
        );
    }

    #[test]
    fn same_origin_direct_and_safe_requests_pass() {
        assert!(check(
            Method::POST,
            "/x",
            &[("sec-fetch-site", "same-origin")]
        ));
        assert!(check(Method::POST, "/x", &[("sec-fetch-site", "none")]));
        assert!(check(
            Method::GET,
            "/x",
            &[("sec-fetch-site", "cross-site")]
        ));
        assert!(check(
            Method::OPTIONS,
            "/x",
            &[("sec-fetch-site", "cross-site")]
        ));
    }

    #[test]
    fn origin_decides_without_sec_fetch_site() {
        assert!(check(Method::POST, "/x", &[]), "not a browser");
        assert!(check(
            Method::POST,
            "/x",
            &[("origin", "https://app.example")]
        ));
        assert!(!check(
            Method::POST,
            "/x",
            &[("origin", "https://evil.example")]
        ));
        assert!(!check(Method::POST, "/x", &[("origin", "null")]));
        assert!(!check(
            Method::POST,
            "/x",
            &[("origin", "http://app.example")]
        ));
    }

    #[test]
    fn trusted_origins_bypasses_and_bearer_requests_pass() {
        let trusted = [
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://admin.example"),
        ];
        assert!(check(Method::POST, "/x", &trusted));
        let cross = [("sec-fetch-site", "cross-site")];
        assert!(check(Method::POST, "/hook", &cross));
        assert!(!check(Method::POST, "/hook/more", &cross));
        assert!(check(Method::POST, "/api/public/a/b", &cross));
        let bearer = [
            ("sec-fetch-site", "cross-site"),
            ("authorization", "Bearer hf_x"),
        ];
        assert!(check(Method::POST, "/x", &bearer));
    }

    #[test]
    fn bypass_patterns_are_checked() {
        assert_eq!(Bypass::parse("/a/*"), Some(Bypass::Prefix("/a/".into())));
        for bad in ["a", "/a*", "/a/*/b", "/a?x", "*"] {
            assert_eq!(Bypass::parse(bad), None, "{bad}");
        }
        assert_eq!(
            origin_of("https://app.example:443/path").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }
}
