//! `IssuerSettings`: one trusted token issuer as the operator configures it, and its validation.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};

use portcullis_core::{Fault, Party};

/// One `[[identity.issuers]]` table of the operator's TOML config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The issuer URL; must equal the token's `iss` exactly.
    pub issuer: String,
    /// Audiences this gateway answers to; the token's `aud` must contain at least one. A single string or
    /// a list in TOML.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Where the issuer publishes its keys. When absent, OIDC discovery finds it.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The short name used in policy (`Agent::"<alias>/<subject>"`).
    pub alias: String,
    /// The claim that holds the identity's groups (a string or an array of strings). A dotted path such as
    /// `realm_access.roles` reaches into nested objects when no claim has the literal name.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Signature algorithms accepted from this issuer.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway", deserialize_with = "human_duration")]
    pub leeway: Duration,
    /// The longest token lifetime accepted (`exp - iat`, or `exp - now` without `iat`).
    #[serde(default = "default_max_lifetime", deserialize_with = "human_duration")]
    pub max_lifetime: Duration,
}

/// A configuration mistake found before any token is seen. These are the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Two issuer tables name the same `issuer`; tokens could not be routed to one of them.
    #[error("issuer {issuer:?} is configured more than once")]
    DuplicateIssuer {
        /// The repeated issuer URL.
        issuer: String,
    },
    /// Two issuer tables share an alias, so two identities could get the same policy name.
    #[error("issuer alias {alias:?} is used more than once")]
    DuplicateAlias {
        /// The repeated alias.
        alias: String,
    },
    /// A required text field is empty.
    #[error("issuer {alias:?}: `{field}` must not be empty")]
    Empty {
        /// The issuer's alias (or its URL when the alias itself is empty).
        alias: String,
        /// The empty field.
        field: &'static str,
    },
    /// `issuer` or `jwks_uri` is not an absolute http(s) URL.
    #[error("issuer {alias:?}: `{field}` is not an http(s) URL")]
    BadUrl {
        /// The issuer's alias.
        alias: String,
        /// The offending field.
        field: &'static str,
    },
    /// The allow-list names an algorithm that is unknown or unsafe (`none`, HMAC).
    #[error(
        "issuer {alias:?}: algorithm {algorithm:?} is not allowed (use RS256/384/512, PS256/384/512, ES256/384 or EdDSA)"
    )]
    DisallowedAlgorithm {
        /// The issuer's alias.
        alias: String,
        /// The algorithm as written in the config.
        algorithm: String,
    },
    /// The HTTP client for fetching keys could not be built (a local TLS set-up problem).
    #[error("cannot build the HTTP client used to fetch issuer keys")]
    HttpClient(#[source] reqwest::Error),
}

impl Fault for SettingsError {
    fn party(&self) -> Party {
        Party::Gateway
    }
}

/// Settings after validation: what the verifier actually consults per token.
#[derive(Debug, Clone)]
pub(crate) struct ValidIssuer {
    pub(crate) issuer: String,
    pub(crate) alias: String,
    pub(crate) audience: Vec<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) groups_claim: String,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) max_lifetime: Duration,
}

/// Algorithms an operator may allow. HMAC is absent on purpose: a shared secret is not a machine
/// identity, and allowing it is what makes the RSA-public-key-as-HMAC-secret confusion possible.
const ALLOWED_IN_CONFIG: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Validates every issuer and the set as a whole. Performs no I/O.
/// Checks a set of issuer settings as [`crate::Verifier::new`] would, without building anything: for
/// `config check`.
pub fn check_all(issuers: &[IssuerSettings]) -> Result<(), SettingsError> {
    validate_all(issuers.to_vec()).map(|_| ())
}

pub(crate) fn validate_all(issuers: Vec<IssuerSettings>) -> Result<Vec<ValidIssuer>, SettingsError> {
    let mut seen_issuers = HashSet::new();
    let mut seen_aliases = HashSet::new();
    let mut valid = Vec::with_capacity(issuers.len());
    for settings in issuers {
        let issuer = settings.validate()?;
        if !seen_issuers.insert(issuer.issuer.clone()) {
            return Err(SettingsError::DuplicateIssuer {
                issuer: issuer.issuer,
            });
        }
        if !seen_aliases.insert(issuer.alias.clone()) {
            return Err(SettingsError::DuplicateAlias { alias: issuer.alias });
        }
        valid.push(issuer);
    }
    Ok(valid)
}

