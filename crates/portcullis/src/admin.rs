//! The admin listener: health, Prometheus metrics, and the development issuer's discovery and JWKS.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use portcullis_identity::DevIssuer;

/// What the admin routes read.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub metrics: PrometheusHandle,
    pub dev_issuer: Option<Arc<DevIssuer>>,
}

/// The path under which the development issuer publishes its documents.
pub const DEV_ISSUER_PATH: &str = "/dev";

/// Builds the admin router.
pub fn router(state: AdminState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    if state.dev_issuer.is_some() {
        router = router
            .route(
                &format!("{DEV_ISSUER_PATH}/.well-known/openid-configuration"),
                get(dev_discovery),
            )
            .route(&format!("{DEV_ISSUER_PATH}/jwks"), get(dev_jwks));
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
