//! One pass over a statement's whole parse tree, collecting what it reads, writes and calls.
//!
//! Every node is visited (the child lists are generated from pg_query's node types, see
//! `children.rs`), so nothing hides in a corner the walk forgot: a function call in a column default,
//! a DELETE in a CTE, a table in a subquery of a MERGE condition. A table name in an ordinary position
//! is a read; [`role`] names the fields where it is written (INSERT's target, DROP's objects, ...) or
//! is not a table at all (a sequence, a composite type).

use std::collections::BTreeSet;

use pg_query::NodeEnum;
use pg_query::NodeRef;
use pg_query::protobuf::{
    AlterTableType, CmdType, GrantTargetType, ObjectType, OnConflictAction, RangeVar, ReindexObjectType,
};

use super::children::for_each_child;
use super::predicate::{Target, restrictive};

/// Parse trees nested deeper than this are not analysed (the statement's facts become "unparsed").
/// pg_query's own decoder stops at about half this depth, so this is a second line of defence
/// that keeps the recursion bounded whatever the parser returns.
const MAX_DEPTH: usize = 256;

/// What the walk found. Sets are sorted and free of duplicates by construction.
#[derive(Debug, Default)]
pub(super) struct Walk {
    pub reads: BTreeSet<String>,
    pub writes: BTreeSet<String>,
    pub operations: BTreeSet<&'static str>,
    pub functions: BTreeSet<String>,
    /// Some CTE holds INSERT, UPDATE, DELETE or MERGE.
    pub modifying_cte: bool,
    /// Some node changes or locks rows: INSERT, UPDATE, DELETE, MERGE, TRUNCATE, SELECT INTO,
    /// SELECT ... FOR UPDATE/SHARE.
    pub changes_rows: bool,
    /// Whether each UPDATE and DELETE (MERGE actions and ON CONFLICT DO UPDATE included) is restricted.
    pub restricted: Vec<bool>,
    pub truncates: bool,
    /// A DO block or a function body: facts that a string literal's content could change.
    pub code_body: bool,
    /// The tree was deeper than [`MAX_DEPTH`]; the other fields are incomplete.
    pub too_deep: bool,
    /// CTE names in scope, innermost last.
    ctes: Vec<String>,
    /// Table names read here are also written (FROM of SELECT ... FOR UPDATE).
    locking: bool,
    depth: usize,
}

/// What a child in a given field of its parent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An ordinary position: a table named here is read.
    Visit,
    /// The table named here is written (or its definition changes).
    Write,
    /// The FROM list of a locking SELECT: tables are read and row-locked.
    Lock,
    /// INSERT's source: a VALUES list here is not a SELECT.
    InsertSource,
    /// Not a table (a sequence, a type, an index), or handled by the parent's own code.
    Skip,
}

