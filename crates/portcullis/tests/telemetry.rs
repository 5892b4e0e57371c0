//! What operators see: JSON log lines with the session's facts, and Prometheus metrics of the traffic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Env, Options};

#[tokio::test]
async fn json_logs_and_metrics_describe_sessions() {
    let env = Env::start(Options {
        log_format: "json",
        ..Options::default()
    })
    .await;
    let token = env.mint("reporter", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    client.batch_execute("SELECT 1; SELECT 2").await.unwrap();
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let log = env.gateway.log().unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty(), "no JSON log lines in:\n{log}");
    let started = events
        .iter()
        .find(|e| e["message"] == "session started")
        .expect("a session started event");
    assert_eq!(started["connection"], "app");
    assert_eq!(started["principal"], "dev/reporter");
    assert_eq!(started["user"], "agent");
    let ended = events
        .iter()
        .find(|e| e["message"] == "session ended")
        .expect("a session ended event");
    assert_eq!(ended["end"], "client_terminated");
    env.assert_log_free_of(&[&token]);

    let metrics = env.metrics().await;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
    };
    assert_eq!(value("portcullis_sessions_total{connection=\"app\"}"), 1.0);
    assert_eq!(value("portcullis_statements_total{connection=\"app\"}"), 2.0);
    assert!(value("portcullis_bytes_total{connection=\"app\",direction=\"to_client\"}") > 0.0);
    assert!(value("portcullis_bytes_total{connection=\"app\",direction=\"from_client\"}") > 0.0);
    assert_eq!(value("portcullis_sessions_active"), 0.0);
}
