//! Statement inspection inside the relay: the hook through which policy sees every statement before it
//! reaches the database, and the mechanism that refuses one without desynchronising the session.
//!
//! A refused statement is not dropped. The relay sends the server, in its place, a statement that fails
//! during parse analysis with a marker only this session knows (`SELECT '<marker>'::pg_catalog.int4`).
//! The server therefore answers exactly where the refused statement's answer belongs: in a pipeline,
//! after the replies to earlier messages; in a transaction block, by aborting the block like any failed
//! statement; in the extended protocol, by skipping to the next Sync. On the way back the relay replaces
//! the server's error (recognised by the marker) with the gateway's 42501 error. The server keeps the
//! session's state machine; the gateway never has to reproduce it. See docs/adr/0002.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::wire::backend::GatewayError;
use crate::wire::frontend::{self, FrontendMessage};
use crate::wire::{Cursor, WireError, put_cstr, put_message};

/// A client message that carries SQL (or calls a function) and so must be decided before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement<'a> {
    /// A simple-protocol Query: one string, possibly several statements.
    Query { sql: &'a str },
    /// An extended-protocol Parse. The decision binds to the prepared statement `name` (`""` is the
    /// unnamed one): a refused Parse never creates it, so no Bind or Execute can run it.
    Parse { name: &'a str, sql: &'a str },
    /// A legacy FunctionCall, naming the function by OID (libpq's large-object API uses these).
    FunctionCall { function_oid: u32 },
    /// An extended-protocol Bind: the parameters of the next execution of prepared statement `statement`.
    /// Held only when the inspector asks for binds (to record the parameters before the execution).
    Bind {
        statement: &'a str,
        portal: &'a str,
        param_formats: Vec<i16>,
        params: Vec<Option<&'a [u8]>>,
    },
}

impl<'a> Statement<'a> {
    /// Decodes a held Query, Parse or FunctionCall message body.
    pub fn decode(tag: u8, body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body);
        match tag {
            b'Q' => Ok(Statement::Query { sql: c.cstr()? }),
            b'P' => Ok(Statement::Parse {
                name: c.cstr()?,
                sql: c.cstr()?,
            }),
            b'F' => Ok(Statement::FunctionCall {
                function_oid: c.u32()?,
            }),
            b'B' => match frontend::decode(b'B', body)? {
                FrontendMessage::Bind {
                    portal,
                    statement,
                    param_formats,
                    params,
                    ..
                } => Ok(Statement::Bind {
                    statement,
                    portal,
                    param_formats,
                    params,
                }),
                _ => Err(WireError::Invalid("not a Bind")),
            },
            _ => Err(WireError::Invalid("not a statement message")),
        }
    }
}

/// What the session knows that bears on reading statements correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// The server's `standard_conforming_strings`, as last reported. When off, backslashes escape quotes
    /// in ordinary string literals and a parser assuming the standard could be misled.
    pub standard_conforming_strings: bool,
    /// The ReadyForQuery (counted from the session start) that will close this message's batch: a Query
    /// or FunctionCall is its own batch, extended-protocol messages belong to the next Sync.
    pub batch: u64,
}

/// Forward the message, or refuse it with an error the client sees in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Refuse(GatewayError),
}

/// Decides on each statement message before the relay forwards it.
pub trait Inspector: Send {
    /// Whether statements are inspected at all. When false the relay never holds a message.
    fn enabled(&self) -> bool {
        true
    }

    /// Whether Bind messages are shown too (to record parameters). Only when [`Inspector::enabled`].
    fn binds(&self) -> bool {
        false
    }

    fn inspect(
        &mut self,
        statement: &Statement<'_>,
        state: SessionState,
    ) -> impl Future<Output = Verdict> + Send;
}

/// An inspector that forwards everything without looking: statement checks are off.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl Inspector for PassThrough {
    fn enabled(&self) -> bool {
        false
    }

    async fn inspect(&mut self, _statement: &Statement<'_>, _state: SessionState) -> Verdict {
        Verdict::Forward
    }
}

/// A refusal whose stand-in statement has been sent and whose server error has not yet come back.
#[derive(Debug)]
struct Pending {
    marker: String,
    error: GatewayError,
    /// The ReadyForQuery (counted from the session start) by which the server's reply must have come.
    /// A reply that never comes (the transaction was already aborted, so the server said 25P02 instead)
    /// is forgotten then.
    batch: u64,
}

/// State the two relay directions share: refusals in flight and the server's string-literal mode.
#[derive(Debug)]
pub(crate) struct Shared {
    nonce: String,
    next_id: AtomicUsize,
    pending_count: AtomicUsize,
    pending: Mutex<VecDeque<Pending>>,
    standard_conforming_strings: AtomicBool,
}

/// Server errors larger than this are never stand-in errors (those are a few hundred bytes).
pub(crate) const MAX_HELD_SERVER_MESSAGE: usize = 16 * 1024;

