//! The gateway binary as a child process (`portcullis serve`), and one-shot CLI runs, for tests.
//!
//! Integration tests of the `portcullis` crate pass the binary's path: `env!("CARGO_BIN_EXE_portcullis")`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

const HEALTHY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of gateway.log quoted in start errors.
const LOG_TAIL_LINES: usize = 60;
const CONFIG_FILE: &str = "portcullis.toml";
const LOG_FILE: &str = "gateway.log";
/// What the gateway logs once both listeners are bound.
const SERVING: &str = "portcullis is serving";

/// A running `portcullis serve`; Drop kills it (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    /// Config file, log, and room for `state_dir`; deleted after the process is gone.
    dir: TempDir,
}

impl GatewayProcess {
    /// Writes `config_toml` to `<dir>/portcullis.toml` in a new temporary directory (also usable as
    /// `state_dir`: see [`GatewayProcess::dir`]), spawns `<bin> serve --config <file>` with the extra
    /// `env` (added to this process's environment), stdout and stderr appended to `<dir>/gateway.log`,
    /// and waits up to 20 s until `GET http://<admin_addr>/healthz` answers 200. On timeout or early
    /// exit the error includes the log's tail.
    ///
    /// The config often needs the directory's path (state_dir); use
    /// [`GatewayProcess::start_in`] with a directory made beforehand for that.
    pub async fn start(
        bin: &Path,
        config_toml: &str,
        admin_addr: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<GatewayProcess> {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-gw-")
            .tempdir()
            .context("create the gateway's temporary directory")?;
        Self::start_in(dir, bin, config_toml, admin_addr, env).await
    }

    /// As [`GatewayProcess::start`], in a directory the caller made (and named in the config).
    pub async fn start_in(
        dir: TempDir,
        bin: &Path,
        config_toml: &str,
        admin_addr: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<GatewayProcess> {
        let config = dir.path().join(CONFIG_FILE);
        fs::write(&config, config_toml).with_context(|| format!("write {}", config.display()))?;
        let child = spawn_serve(bin, dir.path(), env)?;
        // From here on, returning an error drops `gateway`, which kills the process.
        let mut gateway = GatewayProcess { child, dir };
        gateway.wait_healthy(admin_addr, 0).await?;
        Ok(gateway)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding the config file and gateway.log; free for `state_dir`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/portcullis.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    /// `<dir>/gateway.log`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// Resident memory now (VmRSS), KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.proc_status_kib("VmRSS")
    }

    /// Peak resident memory (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.proc_status_kib("VmHWM")
    }

    /// The whole of gateway.log (stdout and stderr).
    pub fn log(&self) -> anyhow::Result<String> {
        let path = self.log_path();
        fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
    }

    /// Whether the process has not exited yet (reaps it if it has).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGHUP (reload).
    pub fn sighup(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGHUP)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; the exit status, or an error with the
    /// log's tail if it is still running (it is then killed by Drop).
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("wait for the gateway")? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "gateway still running {timeout:?} after SIGTERM; log tail:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Kills the process with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill_hard(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.child.wait().context("wait for the killed gateway")
    }

    /// Starts the gateway again in the same directory with the same configuration (after it exited or
    /// was killed), appending to the same log, and waits until it is healthy.
    pub async fn restart(
        &mut self,
        bin: &Path,
        admin_addr: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("the gateway is still running");
        }
        let served_before = self.times_serving();
        self.child = spawn_serve(bin, self.dir.path(), env)?;
        self.wait_healthy(admin_addr, served_before).await
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.child.id()).context("pid out of range")?;
        kill(Pid::from_raw(pid), signal).with_context(|| format!("send {signal} to the gateway"))
    }

    /// How often the log says a gateway started serving (after binding both listeners).
    fn times_serving(&self) -> usize {
        self.log().map_or(0, |log| log.matches(SERVING).count())
    }

    /// Waits until `/healthz` answers and this process has said it is serving: a `200` alone could come
    /// from another test's gateway on the same port while this one is failing to bind it.
    async fn wait_healthy(&mut self, admin_addr: &str, served_before: usize) -> anyhow::Result<()> {
        let url = format!("http://{admin_addr}/healthz");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .context("build the HTTP client")?;
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("wait for the gateway")? {
                bail!(
                    "gateway exited ({status}) before {url} answered; log tail:\n{}",
                    self.log_tail()
                );
            }
            let last = match http.get(&url).send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => {
                    if self.times_serving() > served_before {
                        return Ok(());
                    }
                    "healthy, but this process has not said it is serving yet".to_owned()
                }
                Ok(response) => format!("status {}", response.status()),
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{url} not 200 within {HEALTHY_TIMEOUT:?} (last: {last}); log tail:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log().unwrap_or_else(|error| format!("({error:#})"));
        let lines: Vec<&str> = log.lines().collect();
        lines
            .get(lines.len().saturating_sub(LOG_TAIL_LINES)..)
            .unwrap_or_default()
            .join("\n")
    }

    fn proc_status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .ok_or_else(|| anyhow!("{path} has no {field}"))?;
        let kib = line
            .trim()
            .strip_suffix("kB")
            .ok_or_else(|| anyhow!("{field} in {path} is not in kB: {line:?}"))?;
        kib.trim()
            .parse()
            .with_context(|| format!("{field} in {path}: {line:?}"))
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `<bin> serve --config <dir>/portcullis.toml` in `dir` with the extra `env`, stdout and stderr
/// appended to `<dir>/gateway.log`.
fn spawn_serve(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Child> {
    let log_path = dir.join(LOG_FILE);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let log_for_stderr = log.try_clone().context("clone the log file handle")?;
    Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(dir.join(CONFIG_FILE))
        // Info level at least for the gateway's own events: `wait_healthy` reads its "serving" line.
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr)
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))
}

impl GatewayProcess {
    /// A development-issuer token for `subject` in `groups`, valid for `ttl` (`15m`, `12h`), minted with
    /// `<bin> token mint` against this gateway's config, as a user would. `env` is what the config's
    /// `${ENV}` references need.
    pub fn mint(
        &self,
        bin: &Path,
        env: &[(&str, &str)],
        subject: &str,
        groups: &[&str],
        ttl: &str,
    ) -> anyhow::Result<String> {
        let config = self.config_path();
        let config = config
            .to_str()
            .ok_or_else(|| anyhow!("config path is not UTF-8"))?;
        let mut args = vec![
            "token", "mint", "--config", config, "--sub", subject, "--ttl", ttl,
        ];
        for group in groups {
            args.extend(["--group", group]);
        }
        let output = run_cli(bin, &args, env)?;
        if !output.status.success() {
            bail!(
                "portcullis token mint failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if token.is_empty() {
            bail!("portcullis token mint printed nothing");
        }
        Ok(token)
    }
}

/// Runs `<bin> <args>` to completion with the extra `env`, capturing stdout and stderr; a non-zero exit
/// is not an error here (tests assert on it).
pub fn run_cli(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} {}", bin.display(), args.join(" ")))
}
