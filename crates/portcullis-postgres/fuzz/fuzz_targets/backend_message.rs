//! Fuzzes server-sent typed messages: `backend::decode` on (first byte, rest), and `split_message` framing of the raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_postgres::wire::backend::{self, BackendMessage};
use portcullis_postgres_fuzz::{SPLIT_LIMITS, check_split, encode_backend};

fuzz_target!(|data: &[u8]| {
    // 1. The input as one message: tag byte, then body.
    if let Some((&tag, body)) = data.split_first() {
        decode_and_check(tag, body);
    }

    // 2. The input as a stream from the upstream: split frames off the front until one is incomplete
    //    or rejected, decoding each.
    for limit in SPLIT_LIMITS {
        let mut rest = data;
        while let Some((tag, body, len)) = check_split(rest, limit) {
            decode_and_check(tag, body);
            rest = rest.get(len..).expect("frame length within input");
        }
    }
});

fn decode_and_check(tag: u8, body: &[u8]) {
    let Ok(message) = backend::decode(tag, body) else {
        return;
    };
    if let BackendMessage::Other { tag: other, .. } = &message {
        assert_eq!(*other, tag, "Other carries a different tag");
        assert!(!b"RSKZENvTDC".contains(&tag), "known tag {tag} relayed as Other");
    }
    assert_eq!(
        encode_backend(&message),
        body,
        "re-encoding {message:?} does not give back the body"
    );
}
