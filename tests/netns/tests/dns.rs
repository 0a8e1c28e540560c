//! DNS as a user checks it with `dig`: container names, short IDs and `--net-alias`
//! aliases answered round robin, PTR, isolation between networks, forwarding to the host's
//! resolvers, and a server that follows every ADD and DEL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_cni::invoke::RuntimeConf;
use netctl_cni::NetConfList;
use netctl_netns_tests::{attachment, eventually, TestHost};
use serde_json::{json, Value};

/// The conflist `netctl network create` writes: driver, then the DNS plugin.
fn web_list(name: &str, bridge: &str, subnet: &str, internal: bool) -> Value {
    json!({"cniVersion": "1.1.0", "name": name, "plugins": [
        {"type": "netctl-bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": !internal,
         "ipMasq": true, "internal": internal, "capabilities": {"portMappings": true},
         "ipam": {"type": "netctl-ipam", "subnet": subnet}},
        {"type": "netctl-dns", "internal": internal, "capabilities": {"aliases": true}}
    ]})
}

/// `netctl run --name NAME --net NET --net-alias ALIAS...`, as the runtime calls the chain.
fn run(
    host: &mut TestHost,
    list: &NetConfList,
    id: &str,
    name: &str,
    aliases: &[&str],
) -> (PathBuf, RuntimeConf) {
    let ns = host.container(id);
    let mut rt = attachment(id, Some(&ns), "eth0");
    rt.args = vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("K8S_POD_NAME".into(), name.into()),
    ];
    rt.capability_args = json!({"aliases": {list.name.clone(): aliases}})
        .as_object()
        .cloned()
        .unwrap();
    let r = host.cni().add(list, &rt).expect("ADD through the chain");
    assert_eq!(
        r.dns.nameservers.first().map(String::as_str),
        Some("127.0.0.11")
    );
    (ns, rt)
}

fn dig(host: &TestHost, from: &Path, args: &str) -> Vec<String> {
    let (_, out) = host.try_sh_in(from, &format!("dig +short +tries=1 +time=2 {args}"));
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn status(host: &TestHost, from: &Path, args: &str) -> String {
    let (_, out) = host.try_sh_in(from, &format!("dig +tries=1 +time=2 {args}"));
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or_default().to_string())
        .unwrap_or(out)
}

/// Three containers with `--net-alias web`; a fourth asks the gateway and 127.0.0.11 for
/// `web` and gets all three, the first answer rotating; names, short IDs and PTR resolve.
#[test]
fn an_alias_answers_every_container_round_robin() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list("web", "br-web", "172.18.0.0/16", false));
    for (i, name) in ["w1", "w2", "w3"].iter().enumerate() {
        run(
            &mut host,
            &list,
            &format!("c0ffee00000{}{:0>52}", i + 1, ""),
            name,
            &["web"],
        );
    }
    let (client, _) = run(&mut host, &list, "client0123456789", "client", &[]);
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..6 {
        let mut answers = dig(&host, &client, "@172.18.0.1 web");
        firsts.insert(answers.first().cloned());
        answers.sort();
        assert_eq!(answers, ["172.18.0.2", "172.18.0.3", "172.18.0.4"]);
    }
    assert!(firsts.len() > 1, "the first answer rotates: {firsts:?}");
    let mut inside = dig(&host, &client, "@127.0.0.11 web");
    inside.sort();
    assert_eq!(
        inside,
        ["172.18.0.2", "172.18.0.3", "172.18.0.4"],
        "127.0.0.11 inside the container"
    );
    assert_eq!(dig(&host, &client, "@127.0.0.11 w2"), ["172.18.0.3"]);
    assert_eq!(dig(&host, &client, "@127.0.0.11 w2.web"), ["172.18.0.3"]);
    assert_eq!(
        dig(&host, &client, "@127.0.0.11 c0ffee000002"),
        ["172.18.0.3"],
        "short ID"
    );
    assert_eq!(
        dig(&host, &client, "@127.0.0.11 -x 172.18.0.3"),
        ["w2.web."]
    );
    assert_eq!(dig(&host, &client, "@127.0.0.11 +tcp web").len(), 3, "TCP");
    assert_eq!(
        status(&host, &client, "@127.0.0.11 w2 AAAA"),
        "NOERROR",
        "AAAA of an IPv4-only name"
    );
    assert!(dig(&host, &client, "@127.0.0.11 w2 AAAA").is_empty());
}

