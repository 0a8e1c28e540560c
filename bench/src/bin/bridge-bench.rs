//! ADD and DEL of `netctl-bridge` (+ in-process `netctl-ipam`) against the reference `bridge`
//! (+ `host-local`), both with `ipMasq`, with 1, 100 and 1,000 containers already attached to
//! the network. Each side runs in a fresh network namespace of its own; the whole benchmark
//! runs in a private network and mount namespace, so the machine is untouched.
//!
//! Usage: bridge-bench OUR_BIN_DIR REFERENCE_BIN_DIR [ITERATIONS] [CSV]
//! With CSV, every level's medians are also written there (for bench/plot.gp).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_bench::{median, ms, time_plugin};
use netctl_net::NetNs;
use serde_json::json;

struct Side {
    label: &'static str,
    plugin: PathBuf,
    conf: String,
}

fn sides(ours: &Path, reference: &Path, scratch: &Path) -> [Side; 2] {
    let our = json!({"cniVersion": "1.0.0", "name": "benchnet", "type": "netctl-bridge",
        "bridge": "nbench0", "isGateway": true, "ipMasq": true, "runDir": scratch.join("run"),
        "ipam": {"type": "netctl-ipam", "subnet": "10.77.0.0/16", "dataDir": scratch.join("ours")}});
    let refc = json!({"cniVersion": "1.0.0", "name": "benchnet", "type": "bridge",
        "bridge": "rbench0", "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.78.0.0/16", "dataDir": scratch.join("theirs")}});
    [
        Side {
            label: "netctl-bridge",
            plugin: ours.join("netctl-bridge"),
            conf: our.to_string(),
        },
        Side {
            label: "reference bridge",
            plugin: reference.join("bridge"),
            conf: refc.to_string(),
        },
    ]
}

fn netns_path(scratch: &Path, id: &str) -> PathBuf {
    scratch.join("netns").join(id)
}

/// Attaches background containers `from..to` (not timed).
fn grow(side: &Side, scratch: &Path, from: usize, to: usize) {
    for i in from..to {
        let id = format!("bg{i}");
        let ns = netns_path(scratch, &id);
        NetNs::create(&ns).unwrap();
        time_plugin(&side.plugin, "ADD", &id, ns.to_str().unwrap(), &side.conf);
    }
}

/// Times ADD and DEL of fresh probe containers.
fn probe(side: &Side, scratch: &Path, round: usize, iterations: usize) -> (Duration, Duration) {
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for i in 0..iterations {
        let id = format!("probe{round}x{i}");
        let ns = netns_path(scratch, &id);
        NetNs::create(&ns).unwrap();
        let path = ns.to_str().unwrap();
        adds.push(time_plugin(&side.plugin, "ADD", &id, path, &side.conf));
        dels.push(time_plugin(&side.plugin, "DEL", &id, path, &side.conf));
        NetNs::remove(&ns).unwrap();
    }
    (median(adds), median(dels))
}

/// The medians of one level: (netctl ADD, netctl DEL, reference ADD, reference DEL).
fn level_medians(
    rows: &[(&str, usize, Duration, Duration)],
    level: usize,
) -> Option<(Duration, Duration, Duration, Duration)> {
    let find = |label: &str| {
        rows.iter()
            .find(|r| r.0 == label && r.1 == level)
            .map(|r| (r.2, r.3))
    };
    let ((oa, od), (ra, rd)) = (find("netctl-bridge")?, find("reference bridge")?);
    Some((oa, od, ra, rd))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bridge-bench OUR_BIN_DIR REFERENCE_BIN_DIR [ITERATIONS]";
    let ours = PathBuf::from(args.get(1).expect(usage));
    let reference = PathBuf::from(args.get(2).expect(usage));
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let csv = args.get(4).map(PathBuf::from);
    netctl_bench::enter_private_namespaces();
    let scratch = std::env::temp_dir().join(format!("netctl-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("netns")).unwrap();
    let levels = [1usize, 100, 250, 500, 750, 1000];
    let mut rows = Vec::new();
    for side in sides(&ours, &reference, &scratch) {
        let mut attached = 0;
        for (round, &level) in levels.iter().enumerate() {
            grow(&side, &scratch, attached, level);
            attached = level;
            // Let the kernel's deferred work for the new links (address setup, timers) finish.
            std::thread::sleep(Duration::from_secs(3));
            let (add, del) = probe(&side, &scratch, round, iterations);
            rows.push((side.label, level, add, del));
        }
        eprintln!("{}: done, cleaning up", side.label);
        for i in 0..attached {
            let ns = netns_path(&scratch, &format!("bg{i}"));
            let _ = NetNs::remove(&ns);
        }
    }
    println!("| containers attached | netctl ADD (ms) | reference ADD (ms) | ADD ratio | netctl DEL (ms) | reference DEL (ms) | DEL ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &level in &levels {
        if let Some((oa, od, ra, rd)) = level_medians(&rows, level) {
            println!(
                "| {level} | {} | {} | {:.1}x | {} | {} | {:.1}x |",
                ms(oa),
                ms(ra),
                ra.as_secs_f64() / oa.as_secs_f64(),
                ms(od),
                ms(rd),
                rd.as_secs_f64() / od.as_secs_f64()
            );
        }
    }
    if let Some(csv) = csv {
        let mut text = String::from("attached netctl_add reference_add netctl_del reference_del\n");
        for &level in &levels {
            if let Some((oa, od, ra, rd)) = level_medians(&rows, level) {
                text += &format!("{level} {} {} {} {}\n", ms(oa), ms(ra), ms(od), ms(rd));
            }
        }
        std::fs::write(&csv, text).unwrap();
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
