//! From an HTTP request to what policy sees of it: query parameters, allow-listed headers, and the
//! fields of a small JSON body (read up to a cap; a larger body streams on uninspected).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use portcullis_core::{HttpAction, HttpRequestFacts, RouteRef};

use crate::body::BoxError;
use crate::problem::Problem;
use crate::route::{RouteTemplate, best_route, normalize_path};

/// More query parameters than this and the request is refused (policy would see a truncated list).
pub const MAX_QUERY_PARAMS: usize = 128;
/// At most this many body fields are shown to policy; a body with more is shown as not inspected.
pub const MAX_BODY_FIELDS: usize = 1024;
/// Objects nested deeper than this are not descended into (their fields are not shown).
const MAX_DEPTH: usize = 16;

/// What the proxy shows policy of a request (without its body, which is read later, if at all): the
/// method's action, the path as forwarded (`path` is the part after the connection's prefix), the best
/// route and its parameters, the query, the allow-listed headers. Refusals (405, 400) are problems.
/// Used by the proxy and by `portcullis policy check`, so both see a request alike.
pub fn request_facts(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    routes: &[(String, RouteTemplate)],
    context_headers: &[http::HeaderName],
) -> Result<HttpRequestFacts, Problem> {
    let action = HttpAction::of_method(method.as_str())
        .ok_or_else(|| Problem::method_not_allowed(format!("{method} requests are not forwarded")))?;
    let path = normalize_path(path).map_err(|e| Problem::bad_request(format!("path refused: {e}")))?;
    let query = parse_query(query).ok_or_else(|| Problem::bad_request("too many query parameters"))?;
    let (route, params) = match best_route(routes.iter().map(|(n, t)| (t, (n, t))), path) {
        Some(((name, template), params)) => (
            Some(RouteRef {
                name: name.clone(),
                template: template.as_str().to_owned(),
            }),
            params,
        ),
        None => (None, Vec::new()),
    };
    Ok(HttpRequestFacts {
        action,
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        route,
        params,
        query,
        headers: allowed_headers(headers, context_headers),
        body: None,
    })
}

/// The query's parameters, percent- and `+`-decoded, in order; `None` when there are more than
/// [`MAX_QUERY_PARAMS`].
pub fn parse_query(query: Option<&str>) -> Option<Vec<(String, String)>> {
    let Some(query) = query else {
        return Some(Vec::new());
    };
    let mut pairs = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if pairs.len() == MAX_QUERY_PARAMS {
            return None;
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Some(pairs)
}

/// The allow-listed headers' values (names lower case, as `HeaderName`s are), every one of them, read as
/// UTF-8 with invalid bytes replaced. (Leaving out values that are not ASCII let a second value of a
/// header hide from policy, `headers_repeated` included, while the upstream still read it.)
pub(crate) fn allowed_headers(headers: &HeaderMap, allow: &[http::HeaderName]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in allow {
        for value in headers.get_all(name) {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            out.push((name.as_str().to_owned(), value));
        }
    }
    out
}

/// Why a JSON text was not read ([`read_json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonRefusal {
    /// Not one JSON value.
    NotJson,
    /// An object names a member twice (at any depth, in any spelling: `"a"` and `"\u0061"`).
    /// Parsers disagree on such a text (the first or the last value wins, or it is an error), so
    /// policy could be shown one value while the upstream acts on the other: a body the gateway
    /// inspects is refused rather than decided one way and read another.
    MemberNamedTwice,
}

/// Reads a JSON text, in one pass, into the value serde_json would give, refusing a text that names a
/// member twice in one object.
pub fn read_json(bytes: &[u8]) -> Result<serde_json::Value, JsonRefusal> {
    use serde::de::DeserializeSeed as _;
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = UniqueMembers.deserialize(&mut reader).map_err(|e| {
        if e.is_data() {
            JsonRefusal::MemberNamedTwice
        } else {
            JsonRefusal::NotJson
        }
    })?;
    reader.end().map_err(|_| JsonRefusal::NotJson)?;
    Ok(value)
}

/// Whether a JSON text names a member twice in one object (see [`JsonRefusal::MemberNamedTwice`]);
/// also true for a text that breaks off after such an object. False for other text that is not JSON.
pub fn names_a_member_twice(bytes: &[u8]) -> bool {
    read_json(bytes) == Err(JsonRefusal::MemberNamedTwice)
}

