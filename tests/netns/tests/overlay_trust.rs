//! The overlay tried as an attacker would: a stranger on the underlay and a container send
//! VXLAN frames into an overlay, an insider with an etcd client certificate writes hostile
//! records, a second machine takes a live host's name, two hosts use one container ID, idle
//! clients sit on the agent's socket. Each does what the attacker did and checks that nothing
//! got through and nothing else changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use netctl_net::{parse_mac, NetNs};
use netctl_netns_tests::cluster::{Lab, Machine};
use netctl_netns_tests::eventually;

const SUBNET: &str = "10.230.0.0/24";
const GATEWAY: &str = "10.230.0.1";
const VNI: u32 = 4096;

fn overlay(lab: &Lab) {
    lab.m(1).netctl_ok(&[
        "network", "create", "-d", "overlay", "--subnet", SUBNET, "web",
    ]);
    for m in &lab.machines {
        eventually(
            "the network is everywhere",
            Duration::from_secs(3),
            || match m.sh("ip -o link show vx-1000 2>/dev/null; true") {
                s if s.contains("vx-1000") => Ok(()),
                s => Err(s),
            },
        );
    }
}

/// A namespace of machine `m` (a container's) as this process opens it.
fn ns_of(m: &Machine, netns: &str) -> NetNs {
    NetNs::open(&m.path(netns)).unwrap()
}

/// A UDP socket bound inside `ns` on `port`, reading with a short timeout.
fn listen_in(ns: &NetNs, port: u16) -> UdpSocket {
    let s = ns
        .run(move || UdpSocket::bind(("0.0.0.0", port)).unwrap())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    s
}

/// Sends `datagram` to `to` from inside `ns`.
fn send_from(ns: &NetNs, to: &str, datagram: Vec<u8>) {
    let to = to.to_string();
    ns.run(move || {
        UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .send_to(&datagram, to)
            .unwrap();
    })
    .unwrap();
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (no options, checksummed) carrying UDP `sport` -> `dport` with `payload`
/// (UDP checksum 0, as IPv4 allows).
fn ipv4_udp(
    (src, dst): (Ipv4Addr, Ipv4Addr),
    (sport, dport): (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);
    ip
}

/// An Ethernet frame `src_mac` -> `dst_mac` carrying the IPv4 packet `ip`.
fn ethernet((src_mac, dst_mac): ([u8; 6], [u8; 6]), ip: &[u8]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    f
}

/// A VXLAN datagram (VNI `vni`) carrying an Ethernet frame `src_mac` -> `dst_mac` with an
/// IPv4/UDP packet `src` -> `dst`:`dport` and `payload`: what a member's tunnel carries.
fn vxlan_frame(
    vni: u32,
    macs: ([u8; 6], [u8; 6]),
    addrs: (Ipv4Addr, Ipv4Addr),
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0x08, 0, 0, 0];
    f.extend_from_slice(&(vni << 8).to_be_bytes());
    f.extend(ethernet(macs, &ipv4_udp(addrs, (40000, dport), payload)));
    f
}

/// The MAC of the container's eth0 (from `ip`: /sys is the machine's).
fn mac_in(m: &Machine, netns: &str) -> [u8; 6] {
    let out = m.in_container(netns, "ip -o link show eth0").1;
    out.split_whitespace()
        .find_map(parse_mac)
        .unwrap_or_else(|| panic!("no MAC in {out}"))
}

fn received(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 256];
    s.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A machine on the underlay that is not in the cluster, and a container on a member host,
