//! The HTTP front end's wiring: each `http` connection's upstream (URL, TLS, credential, routes) built
//! from the configuration, and the [`Gate`] that verifies tokens, decides requests and records them in
//! the audit trail for the proxy.
//!
//! The pipeline of one request lives in `portcullis_http::Proxy::handle`: token → connection → facts →
//! this gate's decision (revocation, `connect`, the request's Cedar action) → audit (write-ahead) →
//! forward → outcome.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use portcullis_core::{Outcome, Principal, RejectReason};
use portcullis_http::{
    Completion, Ending, Gate, OAuthSettings, Problem, Proxy, ProxyLimits, RefusedRequest, RequestInfo,
    ResponseFilter, RouteTemplate, Upstream, UpstreamBase, UpstreamCredential, UpstreamSettings,
};
use portcullis_identity::Verifier;
use portcullis_mask::{ConnectionMask, MaskPolicy};
use portcullis_policy::RequestContext;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::audit::Audit;
use crate::config::{ClientAuth, Config, ConnectionConfig, CredentialConfig, Protocol, UpstreamTlsMode};
use crate::guard::{Loaded, PolicyStore};
use crate::http_audit::{self, ClientSessions, Recorded, RequestRecord, UpstreamInfo, Verdict};
use crate::http_mask::{BodyMasking, RequestMasking};
use crate::postgres::token_age_secs;
use crate::telemetry;

/// The largest MCP JSON-RPC request body the gateway reads (and so can decide); larger ones get 413.
const MCP_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many verified tokens the HTTP gate remembers.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Verified tokens by their SHA-256, until they expire. An HTTP agent presents its token with every
/// request, and verifying a signature costs more than the rest of a request's work; a PostgreSQL
/// session verifies once. Revocation is still checked on every request.
pub struct TokenCache {
    cache: quick_cache::sync::Cache<[u8; 32], Arc<Principal>>,
}

impl TokenCache {
    pub fn new() -> Self {
        TokenCache {
            cache: quick_cache::sync::Cache::new(TOKEN_CACHE_ENTRIES),
        }
    }

    fn get(&self, key: &[u8; 32]) -> Option<Arc<Principal>> {
        self.cache
            .get(key)
            .filter(|principal| principal.expires_at > SystemTime::now())
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.cache.len())
            .finish()
    }
}

/// Verifies and decides HTTP requests for the proxy.
#[derive(Debug)]
pub struct HttpGate {
    pub verifier: Verifier,
    pub tokens: TokenCache,
    pub policies: Arc<PolicyStore>,
    /// Decide every request (`[policy] statement_checks`), or only who may connect.
    pub checks: bool,
    /// The audit trail (each request's record) and operators' revocations; `None` when it is off.
    pub audit: Option<Arc<Audit>>,
    /// Each `http` connection's upstream, as the audit trail names it.
    pub upstreams: HashMap<String, UpstreamInfo>,
    /// Masking's rules: their detectors scrub request targets before they are recorded.
    pub masking: Option<Arc<MaskPolicy>>,
    /// How each `http` connection with field rules or detectors masks response bodies.
    pub bodies: HashMap<String, Arc<BodyMasking>>,
    /// Where requests that need a human's approval are held or ticketed (`[approvals] enabled`);
    /// without it they are refused.
    pub approvals: Option<crate::http_approvals::HttpApprovals>,
}

/// What the gate keeps of a request it let through: its audit record (none when the trail is off) and
/// the masking of its response (none when the connection masks nothing or policy grants `unmask`).
#[derive(Debug)]
pub struct HttpPass {
    pub(crate) record: Option<RequestRecord>,
    pub(crate) masking: Option<RequestMasking>,
}

impl Completion for HttpPass {
    fn finished(self, ending: Ending<'_>) {
        if let Some(record) = self.record {
            let tally = self.masking.as_ref().map(RequestMasking::tally);
            record.finished(ending, tally.as_ref());
        }
    }

    fn record_limit(&self) -> usize {
        self.record.as_ref().map_or(0, RequestRecord::body_limit)
    }
}

/// The gate's decision on one request: the answer, and what the audit trail says of it.
pub(crate) struct Judged {
    pub answer: Result<(), Problem>,
    pub verdict: Verdict,
}

impl Gate for HttpGate {
    type Identity = Arc<Principal>;
    type Pass = HttpPass;
    type Client = ClientSessions;

    fn client(&self) -> ClientSessions {
        ClientSessions::new(self.audit.clone())
    }

