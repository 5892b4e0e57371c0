//! `cargo xtask bench-http`: requests per second and p50/p99 latency of small JSON responses, direct to
//! an upstream vs. through a plain TCP relay vs. through the release gateway's HTTP proxy, in one run.
//!
//! Three kinds of process share the machine: the upstream (`cargo xtask http-upstream`, hyper, one
//! ~430-byte JSON customer object per request), the proxies (the relay; one gateway per entry of
//! [`GATEWAYS`], each with its own config, development issuer and token), and this process, the load
//! generator (hyper's connection-level HTTP/1.1 client on a runtime of its own). Every request carries the
//! same bearer token header, whichever target it goes to. For each connection count, each repeat runs
//! every target back to back in a rotating order; latencies of all repeats are pooled for the
//! percentiles. CPU per request is each process's `utime + stime` over the runs that went through it
//! (the upstream's and the client's over every run of the target), from /proc. Plaintext on every hop.

use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hyper::header::HeaderValue;
use portcullis_testkit::gateway::GatewayProcess;
use portcullis_testkit::ports::free_addr;

use crate::bench::{build_release, target_dir, workspace_root};
use crate::gateway::mint_token;
use crate::http_load::{self, Load, Sample};
use crate::http_upstream::{CUSTOMER_JSON, UpstreamProcess};
use crate::machine::Machine;
use crate::proc_stat::{self, ClockTicks};
use crate::relay::RelayProcess;

/// Flags of `cargo xtask bench-http`.
#[derive(Debug, clap::Args)]
pub struct HttpBenchArgs {
    /// Concurrent keep-alive connections, comma-separated; each count gets its own table.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    connections: Vec<u32>,
    /// Seconds per run (one target, one connection count, one repeat).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Runs per target and connection count, targets in rotating order.
    #[arg(long, default_value_t = 3)]
    repeats: u32,
    /// Runtime threads of the load generator (this process).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Runtime threads of the upstream server process.
    #[arg(long, default_value_t = 2)]
    upstream_threads: usize,
    /// Another `portcullis` binary (say, a release build of the previous commit, copied aside) run as
    /// one more target, `gateway (before)`, with the first variant's config: a before/after comparison
    /// in one run, under the same load and noise.
    #[arg(long)]
    baseline_gateway: Option<std::path::PathBuf>,
    /// The gateway variants to run, comma-separated names from the legend (`gateway`, `audit os`,
    /// `bodies off`, `audit off`, `masking on`, `masking os`, `context whole`); all when absent.
    #[arg(long, value_delimiter = ',')]
    gateways: Vec<String>,
    /// Give the proxies CPUs of their own: the load generator and the upstream run on the lower half of
    /// the CPUs, the relay and every gateway on the upper half (with two CPUs: one each), as in a
    /// deployment where agents and the API are on other hosts. Without it every process shares every
    /// CPU and the proxy's CPU is taken from the load generator's and the upstream's.
    #[arg(long)]
    pin: bool,
}

/// One gateway configuration the bench compares: a name for the table, a line for the legend, and the
/// config sections that differ from the others (the rest is [`gateway_config`]).
#[derive(Debug)]
struct GatewayVariant {
    name: &'static str,
    describe: &'static str,
    sections: &'static str,
    /// Appended to the bench policy's permit (a `when` clause), or empty.
    condition: &'static str,
}

