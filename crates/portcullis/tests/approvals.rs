//! Just-in-time approval end to end: an agent's DELETE, which policy permits only with a human's approval,
//! is held by the gateway while a reviewer decides through the admin API; a real PostgreSQL shows what
//! ran.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, Env, Options, UPSTREAM_PASSWORD_ENV};
use portcullis_audit::{AuditStore, EventBody, SqliteStore};
use portcullis_testkit::gateway::run_cli;
use serde_json::Value;

const HOLD_TIMEOUT: &str = "3s";

/// The shipped example: agents read and write; a bounded DELETE needs approval.
/// Plus: a TRUNCATE (refused by the example) may run with approval, by ticket whatever the gateway's
/// mode (a policy's @approval_mode).
fn policy() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let example = std::fs::read_to_string(dir.join("agents-guarded-writes.cedar")).unwrap();
    format!(
        "{example}\n@id(\"truncate-by-ticket\")\n@approval(\"required\")\n@approval_mode(\"ticket\")\n\
         permit (principal in Group::\"agents\", action in Action::\"write\", resource)\n\
         when {{ context.operations.contains(\"truncate\") }};\n"
    )
}

/// A gateway whose `[approvals]` has `mode` and the `more` keys.
async fn start(mode: &str, more: &str) -> Env {
    let env = Env::start(Options {
        policy: policy(),
        extra: format!(
            "[approvals]\nenabled = true\nmode = \"{mode}\"\nhold_timeout = \"{HOLD_TIMEOUT}\"\n\
             reviewers_group = \"reviewers\"\n{more}\n"
        ),
        ..Options::default()
    })
    .await;
    env.pg
        .psql(
            "app",
            "SET ROLE gateway_login;
             CREATE TABLE accounts (id int PRIMARY KEY, owner text);
             INSERT INTO accounts SELECT g, 'owner' || g FROM generate_series(1, 10) g;
             CREATE TABLE deletions (id int);
             CREATE FUNCTION count_deletion() RETURNS trigger LANGUAGE plpgsql AS
               'BEGIN INSERT INTO deletions VALUES (OLD.id); RETURN OLD; END';
             CREATE TRIGGER counted AFTER DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION count_deletion();
             RESET ROLE;",
        )
        .unwrap();
    env
}

/// A chat tool's incoming webhook: keeps what it is sent, and fails the first call to make the gateway
/// retry.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let seen = Arc::clone(&seen);
            move |axum::Json(body): axum::Json<Value>| async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                seen.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

/// The approvals API as a reviewer's tool would call it.
struct Api<'a> {
    env: &'a Env,
}

impl<'a> Api<'a> {
    fn new(env: &'a Env) -> Self {
        Api { env }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (status, _, body) =
            common::admin_call(self.env, "GET", &format!("/api/v1{path}"), token, None).await;
        (status, body)
    }

    async fn decide(&self, id: &str, verb: &str, token: &str, reason: Option<&str>) -> (u16, Value, String) {
        let body = reason.map(|reason| serde_json::json!({ "reason": reason }));
        self.decide_with(id, verb, token, body).await
    }

    async fn decide_with(
        &self,
        id: &str,
        verb: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let path = format!("/api/v1/approvals/{id}/{verb}");
        let (status, content_type, body) =
            common::admin_call(self.env, "POST", &path, Some(token), body).await;
        (status, body, content_type)
    }

