//! Email addresses, read outwards from an `@`.
//!
//! A local part of `[A-Za-z0-9._%+-]` (no leading, trailing or doubled dot) and a domain of at least two
//! LDH labels whose last label (the TLD) is at least two letters.

use super::{at, before, run_start};
use crate::detector::{Detector, Finding};

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

fn local_byte(x: u8) -> bool {
    x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An email address around the `@` at `at_sign`.
pub(super) fn find(b: &[u8], at_sign: usize) -> Option<Finding> {
    let mut start = run_start(b, at_sign, MAX_LOCAL + 1, local_byte);
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
    let tld = b.get(last_label)?;
    let tld_ok = (tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
        || (tld.len() > 4 && tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"xn--")));
    let next = at(b, i);
    if labels < 2 || !tld_ok || matches!(next, b'@' | b'_') || file_name(b, start, tld, labels) {
        return None;
    }
    Some(i)
}

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
