//! Pairs the server's replies with the client messages that caused them, so each recorded statement gets
//! its outcome: command tags, rows, error, duration, and the first rows of its result (capped).
//!
//! The server answers strictly in order. A simple Query (or FunctionCall) owns everything up to its
//! ReadyForQuery; an extended-protocol execution (recorded at its Bind) owns everything up to its
//! CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse. After an error the server skips
//! to the next Sync, so executions still queued in that batch are reported as not run. Messages that
//! answer Parse, Bind, Describe or Close alone belong to no execution and are ignored, except that a
//! RowDescription is remembered for the execution that follows it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use portcullis_mask::Counts;

use crate::wire::backend::{self, BackendMessage};

/// Sees the server's messages the relay forwards to the client, those it asks for, whole.
pub trait ResultSink: Send {
    /// Whether anything is recorded at all. When false the relay never holds a message for it.
    fn enabled(&self) -> bool {
        true
    }

    /// Whether to be shown the message with this tag and body length. Must not change state: the relay
    /// may ask again for the same message while waiting for the rest of it.
    fn wants(&self, tag: u8, len: usize) -> bool;

    /// A wanted message, whole, just before it is forwarded.
    fn message(&mut self, tag: u8, body: &[u8]);

    /// Values the gateway masked since the last call (whether or not this sink wanted their messages),
    /// given once per statement: just before the message that ends it (CommandComplete, EmptyQueryResponse,
    /// PortalSuspended, ErrorResponse or ReadyForQuery) is shown to [`Self::message`].
    fn masked(&mut self, counts: &Counts) {
        let _ = counts;
    }
}

/// A sink that records nothing: auditing is off.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoResults;

impl ResultSink for NoResults {
    fn enabled(&self) -> bool {
        false
    }

    fn wants(&self, _tag: u8, _len: usize) -> bool {
        false
    }

    fn message(&mut self, _tag: u8, _body: &[u8]) {}
}

/// How much of a result is kept per execution.
#[derive(Debug, Clone, Copy)]
pub struct ResultCaps {
    pub rows: usize,
    pub bytes: usize,
}

/// Which replies a tracked message owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A simple Query or FunctionCall: everything up to its ReadyForQuery.
    Simple,
    /// An extended-protocol execution (recorded at its Bind): up to CommandComplete, EmptyQueryResponse,
    /// PortalSuspended or ErrorResponse.
    Execution,
    /// A Parse: its ParseComplete (reported as nothing) or its ErrorResponse (reported).
    Parse,
}

/// A client message whose replies are tracked.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The caller's number for it (the audit statement number).
    pub id: u64,
    pub kind: UnitKind,
    /// The ReadyForQuery (counted from the session start) that closes its batch.
    pub batch: u64,
    /// Whether to report it. A refused statement's stand-in is tracked only to keep the pairing right.
    pub report: bool,
    pub sent: Instant,
}

/// The outcome of one tracked unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub id: u64,
    /// False when the server skipped it (an earlier error in its batch).
    pub ran: bool,
    pub tags: Vec<String>,
    /// Rows returned or affected, from the command tags.
    pub rows: u64,
    /// SQLSTATE and message of the error the client received.
    pub error: Option<(String, String)>,
    pub columns: Vec<String>,
    /// Cells as text (`None` is NULL; non-UTF-8 values as `\x` hex).
    pub cells: Vec<Vec<Option<String>>>,
    /// The client received more rows than `cells` holds.
    pub truncated: bool,
    pub duration: Duration,
    /// Values masked in what the client received, by reason.
    pub masked: Counts,
}

#[derive(Debug)]
struct Current {
    unit: Unit,
    finished: Finished,
    recorded_bytes: usize,
    /// Rows are recorded for the first result set only.
    first_set_done: bool,
    /// The row count of the first result set, from its command tag.
    first_set_rows: u64,
}

/// The pairing state of one session.
#[derive(Debug)]
pub struct ResultTracker {
    caps: ResultCaps,
    queue: VecDeque<Unit>,
    current: Option<Current>,
    batches_done: u64,
    /// Columns of the last RowDescription that belonged to no execution (a Describe of a statement).
    described: Option<Vec<String>>,
    /// Masked values seen before their unit's first recorded message.
    masked: Counts,
}

impl ResultTracker {
    pub fn new(caps: ResultCaps) -> Self {
        ResultTracker {
            caps,
            queue: VecDeque::new(),
            current: None,
            batches_done: 0,
            described: None,
            masked: Counts::default(),
        }
    }

    /// Values masked in a message just forwarded: they belong to the unit in progress, or to the next.
    pub fn masked(&mut self, counts: &Counts) {
        match self.current.as_mut() {
            Some(current) => current.finished.masked.merge(counts),
            None => self.masked.merge(counts),
        }
    }

