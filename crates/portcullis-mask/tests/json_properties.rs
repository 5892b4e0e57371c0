//! Randomised properties of the streaming maskers: no panic on any bytes, valid JSON stays valid, and
//! the output never depends on how the body was split into chunks.
//!
//! Inputs: JSON documents from a small generator (random nesting, white space, escapes, surrogate pairs,
//! numbers, values with findings, keys the field rules match), the same documents mutated byte-wise,
//! and random bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use portcullis_mask::{
    ConnectionMask, Counts, Detector, JsonError, JsonLimits, JsonMasker, MaskPolicy, RuleSpec, StrategyName,
    TextLimits, TextMasker,
};

mod rng;

use rng::Rng;

const KEYS: &[&str] = &[
    "id",
    "email",
    "card_number",
    "ssn",
    "data",
    "customers",
    "profile",
    "note",
    "token",
    "a\\u0040b",
    "k\\\"q",
    "x@example.com",
    "",
];
const STRINGS: &[&str] = &[
    "",
    "plain text",
    "ada@example.com",
    "call +1 212 555 0142",
    "4111 1111 1111 1111",
    "078-05-1120",
    "caf\\u00e9",
    "\\ud83d\\ude00 ada\\u0040example.com",
    "\\ud83d lone",
    "\\udc00",
    "tab\\there \\\"quoted\\\" \\\\ \\/",
    "Zoë 東京 😀",
    "DE89 3704 0044 0532 0130 00",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "\\u0000\\u001f",
];
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "42",
    "3.14",
    "-0.5e+10",
    "1E3",
    "4111111111111111",
    "12345678901234567890",
];
const SPACE: &[&str] = &["", "", "", " ", "\n", "\t", "\r\n  "];

fn value(rng: &mut Rng, depth: usize, out: &mut String) {
    let kind = if depth > 5 { rng.below(4) } else { rng.below(7) };
    match kind {
        0 => out.push_str(&format!("\"{}\"", rng.pick(STRINGS))),
        1 => out.push_str(rng.pick::<&str>(NUMBERS)),
        2 => out.push_str(rng.pick::<&str>(&["true", "false", "null"])),
        3 => out.push_str(&format!("\"{}\"", rng.pick(STRINGS))),
        4 | 5 => {
            out.push('{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(rng.pick::<&str>(SPACE));
                out.push_str(&format!("\"{}\"", rng.pick(KEYS)));
                out.push_str(rng.pick::<&str>(SPACE));
                out.push(':');
                out.push_str(rng.pick::<&str>(SPACE));
                value(rng, depth + 1, out);
                out.push_str(rng.pick::<&str>(SPACE));
            }
            out.push('}');
        }
        _ => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(rng.pick::<&str>(SPACE));
                value(rng, depth + 1, out);
            }
            out.push(']');
        }
    }
}

fn document(rng: &mut Rng) -> String {
    let mut out = (*rng.pick(SPACE)).to_string();
    value(rng, 0, &mut out);
    out.push_str(rng.pick::<&str>(SPACE));
    out
}

fn rule(strategy: StrategyName, fields: &[&str], detectors: &[Detector]) -> RuleSpec {
    RuleSpec {
        columns: Vec::new(),
        fields: fields.iter().map(|f| f.to_string()).collect(),
        detectors: detectors.to_vec(),
        strategy,
        keep: None,
        with: None,
        connections: Vec::new(),
    }
}

/// Field rules of every strategy, then every detector (spread over the strategies).
fn policy() -> Arc<ConnectionMask> {
    let rules = [
        rule(
            StrategyName::Partial,
            &["card_number"],
            &[Detector::PaymentCard, Detector::Phone],
        ),
        rule(StrategyName::Hash, &["$.data.*.token", "x@*"], &[Detector::Email]),
        rule(StrategyName::Null, &["ssn", "profile"], &[Detector::UsSsn]),
        rule(
            StrategyName::FormatPreserving,
            &["customers[].id"],
            &[Detector::Iban],
        ),
        rule(StrategyName::Redact, &["note"], &Detector::ALL),
    ];
    MaskPolicy::compile(&rules, b"0123456789abcdef0123456789abcdef")
        .unwrap()
        .for_connection("api")
}

const LIMITS: JsonLimits = JsonLimits {
    max_value_bytes: 24,
    max_depth: 6,
};

fn mask(mask: &Arc<ConnectionMask>, chunks: &[&[u8]]) -> (Vec<u8>, Result<Counts, JsonError>) {
    let mut m = JsonMasker::new(mask.clone(), LIMITS);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = m.push(c, &mut out) {
            return (out, Err(e));
        }
    }
    let result = m.finish(&mut out).map(|()| m.counts());
    (out, result)
}

