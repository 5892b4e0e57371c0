//! The statement guard: the policy in force (hot-reloaded, swapped atomically), the shared analysis
//! cache, and the per-session [`Inspector`] that turns statement messages into decisions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use portcullis_audit::{EventBody, StatementEvent, StatementSummary};
use portcullis_core::{Decision, Outcome, Principal, StatementFacts, StatementKind};
use portcullis_mask::{ConnectionMask, Counts};
use portcullis_policy::{PolicySet, RequestContext};
use portcullis_postgres::classify::{self, Analysis};
use portcullis_postgres::inspect::{Inspector, SessionState, Statement, Verdict};
use portcullis_postgres::results::{UnitKind, hex_literal};
use portcullis_postgres::wire::backend::GatewayError;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::approvals::{Approvals, HoldRequest, Mode, Release, Ticket};
use crate::audit::{self, SessionRecorder};
use crate::config::OnParseError;
use crate::telemetry;

/// The policy in force and its generation (bumped on every successful reload).
#[derive(Debug)]
pub struct Loaded {
    pub set: PolicySet,
    pub generation: u64,
}

/// The policy set shared by all sessions, replaced whole on reload: a session sees either the old set or
/// the new one, never a mixture.
#[derive(Debug)]
pub struct PolicyStore {
    files: Vec<PathBuf>,
    current: ArcSwap<Loaded>,
    generations: AtomicU64,
}

impl PolicyStore {
    pub fn new(files: Vec<PathBuf>, set: PolicySet) -> Self {
        PolicyStore {
            files,
            current: ArcSwap::from_pointee(Loaded { set, generation: 1 }),
            generations: AtomicU64::new(1),
        }
    }

    /// The policy files, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Re-reads every policy file. A file that fails to parse or validate leaves the policy in force
    /// untouched; the error is logged and counted.
    pub fn reload(&self, why: &str) -> bool {
        match PolicySet::load(&self.files) {
            Ok(set) => {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                let policies = set.len();
                self.current.store(Arc::new(Loaded { set, generation }));
                telemetry::policy_reload(true);
                info!(trigger = why, policies, generation, "policy reloaded");
                true
            }
            Err(e) => {
                telemetry::policy_reload(false);
                error!(trigger = why, error = %e, "policy reload rejected; the policy in force stays");
                false
            }
        }
    }

    /// Reloads on SIGHUP and whenever a policy file's modification time or size changes.
    pub fn watch(self: Arc<Self>, interval: Duration) {
        let store = Arc::clone(&self);
        tokio::spawn(async move {
            let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                warn!("cannot listen for SIGHUP; policy reloads on file change only");
                return;
            };
            while hangups.recv().await.is_some() {
                store.reload("SIGHUP");
            }
        });
        tokio::spawn(async move {
            let mut seen = self.stamps();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = self.stamps();
                if now != seen {
                    seen = now;
                    self.reload("file change");
                }
            }
        });
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.files
            .iter()
            .map(|f| {
                let meta = std::fs::metadata(f).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }
}

/// Analyses by fingerprint, shared by all sessions: a repeated statement costs a lookup, not a parse.
#[derive(Debug)]
pub struct AnalysisCache {
    cache: quick_cache::sync::Cache<String, Arc<Analysis>>,
}

impl AnalysisCache {
    pub fn new(entries: usize) -> Self {
        AnalysisCache {
            cache: quick_cache::sync::Cache::new(entries),
        }
    }

    /// The analysis of `sql`, from the cache when a statement with the same fingerprint (`key`, from
    /// [`classify::fingerprint`]) was seen.
    pub fn analyse(&self, sql: &str, key: Option<&str>) -> Arc<Analysis> {
        let Some(key) = key else {
            return Arc::new(classify::analyse(sql));
        };
        if let Some(hit) = self.cache.get(key) {
            return hit;
        }
        let analysis = Arc::new(classify::analyse(sql));
        if analysis.cacheable {
            self.cache.insert(key.to_owned(), Arc::clone(&analysis));
        }
        analysis
    }
}

