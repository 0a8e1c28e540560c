//! The container's process, in two stages so that the container's first process is PID 1 of
//! its own PID namespace while the monitor stays in the host's namespaces:
//!
//! 1. `__init SPEC` unshares mount, UTS, IPC and PID namespaces, joins the network
//!    namespace, mounts the overlay root, /dev, /sys and the /etc files, and starts stage 2;
//!    it reports `pid N` (stage 2's host PID) and waits, exiting with stage 2's status.
//! 2. `__init2 SPEC` (PID 1) mounts /proc with the usual masks, pivots into the root, drops
//!    to Docker's default capabilities with no_new_privs and execs the command.
//!
//! Both report on their stderr, which is the monitor's status pipe: `error MESSAGE` on
//! failure; end of file (stage 2's copy closes on exec) means the command runs.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// Everything the two stages need, written by the monitor as `<container>/init.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// Mount point of the container's root.
    pub rootfs: PathBuf,
    /// Image layers, top first.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer and overlay work folder.
    pub upper: PathBuf,
    /// overlayfs work folder.
    pub work: PathBuf,
    /// Network namespace to join; none for the host's.
    pub netns: Option<PathBuf>,
    /// Hostname to set; none keeps the host's (`--net host`).
    pub hostname: Option<String>,
    /// Folder with `hosts`, `hostname`, `resolv.conf` for /etc.
    pub etc: PathBuf,
    /// What stage 2 opens as the command's stderr.
    pub stderr: PathBuf,
    /// Program and arguments.
    pub command: Vec<String>,
    /// KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory (made when missing, as Docker does).
    pub workdir: String,
    /// Whether stdin is a terminal to make the controlling one.
    pub tty: bool,
    /// With `tty`: where to send the master of the terminal made in the container.
    pub console_socket: Option<PathBuf>,
    /// With `tty`: its size (rows, columns), set before the command runs.
    #[serde(default)]
    pub tty_size: Option<(u16, u16)>,
    /// Bind mounts, volumes and tmpfs, in order.
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

/// One user mount as stage 1 makes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mount {
    /// Host path to bind; none for a tmpfs.
    pub source: Option<PathBuf>,
    /// Absolute path in the container.
    pub target: String,
    /// Read-only.
    pub readonly: bool,
    /// An empty volume: fill it with what the image has at `target` first.
    pub copy_up: bool,
}

/// Docker's default capabilities but CAP_MKNOD: Docker lets a container make device nodes
/// because its device cgroup then refuses to open any but the usual few; netctl has no
/// device cgroup (joining one costs an RCU grace period, ~10 ms, on every start), so a
/// container that could mknod could open the host's disks.
fn default_caps() -> rustix::thread::CapabilitySet {
    use rustix::thread::CapabilitySet as C;
    C::CHOWN
        | C::DAC_OVERRIDE
        | C::FSETID
        | C::FOWNER
        | C::NET_RAW
        | C::SETGID
        | C::SETUID
        | C::SETFCAP
        | C::SETPCAP
        | C::NET_BIND_SERVICE
        | C::SYS_CHROOT
        | C::KILL
        | C::AUDIT_WRITE
}

