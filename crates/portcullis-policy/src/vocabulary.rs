//! `Vocabulary`: the schema's names built once (entity types, action ids, action entities) and the
//! per-decision entities and contexts built from them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::rc::Rc;
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression, Schema,
};
use portcullis_core::{HttpAction, HttpRequestFacts, Principal, StatementFacts, StatementKind};

use crate::RequestContext;

/// Entity types and actions of the shipped schema.
#[derive(Debug)]
pub(crate) struct Vocabulary {
    agent: EntityTypeName,
    group: EntityTypeName,
    connection: EntityTypeName,
    table: EntityTypeName,
    route: EntityTypeName,
    tool: EntityTypeName,
    pub connect: Action,
    pub unmask: Action,
    pub statements: PerKind<Action>,
    /// `Http::Action::"read"`, `"write"`, `"delete"`.
    pub http: PerHttp<Action>,
    /// `Action::"call_tool"` (MCP).
    pub call_tool: Action,
    /// The schema's action entities: the action hierarchy.
    hierarchy: Entities,
}

/// An action: its id, and its entity (with its groups as ancestors), which a request's entity set must
/// hold for `action in Action::"<group>"` to see the hierarchy.
#[derive(Debug)]
pub(crate) struct Action {
    pub uid: EntityUid,
    entity: Entity,
}

/// One value per statement kind, looked up by a match so every kind has one.
#[derive(Debug)]
pub(crate) struct PerKind<T> {
    read: T,
    write: T,
    ddl: T,
    privileges: T,
    transaction: T,
    session: T,
    maintenance: T,
    copy_in: T,
    copy_out: T,
    file_access: T,
    procedural: T,
    unknown: T,
}

impl<T> PerKind<T> {
    pub fn build<E>(mut make: impl FnMut(StatementKind) -> Result<T, E>) -> Result<Self, E> {
        Ok(PerKind {
            read: make(StatementKind::Read)?,
            write: make(StatementKind::Write)?,
            ddl: make(StatementKind::Ddl)?,
            privileges: make(StatementKind::Privileges)?,
            transaction: make(StatementKind::Transaction)?,
            session: make(StatementKind::Session)?,
            maintenance: make(StatementKind::Maintenance)?,
            copy_in: make(StatementKind::CopyIn)?,
            copy_out: make(StatementKind::CopyOut)?,
            file_access: make(StatementKind::FileAccess)?,
            procedural: make(StatementKind::Procedural)?,
            unknown: make(StatementKind::Unknown)?,
        })
    }

    pub fn get(&self, kind: StatementKind) -> &T {
        match kind {
            StatementKind::Read => &self.read,
            StatementKind::Write => &self.write,
            StatementKind::Ddl => &self.ddl,
            StatementKind::Privileges => &self.privileges,
            StatementKind::Transaction => &self.transaction,
            StatementKind::Session => &self.session,
            StatementKind::Maintenance => &self.maintenance,
            StatementKind::CopyIn => &self.copy_in,
            StatementKind::CopyOut => &self.copy_out,
            StatementKind::FileAccess => &self.file_access,
            StatementKind::Procedural => &self.procedural,
            StatementKind::Unknown => &self.unknown,
        }
    }
}

/// One value per HTTP action.
#[derive(Debug)]
pub(crate) struct PerHttp<T> {
    read: T,
    write: T,
    delete: T,
}

impl<T> PerHttp<T> {
    pub fn build<E>(mut make: impl FnMut(HttpAction) -> Result<T, E>) -> Result<Self, E> {
        Ok(PerHttp {
            read: make(HttpAction::Read)?,
            write: make(HttpAction::Write)?,
            delete: make(HttpAction::Delete)?,
        })
    }

    pub fn get(&self, action: HttpAction) -> &T {
        match action {
            HttpAction::Read => &self.read,
            HttpAction::Write => &self.write,
            HttpAction::Delete => &self.delete,
        }
    }
}

/// A route a request is about: `Route::"<connection>/<route name>"`, a child of its connection.
#[derive(Debug)]
pub(crate) struct RouteEntity {
    pub id: String,
    pub uid: EntityUid,
    entity: Entity,
    /// Its parent and attributes, as the key of an entity set holding it.
    key: (EntityUid, Vec<String>),
}

