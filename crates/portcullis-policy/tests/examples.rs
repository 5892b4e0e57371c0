//! The shipped example policies (examples/policies/), loaded from disk and exercised case by case.

mod support;

use portcullis_core::{Outcome, StatementFacts, StatementKind};
use portcullis_policy::{PolicyError, PolicySet};
use support::{EXAMPLES, agent, ctx, example, row_write, select, set, statement, strings};

/// One statement case: who (subject, groups), the statement, the outcome and the deciding policies.
type Case<'a> = (&'a str, &'a [&'a str], StatementFacts, Outcome, &'a [&'a str]);

/// What an unmask request is about: `Some((schema, table))`, or `None` for the whole connection.
type Unmasked<'a> = Option<(&'a str, &'a str)>;

fn all_examples() -> Result<PolicySet, PolicyError> {
    let files: Vec<_> = EXAMPLES.iter().map(|f| example(f)).collect();
    PolicySet::load(&files)
}

#[test]
fn each_example_validates_on_its_own() {
    for (file, policies) in EXAMPLES.iter().zip([4, 6, 1, 1, 3, 3, 1]) {
        let set = PolicySet::load(&[example(file)]).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(set.len(), policies, "{file}");
        assert!(set.warnings().is_empty(), "{file}: {:?}", set.warnings());
    }
}

#[test]
fn examples_together_are_not_time_dependent() {
    let set = all_examples().unwrap();
    assert_eq!(set.len(), 19);
    assert!(!set.time_dependent());
}

