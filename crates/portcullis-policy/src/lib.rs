//! The policy engine: Cedar policies + a verified principal + a request's facts -> a `Decision` (+ which
//! policies decided, and why): may a session open, may a statement run, may values be seen in clear.
//!
//! Pure: nothing here performs I/O except [`PolicySet::load`] reading the policy files. The model (entity
//! types, actions, context) is the schema shipped in `schema/portcullis.cedarschema`, which every policy is
//! validated against in strict mode at load, so a policy that names an unknown action or attribute never
//! reaches a decision. Decisions fail closed: an evaluation error is a denial.

mod error;
mod load;
mod memo;
mod vocabulary;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityUid, Policy,
    PolicyId, PolicySet as CedarPolicySet, Request, Response, Schema,
};
use portcullis_core::{Decision, HttpRequestFacts, Outcome, Principal, StatementFacts, StatementKind};

pub use error::{PolicyError, Problem};

use load::{Compiled, Source, id_str};
use memo::{MemoKey, remembered};
use vocabulary::{
    Action, PerHttp, PerKind, TableRef, Vocabulary, client_context, http_context, statement_context,
    tool_context,
};

const SCHEMA: &str = include_str!("../schema/portcullis.cedarschema");

/// What a request carries besides the principal and the statement: where the client is and how old its
/// token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    pub client_ip: IpAddr,
    /// Seconds since the token was issued.
    pub token_age_secs: i64,
}

/// The next [`PolicySet::id`]: ids are never reused, so a memo keyed by one cannot outlive its set.
static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);

/// A validated set of policies, ready to decide. Immutable once built; share it with `Arc`.
pub struct PolicySet {
    /// Unique in the process: names this set in the per-thread decision memo (`memo.rs`).
    id: u64,
    compiled: Compiled,
    vocabulary: Vocabulary,
    /// The policies each action's requests evaluate (see [`Scoped`]).
    scoped: Scoped,
    authorizer: Authorizer,
}

/// The policies whose action scope can match each action. Cedar evaluates every policy it is given, and
/// a policy whose action scope excludes the request's action can only be not applicable, so leaving it
/// out changes no decision and saves most of the evaluation: a typical policy names one action.
struct Scoped {
    connect: Scope,
    unmask: Scope,
    statements: PerKind<Scope>,
    http: PerHttp<Scope>,
    call_tool: Scope,
}

/// The policies one action's requests evaluate.
#[derive(Debug)]
struct Scope {
    policies: CedarPolicySet,
    /// No policy here constrains or reads the resource: every resource gets the same answer.
    resource_blind: bool,
    /// Some permit here allows without approval: without one, every request is denied or waits.
    plain_permits: bool,
    /// The context attributes some policy here reads; `None`: the context is used whole, so every
    /// attribute counts as read and decisions are not remembered.
    context_reads: Option<BTreeSet<String>>,
}

impl Scope {
    /// Whether a decision of this scope may depend on the context attribute `name`.
    fn reads(&self, name: &str) -> bool {
        self.context_reads
            .as_ref()
            .is_none_or(|reads| reads.contains(name))
    }

    /// A memo key for a decision of this scope whose context has the attributes `known` (the caller
    /// adds each one read to the key); `None` when its decisions are not remembered: the context is
    /// used whole, or a policy reads an attribute the caller would leave out.
    fn memo_key(&self, tag: u8, who: &Principal, known: &[&str]) -> Option<MemoKey> {
        let reads = self.context_reads.as_ref()?;
        reads
            .iter()
            .all(|name| known.contains(&name.as_str()))
            .then(|| MemoKey::new(tag, who))
    }

    /// Adds the client context's attributes this scope reads (the schema's `Client`, also part of
    /// every other context type).
    fn client_key(&self, key: &mut MemoKey, ctx: &RequestContext) {
        if self.reads("client_ip") {
            key.flag(true).ip(ctx.client_ip);
        }
        if self.reads("token_age_secs") {
            key.flag(true).long(ctx.token_age_secs);
        }
    }
}

/// Memo key tags: one per kind of remembered decision (HTTP actions add their index).
const MEMO_CONNECT: u8 = 1;
const MEMO_UNMASK: u8 = 2;
const MEMO_HTTP: u8 = 16;

/// The attributes of the schema's `Client` context, each added to a memo key when read.
const CLIENT_ATTRIBUTES: &[&str] = &["client_ip", "token_age_secs"];
/// The attributes of the schema's `HttpRequest` context, each added to a memo key when read.
const HTTP_ATTRIBUTES: &[&str] = &[
    "method",
    "path",
    "route",
    "params",
    "query",
    "headers",
    "query_repeated",
    "headers_repeated",
    "body",
    "client_ip",
    "token_age_secs",
];

/// One Cedar request of a decision, less the principal, context and entities it shares with the others.
struct Ask<'a> {
    action: &'a Action,
    /// The policies that can apply to `action`.
    scope: &'a Scope,
    resource: &'a EntityUid,
    /// For people: the action's name and the resource's type and id.
    action_name: &'static str,
    resource_type: &'static str,
    resource_id: &'a str,
}