/// The gateways of every run; a new variant is one more line.
const GATEWAYS: &[GatewayVariant] = &[
    GatewayVariant {
        name: "gateway",
        describe: "the product's defaults: token (cached) and Cedar decision per request, `[audit] enabled = true`",
        sections: "[audit]\nenabled = true\n",
        condition: "",
    },
    GatewayVariant {
        name: "context whole",
        describe: "as gateway, the permit's condition uses the context record whole (`when { context == context }`), \
                   so no decision can be remembered: the cost of deciding with Cedar on every request",
        sections: "[audit]\nenabled = true\n",
        condition: " when { context == context }",
    },
    GatewayVariant {
        name: "audit os",
        describe: "as gateway, `[audit] durability = \"os\"`: each request's events are in the store's \
                   write-ahead log (they survive a gateway crash) before forwarding, without waiting for an fsync",
        sections: "[audit]\nenabled = true\ndurability = \"os\"\n",
        condition: "",
    },
    GatewayVariant {
        name: "bodies off",
        describe: "as gateway, `[audit] http_body_bytes = 0`: request and response bodies not recorded",
        sections: "[audit]\nenabled = true\nhttp_body_bytes = 0\n",
        condition: "",
    },
    GatewayVariant {
        name: "audit off",
        describe: "as gateway, `[audit] enabled = false` (each request's audit session is not written)",
        sections: "[audit]\nenabled = false\n",
        condition: "",
    },
    GatewayVariant {
        name: "masking on",
        describe: "as gateway, the JSON body's `email` and `phone` fields masked (`partial`)",
        sections: HTTP_MASKING,
        condition: "",
    },
    GatewayVariant {
        name: "masking os",
        describe: "as masking on, with `[audit] durability = \"os\"`",
        sections: HTTP_MASKING_OS,
        condition: "",
    },
];

/// The masking-on variant's rules: the customer object's `email` and `phone` fields masked.
const HTTP_MASKING: &str = r#"[audit]
enabled = true

[masking]
[[masking.rules]]
fields = ["email", "phone"]
strategy = "partial"
keep = 4
"#;

/// As [`HTTP_MASKING`], the audit trail not waiting for an fsync.
const HTTP_MASKING_OS: &str = r#"[audit]
enabled = true
durability = "os"

[masking]
[[masking.rules]]
fields = ["email", "phone"]
strategy = "partial"
keep = 4
"#;

/// The name of the `--baseline-gateway` target.
const BASELINE: &str = "gateway (before)";
/// The connection's name: the gateway's path prefix.
const CONNECTION: &str = "bench";
/// The group the minted token carries and the policy admits.
const GROUP: &str = "bench";
/// The upstream credential the gateway adds (the upstream ignores it).
const API_KEY_VAR: &str = "BENCH_HTTP_API_KEY";
const API_KEY: &str = "bench-upstream-key";
/// What the agent asks for: the upstream's path, and the gateway's (`/<connection>` + the path after
/// the connection's base `/api`).
const UPSTREAM_PATH: &str = "/api/customers/42";
const GATEWAY_PATH: &str = "/bench/customers/42";
/// An untimed run of every target before measuring: connections, pools and the token cache warm.
const WARM_UP: Duration = Duration::from_secs(1);

/// One thing the load generator is pointed at.
struct Target {
    name: &'static str,
    load: Load,
    /// The proxy process, for its CPU time and peak RSS (None: direct).
    pid: Option<u32>,
    /// A gateway's admin listener, for its audit writer's counters.
    admin: Option<std::net::SocketAddr>,
}

/// What the runs through one target added up to.
#[derive(Debug, Default)]
struct Totals {
    sample: Sample,
    /// Requests/s of each run, for the spread.
    rates: Vec<f64>,
    proxy_cpu: Duration,
    upstream_cpu: Duration,
    client_cpu: Duration,
}

