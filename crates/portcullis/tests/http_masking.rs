//! Masking of HTTP response bodies end to end: the real gateway binary in front of a real HTTP service
//! started here that answers JSON (whole, and in small delayed chunks), text, server-sent events, a
//! compressed body, an image, broken JSON and a 50 MB JSON array. Checks what the client receives, that
//! `unmask` (Cedar) gives cleartext, the audit outcome's and the metrics' counts, and that nothing
//! unmasked reaches the audit trail or the gateway's log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::trail;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_testkit::gateway::{GatewayProcess, run_cli};
use portcullis_testkit::ports::{free_addr, free_port};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

const POLICY: &str = r#"
@id("agents-connect")
permit(principal in Group::"agents", action == Action::"connect", resource);

@id("agents-read")
permit(principal in Group::"agents", action == Action::"http_read", resource);

@id("agents-search")
permit(principal in Group::"agents", action == Action::"http_write", resource == Route::"api/search");

@id("dba-cleartext")
permit(principal in Group::"dba", action == Action::"unmask", resource);
"#;

/// The customers document: escapes and non-ASCII text that must survive, two emails for the field rule,
/// a card number in free text for the detector.
const CUSTOMERS: &str = r#"{"data":[{"name":"Zoë \"Z\" \u00e9\n","email":"ada@example.com","note":"paid with 4111 1111 1111 1111, thanks ✓"},{"name":"Bob","email":"bob@example.org","note":"nothing here"}],"email":"top@example.com"}"#;

const TEXT: &str = "Ada's card is 4111 1111 1111 1111.\nBye\n";

const EVENTS: &str = "event: tool\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"result\":{\"user\":{\"email\":\"ada@example.com\"},\n\
data: \"text\":\"card 4111 1111 1111 1111\"}}\n\n: ping\n\ndata: [DONE] 4111111111111111\n\n";

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR4111 1111 1111 1111";

/// Items of the large body (`{"data":[…]}`); 50 MB of them.
const ITEM: &str = r#"{"id":12345,"email":"ada@example.com","note":"ok"},"#;
const LARGE_BYTES: usize = 50 * 1024 * 1024;

type TestBody = BoxBody<Bytes, Infallible>;

fn respond(content_type: &str, body: impl Into<Bytes>) -> Response<TestBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    response
        .headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    response
}

/// The upstream: one answer per path.
async fn service(req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match path.as_str() {
        "/customers" => respond("application/json", CUSTOMERS),
        "/problem" => respond("application/problem+json; charset=utf-8", CUSTOMERS),
        // The same document in 16-byte chunks, 20 ms apart.
        "/slow" => {
            let chunks: Vec<Bytes> = CUSTOMERS
                .as_bytes()
                .chunks(16)
                .map(Bytes::copy_from_slice)
                .collect();
            let stream = futures_util::stream::iter(chunks).then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, Infallible>(Frame::data(chunk))
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
        "/text" => respond("text/plain; charset=utf-8", TEXT),
        "/search" => respond("application/json", CUSTOMERS),
        "/events" => respond("text/event-stream", EVENTS),
        "/headers" => {
            let seen = |name: &str| {
                req.headers()
                    .get(name)
                    .map(|v| Value::String(v.to_str().unwrap().to_owned()))
                    .unwrap_or(Value::Null)
            };
            let body = json!({"accept_encoding": seen("accept-encoding"), "range": seen("range")});
            respond("application/json", body.to_string())
        }
        "/gzip" => {
            let mut response = respond("application/json", &b"\x1f\x8b\x08\x00\x00\x00\x00\x00"[..]);
            response
                .headers_mut()
                .insert("content-encoding", "gzip".parse().unwrap());
            response
        }
        "/png" => respond("image/png", PNG),
        // A masked prefix, then JSON that breaks (and a card after it).
        "/broken" => {
            let parts = [
                Bytes::from_static(br#"{"user":{"email":"ada@example.com"},"n":"#),
                Bytes::from_static(b"tru} 4111 1111 1111 1111"),
            ];
            let stream = futures_util::stream::iter(parts).then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, Infallible>(Frame::data(chunk))
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
        "/large" => {
            let per_chunk = 64 * 1024 / ITEM.len();
            let chunk = Bytes::from(ITEM.repeat(per_chunk));
            let chunks = LARGE_BYTES / chunk.len();
            let body = std::iter::once(Bytes::from_static(br#"{"data":["#))
                .chain(std::iter::repeat_n(chunk, chunks))
                .chain(std::iter::once(Bytes::from_static(b"null]}")))
                .map(|b| Ok::<_, Infallible>(Frame::data(b)));
            let mut response =
                Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(body))));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
        _ => respond("text/plain", "not found"),
    };
    Ok(response)
}

async fn start_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service_fn(service))
                    .await;
            });
        }
    });
    addr
}

