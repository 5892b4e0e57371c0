//! `StatementFacts`: what one statement does, in terms policy can name. Protocol crates produce them from
//! their own grammar; the policy engine decides on them; audit records them.

use serde::Serialize;

/// What a statement does, coarsely: each kind is one policy action of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// Reads data: SELECT, VALUES, SHOW, TABLE, EXPLAIN without ANALYZE, FETCH, LISTEN.
    Read,
    /// Changes rows: INSERT, UPDATE, DELETE, MERGE, TRUNCATE, LOCK, SELECT FOR UPDATE/SHARE, a
    /// data-modifying CTE, EXPLAIN ANALYZE of any of these. Writes hidden in function calls (`nextval`,
    /// a user function) are not detected: name such functions in policy.
    Write,
    /// Changes the schema: CREATE, ALTER, DROP, COMMENT, SELECT INTO and CREATE TABLE AS (they create a
    /// table), and the like (not functions: see `Procedural`).
    Ddl,
    /// Changes who may do what: GRANT, REVOKE, CREATE/ALTER/DROP ROLE, ALTER DEFAULT PRIVILEGES, SECURITY LABEL.
    Privileges,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION and their relatives.
    Transaction,
    /// Session state: SET, RESET, SET ROLE, SET SESSION AUTHORIZATION, DISCARD, DEALLOCATE, LOCK-free
    /// settings. `setting` names which one.
    Session,
    /// VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, REFRESH MATERIALIZED VIEW, ALTER SYSTEM, LOAD.
    Maintenance,
    /// COPY ... FROM STDIN.
    CopyIn,
    /// COPY ... TO STDOUT.
    CopyOut,
    /// The server's file system or programs: COPY to or from a file or PROGRAM, and calls to the
    /// file functions (pg_read_file, pg_ls_dir, lo_import, lo_export, ...).
    FileAccess,
    /// Code that runs on the server: DO, CREATE FUNCTION/PROCEDURE, CALL.
    Procedural,
    /// Anything else, including statements the parser could not read.
    Unknown,
}

impl StatementKind {
    /// Every kind, in declaration order.
    pub const ALL: [StatementKind; 12] = [
        StatementKind::Read,
        StatementKind::Write,
        StatementKind::Ddl,
        StatementKind::Privileges,
        StatementKind::Transaction,
        StatementKind::Session,
        StatementKind::Maintenance,
        StatementKind::CopyIn,
        StatementKind::CopyOut,
        StatementKind::FileAccess,
        StatementKind::Procedural,
        StatementKind::Unknown,
    ];

    /// The policy action (and the name used in logs and audit) for this kind.
    pub fn action(self) -> &'static str {
        match self {
            StatementKind::Read => "read",
            StatementKind::Write => "write",
            StatementKind::Ddl => "ddl",
            StatementKind::Privileges => "privileges",
            StatementKind::Transaction => "transaction",
            StatementKind::Session => "session",
            StatementKind::Maintenance => "maintenance",
            StatementKind::CopyIn => "copy_in",
            StatementKind::CopyOut => "copy_out",
            StatementKind::FileAccess => "file_access",
            StatementKind::Procedural => "procedural",
            StatementKind::Unknown => "unknown",
        }
    }
}

/// The facts of one statement. Every fact is derived from the statement's structure, never from the
/// values of its literals, so statements that differ only in constants have the same facts (which is
/// what lets the gateway cache analysis by a literal-free fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementFacts {
    pub kind: StatementKind,
    /// The top-level command in upper case as PostgreSQL names it: `SELECT`, `DELETE`, `CREATE TABLE`,
    /// `SET`, `EXPLAIN`, `COPY`, ...
    pub command: String,
    /// Tables (and views) read, schema-qualified (`public.accounts`). Unqualified names resolve to
    /// `pg_catalog` when they start with `pg_`, else to `public`.
    pub reads: Vec<String>,
    /// Tables written or whose definition changes, schema-qualified, sorted, without duplicates.
    pub writes: Vec<String>,
    /// The row operations anywhere in the statement, lower case: `select`, `insert`, `update`, `delete`,
    /// `merge`, `truncate`, sorted, without duplicates.
    pub operations: Vec<String>,
    /// Every UPDATE and DELETE in the statement (there is at least one) has a restrictive WHERE clause.
    /// A clause that references no column (`WHERE 1=1`, `WHERE true`) or that ORs in such a branch
    /// counts as none.
    pub has_where: bool,
    /// Some UPDATE or DELETE lacks a restrictive WHERE clause, or the statement is a TRUNCATE.
    pub unbounded_write: bool,
    /// Functions called, lower case, schema-qualified only when the statement qualifies them
    /// (`pg_read_file`, `dblink.dblink_exec`), sorted, without duplicates.
    pub functions: Vec<String>,
    /// A WITH clause holds INSERT, UPDATE, DELETE or MERGE.
    pub modifying_cte: bool,
    /// EXPLAIN with the ANALYZE option (any value): the explained statement runs.
    pub explain_analyze: bool,
    /// For SET, RESET, SHOW and the like: the setting's name in lower case (`role`,
    /// `session_authorization`, `search_path`, `all`); empty otherwise.
    pub setting: String,
    /// `PREPARE name AS ...`: the name. The facts are those of the prepared statement.
    pub prepares: Option<String>,
    /// `EXECUTE name`: the name. The session resolves it to the facts recorded when it was prepared.
    pub executes: Option<String>,
    /// The parser could not read the statement: `kind` is `Unknown` and `parse_error` says why.
    pub parse_error: Option<String>,
}

impl StatementFacts {
    /// Facts for a statement that could not be parsed.
    pub fn unparsed(error: impl Into<String>) -> Self {
        StatementFacts {
            kind: StatementKind::Unknown,
            command: String::new(),
            reads: Vec::new(),
            writes: Vec::new(),
            operations: Vec::new(),
            has_where: false,
            unbounded_write: false,
            functions: Vec::new(),
            modifying_cte: false,
            explain_analyze: false,
            setting: String::new(),
            prepares: None,
            executes: None,
            parse_error: Some(error.into()),
        }
    }
}

/// What policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Allowed only after a human approves (the permitting policies all carry `@approval("required")`).
    ApprovalRequired,
    Deny,
}

/// A decision and its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The policies that decided: the forbids that matched for a denial, the permits otherwise. Each is
    /// the policy's `@id` annotation when it has one, else `<file>#<n>`.
    pub policies: Vec<String>,
    /// One sentence for people: why, in terms of the request (shown to the client on refusal).
    pub reason: String,
}

impl Decision {
    /// A denial that no policy produced (an analysis or evaluation error, fail closed).
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::Deny,
            policies: Vec::new(),
            reason: reason.into(),
        }
    }
}