impl IssuerSettings {
    fn validate(self) -> Result<ValidIssuer, SettingsError> {
        let alias = if self.alias.is_empty() {
            self.issuer.clone()
        } else {
            self.alias.clone()
        };
        let empty = |field| SettingsError::Empty {
            alias: alias.clone(),
            field,
        };
        if self.alias.trim().is_empty() {
            return Err(empty("alias"));
        }
        if self.issuer.trim().is_empty() {
            return Err(empty("issuer"));
        }
        if self.groups_claim.trim().is_empty() {
            return Err(empty("groups_claim"));
        }
        let audience: Vec<String> = self.audience.into_iter().filter(|a| !a.is_empty()).collect();
        if audience.is_empty() {
            return Err(empty("audience"));
        }
        if self.algorithms.is_empty() {
            return Err(empty("algorithms"));
        }
        // Discovery needs a URL; with an explicit `jwks_uri` the issuer is just a name to match (some
        // issuers, such as SPIFFE trust domains, use non-URL names).
        if self.jwks_uri.is_none() && !is_http_url(&self.issuer) {
            return Err(SettingsError::BadUrl {
                alias,
                field: "issuer",
            });
        }
        if self.jwks_uri.as_deref().is_some_and(|uri| !is_http_url(uri)) {
            return Err(SettingsError::BadUrl {
                alias,
                field: "jwks_uri",
            });
        }
        let mut algorithms = Vec::with_capacity(self.algorithms.len());
        for name in &self.algorithms {
            match Algorithm::from_str(name) {
                Ok(alg) if ALLOWED_IN_CONFIG.contains(&alg) => algorithms.push(alg),
                _ => {
                    return Err(SettingsError::DisallowedAlgorithm {
                        alias,
                        algorithm: name.clone(),
                    });
                }
            }
        }
        Ok(ValidIssuer {
            issuer: self.issuer,
            alias: self.alias,
            audience,
            jwks_uri: self.jwks_uri,
            groups_claim: self.groups_claim,
            algorithms,
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
        })
    }
}

fn is_http_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA", "PS256"].map(str::to_owned).to_vec()
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_max_lifetime() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}

/// Accepts `audience = "x"` as well as `audience = ["x", "y"]`.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// Reads durations written for humans: `60s`, `5m`, `24h`, `1h 30m`.
fn human_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct Human;
    impl serde::de::Visitor<'_> for Human {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"60s\", \"5m\" or \"24h\"")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(Human)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<IssuerSettings, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn defaults_and_single_audience() {
        let s = parse(serde_json::json!({
            "issuer": "https://idp.example", "audience": "portcullis", "alias": "corp"
        }))
        .unwrap();
        assert_eq!(s.audience, vec!["portcullis"]);
        assert_eq!(s.groups_claim, "groups");
        assert_eq!(s.algorithms, vec!["RS256", "ES256", "EdDSA", "PS256"]);
        assert_eq!(s.leeway, Duration::from_secs(60));
        assert_eq!(s.max_lifetime, Duration::from_secs(86_400));
        assert!(validate_all(vec![s]).is_ok());
    }

    #[test]
    fn list_audience_and_human_durations() {
        let s = parse(serde_json::json!({
            "issuer": "https://idp.example", "audience": ["a", "b"], "alias": "corp",
            "leeway": "5s", "max_lifetime": "1h 30m"
        }))
        .unwrap();
        assert_eq!(s.audience, vec!["a", "b"]);
        assert_eq!(s.leeway, Duration::from_secs(5));
        assert_eq!(s.max_lifetime, Duration::from_secs(5400));
    }

    #[test]
    fn non_url_issuer_needs_a_jwks_uri() {
        let s = parse(serde_json::json!({
            "issuer": "spiffe://example.org", "audience": "a", "alias": "spiffe",
            "jwks_uri": "https://bundle.example.org/jwks"
        }))
        .unwrap();
        assert!(validate_all(vec![s]).is_ok());
        let s = parse(serde_json::json!({
            "issuer": "https://idp.example", "audience": "a", "alias": "c", "jwks_uri": "file:///etc/jwks"
        }))
        .unwrap();
        assert!(validate_all(vec![s]).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            parse(serde_json::json!({
                "issuer": "https://idp.example", "audience": "a", "alias": "c", "audiences": "b"
            }))
            .is_err()
        );
    }

    #[test]
    fn unsafe_or_unknown_algorithms_are_config_errors() {
        for alg in ["none", "HS256", "HS512", "RS1", "es256"] {
            let s = parse(serde_json::json!({
                "issuer": "https://idp.example", "audience": "a", "alias": "c", "algorithms": [alg]
            }))
            .unwrap();
            let err = validate_all(vec![s]).unwrap_err();
            assert!(
                matches!(err, SettingsError::DisallowedAlgorithm { .. }),
                "{alg}: {err}"
            );
        }
    }

    #[test]
    fn bad_sets_are_refused() {
        let one = |issuer: &str, alias: &str| {
            parse(serde_json::json!({"issuer": issuer, "audience": "a", "alias": alias})).unwrap()
        };
        let cases = [
            (
                vec![one("https://a", "x"), one("https://a", "y")],
                "more than once",
            ),
            (
                vec![one("https://a", "x"), one("https://b", "x")],
                "more than once",
            ),
            (vec![one("ftp://a", "x")], "http(s) URL"),
            (vec![one("spiffe-domain", "x")], "http(s) URL"),
            (vec![one("https://a", "")], "must not be empty"),
        ];
        for (set, expected) in cases {
            let err = validate_all(set).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
