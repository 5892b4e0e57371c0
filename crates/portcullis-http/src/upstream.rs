//! One `http` connection's upstream: its base URL, routes, credential, and a pooled HTTP client (keep-
//! alive; HTTP/2 where the upstream offers it by ALPN; a separate HTTP/1.1 client for upgrades, which
//! HTTP/2 cannot carry).

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::credential::UpstreamCredential;
use crate::route::{RouteTemplate, UpstreamBase};

/// How long an idle pooled connection to an upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// What the binary resolves from a connection's configuration.
#[derive(Debug)]
pub struct UpstreamSettings {
    pub name: String,
    pub base: UpstreamBase,
    /// (route name, template), in configuration order.
    pub routes: Vec<(String, RouteTemplate)>,
    /// Headers shown to policy.
    pub context_headers: Vec<http::HeaderName>,
    pub credential: UpstreamCredential,
    /// For an https upstream: how to verify it (roots, or none for `tls = "require"`).
    pub tls: Option<rustls::ClientConfig>,
    pub connect_timeout: Duration,
    /// Until the upstream's response headers.
    pub response_timeout: Duration,
    /// The connection is an MCP server: POSTs to its endpoint are read as JSON-RPC.
    pub mcp: Option<crate::mcp::McpSettings>,
}

/// A connection the proxy forwards to.
#[derive(Debug)]
pub struct Upstream {
    pub settings: UpstreamSettings,
    pub(crate) client: HttpClient,
    pub(crate) upgrade_client: HttpClient,
}

impl Upstream {
    pub fn new(settings: UpstreamSettings) -> Result<Self, rustls::Error> {
        let client = build_client(&settings, true)?;
        let upgrade_client = build_client(&settings, false)?;
        Ok(Upstream {
            settings,
            client,
            upgrade_client,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }
}

fn build_client(settings: &UpstreamSettings, http2: bool) -> Result<HttpClient, rustls::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    let tls = match &settings.tls {
        Some(tls) => tls.clone(),
        None => plain_only_config()?,
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    let connector = if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

/// The TLS settings of a plain `http://` upstream: never used (the URL decides), but the connector
/// needs some; no roots, so nothing could verify.
fn plain_only_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}
