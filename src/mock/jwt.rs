//! RSA signing keys, the JWKS entry for them, and hand-made JWTs, including the
//! malformed ones the ID token faults ask for.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use aws_lc_rs::{digest, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// An RS256 signing key with its key id and public parts.
pub(crate) struct SigningKey {
    key_pair: KeyPair,
    kid: String,
    /// Base64url of the modulus (no leading zero byte).
    n: String,
    /// Base64url of the public exponent.
    e: String,
    /// The public key as SPKI PEM, the "secret" of the HS256 key-confusion attack.
    pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key whose `kid` is its RFC 7638 JWK thumbprint.
    pub(crate) fn generate() -> Self {
        // Key generation only fails if the system's randomness is broken.
        let key_pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation failed");
        let public = key_pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()));
        let der = public.as_der().expect("RSA public key encoding failed");
        let pem = pem("PUBLIC KEY", der.as_ref());
        Self {
            key_pair,
            kid,
            n,
            e,
            pem,
        }
    }

    /// This key's entry in the JWKS.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    fn sign_rs256(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("RS256 signing failed");
        sig
    }
}

/// How to sign a token (the honest way and the forged ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signing {
    /// RS256 with the key, header `kid` set (or left out).
    Rs256 { with_kid: bool },
    /// RS256, then one signature byte flipped.
    Rs256Corrupted,
    /// `alg: none` and an empty signature.
    None,
    /// HS256 keyed with the RSA public key's PEM (algorithm confusion).
    Hs256WithPublicKey,
}

/// Encodes and signs a JWT with `claims`.
pub(crate) fn encode(key: &SigningKey, signing: Signing, claims: &Value) -> String {
    let header = match signing {
        Signing::Rs256 { with_kid: false } => json!({"alg": "RS256", "typ": "JWT"}),
        Signing::Rs256 { with_kid: true } | Signing::Rs256Corrupted => {
            json!({"alg": "RS256", "typ": "JWT", "kid": key.kid})
        }
        Signing::None => json!({"alg": "none", "typ": "JWT"}),
        Signing::Hs256WithPublicKey => json!({"alg": "HS256", "typ": "JWT", "kid": key.kid}),
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match signing {
        Signing::Rs256 { .. } => key.sign_rs256(signing_input.as_bytes()),
        Signing::Rs256Corrupted => {
            let mut sig = key.sign_rs256(signing_input.as_bytes());
            let middle = sig.len() / 2;
            if let Some(byte) = sig.get_mut(middle) {
                *byte ^= 0x5a;
            }
            sig
        }
        Signing::None => Vec::new(),
        Signing::Hs256WithPublicKey => {
            let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, key.pem.as_bytes());
            hmac::sign(&hmac_key, signing_input.as_bytes())
                .as_ref()
                .to_vec()
        }
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// PEM armour around `der`, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
