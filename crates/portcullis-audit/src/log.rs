//! Group commit: every session hands its events to one writer thread, which stores whatever has queued
//! up in one transaction and then answers every waiter. Concurrent sessions share the cost of a commit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{oneshot, watch};
use tracing::error;

use crate::event::Draft;
use crate::store::{AuditError, AuditStore, Sealed};

/// The most events stored in one transaction.
const MAX_GROUP: usize = 4096;

/// An event with its canonical body, encoded by the session that records it (in parallel, off the
/// writer).
struct Encoded {
    draft: Draft,
    body: String,
}

impl Encoded {
    fn new(draft: Draft) -> Encoded {
        Encoded {
            body: draft.body_json(),
            draft,
        }
    }
}

/// What a session hands the writer: one event (most of them), or several that are stored in order in
/// the same commit, for one channel message, one wake-up and one answer.
// One event, the common case, moves through the channel as it did before, without an allocation.
#[allow(clippy::large_enum_variant)]
enum Events {
    One(Encoded),
    Many(Vec<Encoded>),
}

impl Events {
    fn of(drafts: Vec<Draft>) -> Events {
        Events::Many(drafts.into_iter().map(Encoded::new).collect())
    }
}

struct Request {
    events: Events,
    /// Answered with the last event's seal once all of them are stored.
    reply: Option<oneshot::Sender<Result<Sealed, String>>>,
}

/// Events queued for a commit: resolves when they are stored (their last one's seal), or with why
/// they were not.
#[derive(Debug)]
#[must_use = "the events are queued, but nothing says whether they were stored until this is awaited"]
pub struct Committing(Result<oneshot::Receiver<Result<Sealed, String>>, Option<AuditError>>);

impl Future for Committing {
    type Output = Result<Sealed, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Ok(answer) => Pin::new(answer).poll(cx).map(|answer| match answer {
                Ok(Ok(sealed)) => Ok(sealed),
                Ok(Err(message)) => Err(AuditError::Store(message)),
                Err(_) => Err(AuditError::Closed),
            }),
            Err(error) => Poll::Ready(Err(error.take().unwrap_or(AuditError::Closed))),
        }
    }
}

/// Counters of the writer, read by the gateway's metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    pub events: AtomicU64,
    pub commits: AtomicU64,
    pub failures: AtomicU64,
    /// Time spent in `append`, summed, in microseconds.
    pub commit_us: AtomicU64,
}

/// The handle sessions record through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Request>,
    committed: watch::Receiver<u64>,
    stats: Arc<LogStats>,
}

impl AuditLog {
    /// Starts the writer thread over `store`.
    pub fn start(store: Box<dyn AuditStore>) -> Result<AuditLog, AuditError> {
        let (tx, rx) = mpsc::channel();
        let (committed_tx, committed) = watch::channel(0);
        let stats = Arc::new(LogStats::default());
        let writer_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(store, rx, committed_tx, writer_stats))
            .map_err(|e| AuditError::Store(format!("starting the writer: {e}")))?;
        Ok(AuditLog { tx, committed, stats })
    }

    /// Records `draft` and waits until it is durably stored. An error means it was not: the caller must
    /// not let the event's statement through. The event is queued when this is called, not when the
    /// answer is awaited: what a caller queues under a lock is stored in that order.
    pub fn commit(&self, draft: Draft) -> Committing {
        self.send_and_wait(Events::One(Encoded::new(draft)))
    }

    /// Records `drafts`, in order and in one commit, and waits until all are durably stored; the
    /// answer is the last one's seal. An error means none was stored. Queued when called, as
    /// [`AuditLog::commit`].
    pub fn commit_all(&self, drafts: Vec<Draft>) -> Committing {
        if drafts.is_empty() {
            return Committing(Err(Some(AuditError::Store("no events to commit".to_owned()))));
        }
        self.send_and_wait(Events::of(drafts))
    }

    fn send_and_wait(&self, events: Events) -> Committing {
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send(Request {
            events,
            reply: Some(reply),
        });
        Committing(match sent {
            Ok(()) => Ok(answer),
            Err(_) => Err(Some(AuditError::Closed)),
        })
    }

    /// Records `draft` without waiting. It is stored after every event submitted before it, so an event
    /// committed later implies this one is stored too.
    pub fn submit(&self, draft: Draft) {
        self.send(Events::One(Encoded::new(draft)));
    }

    /// Records `drafts`, in order and in one commit, without waiting.
    pub fn submit_all(&self, drafts: Vec<Draft>) {
        self.send(Events::of(drafts));
    }

    fn send(&self, events: Events) {
        if self.tx.send(Request { events, reply: None }).is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The sequence number of the newest stored event; changes as commits land (exporters wait on it).
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }
}

fn write_loop(
    mut store: Box<dyn AuditStore>,
    rx: mpsc::Receiver<Request>,
    committed: watch::Sender<u64>,
    stats: Arc<LogStats>,
) {
    let mut drafts = Vec::new();
    let mut bodies = Vec::new();
    let mut replies = Vec::new();
    while let Ok(first) = rx.recv() {
        // Everything queued while the last commit ran joins this one: no timer, the group size follows
        // the load. (Waiting up to 200 µs for groups to fill, as PostgreSQL's commit_delay does, was
        // measured and gained nothing here: the writer's CPU per event, not the fsync count, limits it.)
        let mut next = Some(first);
        while let Some(request) = next.take() {
            // One reply per event, the request's on its last: a request's events never straddle
            // two commits.
            match request.events {
                Events::One(event) => {
                    drafts.push(event.draft);
                    bodies.push(event.body);
                    replies.push(request.reply);
                }
                Events::Many(events) => {
                    let mut reply = request.reply;
                    let last = events.len();
                    for (i, event) in events.into_iter().enumerate() {
                        drafts.push(event.draft);
                        bodies.push(event.body);
                        replies.push(if i + 1 == last { reply.take() } else { None });
                    }
                }
            }
            if drafts.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        let started = Instant::now();
        let result = store.append_encoded(&drafts, &bodies);
        stats.commit_us.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match result {
            Ok(sealed) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.events.fetch_add(drafts.len() as u64, Ordering::Relaxed);
                if let Some(last) = sealed.last() {
                    committed.send_replace(last.seq);
                }
                for (reply, sealed) in replies.drain(..).zip(sealed) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(sealed));
                    }
                }
            }
            Err(e) => {
                stats.failures.fetch_add(drafts.len() as u64, Ordering::Relaxed);
                error!(error = %e, events = drafts.len(), "audit store write failed; the statements waiting on it are refused");
                let message = e.to_string();
                for reply in replies.drain(..).flatten() {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
        drafts.clear();
        bodies.clear();
        replies.clear();
    }
}
