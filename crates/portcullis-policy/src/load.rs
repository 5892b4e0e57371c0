//! Loading: parse each source, name its policies, check Portcullis's annotations, validate against the schema.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Effect, Policy, PolicyId, PolicySet as CedarPolicySet, ResourceConstraint, Schema,
    ValidationMode, Validator,
};
use miette::Diagnostic;

use crate::error::{PolicyError, Problem};

/// The annotation that names a policy in decisions, logs and audit.
const ID_ANNOTATION: &str = "id";
/// The annotation that makes a permit require a human's approval; its only accepted value.
const APPROVAL_ANNOTATION: &str = "approval";
const APPROVAL_REQUIRED: &str = "required";
/// How an approval permit's statements wait: `hold` or `ticket` (default: the gateway's settings).
const APPROVAL_MODE_ANNOTATION: &str = "approval_mode";
const APPROVAL_MODES: [&str; 2] = ["hold", "ticket"];
/// The context attribute whose reading makes decisions vary during a session.
const TOKEN_AGE: &str = "token_age_secs";

/// One policy source: `name` prefixes generated policy names, `label` locates problems (a path, for files).
#[derive(Debug)]
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub text: &'a str,
}

/// A validated policy set and what the engine needs to know about it.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub policies: CedarPolicySet,
    /// The permits annotated `@approval("required")`.
    pub approvals: HashSet<PolicyId>,
    /// Their `@approval_mode`, where given, by policy name.
    pub approval_modes: HashMap<String, String>,
    /// Policy names in load order (file order, then order within the file).
    pub names: Vec<String>,
    pub time_dependent: bool,
    /// Validator warnings (for example a policy that can never apply): reported, not fatal.
    pub warnings: Vec<Problem>,
}

