//! The web console: approvals inbox, sessions and their replay, identities, and policy, served by the
//! admin listener under `/console` as server-rendered HTML with a little JavaScript (assets embedded in
//! the binary).
//!
//! People sign in with an OIDC provider (authorization code with PKCE, [`oidc`]); the access token it
//! returns is verified by the data path's `Verifier`, so a console user is a `Principal` like any agent
//! and the admin API's group checks apply unchanged (reviewers decide approvals, operators read sessions,
//! kill and revoke). The development issuer offers its own sign-in page ([`dev_signin`]).
//!
//! Security: sign-ins live in memory (a gateway restart signs everyone out); the cookie is `Secure`,
//! `HttpOnly`, `SameSite=Lax` (Lax, not Strict, so the provider's redirect back carries the login
//! cookie); every form carries the sign-in's CSRF token; every page is sent with a strict
//! Content-Security-Policy (no inline script or style, no framing) and `Cache-Control: no-store`.

pub mod dev_signin;
pub mod oidc;
mod pages;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use portcullis_core::Principal;

use crate::admin::AdminState;

/// The cookie that holds a console sign-in's id.
const SESSION_COOKIE: &str = "portcullis_console";
/// The cookie that ties a sign-in in progress to the browser that started it.
const LOGIN_COOKIE: &str = "portcullis_login";
/// How long a sign-in may take at the provider.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

/// The Content-Security-Policy of every console page: scripts, styles and fetches from the console
/// itself only, forms posted to it only, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    /// The token every form of this sign-in must carry.
    pub csrf: String,
    expires: Instant,
}

/// The console's sign-ins, and its OIDC client.
#[derive(Debug)]
pub struct Console {
    /// `None` when no provider is configured (no `issuer` and no development issuer).
    pub oidc: Option<oidc::Client>,
    /// The development issuer's sign-in, when that issuer is enabled.
    pub dev_signin: Option<dev_signin::DevSignin>,
    /// The longest a sign-in lasts.
    pub session_ttl: Duration,
    /// Sign-ins by id.
    sessions: Mutex<HashMap<String, SignedIn>>,
}

impl Console {
    pub fn new(
        oidc: Option<oidc::Client>,
        dev_signin: Option<dev_signin::DevSignin>,
        session_ttl: Duration,
    ) -> Self {
        Self {
            oidc,
            dev_signin,
            session_ttl,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a sign-in for `principal`, until its token expires or `session_ttl` passes; returns its
    /// id (the cookie's value).
    fn sign_in(&self, principal: Principal) -> String {
        let id = random_token();
        let until_token_expiry = principal
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let signed_in = SignedIn {
            principal,
            csrf: random_token(),
            expires: Instant::now() + until_token_expiry.min(self.session_ttl),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(id.clone(), signed_in);
        id
    }

    fn signed_in(&self, id: &str) -> Option<SignedIn> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    fn sign_out(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// 256 random bits, hex: sign-in ids, CSRF tokens, OAuth `state`, authorization codes.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `Secure; HttpOnly; SameSite=Lax` always; `max_age` zero deletes it.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        max_age.as_secs()
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The signed-in person of a request, if any.
pub fn current(state: &AdminState, headers: &HeaderMap) -> Option<SignedIn> {
    let console = state.console.as_ref()?;
    cookie(headers, SESSION_COOKIE).and_then(|id| console.signed_in(id))
}

/// The console's routes, under `/console`.
pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/approvals") }))
        .route("/console/", get(|| async { Redirect::to("/console/approvals") }))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/signin", get(pages::signin))
        .route("/console/login", get(oidc::login))
        .route("/console/callback", get(oidc::callback))
        .route("/console/logout", post(pages::logout))
        .route("/console/approvals", get(pages::approvals))
        .route("/console/approvals/inbox", get(pages::inbox))
        .route("/console/approvals/{id}", post(pages::decide))
        .route("/console/sessions", get(pages::sessions))
        .route("/console/sessions/{id}", get(pages::session))
        .route("/console/sessions/{id}/kill", post(pages::kill))
        .route("/console/identities", get(pages::identities))
        .route("/console/revoke", post(pages::revoke))
        .route("/console/policy", get(pages::policy).post(pages::policy_check))
        .layer(middleware::from_fn(security_headers))
}

/// Adds the console's security headers to every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Sends the browser to the sign-in page, to come back to `next` afterwards.
fn to_signin(next: &str) -> Response {
    let mut url = String::from("/console/signin?next=");
    url.push_str(&oidc::form_encode(next));
    Redirect::to(&url).into_response()
}

/// Ends the request with `status` and a plain-text reason (for requests that are not page views, such
/// as a form post with a stale CSRF token).
fn refuse(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        reason.to_owned(),
    )
        .into_response()
}
