//! The audit store's cost per event: encoding and hashing alone, and appending typical statement and
//! outcome events to a SQLite store in groups, with each commit fsynced (`Durability::Fsync`) and only
//! written (`Durability::Os`). Throughput is reported in events per second.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use portcullis_audit::{
    AuditStore, Draft, Durability, EventBody, OutcomeEvent, ResultRecord, SqliteStore, StatementEvent,
    StatementSummary, event_hash,
};

fn statement(n: u64) -> Draft {
    Draft::now(
        "a216c4a2a8dc8b3d",
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
        "a216c4a2a8dc8b3d",
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

criterion_group!(benches, encode_and_hash, append);
criterion_main!(benches);
