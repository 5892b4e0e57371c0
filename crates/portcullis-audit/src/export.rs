//! Export: tails the store and delivers every committed event, in order and at least once, to a sink.
//!
//! The exporter reads what the writer already made durable, so the data path never waits for it: a slow or
//! failing sink only makes the export lag (counted in [`ExportStats`]), it never slows or refuses a commit.
//! Its position is a cursor in the store, saved after each delivered batch, so a restart resumes there;
//! a crash between delivering and saving delivers that batch again (at least once, never lost).

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::event::StoredEvent;
use crate::store::{AuditError, AuditStore};

/// The most events delivered in one batch (one file sync, one webhook request).
const BATCH: usize = 500;
/// How often the store is read even when no commit was signalled: another gateway may share the store,
/// and a freshly started log reports 0 until its first commit.
const POLL: Duration = Duration::from_secs(1);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where an exporter delivers events.
#[derive(Clone)]
pub enum ExportSink {
    /// One JSON object per line on standard output.
    Stdout,
    /// One JSON object per line, appended to this file (created with mode 0600), synced per batch.
    File(PathBuf),
    /// Each batch POSTed as a JSON array; any 2xx answer is delivery.
    Webhook { url: String, timeout: Duration },
}

impl fmt::Debug for ExportSink {
    // Webhook URLs often carry a secret (user info, a token in the path or query): show only the origin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportSink::Stdout => f.write_str("Stdout"),
            ExportSink::File(path) => f.debug_tuple("File").field(path).finish(),
            ExportSink::Webhook { url, timeout } => f
                .debug_struct("Webhook")
                .field("url", &redacted_origin(url))
                .field("timeout", timeout)
                .finish(),
        }
    }
}

/// Counters of one exporter, read by the gateway's metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Events delivered (a batch delivered again after a restart counts again).
    pub delivered: AtomicU64,
    pub batches: AtomicU64,
    /// Failed delivery attempts.
    pub failures: AtomicU64,
    /// Events committed but not yet delivered, as of the exporter's last look.
    pub lag: AtomicU64,
    pub last_delivered_seq: AtomicU64,
}

