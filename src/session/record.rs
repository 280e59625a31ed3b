//! The session record's plaintext, before it is sealed into the cookie (or a
//! server-side store).
//!
//! Written as format 3, binary:
//!
//! ```text
//! 3 | access token | expiry | refresh token? | scopes | asked scopes | profile time
//!   | text length | packed(profile text | profile shape)
//! ```
//!
//! Integers are unsigned LEB128 and strings length-prefixed (`src/session/pack.rs`).
//! The profile's strings (the user's, then each organization's: ids, names, avatar
//! URLs) are laid end to end in one text, and the shape (lengths, flags, roles) says
//! how long each is; text and shape have their hex runs packed and are LZ4-compressed
//! together when that is smaller. Opening a
//! session therefore parses no JSON, decompresses with LZ4 rather than DEFLATE, and
//! makes one allocation for all of the organizations' strings ([`HfOrg`] holds spans of
//! the shared text). The tokens, scopes and expiry stay outside the compressed text: a
//! secret never shares a compression context with profile data, so the sealed value's
//! length says nothing about the secret (no CRIME-style oracle).
//!
//! Formats 1 and 2, JSON (`format | tokens length (u16) | tokens JSON | profile JSON`,
//! the profile DEFLATE-compressed in format 1), are what earlier versions wrote: they
//! still open, so an upgrade signs nobody out, and the next write is format 3.

use std::sync::Arc;

use miniz_oxide::inflate::decompress_to_vec_with_limit;

use crate::Secret;
use crate::provider::TokenResponse;
use crate::session::pack::{MAX_TEXT, Reader, Writer};
use crate::user::{HfOrg, OrgRole, OrgSpans, Profile, Scopes, SessionRecord, Span, Text};

/// The format byte of a JSON record with a DEFLATE-compressed profile (read only).
const DEFLATED: u8 = 1;
/// The format byte of a JSON record with a plain profile (read only).
const PLAIN: u8 = 2;
/// The format byte of a binary record.
const BINARY: u8 = 3;
/// Most scopes a record may list.
const MAX_SCOPES: usize = 256;

/// The record's plaintext (format 3). `None` only for a profile whose text exceeds
/// 256 KiB, which no provider answer that passed the size cap can produce.
pub(crate) fn encode(record: &SessionRecord) -> Option<Vec<u8>> {
    let mut out = Writer(Vec::with_capacity(512));
    out.byte(BINARY);
    out.bytes(record.access_token.expose().as_bytes());
    out.uint(record.expires_at);
    match &record.refresh_token {
        Some(token) => {
            out.byte(1);
            out.bytes(token.expose().as_bytes());
        }
        None => out.byte(0),
    }
    for scopes in [&record.scopes, &record.asked] {
        out.len(scopes.iter().count());
        scopes.iter().for_each(|s| out.bytes(s.as_bytes()));
    }
    out.uint(record.profile_at);
    let (shape, text) = profile_shape(&record.profile);
    if text.len() > MAX_TEXT {
        return None;
    }
    // The shape after the text, compressed with it: for many organizations it is a
    // few bytes repeated.
    out.len(text.len());
    let mut profile = text.into_bytes();
    profile.extend_from_slice(&shape.0);
    out.packed(&profile);
    Some(out.0)
}

/// The record in `plain`, or `None` when it is not one of the formats.
pub(crate) fn decode(plain: &[u8]) -> Option<SessionRecord> {
    match plain.first()? {
        &BINARY => decode_binary(&plain[1..]),
        _ => decode_json(plain),
    }
}

fn decode_binary(rest: &[u8]) -> Option<SessionRecord> {
    let mut r = Reader(rest);
    let mut record = tokens(&mut r)?;
    let text_len = r.len(MAX_TEXT)?;
    let packed = r.packed()?;
    if !r.is_empty() {
        return None;
    }
    let (text, shape) = packed.split_at_checked(text_len)?;
    record.profile = profile_from(shape, std::str::from_utf8(text).ok()?)?;
    Some(record)
}

