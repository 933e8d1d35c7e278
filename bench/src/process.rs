//! The ledger process seen from `/proc` (through `procfs`): its peak resident memory (`VmHWM`, the high-water
//! mark since it started) and the CPU time it used during the load; and where the whole
//! machine's CPU went meanwhile ([`CpuSample`]): the ledger, PostgreSQL, this generator,
//! anything else, or idle.
//!
//! Only possible when the ledger runs on this machine: its pid comes from `--pid`, or from
//! the pid file `scripts/up` writes (`$LEDGER_STATE_DIR/ledger.pid`, by default
//! `target/dev/ledger.pid`; `.ledger/ledger.pid` is also looked at).

use std::collections::HashMap;
use std::path::PathBuf;

use procfs::process::Process;
use procfs::{CurrentSI, KernelStats};
use serde::Serialize;

/// Finds the ledger's pid: the one given, else a pid file of a running `ledger`.
pub fn find_pid(given: Option<u32>) -> Result<u32, String> {
    if let Some(pid) = given {
        return if process(pid).is_some() {
            Ok(pid)
        } else {
            Err(format!("no process {pid} on this machine (--pid)"))
        };
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("LEDGER_STATE_DIR") {
        files.push(PathBuf::from(dir).join("ledger.pid"));
    }
    files.push(PathBuf::from("target/dev/ledger.pid"));
    files.push(PathBuf::from(".ledger/ledger.pid"));
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        if let Ok(pid) = text.trim().parse::<u32>() {
            if is_ledger(pid) {
                return Ok(pid);
            }
        }
    }
    Err("no --pid given and no pid file of a running ledger (scripts/up writes \
         target/dev/ledger.pid)"
        .to_owned())
}

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

fn is_ledger(pid: u32) -> bool {
    process(pid)
        .and_then(|p| p.cmdline().ok())
        .is_some_and(|cmdline| cmdline.iter().any(|arg| arg.contains("ledger")))
}

/// Memory of a process.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Peak resident set size since the process started (`VmHWM`), in MiB.
    pub peak_rss_mib: f64,
    /// Resident set size now (`VmRSS`), in MiB.
    pub rss_mib: f64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = process(pid)?.status().ok()?;
    Some(Memory {
        peak_rss_mib: status.vmhwm? as f64 / 1024.0,
        rss_mib: status.vmrss? as f64 / 1024.0,
    })
}

/// Starts this process's peak (`VmHWM`) over from its resident size now (Linux's
/// `clear_refs`), so that a peak read afterwards is the peak of what ran in between.
pub fn reset_own_peak() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// Clock ticks, as the kernel counts CPU time, in seconds.
fn seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second() as f64
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = process(pid)?.stat().ok()?;
    Some(seconds(stat.utime + stat.stime))
}

/// The machine's CPU accounting at one moment, to subtract from a later one.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    /// Busy and idle (with I/O wait) seconds summed over every core.
    busy: f64,
    idle: f64,
    /// CPU seconds of each PostgreSQL process (server and backends) by pid.
    postgres: HashMap<u32, f64>,
    ledger: Option<f64>,
    generator: Option<f64>,
}

/// Where the machine's cores went between two samples, in cores (CPU seconds per second).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuBreakdown {
    pub cores: f64,
    pub ledger: Option<f64>,
    pub postgres: f64,
    pub generator: Option<f64>,
    /// Busy, but in none of the above (other services, builds, the kernel's own threads).
    pub other: f64,
    pub idle: f64,
}

impl CpuSample {
    pub fn take(ledger: Option<u32>) -> Option<Self> {
        let total = KernelStats::current().ok()?.total;
        // Guest time is already counted in user time.
        let idle = total.idle + total.iowait.unwrap_or(0);
        let busy = total.user
            + total.nice
            + total.system
            + total.irq.unwrap_or(0)
            + total.softirq.unwrap_or(0)
            + total.steal.unwrap_or(0);
        let postgres = procfs::process::all_processes()
            .ok()?
            .flatten()
            .filter_map(|process| {
                let stat = process.stat().ok()?;
                (stat.comm == "postgres").then(|| {
                    (u32::try_from(stat.pid).unwrap_or_default(), seconds(stat.utime + stat.stime))
                })
            })
            .collect();
        Some(Self {
            busy: seconds(busy),
            idle: seconds(idle),
            postgres,
            ledger: ledger.and_then(cpu_seconds),
            generator: cpu_seconds(std::process::id()),
        })
    }

    /// What happened between `self` and the later sample `after`, over `elapsed` seconds.
    /// A PostgreSQL process that started in between counts from zero; one that ended is
    /// lost (connections are pooled, so that is rare during a load).
    pub fn until(&self, after: &Self, elapsed: f64) -> CpuBreakdown {
        let elapsed = elapsed.max(1e-9);
        let per_second = |seconds: f64| (seconds / elapsed).max(0.0);
        let postgres: f64 = after
            .postgres
            .iter()
            .map(|(pid, cpu)| cpu - self.postgres.get(pid).copied().unwrap_or(0.0))
            .sum();
        let ledger = self.ledger.zip(after.ledger).map(|(a, b)| b - a);
        let generator = self.generator.zip(after.generator).map(|(a, b)| b - a);
        let busy = after.busy - self.busy;
        let idle = after.idle - self.idle;
        let known = postgres + ledger.unwrap_or(0.0) + generator.unwrap_or(0.0);
        CpuBreakdown {
            cores: per_second(busy + idle),
            ledger: ledger.map(per_second),
            postgres: per_second(postgres),
            generator: generator.map(per_second),
            other: per_second(busy - known),
            idle: per_second(idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breakdown_splits_busy_time_between_processes() {
        let before = CpuSample {
            busy: 10.0,
            idle: 10.0,
            postgres: HashMap::from([(1, 5.0), (2, 1.0)]),
            ledger: Some(2.0),
            generator: Some(1.0),
        };
        // Over 2 s on 2 cores: 3 s busy (backend 2 +0.5 s, a new backend 0.5 s, the
        // ledger 1 s, the generator 0.5 s, 0.5 s elsewhere) and 1 s idle.
        let after = CpuSample {
            busy: 13.0,
            idle: 11.0,
            postgres: HashMap::from([(1, 5.0), (2, 1.5), (3, 0.5)]),
            ledger: Some(3.0),
            generator: Some(1.5),
        };
        let split = before.until(&after, 2.0);
        assert_eq!(
            split,
            CpuBreakdown {
                cores: 2.0,
                ledger: Some(0.5),
                postgres: 0.5,
                generator: Some(0.25),
                other: 0.25,
                idle: 0.5,
            }
        );
    }

    #[test]
    fn this_process_can_be_read() {
        let pid = std::process::id();
        assert!(memory(pid).is_some_and(|m| m.peak_rss_mib > 0.0));
        assert!(cpu_seconds(pid).is_some());
        assert!(CpuSample::take(Some(pid)).is_some_and(|s| s.busy > 0.0 && s.ledger.is_some()));
    }
}
