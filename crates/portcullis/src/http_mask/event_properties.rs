//! Randomised properties of [`EventStream`]: read back as a client reads it, the masked stream
//! dispatches the upstream's events, each with its data masked, and never depends on the chunks.
//!
//! Inputs: event streams from a small generator (a leading byte order mark or not; `data`, comment and
//! other field lines; all three line ends; JSON payloads split over `data` lines, with field-rule values
//! and bytes that are not UTF-8; text payloads with findings; events left open at the end), some of them
//! then mutated byte-wise.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::tests::rules;
use super::*;

// The property tests' random source of `portcullis-mask`, one copy for both crates.
#[path = "../../../portcullis-mask/tests/rng/mod.rs"]
mod rng;

use rng::Rng;

/// A value only the field rule (`*.email`) masks: no detector of [`rules`] finds it in text.
const MARKER: &str = "ada@example.com";

/// Values for JSON strings, some of them not UTF-8 (a lone continuation byte, a cut sequence, an encoded
/// surrogate) or holding a byte order mark or a finding.
const STRINGS: &[&[u8]] = &[
    b"",
    b"plain",
    b"Zo\xc3\xab",
    b"\xff",
    b"caf\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"card 4111 1111 1111 1111",
];
/// Lines that are not `data` to a client, or are on purpose only nearly so.
const OTHER_LINES: &[&[u8]] = &[
    b"event: update",
    b"id: 42",
    b"retry: 1000",
    b": keep-alive",
    b":",
    b"foo",
    b" data: {\"email\":\"ada@example.com\"}",
    b"Data: x",
    b"\xef\xbb\xbfdata: {\"email\":\"ada@example.com\"}",
    b"data\xff: x",
    b"event: 4111 1111 1111 1111",
];
const EOLS: &[&[u8]] = &[b"\n", b"\r", b"\r\n"];
/// JSON white space, a line break among it (the payload then spans two `data` lines).
const SPACE: &[&[u8]] = &[b"", b"", b" ", b"\n", b"\t", b"\n  "];
/// Bytes a mutation inserts: line ends, field syntax, invalid UTF-8, the byte order mark's.
const NOISE: &[u8] = b"\r\n: d\xff\xef\xbb\xbf{\"";

#[test]
fn clients_read_the_masked_events_of_random_streams() {
    let mut rng = Rng(0x5eed_e7e7_5eed_e7e7);
    for round in 0..3_000 {
        let mut input = stream(&mut rng);
        if round % 4 == 3 {
            for _ in 0..=rng.below(3) {
                let at = rng.below(input.len() + 1);
                input.insert(at, *rng.pick(NOISE));
            }
        }
        check(&mut rng, &input, round);
    }
}

/// The three properties of one input.
fn check(rng: &mut Rng, input: &[u8], round: usize) {
    let shown = input.escape_ascii().to_string();
    let whole = run(input, &mut std::iter::repeat(input.len().max(1)));
    assert_eq!(
        run(input, &mut std::iter::repeat(1)),
        whole,
        "round {round}: byte by byte differs from whole: {shown}"
    );
    let mut sizes = std::iter::from_fn(|| Some(rng.below(8) + 1));
    assert_eq!(
        run(input, &mut sizes),
        whole,
        "round {round}: chunking changed the output: {shown}"
    );

    let sent = client_events(input);
    let received = client_events(&whole);
    let out = whole.escape_ascii();
    assert_eq!(
        received.len(),
        sent.len(),
        "round {round}: the client read another number of events\n in: {shown}\nout: {out}"
    );
    for (got, data) in received.iter().zip(&sent) {
        // The payload masking itself is the maskers' to prove (their own property tests): here the
        // framing, that the gateway masked the very payload the client reads.
        let want = EventStream::new(rules()).mask_payload(data.as_bytes()).unwrap();
        assert_eq!(
            *got,
            String::from_utf8_lossy(&want),
            "round {round}: event {data:?}\n in: {shown}\nout: {out}"
        );
        if serde_json::from_str::<serde_json::Value>(data).is_ok() {
            assert!(
                !got.contains(MARKER),
                "round {round}: a JSON payload passed its field-rule value: {got:?}\n in: {shown}"
            );
        }
    }
}

