//! `portcullis sessions` and `portcullis revoke`: the operator's view of the audit trail, and its two levers.
//!
//! Each command opens the store, reads, and hands the rows to a pure renderer (rows in, `String` out), so
//! what an operator sees is unit-tested without a terminal. Everything recorded came from a client or a
//! database, so text is printed with control characters escaped: a stored value cannot drive the
//! operator's terminal.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use portcullis_audit::{
    ApprovalEvent, AuditError, AuditStore, BodyRecord, Control, EventBody, OutcomeEvent, RelatedSession,
    RelatedWindow, ResultRecord, Revocation, SessionEndEvent, SessionFilter, SessionStartEvent,
    SessionSummary, SqliteStore, StatementEvent, StoredEvent, VerifyReport,
};
use serde::Serialize;

use crate::config::Config;

/// Where the store is: the gateway's configuration names it.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The gateway's TOML configuration: its [audit] section names the store (secrets are not read).
    #[arg(long, short, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// Go through the running gateway's admin API (an operator's token; see --token) instead of
    /// reading the store's file: for a machine without access to it.
    #[arg(long)]
    pub api: bool,
    /// With --api: the admin API's base URL (default: http://<server.admin.listen> of the configuration).
    #[arg(long)]
    pub admin: Option<String>,
    /// With --api: a token whose groups claim holds [server.admin] operators_group.
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List recorded sessions, newest first: when, how long (or `live`), who, where to, from where,
    /// statements and refusals, and why each ended. With --related, the sessions related to one.
    ///
    /// Example: portcullis sessions list -c portcullis.toml --subject deploy-bot --since 2h
    List(ListArgs),
    /// Show one session: the identity it ran as, every recorded event, one line each, and the related
    /// sessions: the same principal's sessions on another protocol (its MCP calls and HTTP requests
    /// around a database session, and the reverse) within --window of it.
    ///
    /// Example: portcullis sessions show -c portcullis.toml 0193f0c2-7a51-7c3e-9d4e-5b2a8f6c1e07
    Show(ShowArgs),
    /// Replay one session as a timeline: each statement with the gateway's decision, what the
    /// client got back (tags, rows, errors, and the recorded result as a table), and how it ended.
    ///
    /// Example: portcullis sessions replay -c portcullis.toml 0193f0c2-7a51-7c3e-9d4e-5b2a8f6c1e07
    Replay(SessionArgs),
    /// Recompute the hash chain of the whole store (from the last pruning checkpoint). Exits 0 when
    /// every event follows from its predecessor, 1 at the first event that was altered, removed or
    /// reordered.
    ///
    /// Example: portcullis sessions verify -c portcullis.toml
    Verify(VerifyArgs),
    /// End a live session: records the instruction in the store; every gateway sharing the store
    /// ends the session within its control interval (audit.control_interval, 250ms by default).
    ///
    /// Example: portcullis sessions kill -c portcullis.toml 0193f0c2-7a51-7c3e-9d4e-5b2a8f6c1e07
    Kill(KillArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only sessions of this token subject (`sub`).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only sessions on this connection (the name clients put in dbname).
    #[arg(long)]
    pub connection: Option<String>,
    /// Only sessions that started at or after this time: RFC 3339 (2026-11-26T08:00:00Z, UTC) or a
    /// duration ago (30m, 1h, 7d).
    #[arg(long, value_parser = parse_time_arg)]
    pub since: Option<TimeArg>,
    /// Only sessions that started before this time (same forms as --since).
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<TimeArg>,
    /// Only the sessions related to this one: of the same principal (issuer and subject), on another
    /// protocol, within --window of its span (the other filters do not apply).
    #[arg(long, conflicts_with_all = ["subject", "connection", "since", "until"])]
    pub related: Option<String>,
    /// With --related: how far before the session's start and after its end to look (30s, 5m).
    #[arg(long, requires = "related", value_parser = humantime::parse_duration, default_value = "60s")]
    pub window: Duration,
    /// At most this many sessions.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The session id (first column of `portcullis sessions list`).
    pub id: String,
    /// How far before the session's start and after its end to look for related sessions (30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub window: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The session id (first column of `portcullis sessions list`).
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the report as JSON (the exit status is the same).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The session id (first column of `portcullis sessions list`).
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The token subject (`sub`) to bar.
    #[arg(long)]
    pub subject: String,
    /// Only this issuer's tokens (its URL or configured alias); every issuer when absent.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Until when: RFC 3339 (2026-11-26T08:00:00Z, UTC) or a duration from now (2h, 7d); indefinitely
    /// when absent.
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<TimeArg>,
}

/// A point in time as the operator wrote it: absolute, or a distance from now whose direction the
/// option gives (`--since 2h` is in the past, `--until 2h` on `revoke` is in the future).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    At(SystemTime),
    FromNow(Duration),
}

/// Parses `2026-11-26T08:00:00Z` (also with a space for `T`, without `Z`: UTC) or `30m`, `2h`, `7d`.
pub fn parse_time_arg(text: &str) -> Result<TimeArg, String> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(TimeArg::At(at));
    }
    humantime::parse_duration(text).map(TimeArg::FromNow).map_err(|_| {
        format!(
            "{text:?} is neither an RFC 3339 time in UTC (2026-11-26T08:00:00Z) nor a duration (30m, 2h, 7d)"
        )
    })
}

impl TimeArg {
    /// Microseconds since the epoch, reading a duration as "that long before `now_us`".
    pub fn ago(self, now_us: i64) -> i64 {
        match self {
            TimeArg::At(at) => system_time_us(at),
            TimeArg::FromNow(d) => now_us.saturating_sub(duration_us(d)),
        }
    }

    /// Microseconds since the epoch, reading a duration as "that long after `now_us`".
    pub fn ahead(self, now_us: i64) -> i64 {
        match self {
            TimeArg::At(at) => system_time_us(at),
            TimeArg::FromNow(d) => now_us.saturating_add(duration_us(d)),
        }
    }
}

/// Runs a `sessions` command. Returns `false` when the answer is "no" (a broken chain): the caller exits 1.
pub fn run(command: &Command) -> anyhow::Result<bool> {
    let store = match command {
        Command::List(a) => &a.store,
        Command::Show(a) => &a.store,
        Command::Replay(a) => &a.store,
        Command::Verify(a) => &a.store,
        Command::Kill(a) => &a.store,
    };
    if store.api {
        return via_api(command, store).map(|()| true);
    }
    match command {
        Command::List(args) => {
            let (_, mut store) = open_store(&args.store)?;
            let now = portcullis_audit::now_us();
            if let Some(id) = &args.related {
                let window = related_window(args.window, args.limit, now);
                let related = match store.related_sessions(id, &window) {
                    Err(AuditError::NoSession(_)) => {
                        anyhow::bail!("no session {id}; `portcullis sessions list` shows recent ones")
                    }
                    found => found?,
                };
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&related)?);
                } else {
                    print!("{}", render_related_list(&related));
                }
                return Ok(true);
            }
            let filter = SessionFilter {
                subject: args.subject.clone(),
                connection: args.connection.clone(),
                since_us: args.since.map(|t| t.ago(now)),
                until_us: args.until.map(|t| t.ago(now)),
                limit: Some(args.limit),
            };
            let sessions = store.sessions(&filter)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&sessions)?);
            } else {
                print!("{}", render_list(&sessions));
            }
        }
        Command::Show(args) => {
            let (_, mut store) = open_store(&args.store)?;
            let events = load_session(&mut store, &args.id)?;
            let window = related_window(
                args.window,
                RelatedWindow::DEFAULT_LIMIT,
                portcullis_audit::now_us(),
            );
            let related = related_to(&mut store, &args.id, &window)?;
            if args.json {
                println!("{}", show_json(&args.id, &events, &related)?);
            } else {
                print!("{}", render_show(&args.id, &events, &related));
            }
        }
        Command::Replay(args) => {
            let (_, mut store) = open_store(&args.store)?;
            let events = load_session(&mut store, &args.id)?;
            let timeline = timeline(&events);
            if args.json {
                println!("{}", replay_json(&timeline)?);
            } else {
                print!("{}", render_replay(&args.id, &timeline));
            }
        }
        Command::Verify(args) => {
            let (_, mut store) = open_store(&args.store)?;
            let report = verify_showing_progress(&mut store)?;
            if args.json {
                println!("{}", verify_json(&report)?);
            } else {
                print!("{}", render_verify(&report));
            }
            return Ok(report.broken.is_none());
        }
        Command::Kill(args) => {
            let (config, mut store) = open_store(&args.store)?;
            let control = record_kill(&mut store, &args.id)?;
            println!(
                "kill recorded for session {} (control {control}): running gateways end it within their \
                 control interval (audit.control_interval = {})",
                args.id,
                humantime::format_duration(config.audit.control_interval)
            );
            warn_if_disabled(&config, &args.store.config);
        }
    }
    Ok(true)
}

