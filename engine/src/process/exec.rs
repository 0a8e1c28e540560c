//! `exec`: a process in a running container's namespaces, root and capabilities.

use netctl_cni::process::CleanSignals;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

use crate::container::Container;
use crate::error::{invalid, state, Context, Result};

/// What to run, and how.
pub struct ExecRequest<'a> {
    /// Program and arguments.
    pub command: &'a [String],
    /// Extra KEY=VALUE.
    pub env: &'a [String],
    /// Working directory (the container's when empty).
    pub workdir: Option<&'a str>,
    /// Keep stdin attached.
    pub interactive: bool,
    /// `-u`: who runs it (the container's user when None).
    pub user: Option<&'a str>,
}

/// Runs the command inside the container, its stdout and stderr ours; its exit code, or
/// [`crate::Error::CommandNotFound`] / [`crate::Error::CommandNotRunnable`].
pub fn exec(c: &Container, req: &ExecRequest) -> Result<i32> {
    if !c.is_running() {
        state!("container {} is not running", c.config.id);
    }
    if c.state.paused {
        state!(
            "Container {} is paused, unpause the container before exec",
            c.config.id
        );
    }
    let Some((prog, args)) = req.command.split_first() else {
        invalid!("no command given: netctl exec CONTAINER COMMAND [ARG...]");
    };
    // Nothing run inside may reach this binary writable (see [`super::sealed`]).
    super::sealed::reexec_read_only()?;
    let pid = c.process_pid()?;
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let files = kinds
        .iter()
        .map(|(k, _)| File::open(format!("/proc/{pid}/ns/{k}")))
        .collect::<std::io::Result<Vec<_>>>()
        .ctx(|| format!("open the namespaces of {}", c.config.name))?;
    for (f, (k, flag)) in files.into_iter().zip(kinds) {
        nix::sched::setns(f, flag).ctx(|| format!("join the {k} namespace"))?;
    }
    let mut privs = c.config.privileges.clone();
    if let Some(user) = req.user {
        privs.user = user.to_string();
    }
    let filters = super::init::filters_for(&c.config.seccomp, &privs)?;
    let id = super::privileges::assume(&privs)?;
    let mut env: Vec<String> = c.config.env.clone();
    env.extend(req.env.iter().cloned());
    let env = super::init::with_home(&env, &id);
    let vars = env.iter().map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    let mut cmd = Command::new(prog);
    super::init::with_seccomp(&mut cmd, filters);
    let status = cmd
        .args(args)
        .env_clear()
        .envs(vars)
        .current_dir(req.workdir.unwrap_or(&c.config.workdir))
        .clean_signals()
        .stdin(if req.interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .status();
    match status {
        Ok(s) => Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
        Err(e) => Err(super::init::exec_error(prog, &e)),
    }
}
