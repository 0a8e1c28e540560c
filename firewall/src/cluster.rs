//! What a host of an overlay cluster lets through for the cluster, whatever else its
//! firewall allows: VXLAN (UDP 4789) only from the cluster's hosts, and an encrypted
//! network's VXLAN only out of the encrypted tunnel (never plain from the underlay, whatever
//! its source claims); the tunnel's own datagrams only from the cluster's hosts; and nothing
//! forwarded (a container's traffic, which masquerade would make this host's) to a host's
//! VXLAN or tunnel port or to an etcd member's client and peer ports. The overlay agent keeps
//! these rules current as hosts and networks come and go.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::names::IfName;
use crate::xtables::{has_chain, Family};

/// The VXLAN port of overlay networks.
pub const VXLAN_PORT: u16 = 4789;
/// etcd's peer port, closed beside each member's client port.
pub const ETCD_PEER_PORT: u16 = 2380;
/// The nftables table of the cluster rules.
pub const TABLE: &str = "inet netctl_cluster";

/// The cluster as the firewall needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRules {
    /// Every host's underlay address: the only sources of VXLAN.
    pub peers: Vec<IpAddr>,
    /// The etcd members' client addresses.
    pub store: Vec<SocketAddr>,
    /// The encrypted tunnel, when this host has one.
    pub tunnel: Option<TunnelRules>,
}

/// The encrypted tunnel's part of [`ClusterRules`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRules {
    /// The TUN device decrypted VXLAN comes out of.
    pub device: IfName,
    /// The tunnel's UDP port on the underlay.
    pub port: u16,
    /// The VNIs of encrypted networks: their VXLAN is taken only from `device`.
    pub encrypted_vnis: Vec<u32>,
}

/// The nftables script that replaces the cluster table with `r`'s (one transaction).
pub fn nft_script(r: &ClusterRules) -> String {
    let mut s = format!("add table {TABLE}\ndelete table {TABLE}\nadd table {TABLE}\n");
    for (chain, hook) in [("input", "input"), ("forward", "forward")] {
        s += &format!(
            "add chain {TABLE} {chain} {{ type filter hook {hook} priority filter - 5; policy accept; }}\n"
        );
    }
    if let Some(t) = &r.tunnel {
        s += &format!(
            "add rule {TABLE} input iifname \"{}\" udp dport {VXLAN_PORT} accept\n",
            t.device
        );
        if !t.encrypted_vnis.is_empty() {
            let vnis: Vec<String> = t.encrypted_vnis.iter().map(ToString::to_string).collect();
            // The VNI: bits 32-55 of the VXLAN header, after the 8-byte UDP header.
            s += &format!(
                "add rule {TABLE} input udp dport {VXLAN_PORT} @th,96,24 {{ {} }} drop\n",
                vnis.join(", ")
            );
        }
    }
    for (set, ty, v4) in [
        ("peers4", "ipv4_addr", true),
        ("peers6", "ipv6_addr", false),
    ] {
        s += &format!("add set {TABLE} {set} {{ type {ty}; }}\n");
        let members: Vec<String> = r
            .peers
            .iter()
            .filter(|p| p.is_ipv4() == v4)
            .map(ToString::to_string)
            .collect();
        if !members.is_empty() {
            s += &format!("add element {TABLE} {set} {{ {} }}\n", members.join(", "));
        }
        let fam = if v4 { "ip" } else { "ip6" };
        s += &format!(
            "add rule {TABLE} input meta nfproto {} udp dport {VXLAN_PORT} {fam} saddr != @{set} drop\n",
            if v4 { "ipv4" } else { "ipv6" }
        );
        s += &format!("add rule {TABLE} forward {fam} daddr @{set} udp dport {VXLAN_PORT} drop\n");
        if let Some(t) = &r.tunnel {
            let port = t.port;
            s += &format!(
                "add rule {TABLE} input meta nfproto {} udp dport {port} {fam} saddr != @{set} drop\n",
                if v4 { "ipv4" } else { "ipv6" }
            );
            s += &format!("add rule {TABLE} forward {fam} daddr @{set} udp dport {port} drop\n");
        }
    }
    for m in &r.store {
        let fam = if m.is_ipv4() { "ip" } else { "ip6" };
        s += &format!(
            "add rule {TABLE} forward {fam} daddr {} tcp dport {{ {}, {ETCD_PEER_PORT} }} drop\n",
            m.ip(),
            m.port()
        );
    }
    s
}

/// Removes the cluster table (added first, so that a missing one is no error).
pub fn nft_clear_script() -> String {
    format!("add table {TABLE}\ndelete table {TABLE}\n")
}

/// The iptables chains of the cluster rules.
pub const IPT_INPUT: &str = "NETCTL-CLUSTER-IN";
/// See [`IPT_INPUT`].
pub const IPT_FORWARD: &str = "NETCTL-CLUSTER-FWD";