/// Parses, names, checks and validates `sources` against `schema`. Collects every problem before failing,
/// so an operator fixes a file in one pass.
pub(crate) fn compile(schema: &Schema, sources: &[Source<'_>]) -> Result<Compiled, PolicyError> {
    let mut problems = Vec::new();
    let mut policies = CedarPolicySet::new();
    let mut approvals = HashSet::new();
    let mut approval_modes = HashMap::new();
    let mut names = Vec::new();
    // Where each named policy came from, to locate validation errors.
    let mut origins: HashMap<String, &Source<'_>> = HashMap::new();

    for source in sources {
        let parsed = match CedarPolicySet::from_str(source.text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                problems.extend(errors.iter().map(|e| problem_from(source, e)));
                continue;
            }
        };
        if parsed.templates().next().is_some() {
            problems.push(Problem {
                file: source.label.to_owned(),
                line: 0,
                column: 0,
                message: "templates (?principal, ?resource) are not supported: name the principal or \
                          resource in the policy"
                    .to_owned(),
            });
        }
        for (index, policy) in in_file_order(&parsed) {
            let at = locate_policy(source, policy);
            let name = match policy.annotation(ID_ANNOTATION) {
                Some("") => {
                    problems.push(at(format!("empty @{ID_ANNOTATION} annotation")));
                    continue;
                }
                Some(id) => id.to_owned(),
                None => format!("{}#{index}", source.name),
            };
            match policy.annotation(APPROVAL_ANNOTATION) {
                None => {}
                Some(APPROVAL_REQUIRED) if policy.effect() == Effect::Permit => {
                    approvals.insert(PolicyId::new(&name));
                }
                Some(APPROVAL_REQUIRED) => {
                    problems.push(at(format!(
                        "policy {name}: @{APPROVAL_ANNOTATION} applies to permit policies only"
                    )));
                }
                // A typo here must not quietly turn an approval-gated permit into a plain one.
                Some(other) => problems.push(at(format!(
                    "policy {name}: @{APPROVAL_ANNOTATION}(\"{other}\") is not understood; the only value \
                     is \"{APPROVAL_REQUIRED}\""
                ))),
            }
            match policy.annotation(APPROVAL_MODE_ANNOTATION) {
                None => {}
                Some(mode)
                    if APPROVAL_MODES.contains(&mode)
                        && policy.annotation(APPROVAL_ANNOTATION) == Some(APPROVAL_REQUIRED) =>
                {
                    approval_modes.insert(name.clone(), mode.to_owned());
                }
                Some(mode) if APPROVAL_MODES.contains(&mode) => problems.push(at(format!(
                    "policy {name}: @{APPROVAL_MODE_ANNOTATION} goes with @{APPROVAL_ANNOTATION}(\"{APPROVAL_REQUIRED}\")"
                ))),
                Some(other) => problems.push(at(format!(
                    "policy {name}: @{APPROVAL_MODE_ANNOTATION}(\"{other}\") is not understood; use \"hold\" or \"ticket\""
                ))),
            }
            if let Some(first) = origins.get(&name) {
                problems.push(at(format!(
                    "duplicate policy name {name} (also used in {})",
                    first.label
                )));
                continue;
            }
            if let Err(e) = policies.add(policy.new_id(PolicyId::new(&name))) {
                problems.push(at(format!("policy {name}: {e}")));
                continue;
            }
            origins.insert(name.clone(), source);
            names.push(name);
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }

    let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    let locate = |id: &PolicyId, diagnostic: &dyn Diagnostic| match origins.get(id_str(id)) {
        Some(source) => problem_from(source, diagnostic),
        None => Problem {
            file: String::from("<unknown>"),
            line: 0,
            column: 0,
            message: with_help(diagnostic),
        },
    };
    let errors: Vec<Problem> = result
        .validation_errors()
        .map(|e| locate(e.policy_id(), e))
        .collect();
    if !errors.is_empty() {
        return Err(PolicyError::Invalid(errors));
    }
    let warnings = result
        .validation_warnings()
        .map(|w| locate(w.policy_id(), w))
        .collect();

    let time_dependent = policies.policies().any(reads_token_age);
    Ok(Compiled {
        policies,
        approvals,
        approval_modes,
        names,
        time_dependent,
        warnings,
    })
}

/// The policies of one parsed file with their index in it. Cedar names them `policy0`, `policy1`, ... in
/// file order and iterates them in no particular order.
fn in_file_order(parsed: &CedarPolicySet) -> Vec<(usize, &Policy)> {
    let mut indexed: Vec<(usize, &Policy)> = parsed
        .policies()
        .map(|p| {
            let index = id_str(p.id())
                .strip_prefix("policy")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            (index, p)
        })
        .collect();
    indexed.sort_by_key(|(index, _)| *index);
    indexed
}

/// A function making a problem located at the start of `policy`'s text in `source`.
fn locate_policy<'a>(source: &'a Source<'a>, policy: &Policy) -> impl Fn(String) -> Problem + 'a {
    // Policy text is kept verbatim by the parser, so it can be found again in its file.
    let offset = source.text.find(policy.to_string().as_str());
    move |message| {
        let (line, column) = offset.map_or((0, 0), |o| line_column(source.text, o));
        Problem {
            file: source.label.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// A problem from a Cedar diagnostic whose spans are offsets into `source`'s text.
fn problem_from(source: &Source<'_>, diagnostic: &dyn Diagnostic) -> Problem {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let (line, column) = offset.map_or((0, 0), |o| line_column(source.text, o));
    Problem {
        file: source.label.to_owned(),
        line,
        column,
        message: with_help(diagnostic),
    }
}

/// Cedar's message, with what its first label and its help add (for a syntax error, the label lists the
/// tokens expected).
fn with_help(diagnostic: &dyn Diagnostic) -> String {
    let mut message = diagnostic.to_string();
    let label = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .and_then(|label| label.label().map(str::to_owned));
    if let Some(label) = label {
        message = format!("{message}: {label}");
    }
    if let Some(help) = diagnostic.help() {
        message = format!("{message} ({help})");
    }
    message
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

/// Whether `policy` can apply to a statement and reads `context.token_age_secs`. A policy scoped to
/// `connect` alone is decided once per session, so its use of the token's age does not count. Errs towards
/// `true`: a wrong `true` only costs caching.
fn reads_token_age(policy: &Policy) -> bool {
    let connect_only = match policy.action_constraint() {
        ActionConstraint::Eq(action) => is_connect(&action),
        ActionConstraint::In(actions) => actions.iter().all(is_connect),
        ActionConstraint::Any => false,
    };
    if connect_only {
        return false;
    }
    match policy.to_json() {
        Ok(json) => mentions_attribute(&json, TOKEN_AGE),
        Err(_) => true,
    }
}

/// Whether `policy`'s outcome can depend on the request's resource: its scope constrains the resource, or
/// its conditions name `resource`. Errs towards `true`.
pub(crate) fn reads_resource(policy: &Policy) -> bool {
    if !matches!(policy.resource_constraint(), ResourceConstraint::Any) {
        return true;
    }
    match policy.to_json() {
        Ok(json) => mentions_variable(&json, "resource"),
        Err(_) => true,
    }
}

/// The context attributes `policy` reads: `Some(names)` when it uses the context only as
/// `context.<name>` or `context has <name>`, `None` when it uses the context record any other way (or its
/// JSON form is unavailable), so that every attribute must count as read. A decision whose policies read
/// none of a request's attributes is the same for every value of it (see `memo.rs`).
pub(crate) fn context_reads(policy: &Policy) -> Option<BTreeSet<String>> {
    let json = policy.to_json().ok()?;
    let mut reads = BTreeSet::new();
    context_attributes(&json, &mut reads).then_some(reads)
}

/// Collects the attributes read from `context` into `reads`; false when `context` appears other than as
/// the left side of `.` or `has` (`{".": {"left": {"Var": "context"}, "attr": "method"}}`).
fn context_attributes(json: &serde_json::Value, reads: &mut BTreeSet<String>) -> bool {
    match json {
        serde_json::Value::Object(map) => map.iter().all(|(key, value)| {
            if key == "Var" && value.as_str() == Some("context") {
                return false;
            }
            if key == "." || key == "has" {
                let left = value
                    .get("left")
                    .and_then(|l| l.get("Var"))
                    .and_then(serde_json::Value::as_str);
                let attr = value.get("attr").and_then(serde_json::Value::as_str);
                if let (Some("context"), Some(attr)) = (left, attr) {
                    reads.insert(attr.to_owned());
                    return true;
                }
            }
            context_attributes(value, reads)
        }),
        serde_json::Value::Array(items) => items.iter().all(|v| context_attributes(v, reads)),
        _ => true,
    }
}

fn is_connect(action: &cedar_policy::EntityUid) -> bool {
    action.type_name().basename() == "Action" && action.id().unescaped() == "connect"
}

/// Whether a policy's JSON form uses the variable `name` (`{"Var": "resource"}`).
fn mentions_variable(json: &serde_json::Value, name: &str) -> bool {
    match json {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "Var" && value.as_str() == Some(name)) || mentions_variable(value, name)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions_variable(v, name)),
        _ => false,
    }
}

/// Whether a policy's JSON form reads or tests the attribute `name` anywhere (`.` and `has` nodes).
fn mentions_attribute(json: &serde_json::Value, name: &str) -> bool {
    match json {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            let accesses = (key == "." || key == "has")
                && value.get("attr").and_then(serde_json::Value::as_str) == Some(name);
            accesses || mentions_attribute(value, name)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions_attribute(v, name)),
        _ => false,
    }
}

/// A policy id as text (`PolicyId` is `AsRef` of two types, so plain `as_ref` needs annotations).
pub(crate) fn id_str(id: &PolicyId) -> &str {
    id.as_ref()
}
