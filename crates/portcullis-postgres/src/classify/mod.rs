//! Statement analysis with PostgreSQL's own grammar: a query string in, one [`StatementFacts`] per statement out.
//!
//! The text is parsed by pg_query (PostgreSQL 18's parser, compiled in), so the gateway reads a
//! statement exactly as the server will: `DE/**/LETE` is a syntax error, a `DROP TABLE` inside a
//! string, comment or dollar-quoted body is data, `U&"d\0061ta"` is the identifier `data`. The whole
//! parse tree is then walked once (see `walk.rs`), so a write hidden in a CTE, a file function in a
//! column default or a table in a subquery is found wherever it sits.
//!
//! # Kinds and precedence
//!
//! A statement that qualifies for several kinds gets the most dangerous one, in this order:
//!
//! `unknown` > `file_access` > `procedural` > `privileges` > `ddl` > `maintenance` > `write` >
//! `copy_in` > `copy_out` > `session` > `transaction` > `read`
//!
//! `unknown` is on top so that a statement the analysis does not understand (`EXECUTE`, an
//! unrecognised statement type, `CREATE TABLE AS EXECUTE`) never passes as something milder: a
//! policy must allow it by name (fail closed). The statement type gives the base kind; the walk can
//! only raise it: any INSERT/UPDATE/DELETE/MERGE node, row lock (`FOR UPDATE/SHARE`) or `SELECT INTO`
//! makes it at least `write`; any call of a file function (`pg_read_file`, `lo_import`, ... in any
//! schema) makes it `file_access`. Decisions worth knowing:
//!
//! - `SELECT INTO`, `CREATE TABLE AS` and `CREATE MATERIALIZED VIEW` are `ddl`: they create a table,
//!   whatever else they do (`StatementKind::Write`'s doc in core still lists SELECT INTO).
//! - `COPY` to or from a file or program is `file_access`, `''` included: pg_query's tree gives an
//!   empty file name for STDIN and for `''` alike, so the statement's tokens decide, never the
//!   literal's value.
//! - `LOCK TABLE` is `write` (it needs write privileges for the strong modes and can stop every
//!   writer), with the locked tables in `writes`.
//! - `CREATE/ALTER FUNCTION|PROCEDURE`, `CREATE LANGUAGE ... HANDLER`, `DO` and `CALL` are
//!   `procedural`; `DROP FUNCTION` is `ddl`; `CREATE TRIGGER` and `CREATE RULE` are `ddl`. A bare
//!   `CREATE LANGUAGE name` is `CREATE EXTENSION` to PostgreSQL, and to us (`ddl`).
//! - `CREATE/ALTER/DROP POLICY`, `ALTER ... OWNER TO` and `ALTER TABLE ... ROW LEVEL SECURITY` are
//!   `privileges`: they change who sees which rows.
//! - `LISTEN` is `read`; `NOTIFY`, `UNLISTEN`, `DISCARD`, `DEALLOCATE`, `CLOSE` are `session`.
//! - `EXPLAIN` without ANALYZE is `read`: every table it names is in `reads`, `writes` and
//!   `operations` are empty and `has_where`/`unbounded_write` are false. Its functions stay listed
//!   and file functions keep `file_access` (the planner evaluates immutable calls). `EXPLAIN` with
//!   an ANALYZE option, whatever its value (`ANALYZE off` included: facts never depend on values),
//!   has the explained statement's facts and `explain_analyze`.
//! - `PREPARE p AS ...` has the prepared statement's facts with command `PREPARE`; `EXECUTE p` is
//!   `unknown` with `executes`, and the session resolves it. The parameters of `EXECUTE` are
//!   expressions that run: their function calls are listed in `functions`, so whoever resolves
//!   `executes` must merge, not replace.
//!
//! # Tables
//!
//! Names come as the parser folded them (`Accounts` → `accounts`, `"Accounts"` stays), qualified by
//! the rule in [`StatementFacts::reads`]; `CREATE TEMP TABLE t` writes `pg_temp.t`. The search path
//! is not known here, so `public.t` may in fact be another schema's `t`. Names are not quoted: a
//! table called `"a.b"` reads as `public.a.b`. UPDATE/DELETE/MERGE targets are in `reads` too when
//! the statement has a RETURNING clause. `SELECT ... FOR UPDATE` lists every table of its FROM in
//! `writes` (`OF` is not narrowed). DDL lists the tables and views it creates, alters, drops,
//! renames, comments on, indexes, adds triggers, rules or policies to, grants on, or attaches
//! partitions and children to; sequences, indexes and types are not tables.
//!
//! # Not seen
//!
//! What functions do (`dblink_exec`, `pg_terminate_backend`, any user function: they are listed, the
//! policy decides); what a DO block or a quoted function body does (the kind says `procedural`; a
//! SQL-standard `BEGIN ATOMIC` body is parsed and its tables and operations are listed); views' and
//! rules' definitions; triggers that fire; `nextval`-style writes.
//!
//! Deep trees: pg_query hands the tree over as protobuf and its decoder stops at 100 nested
//! messages, which is about 45 chained operators (`a || b || ...`), 25 nested subqueries or 95
//! `UNION` arms. Such a text is reported unparsed (kind `unknown`), as is anything PostgreSQL's own
//! parser refuses for depth. Nothing here can overflow the stack.
//!
//! The analysis assumes `standard_conforming_strings = on`, as pg_query and the fingerprint do: a
//! session that turns it off reads backslashes in plain strings differently, so the gateway must
//! refuse or track that setting.

