//! `portcullis demo` end to end: the real binary, a real PostgreSQL, the scripted agent's story told in
//! full; and a clear one-line error when PostgreSQL is not installed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Runs `portcullis <args>` with `env`, at most `limit`; returns its exit status, stdout and stderr.
/// Past the limit it is interrupted (Ctrl-C, so it stops its PostgreSQL) and the test fails.
fn run_demo(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, read(&stdout), read(&stderr));
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "portcullis {} took more than {limit:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                read(&stdout),
                read(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn demo_tells_the_whole_story_with_auto_approve() {
    let (status, out, err) = run_demo(&["demo", "--auto-approve"], &[], Duration::from_secs(180));
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        !out.contains("panicked") && !err.contains("panicked"),
        "{out}{err}"
    );

    // 1. Masked values, and none of the seeded cleartext: emails, card numbers, phones, the key in notes.
    assert!(
        out.contains("**** **** **** "),
        "cards keep their last four digits:\n{out}"
    );
    assert!(out.contains("[redacted]"), "{out}");
    for cleartext in [
        "@example.com",
        "@example.org",
        "ava.brennan",
        "4000 00",
        "+1 212 555",
        "+44 20 7946",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(
            !out.contains(cleartext),
            "{cleartext:?} reached the output:\n{out}"
        );
    }
    // 2. The DROP is refused, naming the policy.
    assert!(
        out.contains("agent> DROP TABLE customers\n           ERROR 42501: permission denied by Portcullis policy no-ddl"),
        "{out}"
    );
    // ...and an identity no policy lets connect is turned away at the door.
    assert!(
        out.contains("FATAL 28000: token rejected: not permitted: dev/intern"),
        "{out}"
    );
    // 3. The unbounded UPDATE refused, the guarded one run.
    assert!(
        out.contains("agent> UPDATE customers SET email = NULL\n           ERROR 42501"),
        "{out}"
    );
    assert!(out.contains("UPDATE 1"), "{out}");
    // 4. The DELETE held, its request and the ways to approve it shown, then released.
    assert!(
        out.contains("held by the gateway as approval request apr_"),
        "{out}"
    );
    assert!(out.contains("/console/approvals"), "{out}");
    assert!(out.contains("approvals approve apr_"), "{out}");
    assert!(
        out.contains("the agent's statement, released:\n           DELETE 1"),
        "{out}"
    );
    // 5. The replay of the agent's session, and the chain verified.
    assert!(out.contains("session start  demo-agent [agents]"), "{out}");
    assert!(
        out.contains("approved by dev/demo-reviewer: demo auto-approve"),
        "{out}"
    );
    assert!(out.contains("outcome #7     DELETE 1"), "{out}");
    assert!(out.contains("session end"), "{out}");
    assert!(
        out.contains("\n    ok: ") && out.contains(" events verified"),
        "{out}"
    );
}

#[test]
fn demo_without_postgresql_says_so_in_one_line() {
    let empty = tempfile::tempdir().unwrap();
    let (status, out, err) = run_demo(
        &["demo", "--auto-approve"],
        &[
            ("PORTCULLIS_PG_BIN_DIR", empty.path().to_str().unwrap()),
            ("RUST_BACKTRACE", "1"),
        ],
        Duration::from_secs(60),
    );
    assert!(!status.success(), "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line, no backtrace:\n{err}");
    assert!(
        err.starts_with(
            "error: PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql \
             package"
        ),
        "{err}"
    );
    assert!(err.contains("PORTCULLIS_PG_BIN_DIR"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}
