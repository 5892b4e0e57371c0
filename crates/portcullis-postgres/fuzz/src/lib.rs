//! Oracles shared by the wire fuzz targets: framing invariants and byte-exact re-encoders for decoded messages.
//!
//! The decoders accept a message only when they consumed its body exactly (no trailing bytes), so every
//! accepted message has exactly one encoding. Re-encoding what was decoded and comparing it with the input
//! catches a decoder that skips, misreads or invents bytes, not only one that panics. The encoders below
//! exist for this check alone: the crate has no encoders for most messages because the gateway only
//! relays them.

use portcullis_postgres::wire::backend::{Authentication, BackendMessage, Fields};
use portcullis_postgres::wire::frontend::FrontendMessage;
use portcullis_postgres::wire::{HEADER_LEN, WireError, put_cstr, split_message};

/// Limits the targets split with: zero, tiny, the size the login and relay paths use, and unbounded.
pub const SPLIT_LIMITS: [usize; 4] = [0, 16, 1 << 20, usize::MAX];

/// Checks every outcome of `split_message(data, limit)` against the header it was given, and returns the
/// frame when one was split.
pub fn check_split(data: &[u8], limit: usize) -> Option<(u8, &[u8], usize)> {
    let declared = data
        .get(1..HEADER_LEN)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes);
    match split_message(data, limit) {
        Ok(Some(frame)) => {
            let declared = declared.expect("a frame was split from fewer than 5 bytes");
            assert_eq!(
                frame.len,
                HEADER_LEN + frame.body.len(),
                "frame length disagrees with body"
            );
            assert!(frame.len <= data.len(), "frame runs past the input");
            assert!(frame.body.len() <= limit, "frame body exceeds the limit");
            assert_eq!(Some(&frame.tag), data.first(), "frame tag is not the first byte");
            assert_eq!(
                Some(frame.body),
                data.get(HEADER_LEN..frame.len),
                "frame body is not the input"
            );
            assert_eq!(
                i64::from(declared),
                frame.body.len() as i64 + 4,
                "frame ignores the length field"
            );
            Some((frame.tag, frame.body, frame.len))
        }
        Ok(None) => {
            if let Some(declared) = declared {
                // A whole header was there: the body must be incomplete.
                assert!(declared >= 4, "bad length {declared} was not rejected");
                let body_len = usize::try_from(declared - 4).unwrap_or(usize::MAX);
                assert!(body_len <= limit, "oversized message was not rejected");
                assert!(
                    data.len() < HEADER_LEN + body_len,
                    "a complete message was not split"
                );
            }
            None
        }
        Err(WireError::BadLength(len)) => {
            assert_eq!(
                declared.map(i64::from),
                Some(len),
                "BadLength reports another length"
            );
            assert!(len < 4, "length {len} is valid");
            None
        }
        Err(WireError::TooLarge { len, limit: reported }) => {
            assert_eq!(reported, limit, "TooLarge reports another limit");
            assert!(len > limit, "TooLarge for {len} <= {limit}");
            None
        }
        Err(other) => panic!("split_message returned an unexpected error: {other:?}"),
    }
}

/// The body a frontend message was decoded from, rebuilt from the decoded value.
pub fn encode_frontend(message: &FrontendMessage<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    match message {
        FrontendMessage::Query { sql } => put_cstr(&mut b, sql),
        FrontendMessage::Parse {
            statement,
            sql,
            param_types,
        } => {
            put_cstr(&mut b, statement);
            put_cstr(&mut b, sql);
            put_count16(&mut b, param_types.len());
            for t in param_types {
                b.extend_from_slice(&t.to_be_bytes());
            }
        }
        FrontendMessage::Bind {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        } => {
            put_cstr(&mut b, portal);
            put_cstr(&mut b, statement);
            put_count16(&mut b, param_formats.len());
            for f in param_formats {
                b.extend_from_slice(&f.to_be_bytes());
            }
            put_count16(&mut b, params.len());
            for p in params {
                put_value32(&mut b, *p);
            }
            put_count16(&mut b, result_formats.len());
            for f in result_formats {
                b.extend_from_slice(&f.to_be_bytes());
            }
        }
        FrontendMessage::Describe { target, name } | FrontendMessage::Close { target, name } => {
            b.push(*target);
            put_cstr(&mut b, name);
        }
        FrontendMessage::Execute { portal, max_rows } => {
            put_cstr(&mut b, portal);
            b.extend_from_slice(&max_rows.to_be_bytes());
        }
        FrontendMessage::Sync
        | FrontendMessage::Flush
        | FrontendMessage::Terminate
        | FrontendMessage::CopyDone => {}
        FrontendMessage::CopyFail { message } => put_cstr(&mut b, message),
        FrontendMessage::CopyData(raw)
        | FrontendMessage::Password(raw)
        | FrontendMessage::FunctionCall(raw) => b.extend_from_slice(raw),
    }
    b
}

