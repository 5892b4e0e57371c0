//! Fuzzes the streaming `JsonMasker` on arbitrary bytes split at arbitrary chunk boundaries, under two
//! connections: one with the single field rule `*.email` (redact) and no detectors, and one with every
//! detector and field rules of every strategy (`*.email` hashed first).
//!
//! The first input byte seeds the chunk sizes; the rest is the body.
//!
//! Oracles: the output (and the error, if any) is the same whole, byte by byte and in pieces of 1 to 16
//! bytes; valid JSON stays valid JSON (only the depth and key-length bounds refuse it). Under the
//! field-only rule, valid JSON comes out exactly as a reference walk of the document masks it (every
//! non-null scalar under an `email` key whose object is itself a member's value becomes `"[redacted]"`,
//! counted once as a field), byte for byte when nothing matches. Under both, a marker that only ever
//! appears inside values `*.email` masks never appears in the output.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portcullis_mask::{
    ConnectionMask, Counts, Detector, JsonError, JsonLimits, JsonMasker, MaskPolicy, Reason, RuleSpec,
    StrategyName,
};
use serde_json::Value;

/// Small bounds, so that values past `max_value_bytes` and nesting past `max_depth` are reached.
const LIMITS: JsonLimits = JsonLimits {
    max_value_bytes: 48,
    max_depth: 12,
};

/// The text the field-only rule's values must never leak: the seeds put it under `email` keys.
const MARKER: &str = "Zq9Marker";

fn rule(strategy: StrategyName, fields: &[&str], detectors: &[Detector]) -> RuleSpec {
    RuleSpec {
        columns: Vec::new(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        detectors: detectors.to_vec(),
        strategy,
        keep: None,
        with: None,
        connections: Vec::new(),
    }
}

fn field_only() -> &'static Arc<ConnectionMask> {
    static MASK: OnceLock<Arc<ConnectionMask>> = OnceLock::new();
    MASK.get_or_init(|| {
        MaskPolicy::compile(&[rule(StrategyName::Redact, &["*.email"], &[])], b"")
            .expect("the rule compiles")
            .for_connection("api")
    })
}

fn mixed() -> &'static Arc<ConnectionMask> {
    static MASK: OnceLock<Arc<ConnectionMask>> = OnceLock::new();
    MASK.get_or_init(|| {
        let rules = [
            rule(StrategyName::Hash, &["*.email"], &[Detector::Email]),
            rule(
                StrategyName::Partial,
                &["card_number"],
                &[Detector::PaymentCard, Detector::Phone],
            ),
            rule(StrategyName::Null, &["ssn", "$.profile"], &[Detector::UsSsn]),
            rule(
                StrategyName::FormatPreserving,
                &["customers[].id"],
                &[Detector::Iban],
            ),
            rule(StrategyName::Redact, &["note"], &Detector::ALL),
        ];
        MaskPolicy::compile(&rules, b"0123456789abcdef0123456789abcdef")
            .expect("the rules compile")
            .for_connection("api")
    })
}

type Outcome = (Vec<u8>, Result<Counts, JsonError>);

fn run(mask: &Arc<ConnectionMask>, body: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> Outcome {
    let mut masker = JsonMasker::new(Arc::clone(mask), LIMITS);
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        if let Err(e) = masker.push(piece, &mut out) {
            // Every later call returns the same error.
            assert_eq!(masker.push(b"", &mut out), Err(e.clone()));
            assert_eq!(masker.finish(&mut out), Err(e.clone()));
            return (out, Err(e));
        }
        rest = tail;
    }
    let result = masker.finish(&mut out).map(|()| masker.counts());
    (out, result)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let document = serde_json::from_slice::<Value>(body).ok();
    for mask in [field_only(), mixed()] {
        let whole = run(mask, body, &mut std::iter::repeat(body.len()));
        assert_eq!(run(mask, body, &mut std::iter::repeat(1)), whole, "byte by byte");
        let mut state = u32::from(seed) | 0x100;
        let mut sizes = std::iter::from_fn(|| {
            // xorshift32: piece sizes 1..=16
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            Some((state % 16) as usize + 1)
        });
        assert_eq!(run(mask, body, &mut sizes), whole, "chunking changed the output");

        let Some(document) = &document else {
            continue;
        };
        let (out, result) = &whole;
        match result {
            Ok(_) => {}
            Err(JsonError::TooDeep { .. } | JsonError::KeyTooLong { .. }) => continue,
            Err(e) => panic!("valid JSON refused: {e}"),
        }
        let masked: Value = serde_json::from_slice(out).unwrap_or_else(|e| {
            panic!(
                "valid JSON came out invalid ({e}): {:?}",
                String::from_utf8_lossy(out)
            )
        });
        if !marker_outside_masked_values(document, false, false) {
            assert!(
                !contains(out, MARKER.as_bytes()),
                "a value `*.email` masks leaked: {:?}",
                String::from_utf8_lossy(out)
            );
        }
        if Arc::ptr_eq(mask, field_only()) {
            let mut fields = 0;
            let want = reference(document, false, false, &mut fields);
            assert_eq!(masked, want, "not masked as the reference masks it");
            let counts = result.as_ref().expect("checked above");
            assert_eq!(counts.get(Reason::Field), fields);
            assert_eq!(counts.total(), fields);
            if fields == 0 {
                assert_eq!(out, body, "nothing to mask, yet the body changed");
            }
        }
    }
});

/// Case folding as the field globs do it: ASCII, else the first char of the lower-case mapping.
fn is_email(key: &str) -> bool {
    let fold = |c: char| {
        if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            c.to_lowercase().next().unwrap_or(c)
        }
    };
    key.chars().map(fold).eq("email".chars())
}

/// The document as the field-only rule masks it. `masked`: inside a value `*.email` matched; `keyed`:
/// reached through at least one member (arrays are transparent), so an `email` key here has a parent key.
fn reference(value: &Value, masked: bool, keyed: bool, fields: &mut u64) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| {
                    let masked = masked || (keyed && is_email(key));
                    (key.clone(), reference(v, masked, true, fields))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| reference(v, masked, keyed, fields))
                .collect(),
        ),
        Value::Null => Value::Null,
        _ if masked => {
            *fields += 1;
            Value::String("[redacted]".to_owned())
        }
        scalar => scalar.clone(),
    }
}

/// Whether the marker appears anywhere the masker may write as it is: a key, or a string `*.email`
/// does not mask.
fn marker_outside_masked_values(value: &Value, masked: bool, keyed: bool) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, v)| {
            key.contains(MARKER) || marker_outside_masked_values(v, masked || (keyed && is_email(key)), true)
        }),
        Value::Array(items) => items
            .iter()
            .any(|v| marker_outside_masked_values(v, masked, keyed)),
        Value::String(s) => !masked && s.contains(MARKER),
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