/// What one session's guard needs from the gateway.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    pub policies: Arc<PolicyStore>,
    pub analyses: Arc<AnalysisCache>,
    /// Whether statements are decided by policy (`[policy] statement_checks`).
    pub checks: bool,
    /// Where statements that need a human's approval wait for one (`[approvals] enabled`); without it
    /// they are refused.
    pub approvals: Option<Arc<Approvals>>,
}

/// A decision on one statement message, with what the audit trail records of it.
#[derive(Debug)]
pub struct Decided {
    pub verdict: Verdict,
    /// `allow`, `deny`, `approval_required`, `unparsed`, `unparsed_allowed`, `unchecked`.
    pub label: &'static str,
    pub policies: Vec<String>,
    pub reason: String,
    pub analysis: Option<Arc<Analysis>>,
}

impl Decided {
    fn allow(analysis: Option<Arc<Analysis>>) -> Self {
        Decided {
            verdict: Verdict::Forward,
            label: "allow",
            policies: Vec::new(),
            reason: String::new(),
            analysis,
        }
    }

    fn refuse(label: &'static str, error: GatewayError) -> Self {
        Decided {
            reason: error.message.clone(),
            verdict: Verdict::Refuse(error),
            label,
            policies: Vec::new(),
            analysis: None,
        }
    }
}

/// Decides each statement of one session.
#[derive(Debug)]
pub struct SessionGuard {
    settings: GuardSettings,
    principal: Principal,
    connection: String,
    client_ip: IpAddr,
    on_parse_error: OnParseError,
    /// Facts of statements prepared with SQL `PREPARE` in this session, for `EXECUTE` to be decided on.
    prepared: HashMap<String, StatementFacts>,
    /// Decisions by fingerprint, valid for one policy generation (only when the policy ignores token age).
    verdicts: HashMap<String, Arc<Decided>>,
    verdicts_generation: u64,
    /// The session's recording, when the audit trail is on.
    recorder: Option<SessionRecorder>,
    /// Texts of allowed protocol-level prepared statements, by name, for recording their executions.
    parsed: HashMap<String, Arc<str>>,
    /// Masks values in recorded statement texts and parameters, when this session is masked.
    scrub: Option<Arc<ConnectionMask>>,
    /// Told when the client sends a cancel request: withdraws a statement held for approval.
    cancelled: Option<Arc<Notify>>,
    /// This connection's approval mode, over the gateway's (`[[connections]] approval_mode`).
    approval_mode: Option<Mode>,
    /// Prepared statements that need approval, by name: their text and decision, for their Binds.
    awaiting: HashMap<String, (Arc<str>, Arc<Decided>)>,
    /// Statements recorded, and how many were refused.
    pub recorded: u64,
    pub refused: u64,
}

/// Bound on remembered prepared-statement texts per session.
const MAX_PARSED: usize = 10_000;

/// Per-session verdict cache bound: past it, the cache starts over.
const MAX_CACHED_VERDICTS: usize = 4096;

impl SessionGuard {
    pub fn new(
        settings: GuardSettings,
        principal: Principal,
        connection: String,
        client_ip: IpAddr,
        on_parse_error: OnParseError,
        recorder: Option<SessionRecorder>,
        scrub: Option<Arc<ConnectionMask>>,
    ) -> Self {
        SessionGuard {
            settings,
            principal,
            connection,
            client_ip,
            on_parse_error,
            prepared: HashMap::new(),
            verdicts: HashMap::new(),
            verdicts_generation: 0,
            recorder,
            parsed: HashMap::new(),
            scrub,
            cancelled: None,
            approval_mode: None,
            awaiting: HashMap::new(),
            recorded: 0,
            refused: 0,
        }
    }

    /// How this connection's statements wait for approval, unless a policy says otherwise.
    #[must_use]
    pub fn with_approval_mode(mut self, mode: Option<Mode>) -> Self {
        self.approval_mode = mode;
        self
    }

    /// Lets the client's cancel requests withdraw a statement held for approval.
    #[must_use]
    pub fn with_cancel(mut self, cancelled: Arc<Notify>) -> Self {
        self.cancelled = Some(cancelled);
        self
    }

