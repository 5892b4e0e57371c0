//! MCP (Model Context Protocol) over streamable HTTP, in the gateway's terms: a POSTed JSON-RPC body
//! (one message or a batch) → the calls it makes (`tools/call` with its tool and arguments, other
//! methods by name); JSON-RPC error answers for refused calls; and the `tools/list` response filter,
//! for JSON bodies and `text/event-stream` events. Pure: nothing here decides (the filter asks a
//! closure whether a tool may be called).

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use crate::body::{FilterError, ResponseFilter};
use crate::facts::{JsonRefusal, flatten_value, read_json};
use crate::sse::{BYTE_ORDER_MARK, EventFramer, Framed, data_value};

/// JSON-RPC error code of a call the gateway refused (the range JSON-RPC leaves to servers).
pub const REFUSED_CODE: i64 = -32001;
/// The largest `tools/list` response body, or one event of an event stream, the filter holds; past it
/// the response is cut off (fail closed: never passed unfiltered).
pub const MAX_TOOLS_LIST_BYTES: usize = 1024 * 1024;

/// Where a connection speaks MCP and how much of a request the gateway reads.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// The MCP endpoint's path after the connection's prefix (`/mcp`); `None`: every path.
    pub path: Option<String>,
    /// The largest JSON-RPC request body read; a larger one is refused (413).
    pub max_body_bytes: usize,
}

impl McpSettings {
    /// Whether a request to `path` (after the connection's prefix, normalised) is for the MCP endpoint.
    pub fn covers(&self, path: &str) -> bool {
        self.path
            .as_deref()
            .is_none_or(|endpoint| endpoint.trim_end_matches('/') == path.trim_end_matches('/'))
    }
}

/// A request to a connection's MCP endpoint, as the gate sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum McpExchange {
    /// A POST: the JSON-RPC messages it carries.
    Messages(McpRequest),
    /// Anything else (a GET opening or resuming the server's event stream, a DELETE ending a session).
    Other,
}

/// A POSTed JSON-RPC body: one message, or a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct McpRequest {
    pub messages: Vec<McpMessage>,
    /// The body was a JSON array (answers to it are arrays too).
    pub batch: bool,
}

/// One JSON-RPC message a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum McpMessage {
    /// A `tools/call` request.
    ToolCall(ToolCall),
    /// Any other request (with an `id`) or notification (without).
    Call { id: Option<Value>, method: String },
    /// A response to a request the server made (sampling, elicitation, roots).
    Response,
}

/// A `tools/call` request: which tool, with what.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Absent for a (malformed) call sent as a notification: it is refused all the same.
    pub id: Option<Value>,
    pub tool: String,
    /// The `arguments` object flattened like an HTTP JSON body (dotted paths to scalars).
    pub arguments: Vec<(String, String)>,
    /// The `arguments` as JSON text (for the audit trail, which scrubs it).
    pub arguments_json: String,
}

/// Why a body is not a JSON-RPC request the gateway will forward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body is not a JSON-RPC 2.0 message or batch")]
    NotJsonRpc,
    #[error("an empty batch")]
    EmptyBatch,
    #[error("a tools/call without a tool name")]
    NoToolName,
    #[error("a tools/call whose arguments are not an object")]
    ArgumentsNotObject,
    #[error("a tools/call with more arguments than the gateway shows to policy")]
    TooManyArguments,
    #[error("an object that names a member twice, which servers could read two ways")]
    MemberNamedTwice,
}

impl McpRequest {
    /// Parses a POSTed body. Tool calls must be well formed (a name, an object of arguments within the
    /// field bound): what cannot be decided is refused.
    pub fn parse(bytes: &[u8]) -> Result<McpRequest, McpError> {
        McpRequest::read(bytes).map(|(request, _)| request)
    }

