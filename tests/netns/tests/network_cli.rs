//! `netctl network ...` as a user types it: Docker's flags, output and errors, on a store of
//! conflists that other CNI clients can use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::{attachment, eventually, TestHost};
use serde_json::{json, Value};
use std::time::Duration;

/// `network create OPTIONS bad` fails and says `says`.
fn create_refused(host: &TestHost, options: &[&str], says: &str) {
    let mut cmd = vec!["network", "create"];
    cmd.extend(options);
    cmd.push("bad");
    let (code, _, err) = host.netctl(&cmd);
    assert_ne!(code, 0, "{cmd:?}");
    assert!(err.contains(says), "{cmd:?}: {err}");
}

fn inspect(host: &TestHost, net: &str) -> Value {
    let v: Value = serde_json::from_str(&host.netctl_ok(&["network", "inspect", net])).unwrap();
    v[0].clone()
}

/// `netctl network ls` shows the predefined networks; two creates without --subnet get
/// 172.18.0.0/16 and 172.19.0.0/16; create prints the 64-hex ID; names and ID prefixes work.
#[test]
fn create_picks_the_next_free_subnet_and_ls_lists_like_docker() {
    let host = TestHost::new();
    let ls = host.netctl_ok(&["network", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("NETWORK ID     NAME"), "{ls}");
    assert!(
        lines[1].contains("bridge    bridge    local")
            && lines[2].contains("host")
            && lines[3].contains("null"),
        "{ls}"
    );
    let id1 = host
        .netctl_ok(&["network", "create", "n1"])
        .trim()
        .to_string();
    host.netctl_ok(&["network", "create", "n2"]);
    assert_eq!(id1.len(), 64);
    assert_eq!(
        inspect(&host, "n1")["IPAM"]["Config"][0]["Subnet"],
        "172.18.0.0/16"
    );
    assert_eq!(
        inspect(&host, "n1")["IPAM"]["Config"][0]["Gateway"],
        "172.18.0.1"
    );
    assert_eq!(
        inspect(&host, "n2")["IPAM"]["Config"][0]["Subnet"],
        "172.19.0.0/16"
    );
    assert_eq!(
        inspect(&host, &id1[..5])["Name"],
        "n1",
        "an ID prefix works"
    );
    let quiet = host.netctl_ok(&["network", "ls", "-q"]);
    assert_eq!(quiet.lines().count(), 5);
    assert!(quiet.lines().any(|l| l == &id1[..12]));
    let only = host.netctl_ok(&["network", "ls", "--filter", "name=n2", "--format", "json"]);
    let row: Value = serde_json::from_str(only.trim()).unwrap();
    assert_eq!(
        (row["Name"].as_str(), row["Driver"].as_str()),
        (Some("n2"), Some("bridge"))
    );
    assert_eq!(
        host.netctl_ok(&["network", "ls", "--filter", "driver=null", "-q"])
            .lines()
            .count(),
        1
    );
}

/// `--subnet 172.72.0.0/16 --ip-range 172.72.0.0/24 --gateway 172.72.0.1`: containers get
/// .2, .3, .4, inspect shows them; rm refuses while they are attached and removes the bridge
/// and its rules once they are gone.
#[test]
fn ip_range_network_hands_out_addresses_and_rm_waits_for_containers() {
    let mut host = TestHost::new();
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "172.72.0.0/16",
        "--ip-range",
        "172.72.0.0/24",
        "--gateway",
        "172.72.0.1",
        "-o",
        "com.docker.network.bridge.name=br-web",
        "web",
    ]);
    let mut got = Vec::new();
    for c in ["c1", "c2", "c3"] {
        let ns = host.container(c);
        let out = host.netctl_ok(&[
            "cni",
            "add",
            "web",
            "--id",
            c,
            "--netns",
            ns.to_str().unwrap(),
            "--name",
            c,
        ]);
        let r: Value = serde_json::from_str(&out).unwrap();
        got.push(r["ips"][0]["address"].as_str().unwrap().to_string());
    }
    assert_eq!(got, ["172.72.0.2/16", "172.72.0.3/16", "172.72.0.4/16"]);
    let info = inspect(&host, "web");
    assert_eq!(info["IPAM"]["Config"][0]["IPRange"], "172.72.0.0/24");
    assert_eq!(info["Containers"]["c2"]["IPv4Address"], "172.72.0.3/16");
    assert_eq!(info["Containers"]["c2"]["Name"], "c2");
    assert_eq!(info["Containers"]["c2"]["MacAddress"], "02:42:ac:48:00:03");
    let (code, _, err) = host.netctl(&["network", "rm", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("has active endpoints"), "{err}");
    for c in ["c1", "c2", "c3"] {
        let ns = host.dir().join("netns").join(c);
        host.netctl_ok(&[
            "cni",
            "del",
            "web",
            "--id",
            c,
            "--netns",
            ns.to_str().unwrap(),
        ]);
    }
    host.wait_for_reapers();
    assert_eq!(host.netctl_ok(&["network", "rm", "web"]).trim(), "web");
    assert!(
        !host.sh("ip -o link").contains("br-web"),
        "the bridge is gone"
    );
    assert!(
        !host.sh("nft list ruleset").contains("br-web"),
        "its rules are gone"
    );
    assert!(host.netctl(&["network", "inspect", "web"]).0 != 0);
}

