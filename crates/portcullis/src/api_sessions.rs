//! The admin API's audit endpoints: sessions (list, show, replay, kill) and revoke, for operators (tokens
//! in `[server.admin] operators_group`). They read and write the same store as the `sessions` and
//! `revoke` commands, through the same functions.

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use portcullis_audit::{
    AuditError, AuditStore, RelatedWindow, Revocation, SessionFilter, StoredEvent, now_us,
};
use serde::Deserialize;
use tracing::info;

use crate::admin::{AdminState, Problem, json_body, member, problem};
use crate::sessions::{self, TimeArg};

/// The caller, who must be an operator.
async fn operator(state: &AdminState, headers: &HeaderMap) -> Result<String, Problem> {
    let who = member(
        state,
        headers,
        &state.operators_group,
        "operators",
        "Not an operator",
    )
    .await?;
    Ok(who.name())
}

/// Runs `work` on a store handle of its own, off the runtime's workers.
pub async fn with_store<T: Send + 'static>(
    state: &AdminState,
    work: impl FnOnce(&mut dyn AuditStore) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let path: PathBuf = state.audit_store.clone().ok_or_else(|| {
        problem(
            StatusCode::NOT_FOUND,
            "The audit trail is off",
            "this gateway records no sessions ([audit] enabled = false)",
        )
    })?;
    tokio::task::spawn_blocking(move || {
        let mut store = sessions::open_store_at(&path).map_err(store_problem)?;
        work(&mut store)
    })
    .await
    .map_err(|e| {
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Audit store task failed",
            e.to_string(),
        )
    })?
}

fn store_problem(e: impl std::fmt::Display) -> Problem {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Audit store error",
        format!("{e:#}"),
    )
}

fn json_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    subject: Option<String>,
    connection: Option<String>,
    /// Started at or after: RFC 3339, or a duration ago (`1h`).
    since: Option<String>,
    until: Option<String>,
    /// The sessions related to this one instead (the other filters must be absent).
    related: Option<String>,
    /// With `related`: how far around the session to look (`60s`, the default).
    window: Option<String>,
    limit: Option<usize>,
    /// `json` (the default) or `text` (the `sessions list` table).
    format: Option<String>,
}

/// A session's detail: `?format=text`, and how far around it to look for related sessions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    format: Option<String>,
    /// `60s` when absent.
    window: Option<String>,
}

/// `?format=text` asks for what the `sessions` command prints instead of JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    format: Option<String>,
}

fn wants_text(format: Option<&str>) -> Result<bool, Problem> {
    match format {
        None | Some("json") => Ok(false),
        Some("text") => Ok(true),
        Some(other) => Err(problem(
            StatusCode::BAD_REQUEST,
            "Bad format",
            format!("format={other:?}: use json or text"),
        )),
    }
}

fn text_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// The related-sessions window of a query: a duration (`60s`, `5m`), the default when absent.
fn window(value: Option<&str>) -> Result<std::time::Duration, Problem> {
    match value {
        None => Ok(std::time::Duration::from_micros(
            u64::try_from(RelatedWindow::DEFAULT_WINDOW_US).unwrap_or(0),
        )),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                "Bad window",
                format!("window={text:?}: {e} (use a duration: 60s, 5m)"),
            )
        }),
    }
}

fn time(name: &str, value: Option<&str>, now: i64) -> Result<Option<i64>, Problem> {
    value
        .map(|text| {
            sessions::parse_time_arg(text)
                .map(|t: TimeArg| t.ago(now))
                .map_err(|e| problem(StatusCode::BAD_REQUEST, "Bad time", format!("{name}: {e}")))
        })
        .transpose()
}

pub async fn list(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    operator(&state, &headers).await?;
    let now = now_us();
    let limit = q.limit.unwrap_or(100).min(10_000);
    if let Some(id) = q.related.clone() {
        return list_related(state, id, &q, limit, now).await;
    }
    if q.window.is_some() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Bad query",
            "window applies to related only",
        ));
    }
    let filter = SessionFilter {
        subject: q.subject,
        connection: q.connection,
        since_us: time("since", q.since.as_deref(), now)?,
        until_us: time("until", q.until.as_deref(), now)?,
        limit: Some(limit),
    };
    let text = wants_text(q.format.as_deref())?;
    let found = with_store(&state, move |store| {
        store.sessions(&filter).map_err(store_problem)
    })
    .await?;
    Ok(if text {
        text_response(sessions::render_list(&found))
    } else {
        Json(found).into_response()
    })
}