    /// As [`McpRequest::parse`], with the body's JSON value, read once (the proxy flattens it for
    /// policy).
    pub fn read(bytes: &[u8]) -> Result<(McpRequest, Value), McpError> {
        // A member named twice is refused: serde_json would keep the last, a server may act on the first.
        // (`read_json` stops at the repeat; a text that is not JSON after it is still `NotJson`.)
        let value = read_json(bytes).map_err(|refusal| match refusal {
            JsonRefusal::MemberNamedTwice if serde_json::from_slice::<Value>(bytes).is_ok() => {
                McpError::MemberNamedTwice
            }
            JsonRefusal::MemberNamedTwice | JsonRefusal::NotJson => McpError::NotJson,
        })?;
        let request = match &value {
            Value::Array(items) if items.is_empty() => return Err(McpError::EmptyBatch),
            Value::Array(items) => McpRequest {
                messages: items.iter().map(message).collect::<Result<_, _>>()?,
                batch: true,
            },
            other => McpRequest {
                messages: vec![message(other)?],
                batch: false,
            },
        };
        Ok((request, value))
    }

    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.messages.iter().filter_map(|m| match m {
            McpMessage::ToolCall(call) => Some(call),
            _ => None,
        })
    }

    /// Whether the body asks for `tools/list` (its response is then filtered).
    pub fn lists_tools(&self) -> bool {
        self.messages
            .iter()
            .any(|m| matches!(m, McpMessage::Call { method, .. } if method == "tools/list"))
    }

    /// The messages in a line: `tools/call lookup_customer`, `initialize`, `response`; `; ` between.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .messages
            .iter()
            .map(|m| match m {
                McpMessage::ToolCall(call) => format!("tools/call {}", call.tool),
                McpMessage::Call { method, .. } => method.clone(),
                McpMessage::Response => "response".to_owned(),
            })
            .collect();
        parts.join("; ")
    }
}

fn message(value: &Value) -> Result<McpMessage, McpError> {
    let object = value.as_object().ok_or(McpError::NotJsonRpc)?;
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(McpError::NotJsonRpc);
    }
    let id = object.get("id").cloned();
    let Some(method) = object.get("method") else {
        return if object.contains_key("result") || object.contains_key("error") {
            Ok(McpMessage::Response)
        } else {
            Err(McpError::NotJsonRpc)
        };
    };
    let method = method.as_str().ok_or(McpError::NotJsonRpc)?.to_owned();
    if method != "tools/call" {
        return Ok(McpMessage::Call { id, method });
    }
    let params = object.get("params");
    let tool = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .ok_or(McpError::NoToolName)?
        .to_owned();
    let (arguments, arguments_json) = match params.and_then(|p| p.get("arguments")) {
        None | Some(Value::Null) => (Vec::new(), "{}".to_owned()),
        Some(args @ Value::Object(_)) => {
            let fields = flatten_value(args).ok_or(McpError::TooManyArguments)?;
            (fields, args.to_string())
        }
        Some(_) => return Err(McpError::ArgumentsNotObject),
    };
    Ok(McpMessage::ToolCall(ToolCall {
        id,
        tool,
        arguments,
        arguments_json,
    }))
}

/// A JSON-RPC error response to the request `id` (`null` when it had none).
pub fn error_response(id: Option<&Value>, code: i64, message: &str, data: Value) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": code, "message": message, "data": data },
    })
}

