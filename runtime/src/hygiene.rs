//! What every netctl process does before anything else, so that no descriptor and no signal
//! disposition a caller left behind reaches a container or changes how netctl exits.

/// Marks every descriptor from 3 up close-on-exec: whatever this process inherited (a
/// caller's `3>&1`, a pipe, a socket) is never passed on to a monitor, a plugin or a
/// container, which get fds 0-2 and what is handed to them on purpose.
#[allow(unsafe_code)]
pub fn cloexec_inherited() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only sets the
    // close-on-exec flag of open descriptors, so no owned descriptor becomes invalid. It
    // takes no pointers.
    let rc = unsafe { nix::libc::close_range(3, u32::MAX, nix::libc::CLOSE_RANGE_CLOEXEC as i32) };
    // Kernels before 5.11 lack the flag: nothing to do but carry on.
    let _ = rc;
}

/// Restores the default action of SIGPIPE, so that a command whose reader went away
/// (`netctl ps | head -1`) ends quietly, as other command-line tools do, instead of failing
/// on its next write.
#[allow(unsafe_code)]
pub fn default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler code, so there is no handler that could run
    // unsafe-to-call functions; this runs in main before any thread is started.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
