//! `Fault`: which party a failure belongs to, so errors are reported and counted correctly.

use std::fmt;

/// The party responsible for a failure. Decides the log level, the metric label and the wording the
/// client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// The client sent something wrong: bad credential, malformed message, unknown target.
    Client,
    /// The upstream resource failed or refused: down, wrong password, restarted.
    Upstream,
    /// Portcullis itself failed: a bug or a local resource problem.
    Gateway,
}

impl Party {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Party::Client => "client",
            Party::Upstream => "upstream",
            Party::Gateway => "gateway",
        }
    }
}

/// Implemented by every typed error that can end a request or a session.
pub trait Fault: std::error::Error {
    /// Whose fault the error is.
    fn party(&self) -> Party;
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
