//! The gateways under test: each variant's config, its process and token, and what its audit trail
//! did during a run (events and commits from `/metrics`, the writer thread's scheduling from /proc).

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use portcullis_testkit::gateway::GatewayProcess;
use portcullis_testkit::ports::free_addr;
use tempfile::TempDir;

use crate::pgbench::Endpoint;
use crate::proc_stat::{self, ThreadSched};

/// The database on the cluster and the gateway's connection name.
pub const DATABASE: &str = "bench";
/// The group the minted token carries and the connection admits.
const GROUP: &str = "bench";
/// The gateway reads the upstream password from this variable (`${BENCH_PG_PASSWORD}` in the config).
const PASSWORD_VAR: &str = "BENCH_PG_PASSWORD";
/// The audit writer's thread name (`std::thread::Builder::name` in portcullis-audit's `log.rs`).
const WRITER_THREAD: &str = "audit-writer";
/// The gateway copies the writer's counters into its metrics once a second; waiting longer than that
/// after a run lets the last commits of the run (outcomes, session ends) show up in the "after" reading.
const METRICS_SETTLE: Duration = Duration::from_millis(1500);
const EVENTS_METRIC: &str = "portcullis_audit_events_total";
const COMMITS_METRIC: &str = "portcullis_audit_commits_total";
/// Lines of gateway.log printed when a gateway run fails.
const LOG_TAIL_LINES: usize = 20;

/// One gateway configuration the bench compares (`--gateways` names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    /// (`audit-on`) The default product: statement checks on, audit trail on, its store in the
    /// gateway's own state directory.
    AuditOn,
    /// (`audit-off`) Statement checks on, `[audit] enabled = false`.
    AuditOff,
    /// (`checks-off`) `statement_checks = false` and audit off: authentication and framing only, the
    /// gateway's floor.
    ChecksOff,
    /// (`audit-tmpfs`) As audit-on, with the store on /dev/shm, where fsync costs nothing: a diagnostic
    /// that tells the store's durability wait from the rest of the audit trail's cost.
    AuditTmpfs,
    /// (`audit-os`) As audit-on, with `[audit] durability = "os"`: commits are handed to the operating
    /// system, not fsynced (survives a gateway crash, not a machine crash).
    AuditOs,
    /// (`mask-on`) As audit-off, with masking rules: a column rule on `*.email` and every detector on
    /// every text value ([`MASKING_RULES`]).
    MaskOn,
    /// (`mask-columns`) As audit-off, with column rules only: `*.email` and `*.phone` masked whole, no
    /// detectors ([`MASKING_COLUMNS`]).
    MaskColumns,
    /// (`relay-wa`) Not a gateway: the plain TCP relay with a write-ahead journal (`cargo xtask relay
    /// --write-ahead`), each chunk a client sends made durable before it is forwarded. The floor of any
    /// gateway that records a statement durably before forwarding it, on this machine.
    #[value(name = "relay-wa")]
    RelayWriteAhead,
    /// (`approvals`) As audit-on, with `[approvals]` in hold mode and a policy that sends every DELETE
    /// for approval ([`APPROVAL_POLICY`]); reviewers are the group [`REVIEWERS`].
    Approvals,
}

/// The reviewers' group of the approvals variant.
pub const REVIEWERS: &str = "reviewers";

/// The approvals variant's policy: the bench group may do anything, a DELETE only after approval.
const APPROVAL_POLICY: &str = r#"permit(principal in Group::"bench", action == Action::"connect", resource);
permit(principal in Group::"bench", action in Action::"statement", resource)
unless { context.operations.contains("delete") };
@approval("required")
permit(principal in Group::"bench", action in Action::"statement", resource)
when { context.operations.contains("delete") };
"#;

/// The masking rules of the mask-columns variant: the usual set-up, where the sensitive columns are known.
pub const MASKING_COLUMNS: &str = r#"[masking]
[[masking.rules]]
columns = ["*.email", "*.phone"]
strategy = "partial"
keep = 4
"#;