impl PolicySet {
    /// Reads and parses each file, validates every policy against the shipped schema (strict mode).
    /// Generated policy names use the file's name (`no-ddl.cedar#0`); errors name the file's path,
    /// line and column, and Cedar's message.
    pub fn load(files: &[PathBuf]) -> Result<PolicySet, PolicyError> {
        let mut texts = Vec::with_capacity(files.len());
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            texts.push((name, path.display().to_string(), text));
        }
        let sources: Vec<Source<'_>> = texts
            .iter()
            .map(|(name, label, text)| Source { name, label, text })
            .collect();
        Self::build(&sources)
    }

    /// Parses and validates policies given as `(name, text)` pairs; `name` stands for the file in
    /// generated policy names and in errors.
    pub fn from_sources(sources: &[(String, String)]) -> Result<PolicySet, PolicyError> {
        let sources: Vec<Source<'_>> = sources
            .iter()
            .map(|(name, text)| Source {
                name,
                label: name,
                text,
            })
            .collect();
        Self::build(&sources)
    }

    /// The Cedar schema policies are validated against (human-readable format).
    pub fn schema_text() -> &'static str {
        SCHEMA
    }

    /// Whether a policy that can apply to statements reads `context.token_age_secs`: statement decisions
    /// then vary over a session and must not be cached.
    pub fn time_dependent(&self) -> bool {
        self.compiled.time_dependent
    }

    /// The `@approval_mode` (`hold` or `ticket`) the named approval policies set: `ticket` if any of them
    /// says so (it never keeps a session waiting, and nothing runs unapproved either way), else `hold`
    /// if one says so, else `None` (the gateway's settings decide).
    pub fn approval_mode(&self, policies: &[String]) -> Option<&str> {
        let modes: Vec<&str> = policies
            .iter()
            .filter_map(|p| self.compiled.approval_modes.get(p).map(String::as_str))
            .collect();
        if modes.contains(&"ticket") {
            Some("ticket")
        } else {
            modes.first().copied()
        }
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.compiled.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.names.is_empty()
    }

    /// Policy names in load order: the `@id` annotation, else `<file name>#<index in file from 0>`.
    pub fn names(&self) -> &[String] {
        &self.compiled.names
    }

    /// The validator's warnings (for example a policy that can never apply). Not fatal; worth showing
    /// to whoever checks the policies.
    pub fn warnings(&self) -> &[Problem] {
        &self.compiled.warnings
    }

    /// May `who` open a session on `connection`? One request: `connect` on `Connection::"<connection>"`.
    ///
    /// Remembered per thread for this set when the decision cannot depend on what the key leaves out
    /// (see `memo.rs`).
    pub fn decide_connect(&self, who: &Principal, connection: &str, ctx: &RequestContext) -> Decision {
        let scope = &self.scoped.connect;
        let key = scope
            .memo_key(MEMO_CONNECT, who, CLIENT_ATTRIBUTES)
            .map(|mut key| {
                key.str(connection);
                scope.client_key(&mut key, ctx);
                key
            });
        remembered(self.id, key, || self.connect_uncached(who, connection, ctx))
    }

    fn connect_uncached(&self, who: &Principal, connection: &str, ctx: &RequestContext) -> Decision {
        let v = &self.vocabulary;
        let principal = v.principal(who);
        let resource = v.connection(connection);
        let request = Ask {
            action: &v.connect,
            scope: &self.scoped.connect,
            resource: &resource,
            action_name: "connect",
            resource_type: "Connection",
            resource_id: connection,
        };
        let prepared = client_context(ctx).and_then(|context| {
            let entities = v.entities(&principal, who, &resource, &[], &[request.action])?;
            Ok((context, entities))
        });
        match prepared {
            Ok((context, entities)) => self.decide(who, &principal, [&request], &context, &entities),
            Err(e) => refused_on_error(&request.described(who), &e),
        }
    }

    /// May `who` run a statement with `facts` on `connection`? One request for the statement's action on
    /// `Connection::"<connection>"`, one per written table (the statement's action on
    /// `Table::"<connection>/<schema>.<table>"`) and one per table only read (`read` on the table). Any
    /// denial denies; else any request permitted only by `@approval("required")` permits needs approval;
    /// else allowed. `statement_count` is how many statements the message carried.
    ///
    /// Requests that cannot change the outcome are not evaluated: when no policy that applies to an
    /// action looks at the resource, that action's answer is the same for every resource, so it is asked
    /// once. With policies that never name a table, a statement is one request.
    pub fn decide_statement(
        &self,
        who: &Principal,
        connection: &str,
        facts: &StatementFacts,
        statement_count: usize,
        ctx: &RequestContext,
    ) -> Decision {
        let v = &self.vocabulary;
        let principal = v.principal(who);
        let connection_uid = v.connection(connection);
        let tables = v.tables(connection, facts);
        let on_connection = Ask {
            action: v.statements.get(facts.kind),
            scope: self.scoped.statements.get(facts.kind),
            resource: &connection_uid,
            action_name: facts.kind.action(),
            resource_type: "Connection",
            resource_id: connection,
        };
        let on_tables = self.table_requests(facts.kind, &tables);

        // Table entities only matter to policies that look at the resource.
        let tables_looked_at = on_tables.iter().any(|r| !r.scope.resource_blind);
        let table_entities = if tables_looked_at { tables.as_slice() } else { &[] };
        let actions: Vec<&Action> = std::iter::once(&on_connection)
            .chain(&on_tables)
            .map(|r| r.action)
            .collect();
        let prepared = statement_context(facts, &tables, statement_count, ctx).and_then(|context| {
            let entities = v.entities(&principal, who, &connection_uid, table_entities, &actions)?;
            Ok((context, entities))
        });
        match prepared {
            Ok((context, entities)) => {
                let requests = std::iter::once(&on_connection).chain(&on_tables);
                self.decide(who, &principal, requests, &context, &entities)
            }
            Err(e) => refused_on_error(&on_connection.described(who), &e),
        }
    }

    /// May `who` make the HTTP request `facts` describes on `connection`? One request: the method's
    /// action (`http_read`, `http_write` or `http_delete`) on the matched route
    /// (`Route::"<connection>/<route name>"`, a child of the connection), or on
    /// `Connection::"<connection>"` when the path matched no route. The context is the request's
    /// (`HttpRequest` in the schema). Forbid wins, deny by default, an evaluation error denies; a
    /// request permitted only by `@approval("required")` permits needs approval.
    ///
    /// Remembered per thread for this set, keyed by the principal, connection, action, route and the
    /// context attributes the action's policies read (see `memo.rs`).
    pub fn decide_http(
        &self,
        who: &Principal,
        connection: &str,
        facts: &HttpRequestFacts,
        ctx: &RequestContext,
    ) -> Decision {
        let scope = self.scoped.http.get(facts.action);
        let tag = MEMO_HTTP + facts.action as u8;
        let key = scope.memo_key(tag, who, HTTP_ATTRIBUTES).map(|mut key| {
            key.str(connection);
            match &facts.route {
                Some(route) => key.flag(true).str(&route.name).str(&route.template),
                None => key.flag(false),
            };
            http_key(scope, &mut key, facts, ctx);
            key
        });
        remembered(self.id, key, || self.http_uncached(who, connection, facts, ctx))
    }

    fn http_uncached(
        &self,
        who: &Principal,
        connection: &str,
        facts: &HttpRequestFacts,
        ctx: &RequestContext,
    ) -> Decision {
        let v = &self.vocabulary;
        let principal = v.principal(who);
        let connection_uid = v.connection(connection);
        let action = v.http.get(facts.action);
        let scope = self.scoped.http.get(facts.action);
        let route = match facts.route.as_ref().map(|r| v.route(connection, r)).transpose() {
            Ok(route) => route,
            Err(e) => {
                return Decision::deny(format!(
                    "policy evaluation failed for {} on {connection:?}, so it is refused: {e}",
                    facts.action.action()
                ));
            }
        };
        let request = match &route {
            Some(route) => Ask {
                action,
                scope,
                resource: &route.uid,
                action_name: facts.action.action(),
                resource_type: "Route",
                resource_id: &route.id,
            },
            None => Ask {
                action,
                scope,
                resource: &connection_uid,
                action_name: facts.action.action(),
                resource_type: "Connection",
                resource_id: connection,
            },
        };
        // The route entity (its attributes and its parent) only matters to policies that look at the
        // resource.
        let route_entity = route.as_ref().filter(|_| !scope.resource_blind);
        let prepared = http_context(facts, ctx).and_then(|context| {
            let entities = v.entities_with_route(&principal, who, &connection_uid, route_entity, action)?;
            Ok((context, entities))
        });
        match prepared {
            Ok((context, entities)) => self.decide(who, &principal, [&request], &context, &entities),
            Err(e) => refused_on_error(&request.described(who), &e),
        }
    }

    /// May `who` call the MCP tool `tool` of `connection` with `arguments` (flattened like an HTTP JSON
    /// body: dotted paths to scalars, values as text)? One request: `call_tool` on
    /// `Tool::"<connection>/<tool>"` (a child of the connection), context `ToolCall`. With empty
    /// `arguments` this asks whether the tool may be called at all (what `tools/list` shows). Forbid
    /// wins, deny by default, an evaluation error denies; a call permitted only by
    /// `@approval("required")` permits needs approval.
    pub fn decide_tool_call(
        &self,
        who: &Principal,
        connection: &str,
        tool: &str,
        arguments: &[(String, String)],
        ctx: &RequestContext,
    ) -> Decision {
        let v = &self.vocabulary;
        let scope = &self.scoped.call_tool;
        let principal = v.principal(who);
        let connection_uid = v.connection(connection);
        let entity = match v.tool(connection, tool) {
            Ok(entity) => entity,
            Err(e) => {
                return Decision::deny(format!(
                    "policy evaluation failed for call_tool on {connection:?}, so it is refused: {e}"
                ));
            }
        };
        let request = Ask {
            action: &v.call_tool,
            scope,
            resource: &entity.uid,
            action_name: "call_tool",
            resource_type: "Tool",
            resource_id: &entity.id,
        };
        let tool_entity = Some(&entity).filter(|_| !scope.resource_blind);
        let prepared = tool_context(tool, arguments, ctx).and_then(|context| {
            let entities =
                v.entities_with_route(&principal, who, &connection_uid, tool_entity, &v.call_tool)?;
            Ok((context, entities))
        });
        match prepared {
            Ok((context, entities)) => self.decide(who, &principal, [&request], &context, &entities),
            Err(e) => refused_on_error(&request.described(who), &e),
        }
    }

    /// Whether any policy could permit `unmask` at all. When not, every value stays masked and the
    /// gateway need ask nothing. Counts every permit whose action scope admits `unmask` (including an
    /// unconstrained `action`), whatever its conditions; a permit that needs approval does not count,
    /// since masking never waits for one (see [`PolicySet::decide_unmask`]).
    pub fn unmask_possible(&self) -> bool {
        self.scoped.unmask.plain_permits
    }

    /// Whether any policy that applies to `unmask` looks at the resource. When not, the answer is the
    /// same for every connection and table, so the connection's answer stands for all its tables. When
    /// so, ask each table: a connection's permit need not reach its tables (`resource ==
    /// Connection::"x"` does not, `resource in Connection::"x"` does) and a forbid may single one out.
    pub fn unmask_per_table(&self) -> bool {
        !self.scoped.unmask.resource_blind
    }

    /// May `who` see values in clear? One request for `unmask`: with `table` = `Some((schema, table))`,
    /// on `Table::"<connection>/<schema>.<table>"` (a child of the connection, so `resource in
    /// Connection::"<connection>"` matches it); with `None`, on `Connection::"<connection>"`. The context
    /// is the client's (`client_ip`, `token_age_secs`), as for `connect`.
    ///
    /// Allow means cleartext; anything else means masked. Fails closed like every decision: an
    /// evaluation error denies. A request permitted only by `@approval("required")` permits is denied
    /// too: a result row cannot wait for a human.
    pub fn decide_unmask(
        &self,
        who: &Principal,
        connection: &str,
        table: Option<(&str, &str)>,
        ctx: &RequestContext,
    ) -> Decision {
        // A connection's answer is remembered (an HTTP request asks it every time); tables are not.
        let scope = &self.scoped.unmask;
        let key = scope
            .memo_key(MEMO_UNMASK, who, CLIENT_ATTRIBUTES)
            .filter(|_| table.is_none())
            .map(|mut key| {
                key.str(connection);
                scope.client_key(&mut key, ctx);
                key
            });
        remembered(self.id, key, || self.unmask_uncached(who, connection, table, ctx))
    }

    fn unmask_uncached(
        &self,
        who: &Principal,
        connection: &str,
        table: Option<(&str, &str)>,
        ctx: &RequestContext,
    ) -> Decision {
        let v = &self.vocabulary;
        let scope = &self.scoped.unmask;
        let principal = v.principal(who);
        let connection_uid = v.connection(connection);
        let name = table.map(|(schema, table)| format!("{schema}.{table}"));
        let table = table
            .zip(name.as_deref())
            .map(|((schema, table), name)| v.table(connection, name, schema, table));
        let request = match &table {
            Some(table) => Ask {
                action: &v.unmask,
                scope,
                resource: &table.uid,
                action_name: "unmask",
                resource_type: "Table",
                resource_id: &table.id,
            },
            None => Ask {
                action: &v.unmask,
                scope,
                resource: &connection_uid,
                action_name: "unmask",
                resource_type: "Connection",
                resource_id: connection,
            },
        };
        // The table entity only matters to policies that look at the resource.
        let table_entities = match &table {
            Some(table) if !scope.resource_blind => std::slice::from_ref(table),
            _ => &[],
        };
        let prepared = client_context(ctx).and_then(|context| {
            let entities = v.entities(
                &principal,
                who,
                &connection_uid,
                table_entities,
                &[request.action],
            )?;
            Ok((context, entities))
        });
        let decision = match prepared {
            Ok((context, entities)) => self.decide(who, &principal, [&request], &context, &entities),
            Err(e) => refused_on_error(&request.described(who), &e),
        };
        masked_unless_allowed(decision)
    }

    fn build(sources: &[Source<'_>]) -> Result<PolicySet, PolicyError> {
        let schema = shipped_schema()?;
        let vocabulary = Vocabulary::new(&schema).map_err(PolicyError::Internal)?;
        let compiled = load::compile(&schema, sources)?;
        let scope = |action: &EntityUid| -> Result<Scope, PolicyError> {
            let applicable: Vec<Policy> = compiled
                .policies
                .policies()
                .filter(|p| can_apply(p, action, &vocabulary))
                // Cleartext is granted only by a permit that names `unmask`: a broad "may do anything"
                // permit does not switch masking off. Forbids of any scope still apply.
                .filter(|p| {
                    action != &vocabulary.unmask.uid
                        || p.effect() == Effect::Forbid
                        || names_action(p, action)
                })
                .cloned()
                .collect();
            let resource_blind = !applicable.iter().any(load::reads_resource);
            let plain_permits = applicable
                .iter()
                .any(|p| p.effect() == Effect::Permit && !compiled.approvals.contains(p.id()));
            let context_reads = applicable.iter().try_fold(BTreeSet::new(), |mut all, p| {
                all.append(&mut load::context_reads(p)?);
                Some(all)
            });
            let policies = CedarPolicySet::from_policies(applicable)
                .map_err(|e| PolicyError::Internal(e.to_string()))?;
            Ok(Scope {
                policies,
                resource_blind,
                plain_permits,
                context_reads,
            })
        };
        let scoped = Scoped {
            connect: scope(&vocabulary.connect.uid)?,
            unmask: scope(&vocabulary.unmask.uid)?,
            statements: PerKind::build(|kind| scope(&vocabulary.statements.get(kind).uid))?,
            http: PerHttp::build(|a| scope(&vocabulary.http.get(a).uid))?,
            call_tool: scope(&vocabulary.call_tool.uid)?,
        };
        Ok(PolicySet {
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            compiled,
            vocabulary,
            scoped,
            authorizer: Authorizer::new(),
        })
    }

    /// The table requests of a statement of `kind`, in the order they are asked: written tables (where a
    /// refusal is most likely), then tables only read. A request whose action's policies never look at
    /// the resource is left out when the same action was already asked (of the connection or another
    /// table): its answer could only repeat.
    fn table_requests<'a>(&'a self, kind: StatementKind, tables: &'a [TableRef<'a>]) -> Vec<Ask<'a>> {
        let v = &self.vocabulary;
        let statement = self.scoped.statements.get(kind);
        let read = self.scoped.statements.get(StatementKind::Read);
        let mut requests = Vec::new();
        if !statement.resource_blind {
            requests.extend(tables.iter().filter(|t| t.written).map(|t| Ask {
                action: v.statements.get(kind),
                scope: statement,
                resource: &t.uid,
                action_name: kind.action(),
                resource_type: "Table",
                resource_id: &t.id,
            }));
        }
        let mut read_asked = kind == StatementKind::Read;
        for table in tables.iter().filter(|t| !t.written) {
            if read.resource_blind && std::mem::replace(&mut read_asked, true) {
                continue;
            }
            requests.push(Ask {
                action: v.statements.get(StatementKind::Read),
                scope: read,
                resource: &table.uid,
                action_name: StatementKind::Read.action(),
                resource_type: "Table",
                resource_id: &table.id,
            });
        }
        requests
    }

    /// Asks each request in turn and combines the answers; the first denial ends the decision.
    fn decide<'a>(
        &self,
        who: &Principal,
        principal: &EntityUid,
        requests: impl IntoIterator<Item = &'a Ask<'a>>,
        context: &Context,
        entities: &Entities,
    ) -> Decision {
        let mut tally = Tally::default();
        for request in requests {
            let verdict = self.ask(request, principal, context.clone(), entities);
            if let Some(denial) = tally.add(verdict, &request.described(who)) {
                return denial;
            }
        }
        tally.finish()
    }

    /// Evaluates one Cedar request and classifies the answer.
    fn ask(
        &self,
        request: &Ask<'_>,
        principal: &EntityUid,
        context: Context,
        entities: &Entities,
    ) -> Verdict {
        // The request is not checked against the schema here: the context is built by this crate in the
        // schema's shape (a test checks it), and checking costs a large share of a decision.
        let cedar_request = match Request::new(
            principal.clone(),
            request.action.uid.clone(),
            request.resource.clone(),
            context,
            None,
        ) {
            Ok(cedar_request) => cedar_request,
            Err(e) => return Verdict::Failed(e.to_string()),
        };
        let response = self
            .authorizer
            .is_authorized(&cedar_request, &request.scope.policies, entities);
        self.classify(&response)
    }

    fn classify(&self, response: &Response) -> Verdict {
        let diagnostics = response.diagnostics();
        // Cedar skips a policy whose evaluation fails, so an erroring forbid would let the request through:
        // any error refuses.
        let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        if !errors.is_empty() {
            return Verdict::Failed(errors.join("; "));
        }
        let mut reasons: Vec<&PolicyId> = diagnostics.reason().collect();
        reasons.sort_by(|a, b| id_str(a).cmp(id_str(b)));
        let approvals = &self.compiled.approvals;
        match response.decision() {
            CedarDecision::Deny if reasons.is_empty() => Verdict::NotPermitted,
            CedarDecision::Deny => Verdict::Forbidden(names(reasons)),
            CedarDecision::Allow => {
                let plain: Vec<&PolicyId> = reasons
                    .iter()
                    .copied()
                    .filter(|id| !approvals.contains(*id))
                    .collect();
                if plain.is_empty() {
                    Verdict::NeedsApproval(names(reasons))
                } else {
                    Verdict::Permitted(names(plain))
                }
            }
        }
    }
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("policies", &self.compiled.names)
            .field("time_dependent", &self.compiled.time_dependent)
            .finish_non_exhaustive()
    }
}

