//! The post-login target: only ever a local path.
//!
//! `return_to` comes from the query string of `/login`, so an attacker chooses it. It
//! is accepted only as a path on this site: it must start with a single `/`, and
//! neither it nor any percent-decoding of it may start with `//` or `/\`, hold a
//! backslash or a control character, or a scheme. Anything else falls back to `/`.

const MAX_LEN: usize = 2048;
/// Rounds of percent-decoding looked through (`%252F` is `%2F` is `/`).
const DECODE_ROUNDS: usize = 4;

/// `raw` (already percent-decoded once, as query parsing does) if it is a safe local
/// path, percent-encoded where needed to be a valid `Location`; else `"/"`.
pub(crate) fn sanitize(raw: &str) -> String {
    if is_local_path(raw) {
        encode_for_location(raw)
    } else {
        "/".to_owned()
    }
}

fn is_local_path(raw: &str) -> bool {
    if raw.len() > MAX_LEN || !raw.starts_with('/') {
        return false;
    }
    let mut current = raw.as_bytes().to_vec();
    for _ in 0..=DECODE_ROUNDS {
        if !looks_local(&current) {
            return false;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    // Still decoding after that many rounds: nobody legitimate nests encodings so deep.
    false
}

fn looks_local(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(b"/") else {
        // A decoded form that no longer starts with `/` was not a path to begin with,
        // e.g. `%2F` alone would still start with `/` after decoding.
        return false;
    };
    if matches!(rest.first(), Some(b'/' | b'\\')) {
        return false;
    }
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\') {
        return false;
    }
    // `/..` forms are harmless (same origin) but `/x:` is not a scheme either: a
    // scheme can only appear at the very start, which is `/`. Nothing more to check.
    true
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes bytes that may not stand in a `Location` header (space, non-ASCII,
/// `"`, `<`, `>`, …), leaving everything a URL path and query may hold.
pub(crate) fn encode_for_location(path: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_graphic()
            && !matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'^')
        {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Panics unless `path`, as [`sanitize`] returns it, stays on this site however a
/// browser or proxy reads it: a `/` path, not protocol-relative at any depth of
/// percent-decoding, only bytes a `Location` header may carry, resolving to this
/// site's origin. Shared by the unit, property and fuzz tests.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn assert_stays_on_site(path: &str) {
    assert!(path.starts_with('/'), "{path:?} is not a path");
    assert!(
        path.bytes().all(|b| b.is_ascii_graphic()),
        "{path:?} holds bytes a Location header should not"
    );
    assert!(
        http::HeaderValue::from_str(path).is_ok(),
        "{path:?} is not a header value"
    );
    let mut decoded = path.as_bytes().to_vec();
    for _ in 0..=DECODE_ROUNDS + 4 {
        assert!(
            !matches!(decoded.get(1), Some(b'/' | b'\\')),
            "a decoding of {path:?} is protocol-relative"
        );
        decoded = percent_decode(&decoded);
    }
    let base = url::Url::parse("https://app.example/").expect("a valid base");
    let resolved = base.join(path).expect("a path resolves against the site");
    assert_eq!(
        resolved.origin(),
        base.origin(),
        "{path:?} resolves off-site"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for p in [
            "/",
            "/repos",
            "/a/b?x=1&y=https://x.org#frag",
            "/%7Euser",
            "/a:b",
        ] {
            assert_eq!(sanitize(p), p, "{p}");
        }
        assert_eq!(sanitize("/ü space"), "/%C3%BC%20space");
    }

    #[test]
    fn open_redirect_forms_fall_back_to_root() {
        let attacks = [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "%2F%2Fevil.example",
            "/\r\nSet-Cookie: x=1",
            "/%0d%0aSet-Cookie:%20x=1",
            "/%250d%250a",
            "/\tevil",
            "/x\u{7f}",
            "/%25252525252F",
            "\\\\evil.example",
            "/\\/evil.example",
        ];
        for a in attacks {
            assert_eq!(sanitize(a), "/", "{a:?}");
        }
        assert_eq!(sanitize(&format!("/{}", "a".repeat(MAX_LEN))), "/");
    }

    #[test]
    fn a_lone_percent_is_not_decoded() {
        assert_eq!(sanitize("/100%"), "/100%");
        assert_eq!(sanitize("/%zz"), "/%zz");
    }

    #[test]
    #[should_panic(expected = "protocol-relative")]
    fn the_site_check_catches_an_encoded_double_slash() {
        assert_stays_on_site("/%2F/evil.example");
    }

    #[test]
    #[should_panic(expected = "Location header")]
    fn the_site_check_catches_a_header_break() {
        assert_stays_on_site("/\r\nSet-Cookie: x=1");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::{assert_stays_on_site, sanitize};

        /// Strings built to look like the attacks: slashes, backslashes, percent
        /// escapes (also of `%` itself), controls, schemes and plain text.
        fn hostile() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("/".to_owned()),
                Just("\\".to_owned()),
                Just("%2F".to_owned()),
                Just("%2f".to_owned()),
                Just("%5C".to_owned()),
                Just("%25".to_owned()),
                Just("%".to_owned()),
                Just("\r\n".to_owned()),
                Just("https:".to_owned()),
                Just("//".to_owned()),
                "[a-z0-9.:?#&=]{1,6}",
                any::<char>().prop_map(String::from),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #[test]
            fn whatever_comes_in_stays_on_site(raw in hostile()) {
                assert_stays_on_site(&sanitize(&raw));
            }

            #[test]
            fn arbitrary_text_stays_on_site(raw in any::<String>()) {
                assert_stays_on_site(&sanitize(&raw));
            }

            #[test]
            fn plain_local_paths_are_kept_as_they_are(
                raw in "(/[A-Za-z0-9._~-]{1,12}){1,5}(\\?[a-z]{1,5}=[A-Za-z0-9]{0,8})?",
            ) {
                prop_assert_eq!(sanitize(&raw), raw);
            }
        }
    }
}