/// The `sessions` commands through the admin API: the gateway renders what the command would print.
fn via_api(command: &Command, store: &StoreArgs) -> anyhow::Result<()> {
    let format = |json: bool| if json { "json" } else { "text" };
    let (method, path, query): (_, Vec<&str>, Vec<(&str, String)>) = match command {
        Command::List(args) => {
            let now = portcullis_audit::now_us();
            let mut query = vec![
                ("limit", args.limit.to_string()),
                ("format", format(args.json).to_owned()),
            ];
            if args.related.is_some() {
                query.push(("window", humantime::format_duration(args.window).to_string()));
            }
            for (key, value) in [
                ("related", args.related.clone()),
                ("subject", args.subject.clone()),
                ("connection", args.connection.clone()),
                ("since", args.since.map(|t| rfc3339(t.ago(now)))),
                ("until", args.until.map(|t| rfc3339(t.ago(now)))),
            ] {
                if let Some(value) = value {
                    query.push((key, value));
                }
            }
            (reqwest::Method::GET, vec!["sessions"], query)
        }
        Command::Show(args) => (
            reqwest::Method::GET,
            vec!["sessions", &args.id],
            vec![
                ("format", format(args.json).to_owned()),
                ("window", humantime::format_duration(args.window).to_string()),
            ],
        ),
        Command::Replay(args) => (
            reqwest::Method::GET,
            vec!["sessions", &args.id, "replay"],
            vec![("format", format(args.json).to_owned())],
        ),
        Command::Kill(args) => (
            reqwest::Method::POST,
            vec!["sessions", &args.id, "kill"],
            Vec::new(),
        ),
        Command::Verify(_) => anyhow::bail!(
            "sessions verify recomputes every hash of the store itself: run it where the store's file is, \
             without --api"
        ),
    };
    let body = api_call(store, method, &path, &query, None)?;
    match command {
        Command::Kill(args) => println!("kill recorded for session {} through the admin API", args.id),
        _ if body.ends_with('\n') => print!("{body}"),
        _ => println!("{body}"),
    }
    Ok(())
}

/// Microseconds since the epoch as RFC 3339 (UTC), as the API's time parameters take them.
fn rfc3339(us: i64) -> String {
    humantime::format_rfc3339_micros(
        std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0)),
    )
    .to_string()
}

/// One admin API call for the `sessions` and `revoke` commands' --api.
fn api_call(
    store: &StoreArgs,
    method: reqwest::Method,
    path: &[&str],
    query: &[(&str, String)],
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let token = store
        .token
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--api needs an operator's token: --token or PORTCULLIS_TOKEN"))?;
    let base = crate::approvals_cli::admin_base(Some(&store.config), store.admin.as_deref())?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(crate::approvals_cli::call_text(
            &base, token, method, path, query, body,
        ))
}

/// `portcullis revoke`: bars an identity until a time or indefinitely.
pub fn revoke(args: &RevokeArgs) -> anyhow::Result<()> {
    if args.store.api {
        let until = args.until.map(|t| rfc3339(t.ahead(portcullis_audit::now_us())));
        let body = serde_json::json!({ "subject": args.subject, "issuer": args.issuer, "until": until });
        api_call(&args.store, reqwest::Method::POST, &["revoke"], &[], Some(body))?;
        println!("revoked subject {:?} through the admin API", args.subject);
        return Ok(());
    }
    let (config, mut store) = open_store(&args.store)?;
    let revocation = Revocation {
        subject: args.subject.clone(),
        issuer: args.issuer.clone(),
        until_us: args.until.map(|t| t.ahead(portcullis_audit::now_us())),
    };
    let control = record_revoke(&mut store, revocation.clone(), portcullis_audit::now_us())?;
    println!(
        "revoked subject {:?} of {}{} (control {control}): new sessions are refused, and live ones end \
         within audit.control_interval ({})",
        revocation.subject,
        revocation
            .issuer
            .as_ref()
            .map_or_else(|| "every issuer".to_owned(), |i| format!("issuer {i:?}")),
        revocation.until_us.map_or_else(
            || " indefinitely".to_owned(),
            |u| format!(" until {} UTC", utc_seconds(u))
        ),
        humantime::format_duration(config.audit.control_interval)
    );
    warn_if_disabled(&config, &args.store.config);
    Ok(())
}

// ---- store access -------------------------------------------------------------------------------------

/// Loads the configuration (without resolving secrets) and opens the store it names.
fn open_store(args: &StoreArgs) -> anyhow::Result<(Config, SqliteStore)> {
    let config = Config::load_without_secrets(&args.config)?;
    let store = open_store_at(&config.audit_path())?;
    Ok((config, store))
}

/// Opens an existing store. Checked first because opening creates the file: `sessions list` on a machine
/// where the gateway never ran must say so, not print an empty table from a store it just made.
pub(crate) fn open_store_at(path: &Path) -> anyhow::Result<SqliteStore> {
    anyhow::ensure!(
        path.exists(),
        "no audit store at {}: has the gateway run with [audit] enabled?",
        path.display()
    );
    SqliteStore::open(path).with_context(|| format!("opening the audit store {}", path.display()))
}

/// Every event of session `id`, or the error an operator can act on.
pub(crate) fn load_session(store: &mut dyn AuditStore, id: &str) -> anyhow::Result<Vec<StoredEvent>> {
    find_session(store, id)?
        .ok_or_else(|| anyhow::anyhow!("no session {id}; `portcullis sessions list` shows recent ones"))
}

