//! The development issuer's sign-in: an authorization endpoint that asks for a name and groups (no
//! password: development only, like `portcullis token mint`) and a token endpoint that checks the PKCE
//! verifier, so the console signs in through the same authorization code flow as with a real provider.
//!
//! Only the console may use it: the client id and redirect URI must be the console's. Codes are single
//! use and live 60 seconds.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use maud::html;
use portcullis_identity::MintRequest;
use serde::Deserialize;
use serde_json::json;

use super::{cookie, pages, random_token, same_secret, set_cookie};
use crate::admin::{AdminState, DEV_ISSUER_PATH};

/// How long an authorization code may wait for its exchange.
const CODE_TTL: Duration = Duration::from_secs(60);
/// The cookie that carries the sign-in form's CSRF token.
const FORM_COOKIE: &str = "portcullis_dev_signin";

/// The development sign-in's settings and its outstanding codes.
#[derive(Debug)]
pub struct DevSignin {
    /// The console's client id and redirect URI: the only client this sign-in serves.
    pub client_id: String,
    pub redirect_uri: String,
    /// The `aud` of the tokens it issues.
    pub audience: String,
    /// Their lifetime.
    pub ttl: Duration,
    /// The groups the form offers: the reviewers' and operators' groups of this gateway.
    pub default_groups: String,
    codes: Mutex<HashMap<String, Code>>,
}

#[derive(Debug)]
struct Code {
    subject: String,
    groups: Vec<String>,
    challenge: String,
    issued: Instant,
}

impl DevSignin {
    pub fn new(
        client_id: String,
        redirect_uri: String,
        audience: String,
        ttl: Duration,
        default_groups: String,
    ) -> Self {
        Self {
            client_id,
            redirect_uri,
            audience,
            ttl,
            default_groups,
            codes: Mutex::new(HashMap::new()),
        }
    }
}

/// The authorization request's parameters (query of the GET, hidden fields of the POST).
#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// A checked authorization request.
struct Authorize<'a> {
    state: &'a str,
    challenge: &'a str,
}

fn signin(state: &AdminState) -> Option<&DevSignin> {
    state.console.as_ref()?.dev_signin.as_ref()
}

/// Refuses requests not from the console, or without PKCE.
fn check<'a>(signin: &DevSignin, p: &'a AuthorizeParams) -> Result<Authorize<'a>, String> {
    if p.response_type.as_deref() != Some("code") {
        return Err("response_type must be code".into());
    }
    if p.client_id.as_deref() != Some(signin.client_id.as_str()) {
        return Err("unknown client_id: the development sign-in serves the Portcullis console only".into());
    }
    if p.redirect_uri.as_deref() != Some(signin.redirect_uri.as_str()) {
        return Err(format!("redirect_uri must be {}", signin.redirect_uri));
    }
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err("PKCE is required: code_challenge_method must be S256".into());
    }
    let challenge = p
        .code_challenge
        .as_deref()
        .filter(|c| (43..=128).contains(&c.len()))
        .ok_or("code_challenge is missing or malformed")?;
    let state = p
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("state is missing")?;
    Ok(Authorize { state, challenge })
}

