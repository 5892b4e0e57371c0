//! The SQLite audit store: one file in WAL mode, a connection per handle, one durable transaction per append.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};
use tracing::warn;

use crate::chain::{GENESIS, event_hash};
use crate::event::{Draft, EventBody, StoredEvent, now_us};
use crate::store::{
    AuditError, AuditStore, Checkpoint, Control, PruneReport, Revocation, Sealed, SessionFilter,
    SessionSummary,
};

/// The schema this build writes; `PRAGMA user_version` holds the schema a file was written with.
const SCHEMA_VERSION: i64 = 1;

/// Schema version 1. `events.seq` is the rowid, so the chain head is one b-tree descent. There is
/// deliberately no index on `events.at_us`: it would slow every append to speed up `prune`, which is rare.
const SCHEMA_V1: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
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
PRAGMA user_version = 1;
";

const EVENT_COLUMNS: &str = "seq, session, at_us, kind, body, prev_hash, hash";

const INSERT_EVENT: &str = "INSERT INTO events (seq, session, at_us, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// A repeated start of one session id keeps the first summary: the summary is derived, and failing the
// append over it would refuse the session's statements for a bookkeeping conflict.
// Events have no index by session: with sessions interleaved, such an index changes a different page
// for nearly every event, and writing those pages dominated the cost of a commit. A session's events are
// found instead by scanning the sequence range between its start and its end (`first_seq`, `last_seq`).
const INSERT_SESSION: &str = "INSERT INTO sessions
    (session, started_us, issuer, subject, connection, client_addr, statements, refused, first_seq)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7)
    ON CONFLICT (session) DO NOTHING";