/// Every bad `network create` is exit 1 with a message naming what is wrong, and writes nothing.
#[test]
fn bad_network_create_says_what_is_wrong_and_writes_nothing() {
    let host = TestHost::new();
    host.netctl_ok(&["network", "create", "--subnet", "10.20.0.0/16", "taken"]);
    let before = host.netctl_ok(&["network", "ls"]);
    for (args, want) in [
        (vec!["--subnet", "10.30.0.0/33", "x"], "invalid subnet"),
        (vec!["--subnet", "nonsense", "x"], "invalid subnet"),
        (vec!["--ip-range", "10.30.0.0/24", "x"], "need a --subnet"),
        (vec!["--gateway", "10.30.0.1", "x"], "need a --subnet"),
        (
            vec![
                "--subnet",
                "10.30.0.0/16",
                "--ip-range",
                "10.31.0.0/24",
                "x",
            ],
            "not inside any --subnet",
        ),
        (
            vec!["--subnet", "10.30.0.0/16", "--gateway", "10.31.0.1", "x"],
            "not inside any --subnet",
        ),
        (
            vec!["--subnet", "10.30.0.0/16", "--gateway", "10.30.0.0", "x"],
            "network address",
        ),
        (
            vec![
                "--subnet",
                "10.30.0.0/16",
                "--gateway",
                "10.30.255.255",
                "x",
            ],
            "broadcast address",
        ),
        (
            vec!["--subnet", "10.20.5.0/24", "x"],
            "overlaps with network taken",
        ),
        (vec!["taken"], "already exists"),
        (
            vec!["-d", "macvlan", "-o", "macvlan_mode=sideways", "x"],
            "macvlan_mode",
        ),
    ] {
        let mut full = vec!["network", "create"];
        full.extend(args.iter().copied());
        let (code, _, err) = host.netctl(&full);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, err) = host.netctl(&["network", "create", "-d", "ipvlan", "x"]);
    assert_eq!(
        code, 125,
        "an unknown driver is a flag error (exit 125, as Docker's)"
    );
    assert!(err.contains("possible values: bridge, macvlan"), "{err}");
    assert_eq!(
        host.netctl_ok(&["network", "ls"]),
        before,
        "nothing was written"
    );
    let (code, _, err) = host.netctl(&["network", "rm", "bridge"]);
    assert_eq!(code, 1);
    assert!(err.contains("pre-defined network"), "{err}");
}

/// A conflist `network create` wrote runs unchanged through Debian's libcni; prune removes
/// only unused networks.
#[test]
fn created_networks_work_through_libcni_and_prune_removes_unused_ones() {
    let mut host = TestHost::new();
    host.netctl_ok(&["network", "create", "--subnet", "10.44.0.0/24", "used"]);
    host.netctl_ok(&["network", "create", "unused"]);
    let conflist = std::path::PathBuf::from("/var/lib/netctl/networks/used.conflist");
    let ns = host.container("lc");
    let rt = attachment("lc", Some(&ns), "eth0");
    let add = host.libcni("add", &conflist, &rt);
    assert!(add.status.success(), "{add:?}");
    let r: Value = serde_json::from_slice(&add.stdout).unwrap();
    assert_eq!(r["ips"][0]["address"], "10.44.0.2/24");
    assert!(host.libcni("check", &conflist, &rt).status.success());
    let ns2 = host.container("mine");
    host.netctl_ok(&[
        "cni",
        "add",
        "used",
        "--id",
        "mine",
        "--netns",
        ns2.to_str().unwrap(),
    ]);
    let pruned = host.netctl_ok(&["network", "prune", "-f"]);
    assert_eq!(pruned.trim(), "Deleted Networks:\nunused");
    assert!(host.netctl_ok(&["network", "ls"]).contains("used"));
    assert!(host.libcni("del", &conflist, &rt).status.success());
}