/// One exporter: a task that follows the store from its saved cursor and delivers to its sink.
pub struct Exporter {
    /// Names the cursor in the store and the exporter in logs and webhook requests.
    name: String,
    sink: Sink,
    store: StoreHandle,
    committed: watch::Receiver<u64>,
    stats: Arc<ExportStats>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("name", &self.name)
            .field("sink", &self.sink.kind())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Starts exporting from `store` (the exporter's own handle) to `sink`, waking when `committed`
    /// ([`crate::AuditLog::committed`]) moves. The task ends when the log closes and everything is
    /// delivered, or when the store fails for good; abort the handle to stop it sooner.
    pub fn spawn(
        name: String,
        sink: ExportSink,
        store: Box<dyn AuditStore>,
        committed: watch::Receiver<u64>,
        stats: Arc<ExportStats>,
    ) -> JoinHandle<()> {
        let exporter = Exporter {
            name,
            sink: Sink::new(sink),
            store: StoreHandle(Some(store)),
            committed,
            stats,
        };
        tokio::spawn(exporter.run())
    }

    async fn run(mut self) {
        let Some(mut cursor) = self.load_cursor().await else {
            return;
        };
        info!(exporter = %self.name, sink = self.sink.kind(), cursor, "audit export started");
        let mut backoff = Backoff::default();
        loop {
            // The next batch after the cursor: deliver it, or wait for commits when there is none.
            let batch = match self.store.call(move |s| s.events_after(cursor, BATCH)).await {
                Ok(batch) => batch,
                Err(AuditError::Closed) => {
                    error!(exporter = %self.name, "audit store lost; export stops");
                    return;
                }
                Err(e) => {
                    if backoff.streak == 0 {
                        warn!(exporter = %self.name, error = %e, "reading the audit store for export failed; retrying");
                    }
                    self.pause(backoff.fail(), cursor, cursor).await;
                    continue;
                }
            };
            backoff = Backoff::default();
            let Some(last) = batch.last().map(|e| e.seq) else {
                self.report_lag(cursor, cursor);
                match self.wait_for_commits(cursor).await {
                    Wake::Look => continue,
                    Wake::LogClosed => {
                        info!(exporter = %self.name, cursor, "audit log closed and everything delivered; export stops");
                        return;
                    }
                }
            };
            self.report_lag(cursor, last);
            self.deliver(&batch, cursor, last).await;
            self.stats
                .delivered
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats.last_delivered_seq.store(last, Ordering::Relaxed);
            cursor = last;
            self.report_lag(cursor, cursor);
            self.save_cursor(cursor).await;
        }
    }

    /// The saved cursor, retried with back-off while the store fails; `None` when the store is gone.
    async fn load_cursor(&mut self) -> Option<u64> {
        let mut backoff = Backoff::default();
        loop {
            let name = self.name.clone();
            match self.store.call(move |s| s.export_cursor(&name)).await {
                Ok(cursor) => return Some(cursor),
                Err(AuditError::Closed) => {
                    error!(exporter = %self.name, "audit store lost before export started");
                    return None;
                }
                Err(e) => {
                    warn!(exporter = %self.name, error = %e, "reading the export cursor failed; retrying");
                    self.pause(backoff.fail(), 0, 0).await;
                }
            }
        }
    }

    /// Delivers `batch` (the events after `cursor`, up to `last`), retrying the same batch with
    /// exponential back-off until the sink takes it. Only the first failure of a streak is logged.
    async fn deliver(&mut self, batch: &[StoredEvent], cursor: u64, last: u64) {
        let lines: Vec<String> = batch.iter().map(export_line).collect();
        let payload = self.sink.payload(&lines);
        let mut backoff = Backoff::default();
        loop {
            // The attempt may take up to the sink's timeout; the lag stays current meanwhile.
            let result = {
                let attempt = self.sink.deliver(&self.name, &payload);
                tokio::pin!(attempt);
                let mut log_open = true;
                loop {
                    tokio::select! {
                        result = &mut attempt => break result,
                        changed = self.committed.changed(), if log_open => match changed {
                            Ok(()) => report_lag(&self.stats, &self.committed, cursor, last),
                            Err(_) => log_open = false,
                        },
                    }
                }
            };
            match result {
                Ok(()) => {
                    if backoff.streak > 0 {
                        info!(exporter = %self.name, failures = backoff.streak, "audit export recovered");
                    }
                    return;
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if backoff.streak == 0 {
                        warn!(
                            exporter = %self.name, sink = self.sink.kind(), error = %e, from_seq = cursor + 1,
                            "audit export delivery failed; retrying with back-off (events wait in the store)"
                        );
                    }
                    self.pause(backoff.fail(), cursor, last).await;
                }
            }
        }
    }

    /// Saves the cursor. A failure is logged and otherwise ignored: the in-memory cursor moves on, and a
    /// restart before the next successful save delivers those events again.
    async fn save_cursor(&mut self, cursor: u64) {
        let name = self.name.clone();
        if let Err(e) = self.store.call(move |s| s.set_export_cursor(&name, cursor)).await {
            warn!(exporter = %self.name, error = %e, cursor, "saving the export cursor failed; a restart may deliver again");
        }
    }

    /// Waits until the log reports a commit past `cursor`, or for the poll interval.
    async fn wait_for_commits(&mut self, cursor: u64) -> Wake {
        let deadline = Instant::now() + POLL;
        loop {
            if *self.committed.borrow_and_update() > cursor {
                return Wake::Look;
            }
            match tokio::time::timeout_at(deadline, self.committed.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Wake::LogClosed,
                Err(_) => return Wake::Look,
            }
        }
    }

    /// Sleeps for `delay`, keeping the reported lag current as commits land meanwhile.
    async fn pause(&mut self, delay: Duration, cursor: u64, newest_read: u64) {
        let deadline = Instant::now() + delay;
        let mut log_open = true;
        while log_open {
            match tokio::time::timeout_at(deadline, self.committed.changed()).await {
                Ok(Ok(())) => self.report_lag(cursor, newest_read),
                Ok(Err(_)) => log_open = false,
                Err(_) => return,
            }
        }
        tokio::time::sleep_until(deadline).await;
    }

    fn report_lag(&self, cursor: u64, newest_read: u64) {
        report_lag(&self.stats, &self.committed, cursor, newest_read);
    }
}

/// Lag: the newest known event (committed, or read from the store) minus the cursor.
fn report_lag(stats: &ExportStats, committed: &watch::Receiver<u64>, cursor: u64, newest_read: u64) {
    let newest = (*committed.borrow()).max(newest_read);
    stats.lag.store(newest.saturating_sub(cursor), Ordering::Relaxed);
}

/// Why the exporter stopped waiting.
enum Wake {
    /// A commit landed past the cursor, or the poll interval passed: read the store.
    Look,
    /// The log's writer is gone and nothing is left past the cursor.
    LogClosed,
}

/// Exponential back-off: 100 ms doubling up to 30 s; `streak` counts the failures since the last success.
#[derive(Default)]
struct Backoff {
    streak: u32,
}

impl Backoff {
    /// Records a failure; returns how long to wait before the next attempt.
    fn fail(&mut self) -> Duration {
        let delay = BACKOFF_FIRST
            .checked_mul(1u32.checked_shl(self.streak.min(16)).unwrap_or(u32::MAX))
            .unwrap_or(BACKOFF_MAX)
            .min(BACKOFF_MAX);
        self.streak = self.streak.saturating_add(1);
        delay
    }
}

/// The exporter's store handle. Store calls block (SQLite), so each runs on the blocking pool; the handle
/// moves there and back, since a store serves one thread at a time.
struct StoreHandle(Option<Box<dyn AuditStore>>);

impl StoreHandle {
    /// Runs `f` on the store off the runtime. [`AuditError::Closed`] when the store was lost (a call
    /// panicked).
    async fn call<T, F>(&mut self, f: F) -> Result<T, AuditError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn AuditStore) -> Result<T, AuditError> + Send + 'static,
    {
        let mut store = self.0.take().ok_or(AuditError::Closed)?;
        let (store, result) = tokio::task::spawn_blocking(move || {
            let result = f(store.as_mut());
            (store, result)
        })
        .await
        .map_err(|_| AuditError::Closed)?;
        self.0 = Some(store);
        result
    }
}

