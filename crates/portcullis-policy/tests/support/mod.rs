//! Test helpers: principals, request contexts and statement facts built by hand.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use portcullis_core::{Decision, Principal, StatementFacts, StatementKind};
use portcullis_policy::RequestContext;

/// `Agent::"dev/<subject>"` in `groups`.
pub fn agent(subject: &str, groups: &[&str]) -> Principal {
    Principal {
        issuer_alias: "dev".into(),
        issuer: "https://issuer.example".into(),
        subject: subject.into(),
        groups: strings(groups),
        token_id: None,
        issued_at: None,
        expires_at: SystemTime::UNIX_EPOCH,
    }
}

pub fn ctx() -> RequestContext {
    RequestContext {
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        token_age_secs: 60,
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Facts of a statement of `kind` that touches nothing.
pub fn statement(kind: StatementKind, command: &str) -> StatementFacts {
    StatementFacts {
        kind,
        command: command.into(),
        parse_error: None,
        ..StatementFacts::unparsed("")
    }
}

pub fn select(tables: &[&str]) -> StatementFacts {
    StatementFacts {
        reads: strings(tables),
        operations: strings(&["select"]),
        ..statement(StatementKind::Read, "SELECT")
    }
}

/// An UPDATE or DELETE (`op`) of `table`, with or without a restrictive WHERE clause.
pub fn row_write(op: &str, table: &str, bounded: bool) -> StatementFacts {
    StatementFacts {
        reads: strings(&[table]),
        writes: strings(&[table]),
        operations: strings(&[op]),
        has_where: bounded,
        unbounded_write: !bounded,
        ..statement(StatementKind::Write, &op.to_uppercase())
    }
}

pub fn set(setting: &str) -> StatementFacts {
    StatementFacts {
        setting: setting.into(),
        ..statement(StatementKind::Session, "SET")
    }
}

/// The shipped example policies, `../../examples/policies/<name>`.
pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/policies")
        .join(name)
}

pub const EXAMPLES: [&str; 7] = [
    "analysts-read-only.cedar",
    "agents-guarded-writes.cedar",
    "no-ddl.cedar",
    "no-privileges.cedar",
    "no-file-access.cedar",
    "baseline.cedar",
    "unmask-for-dba.cedar",
];

/// The deciding policies' names.
pub fn ids(decision: &Decision) -> Vec<&str> {
    decision.policies.iter().map(String::as_str).collect()
}
