//! The bench's results and their markdown rendering: a throughput table and a cost table with one row
//! per workload × protocol × clients × repeat, and, over several repeats, a table of means.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::gateway::{AuditRun, Variant};
use crate::machine::Machine;
use crate::pgbench::{Outcome, Run};

/// One pgbench run against one endpoint, with the CPU time the proxy in between spent per statement
/// (None for the direct connection: there is no proxy) and, through a gateway that records, what its
/// audit trail did.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub outcome: Outcome,
    pub cpu_per_statement: Option<Duration>,
    pub audit: Option<AuditRun>,
}

/// A run's result, or why there is none (the error is reported below the tables).
pub type Attempt = Result<Measured, String>;

/// The same pgbench run against every endpoint.
#[derive(Debug)]
pub struct Cell {
    pub run: Run,
    /// Which repetition of this run (1-based).
    pub repeat: u32,
    pub direct: Attempt,
    pub relay: Attempt,
    /// One per gateway variant, in the order of `--gateways`.
    pub gateways: Vec<(Variant, Attempt)>,
}

/// What each gateway left behind over the whole bench.
#[derive(Debug, Clone, Copy)]
pub struct GatewayTotals {
    pub variant: Variant,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: Option<u64>,
    /// Size of the audit store (database and WAL) at the end; None without audit.
    pub store_bytes: Option<u64>,
}

/// Everything `cargo xtask bench` prints and writes.
#[derive(Debug)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub scale: u32,
    pub duration: Duration,
    pub repeats: u32,
    pub variants: Vec<Variant>,
    pub cells: Vec<Cell>,
    pub gateways: Vec<GatewayTotals>,
    /// Peak resident memory of the relay, KiB.
    pub relay_peak_rss_kib: Option<u64>,
}

/// The comparisons worth a column when both sides ran: the cost of the audit trail (the key one), of
/// its durability wait, and of statement checks.
const PAIRS: [(Variant, Variant); 4] = [
    (Variant::AuditOn, Variant::AuditOff),
    (Variant::AuditTmpfs, Variant::AuditOff),
    (Variant::AuditOn, Variant::AuditTmpfs),
    (Variant::AuditOff, Variant::ChecksOff),
];

/// Leading text columns of every table: workload, protocol, clients (and run in the per-run tables).
const KEY_COLUMNS: [&str; 3] = ["workload", "protocol", "clients"];

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Command: `{}`", self.command)?;
        writeln!(f)?;
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "- pgbench scale {}, {} s per run, {} repeat(s), -j min(clients, 2), TLS off on every hop; \
             in each cell direct and relay run first, then the gateways in an order that rotates from cell \
             to cell",
            self.scale,
            self.duration.as_secs(),
            self.repeats
        )?;
        for variant in &self.variants {
            writeln!(f, "- {variant}: {}", variant.describe())?;
        }
        writeln!(
            f,
            "- audit columns: events stored per second of run, per pgbench statement, per store commit \
             (from `portcullis_audit_events_total` / `_commits_total` deltas); writer CPU and run-queue = \
             the `audit-writer` thread's time on a CPU, and runnable but waiting for one, ÷ run time (the \
             rest it is blocked: idle, or in fsync)"
        )?;
        writeln!(f)?;
        writeln!(f, "Throughput (tps; ratios of tps):")?;
        writeln!(f)?;
        write!(f, "{}", self.throughput())?;
        writeln!(f)?;
        writeln!(f, "Cost (latency; proxy CPU per statement; audit trail):")?;
        writeln!(f)?;
        write!(f, "{}", self.cost())?;
        if self.repeats > 1 {
            writeln!(f)?;
            writeln!(
                f,
                "Means over {} repeats (ratios: mean of the per-run ratios, with min–max):",
                self.repeats
            )?;
            writeln!(f)?;
            write!(f, "{}", self.summary())?;
        }
        writeln!(f)?;
        let mut totals = Vec::new();
        for gateway in &self.gateways {
            let mut text = format!("{} {}", gateway.variant, mib(gateway.peak_rss_kib));
            if let Some(bytes) = gateway.store_bytes {
                let _ = write!(
                    text,
                    " (audit store {:.1} MiB at the end)",
                    bytes as f64 / 1_048_576.0
                );
            }
            totals.push(text);
        }
        totals.push(format!("relay {}", mib(self.relay_peak_rss_kib)));
        writeln!(f, "Peak RSS (VmHWM) over the whole bench: {}.", totals.join(", "))?;
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

