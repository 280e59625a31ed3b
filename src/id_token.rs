//! ID token verification.
//!
//! An OpenID Connect ID token is a signed JWT that says who signed in. This module checks
//! one without doing any I/O, so every rule is unit-testable; fetching the provider's keys
//! is the job of [`provider`](crate::provider).
//!
//! [`verify`] applies, in this order:
//!
//! 1. **Shape and algorithm**: three base64url parts; the header's `alg` must be exactly
//!    `RS256` (Hugging Face signs with nothing else). `none`, `HS256` (the classic key
//!    confusion attack), lowercase spellings and everything else are refused before any
//!    key is touched. Tokens with `crit` header extensions are refused.
//! 2. **Signature** with the provider's key named by `kid`. A token without `kid` is
//!    tried against every key of the set and accepted if one verifies it.
//! 3. **Claims**: `iss` equals the discovered issuer exactly; `aud` (a string or an
//!    array) contains the client id; with several audiences `azp` must be present, and a
//!    present `azp` must be the client id; `exp` is later than now minus the leeway;
//!    `iat` is not later than now plus the leeway; `nonce` equals the one sent with the
//!    login (constant-time comparison); `sub` is present and non-empty.
//!
//! Unknown claims are ignored. Time comes from the caller (an injectable
//! [`Clock`](crate::Clock)), so expiry is testable without sleeping.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};

/// Longest ID token accepted, in bytes. Real ones are around 1 KiB.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Smallest RSA modulus accepted from a key set, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Longest attacker-influenced string (a `kid`, an `alg`, an issuer) put into an error.
const MAX_ECHO_LEN: usize = 100;

/// Why an ID token was rejected.
///
/// Messages name the failed check; they never contain the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum IdTokenError {
    /// The token is not a well-formed signed JWT, or its claims have the wrong types.
    Malformed(&'static str),
    /// The header's `alg` is not `RS256` (for example `none` or `HS256`).
    UnsupportedAlgorithm(String),
    /// The header names a key (`kid`) that the provider's key set does not hold.
    UnknownKid(String),
    /// The token names no key and no key of the provider's key set verifies it (or the
    /// set holds no usable key).
    NoMatchingKey,
    /// The signature does not verify with the key the token names.
    BadSignature,
    /// A required claim (`iss`, `aud`, `exp` or `iat`) is missing.
    MissingClaim(&'static str),
    /// `iss` is not the provider's issuer.
    Issuer {
        /// The issuer from the provider's discovery document.
        expected: String,
        /// The token's `iss` (shortened, control characters removed).
        found: String,
    },
    /// The token's audience does not contain this client's id.
    Audience,
    /// The authorized party (`azp`) is missing while there are several audiences, or is
    /// not this client.
    Azp,
    /// The token has expired (`exp`), even allowing for the leeway.
    Expired {
        /// The token's `exp`, in Unix seconds.
        exp: u64,
        /// The current time, in Unix seconds.
        now: u64,
    },
    /// The token claims to be issued in the future (`iat`), beyond the leeway.
    IssuedInFuture {
        /// The token's `iat`, in Unix seconds.
        iat: u64,
        /// The current time, in Unix seconds.
        now: u64,
    },
    /// The token's `nonce` differs from the one sent with this login.
    NonceMismatch,
    /// The token has no `nonce`, although one was sent with the login.
    MissingNonce,
    /// The token has no `sub` (or an empty one).
    MissingSub,
}

impl fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => write!(f, "the ID token is malformed: {reason}"),
            Self::UnsupportedAlgorithm(alg) => write!(
                f,
                "the ID token is signed with algorithm \"{alg}\"; only RS256 is accepted"
            ),
            Self::UnknownKid(kid) => write!(
                f,
                "the ID token names signing key \"{kid}\", which is not in the provider's key set"
            ),
            Self::NoMatchingKey => {
                f.write_str("no key in the provider's key set verifies the ID token's signature")
            }
            Self::BadSignature => f.write_str("the ID token's signature is invalid"),
            Self::MissingClaim(claim) => {
                write!(f, "the ID token lacks the required \"{claim}\" claim")
            }
            Self::Issuer { expected, found } => write!(
                f,
                "the ID token was issued by \"{found}\", expected \"{expected}\""
            ),
            Self::Audience => f.write_str("the ID token's audience does not include this client"),
            Self::Azp => f.write_str(
                "the ID token's authorized party (azp) is missing or is not this client",
            ),
            Self::Expired { exp, now } => write!(
                f,
                "the ID token expired (exp {exp}, now {now}); check the server's clock if this persists"
            ),
            Self::IssuedInFuture { iat, now } => write!(
                f,
                "the ID token is issued in the future (iat {iat}, now {now}); check the server's clock"
            ),
            Self::NonceMismatch => {
                f.write_str("the ID token's nonce does not match the one sent with this login")
            }
            Self::MissingNonce => f.write_str("the ID token has no nonce"),
            Self::MissingSub => f.write_str("the ID token has no subject (sub)"),
        }
    }
}

