//! Email addresses, read outwards from an `@`.
//!
//! A local part of `[A-Za-z0-9._%+-]` (no leading, trailing or doubled dot) and a domain of at least two
//! LDH labels whose last label (the TLD) is at least two letters. An address glued to what follows
//! (`ada@example.com@x`, `ada@example.com4111`) is reported up to the end of its TLD: for masking, the
//! address showing is the worse mistake.

use super::{at, before, run_start};
use crate::detector::{Detector, Finding};

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

fn local_byte(x: u8) -> bool {
    x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An email address around the `@` at `at_sign`. The local part starts at `floor` or later (the end of
/// the previous finding): in `ada@example.com@x.org` the second `@` does not take `example.com` back.
pub(super) fn find(b: &[u8], at_sign: usize, floor: usize) -> Option<Finding> {
    let mut start = run_start(b, at_sign, MAX_LOCAL + 1, local_byte).max(floor.min(at_sign));
    if at_sign - start > MAX_LOCAL {
        return None;
    }
    // A run of dots is punctuation before the address (`see...john@example.com`), never inside one.
    if let Some(dots) = b.get(start..at_sign)?.windows(2).rposition(|w| w == b"..") {
        start += dots + 2;
    }
    while at(b, start) == b'.' && start < at_sign {
        start += 1;
    }
    let local = b.get(start..at_sign)?;
    if local.is_empty() || local.ends_with(b".") {
        return None;
    }
    if in_url_authority(b, start) {
        return None;
    }
    let end = domain_end(b, at_sign + 1)?;
    Some(Finding::new(Detector::Email, start, end))
}

/// The end of a valid domain starting at `start`, or `None`.
fn domain_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut labels = 0;
    let mut last_label = start..start;
    loop {
        let label_start = i;
        while (at(b, i).is_ascii_alphanumeric() || at(b, i) == b'-') && i - label_start <= MAX_LABEL {
            i += 1;
        }
        let label = b.get(label_start..i)?;
        if label.is_empty()
            || label.len() > MAX_LABEL
            || label.starts_with(b"-")
            || label.ends_with(b"-")
            || i - start > MAX_DOMAIN
        {
            return None;
        }
        labels += 1;
        last_label = label_start..i;
        // Another label only when a letter or digit follows the dot; a final dot ends the sentence.
        if at(b, i) == b'.' && at(b, i + 1).is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        break;
    }
    let mut tld = b.get(last_label.clone())?;
    let mut tld_ok = (tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
        || (tld.len() > 4 && tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"xn--")));
    if !tld_ok && labels >= 2 && !MEDIA_WITH_DIGIT.iter().any(|e| tld.eq_ignore_ascii_case(e)) {
        // Digits glued to the TLD (`ada@example.com4111`, a card number or a date run on): the address
        // ends where the TLD's letters meet the first digit.
        let letters = tld.iter().take_while(|x| x.is_ascii_alphabetic()).count();
        if letters >= 2 && tld.get(letters).is_some_and(u8::is_ascii_digit) {
            i = last_label.start + letters;
            tld = tld.get(..letters)?;
            tld_ok = true;
        }
    }
    // `@` may follow (`ada@example.com@x`: the address is reported, the rest is read at that `@`); `_`
    // may not (`x@example.com_old` is an identifier).
    if labels < 2 || !tld_ok || at(b, i) == b'_' || file_name(b, start, tld, labels) {
        return None;
    }
    Some(i)
}

/// Extensions with a digit that end file names (`clip@1080p.mp4`), not addresses with digits glued on.
const MEDIA_WITH_DIGIT: [&[u8]; 2] = [b"mp3", b"mp4"];

/// `icon@2x.png`: a two-label "domain" whose TLD is an image extension is a file name.
fn file_name(b: &[u8], start: usize, tld: &[u8], labels: usize) -> bool {
    const EXTENSIONS: [&[u8]; 8] = [b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp"];
    labels == 2 && at(b, start).is_ascii_digit() && EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e))
}

/// Whether `start` is inside the authority of a URL (`scheme://user:password@host`): the local part would
/// be the userinfo, which the password detector reads.
fn in_url_authority(b: &[u8], start: usize) -> bool {
    // Bounded: a text of many `@` must not be read back far from each.
    let token_start = run_start(b, start, 128, |x| !x.is_ascii_whitespace() && x != b'/');
    token_start >= 3
        && before(b, token_start) == b'/'
        && before(b, token_start - 1) == b'/'
        && before(b, token_start - 2) == b':'
}
