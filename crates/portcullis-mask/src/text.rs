//! Streaming text masking: detectors over a body fed in chunks, with a bounded carry between scans.
//!
//! Each scan reads what is pending and writes it up to a cut, keeping the rest (the carry) for the next:
//! the cut is after the last line break, so a value is never split inside its line; a finding that runs
//! over the cut (a PEM key spanning lines) moves the cut back to the start of its line. The carry is at
//! most `max_carry` bytes; past that a line is cut at its last space, then anywhere (on a char boundary).

use std::sync::Arc;

use crate::detect::detect_bytes;
use crate::detector::{Counts, Finding};
use crate::rules::ConnectionMask;

/// Bounds of one [`TextMasker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    /// The most bytes held back between chunks: a line (or a finding with the line it starts on) longer
    /// than this may be cut between two scans, and a value across that cut can be missed.
    pub max_carry: usize,
}

impl Default for TextLimits {
    fn default() -> TextLimits {
        TextLimits { max_carry: 16 << 10 }
    }
}

/// Masks one text body streamed in chunks: [`TextMasker::push`] each chunk, then
/// [`TextMasker::finish`]. Output is written once at least a quarter of `max_carry` new bytes arrived
/// (or at `finish`), so short bodies come out at the end.
#[derive(Debug)]
pub struct TextMasker {
    mask: Arc<ConnectionMask>,
    limits: TextLimits,
    /// Read but not written: the carry of the last scan and what arrived since.
    pending: Vec<u8>,
    /// Bytes of `pending` that arrived since the last scan.
    fresh: usize,
    findings: Vec<Finding>,
    counts: Counts,
}

impl TextMasker {
    pub fn new(mask: Arc<ConnectionMask>, limits: TextLimits) -> TextMasker {
        TextMasker {
            mask,
            limits,
            pending: Vec::new(),
            fresh: 0,
            findings: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// What was masked so far, by reason.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Masks the next chunk, appending to `out` what can be written (possibly nothing yet).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.mask.detector_rules().is_none() {
            return out.extend_from_slice(chunk);
        }
        self.pending.extend_from_slice(chunk);
        self.fresh += chunk.len();
        // Scanning only after a quarter of the carry's size arrived keeps the work linear: each scan
        // re-reads at most `max_carry` bytes and writes at least a quarter as many new ones.
        if self.fresh >= (self.limits.max_carry / 4).max(1) {
            self.scan(false, out);
        }
    }

