//! Containers on one bridge attack each other as a neighbour with CAP_NET_RAW can: rogue
//! IPv6 router advertisements (CVE-2020-13401 class).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::Path;
use std::time::Duration;

use netctl_net::NetNs;
use netctl_netns_tests::{attachment, TestHost};
use nix::sys::socket::{
    sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn6,
};
use serde_json::json;

fn list(name: &str, bridge: &str, ranges: serde_json::Value) -> serde_json::Value {
    json!({"cniVersion": "1.1.0", "name": name, "plugins": [
        {"type": "netctl-bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": true,
         "ipMasq": true, "ipam": {"type": "netctl-ipam", "ranges": ranges}}]})
}

/// A router advertisement for 2001:db8:66::/64 (autonomous: take an address from it) with a
/// router lifetime of 30 minutes, sent from inside `ns` out of its `eth0` to all nodes.
fn send_rogue_ra(ns: &Path) {
    let mut ra = vec![134u8, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    ra.extend_from_slice(&[3, 4, 64, 0xc0]);
    ra.extend_from_slice(&86_400u32.to_be_bytes());
    ra.extend_from_slice(&14_400u32.to_be_bytes());
    ra.extend_from_slice(&[0; 4]);
    ra.extend_from_slice(&"2001:db8:66::".parse::<Ipv6Addr>().unwrap().octets());
    NetNs::open(ns)
        .unwrap()
        .run(move || {
            let fd = socket(
                AddressFamily::Inet6,
                SockType::Raw,
                SockFlag::empty(),
                SockProtocol::IcmpV6,
            )
            .unwrap();
            setsockopt(
                &fd,
                sockopt::BindToDevice,
                &std::ffi::OsString::from("eth0"),
            )
            .unwrap();
            setsockopt(&fd, sockopt::Ipv6MulticastHops, &255).unwrap();
            let index = nix::net::if_::if_nametoindex("eth0").unwrap();
            let to = SockaddrIn6::from(SocketAddrV6::new("ff02::1".parse().unwrap(), 0, 0, index));
            for _ in 0..3 {
                sendto(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    &ra,
                    &to,
                    MsgFlags::empty(),
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .unwrap();
}

/// What a victim learned from the rogue router advertisements: addresses in the rogue
/// prefix, and routes via the attacker.
fn learned(host: &TestHost, ns: &Path) -> String {
    let (_, addrs) = host.try_sh_in(
        ns,
        "ip -6 addr show dev eth0 2>/dev/null | grep 2001:db8:66",
    );
    let (_, routes) = host.try_sh_in(ns, "ip -6 route 2>/dev/null | grep fe80::66");
    format!("{}{}", addrs.trim(), routes.trim())
}

/// On an IPv4-only and on a dual-stack network, an attacker container (IPv6 turned back on,
/// a link-local address of its own) sends router advertisements: its neighbours get no
/// address from its prefix and no default route via it. A namespace plugged into the same
/// bridge by hand (accepting RAs, as the kernel does by default) learns both, so the
/// advertisements were real and reached the bridge's ports.
#[test]
fn a_neighbours_router_advertisements_change_nothing_in_a_container() {
    let mut host = TestHost::new();
    let cases = [
        ("v4only", "br-ra4", json!([[{"subnet": "172.29.1.0/24"}]])),
        (
            "dual",
            "br-ra6",
            json!([[{"subnet": "172.29.2.0/24"}], [{"subnet": "fd00:29:2::/64"}]]),
        ),
    ];
    for (name, bridge, ranges) in cases {
        let (_, l) = host.conflist(name, &list(name, bridge, ranges));
        let attacker = host.container(&format!("{name}-attacker"));
        let victim = host.container(&format!("{name}-victim"));
        for (id, ns) in [("attacker", &attacker), ("victim", &victim)] {
            host.cni()
                .add(&l, &attachment(&format!("{name}-{id}"), Some(ns), "eth0"))
                .expect("ADD");
        }
        let bystander = host.container(&format!("{name}-bystander"));
        host.sh(&format!(
            "ip link add by-{name} type veth peer name eth0 netns {} && ip link set by-{name} master {bridge} up",
            bystander.display()
        ));
        host.sh_in(&bystander, "ip link set lo up; ip link set eth0 up");
        host.sh_in(
            &attacker,
            "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0; ip addr add fe80::66/64 dev eth0 nodad",
        );
        std::thread::sleep(Duration::from_millis(300));
        send_rogue_ra(&attacker);
        netctl_netns_tests::eventually(
            "the bystander learns the rogue router",
            Duration::from_secs(5),
            || match learned(&host, &bystander) {
                l if l.contains("2001:db8:66") && l.contains("fe80::66") => Ok(()),
                l => {
                    send_rogue_ra(&attacker);
                    Err(l)
                }
            },
        );
        assert_eq!(
            learned(&host, &victim),
            "",
            "{name}: the victim learned from the RA"
        );
    }
}
