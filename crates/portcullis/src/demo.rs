//! `portcullis demo`: a throwaway PostgreSQL with synthetic customers, the gateway in front of it (in this
//! process), and a scripted agent that reads, is refused, and waits for a reviewer; then the audit trail.
//!
//! Everything is real: PostgreSQL from the installed binaries (`portcullis_testkit::pg`), the gateway's
//! own `serve` with a configuration file written to a temporary directory, tokens from the development
//! issuer, the agent a tokio-postgres client over TLS, approvals through the admin API, and the replay
//! and chain verification of the `sessions` command. Nothing here is a stand-in for the product.
//!
//! The gateway registers its own Ctrl-C and SIGTERM handling, so once it runs an interruption ends its
//! task: the script races that task and stops (with PostgreSQL and the directory cleaned up) when it ends.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use portcullis_audit::{AuditStore as _, SessionFilter, SessionSummary};
use portcullis_core::Secret;
use portcullis_testkit::pg::{BIN_DIR_ENV, NotInstalled, PgCluster};
use portcullis_testkit::ports::free_port;
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

use crate::config::Config;
use crate::{approvals_cli, serve, sessions, telemetry, tls};

/// `portcullis demo`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Let the demo approve the agent's DELETE itself, as demo-reviewer through the admin API, after a
    /// short pause. Without it the demo waits until you approve it in the console or with
    /// `portcullis approvals`.
    #[arg(long)]
    pub auto_approve: bool,
    /// When the script is done, leave PostgreSQL and the gateway running and print a connection string
    /// for your own psql. Ctrl-C stops everything and removes the temporary directory.
    #[arg(long)]
    pub keep_running: bool,
    /// How long the DELETE waits for a reviewer before it fails (the gateway's [approvals] hold_timeout).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub approval_timeout: Duration,
}

/// The connection name agents put in `dbname`, and the database behind it.
const DATABASE: &str = "shop";
/// The gateway's own login to PostgreSQL: agents never learn its password.
const LOGIN: &str = "portcullis_login";
const AGENT: &str = "demo-agent";
const AGENT_GROUP: &str = "agents";
const REVIEWER: &str = "demo-reviewer";
const REVIEWER_GROUPS: [&str; 2] = ["reviewers", "operators"];
const TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How long the auto-approver pretends to read the request.
const AUTO_APPROVE_PAUSE: Duration = Duration::from_millis(1500);
/// How often the demo says it is still waiting for a human.
const WAITING_NOTE_EVERY: Duration = Duration::from_secs(15);
/// The row the agent inserts and then deletes (the seeded customers are 1 to 20).
const TEMP_ID: u32 = 21;

/// The example policies, shipped inside the binary so the demo works from any directory.
const POLICIES: [(&str, &str); 6] = [
    (
        "agents-guarded-writes.cedar",
        include_str!("../../../examples/policies/agents-guarded-writes.cedar"),
    ),
    (
        "no-ddl.cedar",
        include_str!("../../../examples/policies/no-ddl.cedar"),
    ),
    (
        "no-privileges.cedar",
        include_str!("../../../examples/policies/no-privileges.cedar"),
    ),
    (
        "no-file-access.cedar",
        include_str!("../../../examples/policies/no-file-access.cedar"),
    ),
    (
        "unmask-for-dba.cedar",
        include_str!("../../../examples/policies/unmask-for-dba.cedar"),
    ),
    (
        "baseline.cedar",
        include_str!("../../../examples/policies/baseline.cedar"),
    ),
];

