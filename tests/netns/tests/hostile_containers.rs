//! Containers (and callers) that try to reach what is not theirs: the host's loopback
//! services, descriptors of the host, the DNS server from outside its network; and callers
//! whose reader went away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use netctl_netns_tests::{attachment, binary, TestHost};
use serde_json::json;

fn bridge_list(name: &str, bridge: &str, subnet: &str) -> serde_json::Value {
    json!({"cniVersion": "1.1.0", "name": name, "plugins": [
        {"type": "netctl-bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": true,
         "ipMasq": true, "capabilities": {"portMappings": true},
         "ipam": {"type": "netctl-ipam", "subnet": subnet}},
        {"type": "netctl-dns", "capabilities": {"aliases": true}}]})
}

/// A container with CAP_NET_ADMIN and CAP_NET_RAW routes 127.0.0.1 through its gateway to
/// reach a service the host bound to its loopback only: it gets no answer, while a port
/// published on the host's 127.0.0.1 still answers the host.
#[test]
fn a_container_cannot_reach_the_hosts_loopback() {
    let mut host = TestHost::new();
    let www = host.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "secret of the host\n").unwrap();
    let host_ns = Path::new("/proc/self/ns/net").to_path_buf();
    host.spawn_in(
        &host_ns,
        &format!("busybox httpd -f -p 127.0.0.1:9999 -h {}", www.display()),
    );
    let (_, list) = host.conflist("web", &bridge_list("web", "br-web", "172.18.0.0/16"));
    let ns = host.container("attacker");
    host.cni()
        .add(&list, &attachment("attacker", Some(&ns), "eth0"))
        .expect("ADD");
    let get = "printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 2 127.0.0.1 9999";
    let mut served = false;
    for _ in 0..30 {
        if host.try_sh(get).1.contains("secret") {
            served = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(served, "the host's own service answers the host");
    host.sh_in(
        &ns,
        "sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1; \
         ip addr flush dev lo; ip link set lo down; ip route add 127.0.0.1/32 via 172.18.0.1 dev eth0",
    );
    let (_, out) = host.try_sh_in(&ns, get);
    assert!(
        !out.contains("secret"),
        "the host's loopback service answered the container: {out}"
    );
}

/// `netctl run -d ... 3>&1 | cat` returns while the container runs (nothing of the
/// caller's is held open by it), the container's first process has fds 0-2 only (no
/// published port's socket), and `exec` passes none of the caller's descriptors either.
#[test]
fn a_container_gets_fds_0_to_2_and_run_d_returns_at_once() {
    let host = TestHost::new();
    host.busybox_image();
    let netctl = binary("netctl");
    // The bound is only there so a hang fails this test instead of the suite.
    let (ok, out) = host.try_sh(&format!(
        "timeout 30 sh -c '{} run -d --name fds -p 18080:80 busybox sleep 1000 3>&1 | cat'",
        netctl.display()
    ));
    assert!(
        ok && out.trim().len() == 64,
        "run -d returned its ID at once: {out}"
    );
    let ps = host.netctl_ok(&["ps"]);
    assert!(ps.contains(" Up "), "the container still runs: {ps}");
    let fds = host.netctl_ok(&["exec", "fds", "ls", "/proc/1/fd"]);
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds}"
    );
    let (ok, out) = host.try_sh(&format!(
        "{} exec fds ls /proc/self/fd 7</etc/hostname",
        netctl.display()
    ));
    assert!(ok, "{out}");
    // ls itself holds fd 3, the folder it lists.
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{out}"
    );
    host.netctl_ok(&["rm", "-f", "fds"]);
}

/// `netctl ps -a | head -1` where head is already gone: netctl ends quietly on SIGPIPE, as
/// command-line tools do, with no panic and no message.
#[test]
fn a_command_whose_reader_left_exits_quietly() {
    let host = TestHost::new();
    host.busybox_image();
    for i in 0..3 {
        host.netctl_ok(&["create", "--name", &format!("c{i}"), "busybox", "true"]);
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(binary("netctl"))
        .args(["ps", "-a"])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "no message: {err}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?}",
        out.status
    );
}

