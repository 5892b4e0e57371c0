//! `DevIssuer`: the built-in development issuer that mints ES256 tokens and publishes its key like any IdP.
//!
//! The gateway serves its discovery document and JWKS on the admin listener, and verifies its tokens
//! through the same HTTP discovery and JWKS path as any other issuer: nothing in `Verifier` knows it.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType,
    Jwk, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use portcullis_core::{Fault, Party};

/// A development token issuer with one P-256 signing key kept in a file.
pub struct DevIssuer {
    issuer_url: String,
    signing_key: EncodingKey,
    /// RFC 7638 thumbprint of the public key: stable across restarts because the key file is.
    kid: String,
    x: String,
    y: String,
}

/// What to put in a development token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The `sub` claim.
    pub subject: String,
    /// The `groups` claim.
    pub groups: Vec<String>,
    /// The `aud` claim.
    pub audience: String,
    /// How long the token is valid.
    pub ttl: Duration,
}

/// Why the development issuer could not start or mint.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// The key file could not be read, created or written.
    #[error("development issuer key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The key file exists but does not hold a PKCS#8 P-256 private key.
    #[error("development issuer key file {path} does not hold a PKCS#8 P-256 (ES256) private key")]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// A new key could not be generated.
    #[error("cannot generate the development issuer key: {0}")]
    Generate(#[source] rcgen::Error),
    /// The mint request is unusable.
    #[error("invalid mint request: {0}")]
    InvalidRequest(&'static str),
    /// Signing failed (a crypto backend or randomness problem).
    #[error("cannot sign the development token: {0}")]
    Sign(String),
}

impl Fault for DevIssuerError {
    fn party(&self) -> Party {
        match self {
            // The caller of `mint` (an operator via the CLI or API) asked for something impossible.
            DevIssuerError::InvalidRequest(_) => Party::Client,
            _ => Party::Gateway,
        }
    }
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signing key stays out of logs even in debug output.
        f.debug_struct("DevIssuer")
            .field("issuer_url", &self.issuer_url)
            .field("kid", &self.kid)
            .finish()
    }
}

/// The longest token the development issuer mints; matches the verifier's default maximum lifetime.
const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl DevIssuer {
    /// Loads the signing key from `key_path` (PEM, PKCS#8) or creates it there (ES256 / P-256, mode 0600,
    /// parent directories created). A trailing `/` on `issuer_url` is dropped so the document URLs join
    /// cleanly; the issuer configured for verification must use the same form.
    pub fn load_or_create(key_path: &Path, issuer_url: String) -> Result<Self, DevIssuerError> {
        let key_file_error = |source| DevIssuerError::KeyFile {
            path: key_path.to_owned(),
            source,
        };
        let pem = match fs::read_to_string(key_path) {
            Ok(pem) => pem,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                create_key_file(key_path).map_err(|e| match e {
                    CreateError::Io(source) => key_file_error(source),
                    CreateError::Generate(error) => DevIssuerError::Generate(error),
                })?
            }
            Err(error) => return Err(key_file_error(error)),
        };
        let bad_key = || DevIssuerError::BadKey {
            path: key_path.to_owned(),
        };
        let key_pair = rcgen::KeyPair::from_pem(&pem).map_err(|_| bad_key())?;
        if key_pair.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(bad_key());
        }
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = key_pair.public_key_raw();
        let (Some(4), Some(x), Some(y)) = (point.first(), point.get(1..33), point.get(33..65)) else {
            return Err(bad_key());
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let kid = thumbprint(&x, &y).ok_or_else(bad_key)?;
        let signing_key = EncodingKey::from_ec_der(key_pair.serialized_der());
        let issuer_url = issuer_url.trim_end_matches('/').to_owned();
        Ok(Self {
            issuer_url,
            signing_key,
            kid,
            x,
            y,
        })
    }

    /// The issuer URL, equal to the `iss` of every minted token.
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// Mints an ES256 token whose header `kid` is the key's RFC 7638 thumbprint.
    pub fn mint(&self, req: &MintRequest) -> Result<String, DevIssuerError> {
        if req.subject.is_empty() {
            return Err(DevIssuerError::InvalidRequest("the subject is empty"));
        }
        if req.audience.is_empty() {
            return Err(DevIssuerError::InvalidRequest("the audience is empty"));
        }
        if req.ttl.is_zero() || req.ttl > MAX_TTL {
            return Err(DevIssuerError::InvalidRequest(
                "the lifetime must be between 1s and 24h",
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| DevIssuerError::Sign("the system clock is before 1970".to_owned()))?
            .as_secs();
        let claims = json!({
            "iss": self.issuer_url,
            "sub": req.subject,
            "aud": req.audience,
            "groups": req.groups,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(req.ttl.as_secs()),
            "jti": random_id()?,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|error| DevIssuerError::Sign(error.to_string()))
    }

    /// The OIDC discovery document, served at `{issuer_url}/.well-known/openid-configuration`.
    pub fn discovery_document(&self) -> serde_json::Value {
        json!({
            "issuer": self.issuer_url,
            "jwks_uri": format!("{}/jwks", self.issuer_url),
            // The gateway serves these two for its web console's sign-in only (authorization code with
            // PKCE; see the portcullis crate's console).
            "authorization_endpoint": format!("{}/authorize", self.issuer_url),
            "token_endpoint": format!("{}/token", self.issuer_url),
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code"],
            "claims_supported": ["iss", "sub", "aud", "groups", "iat", "nbf", "exp", "jti"],
        })
    }

    /// The public key set, served at `{issuer_url}/jwks`.
    pub fn jwks(&self) -> serde_json::Value {
        json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": self.x,
                "y": self.y,
                "kid": self.kid,
                "use": "sig",
                "alg": "ES256",
            }]
        })
    }
}

