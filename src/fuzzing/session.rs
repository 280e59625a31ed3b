//! The session cookie's fuzz target and [`SessionStages`], the steps of opening a
//! session cookie one by one for the benches.

use std::sync::OnceLock;

use http::header::{COOKIE, HeaderMap, HeaderValue};

use super::{COOKIE_NAME, NOW, touch_user};
use crate::Secret;
use crate::session::cache::OpenedSessions;
use crate::session::codec::KeyRing;
use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::{Loaded, SessionCookies, SessionTiming};
use crate::user::{Profile, Scopes, SessionRecord};

fn sessions() -> &'static SessionCookies {
    static SESSIONS: OnceLock<SessionCookies> = OnceLock::new();
    SESSIONS.get_or_init(|| SessionCookies {
        name: COOKIE_NAME.to_owned(),
        attrs: CookieAttrs {
            secure: true,
            same_site: SameSite::Lax,
        },
        keys: KeyRing::from_secrets(
            &Secret::from("the fuzzing secret, thirty-two characters or more"),
            [],
        ),
        timing: SessionTiming::default(),
        server: false,
    })
}

/// The opened-session cache shared by every run, as a layer's is by its requests.
fn opened() -> &'static OpenedSessions {
    static OPENED: OnceLock<OpenedSessions> = OnceLock::new();
    OPENED.get_or_init(|| OpenedSessions::new(1 << 20))
}

/// The session cookie decoder. The first byte picks what the rest is:
/// - 0 (mod 3): raw `Cookie` header lines (split on `\n`), as an attacker's browser
///   sends them. They must never open as a session: only this crate's key seals one.
/// - 1: `tokens JSON \n profile JSON`, laid out and compressed as a session record's
///   plaintext and sealed with the real key, so the record's JSON, its normalization
///   and the expiry check are reached;
/// - 2: a whole plaintext sealed with the real key, so the binary format's reader (a
///   first byte of 3), the JSON formats' layout and the inflater see arbitrary bytes.
pub fn session_cookie(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sessions = sessions();
    if mode % 3 == 0 {
        foreign_cookies(sessions, rest);
    } else {
        sealed_by_us(sessions, mode, rest);
    }
}

/// Raw `Cookie` header lines: never a session, and every chunk they carry is cleared by
/// a sign-out and overwritten or deleted by a new session.
fn foreign_cookies(sessions: &SessionCookies, rest: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    let chunks = chunks_sent(&headers);
    let loaded = sessions.load(&headers, || NOW, 0, opened());
    assert!(
        !matches!(loaded, Loaded::Valid(_) | Loaded::Stale { .. }),
        "a cookie not sealed by this crate opened as a session"
    );
    let present = match loaded {
        Loaded::Invalid { present } => present,
        _ => {
            assert!(
                chunks.is_empty(),
                "session chunks {chunks:?} read as no session"
            );
            return;
        }
    };
    assert!(
        !chunks.is_empty(),
        "no session chunk read as an invalid session"
    );
    // Signing out, or an invalid session, clears every chunk the browser sent...
    let cleared = set_cookie_names(&sessions.clear(present), true);
    for chunk in &chunks {
        assert!(cleared.contains(chunk), "chunk {chunk} is not cleared");
    }
    // ... and so does a new session written over it: each chunk is overwritten or
    // deleted.
    let record = SessionRecord {
        profile: Profile::default(),
        scopes: Scopes::parse("openid"),
        access_token: Secret::from("hf_oauth_fuzz"),
        expires_at: NOW + 3600,
        refresh_token: None,
        asked: Scopes::default(),
        profile_at: NOW,
        stored: None,
    };
    let written = sessions
        .save(&record, present, NOW)
        .expect("a small session fits");
    let written = set_cookie_names(&written, false);
    for chunk in &chunks {
        assert!(
            written.contains(chunk),
            "chunk {chunk} survives a new session"
        );
    }
}

/// A plaintext sealed with the real key: if it opens as a valid session, the cache
/// answers the same user, it is unexpired and it round-trips.
fn sealed_by_us(sessions: &SessionCookies, mode: u8, rest: &[u8]) {
    let mut headers = HeaderMap::new();
    let plain = if mode % 3 == 1 {
        let mut parts = rest.splitn(2, |&b| b == b'\n');
        let tokens = parts.next().unwrap_or_default();
        let profile = parts.next().unwrap_or_default();
        let Some(plain) = crate::session::record::lay_out(tokens, profile) else {
            return;
        };
        plain
    } else {
        rest.to_vec()
    };
    let sealed = sessions.keys.seal(COOKIE_NAME, &plain);
    let value = HeaderValue::from_str(&format!("{COOKIE_NAME}={sealed}"))
        .expect("a sealed cookie is a valid header value");
    headers.insert(COOKIE, value);
    if let Loaded::Valid(user) = sessions.load(&headers, || NOW, 0, opened()) {
        // Read again, from the opened-session cache: the same user.
        let Loaded::Valid(again) = sessions.load(&headers, || NOW, 0, opened()) else {
            panic!("a cached session no longer loads");
        };
        assert_eq!(again.record().access_token, user.record().access_token);
        assert!(
            user.record().expires_at > NOW,
            "an expired session was accepted"
        );
        touch_user(&user);
        let resaved = sessions
            .save(user.record(), 1, NOW)
            .map(|headers| headers.len());
        assert!(
            // JSON escaping can grow a string sixfold; small inputs must fit.
            resaved.is_ok() || rest.len() > 4_000,
            "a session round trips"
        );
    }
}