/// `-d macvlan -o parent=lan0 -o macvlan_mode=bridge`, Docker's spelling, becomes the
/// macvlan plugin's `master` and `mode`.
#[test]
fn macvlan_options_are_translated() {
    let mut host = TestHost::new();
    let peer = host.container("peer");
    host.sh(&format!(
        "ip link add lan0 type veth peer name eth0 netns {}; ip link set lan0 up",
        peer.display()
    ));
    host.netctl_ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "192.168.50.0/24",
        "--ip-range",
        "192.168.50.64/26",
        "-o",
        "parent=lan0",
        "-o",
        "macvlan_mode=bridge",
        "lan",
    ]);
    let conf: Value = serde_json::from_str(
        &std::fs::read_to_string("/var/lib/netctl/networks/lan.conflist").unwrap(),
    )
    .unwrap();
    assert_eq!(conf["plugins"][0]["master"], "lan0");
    assert_eq!(conf["plugins"][0]["mode"], "bridge");
    assert_eq!(inspect(&host, "lan")["Driver"], "macvlan");
    let ns = host.container("m1");
    let out = host.netctl_ok(&[
        "cni",
        "add",
        "lan",
        "--id",
        "m1",
        "--netns",
        ns.to_str().unwrap(),
    ]);
    assert!(
        out.contains("192.168.50.65/24"),
        "the gateway takes the range's first address, as Docker's: {out}"
    );
}

/// After `nft flush ruleset`, `netctl network repair` puts every network's rules back.
#[test]
fn repair_reapplies_rules_after_a_flush() {
    let mut host = TestHost::new();
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "10.55.0.0/24",
        "-o",
        "bridge=br-rep",
        "rep",
    ]);
    let ns = host.container("c1");
    host.netctl_ok(&[
        "cni",
        "add",
        "rep",
        "--id",
        "c1",
        "--netns",
        ns.to_str().unwrap(),
    ]);
    assert!(host.sh("nft list ruleset").contains("br-rep"));
    host.sh("nft flush ruleset");
    let repaired = host.netctl_ok(&["network", "repair"]);
    assert!(repaired.lines().any(|l| l == "rep"), "{repaired}");
    assert!(
        host.sh("nft list ruleset").contains("br-rep"),
        "rules are back"
    );
    host.netctl_ok(&[
        "cni",
        "check",
        "rep",
        "--id",
        "c1",
        "--netns",
        ns.to_str().unwrap(),
    ]);
}

