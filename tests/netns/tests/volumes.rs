//! Volumes, attach and the rest of the seed notes' lifecycle, as a user types them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use netctl_netns_tests::{binary, eventually, TestHost};
use serde_json::Value;

fn inspect(host: &TestHost, what: &str) -> Value {
    let v: Value = serde_json::from_str(&host.netctl_ok(&["inspect", what])).unwrap();
    v[0].clone()
}

/// `-v /host:/ctr` shares a folder both ways (made when missing), `:ro` refuses writes, a
/// single file binds too.
#[test]
fn bind_mounts_share_a_folder_both_ways() {
    let host = TestHost::new();
    host.busybox_image();
    let shared = host.dir().join("shared");
    let file = host.dir().join("note.txt");
    std::fs::write(&file, "from the host file\n").unwrap();
    let v = format!("{}:/data", shared.display());
    let f = format!("{}:/etc/note.txt:ro", file.display());
    let out = host.netctl_ok(&[
        "run", "--rm", "-v", &v, "-v", &f, "busybox", "sh", "-c",
        "echo from-container > /data/c.txt; cat /etc/note.txt; echo x >> /etc/note.txt || echo refused",
    ]);
    assert_eq!(out, "from the host file\nrefused\n");
    assert_eq!(
        std::fs::read_to_string(shared.join("c.txt")).unwrap(),
        "from-container\n"
    );
    std::fs::write(shared.join("h.txt"), "from-host\n").unwrap();
    assert_eq!(
        host.netctl_ok(&["run", "--rm", "-v", &v, "busybox", "cat", "/data/h.txt"]),
        "from-host\n"
    );
}

/// A named volume is filled with the image's content on first use, outlives its container,
/// is seen by the next one and through `--volumes-from`; `volume rm` refuses while a
/// container uses it; `rm -v` takes anonymous volumes along.
#[test]
fn named_volumes_outlive_containers_and_are_shared() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "site:/www",
        "busybox",
        "sh",
        "-c",
        "ls /www; echo kept > /www/state",
    ]);
    let (code, _, err) = host.netctl(&["volume", "rm", "site"]);
    assert_eq!(code, 1);
    assert!(err.contains("volume is in use - [writer]"), "{err}");
    host.netctl_ok(&["rm", "writer"]);
    let out = host.netctl_ok(&[
        "run",
        "--rm",
        "-v",
        "site:/srv",
        "busybox",
        "sh",
        "-c",
        "cat /srv/state /srv/index.html",
    ]);
    assert_eq!(
        out, "kept\nhello from busybox httpd\n",
        "the image's /www was copied in, the write kept"
    );
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "site:/www",
        "-v",
        "/scratch",
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = host.netctl_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder:ro",
        "busybox",
        "sh",
        "-c",
        "cat /www/state; touch /www/x || echo read-only",
    ]);
    assert_eq!(out, "kept\nread-only\n");
    let vols = host.netctl_ok(&["volume", "ls", "-q"]);
    assert_eq!(
        vols.lines().count(),
        2,
        "site and holder's anonymous one: {vols}"
    );
    let info: Value =
        serde_json::from_str(&host.netctl_ok(&["volume", "inspect", "site"])).unwrap();
    assert_eq!(info[0]["Driver"], "local");
    assert!(info[0]["Mountpoint"]
        .as_str()
        .unwrap()
        .ends_with("/volumes/site/_data"));
    assert!(!info[0]["CreatedAt"].as_str().unwrap().is_empty());
    host.netctl_ok(&["rm", "-f", "-v", "holder"]);
    assert_eq!(
        host.netctl_ok(&["volume", "ls", "-q"]),
        "site\n",
        "rm -v removed the anonymous volume"
    );
    assert_eq!(host.netctl_ok(&["volume", "rm", "site"]), "site\n");

    // The seed notes' spellings: `volume create --name`, `inspect --type volume`,
    // `container inspect`, `--mount` with spaces after the commas (quoted).
    host.netctl_ok(&["volume", "create", "--name", "myvolume"]);
    let v = host.netctl_ok(&["inspect", "--type", "volume", "myvolume"]);
    assert!(v.contains("\"Driver\": \"local\""), "{v}");
    host.netctl_ok(&[
        "run",
        "--name",
        "mv",
        "--mount",
        "type=volume, source=myvolume, target=/root",
        "busybox",
        "touch",
        "/root/x",
    ]);
    let c: Value = serde_json::from_str(&host.netctl_ok(&["container", "inspect", "mv"])).unwrap();
    assert_eq!(c[0]["Mounts"][0]["Name"], "myvolume");
    assert_eq!(c[0]["Mounts"][0]["Destination"], "/root");
    assert_eq!(
        c[0]["Mounts"][0]["Source"], "/var/lib/netctl/volumes/myvolume/_data",
        "a volume's Source is its _data folder, as in Docker"
    );
    host.netctl_ok(&["rm", "mv"]);
    let pruned = host.netctl_ok(&["volume", "prune", "-f", "-a"]);
    assert!(pruned.contains("myvolume"), "{pruned}");
}

