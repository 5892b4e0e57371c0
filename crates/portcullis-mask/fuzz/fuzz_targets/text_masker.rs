//! Fuzzes the streaming `TextMasker` on arbitrary bytes split at arbitrary chunk boundaries, with every
//! detector (redact).
//!
//! The first input byte seeds the chunk sizes; the rest is the body.
//!
//! Oracles: with a carry larger than the body, the output and counts are the same whole, byte by byte and
//! in pieces of 1 to 16 bytes, and for UTF-8 equal `ConnectionMask::scrub` of the whole text. With a
//! 64-byte carry (scans between chunks, lines cut), UTF-8 in is UTF-8 out whatever the chunks.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portcullis_mask::{
    ConnectionMask, Counts, Detector, MaskPolicy, RuleSpec, StrategyName, TextLimits, TextMasker,
};

fn mask() -> &'static Arc<ConnectionMask> {
    static MASK: OnceLock<Arc<ConnectionMask>> = OnceLock::new();
    MASK.get_or_init(|| {
        let rule = RuleSpec {
            columns: Vec::new(),
            fields: Vec::new(),
            detectors: Detector::ALL.to_vec(),
            strategy: StrategyName::Redact,
            keep: None,
            with: None,
            connections: Vec::new(),
        };
        MaskPolicy::compile(&[rule], b"0123456789abcdef0123456789abcdef")
            .expect("the rule compiles")
            .for_connection("api")
    })
}

fn run(body: &[u8], max_carry: usize, sizes: &mut dyn Iterator<Item = usize>) -> (Vec<u8>, Counts) {
    let mut masker = TextMasker::new(Arc::clone(mask()), TextLimits { max_carry });
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        masker.push(piece, &mut out);
        rest = tail;
    }
    masker.finish(&mut out);
    (out, masker.counts())
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let pieces = || {
        let mut state = u32::from(seed) | 0x100;
        std::iter::from_fn(move || {
            // xorshift32: piece sizes 1..=16
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            Some((state % 16) as usize + 1)
        })
    };

    // A carry that holds the whole body: one scan, at the end.
    let large = 4 * body.len().max(1) + 4;
    let whole = run(body, large, &mut std::iter::repeat(body.len()));
    assert_eq!(run(body, large, &mut std::iter::repeat(1)), whole, "byte by byte");
    assert_eq!(
        run(body, large, &mut pieces()),
        whole,
        "chunking changed the output"
    );
    if let Ok(text) = std::str::from_utf8(body) {
        let mut counts = Counts::default();
        let scrubbed = mask().scrub(text, &mut counts).unwrap_or_else(|| text.to_owned());
        assert_eq!(String::from_utf8_lossy(&whole.0), scrubbed);
        assert_eq!(whole.1, counts);
    }

    // A small carry: lines are cut between scans; the output stays UTF-8.
    for (out, _) in [
        run(body, 64, &mut std::iter::repeat(body.len())),
        run(body, 64, &mut std::iter::repeat(1)),
        run(body, 64, &mut pieces()),
    ] {
        if std::str::from_utf8(body).is_ok() {
            assert!(
                std::str::from_utf8(&out).is_ok(),
                "UTF-8 in, not UTF-8 out: {:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }
});
