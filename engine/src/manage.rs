//! `pause`, `unpause`, `top`, `port`, `rename`, `wait`.

use std::time::Duration;

use std::ops::ControlFlow;

use crate::container::{Container, PortBinding};
use crate::engine::Engine;
use crate::error::{conflict, invalid, state, Context, Error, Kind, Result};
use crate::events::{EventFilter, EventOptions};
use crate::restart::{RestartPolicy, RestartRequest};
use crate::runtime::cgroup::{self, Cgroup};
use crate::runtime::resources::{self, Resources};
use crate::watch::Cancel;

/// `pause` / `unpause`: freezes or thaws every process of the container.
pub fn pause(engine: &Engine, c: &Container, frozen: bool) -> Result<()> {
    c.process_pid()?;
    let _lock = engine.containers.lock_one(c)?;
    let mut c = c.clone();
    c.reload()?;
    match (frozen, c.state.paused) {
        (true, true) => state!("Container {} is already paused", c.config.id),
        (false, false) => state!("Container {} is not paused", c.config.id),
        _ => {}
    }
    let cg = Cgroup::of(&c.config.id).ok_or_else(cgroup::missing)?;
    if frozen {
        cg.adopt(|| pids(&c))?;
    }
    cg.freeze(frozen)?;
    c.state.paused = frozen;
    c.save_state()?;
    let action = if frozen { "pause" } else { "unpause" };
    crate::events::container(engine, &c, action, &[]);
    Ok(())
}

/// What `update` changes; what is not given stays as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// The limits to change (those that are `Some`).
    pub resources: Resources,
    /// A new restart policy.
    pub restart: Option<RestartRequest>,
}

/// Changes a container's limits and restart policy (Docker's `update`): checked as at
/// create, applied at once to a running container's cgroups, then saved (the monitor reads
/// the policy at the next exit). Returns Docker's warnings.
pub fn update(engine: &Engine, c: &Container, req: &UpdateRequest) -> Result<Vec<String>> {
    let _lock = engine.containers.lock_one(c)?;
    let mut c = c.clone();
    c.reload_all()?;
    if let Some(r) = &req.restart {
        let policy = r.policy()?;
        if c.config.auto_remove && policy != RestartPolicy::No {
            invalid!(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
            );
        }
        c.config.restart = policy;
    }
    let merged = c.config.resources.updated_by(&req.resources).checked()?;
    if c.is_running() && merged != c.config.resources {
        resources::apply(&c.config.id, &merged, || pids(&c))?;
    }
    c.config.resources = merged;
    c.save_config()?;
    crate::events::container(engine, &c, "update", &[]);
    Ok(resources::warnings(&c.config.resources))
}

