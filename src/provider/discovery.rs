//! OpenID discovery: the provider's metadata document and the URL rules it must follow.

use std::net::IpAddr;

use serde::Deserialize;
use url::{Host, Url};

use super::error::ProviderError;
use super::token::ClientAuth;
use crate::id_token::printable;

/// Where the discovery document lives, relative to the issuer.
const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The parts of the provider's discovery document the crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderMetadata {
    /// The issuer exactly as the document gives it: ID tokens' `iss` must equal it.
    pub(crate) issuer: String,
    /// Where the browser is sent to sign in.
    pub(crate) authorization_endpoint: Url,
    /// Where codes and refresh tokens are exchanged.
    pub(crate) token_endpoint: Url,
    /// Where the user's profile is read with an access token.
    pub(crate) userinfo_endpoint: Url,
    /// The provider's signing keys.
    pub(crate) jwks_uri: Url,
    /// Scopes the provider knows (informational: unknown scopes are never rejected).
    #[allow(dead_code, reason = "informational, offered to configuration checks")]
    pub(crate) scopes_supported: Vec<String>,
    /// PKCE methods (Hugging Face: `S256`).
    pub(crate) code_challenge_methods_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub(crate) token_endpoint_auth_methods_supported: Vec<String>,
    /// ID token signing algorithms (Hugging Face: `RS256`).
    pub(crate) id_token_signing_alg_values_supported: Vec<String>,
    /// Whether the callback carries an `iss` parameter (RFC 9207) to check.
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    scopes_supported: Option<Vec<String>>,
    code_challenge_methods_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    id_token_signing_alg_values_supported: Option<Vec<String>>,
    authorization_response_iss_parameter_supported: Option<bool>,
}

impl ProviderMetadata {
    /// Validates a parsed discovery document against the configured issuer.
    fn from_raw(configured_issuer: &str, raw: RawMetadata) -> Result<Self, ProviderError> {
        if !issuers_match(configured_issuer, &raw.issuer) {
            return Err(ProviderError::IssuerMismatch {
                expected: configured_issuer.to_owned(),
                found: printable(&raw.issuer, 200),
            });
        }
        check_provider_url(&raw.issuer)?;
        Ok(Self {
            authorization_endpoint: check_provider_url(&raw.authorization_endpoint)?,
            token_endpoint: check_provider_url(&raw.token_endpoint)?,
            userinfo_endpoint: check_provider_url(&raw.userinfo_endpoint)?,
            jwks_uri: check_provider_url(&raw.jwks_uri)?,
            issuer: raw.issuer,
            scopes_supported: raw.scopes_supported.unwrap_or_default(),
            code_challenge_methods_supported: raw
                .code_challenge_methods_supported
                .unwrap_or_default(),
            token_endpoint_auth_methods_supported: raw
                .token_endpoint_auth_methods_supported
                .unwrap_or_default(),
            id_token_signing_alg_values_supported: raw
                .id_token_signing_alg_values_supported
                .unwrap_or_default(),
            authorization_response_iss_parameter_supported: raw
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
        })
    }

    /// Logs a warning for each capability this crate relies on that the provider does
    /// not list (an empty list means "not said", so it is not warned about).
    pub(crate) fn warn_about_gaps(&self, client_auth: ClientAuth) {
        let lacks = |list: &[String], wanted: &str| {
            !list.is_empty() && !list.iter().any(|item| item == wanted)
        };
        if lacks(&self.code_challenge_methods_supported, "S256") {
            tracing::warn!("the provider does not list PKCE method S256, which this crate uses");
        }
        if lacks(&self.id_token_signing_alg_values_supported, "RS256") {
            tracing::warn!("the provider does not list RS256 for ID tokens, the only one accepted");
        }
        let method = match client_auth {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
            ClientAuth::None => "none",
        };
        if lacks(&self.token_endpoint_auth_methods_supported, method) {
            tracing::warn!(
                method,
                "the provider does not list the configured client authentication method"
            );
        }
    }

    /// Parses and validates a discovery document.
    pub(crate) fn from_json(configured_issuer: &str, body: &[u8]) -> Result<Self, ProviderError> {
        let raw: RawMetadata = super::http::parse_json("discovery", body, None)?;
        Self::from_raw(configured_issuer, raw)
    }
}

/// Whether two issuer strings are the same, ignoring one trailing slash on either.
pub(crate) fn issuers_match(a: &str, b: &str) -> bool {
    trim_one_slash(a) == trim_one_slash(b)
}

fn trim_one_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

/// The discovery URL for a checked issuer: `{issuer}/.well-known/openid-configuration`.
pub(crate) fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!("{}{WELL_KNOWN}", trim_one_slash(issuer.path()));
    url.set_path(&path);
    url
}

/// Checks the configured issuer: an absolute `https` URL (or `http` on a loopback host)
/// without credentials, query or fragment.
pub(crate) fn check_issuer(issuer: &str) -> Result<Url, ProviderError> {
    let url = check_provider_url(issuer)?;
    if url.query().is_some() {
        return Err(ProviderError::InvalidUrl {
            url: display_url(&url),
            reason: "an issuer URL has no query",
        });
    }
    Ok(url)
}

