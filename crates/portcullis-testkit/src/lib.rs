//! Test-only helpers that run real things: a throwaway PostgreSQL, OIDC issuers served over HTTP, the
//! gateway binary as a child process.

pub mod gateway;
pub mod issuer;
pub mod oidc_provider;
pub mod pg;
pub mod ports;
