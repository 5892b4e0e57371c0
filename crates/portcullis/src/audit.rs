//! The audit trail in the running gateway: the store and its group-commit log, each session's recorder
//! (statements before they are forwarded, outcomes as they complete), operator controls (kill, revoke)
//! read from the store, retention, and exports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_audit::{
    AuditError, AuditLog, AuditStore, Control, Draft, Durability, ErrorInfo, EventBody, ExportSink,
    ExportStats, Exporter, OutcomeEvent, ResultRecord, Revocation, SessionEndEvent, SessionStartEvent,
    SqliteStore,
};
use portcullis_core::Principal;
use portcullis_postgres::relay::Stop;
use portcullis_postgres::results::{Finished, ResultCaps, ResultSink, ResultTracker, Unit, UnitKind};
use portcullis_postgres::wire::backend::GatewayError;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::config::{AuditDurability, Config};
use crate::telemetry;

/// The audit trail of the running gateway. Shared by all sessions.
#[derive(Debug)]
pub struct Audit {
    pub log: AuditLog,
    pub caps: ResultCaps,
    /// Bytes of each HTTP body recorded (`[audit] http_body_bytes`).
    pub http_body_bytes: usize,
    pub controls: Arc<Controls>,
}

impl Audit {
    /// Opens the store, starts the writer, loads standing revocations, and starts the control poller,
    /// retention and exports.
    pub fn start(config: &Config) -> anyhow::Result<Arc<Audit>> {
        let path = config.audit_path();
        let durability = match config.audit.durability {
            AuditDurability::Fsync => Durability::Fsync,
            AuditDurability::Os => Durability::Os,
        };
        let log = AuditLog::start(Box::new(SqliteStore::open_writer(&path, durability)?))?;
        checkpoint_periodically(SqliteStore::open(&path)?);
        let open = move || SqliteStore::open(&path).map(|s| Box::new(s) as Box<dyn AuditStore>);
        let controls = Arc::new(Controls::default());
        let mut reader = open()?;
        let last = controls.apply_all(reader.controls_after(0)?);
        let audit = Arc::new(Audit {
            log,
            caps: ResultCaps {
                rows: config.audit.result_rows,
                bytes: config.audit.result_bytes,
            },
            http_body_bytes: config.audit.http_body_bytes,
            controls,
        });
        poll_controls(
            Arc::clone(&audit.controls),
            reader,
            last,
            config.audit.control_interval,
        );
        if let Some(retention) = config.audit.retention {
            prune_periodically(open()?, retention, config.audit.prune_interval);
        }
        let mut exports = Vec::new();
        for export in &config.audit.exports {
            let sink = match (&export.jsonl, &export.webhook) {
                (Some(path), _) if path.as_os_str() == "-" => ExportSink::Stdout,
                (Some(path), _) => ExportSink::File(config.base_dir.join(path)),
                (None, Some(url)) => ExportSink::Webhook {
                    url: url.clone(),
                    timeout: export.timeout,
                },
                (None, None) => continue,
            };
            let stats = Arc::new(ExportStats::default());
            Exporter::spawn(
                export.name.clone(),
                sink,
                open()?,
                audit.log.committed(),
                Arc::clone(&stats),
            );
            exports.push((export.name.clone(), stats));
        }
        report_stats(audit.log.clone(), exports);
        Ok(audit)
    }
}

/// A new session id: time-ordered (milliseconds, hex) with 24 random bits, 16 characters.
pub fn new_session_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!(
        "{:010x}{:06x}",
        ms & 0xff_ffff_ffff,
        rand::random::<u32>() & 0xff_ffff
    )
}

/// What the gateway says when it cannot record a statement: it was not run.
pub fn store_failure(e: &AuditError) -> GatewayError {
    telemetry::audit_failure();
    // A failed write is logged once per group by the writer (with how many events it held); each refused
    // statement only at debug. Anything else (the writer gone) has no other log line.
    match e {
        AuditError::Store(_) => {
            debug!(error = %e, "audit store failed; refusing the statement (fail closed)")
        }
        _ => error!(error = %e, "audit store failed; refusing the statement (fail closed)"),
    }
    GatewayError::error(
        "58030",
        "Portcullis could not record this statement in its audit trail, so it was not run",
    )
    .with_hint("the audit store is failing; the gateway's operator can see why in its log")
}

/// One session's recording: its id, its statement numbering, and the pairing of replies to statements.
#[derive(Debug, Clone)]
pub struct SessionRecorder {
    pub log: AuditLog,
    pub session: Arc<str>,
    pub tracker: Arc<Mutex<ResultTracker>>,
}

impl SessionRecorder {
    pub fn new(audit: &Audit, session: &str) -> Self {
        SessionRecorder {
            log: audit.log.clone(),
            session: Arc::from(session),
            tracker: Arc::new(Mutex::new(ResultTracker::new(audit.caps))),
        }
    }

