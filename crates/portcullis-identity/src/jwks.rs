//! `KeyCache`: one issuer's public signing keys, fetched over HTTP (OIDC discovery, JWKS) and refreshed.
//!
//! Invariants: a failed refresh never drops keys that were fetched before; every fetch goes through one
//! mutex per issuer, so concurrent verifiers share a single in-flight request; fetches triggered by tokens
//! are rate-limited so a flood of made-up key ids cannot turn the gateway into a load generator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Keys older than this are refreshed in the background; they keep working meanwhile.
const MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// At most one refresh per issuer in this window when a token names an unknown key (or the keys are stale).
const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// While no key was ever fetched, tokens retry the fetch at most this often.
const NO_KEYS_RETRY: Duration = Duration::from_secs(1);
/// Discovery documents and key sets are small; anything larger is refused rather than buffered.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One public key an issuer publishes for signatures.
#[derive(Debug)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    /// The `alg` the JWK restricts itself to, when it names one.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    /// Whether a token signed with `alg` may be checked against this key.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.alg.is_none_or(|own| own == alg)
    }
}

/// A snapshot of an issuer's keys, shared by every verification that reads it.
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<VerifyKey>>,
    fetched_at: Instant,
}

/// What caused a fetch; each cause has its own rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchReason {
    /// Start-up: always allowed.
    WarmUp,
    /// A token arrived and no key was ever fetched.
    NoKeys,
    /// A token names a key id the cached set lacks (the issuer may have rotated).
    UnknownKey,
    /// The cached set is older than [`MAX_AGE`].
    Stale,
}

/// When fetches happened, for the rate limits, and where the key set lives once discovered.
#[derive(Debug, Default)]
pub(crate) struct FetchLog {
    last_attempt: Option<Instant>,
    last_unknown_key: Option<Instant>,
    discovered_jwks_uri: Option<String>,
}

/// The keys of one issuer and the means to refresh them.
#[derive(Debug)]
pub(crate) struct KeyCache {
    issuer: String,
    alias: String,
    configured_jwks_uri: Option<String>,
    http: reqwest::Client,
    current: RwLock<Option<Arc<KeySet>>>,
    fetches: Arc<Mutex<FetchLog>>,
    /// Counts fetch attempts; a waiter that sees it move knows someone else just fetched for it.
    attempts: AtomicU64,
}

/// Why a fetch failed. Logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} returned more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} returned invalid JSON: {source}")]
    Json { url: String, source: serde_json::Error },
    #[error("the discovery document names issuer {found:?}, not the configured one")]
    IssuerMismatch { found: String },
    #[error("the key set has no usable signing key")]
    NoUsableKeys,
}

