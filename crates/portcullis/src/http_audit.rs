//! The audit record of one HTTP request: an audit session of its own, whose start and `statement` event
//! are committed before the request is forwarded, and whose outcome (status, duration, the gateway's
//! refusal) and end follow when the exchange ends.
//!
//! One request is one session (not one client connection): a request is self-contained (its own
//! token, decision and credential), HTTP/2 multiplexes many on one connection and keep-alive pools
//! reuse connections across unrelated work, so a connection is not a unit an auditor could read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use portcullis_audit::{
    AuditError, AuditLog, BodyRecord, Draft, ErrorInfo, EventBody, OutcomeEvent, SessionEndEvent,
    SessionStartEvent, StatementEvent, StatementSummary,
};
use portcullis_core::{HttpAction, HttpRequestFacts, Principal};
use portcullis_http::mcp::{McpExchange, McpMessage};
use portcullis_http::{BodyEnd, BodySeen, BodySent, Ending, Problem, RequestInfo};
use portcullis_mask::{ConnectionMask, Counts};
use tracing::{debug, error};

use crate::audit::new_session_id;
use crate::http_mask::Tally;
use crate::telemetry;

/// The upstream side of an `http` connection, as the trail names it.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    /// The kind of credential the gateway adds: `header`, `basic`, `oauth_client_credentials`, `none`.
    pub role: &'static str,
    pub tls: bool,
}

/// A request, as it is recorded.
#[derive(Debug)]
pub struct Recorded<'a> {
    pub principal: &'a Principal,
    pub peer: SocketAddr,
    pub tls: bool,
    /// The connection, when one was selected.
    pub connection: Option<&'a str>,
    pub upstream: Option<&'a UpstreamInfo>,
    pub method: &'a str,
    /// Path and query as the agent sent them.
    pub target: &'a str,
    /// The facts policy saw (absent when the request was refused before they were known).
    pub facts: Option<&'a HttpRequestFacts>,
    /// Masking's detectors, applied to the target and header values before they are recorded.
    pub scrub: Option<Arc<ConnectionMask>>,
    /// On an MCP endpoint: the JSON-RPC messages (their methods and tools join the text, each tool
    /// call's arguments a parameter).
    pub mcp: Option<&'a McpExchange>,
    /// The request body the gateway read before deciding, with its content type: recorded (masked,
    /// up to `body_limit` bytes) with the statement.
    pub body: Option<(&'a [u8], Option<&'a str>)>,
    /// How many bytes of each body, request and response, the record keeps (`[audit] http_body_bytes`;
    /// 0 records none).
    pub body_limit: usize,
}

/// The gateway's decision on a request, as recorded.
#[derive(Debug)]
pub struct Verdict {
    /// `allow`, `deny` or `approval_required`.
    pub decision: &'static str,
    pub policies: Vec<String>,
    pub reason: String,
}

/// One request's audit session, from its committed statement to its end. Dropped without an ending
/// (the client went away while the gateway waited for the upstream), it records the session's end.
#[derive(Debug)]
pub struct RequestRecord {
    log: AuditLog,
    session: String,
    /// When the request's events were committed (its forwarding began).
    started: Instant,
    ended: bool,
    /// How many of the response body's first bytes are recorded with the outcome.
    body_limit: usize,
}

impl RequestRecord {
    /// Records the request's session start and statement, and waits until both are stored: an error
    /// means the request must not be forwarded. Both go to the writer as one message and are stored in
    /// one commit.
    pub async fn begin(
        log: &AuditLog,
        request: &Recorded<'_>,
        verdict: Verdict,
    ) -> Result<RequestRecord, AuditError> {
        let session = new_session_id();
        let start = Draft::now(&session, EventBody::SessionStart(start_event(request)));
        let statement = Draft::now(&session, EventBody::Statement(statement_event(request, verdict)));
        log.commit_all(vec![start, statement]).await?;
        Ok(RequestRecord {
            log: log.clone(),
            session,
            started: Instant::now(),
            ended: false,
            body_limit: request.body_limit,
        })
    }