    fn context(&self) -> RequestContext {
        RequestContext {
            client_ip: self.client_ip,
            token_age_secs: crate::postgres::token_age_secs(&self.principal),
        }
    }

    /// Decides a whole query string: every statement must be allowed.
    pub fn decide_sql(&mut self, sql: &str) -> Arc<Decided> {
        let loaded = self.settings.policies.current();
        if loaded.generation != self.verdicts_generation {
            self.verdicts.clear();
            self.verdicts_generation = loaded.generation;
        }
        let key = classify::fingerprint(sql);
        if let Some(decided) = key.as_ref().and_then(|k| self.verdicts.get(k)) {
            return Arc::clone(decided);
        }
        let analysis = self.settings.analyses.analyse(sql, key.as_deref());
        let mut decided = self.decide_analysis(&loaded.set, &analysis);
        // COPY ... TO STDOUT carries no row description to mask by: a masked session may not use it.
        if self.scrub.is_some()
            && matches!(decided.verdict, Verdict::Forward)
            && analysis
                .statements
                .iter()
                .any(|f| f.kind == StatementKind::CopyOut)
        {
            decided = Decided::refuse(
                "masked_copy",
                GatewayError::error(
                    "42501",
                    "Portcullis refuses COPY ... TO STDOUT in a masked session: its rows cannot be masked",
                )
                .with_hint("use SELECT, whose results are masked, or ask for the unmask permission"),
            );
        }
        decided.analysis = Some(Arc::clone(&analysis));
        let verdict = Arc::new(decided);
        let session_bound = analysis
            .statements
            .iter()
            .any(|f| f.prepares.is_some() || f.executes.is_some());
        if let Some(key) = key
            && analysis.cacheable
            && !session_bound
            && !loaded.set.time_dependent()
        {
            if self.verdicts.len() >= MAX_CACHED_VERDICTS {
                self.verdicts.clear();
            }
            self.verdicts.insert(key, Arc::clone(&verdict));
        }
        verdict
    }

