//! The relay of an authenticated session: frames flow both ways untouched, with back-pressure, bounded
//! memory, and message-boundary-aware endings (token expiry, protocol violations, Terminate).

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::inspect::{Inspector, MAX_HELD_SERVER_MESSAGE, Shared, Statement, Verdict};
use crate::mask::{ClientEvents, MaskError, SessionMask};
use crate::results::ResultSink;
use crate::stream::{ClientStream, UpstreamStream};
use crate::wire::backend::{self, BackendMessage, GatewayError};
use crate::wire::scanner::{Scanner, Visit};
use crate::wire::{HEADER_LEN, WireError};

/// Bytes read per call. Two buffers of this size (plus TLS records) bound a session's relay memory:
/// messages larger than this stream through in pieces rather than being assembled.
const CHUNK: usize = 64 * 1024;

/// The largest server message shown whole to a [`ResultSink`]; larger ones stream past it unseen.
const MAX_RECORDED_MESSAGE: usize = 1024 * 1024;

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

/// Why the gateway ends a session from outside the relay (an operator's kill, a revoked identity).
#[derive(Debug, Clone)]
pub struct Stop {
    /// A short label for logs, metrics and the audit trail (`killed`, `revoked`).
    pub label: &'static str,
    /// What the client is told, at the next message boundary.
    pub error: GatewayError,
}

/// The ways a session can be ended while it runs: its deadline, or a stop sent by the gateway.
#[derive(Debug, Default)]
pub struct Endings {
    pub deadline: Option<Deadline>,
    pub stop: Option<tokio::sync::oneshot::Receiver<Stop>>,
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
    /// The gateway stopped the session (see [`Stop`]); the client was told why.
    Stopped(&'static str),
    /// The client broke the protocol; it was told why.
    ClientViolation(WireError),
    /// The server broke the protocol.
    UpstreamViolation(WireError),
    /// A result could not be masked, so the session ended rather than pass it in clear; the client was
    /// told why.
    Masking(MaskError),
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
            SessionEnd::Stopped(label) => label,
            SessionEnd::ClientViolation(_) => "client_protocol_violation",
            SessionEnd::UpstreamViolation(_) => "upstream_protocol_violation",
            SessionEnd::Masking(_) => "masking_failed",
            SessionEnd::ClientIo(_) => "client_io_error",
            SessionEnd::UpstreamIo(_) => "upstream_io_error",
        }
    }
}

