//! The engine's one file-lock API: `flock(2)` on a lock file of a store or a container,
//! released when the [`StoreLock`] is dropped (or its holder dies). Every process and
//! thread that changes a store takes its lock first.

use std::fs;
use std::path::Path;

use rustix::fs::FlockOperation;

use crate::error::{Context, Error, Result};

/// A lock on a store or a container, released on drop.
pub struct StoreLock {
    file: fs::File,
}

impl StoreLock {
    /// Waits for the lock at `path` alone.
    pub fn exclusive(path: &Path) -> Result<StoreLock> {
        blocking(take(path, FlockOperation::LockExclusive)?, path)
    }

    /// Waits for the lock at `path`, shared with other shared holders.
    pub fn shared(path: &Path) -> Result<StoreLock> {
        blocking(take(path, FlockOperation::LockShared)?, path)
    }

    /// The lock at `path` alone if nobody holds it now.
    pub fn try_exclusive(path: &Path) -> Result<Option<StoreLock>> {
        take(path, FlockOperation::NonBlockingLockExclusive)
    }

    /// Runs `f` with the lock shared with the CNI plugins it starts on this thread (each
    /// holds it for as long as it runs, so a plugin left running by a killed netctl keeps
    /// every other command, repair above all, off the container until it is done), and with
    /// no other process: a child another thread starts meanwhile (a monitor, a DNS server)
    /// never gets it.
    pub fn shared_with_children<T>(&self, f: impl FnOnce() -> T) -> T {
        use std::os::fd::AsFd;
        netctl_cni::invoke::handing_down(self.file.as_fd(), f)
    }
}

fn take(path: &Path, op: FlockOperation) -> Result<Option<StoreLock>> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx(|| format!("open the lock {}", path.display()))?;
    loop {
        match rustix::fs::flock(&f, op) {
            Ok(()) => return Ok(Some(StoreLock { file: f })),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).ctx(|| format!("lock {}", path.display())),
        }
    }
}

fn blocking(lock: Option<StoreLock>, path: &Path) -> Result<StoreLock> {
    lock.ok_or_else(|| Error::State(format!("{} could not be locked", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// While a container's lock is shared with the plugins one thread runs, another thread
    /// starts a long-lived process (a monitor, a DNS server): that process never gets the
    /// lock, which is free again as soon as the holder lets it go.
    #[test]
    fn a_lock_shared_with_plugins_never_reaches_another_threads_child() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let lock = StoreLock::exclusive(&path).unwrap();
        let other = lock.shared_with_children(|| {
            std::thread::spawn(|| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .join()
            .unwrap()
        });
        drop(lock);
        let again = StoreLock::try_exclusive(&path).unwrap();
        let mut other = other;
        let _ = other.kill();
        let _ = other.wait();
        assert!(again.is_some(), "the other thread's child kept the lock");
    }

    #[test]
    fn shared_holders_keep_an_exclusive_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let a = StoreLock::shared(&path).unwrap();
        let b = StoreLock::shared(&path).unwrap();
        assert!(StoreLock::try_exclusive(&path).unwrap().is_none());
        drop((a, b));
        // A process another test forks at this moment holds the descriptors until its exec
        // closes them: the lock is free within moments, not necessarily at once.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while StoreLock::try_exclusive(&path).unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock stayed taken"
            );
            std::thread::yield_now();
        }
    }
}
