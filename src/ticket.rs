//! What makes a server-side store's dump worthless: the ticket a cookie carries, the names keys get,
//! and the sealing of what Redis holds.
//!
//! - A [`Ticket`] is a 128-bit session id, a 256-bit per-session secret and an 8-byte
//!   tag of the user; it travels only in the cookie, sealed by the app's key ring.
//! - [`Names`] turns ids into key names with HMAC-SHA256 under a key derived from the
//!   app secret: a dump shows neither session ids nor user ids.
//! - [`seal`]/[`open`]: AES-256-GCM under a key derived (HKDF-SHA256) from a secret
//!   Redis never sees (the ticket's, or a bearer token), with the associated data the
//!   caller names (the Redis key and the record's version).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::Secret;

const ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;
/// Bytes of the user tag (64 bits: a hash tag, not a secret).
pub(crate) const USER_TAG_LEN: usize = 8;
/// The ticket's format byte.
const FORMAT: u8 = 1;
const TICKET_LEN: usize = 1 + ID_LEN + SECRET_LEN + USER_TAG_LEN;

/// A session's ticket: what the cookie holds instead of the session.
#[derive(Clone)]
pub(crate) struct Ticket {
    id: [u8; ID_LEN],
    secret: [u8; SECRET_LEN],
    user: [u8; USER_TAG_LEN],
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket(..)")
    }
}

impl Ticket {
    /// A new random ticket for the user tagged `user`.
    pub(crate) fn new(user: [u8; USER_TAG_LEN]) -> Self {
        let rng = SystemRandom::new();
        let mut id = [0; ID_LEN];
        let mut secret = [0; SECRET_LEN];
        rng.fill(&mut id).expect("system randomness");
        rng.fill(&mut secret).expect("system randomness");
        Self { id, secret, user }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TICKET_LEN);
        out.push(FORMAT);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.secret);
        out.extend_from_slice(&self.user);
        out
    }

    /// The ticket in `bytes`, when they are one (exact length, known format).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != TICKET_LEN || bytes[0] != FORMAT {
            return None;
        }
        let (id, rest) = bytes[1..].split_at(ID_LEN);
        let (secret, user) = rest.split_at(SECRET_LEN);
        Some(Self {
            id: id.try_into().ok()?,
            secret: secret.try_into().ok()?,
            user: user.try_into().ok()?,
        })
    }

    pub(crate) fn user_tag(&self) -> [u8; USER_TAG_LEN] {
        self.user
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    pub(crate) fn id(&self) -> &[u8] {
        &self.id
    }
}

/// Key names: HMAC-SHA256 of ids under a key derived from the app secret.
pub(crate) struct Names {
    key: hmac::Key,
}

impl fmt::Debug for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Names(..)")
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `len` bytes of HKDF-SHA256 output from `material` under `salt` and `info`.
fn derive(salt: &[u8], material: &[u8], info: &[u8], out: &mut [u8]) {
    Salt::new(HKDF_SHA256, salt)
        .extract(material)
        .expand(&[info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length is valid");
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Names {
    pub(crate) fn new(app_secret: &Secret) -> Self {
        let mut key = [0; 32];
        derive(
            b"tower-hf-auth redis names v1",
            app_secret.expose().as_bytes(),
            b"hmac-sha256",
            &mut key,
        );
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        }
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(data);
        ctx.sign()
    }

    /// The hash tag of the user with id `user_id`.
    pub(crate) fn user_tag(&self, user_id: &str) -> [u8; USER_TAG_LEN] {
        let mut tag = [0; USER_TAG_LEN];
        tag.copy_from_slice(&self.mac(b"user", user_id.as_bytes()).as_ref()[..USER_TAG_LEN]);
        tag
    }

    /// The name of a session id (128 bits, hex).
    pub(crate) fn session(&self, id: &[u8]) -> String {
        hex(&self.mac(b"session", id).as_ref()[..16])
    }

    /// The name of any other secret (a state, a bearer token): 256 bits, hex.
    pub(crate) fn secret(&self, label: &[u8], secret: &[u8]) -> String {
        hex(self.mac(label, secret).as_ref())
    }
}

/// 128 random bits, hex: a lease holder's token.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    hex(&bytes)
}

/// The hex of a user tag.
pub(crate) fn tag_hex(tag: &[u8; USER_TAG_LEN]) -> String {
    hex(tag)
}

fn key_from(secret: &[u8], label: &[u8]) -> LessSafeKey {
    let mut key = [0; 32];
    derive(b"tower-hf-auth redis sealing v1", secret, label, &mut key);
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("32 bytes is an AES-256 key"))
}

/// `plain` sealed under a key derived from `secret` (and `label`), bound to `aad`:
/// `nonce || ciphertext || tag`.
pub(crate) fn seal(secret: &[u8], label: &[u8], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("system randomness");
    let mut body = plain.to_vec();
    key_from(secret, label)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .expect("AES-GCM sealing");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    out
}

/// What [`seal`] sealed, when `secret`, `label` and `aad` are the same and nothing
/// was altered.
pub(crate) fn open(secret: &[u8], label: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key_from(secret, label)
        .open_in_place(nonce, Aad::from(aad), &mut body)
        .ok()?;
    Some(plain.to_vec())
}

/// Where a session read from (or written to) the store lives, beside its record.
#[derive(Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Stored {
    #[cfg(feature = "redis")]
    pub(crate) ticket: Ticket,
    /// The record's version in the store (compare-and-set on write).
    pub(crate) version: u64,
    /// The cookie's value: the sealed ticket.
    pub(crate) cookie: crate::Secret,
    /// `{user tag}.{session name}`: keyed hashes, no secret.
    pub(crate) handle: String,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored")
            .field("version", &self.version)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_refuse_other_shapes() {
        let t = Ticket::new([7; USER_TAG_LEN]);
        let bytes = t.to_bytes();
        let back = Ticket::from_bytes(&bytes).unwrap();
        assert_eq!((back.id(), back.secret()), (t.id(), t.secret()));
        assert_eq!(back.user_tag(), [7; USER_TAG_LEN]);
        assert!(Ticket::from_bytes(&bytes[..bytes.len() - 1]).is_none());
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(Ticket::from_bytes(&other).is_none());
        assert_eq!(format!("{t:?}"), "Ticket(..)");
    }

    #[test]
    fn sealed_values_need_the_same_secret_label_and_aad() {
        let sealed = seal(b"s1", b"session", b"key|1", b"hello");
        assert_eq!(
            open(b"s1", b"session", b"key|1", &sealed).unwrap(),
            b"hello"
        );
        assert!(open(b"s2", b"session", b"key|1", &sealed).is_none());
        assert!(open(b"s1", b"bearer", b"key|1", &sealed).is_none());
        assert!(open(b"s1", b"session", b"key|2", &sealed).is_none());
        assert!(open(b"s1", b"session", b"key|1", &sealed[..4]).is_none());
    }

    #[test]
    fn names_depend_on_the_app_secret_and_hide_their_input() {
        let a = Names::new(&Secret::new("a".repeat(40)));
        let b = Names::new(&Secret::new("b".repeat(40)));
        assert_ne!(a.session(b"id"), b.session(b"id"));
        assert_ne!(a.user_tag("u"), b.user_tag("u"));
        assert_eq!(a.session(b"id").len(), 32);
        assert!(!a.secret(b"state", b"abc").contains("abc"));
    }
}
