//! Bridge networks as a user sees them: containers that reach each other, the gateway and
//! the outside world; networks isolated from each other; published ports; and nothing left
//! behind by DEL or by an ADD that fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use netctl_cni::invoke::RuntimeConf;
use netctl_cni::NetConfList;
use netctl_netns_tests::{attachment, TestHost};
use serde_json::{json, Value};

/// One test per firewall backend: the same behaviour, checked on nftables and iptables.
macro_rules! per_backend {
    ($scenario:ident: $nft:ident, $ipt:ident) => {
        #[test]
        fn $nft() {
            $scenario("nftables");
        }
        #[test]
        fn $ipt() {
            $scenario("iptables");
        }
    };
}

fn fw(backend: &str) -> Value {
    json!({"firewallBackend": backend})
}

/// A conflist like the one `netctl network create` writes for a bridge network.
fn bridge_list(name: &str, bridge: &str, subnet: &str, extra: Value) -> Value {
    let mut plugin = json!({
        "type": "netctl-bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": true,
        "ipMasq": true, "hairpinMode": true,
        "capabilities": {"portMappings": true, "ips": true, "mac": true},
        "ipam": {"type": "netctl-ipam", "subnet": subnet}
    });
    if let (Value::Object(p), Value::Object(e)) = (&mut plugin, extra) {
        p.extend(e);
    }
    json!({"cniVersion": "1.1.0", "name": name, "plugins": [plugin]})
}

fn attach(host: &mut TestHost, list: &NetConfList, id: &str) -> (PathBuf, String) {
    let ns = host.container(id);
    let r = host
        .cni()
        .add(list, &attachment(id, Some(&ns), "eth0"))
        .expect("ADD");
    let ip = r.ips[0].address.addr().to_string();
    (ns, ip)
}

fn ping(host: &TestHost, from: &Path, to: &str) -> bool {
    host.try_sh_in(from, &format!("busybox ping -c1 -W1 {to}"))
        .0
}

/// Two containers on one network ping each other and the gateway; the result names the
/// bridge, the host veth and the container's eth0 with its MAC and sandbox.
#[test]
fn two_containers_on_one_bridge_reach_each_other_and_the_gateway() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", json!({})),
    );
    let (a, ip_a) = attach(&mut host, &list, "ctr-a");
    let (b, ip_b) = attach(&mut host, &list, "ctr-b");
    assert_eq!((ip_a.as_str(), ip_b.as_str()), ("172.18.0.2", "172.18.0.3"));
    assert!(ping(&host, &a, &ip_b), "a pings b");
    assert!(ping(&host, &b, "172.18.0.1"), "b pings the gateway");
    let r = host
        .cni()
        .cached_result("web", &attachment("ctr-a", Some(&a), "eth0"))
        .unwrap()
        .unwrap();
    let names: Vec<&str> = r.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["br-web", "vctr-a-eth0", "eth0"]);
    assert_eq!(
        r.interfaces[2].mac, "02:42:ac:12:00:02",
        "Docker-style MAC from the address"
    );
    assert_eq!(r.ips[0].interface, Some(2));
    assert!(host
        .sh_in(&a, "ip route")
        .contains("default via 172.18.0.1"));
    host.cni()
        .check(&list, &attachment("ctr-a", Some(&a), "eth0"))
        .expect("CHECK");
}

