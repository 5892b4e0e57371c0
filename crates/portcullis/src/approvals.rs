//! Just-in-time approval: a statement that a policy permits only with `@approval("required")` is held
//! until a human reviewer approves or denies it, or until the hold times out. An approval releases
//! exactly the statement it was asked for (the bytes the client sent, in that session), once.
//!
//! Two modes. *Hold*: the client's statement waits for the decision. *Ticket*: the statement fails at once
//! with the request id; once approved, the same identity re-running the same statement on the same
//! connection succeeds as many times as the approval grants (once by default), until the grant expires.
//!
//! Requests and grants live in the gateway's memory: a held statement belongs to a live session of this
//! gateway, and a restart drops pending tickets and unused grants (the audit chain keeps what was decided).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_audit::{ApprovalEvent, AuditLog, Draft, EventBody, now_us};
use portcullis_core::Principal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tracing::info;

use crate::notify::Notifier;
use crate::preview::{self, Preview};
use portcullis_postgres::upstream::UpstreamSettings;

/// How a statement that needs approval is handled while nobody has decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The statement waits for the decision.
    Hold,
    /// The statement fails at once; approval lets it run when sent again.
    Ticket,
}

/// `[approvals]` as the gateway uses it.
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    pub mode: Mode,
    /// How long a request waits for a decision: a held statement then fails, a ticket expires.
    pub hold_timeout: Duration,
    /// How long a ticket's grant may be used, unless the reviewer says otherwise.
    pub grant_ttl: Duration,
    /// Members of this group (in their token's groups claim) may decide requests.
    pub reviewers_group: String,
    /// A denial must say why.
    pub deny_reason_required: bool,
    /// Distinct reviewers who must approve (any one reviewer's denial denies).
    pub quorum: u32,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    /// Nobody decided within the hold timeout.
    Expired,
    /// The session that held it ended (or the client gave up) before a decision.
    Withdrawn,
}

/// One request, as reviewers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub state: ApprovalState,
    /// `<issuer alias>/<subject>` of the requesting identity.
    pub requester: String,
    pub requester_issuer: String,
    pub requester_subject: String,
    pub connection: String,
    /// The audit session id of the session that holds the statement (empty when the audit trail is off).
    pub session: String,
    /// The statement exactly as the client sent it.
    pub statement: String,
    /// Its parameters, for an extended-protocol execution (text as sent, binary as `\x` hex; `None` is
    /// NULL).
    pub params: Vec<Option<String>>,
    /// The commands in it (`DELETE`, `UPDATE`, ...).
    pub commands: Vec<String>,
    /// The policies that require the approval.
    pub policies: Vec<String>,
    /// SHA-256 over connection, requester and statement: what an approval is bound to.
    pub fingerprint: String,
    pub created_us: i64,
    pub expires_us: i64,
    pub decided_by: Option<String>,
    pub decided_us: Option<i64>,
    pub reason: Option<String>,
    /// `hold` or `ticket`.
    pub mode: Mode,
    /// The number of the statement in its session (the audit chain's `n`).
    pub n: u64,
    /// Approvals needed, and those given so far.
    pub quorum: u32,
    pub votes: Vec<Vote>,
    /// A ticket's grant: executions left, and until when it may be used.
    pub grant: Option<Grant>,
    /// The reach of an UPDATE or DELETE, filled in shortly after the request is made.
    pub preview: Option<Preview>,
}

/// One reviewer's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vote {
    pub by: String,
    pub at_us: i64,
}

/// What an approved ticket allows: `uses` more executions of the fingerprinted statement, until `until_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub uses: u32,
    pub until_us: i64,
}

/// What a reviewer grants with an approval of a ticket (ignored for held statements, which run once).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrantTerms {
    /// Executions allowed (default 1).
    pub uses: Option<u32>,
    /// How long the grant may be used (default `grant_ttl`).
    pub valid_for: Option<Duration>,
}

