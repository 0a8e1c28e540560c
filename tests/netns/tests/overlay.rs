//! Overlay networks across hosts: three machines (namespaces of their own, each with an etcd
//! member and a netctl-overlayd) on one underlay, as a user with a small cluster has them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netctl_netns_tests::cluster::{Lab, Machine};
use netctl_netns_tests::eventually;

const SUBNET: &str = "10.210.0.0/24";
const GATEWAY: &str = "10.210.0.1";

/// `netctl network create -d overlay` on `m` (with `--ip-range` and `--gateway`), and every
/// machine of the lab lists it under the same ID with scope `global`.
fn overlay_network(lab: &Lab, creator: usize) -> String {
    let id = lab.m(creator).netctl_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        SUBNET,
        "--ip-range",
        "10.210.0.128/25",
        "--gateway",
        GATEWAY,
        "web",
    ]);
    let id = id.trim().to_string();
    for m in &lab.machines {
        eventually(
            &format!("{} lists the network", m.name),
            Duration::from_secs(3),
            || {
                let ls = m.netctl_ok(&["network", "ls", "--no-trunc"]);
                match ls.lines().find(|l| l.contains(" web ")) {
                    Some(l)
                        if l.starts_with(&id) && l.contains("overlay") && l.contains("global") =>
                    {
                        Ok(())
                    }
                    _ => Err(ls),
                }
            },
        );
    }
    id
}

/// ADD of container `id` (namespace `netns`) on `m` to `web`, as `netctl cni add` does for a
/// runtime; the exit code, the address (if any) and what it printed.
fn add(m: &Machine, id: &str, netns: &str, extra: &[&str]) -> (i32, Option<String>, String) {
    m.cni_add("web", id, netns, extra)
}

fn add_ok(m: &Machine, id: &str, netns: &str, extra: &[&str]) -> String {
    m.cni_add_ok("web", id, netns, extra)
}

fn del(m: &Machine, id: &str, netns: &str) {
    m.netctl_ok(&["cni", "del", "--id", id, "--netns", netns, "web"]);
}

