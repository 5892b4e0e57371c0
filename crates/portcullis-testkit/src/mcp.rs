//! A real MCP server and client (the official TypeScript SDK, `@modelcontextprotocol/sdk` from npm) for
//! tests. The Node project is `crates/portcullis-testkit/mcp/` (`server.mjs`, `client.mjs`); the first
//! use on a machine runs `npm ci` there, as for the `oidc-provider` (same staging and rename).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::ports::free_port;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `crates/portcullis-testkit/mcp`.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp")
}

async fn installed() -> anyhow::Result<PathBuf> {
    let project = project_dir();
    let dir = project.clone();
    tokio::task::spawn_blocking(move || {
        crate::oidc_provider::ensure_installed(&dir, "@modelcontextprotocol/sdk")
    })
    .await
    .context("npm ci task")??;
    Ok(project)
}

/// How the server answers POSTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responses {
    /// `text/event-stream` (the SDK's default).
    EventStream,
    /// `application/json` (`enableJsonResponse`).
    Json,
}

/// A running MCP server (stateless streamable HTTP on loopback; any path); Drop kills it. Tools:
/// `lookup_customer {id}` (its text result is `{"id", "email"}`), `delete_customer {id}`,
/// `list_orders`. `GET /seen` (not MCP) reports the tool calls that reached it and the
/// `Authorization` headers it saw.
#[derive(Debug)]
pub struct McpServer {
    child: Child,
    port: u16,
}

impl McpServer {
    pub async fn start(responses: Responses) -> anyhow::Result<McpServer> {
        let project = installed().await?;
        let port = free_port()?;
        let mode = match responses {
            Responses::EventStream => "sse",
            Responses::Json => "json",
        };
        let child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .arg(mode)
            .current_dir(&project)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start node server.mjs (node must be on PATH)")?;
        let server = McpServer { child, port };
        let deadline = Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("the MCP server did not listen on port {port} within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What reached the server: `{"calls": [{tool, id?}], "authorization": [header or null]}`.
    pub async fn seen(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("http://{}/seen", self.addr());
        Ok(reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .json()
            .await?)
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the SDK's client against `url` with `Authorization: Bearer <token>`: it connects (initialize),
/// lists the tools and makes `calls` (`[{"name", "arguments"}]`) in order. Returns what it printed:
/// `{"tools": [names], "calls": [{"name", "result"} | {"name", "error": {"code", "message", "data"}}]}`
/// (and `"error"` when connecting or listing failed).
pub async fn run_client(
    url: &str,
    token: &str,
    calls: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let project = installed().await?;
    let mut command = tokio::process::Command::new("node");
    command
        .arg("client.mjs")
        .arg(url)
        .arg(token)
        .arg(calls.to_string())
        .current_dir(project)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .context("the MCP client did not finish in time")?
        .context("run node client.mjs")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| {
        format!(
            "the MCP client's output ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
