//! The docker CLI (Debian's 20.10) against netctld and against dockerd 20.10, side by side
//! on the same busybox image: `run -d` on a user network, `network connect`, `rm -f`,
//! `ps -a` with 100 containers, and docker-compose 1.29.2 `up -d` of a two-service project;
//! medians of N rounds. Then memory: each daemon's RSS idle and with 100 containers, and
//! what one container costs beside its process (netctl's monitor against
//! containerd-shim-runc-v2).
//!
//! Usage: daemon-bench NETCTLD ROUNDS FILL. Runs in private network and mount namespaces
//! with every state folder of both daemons on a private tmpfs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use netctl_bench::{enter_private_namespaces, median, ms, sh, status_field, timed};

/// One daemon under test, as the docker CLI reaches it.
struct Daemon {
    name: &'static str,
    host: String,
    process: Child,
}

impl Daemon {
    fn docker(&self, args: &[&str]) -> (Duration, String) {
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.env("DOCKER_HOST", &self.host).args(args);
        timed(&mut cmd, &format!("{}: docker {args:?}", self.name))
    }

    fn compose(&self, dir: &Path, args: &str) -> Duration {
        let start = Instant::now();
        let ok = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "cd {} && /usr/bin/docker-compose -p bench {args} >/dev/null 2>&1",
                    dir.display()
                ),
            ])
            .env("DOCKER_HOST", &self.host)
            .status()
            .expect("run docker-compose");
        assert!(ok.success(), "{}: docker-compose {args} failed", self.name);
        start.elapsed()
    }

    /// The daemon's resident memory, in KiB.
    fn rss(&self) -> u64 {
        rss_of(self.process.id())
    }
}