/// Adds the HTTP context's attributes `scope` reads (the schema's `HttpRequest`) to `key`.
fn http_key(scope: &Scope, key: &mut MemoKey, facts: &HttpRequestFacts, ctx: &RequestContext) {
    // Each attribute read adds its name's tag and its value, so the encoding stays unambiguous.
    if scope.reads("method") {
        key.flag(true).str(&facts.method);
    }
    if scope.reads("path") {
        key.flag(true).str(&facts.path);
    }
    if scope.reads("route") {
        key.flag(true)
            .str(facts.route.as_ref().map_or("", |r| r.name.as_str()));
    }
    if scope.reads("params") {
        key.flag(true).pairs(&facts.params);
    }
    // The repeated names are the pairs' names counted: the pairs decide them.
    if scope.reads("query") || scope.reads("query_repeated") {
        key.flag(true).pairs(&facts.query);
    }
    if scope.reads("headers") || scope.reads("headers_repeated") {
        key.flag(true).pairs(&facts.headers);
    }
    if scope.reads("body") {
        match &facts.body {
            Some(body) => key.flag(true).pairs(body),
            None => key.flag(false),
        };
    }
    scope.client_key(key, ctx);
}

fn shipped_schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Internal(e.to_string()))
}

/// Whether `policy`'s action scope admits `action`.
/// Whether the policy's action scope names `action` itself (not through `action` left open or a group).
fn names_action(policy: &Policy, action: &EntityUid) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => false,
        ActionConstraint::Eq(scope) => &scope == action,
        ActionConstraint::In(scopes) => scopes.iter().any(|scope| scope == action),
    }
}