pub fn run(args: &HttpBenchArgs) -> anyhow::Result<()> {
    if let Some(outcome) = crate::bench::rerun_in_release() {
        return outcome;
    }
    if args.repeats == 0 || args.duration == 0 || args.connections.contains(&0) {
        bail!("--repeats, --duration and every --connections count must be at least 1");
    }
    let duration = Duration::from_secs(args.duration);
    let root = workspace_root()?;
    let target_dir = target_dir(&root);
    let gateway_bin = build_release(&root, &target_dir, "portcullis")?;
    let xtask_bin = build_release(&root, &target_dir, "xtask")?;
    let ticks = ClockTicks::from_getconf()?;
    let machine = Machine::detect_host()?;

    let upstream = UpstreamProcess::start(&xtask_bin, args.upstream_threads)?;
    let relay = RelayProcess::start(&xtask_bin, upstream.addr())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .context("start the load generator's runtime")?;
    let chosen: Vec<&GatewayVariant> = GATEWAYS
        .iter()
        .filter(|v| args.gateways.is_empty() || args.gateways.iter().any(|g| g.trim() == v.name))
        .collect();
    if let Some(unknown) = args
        .gateways
        .iter()
        .find(|g| !GATEWAYS.iter().any(|v| v.name == g.trim()))
    {
        bail!("--gateways: no variant {unknown:?}; the variants are named in the report's legend");
    }
    let mut gateways = Vec::new();
    for variant in &chosen {
        eprintln!("bench-http: starting the {} gateway", variant.name);
        let gateway = runtime
            .block_on(start_gateway(&gateway_bin, upstream.addr(), variant))
            .with_context(|| format!("start the {} gateway", variant.name))?;
        gateways.push((variant.name, gateway));
    }
    if let Some(bin) = &args.baseline_gateway {
        let variant = GATEWAYS.first().context("no gateway variant")?;
        eprintln!("bench-http: starting the baseline gateway {}", bin.display());
        let gateway = runtime
            .block_on(start_gateway(bin, upstream.addr(), variant))
            .context("start the baseline gateway")?;
        gateways.push((BASELINE, gateway));
    }
    let mut targets = Vec::new();
    let any_token = gateways
        .first()
        .map(|(_, g)| g.authorization.clone())
        .context("no gateway variant")?;
    for (name, addr, pid) in [
        ("direct", upstream.addr(), None),
        ("relay", relay.addr(), Some(relay.pid())),
    ] {
        targets.push(target(
            &runtime,
            name,
            addr,
            UPSTREAM_PATH,
            any_token.clone(),
            pid,
            None,
        )?);
    }
    for (name, gateway) in &gateways {
        targets.push(target(
            &runtime,
            name,
            gateway.http,
            GATEWAY_PATH,
            gateway.authorization.clone(),
            Some(gateway.process.pid()),
            Some(gateway.admin),
        )?);
    }
    if args.pin {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        if cpus < 2 {
            bail!("--pin needs at least two CPUs, this machine has {cpus}");
        }
        let (load_cpus, proxy_cpus) = (
            format!("0-{}", cpus / 2 - 1),
            format!("{}-{}", cpus / 2, cpus - 1),
        );
        pin(std::process::id(), &load_cpus)?;
        pin(upstream.pid(), &load_cpus)?;
        for pid in targets.iter().filter_map(|t| t.pid) {
            pin(pid, &proxy_cpus)?;
        }
        eprintln!("bench-http: load generator and upstream on CPUs {load_cpus}, proxies on {proxy_cpus}");
    }
    let max_connections = args.connections.iter().copied().max().unwrap_or(1);
    for target in &targets {
        runtime
            .block_on(http_load::run(&target.load, max_connections, WARM_UP))
            .with_context(|| format!("warm-up run of {}", target.name))?;
    }

    let mut report = header(args, &machine, &targets);
    for &connections in &args.connections {
        let mut totals: Vec<Totals> = targets.iter().map(|_| Totals::default()).collect();
        for repeat in 0..args.repeats {
            for offset in 0..targets.len() {
                let index = (offset + repeat as usize) % targets.len();
                let (Some(target), Some(total)) = (targets.get(index), totals.get_mut(index)) else {
                    continue;
                };
                eprintln!(
                    "bench-http: {connections} connection(s), {}, repeat {}",
                    target.name,
                    repeat + 1
                );
                measure(
                    &runtime,
                    &ticks,
                    target,
                    upstream.pid(),
                    connections,
                    duration,
                    total,
                )
                .with_context(|| format!("{} at {connections} connection(s)", target.name))?;
            }
        }
        write_table(&mut report, connections, &targets, &mut totals);
    }
    let rss = |pid: u32| {
        proc_stat::peak_rss_kib(pid)
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|e| format!("({e:#})"))
    };
    let _ = write!(
        report,
        "Peak RSS over the whole run: upstream {}",
        rss(upstream.pid())
    );
    for target in &targets {
        if let Some(pid) = target.pid {
            let _ = write!(report, ", {} {}", target.name, rss(pid));
        }
    }
    let _ = writeln!(report, ".");
    writer_report(&targets, &mut report);
    println!("{report}");
    let out_dir = target_dir.join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let out = out_dir.join("http.md");
    fs::write(&out, &report).with_context(|| format!("write {}", out.display()))?;
    eprintln!("bench-http: wrote {}", out.display());
    Ok(())
}