#[test]
fn statements() {
    use Outcome::{Allow, ApprovalRequired, Deny};
    use StatementKind as K;
    let copy_in = StatementFacts {
        writes: strings(&["public.events"]),
        ..statement(K::CopyIn, "COPY")
    };
    let copy_out = StatementFacts {
        reads: strings(&["public.accounts"]),
        ..statement(K::CopyOut, "COPY")
    };
    let insert_select = StatementFacts {
        reads: strings(&["public.carts"]),
        writes: strings(&["public.orders"]),
        operations: strings(&["insert", "select"]),
        ..statement(K::Write, "INSERT")
    };
    let truncate = StatementFacts {
        writes: strings(&["public.events"]),
        operations: strings(&["truncate"]),
        unbounded_write: true,
        ..statement(K::Write, "TRUNCATE")
    };
    let create_table = StatementFacts {
        writes: strings(&["public.scratch"]),
        ..statement(K::Ddl, "CREATE TABLE")
    };
    let read_file = StatementFacts {
        functions: strings(&["pg_read_file"]),
        ..statement(K::FileAccess, "SELECT")
    };
    let dblink = StatementFacts {
        functions: strings(&["dblink"]),
        ..select(&["public.accounts"])
    };
    let qualified_terminate = StatementFacts {
        functions: strings(&["pg_catalog.pg_terminate_backend"]),
        ..select(&["pg_catalog.pg_stat_activity"])
    };
    let copy_to_file = StatementFacts {
        reads: strings(&["public.accounts"]),
        ..statement(K::FileAccess, "COPY")
    };

    // (who, groups, statement, outcome, deciding policies)
    let cases: Vec<Case<'_>> = vec![
        // analysts: read, transactions, settings; nothing else
        (
            "analyst",
            &["analysts"],
            select(&["public.accounts"]),
            Allow,
            &["analysts-read"],
        ),
        (
            "analyst",
            &["analysts"],
            copy_out.clone(),
            Allow,
            &["analysts-read"],
        ),
        (
            "analyst",
            &["analysts"],
            statement(K::Transaction, "BEGIN"),
            Allow,
            &["analysts-transactions"],
        ),
        (
            "analyst",
            &["analysts"],
            set("search_path"),
            Allow,
            &["analysts-session"],
        ),
        ("analyst", &["analysts"], set("role"), Deny, &[]),
        ("analyst", &["analysts"], set("session_authorization"), Deny, &[]),
        (
            "analyst",
            &["analysts"],
            row_write("update", "public.accounts", true),
            Deny,
            &[],
        ),
        ("analyst", &["analysts"], copy_in.clone(), Deny, &[]),
        (
            "analyst",
            &["analysts"],
            statement(K::Maintenance, "VACUUM"),
            Deny,
            &[],
        ),
        ("analyst", &["analysts"], create_table.clone(), Deny, &["no-ddl"]),
        (
            "analyst",
            &["analysts"],
            dblink.clone(),
            Deny,
            &["no-dangerous-functions"],
        ),
        (
            "analyst",
            &["analysts"],
            read_file.clone(),
            Deny,
            &["no-dangerous-functions", "no-file-access"],
        ),
        (
            "analyst",
            &["analysts"],
            qualified_terminate,
            Deny,
            &["no-dangerous-functions"],
        ),
        // agents: bounded writes; deletes need approval
        (
            "bot",
            &["agents"],
            row_write("update", "public.accounts", true),
            Allow,
            &["agents-bounded-writes"],
        ),
        (
            "bot",
            &["agents"],
            insert_select,
            Allow,
            &["agents-bounded-writes", "agents-read"],
        ),
        ("bot", &["agents"], copy_in, Allow, &["agents-bounded-writes"]),
        ("bot", &["agents"], copy_out, Allow, &["agents-read"]),
        (
            "bot",
            &["agents"],
            row_write("update", "public.accounts", false),
            Deny,
            &[],
        ),
        ("bot", &["agents"], truncate, Deny, &[]),
        (
            "bot",
            &["agents"],
            row_write("delete", "public.accounts", true),
            ApprovalRequired,
            &["agents-delete-needs-approval"],
        ),
        (
            "bot",
            &["agents"],
            row_write("delete", "public.accounts", false),
            Deny,
            &[],
        ),
        ("bot", &["agents"], set("role"), Deny, &[]),
        ("bot", &["agents"], statement(K::Maintenance, "VACUUM"), Deny, &[]),
        ("bot", &["agents"], create_table.clone(), Deny, &["no-ddl"]),
        (
            "bot",
            &["agents"],
            statement(K::Procedural, "DO"),
            Deny,
            &["no-procedural"],
        ),
        (
            "bot",
            &["agents"],
            StatementFacts::unparsed("syntax error"),
            Deny,
            &["no-unknown-statements", "no-unreadable-statements"],
        ),
        // dba: everything the forbids leave (forbid wins over the dba's permit)
        ("admin", &["dba"], create_table, Allow, &["dba-all"]),
        (
            "admin",
            &["dba"],
            statement(K::Maintenance, "VACUUM"),
            Allow,
            &["dba-all"],
        ),
        ("admin", &["dba"], set("role"), Allow, &["dba-all"]),
        (
            "admin",
            &["dba"],
            statement(K::Privileges, "GRANT"),
            Deny,
            &["no-privileges"],
        ),
        ("admin", &["dba"], copy_to_file, Deny, &["no-file-access"]),
        (
            "admin",
            &["dba"],
            statement(K::Procedural, "CREATE FUNCTION"),
            Deny,
            &["no-procedural"],
        ),
        ("admin", &["dba"], dblink, Deny, &["no-dangerous-functions"]),
        (
            "admin",
            &["dba"],
            read_file,
            Deny,
            &["no-dangerous-functions", "no-file-access"],
        ),
        // in no group: nothing
        ("stranger", &[], select(&["public.accounts"]), Deny, &[]),
        ("stranger", &[], statement(K::Transaction, "BEGIN"), Deny, &[]),
    ];

    let set = all_examples().unwrap();
    for (who, groups, facts, outcome, policies) in cases {
        let decision = set.decide_statement(&agent(who, groups), "app", &facts, 1, &ctx());
        assert_eq!(
            (decision.outcome, support::ids(&decision)),
            (outcome, policies.to_vec()),
            "{who} in {groups:?}: {} {:?} -> {}",
            facts.command,
            facts.kind,
            decision.reason
        );
    }
}