/// The masking rules of the mask-on variant: the realistic worst case, where every text cell of every
/// result is scanned by all detectors, and one column is masked whole.
pub const MASKING_RULES: &str = r#"[masking]
[[masking.rules]]
columns = ["*.email"]
strategy = "partial"
keep = 4

[[masking.rules]]
detectors = ["email", "phone", "payment_card", "us_ssn", "iban", "ipv4", "ipv6", "jwt",
  "aws_access_key_id", "aws_secret_key", "github_token", "slack_token", "stripe_key", "private_key",
  "url_password"]
strategy = "redact"
"#;

impl Variant {
    fn statement_checks(self) -> bool {
        self != Variant::ChecksOff
    }

    /// Whether this variant records an audit trail (and so has audit counters).
    pub fn audit(self) -> bool {
        matches!(
            self,
            Variant::AuditOn | Variant::AuditTmpfs | Variant::AuditOs | Variant::Approvals
        )
    }

    /// The short name used in table headers.
    pub fn label(self) -> &'static str {
        match self {
            Variant::AuditOn => "audit-on",
            Variant::AuditOff => "audit-off",
            Variant::ChecksOff => "checks-off",
            Variant::AuditTmpfs => "audit-tmpfs",
            Variant::AuditOs => "audit-os",
            Variant::MaskOn => "mask-on",
            Variant::MaskColumns => "mask-columns",
            Variant::RelayWriteAhead => "relay-wa",
            Variant::Approvals => "approvals",
        }
    }

    /// One line for the report's legend.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::AuditOn => {
                "statement checks on, audit trail on (the default product; store in the gateway's state dir)"
            }
            Variant::AuditOff => "statement checks on, `[audit] enabled = false`",
            Variant::ChecksOff => "`statement_checks = false`, audit off (authentication and framing only)",
            Variant::AuditTmpfs => {
                "as audit-on, store on /dev/shm (tmpfs: fsync is free; a diagnostic of the durability wait)"
            }
            Variant::AuditOs => "as audit-on, `[audit] durability = \"os\"` (no fsync per commit)",
            Variant::MaskOn => {
                "as audit-off, with masking: a column rule on *.email, all detectors on every text value"
            }
            Variant::MaskColumns => {
                "as audit-off, with masking: column rules on *.email and *.phone, no detectors"
            }
            Variant::Approvals => {
                "as audit-on, DELETE held for a reviewer's approval ([approvals] hold mode)"
            }
            Variant::RelayWriteAhead => {
                "not a gateway: the plain relay, forwarding each client chunk only once it is appended to a \
                 journal and fdatasynced (group commit): the floor of any write-ahead proxy here"
            }
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The audit trail's work during one run: deltas of the writer's counters and of its thread's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct AuditRun {
    /// Events durably stored.
    pub events: u64,
    /// Store transactions (group commits) that stored them.
    pub commits: u64,
    /// The writer thread's time on a CPU, and runnable but waiting for one (None if it could not be
    /// found).
    pub writer: Option<ThreadSched>,
}

/// The writer's counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct AuditCounters {
    events: u64,
    commits: u64,
    writer: Option<ThreadSched>,
}

/// One running gateway and how pgbench reaches it.
#[derive(Debug)]
pub struct Gateway {
    pub variant: Variant,
    pub process: GatewayProcess,
    pub endpoint: Endpoint,
    admin: SocketAddr,
    /// The tmpfs directory holding audit-tmpfs's store; removed after the gateway has been killed
    /// (fields drop in declaration order).
    store_dir: Option<TempDir>,
}

