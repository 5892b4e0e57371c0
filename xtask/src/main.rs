//! Project automation (`cargo xtask <command>`): the command line and its dispatch.

mod bench;
mod bench_approvals;
mod bench_http;
mod bench_masking;
mod gateway;
mod http_load;
mod http_upstream;
mod machine;
mod pgbench;
mod proc_stat;
mod relay;
mod report;
mod scrape;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Portcullis automation. Run from anywhere in the workspace: `cargo xtask <command>`.
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare pgbench through gateway variants (audit trail on and off, ...) with a direct connection
    /// and a plain TCP relay.
    ///
    /// Builds the release gateway, starts a throwaway PostgreSQL (pgbench scale 10), one gateway per
    /// variant of --gateways (default: audit-on, audit-off; each with its own state dir and audit store)
    /// and a relay, and runs each workload × protocol × clients cell, --repeats times, against direct,
    /// relay and every gateway in turn. Prints markdown tables (throughput, cost with the audit trail's
    /// events/s and events per commit) and writes them to <target dir>/bench/latest.md.
    Bench(bench::BenchArgs),
    /// Read one large SELECT (1,000,000 rows) to the end: direct, through a plain TCP relay, and through
    /// the gateway with masking off, with column rules (emails and phones), and with every detector on every
    /// text value.
    ///
    /// Prints rows/s with the ratios, the proxy's CPU time per row and each proxy's peak RSS, for the
    /// simple protocol (text results) and the extended one (binary results); writes the tables to
    /// <target dir>/bench/masking.md.
    BenchMasking(bench_masking::MaskBenchArgs),
    /// How quickly an approved statement runs: a held DELETE per round, approved through the admin API;
    /// prints median, p95 and maximum of approve-to-result; writes <target dir>/bench/approvals.md.
    BenchApprovals(bench_approvals::ApprovalBenchArgs),
    /// Small JSON responses over HTTP/1.1 keep-alive: requests/s and p50/p99 latency direct to an
    /// upstream, through a plain TCP relay, and through the release gateway's HTTP proxy.
    ///
    /// Starts the upstream (`http-upstream`), the relay and one gateway per variant (audit on, audit
    /// off), mints a token, and runs a Rust load generator (N connections sending back to back) against
    /// each target in rotating order, per connection count and repeat. Prints a table per connection
    /// count (ratios to direct and relay, added p50, CPU per request of proxy, upstream and client, peak
    /// RSS) and writes them to <target dir>/bench/http.md.
    BenchHttp(bench_http::HttpBenchArgs),
    /// The HTTP bench's upstream: answers every request with one small JSON object, keep-alive. Prints
    /// `listening on <addr>` once bound, then serves until killed.
    HttpUpstream {
        /// Where to listen; port 0 picks a free one (the printed line names it).
        #[arg(long)]
        listen: SocketAddr,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// A plain TCP relay (accept, connect upstream, copy both ways); the bench's baseline. Prints
    /// `listening on <addr>` once bound, then serves until killed.
    Relay {
        /// Where to listen; port 0 picks a free one (the printed line names it).
        #[arg(long)]
        listen: SocketAddr,
        /// The server to relay to.
        #[arg(long)]
        upstream: SocketAddr,
        /// Write-ahead: append every chunk a client sends to this file, and forward it only once the
        /// append is durable (group commit: one writer thread, one write and one fdatasync for whatever
        /// queued meanwhile). The floor of any gateway that records what it forwards before forwarding
        /// it; see docs/performance.md.
        #[arg(long, value_name = "FILE")]
        write_ahead: Option<std::path::PathBuf>,
        /// With --write-ahead: hand the appends to the operating system without fdatasync.
        #[arg(long, requires = "write_ahead")]
        no_sync: bool,
        /// With --write-ahead: writer threads, each appending to its own file, so that commits overlap.
        #[arg(long, requires = "write_ahead", default_value_t = 1)]
        writers: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::BenchMasking(args) => bench_masking::run(&args),
        Command::BenchApprovals(args) => bench_approvals::run(&args),
        Command::BenchHttp(args) => bench_http::run(&args),
        Command::HttpUpstream { listen, workers } => http_upstream::run(listen, workers),
        Command::Relay {
            listen,
            upstream,
            write_ahead,
            no_sync,
            writers,
        } => {
            let journal = write_ahead.map(|path| relay::JournalSpec {
                path,
                sync: !no_sync,
                writers,
            });
            relay::run(listen, upstream, journal)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
