//! `cargo xtask bench`: pgbench direct vs. a plain TCP relay vs. gateway variants (audit trail on,
//! audit off, optionally statement checks off or the audit store on tmpfs), on one throwaway PostgreSQL.
//!
//! Every cell (workload × protocol × clients × repeat) runs against direct, relay and each gateway back
//! to back, so they share the same machine conditions; CPU per statement of the relay and the gateways
//! comes from /proc deltas around their runs, and what a recording gateway's audit trail did (events,
//! commits, its writer thread's CPU) from its /metrics and /proc. The gateways are separate processes
//! (own state directory and audit store, own ports, own development issuer) whose configs differ only in
//! `[policy] statement_checks` and `[audit]`; the order in which they run rotates from cell to cell, so
//! that none is always the one that follows another. Repeats go round the whole grid, so that each
//! repetition of a cell is minutes apart from the last. TLS is off on every hop: the comparison is of
//! proxying work, not of crypto.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use portcullis_testkit::pg::PgCluster;

use crate::gateway::{DATABASE, Gateway, Variant};
use crate::machine::Machine;
use crate::pgbench::{self, Endpoint, QueryMode, Run, Workload};
use crate::proc_stat::{self, ClockTicks};
use crate::relay::RelayProcess;
use crate::report::{Attempt, Cell, GatewayTotals, Measured, Report};

/// pgbench scale: 1,000,000 accounts (~160 MB), which stays in memory.
const SCALE: u32 = 10;
const QUICK_DURATION: Duration = Duration::from_secs(5);
/// A short untimed direct run first, so the first measured cell does not pay for cold caches.
const WARM_UP: Duration = Duration::from_secs(3);

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
    /// pgbench scripts to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "select-only,tpcb-like"
    )]
    workloads: Vec<Workload>,
    /// pgbench query modes (-M) to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "simple,extended")]
    protocols: Vec<QueryMode>,
    /// Gateway variants to compare, comma-separated: audit-on (checks on, audit trail on: the default
    /// product), audit-off (checks on, `[audit] enabled = false`), audit-os (as audit-on, no fsync per
    /// commit), checks-off (no statement checks, no audit), audit-tmpfs (as audit-on, store on /dev/shm:
    /// no fsync cost); and relay-wa, not a gateway: the plain relay with a durable write-ahead journal,
    /// the floor of any proxy that makes a statement durable before forwarding it.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "audit-on,audit-off")]
    gateways: Vec<Variant>,
    /// Times to go round the whole grid of cells.
    #[arg(long, default_value_t = 1)]
    repeats: u32,
}

/// The whole bench: build, set up, measure every cell, print and write the report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let duration = if args.quick {
        QUICK_DURATION
    } else {
        Duration::from_secs(args.duration.max(1))
    };
    check_args(args)?;
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
    let journal_dir = tempfile::Builder::new()
        .prefix("portcullis-bench-journal-")
        .tempdir()
        .context("create the write-ahead relay's directory")?;
    let mut gateways = Vec::new();
    for &variant in &args.gateways {
        gateways.push(if variant == Variant::RelayWriteAhead {
            let journal = journal_dir.path().join("journal");
            let relay = RelayProcess::start_write_ahead(&relay_bin, direct.addr, &journal)?;
            let endpoint = Endpoint {
                addr: relay.addr(),
                ..direct.clone()
            };
            Contender::Floor { relay, endpoint }
        } else {
            Contender::Gateway(runtime.block_on(Gateway::start(&gateway_bin, &direct, variant))?)
        });
    }
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

    let targets = Targets {
        direct: &direct,
        relay: &through_relay,
        relay_pid: relay.pid(),
        gateways: &gateways,
        ticks,
    };
    let grid = grid(args, duration);
    let mut cells = Vec::new();
    for (index, &(repeat, run)) in grid.iter().enumerate() {
        eprintln!(
            "bench: cell {}/{}: {} {} {} client(s), {} s each",
            index + 1,
            grid.len(),
            run.workload,
            run.mode,
            run.clients,
            duration.as_secs()
        );
        cells.push(targets.cell(run, repeat, index));
    }

    let report = Report {
        machine,
        command: command_line(args),
        scale: SCALE,
        duration,
        repeats: args.repeats,
        variants: args.gateways.clone(),
        cells,
        gateways: gateways.iter().map(Contender::totals).collect(),
        relay_peak_rss_kib: proc_stat::peak_rss_kib(relay.pid()).ok(),
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

/// Every (repeat, run) of the bench, in the order they run: repeats outermost, so that the repetitions
/// of a cell are spread over the whole bench rather than back to back.
fn grid(args: &BenchArgs, duration: Duration) -> Vec<(u32, Run)> {
    let mut grid = Vec::new();
    for repeat in 1..=args.repeats {
        for &workload in &args.workloads {
            for &mode in &args.protocols {
                for &clients in &args.clients {
                    let run = Run {
                        workload,
                        mode,
                        clients,
                        duration,
                    };
                    grid.push((repeat, run));
                }
            }
        }
    }
    grid
}

/// Everything a cell runs against.
struct Targets<'a> {
    direct: &'a Endpoint,
    relay: &'a Endpoint,
    relay_pid: u32,
    /// In `--gateways` order.
    gateways: &'a [Contender],
    ticks: ClockTicks,
}