/// A machine outside the host routes to a network's gateway and asks its DNS server for a
/// container's name, a PTR and an outside name (as an open resolver would answer): it gets
/// nothing. The container itself and the host still get answers.
#[test]
fn the_dns_server_answers_no_one_outside_the_network() {
    let mut host = TestHost::new();
    let upstream = host.outside("upstream", "10.254.0.1/24", "10.254.0.53/24");
    host.spawn_in(&upstream, "dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.254.0.53 --bind-interfaces --address=/example.test/192.0.2.7");
    host.resolv_conf("nameserver 10.254.0.53\n");
    host.sh("sysctl -qw net.ipv4.ip_forward=1");
    let (_, list) = host.conflist("web", &bridge_list("web", "br-web", "172.18.0.0/16"));
    let ns = host.container("c1");
    let mut rt = attachment("c1", Some(&ns), "eth0");
    rt.args = vec![("K8S_POD_NAME".into(), "web1".into())];
    host.cni().add(&list, &rt).expect("ADD");
    let dig = |from: &Path, q: &str| {
        host.try_sh_in(
            from,
            &format!("dig +short +tries=1 +time=1 @172.18.0.1 {q}"),
        )
        .1
    };
    let mut forwarded = String::new();
    for _ in 0..20 {
        forwarded = dig(&ns, "example.test");
        if forwarded.contains("192.0.2.7") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        forwarded.contains("192.0.2.7"),
        "the member is served: {forwarded}"
    );
    assert!(dig(&ns, "web1").contains("172.18.0.2"));
    let (_, from_host) = host.try_sh("dig +short +tries=1 +time=1 @172.18.0.1 web1");
    assert!(
        from_host.contains("172.18.0.2"),
        "the host is served: {from_host}"
    );
    for q in ["web1", "-x 172.18.0.2", "example.test"] {
        let out = dig(&upstream, q);
        assert!(
            out.contains("timed out") || out.trim().is_empty(),
            "an outsider asking {q} got an answer: {out}"
        );
        assert!(
            !out.contains("172.18.0.2") && !out.contains("192.0.2.7") && !out.contains("web1"),
            "{out}"
        );
    }
}

/// A container on a plain bridge network goes for its host's cluster store and tunnels: TCP
/// to etcd's client and peer ports (2379, 2380) and a datagram to the VXLAN port (4789), on
/// the gateway and on the host's other address, while the host's own firewall lets all of
/// it in. Nothing arrives; the host itself still reaches those ports. Both backends.
fn a_container_cannot_reach_the_hosts_store_or_vxlan_ports(backend: &str) {
    let mut host = TestHost::new();
    host.sh("ip link add uplink type veth peer name uplink-peer && ip addr add 192.0.2.1/24 dev uplink && ip link set uplink up");
    let www = host.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "etcd of the host\n").unwrap();
    let host_ns = Path::new("/proc/self/ns/net").to_path_buf();
    for port in [2379, 2380] {
        host.spawn_in(
            &host_ns,
            &format!("busybox httpd -f -p {port} -h {}", www.display()),
        );
    }
    let vxlan = std::net::UdpSocket::bind("0.0.0.0:4789").unwrap();
    vxlan
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut list = bridge_list("web", "br-store", "172.18.0.0/16");
    list["plugins"][0]["firewallBackend"] = json!(backend);
    let (_, list) = host.conflist("web", &list);
    let ns = host.container("attacker");
    host.cni()
        .add(&list, &attachment("attacker", Some(&ns), "eth0"))
        .expect("ADD");
    let get = |addr: &str, port: u16| {
        format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 1 {addr} {port}")
    };
    netctl_netns_tests::eventually(
        "the host reaches its own etcd ports",
        std::time::Duration::from_secs(3),
        || match host.try_sh(&get("192.0.2.1", 2379)) {
            (_, out) if out.contains("etcd of the host") => Ok(()),
            (_, out) => Err(out),
        },
    );
    for addr in ["172.18.0.1", "192.0.2.1"] {
        for port in [2379, 2380] {
            let (_, out) = host.try_sh_in(&ns, &get(addr, port));
            assert!(
                !out.contains("etcd of the host"),
                "{backend}: the container reached {addr}:{port}: {out}"
            );
        }
        send_udp(&ns, addr, 4789);
        let mut buf = [0u8; 64];
        let got = vxlan.recv_from(&mut buf);
        assert!(
            got.is_err(),
            "{backend}: a datagram from the container reached {addr}:4789: {got:?}"
        );
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .send_to(b"from the host", "192.0.2.1:4789")
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        vxlan.recv_from(&mut buf).is_ok(),
        "the host's own datagram arrives"
    );
}

