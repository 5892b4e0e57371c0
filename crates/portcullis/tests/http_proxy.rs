//! The HTTP proxy end to end: the real gateway binary in front of real HTTP services started here (an
//! echo service that reports what it received, a streaming endpoint, an HTTPS service with its own CA, a
//! WebSocket echo, an OAuth token endpoint), called with reqwest (HTTP/1.1 and HTTP/2) and a WebSocket
//! client. Tokens come from the development issuer (`token mint`) and from a JWKS-serving test issuer.
//! Every request's audit record is read back from the store and through `portcullis sessions`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::trail;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_audit::{AuditStore, EventBody, SessionFilter, SqliteStore};
use portcullis_testkit::gateway::{GatewayProcess, run_cli};
use portcullis_testkit::issuer::TestIssuer;
use portcullis_testkit::ports::{free_addr, free_port};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const API_KEY: &str = "upstream-api-key-7f3a";
const BASIC_PASSWORD: &str = "upstream-basic-pw-91c2";
const CLIENT_SECRET: &str = "oauth-client-secret-55d1";
const SECRETS: [(&str, &str); 3] = [
    ("PORTCULLIS_TEST_API_KEY", API_KEY),
    ("PORTCULLIS_TEST_BASIC_PW", BASIC_PASSWORD),
    ("PORTCULLIS_TEST_CLIENT_SECRET", CLIENT_SECRET),
];

const POLICY: &str = r#"
@id("agents-connect")
permit(principal in Group::"agents", action == Action::"connect", resource);

@id("agents-read")
permit(principal in Group::"agents", action == Action::"http_read", resource)
unless { resource == Route::"crm/customer" };

@id("customer-reads-need-tenant")
permit(principal in Group::"agents", action == Action::"http_read", resource == Route::"crm/customer")
when { context.query.contains({name: "tenant", value: "acme"}) }
unless { context.query_repeated.contains("tenant") };

@id("agents-delete")
permit(principal in Group::"agents", action == Action::"http_delete", resource in Connection::"crm");

@id("no-customer-deletes")
forbid(principal, action == Action::"http_delete", resource == Route::"crm/customer");

@id("orders-in-eur")
permit(principal in Group::"agents", action == Action::"http_write", resource == Route::"crm/orders")
when { context has body && context.body.contains({name: "currency", value: "EUR"}) };

@id("traced-writes")
forbid(principal, action == Action::"http_write", resource in Connection::"crm")
unless { context.headers.contains({name: "x-trace", value: "on"}) };

@id("writes-elsewhere")
permit(principal in Group::"agents", action == Action::"http_write", resource)
unless { resource in Connection::"crm" };

@id("held-crm-writes") @approval("required")
permit(principal in Group::"agents", action == Action::"http_write", resource == Connection::"crm");
"#;

/// A response body for the test services.
type TestBody = BoxBody<Bytes, Infallible>;

fn json_response(value: &Value) -> Response<TestBody> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

/// Tokens issued to `short-client` (one test uses it).
static SHORT_ISSUED: AtomicUsize = AtomicUsize::new(0);

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// The echo service: reports method, path, query, headers, body and HTTP version as JSON;
/// `/stream?mib=N` streams N MiB.
async fn echo(req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    if path.ends_with("/sleep") {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    if path.ends_with("/stream") {
        let mib: usize = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("mib="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let chunks = futures_util::stream::iter(
            (0..mib * 16).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK)))),
        );
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        headers.insert(
            name.as_str().to_owned(),
            Value::String(value.to_str().unwrap_or("").to_owned()),
        );
    }
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_owned();
    let version = format!("{:?}", req.version());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    Ok(json_response(&json!({
        "method": method, "path": path, "query": query, "headers": headers,
        "body": String::from_utf8_lossy(&body), "version": version,
    })))
}

/// Serves `service` on a new loopback port (optionally over TLS); returns the address.
async fn start_service<F, Fut>(service: F, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<TestBody>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = service.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(config) => {
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service_fn(service))
                            .await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(tcp), service_fn(service))
                            .await;
                    }
                }
            });
        }
    });
    addr
}

/// The audit witness: an upstream that, before answering, reads the gateway's audit store and reports
/// whether the request it is answering was already recorded there (`{"recorded": bool}`), and counts
/// the requests it received.
#[derive(Debug, Default)]
struct Witness {
    store: OnceLock<PathBuf>,
    hits: AtomicUsize,
}

async fn start_witness(witness: Arc<Witness>) -> SocketAddr {
    start_service(
        move |req: Request<Incoming>| {
            let witness = Arc::clone(&witness);
            async move {
                witness.hits.fetch_add(1, Ordering::SeqCst);
                // What the gateway records: the target as the agent sent it, with the prefix.
                let sent = format!(
                    "{} /witness{}",
                    req.method(),
                    req.uri().path_and_query().unwrap().as_str()
                );
                let path = witness.store.get().unwrap().clone();
                let recorded = tokio::task::spawn_blocking(move || {
                    let mut store = SqliteStore::open(&path).unwrap();
                    store.events_after(0, 1_000_000).unwrap().iter().any(|e| {
                        matches!(e.decode(), Ok(EventBody::Statement(s))
                            if s.text == sent && s.decision == "allow")
                    })
                })
                .await
                .unwrap();
                Ok(json_response(&json!({ "recorded": recorded })))
            }
        },
        None,
    )
    .await
}

/// A WebSocket echo server.
async fn start_websocket_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        ws.send(message).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