impl Report {
    /// The pairs of [`PAIRS`] whose both sides are in this bench.
    fn pairs(&self) -> Vec<(Variant, Variant)> {
        PAIRS
            .into_iter()
            .filter(|(a, b)| self.variants.contains(a) && self.variants.contains(b))
            .collect()
    }

    fn audit_variants(&self) -> Vec<Variant> {
        self.variants.iter().copied().filter(|v| v.audit()).collect()
    }

    fn throughput(&self) -> Table {
        let mut header = per_run_key();
        header.extend(["tps direct".to_owned(), "tps relay".to_owned()]);
        header.extend(self.variants.iter().map(|v| format!("tps {v}")));
        header.extend(self.pairs().iter().map(|(a, b)| format!("{a}÷{b}")));
        header.extend(self.variants.iter().map(|v| format!("{v}÷relay")));
        header.extend(self.variants.iter().map(|v| format!("{v}÷direct")));
        let mut table = Table::new(header, KEY_COLUMNS.len() + 1);
        for cell in &self.cells {
            let mut row = per_run_key_of(cell);
            let direct = tps(&cell.direct);
            let relay = tps(&cell.relay);
            row.extend([num(direct, 0), num(relay, 0)]);
            row.extend(self.variants.iter().map(|&v| num(tps(gateway(cell, v)), 0)));
            for (a, b) in self.pairs() {
                row.push(num(ratio(tps(gateway(cell, a)), tps(gateway(cell, b))), 2));
            }
            row.extend(
                self.variants
                    .iter()
                    .map(|&v| num(ratio(tps(gateway(cell, v)), relay), 2)),
            );
            row.extend(
                self.variants
                    .iter()
                    .map(|&v| num(ratio(tps(gateway(cell, v)), direct), 2)),
            );
            table.rows.push(row);
        }
        table
    }

    fn cost(&self) -> Table {
        let mut header = per_run_key();
        header.extend(["latency direct ms".to_owned(), "latency relay ms".to_owned()]);
        header.extend(self.variants.iter().map(|v| format!("latency {v} ms")));
        header.push("µs CPU/stmt relay".to_owned());
        header.extend(self.variants.iter().map(|v| format!("µs CPU/stmt {v}")));
        for v in self.audit_variants() {
            header.extend([
                format!("{v} events/s"),
                format!("{v} events/stmt"),
                format!("{v} events/commit"),
                format!("{v} writer CPU %"),
                format!("{v} writer run-queue %"),
            ]);
        }
        let mut table = Table::new(header, KEY_COLUMNS.len() + 1);
        for cell in &self.cells {
            let mut row = per_run_key_of(cell);
            row.push(num(latency(&cell.direct), 3));
            row.push(num(latency(&cell.relay), 3));
            row.extend(self.variants.iter().map(|&v| num(latency(gateway(cell, v)), 3)));
            row.push(num(cpu_us(&cell.relay), 1));
            row.extend(self.variants.iter().map(|&v| num(cpu_us(gateway(cell, v)), 1)));
            for v in self.audit_variants() {
                let audit = AuditFigures::of(cell.run, gateway(cell, v));
                row.extend([
                    num(audit.events_per_second, 0),
                    num(audit.events_per_statement, 2),
                    num(audit.events_per_commit, 1),
                    num(audit.writer_cpu_percent, 0),
                    num(audit.writer_run_queue_percent, 0),
                ]);
            }
            table.rows.push(row);
        }
        table
    }

