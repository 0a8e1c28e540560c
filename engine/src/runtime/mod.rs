//! The engine's container runtime (the project card's `runtime/`): what a minimal OCI-style
//! runtime does, in the engine's own processes — the monitor of a running container
//! ([`monitor`]), the two stages of its init ([`init`]: namespaces, the overlay root through
//! [`rootfs`], /dev, /proc, capabilities, seccomp, cgroups), exec ([`exec`]), terminals
//! ([`console`]), the attach server ([`attach`]), the freezer and resource cgroups. The engine
//! starts them by executing the binary it is linked into (the running executable) with the
//! arguments of an [`Internal`] command; that binary hands its arguments to
//! [`crate::internal::run_internal`] before anything else. They report to whoever started them
//! with typed [`Report`]s, one JSON line each, on their stderr pipe (the helpers on fd 3).

pub mod attach;
pub mod cgroup;
pub mod console;
pub mod exec;
pub mod init;
pub mod kernel;
pub mod monitor;
pub mod privileges;
pub mod reaper;
pub mod resources;
pub mod rootfs;
pub mod sealed;
pub mod seccomp;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;
use crate::error::{Context, Error, Result};

/// An internal command: what the engine starts the running binary with.
#[derive(Debug, Clone, PartialEq)]
pub enum Internal {
    /// Monitor container `id` of the engine configured by `config`; with `attach`, keep
    /// its output for the first client (an attached run); `tty_size` for a `-t` container.
    Monitor {
        /// The engine's configuration, as its front end gave it.
        config: Box<EngineConfig>,
        /// The container's full ID.
        id: String,
        /// Keep the output for the client that attaches next.
        attach: bool,
        /// Rows and columns of the attaching terminal.
        tty_size: Option<(u16, u16)>,
    },
    /// Starts the monitor command it holds as a process of its own and exits at once: the
    /// monitor is then nobody's child (a long-lived caller such as the API daemon is left
    /// no process to reap), and its stderr still reports to the caller.
    Launch(Box<Internal>),
    /// Stage 1 of a container's process, from its init spec.
    Init(PathBuf),
    /// Stage 2 (PID 1 of the container), from its init spec.
    Init2(PathBuf),
    /// A command in a running container ([`exec::ExecSpec`] as JSON).
    Exec(String),
    /// Files in or out of a container ([`crate::copy::CopySpec`] as JSON).
    Copy(String),
}

const MONITOR: &str = "__netctl-monitor";
const LAUNCH: &str = "__netctl-launch";
const INIT: &str = "__netctl-init";
const INIT2: &str = "__netctl-init2";
const EXEC: &str = "__netctl-exec";
const COPY: &str = "__netctl-copy";

impl Internal {
    /// The arguments (after the program name) that start this command.
    pub fn args(&self) -> Vec<std::ffi::OsString> {
        match self {
            Internal::Monitor {
                config,
                id,
                attach,
                tty_size,
            } => {
                let tty = tty_size.map_or_else(String::new, |(r, c)| format!("{r},{c}"));
                vec![
                    MONITOR.into(),
                    serde_json::to_string(config).unwrap_or_default().into(),
                    id.into(),
                    if *attach { "attach" } else { "" }.into(),
                    tty.into(),
                ]
            }
            Internal::Launch(inner) => {
                let mut args = vec![LAUNCH.into()];
                args.extend(inner.args());
                args
            }
            Internal::Init(spec) => vec![INIT.into(), spec.into()],
            Internal::Init2(spec) => vec![INIT2.into(), spec.into()],
            Internal::Exec(spec) => vec![EXEC.into(), spec.into()],
            Internal::Copy(spec) => vec![COPY.into(), spec.into()],
        }
    }

    /// The internal command these arguments (after the program name) start, if any.
    pub fn parse(args: &[String]) -> Option<Internal> {
        match args {
            [m, config, id, attach, tty] if m == MONITOR => Some(Internal::Monitor {
                config: serde_json::from_str(config).ok()?,
                id: id.clone(),
                attach: attach == "attach",
                tty_size: tty
                    .split_once(',')
                    .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?))),
            }),
            [l, rest @ ..] if l == LAUNCH => match Internal::parse(rest)? {
                m @ Internal::Monitor { .. } => Some(Internal::Launch(Box::new(m))),
                _ => None,
            },
            [i, spec] if i == INIT => Some(Internal::Init(spec.into())),
            [i, spec] if i == INIT2 => Some(Internal::Init2(spec.into())),
            [e, spec] if e == EXEC => Some(Internal::Exec(spec.clone())),
            [c, spec] if c == COPY => Some(Internal::Copy(spec.clone())),
            _ => None,
        }
    }
}