/// The session chunks (`hf_auth`, `hf_auth.1` … `hf_auth.9`) the `Cookie` headers
/// carry, found without the crate's cookie reader: every header split on `;`, each pair
/// on its first `=`, names trimmed. A pair whose name or value is not UTF-8 is ignored,
/// as the crate ignores it (the rest of its header still counts).
fn chunks_sent(headers: &HeaderMap) -> Vec<String> {
    let mut chunks = Vec::new();
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (Ok(name), Ok(_)) = (
                std::str::from_utf8(&pair[..eq]),
                std::str::from_utf8(&pair[eq + 1..]),
            ) else {
                continue;
            };
            let name = name.trim();
            let is_chunk = name == COOKIE_NAME
                || (1..crate::session::cookie::MAX_CHUNKS)
                    .any(|i| name == format!("{COOKIE_NAME}.{i}"));
            if is_chunk && !chunks.iter().any(|c| c == name) {
                chunks.push(name.to_owned());
            }
        }
    }
    chunks
}

/// The cookie names `Set-Cookie` headers write (`deleting: false`) or delete
/// (`deleting: true`, `Max-Age=0`). Panics on a header that is neither.
fn set_cookie_names(set_cookies: &[HeaderValue], deleting: bool) -> Vec<String> {
    let mut names = Vec::new();
    for header in set_cookies {
        let header = header.to_str().expect("a Set-Cookie header is ASCII");
        let (name, _) = header
            .split_once('=')
            .expect("a Set-Cookie header names a cookie");
        if !deleting || header.contains("; Max-Age=0;") {
            names.push(name.to_owned());
        }
    }
    names
}

/// The steps of opening a session cookie one at a time, so a bench can time each: what
/// a request pays when its cookie is not in the opened-session cache.
#[derive(Debug)]
pub struct SessionStages {
    name: String,
    keys: KeyRing,
}

impl SessionStages {
    /// Opens cookies named `name` sealed under `secret` by the app with OAuth client
    /// id `client_id` (cookie keys are bound to both).
    #[must_use]
    pub fn new(secret: &str, client_id: &str, name: &str) -> Self {
        let binding = crate::session::codec::Binding {
            client_id,
            cookie_name: name,
        };
        Self {
            name: name.to_owned(),
            keys: KeyRing::for_app(&Secret::from(secret), [], binding),
        }
    }

    /// Step 1: the cookie value's base64 decoded, by the decoder [`open`](Self::open)
    /// uses.
    #[must_use]
    pub fn base64(value: &str) -> Option<Vec<u8>> {
        crate::session::codec::decode_sealed(value)
    }

    /// Steps 1 and 2: the value decoded and decrypted (AES-256-GCM): the record's
    /// plaintext.
    #[must_use]
    pub fn open(&self, value: &str) -> Option<Vec<u8>> {
        self.keys.open(&self.name, value)
    }

    /// Seals `plain` as the app seals a session cookie's value (the inverse of
    /// [`open`](Self::open)), for tests of values written by earlier versions.
    #[must_use]
    pub fn seal(&self, plain: &[u8]) -> String {
        self.keys.seal(&self.name, plain)
    }

    /// Step 3: the profile's text and shape, hex runs unpacked after LZ4
    /// decompression.
    #[must_use]
    pub fn text(plain: &[u8]) -> Option<Vec<u8>> {
        crate::session::record::text_of(plain)
    }

    /// Steps 3 and 4: the whole record decoded from the plaintext (the tokens, the
    /// profile's shape, its text as in step 3 and every string laid out); the username.
    #[must_use]
    pub fn decode(plain: &[u8]) -> Option<String> {
        crate::session::record::decode(plain).map(|r| r.profile.preferred_username.to_string())
    }

    /// The record of a format 3 plaintext written again as earlier versions wrote it
    /// (format 1 or 2: JSON, the profile DEFLATE-compressed over 1 KiB).
    #[must_use]
    pub fn as_json_format(plain: &[u8]) -> Option<Vec<u8>> {
        let record = crate::session::record::decode(plain)?;
        let tokens = serde_json::to_vec(&record).ok()?;
        let profile = serde_json::to_vec(&record.profile).ok()?;
        crate::session::record::lay_out(&tokens, &profile)
    }
}
