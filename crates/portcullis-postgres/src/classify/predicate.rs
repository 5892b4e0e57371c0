//! Whether an UPDATE's or DELETE's WHERE clause restricts the rows it touches, judged from structure alone.
//!
//! The rules, best effort and never looking at literal values:
//! - `a AND b` restricts when either arm does; `a OR b` only when every arm does;
//! - `NOT x` restricts when `x` refers to a column of the target;
//! - `WHERE CURRENT OF cursor` restricts (one row);
//! - `col = col`, `col >= col`, `col <= col`, `col IS NOT DISTINCT FROM col` (the same column on both
//!   sides) and `col IS NOT NULL` are tautologies and do not restrict;
//! - anything else restricts when it refers to a column of the target: an unqualified column outside
//!   subqueries, or one qualified with the target's name or alias anywhere (a correlated subquery).
//!
//! So `WHERE true`, `WHERE 1 = 1`, `WHERE id = 1 OR 1 = 1`, `WHERE other.flag` (a joined table only)
//! and `WHERE EXISTS (SELECT 1 FROM o)` do not restrict; `WHERE id > 0` does, although it may match
//! every row: no structural rule can tell, and the facts never depend on values.

use pg_query::NodeRef;
use pg_query::protobuf::{AExprKind, BoolExprType, NullTestType, node::Node as NodeEnum};

use super::children::for_each_child;

/// Expressions nested deeper than this count as not restrictive (the conservative answer).
const MAX_DEPTH: usize = 200;

/// The table an UPDATE, DELETE or MERGE changes, as its WHERE clause may name it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub name: &'a str,
    pub alias: Option<&'a str>,
}

/// Whether `clause` (absent: no WHERE at all) restricts the rows of `target`.
pub(super) fn restrictive(clause: Option<NodeRef<'_>>, target: Target<'_>) -> bool {
    clause.is_some_and(|clause| is_restrictive(clause, target, 0))
}

fn is_restrictive(node: NodeRef<'_>, target: Target<'_>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match node {
        NodeRef::BoolExpr(expr) => {
            let mut arms = expr
                .args
                .iter()
                .filter_map(|arg| arg.node.as_ref())
                .map(NodeEnum::to_ref);
            match BoolExprType::try_from(expr.boolop) {
                Ok(BoolExprType::AndExpr) => arms.any(|arm| is_restrictive(arm, target, depth + 1)),
                Ok(BoolExprType::OrExpr) => {
                    !expr.args.is_empty() && arms.all(|arm| is_restrictive(arm, target, depth + 1))
                }
                Ok(BoolExprType::NotExpr) => references_target(node, target, false, depth),
                _ => false,
            }
        }
        NodeRef::CurrentOfExpr(_) => true,
        NodeRef::AExpr(expr) if is_tautology(expr) => false,
        NodeRef::NullTest(test)
            if test.nulltesttype == NullTestType::IsNotNull as i32
                && matches!(
                    test.arg.as_deref().and_then(|arg| arg.node.as_ref()),
                    Some(NodeEnum::ColumnRef(_))
                ) =>
        {
            false
        }
        _ => references_target(node, target, false, depth),
    }
}

/// `col = col` and its relatives over one column.
fn is_tautology(expr: &pg_query::protobuf::AExpr) -> bool {
    let reflexive = match AExprKind::try_from(expr.kind) {
        Ok(AExprKind::AexprOp) => matches!(
            expr.name.last().and_then(|name| name.node.as_ref()),
            Some(NodeEnum::String(op)) if matches!(op.sval.as_str(), "=" | ">=" | "<=")
        ),
        Ok(AExprKind::AexprNotDistinct) => true,
        _ => false,
    };
    reflexive
        && match (column(expr.lexpr.as_deref()), column(expr.rexpr.as_deref())) {
            (Some(left), Some(right)) => left == right,
            _ => false,
        }
}

fn references_target(node: NodeRef<'_>, target: Target<'_>, in_subquery: bool, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if let NodeRef::ColumnRef(column) = node {
        return is_target_column(&column_path(column), target, in_subquery);
    }
    let in_subquery = in_subquery || matches!(node, NodeRef::SelectStmt(_));
    let mut found = false;
    for_each_child(node, &mut |_, child| {
        found = found || references_target(child, target, in_subquery, depth + 1);
    });
    found
}

fn is_target_column(path: &[&str], target: Target<'_>, in_subquery: bool) -> bool {
    match path {
        [] => false,
        // Unqualified: the target's own column at its level; inside a subquery it most likely
        // names the subquery's tables, so it does not count.
        [_] => !in_subquery,
        [.., qualifier, _] => target.alias == Some(*qualifier) || target.name == *qualifier,
    }
}

fn column(side: Option<&pg_query::protobuf::Node>) -> Option<Vec<&str>> {
    match side.and_then(|side| side.node.as_ref()) {
        Some(NodeEnum::ColumnRef(column)) => Some(column_path(column)),
        _ => None,
    }
}

/// A column reference's names, `*` for `t.*`.
fn column_path(column: &pg_query::protobuf::ColumnRef) -> Vec<&str> {
    column
        .fields
        .iter()
        .map(|field| match &field.node {
            Some(NodeEnum::String(name)) => name.sval.as_str(),
            _ => "*",
        })
        .collect()
}