impl Gateway {
    /// Starts a gateway of `variant` in front of `upstream`, in its own directory (config, log, state
    /// dir, audit store), and mints a token for it (each gateway has its own development issuer, so a
    /// token is good for one of them only).
    pub async fn start(bin: &Path, upstream: &Endpoint, variant: Variant) -> anyhow::Result<Gateway> {
        if variant == Variant::RelayWriteAhead {
            bail!("{variant} is a relay, started with RelayProcess::start_write_ahead");
        }
        let started = start_gateway(bin, upstream, variant)
            .await
            .with_context(|| format!("start the {variant} gateway"))?;
        let endpoint = Endpoint {
            addr: started.pg,
            dbname: DATABASE.to_owned(),
            user: "bench-agent".to_owned(),
            password: mint_token(
                bin,
                &started.process,
                &[(PASSWORD_VAR, upstream.password.as_str())],
                "bench",
                GROUP,
            )
            .with_context(|| format!("mint a token for the {variant} gateway"))?,
        };
        Ok(Gateway {
            variant,
            process: started.process,
            endpoint,
            admin: started.admin,
            store_dir: started.store_dir,
        })
    }

    /// The writer's counters now (from /metrics) and its thread's CPU time; None for a variant without
    /// an audit trail. Take it before a run, and pass it to [`Gateway::audit_since`] after.
    pub fn audit_counters(&self) -> anyhow::Result<Option<AuditCounters>> {
        if !self.variant.audit() {
            return Ok(None);
        }
        let page = crate::scrape::get(self.admin, "/metrics")?;
        let counter = |name: &str| -> anyhow::Result<u64> {
            let value =
                crate::scrape::sample(&page, name).ok_or_else(|| anyhow!("/metrics has no {name}"))?;
            // Counters are integral; the text format writes them as floats.
            Ok(value as u64)
        };
        Ok(Some(AuditCounters {
            events: counter(EVENTS_METRIC)?,
            commits: counter(COMMITS_METRIC)?,
            writer: proc_stat::thread_sched(self.process.pid(), WRITER_THREAD)?,
        }))
    }

    /// What the audit trail did since `before` was read: waits until the metrics have caught up with
    /// the run's last commits, then reads the counters again.
    pub fn audit_since(&self, before: Option<AuditCounters>) -> anyhow::Result<Option<AuditRun>> {
        let Some(before) = before else {
            return Ok(None);
        };
        std::thread::sleep(METRICS_SETTLE);
        let after = self
            .audit_counters()?
            .ok_or_else(|| anyhow!("the {} gateway has no audit counters", self.variant))?;
        Ok(Some(AuditRun {
            events: after.events.saturating_sub(before.events),
            commits: after.commits.saturating_sub(before.commits),
            writer: after
                .writer
                .zip(before.writer)
                .map(|(after, before)| ThreadSched {
                    on_cpu: after.on_cpu.saturating_sub(before.on_cpu),
                    run_delay: after.run_delay.saturating_sub(before.run_delay),
                }),
        }))
    }

    /// A token of `subject` in `group` from this gateway's development issuer (a reviewer's, say).
    pub fn mint(&self, bin: &Path, subject: &str, group: &str) -> anyhow::Result<String> {
        mint_token(bin, &self.process, &[(PASSWORD_VAR, "unused")], subject, group)
    }

