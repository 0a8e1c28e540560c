//! The DNS server under abuse, as a hostile container or a careless client abuses it: a
//! flood of unknown names towards an upstream that never answers, thousands of stalled TCP
//! connections, a control client that connects and stalls, a `kill -9`, an alias too big for
//! UDP, an EDNS version it does not speak. Known names keep answering throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netctl_cni::NetConfList;
use netctl_net::NetNs;
use netctl_netns_tests::{attachment, TestHost};
use serde_json::json;

fn web_list() -> serde_json::Value {
    json!({"cniVersion": "1.1.0", "name": "web", "plugins": [
        {"type": "netctl-bridge", "bridge": "br-web", "isGateway": true, "isDefaultGateway": true,
         "ipMasq": true, "ipam": {"type": "netctl-ipam", "subnet": "172.18.0.0/16"}},
        {"type": "netctl-dns", "capabilities": {"aliases": true}}]})
}

fn run(host: &mut TestHost, list: &NetConfList, id: &str, alias: &str) -> PathBuf {
    let ns = host.container(id);
    let mut rt = attachment(id, Some(&ns), "eth0");
    rt.args = vec![("K8S_POD_NAME".into(), id.into())];
    rt.capability_args = json!({"aliases": {"web": [alias]}})
        .as_object()
        .cloned()
        .unwrap();
    host.cni().add(list, &rt).expect("ADD");
    ns
}

fn dig(host: &TestHost, from: &Path, args: &str) -> String {
    host.try_sh_in(from, &format!("dig +tries=1 +time=2 @127.0.0.11 {args}"))
        .1
}

fn answers(host: &TestHost, from: &Path, args: &str) -> usize {
    let out = host
        .try_sh_in(
            from,
            &format!("dig +short +tries=1 +time=2 @127.0.0.11 {args}"),
        )
        .1;
    out.lines().filter(|l| l.starts_with("172.18.")).count()
}

fn server_pid() -> u32 {
    std::fs::read_to_string("/run/netctl/dns/dnsd.pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Peak resident memory (KiB) and open descriptors of a process.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (hwm, fds)
}

/// A query for `name` (type A, RD), with ID `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// An upstream that never answers: a host outside that drops everything sent to it.
fn silent_upstream(host: &mut TestHost) {
    let up = host.outside("upstream", "10.254.0.1/24", "10.254.0.53/24");
    host.sh_in(&up, "nft add table inet f; nft add chain inet f in { type filter hook input priority 0 \\; policy drop \\; }");
    host.resolv_conf("nameserver 10.254.0.53\n");
}

/// One container sends 30,000 queries for names nobody knows as fast as it can, while the
/// only upstream never answers: the server's peak memory stays under 64 MiB and its
/// descriptors under 300, excess queries get SERVFAIL at once, and another container's
/// queries for known names all answer during and after the flood.
#[test]
fn an_unknown_name_flood_is_bounded_and_known_names_still_answer() {
    let mut host = TestHost::new();
    silent_upstream(&mut host);
    let (_, list) = host.conflist("web", &web_list());
    let flooder = run(&mut host, &list, "flooder", "f");
    let client = run(&mut host, &list, "client", "c");
    let sock = NetNs::open(&flooder)
        .unwrap()
        .run(|| UdpSocket::bind("127.0.0.1:0").unwrap())
        .unwrap();
    sock.connect(SocketAddr::from(([127, 0, 0, 11], 53)))
        .unwrap();
    sock.set_nonblocking(true).unwrap();
    let (mut servfail, mut buf) = (0, [0u8; 512]);
    for i in 0..30_000u32 {
        let _ = sock.send(&query(i as u16, &format!("n{i}.unknown.test")));
        while let Ok(n) = sock.recv(&mut buf) {
            servfail += usize::from(n >= 4 && buf[3] & 0x0f == 2);
        }
        if i % 3000 == 0 {
            assert_eq!(
                answers(&host, &client, "flooder"),
                1,
                "a known name answers during the flood"
            );
        }
    }
    let pid = server_pid();
    for _ in 0..20 {
        assert_eq!(
            answers(&host, &client, "flooder"),
            1,
            "a known name answers after the flood"
        );
    }
    let (hwm, fds) = usage(pid);
    eprintln!("flood: peak RSS {hwm} KiB, {fds} descriptors, {servfail} SERVFAIL seen");
    assert!(hwm < 64 * 1024, "peak RSS {hwm} KiB");
    assert!(fds < 300, "{fds} descriptors");
    assert!(servfail > 0, "queries past the bound get SERVFAIL");
}

/// A container opens 1,200 TCP connections to 127.0.0.11 and sends nothing: another
/// container's TCP and UDP queries still answer, the server holds few of them, and it does
/// not spin (under half a second of CPU over two seconds).
#[test]
fn stalled_tcp_connections_stop_nothing() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list());
    let staller = run(&mut host, &list, "staller", "s");
    let client = run(&mut host, &list, "client", "c");
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let held: Vec<TcpStream> = NetNs::open(&staller)
        .unwrap()
        .run(|| {
            (0..1200)
                .filter_map(|_| {
                    TcpStream::connect_timeout(
                        &SocketAddr::from(([127, 0, 0, 11], 53)),
                        Duration::from_secs(2),
                    )
                    .ok()
                })
                .collect()
        })
        .unwrap();
    assert!(
        held.len() > 100,
        "the attacker got its connections open: {}",
        held.len()
    );
    let pid = server_pid();
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = stat.rsplit_once(") ").unwrap().1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = cpu(pid);
    let started = Instant::now();
    assert_eq!(
        answers(&host, &client, "+tcp staller"),
        1,
        "TCP answers another container"
    );
    assert_eq!(answers(&host, &client, "staller"), 1, "UDP answers");
    assert_eq!(
        answers(&host, &staller, "client"),
        1,
        "UDP answers the staller itself"
    );
    while started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ticks = cpu(pid) - before;
    let fds = usage(pid).1;
    eprintln!("stalled TCP: {} held by the attacker, server {fds} descriptors, {ticks} ticks of CPU in 2 s", held.len());
    assert!(ticks < 50, "the server spins: {ticks} ticks in 2 s");
    assert!(fds < 300, "the server holds {fds} descriptors");
}

