//! Routing: which connection a request is for (by `Host`, else by the first path segment), the path it
//! is forwarded with, and which configured route template that path matches.

use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

/// An `http` connection's upstream base URL: scheme, authority and an optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    https: bool,
    /// `host:port` (or `host`), as in the URL.
    authority: http::uri::Authority,
    /// The base path without a trailing slash (`""` for none).
    path: String,
}

/// Why an upstream URL is unusable.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Invalid(String),
    #[error("must be an http:// or https:// URL")]
    Scheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not have a query or fragment: the agent's request supplies them")]
    Query,
}

impl UpstreamBase {
    pub fn parse(url: &str) -> Result<UpstreamBase, UrlError> {
        if url.contains(['?', '#']) {
            return Err(UrlError::Query);
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Invalid(e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(UrlError::Scheme),
        };
        let authority = uri.authority().cloned().ok_or(UrlError::NoHost)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(UrlError::NoHost);
        }
        Ok(UpstreamBase {
            https,
            authority,
            path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host name (for logs).
    pub fn host(&self) -> &str {
        self.authority.host()
    }

    /// The upstream URI of a request for `path` (already normalised, starting with `/`) and `query`.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<http::Uri, http::Error> {
        let mut path_and_query = String::with_capacity(self.path.len() + path.len() + 1);
        path_and_query.push_str(&self.path);
        path_and_query.push_str(path);
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        http::Uri::builder()
            .scheme(if self.https { "https" } else { "http" })
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// Why a request path is refused rather than forwarded: each is a way to make the upstream see another
/// path than the one policy decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path has an empty segment ('//')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path has an encoded '/', '\\\\' or NUL, or a backslash")]
    EncodedSeparator,
}

/// Checks a request path (as sent, percent-encoded) and returns it unchanged if the upstream can only
/// read it one way: no dot segments (plain or encoded), no empty segments except a trailing slash, no
/// encoded slash, backslash or NUL. The upstream then resolves the same path the gateway matched.
pub fn normalize_path(path: &str) -> Result<&str, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if rest.is_empty() {
        return Ok(path);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, raw) in segments.iter().enumerate() {
        if raw.is_empty() {
            if i == last {
                continue;
            }
            return Err(PathError::EmptySegment);
        }
        if raw.contains('\\') {
            return Err(PathError::EncodedSeparator);
        }
        let lower = raw.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
            return Err(PathError::EncodedSeparator);
        }
        let decoded = percent_decode_str(raw).decode_utf8_lossy();
        if decoded == "." || decoded == ".." {
            return Err(PathError::DotSegment);
        }
    }
    Ok(path)
}

/// A route template: literal segments, `{name}` segments, and an optional final `{name*}` that takes
/// the rest of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Compared case-insensitively after percent-decoding: an upstream that ignores case must not
    /// reach a route by another spelling.
    Literal(String),
    Param(String),
    Rest(String),
}

/// Why a template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("must start with '/'")]
    NotAbsolute,
    #[error(
        "segment {0:?}: a parameter is a whole segment, `{{name}}`, with a name of letters, digits and '_'"
    )]
    BadParam(String),
    #[error("`{{name*}}` must be the last segment")]
    RestNotLast,
    #[error("empty segment ('//')")]
    Empty,
}

impl RouteTemplate {
    pub fn parse(text: &str) -> Result<RouteTemplate, TemplateError> {
        let rest = text.strip_prefix('/').ok_or(TemplateError::NotAbsolute)?;
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                if i + 1 == count {
                    break; // a trailing slash matches as if absent
                }
                return Err(TemplateError::Empty);
            }
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) => {
                    let (name, rest) = match inner.strip_suffix('*') {
                        Some(name) => (name, true),
                        None => (inner, false),
                    };
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(TemplateError::BadParam(part.to_owned()));
                    }
                    if rest {
                        if i + 1 != count {
                            return Err(TemplateError::RestNotLast);
                        }
                        Segment::Rest(name.to_owned())
                    } else {
                        Segment::Param(name.to_owned())
                    }
                }
                None if part.contains(['{', '}']) => return Err(TemplateError::BadParam(part.to_owned())),
                None => Segment::Literal(percent_decode_str(part).decode_utf8_lossy().to_lowercase()),
            };
            segments.push(segment);
        }
        Ok(RouteTemplate {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The template's parameters if `path` (checked by [`normalize_path`]) matches it.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let mut params = Vec::new();
        let mut parts_iter = parts.iter().enumerate();
        for segment in &self.segments {
            match segment {
                Segment::Rest(name) => {
                    let rest: Vec<&str> = parts_iter.map(|(_, p)| *p).collect();
                    if rest.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), decode(&rest.join("/"))));
                    return Some(params);
                }
                Segment::Literal(literal) => {
                    let (_, part) = parts_iter.next()?;
                    if decode(part).to_lowercase() != *literal {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let (_, part) = parts_iter.next()?;
                    params.push((name.clone(), decode(part)));
                }
            }
        }
        parts_iter.next().is_none().then_some(params)
    }

    /// How specific the template is: its literal segments. The most specific matching route wins.
    fn specificity(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }
}

