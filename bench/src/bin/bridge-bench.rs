//! ADD and DEL of `netctl-bridge` (+ in-process `netctl-ipam`) against the reference `bridge`
//! (+ `host-local`), both with `ipMasq`, with 1 to 1,000 containers already attached to the
//! network, in one run. The whole benchmark runs in a private network and mount namespace,
//! so the machine is untouched.
//!
//! Each side gets two "hosts" (network namespaces of their own, each with its own bridge):
//! a grown one, which gets more containers at every level, and a base one that keeps one
//! container. At every level the probes of all four hosts take turns, one container at a
//! time, so each comparison (netctl against the reference, a full network against one with
//! a single container) is measured over the same stretch of time: on a virtual machine
//! whose speed drifts by a third from minute to minute, ratios of medians taken minutes
//! apart say more about the drift than about the plugins.
//!
//! Usage: bridge-bench OUR_BIN_DIR REFERENCE_BIN_DIR [ITERATIONS] [CSV]
//! With CSV, every level's medians are also written there (for bench/plot.gp).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_bench::{median, ms, time_plugin};
use netctl_net::NetNs;
use serde_json::json;

const LEVELS: [usize; 6] = [1, 100, 250, 500, 750, 1000];

/// One network on a host of its own, and what its probes measured at the current level.
struct Host {
    name: String,
    plugin: PathBuf,
    conf: String,
    ns: NetNs,
    attached: usize,
    adds: Vec<Duration>,
    dels: Vec<Duration>,
}

