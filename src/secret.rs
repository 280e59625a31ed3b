//! Secrets as redacting newtypes.
//!
//! Access tokens, refresh tokens, client secrets and cookie keys are wrapped in
//! [`Secret`], whose `Debug` and `Display` print `[redacted]`. The value is only
//! reachable through the explicit [`Secret::expose`] accessor, so it cannot reach a
//! log line or an error message by accident.
//!
//! ```
//! use tower_hf_auth::Secret;
//!
//! let token = Secret::new("hf_oauth_abc");
//! assert_eq!(format!("{token:?}"), "[redacted]");
//! assert_eq!(token.expose(), "hf_oauth_abc");
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serializer};

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }

    /// The secret itself. Call this only where the value is sent to its destination.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// Serializes a secret's raw value, for the sealed session record only
/// (`#[serde(serialize_with = "crate::secret::raw")]`). `Secret` has no public
/// `Serialize`: serializing a value that holds one must not write the token by accident.
pub(crate) fn raw<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&secret.0)
}

/// [`raw`] for an optional secret.
pub(crate) fn raw_opt<S: Serializer>(
    secret: &Option<Secret>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(&*secret.0),
        None => serializer.serialize_none(),
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hf_oauth_supersecret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hf_oauth_supersecret");
    }
}