/// A container on network B cannot resolve names of network A; one attached to both
/// resolves names of both.
#[test]
fn names_are_scoped_to_the_networks_of_the_asker() {
    let mut host = TestHost::new();
    let (_, a) = host.conflist("a", &web_list("a", "br-a", "172.20.0.0/16", false));
    let (_, b) = host.conflist("b", &web_list("b", "br-b", "172.21.0.0/16", false));
    run(&mut host, &a, "on-a", "alpha", &[]);
    let (on_b, _) = run(&mut host, &b, "on-b", "beta", &[]);
    assert!(
        dig(&host, &on_b, "@127.0.0.11 alpha").is_empty(),
        "B does not see A's names"
    );
    assert_eq!(dig(&host, &on_b, "@127.0.0.11 beta"), ["172.21.0.2"]);
    let both = host.container("both");
    for (list, ifname) in [(&a, "eth0"), (&b, "eth1")] {
        let mut rt = attachment("both", Some(&both), ifname);
        rt.args = vec![("K8S_POD_NAME".into(), "gamma".into())];
        host.cni().add(list, &rt).expect("ADD");
    }
    assert_eq!(dig(&host, &both, "@127.0.0.11 alpha"), ["172.20.0.2"]);
    assert_eq!(dig(&host, &both, "@127.0.0.11 beta"), ["172.21.0.2"]);
}

/// A record added or removed is answered by the first query after ADD or DEL returns;
/// killing the server and running the next ADD brings it back with every record.
#[test]
fn the_server_follows_adds_and_dels_and_survives_a_kill() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list("web", "br-web", "172.18.0.0/16", false));
    let (client, _) = run(&mut host, &list, "client", "client", &[]);
    let (_, rt) = run(&mut host, &list, "late", "late", &["api"]);
    assert_eq!(
        dig(&host, &client, "@127.0.0.11 api"),
        ["172.18.0.3"],
        "the first query after ADD returns is answered"
    );
    host.cni().del(&list, &rt).expect("DEL");
    assert!(
        dig(&host, &client, "@127.0.0.11 api").is_empty(),
        "gone right after DEL"
    );
    host.sh("kill -9 $(cat /run/netctl/dns/dnsd.pid)");
    run(&mut host, &list, "next", "next", &[]);
    assert_eq!(
        dig(&host, &client, "@127.0.0.11 client"),
        ["172.18.0.2"],
        "old records are back"
    );
    assert_eq!(
        dig(&host, &client, "@127.0.0.11 next"),
        ["172.18.0.4"],
        "sequential: .3 is not reused at once"
    );
}

/// Names the networks do not know go to the host's resolver (a dnsmasq of the test's own);
/// an internal network never forwards.
#[test]
fn other_names_are_forwarded_except_on_internal_networks() {
    let mut host = TestHost::new();
    let upstream = host.outside("upstream", "10.254.0.1/24", "10.254.0.53/24");
    host.spawn_in(&upstream, "dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.254.0.53 --bind-interfaces --address=/example.test/192.0.2.7");
    host.resolv_conf("nameserver 127.0.0.11\nnameserver 10.254.0.53\n");
    let (_, list) = host.conflist("web", &web_list("web", "br-web", "172.18.0.0/16", false));
    let (c, _) = run(&mut host, &list, "c1", "c1", &[]);
    let got = eventually(
        "an answer from the upstream",
        Duration::from_secs(3),
        || match dig(&host, &c, "@127.0.0.11 example.test") {
            got if got.is_empty() => Err("no answer".into()),
            got => Ok(got),
        },
    );
    assert_eq!(got, ["192.0.2.7"], "forwarded to the upstream");
    let (_, internal) = host.conflist("int", &web_list("int", "br-int", "172.22.0.0/16", true));
    let (i, _) = run(&mut host, &internal, "i1", "i1", &[]);
    assert_eq!(dig(&host, &i, "@127.0.0.11 i1"), ["172.22.0.2"]);
    assert_eq!(status(&host, &i, "@127.0.0.11 example.test"), "REFUSED");
}