/// Checks a provider URL: absolute, `https` (or `http` on a loopback host), without
/// credentials or fragment.
pub(crate) fn check_provider_url(raw: &str) -> Result<Url, ProviderError> {
    let url = Url::parse(raw).map_err(|_| ProviderError::InvalidUrl {
        url: printable(raw, 200),
        reason: "not an absolute URL",
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ProviderError::InvalidUrl {
            url: display_url(&url),
            reason: "provider URLs must not contain credentials",
        });
    }
    if url.fragment().is_some() {
        return Err(ProviderError::InvalidUrl {
            url: display_url(&url),
            reason: "provider URLs have no fragment",
        });
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ProviderError::InsecureUrl {
            url: display_url(&url),
        }),
        _ => Err(ProviderError::InvalidUrl {
            url: display_url(&url),
            reason: "provider URLs must be https",
        }),
    }
}

/// `url` for a message: credentials removed, control characters impossible (URLs are
/// percent-encoded), length bounded.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    printable(shown.as_str(), 200)
}

/// Whether the URL's host is a loopback host: `localhost`, `127.0.0.0/8` or `[::1]`
/// (also an IPv4-mapped loopback address).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => {
            let domain = domain.strip_suffix('.').unwrap_or(domain);
            domain.eq_ignore_ascii_case("localhost")
        }
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(issuer: &str, base: &str) -> String {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "jwks_uri": format!("{base}/oauth/jwks"),
            "scopes_supported": ["openid", "profile", "email", "some-future-scope"],
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            "unknown_field": {"ignored": true},
        })
        .to_string()
    }

    #[test]
    fn issuer_comparison_ignores_one_trailing_slash() {
        assert!(issuers_match(
            "https://huggingface.co",
            "https://huggingface.co"
        ));
        assert!(issuers_match(
            "https://huggingface.co/",
            "https://huggingface.co"
        ));
        assert!(issuers_match(
            "https://huggingface.co",
            "https://huggingface.co/"
        ));
        assert!(!issuers_match(
            "https://huggingface.co",
            "https://huggingface.co//"
        ));
        assert!(!issuers_match(
            "https://huggingface.co",
            "https://huggingface.com"
        ));
        assert!(!issuers_match(
            "https://huggingface.co",
            "http://huggingface.co"
        ));
    }

    #[test]
    fn discovery_url_is_under_the_issuer() {
        assert_eq!(
            discovery_url(&Url::parse("https://huggingface.co/").unwrap()).as_str(),
            "https://huggingface.co/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url(&Url::parse("http://127.0.0.1:8080/tenant").unwrap()).as_str(),
            "http://127.0.0.1:8080/tenant/.well-known/openid-configuration"
        );
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://localhost:1234",
            "http://LOCALHOST",
            "http://localhost.:80/x",
            "http://127.0.0.1:7860",
            "http://127.8.9.10",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://huggingface.co",
            "http://localhost.evil.example",
            "http://evil-localhost",
            "http://128.0.0.1",
            "http://10.0.0.1",
            "http://[::2]",
            "http://0.0.0.0",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn provider_urls_must_be_https_unless_loopback() {
        assert!(check_provider_url("https://huggingface.co/oauth/token").is_ok());
        assert!(check_provider_url("http://127.0.0.1:9999/oauth/token").is_ok());
        assert!(check_provider_url("http://localhost/oauth/token").is_ok());
        let err = check_provider_url("http://huggingface.co/oauth/token").unwrap_err();
        assert!(matches!(err, ProviderError::InsecureUrl { .. }));
        assert!(
            err.to_string()
                .contains("http://huggingface.co/oauth/token"),
            "{err}"
        );
        for bad in [
            "ftp://huggingface.co",
            "/oauth/token",
            "https://user:pass@huggingface.co",
            "https://huggingface.co/#frag",
        ] {
            let err = check_provider_url(bad).unwrap_err();
            assert!(matches!(err, ProviderError::InvalidUrl { .. }), "{bad}");
            assert!(!err.to_string().contains("pass@"), "{err}");
        }
        assert!(check_issuer("https://huggingface.co?x=1").is_err());
    }

    #[test]
    fn metadata_is_read_and_checked() {
        let meta = ProviderMetadata::from_json(
            "https://huggingface.co/",
            doc("https://huggingface.co", "https://huggingface.co").as_bytes(),
        )
        .unwrap();
        assert_eq!(meta.issuer, "https://huggingface.co");
        assert_eq!(
            meta.token_endpoint.as_str(),
            "https://huggingface.co/oauth/token"
        );
        assert!(
            meta.scopes_supported
                .iter()
                .any(|s| s == "some-future-scope")
        );
        assert!(!meta.authorization_response_iss_parameter_supported);
    }

    #[test]
    fn metadata_with_other_issuer_is_rejected() {
        let err = ProviderMetadata::from_json(
            "https://huggingface.co",
            doc("https://evil.example", "https://huggingface.co").as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, ProviderError::IssuerMismatch { .. }), "{err}");
    }

    #[test]
    fn metadata_cannot_downgrade_endpoints_to_http() {
        let err = ProviderMetadata::from_json(
            "https://huggingface.co",
            doc("https://huggingface.co", "http://huggingface.co").as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, ProviderError::InsecureUrl { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("http://huggingface.co/oauth/authorize")
        );
        // A local provider may use http throughout.
        let local = "http://127.0.0.1:4444";
        assert!(ProviderMetadata::from_json(local, doc(local, local).as_bytes()).is_ok());
    }

    #[test]
    fn metadata_missing_endpoints_or_not_json_is_invalid() {
        let err = ProviderMetadata::from_json(
            "https://huggingface.co",
            br#"{"issuer":"https://huggingface.co"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidResponse { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("missing field"), "{err}");
        let err =
            ProviderMetadata::from_json("https://huggingface.co", b"<html>hi</html>").unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidResponse { .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("<html>"));
    }
}