/// What a ticket-mode statement gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticket {
    /// A grant covered it: run it. `left` executions remain.
    Granted { request: String, by: String, left: u32 },
    /// No grant: this request (new, or the pending one for the same fingerprint) waits for a reviewer.
    Requested {
        request: Box<ApprovalRequest>,
        new: bool,
    },
}

/// What a hold ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    Approved { by: String },
    Denied { by: String, reason: Option<String> },
    Expired,
}

/// Why a reviewer's decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no approval request {0}")]
    NotFound(String),
    #[error("approval request {id} is already {state:?}")]
    NotPending { id: String, state: ApprovalState },
    #[error("{0} may not decide their own request")]
    SelfApproval(String),
    #[error("{who} is not a reviewer (not in group {group:?})")]
    NotReviewer { who: String, group: String },
    #[error("a denial needs a reason")]
    ReasonRequired,
    #[error("{0} has already approved this request; another reviewer must")]
    AlreadyVoted(String),
}

/// Decided requests kept for listing; older ones are dropped (the audit chain keeps them all).
const KEPT_DECIDED: usize = 1000;

/// The gateway's approval requests.
#[derive(Debug)]
pub struct Approvals {
    settings: ApprovalSettings,
    inner: Mutex<Inner>,
    /// Where reviewers' votes and decisions are recorded, under the requesting session's id.
    log: Option<AuditLog>,
    /// Told of every new request and every decision.
    notifier: Option<Notifier>,
    /// Upstreams to preview UPDATEs and DELETEs on, by connection name, and whether to count exactly.
    previews: HashMap<String, UpstreamSettings>,
    preview_exact: bool,
}

#[derive(Debug, Default)]
struct Inner {
    requests: HashMap<String, Entry>,
    /// Decided request ids, oldest first.
    decided: VecDeque<String>,
}

#[derive(Debug)]
struct Entry {
    request: ApprovalRequest,
    /// The held statement's waiter, until a decision reaches it.
    waiter: Option<oneshot::Sender<Release>>,
}

/// What a held statement is.
#[derive(Debug, Clone)]
pub struct HoldRequest<'a> {
    /// The statement's number in its session.
    pub n: u64,
    pub principal: &'a Principal,
    pub connection: &'a str,
    pub session: &'a str,
    pub statement: &'a str,
    pub params: Vec<Option<String>>,
    pub commands: Vec<String>,
    pub policies: Vec<String>,
}

/// A pending request and the wait for its decision. Dropping it before the decision (the session ended)
/// withdraws the request.
#[derive(Debug)]
pub struct Hold {
    approvals: Arc<Approvals>,
    pub request: ApprovalRequest,
    decision: Option<oneshot::Receiver<Release>>,
}

impl Approvals {
    pub fn new(settings: ApprovalSettings, log: Option<AuditLog>) -> Self {
        Approvals {
            settings,
            inner: Mutex::new(Inner::default()),
            log,
            notifier: None,
            previews: HashMap::new(),
            preview_exact: false,
        }
    }

    /// Previews the reach of UPDATEs and DELETEs on these connections' upstreams (with `exact`, also
    /// by a rolled-back trial run; see [`crate::preview`]).
    #[must_use]
    pub fn with_previews(mut self, upstreams: HashMap<String, UpstreamSettings>, exact: bool) -> Self {
        self.previews = upstreams;
        self.preview_exact = exact;
        self
    }

    /// Starts the preview of a new request's statement, when it is one UPDATE or DELETE on a connection
    /// with an upstream to ask; the request shows it once it is done.
    fn start_preview(self: &Arc<Self>, request: &ApprovalRequest) {
        // A statement with parameters is not previewed yet: its values are in the client's formats.
        let single = matches!(request.commands.as_slice(), [c] if c == "UPDATE" || c == "DELETE")
            && request.params.is_empty();
        let Some(upstream) = self.previews.get(&request.connection).filter(|_| single).cloned() else {
            return;
        };
        let approvals = Arc::clone(self);
        let id = request.id.clone();
        let statement = request.statement.clone();
        let exact = self.preview_exact;
        tokio::spawn(async move {
            let preview = preview::preview(&upstream, &statement, exact).await;
            if let Some(entry) = approvals.lock().requests.get_mut(&id) {
                entry.request.preview = Some(preview);
            }
        });
    }

