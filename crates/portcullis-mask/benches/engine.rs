//! The engine's cost per byte of cells and of free text, with every detector on.
//!
//! `ColumnPlan::apply` runs over a generated mix of realistic cells (names, addresses, cities, notes,
//! order ids, timestamps, JSON; about four in five with nothing to find) and over the rows of a typical
//! gateway result (a label, a phone number in every row, an order line, a card in one row of ten);
//! `ConnectionMask::scrub` over error messages and statements. Throughput is in bytes of input.
//!
//! `JsonMasker` runs over a realistic API response (an array of customer objects, about one in five with
//! a finding in free text), with field rules and every detector, and with field rules only.
//!
//! `cargo bench -p portcullis-mask --bench engine -- --warm-up-time 1 --measurement-time 3`

// Bench code, like tests: a failed set-up should stop it loudly.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_mask::{
    ColumnRef, Counts, Detector, JsonLimits, JsonMasker, MaskPolicy, Masked, RuleSpec, StrategyName,
};

/// xorshift64*: the same cells on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn number(&mut self, below: u64) -> u64 {
        self.next() % below
    }
}

const FIRST: &[&str] = &[
    "Jane", "John", "Anna", "Jürgen", "Li", "Amara", "Carlos", "Sofia", "Mohammed", "Emma", "Olivia", "Noah",
];
const LAST: &[&str] = &[
    "Roe", "Smith", "Schmidt", "Müller", "Wang", "Okafor", "García", "Rossi", "Haddad", "Johnson", "Dubois",
];
const STREETS: &[&str] = &[
    "Baker Street",
    "Amphitheatre Parkway",
    "Hauptstraße",
    "Rue de Rivoli",
    "Main St",
    "Elm Avenue",
    "Via Roma",
    "Calle Mayor",
    "Sunset Blvd",
    "High Street",
];
const CITIES: &[&str] = &[
    "London",
    "Mountain View, CA 94043",
    "Berlin",
    "Paris",
    "Springfield, IL 62704",
    "Roma",
    "Madrid",
    "Los Angeles, CA 90028",
    "Manchester M1 1AE",
    "München",
];
const NOTES: &[&str] = &[
    "Customer asked to change the delivery window to the afternoon.",
    "Left at the front door as requested; signed by neighbour.",
    "Refund approved after the second complaint about the damaged box.",
    "Prefers contact by post. Do not call before 9am.",
    "Repeat customer since 2019, gold tier, no open issues.",
    "Package returned to sender: address incomplete.",
    "Upgraded to express shipping free of charge (voucher SPRING24).",
    "Invoice sent again on request, see ticket 58213.",
];
const STATUSES: &[&str] = &["shipped", "pending", "delivered", "cancelled", "returned"];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "example.co.uk",
    "klinik.example.de",
];

/// One cell; `dirty` ones hold something to find.
fn cell(rng: &mut Rng) -> String {
    let dirty = rng.number(100) < 20;
    if dirty {
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        return match rng.number(6) {
            0 => format!(
                "{}.{}@{}",
                first.to_lowercase(),
                rng.number(1000),
                rng.pick(DOMAINS)
            ),
            1 => format!("+1 {} 555 {:04}", 200 + rng.number(700), rng.number(10_000)),
            2 => format!(
                "{} Called from ({}) 555-{:04}, asked for {}@{}",
                rng.pick(NOTES),
                200 + rng.number(700),
                rng.number(10_000),
                last.to_lowercase(),
                rng.pick(DOMAINS)
            ),
            3 => format!(
                "Paid with card 4111 1111 1111 1111, {first} {last}. {}",
                rng.pick(NOTES)
            ),
            4 => format!(
                "{{\"user\":\"{}\",\"ip\":\"10.{}.{}.{}\",\"status\":\"{}\"}}",
                first.to_lowercase(),
                rng.number(256),
                rng.number(256),
                rng.number(256),
                rng.pick(STATUSES)
            ),
            _ => format!("IBAN DE89 3704 0044 0532 0130 00 for {first} {last}"),
        };
    }
    match rng.number(9) {
        0 => format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
        1 => format!("{} {}", 1 + rng.number(2000), rng.pick(STREETS)),
        2 => rng.pick(CITIES).to_owned(),
        3 => rng.pick(NOTES).to_owned(),
        4 => format!(
            "ORD-2024{:02}{:02}-{:04}",
            1 + rng.number(12),
            1 + rng.number(28),
            rng.number(10_000)
        ),
        5 => format!(
            "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
            1 + rng.number(12),
            1 + rng.number(28),
            rng.number(24),
            rng.number(60),
            rng.number(60),
            rng.number(1_000_000)
        ),
        6 => format!(
            "{{\"id\":{},\"status\":\"{}\",\"items\":{},\"total\":{}.{:02},\"note\":\"{}\"}}",
            rng.number(100_000),
            rng.pick(STATUSES),
            1 + rng.number(9),
            rng.number(500),
            rng.number(100),
            rng.pick(NOTES)
        ),
        7 => format!("{}.{:02}", rng.number(5000), rng.number(100)),
        _ => format!("{} {} — {}", rng.pick(FIRST), rng.pick(LAST), rng.pick(NOTES)),
    }
}

