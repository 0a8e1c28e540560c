//! The monitor: one process per running container ([`Internal::Monitor`]). It holds
//! the published host ports, attaches the networks, starts the container's process, keeps
//! its output in the json-file log, serves attach clients, and when the process ends
//! records the exit code, detaches the networks and (for `--rm`) removes the container.
//!
//! It reports to whoever started it on its stderr pipe: [`Report::Running`] once the
//! command runs, or [`Report::Failed`] after undoing everything it did. Its own diagnostics
//! go to `monitor.log` in the container's folder.
//!
//! Signals: SIGTERM or SIGINT to the monitor (a host shutdown, an admin) stop its container
//! as `netctl stop` does — its stop signal to the container's process, SIGKILL after
//! its stop timeout — and the monitor then records the exit and detaches the networks as
//! for any other end. SIGHUP is ignored.

use netctl_cni::process::CleanSignals;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use netctl_cni::types::Protocol;
use serde::Serialize;

use crate::clock::now_rfc3339;
use crate::container::{Container, LogDriver, NetMode, PortBinding, Sharing, Status, StoreLock};
use crate::engine::{Engine, EngineConfig};
use crate::error::{invalid, state, Context, Error, Result};
use crate::image::ImageStore;
use crate::logs::LogWriter;
use crate::restart::{Backoff, RestartPolicy};
use crate::runtime::attach::Clients;
use crate::runtime::init::{InitSpec, Namespace};
use crate::runtime::{reports, Failure, Internal, Report};
use crate::volume::{MountKind, VolumeStore};

/// What the container's process writes to, as the monitor sees it.
enum Output {
    /// stdout and stderr pipes (read ends).
    Pipes(File, File),
    /// The pseudo-terminal's master.
    Tty(File),
}

/// The output as known before the container runs: a terminal arrives only once it does.
enum Pending {
    Ready(Output),
    /// Where the container will send its terminal's master.
    Console(UnixListener),
}

/// A started container process.
struct Running {
    child: Child,
    output: Output,
    /// The `-i` stdin of a detached container, for attach clients.
    stdin: Option<File>,
}

/// Where the monitor writes what it has to say (`monitor.log`).
struct Diag(Option<File>);

impl Diag {
    fn note(&mut self, what: &str) {
        if let Some(f) = self.0.as_mut() {
            let _ = writeln!(f, "{} {what}", now_rfc3339());
        }
    }
}

