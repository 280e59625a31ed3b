//! Reading `Cookie` headers and writing `Set-Cookie` headers, with chunking for values
//! past the browsers' 4 KB-per-cookie limit.

use http::{HeaderMap, HeaderValue, header};

/// Bytes of value per cookie; name and attributes fit in the rest of 4096.
pub(crate) const CHUNK_LEN: usize = 3800;
/// Most chunks one value may span (about 38 KB).
pub(crate) const MAX_CHUNKS: usize = 10;

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SameSite {
    Lax,
    /// For apps shown in a cross-site iframe (Spaces); always with `Secure` and
    /// `Partitioned`.
    None,
}

/// Attributes shared by every cookie the crate writes.
#[derive(Debug, Clone)]
pub(crate) struct CookieAttrs {
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
}

/// Every `name=value` pair in the request's `Cookie` headers, in order.
pub(crate) fn all(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        // UTF-8 rather than `to_str`'s visible-ASCII check, which goes byte by byte
        // over a 2 KB session cookie on every request (`from_utf8` checks ASCII a word
        // at a time). Every value is still base64-decoded and authenticated, or
        // compared byte for byte with one that was, before it means anything.
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim(), value))
        })
}

/// The first cookie called `name`.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    all(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The name of chunk `i` of the cookie `name`: `name`, `name.1`, `name.2`, …
pub(crate) fn chunk_name(name: &str, i: usize) -> String {
    if i == 0 {
        name.to_owned()
    } else {
        format!("{name}.{i}")
    }
}

/// The chunks of a value as the request carries them, borrowed from the headers: what
/// the opened-session cache is looked up by, without copying.
#[derive(Debug)]
pub(crate) struct Chunks<'a> {
    /// `name`, `name.1`, … up to the first gap; empty when chunk 0 is missing.
    parts: [&'a str; MAX_CHUNKS],
    /// How many of `parts` hold the value.
    len: usize,
    /// One past the highest chunk index the request carries, 0 when it carries none:
    /// clearing (or overwriting) chunks `0..present` reaches every chunk it sent, even
    /// past a gap (chunk `.2` with `.1` missing) or without a head.
    present: usize,
}

impl<'a> Chunks<'a> {
    /// The value's chunks in order, when chunk 0 is present.
    pub(crate) fn parts(&self) -> Option<&[&'a str]> {
        (self.len > 0).then(|| &self.parts[..self.len])
    }

    /// How many chunk cookies the request carries (to clear the ones a new value
    /// does not overwrite).
    pub(crate) fn present(&self) -> usize {
        self.present
    }
}

/// The chunk index of the cookie `cookie` if it is a chunk of `name`: 0 for `name`,
/// `i` for exactly `name.i` (no sign, no leading zero), below [`MAX_CHUNKS`]. Only the
/// names [`chunk_name`] writes count, so that what is read is what can be cleared.
fn chunk_index(cookie: &str, name: &str) -> Option<usize> {
    let rest = cookie.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix('.')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|i| (1..MAX_CHUNKS).contains(i))
}

/// Finds `name`, `name.1`, … up to the first gap (at most [`MAX_CHUNKS`]), in one pass
/// over the `Cookie` headers, without allocating.
pub(crate) fn chunks<'a>(headers: &'a HeaderMap, name: &str) -> Chunks<'a> {
    let mut parts: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
    for (n, v) in all(headers) {
        let Some(index) = chunk_index(n, name) else {
            continue;
        };
        // The first cookie of a name wins, as with `get`.
        parts[index].get_or_insert(v);
    }
    let len = parts.iter().take_while(|p| p.is_some()).count();
    let present = parts.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    Chunks {
        parts: parts.map(|p| p.unwrap_or_default()),
        len,
        present,
    }
}

/// A `Set-Cookie` header. `max_age` of `Some(0)` deletes the cookie; `None` makes a
/// browser-session cookie.
pub(crate) fn set(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    attrs: &CookieAttrs,
) -> HeaderValue {
    use std::fmt::Write;
    let mut s = format!("{name}={value}; Path={path}; HttpOnly");
    if let Some(age) = max_age {
        let _ = write!(s, "; Max-Age={age}");
        if age == 0 {
            s.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        }
    }
    if attrs.secure || attrs.same_site == SameSite::None {
        s.push_str("; Secure");
    }
    // Iframe cookies are also `Partitioned` (CHIPS): browsers that block third-party
    // cookies keep them, for this embedding site only.
    s.push_str(match attrs.same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::None => "; SameSite=None; Partitioned",
    });
    // Names and values are ours (configured names are validated, values base64url).
    HeaderValue::try_from(s).expect("cookie names and values are header-safe")
}

/// A `Set-Cookie` header that deletes `name`.
pub(crate) fn remove(name: &str, path: &str, attrs: &CookieAttrs) -> HeaderValue {
    set(name, "", path, Some(0), attrs)
}