fn cells(n: usize) -> Vec<String> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..n).map(|_| cell(&mut rng)).collect()
}

/// The cells of a result the gateway masks often: four text columns, a phone number in every row and a
/// card number in one row of ten. Flattened row after row.
fn gateway_rows(n: usize) -> Vec<String> {
    let mut rng = Rng(7);
    let mut cells = Vec::with_capacity(4 * n);
    for row in 0..n {
        cells.push(format!("Person {} {:08x}", rng.number(1000), rng.number(1 << 32)));
        cells.push(format!(
            "+1 {} 555 {:04}",
            200 + rng.number(700),
            rng.number(10_000)
        ));
        cells.push(format!(
            "order ORD-{} shipped to {} {}, Springfield",
            rng.number(1000),
            1 + rng.number(200),
            rng.pick(STREETS)
        ));
        cells.push(if row % 10 == 0 {
            "paid with card 4111 1111 1111 1111, receipt sent".to_owned()
        } else {
            format!("paid by invoice {}, receipt sent", rng.number(100_000))
        });
    }
    cells
}

/// Statements and error messages for `scrub`.
fn texts(n: usize) -> Vec<String> {
    let mut rng = Rng(42);
    (0..n)
        .map(|i| match i % 4 {
            0 => format!(
                "SELECT id, name, email FROM customers WHERE created_at > '2024-01-{:02}' AND status = '{}' LIMIT 100",
                1 + rng.number(28),
                rng.pick(STATUSES)
            ),
            1 => format!(
                "UPDATE orders SET status = '{}', updated_at = now() WHERE id = {}",
                rng.pick(STATUSES),
                rng.number(1_000_000)
            ),
            2 => "ERROR: duplicate key value violates unique constraint \"users_email_key\" DETAIL: Key \
                  (email)=(jane.roe@example.com) already exists."
                .to_owned(),
            _ => format!(
                "ERROR: relation \"order_items_{}\" does not exist at character {}",
                rng.number(100),
                rng.number(200)
            ),
        })
        .collect()
}

fn all_detectors() -> RuleSpec {
    RuleSpec {
        columns: Vec::new(),
        fields: Vec::new(),
        detectors: Detector::ALL.to_vec(),
        strategy: StrategyName::Redact,
        keep: None,
        with: None,
        connections: Vec::new(),
    }
}

fn engine(c: &mut Criterion) {
    let policy = MaskPolicy::compile(&[all_detectors()], b"bench-key-0123456789abcdef").expect("compile");
    let mask = policy.for_connection("bench");
    let plan = mask.column(ColumnRef {
        schema: Some("public"),
        table: Some("orders"),
        column: "notes",
    });

    let cells = cells(20_000);
    let bytes: usize = cells.iter().map(String::len).sum();
    let masked = cells
        .iter()
        .filter(|c| plan.apply(c.as_bytes(), &mut Counts::default()) != Masked::Unchanged)
        .count();
    eprintln!(
        "{} cells, {} bytes, {:.1} bytes per cell, {:.1}% with a finding",
        cells.len(),
        bytes,
        bytes as f64 / cells.len() as f64,
        100.0 * masked as f64 / cells.len() as f64
    );

    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("all_detectors", |b| {
        b.iter(|| {
            let mut counts = Counts::default();
            for cell in &cells {
                black_box(plan.apply(black_box(cell.as_bytes()), &mut counts));
            }
            counts
        })
    });
    let clean: Vec<&String> = cells
        .iter()
        .filter(|c| plan.apply(c.as_bytes(), &mut Counts::default()) == Masked::Unchanged)
        .collect();
    let clean_bytes: usize = clean.iter().map(|c| c.len()).sum();
    group.throughput(Throughput::Bytes(clean_bytes as u64));
    group.bench_function("all_detectors_clean_cells", |b| {
        b.iter(|| {
            let mut counts = Counts::default();
            for cell in &clean {
                black_box(plan.apply(black_box(cell.as_bytes()), &mut counts));
            }
            counts
        })
    });

    // A typical result, row by row: a phone number in every row makes every row allocate.
    let rows = gateway_rows(5_000);
    let row_bytes: usize = rows.iter().map(String::len).sum();
    group.throughput(Throughput::Bytes(row_bytes as u64));
    group.bench_function("gateway_rows", |b| {
        b.iter(|| {
            let mut counts = Counts::default();
            for cell in &rows {
                black_box(plan.apply(black_box(cell.as_bytes()), &mut counts));
            }
            counts
        })
    });
    group.finish();

    let texts = texts(2_000);
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut group = c.benchmark_group("scrub");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("all_detectors", |b| {
        b.iter(|| {
            let mut counts = Counts::default();
            for text in &texts {
                black_box(mask.scrub(black_box(text), &mut counts));
            }
            counts
        })
    });
    group.finish();
}

