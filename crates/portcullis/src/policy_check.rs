//! `portcullis policy check`: the gateway's statement (or HTTP request) decision, offline, explained.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use portcullis_core::{Outcome, Principal};
use portcullis_policy::{PolicySet, RequestContext};
use portcullis_postgres::classify;
use serde::Serialize;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's TOML configuration (its [policy] files are used; secrets are not read).
    #[arg(long, short, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// The token's subject.
    #[arg(long)]
    pub subject: String,
    /// The issuer alias the token would come from (principal `<issuer>/<subject>`).
    #[arg(long, default_value = "dev")]
    pub issuer: String,
    /// A group from the token's groups claim; repeat for several.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// The connection name (what clients put in dbname).
    #[arg(long)]
    pub connection: String,
    /// The statement(s) to decide: one query string, as a client would send it.
    #[arg(long, conflicts_with_all = ["file", "http"], required_unless_present_any = ["file", "http"])]
    pub sql: Option<String>,
    /// A file of statements, decided one by one as a multi-statement string.
    #[arg(long, conflicts_with = "http")]
    pub file: Option<PathBuf>,
    /// An HTTP request on an http connection, as the agent sends it: "METHOD /<connection>/<path>?<query>",
    /// e.g. "DELETE /crm/customers/42".
    #[arg(long)]
    pub http: Option<String>,
    /// A request header for --http, "name: value"; repeat for several.
    #[arg(long = "header", requires = "http")]
    pub headers: Vec<String>,
    /// A JSON request body for --http.
    #[arg(long, requires = "http")]
    pub body: Option<String>,
    /// The client address the request comes from.
    #[arg(long, default_value = "127.0.0.1")]
    pub client_ip: IpAddr,
    /// The token's age in seconds.
    #[arg(long, default_value_t = 0)]
    pub token_age: i64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What the policy decides for one identity's statements on one connection.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub principal: String,
    pub connection: &'a str,
    pub connect: portcullis_core::Decision,
    pub statements: Vec<StatementReport>,
    pub allowed: bool,
}

#[derive(Debug, Serialize)]
pub struct StatementReport {
    pub facts: portcullis_core::StatementFacts,
    pub decision: portcullis_core::Decision,
}

/// Decides the connection and each statement of `sql` as the gateway would (the command and the
/// console's policy page).
pub fn evaluate<'a>(
    policies: &PolicySet,
    principal: &Principal,
    connection: &'a str,
    sql: &str,
    context: &RequestContext,
) -> Report<'a> {
    let connect = policies.decide_connect(principal, connection, context);
    let analysis = classify::analyse(sql);
    let count = analysis.statements.len();
    let statements: Vec<StatementReport> = analysis
        .statements
        .into_iter()
        .map(|facts| {
            let decision = policies.decide_statement(principal, connection, &facts, count, context);
            StatementReport { facts, decision }
        })
        .collect();
    let allowed =
        connect.outcome == Outcome::Allow && statements.iter().all(|s| s.decision.outcome == Outcome::Allow);
    Report {
        principal: principal.name(),
        connection,
        connect,
        statements,
        allowed,
    }
}

/// What the policy decides for one HTTP request.
#[derive(Debug, Serialize)]
pub struct HttpReport<'a> {
    pub principal: String,
    pub connection: &'a str,
    pub connect: portcullis_core::Decision,
    pub request: portcullis_core::HttpRequestFacts,
    pub decision: portcullis_core::Decision,
    pub allowed: bool,
}