/// The record's part before its profile: tokens, expiry, scopes, the profile's time;
/// the profile is left empty.
fn tokens(r: &mut Reader<'_>) -> Option<SessionRecord> {
    let access_token = Secret::new(r.str()?);
    let expires_at = r.uint()?;
    let refresh_token = match r.byte()? {
        0 => None,
        1 => Some(Secret::new(r.str()?)),
        _ => return None,
    };
    let mut scopes = || -> Option<Scopes> {
        let n = r.len(MAX_SCOPES)?;
        Scopes::read((0..n).map(|_| r.bytes()))
    };
    let (scopes, asked) = (scopes()?, scopes()?);
    Some(SessionRecord {
        profile: Profile::default(),
        scopes,
        access_token,
        expires_at,
        refresh_token,
        asked,
        profile_at: r.uint()?,
        stored: None,
    })
}

/// `None`, `false`, `true` as 0, 1, 2.
fn tri(b: Option<bool>) -> u8 {
    b.map_or(0, |b| 1 + u8::from(b))
}

fn untri(b: u8) -> Option<Option<bool>> {
    match b {
        0 => Some(None),
        1 => Some(Some(false)),
        2 => Some(Some(true)),
        _ => None,
    }
}

const ROLES: [OrgRole; 5] = [
    OrgRole::NoAccess,
    OrgRole::Read,
    OrgRole::Contributor,
    OrgRole::Write,
    OrgRole::Admin,
];

/// The profile's shape and its text: every string appended to the text, its length
/// (optional ones as 0 for none, else length + 1) written into the shape.
fn profile_shape(p: &Profile) -> (Writer, String) {
    let mut shape = Writer::default();
    let mut text = String::new();
    let put = |shape: &mut Writer, text: &mut String, s: &str| {
        shape.len(s.len());
        text.push_str(s);
    };
    let opt = |shape: &mut Writer, text: &mut String, s: Option<&str>| match s {
        None => shape.byte(0),
        Some(s) => {
            shape.len(s.len() + 1);
            text.push_str(s);
        }
    };
    put(&mut shape, &mut text, &p.sub);
    put(&mut shape, &mut text, &p.preferred_username);
    for s in [&p.name, &p.picture, &p.profile, &p.website, &p.email] {
        opt(&mut shape, &mut text, s.as_deref());
    }
    shape.byte(tri(p.email_verified) | u8::from(p.is_pro) << 2 | tri(p.can_pay) << 3);
    shape.len(p.orgs.len());
    for org in &p.orgs {
        put(&mut shape, &mut text, org.id());
        put(&mut shape, &mut text, org.name());
        for s in [org.full_name(), org.avatar_url(), org.plan()] {
            opt(&mut shape, &mut text, s);
        }
        let role = org
            .role()
            .and_then(|role| ROLES.iter().position(|&r| r == role))
            .map_or(0, |i| i as u8 + 1);
        shape.byte(role);
        shape.byte(tri(org.can_pay()));
        shape.len(org.security_restrictions().len());
        for r in org.security_restrictions() {
            put(&mut shape, &mut text, r);
        }
    }
    (shape, text)
}

/// Hands out the text's strings in order, as the shape gives their lengths.
struct Cursor<'a> {
    shape: Reader<'a>,
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, len: usize) -> Option<Span> {
        let end = self.at.checked_add(len)?;
        if end > self.text.len() || !self.text.is_char_boundary(end) {
            return None;
        }
        let span = Span {
            start: u32::try_from(self.at).ok()?,
            len: u32::try_from(len).ok()?,
        };
        self.at = end;
        Some(span)
    }

    fn span(&mut self) -> Option<Span> {
        let len = self.shape.len(MAX_TEXT)?;
        self.take(len)
    }

    fn opt_span(&mut self) -> Option<Option<Span>> {
        match self.shape.len(MAX_TEXT + 1)? {
            0 => Some(None),
            n => self.take(n - 1).map(Some),
        }
    }

    fn str(&self, span: Span) -> &str {
        let start = span.start as usize;
        &self.text[start..start + span.len as usize]
    }

    fn string(&mut self) -> Option<String> {
        let span = self.span()?;
        Some(self.str(span).to_owned())
    }

    /// The next string, sharing the text: no allocation.
    fn text(&mut self, shared: &Arc<str>) -> Option<Text> {
        Text::of(shared, self.span()?)
    }

    fn opt_text(&mut self, shared: &Arc<str>) -> Option<Option<Text>> {
        match self.opt_span()? {
            None => Some(None),
            Some(span) => Text::of(shared, span).map(Some),
        }
    }
}

