//! Cost of reading a statement: `analyse` (libpg_query parse + the facts walk, what an uncached statement
//! costs) and `fingerprint` (the literal-free cache key, what a cached statement costs before its lookup).
//! Run with `cargo bench -p portcullis-postgres --bench classify`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_postgres::classify::{analyse, fingerprint};

const STATEMENTS: [(&str, &str); 4] = [
    (
        "pgbench select",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
    ),
    (
        "pgbench update",
        "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 42",
    ),
    (
        "3-table join",
        "SELECT a.aid, b.bbalance, t.tbalance FROM pgbench_accounts a \
         JOIN pgbench_branches b ON b.bid = a.bid JOIN pgbench_tellers t ON t.bid = b.bid \
         WHERE a.aid = 42 AND t.tid < 10 ORDER BY a.aid LIMIT 5",
    ),
    (
        "data-modifying CTE",
        "WITH moved AS (DELETE FROM orders WHERE created < now() - interval '1 year' RETURNING *) \
         INSERT INTO orders_archive SELECT * FROM moved",
    ),
];

fn classify(c: &mut Criterion) {
    for (name, sql) in STATEMENTS {
        c.bench_function(&format!("analyse/{name}"), |b| b.iter(|| analyse(black_box(sql))));
        c.bench_function(&format!("fingerprint/{name}"), |b| {
            b.iter(|| fingerprint(black_box(sql)))
        });
    }
}

criterion_group!(benches, classify);
criterion_main!(benches);
