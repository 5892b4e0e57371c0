//! Just-in-time approval of HTTP requests and MCP tool calls: a request that only an
//! `@approval("required")` policy permits is asked for through the gateway's [`Approvals`], as a SQL
//! statement is, and then held until a reviewer decides (hold) or answered at once with the request id
//! and run when sent again after approval (ticket). See docs/approvals.md.
//!
//! What an approval binds (its fingerprint: connection, requester, "statement", parameters):
//! - HTTP: the statement is the request line as sent (`DELETE /crm/customers/42?tenant=acme`), and
//!   the one parameter, when the request has a body, is `body sha256:<hex> (<n> bytes)`. A body must
//!   have been read whole before the decision (JSON within `inspect_body_bytes`); any other body is
//!   refused (413), since an approval could not say what it releases and the gateway holds no more.
//! - MCP: the statement is the request line and its JSON-RPC methods and tools
//!   (`POST /crm/mcp tools/call delete_customer`), one parameter per tool call with its arguments
//!   (`arguments delete_customer: {"id":"7"}`, re-serialised with sorted keys); JSON-RPC ids and other
//!   fields are not bound, so a client's resend with a new id matches its ticket.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_core::Principal;
use portcullis_http::mcp::McpExchange;
use portcullis_http::{ApprovalRef, BodySeen, Problem, RequestInfo};
use portcullis_mask::ConnectionMask;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::approvals::{Approvals, HoldRequest, Mode, Release, Ticket};
use crate::guard::Loaded;
use crate::http::{HttpGate, HttpPass, Judged};
use crate::http_audit::{self, ClientSessions, RequestRecord, Verdict};
use crate::http_mask::RequestMasking;

/// The verdict's decision for a request only an approval policy permits.
pub(crate) const APPROVAL_REQUIRED: &str = "approval_required";

/// The gate's approvals: the shared store, where reviewers find a request, each connection's mode.
#[derive(Debug, Clone)]
pub struct HttpApprovals {
    pub store: Arc<Approvals>,
    /// A request's link is this and its id (`[approvals] link_base`, else the admin API's).
    pub link_base: String,
    /// `[[connections]] approval_mode`, where set.
    pub modes: HashMap<String, Mode>,
}

/// The judgement of a request that needs approval: refused as it stands (the answer when approvals
/// are off), marked for [`HttpGate::approval`] otherwise.
pub(crate) fn required(policies: Vec<String>, reason: String) -> Judged {
    let detail = format!(
        "approval required: {reason}; approvals are not enabled on this gateway, so the request was not forwarded"
    );
    Judged {
        answer: Err(Problem::forbidden(detail, policies.clone())),
        verdict: Verdict {
            decision: APPROVAL_REQUIRED,
            policies,
            reason,
        },
    }
}

/// What an approval of this request is asked for, and bound to.
struct Asked {
    statement: String,
    params: Vec<Option<String>>,
    commands: Vec<String>,
}

/// The request as an approval request states it; `None` when its body was not read whole.
fn asked(request: &RequestInfo<'_>) -> Option<Asked> {
    let line = format!("{} {}", request.facts.method, request.target);
    if let Some(McpExchange::Messages(mcp)) = request.mcp {
        let calls: Vec<_> = mcp.tool_calls().collect();
        return Some(Asked {
            statement: format!("{line} {}", mcp.describe()),
            params: calls
                .iter()
                .map(|c| Some(format!("arguments {}: {}", c.tool, c.arguments_json)))
                .collect(),
            commands: calls.iter().map(|c| format!("tools/call {}", c.tool)).collect(),
        });
    }
    let params = match request.body {
        BodySeen::Empty => Vec::new(),
        BodySeen::Read(bytes) => vec![Some(format!(
            "body sha256:{} ({} bytes)",
            hex::encode(Sha256::digest(bytes)),
            bytes.len()
        ))],
        BodySeen::Unread => return None,
    };
    Some(Asked {
        statement: line,
        params,
        commands: vec![request.facts.method.clone()],
    })
}

