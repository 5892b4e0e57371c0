//! The relay of an authenticated session: frames flow both ways untouched, with back-pressure, bounded
//! memory, and message-boundary-aware endings (token expiry, protocol violations, Terminate).

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::stream::{ClientStream, UpstreamStream};
use crate::wire::WireError;
use crate::wire::backend::GatewayError;
use crate::wire::scanner::{Scanner, Visit};

/// Bytes read per call. Two buffers of this size (plus TLS records) bound a session's relay memory:
/// messages larger than this stream through in pieces rather than being assembled.
const CHUNK: usize = 64 * 1024;

/// Terminate, sent upstream when the gateway ends a session, so the server releases it promptly.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// The largest client message body, except CopyData (which streams and is limited by the server).
    pub max_client_message: usize,
}

/// Counters the relay advances as bytes flow; the binary decides their names and labels.
#[derive(Debug, Clone)]
pub struct Meters {
    pub bytes_from_client: metrics::Counter,
    pub bytes_to_client: metrics::Counter,
    /// CommandComplete messages: statements that finished.
    pub statements: metrics::Counter,
}

/// A planned end of the session: at `at`, at the next message boundary, the client receives `error`.
#[derive(Debug, Clone)]
pub struct Deadline {
    pub at: Instant,
    pub error: GatewayError,
}

/// How a relayed session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client sent Terminate.
    ClientTerminated,
    /// The client closed the connection without Terminate (possibly mid-result).
    ClientDisconnected,
    /// The server closed the connection (after a FATAL error, a restart, or Terminate).
    UpstreamClosed,
    /// The deadline passed (token expiry); the client was told why.
    DeadlineReached,
    /// The client broke the protocol; it was told why.
    ClientViolation(WireError),
    /// The server broke the protocol.
    UpstreamViolation(WireError),
    ClientIo(io::Error),
    UpstreamIo(io::Error),
}

impl SessionEnd {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SessionEnd::ClientTerminated => "client_terminated",
            SessionEnd::ClientDisconnected => "client_disconnected",
            SessionEnd::UpstreamClosed => "upstream_closed",
            SessionEnd::DeadlineReached => "token_expired",
            SessionEnd::ClientViolation(_) => "client_protocol_violation",
            SessionEnd::UpstreamViolation(_) => "upstream_protocol_violation",
            SessionEnd::ClientIo(_) => "client_io_error",
            SessionEnd::UpstreamIo(_) => "upstream_io_error",
        }
    }
}

/// Relays a session until either side ends it or the deadline passes.
pub async fn run(
    client: ClientStream,
    upstream: UpstreamStream,
    deadline: Option<Deadline>,
    limits: RelayLimits,
    meters: &Meters,
) -> SessionEnd {
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    let end = {
        let up = client_to_upstream(&mut client_rx, &mut upstream_tx, limits, meters);
        let down = upstream_to_client(&mut upstream_rx, &mut client_tx, deadline, meters);
        tokio::select! {
            end = up => end,
            end = down => end,
        }
    };
    if let SessionEnd::ClientViolation(e) = &end {
        let error = GatewayError::fatal("08P01", format!("protocol violation: {e}"));
        let _ = client_tx.write_all(&error.to_bytes()).await;
    }
    if !matches!(end, SessionEnd::ClientTerminated | SessionEnd::UpstreamClosed) {
        let _ = upstream_tx.write_all(&TERMINATE).await;
    }
    let _ = upstream_tx.shutdown().await;
    let _ = client_tx.shutdown().await;
    end
}

async fn client_to_upstream<R, W>(
    from: &mut R,
    to: &mut W,
    limits: RelayLimits,
    meters: &Meters,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut scanner = Scanner::default();
    loop {
        buf.reserve(CHUNK);
        match from.read_buf(&mut buf).await {
            Ok(0) => return SessionEnd::ClientDisconnected,
            Ok(n) => meters.bytes_from_client.increment(n as u64),
            Err(e) => return SessionEnd::ClientIo(e),
        }
        let scan = scanner.scan(&buf, |header| {
            if header.tag != b'd' && header.body_len > limits.max_client_message {
                return Err(WireError::TooLarge {
                    len: header.body_len,
                    limit: limits.max_client_message,
                });
            }
            Ok(if header.tag == b'X' {
                Visit::StopAfter
            } else {
                Visit::Pass
            })
        });
        let scan = match scan {
            Ok(scan) => scan,
            Err(e) => return SessionEnd::ClientViolation(e),
        };
        if let Err(e) = forward(to, &mut buf, scan.forward).await {
            return SessionEnd::UpstreamIo(e);
        }
        if scan.stopped {
            return SessionEnd::ClientTerminated;
        }
    }
}

async fn upstream_to_client<R, W>(
    from: &mut R,
    to: &mut W,
    deadline: Option<Deadline>,
    meters: &Meters,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut scanner = Scanner::default();
    let mut expiring = false;
    // One timer for the whole session: re-arming a sleep on every read would cost a timer-wheel entry
    // per chunk on the hot path.
    let expiry = sleep_until(deadline.as_ref().map(|d| d.at));
    tokio::pin!(expiry);
    loop {
        buf.reserve(CHUNK);
        let read = tokio::select! {
            read = from.read_buf(&mut buf) => Some(read),
            () = &mut expiry, if !expiring => None,
        };
        match read {
            Some(Ok(0)) => return SessionEnd::UpstreamClosed,
            Some(Ok(_)) => {}
            Some(Err(e)) => return SessionEnd::UpstreamIo(e),
            None => expiring = true,
        }
        let scan = scanner.scan(&buf, |header| {
            if expiring {
                return Ok(Visit::StopBefore);
            }
            if header.tag == b'C' {
                meters.statements.increment(1);
            }
            Ok(Visit::Pass)
        });
        let scan = match scan {
            Ok(scan) => scan,
            Err(e) => return SessionEnd::UpstreamViolation(e),
        };
        meters.bytes_to_client.increment(scan.forward as u64);
        if let Err(e) = forward(to, &mut buf, scan.forward).await {
            return SessionEnd::ClientIo(e);
        }
        // Everything forwarded so far ends on a message boundary: the error cannot split a message.
        if expiring && scanner.at_boundary() {
            if let Some(deadline) = &deadline {
                let _ = to.write_all(&deadline.error.to_bytes()).await;
                let _ = to.flush().await;
            }
            return SessionEnd::DeadlineReached;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn forward<W: AsyncWrite + Unpin>(to: &mut W, buf: &mut BytesMut, n: usize) -> io::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let chunk = buf
        .get(..n)
        .ok_or_else(|| io::Error::other("scan past buffer end"))?;
    to.write_all(chunk).await?;
    to.flush().await?;
    buf.advance(n);
    Ok(())
}
