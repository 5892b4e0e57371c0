//! The SQLite store on real files: tamper evidence, pruning, group commit, failing closed, several handles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]
//! closed, controls and cursors across handles, and several writers on one file.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use portcullis_audit::{
    AuditError, AuditLog, AuditStore, Control, Draft, EventBody, OutcomeEvent, RelatedWindow, Revocation,
    Sealed, SessionEndEvent, SessionFilter, SessionStartEvent, SqliteStore, StatementEvent, Timing,
    event_hash, verify,
};
use rusqlite::{Connection, params};

const ISSUER: &str = "https://issuer.example.com/realms/ops";

fn start(session: &str, at_us: i64, subject: &str, connection: &str) -> Draft {
    Draft {
        session: session.into(),
        at_us,
        body: EventBody::SessionStart(SessionStartEvent {
            protocol: "postgres".into(),
            issuer: ISSUER.into(),
            issuer_alias: "ops".into(),
            subject: subject.into(),
            groups: vec!["dba".into()],
            token_id: Some(format!("jti-{session}")),
            token_expires_at: 2_000_000_000,
            client_addr: "192.0.2.7:51234".into(),
            client_tls: true,
            client_user: subject.into(),
            connection: connection.into(),
            upstream_role: "gateway".into(),
            upstream_tls: true,
        }),
    }
}

fn statement(session: &str, at_us: i64, n: u64, decision: &str) -> Draft {
    Draft {
        session: session.into(),
        at_us,
        body: EventBody::Statement(StatementEvent {
            n,
            message: "query".into(),
            prepared: None,
            text: format!("select {n}"),
            params: vec![],
            statements: vec![],
            decision: decision.into(),
            policies: vec!["read-only".into()],
            reason: String::new(),
            body: None,
        }),
    }
}

fn outcome(session: &str, at_us: i64, n: u64) -> Draft {
    Draft {
        session: session.into(),
        at_us,
        body: EventBody::Outcome(OutcomeEvent {
            masked: Default::default(),
            n,
            ran: true,
            tags: vec!["SELECT 1".into()],
            rows: 1,
            duration_us: 120,
            error: None,
            result: None,
            body: None,
        }),
    }
}

fn end(session: &str, at_us: i64, reason: &str) -> Draft {
    end_counted(session, at_us, reason, 0, 0)
}

/// A session end carrying its statement counters (the summary takes them from here).
fn end_counted(session: &str, at_us: i64, reason: &str, statements: u64, refused: u64) -> Draft {
    Draft {
        session: session.into(),
        at_us,
        body: EventBody::SessionEnd(SessionEndEvent {
            reason: reason.into(),
            detail: String::new(),
            statements,
            refused,
            duration_ms: 5,
        }),
    }
}

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("audit").join("audit.db")
}

/// A raw connection to the file, as an attacker with write access to it would have.
fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn
}

/// One stored event, as an attacker with write access to the file sees it.
#[derive(Debug, Clone)]
struct Raw {
    /// The block row it is stored in.
    block: i64,
    seq: u64,
    at_us: i64,
    session: String,
    kind: String,
    body: String,
    hash: [u8; 32],
}

/// Edits the stored events behind the store's back: `edit` gets every event of every block, in order,
/// and whatever it leaves is packed back into the blocks the events came from (a block left empty is
/// deleted). Nothing else (the row's keys, previous hash, last hash) is touched.
fn edit_events(db: &Connection, edit: impl FnOnce(&mut Vec<Raw>)) {
    let mut events = Vec::new();
    let mut blocks = Vec::new();
    {
        let mut stmt = db
            .prepare("SELECT last_seq, events FROM blocks ORDER BY last_seq")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let block: i64 = row.get(0).unwrap();
            let data: Vec<u8> = row.get(1).unwrap();
            blocks.push(block);
            for e in portcullis_audit::block::events(&data) {
                let e = e.unwrap();
                events.push(Raw {
                    block,
                    seq: e.seq,
                    at_us: e.at_us,
                    session: e.session.to_owned(),
                    kind: e.kind.to_owned(),
                    body: e.body.to_owned(),
                    hash: e.hash,
                });
            }
        }
    }
    edit(&mut events);
    for block in blocks {
        let mut data = Vec::new();
        for e in events.iter().filter(|e| e.block == block) {
            let packed = portcullis_audit::block::PackedEvent {
                seq: e.seq,
                at_us: e.at_us,
                session: &e.session,
                kind: &e.kind,
                body: &e.body,
                hash: e.hash,
            };
            portcullis_audit::block::push(&mut data, &packed).unwrap();
        }
        if data.is_empty() {
            db.execute("DELETE FROM blocks WHERE last_seq = ?1", params![block])
                .unwrap();
        } else {
            db.execute(
                "UPDATE blocks SET events = ?1 WHERE last_seq = ?2",
                params![data, block],
            )
            .unwrap();
        }
    }
}

