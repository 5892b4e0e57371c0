//! How the SQLite store keeps a group commit: one row per commit (a *block*), its events packed one after
//! another in a small binary encoding. One B-tree insert per commit instead of one per event is most of
//! what made appending cheap enough for the data path (see `docs/performance.md`).
//!
//! An event is encoded as, in order (integers little-endian):
//!
//! | field | encoding |
//! |---|---|
//! | seq | u64 |
//! | at_us | i64 |
//! | session | u16 length, UTF-8 |
//! | kind | u8 length, UTF-8 |
//! | body | u32 length, UTF-8 (the canonical JSON that is hashed) |
//! | hash | 32 bytes (SHA-256, see [`crate::event_hash`]) |
//!
//! The previous event's hash is not repeated per event: the block row holds the hash that precedes its
//! first event, and each later event's predecessor is the event before it. Decoding never trusts the
//! bytes: a block edited behind the store's back fails to decode with the offset it broke at, and
//! `verify` reports it as a broken link.

use std::fmt;

/// One event as it is packed into a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedEvent<'a> {
    pub seq: u64,
    pub at_us: i64,
    pub session: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
    pub hash: [u8; 32],
}

/// Why a block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockError {
    /// Byte offset in the block where decoding failed.
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for BlockError {}

/// Appends `event` to `block`. Fields longer than their length prefix allows are an error rather than
/// being cut: a truncated session id or body would hash differently from what was meant.
pub fn push(block: &mut Vec<u8>, event: &PackedEvent<'_>) -> Result<(), BlockError> {
    let too_long = |what| BlockError {
        offset: block.len(),
        what,
    };
    let session_len =
        u16::try_from(event.session.len()).map_err(|_| too_long("session id over 65535 bytes"))?;
    let kind_len = u8::try_from(event.kind.len()).map_err(|_| too_long("kind over 255 bytes"))?;
    let body_len = u32::try_from(event.body.len()).map_err(|_| too_long("body over 4 GiB"))?;
    block.reserve(8 + 8 + 2 + event.session.len() + 1 + event.kind.len() + 4 + event.body.len() + 32);
    block.extend_from_slice(&event.seq.to_le_bytes());
    block.extend_from_slice(&event.at_us.to_le_bytes());
    block.extend_from_slice(&session_len.to_le_bytes());
    block.extend_from_slice(event.session.as_bytes());
    block.push(kind_len);
    block.extend_from_slice(event.kind.as_bytes());
    block.extend_from_slice(&body_len.to_le_bytes());
    block.extend_from_slice(event.body.as_bytes());
    block.extend_from_slice(&event.hash);
    Ok(())
}

/// The events of a block, in order; stops at the first undecodable byte with its error.
pub fn events(block: &[u8]) -> Events<'_> {
    Events {
        reader: Reader { block, at: 0 },
        failed: false,
    }
}

/// Iterator over a block's events. See [`events`].
#[derive(Debug)]
pub struct Events<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<PackedEvent<'a>, BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.at == self.reader.block.len() {
            return None;
        }
        let event = self.reader.event();
        self.failed = event.is_err();
        Some(event)
    }
}

#[derive(Debug)]
struct Reader<'a> {
    block: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn event(&mut self) -> Result<PackedEvent<'a>, BlockError> {
        let seq = u64::from_le_bytes(self.array("seq")?);
        let at_us = i64::from_le_bytes(self.array("time")?);
        let session_len = usize::from(u16::from_le_bytes(self.array("session length")?));
        let session = self.text(session_len, "session id")?;
        let kind_len = usize::from(u8::from_le_bytes(self.array("kind length")?));
        let kind = self.text(kind_len, "kind")?;
        let body_len = u32::from_le_bytes(self.array("body length")?);
        let body_len = usize::try_from(body_len).map_err(|_| self.error("body length"))?;
        let body = self.text(body_len, "body")?;
        let hash = self.array("hash")?;
        Ok(PackedEvent {
            seq,
            at_us,
            session,
            kind,
            body,
            hash,
        })
    }

    fn error(&self, what: &'static str) -> BlockError {
        BlockError {
            offset: self.at,
            what,
        }
    }

    fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], BlockError> {
        let end = self.at.checked_add(len);
        let Some(bytes) = end.and_then(|end| self.block.get(self.at..end)) else {
            return Err(self.error(what));
        };
        self.at += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], BlockError> {
        let bytes = self.bytes(N, what)?;
        // `bytes` is exactly N long.
        bytes.try_into().map_err(|_| self.error(what))
    }

    fn text(&mut self, len: usize, what: &'static str) -> Result<&'a str, BlockError> {
        let start = self.at;
        let bytes = self.bytes(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| BlockError { offset: start, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, body: &'static str) -> PackedEvent<'static> {
        PackedEvent {
            seq,
            at_us: -5 + i64::try_from(seq).unwrap(),
            session: "a216c4a2a8dc8b3d",
            kind: "statement",
            body,
            hash: [u8::try_from(seq).unwrap(); 32],
        }
    }

    #[test]
    fn events_come_back_as_packed() {
        let packed = [
            sample(1, "{}"),
            sample(2, ""),
            sample(3, "{\"text\":\"ünïcode\"}"),
        ];
        let mut block = Vec::new();
        for e in &packed {
            push(&mut block, e).unwrap();
        }
        let decoded: Vec<_> = events(&block).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, packed);
        assert_eq!(events(&[]).count(), 0);
    }

    #[test]
    fn every_truncation_and_bad_text_is_an_error_never_a_panic() {
        let mut block = Vec::new();
        push(&mut block, &sample(1, "{\"a\":1}")).unwrap();
        push(&mut block, &sample(2, "{\"b\":2}")).unwrap();
        let first_len = block.len() / 2;
        for cut in 0..block.len() {
            let results: Vec<_> = events(&block[..cut]).collect();
            let complete = usize::from(cut >= first_len) + usize::from(cut == block.len());
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                complete,
                "cut at {cut}"
            );
            if cut != 0 && cut != first_len {
                let error = results.last().unwrap().as_ref().unwrap_err();
                assert!(error.offset <= cut, "cut at {cut}: {error}");
            }
        }
        // A body byte that is not UTF-8.
        let body_at = block.iter().position(|&b| b == b'{').unwrap();
        block[body_at] = 0xff;
        let error = events(&block).next().unwrap().unwrap_err();
        assert_eq!((error.offset, error.what), (body_at, "body"));
    }

    #[test]
    fn oversized_fields_are_refused() {
        let long = "x".repeat(70_000);
        let event = PackedEvent {
            session: &long,
            ..sample(1, "{}")
        };
        assert!(push(&mut Vec::new(), &event).is_err());
    }
}
