//! PostgreSQL wire format: message framing, the startup packet, and the messages the gateway reads or writes.
//!
//! Every decoder here takes untrusted bytes and returns a typed error instead of panicking; each has a
//! fuzz target under `crates/portcullis-postgres/fuzz/`.

pub mod backend;
pub mod frontend;
pub mod scanner;
pub mod startup;

mod cursor;

pub use cursor::Cursor;

use thiserror::Error;

/// The length of a typed message header: one tag byte and a 4-byte big-endian length that counts itself.
pub const HEADER_LEN: usize = 5;

/// A message the wire format does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("message truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("string is not NUL-terminated")]
    UnterminatedString,
    #[error("string is not valid UTF-8")]
    NotUtf8,
    #[error("{0}")]
    Invalid(&'static str),
}

/// The header of a typed message, parsed from its first five bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type byte, e.g. `b'Q'` for Query.
    pub tag: u8,
    /// Length of the body, excluding the tag and the length field itself.
    pub body_len: usize,
}

impl Header {
    /// Parses a header from the start of `bytes`. `Ok(None)` when fewer than five bytes are present.
    pub fn parse(bytes: &[u8]) -> Result<Option<Header>, WireError> {
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut cursor = Cursor::new(head);
        let tag = cursor.u8()?;
        let len = cursor.i32()?;
        if len < 4 {
            return Err(WireError::BadLength(i64::from(len)));
        }
        // `len >= 4` was just checked, so the conversion cannot fail; `try_from` keeps it panic-free.
        let body_len = usize::try_from(len - 4).map_err(|_| WireError::BadLength(i64::from(len)))?;
        Ok(Some(Header { tag, body_len }))
    }
}

/// One complete typed message found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub tag: u8,
    pub body: &'a [u8],
    /// Bytes the whole message occupies, header included.
    pub len: usize,
}

/// Splits one complete typed message off the front of `bytes`: `Ok(None)` when more bytes are needed.
pub fn split_message(bytes: &[u8], limit: usize) -> Result<Option<Frame<'_>>, WireError> {
    let Some(header) = Header::parse(bytes)? else {
        return Ok(None);
    };
    if header.body_len > limit {
        return Err(WireError::TooLarge {
            len: header.body_len,
            limit,
        });
    }
    let total = HEADER_LEN + header.body_len;
    match bytes.get(HEADER_LEN..total) {
        Some(body) => Ok(Some(Frame {
            tag: header.tag,
            body,
            len: total,
        })),
        None => Ok(None),
    }
}

/// Appends a typed message: tag, length, then whatever `body` writes.
pub fn put_message(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = u32::try_from(out.len() - len_at).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(len_at..len_at + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

/// Appends a NUL-terminated string.
pub fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}
