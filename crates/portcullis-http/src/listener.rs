//! The HTTP listener: TLS detected by the first byte (plaintext only where allowed), then HTTP/1.1 or
//! HTTP/2 on one connection each (`hyper_util`'s auto builder), with upgrades.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error};

use crate::problem::Problem;
use crate::proxy::{ClientState, Gate, Proxy};

/// The TLS record type of a handshake: a TLS client's first byte.
const TLS_HANDSHAKE: u8 = 0x16;

/// How the listener accepts connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// The listener's certificate; ALPN (`h2`, `http/1.1`) is set here.
    pub tls: Arc<rustls::ServerConfig>,
    /// Serve plaintext HTTP too (loopback, development).
    pub allow_plaintext: bool,
    /// Time for the TLS handshake and for each request's headers.
    pub header_timeout: Duration,
}

/// Accepts connections until the task is dropped.
pub async fn serve<G: Gate>(listener: TcpListener, proxy: Arc<Proxy<G>>, settings: ListenerSettings) {
    let mut tls = settings.tls.as_ref().clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let settings = Arc::new(settings);
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(
                    tcp,
                    peer,
                    Arc::clone(&proxy),
                    acceptor.clone(),
                    Arc::clone(&settings),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                error!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection<G: Gate>(
    tcp: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy<G>>,
    acceptor: tokio_rustls::TlsAcceptor,
    settings: Arc<ListenerSettings>,
) {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(settings.header_timeout, tcp.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return;
    }
    if first == [TLS_HANDSHAKE] {
        match tokio::time::timeout(settings.header_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => http(stream, peer, proxy, true, settings.header_timeout).await,
            Ok(Err(e)) => debug!(client = %peer, error = %e, "tls handshake failed"),
            Err(_) => debug!(client = %peer, "tls handshake timed out"),
        }
    } else if settings.allow_plaintext {
        http(tcp, peer, proxy, false, settings.header_timeout).await;
    } else {
        refuse_plaintext(tcp, settings.header_timeout).await;
    }
}

fn builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

async fn http<G, S>(stream: S, peer: SocketAddr, proxy: Arc<Proxy<G>>, tls: bool, header_timeout: Duration)
where
    G: Gate,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(proxy.gate().client());
    let service = service_fn({
        let client = Arc::clone(&client);
        move |req| {
            let proxy = Arc::clone(&proxy);
            let client = Arc::clone(&client);
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, tls, &client).await) }
        }
    });
    let builder = builder(header_timeout);
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    // Dropping the connection closes it: requests in flight on it end as if the client had left.
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                debug!(client = %peer, error = %e, "http connection ended");
            }
        }
        () = client.ended() => debug!(client = %peer, "http connection closed by the gateway"),
    }
}

/// A plaintext request where only TLS is allowed: one problem document, and the connection closes.
async fn refuse_plaintext(tcp: TcpStream, header_timeout: Duration) {
    let service = service_fn(|_req| async {
        let mut response = Problem::bad_request(
            "this listener takes HTTPS only; plaintext HTTP is allowed by [server.http] allow_plaintext (loopback and development)",
        )
        .into_response();
        response
            .headers_mut()
            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        Ok::<_, Infallible>(response)
    });
    let _ = builder(header_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .await;
}
