//! Creating, starting, stopping, killing and removing containers, and repairing what a
//! crash left.

use netctl_cni::process::CleanSignals;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use netctl_cni::Attachment;
use nix::sys::signal::Signal;

use crate::container::{pid_alive, Container, Status, StoreLock};
use crate::engine::Engine;
use crate::error::{conflict, state, Context, Error, Result};
use crate::runtime::{reports, Internal, Report};
use crate::spec::{plan, ContainerSpec};
use crate::volume::VolumeStore;

/// `create`: the container's record (not started) and what of the spec was dropped.
pub fn create(engine: &Engine, spec: &ContainerSpec) -> Result<(Container, Vec<String>)> {
    // The image and volumes cannot be removed between being chosen and being recorded as
    // used.
    let _image_stays = crate::image::ImageStore::open(engine.root())?.lock(false)?;
    let _volumes_stay = VolumeStore::open(engine.root())?.lock(false)?;
    let planned = plan(engine, spec)?;
    let lock = engine.containers.lock()?;
    let c = engine.containers.create(planned.config, &lock)?;
    crate::events::container(engine, &c, "create", &[]);
    Ok((c, planned.warnings))
}

/// Starts a container's monitor and waits until the command runs. With `attach`, the
/// monitor keeps the output for the client that attaches next (an attached `run`);
/// `tty_size` is the attaching terminal's, for a `-t` container.
pub fn start(
    engine: &Engine,
    c: &Container,
    attach: bool,
    tty_size: Option<(u16, u16)>,
) -> Result<()> {
    if c.is_running() {
        return Ok(());
    }
    // Through a launcher that exits at once: the monitor is nobody's child, so a
    // long-lived caller (the API daemon) has no process to reap.
    let internal = Internal::Launch(Box::new(Internal::Monitor {
        config: Box::new(engine.config.clone()),
        id: c.config.id.clone(),
        attach,
        tty_size: tty_size.filter(|_| c.config.tty),
    }));
    let mut child = Command::new(&engine.config.helper)
        .args(internal.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .clean_signals()
        .spawn()
        .ctx(|| "start the container's monitor".into())?;
    let first = child.stderr.take().and_then(|err| reports(err).next());
    // The launcher has exited (or is about to): reaped here, whatever the report.
    let _ = child.wait();
    match first {
        Some(Report::Running) => Ok(()),
        Some(Report::Failed(f)) => Err(f.into()),
        _ => {
            state!(
                "the monitor of {} ended before the container started; see {}",
                c.config.name,
                c.dir.join("monitor.log").display()
            )
        }
    }
}

/// Sends a signal to the container's first process.
pub fn signal(engine: &Engine, c: &Container, sig: Signal) -> Result<()> {
    if !c.is_running() {
        state!(
            "Cannot kill container: {}: container is not running",
            c.config.name
        );
    }
    let pid = c.process_pid()?;
    if c.state.paused {
        // A frozen process cannot take a signal: thaw first, as Docker does, and record it
        // under the container's lock.
        let _lock = c.lock()?;
        let mut c = c.clone();
        c.reload()?;
        if let Some(cg) = crate::runtime::cgroup::Cgroup::of(&c.config.id) {
            cg.freeze(false)?;
        }
        c.state.paused = false;
        c.save_state()?;
    }
    engine
        .sys
        .kill(pid, sig)
        .ctx(|| format!("signal {}", c.config.name))
}

/// Records that the user stopped (or killed) the container, so its restart policy leaves
/// it down, and returns it as it is now. A container waiting to be restarted is stopped
/// here, through its monitor.
fn stopped_by_hand(engine: &Engine, c: &Container, timeout: Duration) -> Result<Container> {
    let mut c = c.clone();
    {
        let _lock = c.lock()?;
        if c.reload().is_err() {
            return Ok(c);
        }
        c.state.stopped_by_hand = true;
        c.save_state()?;
    }
    if c.is_running() && c.state.restarting {
        let _ = engine.sys.kill(c.state.monitor_pid, Signal::SIGTERM);
        engine.sys.wait_gone(c.state.monitor_pid, timeout);
    }
    Ok(c)
}

/// Docker's stop: the container's stop signal (SIGTERM unless `--stop-signal` or the
/// image says otherwise), then SIGKILL after `timeout` (`stop -t`; else `--stop-timeout`,
/// else 10 s); returns once the monitor has recorded the exit and detached the networks.
pub fn stop(engine: &Engine, c: &Container, timeout: Option<Duration>) -> Result<()> {
    if !c.is_running() {
        return Ok(());
    }
    let timeout = c.config.stop_timeout(timeout);
    let c = stopped_by_hand(engine, c, timeout)?;
    if c.is_running() {
        let sig = c.config.stop_signal();
        if signal(engine, &c, sig).is_ok() {
            kill_event(engine, &c, sig);
        }
        if !engine.sys.wait_gone(c.state.monitor_pid, timeout) {
            kill_and_wait(engine, &c)?;
        }
    }
    crate::events::container(engine, &c, "stop", &[]);
    Ok(())
}

/// `restart`: a stop (see [`stop`]) and a start, with Docker's `restart` event.
pub fn restart(engine: &Engine, c: &Container, timeout: Option<Duration>) -> Result<()> {
    stop(engine, c, timeout)?;
    let mut c = c.clone();
    c.reload()?;
    start(engine, &c, false, None)?;
    crate::events::container(engine, &c, "restart", &[]);
    Ok(())
}

/// The `kill` event of a signal sent.
fn kill_event(engine: &Engine, c: &Container, sig: Signal) {
    let n = (sig as i32).to_string();
    crate::events::container(engine, c, "kill", &[("signal", &n)]);
}

/// `kill`: the signal; after SIGKILL, returns once the container is down, as Docker's.
pub fn kill(engine: &Engine, c: &Container, sig: Signal) -> Result<()> {
    c.process_pid()?;
    let c = &stopped_by_hand(engine, c, Duration::from_secs(10))?;
    signal(engine, c, sig)?;
    kill_event(engine, c, sig);
    if sig == Signal::SIGKILL {
        engine
            .sys
            .wait_gone(c.state.monitor_pid, Duration::from_secs(10));
    }
    Ok(())
}

fn kill_and_wait(engine: &Engine, c: &Container) -> Result<()> {
    let c = &stopped_by_hand(engine, c, Duration::from_secs(10))?;
    if signal(engine, c, Signal::SIGKILL).is_ok() {
        kill_event(engine, c, Signal::SIGKILL);
    }
    if !engine
        .sys
        .wait_gone(c.state.monitor_pid, Duration::from_secs(30))
    {
        state!("container {} did not stop after SIGKILL", c.config.name);
    }
    Ok(())
}

/// `rm [-f] [-v]`: refused for a running container unless forced. Whether it runs is decided under the container's lock, so
/// a `start` racing the removal either wins (and `rm` refuses, or with `-f` stops it again)
/// or finds the container gone.
pub fn remove(engine: &Engine, c: &Container, force: bool, volumes: bool) -> Result<()> {
    let mut c = c.clone();
    loop {
        if c.is_running() {
            if !force {
                conflict!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.config.id
                );
            }
            kill_and_wait(engine, &c)?;
        }
        if !c.dir.exists() {
            return Ok(());
        }
        let lock = engine.containers.lock_one(&c)?;
        if c.reload().is_err() {
            return Ok(());
        }
        if !c.is_running() {
            return remove_stopped(engine, &mut c, &lock, volumes);
        }
    }
}

