//! The operator's TOML configuration: its shape, secret references, and validation that names the bad key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_core::Secret;
use portcullis_identity::IssuerSettings;
use portcullis_policy::PolicySet;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub masking: MaskingConfig,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// The directory of the configuration file: relative paths in it are resolved from here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[policy]`: the Cedar policies that decide every connection and statement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Cedar policy files, relative to the configuration file. No policy, no access.
    pub files: Vec<PathBuf>,
    /// Decide every statement (`true`), or only who may connect (`false`).
    pub statement_checks: bool,
    /// How many analysed statements (by fingerprint) the gateway keeps, shared by all sessions.
    pub cache_entries: usize,
    /// How often the policy files are checked for changes (SIGHUP reloads at once).
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            statement_checks: true,
            cache_entries: 10_000,
            watch_interval: Duration::from_secs(1),
        }
    }
}

impl PolicyConfig {
    /// The policy files with relative paths resolved against `base`.
    pub fn paths(&self, base: &Path) -> Vec<PathBuf> {
        self.files.iter().map(|f| base.join(f)).collect()
    }
}

/// `[approvals]`: statements permitted only by `@approval("required")` policies wait for a reviewer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Ask a human to decide such statements (`true`), or refuse them (`false`, the default).
    pub enabled: bool,
    /// `hold`: the statement waits for the decision; `ticket`: it fails at once with the request id, and
    /// runs when sent again after approval.
    pub mode: crate::approvals::Mode,
    /// How long a request waits for a decision: a held statement then fails, a ticket expires.
    #[serde(with = "humantime_serde")]
    pub hold_timeout: Duration,
    /// How long an approved ticket may be used, unless the reviewer sets `valid_for`.
    #[serde(with = "humantime_serde")]
    pub grant_ttl: Duration,
    /// Tokens whose groups claim holds this group may decide requests (through the admin API).
    pub reviewers_group: String,
    /// A denial must give a reason.
    pub deny_reason_required: bool,
    /// Distinct reviewers who must approve a request; one denial denies it.
    pub quorum: u32,
    /// A webhook told of every new request and decision (Slack-compatible JSON), e.g. a Slack incoming
    /// webhook URL.
    pub notify_webhook: Option<String>,
    /// Put the statement's text in notifications (off: only commands, connection and requester).
    pub notify_statement: bool,
    /// Show reviewers the planner's estimate of the rows an UPDATE or DELETE changes (`EXPLAIN`, on a
    /// connection of the gateway's own; runs nothing).
    pub preview: bool,
    /// Also count them exactly by running the statement in a transaction that is rolled back (it takes
    /// locks, fires triggers and advances sequences: see docs/approvals.md).
    pub preview_exact: bool,
    /// Where links in notifications point: this base followed by the request id. Default: the admin
    /// API's `http://<server.admin.listen>/api/v1/approvals/`.
    pub link_base: Option<String>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: crate::approvals::Mode::Hold,
            hold_timeout: Duration::from_secs(5 * 60),
            grant_ttl: Duration::from_secs(60 * 60),
            reviewers_group: "reviewers".to_owned(),
            deny_reason_required: false,
            quorum: 1,
            notify_webhook: None,
            notify_statement: false,
            preview: true,
            preview_exact: false,
            link_base: None,
        }
    }
}

/// `[audit]`: the record of every session, statement and outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record sessions (`true`, the default). When off, nothing is recorded and nothing waits for a store.
    pub enabled: bool,
    /// The SQLite file (default `<state_dir>/audit.db`).
    pub path: Option<PathBuf>,
    /// How long events are kept, e.g. `90d`. Unset keeps everything.
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How often expired events are pruned.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
    /// Result rows recorded per statement; the rest are counted, not kept.
    pub result_rows: usize,
    /// Result bytes recorded per statement.
    pub result_bytes: usize,
    /// Bytes of each HTTP request and response body recorded (masked) per request; 0 records none.
    pub http_body_bytes: usize,
    /// When a commit counts as durable: `fsync` (on the disk; survives power loss) or `os` (handed to the
    /// operating system; survives a gateway crash, not a machine crash; saves an fsync per group commit).
    pub durability: AuditDurability,
    /// How often the store is read for `sessions kill` and `revoke` instructions.
    #[serde(with = "humantime_serde")]
    pub control_interval: Duration,
    /// Where committed events are also sent.
    pub exports: Vec<ExportConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            retention: None,
            prune_interval: Duration::from_secs(3600),
            result_rows: 100,
            result_bytes: 64 * 1024,
            http_body_bytes: 4096,
            durability: AuditDurability::Fsync,
            control_interval: Duration::from_millis(250),
            exports: Vec::new(),
        }
    }
}

/// `[audit] durability`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuditDurability {
    #[default]
    Fsync,
    Os,
}