/// send a VXLAN frame with the overlay's VNI and a member container's source addresses to
/// host 1: nothing reaches the container there. The same frame from a member host arrives
/// (so the frame is a real one).
#[test]
fn nobody_but_the_clusters_hosts_can_put_a_frame_into_an_overlay() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    overlay(&lab);
    let (m1, m2) = (lab.m(1), lab.m(2));
    let ns1 = m1.container("c1");
    let ns2 = m2.container("c2");
    let a1: Ipv4Addr = m1.cni_add_ok("web", "c1", &ns1, &[]).parse().unwrap();
    let a2: Ipv4Addr = m2.cni_add_ok("web", "c2", &ns2, &[]).parse().unwrap();
    let frame = |payload: &[u8]| {
        vxlan_frame(
            VNI,
            (mac_in(m2, &ns2), mac_in(m1, &ns1)),
            (a2, a1),
            7777,
            payload,
        )
    };
    let victim = listen_in(&ns_of(m1, &ns1), 7777);

    let stranger = lab.host.dir().join("stranger.ns");
    std::fs::File::create(&stranger).unwrap();
    lab.host.sh(&format!(
        "unshare --net={s} true && ip link add st0 type veth peer name eth0 netns {s} && ip link set st0 master underlay up",
        s = stranger.display()
    ));
    lab.host.sh_in(
        &stranger,
        "ip link set lo up; ip addr add 10.99.0.66/24 dev eth0; ip link set eth0 up",
    );
    let stranger_ns = NetNs::open(&stranger).unwrap();
    send_from(&stranger_ns, "10.99.0.1:4789", frame(b"from a stranger"));
    assert_eq!(received(&victim), None, "a stranger's frame got in");

    // A container of a member host (masqueraded as that host on its way out).
    send_from(
        &ns_of(m2, &ns2),
        "10.99.0.1:4789",
        frame(b"from a container"),
    );
    assert_eq!(received(&victim), None, "a container's frame got in");

    send_from(
        &NetNs::open(&m2.netns()).unwrap(),
        "10.99.0.1:4789",
        frame(b"from m2"),
    );
    assert_eq!(
        received(&victim).as_deref(),
        Some("from m2"),
        "a member's frame arrives"
    );
    let _ = NetNs::remove(&stranger);
}

