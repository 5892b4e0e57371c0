//! The vocabulary every Portcullis stage speaks: who is asking, what they hold, whose fault a failure is.
//!
//! Nothing here performs I/O. Protocol crates translate their wire formats into these types; the binary
//! wires the stages together.

mod command;
mod fault;
mod http;
mod principal;
mod secret;

pub use command::{Decision, Outcome, StatementFacts, StatementKind};
pub use fault::{Fault, Party};
pub use http::{HttpAction, HttpRequestFacts, RouteRef};
pub use principal::{Principal, RejectReason};
pub use secret::Secret;
