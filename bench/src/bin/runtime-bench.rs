//! `netctl` against podman (Debian's package, netavark + aardvark-dns, runc, overlay) on the
//! same busybox image and a DNS-enabled network, side by side: `run -d` until the command
//! returns a running, networked container, `network connect`, `network disconnect`, and
//! `rm -f` (podman's with `-t 0`, so both kill at once as Docker's does), medians of N rounds
//! with 0 and with 100 other containers running.
//!
//! Usage: runtime-bench NETCTL ROUNDS FILL. Runs in private network and mount namespaces
//! with every state folder of both engines on a private tmpfs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netctl_bench::{enter_private_namespaces, median, ms, sh, timed};

/// One engine under test: its command line and environment.
struct Engine {
    name: &'static str,
    bin: PathBuf,
    env: Vec<(String, String)>,
    /// Flags that make `rm -f` kill at once, as Docker's does (podman 4 waits 10 s for
    /// SIGTERM first unless told `-t 0`).
    rm_extra: &'static [&'static str],
}

impl Engine {
    fn run(&self, args: &[&str]) -> (Duration, String) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        timed(&mut cmd, &format!("{} {args:?}", self.name))
    }
}

/// Private state for both engines, a busybox rootfs tarball, podman's configuration.
fn prepare(dir: &Path) -> Vec<(String, String)> {
    for d in [
        "/run/netctl",
        "/var/lib/netctl",
        "/run/netns",
        "/run/containers",
        "/run/libpod",
        "/var/lib/containers",
        "/var/lib/cni",
    ] {
        sh(&format!("mkdir -p {d} && mount -t tmpfs tmpfs {d}"));
    }
    sh("ip link set lo up; echo '# bench: no upstream' > /tmp/bench-resolv.conf; mount --bind /tmp/bench-resolv.conf /etc/resolv.conf");
    let d = dir.display();
    sh(&format!(
        "mkdir -p {d}/rootfs/bin {d}/net {d}/graph {d}/run {d}/tmp && cp /bin/busybox {d}/rootfs/bin/ && \
         for a in sh sleep true; do ln -s busybox {d}/rootfs/bin/$a; done && tar -C {d}/rootfs -cf {d}/rootfs.tar ."
    ));
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\nnetwork_backend = \"netavark\"\nnetwork_config_dir = \"{d}/net\"\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = \"{d}/tmp\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n"
        ),
    )
    .unwrap();
    vec![
        ("CONTAINERS_CONF".into(), format!("{d}/containers.conf")),
        (
            "CONTAINERS_STORAGE_CONF".into(),
            format!("{d}/storage.conf"),
        ),
    ]
}

/// Medians of run -d / connect / disconnect / rm -f over `rounds` fresh containers.
fn measure(e: &Engine, rounds: usize, tag: &str) -> [Duration; 4] {
    let mut t: [Vec<Duration>; 4] = Default::default();
    for i in 0..rounds {
        let name = format!("b{tag}{i}");
        let (d, _) = e.run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "benchnet",
            "busybox",
            "sleep",
            "1000",
        ]);
        t[0].push(d);
        t[1].push(e.run(&["network", "connect", "benchnet2", &name]).0);
        t[2].push(e.run(&["network", "disconnect", "benchnet2", &name]).0);
        t[3].push(e.run(&[&["rm", "-f"][..], e.rm_extra, &[&name]].concat()).0);
    }
    t.map(median)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let netctl = PathBuf::from(
        args.get(1)
            .expect("usage: runtime-bench NETCTL ROUNDS FILL"),
    );
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let fill: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    enter_private_namespaces();
    let dir = tempfile_dir();
    let env = prepare(&dir);
    let engines = [
        Engine {
            name: "netctl",
            bin: netctl,
            env: Vec::new(),
            rm_extra: &[],
        },
        Engine {
            name: "podman",
            bin: "podman".into(),
            env,
            rm_extra: &["-t", "0"],
        },
    ];
    let tar = dir.join("rootfs.tar").display().to_string();
    for e in &engines {
        e.run(&["image", "import", &tar, "busybox"]);
        e.run(&["network", "create", "benchnet"]);
        e.run(&["network", "create", "benchnet2"]);
    }
    println!("| engine | others running | run -d | network connect | network disconnect | rm -f |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for level in [0, fill] {
        for e in &engines {
            for i in 0..level {
                e.run(&[
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
            let m = measure(e, rounds, &level.to_string());
            println!(
                "| {} | {level} | {} ms | {} ms | {} ms | {} ms |",
                e.name,
                ms(m[0]),
                ms(m[1]),
                ms(m[2]),
                ms(m[3])
            );
            results.push((e.name, level, m));
            let names: Vec<String> = (0..level).map(|i| format!("fill{i}")).collect();
            if !names.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(e.rm_extra);
                args.extend(names.iter().map(String::as_str));
                e.run(&args);
            }
        }
    }
    println!();
    println!("| others running | run -d | connect | disconnect | rm -f |");
    println!("|---:|---:|---:|---:|---:|");
    for level in [0, fill] {
        let get = |n: &str| {
            results
                .iter()
                .find(|r| r.0 == n && r.1 == level)
                .map(|r| r.2)
                .unwrap()
        };
        let (a, b) = (get("netctl"), get("podman"));
        let r = |i: usize| format!("{:.1}x", b[i].as_secs_f64() / a[i].as_secs_f64());
        println!("| {level} | {} | {} | {} | {} |", r(0), r(1), r(2), r(3));
    }
    println!("\n(podman time / netctl time: how many times faster netctl is)");
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("netctl-runtime-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