/// One `[[audit.exports]]` entry: JSON Lines to a file (`jsonl = "path"`, `"-"` for standard output) or a
/// webhook (`webhook = "https://..."`). Exports tail the store; a slow one lags, it never slows sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Names the export's delivery cursor in the store: keep it stable across restarts.
    pub name: String,
    #[serde(default)]
    pub jsonl: Option<PathBuf>,
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Config {
    /// The audit store's file.
    pub fn audit_path(&self) -> PathBuf {
        self.audit
            .path
            .clone()
            .unwrap_or_else(|| self.server.state_dir.join("audit.db"))
    }
}

/// `[masking]`: sensitive values in results, errors and recorded statements are masked unless policy
/// grants `unmask`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    /// Mask (`true`, the default) when rules are configured; `false` turns every rule off.
    pub enabled: bool,
    /// The key of `hash` and `format_preserving` as a `${ENV_VAR}` reference. Unset: `key_file`, else a
    /// random key kept in `<state_dir>/mask.key` (pseudonyms stay stable across restarts).
    pub key: Option<String>,
    /// A file whose first line is the key.
    pub key_file: Option<PathBuf>,
    /// The largest result row masked; a larger row ends its session rather than pass unmasked.
    pub max_row_bytes: usize,
    /// How long table names (for column rules) are cached per connection.
    #[serde(with = "humantime_serde")]
    pub catalog_ttl: Duration,
    /// The rules, in order: for a column the first matching column rule wins; for a detected value the
    /// first rule naming its detector.
    pub rules: Vec<portcullis_mask::RuleSpec>,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key: None,
            key_file: None,
            max_row_bytes: 16 * 1024 * 1024,
            catalog_ttl: Duration::from_secs(60),
            rules: Vec::new(),
        }
    }
}

impl MaskingConfig {
    /// Whether any rule can apply.
    pub fn active(&self) -> bool {
        self.enabled && !self.rules.is_empty()
    }

    /// The configured key, if any (`None`: use the state directory's).
    pub fn configured_key(&self) -> Result<Option<Secret<String>>, String> {
        let key = match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => return Err("set key or key_file, not both".to_owned()),
            (Some(reference), None) => resolve_env_reference(reference)?,
            (None, Some(path)) => secret_from_file(path)?,
            (None, None) => return Ok(None),
        };
        if key.expose().len() < portcullis_mask::MIN_KEY_LEN {
            return Err(format!(
                "the key must be at least {} characters",
                portcullis_mask::MIN_KEY_LEN
            ));
        }
        Ok(Some(key))
    }
}

/// `[server]`: listeners, state, logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the gateway keeps its files (development keys and certificates; later the audit store).
    pub state_dir: PathBuf,
    /// `text` for people, `json` for log shippers.
    pub log_format: LogFormat,
    pub postgres: PostgresListenerConfig,
    /// Started when some connection has `protocol = "http"`.
    pub http: HttpListenerConfig,
    pub admin: AdminListenerConfig,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[server.postgres]`: the PostgreSQL listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresListenerConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain offered to clients. Without it (and `tls_key`), a self-signed development
    /// certificate is generated in `state_dir`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Accept tokens over plaintext connections. Only for loopback and development.
    pub allow_plaintext: bool,
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// The largest message a client may send (CopyData excepted), in bytes.
    pub max_message_bytes: usize,
}

/// `[server.http]`: the HTTP listener (HTTP/1.1 and HTTP/2; TLS offered, detected by its first byte).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpListenerConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain offered to clients. Without it (and `tls_key`), the self-signed
    /// development certificate in `state_dir` (shared with the PostgreSQL listener).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Accept requests (and so tokens) over plaintext HTTP. Only for loopback and development.
    pub allow_plaintext: bool,
    /// How long a client has to send a request's headers (and to finish the TLS handshake).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// How long a client connection may stay open with no request in flight (HTTP/2: closed with a
    /// GOAWAY); `0s` keeps idle connections open. An HTTP/1.1 connection waiting for its next request
    /// is closed after `header_timeout` when that is shorter.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The largest JSON request body whose fields policy sees (`context.body`); larger bodies stream
    /// through uninspected.
    pub inspect_body_bytes: usize,
}

impl Default for HttpListenerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            allow_plaintext: false,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            inspect_body_bytes: 16 * 1024,
        }
    }
}

/// `[server.admin]`: health, metrics, the development issuer's documents, and the admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminListenerConfig {
    pub listen: SocketAddr,
    /// Tokens whose groups claim holds this group may use the sessions and revoke endpoints of the
    /// admin API (read the audit trail, kill sessions, bar identities).
    pub operators_group: String,
    pub console: ConsoleConfig,
}

/// `[server.admin.console]`: the web console for reviewers and operators, served by the admin listener
/// under `/console`. People sign in with an OIDC provider (authorization code with PKCE); the token the
/// provider returns is verified like any data-path token, and its groups decide what the person may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub enabled: bool,
    /// The issuer people sign in with: its URL as in `[[identity.issuers]]`. Unset: the development
    /// issuer, when enabled (its sign-in page asks for a name and groups, for development only).
    pub issuer: Option<String>,
    /// The console's client id at that issuer.
    pub client_id: String,
    /// The client secret as a `${ENV_VAR}` reference, for a confidential client; unset for a public
    /// client (PKCE alone).
    pub client_secret: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator, for providers that issue JWT access tokens per resource.
    pub resource: Option<String>,
    /// The console's address as browsers reach it (for the redirect URI); default `http://<listen>`.
    pub public_url: Option<String>,
    /// The longest a console sign-in lasts (the token's expiry ends it sooner).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            issuer: None,
            client_id: "portcullis-console".to_owned(),
            client_secret: None,
            scopes: vec!["openid".to_owned()],
            resource: None,
            public_url: None,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

