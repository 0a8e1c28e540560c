//! `-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--pids-limit`: what a user who caps a
//! container sees — in inspect, in the errors for bad limits, and in what the container can
//! do (fork, allocate) — asked of a real Docker 20.10 and of netctl, and compared; and that
//! the cgroups netctl makes hold the limits and are gone with the container.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::docker::{both, started};
use netctl_netns_tests::TestHost;

/// The first line Docker printed, without its prefixes.
fn docker_said(out: &str) -> String {
    out.lines()
        .find(|l| !l.starts_with("WARNING"))
        .unwrap_or_default()
        .trim_start_matches("docker: ")
        .trim_start_matches("Error response from daemon: ")
        .trim_end_matches('.')
        .to_string()
}

/// The limits a user asks for are shown as Docker shows them; limits Docker refuses are
/// refused with its words and exit code, and nothing is made.
#[test]
fn limits_are_shown_and_checked_as_docker_does() {
    let (host, docker) = started();
    let shown = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{json .HostConfig.PidsLimit}} {{.HostConfig.CpusetCpus}} {{.HostConfig.MemoryReservation}}";
    for (name, limits) in [
        (
            "capped",
            &[
                "-m",
                "64m",
                "--cpus",
                "0.5",
                "--cpu-shares",
                "512",
                "--pids-limit",
                "20",
            ][..],
        ),
        ("swapless", &["-m", "32m", "--memory-swap", "-1"]),
        ("pinned", &["--cpuset-cpus", "0"]),
        ("soft", &["-m", "64m", "--memory-reservation", "32m"]),
        ("plain", &[]),
    ] {
        let mut args = vec!["create", "--net", "none", "--name", name];
        args.extend_from_slice(limits);
        args.extend_from_slice(&["busybox", "true"]);
        let ((ncode, nout), (dcode, dout)) = both(&host, &docker, &args);
        assert_eq!((ncode, dcode), (0, 0), "{nout} / {dout}");
        let (n, d) = both(&host, &docker, &["inspect", "-f", shown, name]);
        assert_eq!(n, d, "{name}");
    }
    for limits in [
        &["-m", "1m"][..],
        &["--memory-swap", "1g"],
        &["-m", "64m", "--memory-swap", "32m"],
        &["--cpus", "1000"],
        &["-m", "12q"],
        &["--cpus", "lots"],
        &["--cpuset-cpus", "99"],
        &["--cpuset-cpus", "1-0"],
        &["--memory-reservation", "1m"],
        &["-m", "32m", "--memory-reservation", "64m"],
    ] {
        let mut args = vec!["run", "--rm", "--net", "none"];
        args.extend_from_slice(limits);
        args.extend_from_slice(&["busybox", "true"]);
        let ((ncode, nout), (dcode, dout)) = both(&host, &docker, &args);
        assert_eq!(ncode, dcode, "{limits:?}: docker {dout:?}, netctl {nout:?}");
        let said = docker_said(&dout);
        let key = said.split(':').next().unwrap_or_default();
        assert!(
            nout.contains(key),
            "{limits:?}: docker said {said:?}, netctl {nout:?}"
        );
    }
    assert_eq!(
        host.netctl_ok(&["ps", "-aq"]).lines().count(),
        5,
        "nothing more was made"
    );
}

/// A fork bomb in a container capped at 10 processes, and a shell that allocates more
/// than its 16 MB: Docker and netctl stop them alike.
#[test]
fn limits_bite_as_dockers_do() {
    let (host, docker) = started();
    // The loop runs in the shell itself (no pipeline whose reader would race the loop for
    // the last free PIDs): nine sleeps start, the other forks fail, and once the sleeps are
    // gone grep counts the failures.
    let forks = "i=0; while [ $i -lt 30 ]; do sleep 3 & i=$((i+1)); done 2>/tmp/forks; wait; grep -c fork /tmp/forks; true";
    let (n, d) = both(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "--pids-limit",
            "10",
            "busybox",
            "sh",
            "-c",
            forks,
        ],
    );
    assert_eq!(n, d, "forks refused");
    assert_ne!(n.1.trim(), "0", "some forks were refused: {n:?}");
    let hog = "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let (n, d) = both(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "-m",
            "16m",
            "--memory-swap",
            "16m",
            "busybox",
            "sh",
            "-c",
            hog,
        ],
    );
    assert_eq!(n.0, d.0, "the hog ends the same way: {n:?} / {d:?}");
    assert_ne!(n.0, 0, "the hog did not get its 64 MB");
    let (n, d) = both(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "--cpuset-cpus",
            "0",
            "busybox",
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ],
    );
    assert_eq!(n, d, "pinned to CPU 0");
    assert!(n.1.trim().ends_with("\t0"), "{n:?}");
}