/// The output of an [`EventStream`] pushed `input` in pieces of the sizes `sizes` yields.
fn run(input: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> Vec<u8> {
    let mut stream = EventStream::new(rules());
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        stream.push(piece, &mut out).unwrap();
        rest = tail;
    }
    stream.finish(&mut out).unwrap();
    out
}

fn stream(rng: &mut Rng) -> Vec<u8> {
    let mut s = Vec::new();
    if rng.below(3) == 0 {
        s.extend_from_slice(BOM);
    }
    for _ in 0..rng.below(5) {
        event(rng, &mut s);
    }
    s
}

/// One event: its payload over `data` lines, other lines among them, then (mostly) a blank line.
fn event(rng: &mut Rng, s: &mut Vec<u8>) {
    let payload = payload(rng);
    let mut lines: Vec<Vec<u8>> = payload
        .split(|b| *b == b'\n')
        .map(|part| match (part.is_empty(), rng.below(3)) {
            (true, 0) => b"data".to_vec(),
            (_, 1) => [&b"data:"[..], part].concat(),
            _ => [&b"data: "[..], part].concat(),
        })
        .collect();
    for _ in 0..rng.below(3) {
        let at = rng.below(lines.len() + 1);
        lines.insert(at, rng.pick(OTHER_LINES).to_vec());
    }
    for line in lines {
        s.extend_from_slice(&line);
        s.extend_from_slice(rng.pick(EOLS));
    }
    // Mostly one blank line; sometimes none (the event runs on, or is left open at the end) or two.
    for _ in 0..[1, 1, 1, 1, 0, 2][rng.below(6)] {
        s.extend_from_slice(rng.pick(EOLS));
    }
}

fn payload(rng: &mut Rng) -> Vec<u8> {
    let mut p = Vec::new();
    match rng.below(6) {
        0 => p.extend_from_slice(b"card 4111 1111 1111 1111\nand [DONE]"),
        1 => p.extend_from_slice(rng.pick::<&[u8]>(&[b"", b"[DONE]", b"ada@example.com"])),
        // Not JSON: a client reads it as text too.
        2 => p.extend_from_slice(b"{\"email\":\"ada@example.com\""),
        _ => json(rng, &mut p, 0),
    }
    p
}

/// A JSON value: objects and arrays holding `email` fields and strings from [`STRINGS`].
fn json(rng: &mut Rng, p: &mut Vec<u8>, depth: usize) {
    let space = |rng: &mut Rng, p: &mut Vec<u8>| p.extend_from_slice(rng.pick(SPACE));
    match if depth > 3 { 0 } else { rng.below(4) } {
        0 => {
            p.push(b'"');
            p.extend_from_slice(rng.pick(STRINGS));
            p.push(b'"');
        }
        1 => {
            p.push(b'[');
            space(rng, p);
            json(rng, p, depth + 1);
            space(rng, p);
            p.push(b']');
        }
        _ => {
            p.push(b'{');
            space(rng, p);
            p.extend_from_slice(b"\"email\":");
            space(rng, p);
            p.push(b'"');
            p.extend_from_slice(MARKER.as_bytes());
            p.extend_from_slice(rng.pick(STRINGS));
            p.push(b'"');
            space(rng, p);
            p.extend_from_slice(b",\"note\":");
            json(rng, p, depth + 1);
            space(rng, p);
            p.push(b'}');
        }
    }
}

/// The `data` of each event a client dispatches from `stream`, by the WHATWG `EventSource` parsing
/// rules: UTF-8 decoded with replacement, a leading byte order mark dropped, lines ended by CRLF, LF or
/// CR, `data` lines joined by LF, an event dispatched at a blank line when it has data.
///
/// A copy of `client_events` in `crates/portcullis-http/fuzz/fuzz_targets/tool_list_filter.rs`: that
/// one lives in a fuzz target (its own crate, outside the workspace, built with nightly), which this
/// crate's tests cannot use, and moving it out for thirty lines would tie the fuzz crate's layout to
/// this one's.
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