    /// One row per workload × protocol × clients: means over the repeats.
    fn summary(&self) -> Table {
        let mut header: Vec<String> = KEY_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        header.extend(["tps direct".to_owned(), "tps relay".to_owned()]);
        header.extend(self.variants.iter().map(|v| format!("tps {v}")));
        header.extend(self.pairs().iter().map(|(a, b)| format!("{a}÷{b}")));
        header.extend(self.variants.iter().map(|v| format!("{v}÷relay")));
        header.extend(self.variants.iter().map(|v| format!("µs CPU/stmt {v}")));
        for v in self.audit_variants() {
            header.extend([format!("{v} events/s"), format!("{v} events/commit")]);
        }
        let mut table = Table::new(header, KEY_COLUMNS.len());
        let mut runs: Vec<Run> = Vec::new();
        for cell in &self.cells {
            if !runs.iter().any(|r| same_run(r, &cell.run)) {
                runs.push(cell.run);
            }
        }
        for run in runs {
            let cells: Vec<&Cell> = self.cells.iter().filter(|c| same_run(&c.run, &run)).collect();
            let mean_of =
                |value: &dyn Fn(&Cell) -> Option<f64>| Spread::of(cells.iter().filter_map(|c| value(c)));
            let mut row = vec![
                run.workload.to_string(),
                run.mode.to_string(),
                run.clients.to_string(),
            ];
            row.push(mean_of(&|c| tps(&c.direct)).mean(0));
            row.push(mean_of(&|c| tps(&c.relay)).mean(0));
            for &v in &self.variants {
                row.push(mean_of(&|c| tps(gateway(c, v))).mean(0));
            }
            for (a, b) in self.pairs() {
                row.push(mean_of(&|c| ratio(tps(gateway(c, a)), tps(gateway(c, b)))).with_range(2));
            }
            for &v in &self.variants {
                row.push(mean_of(&|c| ratio(tps(gateway(c, v)), tps(&c.relay))).with_range(2));
            }
            for &v in &self.variants {
                row.push(mean_of(&|c| cpu_us(gateway(c, v))).mean(1));
            }
            for v in self.audit_variants() {
                row.push(mean_of(&|c| AuditFigures::of(c.run, gateway(c, v)).events_per_second).mean(0));
                row.push(mean_of(&|c| AuditFigures::of(c.run, gateway(c, v)).events_per_commit).mean(1));
            }
            table.rows.push(row);
        }
        table
    }
}

/// The audit figures of one run through a recording gateway.
#[derive(Debug, Clone, Copy, Default)]
struct AuditFigures {
    events_per_second: Option<f64>,
    events_per_statement: Option<f64>,
    events_per_commit: Option<f64>,
    writer_cpu_percent: Option<f64>,
    writer_run_queue_percent: Option<f64>,
}

impl AuditFigures {
    fn of(run: Run, attempt: &Attempt) -> AuditFigures {
        let Some((measured, audit)) = attempt.as_ref().ok().and_then(|m| Some((m, m.audit?))) else {
            return AuditFigures::default();
        };
        let seconds = run.duration.as_secs_f64();
        let statements = measured.outcome.transactions * run.workload.statements_per_transaction();
        let events = audit.events as f64;
        AuditFigures {
            events_per_second: ratio(Some(events), Some(seconds)),
            events_per_statement: ratio(Some(events), Some(statements as f64)),
            events_per_commit: ratio(Some(events), Some(audit.commits as f64)),
            writer_cpu_percent: audit
                .writer
                .and_then(|w| ratio(Some(w.on_cpu.as_secs_f64() * 100.0), Some(seconds))),
            writer_run_queue_percent: audit
                .writer
                .and_then(|w| ratio(Some(w.run_delay.as_secs_f64() * 100.0), Some(seconds))),
        }
    }
}