/// An alias of 150 containers asked over TCP answers all 150 addresses (UDP truncates with
/// TC set, as it must).
#[test]
fn tcp_answers_are_whole() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list());
    let mut first = PathBuf::new();
    for i in 0..150 {
        let ns = run(&mut host, &list, &format!("m{i}"), "many");
        if i == 0 {
            first = ns;
        }
    }
    assert_eq!(answers(&host, &first, "+tcp many"), 150);
    let udp = dig(&host, &first, "+ignore +bufsize=1232 many");
    assert!(udp.contains(" tc"), "UDP sets TC: {udp}");
}

/// `kill -9` of the server: every container resolves again within seconds, without any ADD.
#[test]
fn a_killed_server_comes_back_by_itself() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list());
    let a = run(&mut host, &list, "a1", "a");
    let b = run(&mut host, &list, "b1", "b");
    let old = server_pid();
    host.sh(&format!("kill -9 {old}"));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    while answers(&host, &a, "b1") != 1 || answers(&host, &b, "a1") != 1 {
        assert!(Instant::now() < deadline, "no answer 5 s after the kill");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "answers again {} ms after the kill",
        started.elapsed().as_millis()
    );
    assert_ne!(server_pid(), old, "a new server");
}

/// A client connects to the control socket and sends nothing: the next ADD still succeeds
/// and its name answers at once.
#[test]
fn a_stalled_control_client_holds_up_no_add() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list());
    let a = run(&mut host, &list, "a1", "a");
    let _stalled: Vec<std::os::unix::net::UnixStream> = (0..10)
        .map(|_| std::os::unix::net::UnixStream::connect("/run/netctl/dns/control.sock").unwrap())
        .collect();
    run(&mut host, &list, "b1", "b");
    assert_eq!(answers(&host, &a, "b1"), 1);
}

/// A query with EDNS version 1 gets BADVERS, as RFC 6891 asks.
#[test]
fn an_unknown_edns_version_gets_badvers() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list());
    let a = run(&mut host, &list, "a1", "a");
    let out = dig(&host, &a, "+edns=1 +noednsneg a1");
    assert!(out.contains("status: BADVERS"), "{out}");
}

/// A runtime passes 300 aliases for one container, on a host with no DNS server yet and
/// again with one running: each ADD fails with an error that says so, and nothing of the
/// container stays (no record file, no name), while a normal container resolves.
#[test]
fn a_container_with_too_many_names_is_refused_and_leaves_nothing() {
    let mut host = TestHost::new();
    let (_, list) = host.conflist("web", &web_list());
    let many: Vec<String> = (0..300).map(|i| format!("alias{i}")).collect();
    let too_many = |host: &mut TestHost, id: &str| {
        let ns = host.container(id);
        let mut rt = attachment(id, Some(&ns), "eth0");
        rt.args = vec![("K8S_POD_NAME".into(), id.into())];
        rt.capability_args = json!({"aliases": {"web": many}})
            .as_object()
            .cloned()
            .unwrap();
        let err = host
            .cni()
            .add(&list, &rt)
            .expect_err("ADD with 300 aliases");
        assert!(
            err.to_string().contains("names"),
            "the error says why: {err}"
        );
        let record = Path::new("/run/netctl/dns/records/web").join(format!("{id}:eth0.json"));
        assert!(!record.exists(), "{} stayed", record.display());
    };
    too_many(&mut host, "a1");
    let b = run(&mut host, &list, "b1", "b");
    too_many(&mut host, "a2");
    assert_eq!(answers(&host, &b, "b1"), 1, "a normal container resolves");
    for name in ["a1", "a2", "alias7"] {
        assert_eq!(answers(&host, &b, name), 0, "{name} answers");
    }
}