impl Targets<'_> {
    /// The `index`th cell: direct, relay, then the gateways starting from the `index`th (mod their
    /// number), so the order rotates by one per cell; the report lists them in `--gateways` order.
    fn cell(&self, run: Run, repeat: u32, index: usize) -> Cell {
        let direct = measure(self.direct, run, None, self.ticks);
        let relay = measure(self.relay, run, Some(self.relay_pid), self.ticks);
        let count = self.gateways.len();
        let mut gateways: Vec<(usize, Variant, Attempt)> = Vec::with_capacity(count);
        for offset in 0..count {
            let position = (index + offset) % count;
            if let Some(gateway) = self.gateways.get(position) {
                gateways.push((position, gateway.variant(), gateway.measure(run, self.ticks)));
            }
        }
        gateways.sort_by_key(|(position, _, _)| *position);
        Cell {
            run,
            repeat,
            direct,
            relay,
            gateways: gateways
                .into_iter()
                .map(|(_, variant, attempt)| (variant, attempt))
                .collect(),
        }
    }
}

/// What a `--gateways` name runs: a gateway, or the write-ahead relay (`relay-wa`).
enum Contender {
    Gateway(Gateway),
    Floor { relay: RelayProcess, endpoint: Endpoint },
}

impl Contender {
    fn variant(&self) -> Variant {
        match self {
            Contender::Gateway(gateway) => gateway.variant,
            Contender::Floor { .. } => Variant::RelayWriteAhead,
        }
    }

    fn measure(&self, run: Run, ticks: ClockTicks) -> Attempt {
        match self {
            Contender::Gateway(gateway) => measure_gateway(gateway, run, ticks),
            Contender::Floor { relay, endpoint } => measure(endpoint, run, Some(relay.pid()), ticks),
        }
    }

    fn totals(&self) -> GatewayTotals {
        match self {
            Contender::Gateway(gateway) => GatewayTotals {
                variant: gateway.variant,
                peak_rss_kib: gateway.process.peak_rss_kib().ok(),
                store_bytes: gateway.store_bytes(),
            },
            Contender::Floor { relay, .. } => GatewayTotals {
                variant: Variant::RelayWriteAhead,
                peak_rss_kib: proc_stat::peak_rss_kib(relay.pid()).ok(),
                store_bytes: None,
            },
        }
    }
}

/// Rejects flag values that would make an empty or meaningless bench.
fn check_args(args: &BenchArgs) -> anyhow::Result<()> {
    if args.clients.contains(&0) {
        bail!("--clients: every count must be at least 1");
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if args.gateways.is_empty() || args.workloads.is_empty() || args.protocols.is_empty() {
        bail!("--gateways, --workloads and --protocols each need at least one value");
    }
    for (index, variant) in args.gateways.iter().enumerate() {
        if args.gateways.get(..index).unwrap_or_default().contains(variant) {
            bail!("--gateways names {variant} twice");
        }
    }
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
        audit: None,
    })
}

/// One pgbench run through `gateway`, with its audit trail's counters read around it; on failure,
/// prints the tail of the gateway's log.
fn measure_gateway(gateway: &Gateway, run: Run, ticks: ClockTicks) -> Attempt {
    let before = gateway
        .audit_counters()
        .map_err(|error| format!("audit counters before the run: {error:#}"))?;
    let measured = measure(&gateway.endpoint, run, Some(gateway.process.pid()), ticks);
    if measured.is_err() {
        eprintln!(
            "bench: {} gateway log tail:\n{}",
            gateway.variant,
            gateway.log_tail()
        );
    }
    let audit = gateway
        .audit_since(before)
        .map_err(|error| format!("audit counters after the run: {error:#}"))?;
    Ok(Measured { audit, ..measured? })
}

/// Creates the database, loads pgbench's tables and vacuums them; the superuser's direct endpoint.
fn set_up_database(pg: &PgCluster) -> anyhow::Result<Endpoint> {
    let direct = set_up_database_only(pg)?;
    pgbench::initialize(&direct, SCALE)?;
    pg.psql(DATABASE, "VACUUM ANALYZE;")?;
    Ok(direct)
}

/// Creates the (empty) bench database; the superuser's direct endpoint.
pub(crate) fn set_up_database_only(pg: &PgCluster) -> anyhow::Result<Endpoint> {
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
    Ok(direct)
}

/// `cargo build --release -p <package>` (one package per invocation, so that each keeps the feature set
/// of its own build and reuses its cached artifacts); the path of the binary of the same name.
pub(crate) fn build_release(root: &Path, target_dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
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
/// Runs the bench that called it again, from the release build of xtask, when this one is a dev build
/// (as `cargo xtask` runs): a bench whose client runs in this process (the HTTP load generator, the
/// PostgreSQL driver that reads a masked result) would measure an unoptimised client, which slows
/// every target alike and flatters every ratio to direct. `Some(outcome)` when it ran it.
pub(crate) fn rerun_in_release() -> Option<anyhow::Result<()>> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let rerun = || -> anyhow::Result<()> {
        let root = workspace_root()?;
        let bin = build_release(&root, &target_dir(&root), "xtask")?;
        eprintln!(
            "bench: this xtask is a dev build; the bench runs from {} (an optimised client)",
            bin.display()
        );
        let status = Command::new(&bin)
            .args(std::env::args_os().skip(1))
            .status()
            .with_context(|| format!("run {}", bin.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", bin.display());
        }
        Ok(())
    };
    Some(rerun())
}

pub(crate) fn workspace_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("xtask has no parent directory"))
}

/// `$CARGO_TARGET_DIR` (relative to the root if relative), else `<root>/target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
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
    command.push_str(&format!(" --workloads {}", joined(&args.workloads)));
    command.push_str(&format!(" --protocols {}", joined(&args.protocols)));
    command.push_str(&format!(" --gateways {}", joined(&args.gateways)));
    if args.repeats > 1 {
        command.push_str(&format!(" --repeats {}", args.repeats));
    }
    command
}

/// Flag values as the command line spells them (their `Display` is their clap name).
fn joined<T: std::fmt::Display>(values: &[T]) -> String {
    let values: Vec<String> = values.iter().map(T::to_string).collect();
    values.join(",")
}
