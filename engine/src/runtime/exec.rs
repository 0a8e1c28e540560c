//! `exec`: a process in a running container's namespaces, root and capabilities. It is
//! started by a helper process ([`Internal::Exec`]), so the caller — the CLI, the monitor
//! running a healthcheck, a daemon thread — never enters the container's namespaces or
//! drops its own capabilities. The helper runs from a read-only view of the binary (see
//! [`super::sealed`]), joins the namespaces, takes the container's user, capabilities and
//! seccomp filter, starts the command as its child (so that it is inside the container's
//! PID namespace) and exits with its exit code. It reports a command that cannot be run on
//! descriptor 3, as the container's init stages report theirs.

use netctl_cni::process::CleanSignals;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use super::privileges::Privileges;
use super::seccomp::Seccomp;
use super::{Failure, Internal, Report};
use crate::container::Container;
use crate::engine::Engine;
use crate::error::{invalid, state, Context, Error, Result};

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
    /// `-u`: who runs it (the container's user when None).
    pub user: Option<&'a str>,
    /// `-t`: a terminal of these rows and columns in the container's own devpts, between
    /// our stdio and the command.
    pub tty: Option<(u16, u16)>,
    /// Where later sizes of that terminal come from ([`Resizer`]).
    pub resize: Option<&'a Path>,
}

/// What the helper is asked to run, as it travels in its argument.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Host PID of the container's process, whose namespaces are joined.
    pub pid: u32,
    /// The container's name, for messages.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// The whole environment, KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub workdir: String,
    /// Who runs it, with which capabilities.
    pub privileges: Privileges,
    /// Its system call filter.
    pub seccomp: Seccomp,
    /// `-t`: a terminal of these rows and columns.
    #[serde(default)]
    pub tty: Option<(u16, u16)>,
    /// A FIFO the terminal's later sizes come through, `ROWS COLS` lines ([`Resizer`]).
    #[serde(default)]
    pub resize: Option<PathBuf>,
}

/// The way to resize an exec's terminal after it starts (`exec resize`): a FIFO beside the
/// engine's run state that the helper reads `ROWS COLS` lines from; removed when dropped.
#[derive(Debug)]
pub struct Resizer {
    path: PathBuf,
}

impl Resizer {
    /// A new channel for exec instance `id`.
    pub fn create(engine: &Engine, id: &str) -> Result<Resizer> {
        let dir = engine.run_dir().join("exec");
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{id}.resize"));
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .ctx(|| format!("make {}", path.display()))?;
        Ok(Resizer { path })
    }

    /// Where the helper reads from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the terminal a new size; a conflict once the command has ended.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if rows == 0 || cols == 0 {
            invalid!("a terminal needs at least one row and one column");
        }
        // Without a reader (the command ended) the open fails at once instead of waiting.
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&self.path)
            .map_err(|_| Error::State("the exec's command is not running".into()))?;
        fifo.write_all(format!("{rows} {cols}\n").as_bytes())
            .ctx(|| "send the terminal's size".into())
    }
}

impl Drop for Resizer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs the command inside the container, with our stdout and stderr (and stdin with
/// `interactive`); its exit code, or [`Error::CommandNotFound`] /
/// [`Error::CommandNotRunnable`].
pub fn exec(engine: &Engine, c: &Container, req: &ExecRequest) -> Result<i32> {
    let stdin = if req.interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let child = spawn(engine, c, req, (stdin, Stdio::inherit(), Stdio::inherit()))?;
    finish(engine, c, child)
}

/// Starts the command inside the container with `stdio` (pipes a server relays, say) and
/// returns its helper once the command runs; [`finish`] waits for it.
pub fn spawn(
    engine: &Engine,
    c: &Container,
    req: &ExecRequest,
    stdio: (Stdio, Stdio, Stdio),
) -> Result<Child> {
    start(engine, c, req, stdio, false)
}

/// Waits for a command [`spawn`] started: its exit code, recorded as Docker's `exec_die`.
pub fn finish(engine: &Engine, c: &Container, mut child: Child) -> Result<i32> {
    let code = exit_code(child.wait().ctx(|| "wait for the command".into())?);
    let exit = code.to_string();
    crate::events::container(engine, c, "exec_die", &[("exitCode", &exit)]);
    Ok(code)
}

/// `exec -d`: starts the command with no stdio and returns once it runs.
pub fn exec_detached(engine: &Engine, c: &Container, req: &ExecRequest) -> Result<()> {
    start(
        engine,
        c,
        req,
        (Stdio::null(), Stdio::null(), Stdio::null()),
        true,
    )?;
    Ok(())
}

/// What a command run by [`run_captured`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Its exit code; None when it was killed at the deadline.
    pub code: Option<i32>,
    /// The start of its stdout and stderr, together.
    pub output: String,
}

