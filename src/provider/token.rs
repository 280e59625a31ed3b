//! The token endpoint: client authentication, the request form and the response.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use serde::{Deserialize, Deserializer};
use url::form_urlencoded;

use super::error::ProviderError;
use crate::Secret;
use crate::id_token::printable;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (`client_secret_basic`). The default.
    #[default]
    Basic,
    /// Client id and secret in the request form (`client_secret_post`).
    Post,
    /// A public client: no secret, the client id in the form, PKCE only.
    None,
}

/// A successful token endpoint answer.
#[derive(Clone)]
pub(crate) struct TokenResponse {
    /// The (opaque) access token.
    pub(crate) access_token: Secret,
    /// Always `bearer` (checked case-insensitively).
    pub(crate) token_type: String,
    /// Lifetime of the access token, in seconds.
    pub(crate) expires_in: Option<u64>,
    /// The scopes actually granted (may be fewer than asked).
    pub(crate) scope: Option<String>,
    /// The ID token (a JWT), not yet verified.
    pub(crate) id_token: Option<String>,
    /// A refresh token, when the provider issues one.
    pub(crate) refresh_token: Option<Secret>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Secret,
    token_type: String,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
    scope: Option<String>,
    id_token: Option<String>,
    refresh_token: Option<Secret>,
}

/// Seconds as a JSON number or a numeric string (some servers send `"3600"`).
fn lenient_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(serde_json::Number),
        Text(String),
    }
    let invalid = || serde::de::Error::custom("expires_in must be a number of seconds");
    match Option::<Seconds>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Seconds::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            (None, Some(secs)) if secs.is_finite() && secs >= 0.0 => Ok(Some(secs as u64)),
            _ => Err(invalid()),
        },
        Some(Seconds::Text(text)) => text.trim().parse().map(Some).map_err(|_| invalid()),
    }
}

impl TokenResponse {
    /// Parses and checks a successful token endpoint body.
    pub(crate) fn from_json(
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<Self, ProviderError> {
        let raw: RawTokenResponse = super::http::parse_json("token", body, content_type)?;
        if !raw.token_type.eq_ignore_ascii_case("bearer") {
            return Err(ProviderError::TokenType(printable(&raw.token_type, 40)));
        }
        if raw.access_token.expose().is_empty() {
            return Err(ProviderError::InvalidResponse {
                endpoint: "token",
                reason: "the access_token is empty".to_owned(),
            });
        }
        Ok(Self {
            access_token: raw.access_token,
            token_type: raw.token_type,
            expires_in: raw.expires_in,
            scope: raw.scope,
            id_token: raw.id_token.filter(|t| !t.is_empty()),
            refresh_token: raw.refresh_token.filter(|t| !t.expose().is_empty()),
        })
    }
}

/// `Authorization: Basic` for `client_secret_basic`: id and secret are each
/// form-urlencoded first (RFC 6749 2.3.1), then joined by `:` and base64-encoded.
pub(crate) fn basic_auth_header(client_id: &str, secret: &Secret) -> HeaderValue {
    let id = form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>();
    let secret = form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect::<String>();
    let mut value = HeaderValue::try_from(format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    ))
    .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// The token request body: the grant's `params`, then `client_id`, then the secret for
/// [`ClientAuth::Post`].
pub(crate) fn token_form(
    params: &[(&str, &str)],
    client_id: &str,
    client_auth: ClientAuth,
    secret: Option<&Secret>,
) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params);
    form.append_pair("client_id", client_id);
    if let (ClientAuth::Post, Some(secret)) = (client_auth, secret) {
        form.append_pair("client_secret", secret.expose());
    }
    form.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        let header = basic_auth_header("my client:1", &Secret::new("s3cr:t/+&é"));
        assert!(header.is_sensitive());
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "my+client%3A1:s3cr%3At%2F%2B%26%C3%A9");
        let plain = basic_auth_header("abc", &Secret::new("def"));
        assert_eq!(
            plain.to_str().unwrap(),
            format!("Basic {}", STANDARD.encode("abc:def"))
        );
    }

    #[test]
    fn token_form_carries_client_id_and_secret_only_for_post() {
        let params = [("grant_type", "authorization_code"), ("code", "a b&c")];
        let secret = Secret::new("shh");
        let basic = token_form(&params, "cid", ClientAuth::Basic, Some(&secret));
        assert_eq!(
            basic,
            "grant_type=authorization_code&code=a+b%26c&client_id=cid"
        );
        let post = token_form(&params, "cid", ClientAuth::Post, Some(&secret));
        assert!(post.ends_with("&client_id=cid&client_secret=shh"), "{post}");
        let public = token_form(&params, "cid", ClientAuth::None, Some(&secret));
        assert!(!public.contains("shh"));
    }

    #[test]
    fn token_response_is_parsed_and_redacted() {
        let body = br#"{"access_token":"hf_oauth_abc","token_type":"Bearer","expires_in":"28800",
            "scope":"openid profile","id_token":"eyJ.x.y","refresh_token":"rt_123","extra":1}"#;
        let token = TokenResponse::from_json(body, Some("application/json")).unwrap();
        assert_eq!(token.access_token.expose(), "hf_oauth_abc");
        assert_eq!(token.expires_in, Some(28800));
        assert_eq!(token.scope.as_deref(), Some("openid profile"));
        assert_eq!(token.refresh_token.as_ref().unwrap().expose(), "rt_123");
        let shown = format!("{token:?}");
        for secret in ["hf_oauth_abc", "eyJ", "rt_123"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn token_response_requires_bearer_and_access_token() {
        let mac = br#"{"access_token":"t","token_type":"mac"}"#;
        assert!(matches!(
            TokenResponse::from_json(mac, None),
            Err(ProviderError::TokenType(found)) if found == "mac"
        ));
        let missing = br#"{"token_type":"bearer"}"#;
        let err = TokenResponse::from_json(missing, None).unwrap_err();
        assert!(err.to_string().contains("access_token"), "{err}");
        let empty = br#"{"access_token":"","token_type":"bearer"}"#;
        assert!(TokenResponse::from_json(empty, None).is_err());
        let minimal = br#"{"access_token":"t","token_type":"bearer"}"#;
        let token = TokenResponse::from_json(minimal, None).unwrap();
        assert!(token.id_token.is_none() && token.refresh_token.is_none());
        assert!(token.expires_in.is_none());
    }
}