/// Every event of session `id`; `None` when the store has none (the command and the API each say so in
/// their own way).
pub(crate) fn find_session(
    store: &mut dyn AuditStore,
    id: &str,
) -> Result<Option<Vec<StoredEvent>>, AuditError> {
    match store.session_events(id) {
        Ok(events) if !events.is_empty() => Ok(Some(events)),
        Ok(_) | Err(AuditError::NoSession(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where `sessions show` and `sessions list --related` look: `window` either side, at most `limit`.
pub(crate) fn related_window(window: Duration, limit: usize, now_us: i64) -> RelatedWindow {
    RelatedWindow {
        window_us: duration_us(window),
        limit,
        now_us,
    }
}

/// The sessions related to `id` ([`AuditStore::related_sessions`]); none when the store has no summary
/// of it (its start was pruned: its events alone name no span to look around).
pub(crate) fn related_to(
    store: &mut dyn AuditStore,
    id: &str,
    window: &RelatedWindow,
) -> Result<Related, AuditError> {
    let sessions = match store.related_sessions(id, window) {
        Err(AuditError::NoSession(_)) => Vec::new(),
        found => found?,
    };
    Ok(Related {
        window_us: window.window_us,
        sessions,
    })
}

/// The sessions related to a shown one, and how far around it they were looked for.
#[derive(Debug, Clone, Serialize)]
pub struct Related {
    pub window_us: i64,
    pub sessions: Vec<RelatedSession>,
}

/// Records a kill for a session that exists and has not ended; returns the control's id.
fn record_kill(store: &mut dyn AuditStore, id: &str) -> anyhow::Result<i64> {
    let events = load_session(store, id)?;
    record_kill_of(store, id, &events)
}

/// As [`record_kill`], for a session whose `events` were just read.
pub(crate) fn record_kill_of(
    store: &mut dyn AuditStore,
    id: &str,
    events: &[StoredEvent],
) -> anyhow::Result<i64> {
    if let Some((at_us, end)) = decode_all(events).iter().find_map(|d| match &d.body {
        Ok(EventBody::SessionEnd(end)) => Some((d.stored.at_us, end.clone())),
        _ => None,
    }) {
        anyhow::bail!(
            "session {id} already ended at {} UTC ({}); there is nothing to kill",
            utc_seconds(at_us),
            one_line(&end.reason)
        );
    }
    Ok(store.add_control(&Control::Kill {
        id: 0,
        session: id.to_owned(),
    })?)
}

/// Verifies the chain; on a terminal, a line on standard error shows how far it has got (a large store
/// takes a while), overwritten in place at most twice a second and cleared at the end.
fn verify_showing_progress(store: &mut dyn AuditStore) -> anyhow::Result<VerifyReport> {
    use std::io::{IsTerminal, Write};
    let mut stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return Ok(portcullis_audit::verify(store)?);
    }
    let started = std::time::Instant::now();
    let mut shown = started;
    let report = portcullis_audit::verify_with_progress(store, &mut |events, seq| {
        if shown.elapsed() >= Duration::from_millis(500) {
            shown = std::time::Instant::now();
            let _ = write!(
                stderr,
                "\rverifying: {events} events checked, up to event {seq} ({:.0?})",
                started.elapsed()
            );
        }
    });
    if shown != started {
        let _ = write!(stderr, "\r\x1b[2K");
    }
    Ok(report?)
}

/// Records a revocation; refuses an empty subject or an end in the past.
pub(crate) fn record_revoke(
    store: &mut dyn AuditStore,
    revocation: Revocation,
    now_us: i64,
) -> anyhow::Result<i64> {
    anyhow::ensure!(!revocation.subject.is_empty(), "--subject must not be empty");
    if let Some(until) = revocation.until_us {
        anyhow::ensure!(
            until > now_us,
            "--until {} UTC is in the past: the revocation would bar nobody",
            utc_seconds(until)
        );
    }
    Ok(store.add_control(&Control::Revoke { id: 0, revocation })?)
}

/// Controls are read by gateways that record; one with auditing off never sees them.
fn warn_if_disabled(config: &Config, path: &Path) {
    if !config.audit.enabled {
        eprintln!(
            "warning: audit.enabled is false in {}: a gateway running with it does not read the store and \
             will not act on this",
            path.display()
        );
    }
}

// ---- decoding -----------------------------------------------------------------------------------------

/// A stored event with its body decoded, or why it could not be.
#[derive(Debug)]
struct Decoded<'a> {
    stored: &'a StoredEvent,
    body: Result<EventBody, String>,
}

fn decode_all(events: &[StoredEvent]) -> Vec<Decoded<'_>> {
    events
        .iter()
        .map(|stored| Decoded {
            stored,
            body: stored.decode().map_err(|e| e.to_string()),
        })
        .collect()
}

/// The session's start: its `session_start` event, else its first event.
fn start_us(decoded: &[Decoded<'_>]) -> i64 {
    decoded
        .iter()
        .find(|d| matches!(d.body, Ok(EventBody::SessionStart(_))))
        .or_else(|| decoded.first())
        .map_or(0, |d| d.stored.at_us)
}

fn session_start<'a>(decoded: &'a [Decoded<'_>]) -> Option<&'a SessionStartEvent> {
    decoded.iter().find_map(|d| match &d.body {
        Ok(EventBody::SessionStart(s)) => Some(s),
        _ => None,
    })
}

fn session_end<'a>(decoded: &'a [Decoded<'_>]) -> Option<(i64, &'a SessionEndEvent)> {
    decoded.iter().find_map(|d| match &d.body {
        Ok(EventBody::SessionEnd(e)) => Some((d.stored.at_us, e)),
        _ => None,
    })
}

// ---- list ---------------------------------------------------------------------------------------------

/// The `sessions list` table.
pub fn render_list(sessions: &[SessionSummary]) -> String {
    if sessions.is_empty() {
        return "no sessions match\n".to_owned();
    }
    let header = [
        "SESSION",
        "STARTED (UTC)",
        "DURATION",
        "SUBJECT",
        "CONNECTION",
        "CLIENT",
        "STATEMENTS",
        "REFUSED",
        "END",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                one_line(&s.session),
                utc_seconds(s.started_us),
                s.ended_us.map_or_else(
                    || "live".to_owned(),
                    |end| format_duration_us(u64::try_from(end.saturating_sub(s.started_us)).unwrap_or(0)),
                ),
                one_line(&s.subject),
                one_line(&s.connection),
                one_line(&s.client_addr),
                s.statements.to_string(),
                s.refused.to_string(),
                s.end_reason.as_deref().map_or_else(|| "-".to_owned(), one_line),
            ]
        })
        .collect();
    plain_table(&header, &rows)
}

/// A table for the terminal: columns padded to their widest cell, two spaces apart, no rule.
pub(crate) fn plain_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for line in aligned(header, rows, "  ", None) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

// ---- show ---------------------------------------------------------------------------------------------

/// The `sessions show` text: the identity the session ran as, one line per event, then its related
/// sessions.
pub fn render_show(id: &str, events: &[StoredEvent], related: &Related) -> String {
    let decoded = decode_all(events);
    let mut out = String::new();
    let _ = writeln!(out, "session     {}", one_line(id));
    match session_start(&decoded) {
        Some(s) => {
            let _ = writeln!(out, "subject     {}", one_line(&s.subject));
            let _ = writeln!(
                out,
                "issuer      {} (alias {})",
                one_line(&s.issuer),
                one_line(&s.issuer_alias)
            );
            let groups = if s.groups.is_empty() {
                "(none)".to_owned()
            } else {
                one_line(&s.groups.join(", "))
            };
            let _ = writeln!(out, "groups      {groups}");
            let _ = writeln!(
                out,
                "token       id {}, expires {} UTC",
                s.token_id
                    .as_deref()
                    .map_or_else(|| "(none)".to_owned(), one_line),
                utc_seconds(s.token_expires_at.saturating_mul(1_000_000))
            );
            let _ = writeln!(
                out,
                "client      {} over {}, user name \"{}\"",
                one_line(&s.client_addr),
                if s.client_tls { "TLS" } else { "plain TCP" },
                one_line(&s.client_user)
            );
            let _ = writeln!(
                out,
                "connection  {} ({})",
                one_line(&s.connection),
                one_line(&s.protocol)
            );
            let _ = writeln!(
                out,
                "upstream    role {} over {}",
                one_line(&s.upstream_role),
                if s.upstream_tls { "TLS" } else { "plain TCP" }
            );
        }
        None => out.push_str("(no session_start event recorded: the identity is unknown)\n"),
    }
    let _ = writeln!(out, "started     {} UTC", utc_seconds(start_us(&decoded)));
    match session_end(&decoded) {
        Some((at, end)) => {
            let _ = writeln!(
                out,
                "ended       {} UTC ({})",
                utc_seconds(at),
                one_line(&end.reason)
            );
        }
        None => out.push_str("ended       no: live, or the gateway stopped before recording its end\n"),
    }
    out.push('\n');
    let header = ["SEQ", "TIME (UTC)", "KIND", "SUMMARY"]
        .map(str::to_owned)
        .to_vec();
    let http = session_start(&decoded).is_some_and(|s| s.protocol == "http");
    let rows: Vec<Vec<String>> = decoded
        .iter()
        .map(|d| {
            vec![
                d.stored.seq.to_string(),
                utc_millis(d.stored.at_us),
                one_line(&d.stored.kind),
                event_summary(d, http),
            ]
        })
        .collect();
    out.push_str(&plain_table(&header, &rows));
    out.push('\n');
    out.push_str(&render_related(related));
    out
}

/// The "Related sessions" section of `sessions show`.
fn render_related(related: &Related) -> String {
    let window = humantime::format_duration(Duration::from_micros(
        u64::try_from(related.window_us).unwrap_or(0),
    ));
    let mut out = format!(
        "Related sessions (the same principal on another protocol, within {window}; by identity and time, \
         not cause):\n"
    );
    if related.sessions.is_empty() {
        out.push_str("  none\n");
        return out;
    }
    out.push_str(&related_table(&related.sessions));
    out
}

/// Related sessions as a table: id, protocol, connection, start, statements, why.
fn related_table(related: &[RelatedSession]) -> String {
    let header = [
        "SESSION",
        "PROTOCOL",
        "CONNECTION",
        "STARTED (UTC)",
        "STATEMENTS",
        "REASON",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows: Vec<Vec<String>> = related
        .iter()
        .map(|r| {
            let s = &r.summary;
            vec![
                one_line(&s.session),
                if s.protocol.is_empty() {
                    "?".to_owned()
                } else {
                    one_line(&s.protocol)
                },
                one_line(&s.connection),
                utc_millis(s.started_us),
                s.statements.to_string(),
                one_line(&r.reason),
            ]
        })
        .collect();
    plain_table(&header, &rows)
}

/// The `sessions list --related` table.
pub fn render_related_list(related: &[RelatedSession]) -> String {
    if related.is_empty() {
        return "no related sessions\n".to_owned();
    }
    related_table(related)
}

/// One line about an event, for `sessions show`; `http` when the session is an HTTP request.
fn event_summary(d: &Decoded<'_>, http: bool) -> String {
    match &d.body {
        Err(e) => format!("(unreadable body: {})", one_line(e)),
        Ok(EventBody::SessionStart(s)) => format!(
            "{} of {} from {} to {} as {}",
            one_line(&s.subject),
            one_line(&s.issuer_alias),
            one_line(&s.client_addr),
            one_line(&s.connection),
            one_line(&s.upstream_role)
        ),
        Ok(EventBody::Statement(s)) => format!(
            "#{} {} {}: {}",
            s.n,
            message_phrase(s),
            decision_phrase(s),
            snippet(&s.text, 80)
        ),
        Ok(EventBody::Outcome(o)) if http => format!("#{} {}", o.n, http_outcome_phrase(o)),
        Ok(EventBody::Outcome(o)) => format!("#{} {}", o.n, outcome_phrase(o)),
        Ok(EventBody::SessionEnd(e)) => end_phrase(e),
        Ok(EventBody::Approval(a)) => format!("#{} {}", a.n, approval_phrase(a)),
    }
}

/// `approval apr_… requested (policy p)`, `… approved by dev/alice`, `… denied by … : reason`.
fn approval_phrase(a: &ApprovalEvent) -> String {
    let mut phrase = format!("approval {} {}", one_line(&a.request), one_line(&a.action));
    if !a.policies.is_empty() {
        phrase.push_str(&format!(" (policy {})", one_line(&a.policies.join(", "))));
    }
    if let Some(by) = &a.by {
        phrase.push_str(&format!(" by {}", one_line(by)));
    }
    if let Some(reason) = &a.reason {
        phrase.push_str(&format!(": {}", one_line(reason)));
    }
    phrase
}

/// One stored event with its body embedded as an object, for `sessions show --json`.
#[derive(Debug, Serialize)]
struct ShownEvent<'a> {
    seq: u64,
    session: &'a str,
    at_us: i64,
    kind: &'a str,
    /// The stored body parsed as JSON; the raw text if it is not JSON at all.
    body: serde_json::Value,
    prev_hash: &'a str,
    hash: &'a str,
}

/// The `sessions show --json` object: the session's id, its events, and its related sessions.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    session: &'a str,
    events: Vec<ShownEvent<'a>>,
    related: &'a [RelatedSession],
    /// How far around the session the related ones were looked for.
    related_window_us: i64,
}

