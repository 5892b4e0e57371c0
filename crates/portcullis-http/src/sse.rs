//! Server-sent events (`text/event-stream`) framed as a client reads them, for the filters that rewrite
//! them (masking, the MCP tool list): lines end with CRLF, LF or CR (a CR at the end of a chunk waits
//! for the next byte); a blank line ends an event; a UTF-8 byte order mark that opens the stream is not
//! part of the first line (WHATWG `EventSource` drops it: read as part of the line, it hid a `data:`
//! line from a filter that the client then read unfiltered). Each line keeps its own line end, so an
//! event passed on untouched is passed on byte for byte.

/// U+FEFF in UTF-8.
pub const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// What the framer read, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// The byte order mark that opened the stream, to be passed on first, as it came.
    ByteOrderMark,
    Event(Event),
}

/// One event: its lines, each with the line end it came with, and the line end of the blank line that
/// ended it; an empty `end` when the body ended first (a client discards such an event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub lines: Vec<(Vec<u8>, &'static [u8])>,
    pub end: &'static [u8],
}

impl Event {
    /// The value of each `data` field line, in order (after `data:` and one optional space).
    pub fn data(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().filter_map(|(line, _)| data_value(line))
    }

    /// The event's data as a client reads it: the `data` values joined by newlines; `None` without a
    /// `data` line.
    pub fn payload(&self) -> Option<Vec<u8>> {
        let mut data = self.data();
        let mut joined = data.next()?.to_vec();
        for more in data {
            joined.push(b'\n');
            joined.extend_from_slice(more);
        }
        Some(joined)
    }

    /// Writes the event as it came.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for (line, eol) in &self.lines {
            out.extend_from_slice(line);
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(self.end);
    }
}