/// A table a request is about, as the entity and request resource it becomes.
#[derive(Debug)]
pub(crate) struct TableRef<'a> {
    /// `schema.table`, as in the facts.
    pub name: &'a str,
    /// The entity's `schema` and `name` attributes.
    pub schema: &'a str,
    pub table: &'a str,
    /// `<connection>/<schema>.<table>`: the entity id.
    pub id: String,
    pub uid: EntityUid,
    /// Written (or redefined) by the statement, rather than only read.
    pub written: bool,
}

impl<'a> TableRef<'a> {
    /// The table `name` (`schema.table`, split into `schema` and `table`) behind `connection`.
    fn new(
        table_type: &EntityTypeName,
        connection: &str,
        name: &'a str,
        (schema, table): (&'a str, &'a str),
    ) -> Self {
        let id = format!("{connection}/{name}");
        TableRef {
            name,
            schema,
            table,
            uid: EntityUid::from_type_name_and_id(table_type.clone(), EntityId::new(&id)),
            id,
            written: false,
        }
    }
}

impl Vocabulary {
    pub fn new(schema: &Schema) -> Result<Self, String> {
        let type_name = |name: &str| EntityTypeName::from_str(name).map_err(|e| e.to_string());
        let action_type = type_name("Action")?;
        let hierarchy = schema.action_entities().map_err(|e| e.to_string())?;
        let action = |name: &str| {
            let uid = EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(name));
            match hierarchy.get(&uid) {
                Some(entity) => Ok(Action {
                    entity: entity.clone(),
                    uid,
                }),
                None => Err(format!("the schema has no action {name}")),
            }
        };
        Ok(Vocabulary {
            agent: type_name("Agent")?,
            group: type_name("Group")?,
            connection: type_name("Connection")?,
            table: type_name("Table")?,
            route: type_name("Route")?,
            tool: type_name("Tool")?,
            connect: action("connect")?,
            unmask: action("unmask")?,
            statements: PerKind::build(|kind| action(kind.action()))?,
            http: PerHttp::build(|a| action(a.action()))?,
            call_tool: action("call_tool")?,
            hierarchy,
        })
    }

    /// Whether a request for `action` can match a policy scoped to `constraint` (`action in constraint`).
    pub fn action_in(&self, action: &EntityUid, constraint: &EntityUid) -> bool {
        action == constraint || self.hierarchy.is_ancestor_of(constraint, action)
    }

    pub fn principal(&self, who: &Principal) -> EntityUid {
        EntityUid::from_type_name_and_id(self.agent.clone(), EntityId::new(who.name()))
    }

    pub fn connection(&self, name: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.connection.clone(), EntityId::new(name))
    }

    /// Every table `facts` touches, once each, in name order; written tables are marked.
    pub fn tables<'a>(&self, connection: &str, facts: &'a StatementFacts) -> Vec<TableRef<'a>> {
        let names: BTreeSet<&str> = facts
            .reads
            .iter()
            .chain(&facts.writes)
            .map(String::as_str)
            .collect();
        names
            .into_iter()
            .map(|name| TableRef {
                written: facts.writes.iter().any(|w| w == name),
                ..TableRef::new(
                    &self.table,
                    connection,
                    name,
                    name.split_once('.').unwrap_or(("", name)),
                )
            })
            .collect()
    }

    /// The table `schema`.`table` behind `connection`; `name` is `schema.table` (the caller keeps it, so
    /// a schema holding a dot keeps its own name).
    pub fn table<'a>(
        &self,
        connection: &str,
        name: &'a str,
        schema: &'a str,
        table: &'a str,
    ) -> TableRef<'a> {
        TableRef::new(&self.table, connection, name, (schema, table))
    }

    /// The route `route` of `connection`, as a request resource and an entity.
    pub fn route(&self, connection: &str, route: &portcullis_core::RouteRef) -> Result<RouteEntity, String> {
        let id = format!("{connection}/{}", route.name);
        let uid = EntityUid::from_type_name_and_id(self.route.clone(), EntityId::new(&id));
        let entity = Entity::new(
            uid.clone(),
            HashMap::from([
                attr_string("name", &route.name),
                attr_string("template", &route.template),
            ]),
            HashSet::from([self.connection(connection)]),
        )
        .map_err(|e| e.to_string())?;
        let key = (
            self.connection(connection),
            vec![route.name.clone(), route.template.clone()],
        );
        Ok(RouteEntity { id, uid, entity, key })
    }

    /// The tool `tool` of `connection`: `Tool::"<connection>/<tool>"`, a child of the connection, as a
    /// request resource and an entity (the same shape as a route's).
    pub fn tool(&self, connection: &str, tool: &str) -> Result<RouteEntity, String> {
        let id = format!("{connection}/{tool}");
        let uid = EntityUid::from_type_name_and_id(self.tool.clone(), EntityId::new(&id));
        let entity = Entity::new(
            uid.clone(),
            HashMap::from([attr_string("name", tool)]),
            HashSet::from([self.connection(connection)]),
        )
        .map_err(|e| e.to_string())?;
        let key = (self.connection(connection), vec![tool.to_owned()]);
        Ok(RouteEntity { id, uid, entity, key })
    }

    /// The entity set of one HTTP decision: as [`Vocabulary::entities`], with the route's entity when
    /// policies may look at it.
    pub fn entities_with_route(
        &self,
        principal: &EntityUid,
        who: &Principal,
        connection: &EntityUid,
        route: Option<&RouteEntity>,
        action: &Action,
    ) -> Result<Rc<Entities>, String> {
        self.recent(principal, who, connection, route, &[action])
    }

    /// The entity set of one decision: the actions asked (with their groups as ancestors), the principal
    /// (a child of its groups) and the given tables (children of `connection`). Built once per decision
    /// and shared by all its requests. Every entity costs (Cedar indexes the set and computes its
    /// transitive closure: microseconds each), so the set holds only what evaluation can look up: the
    /// actions asked rather than the whole hierarchy, and no `Group` or `Connection` entities. Those
    /// have no attributes and no parents, and Cedar treats an absent entity exactly like one without
    /// attributes or parents (`X in Y` is then `X == Y`; `principal in Group::"g"` reads the principal's
    /// ancestors).
    ///
    /// When no table is needed the set depends only on the principal and the actions, so the last one
    /// built on this thread is reused when they match: the statements of a session keep asking the same.
    pub fn entities(
        &self,
        principal: &EntityUid,
        who: &Principal,
        connection: &EntityUid,
        tables: &[TableRef<'_>],
        actions: &[&Action],
    ) -> Result<Rc<Entities>, String> {
        if !tables.is_empty() {
            return self
                .build_entities(principal, who, connection, tables, actions)
                .map(Rc::new);
        }
        self.recent(principal, who, connection, None, actions)
    }

    /// A table-less entity set (with `route`'s entity, if given), from this thread's most recent
    /// ones when one was built from the same principal, actions and route, else built and remembered.
    fn recent(
        &self,
        principal: &EntityUid,
        who: &Principal,
        connection: &EntityUid,
        route: Option<&RouteEntity>,
        actions: &[&Action],
    ) -> Result<Rc<Entities>, String> {
        let found = RECENT_ENTITIES.with_borrow_mut(|recent| {
            let at = recent
                .iter()
                .position(|(key, _)| key.matches(who, actions, route))?;
            // Most recent first: an HTTP request asks `connect` and then its own action.
            let hit = recent.remove(at);
            let entities = Rc::clone(&hit.1);
            recent.insert(0, hit);
            Some(entities)
        });
        if let Some(entities) = found {
            return Ok(entities);
        }
        let mut built = self.build_entities(principal, who, connection, &[], actions)?;
        if let Some(route) = route {
            built = built
                .add_entities([route.entity.clone()], None)
                .map_err(|e| e.to_string())?;
        }
        let entities = Rc::new(built);
        RECENT_ENTITIES.with_borrow_mut(|recent| {
            recent.truncate(RECENT_SETS - 1);
            recent.insert(0, (EntitiesKey::new(who, actions, route), Rc::clone(&entities)));
        });
        Ok(entities)
    }

    fn build_entities(
        &self,
        principal: &EntityUid,
        who: &Principal,
        connection: &EntityUid,
        tables: &[TableRef<'_>],
        actions: &[&Action],
    ) -> Result<Entities, String> {
        let groups: HashSet<EntityUid> = who
            .groups
            .iter()
            .map(|g| EntityUid::from_type_name_and_id(self.group.clone(), EntityId::new(g)))
            .collect();
        let mut entities = Vec::with_capacity(2 + tables.len() + actions.len());
        entities.push(
            Entity::new(
                principal.clone(),
                HashMap::from([
                    attr_string("subject", &who.subject),
                    attr_string("issuer", &who.issuer_alias),
                ]),
                groups,
            )
            .map_err(|e| e.to_string())?,
        );
        for table in tables {
            entities.push(
                Entity::new(
                    table.uid.clone(),
                    HashMap::from([
                        attr_string("schema", table.schema),
                        attr_string("name", table.table),
                    ]),
                    HashSet::from([connection.clone()]),
                )
                .map_err(|e| e.to_string())?,
            );
        }
        for (i, action) in actions.iter().enumerate() {
            // The same action may be asked twice (a read statement's tables are read too).
            if !actions.iter().take(i).any(|a| a.uid == action.uid) {
                entities.push(action.entity.clone());
            }
        }
        Entities::from_entities(entities, None).map_err(|e| e.to_string())
    }
}

/// How many table-less entity sets a thread keeps: enough for the decisions one HTTP request asks
/// (`connect`, its action, `unmask`) and a statement's.
const RECENT_SETS: usize = 4;

thread_local! {
    /// The table-less entity sets built most recently on this thread, most recent first (see
    /// [`Vocabulary::entities`]).
    static RECENT_ENTITIES: RefCell<Vec<(EntitiesKey, Rc<Entities>)>> = const { RefCell::new(Vec::new()) };
}

/// Everything a table-less entity set is built from. (The schema is fixed, so action entities with the
/// same id are the same whichever policy set asks.)
struct EntitiesKey {
    issuer_alias: String,
    subject: String,
    groups: Vec<String>,
    actions: Vec<EntityUid>,
    /// A route's (or tool's) id, parent and attributes.
    route: Option<(EntityUid, (EntityUid, Vec<String>))>,
}

impl EntitiesKey {
    fn new(who: &Principal, actions: &[&Action], route: Option<&RouteEntity>) -> Self {
        EntitiesKey {
            issuer_alias: who.issuer_alias.clone(),
            subject: who.subject.clone(),
            groups: who.groups.clone(),
            actions: actions.iter().map(|a| a.uid.clone()).collect(),
            route: route.map(|r| (r.uid.clone(), r.key.clone())),
        }
    }

    fn matches(&self, who: &Principal, actions: &[&Action], route: Option<&RouteEntity>) -> bool {
        self.issuer_alias == who.issuer_alias
            && self.subject == who.subject
            && self.groups == who.groups
            && self.actions.len() == actions.len()
            && self.actions.iter().zip(actions).all(|(a, b)| *a == b.uid)
            && match (&self.route, route) {
                (None, None) => true,
                (Some((uid, key)), Some(route)) => *uid == route.uid && *key == route.key,
                _ => false,
            }
    }
}

/// The context of a `connect` or `unmask` request (the schema's `Client` type).
pub(crate) fn client_context(ctx: &RequestContext) -> Result<Context, String> {
    Context::from_pairs([
        ("client_ip".to_owned(), ip(ctx.client_ip)),
        (
            "token_age_secs".to_owned(),
            RestrictedExpression::new_long(ctx.token_age_secs),
        ),
    ])
    .map_err(|e| e.to_string())
}

/// The context of every request of one statement decision (the schema's `Statement` type).
pub(crate) fn statement_context(
    facts: &StatementFacts,
    tables: &[TableRef<'_>],
    statement_count: usize,
    ctx: &RequestContext,
) -> Result<Context, String> {
    let set = |items: &mut dyn Iterator<Item = &str>| {
        RestrictedExpression::new_set(items.map(|s| RestrictedExpression::new_string(s.to_owned())))
    };
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    let bool = RestrictedExpression::new_bool;
    Context::from_pairs([
        ("kind".to_owned(), string(facts.kind.action())),
        ("command".to_owned(), string(&facts.command)),
        (
            "reads".to_owned(),
            set(&mut facts.reads.iter().map(String::as_str)),
        ),
        (
            "writes".to_owned(),
            set(&mut facts.writes.iter().map(String::as_str)),
        ),
        ("tables".to_owned(), set(&mut tables.iter().map(|t| t.name))),
        (
            "operations".to_owned(),
            set(&mut facts.operations.iter().map(String::as_str)),
        ),
        (
            "functions".to_owned(),
            set(&mut facts.functions.iter().map(String::as_str)),
        ),
        ("has_where".to_owned(), bool(facts.has_where)),
        ("unbounded_write".to_owned(), bool(facts.unbounded_write)),
        ("modifying_cte".to_owned(), bool(facts.modifying_cte)),
        ("explain_analyze".to_owned(), bool(facts.explain_analyze)),
        ("setting".to_owned(), string(&facts.setting)),
        (
            "prepared".to_owned(),
            bool(facts.prepares.is_some() || facts.executes.is_some()),
        ),
        ("parse_error".to_owned(), bool(facts.parse_error.is_some())),
        (
            "statement_count".to_owned(),
            RestrictedExpression::new_long(i64::try_from(statement_count).unwrap_or(i64::MAX)),
        ),
        ("client_ip".to_owned(), ip(ctx.client_ip)),
        (
            "token_age_secs".to_owned(),
            RestrictedExpression::new_long(ctx.token_age_secs),
        ),
    ])
    .map_err(|e| e.to_string())
}

/// The context of an HTTP request (the schema's `HttpRequest` type).
pub(crate) fn http_context(facts: &HttpRequestFacts, ctx: &RequestContext) -> Result<Context, String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    let pairs = |items: &[(String, String)]| {
        RestrictedExpression::new_set(items.iter().map(|(name, value)| {
            RestrictedExpression::new_record([
                ("name".to_owned(), string(name)),
                ("value".to_owned(), string(value)),
            ])
            // Two fixed, distinct keys: a record cannot fail to build.
            .unwrap_or_else(|_| RestrictedExpression::new_set([]))
        }))
    };
    let mut fields = vec![
        ("method".to_owned(), string(&facts.method)),
        ("path".to_owned(), string(&facts.path)),
        (
            "route".to_owned(),
            string(facts.route.as_ref().map_or("", |r| r.name.as_str())),
        ),
        ("params".to_owned(), pairs(&facts.params)),
        ("query".to_owned(), pairs(&facts.query)),
        ("headers".to_owned(), pairs(&facts.headers)),
        ("query_repeated".to_owned(), repeated_names(&facts.query)),
        ("headers_repeated".to_owned(), repeated_names(&facts.headers)),
        ("client_ip".to_owned(), ip(ctx.client_ip)),
        (
            "token_age_secs".to_owned(),
            RestrictedExpression::new_long(ctx.token_age_secs),
        ),
    ];
    if let Some(body) = &facts.body {
        fields.push(("body".to_owned(), pairs(body)));
    }
    Context::from_pairs(fields).map_err(|e| e.to_string())
}

/// The names that occur more than once among `pairs`, as a set of strings.
fn repeated_names(pairs: &[(String, String)]) -> RestrictedExpression {
    let mut seen = std::collections::HashSet::new();
    let mut repeated = std::collections::BTreeSet::new();
    for (name, _) in pairs {
        if !seen.insert(name.as_str()) {
            repeated.insert(name.as_str());
        }
    }
    RestrictedExpression::new_set(
        repeated
            .into_iter()
            .map(|name| RestrictedExpression::new_string(name.to_owned())),
    )
}

/// The context of a `call_tool` request (the schema's `ToolCall` type).
pub(crate) fn tool_context(
    tool: &str,
    arguments: &[(String, String)],
    ctx: &RequestContext,
) -> Result<Context, String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    Context::from_pairs([
        ("tool".to_owned(), string(tool)),
        ("arguments".to_owned(), pairs(arguments)),
        ("client_ip".to_owned(), ip(ctx.client_ip)),
        (
            "token_age_secs".to_owned(),
            RestrictedExpression::new_long(ctx.token_age_secs),
        ),
    ])
    .map_err(|e| e.to_string())
}

