//! What enters a container never carries a writable handle to the host's binary (runc's
//! CVE-2019-5736): a process that executes a file inside a container whose first line is
//! `#!/proc/self/exe` runs its own binary again, inside the container, and the container
//! could then open that binary through `/proc/<pid>/exe` and, once the process is gone,
//! write to it. So every netctl process that executes anything inside a container runs from
//! a read-only bind mount of its binary, made in a mount namespace of its own: the magic link
//! leads to that mount, where opening for writing fails (EROFS), whatever the container does.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::{state, Context, Result};

const SELF: &str = "/proc/self/exe";

/// Whether this process runs from a binary on a read-only mount.
pub fn runs_read_only() -> bool {
    statvfs(SELF).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

/// Bind-mounts this process's binary read-only over its own path, in this process's mount
/// namespace, which must be private to it; returns the path, to execute it from.
pub fn bind_self_read_only() -> Result<PathBuf> {
    let path = std::fs::read_link(SELF).ctx(|| format!("read {SELF}"))?;
    if !path.is_file() {
        state!(
            "the running binary {} is gone (replaced while running?): run netctl again",
            path.display()
        );
    }
    // From its path, not from the magic link: that one leads to the mount it was started
    // from, which belongs to the mount namespace this process has left.
    mount(
        Some(&path),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind {} over itself", path.display()))?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, &path, None::<&str>, ro, None::<&str>)
        .ctx(|| format!("make {} read-only", path.display()))?;
    Ok(path)
}

/// Makes every mount of this process's (own) mount namespace private, so that nothing it
/// mounts or unmounts from here on reaches the namespace it came from.
pub fn mounts_private() -> Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| "make the mounts private".into())
}

/// Makes this process run from a read-only view of its binary: unless it already does,
/// it takes a mount namespace of its own, binds its binary read-only there and executes
/// itself again from it, with the same arguments and environment (so this returns only
/// when it already ran read-only, or with why it could not). The process must have no
/// other thread yet.
pub fn reexec_read_only() -> Result<()> {
    if runs_read_only() {
        return Ok(());
    }
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
    if threads != 1 {
        state!("cannot take a private mount namespace with {threads} threads running");
    }
    unshare(CloneFlags::CLONE_NEWNS).ctx(|| "take a mount namespace of its own".into())?;
    mounts_private()?;
    let path = bind_self_read_only()?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("netctl"));
    let err = std::process::Command::new(&path)
        .arg0(arg0)
        .args(args)
        .exec();
    Err(err).ctx(|| format!("run {} again from its read-only mount", path.display()))
}