/// Macvlan containers, which the host cannot reach, resolve each other through the server's
/// socket inside their own namespaces.
#[test]
fn macvlan_containers_resolve_each_other() {
    let mut host = TestHost::new();
    let peer = host.container("lan-peer");
    host.sh(&format!(
        "ip link add lan0 type veth peer name eth0 netns {}; ip link set lan0 up",
        peer.display()
    ));
    let list = json!({"cniVersion": "1.1.0", "name": "lan", "plugins": [
        {"type": "netctl-macvlan", "master": "lan0", "ipam": {"type": "netctl-ipam", "subnet": "192.168.50.0/24"}},
        {"type": "netctl-dns", "capabilities": {"aliases": true}}]});
    let (_, list) = host.conflist("lan", &list);
    // (Not "mb": dig reads that as the MB record type.)
    let (a, _) = run(&mut host, &list, "mac1", "mac1", &["db"]);
    run(&mut host, &list, "mac2", "mac2", &[]);
    assert_eq!(dig(&host, &a, "@127.0.0.11 mac2"), ["192.168.50.3"]);
    assert_eq!(dig(&host, &a, "@127.0.0.11 db"), ["192.168.50.2"]);
}

/// A forwarded query leaves from the asker's own namespace: an upstream that only the
/// macvlan segment reaches (the host has no address there) still answers.
#[test]
fn forwarding_leaves_through_the_containers_own_interfaces() {
    let mut host = TestHost::new();
    let peer = host.container("lan-peer");
    host.sh(&format!(
        "ip link add lan0 type veth peer name eth0 netns {}; ip link set lan0 up",
        peer.display()
    ));
    host.sh_in(
        &peer,
        "ip link set lo up; ip addr add 192.168.50.53/24 dev eth0; ip link set eth0 up",
    );
    host.spawn_in(&peer, "dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=192.168.50.53 --bind-interfaces --address=/lan.test/192.0.2.9");
    host.resolv_conf("nameserver 192.168.50.53\n");
    let list = json!({"cniVersion": "1.1.0", "name": "lan", "plugins": [
        {"type": "netctl-macvlan", "master": "lan0", "ipam": {"type": "netctl-ipam", "subnet": "192.168.50.0/24"}},
        {"type": "netctl-dns", "capabilities": {"aliases": true}}]});
    let (_, list) = host.conflist("lan", &list);
    let (a, _) = run(&mut host, &list, "mac1", "mac1", &[]);
    assert!(
        !host.try_sh("busybox ping -c1 -W1 192.168.50.53").0,
        "the host itself cannot reach it"
    );
    let got = eventually(
        "an answer from the upstream",
        Duration::from_secs(3),
        || match dig(&host, &a, "@127.0.0.11 lan.test") {
            got if got.is_empty() => Err("no answer".into()),
            got => Ok(got),
        },
    );
    assert_eq!(got, ["192.0.2.9"]);
}

/// An upstream that refuses a name (a dnsmasq with nothing to ask) is relayed as REFUSED,
/// with the question, as Docker's embedded server relays it — not turned into SERVFAIL.
#[test]
fn an_upstream_refusal_is_relayed_with_its_question() {
    let mut host = TestHost::new();
    let upstream = host.outside("upstream", "10.254.0.1/24", "10.254.0.53/24");
    host.spawn_in(
        &upstream,
        "dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.254.0.53 --bind-interfaces",
    );
    host.resolv_conf("nameserver 10.254.0.53\n");
    let (_, list) = host.conflist("web", &web_list("web", "br-web", "172.18.0.0/16", false));
    let (c, _) = run(&mut host, &list, "c1", "c1", &[]);
    let reply = eventually("the upstream's answer", Duration::from_secs(5), || {
        let out = host.sh_in(&c, "dig +time=2 +tries=1 @127.0.0.11 nowhere.test");
        if out.contains("status:") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(reply.contains("status: REFUSED"), "{reply}");
    assert!(
        reply.contains("QUERY: 1"),
        "the question comes back: {reply}"
    );
}
