//! A real third-party OIDC provider (the npm package `oidc-provider`) as a child process, for tests.
//!
//! The Node project is `crates/portcullis-testkit/oidc-provider/` (see its `server.mjs`). The first
//! start on a machine runs `npm ci` there (a few seconds; needs the npm registry). Each provider has a
//! fresh signing key, one confidential client (`agent` / `agent-secret`, client credentials grant) and
//! one resource server whose access tokens are JWTs with `aud` = the audience asked for, scope `db`,
//! `groups: ["agents"]`, header `typ: at+jwt`, lifetime 300 s.
//!
//! RFC 8707 needs the resource indicator to be an absolute URI: for an audience that is not one (such
//! as `portcullis`) the indicator is `urn:<audience>`; [`OidcProvider::resource`] says which.

use std::fmt;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::ports::free_port;

/// The client the provider knows.
pub const CLIENT_ID: &str = "agent";
/// Its secret (`client_secret_post` or `client_secret_basic`).
pub const CLIENT_SECRET: &str = "agent-secret";
/// The scope the resource server grants.
pub const SCOPE: &str = "db";
/// Algorithms `server.mjs` can sign with.
pub const ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts with a new port when the one picked was taken before node bound it.
const START_ATTEMPTS: usize = 3;

/// A running provider; Drop kills it.
pub struct OidcProvider {
    child: Child,
    issuer: String,
    resource: String,
    audience: String,
    alg: String,
    token_endpoint: String,
    jwks_uri: String,
    http: reqwest::Client,
    /// Holds node's stderr.
    dir: TempDir,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("pid", &self.child.id())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Installs the Node project if needed, starts the provider on a free loopback port, waits until
    /// it serves its discovery document. `alg` is one of [`ALGS`]. About 1–2 s once installed.
    pub async fn start(alg: &str, audience: &str) -> anyhow::Result<OidcProvider> {
        Self::start_with_console(alg, audience, None).await
    }

    /// [`OidcProvider::start`], and with `console_redirect` a public client `portcullis-console`
    /// (authorization code with PKCE, that redirect URI) and the provider's development login pages:
    /// any name and password signs in, then a consent page; people get groups `reviewers` and
    /// `portcullis-operators`.
    pub async fn start_with_console(
        alg: &str,
        audience: &str,
        console_redirect: Option<&str>,
    ) -> anyhow::Result<OidcProvider> {
        if !ALGS.contains(&alg) {
            bail!("unsupported alg {alg:?}: server.mjs signs with one of {ALGS:?}");
        }
        let project = project_dir();
        {
            let project = project.clone();
            tokio::task::spawn_blocking(move || ensure_installed(&project, "oidc-provider"))
                .await
                .context("npm ci task")??;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn(&project, alg, audience, console_redirect).await {
                Ok(provider) => return Ok(provider),
                Err(Spawn::PortTaken(_)) if attempt < START_ATTEMPTS => continue,
                Err(Spawn::PortTaken(error) | Spawn::Failed(error)) => return Err(error),
            }
        }
    }

    /// `http://127.0.0.1:<port>`, the `iss` of its tokens.
    pub fn issuer_url(&self) -> &str {
        &self.issuer
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The JWKS URL from the discovery document.
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// The `aud` of its access tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The RFC 8707 resource indicator that yields tokens for [`OidcProvider::audience`].
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The signing algorithm of its tokens.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// A fresh access token (a JWT) for client `agent` through the client credentials grant.
    pub async fn client_credentials_token(&self) -> anyhow::Result<String> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", SCOPE),
            ("resource", self.resource.as_str()),
        ];
        let response = self
            .http
            .post(&self.token_endpoint)
            .form(&form)
            .send()
            .await
            .with_context(|| format!("POST {}", self.token_endpoint))?;
        let status = response.status();
        let body = response.text().await.context("read the token response")?;
        if !status.is_success() {
            bail!("token endpoint answered {status}: {body}");
        }
        let json: serde_json::Value = serde_json::from_str(&body).context("token response is not JSON")?;
        json.get("access_token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("token response has no access_token: {body}"))
    }

