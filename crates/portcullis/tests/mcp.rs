//! MCP through the gateway, end to end: the official MCP TypeScript SDK's server (streamable HTTP, event
//! stream and JSON responses) behind an `mcp = true` connection, and the SDK's client calling through
//! the real gateway binary with a development-issuer token. Tool lists are filtered per principal, tool
//! calls are decided per tool and arguments (refusals are JSON-RPC errors naming the policy and never
//! reach the server), and each call is in the audit trail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::{Duration, Instant};

use portcullis_audit::{AuditStore, EventBody, SqliteStore, StatementEvent};
use portcullis_testkit::gateway::GatewayProcess;
use portcullis_testkit::mcp::{McpServer, Responses, run_client};
use portcullis_testkit::ports::{free_addr, free_port};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

const POLICY: &str = r#"
@id("agents-connect")
permit(principal in Group::"agents", action == Action::"connect", resource);

@id("agents-speak-mcp")
permit(principal in Group::"agents", action in Action::"http", resource);

@id("agents-call-tools")
permit(principal in Group::"agents", action == Action::"call_tool", resource);

@id("admins-only-delete")
forbid(principal, action == Action::"call_tool", resource is Tool)
when { resource.name == "delete_customer" }
unless { principal in Group::"admins" };

@id("not-customer-42")
forbid(principal, action == Action::"call_tool", resource is Tool)
when { resource.name == "lookup_customer" && context.arguments.contains({name: "id", value: "42"}) };
"#;

struct Fixture {
    gateway: GatewayProcess,
    base: String,
    sse: McpServer,
    json: McpServer,
}

