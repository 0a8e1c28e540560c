//! Runtimes that forget, repeat or get killed: DEL without the port mappings, no DEL at all
//! (only a later GC), ADDs and `network connect`s killed at any moment, a repeated ADD of a
//! live container, a DEL killed after retiring its link, a CNI client killed mid-write.
//! Whatever they do, nothing outlives its attachment, and no live attachment loses anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use netctl_cni::invoke::RuntimeConf;
use netctl_netns_tests::{attachment, bin_dir, binary, eventually, TestHost};
use serde_json::{json, Value};

fn bridge_list(name: &str, bridge: &str, subnet: &str, allocation: &str) -> Value {
    json!({"cniVersion": "1.1.0", "name": name, "plugins": [
        {"type": "netctl-bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": true,
         "ipMasq": true, "macspoofchk": true, "capabilities": {"portMappings": true},
         "ipam": {"type": "netctl-ipam", "subnet": subnet, "allocation": allocation}},
        {"type": "netctl-dns", "capabilities": {"aliases": true}}]})
}

fn with_port(mut rt: RuntimeConf, port: u16) -> RuntimeConf {
    rt.capability_args =
        json!({"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]})
            .as_object()
            .cloned()
            .unwrap();
    rt
}

/// The published ports and MAC guards the host has now, one line each.
fn published(host: &TestHost) -> String {
    let mut out = Vec::new();
    for what in ["map inet netctl portmap_tcp4", "set bridge netctl macs"] {
        let (ok, json) = host.try_sh(&format!("nft -j list {what}"));
        if !ok {
            continue;
        }
        let v: Value = serde_json::from_str(&json).unwrap();
        for obj in v["nftables"].as_array().unwrap() {
            for set in [&obj["map"], &obj["set"]] {
                for e in set["elem"].as_array().into_iter().flatten() {
                    out.push(e.to_string());
                }
            }
        }
    }
    out.join("\n")
}

fn ipam_owners(host: &TestHost, net: &str) -> usize {
    host.try_sh(&format!(
        "ls /var/lib/netctl/ipam/{net} 2>/dev/null | grep -c :"
    ))
    .1
    .trim()
    .parse()
    .unwrap_or(0)
}

/// A runtime that calls DEL without passing the port mappings again (podman does, when its
/// cache is gone): the port is withdrawn anyway, and so is the MAC guard.
#[test]
fn del_without_port_mappings_still_withdraws_published_ports() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "sequential"),
    );
    let ns = host.container("c1");
    host.cni()
        .add(&list, &with_port(attachment("c1", Some(&ns), "eth0"), 8080))
        .expect("ADD");
    assert!(
        published(&host).contains("8080"),
        "published: {}",
        published(&host)
    );
    host.cni()
        .del(&list, &attachment("c1", Some(&ns), "eth0"))
        .expect("DEL");
    // The guard of the deleted port goes a moment after DEL returns (see del_source_guard).
    eventually(
        "nothing stays published",
        Duration::from_secs(2),
        || match published(&host) {
            p if p.is_empty() => Ok(()),
            p => Err(p),
        },
    );
}

/// An ADD killed after writing the record of what it publishes but before moving it into
/// place leaves a temporary file: STATUS (and the watcher) heal nothing from it, and GC
/// sweeps it, so no MAC guard is ever put up that no record names.
#[test]
fn a_record_a_killed_add_left_half_written_is_neither_healed_nor_kept() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "sequential"),
    );
    let ns = host.container("first");
    let first = with_port(attachment("first", Some(&ns), "eth0"), 8081);
    host.cni().add(&list, &first).expect("ADD");
    let dir = "/run/netctl/bridge/web";
    let mut record: Value =
        serde_json::from_str(&host.sh(&format!("cat {dir}/first:eth0.json"))).unwrap();
    record["ports"] = json!([]);
    record["source_guard"]["port"] = json!("vhalf-eth0");
    record["source_guard"]["index"] = json!(424_242);
    let mut writer = Command::new("true").spawn().unwrap();
    let dead = writer.id();
    writer.wait().unwrap();
    let dns = "/run/netctl/dns/records/web";
    host.sh(&format!(
        "printf '%s' '{record}' > '{dir}/.half:eth0.json.tmp.{dead}.0'; \
         printf '{{}}' > '{dns}/.half:eth0.json.tmp.{dead}.0'"
    ));
    host.cni().status(&list).expect("STATUS");
    assert!(
        !published(&host).contains("424242"),
        "STATUS put up a guard from a record never moved into place:\n{}",
        published(&host)
    );
    let valid = [netctl_cni::types::Attachment {
        container_id: "first".into(),
        ifname: "eth0".into(),
    }];
    host.cni().gc(&list, &valid).expect("GC");
    assert_eq!(
        published(&host).lines().count(),
        2,
        "first keeps its port and guard"
    );
    assert_eq!(
        host.sh(&format!("ls -A {dir} {dns} | grep '^[.]' || true"))
            .trim(),
        "",
        "GC swept the dead writer's temporary files"
    );
    assert!(host.sh(&format!("ls {dir}")).contains("first:eth0.json"));
}