    /// Sends notifications of new requests and decisions through `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Expires the pending tickets whose time is up (also done whenever requests are read; run it
    /// periodically so that expiry is recorded and notified when it happens).
    pub fn sweep(&self) {
        let expired = self.lock().expire(now_us());
        self.expired(expired);
    }

    /// Records and notifies tickets that just expired.
    fn expired(&self, requests: Vec<ApprovalRequest>) {
        for request in requests {
            info!(approval = %request.id, "approval request expired without a decision (ticket)");
            self.record(&request.session, request.n, &request, "expired", None, None);
            self.tell(&request, "expired");
        }
    }

    fn tell(&self, request: &ApprovalRequest, event: &str) {
        if let Some(notifier) = &self.notifier {
            notifier.tell(request, event);
        }
    }

    /// Records a step of `request` in the chain, as an event of `session` about its statement `n` (the
    /// session that asked, except for `released`: the one whose statement a grant runs). Every step is
    /// recorded here, in the order it happens; none is waited for: the statement event that follows,
    /// committed before anything is forwarded, makes them durable.
    fn record(
        &self,
        session: &str,
        n: u64,
        request: &ApprovalRequest,
        action: &str,
        by: Option<&str>,
        reason: Option<String>,
    ) {
        if let Some(log) = &self.log {
            log.submit(Draft::now(
                session,
                EventBody::Approval(ApprovalEvent {
                    request: request.id.clone(),
                    action: action.to_owned(),
                    n,
                    fingerprint: request.fingerprint.clone(),
                    by: by.map(str::to_owned),
                    reason,
                    // The policies that asked for approval, once, with the request.
                    policies: if action == "requested" {
                        request.policies.clone()
                    } else {
                        Vec::new()
                    },
                }),
            ));
        }
    }

