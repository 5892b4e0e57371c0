//! The gateway's side toward the database: md5 and SCRAM logins, verify-full TLS, a refused login, a
//! database restart, and the notices, notifications and GSSENC refusal that clients rely on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{Env, Options, UPSTREAM_PASSWORD_ENV, db_error};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn connection_toml(name: &str, user: &str, tls: &str, ca: &str, password_env: &str) -> String {
    format!(
        "\n[[connections]]\nname = \"{name}\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{{PG_PORT}}\"\ndatabase = \"app\"\nuser = \"{user}\"\npassword = \"${{{password_env}}}\"\ntls = \"{tls}\"\nca_file = \"{ca}\"\n"
    )
}

#[tokio::test]
async fn md5_and_verify_full_upstreams_and_a_refused_login() {
    // The connections reference the cluster's port, known only once it runs: the common set-up fills
    // `{PG_PORT}` in.
    let extra = [
        connection_toml(
            "legacy",
            "md5_agent",
            "verify-full",
            "{PG_CA}",
            UPSTREAM_PASSWORD_ENV,
        ),
        connection_toml("wrongpw", "gateway_login", "require", "{PG_CA}", "HOME"),
    ]
    .concat();
    let env = Env::start(Options {
        extra,
        ..Options::default()
    })
    .await;
    let token = env.mint("agent", &["agents"], "15m");

    let client = match env.connect_plain("legacy", &token).await {
        Ok(client) => client,
        Err(e) => panic!(
            "md5 login over verify-full TLS: {e:?}
{}",
            env.gateway.log().unwrap()
        ),
    };
    let row = client
        .query_one(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "md5_agent");
    assert!(row.get::<_, bool>(1), "the upstream leg is TLS");

    let err = env.connect_plain("wrongpw", &token).await.unwrap_err();
    let (code, message) = db_error(&err);
    assert_eq!(code, "08006");
    assert!(message.contains("refused the gateway's login"), "{message}");
    // The server's words (which name the role) stay in the gateway's log, not the client's error.
    assert!(!message.contains("password authentication failed"));
}

#[tokio::test]
async fn a_database_restart_ends_sessions_cleanly_and_new_ones_work() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("agent", &["agents"], "15m");
    let client = env.connect_plain("app", &token).await.unwrap();
    assert_eq!(
        client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );

    let pg = &env.pg;
    pg.restart().unwrap();
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert!(client.is_closed() || err.as_db_error().is_some(), "{err:?}");

    let again = env
        .connect_plain("app", &token)
        .await
        .expect("a new session after the restart");
    assert_eq!(
        again.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn notices_and_notifications_pass_through() {
    let env = Env::start(Options::default()).await;
    let token = env.mint("agent", &["agents"], "15m");
    let (listener, mut connection) =
        tokio_postgres::connect(&env.conninfo("app", &token, "disable"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            let _ = tx.send(message);
        }
    });
    listener
        .batch_execute("LISTEN jobs; DO $$ BEGIN RAISE NOTICE 'hello from the database'; END $$")
        .await
        .unwrap();
    let notifier = env.connect_plain("app", &token).await.unwrap();
    notifier.batch_execute("NOTIFY jobs, 'job 7'").await.unwrap();

    let mut saw_notice = false;
    let mut saw_notification = false;
    while !(saw_notice && saw_notification) {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("messages arrive")
            .unwrap()
        {
            tokio_postgres::AsyncMessage::Notice(n) => saw_notice |= n.message() == "hello from the database",
            tokio_postgres::AsyncMessage::Notification(n) => {
                saw_notification |= n.channel() == "jobs" && n.payload() == "job 7"
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn gssenc_is_declined_and_the_client_carries_on() {
    let env = Env::start(Options::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", env.pg_port))
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    // The same connection continues with a plain startup and is asked for its password.
    let mut body = 0x0003_0000_i32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0agent\0database\0app\0\0");
    let mut packet = u32::try_from(body.len() + 4).unwrap().to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    tcp.write_all(&packet).await.unwrap();
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(
        head,
        [b'R', 0, 0, 0, 8, 0, 0, 0, 3],
        "AuthenticationCleartextPassword"
    );
}