/// A sink, with what delivering to it needs.
enum Sink {
    Stdout,
    File(PathBuf),
    Webhook {
        url: String,
        timeout: Duration,
        /// Built on first use, so a failure to build counts as a failed delivery and is retried.
        client: Option<reqwest::Client>,
    },
}

/// Why a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(reqwest::Error),
    #[error("webhook answered {0}")]
    Status(reqwest::StatusCode),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<reqwest::Error> for DeliveryError {
    // reqwest's messages quote the URL, which may hold a secret.
    fn from(e: reqwest::Error) -> Self {
        DeliveryError::Http(e.without_url())
    }
}

impl Sink {
    fn new(sink: ExportSink) -> Sink {
        match sink {
            ExportSink::Stdout => Sink::Stdout,
            ExportSink::File(path) => Sink::File(path),
            ExportSink::Webhook { url, timeout } => Sink::Webhook {
                url,
                timeout,
                client: None,
            },
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Sink::Stdout => "stdout",
            Sink::File(_) => "file",
            Sink::Webhook { .. } => "webhook",
        }
    }

    /// The bytes one batch becomes: JSON lines, or for a webhook one JSON array.
    fn payload(&self, lines: &[String]) -> Arc<[u8]> {
        let text = match self {
            Sink::Stdout | Sink::File(_) => lines.iter().fold(String::new(), |mut text, line| {
                text.push_str(line);
                text.push('\n');
                text
            }),
            Sink::Webhook { .. } => format!("[{}]", lines.join(",")),
        };
        Arc::from(text.into_bytes())
    }

