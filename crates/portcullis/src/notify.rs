//! Approval notifications: a webhook told of every new request and every decision, with a payload chat
//! tools show as is (Slack-compatible incoming-webhook JSON: `text`, plus the request as fields). Sent
//! from a task of its own with retries and back-off; the data path only puts a message on a bounded
//! queue, and a full queue drops (and counts) the message rather than wait.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tracing::warn;

use crate::approvals::ApprovalRequest;
use crate::telemetry;

/// Messages waiting to be sent; past this, new ones are dropped and counted.
const QUEUE: usize = 1024;
/// Attempts per message, with back-off doubling from [`FIRST_BACKOFF`].
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where notifications go and what they carry.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub url: String,
    /// Links to a request are this base and the request id (e.g. the admin API's `/api/v1/approvals/`).
    pub link_base: String,
    /// Put the statement's text in the message (off by default: a chat channel is wider than the
    /// reviewers, and the text can hold values).
    pub include_statement: bool,
}

/// The handle approvals notify through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<serde_json::Value>,
    settings: NotifySettings,
}

impl Notifier {
    /// Starts the sending task on the current runtime.
    pub fn start(settings: NotifySettings) -> anyhow::Result<Notifier> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        tokio::spawn(send_loop(client, settings.url.clone(), rx));
        Ok(Notifier { tx, settings })
    }

    /// Tells the webhook that `request` reached `event` (`requested`, `vote`, `approved`, `denied`,
    /// `expired`, `withdrawn`). Never waits.
    pub fn tell(&self, request: &ApprovalRequest, event: &str) {
        let message = self.message(request, event);
        if self.tx.try_send(message).is_err() {
            telemetry::approval_notification("dropped");
        }
    }

    fn message(&self, r: &ApprovalRequest, event: &str) -> serde_json::Value {
        let link = format!("{}{}", self.settings.link_base, r.id);
        let what = if r.commands.is_empty() {
            "a statement".to_owned()
        } else {
            r.commands.join("; ")
        };
        let headline = match event {
            "requested" => format!(
                "approval requested: {} wants to run {what} on {}",
                r.requester, r.connection
            ),
            "vote" => format!(
                "approval {}: {} of {} approvals ({})",
                r.id,
                r.votes.len(),
                r.quorum,
                r.votes.last().map_or("", |v| v.by.as_str())
            ),
            "approved" | "denied" => format!(
                "approval {} {event} by {}{}",
                r.id,
                r.decided_by.as_deref().unwrap_or("?"),
                r.reason
                    .as_deref()
                    .map(|why| format!(": {why}"))
                    .unwrap_or_default()
            ),
            other => format!("approval {} {other}", r.id),
        };
        let mut text = format!("Portcullis: {headline} <{link}|{}>", r.id);
        if self.settings.include_statement && event == "requested" {
            text.push_str(&format!("\n```{}```", r.statement));
        }
        json!({
            "text": text,
            "event": event,
            "request": {
                "id": r.id,
                "state": r.state,
                "mode": r.mode,
                "requester": r.requester,
                "connection": r.connection,
                "commands": r.commands,
                "policies": r.policies,
                "fingerprint": r.fingerprint,
                "expires_us": r.expires_us,
                "decided_by": r.decided_by,
                "reason": r.reason,
                "link": link,
            },
        })
    }
}

async fn send_loop(client: reqwest::Client, url: String, mut rx: mpsc::Receiver<serde_json::Value>) {
    while let Some(message) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let sent = client.post(&url).json(&message).send().await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("answered {}", response.status())),
                Err(e) => Some(e.to_string()),
            };
            let Some(failure) = failure else {
                telemetry::approval_notification("sent");
                break;
            };
            if attempt >= ATTEMPTS {
                warn!(error = %failure, attempts = attempt, "approval notification not delivered; dropped");
                telemetry::approval_notification("failed");
                break;
            }
            telemetry::approval_notification("retried");
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }
}
