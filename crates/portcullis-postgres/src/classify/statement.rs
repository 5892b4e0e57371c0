//! The facts of one parsed statement: its kind and command tag from the statement type, the rest from the walk.

use pg_query::NodeEnum;
use pg_query::NodeRef;
use pg_query::protobuf::{
    AlterTableType, DiscardMode, ObjectType, Token, TransactionStmtKind, VariableSetKind, VariableSetStmt,
};
use portcullis_core::{StatementFacts, StatementKind};

use super::walk::Walk;

/// Functions that reach the server's file system (core, large objects, adminpack). Matched on the
/// last part of the name, whatever the schema: `pg_catalog.pg_read_file` counts, and so does a
/// look-alike in another schema (the safe mistake).
const FILE_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_ls_summariesdir",
    "lo_import",
    "lo_export",
    "pg_file_write",
    "pg_file_sync",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_read",
    "pg_file_length",
    "pg_logdir_ls",
];

/// A statement's facts, and whether they may be cached under the text's fingerprint.
#[derive(Debug)]
pub(super) struct Analysed {
    pub facts: StatementFacts,
    /// The statement holds code in a string literal (DO, CREATE FUNCTION/PROCEDURE bodies), or could
    /// not be analysed: its analysis must not be shared with texts that differ only in literals.
    pub literal_dependent: bool,
}

/// Analyses one top-level statement; `text` is its source text, when known.
pub(super) fn analyse(statement: NodeRef<'_>, text: Option<&str>) -> Analysed {
    match statement {
        NodeRef::PrepareStmt(prepare) => {
            // pg_query's own walk stops at PREPARE; ours takes the prepared statement's facts (the
            // walk covers the parameter types too: a type modifier may hold an expression).
            let mut analysed = facts(statement, inner(prepare.query.as_deref()));
            if analysed.facts.parse_error.is_none() {
                analysed.facts.command = "PREPARE".into();
                analysed.facts.prepares = Some(prepare.name.clone());
            }
            analysed
        }
        NodeRef::ExplainStmt(explain) => {
            let analyze = explain.options.iter().any(|option| {
                matches!(&option.node, Some(NodeEnum::DefElem(option)) if option.defname.eq_ignore_ascii_case("analyze"))
            });
            let mut analysed = facts(statement, inner(explain.query.as_deref()));
            if analysed.facts.parse_error.is_some() {
                return analysed;
            }
            let facts = &mut analysed.facts;
            facts.command = "EXPLAIN".into();
            if analyze {
                // The explained statement runs: its facts stand.
                facts.explain_analyze = true;
            } else {
                // Nothing runs but the planner: every table is only read. Functions stay listed
                // (the planner folds immutable calls), and the file functions keep their kind.
                let mut reads = std::mem::take(&mut facts.reads);
                reads.append(&mut facts.writes);
                reads.sort();
                reads.dedup();
                facts.reads = reads;
                facts.operations.clear();
                facts.has_where = false;
                facts.unbounded_write = false;
                facts.modifying_cte = false;
                facts.kind = if calls_file_functions(&facts.functions) {
                    StatementKind::FileAccess
                } else {
                    StatementKind::Read
                };
            }
            analysed
        }
        NodeRef::CopyStmt(copy) if !copy.is_program && copy.filename.is_empty() && copies_a_file(text) => {
            let mut analysed = facts(statement, Some(statement));
            if analysed.facts.parse_error.is_none() {
                analysed.facts.kind = stronger(analysed.facts.kind, StatementKind::FileAccess);
            }
            analysed
        }
        _ => facts(statement, Some(statement)),
    }
}

