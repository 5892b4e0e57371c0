//! Credentials known by prefix or shape (JWT, AWS, GitHub, Slack, Stripe, PEM keys), and IBANs.
//!
//! Each validator is given a word the scanner found by its first bytes or its length (JWTs, AWS access
//! key ids, GitHub, Slack and Stripe tokens, Slack webhook URLs, PEM headers, IBANs, which start with
//! two letters and two digits) or, for AWS secret keys, a long base64 run.

use super::{
    DIGIT, JOIN, LOWER, UPPER, at, before, find_bytes, iban, is_word, run_end, run_start, starts_with,
};
use crate::detector::{Detector, DetectorSet, Finding};

/// Whether a word of `len` bytes starting with `x` and ending with `last` (classes `bits`) may be one of
/// the prefixed tokens or an IBAN: a few compares per word, false for nearly every word of ordinary text.
#[inline]
pub(super) fn could_start(x: u8, last: u8, len: usize, bits: u8) -> bool {
    let token = match x {
        b'A'..=b'Z' => {
            (x == b'A' && len == 20)
                || (x == b'T' && len >= 9)
                || (bits & DIGIT != 0 && (len == 4 || len >= 15))
        }
        b'e' => len >= 10,
        b'g' => len >= 40,
        b'x' => len >= 15,
        b's' | b'r' | b'w' => len >= 22,
        _ => false,
    };
    // A PEM header glued to the word before it (`\n-----BEGIN` in JSON); dates (`2024-01-15`) and ids
    // with dashes end otherwise.
    token || (bits & JOIN != 0 && len >= 10 && last == b'N')
}

/// A prefixed token at the word `start..end`; `bits` are the classes the word holds.
pub(super) fn at_word(b: &[u8], start: usize, end: usize, bits: u8, set: DetectorSet) -> Option<Finding> {
    let word = b.get(start..end)?;
    let len = end - start;
    let first = *word.first()?;
    let found = match first {
        b'e' if set.contains(Detector::Jwt) && word.starts_with(b"eyJ") => jwt(b, start, end),
        b'A' if len == 20 && set.contains(Detector::AwsAccessKeyId) => aws_key_id(word, start, end),
        b'g' if set.contains(Detector::GithubToken) => github(word, start, end),
        b'x' if set.contains(Detector::SlackToken) => slack_token(b, start, end),
        b's' | b'r' | b'w' if set.contains(Detector::StripeKey) => stripe(word, start, end),
        b'T' if set.contains(Detector::SlackToken) => slack_webhook(b, start),
        _ => None,
    };
    found
        .or_else(|| {
            let iban = first.is_ascii_uppercase() && bits & DIGIT != 0 && set.contains(Detector::Iban);
            if iban { iban::at_word(b, start, end) } else { None }
        })
        .or_else(|| {
            let pem = bits & JOIN != 0 && word.ends_with(b"-----BEGIN") && set.contains(Detector::PrivateKey);
            if pem { pem_key(b, end - 10) } else { None }
        })
}

/// `eyJ` + base64url, `.`, base64url, `.`, base64url (five segments for JWE), whose header decodes to a
/// JSON object with `"alg"`.
fn jwt(b: &[u8], start: usize, end: usize) -> Option<Finding> {
    let mut segments = 1;
    let mut stop = end;
    while at(b, stop) == b'.' && is_word(at(b, stop + 1)) && segments < 5 {
        stop = run_end(b, stop + 1, usize::MAX, is_word);
        segments += 1;
    }
    if !(segments == 3 || segments == 5) || (at(b, stop) == b'.' && is_word(at(b, stop + 1))) {
        return None;
    }
    let header = b.get(start..end)?;
    let mut json = [0u8; 512];
    let n = base64url_decode(header, &mut json);
    let json = json.get(..n)?;
    let object = json.trim_ascii_start().starts_with(b"{");
    let alg = json.windows(5).any(|w| w == b"\"alg\"");
    (object && alg).then(|| Finding::new(Detector::Jwt, start, stop))
}