/// The event numbered `seq` among `events`.
fn event(events: &mut [Raw], seq: u64) -> &mut Raw {
    events.iter_mut().find(|e| e.seq == seq).unwrap()
}

/// A fresh store holding one session of ten events (seq 1..=10), verified clean.
fn ten_events(dir: &tempfile::TempDir) -> (PathBuf, SqliteStore, Vec<Sealed>) {
    let path = store_path(dir);
    let mut store = SqliteStore::open(&path).unwrap();
    let mut drafts = vec![start("s1", 1_000, "alice", "prod")];
    for n in 1..=4 {
        drafts.push(statement("s1", 1_000 + 2 * n as i64, n, "allow"));
        drafts.push(outcome("s1", 1_001 + 2 * n as i64, n));
    }
    drafts.push(end("s1", 1_100, "client_terminated"));
    let sealed = store.append(&drafts).unwrap();
    assert_eq!(sealed.len(), 10);
    assert_eq!(verify(&mut store).unwrap().broken, None);
    (path, store, sealed)
}

#[test]
fn append_seals_a_contiguous_chain_and_summarises_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(store.append(&[]).unwrap().is_empty());

    let batches = vec![
        vec![
            start("a", 1_000, "alice", "prod"),
            statement("a", 1_001, 1, "allow"),
        ],
        vec![
            start("b", 2_000, "bob", "staging"),
            outcome("a", 2_001, 1),
            statement("a", 2_002, 2, "deny"),
            statement("b", 2_003, 1, "approval_required"),
        ],
        vec![
            statement("a", 2_004, 3, "allow"),
            start("c", 3_000, "alice", "staging"),
            statement("b", 3_001, 2, "allow"),
            end_counted("a", 3_002, "client_terminated", 3, 1),
        ],
    ];
    let mut sealed = Vec::new();
    for batch in &batches {
        sealed.extend(store.append(batch).unwrap());
    }
    // SQLite gives the files it creates beside the database the database's own mode.
    let wal = path.with_file_name("audit.db-wal");
    assert_eq!(
        std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let seqs: Vec<u64> = sealed.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());

    let report = verify(&mut store).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.events, 10);
    assert_eq!(report.from_seq, 0);
    assert_eq!(report.last_seq, 10);
    assert_eq!(report.last_hash, sealed.last().unwrap().hash);

    // Stored events are the drafts, as sealed.
    let stored = store.events_after(0, 100).unwrap();
    let drafts: Vec<&Draft> = batches.iter().flatten().collect();
    for ((event, draft), seal) in stored.iter().zip(&drafts).zip(&sealed) {
        assert_eq!(event.hash, seal.hash);
        assert_eq!(event.session, draft.session);
        assert_eq!(event.kind, draft.body.kind());
        assert_eq!(event.decode().unwrap(), draft.body);
    }
    assert_eq!(
        store
            .events_after(7, 2)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [8, 9]
    );
    let a: Vec<u64> = store.session_events("a").unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(a, [1, 2, 4, 5, 7, 10]);

    let all = store.sessions(&SessionFilter::default()).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.session.as_str()).collect();
    assert_eq!(names, ["c", "b", "a"]);
    let a = &all[2];
    assert_eq!((a.started_us, a.ended_us), (1_000, Some(3_002)));
    assert_eq!((a.statements, a.refused), (3, 1));
    assert_eq!(a.end_reason.as_deref(), Some("client_terminated"));
    assert_eq!((a.issuer.as_str(), a.subject.as_str()), (ISSUER, "alice"));
    assert_eq!(
        (a.connection.as_str(), a.client_addr.as_str()),
        ("prod", "192.0.2.7:51234")
    );
    let b = &all[1];
    assert_eq!(
        (b.statements, b.refused, b.ended_us, b.end_reason.clone()),
        (2, 1, None, None)
    );
    let c = &all[0];
    assert_eq!((c.statements, c.refused, c.ended_us), (0, 0, None));

    let cases: Vec<(SessionFilter, Vec<&str>)> = vec![
        (
            SessionFilter {
                subject: Some("alice".into()),
                ..Default::default()
            },
            vec!["c", "a"],
        ),
        (
            SessionFilter {
                connection: Some("staging".into()),
                ..Default::default()
            },
            vec!["c", "b"],
        ),
        (
            SessionFilter {
                since_us: Some(2_000),
                ..Default::default()
            },
            vec!["c", "b"],
        ),
        (
            SessionFilter {
                until_us: Some(2_000),
                ..Default::default()
            },
            vec!["a"],
        ),
        (
            SessionFilter {
                limit: Some(1),
                ..Default::default()
            },
            vec!["c"],
        ),
        (
            SessionFilter {
                subject: Some("alice".into()),
                connection: Some("staging".into()),
                ..Default::default()
            },
            vec!["c"],
        ),
        (
            SessionFilter {
                subject: Some("mallory".into()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let got: Vec<String> = store
            .sessions(&filter)
            .unwrap()
            .into_iter()
            .map(|s| s.session)
            .collect();
        assert_eq!(got, expected, "{filter:?}");
    }
}

#[test]
fn tampering_breaks_the_chain_where_it_happened() {
    type Tamper = fn(&Connection);
    // (what, how, the first event reported broken, the last event that still verifies)
    let cases: [(&str, Tamper, u64, u64); 8] = [
        (
            "edit a body",
            |db| {
                edit_events(db, |events| {
                    let e = event(events, 4);
                    let edited = e.body.replace("select 2", "select 9");
                    assert_ne!(edited, e.body);
                    e.body = edited;
                });
            },
            4,
            3,
        ),
        (
            "delete a middle event",
            |db| edit_events(db, |events| events.retain(|e| e.seq != 5)),
            6,
            4,
        ),
        (
            "reorder two events",
            |db| edit_events(db, |events| events.swap(3, 6)),
            7,
            3,
        ),
        (
            "swap two events and renumber them",
            |db| {
                edit_events(db, |events| {
                    events.swap(3, 6);
                    (events[3].seq, events[6].seq) = (4, 7);
                });
            },
            4,
            3,
        ),
        (
            "edit a body and rehash it",
            |db| {
                edit_events(db, |events| {
                    let prev = hex::encode(event(events, 5).hash);
                    let e = event(events, 6);
                    let forged = e.body.replace("select 3", "select 9");
                    assert_ne!(forged, e.body);
                    let hash = event_hash(&prev, 6, &e.session, e.at_us, &e.kind, &forged);
                    e.body = forged;
                    e.hash = portcullis_audit::hash_bytes(&hash).unwrap();
                });
            },
            7,
            6,
        ),
        (
            "edit a timestamp",
            |db| edit_events(db, |events| event(events, 3).at_us -= 1),
            3,
            2,
        ),
        (
            "cut the stored block short",
            |db| {
                let data: Vec<u8> = db
                    .query_row("SELECT events FROM blocks", [], |r| r.get(0))
                    .unwrap();
                // Event 6 starts after five events: cut it in the middle of its body.
                let sixth = portcullis_audit::block::events(&data)
                    .take(5)
                    .map(|e| {
                        let e = e.unwrap();
                        8 + 8 + 2 + e.session.len() + 1 + e.kind.len() + 4 + e.body.len() + 32
                    })
                    .sum::<usize>();
                db.execute("UPDATE blocks SET events = ?1", params![&data[..sixth + 40]])
                    .unwrap();
            },
            6,
            5,
        ),
        (
            "replace the stored block with text",
            |db| {
                db.execute("UPDATE blocks SET events = 'nothing happened'", [])
                    .unwrap();
            },
            1,
            0,
        ),
    ];
    for (name, tamper, broken_at, last_good) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut store, _) = ten_events(&dir);
        tamper(&raw(&path));
        let report = verify(&mut store).unwrap();
        let broken = report.broken.unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!(broken.seq, broken_at, "{name}: {}", broken.reason);
        assert_eq!((report.last_seq, report.events), (last_good, last_good), "{name}");
    }
}

