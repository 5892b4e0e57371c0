//! Console sign-in: the OAuth 2.0 authorization code flow with PKCE (RFC 7636, `S256`) against the
//! configured OIDC provider, found by discovery.
//!
//! `/console/login` makes a `state` and a code verifier, keeps them (in memory, ten minutes), ties the
//! `state` to the browser with a cookie, and sends the browser to the provider's authorization endpoint.
//! `/console/callback` checks that the `state` is one it made for this browser, exchanges the code (with
//! the verifier) at the token endpoint, verifies the access token with the data path's `Verifier`, and
//! signs the person in.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::Secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::{LOGIN_COOKIE, LOGIN_TIMEOUT, SESSION_COOKIE, cookie, pages, random_token, set_cookie};
use crate::admin::AdminState;

/// What the console needs to know of its provider.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The issuer URL; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// `{public_url}/console/callback`.
    pub redirect_uri: String,
}

/// The provider's endpoints, from discovery.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// A sign-in under way.
#[derive(Debug)]
struct Pending {
    verifier: String,
    next: String,
    started: Instant,
}

/// The console's OIDC client.
#[derive(Debug)]
pub struct Client {
    settings: ClientSettings,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
}

impl Client {
    pub fn new(settings: ClientSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            settings,
            http,
            endpoints: OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer people sign in with.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    async fn endpoints(&self) -> anyhow::Result<&Endpoints> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let response = self.http.get(&url).send().await?.error_for_status()?;
                let endpoints: Endpoints = response.json().await?;
                anyhow::Ok(endpoints)
            })
            .await
    }

    /// Starts a sign-in: returns the `state` and the URL to send the browser to.
    async fn begin(&self, next: String) -> anyhow::Result<(String, String)> {
        let endpoints = self.endpoints().await?;
        let state = random_token();
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = challenge_of(&verifier);
        let mut url = reqwest::Url::parse(&endpoints.authorization_endpoint)?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", &self.settings.redirect_uri)
                .append_pair("scope", &self.settings.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(resource) = &self.settings.resource {
                query.append_pair("resource", resource);
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|_, p| p.started.elapsed() < LOGIN_TIMEOUT);
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                next,
                started: Instant::now(),
            },
        );
        Ok((state, url.to_string()))
    }

    /// Ends a sign-in: the code exchanged for an access token; returns it and where to go next.
    async fn finish(&self, state: &str, code: &str) -> anyhow::Result<(String, String)> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(state)
            .filter(|p| p.started.elapsed() < LOGIN_TIMEOUT)
            .ok_or_else(|| anyhow::anyhow!("this sign-in is unknown or took too long; start again"))?;
        let endpoints = self.endpoints().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirect_uri.as_str()),
            ("client_id", self.settings.client_id.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        if let Some(secret) = &self.settings.client_secret {
            form.push(("client_secret", secret.expose().as_str()));
        }
        let response = self
            .http
            .post(&endpoints.token_endpoint)
            .form(&form)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!(
                "the provider's token endpoint answered {status}: {}",
                body.chars().take(300).collect::<String>()
            );
        }
        let token: TokenResponse = response.json().await?;
        Ok((token.access_token, pending.next))
    }
}

/// The PKCE `S256` challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Percent-encodes `text` for a query value.
pub fn form_encode(text: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", text)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_default()
}

/// Only console pages are places to return to after signing in (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.starts_with("/console//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/console/approvals".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /console/login`: off to the provider.
pub async fn login(State(state): State<AdminState>, Query(q): Query<LoginQuery>) -> Response {
    let Some(client) = state.console.as_ref().and_then(|c| c.oidc.as_ref()) else {
        return pages::message(
            StatusCode::NOT_FOUND,
            "Sign-in is not configured",
            "set [server.admin.console] issuer, or enable [identity.dev_issuer] for development",
        );
    };
    match client.begin(safe_next(q.next.as_deref())).await {
        Ok((login_state, url)) => {
            let mut response = Redirect::to(&url).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(LOGIN_COOKIE, &login_state, "/console", LOGIN_TIMEOUT),
            );
            response
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), issuer = client.issuer(), "console sign-in: discovery failed");
            pages::message(
                StatusCode::BAD_GATEWAY,
                "The identity provider cannot be reached",
                &format!("{}: {e:#}", client.issuer()),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /console/callback`: back from the provider.
pub async fn callback(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(console) = state.console.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(client) = console.oidc.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(error) = &q.error {
        return pages::message(
            StatusCode::UNAUTHORIZED,
            "Sign-in refused by the identity provider",
            &format!("{error}: {}", q.error_description.as_deref().unwrap_or("")),
        );
    }
    let (Some(code), Some(login_state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "the provider sent no code",
        );
    };
    // The state must be the one this browser was given: a link someone else started cannot sign it in.
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| super::same_secret(c, login_state)) {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "this sign-in was not started in this browser; start again",
        );
    }
    let (token, next) = match client.finish(login_state, code).await {
        Ok(done) => done,
        Err(e) => {
            return pages::message(StatusCode::UNAUTHORIZED, "Sign-in failed", &format!("{e:#}"));
        }
    };
    let principal = match state.verifier.verify(&token).await {
        Ok(p) => p,
        Err(rejected) => {
            return pages::message(
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                &format!("the provider's token was refused: {}", rejected.detail),
            );
        }
    };
    info!(who = %principal.name(), "console sign-in");
    let id = console.sign_in(principal);
    let mut response = Redirect::to(&next).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, "/console", console.session_ttl),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/console", Duration::ZERO),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_follows_rfc7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_console_pages_are_returned_to() {
        assert_eq!(safe_next(Some("/console/sessions/abc")), "/console/sessions/abc");
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil",
            "/metrics",
            "/console/\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/approvals", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/approvals");
    }
}