mod children;
mod fingerprint;
mod predicate;
mod statement;
mod walk;

use std::panic::{AssertUnwindSafe, catch_unwind};

use portcullis_core::StatementFacts;

pub use fingerprint::fingerprint;

/// The analysis of one query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// One entry per statement, in order. Empty for an empty query string (only whitespace/comments).
    pub statements: Vec<StatementFacts>,
    /// Whether `statements` is a function of `fingerprint(sql)` alone, so the analysis may be cached
    /// under that key. False when any fact depends on a string literal's content (DO / CREATE
    /// FUNCTION / CREATE PROCEDURE bodies), when fingerprinting fell back, and when the text did not
    /// parse (parser messages quote literals, and a literal's value can decide whether it parses).
    pub cacheable: bool,
}

/// Analyses one query string (which may hold several statements). Never panics, never fails: a string
/// the parser cannot read yields one `StatementFacts::unparsed(message)`. PostgreSQL parses a whole
/// simple-query string before running any of it, so one bad statement anywhere means none runs.
pub fn analyse(sql: &str) -> Analysis {
    let key = fingerprint(sql);
    let tree = match parse(sql) {
        Ok(tree) => tree,
        Err(message) => {
            return Analysis {
                statements: vec![StatementFacts::unparsed(message)],
                cacheable: false,
            };
        }
    };
    let mut cacheable = key.is_some();
    let mut statements = Vec::with_capacity(tree.stmts.len());
    for raw in &tree.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|stmt| stmt.node.as_ref()) else {
            continue;
        };
        // The statement's own text (a length of 0 means "to the end").
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let text = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.get(start..),
            Ok(len) => sql.get(start..start.saturating_add(len)),
        };
        let analysed = statement::analyse(node.to_ref(), text);
        cacheable &= !analysed.literal_dependent;
        statements.push(analysed.facts);
    }
    Analysis {
        statements,
        cacheable,
    }
}

/// Parses `sql` with pg_query. Its Rust wrapper indexes into the tree it builds, so a panic there is
/// caught and reported as a parse failure rather than taking down the session.
fn parse(sql: &str) -> Result<pg_query::protobuf::ParseResult, String> {
    match catch_unwind(AssertUnwindSafe(|| {
        pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
    })) {
        Ok(Ok(result)) => Ok(result.protobuf),
        Ok(Err(pg_query::Error::Parse(message))) => Err(message),
        Ok(Err(pg_query::Error::Conversion(_))) => Err("the query holds a NUL byte".into()),
        // prost refuses parse trees nested past its recursion limit.
        Ok(Err(pg_query::Error::Decode(_))) => Err("the statement nests too deeply to analyse".into()),
        Ok(Err(other)) => Err(other.to_string()),
        Err(_) => Err("the parser failed on this statement".into()),
    }
}