/// `GET /sessions?related=<id>`: the sessions related to one, as `sessions list --related` shows them.
async fn list_related(
    state: AdminState,
    id: String,
    q: &ListQuery,
    limit: usize,
    now: i64,
) -> Result<Response, Problem> {
    if q.subject.is_some() || q.connection.is_some() || q.since.is_some() || q.until.is_some() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Bad query",
            "related cannot be combined with subject, connection, since or until",
        ));
    }
    let related_window = sessions::related_window(window(q.window.as_deref())?, limit, now);
    let text = wants_text(q.format.as_deref())?;
    let found = with_store(&state, move |store| {
        store.related_sessions(&id, &related_window).map_err(|e| match e {
            AuditError::NoSession(_) => problem(
                StatusCode::NOT_FOUND,
                "No such session",
                format!("no session {id}"),
            ),
            other => store_problem(other),
        })
    })
    .await?;
    Ok(if text {
        text_response(sessions::render_related_list(&found))
    } else {
        Json(found).into_response()
    })
}

/// A session's events, or 404.
pub fn events(store: &mut dyn AuditStore, id: &str) -> Result<Vec<StoredEvent>, Problem> {
    sessions::find_session(store, id)
        .map_err(store_problem)?
        .ok_or_else(|| {
            problem(
                StatusCode::NOT_FOUND,
                "No such session",
                format!("no session {id}"),
            )
        })
}

/// A session's events and its related sessions, as `sessions show` prints them (or its `--json`).
pub async fn show(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, Problem> {
    operator(&state, &headers).await?;
    let text = wants_text(q.format.as_deref())?;
    let related_window = sessions::related_window(
        window(q.window.as_deref())?,
        RelatedWindow::DEFAULT_LIMIT,
        now_us(),
    );
    with_store(&state, move |store| {
        let events = events(store, &id)?;
        let related = sessions::related_to(store, &id, &related_window).map_err(store_problem)?;
        if text {
            Ok(text_response(sessions::render_show(&id, &events, &related)))
        } else {
            sessions::show_json(&id, &events, &related)
                .map(json_response)
                .map_err(store_problem)
        }
    })
    .await
}

pub async fn replay(
    state: State<AdminState>,
    headers: HeaderMap,
    id: Path<String>,
    Query(q): Query<FormatQuery>,
) -> Result<Response, Problem> {
    let render: Render = if wants_text(q.format.as_deref())? {
        |id, events| {
            Ok(text_response(sessions::render_replay(
                id,
                &sessions::timeline(events),
            )))
        }
    } else {
        |_, events| sessions::replay_json(&sessions::timeline(events)).map(json_response)
    };
    session_rendered(state, headers, id, render).await
}

/// How a session's events are shown: as the `sessions` command's text or its `--json`.
type Render = fn(&str, &[StoredEvent]) -> serde_json::Result<Response>;

/// A session's events, rendered by `render`.
async fn session_rendered(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    render: Render,
) -> Result<Response, Problem> {
    operator(&state, &headers).await?;
    with_store(&state, move |store| {
        render(&id, &events(store, &id)?).map_err(store_problem)
    })
    .await
}

pub async fn kill(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let who = operator(&state, &headers).await?;
    let session = id.clone();
    let control = with_store(&state, move |store| {
        let events = events(store, &session)?;
        sessions::record_kill_of(store, &session, &events)
            .map_err(|e| problem(StatusCode::CONFLICT, "Session not live", format!("{e:#}")))
    })
    .await?;
    info!(session = %id, operator = %who, control, "session kill requested through the admin API");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "control": control, "session": id })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    subject: String,
    /// The issuer URL or alias; absent bars the subject of every issuer.
    issuer: Option<String>,
    /// Until when: RFC 3339, or a duration from now (`2h`); absent bars until lifted.
    until: Option<String>,
}

pub async fn revoke(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let who = operator(&state, &headers).await?;
    let body: RevokeBody = json_body(&body)?.ok_or_else(|| {
        problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid body",
            "send {\"subject\": ..., \"issuer\": ..., \"until\": ...}",
        )
    })?;
    let now = now_us();
    let until_us = body
        .until
        .as_deref()
        .map(|text| {
            sessions::parse_time_arg(text).map(|t| t.ahead(now)).map_err(|e| {
                problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Bad time",
                    format!("until: {e}"),
                )
            })
        })
        .transpose()?;
    let revocation = Revocation {
        subject: body.subject.clone(),
        issuer: body.issuer.clone(),
        until_us,
    };
    let control = with_store(&state, move |store| {
        sessions::record_revoke(store, revocation, now).map_err(|e| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Revocation refused",
                format!("{e:#}"),
            )
        })
    })
    .await?;
    info!(subject = %body.subject, operator = %who, control, "revocation recorded through the admin API");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "control": control })),
    )
        .into_response())
}
