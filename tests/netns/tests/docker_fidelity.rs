//! What a Docker user does and expects, replayed against netctl (docker-observed.md):
//! routes across networks, `--net container:`, published ports from everywhere, `none`,
//! macvlan parents, `--ip-range` gateways, port ranges, DNS names and resolv.conf, and
//! the CLI's many-container commands, templates and small rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::{eventually, TestHost};
use serde_json::Value;

fn inspect(host: &TestHost, what: &str) -> Value {
    let v: Value = serde_json::from_str(&host.netctl_ok(&["inspect", what])).unwrap();
    v[0].clone()
}

fn gateway_of(host: &TestHost, net: &str) -> String {
    let v: Value = serde_json::from_str(&host.netctl_ok(&["network", "inspect", net])).unwrap();
    v[0]["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The container's IPv4 default routes, as `ip route` prints them.
fn default_routes(host: &TestHost, ctr: &str) -> Vec<String> {
    host.netctl_ok(&["exec", ctr, "ip", "route"])
        .lines()
        .filter(|l| l.starts_with("default"))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

fn sleeper(host: &TestHost, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sleep", "1000"]);
    host.netctl_ok(&args);
}

/// `printf GET | nc`: busybox's nc (its static wget crashes on this machine).
fn http_cmd(addr: &str, port: u16) -> String {
    format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc -w 2 {addr} {port}")
}

/// An HTTP GET from inside a container, retried while the server starts.
fn get_from(host: &TestHost, ctr: &str, addr: &str, port: u16) -> String {
    let what = format!("{addr}:{port} from {ctr}");
    eventually(&what, Duration::from_secs(5), || {
        match host.netctl(&["exec", ctr, "sh", "-c", &http_cmd(addr, port)]) {
            (0, out, _) if out.contains("200 OK") => Ok(out),
            (_, out, err) => Err(format!("{out}{err}")),
        }
    })
}

/// A container on `bbb` gets `aaa` connected: the default route moves to `aaa` (it sorts
/// first); `ccc` connected keeps it there; `aaa` disconnected gives it back to `bbb`, so
/// the container is never left without one.
#[test]
fn one_default_route_on_the_network_that_sorts_first() {
    let host = TestHost::new();
    host.busybox_image();
    for n in ["aaa", "bbb", "ccc"] {
        host.netctl_ok(&["network", "create", n]);
    }
    let (ga, gb) = (gateway_of(&host, "aaa"), gateway_of(&host, "bbb"));
    sleeper(&host, "c1", &["--net", "bbb"]);
    assert_eq!(default_routes(&host, "c1"), [format!("default via {gb}")]);
    host.netctl_ok(&["network", "connect", "aaa", "c1"]);
    assert_eq!(default_routes(&host, "c1"), [format!("default via {ga}")]);
    host.netctl_ok(&["network", "connect", "ccc", "c1"]);
    assert_eq!(default_routes(&host, "c1"), [format!("default via {ga}")]);
    host.netctl_ok(&["network", "disconnect", "aaa", "c1"]);
    assert_eq!(
        default_routes(&host, "c1"),
        [format!("default via {gb}")],
        "the route comes back on the next network"
    );
    host.netctl_ok(&["rm", "-f", "c1"]);
}

/// `--net container:base` gets base's hostname, resolv.conf and /etc/hosts (so it resolves
/// base's network), and what would change them is refused in Docker's words.
#[test]
fn a_container_mode_sidecar_shares_the_targets_files() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "app"]);
    sleeper(&host, "base", &["--net", "app", "--hostname", "basehost"]);
    sleeper(&host, "other", &["--net", "app"]);
    let ip = inspect(&host, "base")["NetworkSettings"]["Networks"]["app"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let out = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "container:base",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/resolv.conf /etc/hosts; nslookup other >/dev/null && echo resolved",
    ]);
    assert!(out.starts_with("basehost\n"), "{out}");
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains(&format!("{ip}\tbasehost")), "{out}");
    assert!(out.ends_with("resolved\n"), "{out}");
    for (flag, value, says) in [
        (
            "--hostname",
            "x",
            "conflicting options: hostname and the network mode",
        ),
        (
            "--dns",
            "10.0.0.53",
            "conflicting options: dns and the network mode",
        ),
        (
            "--mac-address",
            "02:42:00:00:00:09",
            "conflicting options: mac-address and the network mode",
        ),
        (
            "--add-host",
            "a:10.1.2.3",
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            "--expose",
            "80",
            "conflicting options: port exposing and the container type network mode",
        ),
        (
            "-p",
            "80:80",
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            "--network-alias",
            "y",
            "network-scoped aliases are only supported for user-defined networks",
        ),
    ] {
        let (code, _, err) = host.netctl(&[
            "run",
            "--rm",
            "--net",
            "container:base",
            flag,
            value,
            "busybox",
            "true",
        ]);
        assert_eq!(code, 125, "{flag}: {err}");
        assert!(err.contains(says), "{flag}: {err}");
    }
    host.netctl_ok(&["rm", "-f", "base", "other"]);
}

