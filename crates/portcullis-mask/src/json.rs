//! Streaming JSON masking: a body fed in chunks comes out masked, byte for byte where nothing is masked.
//!
//! A hand-written tokenizer over bytes (docs/masking.md says why no crate): structure, white space,
//! numbers and unmasked strings are copied as they are read; a string (or number) that must be inspected
//! is held until it ends, up to `max_value_bytes`; the key path is never stored, only the partial field
//! matches of each open container (`field.rs`). Memory per body: one value, one key, and a stack of at
//! most `max_depth` frames.

use std::sync::Arc;

use crate::detector::{Counts, Reason};
use crate::field::Live;
use crate::plan::Applied;
use crate::rules::ConnectionMask;
use crate::strategy::{DEFAULT_REDACTION, Strategy};

/// Bounds of one [`JsonMasker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// The longest string or number (in bytes as written, escapes included) held to be inspected. A
    /// longer value that must be inspected (by detectors, or by a field rule whose strategy reads the
    /// value) is replaced whole by `"[redacted]"` and counted as [`Reason::Oversized`]; a longer object
    /// key is an error (keys decide which fields match).
    pub max_value_bytes: usize,
    /// The deepest nesting of objects and arrays accepted; deeper is an error.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> JsonLimits {
        JsonLimits {
            max_value_bytes: 1 << 20,
            max_depth: 128,
        }
    }
}

/// Why a body could not be masked. The fault is the body's sender (the upstream): the output written so
/// far is a masked prefix, and the response must be ended as failed, not completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON at byte {offset}: {what}")]
    Syntax { offset: u64, what: &'static str },
    #[error("JSON nested deeper than {max} levels at byte {offset}")]
    TooDeep { offset: u64, max: usize },
    /// `offset` is where the key starts (its opening quote).
    #[error("JSON object key longer than {max} bytes at byte {offset}")]
    KeyTooLong { offset: u64, max: usize },
    #[error("JSON body ended inside a value")]
    Truncated,
}

/// Masks one JSON body streamed in chunks: [`JsonMasker::push`] each chunk, then
/// [`JsonMasker::finish`]. What a push writes never depends on where the chunks were split.
#[derive(Debug)]
pub struct JsonMasker {
    mask: Arc<ConnectionMask>,
    limits: JsonLimits,
    state: State,
    stack: Vec<Frame>,
    /// The partial field matches of the open containers (each frame owns a range), then those of the
    /// value about to be read.
    live: Vec<Live>,
    scratch_live: Vec<Live>,
    /// The next value: the field rule that masks it (its own or an ancestor's), and its partial matches.
    next: Next,
    token: Token,
    scratch: Vec<u8>,
    counts: Counts,
    /// Bytes consumed before the current chunk (for error offsets).
    offset: u64,
    /// Where the key being read starts (for its error).
    key_start: u64,
    failed: Option<JsonError>,
}

#[derive(Debug, Clone, Copy)]
struct Next {
    masked: Option<usize>,
    live: (usize, usize),
    /// The range is the value's own (a member's matches, the root's), not its array's shared one.
    owned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    container: Container,
    /// The field rule masking every scalar inside.
    masked: Option<usize>,
    /// This container's partial matches: `live[start..end]`.
    start: usize,
    end: usize,
}

