//! Typed messages sent by the client (frontend) after the startup packet, decoded from untrusted bytes.

use super::{Cursor, WireError};

/// One frontend message. Borrowed from the receive buffer; nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// `Q`: a simple-protocol query string (may hold several statements).
    Query { sql: &'a str },
    /// `P`: prepare a statement, named or unnamed (`""`).
    Parse {
        statement: &'a str,
        sql: &'a str,
        param_types: Vec<u32>,
    },
    /// `B`: bind parameters to a prepared statement, creating a portal.
    Bind {
        portal: &'a str,
        statement: &'a str,
        param_formats: Vec<i16>,
        params: Vec<Option<&'a [u8]>>,
        result_formats: Vec<i16>,
    },
    /// `D`: describe a statement (`S`) or a portal (`P`).
    Describe { target: u8, name: &'a str },
    /// `E`: run a portal, up to `max_rows` rows (0 means all).
    Execute { portal: &'a str, max_rows: i32 },
    /// `C`: close a statement (`S`) or a portal (`P`).
    Close { target: u8, name: &'a str },
    /// `S`: end of an extended-protocol batch.
    Sync,
    /// `H`: ask the server to flush its output.
    Flush,
    /// `X`: the client is leaving.
    Terminate,
    /// `d`: a chunk of COPY FROM STDIN data.
    CopyData(&'a [u8]),
    /// `c`: COPY FROM STDIN is complete.
    CopyDone,
    /// `f`: the client aborts COPY FROM STDIN.
    CopyFail { message: &'a str },
    /// `p`: PasswordMessage, SASLInitialResponse or SASLResponse: which one depends on the auth exchange.
    Password(&'a [u8]),
    /// `F`: the legacy function-call sub-protocol.
    FunctionCall(&'a [u8]),
}

/// Decodes one frontend message body given its tag.
pub fn decode(tag: u8, body: &[u8]) -> Result<FrontendMessage<'_>, WireError> {
    let mut c = Cursor::new(body);
    let message = match tag {
        b'Q' => FrontendMessage::Query { sql: c.cstr()? },
        b'P' => {
            let statement = c.cstr()?;
            let sql = c.cstr()?;
            let n = c.count16()?;
            let param_types = (0..n).map(|_| c.u32()).collect::<Result<_, _>>()?;
            FrontendMessage::Parse {
                statement,
                sql,
                param_types,
            }
        }
        b'B' => {
            let portal = c.cstr()?;
            let statement = c.cstr()?;
            let n = c.count16()?;
            let param_formats = (0..n).map(|_| c.i16()).collect::<Result<_, _>>()?;
            let n = c.count16()?;
            let params = (0..n).map(|_| c.value32()).collect::<Result<_, _>>()?;
            let n = c.count16()?;
            let result_formats = (0..n).map(|_| c.i16()).collect::<Result<_, _>>()?;
            FrontendMessage::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }
        }
        b'D' => FrontendMessage::Describe {
            target: statement_or_portal(&mut c)?,
            name: c.cstr()?,
        },
        b'E' => FrontendMessage::Execute {
            portal: c.cstr()?,
            max_rows: c.i32()?,
        },
        b'C' => FrontendMessage::Close {
            target: statement_or_portal(&mut c)?,
            name: c.cstr()?,
        },
        b'S' => FrontendMessage::Sync,
        b'H' => FrontendMessage::Flush,
        b'X' => FrontendMessage::Terminate,
        b'd' => return Ok(FrontendMessage::CopyData(body)),
        b'c' => FrontendMessage::CopyDone,
        b'f' => FrontendMessage::CopyFail { message: c.cstr()? },
        b'p' => return Ok(FrontendMessage::Password(body)),
        b'F' => return Ok(FrontendMessage::FunctionCall(body)),
        _ => return Err(WireError::Invalid("unknown frontend message type")),
    };
    if c.is_empty() {
        Ok(message)
    } else {
        Err(WireError::Invalid("trailing bytes in frontend message"))
    }
}

/// The cleartext password carried by a PasswordMessage body: a NUL-terminated string.
pub fn password(body: &[u8]) -> Result<&str, WireError> {
    let mut c = Cursor::new(body);
    let value = c.cstr()?;
    if c.is_empty() {
        Ok(value)
    } else {
        Err(WireError::Invalid("trailing bytes after password"))
    }
}

fn statement_or_portal(c: &mut Cursor<'_>) -> Result<u8, WireError> {
    match c.u8()? {
        t @ (b'S' | b'P') => Ok(t),
        _ => Err(WireError::Invalid("describe/close target must be 'S' or 'P'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_extended_protocol() {
        let parse = b"s1\0select $1\0\0\x01\0\0\0\x17";
        assert_eq!(
            decode(b'P', parse),
            Ok(FrontendMessage::Parse {
                statement: "s1",
                sql: "select $1",
                param_types: vec![23]
            })
        );
        let bind = b"\0s1\0\0\0\0\x02\0\0\0\x011\xff\xff\xff\xff\0\0";
        let FrontendMessage::Bind { params, .. } = decode(b'B', bind).unwrap() else {
            panic!()
        };
        assert_eq!(params, vec![Some(&b"1"[..]), None]);
        assert_eq!(
            decode(b'E', b"\0\0\0\0\0"),
            Ok(FrontendMessage::Execute {
                portal: "",
                max_rows: 0
            })
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(b'Q', b"no terminator").is_err());
        assert!(decode(b'P', b"s\0q\0\xff\xff").is_err());
        assert!(decode(b'B', b"\0\0\0\x01\0\0\0\x01\x7f\xff\xff\xff").is_err());
        assert!(decode(b'D', b"Z\0").is_err());
        assert!(decode(b'S', b"x").is_err());
        assert!(decode(b'?', b"").is_err());
    }
}