/// A port published by a container on `front` answers a container on `back` (through
/// `back`'s gateway, a host address) and a container on `front` itself through `front`'s
/// gateway (hairpin), as in Docker.
#[test]
fn published_ports_answer_other_networks_and_hairpin() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "front"]);
    host.netctl_ok(&["network", "create", "back"]);
    host.netctl_ok(&[
        "run", "-d", "--name", "web", "--net", "front", "-p", "8080:80", "busybox", "httpd", "-f",
        "-p", "80", "-h", "/www",
    ]);
    sleeper(&host, "neighbour", &["--net", "front"]);
    sleeper(&host, "stranger", &["--net", "back"]);
    let (gf, gb) = (gateway_of(&host, "front"), gateway_of(&host, "back"));
    let page = get_from(&host, "stranger", &gb, 8080);
    assert!(page.contains("hello from busybox httpd"), "{page}");
    let page = get_from(&host, "neighbour", &gf, 8080);
    assert!(page.contains("hello from busybox httpd"), "hairpin: {page}");
    let web_ip = inspect(&host, "web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, _) = host.netctl(&["exec", "stranger", "sh", "-c", &http_cmd(&web_ip, 80)]);
    assert_ne!(
        code, 0,
        "the container itself stays unreachable from another network"
    );
    host.netctl_ok(&["rm", "-f", "web", "neighbour", "stranger"]);
}

/// `network disconnect none C` keeps loopback up, and the container may then be connected
/// to a network.
#[test]
fn a_container_taken_off_none_keeps_loopback_and_can_be_connected() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "app"]);
    sleeper(&host, "lonely", &["--net", "none"]);
    host.netctl_ok(&["network", "disconnect", "none", "lonely"]);
    let lo = host.netctl_ok(&["exec", "lonely", "ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let (code, _, err) = host.netctl(&["network", "connect", "app", "lonely"]);
    assert_eq!(code, 0, "{err}");
    let addr = host.netctl_ok(&["exec", "lonely", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("inet "), "{addr}");
    host.netctl_ok(&["rm", "-f", "lonely"]);
}

/// macvlan parents are checked at `network create`, as Docker does: missing, empty, a
/// VLAN sub-interface netctl would have to make, one another macvlan network uses.
#[test]
fn macvlan_parents_are_checked_when_the_network_is_created() {
    let host = TestHost::new();
    host.sh("ip link add lan0 type veth peer name lan1");
    let create = |name: &str, parent: &str, subnet: &str| {
        host.netctl(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            subnet,
            "-o",
            &format!("parent={parent}"),
            name,
        ])
    };
    let (code, _, err) = create("m1", "eth9", "192.168.60.0/24");
    assert_ne!(code, 0);
    assert!(
        err.contains("-o parent interface was not found on the host: eth9"),
        "{err}"
    );
    let (code, _, err) = create("m1", "", "192.168.60.0/24");
    assert!(code != 0 && err.contains("parent is empty"), "{err}");
    let (code, _, err) = create("m1", "lan0.50", "192.168.60.0/24");
    assert!(code != 0 && err.contains("802.1q"), "{err}");
    let (code, _, err) = create("m1", "lan0", "192.168.60.0/24");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = create("m2", "lan0", "192.168.61.0/24");
    assert!(
        code != 0 && err.contains("network m1 is already using parent interface lan0"),
        "{err}"
    );
    let ls = host.netctl_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("m2"), "nothing written: {ls}");
}

