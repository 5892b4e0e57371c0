//! The audit record of HTTP requests. A client connection's requests are recorded in one audit session
//! per token and gateway connection they use, as a PostgreSQL session's statements are: the session
//! starts with its first request and ends when the client connection closes (ADR 0007). Each request is
//! a statement, committed before it is forwarded, and an outcome (status, duration, the gateway's
//! refusal, masking, the response body's first bytes) when the exchange ends.
//!
//! An agent that keeps its connection open (keep-alive, HTTP/2) shows as one session of many requests
//! in `sessions list`, replay and the console, and an operator can end it (`sessions kill`, `revoke`:
//! the gateway closes the client connection). A client that opens a connection per request gets a
//! session per request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Instant, SystemTime};

use portcullis_audit::{
    AuditError, AuditLog, BodyRecord, Committing, Draft, ErrorInfo, EventBody, OutcomeEvent, SessionEndEvent,
    SessionStartEvent, StatementEvent, StatementSummary,
};
use portcullis_core::{HttpAction, HttpRequestFacts, Principal};
use portcullis_http::mcp::{McpExchange, McpMessage};
use portcullis_http::{BodyEnd, BodySeen, BodySent, ClientState, Ending, Problem, RequestInfo};
use portcullis_mask::{ConnectionMask, Counts};
use tokio::sync::watch;
use tracing::{debug, error, info};

use crate::audit::{Audit, LiveSession, new_session_id};
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

/// The audit sessions of one client connection, and the switch that closes it when an operator ends
/// one of them. Without an audit trail it records nothing.
#[derive(Debug)]
pub struct ClientSessions {
    audit: Option<Arc<Audit>>,
    open: Mutex<Vec<Arc<Session>>>,
    /// Set when an operator ends one of the connection's sessions: the listener closes it.
    closing: watch::Sender<bool>,
}

impl ClientState for ClientSessions {
    fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }
}

impl ClientSessions {
    pub fn new(audit: Option<Arc<Audit>>) -> ClientSessions {
        ClientSessions {
            audit,
            open: Mutex::new(Vec::new()),
            closing: watch::Sender::new(false),
        }
    }

    /// The session `request` belongs to: this connection's for its token and gateway connection, or a
    /// new one. `None` when the trail is off.
    fn session(&self, request: &Recorded<'_>) -> Option<Arc<Session>> {
        let audit = self.audit.as_ref()?;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = open.iter().find(|s| s.key.matches(request)) {
            return Some(Arc::clone(session));
        }
        // A session whose token has expired takes no more requests; it ends when its last one has.
        let now = SystemTime::now();
        open.retain(|s| s.key.expires_at > now);
        let session = Arc::new(Session::new(audit, request, self.closing.clone()));
        open.push(Arc::clone(&session));
        Some(session)
    }
}

/// Which requests share a session: the same token (issuer, subject, token id and expiry) to the same
/// gateway connection.
#[derive(Debug)]
struct SessionKey {
    issuer: String,
    subject: String,
    token_id: Option<String>,
    expires_at: SystemTime,
    connection: Option<String>,
}

impl SessionKey {
    fn of(request: &Recorded<'_>) -> SessionKey {
        let p = request.principal;
        SessionKey {
            issuer: p.issuer.clone(),
            subject: p.subject.clone(),
            token_id: p.token_id.clone(),
            expires_at: p.expires_at,
            connection: request.connection.map(str::to_owned),
        }
    }

    fn matches(&self, request: &Recorded<'_>) -> bool {
        let p = request.principal;
        self.subject == p.subject
            && self.issuer == p.issuer
            && self.token_id == p.token_id
            && self.expires_at == p.expires_at
            && self.connection.as_deref() == request.connection
    }
}

/// One audit session of a client connection. Its end is recorded when the last reference goes: the
/// client connection closed (or an operator closed it) and every request on it has ended.
#[derive(Debug)]
struct Session {
    id: String,
    log: AuditLog,
    key: SessionKey,
    started: Instant,
    numbering: Mutex<Numbering>,
    /// Why an operator ended it (`killed`, `revoked`), when one did.
    ended_by: Arc<OnceLock<&'static str>>,
    _live: LiveSession,
    /// `portcullis_sessions_active`, while it lasts.
    _active: telemetry::ActiveSession,
}

/// A session's statement numbering and counts.
#[derive(Debug)]
struct Numbering {
    /// Queued for the writer (with the first statement), so later statements follow it.
    start: Option<SessionStartEvent>,
    last_n: u64,
    statements: u64,
    refused: u64,
}