    fn decide_analysis(&mut self, set: &PolicySet, analysis: &Analysis) -> Decided {
        let count = analysis.statements.len();
        let context = self.context();
        let mut prepared = Vec::new();
        let mut unparsed_allowed = false;
        let mut policies = Vec::new();
        for facts in &analysis.statements {
            if let Some(error) = &facts.parse_error {
                if self.on_parse_error == OnParseError::Allow {
                    warn!(connection = %self.connection, principal = %self.principal.name(), error = %error,
                        "statement the parser cannot read allowed unanalysed (on_parse_error = \"allow\")");
                    unparsed_allowed = true;
                    continue;
                }
                return Decided::refuse(
                    "unparsed",
                    GatewayError::error(
                        "42601",
                        format!("Portcullis refused a statement it cannot parse: {error}"),
                    )
                    .with_hint("statements are checked with PostgreSQL's grammar before they are run"),
                );
            }
            let resolved;
            let facts = match &facts.executes {
                // Prepared earlier in this string, or earlier in the session.
                Some(name) => match prepared
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| f)
                    .or_else(|| self.prepared.get(name))
                {
                    Some(target) => {
                        resolved = executed(target, facts);
                        &resolved
                    }
                    None => {
                        return Decided::refuse(
                            "deny",
                            GatewayError::error(
                                "42501",
                                format!(
                                    "permission denied by Portcullis: EXECUTE {name}: no statement of that \
                                     name was prepared in this session"
                                ),
                            ),
                        );
                    }
                },
                None => facts,
            };
            let decision = set.decide_statement(&self.principal, &self.connection, facts, count, &context);
            match decision.outcome {
                Outcome::Allow => {
                    if let Some(name) = &facts.prepares {
                        prepared.push((name.clone(), facts.clone()));
                    }
                    policies.extend(decision.policies);
                }
                Outcome::Deny | Outcome::ApprovalRequired => {
                    return self.refusal(facts, decision);
                }
            }
        }
        self.prepared.extend(prepared);
        policies.sort();
        policies.dedup();
        Decided {
            label: if unparsed_allowed {
                "unparsed_allowed"
            } else {
                "allow"
            },
            policies,
            ..Decided::allow(None)
        }
    }

    fn refusal(&self, facts: &StatementFacts, decision: Decision) -> Decided {
        let by = if decision.policies.is_empty() {
            String::new()
        } else {
            format!(" policy {}", decision.policies.join(", "))
        };
        warn!(
            connection = %self.connection, principal = %self.principal.name(), kind = facts.kind.action(),
            command = %facts.command, outcome = ?decision.outcome, policies = ?decision.policies,
            reason = %decision.reason, "statement refused"
        );
        let (label, error) = match decision.outcome {
            Outcome::ApprovalRequired => (
                "approval_required",
                GatewayError::error(
                    "42501",
                    format!(
                        "approval required by Portcullis{by}: {} needs a human's approval, and approvals are \
                         not enabled on this gateway; the statement was not run",
                        facts.command
                    ),
                ),
            ),
            _ => (
                "deny",
                GatewayError::error(
                    "42501",
                    format!("permission denied by Portcullis{by}: {}", decision.reason),
                ),
            ),
        };
        let mut detail = format!(
            "statement: {} ({}); principal: {}; connection: {}",
            facts.command,
            facts.kind.action(),
            self.principal.name(),
            self.connection
        );
        if facts.unbounded_write {
            detail.push_str("; it writes without a restrictive WHERE clause");
        }
        if facts.explain_analyze {
            detail.push_str("; EXPLAIN ANALYZE runs the statement");
        }
        Decided {
            verdict: Verdict::Refuse(error.with_detail(detail)),
            label,
            policies: decision.policies,
            reason: decision.reason,
            analysis: None,
        }
    }

    fn decide_function_call(&mut self, oid: u32) -> Decided {
        let loaded = self.settings.policies.current();
        let mut facts = StatementFacts::unparsed("");
        facts.parse_error = None;
        facts.kind = StatementKind::Unknown;
        facts.command = "FUNCTION CALL".to_owned();
        facts.functions = vec![format!("oid:{oid}")];
        let decision =
            loaded
                .set
                .decide_statement(&self.principal, &self.connection, &facts, 1, &self.context());
        if decision.outcome == Outcome::Allow {
            Decided {
                policies: decision.policies,
                ..Decided::allow(None)
            }
        } else {
            self.refusal(&facts, decision)
        }
    }
}

/// The facts of `EXECUTE name(args)`: those of the prepared statement, plus what the arguments do (they
/// are expressions and may call functions).
fn executed(prepared: &StatementFacts, execute: &StatementFacts) -> StatementFacts {
    let mut facts = prepared.clone();
    facts.executes = execute.executes.clone();
    facts.functions.extend(execute.functions.iter().cloned());
    facts.functions.sort();
    facts.functions.dedup();
    if execute.kind == StatementKind::FileAccess {
        facts.kind = StatementKind::FileAccess;
    }
    facts
}

impl Inspector for SessionGuard {
    fn enabled(&self) -> bool {
        self.settings.checks || self.recorder.is_some()
    }

    fn binds(&self) -> bool {
        // Binds are held to record their parameters, and to ask for approval of an execution.
        self.recorder.is_some() || self.settings.approvals.is_some()
    }