/// What happens to a scalar value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing applies: copied as read.
    Pass,
    /// Read by the detectors once whole.
    Scan,
    /// Masked whole by this field rule's strategy.
    Field(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value: at the start, after `:`, after `,` in an array.
    Value,
    /// After `[`: a value or `]`.
    FirstElement,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object.
    Key,
    /// After a key.
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    Next,
    /// After the top-level value: white space only.
    End,
    String {
        role: Role,
        escape: Escape,
    },
    Number {
        num: Num,
        mode: Mode,
    },
    Literal {
        word: &'static [u8],
        read: usize,
        mode: Mode,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    Value(Mode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    Unicode { digits: u8, code: u32 },
}

/// Where a number is in its grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    fn start(b: u8) -> Option<Num> {
        match b {
            b'-' => Some(Num::Minus),
            b'0' => Some(Num::Zero),
            b'1'..=b'9' => Some(Num::Int),
            _ => None,
        }
    }

    fn next(self, b: u8) -> Option<Num> {
        let digit = b.is_ascii_digit();
        match (self, b) {
            (Num::Minus, b'0') => Some(Num::Zero),
            (Num::Minus, _) if digit => Some(Num::Int),
            (Num::Int, _) if digit => Some(Num::Int),
            (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::E),
            (Num::Dot | Num::Frac, _) if digit => Some(Num::Frac),
            (Num::E, b'+' | b'-') => Some(Num::ESign),
            (Num::E | Num::ESign | Num::Exp, _) if digit => Some(Num::Exp),
            _ => None,
        }
    }

    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

/// The string or number being held.
#[derive(Debug, Default)]
struct Token {
    /// As written (a string without its quotes).
    raw: Vec<u8>,
    /// Unescaped, once an escape was seen (before that, `raw` is the text).
    text: Vec<u8>,
    escaped: bool,
    /// Held at all (pass-through and fixed-text values are not).
    hold: bool,
    /// Longer than `max_value_bytes`: no longer held.
    overflow: bool,
    /// A high surrogate waiting for its low half.
    high: Option<u32>,
}

impl Token {
    fn reset(&mut self, hold: bool) {
        self.raw.clear();
        self.text.clear();
        self.escaped = false;
        self.hold = hold;
        self.overflow = false;
        self.high = None;
    }

    /// The value's text (unescaped).
    fn value(&self) -> &[u8] {
        if self.escaped { &self.text } else { &self.raw }
    }

    /// Appends bytes as written (and as text: they hold no escape); false once over `max`.
    fn extend(&mut self, bytes: &[u8], max: usize) -> bool {
        if !self.hold || self.overflow {
            return !self.overflow;
        }
        if self.raw.len() + bytes.len() > max {
            self.overflow = true;
            self.raw = Vec::new();
            self.text = Vec::new();
            return false;
        }
        self.flush_high();
        self.raw.extend_from_slice(bytes);
        if self.escaped {
            self.text.extend_from_slice(bytes);
        }
        true
    }

    /// A backslash begins an escape: from here on the text differs from what is written.
    fn begin_escape(&mut self) {
        if self.hold && !self.overflow && !self.escaped {
            self.escaped = true;
            self.text.clear();
            self.text.extend_from_slice(&self.raw);
        }
    }

    /// One unescaped char (a code point; a lone surrogate becomes U+FFFD).
    fn push_code(&mut self, code: u32) {
        if !self.hold || self.overflow {
            return;
        }
        let pending = self.high.take();
        let c = match (pending, code) {
            (Some(high), 0xdc00..=0xdfff) => {
                char::from_u32(0x10000 + ((high - 0xd800) << 10) + (code - 0xdc00))
            }
            (pending, _) => {
                if pending.is_some() {
                    self.push_char(char::REPLACEMENT_CHARACTER);
                }
                if (0xd800..=0xdbff).contains(&code) {
                    self.high = Some(code);
                    return;
                }
                char::from_u32(code)
            }
        };
        self.push_char(c.unwrap_or(char::REPLACEMENT_CHARACTER));
    }

    fn push_char(&mut self, c: char) {
        self.text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }

    /// A high surrogate not followed by its low half is U+FFFD.
    fn flush_high(&mut self) {
        if self.high.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER);
        }
    }
}

impl JsonMasker {
    /// A masker for one body, masking by `mask`'s field rules and detectors.
    pub fn new(mask: Arc<ConnectionMask>, limits: JsonLimits) -> JsonMasker {
        let mut live = Vec::new();
        mask.field_matcher().root(&mut live);
        let next = Next {
            masked: None,
            live: (0, live.len()),
            owned: true,
        };
        JsonMasker {
            mask,
            limits,
            state: State::Value,
            stack: Vec::new(),
            live,
            scratch_live: Vec::new(),
            next,
            token: Token::default(),
            scratch: Vec::new(),
            counts: Counts::default(),
            offset: 0,
            key_start: 0,
            failed: None,
        }
    }