/// `--ip-range` without `--gateway`: the gateway is the range's first address and the
/// first container gets the next; a removed container's address is the next one handed
/// out (lowest free), as in Docker.
#[test]
fn ip_range_networks_place_the_gateway_and_reuse_addresses_like_docker() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "network",
        "create",
        "--subnet",
        "172.90.0.0/16",
        "--ip-range",
        "172.90.0.128/25",
        "ranged",
    ]);
    assert_eq!(gateway_of(&host, "ranged"), "172.90.0.128");
    let ip = |c: &str| {
        inspect(&host, c)["NetworkSettings"]["Networks"]["ranged"]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    sleeper(&host, "r1", &["--net", "ranged"]);
    sleeper(&host, "r2", &["--net", "ranged"]);
    assert_eq!(
        (ip("r1"), ip("r2")),
        ("172.90.0.129".into(), "172.90.0.130".into())
    );
    host.netctl_ok(&["rm", "-f", "r1"]);
    sleeper(&host, "r3", &["--net", "ranged"]);
    assert_eq!(ip("r3"), "172.90.0.129", "the lowest free address again");
    host.netctl_ok(&["rm", "-f", "r2", "r3"]);
}

/// `-p 9000-9001:7000-7001` publishes both, `--expose 7100 -P` publishes 7100 on a free
/// port, `[::]:8083:80` answers a client on an IPv6 LAN, an IPv6 host address for a
/// container without IPv6 (or ::1, which the kernel cannot forward) is refused, and an
/// address the host lacks is refused in Docker's words.
#[test]
fn port_ranges_expose_and_ipv6_host_addresses() {
    let mut host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "ranged",
        "-p",
        "9000-9001:7000-7001",
        "--expose",
        "7100",
        "-P",
        "busybox",
        "sleep",
        "1000",
    ]);
    let ports = host.netctl_ok(&["port", "ranged"]);
    assert!(ports.contains("7000/tcp -> 0.0.0.0:9000"), "{ports}");
    assert!(ports.contains("7001/tcp -> 0.0.0.0:9001"), "{ports}");
    assert!(ports.contains("7100/tcp -> 0.0.0.0:"), "{ports}");
    assert_eq!(
        inspect(&host, "ranged")["Config"]["ExposedPorts"],
        serde_json::json!({"7000/tcp": {}, "7001/tcp": {}, "7100/tcp": {}})
    );
    host.netctl_ok(&["network", "create", "--ipv6", "six"]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "web6",
        "--net",
        "six",
        "-p",
        "[::]:8083:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let lan = host.outside("lan6", "fd99::1/64 nodad", "fd99::2/64 nodad");
    let page = eventually(
        "httpd over [fd99::1]:8083",
        Duration::from_secs(5),
        || match host.try_sh_in(
            &lan,
            &http_cmd("fd99::1", 8083).replace("| nc", "| busybox nc"),
        ) {
            (true, out) if out.contains("200 OK") => Ok(out),
            (_, out) => Err(out),
        },
    );
    assert!(page.contains("hello from busybox httpd"), "{page}");
    for (spec, says) in [
        ("[fd99::1]:8084:80", "no IPv6 address"),
        ("[::1]:8084:80", "hostIP ::1 cannot be forwarded"),
    ] {
        let (code, _, err) = host.netctl(&["run", "-d", "-p", spec, "busybox", "true"]);
        assert_eq!(code, 125, "{spec}: {err}");
        assert!(err.contains(says), "{spec}: {err}");
    }
    let (code, _, err) = host.netctl(&["run", "-d", "-p", "1.2.3.4:8085:80", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("listen tcp4 1.2.3.4:8085: bind: cannot assign requested address"),
        "{err}"
    );
    // A UDP port has its IPv6 twin too, as Docker's userland proxy gives it: an IPv6
    // client's question reaches the container's DNS server (the host's dnsmasq, run in the
    // container from a read-only view of the host's root) and the answer comes back.
    let server = "dnsmasq --no-daemon --no-resolv --no-hosts --pid-file --user=root \
                  --port=5353 --address=/pong.test/192.0.2.7";
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "echo6",
        "-p",
        "5353:5353/udp",
        "-v",
        "/:/host:ro",
        "busybox",
        "chroot",
        "/host",
        "sh",
        "-c",
        server,
    ]);
    let ports = host.netctl_ok(&["port", "echo6"]);
    assert!(ports.contains("5353/udp -> :::5353"), "{ports}");
    let answer = eventually(
        "an answer over [::1]:5353/udp",
        Duration::from_secs(10),
        || match host.try_sh("dig @::1 -p 5353 pong.test +short +tries=1 +time=1") {
            (true, out) if out.contains("192.0.2.7") => Ok(out),
            (_, out) => Err(out),
        },
    );
    assert_eq!(answer.trim(), "192.0.2.7");
    host.netctl_ok(&["rm", "-f", "ranged", "web6", "echo6"]);
    let left = host.netctl_ok(&["ps", "-aq"]);
    assert_eq!(left, "", "refused runs leave no container: {left}");
}

