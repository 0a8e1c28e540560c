//! ADD+DEL of `netctl-ipam` against the reference `host-local`, on the same /16, with 10,
//! 1,000 and 10,000 addresses already taken, in one run. Prints a Markdown table of medians
//! and ratios.
//!
//! Usage: ipam-bench OURS_BINARY HOST_LOCAL_BINARY [ITERATIONS]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use netctl_bench::{median, ms, time_plugin};
use netctl_ipam::{Allocator, IpamConfig, Owner};
use serde_json::json;

const SUBNET: &str = "10.64.0.0/16";

fn conf(ty: &str, data: &Path) -> String {
    json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
           "ipam": {"type": ty, "ranges": [[{"subnet": SUBNET}]], "dataDir": data}})
    .to_string()
}

/// Takes `n` addresses in our store through the allocator itself.
fn fill_ours(data: &Path, n: u32) {
    let cfg: IpamConfig = serde_json::from_value(json!({"type": "netctl-ipam",
        "ranges": [[{"subnet": SUBNET}]], "dataDir": data}))
    .unwrap();
    let alloc = Allocator::from_config("bench", &cfg).unwrap();
    for i in 0..n {
        let owner = Owner {
            container_id: format!("fill{i}"),
            ifname: "eth0".into(),
        };
        alloc.allocate(&owner, &[]).unwrap();
    }
}

/// Takes `n` addresses in host-local's on-disk format: one file per address holding
/// `<container id>\r\n<ifname>`, and `last_reserved_ip.0`.
fn fill_host_local(data: &Path, n: u32) {
    let dir = data.join("bench");
    fs::create_dir_all(&dir).unwrap();
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 2));
    for i in 0..n {
        let ip = Ipv4Addr::from(base + i);
        fs::write(dir.join(ip.to_string()), format!("fill{i}\r\neth0")).unwrap();
    }
    if n > 0 {
        fs::write(
            dir.join("last_reserved_ip.0"),
            Ipv4Addr::from(base + n - 1).to_string(),
        )
        .unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ours = PathBuf::from(
        args.get(1)
            .expect("usage: ipam-bench OURS HOST_LOCAL [ITERATIONS]"),
    );
    let theirs = PathBuf::from(
        args.get(2)
            .expect("usage: ipam-bench OURS HOST_LOCAL [ITERATIONS]"),
    );
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let scratch = std::env::temp_dir().join(format!("netctl-ipam-bench-{}", std::process::id()));
    println!("| addresses taken | netctl-ipam ADD+DEL (ms) | host-local ADD+DEL (ms) | host-local / netctl-ipam |");
    println!("|---:|---:|---:|---:|");
    for fill in [10u32, 1_000, 10_000] {
        let (our_dir, their_dir) = (
            scratch.join(format!("ours-{fill}")),
            scratch.join(format!("theirs-{fill}")),
        );
        fill_ours(&our_dir, fill);
        fill_host_local(&their_dir, fill);
        // Let the filling's writeback finish so it does not land inside the measurement.
        let _ = std::process::Command::new("sync").status();
        let (our_conf, their_conf) = (
            conf("netctl-ipam", &our_dir),
            conf("host-local", &their_dir),
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..iterations {
            let id = format!("bench{i}");
            // Alternate the order so neither side always runs on a warmer cache.
            let run = |bin: &Path, conf: &str| {
                time_plugin(bin, "ADD", &id, "/proc/self/ns/net", conf)
                    + time_plugin(bin, "DEL", &id, "/proc/self/ns/net", conf)
            };
            if i % 2 == 0 {
                a.push(run(&ours, &our_conf));
                b.push(run(&theirs, &their_conf));
            } else {
                b.push(run(&theirs, &their_conf));
                a.push(run(&ours, &our_conf));
            }
        }
        let (ma, mb) = (median(a), median(b));
        println!(
            "| {fill} | {} | {} | {:.1}x |",
            ms(ma),
            ms(mb),
            mb.as_secs_f64() / ma.as_secs_f64()
        );
    }
    let _ = fs::remove_dir_all(&scratch);
}
