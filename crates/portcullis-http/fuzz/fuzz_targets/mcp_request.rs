//! Fuzzes `mcp::McpRequest::parse`, the JSON-RPC body an MCP client POSTs, on arbitrary bytes; and the
//! answers the gateway builds for it (`error_response`, `answer_body`).
//!
//! Oracles, against the body read independently as a JSON value: a batch is an array and has one message
//! per element; every request's `id` is the element's, and comes back unchanged in the JSON-RPC error the
//! gateway answers it with; a method is the element's `method`; a `tools/call` names the element's
//! non-empty `params.name`, its `arguments_json` reads back as the element's `arguments` (`{}` when
//! absent or null) and its `arguments` are that object's flattened fields (at most 1024); a response has
//! no `method`. A refusal names a rule some element breaks; a body that names a member twice is refused
//! for that, before any other rule (`names_a_member_twice` has its own oracle in `body_fields`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_http::{flatten_json_object, names_a_member_twice};
use portcullis_http::mcp::{McpError, McpMessage, McpRequest, REFUSED_CODE, answer_body, error_response};
use serde_json::{Value, json};

/// `facts::MAX_BODY_FIELDS` (not exported; docs/policy.md): the most argument fields shown to policy.
const MAX_BODY_FIELDS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let parsed = McpRequest::parse(data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        assert_eq!(parsed, Err(McpError::NotJson));
        return;
    };
    if names_a_member_twice(data) {
        assert_eq!(parsed, Err(McpError::MemberNamedTwice));
        return;
    }
    let (items, batch): (Vec<&Value>, bool) = match &value {
        Value::Array(items) => (items.iter().collect(), true),
        other => (vec![other], false),
    };
    let request = match parsed {
        Ok(request) => request,
        Err(error) => {
            let broken = if batch && items.is_empty() {
                error == McpError::EmptyBatch
            } else {
                items.iter().any(|item| breaks(item, &error))
            };
            assert!(broken, "{error:?} names no rule the body breaks");
            return;
        }
    };
    assert_eq!(request.batch, batch);
    assert_eq!(request.messages.len(), items.len());

    let mut answers = Vec::new();
    for (message, item) in request.messages.iter().zip(&items) {
        let object = item.as_object().expect("an accepted message is an object");
        assert_eq!(object.get("jsonrpc"), Some(&json!("2.0")));
        let id = match message {
            McpMessage::Response => {
                assert!(!object.contains_key("method"));
                assert!(object.contains_key("result") || object.contains_key("error"));
                continue;
            }
            McpMessage::Call { id, method } => {
                assert_eq!(object.get("method"), Some(&json!(method)));
                assert_ne!(method, "tools/call", "a tools/call not read as one");
                id
            }
            McpMessage::ToolCall(call) => {
                assert_eq!(object.get("method"), Some(&json!("tools/call")));
                let params = &object["params"];
                assert!(!call.tool.is_empty());
                assert_eq!(params.get("name"), Some(&json!(call.tool)));
                let arguments: Value =
                    serde_json::from_str(&call.arguments_json).expect("arguments_json is JSON");
                match params.get("arguments") {
                    None | Some(Value::Null) => assert_eq!(arguments, json!({})),
                    Some(given) => assert_eq!(&arguments, given),
                }
                assert!(call.arguments.len() <= MAX_BODY_FIELDS);
                assert_eq!(
                    Some(&call.arguments),
                    flatten_json_object(call.arguments_json.as_bytes()).as_ref()
                );
                &call.id
            }
        };
        assert_eq!(id.as_ref(), object.get("id"), "the id did not round-trip");

        // The refusal the gateway would answer with carries the same id (null without one).
        let answer = error_response(id.as_ref(), REFUSED_CODE, "refused", Value::Null);
        let text = answer.to_string();
        let back: Value = serde_json::from_str(&text).expect("an error response is JSON");
        assert_eq!(back["id"], object.get("id").cloned().unwrap_or(Value::Null));
        assert_eq!(back["jsonrpc"], "2.0");
        assert_eq!(back["error"]["code"], REFUSED_CODE);
        answers.push(answer);
    }
    assert_eq!(
        request.lists_tools(),
        request
            .messages
            .iter()
            .any(|m| matches!(m, McpMessage::Call { method, .. } if method == "tools/list"))
    );

    // Answers to a batch are an array; a single request gets a single answer.
    let count = answers.len();
    let body: Value = serde_json::from_slice(&answer_body(batch, answers)).expect("an answer is JSON");
    assert_eq!(body.is_array(), batch || count != 1);
});

/// Whether `item` breaks the rule `error` names.
fn breaks(item: &Value, error: &McpError) -> bool {
    let Some(object) = item.as_object() else {
        return *error == McpError::NotJsonRpc;
    };
    let method = object.get("method");
    let params = object.get("params");
    match error {
        McpError::NotJsonRpc => {
            object.get("jsonrpc") != Some(&json!("2.0"))
                || method.is_some_and(|m| !m.is_string())
                || (method.is_none() && !object.contains_key("result") && !object.contains_key("error"))
        }
        McpError::NoToolName => {
            method == Some(&json!("tools/call"))
                && !params
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|name| !name.is_empty())
        }
        McpError::ArgumentsNotObject => {
            method == Some(&json!("tools/call"))
                && params
                    .and_then(|p| p.get("arguments"))
                    .is_some_and(|a| !a.is_object() && !a.is_null())
        }
        McpError::TooManyArguments => method == Some(&json!("tools/call")),
        McpError::NotJson | McpError::EmptyBatch | McpError::MemberNamedTwice => false,
    }
}
