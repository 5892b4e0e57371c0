//! HTTP requests as the audit trail holds them: each a statement and its outcome, in the session of
//! the client connection and token it came with.

use std::path::Path;
use std::time::{Duration, Instant};

use portcullis_audit::{
    AuditStore, EventBody, OutcomeEvent, SessionEndEvent, SessionFilter, SessionStartEvent, SqliteStore,
    StatementEvent,
};

/// One request: its session, its statement, and its outcome once recorded.
#[derive(Debug, Clone)]
pub struct Request {
    pub session: String,
    /// The statement's place in the chain.
    pub seq: u64,
    pub statement: StatementEvent,
    pub outcome: Option<OutcomeEvent>,
}

impl Request {
    /// The outcome's tags: the status, then how the exchange ended.
    pub fn tags(&self) -> Vec<String> {
        self.outcome.as_ref().map(|o| o.tags.clone()).unwrap_or_default()
    }
}

/// One audit session of a client connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub start: Option<SessionStartEvent>,
    pub requests: Vec<Request>,
    pub end: Option<SessionEndEvent>,
    /// Every event, decoded, in order.
    pub events: Vec<EventBody>,
}

/// `subject`'s sessions, oldest first.
pub fn sessions(store: &Path, subject: &str) -> Vec<Session> {
    let mut store = SqliteStore::open(store).unwrap();
    let mut found = store
        .sessions(&SessionFilter {
            subject: Some(subject.to_owned()),
            ..SessionFilter::default()
        })
        .unwrap();
    found.sort_by_key(|s| s.started_us);
    found
        .iter()
        .map(|s| {
            let mut session = Session {
                id: s.session.clone(),
                start: None,
                requests: Vec::new(),
                end: None,
                events: Vec::new(),
            };
            for event in store.session_events(&s.session).unwrap() {
                let body = event.decode().unwrap();
                match &body {
                    EventBody::SessionStart(start) => session.start = Some(start.clone()),
                    EventBody::Statement(statement) => session.requests.push(Request {
                        session: s.session.clone(),
                        seq: event.seq,
                        statement: statement.clone(),
                        outcome: None,
                    }),
                    EventBody::Outcome(outcome) => {
                        if let Some(r) = session.requests.iter_mut().find(|r| r.statement.n == outcome.n) {
                            r.outcome = Some(outcome.clone());
                        }
                    }
                    EventBody::SessionEnd(end) => session.end = Some(end.clone()),
                    _ => {}
                }
                session.events.push(body);
            }
            session
        })
        .collect()
}

/// `subject`'s requests in the order they were recorded, across its sessions, once `count` of them
/// have their outcome (waiting up to 10 s).
pub async fn requests(store: &Path, subject: &str, count: usize) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all: Vec<Request> = sessions(store, subject)
            .into_iter()
            .flat_map(|s| s.requests)
            .collect();
        if all.iter().filter(|r| r.outcome.is_some()).count() >= count {
            all.retain(|r| r.outcome.is_some());
            all.sort_by_key(|r| r.seq);
            return all;
        }
        assert!(Instant::now() < deadline, "{subject}: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `subject`'s sessions once `count` of them have ended (waiting up to 10 s).
pub async fn ended(store: &Path, subject: &str, count: usize) -> Vec<Session> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = sessions(store, subject);
        if found.iter().filter(|s| s.end.is_some()).count() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "{subject}: {found:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
