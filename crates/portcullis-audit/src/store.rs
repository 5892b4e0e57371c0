//! The store interface: everything the gateway and the `sessions` commands need from where events live.
//! SQLite implements it today; a PostgreSQL store shared by several gateways implements the same trait.

use serde::Serialize;

use crate::event::{Draft, StoredEvent};

/// A store failure. The data path treats every one the same way: the statement is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store: {0}")]
    Store(String),
    #[error("audit store is closed")]
    Closed,
    #[error("no session {0:?}")]
    NoSession(String),
    /// Stored events that cannot be read back (edited or damaged behind the store's back), from `seq` on.
    #[error("audit store: event {seq} cannot be read: {reason}")]
    Damaged { seq: u64, reason: String },
}

/// Where an appended event landed in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    pub hash: String,
}

/// The last pruned event: the chain that remains starts after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    /// When the pruning happened, microseconds since the Unix epoch.
    pub at_us: i64,
}

/// Filters for `sessions list`; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub subject: Option<String>,
    pub connection: Option<String>,
    /// Sessions that started at or after this time (µs since the epoch).
    pub since_us: Option<i64>,
    /// Sessions that started before this time.
    pub until_us: Option<i64>,
    pub limit: Option<usize>,
}

/// One line of `sessions list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub session: String,
    pub started_us: i64,
    /// `None` while the session is live (or when the gateway died before recording its end).
    pub ended_us: Option<i64>,
    pub issuer: String,
    pub subject: String,
    /// The protocol of the session's connection (`postgres`, `http`); empty when unknown (a summary
    /// whose start event was pruned before the store recorded protocols).
    pub protocol: String,
    pub connection: String,
    pub client_addr: String,
    pub statements: u64,
    pub refused: u64,
    pub end_reason: Option<String>,
}

/// Where to look for the sessions related to one ([`AuditStore::related_sessions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelatedWindow {
    /// How far before the session's start and after its end to look, in µs.
    pub window_us: i64,
    /// At most this many sessions, newest first.
    pub limit: usize,
    /// Where a live span ends: now, µs since the epoch.
    pub now_us: i64,
}

impl RelatedWindow {
    /// The default window: 60 s either side.
    pub const DEFAULT_WINDOW_US: i64 = 60_000_000;
    /// The default bound on the sessions returned.
    pub const DEFAULT_LIMIT: usize = 50;

    /// The default window and limit, at `now_us`.
    pub fn default_at(now_us: i64) -> Self {
        RelatedWindow {
            window_us: Self::DEFAULT_WINDOW_US,
            limit: Self::DEFAULT_LIMIT,
            now_us,
        }
    }
}

/// A session of the same principal (issuer and subject) on another protocol, near in time to the
/// session asked about: a correlation by identity and time, not a proof that one caused the other.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelatedSession {
    #[serde(flatten)]
    pub summary: SessionSummary,
    #[serde(flatten)]
    pub timing: Timing,
    /// One line for people: `same principal, overlapping`.
    pub reason: String,
}

/// Where a related session lies relative to the session asked about (its span: start to end, or to now
/// while live).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "timing", rename_all = "snake_case")]
pub enum Timing {
    /// The two spans share at least an instant.
    Overlapping,
    /// It ended `gap_us` before the session started.
    Before { gap_us: i64 },
    /// It started `gap_us` after the session ended.
    After { gap_us: i64 },
}

impl Timing {
    /// Where span `[start, end]` lies relative to span `[of_start, of_end]`.
    pub fn of(start: i64, end: i64, of_start: i64, of_end: i64) -> Timing {
        if end < of_start {
            Timing::Before {
                gap_us: of_start.saturating_sub(end),
            }
        } else if start > of_end {
            Timing::After {
                gap_us: start.saturating_sub(of_end),
            }
        } else {
            Timing::Overlapping
        }
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tenths of a second: the window is in seconds, and clocks of one host are what is compared.
        let secs = |us: i64| us as f64 / 1_000_000.0;
        match self {
            Timing::Overlapping => f.write_str("same principal, overlapping"),
            Timing::Before { gap_us } => {
                write!(f, "same principal, ended {:.1}s before it started", secs(*gap_us))
            }
            Timing::After { gap_us } => {
                write!(f, "same principal, started {:.1}s after it ended", secs(*gap_us))
            }
        }
    }
}

