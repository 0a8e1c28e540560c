//! `stats`: what a running container uses — CPU, memory, network and block I/O, processes —
//! read from its processes (`/proc/PID/stat`, `status`, `io`), its network namespace's
//! counters (`/proc/PID/net/dev`) and, when it has one, its memory cgroup's limit. Two
//! samples make a CPU percentage, as Docker computes it.

use std::fs;
use std::time::Duration;

use crate::container::Container;
use crate::error::{state, Result};

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// CPU time its processes used, in nanoseconds.
    pub cpu: u64,
    /// CPU time the whole machine used, in nanoseconds (all CPUs).
    pub system: u64,
    /// Resident memory of its processes, in bytes.
    pub memory: u64,
    /// Its memory limit (the machine's memory when it has none).
    pub limit: u64,
    /// Bytes its interfaces received and sent (loopback left out).
    pub net: (u64, u64),
    /// Bytes its processes read from and wrote to block devices.
    pub block: (u64, u64),
    /// Its processes' tasks (threads included), as Docker's PIDS.
    pub pids: u64,
}

/// What `stats` shows for one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU use, in percent of one CPU (Docker's CPU %: up to 100 × CPUs).
    pub cpu_percent: f64,
    /// The later sample's counters.
    pub now: Sample,
}

impl Usage {
    /// Memory use in percent of the limit.
    pub fn memory_percent(&self) -> f64 {
        if self.now.limit == 0 {
            return 0.0;
        }
        self.now.memory as f64 * 100.0 / self.now.limit as f64
    }
}

/// Docker's CPU percentage between two samples.
pub fn usage(before: &Sample, after: &Sample) -> Usage {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let used = after.cpu.saturating_sub(before.cpu) as f64;
    let all = after.system.saturating_sub(before.system) as f64;
    let cpu_percent = if all > 0.0 {
        used / all * cpus * 100.0
    } else {
        0.0
    };
    Usage {
        cpu_percent,
        now: *after,
    }
}

/// Samples `c` twice, `gap` apart.
pub fn measure(c: &Container, gap: Duration) -> Result<Usage> {
    let before = sample(c)?;
    std::thread::sleep(gap);
    Ok(usage(&before, &sample(c)?))
}

/// One reading of `c`'s counters.
pub fn sample(c: &Container) -> Result<Sample> {
    let pid = c.process_pid()?;
    let pids = crate::manage::pids(c);
    if pids.is_empty() {
        state!("Container {} is not running", c.config.id);
    }
    let mut s = Sample {
        system: system_cpu(),
        limit: memory_limit(&c.config.id),
        net: net_counters(pid),
        ..Sample::default()
    };
    for p in pids {
        s.cpu += process_cpu(p);
        let status = fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        s.memory += value(&status, "VmRSS:").map_or(0, |kb| kb * 1024);
        s.pids += value(&status, "Threads:").unwrap_or(0);
        let io = fs::read_to_string(format!("/proc/{p}/io")).unwrap_or_default();
        s.block.0 += value(&io, "read_bytes:").unwrap_or(0);
        s.block.1 += value(&io, "write_bytes:").unwrap_or(0);
    }
    Ok(s)
}

/// Clock ticks per second, as /proc counts CPU time (100 on Linux for every architecture
/// netctl runs on).
const TICKS: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / TICKS;

/// utime + stime of a process, in nanoseconds.
fn process_cpu(pid: u32) -> u64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command (which may hold spaces) start at "state".
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0;
    };
    let f: Vec<u64> = rest.split(' ').map(|v| v.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after "state".
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * NANOS_PER_TICK
}

/// All CPU time of the machine (the `cpu` line of /proc/stat), in nanoseconds.
fn system_cpu() -> u64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(|v| v.parse::<u64>().unwrap_or(0))
                    .sum::<u64>()
            })
        })
        .unwrap_or(0)
        * NANOS_PER_TICK
}

/// The number after `key` in the text of a `key: value [kB]` file.
fn value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// [`value`] of a file.
fn field(path: &str, key: &str) -> Option<u64> {
    value(&fs::read_to_string(path).ok()?, key)
}

/// The container's memory limit, else the machine's memory.
fn memory_limit(id: &str) -> u64 {
    let (dir, v2) = crate::runtime::resources::memory_group(id);
    let file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let host = field("/proc/meminfo", "MemTotal:").map_or(0, |kb| kb * 1024);
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&l| l < host)
        .unwrap_or(host)
}

/// Received and sent bytes of every interface but loopback in the namespace of `pid`.
fn net_counters(pid: u32) -> (u64, u64) {
    let Ok(dev) = fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .fold((0, 0), |(rx, tx), (_, counters)| {
            let v: Vec<u64> = counters
                .split_whitespace()
                .map(|n| n.parse().unwrap_or(0))
                .collect();
            (
                rx + v.first().copied().unwrap_or(0),
                tx + v.get(8).copied().unwrap_or(0),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_dockers_formula() {
        let before = Sample {
            cpu: 0,
            system: 0,
            ..Sample::default()
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let after = Sample {
            cpu: 500,
            system: 1000,
            ..Sample::default()
        };
        let u = usage(&before, &after);
        assert!((u.cpu_percent - 50.0 * cpus).abs() < 1e-9);
        let idle = usage(&after, &after);
        assert_eq!(idle.cpu_percent, 0.0);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(field(&format!("/proc/{me}/status"), "VmRSS:").is_some_and(|kb| kb > 0));
        assert!(system_cpu() > 0);
    }
}
