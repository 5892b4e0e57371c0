//! The HTTP listener: TLS detected by the first byte (plaintext only where allowed), then HTTP/1.1 or
//! HTTP/2 on one connection each (`hyper_util`'s auto builder), with upgrades.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
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
    /// Time for the TLS handshake and for each request's headers. (hyper starts an HTTP/1.1
    /// connection's header timer as soon as it waits for the next request, so an idle keep-alive
    /// connection is closed after this too.)
    pub header_timeout: Duration,
    /// A client connection with no request in flight for this long is closed (HTTP/2 with a GOAWAY,
    /// so the client opens another for its next request); zero keeps idle connections open.
    pub idle_timeout: Duration,
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
            Ok(Ok(stream)) => http(stream, peer, proxy, true, &settings).await,
            Ok(Err(e)) => debug!(client = %peer, error = %e, "tls handshake failed"),
            Err(_) => debug!(client = %peer, "tls handshake timed out"),
        }
    } else if settings.allow_plaintext {
        http(tcp, peer, proxy, false, &settings).await;
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

async fn http<G, S>(stream: S, peer: SocketAddr, proxy: Arc<Proxy<G>>, tls: bool, settings: &ListenerSettings)
where
    G: Gate,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(proxy.gate().client());
    let activity = Arc::new(Activity::new());
    let service = service_fn({
        let client = Arc::clone(&client);
        let activity = Arc::clone(&activity);
        move |req| {
            let proxy = Arc::clone(&proxy);
            let client = Arc::clone(&client);
            // In flight from its headers until its response body has been sent (or dropped).
            let in_flight = activity.begin();
            async move {
                let response = proxy.handle(req, peer, tls, &client).await;
                Ok::<_, Infallible>(response.map(|body| {
                    body.map_frame(move |frame| {
                        let _in_flight = &in_flight;
                        frame
                    })
                    .boxed_unsync()
                }))
            }
        }
    });
    let builder = builder(settings.header_timeout);
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(served);
    // Dropping the connection closes it: requests in flight on it end as if the client had left.
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = client.ended() => {
            debug!(client = %peer, "http connection closed by the gateway");
            return;
        }
        () = activity.idle_for(settings.idle_timeout) => {
            debug!(client = %peer, "http connection idle: closing it");
            served.as_mut().graceful_shutdown();
            tokio::select! {
                result = served.as_mut() => result,
                () = client.ended() => return,
            }
        }
    };
    if let Err(e) = result {
        debug!(client = %peer, error = %e, "http connection ended");
    }
}

/// Requests in flight on one client connection: when none has been for the idle timeout, the
/// connection is closed. Two atomic updates per request and no wake-up: the watcher looks every
/// quarter of the timeout, so a connection is closed between one and one and a quarter timeouts after
/// its last request ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When a request last ended, in milliseconds since `opened`.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once no request has been in flight for `idle`; never when `idle` is zero.
    async fn idle_for(&self, idle: Duration) {
        if idle.is_zero() {
            return std::future::pending().await;
        }
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let mut look = tokio::time::interval((idle / 4).max(Duration::from_millis(1)));
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            look.tick().await;
            let since_last = self
                .now_ms()
                .saturating_sub(self.last_end_ms.load(Ordering::SeqCst));
            if self.in_flight.load(Ordering::SeqCst) == 0 && since_last >= idle_ms {
                return;
            }
        }
    }
}

/// One request in flight, until dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The end time first: a watcher that sees no request in flight sees this one's end.
        self.0.last_end_ms.store(self.0.now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
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