/// The body a backend message was decoded from, rebuilt from the decoded value.
pub fn encode_backend(message: &BackendMessage<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    match message {
        BackendMessage::Authentication(auth) => match auth {
            Authentication::Ok => b.extend_from_slice(&0i32.to_be_bytes()),
            Authentication::CleartextPassword => b.extend_from_slice(&3i32.to_be_bytes()),
            Authentication::Md5Password { salt } => {
                b.extend_from_slice(&5i32.to_be_bytes());
                b.extend_from_slice(salt);
            }
            Authentication::Sasl { mechanisms } => {
                b.extend_from_slice(&10i32.to_be_bytes());
                for m in mechanisms {
                    put_cstr(&mut b, m);
                }
                b.push(0);
            }
            Authentication::SaslContinue(data) => {
                b.extend_from_slice(&11i32.to_be_bytes());
                b.extend_from_slice(data);
            }
            Authentication::SaslFinal(data) => {
                b.extend_from_slice(&12i32.to_be_bytes());
                b.extend_from_slice(data);
            }
            Authentication::Unsupported(code) => b.extend_from_slice(&code.to_be_bytes()),
        },
        BackendMessage::ParameterStatus { name, value } => {
            put_cstr(&mut b, name);
            put_cstr(&mut b, value);
        }
        BackendMessage::BackendKeyData {
            process_id,
            secret_key,
        } => {
            b.extend_from_slice(&process_id.to_be_bytes());
            b.extend_from_slice(secret_key);
        }
        BackendMessage::ReadyForQuery { status } => b.push(*status),
        BackendMessage::ErrorResponse(fields) | BackendMessage::NoticeResponse(fields) => {
            put_fields(&mut b, fields)
        }
        BackendMessage::NegotiateProtocolVersion {
            newest_minor,
            unrecognized,
        } => {
            b.extend_from_slice(&newest_minor.to_be_bytes());
            let n = i32::try_from(unrecognized.len()).expect("more options than fit a count");
            b.extend_from_slice(&n.to_be_bytes());
            for option in unrecognized {
                put_cstr(&mut b, option);
            }
        }
        BackendMessage::RowDescription(columns) => {
            put_count16(&mut b, columns.len());
            for c in columns {
                put_cstr(&mut b, c.name);
                b.extend_from_slice(&c.table_oid.to_be_bytes());
                b.extend_from_slice(&c.column_attr.to_be_bytes());
                b.extend_from_slice(&c.type_oid.to_be_bytes());
                b.extend_from_slice(&c.type_size.to_be_bytes());
                b.extend_from_slice(&c.type_modifier.to_be_bytes());
                b.extend_from_slice(&c.format.to_be_bytes());
            }
        }
        BackendMessage::DataRow(values) => {
            put_count16(&mut b, values.len());
            for v in values {
                put_value32(&mut b, *v);
            }
        }
        BackendMessage::CommandComplete { tag } => put_cstr(&mut b, tag),
        BackendMessage::Other { body, .. } => b.extend_from_slice(body),
    }
    b
}

fn put_fields(b: &mut Vec<u8>, fields: &Fields<'_>) {
    for (code, value) in &fields.0 {
        assert_ne!(
            *code, 0,
            "a field code of 0 ends the list and cannot be decoded as a field"
        );
        b.push(*code);
        put_cstr(b, value);
    }
    b.push(0);
}

fn put_count16(b: &mut Vec<u8>, n: usize) {
    let n = i16::try_from(n).expect("decoded more items than an i16 count allows");
    b.extend_from_slice(&n.to_be_bytes());
}

fn put_value32(b: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(v) => {
            let n = i32::try_from(v.len()).expect("value longer than an i32 length allows");
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(v);
        }
    }
}
