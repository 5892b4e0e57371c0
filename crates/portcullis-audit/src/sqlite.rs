//! The SQLite audit store: one file in WAL mode, a connection per handle, one durable transaction per append.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};
use tracing::warn;

use crate::block::{self, PackedEvent};
use crate::chain::{GENESIS, follows, hash_bytes, seal};
use crate::event::{Draft, EventBody, StatementEvent, StoredEvent, now_us};
use crate::store::{
    AuditError, AuditStore, Checkpoint, Control, PruneReport, RelatedSession, RelatedWindow, Revocation,
    Sealed, SessionFilter, SessionSummary, Timing,
};

/// The schema this build writes; `PRAGMA user_version` holds the schema a file was written with.
const SCHEMA_VERSION: i64 = 4;

/// Tables other than the events, as versions 1 and 2 created them ([`SESSIONS_V3`] adds to them).
const SCHEMA_COMMON: &str = "
CREATE TABLE sessions (
    session TEXT PRIMARY KEY,
    started_us INTEGER NOT NULL,
    ended_us INTEGER,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    connection TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    statements INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    end_reason TEXT,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER
);
CREATE INDEX sessions_started ON sessions (started_us);
CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at_us INTEGER NOT NULL
);
CREATE TABLE controls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    session TEXT,
    subject TEXT,
    issuer TEXT,
    until_us INTEGER
);
CREATE TABLE export_cursors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
";

/// Version 1 kept a row per event (`seq` the rowid, hashes as hex text); [`migrate`] repacks such a
/// store into blocks. Kept to create version 1 stores in tests.
#[cfg(test)]
const EVENTS_V1: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
";

/// Version 2: a row per group commit (a *block*, see [`crate::block`]), keyed by its last event's
/// sequence number so that the chain head and "the block holding event n" are one b-tree descent each.
/// `prev_hash` is the hash preceding the first event; `last_hash` repeats the last event's hash so that
/// appending need not read the blob; `max_at_us` is the newest event time in the block, for `prune`.
/// There is deliberately no other index: it would slow every append to speed up rare reads.
const BLOCKS_V2: &str = "
CREATE TABLE blocks (
    last_seq INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    max_at_us INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    last_hash BLOB NOT NULL,
    events BLOB NOT NULL
);
";

/// Version 3: each summary names its session's protocol, and summaries are indexed by principal, for
/// "the sessions of this principal around that one" ([`AuditStore::related_sessions`]) without reading
/// every summary. The index costs one more B-tree insert per session start (an HTTP request), none per
/// statement. Summaries of older stores get their protocol from their start events ([`backfill_protocols`]).
const SESSIONS_V3: &str = "
ALTER TABLE sessions ADD COLUMN protocol TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_principal ON sessions (subject, issuer, started_us);
";

/// Version 4: a live session's summary holds its statement counts through `counted_seq`, refreshed by
/// the writer about once a second ([`LiveCounts`]), so that listing a long-lived session (an HTTP client
/// connection's requests, a pooled PostgreSQL connection) counts only the events since, not all of
/// them since its start.
const SESSIONS_V4: &str = "ALTER TABLE sessions ADD COLUMN counted_seq INTEGER;";

/// How often the writer stores live sessions' counts ([`LiveCounts`]): what listing a live session
/// reads past its summary is about this much of the trail.
const LIVE_COUNT_INTERVAL: Duration = Duration::from_secs(1);

// Adds a live session's statements counted since the last refresh; a session that has ended keeps
// the totals its end event gave.
const COUNT_LIVE_SESSION: &str = "UPDATE sessions SET statements = statements + ?2, refused = refused + ?3, \
     counted_seq = ?4 WHERE session = ?1 AND ended_us IS NULL";

/// A block is closed at this size even when more events of the same commit follow, so that reading one
/// event never means loading a huge blob.
const BLOCK_BYTES: usize = 1 << 20;

/// Events a v1 store is repacked into per block.
const MIGRATION_BLOCK_EVENTS: usize = 256;

const INSERT_BLOCK: &str = "INSERT INTO blocks (last_seq, first_seq, max_at_us, prev_hash, last_hash, events) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Blocks holding events with `seq > ?1`, oldest first.
const BLOCKS_AFTER: &str =
    "SELECT first_seq, last_seq, prev_hash, events FROM blocks WHERE last_seq > ?1 ORDER BY last_seq";

// A repeated start of one session id keeps the first summary: the summary is derived, and failing the
// append over it would refuse the session's statements for a bookkeeping conflict.
// Events have no index by session: with sessions interleaved, such an index changes a different page
// for nearly every event. A session's events are found instead by scanning the blocks of the sequence
// range between its start and its end (`first_seq`, `last_seq`).
const INSERT_SESSION: &str = "INSERT INTO sessions
    (session, started_us, issuer, subject, connection, client_addr, statements, refused, first_seq, protocol)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7, ?8)
    ON CONFLICT (session) DO NOTHING";

// Statement counts are written from the session's end event; while it is live the writer adds to them
// about once a second ([`COUNT_LIVE_SESSION`]), and a listing counts the events since. Updating the
// summary on every statement cost a B-tree write per statement on the data path.
const END_SESSION: &str = "UPDATE sessions SET ended_us = ?2, end_reason = ?3, statements = ?4, refused = ?5, \
     last_seq = ?6 WHERE session = ?1";

/// After `SELECT` [`SUMMARY_COLUMNS`]: the sessions of principal (?1 subject, ?2 issuer) on a protocol
/// other than ?3, other than ?4, whose span (to ?6, now, while live) meets [?7, ?5]; newest first, at
/// most ?8. Its `sessions_principal` range ends at ?5; a session that never recorded its end counts as
/// live (it may be, on another gateway sharing the store).
const RELATED_SESSIONS: &str = "FROM sessions \
     WHERE subject = ?1 AND issuer = ?2 AND protocol <> ?3 AND session <> ?4 \
     AND started_us <= ?5 AND coalesce(ended_us, ?6) >= ?7 \
     ORDER BY started_us DESC, session DESC LIMIT ?8";

const LATEST_CHECKPOINT: &str = "SELECT seq, hash, at_us FROM checkpoint ORDER BY id DESC LIMIT 1";

/// How long a handle waits for another handle's write transaction (the writer thread, a `prune` from the
/// CLI) before giving up; on the data path giving up means the statement is refused.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An audit store in one SQLite file. Each handle owns its own connection, so the writer thread, readers
/// and the CLI in another process can use the same file at once: WAL lets readers proceed during a write,
/// and writers queue on the file lock.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    /// What the writer handle has counted of live sessions and not yet stored.
    live: LiveCounts,
}