/// Host PIDs of the container's processes: those in its PID namespace.
pub(crate) fn pids(c: &Container) -> Vec<u32> {
    let Ok(pid) = c.process_pid() else {
        return Vec::new();
    };
    if c.config.pid_mode != crate::container::Sharing::Private {
        // A namespace it shares holds others' processes too: only its own tree is its.
        return descendants(pid);
    }
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|l| l == ns))
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = vec![root];
    let mut next = 0;
    while next < out.len() && out.len() < 100_000 {
        let p = out[next];
        next += 1;
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten();
        for t in tasks {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What `top` lists (the Engine API's shape): `ps`'s column titles and, for each of the
/// container's processes, its cells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Top {
    /// The column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub processes: Vec<Vec<String>>,
}

/// `top [ps OPTIONS]`: the host's `ps` (with `ps_args`, `-ef` when none), as Docker runs it,
/// cut to the container's processes (host PIDs, as Docker shows them).
pub fn top(c: &Container, ps_args: &[String]) -> Result<Top> {
    c.process_pid()?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    if let Some(bad) = args.iter().find(|a| a.contains('\0')) {
        crate::error::invalid!("ps: invalid argument {bad:?}: it holds a NUL byte");
    }
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx(|| "run ps (Debian package procps)".into())?;
    if !out.status.success() {
        crate::error::invalid!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_ps(&String::from_utf8_lossy(&out.stdout), &pids(c))
}

/// `ps` output cut to the rows of `pids` (by its PID column); the last column (the command)
/// keeps its spaces.
fn parse_ps(text: &str, pids: &[u32]) -> Result<Top> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        crate::error::invalid!("Couldn't find PID field in ps output");
    };
    let processes = lines
        .filter_map(|l| {
            let cells = split_row(l, titles.len())?;
            let pid: u32 = cells.get(pid_col)?.parse().ok()?;
            pids.contains(&pid).then_some(cells)
        })
        .collect();
    Ok(Top { titles, processes })
}

/// A row of `ps` in `n` cells: whitespace-separated, the last one the rest of the line.
fn split_row(line: &str, n: usize) -> Option<Vec<String>> {
    let mut cells = Vec::with_capacity(n);
    let mut rest = line.trim_start();
    for _ in 1..n {
        let end = rest.find(char::is_whitespace)?;
        cells.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    cells.push(rest.to_string());
    Some(cells)
}

/// `port CONTAINER [PORT[/PROTO]]`: the published ports, or those of one container port.
pub fn port(c: &Container, which: Option<&str>) -> Result<Vec<PortBinding>> {
    let want = which.map(|w| {
        let (p, proto) = w.split_once('/').unwrap_or((w, "tcp"));
        (p.to_string(), proto.to_string())
    });
    let ports: Vec<PortBinding> = c
        .published()
        .iter()
        .filter(|p| {
            want.as_ref().is_none_or(|(port, proto)| {
                *port == p.container_port.to_string() && p.protocol.as_str() == proto
            })
        })
        .copied()
        .collect();
    if let (Some(w), true) = (which, ports.is_empty()) {
        state!("No public port '{w}' published for {}", c.config.name);
    }
    Ok(ports)
}

/// `rename OLD NEW`: a running container answers DNS by its new name at once, through
/// each network's plugins (a CNI refresh, [`netctl_cni::types::REFRESH`]).
pub fn rename(engine: &Engine, c: &Container, new: &str) -> Result<()> {
    crate::ids::check_name(Kind::Container, new)?;
    let _store = engine.containers.lock()?;
    crate::container::check_name_free(&engine.containers.all()?, new)?;
    let lock = engine.containers.lock_one(c)?;
    let mut c = c.clone();
    c.reload()?;
    let old = std::mem::replace(&mut c.config.name, new.to_string());
    c.save_config()?;
    for ep in c.state.endpoints.iter().filter(|e| !e.pending) {
        lock.shared_with_children(|| {
            crate::netattach::refresh(engine, &c, &ep.network, &ep.ifname)
        })?;
    }
    let old = format!("/{old}");
    crate::events::container(engine, &c, "rename", &[("oldName", &old)]);
    Ok(())
}

/// `rm --link PARENT/ALIAS`: container PARENT's legacy link ALIAS goes (both containers
/// stay); a running PARENT gets its /etc/hosts again without it.
pub fn remove_link(engine: &Engine, name: &str) -> Result<()> {
    let not_found = || Error::NotFound {
        kind: Kind::Container,
        key: name.to_string(),
    };
    let Some((parent, alias)) = name.trim_start_matches('/').rsplit_once('/') else {
        conflict!("Conflict, cannot remove the default link name of the container");
    };
    let p = engine.containers.find(parent).map_err(|_| not_found())?;
    let _lock = engine.containers.lock_one(&p)?;
    let mut p = p;
    p.reload()?;
    if !p.config.links.iter().any(|(_, a)| a == alias) {
        return Err(not_found());
    }
    p.config.links.retain(|(_, a)| a != alias);
    p.save_config()?;
    if p.is_running() {
        crate::etc::write(engine, &p)?;
    }
    Ok(())
}

/// What `wait` waits for (Docker's `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// The container is not running (at once if it is not).
    #[default]
    NotRunning,
    /// The container's next exit, even if it is not running now.
    NextExit,
    /// The container is removed.
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "not-running" => Ok(Self::NotRunning),
            "next-exit" => Ok(Self::NextExit),
            "removed" => Ok(Self::Removed),
            _ => crate::error::invalid!(
                "invalid condition: \"{s}\": use not-running, next-exit or removed"
            ),
        }
    }
}

/// `wait`: blocks until the container meets `condition`, sleeping on the event journal
/// (never polling); its last exit code. Exits from `since` on count (a caller that answers
/// "waiting" before it waits takes the instant first, so none falls in between); `cancel`
/// gives up the wait (a client that went away), with an error.
pub fn wait(
    engine: &Engine,
    c: &Container,
    condition: WaitCondition,
    since: crate::when::Instant,
    cancel: Option<&Cancel>,
) -> Result<i32> {
    let mut c = c.clone();
    if c.reload().is_err() && condition == WaitCondition::Removed {
        return Ok(c.state.exit_code);
    }
    if condition == WaitCondition::NotRunning && !c.is_running() {
        return Ok(c.state.exit_code);
    }
    // The monitor records the exit's event a moment before the state says so: while the
    // state says running, an exit of this run counts however early it was recorded.
    let since = match crate::when::of_rfc3339(&c.state.started_at) {
        Some(started) if c.is_running() => started.min(since),
        _ => since,
    };
    let opts = EventOptions {
        since: Some(since),
        until: None,
        filter: EventFilter::parse(&[
            "type=container".into(),
            format!("container={}", c.config.id),
        ])?,
        cancel: cancel.cloned(),
    };
    let mut code = c.state.exit_code;
    let mut met = false;
    crate::events::read(engine, &opts, |e| {
        if e.action == "die" {
            code = e
                .actor
                .attributes
                .get("exitCode")
                .and_then(|v| v.parse().ok())
                .unwrap_or(code);
        }
        met = match condition {
            WaitCondition::Removed => e.action == "destroy",
            _ => e.action == "die" || e.action == "destroy",
        };
        Ok(if met {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    if !met {
        state!("wait for {} was cancelled", c.config.name);
    }
    // The monitor records the exit just after the event: a caller that inspects next sees
    // the container stopped (unless it waits to be restarted).
    if c.reload().is_ok() && !c.state.restarting {
        engine
            .sys
            .wait_gone(c.state.monitor_pid, Duration::from_secs(10));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_cut_to_the_containers_processes() {
        let text = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 /sbin/init splash\nroot        4242       1  0 10:01 ?        00:00:00 sleep 600 --with args\n";
        let top = parse_ps(text, &[4242]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.processes[0][1], "4242");
        assert_eq!(top.processes[0][7], "sleep 600 --with args");
        assert!(parse_ps("UID CMD\nroot x\n", &[1]).is_err());
    }
}
