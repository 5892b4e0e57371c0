//! Fuzzes `request_facts` (what policy sees of a request) and `parse_query` on an arbitrary method,
//! path, query, headers, route templates and header allow-list.
//!
//! Oracles: a refusal is 405 exactly for the methods the gateway does not forward, else 400 for a path
//! `normalize_path` refuses or a query over the parameter bound; accepted facts carry the path unchanged,
//! the query as `parse_query` decodes it (bounded, and agreeing with a count of its `&`-separated pairs
//! and with a re-encoding), the route a reference picks (most literal segments, then the first listed)
//! with that template's parameters, and every allow-listed header value as text (invalid UTF-8 replaced).
//!
//! Input: UTF-8 lines `method <M>`, `path <P>`, `query <Q>`, `route <template>`, `header <name>:<value>`
//! and `allow <name>` (the last three repeatable); other lines are ignored. `x-tenant` is always
//! allow-listed.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use portcullis_core::HttpAction;
use portcullis_http::{RouteTemplate, normalize_path, parse_query, request_facts};

/// `facts::MAX_QUERY_PARAMS` (not exported): more query parameters than this are refused.
const MAX_QUERY_PARAMS: usize = 128;

#[derive(Debug, Default)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    templates: Vec<&'a str>,
    /// Allow-listed header names, besides `x-tenant`.
    allow: Vec<&'a str>,
}

impl<'a> Input<'a> {
    fn read(text: &'a str) -> Input<'a> {
        let mut input = Input::default();
        for line in text.split('\n') {
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "method" => input.method = rest,
                "path" => input.path = rest,
                "query" => input.query = Some(rest),
                "route" => input.templates.push(rest),
                "header" => input.headers.push(rest.split_once(':').unwrap_or((rest, ""))),
                "allow" => input.allow.push(rest),
                _ => {}
            }
        }
        input
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::read(text);
    if let Some(query) = input.query {
        check_query(query);
    }
    let Ok(method) = Method::from_bytes(input.method.as_bytes()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let mut allow = vec![HeaderName::from_static("x-tenant")];
    allow.extend(
        input
            .allow
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()),
    );
    let routes: Vec<(String, RouteTemplate)> = input
        .templates
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((format!("r{i}"), RouteTemplate::parse(t).ok()?)))
        .collect();

    let query = input.query;
    let facts = match request_facts(&method, input.path, query, &headers, &routes, &allow) {
        Ok(facts) => facts,
        Err(problem) => {
            let expected = if HttpAction::of_method(method.as_str()).is_none() {
                StatusCode::METHOD_NOT_ALLOWED
            } else {
                assert!(
                    normalize_path(input.path).is_err() || parse_query(query).is_none(),
                    "refused a request with a good path and query: {problem:?}"
                );
                StatusCode::BAD_REQUEST
            };
            assert_eq!(problem.status, expected, "{problem:?}");
            return;
        }
    };

    assert_eq!(Some(facts.action), HttpAction::of_method(method.as_str()));
    assert_eq!(facts.method, method.as_str());
    assert_eq!(facts.path, input.path);
    assert!(normalize_path(&facts.path).is_ok());
    assert_eq!(Some(&facts.query), parse_query(query).as_ref());
    assert!(facts.query.len() <= MAX_QUERY_PARAMS);
    assert_eq!(facts.body, None, "request_facts never reads the body");

    // The route: the most literal segments wins, then the first listed.
    let mut best: Option<(usize, &String, &RouteTemplate, Vec<(String, String)>)> = None;
    for (name, template) in &routes {
        if let Some(params) = template.matches(&facts.path) {
            let score = literal_segments(template.as_str());
            if best.as_ref().is_none_or(|(s, ..)| score > *s) {
                best = Some((score, name, template, params));
            }
        }
    }
    match best {
        Some((_, name, template, params)) => {
            let route = facts.route.as_ref().expect("a matching route was not chosen");
            assert_eq!(&route.name, name);
            assert_eq!(route.template, template.as_str());
            assert_eq!(facts.params, params);
        }
        None => {
            assert_eq!(facts.route, None);
            assert!(facts.params.is_empty());
        }
    }

    // The headers: every value of every allow-listed name, in allow-list order, as text (bytes that are
    // not UTF-8 replaced); nothing else.
    let mut want = Vec::new();
    for name in &allow {
        for value in headers.get_all(name) {
            let text: String = value
                .as_bytes()
                .utf8_chunks()
                .flat_map(|chunk| {
                    let bad = (!chunk.invalid().is_empty()).then_some('\u{FFFD}');
                    chunk.valid().chars().chain(bad)
                })
                .collect();
            want.push((name.as_str().to_owned(), text));
        }
    }
    assert_eq!(facts.headers, want);
});

/// A template's literal segments, counted from its text.
fn literal_segments(template: &str) -> usize {
    template
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .count()
}

/// `parse_query` is bounded, yields one pair per non-empty `&`-separated piece, and its pairs encode
/// and decode back to themselves.
fn check_query(query: &str) {
    let pieces = query.split('&').filter(|p| !p.is_empty()).count();
    let Some(pairs) = parse_query(Some(query)) else {
        assert!(pieces > MAX_QUERY_PARAMS, "{pieces} pairs refused");
        return;
    };
    assert!(pairs.len() <= MAX_QUERY_PARAMS);
    assert_eq!(pairs.len(), pieces, "{query:?}");
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    assert_eq!(
        parse_query(Some(&encoded)).as_ref(),
        Some(&pairs),
        "{query:?} -> {encoded:?}"
    );
}
