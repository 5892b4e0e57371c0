//! Real clients (psql, tokio-postgres) through the gateway to a real PostgreSQL: queries, prepared
//! statements, pipelining, COPY, cancel, streaming a large result, and sessions ending with their token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Env, Options, db_error};
use futures_util::{SinkExt, StreamExt, TryStreamExt, pin_mut};

#[tokio::test]
async fn psql_over_tls_with_a_minted_token() {
    let env = Env::start(Options {
        allow_plaintext: false,
        ..Options::default()
    })
    .await;
    let token = env.mint("ci-bot", &["agents"], "15m");

    let (ok, out, err) = env.psql(
        &env.conninfo("app", &token, "require"),
        "SELECT current_user || ' ' || current_database()",
    );
    assert!(ok, "psql failed: {err}");
    // The agent's `user` is recorded, but the database sees the gateway's own login.
    assert_eq!(out, "gateway_login app");
    // The upstream leg is TLS too (tls = "require").
    let (ok, out, _) = env.psql(
        &env.conninfo("app", &token, "require"),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert!(ok);
    assert_eq!(out, "t");

    // Without TLS the token is refused before it is even asked for.
    let (ok, _, err) = env.psql(&env.conninfo("app", &token, "disable"), "SELECT 1");
    assert!(!ok);
    assert!(err.contains("TLS is required"), "{err}");
    env.assert_log_free_of(&[&token]);
}

#[tokio::test]
async fn tokio_postgres_simple_prepared_pipelined_copy() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("etl", &["agents"], "15m");
    let client = env.connect_tls("app", &token).await.expect("connect over TLS");

    client
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'one')",
        )
        .await
        .unwrap();

    // Extended protocol, named statement reused with different parameters.
    let insert = client.prepare("INSERT INTO items VALUES ($1, $2)").await.unwrap();
    for i in 2..=5 {
        client.execute(&insert, &[&i, &format!("n{i}")]).await.unwrap();
    }
    // Pipelining: several statements in flight at once on one connection.
    let select = client
        .prepare("SELECT name FROM items WHERE id = $1")
        .await
        .unwrap();
    let futures = (1..=5).map(|i| {
        let client = &client;
        let select = &select;
        async move {
            client
                .query_one(select, &[&i])
                .await
                .map(|r| r.get::<_, String>(0))
        }
    });
    let names = futures_util::future::try_join_all(futures).await.unwrap();
    assert_eq!(names, vec!["one", "n2", "n3", "n4", "n5"]);

    // COPY FROM STDIN.
    let sink = client.copy_in("COPY items FROM STDIN").await.unwrap();
    pin_mut!(sink);
    let data: String = (100..1100).map(|i| format!("{i}\trow{i}\n")).collect();
    sink.send(Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1000);

    // COPY TO STDOUT.
    let stream = client
        .copy_out("COPY (SELECT id FROM items ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(text.lines().count(), 1005);

    // An error leaves the session usable, inside and outside a transaction.
    let err = client
        .simple_query("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "42P01");
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1005
    );
}

#[tokio::test]
async fn cancel_reaches_the_right_backend() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("agent", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    let bystander = env.connect_plain("app", &token).await.unwrap();

    let cancel = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    canceller.await.unwrap().unwrap();
    assert_eq!(db_error(&err).0, "57014", "query_canceled");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The cancelled session and the other one both carry on.
    assert_eq!(
        client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
    assert_eq!(
        bystander
            .query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn a_million_rows_stream_with_bounded_memory() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("reader", &["agents"], "15m");
    let client = env.connect_tls("app", &token).await.unwrap();
    let baseline = env.gateway.rss_kib().unwrap();

    // About 110 MB of rows: far more than the memory bound asserted below.
    let rows = client
        .query_raw(
            "SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g",
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    pin_mut!(rows);
    let mut count = 0u64;
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        count += 1;
        if count == 1 {
            assert_eq!(row.get::<_, i32>(0), 1);
        }
    }
    assert_eq!(count, 1_000_000);
    let peak = env.gateway.peak_rss_kib().unwrap();
    eprintln!("gateway RSS: baseline {baseline} KiB, peak {peak} KiB");
    assert!(
        peak < baseline + 32 * 1024,
        "gateway peak RSS {peak} KiB grew more than 32 MiB over {baseline} KiB"
    );

    // A client that leaves mid-result does not disturb anyone else.
    let quitter = env.connect_plain("app", &token).await.unwrap();
    let mut rows = Box::pin(
        quitter
            .query_raw(
                "SELECT g FROM generate_series(1, 1000000) g",
                std::iter::empty::<i32>(),
            )
            .await
            .unwrap(),
    );
    for _ in 0..1000 {
        rows.next().await.unwrap().unwrap();
    }
    drop(rows);
    drop(quitter);
    assert_eq!(
        client.query_one("SELECT 42", &[]).await.unwrap().get::<_, i32>(0),
        42
    );
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("short-lived", &["agents"], "3s");
    let client = env.connect_plain("app", &token).await.unwrap();
    assert_eq!(
        client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("token expired") || client.is_closed(), "{text}");
    assert!(client.is_closed());
}

#[tokio::test]
async fn refusals_are_native_errors_and_the_gateway_keeps_serving() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("agent", &["agents"], "15m");

    let err = env.connect_plain("nope", &token).await.unwrap_err();
    assert_eq!(db_error(&err).0, "3D000");
    // Without a valid token nobody learns which connections exist.
    let err = env.connect_plain("nope", "not-a-token").await.unwrap_err();
    assert_eq!(db_error(&err).0, "28000");

    let outsider = env.mint("outsider", &["interns"], "15m");
    let err = env.connect_plain("app", &outsider).await.unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "28000");
    assert!(message.contains("not permitted"), "{message}");

    let err = env.connect_plain("down", &token).await.unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "08006");
    assert!(message.contains("unreachable"), "{message}");

    // Garbage bytes and an oversized startup packet: refused, nothing else affected.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0][..],
    ] {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", env.pg_port))
            .await
            .unwrap();
        tcp.write_all(junk).await.unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply)).await;
    }
    // A client that sends a message larger than the limit mid-session.
    let client = env.connect_plain("app", &token).await.unwrap();
    let huge = "x".repeat(70 * 1024 * 1024);
    let err = client
        .simple_query(&format!("SELECT '{huge}'"))
        .await
        .unwrap_err();
    assert!(
        client.is_closed() || format!("{err:?}").contains("08P01"),
        "{err:?}"
    );

    let client = env.connect_plain("app", &token).await.unwrap();
    assert_eq!(
        client.query_one("SELECT 7", &[]).await.unwrap().get::<_, i32>(0),
        7
    );
    env.assert_log_free_of(&[&token, &outsider]);
}

#[tokio::test]
async fn protocol_3_2_is_negotiated_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start(Options::default()).await;
    let mut body = 0x0003_0002_i32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0agent\0database\0app\0_pq_.test_option\0x\0\0");
    let mut packet = u32::try_from(body.len() + 4).unwrap().to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", env.pg_port))
        .await
        .unwrap();
    tcp.write_all(&packet).await.unwrap();
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'v', "NegotiateProtocolVersion first");
    let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; len - 4];
    tcp.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest[..4], &0i32.to_be_bytes(), "newest minor version 0");
    assert!(rest.windows(16).any(|w| w == b"_pq_.test_option"));
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'R', "then the password request");
}
