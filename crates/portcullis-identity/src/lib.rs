//! Token verification against issuers' published keys, and the built-in development issuer.
//!
//! [`Verifier`] checks OIDC/JWT access tokens from any number of configured issuers, fetching their keys
//! through OIDC discovery and JWKS over HTTP. [`DevIssuer`] mints development tokens and publishes its key
//! the same way, so the gateway verifies them through exactly the same path.

mod dev_issuer;
mod jwks;
mod settings;
mod unverified;
mod verifier;

pub use dev_issuer::{DevIssuer, DevIssuerError, MintRequest};
pub use settings::{IssuerSettings, SettingsError, check_all as check_issuer_settings};
pub use verifier::{Rejected, Verifier};