    /// Ends the body: writes what is still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            self.scan(true, out);
        }
    }

    fn scan(&mut self, last: bool, out: &mut Vec<u8>) {
        let Some(rules) = self.mask.detector_rules() else {
            out.extend_from_slice(&self.pending);
            self.pending.clear();
            return;
        };
        detect_bytes(&self.pending, rules.set(), &mut self.findings);
        let len = self.pending.len();
        let mut cut = if last { len } else { self.cut() };
        // A finding over the cut is carried whole, with its line (context its detector may need, such
        // as `password=`); if that is more than the carry may hold, it is written whole now.
        // A finding that reaches the end of what is pending may go on in the next chunk (a PEM key
        // without its END line yet): it is carried too.
        let open = |f: &&Finding| f.start < cut && (f.end > cut || (!last && f.end == len));
        if let Some(f) = self.findings.iter().find(open) {
            let line = self
                .pending
                .get(..f.start)
                .and_then(|b| b.iter().rposition(|&x| x == b'\n' || x == b'\r'))
                .map_or(0, |p| p + 1);
            cut = if len - line <= self.limits.max_carry {
                line
            } else {
                f.end
            };
        }
        let written = self.findings.partition_point(|f| f.end <= cut);
        let text = self.pending.get(..cut).unwrap_or_default();
        match self.findings.get(..written) {
            Some(found) if !found.is_empty() => rules.rewrite_text(text, found, &mut self.counts, out),
            _ => out.extend_from_slice(text),
        }
        self.pending.drain(..cut.min(len));
        self.fresh = 0;
        if self.findings.capacity() > 1024 {
            self.findings = Vec::new();
        }
    }

    /// Where to cut `pending`: after its last line break, if the rest fits the carry; nowhere while the
    /// line so far fits it; else after the last space or tab within the carry; else at the carry's size,
    /// moved back to a char boundary.
    fn cut(&self) -> usize {
        let len = self.pending.len();
        let floor = len.saturating_sub(self.limits.max_carry);
        let tail = self.pending.get(floor..).unwrap_or_default();
        if let Some(p) = tail.iter().rposition(|&b| b == b'\n' || b == b'\r') {
            return floor + p + 1;
        }
        if floor == 0 {
            // The line so far fits the carry: hold it all.
            return 0;
        }
        if let Some(p) = tail.iter().rposition(|&b| b == b' ' || b == b'\t') {
            return floor + p + 1;
        }
        let mut cut = floor;
        // At most three continuation bytes precede a char's first byte.
        for _ in 0..3 {
            match self.pending.get(cut) {
                Some(b) if (0x80..0xc0).contains(b) && cut > 0 => cut -= 1,
                _ => break,
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::detector::{Detector, Reason};
    use crate::rules::{MaskPolicy, RuleSpec};
    use crate::strategy::StrategyName;

    pub(super) fn masker(max_carry: usize) -> TextMasker {
        let rule = RuleSpec {
            columns: Vec::new(),
            fields: Vec::new(),
            detectors: Detector::ALL.to_vec(),
            strategy: StrategyName::Redact,
            keep: None,
            with: None,
            connections: Vec::new(),
        };
        let policy = MaskPolicy::compile(&[rule], b"0123456789abcdef0123456789abcdef").unwrap();
        TextMasker::new(policy.for_connection("x"), TextLimits { max_carry })
    }

    fn run(text: &[u8], chunk: usize, max_carry: usize) -> (Vec<u8>, Counts) {
        let mut m = masker(max_carry);
        let mut out = Vec::new();
        for piece in text.chunks(chunk.max(1)) {
            m.push(piece, &mut out);
        }
        m.finish(&mut out);
        (out, m.counts())
    }

    pub(super) const BODY: &str = "GET /users 200\nuser ada@example.com paid with 4111 1111 1111 1111\n\
        call +1 (212) 555-0142 or 212 555 0142 today\n\
        DSN postgres://app:s3cret-pw@db.internal:5432/app, password = hunter22\n\
        -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n\
        done, zoë@example.de stays (ASCII local parts only), ok\n";

    #[test]
    fn text_is_masked_the_same_whatever_the_chunks() {
        let (whole, counts) = run(BODY.as_bytes(), BODY.len(), 64);
        let want = "GET /users 200\nuser [redacted] paid with [redacted]\n\
        call [redacted] or [redacted] today\n\
        DSN postgres://app:[redacted]@db.internal:5432/app, password = [redacted]\n\
        [redacted]\n\
        done, zoë@example.de stays (ASCII local parts only), ok\n";
        assert_eq!(String::from_utf8(whole).unwrap(), want);
        assert_eq!(counts.get(Reason::Detector(Detector::Email)), 1);
        assert_eq!(counts.total(), 7);
        // Every chunk size, with a carry that fits each line (and the key with its first line).
        for chunk in 1..BODY.len() {
            let (out, c) = run(BODY.as_bytes(), chunk, 200);
            assert_eq!(String::from_utf8(out).unwrap(), want, "chunk {chunk}");
            assert_eq!(c, counts, "chunk {chunk}");
        }
    }

    #[test]
    fn a_line_longer_than_the_carry_is_cut_at_a_space_and_still_streams() {
        let line = "word ".repeat(100) + "ada@example.com " + &"x".repeat(300);
        let (out, counts) = run(line.as_bytes(), 7, 32);
        assert_eq!(counts.total(), 1);
        assert_eq!(
            out.len(),
            line.len() - "ada@example.com".len() + "[redacted]".len()
        );
        let mut m = masker(32);
        let mut out = Vec::new();
        m.push(line.as_bytes(), &mut out);
        // Written: all but the last 32 bytes, the email masked.
        assert_eq!(
            out.len(),
            line.len() - 32 - "ada@example.com".len() + "[redacted]".len()
        );
    }

    #[test]
    fn no_detectors_pass_text_through_at_once() {
        let rule = RuleSpec {
            columns: vec!["email".into()],
            fields: Vec::new(),
            detectors: Vec::new(),
            strategy: StrategyName::Redact,
            keep: None,
            with: None,
            connections: Vec::new(),
        };
        let policy = MaskPolicy::compile(&[rule], b"").unwrap();
        let mut m = TextMasker::new(policy.for_connection("x"), TextLimits::default());
        let mut out = Vec::new();
        m.push(b"ada@example.com", &mut out);
        assert_eq!(out, b"ada@example.com");
    }
}