/// [`Internal::Launch`]: starts the monitor and exits; a monitor that cannot be started is
/// reported on stderr as its own failure would be.
pub fn launch(monitor: &Internal) -> i32 {
    let Internal::Monitor { config, .. } = monitor else {
        return 125;
    };
    let started = std::process::Command::new(&config.helper)
        .args(monitor.args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .clean_signals()
        .spawn();
    match started {
        Ok(_) => 0,
        Err(e) => {
            let e = Error::io("start the container's monitor", e);
            Report::Failed(Failure::from(&e)).send(&mut std::io::stderr());
            125
        }
    }
}

/// Runs the monitor of container `id` until its process ends; the exit code is the
/// container's.
pub fn run(config: &EngineConfig, id: &str, attach: bool, tty_size: Option<(u16, u16)>) -> i32 {
    let Ok(mut status) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
    else {
        return 125;
    };
    let opened = Engine::open(config).and_then(|e| {
        let c = e.containers.find(id)?;
        Ok((e, c))
    });
    let (engine, mut c) = match opened {
        Ok(x) => x,
        Err(e) => {
            Report::Failed(Failure::from(&e)).send(&mut status);
            return 125;
        }
    };
    let mut diag = Diag(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.dir.join("monitor.log"))
            .ok(),
    );
    if let Some(log) = &diag.0 {
        let _ = rustix::stdio::dup2_stderr(log);
    }
    // Our own session: a Ctrl-C at the terminal of an attached CLI reaches the CLI (which
    // passes it on to the container), never the monitor.
    let _ = nix::unistd::setsid();
    // Before any thread starts, so that only the stop thread takes these.
    let stop_signals = block_stop_signals();
    let (mut running, _ports) = match start(&engine, &mut c, tty_size, &mut diag) {
        Ok(r) => r,
        Err(e) => {
            Report::Failed(Failure::from(&e)).send(&mut status);
            return 125;
        }
    };
    let control = Arc::new(Control::default());
    control.track(c.state.pid, &mut diag);
    let clients = if attach {
        Clients::holding()
    } else {
        Clients::default()
    };
    let io = StdioForClients::default();
    io.replace(&mut running);
    let socket = crate::runtime::attach::socket_path(&engine, &c);
    match crate::runtime::attach::listen(&socket) {
        Ok(listener) => crate::runtime::attach::serve(listener, clients.clone(), io.0.clone()),
        Err(e) => diag.note(&format!("attach socket: {}", e.report())),
    }
    // Recorded once clients can attach: one that waited for it connects at once.
    crate::events::container(&engine, &c, "start", &[]);
    if let Some(set) = stop_signals {
        let how = (c.config.stop_signal(), c.config.stop_timeout(None));
        stop_when_told(set, control.clone(), how);
    }
    // The log exists before `run -d` returns, so a `logs -f` right after it follows.
    let log = open_log(&c, &mut diag);
    Report::Running.send(&mut status);
    drop(status);
    let mut backoff = Backoff::default();
    let code = loop {
        let began = Instant::now();
        let prober = prober_of(config, &c);
        let code = supervise(running, &clients, log.clone());
        drop(prober);
        let again = Restart {
            engine: &engine,
            control: &control,
            io: &io,
        };
        match again.after(&mut c, code, backoff.next(began.elapsed()), &mut diag) {
            Some(next) => {
                clients.finish(code);
                running = next;
            }
            None => break code,
        }
    };
    finish(&engine, &mut c, code, &mut diag);
    clients.finish(code);
    let _ = fs::remove_file(socket);
    code
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this (still single) thread, so every thread started
/// later has them blocked and only [`stop_when_told`] takes them.
fn block_stop_signals() -> Option<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().ok().map(|()| set)
}

/// The healthcheck prober of the container's current run, if it has a check.
fn prober_of(config: &EngineConfig, c: &Container) -> Option<crate::health::Prober> {
    let check = c.config.healthcheck.as_ref()?;
    crate::health::Prober::start(config, &c.config.id, check)
}

/// A new run's health: `starting` when it has a check.
fn fresh_health(c: &Container) -> Option<crate::health::Health> {
    c.config
        .healthcheck
        .as_ref()
        .and_then(crate::health::Healthcheck::command)
        .map(|_| crate::health::Health::default())
}

/// What the monitor's threads share about the container's current process: its pidfd
/// (never another process that got its number) and whether the monitor was told to stop,
/// which ends a restart back-off at once.
#[derive(Default)]
struct Control {
    state: Mutex<Ctl>,
    wake: Condvar,
}

#[derive(Default)]
struct Ctl {
    pidfd: Option<Arc<OwnedFd>>,
    stopping: bool,
}

impl Control {
    /// Follows the process `pid`; if a stop came while it was being started, it is stopped.
    fn track(&self, pid: u32, diag: &mut Diag) {
        use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
        let fd = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .map(|p| pidfd_open(p, PidfdFlags::empty()));
        let fd = match fd {
            Some(Ok(fd)) => Arc::new(fd),
            other => {
                let why = other.map_or("no pid".into(), |e| format!("{:?}", e.err()));
                return diag.note(&format!("open the container's pidfd: {why}"));
            }
        };
        let Ok(mut ctl) = self.state.lock() else {
            return;
        };
        if ctl.stopping {
            let _ = pidfd_send_signal(&*fd, Signal::TERM);
        }
        ctl.pidfd = Some(fd);
    }

    /// Marks the monitor told to stop; the current process, if any.
    fn stop(&self) -> Option<Arc<OwnedFd>> {
        let mut ctl = self.state.lock().ok()?;
        ctl.stopping = true;
        self.wake.notify_all();
        ctl.pidfd.clone()
    }