impl Fixture {
    async fn start() -> Fixture {
        let sse = McpServer::start(Responses::EventStream).await.unwrap();
        let json = McpServer::start(Responses::Json).await.unwrap();
        let http_port = free_port().unwrap();
        let admin = free_addr().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-mcp-")
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
name = "crm"
protocol = "http"
upstream_url = "http://{sse}"
mcp = true
mcp_path = "/mcp"

[[connections]]
name = "crmjson"
protocol = "http"
upstream_url = "http://{json}"
mcp = true
"#,
            state = dir.path().join("state").display(),
            pg = free_port().unwrap(),
            sse = sse.addr(),
            json = json.addr(),
        );
        let gateway = GatewayProcess::start_in(dir, Path::new(BIN), &config, &admin, &[])
            .await
            .expect("gateway starts");
        Fixture {
            gateway,
            base: format!("http://127.0.0.1:{http_port}"),
            sse,
            json,
        }
    }

    fn mint(&self, sub: &str, groups: &[&str]) -> String {
        self.gateway
            .mint(Path::new(BIN), &[], sub, groups, "15m")
            .unwrap()
    }

    /// The statements recorded for `subject`, once at least `count` exist.
    async fn statements(&self, subject: &str, count: usize) -> Vec<StatementEvent> {
        let path = self.gateway.dir().join("state").join("audit.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut store = SqliteStore::open(&path).unwrap();
            let events = store.events_after(0, 1_000_000).unwrap();
            let sessions: Vec<String> = events
                .iter()
                .filter_map(|e| match e.decode() {
                    Ok(EventBody::SessionStart(s)) if s.subject == subject => Some(e.session.clone()),
                    _ => None,
                })
                .collect();
            let statements: Vec<StatementEvent> = events
                .iter()
                .filter(|e| sessions.contains(&e.session))
                .filter_map(|e| match e.decode() {
                    Ok(EventBody::Statement(s)) => Some(s),
                    _ => None,
                })
                .collect();
            if statements.len() >= count {
                return statements;
            }
            assert!(Instant::now() < deadline, "{subject}: {statements:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn calls() -> Value {
    json!([
        {"name": "lookup_customer", "arguments": {"id": "7"}},
        {"name": "delete_customer", "arguments": {"id": "7"}},
        {"name": "lookup_customer", "arguments": {"id": "42"}},
    ])
}

/// The text of a successful call's first content item, parsed as JSON when it is.
fn text(call: &Value) -> Value {
    let text = call["result"]["content"][0]["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_and_called_as_policy_allows() {
    let f = Fixture::start().await;
    let agent = f.mint("agent-1", &["agents"]);
    let admin = f.mint("admin-1", &["agents", "admins"]);

    for (connection, server) in [("crm/mcp", &f.sse), ("crmjson/mcp", &f.json)] {
        let url = format!("{}/{connection}", f.base);
        let out = run_client(&url, &agent, &calls()).await.unwrap();
        assert_eq!(out.get("error"), None, "{out}");
        // tools/list holds only what the agent may call at all.
        assert_eq!(
            out["tools"],
            json!(["lookup_customer", "list_orders"]),
            "{connection}: {out}"
        );
        let calls = out["calls"].as_array().unwrap();
        // A permitted call reaches the server and returns its result.
        assert_eq!(text(&calls[0])["email"], "customer7@example.com", "{out}");
        // A refused tool: a JSON-RPC error naming the policy.
        let refused = &calls[1]["error"];
        assert_eq!(refused["code"], -32001, "{out}");
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains("admins-only-delete"), "{message}");
        assert!(
            message.contains("Tool \"") && message.contains("delete_customer"),
            "{message}"
        );
        // Refused by an argument condition.
        let refused = &calls[2]["error"];
        assert_eq!(refused["code"], -32001, "{out}");
        assert!(
            refused["message"].as_str().unwrap().contains("not-customer-42"),
            "{out}"
        );

        // The admin sees and may call delete_customer.
        let out = run_client(
            &url,
            &admin,
            &json!([{"name": "delete_customer", "arguments": {"id": "9"}}]),
        )
        .await
        .unwrap();
        assert_eq!(
            out["tools"],
            json!(["lookup_customer", "delete_customer", "list_orders"]),
            "{out}"
        );
        assert_eq!(text(&out["calls"][0]), "deleted 9", "{out}");

        // Only the permitted calls reached the server; never the agent's token.
        let seen = server.seen().await.unwrap();
        assert_eq!(
            seen["calls"],
            json!([{"tool": "lookup_customer", "id": "7"}, {"tool": "delete_customer", "id": "9"}]),
            "{connection}: {seen}"
        );
        assert!(
            seen["authorization"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_null),
            "{seen}"
        );
    }

    // The audit trail: each tool call with its method, tool, arguments and decision.
    let statements = f.statements("agent-1", 6).await;
    let find = |needle: &str| {
        statements
            .iter()
            .filter(|s| s.text.contains(needle))
            .collect::<Vec<_>>()
    };
    let allowed = find("tools/call lookup_customer");
    assert!(
        allowed.iter().any(|s| s.decision == "allow"
            && s.policies == ["agents-call-tools"]
            && s.params
                .iter()
                .flatten()
                .any(|p| p == r#"arguments lookup_customer: {"id":"7"}"#)),
        "{statements:#?}"
    );
    assert!(
        allowed
            .iter()
            .any(|s| s.decision == "deny" && s.policies == ["not-customer-42"]),
        "{statements:#?}"
    );
    let deletes = find("tools/call delete_customer");
    assert!(
        deletes
            .iter()
            .all(|s| s.decision == "deny" && s.policies == ["admins-only-delete"])
            && !deletes.is_empty(),
        "{statements:#?}"
    );
    assert!(
        deletes[0]
            .text
            .starts_with("POST /crm/mcp tools/call delete_customer"),
        "{:?}",
        deletes[0].text
    );
    assert_eq!(deletes[0].statements[0].kind, "call_tool");
    assert_eq!(deletes[0].statements[0].functions, ["crm/delete_customer"]);
    assert!(!find("tools/list").is_empty(), "{statements:#?}");

    let log = f.gateway.log().unwrap();
    for token in [&agent, &admin] {
        assert!(!log.contains(token.as_str()), "a token in the gateway log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_json_rpc_edges() {
    let f = Fixture::start().await;
    let agent = f.mint("agent-2", &["agents"]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: String| {
        http.post(format!("{}/{path}", f.base))
            .bearer_auth(&agent)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    // A batch with a refused call: nothing is forwarded, every request gets an error.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_orders"}},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "delete_customer", "arguments": {"id": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/progress"},
    ]);
    let response = post("crmjson/mcp", batch.to_string()).await.unwrap();
    assert_eq!(response.status(), 200);
    let answers: Value = response.json().await.unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 2, "{answers}");
    assert_eq!(answers[0]["id"], 1);
    assert!(
        answers[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another call"),
        "{answers}"
    );
    assert_eq!(answers[1]["id"], "b");
    assert_eq!(
        answers[1]["error"]["data"]["policies"],
        json!(["admins-only-delete"])
    );
    assert_eq!(f.json.seen().await.unwrap()["calls"], json!([]));

    // Too large, not JSON-RPC, a call without a name: refused before the server.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "lookup_customer", "arguments": {"id": "x".repeat(2 * 1024 * 1024)}}});
    assert_eq!(post("crmjson/mcp", big.to_string()).await.unwrap().status(), 413);
    assert_eq!(
        post("crmjson/mcp", "{\"id\":1}".to_owned())
            .await
            .unwrap()
            .status(),
        400
    );
    let nameless = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}});
    assert_eq!(
        post("crmjson/mcp", nameless.to_string()).await.unwrap().status(),
        400
    );
    // Outside the MCP path of `crm`, requests are ordinary HTTP (decided, forwarded, not parsed): the
    // server itself answers, not the gateway's problem document.
    let other = post("crm/other", "not json".to_owned()).await.unwrap();
    assert_ne!(other.headers()["content-type"], "application/problem+json");
    let inside = post("crm/mcp", "not json".to_owned()).await.unwrap();
    assert_eq!(
        (
            inside.status().as_u16(),
            inside.headers()["content-type"].to_str().unwrap()
        ),
        (400, "application/problem+json")
    );
}