/// Mean, min and max of some values.
#[derive(Debug, Clone, Copy)]
struct Spread {
    mean: Option<f64>,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Spread {
        let (mut n, mut sum, mut min, mut max) = (0_u32, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for value in values {
            n += 1;
            sum += value;
            min = min.min(value);
            max = max.max(value);
        }
        Spread {
            mean: (n > 0).then(|| sum / f64::from(n)),
            min,
            max,
        }
    }

    fn mean(self, decimals: usize) -> String {
        num(self.mean, decimals)
    }

    /// "0.93 (0.91–0.95)", or just the mean when all values agree at this precision.
    fn with_range(self, decimals: usize) -> String {
        let mean = num(self.mean, decimals);
        let (min, max) = (num(Some(self.min), decimals), num(Some(self.max), decimals));
        if self.mean.is_none() || min == max {
            mean
        } else {
            format!("{mean} ({min}–{max})")
        }
    }
}

/// A markdown table; the first `text` columns are left-aligned, the rest (numbers) right-aligned.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    text: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: Vec<String>, text: usize) -> Table {
        Table {
            header,
            text,
            rows: Vec::new(),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", line(&self.header))?;
        let mut separator = String::new();
        for index in 0..self.header.len() {
            separator.push_str(if index < self.text { "|---" } else { "|--:" });
        }
        separator.push('|');
        writeln!(f, "{separator}")?;
        for row in &self.rows {
            writeln!(f, "{}", line(row))?;
        }
        Ok(())
    }
}

fn line(columns: &[String]) -> String {
    let mut line = String::new();
    for column in columns {
        let _ = write!(line, "| {column} ");
    }
    line.push('|');
    line
}

fn per_run_key() -> Vec<String> {
    let mut key: Vec<String> = KEY_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    key.push("run".to_owned());
    key
}

fn per_run_key_of(cell: &Cell) -> Vec<String> {
    vec![
        cell.run.workload.to_string(),
        cell.run.mode.to_string(),
        cell.run.clients.to_string(),
        cell.repeat.to_string(),
    ]
}

fn same_run(a: &Run, b: &Run) -> bool {
    a.workload == b.workload && a.mode == b.mode && a.clients == b.clients
}

/// The attempt of gateway `variant` in `cell` (an error if the bench did not run it).
fn gateway(cell: &Cell, variant: Variant) -> &Attempt {
    const NOT_RUN: &Attempt = &Err(String::new());
    cell.gateways
        .iter()
        .find_map(|(v, attempt)| (*v == variant).then_some(attempt))
        .unwrap_or(NOT_RUN)
}

fn tps(attempt: &Attempt) -> Option<f64> {
    attempt.as_ref().ok().map(|m| m.outcome.tps)
}

fn latency(attempt: &Attempt) -> Option<f64> {
    attempt.as_ref().ok().map(|m| m.outcome.latency_avg_ms)
}