    fn stopping(&self) -> bool {
        self.state.lock().map_or(true, |c| c.stopping)
    }

    /// Waits `delay`; false when told to stop meanwhile.
    fn sleep(&self, delay: Duration) -> bool {
        let Ok(ctl) = self.state.lock() else {
            return false;
        };
        match self.wake.wait_timeout_while(ctl, delay, |c| !c.stopping) {
            Ok((ctl, _)) => !ctl.stopping,
            Err(_) => false,
        }
    }
}

/// A thread that waits for SIGTERM or SIGINT and then stops the container as `stop` does:
/// no more restarts, its stop signal to its process, SIGKILL after its stop timeout if it
/// still runs. SIGHUP is taken and ignored.
fn stop_when_told(
    set: nix::sys::signal::SigSet,
    control: Arc<Control>,
    (stop_signal, timeout): (nix::sys::signal::Signal, Duration),
) {
    use rustix::process::{pidfd_send_signal, Signal};
    std::thread::spawn(move || loop {
        match set.wait() {
            Ok(nix::sys::signal::Signal::SIGHUP) => {}
            Ok(_) => {
                let Some(pidfd) = control.stop() else { return };
                let asked = Signal::from_named_raw(stop_signal as i32).unwrap_or(Signal::TERM);
                if pidfd_send_signal(&*pidfd, asked).is_err() {
                    return; // already gone
                }
                let mut fds = [rustix::event::PollFd::new(
                    &*pidfd,
                    rustix::event::PollFlags::IN,
                )];
                let limit = rustix::event::Timespec::try_from(timeout).ok();
                if !matches!(rustix::event::poll(&mut fds, limit.as_ref()), Ok(1..)) {
                    let _ = pidfd_send_signal(&*pidfd, Signal::KILL);
                }
                return;
            }
            Err(_) => return,
        }
    });
}

/// What restarting a container needs of the monitor.
struct Restart<'a> {
    engine: &'a Engine,
    control: &'a Control,
    io: &'a StdioForClients,
}

impl Restart<'_> {
    /// Answers an exit with `code` as the restart policy says: records it and the
    /// restart, waits `delay` and starts the process again (same namespaces, networks and
    /// ports). None when the policy, the user or a failure says the container stays down.
    fn after(
        &self,
        c: &mut Container,
        code: i32,
        delay: Duration,
        diag: &mut Diag,
    ) -> Option<Running> {
        if !self.decide(c, code, diag) || !self.control.sleep(delay) {
            return None;
        }
        match self.respawn(c) {
            Ok(Some(r)) => Some(r),
            Ok(None) => None,
            Err(e) => {
                diag.note(&format!("restart: {}", e.report()));
                let noted = self.engine.containers.lock_one(c).and_then(|_lock| {
                    c.reload()?;
                    c.state.error = e.report();
                    c.save_state()
                });
                if let Err(e) = noted {
                    diag.note(&format!("record the failed restart: {}", e.report()));
                }
                None
            }
        }
    }

    /// Under the container's lock: whether to restart, recorded as Docker shows it.
    fn decide(&self, c: &mut Container, code: i32, diag: &mut Diag) -> bool {
        if self.control.stopping() {
            return false;
        }
        let recorded = self.engine.containers.lock_one(c).and_then(|_lock| {
            // The policy as it is now: `update` may have changed it since the start.
            c.reload_all()?;
            let policy = c.config.restart;
            if policy == RestartPolicy::No
                || !policy.restarts_after(code, c.state.stopped_by_hand, c.state.restart_count)
            {
                return Ok(false);
            }
            c.state.restarting = true;
            c.state.pid = 0;
            c.state.paused = false;
            c.state.exit_code = code;
            c.state.finished_at = now_rfc3339();
            c.state.restart_count += 1;
            c.save_state()?;
            let code = code.to_string();
            crate::events::container(self.engine, c, "die", &[("exitCode", &code)]);
            crate::runtime::cgroup::remove_all(&c.config.id);
            Ok(true)
        });
        recorded.unwrap_or_else(|e| {
            diag.note(&format!("record a restart: {}", e.report()));
            false
        })
    }

    /// Under the container's lock: the process again, unless the user stopped it meanwhile.
    fn respawn(&self, c: &mut Container) -> Result<Option<Running>> {
        let _lock = self.engine.containers.lock_one(c)?;
        c.reload()?;
        if c.state.stopped_by_hand || self.control.stopping() {
            return Ok(None);
        }
        crate::etc::write(self.engine, c)?;
        let spawned = spawn(self.engine, c, None)?;
        c.state.restarting = false;
        c.state.pid = spawned.pid;
        c.state.health = fresh_health(c);
        c.state.started_at = now_rfc3339();
        c.state.error.clear();
        c.save_state()?;
        crate::events::container(self.engine, c, "start", &[]);
        let mut running = Running {
            child: spawned.child,
            output: spawned.output,
            stdin: spawned.held_stdin,
        };
        let mut diag = Diag(None);
        self.control.track(spawned.pid, &mut diag);
        self.io.replace(&mut running);
        Ok(Some(running))
    }
}

