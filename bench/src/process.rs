//! The ledger process seen from `/proc`: its peak resident memory (`VmHWM`, the high-water
//! mark since it started) and the CPU time it used during the load; and where the whole
//! machine's CPU went meanwhile ([`CpuSample`]): the ledger, PostgreSQL, this generator,
//! anything else, or idle.
//!
//! Only possible when the ledger runs on this machine: its pid comes from `--pid`, or from
//! the pid file `scripts/up` writes (`$LEDGER_STATE_DIR/ledger.pid`, by default
//! `target/dev/ledger.pid`; `.ledger/ledger.pid` is also looked at).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, 100 on every mainstream
/// architecture (reading `sysconf(_SC_CLK_TCK)` would need `unsafe` FFI).
const USER_HZ: f64 = 100.0;

/// Finds the ledger's pid: the one given, else a pid file of a running `ledger`.
pub fn find_pid(given: Option<u32>) -> Result<u32, String> {
    if let Some(pid) = given {
        return if alive(pid) {
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
            if alive(pid) && is_ledger(pid) {
                return Ok(pid);
            }
        }
    }
    Err("no --pid given and no pid file of a running ledger (scripts/up writes \
         target/dev/ledger.pid)"
        .to_owned())
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn is_ledger(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("ledger"))
        .unwrap_or(false)
}

/// Memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Peak resident set size since the process started (`VmHWM`), in MiB.
    pub peak_rss_mib: f64,
    /// Resident set size now (`VmRSS`), in MiB.
    pub rss_mib: f64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_memory(&status)
}

fn parse_memory(status: &str) -> Option<Memory> {
    let kib = |field: &str| -> Option<f64> {
        let line = status.lines().find(|line| line.starts_with(field))?;
        line[field.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(Memory { peak_rss_mib: kib("VmHWM:")? / 1024.0, rss_mib: kib("VmRSS:")? / 1024.0 })
}

/// CPU seconds (user + system) the process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat)
}

/// The machine's CPU accounting at one moment, to subtract from a later one.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    /// Busy and idle (with I/O wait) seconds summed over every core, from `/proc/stat`.
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
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (busy, idle) = parse_machine(&stat)?;
        let mut postgres = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres");
            if is_postgres {
                if let Some(cpu) = cpu_seconds(pid) {
                    postgres.insert(pid, cpu);
                }
            }
        }
        Some(Self {
            busy,
            idle,
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

/// Busy and idle seconds over all cores from the `cpu` line of `/proc/stat`: user, nice,
/// system, idle, iowait, irq, softirq, steal (guest time is already in user).
fn parse_machine(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<f64> =
        line.split_whitespace().skip(1).take(8).map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let idle = ticks.get(3)? + ticks.get(4)?;
    let busy = ticks.iter().sum::<f64>() - idle;
    Some((busy / USER_HZ, idle / USER_HZ))
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may contain spaces: count fields
    // after its closing parenthesis. utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_and_current_rss() {
        let status =
            "Name:\tledger\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_memory(status), Some(Memory { peak_rss_mib: 50.0, rss_mib: 40.0 }));
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_time_past_a_command_name_with_spaces() {
        let stat = "1234 (tokio rt) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn splits_the_machine_into_busy_and_idle() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(parse_machine(stat), Some((1.5, 8.5)));
    }

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
