//! `logs` a user reads: a chatty service with `--log-opt max-size/max-file` (rotation), and
//! `--since`/`--until` — side by side with a real Docker 20.10.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::docker::{both, started, Dockerd};
use netctl_netns_tests::{eventually, TestHost};

/// Waits until `logs NAME` shows `line` in both.
fn both_log(host: &TestHost, docker: &Dockerd, name: &str, line: &str) {
    eventually(
        &format!("{name} logged {line}"),
        Duration::from_secs(20),
        || {
            let n = host.netctl(&["logs", name]).1;
            let d = docker.run(&["logs", name]).1;
            if n.contains(line) && d.contains(line) {
                Ok(())
            } else {
                Err(format!("netctl {n:?} docker {d:?}"))
            }
        },
    );
}

/// A service that writes 300 lines into a log capped at 2 files of 2 KB: both keep only the
/// end, in order, and the host holds at most the files asked for.
#[test]
fn a_capped_log_is_rotated_as_dockers_is() {
    let (host, docker) = started();
    let chatty = "for i in $(seq 300); do echo line $i; done; sleep 60";
    let args = [
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        chatty,
    ];
    let ((ncode, _), (dcode, dout)) = both(&host, &docker, &args);
    assert_eq!((ncode, dcode), (0, 0), "{dout}");
    both_log(&host, &docker, "chatty", "line 300\n");
    let shown = host.netctl_ok(&["logs", "chatty"]);
    let numbers: Vec<u32> = shown
        .lines()
        .map(|l| l.trim_start_matches("line ").parse().unwrap())
        .collect();
    assert!(
        numbers.len() < 100 && numbers.len() > 10,
        "kept the end: {}",
        numbers.len()
    );
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none missing: {numbers:?}"
    );
    let dshown = docker.run(&["logs", "chatty"]).1;
    assert!(dshown.lines().count() < 100, "Docker keeps the end too");
    let log = host.netctl_ok(&["inspect", "-f", "{{.LogPath}}", "chatty"]);
    let files = host.sh(&format!("ls {}*", log.trim()));
    assert!(files.lines().count() <= 2, "{files}");
    let f = "{{json .HostConfig.LogConfig}}";
    assert_eq!(
        host.netctl_ok(&["inspect", "-f", f, "chatty"]),
        docker.run(&["inspect", "-f", f, "chatty"]).1
    );
    for opts in [
        &["--log-opt", "colour=red"][..],
        &["--log-opt", "max-size=1k", "--log-opt", "max-file=0"],
    ] {
        let mut args = vec!["run", "--rm", "--net", "none"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "true"]);
        let ((ncode, nout), (dcode, dout)) = both(&host, &docker, &args);
        assert_eq!(ncode, dcode, "{opts:?}: docker {dout:?}, netctl {nout:?}");
    }
}

/// `--since` and `--until` at the time of a record, as `logs -t` printed it.
#[test]
fn since_and_until_cut_the_log_as_dockers_do() {
    let (host, docker) = started();
    let script = "echo early; sleep 1; echo late; sleep 60";
    let args = [
        "run", "-d", "--net", "none", "--name", "timed", "busybox", "sh", "-c", script,
    ];
    let ((ncode, _), (dcode, _)) = both(&host, &docker, &args);
    assert_eq!((ncode, dcode), (0, 0));
    both_log(&host, &docker, "timed", "late\n");
    let at_late = |stamped: &str| {
        stamped
            .lines()
            .find(|l| l.ends_with(" late"))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .to_string()
    };
    let n_at = at_late(&host.netctl_ok(&["logs", "-t", "timed"]));
    let d_at = at_late(&docker.run(&["logs", "-t", "timed"]).1);
    assert_eq!(
        host.netctl_ok(&["logs", "--since", &n_at, "timed"]),
        docker.run(&["logs", "--since", &d_at, "timed"]).1
    );
    assert_eq!(
        host.netctl_ok(&["logs", "--until", &n_at, "timed"]),
        docker.run(&["logs", "--until", &d_at, "timed"]).1
    );
    assert_eq!(
        host.netctl_ok(&["logs", "--since", "1h", "timed"]),
        "early\nlate\n"
    );
    let (code, _, err) = host.netctl(&["logs", "--since", "yesterday", "timed"]);
    assert!(code != 0 && err.contains("invalid time"), "{err}");
}
