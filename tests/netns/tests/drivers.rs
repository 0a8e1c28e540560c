//! The other drivers as a user sees them: macvlan containers as hosts on the parent's
//! segment, `--net host` and `--net container:NAME`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_netns_tests::{attachment, eventually, TestHost};
use serde_json::{json, Value};

fn ping(host: &TestHost, from: &Path, to: &str) -> bool {
    host.try_sh_in(from, &format!("busybox ping -c1 -W1 {to}"))
        .0
}

/// A LAN: `lan0` in the test host (the macvlan parent, a veth since this kernel has no
/// dummy links) whose other end is a machine on the segment at 192.168.50.2.
fn lan(host: &mut TestHost) -> PathBuf {
    let other = host.container("lan-peer");
    host.sh(&format!(
        "ip link add lan0 type veth peer name eth0 netns {}",
        other.display()
    ));
    host.sh("ip link set lan0 up");
    host.sh_in(
        &other,
        "ip link set lo up; ip addr add 192.168.50.2/24 dev eth0; ip link set eth0 up",
    );
    other
}

fn macvlan_list(name: &str, master: &str, ip_range: &str) -> Value {
    json!({"cniVersion": "1.1.0", "name": name, "plugins": [{
        "type": "netctl-macvlan", "master": master, "mode": "bridge",
        "ipam": {"type": "netctl-ipam", "subnet": "192.168.50.0/24", "ipRange": ip_range, "gateway": "192.168.50.1"}
    }]})
}

/// `docker network create -d macvlan -o parent=lan0 ...`: two containers ping each other and
/// a machine on the segment; a second network with another ip-range on the same segment gets
/// no overlapping addresses; DEL leaves the parent untouched.
#[test]
fn macvlan_containers_are_hosts_on_the_parent_segment() {
    let mut host = TestHost::new();
    let peer = lan(&mut host);
    let (_, list) = host.conflist("lan", &macvlan_list("lan", "lan0", "192.168.50.64/26"));
    let (_, list2) = host.conflist("lan2", &macvlan_list("lan2", "lan0", "192.168.50.128/26"));
    let cni = host.cni();
    let a = host.container("a");
    let b = host.container("b");
    let c = host.container("c");
    let ra = cni
        .add(&list, &attachment("a", Some(&a), "eth0"))
        .expect("ADD a");
    let rb = cni
        .add(&list, &attachment("b", Some(&b), "eth0"))
        .expect("ADD b");
    let rc = cni
        .add(&list2, &attachment("c", Some(&c), "eth0"))
        .expect("ADD c");
    let addr = |r: &netctl_cni::Success| r.ips[0].address.addr().to_string();
    assert_eq!(
        (addr(&ra).as_str(), addr(&rb).as_str()),
        ("192.168.50.64", "192.168.50.65")
    );
    assert_eq!(
        addr(&rc),
        "192.168.50.128",
        "the second network's range does not overlap"
    );
    assert_eq!(ra.interfaces[0].name, "eth0");
    assert!(host
        .sh_in(&a, "ip -d link show eth0")
        .contains("macvlan mode bridge"));
    assert!(ping(&host, &a, &addr(&rb)), "a pings b");
    assert!(
        ping(&host, &a, "192.168.50.2"),
        "a pings the machine on the segment"
    );
    assert!(
        ping(&host, &peer, &addr(&rc)),
        "the segment reaches c on the second network"
    );
    cni.check(&list, &attachment("a", Some(&a), "eth0"))
        .expect("CHECK");
    for (l, id, ns) in [(&list, "a", &a), (&list, "b", &b), (&list2, "c", &c)] {
        cni.del(l, &attachment(id, Some(ns), "eth0")).expect("DEL");
        cni.del(l, &attachment(id, Some(ns), "eth0"))
            .expect("DEL again");
    }
    let parent = host.sh("ip -o link show lan0");
    assert!(
        parent.contains("lan0") && parent.contains("UP"),
        "the parent is untouched: {parent}"
    );
    assert!(!host.sh_in(&a, "ip -o link").contains("eth0"));
}

/// A parent that does not exist, or one that is a bridge port, is a clear CNI error and
/// nothing is allocated or created.
#[test]
fn a_bad_macvlan_parent_is_a_clean_error() {
    let mut host = TestHost::new();
    lan(&mut host);
    let a = host.container("a");
    let (_, missing) = host.conflist("m", &macvlan_list("m", "nosuch0", "192.168.50.64/26"));
    let err = host
        .cni()
        .add(&missing, &attachment("a", Some(&a), "eth0"))
        .unwrap_err();
    assert_eq!(err.code.as_u32(), 7);
    assert!(err.msg.contains("nosuch0 does not exist"), "{err}");
    host.sh("ip link add br0 type bridge; ip link set lan0 master br0");
    let (_, enslaved) = host.conflist("e", &macvlan_list("e", "lan0", "192.168.50.64/26"));
    let err = host
        .cni()
        .add(&enslaved, &attachment("a", Some(&a), "eth0"))
        .unwrap_err();
    assert!(err.msg.contains("is a port of bridge br0"), "{err}");
    let (_, bad_mode) = host.conflist(
        "bm",
        &json!({"cniVersion": "1.1.0", "name": "bm", "plugins": [{"type": "netctl-macvlan", "master": "lan0", "mode": "sideways",
            "ipam": {"type": "netctl-ipam", "subnet": "192.168.50.0/24"}}]}),
    );
    let err = host
        .cni()
        .add(&bad_mode, &attachment("a", Some(&a), "eth0"))
        .unwrap_err();
    assert_eq!(err.code.as_u32(), 7, "{err}");
    assert!(!host.sh_in(&a, "ip -o link").contains("eth0"));
    assert_eq!(
        host.sh("find /var/lib/netctl -name 'owner:*'"),
        "",
        "no allocation left"
    );
}

