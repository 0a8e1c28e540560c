//! What the server costs as a host grows: resident memory by record count (and per record),
//! what each container's own 127.0.0.11 sockets add, and how soon the first container of a
//! host resolves.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netctl_dnsrecords::{DnsPaths, Record};
use netctl_net::NetNs;

use super::churn::{cni, pct, socket_in, until};
use super::{container_ip, dnsperf, fds, rss_kib, start_spread, status_field, GATEWAY, SERVERS};

/// Record counts of the memory table, and the networks netctl-dnsd spreads each over.
const SIZES: [(usize, usize); 3] = [(1_000, 1), (10_000, 1), (100_000, 1_000)];

/// RSS of each server with 1,000, 10,000 and 100,000 records, and the growth per record.
pub fn print_memory(scratch: &Path, dnsd: &Path, aardvark: &Path, client: &Path) {
    println!("| server | RSS, 1,000 records (MiB) | RSS, 10,000 records (MiB) | RSS, 100,000 records (MiB) | growth per record, 10,000 to 100,000 (bytes) |");
    println!("|---|---:|---:|---:|---:|");
    for (label, kind) in SERVERS {
        let mut rss = Vec::new();
        for (n, networks) in SIZES {
            let networks = if kind == "netctl" { networks } else { 1 };
            let server = start_spread(label, kind, scratch, dnsd, aardvark, (n, networks), client);
            let _ = dnsperf(client, GATEWAY, server.pid, "web", 1, scratch);
            rss.push(rss_kib(server.pid) as f64);
        }
        let spread = if kind == "netctl" {
            " (100,000 on 1,000 networks)"
        } else {
            ""
        };
        println!(
            "| {label}{spread} | {:.1} | {:.1} | {:.1} | {:.0} |",
            rss[0] / 1024.0,
            rss[1] / 1024.0,
            rss[2] / 1024.0,
            (rss[2] - rss[1]) * 1024.0 / 90_000.0
        );
    }
}

/// netctl-dnsd with 1,000 records, then with each of `count` containers registered in a
/// namespace of its own (its UDP and TCP sockets on 127.0.0.11 there, as a runtime's ADD
/// makes them): RSS, threads and descriptors before and after.
pub fn print_listeners(scratch: &Path, dnsd: &Path, aardvark: &Path, client: &Path, count: usize) {
    let server = start_spread(
        "netctl-dnsd",
        "netctl",
        scratch,
        dnsd,
        aardvark,
        (1000, 1),
        client,
    );
    let row = |what: String| {
        println!(
            "| {what} | {:.1} | {} | {} |",
            rss_kib(server.pid) as f64 / 1024.0,
            status_field(server.pid, "Threads:"),
            fds(server.pid)
        )
    };
    println!("| netctl-dnsd, 1,000 records | RSS (MiB) | threads | descriptors |");
    println!("|---|---:|---:|---:|");
    row("no container namespaces".into());
    let before = rss_kib(server.pid);
    let paths = DnsPaths::new(&scratch.join("run"));
    let spaces: Vec<PathBuf> = (0..count)
        .map(|i| {
            let ns = scratch.join(format!("listener-ns-{i}"));
            NetNs::create(&ns).unwrap();
            let r = Record {
                network: "benchnet".into(),
                container_id: format!("l{i}000000000000"),
                ifname: "eth0".into(),
                name: Some(format!("l{i}")),
                ips: vec![container_ip(50_000 + i).into()],
                netns: Some(ns.clone()),
                ..Default::default()
            };
            paths.notify(&paths.write(&r).unwrap()).unwrap();
            ns
        })
        .collect();
    row(format!(
        "{count} containers, each its own 127.0.0.11 (UDP + TCP)"
    ));
    let per = (rss_kib(server.pid).saturating_sub(before)) as f64 / count as f64;
    println!();
    println!("Per container namespace: {per:.2} KiB of RSS, no thread and no task (one thread waits on every socket).");
    drop(server);
    for ns in &spaces {
        let _ = NetNs::remove(ns);
    }
}

/// The first container on a host with no DNS server yet: ADD through the `netctl-dns`
/// plugin (which starts the server and waits for it), then how soon its name answers on
/// 127.0.0.11 in its namespace, from the ADD's start; `rounds` times, the server gone
/// before each.
pub fn print_startup(scratch: &Path, dnsd: &Path, rounds: usize) {
    let plugin = dnsd.with_file_name("netctl-dns");
    let run = scratch.join("startup-run");
    let paths = DnsPaths::new(&run);
    let ns = scratch.join("startup-ns");
    NetNs::create(&ns).unwrap();
    let mut id = 50_000u16;
    let (mut adds, mut firsts) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let k = 900_000 + round;
        let prev = serde_json::json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": ns}],
            "ips": [{"address": format!("{}/16", container_ip(60_000 + round)), "gateway": GATEWAY, "interface": 0}]});
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "benchnet",
            "type": "netctl-dns", "runDir": run, "prevResult": prev});
        let began = Instant::now();
        cni(&plugin, "ADD", k, &ns, &conf.to_string());
        let add = began.elapsed();
        let sock = socket_in(&ns, "127.0.0.11");
        let answered = until(&sock, &format!("n{k}"), true, &mut id);
        adds.push(add);
        firsts.push(add + answered);
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "benchnet",
            "type": "netctl-dns", "runDir": run});
        cni(&plugin, "DEL", k, &ns, &conf.to_string());
        let deadline = Instant::now() + Duration::from_secs(5);
        while paths.supervisor_pid_file().exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!("| first ADD on a host: ADD returned (median / max ms) | its name first answered on 127.0.0.11, from the ADD's start (median / max ms) |");
    println!("|---:|---:|");
    println!(
        "| {} / {} | {} / {} |",
        pct(adds.clone(), 0.5),
        pct(adds, 1.0),
        pct(firsts.clone(), 0.5),
        pct(firsts, 1.0)
    );
    let _ = NetNs::remove(&ns);
}