/// An insider with a client certificate puts hostile records in etcd: a network named as a
/// path, a network named like m2's own network (and its deletion), an endpoint that claims
/// the gateway, one that points at a stranger, one with a broadcast MAC, one with endless
/// addresses. No file appears outside the state folders, m2's network is untouched, no entry
/// for any of them is made, and the cluster's containers still reach each other.
#[test]
fn hostile_records_in_etcd_change_nothing_else() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    overlay(&lab);
    let (m1, m2) = (lab.m(1), lab.m(2));
    m2.netctl_ok(&["network", "create", "--subnet", "10.231.0.0/24", "backend"]);
    let backend = || std::fs::read(m2.path("/var/lib/netctl/networks/backend.conflist")).unwrap();
    let before = backend();
    let ns1 = m1.container("c1");
    let ns2 = m2.container("c2");
    m1.cni_add_ok("web", "c1", &ns1, &[]);
    let a2 = m2.cni_add_ok("web", "c2", &ns2, &[]);

    let put = |key: &str, value: &str| {
        let value = value.replace('\'', r"'\''");
        m1.sh(&lab.etcdctl(
            1,
            &format!("--endpoints=https://10.99.0.1:2379 put -- '/netctl/v1/{key}' '{value}'"),
        ));
    };
    let spec = |name: &str, vni: u32| {
        format!(
            r#"{{"name":"{name}","id":"{}","vni":{vni},"subnet":"10.232.0.0/24","gateway":"10.232.0.1","mtu":1450,"created":"now"}}"#,
            "b".repeat(64)
        )
    };
    put("networks/../../../x/pwn", &spec("../../../x/pwn", 5000));
    put("networks/backend", &spec("backend", 5001));
    let endpoint = |id: &str, vtep: &str, mac: &str, ips: &str| {
        format!(
            r#"{{"network":"web","host":"m2","vtep":"{vtep}","container_id":"{id}","ifname":"eth0","mac":"{mac}","ips":[{ips}],"name":"{id}","aliases":[]}}"#
        )
    };
    put(
        "endpoints/web/m2/gw:eth0",
        &endpoint(
            "gw",
            "10.99.0.2",
            "02:00:00:00:00:66",
            &format!("\"{GATEWAY}\""),
        ),
    );
    put(
        "endpoints/web/m2/away:eth0",
        &endpoint("away", "10.99.0.66", "02:00:00:00:00:67", "\"10.230.0.67\""),
    );
    put(
        "endpoints/web/m2/bcast:eth0",
        &endpoint("bcast", "10.99.0.2", "ff:ff:ff:ff:ff:ff", "\"10.230.0.68\""),
    );
    let many: Vec<String> = (100..140).map(|i| format!("\"10.230.0.{i}\"")).collect();
    put(
        "endpoints/web/m2/many:eth0",
        &endpoint("many", "10.99.0.2", "02:00:00:00:00:69", &many.join(",")),
    );
    // The agents have seen all of it once the last put shows in m1's log.
    eventually(
        "m1 skipped the records",
        Duration::from_secs(3),
        || match m1.agent_log() {
            log if log.contains("many:eth0") => Ok(()),
            log => Err(log),
        },
    );
    lab.m(1).sh(&lab.etcdctl(
        1,
        "--endpoints=https://10.99.0.1:2379 del /netctl/v1/networks/backend",
    ));
    std::thread::sleep(Duration::from_millis(300));

    for m in [m1, m2] {
        for p in ["/x/pwn.conflist", "/var/lib/x/pwn.conflist", "/x"] {
            assert!(!m.path(p).exists(), "{}: {p} was written", m.name);
        }
        let neigh = m.sh("ip neigh show dev vx-1000");
        let fdb = m.sh("bridge fdb show dev vx-1000");
        for bad in [GATEWAY, "10.230.0.67", "10.230.0.68", "10.230.0.100"] {
            assert!(
                !neigh.contains(&format!("{bad} ")),
                "{}: {bad} in {neigh}",
                m.name
            );
        }
        for bad in ["10.99.0.66", "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:6"] {
            assert!(!fdb.contains(bad), "{}: {bad} in {fdb}", m.name);
        }
    }
    assert_eq!(backend(), before, "m2's own network is as it was");
    let (code, _, err) = m1.netctl(&["network", "create", "-d", "overlay", "backend"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("already exists on host m2"),
        "the clash is refused, naming the host: {err}"
    );
    assert!(
        m1.in_container(&ns1, &format!("busybox ping -c1 -W2 {a2}"))
            .0,
        "c1 still reaches c2"
    );
}

/// A second machine joins with the name of a live host: refused, naming the live host's
/// address; its `cluster leave` removes nothing; the live host stays in the cluster.
#[test]
fn a_machine_cannot_take_the_name_of_a_live_host() {
    let lab = Lab::new(2);
    lab.join(1, 5, 300);
    let mut args = lab.join_args(2, 5, 300);
    let at = args.iter().position(|a| a == "--host-name").unwrap();
    args[at + 1] = "m1".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = lab.m(2).netctl(&args);
    assert_ne!(code, 0, "the join is refused: {out}");
    assert!(err.contains("taken by the live host at 10.99.0.1"), "{err}");
    let (code, _, _) = lab.m(2).netctl(&["cluster", "leave"]);
    assert_ne!(code, 0, "m2 is in no cluster");
    let ls = lab.m(1).netctl_ok(&["cluster", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.contains("m1") && l.contains("10.99.0.1") && l.contains("Ready")),
        "{ls}"
    );
}

/// Two hosts' runtimes name a container alike (`web-1`): each gets an address of its own,
/// and a release on one host leaves the other's taken.
#[test]
fn one_container_id_on_two_hosts_gets_two_addresses() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    overlay(&lab);
    let (m1, m2) = (lab.m(1), lab.m(2));
    let ns1 = m1.container("a");
    let ns2 = m2.container("b");
    let a1 = m1.cni_add_ok("web", "web-1", &ns1, &[]);
    let a2 = m2.cni_add_ok("web", "web-1", &ns2, &[]);
    assert_ne!(a1, a2, "one address each");
    m2.netctl_ok(&["cni", "del", "--id", "web-1", "--netns", &ns2, "web"]);
    let ns3 = m2.container("c");
    let a3 = m2.cni_add_ok("web", "other", &ns3, &[]);
    assert_ne!(a3, a1, "m1's web-1 keeps its address");
}

