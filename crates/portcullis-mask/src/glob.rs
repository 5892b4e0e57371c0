//! Column patterns: `column`, `table.column` or `schema.table.column`, each part a glob.
//!
//! Each part matches case-insensitively; `*` is any run of chars, `?` one char.

use std::fmt;
use std::str::Chars;

use crate::rules::ColumnRef;

/// One part of a column pattern.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    /// The pattern, case-folded.
    pattern: Box<[char]>,
}

/// Case folding for identifiers: ASCII fast, else the first char of the lower-case mapping.
fn fold(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

impl Glob {
    pub(crate) fn new(part: &str) -> Glob {
        Glob {
            pattern: part.chars().map(fold).collect(),
        }
    }

    /// `*` alone: matches anything, including an unknown table.
    pub(crate) fn is_star(&self) -> bool {
        *self.pattern == ['*']
    }

    /// Whether `text` matches, case-insensitively. Iterative with one backtrack point (the last `*`), so
    /// linear in practice and never recursive.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let pat = &self.pattern;
        let mut p = 0;
        let mut s: Chars<'_> = text.chars();
        // After the last `*`: the pattern index after it, and the text from where it resumes.
        let mut star: Option<(usize, Chars<'_>)> = None;
        loop {
            let here = s.clone();
            let c = s.next();
            match (pat.get(p), c) {
                (Some('*'), _) => {
                    star = Some((p + 1, here.clone()));
                    p += 1;
                    s = here;
                }
                (Some('?'), Some(_)) => p += 1,
                (Some(&want), Some(c)) if want == fold(c) => p += 1,
                (None, None) => return true,
                _ => {
                    // Let the last `*` swallow one more char and retry from there.
                    let Some((after, resume)) = &mut star else {
                        return false;
                    };
                    if resume.next().is_none() {
                        return false;
                    }
                    p = *after;
                    s = resume.clone();
                }
            }
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.pattern.iter().collect::<String>())
    }
}

/// A column pattern: one, two or three globs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ColumnPattern {
    schema: Option<Glob>,
    table: Option<Glob>,
    column: Glob,
    source: Box<str>,
}

impl ColumnPattern {
    /// Parses `column`, `table.column` or `schema.table.column`.
    pub(crate) fn parse(source: &str) -> Result<ColumnPattern, String> {
        let parts: Vec<&str> = source.split('.').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(format!("column pattern {source:?} has an empty part"));
        }
        if parts.iter().any(|p| p.chars().any(char::is_whitespace)) {
            return Err(format!("column pattern {source:?} holds white space"));
        }
        let (schema, table, column) = match parts.as_slice() {
            [c] => (None, None, *c),
            [t, c] => (None, Some(*t), *c),
            [s, t, c] => (Some(*s), Some(*t), *c),
            _ => {
                return Err(format!(
                    "column pattern {source:?} has more than three parts (schema.table.column)"
                ));
            }
        };
        Ok(ColumnPattern {
            schema: schema.map(Glob::new),
            table: table.map(Glob::new),
            column: Glob::new(column),
            source: source.into(),
        })
    }

    /// Whether the pattern matches a result column. A computed column (no table) matches only patterns
    /// whose table part is `*` or absent. An unknown schema matches any schema part: when the source is
    /// not known, masking is the safe side.
    pub(crate) fn matches(&self, col: &ColumnRef<'_>) -> bool {
        if !self.column.matches(col.column) {
            return false;
        }
        let table_ok = match (&self.table, col.table) {
            (None, _) => true,
            (Some(glob), None) => glob.is_star(),
            (Some(glob), Some(table)) => glob.matches(table),
        };
        let schema_ok = match (&self.schema, col.table, col.schema) {
            (None, _, _) | (_, None, _) | (_, _, None) => true,
            (Some(glob), Some(_), Some(schema)) => glob.matches(schema),
        };
        table_ok && schema_ok
    }
}

impl fmt::Debug for ColumnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn globs_match_case_insensitively_with_star_and_question_mark() {
        let cases = [
            ("email", "email", true),
            ("email", "EMAIL", true),
            ("email", "emails", false),
            ("*ssn*", "customer_ssn_hash", true),
            ("*ssn*", "ssn", true),
            ("*ssn*", "sn", false),
            ("card_?", "card_1", true),
            ("card_?", "card_12", false),
            ("*_at", "created_at", true),
            ("*_at", "created_by", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a*a*a", "aaaa", true),
            ("*", "", true),
            ("?", "", false),
            ("straße", "STRASSE", false),
            ("müller", "MÜLLER", true),
            ("**x", "abx", true),
            ("*?", "é", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(Glob::new(pattern).matches(text), want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn patterns_resolve_parts_and_computed_columns() {
        let col = |schema, table, column| ColumnRef {
            schema,
            table,
            column,
        };
        let customers = col(Some("public"), Some("customers"), "Email");
        let computed = col(None, None, "email");
        let no_schema = col(None, Some("customers"), "email");
        let cases = [
            ("email", &customers, true),
            ("*.email", &customers, true),
            ("customers.email", &customers, true),
            ("orders.email", &customers, false),
            ("public.customers.email", &customers, true),
            ("audit.customers.email", &customers, false),
            ("public.*.e*", &customers, true),
            ("email", &computed, true),
            ("*.email", &computed, true),
            ("customers.email", &computed, false),
            ("*.*.email", &computed, true),
            ("public.customers.email", &computed, false),
            ("audit.customers.email", &no_schema, true),
        ];
        for (pattern, column, want) in cases {
            let p = ColumnPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(column), want, "{pattern} ~ {column:?}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", ".email", "t..c", "a.b.c.d", "t.", "first name"] {
            assert!(ColumnPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
