//! Typed messages sent by the server (backend): decoders for what the gateway reads, encoders for what it writes.

use super::{Cursor, WireError, put_cstr, put_message};

/// One backend message, borrowed from the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// `R`: an authentication request or result.
    Authentication(Authentication<'a>),
    /// `S`: a run-time parameter's current value.
    ParameterStatus { name: &'a str, value: &'a str },
    /// `K`: the key a client needs to cancel a query of this session.
    BackendKeyData { process_id: i32, secret_key: &'a [u8] },
    /// `Z`: ready for a new query; the byte is the transaction status (`I`, `T` or `E`).
    ReadyForQuery { status: u8 },
    /// `E`: an error; the session ends after a FATAL one.
    ErrorResponse(Fields<'a>),
    /// `N`: a notice, passed through to the client.
    NoticeResponse(Fields<'a>),
    /// `v`: the server speaks an older minor version and names the options it did not recognise.
    NegotiateProtocolVersion {
        newest_minor: i32,
        unrecognized: Vec<&'a str>,
    },
    /// `T`: the columns of the rows that follow.
    RowDescription(Vec<Column<'a>>),
    /// `D`: one row; `None` is SQL NULL.
    DataRow(Vec<Option<&'a [u8]>>),
    /// `C`: a statement finished; the tag is e.g. `SELECT 3`.
    CommandComplete { tag: &'a str },
    /// Any other message, relayed without inspection.
    Other { tag: u8, body: &'a [u8] },
}

/// The `R` family of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    Ok,
    CleartextPassword,
    Md5Password {
        salt: [u8; 4],
    },
    Sasl {
        mechanisms: Vec<&'a str>,
    },
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
    /// Kerberos, GSS, SSPI: methods the gateway does not speak upstream.
    Unsupported(i32),
}

/// A column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column<'a> {
    pub name: &'a str,
    pub table_oid: u32,
    pub column_attr: i16,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
    pub format: i16,
}

/// The fields of an ErrorResponse or NoticeResponse: (field code, value) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields<'a>(pub Vec<(u8, &'a str)>);

impl<'a> Fields<'a> {
    /// The value of one field, e.g. `b'C'` for the SQLSTATE or `b'M'` for the message.
    pub fn get(&self, code: u8) -> Option<&'a str> {
        self.0.iter().find(|(c, _)| *c == code).map(|(_, v)| *v)
    }
}

/// Decodes one backend message body given its tag.
pub fn decode(tag: u8, body: &[u8]) -> Result<BackendMessage<'_>, WireError> {
    let mut c = Cursor::new(body);
    let message = match tag {
        b'R' => BackendMessage::Authentication(decode_authentication(&mut c)?),
        b'S' => BackendMessage::ParameterStatus {
            name: c.cstr()?,
            value: c.cstr()?,
        },
        b'K' => {
            let process_id = c.i32()?;
            let secret_key = c.remaining();
            c.bytes(secret_key.len())?;
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            }
        }
        b'Z' => BackendMessage::ReadyForQuery { status: c.u8()? },
        b'E' => BackendMessage::ErrorResponse(decode_fields(&mut c)?),
        b'N' => BackendMessage::NoticeResponse(decode_fields(&mut c)?),
        b'v' => {
            let newest_minor = c.i32()?;
            let n = usize::try_from(c.i32()?).map_err(|_| WireError::Invalid("negative count"))?;
            let unrecognized = (0..n).map(|_| c.cstr()).collect::<Result<_, _>>()?;
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            }
        }
        b'T' => {
            let n = c.count16()?;
            let columns = (0..n)
                .map(|_| {
                    Ok(Column {
                        name: c.cstr()?,
                        table_oid: c.u32()?,
                        column_attr: c.i16()?,
                        type_oid: c.u32()?,
                        type_size: c.i16()?,
                        type_modifier: c.i32()?,
                        format: c.i16()?,
                    })
                })
                .collect::<Result<_, WireError>>()?;
            BackendMessage::RowDescription(columns)
        }
        b'D' => {
            let n = c.count16()?;
            BackendMessage::DataRow((0..n).map(|_| c.value32()).collect::<Result<_, _>>()?)
        }
        b'C' => BackendMessage::CommandComplete { tag: c.cstr()? },
        _ => return Ok(BackendMessage::Other { tag, body }),
    };
    if c.is_empty() {
        Ok(message)
    } else {
        Err(WireError::Invalid("trailing bytes in backend message"))
    }
}

fn decode_authentication<'a>(c: &mut Cursor<'a>) -> Result<Authentication<'a>, WireError> {
    Ok(match c.i32()? {
        0 => Authentication::Ok,
        3 => Authentication::CleartextPassword,
        5 => Authentication::Md5Password { salt: c.array()? },
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let m = c.cstr()?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m);
            }
            Authentication::Sasl { mechanisms }
        }
        11 => Authentication::SaslContinue(c.bytes(c.remaining().len())?),
        12 => Authentication::SaslFinal(c.bytes(c.remaining().len())?),
        other => Authentication::Unsupported(other),
    })
}