fn can_apply(policy: &Policy, action: &EntityUid, vocabulary: &Vocabulary) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(scope) => &scope == action,
        ActionConstraint::In(scopes) => scopes.iter().any(|scope| vocabulary.action_in(action, scope)),
    }
}

/// How Cedar answered one request, in the engine's terms.
#[derive(Debug)]
enum Verdict {
    /// Permitted by these un-annotated permits (and no forbid matched).
    Permitted(Vec<String>),
    /// Permitted only by these `@approval("required")` permits.
    NeedsApproval(Vec<String>),
    /// These forbids matched.
    Forbidden(Vec<String>),
    /// No permit matched.
    NotPermitted,
    /// Evaluation failed (fail closed).
    Failed(String),
}

impl Ask<'_> {
    fn described<'a>(&'a self, who: &'a Principal) -> Asked<'a> {
        Asked {
            action: self.action_name,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            principal: who,
        }
    }
}

/// One request of a decision, described for people.
struct Asked<'a> {
    action: &'a str,
    resource_type: &'static str,
    resource_id: &'a str,
    principal: &'a Principal,
}

impl fmt::Display for Asked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} {:?} for Agent {:?}",
            self.action,
            self.resource_type,
            self.resource_id,
            self.principal.name()
        )
    }
}

/// The running combination of a decision's requests.
#[derive(Default)]
struct Tally {
    permits: Vec<String>,
    approvals: Vec<String>,
    /// The first request that needs approval, described.
    approval_for: Option<String>,
}