/// 100 clients connect to the agent's socket and say nothing: an ADD still succeeds at once.
#[test]
fn idle_clients_of_the_agent_never_make_an_add_fail() {
    let lab = Lab::new(1);
    lab.join_all(5, 300);
    overlay(&lab);
    let m = lab.m(1);
    let sock = m.path("/run/netctl/overlay/agent.sock");
    let idle: Vec<_> = (0..100)
        .map(|_| std::os::unix::net::UnixStream::connect(&sock).unwrap())
        .collect();
    let ns = m.container("c1");
    let started = std::time::Instant::now();
    m.cni_add_ok("web", "c1", &ns, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "ADD took {:?}",
        started.elapsed()
    );
    drop(idle);
}

/// Contains `needle`.
fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sends `payload` from container `from` of `m_from` to `to_addr`:7777 until `listener`
/// (in the destination container) gets it.
fn deliver(m_from: &Machine, from: &str, to_addr: &str, listener: &UdpSocket, payload: &[u8]) {
    let ns = ns_of(m_from, from);
    let mut buf = vec![0u8; 2048];
    for _ in 0..40 {
        send_from(&ns, &format!("{to_addr}:7777"), payload.to_vec());
        if let Ok(n) = listener.recv(&mut buf) {
            if &buf[..n] == payload {
                return;
            }
        }
    }
    panic!(
        "{} bytes from {from} never reached {to_addr}",
        payload.len()
    );
}

/// A user creates an encrypted overlay (`-o encrypted`, Docker's word) beside a plain one
/// and sends a datagram with a known marker across hosts on each, one of a near-MTU size
/// too, while the underlay is captured: the plain network's marker is there in clear (the
/// capture sees the traffic), the encrypted network's marker and its VXLAN never are, only
/// the tunnel's datagrams; the encrypted network's MTU leaves room for the tunnel.
#[test]
fn an_encrypted_overlay_shows_nothing_of_its_traffic_on_the_underlay() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    let (m1, m2) = (lab.m(1), lab.m(2));
    m1.create_overlay("plain", "10.234.0.0/24", &[]);
    m1.create_overlay("sec", "10.235.0.0/24", &["-o", "encrypted"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&m1.netctl_ok(&["network", "inspect", "sec"])).unwrap();
    assert_eq!(inspect[0]["Options"]["encrypted"], "", "{inspect}");
    let vni_sec: u32 = inspect[0]["Options"]["vni"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mtu: u32 = inspect[0]["Options"]["mtu"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(mtu, 1500 - 50 - 60, "room for VXLAN and the tunnel");
    let (p1, p2) = (m1.container("p1"), m2.container("p2"));
    let (s1, s2) = (m1.container("s1"), m2.container("s2"));
    m1.cni_add_ok("plain", "p1", &p1, &[]);
    let ap2 = m2.cni_add_ok("plain", "p2", &p2, &[]);
    m1.cni_add_ok("sec", "s1", &s1, &[]);
    let as2 = m2.cni_add_ok("sec", "s2", &s2, &[]);
    let (lp2, ls2) = (
        listen_in(&ns_of(m2, &p2), 7777),
        listen_in(&ns_of(m2, &s2), 7777),
    );

    let capture = netctl_netns_tests::capture(Duration::from_secs(6));
    deliver(m1, &p1, &ap2, &lp2, b"PLAIN-MARKER-7f3a");
    deliver(m1, &s1, &as2, &ls2, b"SECRET-MARKER-9c2e");
    let big: Vec<u8> = b"SECRET-MARKER-BIG-"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'x', 1300))
        .collect();
    deliver(m1, &s1, &as2, &ls2, &big);
    let frames = capture.join().unwrap();
    let all: Vec<u8> = frames.concat();
    assert!(
        has(&all, b"PLAIN-MARKER-7f3a"),
        "the capture sees the plain network"
    );
    assert!(
        !has(&all, b"SECRET-MARKER"),
        "an encrypted network's payload on the underlay"
    );
    let vxlan_of = |f: &Vec<u8>| {
        // Ethernet + IPv4 (no options) + UDP to 4789 + VXLAN header with the VNI.
        f.len() > 50
            && f[12..14] == [0x08, 0x00]
            && f[23] == 17
            && f[36..38] == 4789u16.to_be_bytes()
            && f[46..49] == vni_sec.to_be_bytes()[1..4]
    };
    assert!(
        !frames.iter().any(vxlan_of),
        "the encrypted network's VXLAN on the underlay"
    );
    let tunnel = |f: &Vec<u8>| f.len() > 38 && f[23] == 17 && f[36..38] == 51821u16.to_be_bytes();
    assert!(
        frames.iter().any(tunnel),
        "its traffic went through the tunnel"
    );
}

