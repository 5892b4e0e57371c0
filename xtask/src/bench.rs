//! `cargo xtask bench`: pgbench direct vs. a plain TCP relay vs. the gateway with statement checks on
//! and off, on one throwaway PostgreSQL.
//!
//! Every cell (workload × protocol × clients) runs against direct, relay and the two gateways back to
//! back, so the four share the same machine conditions; CPU per statement of the relay and the gateways
//! comes from /proc deltas around their runs. The two gateways are separate processes (own state
//! directory, own ports, own development issuer) with the same config but for `[policy]
//! statement_checks`; which of them runs first alternates from cell to cell, so that neither is always
//! the one that follows the other. TLS is off on every hop: the comparison is of proxying work, not of
//! crypto.

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use portcullis_testkit::gateway::{GatewayProcess, run_cli};
use portcullis_testkit::pg::PgCluster;
use portcullis_testkit::ports::free_addr;

use crate::machine::Machine;
use crate::pgbench::{self, Endpoint, QueryMode, Run, Workload};
use crate::proc_stat::{self, ClockTicks};
use crate::relay::RelayProcess;
use crate::report::{Attempt, Cell, Measured, PeakRss, Report};

/// pgbench scale: 1,000,000 accounts (~160 MB), which stays in memory.
const SCALE: u32 = 10;
/// The database on the cluster and the gateway's connection name.
const DATABASE: &str = "bench";
/// The group the minted token carries and the connection admits.
const GROUP: &str = "bench";
/// The gateway reads the upstream password from this variable (`${BENCH_PG_PASSWORD}` in the config).
const PASSWORD_VAR: &str = "BENCH_PG_PASSWORD";
const QUICK_DURATION: Duration = Duration::from_secs(5);
/// A short untimed direct run first, so the first measured cell does not pay for cold caches.
const WARM_UP: Duration = Duration::from_secs(3);
/// Lines of gateway.log printed when a gateway run fails.
const LOG_TAIL_LINES: usize = 20;

/// Flags of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds per pgbench run.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Smoke run: 5 s per pgbench run (overrides --duration).
    #[arg(long)]
    quick: bool,
    /// Client counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    clients: Vec<u32>,
}

/// The whole bench: build, set up, measure every cell, print and write the report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let duration = if args.quick {
        QUICK_DURATION
    } else {
        Duration::from_secs(args.duration.max(1))
    };
    if args.clients.contains(&0) {
        bail!("--clients: every count must be at least 1");
    }
    let root = workspace_root()?;
    let target_dir = target_dir(&root);
    // The relay is built with the same (release) profile as the gateway: a `cargo xtask` binary is an
    // unoptimised dev build, and comparing it with an optimised gateway would flatter the gateway.
    let gateway_bin = build_release(&root, &target_dir, "portcullis")?;
    let relay_bin = build_release(&root, &target_dir, "xtask")?;
    let machine = Machine::detect()?;
    let ticks = ClockTicks::from_getconf()?;

    eprintln!("bench: starting PostgreSQL and loading pgbench scale {SCALE}");
    let pg = PgCluster::start()?;
    let direct = set_up_database(&pg)?;
    let relay = RelayProcess::start(&relay_bin, direct.addr)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    let checks_on = runtime.block_on(Gateway::start(&gateway_bin, &direct, StatementChecks::On))?;
    let checks_off = runtime.block_on(Gateway::start(&gateway_bin, &direct, StatementChecks::Off))?;
    let through_relay = Endpoint {
        addr: relay.addr(),
        ..direct.clone()
    };

    let warm_up = Run {
        workload: Workload::SelectOnly,
        mode: QueryMode::Simple,
        clients: 1,
        duration: WARM_UP,
    };
    pgbench::run(&direct, warm_up).context("warm-up run")?;

    let mut cells = Vec::new();
    for workload in Workload::ALL {
        for mode in QueryMode::ALL {
            for &clients in &args.clients {
                let run = Run {
                    workload,
                    mode,
                    clients,
                    duration,
                };
                eprintln!(
                    "bench: {workload} {mode} {clients} client(s), {} s each",
                    duration.as_secs()
                );
                let direct = measure(&direct, run, None, ticks);
                let relay = measure(&through_relay, run, Some(relay.pid()), ticks);
                let on_first = cells.len() % 2 == 0;
                let (checks_on, checks_off) = if on_first {
                    let on = checks_on.measure(run, ticks);
                    (on, checks_off.measure(run, ticks))
                } else {
                    let off = checks_off.measure(run, ticks);
                    (checks_on.measure(run, ticks), off)
                };
                cells.push(Cell {
                    run,
                    direct,
                    relay,
                    checks_on,
                    checks_off,
                });
            }
        }
    }

    let report = Report {
        machine,
        command: command_line(args),
        scale: SCALE,
        duration,
        cells,
        peak_rss: PeakRss {
            checks_on_kib: checks_on.process.peak_rss_kib().ok(),
            checks_off_kib: checks_off.process.peak_rss_kib().ok(),
            relay_kib: proc_stat::peak_rss_kib(relay.pid()).ok(),
        },
    };
    let text = report.to_string();
    println!("{text}");
    let out_dir = target_dir.join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let out = out_dir.join("latest.md");
    fs::write(&out, &text).with_context(|| format!("write {}", out.display()))?;
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}

