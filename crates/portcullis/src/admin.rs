//! The admin listener: health, Prometheus metrics, the development issuer's discovery and JWKS, and the
//! admin API under `/api/v1` (approvals, sessions, revoke), whose errors are RFC 9457 problem documents,
//! and the web console under `/console`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use portcullis_core::Principal;
use portcullis_identity::{DevIssuer, Verifier};
use serde::Deserialize;
use tracing::info;

use crate::api_sessions;
use crate::approvals::{Approvals, DecideError, GrantTerms};
use crate::console::{self, Console, dev_signin};
use crate::guard::PolicyStore;

/// The admin API's OpenAPI 3.1 document.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// What the admin routes read.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub metrics: PrometheusHandle,
    pub dev_issuer: Option<Arc<DevIssuer>>,
    /// `None` when `[approvals] enabled = false`: the approval routes answer 404.
    pub approvals: Option<Arc<Approvals>>,
    /// Verifies reviewers' bearer tokens, with the same issuers as the data path.
    pub verifier: Verifier,
    /// The audit store the sessions endpoints read (`None` when the audit trail is off).
    pub audit_store: Option<std::path::PathBuf>,
    /// Tokens with this group may use the sessions and revoke endpoints.
    pub operators_group: String,
    /// The web console (`None` when `[server.admin.console] enabled = false`).
    pub console: Option<Arc<Console>>,
    /// The policy in force (the console's policy page).
    pub policies: Arc<PolicyStore>,
    /// The configured connections' names.
    pub connection_names: Vec<String>,
}

/// The path under which the development issuer publishes its documents.
pub const DEV_ISSUER_PATH: &str = "/dev";

