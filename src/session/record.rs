//! The session record's plaintext, before it is sealed into the cookie.
//!
//! ```text
//! format | tokens length (u16, big-endian) | tokens JSON | profile
//! ```
//!
//! where the format byte says how the profile is stored: `1`, DEFLATE-compressed JSON;
//! `2`, plain JSON. The profile (above all the list of organizations, each with an id,
//! names and an avatar URL) is most of a session, and a large one compresses about
//! threefold; compressing it keeps the `Cookie` header of a user in dozens of
//! organizations under the 8 KB that common proxies accept per header. Profiles under
//! [`COMPRESS_ABOVE`] bytes are stored plain: inflating costs a few microseconds per
//! request whatever the size, which is not worth it for a cookie that fits anyway. The tokens, scopes and expiry stay outside the
//! compressed part: a secret never shares a compression context with profile data, so
//! the sealed cookie's length says nothing about the secret (no CRIME-style oracle).

use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;

use crate::Secret;
use crate::provider::TokenResponse;
use crate::user::{Profile, Scopes, SessionRecord};

/// The format byte of a compressed profile.
const DEFLATED: u8 = 1;
/// The format byte of a plain profile.
const PLAIN: u8 = 2;
/// Profiles of this many bytes of JSON or fewer are stored plain.
const COMPRESS_ABOVE: usize = 1024;
/// DEFLATE level: 6 is zlib's default, within a few percent of 9 for this data and
/// several times faster.
const LEVEL: u8 = 6;
/// The largest profile inflated. Records are authenticated before they are decoded,
/// so this is a backstop, not a defense: real profiles stay far below it.
const MAX_PROFILE: usize = 256 * 1024;

/// The record's plaintext. `None` only if the tokens part exceeds 64 KiB, which no
/// provider answer that passed the size cap can produce.
pub(crate) fn encode(record: &SessionRecord) -> Option<Vec<u8>> {
    let tokens = serde_json::to_vec(record).ok()?;
    let profile = serde_json::to_vec(&record.profile).ok()?;
    lay_out(&tokens, &profile)
}

/// The layout around a tokens JSON and a profile JSON (compressed when large).
pub(crate) fn lay_out(tokens: &[u8], profile: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(tokens.len()).ok()?;
    let deflated;
    let (format, profile) = if profile.len() > COMPRESS_ABOVE {
        deflated = compress_to_vec(profile, LEVEL);
        (DEFLATED, deflated.as_slice())
    } else {
        (PLAIN, profile)
    };
    let mut out = Vec::with_capacity(3 + tokens.len() + profile.len());
    out.push(format);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(tokens);
    out.extend_from_slice(profile);
    Some(out)
}

/// The record in `plain`, or `None` when it is not this layout.
pub(crate) fn decode(plain: &[u8]) -> Option<SessionRecord> {
    let layout = split(plain)?;
    let inflated;
    let profile = if layout.deflated {
        inflated = inflate(layout.profile)?;
        inflated.as_slice()
    } else {
        layout.profile
    };
    parse(layout.tokens, profile)
}

/// The parts of a record's plaintext.
pub(crate) struct Layout<'a> {
    pub(crate) tokens: &'a [u8],
    pub(crate) profile: &'a [u8],
    /// Whether `profile` is compressed.
    pub(crate) deflated: bool,
}

/// Splits `plain` into its parts, or `None` when it is not this layout.
pub(crate) fn split(plain: &[u8]) -> Option<Layout<'_>> {
    let (&format, rest) = plain.split_first()?;
    if !matches!(format, DEFLATED | PLAIN) || rest.len() < 2 {
        return None;
    }
    let (len, rest) = rest.split_at(2);
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if rest.len() < len {
        return None;
    }
    let (tokens, profile) = rest.split_at(len);
    Some(Layout {
        tokens,
        profile,
        deflated: format == DEFLATED,
    })
}

