//! The engine's semantics on policies written inline: combination of requests, approval, per-table
//! resources, context, fail-closed evaluation, naming, load errors and time dependence.

mod support;

use std::net::IpAddr;

use portcullis_core::{Decision, Outcome, StatementFacts, StatementKind};
use portcullis_policy::{PolicyError, PolicySet, RequestContext};
use support::{agent, ctx, example, row_write, select, statement, strings};

/// Policy sources as (file name, text).
type Sources<'a> = &'a [(&'a str, &'a str)];

/// One source named `test.cedar`.
fn policies(text: &str) -> Result<PolicySet, PolicyError> {
    PolicySet::from_sources(&[("test.cedar".into(), text.into())])
}

/// The load error's text, if loading fails.
fn load_error(sources: Sources<'_>) -> Option<String> {
    let sources: Vec<(String, String)> = sources
        .iter()
        .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
        .collect();
    PolicySet::from_sources(&sources).err().map(|e| e.to_string())
}

fn decide(set: &PolicySet, groups: &[&str], facts: &StatementFacts) -> Decision {
    set.decide_statement(&agent("bot", groups), "app", facts, 1, &ctx())
}

fn outcome(decision: &Decision) -> (Outcome, Vec<&str>) {
    (
        decision.outcome,
        decision.policies.iter().map(String::as_str).collect(),
    )
}