    async fn inspect(&mut self, statement: &Statement<'_>, state: SessionState) -> Verdict {
        let mut decided = self.decide(statement, state);
        if !matches!(statement, Statement::Bind { .. }) {
            telemetry::statement_decision(decided.label);
        }
        if let Some(approvals) = self.settings.approvals.clone() {
            decided = self.approval_step(&approvals, statement, decided).await;
        }
        let Some(recorder) = self.recorder.clone() else {
            return decided.verdict.clone();
        };
        self.recorded += 1;
        let n = self.recorded;
        let event = self.statement_event(n, statement, &decided);
        let forwarded = decided.verdict == Verdict::Forward;
        if !forwarded {
            self.refused += 1;
        }
        // Write-ahead: anything that runs waits until its event is durable. A Parse runs nothing; its
        // event is queued ahead of the Bind that will run it, so that Bind's commit covers it too.
        let verdict = if let Statement::Parse { .. } = statement {
            recorder.log.submit(recorder.draft(event));
            decided.verdict.clone()
        } else {
            match recorder.log.commit(recorder.draft(event)).await {
                Ok(_) => decided.verdict.clone(),
                Err(e) => {
                    if forwarded {
                        self.refused += 1;
                    }
                    Verdict::Refuse(audit::store_failure(&e))
                }
            }
        };
        if let Statement::Parse { name, sql } = statement
            && forwarded
        {
            if self.parsed.len() >= MAX_PARSED {
                self.parsed.clear();
            }
            self.parsed.insert((*name).to_owned(), Arc::from(*sql));
        }
        let kind = match statement {
            Statement::Parse { .. } => UnitKind::Parse,
            Statement::Bind { .. } => UnitKind::Execution,
            Statement::Query { .. } | Statement::FunctionCall { .. } => UnitKind::Simple,
        };
        recorder.sent(n, kind, state.batch, verdict == Verdict::Forward);
        verdict
    }
}

impl SessionGuard {
    /// With approvals on: a simple query that needs approval is asked for (held, or run on a ticket's
    /// grant, or refused with the request); a Parse that needs approval is let through (it runs nothing)
    /// and remembered, and each Bind of it is asked for with its parameters; any other Parse of that
    /// name forgets it.
    async fn approval_step(
        &mut self,
        approvals: &Arc<Approvals>,
        statement: &Statement<'_>,
        decided: Arc<Decided>,
    ) -> Arc<Decided> {
        let needs = decided.label == "approval_required";
        match statement {
            Statement::Query { sql } if needs => {
                Arc::new(self.ask_approval(approvals, sql, Vec::new(), &decided).await)
            }
            Statement::Parse { name, sql } if needs => {
                if self.awaiting.len() >= MAX_PARSED {
                    self.awaiting.clear();
                }
                self.awaiting
                    .insert((*name).to_owned(), (Arc::from(*sql), Arc::clone(&decided)));
                Arc::new(Decided {
                    label: "approval_required",
                    policies: decided.policies.clone(),
                    reason: "prepared; each execution is run only after approval".to_owned(),
                    ..Decided::allow(decided.analysis.clone())
                })
            }
            Statement::Parse { name, .. } => {
                self.awaiting.remove(*name);
                decided
            }
            Statement::Bind {
                statement: name,
                param_formats,
                params,
                ..
            } => match self.awaiting.get(*name).cloned() {
                Some((sql, pending)) => {
                    let params = bind_params(param_formats, params);
                    Arc::new(self.ask_approval(approvals, &sql, params, &pending).await)
                }
                None => decided,
            },
            Statement::FunctionCall { .. } if needs => Arc::new(Decided::refuse(
                "approval_required",
                GatewayError::error(
                    "42501",
                    "approval required by Portcullis: a fast-path function call cannot be asked for; the call \
                     was not run",
                ),
            )),
            _ => decided,
        }
    }

    /// Asks for approval of `sql` (with `params`, for an extended-protocol execution): held for the
    /// decision, or (ticket mode) run on an earlier approval's grant or refused with the new request's id.
    async fn ask_approval(
        &self,
        approvals: &Arc<Approvals>,
        sql: &str,
        params: Vec<Option<String>>,
        decided: &Decided,
    ) -> Decided {
        let commands: Vec<String> = decided
            .analysis
            .as_ref()
            .map(|a| a.statements.iter().map(|f| f.command.clone()).collect())
            .unwrap_or_default();
        let session = self
            .recorder
            .as_ref()
            .map(|r| r.session.to_string())
            .unwrap_or_default();
        let request = HoldRequest {
            n: self.recorded + 1,
            principal: &self.principal,
            connection: &self.connection,
            session: &session,
            statement: sql,
            params,
            commands,
            policies: decided.policies.clone(),
        };
        // The requiring policies' @approval_mode, else the connection's, else the gateway's.
        let by_policy = match self
            .settings
            .policies
            .current()
            .set
            .approval_mode(&decided.policies)
        {
            Some("ticket") => Some(Mode::Ticket),
            Some("hold") => Some(Mode::Hold),
            _ => None,
        };
        let mode = by_policy
            .or(self.approval_mode)
            .unwrap_or(approvals.settings().mode);
        match mode {
            Mode::Hold => self.hold(approvals, request, decided).await,
            Mode::Ticket => self.ticket(approvals, request, decided),
        }
    }

