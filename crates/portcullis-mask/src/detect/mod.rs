//! The scanner: one pass over a value's bytes that stops only at candidates for the validators.
//!
//! The pass reads the text as words (runs of `[A-Za-z0-9_-]`) and the bytes between them. Each byte costs
//! one lookup in [`CLASS`]; a word costs a few more checks at its end (does it hold a digit, does its first
//! byte start a known token prefix, is it long), and only five bytes between words are triggers
//! (`@ : = + (`). Everything a detector needs beyond that (the local part of an email before its `@`, the
//! groups of a card number after its first digits) is read by its validator from the candidate position,
//! within a bounded window. Findings end on ASCII bytes or at the end of the text, so every boundary is a
//! char boundary.

mod email;
mod iban;
mod ipv6;
mod numeric;
mod password;
mod tokens;

use crate::detector::{Detector, DetectorSet, Finding};

/// `[A-Za-z0-9_-]`: a byte inside a word.
pub(crate) const WORD: u8 = 1;
pub(crate) const DIGIT: u8 = 2;
pub(crate) const UPPER: u8 = 4;
pub(crate) const LOWER: u8 = 8;
/// `_` or `-`: word bytes that are not alphanumeric.
pub(crate) const JOIN: u8 = 16;
/// A byte between words that starts a candidate: `@ : = + (`.
pub(crate) const TRIGGER: u8 = 32;
/// `/` or `+`: base64 bytes that end a word (an AWS secret key can hold them).
pub(crate) const B64_EXTRA: u8 = 64;

/// The byte classes of the scanner, one entry per byte value.
pub(crate) static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut rest: &mut [u8] = &mut table;
    let mut b = 0u8;
    while let [slot, tail @ ..] = rest {
        *slot = class_of(b);
        rest = tail;
        b = b.wrapping_add(1);
    }
    table
}

const fn class_of(b: u8) -> u8 {
    if b.is_ascii_digit() {
        WORD | DIGIT
    } else if b.is_ascii_uppercase() {
        WORD | UPPER
    } else if b.is_ascii_lowercase() {
        WORD | LOWER
    } else if b == b'_' || b == b'-' {
        WORD | JOIN
    } else if b == b'@' || b == b':' || b == b'=' || b == b'(' {
        TRIGGER
    } else if b == b'+' {
        TRIGGER | B64_EXTRA
    } else if b == b'/' {
        B64_EXTRA
    } else {
        0
    }
}

/// The byte at `i`, or 0 past the end (0 is no detector's byte, so the end reads as a boundary).
#[inline]
pub(crate) fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// The byte before `i`, or 0 at the start.
#[inline]
pub(crate) fn before(b: &[u8], i: usize) -> u8 {
    i.checked_sub(1).and_then(|j| b.get(j)).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn class(x: u8) -> u8 {
    CLASS.get(usize::from(x)).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn is_word(x: u8) -> bool {
    class(x) & WORD != 0
}

/// Whether `b[i..]` starts with `prefix`.
#[inline]
pub(crate) fn starts_with(b: &[u8], i: usize, prefix: &[u8]) -> bool {
    b.get(i..).is_some_and(|rest| rest.starts_with(prefix))
}

/// The end of the run of bytes from `i` that satisfy `keep`, reading at most `limit` bytes.
#[inline]
pub(crate) fn run_end(b: &[u8], i: usize, limit: usize, keep: impl Fn(u8) -> bool) -> usize {
    let stop = i.saturating_add(limit).min(b.len());
    let mut j = i;
    while j < stop && keep(at(b, j)) {
        j += 1;
    }
    j
}

/// The start of the run of bytes ending at `i` that satisfy `keep`, reading at most `limit` bytes back.
#[inline]
pub(crate) fn run_start(b: &[u8], i: usize, limit: usize, keep: impl Fn(u8) -> bool) -> usize {
    let stop = i.saturating_sub(limit);
    let mut j = i;
    while j > stop && keep(before(b, j)) {
        j -= 1;
    }
    j
}

/// Every finding of the detectors in `set` in `text`: sorted, non-overlapping.
pub fn detect(text: &str, set: DetectorSet) -> Vec<Finding> {
    let mut out = Vec::new();
    detect_into(text, set, &mut out);
    out
}

/// [`detect`] into a buffer the caller may reuse; `out` is cleared first. Allocates only for findings.
pub fn detect_into(text: &str, set: DetectorSet, out: &mut Vec<Finding>) {
    detect_bytes(text.as_bytes(), set, out);
}

/// The scan over bytes that may not be UTF-8: the cell path runs it first and checks UTF-8 only when
/// something was found (a cell that is not UTF-8 is then left alone). Every finding starts and ends on
/// a char boundary of whatever UTF-8 the bytes hold.
pub(crate) fn detect_bytes(b: &[u8], set: DetectorSet, out: &mut Vec<Finding>) {
    out.clear();
    if set.is_empty() {
        return;
    }
    Scan { b, set, out }.run();
    resolve_overlaps(out);
}

/// Whether `i` is a char boundary: the end, or a byte that is not a UTF-8 continuation byte.
#[inline]
fn is_boundary(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|x| !(0x80..0xc0).contains(x))
}

/// The position of `needle` in `hay` from `from` on.
pub(crate) fn find_bytes(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while let Some(offset) = hay.get(i..)?.iter().position(|x| *x == first) {
        if starts_with(hay, i + offset, needle) {
            return Some(i + offset);
        }
        i += offset + 1;
    }
    None
}

/// One scan's input, detectors and output.
struct Scan<'a> {
    b: &'a [u8],
    set: DetectorSet,
    out: &'a mut Vec<Finding>,
}

