//! The block decoder on arbitrary bytes: what a store file edited or damaged behind the store's back
//! holds. Oracle beyond "does not panic": the events it accepts, packed again, give back exactly the bytes
//! they were read from, and an error's offset lies within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_audit::block;

fuzz_target!(|data: &[u8]| {
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
});