/// Decodes as much base64url (no padding) as fits into `out`; returns the bytes written. Stops at the
/// first byte outside the alphabet.
fn base64url_decode(input: &[u8], out: &mut [u8]) -> usize {
    let mut acc = 0u32;
    let mut bits = 0;
    let mut n = 0;
    for &x in input {
        let v = match x {
            b'A'..=b'Z' => x - b'A',
            b'a'..=b'z' => x - b'a' + 26,
            b'0'..=b'9' => x - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            match out.get_mut(n) {
                Some(slot) => *slot = (acc >> bits) as u8,
                None => return n,
            }
            n += 1;
        }
    }
    n
}

/// An AWS access key id: a known four-letter prefix and 16 base32 characters, the whole word.
fn aws_key_id(word: &[u8], start: usize, end: usize) -> Option<Finding> {
    const PREFIXES: [&[u8; 4]; 12] = [
        b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AIPA", b"ANPA", b"ANVA", b"AROA", b"APKA",
        b"ASCA",
    ];
    let (prefix, rest) = word.split_at_checked(4)?;
    let known = PREFIXES.iter().any(|p| p.as_slice() == prefix)
        || (prefix.starts_with(b"A3T") && prefix.last().is_some_and(u8::is_ascii_alphanumeric));
    let base32 = rest
        .iter()
        .all(|x| x.is_ascii_uppercase() || (b'2'..=b'7').contains(x));
    (known && base32).then(|| Finding::new(Detector::AwsAccessKeyId, start, end))
}

/// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 alphanumerics; `github_pat_` + 82 of `[A-Za-z0-9_]`.
fn github(word: &[u8], start: usize, end: usize) -> Option<Finding> {
    let classic = word.len() == 40
        && matches!(word.get(..4)?, b"ghp_" | b"gho_" | b"ghu_" | b"ghs_" | b"ghr_")
        && word.get(4..)?.iter().all(u8::is_ascii_alphanumeric);
    let fine_grained = word.len() == 93
        && word.starts_with(b"github_pat_")
        && word
            .get(11..)?
            .iter()
            .all(|x| x.is_ascii_alphanumeric() || *x == b'_');
    (classic || fine_grained).then(|| Finding::new(Detector::GithubToken, start, end))
}

/// `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`, `xoxo-` + at least 10 of `[A-Za-z0-9-]` with a
/// digit; also the refresh form `xoxe.xoxp-...`.
fn slack_token(b: &[u8], start: usize, end: usize) -> Option<Finding> {
    let token = b.get(start..end)?;
    let kind_ok = token.len() >= 5
        && token.starts_with(b"xox")
        && matches!(
            token.get(3..5)?,
            b"b-" | b"p-" | b"a-" | b"r-" | b"s-" | b"e-" | b"o-"
        );
    let rest = token.get(5..)?;
    let body_ok = rest.len() >= 10
        && rest.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        && rest.iter().any(u8::is_ascii_digit);
    let refresh = start >= 5 && b.get(start - 5..start) == Some(b"xoxe.");
    let begin = if refresh { start - 5 } else { start };
    (kind_ok && body_ok).then(|| Finding::new(Detector::SlackToken, begin, end))
}

/// A Slack webhook URL, found at its workspace id: `hooks.slack.com/services/T.../B.../...`, with its
/// `https://` when present; the whole URL is the finding.
fn slack_webhook(b: &[u8], workspace: usize) -> Option<Finding> {
    const HOST: &[u8] = b"hooks.slack.com/services/";
    let host = workspace.checked_sub(HOST.len())?;
    if b.get(host..workspace)? != HOST || is_word(before(b, host)) || before(b, host) == b'.' {
        return None;
    }
    let stop = run_end(b, workspace, 256, |x| is_word(x) || x == b'/');
    if stop - workspace < 10 {
        return None;
    }
    let begin = [b"https://".as_slice(), b"http://"]
        .into_iter()
        .find(|scheme| host >= scheme.len() && b.get(host - scheme.len()..host) == Some(*scheme))
        .map_or(host, |scheme| host - scheme.len());
    Some(Finding::new(Detector::SlackToken, begin, stop))
}

