//! Statement guardrails end to end: real clients, the real gateway, a real PostgreSQL. The evasion corpus
//! (tests/corpus/evasions.toml) runs through psql; the extended protocol, transaction blocks, hot reload
//! and the offline `policy check` are exercised with the clients agents use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{BIN, Env, Options, db_error};
use futures_util::{TryStreamExt, pin_mut};
use portcullis_testkit::gateway::run_cli;
use serde::Deserialize;

/// The example policies the corpus and most tests run under.
const EXAMPLES: [&str; 5] = [
    "analysts-read-only.cedar",
    "agents-guarded-writes.cedar",
    "no-ddl.cedar",
    "no-privileges.cedar",
    "no-file-access.cedar",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

fn example_policies() -> String {
    EXAMPLES
        .iter()
        .map(|f| std::fs::read_to_string(examples_dir().join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A database with a small fixture owned by the gateway's login role.
async fn start(policy: String) -> Env {
    let env = Env::start(Options {
        policy,
        ..Options::default()
    })
    .await;
    env.pg
        .psql(
            "app",
            "SET ROLE gateway_login;
             CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int);
             INSERT INTO accounts SELECT g, 'owner' || g, 100 FROM generate_series(1, 10) g;
             CREATE TABLE notes (id serial PRIMARY KEY, body text);
             CREATE PROCEDURE bump() LANGUAGE sql AS 'UPDATE accounts SET balance = balance + 1';
             RESET ROLE;
             ALTER SYSTEM SET log_statement = 'all';
             SELECT pg_reload_conf();",
        )
        .unwrap();
    env
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    /// What the case tries.
    name: String,
    sql: String,
    /// `allow`, `deny`, `approval` (refused, approval would be required) or `unparsable`.
    expect: String,
    /// The token's group; `agents` unless given.
    #[serde(default = "agents")]
    group: String,
}

fn agents() -> String {
    "agents".to_owned()
}

#[tokio::test]
async fn evasion_corpus_through_the_gateway() {
    let env = start(example_policies()).await;
    let corpus: Corpus = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/evasions.toml"))
            .unwrap(),
    )
    .unwrap();
    assert!(corpus.case.len() >= 40, "the corpus shrank");
    let agents = env.mint("corpus-agent", &["agents"], "15m");
    let analysts = env.mint("corpus-analyst", &["analysts"], "15m");
    let mut failures = Vec::new();
    let mut refused_texts = Vec::new();
    let mut allowed_texts = Vec::new();
    for case in &corpus.case {
        let token = if case.group == "analysts" {
            &analysts
        } else {
            &agents
        };
        let (ok, _out, err) = env.psql(&env.conninfo("app", token, "disable"), &case.sql);
        let refused_by_gateway = err.contains("Portcullis");
        let outcome = match (ok, refused_by_gateway) {
            (true, _) => "allow",
            (false, true) if err.contains("approval required") => "approval",
            (false, true) if err.contains("cannot parse") => "unparsable",
            (false, true) => "deny",
            (false, false) => "server error",
        };
        if outcome != case.expect {
            failures.push(format!(
                "{}: expected {}, got {outcome}: {err}",
                case.name, case.expect
            ));
        }
        if outcome == "allow" {
            allowed_texts.push(case.sql.clone());
        }
        if outcome != "allow" && outcome != "server error" {
            assert!(
                err.contains("42501") || err.contains("42601") || !err.contains("SQLSTATE"),
                "{err}"
            );
            refused_texts.push(case.sql.clone());
        }
    }
    assert!(failures.is_empty(), "corpus mismatches:\n{}", failures.join("\n"));

    // Nothing refused reached the database: the fixture is intact, and the server's own statement log
    // never saw a refused text (only the gateway's stand-ins).
    let (ok, out, err) = env.psql(
        &env.conninfo("app", &agents, "disable"),
        "SELECT count(*), sum(balance) FROM accounts",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "10|1000");
    let server_log = std::fs::read_to_string(env.pg.log_path()).unwrap();
    for text in refused_texts.into_iter().filter(|t| !allowed_texts.contains(t)) {
        let first_line = text.lines().next().unwrap();
        assert!(
            !server_log.contains(&format!("statement: {first_line}")),
            "a refused statement reached the database: {text}"
        );
    }
}

#[tokio::test]
async fn extended_protocol_refusals_are_bound_to_the_statement() {
    let env = start(example_policies()).await;
    let token = env.mint("bot", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();

    // Prepare is refused: the statement never exists, so it can never be bound or executed.
    let err = client.prepare("DROP TABLE accounts").await.unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "42501");
    assert!(message.contains("no-ddl"), "{message}");

    // A pipelined batch: the refused statement fails in its place, the others run in order.
    let select = client
        .prepare("SELECT balance FROM accounts WHERE id = $1")
        .await
        .unwrap();
    let (a, b, c) = tokio::join!(
        client.query_one(&select, &[&1i32]),
        client.execute("UPDATE accounts SET balance = 0", &[]),
        client.query_one(&select, &[&2i32]),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 100);
    assert_eq!(db_error(&b.unwrap_err()).0, "42501");
    assert_eq!(c.unwrap().get::<_, i32>(0), 100);

    // An allowed write with parameters goes through; the session is still usable.
    let n = client
        .execute(
            "UPDATE accounts SET balance = $1 WHERE id = $2",
            &[&150i32, &3i32],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    // DELETE needs approval, which this gateway does not offer yet: refused, saying so.
    let err = client
        .execute("DELETE FROM accounts WHERE id = $1", &[&3i32])
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "42501");
    assert!(message.contains("approval required"), "{message}");
    let rows = client
        .query("SELECT id FROM accounts ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);

    // Streaming a refused portal is impossible too: query_raw goes through Parse first.
    let stream = client
        .query_raw("SELECT pg_read_file('/etc/hostname')", std::iter::empty::<i32>())
        .await;
    match stream {
        Err(e) => assert_eq!(db_error(&e).0, "42501"),
        Ok(stream) => {
            pin_mut!(stream);
            let e = stream.try_next().await.unwrap_err();
            assert_eq!(db_error(&e).0, "42501");
        }
    }
}

#[tokio::test]
async fn refusal_inside_a_transaction_block_behaves_like_a_failed_statement() {
    let env = start(example_policies()).await;
    let token = env.mint("bot", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("UPDATE accounts SET balance = 1 WHERE id = 1")
        .await
        .unwrap();
    let err = client
        .batch_execute("GRANT ALL ON accounts TO PUBLIC")
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "42501");
    // The block is aborted, exactly as after any failed statement.
    let err = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(db_error(&err).0, "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    let row = client
        .query_one("SELECT balance FROM accounts WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 100, "the rolled-back update is gone");

    // SQL-level PREPARE / EXECUTE: EXECUTE is decided on what was prepared.
    client
        .batch_execute("PREPARE mine AS SELECT owner FROM accounts WHERE id = $1")
        .await
        .unwrap();
    let rows = client.simple_query("EXECUTE mine(4)").await.unwrap();
    assert!(!rows.is_empty());
    let err = client
        .batch_execute("PREPARE wipe AS DELETE FROM accounts")
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "42501");
    let err = client.batch_execute("EXECUTE wipe").await.unwrap_err();
    assert_eq!(db_error(&err).0, "42501");
}

#[tokio::test]
async fn fast_path_function_calls_are_decided_too() {
    // psql's \lo_import uses libpq's large-object API, which calls functions by OID with FunctionCall
    // messages rather than SQL: they carry no statement to read, so they are kind `unknown`.
    let env = start(example_policies()).await;
    let token = env.mint("bot", &["agents"], "15m");
    let (ok, _, err) = env.psql(
        &env.conninfo("app", &token, "disable"),
        "\\lo_import /etc/hostname",
    );
    assert!(!ok);
    assert!(err.contains("permission denied by Portcullis"), "{err}");
    assert!(err.contains("FUNCTION CALL (unknown)"), "{err}");
    let (ok, out, err) = env.psql(
        &env.conninfo("app", &token, "disable"),
        "SELECT count(*) FROM pg_largeobject_metadata",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "0");
}

#[tokio::test]
async fn connect_is_decided_by_cedar() {
    let env = start(example_policies()).await;
    let outsider = env.mint("intern", &["interns"], "15m");
    let err = env.connect_plain("app", &outsider).await.unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "28000");
    assert!(message.contains("not permitted"), "{message}");
    let analyst = env.mint("ann", &["analysts"], "15m");
    let client = env.connect_plain("app", &analyst).await.unwrap();
    client.query("SELECT * FROM accounts", &[]).await.unwrap();
    let err = client
        .execute("UPDATE accounts SET balance = 1 WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "42501");
}

#[tokio::test]
async fn policy_reloads_atomically_on_change_and_on_sighup() {
    let read_only = "@id(\"read\")\npermit(principal in Group::\"agents\", action in [Action::\"connect\", Action::\"read\"], resource);\n";
    let env = start(read_only.to_owned()).await;
    let token = env.mint("bot", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    let write = "UPDATE accounts SET balance = 5 WHERE id = 5";
    assert_eq!(
        db_error(&client.batch_execute(write).await.unwrap_err()).0,
        "42501"
    );

    // A new policy file is picked up within the watch interval.
    let policy_file = env.gateway.config_path().parent().unwrap().join("policy.cedar");
    let read_write = format!(
        "{read_only}@id(\"write\")\npermit(principal in Group::\"agents\", action == Action::\"write\", resource);\n"
    );
    std::fs::write(&policy_file, &read_write).unwrap();
    wait_until(Duration::from_secs(10), || async {
        client.batch_execute(write).await.is_ok()
    })
    .await;

    // A broken file is rejected: the policy in force stays, and the log says why.
    std::fs::write(
        &policy_file,
        "permit(principal, action == Action::\"no_such_action\", resource);",
    )
    .unwrap();
    wait_until(Duration::from_secs(10), || async {
        env.gateway.log().unwrap().contains("policy reload rejected")
    })
    .await;
    client.batch_execute(write).await.unwrap();

    // SIGHUP reloads at once (the file watcher would too; the signal must not break anything).
    std::fs::write(&policy_file, read_only).unwrap();
    env.gateway.sighup().unwrap();
    wait_until(Duration::from_secs(10), || async {
        client.batch_execute(write).await.is_err()
    })
    .await;
    wait_until(Duration::from_secs(10), || async {
        env.gateway
            .log()
            .unwrap()
            .lines()
            .any(|l| l.contains("policy reloaded") && l.contains("SIGHUP"))
    })
    .await;
}

#[tokio::test]
async fn backslashes_are_refused_while_standard_conforming_strings_is_off() {
    let env = start(example_policies()).await;
    let token = env.mint("bot", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    client
        .batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    // With the setting off, the server reads this as one string literal; a parser assuming the standard
    // would see a second statement. The gateway refuses rather than guess.
    let err = client
        .batch_execute("SELECT 'a\\'; DELETE FROM accounts; --'")
        .await
        .unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "42501");
    assert!(message.contains("standard_conforming_strings"), "{message}");
    client
        .batch_execute("SET standard_conforming_strings = on")
        .await
        .unwrap();
    client.batch_execute("SELECT 'a\\'").await.unwrap();
}

#[tokio::test]
async fn statement_checks_off_relays_unexamined() {
    let env = Env::start(Options {
        policy: "permit(principal in Group::\"agents\", action == Action::\"connect\", resource);".to_owned(),
        statement_checks: false,
        ..Options::default()
    })
    .await;
    let token = env.mint("bot", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (x int); DROP TABLE t")
        .await
        .unwrap();
}

#[test]
fn policy_check_explains_offline() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    let policies: Vec<String> = EXAMPLES
        .iter()
        .map(|f| format!("{:?}", examples_dir().join(f).display().to_string()))
        .collect();
    std::fs::write(
        &config,
        format!(
            "[identity.dev_issuer]\nenabled = true\n[policy]\nfiles = [{}]\n[[connections]]\nname = \"app\"\n\
             protocol = \"postgres\"\nupstream = \"db.invalid:5432\"\ndatabase = \"app\"\nuser = \"u\"\n\
             password = \"${{NOT_SET_AND_NOT_NEEDED}}\"\n",
            policies.join(", ")
        ),
    )
    .unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "check",
            "--config",
            config.to_str().unwrap(),
            "--subject",
            "bot",
            "--group",
            "agents",
            "--connection",
            "app",
        ];
        args.extend_from_slice(extra);
        let out = run_cli(Path::new(BIN), &args, &[]).unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = check(&["--sql", "SELECT owner FROM accounts WHERE id = 1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("reads         public.accounts"), "{out}");
    assert!(out.contains("ALLOWED"), "{out}");

    let (code, out, _) = check(&["--sql", "SELECT 1; DROP TABLE accounts"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("statement 2 of 2: DROP TABLE (ddl)"), "{out}");
    assert!(out.contains("deny by no-ddl"), "{out}");
    assert!(out.contains("REFUSED"), "{out}");

    let file = dir.path().join("statements.sql");
    std::fs::write(
        &file,
        "UPDATE accounts SET balance = 0;\nDELETE FROM accounts WHERE id = 1;\n",
    )
    .unwrap();
    let (code, out, _) = check(&["--file", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["statements"][0]["facts"]["unbounded_write"], true);
    assert_eq!(report["statements"][0]["decision"]["outcome"], "deny");
    assert_eq!(
        report["statements"][1]["decision"]["outcome"],
        "approval_required"
    );

    // A broken policy is reported by file and position, by both `policy check` and `config check`.
    let broken = dir.path().join("broken.cedar");
    std::fs::write(
        &broken,
        "permit(principal, action == Action::\"launch\", resource);",
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "files = [",
            &format!("files = [{:?}, ", broken.display().to_string()),
        ),
    )
    .unwrap();
    let (code, _, err) = check(&["--sql", "SELECT 1"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("policy.files") && err.contains("broken.cedar"),
        "{err}"
    );
    let out = run_cli(
        Path::new(BIN),
        &["config", "check", config.to_str().unwrap()],
        &[("NOT_SET_AND_NOT_NEEDED", "x")],
    )
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.cedar"));
}

async fn wait_until<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < limit, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
