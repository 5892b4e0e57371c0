//! Phone numbers, payment cards, US SSNs and IPv4 addresses, from one parse of a digit span.
//!
//! A candidate starts at a word that begins with a digit, or at `+` / `(` before a digit. The parse
//! records up to [`MAX_GROUPS`] digit groups and the separator before each; a validator accepts a prefix of
//! the groups whose separators, lengths and digits fit its format, and whose neighbours show it is not
//! part of a longer run (`ORD-20240115-0042`, `1.2.3.4.5`, `2024-01-15T10`).

use super::{at, before};
use crate::detector::{Detector, DetectorSet, Finding};

const MAX_GROUPS: usize = 8;
/// No group is longer than a card number; a longer run of digits is an id, not a candidate.
const MAX_GROUP_DIGITS: usize = 19;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Sep {
    /// Before the first group of a span that does not open with `(`.
    #[default]
    None,
    Space,
    Dash,
    Dot,
    Slash,
    /// `(`, ` (`.
    Open,
    /// `)`, `) `, `)-`.
    Close,
}

/// One run of digits, as offsets from the span's start (a span is at most a few hundred bytes; small
/// groups keep the span small, and it is built for every number in a text).
#[derive(Clone, Copy, Default, Debug)]
struct Group {
    start: u16,
    end: u16,
    /// The digits of the span through this group (what the validators' loops over prefixes ask).
    through: u16,
    /// The separator before this group.
    sep: Sep,
}

impl Group {
    fn len(&self) -> usize {
        usize::from(self.end - self.start)
    }
}

struct Span<'a> {
    b: &'a [u8],
    /// The first byte: `+`, `(` or the first digit.
    start: usize,
    plus: bool,
    groups: [Group; MAX_GROUPS],
    len: usize,
    /// The separator after the last group when more groups followed than were recorded.
    more: Sep,
}

/// The candidate at the start of a word that begins with a digit, and the end of the digit span read
/// there. When nothing is found the scan skips the whole span: a later group of a span that failed as a
/// whole (`DE89 3704 0044 0532 0130 0012`, `05 01 2024 10 30`) is not a fresh start.
///
/// `after_finding` says a finding ended right before the space before `start` (two phone numbers in a
/// row); otherwise a word after `<digit> ` continues a grouped id (`1Z 999 AA1 01 2345 6784`).
#[inline]
pub(super) fn find(
    b: &[u8],
    start: usize,
    set: DetectorSet,
    after_finding: bool,
) -> (Option<Finding>, usize) {
    let grouped_id = before(b, start) == b' ' && before(b, start - 1).is_ascii_digit() && !after_finding;
    // `10.0.0.1,10.0.0.2`: after a comma that follows a digit, only an address of a list may start.
    let in_list = before(b, start) == b',' && before(b, start - 1).is_ascii_digit();
    if grouped_id || !(in_list || head_ok(b, start)) {
        return (None, start);
    }
    // The common cases (a lone number, a date, a price, a time) are settled here, inline in the scan.
    let run = super::run_end(b, start, MAX_GROUP_DIGITS + 1, |x| x.is_ascii_digit());
    if !may_match(b, start, run) {
        return (None, run);
    }
    validate(b, start, set, in_list)
}

/// The validators over the parsed span at `start`.
#[inline(never)]
fn validate(b: &[u8], start: usize, set: DetectorSet, in_list: bool) -> (Option<Finding>, usize) {
    let mut span = Span::new(b, start);
    if !span.parse() {
        return (None, start);
    }
    let span_end = span.end(span.len.saturating_sub(1));
    let digits = span.digits(0, span.len - 1);
    // Every format needs 8 digits or four groups (an IPv4 address), and a separator or 13 digits.
    if (digits < 8 && span.len < 4) || (span.len == 1 && digits < 13) {
        return (None, span_end);
    }
    let mut best: Option<Finding> = None;
    let mut consider = |detector: Detector, end: Option<usize>, start: usize| {
        if let Some(end) = end
            && best.is_none_or(|f| end > f.end)
        {
            best = Some(Finding::new(detector, start, end));
        }
    };
    if span.len >= 4 && set.contains(Detector::Ipv4) {
        consider(Detector::Ipv4, span.ipv4(), start);
    }
    if in_list {
        return (best, span_end);
    }
    if digits >= 13 && set.contains(Detector::PaymentCard) {
        consider(Detector::PaymentCard, span.card(), start);
    }
    if span.len >= 3 && set.contains(Detector::UsSsn) {
        consider(Detector::UsSsn, span.ssn(), start);
    }
    if set.contains(Detector::Phone) {
        consider(Detector::Phone, span.phone(), start);
    }
    (best, span_end)
}