/// Runs the demo; returns when the script is done (or, with `--keep-running`, when interrupted).
pub fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "Portcullis demo: a throwaway PostgreSQL with synthetic customers, the gateway in front of it, and \
         a scripted agent going through it."
    );
    heading("starting a throwaway PostgreSQL from the installed binaries");
    let pg = start_postgres()?;
    let upstream_password = random_password();
    seed(&pg, &upstream_password)?;
    detail(&format!(
        "127.0.0.1:{}, database {DATABASE} owned by {LOGIN} (a random password only the gateway holds), \
         table customers with {} synthetic people",
        pg.port(),
        customers().len()
    ));

    // Field order matters on the way out: the runtime (gateway) stops first, then the files go, and
    // PostgreSQL (`pg`, declared first) is stopped last by its Drop.
    let work = Workspace::create(&pg, &upstream_password, args.approval_timeout)?;
    let config = Config::load(&work.config_path())?;
    let log = std::fs::File::create(work.log_path())
        .with_context(|| format!("creating {}", work.log_path().display()))?;
    telemetry::init_logging_to(log);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = runtime.block_on(run_gateway_and_script(&work, config, args));
    // Sessions and listeners are tasks: they end with the runtime. Blocking tasks get a moment.
    runtime.shutdown_timeout(Duration::from_secs(2));
    outcome
}

/// Starts the gateway, runs the script beside it, and with `--keep-running` waits for Ctrl-C.
async fn run_gateway_and_script(work: &Workspace, config: Config, args: &Args) -> anyhow::Result<()> {
    heading(&format!(
        "starting the gateway: PostgreSQL listener 127.0.0.1:{}, admin API 127.0.0.1:{}",
        work.gateway_port, work.admin_port
    ));
    detail(&format!(
        "configuration {}, log {}",
        work.config_path().display(),
        work.log_path().display()
    ));
    let mut gateway = tokio::spawn(serve::serve(config.clone()));
    tokio::select! {
        ready = wait_until_serving(work.admin_port) => ready?,
        ended = &mut gateway => return Err(gateway_ended(ended, work)),
    }
    let demo = Demo::new(work, &config)?;
    tokio::select! {
        done = demo.script(args) => done?,
        ended = &mut gateway => return Err(gateway_ended(ended, work)),
    }
    if !args.keep_running {
        println!(
            "\nEverything ran in {} and is removed now; run `portcullis demo --keep-running` to stay and \
             explore.",
            work.dir.path().display()
        );
        return Ok(());
    }
    demo.print_keep_running()?;
    match gateway.await {
        Ok(Ok(())) => {
            println!(
                "\nstopping: the gateway, then PostgreSQL; removing {}",
                work.dir.path().display()
            );
            Ok(())
        }
        ended => Err(gateway_ended(ended, work)),
    }
}