fn profile_from(shape: &[u8], text: &str) -> Option<Profile> {
    let shared: Arc<str> = text.into();
    let mut c = Cursor {
        shape: Reader(shape),
        text,
        at: 0,
    };
    let sub = c.text(&shared)?;
    let preferred_username = c.text(&shared)?;
    let [name, picture, profile, website, email] = [(); 5].map(|()| c.opt_text(&shared));
    let flags = c.shape.byte()?;
    // Every organization takes at least 7 bytes of shape.
    let count = c.shape.len(c.shape.0.len() / 7)?;
    let mut orgs = Vec::with_capacity(count);
    for _ in 0..count {
        let fields = OrgSpans {
            sub: c.span()?,
            name: c.span()?,
            full_name: c.opt_span()?,
            picture: c.opt_span()?,
            plan: c.opt_span()?,
            role: match c.shape.byte()? {
                0 => None,
                n => Some(*ROLES.get(usize::from(n) - 1)?),
            },
            can_pay: untri(c.shape.byte()?)?,
            security_restrictions: {
                let n = c.shape.len(c.shape.0.len())?;
                (0..n).map(|_| c.string()).collect::<Option<_>>()?
            },
        };
        orgs.push(HfOrg::from_spans(shared.clone(), fields));
    }
    if !c.shape.is_empty() || c.at != text.len() || flags >> 5 != 0 {
        return None;
    }
    Some(Profile {
        sub,
        preferred_username,
        name: name?,
        picture: picture?,
        profile: profile?,
        website: website?,
        email: email?,
        email_verified: untri(flags & 3)?,
        is_pro: flags & 4 != 0,
        can_pay: untri(flags >> 3 & 3)?,
        orgs,
    })
}

