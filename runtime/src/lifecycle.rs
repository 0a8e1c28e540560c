//! Starting, stopping, killing and removing containers, and repairing what a crash left.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use netctl_cni::Attachment;
use nix::sys::signal::Signal;

use crate::container::{pid_alive, Container, Status, StoreLock};
use crate::engine::Engine;
use crate::network::NetworkStore;

/// Starts a container's monitor and waits until the command runs. With `attach`, the
/// monitor keeps the output for the client that attaches next (an attached `run`).
pub fn start(engine: &Engine, c: &Container, attach: bool) -> anyhow::Result<()> {
    if c.is_running() {
        return Ok(());
    }
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--root")
        .arg(&engine.root)
        .arg("--run-dir")
        .arg(&engine.run_dir)
        .args(["__monitor", &c.config.id]);
    if attach {
        cmd.arg("--attach");
        if let (true, Ok(size)) = (
            c.config.tty,
            rustix::termios::tcgetwinsize(std::io::stdin()),
        ) {
            cmd.arg("--tty-size")
                .arg(format!("{},{}", size.ws_row, size.ws_col));
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the container's monitor")?;
    let mut line = String::new();
    if let Some(err) = child.stderr.take() {
        BufReader::new(err).read_line(&mut line)?;
    }
    match line
        .trim_end()
        .split_once(' ')
        .unwrap_or((line.trim_end(), ""))
    {
        ("ok", _) => Ok(()),
        ("error", msg) => {
            let _ = child.wait();
            bail!("{msg}")
        }
        _ => {
            let _ = child.wait();
            bail!(
                "the monitor of {} ended before the container started; see {}",
                c.config.name,
                c.dir.join("monitor.log").display()
            )
        }
    }
}

/// Docker's sig-proxy, for an attached container without a terminal: SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to us go to the container's first process
/// (`c` as read after it started).
pub fn proxy_signals(c: &Container) {
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::SignalFd;
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let Ok(fd) = SignalFd::new(&set) else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(c.state.pid as i32);
    std::thread::spawn(move || {
        while let Ok(Some(info)) = fd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    });
}

/// Sends a signal to the container's first process.
pub fn signal(c: &Container, sig: Signal) -> anyhow::Result<()> {
    if !c.is_running() {
        bail!(
            "Cannot kill container: {}: container is not running",
            c.config.name
        );
    }
    if c.state.paused {
        // A frozen process cannot take a signal: thaw first, as Docker does.
        if let Some(cg) = crate::cgroup::Cgroup::of(&c.config.id) {
            cg.freeze(false)?;
        }
        let mut c = c.clone();
        c.state.paused = false;
        c.save_state()?;
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.state.pid as i32), sig)
        .with_context(|| format!("signal {}", c.config.name))
}

/// Waits up to `timeout` for a process to end; whether it did.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let Some(p) = Pid::from_raw(pid as i32) else {
        return true;
    };
    let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
        return !pid_alive(pid);
    };
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return !pid_alive(pid),
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return !pid_alive(pid),
        }
    }
}

/// Docker's stop: SIGTERM, then SIGKILL after `timeout`; returns once the monitor has
/// recorded the exit and detached the networks.
pub fn stop(c: &Container, timeout: Duration) -> anyhow::Result<()> {
    if !c.is_running() {
        return Ok(());
    }
    let _ = signal(c, Signal::SIGTERM);
    if wait_gone(c.state.monitor_pid, timeout) {
        return Ok(());
    }
    let _ = signal(c, Signal::SIGKILL);
    if !wait_gone(c.state.monitor_pid, Duration::from_secs(30)) {
        bail!("container {} did not stop after SIGKILL", c.config.name);
    }
    Ok(())
}

/// `rm [-f] [-v]`: refused for a running container unless forced.
pub fn remove(engine: &Engine, c: &Container, force: bool, volumes: bool) -> anyhow::Result<()> {
    if c.is_running() {
        if !force {
            bail!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                c.config.id
            );
        }
        let _ = signal(c, Signal::SIGKILL);
        if !wait_gone(c.state.monitor_pid, Duration::from_secs(30)) {
            bail!("container {} did not stop after SIGKILL", c.config.name);
        }
    }
    if !c.dir.exists() {
        return Ok(());
    }
    let lock = engine.containers.lock_one(c)?;
    let mut c = c.clone();
    if c.reload().is_err() {
        return Ok(());
    }
    engine.remove_container(&mut c, &lock, volumes)
}

