//! The events of a session, as recorded: one typed struct per event, serialised once to the canonical JSON
//! that is hashed and stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An event not yet in the chain: which session, when (microseconds since the Unix epoch), what.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub session: String,
    pub at_us: i64,
    pub body: EventBody,
}

impl Draft {
    /// A draft stamped with the current time.
    pub fn now(session: impl Into<String>, body: EventBody) -> Self {
        Draft {
            session: session.into(),
            at_us: now_us(),
            body,
        }
    }

    /// The canonical encoding of the body: JSON with fields in declaration order and no maps, so the same
    /// event always encodes to the same bytes.
    pub fn body_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys, no custom serialisers.
        serde_json::to_string(&self.body).unwrap_or_default()
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    SessionStart(SessionStartEvent),
    Statement(StatementEvent),
    Outcome(OutcomeEvent),
    SessionEnd(SessionEndEvent),
    Approval(ApprovalEvent),
}

impl EventBody {
    /// The event's kind as stored: `session_start`, `statement`, `outcome`, `session_end`, `approval`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::SessionStart(_) => "session_start",
            EventBody::Statement(_) => "statement",
            EventBody::Outcome(_) => "outcome",
            EventBody::SessionEnd(_) => "session_end",
            EventBody::Approval(_) => "approval",
        }
    }
}

/// A step of a just-in-time approval of one statement: the request, then its decision (or expiry). The
/// statement event numbered `n` follows with the text and the final decision; an approved statement is
/// forwarded only after that event is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalEvent {
    /// The approval request's id.
    pub request: String,
    /// `requested`, `vote` (an approval short of the quorum), `approved`, `denied`, `expired`,
    /// `withdrawn`; `released` (a ticket's grant ran the statement).
    pub action: String,
    /// The number of the statement in its session.
    pub n: u64,
    /// SHA-256 over connection, requester and the statement's bytes: what the approval is bound to.
    pub fingerprint: String,
    /// The reviewer (`approved`, `denied`).
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The policies that require the approval (`requested`).
    #[serde(default)]
    pub policies: Vec<String>,
}

/// A session opened: who, from where, to what, through which credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStartEvent {
    /// The protocol of the connection (`postgres`).
    pub protocol: String,
    /// The issuer URL (`iss`) and its configured alias.
    pub issuer: String,
    pub issuer_alias: String,
    pub subject: String,
    pub groups: Vec<String>,
    /// The token's `jti`, never the token.
    pub token_id: Option<String>,
    /// The token's expiry, seconds since the Unix epoch.
    pub token_expires_at: i64,
    pub client_addr: String,
    /// Whether the client connected over TLS.
    pub client_tls: bool,
    /// The user name the client sent (informational: identity comes from the token).
    pub client_user: String,
    pub connection: String,
    /// The role the gateway logged in as upstream.
    pub upstream_role: String,
    pub upstream_tls: bool,
}

/// A statement the client sent, with the gateway's decision on it. Recorded before it is forwarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementEvent {
    /// The statement's number within its session, from 1; its outcome carries the same number.
    pub n: u64,
    /// The protocol message: `query`, `parse`, `bind`, `function_call`.
    pub message: String,
    /// The prepared statement's name (Parse, Bind; `""` is the unnamed statement).
    #[serde(default)]
    pub prepared: Option<String>,
    /// The SQL text (for a Bind, the text of the statement it binds).
    pub text: String,
    /// Bind parameters in text form (`None` is SQL NULL; binary values as `\x` hex).
    #[serde(default)]
    pub params: Vec<Option<String>>,
    /// What the analysis found, one entry per statement in the text.
    #[serde(default)]
    pub statements: Vec<StatementSummary>,
    /// `allow`, `deny`, `approval_required`.
    pub decision: String,
    /// The policies that decided (`@id` or Cedar's id).
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub reason: String,
    /// An HTTP request's body, when the gateway read it before deciding (JSON within
    /// `inspect_body_bytes`, an MCP endpoint's JSON-RPC): masked, capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyRecord>,
}

/// An HTTP message body as recorded: its first bytes, masked as masking masks what the client sees,
/// up to `[audit] http_body_bytes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyRecord {
    /// The `Content-Type` header, as sent (empty when there was none).
    pub content_type: String,
    /// The body's length in bytes, as far as it passed (a body cut off counts what was sent).
    pub bytes: u64,
    /// Its first bytes as text (invalid UTF-8 replaced); empty for a body that is not text.
    pub text: String,
    /// `text` is not the whole body: it was longer than the cap, or not text.
    pub truncated: bool,
}

/// The facts of one statement that an auditor reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementSummary {
    pub kind: String,
    pub command: String,
    #[serde(default)]
    pub reads: Vec<String>,
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub functions: Vec<String>,
    #[serde(default)]
    pub unbounded_write: bool,
}

/// What became of a forwarded statement, as the client saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEvent {
    /// The number of the statement event this answers.
    pub n: u64,
    /// Whether the server ran it (false when an earlier error in the pipeline skipped it).
    pub ran: bool,
    /// CommandComplete tags, one per statement completed (`SELECT 3`, `UPDATE 1`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Rows returned or affected, summed over the tags.
    pub rows: u64,
    pub duration_us: u64,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    /// The rows the client received, capped.
    #[serde(default)]
    pub result: Option<ResultRecord>,
    /// Values masked in what the client received, by detector (`column` for column rules).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub masked: BTreeMap<String, u64>,
    /// An HTTP response's body as the client received it (masked), capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyRecord>,
}

/// An error the client received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub sqlstate: String,
    pub message: String,
}

/// The result the client saw, up to the configured caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub columns: Vec<String>,
    /// Cells in text form; `None` is SQL NULL; binary values as `\x` hex.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows were left out (by the row or byte cap); `rows` is a prefix of what the client received.
    pub truncated: bool,
}

/// A session ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEndEvent {
    /// Why, as a short label (`client_terminated`, `token_expired`, `killed`, `revoked`, ...).
    pub reason: String,
    #[serde(default)]
    pub detail: String,
    /// Statements recorded, and how many of them were refused.
    pub statements: u64,
    pub refused: u64,
    pub duration_ms: u64,
}

/// An event as stored: its place in the chain and its canonical body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    pub session: String,
    pub at_us: i64,
    pub kind: String,
    /// The canonical JSON of the body, exactly as hashed.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    /// The decoded body, or an error if the stored text is not an event (tampering, or a newer version).
    pub fn decode(&self) -> Result<EventBody, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}
