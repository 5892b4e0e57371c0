//! Reading whole messages during the handshake phases, where messages are few and small.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::{HEADER_LEN, Header, WireError, startup};

/// A failure to read a message: the connection broke, or the bytes were not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("protocol violation: {0}")]
    Wire(#[from] WireError),
}

/// Reads one typed message (tag, body), refusing bodies over `limit` bytes before reading them.
pub async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
) -> Result<(u8, Vec<u8>), ReadError> {
    let mut head = [0u8; HEADER_LEN];
    read_exact(stream, &mut head).await?;
    let header = Header::parse(&head)?.ok_or(WireError::Truncated { needed: HEADER_LEN })?;
    if header.body_len > limit {
        return Err(WireError::TooLarge {
            len: header.body_len,
            limit,
        }
        .into());
    }
    let mut body = vec![0u8; header.body_len];
    read_exact(stream, &mut body).await?;
    Ok((header.tag, body))
}

/// Reads one untyped startup packet and returns its body (after the length word).
pub async fn read_startup_packet<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ReadError> {
    let mut len = [0u8; 4];
    read_exact(stream, &mut len).await?;
    let total = startup::packet_len(len)?;
    let mut body = vec![0u8; total - 4];
    read_exact(stream, &mut body).await?;
    Ok(body)
}

async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), ReadError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Closed),
        Err(e) => Err(ReadError::Io(e)),
    }
}
