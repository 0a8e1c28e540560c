//! dnsperf against netctl-dnsd, aardvark-dns and dnsmasq on the same records, one after the
//! other in one run, each listening on the gateway of a bridge with the client in a container
//! namespace behind it, as a real container asks. For each server and each query (a
//! container name, a three-container alias): queries per second, latency percentiles (from
//! dnsperf's per-query report), server CPU per answered query (utime+stime from /proc over
//! the run), whether the alias's answers rotate; then the server's memory with 1,000 and
//! 10,000 records. Runs in private network and mount namespaces.
//!
//! Then abuse, by one container (`attacker`, a member of the network like the client):
//! a flood of unknown names as fast as dnsperf sends them while the only upstream never
//! answers, and then 2,000 stalled TCP connections; meanwhile the client asks a known name
//! at 100 queries/s. Reported: the server's peak RSS and descriptors, the client's lost
//! queries, whether TCP and UDP still answer the client, the server's CPU while stalled.
//!
//! With `churn` instead: answers while containers come and go (see [`churn`]).
//!
//! With `scale`: memory by record count, per-container sockets, start-up (see [`scale`]).
//!
//! Usage: dns-bench NETCTL_DNSD AARDVARK_DNS [SECONDS] [abuse|churn|scale]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "dns-bench/churn.rs"]
mod churn;
#[path = "dns-bench/scale.rs"]
mod scale;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netctl_bench::status_field;
use netctl_dnsrecords::{DnsPaths, Record};
use netctl_net::NetNs;

const GATEWAY: &str = "10.89.0.1";
const CLIENT: &str = "10.89.0.200";
const ATTACKER: &str = "10.89.0.201";
/// An upstream resolver that never answers.
const SILENT: &str = "10.89.0.250";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The address of container `i`: counting up from 10.89.1.2, past the client's and the
/// attacker's 10.89.0.x and around the churned containers' 10.89.100.0-10.89.199.255.
fn container_ip(i: usize) -> std::net::Ipv4Addr {
    use std::net::Ipv4Addr;
    let mut ip = u32::from(Ipv4Addr::new(10, 89, 1, 2)) + u32::try_from(i).unwrap();
    if ip >= u32::from(Ipv4Addr::new(10, 89, 100, 0)) {
        ip += 100 * 256;
    }
    Ipv4Addr::from(ip)
}

/// The containers: `c<i>` at [`container_ip`]; c0..c2 also answer to `web`; plus the client.
fn containers(n: usize) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<(String, String, Vec<String>)> = (0..n)
        .map(|i| {
            let ip = container_ip(i).to_string();
            let aliases = if i < 3 {
                vec!["web".to_string()]
            } else {
                vec![]
            };
            (format!("c{i}"), ip, aliases)
        })
        .collect();
    v.push(("client".into(), CLIENT.into(), vec![]));
    v.push(("attacker".into(), ATTACKER.into(), vec![]));
    v
}

/// The records of `n` containers, spread over `networks` networks (the client's, with the
/// gateway, is `benchnet`; the others `net<k>`).
fn write_netctl(run: &Path, n: usize, networks: usize, client_ns: &Path) {
    let paths = DnsPaths::new(run);
    let _ = std::fs::remove_dir_all(paths.records());
    let all = containers(n);
    let total = all.len();
    for (i, (name, ip, aliases)) in all.into_iter().enumerate() {
        // The client and the attacker (the last two) and the first of each share stay on
        // benchnet.
        let k = if i + 2 >= total {
            0
        } else {
            i * networks / n.max(1)
        };
        let network = if k == 0 {
            "benchnet".to_string()
        } else {
            format!("net{k}")
        };
        paths
            .write(&Record {
                network,
                container_id: format!("{name}000000000000"),
                ifname: "eth0".into(),
                name: Some(name.clone()),
                aliases,
                ips: vec![ip.parse().unwrap()],
                netns: match name.as_str() {
                    "client" => Some(client_ns.to_path_buf()),
                    "attacker" => Some(client_ns.with_file_name("attacker-ns")),
                    _ => None,
                },
                gateways: if k == 0 {
                    vec![GATEWAY.parse().unwrap()]
                } else {
                    vec![]
                },
                ..Default::default()
            })
            .unwrap();
    }
}

/// aardvark-dns's files, where netavark with `--config <scratch>/netavark` keeps them.
fn aardvark_dir(scratch: &Path) -> PathBuf {
    scratch.join("netavark").join("aardvark-dns")
}

fn write_aardvark(dir: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut text = format!("{GATEWAY}\n");
    for (name, ip, aliases) in containers(n) {
        let names = std::iter::once(name.clone())
            .chain(aliases)
            .collect::<Vec<_>>()
            .join(",");
        text += &format!("{name}000000000000 {ip}  {names}\n");
    }
    std::fs::write(dir.join("benchnet"), text).unwrap();
}