    /// What was masked so far, by reason.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Masks the next chunk of the body, appending what can be written to `out`. After an error the
    /// masker accepts nothing more (every later call returns the same error).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut i = 0;
        while i < chunk.len() {
            match self.step(chunk, i, out) {
                Ok(next) => i = next,
                Err(e) => {
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// Ends the body: writes a number still open at the top level; an error when the body stopped inside
    /// a value. A body of white space only is accepted (there is nothing to mask in it).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = match self.state {
            State::End => Ok(()),
            State::Value if self.stack.is_empty() => Ok(()),
            State::Number { num, mode } if self.stack.is_empty() && num.complete() => {
                self.end_number(mode, out);
                Ok(())
            }
            _ => Err(JsonError::Truncated),
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn error(&self, at: usize, what: &'static str) -> JsonError {
        JsonError::Syntax {
            offset: self.offset + at as u64,
            what,
        }
    }

    /// Reads from `chunk[i]` on; returns where to continue.
    fn step(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>) -> Result<usize, JsonError> {
        let Some(&b) = chunk.get(i) else {
            return Ok(chunk.len());
        };
        match self.state {
            State::String { role, escape } => return self.string(chunk, i, role, escape, out),
            State::Number { num, mode } => {
                match num.next(b) {
                    Some(num) => {
                        self.state = State::Number { num, mode };
                        self.scalar_byte(b, mode, out);
                    }
                    None if num.complete() => {
                        // The byte after the number is read again in the state after the value.
                        self.end_number(mode, out);
                        return Ok(i);
                    }
                    None => return Err(self.error(i, "malformed number")),
                }
                return Ok(i + 1);
            }
            State::Literal { word, read, mode } => {
                if word.get(read) != Some(&b) {
                    return Err(self.error(i, "malformed literal"));
                }
                if !matches!(mode, Mode::Field(_)) {
                    out.push(b);
                }
                if read + 1 == word.len() {
                    self.end_literal(word, mode, out);
                } else {
                    self.state = State::Literal {
                        word,
                        read: read + 1,
                        mode,
                    };
                }
                return Ok(i + 1);
            }
            _ => {}
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
            return Ok(i + 1);
        }
        match (self.state, b) {
            (State::Value | State::FirstElement, _) => self.value(chunk, i, out),
            (State::FirstKey | State::Key, b'"') => {
                self.token.reset(true);
                self.key_start = self.offset + i as u64;
                self.state = State::String {
                    role: Role::Key,
                    escape: Escape::None,
                };
                Ok(i + 1)
            }
            (State::FirstKey, b'}') | (State::Next, b'}' | b']') => {
                let want = if b == b'}' {
                    Container::Object
                } else {
                    Container::Array
                };
                if self.stack.last().map(|f| f.container) != Some(want) {
                    return Err(self.error(i, "mismatched closing bracket"));
                }
                out.push(b);
                self.close();
                Ok(i + 1)
            }
            (State::Colon, b':') => {
                out.push(b);
                self.state = State::Value;
                Ok(i + 1)
            }
            (State::Next, b',') => {
                out.push(b);
                match self.stack.last().copied() {
                    Some(f) if f.container == Container::Object => self.state = State::Key,
                    Some(f) => {
                        self.state = State::Value;
                        self.next = Next {
                            masked: f.masked,
                            live: (f.start, f.end),
                            owned: false,
                        };
                    }
                    None => return Err(self.error(i, "comma outside a container")),
                }
                Ok(i + 1)
            }
            (State::End, _) => Err(self.error(i, "data after the JSON value")),
            _ => Err(self.error(i, "unexpected byte")),
        }
    }

    /// The first byte of a value (or `]` of an empty array).
    fn value(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>) -> Result<usize, JsonError> {
        let b = chunk.get(i).copied().unwrap_or(0);
        let mode = match self.next.masked {
            Some(rule) => Mode::Field(rule),
            None if self.mask.detector_rules().is_some() => Mode::Scan,
            None => Mode::Pass,
        };
        match b {
            b']' if self.state == State::FirstElement => {
                out.push(b);
                self.close();
            }
            b'{' | b'[' => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(JsonError::TooDeep {
                        offset: self.offset + i as u64,
                        max: self.limits.max_depth,
                    });
                }
                out.push(b);
                self.open(if b == b'{' {
                    Container::Object
                } else {
                    Container::Array
                });
            }
            b'"' => {
                let hold = match mode {
                    Mode::Pass => false,
                    Mode::Scan => true,
                    Mode::Field(rule) => self
                        .mask
                        .field_strategy(rule)
                        .is_some_and(|s| !s.is_null() && s.fixed_text().is_none()),
                };
                if mode == Mode::Pass {
                    out.push(b);
                }
                self.token.reset(hold);
                self.state = State::String {
                    role: Role::Value(mode),
                    escape: Escape::None,
                };
            }
            b't' | b'f' | b'n' => {
                let word: &'static [u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !matches!(mode, Mode::Field(_)) {
                    out.push(b);
                }
                self.state = State::Literal { word, read: 1, mode };
            }
            _ => {
                let Some(num) = Num::start(b) else {
                    return Err(self.error(i, "expected a value"));
                };
                self.token.reset(mode != Mode::Pass);
                self.scalar_byte(b, mode, out);
                self.state = State::Number { num, mode };
            }
        }
        Ok(i + 1)
    }

