//! The byte-level parts of a binary session record: unsigned LEB128 integers,
//! length-prefixed byte strings, and the profile made small (hex runs packed two
//! characters to a byte, then LZ4).
//!
//! Everything read here comes from a value that was authenticated first (AES-GCM), so
//! the limits are backstops, not defenses; still, every length is checked against what
//! is left and against [`MAX_TEXT`], and nothing here panics on any input.
//!
//! **Why not DEFLATE.** A 41-organization profile's text inflates in 14-21 µs with
//! `miniz_oxide` on this project's machine; LZ4 decompresses it in about 3, and packing
//! the hex runs first (ids, avatar file names, timestamps: half of such a text) gives
//! LZ4 what DEFLATE's entropy coding found: the result is as small as the DEFLATEd JSON
//! it replaces (`benches/session.rs`, `miss_stages`).

use std::borrow::Cow;

/// The largest text a record may hold (unpacked and decompressed).
pub(crate) const MAX_TEXT: usize = 256 * 1024;
/// Hex runs shorter than this stay literal: a segment header costs a byte or two.
const MIN_HEX_RUN: usize = 8;
/// Text stored as packed (`STORED`), or packed then LZ4-compressed (`LZ4`).
const STORED: u8 = 0;
const LZ4: u8 = 1;

/// Appends the parts of a record. No `Debug`: a record holds tokens.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    /// `n` as unsigned LEB128.
    pub(crate) fn uint(&mut self, mut n: u64) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    pub(crate) fn len(&mut self, n: usize) {
        self.uint(n as u64);
    }

    /// Length-prefixed bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    /// `bytes`, hex runs packed and LZ4-compressed when that is smaller.
    pub(crate) fn packed(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        let packed = pack_hex(bytes);
        let compressed = lz4_flex::block::compress(&packed);
        if compressed.len() < packed.len() {
            self.byte(LZ4);
            self.len(packed.len());
            self.bytes(&compressed);
        } else {
            self.byte(STORED);
            self.bytes(&packed);
        }
    }
}

/// Reads the parts of a record; every method is `None` past the end or on a bad value.
/// No `Debug`: a record holds tokens.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// An unsigned LEB128 integer of at most 64 bits, in its shortest form or not.
    #[inline]
    pub(crate) fn uint(&mut self) -> Option<u64> {
        // Most are one byte (the lengths of a profile's strings): kept small to inline.
        if let [b @ 0..0x80, rest @ ..] = self.0 {
            self.0 = rest;
            return Some(u64::from(*b));
        }
        self.long_uint()
    }

    #[inline(never)]
    fn long_uint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    /// A length, at most `limit`.
    #[inline]
    pub(crate) fn len(&mut self, limit: usize) -> Option<usize> {
        usize::try_from(self.uint()?).ok().filter(|&n| n <= limit)
    }

    /// Length-prefixed bytes.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len(MAX_TEXT.max(self.0.len()))?;
        let (b, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(b)
    }

    /// Length-prefixed UTF-8.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Bytes written by [`Writer::packed`].
    pub(crate) fn packed(&mut self) -> Option<Vec<u8>> {
        let len = self.len(MAX_TEXT)?;
        let packed = match self.byte()? {
            STORED => Cow::Borrowed(self.bytes()?),
            LZ4 => {
                let packed_len = self.len(MAX_TEXT)?;
                // Decompresses into at most `packed_len` bytes: more is an error.
                Cow::Owned(lz4_flex::block::decompress(self.bytes()?, packed_len).ok()?)
            }
            _ => return None,
        };
        unpack_hex(&packed, len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn nibble(c: u8) -> u8 {
    if c <= b'9' { c - b'0' } else { c - b'a' + 10 }
}

/// Two lowercase hex characters for each byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    pairs
};

/// Eight bytes as sixteen lowercase hex characters, computed a word at a time (the
/// byte-at-a-time loop was most of the time of opening a 41-organization session).
fn hex16(eight: [u8; 8]) -> [u8; 16] {
    /// Each byte's bits spread to every other byte of a `u128`, in the same order.
    fn spread(x: u64) -> u128 {
        let mut x = u128::from(x);
        x = (x | x << 32) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
        x = (x | x << 16) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
        (x | x << 8) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff
    }
    const ONES: u128 = u128::MAX / 0xff; // 0x0101…01
    let x = u64::from_be_bytes(eight);
    // Every byte of `nibbles` is 0..=15: the high nibble of each input byte, then its
    // low nibble.
    let nibbles = spread(x >> 4 & 0x0f0f_0f0f_0f0f_0f0f) << 8 | spread(x & 0x0f0f_0f0f_0f0f_0f0f);
    // 1 in each byte that is 10 or more (adding 6 carries into bit 4), else 0.
    let letters = (nibbles + 6 * ONES) >> 4 & ONES;
    // '0' + n, and 'a' - '0' - 10 = 39 more for letters; no byte carries into the next.
    (nibbles + b'0' as u128 * ONES + 39 * letters).to_be_bytes()
}

/// `text` as segments, each a header `n << 1 | kind` then its bytes: kind 0, `n`
/// literal bytes; kind 1, `n` bytes each standing for two lowercase hex characters.
/// Runs of at least [`MIN_HEX_RUN`] hex characters are packed (an even number of them).
pub(crate) fn pack_hex(text: &[u8]) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(text.len()));
    let mut literal_from = 0;
    let mut i = 0;
    while i < text.len() {
        let run = text[i..].iter().take_while(|&&b| is_hex(b)).count();
        let even = run & !1;
        if even < MIN_HEX_RUN {
            i += run.max(1);
            continue;
        }
        if literal_from < i {
            out.len((i - literal_from) << 1);
            out.0.extend_from_slice(&text[literal_from..i]);
        }
        out.len((even / 2) << 1 | 1);
        out.0.extend(
            text[i..i + even]
                .chunks_exact(2)
                .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1])),
        );
        i += even;
        literal_from = i;
    }
    if literal_from < text.len() {
        out.len((text.len() - literal_from) << 1);
        out.0.extend_from_slice(&text[literal_from..]);
    }
    out.0
}

