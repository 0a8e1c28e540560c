//! Resource limits (`-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--pids-limit`) as
//! Docker reads and checks them, and the cgroups that enforce them: cgroup v2's unified
//! `memory.max`, `memory.swap.max`, `cpu.max`, `cpu.weight`, `pids.max`, or cgroup v1's
//! memory, cpu and pids hierarchies, each with a `netctl/<id>` group. A container that asks
//! for no limit gets no cgroup here (joining one costs ~10 ms on cgroup v1).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Context, Error, Result};

/// Docker's smallest memory limit.
const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// The CFS period netctl uses for `--cpus` (Docker's).
const CPU_PERIOD: u64 = 100_000;

/// What a container may use; None is "no limit asked".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `-m`: bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// `--memory-swap`: memory plus swap in bytes; -1 for unlimited swap.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// `--cpus` in billionths of a CPU.
    #[serde(default)]
    pub nano_cpus: Option<u64>,
    /// `--cpu-shares`: the relative weight (1024 is Docker's default).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// `--pids-limit`: at most this many processes (0 or less: unlimited).
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// `--cpuset-cpus`: the CPUs it may run on (`0-2,4`).
    #[serde(default)]
    pub cpuset_cpus: Option<String>,
    /// `--memory-reservation`: the soft limit the kernel reclaims down to under pressure.
    #[serde(default)]
    pub memory_reservation: Option<u64>,
    /// `--cpu-rt-period`: microseconds of the real-time scheduling period (cgroup v1).
    #[serde(default)]
    pub cpu_rt_period: Option<u64>,
    /// `--cpu-rt-runtime`: microseconds of each period real-time tasks may run.
    #[serde(default)]
    pub cpu_rt_runtime: Option<u64>,
    /// `--device-cgroup-rule`s (`c 7:128 rwm`): with any, the container gets a device group
    /// (cgroup v1) that allows Docker's default nodes, its `--device`s and these, nothing
    /// else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// The container's `--device` nodes as device group rules; set at each start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<String>,
    /// Whether the container gets a device group (set at each start): with device rules, or
    /// with CAP_MKNOD (nodes it makes open only as Docker's defaults allow), unless
    /// privileged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device_group: bool,
}

/// What Docker's device group allows every container (runc's defaults and Docker's).
const DEFAULT_DEVICE_RULES: [&str; 12] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// Checks a device group rule as Docker does: `TYPE MAJOR:MINOR ACCESS`, TYPE `a`, `b` or
/// `c`, MAJOR and MINOR numbers or `*`, ACCESS of `r`, `w` and `m`.
pub fn check_device_rule(rule: &str) -> Result<()> {
    let number = |n: &str| n == "*" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let ok = match rule.split(' ').collect::<Vec<_>>().as_slice() {
        [kind, numbers, access] => {
            ["a", "b", "c"].contains(kind)
                && numbers
                    .split_once(':')
                    .is_some_and(|(major, minor)| number(major) && number(minor))
                && (1..=3).contains(&access.len())
                && access.bytes().all(|b| b"rwm".contains(&b))
        }
        _ => false,
    };
    if !ok {
        invalid!("invalid device cgroup format '{rule}'");
    }
    Ok(())
}

/// Parses a size as Docker's `RAMInBytes`: a number with an optional unit b, k, m, g, t
/// or p (any case, with or without a trailing b), in powers of 1024.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let bad = || Error::Invalid(format!("invalid size: '{s}'"));
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim_end_matches('b') {
        "" if unit.len() <= 1 => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = n * 2f64.powi(shift);
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `--memory-swap`: a size, or -1 for unlimited.
pub fn parse_swap(s: &str) -> Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    i64::try_from(parse_bytes(s)?).map_err(|_| Error::Invalid(format!("invalid size: '{s}'")))
}

