//! `pause`, `unpause`, `top`, `port`, `rename`, `wait`.

use std::time::Duration;

use crate::container::{pid_alive, Container, PortBinding};
use crate::engine::Engine;
use crate::error::{state, Context, Kind, Result};
use crate::runtime::cgroup::{self, Cgroup};

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

/// `rename OLD NEW`: a running container answers DNS by its new name at once.
pub fn rename(engine: &Engine, c: &Container, new: &str) -> Result<()> {
    crate::ids::check_name(Kind::Container, new)?;
    let _store = engine.containers.lock()?;
    crate::container::check_name_free(&engine.containers.all()?, new)?;
    let _lock = engine.containers.lock_one(c)?;
    let mut c = c.clone();
    c.reload()?;
    let old = std::mem::replace(&mut c.config.name, new.to_string());
    c.save_config()?;
    for ep in &c.state.endpoints {
        rename_record(engine, &c, &ep.network, &ep.ifname, new)?;
    }
    let old = format!("/{old}");
    crate::events::container(engine, &c, "rename", &[("oldName", &old)]);
    Ok(())
}

/// Rewrites the DNS record of one attachment with the new name and tells the server.
fn rename_record(
    engine: &Engine,
    c: &Container,
    network: &str,
    ifname: &str,
    new: &str,
) -> Result<()> {
    use netctl_dnsrecords::{DnsPaths, Record};
    let net = engine.networks()?.find(network)?;
    let run_dir = net.plugin_run_dir("netctl-dns");
    let paths = DnsPaths::new(&run_dir);
    let path = paths.record_path(network, &c.config.id, ifname);
    let Some(mut record): Option<Record> = DnsPaths::read(&path)? else {
        return Ok(());
    };
    record.name = Some(new.to_string());
    paths.write(&record)?;
    paths.notify(&path)?;
    Ok(())
}

/// `wait`: blocks until the container stops; its exit code.
pub fn wait(c: &Container) -> Result<i32> {
    while c.is_running()
        && !crate::lifecycle::wait_gone(c.state.monitor_pid, Duration::from_secs(3600))
    {}
    let mut c = c.clone();
    while pid_alive(c.state.monitor_pid) {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.reload()?;
    Ok(c.state.exit_code)
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
