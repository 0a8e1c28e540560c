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