/// The `sessions show --json` object.
pub fn show_json(id: &str, events: &[StoredEvent], related: &Related) -> serde_json::Result<String> {
    let shown: Vec<ShownEvent<'_>> = events
        .iter()
        .map(|e| ShownEvent {
            seq: e.seq,
            session: &e.session,
            at_us: e.at_us,
            kind: &e.kind,
            body: serde_json::from_str(&e.body).unwrap_or_else(|_| serde_json::Value::String(e.body.clone())),
            prev_hash: &e.prev_hash,
            hash: &e.hash,
        })
        .collect();
    serde_json::to_string_pretty(&Shown {
        session: id,
        events: shown,
        related: &related.sessions,
        related_window_us: related.window_us,
    })
}

// ---- replay -------------------------------------------------------------------------------------------

/// One entry of a replay: an event placed relative to the session's start.
#[derive(Debug, Serialize)]
pub struct TimelineEntry {
    /// Milliseconds since the session started (microsecond precision).
    offset_ms: f64,
    #[serde(skip)]
    offset_us: i64,
    seq: u64,
    at_us: i64,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    SessionStart(SessionStartEvent),
    Statement(StatementEvent),
    Outcome {
        #[serde(flatten)]
        outcome: OutcomeEvent,
        /// The text of the statement this answers (paired by `n`), when it was recorded.
        statement_text: Option<String>,
    },
    SessionEnd(SessionEndEvent),
    Approval(ApprovalEvent),
    /// A stored event whose body is not one this version knows (tampering, or a newer gateway).
    Unreadable {
        stored_kind: String,
        error: String,
    },
}

/// The session's events as a timeline, outcomes paired with their statements by `n`.
pub fn timeline(events: &[StoredEvent]) -> Vec<TimelineEntry> {
    let decoded = decode_all(events);
    let start = start_us(&decoded);
    let mut texts: HashMap<u64, String> = HashMap::new();
    decoded
        .into_iter()
        .map(|d| {
            let entry = match d.body {
                Err(error) => Entry::Unreadable {
                    stored_kind: d.stored.kind.clone(),
                    error,
                },
                Ok(EventBody::SessionStart(s)) => Entry::SessionStart(s),
                Ok(EventBody::Statement(s)) => {
                    texts.insert(s.n, s.text.clone());
                    Entry::Statement(s)
                }
                Ok(EventBody::Outcome(outcome)) => Entry::Outcome {
                    statement_text: texts.get(&outcome.n).cloned(),
                    outcome,
                },
                Ok(EventBody::SessionEnd(e)) => Entry::SessionEnd(e),
                Ok(EventBody::Approval(a)) => Entry::Approval(a),
            };
            let offset_us = d.stored.at_us.saturating_sub(start);
            TimelineEntry {
                // Exact for any session shorter than 285 years: f64 holds integers up to 2^53.
                offset_ms: offset_us as f64 / 1000.0,
                offset_us,
                seq: d.stored.seq,
                at_us: d.stored.at_us,
                entry,
            }
        })
        .collect()
}

/// Where detail lines (statement text, parameters, result tables) start.
const DETAIL: &str = "             ";

/// A replay laid out for display: its title line, one row per event, and a closing remark. The
/// `sessions replay` text and the console's session page both show this.
#[derive(Debug)]
pub struct ReplayView {
    pub title: String,
    pub rows: Vec<ReplayRow>,
    /// Statements allowed but never answered, when any.
    pub footer: Option<String>,
}

/// One event of a replay.
#[derive(Debug)]
pub struct ReplayRow {
    /// Time since the session started (`+1.234s`).
    pub offset: String,
    /// What kind of row: `start`, `statement`, `outcome`, `approval`, `end` or `unreadable`.
    pub kind: &'static str,
    pub label: String,
    pub text: String,
    /// Lines under the row: statement text, parameters, the result table.
    pub details: Vec<String>,
    /// A statement the policy refused, or an outcome that failed.
    pub refused: bool,
}