/// How an approval ended for the request: forward it, or answer with a problem.
enum Settled {
    Forward(Verdict),
    Refuse(Problem, Verdict),
}

impl HttpGate {
    /// Asks for approval of a request only an approval policy permits, records it (session start,
    /// the approval's events, then the statement naming the approval: forwarded only once that is
    /// stored) and answers: the pass (approved, or a ticket's grant), or the problem (denied,
    /// expired, 202 for a new ticket). Dropped while holding (the client went away), the request is
    /// withdrawn and the session ends `client_disconnected`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn approval(
        &self,
        approvals: &HttpApprovals,
        policies: &Loaded,
        who: &Arc<Principal>,
        client: &ClientSessions,
        request: &RequestInfo<'_>,
        verdict: Verdict,
        scrub: Option<Arc<ConnectionMask>>,
        masking: Option<RequestMasking>,
    ) -> Result<HttpPass, Problem> {
        let recorded = self.recorded(who, request, scrub);
        let mut record = RequestRecord::open(client, &recorded);
        let settled = match asked(request) {
            None => {
                let detail = format!(
                    "approval required, and an approval binds the request's exact body: the gateway reads \
                     only JSON bodies of at most inspect_body_bytes before deciding, so this request was not \
                     held or forwarded ({})",
                    verdict.reason
                );
                Settled::Refuse(
                    Problem::too_large(detail.clone()),
                    Verdict {
                        decision: "deny",
                        policies: verdict.policies,
                        reason: detail,
                    },
                )
            }
            Some(asked) => {
                let session = record
                    .as_ref()
                    .map(|r| r.session().to_owned())
                    .unwrap_or_default();
                let held = HoldRequest {
                    n: record.as_ref().map_or(1, RequestRecord::n),
                    principal: who,
                    connection: request.connection,
                    session: &session,
                    statement: &asked.statement,
                    params: asked.params,
                    commands: asked.commands,
                    policies: verdict.policies.clone(),
                };
                // The requiring policies' @approval_mode, else the connection's, else the gateway's.
                let mode = match policies.set.approval_mode(&verdict.policies) {
                    Some("ticket") => Mode::Ticket,
                    Some("hold") => Mode::Hold,
                    _ => approvals
                        .modes
                        .get(request.connection)
                        .copied()
                        .unwrap_or(approvals.store.settings().mode),
                };
                match mode {
                    Mode::Hold => hold(approvals, request, held, verdict.policies).await,
                    Mode::Ticket => ticket(approvals, request, held, verdict.policies),
                }
            }
        };
        let (verdict, refusal) = match settled {
            Settled::Forward(verdict) => (verdict, None),
            Settled::Refuse(problem, verdict) => (verdict, Some(problem)),
        };
        if let Some(open) = record.as_mut()
            && let Err(e) = open.decided(&recorded, verdict).await
        {
            let problem = http_audit::store_failure(&e);
            if let Some(open) = record.take() {
                open.refused(&problem);
            }
            return Err(problem);
        }
        match refusal {
            None => Ok(HttpPass { record, masking }),
            Some(problem) => {
                if let Some(record) = record {
                    record.refused(&problem);
                }
                Err(problem)
            }
        }
    }
}

