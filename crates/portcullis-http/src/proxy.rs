//! The proxy's request pipeline: token, connection, request facts, decision, forward, response. Each
//! stage is a call; the branches say what the client sees.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version, header};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portcullis_core::HttpRequestFacts;
use tracing::{debug, info};

use crate::body::{Filtered, ProxyBody, Replayed, ResponseFilter, Watched, boxed, empty};
use crate::facts::{self, is_json, peek_body};
use crate::headers;
use crate::mcp::{McpExchange, McpRequest, McpSettings};
use crate::problem::Problem;
use crate::route::Routes;
use crate::upstream::Upstream;

/// What the gateway decides for the proxy. The binary implements it: token verification and
/// revocation, policy, the audit record, and (later) approvals and masking. The proxy never decides
/// or records itself.
pub trait Gate: Send + Sync + 'static {
    /// A verified caller.
    type Identity: Send + Sync + 'static;

    /// What the gate keeps of a request it let through (its audit record), told how the exchange
    /// ended. `()` when the gate keeps nothing.
    type Pass: Completion;

    /// What the gate keeps of one client connection (its audit sessions): made when the connection
    /// is accepted, handed to every request on it, dropped when the connection and its last request
    /// have ended.
    type Client: ClientState;

    /// The state of a newly accepted client connection.
    fn client(&self) -> Self::Client;

    /// Verifies the bearer token (the first thing done with any request): the caller, or the 401
    /// (or 503) problem to answer with.
    fn authenticate(
        &self,
        token: &str,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<Self::Identity, Problem>> + Send;

    /// May the caller make this request? Nothing is forwarded before this says yes (and whatever
    /// the gate must write first is written). A refusal here is the gate's to record.
    fn decide(
        &self,
        who: &Self::Identity,
        client: &Self::Client,
        request: &RequestInfo<'_>,
    ) -> impl Future<Output = Result<Self::Pass, Problem>> + Send;

    /// A verified caller's request is refused before [`Gate::decide`] could see it: no connection by
    /// that host or prefix (404), a path or method the gateway will not forward (400, 405). Called
    /// before the refusal is sent.
    fn refused(
        &self,
        _who: &Self::Identity,
        _client: &Self::Client,
        _request: &RefusedRequest<'_>,
        _problem: &Problem,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The headers of the request about to be sent upstream, after the gateway's own changes
    /// (hop-by-hop and `Authorization` removed, forwarding headers; the credential is added after): an
    /// edit by the gate (masking removes `Accept-Encoding`,
    /// because it cannot read compressed bodies).
    fn upstream_headers(
        &self,
        _who: &Self::Identity,
        _request: &RequestInfo<'_>,
        _pass: &Self::Pass,
        _headers: &mut http::HeaderMap,
    ) {
    }

    /// A filter for this response's body (masking, recording), `None` to stream it untouched, or a
    /// problem to answer with instead, decided on the response's headers before any of its body is
    /// sent (a body the gate cannot filter). The pass then hears [`Ending::Refused`].
    fn response_filter(
        &self,
        _who: &Self::Identity,
        _request: &RequestInfo<'_>,
        _pass: &Self::Pass,
        _response: &http::response::Parts,
    ) -> Result<Option<Box<dyn ResponseFilter>>, Problem> {
        Ok(None)
    }

    /// A request was answered with `status` (by the upstream or by the gateway); `connection` when
    /// one was selected. For metrics.
    fn completed(&self, _connection: Option<&str>, _status: StatusCode) {}
}

/// A client connection's state, as the listener sees it.
pub trait ClientState: Send + Sync + 'static {
    /// Resolves when the gate ends the connection (an operator killed its session or revoked its
    /// identity): the listener then closes it, whatever is in flight, and an upgraded connection's
    /// tunnel closes too. Never, by default.
    fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
}

