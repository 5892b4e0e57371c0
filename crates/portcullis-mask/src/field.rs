//! Field patterns: which JSON values a `fields` rule masks, matched step by step along the key path.
//!
//! A pattern is a dot-separated list of key globs (the column globs' syntax: `*` any run of chars, `?`
//! one char, case-insensitive), each optionally followed by `[]`. Without a leading `$` it may match
//! anywhere in the document (`email`, `*.email`, `customers[].card_number`); with `$.` it starts at the
//! root (`$.data.*.ssn`, `$[].email` for a top-level array). Array levels are transparent: `a.b` also
//! matches `b` in the objects of an array under `a`; `a[].b` requires that array.
//!
//! Matching is incremental: each open container keeps the set of partial matches alive at it (a few
//! `Live` entries, bounded by the number of pattern segments), so no key of the path is ever stored.

use std::fmt;

use crate::glob::Glob;

/// One step of a pattern: a key glob, and whether an array must follow the key.
#[derive(Debug, Clone)]
struct Segment {
    glob: Glob,
    array: bool,
}

/// A parsed field pattern.
#[derive(Clone)]
pub(crate) struct FieldPattern {
    /// `$.…`: starts at the root; otherwise at any key.
    anchored: bool,
    /// `$[]…`: the root must be an array.
    root_array: bool,
    segments: Box<[Segment]>,
    source: Box<str>,
}

impl fmt::Debug for FieldPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl FieldPattern {
    /// Parses `key`, `a.b[].c`, `$.a.*.c`, `$[].a`. Refuses empty segments, white space, `[`/`]` other
    /// than a trailing `[]`, and `$` anywhere but the start.
    pub(crate) fn parse(source: &str) -> Result<FieldPattern, String> {
        let bad = |why: &str| format!("field pattern {source:?} {why}");
        if source.chars().any(char::is_whitespace) {
            return Err(bad("holds white space"));
        }
        let (anchored, root_array, rest) = match source.strip_prefix('$') {
            None => (false, false, source),
            Some(after) => {
                let (root_array, after) = strip_arrays(after);
                match after.strip_prefix('.') {
                    Some(rest) => (true, root_array, rest),
                    None => return Err(bad("must continue `$` with `.` and a key (`$.data.email`)")),
                }
            }
        };
        let mut segments = Vec::new();
        for part in rest.split('.') {
            let (array, glob) = match part.find('[') {
                Some(at) => {
                    let (glob, brackets) = part.split_at(at);
                    let (array, left) = strip_arrays(brackets);
                    if !left.is_empty() {
                        return Err(bad("has a `[` that is not a trailing `[]`"));
                    }
                    (array, glob)
                }
                None => (false, part),
            };
            if glob.is_empty() {
                return Err(bad("has an empty key"));
            }
            if glob.contains([']', '$']) {
                return Err(bad("has a `]` or `$` inside a key"));
            }
            segments.push(Segment {
                glob: Glob::new(glob),
                array,
            });
        }
        Ok(FieldPattern {
            anchored,
            root_array,
            segments: segments.into(),
            source: source.into(),
        })
    }
}

/// Strips any number of leading `[]`; whether there was one.
fn strip_arrays(mut s: &str) -> (bool, &str) {
    let mut any = false;
    while let Some(rest) = s.strip_prefix("[]") {
        any = true;
        s = rest;
    }
    (any, s)
}

/// A partial match: `pos` segments of pattern `pattern` matched; `pending_array` when the last one
/// requires an array level that has not been entered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Live {
    pattern: u32,
    pos: u32,
    pending_array: bool,
}

/// The field patterns of one connection, in rule order, each with the index of its rule's strategy.
#[derive(Debug, Default)]
pub(crate) struct FieldMatcher {
    patterns: Vec<(FieldPattern, usize)>,
}

