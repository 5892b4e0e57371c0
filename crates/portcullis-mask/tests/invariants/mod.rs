//! The invariants of detection and masking, in one place for both of their checkers: `tests/properties.rs`
//! (generated inputs, in CI) and the fuzz target `fuzz/fuzz_targets/detect.rs` (arbitrary bytes, under
//! cargo-fuzz, which includes this file by path).

use std::sync::Arc;

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

/// A column plan per strategy (column `col_<strategy>`), a detector plan (column `notes`, the detectors
/// spread over all strategies), and the connection they come from.
pub struct Plans {
    pub columns: Vec<(StrategyName, ColumnPlan)>,
    pub detect: ColumnPlan,
    pub mask: Arc<ConnectionMask>,
}

impl Plans {
    pub fn new(key: &[u8]) -> Plans {
        let rule = |strategy, columns: Vec<String>, detectors: Vec<Detector>| RuleSpec {
            columns,
            fields: Vec::new(),
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
        let policy = MaskPolicy::compile(&rules, key).expect("the rules compile");
        let mask = policy.for_connection("c");
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
            mask: Arc::clone(&mask),
        }
    }
}

/// Findings are in bounds, on char boundaries, sorted and disjoint.
pub fn check_findings(text: &str) {
    let findings = detect(text, DetectorSet::all());
    let mut last_end = 0;
    for f in &findings {
        assert!(
            f.start < f.end && f.end <= text.len(),
            "{f:?} out of bounds in {text:?}"
        );
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?} splits a char in {text:?}"
        );
        assert!(
            f.start >= last_end,
            "findings overlap or are unsorted in {text:?}: {findings:?}"
        );
        last_end = f.end;
    }
}

/// Scrubbing changes a text exactly when detection finds something in it.
pub fn check_scrub(text: &str, plans: &Plans) {
    let mut counts = Counts::default();
    assert_eq!(
        plans.mask.scrub(text, &mut counts).is_some(),
        !detect(text, DetectorSet::all()).is_empty(),
        "scrub and detect disagree on {text:?}"
    );
}

/// Every strategy is deterministic and gives UTF-8 (or NULL for `null`); `partial` and
/// `format_preserving` keep the length in chars; detectors touch only UTF-8 cells.
pub fn check_masking(cell: &[u8], plans: &Plans) {
    let mut counts = Counts::default();
    let text = std::str::from_utf8(cell).ok();
    for (strategy, plan) in &plans.columns {
        let masked = plan.apply(cell, &mut counts);
        assert_eq!(
            masked,
            plan.apply(cell, &mut counts),
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
    match plans.detect.apply(cell, &mut counts) {
        Masked::Value(v) => {
            assert!(text.is_some(), "detectors ran over bytes that are not UTF-8");
            std::str::from_utf8(&v).expect("masked text is UTF-8");
        }
        Masked::Null => assert!(text.is_some(), "detectors ran over bytes that are not UTF-8"),
        Masked::Unchanged => {}
    }
}
