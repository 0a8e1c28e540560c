//! dnsperf against netctl-dnsd, aardvark-dns and dnsmasq on the same records, one after the
//! other in one run, each listening on the gateway of a bridge with the client in a container
//! namespace behind it, as a real container asks. For each server and each query (a
//! container name, a three-container alias): queries per second, latency percentiles (from
//! dnsperf's per-query report), server CPU per answered query (utime+stime from /proc over
//! the run), whether the alias's answers rotate; then the server's memory with 1,000 and
//! 10,000 records. Runs in private network and mount namespaces.
//!
//! Usage: dns-bench NETCTL_DNSD AARDVARK_DNS [SECONDS]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netctl_dnsd::records::{DnsPaths, Record};
use netctl_net::NetNs;

const GATEWAY: &str = "10.89.0.1";
const CLIENT: &str = "10.89.0.200";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The containers: `c<i>` at 10.89.x.y; c0..c2 also answer to `web`; plus the client.
fn containers(n: usize) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<(String, String, Vec<String>)> = (0..n)
        .map(|i| {
            let ip = format!("10.89.{}.{}", 1 + i / 250, 2 + i % 250);
            let aliases = if i < 3 {
                vec!["web".to_string()]
            } else {
                vec![]
            };
            (format!("c{i}"), ip, aliases)
        })
        .collect();
    v.push(("client".into(), CLIENT.into(), vec![]));
    v
}

fn write_netctl(run: &Path, n: usize, client_ns: &Path) {
    let paths = DnsPaths::new(run);
    let _ = std::fs::remove_dir_all(paths.records());
    for (name, ip, aliases) in containers(n) {
        paths
            .write(&Record {
                network: "benchnet".into(),
                container_id: format!("{name}000000000000"),
                ifname: "eth0".into(),
                name: Some(name.clone()),
                aliases,
                ips: vec![ip.parse().unwrap()],
                netns: (name == "client").then(|| client_ns.to_path_buf()),
                gateways: vec![GATEWAY.parse().unwrap()],
                ..Default::default()
            })
            .unwrap();
    }
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
        // Wait for the port to be free for the next server.
        for _ in 0..50 {
            if !sh("ss -lnu").contains(&format!("{GATEWAY}:53")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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
    let mut cmd = match kind {
        "netctl" => {
            let run = scratch.join("run");
            write_netctl(&run, n, client_ns);
            let mut c = Command::new(dnsd);
            c.arg("--run-dir")
                .arg(&run)
                .arg("--resolv-conf")
                .arg("/dev/null");
            c
        }
        "aardvark" => {
            let dir = scratch.join("aardvark");
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
                let file = scratch.join("aardvark").join("aardvark.pid");
                server.pid = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(pid);
            }
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

/// dnsperf from the client namespace for `seconds`, asking `name` A.
fn dnsperf(client: &Path, pid: u32, name: &str, seconds: u32, scratch: &Path) -> Run {
    let data = scratch.join("queries.txt");
    std::fs::write(&data, format!("{name} A\n")).unwrap();
    let before = cpu_ticks(pid);
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", client.display()))
        .args([
            "dnsperf",
            "-s",
            GATEWAY,
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: dns-bench NETCTL_DNSD AARDVARK_DNS [SECONDS]";
    let dnsd = PathBuf::from(args.get(1).expect(usage));
    let aardvark = PathBuf::from(args.get(2).expect(usage));
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    netctl_bench::enter_private_namespaces();
    let scratch = std::env::temp_dir().join(format!("netctl-dns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let client = scratch.join("client-ns");
    NetNs::create(&client).unwrap();
    sh(&format!(
        "ip link set lo up; ip link add dnsbr type bridge; ip addr add {GATEWAY}/16 dev dnsbr; ip link set dnsbr up; \
         ip link add vclient type veth peer name eth0 netns {c}; ip link set vclient master dnsbr up; \
         nsenter --net={c} sh -c 'ip link set lo up; ip addr add {CLIENT}/16 dev eth0; ip link set eth0 up'",
        c = client.display()
    ));
    let servers = [
        ("netctl-dnsd", "netctl"),
        ("aardvark-dns", "aardvark"),
        ("dnsmasq", "dnsmasq"),
    ];
    println!("| server | query | queries/s | p50 latency (µs) | p99 latency (µs) | server CPU per query (µs) | answered | rotates |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for (label, kind) in servers {
        let server = start(label, kind, &scratch, &dnsd, &aardvark, 1000, &client);
        let rot = rotates(&client);
        for (what, name) in [("name", "c7"), ("3-container alias", "web")] {
            let r = dnsperf(&client, server.pid, name, seconds, &scratch);
            println!(
                "| {} | {what} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {} |",
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
    println!();
    println!("| server | RSS with 1,000 records (MiB) | RSS with 10,000 records (MiB) |");
    println!("|---|---:|---:|");
    for (label, kind) in servers {
        let mut rss = Vec::new();
        for n in [1000, 10_000] {
            let server = start(label, kind, &scratch, &dnsd, &aardvark, n, &client);
            let _ = dnsperf(&client, server.pid, "web", 1, &scratch);
            rss.push(rss_kib(server.pid) as f64 / 1024.0);
        }
        println!("| {label} | {:.1} | {:.1} |", rss[0], rss[1]);
    }
    let _ = NetNs::remove(&client);
    let _ = std::fs::remove_dir_all(&scratch);
}
