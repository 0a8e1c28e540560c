//! The container's process, in two stages so that the container's first process is PID 1 of
//! its own PID namespace while the monitor stays in the host's namespaces:
//!
//! 1. [`stage1`] unshares mount, UTS, IPC and PID namespaces, joins the network namespace,
//!    mounts the overlay root, /dev, /sys, the /etc files and the user's mounts, and starts
//!    stage 2; it reports [`Report::Started`] with stage 2's host PID and waits, exiting
//!    with stage 2's status.
//! 2. [`stage2`] (PID 1) mounts /proc with the usual masks, pivots into the root, drops to
//!    Docker's default capabilities with no_new_privs and execs the command.
//!
//! Both report on their stderr, which is the monitor's status pipe: [`Report::Failed`] on
//! failure; end of file (stage 2's copy closes on exec) means the command runs.

use netctl_cni::process::CleanSignals;
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use super::privileges::{Identity, Privileges};
use super::{Failure, Report};
use crate::error::{Context, Error, Result};
use crate::runtime::rootfs::{fd_path, Links, Rootfs, Want};

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
    /// Which system calls its processes may make.
    #[serde(default)]
    pub seccomp: super::seccomp::Seccomp,
    /// Its user, groups and capabilities.
    #[serde(default)]
    pub privileges: Privileges,
    /// The root file system read-only (`--read-only`; its mounts keep their own modes).
    #[serde(default)]
    pub read_only: bool,
    /// The domain name to set (`--domainname`).
    #[serde(default)]
    pub domainname: Option<String>,
    /// Stay in the host's UTS namespace (`--uts host`).
    #[serde(default)]
    pub host_uts: bool,
    /// Stage 2 stays as PID 1, reaping orphans and passing signals on, and the command
    /// runs as its child (`--init`).
    #[serde(default)]
    pub init: bool,
    /// The container's ID, which names its cgroups.
    #[serde(default)]
    pub id: String,
    /// Its resource limits, enforced by cgroups stage 2 joins.
    #[serde(default)]
    pub resources: super::resources::Resources,
    /// Its PID namespace.
    #[serde(default)]
    pub pid_ns: Namespace,
    /// Its IPC namespace.
    #[serde(default)]
    pub ipc_ns: Namespace,
    /// The size of /dev/shm in bytes.
    #[serde(default = "default_shm")]
    pub shm_size: u64,
    /// `--ulimit`.
    #[serde(default)]
    pub ulimits: Vec<super::kernel::Ulimit>,
    /// `--sysctl`.
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--device`.
    #[serde(default)]
    pub devices: Vec<super::kernel::DeviceMapping>,
}

/// Docker's /dev/shm size.
pub const DEFAULT_SHM: u64 = 64 << 20;

fn default_shm() -> u64 {
    DEFAULT_SHM
}

/// Where a namespace other than the network's comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Namespace {
    /// A new one of its own.
    #[default]
    Own,
    /// The host's (the monitor's).
    Host,
    /// Another process's (`/proc/PID/ns/...`).
    Join(PathBuf),
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
    /// A tmpfs's options (`size=64m,noexec`), as [`tmpfs_options`] reads them.
    #[serde(default)]
    pub options: String,
}

/// A tmpfs's options as Docker takes them (`--tmpfs /run:size=64m,mode=1770,noexec`): mount
/// flags (ro, noexec, nosuid, nodev and their opposites, atime and sync choices) and
/// tmpfs's own settings (size, mode, uid, gid, nr_inodes, nr_blocks), over Docker's
/// defaults (nosuid, nodev, mode 1777). Anything else is refused.
pub fn tmpfs_options(options: &str) -> Result<(MsFlags, String)> {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let mut data: Vec<(String, String)> = vec![("mode".into(), "1777".into())];
    for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (set, clear) = match o {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            _ => {
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                let known = ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"];
                let plain = !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'.');
                if !known.contains(&k) || !plain {
                    return Err(Error::Invalid(format!(
                        "invalid tmpfs option {o:?}: use size=, mode=, uid=, gid=, nr_inodes=, nr_blocks= or a mount flag (ro, noexec, nosuid, nodev ...)"
                    )));
                }
                data.retain(|(key, _)| key != k);
                data.push((k.to_string(), v.to_string()));
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    let data: Vec<String> = data.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok((flags, data.join(",")))
}

fn read_spec(path: &Path) -> Result<InitSpec> {
    let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).ctx(|| format!("parse {}", path.display()))
}

/// Our stderr as a close-on-exec file: the status pipe.
fn status_channel() -> Result<File> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned();
    Ok(File::from(fd.ctx(|| "open the status pipe".into())?))
}

/// Stage 1; returns the exit code.
pub fn stage1(spec_path: &Path) -> i32 {
    let mut status = match status_channel() {
        Ok(s) => s,
        Err(_) => return 127,
    };
    let child = read_spec(spec_path).and_then(|spec| {
        prepare(&spec)?;
        // Stage 2 runs from a read-only view of this binary (see [`super::sealed`]).
        Command::new(super::sealed::bind_self_read_only()?)
            .args(super::Internal::Init2(spec_path.to_path_buf()).args())
            .clean_signals()
            .spawn()
            .ctx(|| "start the container's first process".into())
    });
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            Report::Failed(Failure::from(&e)).send(&mut status);
            return 127;
        }
    };
    Report::Started { pid: child.id() }.send(&mut status);
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
/// namespace). Every target inside the container is resolved inside its root.
fn prepare(spec: &InitSpec) -> Result<()> {
    let mut flags = CloneFlags::CLONE_NEWNS;
    if !spec.host_uts {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if spec.ipc_ns == Namespace::Own {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if spec.pid_ns == Namespace::Own {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    nix::sched::unshare(flags).ctx(|| "unshare namespaces".into())?;
    for (ns, flag, what) in [
        (&spec.ipc_ns, CloneFlags::CLONE_NEWIPC, "IPC"),
        (&spec.pid_ns, CloneFlags::CLONE_NEWPID, "PID"),
    ] {
        if let Namespace::Join(path) = ns {
            let f = File::open(path).ctx(|| format!("open {}", path.display()))?;
            nix::sched::setns(f, flag)
                .ctx(|| format!("join the {what} namespace {}", path.display()))?;
        }
    }
    if let Some(ns) = &spec.netns {
        let f = File::open(ns).ctx(|| format!("open {}", ns.display()))?;
        nix::sched::setns(f, CloneFlags::CLONE_NEWNET).ctx(|| format!("join {}", ns.display()))?;
    }
    if let Some(h) = &spec.hostname {
        nix::unistd::sethostname(h).ctx(|| "set the hostname".into())?;
    }
    if let Some(d) = &spec.domainname {
        rustix::system::setdomainname(d.as_bytes()).ctx(|| "set the domain name".into())?;
    }
    super::sealed::mounts_private()?;
    mount_root(spec)?;
    let root = Rootfs::open(&spec.rootfs).ctx(|| "open the container's root".into())?;
    mount_dev(&root, spec.shm_size)?;
    for d in &spec.devices {
        add_device(&root, d)?;
    }
    let sys = root.resolve("/sys", Want::Dir, Links::Refuse)?;
    let mut sys_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if spec.privileges.privileged {
        host_devices(&root)?;
    } else {
        sys_flags |= MsFlags::MS_RDONLY;
    }
    mnt(Some("sysfs"), &sys, "/sys", Some("sysfs"), sys_flags, None)?;
    let groups = super::resources::visible_groups(&spec.id, &spec.resources)?;
    if !groups.is_empty() && !spec.privileges.privileged {
        show_groups(&root, &groups)?;
    }
    // /etc/mtab as Docker's init layer makes it, where the image has none.
    if root.find("/etc/mtab")?.is_none() {
        let etc =
            crate::runtime::rootfs::reopen_dir(&root.resolve("/etc", Want::Dir, Links::Follow)?)?;
        rustix::fs::symlinkat("/proc/mounts", &etc, "mtab").ctx(|| "link /etc/mtab".into())?;
    }
    for name in ["hosts", "hostname", "resolv.conf"] {
        let path = format!("/etc/{name}");
        let target = root.resolve(&path, Want::File, Links::Follow)?;
        let source = spec.etc.join(name);
        mnt(Some(&source), &target, &path, None, MsFlags::MS_BIND, None)?;
        if spec.read_only {
            // With a read-only root Docker gives these read-only too.
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
            let bound = root.resolve(&path, Want::File, Links::Follow)?;
            mnt(None::<&Path>, &bound, &path, None, flags, None)?;
        }
    }
    for m in &spec.mounts {
        user_mount(&root, m)?;
    }
    Ok(())
}

/// The container's own cgroups, read-only under /sys/fs/cgroup: on cgroup v1 each at its
/// controller's name on a tmpfs made read-only after, on cgroup v2 the one group itself.
fn show_groups(root: &Rootfs, groups: &[(String, PathBuf)]) -> Result<()> {
    let base = "/sys/fs/cgroup";
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let unified = groups.iter().all(|(c, _)| c.is_empty());
    if !unified {
        let at = root.resolve(base, Want::Dir, Links::Refuse)?;
        mnt(
            Some("tmpfs"),
            &at,
            base,
            Some("tmpfs"),
            flags,
            Some("mode=755"),
        )?;
    }
    for (controller, dir) in groups {
        let path = if controller.is_empty() {
            base.to_string()
        } else {
            format!("{base}/{controller}")
        };
        let at = root.resolve(&path, Want::Dir, Links::Refuse)?;
        mnt(Some(dir), &at, &path, None, MsFlags::MS_BIND, None)?;
        let at = root.resolve(&path, Want::Dir, Links::Refuse)?;
        mnt(None::<&Path>, &at, &path, None, ro | MsFlags::MS_BIND, None)?;
    }
    if !unified {
        let at = root.resolve(base, Want::Dir, Links::Refuse)?;
        mnt(None::<&Path>, &at, base, None, ro, None)?;
    }
    Ok(())
}

fn user_mount(root: &Rootfs, m: &Mount) -> Result<()> {
    let Some(source) = &m.source else {
        let target = root.resolve(&m.target, Want::Dir, Links::Follow)?;
        let (flags, data) = tmpfs_options(&m.options)?;
        return mnt(
            Some("tmpfs"),
            &target,
            &m.target,
            Some("tmpfs"),
            flags,
            Some(data.as_str()),
        );
    };
    let want = if source.is_dir() {
        Want::Dir
    } else {
        Want::File
    };
    let target = root.resolve(&m.target, want, Links::Follow)?;
    if m.copy_up && want == Want::Dir {
        let from = crate::runtime::rootfs::reopen_dir(&target)?;
        let to = rustix::fs::openat(
            rustix::fs::CWD,
            source,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx(|| format!("open {}", source.display()))?;
        crate::volume::copy_up(&from, &to)
            .ctx(|| format!("copy the image's {} into its volume", m.target))?;
    }
    let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
    mnt(Some(source), &target, &m.target, None, rec, None)?;
    if m.readonly {
        // The descriptor names the folder under the new mount: look the mount itself up.
        let mounted = root.resolve(&m.target, want, Links::Follow)?;
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mnt(None::<&str>, &mounted, &m.target, None, ro, None)?;
    }
    Ok(())
}

/// mount(2) onto what `target` (a descriptor from [`Rootfs::resolve`]) names; `shown` is the
/// path in the container, for the error.
fn mnt<P: AsRef<Path> + ?Sized>(
    source: Option<&P>,
    target: &OwnedFd,
    shown: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(
        source.map(|s| s.as_ref()),
        &fd_path(target),
        fstype,
        flags,
        data,
    )
    .ctx(|| format!("mount {} on {shown}", fstype.unwrap_or("bind")))
}

fn mount_root(spec: &InitSpec) -> Result<()> {
    mount_overlay(&spec.rootfs, &spec.lower, &spec.upper, &spec.work)
}

fn mount_overlay(rootfs: &Path, lower: &[PathBuf], upper: &Path, work: &Path) -> Result<()> {
    let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    // nodev: a device node an image ships (a layer may hold one) opens nothing.
    mount(
        Some("overlay"),
        rootfs,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .ctx(|| "mount the container's root (overlay)".into())
}

/// In a mount namespace of the caller's own: a stopped container's file system (its layers
/// and its volumes and binds) mounted at `rootfs`, nothing of it seen outside.
pub fn mount_private_root(
    rootfs: &Path,
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    mounts: &[Mount],
) -> Result<()> {
    super::sealed::mounts_private()?;
    for d in [rootfs, upper, work] {
        fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    mount_overlay(rootfs, lower, upper, work)?;
    let root = Rootfs::open(rootfs).ctx(|| "open the container's root".into())?;
    for m in mounts {
        user_mount(&root, m)?;
    }
    Ok(())
}

/// A minimal /dev: the usual character devices, /dev/pts (its own instance), /dev/shm,
/// /dev/mqueue and the /proc/self/fd links; everything below the fresh tmpfs is made
/// relative to a descriptor of it.
fn mount_dev(root: &Rootfs, shm_size: u64) -> Result<()> {
    use rustix::fs::{chmodat, makedev, mkdirat, mknodat, symlinkat, AtFlags, FileType, Mode};
    let dev = root.resolve("/dev", Want::Dir, Links::Refuse)?;
    mnt(
        Some("tmpfs"),
        &dev,
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let dev =
        crate::runtime::rootfs::reopen_dir(&root.resolve("/dev", Want::Dir, Links::Refuse)?)?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let mode = Mode::from_raw_mode(0o666);
        mknodat(
            &dev,
            name,
            FileType::CharacterDevice,
            mode,
            makedev(major, minor),
        )
        .ctx(|| format!("make /dev/{name}"))?;
        chmodat(&dev, name, mode, AtFlags::empty())
            .ctx(|| format!("set the mode of /dev/{name}"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        symlinkat(target, &dev, name).ctx(|| format!("link /dev/{name}"))?;
    }
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let shm_data = format!("mode=1777,size={shm_size}");
    for (name, fstype, flags, data) in [
        (
            "pts",
            "devpts",
            nosuid,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "shm",
            "tmpfs",
            nosuid | MsFlags::MS_NODEV,
            shm_data.as_str(),
        ),
        ("mqueue", "mqueue", nosuid | MsFlags::MS_NODEV, ""),
    ] {
        mkdirat(&dev, name, Mode::from_raw_mode(0o755)).ctx(|| format!("make /dev/{name}"))?;
        let at = root.resolve(&format!("/dev/{name}"), Want::Dir, Links::Refuse)?;
        let source = if fstype == "tmpfs" { "shm" } else { fstype };
        let data = (!data.is_empty()).then_some(data);
        mnt(
            Some(source),
            &at,
            &format!("/dev/{name}"),
            Some(fstype),
            flags,
            data,
        )?;
    }
    Ok(())
}

/// `--device`: the host's node (which must be a device) made again at its place under the
/// container's /dev, with the host node's mode and owner.
fn add_device(root: &Rootfs, d: &super::kernel::DeviceMapping) -> Result<()> {
    use rustix::fs::{chownat, mknodat, AtFlags, FileType, Mode};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = fs::metadata(&d.path_on_host).map_err(|e| {
        Error::Invalid(format!(
            "error gathering device information while adding custom device {:?}: {e}",
            d.path_on_host
        ))
    })?;
    let kind = if meta.file_type().is_char_device() {
        FileType::CharacterDevice
    } else if meta.file_type().is_block_device() {
        FileType::BlockDevice
    } else {
        return Err(Error::Invalid(format!(
            "error gathering device information while adding custom device {:?}: not a device node",
            d.path_on_host
        )));
    };
    let (parent, name) = d
        .path_in_container
        .rsplit_once('/')
        .filter(|(_, n)| !n.is_empty())
        .ok_or_else(|| Error::Invalid(format!("invalid device path {}", d.path_in_container)))?;
    let dir =
        crate::runtime::rootfs::reopen_dir(&root.resolve(parent, Want::Dir, Links::Refuse)?)?;
    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
    let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
    mknodat(&dir, name, kind, mode, meta.rdev())
        .ctx(|| format!("make the device {}", d.path_in_container))?;
    let (uid, gid) = (
        rustix::fs::Uid::from_raw(meta.uid()),
        rustix::fs::Gid::from_raw(meta.gid()),
    );
    chownat(&dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("own the device {}", d.path_in_container))?;
    rustix::fs::chmodat(&dir, name, mode, AtFlags::empty())
        .ctx(|| format!("set the mode of {}", d.path_in_container))
}

/// `--privileged`: the host's device nodes (and those one folder down, as /dev/net/tun) in
/// the container's own /dev, as Docker gives them; the container's pts, shm, mqueue and
/// the nodes already made stay its own.
fn host_devices(root: &Rootfs) -> Result<()> {
    let dev =
        crate::runtime::rootfs::reopen_dir(&root.resolve("/dev", Want::Dir, Links::Refuse)?)?;
    copy_nodes(Path::new("/dev"), &dev, true)
}

fn copy_nodes(from: &Path, to: &OwnedFd, descend: bool) -> Result<()> {
    use rustix::fs::{chownat, mkdirat, mknodat, openat, AtFlags, FileType, Mode, OFlags};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if ["pts", "shm", "mqueue"].contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let kind = meta.file_type();
        let node = if kind.is_char_device() {
            FileType::CharacterDevice
        } else if kind.is_block_device() {
            FileType::BlockDevice
        } else {
            if kind.is_dir() && descend && mkdirat(to, &name, Mode::from_raw_mode(0o755)).is_ok() {
                let sub = openat(
                    to,
                    &name,
                    OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open /dev/{}", name.to_string_lossy()))?;
                copy_nodes(&entry.path(), &sub, false)?;
            }
            continue;
        };
        let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
        if mknodat(to, &name, node, mode, meta.rdev()).is_ok() {
            let (uid, gid) = (
                rustix::fs::Uid::from_raw(meta.uid()),
                rustix::fs::Gid::from_raw(meta.gid()),
            );
            let _ = chownat(to, &name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW);
            let _ = rustix::fs::chmodat(to, &name, mode, AtFlags::empty());
        }
    }
    Ok(())
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
            .ctx(|| format!("open {}", spec.stderr.display()))?;
        rustix::stdio::dup2_stderr(&err).ctx(|| "make it the container's stderr".into())?;
        let id = enter(&spec)?;
        Ok((spec, id))
    });
    let e = match result {
        Err(e) => e,
        Ok((spec, id)) if spec.init => match start_under_reaper(&spec, &id) {
            Ok((child, set, filters)) => {
                drop(status);
                return super::reaper::reap(child, set, &filters);
            }
            Err(e) => e,
        },
        Ok((spec, id)) => exec(&spec, &id),
    };
    Report::Failed(Failure::from(&e)).send(&mut status);
    match e {
        Error::CommandNotRunnable { .. } => 126,
        _ => 127,
    }
}

fn enter(spec: &InitSpec) -> Result<Identity> {
    // While the host's cgroup file system is still in view.
    super::resources::enter(&spec.id, &spec.resources)?;
    let root = Rootfs::open(&spec.rootfs).ctx(|| "open the container's root".into())?;
    let proc_dir = root.resolve("/proc", Want::Dir, Links::Refuse)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mnt(Some("proc"), &proc_dir, "/proc", Some("proc"), flags, None)?;
    super::kernel::apply_sysctls(&root, &spec.sysctls)?;
    super::kernel::apply_ulimits(&spec.ulimits)?;
    if !spec.privileges.privileged {
        mask_proc(&root)?;
    }
    if spec.read_only {
        // The working directory is made while the root can still be written, as Docker does.
        root.resolve(&spec.workdir, Want::Dir, Links::Follow)?;
        mount(
            None::<&str>,
            &spec.rootfs,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .ctx(|| "make the root read-only".into())?;
    }
    if let Some(sock) = &spec.console_socket {
        let pts = root.resolve("/dev/pts", Want::Dir, Links::Refuse)?;
        super::console::make_in_container(&fd_path(&pts), sock, spec.tty_size)?;
    }
    nix::unistd::chdir(&spec.rootfs).ctx(|| "enter the root".into())?;
    nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the host's root".into())?;
    nix::unistd::chdir("/").ctx(|| "enter the container's root".into())?;
    if spec.tty {
        nix::unistd::setsid().ctx(|| "start a session for the terminal".into())?;
        rustix::process::ioctl_tiocsctty(std::io::stdin()).ctx(|| "take the terminal".into())?;
    }
    // From here on "/" is the container's root: the working directory resolves inside it.
    let wd = if spec.workdir.is_empty() {
        "/"
    } else {
        &spec.workdir
    };
    if !spec.read_only {
        fs::create_dir_all(wd).ctx(|| format!("create the working directory {wd}"))?;
    }
    let id = super::privileges::assume(&spec.privileges)?;
    nix::unistd::chdir(wd).ctx(|| format!("enter the working directory {wd}"))?;
    Ok(id)
}

/// The paths a container (not privileged) cannot read: Docker's list, in its order.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// The paths a container (not privileged) reads but cannot change: Docker's list.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's masked and read-only /proc and /sys paths (in the fresh /proc and /sys, which
/// hold nothing an image made): a masked file is covered by /dev/null, a masked folder by
/// an empty read-only tmpfs.
fn mask_proc(root: &Rootfs) -> Result<()> {
    let null = root.resolve("/dev/null", Want::File, Links::Refuse)?;
    let found = |p: &str| root.find(p);
    for p in MASKED_PATHS {
        match found(p)? {
            Some((target, false)) => mnt(
                Some(&fd_path(&null)),
                &target,
                p,
                None,
                MsFlags::MS_BIND,
                None,
            )?,
            Some((target, true)) => mnt(
                Some("tmpfs"),
                &target,
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )?,
            None => {}
        }
    }
    for p in READONLY_PATHS {
        if let Some((target, _)) = found(p)? {
            let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
            mnt(Some(&fd_path(&target)), &target, p, None, rec, None)?;
            let (mounted, _) = found(p)?
                .ok_or_else(|| Error::State(format!("{p} vanished while it was mounted")))?;
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mnt(None::<&str>, &mounted, p, None, ro, None)?;
        }
    }
    Ok(())
}

/// With `--init`: starts the command as a child of this process, which becomes its reaper.
fn start_under_reaper(
    spec: &InitSpec,
    id: &Identity,
) -> Result<(
    std::process::Child,
    nix::sys::signal::SigSet,
    Vec<seccompiler::BpfProgram>,
)> {
    let (prog, cmd) = command(spec, id)?;
    let filters = filters_for(&spec.seccomp, &spec.privileges)?;
    super::reaper::spawn(cmd, filters).map_err(|e| exec_error(&prog, &e))
}

/// The command to run, with its environment and clean signals.
fn command(spec: &InitSpec, id: &Identity) -> Result<(String, Command)> {
    let Some((prog, args)) = spec.command.split_first() else {
        return Err(Error::Invalid("no command specified".into()));
    };
    let env = with_home(&spec.env, id);
    let env = env.iter().map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    // The command gets fds 0-2 only, whatever was opened or inherited since start.
    netctl_cni::fsutil::cloexec_inherited();
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear().envs(env).clean_signals();
    Ok((prog.clone(), cmd))
}

/// Replaces this process with the command; returns why it could not.
fn exec(spec: &InitSpec, id: &Identity) -> Error {
    let filters = match filters_for(&spec.seccomp, &spec.privileges) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let (prog, mut cmd) = match command(spec, id) {
        Ok(c) => c,
        Err(e) => return e,
    };
    with_seccomp(&mut cmd, filters);
    let err = cmd.exec();
    exec_error(&prog, &err)
}

/// `env` with `HOME` set to the user's home when it names none (as Docker does at start).
pub fn with_home(env: &[String], id: &Identity) -> Vec<String> {
    let mut out = env.to_vec();
    if !out.iter().any(|kv| kv.starts_with("HOME=")) {
        out.push(format!("HOME={}", id.home));
    }
    out
}

/// The seccomp filters of a container: none when privileged, else its profile with rules
/// scoped by its capabilities.
pub fn filters_for(
    seccomp: &super::seccomp::Seccomp,
    privs: &Privileges,
) -> Result<Vec<seccompiler::BpfProgram>> {
    if privs.privileged {
        return Ok(Vec::new());
    }
    let names = privs.capability_names()?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    super::seccomp::filters(seccomp, &names)
}

/// Installs `filters` in what `cmd` starts, as the last thing before it runs its program.
#[allow(unsafe_code)]
pub fn with_seccomp(cmd: &mut Command, filters: Vec<seccompiler::BpfProgram>) {
    if filters.is_empty() {
        return;
    }
    // SAFETY: the closure runs between fork (or in this process, for exec) and execve and
    // only makes the prctl and seccomp system calls over filters compiled beforehand; it
    // allocates nothing.
    unsafe { cmd.pre_exec(move || super::seccomp::apply(&filters)) };
}

/// What a failed exec of `prog` means: not found (127) or not runnable (126).
pub fn exec_error(prog: &str, err: &std::io::Error) -> Error {
    match err.kind() {
        std::io::ErrorKind::NotFound => Error::CommandNotFound(prog.to_string()),
        _ => Error::CommandNotRunnable {
            command: prog.to_string(),
            reason: err.to_string(),
        },
    }
}