/// A set of `{name, value}` records (the schema's `Pair`).
fn pairs(items: &[(String, String)]) -> RestrictedExpression {
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    RestrictedExpression::new_set(items.iter().map(|(name, value)| {
        RestrictedExpression::new_record([
            ("name".to_owned(), string(name)),
            ("value".to_owned(), string(value)),
        ])
        // Two fixed, distinct keys: a record cannot fail to build.
        .unwrap_or_else(|_| RestrictedExpression::new_set([]))
    }))
}

fn attr_string(name: &str, value: &str) -> (String, RestrictedExpression) {
    (
        name.to_owned(),
        RestrictedExpression::new_string(value.to_owned()),
    )
}

thread_local! {
    /// The last client address made into an `ip(...)` expression on this thread. Making one parses the
    /// extension's name with Cedar's full parser, which cost a large share of a whole decision; the
    /// statements of a session all come from one address.
    static LAST_IP: Cell<Option<(IpAddr, RestrictedExpression)>> = const { Cell::new(None) };
}

/// Cedar refuses IPv4 addresses written inside IPv6 (`::ffff:10.0.0.1`), which is how a dual-stack listener
/// reports IPv4 clients; the canonical form is plain IPv4, which `ip("10.0.0.0/8")` ranges then match.
fn ip(addr: IpAddr) -> RestrictedExpression {
    let addr = addr.to_canonical();
    LAST_IP.with(|last| {
        let expression = match last.take() {
            Some((cached, expression)) if cached == addr => expression,
            _ => RestrictedExpression::new_ip(addr.to_string()),
        };
        last.set(Some((addr, expression.clone())));
        expression
    })
}