#[test]
fn prune_removes_the_old_prefix_and_the_chain_continues_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.prune(i64::MAX).unwrap().removed, 0);
    assert_eq!(store.checkpoint().unwrap(), None);

    // Two group commits: pruning removes whole ones.
    let mut sealed = store
        .append(&[
            start("old", 1_000, "alice", "prod"),
            statement("old", 1_001, 1, "allow"),
            outcome("old", 1_002, 1),
            end("old", 1_003, "client_terminated"),
            start("live", 1_004, "bob", "prod"),
        ])
        .unwrap();
    sealed.extend(
        store
            .append(&[
                statement("live", 9_000, 1, "allow"),
                // Old, but after a newer event: pruning takes a prefix, so it stays.
                outcome("live", 1_005, 1),
                statement("live", 9_002, 2, "deny"),
            ])
            .unwrap(),
    );

    let report = store.prune(5_000).unwrap();
    assert_eq!(report.removed, 5);
    let checkpoint = report.checkpoint.unwrap();
    assert_eq!(
        (checkpoint.seq, checkpoint.hash.as_str()),
        (5, sealed[4].hash.as_str())
    );
    assert_eq!(store.checkpoint().unwrap(), Some(checkpoint.clone()));
    let left: Vec<u64> = store
        .events_after(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [6, 7, 8]);
    let sessions: Vec<String> = store
        .sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| s.session)
        .collect();
    assert_eq!(
        sessions,
        ["live"],
        "the ended old session's summary goes, the live one stays"
    );

    let report = verify(&mut store).unwrap();
    assert_eq!(
        (report.broken, report.from_seq, report.events, report.last_seq),
        (None, 5, 3, 8)
    );

    // Pruning again changes nothing.
    let again = store.prune(5_000).unwrap();
    assert_eq!((again.removed, again.checkpoint), (0, Some(checkpoint)));

    // Appending after a prune continues the chain.
    let next = store.append(&[outcome("live", 9_003, 2)]).unwrap();
    assert_eq!(next[0].seq, 9);
    let report = verify(&mut store).unwrap();
    assert_eq!(
        (report.broken, report.events, report.last_hash),
        (None, 4, next[0].hash.clone())
    );

    // Pruning everything leaves only the checkpoint, and the chain still continues from it.
    let all = store.prune(i64::MAX).unwrap();
    assert_eq!(all.removed, 4);
    assert_eq!(
        all.checkpoint.as_ref().map(|c| (c.seq, c.hash.clone())),
        Some((9, next[0].hash.clone()))
    );
    assert!(store.events_after(0, 10).unwrap().is_empty());
    let after = store.append(&[end("live", 9_500, "client_terminated")]).unwrap();
    assert_eq!(after[0].seq, 10);
    assert_eq!(store.events_after(0, 10).unwrap()[0].prev_hash, next[0].hash);
    assert_eq!(verify(&mut store).unwrap().broken, None);

    // Tampering after a prune is still detected: an edited event, or a forged checkpoint.
    store.append(&[start("new", 9_600, "carol", "prod")]).unwrap();
    let db = raw(&path);
    edit_events(&db, |events| event(events, 11).session = "other".into());
    assert_eq!(verify(&mut store).unwrap().broken.map(|b| b.seq), Some(11));
    edit_events(&db, |events| event(events, 11).session = "new".into());
    assert_eq!(verify(&mut store).unwrap().broken, None);
    db.execute("UPDATE checkpoint SET hash = ?1", params!["ab".repeat(32)])
        .unwrap();
    assert_eq!(verify(&mut store).unwrap().broken.map(|b| b.seq), Some(10));
}