/// `--cpuset-cpus`: CPU numbers and ranges (`0-2,4`), as the kernel's list format; the
/// CPUs named.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u64>> {
    let bad = || {
        Error::Invalid(format!("Invalid value {s} for cpuset cpus: invalid format: {s} (use numbers and ranges such as 0-2,4)"))
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u64, u64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a > b || b > 4095 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// `--cpus`: a decimal number of CPUs, in billionths.
pub fn parse_cpus(s: &str) -> Result<u64> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| Error::Invalid(format!("failed to parse {s} as a rational number")))?;
    if !n.is_finite() || n < 0.0 {
        invalid!("invalid value {s:?} for --cpus: give a positive number of CPUs");
    }
    Ok((n * 1e9).round() as u64)
}

impl Resources {
    /// Whether nothing is limited.
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.nano_cpus.is_none()
            && self.cpu_shares.is_none()
            && self.pids_limit.is_none_or(|p| p <= 0)
            && self.cpuset_cpus.is_none()
            && self.memory_reservation.is_none()
            && self.cpu_rt_period.is_none()
            && self.cpu_rt_runtime.is_none()
            && !self.device_group
    }

    /// These limits with the ones `new` gives in their place (`update`).
    pub fn updated_by(&self, new: &Resources) -> Resources {
        Resources {
            memory: new.memory.or(self.memory),
            memory_swap: new.memory_swap.or(self.memory_swap),
            nano_cpus: new.nano_cpus.or(self.nano_cpus),
            cpu_shares: new.cpu_shares.or(self.cpu_shares),
            pids_limit: new.pids_limit.or(self.pids_limit),
            cpuset_cpus: new.cpuset_cpus.clone().or_else(|| self.cpuset_cpus.clone()),
            memory_reservation: new.memory_reservation.or(self.memory_reservation),
            cpu_rt_period: new.cpu_rt_period.or(self.cpu_rt_period),
            cpu_rt_runtime: new.cpu_rt_runtime.or(self.cpu_rt_runtime),
            device_cgroup_rules: self.device_cgroup_rules.clone(),
            device_nodes: self.device_nodes.clone(),
            device_group: self.device_group,
        }
    }

    /// Docker's checks, in its words; Docker's default swap (twice the memory) filled in.
    pub fn checked(mut self) -> Result<Self> {
        let memory = self.memory.unwrap_or(0);
        if memory != 0 && memory < MIN_MEMORY {
            invalid!("Minimum memory limit allowed is 6MB");
        }
        if let Some(soft) = self.memory_reservation {
            if soft < MIN_MEMORY {
                invalid!("Minimum memory reservation allowed is 6MB");
            }
            if memory != 0 && memory < soft {
                invalid!(
                    "Minimum memory limit can not be less than memory reservation limit, see usage"
                );
            }
        }
        match self.memory_swap {
            Some(swap) if swap > 0 && memory == 0 => invalid!(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
            ),
            Some(swap) if swap > 0 && (swap as u64) < memory => {
                invalid!("Minimum memoryswap limit should be larger than memory limit, see usage")
            }
            Some(0) | None if memory > 0 => {
                self.memory_swap = Some(i64::try_from(memory.saturating_mul(2)).unwrap_or(i64::MAX))
            }
            _ => {}
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        if self.nano_cpus.is_some_and(|n| n > cpus * 1_000_000_000) {
            invalid!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            );
        }
        if self.nano_cpus == Some(0) {
            self.nano_cpus = None;
        }
        if self.cpu_rt_period == Some(0) {
            self.cpu_rt_period = None;
        }
        if self.cpu_rt_runtime == Some(0) {
            self.cpu_rt_runtime = None;
        }
        if (self.cpu_rt_period.is_some() || self.cpu_rt_runtime.is_some()) && !realtime_groups() {
            invalid!("Your kernel does not support CPU real-time scheduler");
        }
        for rule in &self.device_cgroup_rules {
            check_device_rule(rule)?;
        }
        if !self.device_cgroup_rules.is_empty() && !device_groups() {
            invalid!("--device-cgroup-rule needs cgroup v1's devices controller, which this host does not have");
        }
        if let (Some(period), Some(runtime)) = (self.cpu_rt_period, self.cpu_rt_runtime) {
            if runtime > period {
                invalid!("cpu-rt-runtime cannot be higher than cpu-rt-period");
            }
        }
        if let Some(set) = &self.cpuset_cpus {
            let wanted = parse_cpu_list(set)?;
            if let Some(missing) = wanted.iter().find(|&&c| c >= cpus) {
                let last = cpus.saturating_sub(1);
                invalid!("Requested CPUs are not available - requested {set}, available: 0-{last} (CPU {missing} is not)");
            }
        }
        Ok(self)
    }

    /// The cgroup files and values that enforce these limits on this machine's cgroups.
    fn settings(&self, v2: bool) -> Vec<(&'static str, &'static str, String)> {
        let mut out = Vec::new();
        let swap_total = self.memory_swap.filter(|&s| s != 0);
        if let Some(m) = self.memory {
            if v2 {
                out.push(("memory", "memory.max", m.to_string()));
                if let Some(total) = swap_total {
                    let swap = if total < 0 {
                        "max".to_string()
                    } else {
                        (total as u64).saturating_sub(m).to_string()
                    };
                    out.push(("memory", "memory.swap.max", swap));
                }
            } else {
                out.push(("memory", "memory.limit_in_bytes", m.to_string()));
                if let Some(total) = swap_total {
                    out.push(("memory", "memory.memsw.limit_in_bytes", total.to_string()));
                }
            }
        }
        if let Some(n) = self.nano_cpus {
            let quota = (n.saturating_mul(CPU_PERIOD) / 1_000_000_000).max(1000);
            if v2 {
                out.push(("cpu", "cpu.max", format!("{quota} {CPU_PERIOD}")));
            } else {
                out.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD.to_string()));
                out.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
            }
        }
        if let Some(shares) = self.cpu_shares {
            let shares = shares.clamp(2, 262_144);
            if v2 {
                // runc's conversion of shares to a weight.
                let weight = 1 + ((shares - 2) * 9999) / 262_142;
                out.push(("cpu", "cpu.weight", weight.to_string()));
            } else {
                out.push(("cpu", "cpu.shares", shares.to_string()));
            }
        }
        // Real-time groups exist on cgroup v1 only ([`Resources::checked`] refuses them
        // elsewhere); the period first, so that a runtime up to it is allowed.
        if !v2 {
            if let Some(period) = self.cpu_rt_period {
                out.push(("cpu", "cpu.rt_period_us", period.to_string()));
            }
            if let Some(runtime) = self.cpu_rt_runtime {
                out.push(("cpu", "cpu.rt_runtime_us", runtime.to_string()));
            }
        }
        if let Some(p) = self.pids_limit.filter(|&p| p > 0) {
            out.push(("pids", "pids.max", p.to_string()));
        }
        if let Some(set) = &self.cpuset_cpus {
            out.push(("cpuset", "cpuset.cpus", set.clone()));
        }
        if !v2 && self.device_group {
            out.push(("devices", "devices.deny", "a".to_string()));
            let rules = DEFAULT_DEVICE_RULES
                .iter()
                .map(|r| r.to_string())
                .chain(self.device_nodes.iter().cloned())
                .chain(self.device_cgroup_rules.iter().cloned());
            out.extend(rules.map(|r| ("devices", "devices.allow", r)));
        }
        if let Some(soft) = self.memory_reservation {
            let file = if v2 {
                "memory.low"
            } else {
                "memory.soft_limit_in_bytes"
            };
            out.push(("memory", file, soft.to_string()));
        }
        out
    }
}