#[cfg(test)]
mod tests {
    //! Decisions skip Cedar's request and entity validation for speed, so these check that what this
    //! module builds has exactly the schema's shape.

    use super::*;
    use cedar_policy::Request;
    use std::time::SystemTime;

    fn schema() -> Schema {
        Schema::from_cedarschema_str(crate::SCHEMA).unwrap().0
    }

    fn principal() -> Principal {
        Principal {
            issuer_alias: "dev".into(),
            issuer: "https://issuer.example".into(),
            subject: "bot".into(),
            groups: vec!["agents".into(), "agents".into(), "dba".into()],
            token_id: None,
            issued_at: None,
            expires_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn facts() -> StatementFacts {
        StatementFacts {
            kind: StatementKind::Write,
            command: "INSERT".into(),
            reads: vec!["public.carts".into(), "public.orders".into()],
            writes: vec!["public.orders".into()],
            operations: vec!["insert".into(), "select".into()],
            functions: vec!["now".into()],
            prepares: Some("p1".into()),
            ..StatementFacts::unparsed("")
        }
    }

    const CTX: RequestContext = RequestContext {
        client_ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        token_age_secs: 5,
    };

    #[test]
    fn statement_requests_conform_to_the_schema() {
        let schema = schema();
        let v = Vocabulary::new(&schema).unwrap();
        let facts = facts();
        let tables = v.tables("app", &facts);
        assert_eq!(
            tables
                .iter()
                .map(|t| (t.id.as_str(), t.written))
                .collect::<Vec<_>>(),
            [("app/public.carts", false), ("app/public.orders", true)]
        );
        let context = statement_context(&facts, &tables, 2, &CTX).unwrap();
        let who = principal();
        let p = v.principal(&who);
        let conn = v.connection("app");
        for kind in StatementKind::ALL {
            for resource in [&conn, &tables[0].uid] {
                Request::new(
                    p.clone(),
                    v.statements.get(kind).uid.clone(),
                    resource.clone(),
                    context.clone(),
                    Some(&schema),
                )
                .unwrap();
            }
        }
        let asked = [
            v.statements.get(StatementKind::Write),
            v.statements.get(StatementKind::Read),
        ];
        let entities = v.entities(&p, &who, &conn, &tables, &asked).unwrap();
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).unwrap();
    }

    #[test]
    fn connect_requests_conform_to_the_schema() {
        let schema = schema();
        let v = Vocabulary::new(&schema).unwrap();
        let who = principal();
        let context = client_context(&CTX).unwrap();
        let conn = v.connection("app");
        let p = v.principal(&who);
        Request::new(
            p.clone(),
            v.connect.uid.clone(),
            conn.clone(),
            context,
            Some(&schema),
        )
        .unwrap();
        let entities = v.entities(&p, &who, &conn, &[], &[&v.connect]).unwrap();
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).unwrap();
    }

