//! MCP connections' decisions: each `tools/call` of a JSON-RPC request decided as Cedar `call_tool`
//! on its tool with its arguments (a refusal answered by the gateway as a JSON-RPC error), and the
//! `tools/list` filter that leaves only the tools the principal may call. The JSON-RPC parsing and the
//! filter's framing live in `portcullis_http::mcp`; see docs/protocols/mcp.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_core::{Outcome, Principal};
use portcullis_http::mcp::{
    Framing, McpExchange, McpMessage, McpRequest, REFUSED_CODE, ToolListFilter, Unreadable, answer_body,
    error_response,
};
use portcullis_http::{Problem, RequestInfo, ResponseFilter};
use portcullis_policy::RequestContext;
use tracing::info;

use crate::guard::Loaded;
use crate::http::Judged;
use crate::http_audit::Verdict;
use crate::telemetry;

/// Decides every `tools/call` in `request` (after the POST itself was allowed). All allowed: the
/// request goes on, recorded with the tools' deciding policies. Any refused: nothing is forwarded;
/// each request in the body gets a JSON-RPC error (the refused calls name the policies and the
/// reason; the others say they were not forwarded because of them), with HTTP 200.
pub(crate) fn judge_calls(
    policies: &Loaded,
    who: &Principal,
    connection: &str,
    request: &McpRequest,
    context: &RequestContext,
    peer: SocketAddr,
    http_policies: Vec<String>,
) -> Judged {
    let mut allowed_by: Vec<String> = Vec::new();
    let mut refused: Vec<(usize, Vec<String>, String)> = Vec::new();
    // Calls permitted only with a human's approval: (message index, requiring policies, reason).
    let mut approval: Vec<(usize, Vec<String>, String)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let McpMessage::ToolCall(call) = message else {
            continue;
        };
        let decision = policies
            .set
            .decide_tool_call(who, connection, &call.tool, &call.arguments, context);
        telemetry::http_decision(decision.outcome);
        match decision.outcome {
            Outcome::Allow => {
                for policy in decision.policies {
                    if !allowed_by.contains(&policy) {
                        allowed_by.push(policy);
                    }
                }
            }
            Outcome::Deny => {
                info!(client = %peer, connection, principal = %who.name(), tool = %call.tool,
                    policies = ?decision.policies, reason = %decision.reason, "mcp tool call refused");
                refused.push((i, decision.policies, decision.reason));
            }
            Outcome::ApprovalRequired => {
                info!(client = %peer, connection, principal = %who.name(), tool = %call.tool,
                    policies = ?decision.policies, "mcp tool call needs approval");
                approval.push((i, decision.policies, decision.reason));
            }
        }
    }
    // Approval: asked for by the gate when approvals are on (`http_approvals`); the refusal here is
    // the answer when they are off, or when another call of the batch is refused outright.
    if refused.is_empty() && !approval.is_empty() {
        let policies: Vec<String> = approval.iter().flat_map(|(_, p, _)| p.clone()).collect();
        let reason = approval
            .iter()
            .map(|(_, _, reason)| reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let message = format!(
            "approval required by Portcullis: {reason}; approvals are not enabled on this gateway, so the call was not forwarded"
        );
        let data = serde_json::json!({ "policies": policies, "reason": reason });
        return Judged {
            answer: Err(Problem::json_rpc_refusal(
                message.clone(),
                policies.clone(),
                approval_answer(request, &message, &data),
            )),
            verdict: Verdict {
                decision: crate::http_approvals::APPROVAL_REQUIRED,
                policies,
                reason,
            },
        };
    }
    for (i, policies, reason) in approval {
        let reason = format!("approval required: {reason}; another call of this batch is refused");
        refused.push((i, policies, reason));
    }
    if refused.is_empty() {
        let policies = if request.tool_calls().next().is_some() {
            allowed_by
        } else {
            http_policies
        };
        return Judged {
            answer: Ok(()),
            verdict: Verdict {
                decision: "allow",
                policies,
                reason: String::new(),
            },
        };
    }
    let answers = request
        .messages
        .iter()
        .enumerate()
        .filter_map(|(i, message)| {
            let id = match message {
                McpMessage::ToolCall(call) => call.id.as_ref(),
                McpMessage::Call { id, .. } => id.as_ref(),
                McpMessage::Response => None,
            };
            let own = refused.iter().find(|(at, _, _)| *at == i);
            match (own, id) {
                (Some((_, policies, reason)), _) => Some(error_response(
                    id,
                    REFUSED_CODE,
                    &refusal_message(policies, reason),
                    serde_json::json!({ "policies": policies, "reason": reason }),
                )),
                // Another request of the batch: not forwarded because of the refusal.
                (None, Some(_)) => Some(error_response(
                    id,
                    REFUSED_CODE,
                    "not forwarded by Portcullis: another call in this batch was refused",
                    serde_json::Value::Null,
                )),
                // Notifications and responses get no answer.
                (None, None) => None,
            }
        })
        .collect();
    let policies: Vec<String> = refused.iter().flat_map(|(_, p, _)| p.clone()).collect();
    let reason = refused
        .iter()
        .map(|(_, _, reason)| reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let body = answer_body(request.batch, answers);
    Judged {
        answer: Err(Problem::json_rpc_refusal(
            format!("refused by policy: {reason}"),
            policies.clone(),
            body,
        )),
        verdict: Verdict {
            decision: "deny",
            policies,
            reason,
        },
    }
}

/// The gateway's JSON-RPC answer to every request (with an id) of an MCP POST that waits for, or was
/// refused by, an approval: one error, code -32001, whose `data` names the approval request.
pub(crate) fn approval_answer(request: &McpRequest, message: &str, data: &serde_json::Value) -> bytes::Bytes {
    let answers = request
        .messages
        .iter()
        .filter_map(|message| match message {
            McpMessage::ToolCall(call) => Some(call.id.as_ref()),
            McpMessage::Call { id: Some(id), .. } => Some(Some(id)),
            McpMessage::Call { id: None, .. } | McpMessage::Response => None,
        })
        .map(|id| error_response(id, REFUSED_CODE, message, data.clone()))
        .collect();
    answer_body(request.batch, answers)
}

/// `refused by Portcullis policy no-deletes: call_tool on Tool "crm/delete_customer" ...`.
fn refusal_message(policies: &[String], reason: &str) -> String {
    if policies.is_empty() {
        format!("refused by Portcullis: {reason}")
    } else {
        format!("refused by Portcullis policy {}: {reason}", policies.join(", "))
    }
}

/// The filter for a response to an MCP endpoint request that may carry a tool list: a POST asking
/// `tools/list`, or the server's event stream (a GET, which may replay earlier responses). `None` for
/// other requests. A response the filter cannot read (another content type, a content encoding) is
/// cut off rather than passed unfiltered.
pub(crate) fn tool_list_filter(
    policies: Arc<Loaded>,
    who: &Arc<Principal>,
    request: &RequestInfo<'_>,
    response: &http::response::Parts,
    context: RequestContext,
) -> Option<Box<dyn ResponseFilter>> {
    let may_carry_list = match request.mcp? {
        McpExchange::Messages(messages) => messages.lists_tools(),
        McpExchange::Other => request.facts.method == "GET",
    };
    if !may_carry_list || !response.status.is_success() {
        return None;
    }
    let content_type = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let encoded = response
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    let framing = match Framing::of(content_type) {
        Some(framing) if !encoded => framing,
        _ => {
            return Some(Box::new(Unreadable));
        }
    };
    let who = Arc::clone(who);
    let connection = request.connection.to_owned();
    let mut answers: HashMap<String, bool> = HashMap::new();
    let may_call = move |tool: &str| {
        if let Some(answer) = answers.get(tool) {
            return *answer;
        }
        let answer = policies
            .set
            .decide_tool_call(&who, &connection, tool, &[], &context)
            .outcome
            == Outcome::Allow;
        answers.insert(tool.to_owned(), answer);
        answer
    };
    Some(Box::new(ToolListFilter::new(framing, may_call)))
}
