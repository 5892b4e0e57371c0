//! Masking strategies: what a detected value or a masked cell becomes.
//!
//! Every strategy works on chars, so a multi-byte char is never split; `hash` and `format_preserving` are
//! keyed with HMAC-SHA256.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

#[cfg(test)]
use crate::plan::Masked;
use crate::rules::RuleSpec;

/// What `redact` writes when the rule gives no `with`, and what `null` writes inside free text.
pub const DEFAULT_REDACTION: &str = "[redacted]";

/// The default of `keep` for `partial`.
pub const DEFAULT_KEEP: usize = 4;

/// How a value is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// Replaced by a fixed text (`with`, default `[redacted]`).
    Redact,
    /// Only the last `keep` letters and digits shown (default 4); the others become `*`, separators stay.
    Partial,
    /// A keyed HMAC-SHA256 pseudonym: the same value always gives the same text, so joins still work.
    Hash,
    /// The whole cell becomes NULL (in free text: redacted).
    Null,
    /// Same length and character classes (digit for digit, letter for letter), keyed and stable.
    FormatPreserving,
}

impl StrategyName {
    pub fn name(self) -> &'static str {
        match self {
            StrategyName::Redact => "redact",
            StrategyName::Partial => "partial",
            StrategyName::Hash => "hash",
            StrategyName::Null => "null",
            StrategyName::FormatPreserving => "format_preserving",
        }
    }
}

/// A rule's strategy with its options, checked.
#[derive(Debug)]
pub(crate) enum Strategy {
    Redact {
        with: Box<str>,
    },
    Partial {
        keep: usize,
    },
    Hash,
    /// `with` is what free text gets.
    Null {
        with: Box<str>,
    },
    FormatPreserving,
}

impl Strategy {
    /// The strategy of `spec`, or why its options do not fit it.
    pub(crate) fn from_spec(spec: &RuleSpec) -> Result<Strategy, String> {
        let name = spec.strategy.name();
        if spec.keep.is_some() && spec.strategy != StrategyName::Partial {
            return Err(format!("`keep` is an option of `partial`, not of `{name}`"));
        }
        let takes_with = matches!(spec.strategy, StrategyName::Redact | StrategyName::Null);
        if spec.with.is_some() && !takes_with {
            return Err(format!(
                "`with` is an option of `redact` and `null`, not of `{name}`"
            ));
        }
        let with = || spec.with.as_deref().unwrap_or(DEFAULT_REDACTION).into();
        Ok(match spec.strategy {
            StrategyName::Redact => Strategy::Redact { with: with() },
            StrategyName::Partial => Strategy::Partial {
                keep: spec.keep.unwrap_or(DEFAULT_KEEP),
            },
            StrategyName::Hash => Strategy::Hash,
            StrategyName::Null => Strategy::Null { with: with() },
            StrategyName::FormatPreserving => Strategy::FormatPreserving,
        })
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Strategy::Null { .. })
    }

    /// Whether the output depends on the key.
    pub(crate) fn keyed(&self) -> bool {
        matches!(self, Strategy::Hash | Strategy::FormatPreserving)
    }

    /// Whether the output ignores the value (`redact`, and `null` inside text): the cell path then needs
    /// no `&str` of the value.
    pub(crate) fn fixed_text(&self) -> Option<&str> {
        match self {
            Strategy::Redact { with } | Strategy::Null { with } => Some(with),
            _ => None,
        }
    }

    /// Appends the masked form of `value`, a span of text; `null` redacts.
    pub(crate) fn mask_text(&self, key: &Key, value: &str, out: &mut impl TextOut) {
        match self {
            Strategy::Redact { with } | Strategy::Null { with } => out.push_str(with),
            Strategy::Partial { keep } => partial(value, *keep, out),
            Strategy::Hash => pseudonym(key, value.as_bytes(), out),
            Strategy::FormatPreserving => format_preserving(key, value, out),
        }
    }

    /// A whole cell masked by a column rule, appended to `out`; `false` (nothing appended) when the cell
    /// becomes NULL. A cell that is not UTF-8 is read lossily by `partial` and `format_preserving`
    /// (invalid bytes become U+FFFD, so nothing of them shows).
    pub(crate) fn mask_cell_into(&self, key: &Key, cell: &[u8], out: &mut Vec<u8>) -> bool {
        match self {
            Strategy::Null { .. } => return false,
            // ASCII (most cells): bytes in, bytes out, no decoding and no per-char encoding.
            Strategy::Partial { keep } if cell.is_ascii() => partial_ascii(cell, *keep, out),
            Strategy::Hash => pseudonym(key, cell, out),
            _ => {
                let text = String::from_utf8_lossy(cell);
                out.reserve(text.len());
                self.mask_text(key, &text, out);
            }
        }
        true
    }

    /// [`Self::mask_cell_into`] as a value of its own.
    #[cfg(test)]
    pub(crate) fn mask_cell(&self, key: &Key, cell: &[u8]) -> Masked {
        let mut out = Vec::new();
        if self.mask_cell_into(key, cell, &mut out) {
            Masked::Value(out)
        } else {
            Masked::Null
        }
    }
}