/// An OAuth token endpoint for client `gateway-client`: checks the client's Basic credentials and the
/// grant, counts the tokens it issues.
async fn start_token_endpoint(issued: Arc<AtomicUsize>) -> SocketAddr {
    start_service(
        move |req: Request<Incoming>| {
            let issued = Arc::clone(&issued);
            async move {
                use base64::Engine as _;
                let basic = |client: &str| {
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(format!("{client}:{CLIENT_SECRET}"))
                    )
                };
                let presented = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                // `short-client` gets tokens that live one second.
                let short = presented == basic("short-client");
                let authorized = short || presented == basic("gateway-client");
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
                let grant = form.contains(&("grant_type".into(), "client_credentials".into()))
                    && form.contains(&("scope".into(), "crm.read crm.write".into()));
                if !authorized || !grant {
                    let mut response = json_response(&json!({"error": "invalid_client"}));
                    *response.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                    return Ok(response);
                }
                if short {
                    let n = SHORT_ISSUED.fetch_add(1, Ordering::SeqCst) + 1;
                    return Ok(json_response(&json!({
                        "access_token": format!("short-access-{n}"), "token_type": "Bearer", "expires_in": 1,
                    })));
                }
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(json_response(&json!({
                    "access_token": format!("oauth-access-{n}"), "token_type": "Bearer", "expires_in": 3600,
                })))
            }
        },
        None,
    )
    .await
}

/// A CA, and a server configuration for 127.0.0.1 signed by it (ALPN h2 and http/1.1).
fn test_tls() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca.pem(), Arc::new(config))
}