/// `GET /dev/authorize`: the sign-in form.
pub async fn authorize_form(State(state): State<AdminState>, Query(p): Query<AuthorizeParams>) -> Response {
    let Some(signin) = signin(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let request = match check(signin, &p) {
        Ok(r) => r,
        Err(e) => return pages::message(StatusCode::BAD_REQUEST, "Invalid sign-in request", &e),
    };
    let form_token = random_token();
    let body = html! {
        h1 { "Development sign-in" }
        p.warning {
            "The development issuer signs anyone in as anyone, with any groups. Never enable it where "
            "the gateway guards real data."
        }
        form method="post" action={(DEV_ISSUER_PATH) "/authorize"} {
            input type="hidden" name="form_token" value=(form_token);
            input type="hidden" name="response_type" value="code";
            input type="hidden" name="client_id" value=(signin.client_id);
            input type="hidden" name="redirect_uri" value=(signin.redirect_uri);
            input type="hidden" name="state" value=(request.state);
            input type="hidden" name="code_challenge" value=(request.challenge);
            input type="hidden" name="code_challenge_method" value="S256";
            label for="subject" { "Name (the token's subject)" }
            input #subject type="text" name="subject" required autofocus autocomplete="username";
            label for="groups" { "Groups, separated by commas" }
            input #groups type="text" name="groups" value=(signin.default_groups);
            button type="submit" { "Sign in" }
        }
    };
    let mut response = pages::bare_page("Development sign-in", body);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            FORM_COOKIE,
            &form_token,
            DEV_ISSUER_PATH,
            Duration::from_secs(600),
        ),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct SigninForm {
    form_token: String,
    subject: String,
    groups: String,
    #[serde(flatten)]
    params: AuthorizeParams,
}

/// `POST /dev/authorize`: issues a code and sends the browser back to the console.
pub async fn authorize(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let Some(signin) = signin(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !cookie(&headers, FORM_COOKIE).is_some_and(|c| same_secret(c, &form.form_token)) {
        return pages::message(
            StatusCode::FORBIDDEN,
            "Sign-in form expired",
            "the form was not issued to this browser, or too long ago; go back and sign in again",
        );
    }
    let request = match check(signin, &form.params) {
        Ok(r) => r,
        Err(e) => return pages::message(StatusCode::BAD_REQUEST, "Invalid sign-in request", &e),
    };
    let subject = form.subject.trim();
    if subject.is_empty() || subject.len() > 200 {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "give a name of 1 to 200 characters",
        );
    }
    let groups: Vec<String> = form
        .groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let code = random_token();
    {
        let mut codes = signin.codes.lock().unwrap_or_else(PoisonError::into_inner);
        codes.retain(|_, c| c.issued.elapsed() < CODE_TTL);
        codes.insert(
            code.clone(),
            Code {
                subject: subject.to_owned(),
                groups,
                challenge: request.challenge.to_owned(),
                issued: Instant::now(),
            },
        );
    }
    let mut url = match reqwest::Url::parse(&signin.redirect_uri) {
        Ok(u) => u,
        Err(e) => {
            return pages::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Bad redirect URI",
                &e.to_string(),
            );
        }
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", request.state);
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FORM_COOKIE, "", DEV_ISSUER_PATH, Duration::ZERO),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    code_verifier: String,
}

/// An OAuth error response (RFC 6749 section 5.2).
fn oauth_error(error: &'static str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /dev/token`: a code and its PKCE verifier for an access token.
pub async fn token(State(state): State<AdminState>, Form(form): Form<TokenForm>) -> Response {
    let (Some(signin), Some(issuer)) = (signin(&state), state.dev_issuer.as_ref()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if form.grant_type != "authorization_code" {
        return oauth_error("unsupported_grant_type", "only authorization_code");
    }
    if form.client_id != signin.client_id || form.redirect_uri != signin.redirect_uri {
        return oauth_error("invalid_client", "client_id or redirect_uri is not the console's");
    }
    let code = signin
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&form.code)
        .filter(|c| c.issued.elapsed() < CODE_TTL);
    let Some(code) = code else {
        return oauth_error("invalid_grant", "unknown, used or expired code");
    };
    if !same_secret(&super::oidc::challenge_of(&form.code_verifier), &code.challenge) {
        return oauth_error(
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        );
    }
    let minted = issuer.mint(&MintRequest {
        subject: code.subject,
        groups: code.groups,
        audience: signin.audience.clone(),
        ttl: signin.ttl,
    });
    match minted {
        Ok(access_token) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": signin.ttl.as_secs(),
            })),
        )
            .into_response(),
        Err(e) => oauth_error("server_error", &e.to_string()),
    }
}
