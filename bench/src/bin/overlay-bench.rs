//! Overlay networks across three machines (namespaces with an etcd member and an agent each,
//! the test suite's lab): ADD and DEL on an overlay network against a bridge network in the
//! same run, through the same `netctl cni` chain (with netctl-dns); the time from an ADD on
//! one host returning until another host forwards to it and resolves its name; the time from
//! killing a whole host until every other host has dropped its containers. With etcd over TLS
//! with client certificates (the secured setup) and, beside it, over plain HTTP; and what an
//! encrypted network (`-o encrypted`) costs against a plain one between two hosts: round trip
//! and throughput.
//!
//! usage: NETCTL_BIN_DIR=target/<triple>/release overlay-bench [ITERATIONS]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use netctl_bench::{median, ms};
use netctl_net::{parse_mac, NetNs, Netlink};
use netctl_netns_tests::cluster::{Lab, Machine};
use serde_json::Value;

const LIVENESS_TTL: u32 = 5;

fn add(m: &Machine, network: &str, id: &str, ns: &str) -> (Duration, Value) {
    let start = Instant::now();
    let out = m.netctl_ok(&[
        "cni", "add", "--id", id, "--netns", ns, "--name", id, network,
    ]);
    (
        start.elapsed(),
        serde_json::from_str(&out).expect("an ADD result"),
    )
}

fn del(m: &Machine, network: &str, id: &str, ns: &str) -> Duration {
    let start = Instant::now();
    m.netctl_ok(&["cni", "del", "--id", id, "--netns", ns, network]);
    start.elapsed()
}

/// The container's address and MAC from an ADD result.
fn endpoint(result: &Value) -> (Ipv4Addr, [u8; 6]) {
    let addr = result["ips"][0]["address"].as_str().unwrap();
    let ip: Ipv4Addr = addr.split('/').next().unwrap().parse().unwrap();
    let mac = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.get("sandbox").is_some())
        .and_then(|i| i["mac"].as_str())
        .and_then(parse_mac)
        .unwrap();
    (ip, mac)
}

/// Whether the gateway's DNS server, asked from `sock`, answers `name` with an address.
fn resolves(sock: &UdpSocket, name: &str, id: u16) -> bool {
    let _ = sock.send(&netctl_bench::dns_query(name, id));
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        if n >= 12 && buf[..2] == id.to_be_bytes() {
            return u16::from_be_bytes([buf[6], buf[7]]) > 0;
        }
    }
    false
}

/// Whether `m`'s VXLAN devices forward `mac` (optionally: to `dst`).
fn forwards(nl: &mut Netlink, mac: [u8; 6], dst: Option<&str>) -> bool {
    let Ok(links) = nl.links() else { return false };
    links.iter().filter(|l| l.name.starts_with("vx-")).any(|l| {
        nl.fdb_entries(l.index)
            .unwrap_or_default()
            .iter()
            .any(|f| f.mac == mac && dst.is_none_or(|d| f.dst.to_string() == d))
    })
}

/// A UDP socket in container `ns` of `m`, connected to the network's DNS server.
fn dns_socket(m: &Machine, ns: &str, gateway: &str) -> UdpSocket {
    let netns = NetNs::open(&m.path(ns)).unwrap();
    let gw = format!("{gateway}:53");
    let sock = netns
        .run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.connect(gw).unwrap();
            s
        })
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    sock
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

