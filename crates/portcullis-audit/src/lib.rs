//! The audit trail: what happened in every session, as a hash-chained sequence of events kept in a store.
//!
//! Protocol code produces [`Draft`]s; the [`AuditLog`] seals them into the chain (sequence number,
//! previous hash, own hash) through an [`AuditStore`] and commits them in groups. The SQLite store is the
//! default; any store that appends drafts in one transaction and answers the queries below can replace it.

pub mod block;
mod chain;
mod event;
mod export;
mod log;
mod sqlite;
mod store;

pub use chain::{Broken, GENESIS, VerifyReport, event_hash, hash_bytes, seal, verify, verify_with_progress};
pub use event::{
    ApprovalEvent, BodyRecord, Draft, ErrorInfo, EventBody, OutcomeEvent, ResultRecord, SessionEndEvent,
    SessionStartEvent, StatementEvent, StatementSummary, StoredEvent, now_us,
};
pub use export::{ExportSink, ExportStats, Exporter};
pub use log::{AuditLog, Committing, LogStats};
pub use sqlite::{Durability, SqliteStore};
pub use store::{
    AuditError, AuditStore, Checkpoint, Control, PruneReport, RelatedSession, RelatedWindow, Revocation,
    Sealed, SessionFilter, SessionSummary, Timing,
};