/// The restore script (filter table) that rebuilds the cluster chains of `family`, and
/// jumps to them first thing unless `saved` shows them.
pub fn ipt_script(r: &ClusterRules, family: Family, saved: &str) -> String {
    let v4 = family == Family::V4;
    let mut s = format!("*filter\n:{IPT_INPUT} - [0:0]\n:{IPT_FORWARD} - [0:0]\n");
    if let Some(t) = &r.tunnel {
        s += &format!(
            "-A {IPT_INPUT} -i {} -p udp -m udp --dport {VXLAN_PORT} -j RETURN\n",
            t.device
        );
        for vni in &t.encrypted_vnis {
            s += &format!(
                "-A {IPT_INPUT} -p udp -m udp --dport {VXLAN_PORT} -m u32 --u32 \"0x0>>0x16&0x3c@0xc>>0x8={vni:#x}\" -j DROP\n"
            );
        }
    }
    let tunnel_port = r.tunnel.as_ref().map(|t| t.port);
    for p in r.peers.iter().filter(|p| p.is_ipv4() == v4) {
        s += &format!("-A {IPT_INPUT} -s {p} -p udp -m udp --dport {VXLAN_PORT} -j RETURN\n");
        s += &format!("-A {IPT_FORWARD} -d {p} -p udp -m udp --dport {VXLAN_PORT} -j DROP\n");
        if let Some(port) = tunnel_port {
            s += &format!("-A {IPT_INPUT} -s {p} -p udp -m udp --dport {port} -j RETURN\n");
            s += &format!("-A {IPT_FORWARD} -d {p} -p udp -m udp --dport {port} -j DROP\n");
        }
    }
    s += &format!("-A {IPT_INPUT} -p udp -m udp --dport {VXLAN_PORT} -j DROP\n");
    if let Some(port) = tunnel_port {
        s += &format!("-A {IPT_INPUT} -p udp -m udp --dport {port} -j DROP\n");
    }
    for m in r.store.iter().filter(|m| m.is_ipv4() == v4) {
        s += &format!(
            "-A {IPT_FORWARD} -d {} -p tcp -m multiport --dports {},{ETCD_PEER_PORT} -j DROP\n",
            m.ip(),
            m.port()
        );
    }
    for (builtin, chain) in [("INPUT", IPT_INPUT), ("FORWARD", IPT_FORWARD)] {
        if !saved
            .lines()
            .any(|l| l.trim_end() == format!("-A {builtin} -j {chain}"))
        {
            s += &format!("-I {builtin} 1 -j {chain}\n");
        }
    }
    s + "COMMIT\n"
}

/// The restore script that removes the cluster chains and their jumps.
pub fn ipt_clear_script(saved: &str) -> String {
    let mut s = String::from("*filter\n");
    for (builtin, chain) in [("INPUT", IPT_INPUT), ("FORWARD", IPT_FORWARD)] {
        if !has_chain(saved, chain) {
            continue;
        }
        let jump = format!("-A {builtin} -j {chain}");
        for _ in saved.lines().filter(|l| l.trim_end() == jump) {
            s += &format!("-D {builtin} -j {chain}\n");
        }
        s += &format!(":{chain} - [0:0]\n-X {chain}\n");
    }
    s + "COMMIT\n"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rules() -> ClusterRules {
        ClusterRules {
            peers: vec!["10.99.0.1".parse().unwrap(), "10.99.0.2".parse().unwrap()],
            store: vec!["10.99.0.1:2379".parse().unwrap()],
            tunnel: Some(TunnelRules {
                device: "netctl-crypt".parse().unwrap(),
                port: 51821,
                encrypted_vnis: vec![4096],
            }),
        }
    }

    #[test]
    fn vxlan_is_taken_only_from_peers_and_never_forwarded_to_them() {
        let s = nft_script(&rules());
        assert!(s.contains("add element inet netctl_cluster peers4 { 10.99.0.1, 10.99.0.2 }"));
        assert!(s.contains("input meta nfproto ipv4 udp dport 4789 ip saddr != @peers4 drop"));
        assert!(s.contains("forward ip daddr @peers4 udp dport 4789 drop"));
        assert!(s.contains("forward ip daddr 10.99.0.1 tcp dport { 2379, 2380 } drop"));
        let i = ipt_script(&rules(), Family::V4, "");
        assert!(
            i.contains("-A NETCTL-CLUSTER-IN -s 10.99.0.2 -p udp -m udp --dport 4789 -j RETURN")
        );
        assert!(i.contains("-A NETCTL-CLUSTER-IN -p udp -m udp --dport 4789 -j DROP"));
        assert!(i.contains("-I INPUT 1 -j NETCTL-CLUSTER-IN"));
        assert!(s.contains("input iifname \"netctl-crypt\" udp dport 4789 accept"));
        assert!(s.contains("input udp dport 4789 @th,96,24 { 4096 } drop"));
        assert!(s.contains("input meta nfproto ipv4 udp dport 51821 ip saddr != @peers4 drop"));
        assert!(
            i.contains("--u32 \"0x0>>0x16&0x3c@0xc>>0x8=0x1000\" -j DROP"),
            "{i}"
        );
    }
}