/// A container reaches a machine outside the host, and that machine sees the host's
/// address, not the container's (masquerade).
fn masquerade_rewrites_the_source_of_traffic_leaving_the_host(backend: &str) {
    let mut host = TestHost::new();
    let outside = host.outside("outside", "10.254.0.1/24", "10.254.0.2/24");
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", fw(backend)),
    );
    let (a, _) = attach(&mut host, &list, "ctr-a");
    assert!(
        ping(&host, &a, "10.254.0.2"),
        "the container reaches the outside machine"
    );
    host.sh_in(&outside, "ip neigh flush all");
    let (ok, _) = host.try_sh_in(&outside, "nft add table ip t; nft add chain ip t c { type filter hook input priority 0 \\; }; nft add rule ip t c ip saddr 10.254.0.1 icmp type echo-request counter; nft add rule ip t c ip saddr 172.18.0.0/16 counter");
    assert!(ok);
    assert!(ping(&host, &a, "10.254.0.2"));
    let rules = host.sh_in(&outside, "nft list chain ip t c");
    assert!(
        rules.contains("ip saddr 10.254.0.1 icmp type echo-request counter packets 1"),
        "{rules}"
    );
    assert!(
        rules.contains("ip saddr 172.18.0.0/16 counter packets 0"),
        "{rules}"
    );
}

per_backend!(masquerade_rewrites_the_source_of_traffic_leaving_the_host: masquerade_rewrites_the_source_on_nftables, masquerade_rewrites_the_source_on_iptables);

/// A container on network A cannot reach one on network B (Docker's isolation), though
/// both reach their own gateways.
fn networks_are_isolated_from_each_other(backend: &str) {
    let mut host = TestHost::new();
    let (_, a_list) = host.conflist("a", &bridge_list("a", "br-a", "172.20.0.0/16", fw(backend)));
    let (_, b_list) = host.conflist("b", &bridge_list("b", "br-b", "172.21.0.0/16", fw(backend)));
    let (a, _) = attach(&mut host, &a_list, "on-a");
    let (b, ip_b) = attach(&mut host, &b_list, "on-b");
    assert!(ping(&host, &a, "172.20.0.1"));
    assert!(ping(&host, &b, "172.21.0.1"));
    assert!(!ping(&host, &a, &ip_b), "a must not reach b");
}

per_backend!(networks_are_isolated_from_each_other: networks_are_isolated_on_nftables, networks_are_isolated_on_iptables);

/// An internal network has no route out, and nothing leaves the bridge.
fn an_internal_network_has_no_route_out(backend: &str) {
    let mut host = TestHost::new();
    let outside = host.outside("outside", "10.254.0.1/24", "10.254.0.2/24");
    let (_, list) = host.conflist(
        "int",
        &bridge_list(
            "int",
            "br-int",
            "172.22.0.0/16",
            json!({"internal": true, "firewallBackend": backend}),
        ),
    );
    let (a, _) = attach(&mut host, &list, "c1");
    let (_, ip_b) = attach(&mut host, &list, "c2");
    assert!(
        ping(&host, &a, &ip_b),
        "containers of the network still talk"
    );
    assert!(
        !host.sh_in(&a, "ip route").contains("default"),
        "no default route"
    );
    let _ = host.try_sh_in(&a, "ip route add default via 172.22.0.1");
    assert!(
        !ping(&host, &a, "10.254.0.2"),
        "nothing leaves, even with a route added by hand"
    );
    assert!(ping(&host, &outside, "10.254.0.1"));
}

per_backend!(an_internal_network_has_no_route_out: an_internal_network_has_no_way_out_on_nftables, an_internal_network_has_no_way_out_on_iptables);