impl<'a> Walk {
    /// Walks `statement` and everything under it.
    pub fn statement(statement: NodeRef<'a>) -> Self {
        let mut walk = Walk::default();
        walk.visit(statement);
        walk
    }

    fn visit(&mut self, node: NodeRef<'a>) {
        if self.depth >= MAX_DEPTH {
            self.too_deep = true;
            return;
        }
        self.depth += 1;
        self.visit_node(node);
        self.depth -= 1;
    }

    fn visit_node(&mut self, node: NodeRef<'a>) {
        match node {
            NodeRef::RangeVar(table) => self.read(table),
            NodeRef::FuncCall(call) => {
                let name = call
                    .funcname
                    .iter()
                    .filter_map(|part| match &part.node {
                        Some(NodeEnum::String(part)) => Some(part.sval.to_lowercase()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                self.functions.insert(name);
                self.children(node);
            }
            NodeRef::SelectStmt(select) => {
                self.operations.insert("select");
                if select.into_clause.is_some() || !select.locking_clause.is_empty() {
                    self.changes_rows = true;
                }
                self.scoped(select.with_clause.as_ref(), node);
            }
            NodeRef::InsertStmt(insert) => {
                self.dml("insert");
                if let Some(conflict) = &insert.on_conflict_clause
                    && conflict.action == OnConflictAction::OnconflictUpdate as i32
                {
                    // The conflict target restricts the update to the conflicting rows.
                    self.operations.insert("update");
                    self.restricted.push(true);
                }
                self.returning(insert.relation.as_ref(), insert.returning_clause.as_ref());
                self.scoped(insert.with_clause.as_ref(), node);
            }
            NodeRef::UpdateStmt(update) => {
                self.dml("update");
                let clause = update.where_clause.as_deref().and_then(|c| c.node.as_ref());
                self.restricted.push(restrictive(
                    clause.map(NodeEnum::to_ref),
                    target(update.relation.as_ref()),
                ));
                self.returning(update.relation.as_ref(), update.returning_clause.as_ref());
                self.scoped(update.with_clause.as_ref(), node);
            }
            NodeRef::DeleteStmt(delete) => {
                self.dml("delete");
                let clause = delete.where_clause.as_deref().and_then(|c| c.node.as_ref());
                self.restricted.push(restrictive(
                    clause.map(NodeEnum::to_ref),
                    target(delete.relation.as_ref()),
                ));
                self.returning(delete.relation.as_ref(), delete.returning_clause.as_ref());
                self.scoped(delete.with_clause.as_ref(), node);
            }
            NodeRef::MergeStmt(merge) => {
                self.dml("merge");
                let on = merge.join_condition.as_deref().and_then(|c| c.node.as_ref());
                let into = target(merge.relation.as_ref());
                for clause in &merge.merge_when_clauses {
                    let Some(NodeEnum::MergeWhenClause(when)) = &clause.node else {
                        continue;
                    };
                    let action = CmdType::try_from(when.command_type);
                    let operation = match action {
                        Ok(CmdType::CmdUpdate) => "update",
                        Ok(CmdType::CmdDelete) => "delete",
                        Ok(CmdType::CmdInsert) => "insert",
                        _ => continue,
                    };
                    self.operations.insert(operation);
                    if operation != "insert" {
                        // A MERGE action touches the target rows the ON condition matched and its
                        // own AND condition admits: restricted when either restricts.
                        let condition = when.condition.as_deref().and_then(|c| c.node.as_ref());
                        self.restricted.push(
                            restrictive(on.map(NodeEnum::to_ref), into)
                                || restrictive(condition.map(NodeEnum::to_ref), into),
                        );
                    }
                }
                self.returning(merge.relation.as_ref(), merge.returning_clause.as_ref());
                self.scoped(merge.with_clause.as_ref(), node);
            }
            NodeRef::TruncateStmt(_) => {
                self.dml("truncate");
                self.truncates = true;
                self.children(node);
            }
            NodeRef::CopyStmt(copy) => {
                if copy.relation.is_some() {
                    self.operations
                        .insert(if copy.is_from { "insert" } else { "select" });
                }
                self.children(node);
            }
            NodeRef::CommonTableExpr(cte) => {
                if matches!(
                    cte.ctequery.as_deref().and_then(|q| q.node.as_ref()),
                    Some(
                        NodeEnum::InsertStmt(_)
                            | NodeEnum::UpdateStmt(_)
                            | NodeEnum::DeleteStmt(_)
                            | NodeEnum::MergeStmt(_)
                    )
                ) {
                    self.modifying_cte = true;
                }
                self.children(node);
            }
            NodeRef::DoStmt(_) | NodeRef::CreateFunctionStmt(_) => {
                self.code_body = true;
                self.children(node);
            }
            NodeRef::DropStmt(drop) => {
                // The objects are name lists, not table references; only tables count.
                for object in &drop.objects {
                    self.named_object(drop.remove_type, object.node.as_ref());
                }
            }
            NodeRef::CommentStmt(comment) => {
                self.named_object(
                    comment.objtype,
                    comment.object.as_deref().and_then(|o| o.node.as_ref()),
                );
            }
            _ => self.children(node),
        }
    }

    /// Visits `node`'s children, each according to its [`role`].
    fn children(&mut self, node: NodeRef<'a>) {
        for_each_child(node, &mut |field, child| match role(node, field) {
            Role::Visit => self.visit(child),
            Role::Write => match child {
                NodeRef::RangeVar(table) => {
                    self.writes.insert(qualified(table));
                }
                _ => self.visit(child),
            },
            Role::Lock => {
                let outer = std::mem::replace(&mut self.locking, true);
                self.visit(child);
                self.locking = outer;
            }
            Role::InsertSource => match child {
                // `INSERT ... VALUES`: the row constructors are no SELECT.
                NodeRef::SelectStmt(values)
                    if !values.values_lists.is_empty() && values.with_clause.is_none() =>
                {
                    if self.depth >= MAX_DEPTH {
                        self.too_deep = true;
                    } else {
                        self.depth += 1;
                        self.children(child);
                        self.depth -= 1;
                    }
                }
                _ => self.visit(child),
            },
            Role::Skip => {}
        });
    }

    /// Visits a statement that may carry a WITH clause: its CTE names hide tables of the same name
    /// inside the statement. Without RECURSIVE a CTE sees only the ones before it.
    fn scoped(&mut self, with: Option<&'a pg_query::protobuf::WithClause>, node: NodeRef<'a>) {
        let mark = self.ctes.len();
        if let Some(with) = with {
            let names = with.ctes.iter().filter_map(|cte| match &cte.node {
                Some(NodeEnum::CommonTableExpr(cte)) => Some(cte.ctename.clone()),
                _ => None,
            });
            if with.recursive {
                self.ctes.extend(names);
                for cte in &with.ctes {
                    if let Some(cte) = &cte.node {
                        self.visit(cte.to_ref());
                    }
                }
            } else {
                for cte in &with.ctes {
                    if let Some(cte) = &cte.node {
                        self.visit(cte.to_ref());
                        if let NodeEnum::CommonTableExpr(cte) = cte {
                            self.ctes.push(cte.ctename.clone());
                        }
                    }
                }
            }
        }
        self.children(node);
        self.ctes.truncate(mark);
    }

    fn dml(&mut self, operation: &'static str) {
        self.operations.insert(operation);
        self.changes_rows = true;
    }

    /// `RETURNING` hands the changed rows back: the target is read as well as written.
    fn returning(&mut self, table: Option<&RangeVar>, clause: Option<&pg_query::protobuf::ReturningClause>) {
        if let (Some(table), Some(clause)) = (table, clause)
            && !clause.exprs.is_empty()
        {
            self.reads.insert(qualified(table));
        }
    }

    fn read(&mut self, table: &RangeVar) {
        let cte =
            table.schemaname.is_empty() && table.catalogname.is_empty() && self.ctes.contains(&table.relname);
        if cte {
            return;
        }
        let name = qualified(table);
        if self.locking {
            self.writes.insert(name.clone());
        }
        self.reads.insert(name);
    }

    /// A DROP or COMMENT object given as a name list: a table, or the table a trigger, rule,
    /// policy or column belongs to.
    fn named_object(&mut self, object_type: i32, object: Option<&NodeEnum>) {
        let Some(NodeEnum::List(list)) = object else {
            return;
        };
        let names: Vec<&str> = list
            .items
            .iter()
            .filter_map(|item| match &item.node {
                Some(NodeEnum::String(name)) => Some(name.sval.as_str()),
                _ => None,
            })
            .collect();
        let table = match ObjectType::try_from(object_type) {
            Ok(kind) if is_table_like(kind) => names.as_slice(),
            Ok(
                ObjectType::ObjectTrigger
                | ObjectType::ObjectRule
                | ObjectType::ObjectPolicy
                | ObjectType::ObjectColumn,
            ) => names.split_last().map_or(&[][..], |(_, table)| table),
            _ => return,
        };
        if let Some(name) = qualified_names(table) {
            self.writes.insert(name);
        }
    }
}

/// The role of the child in `field` of `parent`.
fn role(parent: NodeRef<'_>, field: &str) -> Role {
    use NodeRef as N;
    let object = |kind: i32| ObjectType::try_from(kind).unwrap_or(ObjectType::Undefined);
    match (parent, field) {
        (
            N::SelectStmt(_) | N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_),
            "with_clause",
        ) => Role::Skip,
        (N::SelectStmt(select), "from_clause") if !select.locking_clause.is_empty() => Role::Lock,
        (N::InsertStmt(_), "select_stmt") => Role::InsertSource,
        (N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_), "relation") => Role::Write,
        (N::TruncateStmt(_) | N::LockStmt(_), "relations") => Role::Write,
        (N::IntoClause(_), "rel") => Role::Write,
        (N::CreateStmt(_), "relation" | "inh_relations") => Role::Write,
        (N::ViewStmt(_), "view") => Role::Write,
        (N::IndexStmt(_) | N::CreateTrigStmt(_) | N::RuleStmt(_) | N::RefreshMatViewStmt(_), "relation") => {
            Role::Write
        }
        (N::CreatePolicyStmt(_) | N::AlterPolicyStmt(_), "table") => Role::Write,
        (N::PartitionCmd(_), "name") => Role::Write,
        (N::CopyStmt(copy), "relation") => {
            if copy.is_from {
                Role::Write
            } else {
                Role::Visit
            }
        }
        (N::AlterTableStmt(alter), "relation") => writes_if(is_table_like(object(alter.objtype))),
        // ALTER INDEX / SEQUENCE / TYPE: their subcommands hold constants and names, no expressions,
        // and an index's ATTACH PARTITION names an index, not a table.
        (N::AlterTableStmt(alter), "cmds") if !is_table_like(object(alter.objtype)) => Role::Skip,
        (N::AlterTableCmd(cmd), "def")
            if cmd.subtype == AlterTableType::AtAddInherit as i32
                || cmd.subtype == AlterTableType::AtDropInherit as i32 =>
        {
            Role::Write
        }
        (N::RenameStmt(rename), "relation") => writes_if(match object(rename.rename_type) {
            ObjectType::ObjectColumn | ObjectType::ObjectTabconstraint => {
                is_table_like(object(rename.relation_type))
            }
            ObjectType::ObjectTrigger | ObjectType::ObjectRule | ObjectType::ObjectPolicy => true,
            kind => is_table_like(kind),
        }),
        (N::AlterObjectSchemaStmt(alter), "relation") => writes_if(is_table_like(object(alter.object_type))),
        (N::AlterOwnerStmt(_) | N::AlterObjectDependsStmt(_), "relation") => Role::Skip,
        (N::CreateSeqStmt(_) | N::AlterSeqStmt(_), "sequence") => Role::Skip,
        (N::CompositeTypeStmt(_), "typevar") => Role::Skip,
        (N::ColumnDef(_), "identity_sequence") => Role::Skip,
        (N::ReindexStmt(reindex), "relation")
            if reindex.kind == ReindexObjectType::ReindexObjectIndex as i32 =>
        {
            Role::Skip
        }
        (N::GrantStmt(grant), "objects") => writes_if(
            grant.targtype == GrantTargetType::AclTargetObject as i32
                && object(grant.objtype) == ObjectType::ObjectTable,
        ),
        _ => Role::Visit,
    }
}

