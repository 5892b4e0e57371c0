//! Decisions remembered per thread, for the policy set that made them, keyed by everything the decision
//! can depend on.
//!
//! A decision is a pure function of the policy set, the principal's entity (issuer alias, subject,
//! groups), the action, the resource's entity (a route's name, template and connection) and the context
//! attributes the applicable policies read. The key holds all of them except the context attributes
//! that no applicable policy reads (`load::context_reads`; a policy that uses the context record in any
//! other way makes the decision unremembered). The policy set is named by an id unique to the process
//! (never reused, unlike an address), so a reloaded set starts from an empty memo: a reload takes effect
//! on the next decision.
//!
//! An HTTP agent repeats the same few requests: with the memo, `connect` and the request's action cost
//! a hash lookup instead of building Cedar entities and a context and evaluating twice.

use std::cell::RefCell;
use std::net::IpAddr;

use portcullis_core::{Decision, Principal};

/// Entries per thread; the memo starts over when full (a bound on memory, not an eviction policy: the
/// working set of an HTTP gateway is principals × routes × methods, usually far smaller).
const MAX_ENTRIES: usize = 4096;

/// What a decision depends on, encoded without ambiguity (every string is length-prefixed).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MemoKey(Vec<u8>);

impl MemoKey {
    /// A key for a decision of kind `tag` (one byte per decision kind and action) by `who`.
    pub fn new(tag: u8, who: &Principal) -> Self {
        let mut key = MemoKey(Vec::with_capacity(128));
        key.0.push(tag);
        key.str(&who.issuer_alias).str(&who.subject).len(who.groups.len());
        for group in &who.groups {
            key.str(group);
        }
        key
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub fn len(&mut self, n: usize) -> &mut Self {
        self.0
            .extend_from_slice(&u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes());
        self
    }

    pub fn flag(&mut self, b: bool) -> &mut Self {
        self.0.push(u8::from(b));
        self
    }

    pub fn long(&mut self, n: i64) -> &mut Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    pub fn ip(&mut self, ip: IpAddr) -> &mut Self {
        // As the context holds it (see `vocabulary::ip`).
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                self.0.push(4);
                self.0.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.0.push(6);
                self.0.extend_from_slice(&v6.octets());
            }
        }
        self
    }

    pub fn pairs(&mut self, items: &[(String, String)]) -> &mut Self {
        self.len(items.len());
        for (name, value) in items {
            self.str(name).str(value);
        }
        self
    }
}

struct Memo {
    /// The policy set the entries were decided by.
    set: u64,
    entries: foldhash::HashMap<MemoKey, Decision>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        set: 0,
        entries: foldhash::HashMap::default(),
    });
}

/// The decision remembered for `key` under policy set `set`, else `decide`'s (remembered when `key` is
/// given; `None` means the decision must not be remembered).
pub(crate) fn remembered(set: u64, key: Option<MemoKey>, decide: impl FnOnce() -> Decision) -> Decision {
    let Some(key) = key else { return decide() };
    let hit = MEMO.with_borrow(|memo| {
        if memo.set == set {
            memo.entries.get(&key).cloned()
        } else {
            None
        }
    });
    if let Some(decision) = hit {
        return decision;
    }
    let decision = decide();
    MEMO.with_borrow_mut(|memo| {
        if memo.set != set || memo.entries.len() >= MAX_ENTRIES {
            memo.entries.clear();
            memo.set = set;
        }
        memo.entries.insert(key, decision.clone());
    });
    decision
}