    pub fn settings(&self) -> &ApprovalSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every update is one statement).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new pending request for `held`, made at `now`, expiring after `hold_timeout`.
    fn new_request(&self, held: HoldRequest<'_>, mode: Mode, now: i64) -> ApprovalRequest {
        let timeout_us = i64::try_from(self.settings.hold_timeout.as_micros()).unwrap_or(i64::MAX);
        ApprovalRequest {
            id: new_id(),
            state: ApprovalState::Pending,
            requester: held.principal.name(),
            requester_issuer: held.principal.issuer.clone(),
            requester_subject: held.principal.subject.clone(),
            connection: held.connection.to_owned(),
            session: held.session.to_owned(),
            statement: held.statement.to_owned(),
            fingerprint: fingerprint(held.connection, held.principal, held.statement, &held.params),
            params: held.params,
            commands: held.commands,
            policies: held.policies,
            created_us: now,
            expires_us: now.saturating_add(timeout_us),
            decided_by: None,
            decided_us: None,
            reason: None,
            mode,
            grant: None,
            n: held.n,
            quorum: self.settings.quorum.max(1),
            votes: Vec::new(),
            preview: None,
        }
    }

    /// Creates a pending request for `held`; await [`Hold::decision`] for its outcome.
    pub fn hold(self: &Arc<Self>, held: HoldRequest<'_>) -> Hold {
        let request = self.new_request(held, Mode::Hold, now_us());
        let (waiter, decision) = oneshot::channel();
        self.record(&request.session, request.n, &request, "requested", None, None);
        self.tell(&request, "requested");
        self.start_preview(&request);
        self.lock().requests.insert(
            request.id.clone(),
            Entry {
                request: request.clone(),
                waiter: Some(waiter),
            },
        );
        Hold {
            approvals: Arc::clone(self),
            request,
            decision: Some(decision),
        }
    }

    /// Ticket mode: runs `held` on a grant for its fingerprint when one is left (using it up), else
    /// files a request for it (or returns the pending one for the same fingerprint).
    pub fn ticket(self: &Arc<Self>, held: HoldRequest<'_>) -> Ticket {
        let fingerprint = fingerprint(held.connection, held.principal, held.statement, &held.params);
        let now = now_us();
        let mut inner = self.lock();
        self.expired(inner.expire(now));
        // The oldest usable grant first.
        let granted = inner
            .requests
            .values_mut()
            .filter(|e| {
                e.request.fingerprint == fingerprint
                    && e.request.grant.is_some_and(|g| g.uses > 0 && now < g.until_us)
            })
            .min_by_key(|e| e.request.decided_us);
        if let Some(entry) = granted
            && let Some(grant) = entry.request.grant.as_mut()
        {
            grant.uses -= 1;
            let left = grant.uses;
            let by = entry.request.decided_by.clone().unwrap_or_default();
            self.record(held.session, held.n, &entry.request, "released", Some(&by), None);
            return Ticket::Granted {
                request: entry.request.id.clone(),
                by,
                left,
            };
        }
        if let Some(pending) = inner
            .requests
            .values()
            .find(|e| e.request.fingerprint == fingerprint && e.request.state == ApprovalState::Pending)
        {
            return Ticket::Requested {
                request: Box::new(pending.request.clone()),
                new: false,
            };
        }
        let request = self.new_request(held, Mode::Ticket, now);
        inner.requests.insert(
            request.id.clone(),
            Entry {
                request: request.clone(),
                waiter: None,
            },
        );
        self.record(&request.session, request.n, &request, "requested", None, None);
        self.tell(&request, "requested");
        self.start_preview(&request);
        Ticket::Requested {
            request: Box::new(request),
            new: true,
        }
    }

    /// Every request still known, newest first; `pending_only` leaves out decided ones.
    pub fn list(&self, pending_only: bool) -> Vec<ApprovalRequest> {
        self.sweep();
        let mut all: Vec<ApprovalRequest> = self
            .lock()
            .requests
            .values()
            .filter(|e| !pending_only || e.request.state == ApprovalState::Pending)
            .map(|e| e.request.clone())
            .collect();
        all.sort_by(|a, b| b.created_us.cmp(&a.created_us).then_with(|| a.id.cmp(&b.id)));
        all
    }

    pub fn get(&self, id: &str) -> Option<ApprovalRequest> {
        let mut inner = self.lock();
        self.expired(inner.expire(now_us()));
        inner.requests.get(id).map(|e| e.request.clone())
    }

    /// A reviewer's decision. The reviewer must be in the reviewers group and may not be the requester;
    /// only a pending request can be decided, once.
    pub fn decide(
        &self,
        id: &str,
        reviewer: &Principal,
        approve: bool,
        reason: Option<String>,
        terms: GrantTerms,
    ) -> Result<ApprovalRequest, DecideError> {
        if !reviewer.groups.contains(&self.settings.reviewers_group) {
            return Err(DecideError::NotReviewer {
                who: reviewer.name(),
                group: self.settings.reviewers_group.clone(),
            });
        }
        let reason = reason.filter(|r| !r.trim().is_empty());
        if !approve && reason.is_none() && self.settings.deny_reason_required {
            return Err(DecideError::ReasonRequired);
        }
        let mut inner = self.lock();
        let now = now_us();
        self.expired(inner.expire(now));
        let entry = inner
            .requests
            .get_mut(id)
            .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        let request = &mut entry.request;
        if request.state != ApprovalState::Pending {
            return Err(DecideError::NotPending {
                id: id.to_owned(),
                state: request.state,
            });
        }
        // The same identity: the same subject of the same issuer.
        if request.requester_issuer == reviewer.issuer && request.requester_subject == reviewer.subject {
            return Err(DecideError::SelfApproval(reviewer.name()));
        }
        let by = reviewer.name();
        if approve {
            if request.votes.iter().any(|v| v.by == by) {
                return Err(DecideError::AlreadyVoted(by));
            }
            request.votes.push(Vote {
                by: by.clone(),
                at_us: now,
            });
            if request.votes.len() < usize::try_from(request.quorum).unwrap_or(usize::MAX) {
                let pending = request.clone();
                drop(inner);
                self.record(&pending.session, pending.n, &pending, "vote", Some(&by), reason);
                self.tell(&pending, "vote");
                return Ok(pending);
            }
        }
        // The decision: a denial, or the vote that completes the quorum (every approver is named).
        let by = if approve {
            request
                .votes
                .iter()
                .map(|v| v.by.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            by
        };
        request.decided_by = Some(by.clone());
        request.decided_us = Some(now);
        request.reason.clone_from(&reason);
        let release = if approve {
            request.state = ApprovalState::Approved;
            if request.mode == Mode::Ticket {
                let valid_for = terms.valid_for.unwrap_or(self.settings.grant_ttl);
                request.grant = Some(Grant {
                    uses: terms.uses.unwrap_or(1).max(1),
                    until_us: now.saturating_add(i64::try_from(valid_for.as_micros()).unwrap_or(i64::MAX)),
                });
            }
            Release::Approved { by }
        } else {
            request.state = ApprovalState::Denied;
            Release::Denied { by, reason }
        };
        let decided = request.clone();
        // Recorded before the holder is told, so the chain has the decision before the statement.
        self.record(
            &decided.session,
            decided.n,
            &decided,
            if approve { "approved" } else { "denied" },
            decided.decided_by.as_deref(),
            decided.reason.clone(),
        );
        self.tell(&decided, if approve { "approved" } else { "denied" });
        if let Some(waiter) = entry.waiter.take() {
            // The holder may be gone already (its session ended); the request then stays decided.
            let _ = waiter.send(release);
        }
        inner.retire(id);
        Ok(decided)
    }

    /// Ends a pending request without a reviewer: `Expired` or `Withdrawn`. A request decided meanwhile
    /// keeps its decision, which is returned.
    fn close(&self, id: &str, state: ApprovalState) -> Option<Release> {
        let mut inner = self.lock();
        let entry = inner.requests.get_mut(id)?;
        let request = &mut entry.request;
        let decided = match request.state {
            ApprovalState::Pending => {
                request.state = state;
                request.decided_us = Some(now_us());
                entry.waiter = None;
                let event = if state == ApprovalState::Expired {
                    "expired"
                } else {
                    "withdrawn"
                };
                self.record(&request.session, request.n, request, event, None, None);
                self.tell(request, event);
                None
            }
            ApprovalState::Approved => Some(Release::Approved {
                by: request.decided_by.clone().unwrap_or_default(),
            }),
            ApprovalState::Denied => Some(Release::Denied {
                by: request.decided_by.clone().unwrap_or_default(),
                reason: request.reason.clone(),
            }),
            ApprovalState::Expired | ApprovalState::Withdrawn => None,
        };
        inner.retire(id);
        decided
    }
}