/// `-p 8080:80` with a web server in the container: reachable from another machine through
/// the host's address, from the host through 127.0.0.1, and from a container on the same
/// bridge through the host's address (hairpin). Without the published port, the outside
/// machine cannot reach the container directly even with a route to it.
fn a_published_port_is_reachable_from_outside_localhost_and_hairpin(backend: &str) {
    let mut host = TestHost::new();
    let outside = host.outside("outside", "10.254.0.1/24", "10.254.0.2/24");
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", fw(backend)),
    );
    let ns = host.container("srv");
    let mut rt = attachment("srv", Some(&ns), "eth0");
    rt.capability_args =
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
            .as_object()
            .cloned()
            .unwrap_or_default();
    host.cni().add(&list, &rt).expect("ADD with a port");
    let www = host.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the container\n").unwrap();
    host.spawn_in(&ns, &format!("busybox httpd -f -p 80 -h {}", www.display()));
    let (client, _) = attach(&mut host, &list, "client");
    let get = |from: Option<&Path>, addr: &str| {
        let cmd = format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 2 {} | grep -q hello && echo hello && exit 0; sleep 0.2; done; exit 1",
            addr.replace(':', " ")
        );
        match from {
            Some(ns) => host.try_sh_in(ns, &cmd),
            None => host.try_sh(&cmd),
        }
    };
    let (ok, body) = get(Some(&client), "172.18.0.2:80");
    assert!(ok, "the server answers on the bridge: {body}");
    let (ok, body) = get(Some(&outside), "10.254.0.1:8080");
    assert!(ok && body.contains("hello"), "from outside: {body}");
    let (ok, body) = get(None, "127.0.0.1:8080");
    assert!(
        ok && body.contains("hello"),
        "from the host's loopback: {body}"
    );
    let (ok, body) = get(None, "10.254.0.1:8080");
    assert!(
        ok && body.contains("hello"),
        "from the host via its own address: {body}"
    );
    let (ok, body) = get(Some(&client), "10.254.0.1:8080");
    assert!(
        ok && body.contains("hello"),
        "hairpin from a container on the bridge: {body}"
    );
    host.sh_in(&outside, "ip route add 172.18.0.0/16 via 10.254.0.1");
    let (ok, _) = host.try_sh_in(
        &outside,
        "printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 2 172.18.0.2 80 | grep -q hello",
    );
    assert!(
        !ok,
        "direct access to the container's address from outside is dropped"
    );
}

per_backend!(a_published_port_is_reachable_from_outside_localhost_and_hairpin: published_ports_answer_outside_localhost_and_hairpin_on_nftables, published_ports_answer_outside_localhost_and_hairpin_on_iptables);

fn snapshot(host: &TestHost) -> String {
    // nftables (iptables-nft's tables included) and iptables-legacy's tables if there are
    // any (merely asking iptables-legacy would make them), without counters.
    let ruleset = host.sh(
        "nft list ruleset; grep -q . /proc/net/ip_tables_names && iptables-legacy-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; true",
    );
    format!(
        "{}\n{}\n{}\n{}",
        host.sh("ip -o link | sed 's/^[0-9]*: //' | cut -d' ' -f1-2 | sort"),
        host.sh("ip -o addr | sed 's/^[0-9]*: //' | sort"),
        ruleset,
        // Allocations and firewall records (not locks and pid files: the allocator's lock
        // and its memory of the last address handed out, the watcher's files).
        host.sh("find /var/lib/netctl /run/netctl -name 'ip:*' -o -name 'owner:*' -o -path '*/firewall/*.json' | sort"),
    )
}