/// What the script needs: where things listen, the tokens, the files to point the user at.
struct Demo<'a> {
    work: &'a Workspace,
    agent: Secret<String>,
    reviewer: Secret<String>,
    config: &'a Config,
    /// The clients' TLS: libpq's `sslmode=require` (encrypted; the gateway's self-signed development
    /// certificate is not verified).
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl<'a> Demo<'a> {
    fn new(work: &'a Workspace, config: &'a Config) -> anyhow::Result<Demo<'a>> {
        let agent = mint(config, AGENT, &[AGENT_GROUP])?;
        let reviewer = mint(config, REVIEWER, &REVIEWER_GROUPS)?;
        tls::write_private(&work.reviewer_token_path(), reviewer.expose().as_bytes())?;
        heading(&format!(
            "tokens from the development issuer, valid {}: {AGENT} (group {AGENT_GROUP}) and {REVIEWER} \
             (groups {})",
            humantime::format_duration(TOKEN_TTL),
            REVIEWER_GROUPS.join(", ")
        ));
        detail(&format!(
            "the reviewer's token is in {}",
            work.reviewer_token_path().display()
        ));
        Ok(Demo {
            work,
            agent,
            reviewer,
            config,
            tls: portcullis_postgres::upstream::unverified_config().context("the agent's TLS settings")?,
        })
    }

    /// The agent's story, one heading per step, then the audit trail.
    async fn script(&self, args: &Args) -> anyhow::Result<()> {
        heading(&format!(
            "the agent connects: {} password=<its token>",
            self.conninfo()
        ));
        detail("the token is the only credential; the database password stays in the gateway");
        let client = self.connect_agent().await?;
        agent_says(&client, "SELECT current_user AS database_login").await?;

        heading(
            "1. the agent reads customers: emails come back as stable pseudonyms (hash), cards keep their \
             last four digits (partial), phone numbers, keys and card numbers in free text are redacted",
        );
        agent_says(
            &client,
            "SELECT id, name, email, phone, card, notes FROM customers ORDER BY id LIMIT 8",
        )
        .await?;

        heading("2. the agent tries to drop the table: the policy refuses it and says which policy");
        agent_says(&client, "DROP TABLE customers").await?;

        detail("");
        detail("an identity whose groups no policy lets connect (intern, group interns) is turned away:");
        self.try_outsider().await?;

        heading("3. an UPDATE without WHERE is refused; a guarded UPDATE is allowed");
        agent_says(&client, "UPDATE customers SET email = NULL").await?;
        agent_says(&client, "UPDATE customers SET name = 'Ava O.' WHERE id = 1").await?;

        heading(
            "4. a DELETE needs a human's approval (@approval(\"required\") in agents-guarded-writes.cedar): \
             the agent's statement waits",
        );
        agent_says(
            &client,
            &format!("INSERT INTO customers (id, name) VALUES ({TEMP_ID}, 'Temporary Customer')"),
        )
        .await?;
        self.delete_with_approval(&client, args).await?;
        // The session ends here, so the replay below shows its end too.
        drop(client);

        self.print_audit().await
    }

    /// Sends the DELETE and, while the gateway holds it, finds the request and gets it approved: by the
    /// demo itself with `--auto-approve`, else by the user (the console or the CLI).
    async fn delete_with_approval(&self, client: &tokio_postgres::Client, args: &Args) -> anyhow::Result<()> {
        let sql = format!("DELETE FROM customers WHERE id = {TEMP_ID}");
        println!("    agent> {sql}");
        let delete = run_sql(client, &sql);
        tokio::pin!(delete);
        let request = tokio::select! {
            reply = &mut delete => {
                print_reply(&sql, &reply?);
                bail!("the DELETE was not held for approval; check [approvals] in {}", self.work.config_path().display());
            }
            request = self.pending_request() => request?,
        };
        let id = request
            .get("id")
            .and_then(Value::as_str)
            .context("an approval request without an id")?
            .to_owned();
        detail(&format!(
            "held by the gateway as approval request {}; pending requests:",
            sessions::one_line(&id)
        ));
        for line in approvals_cli::render_list(&Value::Array(vec![request.clone()])).lines() {
            println!("      {line}");
        }
        let admin = format!("http://127.0.0.1:{}", self.work.admin_port);
        println!(
            "\n    Approve it in the console: {admin}/console/approvals (sign in with the development \
             sign-in as {REVIEWER}, group reviewers)"
        );
        println!(
            "    or on the command line:   {} approvals approve {} --config {} --token \"$(cat {})\"\n",
            program(),
            sessions::one_line(&id),
            self.work.config_path().display(),
            self.work.reviewer_token_path().display()
        );

        if args.auto_approve {
            detail(&format!(
                "--auto-approve: {REVIEWER} approves it through the admin API in {} s",
                AUTO_APPROVE_PAUSE.as_secs_f32()
            ));
            tokio::time::sleep(AUTO_APPROVE_PAUSE).await;
            let body = serde_json::json!({ "reason": "demo auto-approve" });
            approvals_cli::call_text(
                &admin,
                self.reviewer.expose(),
                reqwest::Method::POST,
                &["approvals", &id, "approve"],
                &[],
                Some(body),
            )
            .await
            .context("approving the request through the admin API")?;
            detail(&format!(
                "approved by {REVIEWER} (POST /api/v1/approvals/{{id}}/approve)"
            ));
        } else {
            detail(&format!(
                "waiting for your decision (at most {}: the gateway's hold_timeout)",
                humantime::format_duration(args.approval_timeout)
            ));
        }

        let started = Instant::now();
        let mut note = tokio::time::interval_at(
            tokio::time::Instant::now() + WAITING_NOTE_EVERY,
            WAITING_NOTE_EVERY,
        );
        let reply = loop {
            tokio::select! {
                reply = &mut delete => break reply?,
                _ = note.tick() => detail(&format!(
                    "still waiting for a reviewer ({}s)",
                    started.elapsed().as_secs()
                )),
            }
        };
        match reply {
            Reply::Done { .. } => detail("the agent's statement, released:"),
            Reply::Error { .. } => detail("not approved: the agent gets an error, and the DELETE never ran:"),
        }
        print_reply(&sql, &reply);
        Ok(())
    }

    /// The agent's pending request, as the admin API lists it to a reviewer; it appears as soon as the
    /// gateway holds the statement.
    async fn pending_request(&self) -> anyhow::Result<Value> {
        let admin = format!("http://127.0.0.1:{}", self.work.admin_port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = approvals_cli::call_text(
                &admin,
                self.reviewer.expose(),
                reqwest::Method::GET,
                &["approvals"],
                &[],
                None,
            )
            .await
            .context("listing approval requests through the admin API")?;
            let list: Value = serde_json::from_str(&text).context("reading the approval requests")?;
            let mine = list.as_array().and_then(|requests| {
                requests
                    .iter()
                    .find(|r| r.get("requester_subject").and_then(Value::as_str) == Some(AGENT))
            });
            if let Some(request) = mine {
                return Ok(request.clone());
            }
            if Instant::now() > deadline {
                bail!("the held DELETE did not appear in /api/v1/approvals within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Step 5: the replay of the agent's session and the whole chain verified, as `sessions replay` and
    /// `sessions verify` print them.
    async fn print_audit(&self) -> anyhow::Result<()> {
        let store = self.config.audit_path();
        let audit = tokio::task::spawn_blocking(move || read_audit(&store))
            .await
            .context("the audit reader task")??;
        heading("5. the audit trail: the replay of the agent's session (portcullis sessions replay)");
        indented(&audit.replay);
        detail("");
        detail("the hash chain of the whole store, verified (portcullis sessions verify):");
        indented(&audit.verify);
        if !audit.chain_ok {
            bail!("the audit chain did not verify");
        }

        let admin = format!("http://127.0.0.1:{}", self.work.admin_port);
        heading("6. where to look next");
        detail(&format!("console:  {admin}/console/"));
        detail(&format!("metrics:  {admin}/metrics"));
        detail(&format!("admin API: {admin}/api/v1/openapi.json"));
        detail(&format!("gateway log: {}", self.work.log_path().display()));
        Ok(())
    }

    /// With `--keep-running`: a fresh token and the connection string for the user's own psql.
    fn print_keep_running(&self) -> anyhow::Result<()> {
        let token = mint(self.config, AGENT, &[AGENT_GROUP])?;
        heading("still running; press Ctrl-C to stop PostgreSQL and the gateway and remove everything");
        detail(&format!(
            "connect as the agent (the token is valid {}):",
            humantime::format_duration(TOKEN_TTL)
        ));
        println!("      psql \"{} password={}\"", self.conninfo(), token.expose());
        detail("another token when it expires:");
        println!(
            "      {} token mint --config {} --sub {AGENT} --group {AGENT_GROUP} --ttl 30m",
            program(),
            self.work.config_path().display()
        );
        detail("the audit trail:");
        println!(
            "      {} sessions list --config {}",
            program(),
            self.work.config_path().display()
        );
        Ok(())
    }

    /// A valid token of a group the policies do not know: the session never opens (`FATAL 28000`).
    async fn try_outsider(&self) -> anyhow::Result<()> {
        let token = mint(self.config, "intern", &["interns"])?;
        match self.connect("intern", &token).await {
            Ok(_) => bail!("the gateway let an identity of group interns connect; check the policies"),
            Err(error) => match error.as_db_error() {
                Some(db) => println!(
                    "           {} {}: {}",
                    db.severity(),
                    db.code().code(),
                    sessions::one_line(db.message())
                ),
                None => return Err(error).context("connecting as intern through the gateway"),
            },
        }
        Ok(())
    }

    /// The agent's libpq connection string, without the password.
    fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={DATABASE} user={AGENT} sslmode=require",
            self.work.gateway_port
        )
    }

    /// The agent's client: TLS as libpq's `sslmode=require` does it, the token as the password.
    async fn connect_agent(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.connect(AGENT, &self.agent)
            .await
            .context("the agent's connection through the gateway")
    }

    /// A client session through the gateway as `user` with `token`.
    async fn connect(
        &self,
        user: &str,
        token: &Secret<String>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.work.gateway_port)
            .dbname(DATABASE)
            .user(user)
            .password(token.expose())
            .application_name("portcullis-demo")
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls.as_ref().clone());
        let (client, connection) = config.connect(tls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("    (a demo client connection ended: {e})");
            }
        });
        Ok(client)
    }
}