impl Inner {
    /// Pending tickets past their expiry become `Expired` (held statements expire by their own timer);
    /// the ones that did are returned.
    fn expire(&mut self, now: i64) -> Vec<ApprovalRequest> {
        let mut expired = Vec::new();
        for entry in self.requests.values_mut() {
            let request = &mut entry.request;
            if request.mode == Mode::Ticket
                && request.state == ApprovalState::Pending
                && request.expires_us <= now
            {
                request.state = ApprovalState::Expired;
                request.decided_us = Some(now);
                expired.push(request.clone());
            }
        }
        for request in &expired {
            self.retire(&request.id);
        }
        expired
    }

    /// Marks `id` decided; past [`KEPT_DECIDED`], the oldest decided request is forgotten.
    fn retire(&mut self, id: &str) {
        if self.decided.iter().any(|d| d == id) {
            return;
        }
        self.decided.push_back(id.to_owned());
        while self.decided.len() > KEPT_DECIDED {
            if let Some(old) = self.decided.pop_front() {
                self.requests.remove(&old);
            }
        }
    }
}

impl Hold {
    /// Waits for a reviewer, at most until the request expires.
    pub async fn decision(mut self) -> Release {
        let timeout = self.approvals.settings.hold_timeout;
        let decided = match self.decision.as_mut() {
            Some(decision) => tokio::time::timeout(timeout, decision)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        // Answered or timed out: from here on there is nothing to withdraw. (Dropped while waiting
        // above, `decision` is still set and Drop withdraws the request.)
        self.decision = None;
        match decided {
            Some(release) => release,
            // Timed out (or the request was forgotten): expire it, unless a decision landed meanwhile.
            None => self
                .approvals
                .close(&self.request.id, ApprovalState::Expired)
                .unwrap_or(Release::Expired),
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Still waiting: the session went away before a decision.
        if self.decision.is_some() {
            self.approvals.close(&self.request.id, ApprovalState::Withdrawn);
        }
    }
}

/// What an approval is bound to: the connection, the requesting identity, the statement's bytes and its
/// parameters (extended protocol), each length-prefixed; a NULL parameter is marked apart from any text.
pub fn fingerprint(
    connection: &str,
    principal: &Principal,
    statement: &str,
    params: &[Option<String>],
) -> String {
    let mut hash = Sha256::new();
    for part in [
        connection,
        principal.issuer.as_str(),
        principal.subject.as_str(),
        statement,
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.update((params.len() as u64).to_le_bytes());
    for param in params {
        match param {
            None => hash.update(u64::MAX.to_le_bytes()),
            Some(value) => {
                hash.update((value.len() as u64).to_le_bytes());
                hash.update(value.as_bytes());
            }
        }
    }
    hex::encode(hash.finalize())
}

/// A request id: `apr_` and 16 random bytes in hex.
fn new_id() -> String {
    format!("apr_{}", hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn principal(subject: &str, groups: &[&str]) -> Principal {
        Principal {
            issuer_alias: "dev".into(),
            issuer: "https://issuer.test".into(),
            subject: subject.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            token_id: None,
            issued_at: None,
            expires_at: SystemTime::now(),
        }
    }

    fn approvals(timeout: Duration) -> Arc<Approvals> {
        Arc::new(Approvals::new(
            ApprovalSettings {
                mode: Mode::Hold,
                hold_timeout: timeout,
                grant_ttl: Duration::from_secs(3600),
                reviewers_group: "reviewers".into(),
                deny_reason_required: true,
                quorum: 1,
            },
            None,
        ))
    }

    fn held<'a>(who: &'a Principal, statement: &'a str) -> HoldRequest<'a> {
        HoldRequest {
            n: 1,
            principal: who,
            connection: "app",
            session: "s1",
            statement,
            params: Vec::new(),
            commands: vec!["DELETE".into()],
            policies: vec!["deletes-need-approval".into()],
        }
    }

    #[tokio::test]
    async fn a_reviewer_releases_a_held_statement_once() {
        let approvals = approvals(Duration::from_secs(60));
        let bot = principal("bot", &["agents"]);
        let alice = principal("alice", &["reviewers"]);
        let hold = approvals.hold(held(&bot, "DELETE FROM t WHERE id = 1"));
        let id = hold.request.id.clone();
        assert_eq!(approvals.list(true).len(), 1);
        let decided = approvals
            .decide(&id, &alice, true, None, GrantTerms::default())
            .unwrap();
        assert_eq!(decided.state, ApprovalState::Approved);
        assert_eq!(
            hold.decision().await,
            Release::Approved {
                by: "dev/alice".into()
            }
        );
        assert!(matches!(
            approvals.decide(&id, &alice, false, Some("late".into()), GrantTerms::default()),
            Err(DecideError::NotPending { .. })
        ));
        assert!(approvals.list(true).is_empty());
        assert_eq!(approvals.list(false).len(), 1);
    }

    #[tokio::test]
    async fn requesters_outsiders_and_reasonless_denials_are_refused() {
        let approvals = approvals(Duration::from_secs(60));
        // A reviewer asking for their own statement still may not approve it.
        let both = principal("carol", &["agents", "reviewers"]);
        let outsider = principal("mallory", &["agents"]);
        let alice = principal("alice", &["reviewers"]);
        let hold = approvals.hold(held(&both, "DELETE FROM t"));
        let id = hold.request.id.clone();
        assert_eq!(
            approvals.decide(&id, &both, true, None, GrantTerms::default()),
            Err(DecideError::SelfApproval("dev/carol".into()))
        );
        assert!(matches!(
            approvals.decide(&id, &outsider, true, None, GrantTerms::default()),
            Err(DecideError::NotReviewer { .. })
        ));
        assert_eq!(
            approvals.decide(&id, &alice, false, Some("  ".into()), GrantTerms::default()),
            Err(DecideError::ReasonRequired)
        );
        assert!(matches!(
            approvals.decide("apr_nope", &alice, true, None, GrantTerms::default()),
            Err(DecideError::NotFound(_))
        ));
        approvals
            .decide(
                &id,
                &alice,
                false,
                Some("not today".into()),
                GrantTerms::default(),
            )
            .unwrap();
        assert_eq!(
            hold.decision().await,
            Release::Denied {
                by: "dev/alice".into(),
                reason: Some("not today".into())
            }
        );
    }

    #[tokio::test]
    async fn undecided_requests_expire_and_dropped_holds_are_withdrawn() {
        let approvals = approvals(Duration::from_millis(50));
        let bot = principal("bot", &["agents"]);
        let alice = principal("alice", &["reviewers"]);
        let hold = approvals.hold(held(&bot, "DELETE FROM t"));
        let id = hold.request.id.clone();
        assert_eq!(hold.decision().await, Release::Expired);
        assert_eq!(approvals.get(&id).unwrap().state, ApprovalState::Expired);
        assert!(matches!(
            approvals.decide(&id, &alice, true, None, GrantTerms::default()),
            Err(DecideError::NotPending { .. })
        ));

        let hold = approvals.hold(held(&bot, "DELETE FROM t"));
        let id = hold.request.id.clone();
        drop(hold);
        assert_eq!(approvals.get(&id).unwrap().state, ApprovalState::Withdrawn);
    }

    #[test]
    fn tickets_grant_the_approved_uses_of_the_same_statement_only() {
        let approvals = approvals(Duration::from_secs(60));
        let bot = principal("bot", &["agents"]);
        let alice = principal("alice", &["reviewers"]);
        let sql = "DELETE FROM t WHERE id = 1";
        let Ticket::Requested { request, new: true } = approvals.ticket(held(&bot, sql)) else {
            panic!("first run files a request");
        };
        // Sent again before the decision: the same pending request, not a second one.
        assert_eq!(
            approvals.ticket(held(&bot, sql)),
            Ticket::Requested {
                request: request.clone(),
                new: false
            }
        );
        let terms = GrantTerms {
            uses: Some(2),
            valid_for: None,
        };
        let decided = approvals.decide(&request.id, &alice, true, None, terms).unwrap();
        assert_eq!(decided.grant.map(|g| g.uses), Some(2));
        for left in [1, 0] {
            assert_eq!(
                approvals.ticket(held(&bot, sql)),
                Ticket::Granted {
                    request: request.id.clone(),
                    by: "dev/alice".into(),
                    left
                }
            );
        }
        // Used up: a new request. Changed bytes or another identity never match the grant.
        assert!(matches!(
            approvals.ticket(held(&bot, sql)),
            Ticket::Requested { new: true, .. }
        ));
        let other = principal("other", &["agents"]);
        assert!(matches!(
            approvals.ticket(held(&other, sql)),
            Ticket::Requested { new: true, .. }
        ));
        assert!(matches!(
            approvals.ticket(held(&bot, "DELETE FROM t WHERE id = 2")),
            Ticket::Requested { new: true, .. }
        ));
    }

    #[test]
    fn ticket_requests_and_grants_expire() {
        let approvals = approvals(Duration::from_millis(30));
        let bot = principal("bot", &["agents"]);
        let alice = principal("alice", &["reviewers"]);
        let Ticket::Requested { request, .. } = approvals.ticket(held(&bot, "DELETE FROM t")) else {
            panic!("a request");
        };
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(approvals.get(&request.id).unwrap().state, ApprovalState::Expired);
        assert!(matches!(
            approvals.decide(&request.id, &alice, true, None, GrantTerms::default()),
            Err(DecideError::NotPending { .. })
        ));
        // A grant past its window is not used.
        let Ticket::Requested { request, .. } = approvals.ticket(held(&bot, "DELETE FROM t")) else {
            panic!("a request");
        };
        let terms = GrantTerms {
            uses: Some(5),
            valid_for: Some(Duration::from_millis(20)),
        };
        approvals.decide(&request.id, &alice, true, None, terms).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(
            approvals.ticket(held(&bot, "DELETE FROM t")),
            Ticket::Requested { new: true, .. }
        ));
    }

    #[tokio::test]
    async fn a_quorum_needs_distinct_approvers_and_any_denial_denies() {
        let approvals = Arc::new(Approvals::new(
            ApprovalSettings {
                quorum: 2,
                ..approvals(Duration::from_secs(60)).settings().clone()
            },
            None,
        ));
        let bot = principal("bot", &["agents"]);
        let alice = principal("alice", &["reviewers"]);
        let dave = principal("dave", &["reviewers"]);
        let hold = approvals.hold(held(&bot, "DELETE FROM t"));
        let id = hold.request.id.clone();
        let first = approvals
            .decide(&id, &alice, true, None, GrantTerms::default())
            .unwrap();
        assert_eq!((first.state, first.votes.len()), (ApprovalState::Pending, 1));
        assert_eq!(
            approvals.decide(&id, &alice, true, None, GrantTerms::default()),
            Err(DecideError::AlreadyVoted("dev/alice".into()))
        );
        let second = approvals
            .decide(&id, &dave, true, None, GrantTerms::default())
            .unwrap();
        assert_eq!(second.state, ApprovalState::Approved);
        assert_eq!(
            hold.decision().await,
            Release::Approved {
                by: "dev/alice, dev/dave".into()
            }
        );

        let hold = approvals.hold(held(&bot, "DELETE FROM t"));
        let id = hold.request.id.clone();
        approvals
            .decide(&id, &alice, true, None, GrantTerms::default())
            .unwrap();
        approvals
            .decide(&id, &dave, false, Some("no".into()), GrantTerms::default())
            .unwrap();
        assert!(matches!(hold.decision().await, Release::Denied { .. }));
    }

    #[test]
    fn fingerprints_bind_connection_identity_and_exact_bytes() {
        let bot = principal("bot", &[]);
        let other = principal("bot2", &[]);
        let base = fingerprint("app", &bot, "DELETE FROM t WHERE id = 1", &[]);
        assert_eq!(base, fingerprint("app", &bot, "DELETE FROM t WHERE id = 1", &[]));
        assert_ne!(base, fingerprint("app", &bot, "DELETE FROM t WHERE id = 1 ", &[]));
        assert_ne!(base, fingerprint("app", &bot, "delete FROM t WHERE id = 1", &[]));
        assert_ne!(
            base,
            fingerprint("other", &bot, "DELETE FROM t WHERE id = 1", &[])
        );
        assert_ne!(
            base,
            fingerprint("app", &other, "DELETE FROM t WHERE id = 1", &[])
        );
        // Parameters count, and NULL is not the text "NULL" nor an empty string.
        let with = |p: &[Option<String>]| fingerprint("app", &bot, "DELETE FROM t WHERE id = $1", p);
        assert_ne!(with(&[Some("1".into())]), with(&[Some("2".into())]));
        assert_ne!(with(&[None]), with(&[Some("NULL".into())]));
        assert_ne!(with(&[None]), with(&[Some(String::new())]));
        assert_ne!(with(&[]), with(&[Some(String::new())]));
        assert_eq!(with(&[Some("1".into())]), with(&[Some("1".into())]));
        // Length prefixes keep field boundaries: moving bytes between fields changes the hash.
        assert_ne!(
            fingerprint("ap", &bot, "pDELETE", &[]),
            fingerprint("app", &bot, "DELETE", &[])
        );
    }
}
