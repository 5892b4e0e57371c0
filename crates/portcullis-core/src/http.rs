//! `HttpRequestFacts`: what one HTTP request asks of a connection, in terms policy can name. The HTTP
//! front end produces them; the policy engine decides on them.

use serde::Serialize;

/// What an HTTP request does, by its method: each is one Cedar action (`http_read`, `http_write`,
/// `http_delete`, in the group `http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAction {
    /// GET, HEAD, OPTIONS.
    Read,
    /// POST, PUT, PATCH.
    Write,
    /// DELETE.
    Delete,
}

impl HttpAction {
    /// Every action, in declaration order.
    pub const ALL: [HttpAction; 3] = [HttpAction::Read, HttpAction::Write, HttpAction::Delete];

    /// The action of a request method; `None` for methods the gateway does not forward (TRACE,
    /// CONNECT, extension methods): they are refused.
    pub fn of_method(method: &str) -> Option<HttpAction> {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Some(HttpAction::Read),
            "POST" | "PUT" | "PATCH" => Some(HttpAction::Write),
            "DELETE" => Some(HttpAction::Delete),
            _ => None,
        }
    }

    /// The short name used in logs and metrics: `read`, `write`, `delete`.
    pub fn name(self) -> &'static str {
        match self {
            HttpAction::Read => "read",
            HttpAction::Write => "write",
            HttpAction::Delete => "delete",
        }
    }

    /// The Cedar action's id: `Action::"http_read"`, ...
    pub fn action(self) -> &'static str {
        match self {
            HttpAction::Read => "http_read",
            HttpAction::Write => "http_write",
            HttpAction::Delete => "http_delete",
        }
    }
}

/// A configured route template a request matched: `Route::"<connection>/<name>"` in policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRef {
    pub name: String,
    /// As configured, e.g. `/customers/{id}`.
    pub template: String,
}

/// One request's facts. Names are lower case where HTTP says they are case-insensitive (header names);
/// everything is bounded by the front end before it gets here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequestFacts {
    pub action: HttpAction,
    /// The method as sent (`GET`, `POST`, ...).
    pub method: String,
    /// The path as forwarded upstream (after the connection's prefix is removed, normalised), without
    /// the query.
    pub path: String,
    /// The route template the path matched, if any.
    pub route: Option<RouteRef>,
    /// The template's parameters (`{id}` → `("id", "42")`), percent-decoded.
    pub params: Vec<(String, String)>,
    /// Query parameters in order, percent-decoded; a repeated name appears once per value.
    pub query: Vec<(String, String)>,
    /// The request headers the connection allow-lists (`context_headers`), names lower case.
    pub headers: Vec<(String, String)>,
    /// The JSON body's fields (dotted paths to scalar values, rendered as text) when the body is a
    /// small JSON object; `None` when there is no such body or it was too large to inspect.
    pub body: Option<Vec<(String, String)>>,
}