/// A phone number that starts with `+` or `(` (the trigger bytes of the scanner).
pub(super) fn phone_at(b: &[u8], start: usize) -> Option<Finding> {
    let prev = before(b, start);
    if prev.is_ascii_alphanumeric() || prev == b'+' || prev == b')' || !at(b, start + 1).is_ascii_digit() {
        return None;
    }
    if !head_ok(b, start) {
        return None;
    }
    let mut span = Span::new(b, start);
    if !span.parse() {
        return None;
    }
    span.phone().map(|end| Finding::new(Detector::Phone, start, end))
}

/// Whether any format may start with the digit run `start..run`, judged from its length, its first digits,
/// the separator after it and the length of the next run: what `2024-01-15`, `129.95`, `53.589793` and
/// `42` need to be turned away.
#[inline]
fn may_match(b: &[u8], start: usize, run: usize) -> bool {
    let len = run - start;
    if len >= 13 {
        return true;
    }
    let Some((sep, width)) = separator(b, run) else {
        return false;
    };
    let next = super::run_end(b, run + width, MAX_GROUP_DIGITS + 1, |x| x.is_ascii_digit()) - (run + width);
    let first = at(b, start);
    let simple = matches!(sep, Sep::Space | Sep::Dash | Sep::Dot);
    let card = len == 4 && matches!(sep, Sep::Space | Sep::Dash) && (3..=6).contains(&next);
    let ssn = len == 3 && next == 2 && matches!(sep, Sep::Space | Sep::Dash);
    // `129.95`, `53.58`: an address has a third group after a second dot.
    let ipv4 = len <= 3
        && next <= 3
        && sep == Sep::Dot
        && at(b, run + width + next) == b'.'
        && at(b, run + width + next + 1).is_ascii_digit();
    let nanp =
        (len == 3 && next == 3 && simple) || (len == 1 && first == b'1' && (simple || sep == Sep::Open));
    let national = first == b'0' && (2..=5).contains(&len);
    card || ssn || ipv4 || nanp || national
}

/// The separator at `i` and its width, when a digit follows it.
///
/// Compares in order of frequency rather than a `match` on the byte: a match compiles to a jump table,
/// one indirect branch per group that the CPU mispredicts on mixed separators.
#[inline]
fn separator(b: &[u8], i: usize) -> Option<(Sep, usize)> {
    let (x, y) = (at(b, i), at(b, i + 1));
    let (sep, width) = if y.is_ascii_digit() {
        // The common case: a one-byte separator before the next group.
        if x == b' ' {
            (Sep::Space, 1)
        } else if x == b'-' {
            (Sep::Dash, 1)
        } else if x == b'.' {
            (Sep::Dot, 1)
        } else if x == b'/' {
            (Sep::Slash, 1)
        } else if x == b'(' {
            (Sep::Open, 1)
        } else if x == b')' {
            (Sep::Close, 1)
        } else {
            return None;
        }
    } else if x == b' ' && y == b'(' {
        (Sep::Open, 2)
    } else if x == b')' && (y == b' ' || y == b'-') {
        (Sep::Close, 2)
    } else {
        return None;
    };
    at(b, i + width).is_ascii_digit().then_some((sep, width))
}

/// Whether a span may start at `start`: not the continuation of a word or of a dotted or slashed run
/// (`v1.2`, `ORD-2024`, `Chrome/120.0.0.0`, the `2` of `1.2.3.4.5`).
fn head_ok(b: &[u8], start: usize) -> bool {
    let p = before(b, start);
    if p.is_ascii_alphanumeric() {
        return false;
    }
    let pp = before(b, start.saturating_sub(1));
    !(matches!(p, b'.' | b'/' | b'-' | b'_' | b',') && start >= 2 && pp.is_ascii_alphanumeric())
}

