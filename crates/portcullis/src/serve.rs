//! `portcullis serve`: builds every stage from the configuration, binds the listeners, runs until signalled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_core::Secret;
use portcullis_identity::{DevIssuer, IssuerSettings, Verifier};
use portcullis_postgres::cancel::CancelRegistry;
use portcullis_postgres::handshake::FrontendSettings;
use portcullis_postgres::relay::RelayLimits;
use portcullis_postgres::upstream::{self, UpstreamSettings, UpstreamTls};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState, DEV_ISSUER_PATH};
use crate::approvals::{ApprovalSettings, Approvals};
use crate::audit::Audit;
use crate::config::{Config, ConnectionConfig, DevIssuerConfig, Protocol, UpstreamTlsMode};
use crate::console::{self, Console};
use crate::guard::{AnalysisCache, GuardSettings, PolicyStore};
use crate::http::HttpGate;
use crate::masking::ConnectionMasking;
use crate::notify::{Notifier, NotifySettings};
use crate::postgres::{Connection, PgGateway};
use crate::{telemetry, tls};

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = telemetry::install_metrics()?;
    std::fs::create_dir_all(&config.server.state_dir)
        .with_context(|| format!("creating state_dir {}", config.server.state_dir.display()))?;

    let dev_issuer = dev_issuer(&config)?;
    let mut issuers = config.identity.issuers.clone();
    if let Some(dev) = &dev_issuer {
        issuers.push(dev_issuer_settings(dev, &config.identity.dev_issuer));
    }
    let verifier = Verifier::new(issuers).context("identity.issuers")?;

    let policy_set = config.load_policies()?;
    info!(
        policies = policy_set.len(),
        statement_checks = config.policy.statement_checks,
        "policy loaded"
    );
    let policies = Arc::new(PolicyStore::new(
        config.policy.paths(&config.base_dir),
        policy_set,
    ));
    Arc::clone(&policies).watch(config.policy.watch_interval);
    let audit = if config.audit.enabled {
        let audit = Audit::start(&config).context("starting the audit trail")?;
        info!(store = %config.audit_path().display(), exports = config.audit.exports.len(), "audit trail on");
        Some(audit)
    } else {
        warn!("the audit trail is off ([audit] enabled = false): sessions are not recorded");
        None
    };

    let masking = crate::masking::policy(&config)?.map(Arc::new);
    if masking.is_some() {
        info!(rules = config.masking.rules.len(), "masking on");
    }
    let connections = connections(&config, masking.as_deref())?;
    let approvals = start_approvals(&config, audit.as_deref(), &connections)?;
    let http_approvals = approvals
        .as_ref()
        .map(|store| crate::http_approvals::HttpApprovals {
            store: Arc::clone(store),
            link_base: approval_link_base(&config),
            modes: config
                .connections
                .iter()
                .filter_map(|c| c.approval_mode.map(|mode| (c.name.clone(), mode)))
                .collect(),
        });
    let guard_policies = Arc::clone(&policies);
    let http_gate = HttpGate {
        verifier: verifier.clone(),
        tokens: crate::http::TokenCache::new(),
        policies: Arc::clone(&policies),
        checks: config.policy.statement_checks,
        audit: audit.clone(),
        upstreams: crate::http::upstream_infos(&config),
        bodies: crate::http_mask::connections(&config, masking.as_deref()),
        masking,
        approvals: http_approvals,
    };
    let guard = GuardSettings {
        policies,
        analyses: Arc::new(AnalysisCache::new(config.policy.cache_entries)),
        checks: config.policy.statement_checks,
        approvals: approvals.clone(),
    };
    let pg = Arc::new(PgGateway {
        frontend: FrontendSettings {
            tls: Some(tls::server_config(
                config.server.postgres.tls_cert.as_deref(),
                config.server.postgres.tls_key.as_deref(),
                &config.server.state_dir,
            )?),
            allow_plaintext: config.server.postgres.allow_plaintext,
            handshake_timeout: config.server.postgres.handshake_timeout,
        },
        verifier: verifier.clone(),
        connections,
        cancels: CancelRegistry::default(),
        limits: RelayLimits {
            max_client_message: config.server.postgres.max_message_bytes,
        },
        session_grace: config.identity.session_grace,
        guard,
        audit,
    });

    let pg_listener = bind(config.server.postgres.listen, "server.postgres.listen").await?;
    if config.has_http_connections() {
        start_http(&config, http_gate).await?;
    }
    let admin_listener = bind(config.server.admin.listen, "server.admin.listen").await?;
    let console = start_console(&config, dev_issuer.as_deref())?;
    let admin_router = admin::router(AdminState {
        metrics,
        dev_issuer,
        approvals,
        verifier: verifier.clone(),
        audit_store: config.audit.enabled.then(|| config.audit_path()),
        operators_group: config.server.admin.operators_group.clone(),
        console,
        policies: Arc::clone(&guard_policies),
        connection_names: config.connections.iter().map(|c| c.name.clone()).collect(),
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin_router).await {
            error!(error = %e, "admin listener failed");
        }
    });
    tokio::spawn(async move { verifier.warm_up().await });
    info!(
        postgres = %config.server.postgres.listen, admin = %config.server.admin.listen,
        connections = config.connections.len(), "portcullis is serving"
    );

    tokio::select! {
        () = accept_postgres(pg_listener, pg) => {}
        () = shutdown_signal() => info!("shutting down"),
    }
    Ok(())
}

