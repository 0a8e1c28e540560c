//! `stats`: a user watches a memory hog, a busy loop, a process tree and a client that
//! downloads, and reads what each uses; the table and `--format` fields are Docker 20.10's
//! (asked of a real one side by side).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::{eventually, TestHost};

/// A size as `stats` prints it ("1.5MiB", "23.4kB"), in bytes.
fn bytes(s: &str) -> f64 {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("a size: {s:?}"));
    n * match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other:?} in {s:?}"),
    }
}

/// `stats --no-stream --format F NAME` of netctl, trimmed.
fn stat(host: &TestHost, name: &str, format: &str) -> String {
    host.netctl_ok(&["stats", "--no-stream", "--format", format, name])
        .trim()
        .to_string()
}

/// A hog's memory, a busy loop's CPU, a client's received bytes and a tree's processes, as
/// a user reads them in `stats`.
#[test]
fn stats_show_what_containers_use() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.79.0.0/24", "app"]);
    // Not `sleep` last: busybox sh would exec it and drop the variable.
    let hog = "x=$(head -c 30000000 /dev/zero | tr '\\0' a); sleep 600; echo ${#x}";
    host.netctl_ok(&[
        "run", "-d", "--net", "none", "--name", "hog", "-m", "64m", "busybox", "sh", "-c", hog,
    ]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "busy",
        // Half a CPU: the loop shows in `stats` without starving the tests running beside.
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "tree",
        "busybox",
        "sh",
        "-c",
        "sleep 600 & sleep 600 & sleep 600; true",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--net", "app", "--name", "web", "busybox", "httpd", "-f", "-p", "80", "-h",
        "/",
    ]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--net",
        "app",
        "--name",
        "client",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do wget -q -O /dev/null http://web/bin/busybox; done; sleep 600",
    ]);
    eventually("the hog's memory", Duration::from_secs(20), || {
        let m = stat(&host, "hog", "{{.MemUsage}}");
        let (used, limit) = m.split_once(" / ").unwrap();
        if bytes(used) > 25e6 && limit == "64MiB" {
            Ok(())
        } else {
            Err(m)
        }
    });
    let cpu = stat(&host, "busy", "{{.CPUPerc}}");
    let pct: f64 = cpu.trim_end_matches('%').parse().unwrap();
    assert!(
        pct > 25.0 && pct < 75.0,
        "a busy loop capped at half a CPU uses about half: {cpu}"
    );
    assert_eq!(stat(&host, "tree", "{{.Name}} {{.PIDs}}"), "tree 4");
    eventually("the client's download", Duration::from_secs(20), || {
        let n = stat(&host, "client", "{{.NetIO}}");
        let (rx, _) = n.split_once(" / ").unwrap();
        if bytes(rx) > 1e6 {
            Ok(())
        } else {
            Err(n)
        }
    });
    let all = host.netctl_ok(&["stats", "--no-stream"]);
    assert_eq!(
        all.lines().count(),
        6,
        "a header and the five running containers: {all}"
    );
    host.netctl_ok(&["rm", "-f", "hog", "busy", "tree", "web", "client"]);
    host.netctl_ok(&["network", "rm", "app"]);
}

/// The table's header, `table` templates and a stopped container's row are Docker's.
#[test]
fn the_stats_table_is_dockers() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    host.netctl_ok(&[
        "run", "-d", "--net", "none", "--name", "one", "busybox", "sleep", "600",
    ]);
    assert_eq!(
        docker
            .run(&["run", "-d", "--net", "none", "--name", "one", "dbox", "sleep", "600"])
            .0,
        0
    );
    host.netctl_ok(&[
        "create", "--net", "none", "--name", "idle", "busybox", "true",
    ]);
    assert_eq!(
        docker
            .run(&["create", "--net", "none", "--name", "idle", "dbox", "true"])
            .0,
        0
    );
    let words = |s: &str| -> Vec<String> {
        s.lines()
            .next()
            .unwrap_or("")
            .split("  ")
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    let n = host.netctl_ok(&["stats", "--no-stream"]);
    let d = docker.run(&["stats", "--no-stream"]).1;
    assert_eq!(words(&n), words(&d), "the header");
    for format in [
        "table {{.Name}}\t{{.PIDs}}",
        "{{.Name}} {{.PIDs}} {{.BlockIO}}",
        "table {{.Container}}: {{.MemPerc}}",
    ] {
        let n = host.netctl_ok(&["stats", "--no-stream", "--format", format, "idle"]);
        let d = docker
            .run(&["stats", "--no-stream", "--format", format, "idle"])
            .1;
        assert_eq!(n.replace(' ', ""), d.replace(' ', ""), "{format}");
    }
    let f = "{{.Name}} {{.PIDs}}";
    assert_eq!(
        host.netctl_ok(&["stats", "--no-stream", "--format", f, "one"]),
        docker
            .run(&["stats", "--no-stream", "--format", f, "one"])
            .1
    );
}