const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_ROOT: &str = "/sys/fs/cgroup";

/// Whether this machine has the unified (v2) hierarchy.
fn unified() -> bool {
    Path::new(V2_ROOT).join("cgroup.controllers").exists()
}

/// The cgroup folders of container `id` for its limits: one on cgroup v2, one per
/// controller on cgroup v1.
fn groups(id: &str, controllers: &[&str], v2: bool) -> Vec<(String, PathBuf)> {
    if v2 {
        let dir = Path::new(V2_ROOT).join("netctl").join(id);
        return controllers
            .iter()
            .map(|c| (c.to_string(), dir.clone()))
            .collect();
    }
    controllers
        .iter()
        .map(|c| {
            (
                c.to_string(),
                Path::new(V1_ROOT).join(c).join("netctl").join(id),
            )
        })
        .collect()
}

/// Moves the calling process into the container's cgroups for `limits`, which
/// [`visible_groups`] made (its children, the container's processes, start inside).
pub fn enter(id: &str, limits: &Resources) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    for (_, dir) in dirs_of(id, limits, unified()) {
        fs::write(dir.join("cgroup.procs"), "0")
            .ctx(|| format!("join the cgroup {}", dir.display()))?;
    }
    Ok(())
}

/// The controllers that enforce `limits` here, each once.
fn controllers(limits: &Resources, v2: bool) -> Vec<&'static str> {
    let mut controllers: Vec<&str> = limits.settings(v2).iter().map(|(c, _, _)| *c).collect();
    controllers.sort_unstable();
    controllers.dedup();
    controllers
}

