//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that
//! replay their corpus (`tests/fuzz_corpus.rs`), and [`SessionStages`], the steps of
//! opening a session cookie one by one for the benches (`benches/session.rs`).
//!
//! Enabled only by the `fuzzing` feature; not part of the public API and exempt from
//! semver. Each function takes arbitrary bytes, runs the crate's own parser on them
//! exactly as a request or a provider answer would reach it, and panics only when an
//! invariant the crate promises is broken (a forged cookie opening, an off-site return
//! path, a header value that could not be sent, a token verifying that should not).
//! Each invariant is checked against code written here, not by asking the crate's own
//! functions again. Any other panic is a bug too.

use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use crate::Secret;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};

use crate::id_token::{self, Expectations, IdTokenClaims, KeySet};
use crate::provider::http::parse_json;
use crate::provider::{ProviderMetadata, TokenResponse, WhoAmI};
use crate::user::{HfUser, Profile, Scopes, SessionRecord};

mod session;

pub use session::{SessionStages, session_cookie};

const COOKIE_NAME: &str = "hf_auth";
const ISSUER: &str = "https://huggingface.co";
const CLIENT_ID: &str = "fuzz-client";
const NONCE: &str = "fuzz-nonce";
const NOW: u64 = 1_700_000_000;

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

/// The callback's query string, as the layer receives it in a request URI. The
/// parser's rules, checked against a decoder written here: the query is refused exactly
/// when one of `state`, `code`, `iss`, `error`, `error_description` appears more than
/// once (after decoding names); otherwise each field is the decoded value of its single
/// occurrence, or absent. Provider text shown to users has no control characters and
/// at most 200 characters, all taken from the original in order.
pub fn callback_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/oauth/callback?{query}").parse::<http::Uri>() else {
        return;
    };
    let query = uri.query().unwrap_or("");
    let mut expected: [(&str, Vec<String>); 5] = [
        ("state", Vec::new()),
        ("code", Vec::new()),
        ("iss", Vec::new()),
        ("error", Vec::new()),
        ("error_description", Vec::new()),
    ];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name);
        if let Some((_, values)) = expected.iter_mut().find(|(n, _)| *n == name) {
            values.push(form_decode(value));
        }
    }
    let repeated = expected.iter().any(|(_, values)| values.len() > 1);
    match crate::flow::callback::CallbackParams::parse(query) {
        Err(_) => assert!(repeated, "a query without repeated parameters is refused"),
        Ok(params) => {
            assert!(!repeated, "a repeated parameter is accepted");
            let got = [
                params.state,
                params.code,
                params.iss,
                params.error,
                params.error_description.clone(),
            ];
            for ((name, values), got) in expected.iter().zip(got) {
                assert_eq!(got.as_ref(), values.first(), "the parameter {name}");
            }
            let text = params.error_description.unwrap_or_default();
            let tamed = crate::flow::callback::tame(&text);
            assert!(
                !tamed.chars().any(char::is_control),
                "tamed text has controls"
            );
            assert!(tamed.chars().count() <= 200, "tamed text is bounded");
            let mut original = text.chars();
            assert!(
                tamed.chars().all(|c| original.any(|o| o == c)),
                "tamed text comes from the original, in order"
            );
        }
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte (an
/// invalid escape stays as it is), then UTF-8 with replacement characters.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).expect("two hex digits"));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The post-login return path. Whatever comes in, what goes out is a same-site path
/// that can be sent as a `Location` header.
pub fn return_to(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    crate::flow::return_to::assert_stays_on_site(&crate::flow::return_to::sanitize(&raw));
}

/// The fuzz harness's RS256 signing key (PKCS#8 DER, base64), made for this file and
/// used nowhere else: with it the harness signs tokens, so "verifies" is reachable.
const SIGNING_KEY_PKCS8: &str = concat!(
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCYKNoOmtPLRHdpQttnPPobLJcy",
    "RHJarJjkfX8EAvGHBBRlr4M1KPyDPExv9GU2Mhlt9k4cPhBXbOnpCj3orprzjL6gsCdrRJDxnlA6",
    "P9URyj3nNfdzreZEijEXwcOAfwvdiU4Fy9h+3m11adcMi/ySzPMlNwjrHXmSdaVgMUpoNgLRx9Cz",
    "wrMGsLwpeJoAV0lSKC28aOWPKIF9cYAYc42HExJQcfhYGl90K8Cj2ntuk5mEhtJlH4ErEGgB5rTo",
    "cSCIY0G02A1BP9DSpBxrgegQZUHdpGigMwtb/czDfUyCeeSk3pvi0ctmmQDGqR5jevx7l9dYQyiZ",
    "a2p0zEid7s6/AgMBAAECggEAC3UwDl98SVcrgsKlEN4Xm0o9TGy5C7jpfnMwyFWMaHVXL90KjUs7",
    "0IoO23NU18LoBU7BzQCjbGHoL0M1LDtRsbtMc38wSLSOEZOxSOGbos5O4QVAT/atW0XosnhFx3xJ",
    "oXIAbRFPiSYoqenBZtF3wHosaQX+5u1+RRgUzuyHRNeGmmfj8cdOwG4x+ylKT4qjqBzZlPTpS7Bq",
    "D8EK9AsHWPS1R+e6dPfOThXo//LT2Yegc72PJZQlUI1/xL9Nrm/IbGL5MB5I0RSy8JqXUVA97Az2",
    "kvJksyBcpu9OPRhB7GUQv39kHBNkQNd/Q+Pu6wEbhdo/wrwSpC+JcJ79VkR6IQKBgQDMtjUpZio2",
    "i8EyvwdDh8mcbH2UkXEfCFSRFMxwhbSvOwBr+QOyILSt+dHsklV4/qLgbHC/NNYC2+gTpR11zA4s",
    "ezVcGuX32nmiqmyxQzzZkh5l/54cb9KnPWsyMRaLbCnpqhD/esaO7MdtpFLgglg7Pmpl5I7FdE7l",
    "eYy/GPu9zwKBgQC+SA4zObb1+8tb50pNw8YaumB8VfI2O6AGmi3rq/Ub0ipKzabm/aW+c8BudDGN",
    "22Y4Ks/yWFGkqPYzxcautMTzhiE1sMw3+5MvzSZAkspp1C/LUvN8TSnh84TmZDUcCnxTWCt42Sfn",
    "2020XZEuUgNX76MdQr5ucK7gYDmtdHaMEQKBgArqwKUHjMLB6ziwlUuVpzvPUVcl9nloMVJXYJuz",
    "lbIunFQlwHu0YM5SX06VczdzpO4A+nZH9A3M+nBpwstwaWUX4P2bdZ4lKY1yNz+wzULxFuvrmNv9",
    "XqeKj/fqRECFMSsD5coqGwKuP+hp9f2BFgF6z6PFb5O6Iyb7t3TNeUdjAoGAYFyTPGPdAQNrv/YI",
    "jgs39u8tz6miyM43Q0CvQqtJrLYpDsrI3C/V0PZDnGwhcEqMoKMlvf/2EKI0VJGzBWSsXPsvNEZ9",
    "lVhE+K820PrFoQSA08IFZoyZSkENq7NRpgq1XWvIUCIA8I0B8/ZygHeuE8la3IWhdMKB/UUd0Har",
    "VlECgYAFWiLaLYTivwKIythY025TtHIX4wlpSffKR0BrImjIm9FJAiL2uqnqdbknhRsTh+JJs6pj",
    "ZHz/sOWgiAEfPwHHkF5V/yrzkG4sZQdtdCZoAoMdTsat0CGimtjyTwQrpRacSHxoV6zEBHAe+zWx",
    "1DcGt3MMYPcqT0sl+4BhyEqE5g==",
);

/// The signing key, and the key set the tokens are verified against: that key under
/// `kid` "k1", plus two well-formed keys nobody holds (one named "k0", one without a
/// `kid`) for the key selection paths.
fn keys() -> &'static (RsaKeyPair, KeySet) {
    static KEYS: OnceLock<(RsaKeyPair, KeySet)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let der = B64.decode(SIGNING_KEY_PKCS8).expect("the key is base64");
        let pair = RsaKeyPair::from_pkcs8(&der).expect("the key is PKCS#8 RSA");
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let decoy = URL_SAFE_NO_PAD.encode([0xC3u8; 256]);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"{e}"}},{{"kty":"RSA","kid":"k0","n":"{decoy}","e":"AQAB"}},{{"kty":"RSA","n":"{decoy}","e":"AQAB"}}]}}"#
        );
        let set = KeySet::from_jwks_json(jwks.as_bytes()).expect("a valid key set");
        (pair, set)
    })
}

