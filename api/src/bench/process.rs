//! The ledger process seen from `/proc`: its peak resident memory (`VmHWM`, the high-water
//! mark since it started) and the CPU time it used during the load.
//!
//! Only possible when the ledger runs on this machine: its pid comes from `--pid`, or from
//! the pid file `scripts/up` writes (`$LEDGER_STATE_DIR/ledger.pid`, by default
//! `target/dev/ledger.pid`; `.ledger/ledger.pid` is also looked at).

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
    fn this_process_can_be_read() {
        let pid = std::process::id();
        assert!(memory(pid).is_some_and(|m| m.peak_rss_mib > 0.0));
        assert!(cpu_seconds(pid).is_some());
    }
}