/// Why a container could not be started, as it travels between processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The command does not exist.
    CommandNotFound {
        /// The command.
        command: String,
    },
    /// The command cannot be run.
    CommandNotRunnable {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// Anything else.
    Other {
        /// What went wrong.
        message: String,
    },
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        match e.root() {
            Error::CommandNotFound(command) => Failure::CommandNotFound {
                command: command.clone(),
            },
            Error::CommandNotRunnable { command, reason } => Failure::CommandNotRunnable {
                command: command.clone(),
                reason: reason.clone(),
            },
            _ => Failure::Other {
                message: e.report(),
            },
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::CommandNotFound { command } => Error::CommandNotFound(command),
            Failure::CommandNotRunnable { command, reason } => {
                Error::CommandNotRunnable { command, reason }
            }
            Failure::Other { message } => Error::State(message),
        }
    }
}

/// What one of the engine's processes tells whoever started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// Init stage 1 started the container's first process, host PID `pid`.
    Started {
        /// Its PID.
        pid: u32,
    },
    /// The monitor runs the container.
    Running,
    /// Starting failed; everything made was undone.
    Failed(Failure),
}

impl Report {
    /// Writes the report as one JSON line (best effort: the reader may be gone).
    pub fn send(&self, to: &mut impl Write) {
        if let Ok(mut line) = serde_json::to_vec(self) {
            line.push(b'\n');
            let _ = to.write_all(&line);
        }
    }
}

/// The descriptor a helper ([`Internal::Exec`], [`Internal::Copy`]) reports on.
const STATUS_FD: i32 = 3;

/// Starts `cmd`, an engine helper, with a status pipe on descriptor 3, and reads its
/// reports until it closes the pipe (it ran what it was asked, or failed): the child, or
/// the failure it reported.
pub fn spawn_helper(mut cmd: std::process::Command) -> Result<std::process::Child> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (status_r, status_w) = std::io::pipe().ctx(|| "make a helper's status pipe".into())?;
    let status_fd = status_w.as_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: between fork and exec this only calls dup2, which is async-signal-safe and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::dup2(status_fd, STATUS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().ctx(|| "start an engine helper".into())?;
    drop(status_w);
    for report in reports(status_r) {
        if let Report::Failed(f) = report {
            let _ = child.wait();
            return Err(f.into());
        }
    }
    Ok(child)
}

/// In a helper: its status pipe. Until the helper runs from the read-only view of the
/// binary ([`sealed::reexec_read_only`]) the pipe is kept open across that exec.
pub fn helper_status() -> std::fs::File {
    use std::os::fd::FromRawFd;
    #[allow(unsafe_code)]
    // SAFETY: descriptor 3 is the status pipe the caller dup2'ed there for this process;
    // nothing else in it owns that descriptor.
    let status = std::fs::File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(STATUS_FD) });
    let flags = if sealed::runs_read_only() {
        rustix::io::FdFlags::CLOEXEC
    } else {
        rustix::io::FdFlags::empty()
    };
    let _ = rustix::io::fcntl_setfd(&status, flags);
    status
}

/// The reports on `from`, until end of file (lines that are not reports are skipped).
pub fn reports(from: impl Read) -> impl Iterator<Item = Report> {
    BufReader::new(from)
        .lines()
        .map_while(std::io::Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_commands_round_trip_through_their_arguments() {
        for c in [
            Internal::Monitor {
                config: Box::new(EngineConfig::new(
                    "/r".as_ref(),
                    "/run".as_ref(),
                    "/bin/netctl".as_ref(),
                )),
                id: "ab".into(),
                attach: true,
                tty_size: Some((24, 80)),
            },
            Internal::Monitor {
                config: Box::new(EngineConfig::new(
                    "/r".as_ref(),
                    "/run".as_ref(),
                    "/bin/netctl".as_ref(),
                )),
                id: "ab".into(),
                attach: false,
                tty_size: None,
            },
            Internal::Init("/spec.json".into()),
        ] {
            let args: Vec<String> = c
                .args()
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(Internal::parse(&args), Some(c));
        }
        assert_eq!(Internal::parse(&["ps".into()]), None);
    }

    #[test]
    fn failures_keep_their_kind_across_the_pipe() {
        let mut buf = Vec::new();
        Report::Started { pid: 7 }.send(&mut buf);
        Report::Failed(Failure::from(
            &Error::CommandNotFound("x".into()).context("start"),
        ))
        .send(&mut buf);
        let got: Vec<Report> = reports(&buf[..]).collect();
        assert_eq!(got[0], Report::Started { pid: 7 });
        let Report::Failed(f) = &got[1] else {
            panic!("{got:?}")
        };
        assert!(matches!(Error::from(f.clone()), Error::CommandNotFound(c) if c == "x"));
    }
}