fn setup(lab: &Lab) {
    lab.join_all(LIVENESS_TTL, 300);
    lab.m(1).netctl_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.210.0.0/20",
        "web",
    ]);
    lab.m(1)
        .netctl_ok(&["network", "create", "--subnet", "10.211.0.0/20", "local"]);
    let conflist = lab.m(2).path("/var/lib/netctl/networks/web.conflist");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conflist.exists() {
        assert!(Instant::now() < deadline, "m2 never saw the network");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn add_del(lab: &Lab, iterations: usize) {
    let m = lab.m(1);
    let (mut oa, mut od, mut ba, mut bd) = (vec![], vec![], vec![], vec![]);
    for i in 0..iterations {
        let ns = m.container(&format!("o{i}"));
        oa.push(add(m, "web", &format!("o{i}"), &ns).0);
        let ns_b = m.container(&format!("b{i}"));
        ba.push(add(m, "local", &format!("b{i}"), &ns_b).0);
    }
    for i in 0..iterations {
        od.push(del(
            m,
            "web",
            &format!("o{i}"),
            &format!("/run/netctl/test-netns/o{i}"),
        ));
        bd.push(del(
            m,
            "local",
            &format!("b{i}"),
            &format!("/run/netctl/test-netns/b{i}"),
        ));
    }
    let (oa, od, ba, bd) = (median(oa), median(od), median(ba), median(bd));
    println!("| network | ADD (ms) | DEL (ms) |");
    println!("|---|---:|---:|");
    println!(
        "| overlay (netctl-overlay + netctl-dns) | {} | {} |",
        ms(oa),
        ms(od)
    );
    println!(
        "| bridge (netctl-bridge + netctl-dns) | {} | {} |",
        ms(ba),
        ms(bd)
    );
    println!(
        "| overlay / bridge | {:.2}x | {:.2}x |",
        oa.as_secs_f64() / ba.as_secs_f64(),
        od.as_secs_f64() / bd.as_secs_f64()
    );
    println!();
}

fn propagation(lab: &Lab, iterations: usize) {
    let (a, b) = (lab.m(1), lab.m(2));
    let probe = b.container("probe");
    add(b, "web", "probe", &probe);
    let sock = dns_socket(b, &probe, "10.210.0.1");
    let mut nl = Netlink::in_ns(&NetNs::open(&b.netns()).unwrap()).unwrap();
    let (mut fwd, mut dns) = (vec![], vec![]);
    for i in 0..iterations {
        let id = format!("p{i}");
        let ns = a.container(&id);
        let (_, result) = add(a, "web", &id, &ns);
        let added = Instant::now();
        let (_, mac) = endpoint(&result);
        let (mut f, mut d) = (None, None);
        let deadline = added + Duration::from_secs(5);
        while (f.is_none() || d.is_none()) && Instant::now() < deadline {
            if f.is_none() && forwards(&mut nl, mac, Some(&a.addr)) {
                f = Some(added.elapsed());
            }
            if d.is_none() && resolves(&sock, &id, i as u16) {
                d = Some(added.elapsed());
            }
        }
        fwd.push(f.expect("the other host forwards to the new container"));
        dns.push(d.expect("the other host resolves the new container"));
    }
    println!(
        "| from ADD returning on host A until host B ... | median (ms) | p99 (ms) | max (ms) |"
    );
    println!("|---|---:|---:|---:|");
    for (what, v) in [
        ("forwards to it (FDB entry)", fwd),
        ("resolves its name", dns),
    ] {
        println!(
            "| {what} | {} | {} | {} |",
            ms(median(v.clone())),
            ms(percentile(v.clone(), 0.99)),
            ms(percentile(v, 1.0))
        );
    }
    println!();
}

/// A fresh lab; a container on the machine whose etcd member leads (the worst case: etcd
/// re-grants every lease in full after an election); that machine killed whole; how long
/// until both others have dropped its forwarding entry and name.
/// A container `id` on `m` attached to `network`; its namespace (as this process opens it)
/// and its address.
fn container(m: &Machine, network: &str, id: &str) -> (NetNs, Ipv4Addr) {
    let ns = m.container(id);
    let (_, result) = add(m, network, id, &ns);
    (NetNs::open(&m.path(&ns)).unwrap(), endpoint(&result).0)
}

/// Round trips of 64-byte UDP datagrams from a container on host A to an echo in a
/// container on host B, on `network`.
fn round_trips(lab: &Lab, network: &str, n: usize) -> Vec<Duration> {
    let (server_ns, server_ip) = container(lab.m(2), network, &format!("echo-{network}"));
    let (client_ns, _) = container(lab.m(1), network, &format!("ping-{network}"));
    let server = server_ns
        .run(|| UdpSocket::bind("0.0.0.0:7000").unwrap())
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((len, from)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..len], from);
        }
    });
    let to = format!("{server_ip}:7000");
    let client = client_ns
        .run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.connect(to).unwrap();
            s
        })
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut times = Vec::new();
    // The first ones make the neighbour entries (and, encrypted, the tunnel's handshake).
    for i in 0..n + 20 {
        let start = Instant::now();
        client.send(&[7u8; 64]).unwrap();
        if client.recv(&mut buf).is_ok() && i >= 20 {
            times.push(start.elapsed());
        }
    }
    times
}