/// Whether a COPY whose tree shows no file name reads or writes a file after all: the tree has an
/// empty name both for STDIN/STDOUT and for the file `''`, and facts must not depend on a literal's
/// value (`COPY t FROM ''` would otherwise cache `copy_in` for `COPY t FROM '/etc/passwd'`). The
/// tokens tell: the first FROM or TO outside parentheses is followed by STDIN/STDOUT or by a string.
/// Without the text, or when it cannot be scanned, the answer is yes (the safe mistake).
fn copies_a_file(text: Option<&str>) -> bool {
    let Some(tokens) = text.and_then(|text| pg_query::scan(text).ok()) else {
        return true;
    };
    let mut depth = 0usize;
    let mut tokens = tokens
        .tokens
        .iter()
        .filter_map(|token| Token::try_from(token.token).ok())
        .filter(|token| !matches!(token, Token::SqlComment | Token::CComment));
    while let Some(token) = tokens.next() {
        match token {
            Token::Ascii40 => depth += 1,
            Token::Ascii41 => depth = depth.saturating_sub(1),
            Token::From | Token::To if depth == 0 => {
                return !matches!(tokens.next(), Some(Token::Stdin | Token::Stdout));
            }
            _ => {}
        }
    }
    true
}

fn inner(query: Option<&pg_query::protobuf::Node>) -> Option<NodeRef<'_>> {
    query.and_then(|query| query.node.as_ref()).map(NodeEnum::to_ref)
}

/// The facts of `statement` (whose type decides kind and command), walking everything under `root`.
fn facts(root: NodeRef<'_>, statement: Option<NodeRef<'_>>) -> Analysed {
    let Some(statement) = statement else {
        return unanalysable("the statement is empty");
    };
    let walk = Walk::statement(root);
    if walk.too_deep {
        return unanalysable("the statement nests too deeply to analyse");
    }
    let base = base(statement);
    let mut kind = base.kind;
    if walk.changes_rows {
        kind = stronger(kind, StatementKind::Write);
    }
    let functions: Vec<String> = walk.functions.into_iter().collect();
    if calls_file_functions(&functions) {
        kind = stronger(kind, StatementKind::FileAccess);
    }
    let facts = StatementFacts {
        kind,
        command: base.command,
        reads: walk.reads.into_iter().collect(),
        writes: walk.writes.into_iter().collect(),
        operations: walk.operations.into_iter().map(String::from).collect(),
        has_where: !walk.restricted.is_empty() && walk.restricted.iter().all(|&r| r),
        unbounded_write: walk.truncates || walk.restricted.iter().any(|&r| !r),
        functions,
        modifying_cte: walk.modifying_cte,
        explain_analyze: false,
        setting: base.setting,
        prepares: None,
        executes: base.executes,
        parse_error: None,
    };
    Analysed {
        facts,
        literal_dependent: walk.code_body,
    }
}

fn unanalysable(reason: &str) -> Analysed {
    Analysed {
        facts: StatementFacts::unparsed(reason),
        literal_dependent: true,
    }
}

fn calls_file_functions(functions: &[String]) -> bool {
    functions.iter().any(|name| {
        let last = name.rsplit('.').next().unwrap_or(name);
        FILE_FUNCTIONS.contains(&last)
    })
}

/// How dangerous a kind is; when a statement qualifies for several, the highest wins. `Unknown` is
/// above everything: a statement the analysis does not understand stays unknown whatever else it
/// does, so a policy must name it to allow it (fail closed).
fn rank(kind: StatementKind) -> u8 {
    match kind {
        StatementKind::Read => 0,
        StatementKind::Transaction => 1,
        StatementKind::Session => 2,
        StatementKind::CopyOut => 3,
        StatementKind::CopyIn => 4,
        StatementKind::Write => 5,
        StatementKind::Maintenance => 6,
        StatementKind::Ddl => 7,
        StatementKind::Privileges => 8,
        StatementKind::Procedural => 9,
        StatementKind::FileAccess => 10,
        StatementKind::Unknown => 11,
    }
}

fn stronger(a: StatementKind, b: StatementKind) -> StatementKind {
    if rank(b) > rank(a) { b } else { a }
}

/// What the statement type alone says.
struct Base {
    kind: StatementKind,
    command: String,
    setting: String,
    executes: Option<String>,
}

impl Base {
    fn new(kind: StatementKind, command: impl Into<String>) -> Self {
        Base {
            kind,
            command: command.into(),
            setting: String::new(),
            executes: None,
        }
    }

    fn setting(mut self, setting: impl Into<String>) -> Self {
        self.setting = setting.into();
        self
    }
}

