//! Healthchecks and `exec -d`: a user gives a service a `--health-cmd` and watches `ps`,
//! inspect and `ps --filter health=` — side by side with a real Docker 20.10 on the same
//! busybox image.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::docker::{started, Dockerd};
use netctl_netns_tests::{eventually, TestHost};

fn both_run(host: &TestHost, docker: &Dockerd, args: &[&str]) {
    let mut n = vec!["run", "-d", "--net", "none"];
    n.extend_from_slice(args);
    let d: Vec<&str> = n
        .iter()
        .map(|a| if *a == "busybox" { "dbox" } else { a })
        .collect();
    host.netctl_ok(&n);
    let (code, out) = docker.run(&d);
    assert_eq!(code, 0, "{out}");
}

/// Waits until both show `want` for `format` of container `name`.
fn both_reach(host: &TestHost, docker: &Dockerd, name: &str, format: &str, want: &str) {
    eventually(&format!("{name}: {want}"), Duration::from_secs(20), || {
        let n = host.netctl(&["inspect", "-f", format, name]).1;
        let d = docker.run(&["inspect", "-f", format, name]).1;
        if n.trim() == want && d.trim() == want {
            Ok(())
        } else {
            Err(format!("netctl {n:?}, docker {d:?}"))
        }
    });
}