#[test]
fn nothing_permits_means_deny_with_no_policy() {
    let set = policies(r#"permit(principal in Group::"other", action, resource);"#).unwrap();
    let decision = decide(&set, &["agents"], &select(&["public.accounts"]));
    assert_eq!(outcome(&decision), (Outcome::Deny, vec![]));
    assert_eq!(
        decision.reason,
        "no policy permits read on Connection \"app\" for Agent \"dev/bot\""
    );

    let empty = PolicySet::from_sources(&[]).unwrap();
    assert!(empty.is_empty());
    let decision = decide(&empty, &[], &select(&[]));
    assert_eq!(decision.outcome, Outcome::Deny);
}

#[test]
fn forbid_wins_over_permit() {
    let set = policies(
        r#"
        @id("all") permit(principal, action, resource);
        @id("no-writes") forbid(principal, action in Action::"write", resource);
        @id("no-deletes") forbid(principal, action, resource)
            when { context has operations && context.operations.contains("delete") };
        "#,
    )
    .unwrap();
    let cases = [
        (select(&["public.a"]), Outcome::Allow, vec!["all"]),
        (
            row_write("update", "public.a", true),
            Outcome::Deny,
            vec!["no-writes"],
        ),
        (
            row_write("delete", "public.a", true),
            Outcome::Deny,
            vec!["no-deletes", "no-writes"],
        ),
        // copy_in is in the write group
        (
            statement(StatementKind::CopyIn, "COPY"),
            Outcome::Deny,
            vec!["no-writes"],
        ),
    ];
    for (facts, expected, ids) in cases {
        assert_eq!(
            outcome(&decide(&set, &[], &facts)),
            (expected, ids.to_vec()),
            "{}",
            facts.command
        );
    }
}

#[test]
fn approval_policies_may_name_how_their_statements_wait() {
    let set = policies(
        r#"
        @id("held") @approval("required") @approval_mode("hold")
        permit(principal, action in Action::"write", resource);
        @id("ticketed") @approval("required") @approval_mode("ticket")
        permit(principal in Group::"batch", action in Action::"write", resource);
        @id("plain") @approval("required") permit(principal, action == Action::"ddl", resource);
        "#,
    )
    .unwrap();
    let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(set.approval_mode(&names(&["held"])), Some("hold"));
    assert_eq!(set.approval_mode(&names(&["held", "ticketed"])), Some("ticket"));
    assert_eq!(set.approval_mode(&names(&["plain"])), None);
    assert_eq!(set.approval_mode(&[]), None);
}

#[test]
fn approval_only_permits_require_approval() {
    let set = policies(
        r#"
        @id("read") permit(principal, action in Action::"read", resource);
        @id("writes-with-approval") @approval("required")
        permit(principal, action in Action::"write", resource);
        @id("staff-writes") permit(principal in Group::"staff", action == Action::"write", resource);
        "#,
    )
    .unwrap();
    let update = row_write("update", "public.a", true);
    // Only the approval permit applies: approval.
    let decision = decide(&set, &["agents"], &update);
    assert_eq!(
        outcome(&decision),
        (Outcome::ApprovalRequired, vec!["writes-with-approval"])
    );
    // An un-annotated permit applies too: plain allow, naming the plain permit only.
    let decision = decide(&set, &["staff"], &update);
    assert_eq!(outcome(&decision), (Outcome::Allow, vec!["staff-writes"]));
    // A read is allowed without approval.
    let decision = decide(&set, &["agents"], &select(&["public.a"]));
    assert_eq!(outcome(&decision), (Outcome::Allow, vec!["read"]));
}

#[test]
fn a_denial_on_any_request_outweighs_an_approval_on_another() {
    let set = policies(
        r#"
        @id("conn") @approval("required") permit(principal, action, resource is Connection);
        @id("tables") permit(principal, action, resource is Table)
            unless { resource.name == "secret" };
        "#,
    )
    .unwrap();
    let decision = decide(&set, &[], &select(&["public.open"]));
    assert_eq!(outcome(&decision), (Outcome::ApprovalRequired, vec!["conn"]));
    let decision = decide(&set, &[], &select(&["public.open", "public.secret"]));
    assert_eq!(outcome(&decision), (Outcome::Deny, vec![]));
    assert_eq!(
        decision.reason,
        "no policy permits read on Table \"app/public.secret\" for Agent \"dev/bot\""
    );
}

#[test]
fn per_table_forbid() {
    let set = policies(
        r#"
        @id("staff-read") permit(principal in Group::"staff", action in Action::"read", resource);
        @id("staff-write") permit(principal in Group::"staff", action in Action::"write", resource);
        @id("salaries-hr-only")
        forbid(principal, action, resource == Table::"app/public.salaries")
        unless { principal in Group::"hr" };
        "#,
    )
    .unwrap();
    let insert_from_salaries = StatementFacts {
        reads: strings(&["public.salaries"]),
        writes: strings(&["public.report"]),
        operations: strings(&["insert", "select"]),
        ..statement(StatementKind::Write, "INSERT")
    };
    let cases: [(&[&str], StatementFacts, Outcome, &[&str]); 6] = [
        (
            &["staff"],
            select(&["public.accounts"]),
            Outcome::Allow,
            &["staff-read"],
        ),
        (
            &["staff"],
            select(&["public.accounts", "public.salaries"]),
            Outcome::Deny,
            &["salaries-hr-only"],
        ),
        (
            &["staff", "hr"],
            select(&["public.salaries"]),
            Outcome::Allow,
            &["staff-read"],
        ),
        (
            &["staff"],
            row_write("update", "public.salaries", true),
            Outcome::Deny,
            &["salaries-hr-only"],
        ),
        (
            &["staff"],
            insert_from_salaries.clone(),
            Outcome::Deny,
            &["salaries-hr-only"],
        ),
        (
            &["staff", "hr"],
            insert_from_salaries,
            Outcome::Allow,
            &["staff-read", "staff-write"],
        ),
    ];
    for (groups, facts, expected, ids) in cases {
        let decision = decide(&set, groups, &facts);
        assert_eq!(
            (decision.outcome, support::ids(&decision)),
            (expected, ids.to_vec()),
            "{groups:?} {facts:?}"
        );
    }
    let refused = decide(&set, &["staff"], &select(&["public.salaries"]));
    assert_eq!(
        refused.reason,
        "read on Table \"app/public.salaries\" for Agent \"dev/bot\" is forbidden by salaries-hr-only"
    );
    // The same table name behind another connection is another entity.
    let elsewhere = set.decide_statement(
        &agent("bot", &["staff"]),
        "other",
        &select(&["public.salaries"]),
        1,
        &ctx(),
    );
    assert_eq!(elsewhere.outcome, Outcome::Allow);
}

#[test]
fn tables_are_children_of_their_connection_and_carry_their_names() {
    let set = policies(
        r#"
        @id("app-reads") permit(principal, action == Action::"read", resource in Connection::"app");
        @id("no-audit-schema") forbid(principal, action, resource is Table)
            when { resource.schema == "audit" };
        "#,
    )
    .unwrap();
    let who = agent("bot", &[]);
    let on = |conn: &str, facts: &StatementFacts| set.decide_statement(&who, conn, facts, 1, &ctx()).outcome;
    assert_eq!(on("app", &select(&["public.a"])), Outcome::Allow);
    assert_eq!(on("reporting", &select(&["public.a"])), Outcome::Deny);
    assert_eq!(on("app", &select(&["audit.log"])), Outcome::Deny);
}

#[test]
fn statement_context_reaches_policies() {
    let set = policies(
        r#"
        @id("all") permit(principal, action, resource);
        @id("one-at-a-time") forbid(principal, action in Action::"write", resource)
            when { context.statement_count > 1 };
        @id("no-prepared-writes") forbid(principal, action in Action::"write", resource)
            when { context.prepared };
        @id("internal-only") forbid(principal, action in Action::"statement", resource)
            unless { context.client_ip.isInRange(ip("10.0.0.0/8")) };
        @id("no-pg-catalog") forbid(principal, action in Action::"statement", resource)
            when { context.tables.contains("pg_catalog.pg_authid") };
        @id("explain-analyze") forbid(principal, action in Action::"statement", resource)
            when { context.explain_analyze && context.command == "EXPLAIN" && context.kind == "write" };
        "#,
    )
    .unwrap();
    let who = agent("bot", &[]);
    let update = row_write("update", "public.a", true);
    let decide = |facts: &StatementFacts, count: usize, ip: &str| {
        let ctx = RequestContext {
            client_ip: ip.parse::<IpAddr>().unwrap(),
            token_age_secs: 1,
        };
        let d = set.decide_statement(&who, "app", facts, count, &ctx);
        (d.outcome, d.policies)
    };
    let prepared = StatementFacts {
        executes: Some("p1".into()),
        ..update.clone()
    };
    let explain = StatementFacts {
        command: "EXPLAIN".into(),
        explain_analyze: true,
        ..update.clone()
    };
    let deny = |id: &str| (Outcome::Deny, vec![id.to_owned()]);
    let allow = (Outcome::Allow, vec!["all".to_owned()]);
    assert_eq!(decide(&update, 1, "10.1.2.3"), allow);
    assert_eq!(decide(&update, 1, "::ffff:10.1.2.3"), allow);
    assert_eq!(decide(&update, 2, "10.1.2.3"), deny("one-at-a-time"));
    assert_eq!(decide(&select(&["public.a"]), 2, "10.1.2.3"), allow);
    assert_eq!(decide(&prepared, 1, "10.1.2.3"), deny("no-prepared-writes"));
    assert_eq!(decide(&update, 1, "192.168.1.1"), deny("internal-only"));
    assert_eq!(decide(&update, 1, "2001:db8::1"), deny("internal-only"));
    assert_eq!(
        decide(&select(&["pg_catalog.pg_authid"]), 1, "10.1.2.3"),
        deny("no-pg-catalog")
    );
    assert_eq!(decide(&explain, 1, "10.1.2.3"), deny("explain-analyze"));
}

#[test]
fn connect_sees_principal_attributes_and_context() {
    let set = policies(
        r#"
        @id("svc") permit(principal, action == Action::"connect", resource == Connection::"app")
            when { principal.issuer == "dev" && principal.subject like "svc-*" };
        @id("fresh-tokens-only") forbid(principal, action == Action::"connect", resource)
            when { context.token_age_secs > 3600 };
        "#,
    )
    .unwrap();
    let at = |age: i64| RequestContext {
        client_ip: ctx().client_ip,
        token_age_secs: age,
    };
    let svc = agent("svc-1", &[]);
    assert_eq!(set.decide_connect(&svc, "app", &at(10)).outcome, Outcome::Allow);
    assert_eq!(set.decide_connect(&svc, "other", &at(10)).outcome, Outcome::Deny);
    assert_eq!(
        set.decide_connect(&agent("bob", &[]), "app", &at(10)).outcome,
        Outcome::Deny
    );
    let stale = set.decide_connect(&svc, "app", &at(7200));
    assert_eq!(outcome(&stale), (Outcome::Deny, vec!["fresh-tokens-only"]));
    // Only connect reads the token's age: statement decisions stay cacheable.
    assert!(!set.time_dependent());
}

#[test]
fn connect_permitted_only_with_approval_says_so() {
    let set = policies(
        r#"@id("c") @approval("required") permit(principal, action == Action::"connect", resource);"#,
    )
    .unwrap();
    let decision = set.decide_connect(&agent("bot", &[]), "app", &ctx());
    assert_eq!(outcome(&decision), (Outcome::ApprovalRequired, vec!["c"]));
}

#[test]
fn evaluation_errors_fail_closed() {
    // Cedar skips a forbid whose evaluation fails (here an overflow); the engine refuses instead.
    let set = policies(
        r#"
        @id("all") permit(principal, action, resource);
        @id("overflows") forbid(principal, action in Action::"statement", resource)
            when { context.token_age_secs * 4611686018427387904 > 0 };
        "#,
    )
    .unwrap();
    let decision = decide(&set, &[], &select(&["public.a"]));
    assert_eq!(outcome(&decision), (Outcome::Deny, vec![]));
    assert!(
        decision
            .reason
            .starts_with("policy evaluation failed for read on Connection \"app\""),
        "{}",
        decision.reason
    );
    assert!(decision.reason.contains("overflows"), "{}", decision.reason);
}

#[test]
fn policies_without_id_are_named_after_their_file_and_position() {
    let set = PolicySet::from_sources(&[
        (
            "first.cedar".into(),
            "permit(principal, action == Action::\"connect\", resource);\n\
             permit(principal, action == Action::\"read\", resource);"
                .into(),
        ),
        (
            "second.cedar".into(),
            "@id(\"named\") permit(principal, action == Action::\"read\", resource);\n\
             permit(principal, action == Action::\"transaction\", resource);"
                .into(),
        ),
    ])
    .unwrap();
    assert_eq!(
        set.names(),
        ["first.cedar#0", "first.cedar#1", "named", "second.cedar#1"]
    );
    let decision = decide(&set, &[], &select(&["public.a"]));
    assert_eq!(
        outcome(&decision),
        (Outcome::Allow, vec!["first.cedar#1", "named"])
    );
}

#[test]
fn load_errors_name_the_file_the_place_and_the_problem() {
    // (sources as (name, text), fragments the error must hold)
    let cases: [(Sources<'_>, &[&str]); 11] = [
        // an unknown context attribute
        (
            &[
                ("ok.cedar", "permit(principal, action, resource);"),
                (
                    "bad.cedar",
                    "// header\npermit(principal, action == Action::\"read\", resource)\n  when { context.row_count > 10 };",
                ),
            ],
            &["bad.cedar:3:", "row_count"],
        ),
        // an unknown action
        (
            &[(
                "bad.cedar",
                "permit(principal, action == Action::\"delete\", resource);",
            )],
            &["bad.cedar:1:", "delete"],
        ),
        // an unknown entity type
        (
            &[(
                "bad.cedar",
                "permit(principal == User::\"alice\", action, resource);",
            )],
            &["bad.cedar:1:", "User"],
        ),
        // an attribute the connect context lacks
        (
            &[(
                "bad.cedar",
                "permit(principal, action, resource) when { context.has_where };",
            )],
            &["bad.cedar:1:", "has_where"],
        ),
        // a syntax error
        (
            &[(
                "bad.cedar",
                "permit(principal, action, resource)\nwhen { context.kind == };",
            )],
            &["bad.cedar:2:"],
        ),
        // a duplicate name across files
        (
            &[
                ("a.cedar", "@id(\"p\") permit(principal, action, resource);"),
                ("b.cedar", "@id(\"p\") permit(principal, action, resource);"),
            ],
            &["b.cedar:1:1: duplicate policy name p (also used in a.cedar)"],
        ),
        // a misspelt approval must not become a plain permit
        (
            &[(
                "bad.cedar",
                "\n@approval(\"require\") permit(principal, action, resource);",
            )],
            &["bad.cedar:2:1:", "@approval(\"require\") is not understood"],
        ),
        (
            &[(
                "bad.cedar",
                "@approval(\"required\") forbid(principal, action, resource);",
            )],
            &["bad.cedar:1:1:", "applies to permit policies only"],
        ),
        // an approval mode must be known, and only goes with an approval
        (
            &[(
                "bad.cedar",
                "@approval(\"required\") @approval_mode(\"later\") permit(principal, action, resource);",
            )],
            &["bad.cedar:1:1:", "@approval_mode(\"later\") is not understood"],
        ),
        (
            &[(
                "bad.cedar",
                "@approval_mode(\"ticket\") permit(principal, action, resource);",
            )],
            &["bad.cedar:1:1:", "goes with @approval(\"required\")"],
        ),
        (
            &[("bad.cedar", "permit(principal == ?principal, action, resource);")],
            &["bad.cedar:", "templates"],
        ),
    ];
    for (sources, fragments) in cases {
        let error = load_error(sources).unwrap();
        for fragment in fragments {
            assert!(error.contains(fragment), "{fragment:?} not in {error:?}");
        }
    }
}

#[test]
fn load_reads_files_and_reports_their_paths() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portcullis-policy-load");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("typo.cedar");
    std::fs::write(&bad, "permit(principal, action == Action::\"raed\", resource);\n").unwrap();
    let error = PolicySet::load(&[example("no-ddl.cedar"), bad.clone()]).unwrap_err();
    assert!(matches!(error, PolicyError::Invalid(_)));
    let message = error.to_string();
    assert!(message.contains(&format!("{}:1:", bad.display())), "{message}");
    assert!(message.contains("raed"), "{message}");

    let missing = dir.join("missing.cedar");
    let error = PolicySet::load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(error, PolicyError::Read { .. }));
    assert!(error.to_string().contains(&missing.display().to_string()));

    // Generated names use the file's name, not its path.
    let unnamed = dir.join("unnamed.cedar");
    std::fs::write(&unnamed, "permit(principal, action, resource);\n").unwrap();
    assert_eq!(PolicySet::load(&[unnamed]).unwrap().names(), ["unnamed.cedar#0"]);
}

