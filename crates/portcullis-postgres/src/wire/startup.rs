//! The untyped first packet a client sends: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest.

use super::{Cursor, WireError};

/// PostgreSQL refuses startup packets longer than this; so do we.
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A protocol version as sent in a StartupMessage (`major << 16 | minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

impl ProtocolVersion {
    /// 3.0, the version the gateway speaks on both sides.
    pub const V3_0: ProtocolVersion = ProtocolVersion { major: 3, minor: 0 };
}

/// The first packet of a connection, sent by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks to switch to TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption, which the gateway declines.
    GssEncRequest,
    /// Out-of-band cancel of a running query, keyed by the BackendKeyData the client received. Protocol
    /// 3.2 allows keys up to 256 bytes; 3.0 keys are 4 bytes.
    CancelRequest { process_id: i32, secret_key: Vec<u8> },
    /// The real start of a session.
    Startup {
        version: ProtocolVersion,
        params: Vec<(String, String)>,
    },
}

impl StartupPacket {
    /// The value of a startup parameter, e.g. `user` or `database`.
    pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads the declared total length from the first four bytes and checks it against the limit.
pub fn packet_len(first4: [u8; 4]) -> Result<usize, WireError> {
    let len = i32::from_be_bytes(first4);
    let len_usize = usize::try_from(len).map_err(|_| WireError::BadLength(i64::from(len)))?;
    if len_usize < 8 {
        return Err(WireError::BadLength(i64::from(len)));
    }
    if len_usize > MAX_STARTUP_PACKET {
        return Err(WireError::TooLarge {
            len: len_usize,
            limit: MAX_STARTUP_PACKET,
        });
    }
    Ok(len_usize)
}

/// Decodes a startup packet body: everything after the 4-byte length.
pub fn decode(body: &[u8]) -> Result<StartupPacket, WireError> {
    let mut cursor = Cursor::new(body);
    let code = cursor.i32()?;
    match code {
        SSL_REQUEST => expect_end(&cursor, StartupPacket::SslRequest),
        GSSENC_REQUEST => expect_end(&cursor, StartupPacket::GssEncRequest),
        CANCEL_REQUEST => {
            let process_id = cursor.i32()?;
            let secret_key = cursor.remaining().to_vec();
            if secret_key.is_empty() || secret_key.len() > 256 {
                return Err(WireError::Invalid("cancel key must be 1 to 256 bytes"));
            }
            Ok(StartupPacket::CancelRequest {
                process_id,
                secret_key,
            })
        }
        _ => {
            let raw = u32::from_be_bytes(code.to_be_bytes());
            let version = ProtocolVersion {
                major: u16::try_from(raw >> 16).unwrap_or(u16::MAX),
                minor: u16::try_from(raw & 0xffff).unwrap_or(u16::MAX),
            };
            let mut params = Vec::new();
            loop {
                let key = cursor.cstr()?;
                if key.is_empty() {
                    break;
                }
                let value = cursor.cstr()?;
                params.push((key.to_owned(), value.to_owned()));
            }
            expect_end(&cursor, StartupPacket::Startup { version, params })
        }
    }
}

/// Encodes a StartupMessage (used toward the upstream).
pub fn encode_startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0003_0000_i32.to_be_bytes());
    for (k, v) in params {
        super::put_cstr(&mut body, k);
        super::put_cstr(&mut body, v);
    }
    body.push(0);
    with_length(body)
}

/// Encodes an SSLRequest.
pub fn encode_ssl_request() -> Vec<u8> {
    with_length(SSL_REQUEST.to_be_bytes().to_vec())
}

/// Encodes a CancelRequest for a 3.0 (4-byte) key.
pub fn encode_cancel(process_id: i32, secret_key: &[u8]) -> Vec<u8> {
    let mut body = CANCEL_REQUEST.to_be_bytes().to_vec();
    body.extend_from_slice(&process_id.to_be_bytes());
    body.extend_from_slice(secret_key);
    with_length(body)
}

fn with_length(body: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn expect_end(cursor: &Cursor<'_>, packet: StartupPacket) -> Result<StartupPacket, WireError> {
    if cursor.is_empty() {
        Ok(packet)
    } else {
        Err(WireError::Invalid("trailing bytes in startup packet"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_round_trip() {
        let bytes = encode_startup(&[("user", "agent"), ("database", "orders")]);
        let len = packet_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len());
        let packet = decode(&bytes[4..]).unwrap();
        let StartupPacket::Startup { version, params } = packet else {
            panic!("not a startup")
        };
        assert_eq!(version, ProtocolVersion::V3_0);
        assert_eq!(StartupPacket::param(&params, "database"), Some("orders"));
    }

    #[test]
    fn version_3_2_is_recognised() {
        let mut body = 0x0003_0002_i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0a\0_pq_.x\0y\0\0");
        let StartupPacket::Startup { version, params } = decode(&body).unwrap() else {
            panic!()
        };
        assert_eq!(version, ProtocolVersion { major: 3, minor: 2 });
        assert_eq!(params.len(), 2);
    }

    #[test]
    fn requests_decode() {
        assert_eq!(decode(&encode_ssl_request()[4..]), Ok(StartupPacket::SslRequest));
        let cancel = encode_cancel(42, &[1, 2, 3, 4]);
        assert_eq!(
            decode(&cancel[4..]),
            Ok(StartupPacket::CancelRequest {
                process_id: 42,
                secret_key: vec![1, 2, 3, 4]
            })
        );
    }

    #[test]
    fn hostile_packets_are_errors() {
        assert!(packet_len([0, 0, 0, 4]).is_err());
        assert!(packet_len([0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(packet_len([0, 1, 0, 0]).is_err());
        assert!(decode(&[0, 3, 0, 0, b'u', b's']).is_err());
        assert!(decode(&[0, 3, 0, 0, b'u', 0, 0xff, 0, 0]).is_err());
        assert!(decode(&[4, 210, 22, 47, 1]).is_err());
    }
}