impl Tally {
    /// Adds one request's verdict; a denial ends the decision at once.
    fn add(&mut self, verdict: Verdict, asked: &Asked<'_>) -> Option<Decision> {
        match verdict {
            Verdict::Permitted(ids) => {
                extend_unique(&mut self.permits, ids);
                None
            }
            Verdict::NeedsApproval(ids) => {
                if self.approval_for.is_none() {
                    self.approval_for = Some(asked.to_string());
                }
                extend_unique(&mut self.approvals, ids);
                None
            }
            Verdict::Forbidden(ids) => {
                let reason = format!("{asked} is forbidden by {}", ids.join(", "));
                Some(Decision {
                    outcome: Outcome::Deny,
                    policies: ids,
                    reason,
                })
            }
            Verdict::NotPermitted => Some(Decision::deny(format!("no policy permits {asked}"))),
            Verdict::Failed(error) => Some(refused_on_error(asked, &error)),
        }
    }

    fn finish(mut self) -> Decision {
        self.permits.sort();
        self.approvals.sort();
        match self.approval_for {
            Some(asked) => {
                let reason = format!("{asked} requires approval ({})", self.approvals.join(", "));
                Decision {
                    outcome: Outcome::ApprovalRequired,
                    policies: self.approvals,
                    reason,
                }
            }
            None => Decision {
                outcome: Outcome::Allow,
                reason: format!("permitted by {}", self.permits.join(", ")),
                policies: self.permits,
            },
        }
    }
}

/// An unmask decision: nobody approves a value's masking, so what would wait for approval stays masked.
fn masked_unless_allowed(decision: Decision) -> Decision {
    match decision.outcome {
        Outcome::ApprovalRequired => Decision::deny(format!(
            "{}, which masking cannot wait for: the values stay masked",
            decision.reason
        )),
        Outcome::Allow | Outcome::Deny => decision,
    }
}

fn refused_on_error(asked: &Asked<'_>, error: &str) -> Decision {
    Decision::deny(format!(
        "policy evaluation failed for {asked}, so it is refused: {error}"
    ))
}

fn names(ids: Vec<&PolicyId>) -> Vec<String> {
    ids.into_iter().map(|id| id_str(id).to_owned()).collect()
}

