//! `Cursor`: bounds-checked reading of big-endian integers and C strings from an untrusted message body.

use super::WireError;

/// Reads values from a byte slice, failing with [`WireError`] instead of panicking when bytes run out.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated {
                needed: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A NUL-terminated UTF-8 string, without its terminator.
    pub fn cstr(&mut self) -> Result<&'a str, WireError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::UnterminatedString)?;
        let raw = self.bytes(end)?;
        self.bytes(1)?;
        std::str::from_utf8(raw).map_err(|_| WireError::NotUtf8)
    }

    /// A count-prefixed (i16) list, rejecting negative counts.
    pub fn count16(&mut self) -> Result<usize, WireError> {
        usize::try_from(self.i16()?).map_err(|_| WireError::Invalid("negative count"))
    }

    /// An i32 length-prefixed value; `None` for SQL NULL (-1).
    pub fn value32(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| WireError::Invalid("negative value length"))?;
        self.bytes(len).map(Some)
    }
}