    /// Hold mode: the statement waits for a reviewer, at most `hold_timeout`.
    async fn hold(&self, approvals: &Arc<Approvals>, request: HoldRequest<'_>, decided: &Decided) -> Decided {
        let hold = approvals.hold(request);
        let id = hold.request.id.clone();
        info!(
            approval = %id, connection = %self.connection, principal = %self.principal.name(),
            fingerprint = %hold.request.fingerprint, "statement held for approval"
        );
        // A cancel request from the client withdraws the request (dropping the hold does, and records it).
        let cancelled = async {
            match &self.cancelled {
                Some(cancelled) => cancelled.notified().await,
                None => std::future::pending().await,
            }
        };
        let release = tokio::select! {
            release = hold.decision() => release,
            () = cancelled => {
                info!(approval = %id, "held statement withdrawn by the client's cancel request");
                return Decided::refuse(
                    "approval_withdrawn",
                    GatewayError::error(
                        "57014",
                        format!(
                            "canceling statement due to user request: approval {id} withdrawn; the statement \
                             was not run"
                        ),
                    ),
                );
            }
        };
        // Every step (request, votes, decision, expiry, withdrawal) is recorded by `Approvals`.
        match release {
            Release::Approved { by } => {
                info!(approval = %id, reviewer = %by, "held statement approved; forwarding it");
                Decided {
                    label: "approved",
                    policies: decided.policies.clone(),
                    reason: format!("approval {id} granted by {by}"),
                    ..Decided::allow(decided.analysis.clone())
                }
            }
            Release::Denied { by, reason } => {
                info!(approval = %id, reviewer = %by, "held statement denied");
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                Decided::refuse(
                    "approval_denied",
                    GatewayError::error(
                        "42501",
                        format!("approval {id} was denied by {by}{why}; the statement was not run"),
                    ),
                )
            }
            Release::Expired => {
                info!(approval = %id, "held statement expired without a decision");
                Decided::refuse(
                    "approval_expired",
                    GatewayError::error(
                        "42501",
                        format!(
                            "approval {id} was not decided within {}; the statement was not run",
                            humantime::format_duration(approvals.settings().hold_timeout)
                        ),
                    )
                    .with_hint("ask a reviewer, then run the statement again"),
                )
            }
        }
    }

    /// Ticket mode: runs on a grant for exactly this statement, or fails at once naming the request.
    fn ticket(&self, approvals: &Arc<Approvals>, request: HoldRequest<'_>, decided: &Decided) -> Decided {
        match approvals.ticket(request) {
            Ticket::Granted { request, by, left } => {
                info!(approval = %request, reviewer = %by, left, "statement runs on an approved ticket");
                Decided {
                    label: "approved",
                    policies: decided.policies.clone(),
                    reason: format!("approval {request} granted by {by} ({left} use(s) left)"),
                    ..Decided::allow(decided.analysis.clone())
                }
            }
            Ticket::Requested { request, new } => {
                if new {
                    info!(
                        approval = %request.id, connection = %self.connection, principal = %self.principal.name(),
                        fingerprint = %request.fingerprint, "approval requested (ticket)"
                    );
                }
                Decided::refuse(
                    "approval_required",
                    GatewayError::error(
                        "42501",
                        format!(
                            "approval required by Portcullis: request {} waits for a reviewer; once it is approved, \
                             run exactly the same statement again; the statement was not run",
                            request.id
                        ),
                    )
                    .with_hint(format!(
                        "a reviewer runs: portcullis approvals approve {} (the request expires in {})",
                        request.id,
                        humantime::format_duration(approvals.settings().hold_timeout)
                    )),
                )
            }
        }
    }