/// `--hostname` answers on the container's networks; every PTR answer resolves forward to
/// its address, even for an attachment without a name; answers carry TTL 600 and no
/// `aa` flag, as Docker's.
#[test]
fn dns_names_hostnames_and_ptr_answers_like_dockers() {
    let mut host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "app"]);
    sleeper(&host, "named", &["--net", "app", "--hostname", "myhost"]);
    sleeper(&host, "asker", &["--net", "app"]);
    let ip = inspect(&host, "named")["NetworkSettings"]["Networks"]["app"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let found = host.netctl_ok(&["exec", "asker", "nslookup", "myhost"]);
    assert!(found.contains(&ip), "{found}");
    let ns = host.container("unnamed");
    let added = host.netctl_ok(&[
        "cni",
        "add",
        "app",
        "--id",
        &"ab".repeat(32),
        "--netns",
        ns.to_str().unwrap(),
    ]);
    let unnamed_ip = serde_json::from_str::<Value>(&added).unwrap()["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let gw = gateway_of(&host, "app");
    let ptr = host.sh(&format!("dig +short @{gw} -x {unnamed_ip}"));
    assert_eq!(ptr.trim(), format!("{}.app.", "ab".repeat(6)), "{ptr}");
    let forward = host.sh(&format!("dig +short @{gw} {}", ptr.trim()));
    assert_eq!(forward.trim(), unnamed_ip, "the PTR name resolves back");
    let answer = host.sh(&format!("dig +noall +comments +answer @{gw} named"));
    assert!(answer.contains("flags: qr rd ra;"), "no aa: {answer}");
    assert!(
        answer
            .lines()
            .any(|l| l.starts_with("named.") && l.contains("\t600\t")),
        "TTL 600: {answer}"
    );
    host.netctl_ok(&[
        "cni",
        "del",
        "app",
        "--id",
        &"ab".repeat(32),
        "--netns",
        ns.to_str().unwrap(),
    ]);
    host.netctl_ok(&["rm", "-f", "named", "asker"]);
}

/// resolv.conf on a user network keeps the host's `search` and `options` (the host's
/// `ndots` over the embedded server's `ndots:0`); `--dns-search` and `--dns-option`
/// replace them; the default bridge keeps the host's options too.
#[test]
fn resolv_conf_keeps_the_hosts_search_and_options() {
    let host = TestHost::new();
    host.busybox_image();
    host.resolv_conf("search corp.test\noptions ndots:3 timeout:1\nnameserver 10.254.0.53\n");
    host.netctl_ok(&["network", "create", "app"]);
    let user = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "app",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        user,
        "search corp.test\nnameserver 127.0.0.11\noptions ndots:3 timeout:1\n"
    );
    let own = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "app",
        "--dns-search",
        "a.test",
        "--dns-option",
        "ndots:1",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        own,
        "search a.test\nnameserver 127.0.0.11\noptions ndots:1\n"
    );
    let bridge = host.netctl_ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        bridge,
        "search corp.test\nnameserver 10.254.0.53\noptions ndots:3 timeout:1\n"
    );
}

/// `2026-12-01T10:20:30.123456789Z` as milliseconds since its midnight.
fn millis_of_day(ts: &str) -> u64 {
    let time = ts.split_once('T').unwrap().1.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let secs = hms
        .split(':')
        .fold(0u64, |acc, p| acc * 60 + p.parse::<u64>().unwrap());
    let millis: u64 = format!("{frac:0<3}")[..3].parse().unwrap();
    secs * 1000 + millis
}