/// The container's groups for `limits`, each once with its controller (on cgroup v2 the
/// one group for all, controller "").
fn dirs_of(id: &str, limits: &Resources, v2: bool) -> Vec<(String, PathBuf)> {
    if v2 {
        return vec![(String::new(), Path::new(V2_ROOT).join("netctl").join(id))];
    }
    groups(id, &controllers(limits, false), false)
}

/// Sets `limits` on a running container's cgroups and moves its processes (`pids` lists
/// them) into them: `update`. A container that started without limits has none yet.
pub fn apply(id: &str, limits: &Resources, pids: impl Fn() -> Vec<u32>) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    for (_, dir) in set(id, limits)? {
        super::cgroup::adopt(&dir, &pids)?;
    }
    Ok(())
}

/// Makes the container's cgroups for `limits` and writes the limits; the groups made,
/// each with its controller (each once; on cgroup v2 one group for all, controller "").
fn set(id: &str, limits: &Resources) -> Result<Vec<(String, PathBuf)>> {
    let v2 = unified();
    let settings = limits.settings(v2);
    let controllers = controllers(limits, v2);
    if v2 {
        enable_v2_controllers(&controllers)?;
    }
    let dirs = groups(id, &controllers, v2);
    let mut writes = Vec::new();
    for (controller, dir) in &dirs {
        if !v2 && *controller == "cpuset" {
            v1_cpuset_ancestry(dir)?;
        }
        if let (false, "cpu", Some(runtime)) = (v2, controller.as_str(), limits.cpu_rt_runtime) {
            v1_realtime_budget(dir, runtime, limits.cpu_rt_period)?;
        }
        fs::create_dir_all(dir).ctx(|| format!("create the cgroup {}", dir.display()))?;
        for (c, file, value) in &settings {
            let path = dir.join(file);
            // No swap accounting here: skipped, as Docker's warning said.
            let unaccounted = (file.contains("swap") || file.contains("memsw")) && !path.exists();
            if c == controller && !unaccounted {
                writes.push((path, value));
            }
        }
    }
    // A limit may only be written once another allows it (cgroup v1's memory limit above
    // the old memory+swap limit): what fails is written again after the others.
    let failed: Vec<_> = writes
        .into_iter()
        .filter(|(path, value)| fs::write(path, value).is_err())
        .collect();
    for (path, value) in failed {
        fs::write(&path, value).ctx(|| format!("set {} to {value}", path.display()))?;
    }
    Ok(dirs_of(id, limits, v2))
}