/// DEL removes every link, address, port rule and allocation the ADD made; DEL again and
/// DEL after the container's namespace is gone both succeed.
fn del_removes_everything_the_add_made(backend: &str) {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", fw(backend)),
    );
    attach(&mut host, &list, "first");
    let before = snapshot(&host);
    let ns = host.container("second");
    let mut rt = attachment("second", Some(&ns), "eth0");
    rt.capability_args = json!({"portMappings": [{"hostPort": 8081, "containerPort": 80}]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    host.cni().add(&list, &rt).expect("ADD");
    let during = snapshot(&host);
    assert!(
        during.contains("vsecond-eth0") && during.contains("8081"),
        "{during}"
    );
    host.cni().del(&list, &rt).expect("DEL");
    assert!(
        !host.sh_in(&ns, "ip -o link").contains("eth0"),
        "eth0 is gone from the container at once"
    );
    host.wait_for_reapers();
    assert_eq!(snapshot(&host), before);
    host.cni().del(&list, &rt).expect("DEL again");
    host.remove_container(&ns);
    host.cni()
        .del(&list, &attachment("second", None, "eth0"))
        .expect("DEL without netns");
    assert_eq!(snapshot(&host), before);
}

per_backend!(del_removes_everything_the_add_made: del_removes_everything_the_add_made_on_nftables, del_removes_everything_the_add_made_on_iptables);

/// The bridge keeps its own MAC when the user bridges in an uplink whose MAC sorts lower
/// (the gateway's MAC in neighbours' ARP caches stays right), the host end of a container's
/// veth carries no IPv6 (nothing per container in the host's IPv6 table), the bridge floods
/// multicast instead of snooping it, and a container detached and attached again at once
/// gets a working interface while the old pair is still being deleted.
#[test]
fn the_bridge_mac_stays_ports_carry_no_ipv6_and_reattaching_is_immediate() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", json!({})),
    );
    let (a, _) = attach(&mut host, &list, "ctr-a");
    let mac = host.sh("ip -br link show br-web | awk '{print $3}'");
    host.sh("ip link add up0 address 02:00:00:00:00:01 type veth peer name up1; ip link set up0 master br-web; ip link set up0 up");
    assert_eq!(host.sh("ip -br link show br-web | awk '{print $3}'"), mac);
    assert_eq!(
        host.sh("cat /proc/sys/net/ipv6/conf/vctr-a-eth0/disable_ipv6")
            .trim(),
        "1"
    );
    let routes = host.sh("ip -6 route show table all");
    assert!(!routes.contains("vctr-a-eth0"), "{routes}");
    assert!(host
        .sh("ip -d link show br-web")
        .contains("mcast_snooping 0"));
    let rt = attachment("ctr-a", Some(&a), "eth0");
    host.cni().del(&list, &rt).expect("DEL");
    host.cni().add(&list, &rt).expect("ADD again at once");
    assert!(ping(&host, &a, "172.18.0.1"), "the new interface works");
    host.wait_for_reapers();
    assert!(
        ping(&host, &a, "172.18.0.1"),
        "the reaper deleted only the old pair"
    );
}

/// A runtime calls DEL: the veth's slow deletion (RCU grace periods) is left to a fork of
/// the plugin, named netctl-reaper, instead of to a second program the plugin starts, so a
/// DEL costs the host one exec, not two. The fork deletes the retired pair and exits 0.
#[test]
fn del_leaves_the_link_deletion_to_a_fork_of_itself() {
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
    // Orphans of the plugins become this process's children, to be seen as they exit.
    nix::sys::prctl::set_child_subreaper(true).expect("become a subreaper");
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", json!({})),
    );
    let (ns, _) = attach(&mut host, &list, "ctr-a");
    host.cni()
        .del(&list, &attachment("ctr-a", Some(&ns), "eth0"))
        .expect("DEL");
    // Other orphans (the `nft` that withdraws the port's guard) are reaped and passed over.
    let mut others = Vec::new();
    let (pid, code) = netctl_netns_tests::eventually(
        "the reaper exits",
        std::time::Duration::from_secs(5),
        || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
            match waitid(Id::All, flags) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    let _ = waitpid(pid, None);
                    if comm.trim() == "netctl-reaper" {
                        return Ok((pid, code));
                    }
                    others.push(comm.trim().to_string());
                    Err(format!("{others:?} exited, no reaper yet"))
                }
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert!(
        others.iter().all(|c| c == "nft"),
        "only the guard's nft exited before the reaper: {others:?} (pid {pid})"
    );
    assert_eq!(code, 0, "the reaper deleted the retired pair");
    assert!(
        !host.sh("ip -o link").contains("vctr-a"),
        "the host end is gone with its pair"
    );
}

