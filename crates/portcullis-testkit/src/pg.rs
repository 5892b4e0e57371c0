//! A throwaway PostgreSQL cluster (own data dir, free loopback port, TLS from a test CA) for one test.
//!
//! The API is blocking (`std::process`): `PgCluster::start` takes about 2 s (initdb, then
//! `pg_ctl -w start`). From a `#[tokio::test]` call [`PgCluster::start_async`], which runs it on the
//! blocking pool, or call `start` directly before anything else runs on the runtime.
//!
//! Several clusters may run at once, in one process or many: each has its own temporary directory
//! (data dir, unix socket, log, certificates) and its own port. Nothing is shared with the system's
//! PostgreSQL.
//!
//! initdb and the server refuse to run as root. When the tests run as root (as on the project's
//! machines), every server command runs as the `postgres` system user (`Command::uid`/`gid`, which drop
//! supplementary groups too) and the temporary directory, under /tmp, is owned by that user with mode
//! 0700. Root's own commands (psql, the tests) read it through root's privileges.
//!
//! If the test process is killed with SIGKILL, Drop does not run and the server keeps running until
//! someone stops it; with any ordinary failure (error, panic) Drop stops it.
//!
//! `portcullis demo` runs its throwaway database on this too: when the binaries are missing, the error
//! is a [`NotInstalled`], which the demo turns into its own one-line advice.

use std::fmt;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::ports::free_port;

/// The superuser that initdb creates.
const SUPERUSER: &str = "postgres";
/// Roles that log in over TCP with MD5 rather than SCRAM: members of this group (see `create_role`).
pub const MD5_GROUP: &str = "md5_roles";
/// Where Debian's packages install each major version's server binaries.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";
/// Overrides the search for the server binaries (a `bin` directory holding initdb, pg_ctl, psql).
pub const BIN_DIR_ENV: &str = "PORTCULLIS_PG_BIN_DIR";
/// How often to try another port when one taken between `free_port` and the server's bind.
const START_ATTEMPTS: usize = 3;
/// libpq and server variables that would change what our commands connect to or where data lives.
pub const INHERITED_PG_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGOPTIONS",
    "PGDATA",
    "PGTZ",
    "PGCLIENTENCODING",
];

/// A running (or stopped, see [`PgCluster::stop`]) PostgreSQL cluster in a temporary directory.
pub struct PgCluster {
    bin_dir: PathBuf,
    psql: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    password: String,
    /// Last field: dropped (deleted) after `Drop::drop` has stopped the server.
    dir: TempDir,
}

/// PostgreSQL's programs are not where we look: the server binaries, psql beside them, or (as root) the
/// `postgres` system user that Debian's packages create. What is missing is in `missing`.
#[derive(Debug)]
pub struct NotInstalled {
    pub missing: String,
}

impl fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgreSQL is not installed where we look ({}). Install Debian's packages (apt-get install -y \
             postgresql postgresql-client; the project's test command does this) or set {BIN_DIR_ENV}.",
            self.missing
        )
    }
}

impl std::error::Error for NotInstalled {}

fn not_installed(missing: String) -> anyhow::Error {
    anyhow::Error::new(NotInstalled { missing })
}