fn base(statement: NodeRef<'_>) -> Base {
    use NodeRef as N;
    use StatementKind as K;
    let object = |kind: i32| ObjectType::try_from(kind).unwrap_or(ObjectType::Undefined);
    match statement {
        // Reads.
        // SELECT INTO and CREATE TABLE AS create a table: schema changes, whatever else they do.
        N::SelectStmt(select) if select.into_clause.is_some() => Base::new(K::Ddl, "SELECT INTO"),
        N::SelectStmt(_) => Base::new(K::Read, "SELECT"),
        N::VariableShowStmt(show) => Base::new(K::Read, "SHOW").setting(show.name.to_lowercase()),
        N::FetchStmt(fetch) => Base::new(K::Read, if fetch.ismove { "MOVE" } else { "FETCH" }),
        N::DeclareCursorStmt(_) => Base::new(K::Read, "DECLARE CURSOR"),
        N::ListenStmt(_) => Base::new(K::Read, "LISTEN"),

        // Writes.
        N::InsertStmt(_) => Base::new(K::Write, "INSERT"),
        N::UpdateStmt(_) => Base::new(K::Write, "UPDATE"),
        N::DeleteStmt(_) => Base::new(K::Write, "DELETE"),
        N::MergeStmt(_) => Base::new(K::Write, "MERGE"),
        N::TruncateStmt(_) => Base::new(K::Write, "TRUNCATE TABLE"),
        N::LockStmt(_) => Base::new(K::Write, "LOCK TABLE"),
        N::CreateTableAsStmt(create) => match object(create.objtype) {
            ObjectType::ObjectMatview => Base::new(K::Ddl, "CREATE MATERIALIZED VIEW"),
            // `CREATE TABLE ... AS EXECUTE p`: what p reads is known only to the session.
            _ if matches!(
                create.query.as_deref().and_then(|q| q.node.as_ref()),
                Some(NodeEnum::ExecuteStmt(_))
            ) =>
            {
                Base::new(K::Unknown, "CREATE TABLE AS")
            }
            _ => Base::new(K::Ddl, "CREATE TABLE AS"),
        },

        // COPY: the file system first, then the direction.
        N::CopyStmt(copy) if copy.is_program || !copy.filename.is_empty() => Base::new(K::FileAccess, "COPY"),
        N::CopyStmt(copy) if copy.is_from => Base::new(K::CopyIn, "COPY"),
        N::CopyStmt(_) => Base::new(K::CopyOut, "COPY"),

        // Code.
        N::DoStmt(_) => Base::new(K::Procedural, "DO"),
        N::CallStmt(_) => Base::new(K::Procedural, "CALL"),
        N::CreateFunctionStmt(function) => Base::new(
            K::Procedural,
            if function.is_procedure {
                "CREATE PROCEDURE"
            } else {
                "CREATE FUNCTION"
            },
        ),
        N::AlterFunctionStmt(alter) => Base::new(
            K::Procedural,
            format!("ALTER {}", object_name(object(alter.objtype))),
        ),
        N::CreatePlangStmt(_) => Base::new(K::Procedural, "CREATE LANGUAGE"),

        // Who may do what.
        N::GrantStmt(grant) => Base::new(K::Privileges, if grant.is_grant { "GRANT" } else { "REVOKE" }),
        N::GrantRoleStmt(grant) => Base::new(
            K::Privileges,
            if grant.is_grant {
                "GRANT ROLE"
            } else {
                "REVOKE ROLE"
            },
        ),
        N::CreateRoleStmt(_) => Base::new(K::Privileges, "CREATE ROLE"),
        N::AlterRoleStmt(_) => Base::new(K::Privileges, "ALTER ROLE"),
        N::AlterRoleSetStmt(alter) => {
            Base::new(K::Privileges, "ALTER ROLE").setting(set_name(alter.setstmt.as_ref()))
        }
        N::DropRoleStmt(_) => Base::new(K::Privileges, "DROP ROLE"),
        N::AlterDefaultPrivilegesStmt(_) => Base::new(K::Privileges, "ALTER DEFAULT PRIVILEGES"),
        N::ReassignOwnedStmt(_) => Base::new(K::Privileges, "REASSIGN OWNED"),
        N::DropOwnedStmt(_) => Base::new(K::Privileges, "DROP OWNED"),
        N::SecLabelStmt(_) => Base::new(K::Privileges, "SECURITY LABEL"),
        N::AlterOwnerStmt(alter) => Base::new(
            K::Privileges,
            format!("ALTER {}", object_name(object(alter.object_type))),
        ),
        N::CreatePolicyStmt(_) => Base::new(K::Privileges, "CREATE POLICY"),
        N::AlterPolicyStmt(_) => Base::new(K::Privileges, "ALTER POLICY"),

        // Transactions.
        N::TransactionStmt(transaction) => Base::new(K::Transaction, transaction_command(transaction.kind)),

        // Session state.
        N::VariableSetStmt(set) => {
            let reset = matches!(
                VariableSetKind::try_from(set.kind),
                Ok(VariableSetKind::VarReset | VariableSetKind::VarResetAll)
            );
            Base::new(K::Session, if reset { "RESET" } else { "SET" }).setting(set_name(Some(set)))
        }
        N::DiscardStmt(discard) => match DiscardMode::try_from(discard.target) {
            // DISCARD ALL includes RESET ALL (and with it RESET ROLE, SET SESSION AUTHORIZATION DEFAULT).
            Ok(DiscardMode::DiscardAll) => Base::new(K::Session, "DISCARD ALL").setting("all"),
            Ok(DiscardMode::DiscardPlans) => Base::new(K::Session, "DISCARD PLANS"),
            Ok(DiscardMode::DiscardSequences) => Base::new(K::Session, "DISCARD SEQUENCES"),
            _ => Base::new(K::Session, "DISCARD TEMP"),
        },
        N::DeallocateStmt(deallocate) => Base::new(
            K::Session,
            if deallocate.isall {
                "DEALLOCATE ALL"
            } else {
                "DEALLOCATE"
            },
        ),
        N::NotifyStmt(_) => Base::new(K::Session, "NOTIFY"),
        N::UnlistenStmt(_) => Base::new(K::Session, "UNLISTEN"),
        N::ConstraintsSetStmt(_) => Base::new(K::Session, "SET CONSTRAINTS").setting("constraints"),
        N::ClosePortalStmt(_) => Base::new(K::Session, "CLOSE CURSOR"),

        // Maintenance.
        N::VacuumStmt(vacuum) => Base::new(
            K::Maintenance,
            if vacuum.is_vacuumcmd { "VACUUM" } else { "ANALYZE" },
        ),
        N::ClusterStmt(_) => Base::new(K::Maintenance, "CLUSTER"),
        N::ReindexStmt(_) => Base::new(K::Maintenance, "REINDEX"),
        N::CheckPointStmt(_) => Base::new(K::Maintenance, "CHECKPOINT"),
        N::RefreshMatViewStmt(_) => Base::new(K::Maintenance, "REFRESH MATERIALIZED VIEW"),
        N::AlterSystemStmt(alter) => {
            Base::new(K::Maintenance, "ALTER SYSTEM").setting(set_name(alter.setstmt.as_ref()))
        }
        N::LoadStmt(_) => Base::new(K::Maintenance, "LOAD"),

        // Resolved by the session.
        N::ExecuteStmt(execute) => Base {
            executes: Some(execute.name.clone()),
            ..Base::new(K::Unknown, "EXECUTE")
        },

        // Schema changes.
        N::AlterTableStmt(alter) => {
            // Changing a table's owner or its row security changes who may see its rows.
            let privileges = alter.cmds.iter().any(|cmd| {
                matches!(&cmd.node, Some(NodeEnum::AlterTableCmd(cmd)) if matches!(
                    AlterTableType::try_from(cmd.subtype),
                    Ok(AlterTableType::AtChangeOwner
                        | AlterTableType::AtEnableRowSecurity
                        | AlterTableType::AtDisableRowSecurity
                        | AlterTableType::AtForceRowSecurity
                        | AlterTableType::AtNoForceRowSecurity)
                ))
            });
            let kind = if privileges { K::Privileges } else { K::Ddl };
            Base::new(kind, format!("ALTER {}", object_name(object(alter.objtype))))
        }
        N::DropStmt(drop) => {
            let kind = match object(drop.remove_type) {
                ObjectType::ObjectPolicy => K::Privileges,
                _ => K::Ddl,
            };
            Base::new(kind, format!("DROP {}", object_name(object(drop.remove_type))))
        }
        N::RenameStmt(rename) => {
            let renamed = object(rename.rename_type);
            let (kind, named) = match renamed {
                ObjectType::ObjectRole => (K::Privileges, renamed),
                ObjectType::ObjectPolicy => (K::Privileges, renamed),
                ObjectType::ObjectColumn | ObjectType::ObjectTabconstraint => {
                    (K::Ddl, object(rename.relation_type))
                }
                ObjectType::ObjectAttribute => (K::Ddl, ObjectType::ObjectType),
                _ => (K::Ddl, renamed),
            };
            Base::new(kind, format!("ALTER {}", object_name(named)))
        }
        N::AlterObjectSchemaStmt(alter) => Base::new(
            K::Ddl,
            format!("ALTER {}", object_name(object(alter.object_type))),
        ),
        N::AlterObjectDependsStmt(alter) => Base::new(
            K::Ddl,
            format!("ALTER {}", object_name(object(alter.object_type))),
        ),
        N::CommentStmt(_) => Base::new(K::Ddl, "COMMENT"),
        N::CreateStmt(_) => Base::new(K::Ddl, "CREATE TABLE"),
        N::CreateForeignTableStmt(_) => Base::new(K::Ddl, "CREATE FOREIGN TABLE"),
        N::ViewStmt(_) => Base::new(K::Ddl, "CREATE VIEW"),
        N::IndexStmt(_) => Base::new(K::Ddl, "CREATE INDEX"),
        N::CreateSeqStmt(_) => Base::new(K::Ddl, "CREATE SEQUENCE"),
        N::AlterSeqStmt(_) => Base::new(K::Ddl, "ALTER SEQUENCE"),
        N::CreateSchemaStmt(_) => Base::new(K::Ddl, "CREATE SCHEMA"),
        N::CreateExtensionStmt(_) => Base::new(K::Ddl, "CREATE EXTENSION"),
        N::AlterExtensionStmt(_) | N::AlterExtensionContentsStmt(_) => Base::new(K::Ddl, "ALTER EXTENSION"),
        N::DefineStmt(define) => Base::new(K::Ddl, format!("CREATE {}", object_name(object(define.kind)))),
        N::CreateDomainStmt(_) => Base::new(K::Ddl, "CREATE DOMAIN"),
        N::AlterDomainStmt(_) => Base::new(K::Ddl, "ALTER DOMAIN"),
        N::CompositeTypeStmt(_) | N::CreateEnumStmt(_) | N::CreateRangeStmt(_) => {
            Base::new(K::Ddl, "CREATE TYPE")
        }
        N::AlterEnumStmt(_) | N::AlterTypeStmt(_) => Base::new(K::Ddl, "ALTER TYPE"),
        N::CreateTrigStmt(_) => Base::new(K::Ddl, "CREATE TRIGGER"),
        N::CreateEventTrigStmt(_) => Base::new(K::Ddl, "CREATE EVENT TRIGGER"),
        N::AlterEventTrigStmt(_) => Base::new(K::Ddl, "ALTER EVENT TRIGGER"),
        N::RuleStmt(_) => Base::new(K::Ddl, "CREATE RULE"),
        N::CreatedbStmt(_) => Base::new(K::Ddl, "CREATE DATABASE"),
        N::DropdbStmt(_) => Base::new(K::Ddl, "DROP DATABASE"),
        N::AlterDatabaseStmt(_) | N::AlterDatabaseRefreshCollStmt(_) => Base::new(K::Ddl, "ALTER DATABASE"),
        N::AlterDatabaseSetStmt(alter) => {
            Base::new(K::Ddl, "ALTER DATABASE").setting(set_name(alter.setstmt.as_ref()))
        }
        N::CreateTableSpaceStmt(_) => Base::new(K::Ddl, "CREATE TABLESPACE"),
        N::DropTableSpaceStmt(_) => Base::new(K::Ddl, "DROP TABLESPACE"),
        N::AlterTableSpaceOptionsStmt(_) => Base::new(K::Ddl, "ALTER TABLESPACE"),
        N::AlterTableMoveAllStmt(alter) => {
            Base::new(K::Ddl, format!("ALTER {}", object_name(object(alter.objtype))))
        }
        N::CreateFdwStmt(_) => Base::new(K::Ddl, "CREATE FOREIGN DATA WRAPPER"),
        N::AlterFdwStmt(_) => Base::new(K::Ddl, "ALTER FOREIGN DATA WRAPPER"),
        N::CreateForeignServerStmt(_) => Base::new(K::Ddl, "CREATE SERVER"),
        N::AlterForeignServerStmt(_) => Base::new(K::Ddl, "ALTER SERVER"),
        N::CreateUserMappingStmt(_) => Base::new(K::Ddl, "CREATE USER MAPPING"),
        N::AlterUserMappingStmt(_) => Base::new(K::Ddl, "ALTER USER MAPPING"),
        N::DropUserMappingStmt(_) => Base::new(K::Ddl, "DROP USER MAPPING"),
        N::ImportForeignSchemaStmt(_) => Base::new(K::Ddl, "IMPORT FOREIGN SCHEMA"),
        N::CreatePublicationStmt(_) => Base::new(K::Ddl, "CREATE PUBLICATION"),
        N::AlterPublicationStmt(_) => Base::new(K::Ddl, "ALTER PUBLICATION"),
        N::CreateSubscriptionStmt(_) => Base::new(K::Ddl, "CREATE SUBSCRIPTION"),
        N::AlterSubscriptionStmt(_) => Base::new(K::Ddl, "ALTER SUBSCRIPTION"),
        N::DropSubscriptionStmt(_) => Base::new(K::Ddl, "DROP SUBSCRIPTION"),
        N::CreateStatsStmt(_) => Base::new(K::Ddl, "CREATE STATISTICS"),
        N::AlterStatsStmt(_) => Base::new(K::Ddl, "ALTER STATISTICS"),
        N::CreateCastStmt(_) => Base::new(K::Ddl, "CREATE CAST"),
        N::CreateTransformStmt(_) => Base::new(K::Ddl, "CREATE TRANSFORM"),
        N::CreateConversionStmt(_) => Base::new(K::Ddl, "CREATE CONVERSION"),
        N::CreateOpClassStmt(_) => Base::new(K::Ddl, "CREATE OPERATOR CLASS"),
        N::CreateOpFamilyStmt(_) => Base::new(K::Ddl, "CREATE OPERATOR FAMILY"),
        N::AlterOpFamilyStmt(_) => Base::new(K::Ddl, "ALTER OPERATOR FAMILY"),
        N::AlterOperatorStmt(_) => Base::new(K::Ddl, "ALTER OPERATOR"),
        N::CreateAmStmt(_) => Base::new(K::Ddl, "CREATE ACCESS METHOD"),
        N::AlterCollationStmt(_) => Base::new(K::Ddl, "ALTER COLLATION"),
        N::AlterTsdictionaryStmt(_) => Base::new(K::Ddl, "ALTER TEXT SEARCH DICTIONARY"),
        N::AlterTsconfigurationStmt(_) => Base::new(K::Ddl, "ALTER TEXT SEARCH CONFIGURATION"),

        _ => Base::new(K::Unknown, "UNKNOWN"),
    }
}