/// One request as the gate sees it.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    pub peer: SocketAddr,
    /// Whether the client reached the gateway over TLS.
    pub tls: bool,
    pub connection: &'a str,
    /// The request target as the agent sent it: path (with the connection's prefix) and query.
    pub target: &'a str,
    pub facts: &'a HttpRequestFacts,
    /// On a connection's MCP endpoint: what the request carries (see `docs/protocols/mcp.md`).
    pub mcp: Option<&'a McpExchange>,
    /// What the proxy read of the request body before the decision (an approval binds it).
    pub body: &'a BodySeen,
    /// The request's `Content-Type`, when it has a readable one.
    pub content_type: Option<&'a str>,
}

/// What the proxy read of a request body before the decision; the read bytes are forwarded as they
/// are, after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySeen {
    /// No body (the request ended with its headers).
    Empty,
    /// Read whole: a JSON body within `inspect_body_bytes`, or an MCP endpoint's JSON-RPC POST.
    Read(Bytes),
    /// Not read, or not whole: it streams to the upstream after the decision, unseen by the gate.
    Unread,
}

/// A verified caller's request the proxy refused before the gate's decision.
#[derive(Debug)]
pub struct RefusedRequest<'a> {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The connection, when one was selected.
    pub connection: Option<&'a str>,
    pub method: &'a str,
    /// The request target as the agent sent it: path and query.
    pub target: &'a str,
}

/// Told once how an exchange that [`Gate::decide`] let through ended. Runs on the proxy's task (or
/// the body's, when the client drops it): it must not block.
pub trait Completion: Send + 'static {
    fn finished(self, ending: Ending<'_>);

    /// How many of the response body's first bytes (as the client receives them, after any filter)
    /// [`Ending::Responded`] should carry, for a record of the exchange.
    fn record_limit(&self) -> usize {
        0
    }
}

impl Completion for () {
    fn finished(self, _ending: Ending<'_>) {}
}

impl<C: Completion> Completion for Option<C> {
    fn finished(self, ending: Ending<'_>) {
        if let Some(completion) = self {
            completion.finished(ending);
        }
    }

    fn record_limit(&self) -> usize {
        self.as_ref().map_or(0, Completion::record_limit)
    }
}

/// How an allowed exchange ended.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// The gateway answered with a problem after the decision (the upstream unreachable, 502; no
    /// response in time, 504; the credential unavailable, 502; a target it cannot forward, 400; a
    /// response the gate's filter refused on its headers).
    Refused(&'a Problem),
    /// The upstream's response was passed on: its status, how its body ended, and what of it passed.
    Responded {
        status: StatusCode,
        body: BodyEnd,
        sent: &'a BodySent,
    },
}

/// What passed of a response body to the client: its content type, its length so far, and its first
/// bytes up to the completion's [`Completion::record_limit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodySent {
    /// The response's `Content-Type`, when it had one that is text (kept only when recording).
    pub content_type: Option<String>,
    pub bytes: u64,
    pub head: Vec<u8>,
}

/// How a passed-on response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Streamed to its end.
    Complete,
    /// The upstream's body failed (or a response filter cut it off) part-way.
    Failed,
    /// The client went away before the end.
    ClientGone,
    /// A `101`: both sides switched protocols and have now closed the upgraded connection.
    Upgraded,
}

/// Bounds on what the proxy holds per request.
#[derive(Debug, Clone, Copy)]
pub struct ProxyLimits {
    /// The largest JSON request body read for policy; larger ones stream on uninspected.
    pub inspect_body_bytes: usize,
}

/// The reverse proxy: connections by name and host, and the gate that decides.
#[derive(Debug)]
pub struct Proxy<G> {
    gate: G,
    routes: Routes<Upstream>,
    limits: ProxyLimits,
}

impl<G: Gate> Proxy<G> {
    /// The gate, for the listener (each connection's [`Gate::client`]).
    pub fn gate(&self) -> &G {
        &self.gate
    }

