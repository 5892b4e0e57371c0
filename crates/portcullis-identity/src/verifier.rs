//! `Verifier`: turns a presented JWT into a `Principal`, or a `Rejected` that says why without echoing it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use portcullis_core::{Fault, Party, Principal, RejectReason};

use crate::jwks::{FetchReason, KeyCache, KeySet, VerifyKey};
use crate::settings::{IssuerSettings, SettingsError, ValidIssuer, validate_all};
use crate::unverified::Unverified;

/// Time allowed for each discovery or JWKS request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies tokens from the configured issuers. Cheap to clone; clones share key caches.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuers: Arc<HashMap<String, Issuer>>,
}

/// A refused token. `detail` is written by Portcullis for the client and the logs: it never contains the
/// token or any part of it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", reason.class())]
pub struct Rejected {
    /// The class of refusal, shown to the client and used as a metric label.
    pub reason: RejectReason,
    /// A fixed, human explanation; safe to show and to log.
    pub detail: String,
}

impl Rejected {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl Fault for Rejected {
    fn party(&self) -> Party {
        match self.reason {
            // The client presented a good-looking token, but the issuer's key set cannot be fetched.
            RejectReason::IssuerUnavailable => Party::Upstream,
            _ => Party::Client,
        }
    }
}

/// One configured issuer with its key cache.
#[derive(Debug)]
struct Issuer {
    settings: ValidIssuer,
    keys: Arc<KeyCache>,
}

impl Verifier {
    /// Validates the issuer settings and prepares empty key caches. Performs no I/O: keys are fetched by
    /// [`Verifier::warm_up`] or on first use.
    pub fn new(issuers: Vec<IssuerSettings>) -> Result<Self, SettingsError> {
        let valid = validate_all(issuers)?;
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SettingsError::HttpClient)?;
        let issuers = valid
            .into_iter()
            .map(|settings| {
                let keys = KeyCache::new(
                    settings.issuer.clone(),
                    settings.alias.clone(),
                    settings.jwks_uri.clone(),
                    http.clone(),
                );
                (
                    settings.issuer.clone(),
                    Issuer {
                        settings,
                        keys: Arc::new(keys),
                    },
                )
            })
            .collect();
        Ok(Self {
            issuers: Arc::new(issuers),
        })
    }

    /// Verifies `token` completely: algorithm, issuer, key, signature, audience, time claims, lifetime.
    pub async fn verify(&self, token: &str) -> Result<Principal, Rejected> {
        // Header and payload are read unverified only to route the token: which issuer, which key, which
        // algorithm. Nothing read here is trusted until the signature has been checked.
        let unverified = Unverified::peek(token)?;
        let issuer = self.issuers.get(&unverified.iss).ok_or_else(|| {
            Rejected::new(
                RejectReason::UnknownIssuer,
                "the token's issuer is not configured",
            )
        })?;
        issuer.check_algorithm(unverified.alg)?;
        let key = issuer.key_for(unverified.alg, unverified.kid.as_deref()).await?;
        let claims = issuer.check_signature_and_claims(token, unverified.alg, &key)?;
        issuer.principal(claims)
    }

    /// Fetches every issuer's keys once, concurrently. Failures are logged and retried on first use.
    pub async fn warm_up(&self) {
        let mut fetches = tokio::task::JoinSet::new();
        for issuer in self.issuers.values() {
            let keys = Arc::clone(&issuer.keys);
            fetches.spawn(async move {
                let seen = keys.attempts();
                keys.fetch(FetchReason::WarmUp, seen).await;
            });
        }
        while let Some(joined) = fetches.join_next().await {
            if let Err(error) = joined {
                tracing::warn!(%error, "issuer key warm-up task failed");
            }
        }
    }
}

/// The outcome of looking a token's key up in one key set.
enum Lookup {
    Found(Arc<VerifyKey>),
    /// The key exists but is of another type (or restricted to another algorithm) than the token claims.
    Incompatible,
    /// No `kid`, and several keys would fit: guessing would be unsafe.
    Ambiguous,
    NotFound,
}

impl Issuer {
    fn check_algorithm(&self, alg: Algorithm) -> Result<(), Rejected> {
        if self.settings.algorithms.contains(&alg) {
            return Ok(());
        }
        let allowed: Vec<String> = self
            .settings
            .algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect();
        Err(Rejected::new(
            RejectReason::DisallowedAlgorithm,
            format!(
                "issuer {} accepts only {}; the token uses another algorithm",
                self.settings.alias,
                allowed.join(", ")
            ),
        ))
    }

