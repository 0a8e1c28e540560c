//! Answers while containers come and go: a client in a container asks a name that stays
//! registered at 1,000 queries/s while, in every other second, 50 containers per second are
//! added and removed, each the way its runtime does it: netctl through its conflist
//! (`netctl-bridge` with `netctl-ipam`, then `netctl-dns` with the bridge's result; DEL in
//! reverse), aardvark-dns through `netavark setup` and `netavark teardown` (which write its
//! network file and SIGHUP it), dnsmasq by rewriting a hosts file and SIGHUP (what podman's
//! dnsname plugin did). Quiet and churned seconds alternate so that both phases see the
//! machine in the same state (a quiet p99 moves by 2x from run to run with where the
//! scheduler puts the threads and how deeply idle CPUs sleep), and in a quiet second the
//! changing side asks for a name that stays, at the cadence it asks for new names while
//! churning: the phases differ only in the changes. Measured: the client's lost queries and p99 in both phases
//! (a query is quiet only if no change was under way when it was sent), the rate of changes
//! reached, and how long after a change returns the new name answers and the removed one
//! stops. Each row runs [`ROUNDS`] times. Three rows isolate the server's part: netctl-dnsd
//! told from this process (no plugin processes, no veths), a control that runs
//! `netctl-bridge` alone (veths come and go, no name does), and bare links made from this
//! process (what link churn costs on this kernel, whoever makes the links).

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netctl_net::{NetNs, Netlink, RouteSpec};

use super::{containers, start, GATEWAY, SERVERS};

/// How a runtime tells its server of a container that came or went.
enum Driver {
    /// netctl's conflist, run plugin by plugin as a runtime does.
    Netctl(Conflist),
    /// The DNS plugin's own two steps (write the record, tell the server), in this process:
    /// what the server costs without plugin processes per change competing for the CPUs.
    NetctlDirect {
        paths: netctl_dnsrecords::DnsPaths,
        pool: Vec<PathBuf>,
    },
    /// `netavark setup`/`teardown`.
    Netavark(Netavark),
    /// Rewrite the hosts file `file` with the base and the live churned entries, then SIGHUP
    /// `pid`.
    Hosts { file: PathBuf, pid: u32 },
    /// Bare links: what every bridge network does per container, from this process (no
    /// plugin process, no IPAM, no firewall, no name): a veth pair with its host end on the
    /// bridge (IPv6 off, as netctl-bridge has it) and up, the container's end up with its
    /// address and default route; DEL deletes the pair. What link churn costs the client's
    /// p99 on this kernel whoever makes the links.
    BareLinks(Vec<PathBuf>),
}

fn churn_ip(k: usize) -> String {
    format!("10.89.{}.{}", 100 + (k / 250) % 100, 2 + k % 250)
}

fn container_id(k: usize) -> String {
    format!("n{k}000000000000")
}

impl Driver {
    /// Whether a change adds or removes a name (all but the control and bare-links rows).
    fn changes_names(&self) -> bool {
        !matches!(
            self,
            Driver::Netctl(Conflist { dns: false, .. }) | Driver::BareLinks(_)
        )
    }

    fn add(&self, k: usize, live: &VecDeque<usize>) {
        match self {
            Driver::Netctl(c) => c.add(k),
            Driver::NetctlDirect { paths, pool } => {
                let r = netctl_dnsrecords::Record {
                    network: "benchnet".into(),
                    container_id: container_id(k),
                    ifname: "eth0".into(),
                    name: Some(format!("n{k}")),
                    ips: vec![churn_ip(k).parse().unwrap()],
                    netns: Some(pool[k % pool.len()].clone()),
                    gateways: vec![GATEWAY.parse().unwrap()],
                    ..Default::default()
                };
                let path = paths.write(&r).unwrap();
                paths.notify(&path).unwrap();
            }
            Driver::Netavark(n) => n.call("setup", k),
            Driver::Hosts { file, pid } => rewrite_hosts(file, *pid, live),
            Driver::BareLinks(pool) => add_bare_link(k, &pool[k % pool.len()]),
        }
    }

