//! IBANs: the country's length and the ISO 13616 checksum, compact or grouped in fours.
//!
//! A country code, two check digits and the country's BBAN; the length comes from the country table, the
//! checksum is mod 97 = 1.

use super::at;
use crate::detector::{Detector, Finding};

/// IBAN lengths by country, sorted by code: every SEPA country, GB, and other countries whose IBANs are
/// often seen in European payment data.
const LENGTHS: [([u8; 2], usize); 66] = [
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BR", 29),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MT", 31),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"SA", 24),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
];

const MAX_LEN: usize = 34;

fn country_len(code: [u8; 2]) -> Option<usize> {
    LENGTHS
        .binary_search_by_key(&code, |(c, _)| *c)
        .ok()
        .and_then(|i| LENGTHS.get(i))
        .map(|(_, n)| *n)
}

fn iban_byte(x: u8) -> bool {
    x.is_ascii_uppercase() || x.is_ascii_digit()
}

/// An IBAN at the word `start..end` (which begins with an uppercase letter and holds a digit).
pub(super) fn at_word(b: &[u8], start: usize, end: usize) -> Option<Finding> {
    let head = b.get(start..start + 4)?;
    let [c0, c1, d0, d1] = [*head.first()?, *head.get(1)?, *head.get(2)?, *head.get(3)?];
    if !(c0.is_ascii_uppercase() && c1.is_ascii_uppercase() && d0.is_ascii_digit() && d1.is_ascii_digit()) {
        return None;
    }
    let len = country_len([c0, c1])?;
    let mut buf = [0u8; MAX_LEN];
    let stop = if end - start == len {
        // Compact: the whole word.
        let word = b.get(start..end)?;
        if !word.iter().all(|x| iban_byte(*x)) {
            return None;
        }
        buf.get_mut(..len)?.copy_from_slice(word);
        end
    } else if end - start == 4 {
        grouped(b, start, len, &mut buf)?
    } else {
        return None;
    };
    (mod97(buf.get(..len)?) == 1).then(|| Finding::new(Detector::Iban, start, stop))
}

/// The grouped form `GB82 WEST 1234 5698 7654 32`: groups of four after single spaces, the last one
/// shorter when the length says so. Copies the characters into `buf`; returns the end.
fn grouped(b: &[u8], start: usize, len: usize, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let mut n = 0;
    let mut i = start;
    while n < len {
        if n > 0 {
            if at(b, i) != b' ' {
                return None;
            }
            i += 1;
        }
        let want = (len - n).min(4);
        let group = b.get(i..i + want)?;
        if !group.iter().all(|x| iban_byte(*x)) {
            return None;
        }
        buf.get_mut(n..n + want)?.copy_from_slice(group);
        n += want;
        i += want;
    }
    // The last group ends the run: no more letters or digits after it.
    (!at(b, i).is_ascii_alphanumeric()).then_some(i)
}

/// ISO 7064 mod 97-10 over the IBAN with its first four characters moved to the end. The remainder is
/// taken only when the accumulator grows large (a division per character would dominate).
fn mod97(iban: &[u8]) -> u64 {
    let (head, rest) = iban.split_at(4.min(iban.len()));
    let r = rest.iter().chain(head).fold(0u64, |r, &x| {
        let r = if x.is_ascii_digit() {
            r * 10 + u64::from(x - b'0')
        } else {
            r * 100 + u64::from(x - b'A') + 10
        };
        if r >= 1 << 50 { r % 97 } else { r }
    });
    r % 97
}