/// The current process's stdin and terminal as attach clients reach them, replaced on
/// each restart.
#[derive(Clone, Default)]
struct StdioForClients(crate::runtime::attach::Io);

impl StdioForClients {
    /// Hands the process's stdin (`-i`) or terminal (`-t`) to attach clients.
    fn replace(&self, r: &mut Running) {
        use crate::runtime::attach::Stdin;
        let (stdin, terminal) = match &r.output {
            Output::Pipes(..) => (r.stdin.take().map(|f| Stdin::new(f, true)), None),
            Output::Tty(master) => (
                master.try_clone().ok().map(|f| Stdin::new(f, false)),
                master.try_clone().ok(),
            ),
        };
        self.0.replace(stdin, terminal);
    }
}

/// The first start: ports bound, networks attached, the process running; what undoes a
/// failure on the way.
fn start(
    engine: &Engine,
    c: &mut Container,
    tty_size: Option<(u16, u16)>,
    diag: &mut Diag,
) -> Result<(Running, Vec<OwnedFd>)> {
    let lock = engine.containers.lock_one(c)?;
    c.reload()?;
    if c.is_running() {
        state!("container {} is already running", c.config.name);
    }
    if c.state.status == Status::Dead {
        state!(
            "container {} is marked for removal and cannot be started; remove it with `netctl rm`",
            c.config.name
        );
    }
    let (ports, bound) = bind_ports(&c.config.ports)?;
    let v6 = crate::proxy::bind_v6(&c.config.ports, &bound);
    c.state.ports = bound;
    if let Err(e) = crate::netattach::setup(engine, c, &lock) {
        undo_start(engine, c, &lock, &e, diag);
        return Err(e);
    }
    // The IPv6 twins relay to the container's IPv4 address on its first network.
    let target = c
        .state
        .endpoints
        .iter()
        .find(|e| e.ifname == "eth0")
        .and_then(|e| e.address(true))
        .map(|a| a.net.addr());
    c.state.proxied_ports = match target {
        Some(ip) => {
            let served = v6.iter().map(|(_, b)| *b).collect();
            crate::proxy::serve(v6, ip);
            served
        }
        None => Vec::new(),
    };
    let spawned = crate::etc::write(engine, c).and_then(|()| spawn(engine, c, tty_size));
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            undo_start(engine, c, &lock, &e, diag);
            return Err(e);
        }
    };
    c.state.status = Status::Running;
    c.state.pid = spawned.pid;
    c.state.monitor_pid = std::process::id();
    c.state.started_at = now_rfc3339();
    c.state.finished_at.clear();
    c.state.error.clear();
    c.state.exit_code = 0;
    c.state.restarting = false;
    c.state.restart_count = 0;
    c.state.stopped_by_hand = false;
    c.state.health = fresh_health(c);
    c.save_state()?;
    drop(lock);
    let running = Running {
        child: spawned.child,
        output: spawned.output,
        stdin: spawned.held_stdin,
    };
    Ok((running, ports))
}

