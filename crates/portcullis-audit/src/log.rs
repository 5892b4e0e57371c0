//! Group commit: every session hands its events to one writer thread, which stores whatever has queued
//! up in one transaction and then answers every waiter. Concurrent sessions share the cost of a commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::{oneshot, watch};
use tracing::error;

use crate::event::Draft;
use crate::store::{AuditError, AuditStore, Sealed};

/// The most events stored in one transaction.
const MAX_GROUP: usize = 4096;

struct Request {
    draft: Draft,
    reply: Option<oneshot::Sender<Result<Sealed, String>>>,
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
    /// not let the event's statement through.
    pub async fn commit(&self, draft: Draft) -> Result<Sealed, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                draft,
                reply: Some(reply),
            })
            .map_err(|_| AuditError::Closed)?;
        match answer.await {
            Ok(Ok(sealed)) => Ok(sealed),
            Ok(Err(message)) => Err(AuditError::Store(message)),
            Err(_) => Err(AuditError::Closed),
        }
    }

    /// Records `draft` without waiting. It is stored after every event submitted before it, so an event
    /// committed later implies this one is stored too.
    pub fn submit(&self, draft: Draft) {
        if self.tx.send(Request { draft, reply: None }).is_err() {
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
    let mut group = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let drafts: Vec<Draft> = group.iter().map(|r| r.draft.clone()).collect();
        let started = Instant::now();
        let result = store.append(&drafts);
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
                for (request, sealed) in group.drain(..).zip(sealed) {
                    if let Some(reply) = request.reply {
                        let _ = reply.send(Ok(sealed));
                    }
                }
            }
            Err(e) => {
                stats.failures.fetch_add(drafts.len() as u64, Ordering::Relaxed);
                error!(error = %e, events = drafts.len(), "audit store write failed; the statements waiting on it are refused");
                let message = e.to_string();
                for request in group.drain(..) {
                    if let Some(reply) = request.reply {
                        let _ = reply.send(Err(message.clone()));
                    }
                }
            }
        }
        group.clear();
    }
}