/// Reads any JSON value as serde_json's own `Value` visitor does, failing (a data error) on the first
/// object that repeats a member name.
struct UniqueMembers;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueMembers {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueMembers {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value whose objects name each member once")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(b.into())
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = items.next_element_seed(UniqueMembers)? {
            values.push(value);
        }
        Ok(serde_json::Value::Array(values))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(name) = members.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(serde::de::Error::custom("a member is named twice"));
            }
            let value = members.next_value_seed(UniqueMembers)?;
            map.insert(name, value);
        }
        Ok(serde_json::Value::Object(map))
    }
}

/// The fields of a JSON object as (dotted path, value as text): nested objects are descended
/// (`customer.id`), array elements share their array's name with `[]` (`lines[].sku`); strings are
/// themselves, numbers and booleans their JSON text, null `null`. `None` for anything but an object,
/// or past [`MAX_BODY_FIELDS`].
pub fn flatten_json_object(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    flatten_value(&serde_json::from_slice(bytes).ok()?)
}

/// The fields policy sees of a JSON body read whole ([`flatten_json_object`]): `None` for a body that is
/// not a JSON object; a 400 problem for one that names a member twice. Used by the proxy and by
/// `portcullis policy check`, so both read a body alike.
pub fn body_fields(bytes: &[u8]) -> Result<Option<Vec<(String, String)>>, Problem> {
    match read_json(bytes) {
        Ok(value) => Ok(flatten_value(&value)),
        Err(JsonRefusal::NotJson) => Ok(None),
        Err(JsonRefusal::MemberNamedTwice) => Err(Problem::bad_request(
            "the JSON body names a member twice in one object, so servers could read it two ways",
        )),
    }
}

/// [`flatten_json_object`] of a value already read.
pub fn flatten_value(value: &serde_json::Value) -> Option<Vec<(String, String)>> {
    if !value.is_object() {
        return None;
    }
    let mut out = Vec::new();
    flatten(value, "", 0, &mut out).then_some(out)
}

fn flatten(value: &serde_json::Value, path: &str, depth: usize, out: &mut Vec<(String, String)>) -> bool {
    use serde_json::Value;
    let mut push = |text: String| {
        if out.len() == MAX_BODY_FIELDS {
            return false;
        }
        out.push((path.to_owned(), text));
        true
    };
    match value {
        Value::Object(map) => {
            if depth == MAX_DEPTH {
                return true;
            }
            map.iter().all(|(key, v)| {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(v, &child, depth + 1, out)
            })
        }
        Value::Array(items) => {
            if depth == MAX_DEPTH {
                return true;
            }
            let child = format!("{path}[]");
            items.iter().all(|v| flatten(v, &child, depth + 1, out))
        }
        Value::String(s) => push(s.clone()),
        Value::Number(n) => push(number_text(n)),
        Value::Bool(b) => push(b.to_string()),
        Value::Null => push("null".to_owned()),
    }
}

/// A number's text, whatever its spelling: an integral value as an integer (`100`, `1e2`, `100.0` and
/// `1.0e2` all read `100`), any other as the shortest text that reads back as the same value (`1.50` and
/// `15e-1` read `1.5`). A policy comparing the text cannot be passed by writing the same number another
/// way. Integers past ±2^53 that are not exact 64-bit integers are read as the nearest double, as most
/// JSON parsers read them.
fn number_text(n: &serde_json::Number) -> String {
    /// 2^53: every integral double below it in magnitude is exactly an `i64`.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)] // integral and within ±2^53: exact
        Some(f) if f.fract() == 0.0 && f.abs() < EXACT => (f as i64).to_string(),
        _ => n.to_string(),
    }
}

/// Whether a request's content type is JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A request body read up to `cap` bytes: the frames read, and the rest of the body when it did not
/// end within the cap.
pub(crate) struct Peeked<B> {
    pub frames: VecDeque<Frame<Bytes>>,
    pub rest: Option<B>,
}

impl<B> Peeked<B> {
    /// The whole body's bytes, when it ended within the cap.
    pub fn complete_bytes(&self) -> Option<Bytes> {
        if self.rest.is_some() {
            return None;
        }
        let mut bytes = BytesMut::new();
        for frame in &self.frames {
            if let Some(data) = frame.data_ref() {
                bytes.extend_from_slice(data);
            }
        }
        Some(bytes.freeze())
    }
}

