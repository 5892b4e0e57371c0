//! `PolicyError`: why a policy set could not be loaded, located in the operator's files.

use std::fmt;
use std::path::PathBuf;

use portcullis_core::{Fault, Party};

/// A policy set failed to load. Every variant is the gateway operator's to fix (a configuration problem),
/// so the session-facing side never sees one: the gateway refuses to start or keeps its previous policies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One or more policies do not parse, do not validate against the schema, or break a Portcullis rule
    /// (duplicate `@id`, a bad `@approval`, a template). Each problem is located in its file.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// The schema shipped inside this crate does not parse, or the loaded policies could not be indexed:
    /// a bug, caught by the crate's tests.
    #[error("internal error loading policies (a Portcullis bug): {0}")]
    Internal(String),
}

impl Fault for PolicyError {
    fn party(&self) -> Party {
        // Policy files are the operator's configuration, read by the gateway itself.
        Party::Gateway
    }
}

/// One problem in one policy file, at a place in it. Line and column count from 1; both are 0 when
/// Cedar gave no location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file's name as given to the loader (the path, for files read from disk).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Cedar's message (with its help, when it has some), or ours.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

/// Displays problems one per line.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
