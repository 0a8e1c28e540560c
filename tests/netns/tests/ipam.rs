//! `netctl-ipam` as a process: what a driver sees when it delegates to it, with many calls at
//! once and with calls killed halfway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use netctl_netns_tests::{binary, run_plugin};
use serde_json::{json, Value};

fn conf(data: &Path, ipam: Value) -> String {
    let mut ipam = ipam;
    ipam["type"] = json!("netctl-ipam");
    ipam["dataDir"] = json!(data);
    json!({"cniVersion": "1.1.0", "name": "web", "type": "netctl-bridge", "ipam": ipam}).to_string()
}

fn env<'a>(cmd: &'a str, id: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ]
}

fn address(result: &Value, i: usize) -> String {
    result["ips"][i]["address"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A user creates `--subnet 172.72.0.0/16 --ip-range 172.72.0.0/24 --gateway 172.72.0.1`
/// and starts three containers: they get .2, .3, .4; removing one and starting another does
/// not reuse its address at once; a repeated ADD returns the same address; DEL twice is fine.
#[test]
fn containers_get_consecutive_addresses_from_the_ip_range() {
    let dir = tempfile::tempdir().unwrap();
    let c = conf(
        dir.path(),
        json!({"subnet": "172.72.0.0/16", "ipRange": "172.72.0.0/24", "gateway": "172.72.0.1"}),
    );
    let mut got = Vec::new();
    for id in ["a", "b", "c"] {
        let (code, r) = run_plugin("netctl-ipam", &env("ADD", id), &c);
        assert_eq!(code, 0, "{r}");
        assert_eq!(r["ips"][0]["gateway"], "172.72.0.1");
        got.push(address(&r, 0));
    }
    assert_eq!(got, ["172.72.0.2/16", "172.72.0.3/16", "172.72.0.4/16"]);
    let (_, again) = run_plugin("netctl-ipam", &env("ADD", "b"), &c);
    assert_eq!(address(&again, 0), "172.72.0.3/16");
    assert_eq!(run_plugin("netctl-ipam", &env("CHECK", "b"), &c).0, 0);
    assert_eq!(
        run_plugin("netctl-ipam", &env("DEL", "b"), &c),
        (0, Value::Null)
    );
    assert_eq!(
        run_plugin("netctl-ipam", &env("DEL", "b"), &c),
        (0, Value::Null)
    );
    assert_eq!(
        run_plugin("netctl-ipam", &env("DEL", "never-added"), &c),
        (0, Value::Null)
    );
    let (code, check) = run_plugin("netctl-ipam", &env("CHECK", "b"), &c);
    assert_eq!((code, check["code"].clone()), (1, json!(102)));
    let (_, d) = run_plugin("netctl-ipam", &env("ADD", "d"), &c);
    assert_eq!(
        address(&d, 0),
        "172.72.0.5/16",
        "a freed address is not reused at once"
    );
}

/// `docker run --ip`: the `ips` capability and `CNI_ARGS IP=` pick the address; one outside
/// the subnet or already taken is a clear error with nothing allocated.
#[test]
fn requested_addresses_are_honoured_or_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let base = conf(
        dir.path(),
        json!({"ranges": [[{"subnet": "10.20.0.0/24"}], [{"subnet": "fd20::/64"}]]}),
    );
    let mut with_ips: Value = serde_json::from_str(&base).unwrap();
    with_ips["runtimeConfig"] = json!({"ips": ["10.20.0.50/24", "fd20::50"]});
    let (code, r) = run_plugin("netctl-ipam", &env("ADD", "a"), &with_ips.to_string());
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        (address(&r, 0), address(&r, 1)),
        ("10.20.0.50/24".into(), "fd20::50/64".into())
    );

    let mut e = env("ADD", "b");
    e.push(("CNI_ARGS", "IgnoreUnknown=1;IP=10.20.0.50"));
    let (code, err) = run_plugin("netctl-ipam", &e, &base);
    assert_eq!((code, err["code"].clone()), (1, json!(101)), "{err}");
    assert!(err["msg"]
        .as_str()
        .unwrap_or("")
        .contains("already in use by container a"));

    let mut e = env("ADD", "b");
    e.push(("CNI_ARGS", "IP=192.168.1.1"));
    let (code, err) = run_plugin("netctl-ipam", &e, &base);
    assert_eq!((code, err["code"].clone()), (1, json!(7)), "{err}");
    assert!(err["msg"]
        .as_str()
        .unwrap_or("")
        .contains("outside every subnet"));

    let (_, r) = run_plugin("netctl-ipam", &env("ADD", "b"), &base);
    assert_eq!(
        address(&r, 0),
        "10.20.0.2/24",
        "b got nothing from the failed calls"
    );
}

/// A full network: ADD fails with code 100 naming network and range; STATUS says 50; GC
/// releases what is no longer attached and the next ADD succeeds.
#[test]
fn exhaustion_status_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let c = conf(dir.path(), json!({"subnet": "10.30.0.0/29"})); // .2 - .6 for containers
    for id in ["a", "b", "c", "d", "e"] {
        assert_eq!(run_plugin("netctl-ipam", &env("ADD", id), &c).0, 0);
    }
    let (code, err) = run_plugin("netctl-ipam", &env("ADD", "f"), &c);
    assert_eq!((code, err["code"].clone()), (1, json!(100)));
    let msg = err["msg"].as_str().unwrap_or("");
    assert!(msg.contains("web") && msg.contains("10.30.0.0/29"), "{msg}");
    let status = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")];
    assert_eq!(run_plugin("netctl-ipam", &status, &c).1["code"], 50);

    let mut gc: Value = serde_json::from_str(&c).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
    let gc_env = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
    assert_eq!(run_plugin("netctl-ipam", &gc_env, &gc.to_string()).0, 0);
    assert_eq!(run_plugin("netctl-ipam", &status, &c), (0, Value::Null));
    assert_eq!(run_plugin("netctl-ipam", &env("CHECK", "a"), &c).0, 0);
    assert_eq!(run_plugin("netctl-ipam", &env("ADD", "f"), &c).0, 0);
}

