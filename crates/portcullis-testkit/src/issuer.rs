//! `TestIssuer`: a real OIDC issuer on a loopback port (discovery + JWKS over HTTP) that mints test tokens.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The signature algorithms a [`TestIssuer`] can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (key `rsa-1`).
    RS256,
    /// RSASSA-PSS with SHA-256 (key `rsa-1`).
    PS256,
    /// ECDSA P-256 with SHA-256 (key `ec-1`).
    ES256,
    /// Ed25519 (key `ed-1`).
    EdDSA,
}

impl Alg {
    fn jwt(self) -> Algorithm {
        match self {
            Alg::RS256 => Algorithm::RS256,
            Alg::PS256 => Algorithm::PS256,
            Alg::ES256 => Algorithm::ES256,
            Alg::EdDSA => Algorithm::EdDSA,
        }
    }

    fn kind(self) -> KeyKind {
        match self {
            Alg::RS256 | Alg::PS256 => KeyKind::Rsa,
            Alg::ES256 => KeyKind::Ec,
            Alg::EdDSA => KeyKind::Ed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec,
    Ed,
}

impl KeyKind {
    fn default_alg(self) -> Alg {
        match self {
            KeyKind::Rsa => Alg::RS256,
            KeyKind::Ec => Alg::ES256,
            KeyKind::Ed => Alg::EdDSA,
        }
    }
}

/// One signing key and its published JWK.
struct SigningKey {
    kid: String,
    kind: KeyKind,
    encoding: EncodingKey,
    jwk: Value,
}

/// What the HTTP handlers share with the test.
struct Shared {
    url: String,
    keys: RwLock<Vec<Arc<SigningKey>>>,
    jwks_requests: AtomicUsize,
}

/// A running OIDC issuer for tests. Publishes an RSA-2048 key (`rsa-1`), a P-256 key (`ec-1`) and an
/// Ed25519 key (`ed-1`) at `/jwks`, and its discovery document at `/.well-known/openid-configuration`.
pub struct TestIssuer {
    shared: Arc<Shared>,
    rsa_public_pem: String,
    server: tokio::sync::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// Generates the keys and starts serving on `127.0.0.1:<free port>`.
    pub async fn start() -> anyhow::Result<TestIssuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind test issuer")?;
        let url = format!("http://{}", listener.local_addr()?);
        let rsa = generate_key("rsa-1", KeyKind::Rsa)?;
        let rsa_public_pem = rsa.1;
        let keys = vec![
            rsa.0,
            generate_key("ec-1", KeyKind::Ec)?.0,
            generate_key("ed-1", KeyKind::Ed)?.0,
        ];
        let shared = Arc::new(Shared {
            url,
            keys: RwLock::new(keys),
            jwks_requests: AtomicUsize::new(0),
        });

        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // Graceful shutdown also closes idle keep-alive connections, so after `shutdown` the issuer
            // really is unreachable, not merely refusing new connections.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(TestIssuer {
            shared,
            rsa_public_pem,
            server: tokio::sync::Mutex::new(Some((stop, server))),
        })
    }

    /// The issuer URL, equal to the `iss` of minted tokens, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// How many times `/jwks` has been fetched.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// Starts a token: by default RS256 with key `rsa-1`, subject `agent-1`, audience `portcullis`,
    /// issued now, valid for five minutes, no groups.
    pub fn token(&self) -> TokenBuilder<'_> {
        TokenBuilder {
            issuer: self,
            subject: "agent-1".to_owned(),
            groups: Vec::new(),
            audience: "portcullis".to_owned(),
            iss: self.url(),
            kid: None,
            without_kid: false,
            alg: None,
            issued_at_offset: Some(0),
            not_before_offset: Some(0),
            expires_in: 300,
            extra: Map::new(),
        }
    }

    /// A valid-looking token with `alg: none` and an empty signature.
    pub fn token_alg_none(&self, audience: &str) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"});
        let claims = self.token().audience(audience).claims();
        format!(
            "{}.{}.",
            encode_json(&header),
            encode_json(&Value::Object(claims))
        )
    }

    /// An HS256 token whose HMAC key is the RSA public key PEM: the classic algorithm-confusion attack.
    pub fn token_hs256_with_public_key(&self, audience: &str) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".to_owned());
        let claims = Value::Object(self.token().audience(audience).claims());
        let key = EncodingKey::from_secret(self.rsa_public_pem.as_bytes());
        signed_or_panic(jsonwebtoken::encode(&header, &claims, &key))
    }

    /// A valid RS256 token whose signature has one bit flipped.
    pub fn token_bad_signature(&self, audience: &str) -> String {
        let token = self.token().audience(audience).sign();
        let Some((signed, signature)) = token.rsplit_once('.') else {
            return token;
        };
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
        let middle = bytes.len() / 2;
        if let Some(byte) = bytes.get_mut(middle) {
            *byte ^= 0x01;
        }
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Rotates in a new RSA key under `kid`: published from now on and usable with `.kid(kid)`.
    pub fn add_key(&self, kid: &str) {
        let key = signed_or_panic(generate_key(kid, KeyKind::Rsa).map(|(key, _)| key));
        self.shared
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }

    /// Stops serving and waits until every connection is closed.
    pub async fn shutdown(&self) {
        let Some((stop, server)) = self.server.lock().await.take() else {
            return;
        };
        let _ = stop.send(());
        let _ = server.await;
    }

    fn key(&self, kid: Option<&str>, kind: Option<KeyKind>) -> Option<Arc<SigningKey>> {
        let keys = self.shared.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .find(|key| kid.is_none_or(|kid| key.kid == kid) && kind.is_none_or(|kind| key.kind == kind))
            .cloned()
    }
}

