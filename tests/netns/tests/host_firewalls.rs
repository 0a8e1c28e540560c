//! netctl on hosts whose firewall is not its own: iptables' FORWARD policy DROP (what Docker
//! and ufw leave), in the nft and the legacy flavour, ufw itself, a flushed ruleset. For each
//! backend (nftables, iptables) a container still reaches a machine on the LAN, its published
//! port answers that machine, networks stay apart, and nothing else is let through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::{eventually, TestHost};

/// One test per backend for each scenario (a test host is one per test thread).
macro_rules! per_backend {
    ($scenario:ident: $($test:ident => $backend:expr),+) => {
        $(
            #[test]
            fn $test() {
                $scenario($backend);
            }
        )+
    };
}

fn http_cmd(addr: &str, port: u16) -> String {
    format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 2 {addr} {port}")
}

/// A host with a LAN machine (192.0.2.2, serving HTTP on 8000 and reaching the host at
/// 192.0.2.1), two networks on `backend` and a published web container.
struct Scene {
    host: TestHost,
    lan: PathBuf,
}

fn scene(backend: &str) -> Scene {
    scene_after(backend, |_| {})
}

/// [`scene`], with `before` run on the host first (another engine installed before netctl).
fn scene_after(backend: &str, before: impl FnOnce(&mut TestHost)) -> Scene {
    let mut host = TestHost::new();
    before(&mut host);
    host.busybox_image();
    let lan = host.outside("lan", "192.0.2.1/24", "192.0.2.2/24");
    let www = host.dir().join("lan-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "the lan machine\n").unwrap();
    host.spawn_in(
        &lan,
        &format!("busybox httpd -f -p 8000 -h {}", www.display()),
    );
    for net in ["front", "back"] {
        host.netctl_ok(&[
            "network",
            "create",
            "--opt",
            &format!("firewall={backend}"),
            net,
        ]);
    }
    host.netctl_ok(&[
        "run", "-d", "--name", "web", "--net", "front", "-p", "8080:80", "busybox", "httpd", "-f",
        "-p", "80", "-h", "/www",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "client", "--net", "back", "busybox", "sleep", "1000",
    ]);
    Scene { host, lan }
}

impl Scene {
    /// A container reaches the LAN machine (masquerade, forwarding).
    fn reaches_the_lan(&self) -> Result<String, String> {
        match self.host.netctl(&[
            "exec",
            "client",
            "sh",
            "-c",
            &http_cmd("192.0.2.2", 8000).replace("busybox ", ""),
        ]) {
            (0, out, _) if out.contains("the lan machine") => Ok(out),
            (_, out, err) => Err(format!("{out}{err}")),
        }
    }

    /// The LAN machine gets the published port.
    fn published_port_answers(&self) -> Result<String, String> {
        match self.host.try_sh_in(&self.lan, &http_cmd("192.0.2.1", 8080)) {
            (true, out) if out.contains("hello from busybox httpd") => Ok(out),
            (_, out) => Err(out),
        }
    }

    fn web_ip(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.host.netctl_ok(&["inspect", "web"])).unwrap();
        v[0]["NetworkSettings"]["Networks"]["front"]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Everything a user of these networks expects, each within a few seconds.
    fn works(&self, what: &str) {
        eventually(
            &format!("{what}: a container reaches the LAN"),
            Duration::from_secs(5),
            || self.reaches_the_lan(),
        );
        eventually(
            &format!("{what}: the published port answers the LAN"),
            Duration::from_secs(5),
            || self.published_port_answers(),
        );
        let direct = self.host.netctl(&[
            "exec",
            "client",
            "sh",
            "-c",
            &http_cmd(&self.web_ip(), 80).replace("busybox ", ""),
        ]);
        assert!(
            !direct.1.contains("200 OK"),
            "{what}: networks stay apart: {direct:?}"
        );
        let (ok, out) = self
            .host
            .try_sh_in(&self.lan, &http_cmd(&self.web_ip(), 80));
        assert!(
            !(ok && out.contains("200 OK")),
            "{what}: the LAN cannot reach a container directly"
        );
    }
}

/// `iptables -P FORWARD DROP` (Docker's and ufw's setting) in the nft flavour, for IPv4 and
/// IPv6: containers still reach the LAN and their ports answer, with either backend; the
/// host's other forwarding stays dropped.
fn iptables_nft_drop(backend: &str) {
    let s = scene(backend);
    s.host
        .sh("iptables-nft -P FORWARD DROP; ip6tables-nft -P FORWARD DROP");
    s.works(&format!("{backend} under iptables-nft DROP"));
    let forward = s.host.sh("iptables-nft -S FORWARD");
    assert!(forward.starts_with("-P FORWARD DROP"), "{forward}");
    s.host.netctl_ok(&["rm", "-f", "web", "client"]);
}

per_backend!(iptables_nft_drop:
    nftables_lives_with_an_iptables_nft_forward_drop_policy => "nftables",
    iptables_lives_with_an_iptables_nft_forward_drop_policy => "iptables");

/// The same with iptables-legacy's tables (an older host), appearing after the networks'
/// rules were made: the watcher sees them, both backends still work, and netctl's chains
/// are in the legacy tables.
fn iptables_legacy_drop(backend: &str) {
    let s = scene(backend);
    s.host
        .sh("iptables-legacy -P FORWARD DROP; ip6tables-legacy -P FORWARD DROP");
    s.works(&format!("{backend} under iptables-legacy DROP"));
    let legacy = s.host.sh("iptables-legacy-save -t filter");
    assert!(
        legacy.contains("-j NETCTL-"),
        "netctl's chains are in the legacy table: {legacy}"
    );
    s.host.netctl_ok(&["rm", "-f", "web", "client"]);
}

per_backend!(iptables_legacy_drop:
    nftables_lives_with_an_iptables_legacy_forward_drop_policy => "nftables",
    iptables_lives_with_an_iptables_legacy_forward_drop_policy => "iptables");

/// `nft flush ruleset` (and, for the iptables backend, `iptables -F` of every chain): the
/// rules come back by themselves within a second or so, published ports included, put
/// back by the watcher.
fn flushed(backend: &str) {
    let flush = match backend {
        "nftables" => "nft flush ruleset",
        _ => "iptables-nft -F; iptables-nft -t nat -F",
    };
    let s = scene(backend);
    s.works(&format!("{backend} before the flush"));
    s.host.sh(flush);
    s.works(&format!("{backend} after `{flush}`"));
    let pid = std::fs::read_to_string("/run/netctl/firewall/watch.pid").unwrap();
    let args = std::fs::read_to_string(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    assert!(
        args.contains("--watch-firewall"),
        "the watcher did it: {args:?}"
    );
    s.host.netctl_ok(&["rm", "-f", "web", "client"]);
}

per_backend!(flushed:
    nftables_rules_come_back_after_a_flush => "nftables",
    iptables_rules_come_back_after_a_flush => "iptables");

/// ufw enabled with its default policies (incoming and routed traffic denied), from its own
/// /etc/ufw in this test's mount namespace: containers reach the LAN and their published
/// ports answer, with either backend.
fn ufw(backend: &str) {
    let s = scene(backend);
    let etc = s.host.dir().join("etc-ufw");
    s.host.sh(&format!(
        "cp -a /etc/ufw {etc} && mount --bind {etc} /etc/ufw && \
         sed 's|^IPT_SYSCTL=.*|IPT_SYSCTL=/dev/null|' /etc/default/ufw > {etc}/default && \
         mount --bind {etc}/default /etc/default/ufw && ufw --force enable >/dev/null",
        etc = etc.display()
    ));
    let status = s.host.sh("ufw status verbose");
    assert!(status.contains("deny (routed)"), "{status}");
    s.works(&format!("{backend} under ufw"));
    s.host.netctl_ok(&["rm", "-f", "web", "client"]);
}

per_backend!(ufw:
    nftables_lives_with_ufw_default_deny => "nftables",
    iptables_lives_with_ufw_default_deny => "iptables");

/// Docker installed and running first (its FORWARD policy DROP, DOCKER chains, docker0 with a
/// published container), then netctl beside it: netctl containers reach the LAN and their
/// ports answer, Docker's published port still answers, and neither engine's containers
/// reach the other's, both ways.
fn beside_docker(backend: &str) {
    let mut docker = None;
    let s = scene_after(backend, |h| {
        let d = Dockerd::start(h, true);
        h.sh(&d.cmd(
            "run -d --name dweb -p 9090:80 dbox sh -c 'mkdir /d && echo hello from docker > /d/index.html && exec httpd -f -p 80 -h /d'",
        ));
        docker = Some(d);
    });
    let docker = docker.unwrap();
    let forward = s.host.sh("iptables -S FORWARD");
    assert!(
        forward.starts_with("-P FORWARD DROP") && forward.contains("DOCKER"),
        "{forward}"
    );
    s.works(&format!("{backend} beside Docker"));
    eventually(
        "Docker's published port answers the LAN",
        Duration::from_secs(5),
        || match s.host.try_sh_in(&s.lan, &http_cmd("192.0.2.1", 9090)) {
            (true, out) if out.contains("hello from docker") => Ok(()),
            (_, out) => Err(out),
        },
    );
    let dweb = s
        .host
        .sh(&docker.cmd("inspect -f '{{.NetworkSettings.IPAddress}}' dweb"));
    let to_docker = s.host.netctl(&[
        "exec",
        "client",
        "sh",
        "-c",
        &http_cmd(dweb.trim(), 80).replace("busybox ", ""),
    ]);
    assert!(
        !to_docker.1.contains("200 OK"),
        "netctl -> docker0 is dropped: {to_docker:?}"
    );
    let from_docker = |addr: &str, port: u16| {
        s.host
            .try_sh(&docker.cmd(&format!(
                "exec dweb sh -c '{}'",
                http_cmd(addr, port).replace("busybox ", "")
            )))
            .1
    };
    let lan = eventually(
        "a Docker container reaches the LAN",
        Duration::from_secs(5),
        || {
            let out = from_docker("192.0.2.2", 8000);
            if out.contains("the lan machine") {
                Ok(out)
            } else {
                Err(out)
            }
        },
    );
    assert!(lan.contains("200 OK"));
    let to_netctl = from_docker(&s.web_ip(), 80);
    assert!(
        !to_netctl.contains("200 OK"),
        "docker0 -> netctl is dropped: {to_netctl}"
    );
    s.host.netctl_ok(&["rm", "-f", "web", "client"]);
}

per_backend!(beside_docker:
    nftables_lives_beside_docker => "nftables",
    iptables_lives_beside_docker => "iptables");

/// A machine on the LAN routes 127.0.0.1 to the host (its own loopback off, route_localnet
/// on) and asks for a port the host published on 127.0.0.1 only: no answer, on either
/// backend (CVE-2020-8558); the host itself is answered.
fn loopback_ports_answer_the_host_only(backend: &str) {
    let s = scene(backend);
    s.host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "local",
        "--net",
        "front",
        "-p",
        "127.0.0.1:8081:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    eventually(
        &format!("{backend}: the host gets its 127.0.0.1:8081"),
        Duration::from_secs(5),
        || match s.host.try_sh(&http_cmd("127.0.0.1", 8081)) {
            (true, out) if out.contains("hello from busybox httpd") => Ok(()),
            (_, out) => Err(out),
        },
    );
    s.host.sh_in(
        &s.lan,
        "sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1; \
         ip addr flush dev lo; ip link set lo down; ip route add 127.0.0.1/32 via 192.0.2.1 dev eth0",
    );
    let (_, out) = s.host.try_sh_in(&s.lan, &http_cmd("127.0.0.1", 8081));
    assert!(
        !out.contains("hello from busybox httpd"),
        "{backend}: the LAN machine got the host's loopback port: {out}"
    );
    s.host.netctl_ok(&["rm", "-f", "web", "client", "local"]);
}

per_backend!(loopback_ports_answer_the_host_only:
    nftables_loopback_ports_answer_the_host_only => "nftables",
    iptables_loopback_ports_answer_the_host_only => "iptables");

/// What the host's firewall holds, as an admin compares it: the nft ruleset, and the rules
/// and chains of every iptables, ip6tables and ebtables table (counters and comments aside).
fn firewall_listing(host: &TestHost) -> String {
    host.sh(
        "nft list ruleset; for t in iptables-nft ip6tables-nft iptables-legacy ip6tables-legacy ebtables-nft; do \
           $t-save 2>/dev/null | grep -E '^(-A|:NETCTL)'; done; true",
    )
}

/// A host with its own rules (an nft table and an iptables rule) gets a network, a published
/// container (with its source guard) and a second network; once both networks and the
/// container are removed, the host's firewall is exactly as it was before netctl, on either
/// backend: no table, chain or jump of netctl's is left.
fn nothing_of_netctl_is_left_in_the_firewall(backend: &str) {
    let host = TestHost::new();
    host.busybox_image();
    host.sh(
        "nft add table inet admin; nft add chain inet admin input '{ type filter hook input priority 0; }'; \
         nft add rule inet admin input tcp dport 22 accept; iptables-nft -A INPUT -p tcp --dport 23 -j ACCEPT",
    );
    let before = firewall_listing(&host);
    for net in ["front", "back"] {
        host.netctl_ok(&[
            "network",
            "create",
            "--opt",
            &format!("firewall={backend}"),
            net,
        ]);
    }
    host.netctl_ok(&[
        "run", "-d", "--name", "web", "--net", "front", "-p", "8080:80", "busybox", "httpd", "-f",
        "-p", "80", "-h", "/www",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "client", "--net", "back", "busybox", "sleep", "1000",
    ]);
    assert!(
        firewall_listing(&host).to_lowercase().contains("netctl"),
        "netctl's rules were there"
    );
    host.netctl_ok(&["rm", "-f", "web", "client"]);
    host.netctl_ok(&["network", "rm", "front", "back"]);
    assert_eq!(
        firewall_listing(&host),
        before,
        "{backend}: the host's firewall is as it was"
    );
}

per_backend!(nothing_of_netctl_is_left_in_the_firewall:
    nftables_leaves_nothing_in_the_firewall => "nftables",
    iptables_leaves_nothing_in_the_firewall => "iptables");

/// Once a container is attached (its ports and source guard in place), the firewall watcher
/// changes nothing while nothing else does: a heal that re-applied what is present would
/// wake it again, for ever.
fn the_watcher_rests_when_nothing_changes(backend: &str) {
    let s = scene(backend);
    s.works(&format!("{backend}: the scene"));
    std::thread::sleep(Duration::from_millis(500));
    let (_, changes) = s.host.try_sh("timeout 2 nft monitor");
    assert_eq!(changes.trim(), "", "{backend}: the firewall kept changing");
    s.host.netctl_ok(&["rm", "-f", "web", "client"]);
}

per_backend!(the_watcher_rests_when_nothing_changes:
    nftables_watcher_rests_when_nothing_changes => "nftables",
    iptables_watcher_rests_when_nothing_changes => "iptables");
