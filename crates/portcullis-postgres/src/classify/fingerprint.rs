//! The analysis cache key: the query text with its numeric and plain string literals replaced by `?`.
//!
//! The key is only as good as its lexer: two texts with the same key must read as the same sequence
//! of tokens to PostgreSQL, differing at most in literal values. So this lexer follows PostgreSQL's
//! own (`src/backend/parser/scan.l`, release 18, `standard_conforming_strings = on`) on every token
//! boundary, and gives up (`None`) on anything it cannot place with certainty: unterminated quotes
//! and comments, a zero-length quoted identifier, trailing junk after a number or parameter, a stray
//! `$`, a NUL byte, and any `?` outside quotes and comments (PostgreSQL reads it as an operator
//! character, which would be indistinguishable from a placeholder).
//!
//! What is replaced: numbers (`42`, `1.5`, `.5`, `1e10`, `0x1F`, `0o17`, `0b101`, `1_000`) and plain
//! `'...'` strings (including `N'...'`, which becomes `N?`, and SQL's newline-separated continuation
//! `'a'\n'b'`, which is one literal and becomes one `?`). What stays verbatim: everything else,
//! including comments and whitespace, identifiers and keywords in their original case, `$1`
//! parameters, and the literals whose content the parser itself checks or that carry code:
//! `E'...'` (escapes), `U&'...'` (Unicode escapes), `B'...'`, `X'...'`, the string after `UESCAPE`,
//! and dollar-quoted `$tag$...$tag$` bodies.
//!
//! One gap is accepted: a numeric and a string literal both print as `?`, and in a few grammar
//! positions PostgreSQL accepts only one of them (`date '2024-01-01'` parses, `date 1` does not). Both
//! texts share a key; the analysis of the one that parses is then used for the one that does not,
//! which the server rejects anyway. No grammar position accepts both with a different structure.

/// The key for `sql`, or `None` when the text cannot be lexed with certainty (see the module docs).
pub fn fingerprint(sql: &str) -> Option<String> {
    // PostgreSQL (and pg_query, which hands the text to C) cannot take a NUL byte anywhere.
    if sql.contains('\0') {
        return None;
    }
    let mut lexer = Lexer {
        src: sql.as_bytes(),
        pos: 0,
        out: Vec::with_capacity(sql.len()),
        after_uescape: false,
    };
    lexer.run()?;
    String::from_utf8(lexer.out).ok()
}

struct Lexer<'s> {
    src: &'s [u8],
    pos: usize,
    out: Vec<u8>,
    /// The previous token was the identifier `UESCAPE`: the next plain string is its escape
    /// character, which the parser validates, so it stays verbatim.
    after_uescape: bool,
}

/// How a quoted string's body is read (PostgreSQL's lexer states `xq`, `xe`, `xus`, `xb`/`xh`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoted {
    /// `'...'` and `U&'...'`: `''` is a quote, no escapes.
    Plain,
    /// `E'...'`: backslash escapes, `''` is a quote.
    Escaped,
    /// `B'...'`, `X'...'`: no escapes and no doubled quotes.
    Bits,
}