enum CreateError {
    Io(io::Error),
    Generate(rcgen::Error),
}

/// Generates a key and writes it with owner-only permissions, returning its PEM. If another process
/// created the file in the meantime, that file wins, so concurrent starts agree on one key.
fn create_key_file(path: &Path) -> Result<String, CreateError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(CreateError::Io)?;
    }
    let key_pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CreateError::Generate)?;
    let pem = key_pair.serialize_pem();
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(pem.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(CreateError::Io)?;
            tracing::info!(path = %path.display(), "created the development issuer key");
            Ok(pem)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            fs::read_to_string(path).map_err(CreateError::Io)
        }
        Err(error) => Err(CreateError::Io(error)),
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of a P-256 public key.
fn thumbprint(x: &str, y: &str) -> Option<String> {
    let jwk = Jwk {
        common: CommonParameters::default(),
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: x.to_owned(),
            y: y.to_owned(),
        }),
    };
    jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// A random token id (`jti`): 128 bits, base64url.
fn random_id() -> Result<String, DevIssuerError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| DevIssuerError::Sign(format!("no randomness: {error}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_follows_rfc7638() {
        // The hashing and encoding path, checked against the published vector of RFC 8037 appendix A.3.
        let ed: Jwk = serde_json::from_value(json!({
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert_eq!(
            ed.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );

        // Only the required members count: the published kid, use and alg do not change the thumbprint.
        let (x, y) = (
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        );
        let published: Jwk = serde_json::from_value(json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "other", "use": "sig", "alg": "ES256"
        }))
        .unwrap();
        assert_eq!(
            thumbprint(x, y),
            published.thumbprint(ThumbprintHash::SHA256).ok()
        );
    }

    #[test]
    fn mint_refuses_unusable_requests() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(&dir.path().join("k.pem"), "http://x/dev/".into()).unwrap();
        assert_eq!(issuer.issuer_url(), "http://x/dev");
        let ok = MintRequest {
            subject: "s".into(),
            groups: vec![],
            audience: "a".into(),
            ttl: Duration::from_secs(60),
        };
        assert!(issuer.mint(&ok).is_ok());
        for bad in [
            MintRequest {
                subject: String::new(),
                ..ok.clone()
            },
            MintRequest {
                audience: String::new(),
                ..ok.clone()
            },
            MintRequest {
                ttl: Duration::ZERO,
                ..ok.clone()
            },
            MintRequest {
                ttl: Duration::from_secs(25 * 3600),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(issuer.mint(&bad), Err(DevIssuerError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }
}
