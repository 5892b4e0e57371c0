//! Fuzzes the relay's `Scanner`: fed the same bytes in arbitrary pieces, it must never panic, must forward
//! every byte exactly once, and must find the same message boundaries as a whole-buffer split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_postgres::wire::scanner::{Scanner, Visit};
use portcullis_postgres::wire::{HEADER_LEN, Header};

fuzz_target!(|input: &[u8]| {
    // The first byte picks the piece size, so libFuzzer explores different read boundaries.
    let Some((&piece, stream)) = input.split_first() else {
        return;
    };
    let piece = usize::from(piece % 32) + 1;

    // Reference: walk the whole stream header by header.
    let mut expected = Vec::new();
    let mut pos = 0;
    while let Ok(Some(header)) = Header::parse(&stream[pos..]) {
        expected.push(header.tag);
        pos += HEADER_LEN + header.body_len;
        if pos >= stream.len() {
            break;
        }
    }

    let mut scanner = Scanner::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut forwarded = 0usize;
    let mut seen = Vec::new();
    for chunk in stream.chunks(piece) {
        pending.extend_from_slice(chunk);
        match scanner.scan(&pending, |h| {
            seen.push(h.tag);
            Ok(Visit::Pass)
        }) {
            Ok(scan) => {
                assert!(scan.forward <= pending.len());
                assert!(!scan.stopped);
                forwarded += scan.forward;
                pending.drain(..scan.forward);
                // Only an incomplete header is ever held back.
                assert!(pending.len() < HEADER_LEN);
            }
            Err(_) => return,
        }
    }
    assert_eq!(forwarded + pending.len(), stream.len());
    assert_eq!(seen, expected);
});
