//! Network namespaces: open, create (bind-mounted to a file), remove, and run code inside
//! one on a short-lived thread of its own.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::NetError;

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl std::os::fd::AsRawFd for NetNs {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl NetNs {
    /// Opens the namespace at `path` (a bind mount or a `/proc/<pid>/ns/net` link).
    pub fn open(path: &Path) -> Result<Self, NetError> {
        let file = File::open(path).map_err(|source| NetError::OpenNs {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Self, NetError> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether two handles name the same namespace.
    pub fn same_as(&self, other: &NetNs) -> Result<bool, NetError> {
        let meta = |ns: &NetNs| {
            ns.file.metadata().map_err(|source| NetError::OpenNs {
                path: ns.path.clone(),
                source,
            })
        };
        let (a, b) = (meta(self)?, meta(other)?);
        Ok(a.dev() == b.dev() && a.ino() == b.ino())
    }

    /// The descriptor of this namespace, made to survive `exec`, so a child process started
    /// next inherits it (and keeps the namespace alive) as `/proc/self/fd/<fd>`.
    pub fn inheritable_fd(&self) -> std::io::Result<i32> {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        use std::os::fd::AsRawFd;
        fcntl(&self.file, FcntlArg::F_SETFD(FdFlag::empty()))?;
        Ok(self.file.as_raw_fd())
    }

    /// Runs `f` on a new thread that has entered this namespace; the caller's thread never
    /// switches. Sockets `f` opens stay bound to this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetError::Namespace {
                        what: "enter",
                        path: self.path.clone(),
                        source: e.into(),
                    }
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetError::ThreadPanicked(self.path.clone()))?
        })
    }

    /// Creates a new, empty namespace and bind-mounts it at `path` (created if missing), so it
    /// lives until [`NetNs::remove`]. Its loopback is down, as in any new namespace.
    pub fn create(path: &Path) -> Result<Self, NetError> {
        let fail = |what: &'static str, source: std::io::Error| NetError::Namespace {
            what,
            path: path.to_path_buf(),
            source,
        };
        File::create(path).map_err(|e| fail("create the mount point of", e))?;
        let made = std::thread::scope(|s| {
            s.spawn(|| {
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| fail("create", e.into()))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| fail("bind-mount", e.into()))
            })
            .join()
            .map_err(|_| NetError::ThreadPanicked(path.to_path_buf()))?
        });
        if let Err(e) = made {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Self::open(path)
    }

    /// Moves the calling thread into new network and mount namespaces, with mounts that do
    /// not propagate back: a private "host" for tests and benchmarks.
    pub fn unshare_private() -> Result<(), NetError> {
        let fail = |what: &'static str, e: nix::errno::Errno| NetError::Namespace {
            what,
            path: PathBuf::from("/proc/thread-self/ns/net"),
            source: e.into(),
        };
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
            .map_err(|e| fail("create", e))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| fail("make the mounts private of", e))
    }

    /// Unmounts and removes a namespace made by [`NetNs::create`]; one already gone is fine.
    pub fn remove(path: &Path) -> Result<(), NetError> {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => {
                return Err(NetError::Namespace {
                    what: "unmount",
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::Namespace {
                what: "remove",
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}