    /// Finds the verification key, fetching the issuer's keys on first use and once more (rate-limited)
    /// when the token names a key the cache lacks, as happens right after a key rotation.
    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<Arc<VerifyKey>, Rejected> {
        let seen = self.keys.attempts();
        let set = match self.keys.current() {
            Some(set) => {
                self.keys.refresh_if_stale(&set);
                set
            }
            None => {
                self.keys.fetch(FetchReason::NoKeys, seen).await;
                self.keys.current().ok_or_else(|| {
                    Rejected::new(
                        RejectReason::IssuerUnavailable,
                        format!("the keys of issuer {} cannot be fetched", self.settings.alias),
                    )
                })?
            }
        };
        let lookup = match lookup(&set, alg, kid) {
            Lookup::NotFound => {
                let seen = self.keys.attempts();
                self.keys.fetch(FetchReason::UnknownKey, seen).await;
                self.keys
                    .current()
                    .map_or(Lookup::NotFound, |fresh| lookup(&fresh, alg, kid))
            }
            other => other,
        };
        match lookup {
            Lookup::Found(key) => Ok(key),
            Lookup::Incompatible => Err(Rejected::new(
                RejectReason::DisallowedAlgorithm,
                "the token's algorithm does not match the type of the key it names",
            )),
            Lookup::Ambiguous => Err(Rejected::new(
                RejectReason::UnknownKey,
                "the token names no key id (kid) and the issuer publishes several matching keys",
            )),
            Lookup::NotFound => Err(Rejected::new(
                RejectReason::UnknownKey,
                format!(
                    "the token's key id is not in the key set of issuer {}",
                    self.settings.alias
                ),
            )),
        }
    }

    /// Verifies the signature, then `exp`, `nbf`, `aud`, `iss` (jsonwebtoken checks claims only after the
    /// signature), then what jsonwebtoken does not: `iat` in the future and the maximum lifetime.
    fn check_signature_and_claims(
        &self,
        token: &str,
        alg: Algorithm,
        key: &VerifyKey,
    ) -> Result<Map<String, Value>, Rejected> {
        let settings = &self.settings;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&settings.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|error| rejection_for(error.kind()))?
            .claims;

        let now = unix_now();
        let iat = optional_time(&claims, "iat")?;
        if iat.is_some_and(|iat| iat > now.saturating_add(validation.leeway)) {
            return Err(Rejected::new(
                RejectReason::NotYetValid,
                "the token is issued in the future (iat)",
            ));
        }
        let exp = required_time(&claims, "exp")?;
        let lifetime = exp.saturating_sub(iat.unwrap_or(now));
        if lifetime > settings.max_lifetime.as_secs() {
            return Err(Rejected::new(
                RejectReason::LifetimeTooLong,
                format!(
                    "issuer {} accepts tokens valid for at most {}",
                    settings.alias,
                    humantime::format_duration(settings.max_lifetime)
                ),
            ));
        }
        Ok(claims)
    }

    /// Builds the principal from claims whose signature and times have been checked.
    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, Rejected> {
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(malformed("the token has no subject (sub)")),
        };
        let token_id = match claims.get("jti") {
            None | Some(Value::Null) => None,
            Some(Value::String(jti)) => Some(jti.clone()),
            Some(_) => return Err(malformed("the token id (jti) is not a string")),
        };
        let groups = groups(&claims, &self.settings.groups_claim)?;
        let issued_at = optional_time(&claims, "iat")?.map(system_time).transpose()?;
        let expires_at = system_time(required_time(&claims, "exp")?)?;
        Ok(Principal {
            issuer_alias: self.settings.alias.clone(),
            issuer: self.settings.issuer.clone(),
            subject,
            groups,
            token_id,
            issued_at,
            expires_at,
        })
    }
}

fn lookup(set: &KeySet, alg: Algorithm, kid: Option<&str>) -> Lookup {
    match kid {
        Some(kid) => {
            let mut named = set
                .keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Lookup::NotFound;
            }
            named
                .find(|key| key.accepts(alg))
                .map_or(Lookup::Incompatible, |key| Lookup::Found(key.clone()))
        }
        None => {
            let mut fitting = set.keys.iter().filter(|key| key.accepts(alg));
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Lookup::Found(key.clone()),
                (Some(_), Some(_)) => Lookup::Ambiguous,
                (None, _) => Lookup::NotFound,
            }
        }
    }
}