/// The replay of a session as rows.
pub fn replay_view(id: &str, timeline: &[TimelineEntry]) -> ReplayView {
    let start = timeline.iter().find_map(|t| match &t.entry {
        Entry::SessionStart(s) => Some((t.at_us, s)),
        _ => None,
    });
    let title = match start {
        Some((at, s)) => format!(
            "session {}: {} of {} on connection {}, started {} UTC",
            one_line(id),
            one_line(&s.subject),
            one_line(&s.issuer_alias),
            one_line(&s.connection),
            utc_millis(at)
        ),
        None => {
            let first = timeline.first().map_or(0, |t| t.at_us);
            format!(
                "session {} (no session_start recorded), first event {} UTC",
                one_line(id),
                utc_millis(first)
            )
        }
    };

    // An HTTP request's session: its statement is the request line, its outcome the status.
    let http = start.is_some_and(|(_, s)| s.protocol == "http");
    let mut rows = Vec::with_capacity(timeline.len());
    let mut allowed = Vec::new();
    let mut answered = HashSet::new();
    let mut previous_statement = None;
    for t in timeline {
        let row = |kind, label: String, text: String| ReplayRow {
            offset: format_offset(t.offset_us),
            kind,
            label,
            text,
            details: Vec::new(),
            refused: false,
        };
        match &t.entry {
            Entry::SessionStart(s) => {
                let groups = if s.groups.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", one_line(&s.groups.join(", ")))
                };
                let text = format!(
                    "{}{} of {}, client {}{} → {} as {}{}",
                    one_line(&s.subject),
                    groups,
                    one_line(&s.issuer),
                    one_line(&s.client_addr),
                    if s.client_tls { " (TLS)" } else { "" },
                    one_line(&s.connection),
                    one_line(&s.upstream_role),
                    if s.upstream_tls { " (TLS)" } else { "" },
                );
                rows.push(row("start", "session start".into(), text));
            }
            Entry::Statement(s) if http => {
                let text = format!("{}, {}", one_line(&s.text), decision_phrase(s));
                let mut r = row("statement", format!("request #{}", s.n), text);
                let headers: Vec<String> = s.params.iter().flatten().map(|h| one_line(h)).collect();
                if !headers.is_empty() {
                    r.details.push(format!("headers: {}", headers.join(", ")));
                }
                if let Some(body) = &s.body {
                    r.details.extend(body_lines(body));
                }
                r.refused = s.decision != "allow";
                if s.decision == "allow" {
                    allowed.push(s.n);
                }
                rows.push(r);
                previous_statement = Some(s.n);
                continue;
            }
            Entry::Statement(s) => {
                let text = format!("{}, {}", message_phrase(s), decision_phrase(s));
                let mut r = row("statement", format!("statement #{}", s.n), text);
                r.details = escape_controls(&s.text, true)
                    .lines()
                    .map(str::to_owned)
                    .collect();
                if !s.params.is_empty() {
                    r.details
                        .push(format!("parameters: {}", params_phrase(&s.params)));
                }
                r.refused = s.decision != "allow";
                if s.decision == "allow" {
                    allowed.push(s.n);
                }
                rows.push(r);
                previous_statement = Some(s.n);
                continue;
            }
            Entry::Outcome {
                outcome,
                statement_text,
            } => {
                answered.insert(outcome.n);
                let phrase = if http {
                    http_outcome_phrase(outcome)
                } else {
                    outcome_phrase(outcome)
                };
                let mut r = row("outcome", format!("outcome #{}", outcome.n), phrase);
                r.refused = outcome.error.is_some();
                // Pipelined statements answer later: say which one this is unless it is the row above.
                if previous_statement != Some(outcome.n) {
                    r.details.push(match statement_text {
                        Some(text) => format!("of: {}", snippet(text, 80)),
                        None => "of: (statement not recorded)".to_owned(),
                    });
                }
                if let Some(result) = &outcome.result {
                    r.details.extend(result_table(result));
                }
                if let Some(body) = &outcome.body {
                    r.details.extend(body_lines(body));
                }
                rows.push(r);
            }
            Entry::SessionEnd(e) => rows.push(row("end", "session end".into(), end_phrase(e))),
            Entry::Approval(a) => rows.push(row("approval", format!("#{}", a.n), approval_phrase(a))),
            Entry::Unreadable { stored_kind, error } => rows.push(row(
                "unreadable",
                one_line(stored_kind),
                format!("(unreadable body: {})", one_line(error)),
            )),
        }
        previous_statement = None;
    }
    let unanswered: Vec<String> = allowed
        .iter()
        .filter(|n| !answered.contains(*n))
        .map(|n| format!("#{n}"))
        .collect();
    let footer = (!unanswered.is_empty()).then(|| {
        format!(
            "no outcome recorded for statement {} (still running, or the session ended first)",
            unanswered.join(", ")
        )
    });
    ReplayView { title, rows, footer }
}

/// The `sessions replay` text.
pub fn render_replay(id: &str, timeline: &[TimelineEntry]) -> String {
    let view = replay_view(id, timeline);
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", view.title);
    for row in &view.rows {
        let _ = writeln!(out, "{:>9}  {:<14} {}", row.offset, row.label, row.text);
        for line in &row.details {
            let _ = writeln!(out, "{DETAIL}{line}");
        }
    }
    if let Some(footer) = &view.footer {
        let _ = writeln!(out, "\n{footer}");
    }
    out
}

/// The `sessions replay --json` array.
pub fn replay_json(timeline: &[TimelineEntry]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(timeline)
}

/// The recorded result as an aligned table (psql's layout), with the truncation marker.
fn result_table(result: &ResultRecord) -> Vec<String> {
    if result.columns.is_empty() && result.rows.is_empty() {
        return Vec::new();
    }
    let header: Vec<String> = result.columns.iter().map(|c| one_line(c)).collect();
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| cell.as_deref().map_or_else(|| "NULL".to_owned(), one_line))
                .collect()
        })
        .collect();
    let mut lines = aligned(&header, &rows, " | ", Some("-+-"));
    if result.truncated {
        lines.push(format!("… (truncated: {} rows shown)", result.rows.len()));
    } else if result.rows.is_empty() {
        lines.push("(no rows)".to_owned());
    }
    lines
}

/// `query`, `parse "s1"`, `bind (unnamed)`.
fn message_phrase(s: &StatementEvent) -> String {
    match s.prepared.as_deref() {
        Some("") => format!("{} (unnamed)", one_line(&s.message)),
        Some(name) => format!("{} \"{}\"", one_line(&s.message), one_line(name)),
        None => one_line(&s.message),
    }
}

fn decision_phrase(s: &StatementEvent) -> String {
    let verdict = match s.decision.as_str() {
        "allow" => "allowed".to_owned(),
        "deny" => "REFUSED".to_owned(),
        other => one_line(&other.replace('_', " ")).to_uppercase(),
    };
    let mut phrase = verdict;
    if !s.policies.is_empty() {
        let _ = write!(phrase, " by {}", one_line(&s.policies.join(", ")));
    }
    if s.decision != "allow" && !s.reason.is_empty() {
        let _ = write!(phrase, " ({})", one_line(&s.reason));
    }
    phrase
}

fn params_phrase(params: &[Option<String>]) -> String {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(v) => format!("${} = '{}'", i + 1, one_line(&v.replace('\'', "''"))),
            None => format!("${} = NULL", i + 1),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_phrase(o: &OutcomeEvent) -> String {
    if !o.ran {
        return "not run (an earlier error in the pipeline skipped it)".to_owned();
    }
    let mut counts = format!(
        "{} row{}, {}",
        o.rows,
        if o.rows == 1 { "" } else { "s" },
        format_duration_us(o.duration_us)
    );
    if !o.masked.is_empty() {
        let masked: Vec<String> = o
            .masked
            .iter()
            .map(|(reason, n)| format!("{} {n}", one_line(reason)))
            .collect();
        counts.push_str(&format!(", masked: {}", masked.join(", ")));
    }
    match (&o.error, o.tags.is_empty()) {
        (Some(e), _) => format!(
            "error {}: {} ({counts})",
            one_line(&e.sqlstate),
            one_line(&e.message)
        ),
        (None, false) => format!("{} ({counts})", one_line(&o.tags.join(", "))),
        (None, true) => counts,
    }
}

/// An HTTP request's outcome: `200 (3.1ms)`, `502 from the gateway: ... (5.0s)`, or `403 refused by
/// the gateway, not forwarded: ...`. The status is the outcome's tag; a gateway's answer is its error.
fn http_outcome_phrase(o: &OutcomeEvent) -> String {
    let status = o.tags.first().map_or_else(|| "-".to_owned(), |t| one_line(t));
    let duration = format_duration_us(o.duration_us);
    match (&o.error, o.ran) {
        (Some(e), false) => format!(
            "{status} refused by the gateway, not forwarded: {}",
            one_line(&e.message)
        ),
        (Some(e), true) => format!("{status} from the gateway: {} ({duration})", one_line(&e.message)),
        (None, _) => format!("{status} ({duration})"),
    }
}

/// An HTTP body as recorded: `body (application/json, 413 bytes):` and its text, or why there is
/// none.
fn body_lines(b: &BodyRecord) -> Vec<String> {
    let kind = if b.content_type.is_empty() {
        "no content type".to_owned()
    } else {
        one_line(&b.content_type)
    };
    let size = format!("{} byte{}", b.bytes, if b.bytes == 1 { "" } else { "s" });
    if b.bytes == 0 {
        return vec![format!("body ({kind}): empty")];
    }
    if b.text.is_empty() {
        return vec![format!("body ({kind}, {size}): not recorded, not text")];
    }
    let head = if b.truncated {
        format!("body ({kind}, {size}, the first {} recorded):", b.text.len())
    } else {
        format!("body ({kind}, {size}):")
    };
    let mut lines = vec![head];
    lines.extend(
        escape_controls(&b.text, true)
            .lines()
            .map(|line| format!("  {line}")),
    );
    lines
}

fn end_phrase(e: &SessionEndEvent) -> String {
    let detail = if e.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", one_line(&e.detail))
    };
    format!(
        "{}{detail}: {} statement{}, {} refused, after {}",
        one_line(&e.reason),
        e.statements,
        if e.statements == 1 { "" } else { "s" },
        e.refused,
        format_duration_us(e.duration_ms.saturating_mul(1000))
    )
}

// ---- verify -------------------------------------------------------------------------------------------