    /// Records the session's start and waits until it is stored: no session runs unrecorded.
    pub async fn start(&self, event: SessionStartEvent) -> Result<(), AuditError> {
        self.log
            .commit(self.draft(EventBody::SessionStart(event)))
            .await
            .map(|_| ())
    }

    pub fn draft(&self, body: EventBody) -> Draft {
        Draft::now(&*self.session, body)
    }

    /// The statement numbered `id` is about to be forwarded (or its stand-in, when `report` is false).
    pub fn sent(&self, id: u64, kind: UnitKind, batch: u64, report: bool) {
        if let Ok(mut tracker) = self.tracker.lock() {
            tracker.sent(Unit {
                id,
                kind,
                batch,
                report,
                sent: Instant::now(),
            });
        }
    }

    /// Records the end of the session (not waited for: nothing follows it).
    pub fn end(&self, reason: &str, detail: String, statements: u64, refused: u64, started: Instant) {
        self.log.submit(self.draft(EventBody::SessionEnd(SessionEndEvent {
            reason: reason.to_owned(),
            detail,
            statements,
            refused,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })));
    }
}

/// The server-to-client half of a session's recording: outcomes, submitted as they complete. Records
/// nothing when the audit trail is off.
#[derive(Debug)]
pub struct OutcomeRecorder(pub Option<SessionRecorder>);

impl ResultSink for OutcomeRecorder {
    fn enabled(&self) -> bool {
        self.0.is_some()
    }

    fn wants(&self, tag: u8, len: usize) -> bool {
        self.0
            .as_ref()
            .is_some_and(|r| r.tracker.lock().is_ok_and(|t| t.wants(tag, len)))
    }

    fn masked(&mut self, counts: &portcullis_mask::Counts) {
        if let Some(recorder) = &self.0
            && let Ok(mut tracker) = recorder.tracker.lock()
        {
            tracker.masked(counts);
        }
    }

    fn message(&mut self, tag: u8, body: &[u8]) {
        let Some(recorder) = &self.0 else { return };
        let finished = match recorder.tracker.lock() {
            Ok(mut tracker) => tracker.message(tag, body),
            Err(_) => return,
        };
        for f in finished {
            recorder
                .log
                .submit(recorder.draft(EventBody::Outcome(outcome(f))));
        }
    }
}

fn outcome(f: Finished) -> OutcomeEvent {
    let recorded = !f.columns.is_empty() || !f.cells.is_empty();
    let result = recorded.then_some(ResultRecord {
        columns: f.columns,
        rows: f.cells,
        truncated: f.truncated,
    });
    OutcomeEvent {
        n: f.id,
        ran: f.ran,
        tags: f.tags,
        rows: f.rows,
        duration_us: u64::try_from(f.duration.as_micros()).unwrap_or(u64::MAX),
        error: f.error.map(|(sqlstate, message)| ErrorInfo { sqlstate, message }),
        result,
        masked: f
            .masked
            .iter()
            .map(|(reason, n)| (reason.name().to_owned(), n))
            .collect(),
        body: None,
    }
}

/// Live sessions and standing revocations, as instructed through the store.
#[derive(Debug, Default)]
pub struct Controls {
    live: Mutex<HashMap<String, Live>>,
    revocations: RwLock<Vec<Revocation>>,
}

#[derive(Debug)]
struct Live {
    issuer: String,
    issuer_alias: String,
    subject: String,
    stop: Option<oneshot::Sender<Stop>>,
}

/// Removes a session from the live set when it ends.
#[derive(Debug)]
pub struct LiveSession {
    controls: Arc<Controls>,
    session: String,
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        if let Ok(mut live) = self.controls.live.lock() {
            live.remove(&self.session);
        }
    }
}

impl Controls {
    /// The revocation that bars `principal` now, if any.
    pub fn revoked(&self, principal: &Principal) -> Option<Revocation> {
        let now = portcullis_audit::now_us();
        self.revocations
            .read()
            .ok()?
            .iter()
            .find(|r| bars(r, principal, now))
            .cloned()
    }