/// Someone replaces the plugins' state folder under a live firewall watcher (restores it
/// from a copy), then a second network gets its first container: one watcher heals this
/// host's rules, not two (the old one's lock was on the file that is gone from the path).
#[test]
fn a_replaced_state_folder_keeps_one_firewall_watcher() {
    let mut host = TestHost::new();
    let lists: Vec<_> = [
        ("web", "br-web", "172.18.0.0/16"),
        ("db", "br-db", "172.19.0.0/16"),
    ]
    .iter()
    .map(|(net, br, subnet)| {
        host.conflist(net, &bridge_list(net, br, subnet, json!({})))
            .1
    })
    .collect();
    attach(&mut host, &lists[0], "ctr-a");
    host.sh("cd /run/netctl && mv firewall firewall.old && cp -a firewall.old firewall && rm -r firewall.old");
    attach(&mut host, &lists[1], "ctr-b");
    one_watcher(&host, "one watcher left");
}

/// The firewall watchers running in this test's mount namespace (none of another test's).
fn watchers(host: &TestHost) -> Vec<u32> {
    let ours = host.sh("readlink /proc/self/ns/mnt");
    host.sh(&format!(
        "for p in $(pgrep -f -- '--watch-firewal[l]'); do [ \"$(readlink /proc/$p/ns/mnt)\" = '{}' ] && echo $p; done; true",
        ours.trim()
    ))
    .lines()
    .filter_map(|l| l.trim().parse().ok())
    .collect()
}

/// Waits until exactly one firewall watcher runs here; its pid.
fn one_watcher(host: &TestHost, what: &str) -> u32 {
    netctl_netns_tests::eventually(what, std::time::Duration::from_secs(5), || {
        match watchers(host)[..] {
            [pid] => Ok(pid),
            ref other => Err(format!("watchers: {other:?}")),
        }
    })
}

/// The host kills the firewall watcher (the OOM killer, an admin's `kill`) while a network
/// has containers; the next container's ADD on that network starts it again, so the host's
/// rules are healed after a flush as before. Before, only an ADD that applied a network's
/// rules started it: the host stayed without one until a new network came.
#[test]
fn a_killed_firewall_watcher_is_started_again_by_the_next_add() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", json!({})),
    );
    attach(&mut host, &list, "ctr-a");
    let first = one_watcher(&host, "the first ADD started a watcher");
    host.sh(&format!("kill -KILL {first}"));
    netctl_netns_tests::eventually(
        "the watcher is gone",
        std::time::Duration::from_secs(5),
        || match watchers(&host)[..] {
            [] => Ok(()),
            ref other => Err(format!("watchers: {other:?}")),
        },
    );
    attach(&mut host, &list, "ctr-b");
    let second = one_watcher(&host, "the next ADD started a watcher again");
    assert_ne!(first, second);
}

/// A user names a bridge they made themselves (no MAC of its own, so the kernel gives it
/// its lowest port's) with a container already on it: a container attached through netctl,
/// whose host end's MAC sorts lower, leaves the bridge's MAC as it was, so the first
/// container's cached gateway MAC stays right and it still reaches the gateway. Before,
/// the bridge took the new port's MAC and the first container's frames to the gateway
/// were dropped until its neighbour entry expired.
#[test]
fn an_adopted_bridge_keeps_its_mac_as_containers_join() {
    let mut host = TestHost::new();
    host.sh("ip link add br-own type bridge; ip link set br-own up; ip addr add 172.19.0.1/16 dev br-own");
    let first = host.container("first");
    host.sh(&format!(
        "ip link add vfirst address fe:ff:ff:ff:ff:fe type veth peer name eth0 netns {f}; \
         ip link set vfirst master br-own up; \
         nsenter --net={f} sh -c 'ip link set lo up; ip addr add 172.19.0.200/16 dev eth0; ip link set eth0 up'",
        f = first.display()
    ));
    let mac = host.sh("ip -br link show br-own | awk '{print $3}'");
    assert_eq!(
        mac.trim(),
        "fe:ff:ff:ff:ff:fe",
        "the bridge follows its only port"
    );
    assert!(
        ping(&host, &first, "172.19.0.1"),
        "first reaches the gateway"
    );
    let (_, list) = host.conflist(
        "own",
        &bridge_list("own", "br-own", "172.19.0.0/16", json!({})),
    );
    let (b, _) = attach(&mut host, &list, "ctr-b");
    assert_eq!(host.sh("ip -br link show br-own | awk '{print $3}'"), mac);
    assert!(
        ping(&host, &first, "172.19.0.1"),
        "first still reaches the gateway"
    );
    assert!(
        ping(&host, &b, "172.19.0.200"),
        "the new container reaches first"
    );
    host.cni()
        .del(&list, &attachment("ctr-b", Some(&b), "eth0"))
        .expect("DEL");
    assert_eq!(host.sh("ip -br link show br-own | awk '{print $3}'"), mac);
}