    /// Opens the request's session with its start, queued but not waited for: a request that needs
    /// approval has its approval events (under this session) before its statement, which
    /// [`RequestRecord::decided`] records once the approval is settled.
    pub fn open(log: &AuditLog, request: &Recorded<'_>) -> RequestRecord {
        let session = new_session_id();
        log.submit(Draft::now(
            &session,
            EventBody::SessionStart(start_event(request)),
        ));
        RequestRecord {
            log: log.clone(),
            session,
            started: Instant::now(),
            ended: false,
            body_limit: request.body_limit,
        }
    }

    /// The audit session's id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Records the statement of an [opened](RequestRecord::open) session and waits until it (and all
    /// before it) is stored: an error means the request must not be forwarded.
    pub async fn decided(&mut self, request: &Recorded<'_>, verdict: Verdict) -> Result<(), AuditError> {
        let statement = Draft::now(
            &self.session,
            EventBody::Statement(statement_event(request, verdict)),
        );
        self.log.commit(statement).await?;
        self.started = Instant::now();
        Ok(())
    }

    /// How many of the response body's first bytes the record keeps: the proxy hands them over in
    /// [`Ending::Responded`].
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The request was refused (nothing forwarded): its outcome carries the status and the gateway's
    /// words, then the session ends.
    pub fn refused(mut self, problem: &Problem) {
        let outcome = self.outcome(false, status_error(problem), None, None);
        let end = self.end("refused", String::new(), 1);
        self.log.submit_all(vec![outcome, end]);
    }

    /// How the exchange ended, with what masking did to the response body: the values it masked, and
    /// the reason it cut the body off, if it did. The outcome and the end go to the writer together.
    pub fn finished(mut self, ending: Ending<'_>, masked: Option<&Tally>) {
        let (outcome, end) = match ending {
            // Forwarded, but the gateway answered (502, 504, a body masking cannot read): the upstream
            // may have seen the request.
            Ending::Refused(problem) => (
                self.outcome(true, status_error(problem), None, None),
                self.end("gateway_error", String::new(), 0),
            ),
            Ending::Responded { status, body, sent } => {
                let failure = masked
                    .and_then(|m| m.failure.as_deref())
                    .filter(|_| body == BodyEnd::Failed);
                let error = failure.map(|why| ErrorInfo {
                    sqlstate: status.as_u16().to_string(),
                    message: format!("response cut off: masking: {why}"),
                });
                let recorded = (self.body_limit > 0 && body != BodyEnd::Upgraded)
                    .then(|| response_body(sent, self.body_limit));
                let outcome = self.outcome(
                    true,
                    (status.as_u16(), error),
                    masked.map(|m| &m.counts),
                    recorded,
                );
                let (reason, detail) = match (body, failure) {
                    (BodyEnd::Failed, Some(why)) => ("masking_failed", why),
                    (BodyEnd::Complete, _) => ("completed", ""),
                    (BodyEnd::Upgraded, _) => ("upgrade_closed", "bytes after the switch are not recorded"),
                    (BodyEnd::ClientGone, _) => ("client_disconnected", "before the response body ended"),
                    (BodyEnd::Failed, None) => ("upstream_failed", "the response body failed part-way"),
                };
                (outcome, self.end(reason, detail.to_owned(), 0))
            }
        };
        self.log.submit_all(vec![outcome, end]);
    }

    fn outcome(
        &self,
        ran: bool,
        (status, error): (u16, Option<ErrorInfo>),
        masked: Option<&Counts>,
        body: Option<BodyRecord>,
    ) -> Draft {
        let duration_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Draft::now(
            &self.session,
            EventBody::Outcome(OutcomeEvent {
                n: 1,
                ran,
                tags: vec![status.to_string()],
                rows: 0,
                duration_us,
                error,
                result: None,
                masked: masked
                    .map(|counts| {
                        counts
                            .iter()
                            .map(|(reason, n)| (reason.name().to_owned(), n))
                            .collect()
                    })
                    .unwrap_or_default(),
                body,
            }),
        )
    }