    /// The policy decision on one statement message (binds are decided at their Parse).
    fn decide(&mut self, statement: &Statement<'_>, state: SessionState) -> Arc<Decided> {
        if !self.settings.checks {
            return Arc::new(Decided {
                label: "unchecked",
                ..Decided::allow(None)
            });
        }
        let sql = match statement {
            Statement::Query { sql } | Statement::Parse { sql, .. } => sql,
            Statement::FunctionCall { .. } | Statement::Bind { .. } => "",
        };
        // Only backslashes read differently when standard_conforming_strings is off; a statement without
        // one (such as the SET that turns it back on) is read the same by both parsers.
        if !state.standard_conforming_strings && sql.contains('\\') {
            return Arc::new(Decided::refuse(
                "deny",
                GatewayError::error(
                    "42501",
                    "Portcullis refuses statements while standard_conforming_strings is off: backslashes in \
                     string literals would be read differently by the server and by the gateway",
                )
                .with_hint("SET standard_conforming_strings = on"),
            ));
        }
        match statement {
            Statement::Query { sql } | Statement::Parse { sql, .. } => self.decide_sql(sql),
            Statement::FunctionCall { function_oid } => Arc::new(self.decide_function_call(*function_oid)),
            Statement::Bind { .. } => Arc::new(Decided::allow(None)),
        }
    }

    /// The audit event of a statement message and its decision.
    fn statement_event(&self, n: u64, statement: &Statement<'_>, decided: &Decided) -> EventBody {
        let (message, prepared, mut text, mut params) = match statement {
            Statement::Query { sql } => ("query", None, (*sql).to_owned(), Vec::new()),
            Statement::Parse { name, sql } => {
                ("parse", Some((*name).to_owned()), (*sql).to_owned(), Vec::new())
            }
            Statement::FunctionCall { function_oid } => (
                "function_call",
                None,
                format!("function call: oid {function_oid}"),
                Vec::new(),
            ),
            Statement::Bind {
                statement,
                param_formats,
                params,
                ..
            } => (
                "bind",
                Some((*statement).to_owned()),
                self.parsed
                    .get(*statement)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                bind_params(param_formats, params),
            ),
        };
        // What reaches the audit trail is masked like what reaches the client.
        if let Some(scrub) = &self.scrub {
            let mut counts = Counts::default();
            if let Some(masked) = scrub.scrub(&text, &mut counts) {
                text = masked;
            }
            for value in params.iter_mut().flatten() {
                if let Some(masked) = scrub.scrub(value, &mut counts) {
                    *value = masked;
                }
            }
        }
        let statements = decided
            .analysis
            .as_ref()
            .map(|a| a.statements.iter().map(summary).collect())
            .unwrap_or_default();
        EventBody::Statement(StatementEvent {
            n,
            message: message.to_owned(),
            prepared,
            text,
            params,
            statements,
            decision: match decided.label {
                "allow" | "unparsed_allowed" | "unchecked" | "approved" => "allow",
                "approval_required" => "approval_required",
                _ => "deny",
            }
            .to_owned(),
            policies: decided.policies.clone(),
            reason: if decided.label == "allow" {
                String::new()
            } else {
                decided.reason.clone()
            },
            body: None,
        })
    }
}

fn summary(facts: &StatementFacts) -> StatementSummary {
    StatementSummary {
        kind: facts.kind.action().to_owned(),
        command: facts.command.clone(),
        reads: facts.reads.clone(),
        writes: facts.writes.clone(),
        functions: facts.functions.clone(),
        unbounded_write: facts.unbounded_write,
    }
}

/// Bind parameters as text: text-format values as sent, binary ones as `\x` hex.
fn bind_params(formats: &[i16], params: &[Option<&[u8]>]) -> Vec<Option<String>> {
    params
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let binary = match formats {
                [] => false,
                [one] => *one == 1,
                many => many.get(i).is_some_and(|f| *f == 1),
            };
            value.map(|v| match std::str::from_utf8(v) {
                Ok(text) if !binary => text.to_owned(),
                _ => hex_literal(v),
            })
        })
        .collect()
}