    async fn authenticate(&self, token: &str, peer: SocketAddr) -> Result<Arc<Principal>, Problem> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let verified = match self.tokens.get(&key) {
            Some(principal) => Ok(principal),
            None => self.verifier.verify(token).await.map(|principal| {
                let principal = Arc::new(principal);
                self.tokens.cache.insert(key, Arc::clone(&principal));
                principal
            }),
        };
        let principal = match verified {
            Ok(principal) => principal,
            Err(rejected) => {
                telemetry::auth_failure(rejected.reason);
                warn!(client = %peer, reason = rejected.reason.label(), detail = %rejected.detail, "http token rejected");
                return Err(Problem::unauthorized(
                    rejected.reason.class(),
                    format!("token rejected: {}: {}", rejected.reason.class(), rejected.detail),
                ));
            }
        };
        // An operator may have revoked this identity (`portcullis revoke`).
        if let Some(revocation) = self.audit.as_ref().and_then(|a| a.controls.revoked(&principal)) {
            telemetry::auth_failure(RejectReason::Revoked);
            warn!(client = %peer, principal = %principal.name(), until_us = ?revocation.until_us, "revoked identity refused");
            return Err(Problem::unauthorized(
                RejectReason::Revoked.class(),
                "token rejected: revoked: an operator revoked this identity",
            ));
        }
        Ok(principal)
    }

    async fn decide(
        &self,
        who: &Arc<Principal>,
        client: &ClientSessions,
        request: &RequestInfo<'_>,
    ) -> Result<HttpPass, Problem> {
        let context = RequestContext {
            client_ip: request.peer.ip(),
            token_age_secs: token_age_secs(who),
        };
        let policies = self.policies.current();
        let Judged { answer, verdict } = self.judge(&policies, who, request, &context);
        // Masking, unless policy lets this caller see the connection in clear: decided once, for the
        // recorded target and the response body alike.
        let connection = request.connection;
        let masked = !crate::masking::cleartext(&policies, who, connection, &context);
        let scrub = self
            .masking
            .as_ref()
            .map(|policy| policy.for_connection(connection))
            .filter(|rules| masked && !rules.is_empty());
        let masking = self
            .bodies
            .get(connection)
            .filter(|_| masked)
            .map(|body| RequestMasking::new(Arc::clone(body)));
        // Permitted only with a human's approval: held or ticketed (`http_approvals.rs`).
        if verdict.decision == crate::http_approvals::APPROVAL_REQUIRED
            && let Some(approvals) = &self.approvals
        {
            return self
                .approval(
                    approvals, &policies, who, client, request, verdict, scrub, masking,
                )
                .await;
        }
        // Write-ahead: the request's statement (with its session's start, for the first) is durable
        // before anything is forwarded; a refusal is recorded too. A store failure refuses the request
        // (503), whatever was decided.
        let recorded = self.recorded(who, request, scrub);
        let record = match RequestRecord::begin(client, &recorded, verdict).await {
            None => {
                return answer.map(|()| HttpPass {
                    record: None,
                    masking,
                });
            }
            Some(Ok(record)) => record,
            Some(Err(e)) => return Err(http_audit::store_failure(&e)),
        };
        match answer {
            Ok(()) => Ok(HttpPass {
                record: Some(record),
                masking,
            }),
            Err(problem) => {
                record.refused(&problem);
                Err(problem)
            }
        }
    }

    async fn refused(
        &self,
        who: &Arc<Principal>,
        client: &ClientSessions,
        request: &RefusedRequest<'_>,
        problem: &Problem,
    ) {
        let Some(audit) = &self.audit else { return };
        let context = RequestContext {
            client_ip: request.peer.ip(),
            token_age_secs: token_age_secs(who),
        };
        let scrub = request
            .connection
            .and_then(|name| self.scrub(&self.policies.current(), who, name, &context));
        let recorded = Recorded {
            principal: who,
            peer: request.peer,
            tls: request.tls,
            connection: request.connection,
            upstream: request.connection.and_then(|name| self.upstreams.get(name)),
            method: request.method,
            target: request.target,
            facts: None,
            scrub,
            mcp: None,
            body: None,
            body_limit: audit.http_body_bytes,
        };
        let verdict = Verdict {
            decision: "deny",
            policies: Vec::new(),
            reason: problem.detail.clone(),
        };
        // Nothing is forwarded either way: a store failure is logged and counted, the refusal stands.
        match RequestRecord::begin(client, &recorded, verdict).await {
            Some(Ok(record)) => record.refused(problem),
            Some(Err(e)) => {
                let _ = http_audit::store_failure(&e);
            }
            None => {}
        }
    }

    fn upstream_headers(
        &self,
        _who: &Arc<Principal>,
        _request: &RequestInfo<'_>,
        pass: &HttpPass,
        headers: &mut http::HeaderMap,
    ) {
        if let Some(masking) = &pass.masking {
            masking.upstream_headers(headers);
        }
    }

    fn response_filter(
        &self,
        who: &Arc<Principal>,
        request: &RequestInfo<'_>,
        pass: &HttpPass,
        response: &http::response::Parts,
    ) -> Result<Option<Box<dyn ResponseFilter>>, Problem> {
        // MCP: tools/list shows only the tools the principal may call (with statement checks); the
        // masking filter then reads what is left.
        let context = RequestContext {
            client_ip: request.peer.ip(),
            token_age_secs: token_age_secs(who),
        };
        let tools = self
            .checks
            .then(|| crate::mcp::tool_list_filter(self.policies.current(), who, request, response, context))
            .flatten();
        let masking = match &pass.masking {
            Some(masking) => masking.filter(request.connection, &request.facts.method, response)?,
            None => None,
        };
        Ok(portcullis_http::Chain::of(tools, masking))
    }

    fn completed(&self, connection: Option<&str>, status: http::StatusCode) {
        telemetry::http_request(connection, status.as_u16());
    }
}

