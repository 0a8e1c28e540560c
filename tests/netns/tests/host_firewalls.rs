//! netctl on hosts whose firewall is not its own: iptables' FORWARD policy DROP (what Docker
//! and ufw leave), in the nft and the legacy flavour, ufw itself, a flushed ruleset. For each
//! backend (nftables, iptables) a container still reaches a machine on the LAN, its published
//! port answers that machine, networks stay apart, and nothing else is let through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

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
    let mut host = TestHost::new();
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
