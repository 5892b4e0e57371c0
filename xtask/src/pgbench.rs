//! Running pgbench against one endpoint and reading tps, latency and transaction counts from its output.

use std::fmt;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use portcullis_testkit::pg::INHERITED_PG_VARS;

/// A built-in pgbench script (`--workloads` names: `select-only`, `tpcb-like`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// `-S`: one primary-key SELECT per transaction.
    SelectOnly,
    /// The default script: BEGIN, three UPDATEs, a SELECT, an INSERT, END.
    TpcbLike,
}

impl Workload {
    /// Statements the client sends per transaction, BEGIN and END included.
    pub fn statements_per_transaction(self) -> u64 {
        match self {
            Workload::SelectOnly => 1,
            Workload::TpcbLike => 7,
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Workload::SelectOnly => &["-S"],
            Workload::TpcbLike => &[],
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::SelectOnly => "select-only",
            Workload::TpcbLike => "tpcb-like",
        })
    }
}

/// pgbench's `-M`: how statements go on the wire (`--protocols` names: `simple`, `extended`,
/// `prepared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryMode {
    /// One Query message per statement.
    Simple,
    /// Parse, Bind, Describe, Execute, Sync per statement (unnamed statement).
    Extended,
    /// Each statement parsed once per connection (named statement); then Bind, Describe, Execute, Sync.
    Prepared,
}

impl fmt::Display for QueryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryMode::Simple => "simple",
            QueryMode::Extended => "extended",
            QueryMode::Prepared => "prepared",
        })
    }
}

/// Where pgbench connects and as whom. Always TCP, always `sslmode=disable`.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub dbname: String,
    pub user: String,
    pub password: String,
}

impl Endpoint {
    /// A libpq key/value connection string, TLS off (the bench's hops are all plaintext).
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} dbname={} user={} password={} sslmode=disable",
            self.addr.ip(),
            self.addr.port(),
            self.dbname,
            self.user,
            self.password
        )
    }
}

impl fmt::Debug for Endpoint {
    /// Leaves out the password (a database password or a token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub workload: Workload,
    pub mode: QueryMode,
    pub clients: u32,
    pub duration: Duration,
}

/// What pgbench reported for one run.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub transactions: u64,
}

/// `pgbench -i -s <scale>` (quiet, server-side data generation is not assumed).
pub fn initialize(endpoint: &Endpoint, scale: u32) -> anyhow::Result<()> {
    let mut command = pgbench(endpoint);
    command.args(["-i", "-q", "-s", &scale.to_string()]);
    command.arg(&endpoint.dbname);
    checked_output(&mut command, "pgbench -i")?;
    Ok(())
}

/// `pgbench -n -M <mode> -c <clients> -j <min(clients, 2)> -T <secs> [-S]`. `-n`: no vacuum before the
/// run (the bench vacuums once, directly, after initialising; the gateway need not allow VACUUM).
pub fn run(endpoint: &Endpoint, run: Run) -> anyhow::Result<Outcome> {
    let threads = run.clients.clamp(1, 2);
    let mut command = pgbench(endpoint);
    command
        .arg("-n")
        .args(run.workload.args())
        .args(["-M", &run.mode.to_string()])
        .args(["-c", &run.clients.to_string()])
        .args(["-j", &threads.to_string()])
        .args(["-T", &run.duration.as_secs().max(1).to_string()])
        .arg(&endpoint.dbname);
    let output = checked_output(&mut command, "pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse(&stdout).with_context(|| format!("pgbench output:\n{stdout}"))
}

/// `pgbench --version`, e.g. "pgbench (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)".
pub fn version() -> anyhow::Result<String> {
    let output = checked_output(Command::new("pgbench").arg("--version"), "pgbench --version")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn pgbench(endpoint: &Endpoint) -> Command {
    let mut command = Command::new("pgbench");
    for var in INHERITED_PG_VARS {
        command.env_remove(var);
    }
    command
        .env("PGHOST", endpoint.addr.ip().to_string())
        .env("PGPORT", endpoint.addr.port().to_string())
        .env("PGUSER", &endpoint.user)
        .env("PGPASSWORD", &endpoint.password)
        .env("PGSSLMODE", "disable")
        .stdin(Stdio::null());
    command
}

/// Runs to completion; a failure carries pgbench's stderr.
fn checked_output(command: &mut Command, what: &str) -> anyhow::Result<Output> {
    let output = command.output().with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// Reads the summary pgbench prints at the end of a run. Versions 14+ print one `tps = … (without
/// initial connection time)` line; older ones print `(including …)` and `(excluding connections
/// establishing)`: the connection-free figure is taken either way. A run with failed transactions
/// (pgbench 15+ counts them) is an error: its tps would not be comparable.
fn parse(stdout: &str) -> anyhow::Result<Outcome> {
    let mut tps = None;
    let mut latency_avg_ms = None;
    let mut transactions = None;
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tps = ") {
            if rest.contains("without initial connection time") || rest.contains("excluding") {
                tps = Some(leading_number(rest)?);
            }
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            latency_avg_ms = Some(leading_number(rest)?);
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed: ") {
            // "12345" or, with -t, "12345/20000".
            let count = rest.split('/').next().unwrap_or(rest).trim();
            transactions = Some(count.parse().with_context(|| format!("transactions {count:?}"))?);
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            let failed = rest.split_whitespace().next().unwrap_or(rest);
            if failed != "0" {
                bail!("{failed} transactions failed");
            }
        }
    }
    Ok(Outcome {
        tps: tps.ok_or_else(|| anyhow!("no tps line"))?,
        latency_avg_ms: latency_avg_ms.ok_or_else(|| anyhow!("no latency average line"))?,
        transactions: transactions.ok_or_else(|| anyhow!("no transaction count"))?,
    })
}

fn leading_number(text: &str) -> anyhow::Result<f64> {
    let number = text.split_whitespace().next().unwrap_or_default();
    number.parse().with_context(|| format!("number {number:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15: &str = "pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: extended
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 412345
number of failed transactions: 0 (0.000%)
latency average = 0.776 ms
initial connection time = 35.114 ms
tps = 20617.250000 (without initial connection time)
";

    #[test]
    fn reads_the_summary() {
        let outcome = parse(PG15).unwrap();
        assert_eq!(outcome.transactions, 412_345);
        assert!((outcome.tps - 20_617.25).abs() < 1e-6);
        assert!((outcome.latency_avg_ms - 0.776).abs() < 1e-9);
    }

    #[test]
    fn old_versions_use_the_excluding_line() {
        let old = "number of transactions actually processed: 10/10\nlatency average = 1.5 ms\n\
                   tps = 90.0 (including connections establishing)\n\
                   tps = 100.0 (excluding connections establishing)\n";
        let outcome = parse(old).unwrap();
        assert!((outcome.tps - 100.0).abs() < 1e-9);
        assert_eq!(outcome.transactions, 10);
    }

    #[test]
    fn failed_transactions_are_an_error() {
        let failed = PG15.replace("failed transactions: 0 (0.000%)", "failed transactions: 3 (0.1%)");
        assert!(parse(&failed).is_err());
    }

    #[test]
    fn missing_tps_is_an_error() {
        assert!(parse("latency average = 1 ms\n").is_err());
    }
}
