//! The vocabulary of detection: detectors, sets of them, findings, and counts by reason.

use std::fmt;

use serde::Deserialize;

/// What a content detector finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    Phone,
    PaymentCard,
    UsSsn,
    Iban,
    Ipv4,
    Ipv6,
    Jwt,
    AwsAccessKeyId,
    AwsSecretKey,
    GithubToken,
    SlackToken,
    StripeKey,
    PrivateKey,
    /// A password inside a URL (`scheme://user:password@host`) or a connection string (`password=...`).
    UrlPassword,
}

impl Detector {
    pub const ALL: [Detector; 15] = [
        Detector::Email,
        Detector::Phone,
        Detector::PaymentCard,
        Detector::UsSsn,
        Detector::Iban,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Jwt,
        Detector::AwsAccessKeyId,
        Detector::AwsSecretKey,
        Detector::GithubToken,
        Detector::SlackToken,
        Detector::StripeKey,
        Detector::PrivateKey,
        Detector::UrlPassword,
    ];

    /// The snake_case name used in config, metrics and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::PaymentCard => "payment_card",
            Detector::UsSsn => "us_ssn",
            Detector::Iban => "iban",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Jwt => "jwt",
            Detector::AwsAccessKeyId => "aws_access_key_id",
            Detector::AwsSecretKey => "aws_secret_key",
            Detector::GithubToken => "github_token",
            Detector::SlackToken => "slack_token",
            Detector::StripeKey => "stripe_key",
            Detector::PrivateKey => "private_key",
            Detector::UrlPassword => "url_password",
        }
    }

    /// The detector with this config name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name)
    }

    /// How specific a finding of this detector is: when two findings of the same length overlap, the more
    /// specific one is kept (a token with a fixed prefix says more than a run of digits that looks like a
    /// phone number).
    pub(crate) fn specificity(self) -> u8 {
        match self {
            Detector::PrivateKey => 15,
            Detector::Jwt => 14,
            Detector::GithubToken => 13,
            Detector::SlackToken => 12,
            Detector::StripeKey => 11,
            Detector::AwsAccessKeyId => 10,
            Detector::AwsSecretKey => 9,
            Detector::UrlPassword => 8,
            Detector::Iban => 7,
            Detector::PaymentCard => 6,
            Detector::UsSsn => 5,
            Detector::Email => 4,
            Detector::Ipv6 => 3,
            Detector::Ipv4 => 2,
            Detector::Phone => 1,
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of detectors (a bit per detector).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DetectorSet(u16);

impl DetectorSet {
    pub const EMPTY: DetectorSet = DetectorSet(0);

    /// Every detector.
    pub fn all() -> DetectorSet {
        Detector::ALL.into_iter().collect()
    }

    pub fn insert(&mut self, detector: Detector) {
        self.0 |= 1 << detector as u16;
    }

    pub fn contains(self, detector: Detector) -> bool {
        self.0 & (1 << detector as u16) != 0
    }

    /// The set of `detectors` (usable in constants).
    pub const fn of(detectors: &[Detector]) -> DetectorSet {
        let mut bits = 0u16;
        let mut rest = detectors;
        while let [d, tail @ ..] = rest {
            bits |= 1 << *d as u16;
            rest = tail;
        }
        DetectorSet(bits)
    }

    /// Whether the sets share a detector.
    pub fn intersects(self, other: DetectorSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn iter(self) -> impl Iterator<Item = Detector> {
        Detector::ALL.into_iter().filter(move |d| self.contains(*d))
    }
}

impl FromIterator<Detector> for DetectorSet {
    fn from_iter<I: IntoIterator<Item = Detector>>(iter: I) -> Self {
        let mut set = DetectorSet::EMPTY;
        for d in iter {
            set.insert(d);
        }
        set
    }
}

impl fmt::Debug for DetectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Detector::name)).finish()
    }
}

/// One detected value: the byte range `start..end` of the text it was found in. Both ends are on char
/// boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Finding {
    pub detector: Detector,
    pub start: usize,
    pub end: usize,
}

impl Finding {
    pub(crate) fn new(detector: Detector, start: usize, end: usize) -> Finding {
        Finding { detector, start, end }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// Why a value was masked: a content detector, a column rule, a JSON field rule, or a JSON value too long
/// to inspect. Counters are kept per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Detector(Detector),
    Column,
    /// A JSON value (a scalar) masked whole by a `fields` rule.
    Field,
    /// A JSON value longer than the masker's `max_value_bytes` that had to be inspected: replaced whole
    /// by the redaction, unread.
    Oversized,
}

impl Reason {
    /// Number of distinct reasons: the length of [`Counts`].
    pub const COUNT: usize = Detector::ALL.len() + 3;

    pub fn index(self) -> usize {
        match self {
            Reason::Detector(d) => d as usize,
            Reason::Column => Detector::ALL.len(),
            Reason::Field => Detector::ALL.len() + 1,
            Reason::Oversized => Detector::ALL.len() + 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::Detector(d) => d.name(),
            Reason::Column => "column",
            Reason::Field => "field",
            Reason::Oversized => "oversized",
        }
    }

    pub fn from_index(i: usize) -> Option<Reason> {
        match Detector::ALL.get(i) {
            Some(d) => Some(Reason::Detector(*d)),
            None => [Reason::Column, Reason::Field, Reason::Oversized]
                .get(i.checked_sub(Detector::ALL.len())?)
                .copied(),
        }
    }
}

/// Masked values counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; Reason::COUNT]);

impl Counts {
    pub fn add(&mut self, reason: Reason, n: u64) {
        if let Some(c) = self.0.get_mut(reason.index()) {
            *c += n;
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|c| *c == 0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The non-zero counts with their reasons.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .filter_map(|(i, c)| Reason::from_index(i).map(|r| (r, *c)))
    }

    /// The count for one reason.
    pub fn get(&self, reason: Reason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }
}
