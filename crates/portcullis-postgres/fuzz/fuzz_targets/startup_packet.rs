//! Fuzzes the untrusted first packet: `startup::packet_len` on the first 4 bytes, `startup::decode` on the rest, with re-encode round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_postgres::wire::startup::{
    self, MAX_STARTUP_PACKET, ProtocolVersion, StartupPacket, encode_cancel, encode_ssl_request,
    encode_startup,
};

fuzz_target!(|data: &[u8]| {
    let Some((first4, body)) = data.split_first_chunk::<4>() else {
        return;
    };

    // The length word is checked before any allocation, so whatever it accepts must be a sane size.
    if let Ok(len) = startup::packet_len(*first4) {
        assert!(
            (8..=MAX_STARTUP_PACKET).contains(&len),
            "packet_len accepted {len}"
        );
        assert_eq!(
            len,
            u32::from_be_bytes(*first4) as usize,
            "packet_len changed the length"
        );
    }

    let Ok(packet) = startup::decode(body) else {
        return;
    };
    // `decode` rejects trailing bytes, so each accepted packet has exactly one encoding: the input.
    let encoded = match &packet {
        StartupPacket::SslRequest => encode_ssl_request(),
        StartupPacket::GssEncRequest => return, // no encoder: the gateway only ever declines it
        StartupPacket::CancelRequest {
            process_id,
            secret_key,
        } => {
            assert!(
                (1..=256).contains(&secret_key.len()),
                "cancel key of {} bytes",
                secret_key.len()
            );
            encode_cancel(*process_id, secret_key)
        }
        StartupPacket::Startup { version, params } => {
            assert!(
                params.iter().all(|(k, _)| !k.is_empty()),
                "empty parameter name decoded"
            );
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut encoded = encode_startup(&pairs);
            // `encode_startup` always writes 3.0; compare the version the client actually sent.
            if *version != ProtocolVersion::V3_0 {
                let word = (u32::from(version.major) << 16) | u32::from(version.minor);
                encoded.splice(4..8, word.to_be_bytes());
            }
            encoded
        }
    };
    let (len_word, encoded_body) = encoded.split_at(4);
    assert_eq!(
        encoded_body, body,
        "re-encoding {packet:?} does not give back the input"
    );
    assert_eq!(
        u32::from_be_bytes(len_word.try_into().expect("4 bytes")) as usize,
        encoded.len(),
        "encoder wrote a wrong length word"
    );
    assert_eq!(
        startup::decode(encoded_body).as_ref(),
        Ok(&packet),
        "decode(encode(p)) != p"
    );
    if encoded.len() <= MAX_STARTUP_PACKET {
        assert_eq!(
            startup::packet_len(len_word.try_into().expect("4 bytes")),
            Ok(encoded.len())
        );
    }
});
