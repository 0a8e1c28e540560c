//! netctld in a test's namespaces, serving that test's engine state on a socket in the
//! test's folder, and the Debian docker CLI (/usr/bin/docker) pointed at it, as a user with
//! `DOCKER_HOST=unix://...` would run it.

use std::time::Duration;

use crate::{binary, eventually, exit_and_streams, TestHost};

/// A running netctld; it is killed with the test host's other daemons.
pub struct Netctld {
    sock: String,
}

impl Netctld {
    /// Starts netctld and waits until `/_ping` answers through the docker CLI.
    pub fn start(host: &mut TestHost) -> Netctld {
        Netctld::start_with(host, "")
    }

    /// Starts netctld with more arguments after its unix socket (`-H tcp://...` ...), and
    /// waits until `/_ping` answers on that socket.
    pub fn start_with(host: &mut TestHost, args: &str) -> Netctld {
        let dir = host.dir().display().to_string();
        host.spawn(&format!(
            "exec {} -H unix://{dir}/netctld.sock {args} > {dir}/netctld.log 2>&1",
            binary("netctld").display()
        ));
        let daemon = Netctld {
            sock: format!("unix://{dir}/netctld.sock"),
        };
        let log = format!("{dir}/netctld.log");
        eventually(
            "netctld answers",
            Duration::from_secs(20),
            || match daemon.docker(&["version", "--format", "{{.Server.APIVersion}}"]) {
                (0, v, _) => Ok(v),
                (_, o, e) => Err(format!(
                    "{o}{e}netctld's log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )),
            },
        );
        daemon
    }

    /// `docker ARGS` against netctld: exit code, stdout and stderr.
    pub fn docker(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new("/usr/bin/docker")
            .env("DOCKER_HOST", &self.sock)
            .env_remove("DOCKER_API_VERSION")
            .args(args)
            .output()
            .expect("run docker");
        exit_and_streams(&out)
    }

    /// `docker ARGS` against netctld; its stdout, or a panic with what it printed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.docker(args);
        assert_eq!(code, 0, "docker {args:?} failed: {out}{err}");
        out
    }

    /// `kill -9` of this daemon (its containers' monitors are other processes), and waits
    /// until it is gone.
    pub fn kill(&self) {
        // Run directly, not through a shell whose own command line would match.
        let pattern = format!("netctld -H {}", self.sock);
        let signalled = std::process::Command::new("pkill")
            .args(["-KILL", "-f", &pattern])
            .status()
            .expect("run pkill");
        assert!(signalled.success(), "no netctld matched {pattern}");
        eventually("netctld is gone", Duration::from_secs(5), || {
            let left = std::process::Command::new("pgrep")
                .args(["-f", &pattern])
                .output()
                .expect("run pgrep");
            match left.status.success() {
                false => Ok(()),
                true => Err(String::from_utf8_lossy(&left.stdout).into_owned()),
            }
        });
    }

    /// The daemon's process ID.
    pub fn pid(&self) -> u32 {
        let pattern = format!("netctld -H {}", self.sock);
        let out = std::process::Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .expect("run pgrep");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no netctld matches {pattern}"))
    }

    /// How many files the daemon holds open.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The socket, as `DOCKER_HOST` names it.
    pub fn host(&self) -> &str {
        &self.sock
    }

    /// The socket's path.
    pub fn socket(&self) -> &std::path::Path {
        std::path::Path::new(self.sock.trim_start_matches("unix://"))
    }
}