/// The A records `name` has, asked from container `netns` of `m` at the network's gateway.
fn resolve(m: &Machine, netns: &str, name: &str) -> Vec<String> {
    let (_, out) = m.in_container(
        netns,
        &format!("dig +short +time=1 +tries=2 @{GATEWAY} {name} A"),
    );
    out.lines()
        .filter(|l| l.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
        .collect()
}

fn pings(m: &Machine, netns: &str, addr: &str) -> bool {
    m.in_container(netns, &format!("busybox ping -c1 -W2 {addr}"))
        .0
}

/// The VXLAN device's forwarding entries on `m` (MAC and remote host of each).
fn fdb(m: &Machine) -> String {
    m.sh("for d in $(ip -o link show type vxlan | awk -F': ' '{print $2}'); do bridge fdb show dev $d | grep ' dst '; done; true")
}

/// A field of the container's eth0 as `ip -o link` shows it (`mtu`, `link/ether`); /sys is
/// the machine's, not the container's.
fn link_field(m: &Machine, netns: &str, field: &str) -> String {
    let out = m.in_container(netns, "ip -o link show eth0").1;
    out.split_whitespace()
        .skip_while(|w| *w != field)
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn mac_of(m: &Machine, netns: &str) -> String {
    link_field(m, netns, "link/ether")
}

/// A user creates an overlay network on one host and starts a container on each of three:
/// they ping each other, move 100 KB at the network's MTU, and every host resolves every
/// name, the shared alias (all three, rotating) and the addresses back to names.
#[test]
fn containers_on_three_hosts_reach_and_resolve_each_other() {
    let lab = Lab::new(3);
    lab.join_all(5, 300);
    let rows = lab.m(2).netctl_ok(&["cluster", "ls"]);
    for (i, m) in lab.machines.iter().enumerate() {
        let row = rows
            .lines()
            .find(|l| l.starts_with(&m.name))
            .unwrap_or_default();
        assert!(
            row.contains(&m.addr) && row.contains("Ready"),
            "cluster ls: {rows}"
        );
        assert_eq!(
            row.contains(" *"),
            i == 1,
            "cluster ls marks this host: {rows}"
        );
    }
    overlay_network(&lab, 1);
    let mut c = Vec::new();
    for i in 1..=3 {
        let m = lab.m(i);
        let ns = m.container(&format!("c{i}"));
        let extra: &[&str] = if i == 3 {
            &["--alias", "web", "--ip", "10.210.0.200"]
        } else {
            &["--alias", "web"]
        };
        let addr = add_ok(m, &format!("c{i}"), &ns, extra);
        c.push((ns, addr));
    }
    assert_eq!(c[2].1, "10.210.0.200", "--ip is honoured");
    for (_, a) in &c[..2] {
        let last: u8 = a.rsplit('.').next().unwrap().parse().unwrap();
        assert!(last >= 128, "{a} comes from --ip-range 10.210.0.128/25");
    }
    assert_eq!(
        link_field(lab.m(1), &c[0].0, "mtu"),
        "1450",
        "the network's MTU is the underlay's less 50"
    );

    for (i, (ns, _)) in c.iter().enumerate() {
        for (j, (_, to)) in c.iter().enumerate() {
            if i != j {
                assert!(
                    pings(lab.m(i + 1), ns, to),
                    "c{} pings c{} at {to}",
                    i + 1,
                    j + 1
                );
            }
        }
    }

    let www = lab.host.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(www.join("big"), &big).unwrap();
    lab.m(3).sh(&format!(
        "nsenter --net={} busybox httpd -p 8080 -h {}",
        c[2].0,
        www.display()
    ));
    let got = eventually(
        "a 100 KB download across hosts",
        Duration::from_secs(5),
        || match lab.m(1).in_container(
            &c[0].0,
            &format!("busybox wget -q -O - http://{}:8080/big | wc -c", c[2].1),
        ) {
            (true, n) if n.trim() == "100000" => Ok(n),
            (_, other) => Err(other),
        },
    );
    assert_eq!(got.trim(), "100000");

    for (i, (ns, _)) in c.iter().enumerate() {
        let m = lab.m(i + 1);
        for (j, (_, addr)) in c.iter().enumerate() {
            let name = format!("c{}", j + 1);
            let got = eventually(
                &format!("{} resolves {name}", m.name),
                Duration::from_secs(3),
                || match resolve(m, ns, &name) {
                    v if v == [addr.clone()] => Ok(v),
                    v => Err(format!("{v:?}")),
                },
            );
            assert_eq!(got, std::slice::from_ref(addr));
            let ptr = m
                .in_container(ns, &format!("dig +short @{GATEWAY} -x {addr}"))
                .1;
            assert!(
                ptr.contains(&name),
                "{}: {addr} resolves back to {name}: {ptr}",
                m.name
            );
        }
        let all: BTreeSet<String> = c.iter().map(|(_, a)| a.clone()).collect();
        let mut firsts = BTreeSet::new();
        for _ in 0..6 {
            let answer = resolve(m, ns, "web");
            assert_eq!(
                answer.iter().cloned().collect::<BTreeSet<_>>(),
                all,
                "{}: the alias answers every container",
                m.name
            );
            firsts.insert(answer[0].clone());
        }
        assert!(
            firsts.len() > 1,
            "{}: the alias rotates: {firsts:?}",
            m.name
        );
    }
    // A runtime on another host may use the same container ID: both keep their names.
    let twins: Vec<(String, String)> = [1, 2]
        .into_iter()
        .map(|n| {
            let ns = lab.m(n).container("twin");
            let a = add_ok(lab.m(n), "twin", &ns, &[]);
            (ns, a)
        })
        .collect();
    let both: BTreeSet<String> = twins.iter().map(|(_, a)| a.clone()).collect();
    for (n, (ns, _)) in twins.iter().enumerate() {
        let m = lab.m(n + 1);
        eventually(
            &format!("{} resolves both twins", m.name),
            Duration::from_secs(3),
            || match resolve(m, ns, "twin").into_iter().collect::<BTreeSet<_>>() {
                got if got == both => Ok(()),
                got => Err(format!("{got:?}")),
            },
        );
    }
}

/// Ten containers started at once over three hosts get ten addresses; one disconnected is
/// gone from every host's forwarding table and DNS within a second, and its address is free.
#[test]
fn concurrent_adds_never_share_an_address_and_a_del_is_seen_everywhere_at_once() {
    let lab = Lab::new(3);
    lab.join_all(5, 300);
    overlay_network(&lab, 2);
    let spots: Vec<(usize, String, String)> = (0..10)
        .map(|k| {
            let m = k % 3 + 1;
            let id = format!("k{k}");
            let ns = lab.m(m).container(&id);
            (m, id, ns)
        })
        .collect();
    let addrs: Vec<String> = std::thread::scope(|s| {
        let running: Vec<_> = spots
            .iter()
            .map(|(m, id, ns)| s.spawn(|| add_ok(lab.m(*m), id, ns, &[])))
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let distinct: BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), 10, "ten distinct addresses: {addrs:?}");

    let (m, id, ns) = &spots[0];
    let (gone_addr, gone_mac) = (addrs[0].clone(), mac_of(lab.m(*m), ns));
    let (_, other_id, other_ns) = &spots[1];
    assert_eq!(
        resolve(lab.m(2), other_ns, id),
        std::slice::from_ref(&gone_addr)
    );
    eventually(
        "every host points at it",
        Duration::from_secs(2),
        || match (fdb(lab.m(2)), fdb(lab.m(3))) {
            (a, b) if a.contains(&gone_mac) && b.contains(&gone_mac) => Ok(()),
            (a, b) => Err(format!(
                "{a} | {b} | logs: {} {}",
                lab.m(2).agent_log(),
                lab.m(3).agent_log()
            )),
        },
    );
    let asked = Instant::now();
    del(lab.m(*m), id, ns);
    for (n, ns) in [(2, other_ns), (3, &spots[2].2)] {
        eventually(
            &format!("m{n} forgets {id}"),
            Duration::from_secs(1).saturating_sub(asked.elapsed()),
            || {
                let (table, names) = (fdb(lab.m(n)), resolve(lab.m(n), ns, id));
                if table.contains(&gone_mac) || !names.is_empty() {
                    Err(format!("fdb: {table} names: {names:?}"))
                } else {
                    Ok(())
                }
            },
        );
    }
    let keys = lab.keys(3, "/netctl/v1/ipam/web/");
    assert!(
        !keys.contains(&format!("/ip/{gone_addr}")),
        "its address is free: {keys}"
    );
    assert!(
        resolve(lab.m(2), other_ns, other_id).len() == 1,
        "the others stay"
    );
}

/// `kill -9` of one host's agent: its containers stop resolving elsewhere within the
/// liveness TTL; the agent started again brings them back with the same addresses.
#[test]
fn a_killed_agents_containers_leave_and_come_back_with_their_addresses() {
    let lab = Lab::new(3);
    lab.join_all(3, 300);
    overlay_network(&lab, 1);
    let ns1 = lab.m(1).container("c1");
    let ns3 = lab.m(3).container("c3");
    let a1 = add_ok(lab.m(1), "c1", &ns1, &[]);
    let a3 = add_ok(lab.m(3), "c3", &ns3, &[]);
    assert!(pings(lab.m(1), &ns1, &a3));
    let mac3 = mac_of(lab.m(3), &ns3);

    lab.m(3).kill_agent();
    let killed = Instant::now();
    eventually(
        "m1 forgets c3 within the liveness TTL",
        Duration::from_secs(3 + 1),
        || match (resolve(lab.m(1), &ns1, "c3"), fdb(lab.m(1))) {
            (names, table) if names.is_empty() && !table.contains(&mac3) => Ok(()),
            (names, table) => Err(format!("{names:?} {table}")),
        },
    );
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(4), "gone after {took:?}");
    lab.join(3, 3, 300);
    eventually(
        "c3 is back on m1",
        Duration::from_secs(3),
        || match resolve(lab.m(1), &ns1, "c3") {
            v if v == [a3.clone()] => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
    assert!(pings(lab.m(1), &ns1, &a3), "c1 reaches c3 again");
    assert!(pings(lab.m(3), &ns3, &a1), "c3 reaches c1 again");
    let ns3b = lab.m(3).container("c3b");
    let b = add_ok(lab.m(3), "c3b", &ns3b, &[]);
    assert!(
        b != a1 && b != a3,
        "addresses kept through the restart stay taken: {b}"
    );
}

/// A whole host dies (`kill -9` of its agent, its etcd member and its namespaces), the one
/// whose etcd member leads (the worst case: etcd re-grants every lease in full after the
/// election): the others drop its containers within TTL + 2 s, writes go on with two
/// members, and its addresses are free once its tenure has run out.
#[test]
fn a_dead_hosts_containers_leave_and_the_cluster_goes_on() {
    let mut lab = Lab::new(3);
    lab.join_all(3, 8);
    overlay_network(&lab, 1);
    let v = lab.etcd_leader();
    let (w1, w2) = match v {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let victim_addr = lab.m(v).addr.clone();
    let ns1 = lab.m(w1).container("c1");
    let nsv = lab.m(v).container("cv");
    add_ok(lab.m(w1), "c1", &ns1, &[]);
    let av = add_ok(lab.m(v), "cv", &nsv, &[]);
    eventually(
        "the watcher resolves cv",
        Duration::from_secs(3),
        || match resolve(lab.m(w1), &ns1, "cv") {
            v if !v.is_empty() => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );

    lab.machines[v - 1].kill();
    let killed = Instant::now();
    for n in [w1, w2] {
        eventually(
            &format!("m{n} drops the dead host's entries"),
            Duration::from_secs(3 + 2).saturating_sub(killed.elapsed()),
            || {
                let table = fdb(lab.m(n));
                let names = if n == w1 {
                    resolve(lab.m(w1), &ns1, "cv")
                } else {
                    vec![]
                };
                if table.contains(&victim_addr) || !names.is_empty() {
                    Err(format!("{table} {names:?}"))
                } else {
                    Ok(())
                }
            },
        );
    }
    let gone_after = killed.elapsed();
    eventually("cluster ls says Down", Duration::from_secs(5), || {
        let rows = lab.m(w1).netctl_ok(&["cluster", "ls"]);
        if rows
            .lines()
            .any(|l| l.starts_with(&format!("m{v}")) && l.contains("Down"))
        {
            Ok(())
        } else {
            Err(rows)
        }
    });
    let ns2 = lab.m(w2).container("c2");
    let a2 = add_ok(lab.m(w2), "c2", &ns2, &[]);
    assert!(
        pings(lab.m(w2), &ns2, &lab_addr(&lab, w1, &ns1)),
        "writes and traffic go on (the dead host's entries went after {gone_after:?})"
    );
    assert_ne!(a2, av, "its address stays taken during its tenure");
    eventually(
        "the dead host's address is free after its tenure",
        Duration::from_secs(8 + 4).saturating_sub(killed.elapsed()),
        || {
            let keys = lab.keys(w1, "/netctl/v1/ipam/web/");
            if keys.contains(&format!("/ip/{av}")) {
                Err(keys)
            } else {
                Ok(())
            }
        },
    );
}

fn lab_addr(lab: &Lab, m: usize, ns: &str) -> String {
    let out = lab.m(m).in_container(ns, "ip -4 -o addr show dev eth0").1;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// `network rm` is refused while any host has a container on the network, and once none has
/// it leaves no device on any host and no key in etcd.
#[test]
fn network_rm_waits_for_every_host_and_leaves_nothing() {
    let lab = Lab::new(3);
    lab.join_all(5, 300);
    overlay_network(&lab, 1);
    let ns1 = lab.m(1).container("c1");
    let ns2 = lab.m(2).container("c2");
    add_ok(lab.m(1), "c1", &ns1, &[]);
    add_ok(lab.m(2), "c2", &ns2, &[]);
    let (code, out, err) = lab.m(3).netctl(&["network", "rm", "web"]);
    assert_ne!(code, 0, "refused with endpoints: {out}");
    assert!(
        err.contains("active endpoints") && err.contains("m1") && err.contains("m2"),
        "{err}"
    );
    del(lab.m(1), "c1", &ns1);
    del(lab.m(2), "c2", &ns2);
    lab.m(3).netctl_ok(&["network", "rm", "web"]);
    for m in &lab.machines {
        eventually(
            &format!("{} has nothing left", m.name),
            Duration::from_secs(3),
            || {
                // stdout only: iproute2 on some kernels writes "Peer netns reference is
                // invalid" to stderr for every veth whose peer is in another namespace.
                let links: String = m
                    .sh("ip -o link 2>/dev/null")
                    .lines()
                    .filter(|l| {
                        l.split(": ")
                            .nth(1)
                            .is_some_and(|n| n.starts_with("ov-") || n.starts_with("vx-"))
                    })
                    .collect();
                let ls = m.netctl_ok(&["network", "ls"]);
                if links.trim().is_empty() && !ls.contains(" web ") {
                    Ok(())
                } else {
                    Err(format!("{links}{ls}"))
                }
            },
        );
    }
    for prefix in ["networks/", "vnis/", "ipam/web/", "endpoints/web/"] {
        let keys = lab.keys(2, &format!("/netctl/v1/{prefix}"));
        assert!(keys.trim().is_empty(), "{prefix}: {keys}");
    }
}

/// A host whose underlay MTU is too small is refused; with etcd gone, ADD fails with CNI
/// error 11 saying so (also when the agent must be started), and running containers keep
/// talking.
#[test]
fn without_etcd_add_says_try_again_and_running_containers_keep_talking() {
    let lab = Lab::new(2);
    lab.join(1, 5, 300);
    overlay_network_on_one(&lab);
    lab.m(2).sh("ip link set eth0 mtu 1400");
    let args = lab.join_args(2, 5, 300);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = lab.m(2).netctl(&args);
    assert_ne!(code, 0, "refused: {out} {}", lab.m(2).agent_log());
    assert!(err.contains("MTU 1400 is too small"), "{err}");
    lab.m(2).sh("ip link set eth0 mtu 1500");
    lab.join(2, 5, 300);

    let ns1 = lab.m(1).container("c1");
    let ns2 = lab.m(2).container("c2");
    add_ok(lab.m(1), "c1", &ns1, &[]);
    let a2 = add_ok(lab.m(2), "c2", &ns2, &[]);
    for m in &lab.machines {
        m.sh("pkill -9 -x etcd --ns $$ --nslist net; true");
    }
    let ns3 = lab.m(1).container("c3");
    let (code, _, out) = add(lab.m(1), "c3", &ns3, &[]);
    assert_ne!(code, 0);
    assert!(
        out.contains("CNI error 11") && out.contains("etcd"),
        "{out}"
    );
    assert!(pings(lab.m(1), &ns1, &a2), "c1 still reaches c2");
    lab.m(1).kill_agent();
    let (code, _, out) = add(lab.m(1), "c3", &ns3, &[]);
    assert_ne!(code, 0);
    assert!(
        out.contains("CNI error 11") && out.contains("did not start") && out.contains("etcd"),
        "{out}"
    );
    assert!(
        pings(lab.m(2), &ns2, &lab_addr(&lab, 1, &ns1)),
        "c2 still reaches c1"
    );
}

fn overlay_network_on_one(lab: &Lab) {
    lab.m(1).netctl_ok(&[
        "network", "create", "-d", "overlay", "--subnet", SUBNET, "web",
    ]);
}

/// A Docker user on two hosts: `netctl run --net web -p 8080:80` on each, and `network
/// connect` of a running container; names, the alias and HTTP work across the hosts from
/// inside the containers (their own resolver, 127.0.0.11), and each published port answers
/// on its host's address.
#[test]
fn run_and_network_connect_work_on_any_host() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    overlay_network(&lab, 1);
    let rootfs = netctl_netns_tests::busybox_rootfs(lab.host.dir());
    for (i, m) in lab.machines.iter().enumerate() {
        m.netctl_ok(&["image", "import", &rootfs.display().to_string(), "busybox"]);
        let name = format!("c{}", i + 1);
        m.netctl_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--net",
            "web",
            "--net-alias",
            "app",
            "-p",
            "8080:80",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
    }
    lab.m(2)
        .netctl_ok(&["run", "-d", "--name", "late", "busybox", "sleep", "600"]);
    lab.m(2).netctl_ok(&["network", "connect", "web", "late"]);
    let page = eventually(
        "c1 fetches c2's page across hosts",
        Duration::from_secs(5),
        || match lab
            .m(1)
            .netctl(&["exec", "c1", "wget", "-qO-", "http://c2/"])
        {
            (0, out, _) => Ok(out),
            (_, out, err) => Err(format!("{out}{err}")),
        },
    );
    assert_eq!(page, "hello from busybox httpd\n");
    let (code, out, err) = lab
        .m(2)
        .netctl(&["exec", "late", "wget", "-qO-", "http://c1/"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "hello from busybox httpd\n"),
        "{err}"
    );
    let app = lab.m(1).netctl_ok(&["exec", "c1", "nslookup", "app"]);
    let found = app.matches("10.210.0.").count();
    assert_eq!(found, 2, "the alias names both hosts' containers: {app}");
    // A published port answers on its own host's underlay address, asked from a container on
    // the other host (out through that host's masquerade, in through this one's DNAT).
    for (from, to) in [(2, 1), (1, 2)] {
        let url = format!("http://{}:8080/", lab.m(to).addr);
        let client = format!("c{from}");
        let got = eventually(
            &format!("m{from} fetches m{to}'s published port"),
            Duration::from_secs(5),
            || match lab.m(from).netctl(&["exec", &client, "wget", "-qO-", &url]) {
                (0, out, _) => Ok(out),
                (_, out, err) => Err(format!("{out}{err}")),
            },
        );
        assert_eq!(got, "hello from busybox httpd\n");
    }
    let late = lab.m(1).netctl_ok(&["exec", "c1", "nslookup", "late"]);
    assert!(
        late.contains("10.210.0."),
        "a connected container resolves elsewhere: {late}"
    );
}

/// Another runtime (Debian's libcni, as podman's CNI backend and containerd use it) drives
/// the conflist netctl wrote on its host: the container gets an address, its alias resolves
/// on the other host, and DEL takes it away there too.
#[test]
fn libcni_drives_the_overlay_conflist_on_any_host() {
    let lab = Lab::new(2);
    lab.join_all(5, 300);
    overlay_network(&lab, 1);
    let ns1 = lab.m(1).container("c1");
    add_ok(lab.m(1), "c1", &ns1, &[]);
    let ns2 = lab.m(2).container("lib1");
    let list = "/var/lib/netctl/networks/web.conflist";
    let caps = r#"{"aliases": {"web": ["libalias"]}}"#;
    let (ok, out) = lab.m(2).libcni("add", list, "lib1", &ns2, caps);
    assert!(ok, "libcni ADD: {out}");
    let addr = lab_addr(&lab, 2, &ns2);
    assert!(addr.starts_with("10.210.0."), "{addr}: {out}");
    eventually(
        "m1 resolves the alias libcni gave",
        Duration::from_secs(3),
        || match resolve(lab.m(1), &ns1, "libalias") {
            v if v == [addr.clone()] => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
    assert!(
        pings(lab.m(1), &ns1, &addr),
        "c1 reaches the libcni container"
    );
    let (ok, out) = lab.m(2).libcni("del", list, "lib1", &ns2, caps);
    assert!(ok, "libcni DEL: {out}");
    eventually(
        "the alias is gone on m1",
        Duration::from_secs(1),
        || match resolve(lab.m(1), &ns1, "libalias") {
            v if v.is_empty() => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
}

/// An admin stops the agent (`kill -TERM`, `systemctl stop`) that `netctl cluster join`
/// started from a shell blocking SIGTERM: it ends within a second, its socket and pid file
/// gone; a container attached before keeps its address through the restart that follows.
#[test]
fn the_agent_ends_within_a_second_of_sigterm_and_a_restart_keeps_everything() {
    let lab = Lab::new(1);
    netctl_netns_tests::act_as_a_careless_runtime();
    lab.join_all(5, 300);
    overlay_network_on_one(&lab);
    let m = lab.m(1);
    let ns = m.container("c1");
    let a1 = add_ok(m, "c1", &ns, &[]);
    let pid: i32 = m.agent_pid().parse().unwrap();
    let sent = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    eventually(
        "the agent ends",
        Duration::from_secs(5),
        || match netctl_netns_tests::alive(pid) {
            true => Err(format!("{pid} runs: {}", m.agent_log())),
            false => Ok(()),
        },
    );
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(1), "ended in {took:?}");
    for f in ["agent.sock", "agent.pid"] {
        assert!(
            !m.path(&format!("/run/netctl/overlay/{f}")).exists(),
            "{f} is gone"
        );
    }
    lab.join_all(5, 300);
    let ns2 = m.container("c2");
    let a2 = add_ok(m, "c2", &ns2, &[]);
    assert_ne!(a1, a2, "c1 kept its address through the restart");
    m.sh(&format!("test -e /proc/{}", m.agent_pid()));
}