    #[test]
    fn unmask_requests_conform_to_the_schema() {
        let schema = schema();
        let v = Vocabulary::new(&schema).unwrap();
        let who = principal();
        let p = v.principal(&who);
        let conn = v.connection("app");
        // A schema name may hold a dot: the attributes keep the parts as given.
        let table = v.table("app", "my.schema.t", "my.schema", "t");
        assert_eq!(
            (table.id.as_str(), table.schema, table.table),
            ("app/my.schema.t", "my.schema", "t")
        );
        let context = client_context(&CTX).unwrap();
        for resource in [&conn, &table.uid] {
            Request::new(
                p.clone(),
                v.unmask.uid.clone(),
                resource.clone(),
                context.clone(),
                Some(&schema),
            )
            .unwrap();
        }
        let tables = std::slice::from_ref(&table);
        let entities = v.entities(&p, &who, &conn, tables, &[&v.unmask]).unwrap();
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).unwrap();
    }

    #[test]
    fn http_requests_conform_to_the_schema() {
        let schema = schema();
        let v = Vocabulary::new(&schema).unwrap();
        let who = principal();
        let p = v.principal(&who);
        let conn = v.connection("crm");
        let route = v
            .route(
                "crm",
                &portcullis_core::RouteRef {
                    name: "customer".into(),
                    template: "/customers/{id}".into(),
                },
            )
            .unwrap();
        assert_eq!(route.id, "crm/customer");
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        let mut facts = HttpRequestFacts {
            action: HttpAction::Write,
            method: "POST".into(),
            path: "/customers/1".into(),
            route: None,
            params: vec![pair("id", "1")],
            query: vec![pair("a", "1"), pair("a", "2")],
            headers: vec![pair("x-request-id", "r1")],
            body: None,
        };
        for body in [None, Some(vec![pair("amount", "12"), pair("customer.id", "1")])] {
            facts.body = body;
            let context = http_context(&facts, &CTX).unwrap();
            for action in HttpAction::ALL {
                for resource in [&conn, &route.uid] {
                    Request::new(
                        p.clone(),
                        v.http.get(action).uid.clone(),
                        resource.clone(),
                        context.clone(),
                        Some(&schema),
                    )
                    .unwrap();
                }
            }
        }
        let entities = v
            .entities_with_route(&p, &who, &conn, Some(&route), v.http.get(HttpAction::Read))
            .unwrap();
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).unwrap();
    }

    #[test]
    fn tool_calls_conform_to_the_schema() {
        let schema = schema();
        let v = Vocabulary::new(&schema).unwrap();
        let who = principal();
        let p = v.principal(&who);
        let conn = v.connection("crm");
        let tool = v.tool("crm", "lookup_customer").unwrap();
        assert_eq!(tool.id, "crm/lookup_customer");
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        for arguments in [Vec::new(), vec![pair("id", "42"), pair("filter.tenant", "acme")]] {
            let context = tool_context("lookup_customer", &arguments, &CTX).unwrap();
            Request::new(
                p.clone(),
                v.call_tool.uid.clone(),
                tool.uid.clone(),
                context,
                Some(&schema),
            )
            .unwrap();
        }
        let entities = v
            .entities_with_route(&p, &who, &conn, Some(&tool), &v.call_tool)
            .unwrap();
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).unwrap();
    }

    #[test]
    fn ipv4_clients_on_a_dual_stack_listener_are_plain_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let context = client_context(&RequestContext {
            client_ip: mapped,
            token_age_secs: 0,
        });
        assert!(context.is_ok());
    }
}
