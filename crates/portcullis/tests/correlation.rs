//! Related sessions end to end: an agent's PostgreSQL session and the MCP tool call it makes meanwhile
//! (the official MCP SDK's client and server, through the real gateway) name each other in `sessions
//! show`, `sessions list --related`, the admin API and the console; another principal's session, and a
//! call outside the window, are not named.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::browserless::Browserless;
use common::{BIN, Env, Options, UPSTREAM_PASSWORD_ENV};
use portcullis_audit::{AuditStore, EventBody, SessionFilter, SqliteStore};
use portcullis_testkit::gateway::run_cli;
use portcullis_testkit::mcp::{McpServer, Responses, run_client};
use portcullis_testkit::ports::free_port;
use serde_json::{Value, json};

/// The gateway in front of PostgreSQL (`app`) and the MCP server (`crm`), agents allowed everything.
async fn start(mcp: &McpServer, http_port: u16) -> Env {
    Env::start(Options {
        extra: format!(
            r#"
[[connections]]
name = "crm"
protocol = "http"
upstream_url = "http://{addr}"
mcp = true
mcp_path = "/mcp"

[server.http]
listen = "127.0.0.1:{http_port}"
allow_plaintext = true
"#,
            addr = mcp.addr()
        ),
        ..Options::default()
    })
    .await
}