/// Repairs what a killed netctl left, container by container, skipping any that someone
/// (a command, a monitor, a plugin a killed command left running) is working on: a
/// container whose monitor died is marked exited, its process killed and its networks
/// detached; a container that is not running but still lists endpoints (a start killed
/// half-way) has them detached; a running container's pending endpoint (a `network connect`
/// killed half-way) is detached. Then every network touched is garbage-collected.
pub fn repair(engine: &Engine) -> anyhow::Result<()> {
    let mut networks = Vec::new();
    for c in engine.containers.all()? {
        let needs = c.state.endpoints.iter().any(|e| e.pending)
            || (!c.is_running()
                && (c.state.status == Status::Running || !c.state.endpoints.is_empty()));
        if !needs {
            continue;
        }
        let Some(lock) = engine.containers.try_lock_one(&c)? else {
            continue;
        };
        let mut c = c;
        if c.reload().is_err() {
            continue;
        }
        networks.extend(repair_one(engine, &mut c, &lock)?);
    }
    networks.sort();
    networks.dedup();
    gc(engine, &networks)
}

/// Repairs one container under its lock; the networks it detached.
fn repair_one(engine: &Engine, c: &mut Container, lock: &StoreLock) -> anyhow::Result<Vec<String>> {
    let touched: Vec<String> = c
        .state
        .endpoints
        .iter()
        .map(|e| e.network.clone())
        .collect();
    if c.is_running() {
        let pending: Vec<_> = c
            .state
            .endpoints
            .iter()
            .filter(|e| e.pending)
            .cloned()
            .collect();
        for ep in &pending {
            let req = engine.request_of(c, &ep.network);
            lock.shared_with_children(|| engine.detach(c, &req, &ep.ifname))?;
            c.state
                .endpoints
                .retain(|e| !(e.pending && e.ifname == ep.ifname));
        }
        c.save_state()?;
        return Ok(pending.into_iter().map(|e| e.network).collect());
    }
    if c.state.status == Status::Running {
        if pid_alive(c.state.pid) {
            let pid = nix::unistd::Pid::from_raw(c.state.pid as i32);
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        c.state.status = Status::Exited;
        c.state.exit_code = 255;
        c.state.finished_at = crate::clock::now_rfc3339();
    }
    engine.teardown_network(c, lock);
    c.state.ports.clear();
    c.save_state()?;
    Ok(touched)
}

/// Garbage-collects `networks`: every attachment of theirs that no container of this engine
/// lists (pending ones included) is released, except attachments made through the CNI
/// cache by hand (`netctl cni add --id NAME`), which are not this engine's to judge. Those
/// are told apart by their IDs: every container of the engine has a 64-hex ID.
fn gc(engine: &Engine, networks: &[String]) -> anyhow::Result<()> {
    if networks.is_empty() {
        return Ok(());
    }
    let _exclusive = engine.containers.attach_lock(true)?;
    let all = engine.containers.all()?;
    let ours = |id: &str| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let store = NetworkStore::open(&engine.root)?;
    for name in networks {
        let Ok(net) = store.find(name) else { continue };
        let mut valid: Vec<Attachment> = all
            .iter()
            .flat_map(|c| {
                c.state
                    .endpoints
                    .iter()
                    .filter(|e| &e.network == name)
                    .map(|e| Attachment {
                        container_id: c.config.id.clone(),
                        ifname: e.ifname.clone(),
                    })
            })
            .collect();
        for rt in engine.cni.cached_attachments(name).unwrap_or_default() {
            if !ours(&rt.container_id) {
                valid.push(Attachment {
                    container_id: rt.container_id,
                    ifname: rt.ifname,
                });
            }
        }
        // A network whose conflist predates GC (CNI < 1.1.0) keeps what DEL did not free.
        if let Err(e) = net.list().and_then(|l| {
            engine
                .cni
                .gc(&l, &valid)
                .map_err(|e| anyhow::anyhow!("{e}"))
        }) {
            eprintln!("netctl: garbage-collect network {name}: {e:#}");
        }
    }
    Ok(())
}