    /// A unit is about to be forwarded: its replies are next in its batch.
    pub fn sent(&mut self, unit: Unit) {
        self.queue.push_back(unit);
    }

    /// Whether the relay should hand over the whole message with this tag and body length.
    pub fn wants(&self, tag: u8, len: usize) -> bool {
        match tag {
            // A RowDescription is kept even without an execution: it may describe the next one.
            b'Z' | b'T' => true,
            b'C' | b'E' | b'I' | b's' => self.current.is_some() || !self.queue.is_empty(),
            b'1' => self.front_of_batch().is_some_and(|u| u.kind == UnitKind::Parse),
            b'D' => match &self.current {
                Some(c) => {
                    c.unit.report
                        && !c.first_set_done
                        && c.finished.cells.len() < self.caps.rows
                        && c.recorded_bytes + len <= self.caps.bytes
                }
                // The first row of an execution whose portal was not described.
                None => {
                    self.caps.rows > 0
                        && len <= self.caps.bytes
                        && self.front_of_batch().is_some_and(|u| u.report)
                }
            },
            _ => false,
        }
    }

    /// The next queued unit, if it belongs to the batch the server is answering.
    fn front_of_batch(&self) -> Option<&Unit> {
        self.queue.front().filter(|u| u.batch == self.batches_done + 1)
    }

    /// Takes one whole server message; returns the units it finished.
    pub fn message(&mut self, tag: u8, body: &[u8]) -> Vec<Finished> {
        let mut done = Vec::new();
        if self.current.is_none() && self.front_of_batch().is_some_and(|u| u.kind == UnitKind::Parse) {
            // A Parse owns only its own reply: ParseComplete settles it silently, an error is reported.
            match tag {
                b'1' => {
                    self.queue.pop_front();
                    return done;
                }
                b'E' => {}
                // Anything else answers a later message (the Parse's reply was not seen): let it go.
                _ => {
                    self.queue.pop_front();
                }
            }
        }
        match tag {
            b'Z' => {
                self.batches_done += 1;
                if let Some(current) = self.current.take() {
                    self.finish(current, &mut done);
                }
                // Whatever of this batch never got a reply was skipped by the server.
                while self.queue.front().is_some_and(|u| u.batch <= self.batches_done) {
                    if let Some(unit) = self.queue.pop_front()
                        && unit.report
                    {
                        done.push(not_run(unit));
                    }
                }
            }
            b'T' => {
                let columns = column_names(body);
                match self.current_or_start() {
                    Some(current) if current.finished.columns.is_empty() => {
                        current.finished.columns = columns;
                    }
                    Some(_) => {}
                    None => self.described = Some(columns),
                }
            }
            b'D' => {
                let described = self.described.clone();
                if let Some(current) = self.current_or_start()
                    && let Ok(BackendMessage::DataRow(values)) = backend::decode(b'D', body)
                {
                    if current.finished.columns.is_empty()
                        && let Some(columns) = described.filter(|c| c.len() == values.len())
                    {
                        current.finished.columns = columns;
                    }
                    current.recorded_bytes += body.len();
                    current
                        .finished
                        .cells
                        .push(values.into_iter().map(|v| v.map(cell_text)).collect());
                }
            }
            b'C' | b'I' | b's' | b'E' => {
                let Some(current) = self.current_or_start() else {
                    return done;
                };
                match tag {
                    b'C' => {
                        if let Ok(BackendMessage::CommandComplete { tag }) = backend::decode(b'C', body) {
                            let rows = tag_rows(tag);
                            current.finished.rows += rows;
                            current.finished.tags.push(tag.to_owned());
                            if !current.first_set_done
                                && (!current.finished.columns.is_empty()
                                    || !current.finished.cells.is_empty())
                            {
                                current.first_set_done = true;
                                current.first_set_rows = rows;
                            }
                        }
                    }
                    b'E' => {
                        if let Ok(BackendMessage::ErrorResponse(fields)) = backend::decode(b'E', body) {
                            current.finished.error = Some((
                                fields.get(b'C').unwrap_or_default().to_owned(),
                                fields.get(b'M').unwrap_or_default().to_owned(),
                            ));
                        }
                    }
                    _ => {}
                }
                if current.unit.kind != UnitKind::Simple
                    && let Some(current) = self.current.take()
                {
                    self.finish(current, &mut done);
                }
            }
            _ => {}
        }
        done
    }

    /// The unit replies are arriving for: the one in progress, or the next queued one of the batch the
    /// server is answering.
    fn current_or_start(&mut self) -> Option<&mut Current> {
        if self.current.is_none()
            && self.front_of_batch().is_some()
            && let Some(unit) = self.queue.pop_front()
        {
            self.current = Some(Current {
                finished: Finished {
                    id: unit.id,
                    ran: true,
                    tags: Vec::new(),
                    rows: 0,
                    error: None,
                    columns: Vec::new(),
                    cells: Vec::new(),
                    truncated: false,
                    duration: Duration::ZERO,
                    masked: std::mem::take(&mut self.masked),
                },
                unit,
                recorded_bytes: 0,
                first_set_done: false,
                first_set_rows: 0,
            });
        }
        self.current.as_mut()
    }