    /// Registers a live session; the receiver fires when an operator ends it.
    pub fn register(
        self: &Arc<Self>,
        session: &str,
        principal: &Principal,
    ) -> (oneshot::Receiver<Stop>, LiveSession) {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut live) = self.live.lock() {
            live.insert(
                session.to_owned(),
                Live {
                    issuer: principal.issuer.clone(),
                    issuer_alias: principal.issuer_alias.clone(),
                    subject: principal.subject.clone(),
                    stop: Some(tx),
                },
            );
        }
        (
            rx,
            LiveSession {
                controls: Arc::clone(self),
                session: session.to_owned(),
            },
        )
    }

    /// Applies instructions in order; returns the last id seen.
    fn apply_all(&self, controls: Vec<Control>) -> i64 {
        let mut last = 0;
        for control in controls {
            last = last.max(self.apply(control));
        }
        last
    }

    fn apply(&self, control: Control) -> i64 {
        match control {
            Control::Kill { id, session } => {
                let stop = self
                    .live
                    .lock()
                    .ok()
                    .and_then(|mut live| live.get_mut(&session).and_then(|l| l.stop.take()));
                if let Some(stop) = stop {
                    info!(session = %session, "session killed by an operator");
                    let _ = stop.send(Stop {
                        label: "killed",
                        error: GatewayError::fatal(
                            "57P01",
                            "terminating connection: an operator ended this session",
                        ),
                    });
                }
                id
            }
            Control::Revoke { id, revocation } => {
                let now = portcullis_audit::now_us();
                let mut ended = 0;
                if let Ok(mut live) = self.live.lock() {
                    for l in live.values_mut() {
                        if revocation.bars(&l.issuer, &l.issuer_alias, &l.subject, now)
                            && let Some(stop) = l.stop.take()
                        {
                            ended += 1;
                            let _ = stop.send(Stop {
                                label: "revoked",
                                error: GatewayError::fatal(
                                    "57P01",
                                    "terminating connection: this identity was revoked by an operator",
                                ),
                            });
                        }
                    }
                }
                if ended > 0 || revocation.until_us.is_none_or(|u| u > now) {
                    info!(subject = %revocation.subject, issuer = ?revocation.issuer, until_us = ?revocation.until_us,
                        live_sessions_ended = ended, "identity revoked");
                }
                if let Ok(mut list) = self.revocations.write() {
                    list.retain(|r| r.until_us.is_none_or(|u| u > now));
                    list.push(revocation);
                }
                id
            }
        }
    }
}

fn bars(r: &Revocation, p: &Principal, now_us: i64) -> bool {
    r.bars(&p.issuer, &p.issuer_alias, &p.subject, now_us)
}

/// Reads new control instructions from the store every `interval`.
fn poll_controls(controls: Arc<Controls>, reader: Box<dyn AuditStore>, last: i64, interval: Duration) {
    let last = Arc::new(AtomicI64::new(last));
    let seen = Arc::clone(&last);
    every(
        interval,
        "reading operator controls from the audit store",
        reader,
        move |r| r.controls_after(seen.load(Ordering::Relaxed)),
        move |new| {
            last.fetch_max(controls.apply_all(new), Ordering::Relaxed);
        },
    );
}

/// Checkpoints the store's write-ahead log every second, off the writer's path.
fn checkpoint_periodically(store: SqliteStore) {
    every(
        Duration::from_secs(1),
        "checkpointing the audit store",
        store,
        SqliteStore::checkpoint_wal,
        |()| {},
    );
}

/// Prunes events older than `retention`, at start and every `interval`.
fn prune_periodically(store: Box<dyn AuditStore>, retention: Duration, interval: Duration) {
    let age = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
    every(
        interval,
        "pruning the audit store",
        store,
        move |s| s.prune(portcullis_audit::now_us().saturating_sub(age)),
        |report| {
            if report.removed > 0 {
                telemetry::audit_pruned(report.removed);
                info!(removed = report.removed, checkpoint = ?report.checkpoint.map(|c| c.seq), "audit events pruned");
            }
        },
    );
}

/// Runs `work` on `store` at once and then every `interval`, on a blocking thread (store calls are
/// synchronous I/O), and hands each result to `then`; a failure is logged and the next tick tries again.
fn every<S, T>(
    interval: Duration,
    what: &'static str,
    store: S,
    work: impl Fn(&mut S) -> Result<T, AuditError> + Send + Sync + 'static,
    mut then: impl FnMut(T) + Send + 'static,
) where
    S: Send + 'static,
    T: Send + 'static,
{
    let job = Arc::new((Mutex::new(store), work));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let job = Arc::clone(&job);
            let done = tokio::task::spawn_blocking(move || {
                let (store, work) = &*job;
                match store.lock() {
                    Ok(mut s) => work(&mut s),
                    Err(_) => Err(AuditError::Closed),
                }
            })
            .await;
            match done {
                Ok(Ok(value)) => then(value),
                Ok(Err(e)) => warn!(error = %e, "{what} failed"),
                Err(e) => warn!(error = %e, "{what} failed"),
            }
        }
    });
}

/// Copies the writer's and the exports' counters into the metrics once a second.
fn report_stats(log: AuditLog, exports: Vec<(String, Arc<ExportStats>)>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            telemetry::audit_stats(log.stats());
            for (name, stats) in &exports {
                telemetry::audit_export_stats(name, stats);
            }
        }
    });
}