#[test]
fn refusals_say_which_request_and_why() {
    let set = all_examples().unwrap();
    let bot = agent("bot", &["agents"]);
    let cases = [
        (
            row_write("update", "public.accounts", false),
            "no policy permits write on Connection \"app\" for Agent \"dev/bot\"",
        ),
        (
            StatementFacts {
                writes: strings(&["public.scratch"]),
                ..statement(StatementKind::Ddl, "DROP TABLE")
            },
            "ddl on Connection \"app\" for Agent \"dev/bot\" is forbidden by no-ddl",
        ),
        (
            row_write("delete", "public.accounts", true),
            "write on Connection \"app\" for Agent \"dev/bot\" requires approval \
             (agents-delete-needs-approval)",
        ),
        (select(&["public.accounts"]), "permitted by agents-read"),
    ];
    for (facts, reason) in cases {
        let decision = set.decide_statement(&bot, "app", &facts, 1, &ctx());
        assert_eq!(decision.reason, reason);
    }
}

#[test]
fn unmask() {
    let set = all_examples().unwrap();
    assert!(set.unmask_possible());
    // No example policy that applies to unmask looks at the resource: one answer per principal.
    assert!(!set.unmask_per_table());
    let cases: [(&str, &[&str], Outcome, &[&str]); 4] = [
        // dba-all leaves its action open: that does not grant cleartext; dba-unmask names unmask.
        ("admin", &["dba"], Outcome::Allow, &["dba-unmask"]),
        ("analyst", &["analysts"], Outcome::Deny, &[]),
        ("bot", &["agents"], Outcome::Deny, &[]),
        ("stranger", &[], Outcome::Deny, &[]),
    ];
    for (who, groups, outcome, policies) in cases {
        for table in [None, Some(("public", "customers"))] {
            let decision = set.decide_unmask(&agent(who, groups), "prod", table, &ctx());
            assert_eq!(
                (decision.outcome, support::ids(&decision)),
                (outcome, policies.to_vec()),
                "{who} {table:?}: {}",
                decision.reason
            );
        }
    }
}

/// The policies unmask-for-dba.cedar shows in comments validate and do what the comments say.
#[test]
fn unmask_example_commented_policies() {
    let text = std::fs::read_to_string(example("unmask-for-dba.cedar")).unwrap();
    let policy_starts = ["@id", "permit", "forbid", "when", "unless"];
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("// ") {
            Some(code) if policy_starts.iter().any(|start| code.starts_with(start)) => code,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let set = PolicySet::from_sources(&[("unmask-for-dba.cedar".into(), uncommented)]).unwrap();
    assert_eq!(set.len(), 3);
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    let customers = Some(("public", "customers"));
    let salaries = Some(("public", "salaries"));
    let cases: [(&[&str], Unmasked<'_>, Outcome); 7] = [
        (&["support"], customers, Outcome::Allow),
        (&["support"], None, Outcome::Deny),
        (&["support"], Some(("public", "orders")), Outcome::Deny),
        (&["dba"], customers, Outcome::Allow),
        (&["dba"], salaries, Outcome::Deny),
        (&["dba", "hr"], salaries, Outcome::Allow),
        (&["hr"], salaries, Outcome::Deny),
    ];
    for (groups, table, outcome) in cases {
        let decision = set.decide_unmask(&agent("someone", groups), "prod", table, &ctx());
        assert_eq!(
            decision.outcome, outcome,
            "{groups:?} {table:?}: {}",
            decision.reason
        );
    }
}

#[test]
fn connect() {
    let set = all_examples().unwrap();
    let cases: [(&str, &[&str], Outcome, &[&str]); 5] = [
        ("analyst", &["analysts"], Outcome::Allow, &["analysts-connect"]),
        ("bot", &["agents"], Outcome::Allow, &["agents-connect"]),
        ("admin", &["dba"], Outcome::Allow, &["dba-all"]),
        (
            "both",
            &["agents", "analysts"],
            Outcome::Allow,
            &["agents-connect", "analysts-connect"],
        ),
        ("stranger", &["guests"], Outcome::Deny, &[]),
    ];
    for (who, groups, outcome, policies) in cases {
        let decision = set.decide_connect(&agent(who, groups), "app", &ctx());
        assert_eq!(
            (decision.outcome, support::ids(&decision)),
            (outcome, policies.to_vec()),
            "{who}: {}",
            decision.reason
        );
    }
    let refused = set.decide_connect(&agent("stranger", &[]), "app", &ctx());
    assert_eq!(
        refused.reason,
        "no policy permits connect on Connection \"app\" for Agent \"dev/stranger\""
    );
}
