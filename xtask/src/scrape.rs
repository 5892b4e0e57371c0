//! Reading unlabelled counters from a Prometheus text endpoint (the gateway's `/metrics`) over HTTP/1.0.
//!
//! A few lines of std rather than an HTTP client dependency: the bench asks one local listener for one
//! page, twice per run, and needs no TLS, redirects or keep-alive. HTTP/1.0 because its answers are
//! never chunked: the body is everything after the headers, up to the close.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET http://<addr><path>`; the body of a 200 answer.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).with_context(|| format!("connect to {addr}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .context("set the read timeout")?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .with_context(|| format!("send GET {path}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("read the answer to GET {path}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {path}: no end of headers"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {path}: {status}");
    }
    Ok(body.to_owned())
}

/// The value of the unlabelled sample `name` in Prometheus text, if the page has it (a counter the
/// process has never touched is absent).
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            if metric != name {
                return None;
            }
            value.split_whitespace().next()?.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP portcullis_audit_events_total Audit events durably stored.\n\
                        # TYPE portcullis_audit_events_total counter\n\
                        portcullis_audit_events_total 123456\n\
                        portcullis_audit_commits_total 789\n\
                        portcullis_statement_decisions_total{outcome=\"allow\"} 5\n";

    #[test]
    fn reads_an_unlabelled_sample() {
        assert_eq!(sample(PAGE, "portcullis_audit_events_total"), Some(123_456.0));
        assert_eq!(sample(PAGE, "portcullis_audit_commits_total"), Some(789.0));
    }

    #[test]
    fn a_missing_or_labelled_sample_is_none() {
        assert_eq!(sample(PAGE, "portcullis_audit_failures_total"), None);
        assert_eq!(sample(PAGE, "portcullis_statement_decisions_total"), None);
    }
}