/// Undoes a start that failed after its networks were attached, and records why.
fn undo_start(engine: &Engine, c: &mut Container, lock: &StoreLock, e: &Error, diag: &mut Diag) {
    for w in crate::netattach::teardown(engine, c, lock) {
        diag.note(&format!("detach after a failed start: {}", w.report()));
    }
    crate::runtime::cgroup::remove_all(&c.config.id);
    let _ = fs::remove_file(console_path(engine, c));
    c.state.ports.clear();
    c.state.proxied_ports.clear();
    c.state.error = e.report();
    if let Err(e) = c.save_state() {
        diag.note(&format!("record the failed start: {}", e.report()));
    }
}

/// Binds each published host port (choosing one from the ephemeral range for port 0) and
/// keeps the sockets, so no other program or container can take them while this one runs.
/// Without SO_REUSEADDR and never listening: a port anyone else holds is refused, and no
/// connection is ever accepted here (the firewall sends them to the container).
fn bind_ports(ports: &[PortBinding]) -> Result<(Vec<OwnedFd>, Vec<PortBinding>)> {
    use rustix::net::{bind, getsockname, socket_with, AddressFamily, SocketFlags, SocketType};
    let mut fds = Vec::new();
    let mut bound = Vec::new();
    for p in ports {
        let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let family = if ip.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let ty = match p.protocol {
            Protocol::Udp => SocketType::DGRAM,
            _ => SocketType::STREAM,
        };
        let fd = socket_with(family, ty, SocketFlags::CLOEXEC, None)
            .ctx(|| format!("open a socket for port {}", p.host_port))?;
        let addr = SocketAddr::new(ip, p.host_port);
        match bind(&fd, &addr) {
            Ok(()) => {}
            Err(rustix::io::Errno::ADDRNOTAVAIL) => {
                let family = if ip.is_ipv4() { "4" } else { "6" };
                invalid!(
                    "driver failed programming external connectivity: Error starting userland proxy: listen {}{family} {addr}: bind: cannot assign requested address",
                    p.protocol
                );
            }
            Err(e) => {
                return Err(Error::Conflict(format!(
                    "driver failed programming external connectivity: Bind for {addr} failed: port is already allocated ({e})"
                )))
            }
        }
        let port = getsockname(&fd)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok())
            .map_or(p.host_port, |s| s.port());
        bound.push(PortBinding {
            host_port: port,
            ..*p
        });
        fds.push(fd);
    }
    Ok((fds, bound))
}

/// The container's stdio as stage 1 gets it, and what the monitor keeps.
struct Stdio3 {
    stdin: Stdio,
    stdout: Stdio,
    /// What stage 2 opens as stderr.
    stderr_path: PathBuf,
    output: Pending,
    /// The stderr pipe's write end, open until stage 2 has opened it by path.
    keep: Option<OwnedFd>,
    /// `-i` stdin of a detached container, held open.
    held_stdin: Option<File>,
}

/// Where the container's terminal is handed over (short: unix socket paths are limited).
fn console_path(engine: &Engine, c: &Container) -> PathBuf {
    engine
        .run_dir()
        .join("console")
        .join(format!("{}.sock", c.config.short_id()))
}

fn container_stdio(engine: &Engine, c: &Container) -> Result<Stdio3> {
    if c.config.tty {
        let path = console_path(engine, c);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).ctx(|| format!("bind {}", path.display()))?;
        return Ok(Stdio3 {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr_path: PathBuf::from("/dev/null"),
            output: Pending::Console(listener),
            keep: None,
            held_stdin: None,
        });
    }
    let pipe = || std::io::pipe().ctx(|| "make a pipe for the container's output".into());
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stderr_path = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        err_w.as_raw_fd()
    ));
    let (stdin, held_stdin) = if c.config.interactive {
        let (r, w) = pipe()?;
        (r.into(), Some(File::from(OwnedFd::from(w))))
    } else {
        (Stdio::null(), None)
    };
    Ok(Stdio3 {
        stdin,
        stdout: out_w.into(),
        stderr_path,
        output: Pending::Ready(Output::Pipes(
            File::from(OwnedFd::from(out_r)),
            File::from(OwnedFd::from(err_r)),
        )),
        keep: Some(err_w.into()),
        held_stdin,
    })
}

