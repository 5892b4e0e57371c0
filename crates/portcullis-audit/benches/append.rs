//! The audit store's cost per event: encoding and hashing alone, and appending typical statement and
//! outcome events to a SQLite store in groups, with each commit fsynced (`Durability::Fsync`) and only
//! written (`Durability::Os`). Throughput is reported in events per second. And what listing sessions
//! costs while one of them is live and long (a keep-alive HTTP client's requests): with its counts
//! stored by the writer (schema 4) and counted from its start (as schema 3 did).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use portcullis_audit::{
    AuditStore, Draft, Durability, EventBody, OutcomeEvent, ResultRecord, SessionFilter, SessionStartEvent,
    SqliteStore, StatementEvent, StatementSummary, event_hash,
};

const SESSION: &str = "a216c4a2a8dc8b3d";

fn start() -> Draft {
    Draft::now(
        SESSION,
        EventBody::SessionStart(SessionStartEvent {
            protocol: "http".to_owned(),
            issuer: "https://issuer.example".to_owned(),
            issuer_alias: "corp".to_owned(),
            subject: "billing-agent".to_owned(),
            groups: Vec::new(),
            token_id: None,
            token_expires_at: 0,
            client_addr: "192.0.2.1:5000".to_owned(),
            client_tls: true,
            client_user: String::new(),
            connection: "crm".to_owned(),
            upstream_role: "gateway".to_owned(),
            upstream_tls: true,
        }),
    )
}

fn statement(n: u64) -> Draft {
    Draft::now(
        SESSION,
        EventBody::Statement(StatementEvent {
            n,
            message: "query".to_owned(),
            prepared: None,
            text: format!("UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = {n};"),
            params: Vec::new(),
            statements: vec![StatementSummary {
                kind: "write".to_owned(),
                command: "UPDATE".to_owned(),
                reads: vec!["public.pgbench_accounts".to_owned()],
                writes: vec!["public.pgbench_accounts".to_owned()],
                functions: Vec::new(),
                unbounded_write: false,
            }],
            decision: "allow".to_owned(),
            policies: vec!["agents-guarded-writes".to_owned()],
            reason: String::new(),
            body: None,
        }),
    )
}

fn outcome(n: u64) -> Draft {
    Draft::now(
        SESSION,
        EventBody::Outcome(OutcomeEvent {
            masked: Default::default(),
            n,
            ran: true,
            tags: vec!["SELECT 1".to_owned()],
            rows: 1,
            duration_us: 412,
            error: None,
            result: Some(ResultRecord {
                columns: vec!["abalance".to_owned()],
                rows: vec![vec![Some("-4321".to_owned())]],
                truncated: false,
            }),
            body: None,
        }),
    )
}

/// Half statements, half outcomes: what a simple-protocol workload records.
fn group(size: u64) -> Vec<Draft> {
    (0..size)
        .map(|i| if i % 2 == 0 { statement(i) } else { outcome(i) })
        .collect()
}

fn encode_and_hash(c: &mut Criterion) {
    let drafts = group(2);
    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Elements(2));
    g.bench_function("encode+hash statement and outcome", |b| {
        b.iter(|| {
            for d in &drafts {
                let body = d.body_json();
                black_box(event_hash(
                    "0".repeat(64).as_str(),
                    7,
                    &d.session,
                    d.at_us,
                    d.body.kind(),
                    &body,
                ));
            }
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("portcullis-append-bench-{}", std::process::id()));
    for (name, durability) in [("fsync", Durability::Fsync), ("os", Durability::Os)] {
        let path = dir.join(format!("{name}.db"));
        let mut store = match SqliteStore::open_writer(&path, durability) {
            Ok(store) => store,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
        };
        let mut g = c.benchmark_group(format!("append/{name}"));
        for size in [2u64, 16, 64] {
            g.throughput(Throughput::Elements(size));
            g.bench_function(format!("group of {size}"), |b| {
                b.iter_batched(
                    || group(size),
                    |drafts| {
                        if let Err(e) = store.append(&drafts) {
                            eprintln!("{e}");
                            std::process::exit(1)
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
        let _ = store.checkpoint_wal();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Events of the live session listed by `list_live`.
const LIVE_EVENTS: u64 = 200_000;

fn list_live(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("portcullis-list-bench-{}", std::process::id()));
    let path = dir.join("live.db");
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{e}");
        std::process::exit(1)
    };
    let mut writer = SqliteStore::open_writer(&path, Durability::Os).unwrap_or_else(|e| fail(&e));
    writer.append(&[start()]).unwrap_or_else(|e| fail(&e));
    for _ in 0..LIVE_EVENTS / 64 {
        writer.append(&group(64)).unwrap_or_else(|e| fail(&e));
    }
    // The writer stores live counts about once a second: the next append after a pause does.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    writer.append(&group(2)).unwrap_or_else(|e| fail(&e));
    let _ = writer.checkpoint_wal();
    let mut reader = SqliteStore::open(&path).unwrap_or_else(|e| fail(&e));
    let mut list = |name: &str, g: &mut criterion::BenchmarkGroup<'_, _>| {
        g.bench_function(name, |b| {
            b.iter(|| {
                let sessions = reader
                    .sessions(&SessionFilter::default())
                    .unwrap_or_else(|e| fail(&e));
                assert_eq!(sessions.first().map(|s| s.statements), Some(LIVE_EVENTS / 2 + 1));
            })
        });
    };
    let mut g = c.benchmark_group(format!("sessions list, one live session of {LIVE_EVENTS} events"));
    g.sample_size(10);
    list("counts stored (schema 4)", &mut g);
    // What schema 3 did: no stored counts, every event since the session's start read.
    let raw = rusqlite::Connection::open(&path).unwrap_or_else(|e| fail(&e));
    raw.execute(
        "UPDATE sessions SET statements = 0, refused = 0, counted_seq = NULL",
        [],
    )
    .unwrap_or_else(|e| fail(&e));
    list("counted from its start (schema 3)", &mut g);
    g.finish();
    drop(writer);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, encode_and_hash, append, list_live);
criterion_main!(benches);
