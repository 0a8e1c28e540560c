//! `network create -d macvlan --scope swarm` on the hosts of a cluster: one macvlan network
//! over every server's LAN link, its addresses from the cluster's IPAM in etcd — the seed
//! notes' two-server example without splitting `--ip-range` by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use netctl_netns_tests::cluster::{Lab, Machine};
use netctl_netns_tests::eventually;

const SUBNET: &str = "10.231.0.0/24";
const ROUTER: &str = "10.231.0.254";

fn create_lan(m: &Machine, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "network",
        "create",
        "-d",
        "macvlan",
        "--scope",
        "swarm",
        "--subnet",
        SUBNET,
        "--gateway",
        ROUTER,
    ];
    args.extend_from_slice(extra);
    args.push("lan");
    m.netctl(&args)
}

/// The container `netns` of `m` answers `name` through its own resolver (127.0.0.11).
fn resolves(m: &Machine, netns: &str, name: &str) -> Vec<String> {
    let (_, out) = m.in_container(
        netns,
        &format!("dig +short +time=1 +tries=2 @127.0.0.11 {name} A"),
    );
    out.lines()
        .filter(|l| l.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
        .collect()
}

/// Two servers on one LAN, in one cluster: a macvlan network made once is on both; 20
/// containers started on both at once get 20 distinct addresses, reach each other across
/// the servers and resolve each other's names; `network rm` on either takes it from both
/// and leaves no link, lease or record.
#[test]
fn twenty_containers_on_two_servers_get_twenty_addresses_and_reach_each_other() {
    let lab = Lab::new(2);
    let (code, _, err) = create_lan(lab.m(1), &["-o", "parent=eth0"]);
    assert_ne!(code, 0);
    assert!(err.contains("cluster join"), "not in a cluster yet: {err}");
    lab.join_all(5, 300);
    let id = {
        let (code, out, err) = create_lan(lab.m(1), &["-o", "parent=eth0"]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    for m in &lab.machines {
        eventually(
            &format!("{} lists lan", m.name),
            Duration::from_secs(3),
            || {
                let ls = m.netctl_ok(&["network", "ls", "--no-trunc"]);
                match ls.lines().find(|l| l.contains(" lan ")) {
                    Some(l)
                        if l.starts_with(&id) && l.contains("macvlan") && l.contains("swarm") =>
                    {
                        Ok(())
                    }
                    _ => Err(ls),
                }
            },
        );
    }
    let inspect = lab.m(2).netctl_ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Scope}} {{.Options.parent}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
        "lan",
    ]);
    assert_eq!(inspect.trim(), format!("swarm eth0 {SUBNET} {ROUTER}"));

    // Ten containers on each server, both servers at once.
    let started: Vec<Vec<(String, String, String)>> = std::thread::scope(|s| {
        let runs: Vec<_> = lab
            .machines
            .iter()
            .map(|m| {
                s.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let name = format!("{}c{i}", m.name);
                            let ns = m.container(&name);
                            let addr = m.cni_add_ok("lan", &name, &ns, &[]);
                            (name, ns, addr)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let addrs: BTreeSet<&str> = started
        .iter()
        .flatten()
        .map(|(_, _, a)| a.as_str())
        .collect();
    assert_eq!(addrs.len(), 20, "distinct addresses: {started:?}");
    assert!(
        addrs
            .iter()
            .all(|a| a.starts_with("10.231.0.") && *a != ROUTER),
        "{addrs:?}"
    );

    let (m1, m2) = (lab.m(1), lab.m(2));
    let (a, b) = (&started[0][0], &started[1][9]);
    // Every container is reached from a container of each server.
    let all: Vec<&str> = addrs.iter().copied().collect();
    for (m, ns) in [(m1, &a.1), (m2, &b.1)] {
        let (_, missed) = m.in_container(
            ns,
            &format!(
                "for a in {}; do busybox ping -c1 -W2 $a >/dev/null || echo $a; done",
                all.join(" ")
            ),
        );
        assert_eq!(missed, "", "{}: not reached", m.name);
    }
    eventually(
        "m1c0 resolves m2c9, a container of the other server",
        Duration::from_secs(5),
        || match resolves(m1, &a.1, &b.0) {
            r if r == [b.2.clone()] => Ok(()),
            r => Err(format!("{r:?}")),
        },
    );
    // What a Docker user types: `run --net lan` with an alias, on the other server.
    let rootfs = netctl_netns_tests::busybox_rootfs(lab.host.dir());
    m2.netctl_ok(&["image", "import", &rootfs.display().to_string(), "busybox"]);
    let (code, out, err) = m2.netctl(&[
        "run",
        "--rm",
        "--name",
        "web",
        "--net",
        "lan",
        "--net-alias",
        "app",
        "busybox",
        "sh",
        "-c",
        &format!("ping -c1 -W2 {} >/dev/null && echo reached", a.0),
    ]);
    assert_eq!((code, out.trim()), (0, "reached"), "{err}");

    let (code, _, err) = m2.netctl(&["network", "rm", "lan"]);
    assert_ne!(code, 0);
    assert!(err.contains("active endpoints"), "{err}");
    for (m, run) in lab.machines.iter().zip(&started) {
        for (name, ns, _) in run {
            m.netctl_ok(&["cni", "del", "--id", name, "--netns", ns, "lan"]);
        }
    }
    eventually(
        "m1c0's name is gone from m2's containers",
        Duration::from_secs(5),
        || match resolves(m2, &b.1, &a.0) {
            r if r.is_empty() => Ok(()),
            r => Err(format!("{r:?}")),
        },
    );
    m2.netctl_ok(&["network", "rm", "lan"]);
    for m in &lab.machines {
        eventually(
            &format!("{} has nothing of lan left", m.name),
            Duration::from_secs(3),
            || {
                let links = m.stdout_of("ip -o link show type macvlan 2>/dev/null");
                let ls = m.netctl_ok(&["network", "ls"]);
                if links.trim().is_empty() && !ls.contains(" lan ") {
                    Ok(())
                } else {
                    Err(format!("{links}{ls}"))
                }
            },
        );
    }
    for prefix in ["networks/", "ipam/lan/", "endpoints/lan/"] {
        let keys = lab.keys(1, &format!("/netctl/v1/{prefix}"));
        assert!(keys.trim().is_empty(), "{prefix}: {keys}");
    }
}

/// What a user gets wrong, said in words, with nothing made: a bridge of the cluster, a
/// macvlan network of the cluster without its parent or subnet, a parent this server lacks,
/// an unknown scope.
#[test]
fn a_macvlan_network_of_the_cluster_refuses_what_it_cannot_be() {
    let lab = Lab::new(1);
    lab.join_all(5, 300);
    let m = lab.m(1);
    for (args, said) in [
        (
            vec!["network", "create", "--scope", "swarm", "br"],
            "only overlay and macvlan networks can be of the cluster",
        ),
        (
            vec![
                "network", "create", "-d", "macvlan", "--scope", "swarm", "--subnet", SUBNET,
                "lan2",
            ],
            "needs -o parent=LINK",
        ),
        (
            vec![
                "network",
                "create",
                "-d",
                "macvlan",
                "--scope",
                "global",
                "-o",
                "parent=eth0",
                "lan2",
            ],
            "needs its LAN's --subnet",
        ),
        (
            vec![
                "network",
                "create",
                "-d",
                "macvlan",
                "--scope",
                "swarm",
                "-o",
                "parent=eth9",
                "--subnet",
                SUBNET,
                "lan2",
            ],
            "-o parent interface was not found on the host: eth9",
        ),
        (
            vec![
                "network",
                "create",
                "-d",
                "macvlan",
                "--scope",
                "everywhere",
                "-o",
                "parent=eth0",
                "lan2",
            ],
            "invalid scope \"everywhere\"",
        ),
    ] {
        let (code, _, err) = m.netctl(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(said), "{args:?}: {err}");
    }
    assert_eq!(m.netctl_ok(&["network", "ls", "-q"]).lines().count(), 3);
    let keys = lab.keys(1, "/netctl/v1/networks/");
    assert!(keys.trim().is_empty(), "{keys}");
}

/// A server dies (its agent, etcd member and namespaces killed) holding every address of a
/// small `--ip-range`: another server's next container gets no address until the dead one's
/// tenure runs out, then one of its addresses; its names go from the others' resolvers.
#[test]
fn a_dead_servers_addresses_come_free_after_its_tenure() {
    let mut lab = Lab::new(3);
    lab.join_all(3, 8);
    let (code, _, err) = create_lan(
        lab.m(1),
        &["-o", "parent=eth0", "--ip-range", "10.231.0.0/30"],
    );
    assert_eq!(code, 0, "{err}");
    let v = lab.etcd_leader();
    let w = if v == 1 { 2 } else { 1 };
    let watcher = lab.m(w).container("w0");
    for m in [w, v] {
        eventually("lan is there", Duration::from_secs(3), || {
            match lab.m(m).netctl_ok(&["network", "ls"]).contains(" lan ") {
                true => Ok(()),
                false => Err(String::new()),
            }
        });
    }
    let mut held = Vec::new();
    let used_up = (0..6).find_map(|i| {
        let name = format!("v{i}");
        let ns = lab.m(v).container(&name);
        match lab.m(v).cni_add("lan", &name, &ns, &[]) {
            (0, Some(a), _) => {
                held.push(a);
                None
            }
            (_, _, out) => Some(out),
        }
    });
    assert!(
        used_up.is_some_and(|out| out.contains("no free address")) && held.len() == 3,
        "the /30 range holds three: {held:?}"
    );
    let (code, _, out) = lab.m(w).cni_add("lan", "w0", &watcher, &[]);
    assert_ne!(code, 0, "the range is used up here too: {out}");

    lab.machines[v - 1].kill();
    let killed = std::time::Instant::now();
    let mut got = String::new();
    eventually(
        "a container of the living server gets a dead one's address",
        Duration::from_secs(20),
        || match lab.m(w).cni_add("lan", "w0", &watcher, &[]) {
            (0, Some(a), _) => {
                got = a;
                Ok(())
            }
            (_, _, out) => Err(out),
        },
    );
    assert!(held.contains(&got), "{got} is one of {held:?}");
    assert!(
        killed.elapsed() >= Duration::from_secs(5),
        "not before the tenure ran out: {:?}",
        killed.elapsed()
    );
    assert!(resolves(lab.m(w), &watcher, "v0").is_empty());
}