impl<'a> Span<'a> {
    fn new(b: &'a [u8], start: usize) -> Span<'a> {
        Span {
            b,
            start,
            plus: false,
            groups: [Group::default(); MAX_GROUPS],
            len: 0,
            more: Sep::None,
        }
    }

    /// Reads the groups from `start`; false when there is no digit group or one is too long. Parses in
    /// place: the span is a few hundred bytes, not worth moving.
    #[inline]
    fn parse(&mut self) -> bool {
        let (b, span) = (self.b, self);
        let mut i = span.start;
        let mut sep = Sep::None;
        let mut through = 0u16;
        match at(b, i) {
            b'+' => {
                span.plus = true;
                i += 1;
            }
            b'(' => {
                sep = Sep::Open;
                i += 1;
            }
            _ => {}
        }
        loop {
            let g = i;
            while at(b, i).is_ascii_digit() {
                i += 1;
            }
            if i == g || i - g > MAX_GROUP_DIGITS {
                return false;
            }
            let (Some(slot), Ok(start), Ok(end)) = (
                span.groups.get_mut(span.len),
                u16::try_from(g - span.start),
                u16::try_from(i - span.start),
            ) else {
                return false;
            };
            through += end - start;
            *slot = Group {
                start,
                end,
                through,
                sep,
            };
            span.len += 1;
            let Some((next, width)) = separator(b, i) else {
                break;
            };
            if span.len == MAX_GROUPS {
                span.more = next;
                break;
            }
            sep = next;
            i += width;
        }
        true
    }

    fn group(&self, k: usize) -> Group {
        self.groups.get(k).copied().unwrap_or_default()
    }

    fn groups(&self, from: usize, to: usize) -> impl Iterator<Item = Group> + '_ {
        self.groups.iter().take(to + 1).skip(from).copied()
    }

    fn digits(&self, from: usize, to: usize) -> usize {
        let before = from.checked_sub(1).map_or(0, |k| self.group(k).through);
        usize::from(self.group(to).through.saturating_sub(before))
    }

    fn end(&self, k: usize) -> usize {
        self.start + usize::from(self.group(k).end)
    }

