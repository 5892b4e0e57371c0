//! The upstream side of a session's start: connect to the database, negotiate TLS, log in with the
//! gateway's own credential (SCRAM-SHA-256, md5 or cleartext), and collect the session parameters.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{Fault, Party, Secret};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::io::{ReadError, read_message};
use crate::stream::{Stream, UpstreamStream};
use crate::wire::backend::{Authentication, BackendMessage, decode};
use crate::wire::{put_cstr, put_message, startup};

/// Messages during upstream login are small; a server that sends more is misbehaving.
const MAX_LOGIN_MESSAGE: usize = 1024 * 1024;

/// How to protect the connection to the database, as libpq's `sslmode`.
#[derive(Debug, Clone)]
pub enum UpstreamTls {
    /// Plaintext.
    Disable,
    /// TLS when the server offers it, without verifying its certificate; plaintext otherwise.
    Prefer(Arc<rustls::ClientConfig>),
    /// TLS, without verifying the certificate (encryption against passive observers only).
    Require(Arc<rustls::ClientConfig>),
    /// TLS, with the certificate verified against a CA and the host name.
    VerifyFull(Arc<rustls::ClientConfig>),
}

/// Where and as whom the gateway logs in for one connection.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `host:port` to connect to.
    pub address: String,
    /// The host name used for TLS verification (SNI).
    pub host: String,
    pub database: String,
    pub user: String,
    pub password: Secret<String>,
    pub tls: UpstreamTls,
    pub connect_timeout: Duration,
}

/// The key a database session answers cancel requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendKey {
    pub process_id: i32,
    pub secret_key: Vec<u8>,
}

/// A logged-in database session, ready for queries.
#[derive(Debug)]
pub struct Upstream {
    pub stream: UpstreamStream,
    /// ParameterStatus values the server announced (server_version, client_encoding, ...), in order.
    pub parameters: Vec<(String, String)>,
    pub key: BackendKey,
    /// The resolved address, for cancel requests.
    pub peer: std::net::SocketAddr,
}

/// Why the upstream login failed. None of these messages contains the password.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {address}: {source}")]
    Unreachable { address: String, source: std::io::Error },
    #[error("connecting to {0} timed out")]
    Timeout(String),
    #[error("the server does not offer TLS, which this connection requires")]
    TlsNotOffered,
    #[error("TLS with the server failed: {0}")]
    Tls(std::io::Error),
    #[error("the server refused the login ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("the server asked for an authentication method the gateway does not speak ({0})")]
    UnsupportedAuth(String),
    #[error("SCRAM exchange failed: {0}")]
    Scram(std::io::Error),
    #[error("protocol error from the server: {0}")]
    Protocol(#[from] ReadError),
    #[error("unexpected message {0:?} from the server during login")]
    Unexpected(char),
}

impl Fault for UpstreamError {
    fn party(&self) -> Party {
        Party::Upstream
    }
}

/// Startup parameters a client may set that are forwarded to the database. Others (notably `options`,
/// which can set any server setting, and `replication`) are not.
const FORWARDED_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "search_path",
];

/// Connects and logs in. `client_params` are the client's startup parameters; the safe ones are forwarded.
pub async fn connect(
    settings: &UpstreamSettings,
    client_params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let timeout = settings.connect_timeout;
    match tokio::time::timeout(timeout, connect_inner(settings, client_params)).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout(settings.address.clone())),
    }
}