impl ConsoleConfig {
    /// The client secret, resolved from its `${ENV_VAR}` reference.
    pub fn client_secret(&self) -> Result<Option<Secret<String>>, String> {
        self.client_secret
            .as_deref()
            .map(resolve_env_reference)
            .transpose()
    }
}

/// `[identity]`: who may present tokens.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
    #[serde(default)]
    pub dev_issuer: DevIssuerConfig,
    /// How long a session may outlive its token before the gateway ends it.
    #[serde(default, with = "humantime_serde")]
    pub session_grace: Duration,
}

/// `[identity.dev_issuer]`: the built-in development issuer. Off unless enabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevIssuerConfig {
    pub enabled: bool,
    /// The `aud` of minted tokens, and the audience the gateway expects from them.
    pub audience: String,
    /// The issuer URL if the admin listener is reached under another address (default
    /// `http://<admin.listen>/dev`).
    pub url: Option<String>,
    /// The alias used in policy names: `<alias>/<subject>`.
    pub alias: String,
    /// The longest lifetime `token mint` may issue.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
}

/// One `[[connections]]` entry: a named target reached through the gateway. Which keys apply depends on
/// `protocol`; `Config::validate` refuses keys of the other protocol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// What clients put in `dbname` (PostgreSQL) or the first path segment (HTTP).
    pub name: String,
    pub protocol: Protocol,
    /// PostgreSQL: `host:port` of the database.
    #[serde(default)]
    pub upstream: String,
    /// PostgreSQL: the database the gateway logs in to.
    #[serde(default)]
    pub database: String,
    /// PostgreSQL: the role the gateway logs in as.
    #[serde(default)]
    pub user: String,
    /// `${ENV_VAR}`; never a literal.
    #[serde(default)]
    pub password: Option<String>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS toward the upstream. PostgreSQL: libpq's sslmode (default `prefer`). HTTP: unset verifies
    /// an `https` upstream against `ca_file` (else the public web roots); `require` encrypts without
    /// verifying.
    #[serde(default)]
    pub tls: Option<UpstreamTlsMode>,
    /// CA bundle for `verify-full` (PostgreSQL) or to verify an `https` upstream with (HTTP).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// What to do with a statement the gateway's parser cannot read: `refuse` (the default), or
    /// `allow` it and record that it went through unanalysed.
    #[serde(default)]
    pub on_parse_error: OnParseError,
    /// How statements needing approval wait on this connection (`hold` or `ticket`), over
    /// `[approvals] mode`; a policy's `@approval_mode` overrides both.
    #[serde(default)]
    pub approval_mode: Option<crate::approvals::Mode>,
    /// HTTP: the upstream's base URL (`http://` or `https://`, with an optional base path).
    #[serde(default)]
    pub upstream_url: Option<String>,
    /// HTTP: the credential the gateway adds to every forwarded request (the agent's own
    /// `Authorization` is always removed).
    #[serde(default)]
    pub credential: Option<CredentialConfig>,
    /// HTTP: host names that select this connection by the request's `Host` (then the whole path is
    /// forwarded, no prefix removed). Without a port they match any port; an IPv6 address is written
    /// with or without its brackets (`[::1]` or `::1`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// HTTP: route templates, the resources policy names (`Route::"<connection>/<name>"`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// HTTP: request headers shown to policy as `context.headers` (names, case-insensitive).
    #[serde(default)]
    pub context_headers: Vec<String>,
    /// HTTP: how long the upstream has to answer with its response headers (then 504).
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// HTTP, when responses are masked: what happens to a body masking cannot read (neither JSON nor
    /// text: images, PDFs, octet streams). Unset: `refuse`.
    #[serde(default)]
    pub other_content: Option<OtherContent>,
    /// HTTP: the upstream is an MCP server (streamable HTTP): JSON-RPC `tools/call` is decided per
    /// tool (`call_tool`) and `tools/list` is filtered (docs/protocols/mcp.md).
    #[serde(default)]
    pub mcp: bool,
    /// HTTP with `mcp = true`: the MCP endpoint's path after the connection's prefix (`/mcp`); unset,
    /// every path of the connection is treated as the endpoint.
    #[serde(default)]
    pub mcp_path: Option<String>,
}

