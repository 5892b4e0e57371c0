//! `cargo xtask bench-masking`: one large SELECT (1,000,000 rows by default) read to the end, direct vs. a
//! plain TCP relay vs. the gateway with masking off (audit-off), with column rules (mask-columns) and with
//! every detector on (mask-on), in one run.
//!
//! The table holds what a customer table holds: names, emails (masked whole by a column rule), phone
//! numbers, free-text notes of which one in ten carries a card number, timestamps. Every text cell goes
//! through all detectors in the mask-on gateway. The client is tokio-postgres reading the rows as a stream
//! (nothing is kept), with the simple protocol (text) and the extended protocol (binary results). Each
//! repeat runs every target back to back in a rotating order. Reported: rows/s, the ratios, the proxy's
//! CPU time per row, and each proxy's peak RSS (bounded memory: it must not grow with the result).

use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use portcullis_testkit::pg::PgCluster;

use crate::bench::{build_release, set_up_database_only, target_dir, workspace_root};
use crate::gateway::{Gateway, MASKING_COLUMNS, MASKING_RULES, Variant};
use crate::pgbench::Endpoint;
use crate::proc_stat::{self, ClockTicks};
use crate::relay::RelayProcess;

/// Flags of `cargo xtask bench-masking`.
#[derive(Debug, clap::Args)]
pub struct MaskBenchArgs {
    /// Rows in the table and in each SELECT.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Times each target reads the whole result, per protocol.
    #[arg(long, default_value_t = 3)]
    repeats: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Simple query, text results.
    Simple,
    /// Extended query, binary results (what tokio-postgres asks for).
    Extended,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Simple => "simple (text)",
            Protocol::Extended => "extended (binary)",
        }
    }
}

struct Target<'a> {
    name: &'static str,
    endpoint: &'a Endpoint,
    pid: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    rows: u64,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
}

const SELECT: &str = "SELECT id, name, email, phone, notes, created FROM people";

pub fn run(args: &MaskBenchArgs) -> anyhow::Result<()> {
    if let Some(outcome) = crate::bench::rerun_in_release() {
        return outcome;
    }
    if args.repeats == 0 || args.rows == 0 {
        bail!("--rows and --repeats must be at least 1");
    }
    let root = workspace_root()?;
    let target_dir = target_dir(&root);
    let gateway_bin = build_release(&root, &target_dir, "portcullis")?;
    let relay_bin = build_release(&root, &target_dir, "xtask")?;
    let ticks = ClockTicks::from_getconf()?;

    eprintln!(
        "bench-masking: starting PostgreSQL and loading {} rows",
        args.rows
    );
    let pg = PgCluster::start()?;
    let direct = set_up_database_only(&pg)?;
    pg.psql(&direct.dbname, &seed_sql(args.rows))?;
    let relay = RelayProcess::start(&relay_bin, direct.addr)?;
    let through_relay = Endpoint {
        addr: relay.addr(),
        ..direct.clone()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    let off = runtime.block_on(Gateway::start(&gateway_bin, &direct, Variant::AuditOff))?;
    let columns = runtime.block_on(Gateway::start(&gateway_bin, &direct, Variant::MaskColumns))?;
    let on = runtime.block_on(Gateway::start(&gateway_bin, &direct, Variant::MaskOn))?;
    let targets = [
        Target {
            name: "direct",
            endpoint: &direct,
            pid: None,
        },
        Target {
            name: "relay",
            endpoint: &through_relay,
            pid: Some(relay.pid()),
        },
        Target {
            name: "masking off",
            endpoint: &off.endpoint,
            pid: Some(off.process.pid()),
        },
        Target {
            name: "column rules",
            endpoint: &columns.endpoint,
            pid: Some(columns.process.pid()),
        },
        Target {
            name: "all detectors",
            endpoint: &on.endpoint,
            pid: Some(on.process.pid()),
        },
    ];
    // An untimed read first: caches warm, and the mask-on gateway's catalog lookup done.
    for target in &targets {
        runtime.block_on(read_all(target.endpoint, Protocol::Simple))?;
    }

    let mut report = String::new();
    let _ = writeln!(
        report,
        "## Masking: one {}-row SELECT read to the end\n",
        args.rows
    );
    let _ = writeln!(
        report,
        "`cargo xtask bench-masking --rows {} --repeats {}`; query `{SELECT}`; tokio-postgres streaming the rows; \
         {} repeats per target and protocol, targets rotating.\n",
        args.rows, args.repeats, args.repeats
    );
    let _ = writeln!(
        report,
        "*column rules*: the sensitive columns named (the usual set-up):\n\n```toml\n{MASKING_COLUMNS}```\n\n\
         *all detectors*: every detector over every text value, plus a column rule (the worst case):\n\n\
         ```toml\n{MASKING_RULES}```\n"
    );
    for protocol in [Protocol::Simple, Protocol::Extended] {
        let mut totals = [Totals::default(); 5];
        for repeat in 0..args.repeats {
            for offset in 0..targets.len() {
                let index = (offset + repeat as usize) % targets.len();
                let (Some(target), Some(total)) = (targets.get(index), totals.get_mut(index)) else {
                    continue;
                };
                eprintln!(
                    "bench-masking: {} {} repeat {}",
                    protocol.label(),
                    target.name,
                    repeat + 1
                );
                let before = target.pid.map(|pid| ticks.cpu_time(pid)).transpose()?;
                let started = Instant::now();
                let (rows, bytes) = runtime.block_on(read_all(target.endpoint, protocol))?;
                let wall = started.elapsed();
                let after = target.pid.map(|pid| ticks.cpu_time(pid)).transpose()?;
                if rows != args.rows {
                    bail!("{}: read {rows} rows, expected {}", target.name, args.rows);
                }
                total.rows += rows;
                total.bytes += bytes;
                total.wall += wall;
                if let (Some(before), Some(after)) = (before, after) {
                    total.cpu += after.saturating_sub(before);
                }
            }
        }
        let rate = |t: &Totals| t.rows as f64 / t.wall.as_secs_f64().max(1e-9);
        let [direct_t, relay_t, off_t, columns_t, on_t] = totals;
        let _ = writeln!(report, "### {}\n", protocol.label());
        let _ = writeln!(
            report,
            "| target | rows/s | MB/s (cell bytes) | ÷ direct | ÷ relay | ÷ masking off | proxy CPU per row |"
        );
        let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, t, proxied) in [
            ("direct", &direct_t, false),
            ("relay", &relay_t, true),
            ("masking off", &off_t, true),
            ("column rules", &columns_t, true),
            ("all detectors", &on_t, true),
        ] {
            let cpu = if proxied {
                format!("{:.2} µs", t.cpu.as_secs_f64() * 1e6 / t.rows.max(1) as f64)
            } else {
                "—".to_owned()
            };
            let _ = writeln!(
                report,
                "| {name} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {cpu} |",
                rate(t),
                t.bytes as f64 / 1e6 / t.wall.as_secs_f64().max(1e-9),
                rate(t) / rate(&direct_t),
                rate(t) / rate(&relay_t),
                rate(t) / rate(&off_t),
            );
        }
        let _ = writeln!(report);
    }
    let rss = |pid: u32| {
        proc_stat::peak_rss_kib(pid)
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|e| format!("({e:#})"))
    };
    let _ = writeln!(
        report,
        "Peak RSS over the whole run: relay {}, masking off {}, column rules {}, all detectors {}.",
        rss(relay.pid()),
        rss(off.process.pid()),
        rss(columns.process.pid()),
        rss(on.process.pid())
    );
    println!("{report}");
    let out_dir = target_dir.join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let out = out_dir.join("masking.md");
    fs::write(&out, &report).with_context(|| format!("write {}", out.display()))?;
    eprintln!("bench-masking: wrote {}", out.display());
    Ok(())
}

