//! Free loopback TCP ports for servers that tests start.

use std::net::{Ipv4Addr, TcpListener};

use anyhow::Context as _;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The kernel picks it (bind to port 0) and the listener is dropped before returning, so another
/// process may take it before the caller binds; callers that start servers retry on "address in use".
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    let port = listener
        .local_addr()
        .context("local address of 127.0.0.1:0")?
        .port();
    Ok(port)
}

/// `127.0.0.1:<free port>`, for config fields that take a listen address.
pub fn free_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}
