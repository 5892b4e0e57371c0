//! Fuzzes routing: `RouteTemplate::parse` and `matches`, `normalize_path`, `Routes::select` and
//! `UpstreamBase::uri` on an arbitrary template, request target and `Host`.
//!
//! Input: UTF-8 lines `template <text>`, `target <path?query>`, `host <host>`, `value <parameter value>`
//! (repeatable) and `upper <bits>`; other lines are ignored. Lines rather than `arbitrary`'s encoding so
//! that the seeds are readable and built by hand.
//!
//! Oracles: the matcher agrees with a reference written over decoded segments; a path built from a
//! template and chosen parameter values (percent-encoded) matches with exactly those values; an accepted
//! path has no segment an upstream could read as another path; the connection chosen is the one a
//! reference picks by host, then by prefix; the upstream URI keeps the base's scheme and authority and
//! carries exactly the path and query policy saw.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use portcullis_http::{RouteTemplate, Routes, UpstreamBase, normalize_path};

#[derive(Debug, Default)]
struct Input<'a> {
    template: Option<&'a str>,
    /// The request target as a client sends it: a path, maybe a query.
    target: &'a str,
    host: Option<&'a str>,
    /// Values for the template's parameters, in order (reused when there are fewer).
    values: Vec<&'a str>,
    /// Bit i upper-cases the ASCII letters of the template's i-th literal in the built path.
    case_flips: u32,
}

impl<'a> Input<'a> {
    fn read(text: &'a str) -> Input<'a> {
        let mut input = Input::default();
        for line in text.split('\n') {
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "template" => input.template = Some(rest),
                "target" => input.target = rest,
                "host" => input.host = Some(rest),
                "value" => input.values.push(rest),
                "upper" => input.case_flips = rest.parse().unwrap_or(u32::MAX),
                _ => {}
            }
        }
        input
    }
}

/// The connections of the `Routes` under test: name, hosts.
const CONNECTIONS: [(&str, &[&str]); 3] = [
    ("crm", &["api.internal"]),
    ("billing", &["bill.internal:8443", "Billing.Example"]),
    ("files", &["[FD00::1]"]),
];

const BASES: [&str; 3] = [
    "https://api.internal:8443/v1",
    "http://10.0.0.1",
    "http://upstream.internal/base/",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::read(text);
    check_normalize(input.target);
    if let Some(Ok(template)) = input.template.map(RouteTemplate::parse) {
        check_template(&template, &input);
    }
    check_request(&input);
});

/// An accepted path is returned unchanged, and no upstream decoding of it can see another path: every
/// segment is non-empty (bar a trailing slash), is not `.` or `..` once decoded, and decodes to no `/`,
/// `\` or NUL that was not already there.
fn check_normalize(path: &str) {
    let Ok(accepted) = normalize_path(path) else {
        return;
    };
    assert_eq!(accepted, path, "normalize_path changed the path");
    let rest = path.strip_prefix('/').expect("an accepted path is absolute");
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return;
    }
    for segment in rest.split('/') {
        assert!(!segment.is_empty(), "empty segment accepted in {path:?}");
        let bytes: Vec<u8> = percent_decode_str(segment).collect();
        // A raw NUL is not the decoder's to refuse: hyper refuses control characters in a request target
        // before the gateway sees it. An encoded one is.
        let nul = bytes.contains(&0) && !segment.contains('\0');
        assert!(
            !nul && !bytes.iter().any(|b| matches!(b, b'/' | b'\\')),
            "segment {segment:?} of {path:?} decodes to a separator or NUL"
        );
        let lossy = String::from_utf8_lossy(&bytes);
        assert!(
            lossy != "." && lossy != "..",
            "dot segment {segment:?} accepted in {path:?}"
        );
    }
}

/// One segment of a template as the reference reads it.
#[derive(Debug)]
enum Want<'a> {
    /// Decoded and lower-cased.
    Literal(String),
    Param(&'a str),
    Rest(&'a str),
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The segments of an accepted template, read again from its text.
fn reference_segments(text: &str) -> Vec<(Want<'_>, &str)> {
    let rest = text.strip_prefix('/').expect("an accepted template is absolute");
    rest.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let want = match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(inner) => match inner.strip_suffix('*') {
                    Some(name) => Want::Rest(name),
                    None => Want::Param(inner),
                },
                None => Want::Literal(decode(s).to_lowercase()),
            };
            (want, s)
        })
        .collect()
}

/// The reference matcher: a path's segments (one trailing slash ignored), decoded one by one, against
/// the template's, position by position; a final `{name*}` takes one or more remaining segments.
fn reference_match(template: &[(Want<'_>, &str)], path: &str) -> Option<Vec<(String, String)>> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<String> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').map(decode).collect()
    };
    let (fixed, rest) = match template.split_last() {
        Some(((Want::Rest(name), _), fixed)) => (fixed, Some(*name)),
        _ => (template, None),
    };
    let enough = match rest {
        None => parts.len() == fixed.len(),
        Some(_) => parts.len() > fixed.len(),
    };
    if !enough {
        return None;
    }
    let mut params = Vec::new();
    for ((want, _), part) in fixed.iter().zip(&parts) {
        match want {
            Want::Literal(literal) => {
                if part.to_lowercase() != *literal {
                    return None;
                }
            }
            Want::Param(name) => params.push(((*name).to_owned(), part.clone())),
            Want::Rest(_) => panic!("`{{name*}}` accepted before the last segment"),
        }
    }
    if let Some(name) = rest {
        let tail = parts.get(fixed.len()..).unwrap_or_default().join("/");
        params.push((name.to_owned(), tail));
    }
    Some(params)
}