fn writes_if(table: bool) -> Role {
    if table { Role::Write } else { Role::Skip }
}

/// Objects whose rows a statement can read or write: tables and views of every sort.
fn is_table_like(kind: ObjectType) -> bool {
    matches!(
        kind,
        ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable
    )
}

fn target(table: Option<&RangeVar>) -> Target<'_> {
    match table {
        Some(table) => Target {
            name: &table.relname,
            alias: table.alias.as_ref().map(|alias| alias.aliasname.as_str()),
        },
        None => Target {
            name: "",
            alias: None,
        },
    }
}

/// `schema.table`: unqualified names resolve to `pg_catalog` when they start with `pg_`, temporary
/// tables being created to `pg_temp`, anything else to `public`. A database name is dropped
/// (PostgreSQL accepts only the current one).
pub(super) fn qualified(table: &RangeVar) -> String {
    let schema = if !table.schemaname.is_empty() {
        table.schemaname.as_str()
    } else if table.relpersistence == "t" {
        "pg_temp"
    } else {
        default_schema(&table.relname)
    };
    format!("{schema}.{}", table.relname)
}

/// The same for a name list (`[table]`, `[schema, table]` or `[database, schema, table]`).
fn qualified_names(names: &[&str]) -> Option<String> {
    match names {
        [.., schema, table] => Some(format!("{schema}.{table}")),
        [table] => Some(format!("{}.{table}", default_schema(table))),
        [] => None,
    }
}

fn default_schema(name: &str) -> &'static str {
    if name.starts_with("pg_") {
        "pg_catalog"
    } else {
        "public"
    }
}