/// `network connect --alias` gives a running container a working eth1 that pings a
/// container on the second network and resolves its alias there; its own alias answers at
/// once; `network disconnect` takes the interface and the names away while it keeps running.
#[test]
fn connect_and_disconnect_a_running_container() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "front"]);
    host.netctl_ok(&["network", "create", "back"]);
    host.netctl_ok(&[
        "run", "-d", "--name", "app", "--net", "front", "busybox", "sleep", "1000",
    ]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--net",
        "back",
        "--net-alias",
        "database",
        "busybox",
        "sleep",
        "1000",
    ]);
    let (code, _, _) = host.netctl(&["exec", "app", "ping", "-c1", "-W1", "database"]);
    assert_ne!(code, 0, "db is out of reach before connect");

    host.netctl_ok(&["network", "connect", "--alias", "api", "back", "app"]);
    let links = host.netctl_ok(&["exec", "app", "ip", "-o", "-4", "addr"]);
    assert!(
        links.contains("eth1") && links.contains("172.19."),
        "{links}"
    );
    let ping = host.netctl_ok(&["exec", "app", "ping", "-c1", "-W2", "database"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let back = host.netctl_ok(&["exec", "db", "nslookup", "api"]);
    assert!(
        back.contains("172.19."),
        "the new alias answers at once: {back}"
    );
    let info: Value = serde_json::from_str(&host.netctl_ok(&["inspect", "app"])).unwrap();
    assert!(info[0]["NetworkSettings"]["Networks"]["back"]["IPAddress"]
        .as_str()
        .unwrap()
        .starts_with("172.19."));
    let (code, _, err) = host.netctl(&["network", "rm", "back"]);
    assert_eq!(code, 1, "{err}");

    host.netctl_ok(&["network", "disconnect", "back", "app"]);
    let links = host.netctl_ok(&["exec", "app", "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
    let (code, _, _) = host.netctl(&["exec", "db", "nslookup", "api"]);
    assert_ne!(code, 0, "the alias is gone");
    assert!(
        host.netctl_ok(&["ps"]).lines().any(|l| l.ends_with(" app")),
        "app keeps running"
    );
    let (code, _, err) = host.netctl(&["network", "disconnect", "back", "app"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not connected"), "{err}");

    // A user renames db: its network answers the new name at once, the old one no more,
    // and its alias stays.
    host.netctl_ok(&["network", "connect", "back", "app"]);
    host.netctl_ok(&["rename", "db", "store"]);
    let found = host.netctl_ok(&["exec", "app", "nslookup", "store"]);
    assert!(found.contains("172.19."), "the new name answers: {found}");
    let (code, _, _) = host.netctl(&["exec", "app", "nslookup", "db"]);
    assert_ne!(code, 0, "the old name is gone");
    let alias = host.netctl_ok(&["exec", "app", "nslookup", "database"]);
    assert!(alias.contains("172.19."), "the alias stays: {alias}");
    host.netctl_ok(&["rm", "-f", "app", "store"]);
}

/// A conflist written by hand in the reference plugins' shape, with netctl's types, dropped
/// into the store: `netctl run --net` attaches containers to it and `--ip` works there.
#[test]
fn a_hand_written_conflist_works_with_netctl_run() {
    let host = TestHost::new();
    host.busybox_image();
    std::fs::create_dir_all("/var/lib/netctl/networks").unwrap();
    std::fs::write(
        "/var/lib/netctl/networks/handmade.conflist",
        r#"{"cniVersion": "1.0.0", "name": "handmade", "plugins": [
            {"type": "netctl-bridge", "bridge": "cni-hand", "isGateway": true, "ipMasq": true,
             "capabilities": {"ips": true},
             "ipam": {"type": "netctl-ipam", "ranges": [[{"subnet": "10.77.0.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "netctl-dns"}]}"#,
    )
    .unwrap();
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "h1",
        "--net",
        "handmade",
        "--ip",
        "10.77.0.50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let (code, _, err) =
        host.netctl(&["run", "--net", "handmade", "-p", "80:80", "busybox", "true"]);
    assert_eq!(code, 125, "no plugin of it publishes ports: {err}");
    assert!(err.contains("portMappings"), "{err}");
    host.netctl_ok(&[
        "run", "-d", "--name", "h2", "--net", "handmade", "busybox", "sleep", "1000",
    ]);
    let ping = host.netctl_ok(&["exec", "h2", "ping", "-c1", "-W2", "h1"]);
    assert!(ping.contains("10.77.0.50"), "{ping}");
    assert!(host.sh("ip -o link").contains("cni-hand"));
    host.netctl_ok(&["rm", "-f", "h1", "h2"]);
}

/// Someone edits a conflist by hand and leaves netctl's ID short (or multi-byte): `network ls`,
/// `ls -q` and `inspect` show it as it is instead of panicking on a 12-character cut.
#[test]
fn a_hand_edited_short_network_id_is_listed_as_it_is() {
    let host = TestHost::new();
    std::fs::create_dir_all("/var/lib/netctl/networks").unwrap();
    for (name, id) in [("shorty", "ab12"), ("accents", "ééé")] {
        std::fs::write(
            format!("/var/lib/netctl/networks/{name}.conflist"),
            json!({"cniVersion": "1.0.0", "name": name, "netctl": {"id": id, "driver": "bridge"},
                   "plugins": [{"type": "netctl-bridge", "bridge": format!("br-{name}"),
                   "ipam": {"type": "netctl-ipam", "subnet": "10.78.0.0/24"}}]})
            .to_string(),
        )
        .unwrap();
    }
    let quiet = host.netctl_ok(&["network", "ls", "-q"]);
    assert!(quiet.lines().any(|l| l == "ab12"), "{quiet}");
    assert!(quiet.lines().any(|l| l == "ééé"), "{quiet}");
    let table = host.netctl_ok(&["network", "ls"]);
    assert!(
        table.contains("ab12") && table.contains("shorty"),
        "{table}"
    );
    assert_eq!(inspect(&host, "shorty")["Id"], "ab12");
}

/// As with Docker, a bridge network's bridge and gateway address are there from `network
/// create` on (a user can `ip addr show br-ID` and point a host service at the gateway
/// before any container runs), and `network rm` takes them and their rules away again.
#[test]
fn a_bridge_network_has_its_bridge_and_gateway_from_create_on() {
    let host = TestHost::new();
    let listing = "ip -o link; ip -o addr; nft list ruleset";
    let before = host.sh(listing);
    let id = host.netctl_ok(&["network", "create", "--subnet", "10.55.0.0/24", "app"]);
    let bridge = format!("br-{}", &id.trim()[..12]);
    let addr = host.sh(&format!("ip -o addr show {bridge}"));
    assert!(addr.contains("inet 10.55.0.1/24"), "{addr}");
    host.busybox_image();
    let out = host.netctl_ok(&[
        "run", "--rm", "--net", "app", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]);
    assert!(out.contains("10.55.0.2/24"), "{out}");
    host.netctl_ok(&["network", "rm", "app"]);
    host.netctl_ok(&["rmi", "busybox"]);
    assert_eq!(host.sh(listing), before, "nothing of the network is left");
}

/// `network inspect` shows how each subnet's addresses are used, as Docker 29 does
/// (`Status.IPAM.Subnets`): the network, broadcast and gateway addresses and each container's
/// are in use; what is left of the `--ip-range` is available; removing a container gives
/// its address back.
#[test]
fn inspect_shows_each_subnets_address_usage() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "172.16.0.0/16", "big"]);
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "--ip-range",
        "10.77.0.128/25",
        "app",
    ]);
    let usage = |net: &str| inspect(&host, net)["Status"]["IPAM"]["Subnets"].clone();
    assert_eq!(
        usage("big"),
        json!({"172.16.0.0/16": {"IPsInUse": 3, "DynamicIPsAvailable": 65533}})
    );
    let before = usage("app")["10.77.0.0/24"].clone();
    for name in ["one", "two"] {
        host.netctl_ok(&[
            "run", "-d", "--name", name, "--net", "app", "busybox", "sleep", "60",
        ]);
    }
    let during = usage("app")["10.77.0.0/24"].clone();
    assert_eq!(
        during["IPsInUse"],
        json!(before["IPsInUse"].as_u64().unwrap() + 2)
    );
    assert_eq!(
        during["DynamicIPsAvailable"],
        json!(before["DynamicIPsAvailable"].as_u64().unwrap() - 2)
    );
    host.netctl_ok(&["rm", "-f", "one"]);
    assert_eq!(
        usage("app")["10.77.0.0/24"]["IPsInUse"],
        json!(before["IPsInUse"].as_u64().unwrap() + 1)
    );
    host.netctl_ok(&["rm", "-f", "two"]);
}

/// `--gw-priority` (Docker 28): the attached network with the highest priority carries the
/// default route, whatever the names; a later `network connect --gw-priority` with a higher
/// one takes it over at once, and inspect shows each network's priority.
#[test]
fn the_highest_gw_priority_carries_the_default_route() {
    let host = TestHost::new();
    host.busybox_image();
    for (name, subnet) in [
        ("aaa", "10.81.0.0/24"),
        ("zzz", "10.82.0.0/24"),
        ("mid", "10.83.0.0/24"),
    ] {
        host.netctl_ok(&["network", "create", "--subnet", subnet, name]);
    }
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "multi",
        "--network",
        "name=zzz,gw-priority=5,alias=front",
        "--network",
        "aaa",
        "busybox",
        "sleep",
        "60",
    ]);
    let route = || host.netctl_ok(&["exec", "multi", "ip", "route", "show", "default"]);
    assert!(route().starts_with("default via 10.82.0.1 "), "{}", route());
    host.netctl_ok(&["network", "connect", "--gw-priority", "10", "mid", "multi"]);
    assert!(route().starts_with("default via 10.83.0.1 "), "{}", route());
    let v: Value = serde_json::from_str(&host.netctl_ok(&["inspect", "multi"])).unwrap();
    let nets = &v[0]["NetworkSettings"]["Networks"];
    assert_eq!(
        (
            nets["zzz"]["GwPriority"].clone(),
            nets["aaa"]["GwPriority"].clone(),
            nets["mid"]["GwPriority"].clone()
        ),
        (json!(5), json!(0), json!(10))
    );
    assert_eq!(nets["zzz"]["Aliases"][0], "front");
    host.netctl_ok(&["network", "disconnect", "mid", "multi"]);
    assert!(route().starts_with("default via 10.82.0.1 "), "{}", route());
    let (code, _, err) = host.netctl(&[
        "run",
        "--rm",
        "--network",
        "gw-priority=1",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("names no network"), "{err}");
    host.netctl_ok(&["rm", "-f", "multi"]);
}

/// podman's `--route DEST,GW[,METRIC]` and `-o no_default_route=true`: every container of
/// the network gets the static route, and no default route through it (so another network
/// carries that, though this one's name sorts first); a route through a gateway outside the
/// network is refused and nothing is made.
#[test]
fn static_routes_and_no_default_route_shape_the_containers_routes() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "10.91.0.0/24",
        "--route",
        "192.0.2.0/24,10.91.0.254",
        "-o",
        "no_default_route=true",
        "aside",
    ]);
    host.netctl_ok(&["network", "create", "--subnet", "10.92.0.0/24", "main"]);
    let routes = host.netctl_ok(&[
        "run",
        "--rm",
        "--network",
        "aside",
        "--network",
        "main",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(routes.contains("default via 10.92.0.1 "), "{routes}");
    assert!(routes.contains("192.0.2.0/24 via 10.91.0.254 "), "{routes}");
    let alone = host.netctl_ok(&[
        "run",
        "--rm",
        "--network",
        "aside",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(!alone.contains("default"), "{alone}");
    let before = host.netctl_ok(&["network", "ls", "-q"]);
    for (args, says) in [
        (
            vec![
                "--subnet",
                "10.93.0.0/24",
                "--route",
                "192.0.2.0/24,10.99.0.1",
            ],
            "not in any subnet",
        ),
        (
            vec!["--subnet", "10.93.0.0/24", "--route", "192.0.2.0/24"],
            "invalid route",
        ),
        (vec!["-o", "no_default_route=maybe"], "use true or false"),
    ] {
        create_refused(&host, &args, says);
    }
    assert_eq!(host.netctl_ok(&["network", "ls", "-q"]), before);
}

/// `network create --ipv4=false --ipv6` (Docker 28): an IPv6-only network with a ULA subnet
/// of its own; its containers get no IPv4 address, names answer AAAA, and a published port
/// answers a machine on the LAN over IPv6. `--ipv4=false` alone, or with an IPv4 subnet, is
/// refused.
#[test]
fn an_ipv6_only_network_gives_no_ipv4_and_publishes_over_ipv6() {
    let mut host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--ipv4=false", "--ipv6", "v6only"]);
    let v = inspect(&host, "v6only");
    assert_eq!(
        (v["EnableIPv4"].clone(), v["EnableIPv6"].clone()),
        (json!(false), json!(true))
    );
    let subnets: Vec<&str> = v["IPAM"]["Config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Subnet"].as_str().unwrap())
        .collect();
    assert!(
        subnets.len() == 1 && subnets[0].starts_with("fd"),
        "{subnets:?}"
    );
    host.netctl_ok(&[
        "run", "-d", "--name", "web", "--net", "v6only", "-p", "8080:80", "busybox", "httpd", "-f",
        "-p", "80", "-h", "/etc",
    ]);
    let seen = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "v6only",
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0 | grep -c inet; nslookup -type=AAAA web | grep -c 'Address: fd'",
    ]);
    assert_eq!(seen, "0\n1\n");
    let lan = host.container("lan");
    host.sh(&format!(
        "ip link add uplink type veth peer name eth0 netns {lan} && ip addr add fd99::1/64 dev uplink nodad && ip link set uplink up && sysctl -qw net.ipv6.conf.all.forwarding=1",
        lan = lan.display()
    ));
    host.sh_in(
        &lan,
        "ip link set lo up; ip addr add fd99::2/64 dev eth0 nodad; ip link set eth0 up; ip -6 route add default via fd99::1",
    );
    let page = host.sh_in(&lan, "curl -sS -m 5 'http://[fd99::1]:8080/passwd'");
    assert!(page.starts_with("root:"), "{page}");
    for (args, says) in [
        (vec!["--ipv4=false"], "IPv4 or IPv6 must be enabled"),
        (
            vec!["--ipv4=false", "--ipv6", "--subnet", "10.5.0.0/24"],
            "is IPv4",
        ),
    ] {
        create_refused(&host, &args, says);
    }
    host.netctl_ok(&["rm", "-f", "web"]);
}

/// Docker 28's gateway modes and trusted host interfaces, as a machine on the LAN (with a
/// route to the containers' subnets through the host) sees them, with each firewall
/// backend: a `nat` network answers it on no unpublished port, a `nat-unprotected` one on
/// every port, a network that trusts the LAN's host interface answers it too, and an
/// `isolated` one has no address on its bridge, gives its containers no default route and
/// answers nobody but its own containers, and a `routed` one answers on published ports at
/// the containers' addresses and masquerades nothing. Bad modes and names are refused.
#[test]
fn gateway_modes_and_trusted_interfaces_decide_who_reaches_containers() {
    let mut host = TestHost::new();
    host.busybox_image();
    let lan = host.outside("lan", "10.250.0.1/24", "10.250.0.2/24");
    host.sh_in(&lan, "ip route add 10.71.0.0/16 via 10.250.0.1");
    let mode = "com.docker.network.bridge.gateway_mode_ipv4";
    let trusted = "com.docker.network.bridge.trusted_host_interfaces=uplink";
    let cases: [(&str, &str, Option<String>, bool); 6] = [
        ("natnet", "auto", None, false),
        (
            "unprot",
            "auto",
            Some(format!("{mode}=nat-unprotected")),
            true,
        ),
        ("trust", "auto", Some(trusted.to_string()), true),
        (
            "unprotipt",
            "iptables",
            Some(format!("{mode}=nat-unprotected")),
            true,
        ),
        ("trustipt", "iptables", Some(trusted.to_string()), true),
        ("iso", "auto", Some(format!("{mode}=isolated")), false),
    ];
    for (i, (name, firewall, opt, _)) in cases.iter().enumerate() {
        let subnet = format!("10.71.{}.0/24", i + 1);
        let fw = format!("firewall={firewall}");
        let mut args = vec!["network", "create", "--subnet", &subnet, "-o", &fw];
        if let Some(o) = opt {
            args.extend(["-o", o.as_str()]);
        }
        args.push(name);
        host.netctl_ok(&args);
        host.netctl_ok(&[
            "run",
            "-d",
            "--name",
            &format!("web-{name}"),
            "--net",
            name,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
    }
    for (i, (name, _, _, reachable)) in cases.iter().enumerate() {
        let ip = format!("10.71.{}.2", i + 1);
        let (ok, out) = host.try_sh_in(&lan, &format!("curl -sS -m 3 http://{ip}/"));
        assert_eq!(ok, *reachable, "{name}: the LAN reaching {ip}: {out}");
    }
    let iso = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "iso",
        "busybox",
        "sh",
        "-c",
        "ip route | grep -c default; wget -qO- http://10.71.6.2/",
    ]);
    assert_eq!(iso, "0\nhello from busybox httpd\n");
    let (ok, _) = host.try_sh("curl -sS -m 2 http://10.71.6.2/");
    assert!(!ok, "the host reached a container of an isolated network");
    let bridges = host.sh("ip -4 -o addr show | grep -c ' inet 10.71.6.' || true");
    assert_eq!(
        bridges, "0\n",
        "an isolated network's bridge has an address"
    );
    // routed: the LAN reaches a published container port at the container's own address,
    // not an unpublished one; what containers send out is not masqueraded, so the LAN's
    // route back is what answers them.
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "10.71.9.0/24",
        "-o",
        &format!("{mode}=routed"),
        "routed",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "pub", "--net", "routed", "-p", "8094:80", "busybox", "httpd", "-f",
        "-p", "80", "-h", "/www",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "unpub", "--net", "routed", "busybox", "httpd", "-f", "-p", "80",
        "-h", "/www",
    ]);
    let (ok, out) = host.try_sh_in(&lan, "curl -sS -m 3 http://10.71.9.2/");
    assert!(ok && out.contains("hello"), "routed, published: {out}");
    let (ok, _) = host.try_sh_in(&lan, "curl -sS -m 3 http://10.71.9.3/");
    assert!(!ok, "routed: the LAN reached an unpublished port");
    let www = host.dir().join("lan-www");
    std::fs::create_dir_all(&www).unwrap();
    host.spawn_in(
        &lan,
        &format!(
            "exec busybox httpd -f -p 10.250.0.2:80 -h {}",
            www.display()
        ),
    );
    let reaches_lan = |net: &str| {
        let (code, out, _) = host.netctl(&[
            "run",
            "--rm",
            "--net",
            net,
            "busybox",
            "sh",
            "-c",
            "nc -w 2 10.250.0.2 80 </dev/null && echo reached",
        ]);
        code == 0 && out == "reached\n"
    };
    assert!(reaches_lan("routed") && reaches_lan("natnet"));
    host.sh_in(
        &lan,
        "ip route del 10.71.0.0/16 via 10.250.0.1; ip route del default",
    );
    assert!(reaches_lan("natnet"), "a nat network is masqueraded");
    assert!(!reaches_lan("routed"), "a routed network was masqueraded");
    host.netctl_ok(&["rm", "-f", "pub", "unpub"]);
    for (opt, says) in [
        (format!("{mode}=open"), "invalid gateway mode"),
        (
            "com.docker.network.bridge.trusted_host_interfaces=bad/name".to_string(),
            "trusted host interface",
        ),
    ] {
        create_refused(&host, &["-o", &opt], says);
    }
    for (name, ..) in cases {
        host.netctl_ok(&["rm", "-f", &format!("web-{name}")]);
    }
}