/// How much of a captured command's output is kept (Docker's 4 KiB for healthchecks).
const CAPTURED_MAX: usize = 4096;

/// Runs the command inside the container with its output captured (the start of it) and a
/// deadline, after which it is killed with its helper (a healthcheck).
pub fn run_captured(
    engine: &Engine,
    c: &Container,
    req: &ExecRequest,
    deadline: Duration,
) -> Result<Captured> {
    let (reader, writer) = std::io::pipe().ctx(|| "make a pipe for the output".into())?;
    let err = writer.try_clone().ctx(|| "share the output pipe".into())?;
    let child = start(
        engine,
        c,
        req,
        (Stdio::null(), writer.into(), err.into()),
        true,
    )?;
    let collect = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = reader.take(CAPTURED_MAX as u64).read_to_end(&mut kept);
        String::from_utf8_lossy(&kept).into_owned()
    });
    let code = wait_or_kill(child, deadline);
    let output = collect.join().unwrap_or_default();
    Ok(Captured { code, output })
}

/// Waits for the helper until `deadline`; then kills its process group (the helper and
/// the command) and reaps it.
fn wait_or_kill(mut child: Child, deadline: Duration) -> Option<i32> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pid = rustix::process::Pid::from_raw(child.id() as i32)?;
    if let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        let limit = Timespec::try_from(deadline).ok();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        if !matches!(poll(&mut fds, limit.as_ref()), Ok(1..)) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            let _ = child.wait();
            return None;
        }
    }
    child.wait().ok().map(exit_code)
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Checks the container, starts the helper with `stdio` (in a process group of its own
/// with `own_group`, never for a command that reads a terminal) and waits until the
/// command runs (or could not be run).
fn start(
    engine: &Engine,
    c: &Container,
    req: &ExecRequest,
    (stdin, stdout, stderr): (Stdio, Stdio, Stdio),
    own_group: bool,
) -> Result<Child> {
    let spec = spec_of(c, req)?;
    let json = serde_json::to_string(&spec).ctx(|| "encode the exec spec".into())?;
    // Docker's words: the program, a space, the arguments.
    let cmd = match req.command.split_first() {
        Some((prog, args)) => format!("{prog} {}", args.join(" ")),
        None => String::new(),
    };
    crate::events::container(engine, c, &format!("exec_create: {cmd}"), &[]);
    crate::events::container(engine, c, &format!("exec_start: {cmd}"), &[]);
    let mut cmd = Command::new(&engine.config.helper);
    cmd.args(Internal::Exec(json).args())
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .clean_signals();
    if own_group {
        cmd.process_group(0);
    }
    super::spawn_helper(cmd)
}

/// The helper's spec: Docker's refusals for a container that cannot take an exec.
fn spec_of(c: &Container, req: &ExecRequest) -> Result<ExecSpec> {
    if !c.is_running() {
        state!("container {} is not running", c.config.id);
    }
    if c.state.paused {
        state!(
            "Container {} is paused, unpause the container before exec",
            c.config.id
        );
    }
    if req.command.is_empty() {
        invalid!("no command given: netctl exec CONTAINER COMMAND [ARG...]");
    }
    let mut privileges = c.config.privileges.clone();
    if let Some(user) = req.user {
        privileges.user = user.to_string();
    }
    let mut env = c.config.env.clone();
    env.extend(req.env.iter().cloned());
    if req.tty.is_some() && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    Ok(ExecSpec {
        pid: c.process_pid()?,
        name: c.config.name.clone(),
        command: req.command.to_vec(),
        env,
        workdir: req.workdir.unwrap_or(&c.config.workdir).to_string(),
        privileges,
        seccomp: c.config.seccomp.clone(),
        tty: req.tty,
        resize: req
            .resize
            .filter(|_| req.tty.is_some())
            .map(Path::to_path_buf),
    })
}

/// The helper process: its exit code is the command's (127/126 reported when it cannot be
/// run).
pub fn helper(spec_json: &str) -> i32 {
    let mut status = super::helper_status();
    let child = serde_json::from_str::<ExecSpec>(spec_json)
        .ctx(|| "parse the exec spec".into())
        .and_then(|spec| {
            super::sealed::reexec_read_only()?;
            // Opened on the host's side, before the container's mounts are joined.
            let sizes = spec.resize.as_deref().map(open_sizes).transpose()?;
            Ok((enter_and_spawn(&spec)?, sizes))
        });
    match child {
        Ok(((mut child, master), sizes)) => {
            drop(status);
            if let Some(master) = master {
                relay_terminal(master, sizes);
            }
            child.wait().map_or(127, exit_code)
        }
        Err(e) => {
            Report::Failed(Failure::from(&e)).send(&mut status);
            match e {
                Error::CommandNotFound(_) => 127,
                Error::CommandNotRunnable { .. } => 126,
                _ => 125,
            }
        }
    }
}

/// The resize FIFO, for reading, and a writer of our own that keeps it from reporting
/// hang-up while no one else has it open.
fn open_sizes(path: &Path) -> Result<(File, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(nonblock)
            .open(path)
            .ctx(|| format!("open {}", path.display()))
    };
    let reader = open(false)?;
    Ok((reader, open(true)?))
}