/// Bad IPAM configuration is error 7 with a message that says what to fix.
#[test]
fn bad_ipam_config_is_error_7_saying_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    for (ipam, want) in [
        (json!({"subnet": "10.0.0.7/24"}), "host bits"),
        (
            json!({"subnet": "10.0.0.0/24", "ipRange": "10.1.0.0/24"}),
            "not inside subnet",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "gateway": "10.0.0.255"}),
            "broadcast",
        ),
        (json!({"ipRange": "10.0.0.0/24"}), "need a subnet"),
        (json!({"subnet": "nonsense"}), "not a CIDR"),
    ] {
        let (code, err) = run_plugin("netctl-ipam", &env("ADD", "a"), &conf(dir.path(), ipam));
        assert_eq!((code, err["code"].clone()), (1, json!(7)), "{err}");
        assert!(err["msg"].as_str().unwrap_or("").contains(want), "{err}");
    }
}

/// Checks that the store of network `web` is consistent: every owner's addresses point back
/// to it, no address has two owners. Returns owner -> addresses.
fn store_state(data: &Path) -> HashMap<String, Vec<String>> {
    let dir = data.join("web");
    let mut owners = HashMap::new();
    let mut ips = HashMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let target = || {
            std::fs::read_link(dir.join(&name))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        if let Some(o) = name.strip_prefix("owner:") {
            owners.insert(
                o.to_string(),
                target().split(',').map(str::to_string).collect::<Vec<_>>(),
            );
        } else if let Some(ip) = name.strip_prefix("ip:") {
            ips.insert(ip.to_string(), target());
        }
    }
    let mut seen = HashSet::new();
    for (o, list) in &owners {
        for ip in list {
            assert_eq!(
                ips.get(ip),
                Some(o),
                "owner {o} lists {ip} but the address record disagrees"
            );
            assert!(seen.insert(ip.clone()), "{ip} is held twice");
        }
    }
    owners
}

fn spawn_add(data: &Path, id: &str) -> std::process::Child {
    let mut child = Command::new(binary("netctl-ipam"))
        .envs(env("ADD", id))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = conf(data, json!({"subnet": "10.40.0.0/25"}));
    child.stdin.take().unwrap().write_all(c.as_bytes()).unwrap();
    child
}

/// 64 runtimes attach containers at the same moment: 64 processes, 64 different addresses,
/// and a store that agrees with what each was told.
#[test]
fn sixty_four_parallel_adds_get_unique_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..64)
        .map(|i| (format!("p{i}"), spawn_add(dir.path(), &format!("p{i}"))))
        .collect();
    let mut told = HashMap::new();
    for (id, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ip = address(&r, 0).split('/').next().unwrap_or("").to_string();
        told.insert(format!("{id}:eth0"), vec![ip]);
    }
    let unique: HashSet<_> = told.values().collect();
    assert_eq!(unique.len(), 64);
    assert_eq!(store_state(dir.path()), told);
}

/// Plugins killed with SIGKILL at random points while allocating leave a store that still
/// loads and agrees with itself; the survivors keep their addresses, and the next calls and
/// GC work normally.
#[test]
fn adds_killed_midway_never_corrupt_or_lose_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let mut done = HashMap::new();
    for round in 0..8u64 {
        let children: Vec<_> = (0..12)
            .map(|i| {
                (
                    format!("r{round}k{i}"),
                    spawn_add(dir.path(), &format!("r{round}k{i}")),
                )
            })
            .collect();
        std::thread::sleep(Duration::from_micros(300 * round));
        for (i, (id, mut child)) in children.into_iter().enumerate() {
            if i % 2 == 0 {
                let _ = child.kill();
            }
            let out = child.wait_with_output().unwrap();
            if out.status.success() {
                let r: Value = serde_json::from_slice(&out.stdout).unwrap();
                done.insert(format!("{id}:eth0"), address(&r, 0));
            }
        }
    }
    let state = store_state(dir.path());
    for (owner, addr) in &done {
        let ip = addr.split('/').next().unwrap_or("");
        assert_eq!(
            state.get(owner).map(|v| v[0].as_str()),
            Some(ip),
            "{owner} lost its address"
        );
    }
    // GC with the completed attachments as the valid list keeps exactly those.
    let valid: Vec<Value> = done
        .keys()
        .map(|o| json!({"containerID": o.trim_end_matches(":eth0"), "ifname": "eth0"}))
        .collect();
    let mut gc: Value =
        serde_json::from_str(&conf(dir.path(), json!({"subnet": "10.40.0.0/25"}))).unwrap();
    gc["cni.dev/valid-attachments"] = json!(valid);
    assert_eq!(
        run_plugin(
            "netctl-ipam",
            &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")],
            &gc.to_string()
        )
        .0,
        0
    );
    let after = store_state(dir.path());
    assert_eq!(after.len(), done.len());
    let orphans = std::fs::read_dir(dir.path().join("web"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("ip:")
        })
        .count();
    assert_eq!(orphans, done.len(), "GC removed orphaned reservations");
}
