//! Tamper evidence: each event's hash covers the previous event's hash and its own canonical encoding, so
//! editing, deleting or reordering stored events breaks the chain at the first changed link.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{AuditError, AuditStore};

/// The hash that precedes the first event ever recorded.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash and the event's fields, each newline-terminated, as lowercase hex.
pub fn event_hash(prev_hash: &str, seq: u64, session: &str, at_us: i64, kind: &str, body: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev_hash, &seq.to_string(), session, &at_us.to_string(), kind] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// Where the chain first fails to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The sequence number of the first event that does not follow from its predecessor.
    pub seq: u64,
    pub reason: String,
}

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// The sequence number the check started after (the pruning checkpoint, or 0).
    pub from_seq: u64,
    pub last_seq: u64,
    pub last_hash: String,
    /// `None` when every link holds.
    pub broken: Option<Broken>,
}

/// Recomputes the whole chain from the last pruning checkpoint (or the beginning), in pages.
pub fn verify(store: &mut dyn AuditStore) -> Result<VerifyReport, AuditError> {
    let (mut prev_seq, mut prev_hash) = match store.checkpoint()? {
        Some(c) => (c.seq, c.hash),
        None => (0, GENESIS.to_owned()),
    };
    let from_seq = prev_seq;
    let mut events = 0;
    loop {
        let page = store.events_after(prev_seq, 1000)?;
        if page.is_empty() {
            break;
        }
        for e in page {
            let broken = |reason: String| VerifyReport {
                events,
                from_seq,
                last_seq: prev_seq,
                last_hash: prev_hash.clone(),
                broken: Some(Broken { seq: e.seq, reason }),
            };
            if e.seq != prev_seq + 1 {
                return Ok(broken(format!(
                    "expected event {} next, found {}: events are missing or out of order",
                    prev_seq + 1,
                    e.seq
                )));
            }
            if e.prev_hash != prev_hash {
                return Ok(broken(
                    "its previous-hash does not match the preceding event: an event before it was \
                     removed, reordered or altered"
                        .to_owned(),
                ));
            }
            let computed = event_hash(&e.prev_hash, e.seq, &e.session, e.at_us, &e.kind, &e.body);
            if computed != e.hash {
                return Ok(broken(
                    "its contents do not match its hash: the event was altered".to_owned(),
                ));
            }
            events += 1;
            prev_seq = e.seq;
            prev_hash = e.hash;
        }
    }
    Ok(VerifyReport {
        events,
        from_seq,
        last_seq: prev_seq,
        last_hash: prev_hash,
        broken: None,
    })
}