/// An instruction to running gateways, recorded in the store so every gateway sharing it obeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Control {
    /// End this session now.
    Kill { id: i64, session: String },
    /// Refuse new sessions of this identity, and end its live ones, until `until_us` (forever if `None`).
    Revoke { id: i64, revocation: Revocation },
}

/// An identity barred from the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub subject: String,
    /// The issuer URL or alias; `None` matches every issuer.
    pub issuer: Option<String>,
    pub until_us: Option<i64>,
}

impl Revocation {
    /// Whether this revocation bars `subject` of `issuer` (matched by URL or alias) at `now_us`.
    pub fn bars(&self, issuer: &str, issuer_alias: &str, subject: &str, now_us: i64) -> bool {
        self.subject == subject
            && self
                .issuer
                .as_deref()
                .is_none_or(|i| i == issuer || i == issuer_alias)
            && self.until_us.is_none_or(|until| now_us < until)
    }
}

/// What pruning removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub removed: u64,
    pub checkpoint: Option<Checkpoint>,
}

/// A place events are kept. One handle per thread: the writer holds one, each reader opens its own.
pub trait AuditStore: Send {
    /// Appends `drafts` in order, in one durable transaction: each gets the next sequence number, the
    /// previous event's hash, and its own hash ([`crate::event_hash`]). All or none are stored.
    fn append(&mut self, drafts: &[Draft]) -> Result<Vec<Sealed>, AuditError> {
        let bodies: Vec<String> = drafts.iter().map(Draft::body_json).collect();
        self.append_encoded(drafts, &bodies)
    }

    /// As [`AuditStore::append`], with each draft's canonical body ([`Draft::body_json`]) already
    /// encoded: the group-commit writer has sessions encode their own events, off its serial path.
    fn append_encoded(&mut self, drafts: &[Draft], bodies: &[String]) -> Result<Vec<Sealed>, AuditError>;

    /// Up to `limit` events with `seq > after`, in sequence order. Events that cannot be read end the
    /// page early; [`AuditError::Damaged`] only when the first event due cannot be read.
    fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, AuditError>;

    /// Every event of one session, in sequence order.
    fn session_events(&mut self, session: &str) -> Result<Vec<StoredEvent>, AuditError>;

    /// Sessions matching `filter`, newest first.
    fn sessions(&mut self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError>;

    /// The sessions of `session`'s principal (same issuer and subject) on another protocol than its own
    /// whose span (start to end, or to now while live) overlaps its span widened by `window.window_us`
    /// on both sides; newest first, at most `window.limit`. [`AuditError::NoSession`] when the store
    /// has no summary of `session`.
    fn related_sessions(
        &mut self,
        session: &str,
        window: &RelatedWindow,
    ) -> Result<Vec<RelatedSession>, AuditError>;

    /// The pruning checkpoint, if anything was ever pruned.
    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError>;

    /// Removes the longest prefix of the chain whose events are all older than `before_us`, and records
    /// the last removed event as the checkpoint the remaining chain is verified from. Session summaries of
    /// sessions that ended before `before_us` go with them.
    fn prune(&mut self, before_us: i64) -> Result<PruneReport, AuditError>;

    /// Records a control instruction; returns its id.
    fn add_control(&mut self, control: &Control) -> Result<i64, AuditError>;

    /// Control instructions with an id greater than `after`, oldest first.
    fn controls_after(&mut self, after: i64) -> Result<Vec<Control>, AuditError>;

    /// How far the named exporter has delivered (0 when it never has).
    fn export_cursor(&mut self, name: &str) -> Result<u64, AuditError>;

    fn set_export_cursor(&mut self, name: &str, seq: u64) -> Result<(), AuditError>;
}