/// An Ethernet frame carrying `udp_payload` in IPv4/UDP from `src`:4789 to `dst`:4789
/// (what the underlay carries for a VXLAN tunnel), built by hand so the source can be forged.
fn outer_frame(
    macs: ([u8; 6], [u8; 6]),
    addrs: (Ipv4Addr, Ipv4Addr),
    udp_payload: &[u8],
) -> Vec<u8> {
    ethernet(macs, &ipv4_udp(addrs, (4789, 4789), udp_payload))
}

/// A stranger on the underlay forges host 2's address and sends host 1 plain VXLAN frames
/// for a container there: on a plain overlay the frame gets in (VXLAN trusts its underlay,
/// as Docker's does: that is what `-o encrypted` is for); on an encrypted one, whose VXLAN is
/// taken only out of the authenticated tunnel, nothing arrives.
#[test]
fn a_stranger_forging_a_hosts_address_cannot_put_a_frame_into_an_encrypted_overlay() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    let (m1, m2) = (lab.m(1), lab.m(2));
    m1.create_overlay("plain", "10.236.0.0/24", &[]);
    m1.create_overlay("sec", "10.237.0.0/24", &["-o", "encrypted"]);
    let stranger = lab.host.dir().join("stranger.ns");
    std::fs::File::create(&stranger).unwrap();
    lab.host.sh(&format!(
        "unshare --net={s} true && ip link add st0 type veth peer name eth0 netns {s} && ip link set st0 master underlay up",
        s = stranger.display()
    ));
    lab.host.sh_in(&stranger, "ip link set eth0 up");
    let stranger_mac = mac_in_ns(&lab.host.sh_in(&stranger, "ip -o link show eth0"));
    let m1_mac = mac_in_ns(&m1.sh("ip -o link show eth0"));
    for (net, vni, forged_gets_in) in [("plain", VNI, true), ("sec", VNI + 1, false)] {
        let (a, b) = (
            m1.container(&format!("{net}1")),
            m2.container(&format!("{net}2")),
        );
        let a1: Ipv4Addr = m1
            .cni_add_ok(net, &format!("{net}1"), &a, &[])
            .parse()
            .unwrap();
        let a2: Ipv4Addr = m2
            .cni_add_ok(net, &format!("{net}2"), &b, &[])
            .parse()
            .unwrap();
        let victim = listen_in(&ns_of(m1, &a), 7777);
        let inner = vxlan_frame(
            vni,
            (mac_in(m2, &b), mac_in(m1, &a)),
            (a2, a1),
            7777,
            b"forged",
        );
        let forged = outer_frame(
            (stranger_mac, m1_mac),
            ("10.99.0.2".parse().unwrap(), "10.99.0.1".parse().unwrap()),
            &inner,
        );
        let mut got = None;
        for _ in 0..3 {
            netctl_netns_tests::send_frame(&stranger, "eth0", forged.clone());
            got = got.or(received(&victim));
        }
        assert_eq!(
            got.is_some(),
            forged_gets_in,
            "{net}: forged frame delivered: {got:?}"
        );
    }
    let _ = NetNs::remove(&stranger);
}

