//! `events`: a user (or a tool such as compose) watches what happens to a container from
//! `run` to `rm`, and to networks, volumes and images — asked of a real Docker 20.10 and of
//! netctl, and the event streams compared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::{binary, TestHost};

fn now(host: &TestHost) -> String {
    host.sh("date +%s.%N").trim().to_string()
}

/// Runs the same steps on both (`busybox` is Docker's `dbox`).
fn both(host: &TestHost, docker: &Dockerd, steps: &[&[&str]]) {
    for args in steps {
        let (ncode, nout, nerr) = host.netctl(args);
        let dargs: Vec<&str> = args
            .iter()
            .map(|a| if *a == "busybox" { "dbox" } else { a })
            .collect();
        let (dcode, dout) = docker.run(&dargs);
        assert_eq!((ncode, dcode), (0, 0), "{args:?}: {nout}{nerr} / {dout}");
    }
}

/// A container's life, from run to rm, gives Docker's events in Docker's order, with its
/// network's connect and disconnect.
#[test]
fn a_containers_life_gives_dockers_events() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    let since = now(&host);
    both(
        &host,
        &docker,
        &[
            &["run", "-d", "--name", "ev", "busybox", "sleep", "60"],
            &["pause", "ev"],
            &["unpause", "ev"],
            &["rename", "ev", "ev2"],
            &["exec", "ev2", "true"],
            &["kill", "-s", "USR1", "ev2"],
            &["start", "ev2"],
            &["stop", "-t", "1", "ev2"],
            &["rm", "ev2"],
        ],
    );
    let until = now(&host);
    for (filter, format) in [
        ("type=container", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}} {{.Actor.Attributes.signal}}"),
        ("type=network", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}"),
    ] {
        let args = ["events", "--since", &since, "--until", &until, "--filter", filter, "--format", format];
        let n = host.netctl_ok(&args);
        let d = docker.run(&args).1;
        assert_eq!(n, d, "{filter}");
    }
    let line = host.netctl_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=destroy",
    ]);
    let dline = docker
        .run(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=destroy",
        ])
        .1;
    let shape = |l: &str| -> Vec<String> {
        l.replace("dbox", "busybox")
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                if i == 0 || i == 3 {
                    "_".into()
                } else {
                    w.to_string()
                }
            })
            .collect()
    };
    assert_eq!(shape(line.trim()), shape(dline.trim()), "{line} / {dline}");
}

/// Networks, volumes and images have their events too.
#[test]
fn networks_volumes_and_images_give_dockers_events() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    let since = now(&host);
    both(
        &host,
        &docker,
        &[
            &["network", "create", "evnet"],
            &["network", "rm", "evnet"],
            &["volume", "create", "evvol"],
            &["volume", "rm", "evvol"],
            &["tag", "busybox", "evimg:v1"],
            &["rmi", "evimg:v1"],
        ],
    );
    let until = now(&host);
    let args = [
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--filter",
        "type=volume",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ];
    assert_eq!(host.netctl_ok(&args), docker.run(&args).1);
    let args = [
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--format",
        "{{.Action}}",
    ];
    assert_eq!(host.netctl_ok(&args), docker.run(&args).1);
}

/// `events` follows the journal until `--until`: an event that happens while it runs is
/// printed (`--since` is the watcher's start, so it does not matter which comes first).
#[test]
fn events_follow_what_happens_next() {
    let host = TestHost::new();
    host.busybox_image();
    let since = now(&host);
    let until = format!("{}", host.sh("date +%s").trim().parse::<u64>().unwrap() + 3);
    let watcher = Command::new(binary("netctl"))
        .args([
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}} started",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    host.netctl_ok(&[
        "run", "-d", "--net", "none", "--name", "late", "busybox", "true",
    ]);
    let out = watcher.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "late started\n");
}
