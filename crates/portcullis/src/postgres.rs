//! The PostgreSQL pipeline of one client connection: handshake, identity, connect decision, upstream
//! login, relay. Each stage is a call; the branches say what the client sees.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_audit::SessionStartEvent;
use portcullis_core::{Outcome, Principal, RejectReason};
use portcullis_identity::Verifier;
use portcullis_policy::RequestContext;
use portcullis_postgres::cancel::CancelRegistry;
use portcullis_postgres::handshake::{self, Accepted, FrontendSettings, Handshake};
use portcullis_postgres::mask::SessionMask;
use portcullis_postgres::relay::{self, Deadline, Endings, RelayLimits};
use portcullis_postgres::session;
use portcullis_postgres::upstream::{self, UpstreamError, UpstreamSettings};
use portcullis_postgres::wire::backend::GatewayError;
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::audit::{self, Audit, OutcomeRecorder, SessionRecorder};
use crate::config::ConnectionConfig;
use crate::guard::{GuardSettings, SessionGuard};
use crate::masking::ConnectionMasking;
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
    /// The audit trail, unless `[audit] enabled = false`.
    pub audit: Option<Arc<Audit>>,
}

/// A configured connection, with its upstream settings resolved (password read) at start-up.
#[derive(Debug)]
pub struct Connection {
    pub config: ConnectionConfig,
    pub upstream: UpstreamSettings,
    /// Masking rules that apply to this connection, if any.
    pub masking: Option<ConnectionMasking>,
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

    // 1b. An operator may have revoked this identity (`portcullis revoke`).
    if let Some(revocation) = gateway
        .audit
        .as_ref()
        .and_then(|a| a.controls.revoked(&principal))
    {
        telemetry::auth_failure(RejectReason::Revoked);
        warn!(client = %peer, principal = %principal.name(), until_us = ?revocation.until_us, "revoked identity refused");
        let error = GatewayError::fatal(
            "28000",
            "token rejected: revoked: an operator revoked this identity",
        );
        return handshake.refuse(&error).await;
    }

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
    let policies = gateway.guard.policies.current();
    let decision = policies.set.decide_connect(&principal, name, &context);
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

    // 5. The session's start is recorded before anything runs: if the audit store fails, no session.
    let session_id = audit::new_session_id();
    let recorder = gateway
        .audit
        .as_ref()
        .map(|a| SessionRecorder::new(a, &session_id));
    if let Some(recorder) = &recorder {
        let event = start_event(&principal, &handshake, connection, upstream.stream.is_tls(), peer);
        if let Err(e) = recorder.start(event).await {
            let error = audit::store_failure(&e);
            return handshake
                .refuse(&GatewayError::fatal("58030", error.message).with_hint("retry later"))
                .await;
        }
    }

    // 6. The session opens with the gateway's cancel key, then relays until someone ends it.
    let Handshake { mut client, user, .. } = handshake;
    let registration = gateway.cancels.register(upstream.peer, upstream.key.clone());
    if let Err(e) = session::open(&mut client, &upstream, &registration.client_key).await {
        info!(client = %peer, error = %e, "client left before the session opened");
        if let Some(recorder) = &recorder {
            recorder.end(
                "client_disconnected",
                e.to_string(),
                0,
                0,
                std::time::Instant::now(),
            );
        }
        return;
    }
    let started = std::time::Instant::now();
    let _active = telemetry::session_started(name);
    info!(
        session = %session_id, client = %peer, connection = name, principal = %principal.name(), user = %user,
        tls = client.is_tls(), groups = ?principal.groups, token_id = principal.token_id.as_deref().unwrap_or(""),
        "session started"
    );
    // Operators end sessions through the store (`sessions kill`, `revoke`); the relay hears it here.
    let (stop, _live) = match &gateway.audit {
        Some(audit) => {
            let (stop, live) = audit.controls.register(&session_id, &principal);
            (Some(stop), Some(live))
        }
        None => (None, None),
    };
    let endings = Endings {
        deadline: Some(expiry_deadline(&principal, gateway.session_grace)),
        stop,
    };
    let meters = telemetry::relay_meters(name);
    // Masking, unless policy grants this principal `unmask` on the whole connection.
    let masking = connection
        .masking
        .as_ref()
        .and_then(|m| m.for_session(&policies, &principal, name, &context));
    drop(policies);
    let mut guard = SessionGuard::new(
        gateway.guard.clone(),
        principal.clone(),
        name.to_owned(),
        peer.ip(),
        connection.config.on_parse_error,
        recorder.clone(),
        masking.as_ref().map(|m| m.rules.clone()),
    )
    .with_cancel(Arc::clone(&registration.cancelled))
    .with_approval_mode(connection.config.approval_mode);
    let mut outcomes = OutcomeRecorder(recorder.clone());
    let end = relay::run(
        client,
        upstream.stream,
        endings,
        gateway.limits,
        &meters,
        &mut guard,
        &mut outcomes,
        masking.map(SessionMask::new),
        &upstream.parameters,
    )
    .await;
    drop(registration);
    if let Some(recorder) = &recorder {
        recorder.end(
            end.label(),
            end_detail(&end),
            guard.recorded,
            guard.refused,
            started,
        );
    }
    telemetry::session_ended(end.label());
    info!(session = %session_id, client = %peer, connection = name, principal = %principal.name(), end = end.label(), detail = ?end, "session ended");
}

/// The audit record of who opened a session, from where, to what.
fn start_event(
    principal: &Principal,
    handshake: &Handshake,
    connection: &Connection,
    upstream_tls: bool,
    peer: SocketAddr,
) -> SessionStartEvent {
    SessionStartEvent {
        protocol: "postgres".to_owned(),
        issuer: principal.issuer.clone(),
        issuer_alias: principal.issuer_alias.clone(),
        subject: principal.subject.clone(),
        groups: principal.groups.clone(),
        token_id: principal.token_id.clone(),
        token_expires_at: principal
            .expires_at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
        client_addr: peer.to_string(),
        client_tls: handshake.client.is_tls(),
        client_user: handshake.user.clone(),
        connection: connection.config.name.clone(),
        upstream_role: connection.config.user.clone(),
        upstream_tls,
    }
}

/// What the audit trail says about how a session ended, beyond its label.
fn end_detail(end: &relay::SessionEnd) -> String {
    match end {
        relay::SessionEnd::ClientViolation(e) | relay::SessionEnd::UpstreamViolation(e) => e.to_string(),
        relay::SessionEnd::ClientIo(e) | relay::SessionEnd::UpstreamIo(e) => e.to_string(),
        _ => String::new(),
    }
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