    pub fn new(gate: G, upstreams: Vec<(Vec<String>, Upstream)>, limits: ProxyLimits) -> Self {
        let routes = Routes::new(
            upstreams
                .into_iter()
                .map(|(hosts, upstream)| (upstream.name().to_owned(), hosts, Arc::new(upstream))),
        );
        Proxy { gate, routes, limits }
    }

    /// Answers one request: the upstream's response, or a problem document.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        client: &G::Client,
    ) -> Response<ProxyBody> {
        // A refusal leaves an unread body behind: the client must not reuse the connection for another
        // request (HTTP/1.1; HTTP/2 streams are independent and hyper drops the header there).
        let body_pending = !req.body().is_end_stream();
        let refuse = |connection: Option<&str>, problem: Problem| {
            let mut response = self.refuse(connection, problem);
            if body_pending {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            response
        };
        // 1. The token, first: without a valid one a client learns nothing, not even which
        //    connections exist. It is never forwarded, logged or echoed.
        let token = match bearer(req.headers()) {
            Ok(token) => token,
            Err(problem) => return refuse(None, problem),
        };
        let who = match self.gate.authenticate(token, peer).await {
            Ok(who) => who,
            Err(problem) => return refuse(None, problem),
        };

        // 2. The connection, by host or by the first path segment.
        let host = request_host(&req).map(str::to_owned);
        let target = request_target(&req).to_owned();
        let Some((upstream, path)) = self.routes.select(host.as_deref(), req.uri().path()) else {
            let problem = Problem::no_connection(
                "no connection by this host or path prefix: call /<connection>/<path> with a configured connection's name",
            );
            let refused = RefusedRequest {
                peer,
                tls,
                connection: None,
                method: req.method().as_str(),
                target: &target,
            };
            self.gate.refused(&who, client, &refused, &problem).await;
            return refuse(None, problem);
        };
        let upstream = Arc::clone(upstream);
        let path = path.to_owned();

        // 3. Facts, decision, forward.
        let sent = Sent {
            peer,
            tls,
            host: host.as_deref(),
            target: &target,
        };
        match self.forward(&who, client, &upstream, &path, sent, req).await {
            Ok(response) => {
                self.gate.completed(Some(upstream.name()), response.status());
                response
            }
            Err(problem) => refuse(Some(upstream.name()), problem),
        }
    }

    async fn forward(
        &self,
        who: &G::Identity,
        client: &G::Client,
        upstream: &Upstream,
        path: &str,
        sent: Sent<'_>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Problem> {
        let settings = &upstream.settings;
        let name = settings.name.as_str();
        let (peer, tls) = (sent.peer, sent.tls);
        let method = req.method().clone();

        // 3a. What the request is, in policy's terms. Paths an upstream could read two ways are refused
        //     (and the refusal shown to the gate, which records it).
        let refused = RefusedRequest {
            peer,
            tls,
            connection: Some(name),
            method: method.as_str(),
            target: sent.target,
        };
        let mut facts = match facts::request_facts(
            req.method(),
            path,
            req.uri().query(),
            req.headers(),
            &settings.routes,
            &settings.context_headers,
        ) {
            Ok(facts) => facts,
            Err(problem) => return Err(self.refused(who, client, &refused, problem).await),
        };
        let query = req.uri().query().map(str::to_owned);
        let upgrade = headers::upgrade_requested(req.headers());
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        // On an MCP endpoint a POST is JSON-RPC, read whole (bounded) for the gate to decide each call.
        let mcp_endpoint = settings.mcp.as_ref().filter(|m| m.covers(&facts.path));
        let inspected = match mcp_endpoint {
            Some(mcp) if method == http::Method::POST => {
                read_mcp(mcp, &parts.headers, body)
                    .await
                    .map(|(fields, body, request, seen)| {
                        (fields, body, Some(McpExchange::Messages(request)), seen)
                    })
            }
            Some(_) => {
                let seen = unread(&body);
                Ok((None, boxed(body), Some(McpExchange::Other), seen))
            }
            None => self
                .inspect_body(&parts.headers, body)
                .await
                .map(|(fields, body, seen)| (fields, body, None, seen)),
        };
        let (body_fields, body, mcp, seen) = match inspected {
            Ok(inspected) => inspected,
            Err(problem) => return Err(self.refused(who, client, &refused, problem).await),
        };
        facts.body = body_fields;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let info = RequestInfo {
            peer,
            tls,
            connection: name,
            target: sent.target,
            facts: &facts,
            mcp: mcp.as_ref(),
            body: &seen,
            content_type: content_type.as_deref(),
        };

        // 3b. The decision (and the gate's write-ahead record). Nothing reaches the upstream before it.
        let pass = self.gate.decide(who, client, &info).await?;

        // 3c. The upstream request: the gateway's URI, headers and credential. From here on, the pass
        //     hears how the exchange ended.
        headers::to_upstream(&mut parts.headers, upgrade.as_ref(), peer.ip(), tls, sent.host);
        self.gate.upstream_headers(who, &info, &pass, &mut parts.headers);
        let prepared = async {
            parts.uri = settings
                .base
                .uri(&facts.path, query.as_deref())
                .map_err(|_| Problem::bad_request("the request target cannot be forwarded"))?;
            parts.version = Version::HTTP_11;
            parts.extensions = http::Extensions::new();
            settings.credential.apply(&mut parts.headers).await.map_err(|e| {
                info!(connection = name, error = %e, "upstream credential unavailable");
                Problem::bad_gateway(format!(
                    "connection {name:?}: the gateway could not obtain its upstream credential"
                ))
            })?;
            send(upstream, Request::from_parts(parts, body), upgrade.is_some()).await
        };
        let response = match prepared.await {
            Ok(response) => response,
            Err(problem) => {
                pass.finished(Ending::Refused(&problem));
                return Err(problem);
            }
        };

        // 4. An upgrade (WebSocket): both sides switch, then bytes flow both ways untouched.
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                let problem = Problem::bad_gateway(format!(
                    "connection {name:?}: the upstream switched protocols unasked"
                ));
                pass.finished(Ending::Refused(&problem));
                return Err(problem);
            };
            return Ok(switch_protocols(
                name,
                response,
                client_upgrade,
                pass,
                client.ended(),
            ));
        }

        // 5. The response streams back, through the gate's filter when it installs one (or is refused
        //    on its headers, before any of its body is sent); the pass hears when the body ended (or
        //    the client left).
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, None);
        parts.version = Version::HTTP_11;
        let mut body = boxed(body);
        match self.gate.response_filter(who, &info, &pass, &parts) {
            Ok(None) => {}
            Ok(Some(filter)) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                body = boxed(Filtered::new(body, filter));
            }
            Err(problem) => {
                pass.finished(Ending::Refused(&problem));
                return Err(problem);
            }
        }
        let content_type = parts.headers.get(header::CONTENT_TYPE);
        let body = boxed(Watched::new(body, parts.status, content_type, pass));
        Ok(Response::from_parts(parts, body))
    }

    /// Shows the gate a refusal made before its decision; returns the problem to answer with.
    async fn refused(
        &self,
        who: &G::Identity,
        client: &G::Client,
        request: &RefusedRequest<'_>,
        problem: Problem,
    ) -> Problem {
        self.gate.refused(who, client, request, &problem).await;
        problem
    }

    /// The request body, and its fields when it is a JSON object within the inspection cap. A larger
    /// body is read only up to the cap and then streams on; policy sees no `body`.
    async fn inspect_body(
        &self,
        headers: &http::HeaderMap,
        body: Incoming,
    ) -> Result<(Option<Vec<(String, String)>>, ProxyBody, BodySeen), Problem> {
        let cap = self.limits.inspect_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let inspectable = cap > 0
            && is_json(headers)
            && !body.is_end_stream()
            && declared.is_none_or(|len| len <= cap as u64);
        if !inspectable {
            let seen = unread(&body);
            return Ok((None, boxed(body), seen));
        }
        let peeked = peek_body(body, cap)
            .await
            .map_err(|_| Problem::bad_request("the request body could not be read"))?;
        let complete = peeked.complete_bytes();
        let fields = match complete.as_deref() {
            Some(bytes) => facts::body_fields(bytes)?,
            None => None,
        };
        let seen = complete.map_or(BodySeen::Unread, BodySeen::Read);
        Ok((fields, boxed(Replayed::new(peeked.frames, peeked.rest)), seen))
    }

    fn refuse(&self, connection: Option<&str>, problem: Problem) -> Response<ProxyBody> {
        self.gate.completed(connection, problem.status);
        problem.into_response()
    }
}

