//! `netctl exec`: a process in a running container's namespaces, root and capabilities,
//! and `network connect` / `disconnect` of a container.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::sched::CloneFlags;

use crate::container::{Container, NetMode, NetworkRequest};
use crate::engine::Engine;
use crate::network::{NetworkStore, PREDEFINED};

/// What to run, and how.
pub struct ExecRequest<'a> {
    /// Program and arguments.
    pub command: &'a [String],
    /// Extra KEY=VALUE.
    pub env: &'a [String],
    /// Working directory (the container's when empty).
    pub workdir: Option<&'a str>,
    /// Keep stdin attached.
    pub interactive: bool,
}

/// Runs the command inside the container and returns its exit code.
pub fn exec(c: &Container, req: &ExecRequest) -> anyhow::Result<i32> {
    if !c.is_running() {
        bail!("container {} is not running", c.config.id);
    }
    let Some((prog, args)) = req.command.split_first() else {
        bail!("no command given: netctl exec CONTAINER COMMAND [ARG...]");
    };
    let pid = c.state.pid;
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let files = kinds
        .iter()
        .map(|(k, _)| File::open(format!("/proc/{pid}/ns/{k}")))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("open the namespaces of {}", c.config.name))?;
    for (f, (k, flag)) in files.into_iter().zip(kinds) {
        nix::sched::setns(f, flag).with_context(|| format!("join the {k} namespace"))?;
    }
    crate::init::drop_privileges()?;
    let mut env: Vec<String> = c.config.env.clone();
    env.extend(req.env.iter().cloned());
    let vars = env.iter().map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    let status = Command::new(prog)
        .args(args)
        .env_clear()
        .envs(vars)
        .current_dir(req.workdir.unwrap_or(&c.config.workdir))
        .stdin(if req.interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .status();
    match status {
        Ok(s) => Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "OCI runtime exec failed: exec: {prog:?}: executable file not found in $PATH"
            );
            Ok(127)
        }
        Err(e) => {
            eprintln!("OCI runtime exec failed: exec {prog:?}: {e}");
            Ok(126)
        }
    }
}

/// `network connect`: the next interface of a running container, or a network for its
/// next start.
pub fn connect(
    engine: &Engine,
    network: &str,
    key: &str,
    aliases: &[String],
    ips: &[String],
) -> anyhow::Result<()> {
    let net = NetworkStore::open(&engine.root)?.find(network)?;
    let c = engine.containers.find(key)?;
    let _lock = engine.containers.lock_one(&c)?;
    let mut c = c;
    c.reload()?;
    if c.config.net_mode != NetMode::Private || PREDEFINED[1..].contains(&net.name.as_str()) {
        bail!("container {} shares a network namespace or uses host/none: it cannot be connected to {}", c.config.name, net.name);
    }
    if c.config.networks.iter().any(|n| n.name == net.name) {
        bail!(
            "endpoint with name {} already exists in network {}",
            c.config.name,
            net.name
        );
    }
    if PREDEFINED.contains(&net.name.as_str()) && (!aliases.is_empty() || !ips.is_empty()) {
        bail!("user specified IP address and network-scoped aliases are supported only on user defined networks");
    }
    for ip in ips {
        ip.parse::<std::net::IpAddr>()
            .with_context(|| format!("invalid IP address: {ip:?}"))?;
    }
    let req = NetworkRequest {
        name: net.name.clone(),
        aliases: aliases.to_vec(),
        ips: ips.to_vec(),
        mac: None,
    };
    if c.is_running() {
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !c.state.endpoints.iter().any(|e| &e.ifname == n))
            .unwrap_or_default();
        let ep = engine.attach(&c, &req, &ifname, &[])?;
        c.state.endpoints.push(ep);
        c.save_state()?;
        engine.write_etc(&c)?;
    }
    c.config.networks.push(req);
    c.save_config()
}

/// `network disconnect`: the interface, its addresses, rules and DNS names go at once.
pub fn disconnect(engine: &Engine, network: &str, key: &str, force: bool) -> anyhow::Result<()> {
    let net = NetworkStore::open(&engine.root)?.find(network)?;
    let c = engine.containers.find(key)?;
    let _lock = engine.containers.lock_one(&c)?;
    let mut c = c;
    c.reload()?;
    let Some(pos) = c.config.networks.iter().position(|n| n.name == net.name) else {
        if force {
            return Ok(());
        }
        bail!(
            "container {} is not connected to network {}",
            c.config.id,
            net.name
        );
    };
    let req = c.config.networks.remove(pos);
    if let Some(i) = c.state.endpoints.iter().position(|e| e.network == net.name) {
        let ep = c.state.endpoints.remove(i);
        engine.detach(&c, &req, &ep.ifname)?;
        c.save_state()?;
        engine.write_etc(&c)?;
    }
    c.save_config()
}
