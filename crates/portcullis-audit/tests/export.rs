//! Export end to end: a SQLite store, the group-commit log, an exporter, and a real file or HTTP server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use portcullis_audit::{
    AuditLog, AuditStore, Draft, EventBody, ExportSink, ExportStats, Exporter, SqliteStore, StatementEvent,
    StoredEvent, event_hash,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn open(path: &Path) -> Box<dyn AuditStore> {
    Box::new(SqliteStore::open(path).unwrap())
}

fn statement(session: &str, at_us: i64, n: u64) -> Draft {
    Draft {
        session: session.into(),
        at_us,
        body: EventBody::Statement(StatementEvent {
            n,
            message: "query".into(),
            prepared: None,
            text: format!("SELECT {n} -- \"quoted\" \\ ünïcode"),
            params: vec![Some("1".into()), None],
            statements: Vec::new(),
            decision: "allow".into(),
            policies: vec!["read-only".into()],
            reason: String::new(),
            body: None,
        }),
    }
}

/// Commits `count` statements of session `s`, numbered from `first`, one after another.
async fn commit_n(log: &AuditLog, first: u64, count: u64) {
    for n in first..first + count {
        log.commit(statement("s", 1_700_000_000_000_000 + n as i64, n))
            .await
            .unwrap();
    }
}

fn spawn(
    name: &str,
    sink: ExportSink,
    path: &Path,
    log: &AuditLog,
) -> (tokio::task::JoinHandle<()>, Arc<ExportStats>) {
    let stats = Arc::new(ExportStats::default());
    let task = Exporter::spawn(name.into(), sink, open(path), log.committed(), Arc::clone(&stats));
    (task, stats)
}

/// Polls `done` every 20 ms until it holds; fails the test after [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn seqs(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect()
}

fn cursor(path: &Path, name: &str) -> u64 {
    open(path).export_cursor(name).unwrap()
}

/// What a webhook does with each request, by its 0-based index.
#[derive(Clone, Copy)]
enum Behaviour {
    FailFirst(usize),
    AlwaysFail,
    Hang,
}

/// A webhook receiver on 127.0.0.1: records every request, accepted or not.
struct Hook {
    behaviour: Behaviour,
    requests: Mutex<Vec<Received>>,
}

#[derive(Clone)]
struct Received {
    accepted: bool,
    exporter: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

impl Hook {
    async fn start(behaviour: Behaviour) -> (Arc<Hook>, String) {
        let hook = Arc::new(Hook {
            behaviour,
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/hook/secret-token", post(receive))
            .with_state(Arc::clone(&hook));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret-token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, url)
    }

    fn accepted(&self) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.accepted)
            .cloned()
            .collect()
    }