/// The value of a `data` field line (after `data:` and one optional space); `None` for other lines.
pub fn data_value(line: &[u8]) -> Option<&[u8]> {
    if line == b"data" {
        return Some(b"");
    }
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// Reads a body in chunks into events, holding one event at a time, at most `max_event_bytes`.
#[derive(Debug)]
pub struct EventFramer {
    max_event_bytes: usize,
    /// The line being read.
    line: Vec<u8>,
    /// A line has ended, so a byte order mark can no longer open the stream.
    past_first_line: bool,
    /// The last line ended with CR, and the next byte decides whether it was CRLF.
    after_cr: bool,
    /// The current event.
    event: Event,
    held: usize,
}

impl EventFramer {
    pub fn new(max_event_bytes: usize) -> EventFramer {
        EventFramer {
            max_event_bytes,
            line: Vec::new(),
            past_first_line: false,
            after_cr: false,
            event: Event::default(),
            held: 0,
        }
    }

    /// Reads `chunk`, adding what it completes to `out`; an error when the event being read is longer
    /// than the bound.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Framed>) -> Result<(), String> {
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            let eol: &'static [u8] = if chunk.first() == Some(&b'\n') {
                chunk = chunk.get(1..).unwrap_or_default();
                b"\r\n"
            } else {
                b"\r"
            };
            self.end_line(eol, out);
        }
        while let Some(at) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let (head, tail) = chunk.split_at(at);
            self.line.extend_from_slice(head);
            self.bound()?;
            match tail {
                [b'\r', b'\n', rest @ ..] => {
                    chunk = rest;
                    self.end_line(b"\r\n", out);
                }
                // A CR at the end of a chunk: its line ends once the next byte is known.
                [b'\r'] => {
                    self.after_cr = true;
                    return Ok(());
                }
                [b'\r', rest @ ..] => {
                    chunk = rest;
                    self.end_line(b"\r", out);
                }
                [_, rest @ ..] => {
                    chunk = rest;
                    self.end_line(b"\n", out);
                }
                [] => return Ok(()),
            }
        }
        self.line.extend_from_slice(chunk);
        self.bound()
    }

    /// The body ended: a line and an event still open are added as they are, the event with an empty
    /// `end` (when it holds anything).
    pub fn finish(&mut self, out: &mut Vec<Framed>) {
        if self.after_cr {
            self.after_cr = false;
            self.end_line(b"\r", out);
        }
        self.pass_byte_order_mark(out);
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.event.lines.push((line, b""));
        }
        if !self.event.lines.is_empty() {
            self.held = 0;
            out.push(Framed::Event(std::mem::take(&mut self.event)));
        }
    }

    fn bound(&self) -> Result<(), String> {
        if self.held + self.line.len() > self.max_event_bytes {
            return Err(format!(
                "a server-sent event longer than {} bytes",
                self.max_event_bytes
            ));
        }
        Ok(())
    }

    /// Once the first line is whole: a byte order mark before it is taken off the line.
    fn pass_byte_order_mark(&mut self, out: &mut Vec<Framed>) {
        if std::mem::replace(&mut self.past_first_line, true) {
            return;
        }
        if self.line.starts_with(BYTE_ORDER_MARK) {
            out.push(Framed::ByteOrderMark);
            self.line.drain(..BYTE_ORDER_MARK.len());
        }
    }

    fn end_line(&mut self, eol: &'static [u8], out: &mut Vec<Framed>) {
        self.pass_byte_order_mark(out);
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.held = 0;
            let mut event = std::mem::take(&mut self.event);
            event.end = eol;
            out.push(Framed::Event(event));
        } else {
            self.held += line.len() + eol.len();
            self.event.lines.push((line, eol));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    fn frame(chunks: &[&[u8]]) -> Vec<Framed> {
        let mut framer = EventFramer::new(1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut out).unwrap();
        }
        framer.finish(&mut out);
        out
    }

    fn written(framed: &[Framed]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in framed {
            match piece {
                Framed::ByteOrderMark => out.extend_from_slice(BYTE_ORDER_MARK),
                Framed::Event(event) => event.write_to(&mut out),
            }
        }
        out
    }

    #[test]
    fn events_end_at_blank_lines_of_every_line_end() {
        let framed = frame(&[b"\xEF\xBB\xBFevent: a\r\ndata: 1\r\ndata:2\r\rdata\n\nid: 3"]);
        assert_eq!(framed[0], Framed::ByteOrderMark);
        let Framed::Event(first) = &framed[1] else {
            panic!("{framed:?}")
        };
        assert_eq!(first.lines.len(), 3);
        assert_eq!(first.end, b"\r");
        assert_eq!(first.payload().unwrap(), b"1\n2");
        let Framed::Event(second) = &framed[2] else {
            panic!("{framed:?}")
        };
        assert_eq!(second.payload().unwrap(), b"");
        let Framed::Event(last) = &framed[3] else {
            panic!("{framed:?}")
        };
        assert_eq!((last.end, last.payload()), (&b""[..], None));
    }

    #[test]
    fn a_longer_event_than_the_bound_is_an_error() {
        let mut framer = EventFramer::new(20);
        let mut out = Vec::new();
        framer.push(b"data: 0123456789\n", &mut out).unwrap();
        assert!(framer.push(b"data: 0123456789\n", &mut out).is_err());
    }

    proptest! {
        /// Whatever the bytes and wherever they are split, the events written as they came are the
        /// body, and a CR split from its LF is still one CRLF.
        #[test]
        fn framing_keeps_every_byte_at_every_split(
            body in proptest::collection::vec(prop_oneof![
                Just(b'\r'), Just(b'\n'), Just(b'd'), Just(b':'), Just(0xEF), Just(0xBB), Just(0xBF)
            ], 0..64),
            split in 0usize..64,
        ) {
            let split = split.min(body.len());
            let (a, b) = body.split_at(split);
            let framed = frame(&[a, b]);
            prop_assert_eq!(written(&framed), body.clone());
            prop_assert_eq!(framed, frame(&[&body]));
        }
    }
}