impl Lexer<'_> {
    fn run(&mut self) -> Option<()> {
        while let Some(c) = self.peek(0) {
            let uescape = self.after_uescape;
            self.after_uescape = false;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                    self.after_uescape = uescape;
                    self.copy(1);
                }
                b'-' if self.peek(1) == Some(b'-') => {
                    self.after_uescape = uescape;
                    self.line_comment();
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    self.after_uescape = uescape;
                    self.block_comment()?;
                }
                b'\'' => {
                    let end = self.quoted(self.pos, Quoted::Plain)?;
                    if uescape {
                        self.copy_to(end);
                    } else {
                        self.replace_to(end);
                    }
                }
                b'"' => {
                    let end = self.quoted_identifier(self.pos)?;
                    self.copy_to(end);
                }
                b'$' => self.dollar()?,
                b'0'..=b'9' => self.number()?,
                b'.' => match self.peek(1) {
                    Some(b'0'..=b'9') => self.number()?,
                    // `..` is one token (DOT_DOT); `..5` is DOT_DOT then 5, not `.` then `.5`.
                    Some(b'.') => self.copy(2),
                    _ => self.copy(1),
                },
                b'?' => return None,
                c if is_ident_start(c) => self.word()?,
                _ => self.copy(1),
            }
        }
        Some(())
    }

    /// An identifier or keyword, or one of the prefixed literals that start like one.
    fn word(&mut self) -> Option<()> {
        let start = self.pos;
        let next = self.peek(1);
        let after = self.peek(2);
        match (self.peek(0).map(|c| c.to_ascii_lowercase()), next, after) {
            (Some(b'e'), Some(b'\''), _) => {
                let end = self.quoted(start + 1, Quoted::Escaped)?;
                self.copy_to(end);
            }
            (Some(b'b' | b'x'), Some(b'\''), _) => {
                let end = self.quoted(start + 1, Quoted::Bits)?;
                self.copy_to(end);
            }
            (Some(b'n'), Some(b'\''), _) => {
                // National character: PostgreSQL returns the keyword NCHAR, then a plain string.
                self.copy(1);
                let end = self.quoted(self.pos, Quoted::Plain)?;
                self.replace_to(end);
            }
            (Some(b'u'), Some(b'&'), Some(b'\'')) => {
                let end = self.quoted(start + 2, Quoted::Plain)?;
                self.copy_to(end);
            }
            (Some(b'u'), Some(b'&'), Some(b'"')) => {
                let end = self.quoted_identifier(start + 2)?;
                self.copy_to(end);
            }
            _ => {
                let mut end = start + 1;
                while self.src.get(end).copied().is_some_and(is_ident_cont) {
                    end += 1;
                }
                let word = self.src.get(start..end)?;
                self.after_uescape = word.eq_ignore_ascii_case(b"uescape");
                self.copy_to(end);
            }
        }
        Some(())
    }

    /// A quoted string whose opening quote is at `open`; returns the position after it, including
    /// any continuation segments (`'a'` newline `'b'` is one literal).
    fn quoted(&self, open: usize, mode: Quoted) -> Option<usize> {
        let mut i = open + 1;
        loop {
            match self.src.get(i).copied()? {
                b'\'' if mode != Quoted::Bits && self.src.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => match self.continuation(i + 1) {
                    Some(next) => i = next + 1,
                    None => return Some(i + 1),
                },
                // Any backslash escape is at least two bytes, and none can end the string early:
                // octal, hex and Unicode escapes continue with digits only.
                b'\\' if mode == Quoted::Escaped => {
                    self.src.get(i + 1)?;
                    i += 2;
                }
                _ => i += 1,
            }
        }
    }

    /// PostgreSQL's `{quotecontinue}` at `from`: whitespace holding at least one newline (`--`
    /// comments allowed, `/* */` not), then a quote. Returns the position of that quote.
    fn continuation(&self, from: usize) -> Option<usize> {
        let mut i = from;
        // {non_newline_whitespace}*
        loop {
            match self.src.get(i).copied() {
                Some(b' ' | b'\t' | 0x0b | 0x0c) => i += 1,
                Some(b'-') if self.src.get(i + 1) == Some(&b'-') => i = self.line_end(i),
                _ => break,
            }
        }
        // {newline}
        if !matches!(self.src.get(i).copied(), Some(b'\n' | b'\r')) {
            return None;
        }
        i += 1;
        // {special_whitespace}*: spaces (newlines included), or a `--` comment ended by a newline.
        loop {
            match self.src.get(i).copied() {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => i += 1,
                Some(b'-') if self.src.get(i + 1) == Some(&b'-') => {
                    i = self.line_end(i);
                    if !matches!(self.src.get(i).copied(), Some(b'\n' | b'\r')) {
                        return None;
                    }
                    i += 1;
                }
                _ => break,
            }
        }
        (self.src.get(i) == Some(&b'\'')).then_some(i)
    }

    /// A `"quoted identifier"` whose opening quote is at `open`; returns the position after it.
    fn quoted_identifier(&self, open: usize) -> Option<usize> {
        let mut i = open + 1;
        loop {
            match self.src.get(i).copied()? {
                b'"' if self.src.get(i + 1) == Some(&b'"') => i += 2,
                // PostgreSQL rejects a zero-length delimited identifier.
                b'"' if i == open + 1 => return None,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    }

    /// `$1` (a parameter, verbatim) or `$tag$...$tag$` (a dollar-quoted string, verbatim).
    fn dollar(&mut self) -> Option<()> {
        let start = self.pos;
        if self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            let mut end = start + 1;
            while self.src.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            // {param_junk}: an identifier straight after a parameter is an error.
            if self.src.get(end).copied().is_some_and(is_ident_start) {
                return None;
            }
            self.copy_to(end);
            return Some(());
        }
        // {dolqdelim}: `$`, an optional tag that starts like an identifier and holds no `$`, `$`.
        let mut tag_end = start + 1;
        if self.src.get(tag_end).copied().is_some_and(is_ident_start) {
            tag_end += 1;
            while self.src.get(tag_end).copied().is_some_and(is_dolq_cont) {
                tag_end += 1;
            }
        }
        if self.src.get(tag_end) != Some(&b'$') {
            // {dolqfailed} or a lone `$`: PostgreSQL returns `$` as a bare character, a syntax error.
            return None;
        }
        let delimiter = self.src.get(start..=tag_end)?;
        let body = self.src.get(tag_end + 1..)?;
        let close = find(body, delimiter)?;
        self.copy_to(tag_end + 1 + close + delimiter.len());
        Some(())
    }

    /// A number starting at the current position (a digit, or `.` then a digit), replaced by `?`.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        let radix = match (self.peek(0), self.peek(1).map(|c| c.to_ascii_lowercase())) {
            (Some(b'0'), Some(b'x')) => Some(16),
            (Some(b'0'), Some(b'o')) => Some(8),
            (Some(b'0'), Some(b'b')) => Some(2),
            _ => None,
        };
        let end = match radix {
            Some(radix) => {
                // 0[xX](_?{hexdigit})+ and friends; with no digit it is {hexfail}, an error.
                let end = self.digits(start + 2, radix).filter(|&end| end > start + 2)?;
                // {integer_junk}: `0x1F` followed by any identifier character is `0` then an
                // identifier, which PostgreSQL rejects.
                if self.src.get(end).copied().is_some_and(is_ident_cont) {
                    return None;
                }
                end
            }
            None => {
                let mut end = start;
                if self.peek(0) != Some(b'.') {
                    end = self.digits(start, 10)?;
                }
                if self.src.get(end) == Some(&b'.') {
                    if self.src.get(end + 1) == Some(&b'.') {
                        // {numericfail}: `1..10` is 1, DOT_DOT, 10.
                        return self.finish_number(end);
                    }
                    end += 1;
                    if self.src.get(end).is_some_and(u8::is_ascii_digit) {
                        end = self.digits(end, 10)?;
                    }
                }
                if matches!(self.src.get(end).copied(), Some(b'e' | b'E')) {
                    let mut exponent = end + 1;
                    if matches!(self.src.get(exponent).copied(), Some(b'+' | b'-')) {
                        exponent += 1;
                    }
                    if !self.src.get(exponent).is_some_and(u8::is_ascii_digit) {
                        // {realfail} or junk: an error either way.
                        return None;
                    }
                    end = self.digits(exponent, 10)?;
                }
                end
            }
        };
        self.finish_number(end)
    }

    fn finish_number(&mut self, end: usize) -> Option<()> {
        // {integer_junk}, {numeric_junk}, {real_junk}: an identifier straight after a number.
        if self.src.get(end).copied().is_some_and(is_ident_start) {
            return None;
        }
        self.replace_to(end);
        Some(())
    }

    /// Digits of `radix` with single underscores between them, from `from`; returns the end.
    fn digits(&self, from: usize, radix: u32) -> Option<usize> {
        let is_digit = |c: Option<&u8>| c.is_some_and(|&c| char::from(c).is_digit(radix));
        let mut end = from;
        // The prefixed forms allow one underscore before the first digit (`0x_1F`).
        if radix != 10 && self.src.get(end) == Some(&b'_') && is_digit(self.src.get(end + 1)) {
            end += 1;
        }
        while is_digit(self.src.get(end)) {
            end += 1;
            if self.src.get(end) == Some(&b'_') && is_digit(self.src.get(end + 1)) {
                end += 1;
            }
        }
        Some(end)
    }

    fn line_comment(&mut self) {
        let end = self.line_end(self.pos);
        self.copy_to(end);
    }

    /// The position of the newline ending the `--` comment at `from`, or the end of input.
    fn line_end(&self, from: usize) -> usize {
        let rest = self.src.get(from..).unwrap_or_default();
        from + rest
            .iter()
            .position(|&c| c == b'\n' || c == b'\r')
            .unwrap_or(rest.len())
    }

    /// A `/* ... */` comment; they nest.
    fn block_comment(&mut self) -> Option<()> {
        let mut depth = 0usize;
        let mut i = self.pos + 2;
        loop {
            match (self.src.get(i).copied()?, self.src.get(i + 1).copied()) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (b'*', Some(b'/')) => {
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                _ => i += 1,
            }
        }
        self.copy_to(i);
        Some(())
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.src.get(self.pos + offset).copied()
    }

    fn copy(&mut self, len: usize) {
        self.copy_to(self.pos + len);
    }

    fn copy_to(&mut self, end: usize) {
        let end = end.min(self.src.len());
        if let Some(text) = self.src.get(self.pos..end) {
            self.out.extend_from_slice(text);
        }
        self.pos = end;
    }

    fn replace_to(&mut self, end: usize) {
        self.out.push(b'?');
        self.pos = end.min(self.src.len());
    }
}

