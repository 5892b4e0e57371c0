//! The bench's results and their markdown rendering: one table row per workload × protocol × clients.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::machine::Machine;
use crate::pgbench::{Outcome, Run};

/// One pgbench run against one endpoint, with the CPU time the proxy in between spent per statement
/// (None for the direct connection: there is no proxy).
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub outcome: Outcome,
    pub cpu_per_statement: Option<Duration>,
}

/// A run's result, or why there is none (the error is reported below the table).
pub type Attempt = Result<Measured, String>;

/// One table row: the same pgbench run against the three endpoints, in this order.
#[derive(Debug)]
pub struct Cell {
    pub run: Run,
    pub direct: Attempt,
    pub relay: Attempt,
    pub gateway: Attempt,
}

/// Everything `cargo xtask bench` prints and writes.
#[derive(Debug)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub scale: u32,
    pub duration: Duration,
    pub cells: Vec<Cell>,
    pub gateway_peak_rss_kib: Option<u64>,
    pub relay_peak_rss_kib: Option<u64>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Command: `{}`", self.command)?;
        writeln!(f)?;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "- pgbench scale {}, {} s per run, -j min(clients, 2), TLS off on every hop",
            self.scale,
            self.duration.as_secs()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| workload | protocol | clients | tps direct | tps relay | tps gateway | gateway÷direct \
             | gateway÷relay | latency direct ms | latency relay ms | latency gateway ms \
             | µs CPU/stmt gateway | µs CPU/stmt relay |"
        )?;
        writeln!(f, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")?;
        for cell in &self.cells {
            writeln!(f, "{}", row(cell))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Peak RSS (VmHWM) over the whole bench: gateway {}, relay {}.",
            mib(self.gateway_peak_rss_kib),
            mib(self.relay_peak_rss_kib)
        )?;
        let errors: Vec<String> = self.cells.iter().flat_map(errors).collect();
        if !errors.is_empty() {
            writeln!(f)?;
            writeln!(f, "Failed runs:")?;
            for error in errors {
                writeln!(f, "- {error}")?;
            }
        }
        Ok(())
    }
}

fn row(cell: &Cell) -> String {
    let tps = |attempt: &Attempt| attempt.as_ref().ok().map(|m| m.outcome.tps);
    let latency = |attempt: &Attempt| attempt.as_ref().ok().map(|m| m.outcome.latency_avg_ms);
    let cpu_us = |attempt: &Attempt| {
        attempt
            .as_ref()
            .ok()
            .and_then(|m| m.cpu_per_statement)
            .map(|cpu| cpu.as_secs_f64() * 1e6)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let (direct, relay, gateway) = (tps(&cell.direct), tps(&cell.relay), tps(&cell.gateway));
    let mut line = format!(
        "| {} | {} | {} ",
        cell.run.workload, cell.run.mode, cell.run.clients
    );
    let columns = [
        num(direct, 0),
        num(relay, 0),
        num(gateway, 0),
        num(ratio(gateway, direct), 2),
        num(ratio(gateway, relay), 2),
        num(latency(&cell.direct), 3),
        num(latency(&cell.relay), 3),
        num(latency(&cell.gateway), 3),
        num(cpu_us(&cell.gateway), 1),
        num(cpu_us(&cell.relay), 1),
    ];
    for column in columns {
        let _ = write!(line, "| {column} ");
    }
    line.push('|');
    line
}

fn errors(cell: &Cell) -> Vec<String> {
    [
        ("direct", &cell.direct),
        ("relay", &cell.relay),
        ("gateway", &cell.gateway),
    ]
    .into_iter()
    .filter_map(|(endpoint, attempt)| {
        let error = attempt.as_ref().err()?;
        let run = cell.run;
        Some(format!(
            "{} {} {} clients, {endpoint}: {error}",
            run.workload, run.mode, run.clients
        ))
    })
    .collect()
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.decimals$}"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "unknown".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}
