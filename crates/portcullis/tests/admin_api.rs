//! The admin API's audit endpoints as an operator's tool calls them: sessions listed, shown, replayed and
//! killed, an identity revoked, over HTTP with an OIDC token, against a real gateway and PostgreSQL; and
//! the OpenAPI document matches what the listener serves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use std::path::Path;

use common::{BIN, Env, Options, UPSTREAM_PASSWORD_ENV, db_error};
use portcullis_testkit::gateway::run_cli;
use serde_json::{Value, json};

/// The admin API, called as an operator's tool would.
struct Api<'a> {
    env: &'a Env,
}

impl Api<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        common::admin_call(self.env, method, path, token, body).await
    }
}

#[tokio::test]
async fn operators_read_kill_and_revoke_through_the_api() {
    let env = Env::start(Options::default()).await;
    let api = Api { env: &env };
    let ops = env.mint("oncall", &["portcullis-operators"], "15m");
    let bot = env.mint("api-bot", &["agents"], "15m");
    let client = env.connect_plain("app", &bot).await.unwrap();
    client.simple_query("SELECT 41 + 1").await.unwrap();

    // Who may ask: operators only, with a token; answers are problem documents.
    let (status, content_type, body) = api.call("GET", "/api/v1/sessions", None, None).await;
    assert_eq!((status, content_type.as_str()), (401, "application/problem+json"));
    assert_eq!(body["status"], 401);
    let (status, _, body) = api.call("GET", "/api/v1/sessions", Some(&bot), None).await;
    assert_eq!((status, body["title"].as_str()), (403, Some("Not an operator")));

    // The session is listed, shown and replayed.
    let (status, _, list) = api
        .call(
            "GET",
            "/api/v1/sessions?subject=api-bot&since=1h",
            Some(&ops),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let id = list[0]["session"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["connection"], "app");
    let deadline = Instant::now() + Duration::from_secs(10);
    let replay = loop {
        let (status, _, replay) = api
            .call("GET", &format!("/api/v1/sessions/{id}/replay"), Some(&ops), None)
            .await;
        assert_eq!(status, 200, "{replay}");
        if replay.as_array().unwrap().iter().any(|e| e["kind"] == "outcome") {
            break replay;
        }
        assert!(Instant::now() < deadline, "no outcome recorded: {replay}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        replay
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "statement" && e["text"] == "SELECT 41 + 1"),
        "{replay}"
    );
    let (status, _, shown) = api
        .call("GET", &format!("/api/v1/sessions/{id}"), Some(&ops), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["session"], id.as_str(), "{shown}");
    assert_eq!(shown["events"][0]["kind"], "session_start", "{shown}");
    assert_eq!(
        shown["related"],
        json!([]),
        "no session of api-bot on another protocol: {shown}"
    );
    let (status, _, _) = api.call("GET", "/api/v1/sessions/nope", Some(&ops), None).await;
    assert_eq!(status, 404);
    let (status, _, body) = api
        .call("GET", "/api/v1/sessions?since=yesterday-ish", Some(&ops), None)
        .await;
    assert_eq!(status, 400, "{body}");

    // The `sessions` commands go through the same API with --api: the gateway renders their text.
    let config = env.gateway.config_path();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--api", "--token", &ops, "--config", config.to_str().unwrap()]);
        let out = run_cli(Path::new(BIN), &all, &[(UPSTREAM_PASSWORD_ENV, "x")]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, listed) = cli(&["sessions", "list", "--subject", "api-bot", "--since", "1h"]);
    assert!(
        ok && listed.contains(&id) && listed.contains("api-bot"),
        "{listed}"
    );
    let (ok, replayed) = cli(&["sessions", "replay", &id]);
    assert!(ok && replayed.contains("SELECT 41 + 1"), "{replayed}");
    let (ok, said) = cli(&["sessions", "verify"]);
    assert!(!ok && said.contains("without --api"), "{said}");

    // Kill: the live session ends; killing it again is a conflict.
    let (status, _, body) = api
        .call("POST", &format!("/api/v1/sessions/{id}/kill"), Some(&ops), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let killed = Instant::now();
    while client.simple_query("SELECT 1").await.is_ok() {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "the session outlived its kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = api
            .call("POST", &format!("/api/v1/sessions/{id}/kill"), Some(&ops), None)
            .await;
        if status == 409 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an ended session can still be killed ({status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Revoke: new sessions of the identity are refused; an end in the past is refused.
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/revoke",
            Some(&ops),
            Some(json!({ "subject": "api-bot", "until": "1h" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match env.connect_plain("app", &bot).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(Instant::now() < deadline, "the revoked identity still connects");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(db_error(&err).0, "28000");
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/revoke",
            Some(&ops),
            Some(json!({ "subject": "x", "until": "2020-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn the_openapi_document_describes_what_the_listener_serves() {
    let env = Env::start(Options::default()).await;
    let api = Api { env: &env };
    let (status, content_type, doc) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{paths:?}");
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "does-not-exist");
            let (status, content_type, _) = api
                .call(&method.to_uppercase(), &concrete, None, Some(json!({})))
                .await;
            // A route the listener does not have answers a bare 404; every documented one answers
            // JSON (its result, or a problem document: here 401, since no token is sent).
            assert!(
                content_type.starts_with("application/json") || content_type == "application/problem+json",
                "{method} {path}: {status} {content_type}"
            );
        }
    }
    let (status, content_type, _) = api.call("GET", "/api/v1/nothing-here", None, None).await;
    assert_eq!(status, 404);
    assert!(
        !content_type.contains("json"),
        "the control case: an unknown route"
    );
}
