//! HTTP for Portcullis: a reverse proxy that routes agents' requests to `http` connections, turns each
//! request into [`portcullis_core::HttpRequestFacts`] for the gateway to decide on, and forwards it with
//! the connection's credential, streaming bodies both ways and passing upgrades (WebSocket) through.
//!
//! This crate never decides or records: the binary implements [`Gate`] (token verification, policy, the
//! audit record written before forwarding, told how each exchange ended through its [`Completion`]) and
//! may filter response bodies through [`ResponseFilter`] (masking), as the PostgreSQL relay has its
//! `Inspector` and `ResultSink`.

mod body;
mod credential;
mod facts;
mod headers;
mod listener;
pub mod mcp;
mod problem;
mod proxy;
mod route;
pub mod sse;
mod upstream;

pub use body::{Chain, FilterError, ProxyBody, ResponseFilter};
pub use credential::{CredentialError, OAuthSettings, UpstreamCredential};
pub use facts::{
    JsonRefusal, body_fields, flatten_json_object, names_a_member_twice, parse_query, read_json,
    request_facts,
};
pub use listener::{ListenerSettings, serve};
pub use problem::{ApprovalRef, Problem};
pub use proxy::{
    BodyEnd, BodySeen, BodySent, ClientState, Completion, Ending, Gate, Proxy, ProxyLimits, RefusedRequest,
    RequestInfo,
};
pub use route::{PathError, RouteTemplate, Routes, TemplateError, UpstreamBase, UrlError, normalize_path};
pub use upstream::{Upstream, UpstreamSettings};