impl HttpGate {
    /// A decided request as its audit record holds it.
    pub(crate) fn recorded<'a>(
        &'a self,
        who: &'a Principal,
        request: &'a RequestInfo<'a>,
        scrub: Option<Arc<ConnectionMask>>,
    ) -> Recorded<'a> {
        Recorded {
            principal: who,
            peer: request.peer,
            tls: request.tls,
            connection: Some(request.connection),
            upstream: self.upstreams.get(request.connection),
            method: &request.facts.method,
            target: request.target,
            facts: Some(request.facts),
            scrub,
            mcp: request.mcp,
            body: http_audit::body_read(request),
            body_limit: self.audit.as_ref().map_or(0, |a| a.http_body_bytes),
        }
    }

    /// `connect`, then (with statement checks) the request's Cedar action.
    fn judge(
        &self,
        policies: &Loaded,
        who: &Principal,
        request: &RequestInfo<'_>,
        context: &RequestContext,
    ) -> Judged {
        let name = request.connection;
        let facts = request.facts;
        let refuse = |problem: Problem, reason: String| Judged {
            verdict: Verdict {
                decision: "deny",
                policies: problem.policies.clone(),
                reason,
            },
            answer: Err(problem),
        };
        // `connect` guards an HTTP connection as it guards a PostgreSQL one.
        let connect = policies.set.decide_connect(who, name, context);
        if connect.outcome != Outcome::Allow {
            telemetry::auth_failure(RejectReason::NotPermitted);
            warn!(client = %request.peer, connection = name, principal = %who.name(), policies = ?connect.policies,
                reason = %connect.reason, "http connect not permitted");
            let detail = format!(
                "{} may not use connection {name:?}: {}",
                who.name(),
                connect.reason
            );
            return refuse(Problem::forbidden(detail.clone(), connect.policies), detail);
        }
        if !self.checks {
            return Judged {
                answer: Ok(()),
                verdict: Verdict {
                    decision: "allow",
                    policies: connect.policies,
                    reason: String::new(),
                },
            };
        }
        let decision = policies.set.decide_http(who, name, facts, context);
        telemetry::http_decision(decision.outcome);
        match decision.outcome {
            Outcome::Allow => {
                debug!(connection = name, principal = %who.name(), method = %facts.method, path = %facts.path, policies = ?decision.policies, "http request allowed");
                // MCP: each tools/call of the body is decided on its tool and arguments.
                if let Some(portcullis_http::mcp::McpExchange::Messages(mcp)) = request.mcp {
                    return crate::mcp::judge_calls(
                        policies,
                        who,
                        name,
                        mcp,
                        context,
                        request.peer,
                        decision.policies,
                    );
                }
                Judged {
                    answer: Ok(()),
                    verdict: Verdict {
                        decision: "allow",
                        policies: decision.policies,
                        reason: String::new(),
                    },
                }
            }
            Outcome::Deny => {
                info!(client = %request.peer, connection = name, principal = %who.name(), method = %facts.method,
                    path = %facts.path, policies = ?decision.policies, reason = %decision.reason, "http request refused");
                refuse(
                    Problem::forbidden(
                        format!("refused by policy: {}", decision.reason),
                        decision.policies,
                    ),
                    decision.reason,
                )
            }
            Outcome::ApprovalRequired => {
                info!(client = %request.peer, connection = name, principal = %who.name(), method = %facts.method,
                    path = %facts.path, policies = ?decision.policies, "http request needs approval");
                // `decide` asks for the approval when approvals are on; this refusal is the answer
                // when they are off.
                crate::http_approvals::required(decision.policies, decision.reason)
            }
        }
    }

    /// Masking's detectors for what `who` sends to `connection`, unless policy lets it see the
    /// connection in clear (`unmask`), as for a PostgreSQL session's statement texts.
    fn scrub(
        &self,
        policies: &Loaded,
        who: &Principal,
        connection: &str,
        context: &RequestContext,
    ) -> Option<Arc<ConnectionMask>> {
        let rules = self.masking.as_ref()?.for_connection(connection);
        if rules.is_empty() || crate::masking::cleartext(policies, who, connection, context) {
            return None;
        }
        Some(rules)
    }
}

