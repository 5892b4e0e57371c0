//! Header handling between client and upstream: hop-by-hop headers removed (RFC 9110 §7.6.1), upgrade
//! headers kept for an upgrade, the agent's token removed, the `X-Forwarded-*` set by the gateway.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop, never forwarded as they are.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The protocol an upgrade request asks for (`Upgrade: websocket`), when `Connection` says `upgrade`.
pub(crate) fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers (and those `Connection` names). With `upgrade`, the upgrade is kept:
/// `Connection: upgrade` and the `Upgrade` value.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<&HeaderValue>) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    // `TE: trailers` is end-to-end in meaning (gRPC needs it) and allowed in HTTP/2.
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
}

/// Prepares an agent's request headers for the upstream: hop-by-hop and the agent's `Authorization`
/// removed, `Host` left to the client (set from the upstream URI), the forwarding headers replaced
/// with the gateway's own view (an agent's claims about other hops are not passed on).
pub(crate) fn to_upstream(
    headers: &mut HeaderMap,
    upgrade: Option<&HeaderValue>,
    client_ip: IpAddr,
    client_tls: bool,
    original_host: Option<&str>,
) {
    strip_hop_by_hop(headers, upgrade);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    headers.remove(header::FORWARDED);
    headers.remove("x-forwarded-host");
    headers.remove("x-forwarded-proto");
    if let Ok(ip) = HeaderValue::from_str(&client_ip.to_canonical().to_string()) {
        headers.insert("x-forwarded-for", ip);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if client_tls { "https" } else { "http" }),
    );
    if let Some(host) = original_host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert("x-forwarded-host", host);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hop_by_hop_and_the_token_are_removed() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("authorization", "Bearer agent-token"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("x-forwarded-for", "6.6.6.6"),
            ("host", "gateway"),
            ("x-request-id", "r1"),
        ] {
            h.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        to_upstream(
            &mut h,
            None,
            "::ffff:10.0.0.1".parse().unwrap(),
            true,
            Some("gateway"),
        );
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "te",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-request-id"
            ]
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let upgrade = upgrade_requested(&h);
        assert_eq!(upgrade.as_ref().unwrap(), "websocket");
        strip_hop_by_hop(&mut h, upgrade.as_ref());
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }
}
