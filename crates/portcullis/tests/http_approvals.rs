//! Approval of HTTP requests and MCP tool calls end to end: the real gateway binary in front of a
//! counting echo service and the official MCP SDK's server; requests only an `@approval("required")`
//! policy permits are held (or ticketed) while a reviewer decides through the admin API, and the
//! upstream shows what was forwarded, how often.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_audit::{AuditStore, EventBody, SqliteStore};
use portcullis_testkit::gateway::GatewayProcess;
use portcullis_testkit::mcp::{McpServer, Responses, run_client};
use portcullis_testkit::ports::{free_addr, free_port};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

const POLICY: &str = r#"
@id("agents-connect")
permit(principal in Group::"agents", action == Action::"connect", resource);

@id("agents-read")
permit(principal in Group::"agents", action == Action::"http_read", resource);

@id("deletes-need-approval") @approval("required")
permit(principal in Group::"agents", action == Action::"http_delete", resource);

@id("writes-by-ticket") @approval("required") @approval_mode("ticket")
permit(principal in Group::"agents", action == Action::"http_write", resource in Connection::"crm");

@id("agents-speak-mcp")
permit(principal in Group::"agents", action in Action::"http", resource in Connection::"tools");

@id("agents-call-tools")
permit(principal in Group::"agents", action == Action::"call_tool", resource)
unless { resource.name == "delete_customer" };

@id("tool-deletes-need-approval") @approval("required")
permit(principal in Group::"agents", action == Action::"call_tool", resource)
when { resource.name == "delete_customer" };
"#;

