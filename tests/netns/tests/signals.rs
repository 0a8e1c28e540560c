//! Long-lived processes stop when told, as an admin tells them (`kill -TERM`, `systemctl
//! stop`, a host shutdown), even when whoever started them blocked or ignored signals (a
//! runtime that reads its signals from a signalfd, a CLI forwarding them to a container):
//! the DNS server and its supervisor, the firewall watcher and a container's monitor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use netctl_netns_tests::{act_as_a_careless_runtime, alive, attachment, eventually, TestHost};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap()
}

/// The process's `SigBlk` and `SigIgn` masks.
fn masks(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    };
    (field("SigBlk:"), field("SigIgn:"))
}

/// Bits of SIGTERM (15) and SIGINT (2) in a /proc status mask.
const TERM_INT: u64 = (1 << 14) | (1 << 1);
/// The same with SIGHUP (1).
const TERM_INT_HUP: u64 = TERM_INT | 1;

/// How soon a process that honours SIGTERM is gone: well below any kill-after-timeout (10 s
/// in Docker's `stop`), with room for a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(3);

/// Sends SIGTERM and returns how long `pids` took to be gone (panics after 5 s).
fn term_and_time(to: i32, pids: &[i32]) -> Duration {
    let sent = Instant::now();
    kill(Pid::from_raw(to), Signal::SIGTERM).unwrap();
    eventually("the processes end", Duration::from_secs(5), || {
        match pids.iter().find(|p| alive(**p)) {
            Some(p) => Err(format!("{p} still runs")),
            None => Ok(()),
        }
    });
    sent.elapsed()
}

fn web_list(bridge: &str, subnet: &str) -> serde_json::Value {
    json!({"cniVersion": "1.1.0", "name": "web", "plugins": [
        {"type": "netctl-bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": true,
         "ipMasq": true, "ipam": {"type": "netctl-ipam", "subnet": subnet}},
        {"type": "netctl-dns", "capabilities": {"aliases": true}}]})
}

/// A runtime with SIGTERM blocked attaches a container, which starts the DNS server: the
/// server starts with no signal blocked or ignored, SIGHUP leaves both processes running,
/// and SIGTERM to the supervisor ends both promptly, their pid files gone and the
/// record kept (the next ADD serves it again).
#[test]
fn the_dns_server_and_its_supervisor_end_promptly_on_sigterm() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list("br-sig", "172.31.7.0/24"));
    let ns = host.container("c1");
    act_as_a_careless_runtime();
    host.cni()
        .add(&list, &attachment("c1", Some(&ns), "eth0"))
        .expect("ADD");
    let dns = Path::new("/run/netctl/dns");
    let (supervisor, server) = (
        pid_in(&dns.join("supervisor.pid")),
        pid_in(&dns.join("dnsd.pid")),
    );
    for pid in [supervisor, server] {
        assert!(alive(pid), "{pid} runs");
    }
    let (blocked, ignored) = masks(server);
    assert_eq!(
        (blocked & TERM_INT_HUP, ignored & TERM_INT),
        (0, 0),
        "the server blocks none of TERM, INT, HUP and ignores neither TERM nor INT"
    );
    kill(Pid::from_raw(supervisor), Signal::SIGHUP).unwrap();
    kill(Pid::from_raw(server), Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(supervisor) && alive(server),
        "SIGHUP stops neither (it is documented as ignored)"
    );
    let took = term_and_time(supervisor, &[supervisor, server]);
    assert!(took < PROMPT, "both ended in {took:?}");
    assert!(!dns.join("supervisor.pid").exists() && !dns.join("dnsd.pid").exists());
    let records: Vec<_> = std::fs::read_dir(dns.join("records/web"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(records.len(), 1, "the record stays for the next server");
    let ns2 = host.container("c2");
    host.cni()
        .add(&list, &attachment("c2", Some(&ns2), "eth0"))
        .expect("the next ADD starts a server again");
    assert!(alive(pid_in(&dns.join("dnsd.pid"))));
}

/// The firewall watcher an ADD started under a careless runtime ends promptly on
/// SIGTERM and removes its pid file; the next ADD starts a new one.
#[test]
fn the_firewall_watcher_ends_promptly_on_sigterm() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list("br-sigw", "172.31.8.0/24"));
    let ns = host.container("c1");
    act_as_a_careless_runtime();
    host.cni()
        .add(&list, &attachment("c1", Some(&ns), "eth0"))
        .expect("ADD");
    let pid_file = Path::new("/run/netctl/firewall/watch.pid");
    eventually(
        "the watcher runs",
        Duration::from_secs(5),
        || match std::fs::read_to_string(pid_file) {
            Ok(p) if p.trim().parse().is_ok_and(alive) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let watcher = pid_in(pid_file);
    let took = term_and_time(watcher, &[watcher]);
    assert!(took < PROMPT, "ended in {took:?}");
    assert!(!pid_file.exists(), "its pid file is gone");
    let ns2 = host.container("c2");
    host.cni()
        .add(&list, &attachment("c2", Some(&ns2), "eth0"))
        .expect("ADD");
    eventually(
        "a new watcher runs",
        Duration::from_secs(5),
        || match std::fs::read_to_string(pid_file) {
            Ok(p)
                if p.trim()
                    .parse()
                    .is_ok_and(|p: i32| p != watcher && alive(p)) =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    );
}

/// A container's monitor, started by a CLI with SIGTERM blocked, gets SIGTERM (a host
/// shutdown): it stops its container as `netctl stop` does (the container's process gets
/// SIGTERM, and its trap ends it at once), records the exit, detaches the network and ends
/// promptly. The container's own process blocked nothing either.
#[test]
fn a_monitor_told_to_stop_stops_its_container_and_records_the_exit() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "172.31.9.0/24", "sigs"]);
    act_as_a_careless_runtime();
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        "--net",
        "sigs",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    let state: serde_json::Value =
        serde_json::from_str(&host.netctl_ok(&["inspect", "trapper"])).unwrap();
    let pid = state[0]["State"]["Pid"].as_i64().unwrap() as i32;
    assert_eq!(
        masks(pid).0 & TERM_INT_HUP,
        0,
        "the container blocks nothing"
    );
    // The container's process is stage 1's child, and stage 1 the monitor's.
    let parent = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    let monitor = parent(parent(pid));
    assert!(
        std::fs::read_to_string(format!("/proc/{monitor}/cmdline"))
            .unwrap()
            .contains("__netctl-monitor"),
        "found the monitor"
    );
    let took = term_and_time(monitor, &[monitor, pid]);
    assert!(took < PROMPT, "ended in {took:?}");
    let ps = host.netctl_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("trapper Exited (3)"), "{ps}");
    let links = host.sh("ip -o link");
    assert!(!links.contains("veth"), "the network was detached: {links}");
}