/// The detectors read from a word that starts with a digit.
const NUMERIC: DetectorSet = DetectorSet::of(&[
    Detector::Phone,
    Detector::PaymentCard,
    Detector::UsSsn,
    Detector::Ipv4,
]);
/// The detectors read from a word by its first bytes.
const PREFIXED: DetectorSet = DetectorSet::of(&[
    Detector::Jwt,
    Detector::AwsAccessKeyId,
    Detector::GithubToken,
    Detector::SlackToken,
    Detector::StripeKey,
    Detector::PrivateKey,
    Detector::Iban,
]);
/// No token is a word shorter than this without a digit, `_` or `-` (an AWS access key id is 20, a
/// Stripe key 24, a JWT header 20 or more); such words, nearly all words of text, end with one branch.
const SHORT_WORD: usize = 10;
/// Passwords up to this long are scanned again for tokens (the longest token that is not a JWT is 93).
const RESCANNED_PASSWORD: usize = 128;

impl Scan<'_> {
    fn run(&mut self) {
        let b = self.b;
        let numeric = self.set.intersects(NUMERIC);
        let prefixed = self.set.intersects(PREFIXED);
        let secret = self.set.contains(Detector::AwsSecretKey);
        let mut i = 0;
        while let Some(&x) = b.get(i) {
            let c = class(x);
            if c & WORD == 0 {
                // Between words: only the trigger bytes start a candidate.
                if c & TRIGGER != 0
                    && let Some(end) = self.trigger(i)
                {
                    i = end.max(i + 1);
                    continue;
                }
                i += 1;
                continue;
            }
            // A word: the common path is this loop over the class table.
            let start = i;
            let mut bits = 0u8;
            while let Some(&y) = b.get(i) {
                let c = class(y);
                if c & WORD == 0 {
                    break;
                }
                bits |= c;
                i += 1;
            }
            if bits & (DIGIT | JOIN) == 0
                && i - start < SHORT_WORD
                && !matches!(before(b, start), b'/' | b'+')
            {
                continue;
            }
            let mut end = i;
            if numeric && bits & DIGIT != 0 && x.is_ascii_digit() {
                let after_finding = self.out.last().is_some_and(|f| f.end + 1 == start);
                let (found, span_end) = numeric::find(b, start, self.set, after_finding);
                end = end.max(self.push(found).unwrap_or(0)).max(span_end);
            }
            if prefixed && tokens::could_start(x, before(b, i), i - start, bits) {
                end = end.max(
                    self.push(tokens::at_word(b, start, i, bits, self.set))
                        .unwrap_or(0),
                );
            }
            // A key is a run of exactly 40 bytes that ends at most two bytes (`/`, `+`) after this word:
            // a word that ends before byte 38 of the text cannot end one.
            if secret
                && bits & JOIN == 0
                && (i - start >= 40 || (i + 2 >= 40 && matches!(before(b, start), b'/' | b'+')))
            {
                end = end.max(self.push(tokens::aws_secret(b, start, i, bits)).unwrap_or(0));
            }
            i = end;
        }
    }

    /// A candidate at a trigger byte between words; returns where the scan resumes when one was found.
    fn trigger(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let found = match at(b, i) {
            b'@' if self.set.contains(Detector::Email) => {
                email::find(b, i, self.out.last().map_or(0, |f| f.end))
            }
            b':' if starts_with(b, i, b"://") => {
                if self.set.contains(Detector::UrlPassword) {
                    password::in_url(b, i)
                } else {
                    None
                }
            }
            b':' if self.set.contains(Detector::Ipv6) => match ipv6::find(b, i) {
                Ok(found) => found,
                // A failed run of colons is not tried again at its next colon (`10:30:45`).
                Err(last_colon) => return (last_colon > i).then_some(last_colon + 1),
            },
            b'=' if self.set.contains(Detector::UrlPassword) => password::in_key_value(b, i),
            b'+' | b'(' if self.set.contains(Detector::Phone) => numeric::phone_at(b, i),
            _ => None,
        };
        let end = self.push(found)?;
        // A short password is scanned too: when it is a known token (`ghp_...` in a clone URL), the
        // token's finding is the more specific one for the same span. A long one is not, so that each
        // byte is read a bounded number of times (`password='password='...`).
        let resume = match found {
            Some(f) if f.detector == Detector::UrlPassword && f.len() <= RESCANNED_PASSWORD => f.start,
            _ => end,
        };
        (resume > i).then_some(resume)
    }

    /// Keeps a finding; returns its end. A bounded read may stop inside a multi-byte char: the finding then
    /// grows to cover the whole char.
    fn push(&mut self, found: Option<Finding>) -> Option<usize> {
        let mut f = found.filter(|f| f.end > f.start)?;
        f.end = f.end.min(self.b.len());
        while !is_boundary(self.b, f.end) {
            f.end += 1;
        }
        while !is_boundary(self.b, f.start) && f.start > 0 {
            f.start -= 1;
        }
        self.out.push(f);
        Some(f.end)
    }
}

/// Sorts the findings and drops overlaps, keeping the longer finding (the more specific on a tie).
fn resolve_overlaps(out: &mut Vec<Finding>) {
    if out.len() < 2 {
        return;
    }
    if !out.is_sorted_by_key(|f| f.start) {
        out.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    }
    let mut kept: Vec<Finding> = Vec::with_capacity(out.len());
    for f in out.drain(..) {
        match kept.last_mut() {
            Some(last) if f.start < last.end => {
                let better = f.len() > last.len()
                    || (f.len() == last.len() && f.detector.specificity() > last.detector.specificity());
                if better {
                    *last = f;
                }
            }
            _ => kept.push(f),
        }
    }
    *out = kept;
}

#[cfg(test)]
mod tests;