/// Splits `body` at random places.
fn chunks<'a>(rng: &mut Rng, body: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(9));
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

fn check(mask_: &Arc<ConnectionMask>, rng: &mut Rng, body: &[u8], round: usize) {
    let whole = mask(mask_, &[body]);
    let split = mask(mask_, &chunks(rng, body));
    assert_eq!(
        split,
        whole,
        "round {round}: chunking changed {:?}",
        String::from_utf8_lossy(body)
    );
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        let (out, result) = &whole;
        // Only the depth bound refuses valid JSON (and keys over the value limit).
        match result {
            Ok(_) => {
                serde_json::from_slice::<serde_json::Value>(out).unwrap_or_else(|e| {
                    panic!(
                        "round {round}: {e}: {:?} became {:?}",
                        String::from_utf8_lossy(body),
                        String::from_utf8_lossy(out)
                    )
                });
            }
            Err(JsonError::TooDeep { .. } | JsonError::KeyTooLong { .. }) => {}
            Err(e) => panic!(
                "round {round}: valid {:?} refused: {e}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

#[test]
fn generated_json_stays_valid_and_chunking_never_changes_the_output() {
    let mask = policy();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut valid = 0;
    for round in 0..4000 {
        let body = document(&mut rng);
        if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
            valid += 1;
        }
        check(&mask, &mut rng, body.as_bytes(), round);
    }
    // The generator writes valid JSON except for its lone surrogates (serde_json refuses those).
    assert!(valid > 2000, "only {valid} valid documents");
}

#[test]
fn json_without_findings_or_field_rules_passes_byte_for_byte() {
    let mask = MaskPolicy::compile(
        &[rule(StrategyName::Redact, &["nothing_is_called_this"], &[])],
        b"",
    )
    .unwrap()
    .for_connection("api");
    let mut rng = Rng(17);
    for round in 0..2000 {
        let body = document(&mut rng);
        let (out, result) = mask_chunks(&mask, &mut rng, body.as_bytes());
        if result.is_ok() {
            assert_eq!(String::from_utf8(out).unwrap(), body, "round {round}");
        }
    }
}

fn mask_chunks(m: &Arc<ConnectionMask>, rng: &mut Rng, body: &[u8]) -> (Vec<u8>, Result<Counts, JsonError>) {
    mask(m, &chunks(rng, body))
}

#[test]
fn mutated_json_and_random_bytes_never_panic() {
    let mask = policy();
    let mut rng = Rng(0xdead_beef);
    const BYTES: &[u8] =
        b"{}[]:,\"\\u0123456789abcdefABCDEF-+.eEtruefalsn @ \n\t\x00\x1f\xc3\xa9\xff\xed\xa0\x80";
    for round in 0..4000 {
        let mut body = document(&mut rng).into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(body.len() + 1);
            match rng.below(3) {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 if at < body.len() => body[at] = *rng.pick(BYTES),
                _ => body.insert(at, *rng.pick(BYTES)),
            }
        }
        check(&mask, &mut rng, &body, round);
    }
    for round in 0..2000 {
        let body: Vec<u8> = (0..rng.below(64)).map(|_| *rng.pick(BYTES)).collect();
        check(&mask, &mut rng, &body, round);
    }
}

#[test]
fn text_masking_never_depends_on_the_chunks_and_matches_scrub() {
    let mask = policy();
    let mut rng = Rng(99);
    for round in 0..1500 {
        // Lines of generated JSON and values: text as a log would hold it.
        let mut body = String::new();
        for _ in 0..1 + rng.below(6) {
            body.push_str(&document(&mut rng).replace('\n', " "));
            body.push('\n');
        }
        let run = |pieces: &[&[u8]]| {
            let mut m = TextMasker::new(mask.clone(), TextLimits { max_carry: 4096 });
            let mut out = Vec::new();
            for p in pieces {
                m.push(p, &mut out);
            }
            m.finish(&mut out);
            (out, m.counts())
        };
        let whole = run(&[body.as_bytes()]);
        assert_eq!(
            run(&chunks(&mut rng, body.as_bytes())),
            whole,
            "round {round}: {body:?}"
        );
        let mut counts = Counts::default();
        let scrubbed = mask.scrub(&body, &mut counts).unwrap_or_else(|| body.clone());
        assert_eq!(String::from_utf8(whole.0).unwrap(), scrubbed, "round {round}");
        assert_eq!(whole.1, counts, "round {round}");
    }
}