    async fn deliver(&mut self, exporter: &str, payload: &Arc<[u8]>) -> Result<(), DeliveryError> {
        match self {
            Sink::Stdout => {
                let payload = Arc::clone(payload);
                // Blocking, under the lock: a full pipe must not stall the runtime, and a batch is not
                // interleaved with other writers of stdout in this process.
                tokio::task::spawn_blocking(move || {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&payload)?;
                    out.flush()
                })
                .await??;
                Ok(())
            }
            Sink::File(path) => {
                let (path, payload) = (path.clone(), Arc::clone(payload));
                tokio::task::spawn_blocking(move || append_synced(&path, &payload)).await??;
                Ok(())
            }
            Sink::Webhook { url, timeout, client } => {
                let client = match client {
                    Some(client) => client,
                    None => client.insert(reqwest::Client::builder().timeout(*timeout).build()?),
                };
                let response = client
                    .post(url.as_str())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Portcullis-Exporter", exporter)
                    .body(payload.to_vec())
                    .send()
                    .await?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError::Status(status))
                }
            }
        }
    }
}

/// Appends `payload` to the file at `path` and syncs it. The file is opened per batch so that a rotated
/// file (moved away by logrotate) is followed by a new one. On failure the part of the batch already
/// written is cut off again, so the retry does not leave a torn line (one exporter per file assumed).
fn append_synced(path: &std::path::Path, payload: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let start = file.metadata()?.len();
    let written = file.write_all(payload).and_then(|()| file.sync_data());
    if written.is_err() {
        let _ = file.set_len(start);
    }
    written
}

/// One exported event. `event` is the stored canonical body embedded verbatim, so a reader can recompute
/// the hash from these fields alone.
#[derive(Serialize)]
struct ExportLine<'a> {
    seq: u64,
    session: &'a str,
    at: String,
    at_us: i64,
    kind: &'a str,
    event: EventField<'a>,
    prev_hash: &'a str,
    hash: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EventField<'a> {
    Json(&'a RawValue),
    /// A stored body that is not JSON (tampering, or a bug) goes out as a string rather than being
    /// dropped or stalling the export; the chain check names it.
    Text(&'a str),
}

/// The JSON line of one event.
fn export_line(event: &StoredEvent) -> String {
    let body = match serde_json::from_str::<&RawValue>(&event.body) {
        Ok(raw) => EventField::Json(raw),
        Err(_) => {
            warn!(
                seq = event.seq,
                "stored event body is not JSON; exported as a string"
            );
            EventField::Text(&event.body)
        }
    };
    let line = ExportLine {
        seq: event.seq,
        session: &event.session,
        at: rfc3339_micros(event.at_us),
        at_us: event.at_us,
        kind: &event.kind,
        event: body,
        prev_hash: &event.prev_hash,
        hash: &event.hash,
    };
    // Cannot fail: strings, integers and already-validated raw JSON.
    serde_json::to_string(&line).unwrap_or_default()
}

/// `at_us` (µs since the Unix epoch) as RFC 3339 in UTC with microseconds: `2024-05-01T12:00:00.000001Z`.
fn rfc3339_micros(at_us: i64) -> String {
    let secs = at_us.div_euclid(1_000_000);
    let micros = at_us.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard Hinnant's
/// `civil_from_days` (eras of 400 years, years starting in March so the leap day comes last).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `scheme://host[:port]` of a URL, without user info, path or query (which may hold secrets).
fn redacted_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}/…")
}