#[test]
fn prune_refuses_to_checkpoint_over_a_deleted_event() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store, _) = ten_events(&dir);
    // Everything is older than 50_000, and someone deleted event 5: pruning would erase the evidence.
    edit_events(&raw(&path), |events| events.retain(|e| e.seq != 5));
    let error = store.prune(50_000).unwrap_err().to_string();
    assert!(
        error.contains("event 6") && error.contains("run verify"),
        "{error}"
    );
    assert_eq!(store.checkpoint().unwrap(), None);
    assert_eq!(store.events_after(0, 100).unwrap().len(), 9, "nothing removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_transactions_among_concurrent_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let log = AuditLog::start(Box::new(SqliteStore::open(&path).unwrap())).unwrap();

    let mut tasks = Vec::new();
    for t in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let session = format!("s{t}");
            let mut seqs = vec![log.commit(start(&session, 1, "alice", "prod")).await.unwrap().seq];
            for n in 1..50 {
                seqs.push(log.commit(statement(&session, 2, n, "allow")).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a session's events keep their order"
        );
        all.extend(seqs);
    }
    assert_eq!(all.len(), 64 * 50);
    assert_eq!(all.iter().max(), Some(&(64 * 50)));
    let stats = log.stats();
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stats.events.load(std::sync::atomic::Ordering::Relaxed), 64 * 50);
    assert_eq!(stats.failures.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(commits < 64 * 50, "{commits} commits: none were shared");

    let mut reader = SqliteStore::open(&path).unwrap();
    let report = verify(&mut reader).unwrap();
    assert_eq!((report.broken, report.events), (None, 64 * 50));
    let s7 = reader
        .sessions(&SessionFilter {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(s7.len(), 64);
    assert!(s7.iter().all(|s| s.statements == 49));

    // Submitted events are stored before a later commit, in submission order.
    for n in 1..=3 {
        log.submit(statement("late", 10, n, "allow"));
    }
    let last = log.commit(end("late", 11, "client_terminated")).await.unwrap();
    let late = reader.session_events("late").unwrap();
    let ns: Vec<u64> = late
        .iter()
        .map(|e| match e.decode().unwrap() {
            EventBody::Statement(s) => s.n,
            _ => 0,
        })
        .collect();
    assert_eq!(ns, [1, 2, 3, 0]);
    assert_eq!(late.last().unwrap().seq, last.seq);
    assert_eq!(*log.committed().borrow(), last.seq);

    // Several events as one message: stored in order, in one commit, answered with the last seal;
    // submitted ones as well. An empty batch is an error, not a silent success.
    let commits_before = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    let sealed = log
        .commit_all(vec![
            start("both", 20, "bob", "prod"),
            statement("both", 21, 1, "allow"),
        ])
        .await
        .unwrap();
    log.submit_all(vec![
        statement("both", 22, 2, "allow"),
        end("both", 23, "client_terminated"),
    ]);
    let after = log.commit(statement("after", 24, 1, "allow")).await.unwrap();
    let both = reader.session_events("both").unwrap();
    let kinds: Vec<&str> = both.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["session_start", "statement", "statement", "session_end"]);
    assert_eq!(both[1].seq, sealed.seq);
    assert_eq!(both[0].seq + 1, sealed.seq);
    assert_eq!(both[3].seq + 1, after.seq);
    assert!(stats.commits.load(std::sync::atomic::Ordering::Relaxed) - commits_before <= 3);
    assert!(log.commit_all(Vec::new()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_refuses_commits_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut store = SqliteStore::open(&path).unwrap();

    // All or nothing: one poisoned draft in a batch stores none of it, summaries included.
    let db = raw(&path);
    db.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON sessions WHEN NEW.session = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
    )
    .unwrap();
    let err = store
        .append(&[
            start("good", 1, "alice", "prod"),
            start("poison", 2, "bob", "prod"),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("appending events"), "{err}");
    assert!(store.events_after(0, 10).unwrap().is_empty());
    assert!(store.sessions(&SessionFilter::default()).unwrap().is_empty());

    let log = AuditLog::start(Box::new(store)).unwrap();
    assert_eq!(
        log.commit(start("good", 1, "alice", "prod")).await.unwrap().seq,
        1
    );

    db.execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON blocks BEGIN SELECT RAISE(ABORT, 'x'); END;")
        .unwrap();
    assert!(log.commit(statement("good", 2, 1, "allow")).await.is_err());
    assert!(log.stats().failures.load(std::sync::atomic::Ordering::Relaxed) > 0);

    db.execute_batch("DROP TRIGGER refuse;").unwrap();
    let sealed = log.commit(statement("good", 3, 2, "allow")).await.unwrap();
    assert_eq!(sealed.seq, 2, "the refused event was not stored");
    let mut reader = SqliteStore::open(&path).unwrap();
    assert_eq!(verify(&mut reader).unwrap().broken, None);
}

#[test]
fn controls_and_cursors_are_shared_between_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut admin = SqliteStore::open(&path).unwrap();
    let mut gateway = SqliteStore::open(&path).unwrap();
    assert!(gateway.controls_after(0).unwrap().is_empty());

    let kill = admin
        .add_control(&Control::Kill {
            id: 0,
            session: "s1".into(),
        })
        .unwrap();
    let bar = Revocation {
        subject: "mallory".into(),
        issuer: Some(ISSUER.into()),
        until_us: Some(5_000),
    };
    let revoke = admin
        .add_control(&Control::Revoke {
            id: 0,
            revocation: bar.clone(),
        })
        .unwrap();
    let forever = Revocation {
        subject: "eve".into(),
        issuer: None,
        until_us: None,
    };
    let revoke_forever = admin
        .add_control(&Control::Revoke {
            id: 0,
            revocation: forever.clone(),
        })
        .unwrap();
    assert!(kill < revoke && revoke < revoke_forever);

    assert_eq!(
        gateway.controls_after(0).unwrap(),
        [
            Control::Kill {
                id: kill,
                session: "s1".into()
            },
            Control::Revoke {
                id: revoke,
                revocation: bar
            },
            Control::Revoke {
                id: revoke_forever,
                revocation: forever.clone()
            },
        ]
    );
    assert_eq!(
        gateway.controls_after(revoke).unwrap(),
        [Control::Revoke {
            id: revoke_forever,
            revocation: forever
        }]
    );
    assert!(gateway.controls_after(revoke_forever).unwrap().is_empty());

    // A kind this build does not know (written by a newer gateway) is skipped, not an error.
    raw(&path)
        .execute("INSERT INTO controls (at_us, kind) VALUES (1, 'quarantine')", [])
        .unwrap();
    assert!(gateway.controls_after(revoke_forever).unwrap().is_empty());

    assert_eq!(gateway.export_cursor("siem").unwrap(), 0);
    admin.set_export_cursor("siem", 42).unwrap();
    assert_eq!(gateway.export_cursor("siem").unwrap(), 42);
    admin.set_export_cursor("siem", 7).unwrap();
    assert_eq!(gateway.export_cursor("siem").unwrap(), 7);
    assert_eq!(gateway.export_cursor("archive").unwrap(), 0);
}

#[test]
fn reopening_keeps_the_store_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let first = SqliteStore::open(&path)
        .unwrap()
        .append(&[start("s1", 1, "alice", "prod")])
        .unwrap();
    let mut again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.events_after(0, 10).unwrap()[0].hash, first[0].hash);
    let db = raw(&path);
    let mode: String = db.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        db.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        4
    );

    db.execute_batch("PRAGMA user_version = 5;").unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("schema version 5"), "{err}");
}