impl std::error::Error for IdTokenError {}

/// What a valid ID token must say, and when "now" is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expectations<'a> {
    /// The issuer string exactly as the discovery document gives it.
    pub(crate) issuer: &'a str,
    /// This client's id: must be in `aud`.
    pub(crate) client_id: &'a str,
    /// The nonce sent with the login. An empty expected nonce matches nothing.
    pub(crate) nonce: &'a str,
    /// Allowed clock skew for `exp` and `iat`.
    pub(crate) leeway: Duration,
    /// The current time, in Unix seconds.
    pub(crate) now: u64,
}

/// The claims of a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "the whole standard claim set is offered to the session layer; not every claim is read"
)]
pub(crate) struct IdTokenClaims {
    /// Issuer.
    pub(crate) iss: String,
    /// Subject: the stable user id.
    pub(crate) sub: String,
    /// Audiences (a single string in the token becomes one element).
    pub(crate) aud: Vec<String>,
    /// Authorized party.
    pub(crate) azp: Option<String>,
    /// Expiry, Unix seconds.
    pub(crate) exp: u64,
    /// Issued at, Unix seconds.
    pub(crate) iat: u64,
    /// When the user authenticated, Unix seconds.
    pub(crate) auth_time: Option<u64>,
    /// The login's nonce.
    pub(crate) nonce: Option<String>,
    /// Full name.
    pub(crate) name: Option<String>,
    /// Username.
    pub(crate) preferred_username: Option<String>,
    /// Avatar URL.
    pub(crate) picture: Option<String>,
    /// Profile URL.
    pub(crate) profile: Option<String>,
    /// Website (may be empty).
    pub(crate) website: Option<String>,
    /// Email address (with the `email` scope).
    pub(crate) email: Option<String>,
    /// Whether the email address is verified.
    pub(crate) email_verified: Option<bool>,
}

/// The provider's signing keys, built from its JWKS document.
///
/// Only usable RS256 signing keys are kept: `kty` `RSA`, `use` absent or `sig`, `alg`
/// absent or `RS256`, a modulus of at least 2048 bits. Other keys are skipped, not errors,
/// so a provider can publish keys of other kinds next to them.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "kids",
                &self.keys.iter().map(|(kid, _)| kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A JWKS document that is not a JSON object with a `keys` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidJwks(pub(crate) &'static str);

impl fmt::Display for InvalidJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidJwks {}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the usable RS256 keys.
    ///
    /// # Errors
    /// When the document is not JSON or has no `keys` array. Individual unusable keys
    /// are skipped.
    pub(crate) fn from_jwks_json(json: &[u8]) -> Result<Self, InvalidJwks> {
        let doc: serde_json::Value =
            serde_json::from_slice(json).map_err(|_| InvalidJwks("the key set is not JSON"))?;
        let entries = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or(InvalidJwks("the key set has no \"keys\" array"))?;
        let mut keys = Vec::new();
        let mut skipped = 0usize;
        for entry in entries {
            match usable_rsa_key(entry) {
                Some(key) => keys.push(key),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::debug!(
                kept = keys.len(),
                skipped,
                "skipped JWKS keys that are not RS256 signing keys"
            );
        }
        Ok(Self { keys })
    }

    /// Number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this `kid` is in the set.
    #[cfg(test)]
    pub(crate) fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _)| k.as_deref() == Some(kid))
    }
}

