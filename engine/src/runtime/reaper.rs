//! `--init`: the container's first process stays as PID 1 of its PID namespace, a tiny
//! reaper (as Docker's docker-init): the command runs as its child, every orphan that is
//! re-parented to PID 1 is reaped, the signals PID 1 receives (a `stop`, a `kill -s`) are
//! passed on to the command, and the reaper exits with the command's exit code.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals the kernel raises for a fault of this process itself: never blocked.
const SYNCHRONOUS: [Signal; 5] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
];

/// Starts `cmd` (whose signals are reset in the child) with every other signal of this
/// process blocked first, so none is lost between the start and [`reap`].
pub fn spawn(
    mut cmd: Command,
    filters: Vec<seccompiler::BpfProgram>,
) -> std::io::Result<(Child, SigSet, Vec<seccompiler::BpfProgram>)> {
    let mut set = SigSet::all();
    for s in SYNCHRONOUS {
        set.remove(s);
    }
    set.thread_block().map_err(std::io::Error::from)?;
    super::init::with_seccomp(&mut cmd, filters.clone());
    let child = cmd.spawn()?;
    Ok((child, set, filters))
}

/// Reaps and forwards until the command ends; its exit code (128 + N for a signal).
pub fn reap(child: Child, set: SigSet, filters: &[seccompiler::BpfProgram]) -> i32 {
    // The reaper lives under the container's own seccomp filter too.
    if !filters.is_empty() && super::seccomp::apply(filters).is_err() {
        return 127;
    }
    let main = Pid::from_raw(child.id() as i32);
    drop(child);
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap_all(main) {
                    return code;
                }
            }
            Ok(sig) => {
                let _ = nix::sys::signal::kill(main, sig);
            }
            Err(_) => return 127,
        }
    }
}

/// Reaps every child that has ended; the command's exit code once it is among them.
fn reap_all(main: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == main => code = Some(c),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == main => {
                code = Some(
                    std::process::ExitStatus::from_raw(s as i32)
                        .signal()
                        .map_or(128, |n| 128 + n),
                )
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}