/// ADDs killed at every moment (SIGKILL after 0 to 59 ms), their results never seen by the
/// runtime, then one GC with no valid attachment: no port, MAC guard, address or DNS record
/// is left, and the host port can be published again.
#[test]
fn gc_withdraws_everything_killed_adds_left() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "sequential"),
    );
    let conf = json!({"cniVersion": "1.1.0", "name": "web", "type": "netctl-bridge", "bridge": "br-web",
        "isGateway": true, "ipMasq": true, "macspoofchk": true,
        "runtimeConfig": {"portMappings": [{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]},
        "ipam": {"type": "netctl-ipam", "subnet": "172.18.0.0/16"}})
    .to_string();
    // One that completes, so the network's rules exist and a kill can land after them.
    let ns = host.container("first");
    let mut rt = with_port(attachment("first", Some(&ns), "eth0"), 8081);
    host.cni().add(&list, &rt).expect("ADD");
    rt.netns = None;
    let mut leaked = 0;
    // Kills land from the start of an ADD to its end; a loaded machine stretches ADDs, so the
    // spread goes on (up to 600 rounds) until some kill landed after publishing.
    for i in 0..600u64 {
        if i >= 60 && leaked > 0 {
            break;
        }
        let id = format!("killed{i}");
        let ns = host.container(&id);
        let mut child = Command::new(binary("netctl-bridge"))
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", &id)
            .env("CNI_NETNS", &ns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", bin_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), conf.as_bytes()).unwrap();
        drop(child.stdin.take());
        // Not a wait for anything: where the kill lands.
        std::thread::sleep(Duration::from_millis(i % 60));
        let _ = child.kill();
        let _ = child.wait();
        host.remove_container(&ns);
        leaked += usize::from(published(&host).lines().count() > 2);
        // (the completed ADD holds one port and one guard)
    }
    assert!(
        leaked > 0,
        "some ADDs were killed after publishing (else this proves nothing)"
    );
    host.cni().gc(&list, &[]).expect("GC");
    eventually(
        "GC withdrew every port and guard",
        Duration::from_secs(2),
        || match published(&host) {
            p if p.is_empty() => Ok(()),
            p => Err(p),
        },
    );
    assert_eq!(ipam_owners(&host, "web"), 0, "GC released every address");
    let (_, records) = host.try_sh(
        "ls -A /run/netctl/dns/records/web 2>/dev/null; ls -A /run/netctl/bridge/web 2>/dev/null",
    );
    assert_eq!(records.trim(), "", "no record is left");
    let ns = host.container("again");
    host.cni()
        .add(
            &list,
            &with_port(attachment("again", Some(&ns), "eth0"), 8081),
        )
        .expect("the host port can be published again");
}

/// A runtime repeats ADD for a container that is attached and running: the repeat fails,
/// and the live container keeps its address (the next container gets another one, even with
/// lowest-free allocation), its port and its interface.
#[test]
fn a_repeated_add_never_takes_the_live_containers_address() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "lowest"),
    );
    let ns = host.container("live");
    let rt = with_port(attachment("live", Some(&ns), "eth0"), 8082);
    let first = host.cni().add(&list, &rt).expect("ADD");
    let again = host
        .cni()
        .add(&list, &rt)
        .expect_err("a repeated ADD fails");
    assert_eq!(again.code.as_u32(), 110, "{again}");
    host.cni()
        .check(&list, &attachment("live", Some(&ns), "eth0"))
        .expect("the live container is intact");
    assert!(published(&host).contains("8082"), "its port stays");
    let other = host.container("other");
    let second = host
        .cni()
        .add(&list, &attachment("other", Some(&other), "eth0"))
        .expect("ADD");
    assert_ne!(
        second.ips[0].address, first.ips[0].address,
        "no address is handed out twice"
    );
}

/// Waits (up to 10 s) until no plugin runs for container `id`: a killed `netctl` leaves the
/// plugins it started running, and they finish what they began. (A DNS server an older
/// netctl-dns started may carry the variable too; it is no plugin.)
fn wait_for_plugins_of(id: &str) {
    let needle = format!("CNI_CONTAINERID={id}");
    for _ in 0..200 {
        let running = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            comm.trim() != "netctl-dnsd"
                && std::fs::read(e.path().join("environ"))
                    .map(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                    .unwrap_or(false)
        });
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("plugins for {id} still run after 10 s");
}

/// How many of `dir`'s entries name container `id`.
fn entries_of(dir: &str, id: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(id))
                .count()
        })
        .unwrap_or(0)
}