    /// The sequence numbers of every accepted event, in arrival order.
    fn accepted_seqs(&self) -> Vec<u64> {
        self.accepted()
            .iter()
            .flat_map(|r| {
                let batch: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
                batch.into_iter().map(|e| e["seq"].as_u64().unwrap())
            })
            .collect()
    }
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let index = hook.requests.lock().unwrap().len();
    let status = match hook.behaviour {
        Behaviour::FailFirst(n) if index < n => StatusCode::SERVICE_UNAVAILABLE,
        Behaviour::FailFirst(_) => StatusCode::OK,
        Behaviour::AlwaysFail => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    hook.requests.lock().unwrap().push(Received {
        accepted: status.is_success(),
        exporter: header("x-portcullis-exporter"),
        content_type: header("content-type"),
        body,
    });
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_export_writes_every_event_as_a_verifiable_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = AuditLog::start(open(&db)).unwrap();
    // Timestamps around the edges of the RFC 3339 formatting: the epoch, before it, leap days.
    let stamps = [
        (0, "1970-01-01T00:00:00.000000Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (951_782_400_000_000, "2000-02-29T00:00:00.000000Z"),
        (1_709_251_199_123_456, "2024-02-29T23:59:59.123456Z"),
        (1_735_689_600_000_001, "2025-01-01T00:00:00.000001Z"),
    ];
    for (i, (at_us, _)) in stamps.iter().enumerate() {
        log.commit(statement("edge", *at_us, i as u64 + 1)).await.unwrap();
    }
    commit_n(&log, 1, 15).await;

    let file = dir.path().join("export.jsonl");
    let (task, stats) = spawn("jsonl", ExportSink::File(file.clone()), &db, &log);
    eventually("20 lines in the file", || lines(&file).len() >= 20).await;
    eventually("the cursor at 20", || cursor(&db, "jsonl") == 20).await;

    let stored: Vec<StoredEvent> = open(&db).events_after(0, 100).unwrap();
    let written = lines(&file);
    assert_eq!(written.len(), 20);
    assert_eq!(seqs(&written), (1..=20).collect::<Vec<_>>());
    for (line, event) in written.iter().zip(&stored) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], event.seq);
        assert_eq!(v["session"], event.session.as_str());
        assert_eq!(v["at_us"], event.at_us);
        assert_eq!(v["kind"], "statement");
        assert_eq!(v["prev_hash"], event.prev_hash.as_str());
        assert_eq!(v["hash"], event.hash.as_str());
        assert_eq!(v["event"]["type"], "statement");
        // The body is embedded byte for byte, so the hash can be recomputed from the line alone.
        assert!(line.contains(&format!(",\"event\":{},", event.body)), "{line}");
        assert_eq!(
            event_hash(
                v["prev_hash"].as_str().unwrap(),
                event.seq,
                &event.session,
                event.at_us,
                "statement",
                &event.body
            ),
            event.hash
        );
    }
    for (line, (_, at)) in written.iter().zip(stamps) {
        assert_eq!(serde_json::from_str::<Value>(line).unwrap()["at"], at);
    }
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 20);
    assert_eq!(stats.last_delivered_seq.load(Ordering::Relaxed), 20);
    assert_eq!(stats.failures.load(Ordering::Relaxed), 0);
    assert_eq!(stats.lag.load(Ordering::Relaxed), 0);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_failures_then_delivers_in_order_and_saves_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = AuditLog::start(open(&db)).unwrap();
    commit_n(&log, 1, 30).await;

    let (hook, url) = Hook::start(Behaviour::FailFirst(3)).await;
    let sink = ExportSink::Webhook {
        url: url.clone(),
        timeout: Duration::from_secs(5),
    };
    let (task, stats) = spawn("siem", sink, &db, &log);
    eventually("the cursor at 30", || cursor(&db, "siem") == 30).await;
    task.abort();
    let _ = task.await;

    assert_eq!(hook.accepted_seqs(), (1..=30).collect::<Vec<_>>());
    // All 30 were stored before the exporter started: one batch, refused three times, then taken.
    assert_eq!(hook.requests.lock().unwrap().len(), 4);
    assert_eq!(stats.failures.load(Ordering::Relaxed), 3);
    assert_eq!(stats.batches.load(Ordering::Relaxed), 1);
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 30);
    let request = hook.accepted().remove(0);
    assert_eq!(request.exporter.as_deref(), Some("siem"));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));

    // A second exporter of the same name starts from the saved cursor: only what is new.
    let (hook2, url2) = Hook::start(Behaviour::FailFirst(0)).await;
    let sink = ExportSink::Webhook {
        url: url2,
        timeout: Duration::from_secs(5),
    };
    let (task, _) = spawn("siem", sink, &db, &log);
    commit_n(&log, 31, 5).await;
    eventually("the cursor at 35", || cursor(&db, "siem") == 35).await;
    task.abort();
    assert_eq!(hook2.accepted_seqs(), (31..=35).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_hanging_sinks_do_not_slow_commits_and_report_lag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let log = AuditLog::start(open(&db)).unwrap();
    let (failing, failing_url) = Hook::start(Behaviour::AlwaysFail).await;
    let (hanging, hanging_url) = Hook::start(Behaviour::Hang).await;
    let (_failing_task, failing_stats) = spawn(
        "failing",
        ExportSink::Webhook {
            url: failing_url,
            timeout: Duration::from_secs(5),
        },
        &db,
        &log,
    );
    let (_hanging_task, hanging_stats) = spawn(
        "hanging",
        ExportSink::Webhook {
            url: hanging_url,
            timeout: Duration::from_secs(30),
        },
        &db,
        &log,
    );

    // 1000 commits from 50 concurrent sessions, as the data path makes them.
    let started = Instant::now();
    let mut sessions = tokio::task::JoinSet::new();
    for s in 0..50 {
        let log = log.clone();
        sessions.spawn(async move {
            for n in 1..=20 {
                log.commit(statement(&format!("s{s}"), 1_700_000_000_000_000, n))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = sessions.join_next().await {
        done.unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "1000 commits took {took:?}");

    eventually("the failing exporter's lag at 1000", || {
        failing_stats.lag.load(Ordering::Relaxed) == 1000
    })
    .await;
    eventually("the hanging exporter's lag at 1000", || {
        hanging_stats.lag.load(Ordering::Relaxed) == 1000
    })
    .await;
    assert!(failing_stats.failures.load(Ordering::Relaxed) >= 1);
    assert!(!failing.requests.lock().unwrap().is_empty());
    for stats in [&failing_stats, &hanging_stats] {
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 0);
    }
    assert!(hanging.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_cursor_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let file: PathBuf = dir.path().join("export.jsonl");
    let log = AuditLog::start(open(&db)).unwrap();
    let (task, _) = spawn("jsonl", ExportSink::File(file.clone()), &db, &log);
    commit_n(&log, 1, 10).await;
    eventually("the cursor at 10", || cursor(&db, "jsonl") == 10).await;
    task.abort();
    let _ = task.await;

    // Events committed while the exporter is down, then the whole gateway restarts: a new log over the
    // same file (whose committed number starts at 0) and a new exporter of the same name.
    commit_n(&log, 11, 10).await;
    drop(log);
    let log = AuditLog::start(open(&db)).unwrap();
    let (task, stats) = spawn("jsonl", ExportSink::File(file.clone()), &db, &log);
    eventually("20 lines", || lines(&file).len() >= 20).await;
    commit_n(&log, 21, 5).await;
    eventually("25 lines", || lines(&file).len() >= 25).await;
    eventually("the cursor at 25", || cursor(&db, "jsonl") == 25).await;
    assert_eq!(seqs(&lines(&file)), (1..=25).collect::<Vec<_>>());
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 15);

    // When the log closes, the exporter finishes on its own once everything is delivered.
    drop(log);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn webhook_sink_debug_hides_url_secrets() {
    let sink = ExportSink::Webhook {
        url: "https://user:s3cret@hooks.example.com:8443/t/s3cret?key=s3cret".into(),
        timeout: Duration::from_secs(5),
    };
    let shown = format!("{sink:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("https://hooks.example.com:8443/"), "{shown}");
}