    /// The digits of group `k`.
    fn text(&self, k: usize) -> &'a [u8] {
        let g = self.group(k);
        let from = self.start + usize::from(g.start);
        self.b.get(from..from + g.len()).unwrap_or_default()
    }

    /// The digits of a group as a number (groups of at most 4 digits are read; longer ones give `None`).
    fn value(&self, k: usize) -> Option<u32> {
        let digits = self.text(k);
        if digits.len() > 4 {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    }

    fn first_digit(&self, k: usize) -> u8 {
        self.text(k).first().copied().unwrap_or(0)
    }

    /// Whether a candidate that ends with group `k` ends a run: what follows is a space, punctuation or the
    /// end, not more digits joined by a separator, a letter, or a `-x`, `.5`, `/7` that continues an id.
    /// `address` lets `/24` (a prefix length) and `,10.0.0.2` (a list) follow an IPv4 address.
    fn tail_ok(&self, k: usize, address: bool) -> bool {
        let next = if k + 1 < self.len {
            self.group(k + 1).sep
        } else {
            self.more
        };
        match next {
            Sep::None => {}
            Sep::Space | Sep::Open => return true,
            Sep::Slash if address => return true,
            _ => return false,
        }
        let e = self.end(k);
        let x = at(self.b, e);
        let y = at(self.b, e + 1);
        if x.is_ascii_alphanumeric() {
            return false;
        }
        match x {
            b'-' | b'_' => !y.is_ascii_alphanumeric(),
            b'.' => !y.is_ascii_digit(),
            b',' | b'/' => address || !y.is_ascii_digit(),
            _ => true,
        }
    }

    /// Whether every separator between groups `from` and `to` is `sep`.
    fn seps_are(&self, from: usize, to: usize, sep: Sep) -> bool {
        self.groups(from + 1, to).all(|g| g.sep == sep)
    }

    /// A payment card: 13 to 19 digits, plain or grouped by single spaces or single dashes (a group of
    /// four first), Luhn-valid and with a known brand's prefix and length.
    fn card(&self) -> Option<usize> {
        if self.plus || self.group(0).sep != Sep::None {
            return None;
        }
        for k in (0..self.len).rev() {
            let n = self.digits(0, k);
            if n < 13 {
                break;
            }
            if n > 19 {
                continue;
            }
            if k > 0 {
                let sep = self.group(1).sep;
                let grouped = matches!(sep, Sep::Space | Sep::Dash)
                    && self.seps_are(0, k, sep)
                    && self.group(0).len() == 4
                    && self.groups(1, k).all(|g| (3..=6).contains(&g.len()));
                if !grouped {
                    continue;
                }
            }
            if !self.tail_ok(k, false) {
                continue;
            }
            let mut digits = [0u8; MAX_GROUP_DIGITS];
            let mut len = 0;
            for g in 0..=k {
                for d in self.text(g) {
                    *digits.get_mut(len)? = d - b'0';
                    len += 1;
                }
            }
            let digits = digits.get(..len)?;
            if luhn(digits) && brand(digits) {
                return Some(self.end(k));
            }
        }
        None
    }

    /// `ddd-dd-dddd` or `ddd dd dddd`, with the SSA's rules: area not 000, 666 or 900-999, group not 00,
    /// serial not 0000.
    fn ssn(&self) -> Option<usize> {
        if self.plus || self.len < 3 || self.group(0).sep != Sep::None {
            return None;
        }
        let sep = self.group(1).sep;
        let shape = self.group(0).len() == 3 && self.group(1).len() == 2 && self.group(2).len() == 4;
        if !shape || !matches!(sep, Sep::Dash | Sep::Space) || self.group(2).sep != sep {
            return None;
        }
        let (area, group, serial) = (self.value(0)?, self.value(1)?, self.value(2)?);
        let valid = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
        (valid && self.tail_ok(2, false)).then(|| self.end(2))
    }

    /// Four dotted octets, each 0-255 without leading zeros, not followed by another `.digit`, and not a
    /// version number (`version 1.0.0.0`).
    fn ipv4(&self) -> Option<usize> {
        if self.plus || self.len < 4 || self.group(0).sep != Sep::None || !self.seps_are(0, 3, Sep::Dot) {
            return None;
        }
        for k in 0..4 {
            let g = self.group(k);
            let octet = self.value(k)?;
            if g.len() > 3 || octet > 255 || (g.len() > 1 && self.first_digit(k) == b'0') {
                return None;
            }
        }
        if !self.tail_ok(3, true) || after_version_word(self.b, self.start) {
            return None;
        }
        Some(self.end(3))
    }

    /// The longest phone number at the start of the span: E.164 after `+`, else a NANP or a European
    /// national number.
    fn phone(&self) -> Option<usize> {
        if self.plus {
            return self.e164();
        }
        [self.nanp(), self.national(), self.international()]
            .into_iter()
            .flatten()
            .max()
    }

    /// `00` then a country code and a grouped number: `0044 20 7946 0958`, `00 33 1 23 45 67 89`. The
    /// country code must be an assigned one (a plain `00` prefix is common in ids).
    fn international(&self) -> Option<usize> {
        let (code, from) = match self.text(0) {
            [b'0', b'0'] => (self.text(1), 2),
            [b'0', b'0', code @ ..] => (code, 1),
            _ => return None,
        };
        if !country_code(code) || self.len <= from || self.group(from).sep != Sep::Space {
            return None;
        }
        for k in (from..self.len).rev() {
            let n = self.digits(0, k) - 2;
            if (8..=15).contains(&n)
                && self
                    .groups(1, k)
                    .all(|g| matches!(g.sep, Sep::Space | Sep::Dash | Sep::Open | Sep::Close))
                && self.tail_ok(k, false)
            {
                return Some(self.end(k));
            }
        }
        None
    }

    /// `+` then 8 to 15 digits, grouped by spaces, dashes, dots or parentheses, not starting with 0.
    fn e164(&self) -> Option<usize> {
        if self.first_digit(0) == b'0' {
            return None;
        }
        for k in (0..self.len).rev() {
            let n = self.digits(0, k);
            if n < 8 {
                break;
            }
            if n <= 15 && self.groups(1, k).all(|g| g.sep != Sep::Slash) && self.tail_ok(k, false) {
                return Some(self.end(k));
            }
        }
        None
    }

    /// North American numbers: `(212) 555-0142`, `212-555-0142`, `212.555.0142`, `212 555 0142`,
    /// `212 555-0142`, each with an optional leading `1`; area code and exchange start with 2-9.
    fn nanp(&self) -> Option<usize> {
        let lead = usize::from(self.len >= 4 && self.group(0).len() == 1 && self.first_digit(0) == b'1');
        let (a, e, n) = (lead, lead + 1, lead + 2);
        if n >= self.len
            || self.group(a).len() != 3
            || self.group(e).len() != 3
            || self.group(n).len() != 4
            || !(b'2'..=b'9').contains(&self.first_digit(a))
            || !(b'2'..=b'9').contains(&self.first_digit(e))
        {
            return None;
        }
        let simple = |g: Group| matches!(g.sep, Sep::Dash | Sep::Space | Sep::Dot);
        let paren =
            self.group(a).sep == Sep::Open && self.group(e).sep == Sep::Close && simple(self.group(n));
        let plain = self.groups(1, n).all(simple) && self.group(0).sep == Sep::None;
        ((paren || plain) && self.tail_ok(n, false)).then(|| self.end(n))
    }

    /// European national numbers with a trunk `0`: `020 7946 0958`, `030 12345678`, `06 12 34 56 78`,
    /// `06.12.34.56.78`, `089/12345678`, `030-12345678`, `(030) 12345678`; 9 to 12 digits.
    fn national(&self) -> Option<usize> {
        let first = self.group(0);
        let second_digit = self.text(0).get(1).copied().unwrap_or(0);
        if self.len < 2
            || self.first_digit(0) != b'0'
            || second_digit == b'0'
            || !(2..=5).contains(&first.len())
        {
            return None;
        }
        let fits = |k: usize| (9..=12).contains(&self.digits(0, k));
        // Spaces (a parenthesised trunk prefix first is allowed): the longest prefix that fits.
        let spaced = |g: Group| g.sep == Sep::Space;
        let opened = first.sep == Sep::Open;
        if (opened && self.group(1).sep == Sep::Close) || (!opened && spaced(self.group(1))) {
            for k in (1..self.len).rev() {
                if self.groups(2, k).all(spaced)
                    && self.groups(1, k).all(|g| g.len() >= 2)
                    && fits(k)
                    && !self.looks_like_date()
                    && self.tail_ok(k, false)
                {
                    return Some(self.end(k));
                }
            }
            return None;
        }
        if opened {
            return None;
        }
        match self.group(1).sep {
            Sep::Slash | Sep::Dash if self.group(1).len() >= 5 && fits(1) && self.tail_ok(1, false) => {
                Some(self.end(1))
            }
            Sep::Dot
                if self.len >= 5
                    && self.seps_are(0, 4, Sep::Dot)
                    && self.groups(0, 4).all(|g| g.len() == 2)
                    && self.tail_ok(4, false) =>
            {
                Some(self.end(4))
            }
            _ => None,
        }
    }

    /// `05 01 2024 ...`: day, month and a year, not a phone number.
    fn looks_like_date(&self) -> bool {
        let (d, m) = (self.value(0).unwrap_or(0), self.value(1).unwrap_or(0));
        self.group(0).len() == 2
            && self.group(1).len() == 2
            && (1..=31).contains(&d)
            && (1..=12).contains(&m)
            && matches!(self.text(2), [b'1', b'9', _, _] | [b'2', b'0', _, _])
    }
}