/// Binds the HTTP listener and serves the `http` connections through the proxy.
async fn start_http(config: &Config, gate: HttpGate) -> anyhow::Result<()> {
    let h = &config.server.http;
    let proxy = crate::http::proxy(config, gate)?;
    let settings = portcullis_http::ListenerSettings {
        tls: tls::server_config(
            h.tls_cert.as_deref(),
            h.tls_key.as_deref(),
            &config.server.state_dir,
        )?,
        allow_plaintext: h.allow_plaintext,
        header_timeout: h.header_timeout,
        idle_timeout: h.idle_timeout,
    };
    let listener = bind(h.listen, "server.http.listen").await?;
    info!(http = %h.listen, allow_plaintext = h.allow_plaintext, "http listener");
    tokio::spawn(portcullis_http::serve(listener, proxy, settings));
    Ok(())
}

/// The web console, unless `[server.admin.console] enabled = false`: its OIDC client (the configured
/// issuer, else the development issuer) and, with the development issuer, that issuer's sign-in page.
fn start_console(config: &Config, dev_issuer: Option<&DevIssuer>) -> anyhow::Result<Option<Arc<Console>>> {
    let settings = &config.server.admin.console;
    if !settings.enabled {
        return Ok(None);
    }
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.admin.listen));
    let redirect_uri = format!("{}/console/callback", public_url.trim_end_matches('/'));
    let issuer = settings
        .issuer
        .clone()
        .or_else(|| dev_issuer.map(|d| d.issuer_url().to_owned()));
    let client_secret = settings
        .client_secret()
        .map_err(|e| anyhow::anyhow!("server.admin.console.client_secret: {e}"))?;
    let oidc = issuer
        .map(|issuer| {
            console::oidc::Client::new(console::oidc::ClientSettings {
                issuer,
                client_id: settings.client_id.clone(),
                client_secret,
                scopes: settings.scopes.clone(),
                resource: settings.resource.clone(),
                redirect_uri: redirect_uri.clone(),
            })
        })
        .transpose()?;
    if oidc.is_none() {
        warn!("the console has no sign-in: set [server.admin.console] issuer");
    }
    let mut default_groups = Vec::new();
    if config.approvals.enabled {
        default_groups.push(config.approvals.reviewers_group.as_str());
    }
    default_groups.push(config.server.admin.operators_group.as_str());
    let dev_signin = dev_issuer.map(|_| {
        let dev = &config.identity.dev_issuer;
        console::dev_signin::DevSignin::new(
            settings.client_id.clone(),
            redirect_uri.clone(),
            dev.audience.clone(),
            settings.session_ttl.min(dev.max_ttl),
            default_groups.join(", "),
        )
    });
    info!(url = %format!("{}/console/", public_url.trim_end_matches('/')), "web console");
    Ok(Some(Arc::new(Console::new(
        oidc,
        dev_signin,
        settings.session_ttl,
    ))))
}

