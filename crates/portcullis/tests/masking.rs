//! Masking end to end: real clients (psql, tokio-postgres with binary results and prepared statements)
//! through the gateway into a real PostgreSQL; values masked by column rule and by detector, errors and
//! notices scrubbed, cleartext granted by Cedar's `unmask`, the audit trail and metrics counting it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{BIN, Env, Options, PERMIT_AGENTS, UPSTREAM_PASSWORD_ENV};
use portcullis_audit::{AuditStore, EventBody, SessionFilter, SqliteStore};
use portcullis_testkit::gateway::run_cli;

const RULES: &str = r#"
[masking]
max_row_bytes = 4096

[[masking.rules]]
columns = ["customers.email"]
strategy = "partial"
keep = 4

[[masking.rules]]
columns = ["*.ssn"]
strategy = "hash"

[[masking.rules]]
columns = ["public.customers.card"]
strategy = "format_preserving"

[[masking.rules]]
columns = ["*score*"]
strategy = "null"

[[masking.rules]]
detectors = ["email", "payment_card", "us_ssn", "aws_access_key_id"]
strategy = "redact"
"#;

const UNMASK: &str = "\
@id(\"dba-unmask\")\npermit(principal in Group::\"dba\", action == Action::\"unmask\", resource);\n\
@id(\"support-customers\")\npermit(principal in Group::\"support\", action == Action::\"unmask\", resource == Table::\"app/public.customers\");\n";

const SEED: &str = "\
CREATE TABLE customers (id int PRIMARY KEY, name text, email text UNIQUE, ssn text, card text, \
  risk_score int, notes text, profile jsonb);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '123-45-6789', '4111 1111 1111 1111', 42,
   'prefers email: ada.l@example.org, backup card 5500 0000 0000 0004', '{\"contact\": \"ada@example.com\"}'),
  (2, 'Bob Stone', 'bob@example.net', '123-45-6789', '3782 822463 10005', 7, 'order ORD-2024-0042 shipped', NULL);
CREATE TABLE orders (id int, customer int, note text);
INSERT INTO orders VALUES (10, 1, 'receipt to ada@example.com');
GRANT ALL ON ALL TABLES IN SCHEMA public TO gateway_login;
";

async fn start() -> Env {
    let env = Env::start(Options {
        policy: format!("{PERMIT_AGENTS}{UNMASK}"),
        extra: RULES.to_owned(),
        ..Options::default()
    })
    .await;
    env.pg.psql("app", SEED).unwrap();
    env
}

fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn psql_sees_masked_columns_and_detected_values() {
    let env = start().await;
    let token = env.mint("masked-bot", &["agents"], "10m");
    let conninfo = env.conninfo("app", &token, "disable");

    let (ok, out, err) = env.psql(
        &conninfo,
        "SELECT id, name, email, ssn, card, risk_score, notes, profile FROM customers ORDER BY id",
    );
    assert!(ok, "{err}");
    let r = rows(&out);
    assert_eq!(r.len(), 2, "{out}");
    // Column rules: partial keeps the last 4 letters and digits, with the same length.
    let email = &r[0][2];
    assert_ne!(email, "ada@example.com");
    assert_eq!(email.chars().count(), "ada@example.com".len());
    assert!(email.ends_with(".com") && email.starts_with('*'), "{email}");
    // hash: the same value gives the same pseudonym, 16 hex characters.
    assert_eq!(r[0][3], r[1][3]);
    assert_eq!(r[0][3].len(), 16);
    assert!(r[0][3].chars().all(|c| c.is_ascii_hexdigit()), "{}", r[0][3]);
    // format-preserving: same shape, other digits.
    let card = &r[0][4];
    assert_ne!(card, "4111 1111 1111 1111");
    assert_eq!(card.len(), 19);
    assert_eq!(card.chars().filter(|c| *c == ' ').count(), 3, "{card}");
    // null by glob.
    assert_eq!(r[0][5], "");
    // Detectors inside free text; the order id is left alone.
    assert!(
        !out.contains("ada.l@example.org") && !out.contains("5500 0000 0000 0004"),
        "{out}"
    );
    assert!(r[0][6].contains("prefers email:"), "{}", r[0][6]);
    assert_eq!(r[1][6], "order ORD-2024-0042 shipped");
    // Nothing raw anywhere, including the JSON column and the untouched name.
    assert!(
        !out.contains("ada@example.com") && !out.contains("123-45-6789"),
        "{out}"
    );
    assert_eq!(r[0][1], "Ada Lovelace");

    // An alias does not escape a column rule (the source column is resolved); a computed column is
    // caught by the detectors.
    let (ok, out, err) = env.psql(
        &conninfo,
        "SELECT email AS contact, lower(email) AS e2, email || '' AS e3 FROM customers WHERE id = 1",
    );
    assert!(ok, "{err}");
    assert!(!out.contains("ada@example.com"), "{out}");
    assert!(out.starts_with('*'), "{out}");

    // Errors and notices are scrubbed: a unique violation echoes the value in its DETAIL.
    let (ok, _, err) = env.psql(
        &conninfo,
        "INSERT INTO customers (id, email) VALUES (3, 'bob@example.net')",
    );
    assert!(!ok);
    assert!(
        err.contains("duplicate key") && !err.contains("bob@example.net"),
        "{err}"
    );
    let (ok, _, err) = env.psql(
        &conninfo,
        "DO $$ BEGIN RAISE NOTICE 'write to carol@example.com'; END $$",
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("write to") && !err.contains("carol@example.com"),
        "{err}"
    );

    // COPY TO STDOUT has no row description to mask by: refused in a masked session.
    let (ok, out, err) = env.psql(&conninfo, "COPY customers TO STDOUT");
    assert!(!ok && !out.contains("ada@example.com"), "{out}");
    assert!(err.contains("COPY") && err.contains("masked session"), "{err}");

    // A row over max_row_bytes cannot be masked: the session ends rather than pass it in clear.
    let (ok, out, err) = env.psql(&conninfo, "SELECT repeat('x', 10000) || 'dan@example.com' AS big");
    assert!(!ok && !out.contains("dan@example.com"), "{out}");
    assert!(err.contains("masking"), "{err}");
}