/// A body the proxy does not read before the decision: none at all, or unseen.
fn unread(body: &Incoming) -> BodySeen {
    if body.is_end_stream() {
        BodySeen::Empty
    } else {
        BodySeen::Unread
    }
}

/// An MCP endpoint's POST body, read whole up to the connection's bound and parsed as JSON-RPC: its
/// fields (for the HTTP decision, as a JSON body's), the body to forward, the messages. Not JSON, too
/// large or not JSON-RPC: refused (400, 413), since the calls in it could not be decided.
async fn read_mcp(
    mcp: &McpSettings,
    headers: &http::HeaderMap,
    body: Incoming,
) -> Result<(Option<Vec<(String, String)>>, ProxyBody, McpRequest, BodySeen), Problem> {
    if !is_json(headers) {
        return Err(Problem::bad_request(
            "an MCP request must be a JSON-RPC message with Content-Type: application/json",
        ));
    }
    let too_large = || {
        Problem::too_large(format!(
            "an MCP request body larger than {} bytes is not forwarded",
            mcp.max_body_bytes
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > mcp.max_body_bytes as u64) {
        return Err(too_large());
    }
    let peeked = peek_body(body, mcp.max_body_bytes)
        .await
        .map_err(|_| Problem::bad_request("the request body could not be read"))?;
    let bytes = peeked.complete_bytes().ok_or_else(too_large)?;
    let (request, value) = McpRequest::read(&bytes)
        .map_err(|e| Problem::bad_request(format!("not a JSON-RPC request the gateway can decide: {e}")))?;
    let fields = facts::flatten_value(&value);
    Ok((
        fields,
        boxed(Replayed::new(peeked.frames, peeked.rest)),
        request,
        BodySeen::Read(bytes),
    ))
}

/// Sends the prepared request on the connection's pooled client (the HTTP/1.1-only one for an
/// upgrade), within its response timeout; failures become 502 or 504 problems in the gateway's words.
async fn send(
    upstream: &Upstream,
    request: Request<ProxyBody>,
    upgrade: bool,
) -> Result<Response<Incoming>, Problem> {
    let settings = &upstream.settings;
    let name = settings.name.as_str();
    let client = if upgrade {
        &upstream.upgrade_client
    } else {
        &upstream.client
    };
    match tokio::time::timeout(settings.response_timeout, client.request(request)).await {
        Ok(Ok(response)) => Ok(response),
        Err(_) => Err(Problem::gateway_timeout(format!(
            "connection {name:?}: the upstream did not answer within {}s",
            settings.response_timeout.as_secs()
        ))),
        Ok(Err(e)) => {
            info!(connection = name, upstream = settings.base.host(), error = %e, connect = e.is_connect(), "upstream request failed");
            let what = if e.is_connect() {
                "the upstream is unreachable"
            } else {
                "the upstream connection failed"
            };
            Err(Problem::bad_gateway(format!("connection {name:?}: {what}")))
        }
    }
}

/// The upstream's `101`, passed to the client; once both sides have switched, a task copies bytes
/// both ways until either closes.
fn switch_protocols(
    name: &str,
    mut response: Response<Incoming>,
    client_upgrade: hyper::upgrade::OnUpgrade,
    pass: impl Completion,
    ended: impl Future<Output = ()> + Send + 'static,
) -> Response<ProxyBody> {
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let protocol = response.headers().get(header::UPGRADE).cloned();
    let (mut parts, _) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, protocol.as_ref());
    parts.version = Version::HTTP_11;
    let connection = name.to_owned();
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((client, upstream)) => {
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                // Once switched, the connection is the tunnel's: the gate ending it closes both sides.
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                        debug!(connection, ?copied, "upgraded connection closed");
                    }
                    () = ended => debug!(connection, "upgraded connection closed by the gateway"),
                }
            }
            Err(e) => debug!(connection, error = %e, "upgrade did not complete"),
        }
        pass.finished(Ending::Responded {
            status: StatusCode::SWITCHING_PROTOCOLS,
            body: BodyEnd::Upgraded,
            sent: &BodySent::default(),
        });
    });
    Response::from_parts(parts, empty())
}