/// One datagram to `addr:port` from inside namespace `ns`.
fn send_udp(ns: &Path, addr: &str, port: u16) {
    let to = format!("{addr}:{port}");
    netctl_net::NetNs::open(ns)
        .unwrap()
        .run(move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"injected", to).unwrap();
        })
        .unwrap();
}

#[test]
fn a_container_cannot_reach_the_hosts_store_or_vxlan_ports_nftables() {
    a_container_cannot_reach_the_hosts_store_or_vxlan_ports("nftables");
}

#[test]
fn a_container_cannot_reach_the_hosts_store_or_vxlan_ports_iptables() {
    a_container_cannot_reach_the_hosts_store_or_vxlan_ports("iptables");
}

/// How each system call of the probe went in container `name` (`syscall-probe` output).
fn probe(host: &TestHost, args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let out = host.netctl_ok(args);
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.split(':').next().unwrap_or(v).to_string()))
        .collect()
}

/// A container tries what Docker's default seccomp profile forbids: keyring calls,
/// perf_event_open, io_uring, an unusual personality, a new user namespace (`unshare -U`);
/// each fails with EPERM, while plain calls work. With `--security-opt seccomp=unconfined`
/// they are the kernel's to decide again; with a profile file of Docker's format, its rules
/// hold (here: getcwd answers ENOSYS, everything else is allowed); a profile that is not
/// one is refused when the container is made. `exec` runs under the container's profile too.
#[test]
fn containers_make_only_the_system_calls_their_seccomp_profile_allows() {
    let host = TestHost::new();
    let root = netctl_netns_tests::busybox_rootfs(host.dir());
    std::fs::copy(
        netctl_netns_tests::binary("syscall-probe"),
        root.join("bin/syscall-probe"),
    )
    .unwrap();
    host.netctl_ok(&["image", "import", &root.display().to_string(), "probe"]);
    let base = ["run", "--rm", "--net", "none"];
    let denied = [
        "keyctl",
        "add_key",
        "perf_event_open",
        "io_uring_setup",
        "personality",
        "unshare_user",
    ];
    let default = probe(&host, &[&base[..], &["probe", "syscall-probe"]].concat());
    for call in denied {
        assert_eq!(
            default[call], "EPERM",
            "default profile, {call}: {default:?}"
        );
    }
    assert_eq!(
        (default["getpid"].as_str(), default["getcwd"].as_str()),
        ("OK", "OK")
    );
    let free = probe(
        &host,
        &[
            &base[..],
            &[
                "--security-opt",
                "seccomp=unconfined",
                "probe",
                "syscall-probe",
            ],
        ]
        .concat(),
    );
    for call in ["keyctl", "personality", "unshare_user"] {
        assert_eq!(free[call], "OK", "unconfined, {call}: {free:?}");
    }
    let profile = host.dir().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}"#,
    )
    .unwrap();
    let own = format!("seccomp={}", profile.display());
    let custom = probe(
        &host,
        &[
            &base[..],
            &["--security-opt", &own, "probe", "syscall-probe"],
        ]
        .concat(),
    );
    assert_eq!(
        (custom["getcwd"].as_str(), custom["keyctl"].as_str()),
        ("ENOSYS", "OK"),
        "{custom:?}"
    );
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let (code, _, err) = host.netctl(&["create", "--security-opt", &own, "probe", "true"]);
    assert!(code != 0 && err.contains("seccomp profile"), "{code} {err}");
    host.netctl_ok(&[
        "run", "-d", "--name", "held", "--net", "none", "probe", "sleep", "1000",
    ]);
    let exec = probe(&host, &["exec", "held", "syscall-probe"]);
    assert_eq!(exec["keyctl"], "EPERM", "exec: {exec:?}");
    host.netctl_ok(&["rm", "-f", "held"]);
}
