//! HTTP decisions on policies written inline: actions by method, routes as children of their connection,
//! the request's context (query, headers, body, route parameters), forbid wins, approval, fail closed.

#![allow(clippy::unwrap_used)]

mod support;

use portcullis_core::{HttpAction, HttpRequestFacts, Outcome, RouteRef};
use portcullis_policy::PolicySet;
use support::{agent, ctx};

const POLICIES: &str = r#"
@id("agents-read-crm")
permit(principal in Group::"agents", action == Action::"http_read", resource in Connection::"crm")
when { context.query.contains({name: "tenant", value: "acme"}) }
unless { context.query_repeated.contains("tenant") };

@id("one-trace-header")
forbid(principal, action in Action::"http", resource in Connection::"crm")
when { context.headers_repeated.contains("x-trace") };

@id("agents-write-orders")
permit(principal in Group::"agents", action == Action::"http_write", resource == Route::"crm/orders")
when { context has body && context.body.contains({name: "currency", value: "EUR"}) };

@id("agents-delete")
permit(principal in Group::"agents", action == Action::"http_delete", resource in Connection::"crm");

@id("no-customer-deletes")
forbid(principal, action == Action::"http_delete", resource is Route)
when { resource.name == "customer" };

@id("traced-only")
forbid(principal, action in Action::"http", resource in Connection::"crm")
unless { context.headers.contains({name: "x-trace", value: "on"}) };

@id("held-posts") @approval("required")
permit(principal in Group::"agents", action == Action::"http_write", resource == Connection::"crm");
"#;

fn facts(method: &str, path: &str, route: Option<&str>) -> HttpRequestFacts {
    HttpRequestFacts {
        action: HttpAction::of_method(method).unwrap(),
        method: method.to_owned(),
        path: path.to_owned(),
        route: route.map(|name| RouteRef {
            name: name.to_owned(),
            template: format!("/{name}s/{{id}}"),
        }),
        params: vec![("id".into(), "42".into())],
        query: Vec::new(),
        headers: vec![("x-trace".into(), "on".into())],
        body: None,
    }
}

#[test]
fn decisions_follow_method_route_and_context() {
    let set = PolicySet::from_sources(&[("http.cedar".into(), POLICIES.into())]).unwrap();
    let who = agent("bot", &["agents"]);
    let decide = |f: &HttpRequestFacts| {
        let d = set.decide_http(&who, "crm", f, &ctx());
        (d.outcome, d.policies.join(","), d.reason)
    };

    let mut get = facts("GET", "/customers/42", Some("customer"));
    assert_eq!(decide(&get).0, Outcome::Deny, "no tenant parameter");
    get.query.push(("tenant".into(), "acme".into()));
    assert_eq!(decide(&get).0, Outcome::Allow);
    let mut other = get.clone();
    other.query = vec![("tenant".into(), "globex".into())];
    assert_eq!(decide(&other).0, Outcome::Deny);
    // A second tenant: servers differ on which one they read, so the permit asks for exactly one.
    let mut two_tenants = get.clone();
    two_tenants.query.push(("tenant".into(), "globex".into()));
    assert_eq!(decide(&two_tenants).0, Outcome::Deny);
    let mut other_names = get.clone();
    other_names
        .query
        .extend([("page".into(), "1".into()), ("page".into(), "2".into())]);
    assert_eq!(decide(&other_names).0, Outcome::Allow, "another name repeated");
    let mut two_traces = get.clone();
    two_traces.headers.push(("x-trace".into(), "off".into()));
    assert_eq!(
        (decide(&two_traces).0, decide(&two_traces).1),
        (Outcome::Deny, "one-trace-header".to_owned())
    );
    // A forbid wins over the permit and names itself.
    let mut untraced = get.clone();
    untraced.headers.clear();
    let (outcome, policies, reason) = decide(&untraced);
    assert_eq!((outcome, policies.as_str()), (Outcome::Deny, "traced-only"));
    assert!(reason.contains("Route \"crm/customer\""), "{reason}");

    let delete = facts("DELETE", "/customers/42", Some("customer"));
    assert_eq!(
        (decide(&delete).0, decide(&delete).1),
        (Outcome::Deny, "no-customer-deletes".to_owned())
    );
    let delete_order = facts("DELETE", "/orders/7", Some("order"));
    assert_eq!(decide(&delete_order).0, Outcome::Allow);

    let mut post = facts("POST", "/orders", Some("orders"));
    assert_eq!(decide(&post).0, Outcome::Deny, "no body to inspect");
    post.body = Some(vec![("currency".into(), "USD".into())]);
    assert_eq!(decide(&post).0, Outcome::Deny);
    post.body = Some(vec![
        ("currency".into(), "EUR".into()),
        ("lines.qty".into(), "2".into()),
    ]);
    assert_eq!(decide(&post).0, Outcome::Allow);

    // On the connection itself (no route matched) only the approval permit applies.
    let post_anywhere = facts("POST", "/elsewhere", None);
    let (outcome, policies, _) = decide(&post_anywhere);
    assert_eq!(
        (outcome, policies.as_str()),
        (Outcome::ApprovalRequired, "held-posts")
    );
}

#[test]
fn nothing_is_permitted_by_default_and_sql_actions_do_not_reach_http() {
    let set = PolicySet::from_sources(&[(
        "sql.cedar".into(),
        r#"permit(principal, action in [Action::"read", Action::"write", Action::"connect"], resource);"#
            .into(),
    )])
    .unwrap();
    let who = agent("bot", &["agents"]);
    for method in ["GET", "POST", "DELETE"] {
        let d = set.decide_http(&who, "crm", &facts(method, "/x", None), &ctx());
        assert_eq!(d.outcome, Outcome::Deny, "{method}: {}", d.reason);
        assert!(d.reason.starts_with("no policy permits"), "{}", d.reason);
    }
    let all = PolicySet::from_sources(&[("all.cedar".into(), "permit(principal, action, resource);".into())])
        .unwrap();
    let d = all.decide_http(&who, "crm", &facts("PATCH", "/x", Some("x")), &ctx());
    assert_eq!(d.outcome, Outcome::Allow);
}

#[test]
fn policies_that_misuse_the_http_context_are_rejected_at_load() {
    // `body` may be absent: reading it without `has` does not validate.
    let err = PolicySet::from_sources(&[(
        "bad.cedar".into(),
        r#"permit(principal, action == Action::"http_write", resource) when { context.body.contains({name: "a", value: "b"}) };"#.into(),
    )])
    .unwrap_err()
    .to_string();
    assert!(err.contains("bad.cedar"), "{err}");
    // SQL context attributes are not HTTP's.
    assert!(
        PolicySet::from_sources(&[(
            "bad.cedar".into(),
            r#"permit(principal, action == Action::"http_read", resource) when { context.has_where };"#
                .into(),
        )])
        .is_err()
    );
}