/// Whether the digits are an assigned ITU-T E.164 country code (1 to 3 digits).
fn country_code(code: &[u8]) -> bool {
    const TWO: [&[u8; 2]; 44] = [
        b"20", b"27", b"30", b"31", b"32", b"33", b"34", b"36", b"39", b"40", b"41", b"43", b"44", b"45",
        b"46", b"47", b"48", b"49", b"51", b"52", b"53", b"54", b"55", b"56", b"57", b"58", b"60", b"61",
        b"62", b"63", b"64", b"65", b"66", b"81", b"82", b"84", b"86", b"90", b"91", b"92", b"93", b"94",
        b"95", b"98",
    ];
    match code {
        [b'1' | b'7'] => true,
        [_, _] => TWO.iter().any(|c| c.as_slice() == code),
        [first, second, _] => {
            matches!(first, b'2' | b'3' | b'4' | b'5' | b'6' | b'8' | b'9')
                && !TWO.iter().any(|c| c.as_slice() == [*first, *second])
        }
        _ => false,
    }
}

/// Luhn's checksum over the digits (values 0-9).
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether the digits have the prefix and length of a known card brand.
fn brand(digits: &[u8]) -> bool {
    let len = digits.len();
    // Every brand is 13 digits or more; read the first six once and the shorter prefixes from them.
    let Some(head) = digits.get(..6) else {
        return false;
    };
    let p6 = head.iter().fold(0u32, |acc, d| acc * 10 + u32::from(*d));
    let (p1, p2, p3, p4) = (p6 / 100_000, p6 / 10_000, p6 / 1_000, p6 / 100);
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = matches!(p2, 34 | 37) && len == 15;
    let discover = (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6))
        && (16..=19).contains(&len);
    let jcb = (3528..=3589).contains(&p4) && (16..=19).contains(&len);
    let diners = ((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && (14..=19).contains(&len);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    let maestro = matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763)
        && (13..=19).contains(&len);
    visa || mastercard || amex || discover || jcb || diners || unionpay || maestro
}

/// Whether the word before `start` (past spaces, `:` and `=`) is `version`, `ver` or `v`.
fn after_version_word(b: &[u8], start: usize) -> bool {
    let mut i = start;
    while i > 0 && matches!(before(b, i), b' ' | b':' | b'=') && start - i < 4 {
        i -= 1;
    }
    let word_start = super::run_start(b, i, 8, |x| x.is_ascii_alphabetic());
    let word = b.get(word_start..i).unwrap_or_default();
    i < start
        && (word.eq_ignore_ascii_case(b"version")
            || word.eq_ignore_ascii_case(b"ver")
            || word.eq_ignore_ascii_case(b"v"))
}
