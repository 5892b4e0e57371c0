//! Queries the gateway runs for itself on upstream connections of its own, never on a client's session:
//! masking's catalog lookups and approvals' impact previews. One exchange: the encoded messages out,
//! everything back until ReadyForQuery.

use tokio::io::AsyncWriteExt;

use crate::io::{ReadError, read_message};
use crate::stream::UpstreamStream;
use crate::wire::backend::{self, BackendMessage};
use crate::wire::{put_cstr, put_message};

/// What the server answered: rows as text (lossy UTF-8; `None` is NULL), command tags, the first error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub rows: Vec<Vec<Option<String>>>,
    pub tags: Vec<String>,
    pub error: Option<String>,
}

/// A simple-protocol Query: the text may hold several statements.
pub fn simple(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 8);
    put_message(&mut out, b'Q', |b| put_cstr(b, sql));
    out
}

/// One statement through the extended protocol (Parse, Bind, Execute, Sync; no parameters, text
/// results). The server refuses a text with several statements here, so a preview can never run a
/// second statement hidden in the text.
pub fn extended(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 64);
    put_message(&mut out, b'P', |b| {
        put_cstr(b, "");
        put_cstr(b, sql);
        b.extend_from_slice(&0i16.to_be_bytes());
    });
    put_message(&mut out, b'B', |b| {
        put_cstr(b, "");
        put_cstr(b, "");
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
    });
    put_message(&mut out, b'E', |b| {
        put_cstr(b, "");
        b.extend_from_slice(&0i32.to_be_bytes());
    });
    put_message(&mut out, b'S', |_| {});
    out
}

/// Sends `messages` (ending in a Query or a Sync) and reads the answer up to ReadyForQuery; messages
/// over `max_message` bytes are refused.
pub async fn exchange(
    stream: &mut UpstreamStream,
    messages: &[u8],
    max_message: usize,
) -> Result<Reply, ReadError> {
    stream.write_all(messages).await?;
    stream.flush().await?;
    let mut reply = Reply::default();
    loop {
        let (tag, body) = read_message(stream, max_message).await?;
        match backend::decode(tag, &body)? {
            BackendMessage::DataRow(cells) => reply.rows.push(
                cells
                    .iter()
                    .map(|c| c.map(|v| String::from_utf8_lossy(v).into_owned()))
                    .collect(),
            ),
            BackendMessage::CommandComplete { tag } => reply.tags.push(tag.to_owned()),
            BackendMessage::ErrorResponse(fields) if reply.error.is_none() => {
                reply.error = Some(fields.get(b'M').unwrap_or("error").to_owned());
            }
            BackendMessage::ReadyForQuery { .. } => return Ok(reply),
            _ => {}
        }
    }
}
