//! Fuzzes `flatten_json_object`, the fields of a JSON request body that policy sees, on arbitrary bytes.
//!
//! Oracles: `None` for anything but a JSON object; otherwise the fields are exactly those of a reference
//! walk (an explicit stack instead of recursion: dotted keys, `[]` for array elements, scalars as text,
//! nothing inside containers nested 16 deep), never more than the documented 1024, and `None` exactly
//! when the reference counts more. `names_a_member_twice` holds for a JSON text exactly when the text
//! has more object members than the parsed value keeps (serde_json keeps one per name); `read_json`
//! gives exactly serde_json's value for every other text, and refuses what serde_json refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_http::{flatten_json_object, names_a_member_twice, read_json};
use serde_json::Value;

/// `facts::MAX_BODY_FIELDS` (not exported; docs/policy.md): the most fields shown to policy.
const MAX_BODY_FIELDS: usize = 1024;
/// `facts::MAX_DEPTH`: containers nested this deep are not descended into.
const MAX_DEPTH: usize = 16;

fuzz_target!(|data: &[u8]| {
    let twice = names_a_member_twice(data);
    let read = read_json(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let written = count_written_members(data);
        assert_eq!(twice, written != Some(kept_members(&value)), "{written:?} members written");
        if !twice {
            assert_eq!(read, Ok(value), "read_json and serde_json differ");
        }
    } else {
        assert!(read.is_err(), "read_json read what serde_json refuses");
    }
    let fields = flatten_json_object(data);
    let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        assert_eq!(fields, None, "fields of a body that is not a JSON object");
        return;
    };
    let want = reference(&value);
    match fields {
        Some(fields) => {
            assert!(fields.len() <= MAX_BODY_FIELDS);
            assert_eq!(fields, want);
        }
        None => assert!(
            want.len() > MAX_BODY_FIELDS,
            "an object of {} fields not shown",
            want.len()
        ),
    }
});

/// Every scalar under at most `MAX_DEPTH` containers besides the root, depth first in document order,
/// with its path.
fn reference(root: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // (value, its path, how many containers enclose it)
    let mut stack: Vec<(&Value, String, usize)> = vec![(root, String::new(), 0)];
    while let Some((value, path, depth)) = stack.pop() {
        let text = match value {
            Value::Object(map) => {
                if depth < MAX_DEPTH {
                    let children: Vec<_> = map
                        .iter()
                        .map(|(key, v)| {
                            let child = if path.is_empty() {
                                key.clone()
                            } else {
                                format!("{path}.{key}")
                            };
                            (v, child, depth + 1)
                        })
                        .collect();
                    stack.extend(children.into_iter().rev());
                }
                continue;
            }
            Value::Array(items) => {
                if depth < MAX_DEPTH {
                    let child = format!("{path}[]");
                    stack.extend(items.iter().rev().map(|v| (v, child.clone(), depth + 1)));
                }
                continue;
            }
            Value::String(s) => s.clone(),
            // docs/policy.md: integral values as integers, whatever the spelling; others as serde_json
            // prints the double.
            Value::Number(n) => match n.as_f64() {
                Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 2f64.powi(53) => {
                    format!("{f:.0}").replace("-0", "0")
                }
                _ => n.to_string(),
            },
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".to_owned(),
        };
        out.push((path, text));
    }
    out
}

/// Members of every object in the parsed value.
fn kept_members(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len() + map.values().map(kept_members).sum::<usize>(),
        Value::Array(items) => items.iter().map(kept_members).sum(),
        _ => 0,
    }
}

/// Members of every object as written in the text, repeats included.
fn count_written_members(data: &[u8]) -> Option<usize> {
    use serde::de::DeserializeSeed as _;
    let mut reader = serde_json::Deserializer::from_slice(data);
    Count.deserialize(&mut reader).ok()
}

struct Count;

impl<'de> serde::de::DeserializeSeed<'de> for Count {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Count {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(inner) = items.next_element_seed(Count)? {
            n += inner;
        }
        Ok(n)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while members.next_key::<serde::de::IgnoredAny>()?.is_some() {
            n += 1 + members.next_value_seed(Count)?;
        }
        Ok(n)
    }
}
