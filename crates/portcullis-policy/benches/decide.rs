//! Cost of one decision with the shipped example policies loaded: a typical read (a join of two tables
//! that calls two functions), the same read calling none, a bounded write, a connect, and unmask on a
//! connection and on a table.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::{Principal, StatementFacts, StatementKind};
use portcullis_policy::{PolicySet, RequestContext};

const EXAMPLES: [&str; 7] = [
    "analysts-read-only.cedar",
    "agents-guarded-writes.cedar",
    "no-ddl.cedar",
    "no-privileges.cedar",
    "no-file-access.cedar",
    "baseline.cedar",
    "unmask-for-dba.cedar",
];

fn examples() -> PolicySet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let files: Vec<PathBuf> = EXAMPLES.iter().map(|f| dir.join(f)).collect();
    match PolicySet::load(&files) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn decide(c: &mut Criterion) {
    let set = examples();
    let who = Principal {
        issuer_alias: "corp".into(),
        issuer: "https://login.example.com".into(),
        subject: "svc-reporting".into(),
        groups: strings(&["agents", "reporting"]),
        token_id: None,
        issued_at: None,
        expires_at: SystemTime::UNIX_EPOCH,
    };
    let ctx = RequestContext {
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        token_age_secs: 120,
    };
    let base = StatementFacts {
        kind: StatementKind::Read,
        command: "SELECT".into(),
        parse_error: None,
        ..StatementFacts::unparsed("")
    };
    let read = StatementFacts {
        reads: strings(&["public.accounts", "public.orders"]),
        operations: strings(&["select"]),
        functions: strings(&["count", "now"]),
        ..base.clone()
    };
    let read_no_functions = StatementFacts {
        functions: Vec::new(),
        ..read.clone()
    };
    let update = StatementFacts {
        kind: StatementKind::Write,
        command: "UPDATE".into(),
        reads: strings(&["public.accounts"]),
        writes: strings(&["public.accounts"]),
        operations: strings(&["update"]),
        has_where: true,
        ..base
    };

    let mut group = c.benchmark_group("decide");
    for (name, facts) in [
        ("statement/read-2-tables", &read),
        ("statement/read-2-tables-no-functions", &read_no_functions),
        ("statement/update-1-table", &update),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| set.decide_statement(black_box(&who), "app", black_box(facts), 1, &ctx))
        });
    }
    group.bench_function("connect", |b| {
        b.iter(|| set.decide_connect(black_box(&who), "app", &ctx))
    });
    for (name, table) in [
        ("unmask/connection", None),
        ("unmask/table", Some(("public", "accounts"))),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| set.decide_unmask(black_box(&who), "app", black_box(table), &ctx))
        });
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
