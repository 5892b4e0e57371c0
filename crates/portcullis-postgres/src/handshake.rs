//! The client side of a session's start: TLS negotiation, the startup packet, and the token as password.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::Secret;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::io::{ReadError, read_message, read_startup_packet};
use crate::stream::{ClientStream, Stream};
use crate::wire::backend::{GatewayError, put_authentication, put_negotiate_protocol_version};
use crate::wire::frontend;
use crate::wire::startup::{self, ProtocolVersion, StartupPacket};

/// Tokens are a few kilobytes at most; anything larger in a PasswordMessage is refused unread.
const MAX_PASSWORD_MESSAGE: usize = 64 * 1024;

/// How the listener treats clients before they are authenticated.
#[derive(Debug, Clone)]
pub struct FrontendSettings {
    /// Offered in answer to SSLRequest; `None` answers `N`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether a token may travel without TLS (loopback, development).
    pub allow_plaintext: bool,
    /// The whole handshake must finish within this time.
    pub handshake_timeout: Duration,
}

/// What a new connection turned out to be.
#[derive(Debug)]
pub enum Accepted {
    /// A client that wants a session and has presented a credential.
    Session(Box<Handshake>),
    /// An out-of-band cancel request; the connection is already closed.
    Cancel { process_id: i32, secret_key: Vec<u8> },
}

/// A client that finished the startup phase and sent its token, waiting for the gateway's verdict.
#[derive(Debug)]
pub struct Handshake {
    pub client: ClientStream,
    /// `database` from the startup packet: selects the connection.
    pub database: String,
    /// `user` from the startup packet: recorded, never trusted.
    pub user: String,
    /// The other startup parameters (application_name, client_encoding, ...).
    pub params: Vec<(String, String)>,
    /// The password field, which carries the token.
    pub token: Secret<String>,
}

/// Why a handshake failed. The client has already been told, in its protocol, where it could be.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("handshake timed out")]
    Timeout,
    #[error("client went away during the handshake: {0}")]
    Read(#[from] ReadError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("refused: {0}")]
    Refused(String),
}

impl portcullis_core::Fault for HandshakeError {
    fn party(&self) -> portcullis_core::Party {
        portcullis_core::Party::Client
    }
}

