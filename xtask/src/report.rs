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

/// One table row: the same pgbench run against the four endpoints.
#[derive(Debug)]
pub struct Cell {
    pub run: Run,
    pub direct: Attempt,
    pub relay: Attempt,
    /// The gateway with statement checks on: every statement analysed and decided by Cedar.
    pub checks_on: Attempt,
    /// A second gateway, identical but for `[policy] statement_checks = false`.
    pub checks_off: Attempt,
}

/// Peak resident memory (VmHWM) of each proxy process over the whole bench, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakRss {
    pub checks_on_kib: Option<u64>,
    pub checks_off_kib: Option<u64>,
    pub relay_kib: Option<u64>,
}

/// Everything `cargo xtask bench` prints and writes.
#[derive(Debug)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub scale: u32,
    pub duration: Duration,
    pub cells: Vec<Cell>,
    pub peak_rss: PeakRss,
}

/// The table's columns, in order; the first two are text (left-aligned), the rest numbers.
const COLUMNS: [&str; 19] = [
    "workload",
    "protocol",
    "clients",
    "tps direct",
    "tps relay",
    "tps on",
    "tps off",
    "on÷direct",
    "off÷direct",
    "on÷relay",
    "off÷relay",
    "on÷off",
    "latency direct ms",
    "latency relay ms",
    "latency on ms",
    "latency off ms",
    "µs CPU/stmt relay",
    "µs CPU/stmt on",
    "µs CPU/stmt off",
];
const TEXT_COLUMNS: usize = 2;

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
        writeln!(
            f,
            "- on: the gateway with statement checks on (every statement analysed and decided; the \
             policy permits the bench group everything); off: a second gateway, identical but \
             `statement_checks = false`"
        )?;
        writeln!(f)?;
        writeln!(f, "{}", header())?;
        writeln!(f, "{}", separator())?;
        for cell in &self.cells {
            writeln!(f, "{}", row(cell))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Peak RSS (VmHWM) over the whole bench: gateway checks on {}, gateway checks off {}, relay {}.",
            mib(self.peak_rss.checks_on_kib),
            mib(self.peak_rss.checks_off_kib),
            mib(self.peak_rss.relay_kib)
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

fn header() -> String {
    let mut line = String::new();
    for column in COLUMNS {
        let _ = write!(line, "| {column} ");
    }
    line.push('|');
    line
}

fn separator() -> String {
    let mut line = String::new();
    for index in 0..COLUMNS.len() {
        line.push_str(if index < TEXT_COLUMNS { "|---" } else { "|--:" });
    }
    line.push('|');
    line
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
    let direct = tps(&cell.direct);
    let relay = tps(&cell.relay);
    let on = tps(&cell.checks_on);
    let off = tps(&cell.checks_off);
    let columns = [
        cell.run.workload.to_string(),
        cell.run.mode.to_string(),
        cell.run.clients.to_string(),
        num(direct, 0),
        num(relay, 0),
        num(on, 0),
        num(off, 0),
        num(ratio(on, direct), 2),
        num(ratio(off, direct), 2),
        num(ratio(on, relay), 2),
        num(ratio(off, relay), 2),
        num(ratio(on, off), 2),
        num(latency(&cell.direct), 3),
        num(latency(&cell.relay), 3),
        num(latency(&cell.checks_on), 3),
        num(latency(&cell.checks_off), 3),
        num(cpu_us(&cell.relay), 1),
        num(cpu_us(&cell.checks_on), 1),
        num(cpu_us(&cell.checks_off), 1),
    ];
    let mut line = String::new();
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
        ("gateway checks on", &cell.checks_on),
        ("gateway checks off", &cell.checks_off),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgbench::{QueryMode, Workload};

    fn measured(tps: f64, cpu_us: Option<u64>) -> Attempt {
        Ok(Measured {
            outcome: Outcome {
                tps,
                latency_avg_ms: 1000.0 / tps,
                transactions: 1000,
            },
            cpu_per_statement: cpu_us.map(Duration::from_micros),
        })
    }

    fn cell() -> Cell {
        Cell {
            run: Run {
                workload: Workload::SelectOnly,
                mode: QueryMode::Extended,
                clients: 16,
                duration: Duration::from_secs(10),
            },
            direct: measured(1000.0, None),
            relay: measured(800.0, Some(30)),
            checks_on: measured(600.0, Some(50)),
            checks_off: measured(750.0, Some(35)),
        }
    }

    fn cells(line: &str) -> Vec<&str> {
        let inner = line.strip_prefix('|').and_then(|l| l.strip_suffix('|')).unwrap();
        inner.split('|').map(str::trim).collect()
    }

    #[test]
    fn header_separator_and_rows_have_the_same_columns() {
        assert_eq!(cells(&header()).len(), COLUMNS.len());
        assert_eq!(cells(&separator()).len(), COLUMNS.len());
        assert_eq!(cells(&row(&cell())).len(), COLUMNS.len());
    }

    #[test]
    fn ratios_compare_checks_on_with_off_relay_and_direct() {
        let row = row(&cell());
        let values = cells(&row);
        let column = |name: &str| values[COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert_eq!(column("on÷direct"), "0.60");
        assert_eq!(column("off÷direct"), "0.75");
        assert_eq!(column("on÷relay"), "0.75");
        assert_eq!(column("on÷off"), "0.80");
        assert_eq!(column("µs CPU/stmt on"), "50.0");
        assert_eq!(column("µs CPU/stmt off"), "35.0");
        assert_eq!(column("µs CPU/stmt relay"), "30.0");
    }

    #[test]
    fn a_failed_run_leaves_dashes_and_is_listed() {
        let mut cell = cell();
        cell.checks_off = Err("boom".to_owned());
        let values: Vec<String> = cells(&row(&cell)).into_iter().map(str::to_owned).collect();
        let column = |name: &str| values[COLUMNS.iter().position(|c| *c == name).unwrap()].clone();
        assert_eq!(column("on÷off"), "—");
        assert_eq!(column("tps off"), "—");
        assert_eq!(
            errors(&cell),
            ["select-only extended 16 clients, gateway checks off: boom"]
        );
    }
}
