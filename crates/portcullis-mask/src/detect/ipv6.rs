//! IPv6 addresses: the hex-and-colon run around a `:`, checked by shape, then by std's parser.
//!
//! Full, `::`-compressed and IPv4-suffixed forms. Times (`12:30:45`), MAC addresses and `std::vector`
//! fail the shape, the parse or the boundary checks.

use std::net::Ipv6Addr;

use super::{at, before, run_end, run_start};
use crate::detector::{Detector, Finding};

/// The longest textual IPv6 address (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`) is 45 bytes.
const MAX_LEN: usize = 45;

fn hex_or_colon(x: u8) -> bool {
    x.is_ascii_hexdigit() || x == b':'
}

/// A candidate around the `:` at `colon`. When the run of hex digits and colons was read and failed,
/// `Err` holds the position of its last colon: trying again there would read the same run.
///
/// Inlined into the scan: most colons (`"id":42` in JSON, `key: value`) have no other colon within five
/// bytes and end here without a call.
#[inline]
pub(super) fn find(b: &[u8], colon: usize) -> Result<Option<Finding>, usize> {
    // An address has another colon within five bytes of this one (`:1042,` in JSON has none).
    let near = |x: &u8| *x == b':';
    let ahead = b
        .get(colon + 1..(colon + 6).min(b.len()))
        .is_some_and(|w| w.iter().any(near));
    let behind = b
        .get(colon.saturating_sub(5)..colon)
        .is_some_and(|w| w.iter().any(near));
    if !ahead && !behind {
        return Ok(None);
    }
    find_run(b, colon)
}

/// [`find`] past its first check: the run of hex digits, colons and dots around `colon`.
#[inline(never)]
fn find_run(b: &[u8], colon: usize) -> Result<Option<Finding>, usize> {
    let start = run_start(b, colon, MAX_LEN + 1, hex_or_colon);
    let p = before(b, start);
    // Part of a word (`std::`, `T10:30`), of a dotted run or of a longer colon run.
    if p.is_ascii_alphanumeric() || matches!(p, b'.' | b':' | b'_' | b'-') || colon - start > MAX_LEN {
        return Ok(None);
    }
    let mut end = run_end(b, colon, MAX_LEN + 2 - (colon - start), |x| {
        hex_or_colon(x) || x == b'.'
    });
    let Some(run) = b.get(start..end) else {
        return Ok(None);
    };
    // Times (`10:30:45.123456`) and other short colon runs, before the full shape: without `::` an
    // address has at least six colons (seven, or six before a dotted quad).
    if run.iter().filter(|x| **x == b':').count() < 6 && !run.windows(2).any(|w| w == b"::") {
        return Err(start + run.iter().rposition(|x| *x == b':').unwrap_or(0));
    }
    let shape = Shape::of(run);
    let failed = Err(start + shape.last_colon);
    if end - start > MAX_LEN {
        return failed;
    }
    // A sentence may end with the address; a lone trailing colon is punctuation (`::` is not).
    while before(b, end) == b'.' {
        end -= 1;
    }
    if before(b, end) == b':' && before(b, end - 1) != b':' {
        end -= 1;
    }
    let next = at(b, end);
    if next.is_ascii_alphanumeric() || matches!(next, b'_' | b'-') {
        return failed;
    }
    let candidate = b.get(start..end).unwrap_or_default();
    let shape = if end == start + run.len() {
        shape
    } else {
        Shape::of(candidate)
    };
    // Real addresses hold a decimal digit; `a::b` and `dead::beef` in code do not count.
    if !shape.plausible || !shape.digit {
        return failed;
    }
    match std::str::from_utf8(candidate).map(str::parse::<Ipv6Addr>) {
        Ok(Ok(_)) => Ok(Some(Finding::new(Detector::Ipv6, start, end))),
        _ => failed,
    }
}

/// What one pass over a candidate tells, so that times and other colon runs rarely reach std's parser.
struct Shape {
    /// Groups of at most four hex digits; eight of them, or fewer around one `::`; dots only in a final
    /// dotted quad.
    plausible: bool,
    digit: bool,
    /// The offset of the last colon.
    last_colon: usize,
}

impl Shape {
    fn of(candidate: &[u8]) -> Shape {
        let mut groups = 0;
        let mut compressed = 0;
        let mut group_len = 0;
        let mut dots = 0;
        let mut previous = 0u8;
        let mut shape = Shape {
            plausible: true,
            digit: false,
            last_colon: 0,
        };
        for (i, &x) in candidate.iter().enumerate() {
            match x {
                b':' => {
                    shape.last_colon = i;
                    shape.plausible &= dots == 0;
                    compressed += usize::from(previous == b':');
                    groups += usize::from(group_len > 0);
                    group_len = 0;
                }
                b'.' => dots += 1,
                _ => {
                    shape.digit |= x.is_ascii_digit();
                    group_len += 1;
                    shape.plausible &= group_len <= 4 || dots > 0;
                }
            }
            previous = x;
        }
        if group_len > 0 {
            // The last group: four hex digits, or a dotted quad standing for two groups.
            match dots {
                0 => groups += 1,
                3 => groups += 2,
                _ => shape.plausible = false,
            }
        }
        shape.plausible &= match compressed {
            0 => groups == 8,
            1 => groups <= 7,
            _ => false,
        };
        shape
    }
}