/// A service that is unhealthy until a file is made in it, one that always fails, one whose
/// check hangs: each reaches the state Docker gives it, with Docker's log of the probes.
#[test]
fn health_moves_as_dockers_does() {
    let (host, docker) = started();
    let fast = ["--health-interval", "200ms", "--health-retries", "2"];
    let mut late = vec!["--name", "late", "--health-cmd", "test -e /ok"];
    late.extend_from_slice(&fast);
    late.extend_from_slice(&["busybox", "sleep", "60"]);
    both_run(&host, &docker, &late);
    let mut failing = vec!["--name", "failing", "--health-cmd", "echo not yet; exit 3"];
    failing.extend_from_slice(&fast);
    failing.extend_from_slice(&["busybox", "sleep", "60"]);
    both_run(&host, &docker, &failing);
    let mut hangs = vec![
        "--name",
        "hangs",
        "--health-cmd",
        "sleep 30",
        "--health-timeout",
        "300ms",
    ];
    hangs.extend_from_slice(&fast);
    hangs.extend_from_slice(&["busybox", "sleep", "60"]);
    both_run(&host, &docker, &hangs);
    let mut waits = vec![
        "--name",
        "waits",
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
    ];
    waits.extend_from_slice(&["busybox", "sleep", "60"]);
    both_run(&host, &docker, &waits);

    let status = "{{.State.Health.Status}}";
    both_reach(&host, &docker, "late", status, "unhealthy");
    // The service makes its file once both have seen it unhealthy, however slow the machine.
    host.netctl_ok(&["exec", "late", "touch", "/ok"]);
    let (code, out) = docker.run(&["exec", "late", "touch", "/ok"]);
    assert_eq!(code, 0, "{out}");
    both_reach(&host, &docker, "late", status, "healthy");
    both_reach(&host, &docker, "failing", status, "unhealthy");
    both_reach(&host, &docker, "hangs", status, "unhealthy");
    let last = "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}|{{end}}";
    for name in ["failing", "hangs"] {
        let n = host.netctl_ok(&["inspect", "-f", last, name]);
        let d = docker.run(&["inspect", "-f", last, name]).1;
        let tail = |s: &str| {
            s.trim()
                .trim_end_matches('|')
                .rsplit('|')
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(
            tail(&n),
            tail(&d),
            "{name}: the last probe's exit code and output"
        );
    }
    for name in ["late", "waits"] {
        let f = "{{json .Config.Healthcheck}}";
        assert_eq!(
            host.netctl_ok(&["inspect", "-f", f, name]),
            docker.run(&["inspect", "-f", f, name]).1
        );
    }
    let ps = |health: &str| {
        let f = format!("health={health}");
        let mut n: Vec<String> = host
            .netctl_ok(&["ps", "--filter", &f, "--format", "{{.Names}} {{.Status}}"])
            .lines()
            .map(|l| l.replace("Less than a second", "1 second"))
            .collect();
        let mut d: Vec<String> = docker
            .run(&["ps", "--filter", &f, "--format", "{{.Names}} {{.Status}}"])
            .1
            .lines()
            .map(|l| l.replace("Less than a second", "1 second"))
            .collect();
        n.sort();
        d.sort();
        let names = |v: &[String]| {
            v.iter()
                .map(|l| l.split(' ').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&n), names(&d), "health={health}");
        let suffix = |v: &[String]| {
            v.iter()
                .map(|l| l.rsplit('(').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            suffix(&n),
            suffix(&d),
            "health={health}: the status's suffix"
        );
    };
    for health in ["healthy", "unhealthy", "starting", "none"] {
        ps(health);
    }
}

/// Flags Docker refuses are refused alike.
#[test]
fn bad_health_flags_are_refused_as_dockers_are() {
    let (host, docker) = started();
    for flags in [
        &["--no-healthcheck", "--health-retries", "2"][..],
        &["--health-cmd", "true", "--health-retries", "-1"],
        &["--health-cmd", "true", "--health-interval", "10"],
    ] {
        let mut n = vec!["run", "--rm", "--net", "none"];
        n.extend_from_slice(flags);
        let mut d = n.clone();
        n.extend_from_slice(&["busybox", "true"]);
        d.extend_from_slice(&["dbox", "true"]);
        let (ncode, _, nerr) = host.netctl(&n);
        let (dcode, dout) = docker.run(&d);
        assert_eq!(ncode, dcode, "{flags:?}: docker {dout:?}, netctl {nerr:?}");
    }
}

/// `exec -d` returns at once and leaves the command running in the container.
#[test]
fn exec_detached_leaves_the_command_running() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "run", "-d", "--net", "none", "--name", "svc", "busybox", "sleep", "60",
    ]);
    let out = host.netctl_ok(&[
        "exec",
        "-d",
        "svc",
        "sh",
        "-c",
        "sleep 1; echo done > /marker",
    ]);
    assert_eq!(out, "");
    eventually("the detached command ran", Duration::from_secs(10), || {
        let (code, out, err) = host.netctl(&["exec", "svc", "cat", "/marker"]);
        if code == 0 {
            Ok(())
        } else {
            Err(out + &err)
        }
    });
    let (code, _, err) = host.netctl(&["exec", "-d", "svc", "nosuchcommand"]);
    assert_eq!(code, 127, "{err}");
}

/// `exec -t` gives the command a real terminal of the container's own (`tty` names
/// /dev/pts/N there, TERM=xterm), and `exec -it` under a terminal passes keys and the
/// window size, as `run -it` does.
#[test]
fn exec_with_a_terminal_gets_a_real_one() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "run", "-d", "--net", "none", "--name", "svc", "busybox", "sleep", "60",
    ]);
    let out = host.netctl_ok(&["exec", "-t", "svc", "sh", "-c", "tty; echo $TERM"]);
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(lines[1], "xterm");
    let netctl = netctl_netns_tests::binary("netctl").display().to_string();
    let (ok, out) = host.try_sh(&format!(
        "stty cols 100 rows 30 2>/dev/null; echo 'tty; stty size; exit 7' | script -qec '{netctl} exec -it svc sh' /dev/null; echo code=$?"
    ));
    assert!(
        ok && out.contains("/dev/pts/") && out.contains("code=7"),
        "{out}"
    );
    let (code, _, err) = host.netctl(&["exec", "-it", "svc", "true"]);
    assert!(
        code != 0 && err.contains("the input device is not a TTY"),
        "{err}"
    );
}