/// The cgroups hold what was asked while the container runs, and are gone with it.
#[test]
fn the_cgroups_hold_the_limits_and_go_with_the_container() {
    let host = TestHost::new();
    host.busybox_image();
    let id = host
        .netctl_ok(&[
            "run",
            "-d",
            "--net",
            "none",
            "-m",
            "64m",
            "--memory-reservation",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            "busybox",
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let files: Vec<(String, &str)> = if v2 {
        let d = format!("/sys/fs/cgroup/netctl/{id}");
        vec![
            (format!("{d}/memory.max"), "67108864"),
            (format!("{d}/memory.low"), "33554432"),
            (format!("{d}/cpu.max"), "50000 100000"),
            (format!("{d}/pids.max"), "20"),
        ]
    } else {
        vec![
            (
                format!("/sys/fs/cgroup/memory/netctl/{id}/memory.limit_in_bytes"),
                "67108864",
            ),
            (
                format!("/sys/fs/cgroup/memory/netctl/{id}/memory.soft_limit_in_bytes"),
                "33554432",
            ),
            (
                format!("/sys/fs/cgroup/cpu/netctl/{id}/cpu.cfs_quota_us"),
                "50000",
            ),
            (format!("/sys/fs/cgroup/pids/netctl/{id}/pids.max"), "20"),
        ]
    };
    let pid = host.netctl_ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    for (file, want) in &files {
        assert_eq!(
            std::fs::read_to_string(file).unwrap().trim(),
            *want,
            "{file}"
        );
        let procs = std::path::Path::new(file).with_file_name("cgroup.procs");
        let inside = std::fs::read_to_string(&procs).unwrap();
        assert!(
            inside.lines().any(|p| p == pid.trim()),
            "{} holds the container",
            procs.display()
        );
    }
    host.netctl_ok(&["rm", "-f", &id]);
    for (file, _) in &files {
        let dir = std::path::Path::new(file).parent().unwrap();
        assert!(!dir.exists(), "{} is gone", dir.display());
    }
}

/// `update` of a running container, as Docker's: the new limits and restart policy show in
/// inspect alike, the memory limit holds in the cgroup its processes are in (one made for a
/// container that started without limits), and a bad limit is refused in Docker's words with
/// nothing changed.
#[test]
fn update_changes_a_running_containers_limits_as_dockers_does() {
    let (host, docker) = started();
    let run = [
        "run", "-d", "--name", "up", "--net", "none", "busybox", "sleep", "100",
    ];
    let ((ncode, _), (dcode, dout)) = both(&host, &docker, &run);
    assert_eq!((ncode, dcode), (0, 0), "{dout}");
    let update = [
        "update",
        "--memory",
        "32m",
        "--memory-swap",
        "64m",
        "--cpus",
        "0.5",
        "--restart",
        "on-failure:2",
        "up",
    ];
    let (n, d) = both(&host, &docker, &update);
    assert_eq!(n, d, "update prints the container");
    let shown = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}";
    let (n, d) = both(&host, &docker, &["inspect", "-f", shown, "up"]);
    assert_eq!(n, d);
    assert_eq!(n.1.trim(), "33554432 67108864 500000000 on-failure:2");
    let pid = host.netctl_ok(&["inspect", "-f", "{{.State.Pid}}", "up"]);
    let limit = host.sh(&format!(
        "g=$(awk -F: '$2 ~ /memory/ || $2 == \"\" {{print $3; exit}}' /proc/{}/cgroup); \
         cat /sys/fs/cgroup/memory$g/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup$g/memory.max",
        pid.trim()
    ));
    assert_eq!(limit.trim(), "33554432");
    let ((ncode, nout), (dcode, dout)) = both(&host, &docker, &["update", "--memory", "1k", "up"]);
    assert_eq!(ncode, dcode, "docker {dout:?}, netctl {nout:?}");
    let said = docker_said(&dout);
    assert!(
        nout.contains(said.split(':').next().unwrap_or_default()),
        "docker said {said:?}, netctl {nout:?}"
    );
    let (n, _) = both(
        &host,
        &docker,
        &["inspect", "-f", "{{.HostConfig.Memory}}", "up"],
    );
    assert_eq!(n.1.trim(), "33554432");
}

/// What a JVM or Go runtime reads to size itself: the container's own limits under
/// /sys/fs/cgroup, as Docker shows them (read-only).
#[test]
fn a_container_reads_its_own_limits_under_sys_fs_cgroup() {
    let (host, docker) = started();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (memory, cpu) = if v2 {
        (
            "cat /sys/fs/cgroup/memory.max",
            "cat /sys/fs/cgroup/cpu.max",
        )
    } else {
        (
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        )
    };
    for (flag, value, read) in [("-m", "64m", memory), ("--cpus", "0.5", cpu)] {
        let args = [
            "run", "--rm", "--net", "none", flag, value, "busybox", "sh", "-c", read,
        ];
        let (n, d) = both(&host, &docker, &args);
        assert_eq!(n, d, "{args:?}");
        assert_eq!(n.0, 0, "{n:?}");
    }
    let write = format!(
        "{} 2>&1; echo 1 > /sys/fs/cgroup/x 2>&1 || echo read-only",
        memory
    );
    let (code, out, err) = host.netctl(&[
        "run", "--rm", "--net", "none", "-m", "64m", "busybox", "sh", "-c", &write,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("read-only\n"), "{out}");
}