/// Builds and signs one token. Times are offsets in seconds from now; negative values are in the past.
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    subject: String,
    groups: Vec<String>,
    audience: String,
    iss: String,
    kid: Option<String>,
    without_kid: bool,
    alg: Option<Alg>,
    issued_at_offset: Option<i64>,
    not_before_offset: Option<i64>,
    expires_in: i64,
    extra: Map<String, Value>,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder<'_> {
    /// The `sub` claim.
    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = subject.to_owned();
        self
    }

    /// The `groups` claim.
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }

    /// The `aud` claim.
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = audience.to_owned();
        self
    }

    /// The `iss` claim (defaults to the issuer's URL).
    pub fn issuer(mut self, iss: &str) -> Self {
        self.iss = iss.to_owned();
        self
    }

    /// Signs with the key `kid` (and names it in the header). Without `.alg`, the key's natural algorithm.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    /// Signs with `alg`. Without `.kid`, the first key of the matching type.
    pub fn alg(mut self, alg: Alg) -> Self {
        self.alg = Some(alg);
        self
    }

    /// `iat` = now + `seconds`.
    pub fn issued_at_offset(mut self, seconds: i64) -> Self {
        self.issued_at_offset = Some(seconds);
        self
    }

    /// Leaves `iat` out.
    pub fn without_issued_at(mut self) -> Self {
        self.issued_at_offset = None;
        self
    }

    /// `nbf` = now + `seconds`.
    pub fn not_before_offset(mut self, seconds: i64) -> Self {
        self.not_before_offset = Some(seconds);
        self
    }

    /// `exp` = now + `seconds` (negative: already expired).
    pub fn expires_in(mut self, seconds: i64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Leaves `kid` out of the header.
    pub fn without_kid(mut self) -> Self {
        self.without_kid = true;
        self
    }

    /// Adds or replaces any claim (a custom groups claim, `jti`, ...); `Value::Null` removes it.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.to_owned(), value);
        self
    }

    /// Signs the token. Panics when the requested key does not exist or cannot sign with the requested
    /// algorithm: that is a mistake in the test, not a condition to handle.
    pub fn sign(self) -> String {
        let kind = self.alg.map(Alg::kind);
        let key = self.issuer.key(self.kid.as_deref(), kind);
        let Some(key) = key else {
            return signed_or_panic(Err(anyhow::anyhow!(
                "test issuer has no key kid={:?} for {:?}",
                self.kid,
                self.alg
            )));
        };
        let alg = self.alg.unwrap_or_else(|| key.kind.default_alg());
        let mut header = Header::new(alg.jwt());
        header.kid = (!self.without_kid).then(|| key.kid.clone());
        let claims = Value::Object(self.claims());
        signed_or_panic(jsonwebtoken::encode(&header, &claims, &key.encoding))
    }

    fn claims(&self) -> Map<String, Value> {
        let now = unix_now();
        let at = |offset: i64| now.saturating_add(offset);
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), json!(self.iss));
        claims.insert("sub".to_owned(), json!(self.subject));
        claims.insert("aud".to_owned(), json!(self.audience));
        claims.insert("exp".to_owned(), json!(at(self.expires_in)));
        claims.insert("jti".to_owned(), json!(format!("test-{now}-{}", self.subject)));
        if !self.groups.is_empty() {
            claims.insert("groups".to_owned(), json!(self.groups));
        }
        if let Some(offset) = self.issued_at_offset {
            claims.insert("iat".to_owned(), json!(at(offset)));
        }
        if let Some(offset) = self.not_before_offset {
            claims.insert("nbf".to_owned(), json!(at(offset)));
        }
        for (name, value) in &self.extra {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
        claims
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "issuer": shared.url,
        "jwks_uri": format!("{}/jwks", shared.url),
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let keys = shared.keys.read().unwrap_or_else(PoisonError::into_inner);
    Json(json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() }))
}

