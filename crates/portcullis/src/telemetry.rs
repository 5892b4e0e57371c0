//! Logs and metrics: the tracing subscriber, the Prometheus recorder, and every metric defined once.

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis_core::RejectReason;
use portcullis_postgres::relay::Meters;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Starts structured logging. `RUST_LOG` overrides the default level (`info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests, `demo`) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Starts text logging into `file` instead of standard error: the demo keeps the gateway's log beside its
/// configuration, so the terminal shows only the demo's own story.
pub fn init_logging_to(file: std::fs::File) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// Installs the process-wide Prometheus recorder; the admin listener renders it at `/metrics`.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    metrics::describe_counter!(
        "portcullis_sessions_total",
        "Sessions opened through the gateway."
    );
    metrics::describe_gauge!("portcullis_sessions_active", "Sessions currently relayed.");
    metrics::describe_counter!(
        "portcullis_session_ends_total",
        "Sessions ended, by how they ended."
    );
    metrics::describe_counter!(
        "portcullis_auth_failures_total",
        "Refused credentials, by reason class."
    );
    metrics::describe_counter!("portcullis_bytes_total", "Bytes relayed, by direction.");
    metrics::describe_counter!("portcullis_statements_total", "Statements completed upstream.");
    metrics::describe_counter!(
        "portcullis_masked_values_total",
        "Values masked in results, errors and HTTP response bodies, by connection and detector (column: a column rule; field: a JSON field rule)."
    );
    metrics::describe_counter!(
        "portcullis_upstream_errors_total",
        "Failed upstream logins and connections."
    );
    metrics::describe_counter!("portcullis_cancel_requests_total", "Cancel requests received.");
    metrics::describe_counter!(
        "portcullis_statement_decisions_total",
        "Statement messages decided by policy, by outcome (allow, deny, approval_required, unparsed, \
         unparsed_allowed)."
    );
    metrics::describe_counter!("portcullis_audit_events_total", "Audit events durably stored.");
    metrics::describe_counter!(
        "portcullis_approval_notifications_total",
        "Approval webhook notifications, by outcome (sent, retried, failed, dropped)."
    );
    metrics::describe_counter!(
        "portcullis_audit_commits_total",
        "Audit store transactions (group commits); events per commit = events / commits."
    );
    metrics::describe_counter!(
        "portcullis_audit_commit_microseconds_total",
        "Time the audit writer spent storing group commits (the transaction and its fsync), summed."
    );
    metrics::describe_counter!(
        "portcullis_audit_failures_total",
        "Audit events the store failed to take; each refused its statement (fail closed)."
    );
    metrics::describe_counter!(
        "portcullis_audit_pruned_total",
        "Audit events removed by retention."
    );
    metrics::describe_gauge!(
        "portcullis_audit_export_lag",
        "Events committed but not yet delivered, by export."
    );
    metrics::describe_counter!(
        "portcullis_audit_export_failures_total",
        "Failed export deliveries (retried with back-off), by export."
    );
    metrics::describe_counter!(
        "portcullis_http_requests_total",
        "HTTP requests answered, by connection (empty: none selected) and status."
    );
    metrics::describe_counter!(
        "portcullis_http_decisions_total",
        "HTTP requests decided by policy, by outcome (allow, deny, approval_required)."
    );
    metrics::describe_counter!(
        "portcullis_policy_reloads_total",
        "Policy reloads, by result (ok: now in force; rejected: the previous policy stays)."
    );
}

/// An HTTP request was answered with `status`.
pub fn http_request(connection: Option<&str>, status: u16) {
    counter!("portcullis_http_requests_total", "connection" => connection.unwrap_or("").to_owned(), "status" => status.to_string())
        .increment(1);
}

/// An HTTP request was decided by policy.
pub fn http_decision(outcome: portcullis_core::Outcome) {
    let label = match outcome {
        portcullis_core::Outcome::Allow => "allow",
        portcullis_core::Outcome::Deny => "deny",
        portcullis_core::Outcome::ApprovalRequired => "approval_required",
    };
    counter!("portcullis_http_decisions_total", "outcome" => label).increment(1);
}

/// A statement message was decided.
pub fn statement_decision(outcome: &'static str) {
    counter!("portcullis_statement_decisions_total", "outcome" => outcome).increment(1);
}

/// The audit store refused an event (its statement is refused).
/// An approval notification was `sent`, `retried`, `failed` (after every attempt) or `dropped` (queue full).
pub fn approval_notification(outcome: &'static str) {
    counter!("portcullis_approval_notifications_total", "outcome" => outcome).increment(1);
}

pub fn audit_failure() {
    counter!("portcullis_audit_failures_total").increment(1);
}

/// Retention removed `n` audit events.
pub fn audit_pruned(n: u64) {
    counter!("portcullis_audit_pruned_total").increment(n);
}

/// The audit writer's running totals.
pub fn audit_stats(stats: &portcullis_audit::LogStats) {
    use std::sync::atomic::Ordering::Relaxed;
    counter!("portcullis_audit_events_total").absolute(stats.events.load(Relaxed));
    counter!("portcullis_audit_commits_total").absolute(stats.commits.load(Relaxed));
    counter!("portcullis_audit_commit_microseconds_total").absolute(stats.commit_us.load(Relaxed));
}

/// An export's delivery state.
pub fn audit_export_stats(name: &str, stats: &portcullis_audit::ExportStats) {
    use std::sync::atomic::Ordering::Relaxed;
    gauge!("portcullis_audit_export_lag", "export" => name.to_owned()).set(stats.lag.load(Relaxed) as f64);
    counter!("portcullis_audit_export_failures_total", "export" => name.to_owned())
        .absolute(stats.failures.load(Relaxed));
}

/// A policy reload finished.
pub fn policy_reload(ok: bool) {
    counter!("portcullis_policy_reloads_total", "result" => if ok { "ok" } else { "rejected" }).increment(1);
}

/// A token or connect decision refused a client.
pub fn auth_failure(reason: RejectReason) {
    counter!("portcullis_auth_failures_total", "reason" => reason.label()).increment(1);
}

/// An upstream connection or login failed.
pub fn upstream_error(connection: &str, kind: &'static str) {
    counter!("portcullis_upstream_errors_total", "connection" => connection.to_owned(), "kind" => kind)
        .increment(1);
}

/// A cancel request arrived; `routed` says whether its key matched a live session.
pub fn cancel_request(routed: bool) {
    counter!("portcullis_cancel_requests_total", "routed" => if routed { "true" } else { "false" })
        .increment(1);
}

/// A session started relaying; the returned guard marks its end.
pub fn session_started(connection: &str) -> ActiveSession {
    counter!("portcullis_sessions_total", "connection" => connection.to_owned()).increment(1);
    gauge!("portcullis_sessions_active").increment(1.0);
    ActiveSession
}

/// Decrements the active-session gauge when dropped, however the session ends.
#[derive(Debug)]
pub struct ActiveSession;

impl Drop for ActiveSession {
    fn drop(&mut self) {
        gauge!("portcullis_sessions_active").decrement(1.0);
    }
}

/// A session ended; `how` is [`portcullis_postgres::relay::SessionEnd::label`].
pub fn session_ended(how: &'static str) {
    counter!("portcullis_session_ends_total", "reason" => how).increment(1);
}

/// The relay's counters for one connection. Handles are resolved once per session, so the hot path is
/// an atomic add.
/// `portcullis_masked_values_total{connection, detector}`, one counter per reason (`column` for column
/// rules), indexed by `Reason::index`.
pub fn masked_counters(connection: &str) -> [metrics::Counter; portcullis_mask::Reason::COUNT] {
    std::array::from_fn(|i| {
        let reason = portcullis_mask::Reason::from_index(i).map_or("unknown", |r| r.name());
        counter!("portcullis_masked_values_total", "connection" => connection.to_owned(), "detector" => reason)
    })
}

pub fn relay_meters(connection: &str) -> Meters {
    let connection = connection.to_owned();
    Meters {
        bytes_from_client: counter!("portcullis_bytes_total", "connection" => connection.clone(), "direction" => "from_client"),
        bytes_to_client: counter!("portcullis_bytes_total", "connection" => connection.clone(), "direction" => "to_client"),
        statements: counter!("portcullis_statements_total", "connection" => connection),
    }
}