/// Decides `--http` as the proxy would: the request's facts from the connection's routes and
/// `context_headers`, the body's fields when it is small JSON, then `connect` and the request's action.
fn evaluate_http<'a>(
    config: &Config,
    policies: &PolicySet,
    principal: &Principal,
    connection: &'a str,
    args: &Args,
    request: &str,
    context: &RequestContext,
) -> anyhow::Result<HttpReport<'a>> {
    let c = config
        .connections
        .iter()
        .find(|c| c.name == connection && c.protocol == crate::config::Protocol::Http)
        .with_context(|| format!("{connection:?} is not an http connection"))?;
    let (method, target) = request
        .split_once(' ')
        .context("--http takes \"METHOD /<connection>/<path>\"")?;
    let method = http::Method::from_bytes(method.trim().as_bytes()).context("--http: the method")?;
    let target = target.trim();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let prefix = format!("/{connection}");
    let forwarded = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => anyhow::bail!("--http: the path must start with {prefix}/, as the agent calls it"),
    };
    let mut headers = http::HeaderMap::new();
    for header in &args.headers {
        let (name, value) = header.split_once(':').context("--header takes \"name: value\"")?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).context("--header: the name")?,
            http::HeaderValue::from_str(value.trim()).context("--header: the value")?,
        );
    }
    let routes = c
        .routes
        .iter()
        .map(|r| {
            Ok((
                r.name.clone(),
                portcullis_http::RouteTemplate::parse(&r.template)?,
            ))
        })
        .collect::<Result<Vec<_>, portcullis_http::TemplateError>>()?;
    let context_headers = c
        .context_headers
        .iter()
        .map(|h| http::HeaderName::from_bytes(h.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let would_answer =
        |p: portcullis_http::Problem| anyhow::anyhow!("the proxy would answer {}: {}", p.status, p.detail);
    let mut facts =
        portcullis_http::request_facts(&method, forwarded, query, &headers, &routes, &context_headers)
            .map_err(would_answer)?;
    facts.body = match args
        .body
        .as_deref()
        .filter(|b| b.len() <= config.server.http.inspect_body_bytes)
    {
        Some(body) => portcullis_http::body_fields(body.as_bytes()).map_err(would_answer)?,
        None => None,
    };
    let connect = policies.decide_connect(principal, connection, context);
    let decision = policies.decide_http(principal, connection, &facts, context);
    let allowed = connect.outcome == Outcome::Allow && decision.outcome == Outcome::Allow;
    Ok(HttpReport {
        principal: principal.name(),
        connection,
        connect,
        request: facts,
        decision,
        allowed,
    })
}

fn print_http(report: &HttpReport<'_>) {
    let r = &report.request;
    let pairs = |v: &[(String, String)]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!("principal  {}", report.principal);
    println!("connection {}", report.connection);
    println!("connect    {}", describe(&report.connect));
    println!();
    println!("request: {} {} ({})", r.method, r.path, r.action.action());
    match &r.route {
        Some(route) => println!("  route         {} ({})", route.name, route.template),
        None => println!("  route         - (decided on the connection)"),
    }
    println!("  params        {}", pairs(&r.params));
    println!("  query         {}", pairs(&r.query));
    println!("  headers       {}", pairs(&r.headers));
    match &r.body {
        Some(body) => println!("  body          {}", pairs(body)),
        None => println!("  body          absent"),
    }
    println!("  decision      {}", describe(&report.decision));
    println!();
    println!("{}", if report.allowed { "ALLOWED" } else { "REFUSED" });
}

/// Prints the report; returns whether everything was allowed.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let config = Config::load_without_secrets(&args.config)?;
    let policies = config.load_policies()?;
    anyhow::ensure!(
        config.connections.iter().any(|c| c.name == args.connection),
        "no connection named {:?} in {}",
        args.connection,
        args.config.display()
    );
    let sql = match (&args.sql, &args.file) {
        _ if args.http.is_some() => String::new(),
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, None) => anyhow::bail!("give --sql or --file"),
    };
    let now = SystemTime::now();
    let age = Duration::from_secs(u64::try_from(args.token_age).unwrap_or(0));
    let principal = Principal {
        issuer_alias: args.issuer.clone(),
        issuer: args.issuer.clone(),
        subject: args.subject.clone(),
        groups: args.groups.clone(),
        token_id: None,
        issued_at: now.checked_sub(age),
        expires_at: now + Duration::from_secs(900),
    };
    let context = RequestContext {
        client_ip: args.client_ip,
        token_age_secs: args.token_age,
    };
    if let Some(request) = &args.http {
        let report = evaluate_http(
            &config,
            &policies,
            &principal,
            &args.connection,
            args,
            request,
            &context,
        )?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_http(&report);
        }
        return Ok(report.allowed);
    }
    let report = evaluate(&policies, &principal, &args.connection, &sql, &context);
    let allowed = report.allowed;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(allowed)
}

fn print_text(report: &Report<'_>) {
    println!("principal  {}", report.principal);
    println!("connection {}", report.connection);
    println!("connect    {}", describe(&report.connect));
    for (i, s) in report.statements.iter().enumerate() {
        let f = &s.facts;
        println!();
        println!(
            "statement {} of {}: {} ({})",
            i + 1,
            report.statements.len(),
            f.command,
            f.kind.action()
        );
        if let Some(error) = &f.parse_error {
            println!("  parse error   {error}");
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(", ")
            }
        };
        println!("  reads         {}", list(&f.reads));
        println!("  writes        {}", list(&f.writes));
        println!("  operations    {}", list(&f.operations));
        println!("  functions     {}", list(&f.functions));
        println!(
            "  has_where {}  unbounded_write {}  modifying_cte {}  explain_analyze {}",
            f.has_where, f.unbounded_write, f.modifying_cte, f.explain_analyze
        );
        if !f.setting.is_empty() {
            println!("  setting       {}", f.setting);
        }
        if let Some(name) = &f.prepares {
            println!("  prepares      {name}");
        }
        if let Some(name) = &f.executes {
            println!("  executes      {name} (decided at run time on the prepared statement's facts)");
        }
        println!("  decision      {}", describe(&s.decision));
    }
    println!();
    println!("{}", if report.allowed { "ALLOWED" } else { "REFUSED" });
}

pub fn describe(d: &portcullis_core::Decision) -> String {
    let outcome = match d.outcome {
        Outcome::Allow => "allow",
        Outcome::ApprovalRequired => "approval required",
        Outcome::Deny => "deny",
    };
    let by = if d.policies.is_empty() {
        String::new()
    } else {
        format!(" by {}", d.policies.join(", "))
    };
    format!("{outcome}{by}: {}", d.reason)
}
