//! CPU time and peak memory of a process, and the scheduler's account of one of its threads, read from
//! /proc (Linux only).

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

/// Converts /proc's clock ticks to time: `getconf CLK_TCK`, almost always 100 per second.
#[derive(Debug, Clone, Copy)]
pub struct ClockTicks {
    per_second: u64,
}

impl ClockTicks {
    /// Asks `getconf CLK_TCK`.
    pub fn from_getconf() -> anyhow::Result<ClockTicks> {
        let output = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .context("run getconf CLK_TCK")?;
        let text = String::from_utf8_lossy(&output.stdout);
        let per_second: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("getconf CLK_TCK said {text:?}"))?;
        if per_second == 0 {
            return Err(anyhow!("getconf CLK_TCK said 0"));
        }
        Ok(ClockTicks { per_second })
    }

    /// User plus system CPU time that process `pid` has used so far (all its threads).
    pub fn cpu_time(&self, pid: u32) -> anyhow::Result<Duration> {
        Ok(self.duration(cpu_ticks(pid)?))
    }

    fn duration(&self, ticks: u64) -> Duration {
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(self.per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The scheduler's account of one thread so far (/proc/<pid>/task/<tid>/schedstat, in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadSched {
    /// Time on a CPU.
    pub on_cpu: Duration,
    /// Time runnable but waiting for a CPU (run-queue delay): on a saturated machine, how long the thread
    /// was ready to work and could not.
    pub run_delay: Duration,
}

/// The scheduler's account of the thread of process `pid` whose `comm` is `name` (e.g. "audit-writer");
/// None if the process has no such thread.
pub fn thread_sched(pid: u32, name: &str) -> anyhow::Result<Option<ThreadSched>> {
    let tasks = format!("/proc/{pid}/task");
    for entry in fs::read_dir(&tasks).with_context(|| format!("read {tasks}"))? {
        let task = entry.with_context(|| format!("read {tasks}"))?.path();
        // A thread may exit between the listing and the read: skip it.
        let Ok(comm) = fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim_end() == name {
            let path = task.join("schedstat");
            let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            return parse_schedstat(&text)
                .map(Some)
                .with_context(|| format!("parse {}: {text:?}", path.display()));
        }
    }
    Ok(None)
}

/// `<on-cpu ns> <run-queue ns> <timeslices>`.
fn parse_schedstat(text: &str) -> anyhow::Result<ThreadSched> {
    let mut fields = text.split_whitespace();
    let mut next = |name: &str| -> anyhow::Result<Duration> {
        let field = fields.next().ok_or_else(|| anyhow!("no {name} field"))?;
        Ok(Duration::from_nanos(
            field.parse().with_context(|| format!("{name} {field:?}"))?,
        ))
    };
    Ok(ThreadSched {
        on_cpu: next("on-cpu")?,
        run_delay: next("run-queue")?,
    })
}

/// utime + stime from /proc/<pid>/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("parse {path}: {stat:?}"))
}

/// The command name (field 2) is in parentheses and may hold spaces and parentheses, so fields are
/// counted from the last `)`: after it come field 3 (state) onwards; utime and stime are fields 14, 15.
fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let (_, rest) = stat.rsplit_once(')').ok_or_else(|| anyhow!("no ')'"))?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let mut next = |name: &str| -> anyhow::Result<u64> {
        let field = fields.next().ok_or_else(|| anyhow!("no {name} field"))?;
        field.parse().with_context(|| format!("{name} {field:?}"))
    };
    let utime = next("utime")?;
    let stime = next("stime")?;
    Ok(utime + stime)
}

/// Peak resident memory (VmHWM) of process `pid`, KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .ok_or_else(|| anyhow!("{path} has no VmHWM"))?;
    let kib = value.trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("VmHWM {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_count_fields_after_the_command_name() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0 99 1 2";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 287);
    }

    #[test]
    fn schedstat_reads_on_cpu_and_run_queue_time() {
        let sched = parse_schedstat("184554536 12951709 429\n").unwrap();
        assert_eq!(sched.on_cpu, Duration::from_nanos(184_554_536));
        assert_eq!(sched.run_delay, Duration::from_nanos(12_951_709));
        assert!(parse_schedstat("1").is_err());
    }

    #[test]
    fn cpu_ticks_reject_a_truncated_line() {
        assert!(parse_cpu_ticks("1 (x) S 1 2").is_err());
    }
}
