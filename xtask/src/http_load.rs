//! The HTTP bench's load generator: N keep-alive HTTP/1.1 connections (hyper's connection-level client,
//! one TCP connection each, no pool), each sending the same GET back to back for a fixed time; every
//! request's latency (request written to last body byte read) is kept for exact percentiles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What every connection of a run asks for, and what it must get back.
#[derive(Debug, Clone)]
pub struct Load {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The request target (origin form: `/api/customers/42`).
    pub path: String,
    /// `Authorization: Bearer <token>` (marked sensitive).
    pub authorization: HeaderValue,
    /// The body every response must carry.
    pub expect: Bytes,
}

/// One run's requests and their latencies.
#[derive(Debug, Default)]
pub struct Sample {
    /// Requests answered (200 with the expected body).
    pub requests: u64,
    /// From the first request to the last response, over all connections.
    pub wall: Duration,
    /// Every request's latency, nanoseconds.
    pub latencies_ns: Vec<u64>,
}

impl Sample {
    /// Adds another run of the same target.
    pub fn merge(&mut self, other: Sample) {
        self.requests += other.requests;
        self.wall += other.wall;
        self.latencies_ns.extend(other.latencies_ns);
    }

    /// Requests per second over all merged runs.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Sorts the latencies; call once before [`Sample::percentile_us`].
    pub fn sort(&mut self) {
        self.latencies_ns.sort_unstable();
    }

    /// The `p`-quantile (0 < p ≤ 1) of the sorted latencies in microseconds, nearest rank.
    pub fn percentile_us(&self, p: f64) -> f64 {
        let n = self.latencies_ns.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.latencies_ns
            .get(rank - 1)
            .map_or(f64::NAN, |ns| *ns as f64 / 1e3)
    }
}

/// Opens `connections` connections, then has each send requests back to back until `duration` has
/// passed since the first was sent. Any failure (refused connection, non-200 status, a different body)
/// fails the run: a bench that counts errors as answers measures the wrong thing.
pub async fn run(load: &Load, connections: u32, duration: Duration) -> anyhow::Result<Sample> {
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(load.addr).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for sender in senders {
        let load = load.clone();
        tasks.spawn(async move { drive(sender, &load, deadline).await });
    }
    let mut sample = Sample::default();
    while let Some(joined) = tasks.join_next().await {
        let latencies = joined.context("a connection's task")??;
        sample.requests += latencies.len() as u64;
        sample.latencies_ns.extend(latencies);
    }
    sample.wall = started.elapsed();
    Ok(sample)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {addr}"))?;
    // The connection's I/O runs as its own task; it ends when the sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// One GET on a new connection; the body of a 200 response. The bench asks each target once before
/// measuring, and every later response must carry the same body.
pub async fn probe(addr: SocketAddr, path: &str, authorization: &HeaderValue) -> anyhow::Result<Bytes> {
    let mut sender = connect(addr).await?;
    let host = HeaderValue::from_str(&addr.to_string()).context("Host header")?;
    get(&mut sender, addr, path, &host, authorization).await
}

/// One connection's loop; returns the latencies of its requests.
async fn drive(mut sender: Sender, load: &Load, deadline: Instant) -> anyhow::Result<Vec<u64>> {
    let host = HeaderValue::from_str(&load.addr.to_string()).context("Host header")?;
    let mut latencies = Vec::with_capacity(64 * 1024);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let body = get(&mut sender, load.addr, &load.path, &host, &load.authorization).await?;
        latencies.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if body != load.expect {
            return Err(anyhow!(
                "GET {} from {}: a different body ({} bytes, expected {})",
                load.path,
                load.addr,
                body.len(),
                load.expect.len()
            ));
        }
    }
    Ok(latencies)
}

/// GET `path` on the connection and read the whole body; an error unless the status is 200.
async fn get(
    sender: &mut Sender,
    addr: SocketAddr,
    path: &str,
    host: &HeaderValue,
    authorization: &HeaderValue,
) -> anyhow::Result<Bytes> {
    let request = Request::get(path)
        .header(HOST, host.clone())
        .header(AUTHORIZATION, authorization.clone())
        .body(Empty::new())
        .context("build the request")?;
    sender.ready().await.context("connection closed")?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("GET {path} from {addr}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("read the response body")?
        .to_bytes();
    if status != StatusCode::OK {
        bail!(
            "GET {path} from {addr}: {status}: {}",
            String::from_utf8_lossy(body.get(..body.len().min(300)).unwrap_or_default())
        );
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut sample = Sample {
            requests: 100,
            wall: Duration::from_secs(1),
            latencies_ns: (1..=100).rev().map(|us| us * 1000).collect(),
        };
        sample.sort();
        assert_eq!(sample.percentile_us(0.5), 50.0);
        assert_eq!(sample.percentile_us(0.99), 99.0);
        assert_eq!(sample.percentile_us(1.0), 100.0);
        assert_eq!(sample.rate(), 100.0);
        assert!(Sample::default().percentile_us(0.5).is_nan());
    }
}