/// The container's mounts as host paths.
pub(crate) fn init_mounts(
    engine: &Engine,
    c: &Container,
) -> Result<Vec<crate::runtime::init::Mount>> {
    let volumes = VolumeStore::open(engine.root())?;
    c.config
        .mounts
        .iter()
        .map(|m| {
            let (source, copy_up) = match m.kind {
                MountKind::Tmpfs => (None, false),
                MountKind::Bind => (Some(PathBuf::from(&m.source)), false),
                MountKind::Volume => {
                    volumes.get(&m.source)?;
                    let data = volumes.data(&m.source);
                    let empty = fs::read_dir(&data)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    (Some(data), empty)
                }
            };
            Ok(crate::runtime::init::Mount {
                source,
                target: m.target.clone(),
                readonly: m.readonly,
                copy_up,
                options: m.options.clone(),
            })
        })
        .collect()
}

/// A started stage 1 and the container's host PID.
struct Spawned {
    child: Child,
    pid: u32,
    output: Output,
    held_stdin: Option<File>,
}

/// The namespace the container's process joins: its own, another container's, or none
/// (the host's).
fn netns_of(engine: &Engine, c: &Container) -> Result<Option<PathBuf>> {
    Ok(match &c.config.net_mode {
        NetMode::Host => None,
        NetMode::Private | NetMode::None => Some(engine.netns_path(&c.config.id)),
        NetMode::Container(other) => {
            let o = engine.containers.find(other)?;
            if !o.is_running() {
                state!(
                    "cannot join network of a non running container: {}",
                    o.config.name
                );
            }
            Some(PathBuf::from(format!("/proc/{}/ns/net", o.state.pid)))
        }
    })
}

/// Whether the container gets a device group: it asked for device rules, or it may make
/// device nodes (CAP_MKNOD); a privileged one may use every device, as Docker's.
fn device_group(c: &Container) -> bool {
    let p = &c.config.privileges;
    let mknod = p
        .capabilities()
        .is_ok_and(|caps| caps.contains(rustix::thread::CapabilitySet::MKNOD));
    !p.privileged && (mknod || !c.config.resources.device_cgroup_rules.is_empty())
}

/// The PID or IPC namespace the container's process gets: its own, the host's, or a
/// running container's (whose IPC namespace must be shareable, as Docker requires).
fn namespace_of(engine: &Engine, mode: &Sharing, ipc: bool) -> Result<Namespace> {
    let what = if ipc { "IPC" } else { "PID" };
    Ok(match mode {
        Sharing::Private | Sharing::Shareable => Namespace::Own,
        Sharing::Host => Namespace::Host,
        Sharing::Container(other) => {
            let o = engine.containers.find(other)?;
            if !o.is_running() || o.state.pid == 0 {
                state!(
                    "cannot join {what} of a non running container: {}",
                    o.config.name
                );
            }
            if ipc && !matches!(o.config.ipc_mode, Sharing::Shareable | Sharing::Host) {
                state!("non-shareable IPC (hint: use IpcMode:shareable for the donor container)");
            }
            let kind = if ipc { "ipc" } else { "pid" };
            Namespace::Join(PathBuf::from(format!("/proc/{}/ns/{kind}", o.state.pid)))
        }
    })
}

/// Where the container's /etc/hosts, hostname and resolv.conf come from: its own folder,
/// or with `--net container:NAME` the target's (its files, as they change).
fn etc_dir(engine: &Engine, c: &Container) -> Result<PathBuf> {
    Ok(match &c.config.net_mode {
        NetMode::Container(other) => engine.containers.find(other)?.dir,
        _ => c.dir.clone(),
    })
}

fn write_spec(path: &Path, spec: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec(spec).ctx(|| "encode the init spec".into())?;
    netctl_cni::fsutil::write_atomic(path, &bytes).ctx(|| format!("write {}", path.display()))
}