/// Restricts every thread of process `pid` (and the threads it starts later) to `cpus` (`taskset`'s list
/// syntax).
fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("run taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin process {pid} to CPUs {cpus}: {status}");
    }
    Ok(())
}

/// Asks the target once for the body every later response must repeat.
fn target(
    runtime: &tokio::runtime::Runtime,
    name: &'static str,
    addr: std::net::SocketAddr,
    path: &str,
    authorization: HeaderValue,
    pid: Option<u32>,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<Target> {
    let expect: Bytes = runtime
        .block_on(http_load::probe(addr, path, &authorization))
        .with_context(|| format!("first request through {name}"))?;
    Ok(Target {
        name,
        load: Load {
            addr,
            path: path.to_owned(),
            authorization,
            expect,
        },
        pid,
        admin,
    })
}

/// One run of `target`, added to `total` with the CPU time each process spent meanwhile.
fn measure(
    runtime: &tokio::runtime::Runtime,
    ticks: &ClockTicks,
    target: &Target,
    upstream_pid: u32,
    connections: u32,
    duration: Duration,
    total: &mut Totals,
) -> anyhow::Result<()> {
    let client_pid = std::process::id();
    let cpu = |pid: Option<u32>| pid.map(|pid| ticks.cpu_time(pid)).transpose();
    let before = (
        cpu(target.pid)?,
        ticks.cpu_time(upstream_pid)?,
        ticks.cpu_time(client_pid)?,
    );
    let sample = runtime.block_on(http_load::run(&target.load, connections, duration))?;
    let after = (
        cpu(target.pid)?,
        ticks.cpu_time(upstream_pid)?,
        ticks.cpu_time(client_pid)?,
    );
    if let (Some(after), Some(before)) = (after.0, before.0) {
        total.proxy_cpu += after.saturating_sub(before);
    }
    total.upstream_cpu += after.1.saturating_sub(before.1);
    total.client_cpu += after.2.saturating_sub(before.2);
    total.rates.push(sample.rate());
    total.sample.merge(sample);
    Ok(())
}

fn header(args: &HttpBenchArgs, machine: &Machine, targets: &[Target]) -> String {
    let connections: Vec<String> = args.connections.iter().map(u32::to_string).collect();
    let mut report = String::new();
    let _ = writeln!(report, "## HTTP proxy: small JSON responses\n");
    let _ = writeln!(
        report,
        "`cargo xtask bench-http --connections {} --duration {} --repeats {}{}`: `GET` of a {}-byte JSON \
         object, HTTP/1.1 keep-alive, one connection-level hyper client per connection sending requests back \
         to back for {} s per run; {} runs per target and connection count, targets rotating; latencies \
         of all runs pooled. Every request carries the same `Authorization: Bearer` header.\n",
        connections.join(","),
        args.duration,
        args.repeats,
        if args.pin { " --pin" } else { "" },
        CUSTOMER_JSON.len(),
        args.duration,
        args.repeats
    );
    let _ = writeln!(report, "{machine}");
    let _ = writeln!(
        report,
        "- load generator: this process, {} runtime threads; upstream: `cargo xtask http-upstream`, \
         {} runtime threads; plaintext on every hop\n",
        args.client_threads, args.upstream_threads
    );
    if args.pin {
        let _ = writeln!(
            report,
            "Pinned (`--pin`): the load generator and the upstream on the lower half of the CPUs, the relay \
             and the gateways on the upper half.\n"
        );
    }
    let _ = writeln!(report, "Targets:\n");
    let _ = writeln!(report, "- direct: the upstream");
    let _ = writeln!(
        report,
        "- relay: `cargo xtask relay`, a plain TCP relay (copy both ways), one upstream connection per client connection"
    );
    for variant in GATEWAYS
        .iter()
        .filter(|v| targets.iter().any(|t| t.name == v.name))
    {
        let _ = writeln!(report, "- {}: {}", variant.name, variant.describe);
    }
    if let Some(bin) = &args.baseline_gateway {
        let _ = writeln!(report, "- {BASELINE}: as gateway, the binary `{}`", bin.display());
    }
    for target in targets {
        if target.load.expect.as_ref() != CUSTOMER_JSON.as_bytes() {
            let _ = writeln!(
                report,
                "- {} answers a {}-byte body, not the upstream's",
                target.name,
                target.load.expect.len()
            );
        }
    }
    let _ = writeln!(report);
    report
}

fn write_table(report: &mut String, connections: u32, targets: &[Target], totals: &mut [Totals]) {
    for total in totals.iter_mut() {
        total.sample.sort();
    }
    let rate_of = |name: &str| {
        targets
            .iter()
            .zip(totals.iter())
            .find(|(t, _)| t.name == name)
            .map_or(f64::NAN, |(_, total)| total.sample.rate())
    };
    let (direct_rate, relay_rate) = (rate_of("direct"), rate_of("relay"));
    let direct_p50 = targets
        .iter()
        .zip(totals.iter())
        .find(|(t, _)| t.name == "direct")
        .map_or(f64::NAN, |(_, total)| total.sample.percentile_us(0.5));
    let _ = writeln!(report, "### {connections} connection(s)\n");
    let _ = writeln!(
        report,
        "| target | requests/s | runs min–max | ÷ direct | ÷ relay | p50 µs | p99 µs | added p50 µs | \
         proxy CPU/request | upstream CPU/request | client CPU/request | peak RSS |"
    );
    let _ = writeln!(report, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (target, total) in targets.iter().zip(totals.iter()) {
        let requests = total.sample.requests.max(1) as f64;
        let per_request = |cpu: Duration| format!("{:.1} µs", cpu.as_secs_f64() * 1e6 / requests);
        let (proxy_cpu, rss) = match target.pid {
            Some(pid) => (
                per_request(total.proxy_cpu),
                proc_stat::peak_rss_kib(pid)
                    .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                    .unwrap_or_else(|e| format!("({e:#})")),
            ),
            None => ("—".to_owned(), "—".to_owned()),
        };
        let min = total.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = total.rates.iter().copied().fold(0.0, f64::max);
        let rate = total.sample.rate();
        let p50 = total.sample.percentile_us(0.5);
        let _ = writeln!(
            report,
            "| {} | {rate:.0} | {min:.0}–{max:.0} | {:.2} | {:.2} | {p50:.0} | {:.0} | {:+.0} | {proxy_cpu} | {} | {} | {rss} |",
            target.name,
            rate / direct_rate,
            rate / relay_rate,
            total.sample.percentile_us(0.99),
            p50 - direct_p50,
            per_request(total.upstream_cpu),
            per_request(total.client_cpu),
        );
    }
    let _ = writeln!(report);
}

/// Each gateway's audit writer over the whole run (warm-up included), from its `/metrics`: how many
/// events a group commit held and how long storing one took, the fsync included. The counters are
/// published once a second, so the last second of the run may be missing.
fn writer_report(targets: &[Target], report: &mut String) {
    let mut lines = Vec::new();
    for target in targets {
        let Some(admin) = target.admin else { continue };
        let counters = crate::scrape::get(admin, "/metrics").map(|page| {
            ["events", "commits", "commit_microseconds"]
                .map(|name| crate::scrape::sample(&page, &format!("portcullis_audit_{name}_total")))
        });
        lines.push(match counters {
            Ok([Some(events), Some(commits), Some(micros)]) if events > 0.0 && commits > 0.0 => format!(
                "{}: {events:.0} events in {commits:.0} commits, {:.1} events per commit, {:.1} µs stored per event",
                target.name,
                events / commits,
                micros / events,
            ),
            Ok(_) => format!("{}: no audit events", target.name),
            Err(e) => format!("{}: metrics unreadable ({e:#})", target.name),
        });
    }
    if !lines.is_empty() {
        let _ = writeln!(report, "\nAudit writer over the whole run: {}.", lines.join("; "));
    }
}

/// A running gateway of one variant and what the load generator needs to call it.
struct RunningGateway {
    process: GatewayProcess,
    admin: std::net::SocketAddr,
    http: std::net::SocketAddr,
    authorization: HeaderValue,
}

/// Writes the variant's config into a new directory, starts the gateway and mints its token.
async fn start_gateway(
    bin: &std::path::Path,
    upstream: std::net::SocketAddr,
    variant: &GatewayVariant,
) -> anyhow::Result<RunningGateway> {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-bench-http-")
        .tempdir()
        .context("create the gateway's directory")?;
    let state_dir = dir.path().join("state");
    fs::create_dir_all(&state_dir).with_context(|| format!("create {}", state_dir.display()))?;
    fs::write(
        dir.path().join("policy.cedar"),
        format!(
            "permit(principal in Group::\"{GROUP}\", action, resource){};\n",
            variant.condition
        ),
    )
    .context("write the bench policy")?;
    let http = free_addr()?;
    let admin = free_addr()?;
    let config = gateway_config(&state_dir, &free_addr()?, &http, &admin, upstream, variant);
    let env = [(API_KEY_VAR, API_KEY)];
    let process = GatewayProcess::start_in(dir, bin, &config, &admin, &env).await?;
    let token = mint_token(bin, &process, &env, "bench-agent", GROUP)?;
    let mut authorization =
        HeaderValue::from_str(&format!("Bearer {token}")).context("the token is not a header value")?;
    authorization.set_sensitive(true);
    Ok(RunningGateway {
        process,
        admin: admin.parse().context("gateway admin address")?,
        http: http.parse().context("gateway HTTP address")?,
        authorization,
    })
}

/// Plaintext HTTP on loopback, the development issuer, a policy that permits the bench group everything
/// (every request is still decided), one `http` connection with an API-key credential and a route.
fn gateway_config(
    state_dir: &std::path::Path,
    pg: &str,
    http: &str,
    admin: &str,
    upstream: std::net::SocketAddr,
    variant: &GatewayVariant,
) -> String {
    format!(
        r#"# Written by cargo xtask bench-http: the {name} gateway.
[server]
state_dir = "{state_dir}"

[server.postgres]
listen = "{pg}"

[server.http]
listen = "{http}"
allow_plaintext = true

[server.admin]
listen = "{admin}"

[identity.dev_issuer]
enabled = true

[policy]
files = ["policy.cedar"]

{sections}
[[connections]]
name = "{CONNECTION}"
protocol = "http"
upstream_url = "http://{upstream}/api"
credential = {{ type = "header", name = "X-Api-Key", value = "${{{API_KEY_VAR}}}" }}
routes = [{{ template = "/customers/{{id}}", name = "customer" }}]
"#,
        name = variant.name,
        state_dir = state_dir.display(),
        sections = variant.sections,
    )
}