/// One pgbench run; with `proxy`, also that process's CPU time per statement over the run.
fn measure(endpoint: &Endpoint, run: Run, proxy: Option<u32>, ticks: ClockTicks) -> Attempt {
    let before = proxy.map(|pid| ticks.cpu_time(pid)).transpose();
    let outcome = pgbench::run(endpoint, run);
    let after = proxy.map(|pid| ticks.cpu_time(pid)).transpose();
    let outcome = outcome.map_err(|error| format!("{error:#}"))?;
    let (before, after) = match (before, after) {
        (Ok(before), Ok(after)) => (before, after),
        (Err(error), _) | (_, Err(error)) => return Err(format!("CPU time: {error:#}")),
    };
    let statements = outcome.transactions * run.workload.statements_per_transaction();
    let cpu_per_statement = match (before, after) {
        (Some(before), Some(after)) if statements > 0 => Some(Duration::from_secs_f64(
            after.saturating_sub(before).as_secs_f64() / statements as f64,
        )),
        _ => None,
    };
    Ok(Measured {
        outcome,
        cpu_per_statement,
    })
}

/// Creates the database, loads pgbench's tables and vacuums them; the superuser's direct endpoint.
fn set_up_database(pg: &PgCluster) -> anyhow::Result<Endpoint> {
    pg.create_database(DATABASE)?;
    let (user, password) = pg.superuser();
    let addr: SocketAddr = format!("{}:{}", pg.host(), pg.port())
        .parse()
        .context("PostgreSQL address")?;
    let direct = Endpoint {
        addr,
        dbname: DATABASE.to_owned(),
        user: user.to_owned(),
        password: password.to_owned(),
    };
    pgbench::initialize(&direct, SCALE)?;
    pg.psql(DATABASE, "VACUUM ANALYZE;")?;
    Ok(direct)
}

/// Whether the gateway decides every statement (`[policy] statement_checks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatementChecks {
    On,
    Off,
}

impl StatementChecks {
    fn enabled(self) -> bool {
        self == StatementChecks::On
    }
}

impl fmt::Display for StatementChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatementChecks::On => "gateway checks on",
            StatementChecks::Off => "gateway checks off",
        })
    }
}

/// One running gateway and how pgbench reaches it.
struct Gateway {
    checks: StatementChecks,
    process: GatewayProcess,
    endpoint: Endpoint,
}

impl Gateway {
    /// Starts a gateway in front of `upstream` and mints a token for it (each gateway has its own
    /// development issuer, so a token is good for one of them only).
    async fn start(bin: &Path, upstream: &Endpoint, checks: StatementChecks) -> anyhow::Result<Gateway> {
        let (process, addr) = start_gateway(bin, upstream, checks)
            .await
            .with_context(|| format!("start the {checks}"))?;
        let endpoint = Endpoint {
            addr,
            dbname: DATABASE.to_owned(),
            user: "bench-agent".to_owned(),
            password: mint_token(bin, &process, &upstream.password)
                .with_context(|| format!("mint a token for the {checks}"))?,
        };
        Ok(Gateway {
            checks,
            process,
            endpoint,
        })
    }

