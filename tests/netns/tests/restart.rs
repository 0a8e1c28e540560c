//! `--restart`: what a user who relies on restart policies does — a crashing service, a
//! service stopped by hand, a host that reboots — asked of netctl and, where Docker's answer
//! is not recorded, of a real Docker 20.10 on the same busybox image.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::{eventually, TestHost};

fn netctl_inspect(host: &TestHost, name: &str, format: &str) -> String {
    host.netctl_ok(&["inspect", "-f", format, name])
        .trim()
        .to_string()
}

fn docker_inspect(docker: &Dockerd, name: &str, format: &str) -> String {
    let (code, out) = docker.run(&["inspect", "-f", format, name]);
    assert_eq!(code, 0, "docker inspect {name}: {out}");
    out.trim().to_string()
}

/// Waits until `inspect -f format` shows `want`.
fn settles(what: &str, mut read: impl FnMut() -> String, want: &str) {
    eventually(what, Duration::from_secs(20), || {
        let now = read();
        if now == want {
            Ok(())
        } else {
            Err(now)
        }
    });
}

/// A user gives a crashing command `on-failure:2` and a clean one `on-failure`, and checks
/// what inspect says once the policy has given up, and what a bad policy gets — on Docker
/// and on netctl.
#[test]
fn restart_policies_answer_exits_and_bad_input_as_docker_does() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    let shown = "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}} {{json .HostConfig.RestartPolicy}}";
    for (name, policy, script) in [
        ("crashes", "on-failure:2", "exit 3"),
        ("succeeds", "on-failure", "exit 0"),
        ("plain", "no", "exit 4"),
    ] {
        let (code, out) = docker.run(&[
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            name,
            "--restart",
            policy,
            "dbox",
            "sh",
            "-c",
            script,
        ]);
        assert_eq!(code, 0, "{out}");
        host.netctl_ok(&[
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sh",
            "-c",
            script,
        ]);
    }
    for name in ["crashes", "succeeds", "plain"] {
        let want = eventually("Docker's policy gives up", Duration::from_secs(20), || {
            let s = docker_inspect(&docker, name, shown);
            if s.starts_with("exited") {
                Ok(s)
            } else {
                Err(s)
            }
        });
        settles(
            &format!("{name} as Docker's {want}"),
            || netctl_inspect(&host, name, shown),
            &want,
        );
    }
    assert!(
        netctl_inspect(&host, "crashes", shown).starts_with("exited 3 2 "),
        "on-failure:2 restarts twice"
    );
    for args in [
        &["--restart", "sometimes"][..],
        &["--restart", "always:2"],
        &["--restart", "on-failure:x"],
        &["--restart", "on-failure:-1"],
        &["--rm", "--restart", "always"],
    ] {
        let mut d = vec!["run", "--net", "none"];
        d.extend_from_slice(args);
        d.extend_from_slice(&["dbox", "true"]);
        let (dcode, dout) = docker.run(&d);
        let mut n = vec!["run", "--net", "none"];
        n.extend_from_slice(args);
        n.extend_from_slice(&["busybox", "true"]);
        let (ncode, nout, nerr) = host.netctl(&n);
        assert_eq!(
            ncode, dcode,
            "{args:?}: docker said {dout}, netctl {nout}{nerr}"
        );
        let said = dout
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("docker: ")
            .trim_start_matches("Error response from daemon: ")
            .trim_end_matches('.')
            .to_string();
        let words: Vec<&str> = said.split(['.', ':']).collect();
        assert!(
            nerr.contains(words[0].trim()),
            "{args:?}: docker said {said:?}, netctl {nerr:?}"
        );
    }
    assert_eq!(
        host.netctl(&["ps", "-aq", "--filter", "status=created"]).1,
        "",
        "a refused policy leaves no container"
    );
}

