//! The credential the gateway adds to every request it forwards: a static header, HTTP Basic, or an
//! OAuth 2.0 client-credentials token it obtains, caches until shortly before expiry, and refreshes
//! once for all waiting requests.

use std::sync::RwLock;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use portcullis_core::{Fault, Party, Secret};
use tokio::time::Instant;

/// How long before its expiry a cached token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// The lifetime assumed when a token endpoint does not say (`expires_in` absent).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Time allowed for a token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's upstream credential, ready to apply.
#[derive(Debug)]
pub enum UpstreamCredential {
    None,
    /// Set (replacing any value the agent sent) on every request.
    Header {
        name: HeaderName,
        value: Secret<HeaderValue>,
    },
    /// `Authorization: Basic ...`, precomputed.
    Basic(Secret<HeaderValue>),
    /// `Authorization: Bearer <token from the token endpoint>`.
    OAuth(OAuthClient),
}

/// A failure to obtain the upstream credential. The message never holds the secret or the token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("a credential value is not a valid header value")]
    InvalidValue,
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint refused the gateway's client credentials (status {0})")]
    Refused(u16),
    #[error("the token endpoint's answer has no usable access_token")]
    BadAnswer,
}

impl Fault for CredentialError {
    fn party(&self) -> Party {
        match self {
            CredentialError::InvalidValue => Party::Gateway,
            _ => Party::Upstream,
        }
    }
}

impl UpstreamCredential {
    pub fn header(name: HeaderName, value: &Secret<String>) -> Result<Self, CredentialError> {
        Ok(UpstreamCredential::Header {
            name,
            value: Secret::new(sensitive(value.expose())?),
        })
    }

    pub fn basic(user: &str, password: &Secret<String>) -> Result<Self, CredentialError> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()));
        Ok(UpstreamCredential::Basic(Secret::new(sensitive(&format!(
            "Basic {encoded}"
        ))?)))
    }

    pub fn oauth(settings: OAuthSettings) -> Result<Self, CredentialError> {
        Ok(UpstreamCredential::OAuth(OAuthClient::new(settings)?))
    }

    /// Sets the credential on an outgoing request's headers.
    pub async fn apply(&self, headers: &mut HeaderMap) -> Result<(), CredentialError> {
        match self {
            UpstreamCredential::None => {}
            UpstreamCredential::Header { name, value } => {
                headers.insert(name.clone(), value.expose().clone());
            }
            UpstreamCredential::Basic(value) => {
                headers.insert(header::AUTHORIZATION, value.expose().clone());
            }
            UpstreamCredential::OAuth(client) => {
                headers.insert(header::AUTHORIZATION, client.authorization().await?);
            }
        }
        Ok(())
    }
}

/// A header value marked sensitive (HTTP/2 never indexes it; hyper never logs it).
fn sensitive(value: &str) -> Result<HeaderValue, CredentialError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| CredentialError::InvalidValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// A client-credentials client's configuration.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    /// Authenticate with HTTP Basic (`true`, RFC 6749's default) or in the form body.
    pub basic_auth: bool,
    /// Roots for an https token endpoint beyond the public web's (e.g. a private CA), as PEM.
    pub extra_roots_pem: Option<Vec<u8>>,
}

/// Obtains client-credentials tokens and caches the current one.
#[derive(Debug)]
pub struct OAuthClient {
    settings: OAuthSettings,
    http: reqwest::Client,
    current: RwLock<Option<Cached>>,
    /// Held by the one request that refreshes; the others wait for it, then read its token.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Cached {
    authorization: Secret<HeaderValue>,
    refresh_at: Instant,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuthClient {
    fn new(settings: OAuthSettings) -> Result<Self, CredentialError> {
        let mut builder = reqwest::Client::builder()
            .timeout(TOKEN_TIMEOUT)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.extra_roots_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| CredentialError::Unreachable(e.to_string()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CredentialError::Unreachable(e.to_string()))?;
        Ok(OAuthClient {
            settings,
            http,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// `Bearer <token>`: the cached one while fresh, else a new one (one request for all callers).
    async fn authorization(&self) -> Result<HeaderValue, CredentialError> {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let _refreshing = self.refreshing.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let cached = self.fetch().await?;
        let value = cached.authorization.expose().clone();
        if let Ok(mut current) = self.current.write() {
            *current = Some(cached);
        }
        Ok(value)
    }

    fn fresh(&self) -> Option<HeaderValue> {
        let current = self.current.read().ok()?;
        let cached = current.as_ref()?;
        (Instant::now() < cached.refresh_at).then(|| cached.authorization.expose().clone())
    }

    async fn fetch(&self) -> Result<Cached, CredentialError> {
        let s = &self.settings;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = s.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(audience) = &s.audience {
            form.push(("audience", audience));
        }
        let mut request = self
            .http
            .post(&s.token_url)
            .header(header::ACCEPT, "application/json");
        if s.basic_auth {
            // RFC 6749 §2.3.1: id and secret form-encoded before Basic.
            let id: String = form_urlencoded::byte_serialize(s.client_id.as_bytes()).collect();
            let secret: String =
                form_urlencoded::byte_serialize(s.client_secret.expose().as_bytes()).collect();
            request = request.basic_auth(id, Some(secret));
        } else {
            form.push(("client_id", &s.client_id));
            form.push(("client_secret", s.client_secret.expose()));
        }
        let started = Instant::now();
        // reqwest's errors can quote the URL, never the form: the secret stays out of messages.
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| CredentialError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CredentialError::Refused(status.as_u16()));
        }
        let answer: TokenResponse = response.json().await.map_err(|_| CredentialError::BadAnswer)?;
        if answer.access_token.is_empty()
            || answer
                .token_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(CredentialError::BadAnswer);
        }
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
        // Refresh a margin before expiry, but keep a short-lived token for at least half its life.
        let keep = lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        let authorization =
            sensitive(&format!("Bearer {}", answer.access_token)).map_err(|_| CredentialError::BadAnswer)?;
        Ok(Cached {
            authorization: Secret::new(authorization),
            refresh_at: started + keep,
        })
    }
}