/// `[A-Za-z\200-\377_]`: PostgreSQL treats every non-ASCII byte as a letter.
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// `[A-Za-z\200-\377_0-9\$]`
fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// `[A-Za-z\200-\377_0-9]`: a dollar-quote tag holds no `$`.
fn is_dolq_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn normalises_numbers_and_plain_strings_only() {
        let cases = [
            ("DELETE FROM t WHERE id = 1", Some("DELETE FROM t WHERE id = ?")),
            (
                "SELECT 1.5, .5, 1e10, 1.5E-3, 0x1F, 0o17, 0b101, 1_000, 0x_1F",
                Some("SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?"),
            ),
            ("SELECT 'it''s', N'x', n'y'", Some("SELECT ?, N?, n?")),
            (
                "SELECT E'a\\'b', U&'d\\0061t', B'0101', X'1F'",
                Some("SELECT E'a\\'b', U&'d\\0061t', B'0101', X'1F'"),
            ),
            (
                "SELECT U&'d!0061t' UESCAPE '!'",
                Some("SELECT U&'d!0061t' UESCAPE '!'"),
            ),
            (
                "SELECT $1, a$b, t1.c2 FROM t1",
                Some("SELECT $1, a$b, t1.c2 FROM t1"),
            ),
            (
                "SELECT $$DROP TABLE x$$, $f$ 'a' $$ $f$",
                Some("SELECT $$DROP TABLE x$$, $f$ 'a' $$ $f$"),
            ),
            (
                "SELECT \"a\"\"b\", U&\"d\\0061ta\"",
                Some("SELECT \"a\"\"b\", U&\"d\\0061ta\""),
            ),
            (
                "SELECT 1 -- 'x' 2\n, /* 3 /* '4' */ 5 */ 6",
                Some("SELECT ? -- 'x' 2\n, /* 3 /* '4' */ 5 */ ?"),
            ),
            ("SELECT 'a'\n  'b', 'c' 'd'", Some("SELECT ?, ? ?")),
            ("SELECT E'a'\n'\\''", Some("SELECT E'a'\n'\\''")),
            ("SELECT 1..2, a[1:2]", Some("SELECT ?..?, a[?:?]")),
            ("SELECT x-1, x--1\n", Some("SELECT x-?, x--1\n")),
            ("SELECT 'é', café", Some("SELECT ?, café")),
            ("", Some("")),
        ];
        for (sql, expected) in cases {
            assert_eq!(fingerprint(sql).as_deref(), expected, "{sql}");
        }
    }

    #[test]
    fn gives_up_when_in_doubt() {
        let cases = [
            "SELECT 'unterminated",
            "SELECT E'unterminated\\'",
            "SELECT \"unterminated",
            "SELECT \"\"",
            "SELECT /* unterminated /* */",
            "SELECT $$unterminated",
            "SELECT $a$ $b$",
            "SELECT $x",
            "SELECT $",
            "SELECT 1abc",
            "SELECT 1_",
            "SELECT 1e",
            "SELECT 1e+",
            "SELECT 0x",
            "SELECT 0x1G",
            "SELECT 0x1F$",
            "SELECT $1a",
            "SELECT data ? 'key'",
            "SELECT 'a\0b'",
            "SELECT 1.5abc",
        ];
        for sql in cases {
            assert_eq!(fingerprint(sql), None, "{sql}");
        }
    }

    #[test]
    fn literal_values_share_a_key_and_structure_does_not() {
        let same = [
            ("DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE id = 2"),
            ("SELECT 'a'", "SELECT 'it''s a ''quote'''"),
            ("SELECT 1", "SELECT 1.5e3"),
        ];
        for (a, b) in same {
            assert_eq!(fingerprint(a), fingerprint(b), "{a} / {b}");
        }
        let different = [
            ("DELETE FROM t WHERE 1 = 1", "DELETE FROM t WHERE id = 1"),
            ("SELECT $1", "SELECT $2"),
            ("SELECT E'a'", "SELECT E'b'"),
            ("SELECT $$a$$", "SELECT $$b$$"),
            ("SELECT 1 -- a", "SELECT 1 -- b"),
            ("SELECT \"A\"", "SELECT \"a\""),
            ("DO 'a'", "DO $$a$$"),
        ];
        for (a, b) in different {
            assert_ne!(fingerprint(a), fingerprint(b), "{a} / {b}");
        }
    }
}
