//! The child nodes of every parse-tree node, by field name (generated; see gen_children.py).
//!
//! @generated from pg_query 18.1.0 src/protobuf.rs by gen_children.py; do not edit.

use pg_query::NodeRef;
use pg_query::protobuf::Node;

/// Calls `f(field, child)` for every child node of `parent`, in field order.
pub(super) fn for_each_child<'a>(parent: NodeRef<'a>, f: &mut dyn FnMut(&'static str, NodeRef<'a>)) {
    match parent {
        NodeRef::Alias(n) => {
            many(f, "colnames", &n.colnames);
        }
        NodeRef::RangeVar(n) => {
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
        }
        NodeRef::TableFunc(n) => {
            many(f, "ns_uris", &n.ns_uris);
            many(f, "ns_names", &n.ns_names);
            one(f, "docexpr", n.docexpr.as_deref());
            one(f, "rowexpr", n.rowexpr.as_deref());
            many(f, "colnames", &n.colnames);
            many(f, "coltypes", &n.coltypes);
            many(f, "coltypmods", &n.coltypmods);
            many(f, "colcollations", &n.colcollations);
            many(f, "colexprs", &n.colexprs);
            many(f, "coldefexprs", &n.coldefexprs);
            many(f, "colvalexprs", &n.colvalexprs);
            many(f, "passingvalexprs", &n.passingvalexprs);
            one(f, "plan", n.plan.as_deref());
        }
        NodeRef::IntoClause(n) => {
            if let Some(n_rel) = &n.rel {
                f("rel", NodeRef::RangeVar(n_rel));
            }
            many(f, "col_names", &n.col_names);
            many(f, "options", &n.options);
            if let Some(n_view_query) = &n.view_query {
                f("view_query", NodeRef::Query(n_view_query));
            }
        }
        NodeRef::Var(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::Param(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::Aggref(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "aggargtypes", &n.aggargtypes);
            many(f, "aggdirectargs", &n.aggdirectargs);
            many(f, "args", &n.args);
            many(f, "aggorder", &n.aggorder);
            many(f, "aggdistinct", &n.aggdistinct);
            one(f, "aggfilter", n.aggfilter.as_deref());
        }
        NodeRef::GroupingFunc(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
            many(f, "refs", &n.refs);
        }
        NodeRef::WindowFunc(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
            one(f, "aggfilter", n.aggfilter.as_deref());
            many(f, "run_condition", &n.run_condition);
        }
        NodeRef::WindowFuncRunCondition(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::MergeSupportFunc(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::SubscriptingRef(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "refupperindexpr", &n.refupperindexpr);
            many(f, "reflowerindexpr", &n.reflowerindexpr);
            one(f, "refexpr", n.refexpr.as_deref());
            one(f, "refassgnexpr", n.refassgnexpr.as_deref());
        }
        NodeRef::FuncExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::NamedArgExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::OpExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::DistinctExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::NullIfExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::ScalarArrayOpExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::BoolExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::SubLink(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "testexpr", n.testexpr.as_deref());
            many(f, "oper_name", &n.oper_name);
            one(f, "subselect", n.subselect.as_deref());
        }
        NodeRef::SubPlan(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "testexpr", n.testexpr.as_deref());
            many(f, "param_ids", &n.param_ids);
            many(f, "set_param", &n.set_param);
            many(f, "par_param", &n.par_param);
            many(f, "args", &n.args);
        }
        NodeRef::AlternativeSubPlan(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "subplans", &n.subplans);
        }
        NodeRef::FieldSelect(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::FieldStore(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
            many(f, "newvals", &n.newvals);
            many(f, "fieldnums", &n.fieldnums);
        }
        NodeRef::RelabelType(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::CoerceViaIo(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::ArrayCoerceExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
            one(f, "elemexpr", n.elemexpr.as_deref());
        }
        NodeRef::ConvertRowtypeExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::CollateExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::CaseExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
            many(f, "args", &n.args);
            one(f, "defresult", n.defresult.as_deref());
        }
        NodeRef::CaseWhen(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "expr", n.expr.as_deref());
            one(f, "result", n.result.as_deref());
        }
        NodeRef::CaseTestExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::ArrayExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "elements", &n.elements);
        }
        NodeRef::RowExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
            many(f, "colnames", &n.colnames);
        }
        NodeRef::RowCompareExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "opnos", &n.opnos);
            many(f, "opfamilies", &n.opfamilies);
            many(f, "inputcollids", &n.inputcollids);
            many(f, "largs", &n.largs);
            many(f, "rargs", &n.rargs);
        }
        NodeRef::CoalesceExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::MinMaxExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
        }
        NodeRef::SqlvalueFunction(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::XmlExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "named_args", &n.named_args);
            many(f, "arg_names", &n.arg_names);
            many(f, "args", &n.args);
        }
        NodeRef::JsonReturning(n) => {
            if let Some(n_format) = &n.format {
                f("format", NodeRef::JsonFormat(n_format));
            }
        }
        NodeRef::JsonValueExpr(n) => {
            one(f, "raw_expr", n.raw_expr.as_deref());
            one(f, "formatted_expr", n.formatted_expr.as_deref());
            if let Some(n_format) = &n.format {
                f("format", NodeRef::JsonFormat(n_format));
            }
        }
        NodeRef::JsonConstructorExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            many(f, "args", &n.args);
            one(f, "func", n.func.as_deref());
            one(f, "coercion", n.coercion.as_deref());
            if let Some(n_returning) = &n.returning {
                f("returning", NodeRef::JsonReturning(n_returning));
            }
        }
        NodeRef::JsonIsPredicate(n) => {
            one(f, "expr", n.expr.as_deref());
            if let Some(n_format) = &n.format {
                f("format", NodeRef::JsonFormat(n_format));
            }
        }
        NodeRef::JsonBehavior(n) => {
            one(f, "expr", n.expr.as_deref());
        }
        NodeRef::JsonExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "formatted_expr", n.formatted_expr.as_deref());
            if let Some(n_format) = &n.format {
                f("format", NodeRef::JsonFormat(n_format));
            }
            one(f, "path_spec", n.path_spec.as_deref());
            if let Some(n_returning) = &n.returning {
                f("returning", NodeRef::JsonReturning(n_returning));
            }
            many(f, "passing_names", &n.passing_names);
            many(f, "passing_values", &n.passing_values);
            if let Some(n_on_empty) = &n.on_empty {
                f("on_empty", NodeRef::JsonBehavior(n_on_empty));
            }
            if let Some(n_on_error) = &n.on_error {
                f("on_error", NodeRef::JsonBehavior(n_on_error));
            }
        }
        NodeRef::JsonTablePathScan(n) => {
            one(f, "plan", n.plan.as_deref());
            if let Some(n_path) = &n.path {
                f("path", NodeRef::JsonTablePath(n_path));
            }
            one(f, "child", n.child.as_deref());
        }
        NodeRef::JsonTableSiblingJoin(n) => {
            one(f, "plan", n.plan.as_deref());
            one(f, "lplan", n.lplan.as_deref());
            one(f, "rplan", n.rplan.as_deref());
        }
        NodeRef::NullTest(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::BooleanTest(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::MergeAction(n) => {
            one(f, "qual", n.qual.as_deref());
            many(f, "target_list", &n.target_list);
            many(f, "update_colnos", &n.update_colnos);
        }
        NodeRef::CoerceToDomain(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::CoerceToDomainValue(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::SetToDefault(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::CurrentOfExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::NextValueExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
        }
        NodeRef::InferenceElem(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "expr", n.expr.as_deref());
        }
        NodeRef::ReturningExpr(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "retexpr", n.retexpr.as_deref());
        }
        NodeRef::TargetEntry(n) => {
            one(f, "xpr", n.xpr.as_deref());
            one(f, "expr", n.expr.as_deref());
        }
        NodeRef::JoinExpr(n) => {
            one(f, "larg", n.larg.as_deref());
            one(f, "rarg", n.rarg.as_deref());
            many(f, "using_clause", &n.using_clause);
            if let Some(n_join_using_alias) = &n.join_using_alias {
                f("join_using_alias", NodeRef::Alias(n_join_using_alias));
            }
            one(f, "quals", n.quals.as_deref());
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
        }
        NodeRef::FromExpr(n) => {
            many(f, "fromlist", &n.fromlist);
            one(f, "quals", n.quals.as_deref());
        }
        NodeRef::OnConflictExpr(n) => {
            many(f, "arbiter_elems", &n.arbiter_elems);
            one(f, "arbiter_where", n.arbiter_where.as_deref());
            many(f, "on_conflict_set", &n.on_conflict_set);
            one(f, "on_conflict_where", n.on_conflict_where.as_deref());
            many(f, "excl_rel_tlist", &n.excl_rel_tlist);
        }
        NodeRef::Query(n) => {
            one(f, "utility_stmt", n.utility_stmt.as_deref());
            many(f, "cte_list", &n.cte_list);
            many(f, "rtable", &n.rtable);
            many(f, "rteperminfos", &n.rteperminfos);
            if let Some(n_jointree) = &n.jointree {
                f("jointree", NodeRef::FromExpr(n_jointree));
            }
            many(f, "merge_action_list", &n.merge_action_list);
            one(f, "merge_join_condition", n.merge_join_condition.as_deref());
            many(f, "target_list", &n.target_list);
            if let Some(n_on_conflict) = &n.on_conflict {
                f("on_conflict", NodeRef::OnConflictExpr(n_on_conflict));
            }
            many(f, "returning_list", &n.returning_list);
            many(f, "group_clause", &n.group_clause);
            many(f, "grouping_sets", &n.grouping_sets);
            one(f, "having_qual", n.having_qual.as_deref());
            many(f, "window_clause", &n.window_clause);
            many(f, "distinct_clause", &n.distinct_clause);
            many(f, "sort_clause", &n.sort_clause);
            one(f, "limit_offset", n.limit_offset.as_deref());
            one(f, "limit_count", n.limit_count.as_deref());
            many(f, "row_marks", &n.row_marks);
            one(f, "set_operations", n.set_operations.as_deref());
            many(f, "constraint_deps", &n.constraint_deps);
            many(f, "with_check_options", &n.with_check_options);
        }
        NodeRef::TypeName(n) => {
            many(f, "names", &n.names);
            many(f, "typmods", &n.typmods);
            many(f, "array_bounds", &n.array_bounds);
        }
        NodeRef::ColumnRef(n) => {
            many(f, "fields", &n.fields);
        }
        NodeRef::AExpr(n) => {
            many(f, "name", &n.name);
            one(f, "lexpr", n.lexpr.as_deref());
            one(f, "rexpr", n.rexpr.as_deref());
        }
        NodeRef::TypeCast(n) => {
            one(f, "arg", n.arg.as_deref());
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
        }
        NodeRef::CollateClause(n) => {
            one(f, "arg", n.arg.as_deref());
            many(f, "collname", &n.collname);
        }
        NodeRef::FuncCall(n) => {
            many(f, "funcname", &n.funcname);
            many(f, "args", &n.args);
            many(f, "agg_order", &n.agg_order);
            one(f, "agg_filter", n.agg_filter.as_deref());
            if let Some(n_over) = &n.over {
                f("over", NodeRef::WindowDef(n_over));
            }
        }
        NodeRef::AIndices(n) => {
            one(f, "lidx", n.lidx.as_deref());
            one(f, "uidx", n.uidx.as_deref());
        }
        NodeRef::AIndirection(n) => {
            one(f, "arg", n.arg.as_deref());
            many(f, "indirection", &n.indirection);
        }
        NodeRef::AArrayExpr(n) => {
            many(f, "elements", &n.elements);
        }
        NodeRef::ResTarget(n) => {
            many(f, "indirection", &n.indirection);
            one(f, "val", n.val.as_deref());
        }
        NodeRef::MultiAssignRef(n) => {
            one(f, "source", n.source.as_deref());
        }
        NodeRef::SortBy(n) => {
            one(f, "node", n.node.as_deref());
            many(f, "use_op", &n.use_op);
        }
        NodeRef::WindowDef(n) => {
            many(f, "partition_clause", &n.partition_clause);
            many(f, "order_clause", &n.order_clause);
            one(f, "start_offset", n.start_offset.as_deref());
            one(f, "end_offset", n.end_offset.as_deref());
        }
        NodeRef::RangeSubselect(n) => {
            one(f, "subquery", n.subquery.as_deref());
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
        }
        NodeRef::RangeFunction(n) => {
            many(f, "functions", &n.functions);
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
            many(f, "coldeflist", &n.coldeflist);
        }
        NodeRef::RangeTableFunc(n) => {
            one(f, "docexpr", n.docexpr.as_deref());
            one(f, "rowexpr", n.rowexpr.as_deref());
            many(f, "namespaces", &n.namespaces);
            many(f, "columns", &n.columns);
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
        }
        NodeRef::RangeTableFuncCol(n) => {
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
            one(f, "colexpr", n.colexpr.as_deref());
            one(f, "coldefexpr", n.coldefexpr.as_deref());
        }
        NodeRef::RangeTableSample(n) => {
            one(f, "relation", n.relation.as_deref());
            many(f, "method", &n.method);
            many(f, "args", &n.args);
            one(f, "repeatable", n.repeatable.as_deref());
        }
        NodeRef::ColumnDef(n) => {
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
            one(f, "raw_default", n.raw_default.as_deref());
            one(f, "cooked_default", n.cooked_default.as_deref());
            if let Some(n_identity_sequence) = &n.identity_sequence {
                f("identity_sequence", NodeRef::RangeVar(n_identity_sequence));
            }
            if let Some(n_coll_clause) = &n.coll_clause {
                f("coll_clause", NodeRef::CollateClause(n_coll_clause));
            }
            many(f, "constraints", &n.constraints);
            many(f, "fdwoptions", &n.fdwoptions);
        }
        NodeRef::TableLikeClause(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
        }
        NodeRef::IndexElem(n) => {
            one(f, "expr", n.expr.as_deref());
            many(f, "collation", &n.collation);
            many(f, "opclass", &n.opclass);
            many(f, "opclassopts", &n.opclassopts);
        }
        NodeRef::DefElem(n) => {
            one(f, "arg", n.arg.as_deref());
        }
        NodeRef::LockingClause(n) => {
            many(f, "locked_rels", &n.locked_rels);
        }
        NodeRef::XmlSerialize(n) => {
            one(f, "expr", n.expr.as_deref());
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
        }
        NodeRef::PartitionElem(n) => {
            one(f, "expr", n.expr.as_deref());
            many(f, "collation", &n.collation);
            many(f, "opclass", &n.opclass);
        }
        NodeRef::PartitionSpec(n) => {
            many(f, "part_params", &n.part_params);
        }
        NodeRef::PartitionBoundSpec(n) => {
            many(f, "listdatums", &n.listdatums);
            many(f, "lowerdatums", &n.lowerdatums);
            many(f, "upperdatums", &n.upperdatums);
        }
        NodeRef::PartitionRangeDatum(n) => {
            one(f, "value", n.value.as_deref());
        }
        NodeRef::PartitionCmd(n) => {
            if let Some(n_name) = &n.name {
                f("name", NodeRef::RangeVar(n_name));
            }
            if let Some(n_bound) = &n.bound {
                f("bound", NodeRef::PartitionBoundSpec(n_bound));
            }
        }
        NodeRef::RangeTblEntry(n) => {
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
            if let Some(n_eref) = &n.eref {
                f("eref", NodeRef::Alias(n_eref));
            }
            if let Some(n_tablesample) = &n.tablesample {
                f("tablesample", NodeRef::TableSampleClause(n_tablesample));
            }
            if let Some(n_subquery) = &n.subquery {
                f("subquery", NodeRef::Query(n_subquery));
            }
            many(f, "joinaliasvars", &n.joinaliasvars);
            many(f, "joinleftcols", &n.joinleftcols);
            many(f, "joinrightcols", &n.joinrightcols);
            if let Some(n_join_using_alias) = &n.join_using_alias {
                f("join_using_alias", NodeRef::Alias(n_join_using_alias));
            }
            many(f, "functions", &n.functions);
            if let Some(n_tablefunc) = &n.tablefunc {
                f("tablefunc", NodeRef::TableFunc(n_tablefunc));
            }
            many(f, "values_lists", &n.values_lists);
            many(f, "coltypes", &n.coltypes);
            many(f, "coltypmods", &n.coltypmods);
            many(f, "colcollations", &n.colcollations);
            many(f, "groupexprs", &n.groupexprs);
            many(f, "security_quals", &n.security_quals);
        }
        NodeRef::RangeTblFunction(n) => {
            one(f, "funcexpr", n.funcexpr.as_deref());
            many(f, "funccolnames", &n.funccolnames);
            many(f, "funccoltypes", &n.funccoltypes);
            many(f, "funccoltypmods", &n.funccoltypmods);
            many(f, "funccolcollations", &n.funccolcollations);
        }
        NodeRef::TableSampleClause(n) => {
            many(f, "args", &n.args);
            one(f, "repeatable", n.repeatable.as_deref());
        }
        NodeRef::WithCheckOption(n) => {
            one(f, "qual", n.qual.as_deref());
        }
        NodeRef::GroupingSet(n) => {
            many(f, "content", &n.content);
        }
        NodeRef::WindowClause(n) => {
            many(f, "partition_clause", &n.partition_clause);
            many(f, "order_clause", &n.order_clause);
            one(f, "start_offset", n.start_offset.as_deref());
            one(f, "end_offset", n.end_offset.as_deref());
        }
        NodeRef::WithClause(n) => {
            many(f, "ctes", &n.ctes);
        }
        NodeRef::InferClause(n) => {
            many(f, "index_elems", &n.index_elems);
            one(f, "where_clause", n.where_clause.as_deref());
        }
        NodeRef::OnConflictClause(n) => {
            if let Some(n_infer) = &n.infer {
                f("infer", NodeRef::InferClause(n_infer));
            }
            many(f, "target_list", &n.target_list);
            one(f, "where_clause", n.where_clause.as_deref());
        }
        NodeRef::CtesearchClause(n) => {
            many(f, "search_col_list", &n.search_col_list);
        }
        NodeRef::CtecycleClause(n) => {
            many(f, "cycle_col_list", &n.cycle_col_list);
            one(f, "cycle_mark_value", n.cycle_mark_value.as_deref());
            one(f, "cycle_mark_default", n.cycle_mark_default.as_deref());
        }
        NodeRef::CommonTableExpr(n) => {
            many(f, "aliascolnames", &n.aliascolnames);
            one(f, "ctequery", n.ctequery.as_deref());
            if let Some(n_search_clause) = &n.search_clause {
                f("search_clause", NodeRef::CtesearchClause(n_search_clause));
            }
            if let Some(n_cycle_clause) = &n.cycle_clause {
                f("cycle_clause", NodeRef::CtecycleClause(n_cycle_clause));
            }
            many(f, "ctecolnames", &n.ctecolnames);
            many(f, "ctecoltypes", &n.ctecoltypes);
            many(f, "ctecoltypmods", &n.ctecoltypmods);
            many(f, "ctecolcollations", &n.ctecolcollations);
        }
        NodeRef::MergeWhenClause(n) => {
            one(f, "condition", n.condition.as_deref());
            many(f, "target_list", &n.target_list);
            many(f, "values", &n.values);
        }
        NodeRef::ReturningClause(n) => {
            many(f, "options", &n.options);
            many(f, "exprs", &n.exprs);
        }
        NodeRef::JsonOutput(n) => {
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
            if let Some(n_returning) = &n.returning {
                f("returning", NodeRef::JsonReturning(n_returning));
            }
        }
        NodeRef::JsonArgument(n) => {
            if let Some(n_val) = &n.val {
                f("val", NodeRef::JsonValueExpr(n_val));
            }
        }
        NodeRef::JsonFuncExpr(n) => {
            if let Some(n_context_item) = &n.context_item {
                f("context_item", NodeRef::JsonValueExpr(n_context_item));
            }
            one(f, "pathspec", n.pathspec.as_deref());
            many(f, "passing", &n.passing);
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
            if let Some(n_on_empty) = &n.on_empty {
                f("on_empty", NodeRef::JsonBehavior(n_on_empty));
            }
            if let Some(n_on_error) = &n.on_error {
                f("on_error", NodeRef::JsonBehavior(n_on_error));
            }
        }
        NodeRef::JsonTablePathSpec(n) => {
            one(f, "string", n.string.as_deref());
        }
        NodeRef::JsonTable(n) => {
            if let Some(n_context_item) = &n.context_item {
                f("context_item", NodeRef::JsonValueExpr(n_context_item));
            }
            if let Some(n_pathspec) = &n.pathspec {
                f("pathspec", NodeRef::JsonTablePathSpec(n_pathspec));
            }
            many(f, "passing", &n.passing);
            many(f, "columns", &n.columns);
            if let Some(n_on_error) = &n.on_error {
                f("on_error", NodeRef::JsonBehavior(n_on_error));
            }
            if let Some(n_alias) = &n.alias {
                f("alias", NodeRef::Alias(n_alias));
            }
        }
        NodeRef::JsonTableColumn(n) => {
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
            if let Some(n_pathspec) = &n.pathspec {
                f("pathspec", NodeRef::JsonTablePathSpec(n_pathspec));
            }
            if let Some(n_format) = &n.format {
                f("format", NodeRef::JsonFormat(n_format));
            }
            many(f, "columns", &n.columns);
            if let Some(n_on_empty) = &n.on_empty {
                f("on_empty", NodeRef::JsonBehavior(n_on_empty));
            }
            if let Some(n_on_error) = &n.on_error {
                f("on_error", NodeRef::JsonBehavior(n_on_error));
            }
        }
        NodeRef::JsonKeyValue(n) => {
            one(f, "key", n.key.as_deref());
            if let Some(n_value) = &n.value {
                f("value", NodeRef::JsonValueExpr(n_value));
            }
        }
        NodeRef::JsonParseExpr(n) => {
            if let Some(n_expr) = &n.expr {
                f("expr", NodeRef::JsonValueExpr(n_expr));
            }
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
        }
        NodeRef::JsonScalarExpr(n) => {
            one(f, "expr", n.expr.as_deref());
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
        }
        NodeRef::JsonSerializeExpr(n) => {
            if let Some(n_expr) = &n.expr {
                f("expr", NodeRef::JsonValueExpr(n_expr));
            }
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
        }
        NodeRef::JsonObjectConstructor(n) => {
            many(f, "exprs", &n.exprs);
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
        }
        NodeRef::JsonArrayConstructor(n) => {
            many(f, "exprs", &n.exprs);
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
        }
        NodeRef::JsonArrayQueryConstructor(n) => {
            one(f, "query", n.query.as_deref());
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
            if let Some(n_format) = &n.format {
                f("format", NodeRef::JsonFormat(n_format));
            }
        }
        NodeRef::JsonAggConstructor(n) => {
            if let Some(n_output) = &n.output {
                f("output", NodeRef::JsonOutput(n_output));
            }
            one(f, "agg_filter", n.agg_filter.as_deref());
            many(f, "agg_order", &n.agg_order);
            if let Some(n_over) = &n.over {
                f("over", NodeRef::WindowDef(n_over));
            }
        }
        NodeRef::JsonObjectAgg(n) => {
            if let Some(n_constructor) = &n.constructor {
                f("constructor", NodeRef::JsonAggConstructor(n_constructor));
            }
            if let Some(n_arg) = &n.arg {
                f("arg", NodeRef::JsonKeyValue(n_arg));
            }
        }
        NodeRef::JsonArrayAgg(n) => {
            if let Some(n_constructor) = &n.constructor {
                f("constructor", NodeRef::JsonAggConstructor(n_constructor));
            }
            if let Some(n_arg) = &n.arg {
                f("arg", NodeRef::JsonValueExpr(n_arg));
            }
        }
        NodeRef::RawStmt(n) => {
            one(f, "stmt", n.stmt.as_deref());
        }
        NodeRef::InsertStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "cols", &n.cols);
            one(f, "select_stmt", n.select_stmt.as_deref());
            if let Some(n_on_conflict_clause) = &n.on_conflict_clause {
                f(
                    "on_conflict_clause",
                    NodeRef::OnConflictClause(n_on_conflict_clause),
                );
            }
            if let Some(n_returning_clause) = &n.returning_clause {
                f("returning_clause", NodeRef::ReturningClause(n_returning_clause));
            }
            if let Some(n_with_clause) = &n.with_clause {
                f("with_clause", NodeRef::WithClause(n_with_clause));
            }
        }
        NodeRef::DeleteStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "using_clause", &n.using_clause);
            one(f, "where_clause", n.where_clause.as_deref());
            if let Some(n_returning_clause) = &n.returning_clause {
                f("returning_clause", NodeRef::ReturningClause(n_returning_clause));
            }
            if let Some(n_with_clause) = &n.with_clause {
                f("with_clause", NodeRef::WithClause(n_with_clause));
            }
        }
        NodeRef::UpdateStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "target_list", &n.target_list);
            one(f, "where_clause", n.where_clause.as_deref());
            many(f, "from_clause", &n.from_clause);
            if let Some(n_returning_clause) = &n.returning_clause {
                f("returning_clause", NodeRef::ReturningClause(n_returning_clause));
            }
            if let Some(n_with_clause) = &n.with_clause {
                f("with_clause", NodeRef::WithClause(n_with_clause));
            }
        }
        NodeRef::MergeStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "source_relation", n.source_relation.as_deref());
            one(f, "join_condition", n.join_condition.as_deref());
            many(f, "merge_when_clauses", &n.merge_when_clauses);
            if let Some(n_returning_clause) = &n.returning_clause {
                f("returning_clause", NodeRef::ReturningClause(n_returning_clause));
            }
            if let Some(n_with_clause) = &n.with_clause {
                f("with_clause", NodeRef::WithClause(n_with_clause));
            }
        }
        NodeRef::SelectStmt(n) => {
            many(f, "distinct_clause", &n.distinct_clause);
            if let Some(n_into_clause) = &n.into_clause {
                f("into_clause", NodeRef::IntoClause(n_into_clause));
            }
            many(f, "target_list", &n.target_list);
            many(f, "from_clause", &n.from_clause);
            one(f, "where_clause", n.where_clause.as_deref());
            many(f, "group_clause", &n.group_clause);
            one(f, "having_clause", n.having_clause.as_deref());
            many(f, "window_clause", &n.window_clause);
            many(f, "values_lists", &n.values_lists);
            many(f, "sort_clause", &n.sort_clause);
            one(f, "limit_offset", n.limit_offset.as_deref());
            one(f, "limit_count", n.limit_count.as_deref());
            many(f, "locking_clause", &n.locking_clause);
            if let Some(n_with_clause) = &n.with_clause {
                f("with_clause", NodeRef::WithClause(n_with_clause));
            }
            if let Some(n_larg) = &n.larg {
                f("larg", NodeRef::SelectStmt(n_larg));
            }
            if let Some(n_rarg) = &n.rarg {
                f("rarg", NodeRef::SelectStmt(n_rarg));
            }
        }
        NodeRef::SetOperationStmt(n) => {
            one(f, "larg", n.larg.as_deref());
            one(f, "rarg", n.rarg.as_deref());
            many(f, "col_types", &n.col_types);
            many(f, "col_typmods", &n.col_typmods);
            many(f, "col_collations", &n.col_collations);
            many(f, "group_clauses", &n.group_clauses);
        }
        NodeRef::ReturnStmt(n) => {
            one(f, "returnval", n.returnval.as_deref());
        }
        NodeRef::PlassignStmt(n) => {
            many(f, "indirection", &n.indirection);
            if let Some(n_val) = &n.val {
                f("val", NodeRef::SelectStmt(n_val));
            }
        }
        NodeRef::CreateSchemaStmt(n) => {
            if let Some(n_authrole) = &n.authrole {
                f("authrole", NodeRef::RoleSpec(n_authrole));
            }
            many(f, "schema_elts", &n.schema_elts);
        }
        NodeRef::AlterTableStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "cmds", &n.cmds);
        }
        NodeRef::AlterTableCmd(n) => {
            if let Some(n_newowner) = &n.newowner {
                f("newowner", NodeRef::RoleSpec(n_newowner));
            }
            one(f, "def", n.def.as_deref());
        }
        NodeRef::AlterCollationStmt(n) => {
            many(f, "collname", &n.collname);
        }
        NodeRef::AlterDomainStmt(n) => {
            many(f, "type_name", &n.type_name);
            one(f, "def", n.def.as_deref());
        }
        NodeRef::GrantStmt(n) => {
            many(f, "objects", &n.objects);
            many(f, "privileges", &n.privileges);
            many(f, "grantees", &n.grantees);
            if let Some(n_grantor) = &n.grantor {
                f("grantor", NodeRef::RoleSpec(n_grantor));
            }
        }
        NodeRef::ObjectWithArgs(n) => {
            many(f, "objname", &n.objname);
            many(f, "objargs", &n.objargs);
            many(f, "objfuncargs", &n.objfuncargs);
        }
        NodeRef::AccessPriv(n) => {
            many(f, "cols", &n.cols);
        }
        NodeRef::GrantRoleStmt(n) => {
            many(f, "granted_roles", &n.granted_roles);
            many(f, "grantee_roles", &n.grantee_roles);
            many(f, "opt", &n.opt);
            if let Some(n_grantor) = &n.grantor {
                f("grantor", NodeRef::RoleSpec(n_grantor));
            }
        }
        NodeRef::AlterDefaultPrivilegesStmt(n) => {
            many(f, "options", &n.options);
            if let Some(n_action) = &n.action {
                f("action", NodeRef::GrantStmt(n_action));
            }
        }
        NodeRef::CopyStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "query", n.query.as_deref());
            many(f, "attlist", &n.attlist);
            many(f, "options", &n.options);
            one(f, "where_clause", n.where_clause.as_deref());
        }
        NodeRef::VariableSetStmt(n) => {
            many(f, "args", &n.args);
        }
        NodeRef::CreateStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "table_elts", &n.table_elts);
            many(f, "inh_relations", &n.inh_relations);
            if let Some(n_partbound) = &n.partbound {
                f("partbound", NodeRef::PartitionBoundSpec(n_partbound));
            }
            if let Some(n_partspec) = &n.partspec {
                f("partspec", NodeRef::PartitionSpec(n_partspec));
            }
            if let Some(n_of_typename) = &n.of_typename {
                f("of_typename", NodeRef::TypeName(n_of_typename));
            }
            many(f, "constraints", &n.constraints);
            many(f, "nnconstraints", &n.nnconstraints);
            many(f, "options", &n.options);
        }
        NodeRef::Constraint(n) => {
            one(f, "raw_expr", n.raw_expr.as_deref());
            many(f, "keys", &n.keys);
            many(f, "including", &n.including);
            many(f, "exclusions", &n.exclusions);
            many(f, "options", &n.options);
            one(f, "where_clause", n.where_clause.as_deref());
            if let Some(n_pktable) = &n.pktable {
                f("pktable", NodeRef::RangeVar(n_pktable));
            }
            many(f, "fk_attrs", &n.fk_attrs);
            many(f, "pk_attrs", &n.pk_attrs);
            many(f, "fk_del_set_cols", &n.fk_del_set_cols);
            many(f, "old_conpfeqop", &n.old_conpfeqop);
        }
        NodeRef::CreateTableSpaceStmt(n) => {
            if let Some(n_owner) = &n.owner {
                f("owner", NodeRef::RoleSpec(n_owner));
            }
            many(f, "options", &n.options);
        }
        NodeRef::AlterTableSpaceOptionsStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterTableMoveAllStmt(n) => {
            many(f, "roles", &n.roles);
        }
        NodeRef::CreateExtensionStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterExtensionStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterExtensionContentsStmt(n) => {
            one(f, "object", n.object.as_deref());
        }
        NodeRef::CreateFdwStmt(n) => {
            many(f, "func_options", &n.func_options);
            many(f, "options", &n.options);
        }
        NodeRef::AlterFdwStmt(n) => {
            many(f, "func_options", &n.func_options);
            many(f, "options", &n.options);
        }
        NodeRef::CreateForeignServerStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterForeignServerStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::CreateForeignTableStmt(n) => {
            if let Some(n_base_stmt) = &n.base_stmt {
                f("base_stmt", NodeRef::CreateStmt(n_base_stmt));
            }
            many(f, "options", &n.options);
        }
        NodeRef::CreateUserMappingStmt(n) => {
            if let Some(n_user) = &n.user {
                f("user", NodeRef::RoleSpec(n_user));
            }
            many(f, "options", &n.options);
        }
        NodeRef::AlterUserMappingStmt(n) => {
            if let Some(n_user) = &n.user {
                f("user", NodeRef::RoleSpec(n_user));
            }
            many(f, "options", &n.options);
        }
        NodeRef::DropUserMappingStmt(n) => {
            if let Some(n_user) = &n.user {
                f("user", NodeRef::RoleSpec(n_user));
            }
        }
        NodeRef::ImportForeignSchemaStmt(n) => {
            many(f, "table_list", &n.table_list);
            many(f, "options", &n.options);
        }
        NodeRef::CreatePolicyStmt(n) => {
            if let Some(n_table) = &n.table {
                f("table", NodeRef::RangeVar(n_table));
            }
            many(f, "roles", &n.roles);
            one(f, "qual", n.qual.as_deref());
            one(f, "with_check", n.with_check.as_deref());
        }
        NodeRef::AlterPolicyStmt(n) => {
            if let Some(n_table) = &n.table {
                f("table", NodeRef::RangeVar(n_table));
            }
            many(f, "roles", &n.roles);
            one(f, "qual", n.qual.as_deref());
            one(f, "with_check", n.with_check.as_deref());
        }
        NodeRef::CreateAmStmt(n) => {
            many(f, "handler_name", &n.handler_name);
        }
        NodeRef::CreateTrigStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "funcname", &n.funcname);
            many(f, "args", &n.args);
            many(f, "columns", &n.columns);
            one(f, "when_clause", n.when_clause.as_deref());
            many(f, "transition_rels", &n.transition_rels);
            if let Some(n_constrrel) = &n.constrrel {
                f("constrrel", NodeRef::RangeVar(n_constrrel));
            }
        }
        NodeRef::CreateEventTrigStmt(n) => {
            many(f, "whenclause", &n.whenclause);
            many(f, "funcname", &n.funcname);
        }
        NodeRef::CreatePlangStmt(n) => {
            many(f, "plhandler", &n.plhandler);
            many(f, "plinline", &n.plinline);
            many(f, "plvalidator", &n.plvalidator);
        }
        NodeRef::CreateRoleStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterRoleStmt(n) => {
            if let Some(n_role) = &n.role {
                f("role", NodeRef::RoleSpec(n_role));
            }
            many(f, "options", &n.options);
        }
        NodeRef::AlterRoleSetStmt(n) => {
            if let Some(n_role) = &n.role {
                f("role", NodeRef::RoleSpec(n_role));
            }
            if let Some(n_setstmt) = &n.setstmt {
                f("setstmt", NodeRef::VariableSetStmt(n_setstmt));
            }
        }
        NodeRef::DropRoleStmt(n) => {
            many(f, "roles", &n.roles);
        }
        NodeRef::CreateSeqStmt(n) => {
            if let Some(n_sequence) = &n.sequence {
                f("sequence", NodeRef::RangeVar(n_sequence));
            }
            many(f, "options", &n.options);
        }
        NodeRef::AlterSeqStmt(n) => {
            if let Some(n_sequence) = &n.sequence {
                f("sequence", NodeRef::RangeVar(n_sequence));
            }
            many(f, "options", &n.options);
        }
        NodeRef::DefineStmt(n) => {
            many(f, "defnames", &n.defnames);
            many(f, "args", &n.args);
            many(f, "definition", &n.definition);
        }
        NodeRef::CreateDomainStmt(n) => {
            many(f, "domainname", &n.domainname);
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
            if let Some(n_coll_clause) = &n.coll_clause {
                f("coll_clause", NodeRef::CollateClause(n_coll_clause));
            }
            many(f, "constraints", &n.constraints);
        }
        NodeRef::CreateOpClassStmt(n) => {
            many(f, "opclassname", &n.opclassname);
            many(f, "opfamilyname", &n.opfamilyname);
            if let Some(n_datatype) = &n.datatype {
                f("datatype", NodeRef::TypeName(n_datatype));
            }
            many(f, "items", &n.items);
        }
        NodeRef::CreateOpClassItem(n) => {
            if let Some(n_name) = &n.name {
                f("name", NodeRef::ObjectWithArgs(n_name));
            }
            many(f, "order_family", &n.order_family);
            many(f, "class_args", &n.class_args);
            if let Some(n_storedtype) = &n.storedtype {
                f("storedtype", NodeRef::TypeName(n_storedtype));
            }
        }
        NodeRef::CreateOpFamilyStmt(n) => {
            many(f, "opfamilyname", &n.opfamilyname);
        }
        NodeRef::AlterOpFamilyStmt(n) => {
            many(f, "opfamilyname", &n.opfamilyname);
            many(f, "items", &n.items);
        }
        NodeRef::DropStmt(n) => {
            many(f, "objects", &n.objects);
        }
        NodeRef::TruncateStmt(n) => {
            many(f, "relations", &n.relations);
        }
        NodeRef::CommentStmt(n) => {
            one(f, "object", n.object.as_deref());
        }
        NodeRef::SecLabelStmt(n) => {
            one(f, "object", n.object.as_deref());
        }
        NodeRef::DeclareCursorStmt(n) => {
            one(f, "query", n.query.as_deref());
        }
        NodeRef::IndexStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "index_params", &n.index_params);
            many(f, "index_including_params", &n.index_including_params);
            many(f, "options", &n.options);
            one(f, "where_clause", n.where_clause.as_deref());
            many(f, "exclude_op_names", &n.exclude_op_names);
        }
        NodeRef::CreateStatsStmt(n) => {
            many(f, "defnames", &n.defnames);
            many(f, "stat_types", &n.stat_types);
            many(f, "exprs", &n.exprs);
            many(f, "relations", &n.relations);
        }
        NodeRef::StatsElem(n) => {
            one(f, "expr", n.expr.as_deref());
        }
        NodeRef::AlterStatsStmt(n) => {
            many(f, "defnames", &n.defnames);
            one(f, "stxstattarget", n.stxstattarget.as_deref());
        }
        NodeRef::CreateFunctionStmt(n) => {
            many(f, "funcname", &n.funcname);
            many(f, "parameters", &n.parameters);
            if let Some(n_return_type) = &n.return_type {
                f("return_type", NodeRef::TypeName(n_return_type));
            }
            many(f, "options", &n.options);
            one(f, "sql_body", n.sql_body.as_deref());
        }
        NodeRef::FunctionParameter(n) => {
            if let Some(n_arg_type) = &n.arg_type {
                f("arg_type", NodeRef::TypeName(n_arg_type));
            }
            one(f, "defexpr", n.defexpr.as_deref());
        }
        NodeRef::AlterFunctionStmt(n) => {
            if let Some(n_func) = &n.func {
                f("func", NodeRef::ObjectWithArgs(n_func));
            }
            many(f, "actions", &n.actions);
        }
        NodeRef::DoStmt(n) => {
            many(f, "args", &n.args);
        }
        NodeRef::CallStmt(n) => {
            if let Some(n_funccall) = &n.funccall {
                f("funccall", NodeRef::FuncCall(n_funccall));
            }
            if let Some(n_funcexpr) = &n.funcexpr {
                f("funcexpr", NodeRef::FuncExpr(n_funcexpr));
            }
            many(f, "outargs", &n.outargs);
        }
        NodeRef::RenameStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "object", n.object.as_deref());
        }
        NodeRef::AlterObjectDependsStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "object", n.object.as_deref());
            if let Some(n_extname) = &n.extname {
                f("extname", NodeRef::String(n_extname));
            }
        }
        NodeRef::AlterObjectSchemaStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "object", n.object.as_deref());
        }
        NodeRef::AlterOwnerStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "object", n.object.as_deref());
            if let Some(n_newowner) = &n.newowner {
                f("newowner", NodeRef::RoleSpec(n_newowner));
            }
        }
        NodeRef::AlterOperatorStmt(n) => {
            if let Some(n_opername) = &n.opername {
                f("opername", NodeRef::ObjectWithArgs(n_opername));
            }
            many(f, "options", &n.options);
        }
        NodeRef::AlterTypeStmt(n) => {
            many(f, "type_name", &n.type_name);
            many(f, "options", &n.options);
        }
        NodeRef::RuleStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "where_clause", n.where_clause.as_deref());
            many(f, "actions", &n.actions);
        }
        NodeRef::TransactionStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::CompositeTypeStmt(n) => {
            if let Some(n_typevar) = &n.typevar {
                f("typevar", NodeRef::RangeVar(n_typevar));
            }
            many(f, "coldeflist", &n.coldeflist);
        }
        NodeRef::CreateEnumStmt(n) => {
            many(f, "type_name", &n.type_name);
            many(f, "vals", &n.vals);
        }
        NodeRef::CreateRangeStmt(n) => {
            many(f, "type_name", &n.type_name);
            many(f, "params", &n.params);
        }
        NodeRef::AlterEnumStmt(n) => {
            many(f, "type_name", &n.type_name);
        }
        NodeRef::ViewStmt(n) => {
            if let Some(n_view) = &n.view {
                f("view", NodeRef::RangeVar(n_view));
            }
            many(f, "aliases", &n.aliases);
            one(f, "query", n.query.as_deref());
            many(f, "options", &n.options);
        }
        NodeRef::CreatedbStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterDatabaseStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterDatabaseSetStmt(n) => {
            if let Some(n_setstmt) = &n.setstmt {
                f("setstmt", NodeRef::VariableSetStmt(n_setstmt));
            }
        }
        NodeRef::DropdbStmt(n) => {
            many(f, "options", &n.options);
        }
        NodeRef::AlterSystemStmt(n) => {
            if let Some(n_setstmt) = &n.setstmt {
                f("setstmt", NodeRef::VariableSetStmt(n_setstmt));
            }
        }
        NodeRef::ClusterStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "params", &n.params);
        }
        NodeRef::VacuumStmt(n) => {
            many(f, "options", &n.options);
            many(f, "rels", &n.rels);
        }
        NodeRef::VacuumRelation(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "va_cols", &n.va_cols);
        }
        NodeRef::ExplainStmt(n) => {
            one(f, "query", n.query.as_deref());
            many(f, "options", &n.options);
        }
        NodeRef::CreateTableAsStmt(n) => {
            one(f, "query", n.query.as_deref());
            if let Some(n_into) = &n.into {
                f("into", NodeRef::IntoClause(n_into));
            }
        }
        NodeRef::RefreshMatViewStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
        }
        NodeRef::LockStmt(n) => {
            many(f, "relations", &n.relations);
        }
        NodeRef::ConstraintsSetStmt(n) => {
            many(f, "constraints", &n.constraints);
        }
        NodeRef::ReindexStmt(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            many(f, "params", &n.params);
        }
        NodeRef::CreateConversionStmt(n) => {
            many(f, "conversion_name", &n.conversion_name);
            many(f, "func_name", &n.func_name);
        }
        NodeRef::CreateCastStmt(n) => {
            if let Some(n_sourcetype) = &n.sourcetype {
                f("sourcetype", NodeRef::TypeName(n_sourcetype));
            }
            if let Some(n_targettype) = &n.targettype {
                f("targettype", NodeRef::TypeName(n_targettype));
            }
            if let Some(n_func) = &n.func {
                f("func", NodeRef::ObjectWithArgs(n_func));
            }
        }
        NodeRef::CreateTransformStmt(n) => {
            if let Some(n_type_name) = &n.type_name {
                f("type_name", NodeRef::TypeName(n_type_name));
            }
            if let Some(n_fromsql) = &n.fromsql {
                f("fromsql", NodeRef::ObjectWithArgs(n_fromsql));
            }
            if let Some(n_tosql) = &n.tosql {
                f("tosql", NodeRef::ObjectWithArgs(n_tosql));
            }
        }
        NodeRef::PrepareStmt(n) => {
            many(f, "argtypes", &n.argtypes);
            one(f, "query", n.query.as_deref());
        }
        NodeRef::ExecuteStmt(n) => {
            many(f, "params", &n.params);
        }
        NodeRef::DropOwnedStmt(n) => {
            many(f, "roles", &n.roles);
        }
        NodeRef::ReassignOwnedStmt(n) => {
            many(f, "roles", &n.roles);
            if let Some(n_newrole) = &n.newrole {
                f("newrole", NodeRef::RoleSpec(n_newrole));
            }
        }
        NodeRef::AlterTsdictionaryStmt(n) => {
            many(f, "dictname", &n.dictname);
            many(f, "options", &n.options);
        }
        NodeRef::AlterTsconfigurationStmt(n) => {
            many(f, "cfgname", &n.cfgname);
            many(f, "tokentype", &n.tokentype);
            many(f, "dicts", &n.dicts);
        }
        NodeRef::PublicationTable(n) => {
            if let Some(n_relation) = &n.relation {
                f("relation", NodeRef::RangeVar(n_relation));
            }
            one(f, "where_clause", n.where_clause.as_deref());
            many(f, "columns", &n.columns);
        }
        NodeRef::PublicationObjSpec(n) => {
            if let Some(n_pubtable) = &n.pubtable {
                f("pubtable", NodeRef::PublicationTable(n_pubtable));
            }
        }
        NodeRef::CreatePublicationStmt(n) => {
            many(f, "options", &n.options);
            many(f, "pubobjects", &n.pubobjects);
        }
        NodeRef::AlterPublicationStmt(n) => {
            many(f, "options", &n.options);
            many(f, "pubobjects", &n.pubobjects);
        }
        NodeRef::CreateSubscriptionStmt(n) => {
            many(f, "publication", &n.publication);
            many(f, "options", &n.options);
        }
        NodeRef::AlterSubscriptionStmt(n) => {
            many(f, "publication", &n.publication);
            many(f, "options", &n.options);
        }
        NodeRef::List(n) => {
            many(f, "items", &n.items);
        }
        NodeRef::IntList(n) => {
            many(f, "items", &n.items);
        }
        NodeRef::OidList(n) => {
            many(f, "items", &n.items);
        }
        NodeRef::JsonFormat(_)
        | NodeRef::JsonTablePath(_)
        | NodeRef::RangeTblRef(_)
        | NodeRef::ParamRef(_)
        | NodeRef::RoleSpec(_)
        | NodeRef::AStar(_)
        | NodeRef::RtepermissionInfo(_)
        | NodeRef::SortGroupClause(_)
        | NodeRef::RowMarkClause(_)
        | NodeRef::ReturningOption(_)
        | NodeRef::TriggerTransition(_)
        | NodeRef::AtalterConstraint(_)
        | NodeRef::ReplicaIdentityStmt(_)
        | NodeRef::VariableShowStmt(_)
        | NodeRef::DropTableSpaceStmt(_)
        | NodeRef::AlterEventTrigStmt(_)
        | NodeRef::ClosePortalStmt(_)
        | NodeRef::FetchStmt(_)
        | NodeRef::InlineCodeBlock(_)
        | NodeRef::CallContext(_)
        | NodeRef::NotifyStmt(_)
        | NodeRef::ListenStmt(_)
        | NodeRef::UnlistenStmt(_)
        | NodeRef::LoadStmt(_)
        | NodeRef::AlterDatabaseRefreshCollStmt(_)
        | NodeRef::CheckPointStmt(_)
        | NodeRef::DiscardStmt(_)
        | NodeRef::DeallocateStmt(_)
        | NodeRef::DropSubscriptionStmt(_)
        | NodeRef::Integer(_)
        | NodeRef::Float(_)
        | NodeRef::Boolean(_)
        | NodeRef::String(_)
        | NodeRef::BitString(_)
        | NodeRef::AConst(_) => {}
    }
}

fn one<'a>(f: &mut dyn FnMut(&'static str, NodeRef<'a>), field: &'static str, child: Option<&'a Node>) {
    if let Some(inner) = child.and_then(|child| child.node.as_ref()) {
        f(field, inner.to_ref());
    }
}

fn many<'a>(f: &mut dyn FnMut(&'static str, NodeRef<'a>), field: &'static str, children: &'a [Node]) {
    for child in children {
        one(f, field, Some(child));
    }
}
