//! Fuzzes detection and masking on arbitrary bytes, with the invariants of `tests/properties.rs`.
//!
//! Entry points: `detect`, `ColumnPlan::apply` (detectors and every column strategy) and
//! `ConnectionMask::scrub`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portcullis_mask::{
    ColumnPlan, ColumnRef, ConnectionMask, Counts, Detector, DetectorSet, MaskPolicy, Masked, RuleSpec,
    StrategyName, detect,
};

const STRATEGIES: [(StrategyName, &str); 5] = [
    (StrategyName::Redact, "redact"),
    (StrategyName::Partial, "partial"),
    (StrategyName::Hash, "hash"),
    (StrategyName::Null, "null"),
    (StrategyName::FormatPreserving, "fpe"),
];

/// A column plan per strategy, a detector plan, and the connection (detectors spread over all strategies).
struct Plans {
    columns: Vec<(StrategyName, ColumnPlan)>,
    detect: ColumnPlan,
    mask: Arc<ConnectionMask>,
}

fn plans() -> &'static Plans {
    static PLANS: OnceLock<Plans> = OnceLock::new();
    PLANS.get_or_init(|| {
        let rule = |strategy, columns: Vec<String>, detectors: Vec<Detector>| RuleSpec {
            columns,
            detectors,
            strategy,
            keep: None,
            with: None,
            connections: Vec::new(),
        };
        let mut rules: Vec<RuleSpec> = STRATEGIES
            .iter()
            .map(|(s, name)| rule(*s, vec![format!("col_{name}")], Vec::new()))
            .collect();
        for (i, (s, _)) in STRATEGIES.iter().enumerate() {
            let detectors = Detector::ALL
                .iter()
                .copied()
                .skip(i)
                .step_by(STRATEGIES.len())
                .collect();
            rules.push(rule(*s, Vec::new(), detectors));
        }
        let policy = MaskPolicy::compile(&rules, b"fuzz-key-0123456789abcdef").expect("rules compile");
        let mask = policy.for_connection("fuzz");
        let column = |name: &str| {
            mask.column(ColumnRef {
                schema: Some("public"),
                table: Some("t"),
                column: name,
            })
        };
        Plans {
            columns: STRATEGIES
                .iter()
                .map(|(s, name)| (*s, column(&format!("col_{name}"))))
                .collect(),
            detect: column("notes"),
            mask: mask.clone(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let plans = plans();
    let text = std::str::from_utf8(data).ok();
    let mut counts = Counts::default();

    if let Some(text) = text {
        let findings = detect(text, DetectorSet::all());
        let mut last_end = 0;
        for f in &findings {
            assert!(f.start < f.end && f.end <= text.len(), "{f:?} out of bounds");
            assert!(
                text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
                "{f:?} splits a char"
            );
            assert!(
                f.start >= last_end,
                "findings overlap or are unsorted: {findings:?}"
            );
            last_end = f.end;
        }
        let scrubbed = plans.mask.scrub(text, &mut counts);
        assert_eq!(
            scrubbed.is_some(),
            !findings.is_empty(),
            "scrub and detect disagree"
        );
    }

    for (strategy, plan) in &plans.columns {
        let masked = plan.apply(data, &mut counts);
        assert_eq!(
            masked,
            plan.apply(data, &mut counts),
            "{strategy:?} is not deterministic"
        );
        match (strategy, &masked) {
            (StrategyName::Null, Masked::Null) => {}
            (_, Masked::Value(v)) => {
                let out = std::str::from_utf8(v).expect("a masked cell is UTF-8");
                if let (Some(text), StrategyName::Partial | StrategyName::FormatPreserving) = (text, strategy)
                {
                    assert_eq!(
                        out.chars().count(),
                        text.chars().count(),
                        "{strategy:?} changed the length"
                    );
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    match plans.detect.apply(data, &mut counts) {
        Masked::Value(v) => {
            assert!(text.is_some(), "detectors ran over bytes that are not UTF-8");
            std::str::from_utf8(&v).expect("masked text is UTF-8");
        }
        Masked::Null => assert!(text.is_some(), "detectors ran over bytes that are not UTF-8"),
        Masked::Unchanged => {}
    }
});