/// cgroup v1's cpuset groups start with no CPUs and no memory nodes, and a process cannot
/// join one until both are set: the `netctl` parent gets the root's, the container's group
/// the parent's memory nodes (its CPUs are the limit written next).
fn v1_cpuset_ancestry(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let root = Path::new(V1_ROOT).join("cpuset");
    let copy = |from: &Path, to: &Path, file: &str| -> Result<()> {
        let now = fs::read_to_string(to.join(file)).unwrap_or_default();
        if !now.trim().is_empty() {
            return Ok(());
        }
        let value = fs::read_to_string(from.join(file))
            .ctx(|| format!("read {}", from.join(file).display()))?;
        fs::write(to.join(file), value.trim()).ctx(|| format!("set {}", to.join(file).display()))
    };
    fs::create_dir_all(parent).ctx(|| format!("create the cgroup {}", parent.display()))?;
    copy(&root, parent, "cpuset.cpus")?;
    copy(&root, parent, "cpuset.mems")?;
    fs::create_dir_all(dir).ctx(|| format!("create the cgroup {}", dir.display()))?;
    copy(parent, dir, "cpuset.mems")
}

/// Whether this machine has cgroup v1's devices controller.
fn device_groups() -> bool {
    !unified() && Path::new(V1_ROOT).join("devices/devices.allow").exists()
}

/// Makes the container's cgroups for `limits` before its processes join them: each with
/// its controller, to show the container read-only under /sys/fs/cgroup (as Docker does,
/// so that runtimes such as the JVM see their limits); none without limits.
pub fn visible_groups(id: &str, limits: &Resources) -> Result<Vec<(String, PathBuf)>> {
    if limits.is_empty() {
        return Ok(Vec::new());
    }
    set(id, limits)
}

/// Whether this machine has real-time CPU groups (cgroup v1's `cpu.rt_runtime_us`).
fn realtime_groups() -> bool {
    !unified() && Path::new(V1_ROOT).join("cpu/cpu.rt_runtime_us").exists()
}

/// A cgroup v1 group gets real-time time only out of its parent's share (runtime over
/// period), and new groups have none: the `netctl` parent is given the shares its
/// containers' groups ask (this one's `runtime` per `period` with the others'), within the
/// root's; past that the start fails, saying so.
fn v1_realtime_budget(dir: &Path, runtime: u64, period: Option<u64>) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    fs::create_dir_all(parent).ctx(|| format!("create the cgroup {}", parent.display()))?;
    let ours = (runtime, period.unwrap_or(DEFAULT_RT_PERIOD));
    let needed = realtime_needed(parent, Some((dir, ours)));
    if rt_read(parent, "cpu.rt_runtime_us") >= needed {
        return Ok(());
    }
    let root = Path::new(V1_ROOT).join("cpu");
    let (root_runtime, root_period) = (
        rt_read(&root, "cpu.rt_runtime_us"),
        rt_read(&root, "cpu.rt_period_us"),
    );
    let parent_period = rt_read(parent, "cpu.rt_period_us");
    fs::write(parent.join("cpu.rt_runtime_us"), needed.to_string()).ctx(|| {
        format!("give the containers {needed} µs of real-time CPU per {parent_period} µs (the host's root group has {root_runtime} per {root_period}, shared with its other groups)")
    })
}