/// The temporary directory of one demo run: configuration, policies, secrets, gateway state and log.
struct Workspace {
    dir: tempfile::TempDir,
    gateway_port: u16,
    admin_port: u16,
}

impl Workspace {
    /// Writes the policies, the upstream password and the configuration.
    fn create(
        pg: &PgCluster,
        upstream_password: &str,
        approval_timeout: Duration,
    ) -> anyhow::Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-demo-")
            .tempdir()
            .context("creating a temporary directory for the demo")?;
        let work = Workspace {
            dir,
            gateway_port: free_port()?,
            admin_port: free_port()?,
        };
        let policies = work.dir.path().join("policies");
        std::fs::create_dir(&policies).with_context(|| format!("creating {}", policies.display()))?;
        for (name, text) in POLICIES {
            let path = policies.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        tls::write_private(&work.password_path(), upstream_password.as_bytes())?;
        let config = work.config_text(pg.port(), approval_timeout);
        std::fs::write(work.config_path(), config)
            .with_context(|| format!("writing {}", work.config_path().display()))?;
        Ok(work)
    }

    /// The configuration, as an operator would write it (see examples/portcullis.toml for every key).
    fn config_text(&self, pg_port: u16, approval_timeout: Duration) -> String {
        let quoted = |path: PathBuf| toml::Value::String(path.display().to_string()).to_string();
        let files: Vec<String> = POLICIES
            .iter()
            .map(|(name, _)| format!("\"policies/{name}\""))
            .collect();
        format!(
            r#"# Written by `portcullis demo`: the gateway in front of a throwaway PostgreSQL.

[server]
state_dir = {state}

[server.postgres]
listen = "127.0.0.1:{gateway}"

[server.admin]
listen = "127.0.0.1:{admin}"
operators_group = "operators"

[identity.dev_issuer]
enabled = true

[policy]
files = [{files}]

[approvals]
enabled = true
hold_timeout = "{timeout}"
reviewers_group = "reviewers"

# Column rules win for their columns; the detectors scan every other text value.
[[masking.rules]]
columns = ["*.email"]
strategy = "hash"

[[masking.rules]]
columns = ["*.card"]
strategy = "partial"
keep = 4

[[masking.rules]]
detectors = ["phone", "aws_access_key_id", "payment_card", "email"]
strategy = "redact"

[[connections]]
name = "{DATABASE}"
protocol = "postgres"
upstream = "127.0.0.1:{pg_port}"
database = "{DATABASE}"
user = "{LOGIN}"
password_file = {password}
tls = "require"
"#,
            state = quoted(self.dir.path().join("state")),
            gateway = self.gateway_port,
            admin = self.admin_port,
            files = files.join(", "),
            timeout = humantime::format_duration(approval_timeout),
            password = quoted(self.password_path()),
        )
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.toml")
    }

