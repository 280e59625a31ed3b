//! The cookie cipher: AES-256-GCM under keys derived with HKDF-SHA256, in a key ring.
//!
//! A sealed value is `base64url(key id (4 bytes) || nonce (12) || ciphertext || tag)`.
//! The newest key seals; every key in the ring opens, so rotating `HF_AUTH_SECRET`
//! (moving the old value to `HF_AUTH_OLD_SECRETS`) keeps sessions.
//!
//! **Binding (format v2).** Each key is derived (HKDF-SHA256, salt
//! `tower-hf-auth cookie keys v2`) from the secret *and* the app's OAuth client id and
//! session cookie name, and the associated data of every value is the client id and the
//! name of the cookie it travels in. So a value cannot be moved from one cookie to
//! another, and two apps that share `HF_AUTH_SECRET` (but not their client id or
//! cookie name) never open each other's cookies. Values sealed by version 1 (keys bound
//! to the secret only) no longer open: they are treated as a broken cookie, cleared,
//! and the user signs in again once.
//!
//! **Key material from the client secret.** Without `HF_AUTH_SECRET`, a Space's
//! injected `OAUTH_CLIENT_SECRET` is turned into key material with HKDF-SHA256 under the
//! fixed label `tower-hf-auth cookie secret from OAUTH_CLIENT_SECRET v1`
//! ([`secret_from_client_secret`]), so sessions survive a restart without another
//! secret, as in Hugging Face's own Python integration.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Secret;

/// Sealed values' base64url, SIMD-accelerated: on a cache miss, decoding the cookie
/// with the scalar `base64` engine was about a sixth of opening it. Strict as that
/// engine is (no padding, no non-canonical trailing bits); a test holds the two to the
/// same answers.
const SEALED_B64: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// A sealed value's bytes, before decryption; `None` unless it is strict base64url.
pub(crate) fn decode_sealed(value: &str) -> Option<Vec<u8>> {
    SEALED_B64.decode_to_vec(value).ok()
}

const KEY_ID_LEN: usize = 4;
const TAG_LEN: usize = 16;
const SALT: &[u8] = b"tower-hf-auth cookie keys v2";
/// The fixed, versioned label of [`secret_from_client_secret`]: changing it signs
/// every Space's users out, so it only changes with a new version number.
const CLIENT_SECRET_LABEL: &[u8] = b"tower-hf-auth cookie secret from OAUTH_CLIENT_SECRET v1";

/// What every key and every value is bound to besides the secret: the app's OAuth
/// client id and its session cookie name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) cookie_name: &'a str,
}

