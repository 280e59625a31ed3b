//! `/api/whoami-v2`: who a token belongs to, for any kind of Hugging Face token.
//!
//! Its answer is not an OpenID userinfo document: [`WhoAmI::from_json`] maps it onto a
//! [`Profile`] (`id` → `sub`, `name` → `preferred_username`, `fullname` → `name`, the
//! same for each organization) and keeps what it says about the token in
//! [`WhoAmIAuth`]. Parsing is lenient: only `id` is required, a field of an unexpected
//! type counts as absent, and an organization that cannot be read is left out.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::{Map, Value};
use url::Url;

use super::date::parse_rfc3339;
use super::error::ProviderError;
use super::http::parse_json;
use crate::user::{HfOrg, Profile, Scopes};

/// The endpoint name in errors.
pub(crate) const ENDPOINT: &str = "whoami";

/// Who a token belongs to, and what kind of token it is.
pub(crate) struct WhoAmI {
    /// The account type: `"user"` for people; `"org"` for (legacy) organization tokens.
    pub(crate) kind: Option<String>,
    /// The account as a userinfo-shaped profile (not yet normalized).
    pub(crate) profile: Profile,
    /// The token used.
    pub(crate) auth: WhoAmIAuth,
}

impl fmt::Debug for WhoAmI {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhoAmI")
            .field("kind", &self.kind)
            .field("sub", &self.profile.sub)
            .field("username", &self.profile.preferred_username)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// What `/api/whoami-v2` says about the token itself (its `auth` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WhoAmIAuth {
    /// A user access token (`hf_…`), created on the settings page.
    AccessToken {
        /// `read`, `write` or `fineGrained` (or a role this crate does not know).
        role: Option<String>,
        /// Whether the token carries fine-grained permissions.
        fine_grained: bool,
        /// A fine-grained token's permissions per organization (`fineGrained.scoped`
        /// entries whose entity is an org): the org's name and its permission strings.
        org_permissions: Vec<(String, Vec<String>)>,
    },
    /// An OAuth access token (`hf_oauth_…`).
    OAuth {
        /// When it expires, Unix seconds (`expiresAt`).
        expires_at: Option<u64>,
        /// Its scopes, when the provider reports them (`scope`).
        scope: Option<Scopes>,
    },
    /// No `auth` object, or one of another type.
    Other,
}

/// The answer as sent; every field but `id` optional and type-tolerant.
#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    kind: Option<String>,
    id: String,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    fullname: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    email: Option<String>,
    #[serde(default, rename = "emailVerified", deserialize_with = "lenient")]
    email_verified: Option<bool>,
    #[serde(default, rename = "isPro", deserialize_with = "lenient")]
    is_pro: Option<bool>,
    #[serde(default, rename = "canPay", deserialize_with = "lenient")]
    can_pay: Option<bool>,
    #[serde(default, rename = "avatarUrl", deserialize_with = "lenient")]
    avatar_url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    orgs: Option<Vec<Value>>,
    #[serde(default)]
    auth: Option<Value>,
}

/// A value of the wrong type becomes `None` instead of failing the whole answer.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

