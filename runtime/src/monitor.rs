//! The monitor: one process per running container (`netctl __monitor ID`). It holds the
//! published host ports, attaches the networks, starts the container's process, keeps its
//! output in the json-file log, and when the process ends records the exit code, detaches
//! the networks and (for `--rm`) removes the container.
//!
//! It reports to whoever started it on its stderr: `ok` once the command runs, or
//! `error MESSAGE` after undoing everything it did.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use serde_json::json;

use crate::attach::Clients;
use crate::clock::now_rfc3339;
use crate::container::{Container, NetMode, PortBinding, Status};
use crate::engine::Engine;
use crate::image::ImageStore;
use crate::init::InitSpec;

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

/// A started container.
struct Running {
    child: Child,
    output: Output,
    /// Keeps the published ports reserved.
    _ports: Vec<OwnedFd>,
    /// The `-i` stdin of a detached container, for attach clients.
    stdin: Option<File>,
}

/// `netctl __monitor ID [--attach]`: runs until the container's process ends; the exit
/// code is the container's.
pub fn run(engine: &Engine, id: &str, attach: bool, tty_size: Option<(u16, u16)>) -> i32 {
    let Ok(mut status) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
    else {
        return 125;
    };
    let mut c = match engine.containers.find(id) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(status, "error {e:#}");
            return 125;
        }
    };
    if let Ok(log) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(c.dir.join("monitor.log"))
    {
        let _ = rustix::stdio::dup2_stderr(&log);
    }
    // Our own session: a Ctrl-C at the terminal of an attached CLI reaches the CLI (which
    // passes it on to the container), never the monitor.
    let _ = nix::unistd::setsid();
    let mut running = match start(engine, &mut c, tty_size) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(status, "error {e:#}");
            return 125;
        }
    };
    let clients = if attach {
        Clients::holding()
    } else {
        Clients::default()
    };
    let socket = crate::attach::socket_path(engine, &c);
    match crate::attach::listen(&socket) {
        Ok(listener) => serve_attach(listener, &clients, &mut running),
        Err(e) => eprintln!("netctl: attach socket of {}: {e:#}", c.config.name),
    }
    let _ = writeln!(status, "ok");
    drop(status);
    let code = supervise(&c, running, &clients);
    finish(engine, &mut c, code);
    clients.finish(code);
    let _ = fs::remove_file(socket);
    code
}

/// Serves attach clients: the container's output, and its stdin for `-i`.
fn serve_attach(listener: UnixListener, clients: &Clients, r: &mut Running) {
    let (stdin, terminal) = match &r.output {
        Output::Pipes(..) => (
            r.stdin.take().map(|f| crate::attach::Stdin::new(f, true)),
            None,
        ),
        Output::Tty(master) => (
            master
                .try_clone()
                .ok()
                .map(|f| crate::attach::Stdin::new(f, false)),
            master.try_clone().ok(),
        ),
    };
    crate::attach::serve(listener, clients.clone(), stdin, terminal);
}

fn start(
    engine: &Engine,
    c: &mut Container,
    tty_size: Option<(u16, u16)>,
) -> anyhow::Result<Running> {
    let lock = engine.containers.lock_one(c)?;
    c.reload()?;
    if c.is_running() {
        bail!("container {} is already running", c.config.name);
    }
    let (ports, bound) = bind_ports(&c.config.ports)?;
    c.state.ports = bound;
    engine.setup_network(c, &lock)?;
    let spawned = engine
        .write_etc(c)
        .and_then(|()| spawn(engine, c, tty_size));
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            engine.teardown_network(c, &lock);
            if let Some(cg) = crate::cgroup::Cgroup::of(&c.config.id) {
                cg.remove();
            }
            let _ = fs::remove_file(console_path(engine, c));
            c.state.ports.clear();
            c.state.error = format!("{e:#}");
            let _ = c.save_state();
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
    c.save_state()?;
    drop(lock);
    Ok(Running {
        child: spawned.child,
        output: spawned.output,
        _ports: ports,
        stdin: spawned.held_stdin,
    })
}

