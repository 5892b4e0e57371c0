//! The PostgreSQL pipeline of one client connection: handshake, identity, connect decision, upstream
//! login, relay. Each stage is a call; the branches say what the client sees.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_core::{Outcome, Principal, RejectReason};
use portcullis_identity::Verifier;
use portcullis_policy::RequestContext;
use portcullis_postgres::cancel::CancelRegistry;
use portcullis_postgres::handshake::{self, Accepted, FrontendSettings, Handshake};
use portcullis_postgres::relay::{self, Deadline, RelayLimits};
use portcullis_postgres::session;
use portcullis_postgres::upstream::{self, UpstreamError, UpstreamSettings};
use portcullis_postgres::wire::backend::GatewayError;
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::config::ConnectionConfig;
use crate::guard::{GuardSettings, SessionGuard};
use crate::telemetry;

/// Everything a PostgreSQL session needs from the running gateway. Shared by all sessions.
#[derive(Debug)]
pub struct PgGateway {
    pub frontend: FrontendSettings,
    pub verifier: Verifier,
    pub connections: HashMap<String, Connection>,
    pub cancels: CancelRegistry,
    pub limits: RelayLimits,
    /// How long a session may outlive its token.
    pub session_grace: Duration,
    /// Policy, analysis cache, and whether statements are checked.
    pub guard: GuardSettings,
}

/// A configured connection, with its upstream settings resolved (password read) at start-up.
#[derive(Debug)]
pub struct Connection {
    pub config: ConnectionConfig,
    pub upstream: UpstreamSettings,
}

/// Serves one accepted TCP connection to the end.
pub async fn serve(gateway: Arc<PgGateway>, tcp: TcpStream, peer: SocketAddr) {
    let accepted = match handshake::accept(tcp, &gateway.frontend).await {
        Ok(accepted) => accepted,
        Err(e) => {
            info!(client = %peer, error = %e, "handshake ended");
            return;
        }
    };
    match accepted {
        Accepted::Cancel {
            process_id,
            secret_key,
        } => {
            let routed = gateway
                .cancels
                .cancel(process_id, &secret_key)
                .await
                .unwrap_or(false);
            telemetry::cancel_request(routed);
            info!(client = %peer, routed, "cancel request");
        }
        Accepted::Session(handshake) => run_session(&gateway, *handshake, peer).await,
    }
}