/// Generates a key of `kind`; also returns its public key PEM (SPKI), used by the HMAC confusion token.
fn generate_key(kid: &str, kind: KeyKind) -> anyhow::Result<(Arc<SigningKey>, String)> {
    let (alg, rcgen_alg) = match kind {
        KeyKind::Rsa => (Algorithm::RS256, &rcgen::PKCS_RSA_SHA256),
        KeyKind::Ec => (Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256),
        KeyKind::Ed => (Algorithm::EdDSA, &rcgen::PKCS_ED25519),
    };
    let pair = rcgen::KeyPair::generate_for(rcgen_alg).context("generate test key")?;
    let pem = pair.serialize_pem();
    let encoding = match kind {
        KeyKind::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
        KeyKind::Ec => EncodingKey::from_ec_pem(pem.as_bytes()),
        KeyKind::Ed => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .context("load test key")?;
    let mut jwk = match kind {
        // jsonwebtoken derives n and e from the private key.
        KeyKind::Rsa => serde_json::to_value(Jwk::from_encoding_key(&encoding, alg)?)?,
        KeyKind::Ec => {
            let point = pair.public_key_raw();
            let (x, y) = (
                point.get(1..33).context("EC x")?,
                point.get(33..65).context("EC y")?,
            );
            json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
        }
        KeyKind::Ed => {
            json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw())})
        }
    };
    if let Some(members) = jwk.as_object_mut() {
        members.insert("kid".to_owned(), json!(kid));
        members.insert("use".to_owned(), json!("sig"));
        // RSA keys serve RS256 and PS256 alike, so they name no `alg`.
        if kind == KeyKind::Rsa {
            members.remove("alg");
        } else {
            members.insert("alg".to_owned(), json!(format!("{alg:?}")));
        }
    }
    let key = SigningKey {
        kid: kid.to_owned(),
        kind,
        encoding,
        jwk,
    };
    Ok((Arc::new(key), pair.public_key_pem()))
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Test fixtures cannot recover from a signing failure; failing the test loudly is the point.
#[allow(
    clippy::panic,
    reason = "a test helper: a broken fixture must fail the test that uses it"
)]
fn signed_or_panic<T, E: fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("test issuer: {error}"),
    }
}
