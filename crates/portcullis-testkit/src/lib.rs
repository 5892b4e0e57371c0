//! Helpers that run real things: a throwaway PostgreSQL, OIDC issuers served over HTTP, the gateway binary
//! as a child process. The tests use all of them; `portcullis demo` uses the PostgreSQL cluster and
//! `ports`, which is why this crate is also a normal dependency of the binary.

pub mod gateway;
pub mod issuer;
pub mod mcp;
pub mod oidc_provider;
pub mod pg;
pub mod ports;