/// An HTTP connection's choice for response bodies masking cannot read, when it masks responses.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OtherContent {
    /// Answered with a 502 problem before any of the body is sent (fail closed: an upstream that
    /// labels JSON `application/octet-stream` must not bypass masking).
    #[default]
    Refuse,
    /// Passed on unread.
    Pass,
}

/// One `routes` entry of an HTTP connection: `{ template = "/customers/{id}", name = "customer" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Literal segments and `{param}` segments; a final `{param*}` takes the rest of the path.
    pub template: String,
    pub name: String,
}

/// The upstream credential of an HTTP connection. Secrets are `${ENV_VAR}` references or files.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialConfig {
    /// A static header, e.g. `{ type = "header", name = "X-Api-Key", value = "${API_KEY}" }`.
    Header {
        name: String,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        value_file: Option<PathBuf>,
    },
    /// HTTP Basic authentication.
    Basic {
        user: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        password_file: Option<PathBuf>,
    },
    /// An OAuth 2.0 client-credentials access token the gateway obtains and caches until shortly
    /// before it expires, sent as `Authorization: Bearer`.
    OauthClientCredentials {
        token_url: String,
        client_id: String,
        #[serde(default)]
        client_secret: Option<String>,
        #[serde(default)]
        client_secret_file: Option<PathBuf>,
        #[serde(default)]
        scopes: Vec<String>,
        /// Sent as `audience` (Auth0 and others ask for it).
        #[serde(default)]
        audience: Option<String>,
        /// How the client authenticates to the token endpoint: `basic` (RFC 6749's default) or
        /// `post` (client id and secret in the form).
        #[serde(default)]
        client_auth: ClientAuth,
    },
}

/// How a client-credentials client authenticates to its token endpoint.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Basic,
    Post,
}

/// A connection's choice for statements the parser cannot read.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnParseError {
    #[default]
    Refuse,
    Allow,
}

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    Http,
}

/// libpq's sslmode, as far as the gateway supports it toward the database.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTlsMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyFull,
}

/// Whether validation resolves secret references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Check,
    Skip,
}

/// A configuration problem, located by its key path (e.g. `connections[1].password`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("./portcullis-state"),
            log_format: LogFormat::Text,
            postgres: PostgresListenerConfig::default(),
            http: HttpListenerConfig::default(),
            admin: AdminListenerConfig::default(),
        }
    }
}

impl Default for PostgresListenerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            tls_cert: None,
            tls_key: None,
            allow_plaintext: false,
            handshake_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for AdminListenerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            operators_group: "portcullis-operators".to_owned(),
            console: ConsoleConfig::default(),
        }
    }
}