/// Each `http` connection's upstream as the audit trail names it: the kind of credential the gateway
/// adds (its `upstream_role`), and whether it is reached over TLS.
pub fn upstream_infos(config: &Config) -> HashMap<String, UpstreamInfo> {
    config
        .connections
        .iter()
        .filter(|c| c.protocol == Protocol::Http)
        .map(|c| {
            let role = match &c.credential {
                None => "none",
                Some(CredentialConfig::Header { .. }) => "header",
                Some(CredentialConfig::Basic { .. }) => "basic",
                Some(CredentialConfig::OauthClientCredentials { .. }) => "oauth_client_credentials",
            };
            let tls = c
                .upstream_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"));
            (c.name.clone(), UpstreamInfo { role, tls })
        })
        .collect()
}

/// The proxy for the configuration's `http` connections.
pub fn proxy(config: &Config, gate: HttpGate) -> anyhow::Result<Arc<Proxy<HttpGate>>> {
    let mut upstreams = Vec::new();
    for (i, c) in config.connections.iter().enumerate() {
        if c.protocol != Protocol::Http {
            continue;
        }
        let settings = upstream_settings(c).with_context(|| format!("connections[{i}]"))?;
        info!(connection = %c.name, upstream = settings.base.host(), hosts = ?c.hosts, routes = c.routes.len(), "http connection");
        let upstream = Upstream::new(settings).with_context(|| format!("connections[{i}]: TLS settings"))?;
        upstreams.push((c.hosts.clone(), upstream));
    }
    let limits = ProxyLimits {
        inspect_body_bytes: config.server.http.inspect_body_bytes,
    };
    Ok(Arc::new(Proxy::new(gate, upstreams, limits)))
}

fn upstream_settings(c: &ConnectionConfig) -> anyhow::Result<UpstreamSettings> {
    let url = c.upstream_url.as_deref().context("upstream_url: missing")?;
    let base = UpstreamBase::parse(url).context("upstream_url")?;
    let tls = if base.is_https() {
        Some(upstream_tls(c)?)
    } else {
        None
    };
    let routes = c
        .routes
        .iter()
        .map(|r| Ok((r.name.clone(), RouteTemplate::parse(&r.template)?)))
        .collect::<Result<Vec<_>, portcullis_http::TemplateError>>()
        .context("routes")?;
    let context_headers = c
        .context_headers
        .iter()
        .map(|h| http::HeaderName::from_bytes(h.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("context_headers")?;
    Ok(UpstreamSettings {
        name: c.name.clone(),
        base,
        routes,
        context_headers,
        credential: credential(c).context("credential")?,
        tls,
        connect_timeout: c.connect_timeout,
        response_timeout: c.response_timeout,
        mcp: c.mcp.then(|| portcullis_http::mcp::McpSettings {
            path: c.mcp_path.clone(),
            max_body_bytes: MCP_MAX_BODY_BYTES,
        }),
    })
}

/// Verified against `ca_file` (else the public web's roots) unless `tls = "require"`.
fn upstream_tls(c: &ConnectionConfig) -> anyhow::Result<rustls::ClientConfig> {
    let config = match (c.tls, &c.ca_file) {
        (Some(UpstreamTlsMode::Require), _) => portcullis_postgres::upstream::unverified_config()?,
        (_, Some(path)) => {
            let pem = std::fs::read(path).with_context(|| format!("ca_file: reading {}", path.display()))?;
            portcullis_postgres::upstream::verifying_config(&pem).context("ca_file")?
        }
        (_, None) => {
            let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        }
    };
    Ok(config.as_ref().clone())
}

fn credential(c: &ConnectionConfig) -> anyhow::Result<UpstreamCredential> {
    let Some(config) = &c.credential else {
        return Ok(UpstreamCredential::None);
    };
    let secret = config
        .resolve_secret()
        .map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    let credential = match config {
        CredentialConfig::Header { name, .. } => {
            UpstreamCredential::header(http::HeaderName::from_bytes(name.as_bytes())?, &secret)?
        }
        CredentialConfig::Basic { user, .. } => UpstreamCredential::basic(user, &secret)?,
        CredentialConfig::OauthClientCredentials {
            token_url,
            client_id,
            scopes,
            audience,
            client_auth,
            ..
        } => UpstreamCredential::oauth(OAuthSettings {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: secret,
            scopes: scopes.clone(),
            audience: audience.clone(),
            basic_auth: *client_auth == ClientAuth::Basic,
            extra_roots_pem: None,
        })?,
    };
    Ok(credential)
}