/// Statements of live sessions that the writer appended since it last stored their counts. Stored
/// with a later append (not on a timer: with no appends there is nothing new to count), at most every
/// [`LIVE_COUNT_INTERVAL`]; a session's end stores its totals itself. The updates add to the stored
/// counts, so a session this writer did not see start is counted right too.
#[derive(Debug)]
struct LiveCounts {
    pending: HashMap<String, Tally>,
    stored_at: Instant,
    interval: Duration,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    statements: u64,
    refused: u64,
    /// The newest statement counted.
    through: u64,
}

/// 1 when a statement was refused (its decision other than `allow`): what a session's `refused` counts.
fn refused(statement: &StatementEvent) -> u64 {
    u64::from(statement.decision != "allow")
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.statements += other.statements;
        self.refused += other.refused;
        self.through = self.through.max(other.through);
    }
}

impl LiveCounts {
    fn new() -> LiveCounts {
        LiveCounts {
            pending: HashMap::new(),
            stored_at: Instant::now(),
            interval: LIVE_COUNT_INTERVAL,
        }
    }

    /// The counts of an append (`drafts` sealed as `sealed`): live sessions' statements, and the
    /// sessions it ended.
    fn of_append<'a>(drafts: &'a [Draft], sealed: &[Sealed]) -> (HashMap<&'a str, Tally>, Vec<&'a str>) {
        let mut counted: HashMap<&str, Tally> = HashMap::new();
        let mut ended = Vec::new();
        for (draft, sealed) in drafts.iter().zip(sealed) {
            match &draft.body {
                EventBody::Statement(statement) => {
                    counted.entry(draft.session.as_str()).or_default().add(Tally {
                        statements: 1,
                        refused: refused(statement),
                        through: sealed.seq,
                    })
                }
                EventBody::SessionEnd(_) => ended.push(draft.session.as_str()),
                _ => {}
            }
        }
        (counted, ended)
    }

    fn due(&self) -> bool {
        self.stored_at.elapsed() >= self.interval
    }

    /// Writes every pending count with the append's own (`counted`), inside its transaction, after
    /// its events: a session the append ended already has its end's totals, and the update (live
    /// sessions only) leaves it.
    fn store(&self, conn: &Connection, counted: &HashMap<&str, Tally>) -> rusqlite::Result<()> {
        let mut due: HashMap<&str, Tally> = self.pending.iter().map(|(s, t)| (s.as_str(), *t)).collect();
        for (session, tally) in counted {
            due.entry(session).or_default().add(*tally);
        }
        let mut update = conn.prepare_cached(COUNT_LIVE_SESSION)?;
        for (session, tally) in due {
            update.execute(params![
                session,
                i64::try_from(tally.statements).unwrap_or(i64::MAX),
                i64::try_from(tally.refused).unwrap_or(i64::MAX),
                i64::try_from(tally.through).unwrap_or(i64::MAX)
            ])?;
        }
        Ok(())
    }

    /// After the append committed: its counts are stored (`stored`) or pending.
    fn committed(&mut self, counted: HashMap<&str, Tally>, ended: &[&str], stored: bool) {
        if stored {
            self.pending.clear();
            self.stored_at = Instant::now();
        } else {
            for (session, tally) in counted {
                self.pending.entry(session.to_owned()).or_default().add(tally);
            }
        }
        for session in ended {
            self.pending.remove(*session);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`: parent directories, a file readable only by its
    /// owner, WAL, fully synchronous commits, and the schema.
    pub fn open(path: &Path) -> Result<SqliteStore, AuditError> {
        let at = path.display().to_string();
        create_private_file(path).map_err(|e| AuditError::Store(format!("creating {at}: {e}")))?;
        let mut conn = Connection::open(path).map_err(store_err(&format!("opening {at}")))?;
        configure(&conn, &at)?;
        migrate(&mut conn)?;
        // The data path reuses a handful of statements, and `sessions` builds one per filter combination.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn,
            live: LiveCounts::new(),
        })
    }
}

impl SqliteStore {
    /// Opens the handle the group-commit writer uses: `durability` decides when a commit returns, and WAL
    /// checkpoints are left to [`SqliteStore::checkpoint_wal`] on another handle, so the writer does not
    /// stall copying pages back into the database while sessions wait on it.
    pub fn open_writer(path: &Path, durability: Durability) -> Result<SqliteStore, AuditError> {
        let store = Self::open(path)?;
        let what = "configuring the writer";
        if durability == Durability::Os {
            store
                .conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(store_err(what))?;
        }
        store
            .conn
            .pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
            .map_err(store_err(what))?;
        Ok(store)
    }

    /// Completes the counters of live (or never ended) sessions among `summaries`: what the writer
    /// stored through each one's `counted_seq` ([`LiveCounts`]; its start before the first refresh),
    /// plus its statement events after that, counted for all of them in one pass from the earliest.
    fn count_live(&self, summaries: &mut [SessionSummary]) -> Result<(), AuditError> {
        const WHAT: &str = "listing sessions";
        let mut counted_through = self
            .conn
            .prepare_cached("SELECT coalesce(counted_seq, first_seq) FROM sessions WHERE session = ?1")
            .map_err(store_err(WHAT))?;
        // A live session's counts so far, stored through `through`; the scan adds the events after.
        let mut counts: HashMap<String, Tally> = HashMap::new();
        for summary in summaries.iter().filter(|s| s.ended_us.is_none()) {
            let through: u64 = counted_through
                .query_row(params![summary.session], |row| row.get(0))
                .map_err(store_err(WHAT))?;
            let tally = Tally {
                statements: summary.statements,
                refused: summary.refused,
                through,
            };
            counts.insert(summary.session.clone(), tally);
        }
        let Some(from) = counts.values().map(|t| t.through).min() else {
            return Ok(());
        };
        read_blocks(&self.conn, from, |event, prev_hash| {
            if event.kind == "statement"
                && let Some(tally) = counts.get_mut(event.session)
                && event.seq > tally.through
            {
                tally.statements += 1;
                if let Ok(EventBody::Statement(statement)) = stored_event(event, prev_hash).decode() {
                    tally.refused += refused(&statement);
                }
            }
            true
        })?;
        for summary in summaries.iter_mut() {
            if let Some(tally) = counts.get(&summary.session)
                && summary.ended_us.is_none()
            {
                summary.statements = tally.statements;
                summary.refused = tally.refused;
            }
        }
        Ok(())
    }

    /// Copies committed WAL pages back into the database without blocking the writer (a passive
    /// checkpoint); run it periodically off the data path.
    pub fn checkpoint_wal(&mut self) -> Result<(), AuditError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(store_err("checkpointing the WAL"))
    }
}

impl AuditStore for SqliteStore {
    fn append_encoded(&mut self, drafts: &[Draft], bodies: &[String]) -> Result<Vec<Sealed>, AuditError> {
        const WHAT: &str = "appending events";
        if drafts.len() != bodies.len() {
            return Err(AuditError::Store(format!(
                "{WHAT}: {} drafts but {} encoded bodies",
                drafts.len(),
                bodies.len()
            )));
        }
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        // IMMEDIATE takes the write lock before the head is read, so two handles cannot both extend the
        // same head. Dropping the transaction on any error rolls back: all drafts or none.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_err(WHAT))?;
        let sealed = seal_and_insert(&tx, drafts, bodies)?;
        let (counted, ended) = LiveCounts::of_append(drafts, &sealed);
        let store_counts = self.live.due();
        if store_counts {
            self.live.store(&tx, &counted).map_err(store_err(WHAT))?;
        }
        tx.commit().map_err(store_err(WHAT))?;
        self.live.committed(counted, &ended, store_counts);
        Ok(sealed)
    }

    fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, AuditError> {
        let mut page = Vec::new();
        read_blocks(&self.conn, after, |event, prev_hash| {
            page.push(stored_event(event, prev_hash));
            page.len() < limit
        })?;
        Ok(page)
    }

    fn session_events(&mut self, session: &str) -> Result<Vec<StoredEvent>, AuditError> {
        const WHAT: &str = "reading a session's events";
        // Between its start and its end (or the newest event, while it is live); a session without a
        // summary (its start was pruned) is found by scanning everything.
        let range: Option<(u64, Option<u64>)> = self
            .conn
            .prepare_cached("SELECT first_seq, last_seq FROM sessions WHERE session = ?1")
            .map_err(store_err(WHAT))?
            .query_row(params![session], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(store_err(WHAT))?;
        let (first, last) = match range {
            Some((first, last)) => (first, last.unwrap_or(u64::MAX)),
            None => (0, u64::MAX),
        };
        let mut events = Vec::new();
        read_blocks(&self.conn, first.saturating_sub(1), |event, prev_hash| {
            if event.seq > last {
                return false;
            }
            if event.session == session {
                events.push(stored_event(event, prev_hash));
            }
            true
        })?;
        Ok(events)
    }

    fn sessions(&mut self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError> {
        const WHAT: &str = "listing sessions";
        let (sql, args) = sessions_query(filter);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(store_err(WHAT))?;
        let rows = stmt
            .query_map(params_from_iter(args), session_summary)
            .map_err(store_err(WHAT))?;
        let mut summaries: Vec<SessionSummary> = rows.collect::<Result<_, _>>().map_err(store_err(WHAT))?;
        drop(stmt);
        self.count_live(&mut summaries)?;
        Ok(summaries)
    }

    fn related_sessions(
        &mut self,
        session: &str,
        window: &RelatedWindow,
    ) -> Result<Vec<RelatedSession>, AuditError> {
        const WHAT: &str = "finding related sessions";
        let of = self
            .conn
            .prepare_cached(
                "SELECT issuer, subject, protocol, started_us, ended_us FROM sessions WHERE session = ?1",
            )
            .map_err(store_err(WHAT))?
            .query_row(params![session], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()
            .map_err(store_err(WHAT))?;
        let Some((issuer, subject, protocol, started_us, ended_us)) = of else {
            return Err(AuditError::NoSession(session.to_owned()));
        };
        let ended_us = ended_us.unwrap_or(window.now_us).max(started_us);
        let window_us = window.window_us.max(0);
        let limit = i64::try_from(window.limit).unwrap_or(i64::MAX);
        let sql = format!("SELECT {SUMMARY_COLUMNS} {RELATED_SESSIONS}");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(store_err(WHAT))?;
        let rows = stmt
            .query_map(
                params![
                    subject,
                    issuer,
                    protocol,
                    session,
                    ended_us.saturating_add(window_us),
                    window.now_us,
                    started_us.saturating_sub(window_us),
                    limit
                ],
                session_summary,
            )
            .map_err(store_err(WHAT))?;
        let mut summaries: Vec<SessionSummary> = rows.collect::<Result<_, _>>().map_err(store_err(WHAT))?;
        drop(stmt);
        self.count_live(&mut summaries)?;
        Ok(summaries
            .into_iter()
            .map(|summary| {
                let end = summary.ended_us.unwrap_or(window.now_us);
                let timing = Timing::of(summary.started_us, end, started_us, ended_us);
                RelatedSession {
                    summary,
                    timing,
                    reason: timing.to_string(),
                }
            })
            .collect())
    }

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        latest_checkpoint(&self.conn).map_err(store_err("reading the checkpoint"))
    }

    fn prune(&mut self, before_us: i64) -> Result<PruneReport, AuditError> {
        const WHAT: &str = "pruning events";
        // Finding and re-verifying the prefix reads and hashes every event in it, so it runs on a read
        // snapshot, without the write lock the writer needs for every commit. Stored blocks never change
        // (short of tampering, which the check is for), so the plan still holds when the lock is taken;
        // only another prune can have moved the checkpoint meanwhile, and then this one stands down.
        let plan = {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(store_err(WHAT))?;
            plan_prune(&tx, before_us)?
        };
        let PrunePlan { current, last } = plan;
        let Some((last, hash)) = last else {
            return Ok(PruneReport {
                removed: 0,
                checkpoint: current,
            });
        };
        // One write transaction: the removal, the new checkpoint and the summaries land together.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_err(WHAT))?;
        let now = latest_checkpoint(&tx).map_err(store_err(WHAT))?;
        if now != current {
            return Ok(PruneReport {
                removed: 0,
                checkpoint: now,
            });
        }
        let report = remove_prefix(&tx, last, hash, before_us)?;
        tx.commit().map_err(store_err(WHAT))?;
        Ok(report)
    }

    fn add_control(&mut self, control: &Control) -> Result<i64, AuditError> {
        const WHAT: &str = "recording a control";
        // The id inside `control` is ignored: the store assigns ids, in the order instructions arrive.
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO controls (at_us, kind, session, subject, issuer, until_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(store_err(WHAT))?;
        let inserted = match control {
            Control::Kill { session, .. } => stmt.execute(params![
                now_us(),
                "kill",
                session,
                None::<String>,
                None::<String>,
                None::<i64>
            ]),
            Control::Revoke { revocation, .. } => stmt.execute(params![
                now_us(),
                "revoke",
                None::<String>,
                revocation.subject,
                revocation.issuer,
                revocation.until_us
            ]),
        };
        inserted.map_err(store_err(WHAT))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn controls_after(&mut self, after: i64) -> Result<Vec<Control>, AuditError> {
        const WHAT: &str = "reading controls";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, session, subject, issuer, until_us FROM controls WHERE id > ?1 ORDER BY id",
            )
            .map_err(store_err(WHAT))?;
        let rows = stmt
            .query_map(params![after], control_row)
            .map_err(store_err(WHAT))?;
        // Unknown kinds are skipped rather than failed: a newer gateway sharing the store may record kinds
        // this one cannot act on, and failing would hide the kills and revocations it can act on.
        rows.filter_map(Result::transpose)
            .collect::<Result<_, _>>()
            .map_err(store_err(WHAT))
    }

    fn export_cursor(&mut self, name: &str) -> Result<u64, AuditError> {
        const WHAT: &str = "reading an export cursor";
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM export_cursors WHERE name = ?1")
            .map_err(store_err(WHAT))?;
        let seq = stmt
            .query_row(params![name], |row| row.get::<_, u64>(0))
            .optional()
            .map_err(store_err(WHAT))?;
        Ok(seq.unwrap_or(0))
    }

    fn set_export_cursor(&mut self, name: &str, seq: u64) -> Result<(), AuditError> {
        const WHAT: &str = "saving an export cursor";
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO export_cursors (name, seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            )
            .map_err(store_err(WHAT))?;
        stmt.execute(params![name, seq]).map_err(store_err(WHAT))?;
        Ok(())
    }
}

/// Creates the file owner-only before SQLite sees it, so the trail is never briefly world-readable.
/// SQLite gives the `-wal` and `-shm` files it creates later the database file's permissions.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // Never open an existing store outside SQLite: closing any descriptor of a file drops every POSIX
    // lock this process holds on it, including those of SQLite connections already open (the writer's),
    // after which another process may checkpoint and delete the WAL under them.
    if path.exists() {
        return Ok(());
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Per-connection settings. The busy timeout comes first: switching to WAL may wait for another handle.
fn configure(conn: &Connection, at: &str) -> Result<(), AuditError> {
    let what = format!("configuring {at}");
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_err(&what))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(store_err(&what))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Without WAL a reader blocks the writer; refuse rather than run slowly and refuse statements.
        return Err(AuditError::Store(format!(
            "{what}: journal mode is {mode:?}, not WAL (does the filesystem lack shared memory?)"
        )));
    }
    // FULL makes every commit reach the disk before `append` returns: a statement is forwarded only after
    // its event is durable, so a crash can lose no event for a statement that ran. The writer may relax
    // this (see `Durability`).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(store_err(&what))
}

/// How far a commit has travelled when `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// On the disk: every group commit is fsynced. Survives a power loss.
    #[default]
    Fsync,
    /// In the operating system: written on every commit, fsynced at checkpoints. Survives a crash of the
    /// gateway (SIGKILL), not of the machine; saves an fsync per group commit.
    Os,
}

/// WAL pages after which the writer checkpoints by itself, should the maintenance checkpoints stop.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Brings the schema to [`SCHEMA_VERSION`]. Checked first without the write lock, so opening a current
/// store (every reader, every CLI command) never waits for the writer.
fn migrate(conn: &mut Connection) -> Result<(), AuditError> {
    const WHAT: &str = "creating the schema";
    if schema_version(conn).map_err(store_err(WHAT))? == SCHEMA_VERSION {
        return Ok(());
    }
    // Re-read under the write lock: another handle may have created the schema meanwhile.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err(WHAT))?;
    match schema_version(&tx).map_err(store_err(WHAT))? {
        0 => {
            tx.execute_batch(SCHEMA_COMMON).map_err(store_err(WHAT))?;
            tx.execute_batch(BLOCKS_V2).map_err(store_err(WHAT))?;
            tx.execute_batch(SESSIONS_V3).map_err(store_err(WHAT))?;
            tx.execute_batch(SESSIONS_V4).map_err(store_err(WHAT))?;
        }
        1 => {
            tx.execute_batch(BLOCKS_V2).map_err(store_err(WHAT))?;
            repack_v1(&tx)?;
            tx.execute_batch("DROP TABLE events").map_err(store_err(WHAT))?;
            tx.execute_batch(SESSIONS_V3).map_err(store_err(WHAT))?;
            backfill_protocols(&tx)?;
            tx.execute_batch(SESSIONS_V4).map_err(store_err(WHAT))?;
        }
        2 => {
            tx.execute_batch(SESSIONS_V3).map_err(store_err(WHAT))?;
            backfill_protocols(&tx)?;
            tx.execute_batch(SESSIONS_V4).map_err(store_err(WHAT))?;
        }
        3 => tx.execute_batch(SESSIONS_V4).map_err(store_err(WHAT))?,
        SCHEMA_VERSION => {}
        newer => {
            return Err(AuditError::Store(format!(
                "the store has schema version {newer}, newer than this build's {SCHEMA_VERSION}; \
                 upgrade Portcullis to use it"
            )));
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(store_err(WHAT))?;
    tx.commit().map_err(store_err(WHAT))
}

/// Moves a version 1 store's events, one row each, into blocks of [`MIGRATION_BLOCK_EVENTS`], as stored:
/// each event keeps its sequence number, time, body and hash, and each block the stored previous hash of
/// its first event, so that whatever `verify` would have found before it still finds.
fn repack_v1(conn: &Connection) -> Result<(), AuditError> {
    const WHAT: &str = "moving events to schema version 2";
    let mut read = conn
        .prepare("SELECT seq, session, at_us, kind, body, prev_hash, hash FROM events ORDER BY seq")
        .map_err(store_err(WHAT))?;
    let mut rows = read.query([]).map_err(store_err(WHAT))?;
    let mut insert = conn.prepare(INSERT_BLOCK).map_err(store_err(WHAT))?;
    let mut block = BlockRow::default();
    while let Some(row) = rows.next().map_err(store_err(WHAT))? {
        let seq: u64 = row.get(0).map_err(store_err(WHAT))?;
        let session: String = row.get(1).map_err(store_err(WHAT))?;
        let at_us: i64 = row.get(2).map_err(store_err(WHAT))?;
        let kind: String = row.get(3).map_err(store_err(WHAT))?;
        let body: String = row.get(4).map_err(store_err(WHAT))?;
        let prev_hash: String = row.get(5).map_err(store_err(WHAT))?;
        let hash: String = row.get(6).map_err(store_err(WHAT))?;
        // A hash that is not hex was altered: all zeros keeps the event, and `verify` reports it.
        let packed = PackedEvent {
            seq,
            at_us,
            session: &session,
            kind: &kind,
            body: &body,
            hash: hash_bytes(&hash).unwrap_or([0; 32]),
        };
        block.push(hash_bytes(&prev_hash).unwrap_or([0; 32]), &packed, WHAT)?;
        if block.events == MIGRATION_BLOCK_EVENTS {
            block.insert(&mut insert, WHAT)?;
        }
    }
    block.insert(&mut insert, WHAT)
}

/// Gives the summaries of a store older than version 3 the protocol their start events name: one pass over
/// the events, decoding only the starts. Damaged blocks end the pass quietly (the store must still open
/// for `verify` to report them); the summaries not reached keep an empty protocol, which
/// [`AuditStore::related_sessions`] treats as one more protocol.
fn backfill_protocols(conn: &Connection) -> Result<(), AuditError> {
    const WHAT: &str = "recording the protocols of sessions (schema version 3)";
    #[derive(serde::Deserialize)]
    struct Protocol {
        protocol: String,
    }
    let mut starts: Vec<(String, u64, String)> = Vec::new();
    let read = read_blocks(conn, 0, |event, _| {
        if event.kind == "session_start"
            && let Ok(Protocol { protocol }) = serde_json::from_str(event.body)
        {
            starts.push((event.session.to_owned(), event.seq, protocol));
        }
        true
    });
    if let Err(e) = read {
        warn!(error = %e, "some sessions keep an unknown protocol: their start events cannot be read");
    }
    let mut update = conn
        .prepare("UPDATE sessions SET protocol = ?3 WHERE session = ?1 AND first_seq = ?2")
        .map_err(store_err(WHAT))?;
    for (session, seq, protocol) in starts {
        update
            .execute(params![session, seq, protocol])
            .map_err(store_err(WHAT))?;
    }
    Ok(())
}

/// A block being filled, and the `blocks` row it becomes.
#[derive(Debug, Default)]
struct BlockRow {
    data: Vec<u8>,
    events: usize,
    /// The hash before the first event.
    prev_hash: [u8; 32],
    first_seq: u64,
    last_seq: u64,
    last_hash: [u8; 32],
    max_at_us: i64,
}

impl BlockRow {
    /// Packs `event`; `prev_hash` is its predecessor's hash, kept when it is the block's first event.
    fn push(&mut self, prev_hash: [u8; 32], event: &PackedEvent<'_>, what: &str) -> Result<(), AuditError> {
        block::push(&mut self.data, event).map_err(|e| AuditError::Store(format!("{what}: {e}")))?;
        if self.events == 0 {
            self.prev_hash = prev_hash;
            self.first_seq = event.seq;
            self.max_at_us = event.at_us;
        }
        self.events += 1;
        self.last_seq = event.seq;
        self.last_hash = event.hash;
        self.max_at_us = self.max_at_us.max(event.at_us);
        Ok(())
    }

    /// Inserts the block with `insert` ([`INSERT_BLOCK`]) and empties it; nothing when it holds no event.
    fn insert(&mut self, insert: &mut rusqlite::Statement<'_>, what: &str) -> Result<(), AuditError> {
        if self.events == 0 {
            return Ok(());
        }
        insert
            .execute(params![
                self.last_seq,
                self.first_seq,
                self.max_at_us,
                self.prev_hash,
                self.last_hash,
                self.data
            ])
            .map_err(store_err(what))?;
        self.data.clear();
        self.events = 0;
        Ok(())
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Seals `drafts` onto the chain head and inserts them, packed into blocks, with their session
/// summaries; inside the caller's write transaction.
fn seal_and_insert(
    conn: &Connection,
    drafts: &[Draft],
    bodies: &[String],
) -> Result<Vec<Sealed>, AuditError> {
    const WHAT: &str = "appending events";
    let (mut seq, mut prev_hash) = chain_head(conn)?;
    let mut insert = conn.prepare_cached(INSERT_BLOCK).map_err(store_err(WHAT))?;
    let mut sealed = Vec::with_capacity(drafts.len());
    let mut block = BlockRow::default();
    for (draft, body) in drafts.iter().zip(bodies) {
        seq += 1;
        let kind = draft.body.kind();
        let hash = seal(&prev_hash, seq, &draft.session, draft.at_us, kind, body);
        let packed = PackedEvent {
            seq,
            at_us: draft.at_us,
            session: &draft.session,
            kind,
            body,
            hash,
        };
        block.push(prev_hash, &packed, WHAT)?;
        summarise(conn, draft, seq).map_err(store_err(WHAT))?;
        sealed.push(Sealed {
            seq,
            hash: hex::encode(hash),
        });
        prev_hash = hash;
        if block.data.len() >= BLOCK_BYTES {
            block.insert(&mut insert, WHAT)?;
        }
    }
    block.insert(&mut insert, WHAT)?;
    Ok(sealed)
}

/// The newest event's place, or the checkpoint's when everything was pruned, or the genesis.
fn chain_head(conn: &Connection) -> Result<(u64, [u8; 32]), AuditError> {
    const WHAT: &str = "reading the chain head";
    let newest = conn
        .prepare_cached("SELECT last_seq, last_hash FROM blocks ORDER BY last_seq DESC LIMIT 1")
        .and_then(|mut stmt| {
            stmt.query_row([], |row| Ok((row.get::<_, u64>(0)?, row.get::<_, Vec<u8>>(1)?)))
                .optional()
        })
        .map_err(store_err(WHAT))?;
    let (seq, hash) = match newest {
        Some((seq, hash)) => (seq, hash),
        None => match latest_checkpoint(conn).map_err(store_err(WHAT))? {
            Some(checkpoint) => (checkpoint.seq, checkpoint.hash.into_bytes()),
            None => return Ok((0, [0; 32])),
        },
    };
    // The checkpoint holds hex text, a block raw bytes.
    let bytes = <[u8; 32]>::try_from(hash.as_slice())
        .ok()
        .or_else(|| std::str::from_utf8(&hash).ok().and_then(hash_bytes));
    match bytes {
        Some(bytes) => Ok((seq, bytes)),
        None => Err(AuditError::Damaged {
            seq,
            reason: "the stored chain head is not a hash; run verify".to_owned(),
        }),
    }
}

/// Calls `each` with every event with `seq > after`, in order, and the hash stored before it (the
/// block's for its first event), until it returns false. Events are passed as they lie in the block, so
/// a caller that skips most of them (one session's among many) copies only those it keeps. A block that
/// cannot be decoded ends the walk: with [`AuditError::Damaged`] if nothing was passed to `each` yet,
/// quietly otherwise (the caller sees the damage on its next read, starting there).
fn read_blocks(
    conn: &Connection,
    after: u64,
    mut each: impl FnMut(&PackedEvent<'_>, &[u8]) -> bool,
) -> Result<(), AuditError> {
    const WHAT: &str = "reading events";
    // Past i64::MAX there are no rows; saturating keeps the query valid instead of failing it.
    let after_key = i64::try_from(after).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(BLOCKS_AFTER).map_err(store_err(WHAT))?;
    let mut rows = stmt.query(params![after_key]).map_err(store_err(WHAT))?;
    let mut passed = false;
    let damaged = |passed: bool, seq: u64, reason: String| {
        if passed {
            Ok(())
        } else {
            Err(AuditError::Damaged { seq, reason })
        }
    };
    while let Some(row) = rows.next().map_err(store_err(WHAT))? {
        let first_seq: u64 = row.get(0).map_err(store_err(WHAT))?;
        let last_seq: u64 = row.get(1).map_err(store_err(WHAT))?;
        let mut prev_hash: Vec<u8> = row.get(2).map_err(store_err(WHAT))?;
        let Ok(data) = row.get_ref(3).map_err(store_err(WHAT))?.as_blob() else {
            let reason = format!("the block ending at {last_seq} holds no bytes");
            return damaged(passed, first_seq, reason);
        };
        let mut expected = first_seq;
        for event in block::events(data) {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    let reason = format!("the block ending at {last_seq} is {e}");
                    return damaged(passed, expected.max(after + 1), reason);
                }
            };
            expected = event.seq.saturating_add(1);
            if event.seq > after {
                passed = true;
                if !each(&event, &prev_hash) {
                    return Ok(());
                }
            }
            prev_hash.clear();
            prev_hash.extend_from_slice(&event.hash);
        }
    }
    Ok(())
}

/// A packed event as the store interface returns it, with the hash stored before it.
fn stored_event(event: &PackedEvent<'_>, prev_hash: &[u8]) -> StoredEvent {
    StoredEvent {
        seq: event.seq,
        session: event.session.to_owned(),
        at_us: event.at_us,
        kind: event.kind.to_owned(),
        body: event.body.to_owned(),
        prev_hash: hex::encode(prev_hash),
        hash: hex::encode(event.hash),
    }
}

/// Keeps the `sessions` summary in step with the event just inserted.
fn summarise(conn: &Connection, draft: &Draft, seq: u64) -> rusqlite::Result<()> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    match &draft.body {
        EventBody::SessionStart(start) => {
            conn.prepare_cached(INSERT_SESSION)?.execute(params![
                draft.session,
                draft.at_us,
                start.issuer,
                start.subject,
                start.connection,
                start.client_addr,
                seq,
                start.protocol
            ])?;
        }
        EventBody::SessionEnd(end) => {
            conn.prepare_cached(END_SESSION)?.execute(params![
                draft.session,
                draft.at_us,
                end.reason,
                i64::try_from(end.statements).unwrap_or(i64::MAX),
                i64::try_from(end.refused).unwrap_or(i64::MAX),
                seq
            ])?;
        }
        EventBody::Statement(_) | EventBody::Outcome(_) | EventBody::Approval(_) => {}
    }
    Ok(())
}

fn latest_checkpoint(conn: &Connection) -> rusqlite::Result<Option<Checkpoint>> {
    conn.prepare_cached(LATEST_CHECKPOINT)?
        .query_row([], |row| {
            Ok(Checkpoint {
                seq: row.get(0)?,
                hash: row.get(1)?,
                at_us: row.get(2)?,
            })
        })
        .optional()
}

/// What [`AuditStore::prune`] would remove, as found on a read snapshot.
#[derive(Debug)]
struct PrunePlan {
    /// The checkpoint the plan starts from.
    current: Option<Checkpoint>,
    /// The last event of the prefix to remove, with its hash; `None` when nothing is old enough.
    last: Option<(u64, String)>,
}

/// Plans a prune; fails when anything in the prefix it would remove does not verify.
fn plan_prune(conn: &Connection, before_us: i64) -> Result<PrunePlan, AuditError> {
    const WHAT: &str = "pruning events";
    let current = latest_checkpoint(conn).map_err(store_err(WHAT))?;
    let current_seq = current.as_ref().map_or(0, |c| c.seq);
    // The prefix ends with the last block before the first one holding an event that is not old enough
    // (a full scan: see BLOCKS_V2), or with the newest block when all are old. Later old events stay: the
    // chain has no holes.
    let first_kept: Option<u64> = conn
        .query_row(
            "SELECT min(last_seq) FROM blocks WHERE max_at_us >= ?1",
            params![before_us],
            |row| row.get(0),
        )
        .map_err(store_err(WHAT))?;
    let last_block: Option<u64> = conn
        .query_row(
            "SELECT last_seq FROM blocks WHERE last_seq < ?1 ORDER BY last_seq DESC LIMIT 1",
            params![first_kept.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX))],
            |row| row.get(0),
        )
        .optional()
        .map_err(store_err(WHAT))?;
    let Some(last) = last_block.filter(|&last| last > current_seq) else {
        return Ok(PrunePlan { current, last: None });
    };
    // Everything about to go must still verify, from the current checkpoint on: pruning over an altered
    // or deleted event would erase the evidence, so refuse and leave it for `verify` to report.
    let (mut prev_seq, mut prev_hash) = match &current {
        Some(c) => (c.seq, c.hash.clone()),
        None => (0, GENESIS.to_owned()),
    };
    let mut broken = None;
    read_blocks(conn, current_seq, |event, stored_prev| {
        if event.seq > last {
            return false;
        }
        let event = stored_event(event, stored_prev);
        if let Err(reason) = follows(prev_seq, &prev_hash, &event) {
            broken = Some((event.seq, reason));
            return false;
        }
        prev_seq = event.seq;
        prev_hash = event.hash;
        true
    })?;
    if let Some((seq, reason)) = broken.or_else(|| {
        (prev_seq != last).then(|| (prev_seq + 1, format!("the events up to {last} end at {prev_seq}")))
    }) {
        return Err(AuditError::Damaged {
            seq,
            reason: format!("{WHAT}: {reason}; run verify"),
        });
    }
    Ok(PrunePlan {
        current,
        last: Some((last, prev_hash)),
    })
}

/// Removes the blocks up to event `last` and records it (with `hash`) as the checkpoint; inside the
/// caller's write transaction.
fn remove_prefix(
    conn: &Connection,
    last: u64,
    hash: String,
    before_us: i64,
) -> Result<PruneReport, AuditError> {
    const WHAT: &str = "pruning events";
    let removed: u64 = conn
        .query_row(
            "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM blocks WHERE last_seq <= ?1",
            params![last],
            |row| row.get(0),
        )
        .map_err(store_err(WHAT))?;
    conn.execute("DELETE FROM blocks WHERE last_seq <= ?1", params![last])
        .map_err(store_err(WHAT))?;
    let checkpoint = Checkpoint {
        seq: last,
        hash,
        at_us: now_us(),
    };
    conn.execute(
        "INSERT INTO checkpoint (seq, hash, at_us) VALUES (?1, ?2, ?3)",
        params![checkpoint.seq, checkpoint.hash, checkpoint.at_us],
    )
    .map_err(store_err(WHAT))?;
    conn.execute("DELETE FROM sessions WHERE ended_us < ?1", params![before_us])
        .map_err(store_err(WHAT))?;
    Ok(PruneReport {
        removed,
        checkpoint: Some(checkpoint),
    })
}

/// The `sessions` query for `filter`: only set filters become conditions, so each combination is its own
/// (cached) statement with a plain plan.
fn sessions_query(filter: &SessionFilter) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM sessions WHERE 1 = 1");
    let mut args = Vec::new();
    if let Some(subject) = &filter.subject {
        sql.push_str(" AND subject = ?");
        args.push(Value::Text(subject.clone()));
    }
    if let Some(connection) = &filter.connection {
        sql.push_str(" AND connection = ?");
        args.push(Value::Text(connection.clone()));
    }
    if let Some(since) = filter.since_us {
        sql.push_str(" AND started_us >= ?");
        args.push(Value::Integer(since));
    }
    if let Some(until) = filter.until_us {
        sql.push_str(" AND started_us < ?");
        args.push(Value::Integer(until));
    }
    // A negative LIMIT is SQLite's "no limit".
    sql.push_str(" ORDER BY started_us DESC, session DESC LIMIT ?");
    let limit = filter.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    args.push(Value::Integer(limit));
    (sql, args)
}