    /// Waits until request `id` carries its impact preview.
    async fn preview(&self, reviewer: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, request) = self.get(&format!("/approvals/{id}"), Some(reviewer)).await;
            assert_eq!(status, 200, "{request}");
            if !request["preview"].is_null() {
                return request["preview"].clone();
            }
            assert!(Instant::now() < deadline, "no preview: {request}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the one pending request whose statement is `sql`.
    async fn pending(&self, reviewer: &str, sql: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, list) = self.get("/approvals", Some(reviewer)).await;
            assert_eq!(status, 200, "{list}");
            if let Some(found) = list.as_array().unwrap().iter().find(|r| r["statement"] == sql) {
                return found.clone();
            }
            assert!(Instant::now() < deadline, "no pending request for {sql}: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The chain's record of one session, once its statement `n` has an outcome: (kind, detail) pairs.
async fn recorded(env: &Env, session: &str, n: u64) -> Vec<(String, String)> {
    let path = env.gateway.dir().join("state").join("audit.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = SqliteStore::open(&path).unwrap().session_events(session).unwrap();
        let bodies: Vec<EventBody> = events.iter().map(|e| e.decode().unwrap()).collect();
        if bodies
            .iter()
            .any(|b| matches!(b, EventBody::Outcome(o) if o.n == n))
        {
            return bodies
                .into_iter()
                .filter_map(|b| match b {
                    EventBody::Approval(a) => Some(("approval".into(), format!("{} {:?}", a.action, a.by))),
                    EventBody::Statement(s) => {
                        Some(("statement".into(), format!("{} {}", s.decision, s.reason)))
                    }
                    EventBody::Outcome(o) => Some(("outcome".into(), o.tags.join(";"))),
                    _ => None,
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "statement {n} of {session} has no outcome"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `portcullis <args> --config <the gateway's config>`: (success, stdout and stderr).
fn cli(env: &Env, args: &[&str]) -> (bool, String) {
    let config = env.gateway.config_path();
    let mut all = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    let out = run_cli(Path::new(BIN), &all, &[(UPSTREAM_PASSWORD_ENV, "x")]).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Rows of `accounts` with this id, and deletions of it the trigger saw, read directly.
fn in_database(env: &Env, id: i32) -> (i64, i64) {
    let out = env
        .pg
        .psql(
            "app",
            &format!(
                "SELECT (SELECT count(*) FROM accounts WHERE id = {id}) || ',' || \
                 (SELECT count(*) FROM deletions WHERE id = {id})"
            ),
        )
        .unwrap();
    let (rows, deletions) = out.trim().split_once(',').unwrap();
    (rows.parse().unwrap(), deletions.parse().unwrap())
}

#[tokio::test]
async fn held_deletes_run_once_when_approved_and_never_otherwise() {
    let (hook, notifications) = webhook().await;
    let env = start("hold", &format!("notify_webhook = \"{hook}\"")).await;
    let api = Api::new(&env);
    let bot = env.mint("bot", &["agents"], "15m");
    let alice = env.mint("alice", &["reviewers"], "15m");
    let carol = env.mint("carol", &["agents", "reviewers"], "15m");
    let client = env.connect_plain("app", &bot).await.unwrap();

    // Approved: the held DELETE runs once, after the decision, and the session goes on.
    let sql = "DELETE FROM accounts WHERE id = 1";
    let held = tokio::spawn({
        let client = env.connect_plain("app", &bot).await.unwrap();
        async move { client.simple_query(sql).await }
    });
    let request = api.pending(&alice, sql).await;
    let id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(request["state"], "pending");
    assert_eq!(request["requester"], "dev/bot");
    assert_eq!(request["connection"], "app");
    assert_eq!(request["commands"], serde_json::json!(["DELETE"]));
    assert_eq!(
        request["policies"],
        serde_json::json!(["agents-delete-needs-approval"])
    );
    assert_eq!(request["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(in_database(&env, 1), (1, 0), "nothing ran before the decision");
    // The reviewer sees the planner's estimate; no trial run without preview_exact.
    let preview = api.preview(&alice, &id).await;
    assert_eq!(preview["estimated_rows"], 1, "{preview}");
    assert!(preview["exact_rows"].is_null(), "{preview}");
    let (status, decided, _) = api.decide(&id, "approve", &alice, None).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["state"], "approved");
    assert_eq!(decided["decided_by"], "dev/alice");
    held.await.unwrap().unwrap();
    assert_eq!(in_database(&env, 1), (0, 1), "ran exactly once");
    let (status, again, _) = api.decide(&id, "approve", &alice, None).await;
    assert_eq!(status, 409, "{again}");

    // The webhook heard of the request and of the decision (after a first 500, retried), with a link
    // and without the statement's text.
    let told = |event: &str| {
        let notifications = notifications.lock().unwrap();
        notifications
            .iter()
            .find(|n| n["event"] == event && n["request"]["id"] == id.as_str())
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while told("approved").is_none() {
        assert!(Instant::now() < deadline, "no approved notification");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requested = told("requested").expect("a requested notification");
    let text = requested["text"].as_str().unwrap();
    assert!(text.contains("dev/bot wants to run DELETE on app"), "{text}");
    assert!(text.contains(&format!("/api/v1/approvals/{id}")), "{text}");
    assert!(
        !text.contains("id = 1"),
        "the statement stays out of chat: {text}"
    );
    let approved = told("approved").unwrap();
    assert_eq!(approved["request"]["decided_by"], "dev/alice");
    assert_eq!(in_database(&env, 1), (0, 1), "a second approval releases nothing");

    // The chain holds the request, the decision, then the statement it released and its outcome.
    let session = request["session"].as_str().unwrap();
    let chain = recorded(&env, session, 1).await;
    let approved_by = format!("approval {id} granted by dev/alice");
    assert_eq!(
        chain,
        [
            ("approval".to_owned(), "requested None".to_owned()),
            ("approval".to_owned(), "approved Some(\"dev/alice\")".to_owned()),
            ("statement".to_owned(), format!("allow {approved_by}")),
            ("outcome".to_owned(), "DELETE 1".to_owned()),
        ]
    );
    let config = env.gateway.config_path();
    let replay = run_cli(
        Path::new(BIN),
        &[
            "sessions",
            "replay",
            session,
            "--config",
            config.to_str().unwrap(),
        ],
        &[(UPSTREAM_PASSWORD_ENV, "x")],
    )
    .unwrap();
    let replay = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.contains(&format!(
            "approval {id} requested (policy agents-delete-needs-approval)"
        )),
        "{replay}"
    );
    assert!(
        replay.contains(&format!("approval {id} approved by dev/alice")),
        "{replay}"
    );

    // An approval covers one execution of those bytes: the same text again is a new request.
    let rerun = tokio::spawn({
        let client = env.connect_plain("app", &bot).await.unwrap();
        async move { client.simple_query(sql).await }
    });
    let second = api.pending(&alice, sql).await;
    assert_ne!(second["id"], request["id"]);
    assert_eq!(second["fingerprint"], request["fingerprint"]);
    let (status, _, _) = api
        .decide(
            second["id"].as_str().unwrap(),
            "deny",
            &alice,
            Some("already done"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(rerun.await.unwrap().is_err());

    // Denied: the client gets 42501 with the reviewer and reason; nothing reaches the database.
    let sql = "DELETE FROM accounts WHERE id = 2";
    let denied = tokio::spawn({
        let client = env.connect_plain("app", &bot).await.unwrap();
        async move { client.simple_query(sql).await }
    });
    // This one through the CLI, as a reviewer at a terminal would.
    let request = api.pending(&alice, sql).await;
    let id = request["id"].as_str().unwrap();
    let (ok, listed) = cli(&env, &["approvals", "list", "--token", &alice]);
    assert!(ok, "{listed}");
    assert!(
        listed.contains(id) && listed.contains("dev/bot") && listed.contains(sql),
        "{listed}"
    );
    let (ok, said) = cli(&env, &["approvals", "approve", id, "--token", &bot]);
    assert!(!ok && said.contains("Not a reviewer (403)"), "{said}");
    let (ok, said) = cli(
        &env,
        &[
            "approvals",
            "deny",
            id,
            "--reason",
            "not in production",
            "--token",
            &alice,
        ],
    );
    assert!(ok, "{said}");
    assert!(said.contains(&format!("{id} denied by dev/alice")), "{said}");
    let err = denied.await.unwrap().unwrap_err();
    let (code, message) = common::db_error(&err);
    assert_eq!(code, "42501");
    assert!(
        message.contains("denied by dev/alice: not in production"),
        "{message}"
    );
    assert_eq!(in_database(&env, 2), (1, 0));

    // A policy's @approval_mode("ticket") wins over the gateway's hold mode: refused at once, with the
    // request's id, instead of held.
    let started = Instant::now();
    let ticket = client.simple_query("TRUNCATE deletions").await.unwrap_err();
    let truncate_request = ticket_of(&ticket);
    let (code, message) = common::db_error(&ticket);
    assert_eq!(code, "42501");
    assert!(
        message.contains("request apr_") && message.contains("waits for a reviewer"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "not held");

    // The client's cancel request withdraws a held statement: 57014, and it can no longer be approved.
    let sql = "DELETE FROM accounts WHERE id = 5";
    let cancelling = env.connect_plain("app", &bot).await.unwrap();
    let cancel = cancelling.cancel_token();
    let withdrawn = tokio::spawn(async move { cancelling.simple_query(sql).await });
    let request = api.pending(&alice, sql).await;
    let id = request["id"].as_str().unwrap();
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = withdrawn.await.unwrap().unwrap_err();
    let (code, message) = common::db_error(&err);
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains(&format!("approval {id} withdrawn")), "{message}");
    let (status, request) = api.get(&format!("/approvals/{id}"), Some(&alice)).await;
    assert_eq!((status, request["state"].as_str()), (200, Some("withdrawn")));
    let (status, _, _) = api.decide(id, "approve", &alice, None).await;
    assert_eq!(status, 409);
    assert_eq!(in_database(&env, 5), (1, 0));

    // Self-approval, a non-reviewer and no token are refused with problem documents; then it expires.
    let sql = "DELETE FROM accounts WHERE id = 3";
    let carols = env.connect_plain("app", &carol).await.unwrap();
    let expired = tokio::spawn(async move {
        let started = Instant::now();
        (carols.simple_query(sql).await, started.elapsed())
    });
    let request = api.pending(&alice, sql).await;
    let id = request["id"].as_str().unwrap();
    let (status, body, content_type) = api.decide(id, "approve", &carol, None).await;
    assert_eq!((status, content_type.as_str()), (403, "application/problem+json"));
    assert_eq!(body["title"], "Self-approval refused");
    let (status, body, _) = api.decide(id, "approve", &bot, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["title"], "Not a reviewer");
    let (status, body) = api.get(&format!("/approvals/{id}"), None).await;
    assert_eq!(status, 401, "{body}");
    let (result, waited) = expired.await.unwrap();
    let (code, message) = common::db_error(&result.unwrap_err());
    assert_eq!(code, "42501");
    assert!(message.contains("not decided within 3s"), "{message}");
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    assert_eq!(in_database(&env, 3), (1, 0));
    let (status, request) = api.get(&format!("/approvals/{id}"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(request["state"], "expired");
    let (status, _, _) = api.decide(id, "approve", &alice, None).await;
    assert_eq!(status, 409, "an expired request cannot be approved");
    assert_eq!(in_database(&env, 3), (1, 0));

    // The extended protocol: the Parse goes through (it runs nothing), the execution is held with its
    // parameters, which the request shows and its fingerprint covers.
    let sql = "DELETE FROM accounts WHERE id = $1";
    let prepared = tokio::spawn({
        let client = env.connect_plain("app", &bot).await.unwrap();
        async move { client.execute(sql, &[&4i32]).await }
    });
    let request = api.pending(&alice, sql).await;
    assert_eq!(request["params"], serde_json::json!(["\\x00000004"]), "{request}");
    assert_eq!(in_database(&env, 4), (1, 0));
    let (status, _, _) = api
        .decide(request["id"].as_str().unwrap(), "approve", &alice, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(prepared.await.unwrap().unwrap(), 1);
    assert_eq!(in_database(&env, 4), (0, 1));

    // Statements that need no approval were never held, and the first session is still usable.
    let count = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 8, "only the approved DELETEs ran");
    let (status, all) = api.get("/approvals?state=all", Some(&alice)).await;
    assert_eq!(status, 200);
    let states: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 7, "{all}");
    assert!(states.iter().all(|s| *s != "pending"), "{states:?}");
    assert_eq!(
        states.iter().filter(|s| **s == "expired").count(),
        2,
        "the held statement nobody decided, and the TRUNCATE ticket past hold_timeout: {states:?}"
    );
    // The ticket's expiry is in the chain of the session that asked.
    let (_, request) = api
        .get(&format!("/approvals/{truncate_request}"), Some(&alice))
        .await;
    let path = env.gateway.dir().join("state").join("audit.db");
    let session = request["session"].as_str().unwrap();
    let events = SqliteStore::open(&path).unwrap().session_events(session).unwrap();
    let actions: Vec<String> = events
        .iter()
        .filter_map(|e| match e.decode().unwrap() {
            EventBody::Approval(a) if a.request == truncate_request => Some(a.action),
            _ => None,
        })
        .collect();
    assert_eq!(actions, ["requested", "expired"]);
}

/// The request id a ticket-mode refusal names.
fn ticket_of(err: &tokio_postgres::Error) -> String {
    let (code, message) = common::db_error(err);
    assert_eq!(code, "42501", "{message}");
    let start = message
        .find("request apr_")
        .unwrap_or_else(|| panic!("no request id: {message}"))
        + 8;
    message[start..].split_whitespace().next().unwrap().to_owned()
}

fn remaining(env: &Env) -> i64 {
    env.pg
        .psql("app", "SELECT count(*) FROM accounts")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn tickets_run_the_approved_statement_as_granted_and_nothing_else() {
    let env = start("ticket", "preview_exact = true").await;
    let api = Api::new(&env);
    let bot = env.mint("bot", &["agents"], "15m");
    let carol = env.mint("carol", &["agents"], "15m");
    let alice = env.mint("alice", &["reviewers"], "15m");
    let client = env.connect_plain("app", &bot).await.unwrap();
    // Each execution deletes one more row, so executions can be counted.
    let sql = "DELETE FROM accounts WHERE id = (SELECT min(id) FROM accounts)";

    // Fails at once, naming the request; sent again before a decision, the same request.
    let id = ticket_of(&client.simple_query(sql).await.unwrap_err());
    assert_eq!(ticket_of(&client.simple_query(sql).await.unwrap_err()), id);
    assert_eq!(remaining(&env), 10);
    let (status, request) = api.get(&format!("/approvals/{id}"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (request["mode"].as_str(), request["state"].as_str()),
        (Some("ticket"), Some("pending"))
    );
    // With preview_exact, the reviewer sees the exact count from a trial run that was rolled back.
    let preview = api.preview(&alice, &id).await;
    assert_eq!(preview["exact_rows"], 1, "{preview}");
    assert_eq!(remaining(&env), 10, "the trial run was rolled back");
    let trial_deletions = env.pg.psql("app", "SELECT count(*) FROM deletions").unwrap();
    assert_eq!(
        trial_deletions.trim(),
        "0",
        "the trigger's work was rolled back too"
    );

    // Approved for one use: the same statement runs once; the third run asks again.
    let (status, decided, _) = api.decide_with(&id, "approve", &alice, None).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["grant"]["uses"], 1);
    client.simple_query(sql).await.unwrap();
    assert_eq!(remaining(&env), 9);
    let next = ticket_of(&client.simple_query(sql).await.unwrap_err());
    assert_ne!(next, id, "a used-up grant is not reused");
    assert_eq!(remaining(&env), 9);

    // Approved for two uses: another identity, or the statement changed by one byte, are not covered.
    let terms = serde_json::json!({ "uses": 2, "valid_for": "1h" });
    let (status, _, _) = api.decide_with(&next, "approve", &alice, Some(terms)).await;
    assert_eq!(status, 200);
    let carols = env.connect_plain("app", &carol).await.unwrap();
    let theirs = ticket_of(&carols.simple_query(sql).await.unwrap_err());
    assert_ne!(theirs, next);
    let changed = format!("{sql} ");
    let other = ticket_of(&client.simple_query(&changed).await.unwrap_err());
    assert_ne!(other, next);
    assert_eq!(remaining(&env), 9);
    client.simple_query(sql).await.unwrap();
    client.simple_query(sql).await.unwrap();
    assert_eq!(remaining(&env), 7);
    assert!(client.simple_query(sql).await.is_err());

    // A grant past its window is not used.
    let last = ticket_of(&client.simple_query(sql).await.unwrap_err());
    let terms = serde_json::json!({ "uses": 5, "valid_for": "1s" });
    let (status, _, _) = api.decide_with(&last, "approve", &alice, Some(terms)).await;
    assert_eq!(status, 200);
    client.simple_query(sql).await.unwrap();
    assert_eq!(remaining(&env), 6);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(client.simple_query(sql).await.is_err());
    assert_eq!(remaining(&env), 6);
    // Through the extended protocol, the grant covers the statement with those parameters only.
    let param_sql = "DELETE FROM accounts WHERE id = $1";
    let id9 = ticket_of(&client.execute(param_sql, &[&9i32]).await.unwrap_err());
    let (status, _, _) = api.decide_with(&id9, "approve", &alice, None).await;
    assert_eq!(status, 200);
    let other_param = ticket_of(&client.execute(param_sql, &[&10i32]).await.unwrap_err());
    assert_ne!(other_param, id9, "other parameters are another statement");
    assert_eq!(client.execute(param_sql, &[&9i32]).await.unwrap(), 1);
    assert_eq!(remaining(&env), 5);

    let (status, body, _) = api
        .decide_with(
            &last,
            "approve",
            &alice,
            Some(serde_json::json!({ "valid_for": "soon" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}