/// The gateway and everything it talks to.
struct Fixture {
    gateway: GatewayProcess,
    /// `http://127.0.0.1:<http listener>`.
    base: String,
    issuer: TestIssuer,
    oauth_issued: Arc<AtomicUsize>,
    witness: Arc<Witness>,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with(true, "60s").await
    }

    /// GET `path` over TLS to the same listener (its development certificate, not verified).
    async fn get_over_tls(&self, path: &str, token: &str) -> reqwest::Response {
        let tls = reqwest::Client::builder()
            .no_proxy()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        tls.get(format!("{}{path}", self.base.replace("http://", "https://")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// With `[server.http] allow_plaintext` and `idle_timeout` as given.
    async fn start_with(allow_plaintext: bool, idle_timeout: &str) -> Fixture {
        let echo_addr = start_service(echo, None).await;
        let (ca_pem, tls) = test_tls();
        let secure_addr = start_service(echo, Some(tls)).await;
        let ws_addr = start_websocket_echo().await;
        let oauth_issued = Arc::new(AtomicUsize::new(0));
        let token_addr = start_token_endpoint(Arc::clone(&oauth_issued)).await;
        let witness = Arc::new(Witness::default());
        let witness_addr = start_witness(Arc::clone(&witness)).await;
        let issuer = TestIssuer::start().await.unwrap();
        let http_port = free_port().unwrap();
        let admin = free_addr().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-http-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("policy.cedar"), POLICY).unwrap();
        witness
            .store
            .set(dir.path().join("state").join("audit.db"))
            .unwrap();
        std::fs::write(dir.path().join("upstream-ca.pem"), &ca_pem).unwrap();
        let config = format!(
            r#"
[server]
state_dir = "{state}"
[server.postgres]
listen = "127.0.0.1:{pg}"
[server.http]
listen = "127.0.0.1:{http_port}"
allow_plaintext = {allow_plaintext}
idle_timeout = "{idle_timeout}"
[server.admin]
listen = "{admin}"
[identity.dev_issuer]
enabled = true
[[identity.issuers]]
issuer = "{issuer}"
audience = "portcullis"
alias = "corp"
algorithms = ["RS256"]
[policy]
files = ["policy.cedar"]

[[connections]]
name = "crm"
protocol = "http"
upstream_url = "http://{echo_addr}/api"
credential = {{ type = "header", name = "X-Api-Key", value = "${{PORTCULLIS_TEST_API_KEY}}" }}
hosts = ["crm.internal"]
routes = [
  {{ template = "/customers/{{id}}", name = "customer" }},
  {{ template = "/orders", name = "orders" }},
]
context_headers = ["x-trace"]

[[connections]]
name = "billing"
protocol = "http"
upstream_url = "http://{echo_addr}"
credential = {{ type = "basic", user = "svc-billing", password = "${{PORTCULLIS_TEST_BASIC_PW}}" }}

[[connections]]
name = "tickets"
protocol = "http"
upstream_url = "http://{echo_addr}"
credential = {{ type = "oauth_client_credentials", token_url = "http://{token_addr}/token", client_id = "gateway-client", client_secret = "${{PORTCULLIS_TEST_CLIENT_SECRET}}", scopes = ["crm.read", "crm.write"] }}

[[connections]]
name = "tickets-short"
protocol = "http"
upstream_url = "http://{echo_addr}"
credential = {{ type = "oauth_client_credentials", token_url = "http://{token_addr}/token", client_id = "short-client", client_secret = "${{PORTCULLIS_TEST_CLIENT_SECRET}}", scopes = ["crm.read", "crm.write"] }}

[[connections]]
name = "secure"
protocol = "http"
upstream_url = "https://{secure_addr}"
ca_file = "upstream-ca.pem"

[[connections]]
name = "live"
protocol = "http"
upstream_url = "http://{ws_addr}"

[[connections]]
name = "slow"
protocol = "http"
upstream_url = "http://{echo_addr}"
response_timeout = "1s"

[[connections]]
name = "down"
protocol = "http"
upstream_url = "http://127.0.0.1:{dead}"

[[connections]]
name = "witness"
protocol = "http"
upstream_url = "http://{witness_addr}"
"#,
            state = dir.path().join("state").display(),
            pg = free_port().unwrap(),
            issuer = issuer.url(),
            dead = free_port().unwrap(),
        );
        let gateway = GatewayProcess::start_in(dir, Path::new(BIN), &config, &admin, &SECRETS)
            .await
            .expect("gateway starts");
        Fixture {
            gateway,
            base: format!("http://127.0.0.1:{http_port}"),
            issuer,
            oauth_issued,
            witness,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// A WebSocket handshake request for the `live` connection's echo, with `token` as its bearer.
    fn websocket_request(
        &self,
        token: Option<&str>,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = format!("{}/live/socket", self.base.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    }

    /// A development-issuer token minted with the CLI, as a user would.
    fn mint(&self, sub: &str, groups: &[&str]) -> String {
        self.gateway
            .mint(Path::new(BIN), &SECRETS, sub, groups, "15m")
            .unwrap()
    }

    /// `method path` through the gateway; (status, content type, body as JSON or Null).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        configure: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, String, Value, reqwest::header::HeaderMap) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = configure(request).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        (
            status,
            content_type,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body, _) = self.call("GET", path, Some(token), |r| r).await;
        (status, body)
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(self.store_path()).unwrap()
    }

    fn store_path(&self) -> &Path {
        self.witness.store.get().unwrap()
    }

    /// The gateway's `/metrics` (its admin listener, read from its configuration).
    async fn metrics(&self) -> String {
        let config = std::fs::read_to_string(self.gateway.config_path()).unwrap();
        let admin = config.split("[server.admin]\nlisten = \"").nth(1).unwrap();
        let admin = admin.split('"').next().unwrap();
        reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `portcullis <args> --config <the gateway's config>`: (exit code, stdout + stderr).
    fn cli(&self, args: &[&str]) -> (i32, String) {
        let config = self.gateway.config_path();
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        let out = run_cli(Path::new(BIN), &all, &SECRETS).unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

fn assert_problem(status: u16, content_type: &str, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["status"], expected);
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn credentials_are_injected_and_the_token_never_forwarded() {
    let f = Fixture::start().await;
    let token = f.mint("crm-bot", &["agents"]);

    // A static header, on HTTP/1.1, under the base path; the prefix is removed.
    let (status, echo) = f.get("/crm/customers/42?tenant=acme", &token).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/api/customers/42");
    assert_eq!(echo["query"], "tenant=acme");
    assert_eq!(echo["headers"]["x-api-key"], API_KEY);
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the agent's token was forwarded"
    );
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");

    // An agent cannot choose the upstream credential: the gateway's replaces its own.
    let (_, _, echo, _) = f
        .call("GET", "/crm/other", Some(&token), |r| {
            r.header("x-api-key", "agent-chosen")
        })
        .await;
    assert_eq!(echo["headers"]["x-api-key"], API_KEY);

    // HTTP Basic.
    let (status, echo) = f.get("/billing/invoices", &token).await;
    assert_eq!(status, 200);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("svc-billing:{BASIC_PASSWORD}"));
    assert_eq!(echo["headers"]["authorization"], format!("Basic {basic}"));

    // OAuth client credentials: one token for many requests, even concurrent ones.
    let calls = (0..8).map(|_| f.get("/tickets/queue", &token));
    for (status, echo) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{echo}");
        assert_eq!(echo["headers"]["authorization"], "Bearer oauth-access-1");
    }
    assert_eq!(
        f.oauth_issued.load(Ordering::SeqCst),
        1,
        "the token is cached and fetched once"
    );

    // A token that lives a second is used for half of it, then replaced.
    let (_, echo) = f.get("/tickets-short/queue", &token).await;
    assert_eq!(echo["headers"]["authorization"], "Bearer short-access-1");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (_, echo) = f.get("/tickets-short/queue", &token).await;
    assert_eq!(echo["headers"]["authorization"], "Bearer short-access-2");

    // HTTP/2 from the agent (prior knowledge, h2c), the same answers.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(format!("{}/crm/customers/7?tenant=acme", f.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-api-key"], API_KEY);

    // HTTPS upstream verified against the configured CA; HTTP/2 negotiated by ALPN.
    let (status, echo) = f.get("/secure/ping", &token).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["version"], "HTTP/2.0");

    // The same listener over TLS (its development certificate): HTTP/2 by ALPN.
    let response = f.get_over_tls("/crm/products", &token).await;
    assert_eq!(
        (response.status().as_u16(), response.version()),
        (200, reqwest::Version::HTTP_2)
    );
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    // Routing by Host: the whole path is forwarded.
    let (status, _, echo, _) = f
        .call("GET", "/customers/9?tenant=acme", Some(&token), |r| {
            r.header("host", "crm.internal")
        })
        .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/api/customers/9");
    assert_eq!(echo["headers"]["x-forwarded-host"], "crm.internal");

    let log = f.gateway.log().unwrap();
    for secret in [
        token.as_str(),
        API_KEY,
        BASIC_PASSWORD,
        CLIENT_SECRET,
        "oauth-access-1",
    ] {
        assert!(!log.contains(secret), "a secret appeared in the gateway log");
    }
}

#[tokio::test]
async fn bad_tokens_get_401_problems_and_learn_nothing() {
    let f = Fixture::start().await;

    let (status, content_type, body, headers) = f.call("GET", "/crm/customers/1", None, |r| r).await;
    assert_problem(status, &content_type, &body, 401);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"missing token\""
    );

    let expired = f
        .issuer
        .token()
        .subject("svc")
        .groups(&["agents"])
        .audience("portcullis")
        .expires_in(-600)
        .sign();
    let wrong_audience = f
        .issuer
        .token()
        .subject("svc")
        .groups(&["agents"])
        .audience("someone-else")
        .sign();
    for (token, class) in [
        (&expired, "expired"),
        (&wrong_audience, "wrong audience"),
        (&"not-a-jwt".to_owned(), "malformed token"),
    ] {
        // An unknown connection answers the same as a known one: nothing before the token.
        for path in ["/crm/customers/1", "/no-such-connection/x"] {
            let (status, content_type, body, headers) = f.call("GET", path, Some(token), |r| r).await;
            assert_problem(status, &content_type, &body, 401);
            assert_eq!(
                headers["www-authenticate"],
                format!("Bearer error=\"invalid_token\", error_description=\"{class}\"").as_str()
            );
            assert!(!body.to_string().contains(token.as_str()), "the token was echoed");
        }
    }

    // A good token (from the other issuer) reaches the 404.
    let good = f
        .issuer
        .token()
        .subject("svc")
        .groups(&["agents"])
        .audience("portcullis")
        .sign();
    let (status, content_type, body, _) = f.call("GET", "/no-such-connection/x", Some(&good), |r| r).await;
    assert_problem(status, &content_type, &body, 404);

    // An operator's revocation bars the identity within the control interval.
    let revoked = f.mint("revoke-me", &["agents"]);
    assert_eq!(f.get("/crm/products", &revoked).await.0, 200);
    let config = f.gateway.config_path();
    let out = run_cli(
        Path::new(BIN),
        &[
            "revoke",
            "--subject",
            "revoke-me",
            "--until",
            "1h",
            "--config",
            config.to_str().unwrap(),
        ],
        &SECRETS,
    )
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, _, body, headers) = f.call("GET", "/crm/products", Some(&revoked), |r| r).await;
        if status == 401 {
            assert_eq!(
                headers["www-authenticate"],
                "Bearer error=\"invalid_token\", error_description=\"revoked\""
            );
            assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation was not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Its live session (the client's kept-alive connection) was ended: the gateway closed it.
    let sessions = trail::ended(f.store_path(), "revoke-me", 1).await;
    let end = sessions[0].end.as_ref().unwrap();
    // (Its requests until the revocation reached the gateway: the first, and the polls above.)
    assert_eq!(end.reason, "revoked", "{sessions:#?}");
    assert!(end.statements >= 1 && end.refused == 0, "{sessions:#?}");
}

#[tokio::test]
async fn policy_decides_each_request_by_method_route_and_context() {
    let f = Fixture::start().await;
    let token = f.mint("crm-bot", &["agents"]);
    let outsider = f.mint("stranger", &["visitors"]);

    let status = |(s, _, _, _): (u16, String, Value, reqwest::header::HeaderMap)| s;
    // GET on the customer route only with the right tenant.
    assert_eq!(f.get("/crm/customers/1?tenant=acme", &token).await.0, 200);
    let (s, ct, body, _) = f
        .call("GET", "/crm/customers/1?tenant=globex", Some(&token), |r| r)
        .await;
    assert_problem(s, &ct, &body, 403);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no policy permits http_read on Route \"crm/customer\""),
        "{body}"
    );
    // The right tenant and another: an upstream may read either, so the permit asks for one.
    let (s, _, _, _) = f
        .call(
            "GET",
            "/crm/customers/1?tenant=acme&tenant=globex",
            Some(&token),
            |r| r,
        )
        .await;
    assert_eq!(s, 403);
    // Other reads are permitted.
    assert_eq!(f.get("/crm/products", &token).await.0, 200);

    // DELETE: forbidden on customers (the forbid is named), permitted elsewhere on the connection.
    let (s, ct, body, _) = f.call("DELETE", "/crm/customers/1", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 403);
    assert_eq!(body["policies"], json!(["no-customer-deletes"]));
    assert!(body["detail"].as_str().unwrap().contains("no-customer-deletes"));
    assert_eq!(
        status(f.call("DELETE", "/crm/products/3", Some(&token), |r| r).await),
        200
    );

    // POST /orders: a JSON body field decides; the allow-listed header is seen; the body arrives intact.
    let order = |currency: &str| json!({"currency": currency, "lines": [{"sku": "a", "qty": 2}]});
    let (s, _, echo, _) = f
        .call("POST", "/crm/orders", Some(&token), |r| {
            r.header("x-trace", "on").json(&order("EUR"))
        })
        .await;
    assert_eq!(s, 200, "{echo}");
    assert_eq!(
        serde_json::from_str::<Value>(echo["body"].as_str().unwrap()).unwrap(),
        order("EUR")
    );
    let (s, ct, body, _) = f
        .call("POST", "/crm/orders", Some(&token), |r| {
            r.header("x-trace", "on").json(&order("USD"))
        })
        .await;
    assert_problem(s, &ct, &body, 403);
    let (s, _, body, _) = f
        .call("POST", "/crm/orders", Some(&token), |r| r.json(&order("EUR")))
        .await;
    assert_eq!((s, body["policies"].clone()), (403, json!(["traced-writes"])));
    // A body naming a member twice: policy would see the last currency, a first-wins server would act
    // on the first. Refused before any decision, never forwarded.
    let (s, ct, body, _) = f
        .call("POST", "/crm/orders", Some(&token), |r| {
            r.header("x-trace", "on")
                .header("content-type", "application/json")
                .body(r#"{"currency":"USD","lines":[],"currency":"EUR"}"#)
        })
        .await;
    assert_problem(s, &ct, &body, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("names a member twice"),
        "{body}"
    );
    // A body too large to inspect has no fields: the body condition cannot hold, and it is not
    // buffered to find out.
    let mut big = order("EUR");
    big["padding"] = json!("p".repeat(64 * 1024));
    let (s, _, _, _) = f
        .call("POST", "/crm/orders", Some(&token), |r| {
            r.header("x-trace", "on").json(&big)
        })
        .await;
    assert_eq!(s, 403);
    // Elsewhere, a large body streams through intact.
    let (s, _, echo, _) = f
        .call("POST", "/billing/upload", Some(&token), |r| r.json(&big))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(echo["body"].as_str().unwrap()).unwrap(),
        big
    );

    // Permitted only by an approval policy, with approvals off: refused, saying so.
    let (s, ct, body, _) = f
        .call("PUT", "/crm/settings", Some(&token), |r| {
            r.header("x-trace", "on").body("x")
        })
        .await;
    assert_problem(s, &ct, &body, 403);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("approvals are not enabled on this gateway"),
        "{body}"
    );
    assert_eq!(body["policies"], json!(["held-crm-writes"]));

    // Who may not connect is refused before anything else is decided.
    let (s, ct, body, _) = f.call("GET", "/crm/products", Some(&outsider), |r| r).await;
    assert_problem(s, &ct, &body, 403);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("may not use connection"),
        "{body}"
    );

    // Paths an upstream could read two ways, and methods no action covers, are refused.
    // (The client normalises `..` itself; these it sends as they are.)
    for path in [
        "/crm//customers/1",
        "/crm/customers%2F1",
        "/crm/a%5C..%5Ccustomers/1",
    ] {
        let (s, ct, body, _) = f.call("GET", path, Some(&token), |r| r).await;
        assert_problem(s, &ct, &body, 400);
    }
    let (s, _, _, _) = f.call("TRACE", "/crm/x", Some(&token), |r| r).await;
    assert_eq!(s, 405);

    // `policy check` decides HTTP requests offline exactly as the proxy does.
    let check = |extra: &[&str]| {
        let config = f.gateway.config_path();
        let mut args = vec![
            "policy",
            "check",
            "--config",
            config.to_str().unwrap(),
            "--subject",
            "crm-bot",
            "--group",
            "agents",
            "--connection",
            "crm",
        ];
        args.extend_from_slice(extra);
        let out = run_cli(Path::new(BIN), &args, &[]).unwrap();
        (
            out.status.success(),
            // A report on stdout, an error on stderr.
            [out.stdout, out.stderr]
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .concat(),
        )
    };
    let (ok, text) = check(&["--http", "DELETE /crm/customers/1"]);
    assert!(
        !ok && text.contains("no-customer-deletes") && text.contains("route         customer"),
        "{text}"
    );
    let (ok, text) = check(&["--http", "GET /crm/customers/1?tenant=acme"]);
    assert!(ok, "{text}");
    let (ok, text) = check(&[
        "--http",
        "POST /crm/orders",
        "--header",
        "x-trace: on",
        "--body",
        r#"{"currency": "EUR"}"#,
    ]);
    assert!(ok && text.contains("currency=EUR"), "{text}");
    // The check refuses an ambiguous body as the proxy does.
    let (ok, text) = check(&[
        "--http",
        "POST /crm/orders",
        "--header",
        "x-trace: on",
        "--body",
        r#"{"currency": "USD", "currency": "EUR"}"#,
    ]);
    assert!(!ok && text.contains("names a member twice"), "{text}");

    let metrics = f.metrics().await;
    assert!(
        metrics.contains("portcullis_http_requests_total{connection=\"crm\",status=\"403\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn upstream_failures_and_websockets() {
    let f = Fixture::start().await;
    let token = f.mint("crm-bot", &["agents"]);

    let (s, ct, body, _) = f.call("GET", "/down/x", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 502);
    assert!(body["detail"].as_str().unwrap().contains("unreachable"), "{body}");
    let (s, ct, body, _) = f.call("GET", "/slow/sleep", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 504);

    // A WebSocket upgrade passes through; messages echo both ways.
    let (mut ws, response) = tokio_tungstenite::connect_async(f.websocket_request(Some(&token)))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the gateway"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    drop(ws);

    // Without a token, no upgrade.
    let err = tokio_tungstenite::connect_async(f.websocket_request(None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // The trail: the gateway's 502 and 504 after forwarding, and the upgrade, ended when it closed.
    let requests = trail::requests(f.store_path(), "crm-bot", 3).await;
    let outcomes: Vec<(String, Option<String>)> = requests
        .iter()
        .map(|r| {
            let o = r.outcome.as_ref().unwrap();
            (o.tags.join(","), o.error.as_ref().map(|e| e.sqlstate.clone()))
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("502,gateway_error".into(), Some("502".into())),
            ("504,gateway_error".into(), Some("504".into())),
            ("101,upgrade_closed".into(), None),
        ]
    );
    // Each in a session of its own (three gateway connections). The WebSocket's client connection
    // was its own, and its session ended when the socket closed; the others stay live with theirs.
    let sessions = trail::ended(f.store_path(), "crm-bot", 1).await;
    let ended: Vec<_> = sessions.iter().filter(|s| s.end.is_some()).collect();
    assert_eq!(ended.len(), 1, "{sessions:#?}");
    assert_eq!(ended[0].id, requests[2].session);
    let end = ended[0].end.as_ref().unwrap();
    assert_eq!((end.reason.as_str(), end.statements), ("connection_closed", 1));
}

#[tokio::test]
async fn large_responses_stream_with_bounded_gateway_memory() {
    let f = Fixture::start().await;
    let token = f.mint("crm-bot", &["agents"]);
    // Warm up pools and caches first, so the baseline includes them.
    let (status, _) = f.get("/billing/stream?mib=1", &token).await;
    assert_eq!(status, 200);
    let before = f.gateway.rss_kib().unwrap();
    let mut response = f
        .http
        .get(format!("{}/billing/stream?mib=200", f.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut total = 0usize;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, 200 * 1024 * 1024);
    let peak = f.gateway.peak_rss_kib().unwrap();
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "gateway RSS grew from {before} KiB to a peak of {peak} KiB while streaming 200 MiB"
    );
}

#[tokio::test]
async fn plaintext_is_refused_unless_allowed() {
    let f = Fixture::start_with(false, "60s").await;
    let token = f.mint("crm-bot", &["agents"]);
    let (s, ct, body, _) = f.call("GET", "/crm/products", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 400);
    assert!(body["detail"].as_str().unwrap().contains("HTTPS only"), "{body}");
    let response = f.get_over_tls("/crm/products", &token).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn every_request_is_recorded_before_it_is_forwarded_and_replays() {
    let mut f = Fixture::start().await;
    let token = f.mint("audit-bot", &["agents"]);

    // The upstream reads the audit store while answering: the request was recorded before it got it.
    let (status, body) = f.get("/witness/check?nonce=n1", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["recorded"], true,
        "forwarded before its audit event was committed"
    );
    // Allowed, refused by policy, and no such connection (after the token): all recorded.
    let (status, _) = f.get("/crm/customers/42?tenant=acme", &token).await;
    assert_eq!(status, 200);
    let (s, ct, body, _) = f.call("DELETE", "/crm/customers/1", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 403);
    let (s, ct, body, _) = f.call("GET", "/nowhere/x", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 404);
    // A rejected token is not a session (metrics only), as for PostgreSQL.
    let before = f.store().sessions(&SessionFilter::default()).unwrap().len();
    let (s, _, _, _) = f.call("GET", "/crm/products", Some("not-a-token"), |r| r).await;
    assert_eq!(s, 401);

    let requests = trail::requests(f.store_path(), "audit-bot", 4).await;
    assert_eq!(
        f.store().sessions(&SessionFilter::default()).unwrap().len(),
        before,
        "a 401 recorded a session"
    );
    // One client connection: a session per gateway connection it used (witness, crm, and none for the
    // 404), live while the connection is open.
    let texts: Vec<&str> = requests.iter().map(|r| r.statement.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "GET /witness/check?nonce=n1",
            "GET /crm/customers/42?tenant=acme",
            "DELETE /crm/customers/1",
            "GET /nowhere/x"
        ]
    );
    let crm = &requests[1].session;
    assert_eq!(&requests[2].session, crm, "two requests to crm on one connection");
    assert_ne!(&requests[0].session, crm);
    assert_ne!(&requests[3].session, crm);
    assert_eq!(
        requests.iter().map(|r| r.statement.n).collect::<Vec<_>>(),
        [1, 1, 2, 1]
    );
    let (code, out) = f.cli(&["sessions", "list", "--subject", "audit-bot"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains("live"), "{out}");

    // The client's connection closes: its sessions end.
    f.http = reqwest::Client::builder().no_proxy().build().unwrap();
    let sessions = trail::ended(f.store_path(), "audit-bot", 3).await;
    let session = sessions.iter().find(|s| &s.id == crm).unwrap();
    // The crm session: start (http, the credential kind), each request's statement and outcome, end.
    let [
        EventBody::SessionStart(start),
        EventBody::Statement(statement),
        EventBody::Outcome(outcome),
        EventBody::Statement(refused),
        EventBody::Outcome(refusal),
        EventBody::SessionEnd(end),
    ] = session.events.as_slice()
    else {
        panic!("{:#?}", session.events);
    };
    assert_eq!(
        (
            start.protocol.as_str(),
            start.connection.as_str(),
            start.upstream_role.as_str()
        ),
        ("http", "crm", "header")
    );
    assert_eq!(start.subject, "audit-bot");
    assert_eq!(statement.message, "http");
    assert_eq!(statement.text, "GET /crm/customers/42?tenant=acme");
    assert_eq!(statement.decision, "allow");
    assert_eq!(statement.policies, ["customer-reads-need-tenant"]);
    assert_eq!(statement.statements[0].kind, "http_read");
    assert_eq!(statement.statements[0].reads, ["crm/customer"]);
    assert!(outcome.ran && outcome.error.is_none());
    assert_eq!(
        (outcome.n, outcome.tags.join(",")),
        (1, "200,completed".to_owned())
    );
    assert_eq!((refused.n, refused.decision.as_str()), (2, "deny"));
    assert!(!refusal.ran);
    assert_eq!((refusal.n, refusal.tags.join(",")), (2, "403,refused".to_owned()));
    assert_eq!(
        (end.reason.as_str(), end.statements, end.refused),
        ("connection_closed", 2, 1)
    );

    // What operators read.
    let (code, out) = f.cli(&["sessions", "replay", crm]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("GET /crm/customers/42?tenant=acme, allowed by customer-reads-need-tenant"),
        "{out}"
    );
    assert!(out.contains("outcome #1") && out.contains("200 ("), "{out}");
    assert!(
        out.contains("DELETE /crm/customers/1, REFUSED by no-customer-deletes"),
        "{out}"
    );
    assert!(out.contains("403 refused by the gateway, not forwarded"), "{out}");
    let (code, out) = f.cli(&["sessions", "replay", &requests[3].session]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("GET /nowhere/x, REFUSED"), "{out}");
    assert!(out.contains("404 refused by the gateway"), "{out}");
    let (code, out) = f.cli(&["sessions", "show", crm]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("connection  crm (http)"), "{out}");
    assert!(out.contains("#1 200 (") && out.contains("#2 403"), "{out}");
    let (code, out) = f.cli(&["sessions", "list", "--subject", "audit-bot"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains("connection_closed") && !out.contains("live"),
        "{out}"
    );
    let (code, out) = f.cli(&["sessions", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok"), "{out}");
}

/// A WebSocket tunnel is its session's request until it closes; an operator's kill closes it.
#[tokio::test]
async fn a_kill_closes_a_websocket_tunnel() {
    let f = Fixture::start().await;
    let token = f.mint("socket-bot", &["agents"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(f.websocket_request(Some(&token)))
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text("before"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(),
        "before"
    );
    // Its session is live, its one request (the upgrade) without an outcome yet.
    let session = trail::sessions(f.store_path(), "socket-bot");
    assert_eq!(session.len(), 1, "{session:#?}");
    assert!(session[0].end.is_none() && session[0].requests[0].outcome.is_none());
    let (code, out) = f.cli(&["sessions", "kill", &session[0].id]);
    assert_eq!(code, 0, "{out}");
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(message)) if message.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the tunnel stayed open after the kill");
    let sessions = trail::ended(f.store_path(), "socket-bot", 1).await;
    assert_eq!(sessions[0].end.as_ref().unwrap().reason, "killed");
    assert_eq!(sessions[0].requests[0].tags(), ["101", "upgrade_closed"]);
}

/// Writes `request` on `tcp` and reads what comes back until the line has been quiet for 300 ms.
async fn exchange(tcp: &mut tokio::net::TcpStream, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// A client connection with no request in flight for `idle_timeout` is closed (HTTP/2: with a GOAWAY),
/// which ends its session; a request in flight for longer than that keeps it open.
#[tokio::test]
async fn an_idle_connection_is_closed_but_not_while_a_request_is_in_flight() {
    use http_body_util::{BodyExt as _, Empty};
    let f = Fixture::start_with(true, "1s").await;
    let token = f.mint("idle-bot", &["agents"]);
    let addr = f.base.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let mut get = async |path: &str| {
        let request = Request::get(format!("http://{addr}/crm/{path}"))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    };
    // The upstream answers after 5 s, the connection's idle timeout is 1 s: still open after the
    // answer (a GOAWAY would have refused the next request).
    assert_eq!(get("sleep").await, 200);
    assert_eq!(get("products").await, 200);
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(
        matches!(closed, Ok(Ok(Ok(())))),
        "the idle connection stayed open: {closed:?}"
    );
    let sessions = trail::ended(f.store_path(), "idle-bot", 1).await;
    let end = sessions[0].end.as_ref().unwrap();
    assert_eq!((end.reason.as_str(), end.statements), ("connection_closed", 2));
}

/// A client connection's requests are one session per token and gateway connection: numbered in the
/// order they are recorded, concurrent HTTP/2 streams included, after the session's start. Another
/// token on the same connection is another session. An operator's `sessions kill` closes the client
/// connection; its sessions end `killed` and `connection_closed`.
#[tokio::test]
async fn a_client_connection_is_one_session_that_operators_can_end() {
    use tokio::io::AsyncReadExt as _;
    let f = Fixture::start().await;
    let token = f.mint("conn-bot", &["agents"]);

    // Eight requests at once, as HTTP/2 streams of one connection.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let calls = (0..8).map(|i| {
        let request = h2
            .get(format!("{}/crm/customers/{i}?tenant=acme", f.base))
            .bearer_auth(&token);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let requests = trail::requests(f.store_path(), "conn-bot", 8).await;
    let sessions = trail::sessions(f.store_path(), "conn-bot");
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert!(
        matches!(sessions[0].events.first(), Some(EventBody::SessionStart(_))),
        "{sessions:#?}"
    );
    assert_eq!(
        requests.iter().map(|r| r.statement.n).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u64>>()
    );
    let mut paths: Vec<&str> = requests.iter().map(|r| r.statement.text.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 8, "{paths:?}");
    assert!(
        requests.iter().all(|r| r.tags() == ["200", "completed"]),
        "{requests:#?}"
    );
    drop(h2);
    let sessions = trail::ended(f.store_path(), "conn-bot", 1).await;
    let end = sessions[0].end.as_ref().unwrap();
    assert_eq!(
        (end.reason.as_str(), end.statements, end.refused),
        ("connection_closed", 8, 0)
    );

    // One HTTP/1.1 connection, two tokens of the same agent: two sessions.
    let first = f.mint("kill-bot", &["agents"]);
    let second = f.mint("kill-bot", &["agents"]);
    let addr = f.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for token in [&first, &second, &first] {
        let answer = exchange(
            &mut tcp,
            &format!("GET /crm/products HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let requests = trail::requests(f.store_path(), "kill-bot", 3).await;
    assert_eq!(requests[0].session, requests[2].session);
    assert_ne!(requests[0].session, requests[1].session);
    let (code, out) = f.cli(&["sessions", "list", "--subject", "kill-bot"]);
    assert_eq!((code, out.matches("live").count()), (0, 2), "{out}");

    // The operator kills the first: the gateway closes the connection within its control poll (250 ms).
    let (code, out) = f.cli(&["sessions", "kill", &requests[0].session]);
    assert_eq!(code, 0, "{out}");
    let mut rest = Vec::new();
    // (Well within the listener's header timeout, which would close an idle connection too.)
    let closed = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the client connection stayed open: {closed:?}"
    );
    let sessions = trail::ended(f.store_path(), "kill-bot", 2).await;
    let ends: Vec<(String, &str, u64)> = sessions
        .iter()
        .map(|s| {
            let end = s.end.as_ref().unwrap();
            (s.id.clone(), end.reason.as_str(), end.statements)
        })
        .collect();
    assert!(
        ends.contains(&(requests[0].session.clone(), "killed", 2))
            && ends.contains(&(requests[1].session.clone(), "connection_closed", 1)),
        "{ends:?}"
    );

    // The metrics count HTTP sessions as PostgreSQL ones: started, live, and how they ended.
    let metrics = f.metrics().await;
    for line in [
        "portcullis_sessions_total{connection=\"crm\"} 3",
        "portcullis_sessions_active 0",
        "portcullis_session_ends_total{reason=\"killed\"} 1",
        "portcullis_session_ends_total{reason=\"connection_closed\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn a_failing_audit_store_refuses_requests_with_503_and_forwards_nothing() {
    let f = Fixture::start().await;
    let token = f.mint("failing-bot", &["agents"]);
    let (status, _) = f.get("/witness/before", &token).await;
    assert_eq!(status, 200);
    let hits = f.witness.hits.load(Ordering::SeqCst);

    let raw = rusqlite::Connection::open(f.witness.store.get().unwrap()).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER fail BEFORE INSERT ON blocks \
         WHEN instr(NEW.events, CAST('/witness/doomed' AS BLOB)) > 0 \
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    )
    .unwrap();
    let (s, ct, body, _) = f.call("GET", "/witness/doomed", Some(&token), |r| r).await;
    assert_problem(s, &ct, &body, 503);
    assert!(body["detail"].as_str().unwrap().contains("audit trail"), "{body}");
    assert_eq!(
        f.witness.hits.load(Ordering::SeqCst),
        hits,
        "the upstream received a request that was not recorded"
    );
    let metrics = f.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_audit_failures_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    raw.execute_batch("DROP TRIGGER fail").unwrap();
    let (status, body) = f.get("/witness/doomed", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["recorded"], true);
    assert_eq!(f.witness.hits.load(Ordering::SeqCst), hits + 1);
}

/// Decisions are remembered per policy set (connect, the request's action, unmask), but a reload
/// replaces the set: the first request after the reload is decided by the new policy, on every worker
/// thread, for `connect` as for the HTTP action.
#[tokio::test]
async fn a_policy_reload_changes_the_next_decision_despite_the_caches() {
    let fixture = Fixture::start().await;
    let f = &fixture;
    let token = f.mint("crm-bot", &["agents"]);
    let token = token.as_str();
    let policy_file = f.gateway.config_path().parent().unwrap().join("policy.cedar");
    let policy_file = policy_file.as_path();
    let reloads = move || {
        f.gateway
            .log()
            .unwrap()
            .lines()
            .filter(|l| l.contains("policy reloaded"))
            .count()
    };
    let reload_to = move |text: String| {
        let before = reloads();
        std::fs::write(policy_file, text).unwrap();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while reloads() == before {
                assert!(
                    Instant::now() < deadline,
                    "no reload:\n{}",
                    f.gateway.log().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Warm every cache on every worker thread: the same request over and over, a few at a time.
    let burst = move |expected: u16| async move {
        for _ in 0..8 {
            let calls = (0..4).map(|_| f.get("/crm/products", token));
            for (status, body) in futures_util::future::join_all(calls).await {
                assert_eq!(status, expected, "{body}");
            }
        }
    };
    burst(200).await;

    // The HTTP action: a forbid added to the file refuses the very next request.
    reload_to(format!(
        "{POLICY}\n@id(\"no-products\")\nforbid(principal, action == Action::\"http_read\", resource == Connection::\"crm\")\nwhen {{ context.path == \"/products\" }};\n"
    ))
    .await;
    let (status, body) = f.get("/crm/products", token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["policies"], json!(["no-products"]));
    burst(403).await;

    // Back to the original policy: allowed again at once.
    reload_to(POLICY.to_owned()).await;
    burst(200).await;

    // `connect`: without the connect permit, nothing on the connection passes.
    reload_to(POLICY.replace(
        "permit(principal in Group::\"agents\", action == Action::\"connect\", resource);",
        "permit(principal in Group::\"agents\", action == Action::\"connect\", resource) unless { resource == Connection::\"crm\" };",
    ))
    .await;
    let (status, body) = f.get("/crm/products", token).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("may not use connection"),
        "{body}"
    );
    burst(403).await;
}