/// Writes the init spec and starts stage 1; waits until the command runs or failed.
fn spawn(engine: &Engine, c: &Container, tty_size: Option<(u16, u16)>) -> Result<Spawned> {
    let images = ImageStore::open(engine.root())?;
    let image = images.find(&c.config.image)?;
    let lower = image
        .layers
        .iter()
        .rev()
        .map(|l| images.layers.path(l))
        .collect();
    for d in ["rootfs", "upper", "work"] {
        let p = c.dir.join(d);
        fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
    }
    let io = container_stdio(engine, c)?;
    let spec = InitSpec {
        rootfs: c.dir.join("rootfs"),
        lower,
        upper: c.dir.join("upper"),
        work: c.dir.join("work"),
        netns: netns_of(engine, c)?,
        hostname: (!c.config.keeps_host_name()).then(|| c.config.hostname.clone()),
        etc: etc_dir(engine, c)?,
        stderr: io.stderr_path,
        command: c.config.command.clone(),
        env: crate::etc::environment(engine, c),
        workdir: c.config.workdir.clone(),
        tty: c.config.tty,
        console_socket: c.config.tty.then(|| console_path(engine, c)),
        tty_size,
        mounts: init_mounts(engine, c)?,
        seccomp: c.config.seccomp.clone(),
        privileges: c.config.privileges.clone(),
        read_only: c.config.read_only,
        domainname: (!c.config.keeps_host_name() && !c.config.domainname.is_empty())
            .then(|| c.config.domainname.clone()),
        host_uts: c.config.host_uts,
        init: c.config.init,
        id: c.config.id.clone(),
        resources: crate::runtime::resources::Resources {
            device_group: device_group(c),
            device_nodes: c
                .config
                .devices
                .iter()
                .filter_map(crate::runtime::kernel::DeviceMapping::cgroup_rule)
                .collect(),
            ..c.config.resources.clone()
        },
        pid_ns: namespace_of(engine, &c.config.pid_mode, false)?,
        ipc_ns: namespace_of(engine, &c.config.ipc_mode, true)?,
        shm_size: c
            .config
            .shm_size
            .unwrap_or(crate::runtime::init::DEFAULT_SHM),
        ulimits: c.config.ulimits.clone(),
        sysctls: c.config.sysctls.clone(),
        devices: c.config.devices.clone(),
    };
    let spec_path = c.dir.join("init.json");
    write_spec(&spec_path, &spec)?;
    let (status_r, status_w) = std::io::pipe().ctx(|| "make the container's status pipe".into())?;
    let mut child = Command::new(&engine.config.helper)
        .args(Internal::Init(spec_path).args())
        .env_clear()
        .stdin(io.stdin)
        .stdout(io.stdout)
        .stderr(status_w)
        .clean_signals()
        .spawn()
        .ctx(|| "start the container".into())?;
    let report = read_status(status_r).and_then(|pid| match io.output {
        Pending::Console(listener) => {
            let master = crate::runtime::console::receive(&listener);
            let _ = fs::remove_file(console_path(engine, c));
            Ok((pid, Output::Tty(master?)))
        }
        Pending::Ready(output) => Ok((pid, output)),
    });
    drop(io.keep);
    match report {
        Ok((pid, output)) => Ok(Spawned {
            child,
            pid,
            output,
            held_stdin: io.held_stdin,
        }),
        Err(e) => {
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Reads the stages' reports until end of file: the PID, or why it failed.
fn read_status(r: std::io::PipeReader) -> Result<u32> {
    let mut pid = None;
    for report in reports(r) {
        match report {
            Report::Started { pid: p } => pid = Some(p),
            Report::Failed(f) => {
                return Err(Error::from(f).context("failed to create task for container"))
            }
            Report::Running => {}
        }
    }
    pid.ok_or_else(|| Error::State("the container's process ended before it started".into()))
}

/// The container's log, opened for appending; None with `--log-driver none`, or (noted)
/// when it cannot be opened.
fn open_log(c: &Container, diag: &mut Diag) -> Option<Arc<Mutex<LogWriter>>> {
    if c.config.log_driver == LogDriver::None {
        return None;
    }
    match LogWriter::open(&c.log_path(), c.config.log_rotation) {
        Ok(w) => Some(Arc::new(Mutex::new(w))),
        Err(e) => {
            diag.note(&format!(
                "{}; output goes to attach clients only",
                e.report()
            ));
            None
        }
    }
}

/// Copies the container's output into the log (when there is one) and to attached
/// clients; returns the exit code. The output is always drained: a container never blocks
/// on a full pipe because its log is missing.
fn supervise(mut r: Running, clients: &Clients, log: Option<Arc<Mutex<LogWriter>>>) -> i32 {
    let sink = |stream: u8| Sink {
        stream,
        log: log.clone(),
        clients: clients.clone(),
    };
    let pumps = match r.output {
        Output::Pipes(out, err) => vec![pump(out, sink(1)), pump(err, sink(2))],
        Output::Tty(master) => vec![pump(master, sink(1))],
    };
    let code = wait(&mut r.child);
    for p in pumps {
        let _ = p.join();
    }
    code
}

/// Where one output stream goes: the log and attached clients.
struct Sink {
    stream: u8,
    log: Option<Arc<Mutex<LogWriter>>>,
    clients: Clients,
}

fn wait(child: &mut Child) -> i32 {
    match child.wait() {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 255,
    }
}

fn pump(mut src: File, sink: Sink) -> std::thread::JoinHandle<()> {
    let name = if sink.stream == 2 { "stderr" } else { "stdout" };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending = Vec::new();
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sink.clients.send(sink.stream, &buf[..n]);
            let Some(log) = &sink.log else { continue };
            pending.extend_from_slice(&buf[..n]);
            let cut = pending
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let lines: Vec<u8> = pending.drain(..cut).collect();
            write_log(log, &lines, name);
        }
        if let Some(log) = &sink.log {
            write_log(log, &pending, name);
        }
    })
}