/// Hold: the request waits for a reviewer, at most `hold_timeout`.
async fn hold(
    approvals: &HttpApprovals,
    request: &RequestInfo<'_>,
    held: HoldRequest<'_>,
    policies: Vec<String>,
) -> Settled {
    let hold = approvals.store.hold(held);
    let id = hold.request.id.clone();
    info!(approval = %id, connection = request.connection, principal = %hold.request.requester,
        fingerprint = %hold.request.fingerprint, "http request held for approval");
    // Every step (request, votes, decision, expiry, withdrawal) is recorded by `Approvals`.
    match hold.decision().await {
        Release::Approved { by } => {
            info!(approval = %id, reviewer = %by, "held http request approved; forwarding it");
            Settled::Forward(Verdict {
                decision: "allow",
                policies,
                reason: format!("approval {id} granted by {by}"),
            })
        }
        Release::Denied { by, reason } => {
            info!(approval = %id, reviewer = %by, "held http request denied");
            let why = reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
            let detail = format!("approval {id} was denied by {by}{why}; the request was not forwarded");
            let approval = ApprovalRef {
                id,
                state: "denied",
                decided_by: Some(by),
                reason,
                link: None,
            };
            refusal(request, detail, policies, approval)
        }
        Release::Expired => {
            info!(approval = %id, "held http request expired without a decision");
            let detail = format!(
                "approval {id} was not decided within {}; the request was not forwarded (ask a reviewer, \
                 then send it again)",
                humantime::format_duration(approvals.store.settings().hold_timeout)
            );
            let approval = ApprovalRef {
                id,
                state: "expired",
                decided_by: None,
                reason: None,
                link: None,
            };
            refusal(request, detail, policies, approval)
        }
    }
}

/// Ticket: runs on a grant for exactly this request, or answers at once (202) naming the request.
fn ticket(
    approvals: &HttpApprovals,
    request: &RequestInfo<'_>,
    held: HoldRequest<'_>,
    policies: Vec<String>,
) -> Settled {
    match approvals.store.ticket(held) {
        Ticket::Granted {
            request: id,
            by,
            left,
        } => {
            info!(approval = %id, reviewer = %by, left, "http request runs on an approved ticket");
            Settled::Forward(Verdict {
                decision: "allow",
                policies,
                reason: format!("approval {id} granted by {by} ({left} use(s) left)"),
            })
        }
        Ticket::Requested {
            request: pending,
            new,
        } => {
            if new {
                info!(approval = %pending.id, connection = request.connection, principal = %pending.requester,
                    fingerprint = %pending.fingerprint, "approval requested (http ticket)");
            }
            let detail = format!(
                "approval required by Portcullis: request {} waits for a reviewer; once it is approved, send \
                 exactly the same request again (it expires in {}); the request was not forwarded",
                pending.id,
                humantime::format_duration(approvals.store.settings().hold_timeout)
            );
            let approval = ApprovalRef {
                link: Some(format!("{}{}", approvals.link_base, pending.id)),
                id: pending.id.clone(),
                state: "pending",
                decided_by: None,
                reason: None,
            };
            let verdict = Verdict {
                decision: APPROVAL_REQUIRED,
                policies: policies.clone(),
                reason: detail.clone(),
            };
            let problem = match request.mcp {
                Some(McpExchange::Messages(mcp)) => mcp_answer(mcp, &detail, policies, &approval),
                _ => Problem::approval_pending(detail, policies, approval),
            };
            Settled::Refuse(problem, verdict)
        }
    }
}

/// A denial or expiry: a 403 problem document, or for MCP the JSON-RPC error.
fn refusal(
    request: &RequestInfo<'_>,
    detail: String,
    policies: Vec<String>,
    approval: ApprovalRef,
) -> Settled {
    let verdict = Verdict {
        decision: "deny",
        policies: policies.clone(),
        reason: detail.clone(),
    };
    let problem = match request.mcp {
        Some(McpExchange::Messages(mcp)) => mcp_answer(mcp, &detail, policies, &approval),
        _ => Problem::forbidden(detail, policies).with_approval(approval),
    };
    Settled::Refuse(problem, verdict)
}

/// MCP: HTTP 200 with a JSON-RPC error (-32001) for each request of the POST, its `data` naming the
/// approval (`approval`: id, state, decider, reason, link) and the requiring policies.
fn mcp_answer(
    mcp: &portcullis_http::mcp::McpRequest,
    detail: &str,
    policies: Vec<String>,
    approval: &ApprovalRef,
) -> Problem {
    let data = serde_json::json!({ "approval": approval, "policies": policies });
    let body = crate::mcp::approval_answer(mcp, detail, &data);
    Problem::json_rpc_refusal(detail.to_owned(), policies, body).with_approval(approval.clone())
}
