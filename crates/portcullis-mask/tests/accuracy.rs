//! Precision and recall of every detector over the labelled corpus, held to the documented bars.
//!
//! The corpus is `tests/corpus/labelled.toml`; the bars are in docs/masking.md.
//! `cargo test -p portcullis-mask --test accuracy -- --nocapture` prints the table and every miss.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;

use portcullis_mask::{Detector, DetectorSet, detect};
use serde::Deserialize;

/// The bars, per detector. docs/masking.md quotes them; change both together, and only for a reason
/// other than a failing run.
const MIN_PRECISION: f64 = 0.95;
const MIN_RECALL: f64 = 0.95;
/// Each detector needs this many labelled positives for its figures to mean something.
const MIN_POSITIVES: usize = 15;

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    findings: Vec<Expected>,
}

#[derive(Deserialize, Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Expected {
    detector: Detector,
    text: String,
}

#[derive(Default)]
struct Tally {
    true_positives: usize,
    false_positives: usize,
    false_negatives: usize,
}

impl Tally {
    fn precision(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

#[test]
fn every_detector_meets_the_bars_on_the_labelled_corpus() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/labelled.toml");
    let corpus: Corpus = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut tallies: BTreeMap<Detector, Tally> =
        Detector::ALL.iter().map(|d| (*d, Tally::default())).collect();
    let mut misses = Vec::new();
    let negatives = corpus.case.iter().filter(|c| c.findings.is_empty()).count();

    for case in &corpus.case {
        let mut expected = case.findings.clone();
        let mut got: Vec<Expected> = detect(&case.text, DetectorSet::all())
            .into_iter()
            .map(|f| Expected {
                detector: f.detector,
                text: case.text[f.start..f.end].to_owned(),
            })
            .collect();
        // A finding is correct when detector and matched text both agree; each expectation matches once.
        got.retain(|g| match expected.iter().position(|e| e == g) {
            Some(i) => {
                expected.remove(i);
                tallies.get_mut(&g.detector).unwrap().true_positives += 1;
                false
            }
            None => true,
        });
        for g in got {
            tallies.get_mut(&g.detector).unwrap().false_positives += 1;
            misses.push(format!(
                "false positive {:?} {:?} in {:?}",
                g.detector, g.text, case.text
            ));
        }
        for e in expected {
            tallies.get_mut(&e.detector).unwrap().false_negatives += 1;
            misses.push(format!("missed {:?} {:?} in {:?}", e.detector, e.text, case.text));
        }
    }

    println!(
        "{} cases ({} hard negatives)\n\n| detector | positives | found | false positives | precision | recall |",
        corpus.case.len(),
        negatives
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for (detector, t) in &tallies {
        let positives = t.true_positives + t.false_negatives;
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.3} |",
            detector.name(),
            positives,
            t.true_positives,
            t.false_positives,
            t.precision(),
            t.recall()
        );
        if positives < MIN_POSITIVES {
            failures.push(format!("{detector}: only {positives} labelled positives"));
        }
        if t.precision() < MIN_PRECISION || t.recall() < MIN_RECALL {
            failures.push(format!(
                "{detector}: precision {:.3}, recall {:.3}",
                t.precision(),
                t.recall()
            ));
        }
    }
    for m in &misses {
        println!("{m}");
    }
    assert!(failures.is_empty(), "below the bars: {failures:#?}");
}