/// The approvals, when `[approvals] enabled`: their settings, their audit log, previews on the
/// connections' upstreams, the webhook notifier, and a sweep that expires tickets on time.
fn start_approvals(
    config: &Config,
    audit: Option<&Audit>,
    connections: &HashMap<String, Connection>,
) -> anyhow::Result<Option<Arc<Approvals>>> {
    if !config.approvals.enabled {
        return Ok(None);
    }
    let mut approvals = Approvals::new(
        ApprovalSettings {
            mode: config.approvals.mode,
            hold_timeout: config.approvals.hold_timeout,
            grant_ttl: config.approvals.grant_ttl,
            reviewers_group: config.approvals.reviewers_group.clone(),
            deny_reason_required: config.approvals.deny_reason_required,
            quorum: config.approvals.quorum,
        },
        audit.map(|a| a.log.clone()),
    );
    if config.approvals.preview {
        let upstreams = connections
            .iter()
            .map(|(name, c)| (name.clone(), c.upstream.clone()))
            .collect();
        approvals = approvals.with_previews(upstreams, config.approvals.preview_exact);
    }
    if let Some(url) = &config.approvals.notify_webhook {
        let link_base = approval_link_base(config);
        let notifier = Notifier::start(NotifySettings {
            url: url.clone(),
            link_base,
            include_statement: config.approvals.notify_statement,
        })
        .context("approvals.notify_webhook")?;
        approvals = approvals.with_notifier(notifier);
    }
    info!(mode = ?config.approvals.mode, quorum = config.approvals.quorum, "approvals on");
    let approvals = Arc::new(approvals);
    // Tickets nobody decided expire (recorded and notified) within a second of their time.
    let sweeping = Arc::downgrade(&approvals);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            match sweeping.upgrade() {
                Some(approvals) => approvals.sweep(),
                None => return,
            }
        }
    });
    Ok(Some(approvals))
}

/// Where a reviewer finds an approval request: `[approvals] link_base` and its id, else the admin
/// API's request.
fn approval_link_base(config: &Config) -> String {
    config
        .approvals
        .link_base
        .clone()
        .unwrap_or_else(|| format!("http://{}/api/v1/approvals/", config.server.admin.listen))
}

