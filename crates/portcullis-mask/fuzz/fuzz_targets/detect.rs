//! Fuzzes detection and masking on arbitrary bytes, with the invariants `tests/properties.rs` checks
//! (`tests/invariants/mod.rs`, shared by both).
//!
//! Entry points: `detect`, `ColumnPlan::apply` (detectors and every column strategy) and
//! `ConnectionMask::scrub`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use invariants::{Plans, check_findings, check_masking, check_scrub};

fn plans() -> &'static Plans {
    static PLANS: OnceLock<Plans> = OnceLock::new();
    PLANS.get_or_init(|| Plans::new(b"fuzz-key-0123456789abcdef"))
}

fuzz_target!(|data: &[u8]| {
    let plans = plans();
    if let Ok(text) = std::str::from_utf8(data) {
        check_findings(text);
        check_scrub(text, plans);
    }
    check_masking(data, plans);
});