/// The `sessions verify` text.
pub fn render_verify(r: &VerifyReport) -> String {
    let mut out = String::new();
    match &r.broken {
        Some(b) => {
            let _ = writeln!(out, "BROKEN at event seq {}: {}", b.seq, one_line(&b.reason));
            if r.events == 0 {
                let _ = writeln!(out, "no event before it verifies");
            } else {
                let _ = writeln!(
                    out,
                    "the {} event(s) before it verify (seq {} to {}, hash {}); treat seq {} and later as suspect",
                    r.events,
                    r.from_seq + 1,
                    r.last_seq,
                    r.last_hash,
                    b.seq
                );
            }
        }
        None if r.events == 0 => {
            let _ = writeln!(
                out,
                "ok: 0 events verified (nothing recorded after seq {}), head hash {}",
                r.from_seq, r.last_hash
            );
        }
        None => {
            let _ = writeln!(
                out,
                "ok: {} events verified (from seq {} to {}), head hash {}",
                r.events,
                r.from_seq + 1,
                r.last_seq,
                r.last_hash
            );
        }
    }
    if r.from_seq > 0 {
        let _ = writeln!(
            out,
            "(events up to seq {} were pruned; the chain is checked from the pruning checkpoint)",
            r.from_seq
        );
    }
    out
}

#[derive(Debug, Serialize)]
struct VerifyJson<'a> {
    ok: bool,
    #[serde(flatten)]
    report: &'a VerifyReport,
}

/// The `sessions verify --json` object: the report with `ok`.
pub fn verify_json(report: &VerifyReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&VerifyJson {
        ok: report.broken.is_none(),
        report,
    })
}

// ---- text helpers -------------------------------------------------------------------------------------

/// Lines of a table whose columns are padded to their widest cell (in characters); `rule` draws a line
/// under the header joining the columns with it. Rows shorter than the header are padded with blanks.
fn aligned(header: &[String], rows: &[Vec<String>], separator: &str, rule: Option<&str>) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for line in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        for (i, cell) in line.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let render = |cells: &[String]| {
        widths
            .iter()
            .enumerate()
            .map(|(i, width)| format!("{:<width$}", cells.get(i).map_or("", String::as_str)))
            .collect::<Vec<_>>()
            .join(separator)
            .trim_end()
            .to_owned()
    };
    let mut lines = vec![render(header)];
    if let Some(joint) = rule {
        lines.push(
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join(joint),
        );
    }
    lines.extend(rows.iter().map(|r| render(r)));
    lines
}

/// Text on one line with control and bidirectional-override characters escaped.
pub(crate) fn one_line(text: &str) -> String {
    escape_controls(text, false)
}

/// The first `max` characters of `text` with whitespace runs folded to one space.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let folded = one_line(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    if folded.chars().count() <= max {
        folded
    } else {
        let mut cut: String = folded.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

/// Escapes what could move the cursor, recolour or reorder the operator's terminal: C0/C1 controls
/// (newlines too unless kept) and Unicode bidi and zero-width formatting characters.
fn escape_controls(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\t' if keep_newlines => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `+1.234s` from the session's start.
fn format_offset(us: i64) -> String {
    let sign = if us < 0 { '-' } else { '+' };
    let abs = us.unsigned_abs();
    format!("{sign}{}.{:03}s", abs / 1_000_000, abs % 1_000_000 / 1000)
}

/// `850µs`, `12.3ms`, `4.018s`, `3m07s`, `2h05m00s`.
fn format_duration_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{}.{}ms", us / 1000, us % 1000 / 100),
        1_000_000..60_000_000 => format!("{}.{:03}s", us / 1_000_000, us % 1_000_000 / 1000),
        _ => {
            let s = us / 1_000_000;
            let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
            if h > 0 {
                format!("{h}h{m:02}m{s:02}s")
            } else {
                format!("{m}m{s:02}s")
            }
        }
    }
}

/// The first moment humantime cannot format (year 10000), in µs since the epoch.
const YEAR_10000_US: i64 = 253_402_300_800_000_000;

/// `2026-11-26 08:00:00` (UTC).
pub(crate) fn utc_seconds(us: i64) -> String {
    utc(us, false)
}

/// `2026-11-26 08:00:00.123` (UTC).
fn utc_millis(us: i64) -> String {
    utc(us, true)
}

fn utc(us: i64, millis: bool) -> String {
    // humantime refuses (panics on) times before the epoch and after year 9999; stored times come
    // from the gateway's clock and tokens, so show such a value raw rather than trust it.
    let Some(at) = u64::try_from(us)
        .ok()
        .filter(|_| us < YEAR_10000_US)
        .and_then(|us| UNIX_EPOCH.checked_add(Duration::from_micros(us)))
    else {
        return format!("(time out of range: {us}µs)");
    };
    let text = if millis {
        humantime::format_rfc3339_millis(at).to_string()
    } else {
        humantime::format_rfc3339_seconds(at).to_string()
    };
    text.replacen('T', " ", 1).trim_end_matches('Z').to_owned()
}

fn system_time_us(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_us(d),
        Err(before) => duration_us(before.duration()).saturating_neg(),
    }
}