/// Applies each `ROWS COLS` line read from `sizes` to the terminal.
fn apply_sizes(sizes: &mut File, master: &File) {
    let mut buf = [0u8; 512];
    let Ok(n @ 1..) = sizes.read(&mut buf) else {
        return;
    };
    for line in String::from_utf8_lossy(&buf[..n]).lines() {
        let mut it = line.split_whitespace().map(str::parse::<u16>);
        if let (Some(Ok(rows)), Some(Ok(cols))) = (it.next(), it.next()) {
            let _ = rustix::termios::tcsetwinsize(master, super::attach::winsize(rows, cols));
        }
    }
}

/// Copies our stdin to the terminal's master and the master to our stdout until the
/// command's side is closed, and applies new sizes from `sizes` — in this one thread (a
/// process that joined a PID namespace cannot start threads).
fn relay_terminal(mut master: File, mut sizes: Option<(File, File)>) {
    use rustix::event::{poll, PollFd, PollFlags};
    use std::io::Write;
    let stdin = std::io::stdin();
    let mut input_open = true;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 8192];
    loop {
        let stdin_fd = stdin.as_fd();
        let mut fds = vec![PollFd::new(&master, PollFlags::IN)];
        if let Some((reader, _)) = &sizes {
            fds.push(PollFd::new(reader, PollFlags::IN));
        }
        if input_open {
            fds.push(PollFd::new(&stdin_fd, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        let from_master = fds[0].revents();
        let resized = sizes.is_some() && !fds[1].revents().is_empty();
        let from_input = input_open.then(|| fds[fds.len() - 1].revents());
        drop(fds);
        if resized {
            if let Some((reader, _)) = sizes.as_mut() {
                apply_sizes(reader, &master);
            }
        }
        if !from_master.is_empty() {
            // EIO once the last holder of the slave end is gone.
            match master.read(&mut buf) {
                Ok(n @ 1..) => {
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
        if let Some(ev) = from_input.filter(|e| !e.is_empty()) {
            match rustix::io::read(stdin_fd, &mut buf) {
                Ok(n @ 1..) => {
                    let _ = master.write_all(&buf[..n]);
                }
                _ => input_open = false,
            }
            if ev.contains(PollFlags::HUP) && !ev.contains(PollFlags::IN) {
                input_open = false;
            }
        }
    }
}

/// Joins the container's namespaces, takes its identity and starts the command (with `-t`,
/// on a new terminal of the container's devpts, whose master is returned).
fn enter_and_spawn(spec: &ExecSpec) -> Result<(Child, Option<File>)> {
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let files = kinds
        .iter()
        .map(|(k, _)| File::open(format!("/proc/{}/ns/{k}", spec.pid)))
        .collect::<std::io::Result<Vec<_>>>()
        .ctx(|| format!("open the namespaces of {}", spec.name))?;
    for (f, (k, flag)) in files.into_iter().zip(kinds) {
        nix::sched::setns(f, flag).ctx(|| format!("join the {k} namespace"))?;
    }
    // The terminal is made while we are still root in the container.
    let terminal = spec
        .tty
        .map(|size| super::console::pair(Path::new("/dev/pts"), Some(size)))
        .transpose()?;
    let filters = super::init::filters_for(&spec.seccomp, &spec.privileges)?;
    let id = super::privileges::assume(&spec.privileges)?;
    let env = super::init::with_home(&spec.env, &id);
    let vars = env.iter().map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    let Some((prog, args)) = spec.command.split_first() else {
        invalid!("no command given");
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(vars)
        .current_dir(&spec.workdir)
        .clean_signals();
    let master = match terminal {
        Some((master, slave)) => {
            let io = |f: &File| f.try_clone().map(Stdio::from);
            let io = (io(&slave), io(&slave), io(&slave));
            let (Ok(i), Ok(o), Ok(e)) = io else {
                invalid!("share the terminal with the command");
            };
            cmd.stdin(i).stdout(o).stderr(e);
            #[allow(unsafe_code)]
            // SAFETY: between fork and exec this only calls setsid and the TIOCSCTTY ioctl,
            // both async-signal-safe, allocating nothing.
            unsafe {
                cmd.pre_exec(|| {
                    rustix::process::setsid()?;
                    rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                    Ok(())
                });
            }
            Some(master)
        }
        None => None,
    };
    super::init::with_seccomp(&mut cmd, filters);
    let child = cmd.spawn().map_err(|e| super::init::exec_error(prog, &e))?;
    Ok((child, master))
}
