//! Work that outlives the process asking for it: a forked child that has entered a network
//! namespace, detached from the caller's stdio and process group. A plugin's DEL hands it
//! what the kernel is slow at (deleting a veth waits for RCU grace periods) and returns at
//! once. Forking the running process costs a fraction of starting a helper binary (no
//! `exec`, no loader, no fresh page faults for the whole image), which matters where
//! containers come and go by the dozen per second.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::AsFd;

use nix::sched::{setns, CloneFlags};
use nix::unistd::{fork, ForkResult, Pid};

use crate::{NetError, NetNs};

/// What a forked child is called (`ps -o comm`), so that tests and people can see it.
pub const DETACHED_NAME: &CStr = c"netctl-reaper";

/// Whether this process runs only the calling thread: the one case in which a forked child
/// may do anything (allocate, take locks) without meeting a lock another thread held.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| tasks.count() == 1)
        .unwrap_or(false)
}

impl NetNs {
    /// Runs `f` in a child process that has entered this namespace, named
    /// [`DETACHED_NAME`], with stdio on /dev/null, no other descriptor of ours, and a
    /// process group of its own; returns without waiting for it. Its exit code is 0 when
    /// `f` returns true. `Ok(false)`: nothing was started because this process has other
    /// threads (a forked copy of one could deadlock); the caller does the work another way.
    pub fn run_detached(&self, f: impl FnOnce() -> bool) -> Result<bool, NetError> {
        if !single_threaded() {
            return Ok(false);
        }
        // SAFETY: the process has this one thread (checked above, and nothing here starts
        // another), so the child inherits no lock held by a thread it does not have. The
        // child never returns into the caller: it leaves through `_exit`, also on a panic.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { .. }) => Ok(true),
            Ok(ForkResult::Child) => {
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.become_detached().is_ok() && f()
                }));
                // SAFETY: ends the child at once, without running the parent's exit handlers
                // or destructors on its copy of the parent's state.
                unsafe { nix::libc::_exit(i32::from(!matches!(ok, Ok(true)))) }
            }
            Err(e) => Err(NetError::Namespace {
                what: "start a process in",
                path: self.path().to_path_buf(),
                source: e.into(),
            }),
        }
    }

    /// The child's set-up: its own name, a clean signal state, its own process group, stdio on /dev/null (a runtime
    /// reading the caller's stdout must see it end when the caller exits), inside this
    /// namespace, every other descriptor closed (locks and pipes of the caller's stay the
    /// caller's).
    fn become_detached(&self) -> nix::Result<()> {
        let _ = nix::sys::prctl::set_name(DETACHED_NAME);
        // Not the caller's blocked or ignored signals: SIGTERM ends it like any process.
        netctl_cni::process::reset_signals().map_err(|e| {
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EINVAL))
        })?;
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
        let null = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::empty(),
        )?;
        nix::unistd::dup2_stdin(&null)?;
        nix::unistd::dup2_stdout(&null)?;
        nix::unistd::dup2_stderr(&null)?;
        drop(null);
        setns(self.as_fd(), CloneFlags::CLONE_NEWNET)?;
        // SAFETY: closes descriptors only. None is used or dropped in the child again: the
        // caller's handles to them are never dropped (the child leaves through `_exit`),
        // and `f` opens its own.
        if unsafe { nix::libc::close_range(3, u32::MAX, 0) } != 0 {
            return Err(nix::errno::Errno::last());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a second thread alive, nothing is forked: a copy of a process holding other
    /// threads' locks could hang, so the caller is told to do the work another way.
    #[test]
    fn a_process_with_other_threads_forks_nothing() {
        let ns = NetNs::current().expect("own namespace");
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        let ran = std::cell::Cell::new(false);
        let started = ns.run_detached(|| {
            ran.set(true);
            true
        });
        drop(stop);
        let _ = other.join();
        assert!(matches!(started, Ok(false)), "{started:?}");
        assert!(!ran.get(), "the work did not run in this process either");
    }
}
