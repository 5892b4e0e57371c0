//! The audit trail end to end: real clients through the gateway into a real PostgreSQL, the record read
//! back from the store and through the `sessions` commands, operator kills and revocations, a failing
//! store, exports and retention, and a SIGKILL in the middle of a write-heavy workload.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{BIN, Env, Options, PERMIT_AGENTS, UPSTREAM_PASSWORD_ENV, db_error};
use portcullis_audit::{AuditStore, EventBody, SessionFilter, SqliteStore, StoredEvent};
use portcullis_testkit::gateway::run_cli;

const NO_DROP: &str = "@id(\"no-drop\")\nforbid(principal, action == Action::\"ddl\", resource) when { context.command == \"DROP TABLE\" };\n";

fn store_path(env: &Env) -> PathBuf {
    env.gateway.dir().join("state").join("audit.db")
}

fn store(env: &Env) -> SqliteStore {
    SqliteStore::open(&store_path(env)).unwrap()
}

/// Runs `portcullis <args> --config <the gateway's config>`; returns (exit code, stdout, stderr).
fn cli(env: &Env, args: &[&str]) -> (i32, String, String) {
    let config = env.gateway.config_path();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    let out = run_cli(Path::new(BIN), &all, &[(UPSTREAM_PASSWORD_ENV, "x")]).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn decoded(events: &[StoredEvent]) -> Vec<EventBody> {
    events.iter().map(|e| e.decode().unwrap()).collect()
}

/// The newest session of `subject`, waiting until it exists (and, if `ended`, until it has ended).
async fn session_of(env: &Env, subject: &str, ended: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = store(env)
            .sessions(&SessionFilter {
                subject: Some(subject.to_owned()),
                ..SessionFilter::default()
            })
            .unwrap();
        if let Some(s) = found.first()
            && (!ended || s.ended_us.is_some())
        {
            return s.session.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {subject} session recorded (ended: {ended}): {found:?}\n{:?}\n{}",
            store(env).events_after(0, 100).unwrap().len(),
            env.gateway.log().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sessions_statements_and_outcomes_are_recorded_and_replayable() {
    let env = Env::start(Options {
        policy: format!("{PERMIT_AGENTS}{NO_DROP}"),
        ..Options::default()
    })
    .await;
    let token = env.mint("recorder-bot", &["agents"], "10m");
    let conninfo = env.conninfo("app", &token, "disable");
    let (ok, _, err) = env.psql(
        &conninfo,
        "CREATE TABLE people (id int, email text); \
         INSERT INTO people VALUES (1, 'a@example.com'), (2, NULL), (3, 'c@example.com');",
    );
    assert!(ok, "{err}");
    let (ok, out, _) = env.psql(&conninfo, "SELECT id, email FROM people ORDER BY id");
    assert!(ok);
    assert_eq!(out.lines().count(), 3);
    let (ok, _, err) = env.psql(&conninfo, "DROP TABLE people");
    assert!(!ok && err.contains("no-drop"), "{err}");

    let client = env.connect_plain("app", &token).await.unwrap();
    let row = client
        .query_one("SELECT $1::text || '!' AS shout", &[&"hello"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "hello!");
    let e = client
        .execute("INSERT INTO people VALUES (1/0, 'x')", &[])
        .await
        .unwrap_err();
    assert_eq!(db_error(&e).0, "22012");
    drop(client);

    // Outcomes and ends are recorded without waiting; once the last session's end is in, all are.
    session_of(&env, "recorder-bot", true).await;
    let mut s = store(&env);
    let sessions = s
        .sessions(&SessionFilter {
            subject: Some("recorder-bot".to_owned()),
            ..SessionFilter::default()
        })
        .unwrap();
    assert_eq!(sessions.len(), 4, "{sessions:?}");
    assert!(sessions.iter().all(|s| s.ended_us.is_some()), "{sessions:?}");
    let first = sessions.last().unwrap();
    let events = decoded(&s.session_events(&first.session).unwrap());
    let EventBody::SessionStart(start) = &events[0] else {
        panic!("first event is not the start: {:?}", events[0])
    };
    assert_eq!(start.subject, "recorder-bot");
    assert_eq!(start.groups, ["agents"]);
    assert_eq!(start.connection, "app");
    assert_eq!(start.upstream_role, "gateway_login");
    assert_eq!(start.client_user, "agent");
    assert!(start.token_expires_at > 0);
    let EventBody::Statement(create) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(create.message, "query");
    assert!(create.text.starts_with("CREATE TABLE people"));
    assert_eq!(create.decision, "allow");
    assert_eq!(create.statements.len(), 2);
    assert_eq!(create.statements[1].writes, ["public.people"]);
    let EventBody::Outcome(created) = &events[2] else {
        panic!("{:?}", events[2])
    };
    assert_eq!((created.n, created.ran), (create.n, true));
    assert_eq!(created.tags, ["CREATE TABLE", "INSERT 0 3"]);
    assert!(
        matches!(events.last(), Some(EventBody::SessionEnd(end)) if end.reason == "client_terminated" && end.statements == 1)
    );

    // The SELECT's result, as the client saw it.
    let select_session = &sessions[sessions.len() - 2].session;
    let events = decoded(&s.session_events(select_session).unwrap());
    let result = events
        .iter()
        .find_map(|e| match e {
            EventBody::Outcome(o) => o.result.clone(),
            _ => None,
        })
        .expect("the SELECT's rows are recorded");
    assert_eq!(result.columns, ["id", "email"]);
    assert_eq!(result.rows[1], [Some("2".to_owned()), None]);
    assert_eq!(result.rows.len(), 3);
    assert!(!result.truncated);

    // The refused DROP: recorded with its deciding policy, never run.
    let drop_session = &sessions[sessions.len() - 3].session;
    let events = decoded(&s.session_events(drop_session).unwrap());
    let refused = events
        .iter()
        .find_map(|e| match e {
            EventBody::Statement(st) if st.text == "DROP TABLE people" => Some(st.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(refused.decision, "deny");
    assert_eq!(refused.policies, ["no-drop"]);
    assert!(
        !events.iter().any(|e| matches!(e, EventBody::Outcome(_))),
        "a refused statement has no outcome"
    );

    // tokio-postgres: Parse recorded, then each execution at its Bind with its parameters.
    let events = decoded(&s.session_events(&sessions[0].session).unwrap());
    let bind = events
        .iter()
        .find_map(|e| match e {
            EventBody::Statement(st) if st.message == "bind" && st.text.contains("shout") => Some(st.clone()),
            _ => None,
        })
        .expect("the execution is recorded at its Bind");
    assert_eq!(bind.params, [Some(format!("\\x{}", hex("hello")))]);
    let outcome = events
        .iter()
        .find_map(|e| match e {
            EventBody::Outcome(o) if o.n == bind.n => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(outcome.tags, ["SELECT 1"]);
    let result = outcome.result.unwrap();
    assert_eq!(result.columns, ["shout"]);
    assert_eq!(result.rows, [[Some("hello!".to_owned())]]);
    let failed = events
        .iter()
        .filter_map(|e| match e {
            EventBody::Outcome(o) => o.error.clone(),
            _ => None,
        })
        .next()
        .unwrap_or_else(|| panic!("the division by zero is recorded: {events:#?}"));
    assert_eq!(failed.sqlstate, "22012");

    // The operator's view.
    let (code, out, err) = cli(&env, &["sessions", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&env, &["sessions", "list", "--subject", "recorder-bot"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&first.session), "{out}");
    let (code, out, err) = cli(&env, &["sessions", "replay", select_session]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("SELECT id, email FROM people ORDER BY id") && out.contains("c@example.com"),
        "{out}"
    );
    let (code, out, _) = cli(&env, &["sessions", "replay", drop_session, "--json"]);
    assert_eq!(code, 0);
    let _: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = cli(&env, &["sessions", "show", "no-such-session"]);
    assert_ne!(code, 0);
    assert!(err.contains("no session"), "{err}");
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn operators_kill_sessions_and_revoke_identities() {
    let env = Env::start(Options::default()).await;
    let victim = env.mint("kill-me", &["agents"], "10m");
    let client = env.connect_plain("app", &victim).await.unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    let id = session_of(&env, "kill-me", false).await;
    let (code, out, err) = cli(&env, &["sessions", "kill", &id]);
    assert_eq!(code, 0, "{out}{err}");
    let killed_at = Instant::now();
    let e = loop {
        match client.simple_query("SELECT 1").await {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    killed_at.elapsed() < Duration::from_secs(2),
                    "the session outlived its kill"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(killed_at.elapsed() < Duration::from_secs(2));
    if let Some(db) = e.as_db_error() {
        assert_eq!(db.code().code(), "57P01");
    }
    session_of(&env, "kill-me", true).await;
    let events = decoded(&store(&env).session_events(&id).unwrap());
    assert!(
        matches!(events.last(), Some(EventBody::SessionEnd(end)) if end.reason == "killed"),
        "{events:?}"
    );
    let (code, _, err) = cli(&env, &["sessions", "kill", &id]);
    assert_ne!(code, 0, "killing an ended session is an error");
    assert!(!err.is_empty());

    // Revocation: live sessions of the identity end within a second, new ones are refused, others go on.
    let revoked = env.mint("revoke-me", &["agents"], "10m");
    let bystander = env.mint("bystander", &["agents"], "10m");
    let a = env.connect_plain("app", &revoked).await.unwrap();
    let b = env.connect_plain("app", &bystander).await.unwrap();
    a.simple_query("SELECT 1").await.unwrap();
    let (code, out, err) = cli(&env, &["revoke", "--subject", "revoke-me", "--until", "1h"]);
    assert_eq!(code, 0, "{out}{err}");
    let revoked_at = Instant::now();
    while a.simple_query("SELECT 1").await.is_ok() {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the revoked session outlived a second"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let e = env.connect_plain("app", &revoked).await.unwrap_err();
    let (code, message) = db_error(&e);
    assert_eq!(code, "28000");
    assert!(message.contains("revoked"), "{message}");
    b.simple_query("SELECT 1")
        .await
        .expect("other identities are untouched");
    let fresh = env.mint("revoke-me", &["agents"], "10m");
    assert!(
        env.connect_plain("app", &fresh).await.is_err(),
        "a fresh token of a revoked identity"
    );
}

#[tokio::test]
async fn a_failing_store_refuses_statements_and_nothing_reaches_the_database() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("failing-bot", &["agents"], "10m");
    let client = env.connect_plain("app", &token).await.unwrap();
    client.batch_execute("CREATE TABLE ledger (v int)").await.unwrap();
    let raw = rusqlite::Connection::open(store_path(&env)).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER fail BEFORE INSERT ON blocks \
         WHEN instr(NEW.events, CAST('statement' AS BLOB)) > 0 \
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    )
    .unwrap();
    let e = client
        .batch_execute("INSERT INTO ledger VALUES (1)")
        .await
        .unwrap_err();
    let (code, message) = db_error(&e);
    assert_eq!(code, "58030", "{message}");
    assert!(message.contains("audit trail"), "{message}");
    let e = client.query("SELECT $1::int", &[&7i32]).await.unwrap_err();
    assert_eq!(db_error(&e).0, "58030");
    raw.execute_batch("DROP TRIGGER fail").unwrap();
    client
        .batch_execute("INSERT INTO ledger VALUES (2)")
        .await
        .unwrap();
    let direct = env
        .pg
        .psql("app", "SELECT string_agg(v::text, ',') FROM ledger")
        .unwrap();
    assert_eq!(direct.trim(), "2", "the refused INSERT must not have run");
    let metrics = env.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_audit_failures_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Logged once per failed group commit by the writer, not again per refused statement.
    let log = env.gateway.log().unwrap();
    assert!(log.contains("audit store write failed"), "{log}");
    assert!(!log.contains("refusing the statement"), "{log}");
}

#[tokio::test]
async fn exports_follow_commits_and_retention_keeps_the_chain_verifiable() {
    let env = Env::start(Options {
        extra: "[audit]\nretention = \"2s\"\nprune_interval = \"500ms\"\n\
                [[audit.exports]]\nname = \"siem\"\njsonl = \"audit.jsonl\"\n"
            .to_owned(),
        ..Options::default()
    })
    .await;
    let token = env.mint("export-bot", &["agents"], "10m");
    let (ok, _, err) = env.psql(&env.conninfo("app", &token, "disable"), "SELECT 40 + 2");
    assert!(ok, "{err}");
    let id = session_of(&env, "export-bot", true).await;
    let jsonl = env.gateway.dir().join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines
            .iter()
            .any(|l| l["session"] == id.as_str() && l["kind"] == "session_end")
        {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the export did not deliver the session: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let statement = lines
        .iter()
        .find(|l| l["session"] == id.as_str() && l["kind"] == "statement")
        .unwrap();
    assert_eq!(statement["event"]["text"], "SELECT 40 + 2");
    assert_eq!(statement["hash"].as_str().unwrap().len(), 64);

    // Retention prunes the old prefix; what remains verifies from the checkpoint.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let report = portcullis_audit::verify(&mut store(&env)).unwrap();
        assert!(report.broken.is_none(), "{report:?}");
        if report.from_seq > 0 {
            assert!(store(&env).session_events(&id).unwrap().is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "nothing was pruned: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out, err) = cli(&env, &["sessions", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// The server's own statement log is the ground truth: every INSERT it received must be in the audit
/// trail, even though the gateway was killed with SIGKILL in the middle of the workload.
#[tokio::test]
async fn sigkill_mid_workload_leaves_no_executed_statement_unrecorded() {
    let mut env = Env::start(Options::default()).await;
    env.pg
        .psql(
            "app",
            "SET ROLE gateway_login; CREATE TABLE crash (worker int, i int, tag text); RESET ROLE; \
             ALTER SYSTEM SET log_statement = 'all'; SELECT pg_reload_conf();",
        )
        .unwrap();
    let token = env.mint("crash-bot", &["agents"], "10m");
    let mut workers = Vec::new();
    for w in 0..8 {
        let client = env.connect_plain("app", &token).await.unwrap();
        workers.push(tokio::spawn(async move {
            let mut done = 0;
            for i in 0.. {
                let result = if w % 2 == 0 {
                    client
                        .simple_query(&format!("INSERT INTO crash VALUES ({w}, {i}, 'q-{w}-{i}')"))
                        .await
                        .map(drop)
                } else {
                    let tag = format!("p-{w}-{i}");
                    client
                        .execute(
                            "INSERT INTO crash VALUES ($1::text::int, $2::text::int, $3)",
                            &[&w.to_string(), &i.to_string(), &tag],
                        )
                        .await
                        .map(drop)
                };
                if result.is_err() {
                    break;
                }
                done += 1;
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.gateway.kill_hard().unwrap();
    let mut sent = 0;
    for w in workers {
        sent += w.await.unwrap();
    }
    assert!(sent > 50, "too little work before the kill ({sent} statements)");
    env.gateway
        .restart(
            Path::new(BIN),
            &env.admin,
            &[(UPSTREAM_PASSWORD_ENV, "upstream-secret-pw")],
        )
        .await
        .unwrap();

    // What the store holds after the restart.
    let mut s = store(&env);
    let report = portcullis_audit::verify(&mut s).unwrap();
    assert!(report.broken.is_none(), "{report:?}");
    let mut texts = HashSet::new();
    let mut bound = HashSet::new();
    for e in s.events_after(0, usize::MAX).unwrap() {
        if let Ok(EventBody::Statement(st)) = e.decode() {
            if st.message == "bind"
                && let Some(Some(tag)) = st.params.get(2)
            {
                bound.insert(tag.clone());
            }
            texts.insert(st.text);
        }
    }

    // What the server executed, by its own log.
    let log = std::fs::read_to_string(env.pg.log_path()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let mut executed = 0;
    for (i, line) in lines.iter().enumerate() {
        if let Some(sql) = line
            .split("statement: ")
            .nth(1)
            .filter(|s| s.starts_with("INSERT INTO crash"))
        {
            executed += 1;
            assert!(texts.contains(sql), "executed but not recorded: {sql}");
        } else if line.contains("execute ") && line.contains("INSERT INTO crash") {
            let detail = lines.get(i + 1).copied().unwrap_or_default();
            let tag = detail
                .rsplit("$3 = '")
                .next()
                .and_then(|t| t.strip_suffix('\''))
                .unwrap_or_else(|| panic!("no parameters after {line:?}: {detail:?}"));
            executed += 1;
            assert!(
                bound.contains(&format!("\\x{}", hex(tag))),
                "executed but not recorded: {tag}"
            );
        }
    }
    assert!(
        executed > 50,
        "the server log shows too few executions ({executed})"
    );
    let rows = env.pg.psql("app", "SELECT count(*) FROM crash").unwrap();
    assert!(rows.trim().parse::<usize>().unwrap() <= executed);

    // The restarted gateway serves and records again.
    let (ok, _, err) = env.psql(
        &env.conninfo("app", &token, "disable"),
        "SELECT count(*) FROM crash",
    );
    assert!(ok, "{err}");
}