/// Docker 28's most common split: `gateway_mode_ipv4=nat` with `gateway_mode_ipv6=routed`
/// on a dual-stack network. A LAN machine with routes to both subnets reaches a published
/// port at the container's own IPv6 address but not at its IPv4 one (only through the
/// host's); what the container sends out leaves masqueraded over IPv4 and with its own
/// address over IPv6. `isolated` for one family alone is refused in words.
#[test]
fn each_address_family_follows_its_own_gateway_mode() {
    let mut host = TestHost::new();
    host.busybox_image();
    let lan = host.outside("lan", "10.250.0.1/24", "10.250.0.2/24");
    host.sh("ip addr add fd98::1/64 dev uplink nodad && sysctl -qw net.ipv6.conf.all.forwarding=1");
    host.sh_in(
        &lan,
        "ip addr add fd98::2/64 dev eth0 nodad; ip route add 10.74.0.0/24 via 10.250.0.1; ip -6 route add fd74::/64 via fd98::1",
    );
    let gw = "com.docker.network.bridge.gateway_mode_ipv";
    host.netctl_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.74.0.0/24",
        "--subnet",
        "fd74::/64",
        "-o",
        &format!("{gw}4=nat"),
        "-o",
        &format!("{gw}6=routed"),
        "split",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "web", "--net", "split", "-p", "8095:80", "busybox", "httpd", "-f",
        "-p", "80", "-h", "/www",
    ]);
    let (ok, out) = host.try_sh_in(&lan, "curl -sS -m 3 'http://[fd74::2]/'");
    assert!(ok && out.contains("hello"), "IPv6 routed, published: {out}");
    let (ok, _) = host.try_sh_in(&lan, "curl -sS -m 3 http://10.74.0.2/");
    assert!(!ok, "IPv4 nat: the LAN reached the container's own address");
    let (ok, out) = host.try_sh_in(&lan, "curl -sS -m 3 http://10.250.0.1:8095/");
    assert!(
        ok && out.contains("hello"),
        "IPv4 nat, through the host: {out}"
    );

    // Who the LAN sees calling: with its routes back to the subnets gone, only what was
    // masqueraded (IPv4, from the host's address) is answered; IPv6 came from the
    // container's own address.
    let www = host.dir().join("lan-www");
    std::fs::create_dir_all(&www).unwrap();
    host.spawn_in(
        &lan,
        &format!("exec busybox httpd -f -p 80 -h {}", www.display()),
    );
    let reaches = |addr: &str| {
        let (code, out, _) = host.netctl(&[
            "run",
            "--rm",
            "--net",
            "split",
            "busybox",
            "sh",
            "-c",
            &format!("nc -w 2 {addr} 80 </dev/null && echo reached"),
        ]);
        code == 0 && out == "reached\n"
    };
    eventually(
        "the LAN's server listens",
        Duration::from_secs(3),
        || match reaches("10.250.0.2") && reaches("fd98::2") {
            true => Ok(()),
            false => Err("not reached".into()),
        },
    );
    host.sh_in(&lan, "ip route del 10.74.0.0/24; ip -6 route del fd74::/64");
    assert!(reaches("10.250.0.2"), "IPv4 nat is masqueraded");
    assert!(!reaches("fd98::2"), "IPv6 routed was masqueraded");
    host.netctl_ok(&["rm", "-f", "web"]);
    create_refused(
        &host,
        &["--ipv6", "-o", &format!("{gw}6=isolated")],
        "set gateway_mode_ipv4 and gateway_mode_ipv6 both to isolated",
    );
}