    fn password_path(&self) -> PathBuf {
        self.dir.path().join("upstream-password")
    }

    fn reviewer_token_path(&self) -> PathBuf {
        self.dir.path().join("reviewer-token")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }
}

/// The throwaway cluster; missing binaries are one line of advice, not a chain of errors.
fn start_postgres() -> anyhow::Result<PgCluster> {
    PgCluster::start().map_err(|error| match error.downcast_ref::<NotInstalled>() {
        Some(not_installed) => anyhow!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package \
             (apt-get install postgresql), or set {BIN_DIR_ENV} to the directory that holds them ({})",
            not_installed.missing
        ),
        None => error.context("starting a throwaway PostgreSQL"),
    })
}

/// The gateway's login, the `shop` database it owns, and the customers table.
fn seed(pg: &PgCluster, upstream_password: &str) -> anyhow::Result<()> {
    pg.create_role(LOGIN, upstream_password, false)?;
    pg.psql("postgres", &format!("CREATE DATABASE {DATABASE} OWNER {LOGIN};"))?;
    let mut sql = format!(
        "SET ROLE {LOGIN};\n\
         CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, phone text, card text, \
         notes text);\n\
         INSERT INTO customers VALUES\n"
    );
    let rows: Vec<String> = customers()
        .iter()
        .map(|c| {
            format!(
                "  ({}, {}, {}, {}, {}, {})",
                c.id,
                literal(&c.name),
                literal(&c.email),
                literal(&c.phone),
                literal(&c.card),
                literal(&c.notes)
            )
        })
        .collect();
    sql.push_str(&rows.join(",\n"));
    sql.push_str(";\n");
    pg.psql(DATABASE, &sql).context("seeding the customers table")?;
    Ok(())
}

