//! What the bench ran on: cores, CPU model, kernel, PostgreSQL version (for the pgbench benches); printed
//! beside every result.

use std::fmt;
use std::fs;

use anyhow::Context as _;

/// The machine facts that make a benchmark result comparable (or not) with another.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// pgbench's version, for the benches that run it.
    pub pgbench: Option<String>,
}

impl Machine {
    /// Reads /proc and asks pgbench for its version.
    pub fn detect() -> anyhow::Result<Machine> {
        Ok(Machine {
            pgbench: Some(crate::pgbench::version()?),
            ..Machine::detect_host()?
        })
    }

    /// Reads /proc only (cores, CPU model, kernel).
    pub fn detect_host() -> anyhow::Result<Machine> {
        let cores = std::thread::available_parallelism()
            .context("number of available cores")?
            .get();
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("read /proc/cpuinfo")?;
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let release =
            fs::read_to_string("/proc/sys/kernel/osrelease").context("read /proc/sys/kernel/osrelease")?;
        Ok(Machine {
            cores,
            cpu_model,
            kernel: format!("Linux {}", release.trim()),
            pgbench: None,
        })
    }
}

impl fmt::Display for Machine {
    /// One markdown list item per fact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "- cores (nproc): {}", self.cores)?;
        writeln!(f, "- CPU: {}", self.cpu_model)?;
        write!(f, "- kernel: {}", self.kernel)?;
        match &self.pgbench {
            Some(pgbench) => write!(f, "\n- client and server: {pgbench}"),
            None => Ok(()),
        }
    }
}