/// `header.claims.signature` with both parts base64url-encoded as given and an RS256
/// signature by the harness's key.
fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let (pair, _) = keys();
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("RS256 signing");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// ID token verification. The first byte picks what the rest is:
/// - even: a whole compact JWT, verified against the key set;
/// - odd: `header JSON \n claims JSON`, signed with the harness's key and verified,
///   so every claim rule is reached behind a valid signature.
///
/// Whenever a token verifies, this checks, without the crate's code, that it should
/// have: its header's `alg` is exactly `RS256` without `crit`, its signature verifies
/// with the harness's public key, and its claims pass every rule of the module docs
/// (`iss`, `aud`, `azp`, `exp` and `iat` with the leeway, `nonce`, `sub`), and that the
/// claims returned are the token's.
pub fn id_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let expect = Expectations {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        nonce: NONCE,
        leeway: Duration::from_secs(LEEWAY),
        now: NOW,
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut parts = rest.splitn(2, |&b| b == b'\n');
        let header = parts.next().unwrap_or_default();
        let claims = parts.next().unwrap_or_default();
        let signed = sign(header, claims);
        // Behind a plain header naming the harness's key, verification is exactly the
        // claim checks (which the fuzzing-only parser runs alone): it must accept the
        // same tokens, so a rule that refuses good tokens fails here too.
        if is_plain_header(header) {
            let parsed = id_token::parse_claims(claims, &expect);
            let verified = id_token::verify(&signed, &keys().1, &expect);
            if is_plain_claims(claims) {
                let raw = serde_json::from_slice(claims).expect("plain claims are JSON");
                let rules = claim_rules(&raw);
                assert_eq!(
                    verified.is_ok(),
                    rules.is_ok(),
                    "a signed token with plain claims is judged by the rules: \
                     verification says {verified:?}, the rules say {rules:?}"
                );
            }
            assert_eq!(
                parsed.map_err(|e| e.to_string()),
                verified.map_err(|e| e.to_string()),
                "a signed token and its claims alone are judged differently"
            );
        }
        signed
    };
    match id_token::verify(&token, &keys().1, &expect) {
        Ok(claims) => assert_should_verify(&token, &claims),
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

/// Whether `header` is a canonical JSON object (as serde_json writes it: sorted keys,
/// no spaces) of `alg` "RS256", optionally `typ` (a string) and `kid` "k1".
fn is_plain_header(header: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(header) else {
        return false;
    };
    let canonical = serde_json::to_vec(&fields).is_ok_and(|bytes| bytes == header);
    canonical
        && fields.get("alg").is_some_and(|alg| alg == "RS256")
        && fields.get("kid").is_none_or(|kid| kid == "k1")
        && fields.get("typ").is_none_or(serde_json::Value::is_string)
        && fields
            .keys()
            .all(|k| ["alg", "kid", "typ"].contains(&k.as_str()))
}

/// The leeway the fuzzed tokens are checked with, in seconds.
const LEEWAY: u64 = 60;

/// Panics unless `token` is one the module's rules accept, and `claims` are its claims.
fn assert_should_verify(token: &str, claims: &IdTokenClaims) {
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .expect("a verified token's parts are base64url")
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a verified token has three parts");
    let header: serde_json::Value =
        serde_json::from_slice(&decode(parts[0])).expect("a verified token's header is JSON");
    assert_eq!(
        header["alg"], "RS256",
        "a token verified with alg {}",
        header["alg"]
    );
    assert!(header.get("crit").is_none(), "a token with crit verified");
    let public = keys().0.public_key().as_ref().to_vec();
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signing_input.as_bytes(), &decode(parts[2]))
        .expect("a verified token is signed by the only key anyone holds");

    let raw: serde_json::Value =
        serde_json::from_slice(&decode(parts[1])).expect("a verified token's claims are JSON");
    if let Err(rule) = claim_rules(&raw) {
        panic!("a token verified that breaks the rule on {rule}");
    }
    assert_eq!(
        (
            claims.iss.as_str(),
            Some(claims.sub.as_str()),
            claims.exp,
            claims.iat
        ),
        (
            ISSUER,
            raw["sub"].as_str(),
            date(&raw, "exp").unwrap_or(0),
            date(&raw, "iat").unwrap_or(0)
        ),
        "the claims returned are the token's"
    );
    assert_eq!(claims.nonce.as_deref(), Some(NONCE));
}

