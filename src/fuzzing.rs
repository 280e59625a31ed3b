//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that
//! replay their corpus (`tests/fuzz_corpus.rs`), and [`SessionStages`], the steps of
//! opening a session cookie one by one for the benches (`benches/session.rs`).
//!
//! Enabled only by the `fuzzing` feature; not part of the public API and exempt from
//! semver. Each function takes arbitrary bytes, runs the crate's own parser on them
//! exactly as a request or a provider answer would reach it, and panics only when an
//! invariant the crate promises is broken (a forged cookie opening, an off-site return
//! path, a header value that could not be sent). Any other panic is a bug too.

use std::sync::OnceLock;
use std::time::Duration;

use http::header::{COOKIE, HeaderMap, HeaderValue};
use url::Url;

use crate::Secret;
use crate::id_token::{self, Expectations, KeySet};
use crate::provider::http::parse_json;
use crate::provider::{ProviderMetadata, TokenResponse, WhoAmI};
use crate::session::cache::OpenedSessions;
use crate::session::codec::KeyRing;
use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::{Loaded, SessionCookies};
use crate::user::{HfUser, Profile, Scopes, SessionRecord};

const COOKIE_NAME: &str = "hf_auth";
const ISSUER: &str = "https://huggingface.co";
const CLIENT_ID: &str = "fuzz-client";
const NONCE: &str = "fuzz-nonce";
const NOW: u64 = 1_700_000_000;

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
/// - 2: a whole plaintext sealed with the real key, so the layout's parsing and the
///   inflater see arbitrary bytes.
pub fn session_cookie(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sessions = sessions();
    let mut headers = HeaderMap::new();
    if mode % 3 == 0 {
        for line in rest.split(|&b| b == b'\n') {
            if let Ok(value) = HeaderValue::from_bytes(line) {
                headers.append(COOKIE, value);
            }
        }
        let loaded = sessions.load(&headers, NOW, 0, opened());
        assert!(
            !matches!(loaded, Loaded::Valid(_) | Loaded::Stale { .. }),
            "a cookie not sealed by this crate opened as a session"
        );
        if let Loaded::Invalid { present } = loaded {
            let cleared = sessions.clear(present);
            assert_eq!(cleared.len(), present.max(1), "every chunk is cleared");
        }
    } else {
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
        if let Loaded::Valid(user) = sessions.load(&headers, NOW, 0, opened()) {
            // Read again, from the opened-session cache: the same user.
            let Loaded::Valid(again) = sessions.load(&headers, NOW, 0, opened()) else {
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
}

/// The steps of opening a session cookie one at a time, so a bench can time each: what
/// a request pays when its cookie is not in the opened-session cache.
#[derive(Debug)]
pub struct SessionStages {
    name: String,
    keys: KeyRing,
}

impl SessionStages {
    /// Opens cookies named `name` sealed under `secret`.
    #[must_use]
    pub fn new(secret: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            keys: KeyRing::from_secrets(&Secret::from(secret), []),
        }
    }

    /// Step 1: the cookie value's base64 decoded.
    #[must_use]
    pub fn base64(value: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()
    }

    /// Steps 1 and 2: the value decoded and decrypted (AES-256-GCM): the record's
    /// plaintext.
    #[must_use]
    pub fn open(&self, value: &str) -> Option<Vec<u8>> {
        self.keys.open(&self.name, value)
    }

    /// Step 3: the profile's JSON, inflated when it is compressed.
    #[must_use]
    pub fn inflate(plain: &[u8]) -> Option<Vec<u8>> {
        let layout = crate::session::record::split(plain)?;
        if layout.deflated {
            crate::session::record::inflate(layout.profile)
        } else {
            Some(layout.profile.to_vec())
        }
    }

    /// Step 4: the record parsed from the plaintext's tokens and the inflated profile;
    /// the username.
    #[must_use]
    pub fn parse(plain: &[u8], profile: &[u8]) -> Option<String> {
        let layout = crate::session::record::split(plain)?;
        let record = crate::session::record::parse(layout.tokens, profile)?;
        Some(record.profile.preferred_username)
    }
}

/// Reads every field of a user, as handlers and guards do.
fn touch_user(user: &HfUser) {
    let _ = (user.id(), user.username(), user.name(), user.email());
    for org in user.orgs() {
        assert!(
            user.org(org.name()).is_some(),
            "an org listed is found by name"
        );
    }
    let _ = user.scopes().iter().count();
    let _ = format!("{user:?}");
}

/// The callback's query string, as the layer receives it in a request URI.
pub fn callback_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/oauth/callback?{query}").parse::<http::Uri>() else {
        return;
    };
    let query = uri.query().unwrap_or("");
    if let Ok(params) = crate::flow::callback::CallbackParams::parse(query) {
        let _ = (params.state, params.code, params.iss, params.error);
        let _ = crate::flow::callback::tame(params.error_description.as_deref().unwrap_or(""));
    }
}