impl WhoAmI {
    /// Parses an answer; relative URLs (`avatarUrl`) are resolved against `issuer`, a
    /// base URL (ending in `/`).
    ///
    /// # Errors
    /// [`ProviderError::InvalidResponse`] when the body is not JSON or has no `id`.
    pub(crate) fn from_json(
        issuer: &Url,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<Self, ProviderError> {
        let raw: Raw = parse_json(ENDPOINT, body, content_type)?;
        if raw.id.is_empty() {
            return Err(ProviderError::InvalidResponse {
                endpoint: ENDPOINT,
                reason: "the answer has an empty `id`".to_owned(),
            });
        }
        let username = raw.name.unwrap_or_default();
        let profile_url = (!username.is_empty()).then(|| profile_url(issuer, &username));
        let orgs = raw
            .orgs
            .unwrap_or_default()
            .iter()
            .filter_map(|org| org_from_json(issuer, org))
            .collect();
        let profile = Profile {
            sub: raw.id.into(),
            preferred_username: username.into(),
            name: raw.fullname.map(Into::into),
            picture: raw
                .avatar_url
                .and_then(|url| resolve(issuer, &url))
                .map(Into::into),
            profile: profile_url.map(Into::into),
            website: None,
            email_verified: raw.email.as_ref().and(raw.email_verified),
            email: raw.email.map(Into::into),
            is_pro: raw.is_pro.unwrap_or(false),
            can_pay: raw.can_pay,
            orgs,
        };
        Ok(Self {
            kind: raw.kind,
            profile,
            auth: raw.auth.as_ref().map_or(WhoAmIAuth::Other, auth_from_json),
        })
    }
}

/// An organization entry in whoami's shape, read as userinfo's shape. `None` when it
/// has no `id` or `name`.
fn org_from_json(issuer: &Url, org: &Value) -> Option<HfOrg> {
    let org = org.as_object()?;
    let text = |key: &str| org.get(key).and_then(Value::as_str).map(str::to_owned);
    let (id, name) = (text("id")?, text("name")?);
    if id.is_empty() || name.is_empty() {
        return None;
    }
    let mut out = Map::new();
    out.insert("sub".into(), Value::String(id));
    out.insert("preferred_username".into(), Value::String(name));
    let renamed = [
        ("fullname", "name"),
        ("plan", "plan"),
        ("roleInOrg", "roleInOrg"),
    ];
    for (from, to) in renamed {
        if let Some(value) = text(from) {
            out.insert(to.into(), Value::String(value));
        }
    }
    if let Some(picture) = text("avatarUrl").and_then(|url| resolve(issuer, &url)) {
        out.insert("picture".into(), Value::String(picture));
    }
    for flag in ["canPay", "isEnterprise", "pendingSSO", "missingMFA"] {
        if let Some(value) = org.get(flag).and_then(Value::as_bool) {
            out.insert(flag.into(), Value::Bool(value));
        }
    }
    if let Some(list) = org.get("securityRestrictions").and_then(Value::as_array) {
        let list = list.iter().filter(|v| v.is_string()).cloned().collect();
        out.insert("securityRestrictions".into(), Value::Array(list));
    }
    serde_json::from_value(Value::Object(out)).ok()
}

fn auth_from_json(auth: &Value) -> WhoAmIAuth {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    match auth.get("type").and_then(Value::as_str) {
        Some("access_token") => {
            let token = auth.get("accessToken");
            let fine = token.and_then(|t| t.get("fineGrained"));
            WhoAmIAuth::AccessToken {
                role: text(token.and_then(|t| t.get("role"))),
                fine_grained: fine.is_some_and(|f| !f.is_null()),
                org_permissions: fine.map(org_permissions).unwrap_or_default(),
            }
        }
        Some("oauth") => {
            let scope = match auth.get("scope") {
                Some(Value::String(s)) => Some(Scopes::parse(s)),
                Some(Value::Array(list)) => Some(list.iter().filter_map(Value::as_str).collect()),
                _ => None,
            };
            WhoAmIAuth::OAuth {
                expires_at: text(auth.get("expiresAt")).and_then(|at| parse_rfc3339(&at)),
                scope,
            }
        }
        _ => WhoAmIAuth::Other,
    }
}

/// A fine-grained token's per-organization permissions: its `scoped` entries whose
/// entity is an org (`{"entity": {"type": "org", "name": …}, "permissions": […]}`).
fn org_permissions(fine: &Value) -> Vec<(String, Vec<String>)> {
    let Some(scoped) = fine.get("scoped").and_then(Value::as_array) else {
        return Vec::new();
    };
    scoped
        .iter()
        .filter_map(|entry| {
            let entity = entry.get("entity")?;
            if entity.get("type").and_then(Value::as_str) != Some("org") {
                return None;
            }
            let name = entity.get("name").and_then(Value::as_str)?.to_owned();
            let permissions = entry
                .get("permissions")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some((name, permissions))
        })
        .collect()
}

/// `{issuer}/{username}`, the username as one (escaped) path segment.
fn profile_url(issuer: &Url, username: &str) -> String {
    let mut url = issuer.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push(username);
    }
    url.into()
}

