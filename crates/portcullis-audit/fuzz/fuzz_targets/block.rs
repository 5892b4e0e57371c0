//! The block decoder on arbitrary bytes: what a store file edited or damaged behind the store's back
//! holds, checked against the invariant `tests/block.rs` checks in CI (`tests/support/block_invariant.rs`,
//! shared by both).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/block_invariant.rs"]
mod block_invariant;

fuzz_target!(|data: &[u8]| block_invariant::check_block(data));
