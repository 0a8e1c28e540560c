//! ADD (and DEL) of a container with one published port, with 0 and with 1,000 ports
//! already published on the host: `netctl-bridge` with its nftables backend and with its
//! iptables backend (ports are map elements or rules in one chain of their own), against the
//! reference `bridge` + `portmap` chain (a chain per container, jumped to from shared chains).
//! The 1,000 ports belong to 100 background containers with 10 ports each. Each side runs in
//! a network namespace of its own and the probes of the three sides take turns, as in
//! bridge-bench; the whole run is in a private network and mount namespace.
//!
//! Usage: portmap-bench OUR_BIN_DIR REFERENCE_BIN_DIR [ITERATIONS]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_bench::{median, ms, run_plugin};
use netctl_net::NetNs;
use serde_json::{json, Value};

const BACKGROUND: usize = 100;
const PORTS_EACH: u16 = 10;

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Nftables,
    Iptables,
    Portmap,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Nftables => "netctl-bridge (nftables)",
            Side::Iptables => "netctl-bridge (iptables)",
            Side::Portmap => "reference bridge + portmap",
        }
    }
}

struct Host {
    side: Side,
    ns: NetNs,
    dir: PathBuf,
    bins: PathBuf,
    adds: Vec<Duration>,
    dels: Vec<Duration>,
}

fn mappings(first: u16, count: u16) -> Value {
    let list: Vec<Value> = (0..count)
        .map(|k| json!({"hostPort": first + k, "containerPort": 80 + k, "protocol": "tcp"}))
        .collect();
    json!({ "portMappings": list })
}

impl Host {
    fn new(scratch: &Path, side: Side, ours: &Path, reference: &Path) -> Host {
        let name = side.label().replace([' ', '(', ')', '+'], "_");
        let dir = scratch.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Host {
            side,
            ns: NetNs::create(&scratch.join(format!("{name}.host"))).unwrap(),
            dir,
            bins: if side == Side::Portmap {
                reference.to_path_buf()
            } else {
                ours.to_path_buf()
            },
            adds: Vec::new(),
            dels: Vec::new(),
        }
    }

