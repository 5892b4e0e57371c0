//! Project automation (`cargo xtask <command>`): the command line and its dispatch.

mod bench;
mod bench_masking;
mod gateway;
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
    /// A plain TCP relay (accept, connect upstream, copy both ways); the bench's baseline. Prints
    /// `listening on <addr>` once bound, then serves until killed.
    Relay {
        /// Where to listen; port 0 picks a free one (the printed line names it).
        #[arg(long)]
        listen: SocketAddr,
        /// The server to relay to.
        #[arg(long)]
        upstream: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::BenchMasking(args) => bench_masking::run(&args),
        Command::Relay { listen, upstream } => relay::run(listen, upstream),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