/// `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`, `whsec_` + at least 16 alphanumerics, the whole word.
/// Publishable keys (`pk_`) are public by design and not matched.
fn stripe(word: &[u8], start: usize, end: usize) -> Option<Finding> {
    const PREFIXES: [&[u8]; 5] = [b"sk_live_", b"sk_test_", b"rk_live_", b"rk_test_", b"whsec_"];
    let prefix = PREFIXES.iter().find(|p| word.starts_with(p))?;
    let rest = word.get(prefix.len()..)?;
    (rest.len() >= 16 && rest.iter().all(u8::is_ascii_alphanumeric))
        .then(|| Finding::new(Detector::StripeKey, start, end))
}

/// `-----BEGIN <label>PRIVATE KEY-----` through the matching `-----END ...-----`, or to the end of the
/// text when the END line is missing (a truncated key is still a key).
fn pem_key(b: &[u8], start: usize) -> Option<Finding> {
    let label_start = start + "-----BEGIN ".len();
    if at(b, label_start - 1) != b' ' {
        return None;
    }
    let label_end = run_end(b, label_start, 64, |x| x.is_ascii_uppercase() || x == b' ');
    let label = b.get(label_start..label_end)?;
    if !label.ends_with(b"PRIVATE KEY") || !starts_with(b, label_end, b"-----") {
        return None;
    }
    let mut from = label_end + 5;
    while let Some(at_end) = find_bytes(b, from, b"-----END ") {
        let end_label = at_end + "-----END ".len();
        if starts_with(b, end_label, label) && starts_with(b, end_label + label.len(), b"-----") {
            return Some(Finding::new(
                Detector::PrivateKey,
                start,
                end_label + label.len() + 5,
            ));
        }
        from = end_label;
    }
    Some(Finding::new(Detector::PrivateKey, start, b.len()))
}

/// An AWS secret access key: exactly 40 characters of `[A-Za-z0-9/+]`, bounded by bytes outside that
/// alphabet (an `=` before is allowed, as in `aws_secret_access_key=...`), with upper case, lower case and
/// a digit, not all hex, at most five `/` or `+`, at least 20 distinct characters, and fewer than three
/// runs of five or more lower-case letters (random base64 rarely has them; CamelCase names and paths
/// do). Checked at the end of a word that is long or continues a run with `/` or `+`. On random keys it
/// accepts 99% (the misses lack a digit or a case); see docs/masking.md for what else it accepts.
pub(super) fn aws_secret(b: &[u8], start: usize, word_end: usize, bits: u8) -> Option<Finding> {
    let continues = matches!(before(b, start), b'/' | b'+');
    if !(word_end - start >= 40 || continues) || bits & JOIN != 0 {
        return None;
    }
    // The key may end with `/` or `+`; when a letter or digit follows them the run goes on, and the next
    // word is checked instead.
    let end = run_end(b, word_end, 2, |x| x == b'/' || x == b'+');
    let next = at(b, end);
    if next.is_ascii_alphanumeric() || matches!(next, b'/' | b'+' | b'=') {
        return None;
    }
    if bits & (UPPER | LOWER | DIGIT) != (UPPER | LOWER | DIGIT) && !continues {
        return None;
    }
    let run = run_start(b, end, 41, |x| {
        x.is_ascii_alphanumeric() || x == b'/' || x == b'+'
    });
    let before_run = before(b, run);
    if end - run != 40 || is_word(before_run) || matches!(before_run, b'/' | b'+') {
        return None;
    }
    let key = b.get(run..end)?;
    let has = |f: fn(&u8) -> bool| key.iter().any(f);
    let symbols = key.iter().filter(|x| matches!(x, b'/' | b'+')).count();
    let mut seen = [false; 128];
    for &x in key {
        if let Some(s) = seen.get_mut(usize::from(x)) {
            *s = true;
        }
    }
    let distinct = seen.iter().filter(|s| **s).count();
    let wordy = key
        .split(|x| !x.is_ascii_lowercase())
        .filter(|run| run.len() >= 5)
        .count();
    let valid = has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
        && !key.iter().all(u8::is_ascii_hexdigit)
        && symbols <= 5
        && distinct >= 20
        && wordy < 3;
    valid.then(|| Finding::new(Detector::AwsSecretKey, run, end))
}