/// A customer-like table of `rows` rows; one note in ten carries a card number.
fn seed_sql(rows: u64) -> String {
    format!(
        "CREATE TABLE people AS SELECT g AS id, \
           'Person ' || g || ' ' || substr(md5(g::text), 1, 8) AS name, \
           'user' || g || '@example.com' AS email, \
           '+1 212 555 ' || lpad((g % 10000)::text, 4, '0') AS phone, \
           CASE WHEN g % 10 = 0 THEN 'paid with card 4111 1111 1111 1111, receipt sent' \
                ELSE 'order ORD-' || g || ' shipped to ' || (g % 977) || ' Main Street, Springfield' END AS notes, \
           timestamptz '2026-01-01' + g * interval '1 second' AS created \
         FROM generate_series(1, {rows}) g; \
         VACUUM ANALYZE people;"
    )
}

/// Reads the whole SELECT; returns (rows, bytes of cell data).
async fn read_all(endpoint: &Endpoint, protocol: Protocol) -> anyhow::Result<(u64, u64)> {
    let conninfo = endpoint.conninfo();
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to {}", endpoint.addr))?;
    let driver = tokio::spawn(connection);
    let mut rows = 0u64;
    let mut bytes = 0u64;
    match protocol {
        Protocol::Simple => {
            let stream = client.simple_query_raw(SELECT).await.context("simple query")?;
            futures_util::pin_mut!(stream);
            while let Some(message) = stream.next().await {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = message.context("row")? {
                    rows += 1;
                    for i in 0..row.len() {
                        bytes += row.get(i).map_or(0, |v| v.len() as u64);
                    }
                }
            }
        }
        Protocol::Extended => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
            let stream = client
                .query_raw(SELECT, params.iter().copied())
                .await
                .context("extended query")?;
            futures_util::pin_mut!(stream);
            while let Some(row) = stream.next().await {
                let row = row.context("row")?;
                rows += 1;
                for i in 0..row.len() {
                    let raw: Option<Raw<'_>> = row.try_get(i).context("cell")?;
                    bytes += raw.map_or(0, |r| r.0.len() as u64);
                }
            }
        }
    }
    drop(client);
    let _ = driver.await;
    Ok((rows, bytes))
}

/// Any cell's raw bytes, whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}