impl Default for DevIssuerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            audience: "portcullis".to_owned(),
            url: None,
            alias: "dev".to_owned(),
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_response_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Config {
    /// Reads, parses and validates a configuration file. Secret references are checked for presence
    /// (the environment variable is set, the file is readable) but their values are not kept here.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_checking(path, Secrets::Check)
    }

    /// Like [`Config::load`], for tools that never reach a database (`policy check`): secret
    /// references are not resolved.
    pub fn load_without_secrets(path: &Path) -> Result<Config, ConfigError> {
        Self::load_checking(path, Secrets::Skip)
    }

    fn load_checking(path: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config.validate(secrets)?;
        Ok(config)
    }

    /// Loads the policy files, validating each policy against the shipped Cedar schema.
    pub fn load_policies(&self) -> Result<PolicySet, ConfigError> {
        if self.policy.files.is_empty() {
            return Err(ConfigError::Invalid {
                path: "policy.files".to_owned(),
                message: "no policy files: nobody could connect (deny by default); list Cedar files, \
                          e.g. files = [\"policies/agents.cedar\"]"
                    .to_owned(),
            });
        }
        PolicySet::load(&self.policy.paths(&self.base_dir)).map_err(|e| ConfigError::Invalid {
            path: "policy.files".to_owned(),
            message: e.to_string(),
        })
    }

    /// Parses TOML, reporting the key path of any type or unknown-key error.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Invalid {
            path: "(syntax)".to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Invalid {
                path,
                message: first_line(&e.into_inner().to_string()),
            }
        })
    }

    /// Checks what the types alone cannot: unique names, resolvable secrets, paired TLS files.
    pub fn validate(&self, secrets: Secrets) -> Result<(), ConfigError> {
        let invalid = |path: String, message: &str| ConfigError::Invalid {
            path,
            message: message.to_owned(),
        };
        let pg = &self.server.postgres;
        if pg.tls_cert.is_some() != pg.tls_key.is_some() {
            return Err(invalid(
                "server.postgres.tls_cert".into(),
                "tls_cert and tls_key go together",
            ));
        }
        if pg.max_message_bytes < 1024 {
            return Err(invalid(
                "server.postgres.max_message_bytes".into(),
                "must be at least 1024",
            ));
        }
        if self.identity.issuers.is_empty() && !self.identity.dev_issuer.enabled {
            return Err(invalid(
                "identity.issuers".into(),
                "no token issuer is configured: add [[identity.issuers]] or enable [identity.dev_issuer]",
            ));
        }
        if let Some(issuer) = &self.server.admin.console.issuer
            && !self.identity.issuers.iter().any(|i| i.issuer == *issuer)
        {
            return Err(invalid(
                "server.admin.console.issuer".into(),
                "must be the issuer of one of [[identity.issuers]]: the console verifies its tokens the same way",
            ));
        }
        if self.approvals.enabled {
            if self.approvals.reviewers_group.is_empty() {
                return Err(invalid(
                    "approvals.reviewers_group".into(),
                    "must name the group whose members decide approval requests",
                ));
            }
            if let Some(url) = &self.approvals.notify_webhook
                && !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            {
                return Err(invalid(
                    "approvals.notify_webhook".into(),
                    "must be an http:// or https:// URL",
                ));
            }
            if self.approvals.quorum == 0 {
                return Err(invalid("approvals.quorum".into(), "must be at least 1"));
            }
            if self.approvals.hold_timeout.is_zero() {
                return Err(invalid("approvals.hold_timeout".into(), "must be more than 0s"));
            }
        }
        portcullis_identity::check_issuer_settings(&self.identity.issuers).map_err(|e| {
            ConfigError::Invalid {
                path: "identity.issuers".to_owned(),
                message: e.to_string(),
            }
        })?;
        let mut names = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let at = |key: &str| format!("connections[{i}].{key}");
            if c.name.is_empty() {
                return Err(invalid(at("name"), "must not be empty"));
            }
            if !names.insert(c.name.as_str()) {
                return Err(invalid(
                    at("name"),
                    &format!("connection {:?} is defined twice", c.name),
                ));
            }
            match c.protocol {
                Protocol::Postgres => c.validate_postgres(&at, secrets)?,
                Protocol::Http => c.validate_http(&at, secrets)?,
            }
        }
        self.validate_http_listener()?;
        if self.policy.cache_entries == 0 {
            return Err(invalid("policy.cache_entries".into(), "must be at least 1"));
        }
        for (i, e) in self.audit.exports.iter().enumerate() {
            if e.jsonl.is_some() == e.webhook.is_some() {
                return Err(invalid(
                    format!("audit.exports[{i}]"),
                    "set exactly one of jsonl = \"<file or ->\" and webhook = \"<url>\"",
                ));
            }
            if let Some(url) = &e.webhook
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(invalid(
                    format!("audit.exports[{i}].webhook"),
                    "must be an http(s) URL",
                ));
            }
        }
        self.validate_masking(secrets, &names)?;
        if self.audit.result_bytes > 16 * 1024 * 1024 {
            return Err(invalid(
                "audit.result_bytes".into(),
                "at most 16 MiB per statement",
            ));
        }
        self.load_policies()?;
        Ok(())
    }
}

impl Config {
    fn validate_masking(&self, secrets: Secrets, connections: &HashSet<&str>) -> Result<(), ConfigError> {
        let m = &self.masking;
        let invalid = |path: String, message: String| ConfigError::Invalid { path, message };
        if m.max_row_bytes < 1024 {
            return Err(invalid(
                "masking.max_row_bytes".into(),
                "must be at least 1024".into(),
            ));
        }
        for (i, rule) in m.rules.iter().enumerate() {
            for (j, name) in rule.connections.iter().enumerate() {
                if !connections.contains(name.as_str()) {
                    return Err(invalid(
                        format!("masking.rules[{i}].connections[{j}]"),
                        format!("no connection named {name:?}"),
                    ));
                }
            }
        }
        portcullis_mask::MaskPolicy::compile(&m.rules, &[0u8; 32]).map_err(|e| {
            let portcullis_mask::RuleError::Invalid { index, why } = e;
            invalid(format!("masking.rules[{index}]"), why)
        })?;
        if secrets == Secrets::Check {
            m.configured_key().map_err(|message| {
                let key = if m.key_file.is_some() && m.key.is_none() {
                    "key_file"
                } else {
                    "key"
                };
                invalid(format!("masking.{key}"), message)
            })?;
        }
        Ok(())
    }
}