/// One JWK entry as a `(kid, key)` pair, if it is a usable RS256 signing key.
fn usable_rsa_key(entry: &serde_json::Value) -> Option<(Option<String>, DecodingKey)> {
    let str_field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
    let absent_or = |name: &str, wanted: &str| match entry.get(name) {
        None | Some(serde_json::Value::Null) => true,
        Some(value) => value.as_str() == Some(wanted),
    };
    if str_field("kty") != Some("RSA") || !absent_or("use", "sig") || !absent_or("alg", "RS256") {
        return None;
    }
    let kid = match entry.get("kid") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    let n = decode_b64url(str_field("n")?)?;
    let e = decode_b64url(str_field("e")?)?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    if e.is_empty() || bit_length(n) < MIN_RSA_BITS {
        return None;
    }
    Some((kid, DecodingKey::from_rsa_raw_components(n, e)))
}

/// base64url without padding; a padded value is tolerated.
fn decode_b64url(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        None => 0,
        Some(&first) => big_endian.len() * 8 - first.leading_zeros() as usize,
    }
}

/// The protected header fields this module looks at.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<serde_json::Value>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// Checks the token's shape and `alg`, before any key is involved. Returns the `kid`.
pub(crate) fn check_header(token: &str) -> Result<Option<String>, IdTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(IdTokenError::Malformed("the token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed(
            "a signed JWT has exactly three dot-separated parts",
        ));
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| IdTokenError::Malformed("the header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&header)
        .map_err(|_| IdTokenError::Malformed("the header is not a JSON object"))?;
    match header.alg {
        Some(serde_json::Value::String(alg)) if alg == "RS256" => {}
        Some(serde_json::Value::String(alg)) => {
            return Err(IdTokenError::UnsupportedAlgorithm(printable(
                &alg,
                MAX_ECHO_LEN,
            )));
        }
        Some(other) => {
            return Err(IdTokenError::UnsupportedAlgorithm(printable(
                &other.to_string(),
                MAX_ECHO_LEN,
            )));
        }
        None => return Err(IdTokenError::Malformed("the header has no \"alg\"")),
    }
    if header.crit.is_some() {
        return Err(IdTokenError::Malformed(
            "the header has critical extensions (\"crit\"), which are not supported",
        ));
    }
    Ok(header.kid)
}

/// The claims as they appear in the token, before the checks.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<OneOrMany>,
    azp: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    auth_time: Option<u64>,
    nonce: Option<String>,
    name: Option<String>,
    preferred_username: Option<String>,
    picture: Option<String>,
    profile: Option<String>,
    website: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A JSON number of seconds; fractions are truncated, negative values refused.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(seconds) = number.as_u64() {
        return Ok(Some(seconds));
    }
    match number.as_f64() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Some(seconds as u64)),
        _ => Err(serde::de::Error::custom(
            "a date must be a non-negative number",
        )),
    }
}

/// Verifies an ID token's algorithm, signature and claims.
///
/// # Errors
/// The first check that fails, as an [`IdTokenError`].
pub(crate) fn verify(
    token: &str,
    keys: &KeySet,
    expect: &Expectations<'_>,
) -> Result<IdTokenClaims, IdTokenError> {
    let kid = check_header(token)?;

    // Keys named by `kid`; a token naming a kid the set lacks may still match a key
    // published without one. A token without `kid` is tried against every key.
    let (candidates, kid_matched): (Vec<&DecodingKey>, bool) = match kid.as_deref() {
        Some(kid) => {
            let named: Vec<_> = keys
                .keys
                .iter()
                .filter(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key)
                .collect();
            if named.is_empty() {
                let unnamed = keys
                    .keys
                    .iter()
                    .filter(|(k, _)| k.is_none())
                    .map(|(_, key)| key)
                    .collect();
                (unnamed, false)
            } else {
                (named, true)
            }
        }
        None => (keys.keys.iter().map(|(_, key)| key).collect(), false),
    };

    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;

    for key in candidates {
        match jsonwebtoken::decode::<RawClaims>(token, key, &validation) {
            Ok(data) => return check_claims(data.claims, expect),
            Err(err) => match err.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::Provider(_) => {}
                ErrorKind::InvalidAlgorithm
                | ErrorKind::UnsupportedAlgorithm
                | ErrorKind::InvalidAlgorithmName => {
                    return Err(IdTokenError::UnsupportedAlgorithm("unknown".to_owned()));
                }
                ErrorKind::Json(_) => {
                    return Err(IdTokenError::Malformed(
                        "the claims are not a JSON object of the expected shape",
                    ));
                }
                ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                    return Err(IdTokenError::Malformed("a part is not valid base64url"));
                }
                _ => return Err(IdTokenError::Malformed("the token could not be decoded")),
            },
        }
    }
    Err(match kid {
        Some(_) if kid_matched => IdTokenError::BadSignature,
        Some(kid) => IdTokenError::UnknownKid(printable(&kid, MAX_ECHO_LEN)),
        None => IdTokenError::NoMatchingKey,
    })
}

