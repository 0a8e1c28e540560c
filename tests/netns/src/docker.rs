//! A real dockerd (Debian's docker.io, /usr/bin/docker as its CLI) in a test's namespaces,
//! with its own state folders (tmpfs over /run and /etc/docker there, so nothing of the
//! machine's is touched), and `dbox`: the tests' busybox image imported into it, so one
//! command can be asked of Docker and of netctl side by side.

use std::time::Duration;

use crate::{busybox_rootfs, eventually, TestHost};

/// A running dockerd; its containers are removed when it is dropped.
pub struct Dockerd {
    sock: String,
}

impl Dockerd {
    /// Starts dockerd (`--iptables=false` unless `iptables`) and imports `dbox`.
    pub fn start(host: &mut TestHost, iptables: bool) -> Dockerd {
        let dir = host.dir().join("docker");
        std::fs::create_dir_all(&dir).expect("docker folder");
        // /run/netctl is re-made on the new /run; nothing netctl made is there yet.
        host.sh("mount -t tmpfs tmpfs /run && mkdir -p /run/netctl && mount -t tmpfs tmpfs /run/netctl && mount -t tmpfs tmpfs /etc/docker");
        let d = dir.display();
        host.spawn(&format!(
            "exec dockerd --data-root {d}/data --exec-root {d}/exec --pidfile {d}/docker.pid -H unix://{d}/docker.sock --iptables={iptables} > {d}/log 2>&1"
        ));
        let docker = Dockerd {
            sock: format!("unix://{d}/docker.sock"),
        };
        eventually("dockerd answers", Duration::from_secs(20), || {
            match host.try_sh(&docker.cmd("info --format '{{.ServerVersion}}'")) {
                (true, v) => Ok(v),
                (false, out) => Err(out),
            }
        });
        let root = busybox_rootfs(host.dir());
        host.sh(&format!(
            "tar -C {} -c . | {}",
            root.display(),
            docker.cmd("import - dbox")
        ));
        docker
    }

    /// `docker ARGS` as a command against this dockerd: exit code and stdout + stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let out = std::process::Command::new("/usr/bin/docker")
            .arg("-H")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("run docker");
        let (code, o, e) = crate::exit_and_streams(&out);
        (code, o + &e)
    }

    /// The shell command running `docker ARGS` against this dockerd.
    pub fn cmd(&self, args: &str) -> String {
        format!("/usr/bin/docker -H {} {args}", self.sock)
    }
}

/// A test host with a running dockerd and the busybox image in both (netctl's `busybox`,
/// Docker's `dbox`).
pub fn started() -> (TestHost, Dockerd) {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    (host, docker)
}

/// `args` run by netctl and by Docker (`busybox` naming Docker's `dbox`): each one's exit code
/// and output (stdout and stderr).
pub fn both(host: &TestHost, docker: &Dockerd, args: &[&str]) -> ((i32, String), (i32, String)) {
    let (code, out, err) = host.netctl(args);
    let dargs: Vec<&str> = args
        .iter()
        .map(|a| if *a == "busybox" { "dbox" } else { a })
        .collect();
    ((code, out + &err), docker.run(&dargs))
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let all = format!("{} ps -aq", self.cmd(""));
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "ids=$({all}); [ -z \"$ids\" ] || {} rm -f $ids",
                    self.cmd("")
                ),
            ])
            .output();
    }
}
