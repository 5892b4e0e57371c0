//! The operator's TOML configuration: its shape, secret references, and validation that names the bad key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_core::Secret;
use portcullis_identity::IssuerSettings;
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

/// `[server.admin]`: health, metrics, and the development issuer's documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminListenerConfig {
    pub listen: SocketAddr,
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

/// One `[[connections]]` entry: a named target reached through the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// What clients put in `dbname`.
    pub name: String,
    pub protocol: Protocol,
    /// `host:port` of the database.
    pub upstream: String,
    pub database: String,
    pub user: String,
    /// `${ENV_VAR}`; never a literal.
    #[serde(default)]
    pub password: Option<String>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: UpstreamTlsMode,
    /// CA bundle for `verify-full`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Interim access control until policy lands: token groups allowed to connect.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Interim access control: principals (`<issuer alias>/<subject>`) allowed to connect.
    #[serde(default)]
    pub allow_subjects: Vec<String>,
}

/// The protocol a connection speaks. PostgreSQL only, for now.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
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

impl Config {
    /// Reads, parses and validates a configuration file. Secret references are checked for presence
    /// (the environment variable is set, the file is readable) but their values are not kept here.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text)?;
        config.validate()?;
        Ok(config)
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
    pub fn validate(&self) -> Result<(), ConfigError> {
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
            if c.upstream
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid(at("upstream"), "must be host:port"));
            }
            if c.tls == UpstreamTlsMode::VerifyFull && c.ca_file.is_none() {
                return Err(invalid(at("ca_file"), "verify-full needs ca_file"));
            }
            if c.allow_groups.is_empty() && c.allow_subjects.is_empty() {
                return Err(invalid(
                    at("allow_groups"),
                    "nobody may connect: list allow_groups or allow_subjects (deny by default)",
                ));
            }
            c.resolve_password().map_err(|message| ConfigError::Invalid {
                path: at(c.password_key()),
                message,
            })?;
        }
        Ok(())
    }
}

impl ConnectionConfig {
    /// Reads the upstream password from its `${ENV}` reference or file.
    pub fn resolve_password(&self) -> Result<Secret<String>, String> {
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => Err("set password or password_file, not both".to_owned()),
            (None, None) => Err("missing: set password = \"${ENV_VAR}\" or password_file".to_owned()),
            (Some(reference), None) => resolve_env_reference(reference),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let line = text.lines().next().unwrap_or_default().to_owned();
                if line.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                Ok(Secret::new(line))
            }
        }
    }

    fn password_key(&self) -> &'static str {
        if self.password_file.is_some() && self.password.is_none() {
            "password_file"
        } else {
            "password"
        }
    }

    /// Whether the interim allow-list admits a principal with this name and these groups.
    pub fn admits(&self, principal_name: &str, groups: &[String]) -> bool {
        self.allow_subjects.iter().any(|s| s == principal_name)
            || groups.iter().any(|g| self.allow_groups.iter().any(|a| a == g))
    }
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
        allow_groups = ["agents"]
    "#;

    fn check(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text)?;
        config.validate()?;
        Ok(config)
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
        let nobody = BASE.replace("allow_groups = [\"agents\"]", "");
        assert!(
            check(&nobody)
                .unwrap_err()
                .to_string()
                .starts_with("connections[0].allow_groups")
        );
        let config = check(BASE).unwrap();
        // Setting variables is `unsafe` in edition 2024 (and forbidden here), so read one every process has.
        assert_eq!(
            config.connections[0].resolve_password().unwrap().expose(),
            &std::env::var("PATH").unwrap()
        );
    }

    #[test]
    fn admits_by_group_or_subject() {
        let mut c: ConnectionConfig = toml::from_str(
            "name='a'\nprotocol='postgres'\nupstream='h:1'\ndatabase='d'\nuser='u'\nallow_groups=['g']",
        )
        .unwrap();
        assert!(c.admits("dev/x", &["g".into()]));
        assert!(!c.admits("dev/x", &["h".into()]));
        c.allow_subjects = vec!["dev/x".into()];
        assert!(c.admits("dev/x", &[]));
    }
}
