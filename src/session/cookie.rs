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

/// Every `name=value` pair in the request's `Cookie` headers, in order: split on `;`,
/// then at the first `=`, both sides trimmed of whitespace and the value of one pair of
/// double quotes. A pair whose name or value is not UTF-8 is skipped (a browser never
/// sends one; whatever a value holds is authenticated, or compared byte for byte with
/// one that was, before it means anything).
pub(crate) fn all(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    raw_pairs(headers).filter_map(|(name, value)| Some((pair_name(name)?, pair_value(value)?)))
}

/// The first cookie called `name`. Only its own value is checked to be UTF-8.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    raw_pairs(headers)
        .filter(|(n, _)| pair_name(n) == Some(name))
        .find_map(|(_, value)| pair_value(value))
}

/// The pairs of the `Cookie` headers as bytes, split on `;` and at each pair's first
/// `=` (pairs without one are skipped), untrimmed. Nothing is validated: on the hot path
/// only the session cookie's value is, not the other cookies' values a request carries.
fn raw_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    pairs_of(headers.get_all(header::COOKIE).into_iter())
}

/// [`raw_pairs`] of these `Cookie` header values.
fn pairs_of<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    values
        .flat_map(|v| Segments {
            rest: Some(v.as_bytes()),
        })
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((&pair[..eq], &pair[eq + 1..]))
        })
}

/// A pair's name: UTF-8, trimmed.
fn pair_name(raw: &[u8]) -> Option<&str> {
    Some(std::str::from_utf8(raw).ok()?.trim())
}

/// A pair's value: UTF-8, trimmed, without one pair of surrounding double quotes.
fn pair_value(raw: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(raw).ok()?.trim();
    Some(
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value),
    )
}

/// The `;`-separated parts of one header value, as `str::split(';')` yields them.
struct Segments<'a> {
    /// What is left; `None` after the last part.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        // memchr: SIMD, so that skipping a session cookie's kilobytes costs little.
        match memchr::memchr(b';', rest) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
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
/// the opened-session cache is looked up by, without copying. No `Debug`: the parts
/// are the session cookie's value, which signs in whoever sends it.
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
fn chunk_index(cookie: impl AsRef<[u8]>, name: &str) -> Option<usize> {
    let rest = cookie.as_ref().strip_prefix(name.as_bytes())?;
    let Some(digits) = rest.strip_prefix(b".") else {
        return rest.is_empty().then_some(0);
    };
    // 1 to 15: no leading zero, and at most two digits.
    let index = match *digits {
        [d @ b'1'..=b'9'] => usize::from(d - b'0'),
        [b'1', d @ b'0'..=b'9'] => 10 + usize::from(d - b'0'),
        _ => return None,
    };
    (index < MAX_CHUNKS).then_some(index)
}

/// Finds `name`, `name.1`, … up to the first gap (at most [`MAX_CHUNKS`]), in one pass
/// over the `Cookie` headers, without allocating, as [`all`] would: the same pairs, the
/// first of each name. Only the pairs' names and the chunks' values are checked to be
/// UTF-8; the rest of the headers is only searched for `;` and `=`.
pub(crate) fn chunks<'a>(headers: &'a HeaderMap, name: &str) -> Chunks<'a> {
    let mut parts: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
    for (n, v) in raw_pairs(headers) {
        let Some(index) = pair_name(n).and_then(|n| chunk_index(n, name)) else {
            continue;
        };
        // The first cookie of a name wins, as with `get`; only the values of the
        // chunks are checked to be UTF-8 (a pair that is not is skipped, as by `all`).
        if parts[index].is_none() {
            parts[index] = pair_value(v);
        }
    }
    let len = parts.iter().take_while(|p| p.is_some()).count();
    let present = parts.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    Chunks {
        parts: parts.map(|p| p.unwrap_or_default()),
        len,
        present,
    }
}

/// The chunks of the cookie `name` as raw bytes, for a lookup in the opened-session
/// cache before any byte of the value is checked: the first pair of each chunk name,
/// its value trimmed of ASCII whitespace and of one pair of double quotes.
///
/// Where [`chunks`] would read differently (a pair whose name is not ASCII, or a chunk
/// past the first gap), the reading is not [`exact`](RawChunks::exact). An exact
/// reading whose parts are ASCII is what `chunks` reads: each pair picked is then ASCII
/// throughout, so UTF-8, and trimming it of Unicode whitespace takes off what trimming
/// it of ASCII whitespace does. A cache hit is such a reading, since the cache holds
/// only ASCII keys.
///
/// `values`: the request's `Cookie` header values (`HeaderMap::get_all`).
pub(crate) fn raw_chunks<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    name: &str,
) -> RawChunks<'a> {
    let mut raw = RawChunks {
        parts: [&[]; MAX_CHUNKS],
        seen: 0,
        names_ascii: true,
        edges_ascii: true,
    };
    for (n, v) in pairs_of(values) {
        raw.read(n, v, name);
    }
    raw
}