/// Parses a claims JSON object and checks it, as [`verify`] does once the signature
/// holds. For the fuzz targets, which compare it with the verification of a signed token.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_claims(
    json: &[u8],
    expect: &Expectations<'_>,
) -> Result<IdTokenClaims, IdTokenError> {
    let raw: RawClaims = serde_json::from_slice(json).map_err(|_| {
        IdTokenError::Malformed("the claims are not a JSON object of the expected shape")
    })?;
    check_claims(raw, expect)
}

/// The claim checks, on a token whose signature has been verified.
fn check_claims(raw: RawClaims, expect: &Expectations<'_>) -> Result<IdTokenClaims, IdTokenError> {
    let iss = raw.iss.ok_or(IdTokenError::MissingClaim("iss"))?;
    if iss != expect.issuer {
        return Err(IdTokenError::Issuer {
            expected: expect.issuer.to_owned(),
            found: printable(&iss, MAX_ECHO_LEN),
        });
    }

    let aud = match raw.aud.ok_or(IdTokenError::MissingClaim("aud"))? {
        OneOrMany::One(aud) => vec![aud],
        OneOrMany::Many(aud) => aud,
    };
    if !aud.iter().any(|a| a == expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    match raw.azp.as_deref() {
        Some(azp) if azp != expect.client_id => return Err(IdTokenError::Azp),
        None if aud.len() > 1 => return Err(IdTokenError::Azp),
        _ => {}
    }

    let leeway = expect.leeway.as_secs();
    let exp = raw.exp.ok_or(IdTokenError::MissingClaim("exp"))?;
    if exp.saturating_add(leeway) <= expect.now {
        return Err(IdTokenError::Expired {
            exp,
            now: expect.now,
        });
    }
    let iat = raw.iat.ok_or(IdTokenError::MissingClaim("iat"))?;
    if iat > expect.now.saturating_add(leeway) {
        return Err(IdTokenError::IssuedInFuture {
            iat,
            now: expect.now,
        });
    }

    let nonce = raw.nonce.as_deref().ok_or(IdTokenError::MissingNonce)?;
    if expect.nonce.is_empty()
        || aws_lc_rs::constant_time::verify_slices_are_equal(
            nonce.as_bytes(),
            expect.nonce.as_bytes(),
        )
        .is_err()
    {
        return Err(IdTokenError::NonceMismatch);
    }

    let sub = match raw.sub {
        Some(sub) if !sub.is_empty() => sub,
        _ => return Err(IdTokenError::MissingSub),
    };

    Ok(IdTokenClaims {
        iss,
        sub,
        aud,
        azp: raw.azp,
        exp,
        iat,
        auth_time: raw.auth_time,
        nonce: raw.nonce,
        name: raw.name,
        preferred_username: raw.preferred_username,
        picture: raw.picture,
        profile: raw.profile,
        website: raw.website,
        email: raw.email,
        email_verified: raw.email_verified,
    })
}

/// `value` made safe to show in a message: control characters removed, at most `max`
/// characters (an ellipsis marks a cut).
pub(crate) fn printable(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max + 3));
    for (count, c) in value.chars().filter(|c| !c.is_control()).enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;

    pub(crate) const ISSUER: &str = "https://huggingface.co";
    pub(crate) const CLIENT_ID: &str = "client-123";
    pub(crate) const NONCE: &str = "n-0S6_WzA2Mj";
    pub(crate) const NOW: u64 = 1_700_000_000;

    /// RSA keys generated once per test binary (generation is slow).
    pub(crate) fn rsa_key(index: usize) -> &'static KeyPair {
        static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
        &KEYS.get_or_init(|| {
            (0..2)
                .map(|_| KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
                .collect()
        })[index]
    }

    pub(crate) fn jwk(key: &KeyPair, kid: Option<&str>) -> Value {
        let components = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        let mut jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    pub(crate) fn sign(key: &KeyPair, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .expect("signing");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub(crate) fn good_claims() -> Value {
        json!({
            "iss": ISSUER,
            "sub": "60d5c0a1b2c3d4e5f6a7b8c9",
            "aud": CLIENT_ID,
            "exp": NOW + 3600,
            "iat": NOW,
            "auth_time": NOW - 10,
            "nonce": NONCE,
            "name": "Ada Lovelace",
            "preferred_username": "ada",
            "picture": "https://cdn.example/ada.png",
            "profile": "https://huggingface.co/ada",
            "website": "",
            "email": "ada@example.com",
            "email_verified": true,
            "unknown_claim": {"ignored": [1, 2, 3]},
        })
    }

    fn header(kid: Option<&str>) -> Value {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        header
    }

    fn keys(jwks: Value) -> KeySet {
        KeySet::from_jwks_json(jwks.to_string().as_bytes()).expect("valid jwks")
    }

    fn one_key() -> KeySet {
        keys(json!({"keys": [jwk(rsa_key(0), Some("k0"))]}))
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: ISSUER,
            client_id: CLIENT_ID,
            nonce: NONCE,
            leeway: Duration::from_secs(60),
            now: NOW,
        }
    }

    fn token_with(claims: Value) -> String {
        sign(rsa_key(0), &header(Some("k0")), &claims)
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    fn verify_claims(claims: Value) -> Result<IdTokenClaims, IdTokenError> {
        verify(&token_with(claims), &one_key(), &expect())
    }

    /// A token with this header (base64url JSON) and no meaningful signature.
    fn unsigned(header: &Value) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(good_claims().to_string())
        )
    }

    #[test]
    fn accepts_valid_token_and_reads_claims() {
        let claims = verify_claims(good_claims()).expect("valid token");
        assert_eq!(claims.sub, "60d5c0a1b2c3d4e5f6a7b8c9");
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, vec![CLIENT_ID.to_owned()]);
        assert_eq!(claims.exp, NOW + 3600);
        assert_eq!(claims.iat, NOW);
        assert_eq!(claims.auth_time, Some(NOW - 10));
        assert_eq!(claims.nonce.as_deref(), Some(NONCE));
        assert_eq!(claims.preferred_username.as_deref(), Some("ada"));
        assert_eq!(claims.website.as_deref(), Some(""));
        assert_eq!(claims.email_verified, Some(true));
    }

    #[test]
    fn accepts_audience_array_with_matching_azp() {
        let claims = with(good_claims(), "aud", json!([CLIENT_ID, "other"]));
        let claims = with(claims, "azp", json!(CLIENT_ID));
        assert_eq!(verify_claims(claims).unwrap().aud.len(), 2);
    }

    #[test]
    fn accepts_fractional_dates() {
        let claims = with(good_claims(), "exp", json!((NOW + 10) as f64 + 0.5));
        assert_eq!(verify_claims(claims).unwrap().exp, NOW + 10);
    }

    #[test]
    fn rejects_alg_none() {
        let token = unsigned(&json!({"alg": "none"}));
        assert_eq!(
            verify(&token, &one_key(), &expect()),
            Err(IdTokenError::UnsupportedAlgorithm("none".into()))
        );
    }

    #[test]
    fn rejects_hs256_signed_with_public_key_bytes() {
        // The key-confusion attack: HMAC keyed with the RSA public key.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"public key bytes");
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k0"}).to_string()),
            URL_SAFE_NO_PAD.encode(good_claims().to_string())
        );
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        let token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(
            verify(&token, &one_key(), &expect()),
            Err(IdTokenError::UnsupportedAlgorithm("HS256".into()))
        );
    }

    #[test]
    fn rejects_other_algorithms_and_spellings() {
        for alg in ["rs256", "RS512", "PS256", "ES256", "NONE", "None", ""] {
            let token = unsigned(&json!({"alg": alg, "kid": "k0"}));
            assert_eq!(
                verify(&token, &one_key(), &expect()),
                Err(IdTokenError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
        let token = unsigned(&json!({"alg": ["RS256"]}));
        assert!(matches!(
            verify(&token, &one_key(), &expect()),
            Err(IdTokenError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn rejects_malformed_tokens() {
        let good = token_with(good_claims());
        let cases = [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            format!("{good}.extra.parts"),
            "!!!.e30.sig".to_owned(),
            format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("not json")),
            unsigned(&json!({"kid": "k0"})),
            unsigned(&json!({"alg": "RS256", "crit": ["exp"]})),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        for token in cases {
            assert!(
                matches!(
                    verify(&token, &one_key(), &expect()),
                    Err(IdTokenError::Malformed(_))
                ),
                "{token:.40}"
            );
        }
    }

    /// The 64 KiB cap alone: a well-signed token with good claims, padded with an
    /// unknown claim, verifies at the cap and is refused one padding step past it.
    #[test]
    fn tokens_past_64_kib_are_refused_for_their_length_alone() {
        let claims = |len: usize| with(good_claims(), "padding", json!("x".repeat(len)));
        let padded = |len: usize| token_with(claims(len));
        // Base64 grows in steps of 4 characters per 3 bytes: find the longest padding
        // that fits, then the next one (lengths computed, not signed, in the search).
        let base = padded(0).len();
        let unpadded_claims = claims(0).to_string().len();
        let length = |len: usize| base + (unpadded_claims + len) * 4 / 3 - unpadded_claims * 4 / 3;
        let mut len = 0;
        while length(len + 1) <= MAX_TOKEN_LEN + 1 {
            len += 1;
        }
        while padded(len).len() > MAX_TOKEN_LEN {
            len -= 1;
        }
        while padded(len + 1).len() <= MAX_TOKEN_LEN {
            len += 1;
        }
        let at_cap = padded(len);
        let past_cap = padded(len + 1);
        assert!(at_cap.len() <= MAX_TOKEN_LEN && past_cap.len() > MAX_TOKEN_LEN);
        assert!(past_cap.len() - at_cap.len() <= 4);
        assert!(verify(&at_cap, &one_key(), &expect()).is_ok());
        assert_eq!(
            verify(&past_cap, &one_key(), &expect()),
            Err(IdTokenError::Malformed("the token is too long"))
        );
    }

    #[test]
    fn rejects_claims_of_wrong_types_after_signature() {
        let claims = with(good_claims(), "exp", json!("tomorrow"));
        assert_eq!(
            verify_claims(claims),
            Err(IdTokenError::Malformed(
                "the claims are not a JSON object of the expected shape"
            ))
        );
    }

    /// The bit length counts from the first set bit: a 256-byte modulus whose top bit
    /// is clear (2047 bits) is too small, one with it set (2048 bits) is kept, and leading
    /// zero bytes do not count.
    #[test]
    fn key_set_measures_the_modulus_in_bits() {
        let modulus = |first: u8, zeros: usize| {
            let mut n = vec![0u8; zeros];
            n.push(first);
            n.extend([0xffu8; 255]);
            URL_SAFE_NO_PAD.encode(n)
        };
        let set = keys(json!({"keys": [
            {"kty": "RSA", "kid": "2048", "n": modulus(0x80, 0), "e": "AQAB"},
            {"kty": "RSA", "kid": "2047", "n": modulus(0x7f, 0), "e": "AQAB"},
            {"kty": "RSA", "kid": "2041", "n": modulus(0x01, 2), "e": "AQAB"},
        ]}));
        assert!(set.contains_kid("2048"));
        assert!(!set.contains_kid("2047"));
        assert!(!set.contains_kid("2041"), "leading zero bytes are not bits");
        assert_eq!(set.len(), 1);
    }

    /// Dates are non-negative numbers of seconds: a negative `iat`, which would pass the
    /// "not in the future" rule, is malformed rather than read as 0; a fraction is
    /// truncated.
    #[test]
    fn negative_dates_are_malformed_and_fractions_truncated() {
        for iat in [json!(-1), json!(-1.5)] {
            let claims = with(good_claims(), "iat", iat.clone());
            assert!(
                matches!(verify_claims(claims), Err(IdTokenError::Malformed(_))),
                "iat {iat}"
            );
        }
        let fraction: Value = serde_json::from_str(&format!("{NOW}.75")).unwrap();
        let claims = with(good_claims(), "iat", fraction);
        assert!(verify_claims(claims).is_ok());
    }

    /// The cap is the documented 64 KiB and inclusive: a good token of exactly 65,536
    /// bytes verifies. (The header is varied to reach every length base64 allows.)
    #[test]
    fn a_token_of_exactly_64_kib_verifies() {
        const DOCUMENTED_CAP: usize = 64 * 1024;
        let b64_len = |bytes: usize| (bytes * 4).div_ceil(3);
        let signature_len = b64_len(rsa_key(0).public_modulus_len());
        let unpadded = with(good_claims(), "padding", json!("")).to_string().len();
        let headers = [
            header(Some("k0")),
            header(None),
            json!({"alg": "RS256", "kid": "k0"}),
            json!({"alg": "RS256"}),
        ];
        let (header, padding) = headers
            .iter()
            .find_map(|header| {
                let fixed = b64_len(header.to_string().len()) + 2 + signature_len;
                (0..DOCUMENTED_CAP)
                    .find(|len| fixed + b64_len(unpadded + len) == DOCUMENTED_CAP)
                    .map(|len| (header, len))
            })
            .expect("some header reaches the exact length");
        let claims = with(good_claims(), "padding", json!("x".repeat(padding)));
        let token = sign(rsa_key(0), header, &claims);
        assert_eq!(token.len(), DOCUMENTED_CAP);
        assert!(verify(&token, &one_key(), &expect()).is_ok());
    }

    #[test]
    fn rejects_unknown_kid() {
        let token = sign(rsa_key(0), &header(Some("rotated")), &good_claims());
        assert_eq!(
            verify(&token, &one_key(), &expect()),
            Err(IdTokenError::UnknownKid("rotated".into()))
        );
    }

    #[test]
    fn rejects_signature_from_another_key() {
        let token = sign(rsa_key(1), &header(Some("k0")), &good_claims());
        assert_eq!(
            verify(&token, &one_key(), &expect()),
            Err(IdTokenError::BadSignature)
        );
    }

    #[test]
    fn rejects_tampered_claims() {
        let token = token_with(good_claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with(good_claims(), "sub", json!("admin")).to_string());
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &one_key(), &expect()),
            Err(IdTokenError::BadSignature)
        );
    }

    #[test]
    fn token_without_kid_uses_the_only_key() {
        let token = sign(rsa_key(0), &header(None), &good_claims());
        assert!(verify(&token, &one_key(), &expect()).is_ok());
    }

    #[test]
    fn token_without_kid_tries_every_key() {
        let set = keys(json!({"keys": [
            jwk(rsa_key(1), Some("k1")),
            jwk(rsa_key(0), Some("k0")),
        ]}));
        let token = sign(rsa_key(0), &header(None), &good_claims());
        assert!(verify(&token, &set, &expect()).is_ok());

        let only_other = keys(json!({"keys": [jwk(rsa_key(1), Some("k1"))]}));
        assert_eq!(
            verify(&token, &only_other, &expect()),
            Err(IdTokenError::NoMatchingKey)
        );
    }

    #[test]
    fn token_with_kid_may_match_a_key_published_without_kid() {
        let set = keys(json!({"keys": [jwk(rsa_key(0), None)]}));
        assert!(verify(&token_with(good_claims()), &set, &expect()).is_ok());
    }

    #[test]
    fn empty_key_set_matches_nothing() {
        let token = sign(rsa_key(0), &header(None), &good_claims());
        assert_eq!(
            verify(&token, &KeySet::default(), &expect()),
            Err(IdTokenError::NoMatchingKey)
        );
    }

    #[test]
    fn rejects_wrong_issuer() {
        let claims = with(good_claims(), "iss", json!("https://huggingface.co/"));
        assert_eq!(
            verify_claims(claims),
            Err(IdTokenError::Issuer {
                expected: ISSUER.into(),
                found: "https://huggingface.co/".into()
            })
        );
        assert_eq!(
            verify_claims(without(good_claims(), "iss")),
            Err(IdTokenError::MissingClaim("iss"))
        );
    }

    #[test]
    fn rejects_wrong_audience() {
        for aud in [json!("someone-else"), json!(["a", "b"]), json!([])] {
            assert_eq!(
                verify_claims(with(good_claims(), "aud", aud)),
                Err(IdTokenError::Audience)
            );
        }
        assert_eq!(
            verify_claims(without(good_claims(), "aud")),
            Err(IdTokenError::MissingClaim("aud"))
        );
    }

    #[test]
    fn rejects_several_audiences_without_azp() {
        let claims = with(good_claims(), "aud", json!([CLIENT_ID, "other"]));
        assert_eq!(verify_claims(claims), Err(IdTokenError::Azp));
    }

    #[test]
    fn rejects_foreign_azp() {
        let claims = with(good_claims(), "azp", json!("other"));
        assert_eq!(verify_claims(claims), Err(IdTokenError::Azp));
    }

    #[test]
    fn rejects_expired_token_beyond_leeway() {
        let claims = with(good_claims(), "exp", json!(NOW - 60));
        assert_eq!(
            verify_claims(claims),
            Err(IdTokenError::Expired {
                exp: NOW - 60,
                now: NOW
            })
        );
        // Within the leeway it still passes.
        assert!(verify_claims(with(good_claims(), "exp", json!(NOW - 59))).is_ok());
        assert_eq!(
            verify_claims(without(good_claims(), "exp")),
            Err(IdTokenError::MissingClaim("exp"))
        );
    }

    #[test]
    fn rejects_token_issued_in_the_future() {
        let claims = with(good_claims(), "iat", json!(NOW + 61));
        assert_eq!(
            verify_claims(claims),
            Err(IdTokenError::IssuedInFuture {
                iat: NOW + 61,
                now: NOW
            })
        );
        assert!(verify_claims(with(good_claims(), "iat", json!(NOW + 60))).is_ok());
        assert_eq!(
            verify_claims(without(good_claims(), "iat")),
            Err(IdTokenError::MissingClaim("iat"))
        );
    }

    #[test]
    fn rejects_nonce_mismatch_and_absence() {
        assert_eq!(
            verify_claims(with(good_claims(), "nonce", json!("other"))),
            Err(IdTokenError::NonceMismatch)
        );
        assert_eq!(
            verify_claims(without(good_claims(), "nonce")),
            Err(IdTokenError::MissingNonce)
        );
        let empty_expected = Expectations {
            nonce: "",
            ..expect()
        };
        let token = token_with(with(good_claims(), "nonce", json!("")));
        assert_eq!(
            verify(&token, &one_key(), &empty_expected),
            Err(IdTokenError::NonceMismatch)
        );
    }

    #[test]
    fn rejects_missing_or_empty_sub() {
        assert_eq!(
            verify_claims(without(good_claims(), "sub")),
            Err(IdTokenError::MissingSub)
        );
        assert_eq!(
            verify_claims(with(good_claims(), "sub", json!(""))),
            Err(IdTokenError::MissingSub)
        );
    }

    #[test]
    fn key_set_keeps_only_rs256_signing_keys() {
        let good = jwk(rsa_key(0), Some("good"));
        let mut enc = jwk(rsa_key(0), Some("enc"));
        enc["use"] = json!("enc");
        let mut ps = jwk(rsa_key(0), Some("ps"));
        ps["alg"] = json!("PS256");
        let mut no_alg = jwk(rsa_key(1), Some("no-alg"));
        no_alg.as_object_mut().unwrap().remove("alg");
        no_alg.as_object_mut().unwrap().remove("use");
        let set = keys(json!({"keys": [
            good,
            enc,
            ps,
            no_alg,
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
            {"kty": "RSA", "kid": "small", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"},
            {"kty": "RSA", "kid": "bad-b64", "n": "!!", "e": "AQAB"},
            {"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"},
            "not an object",
        ]}));
        assert_eq!(set.len(), 2);
        assert!(set.contains_kid("good"));
        assert!(set.contains_kid("no-alg"));
        assert!(!set.contains_kid("enc"));
        assert!(format!("{set:?}").contains("good"));
    }

    #[test]
    fn key_set_rejects_documents_without_keys() {
        assert!(KeySet::from_jwks_json(b"<html>").is_err());
        assert!(KeySet::from_jwks_json(b"{}").is_err());
        assert!(KeySet::from_jwks_json(b"{\"keys\": {}}").is_err());
        assert!(
            KeySet::from_jwks_json(b"{\"keys\": []}")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn errors_echo_only_sanitized_short_values() {
        let kid = format!("evil\u{7}\n{}", "k".repeat(500));
        let token = sign(rsa_key(0), &header(Some(&kid)), &good_claims());
        let err = verify(&token, &one_key(), &expect()).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains('\n') && !shown.contains('\u{7}'));
        assert!(shown.len() < 300, "{shown}");
        assert!(!shown.contains(&token));
    }

    #[test]
    fn printable_strips_controls_and_truncates() {
        assert_eq!(printable("a\u{0}b\r\nc", 10), "abc");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("héllo", 5), "héllo");
    }
}