    fn bridge_conf(&self, runtime: &Value) -> Value {
        let d = &self.dir;
        match self.side {
            Side::Portmap => json!({"cniVersion": "1.0.0", "name": "pm", "type": "bridge",
                "bridge": "rbench0", "isGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "subnet": "10.78.0.0/16", "dataDir": d.join("ipam")}}),
            side => json!({"cniVersion": "1.0.0", "name": "pm", "type": "netctl-bridge",
                "bridge": "nbench0", "isGateway": true, "ipMasq": true, "runDir": d.join("run"),
                "firewallBackend": if side == Side::Nftables { "nftables" } else { "iptables" },
                "firewallSelfHeal": false,
                "capabilities": {"portMappings": true}, "runtimeConfig": runtime,
                "ipam": {"type": "netctl-ipam", "subnet": "10.77.0.0/16", "dataDir": d.join("ipam")}}),
        }
    }

    /// ADD (or DEL) of container `id` with `runtime`'s ports, through the side's chain.
    fn call(&self, command: &str, id: &str, netns: &Path, runtime: &Value) -> Duration {
        let path = netns.to_str().unwrap();
        let bridge = self.bins.join(match self.side {
            Side::Portmap => "bridge",
            _ => "netctl-bridge",
        });
        let conf = self.bridge_conf(runtime).to_string();
        self.ns
            .run(|| {
                if self.side != Side::Portmap {
                    return run_plugin(&bridge, command, id, path, &conf).0;
                }
                let portmap = self.bins.join("portmap");
                let mut pm = json!({"cniVersion": "1.0.0", "name": "pm", "type": "portmap",
                    "capabilities": {"portMappings": true}, "runtimeConfig": runtime});
                if command == "ADD" {
                    let (a, out) = run_plugin(&bridge, "ADD", id, path, &conf);
                    pm["prevResult"] = serde_json::from_str(&out).unwrap();
                    a + run_plugin(&portmap, "ADD", id, path, &pm.to_string()).0
                } else {
                    run_plugin(&portmap, "DEL", id, path, &pm.to_string()).0
                        + run_plugin(&bridge, "DEL", id, path, &conf).0
                }
            })
            .unwrap()
    }

    fn netns(&self, id: &str) -> PathBuf {
        self.dir.join(format!("ns-{id}"))
    }

    /// Publishes 1,000 ports with 100 background containers (not timed).
    fn grow(&self) {
        for i in 0..BACKGROUND {
            let id = format!("bg{i}");
            let ns = self.netns(&id);
            NetNs::create(&ns).unwrap();
            self.call(
                "ADD",
                &id,
                &ns,
                &mappings(20000 + i as u16 * PORTS_EACH, PORTS_EACH),
            );
        }
    }

    fn probe(&mut self, id: &str) {
        let ns = self.netns(id);
        NetNs::create(&ns).unwrap();
        let one = mappings(8080, 1);
        self.adds.push(self.call("ADD", id, &ns, &one));
        self.dels.push(self.call("DEL", id, &ns, &one));
        NetNs::remove(&ns).unwrap();
    }

    fn take(&mut self) -> (Duration, Duration) {
        (
            median(std::mem::take(&mut self.adds)),
            median(std::mem::take(&mut self.dels)),
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: portmap-bench OUR_BIN_DIR REFERENCE_BIN_DIR [ITERATIONS]";
    let ours = PathBuf::from(args.get(1).expect(usage));
    let reference = PathBuf::from(args.get(2).expect(usage));
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    netctl_bench::enter_private_namespaces();
    let scratch = std::env::temp_dir().join(format!("netctl-portmap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut hosts: Vec<Host> = [Side::Nftables, Side::Iptables, Side::Portmap]
        .into_iter()
        .map(|s| Host::new(&scratch, s, &ours, &reference))
        .collect();
    let mut levels = Vec::new();
    for (round, published) in [0usize, 1000].into_iter().enumerate() {
        if published > 0 {
            eprintln!("publishing {published} ports on each side");
            hosts.iter().for_each(Host::grow);
        }
        for i in 0..iterations {
            let n = hosts.len();
            for k in 0..n {
                // Whoever goes first takes turns.
                hosts[(k + i) % n].probe(&format!("probe{round}x{i}"));
            }
        }
        levels.push(hosts.iter_mut().map(Host::take).collect::<Vec<_>>());
    }
    println!(
        "| ports already published | {} |",
        hosts
            .iter()
            .map(|h| format!("{} ADD / DEL (ms)", h.side.label()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---:|{}", "---:|".repeat(hosts.len()));
    for (published, row) in [0, 1000].iter().zip(&levels) {
        let cells: Vec<String> = row
            .iter()
            .map(|(a, d)| format!("{} / {}", ms(*a), ms(*d)))
            .collect();
        println!("| {published} | {} |", cells.join(" | "));
    }
    println!();
    println!("Growth of ADD from 0 to 1,000 published ports (goal for netctl: within 1.3x), and the reference's ADD over netctl's at 1,000:");
    println!();
    println!("| side | ADD at 1,000 / ADD at 0 | reference / this side at 1,000 |");
    println!("|---|---:|---:|");
    let theirs = levels[1][2].0.as_secs_f64();
    for (k, h) in hosts.iter().enumerate() {
        let growth = levels[1][k].0.as_secs_f64() / levels[0][k].0.as_secs_f64();
        println!(
            "| {} | {growth:.2}x | {:.1}x |",
            h.side.label(),
            theirs / levels[1][k].0.as_secs_f64()
        );
    }
    for h in &hosts {
        let _ = NetNs::remove(h.ns.path());
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