    fn del(&self, k: usize, live: &VecDeque<usize>) {
        match self {
            Driver::Netctl(c) => c.del(k),
            Driver::NetctlDirect { paths, .. } => {
                let path = paths.record_path("benchnet", &container_id(k), "eth0");
                std::fs::remove_file(&path).unwrap();
                paths.notify(&path).unwrap();
            }
            Driver::Netavark(n) => n.call("teardown", k),
            Driver::Hosts { file, pid } => rewrite_hosts(file, *pid, live),
            Driver::BareLinks(_) => Netlink::new()
                .unwrap()
                .del_link_by_name(&bare_link(k))
                .unwrap(),
        }
    }
}

/// The host end of churned container `k`'s pair in the bare-links row.
fn bare_link(k: usize) -> String {
    format!("bare{k}")
}

/// The bare-links row's ADD of churned container `k` in namespace `netns`.
fn add_bare_link(k: usize, netns: &Path) {
    let ns = NetNs::open(netns).unwrap();
    let mut host = Netlink::new().unwrap();
    let name = bare_link(k);
    host.add_veth(&name, "eth0", &ns, None, None).unwrap();
    let bridge = host.link_by_name("dnsbr").unwrap().unwrap();
    let index = host.index_of(&name).unwrap();
    netctl_net::disable_ipv6(&name).unwrap();
    host.set_master(index, &bridge).unwrap();
    host.set_up(index, true).unwrap();
    let mut ctr = Netlink::in_ns(&ns).unwrap();
    let eth0 = ctr.index_of("eth0").unwrap();
    let addr: IpNet = format!("{}/16", churn_ip(k)).parse().unwrap();
    ctr.add_address(eth0, addr, true).unwrap();
    ctr.set_up(eth0, true).unwrap();
    let default = RouteSpec {
        dst: "0.0.0.0/0".parse().unwrap(),
        gw: Some(GATEWAY.parse().unwrap()),
        oif: eth0,
    };
    ctr.add_route(&default, false).unwrap();
}

/// netctl's conflist in `bins`, state in `run`, churned container `k` in
/// `pool[k % pool.len()]`; with `dns` false only its `netctl-bridge` runs: the links come and
/// go and no name does (the control row).
struct Conflist {
    bins: PathBuf,
    run: PathBuf,
    pool: Vec<PathBuf>,
    dns: bool,
}

impl Conflist {
    /// ADD of churned container `k`: the bridge with its address, then DNS with the
    /// bridge's result.
    fn add(&self, k: usize) {
        let netns = &self.pool[k % self.pool.len()];
        let mut bridge = netctl_bridge_conf(&self.run);
        bridge["runtimeConfig"] = serde_json::json!({"ips": [format!("{}/16", churn_ip(k))]});
        let out = cni(
            &self.bins.join("netctl-bridge"),
            "ADD",
            k,
            netns,
            &bridge.to_string(),
        );
        if self.dns {
            let mut conf = netctl_dns_conf(&self.run);
            conf["prevResult"] = serde_json::from_str(&out).unwrap();
            cni(
                &self.bins.join("netctl-dns"),
                "ADD",
                k,
                netns,
                &conf.to_string(),
            );
        }
    }

    /// DEL of churned container `k`, in reverse.
    fn del(&self, k: usize) {
        let netns = &self.pool[k % self.pool.len()];
        if self.dns {
            let conf = netctl_dns_conf(&self.run).to_string();
            cni(&self.bins.join("netctl-dns"), "DEL", k, netns, &conf);
        }
        let bridge = netctl_bridge_conf(&self.run).to_string();
        cni(&self.bins.join("netctl-bridge"), "DEL", k, netns, &bridge);
    }
}

/// netavark with `config` as its configuration folder (aardvark-dns's files are in its
/// `aardvark-dns`), churned container `k` in `pool[k % pool.len()]`.
struct Netavark {
    netavark: PathBuf,
    aardvark: PathBuf,
    config: PathBuf,
    pool: Vec<PathBuf>,
}