/// ADDs that fail — the pool is exhausted, the container already has the interface, the
/// host port is taken, the MTU is bad — each return a CNI error and leave nothing behind:
/// no bridge, veth, address, rule or allocation.
#[test]
fn a_failed_add_leaves_nothing_behind() {
    let mut host = TestHost::new();
    let nothing = snapshot(&host);
    let (_, bad_mtu) = host.conflist(
        "mtu",
        &bridge_list("mtu", "br-mtu", "10.8.0.0/24", json!({"mtu": 70000})),
    );
    let m = host.container("m");
    let err = host
        .cni()
        .add(&bad_mtu, &attachment("m", Some(&m), "eth0"))
        .unwrap_err();
    assert_eq!(err.code.as_u32(), 7, "{err}");
    assert_eq!(snapshot(&host), nothing, "bad mtu");

    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", json!({})),
    );
    let busy = host.container("busy");
    host.sh_in(&busy, "ip link add eth0 type veth peer name other");
    let err = host
        .cni()
        .add(&list, &attachment("busy", Some(&busy), "eth0"))
        .unwrap_err();
    assert!(
        err.msg.contains("already has an interface named eth0"),
        "{err}"
    );
    assert_eq!(
        snapshot(&host),
        nothing,
        "the bridge this ADD created is gone, the address released"
    );

    let (_, tiny_list) = host.conflist(
        "tiny",
        &bridge_list("tiny", "br-tiny", "10.9.0.0/30", json!({})),
    );
    attach(&mut host, &tiny_list, "fills-it");
    let full = snapshot(&host);
    let ns = host.container("too-many");
    let err = host
        .cni()
        .add(&tiny_list, &attachment("too-many", Some(&ns), "eth0"))
        .unwrap_err();
    assert_eq!(err.code.as_u32(), 100, "{err}");
    assert_eq!(snapshot(&host), full, "pool exhausted");

    let ns1 = host.container("p1");
    let ns2 = host.container("p2");
    let ports = json!({"portMappings": [{"hostPort": 9090, "containerPort": 80}]});
    let mut rt1 = attachment("p1", Some(&ns1), "eth0");
    rt1.capability_args = ports.as_object().cloned().unwrap_or_default();
    let rt2 = RuntimeConf {
        container_id: "p2".into(),
        netns: Some(ns2.clone()),
        ..rt1.clone()
    };
    host.cni().add(&list, &rt1).expect("first publisher");
    let with_one = snapshot(&host);
    let err = host.cni().add(&list, &rt2).unwrap_err();
    assert_eq!(err.code.as_u32(), 120, "{err}");
    assert!(err.msg.contains("9090"), "{err}");
    assert_eq!(
        snapshot(&host),
        with_one,
        "the second publisher left nothing behind"
    );
}