    /// One pgbench run through this gateway; on failure, prints the tail of its log.
    fn measure(&self, run: Run, ticks: ClockTicks) -> Attempt {
        let attempt = measure(&self.endpoint, run, Some(self.process.pid()), ticks);
        if attempt.is_err() {
            eprintln!("bench: {} log tail:\n{}", self.checks, log_tail(&self.process));
        }
        attempt
    }
}

/// Writes a gateway's config (plaintext on both sides, one connection `bench`, the development issuer
/// on, a policy that permits the bench group everything, statement checks as given) into a new
/// temporary directory and starts it; returns it with its PostgreSQL address. The two gateways of a
/// bench differ only in `statement_checks` (and their directories and ports).
async fn start_gateway(
    bin: &Path,
    upstream: &Endpoint,
    checks: StatementChecks,
) -> anyhow::Result<(GatewayProcess, SocketAddr)> {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-bench-")
        .tempdir()
        .context("create the gateway's directory")?;
    let state_dir = dir.path().join("state");
    fs::create_dir_all(&state_dir).with_context(|| format!("create {}", state_dir.display()))?;
    let pg_listen = free_addr()?;
    let admin_listen = free_addr()?;
    let config = format!(
        r#"# Written by cargo xtask bench.
[server]
state_dir = "{state_dir}"

[server.postgres]
listen = "{pg_listen}"
allow_plaintext = true

[server.admin]
listen = "{admin_listen}"

[identity.dev_issuer]
enabled = true

[policy]
files = ["policy.cedar"]
statement_checks = {statement_checks}

[[connections]]
name = "{DATABASE}"
protocol = "postgres"
upstream = "{upstream_addr}"
database = "{DATABASE}"
user = "{user}"
password = "${{{PASSWORD_VAR}}}"
tls = "disable"
"#,
        state_dir = state_dir.display(),
        statement_checks = checks.enabled(),
        upstream_addr = upstream.addr,
        user = upstream.user,
    );
    // The bench's agents may do anything. With checks on, every statement is still analysed and
    // decided; with checks off, the policy decides only the connection.
    let policy = format!("permit(principal in Group::\"{GROUP}\", action, resource);\n");
    fs::write(dir.path().join("policy.cedar"), policy).context("write the bench policy")?;
    let env = [(PASSWORD_VAR, upstream.password.as_str())];
    let gateway = GatewayProcess::start_in(dir, bin, &config, &admin_listen, &env).await?;
    let addr = pg_listen.parse().context("gateway PostgreSQL address")?;
    Ok((gateway, addr))
}

/// `portcullis token mint` for a subject in the admitted group, valid for longer than any bench.
fn mint_token(bin: &Path, gateway: &GatewayProcess, pg_password: &str) -> anyhow::Result<String> {
    let config = gateway.config_path();
    let config = config
        .to_str()
        .ok_or_else(|| anyhow!("config path is not UTF-8"))?;
    let args = [
        "token", "mint", "--config", config, "--sub", "bench", "--group", GROUP, "--ttl", "1h",
    ];
    let output = run_cli(bin, &args, &[(PASSWORD_VAR, pg_password)])?;
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

/// `cargo build --release -p <package>` (one package per invocation, so that each keeps the feature set
/// of its own build and reuses its cached artifacts); the path of the binary of the same name.
fn build_release(root: &Path, target_dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    eprintln!("bench: cargo build --release -p {package}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", package])
        .current_dir(root)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p {package} failed ({status})");
    }
    let bin = target_dir.join("release").join(package);
    if !bin.is_file() {
        bail!("{} not found after the build", bin.display());
    }
    Ok(bin)
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("xtask has no parent directory"))
}

/// `$CARGO_TARGET_DIR` (relative to the root if relative), else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The command that reproduces this run, for the report.
fn command_line(args: &BenchArgs) -> String {
    let clients: Vec<String> = args.clients.iter().map(u32::to_string).collect();
    let mut command = String::from("cargo xtask bench");
    if args.quick {
        command.push_str(" --quick");
    } else {
        command.push_str(&format!(" --duration {}", args.duration));
    }
    command.push_str(&format!(" --clients {}", clients.join(",")));
    command
}

fn log_tail(gateway: &GatewayProcess) -> String {
    let log = gateway.log().unwrap_or_else(|error| format!("({error:#})"));
    let lines: Vec<&str> = log.lines().collect();
    lines
        .get(lines.len().saturating_sub(LOG_TAIL_LINES)..)
        .unwrap_or_default()
        .join("\n")
}