/// The setting a SET, RESET, ALTER SYSTEM or ALTER ROLE/DATABASE ... SET names, in lower case:
/// `all` for RESET ALL; PostgreSQL's own names for the special forms (`role`,
/// `session_authorization`, `timezone`, `search_path` for SET SCHEMA, `client_encoding` for SET
/// NAMES, `transaction` for SET TRANSACTION).
fn set_name(set: Option<&VariableSetStmt>) -> String {
    match set {
        Some(set) if set.kind == VariableSetKind::VarResetAll as i32 => "all".into(),
        Some(set) => set.name.to_lowercase(),
        None => String::new(),
    }
}

fn transaction_command(kind: i32) -> &'static str {
    match TransactionStmtKind::try_from(kind) {
        Ok(TransactionStmtKind::TransStmtBegin) => "BEGIN",
        Ok(TransactionStmtKind::TransStmtStart) => "START TRANSACTION",
        Ok(TransactionStmtKind::TransStmtCommit) => "COMMIT",
        Ok(TransactionStmtKind::TransStmtRollback | TransactionStmtKind::TransStmtRollbackTo) => "ROLLBACK",
        Ok(TransactionStmtKind::TransStmtSavepoint) => "SAVEPOINT",
        Ok(TransactionStmtKind::TransStmtRelease) => "RELEASE",
        Ok(TransactionStmtKind::TransStmtPrepare) => "PREPARE TRANSACTION",
        Ok(TransactionStmtKind::TransStmtCommitPrepared) => "COMMIT PREPARED",
        Ok(TransactionStmtKind::TransStmtRollbackPrepared) => "ROLLBACK PREPARED",
        _ => "TRANSACTION",
    }
}