    fn end(&mut self, reason: &str, detail: String, refused: u64) -> Draft {
        self.ended = true;
        Draft::now(
            &self.session,
            EventBody::SessionEnd(SessionEndEvent {
                reason: reason.to_owned(),
                detail,
                statements: 1,
                refused,
                duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        )
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if !self.ended {
            let end = self.end("client_disconnected", "before the response arrived".to_owned(), 0);
            self.log.submit(end);
        }
    }
}

/// A problem's status and the gateway's words, as an outcome records them.
fn status_error(problem: &Problem) -> (u16, Option<ErrorInfo>) {
    let status = problem.status.as_u16();
    let error = ErrorInfo {
        sqlstate: status.to_string(),
        message: problem.detail.clone(),
    };
    (status, Some(error))
}

/// The request body the proxy read before the decision, with its content type, for
/// [`Recorded::body`]. A body that streams to the upstream unread is not recorded.
pub fn body_read<'a>(request: &RequestInfo<'a>) -> Option<(&'a [u8], Option<&'a str>)> {
    match request.body {
        BodySeen::Read(bytes) => Some((bytes.as_ref(), request.content_type)),
        BodySeen::Empty | BodySeen::Unread => None,
    }
}

/// Logs and counts a failed audit write; the problem a request gets when it cannot be recorded.
pub fn store_failure(e: &AuditError) -> Problem {
    telemetry::audit_failure();
    // A failed write is logged once per group by the writer; each refused request only at debug.
    match e {
        AuditError::Store(_) => {
            debug!(error = %e, "audit store failed; refusing the http request (fail closed)")
        }
        _ => error!(error = %e, "audit store failed; refusing the http request (fail closed)"),
    }
    Problem::unavailable(
        "Portcullis could not record this request in its audit trail, so it was not forwarded; retry later",
    )
}

fn start_event(r: &Recorded<'_>) -> SessionStartEvent {
    let p = r.principal;
    SessionStartEvent {
        protocol: "http".to_owned(),
        issuer: p.issuer.clone(),
        issuer_alias: p.issuer_alias.clone(),
        subject: p.subject.clone(),
        groups: p.groups.clone(),
        token_id: p.token_id.clone(),
        token_expires_at: p
            .expires_at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
        client_addr: r.peer.to_string(),
        client_tls: r.tls,
        // HTTP has no user name; identity comes from the token.
        client_user: String::new(),
        connection: r.connection.unwrap_or_default().to_owned(),
        upstream_role: r.upstream.map_or("", |u| u.role).to_owned(),
        upstream_tls: r.upstream.is_some_and(|u| u.tls),
    }
}

/// `GET /crm/customers/42?tenant=acme`, the allow-listed headers as `name: value` parameters, and the
/// action on its resource as the statement's summary.
fn statement_event(r: &Recorded<'_>, verdict: Verdict) -> StatementEvent {
    let mut text = format!("{} {}", r.method, r.target);
    let mut params: Vec<Option<String>> = r
        .facts
        .map(|f| {
            f.headers
                .iter()
                .map(|(name, value)| Some(format!("{name}: {value}")))
                .collect()
        })
        .unwrap_or_default();
    let mut tools = Vec::new();
    if let Some(McpExchange::Messages(mcp)) = r.mcp {
        text = format!("{text} {}", mcp.describe());
        for message in &mcp.messages {
            if let McpMessage::ToolCall(call) = message {
                params.push(Some(format!("arguments {}: {}", call.tool, call.arguments_json)));
                tools.push(call.tool.as_str());
            }
        }
    }
    // What reaches the audit trail is scrubbed by masking's detectors, as statement texts are.
    if let Some(scrub) = &r.scrub {
        let mut counts = Counts::default();
        if let Some(masked) = scrub.scrub(&text, &mut counts) {
            text = masked;
        }
        for value in params.iter_mut().flatten() {
            if let Some(masked) = scrub.scrub(value, &mut counts) {
                *value = masked;
            }
        }
    }
    let statements = match (r.facts, r.connection) {
        (Some(_), Some(connection)) if !tools.is_empty() => vec![tool_summary(&tools, connection)],
        (Some(f), Some(connection)) => vec![summary(f, connection)],
        _ => Vec::new(),
    };
    StatementEvent {
        n: 1,
        message: "http".to_owned(),
        prepared: None,
        text,
        params,
        statements,
        decision: verdict.decision.to_owned(),
        policies: verdict.policies,
        reason: verdict.reason,
        // `http_body_bytes = 0` records no bodies (and masks none for the record).
        body: r
            .body
            .filter(|_| r.body_limit > 0)
            .map(|(bytes, content_type)| request_body(bytes, content_type, r.scrub.as_ref(), r.body_limit)),
    }
}

/// A request body the gateway read, as recorded: masked by the connection's rules as a response
/// body would be (JSON by field rules and detectors; otherwise, or JSON that does not parse, text by
/// detectors), then cut to `limit` bytes.
fn request_body(
    bytes: &[u8],
    content_type: Option<&str>,
    mask: Option<&Arc<ConnectionMask>>,
    limit: usize,
) -> BodyRecord {
    let total = bytes.len() as u64;
    let content_type = content_type.unwrap_or_default();
    if !textual(content_type, bytes) {
        return BodyRecord {
            content_type: content_type.to_owned(),
            bytes: total,
            text: String::new(),
            truncated: total > 0,
        };
    }
    // What masking finds here is not counted: the counts are of what clients received.
    let masked = mask.map(|mask| crate::http_mask::mask_whole(mask, bytes, &mut Counts::default()));
    let (text, cut) = prefix(masked.as_deref().unwrap_or(bytes), limit);
    BodyRecord {
        content_type: content_type.to_owned(),
        bytes: total,
        text,
        truncated: cut,
    }
}

/// A response body as recorded: what passed to the client (masking, when it applies, came before),
/// its first `limit` bytes.
fn response_body(sent: &BodySent, limit: usize) -> BodyRecord {
    let content_type = sent.content_type.as_deref().unwrap_or_default();
    let (text, cut) = if textual(content_type, &sent.head) {
        let (text, cut) = prefix(&sent.head, limit);
        (text, cut || sent.bytes > sent.head.len() as u64)
    } else {
        (String::new(), sent.bytes > 0)
    };
    BodyRecord {
        content_type: content_type.to_owned(),
        bytes: sent.bytes,
        text,
        truncated: cut,
    }
}

/// Whether a body is recorded as text: a textual content type (`text/*`, JSON, XML, a form), or none
/// and bytes that are UTF-8.
fn textual(content_type: &str, bytes: &[u8]) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty() {
        return std::str::from_utf8(bytes).is_ok();
    }
    let (kind, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    kind == "text"
        || matches!(
            sub,
            "json" | "xml" | "x-www-form-urlencoded" | "graphql" | "javascript" | "x-ndjson" | "jsonl"
        )
        || sub.ends_with("+json")
        || sub.ends_with("+xml")
}

/// The first `limit` bytes as text, cut back to a whole character; invalid UTF-8 replaced. Whether
/// anything was cut off.
fn prefix(bytes: &[u8], limit: usize) -> (String, bool) {
    let head = match bytes.get(..limit) {
        Some(head) if bytes.len() > limit => head,
        _ => return (String::from_utf8_lossy(bytes).into_owned(), false),
    };
    // A character split by the cap is left out rather than shown as a replacement character.
    let head = match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => head.get(..e.valid_up_to()).unwrap_or(head),
        _ => head,
    };
    (String::from_utf8_lossy(head).into_owned(), true)
}

/// MCP tool calls: `call_tool`, `tools/call`, and the tools (`<connection>/<tool>`) as what is called.
fn tool_summary(tools: &[&str], connection: &str) -> StatementSummary {
    StatementSummary {
        kind: "call_tool".to_owned(),
        command: "tools/call".to_owned(),
        reads: Vec::new(),
        writes: Vec::new(),
        functions: tools.iter().map(|t| format!("{connection}/{t}")).collect(),
        unbounded_write: false,
    }
}

/// The Cedar action, the method, and the resource decided on (the route, else the connection) as
/// what is read or written.
fn summary(f: &HttpRequestFacts, connection: &str) -> StatementSummary {
    let resource = match &f.route {
        Some(route) => format!("{connection}/{}", route.name),
        None => connection.to_owned(),
    };
    let (reads, writes) = match f.action {
        HttpAction::Read => (vec![resource], Vec::new()),
        HttpAction::Write | HttpAction::Delete => (Vec::new(), vec![resource]),
    };
    StatementSummary {
        kind: f.action.action().to_owned(),
        command: f.method.clone(),
        reads,
        writes,
        functions: Vec::new(),
        unbounded_write: false,
    }
}