/// One synthetic customer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Customer {
    id: u32,
    name: String,
    email: String,
    phone: String,
    card: String,
    notes: String,
}

const FIRST_NAMES: [&str; 20] = [
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemi", "Liam", "Mei",
    "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
];
const LAST_NAMES: [&str; 20] = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Novak",
    "Haddad",
    "Costa",
    "Brennan",
    "Kowalski",
    "Rahman",
    "Silva",
    "Fischer",
    "Nakamura",
    "Dubois",
    "Petrov",
    "Mensah",
    "Larsen",
    "Ortiz",
    "Weber",
    "Chen",
];

/// Twenty made-up people, the same every run: names from two lists, emails at example.com and
/// example.org (reserved for documentation), phone numbers from the ranges kept for fiction (NANP
/// 555-01xx, UK 020 7946 0xxx), Visa-shaped card numbers with a valid Luhn check digit, and notes that
/// carry a secret, a phone number, an email or a card number in free text.
fn customers() -> Vec<Customer> {
    FIRST_NAMES
        .iter()
        .zip(LAST_NAMES.iter().cycle().skip(7).step_by(3))
        .zip(1u32..)
        .map(|((first, last), id)| {
            let email = format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase());
            let phone = if id % 2 == 0 {
                format!("+1 212 555 01{:02}", id)
            } else {
                format!("+44 20 7946 0{:03}", id * 37)
            };
            let card = card_number(id);
            let notes = match id % 5 {
                0 => format!("paid with {card} last time"),
                1 => "key AKIAIOSFODNN7EXAMPLE pasted by mistake".to_owned(),
                2 => format!("call {phone} after 5pm"),
                3 => format!("invoices to {}.billing@example.org", first.to_lowercase()),
                _ => "leave the parcel with the neighbour".to_owned(),
            };
            Customer {
                id,
                name: format!("{first} {last}"),
                email,
                phone,
                card,
                notes,
            }
        })
        .collect()
}