/// A `NumericDate` claim: a non-negative JSON number, fractions truncated.
fn date(raw: &serde_json::Value, name: &str) -> Option<u64> {
    let number = raw.get(name).and_then(serde_json::Value::as_number)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    number
        .as_u64()
        .or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// The claim rules of `src/id_token.rs`'s module docs, written again here: the first
/// one `raw` breaks, by the claim it is about.
fn claim_rules(raw: &serde_json::Value) -> Result<(), &'static str> {
    let string = |name: &str| raw.get(name).and_then(serde_json::Value::as_str);
    if string("iss") != Some(ISSUER) {
        return Err("iss");
    }
    let audiences: Vec<&str> = match raw.get("aud") {
        Some(serde_json::Value::String(aud)) => vec![aud.as_str()],
        Some(serde_json::Value::Array(aud)) => aud.iter().filter_map(|a| a.as_str()).collect(),
        _ => return Err("aud"),
    };
    if !audiences.contains(&CLIENT_ID) {
        return Err("aud");
    }
    match string("azp") {
        Some(azp) if azp != CLIENT_ID => return Err("azp"),
        None if audiences.len() > 1 => return Err("azp"),
        _ => {}
    }
    match date(raw, "exp") {
        Some(exp) if exp.saturating_add(LEEWAY) > NOW => {}
        _ => return Err("exp"),
    }
    match date(raw, "iat") {
        Some(iat) if iat <= NOW + LEEWAY => {}
        _ => return Err("iat"),
    }
    if string("nonce") != Some(NONCE) {
        return Err("nonce");
    }
    if string("sub").is_none_or(str::is_empty) {
        return Err("sub");
    }
    Ok(())
}

/// Whether `claims` is canonical JSON (as serde_json writes it, so no key is repeated)
/// whose standard claims all have the types the crate reads them as: then
/// verification succeeds exactly when [`claim_rules`] pass.
fn is_plain_claims(claims: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(claims) else {
        return false;
    };
    if serde_json::to_vec(&fields).ok().as_deref() != Some(claims) {
        return false;
    }
    let is = |name: &str, ok: fn(&serde_json::Value) -> bool| {
        fields.get(name).is_none_or(|v| v.is_null() || ok(v))
    };
    let strings = [
        "iss",
        "sub",
        "azp",
        "nonce",
        "name",
        "preferred_username",
        "picture",
        "profile",
        "website",
        "email",
    ];
    let is_date = |v: &serde_json::Value| v.as_f64().is_some_and(|f| f >= 0.0) || v.is_u64();
    strings
        .iter()
        .all(|name| is(name, serde_json::Value::is_string))
        && is("email_verified", serde_json::Value::is_boolean)
        && ["exp", "iat", "auth_time"]
            .iter()
            .all(|name| is(name, is_date))
        && is("aud", |v| {
            v.is_string()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string))
        })
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
            profile_at: NOW,
            stored: None,
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