fn check_template(template: &RouteTemplate, input: &Input) {
    assert_eq!(Some(template.as_str()), input.template);
    let segments = reference_segments(template.as_str());

    // Arbitrary paths: the matcher and the reference agree.
    let path = input.target.split('?').next().unwrap_or_default();
    assert_eq!(
        template.matches(path),
        reference_match(&segments, path),
        "{:?} ~ {path:?}",
        template.as_str()
    );

    // A path built from the template: it matches, with the values it was built from.
    let mut built = String::new();
    let mut expected = Vec::new();
    let mut values = input.values.iter().cycle();
    let mut literal_index = 0;
    for (want, raw) in &segments {
        built.push('/');
        match want {
            Want::Literal(_) => {
                if input.case_flips.checked_shr(literal_index).unwrap_or(0) & 1 == 1 {
                    built.push_str(&raw.to_ascii_uppercase());
                } else {
                    built.push_str(raw);
                }
                literal_index += 1;
            }
            Want::Param(name) => {
                let value = match values.next().copied() {
                    Some(v) if !v.is_empty() => v,
                    _ => "_",
                };
                built.extend(utf8_percent_encode(value, NON_ALPHANUMERIC));
                expected.push(((*name).to_owned(), value.to_owned()));
            }
            Want::Rest(name) => {
                let value = match values.next().copied() {
                    Some(v) if !v.is_empty() => v,
                    _ => "_",
                };
                // Slashes stay separators, except a final one (the matcher ignores a trailing slash).
                let (body, last_slash) = match value.strip_suffix('/') {
                    Some(body) => (body, true),
                    None => (value, false),
                };
                let pieces: Vec<String> = body
                    .split('/')
                    .map(|p| utf8_percent_encode(p, NON_ALPHANUMERIC).to_string())
                    .collect();
                built.push_str(&pieces.join("/"));
                if last_slash {
                    built.push_str("%2F");
                }
                expected.push(((*name).to_owned(), value.to_owned()));
            }
        }
    }
    if built.is_empty() {
        built.push('/');
    }
    assert_eq!(
        template.matches(&built),
        Some(expected),
        "{:?} ~ built {built:?}",
        template.as_str()
    );
}

/// A `Host` with its port removed (digits after the last `:`); an IPv6 literal keeps its brackets, and
/// only a `:` after its `]` starts a port.
fn reference_bare(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((bare, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && (bare.ends_with(']') || !bare.contains(':')) =>
        {
            bare
        }
        _ => host,
    }
}

/// The reference selection: a configured host (exactly, or without the request's port), else the first
/// path segment names the connection and the rest is forwarded.
fn reference_select(host: Option<&str>, path: &str) -> Option<(usize, String)> {
    if let Some(host) = host {
        let host = host.to_ascii_lowercase();
        let bare = reference_bare(&host);
        for want in [host.as_str(), bare] {
            for (i, (_, hosts)) in CONNECTIONS.iter().enumerate() {
                if hosts.iter().any(|h| h.eq_ignore_ascii_case(want)) {
                    return Some((i, path.to_owned()));
                }
            }
        }
    }
    let rest = path.strip_prefix('/')?;
    let (name, forwarded) = match rest.split_once('/') {
        Some((name, tail)) => (name, format!("/{tail}")),
        None => (rest, "/".to_owned()),
    };
    CONNECTIONS
        .iter()
        .position(|(n, _)| *n == name)
        .map(|i| (i, forwarded))
}

/// The request as the proxy handles it: the target parsed as hyper would, the connection selected, the
/// path checked, the upstream URI built.
fn check_request(input: &Input) {
    let routes = Routes::new(CONNECTIONS.iter().enumerate().map(|(i, (name, hosts))| {
        (
            (*name).to_owned(),
            hosts.iter().map(|h| (*h).to_owned()).collect(),
            Arc::new(i),
        )
    }));
    let Ok(target) = http::uri::PathAndQuery::try_from(input.target) else {
        return;
    };
    let host = input.host;
    let selected = routes.select(host, target.path());
    assert_eq!(
        selected.map(|(i, p)| (**i, p.to_owned())),
        reference_select(host, target.path()),
        "select({host:?}, {:?})",
        target.path()
    );
    let Some((index, path)) = selected else {
        return;
    };
    let Ok(path) = normalize_path(path) else {
        return;
    };
    let Some(base_text) = BASES.get(**index) else {
        return;
    };
    let base = UpstreamBase::parse(base_text).expect("the test bases parse");
    let Ok(uri) = base.uri(path, target.query()) else {
        return;
    };
    // The request can never choose another upstream, nor make it see another path than policy did.
    let want: http::Uri = base_text.parse().expect("the test bases parse");
    assert_eq!(uri.scheme(), want.scheme(), "{uri}");
    assert_eq!(uri.authority(), want.authority(), "{uri}");
    let base_path = want.path().trim_end_matches('/');
    assert_eq!(uri.path(), format!("{base_path}{path}"), "{uri}");
    assert_eq!(uri.query(), target.query(), "{uri}");
}
