//! Fuzzes the pairing of server replies with recorded statements (`results::ResultTracker`): arbitrary
//! sequences of units sent and server messages with arbitrary bodies.
#![no_main]

use std::collections::HashSet;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use portcullis_postgres::results::{ResultCaps, ResultTracker, Unit, UnitKind};

fuzz_target!(|data: &[u8]| {
    let mut tracker = ResultTracker::new(ResultCaps { rows: 3, bytes: 256 });
    let mut sent = HashSet::new();
    let mut finished = HashSet::new();
    let mut next_id = 0u64;
    let mut chunks = data.split(|b| *b == 0xff);
    while let Some(chunk) = chunks.next() {
        let Some((&op, body)) = chunk.split_first() else {
            continue;
        };
        if op & 0x80 != 0 {
            next_id += 1;
            let kind = match op % 3 {
                0 => UnitKind::Simple,
                1 => UnitKind::Execution,
                _ => UnitKind::Parse,
            };
            let report = op & 0x40 == 0;
            if report {
                sent.insert(next_id);
            }
            tracker.sent(Unit {
                id: next_id,
                kind,
                batch: u64::from(op & 0x07) + 1,
                report,
                sent: Instant::now(),
            });
        } else {
            let tag = b"TDCEIs1Z"[usize::from(op % 8)];
            let _ = tracker.wants(tag, body.len());
            for f in tracker.message(tag, body) {
                assert!(
                    sent.contains(&f.id),
                    "reported a unit never sent for reporting: {}",
                    f.id
                );
                assert!(finished.insert(f.id), "reported twice: {}", f.id);
                assert!(f.cells.len() <= 3, "more rows than the cap");
            }
        }
    }
});