/// A compressed profile's JSON.
pub(crate) fn inflate(profile: &[u8]) -> Option<Vec<u8>> {
    decompress_to_vec_with_limit(profile, MAX_PROFILE).ok()
}

/// The record from its tokens JSON and its (inflated) profile JSON.
pub(crate) fn parse(tokens: &[u8], profile: &[u8]) -> Option<SessionRecord> {
    let mut record: SessionRecord = serde_json::from_slice(tokens).ok()?;
    record.profile = serde_json::from_slice::<Profile>(profile).ok()?;
    Some(record)
}

impl SessionRecord {
    /// The session a token endpoint answer at `now` makes for `profile`: the answer's
    /// `scope` when it has one, else `fallback_scopes`; the access token expires after
    /// `expires_in`, one hour when the answer does not say, and never before `now + 1`.
    pub(crate) fn from_tokens(
        profile: Profile,
        tokens: TokenResponse,
        fallback_scopes: Scopes,
        asked: Scopes,
        now: u64,
    ) -> Self {
        let scopes = tokens
            .scope
            .as_deref()
            .map_or(fallback_scopes, Scopes::parse);
        Self {
            profile,
            scopes,
            access_token: tokens.access_token,
            expires_at: now.saturating_add(tokens.expires_in.unwrap_or(3600).max(1)),
            refresh_token: tokens.refresh_token,
            asked,
            profile_at: now,
            stored: None,
        }
    }

    /// This session after a refresh answered with `tokens` at `now`: the new access
    /// token and expiry; the new refresh token, else the old one; the answer's scopes,
    /// else the old ones; the same profile (and its age) and asked scopes.
    pub(crate) fn refreshed(&self, tokens: TokenResponse, now: u64) -> Self {
        let mut record = Self::from_tokens(
            self.profile.clone(),
            tokens,
            self.scopes.clone(),
            self.asked.clone(),
            now,
        );
        if record.refresh_token.is_none() {
            record.refresh_token = self.refresh_token.clone();
        }
        record.profile_at = self.profile_at;
        record.stored.clone_from(&self.stored);
        record
    }

    /// This session with `profile`, read from the provider at `now`.
    pub(crate) fn with_profile(&self, profile: Profile, now: u64) -> Self {
        Self {
            profile,
            profile_at: now,
            ..self.clone()
        }
    }