fn duration_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_audit::{Broken, Draft, ErrorInfo};

    /// 2026-11-26 08:00:00 UTC.
    const T0: i64 = 1_795_680_000_000_000;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("audit.db")).unwrap();
        (dir, store)
    }

    fn no_related() -> Related {
        Related {
            window_us: 60_000_000,
            sessions: Vec::new(),
        }
    }

    fn draft(session: &str, at_us: i64, body: EventBody) -> Draft {
        Draft {
            session: session.to_owned(),
            at_us,
            body,
        }
    }

    fn start(subject: &str) -> EventBody {
        EventBody::SessionStart(SessionStartEvent {
            protocol: "postgres".into(),
            issuer: "https://idp.example".into(),
            issuer_alias: "corp".into(),
            subject: subject.into(),
            groups: vec!["agents".into(), "ops".into()],
            token_id: Some("jti-42".into()),
            token_expires_at: T0 / 1_000_000 + 900,
            client_addr: "10.0.0.7:51234".into(),
            client_tls: true,
            client_user: "bot".into(),
            connection: "app".into(),
            upstream_role: "app_rw".into(),
            upstream_tls: true,
        })
    }

    fn statement(n: u64, text: &str, decision: &str, policy: &str, reason: &str) -> StatementEvent {
        StatementEvent {
            n,
            message: "query".into(),
            prepared: None,
            text: text.into(),
            params: Vec::new(),
            statements: Vec::new(),
            decision: decision.into(),
            policies: vec![policy.into()],
            reason: reason.into(),
            body: None,
        }
    }

    fn cells(row: &[Option<&str>]) -> Vec<Option<String>> {
        row.iter().map(|c| c.map(str::to_owned)).collect()
    }

    /// s-1: an allowed SELECT with a 3-row result, a refused DELETE, a prepared statement that fails,
    /// and the end.
    fn record_ended_session(store: &mut SqliteStore) {
        let select = statement(
            1,
            "SELECT id, name, email\nFROM users LIMIT 3",
            "allow",
            "allow-reads",
            "",
        );
        let delete = statement(
            2,
            "DELETE FROM orders",
            "deny",
            "forbid-unbounded-delete",
            "unbounded delete",
        );
        let prepared = StatementEvent {
            message: "parse".into(),
            prepared: Some("s1".into()),
            params: vec![Some("7".into()), None],
            ..statement(3, "SELECT * FROM nope WHERE id = $1", "allow", "allow-reads", "")
        };
        let drafts = [
            draft("s-1", T0, start("deploy-bot")),
            draft("s-1", T0 + 4_000, EventBody::Statement(select)),
            draft(
                "s-1",
                T0 + 5_500,
                EventBody::Outcome(OutcomeEvent {
                    masked: Default::default(),
                    n: 1,
                    ran: true,
                    tags: vec!["SELECT 3".into()],
                    rows: 3,
                    duration_us: 1_200,
                    error: None,
                    result: Some(ResultRecord {
                        columns: vec!["id".into(), "name".into(), "email".into()],
                        rows: vec![
                            cells(&[Some("1"), Some("alice"), Some("a@x")]),
                            cells(&[Some("2"), Some("bob"), None]),
                            cells(&[Some("10"), Some("carol-anne"), Some("c@x")]),
                        ],
                        truncated: false,
                    }),
                    body: None,
                }),
            ),
            draft("s-1", T0 + 10_000, EventBody::Statement(delete)),
            draft("s-1", T0 + 11_000, EventBody::Statement(prepared)),
            draft(
                "s-1",
                T0 + 12_000,
                EventBody::Outcome(OutcomeEvent {
                    masked: Default::default(),
                    n: 3,
                    ran: true,
                    tags: Vec::new(),
                    rows: 0,
                    duration_us: 400,
                    error: Some(ErrorInfo {
                        sqlstate: "42P01".into(),
                        message: "relation \"nope\" does not exist".into(),
                    }),
                    result: None,
                    body: None,
                }),
            ),
            draft(
                "s-1",
                T0 + 1_250_000,
                EventBody::SessionEnd(SessionEndEvent {
                    reason: "client_terminated".into(),
                    detail: String::new(),
                    statements: 3,
                    refused: 1,
                    duration_ms: 1_250,
                }),
            ),
        ];
        store.append(&drafts).unwrap();
    }

    /// s-2, a minute later and still live: one statement whose recorded result was truncated.
    fn record_live_session(store: &mut SqliteStore) {
        let drafts = [
            draft("s-2", T0 + 60_000_000, start("other-bot")),
            draft(
                "s-2",
                T0 + 60_002_000,
                EventBody::Statement(statement(1, "SELECT n FROM big", "allow", "allow-reads", "")),
            ),
            draft(
                "s-2",
                T0 + 60_900_000,
                EventBody::Outcome(OutcomeEvent {
                    masked: Default::default(),
                    n: 1,
                    ran: true,
                    tags: vec!["SELECT 100000".into()],
                    rows: 100_000,
                    duration_us: 898_000,
                    error: None,
                    result: Some(ResultRecord {
                        columns: vec!["n".into()],
                        rows: vec![cells(&[Some("1")]), cells(&[Some("2")])],
                        truncated: true,
                    }),
                    body: None,
                }),
            ),
        ];
        store.append(&drafts).unwrap();
    }

    fn all_sessions(store: &mut SqliteStore) -> Vec<SessionSummary> {
        store
            .sessions(&SessionFilter {
                limit: Some(50),
                ..SessionFilter::default()
            })
            .unwrap()
    }

    #[test]
    fn list_shows_each_session_with_its_counters_in_aligned_columns() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        record_live_session(&mut store);
        let out = render_list(&all_sessions(&mut store));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let (header, live, ended) = (lines[0], lines[1], lines[2]);
        assert_eq!(
            ended.split_whitespace().collect::<Vec<_>>(),
            [
                "s-1",
                "2026-11-26",
                "08:00:00",
                "1.250s",
                "deploy-bot",
                "app",
                "10.0.0.7:51234",
                "3",
                "1",
                "client_terminated"
            ],
            "{out}"
        );
        assert_eq!(
            live.split_whitespace().collect::<Vec<_>>(),
            [
                "s-2",
                "2026-11-26",
                "08:01:00",
                "live",
                "other-bot",
                "app",
                "10.0.0.7:51234",
                "1",
                "0",
                "-"
            ],
            "{out}"
        );
        assert_eq!(ended.find("deploy-bot"), header.find("SUBJECT"), "{out}");
        assert_eq!(live.find("other-bot"), header.find("SUBJECT"), "{out}");
        assert_eq!(render_list(&[]), "no sessions match\n");
    }

    #[test]
    fn show_prints_the_identity_and_every_event() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        let events = load_session(&mut store, "s-1").unwrap();
        let out = render_show("s-1", &events, &no_related());
        for expected in [
            "subject     deploy-bot",
            "issuer      https://idp.example (alias corp)",
            "groups      agents, ops",
            "token       id jti-42, expires 2026-11-26 08:15:00 UTC",
            "client      10.0.0.7:51234 over TLS",
            "upstream    role app_rw over TLS",
            "ended       2026-11-26 08:00:01 UTC (client_terminated)",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
        let event_lines: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("SEQ"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        let seqs: Vec<&str> = event_lines
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(seqs, ["1", "2", "3", "4", "5", "6", "7"], "{out}");
        assert!(
            event_lines[3].contains("#2 query REFUSED by forbid-unbounded-delete"),
            "{out}"
        );
    }

    #[test]
    fn show_names_the_principals_sessions_on_another_protocol() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        let web = |subject: &str| {
            let EventBody::SessionStart(mut s) = start(subject) else {
                unreachable!()
            };
            s.protocol = "http".into();
            s.connection = "crm".into();
            EventBody::SessionStart(s)
        };
        store
            .append(&[
                draft("h-9", T0 + 500_000, web("deploy-bot")),
                draft("h-other", T0 + 500_000, web("other-bot")),
            ])
            .unwrap();
        let window = related_window(Duration::from_secs(60), 50, T0 + 10_000_000);
        let related = related_to(&mut store, "s-1", &window).unwrap();
        let out = render_show("s-1", &load_session(&mut store, "s-1").unwrap(), &related);
        let section = out.split("Related sessions").nth(1).unwrap();
        assert!(
            section.starts_with(" (the same principal on another protocol, within 1m;"),
            "{out}"
        );
        let rows: Vec<&str> = section.lines().skip(2).collect();
        assert_eq!(rows.len(), 1, "{out}");
        let cells: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(cells[..3], ["h-9", "http", "crm"], "{out}");
        assert!(rows[0].ends_with("same principal, overlapping"), "{out}");
        let json: serde_json::Value =
            serde_json::from_str(&show_json("s-1", &[], &related).unwrap()).unwrap();
        assert_eq!(json["related"][0]["session"], "h-9");
        assert_eq!(json["related"][0]["reason"], "same principal, overlapping");
        assert_eq!(json["related_window_us"], 60_000_000);

        // And the other way; another principal's request is related to nothing.
        let back = related_to(&mut store, "h-9", &window).unwrap();
        let ids: Vec<&str> = back.sessions.iter().map(|r| r.summary.session.as_str()).collect();
        assert_eq!(ids, ["s-1"]);
        assert!(render_related_list(&back.sessions).starts_with("SESSION"));
        let none = related_to(&mut store, "h-other", &window).unwrap();
        let out = render_show("h-other", &load_session(&mut store, "h-other").unwrap(), &none);
        assert!(out.ends_with("not cause):\n  none\n"), "{out}");
        assert_eq!(render_related_list(&[]), "no related sessions\n");
    }

    #[test]
    fn show_json_embeds_bodies_as_objects() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        let events = load_session(&mut store, "s-1").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&show_json("s-1", &events, &no_related()).unwrap()).unwrap();
        assert_eq!(json["session"], "s-1");
        assert_eq!(json["related"], serde_json::json!([]));
        let shown = json["events"].as_array().unwrap();
        assert_eq!(shown.len(), 7);
        assert_eq!(shown[0]["body"]["subject"], "deploy-bot");
        assert_eq!(shown[2]["body"]["result"]["rows"][1][2], serde_json::Value::Null);
        assert_eq!(shown[6]["hash"], events[6].hash.as_str());
    }

    #[test]
    fn replay_shows_relative_times_decisions_and_outcomes() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        let out = render_replay("s-1", &timeline(&load_session(&mut store, "s-1").unwrap()));
        for expected in [
            "session s-1: deploy-bot of corp on connection app, started 2026-11-26 08:00:00.000 UTC",
            "  +0.000s  session start  deploy-bot [agents, ops] of https://idp.example",
            "  +0.004s  statement #1   query, allowed by allow-reads\n             SELECT id, name, email\n             FROM users LIMIT 3\n",
            "  +0.005s  outcome #1     SELECT 3 (3 rows, 1.2ms)\n",
            "  +0.010s  statement #2   query, REFUSED by forbid-unbounded-delete (unbounded delete)\n",
            "  +0.011s  statement #3   parse \"s1\", allowed by allow-reads\n",
            "             parameters: $1 = '7', $2 = NULL\n",
            "  +0.012s  outcome #3     error 42P01: relation \"nope\" does not exist (0 rows, 400µs)\n",
            "  +1.250s  session end    client_terminated: 3 statements, 1 refused, after 1.250s\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
        let table = [
            "             id | name       | email",
            "             ---+------------+------",
            "             1  | alice      | a@x",
            "             2  | bob        | NULL",
            "             10 | carol-anne | c@x",
        ]
        .join("\n");
        assert!(out.contains(&table), "result table not aligned in\n{out}");
        assert!(!out.contains("truncated"), "{out}");
        assert!(!out.contains("no outcome recorded"), "{out}");
    }

    /// An allowed HTTP request (`h-1`) and one refused by policy (`h-2`).
    fn record_http_requests(store: &mut SqliteStore) {
        let http_start = || {
            let EventBody::SessionStart(mut s) = start("crm-bot") else {
                unreachable!()
            };
            s.protocol = "http".into();
            s.connection = "crm".into();
            s.upstream_role = "header".into();
            s.client_user = String::new();
            EventBody::SessionStart(s)
        };
        let request = |text: &str, decision: &str, policy: &str, reason: &str| {
            let mut s = statement(1, text, decision, policy, reason);
            s.message = "http".into();
            s.params = vec![Some("x-trace: on".into())];
            EventBody::Statement(s)
        };
        let outcome = |status: &str, ran: bool, error: Option<&str>| {
            EventBody::Outcome(OutcomeEvent {
                n: 1,
                ran,
                tags: vec![status.into()],
                rows: 0,
                duration_us: 2_100,
                error: error.map(|message| ErrorInfo {
                    sqlstate: status.into(),
                    message: message.into(),
                }),
                result: None,
                masked: Default::default(),
                body: None,
            })
        };
        let end = |reason: &str, refused: u64| {
            EventBody::SessionEnd(SessionEndEvent {
                reason: reason.into(),
                detail: String::new(),
                statements: 1,
                refused,
                duration_ms: 3,
            })
        };
        store
            .append(&[
                draft("h-1", T0, http_start()),
                draft(
                    "h-1",
                    T0 + 100,
                    request("GET /crm/customers/42?tenant=acme", "allow", "agents-read", ""),
                ),
                draft("h-1", T0 + 2_300, outcome("200", true, None)),
                draft("h-1", T0 + 2_400, end("completed", 0)),
                draft("h-2", T0 + 10_000, http_start()),
                draft(
                    "h-2",
                    T0 + 10_100,
                    request(
                        "DELETE /crm/customers/1",
                        "deny",
                        "no-customer-deletes",
                        "forbidden",
                    ),
                ),
                draft(
                    "h-2",
                    T0 + 10_200,
                    outcome("403", false, Some("refused by policy: forbidden")),
                ),
                draft("h-2", T0 + 10_300, end("refused", 1)),
            ])
            .unwrap();
    }

    #[test]
    fn http_requests_replay_as_request_lines_and_statuses() {
        let (_dir, mut store) = store();
        record_http_requests(&mut store);
        let out = render_replay("h-1", &timeline(&load_session(&mut store, "h-1").unwrap()));
        for expected in [
            "  +0.000s  request #1     GET /crm/customers/42?tenant=acme, allowed by agents-read\n             headers: x-trace: on\n",
            "  +0.002s  outcome #1     200 (2.1ms)\n",
            "  +0.002s  session end    completed: 1 statement, 0 refused, after 3.0ms\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
        let out = render_replay("h-2", &timeline(&load_session(&mut store, "h-2").unwrap()));
        for expected in [
            "request #1     DELETE /crm/customers/1, REFUSED by no-customer-deletes (forbidden)\n",
            "outcome #1     403 refused by the gateway, not forwarded: refused by policy: forbidden\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
        assert!(!out.contains("no outcome recorded"), "{out}");
        let show = render_show("h-1", &load_session(&mut store, "h-1").unwrap(), &no_related());
        assert!(show.contains("connection  crm (http)"), "{show}");
        assert!(
            show.contains("#1 http allowed by agents-read: GET /crm/customers/42?tenant=acme"),
            "{show}"
        );
        assert!(show.contains("#1 200 (2.1ms)"), "{show}");
    }

    #[test]
    fn replay_marks_truncated_results() {
        let (_dir, mut store) = store();
        record_live_session(&mut store);
        let out = render_replay("s-2", &timeline(&load_session(&mut store, "s-2").unwrap()));
        let expected = "             n\n             -\n             1\n             2\n             … (truncated: 2 rows shown)\n";
        assert!(out.contains(expected), "{out}");
    }

    #[test]
    fn replay_json_is_an_array_of_timeline_entries() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        let text = replay_json(&timeline(&load_session(&mut store, "s-1").unwrap())).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let entries = json.as_array().unwrap();
        let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "session_start",
                "statement",
                "outcome",
                "statement",
                "statement",
                "outcome",
                "session_end"
            ]
        );
        assert_eq!(entries[0]["offset_ms"], 0.0);
        assert_eq!(entries[2]["offset_ms"], 5.5);
        assert_eq!(entries[2]["n"], 1);
        assert_eq!(
            entries[2]["statement_text"],
            "SELECT id, name, email\nFROM users LIMIT 3"
        );
        assert_eq!(entries[2]["result"]["rows"][1][2], serde_json::Value::Null);
        assert_eq!(entries[3]["policies"][0], "forbid-unbounded-delete");
        assert_eq!(entries[6]["refused"], 1);
    }

    #[test]
    fn replay_escapes_terminal_control_characters() {
        let (_dir, mut store) = store();
        let body = EventBody::Statement(statement(1, "SELECT '\u{1b}[2J'\u{202e}", "allow", "p", ""));
        store.append(&[draft("s-3", T0, body)]).unwrap();
        let out = render_replay("s-3", &timeline(&load_session(&mut store, "s-3").unwrap()));
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}'), "{out:?}");
        assert!(out.contains("SELECT '\\u{1b}[2J'\\u{202e}"), "{out}");
    }

    #[test]
    fn verify_reports_an_intact_chain_and_a_broken_one() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        let report = portcullis_audit::verify(&mut store).unwrap();
        assert_eq!(
            render_verify(&report),
            format!(
                "ok: 7 events verified (from seq 1 to 7), head hash {}\n",
                report.last_hash
            )
        );
        let json: serde_json::Value = serde_json::from_str(&verify_json(&report).unwrap()).unwrap();
        assert_eq!(json["ok"], true);

        let broken = VerifyReport {
            events: 4,
            from_seq: 0,
            last_seq: 4,
            last_hash: "abc".into(),
            broken: Some(Broken {
                seq: 5,
                reason: "its contents do not match its hash: the event was altered".into(),
            }),
        };
        let out = render_verify(&broken);
        assert!(
            out.starts_with(
                "BROKEN at event seq 5: its contents do not match its hash: the event was altered\n"
            ),
            "{out}"
        );
        let json: serde_json::Value = serde_json::from_str(&verify_json(&broken).unwrap()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["broken"]["seq"], 5);
    }

    #[test]
    fn time_arguments_take_rfc3339_or_a_duration() {
        assert_eq!(
            parse_time_arg("2026-11-26T08:00:00Z").unwrap().ago(0),
            T0,
            "an absolute time ignores now"
        );
        assert_eq!(parse_time_arg("2026-11-26 08:00:00").unwrap().ahead(0), T0);
        let two_hours = parse_time_arg("2h").unwrap();
        assert_eq!(two_hours, TimeArg::FromNow(Duration::from_secs(7200)));
        assert_eq!(two_hours.ago(T0), T0 - 7_200_000_000);
        assert_eq!(two_hours.ahead(T0), T0 + 7_200_000_000);
        assert_eq!(parse_time_arg("7d").unwrap().ago(T0), T0 - 7 * 86_400_000_000);
        let error = parse_time_arg("yesterday").unwrap_err();
        assert!(error.contains("neither an RFC 3339 time"), "{error}");
    }

    #[test]
    fn kill_needs_a_live_session() {
        let (_dir, mut store) = store();
        record_ended_session(&mut store);
        record_live_session(&mut store);
        let unknown = record_kill(&mut store, "nope").unwrap_err().to_string();
        assert_eq!(
            unknown,
            "no session nope; `portcullis sessions list` shows recent ones"
        );
        let ended = record_kill(&mut store, "s-1").unwrap_err().to_string();
        assert!(
            ended.contains("already ended at 2026-11-26 08:00:01 UTC (client_terminated)"),
            "{ended}"
        );
        assert!(store.controls_after(0).unwrap().is_empty());

        let id = record_kill(&mut store, "s-2").unwrap();
        assert_eq!(
            store.controls_after(0).unwrap(),
            [Control::Kill {
                id,
                session: "s-2".into()
            }]
        );
    }

    #[test]
    fn revoke_records_the_identity_and_refuses_a_past_end() {
        let (_dir, mut store) = store();
        let revocation = |until_us| Revocation {
            subject: "deploy-bot".into(),
            issuer: Some("corp".into()),
            until_us,
        };
        let past = record_revoke(&mut store, revocation(Some(T0 - 1)), T0)
            .unwrap_err()
            .to_string();
        assert!(past.contains("is in the past"), "{past}");
        let id = record_revoke(&mut store, revocation(Some(T0 + 1)), T0).unwrap();
        assert_eq!(
            store.controls_after(0).unwrap(),
            [Control::Revoke {
                id,
                revocation: revocation(Some(T0 + 1))
            }]
        );
    }

    #[test]
    fn a_missing_store_is_reported_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let error = open_store_at(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "no audit store at {}: has the gateway run with [audit] enabled?",
                path.display()
            )
        );
        assert!(!path.exists());
    }
}