    fn finish(&mut self, current: Current, done: &mut Vec<Finished>) {
        if !current.unit.report {
            return;
        }
        let mut finished = current.finished;
        finished.duration = current.unit.sent.elapsed();
        finished.truncated = current.first_set_rows > finished.cells.len() as u64;
        done.push(finished);
    }
}

fn not_run(unit: Unit) -> Finished {
    Finished {
        id: unit.id,
        ran: false,
        tags: Vec::new(),
        rows: 0,
        error: None,
        columns: Vec::new(),
        cells: Vec::new(),
        truncated: false,
        duration: unit.sent.elapsed(),
        masked: Counts::default(),
    }
}

fn column_names(body: &[u8]) -> Vec<String> {
    match backend::decode(b'T', body) {
        Ok(BackendMessage::RowDescription(columns)) => {
            columns.into_iter().map(|c| c.name.to_owned()).collect()
        }
        _ => Vec::new(),
    }
}

/// A cell as text: UTF-8 as is, anything else (binary format) as `\x` hex.
fn cell_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.contains('\0') => text.to_owned(),
        _ => hex_literal(value),
    }
}

/// Bytes as PostgreSQL's `bytea` hex literal (`\x00ff`): how recorded values that are not text are shown.
pub fn hex_literal(value: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 + value.len() * 2);
    out.push_str("\\x");
    for b in value {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The row count a command tag reports: its last number (`INSERT 0 5` → 5, `SELECT 3` → 3).
fn tag_rows(tag: &str) -> u64 {
    tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::put_cstr;

    fn unit(id: u64, extended: bool, batch: u64) -> Unit {
        Unit {
            id,
            kind: if extended {
                UnitKind::Execution
            } else {
                UnitKind::Simple
            },
            batch,
            report: true,
            sent: Instant::now(),
        }
    }

    fn row_description(names: &[&str]) -> Vec<u8> {
        let mut b = (names.len() as i16).to_be_bytes().to_vec();
        for n in names {
            put_cstr(&mut b, n);
            b.extend_from_slice(&[0; 18]);
        }
        b
    }

    fn data_row(cells: &[Option<&str>]) -> Vec<u8> {
        let mut b = (cells.len() as i16).to_be_bytes().to_vec();
        for c in cells {
            match c {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    fn tag(t: &str) -> Vec<u8> {
        let mut b = Vec::new();
        put_cstr(&mut b, t);
        b
    }

    fn error(code: &str) -> Vec<u8> {
        format!("SERROR\0C{code}\0Mboom\0\0").into_bytes()
    }

    #[test]
    fn a_simple_query_owns_everything_up_to_ready_for_query() {
        let mut t = ResultTracker::new(ResultCaps { rows: 2, bytes: 1024 });
        t.sent(unit(1, false, 1));
        assert!(t.message(b'T', &row_description(&["a", "b"])).is_empty());
        for i in 0..3 {
            let v = i.to_string();
            let wanted = t.wants(b'D', 16);
            if wanted {
                t.message(b'D', &data_row(&[Some(&v), None]));
            }
            assert_eq!(wanted, i < 2, "row {i}");
        }
        assert!(t.message(b'C', &tag("SELECT 3")).is_empty());
        assert!(t.message(b'C', &tag("UPDATE 4")).is_empty());
        let done = t.message(b'Z', b"I");
        assert_eq!(done.len(), 1);
        let f = &done[0];
        assert_eq!((f.id, f.ran, f.rows), (1, true, 7));
        assert_eq!(f.tags, ["SELECT 3", "UPDATE 4"]);
        assert_eq!(f.columns, ["a", "b"]);
        assert_eq!(
            f.cells,
            vec![vec![Some("0".to_owned()), None], vec![Some("1".to_owned()), None]]
        );
        assert!(f.truncated);
    }

    #[test]
    fn an_error_skips_the_rest_of_its_batch() {
        let mut t = ResultTracker::new(ResultCaps {
            rows: 10,
            bytes: 1024,
        });
        t.sent(unit(1, true, 1));
        t.sent(unit(2, true, 1));
        t.sent(unit(3, true, 2));
        let first = t.message(b'E', &error("23505"));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].error, Some(("23505".to_owned(), "boom".to_owned())));
        let skipped = t.message(b'Z', b"I");
        assert_eq!(skipped.len(), 1);
        assert!(!skipped[0].ran && skipped[0].id == 2);
        // The next batch's execution is paired with its own replies.
        let next = t.message(b'C', &tag("INSERT 0 1"));
        assert_eq!((next[0].id, next[0].rows), (3, 1));
    }

    #[test]
    fn replies_to_parse_and_describe_alone_belong_to_no_execution() {
        let mut t = ResultTracker::new(ResultCaps {
            rows: 10,
            bytes: 1024,
        });
        // Parse + Describe + Sync: ParseComplete, ParameterDescription, RowDescription, ReadyForQuery.
        assert!(t.wants(b'T', 10));
        assert!(!t.wants(b'C', 10), "no execution is waiting");
        assert!(t.message(b'T', &row_description(&["x"])).is_empty());
        assert!(t.message(b'Z', b"I").is_empty());
        // Bind + Execute + Sync: the rows get the described columns.
        t.sent(unit(5, true, 2));
        t.message(b'D', &data_row(&[Some("42")]));
        let done = t.message(b'C', &tag("SELECT 1"));
        assert_eq!(done[0].columns, ["x"]);
        assert_eq!(done[0].cells, vec![vec![Some("42".to_owned())]]);
        assert!(!done[0].truncated);
        assert!(t.message(b'Z', b"I").is_empty());
    }

    #[test]
    fn refused_stand_ins_are_absorbed_silently() {
        let mut t = ResultTracker::new(ResultCaps {
            rows: 10,
            bytes: 1024,
        });
        t.sent(Unit {
            report: false,
            ..unit(1, false, 1)
        });
        t.sent(unit(2, false, 2));
        assert!(t.message(b'E', &error("42501")).is_empty());
        assert!(t.message(b'Z', b"I").is_empty());
        t.message(b'C', &tag("SELECT 0"));
        let done = t.message(b'Z', b"I");
        assert_eq!(done[0].id, 2);
    }

    #[test]
    fn a_parse_reports_only_its_error() {
        let mut t = ResultTracker::new(ResultCaps {
            rows: 10,
            bytes: 1024,
        });
        let parse = |id, batch| Unit {
            kind: UnitKind::Parse,
            ..unit(id, true, batch)
        };
        t.sent(parse(1, 1));
        t.sent(unit(2, true, 1));
        assert!(t.wants(b'1', 0));
        assert!(t.message(b'1', b"").is_empty());
        assert_eq!(t.message(b'C', &tag("SELECT 1"))[0].id, 2);
        assert!(t.message(b'Z', b"I").is_empty());
        t.sent(parse(3, 2));
        t.sent(unit(4, true, 2));
        let failed = t.message(b'E', &error("42P01"));
        assert_eq!(
            (failed[0].id, failed[0].error.as_ref().unwrap().0.as_str()),
            (3, "42P01")
        );
        let skipped = t.message(b'Z', b"I");
        assert_eq!((skipped[0].id, skipped[0].ran), (4, false));
    }

    /// The fuzz target's invariants on random sequences: arbitrary units, tags and bodies never panic,
    /// and only units sent for reporting are reported, each once, within the row cap.
    #[test]
    fn random_sequences_keep_the_invariants() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            row_description(&["a", "b"]),
            data_row(&[Some("x"), None]),
            tag("SELECT 2"),
            error("42P01"),
            b"I".to_vec(),
            vec![0xff; 7],
        ];
        for _ in 0..20_000 {
            let mut t = ResultTracker::new(ResultCaps { rows: 3, bytes: 256 });
            let mut reportable = std::collections::HashSet::new();
            let mut reported = std::collections::HashSet::new();
            for id in 0..rng.random_range(1..24u64) {
                if rng.random_bool(0.3) {
                    let report = rng.random_bool(0.8);
                    if report {
                        reportable.insert(id);
                    }
                    t.sent(Unit {
                        id,
                        kind: [UnitKind::Simple, UnitKind::Execution, UnitKind::Parse]
                            [rng.random_range(0..3)],
                        batch: rng.random_range(1..5),
                        report,
                        sent: Instant::now(),
                    });
                } else {
                    let tag = b"TDCEIs1Z"[rng.random_range(0..8)];
                    let body = &bodies[rng.random_range(0..bodies.len())];
                    let _ = t.wants(tag, body.len());
                    for f in t.message(tag, body) {
                        assert!(
                            reportable.contains(&f.id),
                            "unit {} was not sent for reporting",
                            f.id
                        );
                        assert!(reported.insert(f.id), "unit {} reported twice", f.id);
                        assert!(f.cells.len() <= 3);
                    }
                }
            }
        }
    }

    #[test]
    fn binary_cells_are_hex() {
        assert_eq!(cell_text(&[0, 1, 255]), "\\x0001ff");
        assert_eq!(cell_text(b"plain"), "plain");
        assert_eq!(tag_rows("INSERT 0 12"), 12);
        assert_eq!(tag_rows("BEGIN"), 0);
    }
}