fn cpu_us(attempt: &Attempt) -> Option<f64> {
    attempt
        .as_ref()
        .ok()
        .and_then(|m| m.cpu_per_statement)
        .map(|cpu| cpu.as_secs_f64() * 1e6)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn errors(cell: &Cell) -> Vec<String> {
    let mut attempts = vec![
        ("direct".to_owned(), &cell.direct),
        ("relay".to_owned(), &cell.relay),
    ];
    attempts.extend(
        cell.gateways
            .iter()
            .map(|(v, attempt)| (format!("{v} gateway"), attempt)),
    );
    attempts
        .into_iter()
        .filter_map(|(endpoint, attempt)| {
            let error = attempt.as_ref().err()?;
            let run = cell.run;
            Some(format!(
                "{} {} {} clients, run {}, {endpoint}: {error}",
                run.workload, run.mode, run.clients, cell.repeat
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
    use crate::machine::Machine;
    use crate::pgbench::{QueryMode, Workload};
    use crate::proc_stat::ThreadSched;

    fn measured(tps: f64, cpu_us: Option<u64>, audit: Option<AuditRun>) -> Attempt {
        Ok(Measured {
            outcome: Outcome {
                tps,
                latency_avg_ms: 1000.0 / tps,
                transactions: 1000,
            },
            cpu_per_statement: cpu_us.map(Duration::from_micros),
            audit,
        })
    }

    fn cell(repeat: u32, audit_on_tps: f64) -> Cell {
        let audit = AuditRun {
            events: 20_000,
            commits: 500,
            writer: Some(ThreadSched {
                on_cpu: Duration::from_secs(5),
                run_delay: Duration::from_secs(2),
            }),
        };
        Cell {
            run: Run {
                workload: Workload::TpcbLike,
                mode: QueryMode::Simple,
                clients: 16,
                duration: Duration::from_secs(10),
            },
            repeat,
            direct: measured(1000.0, None, None),
            relay: measured(800.0, Some(30), None),
            gateways: vec![
                (Variant::AuditOn, measured(audit_on_tps, Some(50), Some(audit))),
                (Variant::AuditOff, measured(750.0, Some(35), None)),
            ],
        }
    }

    fn report(cells: Vec<Cell>) -> Report {
        Report {
            machine: Machine {
                cores: 2,
                cpu_model: "test".to_owned(),
                kernel: "Linux test".to_owned(),
                pgbench: Some("pgbench (PostgreSQL) 15".to_owned()),
            },
            command: "cargo xtask bench".to_owned(),
            scale: 10,
            duration: Duration::from_secs(10),
            repeats: u32::try_from(cells.len()).unwrap(),
            variants: vec![Variant::AuditOn, Variant::AuditOff],
            cells,
            gateways: Vec::new(),
            relay_peak_rss_kib: None,
        }
    }

    fn cells(line: &str) -> Vec<String> {
        let inner = line.strip_prefix('|').and_then(|l| l.strip_suffix('|')).unwrap();
        inner.split('|').map(|c| c.trim().to_owned()).collect()
    }

    /// The value in column `name` of the table's first row.
    fn first_row(table: &Table, name: &str) -> String {
        let column = table.header.iter().position(|c| c == name).unwrap();
        table.rows[0][column].clone()
    }

    #[test]
    fn every_line_of_a_table_has_the_header_s_columns() {
        let report = report(vec![cell(1, 600.0), cell(2, 700.0)]);
        for table in [report.throughput(), report.cost(), report.summary()] {
            let text = table.to_string();
            let widths: Vec<usize> = text.lines().map(|l| cells(l).len()).collect();
            assert!(widths.iter().all(|w| *w == table.header.len()), "{text}");
        }
    }

    #[test]
    fn ratios_compare_audit_on_with_off_relay_and_direct() {
        let throughput = report(vec![cell(1, 600.0)]).throughput();
        assert_eq!(first_row(&throughput, "audit-on÷audit-off"), "0.80");
        assert_eq!(first_row(&throughput, "audit-on÷relay"), "0.75");
        assert_eq!(first_row(&throughput, "audit-off÷relay"), "0.94");
        assert_eq!(first_row(&throughput, "audit-on÷direct"), "0.60");
    }

    #[test]
    fn audit_figures_come_from_the_counter_deltas() {
        let cost = report(vec![cell(1, 600.0)]).cost();
        assert_eq!(first_row(&cost, "audit-on events/s"), "2000");
        // 1000 TPC-B-like transactions of 7 statements.
        assert_eq!(first_row(&cost, "audit-on events/stmt"), "2.86");
        assert_eq!(first_row(&cost, "audit-on events/commit"), "40.0");
        assert_eq!(first_row(&cost, "audit-on writer CPU %"), "50");
        assert_eq!(first_row(&cost, "audit-on writer run-queue %"), "20");
        assert_eq!(first_row(&cost, "µs CPU/stmt audit-on"), "50.0");
        assert_eq!(first_row(&cost, "µs CPU/stmt relay"), "30.0");
        assert!(!cost.header.iter().any(|c| c.starts_with("audit-off events")));
    }

    #[test]
    fn the_summary_averages_repeats_with_their_range() {
        let summary = report(vec![cell(1, 600.0), cell(2, 675.0)]).summary();
        assert_eq!(summary.rows.len(), 1);
        assert_eq!(first_row(&summary, "tps audit-on"), "638");
        assert_eq!(first_row(&summary, "audit-on÷audit-off"), "0.85 (0.80–0.90)");
        assert_eq!(first_row(&summary, "audit-off÷relay"), "0.94");
    }

    #[test]
    fn a_failed_run_leaves_dashes_and_is_listed() {
        let mut cell = cell(1, 600.0);
        cell.gateways[1].1 = Err("boom".to_owned());
        assert_eq!(
            errors(&cell),
            ["tpcb-like simple 16 clients, run 1, audit-off gateway: boom"]
        );
        let throughput = report(vec![cell]).throughput();
        assert_eq!(first_row(&throughput, "audit-on÷audit-off"), "—");
        assert_eq!(first_row(&throughput, "tps audit-off"), "—");
    }
}