    /// A byte of a number: written, or held.
    fn scalar_byte(&mut self, b: u8, mode: Mode, out: &mut Vec<u8>) {
        if mode == Mode::Pass {
            out.push(b);
        } else {
            self.token.extend(&[b], self.limits.max_value_bytes);
        }
    }

    /// Opens an object or array (its opening byte is written): a frame with its field rule and matches.
    fn open(&mut self, container: Container) {
        let matcher = self.mask.field_matcher();
        let mut masked = self.next.masked;
        let (start, end) = if masked.is_some() || matcher.is_empty() {
            (self.live.len(), self.live.len())
        } else {
            let (s, e) = self.next.live;
            if self.next.owned && e == self.live.len() && s <= e {
                (s, e)
            } else {
                // The matches of an array's elements: copied, the element gets its own.
                let from = self.live.len();
                let copy: Vec<Live> = self.live.get(s..e).unwrap_or_default().to_vec();
                self.live.extend(copy);
                (from, self.live.len())
            }
        };
        if container == Container::Array && masked.is_none() {
            masked = self
                .live
                .get_mut(start..end)
                .and_then(|live| matcher.enter_array(live));
        }
        self.stack.push(Frame {
            container,
            masked,
            start,
            end,
        });
        match container {
            Container::Object => self.state = State::FirstKey,
            Container::Array => {
                self.state = State::FirstElement;
                self.next = Next {
                    masked,
                    live: (start, end),
                    owned: false,
                };
            }
        }
    }

    /// Closes the innermost container (its closing byte is written).
    fn close(&mut self) {
        if let Some(frame) = self.stack.pop() {
            self.live.truncate(frame.start);
        }
        self.after_value();
    }

    fn after_value(&mut self) {
        self.state = if self.stack.is_empty() {
            State::End
        } else {
            State::Next
        };
    }