/// Removes a container that is not running, under its lock: its networks (if any are
/// left), its namespace and its folder; with `volumes`, its anonymous volumes too (`rm
/// -v`, `--rm`). A network that will not detach keeps the container's record, marked dead
/// with the endpoint pending, for a later `rm`, repair or `network rm` to finish; the
/// error says which.
pub fn remove_stopped(
    engine: &Engine,
    c: &mut Container,
    lock: &StoreLock,
    volumes: bool,
) -> Result<()> {
    if !c.state.endpoints.is_empty() {
        let failed = crate::netattach::teardown(engine, c, lock);
        if !failed.is_empty() {
            c.state.status = Status::Dead;
            c.save_state()?;
            let why: Vec<String> = failed.iter().map(Error::report).collect();
            state!(
                "container {} could not be removed: {}; it is kept as dead until `netctl rm {}` can detach it",
                c.config.name,
                why.join("; "),
                c.config.name
            );
        }
    }
    remove_folder(c)?;
    crate::runtime::cgroup::remove_all(&c.config.id);
    crate::events::container(engine, c, "destroy", &[]);
    if volumes {
        let store = VolumeStore::open(engine.root())?;
        for m in &c.config.mounts {
            if store.get(&m.source).is_ok_and(|v| v.anonymous) {
                match store.remove(&m.source, &engine.containers) {
                    Ok(()) | Err(Error::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Takes a container's folder away in one step, renaming it out of the store before
/// deleting it: a process that meanwhile opens a file in the folder by its path (a monitor
/// racing the removal) finds no folder rather than making one half-removed.
fn remove_folder(c: &Container) -> Result<()> {
    let (Some(store), Some(name)) = (c.dir.parent(), c.dir.file_name()) else {
        state!("container folder {} has no parent", c.dir.display());
    };
    let mut hidden = std::ffi::OsString::from(".removing-");
    hidden.push(name);
    let tomb = store.join(hidden);
    fs::rename(&c.dir, &tomb).ctx(|| format!("remove {}", c.dir.display()))?;
    fs::remove_dir_all(&tomb).ctx(|| format!("remove {}", tomb.display()))
}

/// Repairs what a killed netctl left, container by container, skipping any that someone
/// (a command, a monitor, a plugin a killed command left running) is working on: a
/// container whose monitor died is marked exited, its process killed and its networks
/// detached; a container that is not running but still lists endpoints (a start killed
/// half-way) has them detached; a running container's pending endpoint (a `network connect`
/// killed half-way) is detached. Then every network touched is garbage-collected. What
/// could not be repaired is returned.
pub fn repair(engine: &Engine) -> Result<Vec<Error>> {
    let mut networks = Vec::new();
    let mut failed = Vec::new();
    for c in engine.containers.all()? {
        let stale =
            !c.is_running() && (c.state.status == Status::Running || !c.state.endpoints.is_empty());
        if !stale && !c.state.endpoints.iter().any(|e| e.pending) {
            continue;
        }
        let Some(lock) = engine.containers.try_lock_one(&c)? else {
            continue;
        };
        let mut c = c;
        if c.reload().is_err() {
            continue;
        }
        networks.extend(repair_one(engine, &mut c, &lock, &mut failed)?);
    }
    networks.sort();
    networks.dedup();
    failed.extend(gc(engine, &networks)?);
    Ok(failed)
}

/// Repairs one container under its lock; the networks it detached.
fn repair_one(
    engine: &Engine,
    c: &mut Container,
    lock: &StoreLock,
    failed: &mut Vec<Error>,
) -> Result<Vec<String>> {
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
            let req = crate::netattach::request_of(c, &ep.network);
            lock.shared_with_children(|| crate::netattach::detach(engine, c, &req, &ep.ifname))?;
            c.state
                .endpoints
                .retain(|e| !(e.pending && e.ifname == ep.ifname));
        }
        c.save_state()?;
        return Ok(pending.into_iter().map(|e| e.network).collect());
    }
    if c.state.status == Status::Running {
        if pid_alive(c.state.pid) {
            let _ = engine.sys.kill(c.state.pid, Signal::SIGKILL);
        }
        c.state.status = Status::Exited;
        c.state.exit_code = 255;
        c.state.finished_at = crate::clock::now_rfc3339();
    }
    failed.extend(crate::netattach::teardown(engine, c, lock));
    c.state.ports.clear();
    c.state.proxied_ports.clear();
    c.save_state()?;
    Ok(touched)
}

/// Once per boot (the run dir is a tmpfs, so its marker goes with a reboot), before
/// anything else: repairs what the reboot left (every container that was running is
/// recorded as exited, its networks detached) and starts again the containers whose restart
/// policy asks for it. What could not be repaired or started is returned.
pub fn restart_after_boot(engine: &Engine) -> Result<Vec<Error>> {
    let run = engine.run_dir();
    fs::create_dir_all(run).ctx(|| format!("create {}", run.display()))?;
    let marker = run.join("booted");
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("create {}", marker.display()), e)),
    }
    let before = engine.containers.all()?;
    let mut failed = repair(engine)?;
    for old in before {
        let was_running = old.state.status == Status::Running;
        let Ok(c) = engine.containers.find(&old.config.id) else {
            continue;
        };
        let wanted = matches!(c.state.status, Status::Exited)
            && c.config.restart.restarts_after_boot(
                c.state.exit_code,
                c.state.stopped_by_hand,
                was_running,
                c.state.restart_count,
            );
        if wanted && !c.is_running() {
            if let Err(e) = start(engine, &c, false, None) {
                failed.push(e.context(format!("restart {} after the reboot", c.config.name)));
            }
        }
    }
    Ok(failed)
}

/// Garbage-collects `networks`: every attachment of theirs that no container of this engine
/// lists (pending ones included) is released, except attachments made through the CNI
/// cache by hand (`netctl cni add --id NAME`), which are not this engine's to judge. Those
/// are told apart by their IDs: every container of the engine has a 64-hex ID.
fn gc(engine: &Engine, networks: &[String]) -> Result<Vec<Error>> {
    if networks.is_empty() {
        return Ok(Vec::new());
    }
    let _exclusive = engine.containers.attach_lock(true)?;
    let all = engine.containers.all()?;
    let ours = |id: &str| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let store = engine.networks()?;
    let mut failed = Vec::new();
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
        if let Err(source) = engine.cni.gc(&net.list, &valid) {
            failed.push(
                Error::Cni {
                    network: name.clone(),
                    source,
                }
                .context("garbage-collect"),
            );
        }
    }
    Ok(failed)
}