    /// The admin listener's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The last lines of the gateway's log, for a failed run's report.
    pub fn log_tail(&self) -> String {
        let log = self.process.log().unwrap_or_else(|error| format!("({error:#})"));
        let lines: Vec<&str> = log.lines().collect();
        lines
            .get(lines.len().saturating_sub(LOG_TAIL_LINES)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// Bytes of the audit store (database and write-ahead log) now; None without audit.
    pub fn store_bytes(&self) -> Option<u64> {
        let db = self.store_path()?;
        let wal = db.with_extension("db-wal");
        let size = |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Some(size(&db) + size(&wal))
    }

    fn store_path(&self) -> Option<std::path::PathBuf> {
        match self.variant {
            Variant::AuditOn | Variant::AuditOs | Variant::Approvals => {
                Some(self.process.dir().join("state").join("audit.db"))
            }
            Variant::AuditTmpfs => self.store_dir.as_ref().map(|dir| dir.path().join("audit.db")),
            Variant::AuditOff
            | Variant::ChecksOff
            | Variant::MaskOn
            | Variant::MaskColumns
            | Variant::RelayWriteAhead => None,
        }
    }
}

/// A started gateway process and its addresses.
struct Started {
    process: GatewayProcess,
    pg: SocketAddr,
    admin: SocketAddr,
    store_dir: Option<TempDir>,
}

/// Writes a gateway's config (plaintext on both sides, one connection `bench`, the development issuer
/// on, a policy that permits the bench group everything, checks and audit as `variant` says) into a new
/// temporary directory and starts it. The gateways of a bench differ only in `statement_checks`, the
/// `[audit]` section, and their directories and ports.
async fn start_gateway(bin: &Path, upstream: &Endpoint, variant: Variant) -> anyhow::Result<Started> {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-bench-")
        .tempdir()
        .context("create the gateway's directory")?;
    let state_dir = dir.path().join("state");
    fs::create_dir_all(&state_dir).with_context(|| format!("create {}", state_dir.display()))?;
    let store_dir = match variant {
        Variant::AuditTmpfs => Some(
            tempfile::Builder::new()
                .prefix("portcullis-bench-audit-")
                .tempdir_in("/dev/shm")
                .context("create the audit store's directory on /dev/shm")?,
        ),
        Variant::AuditOn
        | Variant::AuditOff
        | Variant::ChecksOff
        | Variant::AuditOs
        | Variant::MaskOn
        | Variant::MaskColumns
        | Variant::RelayWriteAhead
        | Variant::Approvals => None,
    };
    let audit = match (&store_dir, variant.audit()) {
        (Some(store), _) => format!(
            "enabled = true\npath = \"{}\"",
            store.path().join("audit.db").display()
        ),
        (None, true) if variant == Variant::AuditOs => "enabled = true\ndurability = \"os\"".to_owned(),
        (None, true) => "enabled = true".to_owned(),
        (None, false) => "enabled = false".to_owned(),
    };
    let pg_listen = free_addr()?;
    let admin_listen = free_addr()?;
    let config = format!(
        r#"# Written by cargo xtask bench: the {variant} gateway.
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

[audit]
{audit}

{masking}
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
        statement_checks = variant.statement_checks(),
        masking = match variant {
            Variant::MaskOn => MASKING_RULES,
            Variant::MaskColumns => MASKING_COLUMNS,
            Variant::Approvals => "[approvals]\nenabled = true\nhold_timeout = \"1m\"\n",
            _ => "",
        },
        upstream_addr = upstream.addr,
        user = upstream.user,
    );
    // The bench's agents may do anything. With checks on, every statement is still analysed and
    // decided; with checks off, the policy decides only the connection.
    let policy = match variant {
        Variant::Approvals => APPROVAL_POLICY.to_owned(),
        _ => format!("permit(principal in Group::\"{GROUP}\", action, resource);\n"),
    };
    fs::write(dir.path().join("policy.cedar"), policy).context("write the bench policy")?;
    let env = [(PASSWORD_VAR, upstream.password.as_str())];
    let process = GatewayProcess::start_in(dir, bin, &config, &admin_listen, &env).await?;
    Ok(Started {
        process,
        pg: pg_listen.parse().context("gateway PostgreSQL address")?,
        admin: admin_listen.parse().context("gateway admin address")?,
        store_dir,
    })
}

/// `portcullis token mint` for `subject` in `group`, valid for longer than any bench; `env` holds what
/// the config's `${VAR}` references need to load.
pub(crate) fn mint_token(
    bin: &Path,
    gateway: &GatewayProcess,
    env: &[(&str, &str)],
    subject: &str,
    group: &str,
) -> anyhow::Result<String> {
    gateway.mint(bin, env, subject, &[group], "12h")
}
