//! The block decoder's invariant, in one place for both of its checkers: `tests/block.rs` (generated
//! inputs, in CI) and the fuzz target `fuzz/fuzz_targets/block.rs` (arbitrary bytes, under cargo-fuzz).
//! Both include this file by path.

use portcullis_audit::block;

/// Decoding `data` never panics; the events it accepts, packed again, give back exactly the bytes they
/// were read from (all of `data` when nothing fails), and an error's offset lies within the input.
pub fn check_block(data: &[u8]) {
    let mut packed = Vec::new();
    for event in block::events(data) {
        match event {
            Ok(event) => block::push(&mut packed, &event).expect("a decoded event packs again"),
            Err(error) => {
                assert!(error.offset <= data.len(), "{error}");
                assert_eq!(data.get(..packed.len()), Some(packed.as_slice()));
                return;
            }
        }
    }
    assert_eq!(packed, data, "accepted events must be exactly the input");
}