impl ConnectionConfig {
    fn validate_postgres(&self, at: &dyn Fn(&str) -> String, secrets: Secrets) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: at(key),
            message: message.to_owned(),
        };
        if self
            .upstream
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(invalid("upstream", "must be host:port"));
        }
        for (key, empty) in [
            ("database", self.database.is_empty()),
            ("user", self.user.is_empty()),
        ] {
            if empty {
                return Err(invalid(key, "missing: a postgres connection names it"));
            }
        }
        let http_only = [
            ("upstream_url", self.upstream_url.is_some()),
            ("credential", self.credential.is_some()),
            ("hosts", !self.hosts.is_empty()),
            ("routes", !self.routes.is_empty()),
            ("context_headers", !self.context_headers.is_empty()),
            ("other_content", self.other_content.is_some()),
            ("mcp", self.mcp),
            ("mcp_path", self.mcp_path.is_some()),
        ];
        if let Some((key, _)) = http_only.iter().find(|(_, set)| *set) {
            return Err(invalid(key, "applies to protocol = \"http\" connections only"));
        }
        if self.tls == Some(UpstreamTlsMode::VerifyFull) && self.ca_file.is_none() {
            return Err(invalid("ca_file", "verify-full needs ca_file"));
        }
        if secrets == Secrets::Check {
            self.resolve_password().map_err(|message| ConfigError::Invalid {
                path: at(self.password_key()),
                message,
            })?;
        }
        Ok(())
    }

    fn validate_http(&self, at: &dyn Fn(&str) -> String, secrets: Secrets) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: at(key),
            message,
        };
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "name",
                "an http connection's name is its path prefix: letters, digits, '-', '_' and '.' only".into(),
            ));
        }
        let postgres_only = [
            ("upstream", !self.upstream.is_empty()),
            ("database", !self.database.is_empty()),
            ("user", !self.user.is_empty()),
            ("password", self.password.is_some()),
            ("password_file", self.password_file.is_some()),
        ];
        if let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set) {
            return Err(invalid(
                key,
                "applies to protocol = \"postgres\" connections only (http connections use upstream_url and credential)"
                    .into(),
            ));
        }
        let Some(url) = &self.upstream_url else {
            return Err(invalid(
                "upstream_url",
                "missing: the upstream's base URL, e.g. \"https://api.internal\"".into(),
            ));
        };
        let parsed =
            portcullis_http::UpstreamBase::parse(url).map_err(|e| invalid("upstream_url", e.to_string()))?;
        match (parsed.is_https(), self.tls) {
            (true, None | Some(UpstreamTlsMode::VerifyFull | UpstreamTlsMode::Require)) => {}
            (false, None | Some(UpstreamTlsMode::Disable)) => {}
            (true, Some(_)) => {
                return Err(invalid(
                    "tls",
                    "for an https upstream: leave unset (verify) or \"require\" (encrypt without verifying)"
                        .into(),
                ));
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "tls",
                    "an http:// upstream has no TLS: use https:// in upstream_url".into(),
                ));
            }
        }
        if self.ca_file.is_some() && !parsed.is_https() {
            return Err(invalid(
                "ca_file",
                "an http:// upstream has no TLS to verify".into(),
            ));
        }
        for (j, host) in self.hosts.iter().enumerate() {
            if host.is_empty() || host.contains(['/', ' ']) {
                return Err(invalid(
                    &format!("hosts[{j}]"),
                    "must be a host name (with an optional :port)".into(),
                ));
            }
        }
        if let Some(path) = &self.mcp_path {
            if !self.mcp {
                return Err(invalid("mcp_path", "needs mcp = true".into()));
            }
            if !path.starts_with('/') || portcullis_http::normalize_path(path).is_err() {
                return Err(invalid("mcp_path", "must be a path such as \"/mcp\"".into()));
            }
        }
        let mut route_names = HashSet::new();
        for (j, route) in self.routes.iter().enumerate() {
            if route.name.is_empty() || route.name.contains('/') {
                return Err(invalid(
                    &format!("routes[{j}].name"),
                    "must be non-empty, without '/'".into(),
                ));
            }
            if !route_names.insert(route.name.as_str()) {
                return Err(invalid(
                    &format!("routes[{j}].name"),
                    format!("route {:?} is defined twice", route.name),
                ));
            }
            portcullis_http::RouteTemplate::parse(&route.template)
                .map_err(|e| invalid(&format!("routes[{j}].template"), e.to_string()))?;
        }
        for (j, header) in self.context_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(invalid(
                    &format!("context_headers[{j}]"),
                    "not a header name".into(),
                ));
            }
            if header.eq_ignore_ascii_case("authorization") {
                return Err(invalid(
                    &format!("context_headers[{j}]"),
                    "the agent's Authorization header carries its token: it is never shown to policy".into(),
                ));
            }
        }
        if let Some(credential) = &self.credential {
            if let CredentialConfig::OauthClientCredentials { token_url, .. } = credential
                && !reqwest::Url::parse(token_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            {
                return Err(invalid(
                    "credential.token_url",
                    "must be an http:// or https:// URL".into(),
                ));
            }
            if let CredentialConfig::Header { name, .. } = credential
                && (http::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || name.eq_ignore_ascii_case("host"))
            {
                return Err(invalid(
                    "credential.name",
                    "not a header name the gateway can set".into(),
                ));
            }
            if secrets == Secrets::Check {
                credential
                    .resolve_secret()
                    .map_err(|(key, message)| invalid(&format!("credential.{key}"), message))?;
            }
        }
        Ok(())
    }

    /// Reads the upstream password from its `${ENV}` reference or file.
    pub fn resolve_password(&self) -> Result<Secret<String>, String> {
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => Err("set password or password_file, not both".to_owned()),
            (None, None) => Err("missing: set password = \"${ENV_VAR}\" or password_file".to_owned()),
            (Some(reference), None) => resolve_env_reference(reference),
            (None, Some(path)) => secret_from_file(path),
        }
    }

    fn password_key(&self) -> &'static str {
        if self.password_file.is_some() && self.password.is_none() {
            "password_file"
        } else {
            "password"
        }
    }
}

