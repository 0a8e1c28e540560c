//! Answers while containers come and go: a client in a container asks a name that stays
//! registered at 1,000 queries/s, first quietly, then while 50 containers per second are
//! added and removed, each the way its runtime does it: netctl through the `netctl-dns`
//! plugin (ADD and DEL with a prevResult, in a namespace of its own), aardvark-dns by
//! rewriting its network file and SIGHUP (what netavark's setup and teardown do), dnsmasq by
//! rewriting a hosts file and SIGHUP (what podman's dnsname plugin did). Measured: the
//! client's lost queries and p99 in both phases, the rate of changes reached, and how long
//! after a change returns the new name answers and the removed one stops.

use std::collections::VecDeque;
use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netctl_net::NetNs;

use super::{containers, start, GATEWAY, SERVERS};

/// How a runtime tells its server of a container that came or went.
enum Driver {
    Netctl {
        plugin: PathBuf,
        run: PathBuf,
        pool: Vec<PathBuf>,
    },
    /// The plugin's own two steps (write the record, tell the server), in this process: what
    /// the server costs without a plugin process per change competing for the CPUs.
    NetctlDirect {
        paths: netctl_dnsrecords::DnsPaths,
        pool: Vec<PathBuf>,
    },
    /// Rewrite `file` with the base and the live churned entries, then SIGHUP `pid`.
    Rewrite {
        file: PathBuf,
        aardvark: bool,
        pid: u32,
    },
}

fn churn_ip(k: usize) -> String {
    format!("10.89.{}.{}", 100 + (k / 250) % 100, 2 + k % 250)
}

impl Driver {
    fn add(&self, k: usize, live: &VecDeque<usize>) {
        match self {
            Driver::Netctl { plugin, run, pool } => {
                let prev = serde_json::json!({"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "sandbox": pool[k % pool.len()]}],
                    "ips": [{"address": format!("{}/16", churn_ip(k)), "gateway": GATEWAY, "interface": 0}]});
                let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "benchnet",
                    "type": "netctl-dns", "runDir": run, "prevResult": prev});
                cni(plugin, "ADD", k, &pool[k % pool.len()], &conf.to_string());
            }
            Driver::NetctlDirect { paths, pool } => {
                let r = netctl_dnsrecords::Record {
                    network: "benchnet".into(),
                    container_id: format!("n{k}000000000000"),
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
            Driver::Rewrite { .. } => self.rewrite(live),
        }
    }

    fn del(&self, k: usize, live: &VecDeque<usize>) {
        match self {
            Driver::Netctl { plugin, run, pool } => {
                let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "benchnet",
                    "type": "netctl-dns", "runDir": run});
                cni(plugin, "DEL", k, &pool[k % pool.len()], &conf.to_string());
            }
            Driver::NetctlDirect { paths, .. } => {
                let path = paths.record_path("benchnet", &format!("n{k}000000000000"), "eth0");
                std::fs::remove_file(&path).unwrap();
                paths.notify(&path).unwrap();
            }
            Driver::Rewrite { .. } => self.rewrite(live),
        }
    }

    fn rewrite(&self, live: &VecDeque<usize>) {
        let Driver::Rewrite {
            file,
            aardvark,
            pid,
        } = self
        else {
            return;
        };
        let mut text = if *aardvark {
            format!("{GATEWAY}\n")
        } else {
            String::new()
        };
        let base = containers(1000)
            .into_iter()
            .map(|(n, ip, aliases)| (n, ip, aliases.join(",")));
        let churned = live
            .iter()
            .map(|k| (format!("n{k}"), churn_ip(*k), String::new()));
        for (name, ip, aliases) in base.chain(churned) {
            if *aardvark {
                let names = if aliases.is_empty() {
                    name.clone()
                } else {
                    format!("{name},{aliases}")
                };
                text += &format!("{name}000000000000 {ip}  {names}\n");
            } else {
                text += &format!("{ip} {name} {}\n", aliases.replace(',', " "));
            }
        }
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, file).unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status();
    }
}

