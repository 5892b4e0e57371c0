//! The shared set-up of the gateway's end-to-end tests: a throwaway PostgreSQL, the gateway binary, tokens.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod browserless;
pub mod trail;

use std::path::Path;

use portcullis_testkit::gateway::GatewayProcess;
use portcullis_testkit::pg::PgCluster;
use portcullis_testkit::ports::{free_addr, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const UPSTREAM_PASSWORD_ENV: &str = "PORTCULLIS_TEST_UPSTREAM_PASSWORD";

/// A running database and a gateway in front of it, with a connection named `app`.
pub struct Env {
    pub pg: PgCluster,
    pub gateway: GatewayProcess,
    pub pg_port: u16,
    pub admin: String,
}

/// What to vary in the gateway's configuration.
pub struct Options {
    pub allow_plaintext: bool,
    /// Extra TOML appended to the generated configuration (e.g. `[[identity.issuers]]`).
    pub extra: String,
    pub upstream_tls: &'static str,
    pub session_grace: &'static str,
    pub log_format: &'static str,
    /// The Cedar policy the gateway loads (written to `policy.cedar` next to the configuration).
    pub policy: String,
    /// `[policy] statement_checks`.
    pub statement_checks: bool,
    /// The admin listener's address (default: a free port).
    pub admin: Option<String>,
}

/// The default test policy: group `agents` may do anything.
pub const PERMIT_AGENTS: &str =
    "@id(\"agents-all\")\npermit(principal in Group::\"agents\", action, resource);\n";

impl Default for Options {
    fn default() -> Self {
        Self {
            allow_plaintext: true,
            extra: String::new(),
            upstream_tls: "require",
            session_grace: "0s",
            log_format: "text",
            policy: PERMIT_AGENTS.to_owned(),
            statement_checks: true,
            admin: None,
        }
    }
}

impl Env {
    pub async fn start(options: Options) -> Env {
        let pg = PgCluster::start_async().await.expect("throwaway PostgreSQL");
        pg.create_role("md5_agent", "upstream-secret-pw", true).unwrap();
        pg.create_role("gateway_login", "upstream-secret-pw", false)
            .unwrap();
        pg.psql("postgres", "CREATE DATABASE app OWNER gateway_login")
            .unwrap();
        let pg_port = free_port().unwrap();
        let admin = options.admin.clone().unwrap_or_else(|| free_addr().unwrap());
        let dir = tempfile::Builder::new()
            .prefix("portcullis-e2e-")
            .tempdir()
            .unwrap();
        let config = format!(
            r#"
[server]
state_dir = "{state}"
log_format = "{log_format}"
[server.postgres]
listen = "127.0.0.1:{pg_port}"
allow_plaintext = {plain}
[server.admin]
listen = "{admin}"
[identity]
session_grace = "{grace}"
[identity.dev_issuer]
enabled = true
[policy]
files = ["policy.cedar"]
statement_checks = {checks}
watch_interval = "200ms"

[[connections]]
name = "app"
protocol = "postgres"
upstream = "127.0.0.1:{upstream}"
database = "app"
user = "gateway_login"
password = "${{{env}}}"
tls = "{tls}"
ca_file = "{ca}"

[[connections]]
name = "down"
protocol = "postgres"
upstream = "127.0.0.1:{dead}"
database = "app"
user = "gateway_login"
password = "${{{env}}}"
tls = "disable"
{extra}
"#,
            state = dir.path().join("state").display(),
            plain = options.allow_plaintext,
            checks = options.statement_checks,
            grace = options.session_grace,
            log_format = options.log_format,
            upstream = pg.port(),
            env = UPSTREAM_PASSWORD_ENV,
            tls = options.upstream_tls,
            ca = pg.ca_cert_path().display(),
            dead = free_port().unwrap(),
            extra = options
                .extra
                .replace("{PG_PORT}", &pg.port().to_string())
                .replace("{PG_CA}", &pg.ca_cert_path().display().to_string()),
        );
        std::fs::write(dir.path().join("policy.cedar"), &options.policy).unwrap();
        let gateway = GatewayProcess::start_in(
            dir,
            Path::new(BIN),
            &config,
            &admin,
            &[(UPSTREAM_PASSWORD_ENV, "upstream-secret-pw")],
        )
        .await
        .expect("gateway starts");
        Env {
            pg,
            gateway,
            pg_port,
            admin,
        }
    }

    /// Mints a development token with the CLI, as a user would.
    pub fn mint(&self, sub: &str, groups: &[&str], ttl: &str) -> String {
        self.gateway
            .mint(Path::new(BIN), &[(UPSTREAM_PASSWORD_ENV, "x")], sub, groups, ttl)
            .unwrap()
    }

    /// A libpq-style connection string to the gateway.
    pub fn conninfo(&self, dbname: &str, token: &str, sslmode: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={dbname} user=agent password={token} sslmode={sslmode}",
            self.pg_port
        )
    }

    /// Connects with tokio-postgres over TLS (certificate not verified: the gateway's is self-signed).
    pub async fn connect_tls(
        &self,
        dbname: &str,
        token: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(insecure_client_config());
        let (client, connection) =
            tokio_postgres::connect(&self.conninfo(dbname, token, "require"), tls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Connects with tokio-postgres without TLS (the listener allows plaintext in most tests).
    pub async fn connect_plain(
        &self,
        dbname: &str,
        token: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.conninfo(dbname, token, "disable"), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs the real `psql` against the gateway; returns (success, stdout, stderr).
    pub fn psql(&self, conninfo: &str, sql: &str) -> (bool, String, String) {
        let out = std::process::Command::new(self.pg.psql_binary())
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                conninfo,
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    }

    /// The admin listener's Prometheus page.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The gateway's log; asserts no secret appears in it.
    pub fn assert_log_free_of(&self, secrets: &[&str]) {
        let log = self.gateway.log().unwrap();
        for secret in secrets {
            assert!(!log.contains(secret), "a secret appeared in the gateway log");
        }
        assert!(
            !log.contains("upstream-secret-pw"),
            "the upstream password appeared in the gateway log"
        );
    }
}

/// The SQLSTATE and message of a failed tokio-postgres call.
pub fn db_error(e: &tokio_postgres::Error) -> (String, String) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("not a database error: {e:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

/// TLS without verifying the gateway's self-signed certificate: the gateway's own `require` mode.
fn insecure_client_config() -> rustls::ClientConfig {
    portcullis_postgres::upstream::unverified_config()
        .unwrap()
        .as_ref()
        .clone()
}

/// The admin API as a tool calls it: `http://<admin listener><path>`, with a bearer token and a JSON body
/// when given. Returns (status, content type, body as JSON or `Null`).
pub async fn admin_call(
    env: &Env,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String, serde_json::Value) {
    let url = format!("http://{}{path}", env.admin);
    let http = reqwest::Client::new();
    let mut request = match method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        other => panic!("no {other} calls in the admin API"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}