/// `attach` sees what the container writes after it attached; `pause` stops a counter and
/// `unpause` resumes it; `top`, `port`, `rename`, `wait` answer like Docker's.
#[test]
fn attach_pause_top_port_rename_wait() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "-p",
        "8080:80",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; echo tick $i; sleep 0.1; done",
    ]);
    let mut att = Command::new(binary("netctl"))
        .args(["attach", "counter"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(att.stdout.take().unwrap()).lines();
    let seen: Vec<String> = (0..2).map(|_| lines.next().unwrap().unwrap()).collect();
    let _ = att.kill();
    let _ = att.wait();
    let logged = host.netctl_ok(&["logs", "counter"]);
    assert!(
        seen.iter().all(|l| l.starts_with("tick ")) && logged.contains(&seen[0]),
        "attach saw new ticks: {seen:?}"
    );

    let n = || {
        host.netctl_ok(&["exec", "counter", "cat", "/tmp/n"])
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    host.netctl_ok(&["pause", "counter"]);
    assert!(host.netctl_ok(&["ps"]).contains("(Paused)"));
    assert_eq!(inspect(&host, "counter")["State"]["Status"], "paused");
    let pid = inspect(&host, "counter")["State"]["Pid"].as_u64().unwrap();
    assert!(frozen(pid), "the container's cgroup is frozen");
    let before = host.netctl_ok(&["logs", "counter"]).lines().count();
    host.netctl_ok(&["unpause", "counter"]);
    assert!(!frozen(pid), "thawed");
    eventually("the counter runs again", Duration::from_secs(3), || {
        let now = host.netctl_ok(&["logs", "counter"]).lines().count();
        if now > before {
            Ok(())
        } else {
            Err(format!("{now} log lines"))
        }
    });
    let a = n();
    eventually("the counter counts on", Duration::from_secs(3), || {
        let now = n();
        if now > a {
            Ok(())
        } else {
            Err(format!("{now}"))
        }
    });

    let top = host.netctl_ok(&["top", "counter"]);
    assert!(
        top.starts_with("UID") && top.contains("sh -c i=0") && top.contains("sleep"),
        "{top}"
    );
    assert_eq!(
        host.netctl_ok(&["port", "counter"]),
        "80/tcp -> 0.0.0.0:8080\n80/tcp -> :::8080\n",
        "IPv4 and the IPv6 twin, as Docker lists them"
    );
    assert_eq!(
        host.netctl_ok(&["port", "counter", "80"]),
        "0.0.0.0:8080\n:::8080\n",
        "with a port asked, Docker prints the host addresses alone"
    );
    host.netctl_ok(&["rename", "counter", "ticker"]);
    let net: Value =
        serde_json::from_str(&host.netctl_ok(&["network", "inspect", "bridge"])).unwrap();
    let names: Vec<&str> = net[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(names, ["ticker"], "network inspect shows the new name");
    assert!(host
        .netctl_ok(&["ps", "--format", "{{.ID}} {{.Names}}"])
        .trim()
        .ends_with(" ticker"));

    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 7",
    ]);
    assert_eq!(host.netctl_ok(&["wait", "short"]), "7\n");
    let exited = host.netctl_ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(exited, "short\n");
    let ids = host.netctl_ok(&["ps", "-a", "-q"]);
    let ids: Vec<&str> = ids.lines().collect();
    host.netctl_ok(&[&["stop", "-t", "1"][..], &ids].concat());
    host.netctl_ok(&[&["rm"][..], &ids].concat());
    assert_eq!(host.netctl_ok(&["ps", "-a", "-q"]), "");
}

/// `create` + `start -a` gives what `run` gives: the output and the exit code.
#[test]
fn create_then_start_attached_is_run() {
    let host = TestHost::new();
    host.busybox_image();
    let id = host.netctl_ok(&[
        "create",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "echo made later; exit 3",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert!(host
        .netctl_ok(&["ps", "-a"])
        .lines()
        .any(|l| l.ends_with("later") && l.contains("Created")));
    let (code, out, _) = host.netctl(&["start", "-a", "later"]);
    assert_eq!((code, out.as_str()), (3, "made later\n"));
    let (code, out, _) = host.netctl(&["run", "busybox", "sh", "-c", "echo made later; exit 3"]);
    assert_eq!((code, out.as_str()), (3, "made later\n"));
}

/// `run -i` reads our stdin to its end; `run -it` under a terminal detaches with Ctrl-P
/// Ctrl-Q and leaves the container running, and `attach` gets back to it.
#[test]
fn interactive_runs_read_stdin_and_detach_with_ctrl_p_ctrl_q() {
    let host = TestHost::new();
    host.busybox_image();
    let netctl = binary("netctl").display().to_string();
    let out = host.sh(&format!(
        "printf 'one\\ntwo\\n' | {netctl} run -i --rm busybox sort -r"
    ));
    assert_eq!(out, "two\none\n");
    let (ok, out) = host.try_sh(&format!(
        "out={out}; client() {{ pgrep -f '^[^ ]*[n]etctl run -it --name dt' >/dev/null; }}; \
         (echo 'echo before-detach'; \
          for i in $(seq 250); do grep -q '^before-detach' $out && break; sleep 0.02; done; \
          printf '\\020\\021'; \
          for i in $(seq 250); do client || break; sleep 0.02; done) \
         | script -eqc '{netctl} run -it --name dt busybox sh' /dev/null > $out; echo code=$?; cat $out",
        out = host.dir().join("tty.out").display()
    ));
    assert!(
        ok && out.contains("before-detach") && out.contains("code=0"),
        "{out}"
    );
    assert!(
        host.netctl_ok(&["ps"]).lines().any(|l| l.ends_with(" dt")),
        "dt keeps running after the detach"
    );
    host.netctl_ok(&["rm", "-f", "dt"]);
}

/// Whether the cgroup freezer holds process `pid` (cgroup v2's `cgroup.events`, or v1's
/// `freezer.state`).
fn frozen(pid: u64) -> bool {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            let events =
                std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cgroup.events")).unwrap();
            return events.lines().any(|l| l == "frozen 1");
        }
        if let Some((_, path)) = line.split_once(":freezer:") {
            let state =
                std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
                    .unwrap();
            return state.trim() == "FROZEN";
        }
    }
    panic!("no freezer cgroup for {pid}: {cgroups}");
}
