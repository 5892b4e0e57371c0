//! Tamper evidence: each event's hash covers the previous event's hash and its own canonical encoding, so
//! editing, deleting or reordering stored events breaks the chain at the first changed link.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::event::StoredEvent;
use crate::store::{AuditError, AuditStore};

/// The hash that precedes the first event ever recorded.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash and the event's fields, each newline-terminated, as lowercase hex.
pub fn event_hash(prev_hash: &str, seq: u64, session: &str, at_us: i64, kind: &str, body: &str) -> String {
    hex::encode(hash_over(prev_hash.as_bytes(), seq, session, at_us, kind, body))
}

/// [`event_hash`] of an event whose predecessor's hash is held as bytes, as the bytes of its own: what
/// the writer computes, without a round trip through hex strings. The predecessor still enters the hash
/// as its lowercase hex text, so both forms hash the same event to the same value.
pub fn seal(prev_hash: &[u8; 32], seq: u64, session: &str, at_us: i64, kind: &str, body: &str) -> [u8; 32] {
    let mut prev_hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(prev_hash, &mut prev_hex);
    hash_over(&prev_hex, seq, session, at_us, kind, body)
}

fn hash_over(prev_hash: &[u8], seq: u64, session: &str, at_us: i64, kind: &str, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut line = |part: &[u8]| {
        h.update(part);
        h.update(b"\n");
    };
    line(prev_hash);
    line(seq.to_string().as_bytes());
    line(session.as_bytes());
    line(at_us.to_string().as_bytes());
    line(kind.as_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

/// The bytes of a lowercase hex hash, or `None` when it is not 64 hex digits.
pub fn hash_bytes(hex_hash: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut bytes).ok()?;
    Some(bytes)
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

/// Whether `e` is the event that follows `prev_seq` with hash `prev_hash`; if not, why.
pub(crate) fn follows(prev_seq: u64, prev_hash: &str, e: &StoredEvent) -> Result<(), String> {
    if e.seq != prev_seq.saturating_add(1) {
        return Err(format!(
            "expected event {} next, found {}: events are missing or out of order",
            prev_seq.saturating_add(1),
            e.seq
        ));
    }
    if e.prev_hash != prev_hash {
        return Err(
            "its previous-hash does not match the preceding event: an event before it was \
                    removed, reordered or altered"
                .to_owned(),
        );
    }
    if event_hash(&e.prev_hash, e.seq, &e.session, e.at_us, &e.kind, &e.body) != e.hash {
        return Err("its contents do not match its hash: the event was altered".to_owned());
    }
    Ok(())
}

/// Recomputes the whole chain from the last pruning checkpoint (or the beginning), in pages.
pub fn verify(store: &mut dyn AuditStore) -> Result<VerifyReport, AuditError> {
    verify_with_progress(store, &mut |_, _| {})
}

/// [`verify`], calling `progress` with the events checked so far and the last sequence number checked
/// after every page (1,000 events), so a long check can show that it is moving.
pub fn verify_with_progress(
    store: &mut dyn AuditStore,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, AuditError> {
    let (mut prev_seq, mut prev_hash) = match store.checkpoint()? {
        Some(c) => (c.seq, c.hash),
        None => (0, GENESIS.to_owned()),
    };
    let from_seq = prev_seq;
    let mut events = 0;
    loop {
        let page = match store.events_after(prev_seq, 1000) {
            Err(AuditError::Damaged { seq, reason }) => {
                return Ok(VerifyReport {
                    events,
                    from_seq,
                    last_seq: prev_seq,
                    last_hash: prev_hash,
                    broken: Some(Broken {
                        seq,
                        reason: format!("it cannot be read back ({reason}): its stored form was altered"),
                    }),
                });
            }
            page => page?,
        };
        if page.is_empty() {
            break;
        }
        for e in page {
            if let Err(reason) = follows(prev_seq, &prev_hash, &e) {
                return Ok(VerifyReport {
                    events,
                    from_seq,
                    last_seq: prev_seq,
                    last_hash: prev_hash,
                    broken: Some(Broken { seq: e.seq, reason }),
                });
            }
            events += 1;
            prev_seq = e.seq;
            prev_hash = e.hash;
        }
        progress(events, prev_seq);
    }
    Ok(VerifyReport {
        events,
        from_seq,
        last_seq: prev_seq,
        last_hash: prev_hash,
        broken: None,
    })
}