struct Fixture {
    gateway: GatewayProcess,
    base: String,
    admin: String,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with("").await
    }

    /// As [`Fixture::start`], with `extra` config sections appended.
    async fn start_with(extra: &str) -> Fixture {
        let upstream = start_service().await;
        let http_port = free_port().unwrap();
        let admin = free_addr().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-http-mask-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("policy.cedar"), POLICY).unwrap();
        let config = format!(
            r#"
[server]
state_dir = "{state}"
[server.postgres]
listen = "127.0.0.1:{pg}"
[server.http]
listen = "127.0.0.1:{http_port}"
allow_plaintext = true
[server.admin]
listen = "{admin}"
[identity.dev_issuer]
enabled = true
[policy]
files = ["policy.cedar"]

[[connections]]
name = "api"
protocol = "http"
upstream_url = "http://{upstream}"
routes = [{{ template = "/search", name = "search" }}]

[[connections]]
name = "files"
protocol = "http"
upstream_url = "http://{upstream}"
other_content = "pass"

[[connections]]
name = "plain"
protocol = "http"
upstream_url = "http://{upstream}"

[[masking.rules]]
fields = ["*.email"]
strategy = "partial"
keep = 4
connections = ["api", "files"]

[[masking.rules]]
detectors = ["payment_card"]
strategy = "redact"
with = "[card]"
connections = ["api", "files"]

{extra}
"#,
            state = dir.path().join("state").display(),
            pg = free_port().unwrap(),
        );
        let gateway = GatewayProcess::start_in(dir, Path::new(BIN), &config, &admin, &[])
            .await
            .expect("gateway starts");
        Fixture {
            gateway,
            base: format!("http://127.0.0.1:{http_port}"),
            admin,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn mint(&self, sub: &str, groups: &[&str]) -> String {
        self.gateway
            .mint(Path::new(BIN), &[], sub, groups, "15m")
            .unwrap()
    }

    /// `GET path` (with `Accept-Encoding: gzip`, as browsers and most clients send): status, headers
    /// and the body, or the error reading it.
    async fn get(
        &self,
        path: &str,
        token: &str,
    ) -> (u16, reqwest::header::HeaderMap, Result<Bytes, reqwest::Error>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("accept-encoding", "gzip, br")
            .header("range", "bytes=0-")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await)
    }

    async fn text(&self, path: &str, token: &str) -> String {
        let (status, _, body) = self.get(path, token).await;
        let body = body.unwrap();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// `subject`'s requests as the audit trail holds them, once `count` have their outcome.
    async fn requests(&self, subject: &str, count: usize) -> Vec<trail::Request> {
        let store = self.gateway.dir().join("state").join("audit.db");
        trail::requests(&store, subject, count).await
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// What the customers document becomes: emails partial (last four letters and digits), the card
/// redacted inside the note, every other byte as sent.
fn masked_customers() -> String {
    CUSTOMERS
        .replace("ada@example.com", "***@******e.com")
        .replace("bob@example.org", "***@******e.org")
        .replace("4111 1111 1111 1111", "[card]")
}

/// The cleartext values no client without `unmask`, no audit event and no log line may hold.
const SENSITIVE: [&str; 4] = [
    "ada@example.com",
    "bob@example.org",
    "4111 1111 1111 1111",
    "4111111111111111",
];

#[tokio::test]
async fn json_text_and_events_are_masked_counted_and_never_recorded_in_clear() {
    let f = Fixture::start().await;
    let token = f.mint("mask-bot", &["agents"]);

    // JSON: the field rule (partial) and the detector (inside free text); escapes, non-ASCII and
    // `top@example.com` (not under `*.`) as sent. The length changed: no Content-Length.
    let (status, headers, body) = f.get("/api/customers", &token).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    assert_eq!(
        String::from_utf8(body.unwrap().to_vec()).unwrap(),
        masked_customers()
    );
    assert_eq!(f.text("/api/problem", &token).await, masked_customers());

    // The same document in 16-byte chunks 20 ms apart: masked the same, and streamed (the first bytes
    // arrive long before the upstream's last chunk).
    let started = Instant::now();
    let mut response = f
        .http
        .get(format!("{}/api/slow", f.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut first = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first.get_or_insert_with(|| started.elapsed());
        received.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    assert_eq!(String::from_utf8(received).unwrap(), masked_customers());
    assert!(
        first.unwrap() * 2 < total,
        "first bytes after {:?} of {total:?}: the body was held, not streamed",
        first.unwrap()
    );

    // Text: detectors.
    assert_eq!(f.text("/api/text", &token).await, "Ada's card is [card].\nBye\n");

    // Server-sent events: each data payload masked as JSON (field rule and detector) or as text,
    // the framing (event, id, comments, line breaks) as sent.
    let expected = "event: tool\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"result\":{\"user\":{\"email\":\"***@******e.com\"},\n\
data: \"text\":\"card [card]\"}}\n\n: ping\n\ndata: [DONE] [card]\n\n";
    assert_eq!(f.text("/api/events", &token).await, expected);

    // A connection without rules passes bodies as they are.
    assert_eq!(f.text("/plain/customers", &token).await, CUSTOMERS);

    // Granted `unmask` by Cedar: cleartext, byte for byte.
    let dba = f.mint("dba-bot", &["agents", "dba"]);
    assert_eq!(f.text("/api/customers", &dba).await, CUSTOMERS);
    assert_eq!(f.text("/api/events", &dba).await, EVENTS);

    // The audit outcome of each masked request counts what was masked; each exchange completed.
    let requests = f.requests("mask-bot", 6).await;
    type Row = (String, Vec<(String, u64)>, String);
    let outcomes: Vec<Row> = requests
        .iter()
        .map(|r| {
            let outcome = r.outcome.as_ref().unwrap();
            let masked = outcome.masked.iter().map(|(k, v)| (k.clone(), *v)).collect();
            (r.statement.text.clone(), masked, r.tags()[1].clone())
        })
        .collect();
    let counts = |field: u64, card: u64| {
        vec![("field".to_owned(), field), ("payment_card".to_owned(), card)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>()
    };
    let done = "completed".to_owned();
    assert_eq!(
        outcomes,
        vec![
            ("GET /api/customers".to_owned(), counts(2, 1), done.clone()),
            ("GET /api/problem".to_owned(), counts(2, 1), done.clone()),
            ("GET /api/slow".to_owned(), counts(2, 1), done.clone()),
            ("GET /api/text".to_owned(), counts(0, 1), done.clone()),
            ("GET /api/events".to_owned(), counts(1, 2), done.clone()),
            ("GET /plain/customers".to_owned(), Vec::new(), done.clone()),
        ],
        "{requests:?}"
    );
    for r in f.requests("dba-bot", 2).await {
        assert!(r.outcome.as_ref().unwrap().masked.is_empty(), "{r:?}");
    }

    // The metrics count them by connection and reason.
    let metrics = f.metrics().await;
    for (line, value) in [
        (
            "portcullis_masked_values_total{connection=\"api\",detector=\"field\"}",
            7,
        ),
        (
            "portcullis_masked_values_total{connection=\"api\",detector=\"payment_card\"}",
            6,
        ),
    ] {
        assert!(
            metrics.contains(&format!("{line} {value}")),
            "{line} {value}\n{metrics}"
        );
    }

    // The response bodies are recorded as the client received them: masked, except on the
    // connection without rules.
    let bodies: Vec<String> = requests
        .iter()
        .map(|r| r.outcome.as_ref().unwrap().body.as_ref().unwrap().text.clone())
        .collect();
    assert_eq!(bodies[0], masked_customers());
    assert_eq!(bodies[2], masked_customers());
    assert_eq!(bodies[3], "Ada's card is [card].\nBye\n");
    assert_eq!(bodies[5], CUSTOMERS);

    // Nothing in clear in the audit trail of the masked requests, nor in the gateway's log.
    let recorded = format!("{:?}", &requests[..5]);
    let log = f.gateway.log().unwrap();
    for value in SENSITIVE {
        assert!(!recorded.contains(value), "{value} in the audit trail");
        assert!(!log.contains(value), "{value} in the gateway log");
    }
}

#[tokio::test]
async fn bodies_masking_cannot_read_are_refused_or_passed_as_configured() {
    let f = Fixture::start().await;
    let token = f.mint("refuse-bot", &["agents"]);

    // Masked requests ask the upstream for identity encoding and whole bodies.
    let seen: Value = serde_json::from_str(&f.text("/api/headers", &token).await).unwrap();
    assert_eq!(seen, json!({"accept_encoding": null, "range": null}));
    let seen: Value = serde_json::from_str(&f.text("/plain/headers", &token).await).unwrap();
    assert_eq!(
        seen["accept_encoding"], "gzip, br",
        "unmasked connections are untouched"
    );

    // A compressed body that arrives anyway is refused with a problem, before any of it is sent.
    let (status, headers, body) = f.get("/api/gzip", &token).await;
    let problem: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(status, 502, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["title"], "Response cannot be masked");
    assert!(problem["detail"].as_str().unwrap().contains("gzip"), "{problem}");

    // Neither JSON nor text: refused by default, passed with other_content = "pass".
    let (status, _, body) = f.get("/api/png", &token).await;
    let problem: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(status, 502, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("image/png"),
        "{problem}"
    );
    let (status, _, body) = f.get("/files/png", &token).await;
    assert_eq!((status, &body.unwrap()[..]), (200, PNG));
    // With unmask, nothing is masked, so nothing is refused.
    let dba = f.mint("dba-refuse-bot", &["agents", "dba"]);
    let (status, _, body) = f.get("/api/png", &dba).await;
    assert_eq!((status, &body.unwrap()[..]), (200, PNG));

    // Broken JSON: the body is cut off where the masker failed, never completed, and nothing after
    // the error is passed.
    let response = f
        .http
        .get(format!("{}/api/broken", f.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let mut response = response;
    let mut failed = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the body completed: {}",
        String::from_utf8_lossy(&received)
    );
    let received = String::from_utf8_lossy(&received);
    for value in SENSITIVE {
        assert!(!received.contains(value), "{received}");
    }

    // The trail: 502s as gateway errors, the cut-off body as a masking failure with its reason.
    let requests = f.requests("refuse-bot", 6).await;
    let ends: Vec<(String, String, Option<String>)> = requests
        .iter()
        .map(|r| {
            let outcome = r.outcome.as_ref().unwrap();
            (
                r.statement.text.clone(),
                r.tags()[1].clone(),
                outcome.error.as_ref().map(|e| e.sqlstate.clone()),
            )
        })
        .collect();
    let row = |t: &str, r: &str, e: Option<&str>| (t.to_owned(), r.to_owned(), e.map(str::to_owned));
    assert_eq!(
        ends,
        vec![
            row("GET /api/headers", "completed", None),
            row("GET /plain/headers", "completed", None),
            row("GET /api/gzip", "gateway_error", Some("502")),
            row("GET /api/png", "gateway_error", Some("502")),
            row("GET /files/png", "completed", None),
            row("GET /api/broken", "masking_failed", Some("200")),
        ]
    );
    let outcome = requests[5].outcome.as_ref().unwrap();
    let error = outcome.error.as_ref().unwrap();
    assert!(error.message.contains("invalid JSON at byte"), "{error:?}");
    assert_eq!(outcome.masked.get("field"), Some(&1));
    let log = f.gateway.log().unwrap();
    assert!(log.contains("masking failed"), "{log}");
    for value in SENSITIVE {
        assert!(!format!("{requests:?}").contains(value));
        assert!(!log.contains(value), "{value} in the gateway log");
    }
}

#[tokio::test]
async fn a_large_json_body_streams_masked_with_bounded_gateway_memory() {
    let f = Fixture::start().await;
    let token = f.mint("large-bot", &["agents"]);
    // Warm up pools and caches first, so the baseline includes them.
    assert_eq!(f.text("/api/customers", &token).await, masked_customers());
    let before = f.gateway.rss_kib().unwrap();

    let mut response = f
        .http
        .get(format!("{}/api/large", f.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let masked_item = ITEM.replace("ada@example.com", "***@******e.com");
    let (mut total, mut items, mut carry) = (0usize, 0usize, Vec::new());
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len();
        carry.extend_from_slice(&chunk);
        let text = String::from_utf8_lossy(&carry).into_owned();
        assert!(!text.contains("ada@example.com"), "an email passed unmasked");
        items += text.matches(&masked_item).count();
        // Keep the tail that may begin an item.
        let keep = text
            .rfind(&masked_item)
            .map_or(carry.len().saturating_sub(masked_item.len()), |i| {
                i + masked_item.len()
            });
        carry.drain(..keep.min(carry.len()));
    }
    let per_chunk = 64 * 1024 / ITEM.len();
    let expected_items = LARGE_BYTES / (per_chunk * ITEM.len()) * per_chunk;
    assert_eq!(items, expected_items);
    assert_eq!(total, 9 + expected_items * ITEM.len() + 6);
    let peak = f.gateway.peak_rss_kib().unwrap();
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "gateway RSS grew from {before} KiB to a peak of {peak} KiB while masking 50 MB of JSON"
    );
    let requests = f.requests("large-bot", 2).await;
    let outcome = requests[1].outcome.as_ref().unwrap();
    assert_eq!(outcome.masked.get("field"), Some(&(expected_items as u64)));
    // The record keeps the body's first 4,096 bytes (the default cap), masked, and its whole length.
    let body = outcome.body.as_ref().unwrap();
    assert_eq!(body.bytes, total as u64);
    assert!(body.truncated);
    assert_eq!(body.content_type, "application/json");
    assert!(
        body.text.len() <= 4096 && body.text.len() > 4000,
        "{}",
        body.text.len()
    );
    assert!(
        body.text.starts_with(&format!("{{\"data\":[{masked_item}")),
        "{}",
        body.text
    );
}

#[tokio::test]
async fn request_and_response_bodies_are_recorded_masked_and_shown_in_replay() {
    let f = Fixture::start().await;
    let token = f.mint("body-bot", &["agents"]);
    let request = r#"{"filter":{"email":"ada@example.com"},"note":"card 4111 1111 1111 1111","limit":2}"#;
    let response = f
        .http
        .post(format!("{}/api/search", f.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), masked_customers());

    let requests = f.requests("body-bot", 1).await;
    let (statement, outcome) = (&requests[0].statement, requests[0].outcome.as_ref().unwrap());
    // The request body, read for policy, is recorded with the statement (before forwarding), masked
    // by the connection's rules as a response would be.
    let sent = statement.body.as_ref().unwrap();
    assert_eq!(sent.content_type, "application/json");
    assert_eq!(sent.bytes, request.len() as u64);
    assert!(!sent.truncated);
    assert_eq!(
        sent.text,
        r#"{"filter":{"email":"***@******e.com"},"note":"card [card]","limit":2}"#
    );
    let received = outcome.body.as_ref().unwrap();
    assert_eq!(received.text, masked_customers());
    assert_eq!(received.bytes, masked_customers().len() as u64);

    // `sessions replay` shows both under the request and its outcome.
    let config = f.gateway.config_path();
    let out = run_cli(
        Path::new(BIN),
        &[
            "sessions",
            "replay",
            &requests[0].session,
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    let replay = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{replay}");
    assert!(
        replay.contains(&format!("body (application/json, {} bytes):", request.len())),
        "{replay}"
    );
    assert!(replay.contains(r#""note":"card [card]""#), "{replay}");
    assert!(
        replay.contains(&format!(
            "body (application/json, {} bytes):",
            masked_customers().len()
        )),
        "{replay}"
    );
    for value in SENSITIVE {
        assert!(!replay.contains(value), "{value} in the replay");
    }
}

#[tokio::test]
async fn no_bodies_are_recorded_when_the_cap_is_zero() {
    let f = Fixture::start_with("[audit]\nhttp_body_bytes = 0\n").await;
    let token = f.mint("quiet-bot", &["agents"]);
    let response = f
        .http
        .post(format!("{}/api/search", f.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"filter":{"email":"ada@example.com"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), masked_customers());
    let requests = f.requests("quiet-bot", 1).await;
    let outcome = requests[0].outcome.as_ref().unwrap();
    assert_eq!((&requests[0].statement.body, &outcome.body), (&None, &None));
}