fn write_hosts(file: &Path, n: usize) {
    let mut text = String::new();
    for (name, ip, aliases) in containers(n) {
        text += &format!("{ip} {name} {}\n", aliases.join(" "));
    }
    std::fs::write(file, text).unwrap();
}

struct Server {
    label: &'static str,
    child: Child,
    /// The serving process (aardvark-dns forks into the background).
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The next server needs the port: wait for this one to be gone (one holding 100,000
        // records takes a while to free them; SIGKILL past 10 s), then for the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(self.pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
        for _ in 0..50 {
            if !sh("ss -lnu").contains(&format!("{GATEWAY}:53")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (state first); none if the
/// process is gone.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    after.split_whitespace().map(str::to_string).collect()
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    stat_fields(pid).first().is_some_and(|state| state != "Z")
}

fn cpu_ticks(pid: u32) -> u64 {
    let f = stat_fields(pid);
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// A number from `/proc/<pid>/status` (`key` with its colon), 0 if absent.
fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn start(
    label: &'static str,
    kind: &str,
    scratch: &Path,
    dnsd: &Path,
    aardvark: &Path,
    n: usize,
    client_ns: &Path,
) -> Server {
    start_spread(label, kind, scratch, dnsd, aardvark, (n, 1), client_ns)
}

/// [`start`] with the records of `n` containers on `networks` networks (netctl-dnsd only:
/// the peers serve one network here).
fn start_spread(
    label: &'static str,
    kind: &str,
    scratch: &Path,
    dnsd: &Path,
    aardvark: &Path,
    (n, networks): (usize, usize),
    client_ns: &Path,
) -> Server {
    let mut cmd = match kind {
        "netctl" => {
            let run = scratch.join("run");
            write_netctl(&run, n, networks, client_ns);
            let mut c = Command::new(dnsd);
            c.arg("--run-dir")
                .arg(&run)
                .arg("--resolv-conf")
                .arg(scratch.join("resolv.conf"))
                .arg("--serve");
            c
        }
        "aardvark" => {
            let dir = aardvark_dir(scratch);
            write_aardvark(&dir, n);
            let mut c = Command::new(aardvark);
            c.arg("--config").arg(&dir).args(["-p", "53", "run"]);
            c
        }
        _ => {
            let hosts = scratch.join("hosts");
            write_hosts(&hosts, n);
            let mut c = Command::new("dnsmasq");
            c.args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--cache-size=0",
            ])
            .arg(format!("--listen-address={GATEWAY}"))
            .arg(format!("--server={SILENT}"))
            .arg(format!("--addn-hosts={}", hosts.display()));
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut server = Server { label, child, pid };
    for _ in 0..100 {
        let answered = Command::new("nsenter")
            .arg(format!("--net={}", client_ns.display()))
            .args([
                "dig",
                "+short",
                "+tries=1",
                "+time=1",
                &format!("@{GATEWAY}"),
                "c1",
            ])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false);
        if answered {
            if kind == "aardvark" {
                let file = aardvark_dir(scratch).join("aardvark.pid");
                server.pid = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(pid);
            }
            // An answer from a server still holding the port would be no answer of this one.
            assert!(
                alive(server.pid),
                "{label} exited after starting: its port taken?"
            );
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{label} did not answer");
}

struct Run {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_query: f64,
    answered: u64,
}

/// dnsperf from the client namespace for `seconds`, asking `name` A of the server at `at`.
fn dnsperf(client: &Path, at: &str, pid: u32, name: &str, seconds: u32, scratch: &Path) -> Run {
    let data = scratch.join("queries.txt");
    std::fs::write(&data, format!("{name} A\n")).unwrap();
    let before = cpu_ticks(pid);
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", client.display()))
        .args([
            "dnsperf",
            "-s",
            at,
            "-l",
            &seconds.to_string(),
            "-c",
            "4",
            "-q",
            "200",
            "-v",
            "-d",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lat = Vec::new();
    let mut qps = 0.0;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.starts_with("> NOERROR") {
            if let Some(t) = line
                .split_whitespace()
                .last()
                .and_then(|t| t.parse::<f64>().ok())
            {
                lat.push(t * 1e6);
            }
        } else if let Some(v) = line.trim().strip_prefix("Queries per second:") {
            qps = v.trim().parse().unwrap_or(0.0);
        }
    }
    child.wait().unwrap();
    let ticks = cpu_ticks(pid) - before;
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let answered = lat.len() as u64;
    let hz = 100.0;
    Run {
        qps,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        cpu_us_per_query: ticks as f64 / hz * 1e6 / answered.max(1) as f64,
        answered,
    }
}

fn rotates(client: &Path) -> bool {
    let first = |_: usize| {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", client.display()))
            .args(["dig", "+short", &format!("@{GATEWAY}"), "web"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let seen: std::collections::HashSet<String> = (0..6).map(first).collect();
    seen.len() > 1
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn hwm_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

fn answers(client: &Path, at: &str, args: &str) -> bool {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", client.display()))
        .arg("sh")
        .arg("-c")
        .arg(format!("dig +short +tries=1 +time=2 {args} @{at} c7"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("10.89.")
}

/// What one server went through under abuse.
struct Abuse {
    peak_rss_mib: f64,
    peak_fds: usize,
    sent: u64,
    lost: u64,
    stalled: usize,
    tcp_answers: bool,
    udp_answers: bool,
    stalled_cpu_pct: f64,
    stalled_fds: usize,
}

/// The flood, then the stalled connections, against `server`, which each container asks
/// at `at`.
fn abuse(
    server: &Server,
    at: &str,
    client: &Path,
    attacker: &Path,
    seconds: u32,
    scratch: &Path,
) -> Abuse {
    let flood_data = scratch.join("flood.txt");
    let names: String = (0..50_000)
        .map(|i| format!("u{i}.flood.test A\n"))
        .collect();
    std::fs::write(&flood_data, names).unwrap();
    let known = scratch.join("known.txt");
    std::fs::write(&known, "c7 A\n").unwrap();
    let dnsperf = |ns: &Path, args: &[&str], data: &Path, out: Stdio| {
        Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["dnsperf", "-s", at, "-l", &seconds.to_string()])
            .args(args)
            .arg("-d")
            .arg(data)
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut flood = dnsperf(
        attacker,
        &["-c", "8", "-q", "5000", "-t", "1"],
        &flood_data,
        Stdio::null(),
    );
    let good = dnsperf(client, &["-Q", "100", "-t", "2"], &known, Stdio::piped());
    let mut peak_fds = 0;
    let report = std::thread::scope(|s| {
        let waiter = s.spawn(|| good.wait_with_output().unwrap());
        while !waiter.is_finished() {
            peak_fds = peak_fds.max(fds(server.pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        waiter.join().unwrap()
    });
    let _ = flood.wait();
    let text = String::from_utf8_lossy(&report.stdout);
    let count = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let (sent, lost) = (count("Queries sent:"), count("Queries lost:"));
    let peak_rss_mib = hwm_kib(server.pid) as f64 / 1024.0;
    let held: Vec<std::net::TcpStream> = NetNs::open(attacker)
        .unwrap()
        .run(|| {
            let to = std::net::SocketAddr::new(at.parse().unwrap(), 53);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut held = Vec::new();
            while held.len() < 2000 && std::time::Instant::now() < deadline {
                if let Ok(c) = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200))
                {
                    held.push(c);
                }
            }
            held
        })
        .unwrap();
    let before = cpu_ticks(server.pid);
    let started = std::time::Instant::now();
    let tcp_answers = answers(client, at, "+tcp");
    let udp_answers = answers(client, at, "");
    while started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let ticks = cpu_ticks(server.pid) - before;
    Abuse {
        peak_rss_mib,
        peak_fds,
        sent,
        lost,
        stalled: held.len(),
        tcp_answers,
        udp_answers,
        stalled_cpu_pct: ticks as f64 / started.elapsed().as_secs_f64(),
        stalled_fds: fds(server.pid),
    }
}

fn print_abuse(
    scratch: &Path,
    dnsd: &Path,
    aardvark: &Path,
    client: &Path,
    attacker: &Path,
    seconds: u32,
) {
    println!("| server | flood: peak RSS (MiB) | flood: peak fds | client's known-name queries lost | stalled TCP connections held | then TCP answers | UDP answers | server CPU while stalled | server fds while stalled |");
    println!("|---|---:|---:|---:|---:|---|---|---:|---:|");
    let yes = |b: bool| if b { "yes" } else { "no" };
    for (label, kind) in SERVERS {
        let server = start(label, kind, scratch, dnsd, aardvark, 1000, client);
        // netctl-dnsd answers each container on 127.0.0.11 in its own namespace; the others
        // listen only on the gateway, where every container shares one socket.
        let at = if kind == "netctl" {
            "127.0.0.11"
        } else {
            GATEWAY
        };
        let a = abuse(&server, at, client, attacker, seconds, scratch);
        println!(
            "| {label} (at {at}) | {:.1} | {} | {} of {} | {} | {} | {} | {:.0}% | {} |",
            a.peak_rss_mib,
            a.peak_fds,
            a.lost,
            a.sent,
            a.stalled,
            yes(a.tcp_answers),
            yes(a.udp_answers),
            a.stalled_cpu_pct,
            a.stalled_fds
        );
    }
}

const SERVERS: [(&str, &str); 3] = [
    ("netctl-dnsd", "netctl"),
    ("aardvark-dns", "aardvark"),
    ("dnsmasq", "dnsmasq"),
];

/// A namespace on the bench bridge at `ip`.
fn member_ns(scratch: &Path, name: &str, ip: &str) -> PathBuf {
    let ns = scratch.join(format!("{name}-ns"));
    NetNs::create(&ns).unwrap();
    sh(&format!(
        "ip link add v{name} type veth peer name eth0 netns {c}; ip link set v{name} master dnsbr up; \
         nsenter --net={c} sh -c 'ip link set lo up; ip addr add {ip}/16 dev eth0; ip link set eth0 up'",
        c = ns.display()
    ));
    ns
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: dns-bench NETCTL_DNSD AARDVARK_DNS [SECONDS] [abuse|churn|scale]";
    let dnsd = PathBuf::from(args.get(1).expect(usage));
    let aardvark = PathBuf::from(args.get(2).expect(usage));
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let only_abuse = args.get(4).is_some_and(|a| a == "abuse");
    let only_churn = args.get(4).is_some_and(|a| a == "churn");
    let only_scale = args.get(4).is_some_and(|a| a == "scale");
    netctl_bench::enter_private_namespaces();
    let scratch = std::env::temp_dir().join(format!("netctl-dns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    // The bridge's own MAC, as every runtime sets it on the bridges it makes: without one it
    // takes the lowest of its ports', which changes as containers come and go, and the
    // containers' neighbour entries for the gateway go stale.
    sh(&format!(
        "ip link set lo up; ip link add dnsbr address 02:42:0a:59:00:01 type bridge; ip addr add {GATEWAY}/16 dev dnsbr; ip link set dnsbr up"
    ));
    let client = member_ns(&scratch, "client", CLIENT);
    let attacker = member_ns(&scratch, "attacker", ATTACKER);
    let silent = member_ns(&scratch, "silent", SILENT);
    sh(&format!(
        "nsenter --net={} nft 'add table inet f; add chain inet f in {{ type filter hook input priority 0; policy drop; }}'",
        silent.display()
    ));
    // Every server's only upstream is the silent one (aardvark-dns reads /etc/resolv.conf).
    let resolv = scratch.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {SILENT}\n")).unwrap();
    sh(&format!(
        "mount --bind {} /etc/resolv.conf",
        resolv.display()
    ));
    if only_scale {
        scale::print_memory(&scratch, &dnsd, &aardvark, &client);
        println!();
        // Before the 1,000 namespaces: the kernel tears those down for seconds after, and a
        // first ADD measured then would wait for that, not for netctl.
        scale::print_startup(&scratch, &dnsd, 10);
        println!();
        scale::print_listeners(&scratch, &dnsd, &aardvark, &client, 1000);
    } else if only_churn {
        churn::print(&scratch, &dnsd, &aardvark, &client, seconds);
    } else if !only_abuse {
        print_speed(&scratch, &dnsd, &aardvark, &client, seconds);
        println!();
    }
    if !only_churn && !only_scale {
        println!("### Abuse by one container: an unknown-name flood with a silent upstream, then stalled TCP connections ({seconds} s flood)");
        println!();
        print_abuse(&scratch, &dnsd, &aardvark, &client, &attacker, seconds);
    }
    for ns in [&client, &attacker, &silent] {
        let _ = NetNs::remove(ns);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

fn print_speed(scratch: &Path, dnsd: &Path, aardvark: &Path, client: &Path, seconds: u32) {
    println!("| server | asked at | query | queries/s | p50 latency (µs) | p99 latency (µs) | server CPU per query (µs) | answered | rotates |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---|");
    for (label, kind) in SERVERS {
        let server = start(label, kind, scratch, dnsd, aardvark, 1000, client);
        let rot = rotates(client);
        // netctl's containers ask 127.0.0.11 in their own namespace (their resolv.conf, as
        // Docker's); the peers' ask the gateway. netctl-dnsd answers at both.
        let places: &[&str] = if kind == "netctl" {
            &["127.0.0.11", GATEWAY]
        } else {
            &[GATEWAY]
        };
        for at in places {
            for (what, name) in [("name", "c7"), ("3-container alias", "web")] {
                let r = dnsperf(client, at, server.pid, name, seconds, scratch);
                println!(
                    "| {} | {at} | {what} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {} |",
                    server.label,
                    r.qps,
                    r.p50_us,
                    r.p99_us,
                    r.cpu_us_per_query,
                    r.answered,
                    if rot { "yes" } else { "no" }
                );
            }
        }
    }
}