/// MB/s of one TCP connection from a container on host A to one on host B, on `network`.
fn throughput(lab: &Lab, network: &str, bytes: usize) -> f64 {
    let (server_ns, server_ip) = container(lab.m(2), network, &format!("sink-{network}"));
    let (client_ns, _) = container(lab.m(1), network, &format!("source-{network}"));
    let listener = server_ns
        .run(|| TcpListener::bind("0.0.0.0:7001").unwrap())
        .unwrap();
    let sink = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let to = format!("{server_ip}:7001");
    let mut conn = client_ns
        .run(move || TcpStream::connect(to).unwrap())
        .unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        conn.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let got = sink.join().unwrap();
    assert_eq!(got, sent, "every byte arrived");
    sent as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The cost of `-o encrypted`: round trip and throughput between two hosts, plain and
/// encrypted overlay in the same lab.
fn encryption_cost(lab: &Lab, iterations: usize) {
    lab.m(1).netctl_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "encrypted",
        "--subnet",
        "10.212.0.0/20",
        "sec",
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lab
        .m(2)
        .path("/var/lib/netctl/networks/sec.conflist")
        .exists()
    {
        assert!(Instant::now() < deadline, "m2 never saw the network");
        std::thread::sleep(Duration::from_millis(10));
    }
    let n = iterations * 10;
    let bytes = 256 << 20;
    println!("| between containers on hosts A and B | plain overlay | encrypted overlay | encrypted / plain |");
    println!("|---|---:|---:|---:|");
    let (rp, re) = (round_trips(lab, "web", n), round_trips(lab, "sec", n));
    for (what, p) in [
        ("round trip, median (ms)", 0.5),
        ("round trip, p99 (ms)", 0.99),
    ] {
        let (a, b) = (percentile(rp.clone(), p), percentile(re.clone(), p));
        println!(
            "| UDP 64 B {what} | {} | {} | {:.2}x |",
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    let (tp, te) = (throughput(lab, "web", bytes), throughput(lab, "sec", bytes));
    println!(
        "| TCP throughput, one connection, {} MiB (MB/s) | {tp:.0} | {te:.0} | {:.2}x |",
        bytes >> 20,
        te / tp
    );
    println!();
}

fn dead_host_round() -> Duration {
    let mut lab = Lab::new(3);
    setup(&lab);
    let v = lab.etcd_leader();
    let others: Vec<usize> = (1..=3).filter(|n| *n != v).collect();
    let nsv = lab.m(v).container("doomed");
    let (_, result) = add(lab.m(v), "web", "doomed", &nsv);
    let (_, mac) = endpoint(&result);
    let mut watchers: Vec<(Netlink, UdpSocket)> = others
        .iter()
        .map(|&n| {
            let m = lab.m(n);
            let ns = m.container("watch");
            add(m, "web", "watch", &ns);
            let nl = Netlink::in_ns(&NetNs::open(&m.netns()).unwrap()).unwrap();
            (nl, dns_socket(m, &ns, "10.210.0.1"))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watchers
        .iter_mut()
        .all(|(nl, s)| forwards(nl, mac, None) && resolves(s, "doomed", 1))
    {
        assert!(Instant::now() < deadline, "the container never showed up");
    }
    lab.machines[v - 1].kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(60);
    let mut id = 2u16;
    loop {
        id = id.wrapping_add(1);
        let gone = watchers
            .iter_mut()
            .all(|(nl, s)| !forwards(nl, mac, None) && !resolves(s, "doomed", id));
        if gone {
            return killed.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the dead host's container never left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One lab's tables: ADD/DEL, propagation and, in the secured lab, the cost of encryption.
fn lab_tables(secured: bool, iterations: usize) {
    let (etcd, lab) = if secured {
        (
            "over TLS with client certificates (the secured setup)",
            Lab::new(3),
        )
    } else {
        ("over plain HTTP (no TLS; for comparison)", Lab::plain(3))
    };
    setup(&lab);
    println!("etcd {etcd}. ADD and DEL of one container on host A, medians of {iterations}, taking turns:");
    println!();
    add_del(&lab, iterations);
    println!("etcd {etcd}. Propagation over {iterations} ADDs on host A, watched from host B in-process (netlink, DNS over UDP):");
    println!();
    propagation(&lab, iterations);
    if secured {
        println!("The cost of `-o encrypted` (WireGuard's protocol in the agent, over a TUN device) against a plain overlay, same lab:");
        println!();
        encryption_cost(&lab, iterations);
    }
}

/// Runs this program again with `args` (a lab's namespaces are its process's, and one
/// process can make one lab); what it printed.
fn in_own_process(args: &[&str]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        std::env::var_os("NETCTL_BIN_DIR").is_some(),
        "usage: NETCTL_BIN_DIR=target/<triple>/release overlay-bench [ITERATIONS]"
    );
    match args.get(1).map(String::as_str) {
        Some("--dead-host-round") => {
            println!("{}", dead_host_round().as_nanos());
            return;
        }
        Some(kind @ ("--plain-lab" | "--secured-lab")) => {
            let iterations = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
            lab_tables(kind == "--secured-lab", iterations);
            return;
        }
        _ => {}
    }
    let iterations = args.get(1).cloned().unwrap_or_else(|| "100".into());
    let rounds: Vec<Duration> = (0..3)
        .map(|_| {
            Duration::from_nanos(
                in_own_process(&["--dead-host-round"])
                    .trim()
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    for lab in ["--plain-lab", "--secured-lab"] {
        print!("{}", in_own_process(&[lab, &iterations]));
    }
    println!(
        "The host whose etcd member leads killed whole (agent, etcd member, namespaces), liveness TTL {LIVENESS_TTL} s: until both other hosts dropped its container's forwarding entry and name, 3 rounds: median {} ms, max {} ms (goal: TTL + 2 s = {} ms; Docker swarm reaps after 24 h, flannel keeps a dead host's subnet 24 h).",
        ms(median(rounds.clone())),
        ms(percentile(rounds, 1.0)),
        (LIVENESS_TTL + 2) * 1000
    );
}