/// The columns [`session_summary`] reads, in its order.
const SUMMARY_COLUMNS: &str = "session, started_us, ended_us, issuer, subject, connection, client_addr, \
     statements, refused, end_reason, protocol";

fn session_summary(row: &Row<'_>) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        session: row.get(0)?,
        started_us: row.get(1)?,
        ended_us: row.get(2)?,
        issuer: row.get(3)?,
        subject: row.get(4)?,
        connection: row.get(5)?,
        client_addr: row.get(6)?,
        statements: row.get(7)?,
        refused: row.get(8)?,
        end_reason: row.get(9)?,
        protocol: row.get(10)?,
    })
}

/// A `controls` row as a [`Control`]; `None` for a kind this build does not know.
fn control_row(row: &Row<'_>) -> rusqlite::Result<Option<Control>> {
    let id: i64 = row.get(0)?;
    let kind: String = row.get(1)?;
    Ok(match kind.as_str() {
        "kill" => Some(Control::Kill {
            id,
            session: row.get(2)?,
        }),
        "revoke" => Some(Control::Revoke {
            id,
            revocation: Revocation {
                subject: row.get(3)?,
                issuer: row.get(4)?,
                until_us: row.get(5)?,
            },
        }),
        other => {
            warn!(
                id,
                kind = other,
                "skipping a control of a kind this gateway does not know"
            );
            None
        }
    })
}