pub(super) fn cni(plugin: &Path, command: &str, k: usize, netns: &Path, conf: &str) {
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("n{k}000000000000"))
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", format!("K8S_POD_NAME=n{k}"))
        .env("CNI_PATH", plugin.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "netctl-dns {command} n{k}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
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

/// The steady client's figures.
struct Probe {
    sent: usize,
    lost: usize,
    p99: Duration,
}

/// Asks `name` every millisecond for `dur`; a reply not back within a second is lost.
fn probe(client: &Path, name: &str, dur: Duration) -> Probe {
    let sock = client_socket(client);
    let rx = sock.try_clone().unwrap();
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; 65536]));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sent_at, done) = (sent_at.clone(), done.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
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
                                lat.push(l);
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
    let start = Instant::now();
    let mut sent = 0usize;
    while start.elapsed() < dur {
        let due = start + Duration::from_millis(sent as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let id = (sent % 65536) as u16;
        sent_at.lock().unwrap()[usize::from(id)] = Some(Instant::now());
        let _ = sock.send(&netctl_bench::dns_query(name, id));
        sent += 1;
    }
    done.store(true, Ordering::Relaxed);
    let mut lat = receiver.join().unwrap();
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

/// The changes: 50 per second for `dur` (an ADD, and a DEL once 25 churned containers
/// live), each followed by how long until the other side sees it.
struct Churn {
    rate: f64,
    appear: Vec<Duration>,
    vanish: Vec<Duration>,
}

fn churn(driver: &Driver, client: &Path, dur: Duration) -> Churn {
    let sock = client_socket(client);
    let mut id = 30_000u16;
    let (mut live, mut k, mut ops) = (VecDeque::new(), 0usize, 0usize);
    let (mut appear, mut vanish) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < dur {
        let due = start + Duration::from_millis(20 * ops as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if live.len() >= 25 && ops % 2 == 1 {
            let gone = live.pop_front().unwrap();
            driver.del(gone, &live);
            vanish.push(until(&sock, &format!("n{gone}"), false, &mut id));
        } else {
            live.push_back(k);
            driver.add(k, &live);
            appear.push(until(&sock, &format!("n{k}"), true, &mut id));
            k += 1;
        }
        ops += 1;
    }
    Churn {
        rate: ops as f64 / start.elapsed().as_secs_f64(),
        appear,
        vanish,
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

/// The churn table: each server with 1,000 records, `seconds` quiet then `seconds` of churn.
pub fn print(scratch: &Path, dnsd: &Path, aardvark: &Path, client: &Path, seconds: u32) {
    let dur = Duration::from_secs(u64::from(seconds));
    let pool: Vec<PathBuf> = (0..30)
        .map(|i| {
            let p = scratch.join(format!("churn-ns-{i}"));
            NetNs::create(&p).unwrap();
            p
        })
        .collect();
    println!("| server | lost, quiet | lost, churn | p99 quiet (ms) | p99 churn (ms) | churn / quiet p99 | changes/s reached | new name answers after (median / p99 ms) | removed name stops after (median / p99 ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rows = SERVERS.iter().map(|(l, k)| (l.to_string(), *k)).chain([(
        "netctl-dnsd, records written in-process (no plugin process per change)".to_string(),
        "netctl-direct",
    )]);
    for (label, kind) in rows {
        let server_kind = if kind == "netctl-direct" {
            "netctl"
        } else {
            kind
        };
        let server = start("server", server_kind, scratch, dnsd, aardvark, 1000, client);
        let driver = match kind {
            "netctl-direct" => Driver::NetctlDirect {
                paths: netctl_dnsrecords::DnsPaths::new(&scratch.join("run")),
                pool: pool.clone(),
            },
            "netctl" => Driver::Netctl {
                plugin: dnsd.with_file_name("netctl-dns"),
                run: scratch.join("run"),
                pool: pool.clone(),
            },
            "aardvark" => Driver::Rewrite {
                file: scratch.join("aardvark").join("benchnet"),
                aardvark: true,
                pid: server.pid,
            },
            _ => Driver::Rewrite {
                file: scratch.join("hosts"),
                aardvark: false,
                pid: server.pid,
            },
        };
        let quiet = probe(client, "c7", dur);
        let (busy, changes) = std::thread::scope(|s| {
            let prober = s.spawn(|| probe(client, "c7", dur));
            let changes = churn(&driver, client, dur);
            (prober.join().unwrap(), changes)
        });
        println!(
            "| {label} | {} of {} | {} of {} | {:.2} | {:.2} | {:.2}x | {:.0} | {} / {} | {} / {} |",
            quiet.lost,
            quiet.sent,
            busy.lost,
            busy.sent,
            quiet.p99.as_secs_f64() * 1000.0,
            busy.p99.as_secs_f64() * 1000.0,
            busy.p99.as_secs_f64() / quiet.p99.as_secs_f64().max(1e-9),
            changes.rate,
            pct(changes.appear.clone(), 0.5),
            pct(changes.appear, 0.99),
            pct(changes.vanish.clone(), 0.5),
            pct(changes.vanish, 0.99),
        );
        drop(server);
    }
    for p in &pool {
        let _ = NetNs::remove(p);
    }
}