impl FieldMatcher {
    pub(crate) fn push(&mut self, pattern: FieldPattern, strategy: usize) {
        self.patterns.push((pattern, strategy));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The partial matches at the root: every anchored pattern, none of it matched yet.
    pub(crate) fn root(&self, out: &mut Vec<Live>) {
        for (i, (p, _)) in self.patterns.iter().enumerate() {
            if p.anchored {
                out.push(Live {
                    pattern: index(i),
                    pos: 0,
                    pending_array: p.root_array,
                });
            }
        }
    }

    /// Entering the elements of an array: required array levels are satisfied, the rest carries over.
    /// Returns the strategy of the first pattern now matched whole.
    pub(crate) fn enter_array(&self, live: &mut [Live]) -> Option<usize> {
        for l in live.iter_mut() {
            l.pending_array = false;
        }
        self.matched(live)
    }

    /// Entering the member `key` of an object whose partial matches are `base`: the member's partial
    /// matches are appended to `out`. Returns the strategy of the first pattern matched whole.
    pub(crate) fn enter_key(&self, base: &[Live], key: &str, out: &mut Vec<Live>) -> Option<usize> {
        let start = out.len();
        for l in base {
            if l.pending_array {
                continue;
            }
            let Some((p, _)) = self.patterns.get(l.pattern as usize) else {
                continue;
            };
            if let Some(seg) = p.segments.get(l.pos as usize)
                && seg.glob.matches(key)
            {
                out.push(Live {
                    pattern: l.pattern,
                    pos: l.pos + 1,
                    pending_array: seg.array,
                });
            }
        }
        // Patterns without `$` may start at any key.
        for (i, (p, _)) in self.patterns.iter().enumerate() {
            if p.anchored {
                continue;
            }
            if let Some(seg) = p.segments.first()
                && seg.glob.matches(key)
            {
                out.push(Live {
                    pattern: index(i),
                    pos: 1,
                    pending_array: seg.array,
                });
            }
        }
        self.matched(out.get(start..).unwrap_or_default())
    }

    /// The strategy of the first pattern (in rule order) that `live` matches whole.
    fn matched(&self, live: &[Live]) -> Option<usize> {
        live.iter()
            .filter(|l| !l.pending_array)
            .filter_map(|l| {
                let (p, strategy) = self.patterns.get(l.pattern as usize)?;
                (l.pos as usize == p.segments.len()).then_some((l.pattern, *strategy))
            })
            .min_by_key(|(pattern, _)| *pattern)
            .map(|(_, strategy)| strategy)
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// Walks `path` (keys, and `[]` for an array level) from the root; the strategy matched at its end.
    fn walk(patterns: &[&str], path: &[&str]) -> Option<usize> {
        let mut m = FieldMatcher::default();
        for (i, p) in patterns.iter().enumerate() {
            m.push(FieldPattern::parse(p).unwrap(), i);
        }
        let mut live = Vec::new();
        m.root(&mut live);
        let mut matched = None;
        for step in path {
            if matched.is_some() {
                break;
            }
            if *step == "[]" {
                matched = m.enter_array(&mut live);
            } else {
                let mut next = Vec::new();
                matched = m.enter_key(&live, step, &mut next);
                live = next;
            }
        }
        matched
    }

    #[test]
    fn patterns_match_key_paths() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("email", &["email"], true),
            ("email", &["user", "Email"], true),
            ("email", &["users", "[]", "email"], true),
            ("email", &["emails"], false),
            ("*.email", &["user", "email"], true),
            ("*.email", &["email"], false),
            ("*.email", &["users", "[]", "email"], true),
            (
                "customers[].card_number",
                &["customers", "[]", "card_number"],
                true,
            ),
            ("customers[].card_number", &["customers", "card_number"], false),
            ("customers.card_number", &["customers", "[]", "card_number"], true),
            (
                "customers.card_number",
                &["data", "customers", "[]", "[]", "card_number"],
                true,
            ),
            ("$.data.*.ssn", &["data", "x", "ssn"], true),
            ("$.data.*.ssn", &["data", "[]", "x", "ssn"], true),
            ("$.data.*.ssn", &["wrap", "data", "x", "ssn"], false),
            ("$.data.*.ssn", &["data", "ssn"], false),
            ("$[].email", &["[]", "email"], true),
            ("$[].email", &["email"], false),
            ("tags[]", &["tags"], false),
            ("tags[]", &["tags", "[]"], true),
            ("tags", &["tags"], true),
            ("a.a", &["a", "a"], true),
            ("a.b", &["a", "x", "b"], false),
            ("card_?", &["card_1"], true),
            ("*_token", &["auth", "refresh_token"], true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(walk(&[pattern], path).is_some(), *want, "{pattern} ~ {path:?}");
        }
    }

    #[test]
    fn the_first_pattern_in_rule_order_wins() {
        assert_eq!(walk(&["*", "email"], &["email"]), Some(0));
        assert_eq!(walk(&["other", "email", "*"], &["email"]), Some(1));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "", ".email", "a..b", "a.", "$", "$email", "$.", "a[0].b", "a[].b]", "a b", "a$", "[]", "a.[]",
        ] {
            assert!(FieldPattern::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "$.a", "$[].a", "a[][].b", "*", "$.*[]"] {
            assert!(FieldPattern::parse(good).is_ok(), "{good:?}");
        }
    }
}