/// The body answering `request` with `responses`: an array for a batch, else the one response.
pub fn answer_body(request_was_batch: bool, mut responses: Vec<Value>) -> Bytes {
    let value = if request_was_batch || responses.len() != 1 {
        Value::Array(responses)
    } else {
        responses.pop().unwrap_or(Value::Null)
    };
    Bytes::from(value.to_string())
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/json`: one JSON-RPC response (or batch) for the whole body.
    Json,
    /// `text/event-stream`: each event's `data` one JSON-RPC message.
    EventStream,
}

impl Framing {
    /// The framing of a response with this `Content-Type`; `None` for anything else.
    pub fn of(content_type: Option<&str>) -> Option<Framing> {
        let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Framing::Json),
            "text/event-stream" => Some(Framing::EventStream),
            _ => None,
        }
    }
}

/// Removes from every `tools/list` result (a response whose `result.tools` is an array) the tools the
/// principal may not call, as the body streams: a JSON body is held whole (up to
/// [`MAX_TOOLS_LIST_BYTES`]); an event stream one event at a time. Anything it cannot frame within
/// the bound cuts the response off.
#[derive(Debug)]
pub struct ToolListFilter<F> {
    framing: Framing,
    may_call: F,
    /// A JSON body, held whole.
    held: BytesMut,
    /// An event stream, read one event at a time.
    events: EventFramer,
}

impl<F: FnMut(&str) -> bool + Send + 'static> ToolListFilter<F> {
    pub fn new(framing: Framing, may_call: F) -> Self {
        ToolListFilter {
            framing,
            may_call,
            held: BytesMut::new(),
            events: EventFramer::new(MAX_TOOLS_LIST_BYTES),
        }
    }

    /// Filters the tools of one JSON-RPC message or batch; `None` when it is not JSON (left as is).
    fn rewrite_json(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(text).ok()?;
        let changed = match &mut value {
            Value::Array(items) => {
                // Every message of the batch is filtered: no short-circuit.
                let mut changed = false;
                for item in items.iter_mut() {
                    changed |= filter_tools(item, &mut self.may_call);
                }
                changed
            }
            item => filter_tools(item, &mut self.may_call),
        };
        changed.then(|| value.to_string().into_bytes())
    }

    /// Writes one event, its tool list filtered; any other event as it came. A leading byte order
    /// mark is passed on (clients drop it; see [`crate::sse`]).
    fn rewrite(&mut self, framed: Framed, out: &mut Vec<u8>) {
        let event = match framed {
            Framed::ByteOrderMark => return out.extend_from_slice(BYTE_ORDER_MARK),
            Framed::Event(event) => event,
        };
        // Read the data as the client will: an event stream is UTF-8, and clients decode it replacing
        // invalid bytes (WHATWG `EventSource`). Parsed as raw bytes, a tool list with one invalid byte in
        // it was not JSON to the filter, passed unfiltered, and was JSON to the client.
        let json = event
            .payload()
            .and_then(|payload| self.rewrite_json(String::from_utf8_lossy(&payload).as_bytes()));
        let Some(json) = json else {
            // Passed on byte for byte, blank line included. (Appending a `\n` of its own instead turned
            // a last line ending in a lone `\r` and that `\n` into one `\r\n`: the client then read no
            // blank line, and joined this event's data to the next event's.)
            return event.write_to(out);
        };
        let mut data_written = false;
        for (line, _) in &event.lines {
            if data_value(line).is_some() {
                if !std::mem::replace(&mut data_written, true) {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(&json);
                    out.push(b'\n');
                }
            } else {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
}

impl<F: FnMut(&str) -> bool + Send + 'static> ResponseFilter for ToolListFilter<F> {
    fn data(&mut self, chunk: Bytes) -> Result<Bytes, FilterError> {
        if self.framing == Framing::Json {
            self.held.extend_from_slice(&chunk);
            if self.held.len() > MAX_TOOLS_LIST_BYTES {
                return Err(too_large());
            }
            return Ok(Bytes::new());
        }
        let mut framed = Vec::new();
        let read = self.events.push(&chunk, &mut framed);
        let mut out = Vec::new();
        for piece in framed {
            self.rewrite(piece, &mut out);
        }
        match read {
            Ok(()) => Ok(Bytes::from(out)),
            Err(_) => Err(too_large()),
        }
    }

    fn end(&mut self) -> Result<Option<Bytes>, FilterError> {
        if self.framing == Framing::EventStream {
            // An event whose blank line was the body's last byte (a lone CR) is whole; an unterminated
            // last event is discarded, as clients discard it.
            let mut framed = Vec::new();
            self.events.finish(&mut framed);
            let mut out = Vec::new();
            for piece in framed {
                if !matches!(&piece, Framed::Event(event) if event.end.is_empty()) {
                    self.rewrite(piece, &mut out);
                }
            }
            return Ok((!out.is_empty()).then(|| Bytes::from(out)));
        }
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return Ok(None);
        }
        match self.rewrite_json(&held) {
            Some(json) => Ok(Some(Bytes::from(json))),
            None if serde_json::from_slice::<Value>(&held).is_ok() => Ok(Some(held.freeze())),
            None => Err(FilterError("a tools/list response that is not JSON".to_owned())),
        }
    }
}

/// A response that may list tools but that the gateway cannot read (another content type, a content
/// encoding): cut off at its first byte rather than passed unfiltered.
#[derive(Debug)]
pub struct Unreadable;

impl ResponseFilter for Unreadable {
    fn data(&mut self, _chunk: Bytes) -> Result<Bytes, FilterError> {
        Err(FilterError(
            "an MCP response that may list tools is neither plain JSON nor an event stream".to_owned(),
        ))
    }

    fn end(&mut self) -> Result<Option<Bytes>, FilterError> {
        Ok(None)
    }
}

fn too_large() -> FilterError {
    FilterError(format!(
        "a tools/list response (or event) larger than {MAX_TOOLS_LIST_BYTES} bytes"
    ))
}

/// Keeps in `message.result.tools` only the tools `may_call` accepts by name (a tool without a string
/// name is dropped). Whether the message is a tool list (and must be written again).
fn filter_tools(message: &mut Value, may_call: &mut impl FnMut(&str) -> bool) -> bool {
    let Some(tools) = message
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    tools.retain(|tool| {
        tool.get("name")
            .and_then(Value::as_str)
            .is_some_and(&mut *may_call)
    });
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bodies_parse_to_calls() {
        let one = McpRequest::parse(
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"lookup_customer","arguments":{"id":"42","filter":{"tenant":"acme"}}}}"#,
        )
        .unwrap();
        assert!(!one.batch);
        let call = one.tool_calls().next().unwrap();
        assert_eq!(call.tool, "lookup_customer");
        assert_eq!(call.id, Some(serde_json::json!(3)));
        let mut args = call.arguments.clone();
        args.sort();
        assert_eq!(
            args,
            vec![
                ("filter.tenant".into(), "acme".into()),
                ("id".into(), "42".into())
            ]
        );
        assert_eq!(one.describe(), "tools/call lookup_customer");

        let batch = McpRequest::parse(
            br#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":1,"result":{}}]"#,
        )
        .unwrap();
        assert!(batch.batch && batch.lists_tools());
        assert_eq!(
            batch.describe(),
            "tools/list; notifications/initialized; response"
        );

        let refused: &[(&[u8], McpError)] = &[
            (b"{", McpError::NotJson),
            (b"[]", McpError::EmptyBatch),
            (br#"{"id":1,"method":"tools/list"}"#, McpError::NotJsonRpc),
            (br#"{"jsonrpc":"2.0","id":1}"#, McpError::NotJsonRpc),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                McpError::NoToolName,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
                McpError::ArgumentsNotObject,
            ),
            // The policy would see the last name, a first-wins server would call the first tool.
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_customer","name":"delete_customer"}}"#,
                McpError::MemberNamedTwice,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"id":"1","id":"42"}}}"#,
                McpError::MemberNamedTwice,
            ),
        ];
        for (body, error) in refused {
            assert_eq!(
                McpRequest::parse(body).as_ref().err(),
                Some(error),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn run(filter: &mut dyn ResponseFilter, chunks: &[&str]) -> String {
        let mut out = String::new();
        for chunk in chunks {
            let bytes = filter.data(Bytes::copy_from_slice(chunk.as_bytes())).unwrap();
            out.push_str(std::str::from_utf8(&bytes).unwrap());
        }
        if let Some(bytes) = filter.end().unwrap() {
            out.push_str(std::str::from_utf8(&bytes).unwrap());
        }
        out
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"lookup_customer","inputSchema":{}},{"name":"delete_customer"}]}}"#;

    #[test]
    fn json_tool_lists_are_filtered() {
        let mut filter = ToolListFilter::new(Framing::Json, |name: &str| name != "delete_customer");
        let (a, b) = LIST.split_at(40);
        let out: Value = serde_json::from_str(&run(&mut filter, &[a, b])).unwrap();
        assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(out["result"]["tools"][0]["name"], "lookup_customer");
        assert_eq!(out["id"], 2);
        // Other responses pass unchanged.
        let mut filter = ToolListFilter::new(Framing::Json, |_: &str| false);
        let other = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
        assert_eq!(run(&mut filter, &[other]), other);
    }

    #[test]
    fn event_stream_tool_lists_are_filtered_per_event() {
        let mut filter = ToolListFilter::new(Framing::EventStream, |name: &str| name != "delete_customer");
        let stream = format!(
            "event: message\r\nid: 1\r\ndata: {LIST}\r\n\r\n: keep-alive\n\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"x\"}}\n\n"
        );
        // Byte by byte: boundaries anywhere.
        let chunks: Vec<String> = stream.chars().map(String::from).collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let out = run(&mut filter, &refs);
        assert!(!out.contains("delete_customer"), "{out}");
        assert!(out.starts_with("event: message\nid: 1\ndata: {"), "{out}");
        assert!(out.contains("lookup_customer"));
        assert!(out.contains(": keep-alive\n\n"));
        assert!(
            out.ends_with("data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n"),
            "{out}"
        );
    }

    #[test]
    fn event_stream_tool_lists_with_invalid_utf8_are_filtered() {
        // Found by the `tool_list_filter` fuzz target: a byte that is not UTF-8 made the event's data
        // unreadable to the filter, which passed it on; a client decodes it with U+FFFD and reads the list.
        let mut filter = ToolListFilter::new(Framing::EventStream, |name: &str| name != "delete_customer");
        let event = b"data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"delete_customer\"},{\"name\":\"lookup\",\"description\":\"\xea\"}]}}\n\n";
        let out = filter.data(Bytes::from_static(event)).unwrap();
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(!out.contains("delete_customer"), "{out}");
        assert!(out.contains("\"lookup\""), "{out}");
        assert!(out.contains('\u{fffd}'), "{out}");
    }

    #[test]
    fn events_passed_on_keep_their_blank_line() {
        // Found by the `tool_list_filter` fuzz target: an event ending in `\r\r` came out ending in
        // `\r\n`, with no blank line; the client joined its data `{` to the next event's and read a list.
        let mut filter = ToolListFilter::new(Framing::EventStream, |name: &str| name != "b");
        let stream = "data: {\r\rdata\ndata:\"result\":{\"tools\":[{\"name\":\"b\"}]}}\r\r";
        assert_eq!(run(&mut filter, &[stream, "\n"]), stream.to_owned() + "\n");
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_first_event() {
        // Found by the `tool_list_filter` fuzz target (seeded with a BOM): the BOM made the first line
        // `\u{feff}data: ...`, no data line to the filter; the client drops the BOM and reads the list.
        let mut filter = ToolListFilter::new(Framing::EventStream, |name: &str| name != "delete_customer");
        let out = run(&mut filter, &["\u{feff}", &format!("data: {LIST}\n\n")]);
        assert!(out.starts_with("\u{feff}data: {"), "{out}");
        assert!(!out.contains("delete_customer"), "{out}");
        // Split inside the BOM, and a stream without one.
        let mut filter = ToolListFilter::new(Framing::EventStream, |_: &str| true);
        assert_eq!(filter.data(Bytes::from_static(b"\xef\xbb")).unwrap(), "");
        assert_eq!(
            filter.data(Bytes::from_static(b"\xbf: x\n\n")).unwrap(),
            "\u{feff}: x\n\n"
        );
        let mut filter = ToolListFilter::new(Framing::EventStream, |_: &str| true);
        let out = filter.data(Bytes::from_static(b"\xef: x\n\n")).unwrap();
        assert_eq!(out, &b"\xef: x\n\n"[..]);
    }

    #[test]
    fn an_event_ended_by_the_bodys_last_byte_is_filtered_and_an_unterminated_one_dropped() {
        // A lone CR as the body's last byte ends the event's blank line for a client at the end of the
        // body: the list is passed on filtered (it was dropped, as if unterminated).
        let mut filter = ToolListFilter::new(Framing::EventStream, |name: &str| name != "delete_customer");
        let out = run(&mut filter, &[&format!("data: {LIST}\r\r")]);
        assert!(
            out.starts_with("data: {") && out.contains("lookup_customer"),
            "{out}"
        );
        assert!(!out.contains("delete_customer"), "{out}");
        let mut filter = ToolListFilter::new(Framing::EventStream, |_: &str| true);
        assert_eq!(run(&mut filter, &[": x\n\ndata: {LIST}\n"]), ": x\n\n");
    }

    #[test]
    fn oversized_tool_lists_are_cut_off() {
        let mut filter = ToolListFilter::new(Framing::Json, |_: &str| true);
        let big = Bytes::from(vec![b' '; MAX_TOOLS_LIST_BYTES + 1]);
        assert!(filter.data(big.clone()).is_err());
        let mut filter = ToolListFilter::new(Framing::EventStream, |_: &str| true);
        assert!(filter.data(big).is_err());
        let mut filter = ToolListFilter::new(Framing::Json, |_: &str| true);
        filter.data(Bytes::from_static(b"{not json")).unwrap();
        assert!(filter.end().is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), text in "\\PC*") {
            let _ = McpRequest::parse(&body);
            let mut filter = ToolListFilter::new(Framing::EventStream, |_: &str| false);
            let _ = filter.data(Bytes::from(body.clone()));
            let _ = filter.data(Bytes::from(text.clone().into_bytes()));
            let _ = filter.end();
            let mut filter = ToolListFilter::new(Framing::Json, |_: &str| false);
            let _ = filter.data(Bytes::from(body));
            let _ = filter.end();
        }
    }
}