fn mac_in_ns(ip_link: &str) -> [u8; 6] {
    ip_link
        .split_whitespace()
        .find_map(parse_mac)
        .unwrap_or_else(|| panic!("no MAC in {ip_link}"))
}

/// Hosts that rotate their tunnel keys every 10 s (`--key-rotation 10`): each host's public
/// key in etcd changes, and containers on an encrypted network still reach each other after
/// the rotation, with no restart of anything.
#[test]
fn encrypted_traffic_goes_on_across_a_key_rotation() {
    let lab = Lab::new(2);
    for n in 1..=2 {
        let mut args = lab.join_args(n, 5, 300);
        args.extend(["--key-rotation".to_string(), "10".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.m(n).netctl_ok(&args);
    }
    let (m1, m2) = (lab.m(1), lab.m(2));
    m1.create_overlay("sec", "10.238.0.0/24", &["-o", "encrypted"]);
    let (a, b) = (m1.container("a"), m2.container("b"));
    m1.cni_add_ok("sec", "a", &a, &[]);
    let ab = m2.cni_add_ok("sec", "b", &b, &[]);
    let listener = listen_in(&ns_of(m2, &b), 7777);
    deliver(m1, &a, &ab, &listener, b"before the rotation");
    let key = || {
        let out = m1.stdout_of(&lab.etcdctl(
            1,
            "--endpoints=https://10.99.0.1:2379 get --print-value-only /netctl/v1/hosts/m1",
        ));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["tunnel"]["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = key();
    eventually("m1's key rotates", Duration::from_secs(20), || {
        match key() {
            k if k != first => Ok(()),
            k => Err(k),
        }
    });
    deliver(m1, &a, &ab, &listener, b"after the rotation");
}

/// etcd with its own users on (no TLS here): a host joins as user `netctl` (password from a
/// file), allowed to read and write netctl's keys only, and works; with a wrong password the
/// join is refused, saying so, and leaves no configuration behind.
#[test]
fn a_host_joins_an_etcd_with_users_by_its_user_and_password_file() {
    let lab = Lab::plain(1);
    let m = lab.m(1);
    let ctl = |args: &str| lab.etcdctl(1, &format!("--endpoints=http://10.99.0.1:2379 {args}"));
    for step in [
        "user add root:rootpw",
        "user add netctl:s3cret",
        "role add netctl",
        "role grant-permission netctl readwrite /netctl/ --prefix=true",
        "user grant-role netctl netctl",
        "user grant-role root root",
        "auth enable",
    ] {
        m.sh(&ctl(step));
    }
    let wrong = lab.host.dir().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let right = lab.host.dir().join("right");
    std::fs::write(&right, "s3cret\n").unwrap();
    let join = |password: &std::path::Path| {
        let mut args = lab.join_args(1, 5, 300);
        args.extend([
            "--etcd-user".to_string(),
            "netctl".to_string(),
            "--etcd-password-file".to_string(),
            password.display().to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        m.netctl(&args)
    };
    let (code, _, err) = join(&wrong);
    assert_ne!(code, 0, "a wrong password is refused");
    assert!(
        err.contains("authentication failed") || err.contains("invalid"),
        "{err}"
    );
    assert!(
        !m.path("/var/lib/netctl/cluster.json").exists(),
        "no configuration is left"
    );
    let (code, out, err) = join(&right);
    assert_eq!(code, 0, "{out}{err}{}", m.agent_log());
    m.create_overlay("web", "10.239.0.0/24", &[]);
    let ls = m.netctl_ok(&["cluster", "ls"]);
    assert!(ls.contains("Ready"), "{ls}");
}
