//! Configurations and arguments a careless (or hostile) runtime passes: names the kernel
//! would expand, IPAM types that make plugins run each other without end, subnets that are
//! not for containers, state folders relative to wherever the plugin runs. Each is refused
//! with CNI error JSON naming what is wrong, and nothing is made.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::{run_plugin, TestHost};
use serde_json::{json, Value};

fn bridge(extra: Value, ipam: Value) -> String {
    let mut c = json!({"cniVersion": "1.1.0", "name": "web", "type": "netctl-bridge",
        "bridge": "br-web", "isGateway": true, "ipam": ipam});
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c.to_string()
}

fn ipam(subnet: &str) -> Value {
    json!({"type": "netctl-ipam", "subnet": subnet})
}

/// Runs ADD of `conf`; the error code and message.
fn add(host: &TestHost, netns: &str, ifname: &str, conf: &str) -> (i32, u32, String) {
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        (
            "CNI_PATH",
            &netctl_netns_tests::bin_dir().display().to_string(),
        ),
    ];
    let (code, out) = host.run_plugin("netctl-bridge", &env, conf);
    (
        code,
        out["code"].as_u64().unwrap_or(0) as u32,
        out["msg"].as_str().unwrap_or_default().to_string(),
    )
}

/// `CNI_IFNAME=eth%d` and a bridge named `br%d` (which the kernel would make `eth0` or
/// `br0`, so rollback and DEL would miss them) are refused; no link is made.
#[test]
fn names_with_percent_are_refused() {
    let mut host = TestHost::new();
    let ns = host.container("c1").display().to_string();
    let links = host.sh("ip -o link | wc -l");
    let (code, cni, msg) = add(
        &host,
        &ns,
        "eth%d",
        &bridge(json!({}), ipam("172.18.0.0/16")),
    );
    assert_eq!((code, cni), (1, 4), "invalid environment: {msg}");
    assert!(msg.contains('%'), "{msg}");
    let (code, cni, msg) = add(
        &host,
        &ns,
        "eth0",
        &bridge(json!({"bridge": "br%d"}), ipam("172.18.0.0/16")),
    );
    assert_eq!((code, cni), (1, 7), "invalid configuration: {msg}");
    assert_eq!(host.sh("ip -o link | wc -l"), links, "no link was made");
    assert_eq!(
        host.sh_in(std::path::Path::new(&ns), "ip -o link | wc -l")
            .trim(),
        "1"
    );
}

/// An IPAM type naming a main plugin (netctl-bridge itself, netctl-macvlan) would make the
/// plugins exec each other without end: refused at once with error 7.
#[test]
fn ipam_types_that_would_loop_are_refused() {
    let mut host = TestHost::new();
    let ns = host.container("c1").display().to_string();
    for ty in ["netctl-bridge", "netctl-macvlan", "netctl-dns"] {
        let conf = bridge(json!({}), json!({"type": ty, "subnet": "172.18.0.0/16"}));
        let (code, cni, msg) = add(&host, &ns, "eth0", &conf);
        assert_eq!((code, cni), (1, 7), "{ty}: {msg}");
        assert!(msg.contains("without end"), "{ty}: {msg}");
    }
    let (_, running) = host.try_sh("pgrep --ns $$ --nslist net -c -x netctl-bridge");
    assert_eq!(running.trim(), "0", "no plugin is left running");
}

/// Loopback, link-local, multicast and "this network" subnets are refused by the plugin
/// and by `netctl network create`.
#[test]
fn reserved_subnets_are_refused() {
    let mut host = TestHost::new();
    let ns = host.container("c1").display().to_string();
    for subnet in [
        "127.0.0.0/16",
        "169.254.0.0/16",
        "224.0.0.0/24",
        "0.0.0.0/16",
        "fe80::/64",
        "ff02::/64",
    ] {
        let (code, cni, msg) = add(&host, &ns, "eth0", &bridge(json!({}), ipam(subnet)));
        assert_eq!((code, cni), (1, 7), "{subnet}: {msg}");
        let (code, _, err) = host.netctl(&["network", "create", "--subnet", subnet, "x"]);
        assert_ne!(code, 0, "{subnet}: network create refuses it");
        assert!(err.contains("overlaps"), "{subnet}: {err}");
    }
}

/// An empty or relative `dataDir` (IPAM) or `runDir` (bridge) would put state wherever the
/// runtime happens to run: refused with error 7, nothing written there.
#[test]
fn relative_state_folders_are_refused() {
    let mut host = TestHost::new();
    let ns = host.container("c1").display().to_string();
    let cwd = std::env::current_dir().unwrap();
    let before: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for (extra, ipam) in [
        (
            json!({}),
            json!({"type": "netctl-ipam", "subnet": "172.18.0.0/16", "dataDir": ""}),
        ),
        (
            json!({}),
            json!({"type": "netctl-ipam", "subnet": "172.18.0.0/16", "dataDir": "ipam"}),
        ),
        (json!({"runDir": "run"}), ipam("172.18.0.0/16")),
    ] {
        let (code, cni, msg) = add(&host, &ns, "eth0", &bridge(extra.clone(), ipam.clone()));
        assert_eq!((code, cni), (1, 7), "{extra} {ipam}: {msg}");
    }
    let after: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "nothing was written where the plugin ran");
    let (code, out) = run_plugin(
        "netctl-ipam",
        &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", &ns), ("CNI_IFNAME", "eth0"), ("CNI_PATH", "/nonexistent")],
        &json!({"cniVersion": "1.1.0", "name": "web", "type": "netctl-ipam", "ipam": {"type": "netctl-ipam", "subnet": "172.18.0.0/16", "dataDir": "rel"}}).to_string(),
    );
    assert_eq!((code, out["code"].as_u64()), (1, Some(7)), "{out}");
}

/// A runtime hands DEL a prevResult whose interface name and MAC are nft syntax, not a name
/// and a MAC (`macspoofchk` builds a guard from them): DEL succeeds, nothing of it reaches a
/// firewall script, and the host's other tables are untouched.
#[test]
fn a_hostile_prev_result_never_reaches_a_firewall_script() {
    let mut host = TestHost::new();
    let ns = host.container("c1").display().to_string();
    host.sh("nft add table inet sentinel");
    let conf = bridge(json!({"macspoofchk": true}), ipam("172.18.0.0/16"));
    let path = netctl_netns_tests::bin_dir().display().to_string();
    let env = |cmd: &'static str| {
        [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", ns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ]
    };
    let (code, out) = host.run_plugin("netctl-bridge", &env("ADD"), &conf);
    assert_eq!(code, 0, "{out}");
    let mut del: Value = serde_json::from_str(&conf).unwrap();
    del["prevResult"] = json!({"cniVersion": "1.1.0",
        "interfaces": [{"name": "br-web"}, {"name": "x\" } ; flush ruleset ; add table ip y {"},
                       {"name": "eth0", "mac": "02:42:ac:12:00:02\" } ; flush ruleset ; {", "sandbox": ns}],
        "ips": [{"address": "172.18.0.2/16", "interface": 2}]});
    let (code, out) = host.run_plugin("netctl-bridge", &env("DEL"), &del.to_string());
    assert_eq!(code, 0, "DEL still succeeds: {out}");
    let tables = host.sh("nft list tables");
    assert!(
        tables.contains("inet sentinel"),
        "nothing was flushed: {tables}"
    );
    assert!(!tables.contains("ip y"), "{tables}");
}