// Statement counts are written once, from the session's end event; a live (or never ended) session's are
// counted from its events when listed. Updating the summary on every statement cost a B-tree write per
// statement on the data path.
const END_SESSION: &str = "UPDATE sessions SET ended_us = ?2, end_reason = ?3, statements = ?4, refused = ?5, \
     last_seq = ?6 WHERE session = ?1";

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
        Ok(SqliteStore { conn })
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
        let sealed = seal_and_insert(&tx, drafts, bodies).map_err(store_err(WHAT))?;
        tx.commit().map_err(store_err(WHAT))?;
        Ok(sealed)
    }

    fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, AuditError> {
        const WHAT: &str = "reading events";
        // Past i64::MAX there are no rows; saturating keeps the query valid instead of failing it.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(store_err(WHAT))?;
        let rows = stmt
            .query_map(params![after, limit], stored_event)
            .map_err(store_err(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(store_err(WHAT))
    }

    fn session_events(&mut self, session: &str) -> Result<Vec<StoredEvent>, AuditError> {
        const WHAT: &str = "reading a session's events";
        // Between its start and its end (or the newest event, while it is live); a session without a
        // summary (its start was pruned) is found by scanning everything.
        let range: Option<(i64, Option<i64>)> = self
            .conn
            .prepare_cached("SELECT first_seq, last_seq FROM sessions WHERE session = ?1")
            .map_err(store_err(WHAT))?
            .query_row(params![session], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(store_err(WHAT))?;
        let (first, last) = match range {
            Some((first, last)) => (first, last.unwrap_or(i64::MAX)),
            None => (0, i64::MAX),
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq >= ?2 AND seq <= ?3 AND session = ?1 \
                 ORDER BY seq"
            ))
            .map_err(store_err(WHAT))?;
        let rows = stmt
            .query_map(params![session, first, last], stored_event)
            .map_err(store_err(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(store_err(WHAT))
    }

    fn sessions(&mut self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, AuditError> {
        const WHAT: &str = "listing sessions";
        let (sql, args) = sessions_query(filter);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(store_err(WHAT))?;
        let rows = stmt
            .query_map(params_from_iter(args), session_summary)
            .map_err(store_err(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(store_err(WHAT))
    }

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        latest_checkpoint(&self.conn).map_err(store_err("reading the checkpoint"))
    }

    fn prune(&mut self, before_us: i64) -> Result<PruneReport, AuditError> {
        const WHAT: &str = "pruning events";
        // One write transaction: the removal, the new checkpoint and the summaries land together, and
        // the writer cannot extend the chain between reading the prefix and recording its end.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_err(WHAT))?;
        let report = prune_in(&tx, before_us)?;
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
        0 => tx.execute_batch(SCHEMA_V1).map_err(store_err(WHAT))?,
        SCHEMA_VERSION => {}
        newer => {
            return Err(AuditError::Store(format!(
                "the store has schema version {newer}, newer than this build's {SCHEMA_VERSION}; \
                 upgrade Portcullis to use it"
            )));
        }
    }
    tx.commit().map_err(store_err(WHAT))
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Seals `drafts` onto the chain head and inserts them with their session summaries; inside the caller's
/// write transaction.
fn seal_and_insert(conn: &Connection, drafts: &[Draft], bodies: &[String]) -> rusqlite::Result<Vec<Sealed>> {
    let (mut seq, mut prev_hash) = chain_head(conn)?;
    let mut insert = conn.prepare_cached(INSERT_EVENT)?;
    let mut sealed = Vec::with_capacity(drafts.len());
    for (draft, body) in drafts.iter().zip(bodies) {
        seq += 1;
        let kind = draft.body.kind();
        let hash = event_hash(&prev_hash, seq, &draft.session, draft.at_us, kind, body);
        insert.execute(params![
            seq,
            draft.session,
            draft.at_us,
            kind,
            body,
            prev_hash,
            hash
        ])?;
        summarise(conn, draft, seq)?;
        sealed.push(Sealed {
            seq,
            hash: hash.clone(),
        });
        prev_hash = hash;
    }
    Ok(sealed)
}

/// The newest event's place, or the checkpoint's when everything was pruned, or the genesis.
fn chain_head(conn: &Connection) -> rusqlite::Result<(u64, String)> {
    let newest = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?)))
        .optional()?;
    if let Some(head) = newest {
        return Ok(head);
    }
    Ok(match latest_checkpoint(conn)? {
        Some(checkpoint) => (checkpoint.seq, checkpoint.hash),
        None => (0, GENESIS.to_owned()),
    })
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
                seq
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
        EventBody::Statement(_) | EventBody::Outcome(_) => {}
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

/// The body of [`AuditStore::prune`], inside its write transaction.
fn prune_in(conn: &Connection, before_us: i64) -> Result<PruneReport, AuditError> {
    const WHAT: &str = "pruning events";
    let current = latest_checkpoint(conn).map_err(store_err(WHAT))?;
    let current_seq = current.as_ref().map_or(0, |c| c.seq);
    // The prefix ends just before the first event that is not old enough (a full scan: see SCHEMA_V1),
    // or at the newest event when all are old. Later old events stay: the chain has no holes.
    let first_kept: Option<u64> = conn
        .query_row(
            "SELECT min(seq) FROM events WHERE at_us >= ?1",
            params![before_us],
            |row| row.get(0),
        )
        .map_err(store_err(WHAT))?;
    let last: Option<u64> = match first_kept {
        Some(first) => first.checked_sub(1),
        None => conn
            .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
            .map_err(store_err(WHAT))?,
    };
    let Some(last) = last.filter(|&s| s > current_seq) else {
        return Ok(PruneReport {
            removed: 0,
            checkpoint: current,
        });
    };
    let hash: Option<String> = conn
        .query_row("SELECT hash FROM events WHERE seq = ?1", params![last], |row| {
            row.get(0)
        })
        .optional()
        .map_err(store_err(WHAT))?;
    // A missing event where the prefix ends means rows were deleted behind the store's back; recording a
    // checkpoint past the hole would erase the evidence, so refuse and leave it for `verify` to report.
    let Some(hash) = hash else {
        return Err(AuditError::Store(format!(
            "{WHAT}: event {last} is missing, the chain is broken; run verify"
        )));
    };
    let removed = conn
        .execute("DELETE FROM events WHERE seq <= ?1", params![last])
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
        removed: removed as u64,
        checkpoint: Some(checkpoint),
    })
}

/// The `sessions` query for `filter`: only set filters become conditions, so each combination is its own
/// (cached) statement with a plain plan.
fn sessions_query(filter: &SessionFilter) -> (String, Vec<Value>) {
    let mut sql = String::from(
        "SELECT session, started_us, ended_us, issuer, subject, connection, client_addr, \
         CASE WHEN ended_us IS NULL THEN (SELECT count(*) FROM events e WHERE e.seq >= sessions.first_seq \
             AND e.session = sessions.session AND e.kind = 'statement') ELSE statements END, \
         CASE WHEN ended_us IS NULL THEN (SELECT count(*) FROM events e WHERE e.seq >= sessions.first_seq \
             AND e.session = sessions.session AND e.kind = 'statement' \
             AND json_extract(e.body, '$.decision') <> 'allow') ELSE refused END, \
         end_reason FROM sessions WHERE 1 = 1",
    );
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

fn stored_event(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get(0)?,
        session: row.get(1)?,
        at_us: row.get(2)?,
        kind: row.get(3)?,
        body: row.get(4)?,
        prev_hash: row.get(5)?,
        hash: row.get(6)?,
    })
}

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