/// The unprivileged user that server commands run as when we are root.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl fmt::Debug for PgCluster {
    /// Leaves out the superuser password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("bin_dir", &self.bin_dir)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl PgCluster {
    /// Creates and starts a new cluster. Blocking; about 2 s, more on a loaded machine.
    pub fn start() -> anyhow::Result<PgCluster> {
        let bin_dir = find_bin_dir()?;
        let psql = find_psql(&bin_dir)?;
        let run_as = run_as()?;
        // As root the directory must be reachable by `postgres`; /tmp is, a TMPDIR under /root may not be.
        let mut builder = tempfile::Builder::new();
        builder.prefix("portcullis-pg-");
        let dir = match run_as {
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .context("create a temporary directory for PostgreSQL")?;
        let mut cluster = PgCluster {
            bin_dir,
            psql,
            run_as,
            port: 0,
            password: random_hex(16)?,
            dir,
        };
        cluster.own(cluster.dir.path(), 0o700)?;
        cluster.init()?;
        cluster.start_on_free_port()?;
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {} NOLOGIN;", quote_ident(MD5_GROUP)),
        )?;
        Ok(cluster)
    }

    /// [`PgCluster::start`] on tokio's blocking pool, for async tests.
    pub async fn start_async() -> anyhow::Result<PgCluster> {
        tokio::task::spawn_blocking(PgCluster::start)
            .await
            .context("PostgreSQL start task")?
    }

    /// The TCP port, on [`PgCluster::host`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The only address the server listens on.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// Name and password of the superuser.
    pub fn superuser(&self) -> (&str, &str) {
        (SUPERUSER, &self.password)
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`); local connections are trusted.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// PEM file of the test CA that signed the server certificate (CN and SAN `localhost`, SAN
    /// 127.0.0.1), for `sslmode=verify-full`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server log (`pg_ctl -l`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The psql binary this cluster uses (same version as the server), for tests that run it themselves.
    pub fn psql_binary(&self) -> &Path {
        &self.psql
    }

    /// A libpq key/value connection string for the superuser over TCP with its password, database
    /// `postgres`. No `sslmode`: libpq's and tokio-postgres's default (`prefer`) applies.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres", SUPERUSER, &self.password)
    }

    /// A libpq key/value connection string over TCP for any database, role and password.
    pub fn connection_string_for(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "host={} port={} dbname={} user={} password={}",
            self.host(),
            self.port,
            quote_conninfo(db),
            quote_conninfo(user),
            quote_conninfo(password)
        )
    }

    /// Runs `sql` with the psql binary as the superuser over the unix socket and returns its output,
    /// trimmed: unaligned, tuples only, no command tags (`-X -A -t -q -v ON_ERROR_STOP=1`). The script
    /// is read from stdin, so each statement runs on its own (CREATE DATABASE may follow another
    /// statement). The error carries psql's stderr.
    pub fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let port = self.port.to_string();
        let mut command = Command::new(&self.psql);
        command
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &port, "-U", SUPERUSER, "-d", db, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in INHERITED_PG_VARS {
            command.env_remove(var);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("run {}", self.psql.display()))?;
        let mut stdin = child.stdin.take().context("psql stdin")?;
        // Written from another thread so a large result cannot fill stdout while we still write.
        let output = std::thread::scope(|scope| {
            let writer = scope.spawn(move || stdin.write_all(sql.as_bytes()));
            let output = child.wait_with_output();
            let written = writer.join().map_err(|_| anyhow!("psql stdin writer panicked"))?;
            // A broken pipe here means psql stopped early; its stderr says why.
            if let Err(error) = written
                && error.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(error).context("write SQL to psql");
            }
            output.context("wait for psql")
        })?;
        if !output.status.success() {
            bail!(
                "psql on database {db:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `CREATE DATABASE <name>`, owned by the superuser.
    pub fn create_database(&self, name: &str) -> anyhow::Result<()> {
        self.psql("postgres", &format!("CREATE DATABASE {};", quote_ident(name)))?;
        Ok(())
    }

    /// Creates a login role. With `md5`, its password is stored as an MD5 hash and the role joins
    /// [`MD5_GROUP`], whose members log in over TCP with MD5; other roles use SCRAM-SHA-256.
    pub fn create_role(&self, name: &str, password: &str, md5: bool) -> anyhow::Result<()> {
        let role = quote_ident(name);
        let password = quote_literal(password);
        let sql = if md5 {
            format!(
                "SET password_encryption = 'md5';\n\
                 CREATE ROLE {role} LOGIN PASSWORD {password} IN ROLE {};",
                quote_ident(MD5_GROUP)
            )
        } else {
            format!("CREATE ROLE {role} LOGIN PASSWORD {password};")
        };
        self.psql("postgres", &sql)
            .with_context(|| format!("create role {name:?}"))?;
        Ok(())
    }

    /// Stops the server (fast shutdown: sessions are disconnected) and waits until it is down.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-w", "-m", "fast"])
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["start", "-w", "-t", "30", "-s"])
    }

    /// Stops and starts the server (fast shutdown), same port.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["restart", "-w", "-t", "30", "-m", "fast", "-s"])
    }

    /// The last `lines` lines of the server log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&fs::read_to_string(self.log_path()).unwrap_or_default(), lines)
    }

    /// initdb, TLS files, pg_hba.conf and the include line for our settings.
    fn init(&self) -> anyhow::Result<()> {
        let pwfile = self.dir.path().join("pwfile");
        self.write_owned(&pwfile, self.password.as_bytes(), 0o600)?;
        let mut initdb = self.server_command("initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
        let initialized = run(&mut initdb, "initdb");
        fs::remove_file(&pwfile).context("remove the initdb password file")?;
        initialized?;

        let tls = TestTls::generate()?;
        self.write_owned(&self.ca_cert_path(), tls.ca_pem.as_bytes(), 0o644)?;
        self.write_owned(&self.server_cert_path(), tls.cert_pem.as_bytes(), 0o644)?;
        // PostgreSQL refuses a key file that others can read.
        self.write_owned(&self.server_key_path(), tls.key_pem.as_bytes(), 0o600)?;

        let hba = format!(
            "# Written by portcullis-testkit. First match wins.\n\
             local all all trust\n\
             host all md5user,+{MD5_GROUP} 127.0.0.1/32 md5\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
        self.write_owned(&self.data_dir().join("pg_hba.conf"), hba.as_bytes(), 0o600)?;

        let conf_path = self.data_dir().join("postgresql.conf");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .with_context(|| format!("open {}", conf_path.display()))?;
        conf.write_all(b"\ninclude 'portcullis.conf'\n")
            .with_context(|| format!("append to {}", conf_path.display()))?;
        Ok(())
    }

    /// Picks a port, writes it with the other settings, starts; retries if the port was taken meanwhile.
    fn start_on_free_port(&mut self) -> anyhow::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.port = free_port()?;
            self.write_settings()?;
            let started = self.start_again();
            match started {
                Ok(()) => return Ok(()),
                Err(_) if attempt < START_ATTEMPTS && self.log_tail(20).contains("could not bind") => {
                    continue;
                }
                Err(error) => return Err(error.context("start PostgreSQL")),
            }
        }
    }

    fn write_settings(&self) -> anyhow::Result<()> {
        let settings = format!(
            "# Written by portcullis-testkit; included from postgresql.conf.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = {socket}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n\
             password_encryption = 'scram-sha-256'\n\
             ssl = on\n\
             ssl_cert_file = {cert}\n\
             ssl_key_file = {key}\n\
             ssl_ca_file = {ca}\n\
             log_min_messages = warning\n\
             log_connections = on\n\
             lc_messages = 'C'\n",
            port = self.port,
            socket = quote_literal(&self.socket_dir().display().to_string()),
            cert = quote_literal(&self.server_cert_path().display().to_string()),
            key = quote_literal(&self.server_key_path().display().to_string()),
            ca = quote_literal(&self.ca_cert_path().display().to_string()),
        );
        self.write_owned(
            &self.data_dir().join("portcullis.conf"),
            settings.as_bytes(),
            0o600,
        )
    }

    /// `pg_ctl <args> -D <data> -l <log>`; the error includes the server log's tail.
    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut command = self.server_command("pg_ctl");
        command
            .args(args)
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path());
        run(&mut command, "pg_ctl").map(drop).map_err(|error| {
            error.context(format!(
                "pg_ctl {} (port {}); server log tail:\n{}",
                args.first().copied().unwrap_or_default(),
                self.port,
                self.log_tail(30)
            ))
        })
    }

    /// A server binary from `bin_dir`, as the unprivileged user when we are root, in our directory,
    /// without inherited libpq variables.
    fn server_command(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(name));
        command
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        for var in INHERITED_PG_VARS {
            command.env_remove(var);
        }
        if let Some(user) = self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        command
    }

    /// Writes a file with `mode`, owned by the server's user.
    fn write_owned(&self, path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        fs::write(path, contents).with_context(|| format!("write {}", path.display()))?;
        self.own(path, mode)
    }

    fn own(&self, path: &Path, mode: u32) -> anyhow::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:o} {}", path.display()))?;
        if let Some(user) = self.run_as {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .with_context(|| format!("chown {} to postgres", path.display()))?;
        }
        Ok(())
    }

    fn server_cert_path(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    fn server_key_path(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Drop for PgCluster {
    /// Immediate shutdown, errors ignored (the server may already be stopped); then the directory goes.
    fn drop(&mut self) {
        let mut command = self.server_command("pg_ctl");
        command
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = command.status();
    }
}

/// A test CA and a server certificate it signed, all PEM.
struct TestTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TestTls {
    fn generate() -> anyhow::Result<TestTls> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "portcullis-testkit PostgreSQL CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?).context("generate the test CA")?;

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &ca)
            .context("sign the server certificate")?;
        Ok(TestTls {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The `bin` directory of the PostgreSQL server: `$PORTCULLIS_PG_BIN_DIR`, else that of `initdb` on
/// PATH (symlinks resolved, so pg_ctl finds its `postgres`), else the newest /usr/lib/postgresql/*/bin.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
        return Err(not_installed(format!(
            "{BIN_DIR_ENV}={} holds no initdb and pg_ctl",
            dir.display()
        )));
    }
    if let Some(initdb) = on_path("initdb") {
        let real = fs::canonicalize(&initdb).with_context(|| format!("resolve {}", initdb.display()))?;
        if let Some(dir) = real.parent()
            && dir.join("pg_ctl").is_file()
        {
            return Ok(dir.to_path_buf());
        }
    }
    newest_debian_bin_dir().ok_or_else(|| {
        not_installed(format!(
            "no initdb and pg_ctl on PATH nor under {DEBIAN_PG_LIB}/*/bin"
        ))
    })
}

fn newest_debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir(DEBIAN_PG_LIB)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = version_key(&entry.file_name().to_string_lossy())?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" -> [15], "9.6" -> [9, 6]; None for names that are not versions.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// psql from the server's bin directory (same version), else from PATH.
fn find_psql(bin_dir: &Path) -> anyhow::Result<PathBuf> {
    let beside = bin_dir.join("psql");
    if beside.is_file() {
        return Ok(beside);
    }
    on_path("psql").ok_or_else(|| not_installed(format!("no psql in {} nor on PATH", bin_dir.display())))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// As root, the `postgres` system user; otherwise no change of user.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name(SUPERUSER)
        .context("look up the postgres user")?
        .ok_or_else(|| {
            not_installed(
                "running as root, and initdb refuses root: no `postgres` system user to run it as \
                 (Debian's postgresql-common package creates it)"
                    .to_owned(),
            )
        })?;
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

/// Runs to completion; an unsuccessful exit is an error carrying stdout and stderr.
fn run(command: &mut Command, what: &str) -> anyhow::Result<Output> {
    let output = command.output().with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buf))
        .context("read /dev/urandom")?;
    Ok(buf.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

/// An SQL identifier, always quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal (standard_conforming_strings is on).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A libpq conninfo value, single-quoted with `\` and `'` escaped.
fn quote_conninfo(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_conninfo(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn versions_sort_numerically() {
        assert!(version_key("15") > version_key("9.6"));
        assert_eq!(version_key("main"), None);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
