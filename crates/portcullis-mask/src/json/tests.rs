//! The JSON masker: exact outputs, escapes, bounds, errors, and chunk boundaries at every byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;
use crate::detector::Detector;
use crate::rules::{MaskPolicy, RuleSpec};
use crate::strategy::StrategyName;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

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

/// Field rules of every kind, then every detector redacting (email and SSN findings null the value).
fn rules() -> Vec<RuleSpec> {
    let mut partial = rule(StrategyName::Partial, &["*.card_number", "customers[].iban"], &[]);
    partial.keep = Some(4);
    let mut redact = rule(StrategyName::Redact, &["password", "$.data.*.secret"], &[]);
    redact.with = Some("[x]".into());
    vec![
        partial,
        redact,
        rule(
            StrategyName::Null,
            &["$.data.*.ssn", "profile"],
            &[Detector::UsSsn],
        ),
        rule(StrategyName::Hash, &["token"], &[]),
        rule(StrategyName::Redact, &[], &Detector::ALL),
    ]
}

fn masker(rules: &[RuleSpec], limits: JsonLimits) -> JsonMasker {
    let policy = MaskPolicy::compile(rules, KEY).unwrap();
    JsonMasker::new(policy.for_connection("api"), limits)
}

/// The body in the given chunks: output, counts, or the error.
fn run_chunks<'a>(
    rules: &[RuleSpec],
    limits: JsonLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(String, Counts), JsonError> {
    let mut m = masker(rules, limits);
    let mut out = Vec::new();
    for c in chunks {
        m.push(c, &mut out)?;
    }
    m.finish(&mut out)?;
    Ok((String::from_utf8(out).unwrap(), m.counts()))
}

/// Masks `body` in one chunk, and checks that splitting it at every byte position (and byte by byte)
/// gives the same result.
fn mask_with(rules: &[RuleSpec], limits: JsonLimits, body: &str) -> Result<(String, Counts), JsonError> {
    let b = body.as_bytes();
    let whole = run_chunks(rules, limits, [b]);
    for at in 0..=b.len() {
        let split = run_chunks(rules, limits, [&b[..at], &b[at..]]);
        assert_eq!(split, whole, "split at {at} of {body:?}");
    }
    assert_eq!(
        run_chunks(rules, limits, b.chunks(1)),
        whole,
        "byte by byte: {body:?}"
    );
    whole
}

fn mask(body: &str) -> String {
    mask_with(&rules(), JsonLimits::default(), body).unwrap().0
}

#[test]
fn json_without_anything_to_mask_passes_byte_for_byte() {
    for body in [
        r#"{"id":42,"name":"Ada","tags":["a","b"],"ok":true,"none":null}"#,
        "  {\n  \"price\" : -0.5e+10 ,\t\"n\":[ 0, 1E3, 12.25, -7 ] }\r\n",
        r#"{"escaped":"caf\u00e9 \"quoted\" \/ \\ \n","deep":[[[{}]],[]]}"#,
        r#""just a string""#,
        "3.14",
        "[]",
        "",
        "   ",
    ] {
        assert_eq!(mask(body), body);
    }
}

