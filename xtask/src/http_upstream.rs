//! The HTTP bench's upstream (`cargo xtask http-upstream`): a hyper HTTP/1.1 server answering every
//! request with one small JSON customer object, keep-alive, and the handle that runs it as a child.
//!
//! It runs as its own process, not on the load generator's runtime: on a shared runtime the client's
//! tasks and the server's would be scheduled against each other by one scheduler (a server task woken
//! by a request waits behind client tasks, and the other way round), which measures tokio's queueing
//! rather than the network path. As a process of its own it is scheduled by the kernel like the relay
//! and the gateway, and its CPU time per request can be read from /proc.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::relay::{ready_line, spawn_listening};

/// The body of every response: a customer as an internal API would return it (an email and a phone
/// number among ordinary fields), 400-odd bytes.
pub const CUSTOMER_JSON: &str = r#"{"id":42,"name":"Ada Lovelace","email":"ada.lovelace@example.com","phone":"+1 212 555 0142","tier":"gold","address":{"street":"12 Main Street","city":"Springfield","postcode":"62701","country":"US"},"created":"2026-01-01T09:30:00Z","orders":[{"id":"ORD-1001","total":129.5,"currency":"EUR"},{"id":"ORD-1002","total":42.0,"currency":"EUR"}],"notes":"prefers email contact; invoice monthly; account manager: Grace"}"#;

/// Serves on `listen` until killed, `workers` runtime threads.
pub fn run(listen: SocketAddr, workers: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(serve(listen))
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind {listen}"))?;
    let bound = listener.local_addr().context("local address")?;
    // stdout is a pipe to the parent: println! flushes on the newline.
    println!("{}", ready_line(bound));
    let body = Bytes::from_static(CUSTOMER_JSON.as_bytes());
    loop {
        let (tcp, peer) = listener.accept().await.context("accept")?;
        if let Err(error) = tcp.set_nodelay(true) {
            eprintln!("http-upstream: TCP_NODELAY for {peer}: {error}");
        }
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                let mut response = Response::new(Full::new(body.clone()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                async move { Ok::<_, Infallible>(response) }
            });
            // Clients end their connections when a run is over; nothing to report then.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// `cargo xtask http-upstream` running as a child of the bench; Drop kills and reaps it.
#[derive(Debug)]
pub struct UpstreamProcess {
    child: Child,
    addr: SocketAddr,
}

impl UpstreamProcess {
    /// Starts `<xtask> http-upstream --listen 127.0.0.1:0 --workers <workers>` and waits until it is
    /// bound.
    pub fn start(xtask: &Path, workers: usize) -> anyhow::Result<UpstreamProcess> {
        let mut command = Command::new(xtask);
        command
            .args(["http-upstream", "--listen", "127.0.0.1:0", "--workers"])
            .arg(workers.to_string());
        let (child, addr) = spawn_listening(command, "HTTP upstream")?;
        Ok(UpstreamProcess { child, addr })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id, for /proc readings.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_small_json_object() {
        let value: serde_json::Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
        assert!(value.get("email").is_some() && value.get("phone").is_some());
        assert!(
            (300..=500).contains(&CUSTOMER_JSON.len()),
            "{}",
            CUSTOMER_JSON.len()
        );
    }
}