#[test]
fn handles_appending_in_turn_and_at_once_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut one = SqliteStore::open(&path).unwrap();
    let mut two = SqliteStore::open(&path).unwrap();
    let mut seqs = Vec::new();
    for round in 0..10 {
        let a = one
            .append(&[statement("one", round, 1, "allow"), outcome("one", round, 1)])
            .unwrap();
        let b = two.append(&[statement("two", round, 1, "allow")]).unwrap();
        seqs.extend(a.iter().chain(&b).map(|s| s.seq));
    }
    assert_eq!(seqs, (1..=30).collect::<Vec<u64>>());

    // Two threads, each with its own handle, racing for the write lock.
    let writers: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|session| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = SqliteStore::open(&path).unwrap();
                for n in 0..100 {
                    store
                        .append(&[statement(session, 5, n, "allow"), outcome(session, 6, n)])
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let report = verify(&mut one).unwrap();
    assert_eq!((report.broken, report.events, report.last_seq), (None, 430, 430));
}

#[test]
fn verify_reports_progress_after_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&store_path(&dir)).unwrap();
    let drafts: Vec<Draft> = (1..=2_500)
        .map(|n| statement("long", i64::try_from(n).unwrap(), n, "allow"))
        .collect();
    store.append(&drafts).unwrap();
    let mut seen = Vec::new();
    let report = portcullis_audit::verify_with_progress(&mut store, &mut |events, seq| {
        seen.push((events, seq));
    })
    .unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(seen, [(1_000, 1_000), (2_000, 2_000), (2_500, 2_500)]);
}