/// Maps jsonwebtoken's verdicts to reasons. The library's own messages are not used: some quote parts of
/// the token's JSON.
fn rejection_for(kind: &ErrorKind) -> Rejected {
    let (reason, detail) = match kind {
        ErrorKind::ExpiredSignature => (RejectReason::Expired, "the token has expired (exp)"),
        ErrorKind::ImmatureSignature => (RejectReason::NotYetValid, "the token is not valid yet (nbf)"),
        ErrorKind::InvalidAudience => (
            RejectReason::WrongAudience,
            "the token is meant for another audience (aud)",
        ),
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
            (RejectReason::WrongAudience, "the token names no audience (aud)")
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => {
            (RejectReason::Malformed, "the token has no subject (sub)")
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
            (RejectReason::Malformed, "the token has no expiry (exp)")
        }
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => (
            RejectReason::Malformed,
            "a required claim is missing or not of the right type",
        ),
        ErrorKind::InvalidIssuer => (
            RejectReason::UnknownIssuer,
            "the token's issuer is not configured",
        ),
        ErrorKind::InvalidSignature => (RejectReason::BadSignature, "the signature does not verify"),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => (
            RejectReason::DisallowedAlgorithm,
            "the token's algorithm does not fit the issuer's key",
        ),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            (RejectReason::Malformed, "the token is not a well-formed JWT")
        }
        // Everything else (an unusable published key, a provider error) means the signature could not be
        // verified: refuse.
        _ => (
            RejectReason::BadSignature,
            "the signature cannot be verified with the issuer's key",
        ),
    };
    Rejected::new(reason, detail)
}

/// Reads the groups claim: a string, an array of strings, or absent. A dotted name reaches into nested
/// objects (`realm_access.roles`) when no claim carries the literal name.
fn groups(claims: &Map<String, Value>, claim: &str) -> Result<Vec<String>, Rejected> {
    let value = claims.get(claim).or_else(|| {
        let mut path = claim.split('.');
        let first = claims.get(path.next()?)?;
        path.try_fold(first, |value, step| value.as_object()?.get(step))
    });
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(group)) => Ok(vec![group.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("the groups claim holds something other than strings")),
        Some(_) => Err(malformed(
            "the groups claim is neither a string nor a list of strings",
        )),
    }
}

fn required_time(claims: &Map<String, Value>, name: &'static str) -> Result<u64, Rejected> {
    optional_time(claims, name)?.ok_or_else(|| malformed(format!("the token has no `{name}` claim")))
}

/// A NumericDate claim in whole seconds. Fractions are dropped, as jsonwebtoken does.
fn optional_time(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, Rejected> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    seconds
        .map(Some)
        .ok_or_else(|| malformed(format!("the `{name}` claim is not a valid time")))
}

fn system_time(unix_seconds: u64) -> Result<SystemTime, Rejected> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(unix_seconds))
        .ok_or_else(|| malformed("a time claim is out of range"))
}

fn unix_now() -> u64 {
    // A clock before 1970 is a broken host; 0 then makes every token look expired, which fails closed.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn malformed(detail: impl Into<String>) -> Rejected {
    Rejected::new(RejectReason::Malformed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_claim_shapes() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let cases: [(Value, &str, Option<Vec<&str>>); 7] = [
            (serde_json::json!({}), "groups", Some(vec![])),
            (serde_json::json!({"groups": null}), "groups", Some(vec![])),
            (serde_json::json!({"groups": "ops"}), "groups", Some(vec!["ops"])),
            (
                serde_json::json!({"groups": ["a", "b"]}),
                "groups",
                Some(vec!["a", "b"]),
            ),
            (serde_json::json!({"groups": ["a", 1]}), "groups", None),
            (serde_json::json!({"groups": {"a": 1}}), "groups", None),
            (
                serde_json::json!({"realm_access": {"roles": ["r"]}}),
                "realm_access.roles",
                Some(vec!["r"]),
            ),
        ];
        for (json, claim, expected) in cases {
            let got = groups(&claims(json.clone()), claim).ok();
            let expected = expected.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, expected, "{json}");
        }
    }

    #[test]
    fn time_claims() {
        let claims = serde_json::json!({"a": 10, "b": 10.7, "c": "10", "d": -1})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(optional_time(&claims, "a").unwrap(), Some(10));
        assert_eq!(optional_time(&claims, "b").unwrap(), Some(10));
        assert!(optional_time(&claims, "c").is_err());
        assert!(optional_time(&claims, "d").is_err());
        assert_eq!(optional_time(&claims, "e").unwrap(), None);
    }
}
