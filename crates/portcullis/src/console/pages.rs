//! The console's pages: server-rendered HTML (maud escapes every value), forms that post back with the
//! sign-in's CSRF token, and answers that redirect (303) to a page with what happened.

// The checks below return the page to answer with instead (`Err(Response)`), once per request: the
// size of that value costs nothing worth boxing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use portcullis_audit::{Control, RelatedWindow, Revocation, SessionFilter, SessionSummary, now_us};
use portcullis_core::{Outcome, Principal};
use portcullis_policy::RequestContext;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{SESSION_COOKIE, SignedIn, current, oidc, refuse, same_secret, set_cookie, to_signin};
use crate::admin::{AdminState, Problem};
use crate::api_sessions::{events, with_store};
use crate::approvals::{ApprovalRequest, ApprovalState, DecideError, GrantTerms};
use crate::policy_check;
use crate::sessions;

/// A whole page with the console's header and navigation.
fn page(title: &str, who: &SignedIn, active: &str, body: Markup) -> Response {
    let nav = [
        ("approvals", "/console/approvals", "Approvals"),
        ("sessions", "/console/sessions", "Sessions"),
        ("identities", "/console/identities", "Identities"),
        ("policy", "/console/policy", "Policy"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Portcullis" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "Portcullis" }
                    nav aria-label="Console" {
                        @for (key, href, label) in nav {
                            a href=(href) aria-current=[(key == active).then_some("page")] { (label) }
                        }
                    }
                    form.signout method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        span.who { (who.principal.name()) }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main { (body) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page without navigation (sign-in, errors before sign-in).
pub fn bare_page(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Portcullis" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body.bare { main #main { (body) } }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page that says what went wrong.
pub fn message(status: StatusCode, title: &str, detail: &str) -> Response {
    let mut response = bare_page(
        title,
        html! {
            h1 { (title) }
            p { (detail) }
            p { a href="/console/approvals" { "Back to the console" } }
        },
    );
    *response.status_mut() = status;
    response
}

fn problem_page(problem: &Problem) -> Response {
    let (status, title, detail) = problem.parts();
    message(status, title, detail)
}

/// The signed-in person, or a redirect to the sign-in page (coming back to `here`).
fn signed_in(state: &AdminState, headers: &HeaderMap, here: &str) -> Result<SignedIn, Response> {
    current(state, headers).ok_or_else(|| to_signin(here))
}

/// Form posts must carry the sign-in's CSRF token.
fn check_csrf(who: &SignedIn, token: &str) -> Result<(), Response> {
    if same_secret(&who.csrf, token) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the page and try again",
        ))
    }
}

fn in_group(who: &SignedIn, group: &str) -> bool {
    who.principal.groups.iter().any(|g| g == group)
}

/// The page shown instead of one that needs a group the person lacks.
fn needs_group(who: &SignedIn, active: &str, title: &str, group: &str, role: &str) -> Response {
    let mut response = page(
        title,
        who,
        active,
        html! {
            h1 { (title) }
            p.notice { "This page is for " (role) ": members of the group " code { (group) } ". "
                "You are signed in as " strong { (who.principal.name()) } " with groups "
                (if who.principal.groups.is_empty() { "(none)".to_owned() } else { who.principal.groups.join(", ") }) "." }
        },
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// A short, human age: `12s`, `4m`, `3h`, `2d`.
fn age(since_us: i64, now: i64) -> String {
    let secs = (now.saturating_sub(since_us) / 1_000_000).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// UTC time to the second.
fn utc(us: i64) -> String {
    sessions::utc_seconds(us)
}

/// An enum's serde name (`pending`, `approved`, `hold`).
fn label<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct SigninQuery {
    next: Option<String>,
}

/// `GET /console/signin`.
pub async fn signin(State(state): State<AdminState>, Query(q): Query<SigninQuery>) -> Response {
    let next = oidc::safe_next(q.next.as_deref());
    let console = state.console.as_ref();
    let issuer = console.and_then(|c| c.oidc.as_ref()).map(oidc::Client::issuer);
    let development = console.is_some_and(|c| c.dev_signin.is_some()) && state.dev_issuer.is_some();
    bare_page(
        "Sign in",
        html! {
            h1 { "Portcullis console" }
            p { "Reviewers approve held statements here; operators replay sessions, end them, and bar identities." }
            @match issuer {
                Some(issuer) => {
                    p { a.button href={ "/console/login?next=" (oidc::form_encode(&next)) } { "Sign in with " (issuer) } }
                    @if development && state.dev_issuer.as_ref().is_some_and(|d| d.issuer_url() == issuer) {
                        p.warning { "This is the development issuer: it signs anyone in. Never use it with real data." }
                    }
                }
                None => p.notice { "Sign-in is not configured: set [server.admin.console] issuer, or enable "
                    "[identity.dev_issuer] for development." },
            }
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`.
pub async fn logout(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(who) = current(&state, &headers) else {
        return Redirect::to("/console/signin").into_response();
    };
    if let Err(r) = check_csrf(&who, &form.csrf) {
        return r;
    }
    if let (Some(console), Some(id)) = (state.console.as_ref(), super::cookie(&headers, SESSION_COOKIE)) {
        console.sign_out(id);
    }
    let mut response = Redirect::to("/console/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/console", Duration::ZERO),
    );
    response
}

// ---------------------------------------------------------------------------------------------------
// Approvals

#[derive(Debug, Deserialize)]
pub struct FlashQuery {
    done: Option<String>,
    error: Option<String>,
}

fn flash(q: &FlashQuery) -> Markup {
    html! {
        @if let Some(done) = &q.done { p.flash.ok role="status" { (done) } }
        @if let Some(error) = &q.error { p.flash.error role="alert" { (error) } }
    }
}

/// The reviewer, or the page to show instead.
fn reviewer_page(
    state: &AdminState,
    headers: &HeaderMap,
    here: &str,
) -> Result<(SignedIn, String), Response> {
    let who = signed_in(state, headers, here)?;
    let Some(approvals) = state.approvals.as_ref() else {
        return Err(page(
            "Approvals",
            &who,
            "approvals",
            html! { h1 { "Approvals" } p.notice { "Approvals are not enabled on this gateway ([approvals] enabled = false): statements that need approval are refused." } },
        ));
    };
    let group = approvals.settings().reviewers_group.clone();
    if !in_group(&who, &group) {
        return Err(needs_group(&who, "approvals", "Approvals", &group, "reviewers"));
    }
    Ok((who, group))
}

/// `GET /console/approvals`: the inbox.
pub async fn approvals(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Response {
    let who = match reviewer_page(&state, &headers, "/console/approvals") {
        Ok((who, _)) => who,
        Err(r) => return r,
    };
    let body = html! {
        h1 { "Approvals" }
        (flash(&q))
        div #inbox data-refresh="/console/approvals/inbox" aria-live="polite" { (inbox_markup(&state, &who)) }
    };
    page("Approvals", &who, "approvals", body)
}

/// `GET /console/approvals/inbox`: the inbox alone, for the page's script to refresh it.
pub async fn inbox(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    match reviewer_page(&state, &headers, "/console/approvals") {
        Ok((who, _)) => Html(inbox_markup(&state, &who).into_string()).into_response(),
        Err(_) => refuse(StatusCode::FORBIDDEN, "sign in as a reviewer"),
    }
}

fn inbox_markup(state: &AdminState, who: &SignedIn) -> Markup {
    let Some(approvals) = state.approvals.as_ref() else {
        return html! {};
    };
    let now = now_us();
    let pending = approvals.list(true);
    let mut decided: Vec<ApprovalRequest> = approvals
        .list(false)
        .into_iter()
        .filter(|r| r.state != ApprovalState::Pending)
        .collect();
    decided.sort_by_key(|r| std::cmp::Reverse(r.decided_us.unwrap_or(r.created_us)));
    decided.truncate(20);
    html! {
        h2 { "Waiting for a decision " span.count { "(" (pending.len()) ")" } }
        @if pending.is_empty() {
            p.empty { "Nothing is waiting. New requests appear here without a reload." }
        }
        @for r in &pending { (request_card(r, who, now)) }
        h2 { "Recently decided" }
        @if decided.is_empty() { p.empty { "None yet." } }
        @else {
            table.decided {
                thead { tr { th { "Request" } th { "Requester" } th { "Statement" } th { "State" } th { "By" } th { "Reason" } } }
                tbody {
                    @for r in &decided {
                        tr {
                            td { code { (r.id) } }
                            td { (r.requester) }
                            td { code.stmt { (snippet(&r.statement, 80)) } }
                            td { span class={ "state " (label(&r.state)) } { (label(&r.state)) } }
                            td { (r.decided_by.as_deref().unwrap_or("")) }
                            td { (r.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn request_card(r: &ApprovalRequest, who: &SignedIn, now: i64) -> Markup {
    let own = r.requester_subject == who.principal.subject && r.requester_issuer == who.principal.issuer;
    html! {
        article.request id={ "request-" (r.id) } data-request=(r.id) {
            header {
                h3 { code { (r.id) } }
                span.age title=(utc(r.created_us)) { "waiting " (age(r.created_us, now)) }
            }
            pre.statement { (r.statement) }
            dl.facts {
                dt { "Requester" } dd { (r.requester) }
                dt { "Connection" } dd { (r.connection) }
                dt { "Commands" } dd { (r.commands.join(", ")) }
                dt { "Required by" } dd { (r.policies.join(", ")) }
                dt { "Mode" } dd { (label(&r.mode)) @if r.mode == crate::approvals::Mode::Hold { " (the client is waiting)" } }
                @if !r.params.is_empty() {
                    dt { "Parameters" }
                    dd { @for (i, p) in r.params.iter().enumerate() { code { "$" (i + 1) " = " (p.as_deref().unwrap_or("NULL")) } " " } }
                }
                dt { "Impact" }
                dd.preview {
                    @match &r.preview {
                        Some(p) => {
                            @if let Some(n) = p.exact_rows { (n) " row(s) changed when tried and rolled back" }
                            @else if let Some(n) = p.estimated_rows { "about " (n) " row(s) (planner estimate)" }
                            @if let Some(note) = &p.note { " " span.note { (note) } }
                        }
                        None => "no preview",
                    }
                }
                @if r.quorum > 1 {
                    dt { "Approvals" }
                    dd { (r.votes.len()) " of " (r.quorum) @for v in &r.votes { " · " (v.by) } }
                }
                dt { "Expires" } dd { (utc(r.expires_us)) " UTC" }
                @if !r.session.is_empty() {
                    dt { "Session" } dd { a href={ "/console/sessions/" (r.session) } { (r.session) } }
                }
            }
            @if own {
                p.notice { "You asked for this one: another reviewer must decide it." }
            } @else {
                form.decide method="post" action={ "/console/approvals/" (r.id) } {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label for={ "reason-" (r.id) } { "Reason" }
                    textarea id={ "reason-" (r.id) } name="reason" rows="2" {}
                    div.buttons {
                        button.approve type="submit" name="decision" value="approve" { "Approve" }
                        button.deny type="submit" name="decision" value="deny" { "Deny" }
                    }
                }
            }
        }
    }
}

fn snippet(text: &str, max: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        one
    } else {
        let mut cut: String = one.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

/// Where to go after a form, with what happened.
fn back(to: &str, outcome: Result<String, String>) -> Response {
    let (key, text) = match outcome {
        Ok(done) => ("done", done),
        Err(error) => ("error", error),
    };
    Redirect::to(&format!("{to}?{key}={}", oidc::form_encode(&text))).into_response()
}

/// `POST /console/approvals/{id}`: approve or deny.
pub async fn decide(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let who = match reviewer_page(&state, &headers, "/console/approvals") {
        Ok((who, _)) => who,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&who, &form.csrf) {
        return r;
    }
    let Some(approvals) = state.approvals.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return refuse(StatusCode::BAD_REQUEST, "decision must be approve or deny"),
    };
    let reason = Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty());
    let outcome = approvals
        .decide(&id, &who.principal, approve, reason, GrantTerms::default())
        .map(|r| {
            info!(approval = %id, reviewer = %who.principal.name(), approved = approve, "approval request decided in the console");
            format!("{}: {}", r.id, label(&r.state))
        })
        .map_err(|e: DecideError| e.to_string());
    back("/console/approvals", outcome)
}

// ---------------------------------------------------------------------------------------------------
// Sessions

/// The operator, or the page to show instead.
fn operator_page(
    state: &AdminState,
    headers: &HeaderMap,
    here: &str,
    active: &str,
    title: &str,
) -> Result<SignedIn, Response> {
    let who = signed_in(state, headers, here)?;
    if in_group(&who, &state.operators_group) {
        Ok(who)
    } else {
        Err(needs_group(
            &who,
            active,
            title,
            &state.operators_group,
            "operators",
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionsQuery {
    subject: Option<String>,
    connection: Option<String>,
    /// `live` for live sessions only.
    state: Option<String>,
    since: Option<String>,
    done: Option<String>,
    error: Option<String>,
}

fn non_empty(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /console/sessions`: the recorded sessions, filtered.
pub async fn sessions(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<SessionsQuery>,
) -> Response {
    let who = match operator_page(&state, &headers, "/console/sessions", "sessions", "Sessions") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let now = now_us();
    let since = match non_empty(q.since.as_ref())
        .map(|s| sessions::parse_time_arg(&s))
        .transpose()
    {
        Ok(t) => t.map(|t| t.ago(now)),
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad time", &format!("since: {e}")),
    };
    let filter = SessionFilter {
        subject: non_empty(q.subject.as_ref()),
        connection: non_empty(q.connection.as_ref()),
        since_us: since,
        until_us: None,
        limit: Some(500),
    };
    let found = match with_store(&state, move |store| {
        store.sessions(&filter).map_err(|e| {
            crate::admin::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Audit store error",
                e.to_string(),
            )
        })
    })
    .await
    {
        Ok(f) => f,
        Err(p) => return problem_page(&p),
    };
    let live_only = q.state.as_deref() == Some("live");
    let shown: Vec<&SessionSummary> = found
        .iter()
        .rev()
        .filter(|s| !live_only || s.ended_us.is_none())
        .collect();
    let body = html! {
        h1 { "Sessions" }
        (flash(&FlashQuery { done: q.done.clone(), error: q.error.clone() }))
        form.filters method="get" action="/console/sessions" {
            label { "Subject " input type="text" name="subject" value=[q.subject.as_deref()]; }
            label { "Connection " input type="text" name="connection" value=[q.connection.as_deref()]; }
            label { "Since " input type="text" name="since" placeholder="1h, 2026-11-01T00:00:00Z" value=[q.since.as_deref()]; }
            label { input type="checkbox" name="state" value="live" checked[live_only]; " live only" }
            button type="submit" { "Filter" }
        }
        p.count { (shown.len()) " session(s), newest first" }
        table.sessions {
            thead { tr { th { "Session" } th { "Started (UTC)" } th { "Identity" } th { "Connection" } th { "Client" } th { "Statements" } th { "Refused" } th { "State" } } }
            tbody {
                @for s in &shown {
                    tr {
                        td { a href={ "/console/sessions/" (s.session) } { code { (s.session) } } }
                        td { (utc(s.started_us)) }
                        td { (s.subject) " " span.issuer { "(" (s.issuer) ")" } }
                        td { (s.connection) }
                        td { (s.client_addr) }
                        td.num { (s.statements) }
                        td.num { (s.refused) }
                        td {
                            @match (s.ended_us, &s.end_reason) {
                                (None, _) => span.state.live { "live" },
                                (Some(_), Some(reason)) => span.state { "ended: " (reason) },
                                (Some(_), None) => span.state { "ended" },
                            }
                        }
                    }
                }
            }
        }
    };
    page("Sessions", &who, "sessions", body)
}

/// `GET /console/sessions/{id}`: the replay, the chain's verification, a kill button while live, and
/// links to the related sessions (the same principal on another protocol, near in time).
pub async fn session(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Response {
    let here = format!("/console/sessions/{id}");
    let who = match operator_page(&state, &headers, &here, "sessions", "Session") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let session = id.clone();
    let loaded = with_store(&state, move |store| {
        let events = events(store, &session)?;
        let store_error = |e: portcullis_audit::AuditError| {
            crate::admin::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Audit store error",
                e.to_string(),
            )
        };
        let related = sessions::related_to(store, &session, &RelatedWindow::default_at(now_us()))
            .map_err(store_error)?;
        let report = portcullis_audit::verify(store).map_err(store_error)?;
        Ok((events, related, report))
    })
    .await;
    let (events, related, report) = match loaded {
        Ok(l) => l,
        Err(p) => return problem_page(&p),
    };
    let view = sessions::replay_view(&id, &sessions::timeline(&events));
    let live = !view.rows.iter().any(|r| r.kind == "end");
    let chain_ok = report.broken.is_none();
    let body = html! {
        h1 { "Session " code { (id) } }
        (flash(&q))
        p.title { (view.title) }
        div.chain role="status" class={ "chain " (if chain_ok { "ok" } else { "broken" }) } {
            strong { @if chain_ok { "Chain verified" } @else { "Chain BROKEN" } }
            " " (sessions::render_verify(&report))
        }
        @if live {
            form.kill method="post" action={ "/console/sessions/" (id) "/kill" } {
                input type="hidden" name="csrf" value=(who.csrf);
                button.deny type="submit" { "End this session now" }
            }
        }
        h2 { "Replay" }
        ol.timeline {
            @for row in &view.rows {
                li class={ "event " (row.kind) (if row.refused { " refused" } else { "" }) } {
                    span.offset { (row.offset) }
                    span.label { (row.label) }
                    span.text { (row.text) }
                    @if !row.details.is_empty() {
                        pre.details { @for line in &row.details { (line) "\n" } }
                    }
                }
            }
        }
        @if let Some(footer) = &view.footer { p.notice { (footer) } }
        (related_sessions(&related))
        p { a href={ "/api/v1/sessions/" (id) "/replay" } { "This replay as JSON (admin API, bearer token)" } }
    };
    page("Session", &who, "sessions", body)
}

/// The session page's "Related sessions": links to the principal's sessions on another protocol.
fn related_sessions(related: &sessions::Related) -> Markup {
    let window = humantime::format_duration(Duration::from_micros(
        u64::try_from(related.window_us).unwrap_or(0),
    ));
    html! {
        h2 { "Related sessions" }
        p.count {
            "The same principal on another protocol, within " (window) " of this session: related by identity and time, not necessarily by cause."
        }
        @if related.sessions.is_empty() {
            p { "None." }
        } @else {
            table.sessions.related {
                thead { tr { th { "Session" } th { "Protocol" } th { "Connection" } th { "Started (UTC)" } th { "Statements" } th { "Why" } } }
                tbody {
                    @for r in &related.sessions {
                        tr {
                            td { a href={ "/console/sessions/" (r.summary.session) } { code { (r.summary.session) } } }
                            td { (r.summary.protocol) }
                            td { (r.summary.connection) }
                            td { (utc(r.summary.started_us)) }
                            td.num { (r.summary.statements) }
                            td { (r.reason) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /console/sessions/{id}/kill`.
pub async fn kill(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let here = format!("/console/sessions/{id}");
    let who = match operator_page(&state, &headers, &here, "sessions", "Session") {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&who, &form.csrf) {
        return r;
    }
    let session = id.clone();
    let outcome = with_store(&state, move |store| {
        let events = events(store, &session)?;
        sessions::record_kill_of(store, &session, &events)
            .map_err(|e| crate::admin::problem(StatusCode::CONFLICT, "Session not live", format!("{e:#}")))
    })
    .await;
    let outcome = match outcome {
        Ok(control) => {
            info!(session = %id, operator = %who.principal.name(), control, "session kill requested in the console");
            Ok("the gateway ends this session within a second".to_owned())
        }
        Err(p) => Err(p.parts().2.to_owned()),
    };
    back(&here, outcome)
}

// ---------------------------------------------------------------------------------------------------
// Identities

/// `GET /console/identities`: who is connected, who was in the last day, and who is barred.
pub async fn identities(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Response {
    let who = match operator_page(
        &state,
        &headers,
        "/console/identities",
        "identities",
        "Identities",
    ) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let now = now_us();
    let filter = SessionFilter {
        subject: None,
        connection: None,
        since_us: Some(now - 24 * 3600 * 1_000_000),
        until_us: None,
        limit: Some(10_000),
    };
    let loaded = with_store(&state, move |store| {
        let error = |e: portcullis_audit::AuditError| {
            crate::admin::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Audit store error",
                e.to_string(),
            )
        };
        let found = store.sessions(&filter).map_err(error)?;
        let controls = store.controls_after(0).map_err(error)?;
        Ok((found, controls))
    })
    .await;
    let (found, controls) = match loaded {
        Ok(l) => l,
        Err(p) => return problem_page(&p),
    };
    #[derive(Default)]
    struct Identity {
        live: usize,
        sessions: usize,
        last_us: i64,
        connections: std::collections::BTreeSet<String>,
    }
    let mut by_identity: BTreeMap<(String, String), Identity> = BTreeMap::new();
    for s in &found {
        let i = by_identity
            .entry((s.issuer.clone(), s.subject.clone()))
            .or_default();
        i.sessions += 1;
        i.live += usize::from(s.ended_us.is_none());
        i.last_us = i.last_us.max(s.started_us);
        i.connections.insert(s.connection.clone());
    }
    let mut rows: Vec<_> = by_identity.into_iter().collect();
    rows.sort_by_key(|((_, _), i)| (std::cmp::Reverse(i.live), std::cmp::Reverse(i.last_us)));
    let barred: Vec<&Revocation> = controls
        .iter()
        .filter_map(|c| match c {
            Control::Revoke { revocation, .. } if revocation.until_us.is_none_or(|u| u > now) => {
                Some(revocation)
            }
            _ => None,
        })
        .collect();
    let body = html! {
        h1 { "Identities" }
        (flash(&q))
        p { "Identities with a session in the last 24 hours; connected ones first." }
        table.identities {
            thead { tr { th { "Identity" } th { "Issuer" } th { "Live sessions" } th { "Sessions (24h)" } th { "Last connected (UTC)" } th { "Connections" } th { "Revoke" } } }
            tbody {
                @for ((issuer, subject), i) in &rows {
                    tr {
                        td { a href={ "/console/sessions?subject=" (oidc::form_encode(subject)) } { (subject) } }
                        td { (issuer) }
                        td.num { @if i.live > 0 { span.state.live { (i.live) " live" } } @else { "0" } }
                        td.num { (i.sessions) }
                        td { (utc(i.last_us)) }
                        td { (i.connections.iter().cloned().collect::<Vec<_>>().join(", ")) }
                        td {
                            form.revoke method="post" action="/console/revoke" {
                                input type="hidden" name="csrf" value=(who.csrf);
                                input type="hidden" name="subject" value=(subject);
                                input type="hidden" name="issuer" value=(issuer);
                                label.visually-hidden for={ "until-" (issuer) "-" (subject) } { "for how long" }
                                select id={ "until-" (issuer) "-" (subject) } name="until" {
                                    option value="1h" { "1 hour" }
                                    option value="24h" { "24 hours" }
                                    option value="" { "until lifted" }
                                }
                                button.deny type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Barred now" }
        @if barred.is_empty() { p.empty { "Nobody." } }
        @else {
            ul.barred {
                @for r in &barred {
                    li { (r.subject) " of " (r.issuer.as_deref().unwrap_or("every issuer")) ", "
                        @match r.until_us { Some(u) => { "until " (utc(u)) " UTC" }, None => "until lifted" } }
                }
            }
        }
    };
    page("Identities", &who, "identities", body)
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    subject: String,
    issuer: Option<String>,
    until: Option<String>,
}

/// `POST /console/revoke`.
pub async fn revoke(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<RevokeForm>,
) -> Response {
    let who = match operator_page(
        &state,
        &headers,
        "/console/identities",
        "identities",
        "Identities",
    ) {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&who, &form.csrf) {
        return r;
    }
    let now = now_us();
    let until_us = match non_empty(form.until.as_ref())
        .map(|t| sessions::parse_time_arg(&t))
        .transpose()
    {
        Ok(t) => t.map(|t| t.ahead(now)),
        Err(e) => return back("/console/identities", Err(format!("until: {e}"))),
    };
    let revocation = Revocation {
        subject: form.subject.clone(),
        issuer: non_empty(form.issuer.as_ref()),
        until_us,
    };
    let outcome = with_store(&state, move |store| {
        sessions::record_revoke(store, revocation, now).map_err(|e| {
            crate::admin::problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Revocation refused",
                format!("{e:#}"),
            )
        })
    })
    .await;
    let outcome = match outcome {
        Ok(control) => {
            info!(subject = %form.subject, operator = %who.principal.name(), control, "revocation recorded in the console");
            Ok(format!(
                "{} is barred; live sessions end within a second",
                form.subject
            ))
        }
        Err(p) => Err(p.parts().2.to_owned()),
    };
    back("/console/identities", outcome)
}

// ---------------------------------------------------------------------------------------------------
// Policy

#[derive(Debug, Default, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    connection: String,
    #[serde(default)]
    sql: String,
}

/// `GET /console/policy`: the loaded policies, and the form to try a statement.
pub async fn policy(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    policy_page(&state, &headers, None)
}

/// `POST /console/policy`: the form's statement decided, under the page.
pub async fn policy_check(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<PolicyForm>,
) -> Response {
    policy_page(&state, &headers, Some(form))
}

fn policy_page(state: &AdminState, headers: &HeaderMap, form: Option<PolicyForm>) -> Response {
    let who = match operator_page(state, headers, "/console/policy", "policy", "Policy") {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Some(f) = &form
        && let Err(r) = check_csrf(&who, &f.csrf)
    {
        return r;
    }
    let loaded = state.policies.current();
    let files: Vec<(String, String)> = state
        .policies
        .files()
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| format!("(cannot read: {e})"));
            (p.display().to_string(), text)
        })
        .collect();
    let result = form.as_ref().map(|f| {
        let now = SystemTime::now();
        let issuer = if f.issuer.trim().is_empty() { "dev" } else { f.issuer.trim() };
        let principal = Principal {
            issuer_alias: issuer.to_owned(),
            issuer: issuer.to_owned(),
            subject: f.subject.trim().to_owned(),
            groups: f.groups.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect(),
            token_id: None,
            issued_at: Some(now),
            expires_at: now + Duration::from_secs(900),
        };
        let context = RequestContext {
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            token_age_secs: 0,
        };
        let report = policy_check::evaluate(&loaded.set, &principal, f.connection.trim(), &f.sql, &context);
        html! {
            section.result aria-live="polite" {
                h2 { "Decision: " span class={ "verdict " (if report.allowed { "allow" } else { "refuse" }) } { @if report.allowed { "allowed" } @else { "refused or held" } } }
                p { "As " strong { (report.principal) } " on " strong { (report.connection) } }
                p { "Connect: " (policy_check::describe(&report.connect)) }
                ol {
                    @for s in &report.statements {
                        li class={ "decision " (outcome_class(s.decision.outcome)) } {
                            code { (s.facts.command) } " — " (policy_check::describe(&s.decision))
                            @if let Some(e) = &s.facts.parse_error { " (parse error: " (e) ")" }
                        }
                    }
                }
            }
        }
    });
    let f = form.unwrap_or_default();
    let body = html! {
        h1 { "Policy" }
        p { "Generation " (loaded.generation) ": " (loaded.set.len()) " polic" (if loaded.set.len() == 1 { "y" } else { "ies" })
            " from " (files.len()) " file(s). Edits to the files are picked up without a restart." }
        h2 { "Try a statement" }
        form.check method="post" action="/console/policy" {
            input type="hidden" name="csrf" value=(who.csrf);
            div.row {
                label { "Subject " input type="text" name="subject" required value=(f.subject); }
                label { "Issuer alias " input type="text" name="issuer" placeholder="dev" value=(f.issuer); }
                label { "Groups " input type="text" name="groups" placeholder="agents, analysts" value=(f.groups); }
                label { "Connection "
                    select name="connection" {
                        @for c in &state.connection_names { option value=(c) selected[*c == f.connection] { (c) } }
                    }
                }
            }
            label for="sql" { "Statement(s)" }
            textarea #sql name="sql" rows="3" required { (f.sql) }
            button type="submit" { "Check" }
        }
        @if let Some(result) = result { (result) }
        h2 { "Loaded policies" }
        ul.names { @for name in loaded.set.names() { li { code { (name) } } } }
        @for (path, text) in &files {
            details {
                summary { (path) }
                pre.policy { (text) }
            }
        }
    };
    page("Policy", &who, "policy", body)
}

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::ApprovalRequired => "approval",
        Outcome::Deny => "deny",
    }
}
