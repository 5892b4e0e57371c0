//! Fuzzes client-sent typed messages: `frontend::decode` on (first byte, rest), and `split_message` framing of the raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_postgres::wire::frontend::{self, FrontendMessage};
use portcullis_postgres_fuzz::{SPLIT_LIMITS, check_split, encode_frontend};

fuzz_target!(|data: &[u8]| {
    // 1. The input as one message: tag byte, then body.
    if let Some((&tag, body)) = data.split_first() {
        decode_and_check(tag, body);
    }

    // 2. The input as a stream, the way the login path reads it: split frames off the front until one
    //    is incomplete or rejected, decoding each.
    for limit in SPLIT_LIMITS {
        let mut rest = data;
        while let Some((tag, body, len)) = check_split(rest, limit) {
            decode_and_check(tag, body);
            rest = rest.get(len..).expect("frame length within input");
        }
    }
});

fn decode_and_check(tag: u8, body: &[u8]) {
    if tag == b'p' {
        if let Ok(password) = frontend::password(body) {
            assert_eq!(
                body.len(),
                password.len() + 1,
                "password did not consume the body"
            );
        }
    }
    let Ok(message) = frontend::decode(tag, body) else {
        return;
    };
    if let FrontendMessage::Describe { target, .. } | FrontendMessage::Close { target, .. } = &message {
        assert!(matches!(target, b'S' | b'P'), "target {target} accepted");
    }
    assert_eq!(
        encode_frontend(&message),
        body,
        "re-encoding {message:?} does not give back the body"
    );
}