fn decode_fields<'a>(c: &mut Cursor<'a>) -> Result<Fields<'a>, WireError> {
    let mut fields = Vec::new();
    loop {
        let code = c.u8()?;
        if code == 0 {
            return Ok(Fields(fields));
        }
        fields.push((code, c.cstr()?));
    }
}

/// How bad an error the gateway reports is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session continues.
    Error,
    /// The session ends.
    Fatal,
}

/// An ErrorResponse the gateway itself sends, in the client's own protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub severity: Severity,
    /// The SQLSTATE, e.g. `28000`.
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl GatewayError {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Appends the ErrorResponse message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let severity = match self.severity {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        };
        put_message(out, b'E', |b| {
            for (code, value) in [
                (b'S', severity),
                (b'V', severity),
                (b'C', self.code),
                (b'M', &self.message),
            ] {
                b.push(code);
                put_cstr(b, value);
            }
            if let Some(detail) = &self.detail {
                b.push(b'D');
                put_cstr(b, detail);
            }
            if let Some(hint) = &self.hint {
                b.push(b'H');
                put_cstr(b, hint);
            }
            b.push(0);
        });
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends an AuthenticationOk (`code` 0) or AuthenticationCleartextPassword (`code` 3) request.
pub fn put_authentication(out: &mut Vec<u8>, code: i32) {
    put_message(out, b'R', |b| b.extend_from_slice(&code.to_be_bytes()));
}

/// Appends a ParameterStatus.
pub fn put_parameter_status(out: &mut Vec<u8>, name: &str, value: &str) {
    put_message(out, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

/// Appends a BackendKeyData.
pub fn put_backend_key_data(out: &mut Vec<u8>, process_id: i32, secret_key: &[u8]) {
    put_message(out, b'K', |b| {
        b.extend_from_slice(&process_id.to_be_bytes());
        b.extend_from_slice(secret_key);
    });
}

/// Appends a ReadyForQuery with the given transaction status.
pub fn put_ready_for_query(out: &mut Vec<u8>, status: u8) {
    put_message(out, b'Z', |b| b.push(status));
}

/// Appends a NegotiateProtocolVersion naming the newest minor version and the options not recognised.
pub fn put_negotiate_protocol_version(out: &mut Vec<u8>, newest_minor: i32, unrecognized: &[&str]) {
    put_message(out, b'v', |b| {
        b.extend_from_slice(&newest_minor.to_be_bytes());
        let n = i32::try_from(unrecognized.len()).unwrap_or(i32::MAX);
        b.extend_from_slice(&n.to_be_bytes());
        for option in unrecognized {
            put_cstr(b, option);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::split_message;

    #[test]
    fn error_response_round_trip() {
        let bytes = GatewayError::fatal("28000", "token expired")
            .with_hint("mint a new one")
            .to_bytes();
        let frame = split_message(&bytes, 1 << 20).unwrap().unwrap();
        assert_eq!(frame.len, bytes.len());
        let BackendMessage::ErrorResponse(fields) = decode(frame.tag, frame.body).unwrap() else {
            panic!()
        };
        assert_eq!(fields.get(b'C'), Some("28000"));
        assert_eq!(fields.get(b'S'), Some("FATAL"));
        assert_eq!(fields.get(b'H'), Some("mint a new one"));
    }

    #[test]
    fn decodes_rows() {
        let mut out = Vec::new();
        put_message(&mut out, b'D', |b| {
            b.extend_from_slice(&2i16.to_be_bytes());
            b.extend_from_slice(&1i32.to_be_bytes());
            b.push(b'x');
            b.extend_from_slice(&(-1i32).to_be_bytes());
        });
        let frame = split_message(&out, 100).unwrap().unwrap();
        assert_eq!(
            decode(frame.tag, frame.body),
            Ok(BackendMessage::DataRow(vec![Some(&b"x"[..]), None]))
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(b'R', &[0, 0, 0]).is_err());
        assert!(decode(b'R', &[0, 0, 0, 5, 1]).is_err());
        assert!(decode(b'D', &[0, 1, 0, 0, 0, 9, 1]).is_err());
        assert!(decode(b'T', &[0, 1, b'a']).is_err());
        assert!(decode(b'E', b"Cabc").is_err());
        assert!(decode(b'Z', b"").is_err());
        assert!(decode(b'v', &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
