//! `unmask` on policies written inline: masked by default, per connection and per table, forbids, the
//! action hierarchy, the client context, approval and fail-closed evaluation.

mod support;

use std::net::IpAddr;

use portcullis_core::{Decision, Outcome};
use portcullis_policy::{PolicyError, PolicySet, RequestContext};
use support::{agent, ctx};

/// One source named `test.cedar`.
fn policies(text: &str) -> Result<PolicySet, PolicyError> {
    PolicySet::from_sources(&[("test.cedar".into(), text.into())])
}

/// The unmask decision for `Agent::"dev/bot"` in `groups` on `connection`, or one of its tables.
fn unmask(set: &PolicySet, groups: &[&str], connection: &str, table: Option<(&str, &str)>) -> Decision {
    set.decide_unmask(&agent("bot", groups), connection, table, &ctx())
}

fn outcome(decision: &Decision) -> (Outcome, Vec<&str>) {
    (decision.outcome, support::ids(decision))
}

const CUSTOMERS: Option<(&str, &str)> = Some(("public", "customers"));
const SALARIES: Option<(&str, &str)> = Some(("public", "salaries"));

/// (groups, connection, table, outcome, deciding policies)
type Case<'a> = (
    &'a [&'a str],
    &'a str,
    Option<(&'a str, &'a str)>,
    Outcome,
    &'a [&'a str],
);