    async fn spawn(
        project: &Path,
        alg: &str,
        audience: &str,
        console_redirect: Option<&str>,
    ) -> Result<OidcProvider, Spawn> {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-oidc-")
            .tempdir()
            .context("create a temporary directory")?;
        let port = free_port()?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = fs::File::create(&stderr_path).context("create the stderr log")?;
        let mut command = Command::new("node");
        if let Some(redirect) = console_redirect {
            command.env("CONSOLE_REDIRECT_URI", redirect);
        }
        let mut child = command
            .arg("server.mjs")
            .current_dir(project)
            .env("PORT", port.to_string())
            .env("ALG", alg)
            .env("AUDIENCE", audience)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("spawn node (Node.js 20 or later must be on PATH)")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let (ready_tx, ready_rx) = oneshot::channel();
        // Reads until EOF so node never blocks on a full pipe; hands over the READY line.
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("READY ")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(line);
                }
            }
        });

        let mut provider = OidcProvider {
            child,
            issuer: String::new(),
            resource: String::new(),
            audience: audience.to_owned(),
            alg: alg.to_owned(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .context("build the HTTP client")?,
            dir,
        };
        // On error `provider` drops here, which kills node.
        let line = match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(line)) => line,
            Ok(Err(_closed)) => {
                let stderr = provider.stderr();
                let error = anyhow!(
                    "oidc-provider exited before READY ({:?}); stderr:\n{stderr}",
                    provider.child.try_wait().ok().flatten()
                );
                return Err(if stderr.contains("EADDRINUSE") {
                    Spawn::PortTaken(error)
                } else {
                    Spawn::Failed(error)
                });
            }
            Err(_elapsed) => {
                return Err(Spawn::Failed(anyhow!(
                    "oidc-provider not READY within {READY_TIMEOUT:?}; stderr:\n{}",
                    provider.stderr()
                )));
            }
        };
        let mut words = line.split_whitespace().skip(1);
        let (Some(issuer), Some(resource)) = (words.next(), words.next()) else {
            return Err(Spawn::Failed(anyhow!("malformed READY line: {line:?}")));
        };
        provider.issuer = issuer.to_owned();
        provider.resource = resource.to_owned();
        provider.discover().await?;
        Ok(provider)
    }

    /// Reads the discovery document, as a relying party would, for the token endpoint and JWKS URL.
    async fn discover(&mut self) -> anyhow::Result<()> {
        let url = self.discovery_url();
        let document: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("discovery document at {url}"))?;
        let field = |name: &str| {
            document
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("discovery document has no {name}"))
        };
        self.token_endpoint = field("token_endpoint")?;
        self.jwks_uri = field("jwks_uri")?;
        Ok(())
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why one spawn attempt failed: worth another port, or not.
enum Spawn {
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Spawn {
    fn from(error: anyhow::Error) -> Self {
        Spawn::Failed(error)
    }
}

/// `crates/portcullis-testkit/oidc-provider`.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// Runs `npm ci` in the Node project `project` unless its `node_modules` already holds the version of
/// `package` that its package.json pins (the test MCP server and client use it too).
///
/// Parallel test processes may get here at once. Each installs into its own staging directory beside
/// the project and renames the finished `node_modules` into place; a rename onto an existing
/// `node_modules` fails, and then the other process has won. So no process ever sees a half-written
/// `node_modules`, and no lock can be left stale by a killed process.
pub(crate) fn ensure_installed(project: &Path, package: &str) -> anyhow::Result<()> {
    // Within one process, one install at a time: concurrent starts then find it done.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    let wanted = pinned_version(project, package)?;
    let installed = project.join("node_modules");
    if installed_version(&installed, package).as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let staging = project.join(format!(".install-{}-{nanos}", std::process::id()));
    let result = install_into(project, &staging, &installed, package, &wanted);
    let _ = fs::remove_dir_all(&staging);
    result
}

fn install_into(
    project: &Path,
    staging: &Path,
    installed: &Path,
    package: &str,
    wanted: &str,
) -> anyhow::Result<()> {
    fs::create_dir(staging).with_context(|| format!("create {}", staging.display()))?;
    for file in ["package.json", "package-lock.json"] {
        fs::copy(project.join(file), staging.join(file))
            .with_context(|| format!("copy {file} to {}", staging.display()))?;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(staging)
        .stdin(Stdio::null())
        .output()
        .context("run npm ci (npm must be on PATH)")?;
    if !output.status.success() {
        bail!(
            "npm ci in {} failed ({}): {}{}",
            staging.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if installed.exists() && installed_version(installed, package).as_deref() != Some(wanted) {
        // An outdated install (the pin changed): move it aside, then ours takes its place.
        let old = staging.join("node_modules.old");
        fs::rename(installed, &old).with_context(|| format!("move aside {}", installed.display()))?;
    }
    // When the rename fails because another process installed the same version first, all is well.
    if let Err(error) = fs::rename(staging.join("node_modules"), installed)
        && installed_version(installed, package).as_deref() != Some(wanted)
    {
        return Err(error).with_context(|| format!("move node_modules into {}", project.display()));
    }
    Ok(())
}

/// The exact version of `package` that package.json pins.
fn pinned_version(project: &Path, package: &str) -> anyhow::Result<String> {
    let path = project.join("package.json");
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    json.get("dependencies")
        .and_then(|d| d.get(package))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} has no dependencies.{package}", path.display()))
}

fn installed_version(node_modules: &Path, package: &str) -> Option<String> {
    let text = fs::read_to_string(node_modules.join(package).join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}