/// Relays a session until either side ends it, the deadline passes or the gateway stops it. Every Query,
/// Parse and FunctionCall (and Bind, if asked) is shown to `inspector` first (unless it is disabled); the
/// server's messages that `results` wants are shown to it whole, after `masking` rewrote them;
/// `server_params` are the ParameterStatus values the server reported at login.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the session; grouping them would hide that
pub async fn run<I: Inspector, R: ResultSink>(
    client: ClientStream,
    upstream: UpstreamStream,
    endings: Endings,
    limits: RelayLimits,
    meters: &Meters,
    inspector: &mut I,
    results: &mut R,
    masking: Option<SessionMask>,
    server_params: &[(String, String)],
) -> SessionEnd {
    let standard_strings = server_params
        .iter()
        .find(|(name, _)| name == "standard_conforming_strings")
        .is_none_or(|(_, value)| value == "on");
    let shared = Shared::new(standard_strings);
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    let (masking, events) = match masking {
        Some(mask) => {
            let events = mask.client_events();
            (Some(mask), Some(events))
        }
        None => (None, None),
    };
    let end = {
        let watch = inspector.enabled();
        let up = client_to_upstream(
            &mut client_rx,
            &mut upstream_tx,
            limits,
            meters,
            inspector,
            &shared,
            events.as_ref(),
        );
        let down = upstream_to_client(
            &mut upstream_rx,
            &mut client_tx,
            endings,
            meters,
            &shared,
            watch,
            results,
            masking,
        );
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

async fn client_to_upstream<R, W, I>(
    from: &mut R,
    to: &mut W,
    limits: RelayLimits,
    meters: &Meters,
    inspector: &mut I,
    shared: &Shared,
    events: Option<&ClientEvents>,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    I: Inspector,
{
    let inspecting = inspector.enabled();
    let binds = inspecting && inspector.binds();
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut scanner = Scanner::default();
    // Leading bytes of `buf` already cleared for forwarding: they go out in one write per read.
    let mut ready = 0;
    // Query, Sync and FunctionCall messages sent: each is answered by exactly one ReadyForQuery.
    let mut batches: u64 = 0;
    loop {
        if let Err(end) = read_more(from, &mut buf, meters).await {
            return end;
        }
        loop {
            let mut held = None;
            let scan = scanner.scan(buf.get(ready..).unwrap_or_default(), |header| {
                if header.tag != b'd' && header.body_len > limits.max_client_message {
                    return Err(WireError::TooLarge {
                        len: header.body_len,
                        limit: limits.max_client_message,
                    });
                }
                Ok(match header.tag {
                    b'X' => Visit::StopAfter,
                    b'Q' | b'P' | b'F' if inspecting => {
                        held = Some(header);
                        Visit::StopBefore
                    }
                    b'B' if binds => {
                        held = Some(header);
                        Visit::StopBefore
                    }
                    tag if events.is_some() && ClientEvents::wants(tag) => {
                        held = Some(header);
                        Visit::StopBefore
                    }
                    tag => {
                        if tag == b'S' {
                            batches += 1;
                        }
                        if let Some(events) = events {
                            events.sent_tag(tag);
                        }
                        Visit::Pass
                    }
                })
            });
            let scan = match scan {
                Ok(scan) => scan,
                Err(e) => return SessionEnd::ClientViolation(e),
            };
            ready += scan.forward;
            let Some(header) = held else {
                if scan.stopped {
                    return match forward(to, &mut buf, ready).await {
                        Ok(()) => SessionEnd::ClientTerminated,
                        Err(e) => SessionEnd::UpstreamIo(e),
                    };
                }
                break;
            };
            // A statement message: complete it (its size is bounded by the limit checked above), decide.
            let total = HEADER_LEN + header.body_len;
            if buf.len() < ready + total {
                if let Err(e) = forward(to, &mut buf, ready).await {
                    return SessionEnd::UpstreamIo(e);
                }
                ready = 0;
                while buf.len() < total {
                    if let Err(end) = read_more(from, &mut buf, meters).await {
                        return end;
                    }
                }
            }
            let body = buf.get(ready + HEADER_LEN..ready + total).unwrap_or_default();
            let inspect = match header.tag {
                b'Q' | b'P' | b'F' => inspecting,
                b'B' => binds,
                _ => false,
            };
            // A message held only so masking can pair the server's replies with what was sent is
            // forwarded as it is; a statement is decided, and a refused one replaced by its stand-in.
            let stand_in = if inspect {
                let statement = match Statement::decode(header.tag, body) {
                    Ok(statement) => statement,
                    Err(e) => return SessionEnd::ClientViolation(e),
                };
                // The batch whose ReadyForQuery answers this message: a Query or FunctionCall is its
                // own, a Parse or Bind belongs to the next Sync.
                let batch = batches + 1;
                if matches!(header.tag, b'Q' | b'F') {
                    batches = batch;
                }
                match inspector.inspect(&statement, shared.state(batch)).await {
                    Verdict::Forward => None,
                    // The stand-in has the reply shape of a failing Parse (for Parse and Bind) or of a
                    // Query (for Query and FunctionCall).
                    Verdict::Refuse(error) => Some(shared.refuse(&statement, error, batch)),
                }
            } else {
                None
            };
            match stand_in {
                None => {
                    if let Some(events) = events
                        && let Err(e) = events.sent(header.tag, body)
                    {
                        return SessionEnd::ClientViolation(e);
                    }
                    ready += total;
                }
                Some(stand_in) => {
                    if let Some(events) = events {
                        events.refused(header.tag);
                    }
                    if let Err(e) = forward(to, &mut buf, ready).await {
                        return SessionEnd::UpstreamIo(e);
                    }
                    ready = 0;
                    buf.advance(total);
                    if let Err(e) = write_all(to, &stand_in).await {
                        return SessionEnd::UpstreamIo(e);
                    }
                }
            }
        }
        if let Err(e) = forward(to, &mut buf, ready).await {
            return SessionEnd::UpstreamIo(e);
        }
        ready = 0;
    }
}

/// Reads at least one more byte from the client into `buf`.
async fn read_more<R: AsyncRead + Unpin>(
    from: &mut R,
    buf: &mut BytesMut,
    meters: &Meters,
) -> Result<(), SessionEnd> {
    buf.reserve(CHUNK);
    match from.read_buf(buf).await {
        Ok(0) => Err(SessionEnd::ClientDisconnected),
        Ok(n) => {
            meters.bytes_from_client.increment(n as u64);
            Ok(())
        }
        Err(e) => Err(SessionEnd::ClientIo(e)),
    }
}

/// The server-to-client direction. When `watch` is set (statements are inspected) it also follows
/// `standard_conforming_strings` and swaps the server's errors for stand-ins with the gateway's own. With
/// `masking`, rows, errors and notices are rewritten before the client and `results` see them.
#[allow(clippy::too_many_arguments)] // the relay's two directions share these; see `run`
async fn upstream_to_client<R, W, S>(
    from: &mut R,
    to: &mut W,
    endings: Endings,
    meters: &Meters,
    shared: &Shared,
    watch: bool,
    results: &mut S,
    mut masking: Option<SessionMask>,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: ResultSink,
{
    let mut buf = BytesMut::with_capacity(CHUNK);
    // What goes to the client ahead of `buf[..ready]` once a message was rewritten in this chunk: the
    // cleared bytes before it and its replacement, so a chunk still leaves in one write.
    let mut out: Vec<u8> = Vec::new();
    let mut scanner = Scanner::default();
    // Set when the session must end at the next message boundary, with what the client is told.
    let mut ending: Option<(GatewayError, SessionEnd)> = None;
    let mut ready = 0;
    let mut batches_done: u64 = 0;
    let Endings { deadline, stop } = endings;
    // One timer for the whole session: re-arming a sleep on every read would cost a timer-wheel entry
    // per chunk on the hot path.
    let expiry = sleep_until(deadline.as_ref().map(|d| d.at));
    tokio::pin!(expiry);
    let stopped = stop_signal(stop);
    tokio::pin!(stopped);
    loop {
        buf.reserve(CHUNK);
        let read = tokio::select! {
            read = from.read_buf(&mut buf) => Some(read),
            () = &mut expiry, if ending.is_none() => {
                if let Some(d) = &deadline {
                    ending = Some((d.error.clone(), SessionEnd::DeadlineReached));
                }
                None
            }
            stop = &mut stopped, if ending.is_none() => {
                ending = Some((stop.error, SessionEnd::Stopped(stop.label)));
                None
            }
        };
        match read {
            Some(Ok(0)) => return SessionEnd::UpstreamClosed,
            Some(Ok(_)) | None => {}
            Some(Err(e)) => return SessionEnd::UpstreamIo(e),
        }
        let recording = results.enabled();
        loop {
            let mut held = None;
            let scan = scanner.scan(buf.get(ready..).unwrap_or_default(), |header| {
                if ending.is_some() {
                    return Ok(Visit::StopBefore);
                }
                let for_sink = recording
                    && header.body_len <= MAX_RECORDED_MESSAGE
                    && results.wants(header.tag, header.body_len);
                let for_relay = watch
                    && header.body_len <= MAX_HELD_SERVER_MESSAGE
                    && (header.tag == b'S' || (header.tag == b'E' && shared.awaiting()));
                let for_mask = masking.as_mut().is_some_and(|m| m.wants(header.tag));
                if for_sink || for_relay || for_mask {
                    held = Some((header, for_sink, for_mask));
                    return Ok(Visit::StopBefore);
                }
                if let Some(mask) = masking.as_mut() {
                    mask.passed(header.tag);
                }
                passed(header.tag, meters, shared, &mut batches_done);
                Ok(Visit::Pass)
            });
            let scan = match scan {
                Ok(scan) => scan,
                Err(e) => return SessionEnd::UpstreamViolation(e),
            };
            ready += scan.forward;
            let Some((header, for_sink, for_mask)) = held else {
                break;
            };
            let total = HEADER_LEN + header.body_len;
            if let Some(mask) = masking.as_ref()
                && for_mask
                && header.tag == b'D'
                && let Err(error) = mask.admit_row(header.body_len)
            {
                return end_unmasked(to, &mut out, &mut buf, ready, meters, error).await;
            }
            if buf.len() < ready + total {
                // The rest of this message is still on its way: send what is cleared, read more.
                break;
            }
            let body = buf.get(ready + HEADER_LEN..ready + total).unwrap_or_default();
            passed(header.tag, meters, shared, &mut batches_done);
            // Where a masked DataRow starts in `out`: the bytes cleared before it and the row itself were
            // written there by the masker.
            let mut rewritten = None;
            // What the client receives instead of this message, if anything.
            let mut replacement = match header.tag {
                b'S' => {
                    if let Ok(BackendMessage::ParameterStatus { name, value }) = backend::decode(b'S', body)
                        && name == "standard_conforming_strings"
                    {
                        shared.set_standard_conforming_strings(value == "on");
                    }
                    None
                }
                b'E' if watch && shared.awaiting() => shared.replacement(body).map(|e| e.to_bytes()),
                _ => None,
            };
            if let Some(mask) = masking.as_mut() {
                if for_mask && header.tag == b'D' {
                    let cleared = buf.get(..ready).unwrap_or_default();
                    match mask.data_row(cleared, body, &mut out) {
                        Ok(at) => rewritten = at,
                        Err(error) => {
                            return end_unmasked(to, &mut out, &mut buf, ready, meters, error).await;
                        }
                    }
                } else if for_mask {
                    // The gateway's own stand-in errors hold nothing to mask, but the pairing must see them.
                    match mask.message(header.tag, body).await {
                        Ok(masked) => replacement = replacement.or(masked),
                        Err(error) => {
                            return end_unmasked(to, &mut out, &mut buf, ready, meters, error).await;
                        }
                    }
                } else {
                    mask.passed(header.tag);
                }
            }
            // Masked values are counted once per statement, before the message that ends it.
            if matches!(header.tag, b'C' | b'E' | b'I' | b's' | b'Z')
                && let Some(mask) = masking.as_mut()
            {
                let counts = mask.take_counts();
                if !counts.is_empty() {
                    results.masked(&counts);
                }
            }
            if for_sink {
                // The sink sees what the client sees: the gateway's error in place of a stand-in's, masked
                // values in place of the server's.
                let seen = match rewritten {
                    Some(at) => out.get(at + HEADER_LEN..).unwrap_or_default(),
                    None => replacement
                        .as_ref()
                        .and_then(|r| r.get(HEADER_LEN..))
                        .unwrap_or(body),
                };
                results.message(header.tag, seen);
            }
            match replacement {
                _ if rewritten.is_some() => {
                    buf.advance(ready + total);
                    ready = 0;
                }
                None => ready += total,
                Some(message) => {
                    out.extend_from_slice(buf.get(..ready).unwrap_or_default());
                    out.extend_from_slice(&message);
                    buf.advance(ready + total);
                    ready = 0;
                }
            }
        }
        if let Err(e) = send(to, &mut out, &mut buf, ready, meters).await {
            return SessionEnd::ClientIo(e);
        }
        ready = 0;
        // Everything forwarded so far ends on a message boundary: the error cannot split a message.
        if scanner.at_boundary()
            && let Some((error, end)) = ending.take()
        {
            let _ = to.write_all(&error.to_bytes()).await;
            let _ = to.flush().await;
            return end;
        }
    }
}

/// Sends the staged output and the first `ready` bytes of `buf`, in one write.
async fn send<W: AsyncWrite + Unpin>(
    to: &mut W,
    out: &mut Vec<u8>,
    buf: &mut BytesMut,
    ready: usize,
    meters: &Meters,
) -> io::Result<()> {
    if out.is_empty() {
        meters.bytes_to_client.increment(ready as u64);
        return forward(to, buf, ready).await;
    }
    out.extend_from_slice(buf.get(..ready).unwrap_or_default());
    buf.advance(ready);
    meters.bytes_to_client.increment(out.len() as u64);
    let result = write_all(to, out).await;
    out.clear();
    result
}

/// A message could not be masked: what came before it goes out, then the session ends with the reason.
async fn end_unmasked<W: AsyncWrite + Unpin>(
    to: &mut W,
    out: &mut Vec<u8>,
    buf: &mut BytesMut,
    ready: usize,
    meters: &Meters,
    error: MaskError,
) -> SessionEnd {
    if let Err(e) = send(to, out, buf, ready, meters).await {
        return SessionEnd::ClientIo(e);
    }
    let fatal = GatewayError::fatal(
        "XX000",
        format!("masking: {error}; the session ended so nothing passed unmasked"),
    );
    let _ = to.write_all(&fatal.to_bytes()).await;
    let _ = to.flush().await;
    SessionEnd::Masking(error)
}

/// Bookkeeping for a server message on its way to the client: statements finished, batches closed.
fn passed(tag: u8, meters: &Meters, shared: &Shared, batches_done: &mut u64) {
    match tag {
        b'C' => meters.statements.increment(1),
        b'Z' => {
            *batches_done += 1;
            if shared.awaiting() {
                shared.batch_done(*batches_done);
            }
        }
        _ => {}
    }
}

async fn stop_signal(stop: Option<tokio::sync::oneshot::Receiver<Stop>>) -> Stop {
    match stop {
        Some(rx) => match rx.await {
            Ok(stop) => stop,
            // The sender is gone: nobody can stop this session any more.
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn write_all<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8]) -> io::Result<()> {
    to.write_all(bytes).await?;
    to.flush().await
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