/// `stop -t 1` of six containers that ignore SIGTERM runs them at once (Docker's CLI does
/// the same): each is killed after its own second, and the six kills happen together
/// rather than a second apart.
#[test]
fn stop_of_many_containers_runs_them_at_once() {
    let host = TestHost::new();
    host.busybox_image();
    let names: Vec<String> = (0..6).map(|i| format!("stubborn{i}")).collect();
    for n in &names {
        host.netctl_ok(&[
            "run",
            "-d",
            "--name",
            n,
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 0.1; done",
        ]);
    }
    let mut args = vec!["stop", "-t", "1"];
    args.extend(names.iter().map(String::as_str));
    let out = host.netctl_ok(&args);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        names,
        "names in the order given"
    );
    let finished: Vec<u64> = names
        .iter()
        .map(|n| {
            let s = inspect(&host, n)["State"].clone();
            assert_eq!(s["ExitCode"], 137, "{s}");
            millis_of_day(s["FinishedAt"].as_str().unwrap())
        })
        .collect();
    let spread = finished.iter().max().unwrap() - finished.iter().min().unwrap();
    assert!(
        spread < 3000,
        "one after another the kills would be 5 s apart, not {spread} ms"
    );
    host.netctl_ok(&[
        "rm",
        "-f",
        "stubborn0",
        "stubborn1",
        "stubborn2",
        "stubborn3",
        "stubborn4",
        "stubborn5",
    ]);
}

/// `ps -n`/`-l`, `inspect -f` and `ps --format` with Go templates, `version`/`-v`,
/// `--log-driver none`, TERM under `-t`, `-e =bad`, exec into a paused container, and
/// COMMAND quoted as Docker quotes it.
#[test]
fn cli_details_a_docker_user_relies_on() {
    let host = TestHost::new();
    host.busybox_image();
    sleeper(&host, "first", &[]);
    host.netctl_ok(&["run", "--name", "second", "busybox", "true"]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "third",
        "busybox",
        "sh",
        "-c",
        "echo \"hi\"; sleep 1000",
    ]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        host.netctl_ok(&a).lines().map(String::from).collect()
    };
    assert_eq!(names(&["-n", "2"]), ["third", "second"]);
    assert_eq!(names(&["-l"]), ["third"]);
    let pid = host.netctl_ok(&["inspect", "-f", "{{.State.Pid}}", "first"]);
    assert_eq!(
        pid.trim(),
        inspect(&host, "first")["State"]["Pid"].to_string()
    );
    let ips = host.netctl_ok(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "first",
    ]);
    assert!(ips.trim().starts_with("172.17."), "{ips}");
    let table = host.netctl_ok(&["ps", "--format", "table {{.Names}}\\t{{.Status}}", "-l"]);
    assert!(
        table.starts_with("NAMES     STATUS\nthird     Up"),
        "Docker's tab writer aligns a table: {table}"
    );
    let ps = host.netctl_ok(&["ps", "--filter", "name=third"]);
    assert!(ps.contains(r#""sh -c echo \"hi\"; sl…""#), "{ps}");
    assert!(host.netctl_ok(&["version"]).contains("Version:"));
    assert!(host.netctl_ok(&["-v"]).starts_with("netctl "));
    host.netctl_ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "lost",
    ]);
    let (code, _, err) = host.netctl(&["logs", "quiet"]);
    assert!(
        code != 0 && err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    assert_eq!(
        inspect(&host, "quiet")["HostConfig"]["LogConfig"]["Type"],
        "none"
    );
    let term = host.netctl_ok(&["run", "--rm", "-t", "busybox", "sh", "-c", "echo $TERM"]);
    assert_eq!(term.trim(), "xterm");
    let (code, _, err) = host.netctl(&["run", "--rm", "-e", "=bad", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("invalid environment variable: =bad"), "{err}");
    host.netctl_ok(&["pause", "first"]);
    let (code, _, err) = host.netctl(&["exec", "first", "true"]);
    assert!(
        code != 0 && err.contains("is paused, unpause the container before exec"),
        "{err}"
    );
    host.netctl_ok(&["unpause", "first"]);
    host.netctl_ok(&["rm", "-f", "first", "second", "third", "quiet"]);
}