/// The echo service: counts requests, answers with method, path and body.
async fn start_echo(hits: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let hits = Arc::clone(&hits);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let hits = Arc::clone(&hits);
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let answer = json!({
                            "method": method, "path": path, "body": String::from_utf8_lossy(&body),
                        });
                        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
                        response
                            .headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
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
    hits: Arc<AtomicUsize>,
    mcp: McpServer,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Fixture {
        let hits = Arc::new(AtomicUsize::new(0));
        let echo = start_echo(Arc::clone(&hits)).await;
        let mcp = McpServer::start(Responses::Json).await.unwrap();
        let http_port = free_port().unwrap();
        let admin = free_addr().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-http-approvals-")
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
[approvals]
enabled = true
mode = "hold"
hold_timeout = "20s"
reviewers_group = "reviewers"

[[connections]]
name = "crm"
protocol = "http"
upstream_url = "http://{echo}/api"

[[connections]]
name = "tools"
protocol = "http"
upstream_url = "http://{mcp}"
mcp = true
mcp_path = "/mcp"
"#,
            state = dir.path().join("state").display(),
            pg = free_port().unwrap(),
            mcp = mcp.addr(),
        );
        let gateway = GatewayProcess::start_in(dir, Path::new(BIN), &config, &admin, &[])
            .await
            .expect("gateway starts");
        Fixture {
            gateway,
            base: format!("http://127.0.0.1:{http_port}"),
            admin: admin.to_string(),
            hits,
            mcp,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn mint(&self, sub: &str, groups: &[&str]) -> String {
        self.gateway
            .mint(Path::new(BIN), &[], sub, groups, "15m")
            .unwrap()
    }

    /// `method path` with `body` (JSON) through the gateway: (status, headers, body as JSON).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// The admin API: (status, body).
    async fn admin(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}/api/v1{path}", self.admin);
        let mut request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        }
        .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits for the one pending request whose statement is `statement`.
    async fn pending(&self, reviewer: &str, statement: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, list) = self.admin("GET", "/approvals", reviewer, None).await;
            assert_eq!(status, 200, "{list}");
            if let Some(found) = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["statement"] == statement)
            {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no pending request for {statement}: {list}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The kinds and details of audit session `session`'s events once a request's outcome is among
    /// them (the session itself lasts as long as the client's connection).
    async fn session(&self, session: &str) -> Vec<(String, String)> {
        let path = self.gateway.dir().join("state").join("audit.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = SqliteStore::open(&path).unwrap().session_events(session).unwrap();
            let bodies: Vec<EventBody> = events.iter().map(|e| e.decode().unwrap()).collect();
            if bodies.iter().any(|b| matches!(b, EventBody::Outcome(_))) {
                return bodies
                    .into_iter()
                    .map(|b| match b {
                        EventBody::SessionStart(_) => ("start".to_owned(), String::new()),
                        EventBody::Approval(a) => ("approval".to_owned(), format!("{} {:?}", a.action, a.by)),
                        EventBody::Statement(s) => {
                            ("statement".to_owned(), format!("{} {}", s.decision, s.reason))
                        }
                        EventBody::Outcome(o) => ("outcome".to_owned(), o.tags.join(",")),
                        EventBody::SessionEnd(e) => ("end".to_owned(), e.reason),
                    })
                    .collect();
            }
            assert!(Instant::now() < deadline, "session {session} has no outcome");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_and_ticketed_http_requests_run_only_after_approval() {
    let f = Fixture::start().await;
    let bot = f.mint("bot", &["agents"]);
    let alice = f.mint("alice", &["reviewers"]);
    // A reviewer who is also an agent may not approve their own request.
    let carol = f.mint("carol", &["agents", "reviewers"]);

    // Hold, approved: the client waits, then gets the upstream's answer; the upstream saw it once.
    let call = {
        let (http, base, bot) = (f.http.clone(), f.base.clone(), bot.clone());
        tokio::spawn(async move {
            let response = http
                .delete(format!("{base}/crm/customers/7?why=cleanup"))
                .bearer_auth(&bot)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    let request = f.pending(&alice, "DELETE /crm/customers/7?why=cleanup").await;
    assert_eq!(request["mode"], "hold");
    assert_eq!(request["requester"], "dev/bot");
    assert_eq!(request["connection"], "crm");
    assert_eq!(request["commands"], json!(["DELETE"]));
    assert_eq!(request["policies"], json!(["deletes-need-approval"]));
    assert_eq!(
        f.hits.load(Ordering::SeqCst),
        0,
        "nothing is forwarded while held"
    );
    let id = request["id"].as_str().unwrap().to_owned();
    let (status, decided) = f
        .admin("POST", &format!("/approvals/{id}/approve"), &alice, None)
        .await;
    assert_eq!(status, 200, "{decided}");
    let (status, answer) = call.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["method"], "DELETE");
    assert_eq!(answer["path"], "/api/customers/7");
    assert_eq!(f.hits.load(Ordering::SeqCst), 1);
    // The audit session: start, the approval's steps, the statement naming it, the outcome.
    let session = request["session"].as_str().unwrap();
    let events = f.session(session).await;
    assert_eq!(
        events,
        vec![
            ("start".to_owned(), String::new()),
            ("approval".to_owned(), "requested None".to_owned()),
            ("approval".to_owned(), "approved Some(\"dev/alice\")".to_owned()),
            (
                "statement".to_owned(),
                format!("allow approval {id} granted by dev/alice")
            ),
            ("outcome".to_owned(), "200,completed".to_owned()),
        ]
    );

    // Hold, denied (and a self-approval refused first): 403 naming the reviewer; never forwarded.
    let call = {
        let (http, base, carol) = (f.http.clone(), f.base.clone(), carol.clone());
        tokio::spawn(async move {
            let response = http
                .delete(format!("{base}/crm/customers/8"))
                .bearer_auth(&carol)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    let request = f.pending(&alice, "DELETE /crm/customers/8").await;
    let id = request["id"].as_str().unwrap().to_owned();
    let (status, body) = f
        .admin("POST", &format!("/approvals/{id}/approve"), &carol, None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["title"], "Self-approval refused");
    let (status, _) = f
        .admin(
            "POST",
            &format!("/approvals/{id}/deny"),
            &alice,
            Some(json!({"reason": "not today"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, problem) = call.await.unwrap();
    assert_eq!(status, 403, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("approval {id} was denied by dev/alice: not today")),
        "{detail}"
    );
    assert_eq!(problem["approval"]["decided_by"], "dev/alice");
    assert_eq!(problem["approval"]["state"], "denied");
    assert_eq!(
        f.hits.load(Ordering::SeqCst),
        1,
        "a denied request never reaches the upstream"
    );

    // Ticket (the policy's @approval_mode): 202 at once with the id and a link; approve; the same
    // request again is forwarded, once; a different body is a different request.
    let order = json!({"sku": "A-1", "qty": 3});
    let (status, headers, problem) = f.call("POST", "/crm/orders", &bot, Some(&order)).await;
    assert_eq!(status, 202, "{problem}");
    let id = problem["approval"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("apr_"), "{problem}");
    assert_eq!(problem["approval"]["state"], "pending");
    let location = headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(location, format!("http://{}/api/v1/approvals/{id}", f.admin));
    assert_eq!(f.hits.load(Ordering::SeqCst), 1, "a ticket is not forwarded");
    // Sent again before the decision: the same request.
    let (status, _, again) = f.call("POST", "/crm/orders", &bot, Some(&order)).await;
    assert_eq!(
        (status, again["approval"]["id"].as_str()),
        (202, Some(id.as_str()))
    );
    let (_, request) = f.admin("GET", &format!("/approvals/{id}"), &alice, None).await;
    assert_eq!(request["statement"], "POST /crm/orders");
    assert_eq!(request["mode"], "ticket");
    let (status, decided) = f
        .admin("POST", &format!("/approvals/{id}/approve"), &alice, None)
        .await;
    assert_eq!(status, 200, "{decided}");
    let other = json!({"sku": "A-1", "qty": 300});
    let (status, _, _) = f.call("POST", "/crm/orders", &bot, Some(&other)).await;
    assert_eq!(status, 202, "another body needs its own approval");
    let (status, _, answer) = f.call("POST", "/crm/orders", &bot, Some(&order)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(answer["body"].as_str().unwrap()).unwrap(),
        order
    );
    assert_eq!(f.hits.load(Ordering::SeqCst), 2);
    // Used up (one use by default): asked again.
    let (status, _, _) = f.call("POST", "/crm/orders", &bot, Some(&order)).await;
    assert_eq!(status, 202);
    assert_eq!(f.hits.load(Ordering::SeqCst), 2);

    // Hold, the client gives up: the request is withdrawn and can no longer be approved.
    let call = {
        let (http, base, bot) = (f.http.clone(), f.base.clone(), bot.clone());
        tokio::spawn(async move {
            let _ = http
                .delete(format!("{base}/crm/customers/9"))
                .bearer_auth(&bot)
                .send()
                .await;
        })
    };
    let request = f.pending(&alice, "DELETE /crm/customers/9").await;
    call.abort();
    let id = request["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, now) = f.admin("GET", &format!("/approvals/{id}"), &alice, None).await;
        if now["state"] == "withdrawn" {
            break;
        }
        assert!(Instant::now() < deadline, "not withdrawn: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = f
        .admin("POST", &format!("/approvals/{id}/approve"), &alice, None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(f.hits.load(Ordering::SeqCst), 2);
    // The trail: the request's number in the client's session has the approval's requested and
    // withdrawn events, and no statement or outcome: it never ran.
    let (session, n) = (
        request["session"].as_str().unwrap(),
        request["n"].as_u64().unwrap(),
    );
    let path = f.gateway.dir().join("state").join("audit.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    let of_n = loop {
        let events = SqliteStore::open(&path).unwrap().session_events(session).unwrap();
        let of_n: Vec<String> = events
            .iter()
            .filter_map(|e| match e.decode().unwrap() {
                EventBody::Approval(a) if a.n == n => Some(format!("approval {}", a.action)),
                EventBody::Statement(st) if st.n == n => Some("statement".to_owned()),
                EventBody::Outcome(o) if o.n == n => Some("outcome".to_owned()),
                _ => None,
            })
            .collect();
        if of_n.iter().any(|e| e == "approval withdrawn") {
            break of_n;
        }
        assert!(Instant::now() < deadline, "{of_n:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(of_n, ["approval requested", "approval withdrawn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_mcp_tool_call_completes_after_approval() {
    let f = Fixture::start().await;
    let bot = f.mint("bot", &["agents"]);
    let alice = f.mint("alice", &["reviewers"]);
    let url = format!("{}/tools/mcp", f.base);
    let calls = json!([{"name": "delete_customer", "arguments": {"id": "7"}}]);
    let client = {
        let (url, bot) = (url.clone(), bot.clone());
        tokio::spawn(async move { run_client(&url, &bot, &calls).await.unwrap() })
    };
    let statement = "POST /tools/mcp tools/call delete_customer";
    let request = f.pending(&alice, statement).await;
    assert_eq!(request["commands"], json!(["tools/call delete_customer"]));
    assert_eq!(request["policies"], json!(["tool-deletes-need-approval"]));
    let seen = f.mcp.seen().await.unwrap();
    assert!(
        !seen["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["tool"] == "delete_customer"),
        "nothing reaches the server while held: {seen}"
    );
    let id = request["id"].as_str().unwrap();
    let (status, decided) = f
        .admin("POST", &format!("/approvals/{id}/approve"), &alice, None)
        .await;
    assert_eq!(status, 200, "{decided}");
    let out = client.await.unwrap();
    let call = &out["calls"][0];
    assert!(call.get("error").is_none(), "{out}");
    assert!(call["result"].is_object(), "{out}");
    let seen = f.mcp.seen().await.unwrap();
    let deletes = seen["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["tool"] == "delete_customer")
        .count();
    assert_eq!(deletes, 1, "{seen}");

    // Denied: a JSON-RPC error -32001 whose data names the approval request and the reviewer.
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "delete_customer", "arguments": {"id": "8"}}});
    let call = {
        let (http, url, bot, body) = (f.http.clone(), url.clone(), bot.clone(), body.clone());
        tokio::spawn(async move {
            let response = http
                .post(&url)
                .bearer_auth(&bot)
                .header("accept", "application/json, text/event-stream")
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    let request = f.pending(&alice, statement).await;
    let id = request["id"].as_str().unwrap().to_owned();
    let (status, _) = f
        .admin(
            "POST",
            &format!("/approvals/{id}/deny"),
            &alice,
            Some(json!({"reason": "keep 8"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = call.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    assert_eq!(answer["error"]["data"]["approval"]["id"], id.as_str());
    assert_eq!(answer["error"]["data"]["approval"]["decided_by"], "dev/alice");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("denied by dev/alice: keep 8"), "{message}");
}