    /// Reads string bytes from `chunk[i]` on, to the closing quote or the end of the chunk.
    fn string(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        role: Role,
        mut escape: Escape,
        out: &mut Vec<u8>,
    ) -> Result<usize, JsonError> {
        let pass = role == Role::Value(Mode::Pass);
        let max = self.limits.max_value_bytes;
        while let Some(&b) = chunk.get(i) {
            match escape {
                Escape::None => {
                    let rest = chunk.get(i..).unwrap_or_default();
                    let run = rest
                        .iter()
                        .position(|&x| x == b'"' || x == b'\\' || x < 0x20)
                        .unwrap_or(rest.len());
                    if run > 0 {
                        let plain = rest.get(..run).unwrap_or_default();
                        if pass {
                            out.extend_from_slice(plain);
                        } else if !self.token.extend(plain, max) && role == Role::Key {
                            return Err(self.key_too_long());
                        }
                        i += run;
                        continue;
                    }
                    match b {
                        b'"' => {
                            self.token.flush_high();
                            if pass {
                                out.push(b);
                            }
                            self.end_string(role, out);
                            return Ok(i + 1);
                        }
                        b'\\' => {
                            self.token.begin_escape();
                            escape = Escape::Backslash;
                        }
                        _ => return Err(self.error(i, "control character in a string")),
                    }
                }
                Escape::Backslash => {
                    let decoded = match b {
                        b'"' | b'\\' | b'/' => Some(b),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(self.error(i, "invalid escape")),
                    };
                    escape = match decoded {
                        Some(x) => {
                            self.token.push_code(u32::from(x));
                            Escape::None
                        }
                        None => Escape::Unicode { digits: 0, code: 0 },
                    };
                }
                Escape::Unicode { digits, code } => {
                    let Some(hex) = char::from(b).to_digit(16) else {
                        return Err(self.error(i, "invalid \\u escape"));
                    };
                    let code = code * 16 + hex;
                    escape = if digits == 3 {
                        self.token.push_code(code);
                        Escape::None
                    } else {
                        Escape::Unicode {
                            digits: digits + 1,
                            code,
                        }
                    };
                }
            }
            // The escape's bytes as written: passed on, or held.
            if pass {
                out.push(b);
            } else if !self.hold_escape_byte(b) && role == Role::Key {
                return Err(self.key_too_long());
            }
            i += 1;
        }
        self.state = State::String { role, escape };
        Ok(i)
    }

    /// A byte of an escape, held as written (its text was pushed already); false once over the limit.
    fn hold_escape_byte(&mut self, b: u8) -> bool {
        let t = &mut self.token;
        if !t.hold || t.overflow {
            return !t.overflow;
        }
        if t.raw.len() >= self.limits.max_value_bytes {
            t.overflow = true;
            t.raw = Vec::new();
            t.text = Vec::new();
            return false;
        }
        t.raw.push(b);
        true
    }

    fn key_too_long(&self) -> JsonError {
        JsonError::KeyTooLong {
            offset: self.key_start,
            max: self.limits.max_value_bytes,
        }
    }

    fn end_string(&mut self, role: Role, out: &mut Vec<u8>) {
        match role {
            Role::Key => self.end_key(out),
            Role::Value(Mode::Pass) => self.after_value(),
            Role::Value(Mode::Scan) => {
                self.scan_value(true, out);
                self.after_value();
            }
            Role::Value(Mode::Field(rule)) => {
                self.field_value(rule, None, out);
                self.after_value();
            }
        }
    }

    /// A key read whole: the member's field matches, then the key written (masked by detectors, which
    /// read keys too: maps are often keyed by emails or addresses).
    fn end_key(&mut self, out: &mut Vec<u8>) {
        let frame = self.stack.last().copied();
        let inherited = frame.and_then(|f| f.masked);
        let matcher = self.mask.field_matcher();
        let mut next = Next {
            masked: inherited,
            live: (self.live.len(), self.live.len()),
            owned: true,
        };
        if let Some(f) = frame
            && inherited.is_none()
            && !matcher.is_empty()
        {
            let key = String::from_utf8_lossy(self.token.value());
            let mut scratch = std::mem::take(&mut self.scratch_live);
            scratch.clear();
            next.masked = matcher.enter_key(
                self.live.get(f.start..f.end).unwrap_or_default(),
                &key,
                &mut scratch,
            );
            self.live.truncate(f.end);
            self.live.extend_from_slice(&scratch);
            self.scratch_live = scratch;
            next.live = (f.end, self.live.len());
        }
        self.next = next;
        self.scratch.clear();
        let found = self
            .mask
            .detector_rules()
            .is_some_and(|d| d.mask_text_into(self.token.value(), &mut self.counts, &mut self.scratch));
        out.push(b'"');
        if found {
            escape_into(&self.scratch, out);
        } else {
            out.extend_from_slice(&self.token.raw);
        }
        out.push(b'"');
        self.state = State::Colon;
    }