fn read_spec(path: &Path) -> anyhow::Result<InitSpec> {
    let bytes = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// Our stderr as a close-on-exec file: the status pipe.
fn status_channel() -> anyhow::Result<File> {
    Ok(File::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

/// Stage 1; returns the exit code.
pub fn stage1(spec_path: &Path) -> i32 {
    let mut status = match status_channel() {
        Ok(s) => s,
        Err(_) => return 127,
    };
    let child = read_spec(spec_path).and_then(|spec| {
        prepare(&spec)?;
        Command::new("/proc/self/exe")
            .arg("__init2")
            .arg(spec_path)
            .spawn()
            .context("start the container's first process")
    });
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(status, "error {e:#}");
            return 127;
        }
    };
    let _ = writeln!(status, "pid {}", child.id());
    drop(status);
    if let Ok(null) = File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    match child.wait() {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 127,
    }
}

/// Namespaces and mounts, all but /proc (which must be mounted from inside the new PID
/// namespace).
fn prepare(spec: &InitSpec) -> anyhow::Result<()> {
    nix::sched::unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWPID,
    )
    .context("unshare namespaces")?;
    if let Some(ns) = &spec.netns {
        let f = File::open(ns).with_context(|| format!("open {}", ns.display()))?;
        nix::sched::setns(f, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("join {}", ns.display()))?;
    }
    if let Some(h) = &spec.hostname {
        nix::unistd::sethostname(h).context("set the hostname")?;
    }
    mnt(
        None::<&str>,
        "/",
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    mount_root(spec)?;
    mount_dev(&spec.rootfs)?;
    let sys = ensure_dir(&spec.rootfs, "sys")?;
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(Some("sysfs"), &sys, Some("sysfs"), ro, None)?;
    for name in ["hosts", "hostname", "resolv.conf"] {
        let target = ensure_file(&spec.rootfs, &format!("etc/{name}"))?;
        mnt(
            Some(&spec.etc.join(name)),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    for m in &spec.mounts {
        user_mount(&spec.rootfs, m)?;
    }
    Ok(())
}

fn user_mount(root: &Path, m: &Mount) -> anyhow::Result<()> {
    let rel = m.target.trim_start_matches('/');
    let Some(source) = &m.source else {
        let target = ensure_dir(root, rel)?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        return mnt(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            flags,
            Some("mode=1777"),
        );
    };
    let target = if source.is_dir() {
        ensure_dir(root, rel)?
    } else {
        ensure_file(root, rel)?
    };
    if m.copy_up && target.is_dir() {
        crate::volume::copy_up(&target, source)
            .with_context(|| format!("copy the image's {} into its volume", m.target))?;
    }
    mnt(
        Some(source),
        &target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if m.readonly {
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mnt(None::<&str>, &target, None, ro, None)?;
    }
    Ok(())
}

fn mnt<P: AsRef<Path> + ?Sized, Q: AsRef<Path> + ?Sized>(
    source: Option<&P>,
    target: &Q,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> anyhow::Result<()> {
    let target = target.as_ref();
    mount(source.map(|s| s.as_ref()), target, fstype, flags, data)
        .with_context(|| format!("mount {} on {}", fstype.unwrap_or("bind"), target.display()))
}

fn mount_root(spec: &InitSpec) -> anyhow::Result<()> {
    let lower: Vec<String> = spec.lower.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        spec.upper.display(),
        spec.work.display()
    );
    // nodev: a device node an image ships (a layer may hold one) opens nothing.
    mnt(
        Some("overlay"),
        &spec.rootfs,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(&data),
    )
}

fn ensure_dir(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = root.join(rel);
    fs::create_dir_all(&p).with_context(|| format!("create /{rel} in the container"))?;
    Ok(p)
}

fn ensure_file(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    if fs::symlink_metadata(&p).is_ok_and(|m| !m.is_file()) {
        let _ = fs::remove_file(&p);
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .with_context(|| format!("create /{rel} in the container"))?;
    Ok(p)
}

/// A minimal /dev: the usual character devices, /dev/pts (its own instance), /dev/shm,
/// /dev/mqueue and the /proc/self/fd links.
fn mount_dev(root: &Path) -> anyhow::Result<()> {
    use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};
    let dev = ensure_dir(root, "dev")?;
    mnt(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknodat(
            CWD,
            dev.join(name),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            makedev(major, minor),
        )
        .with_context(|| format!("make /dev/{name}"))?;
        rustix::fs::chmod(dev.join(name), Mode::from_raw_mode(0o666))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(name))?;
    }
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let pts = ensure_dir(root, "dev/pts")?;
    mnt(
        Some("devpts"),
        &pts,
        Some("devpts"),
        nosuid,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = ensure_dir(root, "dev/shm")?;
    mnt(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        nosuid | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    let mq = ensure_dir(root, "dev/mqueue")?;
    mnt(
        Some("mqueue"),
        &mq,
        Some("mqueue"),
        nosuid | MsFlags::MS_NODEV,
        None,
    )
}

/// Stage 2 (PID 1): only returns when something failed; the exit code.
pub fn stage2(spec_path: &Path) -> i32 {
    let Ok(mut status) = status_channel() else {
        return 127;
    };
    let result = read_spec(spec_path).and_then(|spec| {
        let err = OpenOptions::new()
            .append(true)
            .open(&spec.stderr)
            .with_context(|| format!("open {}", spec.stderr.display()))?;
        rustix::stdio::dup2_stderr(&err)?;
        enter(&spec)?;
        Ok(spec)
    });
    let (msg, code) = match result {
        Err(e) => (format!("{e:#}"), 127),
        Ok(spec) => exec(&spec),
    };
    let _ = writeln!(status, "error {msg}");
    code
}

fn enter(spec: &InitSpec) -> anyhow::Result<()> {
    let root = &spec.rootfs;
    let proc_dir = ensure_dir(root, "proc")?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mnt(Some("proc"), &proc_dir, Some("proc"), flags, None)?;
    mask_proc(root)?;
    if let Some(sock) = &spec.console_socket {
        crate::console::make_in_container(root, sock, spec.tty_size)?;
    }
    nix::unistd::chdir(root).context("enter the root")?;
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the host's root")?;
    nix::unistd::chdir("/")?;
    if spec.tty {
        nix::unistd::setsid()?;
        rustix::process::ioctl_tiocsctty(std::io::stdin()).context("take the terminal")?;
    }
    drop_privileges()?;
    let wd = if spec.workdir.is_empty() {
        "/"
    } else {
        &spec.workdir
    };
    fs::create_dir_all(wd).with_context(|| format!("create the working directory {wd}"))?;
    nix::unistd::chdir(wd).with_context(|| format!("enter the working directory {wd}"))?;
    Ok(())
}

/// Docker's masked and read-only /proc and /sys paths.
fn mask_proc(root: &Path) -> anyhow::Result<()> {
    let null = root.join("dev/null");
    for p in [
        "proc/kcore",
        "proc/keys",
        "proc/latency_stats",
        "proc/timer_list",
        "proc/timer_stats",
        "proc/sched_debug",
    ] {
        let target = root.join(p);
        if target.is_file() {
            mnt(Some(&null), &target, None, MsFlags::MS_BIND, None)?;
        }
    }
    for p in ["proc/acpi", "proc/scsi", "sys/firmware"] {
        let target = root.join(p);
        if target.is_dir() {
            mnt(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )?;
        }
    }
    for p in [
        "proc/bus",
        "proc/fs",
        "proc/irq",
        "proc/sys",
        "proc/sysrq-trigger",
    ] {
        let target = root.join(p);
        if target.exists() {
            mnt(
                Some(&target),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mnt(None::<&str>, &target, None, ro, None)?;
        }
    }
    Ok(())
}

/// Docker's default capability set and no_new_privs, for this process and what it execs.
pub fn drop_privileges() -> anyhow::Result<()> {
    use rustix::thread::{self as t, CapabilitySet, CapabilitySets};
    let keep = default_caps();
    for cap in CapabilitySet::all().iter() {
        if !keep.contains(cap) && t::capability_is_in_bounding_set(cap).unwrap_or(false) {
            t::remove_capability_from_bounding_set(cap).context("drop a capability")?;
        }
    }
    t::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .context("set capabilities")?;
    t::set_no_new_privs(true).context("set no_new_privs")?;
    Ok(())
}

/// Replaces this process with the command; returns the error and Docker's exit code.
fn exec(spec: &InitSpec) -> (String, i32) {
    let Some((prog, args)) = spec.command.split_first() else {
        return ("no command specified".into(), 127);
    };
    let env = spec
        .env
        .iter()
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    let err = Command::new(prog).args(args).env_clear().envs(env).exec();
    let code = if err.kind() == std::io::ErrorKind::PermissionDenied {
        126
    } else {
        127
    };
    let why = if err.kind() == std::io::ErrorKind::NotFound {
        format!(
            "exec: {:?}: executable file not found in $PATH",
            OsStr::new(prog)
        )
    } else {
        format!("exec {prog:?}: {err}")
    };
    (why, code)
}