impl Session {
    fn new(audit: &Arc<Audit>, request: &Recorded<'_>, closing: watch::Sender<bool>) -> Session {
        let id = new_session_id();
        let (stop, live) = audit.controls.register(&id, request.principal);
        let ended_by = Arc::new(OnceLock::new());
        // An operator's kill or revocation closes the client connection; the stop channel closes
        // unused when the session ends.
        let stopped = Arc::clone(&ended_by);
        let session = id.clone();
        tokio::spawn(async move {
            if let Ok(stop) = stop.await {
                info!(session = %session, reason = stop.label, "http session ended by an operator; closing its client connection");
                let _ = stopped.set(stop.label);
                closing.send_replace(true);
            }
        });
        Session {
            id,
            log: audit.log.clone(),
            key: SessionKey::of(request),
            started: Instant::now(),
            numbering: Mutex::new(Numbering {
                start: Some(start_event(request)),
                last_n: 0,
                statements: 0,
                refused: 0,
            }),
            ended_by,
            _live: live,
            _active: telemetry::session_started(request.connection.unwrap_or_default()),
        }
    }

    fn numbering(&self) -> MutexGuard<'_, Numbering> {
        self.numbering.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next request's number, and the session's start when it has not gone to the writer yet
    /// (it goes ahead of that request's events). Called under the numbering lock, which the caller
    /// holds until those events are queued.
    fn next(&self, tally: &mut Numbering) -> (u64, Option<Draft>) {
        tally.last_n += 1;
        let start = tally
            .start
            .take()
            .map(|start| Draft::now(&self.id, EventBody::SessionStart(start)));
        (tally.last_n, start)
    }

    /// Numbers a new statement and queues it for a commit (the session's start first, when it has not
    /// been queued yet), in the order statements are numbered. Returns the number, whether the start
    /// went with it, and the commit to wait for.
    fn queue(&self, statement: impl FnOnce(u64) -> StatementEvent) -> (u64, bool, Committing) {
        let mut tally = self.numbering();
        let (n, start) = self.next(&mut tally);
        tally.statements += 1;
        let with_start = start.is_some();
        let mut drafts: Vec<Draft> = start.into_iter().collect();
        drafts.push(Draft::now(&self.id, EventBody::Statement(statement(n))));
        (n, with_start, self.log.commit_all(drafts))
    }