    /// A held string or number, read by the detectors: unchanged (as written), `null` (a finding's
    /// strategy is `null`), or the masked text as a string.
    fn scan_value(&mut self, quoted: bool, out: &mut Vec<u8>) {
        let Some(rules) = self.mask.detector_rules() else {
            return write_raw(&self.token.raw, quoted, out);
        };
        if self.token.overflow {
            self.counts.add(Reason::Oversized, 1);
            return write_string(DEFAULT_REDACTION.as_bytes(), out);
        }
        self.scratch.clear();
        let value = self.token.value();
        // Text that is not UTF-8 (invalid input) is read lossily, so nothing in it escapes the scan.
        let applied = match std::str::from_utf8(value) {
            Ok(_) => rules.mask_cell(value, &mut self.counts, &mut self.scratch),
            Err(_) => {
                let lossy = String::from_utf8_lossy(value).into_owned();
                rules.mask_cell(lossy.as_bytes(), &mut self.counts, &mut self.scratch)
            }
        };
        match applied {
            Applied::Unchanged => write_raw(&self.token.raw, quoted, out),
            Applied::Null => out.extend_from_slice(b"null"),
            Applied::Written => write_string(&self.scratch, out),
        }
    }

    /// A scalar masked whole by a field rule: `null`, or a string (numbers and booleans become strings).
    /// `literal` is the value of a `true` or `false`; otherwise the token holds it.
    fn field_value(&mut self, rule: usize, literal: Option<&[u8]>, out: &mut Vec<u8>) {
        let Some(strategy) = self.mask.field_strategy(rule) else {
            return out.extend_from_slice(b"null");
        };
        if strategy.is_null() {
            self.counts.add(Reason::Field, 1);
            return out.extend_from_slice(b"null");
        }
        if let Some(fixed) = strategy.fixed_text() {
            self.counts.add(Reason::Field, 1);
            return write_string(fixed.as_bytes(), out);
        }
        if self.token.overflow && literal.is_none() {
            self.counts.add(Reason::Oversized, 1);
            return write_string(DEFAULT_REDACTION.as_bytes(), out);
        }
        self.counts.add(Reason::Field, 1);
        self.scratch.clear();
        let value = literal.unwrap_or(self.token.value());
        mask_whole(strategy, &self.mask, value, &mut self.scratch);
        write_string(&self.scratch, out);
    }

    fn end_number(&mut self, mode: Mode, out: &mut Vec<u8>) {
        match mode {
            Mode::Pass => {}
            Mode::Scan => self.scan_value(false, out),
            Mode::Field(rule) => self.field_value(rule, None, out),
        }
        self.after_value();
    }

    fn end_literal(&mut self, word: &'static [u8], mode: Mode, out: &mut Vec<u8>) {
        if let Mode::Field(rule) = mode {
            if word == b"null" {
                // Nothing to hide in a null.
                out.extend_from_slice(word);
            } else {
                self.field_value(rule, Some(word), out);
            }
        }
        self.after_value();
    }
}

/// A whole value by a strategy that reads it (not `null`, not fixed text).
fn mask_whole(strategy: &Strategy, mask: &ConnectionMask, value: &[u8], out: &mut Vec<u8>) {
    if !strategy.mask_cell_into(mask.key(), value, out) {
        out.extend_from_slice(DEFAULT_REDACTION.as_bytes());
    }
}

/// A held value as written: a string's raw bytes in quotes, or a number's.
fn write_raw(raw: &[u8], quoted: bool, out: &mut Vec<u8>) {
    if quoted {
        out.push(b'"');
        out.extend_from_slice(raw);
        out.push(b'"');
    } else {
        out.extend_from_slice(raw);
    }
}

/// `text` as a JSON string.
fn write_string(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    escape_into(text, out);
    out.push(b'"');
}

/// `text` escaped for a JSON string: `"`, `\` and control chars; everything else (UTF-8) as it is.
fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len());
    let mut last = 0;
    for (i, &b) in text.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(text.get(last..i).unwrap_or_default());
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'));
        } else {
            out.push(b'\\');
            out.push(short);
        }
        last = i + 1;
    }
    out.extend_from_slice(text.get(last..).unwrap_or_default());
}

#[cfg(test)]
mod tests;