#[test]
fn field_rules_mask_whole_values_by_key_path() {
    let cases = [
        // partial on a string and on a number (which becomes a string)
        (
            r#"{"customer":{"card_number":"4111 1111 1111 1111"},"x":{"card_number":4111111111111111}}"#,
            r#"{"customer":{"card_number":"**** **** **** 1111"},"x":{"card_number":"************1111"}}"#,
        ),
        // `[]` requires the array; array levels are otherwise transparent
        (
            r#"{"customers":[{"iban":"DE89370400440532013000"}],"iban":"DE89370400440532013000"}"#,
            r#"{"customers":[{"iban":"******************3000"}],"iban":"[redacted]"}"#,
        ),
        // redact with its text, at any depth, and inside `$.data.*`
        (
            r#"{"user":{"password":"hunter2"},"data":{"a":{"secret":"s","ssn":"078-05-1120"}}}"#,
            r#"{"user":{"password":"[x]"},"data":{"a":{"secret":"[x]","ssn":null}}}"#,
        ),
        // an anchored pattern does not match below its place
        (
            r#"{"wrap":{"data":{"a":{"secret":"s"}}}}"#,
            r#"{"wrap":{"data":{"a":{"secret":"s"}}}}"#,
        ),
        // an object matched whole: every scalar inside, structure and null kept
        (
            r#"{"profile":{"name":"Ada","age":36,"admin":false,"tags":["x",{"y":1}],"gone":null}}"#,
            r#"{"profile":{"name":null,"age":null,"admin":null,"tags":[null,{"y":null}],"gone":null}}"#,
        ),
        // booleans and numbers under a string strategy become strings
        (
            r#"{"password":true,"pw":{"password":[1,2.5]}}"#,
            r#"{"password":"[x]","pw":{"password":["[x]","[x]"]}}"#,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(mask(body), want, "{body}");
    }
}

#[test]
fn hash_gives_the_same_pseudonym_as_a_cell() {
    let out = mask(r#"{"token":"abc","n":{"token":12}}"#);
    let policy = MaskPolicy::compile(&rules(), KEY).unwrap();
    let cell = |v: &str| {
        let plan = policy.for_connection("api");
        let mut out = Vec::new();
        let strategy = plan.field_strategy(3).unwrap();
        assert!(strategy.mask_cell_into(plan.key(), v.as_bytes(), &mut out));
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        out,
        format!(
            r#"{{"token":"{}","n":{{"token":"{}"}}}}"#,
            cell("abc"),
            cell("12")
        )
    );
}

#[test]
fn detectors_mask_inside_strings_keys_and_numbers() {
    let cases = [
        (
            r#"{"note":"write to ada@example.com or call +1 212 555 0142"}"#,
            r#"{"note":"write to [redacted] or call [redacted]"}"#,
        ),
        // an escaped `@` is found after unescaping; the rest is re-escaped
        (
            r#"{"note":"say \"hi\"\tto ada\u0040example.com\n"}"#,
            r#"{"note":"say \"hi\"\tto [redacted]\n"}"#,
        ),
        // a surrogate pair decodes to one char, written as UTF-8
        (
            r#"["\ud83d\ude00 ada@example.com", "\ud83d alone ada@example.com"]"#,
            "[\"😀 [redacted]\", \"\u{fffd} alone [redacted]\"]",
        ),
        // keys are read by the detectors too
        (r#"{"ada@example.com":{"n":1}}"#, r#"{"[redacted]":{"n":1}}"#),
        // a finding whose strategy is `null` nulls the value (a key gets the redaction)
        (
            r#"{"ssn":"SSN 078-05-1120","078-05-1120":1}"#,
            r#"{"ssn":null,"[redacted]":1}"#,
        ),
        // a card number written as a number
        (
            r#"{"n":4111111111111111,"m":4111111111111112}"#,
            r#"{"n":"[redacted]","m":4111111111111112}"#,
        ),
        // non-ASCII text around a finding
        (
            r#"{"a":"Zoë — ada@example.com — 東京"}"#,
            r#"{"a":"Zoë — [redacted] — 東京"}"#,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(mask(body), want, "{body}");
    }
}

#[test]
fn counts_are_kept_by_reason() {
    let (_, counts) = mask_with(
        &rules(),
        JsonLimits::default(),
        r#"{"password":"x","profile":{"a":1,"b":null},"e":["ada@example.com","bob@example.org"],"s":"078-05-1120"}"#,
    )
    .unwrap();
    assert_eq!(counts.get(Reason::Field), 2);
    assert_eq!(counts.get(Reason::Detector(Detector::Email)), 2);
    assert_eq!(counts.get(Reason::Detector(Detector::UsSsn)), 1);
    assert_eq!(counts.total(), 5);
}

#[test]
fn values_over_the_limit_are_replaced_whole_unread() {
    let limits = JsonLimits {
        max_value_bytes: 16,
        max_depth: 128,
    };
    let long = "a".repeat(40);
    let body = format!(
        r#"{{"note":"{long}","token":"{long}","password":"{long}","ok":"0123456789abcdef","n":{}}}"#,
        "1".repeat(20)
    );
    let (out, counts) = mask_with(&rules(), limits, &body).unwrap();
    assert_eq!(
        out,
        r#"{"note":"[redacted]","token":"[redacted]","password":"[x]","ok":"0123456789abcdef","n":"[redacted]"}"#
    );
    assert_eq!(counts.get(Reason::Oversized), 3);
    assert_eq!(counts.get(Reason::Field), 1);
    // Escapes count as written: 3 × 6 bytes is over 16.
    let (out, _) = mask_with(&rules(), limits, r#"["\u0041\u0041\u0041"]"#).unwrap();
    assert_eq!(out, r#"["[redacted]"]"#);
    // Without detectors and field rules on it, a long value streams through.
    let fields_only = [rule(StrategyName::Redact, &["secret"], &[])];
    let body = format!(r#"{{"note":"{long}","secret":"{long}"}}"#);
    let (out, _) = mask_with(&fields_only, limits, &body).unwrap();
    assert_eq!(out, format!(r#"{{"note":"{long}","secret":"[redacted]"}}"#));
}

#[test]
fn bad_bodies_are_errors_at_their_offset() {
    let limits = JsonLimits {
        max_value_bytes: 8,
        max_depth: 3,
    };
    let syntax =
        |offset| move |e: &JsonError| matches!(e, JsonError::Syntax { offset: o, .. } if *o == offset);
    type Check = Box<dyn Fn(&JsonError) -> bool>;
    let cases: Vec<(&str, Check)> = vec![
        (r#"{"a" 1}"#, Box::new(syntax(5))),
        ("[1,]", Box::new(syntax(3))),
        ("[01]", Box::new(syntax(2))),
        ("[1.]", Box::new(syntax(3))),
        ("[-]", Box::new(syntax(2))),
        (r#"["\x"]"#, Box::new(syntax(3))),
        (r#"["\u12g4"]"#, Box::new(syntax(6))),
        ("[\"a\u{1}\"]", Box::new(syntax(3))),
        ("[tru]", Box::new(syntax(4))),
        ("{} x", Box::new(syntax(3))),
        ("[}", Box::new(syntax(1))),
        ("{]", Box::new(syntax(1))),
        ("{\"a\":1]", Box::new(syntax(6))),
        (
            "[[[[1]]]]",
            Box::new(|e: &JsonError| matches!(e, JsonError::TooDeep { offset: 3, max: 3 })),
        ),
        (
            r#"{"a_very_long_key":1}"#,
            Box::new(|e: &JsonError| matches!(e, JsonError::KeyTooLong { offset: 1, max: 8 })),
        ),
        (r#"{"a":"#, Box::new(|e: &JsonError| *e == JsonError::Truncated)),
        (r#"["abc"#, Box::new(|e: &JsonError| *e == JsonError::Truncated)),
        ("-", Box::new(|e: &JsonError| *e == JsonError::Truncated)),
    ];
    for (body, want) in cases {
        let err = mask_with(&rules(), limits, body).unwrap_err();
        assert!(want(&err), "{body:?}: {err:?}");
    }
}

#[test]
fn after_an_error_nothing_more_is_accepted() {
    let mut m = masker(&rules(), JsonLimits::default());
    let mut out = Vec::new();
    let err = m.push(b"[1,,", &mut out).unwrap_err();
    assert_eq!(out, b"[1,");
    assert_eq!(m.push(b"2]", &mut out), Err(err.clone()));
    assert_eq!(m.finish(&mut out), Err(err));
}

#[test]
fn a_sample_response_masks_the_same_at_every_split() {
    let body = r#"{
  "data": {"u1": {"ssn": "078-05-1120", "secret": "s\u00e9cret", "name": "Ada"}},
  "customers": [
    {"id": 1, "card_number": "4111-1111-1111-1111", "iban": "GB82 WEST 1234 5698 7654 32",
     "contact": "ada@example.com", "vip": true, "score": 9.5e-1},
    {"id": 2, "card_number": null, "note": "call \"Bob\" at +44 20 7946 0958\n\ud83d\ude00"}
  ],
  "next": null
}"#;
    let want = r#"{
  "data": {"u1": {"ssn": null, "secret": "[x]", "name": "Ada"}},
  "customers": [
    {"id": 1, "card_number": "****-****-****-1111", "iban": "**** **** **** **** **54 32",
     "contact": "[redacted]", "vip": true, "score": 9.5e-1},
    {"id": 2, "card_number": null, "note": "call \"Bob\" at [redacted]\n😀"}
  ],
  "next": null
}"#;
    assert_eq!(mask(body), want);
}