    /// A statement queued with the session's start was not stored: the start goes with the next one.
    fn not_stored(&self, request: &Recorded<'_>, with_start: bool) {
        let mut tally = self.numbering();
        tally.statements = tally.statements.saturating_sub(1);
        if with_start {
            tally.start = Some(start_event(request));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let tally = self.numbering.get_mut().unwrap_or_else(PoisonError::into_inner);
        // Nothing of a session whose start was never stored.
        if tally.start.is_some() {
            return;
        }
        let (reason, detail) = match self.ended_by.get() {
            Some(label) => (
                *label,
                "an operator ended the session; the gateway closed the client connection",
            ),
            None if self.key.expires_at <= SystemTime::now() => (
                "token_expired",
                "its token expired; later requests came with another",
            ),
            None => ("connection_closed", ""),
        };
        telemetry::session_ended(reason);
        self.log.submit(Draft::now(
            &self.id,
            EventBody::SessionEnd(SessionEndEvent {
                reason: reason.to_owned(),
                detail: detail.to_owned(),
                statements: tally.statements,
                refused: tally.refused,
                duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        ));
    }
}

/// One request of a session, from its committed statement to its outcome. Dropped without an
/// ending (the client went away while the gateway waited for the upstream), it records that outcome.
#[derive(Debug)]
pub struct RequestRecord {
    session: Arc<Session>,
    /// The request's statement number in its session.
    n: u64,
    /// When the request's statement was committed (its forwarding began).
    started: Instant,
    /// Its statement is stored: an outcome may follow. An [opened](RequestRecord::open) request has
    /// none until it is decided; one withdrawn before (the client left while it was held for
    /// approval) is told by its approval's events alone.
    stated: bool,
    ended: bool,
    /// How many of the response body's first bytes are recorded with the outcome.
    body_limit: usize,
}

impl RequestRecord {
    /// Records the request's statement (with its session's start, for a session's first request) and
    /// waits until it is stored: an error means the request must not be forwarded. `None` when the
    /// trail is off.
    pub async fn begin(
        client: &ClientSessions,
        request: &Recorded<'_>,
        verdict: Verdict,
    ) -> Option<Result<RequestRecord, AuditError>> {
        let session = client.session(request)?;
        let (n, with_start, committed) = session.queue(|n| statement_event(request, verdict, n));
        if let Err(e) = committed.await {
            session.not_stored(request, with_start);
            return Some(Err(e));
        }
        Some(Ok(RequestRecord {
            session,
            n,
            started: Instant::now(),
            stated: true,
            ended: false,
            body_limit: request.body_limit,
        }))
    }

    /// Numbers a request in its session (queueing the session's start, not waited for) before its
    /// statement is known: a request that needs approval has its approval events before its
    /// statement, which [`RequestRecord::decided`] records once the approval is settled. `None` when
    /// the trail is off.
    pub fn open(client: &ClientSessions, request: &Recorded<'_>) -> Option<RequestRecord> {
        let session = client.session(request)?;
        let n = {
            let mut tally = session.numbering();
            let (n, start) = session.next(&mut tally);
            if let Some(start) = start {
                session.log.submit(start);
            }
            n
        };
        Some(RequestRecord {
            session,
            n,
            started: Instant::now(),
            stated: false,
            ended: false,
            body_limit: request.body_limit,
        })
    }

    /// The audit session's id.
    pub fn session(&self) -> &str {
        &self.session.id
    }

    /// The request's statement number in its session.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Records the statement of an [opened](RequestRecord::open) request and waits until it (and all
    /// before it) is stored: an error means the request must not be forwarded.
    pub async fn decided(&mut self, request: &Recorded<'_>, verdict: Verdict) -> Result<(), AuditError> {
        let statement = Draft::now(
            &self.session.id,
            EventBody::Statement(statement_event(request, verdict, self.n)),
        );
        self.session.numbering().statements += 1;
        if let Err(e) = self.session.log.commit(statement).await {
            self.session.not_stored(request, false);
            return Err(e);
        }
        self.started = Instant::now();
        self.stated = true;
        Ok(())
    }

    /// How many of the response body's first bytes the record keeps: the proxy hands them over in
    /// [`Ending::Responded`].
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The request was refused (nothing forwarded): its outcome carries the status and the gateway's
    /// words.
    pub fn refused(mut self, problem: &Problem) {
        self.ended = true;
        if !self.stated {
            return;
        }
        self.session.numbering().refused += 1;
        let outcome = self.outcome(false, status_error(problem), "refused", None, None);
        self.session.log.submit(outcome);
    }

    /// How the exchange ended, with what masking did to the response body: the values it masked, and
    /// the reason it cut the body off, if it did.
    pub fn finished(mut self, ending: Ending<'_>, masked: Option<&Tally>) {
        let outcome = match ending {
            // Forwarded, but the gateway answered (502, 504, a body masking cannot read): the upstream
            // may have seen the request.
            Ending::Refused(problem) => {
                self.outcome(true, status_error(problem), "gateway_error", None, None)
            }
            Ending::Responded { status, body, sent } => {
                let status = status.as_u16();
                let failure = masked
                    .and_then(|m| m.failure.as_deref())
                    .filter(|_| body == BodyEnd::Failed);
                let (ending, error) = match (body, failure) {
                    (BodyEnd::Failed, Some(why)) => (
                        "masking_failed",
                        Some(format!("response cut off: masking: {why}")),
                    ),
                    (BodyEnd::Complete, _) => ("completed", None),
                    (BodyEnd::Upgraded, _) => ("upgrade_closed", None),
                    (BodyEnd::ClientGone, _) => (
                        "client_disconnected",
                        Some("the client left before the response body ended".to_owned()),
                    ),
                    (BodyEnd::Failed, None) => (
                        "upstream_failed",
                        Some("the response body failed part-way".to_owned()),
                    ),
                };
                let error = error.map(|message| ErrorInfo {
                    sqlstate: status.to_string(),
                    message,
                });
                let recorded = (self.body_limit > 0 && body != BodyEnd::Upgraded)
                    .then(|| response_body(sent, self.body_limit));
                self.outcome(true, (status, error), ending, masked.map(|m| &m.counts), recorded)
            }
        };
        self.session.log.submit(outcome);
    }

    /// The request's outcome; its tags are the status and how the exchange ended (`completed`,
    /// `refused`, `gateway_error`, `masking_failed`, `upstream_failed`, `client_disconnected`,
    /// `upgrade_closed`).
    fn outcome(
        &mut self,
        ran: bool,
        (status, error): (u16, Option<ErrorInfo>),
        ending: &str,
        masked: Option<&Counts>,
        body: Option<BodyRecord>,
    ) -> Draft {
        self.ended = true;
        let duration_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Draft::now(
            &self.session.id,
            EventBody::Outcome(OutcomeEvent {
                n: self.n,
                ran,
                tags: vec![status.to_string(), ending.to_owned()],
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
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if self.stated && !self.ended {
            // 499: the client closed the request before the response (as nginx logs it).
            let error = ErrorInfo {
                sqlstate: "499".to_owned(),
                message: "the client left before the response arrived".to_owned(),
            };
            let outcome = self.outcome(true, (499, Some(error)), "client_disconnected", None, None);
            self.session.log.submit(outcome);
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
fn statement_event(r: &Recorded<'_>, verdict: Verdict, n: u64) -> StatementEvent {
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
        n,
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