impl Host {
    fn new(scratch: &Path, name: &str, ours: bool, bins: &Path) -> Host {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = if ours {
            json!({"cniVersion": "1.0.0", "name": "benchnet", "type": "netctl-bridge",
                "bridge": "nbench0", "isGateway": true, "ipMasq": true, "runDir": dir.join("run"),
                "ipam": {"type": "netctl-ipam", "subnet": "10.77.0.0/16", "dataDir": dir.join("ipam")}})
        } else {
            json!({"cniVersion": "1.0.0", "name": "benchnet", "type": "bridge",
                "bridge": "rbench0", "isGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "subnet": "10.78.0.0/16", "dataDir": dir.join("ipam")}})
        };
        Host {
            name: name.into(),
            plugin: bins.join(if ours { "netctl-bridge" } else { "bridge" }),
            conf: conf.to_string(),
            ns: NetNs::create(&scratch.join(format!("{name}.host"))).unwrap(),
            attached: 0,
            adds: Vec::new(),
            dels: Vec::new(),
        }
    }

    fn netns(&self, scratch: &Path, id: &str) -> PathBuf {
        scratch.join("netns").join(format!("{}-{id}", self.name))
    }

    /// Attaches background containers up to `level` (not timed).
    fn grow(&mut self, scratch: &Path, level: usize) {
        for i in self.attached..level {
            let id = format!("bg{i}");
            let ns = self.netns(scratch, &id);
            NetNs::create(&ns).unwrap();
            let (plugin, conf) = (&self.plugin, &self.conf);
            self.ns
                .run(|| time_plugin(plugin, "ADD", &id, ns.to_str().unwrap(), conf))
                .unwrap();
        }
        self.attached = self.attached.max(level);
    }

    /// Times ADD and DEL of one fresh probe container.
    fn probe(&mut self, scratch: &Path, id: &str) {
        let ns = self.netns(scratch, id);
        NetNs::create(&ns).unwrap();
        let path = ns.to_str().unwrap();
        let (plugin, conf) = (&self.plugin, &self.conf);
        let (add, del) = self
            .ns
            .run(|| {
                let add = time_plugin(plugin, "ADD", id, path, conf);
                (add, time_plugin(plugin, "DEL", id, path, conf))
            })
            .unwrap();
        NetNs::remove(&ns).unwrap();
        self.adds.push(add);
        self.dels.push(del);
    }

    /// The medians of this level's probes (ADD, DEL); starts the next level afresh.
    fn take(&mut self) -> (Duration, Duration) {
        (
            median(std::mem::take(&mut self.adds)),
            median(std::mem::take(&mut self.dels)),
        )
    }

    fn remove(&self, scratch: &Path) {
        for i in 0..self.attached {
            let _ = NetNs::remove(&self.netns(scratch, &format!("bg{i}")));
        }
    }
}

/// One level's medians: grown and base hosts, ours and the reference's.
struct Row {
    level: usize,
    ours: (Duration, Duration),
    ours_base: (Duration, Duration),
    theirs: (Duration, Duration),
    theirs_base: (Duration, Duration),
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

fn print_tables(rows: &[Row]) {
    println!("| containers attached | netctl ADD (ms) | reference ADD (ms) | ADD ratio | netctl DEL (ms) | reference DEL (ms) | DEL ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.level,
            ms(r.ours.0),
            ms(r.theirs.0),
            ratio(r.theirs.0, r.ours.0),
            ms(r.ours.1),
            ms(r.theirs.1),
            ratio(r.theirs.1, r.ours.1)
        );
    }
    println!();
    println!("Growth: each level's median over the median of a network with 1 container, probed in turn with it (so both saw the same machine):");
    println!();
    println!("| containers attached | netctl ADD | netctl DEL | reference ADD | reference DEL | netctl ADD / DEL with 1 attached (ms) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} / {} |",
            r.level,
            ratio(r.ours.0, r.ours_base.0),
            ratio(r.ours.1, r.ours_base.1),
            ratio(r.theirs.0, r.theirs_base.0),
            ratio(r.theirs.1, r.theirs_base.1),
            ms(r.ours_base.0),
            ms(r.ours_base.1)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bridge-bench OUR_BIN_DIR REFERENCE_BIN_DIR [ITERATIONS] [CSV]";
    let ours = PathBuf::from(args.get(1).expect(usage));
    let reference = PathBuf::from(args.get(2).expect(usage));
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let csv = args.get(4).map(PathBuf::from);
    netctl_bench::enter_private_namespaces();
    let scratch = std::env::temp_dir().join(format!("netctl-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("netns")).unwrap();
    let mut hosts = [
        Host::new(&scratch, "ours", true, &ours),
        Host::new(&scratch, "ours-base", true, &ours),
        Host::new(&scratch, "theirs", false, &reference),
        Host::new(&scratch, "theirs-base", false, &reference),
    ];
    let mut rows = Vec::new();
    for (round, &level) in LEVELS.iter().enumerate() {
        for h in &mut hosts {
            let want = if h.name.ends_with("-base") { 1 } else { level };
            h.grow(&scratch, want);
        }
        eprintln!("{level} attached: probing");
        // Let the kernel's deferred work for the new links (address setup, timers) finish.
        std::thread::sleep(Duration::from_secs(3));
        for i in 0..iterations {
            // Each side's pair back to back, in turn first: whoever goes first follows the
            // other side's probe (and its background work), so that place alternates.
            let order = if i % 2 == 0 {
                [0, 1, 2, 3]
            } else {
                [1, 0, 3, 2]
            };
            for k in order {
                hosts[k].probe(&scratch, &format!("probe{round}x{i}"));
            }
        }
        let [a, b, c, d] = &mut hosts;
        rows.push(Row {
            level,
            ours: a.take(),
            ours_base: b.take(),
            theirs: c.take(),
            theirs_base: d.take(),
        });
    }
    eprintln!("done, cleaning up");
    for h in &hosts {
        h.remove(&scratch);
    }
    print_tables(&rows);
    if let Some(csv) = csv {
        let mut text = String::from("attached netctl_add reference_add netctl_del reference_del\n");
        for r in &rows {
            text += &format!(
                "{} {} {} {} {}\n",
                r.level,
                ms(r.ours.0),
                ms(r.theirs.0),
                ms(r.ours.1),
                ms(r.theirs.1)
            );
        }
        std::fs::write(&csv, text).unwrap();
    }
    for h in &hosts {
        let _ = NetNs::remove(h.ns.path());
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
