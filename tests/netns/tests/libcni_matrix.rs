//! Every netctl plugin through Debian's libcni (what podman's CNI backend and containerd
//! link) in every version it speaks — ADD, CHECK (0.4.0 on), DEL — with results that parse;
//! and GC and STATUS, which that libcni predates, through netctl's own client at 1.1.0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_cni::{NetConfList, Success};
use netctl_netns_tests::{attachment, TestHost};
use serde_json::{json, Value};

fn plugins(target: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("none", json!([{"type": "netctl-none"}])),
        (
            "bridge",
            json!([
            {"type": "netctl-bridge", "bridge": "br-m", "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
             "capabilities": {"portMappings": true}, "ipam": {"type": "netctl-ipam", "subnet": "172.25.0.0/16"}},
            {"type": "netctl-dns", "capabilities": {"aliases": true}}]),
        ),
        (
            "macvlan",
            json!([
            {"type": "netctl-macvlan", "master": "lan0", "ipam": {"type": "netctl-ipam", "subnet": "192.168.60.0/24"}},
            {"type": "netctl-dns", "capabilities": {"aliases": true}}]),
        ),
        ("host", json!([{"type": "netctl-host"}])),
        (
            "container",
            json!([{"type": "netctl-container", "targetNetns": target}]),
        ),
        (
            "ipam-only",
            json!([{"type": "netctl-ipam", "ipam": {"type": "netctl-ipam", "subnet": "10.66.0.0/24"}}]),
        ),
    ]
}

#[test]
fn every_plugin_runs_through_libcni_in_every_version_and_gc_status_through_ours() {
    let mut host = TestHost::new();
    let peer = host.container("lan-peer");
    host.sh(&format!(
        "ip link add lan0 type veth peer name eth0 netns {}; ip link set lan0 up",
        peer.display()
    ));
    let target = host.container("target");
    let me = host.dir().join("host-ns");
    host.sh(&format!(
        "touch {p} && mount --bind /proc/self/ns/net {p}",
        p = me.display()
    ));
    let mut n = 0;
    for (kind, chain) in plugins(target.to_str().unwrap()) {
        for version in ["0.3.1", "0.4.0", "1.0.0"] {
            n += 1;
            let id = format!("{kind}-{}", version.replace('.', ""));
            let list = json!({"cniVersion": version, "name": kind, "plugins": chain});
            let (path, _) = host.conflist(&id, &list);
            let ns = match kind {
                "host" => me.clone(),
                "container" => target.clone(),
                _ => host.container(&id),
            };
            let rt = attachment(&id, Some(&ns), "eth0");
            let add = host.libcni("add", &path, &rt);
            assert!(add.status.success(), "{id} ADD: {add:?}");
            let v: Value =
                serde_json::from_slice(&add.stdout).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(v["cniVersion"], version, "{id}");
            Success::from_json(&v).unwrap_or_else(|e| panic!("{id} result does not parse: {e}"));
            if version != "0.3.1" {
                let check = host.libcni("check", &path, &rt);
                assert!(check.status.success(), "{id} CHECK: {check:?}");
            }
            let del = host.libcni("del", &path, &rt);
            assert!(del.status.success(), "{id} DEL: {del:?}");
        }
        let list = json!({"cniVersion": "1.1.0", "name": kind, "plugins": chain});
        let parsed = NetConfList::from_slice(list.to_string().as_bytes()).unwrap();
        host.cni()
            .gc(&parsed, &[])
            .unwrap_or_else(|e| panic!("{kind} GC: {e}"));
        host.cni()
            .status(&parsed)
            .unwrap_or_else(|e| panic!("{kind} STATUS: {e}"));
    }
    assert_eq!(n, 18);
}
