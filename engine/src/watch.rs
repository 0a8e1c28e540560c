//! Waiting for a file to change without polling: a follower (`logs -f`, `events`, `wait`)
//! sleeps on an inotify watch of the file's folder and wakes when the file is written,
//! replaced or removed, or when its caller cancels it (a client of the API that went away).

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

use crate::error::{Context, Result};

/// A follower's stop switch, shared between the follower and whoever may stop it; clones
/// share it.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<OwnedFd>);

impl Cancel {
    /// A switch not yet pressed.
    pub fn new() -> Result<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .ctx(|| "make an eventfd".into())?;
        Ok(Cancel(Arc::new(fd)))
    }

    /// Stops every follower waiting on this switch, now and later.
    pub fn cancel(&self) {
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        let mut fds = [PollFd::new(&*self.0, PollFlags::IN)];
        matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
    }
}

/// Why [`FileWatch::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The file (or its folder) changed.
    Changed,
    /// The time given passed first.
    TimedOut,
    /// The follower was cancelled.
    Cancelled,
}

/// A watch on one file, through its folder (so that a file made, replaced by a rename or
/// rotated away counts too).
#[derive(Debug)]
pub struct FileWatch {
    inotify: OwnedFd,
    name: Option<Vec<u8>>,
}

impl FileWatch {
    /// Watches `path`: any change of the file by that name in its folder, and the folder
    /// itself going away.
    pub fn file(path: &Path) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().map(|n| n.as_bytes().to_vec());
        Self::new(dir, name)
    }

    /// Watches every file of folder `dir`, and the folder itself.
    pub fn folder(dir: &Path) -> Result<Self> {
        Self::new(dir, None)
    }

    fn new(dir: &Path, name: Option<Vec<u8>>) -> Result<Self> {
        let inotify = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .ctx(|| "make an inotify instance".into())?;
        let flags = WatchFlags::MODIFY
            | WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::MOVED_FROM
            | WatchFlags::DELETE
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::ATTRIB
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF;
        inotify::add_watch(&inotify, dir, flags).ctx(|| format!("watch {}", dir.display()))?;
        Ok(FileWatch { inotify, name })
    }

    /// Sleeps until the file changes, `cancel` is pressed or `timeout` passes (without a
    /// timeout, for as long as it takes).
    pub fn wait(&self, cancel: Option<&Cancel>, timeout: Option<Duration>) -> Wake {
        let ts = timeout.map(|t| Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        loop {
            let mut fds = vec![PollFd::new(&self.inotify, PollFlags::IN)];
            if let Some(c) = cancel {
                fds.push(PollFd::new(&*c.0, PollFlags::IN));
            }
            match poll(&mut fds, ts.as_ref()) {
                Ok(0) => return Wake::TimedOut,
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(_) => return Wake::Changed,
            }
            if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
                return Wake::Cancelled;
            }
            if self.drain() {
                return Wake::Changed;
            }
        }
    }

    /// Reads every pending event; whether one was about the watched file.
    fn drain(&self) -> bool {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        let mut relevant = false;
        loop {
            match reader.next() {
                Ok(ev) => {
                    let named = ev.file_name().map(|n| OsStr::from_bytes(n.to_bytes()));
                    relevant |= match (&self.name, named) {
                        (Some(want), Some(got)) => want.as_slice() == got.as_bytes(),
                        // The folder itself changed (moved, removed), or every file counts.
                        _ => true,
                    };
                }
                Err(Errno::INTR) => continue,
                Err(_) => return relevant,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_write_to_the_file_wakes_its_watcher_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let w = FileWatch::file(&path).unwrap();
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        assert_eq!(
            w.wait(None, Some(Duration::from_millis(50))),
            Wake::TimedOut
        );
        let writer = std::thread::spawn({
            let path = path.clone();
            move || std::fs::write(path, b"line\n").unwrap()
        });
        assert_eq!(w.wait(None, Some(Duration::from_secs(10))), Wake::Changed);
        writer.join().unwrap();
    }

    #[test]
    fn a_cancelled_follower_wakes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let w = FileWatch::folder(dir.path()).unwrap();
        let cancel = Cancel::new().unwrap();
        assert!(!cancel.is_cancelled());
        let other = cancel.clone();
        let start = Instant::now();
        std::thread::spawn(move || other.cancel());
        assert_eq!(w.wait(Some(&cancel), None), Wake::Cancelled);
        assert!(cancel.is_cancelled());
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