fn extend_unique(into: &mut Vec<String>, ids: Vec<String>) {
    for id in ids {
        if !into.contains(&id) {
            into.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cedar_policy::{Entity, RestrictedExpression};
    use std::collections::{HashMap, HashSet};
    use std::str::FromStr;

    #[test]
    fn a_policy_set_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<PolicySet>();
    }

    #[test]
    fn shipped_schema_parses_and_names_every_statement_kind() {
        let schema = shipped_schema().unwrap();
        let actions: HashSet<String> = schema.actions().map(|a| a.id().unescaped().to_owned()).collect();
        for kind in portcullis_core::StatementKind::ALL {
            assert!(actions.contains(kind.action()), "{}", kind.action());
        }
        assert!(actions.contains("connect") && actions.contains("statement") && actions.contains("unmask"));
    }

    /// Every entity a decision could look up, checked against the schema: the principal, its groups, the
    /// connection, `tables` (children of the connection) and the whole action hierarchy.
    fn model_entities(
        schema: &Schema,
        v: &Vocabulary,
        who: &Principal,
        connection: &str,
        tables: &[TableRef<'_>],
    ) -> Entities {
        let conn = v.connection(connection);
        let group = |g: &String| EntityUid::from_str(&format!("Group::{g:?}")).unwrap();
        let mut list = vec![
            Entity::new(
                v.principal(who),
                HashMap::from([
                    (
                        "subject".into(),
                        RestrictedExpression::new_string(who.subject.clone()),
                    ),
                    (
                        "issuer".into(),
                        RestrictedExpression::new_string(who.issuer_alias.clone()),
                    ),
                ]),
                who.groups.iter().map(group).collect(),
            )
            .unwrap(),
            Entity::new_no_attrs(conn.clone(), HashSet::new()),
        ];
        let groups: HashSet<&String> = who.groups.iter().collect();
        list.extend(
            groups
                .into_iter()
                .map(|g| Entity::new_no_attrs(group(g), HashSet::new())),
        );
        for t in tables {
            list.push(
                Entity::new(
                    t.uid.clone(),
                    HashMap::from([
                        ("schema".into(), RestrictedExpression::new_string(t.schema.into())),
                        ("name".into(), RestrictedExpression::new_string(t.table.into())),
                    ]),
                    HashSet::from([conn.clone()]),
                )
                .unwrap(),
            );
        }
        Entities::from_entities(list, Some(schema)).unwrap()
    }

    /// One request against every policy, checked against the schema, classified and added to `tally`.
    #[allow(clippy::too_many_arguments)] // the model's inputs, spelled out
    fn model_ask(
        schema: &Schema,
        set: &PolicySet,
        entities: &Entities,
        context: &Context,
        tally: &mut Tally,
        asked: &Asked<'_>,
        (action, resource): (&Action, EntityUid),
        policies: &CedarPolicySet,
    ) -> Option<Decision> {
        let principal = set.vocabulary.principal(asked.principal);
        let request = Request::new(
            principal,
            action.uid.clone(),
            resource,
            context.clone(),
            Some(schema),
        )
        .unwrap();
        let response = set.authorizer.is_authorized(&request, policies, entities);
        tally.add(set.classify(&response), asked)
    }

    /// The decision as the model defines it, without shortcuts: every policy, every request, every entity
    /// (groups, connection, the whole action hierarchy), requests and entities checked against the schema.
    fn reference(
        schema: &Schema,
        set: &PolicySet,
        who: &Principal,
        connection: &str,
        facts: &StatementFacts,
        ctx: &RequestContext,
    ) -> Decision {
        let v = &set.vocabulary;
        let conn = v.connection(connection);
        let tables = v.tables(connection, facts);
        let entities = model_entities(schema, v, who, connection, &tables);
        let context = statement_context(facts, &tables, 1, ctx).unwrap();
        let kind = v.statements.get(facts.kind);
        let read = v.statements.get(StatementKind::Read);
        let mut requests = vec![(
            kind,
            facts.kind.action(),
            conn.clone(),
            "Connection",
            connection.to_owned(),
        )];
        for t in tables.iter().filter(|t| t.written) {
            requests.push((kind, facts.kind.action(), t.uid.clone(), "Table", t.id.clone()));
        }
        for t in tables.iter().filter(|t| !t.written) {
            requests.push((read, "read", t.uid.clone(), "Table", t.id.clone()));
        }
        let mut tally = Tally::default();
        for (action, name, resource, resource_type, id) in requests {
            let asked = Asked {
                action: name,
                resource_type,
                resource_id: &id,
                principal: who,
            };
            let request = (action, resource);
            if let Some(denial) = model_ask(
                schema,
                set,
                &entities,
                &context,
                &mut tally,
                &asked,
                request,
                &set.compiled.policies,
            ) {
                return denial;
            }
        }
        tally.finish()
    }

    /// An unmask decision as the model defines it: one request against every policy and every entity
    /// (the table's always included), checked against the schema.
    fn reference_unmask(
        schema: &Schema,
        set: &PolicySet,
        who: &Principal,
        connection: &str,
        table: Option<(&str, &str)>,
        ctx: &RequestContext,
    ) -> Decision {
        let v = &set.vocabulary;
        let name = table.map(|(schema, table)| format!("{schema}.{table}"));
        let tables: Vec<TableRef<'_>> = table
            .zip(name.as_deref())
            .map(|((schema, table), name)| v.table(connection, name, schema, table))
            .into_iter()
            .collect();
        let entities = model_entities(schema, v, who, connection, &tables);
        let context = client_context(ctx).unwrap();
        let (resource, resource_type, id) = match tables.first() {
            Some(t) => (t.uid.clone(), "Table", t.id.clone()),
            None => (v.connection(connection), "Connection", connection.to_owned()),
        };
        let asked = Asked {
            action: "unmask",
            resource_type,
            resource_id: &id,
            principal: who,
        };
        let mut tally = Tally::default();
        let request = (&v.unmask, resource);
        // The rule: only permits that name `unmask` grant it; forbids of any scope apply.
        let policies = CedarPolicySet::from_policies(
            set.compiled
                .policies
                .policies()
                .filter(|p| p.effect() == Effect::Forbid || names_action(p, &v.unmask.uid))
                .cloned(),
        )
        .unwrap();
        let decision = model_ask(
            schema, set, &entities, &context, &mut tally, &asked, request, &policies,
        )
        .unwrap_or_else(|| tally.finish());
        masked_unless_allowed(decision)
    }

    fn example_sources(files: &[&str]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|f| {
                let path = format!("{}/../../examples/policies/{f}.cedar", env!("CARGO_MANIFEST_DIR"));
                ((*f).to_owned(), std::fs::read_to_string(path).unwrap())
            })
            .collect()
    }

    fn agent(groups: &[&str]) -> Principal {
        Principal {
            issuer_alias: "dev".into(),
            issuer: "https://issuer.example".into(),
            subject: "bot".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            token_id: None,
            issued_at: None,
            expires_at: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    /// Scoping policies by action, skipping requests no policy can tell apart and leaving out entities
    /// nothing can look up must not change a single decision.
    #[test]
    fn shortcuts_decide_as_the_model_does() {
        let examples = example_sources(&[
            "analysts-read-only",
            "agents-guarded-writes",
            "no-ddl",
            "no-privileges",
            "no-file-access",
            "baseline",
        ]);
        let tables = (
            "tables".to_owned(),
            r#"
            permit(principal in Group::"staff", action in Action::"statement", resource);
            forbid(principal, action, resource == Table::"app/public.salaries") unless { principal in Group::"hr" };
            forbid(principal, action in Action::"write", resource is Table) when { resource.schema == "audit" };
            permit(principal, action == Action::"read", resource in Connection::"app");
            @approval("required") permit(principal in Group::"agents", action == Action::"write", resource is Table)
                when { resource.name == "orders" };
            permit(principal in Group::"agents", action == Action::"write", resource is Connection);
            "#
            .to_owned(),
        );
        let sets = [
            PolicySet::from_sources(&examples).unwrap(),
            PolicySet::from_sources(&[tables]).unwrap(),
        ];
        let principals = [
            agent(&[]),
            agent(&["analysts"]),
            agent(&["agents"]),
            agent(&["dba"]),
            agent(&["staff"]),
            agent(&["staff", "hr", "staff"]),
            agent(&["agents", "analysts"]),
        ];
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut facts = Vec::new();
        for kind in StatementKind::ALL {
            for (reads, writes) in [
                (&[][..], &[][..]),
                (&["public.accounts"][..], &[][..]),
                (
                    &["public.accounts", "public.salaries"][..],
                    &["public.orders"][..],
                ),
                (&["audit.log"][..], &["audit.log"][..]),
                (&[][..], &["public.salaries"][..]),
            ] {
                for operations in [&["select"][..], &["delete"][..]] {
                    facts.push(StatementFacts {
                        kind,
                        command: "X".into(),
                        reads: strings(reads),
                        writes: strings(writes),
                        operations: strings(operations),
                        functions: strings(if kind == StatementKind::Read {
                            &["dblink"]
                        } else {
                            &[]
                        }),
                        parse_error: None,
                        ..StatementFacts::unparsed("")
                    });
                }
            }
        }
        let ctx = RequestContext {
            client_ip: std::net::IpAddr::from([10, 0, 0, 1]),
            token_age_secs: 1,
        };
        let schema = shipped_schema().unwrap();
        let mut outcomes = HashSet::new();
        let mut compared = 0;
        // Principals change fastest, so reuse of a thread's last entity set is exercised across them.
        for set in &sets {
            for f in &facts {
                for connection in ["app", "other"] {
                    for principal in &principals {
                        let fast = set.decide_statement(principal, connection, f, 1, &ctx);
                        let slow = reference(&schema, set, principal, connection, f, &ctx);
                        assert_eq!(fast, slow, "{:?} {connection} {f:?}", principal.groups);
                        outcomes.insert(format!("{:?}", fast.outcome));
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 7 * 120 * 2);
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    }

    /// The same for unmask: scoping, leaving the table entity out when no policy looks at the resource,
    /// and skipping request validation change no decision.
    #[test]
    fn unmask_shortcuts_decide_as_the_model_does() {
        let mut with_examples = example_sources(&["baseline", "no-ddl", "unmask-for-dba"]);
        with_examples.push((
            "support".to_owned(),
            r#"
            permit(principal in Group::"support", action == Action::"unmask", resource == Table::"app/public.customers");
            forbid(principal, action == Action::"unmask", resource == Table::"app/public.salaries")
                unless { principal in Group::"hr" };
            "#
            .to_owned(),
        ));
        let blind = (
            "blind".to_owned(),
            r#"
            permit(principal in Group::"staff", action == Action::"unmask", resource);
            forbid(principal, action, resource) unless { context.client_ip.isInRange(ip("10.0.0.0/8")) };
            @approval("required") permit(principal in Group::"agents", action, resource);
            "#
            .to_owned(),
        );
        let attributes = (
            "attributes".to_owned(),
            r#"
            permit(principal, action == Action::"unmask", resource in Connection::"app")
                unless { resource is Table && resource.schema == "pii" };
            permit(principal in Group::"dba", action in [Action::"unmask", Action::"connect"], resource);
            forbid(principal, action == Action::"unmask", resource is Table) when { resource.name == "tokens" };
            "#
            .to_owned(),
        );
        let sets = [
            PolicySet::from_sources(&with_examples).unwrap(),
            PolicySet::from_sources(&[blind]).unwrap(),
            PolicySet::from_sources(&[attributes]).unwrap(),
        ];
        assert_eq!(
            sets.iter().map(PolicySet::unmask_per_table).collect::<Vec<_>>(),
            [true, false, true]
        );
        let principals = [
            agent(&[]),
            agent(&["dba"]),
            agent(&["support"]),
            agent(&["support", "hr"]),
            agent(&["staff"]),
            agent(&["agents"]),
        ];
        let tables = [
            None,
            Some(("public", "customers")),
            Some(("public", "salaries")),
            Some(("pii", "cards")),
            Some(("public", "tokens")),
            Some(("my.schema", "t")),
        ];
        let schema = shipped_schema().unwrap();
        let mut outcomes = HashSet::new();
        let mut compared = 0;
        for set in &sets {
            for table in tables {
                for connection in ["app", "other"] {
                    for ip in [[10, 0, 0, 1], [192, 168, 0, 1]] {
                        let ctx = RequestContext {
                            client_ip: std::net::IpAddr::from(ip),
                            token_age_secs: 1,
                        };
                        for principal in &principals {
                            let fast = set.decide_unmask(principal, connection, table, &ctx);
                            let slow = reference_unmask(&schema, set, principal, connection, table, &ctx);
                            assert_eq!(fast, slow, "{:?} {connection} {table:?}", principal.groups);
                            outcomes.insert(format!("{:?}/{}", fast.outcome, fast.policies.is_empty()));
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 3 * 6 * 2 * 2 * 6);
        // Allowed, forbidden (naming a forbid) and not permitted (or waiting on approval) all occur.
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    }

    fn http_facts(
        action: portcullis_core::HttpAction,
        method: &str,
        route: Option<&str>,
    ) -> HttpRequestFacts {
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        HttpRequestFacts {
            action,
            method: method.to_owned(),
            path: "/customers/1".to_owned(),
            route: route.map(|name| portcullis_core::RouteRef {
                name: name.to_owned(),
                template: "/customers/{id}".to_owned(),
            }),
            params: vec![pair("id", "1")],
            // PUT names its tenant twice.
            query: [pair("tenant", method)]
                .into_iter()
                .chain((method == "PUT").then(|| pair("tenant", "x")))
                .collect(),
            headers: vec![pair("x-team", if method == "GET" { "ops" } else { "dev" })],
            body: (method == "POST").then(|| vec![pair("amount", "5")]),
        }
    }

    /// Remembered decisions (`memo.rs`) are the decisions: requests that differ only in what some policy
    /// reads (method, headers, body, repeated query names, client address, token age, principal, route)
    /// alternate on one
    /// thread, and each answer equals a fresh evaluation.
    #[test]
    fn remembered_decisions_are_the_decisions() {
        use portcullis_core::HttpAction;
        let sources = |text: &str| vec![("p".to_owned(), text.to_owned())];
        let sets = [
            // Reads nothing of the context: remembered per principal, connection, action and route.
            "permit(principal in Group::\"agents\", action, resource);",
            // Reads the method, a header and the body.
            r#"permit(principal in Group::"agents", action, resource) when {
                   context has method && context.method == "GET" };
               permit(principal in Group::"agents", action == Action::"http_write", resource)
                   when { context has body && context.body.contains({name: "amount", value: "5"}) };
               forbid(principal, action in Action::"http", resource)
                   when { context.headers.contains({name: "x-team", value: "dev"}) && context.method == "DELETE" };"#,
            // Reads the client's address and the token's age, on connect too.
            r#"permit(principal, action, resource) when { context.client_ip.isInRange(ip("10.0.0.0/8")) };
               forbid(principal, action, resource) when { context.token_age_secs > 60 };"#,
            // Reads which query names repeat.
            r#"permit(principal in Group::"agents", action, resource);
               forbid(principal, action in Action::"http", resource)
                   when { context.query_repeated.contains("tenant") };"#,
            // Reads the route's attributes.
            r#"permit(principal, action == Action::"http_read", resource is Route) when { resource.name == "customer" };
               permit(principal, action == Action::"connect", resource);"#,
        ];
        let principals = [agent(&[]), agent(&["agents"]), agent(&["agents", "x"])];
        let requests = [
            (HttpAction::Read, "GET", Some("customer")),
            (HttpAction::Read, "GET", Some("other")),
            (HttpAction::Read, "HEAD", None),
            (HttpAction::Write, "POST", Some("customer")),
            (HttpAction::Write, "PUT", Some("customer")),
            (HttpAction::Delete, "DELETE", Some("customer")),
        ];
        let contexts = [([10, 0, 0, 1], 1), ([192, 168, 0, 1], 1), ([10, 0, 0, 1], 61)].map(|(ip, age)| {
            RequestContext {
                client_ip: std::net::IpAddr::from(ip),
                token_age_secs: age,
            }
        });
        let mut outcomes = HashSet::new();
        for text in sets {
            let set = PolicySet::from_sources(&sources(text)).unwrap();
            assert!(set.scoped.connect.context_reads.is_some(), "{text}");
            // Twice over, so that the second round is answered from the memo.
            for _ in 0..2 {
                for (action, method, route) in requests {
                    let facts = http_facts(action, method, route);
                    for ctx in &contexts {
                        for who in &principals {
                            let remembered = set.decide_http(who, "crm", &facts, ctx);
                            let fresh = set.http_uncached(who, "crm", &facts, ctx);
                            assert_eq!(
                                remembered, fresh,
                                "{text} {method} {route:?} {ctx:?} {:?}",
                                who.groups
                            );
                            let connect = set.decide_connect(who, "crm", ctx);
                            assert_eq!(connect, set.connect_uncached(who, "crm", ctx), "{text} {ctx:?}");
                            outcomes.insert(format!("{:?}", remembered.outcome));
                        }
                    }
                }
            }
        }
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    }

    /// A policy that uses the context record whole is never remembered, and one that reads an
    /// attribute the key would leave out is not either.
    #[test]
    fn context_used_whole_is_not_remembered() {
        let set = PolicySet::from_sources(&[(
            "p".to_owned(),
            r#"permit(principal, action == Action::"connect", resource) when { context == {client_ip: ip("10.0.0.1"), token_age_secs: 1} };"#
                .to_owned(),
        )])
        .unwrap();
        assert!(set.scoped.connect.context_reads.is_none());
        assert!(
            set.scoped
                .connect
                .memo_key(MEMO_CONNECT, &agent(&[]), CLIENT_ATTRIBUTES)
                .is_none()
        );
        // The bench's `context whole` variant.
        let set = PolicySet::from_sources(&[(
            "p".to_owned(),
            "permit(principal, action, resource) when { context == context };".to_owned(),
        )])
        .unwrap();
        assert!(
            set.scoped
                .http
                .get(portcullis_core::HttpAction::Read)
                .context_reads
                .is_none()
        );
        let set = PolicySet::from_sources(&[(
            "p".to_owned(),
            r#"permit(principal, action == Action::"http_read", resource) when { context.method == "GET" };"#
                .to_owned(),
        )])
        .unwrap();
        let scope = set.scoped.http.get(portcullis_core::HttpAction::Read);
        assert_eq!(scope.context_reads, Some(BTreeSet::from(["method".to_owned()])));
        assert!(
            scope
                .memo_key(MEMO_HTTP, &agent(&[]), CLIENT_ATTRIBUTES)
                .is_none()
        );
        assert!(scope.memo_key(MEMO_HTTP, &agent(&[]), HTTP_ATTRIBUTES).is_some());
    }

    /// A reloaded set (a new `PolicySet`) never answers from the memo of the one it replaces.
    #[test]
    fn a_new_set_decides_afresh() {
        let ctx = RequestContext {
            client_ip: std::net::IpAddr::from([10, 0, 0, 1]),
            token_age_secs: 1,
        };
        let facts = http_facts(portcullis_core::HttpAction::Read, "GET", Some("customer"));
        let who = agent(&["agents"]);
        let allow =
            PolicySet::from_sources(&[("p".to_owned(), "permit(principal, action, resource);".to_owned())])
                .unwrap();
        let deny = PolicySet::from_sources(&[(
            "p".to_owned(),
            "permit(principal, action == Action::\"connect\", resource);".to_owned(),
        )])
        .unwrap();
        for _ in 0..3 {
            assert_eq!(
                allow.decide_http(&who, "crm", &facts, &ctx).outcome,
                Outcome::Allow
            );
            assert_eq!(deny.decide_http(&who, "crm", &facts, &ctx).outcome, Outcome::Deny);
            assert_eq!(deny.decide_connect(&who, "crm", &ctx).outcome, Outcome::Allow);
        }
    }
}