impl KeyCache {
    pub(crate) fn new(
        issuer: String,
        alias: String,
        jwks_uri: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            issuer,
            alias,
            configured_jwks_uri: jwks_uri,
            http,
            current: RwLock::new(None),
            fetches: Arc::new(Mutex::new(FetchLog::default())),
            attempts: AtomicU64::new(0),
        }
    }

    /// The keys as of now, if any were ever fetched.
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock only means a writer panicked mid-assignment of an `Option<Arc<_>>`, which
        // cannot leave it half-written; the value is still sound.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A counter to pass to [`KeyCache::fetch`], read before looking at [`KeyCache::current`].
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }

    /// Fetches the keys unless another task already did since `seen_attempts` or the rate limit for
    /// `reason` says no. Failures are logged; cached keys stay.
    pub(crate) async fn fetch(&self, reason: FetchReason, seen_attempts: u64) {
        let log = self.fetches.clone().lock_owned().await;
        if self.attempts() != seen_attempts {
            return;
        }
        if !may_fetch(reason, &log, Instant::now()) {
            tracing::debug!(issuer = %self.alias, ?reason, "key refresh skipped: rate limited");
            return;
        }
        self.fetch_locked(log, reason).await;
    }

    /// Starts a background refresh when `set` is older than [`MAX_AGE`]; never waits for it.
    pub(crate) fn refresh_if_stale(self: &Arc<Self>, set: &KeySet) {
        if set.fetched_at.elapsed() < MAX_AGE {
            return;
        }
        // Without a runtime there is nothing to run the refresh on; the next call will try again.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // A busy lock means a fetch is already in flight, which is all a stale set needs.
        let Ok(log) = self.fetches.clone().try_lock_owned() else {
            return;
        };
        if !may_fetch(FetchReason::Stale, &log, Instant::now()) {
            return;
        }
        let cache = Arc::clone(self);
        runtime.spawn(async move { cache.fetch_locked(log, FetchReason::Stale).await });
    }

    async fn fetch_locked(&self, mut log: OwnedMutexGuard<FetchLog>, reason: FetchReason) {
        let now = Instant::now();
        log.last_attempt = Some(now);
        if reason == FetchReason::UnknownKey {
            log.last_unknown_key = Some(now);
        }
        let outcome = self.download(&mut log).await;
        match outcome {
            Ok(keys) => {
                tracing::info!(issuer = %self.alias, keys = keys.len(), ?reason, "issuer keys fetched");
                let set = Arc::new(KeySet {
                    keys,
                    fetched_at: Instant::now(),
                });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(set);
            }
            Err(error) => {
                // Re-run discovery next time: the JWKS may have moved.
                log.discovered_jwks_uri = None;
                let cached = self.current().is_some();
                tracing::warn!(issuer = %self.alias, %error, ?reason, cached_keys_kept = cached,
                    "could not fetch issuer keys");
            }
        }
        self.attempts.fetch_add(1, Ordering::AcqRel);
    }

    async fn download(&self, log: &mut FetchLog) -> Result<Vec<Arc<VerifyKey>>, FetchError> {
        let jwks_uri = match (&self.configured_jwks_uri, &log.discovered_jwks_uri) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let uri = self.discover().await?;
                log.discovered_jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: RawKeySet = self.get_json(&jwks_uri).await?;
        let keys: Vec<Arc<VerifyKey>> = set
            .keys
            .into_iter()
            .filter_map(|raw| self.usable_key(raw))
            .collect();
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        Ok(keys)
    }

    /// OIDC discovery: the issuer's own document says where its keys are, and must name the same issuer.
    async fn discover(&self) -> Result<String, FetchError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer != self.issuer {
            return Err(FetchError::IssuerMismatch { found: doc.issuer });
        }
        Ok(doc.jwks_uri)
    }

    /// Turns one published JWK into a verification key, or skips it (encryption keys, symmetric keys,
    /// key types the crypto backend does not know). One odd key must not spoil the set.
    fn usable_key(&self, raw: serde_json::Value) -> Option<Arc<VerifyKey>> {
        let jwk: Jwk = match serde_json::from_value(raw) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::debug!(issuer = %self.alias, %error, "skipping an unparseable JWK");
                return None;
            }
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return None;
        }
        let alg = match jwk.common.key_algorithm {
            Some(declared) => Some(Algorithm::try_from(declared).ok()?),
            None => None,
        };
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        // A symmetric key in a public key set is a mistake or an attack; it never verifies anything.
        if key.family() == AlgorithmFamily::Hmac {
            return None;
        }
        Some(Arc::new(VerifyKey {
            kid: jwk.common.key_id,
            alg,
            key,
        }))
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge { url: url.to_owned() };
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len().saturating_add(chunk.len()) > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| FetchError::Json {
            url: url.to_owned(),
            source,
        })
    }
}

/// The rate limits, as a pure function of the fetch history so they can be tested without waiting.
fn may_fetch(reason: FetchReason, log: &FetchLog, now: Instant) -> bool {
    let quiet_for = |last: Option<Instant>, interval: Duration| {
        last.is_none_or(|at| now.saturating_duration_since(at) >= interval)
    };
    match reason {
        FetchReason::WarmUp => true,
        FetchReason::NoKeys => quiet_for(log.last_attempt, NO_KEYS_RETRY),
        FetchReason::UnknownKey => quiet_for(log.last_unknown_key, REFRESH_INTERVAL),
        FetchReason::Stale => quiet_for(log.last_attempt, REFRESH_INTERVAL),
    }
}

/// The part of an OIDC discovery document the verifier needs.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// A JWK set whose keys are parsed one by one, so an unknown key type does not reject the whole set.
#[derive(Debug, Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits() {
        let t0 = Instant::now();
        let later = |secs| t0 + Duration::from_secs(secs);
        let never = FetchLog::default();
        for reason in [
            FetchReason::WarmUp,
            FetchReason::NoKeys,
            FetchReason::UnknownKey,
            FetchReason::Stale,
        ] {
            assert!(may_fetch(reason, &never, t0), "{reason:?} with no history");
        }

        // Right after the first fetch, a rotated key may still be looked up at once...
        let fetched = FetchLog {
            last_attempt: Some(t0),
            ..FetchLog::default()
        };
        assert!(may_fetch(FetchReason::UnknownKey, &fetched, later(0)));
        assert!(!may_fetch(FetchReason::Stale, &fetched, later(9)));
        assert!(may_fetch(FetchReason::Stale, &fetched, later(10)));
        assert!(!may_fetch(FetchReason::NoKeys, &fetched, t0));
        assert!(may_fetch(FetchReason::NoKeys, &fetched, later(1)));

        // ...but only once per interval.
        let refreshed = FetchLog {
            last_attempt: Some(t0),
            last_unknown_key: Some(t0),
            ..FetchLog::default()
        };
        assert!(!may_fetch(FetchReason::UnknownKey, &refreshed, later(9)));
        assert!(may_fetch(FetchReason::UnknownKey, &refreshed, later(10)));
        assert!(may_fetch(FetchReason::WarmUp, &refreshed, t0));
    }
}