/// `start`, over `protocol`, for a principal of `issuer`.
fn start_over(session: &str, at_us: i64, protocol: &str, issuer: &str, subject: &str) -> Draft {
    let mut draft = start(session, at_us, subject, "crm");
    if let EventBody::SessionStart(s) = &mut draft.body {
        s.protocol = protocol.into();
        s.issuer = issuer.into();
    }
    draft
}

#[test]
fn related_sessions_are_the_principals_other_protocol_sessions_near_in_time() {
    const S: i64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&store_path(&dir)).unwrap();
    let other_issuer = "https://elsewhere.example.com";
    store
        .append(&[
            start_over("db", 100 * S, "postgres", ISSUER, "agent"),
            start_over("call", 150 * S, "http", ISSUER, "agent"),
            start_over("db2", 150 * S, "postgres", ISSUER, "agent"),
            start_over("someone", 150 * S, "http", ISSUER, "someone-else"),
            start_over("same-sub-other-iss", 150 * S, "http", other_issuer, "agent"),
            statement("db2", 155 * S, 1, "allow"),
            statement("db2", 156 * S, 2, "deny"),
            end("call", 150 * S + S / 10, "completed"),
            end("db2", 160 * S, "client_terminated"),
            end("db", 200 * S, "client_terminated"),
            start_over("later", 230 * S, "http", ISSUER, "agent"),
            end("later", 230 * S + S / 10, "completed"),
            start_over("live", 250 * S, "http", ISSUER, "agent"),
            start_over("far", 400 * S, "http", ISSUER, "agent"),
            end("far", 400 * S + S / 10, "completed"),
        ])
        .unwrap();
    let now = 1_000 * S;
    let at = |window_s: i64, limit: usize| RelatedWindow {
        window_us: window_s * S,
        limit,
        now_us: now,
    };
    // (session, window in seconds, limit, related newest first)
    let cases: &[(&str, i64, usize, &[&str])] = &[
        // Other principals (subject or issuer) and its own protocol never; the live one's span runs to now.
        ("db", 60, 50, &["live", "later", "call"]),
        ("db", 10, 50, &["call"]),
        ("db", 60, 1, &["live"]),
        ("db", 0, 50, &["call"]),
        ("call", 60, 50, &["db2", "db"]),
        ("far", 60, 50, &[]),
        ("far", 300, 50, &["db2", "db"]),
        // A live session's span runs to now: every later session of the other protocol meets it.
        ("live", 60, 50, &["db"]),
        ("someone", 600, 50, &[]),
    ];
    for &(session, window_s, limit, expected) in cases {
        let related = store.related_sessions(session, &at(window_s, limit)).unwrap();
        let names: Vec<&str> = related.iter().map(|r| r.summary.session.as_str()).collect();
        assert_eq!(names, expected, "{session} within {window_s}s, at most {limit}");
    }

    // Each says where it lies, with the summary's counters (a live one's counted from its events).
    let related = store.related_sessions("db", &at(60, 50)).unwrap();
    let timing: Vec<Timing> = related.iter().map(|r| r.timing).collect();
    assert_eq!(
        timing,
        [
            Timing::After { gap_us: 50 * S },
            Timing::After { gap_us: 30 * S },
            Timing::Overlapping
        ]
    );
    assert_eq!(related[2].reason, "same principal, overlapping");
    assert_eq!(related[1].reason, "same principal, started 30.0s after it ended");
    assert_eq!(related[2].summary.protocol, "http");
    let related = store.related_sessions("far", &at(300, 50)).unwrap();
    assert_eq!(related[1].timing, Timing::Before { gap_us: 200 * S });
    assert_eq!(
        related[1].reason,
        "same principal, ended 200.0s before it started"
    );
    let related = store.related_sessions("call", &at(60, 50)).unwrap();
    assert_eq!(
        (related[0].summary.statements, related[0].summary.refused),
        (0, 0)
    );
    let json = serde_json::to_value(&related[0]).unwrap();
    assert_eq!(
        (
            &json["session"],
            &json["protocol"],
            &json["timing"],
            &json["reason"]
        ),
        (
            &serde_json::json!("db2"),
            &serde_json::json!("postgres"),
            &serde_json::json!("overlapping"),
            &serde_json::json!("same principal, overlapping")
        )
    );

    let err = store.related_sessions("nope", &at(60, 50)).unwrap_err();
    assert!(matches!(err, AuditError::NoSession(_)), "{err}");
}