/// A user runs a service with `--restart always` that keeps failing, then stops it: the
/// service comes back each time with the same address and its own files, `ps` says
/// `Restarting` while it waits, and `stop` ends it at once, even in the middle of a back-off.
#[test]
fn a_restarted_container_keeps_its_address_and_files_until_stopped() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.77.0.0/24", "app"]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--net",
        "app",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo run >> /runs; echo runs=$(wc -l < /runs); exit 1",
    ]);
    let address = "{{.NetworkSettings.Networks.app.IPAddress}}";
    let first = eventually("an address", Duration::from_secs(10), || {
        let a = netctl_inspect(&host, "svc", address);
        if a.is_empty() {
            Err("none".into())
        } else {
            Ok(a)
        }
    });
    eventually("four runs, one file", Duration::from_secs(20), || {
        let logs = host.netctl_ok(&["logs", "svc"]);
        if logs.contains("runs=4") {
            Ok(())
        } else {
            Err(logs)
        }
    });
    assert_eq!(
        netctl_inspect(&host, "svc", address),
        first,
        "same address after restarts"
    );
    // Back-offs of 100, 200, 400, 800, 1600 ms ...: catch it waiting.
    eventually("ps shows it restarting", Duration::from_secs(20), || {
        let ps = host.netctl_ok(&["ps", "--format", "{{.Status}}"]);
        let state = netctl_inspect(&host, "svc", "{{.State.Status}} {{.State.Restarting}}");
        if ps.starts_with("Restarting (1) ") && state == "restarting true" {
            Ok(())
        } else {
            Err(format!("{ps} / {state}"))
        }
    });
    let count: u32 = netctl_inspect(&host, "svc", "{{.RestartCount}}")
        .parse()
        .unwrap();
    assert!(count >= 3, "restarts counted: {count}");
    let (code, _, err) = host.netctl(&["exec", "svc", "true"]);
    assert!(
        code != 0 && err.contains("is restarting, wait until the container is running"),
        "{err}"
    );
    let monitor: i32 = host
        .sh(&ours("[_]_netctl-monitor"))
        .trim()
        .parse()
        .expect("this test's one monitor");
    let began = std::time::Instant::now();
    host.netctl_ok(&["stop", "svc"]);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "stop waited out the back-off"
    );
    assert!(
        !netctl_netns_tests::alive(monitor),
        "the monitor (which restarts) is gone once stop returns"
    );
    assert_eq!(
        netctl_inspect(&host, "svc", "{{.State.Status}} {{.State.Restarting}}"),
        "exited false"
    );
    host.netctl_ok(&["rm", "svc"]);
    host.netctl_ok(&["network", "rm", "app"]);
}

/// A shell command listing the processes matching `pattern` that run in this test's own
/// network namespace (never another test's, running beside it).
fn ours(pattern: &str) -> String {
    format!(
        "for p in $(pgrep -f '{pattern}'); do [ \"$(readlink /proc/$p/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ] && echo $p; done; true"
    )
}

/// Kills this test's monitors and DNS server (the containers' processes go with the
/// repair a reboot's first command makes) and forgets the run dir, as a reboot does.
fn reboot(host: &TestHost) {
    let kill = |pattern: &str| format!("kill -9 $({}) 2>/dev/null;", ours(pattern));
    host.sh(&format!(
        "{} {} \
         for m in $(awk '$2 ~ \"^/run/netctl/\" {{print $2}}' /proc/self/mounts | sort -r); do umount -l $m; done; \
         umount -l /run/netctl; mount -t tmpfs tmpfs /run/netctl",
        kill("[_]_netctl-monitor"),
        kill("[n]etctl-dns")
    ));
}

/// The host reboots: the first netctl command afterwards brings back the `always`
/// containers (also one the user had stopped), and the `unless-stopped` ones the user had
/// not stopped, on their networks; the others stay down.
#[test]
fn containers_come_back_after_a_reboot_as_their_policies_say() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.78.0.0/24", "app"]);
    for (name, policy) in [
        ("always", "always"),
        ("always-stopped", "always"),
        ("unless", "unless-stopped"),
        ("unless-stopped", "unless-stopped"),
        ("plain", "no"),
    ] {
        host.netctl_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--net",
            "app",
            "--net-alias",
            name,
            "--restart",
            policy,
            "busybox",
            "sleep",
            "600",
        ]);
    }
    host.netctl_ok(&["stop", "-t", "1", "always-stopped", "unless-stopped"]);
    reboot(&host);
    let running = host.netctl_ok(&["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = running.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["always", "always-stopped", "unless"]);
    let (ok, out) = host.try_sh(&format!(
        "nsenter --net={} dig +short +time=2 unless @127.0.0.11",
        netctl_inspect(&host, "always", "{{.NetworkSettings.SandboxKey}}")
    ));
    assert!(ok && out.contains("10.78.0."), "names resolve again: {out}");
    assert_eq!(
        netctl_inspect(&host, "plain", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 255"
    );
    host.netctl_ok(&[
        "rm",
        "-f",
        "always",
        "always-stopped",
        "unless",
        "unless-stopped",
        "plain",
    ]);
    host.netctl_ok(&["network", "rm", "app"]);
}