/// `netctl network connect` killed at every moment (SIGKILL after 0 to 15 ms), each followed
/// by `netctl ps` once the plugins it left running are done: the host holds an address and
/// a DNS record of the container on the network exactly when `inspect` shows it attached
/// there; and `rm -f` of the container leaves nothing behind.
#[test]
fn killed_network_connects_are_repaired() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "one"]);
    host.netctl_ok(&["network", "create", "two"]);
    // Each network's bridge is made by its first container and stays until `network rm`.
    host.netctl_ok(&[
        "run", "--rm", "--net", "one", "--net", "two", "busybox", "true",
    ]);
    let before = host.host_listing();
    let id = host
        .netctl_ok(&[
            "run", "-d", "--name", "ctr", "--net", "one", "busybox", "sleep", "1000",
        ])
        .trim()
        .to_string();
    for i in 0..25u64 {
        let mut child = Command::new(binary("netctl"))
            .args(["network", "connect", "two", "ctr"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Not a wait for anything: where the kill lands.
        std::thread::sleep(Duration::from_micros(600 * i));
        let _ = child.kill();
        let _ = child.wait();
        wait_for_plugins_of(&id);
        host.netctl_ok(&["ps"]);
        let v: Value = serde_json::from_str(&host.netctl_ok(&["inspect", "ctr"])).unwrap();
        let attached = v[0]["NetworkSettings"]["Networks"]["two"]["IPAddress"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty());
        let owners = entries_of("/var/lib/netctl/ipam/two", &format!("owner:{id}"));
        let records = entries_of("/run/netctl/dns/records/two", &id);
        assert_eq!(
            (owners, records),
            (usize::from(attached), usize::from(attached)),
            "kill after {} µs: an address and a record on two exactly when ctr is attached there",
            600 * i
        );
        let _ = host.netctl(&["network", "disconnect", "-f", "two", "ctr"]);
    }
    host.netctl_ok(&["rm", "-f", "ctr"]);
    assert_eq!(
        host.host_listing(),
        before,
        "no address, link, rule, record or namespace of the container is left"
    );
    host.netctl_ok(&["network", "rm", "one", "two"]);
}

/// A DEL killed after it retired the container's link but before its reaper ran leaves the
/// link behind; the runtime's repeated DEL removes it.
#[test]
fn a_repeated_del_removes_the_link_a_killed_del_retired() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "sequential"),
    );
    let ns = host.container("c1");
    host.cni()
        .add(&list, &attachment("c1", Some(&ns), "eth0"))
        .expect("ADD");
    host.cni()
        .del(&list, &attachment("c1", Some(&ns), "eth0"))
        .expect("DEL");
    host.wait_for_reapers();
    // What the killed DEL left: a retired veth, renamed and down, in the namespace.
    host.sh_in(
        &ns,
        "ip link add rm.0123456789ab type veth peer name rm.0123456789ac",
    );
    host.cni()
        .del(&list, &attachment("c1", Some(&ns), "eth0"))
        .expect("DEL again");
    host.wait_for_reapers();
    let links = host.sh_in(&ns, "ip -o link");
    assert!(
        !links.contains("rm."),
        "the retired links are gone: {links}"
    );
}

/// A CNI client killed between writing a cached result and renaming it into place leaves a
/// temporary file; the next `netctl cni gc` removes it (and leaves the live result alone).
#[test]
fn gc_sweeps_temporary_files_of_killed_cache_writers() {
    let mut host = TestHost::new();
    let (path, _) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "sequential"),
    );
    let ns = host.container("c1");
    let cache = host.dir().join("cache");
    let (list, cache_s, ns_s) = (
        path.display().to_string(),
        cache.display().to_string(),
        ns.display().to_string(),
    );
    host.netctl_ok(&[
        "cni",
        "add",
        &list,
        "--cache-dir",
        &cache_s,
        "--id",
        "c1",
        "--netns",
        &ns_s,
    ]);
    let dead = cache.join("results/.web-c2-eth0.tmp.99999999");
    std::fs::write(&dead, "{}").unwrap();
    host.netctl_ok(&[
        "cni",
        "gc",
        &list,
        "--cache-dir",
        &cache_s,
        "--keep",
        "c1:eth0",
    ]);
    assert!(!Path::new(&dead).exists(), "the dead writer's file is gone");
    assert!(
        cache.join("results/web-c1-eth0").exists(),
        "the live result stays"
    );
}

/// A runtime removes a container's namespace without calling DEL: the DNS server lets go
/// of its sockets there within seconds, so the namespace (and its interfaces) really goes;
/// held, it would keep the veth pair on the bridge forever.
#[test]
fn a_namespace_removed_without_del_is_let_go() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist(
        "web",
        &bridge_list("web", "br-web", "172.18.0.0/16", "sequential"),
    );
    let ns = host.container("gone");
    let r = host
        .cni()
        .add(&list, &attachment("gone", Some(&ns), "eth0"))
        .expect("ADD");
    let veth = r.interfaces[1].name.clone();
    assert!(host.try_sh(&format!("ip link show {veth}")).0);
    host.remove_container(&ns);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while host.try_sh(&format!("ip link show {veth}")).0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the namespace of {veth} is still alive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
