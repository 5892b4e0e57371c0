//! `portcullis approvals list|approve|deny`: the reviewer's side of just-in-time approval, through the
//! admin API of a running gateway (`/api/v1/approvals`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::config::Config;
use crate::sessions::{one_line, plain_table, snippet, utc_seconds};

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The gateway's configuration: the admin API is at its `server.admin.listen`.
    #[arg(long, short, env = "PORTCULLIS_CONFIG", required_unless_present = "admin")]
    config: Option<PathBuf>,
    /// The admin API's base URL instead, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    admin: Option<String>,
    /// The reviewer's token from a configured issuer; its groups claim must hold the reviewers group.
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pending approval requests (with --all, decided and expired ones too), newest first.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        all: bool,
        /// Print the requests as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request: a held statement runs, once; a ticket's statement may be run again by
    /// its requester, --uses times within --valid-for.
    Approve {
        /// The request id (`apr_...`).
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: Option<String>,
        /// Tickets: executions allowed (default 1).
        #[arg(long)]
        uses: Option<u32>,
        /// Tickets: how long the grant may be used, e.g. 30m (default: the gateway's grant_ttl).
        #[arg(long)]
        valid_for: Option<String>,
    },
    /// Deny a pending request: the client's statement fails with SQLSTATE 42501 and never runs.
    Deny {
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: Option<String>,
    },
}

pub fn run(command: &Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        match command {
            Command::List { target, all, json } => {
                let query = if *all {
                    vec![("state", "all".to_owned())]
                } else {
                    Vec::new()
                };
                let list = call(target, reqwest::Method::GET, &["approvals"], &query, None).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    print!("{}", render_list(&list));
                }
                Ok(())
            }
            Command::Approve {
                id,
                target,
                reason,
                uses,
                valid_for,
            } => {
                let body = serde_json::json!({ "reason": reason, "uses": uses, "valid_for": valid_for });
                decide(target, id, "approve", body).await
            }
            Command::Deny { id, target, reason } => {
                decide(target, id, "deny", serde_json::json!({ "reason": reason })).await
            }
        }
    })
}

async fn decide(target: &Target, id: &str, verb: &str, body: Value) -> anyhow::Result<()> {
    let body = Some(body);
    let decided = call(target, reqwest::Method::POST, &["approvals", id, verb], &[], body).await?;
    let id = one_line(field(&decided, "id").unwrap_or(id));
    match field(&decided, "decided_by") {
        Some(by) => println!(
            "{id} {} by {}",
            one_line(field(&decided, "state").unwrap_or("?")),
            one_line(by)
        ),
        // An approval short of the quorum: still pending.
        None => {
            let votes = decided.get("votes").and_then(Value::as_array).map_or(0, Vec::len);
            let quorum = decided.get("quorum").and_then(Value::as_u64).unwrap_or(1);
            println!("{id} pending: {votes} of {quorum} approvals");
        }
    }
    Ok(())
}

/// One API call; a problem document becomes an error carrying its title and detail.
async fn call(
    target: &Target,
    method: reqwest::Method,
    path: &[&str],
    query: &[(&str, String)],
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let base = admin_base(target.config.as_deref(), target.admin.as_deref())?;
    let text = call_text(&base, &target.token, method, path, query, body).await?;
    serde_json::from_str(&text).with_context(|| format!("reading the answer to /{}", path.join("/")))
}

/// The admin API's base URL: `--admin`, else `http://<server.admin.listen>` of the configuration.
pub(crate) fn admin_base(config: Option<&Path>, admin: Option<&str>) -> anyhow::Result<String> {
    match (admin, config) {
        (Some(url), _) => Ok(url.trim_end_matches('/').to_owned()),
        (None, Some(config)) => {
            let config = Config::load_without_secrets(config)?;
            Ok(format!("http://{}", config.server.admin.listen))
        }
        (None, None) => bail!("give --config or --admin"),
    }
}

/// `method` `<base>/api/v1/<path segments>?<query>` with the bearer `token` (segments and query values
/// are percent-encoded: ids come from the command line): the body of a successful answer, or an error
/// made of the problem document's title and detail.
pub(crate) async fn call_text(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &[&str],
    query: &[(&str, String)],
    body: Option<Value>,
) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(base).with_context(|| format!("the admin API address {base}"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the admin API address {base} cannot take a path"))?
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(path);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let mut request = reqwest::Client::new()
        .request(method, url.clone())
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url} ({status})"))?;
    if !status.is_success() {
        let problem: Value = serde_json::from_str(&text).unwrap_or_default();
        bail!(
            "{} ({}): {}",
            field(&problem, "title").unwrap_or("request failed"),
            status.as_u16(),
            field(&problem, "detail").unwrap_or(text.trim())
        );
    }
    Ok(text)
}

/// The `approvals list` table.
pub(crate) fn render_list(list: &Value) -> String {
    let requests = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if requests.is_empty() {
        return "no approval requests\n".to_owned();
    }
    let header: Vec<String> = [
        "id",
        "state",
        "requester",
        "connection",
        "created (UTC)",
        "statement",
    ]
    .map(str::to_owned)
    .to_vec();
    let text = |r: &Value, key: &str| one_line(field(r, key).unwrap_or(""));
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            vec![
                text(r, "id"),
                text(r, "state"),
                text(r, "requester"),
                text(r, "connection"),
                utc_seconds(r.get("created_us").and_then(Value::as_i64).unwrap_or(0)),
                snippet(field(r, "statement").unwrap_or(""), 60),
            ]
        })
        .collect();
    plain_table(&header, &rows)
}

/// A string field of a JSON object, if there is one.
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}