#[test]
fn time_dependence() {
    let cases = [
        ("permit(principal, action, resource);", false),
        (
            "permit(principal, action == Action::\"read\", resource) when { context.token_age_secs < 900 };",
            true,
        ),
        (
            "forbid(principal, action, resource) when { context has token_age_secs && context.token_age_secs > 900 };",
            true,
        ),
        (
            "forbid(principal, action in [Action::\"connect\", Action::\"write\"], resource) \
             when { context.token_age_secs > 900 };",
            true,
        ),
        (
            "forbid(principal, action == Action::\"connect\", resource) when { context.token_age_secs > 900 };",
            false,
        ),
        // Mentioned only in a string: not read.
        (
            "permit(principal, action == Action::\"session\", resource) when { context.setting != \"token_age_secs\" };",
            false,
        ),
    ];
    for (text, dependent) in cases {
        assert_eq!(policies(text).unwrap().time_dependent(), dependent, "{text}");
    }
}

#[test]
fn schema_text_is_the_model() {
    let schema = PolicySet::schema_text();
    for needle in [
        "entity Agent in [Group]",
        "entity Table in [Connection]",
        "action copy_in in [write, statement]",
    ] {
        assert!(schema.contains(needle), "{needle}");
    }
}

#[test]
fn facts_with_parse_errors_are_decided_as_unknown() {
    let set = policies(r#"@id("reads") permit(principal, action in Action::"read", resource);"#).unwrap();
    let decision = decide(
        &set,
        &[],
        &StatementFacts::unparsed("syntax error at or near \"SELEC\""),
    );
    assert_eq!(decision.outcome, Outcome::Deny);
    assert!(
        decision
            .reason
            .starts_with("no policy permits unknown on Connection")
    );
}