impl CredentialConfig {
    /// The credential's secret (header value, password or client secret), from its `${ENV}` reference
    /// or file; on failure, the key at fault and why.
    pub fn resolve_secret(&self) -> Result<Secret<String>, (&'static str, String)> {
        let (reference, file, keys) = match self {
            CredentialConfig::Header {
                value, value_file, ..
            } => (value, value_file, ("value", "value_file")),
            CredentialConfig::Basic {
                password,
                password_file,
                ..
            } => (password, password_file, ("password", "password_file")),
            CredentialConfig::OauthClientCredentials {
                client_secret,
                client_secret_file,
                ..
            } => (
                client_secret,
                client_secret_file,
                ("client_secret", "client_secret_file"),
            ),
        };
        match (reference, file) {
            (Some(_), Some(_)) => Err((keys.0, format!("set {} or {}, not both", keys.0, keys.1))),
            (None, None) => Err((
                keys.0,
                format!("missing: set {} = \"${{ENV_VAR}}\" or {}", keys.0, keys.1),
            )),
            (Some(reference), None) => resolve_env_reference(reference).map_err(|m| (keys.0, m)),
            (None, Some(path)) => secret_from_file(path).map_err(|m| (keys.1, m)),
        }
    }
}

impl Config {
    fn validate_http_listener(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: format!("server.http.{key}"),
            message: message.to_owned(),
        };
        let h = &self.server.http;
        if h.tls_cert.is_some() != h.tls_key.is_some() {
            return Err(invalid("tls_cert", "tls_cert and tls_key go together"));
        }
        if h.inspect_body_bytes > 1024 * 1024 {
            return Err(invalid("inspect_body_bytes", "at most 1 MiB"));
        }
        let mut hosts = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            for (j, host) in c.hosts.iter().enumerate() {
                if !hosts.insert(host.to_ascii_lowercase()) {
                    return Err(ConfigError::Invalid {
                        path: format!("connections[{i}].hosts[{j}]"),
                        message: format!("host {host:?} already selects another connection"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether some connection speaks HTTP (the HTTP listener starts then).
    pub fn has_http_connections(&self) -> bool {
        self.connections.iter().any(|c| c.protocol == Protocol::Http)
    }
}

/// The first line of a secret file, which must not be empty.
fn secret_from_file(path: &Path) -> Result<Secret<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(line))
}

/// Resolves `${NAME}` from the environment. Inline secrets are refused: they end up in repositories.
fn resolve_env_reference(reference: &str) -> Result<Secret<String>, String> {
    let Some(name) = reference.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return Err("inline secrets are not allowed: use \"${ENV_VAR}\" or password_file".to_owned());
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{reference:?} is not a valid ${{ENV_VAR}} reference"));
    }
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        Ok(_) => Err(format!("environment variable {name} is empty")),
        Err(_) => Err(format!("environment variable {name} is not set")),
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [identity.dev_issuer]
        enabled = true
        [[connections]]
        name = "app"
        protocol = "postgres"
        upstream = "127.0.0.1:5432"
        database = "app"
        user = "portcullis"
        password = "${PATH}"
        [policy]
        files = ["../../examples/policies/agents-guarded-writes.cedar"]
    "#;

    fn check(text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::parse(text)?;
        config.base_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        config.validate(Secrets::Check)?;
        Ok(config)
    }

    const HTTP: &str = r#"
        [[connections]]
        name = "crm"
        protocol = "http"
        upstream_url = "https://crm.internal/api"
        credential = { type = "header", name = "X-Api-Key", value = "${PATH}" }
        hosts = ["crm.gw.internal"]
        routes = [{ template = "/customers/{id}", name = "customer" }]
        context_headers = ["x-request-id"]
    "#;

    #[test]
    fn http_connections_need_only_their_own_keys() {
        let config = check(&format!("{BASE}{HTTP}")).unwrap();
        assert!(config.has_http_connections());
        assert_eq!(config.server.http.listen.port(), 8080);
        let c = &config.connections[1];
        assert_eq!(
            c.credential.as_ref().unwrap().resolve_secret().unwrap().expose(),
            &std::env::var("PATH").unwrap()
        );
        let oauth = HTTP.replace(
            r#"{ type = "header", name = "X-Api-Key", value = "${PATH}" }"#,
            r#"{ type = "oauth_client_credentials", token_url = "https://login/token", client_id = "gw", client_secret = "${PATH}", scopes = ["a"] }"#,
        );
        check(&format!("{BASE}{oauth}")).unwrap();
        let cases: &[(&str, &str, &str)] = &[
            (
                "upstream_url = \"https://crm.internal/api\"",
                "",
                "connections[1].upstream_url: missing",
            ),
            (
                "https://crm.internal/api",
                "ftp://crm",
                "connections[1].upstream_url: must be an http",
            ),
            (
                "hosts =",
                "database = \"x\"\nhosts =",
                "connections[1].database: applies to protocol = \"postgres\"",
            ),
            ("{id}", "{id", "connections[1].routes[0].template"),
            (
                "x-request-id",
                "authorization",
                "connections[1].context_headers[0]",
            ),
            (
                "value = \"${PATH}\"",
                "value = \"inline\"",
                "connections[1].credential.value: inline secrets",
            ),
            (
                "type = \"header\"",
                "type = \"magic\"",
                "connections[1].credential",
            ),
            ("name = \"crm\"", "name = \"c/rm\"", "connections[1].name"),
            (
                "upstream_url =",
                "tls = \"prefer\"\nupstream_url =",
                "connections[1].tls",
            ),
        ];
        for (from, to, expected) in cases {
            let text = format!("{BASE}{}", HTTP.replace(from, to));
            let err = check(&text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{from} -> {to}: {err}");
        }
        // Postgres connections may not carry HTTP keys.
        let err = check(&BASE.replace("user = \"portcullis\"", "user = \"portcullis\"\nhosts = [\"x\"]"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("connections[0].hosts"), "{err}");
        let masked = format!(
            "{BASE}{HTTP}\n[[masking.rules]]\ndetectors = [\"email\"]\nconnections = [\"crm\"]\nstrategy = \"redact\"\n"
        );
        // Masking rules may name http connections (their response bodies are masked); other_content
        // is an http key with two values.
        check(&masked).unwrap();
        check(&masked.replace("context_headers", "other_content = \"pass\"\ncontext_headers")).unwrap();
        let err = check(&masked.replace("context_headers", "other_content = \"drop\"\ncontext_headers"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("connections[1].other_content"), "{err}");
        let err = check(&BASE.replace(
            "user = \"portcullis\"",
            "user = \"portcullis\"\nother_content = \"pass\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("connections[0].other_content"), "{err}");
        let twice = format!("{BASE}{HTTP}{}", HTTP.replace("\"crm\"", "\"crm2\""));
        assert!(
            check(&twice)
                .unwrap_err()
                .to_string()
                .contains("already selects another connection")
        );
    }

    #[test]
    fn errors_name_the_key_path() {
        let cases: &[(&str, &str)] = &[
            ("[server.postgres]\nlisten = 5", "server.postgres.listen"),
            ("[server]\nlog_fromat = 'json'", "server"),
            (
                "[[connections]]\nname = 'x'\nprotocol = 'mysql'",
                "connections[0].protocol",
            ),
        ];
        for (text, path) in cases {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with(path),
                "{text:?} gave {err:?}, expected path {path}"
            );
        }
        let inline = BASE.replace("${PATH}", "hunter2");
        let err = check(&inline).unwrap_err().to_string();
        assert!(
            err.starts_with("connections[0].password: inline secrets"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        let unset = BASE.replace("${PATH}", "${PORTCULLIS_TEST_SURELY_UNSET}");
        assert!(check(&unset).unwrap_err().to_string().contains("is not set"));
        let nobody = BASE.replace("files = [", "files = [] #");
        assert!(
            check(&nobody)
                .unwrap_err()
                .to_string()
                .starts_with("policy.files: no policy files")
        );
        let missing = BASE.replace("agents-guarded-writes", "no-such-file");
        let err = check(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("policy.files") && err.contains("no-such-file"),
            "{err}"
        );
        let config = check(BASE).unwrap();
        // Setting variables is `unsafe` in edition 2024 (and forbidden here), so read one every process has.
        assert_eq!(
            config.connections[0].resolve_password().unwrap().expose(),
            &std::env::var("PATH").unwrap()
        );
    }
}
