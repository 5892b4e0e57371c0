//! PgCluster against the real server: local superuser access, TLS with verify-full, password checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]

use std::process::{Command, Output};

use portcullis_testkit::pg::PgCluster;

/// psql over TCP to `localhost` with verify-full against the cluster's CA, as `user` with `password`.
fn psql_tcp(cluster: &PgCluster, user: &str, password: &str, sql: &str) -> Output {
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={user} \
         sslmode=verify-full sslrootcert={}",
        cluster.port(),
        cluster.ca_cert_path().display()
    );
    Command::new(cluster.psql_binary())
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &conninfo,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env_remove("PGSERVICE")
        .env_remove("PGSSLMODE")
        .output()
        .expect("run psql")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn cluster_serves_socket_tls_and_checks_passwords() {
    let started = std::time::Instant::now();
    let cluster = PgCluster::start().expect("start cluster");
    eprintln!(
        "cluster started in {:?} on port {}",
        started.elapsed(),
        cluster.port()
    );
    assert_ne!(cluster.port(), 5432, "must not be the system server");

    // (a) superuser over the unix socket.
    assert_eq!(cluster.psql("postgres", "SELECT 1 + 1").unwrap(), "2");
    let error = cluster
        .psql("postgres", "SELECT * FROM no_such_table")
        .unwrap_err();
    assert!(format!("{error:#}").contains("no_such_table"), "{error:#}");

    // (b) superuser over TCP with its password, TLS verified against the test CA.
    let (user, password) = cluster.superuser();
    let ssl = psql_tcp(
        &cluster,
        user,
        password,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert_eq!(stdout(&ssl), "t");

    // (c) a wrong password is refused.
    let refused = psql_tcp(&cluster, user, "wrong-password", "SELECT 1");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("password authentication failed"), "{stderr}");

    // Roles: SCRAM and MD5, each stored and checked as asked.
    cluster.create_database("app").unwrap();
    cluster.create_role("scram_role", "s3cret'x", false).unwrap();
    cluster.create_role("md5_role", "md5-secret", true).unwrap();
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT rolname, left(rolpassword, 3) FROM pg_authid \
                 WHERE rolname IN ('scram_role', 'md5_role') ORDER BY rolname"
            )
            .unwrap(),
        "md5_role|md5\nscram_role|SCR"
    );
    assert_eq!(
        stdout(&psql_tcp(
            &cluster,
            "scram_role",
            "s3cret'x",
            "SELECT current_user"
        )),
        "scram_role"
    );
    assert_eq!(
        stdout(&psql_tcp(
            &cluster,
            "md5_role",
            "md5-secret",
            "SELECT current_user"
        )),
        "md5_role"
    );
    assert!(
        !psql_tcp(&cluster, "md5_role", "nope", "SELECT 1")
            .status
            .success()
    );
    assert_eq!(cluster.psql("app", "SELECT current_database()").unwrap(), "app");

    // Restart keeps the port and the data.
    cluster.restart().unwrap();
    cluster.stop().unwrap();
    assert!(cluster.psql("postgres", "SELECT 1").is_err());
    cluster.start_again().unwrap();
    assert_eq!(cluster.psql("app", "SELECT 1").unwrap(), "1");
}

#[tokio::test]
async fn clusters_run_side_by_side() {
    let (a, b) = tokio::join!(PgCluster::start_async(), PgCluster::start_async());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.socket_dir(), b.socket_dir());
    a.create_database("only_in_a").unwrap();
    let query = "SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'";
    assert_eq!(a.psql("postgres", query).unwrap(), "1");
    assert_eq!(b.psql("postgres", query).unwrap(), "0");
    let dir = a.data_dir();
    drop(a);
    assert!(!dir.exists(), "the data dir is removed on drop");
}