/// The conflist runs unchanged through Debian's libcni: ADD, CHECK, DEL.
#[test]
fn libcni_drives_the_bridge() {
    let mut host = TestHost::new();
    for version in ["0.4.0", "1.0.0"] {
        let id = format!("lc{}", version.replace('.', ""));
        let mut list = bridge_list("web", "br-web", "172.18.0.0/16", json!({}));
        list["cniVersion"] = json!(version);
        let (path, _) = host.conflist(&format!("web-{id}"), &list);
        let ns = host.container(&id);
        let rt = attachment(&id, Some(&ns), "eth0");
        let add = host.libcni("add", &path, &rt);
        assert!(add.status.success(), "{version} ADD: {add:?}");
        let r: Value = serde_json::from_slice(&add.stdout).unwrap();
        assert_eq!(r["interfaces"][2]["name"], "eth0");
        assert!(ping(&host, &ns, "172.18.0.1"));
        let check = host.libcni("check", &path, &rt);
        assert!(check.status.success(), "{version} CHECK: {check:?}");
        let del = host.libcni("del", &path, &rt);
        assert!(del.status.success(), "{version} DEL: {del:?}");
        host.wait_for_reapers();
        assert!(!host.sh("ip -o link").contains(&format!("v{id}")));
    }
}

/// Someone runs `nft flush ruleset`: CHECK notices and STATUS puts the rules back.
fn status_reapplies_rules_after_a_flush(backend: &str) {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list(
            "web",
            "br-web",
            "172.18.0.0/16",
            json!({"firewallBackend": backend, "firewallSelfHeal": false}),
        ),
    );
    let (a, _) = attach(&mut host, &list, "a");
    host.sh(if backend == "nftables" {
        "nft flush ruleset"
    } else {
        "iptables-nft -F; iptables-nft -t nat -F"
    });
    let err = host
        .cni()
        .check(&list, &attachment("a", Some(&a), "eth0"))
        .unwrap_err();
    assert!(err.msg.contains("firewall rules"), "{err}");
    host.cni().status(&list).expect("STATUS");
    host.cni()
        .check(&list, &attachment("a", Some(&a), "eth0"))
        .expect("CHECK after STATUS");
}

per_backend!(status_reapplies_rules_after_a_flush: status_reapplies_rules_after_a_flush_on_nftables, status_reapplies_rules_after_a_flush_on_iptables);

/// Dual stack: one ADD gives an IPv4 and an IPv6 address, both gateways on the bridge, and
/// both families work.
#[test]
fn dual_stack_in_one_add() {
    let mut host = TestHost::new();
    let mut l = bridge_list("ds", "br-ds", "172.30.0.0/24", json!({}));
    l["plugins"][0]["ipam"] = json!({"type": "netctl-ipam", "ranges": [[{"subnet": "172.30.0.0/24"}], [{"subnet": "fd00:30::/64"}]]});
    let (_, list) = host.conflist("ds", &l);
    let (a, _) = attach(&mut host, &list, "a");
    let (_, _) = attach(&mut host, &list, "b");
    let addrs = host.sh_in(&a, "ip -o addr show eth0");
    assert!(
        addrs.contains("172.30.0.2/24") && addrs.contains("fd00:30::2/64"),
        "{addrs}"
    );
    assert!(ping(&host, &a, "fd00:30::3"), "IPv6 between containers");
    assert!(ping(&host, &a, "fd00:30::1"), "IPv6 gateway");
    assert!(host
        .sh_in(&a, "ip -6 route")
        .contains("default via fd00:30::1"));
}