/// Reads `body` until it ends or passes `cap` bytes. Never holds more than `cap` plus one frame.
pub(crate) async fn peek_body<B>(mut body: B, cap: usize) -> Result<Peeked<B>, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut frames = VecDeque::new();
    let mut size = 0usize;
    loop {
        let Some(frame) = body.frame().await else {
            return Ok(Peeked { frames, rest: None });
        };
        let frame = frame.map_err(Into::into)?;
        size = size.saturating_add(frame.data_ref().map_or(0, Bytes::len));
        frames.push_back(frame);
        if size > cap {
            return Ok(Peeked {
                frames,
                rest: Some(body),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_bodies_flatten_to_dotted_fields() {
        let mut fields = flatten_json_object(
            br#"{"currency":"EUR","amount":12.5,"ok":true,"none":null,"customer":{"id":7},"lines":[{"sku":"a"},{"sku":"b"}],"tags":["x"]}"#,
        )
        .unwrap();
        // Object order depends on serde_json's features (preserve_order): compare sorted.
        fields.sort();
        let expected = [
            ("amount", "12.5"),
            ("currency", "EUR"),
            ("customer.id", "7"),
            ("lines[].sku", "a"),
            ("lines[].sku", "b"),
            ("none", "null"),
            ("ok", "true"),
            ("tags[]", "x"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect();
        assert_eq!(fields, expected);
        assert_eq!(flatten_json_object(b"[1,2]"), None);
        assert_eq!(flatten_json_object(b"{"), None);
    }

    #[test]
    fn numbers_read_the_same_however_they_are_written() {
        let body = br#"{"a":100,"b":1e2,"c":100.0,"d":1.0E2,"e":1.50,"f":15e-1,"g":-0.0,"h":-7,"i":18446744073709551615,"j":1e300,"k":0.1}"#;
        let mut fields = flatten_json_object(body).unwrap();
        fields.sort();
        let texts: Vec<&str> = fields.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            texts,
            [
                "100",
                "100",
                "100",
                "100",
                "1.5",
                "1.5",
                "0",
                "-7",
                "18446744073709551615",
                "1e+300",
                "0.1"
            ]
        );
    }

    #[test]
    fn members_named_twice_are_found_at_any_depth_and_in_any_spelling() {
        let twice: [&[u8]; 5] = [
            br#"{"currency":"USD","currency":"EUR"}"#,
            br#"{"currency":"USD","\u0063urrency":"EUR"}"#,
            br#"{"order":{"lines":[{"sku":"a","sku":"b"}]}}"#,
            br#"[{"a":1},{"b":2,"b":3}]"#,
            br#"{"a":{},"b":[],"a":null}"#,
        ];
        for body in twice {
            assert!(names_a_member_twice(body), "{}", String::from_utf8_lossy(body));
        }
        let once: [&[u8]; 6] = [
            br#"{"currency":"EUR","lines":[{"sku":"a"},{"sku":"b"}]}"#,
            br#"{"a":{"a":{"a":1}}}"#,
            br#"{"A":1,"a":2}"#,
            b"[]",
            b"{",
            b"not json",
        ];
        for body in once {
            assert!(!names_a_member_twice(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn every_value_of_an_allow_listed_header_is_shown() {
        let mut headers = HeaderMap::new();
        headers.append("x-tenant", http::HeaderValue::from_static("acme"));
        headers.append("x-tenant", http::HeaderValue::from_bytes(b"glob\xe9x").unwrap());
        headers.append("x-other", http::HeaderValue::from_static("not shown"));
        let shown = allowed_headers(&headers, &[http::HeaderName::from_static("x-tenant")]);
        assert_eq!(
            shown,
            [("x-tenant", "acme"), ("x-tenant", "glob\u{FFFD}x")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn queries_decode_and_are_bounded() {
        assert_eq!(
            parse_query(Some("a=1&b=x%20y&a=2&c")).unwrap(),
            [("a", "1"), ("b", "x y"), ("a", "2"), ("c", "")]
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        );
        let many = vec!["x=1"; MAX_QUERY_PARAMS + 1].join("&");
        assert_eq!(parse_query(Some(&many)), None);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(path in "\\PC*", query in "\\PC*", body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = crate::route::normalize_path(&path);
            if let Ok(template) = crate::route::RouteTemplate::parse(&path) {
                let _ = template.matches(&path);
            }
            let _ = crate::route::RouteTemplate::parse("/a/{id}/{rest*}").unwrap().matches(&path);
            let _ = parse_query(Some(&query));
            let _ = flatten_json_object(&body);
            let _ = names_a_member_twice(&body);
            let _ = crate::route::UpstreamBase::parse(&path);
        }

        #[test]
        fn deep_json_never_panics(depth in 0usize..200) {
            let text = format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
            let _ = flatten_json_object(text.as_bytes());
            let _ = names_a_member_twice(text.as_bytes());
        }
    }
}