/// An API response: `{"data":[...customers...],"next":"..."}`, pretty-printed like many APIs, each
/// customer with an id, name, email, phone, card number, SSN, address, tags, flags and a note; about one
/// note in five holds an email or a phone number.
fn api_response(customers: usize) -> String {
    let mut rng = Rng(2024);
    let mut out = String::from("{\n  \"data\": [\n");
    for i in 0..customers {
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let note = if rng.number(100) < 20 {
            format!(
                "{} Reach {} at {}.{}@{} or +1 {} 555 {:04}.",
                rng.pick(NOTES),
                first,
                first.to_lowercase(),
                last.to_lowercase(),
                rng.pick(DOMAINS),
                200 + rng.number(700),
                rng.number(10_000)
            )
        } else {
            rng.pick(NOTES).to_owned()
        };
        out.push_str(&format!(
            "    {{\"id\": {}, \"name\": \"{first} {last}\", \"email\": \"{}.{}@{}\", \"phone\": \"+1 {} 555 {:04}\", \
             \"card_number\": \"4111 1111 1111 1111\", \"ssn\": \"078-05-{:04}\", \"address\": {{\"street\": \"{} {}\", \
             \"city\": \"{}\"}}, \"tags\": [\"{}\", \"tier-{}\"], \"active\": {}, \"balance\": {}.{:02}, \
             \"created_at\": \"2024-{:02}-{:02}T{:02}:{:02}:{:02}Z\", \"note\": \"{}\"}}{}\n",
            100_000 + i,
            first.to_lowercase(),
            last.to_lowercase(),
            rng.pick(DOMAINS),
            200 + rng.number(700),
            rng.number(10_000),
            1 + rng.number(9998),
            1 + rng.number(2000),
            rng.pick(STREETS),
            rng.pick(CITIES),
            rng.pick(STATUSES),
            rng.number(4),
            rng.number(2) == 0,
            rng.number(5000),
            rng.number(100),
            1 + rng.number(12),
            1 + rng.number(28),
            rng.number(24),
            rng.number(60),
            rng.number(60),
            note,
            if i + 1 < customers { "," } else { "" }
        ));
    }
    out.push_str("  ],\n  \"next\": \"cursor-00042\"\n}\n");
    out
}

fn json(c: &mut Criterion) {
    let field = |strategy, fields: &[&str]| RuleSpec {
        fields: fields.iter().map(|f| f.to_string()).collect(),
        strategy,
        ..all_detectors()
    };
    let fields = || {
        vec![
            RuleSpec {
                detectors: Vec::new(),
                ..field(StrategyName::Partial, &["card_number", "*.phone"])
            },
            RuleSpec {
                detectors: Vec::new(),
                ..field(StrategyName::Hash, &["email"])
            },
            RuleSpec {
                detectors: Vec::new(),
                ..field(StrategyName::Null, &["$.data[].ssn"])
            },
        ]
    };
    let mut with_detectors = fields();
    with_detectors.push(all_detectors());
    let body = api_response(2_000);
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (name, rules) in [
        ("fields_and_all_detectors", with_detectors),
        ("fields_only", fields()),
    ] {
        let policy = MaskPolicy::compile(&rules, b"bench-key-0123456789abcdef").expect("compile");
        let mask = policy.for_connection("api");
        let mut out = Vec::with_capacity(body.len() + body.len() / 4);
        let mut m = JsonMasker::new(mask.clone(), JsonLimits::default());
        m.push(body.as_bytes(), &mut out).expect("valid");
        m.finish(&mut out).expect("valid");
        eprintln!(
            "json/{name}: {} bytes in, {} out, {:?}",
            body.len(),
            out.len(),
            m.counts().iter().map(|(r, n)| (r.name(), n)).collect::<Vec<_>>()
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut m = JsonMasker::new(mask.clone(), JsonLimits::default());
                // 16 KiB chunks, as a proxy reads them.
                for chunk in body.as_bytes().chunks(16 << 10) {
                    m.push(black_box(chunk), &mut out).expect("valid");
                }
                m.finish(&mut out).expect("valid");
                m.counts()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engine, json);
criterion_main!(benches);