/// The bytes of `packed` segments, when they are exactly `len` bytes.
pub(crate) fn unpack_hex(packed: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut r = Reader(packed);
    while !r.is_empty() {
        let header = r.len(2 * MAX_TEXT + 1)?;
        let n = header >> 1;
        let (segment, rest) = r.0.split_at_checked(n)?;
        r.0 = rest;
        let hex = header & 1 == 1;
        if out.len() + if hex { 2 * n } else { n } > len {
            return None;
        }
        if hex {
            let (wide, rest) = segment.as_chunks::<8>();
            for &eight in wide {
                out.extend_from_slice(&hex16(eight));
            }
            for &b in rest {
                out.extend_from_slice(&HEX_PAIRS[usize::from(b)]);
            }
        } else {
            out.extend_from_slice(segment);
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_runs_pack_to_half() {
        let text = "https://cdn/uploads/1600000000000-0123456789abcdef01234567.png";
        let packed = pack_hex(text.as_bytes());
        assert!(packed.len() <= text.len() - 12, "{} bytes", packed.len());
        assert_eq!(
            unpack_hex(&packed, text.len()).as_deref(),
            Some(text.as_bytes())
        );
        let upper = "ABCDEF0123456789ABCDEF";
        assert_eq!(
            unpack_hex(&pack_hex(upper.as_bytes()), upper.len()).as_deref(),
            Some(upper.as_bytes()),
            "upper-case hex stays literal"
        );
    }

    #[test]
    fn integers_round_trip_and_overlong_ones_are_refused() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut w = Writer::default();
            w.uint(n);
            assert_eq!(Reader(&w.0).uint(), Some(n));
        }
        assert_eq!(Reader(&[0xff; 10]).uint(), None, "more than 64 bits");
        assert_eq!(Reader(&[0x80; 3]).uint(), None, "cut short");
        assert_eq!(Reader(&[0x80, 0x00]).uint(), Some(0), "not shortest");
    }

    #[test]
    fn a_text_past_the_cap_or_its_length_is_refused() {
        let mut w = Writer::default();
        w.packed(&[b'a'; MAX_TEXT]);
        assert_eq!(Reader(&w.0).packed().map(|t| t.len()), Some(MAX_TEXT));
        let mut w = Writer::default();
        w.packed(&[b'a'; MAX_TEXT + 1]);
        assert_eq!(Reader(&w.0).packed(), None);
        // A header claiming more text than the segments hold, or less.
        let packed = pack_hex(b"hello");
        assert_eq!(unpack_hex(&packed, 6), None);
        assert_eq!(unpack_hex(&packed, 4), None);
    }

    proptest! {
        #[test]
        fn words_turn_into_hex_like_bytes_do(eight in any::<[u8; 8]>()) {
            let one_by_one: Vec<u8> = eight.iter().flat_map(|&b| HEX_PAIRS[usize::from(b)]).collect();
            prop_assert_eq!(&hex16(eight)[..], &one_by_one[..]);
        }

        #[test]
        fn any_text_round_trips(text in "([0-9a-fA-F]{0,40}|[ -~]{0,10}|\\PC{0,4}){0,12}") {
            let mut w = Writer::default();
            w.packed(text.as_bytes());
            let mut r = Reader(&w.0);
            prop_assert_eq!(r.packed(), Some(text.into_bytes()));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn any_bytes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut w = Writer::default();
            w.packed(&bytes);
            prop_assert_eq!(Reader(&w.0).packed(), Some(bytes));
        }

        #[test]
        fn any_bytes_read_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Reader(&bytes).packed();
            let _ = unpack_hex(&bytes, bytes.len() * 2);
        }
    }
}