/// Where the client reached the gateway, and what it asked for.
#[derive(Debug, Clone, Copy)]
struct Sent<'a> {
    peer: SocketAddr,
    tls: bool,
    host: Option<&'a str>,
    /// Path and query as sent.
    target: &'a str,
}

/// The request target as sent: path and query (an absolute-form or HTTP/2 target without its
/// scheme and authority).
fn request_target(req: &Request<Incoming>) -> &str {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), http::uri::PathAndQuery::as_str)
}

/// The bearer token of `Authorization: Bearer <token>`; exactly one such header.
fn bearer(headers: &http::HeaderMap) -> Result<&str, Problem> {
    let malformed = || {
        Problem::unauthorized(
            "malformed token",
            "send exactly one Authorization: Bearer <token> header",
        )
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => {
            return Err(Problem::unauthorized(
                "missing token",
                "send the token as Authorization: Bearer <token>",
            ));
        }
        (Some(_), Some(_)) => return Err(malformed()),
        (Some(value), None) => value,
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

/// The request's host: the URI's authority (HTTP/2, absolute-form) or the `Host` header.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    req.uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    type Pairs = &'static [(&'static str, &'static str)];

    fn headers(pairs: Pairs) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_tokens_case_table() {
        let cases: &[(Pairs, Result<&str, &str>)] = &[
            (&[("authorization", "Bearer abc")], Ok("abc")),
            (&[("authorization", "bearer  abc ")], Ok("abc")),
            (&[], Err("missing token")),
            (&[("authorization", "Basic abc")], Err("malformed token")),
            (&[("authorization", "Bearer")], Err("malformed token")),
            (&[("authorization", "Bearer ")], Err("malformed token")),
            (
                &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
                Err("malformed token"),
            ),
        ];
        for (pairs, expected) in cases {
            let map = headers(pairs);
            let got = bearer(&map).map_err(|p| p.challenge.unwrap_or(""));
            assert_eq!(got, *expected, "{pairs:?}");
        }
    }

    proptest! {
        #[test]
        fn header_handling_never_panics(
            values in proptest::collection::vec(
                (
                    prop::sample::select(vec!["authorization", "connection", "upgrade", "te", "x-trace", "host", "content-type"]),
                    proptest::collection::vec(any::<u8>(), 0..64),
                ),
                0..12,
            )
        ) {
            let mut map = http::HeaderMap::new();
            for (name, bytes) in &values {
                if let Ok(value) = http::HeaderValue::from_bytes(bytes) {
                    map.append(*name, value);
                }
            }
            let _ = bearer(&map);
            let _ = crate::facts::is_json(&map);
            let _ = crate::facts::allowed_headers(&map, &[http::HeaderName::from_static("x-trace")]);
            let upgrade = crate::headers::upgrade_requested(&map);
            let mut forwarded = map.clone();
            crate::headers::to_upstream(&mut forwarded, upgrade.as_ref(), "127.0.0.1".parse().unwrap(), false, None);
            prop_assert!(forwarded.get(http::header::AUTHORIZATION).is_none());
        }
    }
}