/// An object type as the command tags spell it.
fn object_name(kind: ObjectType) -> &'static str {
    use ObjectType as O;
    match kind {
        O::ObjectAccessMethod => "ACCESS METHOD",
        O::ObjectAggregate => "AGGREGATE",
        O::ObjectAmop | O::ObjectAmproc | O::ObjectOpfamily => "OPERATOR FAMILY",
        O::ObjectAttribute | O::ObjectType => "TYPE",
        O::ObjectCast => "CAST",
        O::ObjectColumn | O::ObjectTable | O::ObjectTabconstraint | O::ObjectDefault => "TABLE",
        O::ObjectCollation => "COLLATION",
        O::ObjectConversion => "CONVERSION",
        O::ObjectDatabase => "DATABASE",
        O::ObjectDefacl => "DEFAULT PRIVILEGES",
        O::ObjectDomain | O::ObjectDomconstraint => "DOMAIN",
        O::ObjectEventTrigger => "EVENT TRIGGER",
        O::ObjectExtension => "EXTENSION",
        O::ObjectFdw => "FOREIGN DATA WRAPPER",
        O::ObjectForeignServer => "SERVER",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectFunction => "FUNCTION",
        O::ObjectIndex => "INDEX",
        O::ObjectLanguage => "LANGUAGE",
        O::ObjectLargeobject => "LARGE OBJECT",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectOpclass => "OPERATOR CLASS",
        O::ObjectOperator => "OPERATOR",
        O::ObjectParameterAcl => "PARAMETER",
        O::ObjectPolicy => "POLICY",
        O::ObjectProcedure => "PROCEDURE",
        O::ObjectPublication | O::ObjectPublicationNamespace | O::ObjectPublicationRel => "PUBLICATION",
        O::ObjectRole => "ROLE",
        O::ObjectRoutine => "ROUTINE",
        O::ObjectRule => "RULE",
        O::ObjectSchema => "SCHEMA",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectSubscription => "SUBSCRIPTION",
        O::ObjectStatisticExt => "STATISTICS",
        O::ObjectTablespace => "TABLESPACE",
        O::ObjectTransform => "TRANSFORM",
        O::ObjectTrigger => "TRIGGER",
        O::ObjectTsconfiguration => "TEXT SEARCH CONFIGURATION",
        O::ObjectTsdictionary => "TEXT SEARCH DICTIONARY",
        O::ObjectTsparser => "TEXT SEARCH PARSER",
        O::ObjectTstemplate => "TEXT SEARCH TEMPLATE",
        O::ObjectUserMapping => "USER MAPPING",
        O::ObjectView => "VIEW",
        O::Undefined => "OBJECT",
    }
}

#[cfg(test)]
mod tests {
    use super::{StatementKind, rank};

    #[test]
    fn every_kind_has_its_own_rank() {
        let mut ranks: Vec<u8> = StatementKind::ALL.iter().map(|&kind| rank(kind)).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), StatementKind::ALL.len());
    }
}