async fn run_session(gateway: &PgGateway, handshake: Handshake, peer: SocketAddr) {
    // 1. The token, first: without one, a client learns nothing, not even which connections exist.
    //    A rejected token ends the session with 28000 and its reason class, never the token.
    let principal = match gateway.verifier.verify(handshake.token.expose()).await {
        Ok(principal) => principal,
        Err(rejected) => {
            telemetry::auth_failure(rejected.reason);
            warn!(client = %peer, database = %handshake.database, user = %handshake.user, reason = rejected.reason.label(), detail = %rejected.detail, "token rejected");
            let error = GatewayError::fatal("28000", format!("token rejected: {}", rejected.reason.class()))
                .with_detail(rejected.detail);
            return handshake.refuse(&error).await;
        }
    };

    // 2. The connection named by dbname. Unknown names get the server's own "no such database" code.
    let Some(connection) = gateway.connections.get(&handshake.database) else {
        let error = GatewayError::fatal("3D000", format!("no connection named {:?}", handshake.database))
            .with_hint("set dbname to one of the connections configured in Portcullis");
        info!(client = %peer, database = %handshake.database, "unknown connection");
        return handshake.refuse(&error).await;
    };
    let name = connection.config.name.as_str();

    // 3. The connect decision: Cedar's `connect` action on the connection.
    let context = RequestContext {
        client_ip: peer.ip(),
        token_age_secs: token_age_secs(&principal),
    };
    let decision = gateway
        .guard
        .policies
        .current()
        .set
        .decide_connect(&principal, name, &context);
    if decision.outcome != Outcome::Allow {
        telemetry::auth_failure(RejectReason::NotPermitted);
        warn!(client = %peer, connection = name, principal = %principal.name(), policies = ?decision.policies,
            reason = %decision.reason, "connect not permitted");
        let error = GatewayError::fatal(
            "28000",
            format!(
                "token rejected: not permitted: {} may not connect to {name:?}",
                principal.name()
            ),
        )
        .with_detail(decision.reason);
        return handshake.refuse(&error).await;
    }

    // 4. The upstream login, with credentials the client never sees.
    let upstream = match upstream::connect(&connection.upstream, &handshake.params).await {
        Ok(upstream) => upstream,
        Err(e) => {
            telemetry::upstream_error(name, upstream_error_kind(&e));
            warn!(client = %peer, connection = name, error = %e, "upstream login failed");
            let error = GatewayError::fatal(
                "08006",
                format!("connection {name:?} is unavailable: {}", client_view(&e)),
            );
            return handshake.refuse(&error).await;
        }
    };

    // 5. The session opens with the gateway's cancel key, then relays until someone ends it.
    let Handshake { mut client, user, .. } = handshake;
    let registration = gateway.cancels.register(upstream.peer, upstream.key.clone());
    if let Err(e) = session::open(&mut client, &upstream, &registration.client_key).await {
        info!(client = %peer, error = %e, "client left before the session opened");
        return;
    }
    let _active = telemetry::session_started(name);
    info!(
        client = %peer, connection = name, principal = %principal.name(), user = %user,
        tls = client.is_tls(), groups = ?principal.groups, token_id = principal.token_id.as_deref().unwrap_or(""),
        "session started"
    );
    let deadline = expiry_deadline(&principal, gateway.session_grace);
    let meters = telemetry::relay_meters(name);
    let mut guard = SessionGuard::new(
        gateway.guard.clone(),
        principal.clone(),
        name.to_owned(),
        peer.ip(),
        connection.config.on_parse_error,
    );
    let end = relay::run(
        client,
        upstream.stream,
        Some(deadline),
        gateway.limits,
        &meters,
        &mut guard,
        &upstream.parameters,
    )
    .await;
    drop(registration);
    telemetry::session_ended(end.label());
    info!(client = %peer, connection = name, principal = %principal.name(), end = end.label(), detail = ?end, "session ended");
}

/// Seconds since the token was issued (0 when it carries no `iat`).
pub fn token_age_secs(principal: &Principal) -> i64 {
    let age = principal
        .issued_at
        .and_then(|iat| SystemTime::now().duration_since(iat).ok())
        .unwrap_or_default();
    i64::try_from(age.as_secs()).unwrap_or(i64::MAX)
}

/// The session ends when the token does, plus the grace period.
fn expiry_deadline(principal: &Principal, grace: Duration) -> Deadline {
    let left = principal
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Deadline {
        at: tokio::time::Instant::now() + left + grace,
        error: GatewayError::fatal("28000", "token expired: the session has ended")
            .with_hint("reconnect with a fresh token"),
    }
}

fn upstream_error_kind(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Unreachable { .. } | UpstreamError::Timeout(_) => "unreachable",
        UpstreamError::TlsNotOffered | UpstreamError::Tls(_) => "tls",
        UpstreamError::Refused { .. } | UpstreamError::Scram(_) | UpstreamError::UnsupportedAuth(_) => {
            "login_refused"
        }
        UpstreamError::Protocol(_) | UpstreamError::Unexpected(_) => "protocol",
    }
}

/// What the client may learn of an upstream failure: the class, not the server's words.
fn client_view(e: &UpstreamError) -> &'static str {
    match upstream_error_kind(e) {
        "unreachable" => "the database is unreachable",
        "tls" => "TLS to the database failed",
        "login_refused" => "the database refused the gateway's login",
        _ => "the database answered unexpectedly",
    }
}