/// Gives back the real-time time of the `netctl` parent (`parent`) that its remaining
/// groups no longer ask, so that the host's root keeps what no container uses.
fn v1_realtime_release(parent: &Path) {
    let needed = realtime_needed(parent, None);
    if rt_read(parent, "cpu.rt_runtime_us") <= needed {
        return;
    }
    // A group just removed still holds its time until the kernel frees it (after an RCU
    // grace period): the parent refuses to shrink (EBUSY) until then.
    for _ in 0..100 {
        if fs::write(parent.join("cpu.rt_runtime_us"), needed.to_string()).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The real-time runtime `parent` needs for its groups' shares (runtime over period), in
/// its own period, rounded up; `new` (a group and the runtime and period it will have) in
/// place of what that group has now.
fn realtime_needed(parent: &Path, new: Option<(&Path, (u64, u64))>) -> u64 {
    let parent_period = u128::from(rt_read(parent, "cpu.rt_period_us").max(1));
    let of_parent =
        |(r, p): (u64, u64)| (u128::from(r) * parent_period).div_ceil(u128::from(p.max(1)));
    let others: u128 = fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && new.is_none_or(|(dir, _)| p.as_path() != dir))
        .map(|p| {
            of_parent((
                rt_read(&p, "cpu.rt_runtime_us"),
                rt_read(&p, "cpu.rt_period_us"),
            ))
        })
        .sum();
    let ours = new.map_or(0, |(_, share)| of_parent(share));
    u64::try_from(others + ours).unwrap_or(u64::MAX)
}

/// A number a cgroup v1 file holds (0 when it cannot be read).
fn rt_read(dir: &Path, file: &str) -> u64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The real-time period of a new cgroup v1 group, in microseconds.
const DEFAULT_RT_PERIOD: u64 = 1_000_000;

/// cgroup v2 hands a controller to a group only when every parent enables it for its
/// children.
fn enable_v2_controllers(controllers: &[&str]) -> Result<()> {
    let wanted: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
    let parent = Path::new(V2_ROOT).join("netctl");
    fs::create_dir_all(&parent).ctx(|| format!("create {}", parent.display()))?;
    for dir in [Path::new(V2_ROOT), parent.as_path()] {
        let file = dir.join("cgroup.subtree_control");
        fs::write(&file, wanted.join(" ")).ctx(|| {
            format!(
                "enable the {} controllers in {}",
                controllers.join(", "),
                file.display()
            )
        })?;
    }
    Ok(())
}

/// What a container asking for `limits` loses on this machine, as Docker warns.
pub fn warnings(limits: &Resources) -> Vec<String> {
    let v2 = unified();
    let swap_file = if v2 {
        Path::new(V2_ROOT).join("memory.swap.max")
    } else {
        Path::new(V1_ROOT).join("memory/memory.memsw.limit_in_bytes")
    };
    let mut out = Vec::new();
    if limits.memory.is_some() && !v2 && !swap_file.exists() {
        out.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
    }
    out
}

/// Removes the container's limit cgroups once its processes are gone (real-time time it
/// held goes back to the host).
pub fn remove(id: &str) {
    let v2 = unified();
    for (controller, dir) in groups(id, &["memory", "cpu", "pids", "cpuset", "devices"], v2) {
        for _ in 0..300 {
            if !dir.exists() || fs::remove_dir(&dir).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let (false, "cpu", Some(parent)) = (v2, controller.as_str(), dir.parent()) {
            v1_realtime_release(parent);
        }
    }
}

/// The memory cgroup of container `id`, for usage figures (`stats`): its folder and
/// whether it is cgroup v2.
pub fn memory_group(id: &str) -> (PathBuf, bool) {
    let v2 = unified();
    let (_, dir) = groups(id, &["memory"], v2).remove(0);
    (dir, v2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_dockers_ram_in_bytes() {
        for (s, n) in [
            ("1024", 1024),
            ("512k", 512 << 10),
            ("64m", 64 << 20),
            ("64MB", 64 << 20),
            ("1.5g", 3 << 29),
            ("2t", 2 << 40),
            ("10b", 10),
        ] {
            assert_eq!(parse_bytes(s).unwrap(), n, "{s}");
        }
        for bad in ["", "x", "12q", "-5m", "1mm"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_swap("-1").unwrap(), -1);
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("one").is_err());
    }

    #[test]
    fn limits_are_checked_in_dockers_words() {
        let small = Resources {
            memory: Some(1 << 20),
            ..Resources::default()
        };
        assert!(small.checked().unwrap_err().to_string().contains("6MB"));
        let swap_only = Resources {
            memory_swap: Some(1 << 30),
            ..Resources::default()
        };
        assert!(swap_only
            .checked()
            .unwrap_err()
            .to_string()
            .contains("always set the Memory limit"));
        let less = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Resources::default()
        };
        assert!(less
            .checked()
            .unwrap_err()
            .to_string()
            .contains("larger than memory"));
        let default_swap = Resources {
            memory: Some(64 << 20),
            ..Resources::default()
        };
        assert_eq!(default_swap.checked().unwrap().memory_swap, Some(128 << 20));
        let many = Resources {
            nano_cpus: Some(1_000_000 * 1_000_000_000),
            ..Resources::default()
        };
        assert!(many
            .checked()
            .unwrap_err()
            .to_string()
            .contains("Range of CPUs"));
    }

    #[test]
    fn limits_become_cgroup_settings_on_both_versions() {
        let r = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            nano_cpus: Some(500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(20),
            cpuset_cpus: Some("0".into()),
            memory_reservation: Some(32 << 20),
            cpu_rt_period: Some(1000),
            cpu_rt_runtime: Some(500),
            ..Resources::default()
        };
        let v1: Vec<String> = r
            .settings(false)
            .iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(
            v1,
            [
                "memory.limit_in_bytes=67108864",
                "memory.memsw.limit_in_bytes=-1",
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=50000",
                "cpu.shares=512",
                "cpu.rt_period_us=1000",
                "cpu.rt_runtime_us=500",
                "pids.max=20",
                "cpuset.cpus=0",
                "memory.soft_limit_in_bytes=33554432"
            ]
        );
        let v2: Vec<String> = r
            .settings(true)
            .iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(
            v2,
            [
                "memory.max=67108864",
                "memory.swap.max=max",
                "cpu.max=50000 100000",
                "cpu.weight=20",
                "pids.max=20",
                "cpuset.cpus=0",
                "memory.low=33554432"
            ]
        );
    }

    /// Docker's rule format (`c 7:128 rwm`, `a *:* r`); the device group denies every node
    /// first, then allows the defaults, the `--device` nodes and the rules, in that order.
    #[test]
    fn device_rules_are_checked_and_allowed_after_denying_all() {
        for good in ["c 7:128 rwm", "a *:* r", "b 8:* m", "c *:1 wm"] {
            assert!(check_device_rule(good).is_ok(), "{good}");
        }
        for bad in [
            "c 7:128",
            "x 7:128 rwm",
            "c 7 rwm",
            "c 7:128 rwx",
            "c a:1 r",
            "c 1:2 rwmr",
            "",
        ] {
            let e = check_device_rule(bad).unwrap_err().to_string();
            assert!(e.contains("invalid device cgroup format"), "{bad}: {e}");
        }
        let r = Resources {
            device_cgroup_rules: vec!["c 7:128 rwm".into()],
            device_nodes: vec!["c 1:3 r".into()],
            device_group: true,
            ..Resources::default()
        };
        let devices: Vec<(&str, String)> = r
            .settings(false)
            .into_iter()
            .filter(|(c, _, _)| *c == "devices")
            .map(|(_, f, v)| (f, v))
            .collect();
        assert_eq!(devices.first(), Some(&("devices.deny", "a".to_string())));
        assert_eq!(devices.len(), 1 + DEFAULT_DEVICE_RULES.len() + 2);
        assert_eq!(
            devices[devices.len() - 2..],
            [
                ("devices.allow", "c 1:3 r".to_string()),
                ("devices.allow", "c 7:128 rwm".to_string())
            ]
        );
        assert!(r.settings(true).is_empty(), "no device groups on cgroup v2");
    }

    #[test]
    fn the_default_swap_of_a_huge_limit_does_not_wrap() {
        let huge = Resources {
            memory: Some(i64::MAX as u64),
            ..Resources::default()
        }
        .checked()
        .unwrap();
        assert_eq!(huge.memory_swap, Some(i64::MAX));
    }

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-2,4").unwrap(), [0, 1, 2, 4]);
        assert_eq!(parse_cpu_list("1").unwrap(), [1]);
        for bad in ["", "1-0", "a", "0-", "0,,1", "0-99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }
}