#[tokio::test]
async fn binary_results_and_prepared_statements_are_masked() {
    let env = start().await;
    let token = env.mint("binary-bot", &["agents"], "10m");
    let client = env.connect_plain("app", &token).await.unwrap();

    // tokio-postgres describes at prepare and asks for binary results at each execution.
    let statement = client
        .prepare("SELECT email, notes, risk_score, profile, id FROM customers WHERE id = $1")
        .await
        .unwrap();
    for _ in 0..2 {
        let row = client.query_one(&statement, &[&1i32]).await.unwrap();
        let email: String = row.get(0);
        assert!(email.starts_with('*') && email.ends_with(".com"), "{email}");
        let notes: String = row.get(1);
        assert!(!notes.contains("ada.l@example.org"), "{notes}");
        // An int in binary format cannot carry a mask: a column rule makes it NULL.
        assert_eq!(row.get::<_, Option<i32>>(2), None);
        // jsonb in binary: version byte, then text the detectors read.
        let profile: serde_json::Value = row.get(3);
        assert!(!profile.to_string().contains("ada@example.com"), "{profile}");
        assert_eq!(row.get::<_, i32>(4), 1);
    }
    // A query with parameters (unnamed statement) and an error with a DETAIL.
    let rows = client
        .query(
            "SELECT o.note, c.ssn FROM orders o JOIN customers c ON c.id = o.customer WHERE o.id = $1",
            &[&10i32],
        )
        .await
        .unwrap();
    let note: String = rows[0].get(0);
    assert!(
        !note.contains("ada@example.com") && note.starts_with("receipt to"),
        "{note}"
    );
    let e = client
        .execute(
            "INSERT INTO customers (id, email) VALUES ($1, $2)",
            &[&4i32, &"ada@example.com"],
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23505");
    assert!(
        !db.detail().unwrap_or_default().contains("ada@example.com"),
        "{db:?}"
    );
    // Pipelined executions of different prepared statements: each row is masked by its own description
    // (an int column read with another statement's text plan would not decode).
    let by_id = client
        .prepare("SELECT email FROM customers WHERE id = $1")
        .await
        .unwrap();
    let notes = client
        .prepare("SELECT id, notes, ssn FROM customers WHERE id = $1")
        .await
        .unwrap();
    let (a, b, c) = tokio::join!(
        client.query_one(&by_id, &[&1i32]),
        client.query_one(&notes, &[&1i32]),
        client.query_one(&by_id, &[&2i32]),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a.get::<_, String>(0).starts_with('*'));
    assert_eq!(b.get::<_, i32>(0), 1);
    assert!(!b.get::<_, String>(1).contains("ada.l@example.org"));
    assert_eq!(b.get::<_, String>(2).len(), 16);
    assert!(c.get::<_, String>(0).starts_with('*'));

    // The session goes on after an error.
    let n: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn unmask_is_granted_by_policy_per_connection_and_per_table() {
    let env = start().await;
    let conninfo = |token: &str| env.conninfo("app", token, "disable");
    let dba = env.mint("dba-bot", &["agents", "dba"], "10m");
    let (ok, out, err) = env.psql(
        &conninfo(&dba),
        "SELECT email, risk_score FROM customers WHERE id = 1",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "ada@example.com|42");
    let (ok, out, err) = env.psql(
        &conninfo(&dba),
        "COPY (SELECT email FROM customers WHERE id = 1) TO STDOUT",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "ada@example.com");

    let support = env.mint("support-bot", &["agents", "support"], "10m");
    let (ok, out, err) = env.psql(
        &conninfo(&support),
        "SELECT c.email, o.note FROM customers c JOIN orders o ON o.customer = c.id",
    );
    assert!(ok, "{err}");
    let r = rows(&out);
    assert_eq!(r[0][0], "ada@example.com", "{out}");
    assert!(!r[0][1].contains("ada@example.com"), "{out}");
}

#[tokio::test]
async fn the_audit_trail_and_metrics_see_only_masked_values() {
    let env = start().await;
    let token = env.mint("audited-bot", &["agents"], "10m");
    let client = env.connect_plain("app", &token).await.unwrap();
    client
        .execute(
            "INSERT INTO orders VALUES ($1, 2, $2)",
            &[&11i32, &"mail eve@example.com"],
        )
        .await
        .unwrap();
    client
        .simple_query("INSERT INTO orders VALUES (12, 2, 'call frank@example.com'); SELECT email, note FROM customers c JOIN orders o ON o.customer = c.id WHERE o.id = 12")
        .await
        .unwrap();
    drop(client);

    let store_path = env.gateway.dir().join("state").join("audit.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    let session = loop {
        let mut store = SqliteStore::open(&store_path).unwrap();
        let found = store
            .sessions(&SessionFilter {
                subject: Some("audited-bot".to_owned()),
                ..SessionFilter::default()
            })
            .unwrap();
        if let Some(s) = found.first().filter(|s| s.ended_us.is_some()) {
            break s.session.clone();
        }
        assert!(Instant::now() < deadline, "session not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut store = SqliteStore::open(&store_path).unwrap();
    let events: Vec<EventBody> = store
        .session_events(&session)
        .unwrap()
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    let all = serde_json::to_string(&events).unwrap();
    for raw in ["eve@example.com", "frank@example.com", "bob@example.net"] {
        assert!(!all.contains(raw), "{raw} in the audit trail: {all}");
    }
    let masked: u64 = events
        .iter()
        .filter_map(|e| match e {
            EventBody::Outcome(o) => Some(o.masked.values().sum::<u64>()),
            _ => None,
        })
        .sum();
    assert!(masked >= 2, "outcomes count masked values: {all}");
    assert!(all.contains("\"column\""), "{all}");

    // The operator's replay shows the masked values and says how many were masked.
    let config = env.gateway.config_path();
    let out = run_cli(
        Path::new(BIN),
        &[
            "sessions",
            "replay",
            &session,
            "--config",
            config.to_str().unwrap(),
        ],
        &[(UPSTREAM_PASSWORD_ENV, "x")],
    )
    .unwrap();
    let replay = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{replay}");
    assert!(replay.contains("masked: column"), "{replay}");
    assert!(
        !replay.contains("frank@example.com") && !replay.contains("bob@example.net"),
        "{replay}"
    );

    let metrics = env.metrics().await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("portcullis_masked_values_total")
                && l.contains("connection=\"app\"")
                && l.contains("detector=\"column\"")
        })
        .unwrap_or_else(|| panic!("no masked counter:\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 1.0, "{line}");
}

#[tokio::test]
async fn without_statement_checks_copy_out_of_a_masked_session_ends_it_unread() {
    let env = Env::start(Options {
        policy: format!("{PERMIT_AGENTS}{UNMASK}"),
        extra: RULES.to_owned(),
        statement_checks: false,
        ..Options::default()
    })
    .await;
    env.pg.psql("app", SEED).unwrap();
    let token = env.mint("copy-bot", &["agents"], "10m");
    let conninfo = env.conninfo("app", &token, "disable");
    // The statement runs (nothing decided it), but its rows have no description to mask by: the stream
    // ends the session before a row reaches the client.
    let (ok, out, err) = env.psql(&conninfo, "COPY customers TO STDOUT");
    assert!(!ok, "{out}");
    assert!(
        !out.contains("example.com") && !out.contains("123-45-6789"),
        "{out}"
    );
    assert!(
        err.contains("COPY out of a masked session cannot be masked"),
        "{err}"
    );
    // SELECT in a new session is masked as ever, and the gateway keeps serving.
    let (ok, out, err) = env.psql(&conninfo, "SELECT email FROM customers WHERE id = 1");
    assert!(ok, "{err}");
    assert!(out.starts_with('*') && out.ends_with(".com"), "{out}");
}