/// Binds each published host port (choosing one from the ephemeral range for port 0) and
/// keeps the sockets, so no other program or container can take them while this one runs.
/// Without SO_REUSEADDR and never listening: a port anyone else holds is refused, and no
/// connection is ever accepted here (the firewall sends them to the container).
fn bind_ports(ports: &[PortBinding]) -> anyhow::Result<(Vec<OwnedFd>, Vec<PortBinding>)> {
    use rustix::net::{bind, getsockname, socket_with, AddressFamily, SocketFlags, SocketType};
    let mut fds = Vec::new();
    let mut bound = Vec::new();
    for p in ports {
        let ip: std::net::IpAddr = if p.host_ip.is_empty() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            p.host_ip
                .parse()
                .with_context(|| format!("host IP {:?} is not an address", p.host_ip))?
        };
        let family = if ip.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let ty = if p.protocol == "udp" {
            SocketType::DGRAM
        } else {
            SocketType::STREAM
        };
        let fd = socket_with(family, ty, SocketFlags::CLOEXEC, None)?;
        let addr = std::net::SocketAddr::new(ip, p.host_port);
        if let Err(e) = bind(&fd, &addr) {
            bail!(
                "driver failed programming external connectivity: Bind for {addr} failed: port is already allocated ({e})"
            );
        }
        let port = std::net::SocketAddr::try_from(getsockname(&fd)?)
            .map(|s| s.port())
            .unwrap_or(p.host_port);
        bound.push(PortBinding {
            host_port: port,
            ..p.clone()
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
        .run_dir
        .join("console")
        .join(format!("{}.sock", c.config.short_id()))
}

fn container_stdio(engine: &Engine, c: &Container) -> anyhow::Result<Stdio3> {
    if c.config.tty {
        let path = console_path(engine, c);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let _ = fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        return Ok(Stdio3 {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr_path: PathBuf::from("/dev/null"),
            output: Pending::Console(listener),
            keep: None,
            held_stdin: None,
        });
    }
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let stderr_path = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        err_w.as_raw_fd()
    ));
    let (stdin, held_stdin) = if c.config.interactive {
        let (r, w) = std::io::pipe()?;
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
fn init_mounts(engine: &Engine, c: &Container) -> anyhow::Result<Vec<crate::init::Mount>> {
    use crate::volume::{MountKind, VolumeStore};
    let volumes = VolumeStore::open(&engine.root)?;
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
            Ok(crate::init::Mount {
                source,
                target: m.target.clone(),
                readonly: m.readonly,
                copy_up,
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

/// Writes the init spec and starts stage 1; waits until the command runs or failed.
fn spawn(engine: &Engine, c: &Container, tty_size: Option<(u16, u16)>) -> anyhow::Result<Spawned> {
    let images = ImageStore::open(&engine.root)?;
    let image = images.find(&c.config.image)?;
    let lower = image
        .layers
        .iter()
        .rev()
        .map(|l| images.layers.path(l))
        .collect();
    for d in ["rootfs", "upper", "work"] {
        fs::create_dir_all(c.dir.join(d))?;
    }
    let io = container_stdio(engine, c)?;
    let spec = InitSpec {
        rootfs: c.dir.join("rootfs"),
        lower,
        upper: c.dir.join("upper"),
        work: c.dir.join("work"),
        netns: engine.netns_of(c)?,
        hostname: (c.config.net_mode != NetMode::Host).then(|| c.config.hostname.clone()),
        etc: c.dir.clone(),
        stderr: io.stderr_path,
        command: c.config.command.clone(),
        env: c.config.env.clone(),
        workdir: c.config.workdir.clone(),
        tty: c.config.tty,
        console_socket: c.config.tty.then(|| console_path(engine, c)),
        tty_size,
        mounts: init_mounts(engine, c)?,
    };
    let spec_path = c.dir.join("init.json");
    netctl_cni::fsutil::write_atomic(&spec_path, &serde_json::to_vec(&spec)?)?;
    let (status_r, status_w) = std::io::pipe()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("__init")
        .arg(&spec_path)
        .env_clear()
        .stdin(io.stdin)
        .stdout(io.stdout)
        .stderr(status_w)
        .spawn()
        .context("start the container")?;
    let report = read_status(status_r).and_then(|pid| match io.output {
        Pending::Console(listener) => {
            let master = crate::console::receive(&listener);
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

/// Reads the stages' reports until end of file: `pid N`, and `error ...` on failure.
fn read_status(r: std::io::PipeReader) -> anyhow::Result<u32> {
    let mut pid = None;
    for line in BufReader::new(r).lines() {
        let line = line?;
        if let Some(msg) = line.strip_prefix("error ") {
            bail!("failed to create task for container: {msg}");
        }
        if let Some(p) = line.strip_prefix("pid ") {
            pid = p.parse().ok();
        }
    }
    pid.context("the container's process ended before it started")
}

/// Copies the container's output into the log and to attached clients; returns the exit
/// code.
fn supervise(c: &Container, mut r: Running, clients: &Clients) -> i32 {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(c.log_path())
        .map(|f| Arc::new(Mutex::new(f)));
    let Ok(log) = log else {
        return wait(&mut r.child);
    };
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
    log: Arc<Mutex<File>>,
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
            pending.extend_from_slice(&buf[..n]);
            let cut = pending
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let lines: Vec<u8> = pending.drain(..cut).collect();
            write_log(&sink.log, &lines, name);
        }
        write_log(&sink.log, &pending, name);
    })
}

/// One json-file record per line: `{"log":"...\n","stream":"stdout","time":"..."}`.
fn write_log(log: &Mutex<File>, bytes: &[u8], stream: &str) {
    if bytes.is_empty() {
        return;
    }
    let time = now_rfc3339();
    let mut out = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let rec = json!({"log": String::from_utf8_lossy(line), "stream": stream, "time": time});
        out.extend_from_slice(rec.to_string().as_bytes());
        out.push(b'\n');
    }
    if let Ok(mut f) = log.lock() {
        let _ = f.write_all(&out);
    }
}

/// Records the exit, detaches the networks, and removes an `--rm` container.
fn finish(engine: &Engine, c: &mut Container, code: i32) {
    let Ok(lock) = engine.containers.lock_one(c) else {
        return;
    };
    let _ = c.reload();
    engine.teardown_network(c, &lock);
    c.state.status = Status::Exited;
    c.state.exit_code = code;
    c.state.finished_at = now_rfc3339();
    c.state.pid = 0;
    c.state.paused = false;
    c.state.ports.clear();
    if let Some(cg) = crate::cgroup::Cgroup::of(&c.config.id) {
        cg.remove();
    }
    if let Err(e) = c.save_state() {
        eprintln!("netctl: record the exit of {}: {e:#}", c.config.name);
    }
    if c.config.auto_remove {
        if let Err(e) = engine.remove_container(c, &lock, true) {
            eprintln!("netctl: remove {}: {e:#}", c.config.name);
        }
    }
    drop(lock);
}
