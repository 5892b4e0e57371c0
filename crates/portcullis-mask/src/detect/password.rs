//! Passwords in URLs and in connection strings; the finding is the password alone.
//!
//! URLs as `scheme://user:password@host`; connection strings as `password=...` in libpq key/value,
//! ADO.NET, ODBC, JDBC and environment styles.

use super::{at, before, is_word, run_end, run_start};
use crate::detector::{Detector, Finding};

/// How far an authority is read: a text of many `://` without a `/` must not be read far from each.
/// A value is read to its end (the scan then resumes after it, so each byte is read a bounded number of
/// times).
const MAX_AUTHORITY: usize = 256;
const MAX_VALUE: usize = usize::MAX;

/// The password of the URL whose `://` is at `colon`: the userinfo is the authority up to its last `@`,
/// the password what follows the userinfo's first `:`.
pub(super) fn in_url(b: &[u8], colon: usize) -> Option<Finding> {
    if !before(b, colon).is_ascii_alphanumeric() {
        return None;
    }
    let authority = colon + 3;
    let end = run_end(b, authority, MAX_AUTHORITY, |x| {
        !x.is_ascii_whitespace() && !matches!(x, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'`' | 0)
    });
    let userinfo = b.get(authority..end)?;
    let at_sign = authority + userinfo.iter().rposition(|x| *x == b'@')?;
    let user = b.get(authority..at_sign)?;
    let password = authority + user.iter().position(|x| *x == b':')? + 1;
    (password < at_sign).then(|| Finding::new(Detector::UrlPassword, password, at_sign))
}

/// The value of a password key whose `=` is at `eq`: `password=`, `Password=`, `PWD=`, `passwd=`, and
/// keys ending in `_password` or `_pwd` (`DB_PASSWORD=`, `PGPASSWORD=`); spaces around `=` allowed.
pub(super) fn in_key_value(b: &[u8], eq: usize) -> Option<Finding> {
    let key_end = run_start(b, eq, 4, |x| x == b' ');
    let key_start = run_start(b, key_end, 64, |x| x.is_ascii_alphanumeric() || x == b'_');
    let key = b.get(key_start..key_end)?;
    if !password_key(key) || is_word(before(b, key_start)) || before(b, key_start) == b'.' {
        return None;
    }
    // ADO.NET and ODBC separate pairs with `;`: there a value runs to the `;` and may hold spaces.
    let pairs_by_semicolon = before(b, run_start(b, key_start, 4, |x| x == b' ')) == b';';
    let value_start = run_end(b, eq + 1, 4, |x| x == b' ');
    let (start, end) = match at(b, value_start) {
        q @ (b'\'' | b'"') => quoted(b, value_start, q)?,
        b'{' => {
            let end = run_end(b, value_start + 1, MAX_VALUE, |x| x != b'}');
            (value_start + 1, end)
        }
        _ if pairs_by_semicolon => {
            let end = run_end(b, value_start, MAX_VALUE, |x| {
                !matches!(x, b';' | b'\n' | b'\r' | 0)
            });
            (value_start, run_start(b, end, MAX_VALUE, |x| x == b' '))
        }
        _ => {
            let end = run_end(b, value_start, MAX_VALUE, |x| {
                !x.is_ascii_whitespace() && !matches!(x, b';' | b'&' | b'\'' | b'"' | 0)
            });
            (value_start, end)
        }
    };
    (end > start).then(|| Finding::new(Detector::UrlPassword, start, end))
}

fn password_key(key: &[u8]) -> bool {
    let lower_is = |k: &[u8], word: &[u8]| k.eq_ignore_ascii_case(word);
    let ends = |suffix: &[u8]| {
        key.len() > suffix.len()
            && key
                .get(key.len() - suffix.len()..)
                .is_some_and(|tail| lower_is(tail, suffix))
    };
    lower_is(key, b"password")
        || lower_is(key, b"passwd")
        || lower_is(key, b"pwd")
        || lower_is(key, b"pgpassword")
        || ends(b"_password")
        || ends(b"_passwd")
        || ends(b"_pwd")
}

/// The inside of a value quoted with `q` at `open`: a backslash escapes the next byte (libpq) and a
/// doubled quote stands for one (ADO.NET). Unterminated: to the end of the line.
fn quoted(b: &[u8], open: usize, q: u8) -> Option<(usize, usize)> {
    let start = open + 1;
    let mut i = start;
    while i < b.len() {
        match at(b, i) {
            b'\\' => i += 2,
            x if x == q && at(b, i + 1) == q => i += 2,
            x if x == q => return Some((start, i)),
            b'\n' | b'\r' => return Some((start, i)),
            _ => i += 1,
        }
    }
    Some((start, i.min(b.len())))
}