/// `bytes` without the leading and trailing bytes that are whitespace to
/// [`char::is_whitespace`] (which, unlike [`u8::is_ascii_whitespace`], counts the
/// vertical tab).
fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = bytes.iter().position(|b| !space(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// [`raw_chunks`]' reading. No `Debug`, as for [`Chunks`].
pub(crate) struct RawChunks<'a> {
    parts: [&'a [u8]; MAX_CHUNKS],
    /// Bit `i` set: the request carries chunk `i`.
    seen: u16,
    /// No pair's name was anything but ASCII.
    names_ascii: bool,
    /// Every chunk picked starts and ends (before unquoting) with an ASCII byte.
    edges_ascii: bool,
}

impl<'a> RawChunks<'a> {
    /// The value's chunks in order, when chunk 0 is present.
    pub(crate) fn parts(&self) -> Option<&[&'a [u8]]> {
        let len = self.len();
        (len > 0).then(|| &self.parts[..len])
    }

    /// How many chunk cookies the request carries, as [`Chunks::present`].
    pub(crate) fn present(&self) -> usize {
        16 - self.seen.leading_zeros() as usize
    }

    /// Whether the request certainly carries no chunk (then neither does [`chunks`]
    /// read one).
    pub(crate) fn none(&self) -> bool {
        self.seen == 0 && self.names_ascii
    }

    /// Whether ASCII parts are what [`chunks`] reads (see [`raw_chunks`]).
    pub(crate) fn exact(&self) -> bool {
        self.names_ascii && self.len() == self.present()
    }

    /// The same reading as text, as [`chunks`] makes it, without scanning the headers
    /// again; `None` when only `chunks` can tell (the reading is not exact, or a part
    /// is not UTF-8 or may start or end with Unicode whitespace).
    pub(crate) fn text(&self) -> Option<Chunks<'a>> {
        if !self.exact() || !self.edges_ascii {
            return None;
        }
        let mut parts = [""; MAX_CHUNKS];
        for (text, raw) in parts.iter_mut().zip(&self.parts[..self.len()]) {
            *text = std::str::from_utf8(raw).ok()?;
        }
        Some(Chunks {
            parts,
            len: self.len(),
            present: self.present(),
        })
    }

    fn len(&self) -> usize {
        self.seen.trailing_ones() as usize
    }

    /// Takes in the pair `n=v` of a `Cookie` header (untrimmed): a chunk of `name`,
    /// unless one of its index came before.
    #[inline]
    fn read(&mut self, n: &[u8], v: &'a [u8], name: &str) {
        let n = trim_whitespace(n);
        if !n.is_ascii() {
            self.names_ascii = false;
            return;
        }
        let index = chunk_index(n, name);
        let Some(index) = index.filter(|i| self.seen & (1 << i) == 0) else {
            return;
        };
        self.seen |= 1 << index;
        let v = trim_whitespace(v);
        self.edges_ascii &= v.first().is_none_or(u8::is_ascii) && v.last().is_none_or(u8::is_ascii);
        self.parts[index] = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
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

    #[test]
    fn chunk_indexes_are_exactly_the_names_chunk_name_writes() {
        for i in 0..MAX_CHUNKS {
            assert_eq!(chunk_index(chunk_name("hf_auth", i), "hf_auth"), Some(i));
        }
        for other in [
            "hf_auth.0",
            "hf_auth.01",
            "hf_auth.10",
            "hf_auth.19",
            "hf_auth.100",
            "hf_auth.",
            "hf_auth.+1",
            "hf_auth.-1",
            "hf_auth.1a",
            "hf_auth1",
            "hf_auth_1",
            "hf_aut",
            "xhf_auth",
            "hf_auth.\u{661}",
            "HF_AUTH",
            "",
        ] {
            assert_eq!(chunk_index(other, "hf_auth"), None, "{other}");
        }
    }

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
    fn whitespace_quotes_and_duplicates_read_as_before() {
        let h = headers(&[
            "x=1;  s = \"abc\" ; s=second; s.1=\t\"q\"",
            "s.1=late;s.2=\"",
        ]);
        assert_eq!(get(&h, "s"), Some("abc"), "trimmed, unquoted, first wins");
        let read = chunks(&h, "s");
        assert_eq!(read.parts(), Some(&["abc", "q", "\""][..]));
        assert_eq!(read.present(), 3);
        assert_eq!(get(&h, "x"), Some("1"));
        assert_eq!(get(&h, "s.3"), None);
    }

    /// A pair that is not UTF-8 is skipped, and only it: a stray byte in another
    /// cookie no longer hides the session cookie.
    #[test]
    fn only_pairs_that_are_not_utf8_are_skipped() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes(b"other=\xff\xfe; s=\xff; s=ok; s.1=x").unwrap(),
        );
        assert_eq!(get(&h, "s"), Some("ok"));
        assert_eq!(get(&h, "other"), None);
        assert_eq!(chunks(&h, "s").parts(), Some(&["ok", "x"][..]));
        let pairs: Vec<_> = all(&h).collect();
        assert_eq!(pairs, [("s", "ok"), ("s.1", "x")]);
    }

    /// The reading before the byte scan: each header validated as UTF-8 as a whole,
    /// split on `;`, then parsed pair by pair.
    mod reference {
        use super::super::*;

        pub(super) fn all(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
            headers
                .get_all(header::COOKIE)
                .iter()
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

        pub(super) fn chunks<'a>(
            headers: &'a HeaderMap,
            name: &str,
        ) -> (Option<Vec<&'a str>>, usize) {
            let mut parts: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
            for (n, v) in all(headers) {
                if let Some(index) = chunk_index(n, name) {
                    parts[index].get_or_insert(v);
                }
            }
            let len = parts.iter().take_while(|p| p.is_some()).count();
            let present = parts.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            let parts = (len > 0).then(|| parts[..len].iter().map(|p| p.unwrap()).collect());
            (parts, present)
        }
    }

    mod properties {
        use super::super::*;
        use super::reference;
        use proptest::prelude::*;

        /// Header values made of the pieces cookie parsing cares about, UTF-8 or not.
        fn header_values(utf8: bool) -> impl Strategy<Value = Vec<Vec<u8>>> {
            let mut pieces: Vec<&'static [u8]> = vec![
                b"s",
                b"s.1",
                b"s.2",
                b"s.9",
                b"s.01",
                b"s.10",
                b"t",
                b"=",
                b"=",
                b";",
                b";",
                b"; ",
                b" ",
                b"\t",
                b"\"",
                b"abc",
                b"A-_9",
                b"\xc2\xa0",
                b"\xe3\x80\x80",
                b"\xc3\xa9",
            ];
            if !utf8 {
                pieces.extend([&b"\xff"[..], b"\xc3", b"\x80"]);
            }
            let long = "Q".repeat(150).into_bytes();
            let piece = prop_oneof![
                9 => proptest::sample::select(pieces).prop_map(<[u8]>::to_vec),
                1 => Just(long),
            ];
            let value = proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat());
            proptest::collection::vec(value, 1..4)
        }

        fn headers(values: &[Vec<u8>]) -> HeaderMap {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::COOKIE, HeaderValue::from_bytes(v).unwrap());
            }
            h
        }

        proptest! {
            /// On UTF-8 headers the byte scan reads exactly what the reference reads.
            #[test]
            fn the_byte_scan_reads_as_the_reference(values in header_values(true)) {
                let h = headers(&values);
                let read = chunks(&h, "s");
                let (parts, present) = reference::chunks(&h, "s");
                prop_assert_eq!(read.parts().map(<[&str]>::to_vec), parts);
                prop_assert_eq!(read.present(), present);
                let pairs: Vec<_> = all(&h).collect();
                let reference: Vec<_> = reference::all(&h).collect();
                prop_assert_eq!(pairs, reference);
                for name in ["s", "s.1", "t", "s.01"] {
                    let first = reference::all(&h).find(|(n, _)| *n == name).map(|(_, v)| v);
                    prop_assert_eq!(get(&h, name), first);
                }
            }

            /// The raw reading is the text reading wherever it claims to be: an exact
            /// reading with ASCII parts (what a cache hit is) has the same parts and
            /// count, `text` is `chunks` or `None`, and `none` is never wrong.
            #[test]
            fn the_raw_reading_is_the_text_reading_where_it_is_exact(
                values in header_values(false),
            ) {
                let h = headers(&values);
                let raw = raw_chunks(h.get_all(header::COOKIE).iter(), "s");
                let read = chunks(&h, "s");
                let ascii = raw.parts().is_some_and(|p| p.iter().all(|p| p.is_ascii()));
                if raw.exact() && ascii {
                    let text: Vec<&[u8]> = read.parts().unwrap_or_default().iter().map(|p| p.as_bytes()).collect();
                    prop_assert_eq!(raw.parts().map(<[&[u8]]>::to_vec), Some(text));
                    prop_assert_eq!(raw.present(), read.present());
                }
                if let Some(text) = raw.text() {
                    prop_assert_eq!(text.parts(), read.parts());
                    prop_assert_eq!(text.present(), read.present());
                }
                if raw.none() {
                    prop_assert_eq!(read.present(), 0);
                }
            }

            /// On any header, `get` and `chunks` read what `all` lists.
            #[test]
            fn get_and_chunks_agree_with_all(values in header_values(false)) {
                let h = headers(&values);
                for name in ["s", "s.1", "t"] {
                    let first = all(&h).find(|(n, _)| *n == name).map(|(_, v)| v);
                    prop_assert_eq!(get(&h, name), first);
                }
                let mut expected: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
                for (n, v) in all(&h) {
                    if let Some(i) = chunk_index(n, "s") {
                        expected[i].get_or_insert(v);
                    }
                }
                let read = chunks(&h, "s");
                let len = expected.iter().take_while(|p| p.is_some()).count();
                let present = expected.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
                prop_assert_eq!(read.present(), present);
                let parts: Vec<&str> = expected[..len].iter().map(|p| p.unwrap()).collect();
                prop_assert_eq!(read.parts().map(<[&str]>::to_vec), (len > 0).then_some(parts));
            }
        }
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
