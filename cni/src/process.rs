//! What every process netctl starts gets from it: a clean signal state. A child inherits its
//! parent's blocked signals and ignored signals across `exec`; a daemon started by a caller
//! that blocks SIGTERM (a supervisor reading signals from a signalfd, a CLI forwarding them
//! to a container, a careless runtime) would otherwise never see SIGTERM, and `kill`,
//! `systemctl stop` or a host shutdown would wait for it in vain.

use std::os::unix::process::CommandExt;

/// Unblocks every signal and sets every signal's disposition to the default, for the calling
/// thread (and, between `fork` and `exec` or in a forked child, the whole process).
/// Async-signal-safe: it calls only `sigemptyset`, `pthread_sigmask` and `sigaction`.
#[allow(unsafe_code)]
pub fn reset_signals() -> std::io::Result<()> {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before use; sigaction is
    // given a zeroed struct whose handler is SIG_DFL and a null old-action pointer. None of
    // these calls allocates or takes a lock.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        let err = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        if err != 0 {
            return Err(std::io::Error::from_raw_os_error(err));
        }
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                // Signals the C library keeps for itself refuse: they stay as they are.
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    Ok(())
}

/// Blocks SIGPIPE in the calling thread: a write to a closed pipe fails with EPIPE, and the
/// signal stays pending on this thread alone (and goes when it ends).
#[allow(unsafe_code)]
pub fn block_sigpipe() {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before use; only this
    // thread's mask changes.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// A [`std::process::Command`] whose child starts with no blocked and no ignored signal,
/// whatever the state of the thread that spawns it.
pub trait CleanSignals {
    /// Resets the child's signals (see [`reset_signals`]) before it runs its program.
    fn clean_signals(&mut self) -> &mut Self;
}

impl CleanSignals for std::process::Command {
    #[allow(unsafe_code)]
    fn clean_signals(&mut self) -> &mut Self {
        // SAFETY: the closure runs between fork and exec and calls only reset_signals, which
        // is async-signal-safe and allocates nothing.
        unsafe { self.pre_exec(reset_signals) }
    }
}

/// How a child run under a deadline ended.
#[derive(Debug)]
pub enum Finished {
    /// It exited: its status and all it wrote to stdout.
    Exited(std::process::Output),
    /// It was still running at the deadline; it and its process group were killed.
    TimedOut,
}

/// Waits for `child` (started in a process group of its own, with piped stdout) until
/// `deadline`, collecting its stdout; at the deadline kills its whole group with SIGKILL and
/// reaps it. Output a grandchild still holds open is not waited for: what the child wrote
/// before it exited is all there is.
pub fn wait_with_deadline(
    mut child: std::process::Child,
    deadline: std::time::Duration,
) -> std::io::Result<Finished> {
    use std::os::fd::AsRawFd;
    let pidfd = pidfd_open(child.id())?;
    let mut stdout = child.stdout.take();
    if let Some(out) = &stdout {
        set_nonblocking(out.as_raw_fd())?;
    }
    let mut buf = Vec::new();
    let end = std::time::Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            kill_group(&mut child);
            return Ok(Finished::TimedOut);
        }
        let out_fd = stdout.as_ref().map(AsRawFd::as_raw_fd);
        let (out_ready, exited) = poll2(out_fd, pidfd.as_raw_fd(), left)?;
        if out_ready || exited {
            if let Some(out) = stdout.as_mut() {
                if drain(out, &mut buf)? {
                    stdout = None;
                }
            }
        }
        if exited {
            let status = child.wait()?;
            return Ok(Finished::Exited(std::process::Output {
                status,
                stdout: buf,
                stderr: Vec::new(),
            }));
        }
    }
}

/// Reads what `from` has now; whether it reached its end.
fn drain(from: &mut impl std::io::Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// SIGKILL to the child's process group (its group ID is its PID), then reaps the child.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative PID signals a process group; no memory is touched.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[allow(unsafe_code)]
fn pidfd_open(pid: u32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) takes a PID and flags and returns a new descriptor or -1; the
    // descriptor is owned by nothing else, so OwnedFd may close it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("pidfd out of range"))?;
    // SAFETY: fd was just returned by the kernel and is open.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn set_nonblocking(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl(2) on a descriptor the caller owns; F_GETFL/F_SETFL touch only its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Polls `out` for input and `pidfd` for the process's end, for up to `left`; which are
/// ready.
#[allow(unsafe_code)]
fn poll2(
    out: Option<std::os::fd::RawFd>,
    pidfd: std::os::fd::RawFd,
    left: std::time::Duration,
) -> std::io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: out.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: fds is a live array of two pollfd and its length is passed with it; a negative
    // fd is ignored by poll(2).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok((false, false));
        }
        return Err(e);
    }
    let [exit, input] = fds;
    Ok((input.revents != 0, exit.revents != 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status_mask(text: &str, field: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    }

    /// A child spawned from a thread that blocks SIGTERM and ignores SIGHUP (as a supervisor
    /// reading a signalfd does) starts with neither blocked nor ignored.
    #[test]
    #[allow(unsafe_code)]
    fn a_child_of_a_thread_that_blocks_signals_starts_clean() {
        let out = std::thread::spawn(|| {
            // SAFETY: sigset built by sigemptyset/sigaddset; SIGHUP set to SIG_IGN is a plain
            // disposition change on this test process, restored by nothing (HUP is not sent).
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
            }
            let dirty = std::process::Command::new("cat")
                .arg("/proc/self/status")
                .output()
                .unwrap();
            let clean = std::process::Command::new("cat")
                .arg("/proc/self/status")
                .clean_signals()
                .output()
                .unwrap();
            (dirty, clean)
        })
        .join()
        .unwrap();
        let (dirty, clean) = (
            String::from_utf8_lossy(&out.0.stdout).into_owned(),
            String::from_utf8_lossy(&out.1.stdout).into_owned(),
        );
        let term = 1u64 << (libc::SIGTERM - 1);
        let hup = 1u64 << (libc::SIGHUP - 1);
        assert_ne!(status_mask(&dirty, "SigBlk:") & term, 0, "{dirty}");
        assert_eq!(status_mask(&clean, "SigBlk:"), 0, "{clean}");
        assert_eq!(status_mask(&clean, "SigIgn:") & hup, 0, "{clean}");
    }
}
