//! `cargo xtask bench-approvals`: how quickly an approved statement runs. A client sends a DELETE that
//! policy holds for approval; the bench, as the reviewer, waits until the request is listed by the admin
//! API, approves it, and times the approval call and the client's result from the moment it approves.

use std::fmt::Write as _;
use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use portcullis_testkit::pg::PgCluster;

use crate::bench::{build_release, set_up_database_only, target_dir, workspace_root};
use crate::gateway::{Gateway, REVIEWERS, Variant};

/// Flags of `cargo xtask bench-approvals`.
#[derive(Debug, clap::Args)]
pub struct ApprovalBenchArgs {
    /// Held statements to approve.
    #[arg(long, default_value_t = 100)]
    rounds: u32,
}

/// How long the bench waits for a held statement to show up in the API before it gives up.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &ApprovalBenchArgs) -> anyhow::Result<()> {
    if let Some(outcome) = crate::bench::rerun_in_release() {
        return outcome;
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let root = workspace_root()?;
    let target_dir = target_dir(&root);
    let gateway_bin = build_release(&root, &target_dir, "portcullis")?;
    eprintln!("bench-approvals: starting PostgreSQL and the gateway");
    let pg = PgCluster::start()?;
    let direct = set_up_database_only(&pg)?;
    pg.psql(
        &direct.dbname,
        &format!(
            "CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held SELECT generate_series(1, {});",
            args.rounds
        ),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    let gateway = runtime.block_on(Gateway::start(&gateway_bin, &direct, Variant::Approvals))?;
    let reviewer = gateway.mint(&gateway_bin, "bench-reviewer", REVIEWERS)?;
    let samples = runtime.block_on(measure(&gateway, &reviewer, args.rounds))?;
    let left = pg.psql(&direct.dbname, "SELECT count(*) FROM held")?;
    if left.trim() != "0" {
        bail!(
            "{} rows left after approving every DELETE: some approved statements did not run",
            left.trim()
        );
    }
    let report = report(args.rounds, &samples);
    println!("{report}");
    let out_dir = target_dir.join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let out = out_dir.join("approvals.md");
    fs::write(&out, &report).with_context(|| format!("write {}", out.display()))?;
    eprintln!("bench-approvals: wrote {}", out.display());
    Ok(())
}

/// One round's timings.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Statement sent until its request is listed by the API (includes the bench's 1 ms polling).
    listed: Duration,
    /// The approve call, request to answer.
    approve: Duration,
    /// From sending the approval until the client has the DELETE's result.
    released: Duration,
}

async fn measure(gateway: &Gateway, reviewer: &str, rounds: u32) -> anyhow::Result<Vec<Sample>> {
    let endpoint = &gateway.endpoint;
    let conninfo = endpoint.conninfo();
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .context("connect through the gateway")?;
    tokio::spawn(connection);
    let client = Arc::new(client);
    let http = reqwest::Client::new();
    let api = format!("http://{}/api/v1/approvals", gateway.admin());
    let mut samples = Vec::new();
    for id in 1..=rounds {
        let sent = Instant::now();
        let held = tokio::spawn({
            let client = Arc::clone(&client);
            async move {
                client
                    .simple_query(&format!("DELETE FROM held WHERE id = {id}"))
                    .await
            }
        });
        let request = loop {
            let list: serde_json::Value = http
                .get(&api)
                .bearer_auth(reviewer)
                .send()
                .await
                .context("list approvals")?
                .json()
                .await
                .context("read the approvals list")?;
            if let Some(request) = list.as_array().and_then(|l| l.first()).and_then(|r| r.get("id")) {
                break request.as_str().unwrap_or_default().to_owned();
            }
            if sent.elapsed() > LIST_TIMEOUT {
                bail!("round {id}: the held statement was not listed within {LIST_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let listed = sent.elapsed();
        let approving = Instant::now();
        let answer = http
            .post(format!("{api}/{request}/approve"))
            .bearer_auth(reviewer)
            .send()
            .await
            .context("approve")?;
        let approve = approving.elapsed();
        if !answer.status().is_success() {
            bail!("round {id}: approve answered {}", answer.status());
        }
        held.await
            .map_err(|e| anyhow!("round {id}: {e}"))?
            .with_context(|| format!("round {id}: the approved DELETE"))?;
        samples.push(Sample {
            listed,
            approve,
            released: approving.elapsed(),
        });
    }
    Ok(samples)
}

/// Which timing of a sample a report row shows.
type Timing = fn(&Sample) -> Duration;

/// Median, 95th percentile and maximum of one timing, in milliseconds.
fn spread(samples: &[Sample], pick: impl Fn(&Sample) -> Duration) -> [f64; 3] {
    let mut ms: Vec<f64> = samples.iter().map(|s| pick(s).as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((ms.len() as f64 - 1.0) * q).round() as usize;
        ms.get(index).copied().unwrap_or(f64::NAN)
    };
    [at(0.5), at(0.95), at(1.0)]
}

fn report(rounds: u32, samples: &[Sample]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `cargo xtask bench-approvals --rounds {rounds}`\n");
    let _ = writeln!(
        out,
        "One client through the gateway (audit on, `[approvals]` hold mode), {rounds} held DELETEs, each \
         approved through `POST /api/v1/approvals/{{id}}/approve` by the bench as reviewer.\n"
    );
    let _ = writeln!(out, "| timing | median ms | p95 ms | max ms |\n|---|--:|--:|--:|");
    let rows: [(&str, Timing); 3] = [
        ("release: approve sent → client has the result", |s| s.released),
        ("approve call (HTTP round trip, token check, decision)", |s| {
            s.approve
        }),
        ("statement sent → listed by the API (1 ms polling)", |s| {
            s.listed
        }),
    ];
    for (name, pick) in rows {
        let [median, p95, max] = spread(samples, pick);
        let _ = writeln!(out, "| {name} | {median:.2} | {p95:.2} | {max:.2} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_reads_median_p95_and_max() {
        let samples: Vec<Sample> = (1..=100u64)
            .map(|ms| Sample {
                listed: Duration::ZERO,
                approve: Duration::ZERO,
                released: Duration::from_millis(ms),
            })
            .collect();
        let [median, p95, max] = spread(&samples, |s| s.released);
        assert!((median - 50.0).abs() <= 1.0, "{median}");
        assert!((p95 - 95.0).abs() <= 1.0, "{p95}");
        assert_eq!(max, 100.0);
    }
}