/// `portcullis <args> --config <the gateway's>`: (success, stdout and stderr).
fn cli(env: &Env, args: &[&str]) -> (bool, String) {
    let config = env.gateway.config_path();
    let mut all = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    let out = run_cli(Path::new(BIN), &all, &[(UPSTREAM_PASSWORD_ENV, "x")]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `cli` with `--json`, parsed.
fn cli_json(env: &Env, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out) = cli(env, &all);
    assert!(ok, "{args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The ids in a list of related sessions.
fn ids(related: &Value) -> Vec<String> {
    related
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {related}"))
        .iter()
        .map(|r| r["session"].as_str().unwrap().to_owned())
        .collect()
}

/// The sessions of `subject`, once at least `count` are recorded and, with `ended`, all have ended:
/// (id, protocol, each statement's text and parameters).
async fn sessions_of(
    env: &Env,
    subject: &str,
    count: usize,
    ended: bool,
) -> Vec<(String, String, Vec<String>)> {
    let path = env.gateway.dir().join("state").join("audit.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut store = SqliteStore::open(&path).unwrap();
        let found = store
            .sessions(&SessionFilter {
                subject: Some(subject.to_owned()),
                ..SessionFilter::default()
            })
            .unwrap();
        if found.len() >= count && (!ended || found.iter().all(|s| s.ended_us.is_some())) {
            return found
                .into_iter()
                .map(|s| {
                    let texts = store
                        .session_events(&s.session)
                        .unwrap()
                        .iter()
                        .filter_map(|e| match e.decode() {
                            // The text, then the parameters (a tool call's arguments).
                            Ok(EventBody::Statement(st)) => Some(
                                std::iter::once(st.text)
                                    .chain(st.params.into_iter().flatten())
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            ),
                            _ => None,
                        })
                        .collect();
                    (s.session, s.protocol, texts)
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "{subject}: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The session whose statement contains `needle`.
fn with_statement(sessions: &[(String, String, Vec<String>)], needle: &str) -> String {
    sessions
        .iter()
        .find(|(_, _, texts)| texts.iter().any(|t| t.contains(needle)))
        .unwrap_or_else(|| panic!("no session with {needle:?}: {sessions:?}"))
        .0
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_and_the_database_session_around_it_name_each_other() {
    let mcp = McpServer::start(Responses::Json).await.unwrap();
    let http_port = free_port().unwrap();
    let env = start(&mcp, http_port).await;
    let agent = env.mint("agent-7", &["agents"], "15m");
    let bystander = env.mint("agent-8", &["agents"], "15m");
    let ops = env.mint("oncall", &["portcullis-operators"], "15m");
    let url = format!("http://127.0.0.1:{http_port}/crm/mcp");

    // Another principal's database session, open throughout.
    let other = env.connect_plain("app", &bystander).await.unwrap();
    other.simple_query("SELECT 'bystander'").await.unwrap();

    // The agent: a statement, a tool call, a statement, then it disconnects.
    let db = env.connect_plain("app", &agent).await.unwrap();
    db.simple_query("SELECT 'before the call'").await.unwrap();
    let out = run_client(
        &url,
        &agent,
        &json!([{"name": "lookup_customer", "arguments": {"id": "7"}}]),
    )
    .await
    .unwrap();
    assert!(out["calls"][0].get("result").is_some(), "{out}");
    db.simple_query("SELECT 'after the call'").await.unwrap();
    drop(db);

    // The database session and the MCP client's (its connection's requests: initialize, tools/list,
    // the call), all ended.
    let sessions = sessions_of(&env, "agent-7", 2, true).await;
    let db_id = with_statement(&sessions, "before the call");
    let call_id = with_statement(&sessions, "tools/call lookup_customer");
    let bystander_id = sessions_of(&env, "agent-8", 1, false).await[0].0.clone();
    // The MCP client's requests are statements of its connection's session, the call among them.
    let http: Vec<&(String, String, Vec<String>)> = sessions
        .iter()
        .filter(|(_, protocol, _)| protocol == "http")
        .collect();
    let http_ids: Vec<&String> = http.iter().map(|(id, _, _)| id).collect();
    assert!(!http_ids.is_empty(), "{sessions:?}");
    let call_session = http.iter().find(|(id, _, _)| *id == call_id).unwrap();
    assert!(
        call_session.2.len() >= 2 && call_session.2.iter().any(|t| t.contains("initialize")),
        "{sessions:?}"
    );

    // The tool call names the database session around it, overlapping, and not the bystander's.
    let (ok, shown) = cli(&env, &["sessions", "show", &call_id]);
    assert!(ok, "{shown}");
    let section = shown
        .split("Related sessions")
        .nth(1)
        .unwrap_or_else(|| panic!("{shown}"));
    let line = section
        .lines()
        .find(|l| l.starts_with(db_id.as_str()))
        .unwrap_or_else(|| panic!("{db_id} not related in\n{shown}"));
    assert!(line.contains("postgres") && line.contains("app"), "{line}");
    assert!(line.ends_with("same principal, overlapping"), "{line}");
    assert!(!shown.contains(&bystander_id), "{shown}");
    let json = cli_json(&env, &["sessions", "show", &call_id]);
    assert_eq!(ids(&json["related"]), std::slice::from_ref(&db_id), "{json}");
    assert_eq!(json["related"][0]["protocol"], "postgres");
    assert_eq!(json["related"][0]["statements"], 2);

    // And the other way: the database session names every request of the agent's MCP client.
    let json = cli_json(&env, &["sessions", "show", &db_id]);
    let related = ids(&json["related"]);
    assert!(related.contains(&call_id), "{json}");
    let mut named: Vec<&String> = related.iter().collect();
    named.sort();
    let mut expected = http_ids.clone();
    expected.sort();
    assert_eq!(named, expected, "{json}");
    assert!(!related.contains(&bystander_id));
    let bystander_json = cli_json(&env, &["sessions", "show", &bystander_id]);
    assert_eq!(bystander_json["related"], json!([]), "{bystander_json}");

    // A call well after the database session ended: outside a 1s window, inside the default 60s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = run_client(
        &url,
        &agent,
        &json!([{"name": "lookup_customer", "arguments": {"id": "8"}}]),
    )
    .await
    .unwrap();
    assert!(out["calls"][0].get("result").is_some(), "{out}");
    let sessions = sessions_of(&env, "agent-7", sessions.len() + 1, true).await;
    let late_id = with_statement(&sessions, "\"id\":\"8\"");
    let (ok, shown) = cli(&env, &["sessions", "show", &late_id, "--window", "1s"]);
    assert!(ok, "{shown}");
    assert!(
        shown.ends_with("within 1s; by identity and time, not cause):\n  none\n"),
        "{shown}"
    );
    let narrow = cli_json(&env, &["sessions", "list", "--related", &db_id, "--window", "1s"]);
    let narrow = ids(&narrow);
    assert!(
        narrow.contains(&call_id) && !narrow.contains(&late_id),
        "{narrow:?}"
    );
    let wide = ids(&cli_json(&env, &["sessions", "list", "--related", &db_id]));
    assert!(wide.contains(&call_id) && wide.contains(&late_id), "{wide:?}");
    let (ok, table) = cli(&env, &["sessions", "list", "--related", &db_id, "--window", "1s"]);
    assert!(
        ok && table.starts_with("SESSION") && table.contains(&call_id),
        "{table}"
    );

    // The admin API's session detail carries the same, and --api goes through it.
    let (status, _, detail) = common::admin_call(
        &env,
        "GET",
        &format!("/api/v1/sessions/{call_id}"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(ids(&detail["related"]), std::slice::from_ref(&db_id), "{detail}");
    assert_eq!(detail["related"][0]["reason"], "same principal, overlapping");
    let (status, _, listed) = common::admin_call(
        &env,
        "GET",
        &format!("/api/v1/sessions?related={db_id}&window=1s"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(ids(&listed), narrow, "{listed}");
    let (status, _, _) = common::admin_call(
        &env,
        "GET",
        &format!("/api/v1/sessions?related={db_id}&subject=x"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (ok, via_api) = cli(&env, &["sessions", "show", &call_id, "--api", "--token", &ops]);
    assert!(
        ok && via_api.contains("Related sessions") && via_api.contains(&db_id),
        "{via_api}"
    );

    // The console's session page links to the related sessions.
    let mut console = Browserless::new(&env);
    console.sign_in("oncall", "portcullis-operators").await;
    let (status, _, page) = console.get(&format!("/console/sessions/{call_id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Related sessions"), "{page}");
    assert!(
        page.contains(&format!("href=\"/console/sessions/{db_id}\"")),
        "{page}"
    );
    assert!(!page.contains(&bystander_id), "{page}");

    drop(other);
}