/// Builds the admin router.
pub fn router(state: AdminState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/approvals", get(list_approvals))
        .route("/api/v1/approvals/{id}", get(get_approval))
        .route("/api/v1/approvals/{id}/{decision}", post(decide))
        .route("/api/v1/sessions", get(api_sessions::list))
        .route("/api/v1/sessions/{id}", get(api_sessions::show))
        .route("/api/v1/sessions/{id}/replay", get(api_sessions::replay))
        .route("/api/v1/sessions/{id}/kill", post(api_sessions::kill))
        .route("/api/v1/revoke", post(api_sessions::revoke))
        .route("/api/v1/openapi.json", get(openapi));
    if state.dev_issuer.is_some() {
        router = router
            .route(
                &format!("{DEV_ISSUER_PATH}/.well-known/openid-configuration"),
                get(dev_discovery),
            )
            .route(&format!("{DEV_ISSUER_PATH}/jwks"), get(dev_jwks));
        if state.console.as_ref().is_some_and(|c| c.dev_signin.is_some()) {
            router = router
                .route(
                    &format!("{DEV_ISSUER_PATH}/authorize"),
                    get(dev_signin::authorize_form)
                        .post(dev_signin::authorize)
                        .layer(axum::middleware::from_fn(console::security_headers)),
                )
                .route(&format!("{DEV_ISSUER_PATH}/token"), post(dev_signin::token));
        }
    }
    if state.console.is_some() {
        router = router.merge(console::router());
    }
    router.with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<AdminState>) -> Response {
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn dev_discovery(State(state): State<AdminState>) -> Response {
    match &state.dev_issuer {
        Some(dev) => Json(dev.discovery_document()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn dev_jwks(State(state): State<AdminState>) -> Response {
    match &state.dev_issuer {
        Some(dev) => Json(dev.jwks()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An RFC 9457 problem document: every error of the admin API.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    /// `WWW-Authenticate: Bearer` on a 401.
    challenge: bool,
}

pub fn problem(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        status,
        title,
        detail: detail.into(),
        challenge: false,
    }
}

impl Problem {
    /// Its status, title and detail (the console shows them as a page).
    pub fn parts(&self) -> (StatusCode, &'static str, &str) {
        (self.status, self.title, &self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A JSON request body, read after the caller is authenticated so that every error is a problem
/// document; an empty body is `None`.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| problem(StatusCode::UNPROCESSABLE_ENTITY, "Invalid body", e.to_string()))
}

/// The approvals, when enabled.
fn approvals(state: &AdminState) -> Result<&Arc<Approvals>, Problem> {
    state.approvals.as_ref().ok_or_else(|| {
        problem(
            StatusCode::NOT_FOUND,
            "Approvals are not enabled",
            "this gateway refuses statements that need approval; set [approvals] enabled = true",
        )
    })
}

/// The caller, from `Authorization: Bearer <token>`, verified like a data-path token.
pub async fn caller(state: &AdminState, headers: &HeaderMap) -> Result<Principal, Problem> {
    let unauthorized = |detail: String| Problem {
        challenge: true,
        ..problem(StatusCode::UNAUTHORIZED, "Authentication required", detail)
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthorized("send a token from a configured issuer as `Authorization: Bearer <token>`".into())
        })?;
    state
        .verifier
        .verify(token)
        .await
        .map_err(|rejected| unauthorized(format!("token refused: {}", rejected.detail)))
}

/// The caller, who must be in `group` (the `reviewers` or `operators` group, as `whose` says); else a
/// 403 problem titled `refusal`.
pub async fn member(
    state: &AdminState,
    headers: &HeaderMap,
    group: &str,
    whose: &str,
    refusal: &'static str,
) -> Result<Principal, Problem> {
    let who = caller(state, headers).await?;
    if who.groups.iter().any(|g| g == group) {
        Ok(who)
    } else {
        Err(problem(
            StatusCode::FORBIDDEN,
            refusal,
            format!("{} is not in the {whose} group {group:?}", who.name()),
        ))
    }
}

/// The caller, who must be a reviewer.
async fn reviewer(
    state: &AdminState,
    approvals: &Approvals,
    headers: &HeaderMap,
) -> Result<Principal, Problem> {
    member(
        state,
        headers,
        &approvals.settings().reviewers_group,
        "reviewers",
        "Not a reviewer",
    )
    .await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `pending` (the default) or `all`.
    state: Option<String>,
}

async fn list_approvals(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let approvals = approvals(&state)?;
    reviewer(&state, approvals, &headers).await?;
    let pending_only = match query.state.as_deref() {
        None | Some("pending") => true,
        Some("all") => false,
        Some(other) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "Bad state filter",
                format!("state={other:?}: use `pending` or `all`"),
            ));
        }
    };
    Ok(Json(approvals.list(pending_only)).into_response())
}

async fn get_approval(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let approvals = approvals(&state)?;
    reviewer(&state, approvals, &headers).await?;
    approvals
        .get(&id)
        .map(|request| Json(request).into_response())
        .ok_or_else(|| {
            problem(
                StatusCode::NOT_FOUND,
                "No such approval request",
                format!("no request {id}"),
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
    /// Ticket approvals: executions allowed (default 1).
    uses: Option<u32>,
    /// Ticket approvals: how long the grant may be used, e.g. "30m" (default `grant_ttl`).
    valid_for: Option<String>,
}

/// `POST /api/v1/approvals/{id}/approve` and `.../deny`.
async fn decide(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(problem(
                StatusCode::NOT_FOUND,
                "No such decision",
                format!("{other:?}: POST .../approve or .../deny"),
            ));
        }
    };
    let approvals = approvals(&state)?;
    let who = reviewer(&state, approvals, &headers).await?;
    let (reason, terms) = match json_body::<DecisionBody>(&body)? {
        Some(body) => {
            let valid_for = body
                .valid_for
                .as_deref()
                .map(humantime::parse_duration)
                .transpose()
                .map_err(|e| {
                    problem(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Bad valid_for",
                        format!("valid_for: {e} (write e.g. \"30m\" or \"2h\")"),
                    )
                })?;
            (
                body.reason,
                GrantTerms {
                    uses: body.uses,
                    valid_for,
                },
            )
        }
        None => (None, GrantTerms::default()),
    };
    let decided = approvals.decide(&id, &who, approve, reason, terms).map_err(|e| {
        let (status, title) = match &e {
            DecideError::NotFound(_) => (StatusCode::NOT_FOUND, "No such approval request"),
            DecideError::NotPending { .. } => (StatusCode::CONFLICT, "Already decided"),
            DecideError::SelfApproval(_) => (StatusCode::FORBIDDEN, "Self-approval refused"),
            DecideError::NotReviewer { .. } => (StatusCode::FORBIDDEN, "Not a reviewer"),
            DecideError::ReasonRequired => (StatusCode::UNPROCESSABLE_ENTITY, "Reason required"),
            DecideError::AlreadyVoted(_) => (StatusCode::CONFLICT, "Already approved by you"),
        };
        problem(status, title, e.to_string())
    })?;
    info!(approval = %id, reviewer = %who.name(), approved = approve, "approval request decided");
    Ok(Json(decided).into_response())
}