/// A format 1 or 2 (JSON) record.
fn decode_json(plain: &[u8]) -> Option<SessionRecord> {
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

/// The layout of formats 1 and 2 around a tokens JSON and a profile JSON (compressed
/// when over 1 KiB), as earlier versions wrote it: for tests of reading old cookies.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn lay_out(tokens: &[u8], profile: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(tokens.len()).ok()?;
    let deflated;
    let (format, profile) = if profile.len() > 1024 {
        deflated = miniz_oxide::deflate::compress_to_vec(profile, 6);
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

/// The parts of a format 1 or 2 record's plaintext.
struct Layout<'a> {
    tokens: &'a [u8],
    profile: &'a [u8],
    /// Whether `profile` is compressed.
    deflated: bool,
}

/// Splits `plain` into its parts, or `None` when it is not format 1 or 2.
fn split(plain: &[u8]) -> Option<Layout<'_>> {
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
fn inflate(profile: &[u8]) -> Option<Vec<u8>> {
    decompress_to_vec_with_limit(profile, MAX_TEXT).ok()
}

/// The record from its tokens JSON and its (inflated) profile JSON.
fn parse(tokens: &[u8], profile: &[u8]) -> Option<SessionRecord> {
    let mut record: SessionRecord = serde_json::from_slice(tokens).ok()?;
    record.profile = serde_json::from_slice::<Profile>(profile).ok()?;
    Some(record)
}

/// The profile (text and shape) of a format 3 plaintext, unpacked and decompressed:
/// the step of opening a session that the benches time apart.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn text_of(plain: &[u8]) -> Option<Vec<u8>> {
    let (&BINARY, rest) = plain.split_first()? else {
        return None;
    };
    let mut r = Reader(rest);
    tokens(&mut r)?;
    r.len(MAX_TEXT)?;
    r.packed()
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
    fn records_are_written_in_the_binary_format() {
        assert_eq!(encode(&record(1)).unwrap()[0], BINARY);
        assert_eq!(encode(&record(40)).unwrap()[0], BINARY);
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
        assert_eq!(back.profile_at, r.profile_at);
        assert_eq!(back.access_token.expose(), "hf_oauth_secret_token");
        assert_eq!(
            back.refresh_token.as_ref().map(Secret::expose),
            Some("hf_oauth_refresh")
        );
    }

    /// Every field of a profile, each optional one both absent and present, survives
    /// the binary format.
    #[test]
    fn every_profile_field_round_trips() {
        let full = r#"{"sub":"0123456789abcdef01234567","preferred_username":"alice","name":"Alice ✓",
            "picture":"https://cdn-avatars.huggingface.co/v1/production/uploads/1600000000000-0123456789abcdef01234567.png",
            "profile":"https://huggingface.co/alice","website":"https://example.com","email":"a@x.org",
            "email_verified":false,"isPro":true,"canPay":true,
            "orgs":[{"sub":"aa","name":"Acme Inc","preferred_username":"acme","picture":"p","plan":"team",
            "roleInOrg":"no_access","canPay":false,"securityRestrictions":["mfa","sso"]},
            {"sub":"bb","preferred_username":"hf","roleInOrg":"admin","canPay":true},
            {"sub":"","preferred_username":""}]}"#;
        let bare = r#"{"sub":"x","preferred_username":"bob"}"#;
        for json in [full, bare] {
            let mut r = record(0);
            r.profile = serde_json::from_str(json).unwrap();
            let back = decode(&encode(&r).unwrap()).unwrap();
            assert!(back.profile == r.profile, "{json}");
        }
    }

    #[test]
    fn tokens_sit_outside_the_compressed_profile() {
        let plain = encode(&record(40)).unwrap();
        let token = b"hf_oauth_secret_token";
        let at = plain.windows(token.len()).position(|w| w == token);
        assert_eq!(at, Some(2), "the access token is written plain, first");
        let text = text_of_plain(&plain);
        assert!(
            text.contains("carol") && !text.contains("hf_oauth"),
            "{text}"
        );
    }

    fn text_of_plain(plain: &[u8]) -> String {
        String::from_utf8_lossy(&text_of(plain).unwrap()).into_owned()
    }

    /// Sessions written by earlier versions (JSON, the profile DEFLATEd over 1 KiB)
    /// still open: an upgrade signs nobody out.
    #[test]
    fn records_in_the_json_formats_still_open() {
        for orgs in [1, 40] {
            let r = record(orgs);
            let tokens = serde_json::to_vec(&r).unwrap();
            let profile = serde_json::to_vec(&r.profile).unwrap();
            let old = lay_out(&tokens, &profile).unwrap();
            assert_eq!(old[0], if orgs == 1 { PLAIN } else { DEFLATED });
            let back = decode(&old).unwrap();
            assert!(back.profile == r.profile);
            assert_eq!(back.access_token.expose(), r.access_token.expose());
        }
    }

    /// A compressed JSON profile inflating to exactly 256 KiB decodes; one byte more
    /// does not.
    #[test]
    fn profiles_inflating_past_256_kib_are_refused() {
        let tokens = serde_json::to_vec(&record(0)).unwrap();
        let profile = |len: usize| {
            let head = r#"{"sub":"abc","preferred_username":"carol","name":""#;
            let tail = r#""}"#;
            format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len())).into_bytes()
        };
        let at_cap = lay_out(&tokens, &profile(MAX_TEXT)).unwrap();
        let past_cap = lay_out(&tokens, &profile(MAX_TEXT + 1)).unwrap();
        assert_eq!((at_cap[0], past_cap[0]), (DEFLATED, DEFLATED));
        assert!(
            past_cap.len() < 2048,
            "a small cookie inflates past the cap"
        );
        let decoded = decode(&at_cap).expect("a profile at the cap decodes");
        let name_len = decoded.profile.name.as_deref().map(str::len);
        assert_eq!(name_len, Some(MAX_TEXT - 52), "the whole profile was read");
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
        wrong_format[0] = 4;
        assert!(decode(&wrong_format).is_none());
        for cut in 0..plain.len() {
            assert!(decode(&plain[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = plain.clone();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing bytes");
        // Any one byte changed: refused or decoded, never a panic.
        for at in 0..plain.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut changed = plain.clone();
                changed[at] ^= mask;
                let _ = decode(&changed);
            }
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes after the format byte never panic the decoder.
        #[test]
        fn arbitrary_binary_records_do_not_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let mut plain = vec![BINARY];
            plain.extend_from_slice(&bytes);
            let _ = decode(&plain);
        }
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