/// `len || bytes` for each part, so no two different lists of parts encode alike.
fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Cookie key material derived from the OAuth client secret (HKDF-SHA256 under a
/// fixed, versioned label): the same client secret gives the same key after a restart.
pub(crate) fn secret_from_client_secret(client_secret: &Secret) -> Secret {
    let prk =
        Salt::new(HKDF_SHA256, CLIENT_SECRET_LABEL).extract(client_secret.expose().as_bytes());
    let mut material = [0u8; 32];
    prk.expand(&[b"cookie key material"], Len(32))
        .and_then(|okm| okm.fill(&mut material))
        .expect("HKDF output length is valid");
    Secret::new(URL_SAFE_NO_PAD.encode(material))
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

struct CookieKey {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
}

/// The keys that seal and open cookies. The first key seals; all keys open.
pub(crate) struct KeyRing {
    keys: Vec<CookieKey>,
    /// The client id, framed, that starts every value's associated data.
    client_id: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn derive(material: &[u8], binding: Binding<'_>) -> CookieKey {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(material);
    let context = framed(&[binding.client_id.as_bytes(), binding.cookie_name.as_bytes()]);
    let mut key = [0u8; 32];
    let mut id = [0u8; KEY_ID_LEN];
    // Both expansions ask for lengths far below HKDF-SHA256's 255 * 32 byte limit.
    prk.expand(&[b"aes-256-gcm", &context], Len(32))
        .and_then(|okm| okm.fill(&mut key))
        .expect("HKDF output length is valid");
    prk.expand(&[b"key-id", &context], Len(KEY_ID_LEN))
        .and_then(|okm| okm.fill(&mut id))
        .expect("HKDF output length is valid");
    let unbound = UnboundKey::new(&AES_256_GCM, &key).expect("32 bytes is an AES-256 key");
    CookieKey {
        id,
        key: LessSafeKey::new(unbound),
    }
}

impl KeyRing {
    /// A ring from the current secret and older ones (newest first), bound to the
    /// app's client id and session cookie name.
    pub(crate) fn for_app<'a>(
        current: &'a Secret,
        old: impl IntoIterator<Item = &'a Secret>,
        binding: Binding<'_>,
    ) -> Self {
        let keys = std::iter::once(current)
            .chain(old)
            .map(|s| derive(s.expose().as_bytes(), binding))
            .collect();
        Self {
            keys,
            client_id: framed(&[binding.client_id.as_bytes()]),
            rng: SystemRandom::new(),
        }
    }

    /// A ring from secrets alone (an empty client id and cookie name), for tests.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_secrets<'a>(
        current: &'a Secret,
        old: impl IntoIterator<Item = &'a Secret>,
    ) -> Self {
        let binding = Binding {
            client_id: "",
            cookie_name: "",
        };
        Self::for_app(current, old, binding)
    }

    /// A ring with one random key: sessions do not survive a restart.
    #[cfg(test)]
    pub(crate) fn random() -> Self {
        let rng = SystemRandom::new();
        let mut material = [0u8; 32];
        rng.fill(&mut material).expect("system randomness");
        let binding = Binding {
            client_id: "",
            cookie_name: "",
        };
        Self {
            keys: vec![derive(&material, binding)],
            client_id: Vec::new(),
            rng,
        }
    }

    /// The associated data of a value in the cookie `name`: the client id and `name`.
    fn aad(&self, name: &str) -> Vec<u8> {
        let mut aad = self.client_id.clone();
        aad.extend_from_slice(name.as_bytes());
        aad
    }

    /// Fills `buf` with secure random bytes.
    pub(crate) fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut buf = [0u8; N];
        self.rng.fill(&mut buf).expect("system randomness");
        buf
    }

    /// Encrypts `plaintext` for the cookie named `name`.
    pub(crate) fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        let key = &self.keys[0];
        let nonce_bytes: [u8; NONCE_LEN] = self.random_bytes();
        let mut buf = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&key.id);
        buf.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(self.aad(name)),
                &mut body,
            )
            .expect("AES-GCM sealing of a cookie-sized value");
        buf.extend_from_slice(&body);
        SEALED_B64.encode_to_string(buf)
    }

    /// Decrypts a value sealed for the cookie named `name`; `None` when it is not
    /// base64, was sealed under a key not in the ring, or was altered in any way.
    pub(crate) fn open(&self, name: &str, value: &str) -> Option<Vec<u8>> {
        let mut raw = decode_sealed(value)?;
        if raw.len() < KEY_ID_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let key = self.keys.iter().find(|k| k.id[..] == raw[..KEY_ID_LEN])?;
        let nonce =
            Nonce::try_assume_unique_for_key(&raw[KEY_ID_LEN..KEY_ID_LEN + NONCE_LEN]).ok()?;
        let body = &mut raw[KEY_ID_LEN + NONCE_LEN..];
        let len = key
            .key
            .open_in_place(nonce, Aad::from(self.aad(name)), body)
            .ok()?
            .len();
        // The plaintext, in the buffer it was decrypted in: no second allocation.
        raw.copy_within(KEY_ID_LEN + NONCE_LEN..KEY_ID_LEN + NONCE_LEN + len, 0);
        raw.truncate(len);
        Some(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(secret: &str) -> KeyRing {
        KeyRing::from_secrets(&Secret::new(secret), [])
    }

    #[test]
    fn round_trip() {
        let r = ring("a-long-enough-secret-for-testing-purposes");
        let sealed = r.seal("session", b"hello");
        assert_eq!(r.open("session", &sealed).as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn any_bit_flip_is_rejected() {
        let r = ring("a-long-enough-secret-for-testing-purposes");
        let sealed = r.seal("session", b"payload");
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut m = raw.clone();
                m[i] ^= bit;
                assert!(
                    r.open("session", &URL_SAFE_NO_PAD.encode(&m)).is_none(),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn truncated_garbage_and_foreign_values_are_rejected() {
        let r = ring("a-long-enough-secret-for-testing-purposes");
        let sealed = r.seal("session", b"payload");
        assert!(r.open("session", &sealed[..sealed.len() - 1]).is_none());
        assert!(r.open("session", &sealed[..10]).is_none());
        assert!(r.open("session", "").is_none());
        assert!(r.open("session", "not base64 !!!").is_none());
        let other = ring("another-secret-that-is-long-enough-too");
        assert!(other.open("session", &sealed).is_none());
    }

    #[test]
    fn value_is_bound_to_cookie_name() {
        let r = ring("a-long-enough-secret-for-testing-purposes");
        let sealed = r.seal("pending", b"payload");
        assert!(r.open("session", &sealed).is_none());
    }

    #[test]
    fn old_keys_open_new_key_seals() {
        let old = ring("the-old-secret-that-is-long-enough-xxxxx");
        let sealed_old = old.seal("s", b"v");
        let rotated = KeyRing::from_secrets(
            &Secret::new("the-new-secret-that-is-long-enough-yyyyy"),
            [&Secret::new("the-old-secret-that-is-long-enough-xxxxx")],
        );
        assert_eq!(rotated.open("s", &sealed_old).as_deref(), Some(&b"v"[..]));
        let sealed_new = rotated.seal("s", b"w");
        assert!(
            old.open("s", &sealed_new).is_none(),
            "sealed with the new key"
        );
    }

    fn app(secret: &str, client_id: &str, cookie_name: &str) -> KeyRing {
        let binding = Binding {
            client_id,
            cookie_name,
        };
        KeyRing::for_app(&Secret::new(secret), [], binding)
    }

    #[test]
    fn apps_sharing_a_secret_do_not_open_each_others_cookies() {
        let secret = "a secret two apps share, long enough for it";
        let a = app(secret, "client-a", "hf_auth");
        let sealed = a.seal("hf_auth", b"session");
        assert_eq!(
            app(secret, "client-a", "hf_auth")
                .open("hf_auth", &sealed)
                .as_deref(),
            Some(&b"session"[..]),
            "the same app after a restart opens it"
        );
        assert!(
            app(secret, "client-b", "hf_auth")
                .open("hf_auth", &sealed)
                .is_none()
        );
        assert!(
            app(secret, "client-a", "other")
                .open("hf_auth", &sealed)
                .is_none()
        );
        // Framing: moving bytes between the client id and the name changes the key.
        assert!(
            app(secret, "client-ah", "f_auth")
                .open("hf_auth", &sealed)
                .is_none()
        );
    }

    #[test]
    fn key_from_the_client_secret_is_stable_and_not_the_secret() {
        let client_secret = Secret::new("oauth-client-secret-of-a-space");
        let a = secret_from_client_secret(&client_secret);
        let b = secret_from_client_secret(&Secret::new("oauth-client-secret-of-a-space"));
        assert_eq!(
            a.expose(),
            b.expose(),
            "a restart derives the same material"
        );
        assert!(a.expose().len() >= 32);
        assert!(!a.expose().contains("oauth-client-secret"));
        let other = secret_from_client_secret(&Secret::new("another-client-secret"));
        assert_ne!(a.expose(), other.expose());
    }

    #[test]
    fn random_rings_differ() {
        let a = KeyRing::random();
        let b = KeyRing::random();
        assert!(b.open("s", &a.seal("s", b"v")).is_none());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn ring() -> KeyRing {
            KeyRing::from_secrets(&Secret::new("a-long-enough-secret-for-property-tests"), [])
        }

        /// A change to a sealed value: a byte of the decoded value flipped, the value
        /// cut short, or bytes appended.
        #[derive(Debug, Clone)]
        enum Mutation {
            Flip { at: usize, mask: u8 },
            Truncate { keep: usize },
            Append(Vec<u8>),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            prop_oneof![
                (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
                any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
                prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
            ]
        }

        fn apply(sealed: &str, mutation: &Mutation) -> String {
            let mut raw = URL_SAFE_NO_PAD
                .decode(sealed)
                .expect("sealed values are base64");
            match mutation {
                Mutation::Flip { at, mask } => {
                    let at = at % raw.len();
                    raw[at] ^= mask;
                }
                Mutation::Truncate { keep } => raw.truncate(keep % raw.len()),
                Mutation::Append(extra) => raw.extend_from_slice(extra),
            }
            URL_SAFE_NO_PAD.encode(raw)
        }

        proptest! {
            /// The SIMD base64 reads and writes sealed values exactly as the `base64`
            /// crate's strict engine does: the same bytes, or an error for the same
            /// strings (padding, stray characters, a length of 4n + 1, non-canonical
            /// trailing bits).
            #[test]
            fn sealed_base64_agrees_with_the_base64_crate(
                text in "[A-Za-z0-9_=+/ -]{0,80}",
                bytes in prop::collection::vec(any::<u8>(), 0..200),
            ) {
                prop_assert_eq!(
                    SEALED_B64.decode_to_vec(&text).ok(),
                    URL_SAFE_NO_PAD.decode(&text).ok()
                );
                let encoded = SEALED_B64.encode_to_string(&bytes);
                prop_assert_eq!(&encoded, &URL_SAFE_NO_PAD.encode(&bytes));
                // Every string one character away from a valid one, too.
                for (i, c) in encoded.char_indices() {
                    for other in ['A', 'B', 'P', 'Q', 'g', '_', '-', '='] {
                        if other != c {
                            let mut text = encoded.clone();
                            text.replace_range(i..=i, &other.to_string());
                            prop_assert_eq!(
                                SEALED_B64.decode_to_vec(&text).ok(),
                                URL_SAFE_NO_PAD.decode(&text).ok()
                            );
                        }
                    }
                }
            }

            #[test]
            fn what_is_sealed_opens_unchanged(
                name in "[a-z_.0-9]{1,20}",
                plain in prop::collection::vec(any::<u8>(), 0..2048),
            ) {
                let r = ring();
                let sealed = r.seal(&name, &plain);
                prop_assert_eq!(r.open(&name, &sealed), Some(plain));
            }

            #[test]
            fn any_mutation_is_rejected(
                plain in prop::collection::vec(any::<u8>(), 0..256),
                change in mutation(),
            ) {
                let r = ring();
                let sealed = r.seal("session", &plain);
                prop_assert_eq!(r.open("session", &apply(&sealed, &change)), None);
            }

            #[test]
            fn a_value_opens_only_under_its_own_name(
                name in "[a-z]{1,8}",
                other in "[a-z]{1,8}",
            ) {
                prop_assume!(name != other);
                let r = ring();
                prop_assert_eq!(r.open(&other, &r.seal(&name, b"v")), None);
            }

            #[test]
            fn arbitrary_text_never_opens(value in ".{0,200}") {
                prop_assert_eq!(ring().open("session", &value), None);
            }
        }
    }

    /// Every seal draws a fresh nonce (AES-GCM must never reuse one under a key), so
    /// the same session sealed twice gives two different values that both open; the
    /// random bytes behind sign-in states differ from call to call too.
    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let r = ring("a-long-enough-secret-for-testing-purposes");
        let (a, b) = (r.seal("session", b"same"), r.seal("session", b"same"));
        assert_ne!(a, b);
        assert_eq!(r.open("session", &a).as_deref(), Some(&b"same"[..]));
        assert_eq!(r.open("session", &b).as_deref(), Some(&b"same"[..]));
        assert_ne!(r.random_bytes::<32>(), r.random_bytes::<32>());
    }
}