/// A container with CAP_NET_ADMIN and CAP_NET_RAW poses as others on its bridge (on by
/// default, no `macspoofchk` in the conflist): packets from an address it was not given,
/// an unsolicited ARP reply claiming its neighbour's address, frames from another MAC; none
/// gets through, while its own traffic does. DEL removes the guard.
fn a_container_can_send_only_as_itself(backend: &str) {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list(
            "web",
            "br-web",
            "172.18.0.0/16",
            json!({"firewallBackend": backend}),
        ),
    );
    let (a, ip_a) = attach(&mut host, &list, "a");
    let (b, ip_b) = attach(&mut host, &list, "b");
    assert!(
        ping(&host, &a, "172.18.0.1"),
        "its own MAC and address pass"
    );
    assert!(ping(&host, &b, "172.18.0.1"));
    let mac_b = host.sh(&format!("ip neigh show {ip_b} dev br-web"));
    host.sh_in(&a, "ip addr add 172.18.0.99/16 dev eth0");
    assert!(
        !host
            .try_sh_in(&a, "busybox ping -c1 -W1 -I 172.18.0.99 172.18.0.1")
            .0,
        "{backend}: a source address it was not given is dropped"
    );
    // Past the neighbour table's lock time (1 s), in which it ignores new claims anyway.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mac_a = host.sh_in(&a, "ip -o link show eth0");
    let mac_a = mac_a
        .split_whitespace()
        .find_map(netctl_net::parse_mac)
        .unwrap();
    for _ in 0..2 {
        netctl_netns_tests::send_frame(
            &a,
            "eth0",
            netctl_netns_tests::gratuitous_arp(mac_a, ip_b.parse().unwrap()),
        );
    }
    let after = host.sh(&format!("ip neigh show {ip_b} dev br-web"));
    assert_eq!(
        after.split_whitespace().nth(2),
        mac_b.split_whitespace().nth(2),
        "{backend}: the host still knows b's own MAC for {ip_b} (a's ARP claim was dropped)"
    );
    host.sh_in(&a, "ip link set eth0 down; ip link set eth0 address 02:00:00:00:00:99; ip link set eth0 up; ip neigh flush all");
    assert!(
        !ping(&host, &a, "172.18.0.1"),
        "{backend}: a spoofed MAC is dropped"
    );
    let guards = || {
        if backend == "nftables" {
            host.sh("nft list table bridge netctl")
        } else {
            host.sh("ebtables-save -t filter")
        }
    };
    let own = ["2:42:ac:12:0:2", "02:42:ac:12:00:02", ip_a.as_str()];
    assert!(own.iter().any(|o| guards().contains(o)), "{}", guards());
    host.cni()
        .del(&list, &attachment("a", Some(&a), "eth0"))
        .expect("DEL");
    // The guard of the deleted port goes a moment after DEL returns (see del_source_guard).
    netctl_netns_tests::eventually("the guard goes", std::time::Duration::from_secs(2), || {
        match guards() {
            g if !own.iter().any(|o| g.contains(o)) => Ok(()),
            g => Err(g),
        }
    });
}

per_backend!(a_container_can_send_only_as_itself: a_container_can_send_only_as_itself_on_nftables, a_container_can_send_only_as_itself_on_iptables);

/// A user asks for `"vlan": 10`. Where the kernel has bridge VLAN filtering the container's
/// port carries VLAN 10 (tests/vlan.rs boots such a kernel for the full story); where it
/// lacks it, as this machine's does, the ADD is a CNI error saying so and leaves nothing.
#[test]
fn a_vlan_network_says_when_the_kernel_cannot_filter_vlans() {
    let mut host = TestHost::new();
    let nothing = snapshot(&host);
    let filtering = host
        .try_sh("ip link add probe0 type bridge vlan_filtering 1 && ip link del probe0")
        .0;
    let (_, list) = host.conflist(
        "v10",
        &bridge_list("v10", "br-v", "10.10.0.0/24", json!({"vlan": 10})),
    );
    let ns = host.container("a");
    let added = host.cni().add(&list, &attachment("a", Some(&ns), "eth0"));
    if filtering {
        added.expect("ADD with a VLAN");
        assert!(host.sh("bridge vlan show").contains("10 PVID"));
    } else {
        let err = added.unwrap_err();
        assert_eq!(err.code.as_u32(), 114, "{err}");
        assert!(err.msg.contains("no bridge VLAN filtering"), "{err}");
        assert_eq!(snapshot(&host), nothing);
    }
}