fn decode(part: &str) -> String {
    percent_decode_str(part).decode_utf8_lossy().into_owned()
}

/// A template's parameters, `(name, value)` in template order.
pub(crate) type Params = Vec<(String, String)>;

/// The best route among `routes` for `path`: the most literal segments wins, then the first listed.
pub(crate) fn best_route<'a, T>(
    routes: impl IntoIterator<Item = (&'a RouteTemplate, T)>,
    path: &str,
) -> Option<(T, Params)> {
    let mut best: Option<(usize, T, Params)> = None;
    for (template, item) in routes {
        if let Some(params) = template.matches(path) {
            let score = template.specificity();
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, item, params));
            }
        }
    }
    best.map(|(_, item, params)| (item, params))
}

/// Connections by name (the path prefix) and by host.
#[derive(Debug)]
pub struct Routes<T> {
    by_name: HashMap<String, Arc<T>>,
    by_host: HashMap<String, Arc<T>>,
}

impl<T> Routes<T> {
    /// `targets` are (name, hosts, target).
    pub fn new(targets: impl IntoIterator<Item = (String, Vec<String>, Arc<T>)>) -> Self {
        let mut by_name = HashMap::new();
        let mut by_host = HashMap::new();
        for (name, hosts, target) in targets {
            for host in hosts {
                by_host.insert(configured_host(&host), Arc::clone(&target));
            }
            by_name.insert(name, target);
        }
        Routes { by_name, by_host }
    }

    /// The connection for a request to `host` (its `Host` or `:authority`, with or without a port) and
    /// `path`, and the path to forward. A configured host wins (the whole path is forwarded); else the
    /// first segment names the connection and is removed (`/crm/x` → `/x`, `/crm` → `/`).
    pub fn select<'p>(&self, host: Option<&str>, path: &'p str) -> Option<(&Arc<T>, &'p str)> {
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            let bare = strip_port(&host);
            if let Some(target) = self.by_host.get(&host).or_else(|| self.by_host.get(bare)) {
                return Some((target, path));
            }
        }
        let rest = path.strip_prefix('/')?;
        let (name, forwarded) = match rest.find('/') {
            Some(i) => (rest.get(..i)?, rest.get(i..)?),
            None => (rest, "/"),
        };
        self.by_name.get(name).map(|target| (target, forwarded))
    }
}

/// `host` without its port (the digits after the last `:`). An IPv6 literal keeps its brackets, as in a
/// URL and in the configured hosts (`[::1]:8080` → `[::1]`): only a `:` after the `]` starts a port.
fn strip_port(host: &str) -> &str {
    host.rsplit_once(':')
        .filter(|(h, port)| {
            port.chars().all(|c| c.is_ascii_digit()) && (h.ends_with(']') || !h.contains(':'))
        })
        .map_or(host, |(h, _)| h)
}