/// `url` resolved against the issuer; only `http`/`https` results are kept.
fn resolve(issuer: &Url, url: &str) -> Option<String> {
    let resolved = issuer.join(url).ok()?;
    matches!(resolved.scheme(), "https" | "http").then(|| resolved.into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::OrgRole;

    fn parse(issuer: &str, body: &Value) -> WhoAmI {
        let issuer = Url::parse(issuer).unwrap();
        WhoAmI::from_json(&issuer, body.to_string().as_bytes(), None).unwrap()
    }

    #[test]
    fn user_token_answer_maps_onto_a_profile() {
        let who = parse(
            "https://huggingface.co",
            &json!({
                "type": "user", "id": "0123456789abcdef01234567", "name": "alice",
                "fullname": "Alice Liddell", "email": "a@x.org", "emailVerified": true,
                "isPro": true, "canPay": false, "avatarUrl": "/avatars/a.svg",
                "periodEnd": null, "unknown": {"deep": [1]},
                "orgs": [
                    {"type": "org", "id": "aa", "name": "acme", "fullname": "ACME Corp",
                     "avatarUrl": "https://cdn.example/acme.png", "roleInOrg": "admin",
                     "plan": "team", "isEnterprise": false},
                    {"type": "org", "id": "bb", "name": "corp", "isEnterprise": true,
                     "roleInOrg": "owner", "avatarUrl": "javascript:alert(1)"},
                    {"type": "org", "name": "no-id"},
                    "not an object"
                ],
                "auth": {"type": "access_token",
                         "accessToken": {"displayName": "ci", "role": "write"}}
            }),
        );
        assert_eq!(who.kind.as_deref(), Some("user"));
        let p = &who.profile;
        assert_eq!(p.sub, "0123456789abcdef01234567");
        assert_eq!(p.preferred_username, "alice");
        assert_eq!(p.name.as_deref(), Some("Alice Liddell"));
        assert_eq!(
            p.picture.as_deref(),
            Some("https://huggingface.co/avatars/a.svg")
        );
        assert_eq!(p.profile.as_deref(), Some("https://huggingface.co/alice"));
        assert_eq!(p.email.as_deref(), Some("a@x.org"));
        assert_eq!(p.email_verified, Some(true));
        assert!(p.is_pro);
        assert_eq!(p.orgs.len(), 2, "unreadable orgs are left out");
        assert_eq!(p.orgs[0].id(), "aa");
        assert_eq!(p.orgs[0].name(), "acme");
        assert_eq!(p.orgs[0].full_name(), Some("ACME Corp"));
        assert_eq!(p.orgs[0].role(), Some(OrgRole::Admin));
        assert_eq!(p.orgs[0].plan(), Some("team"));
        assert_eq!(p.orgs[0].avatar_url(), Some("https://cdn.example/acme.png"));
        assert_eq!(p.orgs[1].role(), None, "unknown role grants nothing");
        assert_eq!(p.orgs[1].avatar_url(), None, "only http(s) URLs are kept");
        assert_eq!(
            who.auth,
            WhoAmIAuth::AccessToken {
                role: Some("write".into()),
                fine_grained: false,
                org_permissions: Vec::new()
            }
        );
    }

    #[test]
    fn oauth_answer_keeps_expiry_and_scope() {
        let who = parse(
            "http://127.0.0.1:9/",
            &json!({"id": "x", "name": "bob", "orgs": null, "isPro": "yes",
                    "auth": {"type": "oauth", "expiresAt": "2023-11-14T22:13:20.000Z",
                             "scope": "openid profile read-repos"}}),
        );
        assert!(
            !who.profile.is_pro,
            "a wrongly typed field counts as absent"
        );
        assert!(who.profile.orgs.is_empty());
        assert_eq!(
            who.auth,
            WhoAmIAuth::OAuth {
                expires_at: Some(1_700_000_000),
                scope: Some(Scopes::parse("openid profile read-repos")),
            }
        );
        let who = parse(
            "http://127.0.0.1:9",
            &json!({"id": "x", "auth": {"type": "oauth", "expiresAt": "soon"}}),
        );
        assert_eq!(
            who.auth,
            WhoAmIAuth::OAuth {
                expires_at: None,
                scope: None
            }
        );
    }

    #[test]
    fn fine_grained_tokens_are_recognised() {
        let who = parse(
            "https://huggingface.co",
            &json!({"id": "x", "name": "c", "auth": {"type": "access_token",
                "accessToken": {"role": "fineGrained", "fineGrained": {"global": []}}}}),
        );
        assert_eq!(
            who.auth,
            WhoAmIAuth::AccessToken {
                role: Some("fineGrained".into()),
                fine_grained: true,
                org_permissions: Vec::new()
            }
        );
        let who = parse("https://huggingface.co", &json!({"id": "x"}));
        assert_eq!(who.auth, WhoAmIAuth::Other);
    }

    #[test]
    fn answer_without_id_is_invalid_and_not_quoted() {
        let issuer = Url::parse("https://huggingface.co").unwrap();
        let body = br#"{"name": "hf_secret_value"}"#;
        let err = WhoAmI::from_json(&issuer, body, None).unwrap_err();
        assert!(err.to_string().contains("missing field `id`"), "{err}");
        assert!(!err.to_string().contains("hf_secret_value"), "{err}");
        let err = WhoAmI::from_json(&issuer, br#"{"id": ""}"#, None).unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidResponse { .. }),
            "{err}"
        );
    }
}
