//! What every netctl process does before anything else, so that no descriptor and no signal
//! disposition a caller left behind reaches a container or changes how netctl exits.

pub use netctl_cni::fsutil::cloexec_inherited;

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