/// The key of `hash` and `format_preserving`, absorbed into an HMAC state once. Its `Debug` shows nothing.
#[derive(Clone)]
pub(crate) struct Key {
    mac: Hmac<Sha256>,
}

impl Key {
    pub(crate) fn new(key: &[u8]) -> Option<Key> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .ok()
            .map(|mac| Key { mac })
    }

    /// HMAC-SHA256 over `domain`, `block` and `value`: one 32-byte block of the keyed stream for `value`.
    fn block(&self, domain: &[u8], block: u32, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(&block.to_be_bytes());
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Where masked text is appended: a `String` (free text), or the bytes of a cell's new value (the cell
/// path copies the unmasked parts as bytes, so it need not read the whole cell as `&str`).
pub(crate) trait TextOut {
    fn push_str(&mut self, s: &str);
    fn push(&mut self, c: char);
}

impl TextOut for String {
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }

    fn push(&mut self, c: char) {
        String::push(self, c);
    }
}

impl TextOut for Vec<u8> {
    fn push_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    fn push(&mut self, c: char) {
        self.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

/// Keeps the last `keep` letters and digits; the others become `*`; everything else stays.
fn partial(value: &str, keep: usize, out: &mut impl TextOut) {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let hidden = total.saturating_sub(keep);
    let mut seen = 0;
    for c in value.chars() {
        if c.is_alphanumeric() {
            seen += 1;
            out.push(if seen > hidden { c } else { '*' });
        } else {
            out.push(c);
        }
    }
}

/// [`partial`] on ASCII, where letters and digits are `is_ascii_alphanumeric` and each char is a byte.
fn partial_ascii(value: &[u8], keep: usize, out: &mut Vec<u8>) {
    // Where the shown part starts: just after the last hidden letter or digit, found from the end (which
    // reads only the shown part and one more letter or digit).
    let mut shown = 0;
    let mut cut = 0;
    for (i, b) in value.iter().enumerate().rev() {
        if b.is_ascii_alphanumeric() {
            if shown == keep {
                cut = i + 1;
                break;
            }
            shown += 1;
        }
    }
    let (hidden, rest) = value.split_at(cut.min(value.len()));
    out.reserve(value.len());
    out.extend(
        hidden
            .iter()
            .map(|&b| if b.is_ascii_alphanumeric() { b'*' } else { b }),
    );
    out.extend_from_slice(rest);
}

/// 16 lowercase hex digits: the first 8 bytes of HMAC-SHA256(key, domain ‖ 0 ‖ value).
fn pseudonym(key: &Key, value: &[u8], out: &mut impl TextOut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let tag = key.block(b"portcullis-mask hash\0", 0, value);
    for byte in tag.iter().take(8) {
        for nibble in [byte >> 4, byte & 0xf] {
            out.push(char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0')));
        }
    }
}

/// Each digit becomes a digit, each upper-case letter an upper-case ASCII letter, each other letter a
/// lower-case ASCII letter; the rest stays. The replacements come from a keyed stream seeded by the whole
/// value, so equal values give equal output and the output says nothing of the input beyond its shape.
/// It is a keyed pseudorandom mapping, not a cipher: it cannot be reversed, and two values of the same
/// shape collide with probability one in the number of strings of that shape.
fn format_preserving(key: &Key, value: &str, out: &mut impl TextOut) {
    const DIGITS: &[u8] = b"0123456789";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    // The value is hashed once into a seed; each block of the stream then hashes only the seed.
    let seed = key.block(b"portcullis-mask fpe seed\0", 0, value.as_bytes());
    let mut stream = Stream {
        key,
        seed,
        block: [0; 32],
        counter: 0,
        used: 32,
    };
    for c in value.chars() {
        let alphabet = if c.is_numeric() {
            DIGITS
        } else if c.is_uppercase() {
            UPPER
        } else if c.is_alphabetic() {
            LOWER
        } else {
            out.push(c);
            continue;
        };
        let pick = usize::from(stream.next_u16()) % alphabet.len();
        out.push(char::from(alphabet.get(pick).copied().unwrap_or(b'x')));
    }
}

/// The keyed byte stream of `format_preserving`: HMAC blocks 0, 1, 2... of one value's seed.
struct Stream<'a> {
    key: &'a Key,
    seed: [u8; 32],
    block: [u8; 32],
    counter: u32,
    used: usize,
}

impl Stream<'_> {
    fn next_u16(&mut self) -> u16 {
        if self.used + 2 > self.block.len() {
            self.block = self.key.block(b"portcullis-mask fpe\0", self.counter, &self.seed);
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let pair = [
            self.block.get(self.used).copied().unwrap_or(0),
            self.block.get(self.used + 1).copied().unwrap_or(0),
        ];
        self.used += 2;
        u16::from_be_bytes(pair)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn key() -> Key {
        Key::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn text(strategy: &Strategy, value: &str) -> String {
        let mut out = String::new();
        strategy.mask_text(&key(), value, &mut out);
        out
    }

    #[test]
    fn partial_keeps_the_last_letters_and_digits_and_the_separators() {
        let cases = [
            (4, "4111 1111 1111 1111", "**** **** **** 1111"),
            (4, "212-555-0142", "***-***-0142"),
            (2, "ab", "ab"),
            (0, "secret", "******"),
            (4, "Zoë Müller", "*** **ller"),
            (4, "", ""),
            (3, "日本語テキスト", "****キスト"),
        ];
        for (keep, input, want) in cases {
            assert_eq!(text(&Strategy::Partial { keep }, input), want, "{input:?}");
        }
    }

    #[test]
    fn partial_on_ascii_cells_matches_partial_on_text() {
        for keep in [0, 1, 4, 30] {
            for value in [
                "4111 1111 1111 1111",
                "ada@example.com",
                "",
                "--",
                "a-b_c d9",
                "x",
            ] {
                let strategy = Strategy::Partial { keep };
                assert_eq!(
                    strategy.mask_cell(&key(), value.as_bytes()),
                    Masked::Value(text(&strategy, value).into_bytes()),
                    "{keep} {value:?}"
                );
            }
        }
    }

    #[test]
    fn redact_and_null_write_their_text() {
        let redact = Strategy::Redact { with: "XXX".into() };
        assert_eq!(text(&redact, "john@example.com"), "XXX");
        let null = Strategy::Null {
            with: DEFAULT_REDACTION.into(),
        };
        assert_eq!(text(&null, "john@example.com"), "[redacted]");
        assert_eq!(null.mask_cell(&key(), b"x"), Masked::Null);
    }

    #[test]
    fn hash_is_a_stable_keyed_pseudonym_of_16_hex_digits() {
        let a = text(&Strategy::Hash, "john@example.com");
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
        );
        assert_eq!(a, text(&Strategy::Hash, "john@example.com"));
        assert_ne!(a, text(&Strategy::Hash, "jane@example.com"));
        let mut other = String::new();
        Strategy::Hash.mask_text(
            &Key::new(b"another key, 16+ bytes").unwrap(),
            "john@example.com",
            &mut other,
        );
        assert_ne!(a, other);
        // A cell hashes to the same pseudonym as the same text found inside free text.
        assert_eq!(
            Strategy::Hash.mask_cell(&key(), b"john@example.com"),
            Masked::Value(a.into_bytes())
        );
    }

    #[test]
    fn format_preserving_keeps_shape_and_is_deterministic() {
        for input in [
            "4111 1111 1111 1111",
            "John.Smith@Example.com",
            "+44 20 7946 0958",
            "Zoë Müller, 東京",
            "a much longer value that needs more than one block of the keyed stream: 0123456789",
        ] {
            let out = text(&Strategy::FormatPreserving, input);
            assert_eq!(out.chars().count(), input.chars().count(), "{input:?}");
            for (a, b) in input.chars().zip(out.chars()) {
                if a.is_numeric() {
                    assert!(b.is_ascii_digit(), "{a} -> {b}");
                } else if a.is_uppercase() {
                    assert!(b.is_ascii_uppercase(), "{a} -> {b}");
                } else if a.is_alphabetic() {
                    assert!(b.is_ascii_lowercase(), "{a} -> {b}");
                } else {
                    assert_eq!(a, b);
                }
            }
            assert_eq!(out, text(&Strategy::FormatPreserving, input));
        }
        assert_ne!(
            text(&Strategy::FormatPreserving, "4111 1111 1111 1111"),
            "4111 1111 1111 1111"
        );
    }

    #[test]
    fn key_debug_shows_nothing() {
        assert_eq!(format!("{:?}", key()), "Key(<redacted>)");
    }
}