impl Netavark {
    /// `netavark setup` or `teardown` of churned container `k`, as podman calls it.
    fn call(&self, command: &str, k: usize) {
        let options = serde_json::json!({
            "container_id": container_id(k), "container_name": format!("n{k}"),
            "networks": {"benchnet": {"interface_name": "eth0",
                "static_ips": [churn_ip(k)], "aliases": [format!("n{k}")]}},
            "network_info": {"benchnet": {"name": "benchnet", "id": "b".repeat(64),
                "driver": "bridge", "network_interface": "dnsbr",
                "subnets": [{"subnet": "10.89.0.0/16", "gateway": GATEWAY}],
                "ipv6_enabled": false, "internal": false, "dns_enabled": true,
                "ipam_options": {"driver": "host-local"}}}});
        let mut child = Command::new(&self.netavark)
            .arg("--config")
            .arg(&self.config)
            .arg("--aardvark-binary")
            .arg(&self.aardvark)
            .arg(command)
            .arg(&self.pool[k % self.pool.len()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        serde_json::to_writer(stdin, &options).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "netavark {command} n{k}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Rewrites the hosts file `file` with the base and the live churned entries, then SIGHUPs
/// dnsmasq (`pid`).
fn rewrite_hosts(file: &Path, pid: u32, live: &VecDeque<usize>) {
    let base = containers(1000)
        .into_iter()
        .map(|(n, ip, aliases)| (n, ip, aliases.join(" ")));
    let churned = live
        .iter()
        .map(|k| (format!("n{k}"), churn_ip(*k), String::new()));
    let text: String = base
        .chain(churned)
        .map(|(name, ip, aliases)| format!("{ip} {name} {aliases}\n"))
        .collect();
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
}

/// The bridge of the bench's network (it exists, with the gateway address), masquerading
/// like netavark's.
fn netctl_bridge_conf(run: &Path) -> serde_json::Value {
    serde_json::json!({"cniVersion": "1.0.0", "name": "benchnet", "type": "netctl-bridge",
        "bridge": "dnsbr", "isGateway": true, "ipMasq": true, "runDir": run,
        "ipam": {"type": "netctl-ipam", "subnet": "10.89.0.0/16", "gateway": GATEWAY,
            "dataDir": run.join("ipam")}})
}

fn netctl_dns_conf(run: &Path) -> serde_json::Value {
    serde_json::json!({"cniVersion": "1.0.0", "name": "benchnet", "type": "netctl-dns",
        "runDir": run})
}

/// Stops the firewall watcher the first `netctl-bridge` ADD on `run` started (it stays while
/// the network's rules do, as on a host).
fn stop_firewall_watcher(run: &Path) {
    if let Ok(pid) = std::fs::read_to_string(run.join("firewall").join("watch.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}

/// Runs one plugin for churned container `k` in `netns`, named `n<k>`; what it printed.
pub(super) fn cni(plugin: &Path, command: &str, k: usize, netns: &Path, conf: &str) -> String {
    let args = format!("IgnoreUnknown=1;K8S_POD_NAME=n{k}");
    let netns = netns.to_str().unwrap();
    netctl_bench::run_plugin_with_args(plugin, command, &container_id(k), netns, &args, conf).1
}

/// A UDP socket in the client's namespace, connected to the server at the gateway.
fn client_socket(client: &Path) -> UdpSocket {
    socket_in(client, GATEWAY)
}

/// A UDP socket in namespace `ns`, connected to a server at `at`.
pub(super) fn socket_in(ns: &Path, at: &str) -> UdpSocket {
    let ns = NetNs::open(ns).unwrap();
    let sock = ns
        .run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.connect(format!("{at}:53")).unwrap();
            s
        })
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    sock
}

/// Asks `name` once; whether it got addresses (None: no reply at all).
fn ask(sock: &UdpSocket, name: &str, id: u16) -> Option<bool> {
    sock.send(&netctl_bench::dns_query(name, id)).ok()?;
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_millis(20);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 12 && buf[..2] == id.to_be_bytes() {
                return Some(u16::from_be_bytes([buf[6], buf[7]]) > 0);
            }
        }
    }
    None
}

/// How long until `name` answers with addresses (`want`), or stops doing so (`!want`: an
/// empty answer, or none within 20 ms, since every server forwards a name it no longer
/// knows and the upstream here never answers), polling.
pub(super) fn until(sock: &UdpSocket, name: &str, want: bool, id: &mut u16) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        *id = id.wrapping_add(1);
        let asked = start.elapsed(); // the figure: when the first query that saw it was sent
        if (ask(sock, name, *id) == Some(true)) == want {
            return asked;
        }
    }
    start.elapsed()
}

/// One query of the steady client: when it was sent (from the start of the row) and how
/// long its answer took (None: lost, no answer within a second).
type Sample = (Duration, Option<Duration>);

/// Asks `name` every millisecond from `start` for `dur`.
fn probe(client: &Path, name: &str, start: Instant, dur: Duration) -> Vec<Sample> {
    let sock = client_socket(client);
    let rx = sock.try_clone().unwrap();
    let slots = 65536;
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; slots]));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sent_at, done) = (sent_at.clone(), done.clone());
        std::thread::spawn(move || {
            let mut lat = vec![None; slots];
            let mut buf = [0u8; 512];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match rx.recv(&mut buf) {
                    Ok(n) if n >= 2 => {
                        quiet_since = None;
                        let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                        if let Some(t) = sent_at.lock().unwrap()[id].take() {
                            let l = t.elapsed();
                            if l < Duration::from_secs(1) {
                                lat[id] = Some(l);
                            }
                        }
                    }
                    _ if done.load(Ordering::Relaxed) => {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(1) {
                            return lat;
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    let mut offsets = Vec::new();
    while start.elapsed() < dur && offsets.len() < slots {
        let due = start + Duration::from_millis(offsets.len() as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let id = offsets.len() as u16;
        let now = Instant::now();
        sent_at.lock().unwrap()[usize::from(id)] = Some(now);
        let _ = sock.send(&netctl_bench::dns_query(name, id));
        offsets.push(now - start);
    }
    done.store(true, Ordering::Relaxed);
    let lat = receiver.join().unwrap();
    offsets.into_iter().zip(lat).collect()
}

/// The client's figures in one phase.
struct Probe {
    sent: usize,
    lost: usize,
    p99: Duration,
}

fn summarize<'a>(samples: impl Iterator<Item = &'a Sample>) -> Probe {
    let (mut sent, mut lat) = (0, Vec::new());
    for (_, l) in samples {
        sent += 1;
        lat.extend(*l);
    }
    lat.sort();
    let p99 = lat
        .get((lat.len() as f64 * 0.99) as usize)
        .copied()
        .unwrap_or_default();
    Probe {
        sent,
        lost: sent - lat.len(),
        p99,
    }
}

/// Whether second `t` of a row is a churned one.
fn churned_second(t: Duration) -> bool {
    t.as_secs() % 2 == 1
}

/// The changes: 50 per second in every churned second (an ADD, and a DEL once 25 churned
/// containers live), each followed by how long until the client sees it; and when each
/// change was under way.
struct Churn {
    rate: f64,
    appear: Vec<Duration>,
    vanish: Vec<Duration>,
    busy: Vec<(Duration, Duration)>,
}

/// After a change of churned container `k`: how long until its name answers (`added`) or
/// stops; for the control row, which changes no name, the same polling of a name that stays,
/// and None.
fn follow(
    driver: &Driver,
    sock: &UdpSocket,
    k: usize,
    added: bool,
    id: &mut u16,
) -> Option<Duration> {
    if driver.changes_names() {
        return Some(until(sock, &format!("n{k}"), added, id));
    }
    until(sock, "c1", true, id);
    None
}

fn churn(driver: &Driver, client: &Path, start: Instant, dur: Duration) -> Churn {
    let sock = client_socket(client);
    let mut id = 30_000u16;
    let (mut live, mut k, mut ops) = (VecDeque::new(), 0usize, 0usize);
    let (mut appear, mut vanish, mut busy) = (Vec::new(), Vec::new(), Vec::new());
    for second in 0..dur.as_secs() {
        let from = start + Duration::from_secs(second);
        for i in 0..50 {
            let due = from + Duration::from_millis(20 * i);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let began = start.elapsed();
            if began.as_secs() != second {
                break;
            }
            if !churned_second(began) {
                // The same asking without a change: the quiet phase has this client too.
                until(&sock, "c1", true, &mut id);
                continue;
            }
            if live.len() >= 25 && ops % 2 == 1 {
                let gone = live.pop_front().unwrap();
                driver.del(gone, &live);
                vanish.extend(follow(driver, &sock, gone, false, &mut id));
            } else {
                live.push_back(k);
                driver.add(k, &live);
                appear.extend(follow(driver, &sock, k, true, &mut id));
                k += 1;
            }
            busy.push((began, start.elapsed()));
            ops += 1;
        }
    }
    let rate = ops as f64 / (dur.as_secs() / 2).max(1) as f64;
    while let Some(gone) = live.pop_front() {
        driver.del(gone, &live);
    }
    Churn {
        rate,
        appear,
        vanish,
        busy,
    }
}

pub(super) fn pct(mut v: Vec<Duration>, p: f64) -> String {
    v.sort();
    let d = v
        .get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default();
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One row: `2 * seconds` of quiet and churned seconds taking turns.
fn measure(driver: &Driver, client: &Path, seconds: u32) -> (Probe, Probe, Churn) {
    let dur = Duration::from_secs(2 * u64::from(seconds));
    let start = Instant::now() + Duration::from_millis(100);
    let (samples, changes) = std::thread::scope(|s| {
        let prober = s.spawn(|| probe(client, "c7", start, dur));
        let changes = churn(driver, client, start, dur);
        (prober.join().unwrap(), changes)
    });
    let under_way = |t: Duration| changes.busy.iter().any(|(a, b)| *a <= t && t <= *b);
    let quiet = summarize(
        samples
            .iter()
            .filter(|(t, _)| !churned_second(*t) && !under_way(*t)),
    );
    let busy = summarize(samples.iter().filter(|(t, _)| churned_second(*t)));
    (quiet, busy, changes)
}

/// Rounds of each row: the ratio's median and range are reported, since one round's quiet
/// p99 alone moves by 2x from run to run.
const ROUNDS: usize = 3;

/// The churn table: each server with 1,000 records, `seconds` quiet and `seconds` churned,
/// [`ROUNDS`] times.
pub fn print(scratch: &Path, dnsd: &Path, aardvark: &Path, client: &Path, seconds: u32) {
    let pool: Vec<PathBuf> = (0..30)
        .map(|i| {
            let p = scratch.join(format!("churn-ns-{i}"));
            NetNs::create(&p).unwrap();
            p
        })
        .collect();
    println!("| server | told by | lost, quiet | lost, churn | p99 quiet (ms) | p99 churn (ms) | churn / quiet p99: median (range) of {ROUNDS} | changes/s reached | new name answers after (median / p99 ms) | removed name stops after (median / p99 ms) |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rows = SERVERS.iter().map(|(l, k)| (*l, *k)).chain([
        ("netctl-dnsd", "netctl-direct"),
        ("netctl-dnsd", "netctl-links"),
        ("netctl-dnsd", "netctl-bare"),
    ]);
    let only = std::env::var("DNS_BENCH_ROWS").unwrap_or_default();
    for (label, kind) in rows.filter(|(_, k)| only.is_empty() || only.split(',').any(|o| o == *k)) {
        // The server of `netctl-direct`, `netctl-links` and `netctl-bare` is netctl's.
        let server_kind = kind.split('-').next().unwrap_or(kind);
        let server = start("server", server_kind, scratch, dnsd, aardvark, 1000, client);
        let (driver, told) = driver(kind, scratch, dnsd, aardvark, &pool, server.pid);
        let rounds: Vec<_> = (0..ROUNDS)
            .map(|_| measure(&driver, client, seconds))
            .collect();
        println!("| {label} | {told} | {} |", row(rounds).join(" | "));
        drop(server);
        if let Driver::Netctl(Conflist { run, .. }) = &driver {
            stop_firewall_watcher(run);
        }
    }
    for p in &pool {
        let _ = NetNs::remove(p);
    }
}

/// The driver of row `kind` and how the row says it tells the server.
fn driver(
    kind: &str,
    scratch: &Path,
    dnsd: &Path,
    aardvark: &Path,
    pool: &[PathBuf],
    server: u32,
) -> (Driver, &'static str) {
    let netctl = |dns| {
        Driver::Netctl(Conflist {
            bins: dnsd.parent().unwrap().to_path_buf(),
            run: scratch.join("run"),
            pool: pool.to_vec(),
            dns,
        })
    };
    match kind {
        "netctl-direct" => (
            Driver::NetctlDirect {
                paths: netctl_dnsrecords::DnsPaths::new(&scratch.join("run")),
                pool: pool.to_vec(),
            },
            "records written in this process (no plugin processes)",
        ),
        "netctl-links" => (
            netctl(false),
            "control: netctl-bridge ADD/DEL alone (links come and go, no name changes)",
        ),
        "netctl-bare" => (
            Driver::BareLinks(pool.to_vec()),
            "bare links: a veth pair per change made from this process (no plugin process, no name changes)",
        ),
        "netctl" => (netctl(true), "netctl-bridge + netctl-dns ADD/DEL"),
        "aardvark" => (
            Driver::Netavark(Netavark {
                netavark: aardvark.with_file_name("netavark"),
                aardvark: aardvark.to_path_buf(),
                config: scratch.join("netavark"),
                pool: pool.to_vec(),
            }),
            "netavark setup/teardown",
        ),
        _ => (
            Driver::Hosts {
                file: scratch.join("hosts"),
                pid: server,
            },
            "hosts file + SIGHUP",
        ),
    }
}

/// A row's cells from its rounds: lost queries summed, p99s and the ratio as the median
/// round (the ratio with its range), the mean rate, the change delays of all rounds.
fn row(rounds: Vec<(Probe, Probe, Churn)>) -> Vec<String> {
    let ms = |secs: f64| format!("{:.2}", secs * 1000.0);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let secs = |f: fn(&(Probe, Probe, Churn)) -> Duration| {
        median(rounds.iter().map(|r| f(r).as_secs_f64()).collect())
    };
    let ratios: Vec<f64> = rounds
        .iter()
        .map(|(q, b, _)| b.p99.as_secs_f64() / q.p99.as_secs_f64().max(1e-9))
        .collect();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let sum = |f: fn(&Probe) -> usize, quiet: bool| {
        rounds
            .iter()
            .map(|(q, b, _)| f(if quiet { q } else { b }))
            .sum::<usize>()
    };
    let pooled = |f: fn(&Churn) -> &Vec<Duration>| -> Vec<Duration> {
        rounds.iter().flat_map(|(_, _, c)| f(c).clone()).collect()
    };
    let delays = |v: Vec<Duration>| match v.is_empty() {
        true => "–".to_string(),
        false => format!("{} / {}", pct(v.clone(), 0.5), pct(v, 0.99)),
    };
    vec![
        format!("{} of {}", sum(|p| p.lost, true), sum(|p| p.sent, true)),
        format!("{} of {}", sum(|p| p.lost, false), sum(|p| p.sent, false)),
        ms(secs(|r| r.0.p99)),
        ms(secs(|r| r.1.p99)),
        format!("{:.2}x ({lo:.2}–{hi:.2})", median(ratios.clone())),
        format!(
            "{:.0}",
            rounds.iter().map(|r| r.2.rate).sum::<f64>() / rounds.len().max(1) as f64
        ),
        delays(pooled(|c| &c.appear)),
        delays(pooled(|c| &c.vanish)),
    ]
}