/// A configured host as requests name it: an IPv6 address written bare (`::1`) gets the brackets a
/// `Host` header always has (`[::1]`).
fn configured_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn params(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        RouteTemplate::parse(template).unwrap().matches(path)
    }

    fn p(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn templates_match_case_table() {
        let cases: &[(&str, &str, Option<Params>)] = &[
            ("/customers/{id}", "/customers/42", p(&[("id", "42")])),
            ("/customers/{id}", "/customers/42/", p(&[("id", "42")])),
            ("/customers/{id}", "/Customers/42", p(&[("id", "42")])),
            ("/customers/{id}", "/%63ustomers/a%20b", p(&[("id", "a b")])),
            ("/customers/{id}", "/customers", None),
            ("/customers/{id}", "/customers/42/orders", None),
            ("/customers", "/customers/", p(&[])),
            ("/", "/", p(&[])),
            ("/", "/x", None),
            ("/files/{path*}", "/files/a/b/c", p(&[("path", "a/b/c")])),
            ("/files/{path*}", "/files", None),
            (
                "/c/{id}/orders/{order}",
                "/c/1/orders/2",
                p(&[("id", "1"), ("order", "2")]),
            ),
        ];
        for (template, path, expected) in cases {
            assert_eq!(&params(template, path), expected, "{template} ~ {path}");
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "customers",
            "/a//b",
            "/a/{}",
            "/a/{x-y}",
            "/a/x{id}",
            "/{rest*}/x",
        ] {
            assert!(RouteTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let templates = [
            RouteTemplate::parse("/customers/{id}").unwrap(),
            RouteTemplate::parse("/customers/me").unwrap(),
        ];
        let routes = templates.iter().zip(["by-id", "me"]);
        assert_eq!(best_route(routes.clone(), "/customers/me").unwrap().0, "me");
        assert_eq!(best_route(routes, "/customers/7").unwrap().0, "by-id");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases: &[(&str, Result<(), PathError>)] = &[
            ("/a/b", Ok(())),
            ("/a/b/", Ok(())),
            ("/", Ok(())),
            ("a", Err(PathError::NotAbsolute)),
            ("/a//b", Err(PathError::EmptySegment)),
            ("//a", Err(PathError::EmptySegment)),
            ("/a/../b", Err(PathError::DotSegment)),
            ("/a/%2e%2E/b", Err(PathError::DotSegment)),
            ("/a/./b", Err(PathError::DotSegment)),
            ("/a%2Fb", Err(PathError::EncodedSeparator)),
            ("/a%5cb", Err(PathError::EncodedSeparator)),
            ("/a\\b", Err(PathError::EncodedSeparator)),
            ("/a%00", Err(PathError::EncodedSeparator)),
        ];
        for (path, expected) in cases {
            assert_eq!(normalize_path(path).map(|_| ()), *expected, "{path}");
        }
    }

    #[test]
    fn connections_are_selected_by_host_then_prefix() {
        let routes = Routes::new([
            ("crm".to_owned(), vec!["api.internal".to_owned()], Arc::new(1)),
            (
                "billing".to_owned(),
                vec!["bill.internal:8443".to_owned()],
                Arc::new(2),
            ),
            (
                "local".to_owned(),
                vec!["[::1]".to_owned(), "[FD00::A]:8443".to_owned()],
                Arc::new(3),
            ),
            ("bare".to_owned(), vec!["fd00::b".to_owned()], Arc::new(4)),
        ]);
        // Host header, path, and the connection chosen with the path it forwards.
        type Case<'a> = (Option<&'a str>, &'a str, Option<(i32, &'a str)>);
        let cases: &[Case<'_>] = &[
            (Some("API.internal:8080"), "/crm/x", Some((1, "/crm/x"))),
            (Some("API.INTERNAL"), "/x", Some((1, "/x"))),
            (Some("bill.internal:8443"), "/y", Some((2, "/y"))),
            (Some("BILL.internal:8443"), "/y", Some((2, "/y"))),
            (Some("bill.internal"), "/y", None),
            // IPv6 literals: the port follows the `]`; the brackets stay part of the host.
            (Some("[::1]"), "/y", Some((3, "/y"))),
            (Some("[::1]:8080"), "/y", Some((3, "/y"))),
            (Some("[::1]:"), "/y", Some((3, "/y"))),
            (Some("[fd00::a]:8443"), "/y", Some((3, "/y"))),
            (Some("[FD00::A]:8443"), "/y", Some((3, "/y"))),
            (Some("[fd00::a]"), "/y", None),
            (Some("[fd00::a]:80"), "/y", None),
            (Some("::1"), "/y", None),
            (Some("[::1]x"), "/y", None),
            // Configured without brackets, as requests never name it.
            (Some("[fd00::b]"), "/y", Some((4, "/y"))),
            (Some("[FD00::B]:8080"), "/y", Some((4, "/y"))),
            (Some("gw"), "/crm/x/y", Some((1, "/x/y"))),
            (Some("[::2]:8080"), "/crm/x", Some((1, "/x"))),
            (None, "/crm", Some((1, "/"))),
            (None, "/crmx/y", None),
            (None, "/", None),
        ];
        for (host, path, expected) in cases {
            let picked = routes.select(*host, path).map(|(t, p)| (**t, p));
            assert_eq!(picked, *expected, "{host:?} {path}");
        }
    }

    #[test]
    fn upstream_uris_join_the_base_path() {
        let base = UpstreamBase::parse("https://api.internal:8443/v1/").unwrap();
        assert!(base.is_https());
        assert_eq!(
            base.uri("/customers/1", Some("a=1")).unwrap().to_string(),
            "https://api.internal:8443/v1/customers/1?a=1"
        );
        for bad in ["ftp://x", "http://x/?a=1", "/relative", "http://user@x/"] {
            assert!(UpstreamBase::parse(bad).is_err(), "{bad}");
        }
    }
}
