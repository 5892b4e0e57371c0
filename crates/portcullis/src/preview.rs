//! Impact preview for reviewers of an UPDATE or DELETE: the planner's estimate of the rows it touches
//! (`EXPLAIN`, which runs nothing), and, only with `[approvals] preview_exact`, the exact count from
//! running the statement in a transaction that is rolled back. Both on an upstream connection of the
//! gateway's own, one statement through the extended protocol (a second statement hidden in the text is
//! refused by the server, never run).
//!
//! The exact count does run the statement: it takes its row locks until the rollback (bounded by a 5 s
//! statement timeout), fires its triggers (their effects on the database are rolled back; effects
//! outside it, such as NOTIFY to listeners or calls out of the database, are not) and advances sequences
//! it uses, which no rollback undoes.

use std::time::Duration;

use portcullis_postgres::lookup;
use portcullis_postgres::upstream::{self, UpstreamSettings};
use serde::Serialize;

/// How long a preview may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply message read (an EXPLAIN plan).
const MAX_MESSAGE: usize = 1024 * 1024;

/// What a reviewer is shown of a statement's reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// The planner's estimate of rows the statement changes.
    pub estimated_rows: Option<u64>,
    /// Rows it changed when run and rolled back (only with `preview_exact`).
    pub exact_rows: Option<u64>,
    /// Why a figure is missing, when one is.
    pub note: Option<String>,
}

/// Previews `statement` (one UPDATE or DELETE) on a fresh connection to `upstream`.
pub async fn preview(upstream: &UpstreamSettings, statement: &str, exact: bool) -> Preview {
    match tokio::time::timeout(TIMEOUT, run(upstream, statement, exact)).await {
        Ok(Ok(preview)) => preview,
        Ok(Err(note)) => Preview {
            estimated_rows: None,
            exact_rows: None,
            note: Some(note),
        },
        Err(_) => Preview {
            estimated_rows: None,
            exact_rows: None,
            note: Some(format!("no preview within {}s", TIMEOUT.as_secs())),
        },
    }
}

async fn run(upstream: &UpstreamSettings, statement: &str, exact: bool) -> Result<Preview, String> {
    let mut stream = upstream::connect(upstream, &[])
        .await
        .map_err(|e| format!("cannot connect for the preview: {e}"))?
        .stream;
    let explain = lookup::exchange(
        &mut stream,
        &lookup::extended(&format!("EXPLAIN (FORMAT JSON) {statement}")),
        MAX_MESSAGE,
    )
    .await
    .map_err(|e| format!("preview failed: {e}"))?;
    let mut preview = Preview {
        estimated_rows: None,
        exact_rows: None,
        note: None,
    };
    match explain.error {
        Some(error) => preview.note = Some(format!("EXPLAIN failed: {error}")),
        None => {
            let plan = explain.rows.first().and_then(|r| r.first()).cloned().flatten();
            preview.estimated_rows = plan.as_deref().and_then(estimated_rows);
        }
    }
    if exact {
        let begin = lookup::simple("BEGIN; SET LOCAL statement_timeout = '5s'");
        let run = lookup::exchange(&mut stream, &begin, MAX_MESSAGE).await;
        let counted = match run {
            Ok(_) => lookup::exchange(&mut stream, &lookup::extended(statement), MAX_MESSAGE).await,
            Err(e) => Err(e),
        };
        let rolled_back = lookup::exchange(&mut stream, &lookup::simple("ROLLBACK"), MAX_MESSAGE).await;
        match (counted, rolled_back) {
            (Ok(reply), Ok(_)) => match reply.error {
                Some(error) => preview.note = Some(format!("the trial run failed: {error}")),
                None => preview.exact_rows = reply.tags.last().and_then(|tag| tag_rows(tag)),
            },
            (Err(e), _) | (_, Err(e)) => preview.note = Some(format!("the trial run failed: {e}")),
        }
    }
    Ok(preview)
}

/// Rows from an `EXPLAIN (FORMAT JSON)` plan: a ModifyTable node (PostgreSQL 14 and later show it with
/// 0 rows) counts its input, anything else its own estimate.
fn estimated_rows(plan_json: &str) -> Option<u64> {
    let plans: serde_json::Value = serde_json::from_str(plan_json).ok()?;
    let top = plans.get(0)?.get("Plan")?;
    let node = if top.get("Node Type").and_then(|t| t.as_str()) == Some("ModifyTable") {
        top.get("Plans").and_then(|p| p.get(0)).unwrap_or(top)
    } else {
        top
    };
    node.get("Plan Rows")
        .and_then(serde_json::Value::as_f64)
        .map(|rows| rows.max(0.0).round() as u64)
}

/// The row count of a command tag (`DELETE 3`, `UPDATE 3`, `INSERT 0 3`).
fn tag_rows(tag: &str) -> Option<u64> {
    tag.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_and_tags_give_row_counts() {
        let delete = r#"[{"Plan": {"Node Type": "ModifyTable", "Operation": "Delete", "Plan Rows": 0,
            "Plans": [{"Node Type": "Seq Scan", "Plan Rows": 42}]}}]"#;
        assert_eq!(estimated_rows(delete), Some(42));
        assert_eq!(
            estimated_rows(r#"[{"Plan": {"Node Type": "Result", "Plan Rows": 1}}]"#),
            Some(1)
        );
        assert_eq!(estimated_rows("not json"), None);
        assert_eq!(estimated_rows("[]"), None);
        assert_eq!(tag_rows("DELETE 3"), Some(3));
        assert_eq!(tag_rows("INSERT 0 7"), Some(7));
        assert_eq!(tag_rows("BEGIN"), None);
    }
}
