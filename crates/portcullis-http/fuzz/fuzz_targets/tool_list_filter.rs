//! Fuzzes `mcp::ToolListFilter`, the `tools/list` response filter, on arbitrary response bodies (plain
//! JSON and `text/event-stream`) fed in arbitrary chunks.
//!
//! The first input byte picks the framing (bit 0) and the chunk sizes (the rest); the second, which tool
//! names the principal may call (by the parity of the name's bytes); the rest is the body.
//!
//! Oracles: the output never depends on the chunks; a JSON body comes out as the input with every
//! `result.tools` list reduced to the callable tools (read back as JSON and compared with a reference
//! filter), byte for byte when it lists no tools, and is refused when it is not JSON. An event stream,
//! read back as a client reads it (the SSE rules: UTF-8 decoded with replacement, a leading BOM dropped,
//! `data` lines joined), never lists a tool the principal may not call, and lists only tools the input
//! listed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis_http::ResponseFilter;
use portcullis_http::mcp::{Framing, ToolListFilter};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let [mode, salt, body @ ..] = data else {
        return;
    };
    let framing = if mode & 1 == 0 {
        Framing::Json
    } else {
        Framing::EventStream
    };
    let salt = *salt;

    let whole = run(framing, salt, body, &mut std::iter::repeat(body.len().max(1)));
    let bytewise = run(framing, salt, body, &mut std::iter::repeat(1));
    assert_eq!(bytewise, whole, "byte by byte differs from whole");
    let mut seed = u32::from(*mode >> 1) | 0x100;
    let mut sizes = std::iter::from_fn(|| {
        // xorshift32: piece sizes 1..=16
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        Some((seed % 16) as usize + 1)
    });
    assert_eq!(
        run(framing, salt, body, &mut sizes),
        whole,
        "chunking changed the output"
    );

    match framing {
        Framing::Json => check_json(salt, body, whole),
        Framing::EventStream => check_events(
            salt,
            body,
            &whole.expect("an event stream this small is never refused"),
        ),
    }
});

/// Whether the principal may call `name`: half the names, which half chosen by `salt`.
fn allowed(salt: u8, name: &str) -> bool {
    name.bytes().fold(salt, u8::wrapping_add) & 1 == 0
}

/// The filter's output for `body` pushed in pieces of the sizes `sizes` yields; `Err` when refused.
fn run(
    framing: Framing,
    salt: u8,
    body: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
) -> Result<Vec<u8>, String> {
    let mut filter = ToolListFilter::new(framing, move |name: &str| allowed(salt, name));
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        let written = filter
            .data(Bytes::copy_from_slice(piece))
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&written);
        rest = tail;
    }
    if let Some(tail) = filter.end().map_err(|e| e.to_string())? {
        out.extend_from_slice(&tail);
    }
    Ok(out)
}

/// The reference filter: every message's `result.tools` array keeps the tools with a callable string
/// name. Whether any message listed tools.
fn reference_filter(salt: u8, value: &mut Value) -> bool {
    let messages: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        other => vec![other],
    };
    let mut listed = false;
    for message in messages {
        if let Some(Value::Array(tools)) = message.get_mut("result").and_then(|r| r.get_mut("tools")) {
            listed = true;
            tools.retain(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| allowed(salt, n))
            });
        }
    }
    listed
}

fn check_json(salt: u8, body: &[u8], out: Result<Vec<u8>, String>) {
    if body.is_empty() {
        assert_eq!(out, Ok(Vec::new()));
        return;
    }
    let Ok(mut want) = serde_json::from_slice::<Value>(body) else {
        assert!(out.is_err(), "a body that is not JSON was passed");
        return;
    };
    let out = out.expect("a JSON body was refused");
    if reference_filter(salt, &mut want) {
        let got: Value = serde_json::from_slice(&out).expect("a filtered tool list is JSON");
        assert_eq!(got, want);
    } else {
        assert_eq!(out, body, "a body without tool lists was changed");
    }
}

/// The `data` of each event a client dispatches from `stream` (the WHATWG `EventSource` parsing rules).
fn client_events(stream: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut events = Vec::new();
    let mut data = String::new();
    let mut rest = text;
    // Only complete lines count: a stream that ends mid-line or mid-event dispatches nothing more.
    while let Some(at) = rest.find(['\r', '\n']) {
        let line = &rest[..at];
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop(); // the last line's `\n`
                events.push(std::mem::take(&mut data));
            }
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            data.push_str(value);
            data.push('\n');
        }
    }
    events
}

/// The tool names of every `result.tools` list in an event's data, when the data is JSON.
fn listed_tools(data: &str) -> Vec<Option<String>> {
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return Vec::new();
    };
    let messages: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut names = Vec::new();
    for message in messages {
        if let Some(Value::Array(tools)) = message.get("result").and_then(|r| r.get("tools")) {
            names.extend(
                tools
                    .iter()
                    .map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned)),
            );
        }
    }
    names
}

fn check_events(salt: u8, body: &[u8], out: &[u8]) {
    let mut offered: Vec<String> = client_events(body)
        .iter()
        .flat_map(|d| listed_tools(d))
        .flatten()
        .collect();
    for data in client_events(out) {
        for name in listed_tools(&data) {
            let name = name.unwrap_or_else(|| panic!("a tool without a name reached the client: {data:?}"));
            assert!(
                allowed(salt, &name),
                "a tool the principal may not call reached the client: {name:?} in {data:?}"
            );
            let Some(at) = offered.iter().position(|n| *n == name) else {
                panic!("a tool the input did not list reached the client: {name:?}");
            };
            offered.swap_remove(at);
        }
    }
}