/// `--net host`: the result lists the host's interfaces and addresses; a container
/// namespace is refused.
#[test]
fn host_network_reports_the_host_namespace() {
    let mut host = TestHost::new();
    host.sh(
        "ip link add hostif0 type veth peer name hostif1; ip addr add 10.99.0.1/24 dev hostif0",
    );
    let me = host.dir().join("host-ns");
    host.sh(&format!(
        "touch {p} && mount --bind /proc/self/ns/net {p}",
        p = me.display()
    ));
    let list = json!({"cniVersion": "1.1.0", "name": "host", "plugins": [{"type": "netctl-host"}]});
    let (_, list) = host.conflist("host", &list);
    let for_libcni =
        json!({"cniVersion": "1.0.0", "name": "host", "plugins": [{"type": "netctl-host"}]});
    let (path, _) = host.conflist("host-libcni", &for_libcni);
    let rt = attachment("h1", Some(&me), "eth0");
    let r = host.cni().add(&list, &rt).expect("ADD");
    let i = r
        .interfaces
        .iter()
        .position(|i| i.name == "hostif0")
        .expect("hostif0 listed");
    assert!(r
        .ips
        .iter()
        .any(|ip| ip.interface == Some(i) && ip.address.to_string() == "10.99.0.1/24"));
    host.cni().check(&list, &rt).expect("CHECK");
    host.cni().del(&list, &rt).expect("DEL");
    let other = host.container("not-host");
    let err = host
        .cni()
        .add(&list, &attachment("h2", Some(&other), "eth0"))
        .unwrap_err();
    assert_eq!(err.code.as_u32(), 4);
    assert!(
        err.msg.contains("not the host's network namespace"),
        "{err}"
    );
    for action in ["add", "check", "del"] {
        let out = host.libcni(action, &path, &attachment("h3", Some(&me), "eth0"));
        assert!(out.status.success(), "libcni {action}: {out:?}");
    }
    host.sh(&format!("umount {}", me.display()));
}

/// `--net container:web`: the joiner sees the target's eth0 and address; a server started
/// by one process in the shared namespace is reached at that address by another; DEL of the
/// joiner leaves the target's networking intact.
#[test]
fn container_network_shares_the_target_namespace() {
    let mut host = TestHost::new();
    let bridge = json!({"cniVersion": "1.1.0", "name": "web", "plugins": [{"type": "netctl-bridge",
        "bridge": "br-web", "isGateway": true, "ipam": {"type": "netctl-ipam", "subnet": "172.18.0.0/16"}}]});
    let (_, web) = host.conflist("web", &bridge);
    let target = host.container("target");
    host.cni()
        .add(&web, &attachment("target", Some(&target), "eth0"))
        .expect("target ADD");
    let join = json!({"cniVersion": "1.1.0", "name": "container", "plugins": [{"type": "netctl-container"}]});
    let (_, join) = host.conflist("join", &join);
    let for_libcni = json!({"cniVersion": "1.0.0", "name": "container", "plugins": [{"type": "netctl-container"}]});
    let (path, _) = host.conflist("join-libcni", &for_libcni);
    let rt = attachment("joiner", Some(&target), "eth0");
    let r = host.cni().add(&join, &rt).expect("joiner ADD");
    assert_eq!(r.interfaces[0].name, "eth0");
    assert_eq!(r.ips[0].address.to_string(), "172.18.0.2/16");
    assert_eq!(r.interfaces[0].sandbox.as_deref(), target.to_str());
    host.sh_in(&target, "ip link set lo up");
    host.spawn_in(&target, "busybox nc -l -p 7000 -e echo shared");
    eventually(
        "nc listening in the target",
        Duration::from_secs(5),
        || match host.try_sh_in(&target, "ss -Hltn sport = :7000") {
            (true, out) if !out.is_empty() => Ok(()),
            (_, out) => Err(out),
        },
    );
    let (ok, out) = host.try_sh_in(&target, "busybox nc -w 2 172.18.0.2 7000");
    assert!(ok && out.contains("shared"), "{out}");
    host.cni().check(&join, &rt).expect("CHECK");
    host.cni().del(&join, &rt).expect("joiner DEL");
    assert!(
        host.sh_in(&target, "ip -o addr show eth0")
            .contains("172.18.0.2/16"),
        "target intact"
    );
    assert!(host.try_sh_in(&target, "busybox ping -c1 -W1 172.18.0.1").0);
    for action in ["add", "check", "del"] {
        let out = host.libcni(action, &path, &attachment("j2", Some(&target), "eth0"));
        assert!(out.status.success(), "libcni {action}: {out:?}");
    }
    let gone = host.container("gone");
    host.remove_container(&gone);
    let err = host
        .cni()
        .add(&join, &attachment("j3", Some(&gone), "eth0"))
        .unwrap_err();
    assert_eq!(err.code.as_u32(), 3, "{err}");
}

/// The macvlan conflist through Debian's libcni.
#[test]
fn libcni_drives_macvlan() {
    let mut host = TestHost::new();
    lan(&mut host);
    let mut l = macvlan_list("lan", "lan0", "192.168.50.64/26");
    l["cniVersion"] = json!("1.0.0");
    let (path, _) = host.conflist("lan", &l);
    let ns = host.container("lc");
    let rt = attachment("lc", Some(&ns), "eth0");
    for action in ["add", "check", "del"] {
        let out = host.libcni(action, &path, &rt);
        assert!(out.status.success(), "libcni {action}: {out:?}");
    }
}