/// Wraps a SQLite error with what the store was doing.
fn store_err(what: &str) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
    move |e| AuditError::Store(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{event_hash, verify};

    /// A store as version 1 wrote it: `n` events of two sessions, one row each, hash-chained as hex.
    fn v1_store(path: &Path, n: u64) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA_COMMON).unwrap();
        conn.execute_batch(EVENTS_V1).unwrap();
        conn.execute_batch("PRAGMA user_version = 1;").unwrap();
        let mut prev = GENESIS.to_owned();
        let mut hashes = Vec::new();
        for seq in 1..=n {
            let session = if seq % 2 == 0 { "even" } else { "odd" };
            let at_us = i64::try_from(seq).unwrap() * 10;
            let body = format!("{{\"type\":\"outcome\",\"n\":{seq}}}");
            let hash = event_hash(&prev, seq, session, at_us, "outcome", &body);
            conn.execute(
                "INSERT INTO events (seq, session, at_us, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![seq, session, at_us, "outcome", body, prev, hash],
            )
            .unwrap();
            prev.clone_from(&hash);
            hashes.push(hash);
        }
        hashes
    }

    #[test]
    fn a_version_1_store_is_repacked_into_blocks_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let hashes = v1_store(&path, 600);
        let mut store = SqliteStore::open(&path).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let blocks: i64 = store
            .conn
            .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blocks, 3, "600 events in blocks of {MIGRATION_BLOCK_EVENTS}");
        let old: Option<String> = store
            .conn
            .query_row("SELECT name FROM sqlite_master WHERE name = 'events'", [], |r| {
                r.get(0)
            })
            .optional()
            .unwrap();
        assert_eq!(old, None);

        let events = store.events_after(0, 1000).unwrap();
        let stored: Vec<&str> = events.iter().map(|e| e.hash.as_str()).collect();
        assert_eq!(stored, hashes);
        let report = verify(&mut store).unwrap();
        assert_eq!((report.broken, report.events), (None, 600));

        // The chain goes on from the repacked head.
        let next = store
            .append(&[Draft {
                session: "odd".into(),
                at_us: 7_000,
                body: EventBody::Outcome(crate::OutcomeEvent {
                    n: 601,
                    ran: true,
                    tags: Vec::new(),
                    rows: 0,
                    duration_us: 1,
                    error: None,
                    result: None,
                    masked: Default::default(),
                    body: None,
                }),
            }])
            .unwrap();
        assert_eq!(next[0].seq, 601);
        assert_eq!(verify(&mut store).unwrap().broken, None);
    }

    #[test]
    fn a_commit_larger_than_a_block_is_split_and_still_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("audit.db")).unwrap();
        let big = |n: u64| Draft {
            session: "s".into(),
            at_us: 1,
            body: EventBody::Outcome(crate::OutcomeEvent {
                n,
                ran: true,
                tags: vec!["x".repeat(BLOCK_BYTES * 6 / 10)],
                rows: 0,
                duration_us: 1,
                error: None,
                result: None,
                masked: Default::default(),
                body: None,
            }),
        };
        let sealed = store.append(&[big(1), big(2), big(3)]).unwrap();
        let rows: Vec<(u64, u64)> = store
            .conn
            .prepare("SELECT first_seq, last_seq FROM blocks ORDER BY last_seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [(1, 2), (3, 3)], "closed at {BLOCK_BYTES} bytes");
        let report = verify(&mut store).unwrap();
        assert_eq!((report.broken, report.last_hash), (None, sealed[2].hash.clone()));
    }

    /// A session start of `subject` over `protocol`.
    fn statement(session: &str, n: u64, decision: &str) -> Draft {
        Draft {
            session: session.into(),
            at_us: 1_000 + i64::try_from(n).unwrap(),
            body: EventBody::Statement(crate::StatementEvent {
                n,
                message: "request".into(),
                prepared: None,
                text: format!("GET /customers/{n}"),
                params: vec![],
                statements: vec![],
                decision: decision.into(),
                policies: vec![],
                reason: String::new(),
                body: None,
            }),
        }
    }

    fn end(session: &str, statements: u64, refused: u64) -> Draft {
        Draft {
            session: session.into(),
            at_us: 9_000,
            body: EventBody::SessionEnd(crate::SessionEndEvent {
                reason: "connection_closed".into(),
                detail: String::new(),
                statements,
                refused,
                duration_ms: 8,
            }),
        }
    }

    fn append(store: &mut SqliteStore, drafts: &[Draft]) -> Vec<Sealed> {
        let bodies: Vec<String> = drafts.iter().map(Draft::body_json).collect();
        store.append_encoded(drafts, &bodies).unwrap()
    }

    /// (statements, refused) of each session as listed, by a handle of its own (as the CLI's).
    fn listed(path: &Path) -> HashMap<String, (u64, u64)> {
        let mut reader = SqliteStore::open(path).unwrap();
        reader
            .sessions(&SessionFilter::default())
            .unwrap()
            .into_iter()
            .map(|s| (s.session, (s.statements, s.refused)))
            .collect()
    }

    /// (statements, refused, counted_seq) as the summary row holds them.
    fn stored_counts(path: &Path, session: &str) -> (u64, u64, Option<u64>) {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT statements, refused, counted_seq FROM sessions WHERE session = ?1",
                params![session],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap()
    }

    #[test]
    fn live_sessions_are_counted_from_the_stored_counts_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut writer = SqliteStore::open(&path).unwrap();

        // Due at once: the append stores its counts.
        writer.live.interval = Duration::ZERO;
        let sealed = append(
            &mut writer,
            &[
                start("a", 1_000, "http", "agent"),
                statement("a", 1, "allow"),
                statement("a", 2, "deny"),
            ],
        );
        assert_eq!(stored_counts(&path, "a"), (2, 1, Some(sealed[2].seq)));

        // Not due: counted in memory, listed from the events after the stored counts, none twice.
        writer.live.interval = Duration::from_secs(3_600);
        append(
            &mut writer,
            &[
                statement("a", 3, "allow"),
                start("b", 2_000, "http", "agent"),
                statement("b", 1, "deny"),
            ],
        );
        assert_eq!(stored_counts(&path, "a"), (2, 1, Some(sealed[2].seq)));
        assert_eq!(stored_counts(&path, "b"), (0, 0, None));
        let sessions = listed(&path);
        assert_eq!(sessions["a"], (3, 1));
        assert_eq!(sessions["b"], (1, 1));

        // Due again: the pending counts are added with this append's; an ended session keeps its
        // end's totals.
        writer.live.interval = Duration::ZERO;
        let sealed = append(&mut writer, &[statement("a", 4, "deny"), end("b", 1, 1)]);
        assert_eq!(stored_counts(&path, "a"), (4, 2, Some(sealed[0].seq)));
        assert_eq!(stored_counts(&path, "b"), (1, 1, None));
        let sessions = listed(&path);
        assert_eq!(sessions["a"], (4, 2));
        assert_eq!(sessions["b"], (1, 1));

        // A new writer (a restarted gateway) adds to what an earlier one stored.
        drop(writer);
        let mut writer = SqliteStore::open(&path).unwrap();
        writer.live.interval = Duration::ZERO;
        append(&mut writer, &[statement("a", 5, "allow")]);
        assert_eq!(stored_counts(&path, "a").0, 5);
        assert_eq!(listed(&path)["a"], (5, 2));
    }

    fn start(session: &str, at_us: i64, protocol: &str, subject: &str) -> Draft {
        Draft {
            session: session.into(),
            at_us,
            body: EventBody::SessionStart(crate::SessionStartEvent {
                protocol: protocol.into(),
                issuer: "https://issuer.example".into(),
                issuer_alias: "corp".into(),
                subject: subject.into(),
                groups: Vec::new(),
                token_id: None,
                token_expires_at: 0,
                client_addr: "192.0.2.1:5000".into(),
                client_tls: false,
                client_user: String::new(),
                connection: "app".into(),
                upstream_role: "gateway".into(),
                upstream_tls: false,
            }),
        }
    }

    #[test]
    fn a_version_2_store_gets_protocols_from_its_start_events_and_relates_its_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        {
            let mut store = SqliteStore::open(&path).unwrap();
            store
                .append(&[
                    start("db", 1_000, "postgres", "agent"),
                    start("call", 2_000, "http", "agent"),
                    start("other", 2_000, "http", "someone-else"),
                ])
                .unwrap();
            // Back to what version 2 wrote: no protocol column, no index by principal, no live counts.
            store
                .conn
                .execute_batch(
                    "DROP INDEX sessions_principal; ALTER TABLE sessions DROP COLUMN protocol;
                     ALTER TABLE sessions DROP COLUMN counted_seq; PRAGMA user_version = 2;",
                )
                .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mut protocols: Vec<(String, String)> = store
            .sessions(&SessionFilter::default())
            .unwrap()
            .into_iter()
            .map(|s| (s.session, s.protocol))
            .collect();
        protocols.sort();
        assert_eq!(
            protocols,
            [("call", "http"), ("db", "postgres"), ("other", "http")]
                .map(|(s, p)| (s.to_owned(), p.to_owned()))
        );
        let window = RelatedWindow::default_at(10_000);
        let related = store.related_sessions("db", &window).unwrap();
        let names: Vec<&str> = related.iter().map(|r| r.summary.session.as_str()).collect();
        assert_eq!(names, ["call"]);
        // New starts record their protocol; the chain is intact.
        store.append(&[start("db2", 3_000, "postgres", "agent")]).unwrap();
        let related = store.related_sessions("call", &window).unwrap();
        let names: Vec<&str> = related.iter().map(|r| r.summary.session.as_str()).collect();
        assert_eq!(names, ["db2", "db"]);
        assert_eq!(verify(&mut store).unwrap().broken, None);
    }

    #[test]
    fn tampering_done_before_the_move_is_still_found_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        v1_store(&path, 300);
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE events SET body = '{}' WHERE seq = 270", [])
            .unwrap();
        conn.execute("DELETE FROM events WHERE seq = 100", []).unwrap();
        drop(conn);
        let mut store = SqliteStore::open(&path).unwrap();
        let broken = verify(&mut store).unwrap().broken.unwrap();
        assert_eq!(broken.seq, 101, "{}", broken.reason);
    }
}