/// The post-login return path. Whatever comes in, what goes out is a same-site path
/// that can be sent as a `Location` header.
pub fn return_to(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    crate::flow::return_to::assert_stays_on_site(&crate::flow::return_to::sanitize(&raw));
}

fn key_set() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        // Two well-formed 2048-bit RSA public keys, one with a `kid` and one without:
        // enough for the key selection paths; no fuzzed signature verifies anyway.
        let n = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            [0xC3u8; 256],
        );
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"AQAB"}},{{"kty":"RSA","n":"{n}","e":"AQAB"}}]}}"#
        );
        KeySet::from_jwks_json(jwks.as_bytes()).expect("a valid key set")
    })
}

/// ID token parsing. The first byte picks what the rest is:
/// - even: a whole compact JWT, verified against a fixed key set (header, key
///   selection, signature);
/// - odd: `header JSON \n claims JSON`: the header is checked as in a token and the
///   claims go through the same parsing and checks a verified token's do.
pub fn id_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let expect = Expectations {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        nonce: NONCE,
        leeway: Duration::from_secs(60),
        now: NOW,
    };
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        let verified = id_token::verify(&token, key_set(), &expect);
        assert!(verified.is_err(), "a fuzzed token verified");
        if let Err(err) = verified {
            let _ = err.to_string();
        }
    } else {
        let mut parts = rest.splitn(2, |&b| b == b'\n');
        let header = parts.next().unwrap_or_default();
        let claims = parts.next().unwrap_or_default();
        let b64 = |bytes: &[u8]| {
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
        };
        let token = format!("{}.{}.c2ln", b64(header), b64(claims));
        let _ = id_token::check_header(&token).map_err(|err| err.to_string());
        match id_token::parse_claims(claims, &expect) {
            Ok(verified) => {
                assert_eq!(verified.iss, ISSUER);
                assert!(verified.aud.iter().any(|a| a == CLIENT_ID));
                assert_eq!(verified.nonce.as_deref(), Some(NONCE));
                assert!(!verified.sub.is_empty());
            }
            Err(err) => {
                let _ = err.to_string();
            }
        }
    }
}

/// The provider's JSON answers: userinfo, `/api/whoami-v2`, the token endpoint,
/// discovery and the key set, each parsed from the same bytes.
pub fn provider_json(data: &[u8]) {
    let issuer = Url::parse("https://huggingface.co/").expect("a valid issuer");
    let json = Some("application/json");
    if let Ok(mut profile) = parse_json::<Profile>("userinfo", data, json) {
        profile.normalize();
        let record = SessionRecord {
            profile,
            scopes: Scopes::parse("openid profile"),
            access_token: Secret::from("hf_oauth_fuzz"),
            expires_at: NOW + 3600,
            refresh_token: None,
            asked: Scopes::default(),
        };
        touch_user(&HfUser::from_record(record));
    }
    if let Ok(who) = WhoAmI::from_json(&issuer, data, json) {
        let _ = format!("{who:?}");
    }
    if let Ok(tokens) = TokenResponse::from_json(data, json) {
        assert!(!tokens.access_token.expose().is_empty());
        assert!(tokens.token_type.eq_ignore_ascii_case("bearer"));
        let _ = format!("{tokens:?}");
    }
    if let Ok(metadata) = ProviderMetadata::from_json(ISSUER, data) {
        let _ = format!("{metadata:?}");
    }
    if let Ok(keys) = KeySet::from_jwks_json(data) {
        let _ = keys.len();
    }
}