fn rss_of(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

/// The mean RSS (KiB) of the processes whose command line contains `pattern`.
fn mean_rss(pattern: &str) -> u64 {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    if pids.is_empty() {
        return 0;
    }
    pids.iter().map(|p| rss_of(*p)).sum::<u64>() / pids.len() as u64
}

fn wait_for(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ok = Command::new("/usr/bin/docker")
            .env("DOCKER_HOST", host)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{host} did not answer");
}

fn start(dir: &Path, netctld: &Path) -> [Daemon; 2] {
    for d in ["/run/netctl", "/var/lib/netctl", "/etc/docker"] {
        sh(&format!("mkdir -p {d} && mount -t tmpfs tmpfs {d}"));
    }
    sh("ip link set lo up; echo '# bench: no upstream' > /tmp/bench-resolv.conf; mount --bind /tmp/bench-resolv.conf /etc/resolv.conf");
    let d = dir.display();
    sh(&format!(
        "mkdir -p {d}/rootfs/bin {d}/rootfs/www {d}/project && cp /bin/busybox {d}/rootfs/bin/ && \
         for a in sh sleep true httpd; do ln -s busybox {d}/rootfs/bin/$a; done && tar -C {d}/rootfs -cf {d}/rootfs.tar ."
    ));
    let netctld_host = format!("unix://{d}/netctld.sock");
    let dockerd_host = format!("unix://{d}/docker.sock");
    let n = Command::new(netctld)
        .args(["-H", &netctld_host])
        .spawn()
        .unwrap();
    let k = Command::new("dockerd")
        .args([
            "--data-root",
            &format!("{d}/docker"),
            "--exec-root",
            &format!("{d}/exec"),
            "--pidfile",
            &format!("{d}/docker.pid"),
            "-H",
            &dockerd_host,
            "--iptables=false",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&netctld_host);
    wait_for(&dockerd_host);
    [
        Daemon {
            name: "netctld",
            host: netctld_host,
            process: n,
        },
        Daemon {
            name: "dockerd",
            host: dockerd_host,
            process: k,
        },
    ]
}

/// Medians of run -d / connect / rm -f over `rounds` fresh containers.
fn measure(d: &Daemon, rounds: usize) -> [Duration; 3] {
    let mut t: [Vec<Duration>; 3] = Default::default();
    for i in 0..rounds {
        let name = format!("b{i}");
        t[0].push(
            d.docker(&[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "benchnet",
                "busybox",
                "sleep",
                "1000",
            ])
            .0,
        );
        t[1].push(d.docker(&["network", "connect", "benchnet2", &name]).0);
        t[2].push(d.docker(&["rm", "-f", &name]).0);
    }
    t.map(median)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let netctld = PathBuf::from(
        args.get(1)
            .expect("usage: daemon-bench NETCTLD ROUNDS FILL"),
    );
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let fill: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    enter_private_namespaces();
    let dir = std::env::temp_dir().join(format!("netctl-daemon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut daemons = start(&dir, &netctld);
    std::fs::write(
        dir.join("project/docker-compose.yml"),
        "version: \"3.8\"\nservices:\n  web:\n    image: busybox\n    command: httpd -f -p 80\n    ports: [\"8090:80\"]\n    networks: {app: {aliases: [front]}}\n  client:\n    image: busybox\n    command: sleep 1000\n    networks: {app: {aliases: [back]}}\nnetworks:\n  app: {}\n",
    )
    .unwrap();
    let tar = dir.join("rootfs.tar").display().to_string();
    let mut rows = Vec::new();
    for d in &daemons {
        sh(&format!(
            "DOCKER_HOST={} /usr/bin/docker import {tar} busybox >/dev/null",
            d.host
        ));
        d.docker(&["network", "create", "benchnet"]);
        d.docker(&["network", "create", "benchnet2"]);
        let idle = d.rss();
        let m = measure(d, rounds);
        let mut compose = Vec::new();
        for _ in 0..rounds.min(5) {
            compose.push(d.compose(&dir.join("project"), "up -d"));
            d.compose(&dir.join("project"), "down -t 0");
        }
        for i in 0..fill {
            d.docker(&[
                "run",
                "-d",
                "--name",
                &format!("fill{i}"),
                "--network",
                "benchnet",
                "busybox",
                "sleep",
                "1000",
            ]);
        }
        let ps: Vec<Duration> = (0..rounds).map(|_| d.docker(&["ps", "-a"]).0).collect();
        let full = d.rss();
        let per_container = if d.name == "netctld" {
            mean_rss("__netctl-monitor")
        } else {
            mean_rss("containerd-shim-runc-v2")
        };
        rows.push((
            d.name,
            m,
            median(compose),
            median(ps),
            idle,
            full,
            per_container,
        ));
        let names: Vec<String> = (0..fill).map(|i| format!("fill{i}")).collect();
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        d.docker(&args);
    }
    println!("| daemon | run -d | network connect | rm -f | compose up -d (2 services) | ps -a ({fill} containers) | RSS idle | RSS with {fill} containers | per container beside its process |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, m, c, p, idle, full, per) in &rows {
        println!(
            "| {name} | {} ms | {} ms | {} ms | {} ms | {} ms | {} MiB | {} MiB | {} MiB |",
            ms(m[0]),
            ms(m[1]),
            ms(m[2]),
            ms(*c),
            ms(*p),
            idle / 1024,
            full / 1024,
            per / 1024
        );
    }
    let (a, b) = (&rows[0], &rows[1]);
    let r = |x: Duration, y: Duration| format!("{:.1}x", y.as_secs_f64() / x.as_secs_f64());
    println!("\n| run -d | connect | rm -f | compose up -d | ps -a |\n|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} |",
        r(a.1[0], b.1[0]),
        r(a.1[1], b.1[1]),
        r(a.1[2], b.1[2]),
        r(a.2, b.2),
        r(a.3, b.3)
    );
    println!("\n(dockerd time / netctld time, both through the same docker CLI: how many times faster netctld is)");
    for d in &mut daemons {
        let _ = d.process.kill();
        let _ = d.process.wait();
    }
}
