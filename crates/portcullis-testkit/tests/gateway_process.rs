//! GatewayProcess's own behaviour (health wait, log, signals, memory, errors), with small stand-in
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]
//! executables: the real gateway is tested by the `portcullis` crate through this harness.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_testkit::gateway::{GatewayProcess, run_cli};
use portcullis_testkit::ports::free_addr;

/// A `#!/bin/sh` executable named `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Serves 200 on /healthz at $ADMIN, logs its arguments and each SIGHUP, exits 0 on SIGTERM.
const SERVER: &str = r#"exec node -e '
const [host, port] = process.env.ADMIN.split(":");
console.log("args", process.argv.slice(1).join(" "));
process.on("SIGHUP", () => console.log("reloaded"));
process.on("SIGTERM", () => process.exit(0));
require("http").createServer((req, res) => {
  res.statusCode = req.url === "/healthz" ? 200 : 404;
  res.end();
}).listen(Number(port), host, () => console.error("listening: portcullis is serving"));
' -- "$@""#;

#[tokio::test]
async fn waits_for_health_and_signals() {
    let bins = tempfile::tempdir().unwrap();
    let bin = script(bins.path(), "server", SERVER);
    let admin = free_addr().unwrap();
    let mut gateway = GatewayProcess::start(&bin, "[server]\n", &admin, &[("ADMIN", &admin)])
        .await
        .unwrap();
    assert!(gateway.is_running());
    assert_eq!(
        std::fs::read_to_string(gateway.config_path()).unwrap(),
        "[server]\n"
    );
    let log = gateway.log().unwrap();
    let config = gateway.dir().join("portcullis.toml");
    assert!(
        log.contains(&format!("args serve --config {}", config.display())),
        "{log}"
    );
    assert!(log.contains("listening"), "stderr goes to the log too: {log}");
    assert!(gateway.rss_kib().unwrap() > 1000);
    // The resident size first: the peak read after it is at least that (read the other way round, the
    // process may grow between the two reads).
    let rss = gateway.rss_kib().unwrap();
    assert!(gateway.peak_rss_kib().unwrap() >= rss);

    gateway.sighup().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !gateway.log().unwrap().contains("reloaded") {
        assert!(std::time::Instant::now() < deadline, "no reload logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = gateway.terminate(Duration::from_secs(5)).await.unwrap();
    assert!(status.success());
    assert!(!gateway.is_running());
}

#[tokio::test]
async fn early_exit_reports_the_log() {
    let bins = tempfile::tempdir().unwrap();
    let bin = script(
        bins.path(),
        "failing",
        "echo 'config error: no [server]' >&2; exit 3",
    );
    let admin = free_addr().unwrap();
    let error = GatewayProcess::start(&bin, "", &admin, &[]).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("config error: no [server]"), "{message}");
}

#[test]
fn run_cli_captures_output_and_status() {
    let bins = tempfile::tempdir().unwrap();
    let bin = script(bins.path(), "cli", r#"echo "$1 $GREETING"; exit 4"#);
    let output = run_cli(&bin, &["hello"], &[("GREETING", "world")]).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello world\n");
    assert_eq!(output.status.code(), Some(4));
}