async fn accept_postgres(listener: TcpListener, gateway: Arc<PgGateway>) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                tokio::spawn(crate::postgres::serve(Arc::clone(&gateway), tcp, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn bind(address: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("{key}: cannot listen on {address}"))
}

/// The development issuer's URL: under the admin listener unless configured.
pub fn dev_issuer_url(config: &Config) -> String {
    if let Some(url) = &config.identity.dev_issuer.url {
        return url.trim_end_matches('/').to_owned();
    }
    let mut admin = config.server.admin.listen;
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{admin}{DEV_ISSUER_PATH}")
}

/// Loads the development issuer's key from `state_dir`, creating it on first use.
pub fn load_dev_issuer(config: &Config) -> anyhow::Result<DevIssuer> {
    let key_path = config.server.state_dir.join("dev-issuer-key.pem");
    DevIssuer::load_or_create(&key_path, dev_issuer_url(config))
        .with_context(|| format!("development issuer key {}", key_path.display()))
}

/// A token signed by the development issuer (`token mint`, and the demo's agent and reviewer); the
/// issuer must be enabled and `ttl` within its `max_ttl`.
pub fn mint_dev_token(
    config: &Config,
    subject: String,
    groups: Vec<String>,
    ttl: Duration,
) -> anyhow::Result<Secret<String>> {
    let dev = &config.identity.dev_issuer;
    anyhow::ensure!(
        dev.enabled,
        "[identity.dev_issuer] is not enabled in this configuration"
    );
    anyhow::ensure!(
        ttl <= dev.max_ttl,
        "--ttl {} exceeds identity.dev_issuer.max_ttl ({})",
        humantime::format_duration(ttl),
        humantime::format_duration(dev.max_ttl)
    );
    let issuer = load_dev_issuer(config)?;
    let request = portcullis_identity::MintRequest {
        subject,
        groups,
        audience: dev.audience.clone(),
        ttl,
    };
    Ok(Secret::new(issuer.mint(&request).context("minting")?))
}

fn dev_issuer(config: &Config) -> anyhow::Result<Option<Arc<DevIssuer>>> {
    if !config.identity.dev_issuer.enabled {
        return Ok(None);
    }
    let dev = load_dev_issuer(config)?;
    tracing::warn!(
        issuer = dev.issuer_url(),
        "the development issuer is enabled: do not use it in production"
    );
    Ok(Some(Arc::new(dev)))
}

/// The development issuer is verified like any other: through discovery and JWKS over HTTP.
fn dev_issuer_settings(dev: &DevIssuer, settings: &DevIssuerConfig) -> IssuerSettings {
    IssuerSettings {
        issuer: dev.issuer_url().to_owned(),
        audience: vec![settings.audience.clone()],
        jwks_uri: None,
        alias: settings.alias.clone(),
        groups_claim: "groups".to_owned(),
        algorithms: vec!["ES256".to_owned()],
        leeway: Duration::from_secs(5),
        max_lifetime: settings.max_ttl,
    }
}

fn connections(
    config: &Config,
    masking: Option<&portcullis_mask::MaskPolicy>,
) -> anyhow::Result<HashMap<String, Connection>> {
    config
        .connections
        .iter()
        .enumerate()
        // HTTP connections are the proxy's (`crate::http`).
        .filter(|(_, c)| c.protocol == Protocol::Postgres)
        .map(|(i, c)| {
            let upstream = upstream_settings(c).with_context(|| format!("connections[{i}]"))?;
            Ok((
                c.name.clone(),
                Connection {
                    config: c.clone(),
                    masking: masking.and_then(|m| ConnectionMasking::new(m, config, &c.name, &upstream)),
                    upstream,
                },
            ))
        })
        .collect()
}

fn upstream_settings(c: &ConnectionConfig) -> anyhow::Result<UpstreamSettings> {
    let password = c
        .resolve_password()
        .map_err(anyhow::Error::msg)
        .context("password")?;
    let tls = match c.tls.unwrap_or_default() {
        UpstreamTlsMode::Disable => UpstreamTls::Disable,
        UpstreamTlsMode::Prefer => UpstreamTls::Prefer(upstream::unverified_config()?),
        UpstreamTlsMode::Require => UpstreamTls::Require(upstream::unverified_config()?),
        UpstreamTlsMode::VerifyFull => {
            let path = c
                .ca_file
                .as_ref()
                .context("ca_file: verify-full needs a CA bundle")?;
            let pem = std::fs::read(path).with_context(|| format!("ca_file: reading {}", path.display()))?;
            UpstreamTls::VerifyFull(upstream::verifying_config(&pem).context("ca_file")?)
        }
    };
    let host = c.upstream.rsplit_once(':').map(|(h, _)| h).unwrap_or(&c.upstream);
    Ok(UpstreamSettings {
        address: c.upstream.clone(),
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        database: c.database.clone(),
        user: c.user.clone(),
        password,
        tls,
        connect_timeout: c.connect_timeout,
    })
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