/// `Set-Cookie` headers writing `value` over `name`, `name.1`, … and deleting chunks
/// the request carried beyond the new count. `None` if the value needs more than
/// [`MAX_CHUNKS`] cookies.
pub(crate) fn write_chunked(
    name: &str,
    value: &str,
    present: usize,
    path: &str,
    max_age: Option<u64>,
    attrs: &CookieAttrs,
) -> Option<Vec<HeaderValue>> {
    let parts: Vec<&str> = value
        .as_bytes()
        .chunks(CHUNK_LEN)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    if parts.len() > MAX_CHUNKS {
        return None;
    }
    let mut out: Vec<HeaderValue> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| set(&chunk_name(name, i), part, path, max_age, attrs))
        .collect();
    out.extend((parts.len()..present).map(|i| remove(&chunk_name(name, i), path, attrs)));
    Some(out)
}

/// `Set-Cookie` headers deleting chunks `0..present` of `name`.
pub(crate) fn remove_chunked(
    name: &str,
    present: usize,
    path: &str,
    attrs: &CookieAttrs,
) -> Vec<HeaderValue> {
    (0..present)
        .map(|i| remove(&chunk_name(name, i), path, attrs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    const LAX: CookieAttrs = CookieAttrs {
        secure: false,
        same_site: SameSite::Lax,
    };

    #[test]
    fn parses_several_headers_and_quoted_values() {
        let h = headers(&["a=1; b=\"2\"", "c=3;d"]);
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), Some("3"));
        assert_eq!(get(&h, "d"), None);
    }

    #[test]
    fn chunks_round_trip_and_stale_chunks_are_cleared() {
        let value = "x".repeat(CHUNK_LEN * 2 + 5);
        let set_headers = write_chunked("s", &value, 5, "/", Some(60), &LAX).unwrap();
        assert_eq!(set_headers.len(), 5, "3 chunks written, 2 stale cleared");
        let pairs: Vec<String> = set_headers[..3]
            .iter()
            .map(|h| h.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        let h = headers(&[&pairs.join("; ")]);
        let read = chunks(&h, "s");
        assert_eq!(read.parts().map(<[&str]>::concat), Some(value));
        assert_eq!(read.present(), 3);
        assert!(set_headers[4].to_str().unwrap().starts_with("s.4=; "));
    }

    /// The chunk names a `Set-Cookie` list deletes.
    fn deleted(set_cookies: &[HeaderValue]) -> Vec<String> {
        set_cookies
            .iter()
            .map(|h| h.to_str().unwrap())
            .filter(|h| h.contains("; Max-Age=0"))
            .map(|h| h.split('=').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_chunk_past_a_gap_is_cleared() {
        let h = headers(&["s=a; s.2=c; other=1"]);
        let read = chunks(&h, "s");
        assert_eq!(read.parts(), Some(&["a"][..]), "the value stops at the gap");
        let cleared = deleted(&remove_chunked("s", read.present(), "/", &LAX));
        assert!(cleared.contains(&"s".to_owned()), "{cleared:?}");
        assert!(cleared.contains(&"s.2".to_owned()), "{cleared:?}");
        // Overwriting with a one-chunk value deletes the chunk past the gap too.
        let written = write_chunked("s", "new", read.present(), "/", None, &LAX).unwrap();
        assert!(deleted(&written).contains(&"s.2".to_owned()), "{written:?}");
    }

    #[test]
    fn orphan_chunks_past_a_gap_are_cleared() {
        let h = headers(&["s.3=x"]);
        let read = chunks(&h, "s");
        assert_eq!(read.parts(), None);
        assert!(
            deleted(&remove_chunked("s", read.present(), "/", &LAX)).contains(&"s.3".to_owned())
        );
    }

    #[test]
    fn only_canonical_chunk_names_are_chunks() {
        for name in ["s.01", "s.+1", "s.", "s.1x", "s.10", "sx", "s.-1"] {
            let cookie = format!("{name}=v");
            let h = headers(&[&cookie]);
            assert_eq!(chunks(&h, "s").present(), 0, "{name} is not a chunk of s");
        }
        assert_eq!(chunks(&headers(&["s.9=v"]), "s").present(), 10);
    }

    #[test]
    fn too_large_values_are_refused() {
        let value = "x".repeat(CHUNK_LEN * MAX_CHUNKS + 1);
        assert!(write_chunked("s", &value, 0, "/", None, &LAX).is_none());
    }

    #[test]
    fn iframe_cookies_are_secure_same_site_none() {
        let attrs = CookieAttrs {
            secure: false,
            same_site: SameSite::None,
        };
        let v = set("s", "v", "/", None, &attrs);
        assert_eq!(
            v,
            "s=v; Path=/; HttpOnly; Secure; SameSite=None; Partitioned"
        );
    }

    /// Only a deletion carries the 1970 `Expires` (for browsers that ignore
    /// `Max-Age`); a live cookie has `Max-Age` alone, and a browser-session cookie
    /// neither.
    #[test]
    fn only_deletions_carry_an_expires_in_the_past() {
        let live = set("s", "v", "/", Some(3600), &LAX);
        assert_eq!(live, "s=v; Path=/; HttpOnly; Max-Age=3600; SameSite=Lax");
        let gone = set("s", "", "/", Some(0), &LAX);
        assert_eq!(
            gone,
            "s=; Path=/; HttpOnly; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Lax"
        );
        let session = set("s", "v", "/", None, &LAX);
        assert_eq!(session, "s=v; Path=/; HttpOnly; SameSite=Lax");
    }
}