async fn connect_inner(
    settings: &UpstreamSettings,
    client_params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let tcp = TcpStream::connect(&settings.address)
        .await
        .map_err(|source| UpstreamError::Unreachable {
            address: settings.address.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map_err(|source| UpstreamError::Unreachable {
        address: settings.address.clone(),
        source,
    })?;
    let mut stream = negotiate_tls(tcp, settings).await?;

    let mut params: Vec<(&str, &str)> = vec![("user", &settings.user), ("database", &settings.database)];
    params.extend(
        client_params
            .iter()
            .filter(|(k, _)| FORWARDED_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    stream
        .write_all(&startup::encode_startup(&params))
        .await
        .map_err(ReadError::Io)?;

    let mut parameters = Vec::new();
    let mut key = None;
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, body) = read_message(&mut stream, MAX_LOGIN_MESSAGE).await?;
        let message = decode(tag, &body).map_err(ReadError::Wire)?;
        match message {
            BackendMessage::Authentication(auth) => {
                let reply = answer_authentication(auth, settings, &mut scram)?;
                if !reply.is_empty() {
                    stream.write_all(&reply).await.map_err(ReadError::Io)?;
                }
            }
            BackendMessage::ParameterStatus { name, value } => {
                parameters.push((name.to_owned(), value.to_owned()))
            }
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            } => {
                key = Some(BackendKey {
                    process_id,
                    secret_key: secret_key.to_vec(),
                });
            }
            BackendMessage::ReadyForQuery { .. } => {
                let key = key.unwrap_or(BackendKey {
                    process_id: 0,
                    secret_key: vec![0; 4],
                });
                return Ok(Upstream {
                    stream,
                    parameters,
                    key,
                    peer,
                });
            }
            BackendMessage::ErrorResponse(fields) => {
                return Err(UpstreamError::Refused {
                    code: fields.get(b'C').unwrap_or("?????").to_owned(),
                    message: fields.get(b'M').unwrap_or("").to_owned(),
                });
            }
            BackendMessage::NoticeResponse(_) | BackendMessage::NegotiateProtocolVersion { .. } => {}
            _ => return Err(UpstreamError::Unexpected(char::from(tag))),
        }
    }
}

fn answer_authentication(
    auth: Authentication<'_>,
    settings: &UpstreamSettings,
    scram: &mut Option<ScramSha256>,
) -> Result<Vec<u8>, UpstreamError> {
    let password = settings.password.expose();
    let mut out = Vec::new();
    match auth {
        Authentication::Ok => {}
        Authentication::CleartextPassword => put_message(&mut out, b'p', |b| put_cstr(b, password)),
        Authentication::Md5Password { salt } => {
            let hashed = md5_hash(settings.user.as_bytes(), password.as_bytes(), salt);
            put_message(&mut out, b'p', |b| put_cstr(b, &hashed));
        }
        Authentication::Sasl { mechanisms } => {
            if !mechanisms.contains(&"SCRAM-SHA-256") {
                return Err(UpstreamError::UnsupportedAuth(mechanisms.join(", ")));
            }
            let exchange = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
            let first = exchange.message();
            put_message(&mut out, b'p', |b| {
                put_cstr(b, "SCRAM-SHA-256");
                b.extend_from_slice(&i32::try_from(first.len()).unwrap_or(i32::MAX).to_be_bytes());
                b.extend_from_slice(first);
            });
            *scram = Some(exchange);
        }
        Authentication::SaslContinue(data) => {
            let exchange = scram.as_mut().ok_or(UpstreamError::Unexpected('R'))?;
            exchange.update(data).map_err(UpstreamError::Scram)?;
            let message = exchange.message();
            put_message(&mut out, b'p', |b| b.extend_from_slice(message));
        }
        Authentication::SaslFinal(data) => {
            let exchange = scram.as_mut().ok_or(UpstreamError::Unexpected('R'))?;
            // Verifies the server's signature: a server that does not know the password cannot pass.
            exchange.finish(data).map_err(UpstreamError::Scram)?;
        }
        Authentication::Unsupported(code) => {
            return Err(UpstreamError::UnsupportedAuth(format!("code {code}")));
        }
    }
    Ok(out)
}

async fn negotiate_tls(
    mut tcp: TcpStream,
    settings: &UpstreamSettings,
) -> Result<UpstreamStream, UpstreamError> {
    let (connector, required) = match &settings.tls {
        UpstreamTls::Disable => return Ok(Stream::Plain(tcp)),
        UpstreamTls::Prefer(c) => (c, false),
        UpstreamTls::Require(c) | UpstreamTls::VerifyFull(c) => (c, true),
    };
    tcp.write_all(&startup::encode_ssl_request())
        .await
        .map_err(ReadError::Io)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(ReadError::Io)?;
    match answer {
        [b'S'] => {
            let name = ServerName::try_from(settings.host.clone())
                .map_err(|e| UpstreamError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
            let tls = TlsConnector::from(Arc::clone(connector))
                .connect(name, tcp)
                .await
                .map_err(UpstreamError::Tls)?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        [b'N'] if !required => Ok(Stream::Plain(tcp)),
        [b'N'] => Err(UpstreamError::TlsNotOffered),
        [other] => Err(UpstreamError::Unexpected(char::from(other))),
    }
}

/// A connector that verifies the server against the CAs in `ca_pem` (verify-full).
pub fn verifying_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| rustls::Error::General(format!("CA certificate: {e}")))?;
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connector that encrypts without verifying the server (libpq's `require` and `prefer`).
pub fn unverified_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(unverified::AcceptAnyServer(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

mod unverified {
    //! The certificate "verifier" behind sslmode=require: checks signatures, trusts any certificate.

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};

    #[derive(Debug)]
    pub struct AcceptAnyServer(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