fn check(set: &PolicySet, cases: &[Case<'_>]) {
    for (groups, connection, table, expected, ids) in cases {
        let decision = unmask(set, groups, connection, *table);
        assert_eq!(
            outcome(&decision),
            (*expected, ids.to_vec()),
            "{groups:?} {connection} {table:?}: {}",
            decision.reason
        );
    }
}

#[test]
fn without_a_permit_values_stay_masked() {
    let empty = PolicySet::from_sources(&[]).unwrap();
    let connect_only =
        policies(r#"permit(principal in Group::"dba", action == Action::"connect", resource);"#).unwrap();
    for set in [&empty, &connect_only] {
        assert!(!set.unmask_possible());
        for table in [None, CUSTOMERS] {
            assert_eq!(
                outcome(&unmask(set, &["dba"], "prod", table)),
                (Outcome::Deny, vec![])
            );
        }
    }
    assert_eq!(
        unmask(&empty, &[], "prod", None).reason,
        "no policy permits unmask on Connection \"prod\" for Agent \"dev/bot\""
    );
    assert_eq!(
        unmask(&empty, &[], "prod", CUSTOMERS).reason,
        "no policy permits unmask on Table \"prod/public.customers\" for Agent \"dev/bot\""
    );
}

#[test]
fn a_connection_permit_unmasks_the_connection_and_its_tables() {
    let set = policies(
        r#"@id("dba-unmask-prod")
        permit(principal in Group::"dba", action == Action::"unmask", resource in Connection::"prod");"#,
    )
    .unwrap();
    assert!(set.unmask_possible());
    let permitted: &[&str] = &["dba-unmask-prod"];
    check(
        &set,
        &[
            (&["dba"], "prod", None, Outcome::Allow, permitted),
            (&["dba"], "prod", CUSTOMERS, Outcome::Allow, permitted),
            (
                &["dba"],
                "prod",
                Some(("audit", "log")),
                Outcome::Allow,
                permitted,
            ),
            (&["dba"], "staging", None, Outcome::Deny, &[]),
            (&["dba"], "staging", CUSTOMERS, Outcome::Deny, &[]),
            (&["analysts"], "prod", None, Outcome::Deny, &[]),
            (&["analysts"], "prod", CUSTOMERS, Outcome::Deny, &[]),
        ],
    );
}

#[test]
fn a_table_permit_unmasks_that_table_only() {
    let set = policies(
        r#"@id("support-customers")
        permit(principal in Group::"support", action == Action::"unmask", resource == Table::"prod/public.customers");"#,
    )
    .unwrap();
    assert!(set.unmask_possible());
    assert!(set.unmask_per_table());
    check(
        &set,
        &[
            (
                &["support"],
                "prod",
                CUSTOMERS,
                Outcome::Allow,
                &["support-customers"],
            ),
            (&["support"], "prod", None, Outcome::Deny, &[]),
            (&["support"], "prod", SALARIES, Outcome::Deny, &[]),
            (
                &["support"],
                "prod",
                Some(("sales", "customers")),
                Outcome::Deny,
                &[],
            ),
            // The same table name behind another connection is another entity.
            (&["support"], "staging", CUSTOMERS, Outcome::Deny, &[]),
            (&[], "prod", CUSTOMERS, Outcome::Deny, &[]),
        ],
    );
}

#[test]
fn a_table_forbid_overrides_a_connection_permit() {
    let set = policies(
        r#"
        @id("dba-unmask") permit(principal in Group::"dba", action == Action::"unmask", resource in Connection::"prod");
        @id("salaries-masked") forbid(principal, action == Action::"unmask", resource == Table::"prod/public.salaries")
            unless { principal in Group::"hr" };
        "#,
    )
    .unwrap();
    check(
        &set,
        &[
            (&["dba"], "prod", SALARIES, Outcome::Deny, &["salaries-masked"]),
            (&["dba", "hr"], "prod", SALARIES, Outcome::Allow, &["dba-unmask"]),
            (&["dba"], "prod", CUSTOMERS, Outcome::Allow, &["dba-unmask"]),
            // The connection's own answer does not speak for a table a forbid singles out.
            (&["dba"], "prod", None, Outcome::Allow, &["dba-unmask"]),
        ],
    );
    assert!(set.unmask_per_table());
    assert_eq!(
        unmask(&set, &["dba"], "prod", SALARIES).reason,
        "unmask on Table \"prod/public.salaries\" for Agent \"dev/bot\" is forbidden by salaries-masked"
    );
}

#[test]
fn statement_permits_do_not_unmask() {
    for text in [
        r#"permit(principal, action in Action::"statement", resource);"#,
        r#"permit(principal, action in [Action::"read", Action::"copy_out", Action::"connect"], resource);"#,
    ] {
        let set = policies(text).unwrap();
        assert!(!set.unmask_possible(), "{text}");
        for table in [None, CUSTOMERS] {
            assert_eq!(unmask(&set, &[], "prod", table).outcome, Outcome::Deny, "{text}");
        }
    }
}

#[test]
fn only_a_permit_naming_unmask_grants_it() {
    // A permit with an open action scope ("may do anything") does not switch masking off: cleartext is
    // granted only by a permit that names `unmask`. A forbid of any scope still applies to it.
    let set = policies(r#"@id("dba-all") permit(principal in Group::"dba", action, resource);"#).unwrap();
    assert!(!set.unmask_possible());
    check(
        &set,
        &[
            (&["dba"], "prod", None, Outcome::Deny, &[]),
            (&["dba"], "prod", CUSTOMERS, Outcome::Deny, &[]),
        ],
    );
    let set = policies(
        r#"@id("dba-unmask") permit(principal in Group::"dba", action in [Action::"unmask", Action::"read"], resource);
           @id("no-interns") forbid(principal in Group::"interns", action, resource);"#,
    )
    .unwrap();
    assert!(set.unmask_possible());
    check(
        &set,
        &[
            (&["dba"], "prod", None, Outcome::Allow, &["dba-unmask"]),
            (&["dba", "interns"], "prod", None, Outcome::Deny, &["no-interns"]),
        ],
    );
}

#[test]
fn policies_blind_to_the_resource_answer_alike_for_every_table() {
    let cases = [
        (
            r#"permit(principal in Group::"dba", action == Action::"unmask", resource);"#,
            false,
        ),
        (
            r#"permit(principal, action == Action::"unmask", resource)
               when { context.client_ip.isInRange(ip("10.0.0.0/8")) };"#,
            false,
        ),
        // A policy that names a resource only for other actions does not count.
        (
            r#"permit(principal, action == Action::"unmask", resource);
               forbid(principal, action == Action::"read", resource == Table::"prod/public.salaries");"#,
            false,
        ),
        (
            r#"permit(principal, action == Action::"unmask", resource in Connection::"prod");"#,
            true,
        ),
        (
            r#"permit(principal, action == Action::"unmask", resource is Connection);"#,
            true,
        ),
        (
            r#"permit(principal, action == Action::"unmask", resource);
               forbid(principal, action, resource) when { resource is Table && resource.schema == "pii" };"#,
            true,
        ),
    ];
    for (text, per_table) in cases {
        let set = policies(text).unwrap();
        assert_eq!(set.unmask_per_table(), per_table, "{text}");
        if !per_table {
            let on_connection = unmask(&set, &["dba"], "prod", None);
            for table in [CUSTOMERS, SALARIES, Some(("pii", "cards"))] {
                assert_eq!(
                    unmask(&set, &["dba"], "prod", table).outcome,
                    on_connection.outcome,
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn unmask_sees_table_attributes_and_the_client_context() {
    let set = policies(
        r#"
        @id("all") permit(principal, action == Action::"unmask", resource);
        @id("pii") forbid(principal, action == Action::"unmask", resource is Table)
            when { resource.schema == "pii" || resource.name == "tokens" };
        @id("internal-only") forbid(principal, action == Action::"unmask", resource)
            unless { context.client_ip.isInRange(ip("10.0.0.0/8")) };
        @id("fresh-tokens-only") forbid(principal, action == Action::"unmask", resource)
            when { context.token_age_secs > 3600 };
        "#,
    )
    .unwrap();
    let who = agent("bot", &[]);
    let decide = |table: Option<(&str, &str)>, ip: &str, age: i64| {
        let ctx = RequestContext {
            client_ip: ip.parse::<IpAddr>().unwrap(),
            token_age_secs: age,
        };
        let decision = set.decide_unmask(&who, "prod", table, &ctx);
        (decision.outcome, decision.policies)
    };
    let allow = (Outcome::Allow, vec!["all".to_owned()]);
    let deny = |id: &str| (Outcome::Deny, vec![id.to_owned()]);
    assert_eq!(decide(CUSTOMERS, "10.1.2.3", 60), allow);
    assert_eq!(decide(None, "::ffff:10.1.2.3", 60), allow);
    assert_eq!(decide(Some(("pii", "cards")), "10.1.2.3", 60), deny("pii"));
    assert_eq!(decide(Some(("public", "tokens")), "10.1.2.3", 60), deny("pii"));
    // A schema name holding a dot is the schema attribute whole.
    assert_eq!(decide(Some(("pii.v2", "cards")), "10.1.2.3", 60), allow);
    assert_eq!(decide(CUSTOMERS, "192.168.1.1", 60), deny("internal-only"));
    assert_eq!(decide(None, "10.1.2.3", 7200), deny("fresh-tokens-only"));
}

#[test]
fn unmask_requests_carry_the_client_context_only() {
    let error = policies(
        r#"permit(principal, action == Action::"unmask", resource) when { context.kind == "read" };"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("test.cedar:1:") && error.contains("kind"),
        "{error}"
    );
    // A policy open to every action on tables reaches unmask too, so statement attributes need `has`.
    let open = r#"forbid(principal, action, resource is Table) when { context.kind == "write" };"#;
    let error = policies(open).unwrap_err().to_string();
    assert!(error.contains("unmask") && error.contains("kind"), "{error}");
    let guarded = r#"forbid(principal, action, resource is Table) when { context has kind && context.kind == "write" };"#;
    assert!(policies(guarded).is_ok());
}

#[test]
fn unmask_never_waits_for_approval() {
    let set = policies(
        r#"@id("maybe") @approval("required") permit(principal, action == Action::"unmask", resource);"#,
    )
    .unwrap();
    assert!(!set.unmask_possible());
    let decision = unmask(&set, &[], "prod", CUSTOMERS);
    assert_eq!(outcome(&decision), (Outcome::Deny, vec![]));
    assert_eq!(
        decision.reason,
        "unmask on Table \"prod/public.customers\" for Agent \"dev/bot\" requires approval (maybe), which \
         masking cannot wait for: the values stay masked"
    );
    // A plain permit alongside it unmasks as usual.
    let set = policies(
        r#"
        @id("maybe") @approval("required") permit(principal, action == Action::"unmask", resource);
        @id("dba") permit(principal in Group::"dba", action == Action::"unmask", resource);
        "#,
    )
    .unwrap();
    assert!(set.unmask_possible());
    assert_eq!(
        outcome(&unmask(&set, &["dba"], "prod", None)),
        (Outcome::Allow, vec!["dba"])
    );
}

#[test]
fn unmask_evaluation_errors_stay_masked() {
    // Cedar skips a forbid whose evaluation fails (here an overflow); the engine masks instead.
    let set = policies(
        r#"
        @id("all") permit(principal, action == Action::"unmask", resource);
        @id("overflows") forbid(principal, action == Action::"unmask", resource)
            when { context.token_age_secs * 4611686018427387904 > 0 };
        "#,
    )
    .unwrap();
    let decision = unmask(&set, &[], "prod", CUSTOMERS);
    assert_eq!(outcome(&decision), (Outcome::Deny, vec![]));
    assert!(
        decision
            .reason
            .starts_with("policy evaluation failed for unmask on Table \"prod/public.customers\""),
        "{}",
        decision.reason
    );
    assert!(decision.reason.contains("overflows"), "{}", decision.reason);
}