/// A 16-digit Visa-shaped number (`4000 …`) derived from `id`, with its Luhn check digit, in groups of four.
fn card_number(id: u32) -> String {
    let body = format!("400000{:09}", (u64::from(id) * 7_919_113) % 1_000_000_000);
    let digits = format!("{body}{}", luhn_check_digit(&body));
    let groups: Vec<String> = digits
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect();
    groups.join(" ")
}

/// The digit that makes `body` followed by it pass the Luhn check.
fn luhn_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| match i % 2 {
            // Every second digit from the right, starting with the one next to the check digit, is doubled.
            0 if d * 2 > 9 => d * 2 - 9,
            0 => d * 2,
            _ => d,
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Mints a development token for the demo's identities.
fn mint(config: &Config, subject: &str, groups: &[&str]) -> anyhow::Result<Secret<String>> {
    serve::mint_dev_token(
        config,
        subject.to_owned(),
        groups.iter().map(|g| (*g).to_owned()).collect(),
        TOKEN_TTL,
    )
}

/// What a statement sent through the gateway came back with.
#[derive(Debug)]
enum Reply {
    /// Rows (possibly none) and the count the command tag gave.
    Done {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        count: u64,
    },
    /// An error from the gateway or the database, as the client sees it.
    Error {
        severity: String,
        code: String,
        message: String,
    },
}

/// Prints the statement, runs it as the agent, prints what came back.
async fn agent_says(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<()> {
    println!("    agent> {sql}");
    let reply = run_sql(client, sql).await?;
    print_reply(sql, &reply);
    Ok(())
}

/// One simple-protocol query, as psql sends it. An error the server or gateway sends is a [`Reply`];
/// a broken connection is an error.
async fn run_sql(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<Reply> {
    let messages = match client.simple_query(sql).await {
        Ok(messages) => messages,
        Err(error) => {
            let Some(db) = error.as_db_error() else {
                return Err(error).with_context(|| format!("the agent's statement {sql:?}"));
            };
            return Ok(Reply::Error {
                severity: db.severity().to_owned(),
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            });
        }
    };
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut count = 0;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = description.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                let cells = (0..row.len())
                    .map(|i| {
                        row.try_get(i)
                            .map(|v| v.map(sessions::one_line).unwrap_or_default())
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .context("reading a row")?;
                rows.push(cells);
            }
            SimpleQueryMessage::CommandComplete(n) => count = n,
            _ => {}
        }
    }
    Ok(Reply::Done { columns, rows, count })
}

/// Rows as a table, a command tag as psql prints it, an error as `ERROR <code>: <message>`.
fn print_reply(sql: &str, reply: &Reply) {
    match reply {
        Reply::Done { columns, rows, .. } if !columns.is_empty() => {
            let mut table = String::new();
            for line in sessions::plain_table(columns, rows).lines() {
                let _ = writeln!(table, "{line}");
            }
            let _ = writeln!(
                table,
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            );
            for line in table.lines() {
                println!("           {line}");
            }
        }
        Reply::Done { count, .. } => println!("           {}", command_tag(sql, *count)),
        Reply::Error {
            severity,
            code,
            message,
        } => println!("           {severity} {code}: {}", sessions::one_line(message)),
    }
}

/// `INSERT 0 1`, `UPDATE 1`, `DELETE 1`: the tag psql would show (the simple protocol through
/// tokio-postgres gives only the count).
fn command_tag(sql: &str, count: u64) -> String {
    let verb = sql.split_whitespace().next().unwrap_or_default().to_uppercase();
    match verb.as_str() {
        "INSERT" => format!("INSERT 0 {count}"),
        _ => format!("{verb} {count}"),
    }
}

/// What step 5 prints, read from the store off the runtime's worker threads.
#[derive(Debug)]
struct AuditText {
    replay: String,
    verify: String,
    chain_ok: bool,
}

/// The agent's session (once its end is recorded, or after 5 s) replayed, and the chain verified.
fn read_audit(path: &Path) -> anyhow::Result<AuditText> {
    let mut store = sessions::open_store_at(path)?;
    let filter = SessionFilter {
        subject: Some(AGENT.to_owned()),
        connection: None,
        since_us: None,
        until_us: None,
        limit: Some(1),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let session: SessionSummary = loop {
        let newest = store.sessions(&filter)?.into_iter().next();
        match newest {
            Some(s) if s.ended_us.is_some() || Instant::now() > deadline => break s,
            None if Instant::now() > deadline => bail!("no session of {AGENT} in the audit store"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let events = sessions::load_session(&mut store, &session.session)?;
    let replay = sessions::render_replay(&session.session, &sessions::timeline(&events));
    let report = portcullis_audit::verify(&mut store)?;
    Ok(AuditText {
        replay,
        verify: sessions::render_verify(&report),
        chain_ok: report.broken.is_none(),
    })
}

/// Waits for the admin listener's `/healthz` (the PostgreSQL listener is bound before it).
async fn wait_until_serving(admin_port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{admin_port}/healthz");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the gateway did not answer {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why the gateway's task ended before the demo did: Ctrl-C or SIGTERM (it returns `Ok`), or a failure.
fn gateway_ended(
    ended: Result<anyhow::Result<()>, tokio::task::JoinError>,
    work: &Workspace,
) -> anyhow::Error {
    match ended {
        Ok(Ok(())) => {
            anyhow!("interrupted: the gateway and PostgreSQL are stopped and the temporary files removed")
        }
        Ok(Err(error)) => error.context(format!(
            "the gateway stopped (its log: {})",
            work.log_path().display()
        )),
        Err(error) => anyhow!("the gateway's task failed: {error}"),
    }
}

/// The name to show in commands the user may copy: the path of this binary, else `portcullis`.
fn program() -> String {
    std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "portcullis".to_owned())
}

fn heading(text: &str) {
    println!("\n==> {text}");
}

fn detail(text: &str) {
    if text.is_empty() {
        println!();
    } else {
        println!("    {text}");
    }
}

fn indented(text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("    {line}");
        }
    }
}

/// An SQL string literal (the seed runs with standard_conforming_strings on).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The gateway's password for its PostgreSQL login: 128 random bits, hex.
fn random_password() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_pass_luhn() {
        // Published test numbers check out, and so does every generated one.
        assert_eq!(luhn_check_digit("411111111111111"), 1);
        assert_eq!(luhn_check_digit("555555555555444"), 4);
        for customer in customers() {
            let digits: String = customer.card.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(digits.len(), 16, "{}", customer.card);
            let (body, check) = digits.split_at(15);
            assert_eq!(luhn_check_digit(body).to_string(), check, "{}", customer.card);
        }
    }

    #[test]
    fn customers_are_twenty_distinct_people() {
        let all = customers();
        assert_eq!(all.len(), 20);
        let emails: std::collections::HashSet<_> = all.iter().map(|c| &c.email).collect();
        assert_eq!(emails.len(), 20);
        assert_eq!(all[0].email, "ava.brennan@example.com");
        assert_eq!(all, customers(), "the same every run");
    }

    #[test]
    fn the_config_loads() {
        let work = Workspace {
            dir: tempfile::tempdir().unwrap(),
            gateway_port: 6432,
            admin_port: 9187,
        };
        tls::write_private(&work.password_path(), b"secret").unwrap();
        let policies = work.dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        for (name, text) in POLICIES {
            std::fs::write(policies.join(name), text).unwrap();
        }
        std::fs::write(
            work.config_path(),
            work.config_text(5432, Duration::from_secs(600)),
        )
        .unwrap();
        let config = Config::load(&work.config_path()).unwrap();
        assert_eq!(config.load_policies().unwrap().len(), 15);
        assert_eq!(config.approvals.hold_timeout, Duration::from_secs(600));
    }
}