    /// The record of a request signed in with a bearer token: the token's user and
    /// scopes, trusted until `expires_at`, nothing asked and nothing to refresh.
    pub(crate) fn for_bearer(
        profile: Profile,
        scopes: Scopes,
        token: Secret,
        expires_at: u64,
    ) -> Self {
        Self {
            profile,
            scopes,
            access_token: token,
            expires_at,
            refresh_token: None,
            asked: Scopes::default(),
            profile_at: expires_at,
            stored: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::user::Scopes;

    /// A record whose profile lists `orgs` organizations.
    fn record(orgs: usize) -> SessionRecord {
        let orgs: Vec<String> = (0..orgs)
            .map(|i| {
                format!(r#"{{"sub":"o{i}","preferred_username":"org-{i}","roleInOrg":"admin"}}"#)
            })
            .collect();
        let profile = format!(
            r#"{{"sub":"abc","preferred_username":"carol","orgs":[{}]}}"#,
            orgs.join(",")
        );
        SessionRecord {
            profile: serde_json::from_str(&profile).unwrap(),
            scopes: Scopes::parse("openid profile read-repos"),
            access_token: Secret::new("hf_oauth_secret_token"),
            expires_at: 1_700_000_000,
            refresh_token: Some(Secret::new("hf_oauth_refresh")),
            asked: Scopes::parse("openid profile read-repos"),
            profile_at: u64::MAX / 2,
            stored: None,
        }
    }

    #[test]
    fn small_profiles_are_plain_and_large_ones_compressed() {
        assert_eq!(encode(&record(1)).unwrap()[0], PLAIN);
        assert_eq!(encode(&record(40)).unwrap()[0], DEFLATED);
    }

    #[test]
    fn round_trips() {
        for orgs in [0, 1, 40] {
            round_trip(&record(orgs));
        }
    }

    fn round_trip(r: &SessionRecord) {
        let back = decode(&encode(r).unwrap()).unwrap();
        assert!(back.profile == r.profile, "the profile round trips");
        assert_eq!(back.scopes, r.scopes);
        assert_eq!(back.asked, r.asked);
        assert_eq!(back.expires_at, r.expires_at);
        assert_eq!(back.access_token.expose(), "hf_oauth_secret_token");
        assert_eq!(
            back.refresh_token.as_ref().map(Secret::expose),
            Some("hf_oauth_refresh")
        );
    }

    #[test]
    fn tokens_sit_outside_the_compressed_profile() {
        let plain = encode(&record(40)).unwrap();
        let len = usize::from(u16::from_be_bytes([plain[1], plain[2]]));
        let tokens = std::str::from_utf8(&plain[3..3 + len]).unwrap();
        assert!(tokens.contains("hf_oauth_secret_token"), "{tokens}");
        assert!(
            !tokens.contains("carol"),
            "the profile is not in the tokens part"
        );
        let profile = decompress_to_vec_with_limit(&plain[3 + len..], MAX_PROFILE).unwrap();
        let profile = String::from_utf8(profile).unwrap();
        assert!(profile.contains("carol") && !profile.contains("hf_oauth"));
    }

    /// A compressed profile inflating to exactly 256 KiB decodes; one byte more does not.
    #[test]
    fn profiles_inflating_past_256_kib_are_refused() {
        let tokens = serde_json::to_vec(&record(0)).unwrap();
        let profile = |len: usize| {
            let head = r#"{"sub":"abc","preferred_username":"carol","name":""#;
            let tail = r#""}"#;
            format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len())).into_bytes()
        };
        let at_cap = lay_out(&tokens, &profile(MAX_PROFILE)).unwrap();
        let past_cap = lay_out(&tokens, &profile(MAX_PROFILE + 1)).unwrap();
        assert_eq!((at_cap[0], past_cap[0]), (DEFLATED, DEFLATED));
        assert!(
            past_cap.len() < 2048,
            "a small cookie inflates past the cap"
        );
        let decoded = decode(&at_cap).expect("a profile at the cap decodes");
        let name_len = decoded.profile.name.as_deref().map(str::len);
        assert_eq!(
            name_len,
            Some(MAX_PROFILE - 52),
            "the whole profile was read"
        );
        assert!(decode(&past_cap).is_none(), "one byte past the cap");
    }

    #[test]
    fn other_layouts_and_damage_do_not_decode() {
        let plain = encode(&record(40)).unwrap();
        assert!(decode(&[]).is_none());
        assert!(
            decode(br#"{"profile":{}}"#).is_none(),
            "bare JSON is not this layout"
        );
        let mut wrong_format = plain.clone();
        wrong_format[0] = 3;
        assert!(decode(&wrong_format).is_none());
        assert!(
            decode(&plain[..plain.len() - 4]).is_none(),
            "truncated profile"
        );
        assert!(decode(&plain[..10]).is_none(), "truncated tokens");
        let mut long = plain;
        long[1] = 0xff;
        assert!(decode(&long).is_none(), "a length past the end");
    }

    /// A profile read again replaces the old one and its time; the tokens stay.
    #[test]
    fn with_profile_replaces_the_profile_and_its_time() {
        let old = record(1);
        let fresh: Profile =
            serde_json::from_str(r#"{"sub":"abc","preferred_username":"carol-renamed"}"#).unwrap();
        let new = old.with_profile(fresh, 1_700_000_500);
        assert_eq!(new.profile.preferred_username, "carol-renamed");
        assert_eq!(new.profile_at, 1_700_000_500);
        assert_eq!(new.access_token.expose(), old.access_token.expose());
        assert_eq!(new.expires_at, old.expires_at);
    }
}