/// One json-file record per line: `{"log":"...\n","stream":"stdout","time":"..."}`,
/// each written (and the log rotated) on its own, as Docker's json-file does.
fn write_log(log: &Mutex<LogWriter>, bytes: &[u8], stream: &str) {
    if bytes.is_empty() {
        return;
    }
    let time = now_rfc3339();
    let Ok(mut w) = log.lock() else {
        return;
    };
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let rec = crate::logs::Record {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: stream.to_string(),
            time: time.clone(),
        };
        if let Ok(mut json) = serde_json::to_vec(&rec) {
            json.push(b'\n');
            let _ = w.write(&json);
        }
    }
}

/// Records the exit, detaches the networks, and removes an `--rm` container.
fn finish(engine: &Engine, c: &mut Container, code: i32, diag: &mut Diag) {
    let lock = match engine.containers.lock_one(c) {
        Ok(l) => l,
        Err(e) => return diag.note(&format!("lock to record the exit: {}", e.report())),
    };
    if let Err(e) = c.reload_all() {
        diag.note(&format!(
            "reload the state to record the exit: {}",
            e.report()
        ));
    }
    let exit = code.to_string();
    crate::events::container(engine, c, "die", &[("exitCode", &exit)]);
    for w in crate::netattach::teardown(engine, c, &lock) {
        diag.note(&format!("detach: {}", w.report()));
    }
    c.state.status = Status::Exited;
    c.state.restarting = false;
    if c.state.pid != 0 {
        c.state.exit_code = code;
    }
    c.state.finished_at = now_rfc3339();
    c.state.pid = 0;
    c.state.paused = false;
    c.state.ports.clear();
    c.state.proxied_ports.clear();
    crate::runtime::cgroup::remove_all(&c.config.id);
    if let Err(e) = c.save_state() {
        diag.note(&format!("record the exit: {}", e.report()));
    }
    if c.config.auto_remove {
        if let Err(e) = crate::lifecycle::remove_stopped(engine, c, &lock, true) {
            diag.note(&format!("remove: {}", e.report()));
        }
    }
    drop(lock);
}
