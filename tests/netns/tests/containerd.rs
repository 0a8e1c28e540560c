//! containerd (Debian's 1.6, the runtime under Kubernetes nodes) as a second real runtime:
//! `ctr run --cni` attaches its containers with a conflist netctl wrote, from the test's own
//! /etc/cni/net.d and /opt/cni/bin, and netctl's plugins serve them as they serve netctl's
//! and podman's containers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::{binary, eventually, TestHost};

/// A containerd of the test's own, its state in tmpfs, with netctl's plugins as the CNI
/// plugins it finds and `conflist` (a network netctl made) as its only network.
fn containerd_with_netctl(host: &mut TestHost, network: &str) {
    for d in [
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/run/containerd",
        "/var/lib/containerd",
    ] {
        host.sh(&format!("mkdir -p {d} && mount -t tmpfs tmpfs {d}"));
    }
    for plugin in ["netctl-bridge", "netctl-ipam", "netctl-dns", "netctl-dnsd"] {
        std::fs::copy(binary(plugin), format!("/opt/cni/bin/{plugin}")).unwrap();
    }
    std::fs::copy(
        format!("/var/lib/netctl/networks/{network}.conflist"),
        format!("/etc/cni/net.d/10-{network}.conflist"),
    )
    .unwrap();
    let log = host.dir().join("containerd.log");
    host.spawn(&format!("exec containerd > {} 2>&1", log.display()));
    eventually(
        "containerd answers",
        Duration::from_secs(20),
        || match host.try_sh("ctr version") {
            (true, _) => Ok(()),
            (false, out) => Err(out),
        },
    );
}

/// Files of the network's DNS records and address leases (what ADD makes and DEL takes).
fn attachments(network: &str) -> (Vec<String>, Vec<String>) {
    let names = |dir: String, keep: fn(&str) -> bool| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| keep(n))
            .collect();
        v.sort();
        v
    };
    (
        names(format!("/run/netctl/dns/records/{network}"), |n| {
            n.ends_with(".json")
        }),
        names(format!("/var/lib/netctl/ipam/{network}"), |n| {
            n.starts_with("owner:")
        }),
    )
}

/// A containerd user runs a server and a client with `ctr run --cni` on a network netctl
/// made: each gets an address of the network, the client reaches the server by the name
/// containerd gave it (its CNI container ID) through netctl's DNS server and by address, and
/// when the `--rm` client ends, its DEL takes back its record and its address.
#[test]
fn ctr_run_with_cni_attaches_through_netctls_plugins() {
    let mut host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.61.0.0/24", "ctrnet"]);
    let archive = host.dir().join("busybox.tar").display().to_string();
    host.netctl_ok(&["save", "-o", &archive, "busybox"]);
    containerd_with_netctl(&mut host, "ctrnet");
    host.sh(&format!("ctr images import {archive} >/dev/null"));
    let image = "docker.io/library/busybox:latest";
    host.sh(&format!(
        "ctr run -d --cni {image} web httpd -f -p 80 -h /etc >/dev/null"
    ));
    let (records, leases) = attachments("ctrnet");
    assert_eq!(records, ["default-web:eth0.json"]);
    assert_eq!(leases, ["owner:default-web:eth0"]);
    let out = host.sh(&format!(
        "ctr run --cni --rm {image} client sh -c 'ip -4 addr show eth0 | grep -o \"inet [0-9.]*\"; nslookup default-web 127.0.0.11 | grep ^Address: | tail -1; wget -qO- http://10.61.0.2/passwd | head -1'"
    ));
    assert_eq!(
        out,
        "inet 10.61.0.3\nAddress: 10.61.0.2\nroot:x:0:0:root:/root:/bin/sh\n"
    );
    assert_eq!(
        attachments("ctrnet"),
        (
            vec!["default-web:eth0.json".to_string()],
            vec!["owner:default-web:eth0".to_string()]
        ),
        "the client's DEL left its record or address"
    );
    host.sh("ctr task kill -s KILL web; for i in $(seq 50); do ctr task rm web >/dev/null 2>&1 && break; sleep 0.1; done; ctr container rm web");
}
