//! Debian's podman, with its CNI backend, runs containers on netctl's plugins: addresses from
//! netctl-ipam, names from netctl-dnsd, published ports, and nothing left after `rm -f`.
//! Everything (podman's storage, its netns and CNI folders) is private to the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use netctl_netns_tests::{bin_dir, TestHost};

fn podman_missing() -> Option<String> {
    let ok = |p: &str| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok("podman") || !ok("runc") {
        return Some("podman or runc is not installed (Debian packages podman, runc)".into());
    }
    None
}

/// Writes podman's configuration for a CNI backend that uses netctl's plugins, and a busybox
/// image made from Debian's busybox-static; returns the environment to run podman with.
fn setup(host: &TestHost) -> Vec<(String, String)> {
    let d = host.dir();
    for sub in ["net", "graph", "run", "tmp", "rootfs/bin"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    // podman's own state folders on the host: private to this test.
    for dir in [
        "/run/netns",
        "/var/lib/cni",
        "/run/containers",
        "/run/libpod",
    ] {
        host.sh(&format!("mkdir -p {dir} && mount -t tmpfs tmpfs {dir}"));
    }
    std::fs::copy("/bin/busybox", d.join("rootfs/bin/busybox")).unwrap();
    for c in [
        "sh", "sleep", "ping", "nslookup", "cat", "ip", "httpd", "echo",
    ] {
        std::os::unix::fs::symlink("busybox", d.join("rootfs/bin").join(c)).unwrap();
    }
    host.sh(&format!(
        "tar -C {r} -cf {d}/rootfs.tar .",
        r = d.join("rootfs").display(),
        d = d.display()
    ));
    std::fs::write(
        d.join("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{bin}\"]\nnetwork_config_dir = \"{d}/net\"\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = \"{d}/tmp\"\n",
            bin = bin_dir().display(),
            d = d.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    vec![
        (
            "CONTAINERS_CONF".into(),
            d.join("containers.conf").display().to_string(),
        ),
        (
            "CONTAINERS_STORAGE_CONF".into(),
            d.join("storage.conf").display().to_string(),
        ),
    ]
}

fn podman(host: &TestHost, env: &[(String, String)], args: &str) -> (bool, String) {
    let vars: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    host.try_sh(&format!("env {vars} podman {args}"))
}

fn podman_ok(host: &TestHost, env: &[(String, String)], args: &str) -> String {
    let (ok, out) = podman(host, env, args);
    assert!(ok, "podman {args}: {out}");
    out
}

/// `podman run --network web --network-alias web` three times on a network `netctl network
/// create` wrote: netctl's addresses, ping by name, `web` round robin from netctl-dnsd, `-p`,
/// and `podman rm -f` leaves no link, address, allocation, record or port rule.
#[test]
fn podman_runs_containers_on_netctl_plugins() {
    if let Some(why) = podman_missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let host = TestHost::new();
    host.resolv_conf("nameserver 10.254.0.53\n"); // an address of no machine: nothing leaves
    let env = setup(&host);
    host.netctl_ok(&["network", "create", "--subnet", "10.88.0.0/16", "web"]);
    std::fs::copy(
        "/var/lib/netctl/networks/web.conflist",
        host.dir().join("net/web.conflist"),
    )
    .unwrap();
    let tar = host.dir().join("rootfs.tar");
    let (imported, out) = podman(
        &host,
        &env,
        &format!("import {} localhost/busybox:latest", tar.display()),
    );
    if !imported {
        eprintln!("SKIPPED: podman cannot run containers on this machine: {out}");
        return;
    }
    let empty = host.sh("ip -o link | grep -c . ; nft list ruleset | grep -c element || true");
    for (name, extra) in [("w1", "-p 8081:80"), ("w2", ""), ("w3", "")] {
        podman_ok(&host, &env, &format!("run -d --network web --network-alias web --name {name} {extra} localhost/busybox sleep 1000"));
    }
    podman_ok(&host, &env, "exec -d w1 httpd -f -p 80 -h /bin");
    let owners = host.sh("ls /var/lib/netctl/ipam/web | grep -c '^owner:'");
    assert_eq!(
        owners.trim(),
        "3",
        "three allocations in netctl-ipam's store"
    );
    let ip = podman_ok(&host, &env, "exec w1 ip -o -4 addr show eth0");
    assert!(ip.contains("10.88.0."), "{ip}");
    let ping = podman_ok(&host, &env, "exec w2 ping -c1 -W2 w1");
    assert!(ping.contains("1 packets received"), "{ping}");
    let sandbox = podman_ok(
        &host,
        &env,
        "inspect -f '{{.NetworkSettings.SandboxKey}}' w2",
    );
    let ns = Path::new(sandbox.trim());
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..6 {
        let (_, out) = host.try_sh_in(ns, "dig +short @127.0.0.11 web");
        let mut ips: Vec<&str> = out.lines().collect();
        firsts.insert(ips.first().map(|s| s.to_string()));
        ips.sort();
        assert_eq!(ips.len(), 3, "{out}");
    }
    assert!(firsts.len() > 1, "round robin: {firsts:?}");
    let (ok, page) = host.try_sh("for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET /busybox HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 127.0.0.1 8081 | head -1 | grep -q 200 && echo served && exit 0; sleep 0.3; done; exit 1");
    assert!(ok, "the published port answers: {page}");
    podman_ok(&host, &env, "rm -f -t 0 w1 w2 w3");
    host.wait_for_reapers();
    assert_eq!(
        host.sh("ls /var/lib/netctl/ipam/web | grep -c '^owner:' || true")
            .trim(),
        "0",
        "allocations released"
    );
    assert_eq!(
        host.sh("ls /run/netctl/dns/records/web 2>/dev/null | grep -c . || true")
            .trim(),
        "0",
        "DNS records removed"
    );
    let after = host.sh("ip -o link | grep -c . ; nft list ruleset | grep -c element || true");
    let links = |s: &str| s.lines().next().unwrap_or("").to_string();
    assert_eq!(
        links(&after).parse::<i32>().unwrap() - links(&empty).parse::<i32>().unwrap(),
        0,
        "no link is left but the network's bridge, which `network create` made"
    );
    assert!(
        !host.sh("nft list ruleset").contains("8081"),
        "the published port's rule is gone"
    );
}
