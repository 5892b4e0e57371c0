//! MCP tool-call decisions on policies written inline: `call_tool` on `Tool::"<connection>/<tool>"`
//! (a child of its connection), argument conditions, "may call at all" with empty arguments, forbid
//! wins, deny by default.

#![allow(clippy::unwrap_used)]

mod support;

use portcullis_core::Outcome;
use portcullis_policy::PolicySet;
use support::{agent, ctx};

const POLICIES: &str = r#"
@id("agents-call-crm-tools")
permit(principal in Group::"agents", action == Action::"call_tool", resource in Connection::"crm");

@id("admins-only-delete")
forbid(principal, action == Action::"call_tool", resource == Tool::"crm/delete_customer")
unless { principal in Group::"admins" };

@id("not-customer-42")
forbid(principal, action == Action::"call_tool", resource is Tool)
when { resource.name == "lookup_customer" && context.arguments.contains({name: "id", value: "42"}) };

@id("search-needs-tenant")
permit(principal in Group::"auditors", action == Action::"call_tool", resource == Tool::"crm/search")
when { context.arguments.contains({name: "filter.tenant", value: "acme"}) };
"#;

/// Who, which tool, with what, the outcome, the deciding policies.
type Case<'a> = (
    &'a portcullis_core::Principal,
    &'a str,
    &'a [(&'a str, &'a str)],
    Outcome,
    &'a str,
);

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn tool_calls_case_table() {
    let set = PolicySet::from_sources(&[("mcp.cedar".into(), POLICIES.into())]).unwrap();
    let agents = agent("bot", &["agents"]);
    let admins = agent("root", &["agents", "admins"]);
    let auditors = agent("eve", &["auditors"]);
    let cases: &[Case<'_>] = &[
        (
            &agents,
            "lookup_customer",
            &[("id", "7")],
            Outcome::Allow,
            "agents-call-crm-tools",
        ),
        (
            &agents,
            "lookup_customer",
            &[("id", "42")],
            Outcome::Deny,
            "not-customer-42",
        ),
        // May it be called at all (empty arguments)? Yes: the forbid needs id 42.
        (
            &agents,
            "lookup_customer",
            &[],
            Outcome::Allow,
            "agents-call-crm-tools",
        ),
        (
            &agents,
            "delete_customer",
            &[("id", "7")],
            Outcome::Deny,
            "admins-only-delete",
        ),
        (
            &agents,
            "delete_customer",
            &[],
            Outcome::Deny,
            "admins-only-delete",
        ),
        (
            &admins,
            "delete_customer",
            &[("id", "7")],
            Outcome::Allow,
            "agents-call-crm-tools",
        ),
        (&auditors, "lookup_customer", &[("id", "7")], Outcome::Deny, ""),
        (
            &auditors,
            "search",
            &[("filter.tenant", "acme")],
            Outcome::Allow,
            "search-needs-tenant",
        ),
        // A permit conditioned on an argument does not say the tool may be called at all.
        (&auditors, "search", &[], Outcome::Deny, ""),
    ];
    for (who, tool, arguments, outcome, policies) in cases {
        let d = set.decide_tool_call(who, "crm", tool, &args(arguments), &ctx());
        assert_eq!(
            (d.outcome, d.policies.join(",")),
            (*outcome, (*policies).to_owned()),
            "{} {tool} {arguments:?}: {}",
            who.subject,
            d.reason
        );
    }
    let d = set.decide_tool_call(&agents, "crm", "delete_customer", &[], &ctx());
    assert!(d.reason.contains("Tool \"crm/delete_customer\""), "{}", d.reason);
    // Another connection's tools are not covered.
    let d = set.decide_tool_call(&agents, "billing", "lookup_customer", &[], &ctx());
    assert_eq!(d.outcome, Outcome::Deny);
}

#[test]
fn unknown_attributes_are_refused_at_load() {
    let bad =
        r#"permit(principal, action == Action::"call_tool", resource) when { context.args.isEmpty() };"#;
    assert!(PolicySet::from_sources(&[("bad.cedar".into(), bad.into())]).is_err());
}
