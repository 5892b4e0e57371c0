//! `Scanner`: finds message boundaries in a byte stream without assembling messages.

use super::{HEADER_LEN, Header, WireError};

/// What to do with a message whose header the scanner just found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Pass,
    /// Forward nothing from this message on.
    StopBefore,
    /// Forward this message, then stop.
    StopAfter,
}

/// The outcome of scanning a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// How many leading bytes may be forwarded now.
    pub forward: usize,
    /// Whether a visit asked to stop (the stop point is `forward`).
    pub stopped: bool,
}

/// Tracks message boundaries in a byte stream without assembling messages: only the 5-byte header
/// must be contiguous, so a message of any size passes through in pieces.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Body bytes of the current message not yet passed.
    remaining: usize,
    /// Stop once the current message has passed.
    stop_after_current: bool,
}

impl Scanner {
    /// Whether every byte passed so far ends on a message boundary.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Scans `buf` (bytes not yet forwarded; it starts at the scanner's position) and calls `visit` for
    /// each message header found. Bytes of an incomplete header at the end are held back.
    pub fn scan(
        &mut self,
        buf: &[u8],
        mut visit: impl FnMut(Header) -> Result<Visit, WireError>,
    ) -> Result<Scan, WireError> {
        let mut pos = 0;
        loop {
            if self.remaining > 0 {
                let take = self.remaining.min(buf.len() - pos);
                pos += take;
                self.remaining -= take;
                if self.remaining > 0 {
                    return Ok(Scan {
                        forward: pos,
                        stopped: false,
                    });
                }
            }
            if self.stop_after_current {
                return Ok(Scan {
                    forward: pos,
                    stopped: true,
                });
            }
            let rest = buf.get(pos..).unwrap_or_default();
            let Some(header) = Header::parse(rest)? else {
                return Ok(Scan {
                    forward: pos,
                    stopped: false,
                });
            };
            match visit(header)? {
                Visit::Pass => {}
                Visit::StopBefore => {
                    return Ok(Scan {
                        forward: pos,
                        stopped: true,
                    });
                }
                Visit::StopAfter => self.stop_after_current = true,
            }
            pos += HEADER_LEN;
            self.remaining = header.body_len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn partial_header_is_held_back_and_bodies_stream() {
        let mut stream = message(b'D', &[7; 10]);
        stream.extend_from_slice(&message(b'C', b"SELECT 1\0"));
        let mut scanner = Scanner::default();
        let mut tags = Vec::new();
        // Feed one byte at a time: every byte is eventually forwarded exactly once.
        let mut pending: Vec<u8> = Vec::new();
        let mut forwarded = 0;
        for byte in &stream {
            pending.push(*byte);
            let scan = scanner
                .scan(&pending, |h| {
                    tags.push(h.tag);
                    Ok(Visit::Pass)
                })
                .unwrap();
            forwarded += scan.forward;
            pending.drain(..scan.forward);
        }
        assert_eq!(forwarded, stream.len());
        assert_eq!(tags, vec![b'D', b'C']);
        assert!(scanner.at_boundary());
    }

    #[test]
    fn stop_before_and_after() {
        let mut stream = message(b'Q', b"select 1\0");
        stream.extend_from_slice(&message(b'X', b""));
        stream.extend_from_slice(&message(b'Q', b"ignored\0"));
        // Terminate is forwarded, then nothing; an expiry stops before the message it meets.
        for (at_terminate, forward) in [(Visit::StopAfter, 14 + 5), (Visit::StopBefore, 14)] {
            let mut scanner = Scanner::default();
            let visit = |h: Header| Ok(if h.tag == b'X' { at_terminate } else { Visit::Pass });
            let scan = scanner.scan(&stream, visit).unwrap();
            assert_eq!(
                scan,
                Scan {
                    forward,
                    stopped: true
                }
            );
        }
    }

    #[test]
    fn bad_length_is_an_error() {
        let mut scanner = Scanner::default();
        assert!(scanner.scan(&[b'Q', 0, 0, 0, 3], |_| Ok(Visit::Pass)).is_err());
        let mut scanner = Scanner::default();
        assert!(scanner.scan(&[b'Q', 0xff, 0, 0, 0], |_| Ok(Visit::Pass)).is_err());
    }
}