impl Shared {
    pub(crate) fn new(standard_conforming_strings: bool) -> Self {
        Shared {
            nonce: format!("{:016x}", rand::random::<u64>()),
            next_id: AtomicUsize::new(0),
            pending_count: AtomicUsize::new(0),
            pending: Mutex::new(VecDeque::new()),
            standard_conforming_strings: AtomicBool::new(standard_conforming_strings),
        }
    }

    pub(crate) fn state(&self, batch: u64) -> SessionState {
        SessionState {
            standard_conforming_strings: self.standard_conforming_strings.load(Ordering::Relaxed),
            batch,
        }
    }

    pub(crate) fn set_standard_conforming_strings(&self, on: bool) {
        self.standard_conforming_strings.store(on, Ordering::Relaxed);
    }

    /// Whether any refusal awaits its server error (cheap: no lock).
    pub(crate) fn awaiting(&self) -> bool {
        self.pending_count.load(Ordering::Acquire) > 0
    }

    /// Records a refusal and returns the stand-in message to send upstream in place of `statement`.
    /// `batch` is the ReadyForQuery that will close the stand-in's batch.
    pub(crate) fn refuse(&self, statement: &Statement<'_>, error: GatewayError, batch: u64) -> Vec<u8> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let marker = format!("portcullis:refused:{}:{id}", self.nonce);
        let sql = format!("SELECT '{marker}'::pg_catalog.int4");
        let mut out = Vec::with_capacity(sql.len() + 32);
        match statement {
            Statement::Parse { name, .. } => put_message(&mut out, b'P', |b| {
                put_cstr(b, name);
                put_cstr(b, &sql);
                b.extend_from_slice(&0i16.to_be_bytes());
            }),
            // A failing Parse of a name no one uses: the batch fails where the Bind would have, and the
            // client's prepared statements are untouched.
            Statement::Bind { .. } => put_message(&mut out, b'P', |b| {
                put_cstr(b, &format!("portcullis_refused_{id}"));
                put_cstr(b, &sql);
                b.extend_from_slice(&0i16.to_be_bytes());
            }),
            // A Query and a FunctionCall both answer with an error and then ReadyForQuery.
            Statement::Query { .. } | Statement::FunctionCall { .. } => {
                put_message(&mut out, b'Q', |b| put_cstr(b, &sql))
            }
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.push_back(Pending { marker, error, batch });
            self.pending_count.store(pending.len(), Ordering::Release);
        }
        out
    }

    /// If `error_body` is the server's answer to a stand-in, the gateway's error to send instead.
    pub(crate) fn replacement(&self, error_body: &[u8]) -> Option<GatewayError> {
        let mut pending = self.pending.lock().ok()?;
        let index = pending
            .iter()
            .position(|p| contains(error_body, p.marker.as_bytes()))?;
        let found = pending.remove(index).map(|p| p.error);
        self.pending_count.store(pending.len(), Ordering::Release);
        found
    }

    /// The server sent its `batch`-th ReadyForQuery: refusals of that batch or earlier are settled.
    pub(crate) fn batch_done(&self, batch: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|p| p.batch > batch);
            self.pending_count.store(pending.len(), Ordering::Release);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frontend::{FrontendMessage, decode};

    #[test]
    fn stand_ins_keep_the_statement_name_and_are_recognised_once() {
        let shared = Shared::new(true);
        let parse = Statement::Parse {
            name: "s1",
            sql: "DROP TABLE t",
        };
        let bytes = shared.refuse(&parse, GatewayError::error("42501", "no"), 1);
        let body = bytes.get(5..).unwrap();
        let FrontendMessage::Parse { statement, sql, .. } = decode(b'P', body).unwrap() else {
            panic!("not a Parse")
        };
        assert_eq!(statement, "s1");
        assert!(sql.starts_with("SELECT 'portcullis:refused:"));
        assert!(shared.awaiting());
        let server_error = format!(
            "SERROR\0C22P02\0Minvalid input syntax: \"{}\"\0\0",
            &sql[8..sql.len() - 18]
        );
        assert_eq!(shared.replacement(server_error.as_bytes()).unwrap().code, "42501");
        assert!(!shared.awaiting());
        assert!(shared.replacement(server_error.as_bytes()).is_none());
    }

    #[test]
    fn unanswered_refusals_expire_with_their_batch() {
        let shared = Shared::new(true);
        let query = Statement::Query { sql: "DROP TABLE t" };
        shared.refuse(&query, GatewayError::error("42501", "no"), 3);
        shared.batch_done(2);
        assert!(shared.awaiting());
        shared.batch_done(3);
        assert!(!shared.awaiting());
    }

    #[test]
    fn decodes_statement_messages() {
        assert_eq!(
            Statement::decode(b'P', b"s\0select 1\0\0\0").unwrap(),
            Statement::Parse {
                name: "s",
                sql: "select 1"
            }
        );
        assert_eq!(
            Statement::decode(b'F', &[0, 0, 0x0f, 0xa0, 0, 0]).unwrap(),
            Statement::FunctionCall { function_oid: 4000 }
        );
        assert!(Statement::decode(b'Q', b"no nul").is_err());
    }
}
