//! Free loopback TCP ports for servers that tests start.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

/// Ports below this are left alone (well-known and registered services people run).
const LOWEST: u16 = 10_000;
/// Random picks tried below the ephemeral range before falling back to the kernel's choice.
const ATTEMPTS: usize = 64;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// It is picked at random below the kernel's ephemeral range (`ip_local_port_range`), so that the
/// outgoing connections of other tests (which the kernel numbers from that range) cannot take it between
/// this call and the caller's bind; only another random pick can, which is unlikely. Where no such range
/// is known, the kernel picks (bind to port 0). Callers that start servers still retry on "address in use".
pub fn free_port() -> anyhow::Result<u16> {
    if let Some(ephemeral_low) = ephemeral_low() {
        let span = u64::from(ephemeral_low.saturating_sub(LOWEST));
        if span > 1_000 {
            for _ in 0..ATTEMPTS {
                let offset = u16::try_from(random() % span).unwrap_or(0);
                let port = LOWEST + offset;
                if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Ok(port);
                }
            }
        }
    }
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

/// The first port of the kernel's ephemeral range, on Linux.
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// A random number: the standard library's per-process random hash keys over a counter.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_bindable_ports_outside_the_ephemeral_range() {
        let low = ephemeral_low();
        for _ in 0..20 {
            let port = free_port().unwrap();
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
            if let Some(low) = low.filter(|l| *l > LOWEST + 1_000) {
                assert!((LOWEST..low).contains(&port), "{port} not in {LOWEST}..{low}");
            }
        }
    }
}