/// Runs the startup phase on a fresh connection: optional TLS, the startup packet, a request for the
/// password, and the PasswordMessage.
pub async fn accept(tcp: TcpStream, settings: &FrontendSettings) -> Result<Accepted, HandshakeError> {
    match tokio::time::timeout(settings.handshake_timeout, accept_inner(tcp, settings)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

impl Handshake {
    /// Ends the handshake with a FATAL error in the client's protocol.
    pub async fn refuse(mut self, error: &GatewayError) {
        let _ = self.client.write_all(&error.to_bytes()).await;
        let _ = self.client.shutdown().await;
    }
}

async fn accept_inner(tcp: TcpStream, settings: &FrontendSettings) -> Result<Accepted, HandshakeError> {
    // Startup packets are tiny and latency-sensitive, as is everything after.
    let _ = tcp.set_nodelay(true);
    let mut client: ClientStream = Stream::Plain(tcp);
    // A client may send GSSENCRequest, then SSLRequest, then the startup message; each at most once.
    let mut offered_tls = false;
    let mut offered_gss = false;
    loop {
        let body = match read_startup_packet(&mut client).await {
            Ok(body) => body,
            Err(e) => return Err(refuse_read(&mut client, e).await),
        };
        let packet = match startup::decode(&body) {
            Ok(p) => p,
            Err(e) => return Err(refuse_read(&mut client, ReadError::Wire(e)).await),
        };
        match packet {
            StartupPacket::SslRequest if !offered_tls && !client.is_tls() => {
                offered_tls = true;
                client = negotiate_tls(client, settings.tls.as_ref()).await?;
            }
            StartupPacket::GssEncRequest if !offered_gss && !client.is_tls() => {
                offered_gss = true;
                client.write_all(b"N").await?;
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                let error = GatewayError::fatal("08P01", "duplicate encryption request");
                return Err(refuse(&mut client, error).await);
            }
            StartupPacket::CancelRequest {
                process_id,
                secret_key,
            } => {
                let _ = client.shutdown().await;
                return Ok(Accepted::Cancel {
                    process_id,
                    secret_key,
                });
            }
            StartupPacket::Startup { version, params } => {
                return start_session(client, settings, version, params)
                    .await
                    .map(Accepted::Session);
            }
        }
    }
}

async fn negotiate_tls(
    client: ClientStream,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Result<ClientStream, HandshakeError> {
    let Stream::Plain(mut tcp) = client else {
        return Err(HandshakeError::Refused(
            "TLS requested on an encrypted connection".into(),
        ));
    };
    let Some(acceptor) = tls else {
        tcp.write_all(b"N").await?;
        return Ok(Stream::Plain(tcp));
    };
    tcp.write_all(b"S").await?;
    let tls = TlsAcceptor::from(Arc::clone(acceptor))
        .accept(tcp)
        .await
        .map_err(HandshakeError::Tls)?;
    Ok(Stream::Tls(Box::new(tls)))
}

async fn start_session(
    mut client: ClientStream,
    settings: &FrontendSettings,
    version: ProtocolVersion,
    params: Vec<(String, String)>,
) -> Result<Box<Handshake>, HandshakeError> {
    if version.major != 3 {
        let error = GatewayError::fatal(
            "0A000",
            format!(
                "unsupported frontend protocol {}.{}: Portcullis speaks 3.0",
                version.major, version.minor
            ),
        );
        return Err(refuse(&mut client, error).await);
    }
    if !client.is_tls() && !settings.allow_plaintext {
        let error = GatewayError::fatal("28000", "TLS is required: the token must not travel in cleartext")
            .with_hint("connect with sslmode=require (or verify-full with the gateway's CA)");
        return Err(refuse(&mut client, error).await);
    }
    let (protocol_options, params): (Vec<_>, Vec<_>) =
        params.into_iter().partition(|(k, _)| k.starts_with("_pq_."));
    let Some(database) = StartupPacket::param(&params, "database").map(str::to_owned) else {
        let error = GatewayError::fatal("08P01", "no database in the startup packet")
            .with_hint("set dbname to the name of a Portcullis connection");
        return Err(refuse(&mut client, error).await);
    };
    let user = StartupPacket::param(&params, "user")
        .unwrap_or_default()
        .to_owned();

    let mut out = Vec::new();
    // Protocol 3.2 (libpq 18) and `_pq_.` options are answered by stepping down to 3.0, which every
    // client supports; the session then runs as 3.0 on both sides.
    if version.minor > 0 || !protocol_options.is_empty() {
        let names: Vec<&str> = protocol_options.iter().map(|(k, _)| k.as_str()).collect();
        put_negotiate_protocol_version(&mut out, 0, &names);
    }
    put_authentication(&mut out, 3);
    client.write_all(&out).await?;

    let token = match read_message(&mut client, MAX_PASSWORD_MESSAGE).await {
        Ok((b'p', body)) => match frontend::password(&body) {
            Ok(token) => Secret::new(token.to_owned()),
            Err(e) => return Err(refuse_read(&mut client, ReadError::Wire(e)).await),
        },
        Ok((_, _)) => {
            let error = GatewayError::fatal("08P01", "expected a password message carrying the token");
            return Err(refuse(&mut client, error).await);
        }
        Err(e) => return Err(refuse_read(&mut client, e).await),
    };
    Ok(Box::new(Handshake {
        client,
        database,
        user,
        params,
        token,
    }))
}

async fn refuse(client: &mut ClientStream, error: GatewayError) -> HandshakeError {
    let _ = client.write_all(&error.to_bytes()).await;
    let _ = client.shutdown().await;
    HandshakeError::Refused(error.message)
}

async fn refuse_read(client: &mut ClientStream, error: ReadError) -> HandshakeError {
    if let ReadError::Wire(wire) = &error {
        let _ = client
            .write_all(&GatewayError::fatal("08P01", format!("invalid startup: {wire}")).to_bytes())
            .await;
        let _ = client.shutdown().await;
    }
    HandshakeError::Read(error)
}

/// Builds the listener's TLS configuration from a certificate chain and private key in PEM.
pub fn tls_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls_pemfile_certs(cert_pem)?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| rustls::Error::General(format!("private key: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, rustls::Error> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| rustls::Error::General(format!("certificate: {e}")))
}