/// podman's `-o isolate=strict`: a strict network's published port answers the LAN and
/// the host, but not containers of other networks (which reach an ordinary network's
/// published port through the host), and its own containers reach no other network's
/// published port either. With the iptables backend it is refused in words.
#[test]
fn a_strictly_isolated_network_is_not_joined_even_by_published_ports() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "10.72.1.0/24",
        "-o",
        "isolate=strict",
        "strict",
    ]);
    host.netctl_ok(&["network", "create", "--subnet", "10.72.2.0/24", "open"]);
    host.netctl_ok(&["network", "create", "--subnet", "10.72.3.0/24", "other"]);
    for (name, net, port) in [("s-web", "strict", "8091"), ("o-web", "open", "8092")] {
        host.netctl_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--net",
            net,
            "-p",
            &format!("{port}:80"),
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
    }
    // Each client asks the host's address on its own network, as a container reaches a
    // published port of the host.
    let ask = |net: &str, gw: &str, port: &str| -> bool {
        let (code, out, _) = host.netctl(&[
            "run",
            "--rm",
            "--net",
            net,
            "busybox",
            "sh",
            "-c",
            &format!("nc -w 2 {gw} {port} </dev/null >/dev/null && echo reached"),
        ]);
        code == 0 && out == "reached\n"
    };
    assert!(
        ask("other", "10.72.3.1", "8092"),
        "an ordinary network's published port"
    );
    assert!(
        !ask("other", "10.72.3.1", "8091"),
        "another network reached the strict network's port"
    );
    assert!(
        !ask("strict", "10.72.1.1", "8092"),
        "the strict network reached another network's port"
    );
    let (ok, out) = host.try_sh("curl -sS -m 3 http://127.0.0.1:8091/");
    assert!(ok && out.contains("hello"), "the host: {out}");
    for (opts, says) in [
        (
            vec!["-o", "isolate=strict", "-o", "firewall=iptables"],
            "needs the nftables firewall",
        ),
        (vec!["-o", "isolate=maybe"], "use true"),
        (
            vec![
                "-o",
                "com.docker.network.bridge.gateway_mode_ipv4=routed",
                "-o",
                "firewall=iptables",
            ],
            "routed needs the nftables firewall",
        ),
    ] {
        create_refused(&host, &opts, says);
    }
    host.netctl_ok(&["rm", "-f", "s-web", "o-web"]);
}
