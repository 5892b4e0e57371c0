//! `Unverified`: the routing facts (alg, kid, iss) read from a JWT before its signature is checked.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use portcullis_core::RejectReason;

use crate::verifier::Rejected;

/// Longer tokens are refused before any decoding. Large IdP tokens with many groups stay well below this.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// What a token says about itself. Used only to choose the issuer, the key and the algorithm; the
/// signature check then decides whether any of it is true.
#[derive(Debug)]
pub(crate) struct Unverified {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) iss: String,
}

impl Unverified {
    /// Reads the header and the payload's `iss`. The algorithm is judged before the issuer, so `none` and
    /// HMAC tokens are refused whatever they claim to come from.
    pub(crate) fn peek(token: &str) -> Result<Self, Rejected> {
        if token.is_empty() {
            return Err(Rejected::new(RejectReason::Missing, "no token was presented"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("the token is too long"));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(malformed("a JWT has three dot-separated parts"));
        };

        let header = decode_object(header, "header")?;
        let alg = algorithm(&header)?;
        if header.contains_key("crit") {
            // RFC 7515 4.1.11: extensions we do not understand must be refused, and we understand none.
            return Err(malformed("the token's header has critical extensions (crit)"));
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(malformed("the token's key id (kid) is not a string")),
        };

        let payload = decode_object(payload, "payload")?;
        let iss = match payload.get("iss") {
            Some(Value::String(iss)) => iss.clone(),
            Some(_) => return Err(malformed("the token's issuer (iss) is not a string")),
            None => return Err(malformed("the token has no issuer (iss)")),
        };
        Ok(Self { alg, kid, iss })
    }
}

/// The header's `alg`, refusing `none`, HMAC and anything jsonwebtoken does not implement. HMAC is refused
/// here, before any key is chosen, which is what defeats signing with an RSA public key as HMAC secret.
fn algorithm(header: &Map<String, Value>) -> Result<Algorithm, Rejected> {
    let Some(Value::String(name)) = header.get("alg") else {
        return Err(malformed("the token's header has no algorithm (alg)"));
    };
    let disallowed = |detail| Err(Rejected::new(RejectReason::DisallowedAlgorithm, detail));
    if name.eq_ignore_ascii_case("none") {
        return disallowed("unsigned tokens (alg none) are never accepted");
    }
    match Algorithm::from_str(name) {
        Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
            disallowed("shared-secret (HMAC) tokens are never accepted")
        }
        Ok(alg) => Ok(alg),
        Err(_) => disallowed("the token's algorithm is not supported"),
    }
}

fn decode_object(segment: &str, part: &'static str) -> Result<Map<String, Value>, Rejected> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| malformed(format!("the token's {part} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| malformed(format!("the token's {part} is not a JSON object")))
}

fn malformed(detail: impl Into<String>) -> Rejected {
    Rejected::new(RejectReason::Malformed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn classifies_before_any_key_is_fetched() {
        let iss = r#"{"iss":"https://idp"}"#;
        let cases = [
            (String::new(), RejectReason::Missing),
            ("abc".to_owned(), RejectReason::Malformed),
            ("a.b.c.d".to_owned(), RejectReason::Malformed),
            ("!!.??.x".to_owned(), RejectReason::Malformed),
            (token(r#"{"alg":"none"}"#, iss), RejectReason::DisallowedAlgorithm),
            (token(r#"{"alg":"NONE"}"#, iss), RejectReason::DisallowedAlgorithm),
            (
                token(r#"{"alg":"HS256"}"#, iss),
                RejectReason::DisallowedAlgorithm,
            ),
            (
                token(r#"{"alg":"HS512"}"#, iss),
                RejectReason::DisallowedAlgorithm,
            ),
            (
                token(r#"{"alg":"ES512"}"#, iss),
                RejectReason::DisallowedAlgorithm,
            ),
            (token(r#"{"typ":"JWT"}"#, iss), RejectReason::Malformed),
            (
                token(r#"{"alg":"RS256","crit":["x"]}"#, iss),
                RejectReason::Malformed,
            ),
            (token(r#"{"alg":"RS256","kid":7}"#, iss), RejectReason::Malformed),
            (
                token(r#"{"alg":"RS256"}"#, r#"{"sub":"x"}"#),
                RejectReason::Malformed,
            ),
            (token(r#"{"alg":"RS256"}"#, r#"["iss"]"#), RejectReason::Malformed),
            ("x".repeat(MAX_TOKEN_BYTES + 1), RejectReason::Malformed),
        ];
        for (token, expected) in cases {
            let got = Unverified::peek(&token).map(|_| ()).unwrap_err();
            assert_eq!(got.reason, expected, "{token:.60}");
            assert!(token.is_empty() || !got.detail.contains(&token));
        }
    }

    #[test]
    fn reads_routing_facts() {
        let peeked = Unverified::peek(&token(
            r#"{"alg":"ES256","kid":"k1"}"#,
            r#"{"iss":"https://idp"}"#,
        ))
        .unwrap();
        assert_eq!(peeked.alg, Algorithm::ES256);
        assert_eq!(peeked.kid.as_deref(), Some("k1"));
        assert_eq!(peeked.iss, "https://idp");
    }
}
