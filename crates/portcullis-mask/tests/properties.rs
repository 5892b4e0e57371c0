//! Randomised properties of detection and masking: no panic, findings in bounds and disjoint.
//!
//! Inputs: random bytes, random UTF-8 built from the detectors' own alphabet, mutated corpus texts.
//! Findings must be on char boundaries and sorted; masked text valid UTF-8; `partial` and
//! `format_preserving` must keep the length in chars.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod invariants;

use invariants::{Plans, check_findings, check_masking, check_scrub};
use portcullis_mask::Counts;

mod rng;

use rng::Rng;

/// Pieces random texts are made of: the bytes and prefixes the scanner stops at, plus multi-byte chars.
const PIECES: &[&str] = &[
    "0",
    "1",
    "2",
    "4",
    "5",
    "9",
    "00",
    "212",
    "555",
    "0142",
    "4111",
    "1111",
    " ",
    " ",
    "-",
    ".",
    ":",
    "::",
    "/",
    "+",
    "(",
    ")",
    "@",
    "=",
    "_",
    ",",
    ";",
    "'",
    "\"",
    "\n",
    "a",
    "Z",
    "e",
    "x",
    "é",
    "€",
    "😀",
    "日本",
    "\u{200d}",
    "eyJ",
    "eyJhbGciOiJIUzI1NiJ9",
    ".",
    "-----BEGIN ",
    "RSA PRIVATE KEY",
    "-----",
    "-----END ",
    "://",
    "password=",
    "Password=",
    "PWD={",
    "xoxb-",
    "xoxe.",
    "ghp_",
    "github_pat_",
    "sk_live_",
    "whsec_",
    "AKIA",
    "ASIA",
    "hooks",
    ".slack.com/services/",
    "GB82",
    "DE89",
    " WEST",
    "+1 ",
    "(212) ",
    "fe80",
    "ffff",
    "example.com",
    "com",
    "user",
    "@example.com",
    "192.168.",
    "10.0.0.1",
    "\\",
    "%",
    "{",
    "}",
    "wJalrXUtnFEMI",
];

fn random_text(rng: &mut Rng) -> String {
    let n = rng.below(40);
    (0..n).map(|_| *rng.pick(PIECES)).collect()
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(120);
    (0..n).map(|_| rng.next() as u8).collect()
}

/// A corpus text with a few random edits (insert, delete, replace a char).
fn mutated(rng: &mut Rng, corpus: &[String]) -> String {
    let mut chars: Vec<char> = rng.pick(corpus).chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        let piece: Vec<char> = rng.pick(PIECES).chars().collect();
        match rng.below(3) {
            0 => {
                chars.splice(at..at, piece);
            }
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = piece[0],
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn corpus_texts() -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Corpus {
        case: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        text: String,
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/labelled.toml");
    let corpus: Corpus = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    corpus.case.into_iter().map(|c| c.text).collect()
}

#[test]
fn random_inputs_keep_the_invariants() {
    let corpus = corpus_texts();
    let plans = Plans::new(b"property-test-key-0123456789");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..30_000 {
        let (text, bytes) = match round % 3 {
            0 => {
                let bytes = random_bytes(&mut rng);
                (String::from_utf8_lossy(&bytes).into_owned(), bytes)
            }
            1 => {
                let t = random_text(&mut rng);
                let b = t.clone().into_bytes();
                (t, b)
            }
            _ => {
                let t = mutated(&mut rng, &corpus);
                let b = t.clone().into_bytes();
                (t, b)
            }
        };
        check_findings(&text);
        check_masking(&bytes, &plans);
        check_masking(text.as_bytes(), &plans);
        check_scrub(&text, &plans);
    }
}

#[test]
fn every_prefix_and_suffix_of_the_corpus_keeps_the_invariants() {
    // Cutting a value anywhere (a truncated log line, a column limit) must not break a validator.
    for text in corpus_texts() {
        for (i, _) in text.char_indices() {
            check_findings(&text[..i]);
            check_findings(&text[i..]);
        }
    }
}

#[test]
fn adversarial_repetitions_are_scanned_in_linear_time() {
    // Each pattern repeated to 128 KiB: a validator that reads far from every candidate, or a scan that
    // goes back over what it read, turns these quadratic (minutes instead of milliseconds).
    let patterns = [
        "a@",
        "password='",
        "password=",
        "x://",
        "a://b:",
        "::",
        "1.",
        "1 ",
        "+1 ",
        "(1",
        "eyJ.",
        "-----BEGIN ",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END ",
        "xoxb-1",
        "Password=x;",
        "0",
        "A",
        "a/",
        "@a.",
        "ab12",
    ];
    let plans = Plans::new(b"property-test-key-0123456789");
    for pattern in patterns {
        let text = pattern.repeat(128 * 1024 / pattern.len());
        let started = std::time::Instant::now();
        check_findings(&text);
        plans.detect.apply(text.as_bytes(), &mut Counts::default());
        plans.mask.scrub(&text, &mut Counts::default());
        let took = started.elapsed();
        assert!(took.as_secs() < 5, "{pattern:?} repeated took {took:?}");
    }
}
