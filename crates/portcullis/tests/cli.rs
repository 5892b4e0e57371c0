//! The command line as an operator uses it: `config check` names the bad key; `--help` explains itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use portcullis_testkit::gateway::run_cli;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn check(toml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, toml).unwrap();
    let out = run_cli(Path::new(BIN), &["config", "check", file.to_str().unwrap()], env).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn config_check_accepts_the_example_and_names_bad_keys() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/portcullis.toml"
    ))
    .unwrap()
    // The example's policy paths are relative to it; the check runs on a copy elsewhere.
    .replace(
        "\"policies/",
        concat!("\"", env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/"),
    );
    let secrets = [
        ("ORDERS_DB_PASSWORD", "from-env"),
        ("CRM_API_KEY", "from-env"),
        ("PORTCULLIS_MASK_KEY", "a-masking-key-from-the-environment"),
    ];
    let (ok, text) = check(&example, &secrets);
    assert!(ok, "{text}");
    assert!(
        text.contains("ok (3 connection(s), 2 issuer(s), 11 policies)"),
        "{text}"
    );

    let cases: &[(&str, &str, &str)] = &[
        (
            "[server.postgres]\nlisten = 'nowhere'",
            "server.postgres.listen",
            "the listener address",
        ),
        ("[server]\nstate_dri = '/tmp'", "server", "a misspelt key"),
        (
            "[[identity.issuers]]\nissuer = 'https://a'\naudience = 'x'\nalias = 'a'\nalgorithms = ['HS256']",
            "identity.issuers",
            "HMAC",
        ),
        (
            "[identity]\nsession_grace = 'soon'",
            "identity.session_grace",
            "a duration",
        ),
    ];
    for (toml, path, what) in cases {
        let (ok, text) = check(toml, &[]);
        assert!(!ok, "{what}: accepted");
        assert!(text.contains(path), "{what}: {text:?} does not name {path}");
    }
    // Masking rules are checked when the file is: a rule that masks nothing, an unknown detector, an
    // unknown connection, a missing key.
    let masking_cases: &[(&str, &str)] = &[
        ("[[masking.rules]]\nstrategy = 'redact'\n", "masking.rules[4]"),
        (
            "[[masking.rules]]\ndetectors = ['dna']\nstrategy = 'redact'\n",
            "masking.rules",
        ),
        (
            "[[masking.rules]]\ncolumns = ['*.x']\nstrategy = 'null'\nconnections = ['nope']\n",
            "masking.rules[4].connections[0]",
        ),
    ];
    for (extra, path) in masking_cases {
        let (ok, text) = check(&format!("{example}\n{extra}"), &secrets);
        assert!(!ok, "{extra}: accepted");
        assert!(text.contains(path), "{extra}: {text:?} does not name {path}");
    }
    // Approval settings are checked when approvals are on (the example turns them on).
    let approval_cases: &[(&str, &str, &str)] = &[
        ("quorum = 1", "quorum = 0", "approvals.quorum"),
        (
            "reviewers_group = \"reviewers\"",
            "reviewers_group = \"\"",
            "approvals.reviewers_group",
        ),
        (
            "deny_reason_required = false",
            "notify_webhook = \"ftp://x\"",
            "approvals.notify_webhook",
        ),
        ("\nmode = \"hold\"", "\nmode = \"maybe\"", "approvals.mode"),
        (
            "approval_mode = \"hold\"",
            "approval_mode = \"later\"",
            "connections[0].approval_mode",
        ),
    ];
    for (from, to, path) in approval_cases {
        assert!(example.contains(from), "the example has no {from}");
        let (ok, text) = check(&example.replacen(from, to, 1), &secrets);
        assert!(!ok, "{to}: accepted");
        assert!(text.contains(path), "{to}: {text:?} does not name {path}");
    }

    let (ok, text) = check(
        &example,
        &[("ORDERS_DB_PASSWORD", "from-env"), ("CRM_API_KEY", "from-env")],
    );
    assert!(!ok && text.contains("masking.key"), "{text}");
    let short = [
        ("ORDERS_DB_PASSWORD", "from-env"),
        ("CRM_API_KEY", "from-env"),
        ("PORTCULLIS_MASK_KEY", "short"),
    ];
    let (ok, text) = check(&example, &short);
    assert!(
        !ok && text.contains("masking.key: the key must be at least 16"),
        "{text}"
    );

    let inline = example.replace("${ORDERS_DB_PASSWORD}", "hunter2");
    let (ok, text) = check(&inline, &[]);
    assert!(!ok);
    assert!(
        text.contains("connections[0].password: inline secrets are not allowed"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "the secret was echoed");
}

#[test]
fn help_names_every_command() {
    let out = run_cli(Path::new(BIN), &["--help"], &[]).unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "demo",
        "serve",
        "config",
        "token",
        "sessions",
        "revoke",
        "approvals",
    ] {
        assert!(help.contains(command), "{help}");
    }
    let out = run_cli(Path::new(BIN), &["demo", "--help"], &[]).unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--auto-approve",
        "--keep-running",
        "--approval-timeout",
        "PORTCULLIS_PG_BIN_DIR",
    ] {
        assert!(help.contains(flag), "{help}");
    }
    let out = run_cli(Path::new(BIN), &["token", "mint", "--help"], &[]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--ttl"));
    let out = run_cli(Path::new(BIN), &["approvals", "approve", "--help"], &[]).unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--uses", "--valid-for", "--token", "--admin", "PORTCULLIS_TOKEN"] {
        assert!(help.contains(flag), "{help}");
    }
}
